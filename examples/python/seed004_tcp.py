"""Seed 004's TCP server: one connection at a time (accept, then recv and answer until the client
closes, then the next accept), each read answered with b'Echo=>' + data. Drive it with
`harness load --reply=prefix:Echo=> --connections=1`: a second connection waits until the first
closes, as in the seed. sendall, not the seed's send (see seed_common.echo_upper)."""
import socket

import seed_common

PREFIX = b"Echo=>"


def main():
    args = seed_common.parse_args(__doc__)
    seed_common.exit_on_signals()
    server = seed_common.listen(args)
    while True:
        con, _ = server.accept()
        with con:
            con.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                try:
                    data = con.recv(1024)  # the seed's 1024: a longer message is answered in pieces
                    if not data:
                        break
                    con.sendall(PREFIX + data)
                except OSError:
                    break


if __name__ == "__main__":
    main()
