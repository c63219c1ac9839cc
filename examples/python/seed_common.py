"""What the seed servers share: the command line, the listening socket, and a clean exit on
SIGTERM or SIGINT, so that `harness load` (and a test) can drive them like the harness's own
`serve`: each prints "listening on HOST:PORT" once it accepts connections."""
import argparse
import signal
import socket
import sys


def parse_args(doc, workers=None):
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:0",
                        help="HOST:PORT to listen on (default 127.0.0.1:0, loopback, any free port)")
    if workers is not None:
        parser.add_argument("--workers", type=int, default=workers, help=f"pool threads (default {workers})")
    args = parser.parse_args()
    host, sep, port = args.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        parser.error(f"--listen: expected HOST:PORT, not '{args.listen}'")
    args.host, args.port = host.strip("[]"), int(port)
    if workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def listen(args, backlog=4096):
    """The listening socket, announced on stdout. The seeds listen with a backlog of 5; a load of
    10,000 connections needs more, and the backlog is not what the seeds teach."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((args.host, args.port))
    except OSError as e:
        sys.exit(f"error: cannot listen on {args.listen}: {e.strerror}")
    server.listen(backlog)
    host, port = server.getsockname()[:2]
    print(f"listening on {'[' + host + ']' if ':' in host else host}:{port}", flush=True)
    return server


def bind_udp(args):
    """The datagram socket, announced on stdout like listen()'s."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_DGRAM)
    try:
        server.bind((args.host, args.port))
    except OSError as e:
        sys.exit(f"error: cannot listen on {args.listen}: {e.strerror}")
    host, port = server.getsockname()[:2]
    print(f"listening on {'[' + host + ']' if ':' in host else host}:{port}", flush=True)
    return server


def exit_on_signals():
    """SIGTERM and SIGINT end the server with status 0; connection threads die with it."""
    def stop(signum, frame):
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def echo_upper(conn):
    """Seed 000's conn_data: upper-case what arrives until the client closes. sendall, not the
    seed's send: send may write part of the reply under load, and the rest would be lost."""
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                data = conn.recv(16384)
                if not data:
                    return
                conn.sendall(data.upper())  # bytes.upper(): ASCII letters only, as the protocol says
            except OSError:
                return
