"""What a long-running service owes its operator across starts and stops.

* :class:`RunMarker` — ``<state_dir>/running.json`` exists exactly while scxd runs: written
  at start, touched once per window (its mtime is the last sign of life), removed by a clean
  stop.  Found at start, it means the previous run ended uncleanly (SIGKILL, OOM, power
  loss, a crash) and about when; the daemon says so in the log and the journal, together
  with what the actuator recovered.
* :func:`setting` — turns a start-up failure (a port in use, a socket path too long, a
  state directory that cannot be written, an unknown group) into a :class:`StartupError`
  that names the setting and its value, so the one log line says what to change.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "running.json"
LOCK = "scxd.lock"


class StartupError(RuntimeError):
    """scxd cannot start as configured; the message names the setting and its value."""


@contextlib.contextmanager
def setting(key: str, value: Any) -> Iterator[None]:
    """Name ``key = value`` in any OS-level failure raised inside the block."""
    try:
        yield
    except StartupError:
        raise
    except KeyError as exc:  # grp/pwd lookups
        raise StartupError(f"{key} = {value!r}: {exc.args[0] if exc.args else exc}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason = "address already in use (another scxd, or another exporter?)"
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise StartupError(f"{key} = {value!r}: {reason}{where}") from None


@dataclass(frozen=True)
class PreviousRun:
    pid: int | None
    started: float | None
    last_alive: float          # wall time of the marker's last touch
    version: str

    def describe(self) -> str:
        def at(t: float | None) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "?"
        return (f"previous run (pid {self.pid}, scxd {self.version}, started {at(self.started)}) "
                f"ended uncleanly at about {at(self.last_alive)}")

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "started": self.started, "last_alive": self.last_alive,
                "version": self.version}


class RunMarker:
    """The marker, guarded by an exclusive lock on ``<state_dir>/scxd.lock``: a second scxd
    on the same state directory would undo the first one's scheduler at its start-up."""

    def __init__(self, state_dir: str | os.PathLike[str]):
        self.path = Path(state_dir) / MARKER
        self.lock_path = Path(state_dir) / LOCK
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        """Take the state directory for this process, or say who has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StartupError(f"state_dir = {str(self.path.parent)!r}: in use by another "
                               f"scxd (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    @property
    def held(self) -> bool:
        return self._lock_fd is not None

    def previous(self) -> PreviousRun | None:
        """The run that left its marker behind (None: the last stop was clean)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        pid = data.get("pid")
        return PreviousRun(pid if isinstance(pid, int) else None,
                           data.get("started") if isinstance(data.get("started"), int | float)
                           else None, st.st_mtime, str(data.get("version", "?")))

    def begin(self, version: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "started": time.time(),
                                   "version": version}))
        os.replace(tmp, self.path)

    def alive(self) -> None:
        """Once per window: the marker's mtime is the last sign of life."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def end(self) -> None:
        """A clean stop: nothing to report next time (only by the process holding the lock)."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._lock_fd)
        self._lock_fd = None
