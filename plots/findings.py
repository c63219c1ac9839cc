"""Findings: short statements generated from a result file, each with its uncertainty and the runs
behind it, that open the report and the summary. No drawing.

A ratio of two runs is of their means over the kept repetitions, and its +- is one standard deviation
propagated from both (the relative deviations added in quadrature), as hyperfine states "A ran 1.52
+- 0.05 times faster than B"; a run of one repetition has no spread, and the statement says so.
A slope (memory per connection) is a least-squares fit over every kept repetition, +- its standard
error."""
import math
import warnings

import numpy as np
from scipy import stats

from plots import results
from plots.summary_numbers import capacity_entries, pool_sizes


def kept(doc, key, scenario="echo"):
    """{run_name: [values of `key` in its kept repetitions]}."""
    out = {}
    for b in results.iterations(doc, scenario):
        if key in b:
            out.setdefault(b.get("run_name", b["name"]), []).append(b[key])
    return out


def spread(values):
    """(mean, sample standard deviation or None for a single value)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def ratio(a, b):
    """(mean(a) / mean(b), its propagated standard deviation or None)."""
    (ma, sa), (mb, sb) = spread(a), spread(b)
    r = ma / mb
    if sa is None or sb is None:
        return r, None
    return r, r * math.hypot(sa / ma, sb / mb)


def unclear(a, b):
    """A note when two runs' repetitions do not tell them apart (Welch's t-test, 5%), else ""."""
    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return ""
    with warnings.catch_warnings():  # nearly equal repetitions: scipy warns of lost precision, p stays right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return f" (not a clear difference: Welch's t-test p = {p:.2f})" if p >= 0.05 else ""


def conn(n):
    return f"{n} connection{'s' if n != 1 else ''}"


def show(value, error, digits=2):
    if error is None:
        return f"{value:.{digits}f} (one repetition: no spread)"
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def label(entry):
    """A model and its non-workload parameters, as a reader names it: thread_pool (4 workers)."""
    p = entry.get("params", {})
    extra = [f"{p['workers']} workers" if "workers" in p and entry["model"] in ("thread_pool", "process_pool")
             else None, p.get("variant")]
    extra = [e for e in extra if e]
    return entry["model"] + (f" ({', '.join(extra)})" if extra else "")


def plain_closed(doc):
    """{connections: [median rows]} of the plain closed-loop echo runs (no --work, --rate, search)."""
    out = {}
    for r in results.medians(doc, "echo"):
        p = r.get("params", {})
        if "connections" in p and not {"work", "rate", "capacity"} & set(p) and p.get("transport", "tcp") == "tcp":
            out.setdefault(p["connections"], []).append(r)
    return out


def client_bound_share(doc, run_name):
    reps = [b for b in results.iterations(doc, "echo") if b.get("run_name") == run_name]
    return sum(1 for b in reps if b.get("client_bound")), len(reps)


def throughput_finding(doc, connections, rows, rates, cpus):
    """The model that served the most round trips at `connections` against the next one and the last."""
    if len(rows) < 2:
        return []
    rows = sorted(rows, key=lambda r: -spread(rates[r["run_name"]])[0])  # by the mean the ratio is of
    out = []
    for other, which in ((rows[1], "the next"), (rows[-1], "the fewest")):
        if which == "the fewest" and len(rows) < 3:
            continue
        best, name_b, name_o = rows[0], rows[0]["run_name"], other["run_name"]
        r, e = ratio(rates[name_b], rates[name_o])
        text = (f"At {conn(connections)} {label(best)} served {show(r, e)} times the round trips of "
                f"{label(other)} ({which}){unclear(rates[name_b], rates[name_o])}")
        if name_b in cpus and name_o in cpus:
            c, ce = ratio(cpus[name_b], cpus[name_o])
            text += f", at {show(c, ce)} times its server CPU per round trip"
        bound = [label(x) for x in (best, other) if 2 * client_bound_share(doc, x["run_name"])[0] >
                 client_bound_share(doc, x["run_name"])[1]]
        if bound:
            text += (f"; {' and '.join(bound)} client-bound in most repetitions: the load generator's limit, "
                     "not the server's")
        out.append({"text": text + ".", "runs": [name_b, name_o]})
    return out


def starvation_findings(doc):
    out = []
    starved = kept(doc, "starved_connections")
    for r in results.medians(doc, "echo"):
        if r.get("starved_connections", 0) > 0 and "capacity" not in r["params"]:
            values = starved[r["run_name"]]
            times = sum(1 for v in values if v > 0)
            work = f" with --work={r['params']['work']}" if "work" in r["params"] else ""
            out.append({"text": f"{label(r)}{work} left {r['starved_connections']:.0f} of {r['params']['connections']} "
                                f"connections unanswered in the window (median; in {times} of {len(values)} "
                                "repetitions).", "runs": [r["run_name"]]})
    return out


def unfairness_findings(doc):
    """Where a model answered its connections less evenly than a random order would have with the same
    round trips (a starved connection is said above; with few round trips a connection, even chance is
    well under 1, and only an order such as an event loop's ready list is above it)."""
    out = []
    for r in results.medians(doc, "echo"):
        chance = r.get("fairness_random_order")
        if chance is None or "capacity" in r["params"] or r.get("starved_connections", 0) > 0:
            continue
        if r["fairness"] < chance - 0.05:
            out.append({"text": f"{label(r)} at {conn(r['params']['connections'])} answered its connections less "
                                f"evenly than a random order would have: Jain's index {r['fairness']:.2f} against "
                                f"{chance:.2f} for the same round trips (median).", "runs": [r["run_name"]]})
    return out


def memory_finding(doc):
    """Peak RSS per connection for each model, fitted over its plain closed-loop repetitions."""
    points = {}
    for b in results.iterations(doc, "echo"):
        p = b["params"]
        if "server_peak_rss_bytes" in b and not {"work", "rate", "capacity"} & set(p):
            points.setdefault(label(b), []).append((p["connections"], b["server_peak_rss_bytes"], b["run_name"]))
    fits = []
    for name, xy in points.items():
        xs = sorted({x for x, _, _ in xy})
        if len(xs) < 2 or len(xy) < 3:
            continue
        fit = stats.linregress([x for x, _, _ in xy], [y for _, y, _ in xy])
        fits.append((fit.slope, fit.stderr, name, xs, sorted({n for _, _, n in xy})))
    if not fits:
        return []
    fits.sort(reverse=True)
    parts = [f"{name} {slope / 1024:,.1f} ± {err / 1024:,.1f} KiB" for slope, err, name, _, _ in fits]
    xs = sorted({x for f in fits for x in f[3]})
    return [{"text": f"Server memory per connection (peak RSS, least squares over {', '.join(map(str, xs))} "
                     f"connections): {'; '.join(parts)}.", "runs": [n for f in fits for n in f[4]]}]


def by_model_finding(doc, connections, rows, key, what, digits=2):
    """One statement listing `key` (mean ± sd over repetitions) for each model at `connections`."""
    values = kept(doc, key)
    have = [r for r in rows if r["run_name"] in values]
    if len(have) < 2:
        return []
    have.sort(key=lambda r: spread(values[r["run_name"]])[0])
    parts = [f"{label(r)} {show(*spread(values[r['run_name']]), digits=digits)}" for r in have]
    return [{"text": f"{what} at {conn(connections)}: {'; '.join(parts)}.", "runs": [r["run_name"] for r in have]}]


def syscall_kinds(doc, row):
    """The kinds of system call a run made most per round trip (its first kept repetition's)."""
    for b in results.iterations(doc, "echo"):
        if b.get("run_name") == row["run_name"] and "syscalls" in b:
            return ", ".join(f"{k} {v:.2f}" for k, v in b["syscalls"]["per_msg"][:3])
    return ""


def syscalls_finding(doc, connections, rows):
    found = by_model_finding(doc, connections, rows, "syscalls_per_msg", "Server system calls per round trip")
    for f in found:
        kinds = [f"{label(r)}: {syscall_kinds(doc, r)}" for r in rows if syscall_kinds(doc, r)]
        f["text"] = f["text"][:-1] + f" (the kinds most made, per round trip: {'; '.join(kinds)})."
    return found


def kernel_share_finding(doc, connections, rows):
    user, kernel = kept(doc, "server_user_us_per_msg"), kept(doc, "server_kernel_us_per_msg")
    shares = []
    for r in rows:
        name = r["run_name"]
        if name in user and name in kernel:
            k = np.asarray(kernel[name]) / (np.asarray(kernel[name]) + np.asarray(user[name]))
            shares.append((float(k.mean()), label(r), name))
    if len(shares) < 2:
        return []
    shares.sort(reverse=True)
    parts = ", ".join(f"{name} {100 * s:.0f}%" for s, name, _ in shares)
    return [{"text": f"At {conn(connections)} the servers spent {100 * shares[-1][0]:.0f}-{100 * shares[0][0]:.0f}% "
                     f"of their CPU in the kernel ({parts}): the network stack and the system calls are most of "
                     "a round trip's cost.", "runs": [n for _, _, n in shares]}]


def work_findings(doc, rates):
    """For each --work value measured on several models: the most round trips against the fewest."""
    groups = {}
    for r in results.medians(doc, "echo"):
        p = r["params"]
        if "work" in p and "capacity" not in p and "rate" not in p:
            groups.setdefault((p["work"], p["connections"]), []).append(r)
    out = []
    for (work, connections), rows in sorted(groups.items()):
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: -spread(rates[r["run_name"]])[0])
        r, e = ratio(rates[rows[0]["run_name"]], rates[rows[-1]["run_name"]])
        a, b = rates[rows[0]["run_name"]], rates[rows[-1]["run_name"]]
        out.append({"text": f"With --work={work} at {conn(connections)} {label(rows[0])} served "
                            f"{show(r, e)} times the round trips of {label(rows[-1])} (the fewest){unclear(a, b)}.",
                    "runs": [rows[0]["run_name"], rows[-1]["run_name"]]})
    return out


def capacity_findings(doc):
    out = []
    for connections, entries in capacity_entries(doc).items():
        for _, e in entries:
            if e.get("capacity_limit") == "client":
                how = "at least: the load generator was the limit, so not checked"
            elif e.get("capacity_limit") == "noise":
                how = "at least: the host took the CPUs where the search went on, so not narrowed or checked"
            elif e.get("capacity_checked"):
                how = "met again at it and missed at 1.3 times it"
            else:
                how = "unchecked: its check at C and 1.3 C did not agree"
            out.append({"text": f"{label(e)} at {conn(connections)}: capacity "
                                f"{e['capacity_msgs_per_second']:,.0f} msgs/s within {e['params']['capacity']} "
                                f"({how}).", "runs": [e["run_name"]]})
    return out


def pipeline_findings(doc):
    return [{"text": f"The pipeline's {key} came within 5% of its best makespan ({best:.3f} s at {at} workers) "
                     f"with {pick} workers; Little's law says {little:.0f}.", "runs": []}
            for key, pick, best, at, little in pool_sizes(doc)]


def noisy_runs(doc):
    """{run_name: label} of the runs none of whose repetitions the noise guard kept: their figures are
    over the left-out ones (results.iterations gives those only then)."""
    return {b.get("run_name", b["name"]): label(b) for b in results.iterations(doc) if "excluded" in b}


def findings(doc):
    """[{"text", "runs"}] for the file, the load-independent statements last; one that stands on a run
    with no clean repetition says so."""
    rates, cpus = kept(doc, "msgs_per_second"), kept(doc, "server_cpu_us_per_msg")
    out = []
    closed = plain_closed(doc)
    for connections in sorted(closed, reverse=True):
        rows = closed[connections]
        out += throughput_finding(doc, connections, rows, rates, cpus)
        out += syscalls_finding(doc, connections, rows)
        out += kernel_share_finding(doc, connections, rows)
    out += work_findings(doc, rates) + starvation_findings(doc) + unfairness_findings(doc)
    out += capacity_findings(doc)
    out += memory_finding(doc) + pipeline_findings(doc)
    noisy = noisy_runs(doc)
    for f in out:
        left = list(dict.fromkeys(noisy[r] for r in f["runs"] if r in noisy))
        if left:
            f["text"] += (f" Noisy: {' and '.join(left)} had no clean repetition (each was left out for noise or "
                          "spoiling), so this may be the host's doing, not the model's.")
    return out
