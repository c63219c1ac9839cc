"""`harness slurm` on a real Slurm cluster: slurmctld, slurmd and munged from Debian, started here in a
temporary directory on free ports (every daemon stopped at the end, even on failure); one job with a
server task and two load tasks; the merged file checked. Skips, saying why, only where the daemons
cannot start (not root, packages missing), like netns_test. Also, without Slurm: a load that starts
5 s after its partner makes `merge` fail that repetition."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")
DAEMONS = ("slurmctld", "slurmd", "munged", "sbatch", "srun", "scontrol", "sinfo", "scancel", "runuser")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iterations(path):
    with open(path, encoding="utf-8") as f:
        return [b for b in json.load(f)["benchmarks"] if b["run_type"] == "iteration"]


class Cluster:
    """A Slurm cluster of two nodes on this host: munged (as the munge user: it refuses root), slurmctld,
    and a slurmd per node (`slurmd -N NAME`; Debian's Slurm runs several on one host), each node
    reached at 127.0.0.1 on a port of its own."""

    NODES = ("n1", "n2")

    def __init__(self):
        # Under /tmp, not the test's directory: munged runs as `munge` and must reach its files.
        self.dir = tempfile.mkdtemp(prefix="harness-slurm-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.logs_open = []
        self.env = dict(os.environ, SLURM_CONF=os.path.join(self.dir, "slurm.conf"))

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self):
        munge = self.path("munge")
        os.mkdir(munge, 0o711)  # munged wants its socket's directory searchable by every client
        key = os.path.join(munge, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        for p in (munge, key):
            shutil.chown(p, "munge", "munge")
        self.socket = os.path.join(munge, "munge.socket")
        self.spawn(["runuser", "-u", "munge", "--", "munged", "--foreground", f"--socket={self.socket}",
                    f"--key-file={key}", f"--log-file={munge}/munged.log", f"--pid-file={munge}/munged.pid",
                    f"--seed-file={munge}/munged.seed"], "munged")
        self.wait_for(lambda: os.path.exists(self.socket), "munged's socket")
        os.mkdir(self.path("state"))
        for node in self.NODES:
            os.mkdir(self.path(f"spool-{node}"))
        nodes = "".join(f"NodeName={node} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 "
                        f"Port={free_port()} CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN\n"
                        for node in self.NODES)
        with open(self.path("slurm.conf"), "w", encoding="utf-8") as f:
            f.write(f"""ClusterName=harness
SlurmctldHost={socket.gethostname()}(127.0.0.1)
SlurmctldPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={self.path("state")}
SlurmdSpoolDir={self.dir}/spool-%n
SlurmctldPidFile={self.path("slurmctld.pid")}
SlurmdPidFile={self.dir}/slurmd-%n.pid
SlurmctldLogFile={self.path("slurmctld.log")}
SlurmdLogFile={self.dir}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
{nodes}PartitionName=harness Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        self.spawn(["slurmctld", "-D", "-f", self.path("slurm.conf")], "slurmctld")
        for node in self.NODES:
            self.spawn(["slurmd", "-D", "-N", node, "-f", self.path("slurm.conf")], f"slurmd-{node}")
        self.wait_for(lambda: self.sinfo() == ["idle"] * len(self.NODES), "the nodes to come up", 60)

    def spawn(self, argv, name):
        log = open(self.path(f"{name}.stderr"), "w", encoding="utf-8")
        self.logs_open.append(log)
        self.procs.append((name, subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                                  env=self.env)))

    def sinfo(self):
        p = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, env=self.env,
                           timeout=10)
        return p.stdout.split()

    def wait_for(self, ready, what, seconds=20):
        deadline = time.monotonic() + seconds
        while not ready():
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) waiting for {what}: {self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} within {seconds} s: {self.logs()}")
            time.sleep(0.2)

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith((".stderr", ".log")):
                with open(self.path(name), encoding="utf-8", errors="replace") as f:
                    out.append(f"{name}: " + f.read()[-1500:])
        return "\n".join(out)

    def stop(self):
        try:
            subprocess.run(["scancel", "--full", "--user=root"], env=self.env, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass  # no controller to ask: the daemons are stopped below all the same
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs_open:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Slurm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("not root: slurmd and munged cannot be started here")
        missing = [d for d in DAEMONS if shutil.which(d) is None]
        if missing:
            raise unittest.SkipTest(f"not installed: {', '.join(missing)} (./setup.sh installs slurm-wlm and munge)")
        cls.cluster = Cluster()
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()

    def job(self, name, *flags):
        """Runs `harness slurm --wait` with 2 loads of 4 connections; returns (output dir, job log)."""
        out = os.path.join(self.cluster.dir, name)
        p = subprocess.run([HARNESS, "slurm", "--model=epoll", "--loads=2", "--connections=4", "--duration=1s",
                            "--warmup=200ms", "--repetitions=2", "--sbatch=--time=5", *flags, f"--out={out}",
                            "--wait"], capture_output=True, text=True, env=self.cluster.env, timeout=240,
                           stdin=subprocess.DEVNULL)
        log = ""
        for f in sorted(os.listdir(out)) if os.path.isdir(out) else []:
            if f.startswith("slurm-") or f == "server.out":
                with open(os.path.join(out, f), encoding="utf-8", errors="replace") as file:
                    log += f"{f}:\n{file.read()}"
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + log + self.cluster.logs())
        self.assertIn("#SBATCH --ntasks=3", p.stdout)  # what it submitted, printed first
        self.check_merged(out)
        return out, log

    def check_merged(self, out):
        parts = [iterations(os.path.join(out, f"load-{i}.json")) for i in range(2)]
        merged = iterations(os.path.join(out, "merged.json"))
        self.assertEqual(len(merged), 2)  # two repetitions, each the two loads combined
        for rep in merged:
            self.assertEqual(rep["status"], "ok", rep.get("error"))
            self.assertEqual(rep["model"], "epoll")
            self.assertEqual(rep["connections"], 8)
            self.assertEqual(rep["errors"], 0)
            i = rep["repetition_index"]
            mine = [next(e for e in part if e["repetition_index"] == i) for part in parts]
            self.assertEqual(rep["iterations"], sum(e["iterations"] for e in mine))
            self.assertEqual(rep["latency_histogram"]["count"], sum(e["latency_histogram"]["count"] for e in mine))
            # Started together: the windows overlap by most of their length.
            (a0, a1), (b0, b1) = (e["window_unix_s"] for e in mine)
            self.assertGreater(min(a1, b1) - max(a0, b0), 0.8 * (a1 - a0),
                               (mine[0]["window_unix_s"], mine[1]["window_unix_s"]))
            # The server sampled itself (`serve --usage`): its CPU per message of both loads.
            self.assertGreater(rep["server_cpu_us_per_msg"], 0)
            self.assertGreaterEqual(rep["server_threads"], 2)
        print("merged:", json.dumps([{k: r[k] for k in ("name", "iterations", "msgs_per_second", "p99_us",
                                                         "server_cpu_us_per_msg", "connections", "errors")}
                                     for r in merged]))

    def test_two_nodes_the_loads_apart_from_the_server(self):
        _, log = self.job("two-nodes")
        self.assertIn("server: n1 (127.0.0.1)", log)
        self.assertEqual(sorted(re.findall(r"^load (\d) on (\w+)$", log, re.M)), [("0", "n2"), ("1", "n2")], log)

    def test_one_node_shared_by_the_server_and_the_loads(self):
        # 3 tasks on one node of 2 CPUs: only with --overcommit.
        _, log = self.job("one-node", "--sbatch=--nodes=1", "--sbatch=--overcommit")
        self.assertEqual(len(re.findall(r"^load \d on (n1|n2)$", log, re.M)), 2, log)
        node = re.search(r"^server: (\w+) ", log, re.M).group(1)
        self.assertEqual(set(re.findall(r"^load \d on (\w+)$", log, re.M)), {node}, log)


class DryRun(unittest.TestCase):
    """`harness slurm --dry-run`: no cluster needed."""

    def test_writes_and_prints_a_script_bash_accepts_and_submits_nothing(self):
        d = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        p = subprocess.run([HARNESS, "slurm", "--model=io_uring", "--variant=fixed", "--loads=3", "--connections=50",
                            "--duration=2s", "--repetitions=5", "--reply=prefix:it's ", "--partition=batch",
                            "--sbatch=--time=10", "--sbatch=--exclusive", f"--out={d}/run", "--dry-run"],
                           capture_output=True, text=True, timeout=30, env=dict(os.environ, PATH="/usr/bin:/bin"))
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(f"{d}/run/job.sh", encoding="utf-8") as f:
            script = f.read()
        self.assertIn(script, p.stdout)  # printed as written
        self.assertIn("--dry-run: not submitted", p.stdout)
        for line in ("#SBATCH --ntasks=4", "#SBATCH --partition=batch", "#SBATCH --time=10", "#SBATCH --exclusive",
                     "loads=3"):
            self.assertIn(line + "\n", script)
        # Both sides get the reply rule, quoted for bash; the server its variant, the loads their load flags.
        self.assertEqual(script.count("'--reply=prefix:it'\\''s '"), 2, script)
        self.assertIn("serve --model='io_uring' --listen=0.0.0.0:0 --usage=\"$DIR/server-usage.jsonl\" "
                      "'--reply=prefix:it'\\''s ' '--variant=fixed'", script)
        self.assertIn("merge \"$DIR\"/load-*.json --server-usage=\"$DIR/server-usage.jsonl\"", script)
        self.assertIn("'--connections=50' '--duration=2s'", script)
        self.assertEqual(subprocess.run(["bash", "-n", f"{d}/run/job.sh"]).returncode, 0)
        self.assertFalse(any(f.endswith(".json") for f in os.listdir(f"{d}/run")))

    def test_bad_requests_are_refused_before_anything_is_written(self):
        d = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        for flags, message in (([], "--model is required"),
                               (["--model=nope"], "unknown model"),
                               (["--model=epoll", "--loads=0"], "--loads"),
                               (["--model=epoll", "--connections=many"], "--connections"),
                               (["--model=epoll", "--duration=long"], "--duration"),
                               (["--model=epoll", "--transport=sctp"], "--transport"),
                               (["--model=threads", "--transport=udp"], "has no UDP server"),
                               (["--model=epoll", "--variant=fast"], "--variant")):
            with self.subTest(flags=flags):
                p = subprocess.run([HARNESS, "slurm", *flags, f"--out={d}/x", "--dry-run"], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertFalse(os.path.exists(f"{d}/x"))


class ServerUsage(unittest.TestCase):
    """`serve --usage` and `merge --server-usage`: the server's CPU in a merge of loads from elsewhere."""

    def test_merged_loads_are_charged_with_the_servers_cpu(self):
        # epoll: one process; processes: a child per connection, found by the sampler and charged.
        for model, processes in (("epoll", 1), ("processes", 1 + 8)):
            with self.subTest(model=model):
                self.charged(model, processes)

    def charged(self, model, processes):
        d = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        server = subprocess.Popen([HARNESS, "serve", f"--model={model}", f"--usage={d}/usage.jsonl"],
                                  stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            target = server.stdout.readline().split()[-1]
            start = time.time() + 2
            # Both loads also sample the server themselves (--server-pid: possible here, on one host),
            # each dividing its CPU by their own messages only.
            loads = [subprocess.Popen([HARNESS, "load", f"--target={target}", "--connections=4", "--duration=1s",
                                       "--warmup=200ms", "--repetitions=2", f"--start-at={start:.3f}",
                                       f"--server-pid={server.pid}", f"--out={d}/{name}.json"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                      stdin=subprocess.DEVNULL)
                     for name in ("a", "b")]
            for load in loads:
                self.assertEqual(load.wait(timeout=60), 0, load.stderr.read())
        finally:
            server.terminate()
            server.wait(timeout=10)
        self.assertEqual(server.returncode, 0)
        merge = lambda usage, out: subprocess.run([HARNESS, "merge", f"{d}/a.json", f"{d}/b.json", *usage,
                                                   f"--out={d}/{out}"], capture_output=True, text=True, timeout=30)
        p = merge([f"--server-usage={d}/usage.jsonl"], "m.json")
        self.assertEqual(p.returncode, 0, p.stderr)
        parts = [iterations(f"{d}/{n}.json") for n in ("a", "b")]
        for rep in iterations(f"{d}/m.json"):
            self.assertEqual(rep["status"], "ok")
            mine = [next(e for e in part if e["repetition_index"] == rep["repetition_index"]) for part in parts]
            # The server's CPU over the window, per message of both loads: what load a measured of
            # the same CPU over the same window, spread over both loads' messages.
            expected = mine[0]["server_cpu_us_per_msg"] * mine[0]["iterations"] / rep["iterations"]
            self.assertGreater(rep["server_cpu_us_per_msg"], 0.75 * expected, (rep, expected))
            self.assertLess(rep["server_cpu_us_per_msg"], 1.25 * expected, (rep, expected))
            # The same high-water mark (the peak since it started), read by the end. A process per
            # connection sums the peaks of the children alive at the sample (up to 100 ms before
            # the end: it may hold another repetition's), so only one process is compared exactly.
            if processes == 1:
                self.assertAlmostEqual(rep["server_peak_rss_bytes"], mine[0]["server_peak_rss_bytes"],
                                       delta=0.1 * mine[0]["server_peak_rss_bytes"], msg=rep)
            else:
                self.assertGreater(rep["server_peak_rss_bytes"], 0, rep)
            self.assertGreaterEqual(rep["server_threads"], processes + 1)  # and the sampler
            self.assertEqual(rep["server_processes"], processes)
        # Without the log: no server figures (each load's own divided the CPU by its messages only).
        p = merge([], "plain.json")
        self.assertEqual(p.returncode, 0, p.stderr)
        for rep in iterations(f"{d}/plain.json"):
            self.assertNotIn("server_cpu_us_per_msg", rep)
        # A log that ends before the windows: no figures, and the entry says why.
        with open(f"{d}/usage.jsonl", encoding="utf-8") as f:
            first = f.readlines()[:3]
        with open(f"{d}/short.jsonl", "w", encoding="utf-8") as f:
            f.writelines(first)
        p = merge([f"--server-usage={d}/short.jsonl"], "short.json")
        self.assertEqual(p.returncode, 0, p.stderr)
        for rep in iterations(f"{d}/short.json"):
            self.assertNotIn("server_cpu_us_per_msg", rep)
            self.assertTrue(any("does not cover" in w for w in rep["warnings"]), rep["warnings"])
        # Not a usage log: exit 2, one line.
        with open(f"{d}/bad.jsonl", "w", encoding="utf-8") as f:
            f.write('{"unix_s": 1}\nnot json\n')
        p = merge([f"--server-usage={d}/bad.jsonl"], "bad.json")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--server-usage", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


class StartAt(unittest.TestCase):
    def test_a_load_five_seconds_late_fails_its_repetitions_in_merge(self):
        d = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        server = subprocess.Popen([HARNESS, "serve", "--model=epoll"], stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        try:
            target = server.stdout.readline().split()[-1]
            start = time.time() + 2
            loads = [subprocess.Popen([HARNESS, "load", f"--target={target}", "--connections=4", "--duration=1s",
                                       "--warmup=200ms", "--repetitions=2", f"--start-at={at:.3f}",
                                       f"--out={d}/{name}.json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, stdin=subprocess.DEVNULL)
                     for name, at in (("a", start), ("b", start), ("late", start + 5))]
            for load in loads:
                self.assertEqual(load.wait(timeout=60), 0, load.stderr.read())
        finally:
            server.terminate()
            server.wait(timeout=10)
        merge = lambda *names: subprocess.run([HARNESS, "merge", *[f"{d}/{n}.json" for n in names],
                                               f"--out={d}/{'-'.join(names)}.merged.json"],
                                              capture_output=True, text=True, timeout=30)
        together = merge("a", "b")
        self.assertEqual(together.returncode, 0, together.stderr)
        for rep in iterations(f"{d}/a-b.merged.json"):
            self.assertEqual(rep["status"], "ok")
            self.assertEqual(rep["connections"], 8)
        late = merge("a", "late")
        self.assertEqual(late.returncode, 1, late.stderr)
        reps = iterations(f"{d}/a-late.merged.json")
        self.assertEqual(len(reps), 2)
        for rep in reps:
            self.assertEqual(rep["status"], "failed")
            self.assertIn("did not run together", rep["error"])

    def test_bad_start_times_are_refused(self):
        for flags, message in ((["--start-at=soon"], "not a UNIX time"),
                               ([f"--start-at={time.time() + 3 * 86400:.0f}"], "more than a day from now"),
                               (["--start-every=1s"], "only with --start-at")):
            with self.subTest(flags=flags):
                p = subprocess.run([HARNESS, "load", "--target=127.0.0.1:9", *flags], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message, p.stderr)


if __name__ == "__main__":
    unittest.main()
