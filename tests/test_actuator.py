"""The actuator against a fake kernel and fake loaders that behave like the real pair.

Every case ends on a scheduler the (fake) kernel confirms, and with no loader process left
behind (checked by the ``env`` fixture after each test).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from scxd.actuator import Actuator
from scxd.catalog import build_catalog
from scxd.config import ActuatorConfig
from scxd.hostfs import HostFS
from scxd.probe import probe_catalog
from tests.fakes import FakeKernel, fake_processes, install_fake, wait_for

SIMPLE_HELP = "-f -v -h"


@dataclass
class Env:
    root: Path
    bin: Path
    state: Path
    kernel: FakeKernel
    host: HostFS

    def fake(self, name: str = "scx_simple", ops: str = "simple", mode: str = "normal",
             **kw) -> Path:
        kw.setdefault("supports", SIMPLE_HELP)
        return install_fake(self.bin, name, self.root, ops, mode, **kw)

    def actuator(self, **cfg) -> Actuator:
        base = dict(search_path=[str(self.bin)], start_timeout=3.0, stop_timeout=0.5,
                    disable_timeout=3.0)
        base.update(cfg)
        probed = probe_catalog(build_catalog(), [str(self.bin)], self.host)
        return Actuator(probed, self.host, ActuatorConfig(**base), self.state)

    def external(self, name: str = "scx_ext", ops: str = "extsched",
                 mode: str = "normal") -> subprocess.Popen:
        exe = install_fake(self.bin / "ext", name, self.root, ops, mode)
        proc = subprocess.Popen([str(exe)], stdout=subprocess.DEVNULL)
        assert wait_for(lambda: self.kernel.state == "enabled" and self.kernel.ops == ops)
        return proc


@pytest.fixture
def env(tmp_path):
    root = tmp_path / "host"
    with FakeKernel(root) as kernel:
        e = Env(root, tmp_path / "bin", tmp_path / "state", kernel, HostFS(root))
        yield e
        assert wait_for(lambda: not fake_processes(root), 5.0), \
            f"orphaned loaders: {[p.pid for p in fake_processes(root)]}"


def finish(act: Actuator, env: Env) -> None:
    """End of every case: what runs is verified by the kernel, then shut down to fair."""
    assert act.verified(act.current), act.status()
    res = act.shutdown()
    assert res.ok and env.kernel.state == "disabled" and act.proc is None


def test_swap_sequence_is_verified_and_timed(env):
    env.fake()
    env.fake("scx_qmap", "qmap", supports="-s -b -H -p -e -t -T -h")
    act = env.actuator()
    cat = act.catalog
    seqs = []
    for action in (cat.action("scx_simple"), cat.action("scx_qmap"),
                   cat.action("scx_simple", preset="fifo"), cat.fair()):
        res = act.apply(action)
        assert res.outcome == "applied", res.as_dict()
        assert res.running == action and act.verified(action)
        assert res.timings.to_disabled_s is not None and res.timings.total_s < 3
        if not action.is_fair:
            assert env.kernel.state == "enabled"
            assert env.kernel.ops == cat.get(action.scheduler).ops_prefix
            assert res.timings.to_enabled_s >= 0.05  # the fake's enable delay
            seqs.append(env.kernel.enable_seq)
            assert act.proc.popen.args[1:] == list(action.argv)
    assert seqs == [1, 2, 3] and env.kernel.state == "disabled"
    assert [h.outcome for h in act.history] == ["applied"] * 4
    finish(act, env)


def test_same_action_is_a_noop(env):
    env.fake()
    act = env.actuator()
    a = act.catalog.action("scx_simple")
    assert act.apply(a).outcome == "applied"
    pid = act.proc.pid
    res = act.apply(a)
    assert res.outcome == "noop" and act.proc.pid == pid and env.kernel.enable_seq == 1
    assert act.apply(act.catalog.fair()).outcome == "applied"
    assert act.apply(act.catalog.fair()).outcome == "noop"
    finish(act, env)


def test_slow_enable_within_timeout(env):
    env.fake(enable_delay=0.6)
    act = env.actuator()
    res = act.apply(act.catalog.action("scx_simple"))
    assert res.outcome == "applied" and res.timings.to_enabled_s >= 0.6
    finish(act, env)


@pytest.mark.parametrize("mode,reason,code,text", [
    ("refuse", "exited", 1, "Failed to load skeleton"),
    ("bad_args", "exited", 2, "unexpected argument"),
])
def test_start_failure_falls_back_to_fair(env, mode, reason, code, text):
    env.fake(mode=mode)
    act = env.actuator()
    res = act.apply(act.catalog.action("scx_simple", preset="fifo"))
    assert res.outcome == "fell_back_to_fair" and not res.ok
    assert res.reason == reason and res.exit_code == code and text in res.output_tail
    assert res.running.is_fair and act.current.is_fair and env.kernel.state == "disabled"
    finish(act, env)


def test_ejection_while_enabling_names_the_kernel_reason(env):
    env.fake(mode="eject_at_start")
    act = env.actuator()
    res = act.apply(act.catalog.action("scx_simple"))
    assert res.reason == "ejected_at_start" and res.exit_code == 0
    assert "runnable task stall" in res.detail and res.outcome == "fell_back_to_fair"
    finish(act, env)


@pytest.mark.parametrize("silent_for", [0.2, 5.0])
def test_ejection_between_two_polls_is_not_a_start_timeout(env, silent_for):
    """Enabled and ejected before the first poll saw it, the loader itself the stalled task
    (silent for a while, or for longer than the start timeout): reported at once as an
    ejection with the kernel's reason, not as a loader that never enabled."""
    env.fake(mode="eject_unseen", after=silent_for)
    act = env.actuator(start_timeout=2.0)
    t0 = time.monotonic()
    res = act.apply(act.catalog.action("scx_simple"))
    assert res.reason == "ejected_at_start", res.as_dict()
    assert "runnable task stall" in res.detail and "failed to run for" in res.detail
    assert res.outcome == "fell_back_to_fair" and env.kernel.state == "disabled"
    assert time.monotonic() - t0 < 2.0 + 1.5  # never the start timeout plus a stop
    finish(act, env)


def test_failure_rolls_back_to_last_good(env):
    env.fake()
    env.fake("scx_qmap", "qmap", mode="refuse", supports="-s -b -H -p -e -t -T -h")
    act = env.actuator()
    good = act.catalog.action("scx_simple")
    assert act.apply(good).ok
    res = act.apply(act.catalog.action("scx_qmap"))
    assert res.outcome == "rolled_back" and res.running == good
    assert act.verified(good) and env.kernel.ops == "simple" and env.kernel.enable_seq == 2
    finish(act, env)


def test_hang_in_enabling_times_out_and_is_killed(env):
    env.fake(mode="hang_enabling")
    act = env.actuator(start_timeout=0.5)
    res = act.apply(act.catalog.action("scx_simple"))
    assert res.reason == "enable_timeout" and res.outcome == "fell_back_to_fair"
    assert "not enabled after 0.5 s" in res.detail
    finish(act, env)


def test_loader_ignoring_sigint_is_killed(env):
    env.fake(mode="ignore_sigint")
    act = env.actuator(stop_timeout=0.3)
    assert act.apply(act.catalog.action("scx_simple")).ok
    res = act.apply(act.catalog.fair())
    assert res.outcome == "applied" and res.timings.to_disabled_s >= 0.3
    assert env.kernel.releases == 1  # the kernel released it when SIGKILL took it
    finish(act, env)


def test_binary_missing(env):
    act = env.actuator()
    res = act.apply(act.catalog.action("scx_lavd"))
    assert res.reason == "binary_missing" and "scx_lavd" in res.detail
    assert res.outcome == "fell_back_to_fair"
    finish(act, env)


def test_ops_mismatch_is_a_failure(env):
    env.fake(ops="notsimple")
    act = env.actuator()
    res = act.apply(act.catalog.action("scx_simple"))
    assert res.reason == "ops_mismatch" and "notsimple" in res.detail
    finish(act, env)


def test_ebusy_is_handled(env):
    # Something holds the struct_ops attach while the state file still reads disabled.
    (env.kernel.sx / ".attached").write_text(str(os.getpid()))
    env.fake()
    act = env.actuator()
    res = act.apply(act.catalog.action("scx_simple"))
    (env.kernel.sx / ".attached").unlink()
    assert res.reason == "ebusy" and "Device or resource busy" in res.output_tail
    assert res.outcome == "fell_back_to_fair"
    finish(act, env)


def test_crash_is_detected_and_restarted(env):
    env.fake(mode="crash_after", after=0.3)
    act = env.actuator()
    a = act.catalog.action("scx_simple")
    assert act.apply(a).ok
    assert wait_for(lambda: env.kernel.state == "disabled", 3)
    events = act.poll()
    assert [e.kind for e in events] == ["crashed"]
    assert events[0].exit_code == -signal.SIGSEGV
    assert act.current.is_fair and act.intended == a
    env.fake(mode="normal")  # the next start works
    assert wait_for(lambda: any(e.kind == "recovered" for e in act.poll()), 3)
    assert act.verified(a) and env.kernel.enable_seq == 2
    finish(act, env)


@pytest.mark.parametrize("mode", ["eject_alive", "eject_exit"])
def test_ejection_is_reported_with_the_kernel_reason(env, mode):
    env.fake(mode=mode, after=0.2)
    act = env.actuator()
    assert act.apply(act.catalog.action("scx_simple")).ok
    assert wait_for(lambda: env.kernel.state == "disabled", 3)
    time.sleep(0.05)
    events = act.poll()
    assert [e.kind for e in events] == ["ejected"]
    assert "runnable task stall" in events[0].detail
    assert "failed to run for 5.068s" in events[0].detail
    assert act.current.is_fair and act.proc is None
    time.sleep(1.2)
    assert act.poll() == []  # an ejection is not restarted blindly
    finish(act, env)


def test_a_loader_that_restarts_itself_is_adopted(env):
    """CPU hotplug: the kernel unregisters the scheduler asking for a restart and the loader
    re-attaches: the same process, a new enable_seq — not a crash, not a takeover."""
    env.fake(mode="restart_after", after=0.2, enable_delay=0.3)
    act = env.actuator()
    want = act.catalog.action("scx_simple")
    assert act.apply(want).ok
    pid, seq = act.proc.pid, env.kernel.enable_seq
    assert wait_for(lambda: env.kernel.state == "disabled", 3)
    events = act.poll()
    assert [e.kind for e in events] == ["restarted"], [e.as_dict() for e in events]
    assert f"enable_seq {seq} → {seq + 1}" in events[0].detail
    assert "unregistered from the main kernel" in events[0].detail
    assert act.proc.pid == pid and act.verified(want) and env.kernel.enable_seq == seq + 1
    assert act.poll() == []
    finish(act, env)


def test_external_scheduler_is_respected(env):
    env.fake()
    act = env.actuator()
    ext = env.external()
    try:
        events = act.poll()
        assert [e.kind for e in events] == ["takeover"] and "extsched" in events[0].detail
        res = act.apply(act.catalog.action("scx_simple"))
        assert res.outcome == "blocked" and res.reason == "external_scheduler"
        assert env.kernel.ops == "extsched"
    finally:
        ext.send_signal(signal.SIGINT)
        ext.wait()
    assert [e.kind for e in act.poll()] == ["external_stopped"]
    assert act.apply(act.catalog.action("scx_simple")).outcome == "applied"
    finish(act, env)


def test_takeover_while_ours_runs(env):
    env.fake()
    act = env.actuator()
    assert act.apply(act.catalog.action("scx_simple")).ok
    os.kill(act.proc.pid, signal.SIGINT)  # another launcher stops ours...
    assert wait_for(lambda: env.kernel.state == "disabled")
    ext = env.external()                  # ...and starts its own
    try:
        events = act.poll()
        assert [e.kind for e in events] == ["takeover"]
        assert act.external_ops == "extsched" and act.proc is None
    finally:
        ext.send_signal(signal.SIGINT)
        ext.wait()
    act.poll()
    finish(act, env)


def test_reclaim_stops_the_external_scheduler(env):
    env.fake()
    act = env.actuator(takeover="reclaim")
    ext = env.external()
    res = act.apply(act.catalog.action("scx_simple"))
    ext.wait(timeout=5)
    assert res.outcome == "applied" and env.kernel.ops == "simple"
    finish(act, env)


def test_partial_mode_is_visible(env):
    env.fake("scx_qmap", "qmap", supports="-s -b -H -p -e -t -T -h")
    act = env.actuator()
    assert act.apply(act.catalog.action("scx_qmap", {"partial": True})).ok
    k = act.status()["kernel"]
    assert k["partial"] is True and k["switch_all"] is False
    finish(act, env)


def test_intent_is_persisted_and_a_crashed_daemon_is_undone(env):
    env.fake()
    first = env.actuator()
    assert first.apply(first.catalog.action("scx_simple", preset="fifo")).ok
    intent = json.loads((env.state / "intent.json").read_text())
    assert intent["pid"] == first.proc.pid and intent["action"]["args"] == ["-f"]
    assert intent["phase"] == "running" and intent["ops_prefix"] == "simple"
    orphan = first.proc
    # "scxd crashed": a new instance starts with the old loader still running.
    second = env.actuator()
    events = second.recover()
    assert [e.kind for e in events] == ["leftover_cleaned"]
    assert f"pid {orphan.pid}" in events[0].detail
    orphan.popen.wait(timeout=5)
    assert env.kernel.state == "disabled"
    assert json.loads((env.state / "intent.json").read_text())["pid"] is None
    finish(second, env)


def test_unreadable_intent_is_reported_not_fatal(env):
    env.state.mkdir(parents=True)
    (env.state / "intent.json").write_text("{not json")
    act = env.actuator()
    events = act.recover()
    assert "unreadable intent file" in events[0].detail
    finish(act, env)


def test_advisory_mode_without_sched_ext(tmp_path):
    root = tmp_path / "host"
    (root / "proc").mkdir(parents=True)
    host = HostFS(root)
    probed = probe_catalog(build_catalog(), [str(tmp_path)], host)
    act = Actuator(probed, host, ActuatorConfig(), tmp_path / "state")
    assert act.mode == "advisory" and "no sched_ext" in act.advisory_reason
    res = act.apply(act.catalog.action("scx_bpfland", preset="gaming"))
    assert res.outcome == "advisory" and res.ok and "would apply: scx_bpfland" in res.detail
    assert act.proc is None and act.poll() == []
    assert act.status()["kernel"]["state"] == "unavailable"
    with pytest.raises(RuntimeError, match="no /sys/kernel/sched_ext"):
        Actuator(probed, host, ActuatorConfig(mode="active"), tmp_path / "state")
