"""Record real data for the policy: workloads × scheduler arms × repeats, measured by scxd.

Runs *inside* the sched_ext guest (``scxd-testbed record`` boots it).  For every repeat the
(arm, workload) cells run in an order shuffled with a seeded generator; each cell:

1. the actuator applies the arm and the kernel confirms it (a failed start is recorded as
   such, never silently replaced);
2. the workload starts (seeded where the tool allows), and scxd's own sampler and windower
   measure ``warmup`` + ``windows`` windows of it — the first ``warmup`` are flagged, as the
   daemon's guard would not score them;
3. the workload stops and its own outcome (bogo ops/s, iteration times, cyclictest wakeup
   latency) is parsed.

Output, in ``--out``: a scxd journal (``journal/``: header + one ``window`` record per
window, the daemon's fields plus ``run_id``, ``arm``, ``workload``, ``repeat``) and
``runs.jsonl`` (one record per cell: command lines, workload outcome, swap result).  A run
can be resumed: cells already in ``runs.jsonl`` are skipped, and the arm list is read back
from ``design.json`` (never re-drawn).  The arms and their probabilities are the recording
design of :mod:`scxd.testbed.design` (named presets + seeded parameter draws, every arm once
per workload and repeat); each window logs its propensity under it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from scxd.actuator import Actuator
from scxd.catalog import build_catalog
from scxd.config import ActuatorConfig, TelemetryConfig
from scxd.features import featurize, schema_header
from scxd.hostfs import HostFS
from scxd.journal import JournalWriter, window_measurements
from scxd.observe import samples_per_window
from scxd.policy.arms import ArmSet, arm_key
from scxd.probe import probe_catalog
from scxd.record import Choice, Context, WindowRecord
from scxd.schedext import read_state
from scxd.telemetry.sampler import Sampler
from scxd.testbed.design import Design, DesignArm, build_design, design_from_dict
from scxd.testbed.run import guest_search_path
from scxd.window import Windower
from scxd.workloads import Workload, load_file, select


def versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable: {exc}"
        return (res.stdout or res.stderr).strip().splitlines()[0] if (
            res.stdout or res.stderr).strip() else ""

    return {"kernel": os.uname().release, "stress-ng": first_line(["stress-ng", "--version"]),
            "perf": first_line(["perf", "version"]),
            "rt-tests": first_line(["dpkg-query", "-W", "-f=${Version}", "rt-tests"]),
            "python": sys.version.split()[0]}


def done_cells(runs_path: Path) -> set[tuple[str, str, int]]:
    out = set()
    if runs_path.exists():
        for line in runs_path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: that cell runs again
            out.add((r["arm"], r["workload"], r["repeat"]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--testbed", type=Path, required=True, help="artifacts root")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window", type=float, default=2.0, help="window length, s")
    ap.add_argument("--interval", type=float, default=0.5, help="sample interval, s")
    ap.add_argument("--windows", type=int, default=3, help="scored windows per cell")
    ap.add_argument("--warmup", type=int, default=1, help="flagged windows after a swap")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--measure-nice", type=int, default=-10,
                    help="nice value of the measuring loop (the workload runs at 0)")
    ap.add_argument("--draws", type=int, default=8,
                    help="parameter draws added to the named presets")
    ap.add_argument("--only-workloads", default="")
    ap.add_argument("--workloads-file", type=Path, default=None,
                    help="more workloads, declared in TOML (scxd.workloads.load_file)")
    ap.add_argument("--only-arms", default="",
                    help="comma-separated arm labels (smoke tests); default: the design")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    host = HostFS("/")
    search_path = guest_search_path(args.testbed)  # kernel-tree and scx schedulers
    probed = probe_catalog(build_catalog(), search_path, host)
    act = Actuator(probed, host, ActuatorConfig(search_path=search_path,
                                                start_timeout=20.0, stop_timeout=3.0,
                                                disable_timeout=10.0),
                   args.out / "state")
    act.recover()
    tcfg = TelemetryConfig(sample_interval=args.interval, window=args.window, bpf="required")
    sampler = Sampler(tcfg, host)
    sampler.open()
    per_window = samples_per_window(args.window, args.interval)
    seconds = int((args.warmup + args.windows) * args.window + 4)
    design = load_or_build_design(args.out / "design.json", act, args)
    arms = [a for a in design.arms if not args.only_arms
            or a.label in args.only_arms.split(",")]
    workloads = recorded_workloads(args.only_workloads, args.workloads_file)
    header = {**schema_header(), "host": "sched_ext test bed (qemu TCG)",
              "kernel": os.uname().release, "recorder": vars(args) | {
                  "testbed": str(args.testbed), "out": str(args.out),
              "workloads_file": str(args.workloads_file or "")},
              "versions": versions(), "arms": [a.label for a in arms],
              "arm_set": ArmSet([a.action for a in arms]).header(),
              "design": design.as_dict(),
              "workloads": {w.name: w.describe for w in workloads},
              "headlines": {w.name: w.as_dict()["headline"] for w in workloads}}
    journal = JournalWriter(args.out / "journal", header, max_file_bytes=2**40, fsync=True)
    runs_path = args.out / "runs.jsonl"
    done = done_cells(runs_path)
    try:
        for repeat in range(args.repeats):
            rng = random.Random(args.seed + repeat)
            cells = [(a, w) for a in arms for w in workloads]
            rng.shuffle(cells)
            for arm, wl in cells:
                if (arm.label, wl.name, repeat) in done:
                    continue
                record_cell(act, sampler, journal, runs_path, arm, wl, repeat, args,
                            per_window, seconds, design)
    finally:
        act.shutdown()
        sampler.close()
        journal.close()
    return 0


def recorded_workloads(only: str, workloads_file: Path | None) -> tuple[Workload, ...]:
    """What a recording runs: ``only`` (comma-separated names) among scxd's workloads and
    the file's; without ``only``, the file's workloads when a file is given, else scxd's."""
    extra = load_file(workloads_file) if workloads_file else ()
    if not only and extra:
        return extra
    return select(only or None, extra)


def load_or_build_design(path: Path, act: Actuator, args: argparse.Namespace) -> Design:
    """The saved design when resuming, else a new one (saved before the first cell)."""
    if path.exists():
        return design_from_dict(json.loads(path.read_text()), act.catalog)
    design = build_design(act.catalog, act.probed.available(), args.draws, args.seed)
    path.write_text(json.dumps(design.as_dict(), indent=1) + "\n")
    for why in design.skipped:
        print(f"design: skipped {why}", flush=True)
    print(f"design: {len(design.arms)} arms", flush=True)
    return design


@contextmanager
def measuring_priority(nice: int) -> Iterator[None]:
    """Run the block at ``nice`` (this thread only: Linux nice values are per thread), then
    restore the previous value; without the privilege, at the previous value."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    try:
        yield
    finally:
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, before)


def measure_cell(act: Actuator, sampler: Sampler, journal: JournalWriter,
                 design_arm: DesignArm, design: Design, wl: Workload, run_id: str,
                 repeat: int, args, per_window: int) -> int:
    """Warm-up plus scored windows of the running workload, journaled; returns how many."""
    arm = design_arm.action
    windower = Windower(args.interval)
    sampler.sample()  # start the window at the workload's start
    windower.start(time.monotonic(), time.time())
    want = args.warmup + args.windows
    index = ticks = 0
    next_tick = time.monotonic()
    events = []
    while index < want:
        next_tick += args.interval
        time.sleep(max(0.0, next_tick - time.monotonic()))
        ticks += 1
        events += [e.as_dict() for e in act.poll()]
        w = windower.add(sampler.sample(closes_window=ticks % per_window == 0))
        if w is None:
            continue
        features = featurize(w)
        measured = window_measurements(w, features)
        key = arm_key(arm)
        # The complete block design ran this arm in this cell: a cell drawn at random from a
        # block runs it with probability 1/K (design.propensity), the arm held for the run.
        choice = Choice(key, arm.label(), design.propensity, None, True, True,
                        "complete-block-design")
        journal.append(WindowRecord(
            at=time.time(), context=Context(features.schema, features.version,
                                            tuple(float(v) for v in features.values),
                                            features.missing),
            running=key, running_label=arm.label(), warmup=index < args.warmup,
            terms=measured["terms"], choice=choice,
            tags={"run_id": run_id, "workload": wl.name, "repeat": repeat, "index": index},
            extra={**{k: v for k, v in measured.items() if k not in ("features", "terms")},
                   "arm": arm.label(), "mode": act.mode,
                   "decision": {"policy": "complete-block-design", "arm": arm.label(),
                                "propensity": design.propensity, "explore": True,
                                "origin": design_arm.origin,
                                "draw_probability": design_arm.draw_probability},
                   "events": events, "verified": act.verified(arm),
                   "tasks": w.extras.get("tasks", [])}).to_journal())
        events = []
        index += 1
    return index


class WorkloadProcesses:
    """A cell's workload processes, each in its own session, their output spooled to an
    unnamed temporary file: a pipe read only when the cell ends would stop a chatty command
    (a loop of benchmarks printing their tables) once a pipe's worth (64 KiB) is unread.

    A context manager: leaving the block by an exception (a failed measurement, Ctrl-C)
    still stops every process, which would otherwise outlive the recorder in its session.
    What each printed is kept up to ``MAX_OUTPUT`` bytes from its end."""

    MAX_OUTPUT = 16 << 20

    def __init__(self, cmds: list[list[str]]):
        self.files: list[Any] = []
        self.procs: list[subprocess.Popen] = []
        try:
            for c in cmds:
                self.files.append(tempfile.TemporaryFile())   # noqa: SIM115 (stop closes)
                self.procs.append(subprocess.Popen(c, stdout=self.files[-1],
                                                   stderr=subprocess.STDOUT,
                                                   start_new_session=True))
        except BaseException:          # one command failed to start: none may linger
            self.stop()
            raise

    def __enter__(self) -> WorkloadProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[str]:
        """Interrupt what still runs (SIGINT, then SIGKILL after 20 s) and return each
        process's output (its last ``MAX_OUTPUT`` bytes).  Stopping twice returns [] the
        second time."""
        outputs = []
        for p in self.procs:
            if p.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in self.files[:len(self.procs)]:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - self.MAX_OUTPUT))
            outputs.append(f.read().decode(errors="replace"))
        for f in self.files:
            f.close()
        self.procs, self.files = [], []
        return outputs


def record_cell(act: Actuator, sampler: Sampler, journal: JournalWriter, runs_path: Path,
                design_arm: DesignArm, wl: Workload, repeat: int, args, per_window: int,
                seconds: int, design: Design) -> None:
    arm = design_arm.action
    run_id = f"{wl.name}/{arm.label().replace(' ', '_')}/r{repeat}"
    seed = args.seed * 1000 + repeat
    started = time.time()
    res = act.apply(arm)
    run: dict[str, Any] = {"run_id": run_id, "arm": arm.label(), "origin": design_arm.origin,
                           "workload": wl.name,
                           "repeat": repeat, "seed": seed, "started": started,
                           "swap": res.as_dict(), "kernel": read_state(act.host).as_dict()}
    if not res.ok:
        run.update(ok=False, error=f"{res.outcome}: {res.reason}: {res.detail}")
        with open(runs_path, "a") as fh:
            fh.write(json.dumps(run) + "\n")
        print(f"{run_id}: arm failed ({res.reason})", flush=True)
        return
    cmds = wl.commands(seconds, seed)
    run["commands"] = cmds
    # The workload (and the scheduler's loader, started above) run at the default priority;
    # only the measuring loop is raised, so that a saturated guest does not starve it and
    # stretch its windows (the first cells of a recording: 2 s windows averaged 3–4 s under
    # the heavy workloads, up to 17 s).
    with WorkloadProcesses(cmds) as procs:
        with measuring_priority(args.measure_nice):
            index = measure_cell(act, sampler, journal, design_arm, design, wl, run_id,
                                 repeat, args, per_window)
        outputs = procs.stop()
    run.update(ok=True, outcome=wl.outcome(outputs), seconds=round(time.time() - started, 2),
               still_verified=act.verified(arm), output_tail=[o[-400:] for o in outputs])
    with open(runs_path, "a") as fh:
        fh.write(json.dumps(run) + "\n")
    print(f"{run_id}: {index} windows, outcome {run['outcome']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
