"""Workloads declared in a file (``scxd-testbed record --workloads-file``): the schema, the
errors that name the problem, the commands and parsers built from it, and what the recorder
and the dataset packager do with it."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from scxd.journal import JournalWriter
from scxd.testbed.build import Artifacts
from scxd.testbed.cli import prepare_recording
from scxd.testbed.dataset import PackagedDatasetError, package
from scxd.testbed.record import recorded_workloads
from scxd.workloads import (
    BY_NAME,
    UnknownWorkload,
    WorkloadFileError,
    load_file,
    select,
)

REPO = Path(__file__).parents[1]
UNSEEN = REPO / "bench" / "workloads" / "unseen.toml"
STRESS = "\n".join(f"stress-ng: metrc: [1] {row}" for row in (
    "stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s",
    "                          (secs)    (secs)    (secs)   (real time) (usr+sys time)",
    "switch          2500630      4.00      2.00      6.00    625100.20      312969.96"))
CYCLIC = "T: 0 (13745) P: 0 I:3000 C:    994 Min:     17 Act:   69 Avg:   92 Max:    8677\n"
ONE = """
[[workloads]]
name = "sem_pairs"
describe = "semaphores"
category = "ipc"
parsers = ["stress-ng"]
headline = { metric = "sem_bogo_ops_per_s", direction = "higher", unit = "ops/s" }
[[workloads.processes]]
argv = ["stress-ng", "--sem", "2", "--timeout", "{seconds}s", "--seed", "{seed}"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "w.toml"
    p.write_text(text)
    return p


def test_the_shipped_unseen_workloads_load_and_are_not_scxds():
    loaded = load_file(UNSEEN)
    assert [w.name for w in loaded] == ["switch_pairs", "matrix_batch", "waker_beside_memory"]
    assert not {w.name for w in loaded} & set(BY_NAME)
    switch = loaded[0]
    assert switch.commands(14, 7) == [["stress-ng", "--switch", "2", "--timeout", "14s",
                                       "--metrics-brief", "--seed", "7", "--temp-path",
                                       "/tmp"]]
    out = switch.outcome([STRESS])
    assert switch.headline_value(out) == 625100.2 and switch.headline.higher_is_better
    waker = loaded[2]
    out = waker.outcome([CYCLIC, STRESS])
    assert waker.headline_value(out) == 92 and not waker.headline.higher_is_better
    assert out["switch_bogo_ops_per_s"] == 625100.2      # both parsers' figures are kept
    assert waker.as_dict()["headline"]["direction"] == "lower"


def test_select_finds_file_workloads_beside_scxds_own():
    extra = load_file(UNSEEN)
    assert [w.name for w in select("matrix_batch,idle", extra)] == ["idle", "matrix_batch"]
    assert len(select(None, extra)) == len(BY_NAME) + 3
    with pytest.raises(UnknownWorkload):
        select("matrix_batch")          # not without the file
    with pytest.raises(UnknownWorkload, match="in the workloads file: switch_pairs, "):
        select("matrix", extra)


def test_loop_and_timed_loop_processes_run_for_the_cell(tmp_path):
    p = write(tmp_path, ONE.replace('parsers = ["stress-ng"]', 'parsers = ["timed-loop"]')
              .replace('metric = "sem_bogo_ops_per_s"', 'metric = "iteration_s_mean"')
              .replace('direction = "higher"', 'direction = "lower"')
              .replace('argv = ["stress-ng", "--sem", "2", "--timeout", "{seconds}s", '
                       '"--seed", "{seed}"]', 'argv = ["true", "{seed}"]\nrepeat = '
                       '"timed-loop"'))
    wl = load_file(p)[0]
    [cmd] = wl.commands(3, 5)
    assert cmd[:2] == ["sh", "-c"] and "true 5" in cmd[2]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    figures = wl.outcome([out])
    assert figures["iteration_s_iterations"] >= 1 and wl.headline_value(figures) < 1.0


@pytest.mark.parametrize("change, named", [
    (("[[workloads]]", "[[workload]]"), "workload"),                       # unknown table
    (('name = "sem_pairs"', 'name = "idle"'), "name is taken"),
    (('name = "sem_pairs"', 'name = "Sem Pairs"'), "workloads.0.name"),
    (('category = "ipc"', 'category = "games"'), "category 'games'"),
    (('parsers = ["stress-ng"]', 'parsers = ["sysbench"]'), "unknown parser 'sysbench'"),
    (('metric = "sem_bogo_ops_per_s"', 'metric = "wakeup_us_avg"'), "headline.metric"),
    (('direction = "higher"', 'direction = "up"'), "workloads.0.headline.direction"),
    (('"{seed}"]', '"{seed}"]\nrepeat = "forever"'), "processes[0].repeat 'forever'"),
    (('"{seed}"]', '"{seed}"]\nnice = 5'), "workloads.0.processes.0.nice"),
    (("describe", "describe = \n"), "w.toml"),                            # not TOML
    (('"{seed}"]', '"{secs}"]'), "unknown placeholder {secs}"),
    (('parsers = ["stress-ng"]', 'parsers = ["stress-ng", "timed-loop"]'),
     "parser timed-loop needs a process"),
    (('"{seed}"]', '"{seed}"]\nrepeat = "timed-loop"'), "every process is a timed loop"),
])
def test_a_bad_file_is_refused_naming_the_problem(tmp_path, change, named):
    p = write(tmp_path, ONE.replace(*change, 1))
    with pytest.raises(WorkloadFileError) as err:
        load_file(p)
    assert named in str(err.value) and str(p) in str(err.value)


def test_missing_file_and_duplicate_names(tmp_path):
    with pytest.raises(WorkloadFileError, match=r"nope\.toml"):
        load_file(tmp_path / "nope.toml")
    with pytest.raises(WorkloadFileError, match="name is taken"):
        load_file(write(tmp_path, ONE + ONE))


def args(tmp_path: Path, **kw) -> argparse.Namespace:
    base = {"out": tmp_path / "rec", "workloads_file": None, "only_workloads": "",
            "design_from": None}
    return argparse.Namespace(**{**base, **kw})


def test_prepare_recording_copies_the_file_and_reuses_a_datasets_design(tmp_path):
    a = args(tmp_path, workloads_file=UNSEEN, only_workloads="switch_pairs",
             design_from=REPO / "data" / "testbed")
    extra = prepare_recording(a)
    copy = a.out / "workloads.toml"
    assert extra == ["--workloads-file", str(copy)] and copy.read_text() == UNSEEN.read_text()
    manifest = json.loads((REPO / "data" / "testbed" / "manifest.json").read_text())
    assert json.loads((a.out / "design.json").read_text()) == manifest["design"]
    assert prepare_recording(a) == extra        # resuming with the same design is fine


def test_without_only_workloads_a_file_records_its_own_workloads():
    assert [w.name for w in recorded_workloads("", UNSEEN)] == [
        "switch_pairs", "matrix_batch", "waker_beside_memory"]
    assert [w.name for w in recorded_workloads("idle,switch_pairs", UNSEEN)] == [
        "idle", "switch_pairs"]
    assert len(recorded_workloads("", None)) == len(BY_NAME)


def test_prepare_recording_refuses_before_the_guest_boots(tmp_path):
    with pytest.raises(UnknownWorkload):
        prepare_recording(args(tmp_path, workloads_file=UNSEEN, only_workloads="nope"))
    # A resumed recording keeps the workloads file it started with.
    prepare_recording(args(tmp_path, workloads_file=UNSEEN))
    other = write(tmp_path, ONE)
    with pytest.raises(WorkloadFileError, match="exists and differs"):
        prepare_recording(args(tmp_path, workloads_file=other))
    (tmp_path / "rec").mkdir(exist_ok=True)
    (tmp_path / "rec" / "design.json").write_text('{"arms": []}')
    with pytest.raises(PackagedDatasetError, match="another design"):
        prepare_recording(args(tmp_path, design_from=REPO / "data" / "testbed"))
    with pytest.raises(PackagedDatasetError, match=r"manifest\.json"):
        prepare_recording(args(tmp_path, design_from=tmp_path / "nowhere"))
    (tmp_path / "nodesign").mkdir()
    (tmp_path / "nodesign" / "manifest.json").write_text('{"design": {"arms": [1]}}')
    with pytest.raises(PackagedDatasetError, match="arms, seed and draws"):
        prepare_recording(args(tmp_path, design_from=tmp_path / "nodesign"))
    (tmp_path / "rec" / "design.json").write_text("{torn")
    with pytest.raises(PackagedDatasetError, match="not valid JSON"):
        prepare_recording(args(tmp_path, design_from=REPO / "data" / "testbed"))


def test_the_record_command_reports_a_bad_workload_name_without_a_traceback(
        tmp_path, capsys, monkeypatch):
    from scxd.testbed import cli

    monkeypatch.setattr(cli.tb_build, "artifacts_for", lambda *a: pytest.fail("looked"))
    rc = cli.main(["record", "--out", str(tmp_path / "rec"), "--workloads-file", str(UNSEEN),
                   "--only-workloads", "matrix_btach"])
    err = capsys.readouterr().err
    assert rc == 1 and "unknown workload 'matrix_btach'" in err and "matrix_batch" in err
    assert "Traceback" not in err


def test_a_file_workloads_outcomes_reach_the_dataset_readme(tmp_path):
    wl = load_file(UNSEEN)[1]
    raw = tmp_path / "raw"
    header = {"feature_schema": "scxd-window-features", "feature_version": 1,
              "arms": ["fair"], "workloads": {wl.name: wl.describe},
              "headlines": {wl.name: wl.as_dict()["headline"]}, "versions": {},
              "recorder": {"repeats": 1, "seed": 1, "window": 2.0, "interval": 0.5,
                           "warmup": 0, "windows": 1}}
    j = JournalWriter(raw / "journal", header, fsync=False)
    j.append({"kind": "window", "run_id": "r", "arm": "fair", "at": 101.0,
              "workload": wl.name, "repeat": 0, "index": 0, "warmup": False})
    j.close()
    (raw / "runs.jsonl").write_text(json.dumps({
        "run_id": "r", "arm": "fair", "workload": wl.name, "repeat": 0, "ok": True,
        "started": 100.0, "seconds": 5.0, "outcome": {"matrix_bogo_ops_per_s": 420.0}}) + "\n")
    package(raw, tmp_path / "ds", Artifacts(tmp_path / "noart", "k"))
    readme = (tmp_path / "ds" / "README.md").read_text()
    assert "matrix_batch: matrix_bogo_ops_per_s (higher is better)" in readme
    assert "| `fair` | 420 ± 0 (1) |" in readme


def test_replay_takes_the_headlines_of_every_dataset(tmp_path):
    from scxd.replay.simulate import headline, manifest_of

    def dataset(name: str, headlines: dict) -> str:
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({"made": name, "headlines": headlines}))
        return str(d)

    # An older dataset spelled io_cpu's headline otherwise: scxd's own declaration wins
    # and two datasets never clash over it.
    first = dataset("a", {"io_cpu": {"metric": "hdd_bogo_ops_per_s", "direction": "higher"}})
    wl = load_file(UNSEEN)[0]
    second = dataset("b", {wl.name: wl.as_dict()["headline"],
                           "io_cpu": BY_NAME["io_cpu"].as_dict()["headline"]})
    merged = manifest_of([first, second])
    assert merged["made"] == "a" and set(merged["headlines"]) == {wl.name, "io_cpu"}
    assert merged["headlines"]["io_cpu"]["metric"] == "hdd_bogo_ops_per_s"   # as recorded
    assert headline(wl.name, merged) == ("switch_bogo_ops_per_s", True)
    assert headline("io_cpu", merged)[0] == "io_cpu_work_ops_per_s"
    assert headline(wl.name, manifest_of([first])) is None
    reworded = dataset("c", {wl.name: {**wl.as_dict()["headline"], "doc": "other words"}})
    assert set(manifest_of([second, reworded])["headlines"]) == {wl.name, "io_cpu"}
    clash = dataset("d", {wl.name: {"metric": "other", "direction": "lower"}})
    with pytest.raises(ValueError, match="different headlines"):
        manifest_of([second, clash])
    # The two spellings of a direction are one headline: no clash between them.
    spelled = dataset("e", {wl.name: {"metric": "switch_bogo_ops_per_s",
                                      "higher_is_better": True}})
    assert set(manifest_of([second, spelled])["headlines"]) == {wl.name, "io_cpu"}


def test_the_unseen_recording_keeps_no_figure_stress_ng_disowned():
    """In the test-bed guest the switch stressor, interrupted by the recorder, failed its
    metrics check in 20 of 46 runs: those figures are dropped when the dataset is read."""
    from scxd.testbed.dataset import load_runs

    runs = load_runs(REPO / "data" / "testbed-unseen")
    dropped = [r for r in runs if "outcome_dropped" in r]
    assert len(dropped) == 20 and {r["workload"] for r in dropped} == {"switch_pairs"}
    assert not any("switch_bogo_ops_per_s" in r["outcome"] for r in dropped)


def test_the_second_unseen_set_loads_too():
    loaded = load_file(REPO / "bench" / "workloads" / "unseen-ipc.toml")
    assert [w.name for w in loaded] == ["socket_pairs", "futex_waiters", "clone_storm"]
    assert not {w.name for w in loaded} & set(BY_NAME)
    assert all(w.headline.higher_is_better for w in loaded)


def test_every_reader_of_a_manifest_headline_reads_it_alike():
    """Replay (simulate.headline) and validate-reward / the dataset README
    (recorded_headlines) read a manifest's headline through one parser: both spellings of
    the direction, and the same error, naming the workload, for a metric without one."""
    from scxd.replay.simulate import headline
    from scxd.workloads import Headline, HeadlineError, recorded_headlines

    declared = {"a": {"metric": "x", "direction": "lower", "unit": "s"},
                "b": {"metric": "y", "higher_is_better": True}, "c": {"doc": "no metric"}}
    got = recorded_headlines(["a", "b", "c"], declared)
    assert got == {"a": Headline("x", False, "s", ""), "b": Headline("y", True, "", "")}
    for name in ("a", "b", "c"):
        h = got.get(name)
        assert headline(name, {"headlines": declared}) == (
            (h.metric, h.higher_is_better) if h else None)
    broken = {"d": {"metric": "z", "direction": "up"}}
    for read in (lambda: recorded_headlines(["d"], broken),
                 lambda: headline("d", {"headlines": broken})):
        with pytest.raises(HeadlineError, match="workload 'd' declares no direction"):
            read()
