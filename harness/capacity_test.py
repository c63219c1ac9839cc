"""The capacity search and open-loop honesty against servers whose limits are known: a fake server
that answers at most R messages a second, and the load generator pinned beside a busy loop."""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

from harness.faulty_server import FaultyServer

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
HARNESS = os.path.join(WORKSPACE, "harness", "harness")
CPUS = sorted(os.sched_getaffinity(0))
RATE = 2000  # the fake server's capacity, msgs/s


def run(*args):
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def iterations(path):
    with open(path, encoding="utf-8") as f:
        return [b for b in json.load(f)["benchmarks"] if b["run_type"] == "iteration"]


def checks_missed_at_capacity(steps):
    """The rates of a search's checks at a capacity that missed (a check's step at 1.3 x C follows
    the one met at C)."""
    above = [k for k in range(1, len(steps)) if steps[k].get("check") and steps[k - 1].get("check")
             and steps[k - 1]["verdict"] == "met"]
    return [s["offered"] for k, s in enumerate(steps) if s.get("check") and k not in above and s["verdict"] != "met"]


def margins_below_missed_checks(steps):
    """Each check that missed at its capacity, with the margin the search went below it by: the 2%
    resolution, doubled at each such miss (capacity_search.h)."""
    return [(offered, 0.02 * 2**k) for k, offered in enumerate(checks_missed_at_capacity(steps))]


class Capacity(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.out = os.path.join(self.dir, "r.json")

    def search(self):
        with FaultyServer("limited", rate=RATE) as server:
            p = run("load", f"--target={server.target}", "--connections=4", "--capacity", "--slo=p99:300ms",
                    "--duration=1s", "--warmup=100ms", "--repetitions=1", f"--out={self.out}")
        self.assertEqual(p.returncode, 0, p.stderr)
        (e,) = iterations(self.out)
        return e

    @staticmethod
    def spared(e):
        """Whether a busy machine left the search alone: it can only lower a capacity (0.93 of the
        server's rate at least, but for the margins below checks that missed) or find the load
        generator without room (client-bound). Neither can noise undo, so a search it spoiled is run
        once more; every other property is checked on every search."""
        give = math.prod(1 - margin for _, margin in margins_below_missed_checks(e["steps"]))
        return e["capacity_msgs_per_second"] >= 0.93 * give * RATE and e["capacity_limit"] == "slo"

    def test_the_search_finds_a_known_capacity(self):
        e = self.search()
        self.check_search(e)
        if not self.spared(e):
            print(f"search spoiled: capacity {e['capacity_msgs_per_second']:.0f}, limit {e['capacity_limit']}; again",
                  file=sys.stderr)
            e = self.search()
            self.check_search(e)
        # Within the search's resolution (2%) and its 1% tolerance of the achieved rate. The windows are
        # the search's own length (1 s): the fake server is an M/D/1 queue, and near its capacity the
        # replies still queued when a window closes (against those queued when it opened) vary by
        # about ten messages, a share of a 400 ms window (760 messages) that the 1% tolerance did not
        # cover once in a while (1,870 achieved of 1,905 scheduled: the search settled one step low).
        self.assertTrue(self.spared(e), e["steps"])
        self.assertEqual(e["capacity_limit"], "slo")

    def check_search(self, e):
        self.assertEqual(e["params"]["capacity"], "p99:300ms")
        capacity = e["capacity_msgs_per_second"]
        # A check that missed at its capacity (the server fell behind a Poisson window near its
        # knee) sends the search below a margin: the bound below gives way by those margins, and no more.
        missed_at_c = margins_below_missed_checks(e["steps"])
        blurred_from = float("inf")
        for k, (offered, margin) in enumerate(missed_at_c):
            blurred_from = min(blurred_from, offered * (1 - margin))
            later = [o for o, _ in missed_at_c[k + 1:]] + [capacity]
            self.assertLessEqual(later[0], offered * (1 - margin) + 1e-6, e["steps"])  # searched below the margin
        self.assertLessEqual(capacity, 1.03 * RATE, e["steps"])  # noise cannot make the server faster
        # Noise the guard saw, and the load generator's own lateness it causes, may be said (a test
        # suite runs beside this one); so may a load generator without room, which noise causes too.
        # A check that a busy machine spoiled moves the capacity, up to three times, then says so.
        # A queue at the capacity (97% busy) wanders for seconds: its p50 may differ between the
        # thirds of a 1 s window, and "not steady" says so.
        allowed = ("noisy", "load generator late", "unchecked", "not steady", "client-bound")
        said = [w for w in e.get("warnings", []) if not w.startswith(allowed)]
        self.assertEqual(said, [], e.get("warnings"))
        unchecked = any(w.startswith("unchecked") for w in e.get("warnings", []))
        client_bound = any(w.startswith("client-bound") for w in e.get("warnings", []))
        self.assertEqual(e["capacity_limit"] == "client", client_bound)
        self.assertEqual(e["capacity_checked"], not unchecked and not client_bound)
        steps = e["steps"]
        self.assertEqual(steps[0]["offered"], 0)  # the closed-loop probe
        # 14 steps, and each of at most 3 checks 2 more and 7 for the search it resumes.
        self.assertLessEqual(len(steps), 14 + 3 * (2 + 7))
        latest = {}  # a rate measured again (a capacity's check) is judged by its latest verdict
        for s in steps[1:]:
            self.assertIn("msgs_per_second", s)
            latest[s["offered"]] = s
        for s in latest.values():
            if s.get("client_bound"):
                continue  # where the search stopped, whatever the server did
            met = s["verdict"] == "met"
            # Every rate up to it met; every one above missed, but for those the search set aside
            # as blurred (met once, within a margin below a check that missed).
            self.assertTrue(met if s["offered"] <= capacity else not met or s["offered"] >= blurred_from - 1e-6, s)
            if s["offered"] > 1.05 * RATE:
                self.assertIn("achieved", s["verdict"])  # it fell behind: the server's limit, not the SLO's
        # The figures of the entry are those of the window at the capacity.
        self.assertEqual(e["offered_rate"], capacity)
        # Kept up as the search defines it (scenarios/echo/slo.h KeptUp): within 1% of the rate the
        # windows held (Poisson: the offered give or take its square root), or within one message
        # of the window (a window counts whole round trips); the medians of the step's windows.
        window_s = e["iterations"] / e["msgs_per_second"]
        self.assertGreaterEqual(e["achieved_rate"], 0.99 * e["scheduled_rate"] - 1 / window_s)

    def test_open_loop_records_offered_and_achieved_and_says_when_it_fell_behind(self):
        with FaultyServer("limited", rate=RATE) as server:
            for rate, behind in ((RATE // 2, False), (2 * RATE, True)):
                with self.subTest(rate=rate):
                    # Behind at half the server's capacity is what a busy machine can make of a window
                    # by itself (a 5 ms stall near its close leaves 1% of it queued: a run here saw 988 of
                    # about 1,000); noise never makes a server at twice its capacity keep up. So a
                    # window behind where it should not be is run again, three in all.
                    for _ in range(3):
                        p = run("load", f"--target={server.target}", "--connections=4", f"--rate={rate}",
                                "--duration=500ms", "--warmup=100ms", "--repetitions=1", f"--out={self.out}")
                        self.assertEqual(p.returncode, 0, p.stderr)
                        (e,) = iterations(self.out)
                        if e["behind_schedule"] == behind:
                            break
                        print(f"behind at {rate} msgs/s: achieved {e['achieved_rate']:.0f}; again", file=sys.stderr)
                    self.assertEqual(e["offered_rate"], rate)
                    self.assertEqual(e["behind_schedule"], behind, e["achieved_rate"])
                    if behind:
                        self.assertLess(e["achieved_rate"], 1.1 * RATE)
                        self.assertTrue(any(w.startswith("behind schedule") for w in e["warnings"]), e)
                        self.assertIn("behind schedule", p.stdout)  # the summary says so
                    else:
                        # Poisson arrivals: the window held the rate give or take its square root
                        # (22 of 500 here; 5 of them allowed), and the server kept up with that.
                        window_s = e["iterations"] / e["msgs_per_second"]
                        self.assertAlmostEqual(e["scheduled_rate"], rate, delta=5 * (rate * window_s) ** 0.5 / window_s)
                        # Replies counted in the window are those scheduled in it, plus those queued
                        # when it opened, less those queued when it closed. Kept up bounds the second
                        # (behind_schedule, above); the first is the queue a stall before the window
                        # left (CI once saw 6 messages drain into a 500 ms window: 3 ms of this server's work).
                        self.assertLessEqual(e["achieved_rate"], e["scheduled_rate"] + 0.05 * rate)
                        self.assertEqual(e["arrivals"], "poisson")

    @unittest.skipIf(len(CPUS) < 2, "needs a CPU for the server and one for the load generator")
    def test_a_load_generator_starved_of_cpu_is_client_bound(self):
        server_cpu, client_cpu = CPUS[0], CPUS[-1]
        common = ("run", "--scenario=echo", "--model=epoll", "--connections=4", "--rate=2000", "--duration=1s",
                  "--warmup=100ms", "--repetitions=1", f"--server-cpus={server_cpu}", f"--client-cpus={client_cpu}",
                  "--redo=0", f"--out={self.out}")  # the neighbour is the subject: not measured again
        p = run(*common)
        self.assertEqual(p.returncode, 0, p.stderr)
        (e,) = iterations(self.out)
        self.assertFalse(e["client_bound"], e["client_cpu_utilization"])
        self.assertLess(e["client_cpu_utilization"], 0.9)
        busy = subprocess.Popen(["taskset", "-c", str(client_cpu), "sh", "-c", "while :; do :; done"])
        try:
            p = run(*common)
        finally:
            busy.kill()
            busy.wait()
        self.assertEqual(p.returncode, 0, p.stderr)
        (e,) = iterations(self.out)
        self.assertTrue(e["client_bound"], e["client_cpu_utilization"])
        self.assertTrue(any(w.startswith("client-bound") for w in e["warnings"]), e)

    def test_bad_capacity_flags_are_refused(self):
        for flags, mentions in ((["--capacity=p42:1ms"], "PERCENTILE:BOUND"),
                                (["--slo=p99"], "PERCENTILE:BOUND"),
                                (["--capacity", "--rate=100"], "--rate"),
                                (["--capacity=p99:soon"], "--capacity")):
            with self.subTest(flags=flags):
                p = run("run", "--scenario=echo", "--model=epoll", *flags, f"--out={self.out}")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertIn(mentions, p.stderr)


if __name__ == "__main__":
    unittest.main()
