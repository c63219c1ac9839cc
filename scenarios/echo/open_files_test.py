"""Every model at its open-files limit: with more connections waiting than descriptors left, a
server stops accepting for a moment and tries again (it does not spin on a listening socket that
stays readable), serves the connections it has, and takes the waiting ones once descriptors free
up. Each server runs under a limit of 48 open files, with 80 connections opened at it."""
import os
import resource
import socket
import subprocess
import time
import unittest

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")
LIMIT = 48
CONNECTIONS = 80
TICK = os.sysconf("SC_CLK_TCK")

SERVERS = [
    ["--model=threads"], ["--model=thread_pool", "--workers=100"], ["--model=processes"],
    ["--model=process_pool", "--workers=4"], ["--model=fibers"], ["--model=asio"], ["--model=asio_coro"],
    ["--model=epoll"], ["--model=io_uring"], ["--model=io_uring", "--variant=fixed"],
    ["--model=io_uring", "--variant=single"],
]


def tree(pid):
    """pid and its descendants."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def cpu_seconds(pid):
    """CPU time of every thread of the process tree, in seconds."""
    total = 0
    for p in tree(pid):
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/stat", encoding="utf-8") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / TICK


def echo_once(target, timeout):
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(b"abc")
        return s.recv(16)


class OpenFilesLimit(unittest.TestCase):
    def test_every_model_backs_off_and_recovers(self):
        for flags in SERVERS:
            with self.subTest(server=" ".join(flags)):
                self.check(flags)

    def check(self, flags):
        limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))
        server = subprocess.Popen([HARNESS, "serve", *flags], stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL, preexec_fn=limit)
        clients = []
        try:
            line = server.stdout.readline().strip()
            self.assertTrue(line.startswith("listening on "), line)
            target = line.split()[-1]
            host, port = target.rsplit(":", 1)
            for _ in range(CONNECTIONS):  # more than the server has descriptors for; the rest wait
                clients.append(socket.create_connection((host, int(port)), timeout=5))
            time.sleep(0.5)
            before = cpu_seconds(server.pid)
            time.sleep(1.0)
            spent = cpu_seconds(server.pid) - before
            # Retrying accept() at once would keep a CPU busy for the whole second.
            self.assertLess(spent, 0.3, f"{flags}: {spent:.2f} s of CPU in 1 s at its open-files limit")
            self.assertIsNone(server.poll(), "the server died at its open-files limit")
            clients[0].sendall(b"xyz")  # served: one of the first connections
            self.assertEqual(clients[0].recv(16), b"XYZ")
            for c in clients:
                c.close()
            clients = []
            deadline = time.monotonic() + 15
            while True:  # the waiting connections drain; a new one is served
                try:
                    self.assertEqual(echo_once(target, 2), b"ABC")
                    break
                except (OSError, AssertionError):
                    if time.monotonic() > deadline:
                        raise
        finally:
            for c in clients:
                c.close()
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    unittest.main()
