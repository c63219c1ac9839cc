"""The echo scenario's figures: throughput, latency, CPU, memory and fairness against connections;
the latency spectrum; and each capacity search's latency and service demand against load beside
its prediction."""
import math
import re

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from plots import queueing, results
from plots.figures import log_y, register, spread_of, whiskers
from plots.summary_numbers import capacity_entries, echo_rows, server_cpus, us

SPECTRUM = [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]


def plain_rows(doc, key):
    """The median rows of echo without --work: those of the figures against connections (the work
    section is one point per model and has figures of its own)."""
    return [r for r in echo_rows(doc, key) if "work" not in r["params"]]


def echo_lines(doc, key):
    """{series label: ([connections], [values], [run names])} for one echo figure, from the median rows."""
    lines = {}
    for row in plain_rows(doc, key):
        lines.setdefault(results.series_key(row), []).append((row["params"]["connections"], row[key], row["run_name"]))
    return {label: tuple(zip(*sorted(points))) for label, points in sorted(lines.items())}


def _warned(doc, key):
    """The run names of the rows with warnings (client-bound, behind schedule)."""
    return {row["run_name"] for row in plain_rows(doc, key) if row.get("warnings")}


def line_figure(doc, key, ylabel, title, logy=True, scale=1.0):
    lines = echo_lines(doc, key)
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    warned = _warned(doc, key)
    ranges = spread_of(doc, "echo", key)
    for i, (label, (xs, ys, names)) in enumerate(lines.items()):
        # Each series a little to the side of the next (2% on the log axis), so whiskers do not overlap.
        xs = [x * 10 ** (0.01 * (i - (len(lines) - 1) / 2)) for x in xs]
        scaled = [y * scale for y in ys]
        line, = ax.plot(xs, scaled, marker="o", label=label)
        ax.errorbar(xs, scaled, yerr=whiskers(scaled, names, ranges, scale), linestyle="", color=line.get_color(),
                    capsize=3, linewidth=1)
        flagged = [(xs[k], scaled[k]) for k, name in enumerate(names) if name in warned]
        ax.plot([x for x, _ in flagged], [y for _, y in flagged], linestyle="", marker="o", markersize=9,
                markerfacecolor="white", color=line.get_color())
    title += "; whiskers: min-max of the repetitions"
    if warned:
        title += "\n(hollow: client-bound or behind schedule)"
    ax.set_xscale("log")
    if logy:
        log_y(ax)
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
    return line_figure(doc, "msgs_per_second", "round trips per second", "Echo throughput (median)")


def fig_p99(doc):
    return line_figure(doc, "p99_us", "p99 round trip (us)", "Echo p99 latency (median of repetitions)")


def fig_cpu(doc):
    return line_figure(doc, "server_cpu_us_per_msg", "server CPU per round trip (us)", "Server CPU per message",
                        logy=False)


def fig_rss(doc):
    return line_figure(doc, "server_peak_rss_bytes", "peak RSS (MiB)", "Server memory", scale=1 / 2**20)


def fig_fairness(doc):
    fair = echo_lines(doc, "fairness")
    starved = echo_lines(doc, "starved_connections")
    if not fair:
        return None
    # What a random order would score with the same round trips (few a connection: well under 1).
    chance = echo_lines(doc, "fairness_random_order")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for ax, lines, key in ((top, fair, "fairness"), (bottom, starved, "starved_connections")):
        ranges = spread_of(doc, "echo", key)
        for label, (xs, ys, names) in lines.items():
            line, = ax.plot(xs, ys, marker="o", label=label)
            ax.errorbar(xs, ys, yerr=whiskers(ys, names, ranges), linestyle="", color=line.get_color(), capsize=3,
                        linewidth=1)
            if ax is top and label in chance:
                ax.plot(chance[label][0], chance[label][1], linestyle="--", linewidth=1, color=line.get_color())
    if chance:
        top.plot([], [], linestyle="--", color="grey", label="dashed: the same round trips in a random order")
    top.set_ylabel("Jain's fairness index")
    top.set_ylim(0, 1.05)
    top.set_title("Fairness across connections, and connections never answered (whiskers: min-max)")
    bottom.set_ylabel("starved connections")
    bottom.set_xlabel("connections")
    bottom.set_xscale("log")
    for ax in (top, bottom):
        ax.grid(True, which="both", alpha=0.3)
    top.legend(fontsize=8)
    return fig


def closed_or_open(doc):
    """Echo repetitions with a latency histogram, capacity searches aside (theirs is one window's)."""
    return [b for b in results.iterations(doc, "echo") if "latency_histogram" in b and "capacity" not in b["params"]]


def spectrum_load(doc):
    """The connection count to draw the spectrum at: 100 where measured, else the largest."""
    loads = {b["params"]["connections"] for b in closed_or_open(doc)}
    if not loads:
        return None
    return 100 if 100 in loads else max(loads)


def fig_spectrum(doc):
    load = spectrum_load(doc)
    if load is None:
        return None
    groups = {}
    starved = {}
    for b in closed_or_open(doc):
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


def _search_panels(doc):
    """A figure with a panel per connection count of the capacity searches, and (panel, (connections,
    [(label, entry)])) for each; (None, []) when the file has no search."""
    searches = capacity_entries(doc)
    if not searches:
        return None, []
    fig, axes = plt.subplots(1, len(searches), figsize=(7 * len(searches), 5), squeeze=False)
    return fig, list(zip(axes[0], searches.items()))


def fig_capacity_latency(doc, key="p99_us", ylabel="round trip (us, log)", title="Latency against load"):
    """p50 and p99 against the achieved rate of each step of each search (the hockey stick), the
    capacity marked; one panel per connection count. Points the load generator could not vouch for
    (client-bound) are hollow."""
    fig, panels = _search_panels(doc)
    for ax, (connections, entries) in panels:
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
                ax.axhline(us(limit), color="red", linestyle="--", linewidth=1)
            log_y(ax)
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel("achieved round trips per second")
        ax.set_ylabel(ylabel)
        notes = "dotted: p50; " if key == "p99_us" else ""
        ax.set_title(f"{title}, {connections} connections (SLO {slo}; {notes}hollow: client-bound)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def fig_service_demand(doc):
    return fig_capacity_latency(doc, "server_cpu_us_per_msg", "server CPU per round trip (us)",
                                "Service demand against load")


def fig_capacity_predicted(doc):
    """Measured mean round trip against load (solid) beside what the model's scheduling discipline
    predicts from the service demand at the lowest rate and the work's variance (dashed; see
    plots/queueing.py), per connection count: where they part, the model's cost per message changed
    with load, or it does not schedule as its discipline says."""
    fig, panels = _search_panels(doc)
    for ax, (connections, entries) in panels:
        for label, e in entries:
            predicted = queueing.predict(e["steps"], server_cpus(e), e.get("model", ""), e.get("params"))
            steps = sorted((s for s in e["steps"] if s["offered"] > 0 and "mean_us" in s), key=lambda s: s["offered"])
            if predicted is None or not steps:
                continue
            prediction, curve = predicted
            line, = ax.plot([s["msgs_per_second"] for s in steps], [s["mean_us"] for s in steps], marker="o",
                            label=f"{label}: {prediction.discipline.name}")
            xs = [x for x, _ in curve]
            top = min(prediction.saturation * 0.98, max(xs) * 1.3)
            grid = [xs[0] + (top - xs[0]) * i / 40 for i in range(41)]
            ax.plot(grid, [prediction.mean_us(x) for x in grid], linestyle="--", color=line.get_color(), alpha=0.7)
        log_y(ax)
        ax.set_xlabel("achieved round trips per second")
        ax.set_ylabel("mean round trip (us, log)")
        ax.set_title(f"Measured (solid) and predicted by discipline (dashed), {connections} connections", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def fig_classes(doc):
    """--work with two classes: each run's short and long requests, their p50 and p99 round trips and
    p99 slowdowns side by side, so that short requests stuck behind long ones show."""
    rows = sorted(echo_rows(doc, "short_p99_us"), key=lambda r: results.series_key(r))
    if not rows:
        return None
    fig, (lat, slow) = plt.subplots(2, 1, figsize=(max(8, 0.9 * len(rows) + 3), 8), sharex=True)
    width = 0.2
    xs = range(len(rows))
    bars = (("short_p50_us", "short p50", "#9ecae1"), ("short_p99_us", "short p99", "#3182bd"),
            ("long_p50_us", "long p50", "#fdae6b"), ("long_p99_us", "long p99", "#e6550d"))
    names = [r["run_name"] for r in rows]
    for i, (key, label, color) in enumerate(bars):
        values = [r.get(key, float("nan")) for r in rows]
        lat.bar([x + (i - 1.5) * width for x in xs], values, width, label=label, color=color,
                yerr=whiskers(values, names, spread_of(doc, "echo", key)), capsize=2)
    log_y(lat)
    lat.set_ylabel("round trip (us, log)")
    lat.legend(fontsize=8)
    for i, (key, label, color) in enumerate((("short_slowdown_p99", "short", "#3182bd"),
                                             ("long_slowdown_p99", "long", "#e6550d"))):
        values = [r.get(key, float("nan")) for r in rows]
        slow.bar([x + (i - 0.5) * width for x in xs], values, width, label=f"{label} p99 slowdown", color=color,
                 yerr=whiskers(values, names, spread_of(doc, "echo", key)), capsize=2)
    log_y(slow)
    slow.axhline(1, color="grey", linewidth=0.8)
    slow.set_ylabel("round trip / own work (log)")
    slow.legend(fontsize=8)
    slow.set_xticks(list(xs))
    # What every run shares goes in the title; the labels keep what differs.
    shared = {k: v for k, v in rows[0]["params"].items() if all(r["params"].get(k) == v for r in rows)}
    lat.set_title("Short and long requests, whiskers min-max" + (f" ({', '.join(f'{k}={v}' for k, v in sorted(shared.items()))})"
                                               if shared else ""), fontsize=10)
    slow.set_xticklabels([results.series_key(r, exclude=tuple(shared)) for r in rows], rotation=30, ha="right",
                         fontsize=8)
    for ax in (lat, slow):
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def fig_work(doc):
    """--work runs, one group of bars per work spec: each model's throughput and its server CPU per
    request (the work itself drawn as a line where it is CPU)."""
    rows = [r for r in echo_rows(doc, "msgs_per_second") if "work" in r["params"] and "short_p99_us" not in r]
    if not rows:
        return None
    works = sorted({r["params"]["work"] for r in rows})
    labels = sorted({results.series_key(r, exclude=("connections", "size", "work")) for r in rows})
    fig, axes = plt.subplots(2, len(works), figsize=(max(8, 4.5 * len(works)), 8), squeeze=False)
    rate_ranges = spread_of(doc, "echo", "msgs_per_second")
    cpu_ranges = spread_of(doc, "echo", "server_cpu_us_per_msg")
    for col, work in enumerate(works):
        mine = {results.series_key(r, exclude=("connections", "size", "work")): r for r in rows
                if r["params"]["work"] == work}
        xs = range(len(labels))
        top, bottom = axes[0][col], axes[1][col]
        names = [mine[l]["run_name"] if l in mine else "" for l in labels]
        rates = [mine[l]["msgs_per_second"] if l in mine else float("nan") for l in labels]
        top.bar(xs, rates, color="#3182bd", yerr=whiskers(rates, names, rate_ranges), capsize=3)
        hollow = [x for x, l in zip(xs, labels) if l in mine and mine[l].get("warnings")]
        top.bar(hollow, [mine[labels[x]]["msgs_per_second"] for x in hollow], color="white", edgecolor="#3182bd",
                hatch="//")
        top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        top.set_title(f"--work={work}, {rows[0]['params']['connections']} connections\n(whiskers: min-max"
                      + ("; hatched: warned)" if hollow else ")"), fontsize=9)
        top.set_ylabel("round trips per second")
        cpus = [mine[l].get("server_cpu_us_per_msg", float("nan")) if l in mine else float("nan") for l in labels]
        bottom.bar(xs, cpus, color="#e6550d", yerr=whiskers(cpus, names, cpu_ranges), capsize=3)
        fixed_cpu = re.fullmatch(r"cpu:fixed:([0-9.]+)us", work)
        if fixed_cpu:  # the work itself: what is above it is the model's
            bottom.axhline(float(fixed_cpu.group(1)), color="grey", linewidth=0.8)
        bottom.set_ylabel("server CPU per round trip (us)")
        bottom.set_xticks(list(xs))
        bottom.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
        top.set_xticks(list(xs))
        top.set_xticklabels([])
        for ax in (top, bottom):
            ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    return fig


for _name, _draw in (("echo_throughput", fig_throughput), ("echo_p99", fig_p99),
                     ("echo_latency_spectrum", fig_spectrum), ("echo_server_cpu", fig_cpu),
                     ("echo_server_rss", fig_rss), ("echo_fairness", fig_fairness),
                     ("echo_capacity_latency", fig_capacity_latency), ("echo_service_demand", fig_service_demand),
                     ("echo_capacity_predicted", fig_capacity_predicted), ("echo_classes", fig_classes),
                     ("echo_work", fig_work)):
    register(_name, _draw)
