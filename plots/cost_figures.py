"""Where the server's time goes: its CPU per round trip split into user space and the kernel, and a
flame graph (an icicle: the outermost frame on top, each frame as wide as its share of the samples)
of every run profiled with --flamegraph."""
import hashlib

import matplotlib.pyplot as plt

from plots import results
from plots.figures import register, spread_of, whiskers
from plots.summary_numbers import profiled


def split_rows(doc):
    """(connections, median rows) of the plain closed-loop echo runs with a CPU split: at 100
    connections where measured, else the most."""
    rows = [r for r in results.medians(doc, "echo") if "server_kernel_us_per_msg" in r and
            not {"work", "rate", "capacity"} & set(r["params"])]
    loads = {r["params"]["connections"] for r in rows}
    if not loads:
        return None, []
    load = 100 if 100 in loads else max(loads)
    return load, sorted((r for r in rows if r["params"]["connections"] == load), key=lambda r: r["server_cpu_us_per_msg"])


def fig_cpu_split(doc):
    load, rows = split_rows(doc)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.8))
    labels = [results.series_key(r) for r in rows]
    user = [r["server_user_us_per_msg"] for r in rows]
    kernel = [r["server_kernel_us_per_msg"] for r in rows]
    ax.barh(labels, user, color="#9ecae1", label="user space")
    totals = [u + k for u, k in zip(user, kernel)]
    extent = whiskers(totals, [r["run_name"] for r in rows], spread_of(doc, "echo", "server_cpu_us_per_msg"))
    ax.barh(labels, kernel, left=user, color="#08519c", label="kernel", xerr=extent, capsize=3)
    for y, r in enumerate(rows):
        if "syscalls_per_msg" in r:  # beside the whisker's end
            ax.text(totals[y] + extent[1][y], y, f"  {r['syscalls_per_msg']:.2f} syscalls/msg", va="center", fontsize=7)
    ax.set_xlim(0, max(t + e for t, e in zip(totals, extent[1])) * 1.3)
    ax.invert_yaxis()
    ax.set_xlabel("server CPU per round trip (us; median, whiskers: min-max of the total)")
    ax.set_title(f"Where the server's CPU goes at {load} connections")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def frame_tree(profile):
    """{frame: [count, children]} from folded stacks; samples not among the kept stacks in one frame."""
    root = {}
    kept = 0
    for stack, n in profile["stacks"]:
        kept += n
        level = root
        for frame in stack.split(";"):
            node = level.setdefault(frame, [0, {}])
            node[0] += n
            level = node[1]
    if profile["samples"] > kept:
        root["[small stacks not kept]"] = [profile["samples"] - kept, {}]
    return root


def colour(frame):
    """A warm colour fixed by the frame's name, as flame graphs draw them."""
    h = int(hashlib.md5(frame.encode()).hexdigest()[:6], 16)
    return (0.85 + 0.15 * (h % 100) / 100, 0.35 + 0.45 * ((h >> 8) % 100) / 100, 0.1 + 0.2 * ((h >> 16) % 100) / 100)


def draw_icicle(ax, tree, total, depth=0, left=0.0):
    """Draws `tree` from `left` at `depth`; returns the deepest level drawn."""
    deepest = depth
    for frame, (count, children) in sorted(tree.items(), key=lambda kv: kv[0]):
        width = count / total
        ax.barh(depth, width, left=left, height=0.95, color=colour(frame), edgecolor="white", linewidth=0.3)
        if width > 0.04:
            chars = int(width * 160)
            ax.text(left + 0.003, depth, frame if len(frame) <= chars else frame[:max(chars - 2, 1)] + "..",
                    va="center", fontsize=6, clip_on=True)
        deepest = max(deepest, draw_icicle(ax, children, total, depth + 1, left))
        left += width
    return deepest


def fig_profiles(doc):
    runs = profiled(doc)
    if not runs:
        return None
    trees = [(name, p, frame_tree(p)) for name, p in runs]
    heights = [min(40, depth_of(t)) * 0.16 + 0.8 for _, _, t in trees]
    fig, axes = plt.subplots(len(trees), 1, figsize=(11, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (name, p, tree) in zip(axes[:, 0], trees):
        deepest = draw_icicle(ax, tree, p["samples"])
        ax.set_ylim(deepest + 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
        ax.set_xticklabels(["0", "25%", "50%", "75%", "100%"], fontsize=7)
        ax.set_title(f"{name}: {p['samples']} samples at {p['frequency_hz']} Hz, "
                     f"{p.get('msgs_per_second', 0):,.0f} msgs/s while sampled", fontsize=9)
    axes[-1, 0].set_xlabel("share of the server's samples (outermost frame on top; user-space callers are cut "
                           "short where a library has no frame pointers)")
    return fig


def depth_of(tree):
    return 1 + max((depth_of(children) for _, children in tree.values()), default=0)


register("echo_cpu_split", fig_cpu_split)
register("echo_profiles", fig_profiles)
