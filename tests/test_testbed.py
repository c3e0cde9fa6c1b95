"""The real sched_ext test bed: scxd's actuator and daemon in a qemu guest.

The kernel and schedulers are built by `scxd-testbed build` (the test command runs it; a
second run only checks the cache).  When they are not built and cannot be built, these
tests skip with the reason — under CI=true that is a failure.  One guest boot runs every
scenario; each test below asserts one scenario's structured record.  `scxd-testbed swap`
and `exec` get a boot each, run exactly as a user runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scxd.testbed.guest_scenarios import SCENARIOS, SCX_SEQUENCE
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.testbed, pytest.mark.timeout(3600)]
KERNEL_SCRIPT = Path(__file__).parents[1] / "scxd/testbed/guest/kernel.sh"
REPO = Path(__file__).parents[1]
#: Scenarios that need the scx schedulers (built only from an upstream source tree).
SCX_SCENARIOS = {"scx_swap_sequence", "scx_sigkill_recovery", "loader_flags_reach_bpf",
                 "tickless_refused", "scx_exit_report", "scx_restart_on_hotplug",
                 "daemon_scx"}
SCX_REQUIRED = ("scx_bpfland", "scx_flash", "scx_flashyspark")


@pytest.fixture(scope="session")
def artifacts(testbed_artifacts):
    return testbed_artifacts


def need_scx(artifacts) -> None:
    missing = [n for n in SCX_REQUIRED if n not in artifacts.scx_built()]
    if missing:
        skipped = artifacts.scx.skipped() if artifacts.scx else {}
        skip_or_fail(f"the scx schedulers {missing} are not built: "
                     f"{ {n: skipped.get(n, '?') for n in missing} }")


def run_testbed_cli(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scxd.testbed.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="session")
def kernel_run(artifacts):
    from scxd.testbed.run import run_fast

    run = run_fast(artifacts, KERNEL_SCRIPT.read_text(), timeout=300)
    if run.problem():
        pytest.fail(run.problem(), pytrace=False)
    return run.by_name()


@pytest.fixture(scope="session")
def guest_run(artifacts, tmp_path_factory):
    from scxd.testbed.run import run_full

    out = tmp_path_factory.mktemp("guest")
    names = [n for n in SCENARIOS
             if n not in SCX_SCENARIOS or set(SCX_REQUIRED) <= set(artifacts.scx_built())]
    run = run_full(artifacts, [sys.executable, "-m", "scxd.testbed.guest_scenarios",
                               "--testbed", str(artifacts.root), "--out", str(out),
                               "--only", ",".join(names)],
                   out, timeout=3300)  # the network policy imports torch twice: ~80 s each
    if run.problem():
        pytest.fail(run.problem(), pytrace=False)
    return run.by_name()


def explain(record: dict) -> str:
    bad = [c for c in record["checks"] if not c["ok"]]
    lines = [f"scenario {record['scenario']} failed after {record['seconds']} s"]
    lines += [f"  ✗ {c['what']}: {json.dumps(c['got'])[:800]}" for c in bad]
    if record.get("error"):
        lines.append(record["error"])
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_guest_scenario(artifacts, guest_run, name):
    if name in SCX_SCENARIOS:
        need_scx(artifacts)
    assert name in guest_run, f"the guest produced no record for {name}"
    record = guest_run[name]
    assert record["ok"], explain(record)


def test_swap_durations_recorded(guest_run):
    swaps = guest_run["swap_sequence"]["data"]["swaps"]
    assert [s["to"] for s in swaps] == ["scx_simple", "scx_qmap", "scx_flatcg",
                                        "scx_simple -f", "fair"]
    for s in swaps:
        assert s["to_disabled_s"] is not None and 0 < s["total_s"] < 20
        if s["to"] != "fair":
            assert 0 < s["to_enabled_s"] <= s["total_s"]


def test_kernel_initial_state(kernel_run):
    assert kernel_run["initial"] == {"scenario": "initial", "state": "disabled",
                                     "enable_seq": 0, "switch_all": 0, "root": "no"}


def test_kernel_enable_disable_cycle(kernel_run):
    r = kernel_run["simple_cycle"]
    assert r["enabled"] == 1 and r["ops"] == "simple" and r["enable_seq"] == 1
    assert r["pid1_on_ext"] == 1 and r["disabled"] == 1 and r["exit_code"] == 0
    assert r["exit_line"] == "EXIT: unregistered from user space"


def test_kernel_second_attach_is_ebusy(kernel_run):
    r = kernel_run["ebusy"]
    assert r["second_exit_code"] == 1 and r["busy_lines"] >= 1 and r["ops_kept"] == "simple"


def test_kernel_partial_mode(kernel_run):
    r = kernel_run["partial"]
    assert r["switch_all"] == 0 and r["ops"] == "qmap" and r["kmsg_partial"] == 1


def test_kernel_ejection_exits_zero_with_reason(kernel_run):
    r = kernel_run["bpf_error_ejection"]
    assert r["exit_code"] == 0 and r["kmsg_reason"] == 1 and r["state"] == "disabled"
    assert r["exit_line"].startswith("EXIT: scx_bpf_error")


def test_scx_swap_durations_recorded(artifacts, guest_run):
    need_scx(artifacts)
    swaps = guest_run["scx_swap_sequence"]["data"]["swaps"]
    assert [s["arm"] for s in swaps] == list(SCX_SEQUENCE)
    for s in swaps:
        assert s["to_disabled_s"] is not None and 0 < s["total_s"] < 30
        if s["arm"] != "fair":
            assert 0 < s["to_enabled_s"] <= s["total_s"]


@pytest.mark.parametrize("name", ["scx_bpfland", "scx_flash", "scx_flashyspark", "scx_nest",
                                  "scx_prev", "scx_pair"])
def test_kernel_static_scx_loader(artifacts, kernel_run, name):
    """The statically linked loaders in the busybox guest: enabled, ops name, pid 1 on
    sched_ext, SIGINT → the EXIT line and status 0 (the optional C ones only when built)."""
    if name in SCX_REQUIRED:
        need_scx(artifacts)
    elif name not in artifacts.scx_built():
        pytest.skip(f"{name} is optional and was not built: "
                    f"{(artifacts.scx.skipped() if artifacts.scx else {}).get(name)}")
    r = kernel_run[f"static_{name}"]
    ops = {"scx_bpfland": "bpfland", "scx_flash": "flash", "scx_flashyspark": "flashyspark",
           "scx_nest": "nest", "scx_prev": "prev", "scx_pair": "pair"}[name]
    assert r["enabled"] == 1 and r["ops"] == ops and r["pid1_on_ext"] == 1, r
    assert r["exit_code"] == 0 and r["disabled"] == 1, r
    assert r["exit_line"] == "EXIT: unregistered from user space", r


def test_swap_verb_verifies_every_step(artifacts):
    """The issue's command, as a user types it: every step verified in the kernel."""
    need_scx(artifacts)
    arms = ["fair", "scx_bpfland", "scx_flashyspark", "scx_flash", "scx_bpfland -s 5000 -p",
            "fair"]
    res = run_testbed_cli("swap", *arms)
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert [rec["arm"] for rec in lines] == arms
    seq = lines[0]["kernel"]["enable_seq"]
    for rec in lines:
        assert rec["verified"] and all(rec["checks"].values()), rec
        k = rec["kernel"]
        if rec["arm"] == "fair":
            assert k["state"] == "disabled" and k["ops"] is None and not rec["pid1_ext"]
        else:
            seq += 1
            name = rec["requested"]["scheduler"]
            assert k["state"] == "enabled" and k["enable_seq"] == seq, rec
            assert k["ops"] == name.removeprefix("scx_") and rec["pid1_ext"], rec
            assert rec["timings"]["to_enabled_s"] > 0
    assert lines[4]["requested"]["args"] == ["--slice-us", "5000", "--local-pcpu"]


def test_swap_verb_rejects_a_bad_choice_before_booting():
    res = run_testbed_cli("swap", "fair", "scx_bpfland --bogus", timeout=120)
    assert res.returncode == 2 and "unknown argument '--bogus'" in res.stderr


def test_exec_verb(artifacts, tmp_path):
    """A command in the full-mode guest: its status, stdout and stderr come back, --rwdir is
    writable, the schedulers are on PATH and in /usr/local/bin where scxd finds them."""
    need_scx(artifacts)
    script = (f"echo out; echo err >&2; command -v scx_bpfland; "
              f"cat /sys/kernel/sched_ext/state > {tmp_path}/state; "
              f"{sys.executable} -m scxd.cli catalog --json > {tmp_path}/catalog.json; "
              f"exit 3")
    res = run_testbed_cli("exec", "--timeout", "600", "--rwdir", str(tmp_path), "--", "sh",
                          "-c", script)
    assert res.returncode == 3, res.stdout[-2000:] + res.stderr[-2000:]
    assert res.stdout.splitlines()[0] == "out" and "err" in res.stderr
    assert res.stdout.splitlines()[1].endswith("/scx_bpfland")
    assert (tmp_path / "state").read_text().strip() == "disabled"
    catalog = {e["name"]: e for e in json.loads((tmp_path / "catalog.json").read_text())}
    for name in SCX_REQUIRED:
        a = catalog[name]["availability"]
        assert a["available"] and a["flags_verified"], a
        assert a["binary_path"] == f"/usr/local/bin/{name}", a
        assert "scxd C loader" in a["version"], a
        assert set(a["dropped_params"]) <= {"tickless", "aggressive_gpu_tasks"}, a
    assert "scx_bpf_cpu_curr" in catalog["scx_flash"]["availability"]["dropped_params"][
        "tickless"]
