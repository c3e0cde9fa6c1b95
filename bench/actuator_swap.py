#!/usr/bin/env python3
"""Actuator overhead per swap: decision → verified enabled, minus the scheduler's own start.

A fake kernel tree (tests/fakes.FakeKernel) and a fake loader written in C
(bench/fake_scx.c, compiled here) that records when its main() began and when it wrote
``state=enabled``.  For each swap between two fake schedulers:

    overhead = (decision → kernel confirms the new ops) − (loader main() → enabled)

so it counts scxd's work: stopping the old one and waiting for ``disabled``, fork/exec,
persisting intent twice (fsync), polling the kernel files.  Target: ≤ 50 ms.

    .venv/bin/python bench/actuator_swap.py [--swaps 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scxd.actuator import Actuator  # noqa: E402
from scxd.catalog import build_catalog  # noqa: E402
from scxd.config import ActuatorConfig  # noqa: E402
from scxd.hostfs import HostFS  # noqa: E402
from scxd.probe import probe_catalog  # noqa: E402
from tests.fakes import FakeKernel  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swaps", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        root, bin_dir = tmp / "host", tmp / "bin"
        bin_dir.mkdir()
        for name in ("scx_simple", "scx_qmap"):
            subprocess.run(["gcc", "-O2", "-o", str(bin_dir / name), str(REPO / "bench" /
                            "fake_scx.c")], check=True)
        ts_file = tmp / "ts"
        with FakeKernel(root) as kernel:
            os.environ["FAKE_SX"] = str(kernel.sx)
            os.environ["FAKE_TS"] = str(ts_file)
            host = HostFS(root)
            probed = probe_catalog(build_catalog(), [str(bin_dir)], host)
            act = Actuator(probed, host, ActuatorConfig(search_path=[str(bin_dir)]),
                           tmp / "state")
            cat = act.catalog
            totals, own, overhead, stops = [], [], [], []
            targets = [cat.action("scx_simple"), cat.action("scx_qmap")]
            for i in range(args.swaps + 1):
                res = act.apply(targets[i % 2])
                assert res.outcome == "applied", res.as_dict()
                pid = act.proc.pid
                line = next(ln for ln in ts_file.read_text().splitlines()
                            if ln.split()[0] == str(pid))
                _, t_main, t_enabled = map(int, line.split())
                if i == 0:
                    continue  # first start: nothing to stop, cold caches
                start_s = (t_enabled - t_main) / 1e9
                totals.append(res.timings.total_s)
                own.append(start_s)
                overhead.append(res.timings.total_s - start_s)
                stops.append(res.timings.to_disabled_s)
            act.shutdown()
            time.sleep(0.1)

    def row(label: str, v: list[float]) -> str:
        return (f"{label:34s} median {1e3 * statistics.median(v):7.2f} ms   "
                f"p90 {1e3 * pct(v, 0.9):7.2f}   max {1e3 * max(v):7.2f}")

    print(f"{args.swaps} swaps scx_simple ↔ scx_qmap (fake kernel, C fake loaders)")
    print(row("decision → verified enabled", totals))
    print(row("  of which loader's own start", own))
    print(row("  of which stop → disabled", stops))
    print(row("actuator overhead (target ≤ 50)", overhead))


if __name__ == "__main__":
    main()
