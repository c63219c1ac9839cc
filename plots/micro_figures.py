"""The micro scenario's figure: each primitive's time per operation."""
import matplotlib.pyplot as plt

from plots import results
from plots.figures import register, spread_of, whiskers


def fig_micro(doc):
    rows = [r for r in results.medians(doc, "micro") if "real_time" in r]
    if not rows:
        return None
    rows.sort(key=lambda r: r["run_name"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    labels = [r["run_name"].removeprefix("micro/").replace("/real_time", "") for r in rows]
    values = [r["real_time"] for r in rows]
    ax.barh(labels, values, xerr=whiskers(values, [r["run_name"] for r in rows], spread_of(doc, "micro", "real_time")),
            capsize=2)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("wall time per operation (ns, log)")
    ax.set_title("Primitives (Google Benchmark, median; whiskers: min-max of the repetitions)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return fig


register("micro_primitives", fig_micro)
