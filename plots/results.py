"""Reading harness result files: the JSON is the only contract with the C++ side."""
import json

import numpy as np


class BadInput(Exception):
    """A file that is missing, not JSON, or not a harness result file; the message is one line."""


def load(path):
    """Returns the parsed result file, or raises BadInput."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list) or \
            not isinstance(doc.get("context"), dict):
        raise BadInput(f"{path}: not a harness result file (expected 'context' and 'benchmarks')")
    for entry in doc["benchmarks"]:
        if not isinstance(entry, dict) or "name" not in entry:
            raise BadInput(f"{path}: not a harness result file (an entry without a name)")
    return doc


def iterations(doc, scenario=None):
    """The ok repetition entries, optionally of one scenario."""
    return [b for b in doc["benchmarks"]
            if b.get("run_type") == "iteration" and b.get("status", "ok") == "ok"
            and (scenario is None or b.get("scenario") == scenario)]


def medians(doc, scenario):
    """One row per run: its median aggregate where there is one, else its single repetition."""
    rows = {}
    for b in doc["benchmarks"]:
        if b.get("scenario") != scenario or b.get("status", "ok") != "ok":
            continue
        run = b.get("run_name", b["name"])
        if b.get("aggregate_name") == "median" or (b.get("run_type") == "iteration" and run not in rows):
            rows[run] = b
    return list(rows.values())


def series_key(entry, exclude=("connections",)):
    """A label for the line an entry belongs to: its model and every parameter but `exclude`."""
    params = {k: v for k, v in entry.get("params", {}).items() if k not in exclude and k != "target"}
    suffix = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return entry["model"] + (f" ({suffix})" if suffix else "")


def histogram_percentiles(histograms, percentiles):
    """Merges latency histograms exactly (by adding bucket counts) and returns the value in us at
    each percentile, by nearest rank, reported as the upper edge of its bucket like the C++ side."""
    counts = {}
    bits = None
    highest = 0
    for h in histograms:
        bits = h["sub_bucket_bits"]
        highest = max(highest, h["max"])
        for lowest, n in h["buckets"]:
            counts[lowest] = counts.get(lowest, 0) + n
    if not counts:
        return [0.0 for _ in percentiles]
    lowest = np.array(sorted(counts), dtype=np.float64)
    n = np.array([counts[v] for v in sorted(counts)], dtype=np.float64)
    cumulative = np.cumsum(n)
    exact = 1 << bits
    # A bucket above the exact range spans 2^shift values, where lowest >> shift is in [2^(bits-1), 2^bits).
    widths = np.where(lowest < exact, 1.0, 2.0 ** (np.floor(np.log2(np.maximum(lowest, 1))) - (bits - 1)))
    out = []
    for p in percentiles:
        rank = max(1.0, np.ceil(p / 100.0 * cumulative[-1]))
        i = int(np.searchsorted(cumulative, rank))
        out.append(min(lowest[i] + widths[i] - 1, highest) / 1000.0)
    return out
