"""Echo servers on loopback that misbehave on purpose, for the tests that show the load generator
catches each fault. Each serves in daemon threads until close() (or the end of a `with` block)."""
import socket
import queue
import threading
import time


class FaultyServer(threading.Thread):
    """A TCP echo server with one fault:
    'silent' reads and never replies; 'corrupt' flips one byte of the first reply; 'stop' answers
    for `answer_for` seconds after its first request and then stops answering, connections open;
    'extra' follows every reply with b'!GARBAGE!'; 'twice' sends every reply twice; 'swap' sends
    each connection's replies to its partner (the 1st and 2nd to send, the 3rd and 4th, ...);
    'limited' answers correctly but at most `rate` messages of `size` bytes a second in all (a known
    capacity): one worker sends the replies in arrival order, each taking its share of a second,
    and drops the work of connections that have closed, as a server's kernel would."""

    def __init__(self, fault, answer_for=0.0, rate=0.0, size=64):
        super().__init__(daemon=True)
        self.fault, self.answer_for = fault, answer_for
        self.byte_time = 1.0 / (rate * size) if rate else 0.0
        self.work = queue.Queue()
        self.closed = set()
        if fault == "limited":
            threading.Thread(target=self.worker, daemon=True).start()
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.target = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.first_request = None
        self.flipped = threading.Lock()
        self.conns = []
        self.accepted = threading.Condition()
        self.talkers = []  # connections in the order of their first request

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def partner(self, conn):
        """The connection that gets this one's replies: with 'swap', its pair among the connections
        in the order of their first request (a probe that connects and closes is no one's pair),
        once that pair has spoken (1 s at most)."""
        if self.fault != "swap":
            return conn
        with self.accepted:
            if conn not in self.talkers:
                self.talkers.append(conn)
                self.accepted.notify_all()
            other = self.talkers.index(conn) ^ 1
            self.accepted.wait_for(lambda: len(self.talkers) > other, timeout=1.0)
            return self.talkers[other] if len(self.talkers) > other else conn

    def worker(self):
        """'limited': the replies in arrival order, one at a time, at the capacity's pace."""
        next_free = 0.0
        while True:
            conn, reply, arrived = self.work.get()
            if conn in self.closed:
                continue
            # Its turn starts when it arrived or when the one before was done, whichever is later:
            # the worker's own overhead (under the reply's share) does not lower the capacity.
            next_free = max(next_free, arrived) + len(reply) * self.byte_time
            time.sleep(max(0.0, next_free - time.monotonic()))
            try:
                conn.sendall(reply)
            except OSError:
                self.closed.add(conn)

    def serve(self, conn):
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed.add(conn)
                return
            now = time.monotonic()
            self.first_request = self.first_request or now
            if self.fault == "silent" or (self.fault == "stop" and now - self.first_request > self.answer_for):
                continue
            reply = bytearray(data.upper())
            if self.fault == "corrupt" and self.flipped.acquire(blocking=False):
                reply[0] ^= 0x01
            reply = {"extra": reply + b"!GARBAGE!", "twice": reply + reply}.get(self.fault, reply)
            if self.fault == "limited":
                self.work.put((conn, bytes(reply), now))
                continue
            try:
                self.partner(conn).sendall(reply)
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


class SwappingUdpServer(threading.Thread):
    """A UDP echo server that sends each peer's replies to its partner, or back to the peer while
    it has none. Peers pair in the order of their second datagram (the 1st and 2nd, the 3rd and
    4th, ...): the load's sockets send many, the harness's reachability probe only one."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.target = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.seen = {}   # datagrams per peer
        self.peers = []  # in the order of their second datagram
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except OSError:
                continue
            self.seen[peer] = self.seen.get(peer, 0) + 1
            if self.seen[peer] == 2:
                self.peers.append(peer)
            other = self.peers.index(peer) ^ 1 if peer in self.peers else len(self.peers)
            to = self.peers[other] if len(self.peers) > other else peer
            self.sock.sendto(data.upper(), to)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.join(timeout=5)
        self.sock.close()
