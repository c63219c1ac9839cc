"""What a user types or a neighbour does on the surfaces added for running across hosts (`slurm`,
`serve --usage`, `merge --server-usage`, `load --start-at`, `--capacity`/`--slo`): nothing runs that
the user did not ask for, no file outside the output is touched, nothing hangs and nothing aborts.
Each refusal is one line and exit 2."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")
TIMEOUT = 120


def run(*args, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    return subprocess.run([HARNESS, *args], capture_output=True, stdin=subprocess.DEVNULL, **kwargs)


def one_line_error(test, p, code=2):
    """The single line of a refusal (p from run(): bytes)."""
    stderr = p.stderr.decode("utf-8")  # itself UTF-8, whatever the input was
    test.assertEqual(p.returncode, code, stderr)
    lines = stderr.strip().splitlines()
    test.assertEqual(len(lines), 1, stderr)
    test.assertNotIn("terminate called", stderr)
    return lines[0]


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def iterations(path):
    return [e for e in load_json(path)["benchmarks"] if e["run_type"] == "iteration"]


class Fixture(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.victim = os.path.join(self.dir, "victim.txt")
        with open(self.victim, "w", encoding="utf-8") as f:
            f.write("precious\n")

    def assert_victim_untouched(self):
        with open(self.victim, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious\n")

    def fake_sbatch(self):
        """A PATH whose sbatch only leaves a mark: a test can tell whether anything was submitted."""
        bin_dir = os.path.join(self.dir, "bin")
        os.makedirs(bin_dir, exist_ok=True)
        self.submitted = os.path.join(self.dir, "submitted")
        path = os.path.join(bin_dir, "sbatch")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"#!/bin/sh\necho \"$@\" >> {self.submitted}\n")
        os.chmod(path, 0o755)
        return dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin")


class EmptyValues(Fixture):
    """`--opt=` with nothing, or an empty word, is refused by every subcommand before anything runs."""

    def test_every_subcommand(self):
        out = os.path.join(self.dir, "r.json")
        for args in (["run", "--out="], ["run", "--model=epoll", "--out", ""], ["load", "--target="],
                     ["serve", "--model=epoll", "--usage="], ["list", "--out="], ["merge", "--out=", "x.json"],
                     ["run", "--scenario=echo", "--capacity=", "--dry-run"], ["measure", "--spec="]):
            with self.subTest(args=args):
                line = one_line_error(self, run(*args))
                self.assertTrue("has no value" in line or "is empty" in line, line)

    def test_merge_does_not_overwrite_the_next_argument(self):
        a, b = os.path.join(self.dir, "A.json"), os.path.join(self.dir, "B.json")
        p = run("run", "--scenario=pipeline", "--model=sequential", "--items=2", "--download=uniform:1ms:1ms",
                "--repetitions=1", f"--out={a}")
        self.assertEqual(p.returncode, 0, p.stderr)
        shutil.copy(a, b)
        with open(b, "rb") as f:
            before = f.read()
        self.assertIn("--out=", one_line_error(self, run("merge", a, "--out=", b)))
        with open(b, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_slurm_submits_nothing(self):
        env = self.fake_sbatch()
        p = run("slurm", "--model=asio", f"--out={self.dir}/job", "--partition=", "--dry-run", env=env)
        self.assertIn("--partition=", one_line_error(self, p))
        self.assertFalse(os.path.exists(self.submitted))
        self.assertFalse(os.path.exists(f"{self.dir}/job"))


class NotUtf8(Fixture):
    """Bytes that are not UTF-8 never abort the harness: arguments are refused, and a neighbour's name
    lands in the results file as printable text."""

    def test_arguments_and_file_names(self):
        name = os.path.join(self.dir.encode(), b"lat\xe9.json")  # a Latin-1 name on disk
        with open(name, "w", encoding="utf-8") as f:
            f.write("{}")
        for args in ([b"run", b"--model=epoll", b"--reply=prefix:\xff"], [b"run", b"--out=" + name],
                     [b"merge", name], [b"slurm", b"--model=asio", b"--reply=prefix:\xff", b"--dry-run",
                                        f"--out={self.dir}/job".encode()]):
            with self.subTest(args=args):
                self.assertIn("not UTF-8", one_line_error(self, run(*args)))
        self.assertFalse(os.path.exists(f"{self.dir}/job"))

    def test_a_neighbour_named_with_any_bytes_does_not_crash_a_run(self):
        # Two processes named b\xffd, each spinning on one CPU under test (the server's and the load
        # generator's) at a raised priority until the run is over (at most a minute): the busiest
        # other processes of the repetition, whatever else runs beside the test (it runs alone:
        # "exclusive"), while the server and the load generator keep enough of their CPUs to measure.
        spinners = [subprocess.Popen(["/usr/bin/python3", "-c", (
            "import os, time\n"
            "open('/proc/self/comm', 'wb').write(b'b\\xffd')\n"
            f"os.sched_setaffinity(0, {{{cpu}}})\n"
            "os.setpriority(os.PRIO_PROCESS, 0, -5)\n"
            "end = time.time() + 60\n"
            "while time.time() < end: pass\n")]) for cpu in (0, 1)]
        try:
            time.sleep(0.3)
            out = os.path.join(self.dir, "r.json")
            p = run("run", "--scenario=echo", "--model=epoll", "--connections=10", "--duration=1s",
                    "--warmup=100ms", "--repetitions=1", "--redo=0", f"--out={out}")
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
        stderr = p.stderr.decode("utf-8")
        self.assertIn(p.returncode, (0, 1), stderr)  # measured (or failed as a run): never an abort
        self.assertNotIn("terminate called", stderr)
        (entry,) = iterations(out)
        self.assertIn("noise", entry)
        self.assertEqual(entry["noise"].get("busiest", "").split(" (pid")[0], "b\\xffd", entry["noise"])


class SlurmScript(Fixture):
    """What reaches job.sh is one word per value, or refused; the folder is new; sbatch gets no shell."""

    def test_shell_code_is_refused(self):
        for flag in ("--partition=b\necho INJECTED", "--sbatch=--time=1\necho INJECTED", f"--out={self.dir}/a b",
                     f"--out={self.dir}/it's", "--sbatch=echo", "--reply=prefix:\n"):
            with self.subTest(flag=flag):
                p = run("slurm", "--model=asio", flag, "--dry-run", *([] if "--out" in flag
                                                                       else [f"--out={self.dir}/job"]))
                one_line_error(self, p)
                self.assertEqual(sorted(os.listdir(self.dir)), ["victim.txt"])

    def test_quoted_values_stay_words_and_sbatch_runs_without_a_shell(self):
        env = self.fake_sbatch()
        job = os.path.join(self.dir, "job")
        p = run("slurm", "--model=epoll", "--reply=prefix:it's $(touch INJECTED) `id` ", f"--out={job}", env=env,
                cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.submitted, encoding="utf-8") as f:
            self.assertEqual(f.read().split(), ["--parsable", f"{job}/job.sh"])
        self.assertEqual(subprocess.run(["bash", "-n", f"{job}/job.sh"]).returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "INJECTED")))

    def test_a_used_folder_is_refused(self):
        used = os.path.join(self.dir, "used")
        os.mkdir(used)
        with open(os.path.join(used, "load-2.json"), "w", encoding="utf-8") as f:
            f.write("{}")  # a stale load of an earlier job: it would be merged into this one
        os.symlink(self.victim, os.path.join(used, "job.sh"))
        line = one_line_error(self, run("slurm", "--model=asio", f"--out={used}", "--dry-run"))
        self.assertIn("not empty", line)
        linked = os.path.join(self.dir, "linked")
        os.symlink(used, linked)
        self.assertIn("not a directory", one_line_error(self, run("slurm", "--model=asio", f"--out={linked}",
                                                                  "--dry-run")))
        self.assert_victim_untouched()

    def test_from_a_deleted_folder(self):
        gone = os.path.join(self.dir, "gone")
        os.mkdir(gone)
        p = subprocess.Popen(["sh", "-c", f"cd {gone} && rmdir {gone} && exec {HARNESS} slurm --model=asio "
                                          "--out=rel --dry-run"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        _, err = p.communicate(timeout=TIMEOUT)
        self.assertEqual(p.returncode, 2, err)
        self.assertEqual(len(err.decode().strip().splitlines()), 1, err)
        self.assertIn("the current folder no longer exists", err.decode())


class UsageOutput(Fixture):
    """serve --usage writes a regular file or refuses, at once: never through a link, never into a FIFO."""

    def test_links_and_fifos(self):
        link = os.path.join(self.dir, "link.jsonl")
        os.symlink(self.victim, link)
        fifo = os.path.join(self.dir, "fifo.jsonl")
        os.mkfifo(fifo)
        for path, kind in ((link, "symbolic link"), (fifo, "FIFO")):
            with self.subTest(kind=kind):
                start = time.monotonic()
                p = run("serve", "--model=epoll", f"--usage={path}", timeout=20)
                line = one_line_error(self, p)
                self.assertIn(kind, line)
                self.assertLess(time.monotonic() - start, 10)
                self.assertNotIn(b"listening on", p.stdout)
        self.assert_victim_untouched()


class UsageLogs(unittest.TestCase):
    """merge --server-usage checks the log it is given: sample by sample, and whose it is."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.log = os.path.join(cls.dir, "usage.jsonl")
        server = subprocess.Popen([HARNESS, "serve", "--model=epoll", f"--usage={cls.log}"], stdout=subprocess.PIPE,
                                  text=True, stdin=subprocess.DEVNULL)
        try:
            target = server.stdout.readline().split()[-1]
            start = time.time() + 1.5
            loads = []
            for name, repetitions in (("a", 2), ("b", 2), ("one", 1)):
                loads.append(subprocess.Popen(
                    [HARNESS, "load", f"--target={target}", "--connections=2", "--duration=400ms", "--warmup=100ms",
                     f"--repetitions={repetitions}", f"--start-at={start:.3f}", "--start-every=1500ms",
                     f"--out={cls.dir}/{name}.json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                    stdin=subprocess.DEVNULL))
            for load in loads:
                _, err = load.communicate(timeout=TIMEOUT)
                assert load.returncode == 0, err
        finally:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()
        # The log of another server, idle, that ran meanwhile elsewhere on the machine.
        cls.idle = os.path.join(cls.dir, "idle.jsonl")
        other = subprocess.Popen([HARNESS, "serve", "--model=epoll", f"--usage={cls.idle}"], stdout=subprocess.PIPE,
                                 text=True, stdin=subprocess.DEVNULL)
        other.stdout.readline()
        time.sleep(0.5)
        other.terminate()
        other.wait(timeout=10)
        other.stdout.close()
        with open(cls.log, encoding="utf-8") as f:
            cls.lines = [json.loads(line) for line in f]
        cls.windows = [e["window_unix_s"] for e in iterations(f"{cls.dir}/a.json")]

    def merge(self, *inputs, usage=None):
        out = os.path.join(self.dir, "merged.json")
        if os.path.exists(out):
            os.unlink(out)
        extra = [f"--server-usage={usage}"] if usage else []
        return run("merge", *inputs, *extra, f"--out={out}"), out

    def forged(self, name, edit):
        lines = json.loads(json.dumps(self.lines))
        if edit(lines[0]["server"], lines[1:]) == "drop the first line":
            lines = lines[1:]
        path = os.path.join(self.dir, name + ".jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(line) + "\n" for line in lines))
        return path

    def inside(self, samples):
        """The samples inside the first repetition's window."""
        start, end = self.windows[0]
        return [s for s in samples if start < s["unix_s"] < end]

    def test_the_real_log_charges_the_server(self):
        p, out = self.merge(f"{self.dir}/a.json", f"{self.dir}/b.json", usage=self.log)
        self.assertEqual(p.returncode, 0, p.stderr)
        for rep in iterations(out):
            self.assertGreater(rep["server_cpu_us_per_msg"], 0)
        self.assertEqual(self.lines[0]["server"]["model"], "epoll")

    def test_impossible_logs_are_refused(self):
        def each(key, value):
            def edit(_, samples):
                for s in samples:
                    s[key] = value(s[key]) if callable(value) else value
            return edit

        def middle(change):
            def edit(_, samples):
                change(self.inside(samples)[len(self.inside(samples)) // 2], samples)
            return edit

        def jump_from(seconds):
            def change(sample, samples):
                for s in samples[samples.index(sample):]:
                    s["cpu_ns"] += seconds * 1e9
            return change

        def later(sample, samples):
            for s in samples[samples.index(sample):]:
                s["unix_s"] += 1e6

        def anonymous(server, samples):
            return "drop the first line"  # a log from before logs named their server

        def dip(sample, samples):
            for s in samples:
                s["cpu_ns"] += 1e9  # a server that had used a second already
            sample["cpu_ns"] -= 0.5e9

        cases = {
            "negative_cpu": (each("cpu_ns", lambda v: -v), "not positive"),
            "zero_cpu": (each("cpu_ns", 0), "not positive"),
            "cpu_1e300": (middle(lambda s, _: s.update(cpu_ns=1e300)), "CPU grew"),
            "cpu_1000s_in_100ms": (middle(jump_from(1000)), "CPU grew"),
            "dip_half_a_second": (middle(dip), "CPU went down"),
            "negative_rss": (each("peak_rss_bytes", -1), "not a count"),
            "negative_threads": (each("threads", -1), "not a count"),
            "huge_rss": (each("peak_rss_bytes", 2 ** 64 - 1), "more than any server"),
            "a_million_seconds_apart": (middle(later), "after the previous sample"),
            "nameless": (anonymous, "does not name the server"),
        }
        for name, (edit, mentions) in cases.items():
            with self.subTest(name):
                p, out = self.merge(f"{self.dir}/a.json", f"{self.dir}/b.json", usage=self.forged(name, edit))
                line = one_line_error(self, p)
                self.assertIn("--server-usage", line)
                self.assertIn(mentions, line)
                self.assertFalse(os.path.exists(out))

    def test_the_log_of_another_server_is_refused(self):
        p, out = self.merge(f"{self.dir}/a.json", f"{self.dir}/b.json", usage=self.idle)
        self.assertIn("not of the server", one_line_error(self, p))
        self.assertFalse(os.path.exists(out))

    def test_merge_refusals(self):
        a = load_json(f"{self.dir}/a.json")

        def variant(name, edit):
            doc = json.loads(json.dumps(a if name != "b10" else load_json(f"{self.dir}/b.json")))
            for e in doc["benchmarks"]:
                if e["run_type"] == "iteration":
                    edit(e)
            path = os.path.join(self.dir, name + ".json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            return path

        def shifted(e):
            e["window_unix_s"] = [w + 1e-6 for w in e["window_unix_s"]]

        cases = {
            "unequal repetitions": (f"{self.dir}/one.json", "repetitions"),
            "a copy with its windows moved 1 us": (variant("shifted", shifted), "same load"),
            "ten times the rate": (variant("b10", lambda e: e.update(msgs_per_second=10 * e["msgs_per_second"])),
                                   "msgs_per_second"),
            "a sum of 2^64-1": (variant("sum", lambda e: e["latency_histogram"].update(sum=2 ** 64 - 1)),
                                "latency histogram: sum"),
        }
        for name, (other, mentions) in cases.items():
            with self.subTest(name):
                p, out = self.merge(f"{self.dir}/a.json", other)
                self.assertIn(mentions, one_line_error(self, p))
                self.assertFalse(os.path.exists(out))


class Smaller(Fixture):
    def test_capacity_and_slo(self):
        line = one_line_error(self, run("run", "--scenario=echo", "--model=epoll", "--capacity=p99:2ms",
                                        "--slo=p50:1ms", "--dry-run"))
        self.assertIn("--slo", line)
        p = run("run", "--scenario=echo", "--model=epoll", "--connections=1", "--capacity=p99:1999999ns", "--dry-run")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().split(), ["echo/epoll/capacity:p99:1.999999ms/connections:1/size:64"])

    def test_a_start_in_the_past(self):
        line = one_line_error(self, run("load", "--target=127.0.0.1:9", f"--start-at={time.time() - 22 * 3600:.0f}"))
        self.assertIn("--start-at", line)
        self.assertIn("ago", line)

    def test_a_newline_in_a_value_stays_on_one_line(self):
        self.assertIn("a\\nb", one_line_error(self, run("run", "--model=a\nb")))


if __name__ == "__main__":
    unittest.main()
