"""Plots a harness result file into figures, a self-contained report.html and a summary.md.

Usage: bazel run //plots -- RESULTS.json [--out DIR]

Writes one PNG and one SVG per figure into DIR (default: reports/<name of the results file>/ in
the workspace), then report.html (figures embedded, tables, the run's context) and summary.md (for
a CI job summary). Exits 2 with one line on a missing, malformed or foreign file.
"""
import argparse
import base64
import html
import io
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import FuncFormatter  # noqa: E402

import numpy as np  # noqa: E402

from plots import queueing, results  # noqa: E402

SPECTRUM = [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]


def _echo_rows(doc, key):
    """The echo median rows that have `key`, closed and open loop alike but not capacity searches."""
    return [r for r in results.medians(doc, "echo")
            if key in r and "connections" in r.get("params", {}) and "capacity" not in r["params"]]


def _echo_lines(doc, key):
    """{series label: ([connections], [values])} for one echo figure, from the median rows."""
    lines = {}
    for row in _echo_rows(doc, key):
        xs, ys = lines.setdefault(results.series_key(row), ([], []))
        xs.append(row["params"]["connections"])
        ys.append(row[key])
    return {label: tuple(zip(*sorted(zip(xs, ys)))) for label, (xs, ys) in sorted(lines.items())}


def _warned(doc, key):
    """{series label: [(connections, value)]} of the rows with warnings (client-bound, behind schedule)."""
    out = {}
    for row in _echo_rows(doc, key):
        if row.get("warnings"):
            out.setdefault(results.series_key(row), []).append((row["params"]["connections"], row[key]))
    return out


def _plain(v):
    return f"{v:,.0f}" if v >= 10 else f"{v:g}"


def _log_y(ax):
    """A log y axis labelled in plain numbers (30,000, not 3x10^4), minor ticks at 2 and 5."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _plain(v)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: _plain(v) if f"{v:.1e}"[0] in "25" else ""))


def _line_figure(doc, key, ylabel, title, logy=True, scale=1.0):
    lines = _echo_lines(doc, key)
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    warned = _warned(doc, key)
    for label, (xs, ys) in lines.items():
        line, = ax.plot(xs, [y * scale for y in ys], marker="o", label=label)
        flagged = warned.get(label, [])
        ax.plot([x for x, _ in flagged], [y * scale for _, y in flagged], linestyle="", marker="o", markersize=9,
                markerfacecolor="white", color=line.get_color())
    if warned:
        title += " (hollow: client-bound or behind schedule)"
    ax.set_xscale("log")
    if logy:
        _log_y(ax)
    else:
        ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("connections")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def fig_throughput(doc):
    return _line_figure(doc, "msgs_per_second", "round trips per second", "Echo throughput (median)")


def fig_p99(doc):
    return _line_figure(doc, "p99_us", "p99 round trip (us)", "Echo p99 latency (median of repetitions)")


def fig_cpu(doc):
    return _line_figure(doc, "server_cpu_us_per_msg", "server CPU per round trip (us)", "Server CPU per message",
                        logy=False)


def fig_rss(doc):
    return _line_figure(doc, "server_peak_rss_bytes", "peak RSS (MiB)", "Server memory", scale=1 / 2**20)


def fig_fairness(doc):
    fair = _echo_lines(doc, "fairness")
    starved = _echo_lines(doc, "starved_connections")
    if not fair:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for label, (xs, ys) in fair.items():
        top.plot(xs, ys, marker="o", label=label)
    for label, (xs, ys) in starved.items():
        bottom.plot(xs, ys, marker="o", label=label)
    top.set_ylabel("Jain's fairness index")
    top.set_ylim(0, 1.05)
    top.set_title("Fairness across connections, and connections never answered")
    bottom.set_ylabel("starved connections")
    bottom.set_xlabel("connections")
    bottom.set_xscale("log")
    for ax in (top, bottom):
        ax.grid(True, which="both", alpha=0.3)
    top.legend(fontsize=8)
    return fig


def _closed_or_open(doc):
    """Echo repetitions with a latency histogram, capacity searches aside (theirs is one window's)."""
    return [b for b in results.iterations(doc, "echo") if "latency_histogram" in b and "capacity" not in b["params"]]


def spectrum_load(doc):
    """The connection count to draw the spectrum at: 100 where measured, else the largest."""
    loads = {b["params"]["connections"] for b in _closed_or_open(doc)}
    if not loads:
        return None
    return 100 if 100 in loads else max(loads)


def fig_spectrum(doc):
    load = spectrum_load(doc)
    if load is None:
        return None
    groups = {}
    starved = {}
    for b in _closed_or_open(doc):
        if b["params"].get("connections") == load:
            label = results.series_key(b)
            groups.setdefault(label, []).append(b["latency_histogram"])
            starved[label] = max(starved.get(label, 0), b.get("starved_connections", 0))
    # A pool's latencies are those of the connections it answered: say how many it did not.
    groups = {(f"{label} [{starved[label]} of {load} never answered]" if starved[label] else label): h
              for label, h in groups.items()}
    fig, ax = plt.subplots(figsize=(8, 5))
    nines = [-math.log10(1 - p / 100) for p in SPECTRUM]
    for label, histograms in sorted(groups.items()):
        ax.plot(nines, results.histogram_percentiles(histograms, SPECTRUM), marker=".", label=label)
    ax.set_xticks(nines)
    ax.set_xticklabels([f"p{p:g}" for p in SPECTRUM], rotation=45)
    ax.set_yscale("log")
    ax.set_ylabel("round trip (us)")
    ax.set_title(f"Latency spectrum at {load} connections (all repetitions merged)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _capacity_entries(doc):
    """{connections: [(label, entry)]} of the capacity searches (their first repetition)."""
    out = {}
    for b in results.iterations(doc, "echo"):
        if "steps" in b and b.get("repetition_index", 0) == 0:
            label = results.series_key(b, exclude=("connections", "capacity"))
            out.setdefault(b["params"]["connections"], []).append((label, b))
    return {c: sorted(v, key=lambda x: x[0]) for c, v in sorted(out.items())}


def fig_capacity_latency(doc, key="p99_us", ylabel="round trip (us, log)", title="Latency against load"):
    """p50 and p99 against the achieved rate of each step of each search (the hockey stick), the
    capacity marked; one panel per connection count. Points the load generator could not vouch for
    (client-bound) are hollow."""
    searches = _capacity_entries(doc)
    if not searches:
        return None
    fig, axes = plt.subplots(1, len(searches), figsize=(7 * len(searches), 5), squeeze=False)
    for ax, (connections, entries) in zip(axes[0], searches.items()):
        for label, e in entries:
            steps = sorted((s for s in e["steps"] if s["offered"] > 0 and key in s), key=lambda s: s["msgs_per_second"])
            xs = [s["msgs_per_second"] for s in steps]
            line, = ax.plot(xs, [s[key] for s in steps], marker="o", label=label)
            if key == "p99_us":
                ax.plot(xs, [s["p50_us"] for s in steps], linestyle=":", color=line.get_color())
            bound = [s for s in steps if s.get("client_bound")]
            ax.plot([s["msgs_per_second"] for s in bound], [s[key] for s in bound], linestyle="", marker="o",
                    markerfacecolor="white", color=line.get_color())
            ax.axvline(e["capacity_msgs_per_second"], color=line.get_color(), alpha=0.4, linewidth=1)
        slo = entries[0][1]["params"]["capacity"]
        if key == "p99_us":
            for bound in slo.split("+"):
                pct, limit = bound.split(":")
                ax.axhline(_us(limit), color="red", linestyle="--", linewidth=1)
            _log_y(ax)
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel("achieved round trips per second")
        ax.set_ylabel(ylabel)
        notes = "dotted: p50; " if key == "p99_us" else ""
        ax.set_title(f"{title}, {connections} connections (SLO {slo}; {notes}hollow: client-bound)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def _us(text):
    """'2ms' -> 2000.0, as the harness prints durations."""
    for suffix, scale in (("us", 1), ("ms", 1e3), ("ns", 1e-3), ("s", 1e6)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * scale
    return float(text)


def fig_service_demand(doc):
    return fig_capacity_latency(doc, "server_cpu_us_per_msg", "server CPU per round trip (us)",
                                "Service demand against load")


def _server_cpus(entry):
    """How many CPUs the entry's server had: its placement's server set, else the machine's."""
    text = entry.get("placement", {}).get("server_cpus", "")
    count = 0
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def fig_capacity_predicted(doc):
    """Measured mean round trip against load (solid) beside the M/D/c prediction from the service
    demand at the lowest rate (dashed), per connection count: where they part, the model's cost per
    message changed with load."""
    searches = _capacity_entries(doc)
    if not searches:
        return None
    fig, axes = plt.subplots(1, len(searches), figsize=(7 * len(searches), 5), squeeze=False)
    for ax, (connections, entries) in zip(axes[0], searches.items()):
        for label, e in entries:
            cpus = _server_cpus(e)
            predicted = queueing.predict(e["steps"], cpus)
            steps = sorted((s for s in e["steps"] if s["offered"] > 0 and "mean_us" in s), key=lambda s: s["offered"])
            if predicted is None or not steps:
                continue
            line, = ax.plot([s["msgs_per_second"] for s in steps], [s["mean_us"] for s in steps], marker="o",
                            label=label)
            _, saturation, curve = predicted
            xs = [x for x, _ in curve]
            grid = [xs[0] + (min(saturation * 0.98, max(xs) * 1.3) - xs[0]) * i / 40 for i in range(41)]
            service = predicted[0] * 1e-6
            base = curve[0][1] - queueing.mdc_wait(xs[0], service, cpus) * 1e6
            ax.plot(grid, [base + queueing.mdc_wait(x, service, cpus) * 1e6 for x in grid], linestyle="--",
                    color=line.get_color(), alpha=0.7)
        _log_y(ax)
        ax.set_xlabel("achieved round trips per second")
        ax.set_ylabel("mean round trip (us, log)")
        ax.set_title(f"Measured (solid) and M/D/c predicted (dashed), {connections} connections", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def capacity_rows(doc):
    """One row per capacity search: its capacity (or lower bound), the service demand at low load,
    the saturation M/D/c predicts from it, and where measurement and prediction part."""
    rows = []
    for connections, entries in _capacity_entries(doc).items():
        for label, e in entries:
            predicted = queueing.predict(e["steps"], _server_cpus(e))
            capacity = f"{e['capacity_msgs_per_second']:,.0f}"
            if e.get("capacity_limit") == "client":
                capacity = f">= {capacity} (client-bound)"
            if predicted is None:
                rows.append([label, str(connections), capacity, "-", "-", "-"])
                continue
            service, saturation, curve = predicted
            parts = queueing.parting(e["steps"], curve)
            if parts is None:
                verdict = "agree within 50%"
            elif math.isinf(parts[1]):
                verdict = f"at {parts[0]:,.0f}/s it served a rate the model says saturates it"
            else:
                verdict = f"at {parts[0]:,.0f}/s: measured {parts[1]:.2f}x predicted"
            rows.append([label, str(connections), capacity, f"{service:.1f}", f"{saturation:,.0f}", verdict])
    return rows


def memory_per_connection(doc):
    """(model, bytes per connection, connection counts) from the slope of the server's peak RSS
    against connections (least squares over the median rows of each model, closed or open loop,
    capacity searches aside): what one more connection costs each model in memory."""
    points = {}
    for r in _echo_rows(doc, "server_peak_rss_bytes"):
        points.setdefault(results.series_key(r), []).append((r["params"]["connections"], r["server_peak_rss_bytes"]))
    rows = []
    for label, xy in sorted(points.items()):
        xs = sorted({x for x, _ in xy})
        if len(xs) < 2:
            continue
        slope = float(np.polyfit([x for x, _ in xy], [y for _, y in xy], 1)[0])
        rows.append((label, slope, xs))
    return rows


def pool_sizes(doc):
    """(model mode, pick, best makespan, workers at best, Little's law) for each executor swept over
    --workers: the smallest worker count whose median makespan is within 5% of its best."""
    sweeps = {}
    for r in results.medians(doc, "pipeline"):
        if "workers" in r["params"] and "makespan_s" in r:
            key = r["model"] + (f" {r['params']['mode']}" if "mode" in r["params"] else "")
            sweeps.setdefault(key, {})[r["params"]["workers"]] = r["makespan_s"]
    little = {}
    for b in results.iterations(doc, "pipeline"):
        if "workers" in b["params"] and "littles_law_workers" in b:
            key = b["model"] + (f" {b['params']['mode']}" if "mode" in b["params"] else "")
            little.setdefault(key, []).append(b["littles_law_workers"])
    rows = []
    for key, makespans in sorted(sweeps.items()):
        if len(makespans) < 2:
            continue
        best_at = min(makespans, key=makespans.get)
        pick = min(w for w, m in makespans.items() if m <= 1.05 * makespans[best_at])
        predicted = sorted(little.get(key, [0]))[len(little.get(key, [0])) // 2]
        rows.append((key, pick, makespans[best_at], best_at, predicted))
    return rows


def fig_micro(doc):
    rows = [r for r in results.medians(doc, "micro") if "real_time" in r]
    if not rows:
        return None
    rows.sort(key=lambda r: r["run_name"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    labels = [r["run_name"].removeprefix("micro/").replace("/real_time", "") for r in rows]
    ax.barh(labels, [r["real_time"] for r in rows])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("wall time per operation (ns, log)")
    ax.set_title("Primitives (Google Benchmark, median)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return fig


def _pipeline_rows(doc):
    return [r for r in results.medians(doc, "pipeline") if "makespan_s" in r]


def _pipeline_label(row):
    mode = row["params"].get("mode")
    return row["model"] + (f" ({mode})" if mode else "")


def _same_curve(a, b, tolerance=0.05):
    """Two bound curves within 5% of each other at every x: the bounds of the two modes differ only
    where the parent parses (process models), not by the parse-time drift between runs."""
    if a is None or [x for x, _ in a] != [x for x, _ in b]:
        return False
    return all(abs(ya - yb) <= tolerance * max(ya, yb) for (_, ya), (_, yb) in zip(a, b))


def fig_pipeline_makespan(doc, key="makespan_s", ylabel="makespan (s)", title="Pipeline makespan against workers"):
    rows = _pipeline_rows(doc)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(11, 5.5))
    fig.subplots_adjust(right=0.72)  # the legend goes beside the plot, not over the curves
    lines, flat = {}, {}
    for r in rows:
        if "workers" in r["params"]:
            lines.setdefault(_pipeline_label(r), []).append((r["params"]["workers"], r[key], r["lower_bound_s"]))
        else:
            flat[_pipeline_label(r)] = r[key]  # no workers: one value for every x
    xs_all = sorted({x for pts in lines.values() for x, _, _ in pts}) or [1]
    bounds_drawn = {}  # model -> its bound curve; a mode gets its own only where it differs
    for label, pts in sorted(lines.items()):
        pts.sort()
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        model = label.split(" ")[0]
        bound = [(p[0], p[2]) for p in pts]
        if key == "makespan_s" and not _same_curve(bounds_drawn.get(model), bound):
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
    ax.set_title(title)
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
            runs.setdefault(_pipeline_label(b), []).append(b)
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


FIGURES = [
    ("echo_throughput", fig_throughput),
    ("echo_p99", fig_p99),
    ("echo_latency_spectrum", fig_spectrum),
    ("echo_server_cpu", fig_cpu),
    ("echo_server_rss", fig_rss),
    ("echo_fairness", fig_fairness),
    ("echo_capacity_latency", fig_capacity_latency),
    ("echo_service_demand", fig_service_demand),
    ("echo_capacity_predicted", fig_capacity_predicted),
    ("micro_primitives", fig_micro),
    ("pipeline_makespan", fig_pipeline_makespan),
    ("pipeline_efficiency", fig_pipeline_efficiency),
    ("pipeline_timeline", fig_pipeline_gantt),
]


def write_figures(doc, out_dir):
    """Draws every figure the data allows; returns [(name, png_path)]."""
    written = []
    for name, draw in FIGURES:
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


def table_rows(doc):
    """(scenario, headers, rows) for the tables of the report and the summary: one per scenario, its
    columns and their display as the file declares them (context.scenarios, context.metrics)."""
    tables = []
    declared = results.declarations(doc)
    for scenario, info in sorted(results.scenarios(doc).items()):
        keys = [k for k in info.get("columns", []) if k in declared]
        rows = sorted(results.medians(doc, scenario), key=lambda r: r["run_name"])
        if keys and rows:
            tables.append((scenario, ["run"] + [declared[k].get("display", {}).get("label", k) for k in keys],
                           [[r["run_name"]] + [results.display(declared[k], r.get(k)) for k in keys] for r in rows]))
    capacity = capacity_rows(doc)
    if capacity:
        tables.append(("capacity", ["search", "connections", "capacity msgs/s", "service us (low load)",
                                    "M/D/c saturation /s", "measured against predicted"], capacity))
    memory = memory_per_connection(doc)
    if memory:
        tables.append(("memory per connection", ["model", "server RSS per connection", "connections fitted"],
                       [[label, f"{slope / 1024:,.1f} KiB", ", ".join(str(x) for x in xs)]
                        for label, slope, xs in memory]))
    pools = pool_sizes(doc)
    if pools:
        tables.append(("pool size", ["executor", "workers within 5% of best", "best makespan s", "at workers",
                                     "Little's law"],
                       [[k, str(p), f"{m:.3f}", str(b), f"{l:.0f}"] for k, p, m, b, l in pools]))
    failed = [b for b in doc["benchmarks"] if b.get("status") == "failed"]
    if failed:
        tables.append(("failed", ["run", "error"], [[b["name"], b.get("error", "")] for b in failed]))
    return tables


def write_summary(doc, out_dir):
    ctx = doc["context"]
    lines = [f"## Concurrency harness: {ctx.get('profile', '?')} profile, {ctx.get('date', '')}", "",
             f"{ctx.get('machine', {}).get('cpu_model', '?')}, {ctx.get('num_cpus', '?')} cores; "
             f"commit `{ctx.get('git_commit', '?')}`. {ctx.get('note', '')}", ""]
    for scenario, headers, rows in table_rows(doc):
        lines += [f"### {scenario}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        lines.append("")
    path = os.path.join(out_dir, "summary.md")
    results.write_file(path, "\n".join(lines))
    return path


def write_html(doc, figures, out_dir, title):
    ctx = doc["context"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin-bottom:2em}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
             "img{max-width:100%;border:1px solid #eee;margin:1em 0}table.context td{text-align:left}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(ctx.get('note', ''))}</p>"]
    for name, png in figures:
        with open(png, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        parts.append(f"<h2>{html.escape(name.replace('_', ' '))}</h2>"
                     f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
    for scenario, headers, rows in table_rows(doc):
        parts.append(f"<h2>{html.escape(scenario)} table</h2><table><tr>" +
                     "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    parts.append("<h2>context</h2><table class='context'>")
    for key, value in sorted(ctx.items()):
        parts.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(str(value))}</td></tr>")
    parts.append("</table></body></html>")
    path = os.path.join(out_dir, "report.html")
    results.write_file(path, "\n".join(parts))
    return path




def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a results file written by the harness")
    parser.add_argument("--out", "-o", help="output folder (default: reports/<name>/ in the workspace)")
    args = parser.parse_args(argv)
    try:
        doc = results.load(results.user_path(args.results))
    except results.BadInput as e:
        print(f"plots: error: {e}", file=sys.stderr)
        return 2
    name = os.path.splitext(os.path.basename(args.results))[0]
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")
    out_dir = results.user_path(args.out) if args.out else os.path.join(workspace, "reports", name)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        print(f"plots: error: --out: cannot create {out_dir}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        figures = write_figures(doc, out_dir)
        report = write_html(doc, figures, out_dir, f"Concurrency harness: {name}")
        summary = write_summary(doc, out_dir)
    except results.BadInput as e:
        print(f"plots: error: {e}", file=sys.stderr)
        return 2
    print(f"{len(figures)} figures, {report}, {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
