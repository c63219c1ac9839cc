"""Hostile servers and hostile files: no server can hang or fool the load generator, and no path
or file can make the harness destroy what it was not asked to write or report wrong figures."""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from harness.faulty_server import FaultyServer, SwappingUdpServer
from results import validate

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")
TIMEOUT = 120
SCHEMA = json.loads(open(validate.SCHEMA, encoding="utf-8").read())


def run(*args, **kwargs):
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, **kwargs)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def one_line_error(test, p, code=2):
    test.assertEqual(p.returncode, code, p.stderr)
    lines = p.stderr.strip().splitlines()
    test.assertEqual(len(lines), 1, p.stderr)
    test.assertNotIn("terminate called", p.stderr)
    return lines[0]


class HostileServers(unittest.TestCase):
    """Each fault fails the run with wrong bytes, within its window plus a second, closed or open loop."""

    WARMUP, DURATION = 0.1, 1.0

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def load_against(self, target, connections, *extra):
        out = os.path.join(self.dir, "out.json")
        start = time.monotonic()
        p = run("load", f"--target={target}", f"--connections={connections}", "--size=64",
                f"--warmup={int(self.WARMUP * 1000)}ms", f"--duration={int(self.DURATION * 1000)}ms",
                "--repetitions=1", f"--out={out}", *extra)
        elapsed = time.monotonic() - start
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIsNone(validate.validate(out, SCHEMA))
        entry = load_json(out)["benchmarks"][0]
        self.assertEqual(entry["status"], "failed")
        self.assertNotIn("msgs_per_second", entry)
        self.assertIn("wrong byte(s)", entry["error"])
        # Warm-up and window, plus the second allowed, plus a second to start the process and connect.
        self.assertLess(elapsed, self.WARMUP + self.DURATION + 2.0, entry["error"])
        return entry["error"]

    def test_extra_bytes_after_every_reply(self):
        for loop in ([], ["--rate=1000"]):
            with self.subTest(loop=loop or "closed"), FaultyServer("extra") as server:
                self.load_against(server.target, 1, *loop)

    def test_every_reply_sent_twice(self):
        for loop in ([], ["--rate=1000"]):
            with self.subTest(loop=loop or "closed"), FaultyServer("twice") as server:
                self.load_against(server.target, 1, *loop)

    def test_replies_swapped_between_connections(self):
        for connections in (2, 100):
            with self.subTest(connections=connections), FaultyServer("swap") as server:
                self.load_against(server.target, connections)

    def test_udp_replies_swapped_between_sockets(self):
        for connections in (2, 100):
            with self.subTest(connections=connections), SwappingUdpServer() as server:
                self.load_against(server.target, connections, "--transport=udp")


class HostileOut(unittest.TestCase):
    """--out is written as a regular file the harness owns, or refused; a failed write loses nothing."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def quick_run(self, out, *extra):
        return run("run", "--scenario=pipeline", "--model=sequential", "--items=3", "--download=uniform:1ms:2ms",
                   "--repetitions=1", "--redo=0", f"--out={out}", *extra)

    def test_a_path_that_is_not_a_regular_file_is_refused_and_left_alone(self):
        victim = os.path.join(self.dir, "victim.txt")
        with open(victim, "w", encoding="utf-8") as f:
            f.write("precious\n")
        link = os.path.join(self.dir, "link.json")
        os.symlink(victim, link)
        fifo = os.path.join(self.dir, "fifo.json")
        os.mkfifo(fifo)
        device = os.path.join(self.dir, "null.json")
        try:
            os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
        except PermissionError:
            device = "/dev/null"  # refused before anything is opened, so the real one is safe too
        for path, kind in ((link, "symbolic link"), (fifo, "FIFO"), (device, "device"), (self.dir, "directory")):
            with self.subTest(kind=kind):
                line = one_line_error(self, self.quick_run(path))
                self.assertIn("--out", line)
                self.assertIn(kind, line)
        self.assertTrue(os.path.islink(link))
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))
        self.assertTrue(stat.S_ISCHR(os.lstat(device).st_mode))
        with open(victim, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious\n")

    def test_a_link_planted_where_a_temporary_file_could_go_is_not_followed(self):
        victim = os.path.join(self.dir, "victim.txt")
        with open(victim, "w", encoding="utf-8") as f:
            f.write("precious\n")
        out = os.path.join(self.dir, "r.json")
        for name in ("r.json.tmp", ".r.json.tmp", ".r.json.lock"):
            os.symlink(victim, os.path.join(self.dir, name))
        p = self.quick_run(out)
        self.assertIn(p.returncode, (0, 2), p.stderr)
        with open(victim, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious\n")
        if p.returncode == 0:
            self.assertIsNone(validate.validate(out, SCHEMA))
        else:  # a planted lock link is refused, not followed
            self.assertIn(".r.json.lock", one_line_error(self, p))

    def test_two_runs_writing_one_file_at_once(self):
        out = os.path.join(self.dir, "shared.json")
        first = subprocess.Popen([HARNESS, "run", "--scenario=pipeline", "--model=sequential", "--items=20",
                                  "--download=uniform:50ms:50ms", "--repetitions=2", "--redo=0", f"--out={out}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            deadline = time.time() + 20
            while time.time() < deadline and not os.path.exists(out):
                time.sleep(0.02)
            line = one_line_error(self, self.quick_run(out))
            self.assertIn("being written by another harness", line)
            self.assertIn(f"pid {first.pid}", line)
        finally:
            _, err = first.communicate(timeout=TIMEOUT)
        self.assertEqual(first.returncode, 0, err)
        doc = load_json(out)
        self.assertEqual(len([b for b in doc["benchmarks"] if b["run_type"] == "iteration"]), 2)
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".shared.json.lock")))
        self.assertEqual(os.listdir(self.dir), ["shared.json"])  # no temporary file left
        self.assertEqual(self.quick_run(out).returncode, 0)  # the lock went with its holder

    def test_the_directory_removed_mid_run_keeps_the_results_in_a_named_file(self):
        sub = os.path.join(self.dir, "gone")
        out = os.path.join(sub, "r.json")
        os.mkdir(sub)
        proc = subprocess.Popen([HARNESS, "run", "--scenario=pipeline", "--model=sequential", "--items=10",
                                 "--download=uniform:30ms:30ms", "--repetitions=4", "--redo=0", f"--out={out}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                env={**os.environ, "TMPDIR": self.dir})
        deadline = time.time() + 20
        while time.time() < deadline and not (os.path.exists(out) and load_json(out)["benchmarks"]):
            time.sleep(0.02)
        shutil.rmtree(sub)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 1, stderr)
        fallbacks = [f for f in os.listdir(self.dir) if f.startswith("harness-r-") and f.endswith(".json")]
        self.assertEqual(len(fallbacks), 1, os.listdir(self.dir))
        fallback = os.path.join(self.dir, fallbacks[0])
        self.assertIn(fallback, stderr)
        self.assertIn(f"results: {fallback}", stdout)
        self.assertIsNone(validate.validate(fallback, SCHEMA))
        iterations = [b for b in load_json(fallback)["benchmarks"] if b["run_type"] == "iteration"]
        self.assertEqual(len(iterations), 4)  # every repetition, also those written before the loss


class HostileMerge(unittest.TestCase):
    """merge checks what it reads: each hostile input is one line and exit 2, and no file written."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        server = subprocess.Popen([HARNESS, "serve", "--model=epoll"], stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        try:
            target = server.stdout.readline().split()[-1]
            cls.outs = [os.path.join(cls.dir, f"load{i}.json") for i in range(2)]
            loads = [subprocess.Popen([HARNESS, "load", f"--target={target}", "--connections=2", "--duration=300ms",
                                       "--warmup=50ms", "--repetitions=1", f"--out={out}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for out in cls.outs]
            for p in loads:
                _, err = p.communicate(timeout=TIMEOUT)
                assert p.returncode == 0, err
        finally:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()

    def merge(self, *inputs):
        out = os.path.join(self.dir, "merged.json")
        if os.path.exists(out):
            os.unlink(out)
        p = run("merge", *inputs, f"--out={out}")
        return p, out

    def test_the_two_loads_merge(self):
        p, out = self.merge(*self.outs)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(load_json(out)["benchmarks"][0]["connections"], 4)

    def hostile(self, name, edit):
        doc = load_json(self.outs[1])
        edit(doc, next(b for b in doc["benchmarks"] if b["run_type"] == "iteration"))
        path = os.path.join(self.dir, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc))
        return path

    def test_hostile_files_are_refused(self):
        def bucket_count(value):
            def edit(_, e):
                e["latency_histogram"]["buckets"][0][1] = value
            return edit

        def entry(key, value):
            def edit(_, e):
                if value is None:
                    del e[key]
                else:
                    e[key] = value
            return edit

        def context(key, value):
            def edit(doc, _):
                doc["context"][key] = value
            return edit

        cases = {
            "negative_bucket_count": (bucket_count(-3), "not a count"),
            "absurd_bucket_count": (bucket_count(2 ** 64 - 1), "latency histogram"),
            "count_against_buckets": (bucket_count(1000000), "but its buckets hold"),
            "missing_msgs_per_second": (entry("msgs_per_second", None), "no msgs_per_second"),
            "negative_msgs_per_second": (entry("msgs_per_second", -4999968573), "not a finite figure"),
            "no_window": (entry("window_unix_s", None), "window_unix_s"),
            "no_run_name": (entry("run_name", None), "no run_name"),
            "unknown_schema_version": (context("schema_version", 99), "schema_version 99"),
            "text_schema_version": (context("schema_version", "one"), "schema_version"),
        }
        for name, (edit, mentions) in cases.items():
            with self.subTest(name):
                p, out = self.merge(self.outs[0], self.hostile(name, edit))
                line = one_line_error(self, p)
                self.assertIn(mentions, line)
                self.assertFalse(os.path.exists(out), "merge wrote a file it refused")

    def test_one_load_given_twice(self):
        link = os.path.join(self.dir, "hard-link.json")
        copy = os.path.join(self.dir, "copy.json")
        if not os.path.exists(link):
            os.link(self.outs[0], link)
            shutil.copy(self.outs[0], copy)
        for other, mentions in ((link, "given twice"), (copy, "same load")):
            with self.subTest(other=os.path.basename(other)):
                p, out = self.merge(self.outs[0], other)
                self.assertIn(mentions, one_line_error(self, p))
                self.assertFalse(os.path.exists(out))

    def test_a_directory_is_not_a_results_file(self):
        p, out = self.merge(self.outs[0], self.dir)
        self.assertIn("not a regular file", one_line_error(self, p))


class CarelessInput(unittest.TestCase):
    """Flags that were silently ignored, misread or reported badly: each is now one line, exit 2."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.out = os.path.join(self.dir, "r.json")

    def refused(self, *args, mentions):
        line = one_line_error(self, run(*args, f"--out={self.out}"))
        self.assertIn(mentions, line)
        return line

    def test_server_pid_must_be_the_server_at_the_target(self):
        server = subprocess.Popen([HARNESS, "serve", "--model=epoll"], stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        try:
            target = server.stdout.readline().split()[-1]
            common = ("load", f"--target={target}", "--connections=1", "--duration=100ms", "--repetitions=1")
            self.assertIn("ancestor of this harness", self.refused(*common, "--server-pid=1", mentions="--server-pid"))
            other = subprocess.Popen(["sleep", "30"])
            try:
                self.assertIn("not the server", self.refused(*common, f"--server-pid={other.pid}",
                                                             mentions="--server-pid"))
            finally:
                other.kill()
                other.wait()
            with open("/proc/sys/kernel/pid_max", encoding="utf-8") as f:
                unused = int(f.read()) - 1
            if not os.path.exists(f"/proc/{unused}"):
                self.refused(*common, f"--server-pid={unused}", mentions=f"no process {unused}")
            p = run(*common, f"--server-pid={server.pid}", f"--out={self.out}")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertGreater(load_json(self.out)["benchmarks"][0]["server_threads"], 0)
        finally:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()

    def test_udp_serve_refuses_a_port_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            line = one_line_error(self, run("serve", "--model=epoll", "--transport=udp", f"--listen=127.0.0.1:{port}"))
            self.assertIn("Address already in use", line)

    def test_udp_target_is_probed(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        self.refused("load", f"--target=127.0.0.1:{port}", "--transport=udp", mentions="--target")
        with FaultyServer("corrupt") as tcp_only:  # answers TCP; nothing listens on its port for UDP
            self.refused("load", f"--target={tcp_only.target}", "--transport=udp,tcp", mentions="UDP")

    def test_google_benchmark_flags(self):
        self.refused("run", "--scenario=micro", "--benchmark_bogus=1", mentions="--benchmark_bogus")
        self.refused("run", "--scenario=micro", "--benchmark_filter=nomatch", mentions="--benchmark_filter")
        p = run("run", "--scenario=micro", "--model=threads", "--benchmark_filter=^spawn", "--duration=10ms",
                "--repetitions=1", f"--out={self.out}")
        self.assertEqual(p.returncode, 0, p.stderr)
        entries = load_json(self.out)["benchmarks"]
        self.assertTrue(entries)
        self.assertEqual({(e["params"]["primitive"], e["model"]) for e in entries}, {("spawn", "threads")})

    def test_flags_that_would_change_nothing(self):
        self.refused("run", "--scenario=echo", "--model=asio", "--items=5", mentions="--items")
        self.refused("run", "--scenario=echo", "--model=epoll", "--workers=0", mentions="--workers")
        self.refused("run", "--scenario=echo", "--model=epoll", "--workers=2", mentions="--workers")

    def test_durations(self):
        self.refused("run", "--scenario=echo", "--duration=1ns", mentions="--duration: must be between 10ms and 24h")
        self.refused("run", "--scenario=echo", "--duration=25h", mentions="--duration: must be between 10ms and 24h")
        self.refused("run", "--scenario=echo", "--warmup=-1s", mentions="--warmup")
        p = run("run", "--scenario=pipeline", "--model=sequential", "--items=2", "--download=uniform:1ms:1ms",
                "--warmup=0ms", "--repetitions=1", f"--out={self.out}")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_messages_name_their_flag(self):
        self.refused("run", "--scenario=echo", "--repetitions=-1", mentions="--repetitions")
        self.refused("load", "--target=127.0.0.1:99999", mentions="--target")
        self.refused("run", "--scenario=echo", "--connections=10,,20", mentions="--connections")

    def test_progress_median_is_the_files_median(self):
        p = run("run", "--scenario=pipeline", "--model=sequential", "--items=4", "--download=uniform:1ms:9ms",
                "--repetitions=2", "--redo=0", f"--out={self.out}")
        self.assertEqual(p.returncode, 0, p.stderr)
        printed = int(p.stderr.split(" ops/s (median of 2)")[0].split()[-1])
        rates = sorted(1e9 / e["real_time"] for e in load_json(self.out)["benchmarks"] if e["run_type"] == "iteration")
        self.assertEqual(printed, round((rates[0] + rates[1]) / 2))


if __name__ == "__main__":
    unittest.main()
