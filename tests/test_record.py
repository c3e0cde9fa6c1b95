"""The test-bed recorder's pure parts: workload outcome parsing, the design, packaging."""

from __future__ import annotations

import json
from pathlib import Path

from scxd.journal import JournalWriter
from scxd.testbed.build import Artifacts
from scxd.testbed.dataset import load_runs, load_windows, package
from scxd.testbed.record import done_cells
from scxd.workloads import WORKLOADS, get


def parse_outcome(name, outputs):
    return get(name).outcome(outputs)

STRESS = """stress-ng: info:  [13658] dispatching hogs: 1 cpu
stress-ng: metrc: [13658] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s
stress-ng: metrc: [13658]                           (secs)    (secs)    (secs)   (real time) (usr+sys time)
stress-ng: metrc: [13658] cpu                3902      2.00      2.00      0.00      1950.90        1951.38
stress-ng: info:  [13658] successful run completed in 2.00s
"""
CYCLIC = """# /dev/cpu_dma_latency set to 0us
T: 0 (13745) P: 0 I:2000 C:    994 Min:     17 Act:   69 Avg:   92 Max:    8677
T: 1 (13746) P: 0 I:2500 C:    792 Min:     53 Act:   71 Avg:  117 Max:   14321
"""


def test_parse_stress_ng_metrics():
    out = parse_outcome("cpu_batch", [STRESS])
    assert out == {"cpu_bogo_ops": 3902, "cpu_bogo_ops_per_s": 1950.90,
                   "cpu_bogo_ops_per_cpu_s": 1951.0}


def test_parse_cyclictest_and_loops():
    out = parse_outcome("mixed", [CYCLIC, STRESS])
    # Mean over all wakeups: the threads' averages weighted by their cycles.
    assert out["wakeup_us_avg"] == (92 * 994 + 117 * 792) / (994 + 792)
    assert out["wakeup_us_max"] == 14321
    assert out["wakeup_cycles"] == 994 + 792 and out["cpu_bogo_ops"] == 3902
    perf = "# 20 sender and receiver processes per group\n     Total time: 0.064 [sec]\n" * 3
    assert parse_outcome("messaging", [perf])["messaging_s_iterations"] == 3
    hack = "Running in process mode with 2 groups using 40 file descriptors each\nTime: 0.041\n"
    assert parse_outcome("hackbench", [hack * 2])["hackbench_s_mean"] == 0.041


def test_every_workload_has_seeded_commands():
    names = {w.name for w in WORKLOADS}
    assert {"cpu_batch", "messaging", "hackbench", "mixed", "fork_heavy", "io_cpu"} <= names
    for w in WORKLOADS:
        cmds = w.commands(10, 7)
        assert cmds and all(isinstance(c, list) and c for c in cmds)
        joined = " ".join(" ".join(c) for c in cmds)
        if "stress-ng" in joined:
            assert "--seed 7" in joined  # seeded


def test_resume_skips_done_cells_and_torn_lines(tmp_path):
    p = tmp_path / "runs.jsonl"
    p.write_text(json.dumps({"arm": "fair", "workload": "mixed", "repeat": 0}) + "\n{torn")
    assert done_cells(p) == {("fair", "mixed", 0)}


def test_package_and_load(tmp_path):
    raw = tmp_path / "raw"
    header = {"feature_schema": "scxd-window-features", "feature_version": 1,
              "arms": ["fair"], "workloads": {"mixed": "x"}, "versions": {"kernel": "6.12"},
              "recorder": {"repeats": 1, "seed": 1, "window": 2.0, "interval": 0.5,
                           "warmup": 1, "windows": 1}}
    j = JournalWriter(raw / "journal", header, fsync=False)
    # An attempt killed mid-cell (at 50), then the resumed, completed one (started at 100),
    # and a last attempt killed before it completed: only the completed attempt's windows.
    for at, run_id, i in ((50.0, "mixed/fair/r0", 0), (101.0, "mixed/fair/r0", 0),
                          (103.0, "mixed/fair/r0", 1), (200.0, "mixed/fair/r1", 0)):
        j.append({"kind": "window", "run_id": run_id, "arm": "fair", "at": at,
                  "workload": "mixed", "repeat": 0, "index": i, "warmup": i == 0})
    j.close()
    (raw / "runs.jsonl").write_text(json.dumps({"run_id": "mixed/fair/r0", "arm": "fair",
                                                "workload": "mixed", "repeat": 0, "ok": True,
                                                "started": 100.0, "seconds": 5.0,
                                                "outcome": {"wakeup_us_avg": 700.0}}) + "\n")
    art = Artifacts(tmp_path / "noart", "k")
    summary = package(raw, tmp_path / "ds", art)
    assert summary == {"windows": 2, "runs": 1, "failed_runs": [], "complete": True}
    ds = tmp_path / "ds"
    assert [(w["at"], w["index"]) for w in load_windows(ds)] == [(101.0, 0), (103.0, 1)]
    assert json.loads((ds / "manifest.json").read_text())["interrupted_windows_dropped"] == 2
    assert load_runs(ds)[0]["ok"] is True
    manifest = json.loads((ds / "manifest.json").read_text())
    assert manifest["scored_windows_per_cell"] == {"mixed | fair": 1}
    readme = (ds / "README.md").read_text()
    assert "emulated machine" in readme and "| `fair` | 700 ± 0 (1) |" in readme
    assert Path(ds / "windows.jsonl.xz").stat().st_size < 2000


def test_measuring_priority_raises_then_restores():
    """The measuring loop runs raised (root here); the priority is restored afterwards, and
    a value it may not set leaves the priority as it was (no error)."""
    import os

    from scxd.testbed.record import measuring_priority

    before = os.getpriority(os.PRIO_PROCESS, 0)
    with measuring_priority(before - 5):
        inside = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
    if os.geteuid() == 0:
        assert inside == before - 5
    with measuring_priority(-100):   # clamped by the kernel to -20, or refused unprivileged
        pass
    assert os.getpriority(os.PRIO_PROCESS, 0) == before


def test_a_recording_resumed_with_more_repeats_is_packaged_as_what_was_run(tmp_path):
    """The journal keeps the header of the first attempt (``repeats`` 1 here); a resumed
    run with more repeats extends the design: the manifest and README count the repeats the
    runs hold, completeness is judged on all of them, and the cells' own time is told apart
    from the span that includes the pause between attempts."""
    raw = tmp_path / "raw"
    header = {"feature_schema": "scxd-window-features", "feature_version": 1,
              "arms": ["fair"], "workloads": {"mixed": "x"},
              "recorder": {"repeats": 1, "seed": 1, "window": 2.0, "interval": 0.5,
                           "warmup": 1, "windows": 1}}
    JournalWriter(raw / "journal", header, fsync=False).close()
    runs = [{"run_id": f"mixed/fair/r{r}", "arm": "fair", "workload": "mixed", "repeat": r,
             "ok": True, "started": start, "seconds": 5.0,
             "outcome": {"wakeup_us_avg": 700.0}}
            for r, start in ((0, 100.0), (1, 3700.0))]   # repeat 1: resumed an hour later
    (raw / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    art = Artifacts(tmp_path / "noart", "k")
    assert package(raw, tmp_path / "ds", art)["complete"] is True
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["repeats"] == 2 and manifest["recorder"]["repeats"] == 1
    assert manifest["cell_seconds"] == 10.0 and manifest["recording_s"] == 3605.0
    readme = (tmp_path / "ds" / "README.md").read_text()
    assert "for each of 2 repeats" in readme and "0.00 h of cells; 1.00 h from" in readme
    runs[1]["ok"] = False                     # the extension's only cell failed: incomplete
    (raw / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    assert package(raw, tmp_path / "ds2", art)["complete"] is False


def test_a_chatty_workload_is_not_stopped_by_unread_output():
    """A workload printing more than a pipe holds before the cell ends must keep running:
    its output is spooled, not piped, and read whole when the cell stops it (SIGINT)."""
    import sys
    import time

    from scxd.testbed.record import WorkloadProcesses

    chatty = [sys.executable, "-c",
              "import sys, time\n"
              "sys.stdout.write('x' * 1_000_000)\n"
              "print('after the flood', flush=True)\n"
              "time.sleep(60)\n"]
    quiet = [sys.executable, "-c", "print('done')"]
    procs = WorkloadProcesses([chatty, quiet])
    time.sleep(3)
    t0 = time.monotonic()
    chatty_out, quiet_out = procs.stop()
    assert time.monotonic() - t0 < 10            # SIGINT ended the sleeper, no SIGKILL wait
    assert len(chatty_out) > 1_000_000 and "after the flood" in chatty_out
    assert quiet_out == "done\n"


def test_workload_processes_never_outlive_a_failed_start_or_measurement(monkeypatch):
    """A command that cannot start stops the ones already started; an exception while the
    cell is measured stops them too (they run in their own sessions: nothing else would)."""
    import subprocess
    import sys

    import pytest

    from scxd.testbed import record

    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(record.subprocess, "Popen", popen)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(FileNotFoundError):
        record.WorkloadProcesses([sleeper, ["/nonexistent/workload"]])
    assert len(started) == 1 and started[0].poll() is not None
    with pytest.raises(RuntimeError, match="measurement failed"), \
            record.WorkloadProcesses([sleeper]):
        raise RuntimeError("measurement failed")
    assert len(started) == 2 and started[1].poll() is not None
