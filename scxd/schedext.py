"""Read and strictly parse the kernel's sched_ext state (/sys/kernel/sched_ext).

The kernel is the source of truth for what runs: every swap is verified here, and status
reports this, never what was requested.  Files (Linux 6.12+): ``state`` (enabling, enabled,
disabling, disabled), ``switch_all``, ``nr_rejected``, ``hotplug_seq``, ``enable_seq``,
``root/ops`` (present only while a scheduler is loaded) and ``root/events`` (newer kernels).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scxd.hostfs import SCHED_EXT_DIR, HostFS
from scxd.procparse import ParseError

STATES = ("enabling", "enabled", "disabling", "disabled")
#: sched_ext kernel log lines (kernel/sched/ext.c).
_ENABLED = re.compile(r'sched_ext: BPF scheduler "([^"]+)" enabled( \(partial\))?')
_DISABLED = re.compile(r'sched_ext: BPF scheduler "([^"]+)" disabled \(([^)]+)\)')
_STALL = re.compile(r"sched_ext: (\S+): (.+ failed to run for [0-9.]+s)")


@dataclass(frozen=True)
class KernelState:
    """One reading of /sys/kernel/sched_ext; ``present`` False means no sched_ext kernel."""

    present: bool
    state: str = "disabled"
    switch_all: bool = False
    nr_rejected: int = 0
    hotplug_seq: int = 0
    enable_seq: int = 0
    ops: str | None = None
    events: dict[str, int] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.present and self.state == "enabled"

    @property
    def disabled(self) -> bool:
        return not self.present or self.state == "disabled"

    @property
    def partial(self) -> bool:
        return self.enabled and not self.switch_all

    def runs(self, ops_prefix: str) -> bool:
        """Is a scheduler whose ops name is ``ops_prefix``, or starts with it followed by a
        non-alphanumeric suffix (Rust schedulers append ``_VERSION...``), enabled?  So
        ``flash`` matches ``flash`` and ``flash_1.0.14_...`` but not ``flashyspark``."""
        if not self.enabled or self.ops is None or not self.ops.startswith(ops_prefix):
            return False
        rest = self.ops[len(ops_prefix):]
        return not rest or not rest[0].isalnum()

    def as_dict(self) -> dict:
        if not self.present:
            return {"state": "unavailable", "ops": None, "enable_seq": "unavailable"}
        return {"state": self.state, "ops": self.ops, "enable_seq": self.enable_seq,
                "switch_all": self.switch_all, "partial": self.partial,
                "nr_rejected": self.nr_rejected, "hotplug_seq": self.hotplug_seq,
                "events": dict(self.events)}


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ParseError(what, f"expected an integer, got {text.strip()!r}") from None


def parse_state(text: str) -> str:
    state = text.strip()
    if state not in STATES:
        raise ParseError("/sys/kernel/sched_ext/state", f"unknown state {state!r}")
    return state


def parse_events(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = _int(parts[1], "/sys/kernel/sched_ext/root/events")
        elif parts:
            raise ParseError("/sys/kernel/sched_ext/root/events", f"malformed line {line!r}")
    return out


def read_state(host: HostFS) -> KernelState:
    """Read every file once.  ``root/`` may vanish between reads (a disable in progress):
    then ``ops`` is None, which is exactly what the kernel says at that moment."""
    if not host.exists(SCHED_EXT_DIR):
        return KernelState(present=False)
    base = SCHED_EXT_DIR
    state = parse_state(host.read(f"{base}/state"))

    def optional_int(name: str) -> int:
        text = host.read_optional(f"{base}/{name}")
        return 0 if text is None else _int(text, f"/{base}/{name}")

    ops = host.read_optional(f"{base}/root/ops")
    events_text = host.read_optional(f"{base}/root/events")
    return KernelState(
        present=True, state=state, switch_all=optional_int("switch_all") == 1,
        nr_rejected=optional_int("nr_rejected"), hotplug_seq=optional_int("hotplug_seq"),
        enable_seq=optional_int("enable_seq"),
        ops=ops.strip() if ops is not None and ops.strip() else None,
        events=parse_events(events_text) if events_text else {},
    )


@dataclass(frozen=True)
class KernelLogEvent:
    kind: str          # "enabled", "disabled", "stall"
    ops: str
    detail: str        # reason for disabled, "partial" for a partial enable, stall text


def parse_kernel_log(lines: list[str]) -> list[KernelLogEvent]:
    """sched_ext events from kernel log lines (dmesg / /dev/kmsg text)."""
    out = []
    for line in lines:
        if m := _ENABLED.search(line):
            out.append(KernelLogEvent("enabled", m.group(1), "partial" if m.group(2) else ""))
        elif m := _DISABLED.search(line):
            out.append(KernelLogEvent("disabled", m.group(1), m.group(2)))
        elif m := _STALL.search(line):
            out.append(KernelLogEvent("stall", m.group(1), m.group(2)))
    return out
