"""Compares two harness result files and says whether each difference is real.

Usage: bazel run //plots:compare -- BASE.json NEW.json [--threshold=10%] [--format=text|md|json]

For every run in both files and every metric the files declare compared (their context.metrics:
time and CPU per operation, and each scenario's own, such as throughput, p99 and server CPU per
message for echo), it reports the base and new medians over the repetitions, the change (the
ratio of the geometric means), and a p-value from Student's t-test on the logarithms of the values
(a slowdown multiplies: logs make it a shift of the level, not of the spread, so the two sides'
variance is pooled; at 5 repetitions a side Welch's version loses half its degrees of freedom and,
among 150 comparisons, a third of its power to see a 15% change).
Testing some 150 comparisons of a file at 5% each would flag ~7 by chance alone, so the p-values of
a file are adjusted together (Benjamini-Hochberg: the expected share of false alarms among the
flagged stays under 5%). A change is a regression when its adjusted p is below 0.05 *and* it is
worse than the threshold in the direction the files declare for the metric ("better": "higher" or
"lower").

With fewer than 3 repetitions a side there is no test: a change past the threshold in every
repetition (every new one worse than every base one) is then reported as "REGRESSION?" and the exit
status is 3.
Exit status: 1 when a regression is found, 3 when only untested ones are, 0 otherwise, 2 on bad input.
"""
import argparse
import json
import math
import sys
import warnings

import numpy as np
from scipy.stats import ttest_ind, ttest_rel

from plots import results

ALPHA = 0.05
MIN_TESTED = 3  # repetitions a side for a t-test


def parse_threshold(text):
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise results.BadInput(f"--threshold: not a percentage: '{text}'") from None
    if not 0 <= value < 1000:
        raise results.BadInput(f"--threshold: must be between 0% and 1000%: '{text}'")
    return value / 100.0


def compared_metrics(base_doc, new_doc):
    """[(key, label, True when higher is better)] of the metrics either file declares compared, in
    the files' own words (context.metrics); the harness's time and CPU per operation first. Files
    that declare one metric's direction differently do not compare."""
    declared = {}
    for doc in (base_doc, new_doc):
        for key, d in results.declarations(doc).items():
            if not d.get("compared") or d.get("better") not in ("higher", "lower"):
                continue
            if key in declared and declared[key]["better"] != d["better"]:
                raise results.BadInput(f"the two files declare {key} better {declared[key]['better']} and "
                                       f"better {d['better']}: their figures do not mean the same")
            declared.setdefault(key, d)
    if not declared:
        raise results.BadInput("neither file declares its metrics (context.metrics): written by a harness "
                               "before results schema 2; run it again with this one")
    order = sorted(declared, key=lambda k: (k not in ("real_time", "cpu_time"), k != "real_time", k))
    return [(k, declared[k].get("display", {}).get("label", k), declared[k]["better"] == "higher") for k in order]


def samples(doc, metrics):
    """{run name: {metric: {repetition index: value}}} from the ok repetitions."""
    out = {}
    for i, b in enumerate(results.iterations(doc)):
        run = b.get("run_name", b["name"])
        for key, _, _ in metrics:
            if isinstance(b.get(key), (int, float)):
                out.setdefault(run, {}).setdefault(key, {})[b.get("repetition_index", i)] = float(b[key])
    return out


def log_t_p(a, b, paired=False):
    """Two-sided p-value of the t-test on log values (raw values where any is <= 0): pooled, or on
    the differences of pairs (repetition i of each side measured side by side, as //plots:ab does:
    a drift of the machine between rounds then cancels)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(a.min(), b.min()) > 0:
        a, b = np.log(a), np.log(b)
    if paired:
        d = b - a
        return (1.0 if d.mean() == 0 else 0.0) if d.var(ddof=1) == 0 else float(ttest_rel(b, a).pvalue)
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    with warnings.catch_warnings():  # nearly equal values: scipy warns of precision, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(b, a, equal_var=True).pvalue)


def benjamini_hochberg(p_values):
    """Adjusted p-values (q-values), in the input order: flagging q < alpha keeps the expected share
    of false alarms among the flagged below alpha, over all the comparisons at once."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]  # monotone from the largest rank down
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out.tolist()


def ratio_change(a, b):
    """The change from a to b as the ratio of geometric means, minus one (arithmetic where a value
    is <= 0); from a base of 0, an infinite change in the new value's direction."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(a.min(), b.min()) > 0:
        return float(np.exp(np.log(b).mean() - np.log(a).mean()) - 1)
    ma, mb = a.mean(), b.mean()
    return (mb - ma) / abs(ma) if ma else (0.0 if mb == ma else math.copysign(math.inf, mb))


def compare(base_doc, new_doc, threshold, paired=False):
    """One row per run and metric both documents have. `paired`: repetition i of base and of new
    were measured side by side (//plots:ab), so the test is on the pairs' ratios."""
    metrics = compared_metrics(base_doc, new_doc)
    base, new = samples(base_doc, metrics), samples(new_doc, metrics)
    rows, worse, every_worse = [], [], []  # worse: the change in the metric's bad direction
    for run in sorted(set(base) & set(new)):
        for key, label, higher_is_better in metrics:
            by_rep_a, by_rep_b = base[run].get(key), new[run].get(key)
            if not by_rep_a or not by_rep_b:
                continue
            both = sorted(set(by_rep_a) & set(by_rep_b)) if paired else None
            a = [by_rep_a[i] for i in both] if paired else list(by_rep_a.values())
            b = [by_rep_b[i] for i in both] if paired else list(by_rep_b.values())
            if not a:
                continue
            change = ratio_change(a, b)
            tested = min(len(a), len(b)) >= MIN_TESTED
            rows.append({"run": run, "metric": label, "base": float(np.median(a)), "new": float(np.median(b)),
                         "change": change, "p_value": log_t_p(a, b, paired) if tested else None, "q_value": None,
                         "repetitions": [len(a), len(b)]})
            worse.append(-change if higher_is_better else change)
            every_worse.append(every_repetition_worse(a, b, threshold, higher_is_better))
    tested = [r for r in rows if r["p_value"] is not None]
    for r, q in zip(tested, benjamini_hochberg([r["p_value"] for r in tested])):
        r["q_value"] = q
    for r, w, all_worse in zip(rows, worse, every_worse):
        if r["q_value"] is None:
            r["verdict"] = "REGRESSION?" if all_worse else "too few"
        elif r["q_value"] < ALPHA and w > threshold:
            r["verdict"] = "REGRESSION"
        elif r["q_value"] < ALPHA and -w > threshold:
            r["verdict"] = "improvement"
        else:
            r["verdict"] = "same"
    return rows


def every_repetition_worse(a, b, threshold, higher_is_better):
    """True when every new value is worse than every base value by more than the threshold."""
    if higher_is_better:
        return max(b) < min(a) / (1 + threshold)
    return min(b) > max(a) * (1 + threshold)


def format_change(change):
    return "from 0" if math.isinf(change) else f"{change:+.1%}"


def format_rows(rows, fmt):
    if fmt == "json":  # strict JSON has no Infinity: a change from 0 is null there
        return json.dumps([{**r, "change": None if math.isinf(r["change"]) else r["change"]} for r in rows], indent=2)
    header = ["run", "metric", "base", "new", "change", "p", "q", "reps", "verdict"]
    table = [[r["run"], r["metric"], f"{r['base']:.4g}", f"{r['new']:.4g}", format_change(r["change"]),
              "-" if r["p_value"] is None else f"{r['p_value']:.3g}",
              "-" if r["q_value"] is None else f"{r['q_value']:.3g}", "{}v{}".format(*r["repetitions"]),
              r["verdict"]] for r in rows]
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [header] + table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--threshold", default="10%", help="smallest change that counts (default 10%%)")
    parser.add_argument("--format", choices=["text", "md", "json"], default="text")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2  # argparse has printed its one-line usage error
    try:
        threshold = parse_threshold(args.threshold)
        base = results.load(results.user_path(args.base))
        new = results.load(results.user_path(args.new))
    except results.BadInput as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 2
    try:
        rows = compare(base, new, threshold)
    except results.BadInput as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print("compare: error: the two files have no run in common", file=sys.stderr)
        return 2
    print(format_rows(rows, args.format))
    return summarize(rows)


def summarize(rows):
    """Prints the closing line; returns the exit status (1 regression, 3 untested only, 0 none)."""
    regressions = sum(r["verdict"] == "REGRESSION" for r in rows)
    untested = sum(r["verdict"] == "REGRESSION?" for r in rows)
    few = sum(r["verdict"] in ("too few", "REGRESSION?") for r in rows)
    print(f"\n{len(rows)} comparisons, {regressions} regressions"
          + (f", {untested} untested regressions (past the threshold in every repetition)" if untested else "")
          + (f", {few} with too few repetitions for a test ({MIN_TESTED}+ a side)" if few else ""))
    return 1 if regressions else 3 if untested else 0


if __name__ == "__main__":
    sys.exit(main())
