"""Runs `scxd run` as a real process for the daemon, Prometheus and dashboard tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scxd.control import call
from tests.fakes import wait_for

BIN = Path(sys.executable).parent
SCXD, SCXCTL = str(BIN / "scxd"), str(BIN / "scxctl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, tmp: Path, toml: str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()):
        self.tmp = tmp
        # A socket directory others may traverse: then only the socket's own mode and
        # scxd's SO_PEERCRED check stand between a non-root client and the daemon.
        self.run_dir = Path(tempfile.mkdtemp(prefix="scxd-run-"))
        os.chmod(self.run_dir, 0o755)
        self.sock = self.run_dir / "scxd.sock"
        self.state = tmp / "state"
        self.port = free_port()
        self.config = tmp / "scxd.toml"
        self.config.write_text(toml.format(sock=self.sock, state=self.state, port=self.port,
                                           tmp=tmp))
        self.log = open(tmp / "scxd.log", "w+")  # noqa: SIM115 - closed in stop()
        args = tuple(a.format(sock=self.sock, state=self.state, port=self.port, tmp=tmp)
                     for a in args)
        self.proc = subprocess.Popen([SCXD, "run", "--config", str(self.config), *args],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        if not wait_for(lambda: self.sock.exists() or self.proc.poll() is not None, 30):
            raise AssertionError(f"scxd did not start:\n{self.output()}")
        if self.proc.poll() is not None:
            raise AssertionError(f"scxd exited {self.proc.returncode}:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()

    def ctl(self, method: str, **params):
        return call(self.sock, method, params)

    def scxctl(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess:
        # As "nobody" with its own group, not root's (subprocess keeps gid 0 otherwise).
        ids = {"user": user, "group": user and "nogroup", "extra_groups": [] if user else None}
        return subprocess.run([SCXCTL, "--socket", str(self.sock), *args], capture_output=True,
                              text=True, timeout=120, **ids)

    def wait_windows(self, n: int, timeout: float = 30) -> None:
        assert wait_for(lambda: self.ctl("status")["windows"] >= n, timeout), self.output()

    def stop(self, sig: int = signal.SIGTERM) -> float:
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return time.monotonic() - start


BASE = """
state_dir = "{state}"
[telemetry]
sample_interval = 0.25
window = 0.5
bpf = "off"
[control]
socket = "{sock}"
[metrics]
address = "127.0.0.1:{port}"
[journal]
fsync = false
"""

ACTIVE = BASE.replace('state_dir = "{state}"',
                      'state_dir = "{state}"\nhost_root = "{tmp}/host"') + """
[guard]
min_dwell = 0.0
warmup_windows = 0
swaps_per_hour = 100
# Every fake scheduler is the host's fair scheduler underneath, on a host whose load the
# test suite itself changes: a regression judged here would be noise, so the guard's
# regression paths, quarantine and re-anchoring (which would put fair between two fake
# schedulers these tests swap between) stay out of them; tests/test_reward_guard_policy.py
# and the replay benchmark cover them.
regression_windows = 1000
regression_fast_margin = 100.0
regression_z = 0.0
reanchor = false
quarantine = 0.0
[actuator]
search_path = ["{tmp}/bin"]
start_timeout = 5.0
stop_timeout = 1.0
[policy]
name = "fixed"
scheduler = "scx_simple"
"""
