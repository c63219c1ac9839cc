"""Runs two builds of the harness alternately, repetition by repetition, and compares them.

Usage: bazel run //plots:ab -- --base=BASE_HARNESS --new=NEW_HARNESS [--repetitions=5]
           [--threshold=10%] [--out=DIR] -- RUN_FLAGS...

Each round runs every run RUN_FLAGS select once with each build, run by run: `BASE_HARNESS run
RUN_FLAGS --filter=^RUN$ --repetitions=1` and the same with NEW_HARNESS, side by side, in
alternating order (base first, then new first, ...), after a warm-up round that is discarded (a
harness without `run --dry-run` to list its runs is run whole, round by round). A
--repetitions=N among RUN_FLAGS sets how many rounds. So whatever drifts on the machine
during the sitting (a neighbour, the temperature, the page cache) falls on both builds alike. Both
get the same placement (the harness's default, or the --*-cpus in RUN_FLAGS). The repetitions of
each build are written as one results file, DIR/base.json and DIR/new.json (default DIR:
results/ab), and compared as //plots:compare does, but paired: repetition i of the two builds ran
side by side, so the test is on the ratios of the pairs, and a drift of the machine from one round
to the next (seen here: 63k to 148k msgs/s within minutes, invisible to steal time) cancels.
A pair in which the harness's noise guard found either half noisy (others took more than its
threshold of the CPUs under test), or whose scenario found its own instrument spoiled (an entry's
"spoiled": the load generator's sends left late), is run again, both halves, up to --redo times in the sitting;
each harness that can is run with --redo=0, so that it does not redo a half on its own.
Each invocation of a harness has a time limit (--timeout, by default derived from the run's
--duration and --warmup among RUN_FLAGS: 120 s + 20 x (warm-up + duration), four times that for a
--capacity search); one that outlives it is killed with its children and the sitting ends (exit 1).
Exit status: 0 no regression, 1 a regression or a harness that hung, 3 only untested ones, 2 bad
input, 130 interrupted (Ctrl-C or SIGTERM). The scratch folder is removed on every way out.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from plots import compare, results
from plots.results import user_path

# What a repetition takes when RUN_FLAGS do not say: the longest profile's (full: 5 s, 2 s warm-up).
DEFAULT_DURATION_S, DEFAULT_WARMUP_S = 5.0, 2.0


class Hung(Exception):
    """A harness invocation that outlived its time limit; the message is one line."""


def seconds(text):
    """A harness duration ("2s", "500ms", "250us", "1m", a bare number of seconds) in seconds."""
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)(ns|us|ms|s|m|h)?", text)
    if not m:
        raise results.BadInput(f"not a duration: '{text}'")
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def default_timeout(flags):
    """Seconds one invocation (one run, one repetition) may take, from the run's own plan."""
    values = dict(f[2:].split("=", 1) for f in flags if f.startswith("--") and "=" in f)
    duration = max(seconds(d) for d in values["duration"].split(",")) if "duration" in values else DEFAULT_DURATION_S
    warmup = max(seconds(w) for w in values["warmup"].split(",")) if "warmup" in values else DEFAULT_WARMUP_S
    search = any(f == "--capacity" or f.startswith("--capacity=") or f.startswith("--slo=") for f in flags)
    return (120 + 20 * (warmup + duration)) * (4 if search else 1)

def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the harness binary of the base build")
    parser.add_argument("--new", required=True, help="the harness binary of the new build")
    parser.add_argument("--repetitions", type=int, default=5, help="repetitions per build (default 5)")
    parser.add_argument("--warmup-rounds", type=int, default=1,
                        help="rounds of both builds run first and discarded (default 1: the first invocation of "
                             "each was an outlier in one of five here)")
    parser.add_argument("--threshold", default="10%", help="smallest change that counts (default 10%%)")
    parser.add_argument("--out", default=None, help="directory for base.json and new.json (default results/ab)")
    parser.add_argument("--redo", type=int, default=None,
                        help="pairs that may be run again because a half of them was noisy or spoiled "
                             "(default: as many as --repetitions; 0: keep them)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one harness invocation may take (default: from --duration and --warmup)")
    parser.add_argument("run_flags", nargs="*", help="flags for `harness run`, after --")
    args = parser.parse_args(argv)
    for side in ("base", "new"):
        path = user_path(getattr(args, side))
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise results.BadInput(f"--{side}: not an executable file: {path}")
        setattr(args, side, os.path.abspath(path))
    flags = []
    for flag in args.run_flags:  # --repetitions=N among the run's flags is ab's: N of each build
        if flag.startswith("--repetitions="):
            try:
                args.repetitions = int(flag.split("=", 1)[1])
            except ValueError:
                raise results.BadInput(f"{flag}: not a number") from None
        elif flag.startswith("--redo="):  # as --repetitions: ab's, for pairs
            try:
                args.redo = int(flag.split("=", 1)[1])
            except ValueError:
                raise results.BadInput(f"{flag}: not a number") from None
        elif flag.split("=")[0] == "--out":
            raise results.BadInput(f"{flag}: ab writes DIR/base.json and DIR/new.json itself (see --out)")
        else:
            flags.append(flag)
    args.run_flags = flags
    if not 0 <= args.warmup_rounds <= 10:
        raise results.BadInput(f"--warmup-rounds: must be between 0 and 10, not {args.warmup_rounds}")
    if not 1 <= args.repetitions <= 1000:
        raise results.BadInput(f"--repetitions: must be between 1 and 1000, not {args.repetitions}")
    if args.redo is None:
        args.redo = args.repetitions
    elif not 0 <= args.redo <= 1000:
        raise results.BadInput(f"--redo: must be between 0 and 1000, not {args.redo}")
    args.threshold = compare.parse_threshold(args.threshold)
    if args.timeout is None:
        args.timeout = default_timeout(args.run_flags)
    elif not 1 <= args.timeout <= 86400:
        raise results.BadInput(f"--timeout: must be between 1 and 86400 seconds, not {args.timeout:g}")
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")
    args.out = user_path(args.out) if args.out else os.path.join(workspace, "results", "ab")
    if os.path.lexists(args.out) and not os.path.isdir(args.out) or os.path.islink(args.out):
        raise results.BadInput(f"--out: {args.out} is not a folder")
    return args


def harness(argv, timeout, **kwargs):
    """Runs a harness in a session of its own; past `timeout` it and its children are killed (Hung)."""
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, text=True, **kwargs) as p:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise Hung(f"{argv[0]} {argv[1]} did not end within {timeout:g} s (--timeout); killed") from None
        except BaseException:  # Ctrl-C or SIGTERM: no harness is left running
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise
    return subprocess.CompletedProcess(argv, p.returncode, stdout, stderr)


def run_once(binary, flags, out, timeout):
    """One repetition of one build; returns its exit code (0 ok, 1 a failed run)."""
    p = harness([binary, "run", *flags, "--repetitions=1", f"--out={out}"], timeout,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode == 2:
        raise results.BadInput(f"{binary}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else 'bad input'}")
    if p.returncode == 130:
        raise KeyboardInterrupt
    if p.returncode not in (0, 1):
        raise results.BadInput(f"{binary} exited with {p.returncode}: {p.stderr.strip()[-300:]}")
    return p.returncode


def planned_runs(binary, flags, timeout):
    """The run names the flags select (`run --dry-run`, one a line), or None from a harness without it."""
    p = harness([binary, "run", *flags, "--dry-run"], timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode == 2 and "--dry-run" in p.stderr:
        return None
    if p.returncode != 0:
        raise results.BadInput(f"{binary}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else 'bad input'}")
    return [line for line in p.stdout.splitlines() if line]


def exactly(name):
    """A POSIX extended regex matching `name` only (the harness's --filter)."""
    return "^" + "".join("\\" + c if c in ".[]{}()\\*+?^$|" else c for c in name) + "$"


def schedule(args, names):
    """(round, extra flags, order of the sides) of each pair in the order to run them: round by
    round (negative: warm-up), and within a round run by run when the harness can list its runs,
    base and new side by side with the order alternating, so that the two halves of a pair are
    seconds apart, not a whole round."""
    pairs = []
    for r in range(-args.warmup_rounds, args.repetitions):
        for k, name in enumerate(names or [None]):
            order = ("base", "new") if (r + k) % 2 == 0 else ("new", "base")
            pairs.append((r, [] if name is None else [f"--filter={exactly(name)}"], order))
    return pairs


def redoes_noise(binary, timeout):
    """Whether the harness measures a noisy repetition again itself (`run --redo`): ab turns that off
    and redoes the pair instead, so that both halves stay side by side."""
    p = harness([binary, "run", "--help"], timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return "--redo" in p.stdout


def noise_of(path):
    """Why a repetition of the file is not to be believed, in one line: the first noisy one's noisy
    neighbour, else what the scenario found wrong with its own instrument in the first spoiled one;
    None if none was noisy or spoiled."""
    try:
        doc = results.load(path)
    except (OSError, results.BadInput):
        return None  # a failed run's file is judged by the comparison, not here
    iterations = [e for e in doc["benchmarks"] if e.get("run_type") == "iteration"]
    noisy = [e for e in iterations if e.get("noise", {}).get("noisy")]
    if not noisy:
        spoiled = [e["spoiled"] for e in iterations if e.get("spoiled")]
        return spoiled[0] if spoiled else None
    n = noisy[0]["noise"]
    taken = n.get("steal_fraction", 0) + n.get("others_fraction", 0)
    said = f"{taken:.0%} of its CPUs taken"
    if n.get("worst_cpu", -1) >= 0 and n.get("worst_cpu_fraction", 0) > taken:
        said = f"CPU {n['worst_cpu']} lost {n['worst_cpu_fraction']:.0%}"
    return "noisy neighbour: " + said + (f" ({n['busiest']})" if n.get("busiest") else "")


def combine(rounds, repetitions):
    """One results document of a build's files, {round: [files]}: its entries are repetition `round`."""
    combined = None
    for r, paths in sorted(rounds.items()):
        for path in paths:
            doc = results.load(path)
            if combined is None:
                combined = {"context": dict(doc["context"]), "benchmarks": []}
            for entry in doc["benchmarks"]:
                if entry.get("run_type") == "iteration":  # single repetitions have no aggregates
                    combined["benchmarks"].append({**entry, "repetition_index": r, "repetitions": repetitions})
    return combined


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def sitting(args, scratch):
    """Runs every round's pair (again while a half was noisy and the redo budget lasts) and writes
    base.json and new.json into --out; returns both documents, the failed invocations and the redos."""
    files = {"base": {}, "new": {}}  # round -> files of that round
    failed = redone = n = 0
    names = planned_runs(args.base, args.run_flags, args.timeout)
    own_redo = {side: ["--redo=0"] if redoes_noise(getattr(args, side), args.timeout) else [] for side in files}
    for r, extra, order in schedule(args, names):
        what = f"warm-up round {r + args.warmup_rounds + 1}" if r < 0 else f"round {r + 1}/{args.repetitions}"
        while True:  # the pair, again while a half of it was noisy or spoiled and the budget lasts
            outs, codes = {}, {}
            for side in order:
                n += 1
                outs[side] = os.path.join(scratch, f"{side}-{n}.json")
                print(f"ab: {what}: {side} {' '.join(extra)}", file=sys.stderr, flush=True)
                codes[side] = run_once(getattr(args, side), args.run_flags + own_redo[side] + extra, outs[side],
                                       args.timeout)
            noisy = {side: noise_of(outs[side]) for side in order if r >= 0}
            noisy = {side: why for side, why in noisy.items() if why}
            if not noisy or redone >= args.redo:
                break
            redone += 1
            print(f"ab: {what}: " + "; ".join(f"{side}: {why}" for side, why in noisy.items())
                  + f"; running the pair again ({redone} of {args.redo} redos)", file=sys.stderr, flush=True)
        if r >= 0:  # a warm-up round's files are left to the scratch directory's removal
            for side in order:
                failed += codes[side]
                files[side].setdefault(r, []).append(outs[side])
    docs = {side: combine(rounds, args.repetitions) for side, rounds in files.items()}
    for side, doc in docs.items():
        results.write_file(os.path.join(args.out, f"{side}.json"), json.dumps(doc, indent=1))
    return docs, failed, redone


def main(argv=None):
    try:
        args = parse(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    except results.BadInput as e:
        print(f"ab: error: {e}", file=sys.stderr)
        return 2
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        print(f"ab: error: --out: cannot create {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    try:  # before anything runs: the sitting's files are written at its end
        for side in ("base", "new"):
            results.refuse_irregular(os.path.join(args.out, f"{side}.json"))
    except results.BadInput as e:
        print(f"ab: error: {e}", file=sys.stderr)
        return 2
    scratch = tempfile.mkdtemp(prefix="ab-", dir=args.out)
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        docs, failed, redone = sitting(args, scratch)
    except results.BadInput as e:
        print(f"ab: error: {e}", file=sys.stderr)
        return 2
    except Hung as e:
        print(f"ab: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ab: interrupted", file=sys.stderr)
        return 130
    finally:  # no stray per-invocation files, whatever ended the sitting
        signal.signal(signal.SIGTERM, previous_sigterm)
        shutil.rmtree(scratch, ignore_errors=True)
    try:
        rows = compare.compare(docs["base"], docs["new"], args.threshold, paired=True)
    except results.BadInput as e:
        print(f"ab: error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print("ab: error: the two builds measured no run in common", file=sys.stderr)
        return 2
    print(compare.format_rows(rows, "text"))
    if failed:
        print(f"\n{failed} invocations had a failed run (see their entries)")
    if redone:
        print(f"\n{redone} pairs were run again because a neighbour took the CPUs of one of their halves")
    print(f"results: {os.path.join(args.out, 'base.json')} {os.path.join(args.out, 'new.json')}")
    return compare.summarize(rows)


if __name__ == "__main__":
    sys.exit(main())
