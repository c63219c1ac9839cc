"""Placement read back from /proc: the server's threads (and children) run on the CPUs asked for,
the load generator on the others, and bad CPU lists are refused."""
import glob
import json
import os
import subprocess
import tempfile
import time
import unittest

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")


def allowed(pid, tid):
    """Cpus_allowed_list of one thread, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":", 1)[1].strip()
    except (FileNotFoundError, ProcessLookupError):  # reading a thread that exits mid-read: ESRCH
        return None
    return None


def threads_of(pid):
    """{tid: Cpus_allowed_list} of every thread of pid."""
    out = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        cpus = allowed(pid, os.path.basename(task))
        if cpus is not None:
            out[int(os.path.basename(task))] = cpus
    return out


def children_of(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def is_server(pid):
    """True for a child running the harness's `serve`: the harness has other children, unpinned by
    design (`sh -c git ...` for the result's context), and a server just forked is not yet pinned."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return len(argv) > 1 and os.path.basename(argv[0]) == b"harness" and argv[1] == b"serve"


CPUS = sorted(os.sched_getaffinity(0))


class Affinity(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    @unittest.skipIf(len(CPUS) < 2, "needs two CPUs to split")
    def test_a_run_pins_its_server_and_its_load_generator_apart(self):
        out = os.path.join(self.dir, "r.json")
        server_cpu, client_cpu = str(CPUS[0]), str(CPUS[-1])
        proc = subprocess.Popen([HARNESS, "run", "--scenario=echo", "--model=threads,process_pool",
                                 "--connections=8", "--duration=1s", "--warmup=300ms", "--repetitions=1",
                                 f"--server-cpus={server_cpu}", f"--client-cpus={client_cpu}", f"--out={out}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
        seen_servers = {}  # server pid -> {tid: cpus}, of it and its children
        harness_threads = {}
        deadline = time.time() + 30
        while proc.poll() is None and time.time() < deadline:
            for server in filter(is_server, children_of(proc.pid)):
                for pid in [server] + children_of(server):
                    seen_servers.setdefault(server, {}).update(threads_of(pid))
            harness_threads.update(threads_of(proc.pid))
            time.sleep(0.05)
        _, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        seen_servers = {pid: threads for pid, threads in seen_servers.items() if threads}  # not gone at once
        self.assertGreaterEqual(len(seen_servers), 2, "saw no server of either model")
        self.assertGreater(max(len(t) for t in seen_servers.values()), 8, "saw no server with its threads")
        for server, threads in seen_servers.items():
            self.assertEqual(set(threads.values()), {server_cpu}, f"server {server}")
        # The load generator's threads (all but the main thread, which pins itself per run) are the client's.
        self.assertIn(client_cpu, set(harness_threads.values()))
        with open(out, encoding="utf-8") as f:
            doc = json.load(f)
        for e in doc["benchmarks"]:
            self.assertEqual(e["placement"], {"mode": "given", "server_cpus": server_cpu, "client_cpus": client_cpu})

    def test_serve_pins_every_thread(self):
        cpu = str(CPUS[-1])
        server = subprocess.Popen([HARNESS, "serve", "--model=asio", "--workers=3", f"--server-cpus={cpu}"],
                                  stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            server.stdout.readline()
            threads = threads_of(server.pid)
            self.assertGreaterEqual(len(threads), 4)
            self.assertEqual(set(threads.values()), {cpu})
        finally:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()

    def test_bad_cpu_lists_are_refused(self):
        for flags, mentions in ((["--server-cpus=4095"], "--server-cpus: CPU 4095 is not"),
                                (["--client-cpus=a"], "--client-cpus: not a CPU list"),
                                (["--cpus=sometimes"], "--cpus"),
                                (["--cpus=shared", f"--server-cpus={CPUS[0]}"], "--cpus=shared")):
            with self.subTest(flags=flags):
                p = subprocess.run([HARNESS, "run", "--scenario=echo", "--model=epoll", *flags,
                                    f"--out={self.dir}/x.json"], capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertIn(mentions, p.stderr)
        p = subprocess.run([HARNESS, "serve", "--model=epoll", "--server-cpus=4095"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--server-cpus", p.stderr)


if __name__ == "__main__":
    unittest.main()
