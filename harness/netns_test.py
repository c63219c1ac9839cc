"""serve and load on different hosts, made on one machine: a server in one network namespace, two
load generators in two others, each joined to the server's by a veth pair with addresses of their
own. Both loads drive the server at once; `merge` combines their results exactly. Skipped, saying
why, where namespaces cannot be made (not root, no iproute2, a kernel or container that refuses)."""
import json
import os
import subprocess
import tempfile
import unittest

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")
TIMEOUT = 60
TAG = f"ch{os.getpid() % 100000}"  # unique per test process; interface names stay under 16 bytes


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


class Namespaces:
    """srv, c1, c2; c<i> reaches srv at 10.77.<i>.1 from 10.77.<i>.2. Everything is removed on exit."""

    def __init__(self):
        self.names = {role: f"{TAG}{role}" for role in ("srv", "c1", "c2")}

    def __enter__(self):
        made = []
        try:
            for name in self.names.values():
                ip("netns", "add", name)
                made.append(name)
                ip("-n", name, "link", "set", "lo", "up")
            for i in (1, 2):
                server_end, client_end = f"{TAG}s{i}", f"{TAG}c{i}"
                ip("link", "add", server_end, "netns", self.names["srv"], "type", "veth", "peer", "name",
                   client_end, "netns", self.names[f"c{i}"])
                ip("-n", self.names["srv"], "addr", "add", f"10.77.{i}.1/24", "dev", server_end)
                ip("-n", self.names[f"c{i}"], "addr", "add", f"10.77.{i}.2/24", "dev", client_end)
                ip("-n", self.names["srv"], "link", "set", server_end, "up")
                ip("-n", self.names[f"c{i}"], "link", "set", client_end, "up")
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            for name in made:
                ip("netns", "del", name, check=False)
            raise unittest.SkipTest("network namespaces cannot be made here: " +
                                    (getattr(e, "stderr", "") or str(e)).strip())
        return self

    def exec(self, role, *argv):
        return ["ip", "netns", "exec", self.names[role], *argv]

    def __exit__(self, *exc):
        for name in self.names.values():
            ip("netns", "del", name, check=False)  # takes its veth ends with it


class AcrossNamespaces(unittest.TestCase):
    def test_one_server_two_loads_merged(self):
        if os.geteuid() != 0:
            self.skipTest("network namespaces need root (ip netns add)")
        out_dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        with Namespaces() as ns:
            server = subprocess.Popen(ns.exec("srv", HARNESS, "serve", "--model=epoll", "--listen=0.0.0.0:0"),
                                      stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
            try:
                line = server.stdout.readline().strip()
                self.assertRegex(line, r"^listening on 0\.0\.0\.0:\d+$")
                port = line.rsplit(":", 1)[1]
                outs = [os.path.join(out_dir, f"c{i}.json") for i in (1, 2)]
                loads = [subprocess.Popen(ns.exec(f"c{i}", HARNESS, "load", f"--target=10.77.{i}.1:{port}",
                                                  "--connections=4", "--size=512", "--duration=500ms",
                                                  "--warmup=100ms", "--repetitions=2", f"--out={out}"),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                         for i, out in zip((1, 2), outs)]
                for p in loads:
                    _, err = p.communicate(timeout=TIMEOUT)
                    self.assertEqual(p.returncode, 0, err)
            finally:
                server.terminate()
                self.assertEqual(server.wait(timeout=10), 0)
                server.stdout.close()
            # The server's namespace is not the loads': from the host's own namespace it is unreachable.
            self.assertNotEqual(subprocess.run([HARNESS, "load", f"--target=10.77.1.1:{port}"],
                                               capture_output=True, timeout=TIMEOUT).returncode, 0)

        parts = []
        for out in outs:
            with open(out, encoding="utf-8") as f:
                parts.append([e for e in json.load(f)["benchmarks"] if e["run_type"] == "iteration"])
        for part in parts:
            for e in part:
                self.assertEqual(e["status"], "ok", e.get("error"))
                self.assertEqual(e["errors"], 0)
        merged = os.path.join(out_dir, "merged.json")
        p = subprocess.run([HARNESS, "merge", *outs, f"--out={merged}"], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(merged, encoding="utf-8") as f:
            doc = json.load(f)
        iterations = [e for e in doc["benchmarks"] if e["run_type"] == "iteration"]
        self.assertEqual(len(iterations), 2)
        for e in iterations:
            a, b = (part[e["repetition_index"]] for part in parts)
            self.assertEqual(e["status"], "ok", e.get("error"))
            self.assertEqual(e["name"], "echo/external/connections:8/size:512")
            self.assertEqual(e["params"]["target"], f"10.77.1.1:{port},10.77.2.1:{port}")
            self.assertEqual(e["loads"], 2)
            self.assertEqual(e["iterations"], a["iterations"] + b["iterations"])
            self.assertEqual(e["latency_histogram"]["count"],
                             a["latency_histogram"]["count"] + b["latency_histogram"]["count"])
            self.assertEqual(e["errors"], 0)


if __name__ == "__main__":
    unittest.main()
