"""sd_notify: tell systemd we are READY, alive (WATCHDOG), STOPPING, and our STATUS.

While starting, each slow phase (imports, probing the schedulers, compiling the BPF
programs, restoring the policy) says so in STATUS and asks for ``EXTEND_TIMEOUT_USEC`` more
time: the unit's ``TimeoutStartSec`` then bounds a phase that makes no progress, not a slow
machine (an emulated guest starts ~30x slower than hardware).

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace).  Without that variable
(not started by systemd) every call is a no-op.  ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``
when set, which must be ours) gives the watchdog period; pings are due every half of it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

#: Time one start-up phase may take before systemd's start timeout applies again.  A phase
#: that compiles (BPF) or spawns (probes) took up to ~90 s in an emulated guest whose host was
#: busy with a second guest; a hung phase still ends within this bound.
START_PHASE_S = 180.0


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        self.address = addr or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and ours else None
        self.sent = 0
        self.errors = 0
        #: (phase, monotonic start) of each start-up phase, for :meth:`startup_report`.
        self.phases: list[tuple[str, float]] = []

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines; returns False (and counts) when it could not."""
        if self.address is None:
            return False
        payload = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall(payload)
        except OSError:
            self.errors += 1
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str = "") -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text.replace("\n", " "))

    def starting(self, phase: str, allow_s: float = START_PHASE_S) -> bool:
        """A start-up phase begins: STATUS shows it and systemd's start timeout is extended
        to ``allow_s`` from now (never shortened: systemd ignores a smaller extension)."""
        self.phases.append((phase, time.monotonic()))
        return self.send(STATUS=f"starting: {phase}", EXTEND_TIMEOUT_USEC=int(allow_s * 1e6))

    def startup_report(self, now: float | None = None) -> str:
        """How long start-up took and each phase's share, e.g. ``12.3 s (probing 2.0 s,
        …)``: the log line that says which phase to look at when a start is slow."""
        if not self.phases:
            return "0.0 s"
        end = time.monotonic() if now is None else now
        ends = [t for _, t in self.phases[1:]] + [end]
        parts = ", ".join(f"{name} {stop - start:.1f} s"
                          for (name, start), stop in zip(self.phases, ends, strict=True))
        return f"{end - self.phases[0][1]:.1f} s ({parts})"

    def reloading(self) -> bool:
        return self.send(RELOADING=1)
