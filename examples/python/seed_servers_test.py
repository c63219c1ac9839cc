"""The Python seed servers answer `harness load` byte for byte, stop on SIGTERM, and their results
merge with each other into one file (one report for Python and C++ models)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")
SERVERS = {
    "python_threads": "thread_per_connection",
    "python_thread_pool": "thread_pool",
    "python_gevent": "gevent_server",
}
TIMEOUT = 60


class SeedServers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def load(self, name, server, *extra):
        args = [os.path.join(WORKSPACE, "examples", "python", server), *extra]
        with subprocess.Popen(args, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL) as proc:
            try:
                line = proc.stdout.readline().strip()
                self.assertRegex(line, r"^listening on 127\.0\.0\.1:\d+$")
                out = os.path.join(self.dir, f"{name}.json")
                p = subprocess.run([HARNESS, "load", f"--target={line.split()[-1]}", f"--name={name}",
                                    f"--server-pid={proc.pid}", "--connections=3", "--size=3000",
                                    "--duration=300ms", "--warmup=100ms", "--repetitions=2", f"--out={out}"],
                                   capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 0, p.stderr)
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=10)
        self.assertEqual(code, 0, f"{server} did not exit cleanly on SIGTERM")
        return out

    def test_every_server_echoes_every_byte_and_the_results_merge(self):
        outs = []
        for name, server in SERVERS.items():
            with self.subTest(server=server):
                out = self.load(name, server)
                with open(out, encoding="utf-8") as f:
                    doc = json.load(f)
                iterations = [b for b in doc["benchmarks"] if b["run_type"] == "iteration"]
                self.assertEqual(len(iterations), 2)
                for b in iterations:
                    self.assertEqual(b["status"], "ok", b.get("error"))
                    self.assertEqual(b["model"], name)
                    self.assertEqual(b["errors"], 0)
                    self.assertEqual(b["starved_connections"], 0)
                    self.assertGreater(b["msgs_per_second"], 0)
                outs.append(out)
        merged = os.path.join(self.dir, "python.json")
        p = subprocess.run([HARNESS, "merge", *outs, f"--out={merged}"], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(merged, encoding="utf-8") as f:
            models = {b["model"] for b in json.load(f)["benchmarks"]}
        self.assertEqual(models, set(SERVERS))

    def test_the_pool_starves_connections_beyond_its_workers(self):
        out = self.load("python_thread_pool", "thread_pool", "--workers=2")
        with open(out, encoding="utf-8") as f:
            first = json.load(f)["benchmarks"][0]
        self.assertEqual(first["status"], "ok")
        self.assertEqual(first["starved_connections"], 1)  # 3 connections, 2 workers: seed 001


def entries(path):
    with open(path, encoding="utf-8") as f:
        return [b for b in json.load(f)["benchmarks"] if b["run_type"] == "iteration"]


class ReplyRules(unittest.TestCase):
    """Servers that do not upper-case: seed 004's (b'Echo=>' + data), socat's plain echo (a Debian
    program, not ours), and ours asked for the wrong rule."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.out = os.path.join(self.dir, "r.json")

    def load(self, target, *flags):
        return subprocess.run([HARNESS, "load", f"--target={target}", "--duration=300ms", "--warmup=100ms",
                               "--repetitions=1", f"--out={self.out}", *flags],
                              capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)

    def serve(self, args):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        line = proc.stdout.readline().strip()
        self.assertRegex(line, r"^listening on 127\.0\.0\.1:\d+$")
        return line.split()[-1]

    def test_seed_004_answers_with_its_prefix_over_tcp_and_udp(self):
        for transport, server in (("tcp", "seed004_tcp"), ("udp", "seed004_udp")):
            with self.subTest(transport=transport):
                target = self.serve([os.path.join(WORKSPACE, "examples", "python", server)])
                p = self.load(target, f"--transport={transport}", "--reply=prefix:Echo=>", "--connections=1",
                              "--size=64", "--name=python_seed004")
                self.assertEqual(p.returncode, 0, p.stderr)
                (e,) = entries(self.out)
                self.assertEqual(e["status"], "ok", e.get("error"))
                self.assertEqual(e["errors"], 0)
                self.assertEqual(e["params"]["reply"], "prefix:Echo=>")
                self.assertGreater(e["msgs_per_second"], 0)
                # Expecting seed 000's upper-cased echo instead: every reply is wrong.
                p = self.load(target, f"--transport={transport}", "--connections=1", "--size=64")
                self.assertEqual(p.returncode, 1, p.stderr)

    def socat(self, listen):
        """socat on a free port (found by binding port 0; taken again by socat a moment later)."""
        self.assertIsNotNone(shutil.which("socat"), "socat is not installed: run ./setup.sh")
        for _ in range(5):
            kind = socket.SOCK_DGRAM if listen.startswith("UDP") else socket.SOCK_STREAM
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            proc = subprocess.Popen(["socat", f"{listen}:{port},bind=127.0.0.1,reuseaddr,fork", "PIPE"],
                                    stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.3)
            if proc.poll() is None:
                self.addCleanup(lambda p=proc: (p.terminate(), p.wait()))
                return f"127.0.0.1:{port}"
        self.fail("socat could not listen on a free port")

    def test_socat_a_plain_echo_from_debian_has_no_errors(self):
        for transport, listen, connections in (("tcp", "TCP-LISTEN", "1,10"), ("udp", "UDP-RECVFROM", "2")):
            with self.subTest(transport=transport):
                p = self.load(self.socat(listen), f"--transport={transport}", "--reply=same", "--name=socat",
                              f"--connections={connections}", "--size=100")
                self.assertEqual(p.returncode, 0, p.stderr)
                for e in entries(self.out):
                    self.assertEqual(e["status"], "ok", e.get("error"))
                    self.assertEqual(e["errors"], 0)
                    self.assertEqual(e["model"], "socat")
                    self.assertGreater(e["iterations"], 0)

    def test_a_plain_echo_expected_of_an_upper_casing_server_is_wrong_in_every_letter(self):
        target = self.serve([HARNESS, "serve", "--model=epoll"])
        p = self.load(target, "--reply=same", "--connections=1", "--size=4096")
        self.assertEqual(p.returncode, 1, p.stderr)
        (e,) = entries(self.out)
        self.assertEqual(e["status"], "failed")
        wrong = int(re.search(r"(\d+) wrong byte", e["error"]).group(1))
        # Half the bytes of every message are lower-case letters: each reply has ~2048 wrong.
        self.assertGreater(wrong, 100 * 2048 * 0.8, e["error"])


if __name__ == "__main__":
    unittest.main()
