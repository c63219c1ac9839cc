"""Reading harness result files: the JSON is the only contract with the C++ side."""
import json
import os
import stat
import tempfile

import numpy as np


class BadInput(Exception):
    """A file that is missing, not JSON, or not a harness result file; the message is one line."""


# Counts above this cannot be held exactly in a float, and no run records that many round trips.
MAX_COUNT = 2 ** 53


def user_path(path):
    """Relative paths are relative to where the user ran `bazel run`, not to the runfiles tree."""
    base = os.environ.get("BUILD_WORKING_DIRECTORY")
    return path if os.path.isabs(path) or not base else os.path.join(base, path)


def refuse_irregular(path):
    """Raises BadInput if `path` exists and is not a regular file (write_file's rule), so that a
    caller can check its outputs before it spends time on what goes into them."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        kind = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file")
        raise BadInput(f"{path} is {kind}; name a regular file")


def write_file(path, data):
    """Replaces the file at `path` with `data` (str or bytes) by the harness's rules for every file it
    writes: a path that exists and is not a regular file (a symbolic link, a FIFO, a device, a
    folder) is refused with BadInput; the bytes go to a new file beside it (a unique name, never
    through a link) that is then renamed over it, so a reader sees the old file or the new one."""
    refuse_irregular(path)
    folder, name = os.path.split(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise BadInput(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise BadInput(f"cannot write {path}: {e.strerror}") from None


def _refuse_constant(name):
    raise BadInput(f"{name} is not a figure")


def load(path):
    """Returns the parsed result file, or raises BadInput: for a file that is not a harness result
    file, and for figures no run can produce (NaN, infinities, negative values, a latency
    histogram whose buckets disagree with its count), which would otherwise be drawn or compared."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f, parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    except BadInput as e:
        raise BadInput(f"{path}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list) or \
            not isinstance(doc.get("context"), dict):
        raise BadInput(f"{path}: not a harness result file (expected 'context' and 'benchmarks')")
    for entry in doc["benchmarks"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BadInput(f"{path}: not a harness result file (an entry without a name)")
        try:
            check_entry(entry)
        except BadInput as e:
            raise BadInput(f"{path}: {entry['name']}: {e}") from None
    return doc


def check_entry(entry):
    """Raises BadInput for an entry the plots and the comparison cannot use as it stands."""
    for key in ("run_name", "run_type"):
        if not isinstance(entry.get(key), str):
            raise BadInput(f"no {key}")
    if entry["run_type"] not in ("iteration", "aggregate"):
        raise BadInput(f"run_type '{entry['run_type']}'")
    if "params" not in entry:
        raise BadInput("no params")
    if not isinstance(entry["params"], dict):
        raise BadInput("params is not an object")
    for key, value in entry.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value < 0 or value > MAX_COUNT * 1e6:
            raise BadInput(f"{key} is {value}, which no run gives")
    if "latency_histogram" in entry:
        check_histogram(entry["latency_histogram"], entry.get("iterations") if entry["run_type"] == "iteration" else None)


def check_histogram(h, iterations):
    """The invariants the C++ Histogram keeps: non-empty buckets [lowest, count] in increasing
    order whose counts add up to `count` (and to the entry's iterations), min and max inside."""
    try:
        buckets, count, low, high = h["buckets"], h["count"], h["min"], h["max"]
        int(h["sub_bucket_bits"])
    except (TypeError, KeyError, ValueError):
        raise BadInput("latency_histogram lacks buckets, count, min, max or sub_bucket_bits") from None
    total, previous = 0, -1
    for bucket in buckets:
        if not (isinstance(bucket, list) and len(bucket) == 2 and all(type(x) is int for x in bucket)):
            raise BadInput("latency_histogram: a bucket is not [lowest, count]")
        lowest, n = bucket
        if lowest <= previous or not 0 < n <= MAX_COUNT:
            raise BadInput(f"latency_histogram: bucket [{lowest}, {n}] is out of order or its count impossible")
        total, previous = total + n, lowest
    if total != count:
        raise BadInput(f"latency_histogram: count {count} but its buckets hold {total}")
    if iterations is not None and total != iterations:
        raise BadInput(f"latency_histogram holds {total} round trips, not its {iterations} iterations")
    if buckets and not (buckets[0][0] <= low <= high and high >= buckets[-1][0]):
        raise BadInput("latency_histogram: min and max do not fall in its first and last buckets")


def declarations(doc):
    """{metric: declaration} of the file (context.metrics, written by the harness since schema 2):
    unit, meaning, better (higher, lower, none), aggregate, merge, display {label, format, scale},
    minimum, maximum, always, compared."""
    declared = doc["context"].get("metrics", {})
    if not isinstance(declared, dict) or not all(isinstance(d, dict) for d in declared.values()):
        raise BadInput("context.metrics is not {metric: declaration}")
    return declared


def scenarios(doc):
    """{scenario: {"metrics": [keys it reports], "columns": [keys of its table]}} of the file."""
    found = doc["context"].get("scenarios", {})
    return found if isinstance(found, dict) else {}


def display(declaration, value):
    """A value as its declaration says to show it: scaled, fixed-point, thousands separated."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    shown = declaration.get("display", {})
    spec = shown.get("format", ".2f")
    return format(value * shown.get("scale", 1), ("," + spec) if spec.endswith("f") else spec)


def iterations(doc, scenario=None):
    """The ok repetition entries the noise guard kept (a noisy one it measured again is "excluded"),
    optionally of one scenario; of a run whose every repetition was noisy, those (its aggregates are
    over them too, and say so)."""
    ok = [b for b in doc["benchmarks"]
          if b.get("run_type") == "iteration" and b.get("status", "ok") == "ok"
          and (scenario is None or b.get("scenario") == scenario)]
    kept = {b.get("run_name", b["name"]) for b in ok if "excluded" not in b}
    return [b for b in ok if "excluded" not in b or b.get("run_name", b["name"]) not in kept]


def medians(doc, scenario):
    """One row per run: its median aggregate where there is one, else its single (kept) repetition."""
    rows = {}
    for b in iterations(doc, scenario):
        rows.setdefault(b.get("run_name", b["name"]), b)
    for b in doc["benchmarks"]:
        if b.get("scenario") == scenario and b.get("aggregate_name") == "median" and b.get("status", "ok") == "ok":
            rows[b.get("run_name", b["name"])] = b
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
