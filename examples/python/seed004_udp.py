"""Seed 004's UDP server, answering every datagram: the seed's example receives one datagram with
recvfrom(1024) and answers b'Hello'; this one loops, and answers each with b'Echo=>' + data, as
the seed's TCP server does. Drive it with `harness load --transport=udp --reply=prefix:Echo=>`
(sizes up to 1024 bytes: the seed's recvfrom(1024) cuts longer datagrams)."""
import seed_common

PREFIX = b"Echo=>"


def main():
    args = seed_common.parse_args(__doc__)
    seed_common.exit_on_signals()
    server = seed_common.bind_udp(args)
    while True:
        data, peer = server.recvfrom(1024)
        server.sendto(PREFIX + data, peer)


if __name__ == "__main__":
    main()
