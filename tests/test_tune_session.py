"""Whole tuning runs against the fake sched_ext kernel and fake loaders: every output file,
failures recorded, baselines interleaved, resume, early stop, refusals, the CLI.

The benchmark is ``tests/fakes/fake_bench.py``: its result depends on the arguments of the
scheduler the fake kernel runs (scx_qmap is best near ``-s 3000``, ``-b`` has no effect),
so a run has a real optimum to find.  scx_qmap's fake refuses to start with ``-H``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scxd.config import load_config
from scxd.tune import NoSchedExt, Progress, TuneError, optimize_scheduler, resume
from scxd.tune.records import TrialLog
from tests.fakes import FakeKernel, fake_processes, install_fake, wait_for

REPO = Path(__file__).resolve().parents[1]
FAKE_BENCH = REPO / "tests" / "fakes" / "fake_bench.py"
QMAP_HELP = "-s -b -H -p -e -t -T -h"
OUTPUTS = ("best_parameters.json", "trials.csv", "trials.jsonl", "importance.json",
           "convergence.png", "importance.png", "metric_per_trial.png", "summary.md",
           "run.json")


class Host:
    def __init__(self, tmp: Path, kernel: FakeKernel):
        self.tmp, self.kernel = tmp, kernel
        self.root, self.bin = kernel.root, tmp / "bin"
        install_fake(self.bin, "scx_qmap", self.root, "qmap", supports=QMAP_HELP,
                     refuse_with="-H")
        self.config = tmp / "scxd.toml"
        self.config.write_text(
            f'host_root = "{self.root}"\n[actuator]\nsearch_path = ["{self.bin}"]\n'
            "start_timeout = 3.0\nstop_timeout = 0.5\ndisable_timeout = 3.0\n"
            f'[control]\nsocket = "{tmp / "no-daemon.sock"}"\n')
        self.settings = load_config(self.config, environ={})

    def bench(self, *extra: str) -> str:
        return " ".join([sys.executable, str(FAKE_BENCH), "--root", str(self.root),
                         "--seed-file", str(self.tmp / "bench-runs"), *extra])


@pytest.fixture
def host(tmp_path):
    with FakeKernel(tmp_path / "host") as kernel:
        yield Host(tmp_path, kernel)
        assert wait_for(lambda: not fake_processes(kernel.root), 5.0), "loader left running"
        assert kernel.state == "disabled"


def tune(host: Host, out: Path, **kw) -> object:
    args = dict(budget=8, repeats=2, warmup=0, seed=1, settings=host.settings, out=out,
                progress=False, parser="perf-messaging")
    args.update(kw)
    return optimize_scheduler("scx_qmap", host.bench(), **args)


def test_a_whole_run_writes_every_output_and_restores_fair(host, tmp_path):
    out = tmp_path / "out"
    res = tune(host, out, budget=10, early_stop=False)
    assert res.status == "complete" and host.kernel.state == "disabled"
    assert res.restored["outcome"] in ("applied", "noop")
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for png in OUTPUTS[4:7]:
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png
    recs = TrialLog(out).load()
    kinds = [r.kind for r in recs]
    search = [r for r in recs if r.kind == "search"]
    assert [r.number for r in search] == list(range(1, 11))
    # baselines first, again every 4 trials (budget 10 → every 4), and after the search
    rounds = sorted({r.round for r in recs if r.kind == "baseline"})
    assert rounds == [1, 2, 3, 4] and kinds[:2] == ["baseline", "baseline"]
    assert kinds[-1] == "confirm"
    assert all(r.state == "failed_to_start" and r.reason == "exited" for r in search
               if r.params["boost_nice"]), "the fake refuses -H: recorded as such"
    assert all(r.complete for r in search if not r.params["boost_nice"])
    csv_lines = (out / "trials.csv").read_text().splitlines()
    assert len(csv_lines) == len(recs) + 1 and csv_lines[0].startswith("seq,kind,label")
    best = json.loads((out / "best_parameters.json").read_text())
    assert best["scheduler"] == "scx_qmap" and best["argv"][0].endswith("/scx_qmap")
    assert best["args"] == best["argv"][1:]
    assert set(best["parameters"]) >= {"slice_us", "dsp_batch", "boost_nice"}
    m = best["metric"]
    assert m["name"] == "total_time_s" and m["source"] == "confirmation"
    assert m["ci_low"] <= m["mean"] <= m["ci_high"]
    assert best["reproduce"]["low"] < m["mean"] < best["reproduce"]["high"]
    assert set(best["improvement"]) == {"fair", "defaults"}
    # the fake makes qmap's defaults (20 ms slice) 1.25 s and ~3 ms slices ~0.9 s
    assert best["improvement"]["defaults"]["verdict"] == "better"
    assert 1000 <= best["parameters"]["slice_us"] <= 10_000
    assert best["apply"]["scxctl"].startswith("scxctl switch -s scx_qmap -a ")
    imp = json.loads((out / "importance.json").read_text())["parameters"]
    by = {p["name"]: p for p in imp}
    assert by["slice_us"]["importance"] > by["dsp_batch"]["importance"]
    assert by["dsp_batch"]["verdict"] != "matters"          # it has no effect at all
    summary = (out / "summary.md").read_text()
    for section in ("## Best configuration", "## Baselines and drift",
                    "## Parameter importance", "## Trials", "scxctl switch -s scx_qmap"):
        assert section in summary
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["search_trials"] == 10


class StopAfter(Progress):
    """Ctrl-C after the N-th search trial is recorded."""

    def __init__(self, n: int):
        super().__init__(enabled=False)
        self.n = n

    def line(self, text: str) -> None:
        if text.startswith(f"[trial {self.n}/"):
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_where_it_stopped(host, tmp_path):
    out = tmp_path / "out"
    first = tune(host, out, budget=8, early_stop=False, progress=StopAfter(5))
    assert first.status == "interrupted" and host.kernel.state == "disabled"
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert (out / "best_parameters.json").exists()      # partial results are written
    before = TrialLog(out).load()
    assert [r.number for r in before if r.kind == "search"] == [1, 2, 3, 4, 5]
    # a crash mid-write leaves a torn last line: resume drops it and goes on
    with open(out / "trials.jsonl", "a") as fh:
        fh.write('{"seq": 99, "kind": "sea')
    with pytest.raises(TuneError, match="already holds a tuning run"):
        tune(host, out, budget=8, early_stop=False)
    with pytest.raises(TuneError, match=r"different settings.*repeats"):
        tune(host, out, budget=8, early_stop=False, repeats=3, resume=True)
    second = resume(out, settings=host.settings, progress=False)
    assert second.status == "complete"
    recs = TrialLog(out).load()
    assert recs[: len(before)] == before                 # nothing earlier was rewritten
    assert [r.number for r in recs if r.kind == "search"] == list(range(1, 9))
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    assert sum(r.kind == "confirm" for r in recs) == 1
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["resumed"] == 1
    # a finished run can be given more budget
    third = resume(out, budget=10, settings=host.settings, progress=False)
    assert len([r for r in third.trials if r.kind == "search"]) == 10


def test_the_search_stops_early_when_nothing_can_beat_the_best(host, tmp_path):
    flat = f"{sys.executable} -c \"import random; print('Total time: %.4f [sec]' % " \
        "random.gauss(1.0, 0.005))\""
    res = optimize_scheduler("scx_qmap", flat, parser="perf-messaging", budget=30, repeats=2,
                             warmup=0, seed=2, settings=host.settings, out=tmp_path / "o",
                             progress=False, params=["slice_us", "dsp_batch"], min_trials=6)
    searched = [r for r in res.trials if r.kind == "search"]
    assert res.stopped and "chance" in res.stopped
    assert 6 <= len(searched) < 30
    assert res.trials[-1].kind == "confirm"
    assert "stopped early" in (tmp_path / "o" / "summary.md").read_text()
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["stopped"] == res.stopped and run["status"] == "complete"


def test_a_benchmark_broken_under_fair_stops_before_any_search(host, tmp_path):
    with pytest.raises(TuneError, match="does not work under the fair scheduler"):
        optimize_scheduler("scx_qmap", "echo broken >&2; exit 4", parser="hackbench",
                           budget=4, settings=host.settings, out=tmp_path / "o",
                           progress=False)
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["status"] == "failed" and host.kernel.state == "disabled"


def test_a_scheduler_that_never_starts_is_refused(host, tmp_path):
    install_fake(host.bin, "scx_qmap", host.root, "qmap", mode="refuse", supports=QMAP_HELP)
    with pytest.raises(TuneError, match="with its defaults could not be measured"):
        tune(host, tmp_path / "o")


def test_a_foreign_scheduler_is_left_alone(host, tmp_path):
    exe = install_fake(host.tmp / "ext", "scx_ext", host.root, "extsched")
    proc = subprocess.Popen([str(exe)], stdout=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: host.kernel.state == "enabled")
        with pytest.raises(TuneError, match="did not start is running"):
            tune(host, tmp_path / "o")
        assert proc.poll() is None and host.kernel.ops == "extsched"
    finally:
        proc.terminate()
        proc.wait()


def test_no_sched_ext_is_refused_with_the_test_bed_command(tmp_path):
    bare = tmp_path / "bare"
    (bare / "sys" / "kernel").mkdir(parents=True)
    settings = load_config(None, {"host_root": str(bare)}, environ={})
    with pytest.raises(NoSchedExt, match="scxd-testbed exec"):
        optimize_scheduler("scx_qmap", "perf bench sched messaging", settings=settings,
                           out=tmp_path / "o", progress=False)
    env = {**os.environ, "SCXD_HOST_ROOT": str(bare), "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "scxd.cli", "tune", "--scheduler", "scx_qmap",
                          "--benchmark", "perf bench sched messaging -g 2", "--budget", "8"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 1, res.stderr
    assert "has no sched_ext" in res.stderr
    assert ("scxd-testbed exec --rwdir DIR -- scxd tune --scheduler scx_qmap --benchmark "
            "'perf bench sched messaging -g 2' --budget 8 --out DIR") in res.stderr
    res = subprocess.run([sys.executable, "-m", "scxd.cli", "tune", "-s", "scx_qmap", "-b",
                          "hackbench", "--out", "tuned"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert (f"scxd-testbed exec --rwdir {tmp_path / 'tuned'} -- scxd tune -s scx_qmap -b "
            "hackbench --out tuned") in res.stderr
    assert not (tmp_path / "o").exists()


def run_cli(host: Host, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "scxd.cli", "tune", "--config",
                           str(host.config), *args], capture_output=True, text=True, env=env,
                          cwd=host.tmp, timeout=300)


def test_the_command_line(host, tmp_path):
    out = tmp_path / "cli"
    res = run_cli(host, "--scheduler", "scx_qmap", "--benchmark", host.bench(),
                  "--parser", "perf-messaging", "--params", "slice_us,dsp_batch",
                  "--range", "slice_us=1000:10000:log", "--fix", "boost_nice=off",
                  "--budget", "6", "--repeats", "2", "--warmup", "0", "--seed", "4",
                  "--out", str(out))
    assert res.returncode == 0, res.stderr
    err = res.stderr
    assert "[baseline 1] fair" in err and "[trial 6/6]" in err and "[confirm]" in err
    assert "restored the fair scheduler" in err and "vs fair:" in err
    best = json.loads((out / "best_parameters.json").read_text())
    assert 1000 <= best["parameters"]["slice_us"] <= 10_000
    # reproduce: re-apply the best and land inside the predicted interval
    rep = run_cli(host, "--reproduce", str(out), "--repeats", "3")
    assert rep.returncode == 0, rep.stderr + rep.stdout
    data = json.loads((out / "reproduce.json").read_text())
    assert data["within_predicted_interval"] and len(data["values"]) == 3
    dry = run_cli(host, "--scheduler", "scx_qmap", "--dry-run", "--benchmark", "hackbench")
    assert dry.returncode == 0 and "slice_us" in dry.stdout and "plan:" in dry.stdout
    bad = run_cli(host, "--scheduler", "scx_qmap", "--benchmark", "hackbench", "--params",
                  "nonesuch", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "nonesuch" in bad.stderr
    assert run_cli(host, "--benchmark", "hackbench").returncode == 2
    assert host.kernel.state == "disabled"


@pytest.mark.parametrize("sampler", ["random", "grid"])
def test_other_samplers(host, tmp_path, sampler):
    res = tune(host, tmp_path / sampler, budget=4, sampler=sampler, grid_points=2,
               params=["slice_us", "boost_nice"], early_stop=False)
    search = [r for r in res.trials if r.kind == "search"]
    assert res.status == "complete" and len(search) == 4
    if sampler == "grid":      # 2 slice values × on/off: the whole grid, each point once
        points = {(r.params["slice_us"], r.params["boost_nice"]) for r in search}
        assert points == {(100, False), (100, True), (1_000_000, False), (1_000_000, True)}


def test_a_custom_scheduler_and_space_from_the_config(host, tmp_path):
    """[schedulers.NAME] adds a scheduler of one's own with its parameter ranges; tune
    searches exactly that space."""
    exe = install_fake(host.bin, "my_sched", host.root, "mine", supports="-s -H -h")
    cfg = tmp_path / "custom.toml"
    cfg.write_text(host.config.read_text() + f'''
[schedulers.my_sched]
binary = "{exe}"
ops_prefix = "mine"
help_args = ["-h"]
constraints = []

[[schedulers.my_sched.params]]
name = "slice"
kind = "int"
flag = "-s"
default = 20000
min = 1000
max = 10000
''')
    with pytest.raises(TuneError, match=r"my_sched.*above the maximum"):   # bad default
        optimize_scheduler("my_sched", host.bench(), parser="perf-messaging",
                           settings=load_config(cfg, environ={}), out=tmp_path / "x",
                           progress=False)
    cfg.write_text(cfg.read_text().replace("default = 20000", "default = 5000"))
    res = optimize_scheduler("my_sched", host.bench(), parser="perf-messaging", budget=4,
                             repeats=2, warmup=0, settings=load_config(cfg, environ={}),
                             out=tmp_path / "o", progress=False, early_stop=False)
    search = [r for r in res.trials if r.kind == "search"]
    assert res.status == "complete" and len(search) == 4
    assert all(1000 <= r.params["slice"] <= 10_000 and r.complete for r in search)
    assert all(r.argv[:1] == ["-s"] or r.params["slice"] == 5000 for r in search)
