"""//plots:ab with two fake harness binaries: the order it runs them in, the files it writes, and
its exit codes."""
import contextlib
import io
import json
import os
import stat
import tempfile
import time
import unittest

from plots import ab

FAKE = """#!/usr/bin/python3
import json, os, random, re, subprocess, sys, time
args = sys.argv[1:]
names = [f"echo/m{infix}/connections:{{i}}" for i in range(10)]  # 10 runs; run 0 is {factor}x slower in this build
if "--dry-run" in args:
    if not {lists}:  # a harness from before --dry-run
        print("harness: error: The following argument was not expected: --dry-run", file=sys.stderr)
        sys.exit(2)
    print("\\n".join(names))
    sys.exit(0)
if "--help" in args:
    print("  --redo INT  repetitions that may be measured again" if {redo} else "  --repetitions INT")
    sys.exit(0)
if {hang}:  # a harness that never ends, with a child of its own
    child = subprocess.Popen(["sleep", "60"])
    with open({log!r} + ".child", "w") as f:
        f.write(str(child.pid))
    time.sleep(60)
filters = [a.split("=", 1)[1] for a in args if a.startswith("--filter=")]
calls = len(open({log!r}).readlines()) if os.path.exists({log!r}) else 0
with open({log!r}, "a") as log:
    log.write({name!r} + " " + (filters[0] if filters else "-") + " " + str("--redo=0" in args) + "\\n")
noise = {{"steal_fraction": 0.3 if calls in {noisy} else 0.0, "noisy": calls in {noisy}}}
if any(a.startswith("--bogus") for a in args):
    print("harness: error: unknown flag --bogus", file=sys.stderr)
    sys.exit(2)
out = [a.split("=", 1)[1] for a in args if a.startswith("--out=")][0]
rng = random.Random(out)
entries = []
for i, name in enumerate(names):
    if filters and not re.search(filters[0], name):
        continue
    value = 1000.0 * (1 + 0.01 * rng.gauss(0, 1)) * ({factor} if i == 0 else 1)
    entries.append({{"name": name, "run_name": name, "run_type": "iteration", "status": "ok", "scenario": "echo",
                    "model": "m", "params": {{"connections": i}}, "repetition_index": 0, "real_time": value,
                    "noise": noise}})
with open(out, "w") as f:
    json.dump({{"context": {{"date": "now", "metrics": {{"real_time": {{"better": "lower", "compared": True,
               "display": {{"label": "time/op ns"}}}}}}}}, "benchmarks": entries}}, f)
"""


class Ab(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.log = os.path.join(self.dir, "order.log")

    def fake(self, name, factor=1.0, lists=True, infix="", hang=False, noisy=(), redo=False):
        """A harness build; its invocations numbered `noisy` (0-based, of both builds) report a neighbour."""
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(FAKE.format(log=self.log, name=name, factor=factor, lists=lists, infix=infix, hang=hang,
                                noisy=set(noisy) or "set()", redo=redo))
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    def ab(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = ab.main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def logged(self):
        with open(self.log, encoding="utf-8") as f:
            return [line.split()[:2] for line in f]

    def test_a_harness_that_cannot_list_its_runs_is_run_whole_round_by_round(self):
        base, new = self.fake("base", lists=False), self.fake("new", lists=False)
        code, out, err = self.ab(f"--base={base}", f"--new={new}", f"--out={self.dir}/r",
                                 "--", "--scenario=echo", "--repetitions=4")
        self.assertEqual(code, 0, out + err)
        # A discarded warm-up round (new first: it is round -1), then four alternating rounds.
        self.assertEqual([side for side, _ in self.logged()], ["new", "base"] + ["base", "new", "new", "base"] * 2)

    def test_a_build_against_itself_passes_and_the_builds_alternate_run_by_run(self):
        base, new = self.fake("base"), self.fake("new")
        code, out, err = self.ab(f"--base={base}", f"--new={new}", f"--out={self.dir}/r",
                                 "--", "--scenario=echo", "--repetitions=4")
        self.assertEqual(code, 0, out + err)
        log = self.logged()
        self.assertEqual(len(log), 2 * 10 * 5)  # both builds, 10 runs, a warm-up round and 4 rounds
        pairs = [log[i:i + 2] for i in range(0, len(log), 2)]
        for p, ((first, run_a), (second, run_b)) in enumerate(pairs):
            self.assertEqual(run_a, run_b)  # the two halves of a pair are side by side
            self.assertEqual({first, second}, {"base", "new"})
            r, k = p // 10 - 1, p % 10  # round (-1: the warm-up) and run
            self.assertEqual(first, "base" if (r + k) % 2 == 0 else "new")
        self.assertEqual(log[0][1], "^echo/m/connections:0$")
        for side in ("base", "new"):
            with open(os.path.join(self.dir, "r", side + ".json"), encoding="utf-8") as f:
                doc = json.load(f)
            reps = sorted({e["repetition_index"] for e in doc["benchmarks"]})
            self.assertEqual(reps, [0, 1, 2, 3])
        self.assertEqual(sorted(os.listdir(os.path.join(self.dir, "r"))), ["base.json", "new.json"])

    def test_a_pair_with_a_noisy_half_is_run_again_within_the_budget(self):
        # Invocation 4 (round 1, run 2, base first) had a neighbour: the pair is run again (6, 7); 12 (new,
        # round 1, run 5) too, but by then the one redo allowed is spent.
        base = self.fake("base", noisy=(4, 12), redo=True)
        new = self.fake("new", noisy=(4, 12), redo=True)
        code, out, err = self.ab(f"--base={base}", f"--new={new}", f"--out={self.dir}/r", "--warmup-rounds=0",
                                 "--", "--scenario=echo", "--repetitions=2", "--redo=1")
        self.assertEqual(code, 0, out + err)
        with open(self.log, encoding="utf-8") as f:
            log = [line.split() for line in f]
        self.assertEqual(len(log), 2 * 10 * 2 + 2 * 1)  # one pair run twice
        self.assertEqual([run for _, run, _ in log[4:8]], ["^echo/m/connections:2$"] * 4)  # the pair, again
        self.assertTrue(all(redo == "True" for _, _, redo in log))  # the harness redoes nothing itself
        self.assertIn("base: noisy neighbour: 30% of its CPUs taken; running the pair again (1 of 1 redos)", err)
        self.assertIn("1 pairs were run again", out)
        for side, kept in (("base", []), ("new", [("echo/m/connections:5", 0)])):  # 12: the budget was spent
            with open(os.path.join(self.dir, "r", side + ".json"), encoding="utf-8") as f:
                doc = json.load(f)
            noisy = [(e["name"], e["repetition_index"]) for e in doc["benchmarks"] if e["noise"]["noisy"]]
            self.assertEqual(noisy, kept)
            self.assertEqual(len(doc["benchmarks"]), 20)

    def test_a_slower_build_is_a_regression(self):
        base, new = self.fake("base"), self.fake("new", factor=1.15)
        code, out, _ = self.ab(f"--base={base}", f"--new={new}", f"--out={self.dir}/r")
        self.assertEqual(code, 1, out)
        flagged = [line for line in out.splitlines() if "REGRESSION" in line]
        self.assertEqual(len(flagged), 1, out)
        self.assertIn("echo/m/connections:0 ", flagged[0])

    def test_bad_input(self):
        base = self.fake("base")
        for argv, mentions in (
                ([f"--base={base}", f"--new={self.dir}/nope"], "--new: not an executable"),
                ([f"--base={base}", f"--new={base}", "--", "--out=x.json"], "ab writes"),
                ([f"--base={base}", f"--new={base}", "--", "--repetitions=0"], "--repetitions"),
                ([f"--base={base}", f"--new={base}", "--threshold=lots"], "--threshold"),
                ([f"--base={base}", f"--new={base}", f"--out={self.dir}/r", "--", "--bogus"], "unknown flag --bogus"),
                ([f"--base={base}"], "required")):
            with self.subTest(argv=argv):
                code, _, err = self.ab(*argv)
                self.assertEqual(code, 2, err)
                self.assertIn(mentions, err)
        # A sitting that ended in an error leaves no scratch files behind.
        self.assertEqual(os.listdir(os.path.join(self.dir, "r")), [])


    def test_a_harness_that_hangs_is_killed_with_its_children(self):
        base, new = self.fake("base"), self.fake("new", hang=True)
        start = time.monotonic()
        code, out, err = self.ab(f"--base={base}", f"--new={new}", f"--out={self.dir}/r", "--timeout=2",
                                 "--", "--repetitions=2")
        self.assertLess(time.monotonic() - start, 30)
        self.assertEqual(code, 1, out + err)
        self.assertIn("did not end within 2 s", err)
        self.assertEqual(os.listdir(os.path.join(self.dir, "r")), [])  # no scratch folder left
        with open(self.log + ".child", encoding="utf-8") as f:
            child = int(f.read())
        deadline = time.time() + 5
        while time.time() < deadline and os.path.exists(f"/proc/{child}"):
            time.sleep(0.05)
        self.assertFalse(os.path.exists(f"/proc/{child}"), "the hung harness's child was left running")

    def test_run_names_with_spaces(self):
        base, new = self.fake("base", infix="/reply:prefix:Echo => "), self.fake("new", infix="/reply:prefix:Echo => ")
        code, out, err = self.ab(f"--base={base}", f"--new={new}", f"--out={self.dir}/r", "--", "--repetitions=2")
        self.assertEqual(code, 0, out + err)
        self.assertEqual(len(self.logged()), 2 * 10 * 3)  # each run by itself: the filter matched one run
        self.assertIn("echo/m/reply:prefix:Echo => /connections:0", out)

    def test_outputs_that_are_not_folders_or_files(self):
        base = self.fake("base")
        victim = os.path.join(self.dir, "victim.txt")
        with open(victim, "w", encoding="utf-8") as f:
            f.write("precious\n")
        code, _, err = self.ab(f"--base={base}", f"--new={base}", f"--out={victim}")
        self.assertEqual(code, 2, err)
        self.assertIn("not a folder", err)
        os.makedirs(os.path.join(self.dir, "r"))
        os.symlink(victim, os.path.join(self.dir, "r", "new.json"))
        code, _, err = self.ab(f"--base={base}", f"--new={base}", f"--out={self.dir}/r", "--", "--repetitions=1")
        self.assertEqual(code, 2, err)
        self.assertIn("symbolic link", err)
        self.assertFalse(os.path.exists(self.log), "a harness ran before the output was checked")
        with open(victim, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertTrue(os.path.islink(os.path.join(self.dir, "r", "new.json")))


if __name__ == "__main__":
    unittest.main()
