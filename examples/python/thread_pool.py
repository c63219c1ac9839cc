"""Seed 001: concurrent.futures.ThreadPoolExecutor(workers) serving connections. A connection
holds its worker until it closes, so connections beyond `workers` wait unanswered, as in the seed."""
from concurrent.futures import ThreadPoolExecutor

import seed_common


def main():
    args = seed_common.parse_args(__doc__, workers=3)
    seed_common.exit_on_signals()
    server = seed_common.listen(args)
    pool = ThreadPoolExecutor(args.workers)
    while True:
        conn, _ = server.accept()
        pool.submit(seed_common.echo_upper, conn)


if __name__ == "__main__":
    main()
