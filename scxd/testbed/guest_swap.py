"""Inside the sched_ext guest: apply scheduler choices with scxd's actuator, one after another,
and say what the kernel did after each.

``python -m scxd.testbed.guest_swap --out FILE ARM [ARM…]`` (``scxd-testbed swap`` boots the
guest and runs it).  An ARM is what :meth:`Catalog.action_from_text` reads: ``fair``,
``scx_bpfland``, ``scx_bpfland:lowlatency``, ``"scx_flashyspark --dsq-mode cpu -K"``.  One JSON
object per ARM goes to FILE: what was requested, the actuator's outcome and timings, the
kernel's state/ops/enable_seq/switch_all afterwards, pid 1's scheduling class, each check
and whether all of them held (``verified``).  A choice the catalog refuses (an unknown flag,
``-T`` on a kernel without the capability) is reported without anything being started.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from scxd.actuator import Actuator
from scxd.catalog import CatalogError, build_catalog
from scxd.config import ActuatorConfig
from scxd.hostfs import HostFS
from scxd.probe import probe_catalog
from scxd.schedext import read_state
from scxd.testbed.run import guest_search_path

HOST = HostFS("/")


def pid1_on_ext(host: HostFS = HOST) -> bool:
    """Does pid 1 run in the sched_ext class (``ext.enabled : 1`` in /proc/1/sched)?"""
    text = host.read_optional("proc/1/sched") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "ext.enabled":
            return value.strip() == "1"
    return False


def make_actuator(state_dir: Path, search_path: list[str]) -> Actuator:
    probed = probe_catalog(build_catalog(), search_path, HOST)
    cfg = ActuatorConfig(search_path=search_path, start_timeout=20.0, stop_timeout=3.0,
                         disable_timeout=10.0)
    return Actuator(probed, HOST, cfg, state_dir)


def swap_one(act: Actuator, text: str) -> dict:
    """Apply one arm and check the kernel; the record says what happened."""
    before = read_state(HOST)
    rec: dict = {"arm": text, "kernel_before": before.as_dict()}
    try:
        action = act.catalog.action_from_text(text)
    except CatalogError as exc:
        k = read_state(HOST)
        rec.update(refused=True, verified=False, error=str(exc), spawned=False,
                   kernel=k.as_dict(),
                   checks={"nothing started": k.enable_seq == before.enable_seq})
        return rec
    res = act.apply(action)
    k = read_state(HOST)
    on_ext = pid1_on_ext()
    if action.is_fair:
        checks = {"state disabled": k.state == "disabled", "no root/ops": k.ops is None,
                  "pid 1 on the fair class": not on_ext}
    else:
        prefix = act.catalog.get(action.scheduler).ops_prefix
        checks = {"state enabled": k.state == "enabled",
                  f"root/ops is {prefix}": k.runs(prefix),
                  "new enable_seq": isinstance(k.enable_seq, int)
                  and isinstance(before.enable_seq, int) and k.enable_seq > before.enable_seq,
                  "pid 1 on sched_ext": on_ext}
    checks["actuator verified"] = res.outcome in ("applied", "noop") and act.verified(action)
    rec.update(refused=False, requested=action.as_dict(), label=action.label(),
               outcome=res.outcome, reason=res.reason, error=res.detail,
               exit_code=res.exit_code, output_tail=res.output_tail[-2000:],
               timings={"to_disabled_s": res.timings.to_disabled_s,
                        "to_enabled_s": res.timings.to_enabled_s,
                        "total_s": res.timings.total_s},
               kernel=k.as_dict(), pid1_ext=on_ext, checks=checks,
               pid=act.proc.pid if act.proc else None,
               verified=all(checks.values()))
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON-lines file to append to")
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/scxd-swap-state"))
    ap.add_argument("arms", nargs="+")
    args = ap.parse_args(argv)
    act = make_actuator(args.state_dir, guest_search_path())
    ok = True
    for text in args.arms:
        start = time.monotonic()
        rec = swap_one(act, text)
        rec["seconds"] = round(time.monotonic() - start, 3)
        ok = ok and rec["verified"]
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"swap {text!r}: {'verified' if rec['verified'] else 'NOT verified'}",
              flush=True)
    act.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
