"""`harness doctor` on this machine: every check is there, with what the machine really has, and
bad input is one line and exit 2."""
import os
import re
import subprocess
import unittest

HARNESS = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness", "harness", "harness")


def doctor(*args):
    return subprocess.run([HARNESS, "doctor", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60)


class Doctor(unittest.TestCase):
    def test_each_check_says_what_the_machine_has_and_what_it_means(self):
        p = doctor("--seconds=1s")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        facts = {m.group(1): m.group(2) for m in (re.match(r"^(\w[\w-]*):\s+(.*)$", line) for line in lines) if m}
        self.assertEqual(list(facts),
                         ["cpus", "isolated", "governor", "idle", "steal", "others", "wake-up", "hand-off", "stalls",
                          "damon"])
        self.assertEqual(len(lines), 2 * len(facts))  # each fact, then what it means
        for line in lines[1::2]:
            self.assertTrue(line.startswith(" " * 11) and line.strip(), lines)
        cpus = sorted(os.sched_getaffinity(0))
        self.assertTrue(facts["cpus"].startswith(f"{len(cpus)} available to the harness"), facts["cpus"])
        with open("/sys/devices/system/cpu/isolated", encoding="utf-8") as f:
            isolated = f.read().strip()
        self.assertEqual(facts["isolated"], isolated or "none (isolcpus)")
        governor = "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_governor" % cpus[0]
        if os.path.exists(governor):
            with open(governor, encoding="utf-8") as f:
                self.assertIn(f.read().strip(), facts["governor"])
        else:
            self.assertEqual(facts["governor"], "not visible (no cpufreq in /sys)")
        driver, poll = "/sys/devices/system/cpu/cpuidle/current_driver", "/sys/module/haltpoll/parameters/guest_halt_poll_ns"
        if not os.path.exists(driver):
            self.assertEqual(facts["idle"], "not visible (no cpuidle in /sys)")
        else:
            with open(driver, encoding="utf-8") as f:
                said = "cpuidle " + f.read().strip()
            if os.path.exists(poll):
                with open(poll, encoding="utf-8") as f:
                    said += ", guest_halt_poll_ns " + f.read().strip()
            self.assertEqual(facts["idle"], said)
        steal = float(re.match(r"([0-9.]+)% of the CPUs over 1 s idle", facts["steal"]).group(1))
        others = float(re.match(r"([0-9.]+)% of the CPUs", facts["others"]).group(1))
        self.assertTrue(0 <= steal <= 100 and 0 <= others <= 100, (steal, others))
        late = re.match(r"a 50 us sleep ends (\d+) us late \(median\), (\d+) us \(p99\) with the default timer slack "
                        r"of (\d+) us; (\d+) us, (\d+) us \(max (\d+) us\) with 1 ns$", facts["wake-up"])
        self.assertIsNotNone(late, facts["wake-up"])
        median, p99, _, tight_median, tight_p99, tight_max = map(int, late.groups())
        self.assertLessEqual(median, p99)
        self.assertLessEqual(tight_median, tight_p99)
        self.assertLessEqual(tight_p99, tight_max)
        hand_off = re.match(r"([0-9.]+)% of the CPUs stolen over 1 s while CPUs (\d+) and (\d+) handed a byte back "
                            r"and forth \((\d+) round trips a second\)$", facts["hand-off"])
        self.assertIsNotNone(hand_off, facts["hand-off"])
        # Steal since boot on the CPUs under test, from /proc/stat: none after ten minutes up means the
        # hypervisor does not report it, and the meaning says so instead of "none seen".
        with open("/proc/stat", encoding="utf-8") as f:
            stolen = sum(int(line.split()[8]) for line in f
                         if line.startswith("cpu") and line[3] != " " and int(line.split()[0][3:]) in cpus)
        with open("/proc/uptime", encoding="utf-8") as f:
            uptime = float(f.read().split()[0])
        meaning = {m.group(1): lines[i + 1].strip() for i, m in enumerate(re.match(r"^(\w[\w-]*):", line)
                                                                           for line in lines) if m}
        self.assertEqual("does not report steal" in meaning["steal"], stolen == 0 and uptime >= 600, meaning["steal"])
        # Every CPU's spinning thread: its gaps, those over 1 ms among them, the longest, and what of
        # its lost share other tasks took (no more than it lost).
        spun = re.findall(r"CPU (\d+) lost ([0-9.]+)% in (\d+) gaps of 50 us or more \((\d+) over 1 ms, max ([0-9.]+) "
                          r"ms\), ([0-9.]+)% to other tasks", facts["stalls"])
        self.assertEqual(sorted(int(c) for c, *_ in spun), cpus, facts["stalls"])
        for _, lost, gaps, over, longest, others in spun:
            self.assertLessEqual(int(over), int(gaps))
            self.assertTrue(0 <= float(others) <= float(lost) <= 100, facts["stalls"])
            self.assertEqual(float(longest) > 0, int(gaps) > 0)
            self.assertEqual(float(longest) >= 1, int(over) > 0, facts["stalls"])
        self.assertTrue(facts["stalls"].endswith("every CPU spinning for 1 s"), facts["stalls"])
        self.assertTrue(0 <= float(hand_off.group(1)) <= 100, facts["hand-off"])
        self.assertEqual((int(hand_off.group(2)), int(hand_off.group(3))), (cpus[0], cpus[-1]))
        self.assertGreater(int(hand_off.group(4)), 0)  # every round trip came back
        admin = "/sys/kernel/mm/damon/admin/kdamonds"
        if not os.path.isdir(admin):
            self.assertEqual(facts["damon"], "not in this kernel (no /sys/kernel/mm/damon/admin)")
            return
        def state(n):
            with open(os.path.join(admin, n, "state"), encoding="utf-8") as f:
                return f.read().strip()

        on = sorted(n for n in os.listdir(admin) if os.path.isfile(os.path.join(admin, n, "state")) and state(n) == "on")
        if not on:
            self.assertEqual(facts["damon"], "off")
            return
        with open(os.path.join(admin, on[0], "pid"), encoding="utf-8") as f:
            pid = int(f.read())
        damon = re.match(r"kdamond\.(\d+) \(pid (\d+)\) samples \w+ every (\d+) ms: ([0-9.]+) ms of a CPU each time "
                         r"over the last \d+ s", facts["damon"])
        self.assertIsNotNone(damon, facts["damon"])
        self.assertEqual((damon.group(1), int(damon.group(2))), (on[0], pid))
        self.assertGreaterEqual(float(damon.group(4)), 0)

    @unittest.skipIf(len(os.sched_getaffinity(0)) < 2, "needs a CPU to spin on and one to compare")
    def test_a_process_spinning_on_one_cpu_is_named_and_that_cpu_found(self):
        cpu = max(os.sched_getaffinity(0))
        spinner = subprocess.Popen(["/usr/bin/python3", "-c", (
            "import os, time\n"
            "open('/proc/self/comm', 'w').write('neighbour')\n"
            f"os.sched_setaffinity(0, {{{cpu}}})\n"
            "end = time.time() + 60\n"
            "while time.time() < end: pass\n")])
        try:
            p = doctor("--seconds=1s")
        finally:
            spinner.kill()
            spinner.wait()
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("others:"))
        # Spinning all along, it took most of its CPU (less what the harness itself ran there).
        found = re.search(r"most by neighbour \(pid (\d+)\); with steal, CPU (\d+) lost most: ([0-9.]+)%$", lines[at])
        self.assertIsNotNone(found, lines[at])
        self.assertEqual((int(found.group(1)), int(found.group(2))), (spinner.pid, cpu))
        self.assertGreater(float(found.group(3)), 50)
        self.assertIn("stop them", lines[at + 1])

    def test_bad_input(self):
        for flag in ("--seconds=0", "--seconds=11m", "--seconds=soon", "--noise-threshold=0", "--noise-threshold=5"):
            with self.subTest(flag=flag):
                p = doctor(flag)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertIn(flag.split("=")[0], p.stderr)


if __name__ == "__main__":
    unittest.main()
