"""Seed 002's gevent: monkey.patch_all() makes the blocking socket code cooperative, and a
greenlet (gevent.spawn) serves each connection on one thread."""
from gevent import monkey

monkey.patch_all()  # before anything imports socket

import gevent  # noqa: E402

import seed_common  # noqa: E402


def main():
    args = seed_common.parse_args(__doc__)
    seed_common.exit_on_signals()
    server = seed_common.listen(args)
    while True:
        conn, _ = server.accept()
        gevent.spawn(seed_common.echo_upper, conn)


if __name__ == "__main__":
    main()
