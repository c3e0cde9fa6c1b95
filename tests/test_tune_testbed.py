"""``scxd tune`` for real: in the sched_ext test-bed guest, a tuning run of scx_bpfland (or
scx_qmap when the test bed has no bpfland) with ``perf bench sched messaging``, budget 8.

It must complete, write every output file, leave the fair scheduler running, and its
``best_parameters.json`` must reproduce: ``scxd tune --reproduce`` re-applies it and
re-runs the benchmark, and the fresh mean must land inside the interval the run reported
for a reproduction.  One guest boot does both; results come back through a shared
directory, never by grepping the console.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.testbed, pytest.mark.slow, pytest.mark.timeout(3600)]
OUTPUTS = ("best_parameters.json", "trials.csv", "trials.jsonl", "importance.json",
           "convergence.png", "importance.png", "metric_per_trial.png", "summary.md",
           "run.json")
BENCH = "perf bench sched messaging -g 2 -l 20"


def scheduler_for(art) -> str:
    """scx_bpfland when the test bed built the scx loaders (they live in their own
    directory, beside the kernel tree's schedulers), else scx_qmap."""
    has_bpfland = any((Path(d) / "scx_bpfland").exists() for d in art.search_path)
    return "scx_bpfland" if has_bpfland else "scx_qmap"


@pytest.fixture(scope="module")
def tuned(testbed_artifacts, tmp_path_factory):
    artifacts = testbed_artifacts
    from scxd.testbed.run import run_full

    out = tmp_path_factory.mktemp("tune-guest")
    sched = scheduler_for(artifacts)
    cfg = out / "scxd.toml"
    search_path = ", ".join(f'"{d}"' for d in artifacts.search_path)
    cfg.write_text(f'[actuator]\nsearch_path = [{search_path}]\n'
                   "start_timeout = 20.0\nstop_timeout = 3.0\ndisable_timeout = 10.0\n"
                   f'[control]\nsocket = "{out}/no-daemon.sock"\n')
    py = shlex.quote(sys.executable)
    tune = (f"{py} -m scxd.cli tune --config {cfg} --scheduler {sched} "
            f"--benchmark {shlex.quote(BENCH)} --budget 8 --repeats 3 --warmup 1 --seed 1 "
            f"--no-early-stop --out {out}/run")
    reproduce = f"{py} -m scxd.cli tune --config {cfg} --reproduce {out}/run"
    record = (f'printf \'{{"tune_rc": %s, "state_after": "%s", "reproduce_rc": %s}}\\n\' '
              f'"$t" "$s" "$r" > {out}/result.jsonl')
    # A marker first (the guest is alive and sees the shared directory), a bound on the
    # tune itself (a hung guest command still reports), then the reproduction.
    script = (f"date > {out}/started; timeout 2400 {tune} > {out}/tune.log 2>&1; t=$?; "
              f"s=$(cat /sys/kernel/sched_ext/state); "
              f"{reproduce} > {out}/reproduce.log 2>&1; r=$?; {record}")
    # The script goes in a file: the guest command travels on the kernel command line,
    # which holds 2048 bytes.
    (out / "guest.sh").write_text(script + "\n")
    run = run_full(artifacts, ["sh", str(out / "guest.sh")], out, timeout=3000)
    if run.problem():
        pytest.fail(f"{run.problem()}\nguest started: {(out / 'started').exists()}\n"
                    f"{logs(out)}", pytrace=False)
    results = [r for r in run.records if "tune_rc" in r]
    assert results, f"no result record; console tail:\n{run.console_tail()}"
    return sched, out, results[0]


def logs(out: Path) -> str:
    return "\n".join(f"--- {n}\n{(out / n).read_text()[-4000:]}" for n in
                     ("tune.log", "reproduce.log") if (out / n).exists())


def test_tune_completes_and_writes_every_output(tuned):
    sched, out, res = tuned
    assert res["tune_rc"] == 0, logs(out)
    for name in OUTPUTS:
        assert (out / "run" / name).stat().st_size > 0, name
    run = json.loads((out / "run" / "run.json").read_text())
    assert run["status"] == "complete" and run["search_trials"] >= 8
    assert run["kernel"].startswith("6.12")
    best = json.loads((out / "run" / "best_parameters.json").read_text())
    assert best["scheduler"] == sched and best["metric"]["name"] == "total_time_s"
    assert set(best["improvement"]) == {"fair", "defaults"}


def test_the_fair_scheduler_is_restored(tuned):
    _, out, res = tuned
    assert res["state_after"] == "disabled", logs(out)
    assert "restored the fair scheduler" in (out / "tune.log").read_text()


def test_every_trial_ran_under_a_kernel_verified_scheduler(tuned):
    from scxd.tune.records import TrialLog

    sched, out, _ = tuned
    recs = TrialLog(out / "run").load()
    search = [r for r in recs if r.kind == "search"]
    assert len(search) == 8
    for r in recs:
        if r.complete and r.scheduler != "fair":
            k = r.apply["kernel"]
            assert k["state"] == "enabled" and k["ops"].startswith(sched.removeprefix("scx_"))
    assert sum(r.complete for r in search) >= 4, [(r.state, r.detail) for r in search]


def test_best_parameters_reproduce(tuned):
    _, out, res = tuned
    assert res["reproduce_rc"] == 0, logs(out)
    rep = json.loads((out / "run" / "reproduce.json").read_text())
    best = json.loads((out / "run" / "best_parameters.json").read_text())
    lo, hi = best["reproduce"]["low"], best["reproduce"]["high"]
    assert rep["within_predicted_interval"] and lo <= rep["summary"]["mean"] <= hi, rep
