"""The pipeline scenario's figures: makespan and efficiency against workers with the lower bound,
and a timeline of one run per model."""
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from plots import results
from plots.figures import register, spread_of, whiskers


def pipeline_rows(doc):
    return [r for r in results.medians(doc, "pipeline") if "makespan_s" in r]


def pipeline_label(row):
    mode = row["params"].get("mode")
    return row["model"] + (f" ({mode})" if mode else "")


def same_curve(a, b, tolerance=0.05):
    """Two bound curves within 5% of each other at every x: the bounds of the two modes differ only
    where the parent parses (process models), not by the parse-time drift between runs."""
    if a is None or [x for x, _ in a] != [x for x, _ in b]:
        return False
    return all(abs(ya - yb) <= tolerance * max(ya, yb) for (_, ya), (_, yb) in zip(a, b))


def fig_pipeline_makespan(doc, key="makespan_s", ylabel="makespan (s)", title="Pipeline makespan against workers"):
    rows = pipeline_rows(doc)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(11, 5.5))
    fig.subplots_adjust(right=0.72)  # the legend goes beside the plot, not over the curves
    lines, flat = {}, {}
    for r in rows:
        if "workers" in r["params"]:
            lines.setdefault(pipeline_label(r), []).append((r["params"]["workers"], r[key], r["lower_bound_s"],
                                                            r["run_name"]))
        else:
            flat[pipeline_label(r)] = r[key]  # no workers: one value for every x
    ranges = spread_of(doc, "pipeline", key)
    xs_all = sorted({p[0] for pts in lines.values() for p in pts}) or [1]
    bounds_drawn = {}  # model -> its bound curve; a mode gets its own only where it differs
    for label, pts in sorted(lines.items()):
        pts.sort()
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=whiskers([p[1] for p in pts], [p[3] for p in pts],
                    ranges), linestyle="", color=line.get_color(), capsize=3, linewidth=1)
        model = label.split(" ")[0]
        bound = [(p[0], p[2]) for p in pts]
        if key == "makespan_s" and not same_curve(bounds_drawn.get(model), bound):
            name = model if model not in bounds_drawn else label
            bounds_drawn[model] = bound
            ax.plot([b[0] for b in bound], [b[1] for b in bound], linestyle="--", color=line.get_color(), alpha=0.6,
                    label=f"{name}: lower bound")
    for label, value in sorted(flat.items()):
        ax.plot(xs_all, [value] * len(xs_all), linestyle=":", marker="x", label=f"{label} (no workers)")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    if key == "makespan_s":
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        ax.set_ylim(0, 1.05)
    ax.set_xlabel("workers")
    ax.set_ylabel(ylabel)
    ax.set_title(title + " (median; whiskers: min-max of the repetitions)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def fig_pipeline_efficiency(doc):
    return fig_pipeline_makespan(doc, "efficiency", "lower bound / makespan", "Pipeline efficiency against workers")


def fig_pipeline_gantt(doc):
    """One timeline per model and mode, from its first repetition at the median worker count."""
    runs = {}
    for b in results.iterations(doc, "pipeline"):
        if "timeline" in b and b.get("repetition_index", 0) == 0:
            runs.setdefault(pipeline_label(b), []).append(b)
    if not runs:
        return None
    chosen = []
    for label, entries in sorted(runs.items()):
        entries.sort(key=lambda b: b["params"].get("workers", 0))
        chosen.append((label, entries[len(entries) // 2]))
    fig, axes = plt.subplots(len(chosen), 1, figsize=(9, 2.2 * len(chosen)), squeeze=False)
    for ax, (label, b) in zip(axes[:, 0], chosen):
        for item in b["timeline"]:
            worker, ds, de, ps, pe = item[:5]
            download_worker = item[5] if len(item) > 5 else worker  # files before the field: the parser
            if download_worker >= 0:  # a thread waited for it; a timer's download holds no row
                ax.broken_barh([(ds, de - ds)], (download_worker - 0.4, 0.8), color="#9ecae1")
            ax.broken_barh([(ps, pe - ps)], (worker - 0.4, 0.8), color="#08519c")
        workers = b["params"].get("workers")
        ax.set_title(f"{label}" + (f", {workers} workers" if workers else "") +
                     f": makespan {b['makespan_s'] * 1e3:.0f} ms, bound {b['lower_bound_s'] * 1e3:.0f} ms", fontsize=9)
        ax.set_ylabel("worker")
        ax.axvline(b["lower_bound_s"] * 1e3, color="red", linestyle="--", linewidth=1)
    axes[-1, 0].set_xlabel("ms since start, by worker thread or process (light: waiting for a download, "
                           "dark: parsing; red: lower bound)")
    return fig


register("pipeline_makespan", fig_pipeline_makespan)
register("pipeline_efficiency", fig_pipeline_efficiency)
register("pipeline_timeline", fig_pipeline_gantt)
