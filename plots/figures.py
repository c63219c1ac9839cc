"""The report's figures: a table of (name, scenario, draw function) that each scenario's module
fills by registering its own (plots/SCENARIO_figures.py, found by its name), so a new scenario adds
its figures without an edit here or in the report; and the drawing helpers they share."""
import importlib
import pkgutil

import matplotlib

matplotlib.use("Agg")
from matplotlib.ticker import FuncFormatter  # noqa: E402  (the backend must be chosen first)

FIGURES = []  # (name, draw): draw(doc) returns a matplotlib figure, or None when the data has none


def register(name, draw):
    """Adds figure `name` (its file's name too) drawn by draw(doc)."""
    if any(n == name for n, _ in FIGURES):
        raise ValueError(f"figure {name} registered twice")
    FIGURES.append((name, draw))
    return draw


def load_scenario_modules():
    """Imports every plots/*_figures.py, in name order: each registers its figures."""
    import plots
    for module in sorted(m.name for m in pkgutil.iter_modules(plots.__path__) if m.name.endswith("_figures")):
        importlib.import_module(f"plots.{module}")


def spread_of(doc, scenario, key):
    """{run_name: (min, max)} of `key` over each run's kept repetitions: what the whiskers of a
    figure of medians span (min to max, so that no repetition lies outside them)."""
    from plots import results
    values = {}
    for b in results.iterations(doc, scenario):
        if key in b:
            values.setdefault(b.get("run_name", b["name"]), []).append(b[key])
    return {name: (min(v), max(v)) for name, v in values.items()}


def whiskers(values, names, ranges, scale=1.0):
    """The errorbar extents [[below], [above]] of `values` (already scaled) from `ranges`, 0 where a run
    has no spread on record."""
    below, above = [], []
    for v, name in zip(values, names):
        lo, hi = ranges.get(name, (v / scale, v / scale))
        below.append(max(0.0, v - lo * scale))
        above.append(max(0.0, hi * scale - v))
    return [below, above]


def plain(v):
    return f"{v:,.0f}" if v >= 10 else f"{v:g}"


def log_y(ax):
    """A log y axis labelled in plain numbers (30,000, not 3x10^4), minor ticks at 2 and 5."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: plain(v)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: plain(v) if f"{v:.1e}"[0] in "25" else ""))
