"""The Python seed servers answer `harness load` byte for byte, stop on SIGTERM, and their results
merge with each other into one file (one report for Python and C++ models)."""
import json
import os
import signal
import subprocess
import tempfile
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


if __name__ == "__main__":
    unittest.main()
