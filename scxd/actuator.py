"""Apply a scheduler choice, verify it in the kernel, roll back on failure; watch it after.

``apply(action)``:
  1. no-op when the kernel already runs exactly that (our process alive, ``state=enabled``,
     ``root/ops`` has our prefix, ``enable_seq`` unchanged since we verified it);
  2. stop the current scheduler (SIGINT → grace → SIGKILL) and wait for ``disabled``;
  3. start the new one and wait for ``enabled`` + an ops-prefix match + a new
     ``enable_seq`` — success is only what the kernel confirms;
  4. on any failure (binary missing, bad flags, non-zero exit, EBUSY, enable timeout, ops
     mismatch) roll back to the last known-good choice, else to the fair scheduler, and
     return a typed :class:`ApplyResult` with the reason, exit code and output tail.

:meth:`Actuator.poll` watches continuously: a scheduler ejected by the kernel while its
process lives (stall, BPF error, sysrq), a crashed process, another launcher taking over
(ops not ours / ``enable_seq`` moved).  Each is an :class:`ActuatorEvent`.  A crash is
retried with back-off within a budget; an ejection is not (the kernel had a reason).

Intent — what scxd started, pid, argv, original fair tunables — is persisted atomically in
the state directory before and after each swap, so :meth:`recover` can undo what a crashed
predecessor left.  Without /sys/kernel/sched_ext the actuator is advisory: every decision
is computed and recorded as "would apply", nothing is spawned.

Not thread-safe: one owner (the daemon's loop) calls it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from scxd import runner
from scxd.catalog import Action, Catalog
from scxd.config import ActuatorConfig
from scxd.hostfs import SCHED_DEBUGFS_DIR, SCHED_EXT_DIR, HostFS
from scxd.probe import ProbedCatalog, read_fair_tunable
from scxd.schedext import KernelState, parse_kernel_log, read_state

log = logging.getLogger("scxd.actuator")
POLL_S = 0.01
INTENT_FILE = "intent.json"
INTENT_VERSION = 1
#: Loader output that means the struct_ops attach lost against another scheduler (the
#: kernel-tree C loaders; the scx Rust loaders check the state first and say the last one).
EBUSY_MARKERS = ("EBUSY", "Device or resource busy", "Failed to attach struct_ops",
                 "another sched_ext scheduler is already running")
#: Kernel disable reasons that mean the scheduler was told to go (not ejected).
CLEAN_EXIT_REASONS = ("unregistered from user space",)
#: The kernel's own unregistration (SCX_EXIT_UNREG_KERN): on CPU hotplug it comes with an
#: exit code asking the loader to restart, and the loaders do.
RESTART_REASON = "unregistered from the main kernel"
CRASH_RESTARTS = 3
CRASH_WINDOW_S = 600.0
CRASH_BACKOFF_S = (1.0, 5.0, 30.0)


class SwapOutcome(StrEnum):
    """How an :meth:`Actuator.apply` ended."""

    NOOP = "noop"                            # the kernel already ran exactly that
    APPLIED = "applied"                      # verified: enabled, our ops, a new enable_seq
    ADVISORY = "advisory"                    # no sched_ext: recorded as "would apply"
    ROLLED_BACK = "rolled_back"              # failed; the last good choice runs again
    FELL_BACK_TO_FAIR = "fell_back_to_fair"  # failed; the fair scheduler runs
    BLOCKED = "blocked"                      # another launcher's scheduler is respected
    FAILED = "failed"                        # failed, and so did every roll back

    @property
    def ok(self) -> bool:
        return self in (SwapOutcome.NOOP, SwapOutcome.APPLIED, SwapOutcome.ADVISORY)


class FailureReason(StrEnum):
    """Why a swap failed (``ApplyResult.reason``)."""

    BINARY_MISSING = "binary_missing"
    SPAWN_FAILED = "spawn_failed"
    EXITED = "exited"                        # the loader exited before the kernel enabled it
    EBUSY = "ebusy"                          # lost the struct_ops attach to another scheduler
    EJECTED_AT_START = "ejected_at_start"    # the kernel ejected it while enabling
    ENABLE_TIMEOUT = "enable_timeout"
    OPS_MISMATCH = "ops_mismatch"            # enabled, but root/ops is not its prefix
    DISABLE_TIMEOUT = "disable_timeout"      # the old one would not go away
    DEBUGFS_WRITE_FAILED = "debugfs_write_failed"  # a fair tunable did not take
    EXTERNAL_SCHEDULER = "external_scheduler"      # blocked: takeover = respect


class ActuatorEventKind(StrEnum):
    """What :meth:`Actuator.poll` / :meth:`Actuator.recover` observed."""

    EJECTED = "ejected"                      # the kernel disabled ours (stall, error, sysrq)
    CRASHED = "crashed"                      # our loader process died
    TAKEOVER = "takeover"                    # a scheduler scxd did not start runs
    EXTERNAL_STOPPED = "external_stopped"    # ... and is gone again
    RECOVERED = "recovered"                  # restarted / reclaimed, verified
    RESTARTED = "restarted"                  # our loader re-attached itself when the kernel
    #                                          asked (CPU hotplug), verified: a new enable_seq
    RECOVERY_FAILED = "recovery_failed"
    LEFTOVER_CLEANED = "leftover_cleaned"    # a crashed predecessor's leftovers undone

    @property
    def kernel_changed(self) -> bool:
        """The kernel's scheduler changed without a swap of ours (the guard warms up)."""
        return self in (ActuatorEventKind.CRASHED, ActuatorEventKind.EJECTED,
                        ActuatorEventKind.RECOVERY_FAILED, ActuatorEventKind.RECOVERED,
                        ActuatorEventKind.TAKEOVER, ActuatorEventKind.RESTARTED)


@dataclass(frozen=True)
class Ownership:
    """What scxd itself started, as the actuator knows it — an immutable snapshot other
    threads may hold while the loop thread moves on."""

    mode: str                     # active / advisory
    current: Action               # the last choice the kernel confirmed
    fair: Action                  # the catalog's fair scheduler (what runs without scx)
    ops_prefix: str | None        # prefix of the loader scxd runs now (None: none runs)
    enable_seq: int | None        # the kernel's enable_seq when scxd verified it


@dataclass(frozen=True)
class Running:
    """The actuator's answer to "what is really running, and can I trust it"."""

    action: Action | None         # what runs, when the kernel confirms it is scxd's choice
    label: str                    # for the journal: an arm label, external:OPS, unverified
    trusted: bool                 # the kernel confirms it: its windows may be scored
    source: str                   # why we believe it, in words
    ops: str | None = None        # the kernel's root/ops
    partial: bool = False

    @property
    def scheduler(self) -> str | None:
        return self.action.scheduler if self.action is not None else None

    def as_dict(self) -> dict:
        return {"scheduler": self.scheduler, "label": self.label, "trusted": self.trusted,
                "source": self.source, "ops": self.ops, "partial": self.partial}


def running_from(k: KernelState, own: Ownership) -> Running:
    """Pure: the kernel's state judged against what scxd started.

    Without sched_ext the fair scheduler runs, whatever scxd would do (advisory; scxd
    never writes its tunables then).  With sched_ext only what the kernel confirms counts:
    ``disabled`` is the fair scheduler — scxd's own choice when it intends fair (tunables
    included), else a loader of ours just died and the window is not trusted; ``enabled``
    with our ops prefix and the enable_seq we verified is ours; anything else is a foreign
    scheduler or a transition, and not trusted.
    """
    if not k.present:
        return Running(own.fair, own.fair.label(), True, "kernel has no sched_ext")
    if k.disabled:
        if own.mode == "advisory":
            return Running(own.fair, own.fair.label(), True, f"state {k.state} (advisory)")
        if own.current.is_fair and own.ops_prefix is None:
            return Running(own.current, own.current.label(), True, f"state {k.state}")
        return Running(None, "unverified", False, f"state {k.state}, but scxd started "
                       f"{own.current.label()}")
    if not k.enabled:
        return Running(None, "unverified", False, f"state {k.state} (in transition)", k.ops,
                       k.partial)
    ours = own.mode == "active" and own.ops_prefix is not None and k.runs(own.ops_prefix) \
        and (own.enable_seq is None or k.enable_seq == own.enable_seq)
    if ours:
        return Running(own.current, own.current.label(), True, "started by scxd", k.ops,
                       k.partial)
    return Running(None, f"external:{k.ops}" if k.ops else "unverified", False,
                   "not started by scxd", k.ops, k.partial)


@dataclass(frozen=True)
class SwapTimings:
    to_disabled_s: float | None   # decision → state disabled (the old one is gone)
    to_enabled_s: float | None    # disabled → enabled with our ops (None for fair / failure)
    total_s: float


@dataclass(frozen=True)
class ApplyResult:
    outcome: SwapOutcome
    requested: Action
    running: Action | None        # what runs now, verified (None: unknown / not ours)
    previous: Action | None
    timings: SwapTimings
    reason: FailureReason | None = None
    detail: str = ""
    exit_code: int | None = None
    output_tail: str = ""
    kernel: dict = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome.value, "ok": self.ok, "at": self.at,
            "requested": self.requested.as_dict(),
            "running": self.running.as_dict() if self.running else None,
            "previous": self.previous.as_dict() if self.previous else None,
            "reason": self.reason.value if self.reason else "", "detail": self.detail,
            "exit_code": self.exit_code,
            "output_tail": self.output_tail,
            "timings": {"to_disabled_s": self.timings.to_disabled_s,
                        "to_enabled_s": self.timings.to_enabled_s,
                        "total_s": self.timings.total_s},
            "kernel": self.kernel,
        }


@dataclass(frozen=True)
class ActuatorEvent:
    kind: ActuatorEventKind
    scheduler: str
    detail: str
    exit_code: int | None = None
    kernel: dict = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict:
        return {"kind": self.kind.value, "scheduler": self.scheduler, "detail": self.detail,
                "exit_code": self.exit_code, "kernel": self.kernel, "at": self.at}


class _Failure(Exception):
    def __init__(self, reason: FailureReason, detail: str, exit_code: int | None = None,
                 tail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.exit_code, self.tail = reason, detail, exit_code, tail


class Actuator:
    def __init__(self, probed: ProbedCatalog, host: HostFS, cfg: ActuatorConfig,
                 state_dir: str | os.PathLike[str],
                 spawn: Callable[..., runner.SchedulerProcess] = runner.spawn):
        self.probed = probed
        self.catalog: Catalog = probed.catalog
        self.host = host
        self.cfg = cfg
        self.state_dir = Path(state_dir)
        self._spawn = spawn
        present = host.exists(SCHED_EXT_DIR)
        if cfg.mode == "active" and not present:
            raise RuntimeError("actuator.mode = \"active\" but this kernel has no "
                               "/sys/kernel/sched_ext (CONFIG_SCHED_CLASS_EXT)")
        self.mode = "active" if (cfg.mode == "active" or (cfg.mode == "auto" and present)) \
            else "advisory"
        self.advisory_reason = "" if self.mode == "active" else (
            "configured advisory" if cfg.mode == "advisory" else
            "this kernel has no sched_ext (/sys/kernel/sched_ext absent)")
        fair = self.catalog.fair()
        self.current: Action = fair          # what runs, as far as the kernel confirmed
        self.last_good: Action = fair
        self.intended: Action = fair         # what scxd wants (differs after a crash)
        self.proc: runner.SchedulerProcess | None = None
        self.our_seq: int | None = None      # enable_seq when our scheduler was verified
        self.external_ops: str | None = None  # a scheduler someone else runs
        self.history: deque[ApplyResult] = deque(maxlen=64)
        self.events: deque[ActuatorEvent] = deque(maxlen=64)
        self.fair_originals: dict[str, str] = {}
        self._kmsg_seq = -1
        self._crash_times: deque[float] = deque()
        self._retry_at: float | None = None
        self._remember_kmsg()

    # -- kernel ---------------------------------------------------------------------------
    def kernel(self) -> KernelState:
        return read_state(self.host)

    def _remember_kmsg(self) -> None:
        records = self.host.kernel_log(self._kmsg_seq)
        if records:
            self._kmsg_seq = records[-1][0]

    def _kernel_reason(self, consume: bool = True) -> str:
        """The newest sched_ext 'disabled (REASON)' / stall line since we last looked."""
        records = self.host.kernel_log(self._kmsg_seq)
        if records and consume:
            self._kmsg_seq = records[-1][0]
        events = parse_kernel_log([m for _, m in records])
        stall = next((e.detail for e in reversed(events) if e.kind == "stall"), "")
        reason = next((e.detail for e in reversed(events) if e.kind == "disabled"), "")
        return "; ".join(x for x in (reason, stall) if x)

    def _wait(self, predicate: Callable[[KernelState], bool], timeout: float,
              proc: runner.SchedulerProcess | None = None) -> KernelState | None:
        """Poll the kernel until predicate holds; None on timeout or when ``proc`` exits."""
        deadline = time.monotonic() + timeout
        while True:
            k = self.kernel()
            if predicate(k):
                return k
            if proc is not None and proc.poll() is not None:
                return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    # -- intent ---------------------------------------------------------------------------
    @property
    def intent_path(self) -> Path:
        return self.state_dir / INTENT_FILE

    def _persist(self, action: Action, proc: runner.SchedulerProcess | None,
                 phase: str) -> None:
        data = {
            "version": INTENT_VERSION, "phase": phase, "action": action.as_dict(),
            "pid": proc.pid if proc else None, "create_time": proc.create_time if proc else None,
            "argv": list(proc.argv) if proc else [],
            "ops_prefix": self.catalog.get(action.scheduler).ops_prefix,
            "enable_seq": self.our_seq, "fair_originals": self.fair_originals,
            "written_at": time.time(),
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.intent_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.intent_path)

    def recover(self) -> list[ActuatorEvent]:
        """Undo what a crashed predecessor left: its scheduler process and fair tunables."""
        events: list[ActuatorEvent] = []
        try:
            data = json.loads(self.intent_path.read_text())
        except FileNotFoundError:
            data = None
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable intent file %s: %s", self.intent_path, exc)
            events.append(self._event(ActuatorEventKind.LEFTOVER_CLEANED, "?",
                                      f"unreadable intent file ignored: {exc}"))
            data = None
        if data and self.mode == "active":
            pid, argv = data.get("pid"), data.get("argv") or []
            if pid and argv and runner.process_matches(pid, data.get("create_time") or 0,
                                                       argv[0]):
                runner.stop_foreign(pid, self.cfg.stop_timeout)
                self._wait(lambda k: k.disabled, self.cfg.disable_timeout)
                events.append(self._event(
                    ActuatorEventKind.LEFTOVER_CLEANED, data["action"]["scheduler"],
                    f"stopped pid {pid} left running by a previous scxd"))
            originals = data.get("fair_originals") or {}
            if originals:
                self.fair_originals = dict(originals)
                self._restore_fair_tunables()
                events.append(self._event(ActuatorEventKind.LEFTOVER_CLEANED, "fair",
                                          f"restored fair tunables {sorted(originals)}"))
        self._persist(self.current, None, "idle")
        k = self.kernel()
        if k.enabled:
            self.external_ops = k.ops
            events.append(self._event(ActuatorEventKind.TAKEOVER, k.ops or "?",
                                      f"a scheduler not started by scxd runs: {k.ops}"))
        self.events.extend(events)
        return events

    # -- fair tunables ----------------------------------------------------------------------
    def _apply_fair(self, action: Action) -> None:
        writes = self.catalog.get(action.scheduler).debugfs_writes(action.values)
        for name, value in writes.items():
            rel = f"{SCHED_DEBUGFS_DIR}/{name}"
            try:
                if name not in self.fair_originals:
                    self.fair_originals[name] = read_fair_tunable(self.host, name)
                self.host.write(rel, value)
                got = self.host.read(rel).strip()
            except OSError as exc:
                raise _Failure(FailureReason.DEBUGFS_WRITE_FAILED, f"sched/{name}: {exc}") from None
            if name != "preempt" and got != value:
                raise _Failure(FailureReason.DEBUGFS_WRITE_FAILED,
                               f"sched/{name} reads {got!r} after writing {value!r}")
        for name in [n for n in self.fair_originals if n not in writes]:
            self._restore_one(name)

    def _restore_one(self, name: str) -> None:
        value = self.fair_originals.pop(name)
        try:
            self.host.write(f"{SCHED_DEBUGFS_DIR}/{name}", value)
        except OSError as exc:
            log.error("could not restore fair tunable %s=%s: %s", name, value, exc)

    def _restore_fair_tunables(self) -> None:
        for name in list(self.fair_originals):
            self._restore_one(name)

    # -- apply ----------------------------------------------------------------------------
    def verified(self, action: Action, k: KernelState | None = None) -> bool:
        """Does the kernel run exactly ``action`` (as started by us) right now?"""
        k = k or self.kernel()
        if not action.same_as(self.current):
            return False
        if action.is_fair:
            return k.disabled and self.proc is None
        prefix = self.catalog.get(action.scheduler).ops_prefix
        return (self.proc is not None and self.proc.alive() and k.runs(prefix)
                and k.enable_seq == self.our_seq)

    def apply(self, action: Action, force: bool = False) -> ApplyResult:
        """Make the kernel run ``action``; ``force`` restarts it even when it already runs."""
        start = time.monotonic()
        previous = self.current
        if self.mode == "advisory":
            self.current = self.intended = action
            res = ApplyResult(SwapOutcome.ADVISORY, action, None, previous,
                              SwapTimings(None, None, time.monotonic() - start),
                              detail=f"would apply: {action.label()} ({self.advisory_reason})",
                              kernel=self.kernel().as_dict())
            self.history.append(res)
            return res
        k = self.kernel()
        if not force and self.verified(action, k):
            res = ApplyResult(SwapOutcome.NOOP, action, action, previous,
                              SwapTimings(0.0, 0.0, time.monotonic() - start),
                              kernel=k.as_dict())
            return res  # no-ops are not swaps: not recorded in history
        self.intended = action
        if self._foreign(k):
            if self.cfg.takeover == "respect":
                res = ApplyResult(SwapOutcome.BLOCKED, action, None, previous,
                                  SwapTimings(None, None, time.monotonic() - start),
                                  reason=FailureReason.EXTERNAL_SCHEDULER,
                                  detail=f"{k.ops} was started outside scxd; takeover = "
                                  "respect leaves it alone", kernel=k.as_dict())
                self.history.append(res)
                return res
            self._reclaim()
        try:
            to_disabled, to_enabled = self._swap(action, start)
        except _Failure as fail:
            return self._roll_back(action, previous, fail, start)
        self.last_good = action
        self.external_ops = None
        self._retry_at = None  # whatever was pending is superseded by this verified swap
        res = ApplyResult(SwapOutcome.APPLIED, action, action, previous,
                          SwapTimings(to_disabled, to_enabled, time.monotonic() - start),
                          kernel=self.kernel().as_dict())
        self.history.append(res)
        log.info("swap %s → %s in %.3f s", previous.label(), action.label(),
                 res.timings.total_s)
        return res

    def _foreign(self, k: KernelState) -> bool:
        if not k.enabled:
            return False
        if self.proc is None:
            return True
        prefix = self.catalog.get(self.current.scheduler).ops_prefix
        return not k.runs(prefix) or (self.our_seq is not None and k.enable_seq != self.our_seq)

    def _stop_current(self) -> float:
        """Stop whatever runs; returns seconds until the kernel said disabled."""
        t0 = time.monotonic()
        if self.proc is not None:
            proc, self.proc = self.proc, None
            proc.stop(self.cfg.stop_timeout)
        if self._wait(lambda k: k.disabled, self.cfg.disable_timeout) is None:
            k = self.kernel()
            raise _Failure(FailureReason.DISABLE_TIMEOUT, f"state still {k.state} (ops {k.ops}) "
                           f"{self.cfg.disable_timeout:.1f} s after stopping")
        self.current = self.catalog.fair() if not self.current.is_fair else self.current
        self.our_seq = None
        return time.monotonic() - t0

    def _swap(self, action: Action, start: float) -> tuple[float, float | None]:
        to_disabled = self._stop_current()
        if action.is_fair:
            self._apply_fair(action)
            self.current = action
            self._persist(action, None, "running")
            return to_disabled, None
        self._restore_fair_tunables()
        self.current = self.catalog.fair()
        path = self.probed.binary(action.scheduler) if action.scheduler in \
            self.probed.availability else ""
        if not path:
            reason = self.probed.availability.get(action.scheduler)
            raise _Failure(FailureReason.BINARY_MISSING, reason.reason if reason else
                           f"{action.scheduler} is not in the probed catalog")
        seq_before = self.kernel().enable_seq
        self._remember_kmsg()  # a disable reason found later belongs to this start
        argv = (path, *action.argv)
        self._persist(action, None, "starting")
        t_start = time.monotonic()
        try:
            proc = self._spawn(argv, self.cfg.log_bytes)
        except OSError as exc:
            raise _Failure(FailureReason.SPAWN_FAILED, f"{path}: {exc.strerror or exc}") from None
        self._persist(action, proc, "starting")
        prefix = self.catalog.get(action.scheduler).ops_prefix
        k = self._wait(lambda k: k.enable_seq > seq_before
                       and ((k.enabled and k.ops is not None) or k.disabled),
                       self.cfg.start_timeout, proc)
        if k is not None and k.disabled:
            # Enabled and ejected between two polls (the watchdog under load can fire before
            # the first poll sees it): the loader is told by the kernel and exits with its
            # reason, unless it is one that restarts at the kernel's request.
            k = self._wait(lambda k: k.enabled and k.enable_seq > seq_before
                           and k.ops is not None, self.cfg.stop_timeout, proc)
            if k is None and proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(self.cfg.stop_timeout)
            if k is None and proc.poll() is None:
                proc.stop(self.cfg.stop_timeout)
                why = self._kernel_reason() or proc.output.exit_line or "no reason given"
                raise _Failure(FailureReason.EJECTED_AT_START,
                               f"{action.label()} was enabled and disabled again before it "
                               f"was confirmed: {why}", proc.popen.returncode,
                               proc.output.text(20))
        if k is None:
            rc = proc.poll()
            if rc is None:
                proc.stop(self.cfg.stop_timeout)
                self._wait(lambda k: k.disabled, self.cfg.disable_timeout)
                raise _Failure(FailureReason.ENABLE_TIMEOUT, f"{action.label()} not enabled after "
                               f"{self.cfg.start_timeout:.1f} s (state "
                               f"{self.kernel().state})", proc.popen.returncode,
                               proc.output.text(20))
            proc.stop(0.1)
            tail = proc.output.text(20)
            self._wait(lambda k: k.disabled, self.cfg.disable_timeout)
            if any(m in tail for m in EBUSY_MARKERS):
                raise _Failure(FailureReason.EBUSY, f"{action.label()} lost the struct_ops "
                               f"attach to another scheduler (exit code {rc})", rc, tail)
            kernel_reason = self._kernel_reason()
            exit_line = proc.output.exit_line
            why = [r for r in (kernel_reason, exit_line)
                   if r and not any(c in r for c in CLEAN_EXIT_REASONS)]
            if why:
                # Ejected while enabling (e.g. the watchdog under load): the loader exits 0,
                # the kernel says why.
                raise _Failure(FailureReason.EJECTED_AT_START,
                               f"{action.label()} was ejected by the kernel before it was "
                               f"confirmed: {'; '.join(why)}", rc, tail)
            raise _Failure(FailureReason.EXITED, f"{action.label()} exited with code {rc} "
                           "before the kernel enabled it", rc, tail)
        if not k.runs(prefix):
            proc.stop(self.cfg.stop_timeout)
            self._wait(lambda k: k.disabled, self.cfg.disable_timeout)
            raise _Failure(FailureReason.OPS_MISMATCH, f"kernel runs ops {k.ops!r}, expected "
                           f"prefix {prefix!r}", proc.popen.returncode, proc.output.text(20))
        self.proc = proc
        self.our_seq = k.enable_seq
        self.current = action
        self._persist(action, proc, "running")
        self._remember_kmsg()
        return to_disabled, time.monotonic() - t_start

    def _roll_back(self, action: Action, previous: Action, fail: _Failure,
                   start: float) -> ApplyResult:
        log.warning("swap to %s failed (%s: %s); rolling back", action.label(), fail.reason,
                    fail.detail)
        outcome = SwapOutcome.FELL_BACK_TO_FAIR
        running: Action | None = None
        for target in (self.last_good, self.catalog.fair()):
            if target.same_as(action) and not target.is_fair:
                continue
            try:
                self._swap(target, time.monotonic())
            except _Failure as again:
                log.error("roll back to %s failed too: %s", target.label(), again)
                continue
            running = target
            outcome = (SwapOutcome.FELL_BACK_TO_FAIR if target.is_fair
                       else SwapOutcome.ROLLED_BACK)
            break
        else:
            outcome = SwapOutcome.FAILED
        if running is not None:
            self.last_good = running
        res = ApplyResult(outcome, action, running, previous,
                          SwapTimings(None, None, time.monotonic() - start),
                          reason=fail.reason, detail=fail.detail, exit_code=fail.exit_code,
                          output_tail=fail.tail, kernel=self.kernel().as_dict())
        self.history.append(res)
        return res

    def _reclaim(self) -> None:
        """takeover = reclaim: stop scheduler processes scxd did not start."""
        binaries = {os.path.basename(s.binary) for s in self.catalog if s.binary}
        for pid in self.host.pids():
            comm = self.host.pid_comm(pid)
            if comm and (comm in binaries or comm.startswith("scx_")) and \
                    (self.proc is None or pid != self.proc.pid) and \
                    not self.host.is_kernel_thread(pid):
                log.warning("reclaiming: stopping %s[%d] started outside scxd", comm, pid)
                runner.stop_foreign(pid, self.cfg.stop_timeout)
        self._wait(lambda k: k.disabled, self.cfg.disable_timeout)
        self.external_ops = None

    # -- watch ----------------------------------------------------------------------------
    def _event(self, kind: ActuatorEventKind, scheduler: str, detail: str,
               exit_code: int | None = None) -> ActuatorEvent:
        ev = ActuatorEvent(kind, scheduler, detail, exit_code, self.kernel().as_dict())
        log.warning("actuator event %s: %s — %s", kind, scheduler, detail)
        return ev

    def poll(self) -> list[ActuatorEvent]:
        """Compare the kernel with what scxd believes runs; report and react."""
        if self.mode == "advisory":
            return []
        events: list[ActuatorEvent] = []
        k = self.kernel()
        if self.proc is not None:
            events += self._check_ours(k)
        else:
            if k.enabled and (self.external_ops is None or k.ops != self.external_ops):
                self.external_ops = k.ops
                events.append(self._event(ActuatorEventKind.TAKEOVER, k.ops or "?",
                                          f"{k.ops} enabled outside scxd (enable_seq "
                                          f"{k.enable_seq})"))
                if self.cfg.takeover == "reclaim":
                    res = self.apply(self.intended)
                    kind = (ActuatorEventKind.RECOVERED if res.ok
                            else ActuatorEventKind.RECOVERY_FAILED)
                    events.append(self._event(kind, self.intended.scheduler,
                                              f"reclaim: {res.outcome} {res.reason or ''}".strip()))
            elif not k.enabled and self.external_ops is not None:
                events.append(self._event(ActuatorEventKind.EXTERNAL_STOPPED, self.external_ops,
                                          "the external scheduler is gone"))
                self.external_ops = None
        events += self._maybe_restart()
        self.events.extend(events)
        return events

    def _check_ours(self, k: KernelState) -> list[ActuatorEvent]:
        assert self.proc is not None
        name = self.current.scheduler
        prefix = self.catalog.get(name).ops_prefix
        rc = self.proc.poll()
        ours_running = k.runs(prefix) and k.enable_seq == self.our_seq
        if rc is None and ours_running:
            return []
        # The kernel unregisters a scheduler itself ("unregistered from the main kernel") when
        # CPUs come and go, asking the loader to restart: wait for that, not for an ejection.
        pending = "" if k.runs(prefix) else self._kernel_reason(consume=False)
        if rc is None and (k.runs(prefix) or not k.enabled) and (
                not pending or RESTART_REASON in pending):
            restarted = self._await_self_restart(name, prefix)
            if restarted is not None:
                return [restarted]
            rc = self.proc.poll()
            k = self.kernel()
        if rc is None and k.enabled and not ours_running:
            kind = ActuatorEventKind.TAKEOVER
            detail = f"{k.ops} replaced {name} (enable_seq {k.enable_seq})"
        else:
            # The kernel no longer runs ours.  A dying loader is seen as disabled before it
            # can be reaped: give it the stop grace to finish exiting before judging.
            self._wait(lambda k: k.disabled, self.cfg.disable_timeout)
            deadline = time.monotonic() + self.cfg.stop_timeout
            while rc is None and time.monotonic() < deadline:
                time.sleep(POLL_S)
                rc = self.proc.poll()
            reason = self._kernel_reason()
            exit_line = self.proc.output.exit_line
            k = self.kernel()
            # The kernel's reason decides: a stall, a BPF error or sysrq is an ejection
            # (the loader often exits 0 after it); "unregistered from user space" means
            # the loader itself went away — killed or crashed.
            ejected = any(r for r in (reason, exit_line)
                          if r and not any(c in r for c in CLEAN_EXIT_REASONS))
            kind = (ActuatorEventKind.EJECTED if ejected or rc is None
                    else ActuatorEventKind.CRASHED)
            if k.enabled and not ours_running:
                kind = ActuatorEventKind.TAKEOVER
            how = ("still running" if rc is None else f"killed by signal {-rc}" if rc < 0
                   else f"exit code {rc}")
            detail = "; ".join(x for x in (how, exit_line, reason) if x)
        proc, self.proc = self.proc, None
        proc.stop(self.cfg.stop_timeout)
        tail = proc.output.text(10)
        self.our_seq = None
        self.current = self.catalog.fair()
        ev = self._event(kind, name, detail + (f" | output: {tail.strip()[-300:]}" if tail
                                              and kind != ActuatorEventKind.TAKEOVER else ""), rc)
        if kind == ActuatorEventKind.TAKEOVER:
            self.external_ops = k.ops
        elif kind == ActuatorEventKind.CRASHED:
            now = time.monotonic()
            while self._crash_times and now - self._crash_times[0] > CRASH_WINDOW_S:
                self._crash_times.popleft()
            self._crash_times.append(now)
            n = len(self._crash_times)
            if n <= CRASH_RESTARTS:
                self._retry_at = now + CRASH_BACKOFF_S[min(n, len(CRASH_BACKOFF_S)) - 1]
        return [ev]

    def _await_self_restart(self, name: str, prefix: str) -> ActuatorEvent | None:
        """Loaders restart themselves when the kernel's exit code asks for it (CPU hotplug
        sets SCX_ECODE_ACT_RESTART): the process lives on and the kernel runs our ops again
        with a newer enable_seq.  Adopt that; None when it does not happen (the process
        exits, or nothing re-attaches within start_timeout) and the caller judges."""
        assert self.proc is not None
        old = self.our_seq or 0
        k = self._wait(lambda k: k.runs(prefix) and k.enable_seq > old,
                       self.cfg.start_timeout, self.proc)
        if k is None or self.proc.poll() is not None:
            return None
        reason = self._kernel_reason()
        self.our_seq = k.enable_seq
        self._persist(self.current, self.proc, "running")
        return self._event(ActuatorEventKind.RESTARTED, name,
                           f"the loader restarted itself (enable_seq {old} → {k.enable_seq})"
                           + (f" after: {reason}" if reason else ""))

    def _maybe_restart(self) -> list[ActuatorEvent]:
        if self._retry_at is None or time.monotonic() < self._retry_at:
            return []
        self._retry_at = None
        target = self.intended
        res = self.apply(target)
        kind = (ActuatorEventKind.RECOVERED if res.outcome in (SwapOutcome.APPLIED,
                                                               SwapOutcome.NOOP)
                else ActuatorEventKind.RECOVERY_FAILED)
        return [self._event(kind, target.scheduler, f"restart after crash: {res.outcome}"
                            + (f" ({res.reason}: {res.detail})" if res.reason else ""))]

    def shutdown(self, exit_action: Action | None = None) -> ApplyResult:
        """Leave the exit scheduler (default fair) running, fair tunables restored."""
        self._retry_at = None
        target = exit_action or self.catalog.fair()
        if self.mode == "advisory":
            return self.apply(target)
        res = self.apply(target)
        if target.is_fair:
            self._restore_fair_tunables()
            self._persist(target, None, "stopped")
        return res

    # -- introspection --------------------------------------------------------------------
    def ownership(self) -> Ownership:
        """What scxd started, frozen now (safe to hand to other threads)."""
        alive = self.proc is not None and not self.current.is_fair
        return Ownership(self.mode, self.current, self.catalog.fair(),
                         self.catalog.get(self.current.scheduler).ops_prefix if alive
                         else None, self.our_seq if alive else None)

    def running(self, k: KernelState | None = None) -> Running:
        """What really runs and whether to trust it, from the kernel read now."""
        return running_from(k or self.kernel(), self.ownership())

    def status(self) -> dict:
        k = self.kernel()
        return {
            "mode": self.mode, "advisory_reason": self.advisory_reason,
            "kernel": k.as_dict(), "current": self.current.as_dict(),
            "intended": self.intended.as_dict(), "last_good": self.last_good.as_dict(),
            "verified": self.verified(self.current, k) if self.mode == "active" else False,
            "pid": self.proc.pid if self.proc else None,
            "external_ops": self.external_ops,
            "last_swap": self.history[-1].as_dict() if self.history else None,
        }
