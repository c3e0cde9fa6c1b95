"""`scxd run` as a process: advisory on this host, active against the fake kernel; driven
through the real control socket, scxctl, signals and sd_notify."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scxd.catalog import build_catalog
from scxd.control import ControlError, exchange
from scxd.features import FEATURE_NAMES
from scxd.journal import JournalReader
from tests.daemon_helper import ACTIVE, BASE, Daemon
from tests.fakes import FakeKernel, fake_processes, install_fake, wait_for

BIN = Path(sys.executable).parent
SCXD, SCXCTL = str(BIN / "scxd"), str(BIN / "scxctl")


@pytest.fixture
def fake(tmp_path):
    with FakeKernel(tmp_path / "host") as kernel:
        install_fake(tmp_path / "bin", "scx_simple", kernel.root, "simple", supports="-f -v -h")
        install_fake(tmp_path / "bin", "scx_qmap", kernel.root, "qmap",
                     supports="-s -b -H -p -e -t -T -h")
        yield kernel
        assert wait_for(lambda: not fake_processes(kernel.root), 10), "orphaned loaders"


def test_advisory_mode_on_this_host(tmp_path):
    d = Daemon(tmp_path, BASE)
    try:
        d.wait_windows(3)
        st = d.ctl("status")
        assert st["mode"] == "advisory" and st["kernel"]["state"] == "unavailable"
        assert st["kernel"]["enable_seq"] == "unavailable" and st["frozen"] is False
        assert st["pinned"] is None and st["last_swap"] is None
        assert st["running"]["scheduler"] == "fair"
        assert oct(d.sock.stat().st_mode & 0o777) == "0o660"
    finally:
        took = d.stop()
    assert d.proc.returncode == 0 and took < 5.0
    assert not d.sock.exists(), "socket removed at exit"
    windows = list(JournalReader(d.state / "journal").windows())
    assert len(windows) >= 3
    w = windows[-1]
    for key in ("id", "window", "features", "eligible", "decision", "running", "previous",
                "warmup", "terms", "cost", "guard", "events", "quality"):
        assert key in w, key
    assert w["decision"]["propensity"] == 1.0 and w["mode"] == "advisory"
    assert len(w["features"]["values"]) == len(FEATURE_NAMES) > 20
    events = [r["event"] for r in JournalReader(d.state / "journal").records(("event",))]
    assert events[0] == "start" and events[-1] == "stop"


def test_active_mode_end_to_end(tmp_path, fake):
    d = Daemon(tmp_path, ACTIVE)
    try:
        assert wait_for(lambda: d.ctl("status")["current"]["scheduler"] == "scx_simple", 20), \
            d.output()
        st = d.ctl("status")
        assert st["mode"] == "active" and st["kernel"]["ops"] == "simple"
        assert st["current"]["scheduler"] == "scx_simple" and st["last_swap"]["ok"]
        assert st["running"]["source"] == "started by scxd"
        # scx_loader-style verbs through scxctl
        res = d.scxctl("switch", "-s", "qmap", "-a", "-s 5000")
        assert res.returncode == 0, res.stderr
        assert "switch: applied" in res.stdout and fake.ops == "qmap"
        st = json.loads(d.scxctl("status", "--json").stdout)
        assert st["pinned"]["scheduler"] == "scx_qmap" and st["pinned"]["args"] == ["-s", "5000"]
        assert st["kernel"]["ops"] == "qmap"
        d.wait_windows(st["windows"] + 3)
        assert fake.ops == "qmap", "a pin holds against the policy"
        assert "running scx_qmap" in d.scxctl("get").stdout
        res = d.scxctl("freeze", "--for", "1h")
        assert res.returncode == 0 and "FROZEN" in res.stdout
        assert d.scxctl("unpin").returncode == 0
        d.wait_windows(d.ctl("status")["windows"] + 3)
        assert fake.ops == "qmap", "frozen: the policy's scx_simple is held off"
        assert d.scxctl("restore").returncode == 0
        assert wait_for(lambda: fake.ops == "simple", 20), "after restore the policy rules"
        hist = d.scxctl("history", "-n", "50").stdout
        assert "frozen_hold" in hist and "pin" in hist
        explain = json.loads(d.scxctl("explain", "--json").stdout)
        assert explain["decision"]["arm"] == "scx_simple" and explain["features"]
        assert "scx_simple" in d.scxctl("list").stdout
        res = d.scxctl("stop")
        assert res.returncode == 0 and fake.state == "disabled"
        assert d.ctl("status")["pinned"]["scheduler"] == "fair"
        res = d.scxctl("switch", "-s", "scx_simple", "-m", "nosuchmode")
        assert res.returncode == 1 and "has no mode 'nosuchmode'" in res.stderr
        res = d.scxctl("switch", "-s", "scx_lavd")
        assert res.returncode == 1 and "not available here" in res.stderr
        d.ctl("restore")
        assert wait_for(lambda: fake.ops == "simple", 20)
    finally:
        took = d.stop()
    assert took < 5.0 and d.proc.returncode == 0
    assert fake.state == "disabled", "SIGTERM leaves the fair scheduler"
    swaps = [w["swap"] for w in JournalReader(d.state / "journal").windows() if w["swap"]]
    assert swaps and swaps[0]["outcome"] == "applied"


def test_crashed_loader_is_recovered(tmp_path, fake):
    d = Daemon(tmp_path, ACTIVE)
    try:
        assert wait_for(lambda: d.ctl("status")["pid"] is not None, 20), d.output()
        pid = d.ctl("status")["pid"]
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: any(e.get("kind") == "crashed" for e in
                                    d.ctl("history", n=50)["entries"]), 10)
        assert wait_for(lambda: fake.ops == "simple" and d.ctl("status")["pid"] not in
                        (None, pid), 20), d.output()
        entries = d.ctl("history", n=50)["entries"]
        crash = next(i for i, e in enumerate(entries) if e.get("kind") == "crashed")
        after = entries[crash + 1:]
        # back by the actuator's restart, or by the policy's next decision: both verified
        assert any(e.get("kind") == "recovered" or (e["type"] == "swap" and e["ok"])
                   for e in after), entries
    finally:
        d.stop()


def test_sighup_reload(tmp_path, fake):
    d = Daemon(tmp_path, ACTIVE)
    try:
        d.wait_windows(1)
        good = d.config.read_text()
        d.config.write_text(good + "\n[bogus]\n")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_windows(d.ctl("status")["windows"] + 2)
        assert d.proc.poll() is None, "an invalid new config is not fatal"
        d.config.write_text(good.replace("min_dwell = 0.0", "min_dwell = 7.0"))
        d.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "configuration reloaded" in d.output(), 10)
    finally:
        d.stop()
    events = [r["event"] for r in JournalReader(d.state / "journal").records(("event",))]
    assert "reload_failed" in events and "reload" in events
    assert "key bogus: unknown key" in d.output()


def test_control_socket_robustness(tmp_path):
    d = Daemon(tmp_path, BASE)
    try:
        def raw(data: bytes) -> dict:
            return json.loads(exchange(d.sock, data, timeout=10))

        assert raw(b"{nope\n")["error"]["code"] == -32700
        assert raw(b"[]\n")["error"]["code"] == -32600
        assert raw(b'{"jsonrpc":"2.0","id":3,"method":"reboot"}\n')["error"]["code"] == -32601
        r = raw(b'{"jsonrpc":"2.0","id":4,"method":"history","params":{"n":"all"}}\n')
        assert r["error"]["code"] == -32602 and r["id"] == 4
        r = raw(b'{"jsonrpc":"2.0","id":5,"method":"freeze","params":{"for":"soon"}}\n')
        assert r["error"]["code"] == -32602 and "not a duration" in r["error"]["message"]
        big = b'{"jsonrpc":"2.0","id":6,"method":"status","params":{"x":"' + b"a" * 70000
        assert "larger than" in raw(big + b'"}}\n')["error"]["message"]
        with pytest.raises(ControlError, match="scheduler"):
            d.ctl("switch")
        # several requests on one connection
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(d.sock))
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
                      b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n')
            time.sleep(0.5)
            replies = s.recv(65536).decode().splitlines()
            assert [json.loads(x)["id"] for x in replies] == [1, 2]
        assert d.ctl("ping")["pong"] is True, "the daemon is unhurt"
        # a non-root peer is refused with a clear error (the socket is 0660 root:root)
        res = d.scxctl("status", user="nobody")
        assert res.returncode == 1
        assert "permission denied opening" in res.stderr and "control.group" in res.stderr
    finally:
        d.stop()


def test_group_may_read_but_not_change(tmp_path):
    toml = BASE.replace('[control]\nsocket = "{sock}"',
                        '[control]\nsocket = "{sock}"\ngroup = "nogroup"\n'
                        'group_can_change = false')
    d = Daemon(tmp_path, toml)
    try:
        assert d.sock.stat().st_gid == 65534  # chowned to the group
        res = d.scxctl("status", user="nobody")
        assert res.returncode == 0, res.stderr
        res = d.scxctl("freeze", user="nobody")
        assert res.returncode == 1 and "may only read" in res.stderr
        assert d.scxctl("freeze").returncode == 0  # root may
    finally:
        d.stop()


def test_scxctl_without_daemon(tmp_path):
    res = subprocess.run([SCXCTL, "--socket", str(tmp_path / "none.sock"), "status"],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip() == (f"scxctl: cannot reach scxd: {tmp_path / 'none.sock'} "
                                  "does not exist (is scxd running?)")
    assert subprocess.run([SCXCTL, "frobnicate"], capture_output=True).returncode == 2


def test_bad_config_starts_nothing(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[control]\nsocket = "{tmp_path}/s.sock"\n[policy]\nname = "oracle"\n')
    res = subprocess.run([SCXD, "run", "--config", str(cfg)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "policy.name" in res.stderr
    assert not (tmp_path / "s.sock").exists()


def test_sd_notify_protocol(tmp_path):
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(str(tmp_path / "notify"))
    nsock.settimeout(20)
    got: list[bytes] = []

    def listen() -> None:  # as systemd does: read while the daemon starts (sends block on a
        # full queue, as libsystemd's do, and start-up sends more than the ~10 it holds)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                any(m.startswith(b"READY=1") for m in got) and got.count(b"WATCHDOG=1") >= 2
                and any(m.startswith(b"STATUS=") for m in got)):
            got.append(nsock.recv(4096))

    listener = threading.Thread(target=listen)
    listener.start()
    d = Daemon(tmp_path, BASE, env={"NOTIFY_SOCKET": str(tmp_path / "notify"),
                                    "WATCHDOG_USEC": "1000000"})
    try:
        listener.join(40)
        assert any(m.startswith(b"READY=1\nSTATUS=") for m in got)
        # Every slow start-up phase asked for more time before READY, in order.
        ready = next(i for i, m in enumerate(got) if m.startswith(b"READY=1"))
        phases = [m.split(b"\n")[0].decode() for m in got[:ready]
                  if b"EXTEND_TIMEOUT_USEC=" in m]
        # The first before the daemon's modules load; the probe extends once per binary.
        probes = [f"STATUS=starting: probing {spec.name}" for spec in build_catalog()]
        assert phases == ["STATUS=starting: loading the daemon's modules",
                          "STATUS=starting: probing the schedulers", *probes,
                          "STATUS=starting: loading the policy",
                          "STATUS=starting: recovering what a previous run left",
                          "STATUS=starting: opening the telemetry (compiling the BPF programs)"]
        # The log says how long each phase took.
        started = next(line for line in d.output().splitlines() if "started in" in line)
        assert "loading the daemon's modules " in started and " s, probing the schedulers " \
            in started and "opening the telemetry (compiling the BPF programs) " in started
        assert got.count(b"WATCHDOG=1") >= 2
        assert any(m.startswith(b"STATUS=") for m in got)
    finally:
        d.stop()
        tail = []
        nsock.settimeout(1)
        try:
            while True:
                tail.append(nsock.recv(4096))
        except TimeoutError:
            pass
        nsock.close()
    assert any(m.startswith(b"STOPPING=1") for m in tail)


def test_authorize_rules_for_peers():
    from scxd.control import ControlServer, Peer
    from scxd.controller import METHODS

    srv = ControlServer("/nonexistent/x.sock", lambda *a: None, METHODS, group="nogroup",
                        group_can_change=False)
    me = os.getpid()
    srv.authorize(Peer(me, 0, 0), "freeze")  # root: everything
    srv.authorize(Peer(me, 1234, 65534), "status")  # member: read
    with pytest.raises(ControlError, match="may only read"):
        srv.authorize(Peer(me, 1234, 65534), "freeze")
    with pytest.raises(ControlError, match="uid 1234 is not root or group nogroup"):
        srv.authorize(Peer(me, 1234, 1234), "status")
    rootonly = ControlServer("/nonexistent/x.sock", lambda *a: None, METHODS)
    with pytest.raises(ControlError, match="uid 1234 is not root"):
        rootonly.authorize(Peer(me, 1234, 1234), "status")


def test_foreign_scheduler_windows_are_not_scored(tmp_path, fake):
    """While another launcher's scheduler runs (takeover respected), windows are journaled
    as external and never feed the fair scheduler's reference."""
    d = Daemon(tmp_path, ACTIVE.replace('scheduler = "scx_simple"', 'scheduler = "fair"'))
    ext = None
    try:
        d.wait_windows(2)
        exe = install_fake(tmp_path / "ext", "scx_ext", fake.root, "extsched")
        ext = subprocess.Popen([str(exe)], stdout=subprocess.DEVNULL)
        assert wait_for(lambda: d.ctl("status")["external_ops"] == "extsched", 10)
        n = d.ctl("status")["windows"]
        d.wait_windows(n + 3)
        st = d.ctl("status")
        assert st["running"]["source"] == "not started by scxd" and st["kernel"]["ops"] == \
            "extsched"
    finally:
        if ext is not None:
            ext.send_signal(signal.SIGINT)
            ext.wait()
        d.stop()
    windows = list(JournalReader(d.state / "journal").windows())
    foreign = [w for w in windows if w["running"] == "external:extsched"]
    assert len(foreign) >= 3
    assert all(w["cost"] is None for w in foreign)
    assert all(w["running"] in ("fair", "external:extsched") for w in windows)


def test_run_command_line_leaves_heavy_libraries_unloaded():
    """What ``scxd run`` imports before the policy is chosen: neither scipy (offline
    statistics) nor torch (the network policy loads it when configured).  Each would add
    about a minute to a start in an emulated guest (the systemd test bed's start timeout)."""
    code = ("import sys, scxd.cli; scxd.cli.build_parser(); import scxd.daemon; "
            "print(' '.join(m for m in ('scipy', 'torch', 'bcc') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert res.stdout.strip() == ""
