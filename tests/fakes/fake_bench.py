#!/usr/bin/env python3
"""A fake benchmark whose result depends on the scheduler the *fake* kernel runs.

It finds the loader attached to the fake sched_ext tree (``.attached`` holds its pid), reads
the scheduler arguments from that process's command line, and prints a perf-bench-style
``Total time: X [sec]`` computed from them plus Gaussian noise — so a tuning run against
the fake kernel has a real optimum to find and parameters that do and do not matter:

* fair scheduler: 1.00 s;
* scx_qmap: 1.25 s, minus up to 0.35 s for a slice near 3000 µs (``-s``, log-scale bump),
  plus 0.05 s with ``-H``; ``-b`` (dsp_batch) has no effect at all.

``--fail-with FLAG``: exit 1 (like a crashed benchmark) when the scheduler runs with FLAG.
``--format llama``: print a llama-bench markdown table instead (tokens/s = 100 / time).
``--seed-file PATH``: draw the noise from a generator seeded by a run counter kept in PATH, so
a whole tuning session is the same realisation every time (a test of one run then cannot fail
by chance; the intervals' coverage is tested over many seeded draws in test_tune_search).
"""

from __future__ import annotations

import argparse
import fcntl
import math
import random
import sys
from pathlib import Path


def scheduler_args(root: Path) -> list[str] | None:
    """The running fake loader's own arguments, None under the fair scheduler."""
    sx = root / "sys/kernel/sched_ext"
    if (sx / "state").read_text().strip() != "enabled":
        return None
    try:
        pid = int((sx / ".attached").read_text())
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    words = [w.decode() for w in words if w]
    # fake_scx.py's own options come first (each takes a value); the rest are the loader's.
    own = {"--name", "--fake-root", "--ops", "--mode", "--enable-delay", "--after",
           "--supports", "--partial-flag", "--refuse-with"}
    i = next(i for i, w in enumerate(words) if w.endswith("fake_scx.py")) + 1
    rest = []
    while i < len(words):
        if words[i] in own:
            i += 2
            continue
        rest.append(words[i])
        i += 1
    return rest


def total_time(args: list[str] | None) -> float:
    if args is None:
        return 1.0
    value = 1.25
    slice_us = float(args[args.index("-s") + 1]) if "-s" in args else 20000.0
    value -= 0.35 * math.exp(-((math.log10(slice_us) - math.log10(3000)) ** 2) / 0.18)
    if "-H" in args:
        value += 0.05
    return value


def next_seed(path: Path) -> int:
    """This invocation's number, counted in ``path`` (locked: runs may overlap)."""
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        count = int(fh.read().strip() or 0)
        fh.seek(0)
        fh.truncate()
        fh.write(str(count + 1))
    return count


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--fail-with", default="")
    ap.add_argument("--format", default="perf", choices=("perf", "llama"))
    ap.add_argument("--seed-file", type=Path)
    opts = ap.parse_args()
    rng = random.Random(next_seed(opts.seed_file)) if opts.seed_file else random.Random()
    args = scheduler_args(Path(opts.root))
    if opts.fail_with and args and opts.fail_with in args:
        print("benchmark: worker died", file=sys.stderr)
        return 1
    value = total_time(args) + rng.gauss(0.0, opts.noise)
    if opts.format == "llama":
        tps = 100.0 / value
        print("| model                          |       size |     params | backend    | "
              "threads |            test |                  t/s |")
        print("| ------------------------------ | ---------: | ---------: | ---------- | "
              "------: | --------------: | -------------------: |")
        print(f"| qwen2 0.5B Q8_0                |  500.79 MiB |   494.03 M | CPU        |"
              f"       2 |           tg128 | {tps:12.2f} ± {abs(value) * 0.01:.2f} |")
        print("\nbuild: 8cf427ff (5163)")
        return 0
    print("# Running 'sched/messaging' benchmark:")
    print("# 20 sender and receiver processes per group")
    print("# 2 groups == 80 processes run\n")
    print(f"     Total time: {value:.3f} [sec]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
