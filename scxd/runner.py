"""Spawn and stop scheduler processes.

A scheduler child gets stdin from /dev/null, its own session (a terminal's Ctrl-C reaches
scxd, which then stops the child properly), and ``PR_SET_PDEATHSIG=SIGKILL``: if scxd dies
the child dies with it and the kernel releases the struct_ops link, so tasks return to the
fair scheduler.  The death signal is tied to the *thread* that forked, so scxd spawns from
its long-lived main/actuator thread only.  Output goes through a pipe into a bounded
in-memory tail (the last ``log_bytes``); the loader's ``EXIT: ...`` line is kept apart
because it carries the reason of an ejection (its exit code is 0 even then).

Stopping: SIGINT (what the loaders handle: they print "EXIT: unregistered from user space"),
then SIGKILL after the grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(parent_pid: int) -> None:
    """Runs in the child between fork and exec."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class OutputTail:
    """Keeps the last ``limit`` bytes of a stream, line by line, plus the last EXIT line."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lines: deque[str] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self.exit_line = ""
        self.total_bytes = 0

    def feed(self, line: str) -> None:
        with self._lock:
            self.total_bytes += len(line)
            if line.startswith("EXIT:") or " EXIT: " in line:
                self.exit_line = line.strip()
            self._lines.append(line)
            self._size += len(line)
            while self._size > self.limit and len(self._lines) > 1:
                self._size -= len(self._lines.popleft())

    def text(self, max_lines: int | None = None) -> str:
        with self._lock:
            lines = list(self._lines)
        if max_lines is not None:
            lines = lines[-max_lines:]
        return "".join(lines)


@dataclass
class SchedulerProcess:
    """A running (or finished) scheduler child."""

    argv: tuple[str, ...]
    popen: subprocess.Popen
    output: OutputTail
    started_mono: float
    create_time: float
    _reader: threading.Thread

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float) -> tuple[int, bool]:
        """SIGINT, wait ``grace`` s, then SIGKILL.  Returns (exit code, was_killed)."""
        killed = False
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                killed = True
                self.popen.kill()
                self.popen.wait()
        self._reader.join(timeout=2.0)
        return self.popen.returncode, killed

    def kill(self) -> int:
        if self.popen.poll() is None:
            self.popen.kill()
        rc = self.popen.wait()
        self._reader.join(timeout=2.0)
        return rc


def _pump(stream, tail: OutputTail) -> None:
    with stream:
        for raw in iter(stream.readline, b""):
            tail.feed(raw.decode(errors="replace"))


def spawn(argv: Sequence[str], log_bytes: int, env: Mapping[str, str] | None = None
          ) -> SchedulerProcess:
    """Start a scheduler; raises OSError when it cannot be executed at all."""
    parent = os.getpid()
    popen = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, close_fds=True, env=dict(env) if env is not None else None,
        preexec_fn=lambda: _child_setup(parent),
    )
    tail = OutputTail(log_bytes)
    reader = threading.Thread(target=_pump, args=(popen.stdout, tail), daemon=True,
                              name=f"scx-output-{popen.pid}")
    reader.start()
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    return SchedulerProcess(tuple(argv), popen, tail, time.monotonic(), create_time, reader)


def process_matches(pid: int, create_time: float, argv0: str) -> bool:
    """Is ``pid`` still the process we started (not a recycled pid)?"""
    try:
        p = psutil.Process(pid)
        if create_time and abs(p.create_time() - create_time) > 0.05:
            return False
        name = os.path.basename(argv0)
        cmd = p.cmdline()
        # An interpreter-run loader shows the interpreter in argv[0]; its comm still names it.
        return (bool(cmd) and os.path.basename(cmd[0]) == name) or p.name() == name[:15]
    except psutil.Error:
        return False


def stop_foreign(pid: int, grace: float) -> bool:
    """Stop a process we did not start (crash leftovers, reclaim): SIGINT then SIGKILL."""
    try:
        p = psutil.Process(pid)
        p.send_signal(signal.SIGINT)
        try:
            p.wait(grace)
        except psutil.TimeoutExpired:
            p.kill()
            p.wait(grace)
        return True
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
