"""The plots and the comparison, on a fixture written by a real (small) harness run."""
import contextlib
import copy
import io
import json
import math
import os
import sys
import tempfile
import unittest

import numpy as np

from plots import compare, cost_figures, echo_figures, figures, findings, queueing, report, results, summary_numbers

WORKSPACE = os.path.join(os.environ.get("TEST_SRCDIR", "."), "concurrency_harness")
FIXTURE = os.path.join(WORKSPACE, "plots", "testdata", "fixture.json")
# The declaration a harness writes for real_time (context.metrics), for documents made up here.
REAL_TIME = {"metrics": {"real_time": {"unit": "ns", "meaning": "wall time per operation", "better": "lower",
                                       "aggregate": "statistics", "merge": "recompute", "minimum": 0,
                                       "display": {"label": "time/op ns", "format": ".1f", "scale": 1},
                                       "always": True, "compared": True}}}


def run_main(main, argv):
    """Runs a main(); returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def write_doc(name, doc):
    """Writes `doc` as NAME in a fresh temporary directory; returns its path."""
    path = os.path.join(tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR")), name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return path


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        # --over-time: the fixture's windows were steady, so the figure is drawn for a run named.
        cls.code, cls.stdout, cls.stderr = run_main(report.main, [FIXTURE, "--out", cls.out, "--over-time", "echo/"])

    def test_every_figure_is_a_non_empty_png_and_svg(self):
        self.assertEqual(self.code, 0, self.stderr)
        for name, _ in figures.FIGURES:
            png = os.path.join(self.out, name + ".png")
            with open(png, "rb") as f:
                data = f.read()
            self.assertTrue(data.startswith(b"\x89PNG\r\n\x1a\n"), name)
            self.assertGreater(len(data), 5000, name)
            self.assertGreater(os.path.getsize(os.path.join(self.out, name + ".svg")), 1000, name)

    def test_a_link_planted_among_the_outputs_is_refused_not_followed(self):
        out = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        victim = os.path.join(out, "victim.txt")
        with open(victim, "w", encoding="utf-8") as f:
            f.write("precious\n")
        for name in ("echo_throughput.png", "summary.md"):
            link = os.path.join(out, name)
            os.symlink(victim, link)
            code, _, err = run_main(report.main, [FIXTURE, "--out", out])
            self.assertEqual(code, 2, err)
            self.assertIn(f"{name} is a symbolic link", err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            os.unlink(link)
        with open(victim, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious\n")

    def test_report_is_self_contained_with_figures_tables_and_context(self):
        with open(os.path.join(self.out, "report.html"), encoding="utf-8") as f:
            page = f.read()
        self.assertEqual(page.count("data:image/png;base64,"), len(figures.FIGURES))
        self.assertNotIn("src='http", page)
        self.assertIn("echo/asio/connections:10/size:64/workers:1", page)
        self.assertIn("micro/", page)
        self.assertIn("git_commit", page)

    def test_summary_has_a_table_per_scenario(self):
        with open(os.path.join(self.out, "summary.md"), encoding="utf-8") as f:
            summary = f.read()
        self.assertIn("### echo", summary)
        self.assertIn("### micro", summary)
        self.assertIn("### pipeline", summary)
        self.assertIn("| echo/threads/connections:1/size:64 |", summary)
        self.assertIn("### memory per connection", summary)  # the slope of server RSS over connections
        self.assertIn("### capacity", summary)
        self.assertIn("### pool size", summary)

    def test_merged_histogram_percentiles_match_the_harness(self):
        # One repetition's histogram, read back in Python, gives the p50 and p99 the C++ side wrote.
        doc = results.load(FIXTURE)
        for entry in results.iterations(doc, "echo"):
            p50, p99 = results.histogram_percentiles([entry["latency_histogram"]], [50, 99])
            self.assertAlmostEqual(p50, entry["p50_us"], places=6, msg=entry["name"])
            self.assertAlmostEqual(p99, entry["p99_us"], places=6, msg=entry["name"])


class BadInput(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def assert_rejected(self, main, argv, mentions):
        code, _, err = run_main(main, argv)
        self.assertEqual(code, 2)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(mentions, err)
        self.assertNotIn("Traceback", err)

    def test_missing_file(self):
        self.assert_rejected(report.main, [os.path.join(self.dir, "nope.json")], "no such file")
        self.assert_rejected(compare.main, [FIXTURE, os.path.join(self.dir, "nope.json")], "no such file")

    def test_not_json(self):
        path = self.write("bad.json", "this is not json")
        self.assert_rejected(report.main, [path], "not JSON")
        self.assert_rejected(compare.main, [path, FIXTURE], "not JSON")

    def test_json_of_another_shape(self):
        path = self.write("other.json", json.dumps({"hello": [1, 2, 3]}))
        self.assert_rejected(report.main, [path], "not a harness result file")
        self.assert_rejected(compare.main, [FIXTURE, path], "not a harness result file")

    def test_a_file_without_declarations_does_not_compare(self):
        with open(FIXTURE, encoding="utf-8") as f:
            doc = json.load(f)
        del doc["context"]["metrics"]
        path = self.write("old.json", json.dumps(doc))
        self.assert_rejected(compare.main, [path, path], "context.metrics")

    def test_bad_threshold(self):
        self.assert_rejected(compare.main, [FIXTURE, FIXTURE, "--threshold=lots"], "--threshold")

    def hostile_copy(self, name, edit):
        """The fixture with `edit(first echo iteration, document)` applied, as raw text."""
        with open(FIXTURE, encoding="utf-8") as f:
            doc = json.load(f)
        entry = next(b for b in doc["benchmarks"] if b.get("scenario") == "echo" and b["run_type"] == "iteration")
        edit(entry, doc)
        return self.write(name, json.dumps(doc))

    def test_impossible_figures_are_refused_by_plots_and_compare(self):
        def bucket(value):
            def edit(e, _):
                e["latency_histogram"]["buckets"][0][1] = value
            return edit

        def set_key(key, value):
            def edit(e, _):
                e[key] = value
            return edit

        def drop(key):
            def edit(e, _):
                del e[key]
            return edit

        cases = {
            "negative bucket count": (bucket(-5), "impossible"),
            "bucket count 2^64-1": (bucket(2 ** 64 - 1), "impossible"),
            "count disagreeing with buckets": (bucket(7), "but its buckets hold"),
            "NaN": (set_key("msgs_per_second", float("nan")), "NaN is not a figure"),
            "infinity": (set_key("p99_us", float("inf")), "Infinity is not a figure"),
            "negative rate": (set_key("msgs_per_second", -4999968573), "which no run gives"),
            "no run_name": (drop("run_name"), "no run_name"),
            "params not an object": (set_key("params", [1]), "params"),
            "no params": (drop("params"), "no params"),
        }
        for label, (edit, mentions) in cases.items():
            with self.subTest(label):
                path = self.hostile_copy(label.replace(" ", "_") + ".json", edit)
                self.assert_rejected(report.main, [path, "--out", self.dir], mentions)
                self.assert_rejected(compare.main, [FIXTURE, path], mentions)
                self.assert_rejected(compare.main, [path, FIXTURE], mentions)

    def test_a_directory_is_refused(self):
        self.assert_rejected(report.main, [self.dir], "directory")


class Compare(unittest.TestCase):
    def slowed_copy(self, factor):
        """The fixture with every repetition `factor` times worse in every metric it declares compared."""
        doc = results.load(FIXTURE)
        slowed = copy.deepcopy(doc)
        compared = {k: d["better"] for k, d in results.declarations(doc).items() if d["compared"]}
        self.assertIn("msgs_per_second", compared)
        for b in slowed["benchmarks"]:
            if b.get("run_type") != "iteration":
                continue
            for key, better in compared.items():
                if key in b:
                    b[key] = b[key] * factor if better == "lower" else b[key] / factor
        return write_doc("slowed.json", slowed)

    def test_a_file_against_itself_finds_nothing(self):
        code, out, _ = run_main(compare.main, [FIXTURE, FIXTURE])
        self.assertEqual(code, 0)
        self.assertNotIn("REGRESSION", out)

    def test_finds_a_thirty_percent_slowdown_in_each_direction(self):
        code, out, _ = run_main(compare.main, [FIXTURE, self.slowed_copy(1.3), "--format=json"])
        self.assertEqual(code, 1)
        rows = json.loads(out[:out.rindex("]") + 1])
        verdicts = {}  # metric -> the verdicts of the echo runs
        for r in rows:
            if r["run"].startswith("echo/"):
                verdicts.setdefault(r["metric"], set()).add(r["verdict"])
        self.assertIn("REGRESSION", verdicts["msgs/s"])   # lower throughput is worse
        self.assertIn("REGRESSION", verdicts["p99 us"])   # higher latency is worse
        self.assertIn("REGRESSION", verdicts["time/op ns"])
        self.assertNotIn("improvement", set().union(*verdicts.values()))
        # Three repetitions a side are tested: the steadier micro-benchmarks are found too.
        self.assertIn("REGRESSION", {r["verdict"] for r in rows if r["run"].startswith("micro/")})

    def test_repetitions_the_noise_guard_excluded_are_not_compared_plotted_or_tabled(self):
        # Beside every echo run's repetitions, one at a tenth of their throughput, excluded as noisy
        # (as the harness writes it after measuring it again): nothing changes.
        doc = results.load(FIXTURE)
        noisy = copy.deepcopy(doc)
        extra = []
        for b in noisy["benchmarks"]:
            if b.get("run_type") == "iteration" and b.get("scenario") == "echo" and b.get("repetition_index") == 0:
                e = copy.deepcopy(b)
                e["repetition_index"] = 99
                e["msgs_per_second"] = b["msgs_per_second"] / 10
                e["real_time"] = b["real_time"] * 10
                e["excluded"] = "noisy neighbour: 40% of the CPUs under test taken (steal 40%, other processes 0%)"
                extra.append(e)
        self.assertTrue(extra)
        noisy["benchmarks"] += extra
        code, out, _ = run_main(compare.main, [FIXTURE, write_doc("noisy.json", noisy)])
        self.assertEqual(code, 0, out)
        self.assertNotIn("REGRESSION", out)
        self.assertEqual(len(results.iterations(noisy)), len(results.iterations(doc)))
        self.assertEqual(results.medians(noisy, "echo"), results.medians(doc, "echo"))
        # A run whose every repetition was noisy keeps them (its aggregates are over them, saying so).
        run = extra[0]["run_name"]
        for b in noisy["benchmarks"]:
            if b.get("run_name") == run and b.get("run_type") == "iteration":
                b["excluded"] = "noisy neighbour"
        every = [b for b in doc["benchmarks"] if b.get("run_name") == run and b.get("run_type") == "iteration"
                 and b.get("status", "ok") == "ok"]
        self.assertEqual(len([b for b in results.iterations(noisy) if b["run_name"] == run]), len(every) + 1)

    def test_an_improvement_is_not_a_regression(self):
        code, out, _ = run_main(compare.main, [self.slowed_copy(1.3), FIXTURE])
        self.assertEqual(code, 0)
        self.assertIn("improvement", out)

    def test_a_change_under_the_threshold_passes(self):
        code, _, _ = run_main(compare.main, [FIXTURE, self.slowed_copy(1.03), "--threshold=5%"])
        self.assertEqual(code, 0)

    def test_a_change_from_zero_is_reported_in_its_direction(self):
        with open(FIXTURE, encoding="utf-8") as f:
            doc = json.load(f)
        zero, huge = copy.deepcopy(doc), copy.deepcopy(doc)
        for d, value in ((zero, 0), (huge, 1e6)):
            for b in d["benchmarks"]:
                if "server_cpu_us_per_msg" in b and b["run_type"] == "iteration":
                    b["server_cpu_us_per_msg"] = value * (1 + 0.01 * b["repetition_index"])
        code, out, _ = run_main(compare.main, [write_doc("zero.json", zero), write_doc("huge.json", huge)])
        rows = [line for line in out.splitlines() if "srv cpu us" in line]
        self.assertTrue(rows)
        self.assertTrue(all("from 0" in line for line in rows), rows)
        self.assertNotIn("same", " ".join(rows))
        self.assertEqual(code, 1 if any("REGRESSION" in line for line in rows) else 0)
        self.assertTrue(any("REGRESSION" in line or "too few" in line for line in rows))

    def test_too_few_repetitions_to_test_still_report_a_change_past_the_threshold_everywhere(self):
        slowed = results.load(self.slowed_copy(1.3))
        base = results.load(FIXTURE)
        for doc in (slowed, base):  # two repetitions a side: no test can run
            doc["benchmarks"] = [b for b in doc["benchmarks"] if b.get("repetition_index", 0) < 2]
        code, out, _ = run_main(compare.main, [write_doc("base2.json", base), write_doc("slow2.json", slowed)])
        self.assertEqual(code, 3, out)
        self.assertIn("REGRESSION?", out)
        self.assertNotIn("REGRESSION ", out.replace("REGRESSION?", ""))
        self.assertIn("untested regressions", out)

    def test_markdown_format(self):
        code, out, _ = run_main(compare.main, [FIXTURE, FIXTURE, "--format=md"])
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("| run | metric |"))


class Statistics(unittest.TestCase):
    """The false-alarm control and the power of the test, on synthetic samples."""

    def test_benjamini_hochberg_adjusts_in_input_order(self):
        q = compare.benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
        for got, want in zip(q, [0.02, 0.04, 0.04, 0.02]):
            self.assertAlmostEqual(got, want)
        self.assertEqual(compare.benjamini_hochberg([]), [])
        self.assertEqual(compare.benjamini_hochberg([0.9, 1.0]), [1.0, 1.0])

    @staticmethod
    def synthetic(changes, cv=0.03, n=5, seed=1):
        """Two result documents of len(changes) runs whose new side is slower by each factor."""
        rng = np.random.default_rng(seed)
        docs = []
        for side in (0, 1):
            entries = []
            for i, change in enumerate(changes):
                for rep in range(n):
                    factor = 1 + change if side else 1
                    entries.append({"name": f"r{i}", "run_name": f"r{i}", "run_type": "iteration",
                                    "repetition_index": rep, "status": "ok",
                                    "real_time": 1000 * factor * rng.lognormal(0, cv)})
            docs.append({"context": REAL_TIME, "benchmarks": entries})
        return docs

    def test_no_false_alarm_over_150_unchanged_comparisons(self):
        for seed in range(5):
            base, new = self.synthetic([0.0] * 150, seed=seed)
            rows = compare.compare(base, new, 0.10)
            self.assertEqual([r for r in rows if r["verdict"] != "same"], [], f"seed {seed}")
            # Unadjusted, about 5% of them would have been "significant".
            self.assertGreater(sum(r["p_value"] < 0.05 for r in rows), 0)

    def test_a_fifteen_percent_change_among_150_is_found_at_five_repetitions(self):
        # At a 2% spread, as pinned echo runs show here (at 3%: 8 times in 10).
        found = 0
        for seed in range(10):
            base, new = self.synthetic([0.15] + [0.0] * 149, cv=0.02, seed=seed)
            verdicts = {r["run"]: r["verdict"] for r in compare.compare(base, new, 0.10)}
            found += verdicts["r0"] == "REGRESSION"
            self.assertEqual(sum(v == "REGRESSION" for v in verdicts.values()), verdicts["r0"] == "REGRESSION")
        self.assertGreaterEqual(found, 9)

    def test_pairs_cancel_a_drift_of_the_machine_between_rounds(self):
        # Each round the machine is up to 40% slower or faster for both builds alike; new is 15% slower.
        rng = np.random.default_rng(3)
        drift = rng.uniform(0.7, 1.3, size=5)
        docs = []
        for factor in (1.0, 1.15):
            docs.append({"context": REAL_TIME, "benchmarks": [
                {"name": "r", "run_name": "r", "run_type": "iteration", "status": "ok", "repetition_index": i,
                 "real_time": 1000 * factor * d * rng.lognormal(0, 0.02)} for i, d in enumerate(drift)]})
        self.assertEqual(compare.compare(*docs, 0.10)[0]["verdict"], "same")  # drowned by the drift
        self.assertEqual(compare.compare(*docs, 0.10, paired=True)[0]["verdict"], "REGRESSION")


class Queueing(unittest.TestCase):
    def test_formulas_against_hand_computed_values(self):
        self.assertAlmostEqual(queueing.md1_wait(0.5, 10), 5.0)     # rho S / (2 (1 - rho))
        self.assertAlmostEqual(queueing.mm1_wait(0.5, 10), 10.0)    # rho S / (1 - rho)
        self.assertAlmostEqual(queueing.md1_wait(0.9, 1), 4.5)
        self.assertEqual(queueing.md1_wait(1.0, 1), float("inf"))
        # Erlang C with c = 2, a = 1: (1/2 x 2) / (1 + 1 + 1) = 1/3.
        self.assertAlmostEqual(queueing.erlang_c(2, 1.0), 1 / 3)
        self.assertAlmostEqual(queueing.erlang_c(1, 0.5), 0.5)      # M/M/1: P(wait) = rho
        # M/M/2 at lambda 0.1, S 10: C / (c mu - lambda) = (1/3) / (0.2 - 0.1).
        self.assertAlmostEqual(queueing.mmc_wait(0.1, 10, 2), 10 / 3)
        self.assertAlmostEqual(queueing.mmc_wait(0.05, 10, 1), queueing.mm1_wait(0.5, 10))
        self.assertAlmostEqual(queueing.mdc_wait(0.05, 10, 1), 5.0)
        self.assertAlmostEqual(queueing.mdc_wait(0.1, 10, 2), 5 / 3)

    def test_prediction_from_a_search_and_where_it_parts(self):
        steps = [{"offered": 0, "msgs_per_second": 90000, "mean_us": 900, "server_cpu_us_per_msg": 8},
                 {"offered": 10000, "msgs_per_second": 10000, "mean_us": 60, "server_cpu_us_per_msg": 20},
                 {"offered": 20000, "msgs_per_second": 20000, "mean_us": 70, "server_cpu_us_per_msg": 20},
                 {"offered": 30000, "msgs_per_second": 30000, "mean_us": 400, "server_cpu_us_per_msg": 15}]
        prediction, curve = queueing.predict(steps, 1)  # a model not named: M/D/1
        self.assertEqual(prediction.service_us, 20)
        self.assertEqual(prediction.discipline.name, "M/D/1")
        # The service demand of each rate is the one measured there (20 us up to 20,000/s, 15 at
        # 30,000), on the line between steps, the last beyond: saturation at 1 CPU / 15 us.
        self.assertAlmostEqual(prediction.service_at(25000), 17.5e-6)
        self.assertAlmostEqual(prediction.service_at(90000), 15e-6)
        self.assertAlmostEqual(prediction.saturation, 1 / 15e-6, delta=1 / 15e-6 / 1000)
        wait = lambda rate, s: queueing.md1_wait(rate * s, s) * 1e6  # noqa: E731
        self.assertAlmostEqual(curve[0][1], 60)  # the base is the lowest step's round trip
        # The base, 60 - 2.5 - 20 = 37.5 us, was paid by the 80% of arrivals that found the server
        # idle at 10,000/s; at 30,000/s 55% do (1 - 30,000 x 15 us), and the request's own service
        # is 15 us where it was 20: 37.5 x 0.55 / 0.8 + 15 + 6.14.
        self.assertAlmostEqual(prediction.idle_share(10000), 0.8)
        self.assertAlmostEqual(prediction.idle_share(30000), 0.55)
        self.assertAlmostEqual(prediction.base_us(30000), (60 - wait(10000, 20e-6) - 20) * 0.55 / 0.8)
        self.assertAlmostEqual(curve[2][1], (60 - wait(10000, 20e-6) - 20) * 0.55 / 0.8 + 15 + wait(30000, 15e-6))
        self.assertEqual(prediction.base_us(70000), 0)  # past saturation every arrival finds it busy
        rate, ratio = queueing.parting(steps, curve)
        self.assertEqual(rate, 30000)
        self.assertGreater(ratio, 1.5)
        self.assertIsNone(queueing.parting(steps[:3], curve[:2]))
        # epoll with no work is the same queue: run to completion, constant service.
        epoll, epoll_curve = queueing.predict(steps, 1, "epoll", {})
        self.assertEqual(epoll.discipline.name, "M/G/1 FCFS (run to completion)")
        self.assertEqual([round(us, 9) for _, us in epoll_curve], [round(us, 9) for _, us in curve])

    def test_work_moments(self):
        self.assertEqual(queueing.work_moments(""), (0, 0, 0, 0))
        cpu, var, wait, wait_var = queueing.work_moments("cpu:exp:20us+wait:fixed:1ms")
        self.assertAlmostEqual(cpu, 20e-6)
        self.assertAlmostEqual(var * 1e12, 400)  # exponential: variance = mean^2 (in us^2)
        self.assertAlmostEqual(wait, 1e-3)
        self.assertEqual(wait_var, 0)
        # Bimodal 0.995 x 10 us, 0.005 x 1 ms: mean 14.95 us, E[X^2] = 0.995e-10 + 0.005e-6.
        cpu, var, _, _ = queueing.work_moments("cpu:bimodal:0.995:10us:1ms")
        self.assertAlmostEqual(cpu * 1e6, 14.95)
        self.assertAlmostEqual(var * 1e12, 0.995 * 100 + 0.005 * 1e6 - 14.95 ** 2)
        with self.assertRaises(ValueError):
            queueing.work_moments("cpu:pareto:1us")

    def test_each_discipline_against_hand_computed_values(self):
        S = 50e-6
        # Pollaczek-Khinchine, M/M/1 as a check: exponential service, E[S^2] = 2 S^2, at rho 0.5:
        # lambda E[S^2] / (2 (1 - rho)) = 1e4 x 5e-9 / 1 = 50 us = rho S / (1 - rho).
        self.assertAlmostEqual(queueing.mg1_fcfs_wait(1e4, S, 2 * S * S), 50e-6)
        self.assertAlmostEqual(queueing.mg1_fcfs_wait(1e4, S, 2 * S * S), queueing.mm1_wait(0.5, S))
        self.assertEqual(queueing.mg1_fcfs_wait(2e4, S, S * S), math.inf)
        # Allen-Cunneen at c = 2 and SCV 1 is M/M/2's wait; at SCV 0 half of it (M/D/c as before).
        self.assertAlmostEqual(queueing.mgc_wait(0.1, 10, 1.0, 2), 10 / 3)
        self.assertAlmostEqual(queueing.mgc_wait(0.1, 10, 0.0, 2), queueing.mdc_wait(0.1, 10, 2))
        # Processor sharing on one CPU: S rho / (1 - rho), whatever the variance.
        self.assertAlmostEqual(queueing.ps_delay(1e4, S, 1), S * 0.5 / 0.5)
        # An event loop with cpu:exp:50us (SCV 1 of a 50 us service) at rho 0.5 waits 50 us; with
        # fixed work (SCV 0) 25 us; a thread per connection (PS) is 50 us either way.
        for work, loop_wait in (("cpu:exp:50us", 50e-6), ("cpu:fixed:50us", 25e-6)):
            loop = queueing.Discipline("epoll", "", 1, 1, S, work)
            self.assertAlmostEqual(loop.delay(1e4), loop_wait)
            self.assertAlmostEqual(loop.saturation, 20000)
            self.assertAlmostEqual(queueing.Discipline("threads", "", 1, 1, S, work).delay(1e4), 50e-6)
        # Its blocking variant holds the loop through a 1 ms wait: saturation 1 / 1.05 ms.
        blocking = queueing.Discipline("epoll", "blocking", 1, 1, S, "cpu:fixed:50us+wait:fixed:1ms")
        self.assertAlmostEqual(blocking.saturation, 1 / 1.05e-3)
        # A pool of 4 whose workers wait 1 ms: Little's law caps it at 4 / 1.05 ms; CPU-bound work
        # with no wait is capped by the CPUs instead (1 / 50 us).
        pool = queueing.Discipline("asio_offload", "", 4, 1, S, "cpu:fixed:50us+wait:fixed:1ms")
        self.assertAlmostEqual(pool.saturation, 4 / 1.05e-3)
        self.assertEqual(pool.delay(4000), math.inf)
        self.assertAlmostEqual(pool.delay(1000), queueing.mmc_wait(1000, 1.05e-3, 4) / 2)  # SCV 0
        self.assertAlmostEqual(queueing.Discipline("thread_pool", "", 4, 1, S, "cpu:fixed:50us").saturation, 20000)


class PoolSize(unittest.TestCase):
    def test_the_smallest_pool_within_five_percent_of_the_best(self):
        entries = []
        for workers, makespan in ((1, 2.0), (8, 0.30), (32, 0.105), (64, 0.100), (128, 0.12)):
            for mode in ("coupled",):
                base = {"name": f"p/{workers}", "run_name": f"p/{workers}", "scenario": "pipeline",
                        "model": "thread_pool", "params": {"workers": workers, "mode": mode}, "status": "ok"}
                entries.append({**base, "run_type": "iteration", "makespan_s": makespan, "littles_law_workers": 42.0})
                entries.append({**base, "run_type": "aggregate", "aggregate_name": "median",
                                "name": f"p/{workers}_median", "makespan_s": makespan})
        rows = summary_numbers.pool_sizes({"context": {}, "benchmarks": entries})
        self.assertEqual(rows, [("thread_pool coupled", 32, 0.100, 64, 42.0)])


class NewScenarioFigure(unittest.TestCase):
    """A scenario the report has never heard of adds its figure with a module of its own: no edit to
    the report, the registry or any other module."""

    MODULE = """
import matplotlib.pyplot as plt
from plots import results
from plots.figures import register

def fig_widgets(doc):
    rows = results.medians(doc, "widgets")
    if not rows:
        return None
    fig, ax = plt.subplots()
    ax.bar([r["model"] for r in rows], [r["widgets_per_second"] for r in rows])
    return fig

register("widgets_rate", fig_widgets)
"""

    def test_a_made_up_scenarios_module_is_found_and_drawn(self):
        import plots
        tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        with open(os.path.join(tmp, "widgets_figures.py"), "w", encoding="utf-8") as f:
            f.write(self.MODULE)
        plots.__path__.append(tmp)  # where a new scenario's module would sit: beside the others
        with open(FIXTURE, encoding="utf-8") as f:
            doc = json.load(f)
        doc["context"]["metrics"]["widgets_per_second"] = {
            "unit": "1/s", "meaning": "widgets made per second", "better": "higher", "aggregate": "statistics",
            "merge": "sum", "minimum": 0, "display": {"label": "widgets/s", "format": ".0f", "scale": 1}}
        for i, model in enumerate(("hand", "machine")):
            doc["benchmarks"].append({"name": f"widgets/{model}", "run_name": f"widgets/{model}",
                                      "run_type": "iteration", "scenario": "widgets", "model": model, "params": {},
                                      "status": "ok", "repetition_index": 0, "repetitions": 1,
                                      "widgets_per_second": 10.0 * (i + 1)})
        out = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        try:
            code, _, err = run_main(report.main, [write_doc("widgets.json", doc), "--out", out])
        finally:  # the made-up scenario leaves no figure behind for the other tests
            plots.__path__.remove(tmp)
            figures.FIGURES[:] = [f for f in figures.FIGURES if f[0] != "widgets_rate"]
            sys.modules.pop("plots.widgets_figures", None)
        self.assertEqual(code, 0, err)
        with open(os.path.join(out, "widgets_rate.png"), "rb") as f:
            self.assertTrue(f.read().startswith(b"\x89PNG"))
        with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
            self.assertIn("<h2>widgets rate</h2>", f.read())


class OverTime(unittest.TestCase):
    """Which windows the latency-over-time figure draws."""

    @staticmethod
    def entry(name, steady, repetition=0):
        rows = [[100, 50.0, 90.0]] * 9
        return {"run_type": "iteration", "scenario": "echo", "name": name, "run_name": name, "model": "epoll",
                "repetition_index": repetition, "steady": steady,
                "intervals": {"interval_s": 0.1, "columns": ["count", "p50_us", "p99_us"], "rows": rows}}

    def test_the_unsteady_ones_by_default_and_the_named_ones_when_asked(self):
        from plots import over_time_figures
        doc = {"benchmarks": [self.entry("echo/a", True), self.entry("echo/b", False), self.entry("echo/b", False, 1),
                              self.entry("echo/c", True)]}
        self.assertEqual([(e["name"], e["repetition_index"]) for e in over_time_figures.chosen_entries(doc)],
                         [("echo/b", 0), ("echo/b", 1)])
        doc["plot_options"] = {"over_time": "echo/c"}
        self.assertEqual([e["name"] for e in over_time_figures.chosen_entries(doc)], ["echo/c"])
        doc["plot_options"] = {"over_time": "echo/"}  # one repetition a run, at most four runs
        self.assertEqual([e["name"] for e in over_time_figures.chosen_entries(doc)], ["echo/a", "echo/b", "echo/c"])
        self.assertIsNotNone(over_time_figures.fig_over_time(doc))
        doc = {"benchmarks": [self.entry("echo/a", True)]}
        self.assertIsNone(over_time_figures.fig_over_time(doc))

    def test_an_empty_choice_is_refused(self):
        code, _, err = run_main(report.main, [FIXTURE, "--over-time="])
        self.assertEqual(code, 2)
        self.assertIn("--over-time", err)


def kept_values(doc, run_name, key):
    return [b[key] for b in results.iterations(doc, "echo") if b["run_name"] == run_name and key in b]


class Findings(unittest.TestCase):
    """The statements that open the report, each checked against numbers computed here from the fixture."""

    @classmethod
    def setUpClass(cls):
        cls.doc = results.load(FIXTURE)
        cls.found = findings.findings(cls.doc)
        cls.texts = [f["text"] for f in cls.found]

    def test_the_most_round_trips_against_the_next_mean_and_propagated_deviation(self):
        rows = [r for r in results.medians(self.doc, "echo") if r["params"].get("connections") == 10
                and not {"work", "rate", "capacity"} & set(r["params"])]
        rows.sort(key=lambda r: -r["msgs_per_second"])
        a, b = (np.array(kept_values(self.doc, r["run_name"], "msgs_per_second")) for r in rows[:2])
        ratio = a.mean() / b.mean()
        error = ratio * math.sqrt((a.std(ddof=1) / a.mean()) ** 2 + (b.std(ddof=1) / b.mean()) ** 2)
        statement = [f for f in self.found if f["text"].startswith("At 10 connections") and "(the next)" in f["text"]]
        self.assertEqual(len(statement), 1, self.texts)
        self.assertIn(f"served {ratio:.2f} ± {error:.2f} times the round trips of", statement[0]["text"])
        self.assertEqual(statement[0]["runs"], [rows[0]["run_name"], rows[1]["run_name"]])

    def test_system_calls_per_round_trip_by_model(self):
        statement = [t for t in self.texts if t.startswith("Server system calls per round trip at 10 connections")]
        self.assertEqual(len(statement), 1, self.texts)
        counted = [r for r in results.medians(self.doc, "echo") if "syscalls_per_msg" in r]
        self.assertEqual(len(counted), 2)  # epoll and io_uring, --syscalls
        for r in counted:
            v = np.array(kept_values(self.doc, r["run_name"], "syscalls_per_msg"))
            self.assertIn(f"{r['model']} {v.mean():.2f} ± {v.std(ddof=1):.2f}", statement[0])
        self.assertIn("io_uring_enter", statement[0])

    def test_starved_connections_and_memory_per_connection(self):
        starved = [t for t in self.texts if "unanswered" in t]
        self.assertIn("thread_pool (4 workers) left 6 of 10 connections unanswered in the window (median; in 4 of 4 "
                      "repetitions).", starved)
        points = [(b["params"]["connections"], b["server_peak_rss_bytes"]) for b in results.iterations(self.doc, "echo")
                  if b["model"] == "threads" and not {"work", "rate", "capacity"} & set(b["params"])]
        slope = np.polyfit([x for x, _ in points], [y for _, y in points], 1)[0]
        memory = [t for t in self.texts if t.startswith("Server memory per connection")]
        self.assertEqual(len(memory), 1)
        self.assertIn(f"threads {slope / 1024:,.1f} ± ", memory[0])

    def test_a_model_less_fair_than_chance_is_named(self):
        doc = copy.deepcopy(self.doc)
        rows = [r for r in results.medians(doc, "echo") if r.get("starved_connections", 0) == 0
                and "capacity" not in r["params"]]
        for r in rows:
            r["fairness_random_order"] = r["fairness"]  # as fair as chance
        for r, fairness in zip(rows, (0.58, 0.83)):  # less fair than chance; within 0.05 of it
            r["fairness"], r["fairness_random_order"] = fairness, 0.86
        texts = [f["text"] for f in findings.unfairness_findings(doc)]
        self.assertEqual(len(texts), 1, texts)
        self.assertIn(f"{findings.label(rows[0])} at {findings.conn(rows[0]['params']['connections'])} answered its "
                      "connections less evenly than a random order would have: Jain's index 0.58 against 0.86", texts[0])
        self.assertEqual(findings.unfairness_findings(self.doc), [])  # the fixture predates the reference

    def test_a_difference_within_the_noise_says_so(self):
        same = [100.0, 110.0, 90.0, 105.0]
        self.assertIn("not a clear difference", findings.unclear(same, [v * 1.01 for v in same]))
        self.assertEqual(findings.unclear(same, [v * 2 for v in same]), "")
        self.assertEqual(findings.show(1.5, None), "1.50 (one repetition: no spread)")

    def test_they_open_the_summary_and_the_report(self):
        out = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        code, _, err = run_main(report.main, [FIXTURE, "--out", out])
        self.assertEqual(code, 0, err)
        with open(os.path.join(out, "summary.md"), encoding="utf-8") as f:
            summary = f.read()
        self.assertLess(summary.index("### Findings"), summary.index("### echo"))
        self.assertIn(f"- {self.texts[0]}", summary)
        with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
            page = f.read()
        self.assertLess(page.index("<h2>findings</h2>"), page.index("<img"))


class Spread(unittest.TestCase):
    """Figures of medians draw whiskers from the least to the greatest repetition."""

    def test_whiskers_span_the_repetitions(self):
        doc = copy.deepcopy(results.load(FIXTURE))
        run = "echo/threads/connections:10/size:64"
        reps = [b for b in results.iterations(doc, "echo") if b["run_name"] == run]
        for b, v in zip(reps, [40000.0, 50000.0, 60000.0, 70000.0]):
            b["msgs_per_second"] = v
        for b in doc["benchmarks"]:
            if b.get("run_name") == run and b.get("aggregate_name") == "median":
                b["msgs_per_second"] = 55000.0
        fig = echo_figures.fig_throughput(doc)
        segments = [seg for c in fig.axes[0].containers for lines in c.lines[2] for seg in lines.get_segments()]
        spans = [(round(seg[0][1]), round(seg[1][1])) for seg in segments]
        self.assertIn((40000, 70000), spans)
        # Every whisker holds its median.
        self.assertTrue(all(lo <= hi for lo, hi in spans))


class Costs(unittest.TestCase):
    """The CPU split, the system call table and the flame graphs, from the fixture's --syscalls --flamegraph run."""

    def test_profiles_fold_into_a_tree_as_wide_as_the_samples(self):
        doc = results.load(FIXTURE)
        runs = summary_numbers.profiled(doc)
        self.assertEqual([name.split("/")[1] for name, _ in runs], ["epoll", "io_uring"])
        for name, p in runs:
            tree = cost_figures.frame_tree(p)
            self.assertEqual(sum(count for count, _ in tree.values()), p["samples"], name)
        self.assertIsNotNone(cost_figures.fig_profiles(doc))
        self.assertIsNotNone(cost_figures.fig_cpu_split(doc))
        tables = {title: rows for title, _, rows in summary_numbers.table_rows(doc)}
        self.assertIn("system calls", tables)
        self.assertEqual(len(tables["system calls"]), 2)
        top = tables["profile: " + runs[1][0]]
        self.assertTrue(any("io_uring_enter" in row[0] for row in top), top)


class Numbers(unittest.TestCase):
    """The tables' figures, from the fixture, with no drawing."""

    def test_the_fixtures_numbers(self):
        doc = results.load(FIXTURE)
        capacity = summary_numbers.capacity_rows(doc)
        self.assertTrue(capacity)
        for row in capacity:
            self.assertEqual(len(row), 7)
            # The fixture searches epoll (run to completion) and threads (processor sharing).
            self.assertEqual(row[4], {"epoll": "M/G/1 FCFS (run to completion)", "threads": "M/G/1-PS"}[row[0].split()[0]])
            capacity_text = row[2].split()[1] if row[2].startswith(">=") else row[2]
            self.assertGreater(float(capacity_text.replace(",", "")), 0, row)
        memory = summary_numbers.memory_per_connection(doc)
        self.assertTrue(memory)
        for label, slope, xs in memory:
            self.assertGreater(len(xs), 1, label)
        tables = [name for name, _, _ in summary_numbers.table_rows(doc)]
        for name in ("echo", "micro", "pipeline", "capacity", "memory per connection"):
            self.assertIn(name, tables)
        self.assertNotIn("matplotlib", sys.modules.get("plots.summary_numbers").__dict__)

    def test_a_finding_on_a_run_with_no_clean_repetition_says_so(self):
        doc = results.load(FIXTURE)
        before = findings.findings(doc)
        first = before[0]
        self.assertNotIn("Noisy:", first["text"])
        run = first["runs"][0]
        for b in doc["benchmarks"]:
            if b.get("run_type") == "iteration" and b.get("run_name") == run:
                b["excluded"] = "noisy neighbour: 30% of the CPUs under test taken"
        after = findings.findings(doc)
        self.assertTrue(after[0]["text"].startswith(first["text"]), after[0]["text"])  # the same figures
        self.assertIn(" had no clean repetition", after[0]["text"])
        untouched = [f for f in after if run not in f["runs"]]
        self.assertTrue(untouched)
        self.assertFalse(any("Noisy:" in f["text"] for f in untouched))

    def test_a_search_noise_stopped_gives_way_to_its_redo(self):
        # The fixture's epoll search, as if noise had stopped it (its lower bound left out) and its redo
        # (repetition 1) had found 20% more; then as if the redo had been stopped too.
        doc = results.load(FIXTURE)
        (search,) = [b for b in results.iterations(doc, "echo") if "steps" in b and b["model"] == "epoll"]
        stopped = dict(search, capacity_limit="noise", capacity_checked=False, excluded="stopped by noise: ...")
        redo = dict(search, repetition_index=1, capacity_limit="slo",
                    capacity_msgs_per_second=1.2 * search["capacity_msgs_per_second"])
        others = [b for b in doc["benchmarks"] if b is not search]
        doc["benchmarks"] = others + [stopped, redo]
        (row,) = [r for r in summary_numbers.capacity_rows(doc) if r[0].startswith("epoll")]
        self.assertEqual(row[2], f"{redo['capacity_msgs_per_second']:,.0f}")
        doc["benchmarks"] = others + [stopped, dict(redo, capacity_limit="noise", excluded="stopped by noise: ...")]
        (row,) = [r for r in summary_numbers.capacity_rows(doc) if r[0].startswith("epoll")]
        self.assertEqual(row[2], f">= {search['capacity_msgs_per_second']:,.0f} (stopped by noise)")
        (said,) = [f["text"] for f in findings.capacity_findings(doc) if f["text"].startswith("epoll")]
        self.assertIn("at least: the host took the CPUs", said)


if __name__ == "__main__":
    unittest.main()
