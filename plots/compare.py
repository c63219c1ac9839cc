"""Compares two harness result files and says whether each difference is real.

Usage: bazel run //plots:compare -- BASE.json NEW.json [--threshold=5%] [--format=text|md|json]

For every run in both files and every metric it has (time and CPU per operation, throughput, p99,
server CPU per message), it reports the base and new medians over the repetitions, the change, and
a two-sided Mann-Whitney U p-value. A change is a regression when it is significant (p < alpha) and
worse than the threshold in the metric's own direction (higher msgs/s is better, lower p99 is).
With fewer than 4 repetitions a side no p-value can fall below 0.05: the verdict is then "too few".
Exit status: 1 when a regression is found, 0 otherwise, 2 on bad input.
"""
import argparse
import json
import math
import sys

import numpy as np
from scipy.stats import mannwhitneyu

from plots import results

# (key, label, True when higher is better)
METRICS = [
    ("real_time", "time/op", False),
    ("cpu_time", "cpu/op", False),
    ("msgs_per_second", "msgs/s", True),
    ("p99_us", "p99", False),
    ("server_cpu_us_per_msg", "srv cpu/msg", False),
]
ALPHA = 0.05


def parse_threshold(text):
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise results.BadInput(f"--threshold: not a percentage: '{text}'") from None
    if not 0 <= value < 1000:
        raise results.BadInput(f"--threshold: must be between 0% and 1000%: '{text}'")
    return value / 100.0


def samples(doc):
    """{run name: {metric: [value per repetition]}} from the ok repetitions."""
    out = {}
    for b in results.iterations(doc):
        run = b.get("run_name", b["name"])
        for key, _, _ in METRICS:
            if isinstance(b.get(key), (int, float)):
                out.setdefault(run, {}).setdefault(key, []).append(float(b[key]))
    return out


def compare(base_doc, new_doc, threshold):
    base, new = samples(base_doc), samples(new_doc)
    rows = []
    for run in sorted(set(base) & set(new)):
        for key, label, higher_is_better in METRICS:
            a, b = base[run].get(key), new[run].get(key)
            if not a or not b:
                continue
            ma, mb = float(np.median(a)), float(np.median(b))
            # From a base of 0 any new value is an infinite relative change, in its own direction.
            change = (mb - ma) / ma if ma else (0.0 if mb == ma else math.copysign(math.inf, mb))
            worse = -change if higher_is_better else change
            if min(len(a), len(b)) < 2 or (a == b):
                p = None if min(len(a), len(b)) < 2 else 1.0
            else:
                p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
            if p is None or min(len(a), len(b)) < 4:
                verdict = "too few"
            elif p < ALPHA and worse > threshold:
                verdict = "REGRESSION"
            elif p < ALPHA and -worse > threshold:
                verdict = "improvement"
            else:
                verdict = "same"
            rows.append({"run": run, "metric": label, "base": ma, "new": mb, "change": change,
                         "p_value": p, "repetitions": [len(a), len(b)], "verdict": verdict})
    return rows


def format_change(change):
    return "from 0" if math.isinf(change) else f"{change:+.1%}"


def format_rows(rows, fmt):
    if fmt == "json":  # strict JSON has no Infinity: a change from 0 is null there
        return json.dumps([{**r, "change": None if math.isinf(r["change"]) else r["change"]} for r in rows], indent=2)
    header = ["run", "metric", "base", "new", "change", "p", "reps", "verdict"]
    table = [[r["run"], r["metric"], f"{r['base']:.4g}", f"{r['new']:.4g}", format_change(r["change"]),
              "-" if r["p_value"] is None else f"{r['p_value']:.3f}", "{}v{}".format(*r["repetitions"]),
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
    parser.add_argument("--threshold", default="5%", help="smallest change that counts (default 5%%)")
    parser.add_argument("--format", choices=["text", "md", "json"], default="text")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2  # argparse has printed its one-line usage error
    try:
        threshold = parse_threshold(args.threshold)
        base = results.load(report_path(args.base))
        new = results.load(report_path(args.new))
    except results.BadInput as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 2
    rows = compare(base, new, threshold)
    if not rows:
        print("compare: error: the two files have no run in common", file=sys.stderr)
        return 2
    print(format_rows(rows, args.format))
    regressions = [r for r in rows if r["verdict"] == "REGRESSION"]
    few = sum(r["verdict"] == "too few" for r in rows)
    print(f"\n{len(rows)} comparisons, {len(regressions)} regressions"
          + (f", {few} with too few repetitions for a test (4+ a side)" if few else ""))
    return 1 if regressions else 0


def report_path(path):
    from plots.report import user_path
    return user_path(path)


if __name__ == "__main__":
    sys.exit(main())
