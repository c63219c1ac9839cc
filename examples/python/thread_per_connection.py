"""Seed 000: a thread per connection (threading.Thread), upper-casing echo."""
import threading

import seed_common


def main():
    args = seed_common.parse_args(__doc__)
    seed_common.exit_on_signals()
    server = seed_common.listen(args)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=seed_common.echo_upper, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
