"""A noisy neighbour on purpose: a busy loop pinned to one CPU, taking a share of it, for a while.

Usage: bazel run //plots:neighbour -- --cpu=0 [--share=100%] [--after=0] [--for=5]

It waits --after seconds, then for --for seconds spins on --cpu for --share of every 10 ms (sleeping
the rest), and ends by itself. Run beside `harness run` to see what the noise guard does with the
repetitions it falls on (docs/methodology.md): they are flagged, measured again and left out.
"""
import argparse
import os
import sys
import time

PERIOD_S = 0.010


def share(text):
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a share in (0%, 100%]")
    return value


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", type=int, required=True, help="the CPU to take (e.g. the server's: 0)")
    parser.add_argument("--share", type=share, default=1.0, help="share of the CPU to take (default 100%%)")
    parser.add_argument("--after", type=float, default=0, help="seconds to wait first (default 0)")
    parser.add_argument("--for", dest="seconds", type=float, default=5, help="seconds to spin (default 5, at most 600)")
    args = parser.parse_args(argv)
    if not 0 <= args.after <= 600 or not 0 < args.seconds <= 600:
        parser.error("--after and --for: between 0 and 600 seconds")
    if args.cpu not in os.sched_getaffinity(0):
        parser.error(f"--cpu={args.cpu}: not a CPU this process may use ({sorted(os.sched_getaffinity(0))})")
    return args


def main(argv=None):
    args = parse(argv)
    os.sched_setaffinity(0, {args.cpu})
    time.sleep(args.after)
    end = time.monotonic() + args.seconds
    busy = PERIOD_S * args.share
    print(f"neighbour: taking {args.share:.0%} of CPU {args.cpu} for {args.seconds:g} s", file=sys.stderr, flush=True)
    while (start := time.monotonic()) < end:
        while time.monotonic() - start < busy:
            pass
        if args.share < 1:
            time.sleep(max(0.0, PERIOD_S - (time.monotonic() - start)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
