"""The harness's command line end to end: exit codes, one-line errors, result files that validate
against the schema and that Google Benchmark's compare.py reads, serve + load."""
import json
import os
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness.faulty_server import FaultyServer
from results import validate

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")
COMPARE = "/usr/share/benchmark/compare.py"
TIMEOUT = 120


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


SCHEMA = load_json(validate.SCHEMA)


def run(*args):
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)


def children_of(pid):
    return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while we read
        return False


class UsageErrors(unittest.TestCase):
    def assert_usage_error(self, *args, mentions):
        p = run(*args)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("harness: error: "), lines[0])
        self.assertIn(mentions, lines[0])

    def test_unknown_model(self):
        self.assert_usage_error("run", "--model=nope", mentions="unknown model 'nope'")

    def test_unknown_scenario(self):
        self.assert_usage_error("run", "--scenario=nope", mentions="unknown scenario 'nope'")

    def test_bad_numbers(self):
        self.assert_usage_error("run", "--connections=abc", mentions="--connections")
        self.assert_usage_error("run", "--connections=10,,100", mentions="empty item")
        self.assert_usage_error("run", "--size=0", mentions="--size")
        self.assert_usage_error("run", "--repetitions=-1", mentions="-1")

    def test_bad_duration(self):
        self.assert_usage_error("run", "--duration=fast", mentions="not a duration")
        self.assert_usage_error("run", "--duration=0s", mentions="duration")

    def test_unknown_flag_and_profile(self):
        self.assert_usage_error("run", "--bogus", mentions="--bogus")
        self.assert_usage_error("run", "--profile=huge", mentions="huge")

    def test_unwritable_output(self):
        self.assert_usage_error("run", "--model=asio", "--out=/proc/nope/x.json", mentions="--out")

    def test_bad_target(self):
        self.assert_usage_error("load", "--target=localhost", mentions="HOST:PORT")

    def test_nothing_listens_at_the_target(self):
        with socket.socket() as s:  # a port that was free a moment ago
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.assert_usage_error("load", f"--target=127.0.0.1:{port}", "--duration=100ms",
                                mentions="cannot connect to 127.0.0.1")

    def test_sizes_out_of_range(self):
        self.assert_usage_error("run", "--scenario=echo", "--size=1G", mentions="--size")
        self.assert_usage_error("run", "--scenario=echo", "--size=0", mentions="--size")

    def test_more_connections_than_open_files(self):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        too_many = min(hard, 100000)  # past the limit, or past the largest count accepted
        self.assert_usage_error("run", "--scenario=echo", "--model=epoll", f"--connections={too_many}",
                                mentions="--connections")

    def test_bad_load_name(self):
        self.assert_usage_error("load", "--target=127.0.0.1:9", "--name=a/b", mentions="--name")

    def test_merge_of_what_is_not_a_results_file(self):
        path = os.path.join(tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR")), "x.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write("{}")
        self.assert_usage_error("merge", path, mentions="not a results file")
        self.assert_usage_error("merge", path + ".missing", mentions="cannot read")

    def test_stray_argument(self):
        self.assert_usage_error("run", "--scenario=micro", "bogus", mentions="'bogus'")

    def test_help(self):
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        for command in ("run", "list", "serve", "load"):
            self.assertIn(command, p.stdout)


class Runs(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def smoke(self, name, *extra):
        out = os.path.join(self.dir, name)
        p = run("run", "--profile=smoke", "--scenario=echo", "--connections=1,10", "--duration=200ms",
                "--warmup=50ms", f"--out={out}", *extra)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        return out, p

    def test_list_names_every_model(self):
        p = run("list")
        self.assertEqual(p.returncode, 0)
        for model in ("threads", "asio"):
            self.assertIn(model, p.stdout)

    def test_smoke_run_validates_and_every_byte_is_right(self):
        out, p = self.smoke("a.json", "--model=threads,asio")
        self.assertIsNone(validate.validate(out, SCHEMA))
        doc = load_json(out)
        names = {b["run_name"] for b in doc["benchmarks"]}
        self.assertEqual(names, {"echo/threads/connections:1/size:64", "echo/threads/connections:10/size:64",
                                 "echo/asio/connections:1/size:64/workers:1",
                                 "echo/asio/connections:10/size:64/workers:1"})
        for b in doc["benchmarks"]:
            self.assertEqual(b["status"], "ok", b)
            if b["run_type"] == "iteration":
                self.assertEqual(b["errors"], 0, b["name"])
                self.assertEqual(b["starved_connections"], 0, b["name"])
                self.assertGreater(b["msgs_per_second"], 0)
                self.assertEqual(b["latency_histogram"]["count"], b["iterations"])
                self.assertLessEqual(b["p50_us"], b["p99_us"])
                self.assertLessEqual(b["p99_us"], b["max_us"])
                self.assertGreater(b["server_peak_rss_bytes"], 0)
        aggregates = [b["aggregate_name"] for b in doc["benchmarks"] if b["run_type"] == "aggregate"]
        self.assertEqual(sorted(set(aggregates)), ["cv", "mean", "median", "stddev"])
        self.assertIn("msgs/s", p.stdout)  # the summary table

    def test_compare_py_reads_two_result_files(self):
        a, _ = self.smoke("a.json", "--model=asio")
        b, _ = self.smoke("b.json", "--model=asio")
        p = subprocess.run(["/usr/bin/python3", COMPARE, "benchmarks", a, b], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("echo/asio/connections:10/size:64/workers:1", p.stdout)

    def test_micro_runs_google_benchmark_with_its_own_flags_into_the_same_file(self):
        out = os.path.join(self.dir, "micro.json")
        p = run("run", "--scenario=echo,micro", "--model=threads", "--connections=1", "--duration=100ms",
                "--repetitions=2", "--benchmark_filter=^spawn/", "--benchmark_min_time=0.01", f"--out={out}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIsNone(validate.validate(out, SCHEMA))
        doc = load_json(out)
        micro = [b for b in doc["benchmarks"] if b["scenario"] == "micro"]
        names = {b["name"] for b in micro}
        # --model=threads became a filter on the model; --benchmark_filter then won (spawn only).
        self.assertIn("micro/spawn/threads", names)
        self.assertTrue(all(b["params"]["primitive"] == "spawn" for b in micro), names)
        self.assertIn("micro/spawn/threads_median", names)  # Google Benchmark's own aggregates
        self.assertEqual({b["scenario"] for b in doc["benchmarks"]}, {"echo", "micro"})  # one file, one context
        for b in micro:
            self.assertEqual(b["status"], "ok")
            # A spread is 0 where one repetition is left (the other noisy and its redo too).
            if b.get("aggregate_name") in ("stddev", "cv"):
                self.assertGreaterEqual(b["real_time"], 0)
            else:
                self.assertGreater(b["real_time"], 0)

    def test_pipeline_every_model_one_checksum_never_below_its_bound(self):
        out = os.path.join(self.dir, "pipeline.json")
        p = run("run", "--scenario=pipeline", "--items=6", "--download=uniform:1ms:3ms", "--parse=100us",
                "--workers=2", "--repetitions=1", f"--out={out}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIsNone(validate.validate(out, SCHEMA))
        entries = [b for b in load_json(out)["benchmarks"] if b["run_type"] == "iteration"]
        self.assertEqual({b["model"] for b in entries},
                         {"sequential", "threads", "thread_pool", "processes", "process_pool", "fibers", "asio",
                          "asio_coro"})
        self.assertEqual(len({b["checksum"] for b in entries}), 1)  # calibrated once for every process
        for b in entries:
            self.assertEqual(b["status"], "ok", b.get("error"))
            self.assertGreaterEqual(b["makespan_s"], b["lower_bound_s"], b["name"])
            self.assertEqual(len(b["timeline"]), 6)
            # The measuring process and at most one child per item (sampled: a short run may show fewer).
            self.assertLessEqual(b["peak_processes"], 7 if b["model"] == "processes" else 3)

    def test_serve_and_load(self):
        server = subprocess.Popen([HARNESS, "serve", "--model=asio", "--workers=2"], stdout=subprocess.PIPE,
                                  text=True, stdin=subprocess.DEVNULL)
        try:
            line = server.stdout.readline().strip()
            self.assertRegex(line, r"^listening on 127\.0\.0\.1:\d+$")
            target = line.split()[-1]
            out = os.path.join(self.dir, "load.json")
            p = run("load", f"--target={target}", f"--server-pid={server.pid}", "--connections=5",
                    "--size=100", "--duration=200ms", "--repetitions=2", f"--out={out}")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIsNone(validate.validate(out, SCHEMA))
            doc = load_json(out)
            first = doc["benchmarks"][0]
            self.assertEqual(first["name"], "echo/external/connections:5/size:100")
            self.assertEqual(first["params"]["target"], target)
            self.assertEqual(first["errors"], 0)
            self.assertEqual(first["server_threads"], 3)  # main thread + 2 workers
        finally:
            server.send_signal(signal.SIGTERM)
            self.assertEqual(server.wait(timeout=10), 0)
            server.stdout.close()

    def test_every_model_serves_checks_out_and_stops_on_sigterm_leaving_nothing(self):
        listed = run("list").stdout
        block = listed.split("models:")[1].split("parameters")[0].splitlines()
        # A model's line is indented 4 spaces; its variants, under it, deeper.
        models = [line.split()[0] for line in block if line.startswith("    ") and not line.startswith("     ")]
        self.assertGreaterEqual(len(models), 2)
        for model in models:
            with self.subTest(model=model):
                server = subprocess.Popen([HARNESS, "serve", f"--model={model}", "--workers=4"],
                                          stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
                try:
                    target = server.stdout.readline().split()[-1]
                    out = os.path.join(self.dir, f"{model}.json")
                    p = run("load", f"--target={target}", "--connections=4", "--size=300", "--duration=200ms",
                            "--warmup=50ms", "--repetitions=1", f"--out={out}")
                    self.assertEqual(p.returncode, 0, p.stderr)
                    entry = load_json(out)["benchmarks"][0]
                    self.assertEqual(entry["errors"], 0)
                    self.assertEqual(entry["starved_connections"], 0)
                    children = children_of(server.pid)
                finally:
                    server.send_signal(signal.SIGTERM)
                    code = server.wait(timeout=15)
                    server.stdout.close()
                self.assertEqual(code, 0)
                for child in children:  # process models: every worker is gone too
                    self.assertFalse(alive(child), f"{model}: child {child} outlived the server")

    def test_work_is_checked_and_named(self):
        for args, mentions in (
                (("run", "--model=epoll", "--work=cpu:normal:5us"), "--work: 'cpu:normal:5us'"),
                (("run", "--model=epoll", "--work=cpu:fixed:2s"), "at most 1s"),
                (("run", "--model=epoll", "--work="), "--work"),
                (("run", "--model=epoll", "--work=cpu:fixed:5us", "--transport=udp"), "TCP only"),
                (("run", "--model=epoll", "--work=cpu:fixed:5us", "--size=23"), "--size"),
                (("serve", "--model=io_uring", "--work=cpu:fixed:5us", "--transport=udp"), "TCP only"),
                (("serve", "--model=epoll", "--work=wait:exp"), "--work"),
                (("run", "--model=epoll", "--variant=blocking"), "give --work with a wait")):
            with self.subTest(args=args):
                p = run(*args, "--scenario=echo", "--dry-run") if args[0] == "run" else run(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertIn(mentions, p.stderr)
        p = run("run", "--scenario=echo", "--work=wait:fixed:1ms+cpu:exp:20us", "--connections=10", "--dry-run")
        self.assertEqual(p.returncode, 0, p.stderr)
        names = p.stdout.split()
        self.assertIn("echo/epoll/connections:10/size:64/work:cpu:exp:20us+wait:fixed:1ms", names)  # canonical
        self.assertEqual(len([n for n in names if "/work:cpu:exp:20us+wait:fixed:1ms" in n]), len(names))

    def test_work_costs_the_server_at_least_what_the_requests_carry(self):
        out = os.path.join(self.dir, "work.json")
        p = run("run", "--scenario=echo", "--model=threads,epoll", "--work=cpu:fixed:200us", "--connections=4",
                "--duration=300ms", "--warmup=50ms", "--repetitions=1", "--redo=0", f"--out={out}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIsNone(validate.validate(out, SCHEMA))
        entries = [b for b in load_json(out)["benchmarks"] if b["run_type"] == "iteration"]
        self.assertEqual(len(entries), 2)
        for e in entries:
            self.assertEqual(e["params"]["work"], "cpu:fixed:200us")
            self.assertEqual(e["errors"], 0)
            # Each request answered in the window cost 200 us of a server thread's CPU; the window may
            # have begun with each connection's request half done. Noise only adds.
            cpu_us = e["server_cpu_us_per_msg"] * e["iterations"]
            self.assertGreaterEqual(cpu_us, 200 * (e["iterations"] - 4), e["name"])

    def test_syscalls_cpu_split_and_profile_of_a_run(self):
        """--syscalls counts the server's calls in the window, every echo entry splits the CPU into user and
        kernel, --flamegraph profiles one extra window; the flags are refused where they cannot work."""
        for args, mentions in ((("--syscalls=yes",), "--syscalls: takes no value"),
                               (("--flamegraph", "--capacity"), "--flamegraph: not with --capacity")):
            with self.subTest(args=args):
                p = run("run", "--scenario=echo", "--model=epoll", "--dry-run", *args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertIn(mentions, p.stderr)
        p = run("load", "--target=127.0.0.1:9", "--syscalls", "--duration=100ms")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--server-pid", p.stderr)
        if os.geteuid() != 0:
            self.skipTest("perf's tracepoints need root")
        out = os.path.join(self.dir, "syscalls.json")
        p = run("run", "--scenario=echo", "--model=epoll,threads", "--connections=4", "--syscalls", "--flamegraph",
                "--duration=300ms", "--warmup=50ms", "--repetitions=1", "--redo=0", f"--out={out}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIsNone(validate.validate(out, SCHEMA))
        entries = [b for b in load_json(out)["benchmarks"] if b["run_type"] == "iteration"]
        self.assertEqual(len(entries), 2)
        for e in entries:
            kinds = dict(e["syscalls"]["per_msg"])
            # A round trip is a receive and a send for both models; the counters open a little after the
            # window and close a little after it (tens of round trips at most).
            self.assertGreaterEqual(kinds.get("recvfrom", 0) + kinds.get("sendto", 0), 1.9, e["name"])
            self.assertAlmostEqual(sum(kinds.values()), e["syscalls_per_msg"], places=6)
            self.assertAlmostEqual(e["server_user_us_per_msg"] + e["server_kernel_us_per_msg"],
                                   e["server_cpu_us_per_msg"], places=6)
            self.assertGreater(e["server_kernel_us_per_msg"], 0)
            # A closed loop never polls: the load generator's split is given, and adds up to its CPU.
            self.assertAlmostEqual(e["client_user_us_per_msg"] + e["client_kernel_us_per_msg"],
                                   e["client_cpu_us_per_msg"], places=6)
            profile = e["profile"]
            self.assertGreater(profile["samples"], 0)
            self.assertLessEqual(sum(n for _, n in profile["stacks"]), profile["samples"])
            self.assertTrue(any("sendto" in f or "recvfrom" in f for f, _, _ in profile["top"]["rows"]),
                            profile["top"]["rows"])
        tmp = os.environ.get("TMPDIR", "/tmp")
        self.assertEqual([n for n in os.listdir(tmp) if n.startswith("harness-perf-")], [])  # perf's folders gone

    def test_variants_and_reply_rules_are_checked_and_named(self):
        p = run("run", "--scenario=echo", "--model=epoll,io_uring,threads", "--variant=spin,single",
                "--connections=10", '--reply=prefix:Echo=>', "--dry-run")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split(), [
            "echo/epoll/connections:10/reply:prefix:Echo=>/size:64/variant:spin",
            "echo/io_uring/connections:10/reply:prefix:Echo=>/size:64/variant:spin/workers:1",
            "echo/io_uring/connections:10/reply:prefix:Echo=>/size:64/variant:single/workers:1",
            "echo/threads/connections:10/reply:prefix:Echo=>/size:64"])
        for args, message in (
                (("run", "--model=io_uring", "--variant=bogus"), "no chosen model has a variant 'bogus'"),
                (("run", "--model=threads", "--variant=spin"), "none has variants"),
                (("run", "--model=epoll", "--reply=lower"), "--reply: must be upper, same or prefix:TEXT"),
                (("run", "--model=epoll", "--reply=prefix:"), "--reply: a prefix is 1 to 256 bytes"),
                (("run", "--model=epoll", "--reply=prefix:Echo=>", "--size=16380"), "at most 16378 bytes"),
                (("run", "--model=epoll", "--transport=udp", "--reply=prefix:Echo=>", "--size=65505"),
                 "a UDP message is 16 to 65501 bytes"),
                (("serve", "--model=epoll", "--variant=multishot"),
                 "has the variants wait, spin, blocking, not 'multishot'"),
                (("serve", "--model=threads", "--variant=spin"), "has no variants"),
                (("serve", "--model=threads", "--reply=Same"), "must be upper, same or prefix:TEXT")):
            with self.subTest(args=args):
                p = run(*args, "--scenario=echo", "--dry-run") if args[0] == "run" else run(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_serve_refuses_a_port_in_use(self):
        with subprocess.Popen([HARNESS, "serve", "--model=threads"], stdout=subprocess.PIPE, text=True) as server:
            try:
                target = server.stdout.readline().split()[-1]
                p = run("serve", "--model=threads", f"--listen={target}")
                self.assertEqual(p.returncode, 2)
                self.assertIn("Address already in use", p.stderr)
            finally:
                server.terminate()
                server.wait(timeout=10)

    def test_a_crashing_server_is_a_failed_run_not_a_crash(self):
        # Kill the server the harness starts for the first run, mid-run: that run is failed with the
        # reason, the next run goes on with a server of its own, the file validates, the exit code
        # says a run failed, and no server is left behind.
        out = os.path.join(self.dir, "crash.json")
        proc = subprocess.Popen([HARNESS, "run", "--scenario=echo", "--model=threads", "--connections=2,3",
                                 "--duration=1500ms", "--warmup=0.1s", "--repetitions=1", "--redo=0", f"--out={out}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        victim = None
        while victim is None and time.time() < deadline:
            time.sleep(0.1)
            kids = children_of(proc.pid)
            victim = kids[0] if kids else None
        self.assertIsNotNone(victim, "the harness started no server")
        time.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        servers = {victim}
        while proc.poll() is None:
            servers.update(children_of(proc.pid))
            time.sleep(0.1)
        _, stderr = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 1, stderr)
        self.assertIsNone(validate.validate(out, SCHEMA))
        first, second = [e for e in load_json(out)["benchmarks"] if e["run_type"] == "iteration"]
        self.assertEqual(first["status"], "failed")
        self.assertIn("SIGKILL", first["error"])
        self.assertNotIn("msgs_per_second", first)
        self.assertEqual(second["status"], "ok", second.get("error"))
        self.assertEqual(second["params"]["connections"], 3)
        self.assertGreaterEqual(len(servers), 2)
        for pid in servers:
            self.assertFalse(alive(pid), f"server {pid} outlived the harness")


class Faults(unittest.TestCase):
    """Each fault ends in a failed run with its reason (never figures), exit 1, a valid file, and
    no process left behind."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def load_against(self, server, *extra):
        out = os.path.join(self.dir, f"{server.fault}.json")
        p = run("load", f"--target={server.target}", "--connections=4", "--size=100", "--warmup=100ms",
                "--repetitions=1", f"--out={out}", *extra)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIsNone(validate.validate(out, SCHEMA))
        entry = load_json(out)["benchmarks"][0]
        self.assertEqual(entry["status"], "failed")
        self.assertNotIn("msgs_per_second", entry)
        self.assertNotIn("p99_us", entry)
        return entry["error"]

    def test_a_server_that_never_replies(self):
        with FaultyServer("silent") as server:
            error = self.load_against(server, "--duration=300ms")
        self.assertIn("no round trip completed", error)

    def test_a_server_that_stops_answering_mid_run(self):
        with FaultyServer("stop", answer_for=0.5) as server:
            error = self.load_against(server, "--duration=2s")
        self.assertIn("server stopped answering", error)

    def test_a_server_that_corrupts_one_byte(self):
        with FaultyServer("corrupt") as server:
            error = self.load_against(server, "--duration=300ms")
        self.assertIn("1 wrong byte(s)", error)

    def test_interrupting_a_run_keeps_what_finished_and_leaves_nothing(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(signal=sig.name):
                out = os.path.join(self.dir, f"interrupted-{sig.name}.json")
                proc = subprocess.Popen([HARNESS, "run", "--scenario=echo", "--model=threads,asio",
                                         "--connections=2", "--duration=300ms", "--warmup=50ms", "--repetitions=2",
                                         f"--out={out}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        stdin=subprocess.DEVNULL)
                servers = set()
                deadline = time.time() + 30
                # Wait until the first run (two repetitions) is in the file, then stop mid-way.
                while time.time() < deadline:
                    servers.update(children_of(proc.pid))
                    if os.path.exists(out) and len(load_json(out)["benchmarks"]) >= 2:
                        break
                    time.sleep(0.05)
                time.sleep(0.2)
                servers.update(children_of(proc.pid))
                proc.send_signal(sig)
                _, stderr = proc.communicate(timeout=30)
                self.assertEqual(proc.returncode, 130, stderr)
                self.assertIn("interrupted", stderr)
                self.assertIsNone(validate.validate(out, SCHEMA))
                doc = load_json(out)
                finished = [b for b in doc["benchmarks"] if b["run_type"] == "iteration"]
                self.assertGreaterEqual(len(finished), 2)
                self.assertTrue(all(b["status"] == "ok" for b in finished), finished)
                self.assertTrue(servers, "the harness started no server")
                for pid in servers:
                    self.assertFalse(alive(pid), f"server {pid} outlived the harness")

    def test_interrupting_a_pipeline_ends_its_measuring_process_and_every_child(self):
        out = os.path.join(self.dir, "interrupted-pipeline.json")
        proc = subprocess.Popen([HARNESS, "run", "--scenario=pipeline", "--model=processes", "--items=50",
                                 "--download=uniform:3s:3s", "--repetitions=1", f"--out={out}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        family = set()
        deadline = time.time() + 20
        while time.time() < deadline and len(family) < 20:  # the measuring process and its children
            for child in children_of(proc.pid):
                family.add(child)
                family.update(children_of(child))
            time.sleep(0.05)
        self.assertGreaterEqual(len(family), 20, "no measuring process with children")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 130, stderr)
        self.assertIsNone(validate.validate(out, SCHEMA))
        deadline = time.time() + 5  # orphans are reaped by init once they die
        while time.time() < deadline and any(alive(pid) for pid in family):
            time.sleep(0.05)
        for pid in family:
            self.assertFalse(alive(pid), f"{pid} outlived the harness")


class Merge(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def test_two_concurrent_loads_merge_exactly(self):
        server = subprocess.Popen([HARNESS, "serve", "--model=epoll"], stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        try:
            target = server.stdout.readline().split()[-1]
            outs = [os.path.join(self.dir, f"load{i}.json") for i in range(2)]
            loads = [subprocess.Popen([HARNESS, "load", f"--target={target}", f"--connections={n}", "--size=64",
                                       "--duration=500ms", "--warmup=100ms", "--repetitions=2", f"--out={out}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for n, out in zip((3, 5), outs)]
            for p in loads:
                _, err = p.communicate(timeout=TIMEOUT)
                self.assertEqual(p.returncode, 0, err)
        finally:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()
        # Loads of 3 and 5 connections have different names; a second pair with equal names merges.
        a, b = (load_json(o) for o in outs)
        for e in a["benchmarks"] + b["benchmarks"]:
            if e["run_type"] == "iteration":  # the wall clock's window is the steady clock's, not a late wake-up's
                start, end = e["window_unix_s"]
                self.assertAlmostEqual(end - start, e["real_time"] * e["iterations"] / 1e9, delta=1e-5)
        rename = os.path.join(self.dir, "load1-as-3.json")
        for e in b["benchmarks"]:
            e["name"] = e["name"].replace("connections:5", "connections:3")
            e["run_name"] = e["run_name"].replace("connections:5", "connections:3")
        with open(rename, "w", encoding="utf-8") as f:
            json.dump(b, f)
        merged = os.path.join(self.dir, "merged.json")
        p = run("merge", outs[0], rename, f"--out={merged}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIsNone(validate.validate(merged, SCHEMA))
        doc = load_json(merged)
        self.assertEqual(len(doc["context"]["merged_from"]), 2)
        parts = {0: [], 1: []}
        for part in (a, b):
            for e in part["benchmarks"]:
                if e["run_type"] == "iteration":
                    parts[e["repetition_index"]].append(e)
        iterations = [e for e in doc["benchmarks"] if e["run_type"] == "iteration"]
        self.assertEqual(len(iterations), 2)
        for e in iterations:
            with self.subTest(repetition=e["repetition_index"]):
                pa, pb = parts[e["repetition_index"]]
                self.assertEqual(e["name"], "echo/external/connections:8/size:64")
                self.assertEqual(e["loads"], 2)
                self.assertEqual(e["iterations"], pa["iterations"] + pb["iterations"])
                self.assertEqual(e["connections"], 8)
                self.assertAlmostEqual(e["msgs_per_second"], pa["msgs_per_second"] + pb["msgs_per_second"])
                m = e["iterations"] / 8  # round trips a connection, over both loads
                self.assertAlmostEqual(e["fairness_random_order"], m / (m + 1 - 1 / 8))
                h = e["latency_histogram"]
                self.assertEqual(h["count"], pa["latency_histogram"]["count"] + pb["latency_histogram"]["count"])
                self.assertEqual(h["max"], max(pa["latency_histogram"]["max"], pb["latency_histogram"]["max"]))
                counts = {}
                for part in (pa, pb):
                    for lowest, n in part["latency_histogram"]["buckets"]:
                        counts[lowest] = counts.get(lowest, 0) + n
                self.assertEqual({lowest: n for lowest, n in h["buckets"]}, counts)  # bucket by bucket
                self.assertLessEqual(min(pa["p50_us"], pb["p50_us"]), e["p50_us"])
                self.assertLessEqual(e["p50_us"], max(pa["p50_us"], pb["p50_us"]))
                self.assertGreater(e["window_overlap"], 0.5)
        self.assertIn("echo/external/connections:8/size:64_median", {e["name"] for e in doc["benchmarks"]})

    def test_loads_that_did_not_run_together_do_not_merge(self):
        server = subprocess.Popen([HARNESS, "serve", "--model=epoll"], stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        try:
            target = server.stdout.readline().split()[-1]
            outs = []
            for i in range(2):  # one after the other
                out = os.path.join(self.dir, f"apart{i}.json")
                p = run("load", f"--target={target}", "--connections=2", "--duration=300ms", "--warmup=50ms",
                        "--repetitions=1", f"--out={out}")
                self.assertEqual(p.returncode, 0, p.stderr)
                outs.append(out)
        finally:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()
        merged = os.path.join(self.dir, "apart.json")
        p = run("merge", *outs, f"--out={merged}")
        self.assertEqual(p.returncode, 1, p.stderr)
        entry = load_json(merged)["benchmarks"][0]
        self.assertEqual(entry["status"], "failed")
        self.assertIn("did not run together", entry["error"])
        self.assertNotIn("msgs_per_second", entry)

    def test_runs_of_separate_harness_runs_do_not_merge(self):
        outs = []
        for i in range(2):
            out = os.path.join(self.dir, f"run{i}.json")
            p = run("run", "--scenario=pipeline", "--model=sequential", "--items=3", "--download=uniform:1ms:2ms",
                    "--repetitions=1", f"--out={out}")
            self.assertEqual(p.returncode, 0, p.stderr)
            outs.append(out)
        p = run("merge", *outs, f"--out={os.path.join(self.dir, 'm.json')}")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("only results of `load`", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
