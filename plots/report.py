"""Plots a harness result file into figures, a self-contained report.html and a summary.md.

Usage: bazel run //plots -- RESULTS.json [--out DIR] [--over-time RUN]

Writes one PNG and one SVG per figure into DIR (default: reports/<name of the results file>/ in
the workspace), then report.html (figures embedded, tables, the run's context) and summary.md (for
a CI job summary). Exits 2 with one line on a missing, malformed or foreign file.
"""
import argparse
import io
import os
import sys

import matplotlib.pyplot as plt

from plots import figures, results
from plots.html_report import write_html
from plots.markdown_summary import write_summary


def write_figures(doc, out_dir):
    """Draws every figure the data allows; returns [(name, png_path)]."""
    written = []
    figures.load_scenario_modules()
    for name, draw in figures.FIGURES:
        fig = draw(doc)
        if fig is None:
            continue
        fig.tight_layout()
        for ext, options in (("png", {"dpi": 110}), ("svg", {})):
            image = io.BytesIO()  # drawn in memory, written by the project's one safe writer
            fig.savefig(image, format=ext, **options)
            results.write_file(os.path.join(out_dir, f"{name}.{ext}"), image.getvalue())
        plt.close(fig)
        written.append((name, os.path.join(out_dir, name + ".png")))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a results file written by the harness")
    parser.add_argument("--out", "-o", help="output folder (default: reports/<name>/ in the workspace)")
    parser.add_argument("--over-time", metavar="RUN",
                        help="draw latency over the window (by 100 ms) for the runs whose name contains RUN "
                             "(default: the repetitions flagged not steady)")
    args = parser.parse_args(argv)
    try:
        doc = results.load(results.user_path(args.results))
    except results.BadInput as e:
        print(f"plots: error: {e}", file=sys.stderr)
        return 2
    if args.over_time is not None:
        if not args.over_time:
            print("plots: error: --over-time: give a part of a run's name", file=sys.stderr)
            return 2
        doc["plot_options"] = {"over_time": args.over_time}
    name = os.path.splitext(os.path.basename(args.results))[0]
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")
    out_dir = results.user_path(args.out) if args.out else os.path.join(workspace, "reports", name)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        print(f"plots: error: --out: cannot create {out_dir}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        drawn = write_figures(doc, out_dir)
        report = write_html(doc, drawn, out_dir, f"Concurrency harness: {name}")
        summary = write_summary(doc, out_dir)
    except results.BadInput as e:
        print(f"plots: error: {e}", file=sys.stderr)
        return 2
    print(f"{len(drawn)} figures, {report}, {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
