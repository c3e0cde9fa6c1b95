"""The sampler: reads every telemetry source once per tick and reports their health.

It picks the scheduling source at start — BPF when it loads, else the degraded /proc
schedstat source, said loudly (log, :class:`TelemetryHealth`, later status and metrics) — and
keeps going when a source fails at run time: the failure is counted, the sample carries
``None`` for that source and the error text, and the cadence is unchanged.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from scxd.config import TelemetryConfig
from scxd.hostfs import HostFS
from scxd.telemetry.bpf import BpfSchedSource, BpfUnavailable
from scxd.telemetry.schedstat import SchedstatSource
from scxd.telemetry.system import SystemSource
from scxd.types import Sample, TaskWindow

log = logging.getLogger("scxd.telemetry")


class TelemetryUnavailable(RuntimeError):
    """BPF is required by the config but cannot load."""


@dataclass
class TelemetryHealth:
    """What the telemetry could and could not do; shown by status and exported as metrics."""

    mode: str = "none"                      # "bpf", "schedstat" or "none"
    degraded_reason: str = ""               # why not "bpf" ("" when BPF runs)
    errors: Counter[str] = field(default_factory=Counter)   # failed reads per source
    last_error: dict[str, str] = field(default_factory=dict)
    samples: int = 0
    bpf_load_seconds: float = 0.0
    cost_error: str = ""                    # why the collector's BPF cost is unknown

    @property
    def degraded(self) -> bool:
        return self.mode != "bpf"

    def as_dict(self) -> dict:
        return {"mode": self.mode, "degraded": self.degraded,
                "degraded_reason": self.degraded_reason, "errors": dict(self.errors),
                "last_error": dict(self.last_error), "samples": self.samples,
                "bpf_load_seconds": round(self.bpf_load_seconds, 3),
                "cost_error": self.cost_error}


class Sampler:
    """Owns the sources; :meth:`sample` is one tick."""

    def __init__(self, cfg: TelemetryConfig, host: HostFS | None = None,
                 system: SystemSource | None = None):
        self.cfg = cfg
        self.host = host or HostFS("/")
        self.system = system or SystemSource(self.host, per_process=cfg.per_process)
        self.sched: BpfSchedSource | SchedstatSource | None = None
        self.health = TelemetryHealth()
        self._proc = psutil.Process()
        self._cpu_prev = self._cpu_seconds()

    def _cpu_seconds(self) -> float:
        t = self._proc.cpu_times()
        return t.user + t.system

    def open(self) -> None:
        """Choose and load the scheduling source, then prime every counter."""
        reason = ""
        if self.cfg.bpf == "off":
            reason = "BPF telemetry disabled by config (telemetry.bpf = \"off\")"
        else:
            # BPF observes the running kernel whatever host_root says: tracefs, headers and
            # the programs' fdinfo are always the live ones.
            bpf = BpfSchedSource(HostFS("/"), bpf_dir=Path(self.cfg.bpf_dir) if self.cfg.bpf_dir
                                 else None, max_tasks=self.cfg.max_tasks,
                                 ringbuf_pages=self.cfg.ringbuf_pages,
                                 enable_stats=self.cfg.bpf_stats)
            try:
                bpf.load()
            except BpfUnavailable as exc:
                if self.cfg.bpf == "required":
                    raise TelemetryUnavailable(f"BPF telemetry is required but: {exc}") from None
                reason = f"BPF telemetry unavailable: {exc}"
            else:
                self.sched = bpf
                self.health.mode = "bpf"
                self.health.bpf_load_seconds = bpf.load_seconds
                self.health.cost_error = bpf.cost_error
        if self.sched is None:
            fallback = SchedstatSource(self.host)
            try:
                fallback.load()
            except OSError as exc:
                reason += f"; schedstat fallback unavailable too: {exc}"
                self.health.mode = "none"
            else:
                self.sched = fallback
                self.health.mode = "schedstat"
            self.health.degraded_reason = reason
            log.warning("DEGRADED telemetry (mode %s): %s", self.health.mode, reason)
        self._prime()

    def _prime(self) -> None:
        mono = time.monotonic()
        try:
            self.system.read(mono)
        except (OSError, ValueError) as exc:
            self._fail("system", exc)
        self._cpu_prev = self._cpu_seconds()

    def close(self) -> None:
        if self.sched is not None:
            self.sched.close()
            self.sched = None

    def __enter__(self) -> Sampler:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, source: str, exc: BaseException) -> str:
        text = f"{source}: {type(exc).__name__}: {exc}"
        self.health.errors[source] += 1
        self.health.last_error[source] = text
        log.warning("telemetry source failed: %s", text)
        return text

    def _mark_kernel_threads(self, tasks: tuple[TaskWindow, ...]) -> tuple[TaskWindow, ...]:
        """Flag the kernel threads among tasks woken from interrupt context: their waits
        (RCU, kworkers) are no user's latency.  Only those tasks are looked up (a few per
        window); one that vanished meanwhile counts as a user task."""
        out = []
        for t in tasks:
            if t.ext_wakes > 0 and t.pid > 0:
                try:
                    kthread = bool(self.host.is_kernel_thread(t.pid))
                except (OSError, ValueError):
                    kthread = False
                t = t._replace(kthread=kthread)
            out.append(t)
        return tuple(out)

    def sample(self, closes_window: bool = False) -> Sample:
        """One tick.  With ``closes_window`` the per-task CPU shares for fairness are read."""
        mono, wall = time.monotonic(), time.time()
        errors = []
        system = sched = None
        try:
            system = self.system.read(mono)
        except (OSError, ValueError) as exc:
            errors.append(self._fail("system", exc))
        shares: tuple[int, ...] = ()
        tasks: tuple[TaskWindow, ...] = ()
        if self.sched is not None:
            try:
                sched = self.sched.read()
                if closes_window:
                    tasks = self._mark_kernel_threads(self.sched.window_tasks(sched.task_exits))
                    shares = tuple(t.oncpu_ns for t in tasks if t.wait_ns > 0)
            except Exception as exc:  # a broken source must not stop sampling
                errors.append(self._fail(self.sched.name, exc))
        cpu_now = self._cpu_seconds()
        collector_cpu, self._cpu_prev = cpu_now - self._cpu_prev, cpu_now
        self.health.samples += 1
        return Sample(mono=mono, wall=wall, system=system, sched=sched,
                      window_task_cpu_ns=shares, window_tasks=tasks, errors=tuple(errors),
                      collector_cpu_s=collector_cpu, closes_window=closes_window)
