"""What an operator of a root daemon expects: a crash is reported at the next start, start-up
errors name the setting, two daemons cannot share a state directory, a reload keeps the
command-line flags, pipes close quietly, and the foreground shows one line per window."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from scxd.journal import JournalReader
from tests.daemon_helper import BASE, Daemon, free_port
from tests.fakes import wait_for

BIN = Path(sys.executable).parent
SCXD, SCXCTL = str(BIN / "scxd"), str(BIN / "scxctl")


def events(state: Path) -> list[dict]:
    return list(JournalReader(state / "journal").records(("event",)))


def test_a_crash_is_reported_at_the_next_start(tmp_path):
    first = Daemon(tmp_path, BASE)
    first.wait_windows(2)
    pid = first.proc.pid
    first.stop(signal.SIGKILL)
    assert (first.state / "running.json").exists(), "the marker survives a SIGKILL"
    second = Daemon(tmp_path, BASE)
    try:
        second.wait_windows(1)
    finally:
        second.stop()
    out = second.output()
    assert f"previous run (pid {pid}, scxd" in out and "ended uncleanly at about" in out
    assert "recovered: nothing was left to undo" in out
    unclean = [e for e in events(second.state) if e["event"] == "unclean_exit"]
    assert len(unclean) == 1 and unclean[0]["previous"]["pid"] == pid
    assert not (second.state / "running.json").exists(), "a clean stop removes it"
    third = Daemon(tmp_path, BASE)
    third.wait_windows(1)
    third.stop()
    assert "uncleanly" not in third.output()


def test_a_second_daemon_on_the_same_state_is_refused(tmp_path):
    first = Daemon(tmp_path, BASE)
    try:
        first.wait_windows(1)
        other = tmp_path / "other"
        other.mkdir()
        cfg = other / "scxd.toml"
        cfg.write_text(first.config.read_text().replace(str(first.sock),
                                                        str(other / "s.sock")))
        res = subprocess.run([SCXD, "run", "--config", str(cfg), "--metrics-address",
                              f"127.0.0.1:{free_port()}"], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 1
        assert (f"cannot start: state_dir = '{first.state}': in use by another scxd "
                f"(pid {first.proc.pid})") in res.stderr
        assert first.ctl("ping")["pong"] and (first.state / "running.json").exists()
    finally:
        first.stop()


def start_fails(tmp_path: Path, toml: str, *args: str) -> str:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml.format(sock=tmp_path / "s.sock", state=tmp_path / "state",
                               port=free_port(), tmp=tmp_path))
    res = subprocess.run([SCXD, "run", "--config", str(cfg), *args], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    return res.stderr


def test_startup_errors_name_the_setting(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = start_fails(tmp_path, BASE, "--metrics-address", f"127.0.0.1:{port}")
        assert (f"cannot start: metrics.address = '127.0.0.1:{port}': address already in "
                "use") in err
    long_sock = tmp_path / ("d" * 60) / ("s" * 60)
    err = start_fails(tmp_path, BASE, "--socket", str(long_sock))
    assert f"cannot start: control.socket = '{long_sock}'" in err and "bytes long" in err
    err = start_fails(tmp_path, BASE.replace('socket = "{sock}"',
                                             'socket = "{sock}"\ngroup = "nosuchgroup"'))
    assert "cannot start: control.group = 'nosuchgroup'" in err
    (tmp_path / "afile").write_text("")
    err = start_fails(tmp_path, BASE, "--state-dir", str(tmp_path / "afile"))
    assert f"cannot start: state_dir = '{tmp_path / 'afile'}'" in err


def test_reload_keeps_command_line_flags(tmp_path):
    toml = BASE.replace('socket = "{sock}"', 'socket = "{tmp}/from-toml.sock"')
    d = Daemon(tmp_path, toml, args=("--socket", "{sock}", "--state-dir", "{state}"))
    try:
        assert not (tmp_path / "from-toml.sock").exists()
        d.wait_windows(1)
        d.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "configuration reloaded" in d.output(), 10), d.output()
        assert "restart needed" not in d.output()
        assert d.ctl("ping")["pong"]
    finally:
        d.stop()


def test_pipes_close_quietly(tmp_path):
    res = subprocess.run(f"{SCXD} catalog --json | head -1", shell=True, capture_output=True,
                         text=True, timeout=60)
    assert res.stdout.strip() == "[" and res.stderr == ""
    d = Daemon(tmp_path, BASE)
    try:
        d.wait_windows(2)
        res = subprocess.run(f"{SCXCTL} --socket {d.sock} --json history -n 500 | head -1",
                             shell=True, capture_output=True, text=True, timeout=60)
        assert res.stdout.strip() == "{" and res.stderr == ""
    finally:
        d.stop()


def test_foreground_prints_a_line_per_window_unless_quiet(tmp_path):
    (tmp_path / "a").mkdir()
    loud = Daemon(tmp_path / "a", BASE)
    try:
        loud.wait_windows(3)
    finally:
        loud.stop()
    lines = [x for x in loud.output().splitlines() if "scxd.window: window " in x]
    assert len(lines) >= 3
    assert "running fair" in lines[-1] and "busy" in lines[-1] and "rq p99 –" in lines[-1]
    (tmp_path / "b").mkdir()
    quiet = Daemon(tmp_path / "b", BASE, args=("--quiet",))
    try:
        quiet.wait_windows(3)
    finally:
        quiet.stop()
    assert "scxd.window" not in quiet.output()


def test_journal_events_are_json(tmp_path):
    d = Daemon(tmp_path, BASE)
    d.wait_windows(1)
    d.stop()
    assert [e["event"] for e in events(d.state)][:1] == ["start"]
    json.dumps(events(d.state))
