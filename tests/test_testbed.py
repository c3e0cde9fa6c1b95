"""The real sched_ext test bed: scxd's actuator (and later its daemon) in a qemu guest.

The kernel and schedulers are built by `scxd-testbed build` (the test command runs it; a
second run only checks the cache).  When they are not built and cannot be built, these
tests skip with the reason — under CI=true that is a failure.  One guest boot runs every
scenario; each test below asserts one scenario's structured record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scxd.testbed.guest_scenarios import SCENARIOS

pytestmark = [pytest.mark.testbed, pytest.mark.timeout(3600)]
KERNEL_SCRIPT = Path(__file__).parents[1] / "scxd/testbed/guest/kernel.sh"


@pytest.fixture(scope="session")
def artifacts(testbed_artifacts):
    return testbed_artifacts


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
    run = run_full(artifacts, [sys.executable, "-m", "scxd.testbed.guest_scenarios",
                               "--testbed", str(artifacts.root), "--out", str(out)],
                   out, timeout=2400)  # the network policy imports torch twice: ~80 s each
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
def test_guest_scenario(guest_run, name):
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
