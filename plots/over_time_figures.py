"""Latency over time: a window's round trips by 100 ms (count, p50 and p99, from each entry's
"intervals"), for the runs chosen with `--over-time` (a part of their run name), else for the
repetitions flagged "not steady" (their last third's median far from their first third's).

A steady window is flat; one that drifts shows a queue growing (a server past its capacity), a
warm-up still under way, or a neighbour arriving partway through."""
import matplotlib.pyplot as plt

from plots import results
from plots.figures import log_y, register

MOST = 4  # panels in one figure


def chosen_entries(doc):
    """The repetition entries to draw: those whose run name contains doc's plot option
    "over_time" (one per run: the first kept), else those flagged not steady; at most MOST."""
    choice = doc.get("plot_options", {}).get("over_time")
    with_intervals = [b for b in results.iterations(doc) if b.get("intervals", {}).get("rows")]
    if choice:
        picked, seen = [], set()
        for b in with_intervals:
            name = b.get("run_name", b["name"])
            if choice in name and name not in seen:
                seen.add(name)
                picked.append(b)
        return picked[:MOST]
    return [b for b in with_intervals if b.get("steady") is False][:MOST]


def fig_over_time(doc):
    entries = chosen_entries(doc)
    if not entries:
        return None
    fig, axes = plt.subplots(len(entries), 1, figsize=(9, 3.2 * len(entries)), squeeze=False)
    for ax, entry in zip((row[0] for row in axes), entries):
        table = entry["intervals"]
        step = table.get("interval_s", 0.1)
        column = {name: k for k, name in enumerate(table["columns"])}
        rows = table["rows"]
        xs = [step * (k + 0.5) for k in range(len(rows))]
        for key, style in (("p50_us", "-o"), ("p99_us", "-s")):
            ys = [r[column[key]] if r[column["count"]] > 0 else float("nan") for r in rows]
            ax.plot(xs, ys, style, markersize=3, label=key.replace("_us", ""))
        log_y(ax)
        ax.set_ylabel("round trip (us, log)")
        counts = ax.twinx()
        counts.bar(xs, [r[column["count"]] for r in rows], width=step * 0.8, alpha=0.15, color="grey")
        counts.set_ylabel(f"round trips per {step * 1000:.0f} ms")
        steady = "" if entry.get("steady", True) else " - not steady"
        ax.set_title(f"{entry.get('run_name', entry['name'])}, repetition {entry.get('repetition_index', 0) + 1}"
                     f"{steady}", fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    axes[-1][0].set_xlabel("time in the window (s)")
    return fig


register("echo_over_time", fig_over_time)
