"""The figures the report's tables state (no drawing, no matplotlib): each capacity search's
capacity beside its prediction, the memory one more connection costs each model, the pool size a
sweep points at, and every table of the report and the summary."""
import math

import numpy as np

from plots import queueing, results


def echo_rows(doc, key):
    """The echo median rows that have `key`, closed and open loop alike but not capacity searches."""
    return [r for r in results.medians(doc, "echo")
            if key in r and "connections" in r.get("params", {}) and "capacity" not in r["params"]]


def capacity_entries(doc):
    """{connections: [(label, entry)]} of the capacity searches (each run's first repetition the noise
    guard kept: a search noise stopped is measured again, and its redo has a later index)."""
    out, seen = {}, set()
    for b in results.iterations(doc, "echo"):
        run = b.get("run_name", b["name"])
        if "steps" in b and run not in seen:
            seen.add(run)
            label = results.series_key(b, exclude=("connections", "capacity"))
            out.setdefault(b["params"]["connections"], []).append((label, b))
    return {c: sorted(v, key=lambda x: x[0]) for c, v in sorted(out.items())}


def us(text):
    """'2ms' -> 2000.0, as the harness prints durations."""
    for suffix, scale in (("us", 1), ("ms", 1e3), ("ns", 1e-3), ("s", 1e6)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * scale
    return float(text)


def server_cpus(entry):
    """How many CPUs the entry's server had: its placement's server set, else the machine's."""
    text = entry.get("placement", {}).get("server_cpus", "")
    count = 0
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def capacity_rows(doc):
    """One row per capacity search: its capacity (or lower bound), the service demand at low load,
    the model's scheduling discipline, the saturation it predicts, and where measurement and prediction part."""
    rows = []
    for connections, entries in capacity_entries(doc).items():
        for label, e in entries:
            predicted = queueing.predict(e["steps"], server_cpus(e), e.get("model", ""), e.get("params"))
            capacity = f"{e['capacity_msgs_per_second']:,.0f}"
            if e.get("capacity_limit") == "client":
                capacity = f">= {capacity} (client-bound)"
            elif e.get("capacity_limit") == "noise":
                capacity = f">= {capacity} (stopped by noise)"
            if predicted is None:
                rows.append([label, str(connections), capacity, "-", "-", "-", "-"])
                continue
            prediction, curve = predicted
            parts = queueing.parting(e["steps"], curve)
            if parts is None:
                verdict = "agree within 50%"
            elif math.isinf(parts[1]):
                verdict = f"at {parts[0]:,.0f}/s it served a rate the model says saturates it"
            else:
                verdict = f"at {parts[0]:,.0f}/s: measured {parts[1]:.2f}x predicted"
            rows.append([label, str(connections), capacity, f"{prediction.service_us:.1f}", prediction.discipline.name,
                         f"{prediction.saturation:,.0f}", verdict])
    return rows


def memory_per_connection(doc):
    """(model, bytes per connection, connection counts) from the slope of the server's peak RSS
    against connections (least squares over the median rows of each model, closed or open loop,
    capacity searches aside): what one more connection costs each model in memory."""
    points = {}
    for r in echo_rows(doc, "server_peak_rss_bytes"):
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


def syscall_rows(doc):
    """One row per run counted with --syscalls: system calls per round trip (median of the repetitions)
    and the kinds most made (median of each kind's per-round-trip count)."""
    kinds, totals = {}, {}
    for b in results.iterations(doc, "echo"):
        if "syscalls" in b:
            totals.setdefault(b["run_name"], []).append(b["syscalls_per_msg"])
            for kind, per_msg in b["syscalls"]["per_msg"]:
                kinds.setdefault(b["run_name"], {}).setdefault(kind, []).append(per_msg)
    rows = []
    for name in sorted(totals):
        n = len(totals[name])
        # A kind absent from a repetition was not made in it: its median counts that repetition as 0.
        by_kind = {k: float(np.median(v + [0.0] * (n - len(v)))) for k, v in kinds[name].items()}
        top = sorted(by_kind.items(), key=lambda kv: -kv[1])[:4]
        rows.append([name, f"{np.median(totals[name]):.2f}", "; ".join(f"{k} {v:.2f}" for k, v in top), str(n)])
    return rows


def profiled(doc):
    """(run name, profile) of every run profiled with --flamegraph (its first repetition's)."""
    seen = {}
    for b in results.iterations(doc, "echo"):
        if "profile" in b:
            seen.setdefault(b["run_name"], b["profile"])
    return sorted(seen.items())


def profile_tables(doc):
    """(title, headers, rows) of each profiled run's top functions: on the stack and in itself."""
    return [(f"profile: {name}", ["function", "on the stack", "self"],
             [[f, f"{100 * total:.1f}%", f"{100 * own:.1f}%"] for f, total, own in p["top"]["rows"][:20]])
            for name, p in profiled(doc)]


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
                                    "discipline", "predicted saturation /s", "measured against predicted"], capacity))
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
    syscalls = syscall_rows(doc)
    if syscalls:
        tables.append(("system calls", ["run", "per round trip", "the kinds most made, per round trip",
                                        "repetitions"], syscalls))
    tables += profile_tables(doc)
    failed = [b for b in doc["benchmarks"] if b.get("status") == "failed"]
    if failed:
        tables.append(("failed", ["run", "error"], [[b["name"], b.get("error", "")] for b in failed]))
    return tables
