"""The controller: control verbs, their parameters, and what ``status`` means.

The daemon's loop thread owns the guard, the actuator and the live metrics; this module is
how everything else reaches them:

* **Verbs** (:class:`Verb`) are scx_loader's (``get``, ``list``, ``start``, ``switch``,
  ``stop``, ``restart``, ``restore``) plus scxd's (``status``, ``freeze``, ``thaw``, ``pin``,
  ``unpin``, ``history``, ``explain``, ``ping``).  Each declares whether it changes anything
  (the transport's permission check) and the parameters it takes; bad parameters are refused
  with a message naming the parameter before anything runs.
* **Reads** are answered on the caller's thread from a :class:`View` the loop publishes
  after every tick and command (an immutable snapshot), plus the kernel's state read at
  that moment.  They never touch loop-owned objects.
* **Changes** are queued and executed on the loop thread (:meth:`Controller.drain`, run by
  the ticker's wake-up), so the actuator keeps one owner.  A full queue answers "busy".
* **Swaps** — the policy's, the user's, the regression guard's — all go through
  :meth:`Controller.apply`, which keeps the guard's books, the history and the metrics.

``status`` says what the *kernel* runs (the actuator's :func:`~scxd.actuator.running_from`
judged against what scxd started), what scxd intends and why, and the guard's state.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scxd import __version__
from scxd.actuator import (
    Actuator,
    ActuatorEvent,
    ApplyResult,
    Ownership,
    SwapOutcome,
    running_from,
)
from scxd.catalog import Action, CatalogError
from scxd.catalog_view import catalog_json
from scxd.control import ControlError, RpcError
from scxd.guard import Guard, GuardEvent, Verdict
from scxd.metrics import MetricsBoard, MetricsState
from scxd.probe import ProbedCatalog

log = logging.getLogger("scxd.controller")

#: A change waits at most this long for the loop (a swap with roll back fits well inside).
COMMAND_TIMEOUT_S = 90.0
#: Changes queued beyond this are answered "busy" at once.
MAX_PENDING_COMMANDS = 8
HISTORY_LEN = 500
MAX_FREEZE_S = 366 * 86400.0
MAX_NAME = 64
MAX_ARGS, MAX_ARG_LEN = 64, 256


class Verb(StrEnum):
    """Every control method, with whether it changes anything and the params it takes."""

    PING = "ping"
    STATUS = "status"
    GET = "get"
    LIST = "list"
    HISTORY = "history"
    EXPLAIN = "explain"
    FREEZE = "freeze"
    THAW = "thaw"
    PIN = "pin"
    SWITCH = "switch"
    START = "start"
    UNPIN = "unpin"
    STOP = "stop"
    RESTORE = "restore"
    RESTART = "restart"

    @property
    def changes(self) -> bool:
        return self not in _READS

    @property
    def params(self) -> frozenset[str]:
        return _PARAMS.get(self, frozenset())


_READS = frozenset({Verb.PING, Verb.STATUS, Verb.GET, Verb.LIST, Verb.HISTORY, Verb.EXPLAIN})
_CHOICE = frozenset({"scheduler", "mode", "args"})
_PARAMS = {Verb.HISTORY: frozenset({"n"}), Verb.FREEZE: frozenset({"for"}),
           Verb.PIN: _CHOICE, Verb.SWITCH: _CHOICE, Verb.START: _CHOICE}
#: method name → does it change anything (what the control transport needs to know).
METHODS: dict[str, bool] = {v.value: v.changes for v in Verb}


def invalid(message: str) -> ControlError:
    return ControlError(RpcError.INVALID_PARAMS, message)


def parse_duration(value: Any) -> float | None:
    """``30``, ``"30s"``, ``"5m"``, ``"1h"``, ``"2d"`` → seconds; None/""/0 → no expiry.

    Refuses what is not a finite positive duration of at most a year (NaN, ∞, negatives,
    booleans, garbage) with a message that names the value.
    """
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a duration: {value!r} (use e.g. 90, 30s, 5m, 2h)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        mult = units.get(text[-1:])
        number = text[:-1] if mult else text
        try:
            seconds = float(number) * (mult or 1)
        except ValueError:
            raise ValueError(f"not a duration: {value!r} (use e.g. 90, 30s, 5m, 2h)") from None
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    if seconds > MAX_FREEZE_S:
        raise ValueError(f"duration {value!r} is longer than a year; leave it out to freeze "
                         "until thawed")
    return seconds


def check_params(verb: Verb, params: Mapping[str, Any]) -> None:
    """Refuse unknown parameters and wrongly typed ones, naming them (any thread)."""
    unknown = sorted(set(params) - verb.params)
    if unknown:
        allowed = ", ".join(sorted(verb.params)) or "none"
        raise invalid(f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                      f"{', '.join(map(repr, unknown))} for {verb} (allowed: {allowed})")
    if verb is Verb.HISTORY:
        n = params.get("n", 20)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= HISTORY_LEN:
            raise invalid(f"n must be an integer 1..{HISTORY_LEN}, got {_short(n)}")
    elif verb is Verb.FREEZE:
        try:
            parse_duration(params.get("for"))
        except ValueError as exc:
            raise invalid(str(exc)) from None
    elif verb in (Verb.PIN, Verb.SWITCH, Verb.START):
        name = params.get("scheduler")
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise invalid(f"scheduler (-s NAME) is required: a name of 1..{MAX_NAME} "
                          f"characters, got {_short(name)}")
        mode, args = params.get("mode"), params.get("args")
        if mode is not None and (not isinstance(mode, str) or len(mode) > MAX_NAME):
            raise invalid(f"mode must be a name of at most {MAX_NAME} characters, got "
                          f"{_short(mode)}")
        if args is not None and (not isinstance(args, list) or len(args) > MAX_ARGS or not all(
                isinstance(a, str) and len(a) <= MAX_ARG_LEN for a in args)):
            raise invalid(f"args must be a list of at most {MAX_ARGS} strings of at most "
                          f"{MAX_ARG_LEN} characters, got {_short(args)}")
        if mode and args:
            raise invalid("give a mode (-m) or arguments (-a), not both")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class Command:
    verb: Verb
    params: dict[str, Any]
    future: Future = field(default_factory=Future)


@dataclass(frozen=True)
class View:
    """What the loop last published for other threads (never mutated after)."""

    status: dict[str, Any]
    ownership: Ownership | None
    history: tuple[dict[str, Any], ...]
    explain: dict[str, Any]


class Controller:
    def __init__(self, probed: ProbedCatalog, guard: Guard, actuator: Actuator,
                 metrics: MetricsState, board: MetricsBoard,
                 journal: Callable[[dict[str, Any]], None], wake: Callable[[], None],
                 context: Callable[[], Mapping[str, Any]]):
        self.probed = probed
        self.catalog = probed.catalog
        self.guard = guard
        self.actuator = actuator
        self.metrics = metrics              # the loop-owned live state
        self.board = board
        self.journal = journal
        self.wake = wake                    # make the loop run drain() now
        self.context = context              # the daemon's part of status (policy, windows…)
        self.explain: dict[str, Any] = {}   # set by the daemon when a window closes
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_LEN)
        self.commands: queue.Queue[Command] = queue.Queue(MAX_PENDING_COMMANDS)
        self._view = View({}, None, (), {})
        self._view_lock = threading.Lock()
        self._closed = False

    # -- swaps and what follows them (loop thread) ---------------------------------------
    def apply(self, action: Action, guard_events: list[GuardEvent]) -> ApplyResult:
        """Swap to ``action`` keeping the guard's books (dwell, failures, panic)."""
        before = self.actuator.current
        result = self.actuator.apply(action)
        now = time.monotonic()
        self.guard.on_swap(now, not self.actuator.current.same_as(before), before,
                           self.catalog.fair())
        guard_events += self.guard.on_apply_result(
            result.ok, f"{result.reason}: {result.detail}", now,
            fell_to_fair=result.outcome == SwapOutcome.FELL_BACK_TO_FAIR)
        self._note_swap(result)
        if self.guard.panic and not self.actuator.current.is_fair:
            self._note_swap(self.actuator.apply(self.catalog.fair()))
            self.guard.on_swap(time.monotonic(), True)
        return result

    def _note_swap(self, result: ApplyResult) -> None:
        if result.outcome != SwapOutcome.NOOP:
            self.history.append({"type": "swap", **result.as_dict()})
            self.metrics.observe_swap(result.outcome, result.timings.total_s)
        if result.reason is not None:
            self.metrics.actuator_failures[result.reason] += 1

    def carry_out(self, verdict: Verdict) -> tuple[list[GuardEvent], ApplyResult | None]:
        """Apply what the verdict says; every guard event of the window, and the swap."""
        events = list(verdict.events)
        swap = self.apply(verdict.apply, events) if verdict.apply is not None else None
        self.note_guard(events)
        return events, swap

    def note_guard(self, events: list[GuardEvent]) -> None:
        """History + metrics for guard events (each counted exactly once, here)."""
        for e in events:
            self.history.append({"type": "guard", "at": time.time(), **e.as_dict()})
            self.metrics.guard_events[e.kind] += 1

    def note_actuator(self, events: list[ActuatorEvent]) -> list[dict[str, Any]]:
        """History, metrics and guard warm-up for actuator events; their journal dicts."""
        out = []
        for ev in events:
            d = ev.as_dict()
            out.append(d)
            self.history.append({"type": "actuator", **d})
            self.metrics.actuator_events[ev.kind] += 1
            if ev.kind.kernel_changed:
                self.guard.on_kernel_change(time.monotonic())  # warm up again, no budget
        return out

    # -- publishing (loop thread) -----------------------------------------------------------
    def publish(self) -> None:
        """Hand the current state to other threads: status, history, explain, metrics.

        The daemon's ``context()`` is its part of ``status`` (policy, telemetry, windows,
        why, reference, uptime); the rest comes from the actuator and the guard.
        """
        now = time.monotonic()
        act = self.actuator
        guard = self.guard.status(now)
        status = {
            "version": __version__, "mode": act.mode, "advisory_reason": act.advisory_reason,
            "current": act.current.as_dict(), "intended": act.intended.as_dict(),
            "current_since_s": guard["on_current_for_s"],
            "last_good": act.last_good.as_dict(), "pid": act.proc.pid if act.proc else None,
            "external_ops": act.external_ops,
            "frozen": guard["frozen"], "pinned": guard["pinned"], "guard": guard,
            "last_swap": act.history[-1].as_dict() if act.history else None,
            **self.context(),
        }
        view = View(status, act.ownership(), tuple(self.history), self.explain)
        with self._view_lock:
            self._view = view
        k = act.kernel()
        m = self.metrics
        m.scheduler = self._labels(act.current if act.mode == "active" else self.catalog.fair())
        m.intended = self._labels(act.current)
        m.kernel_state = k.state if k.present else "unavailable"
        m.kernel_enable_seq = k.enable_seq
        m.frozen = guard["frozen"]
        m.pinned = guard["pinned"] is not None
        self.board.publish(m)

    @staticmethod
    def _labels(a: Action) -> dict[str, str]:
        return {"scheduler": a.scheduler, "args": " ".join(a.argv), "preset": a.preset}

    def view(self) -> View:
        with self._view_lock:
            return self._view

    def status(self) -> dict[str, Any]:
        """Any thread: the loop's last published status + what the kernel runs now."""
        view = self.view()
        snap = dict(view.status)
        k = self.actuator.kernel()  # reads /sys only; no loop-owned state
        snap["kernel"] = k.as_dict()
        if view.ownership is not None:
            snap["running"] = running_from(k, view.ownership).as_dict()
        return snap

    # -- the control socket (connection threads) ----------------------------------------------
    def handle_request(self, method: str, params: dict[str, Any], peer: Any = None) -> Any:
        """The control transport's handler: ``method`` is known, the peer authorised."""
        verb = Verb(method)
        check_params(verb, params)
        if not verb.changes:
            return self._read(verb, params)
        if self._closed:
            raise ControlError(RpcError.BUSY, "scxd is shutting down")
        cmd = Command(verb, params)
        try:
            self.commands.put_nowait(cmd)
        except queue.Full:
            raise ControlError(RpcError.BUSY, f"scxd is busy: {MAX_PENDING_COMMANDS} changes "
                               "are already waiting; try again") from None
        self.wake()
        try:
            return cmd.future.result(timeout=COMMAND_TIMEOUT_S)
        except FutureTimeout:
            raise ControlError(RpcError.TIMEOUT, f"scxd did not finish {verb} within "
                               f"{COMMAND_TIMEOUT_S:.0f} s; it may still complete — see "
                               "scxctl history") from None

    def _read(self, verb: Verb, params: Mapping[str, Any]) -> Any:
        if verb is Verb.PING:
            return {"pong": True, "version": __version__}
        if verb is Verb.STATUS:
            return self.status()
        if verb is Verb.GET:
            st = self.status()
            cur = st["current"]
            return {"scheduler": cur["scheduler"], "args": cur["args"],
                    "mode": cur["preset"] or "default", "running": st["running"],
                    "kernel": st["kernel"], "advisory": st["mode"] == "advisory"}
        if verb is Verb.LIST:
            return {"schedulers": catalog_json(self.probed)}
        if verb is Verb.HISTORY:
            n = params.get("n", 20)
            return {"entries": list(self.view().history[-n:])}
        # Verb.EXPLAIN
        return self.view().explain or {"note": "no window has closed yet"}

    # -- executing changes (loop thread) ----------------------------------------------------
    def drain(self) -> None:
        """Execute queued changes (each publishes what it changed before it answers)."""
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return
            if cmd.future.done():  # the caller gave up waiting
                continue
            try:
                cmd.future.set_result(self._execute(cmd.verb, cmd.params))
            except ControlError as exc:
                cmd.future.set_exception(exc)
            except (CatalogError, ValueError) as exc:
                cmd.future.set_exception(invalid(str(exc)))
            except Exception as exc:  # a bug must fail this request, never the loop
                log.exception("control command %s failed", cmd.verb)
                cmd.future.set_exception(ControlError(
                    RpcError.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}"))
                self.publish()  # whatever it changed before failing

    def close(self) -> None:
        """Refuse new changes and fail the queued ones (shutdown)."""
        self._closed = True
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return
            if not cmd.future.done():
                cmd.future.set_exception(ControlError(RpcError.BUSY, "scxd is shutting down"))

    def resolve(self, params: Mapping[str, Any]) -> Action:
        """``-s NAME [-m MODE | -a ARGS]`` → an action (scx_loader's spelling accepted)."""
        name = params["scheduler"]
        if name not in self.catalog and f"scx_{name}" in self.catalog:
            name = f"scx_{name}"
        if name not in self.catalog:
            raise invalid(f"unknown scheduler {name!r} (known: "
                          f"{', '.join(s.name for s in self.catalog)})")
        spec = self.catalog.get(name)
        mode, args = params.get("mode"), params.get("args")
        if args:
            return self.catalog.action_from_args(name, args)
        if mode and mode not in spec.presets:
            if mode != "auto":  # scx_loader's default mode
                raise invalid(f"{name} has no mode {mode!r} (modes: "
                              f"{', '.join(spec.presets)})")
            mode = "default"
        return self.catalog.action(name, preset=mode or None)

    def _execute(self, verb: Verb, params: dict[str, Any]) -> Any:
        now = time.monotonic()
        events: list[GuardEvent] = []
        result: ApplyResult | None = None
        if verb is Verb.FREEZE:
            events.append(self.guard.freeze(now, parse_duration(params.get("for")), "scxctl"))
        elif verb is Verb.THAW:
            events.append(self.guard.thaw())
        elif verb in (Verb.PIN, Verb.SWITCH, Verb.START, Verb.STOP):
            action = self.catalog.fair() if verb is Verb.STOP else self.resolve(params)
            avail = self.probed.availability.get(action.scheduler)
            if avail is not None and not avail.available:
                raise ControlError(RpcError.FAILED, f"{action.scheduler} is not available "
                                   f"here: {avail.reason}")
            events.append(self.guard.pin(action))
            result = self.apply(action, events)
            if not result.ok:
                # A pin that cannot run must not be retried every window: drop it and
                # leave what the roll back verified.
                events.append(self.guard.unpin())
        elif verb is Verb.UNPIN:
            events.append(self.guard.unpin())
        elif verb is Verb.RESTORE:
            if self.guard.pinned is not None:
                events.append(self.guard.unpin())
            if self.guard.frozen:
                events.append(self.guard.thaw())
        elif verb is Verb.RESTART:
            result = self.actuator.apply(self.actuator.current, force=True)
            self.guard.on_kernel_change(time.monotonic())
            self._note_swap(result)
        self.note_guard(events)
        self.journal({"kind": "event", "event": f"control:{verb}", "at": time.time(),
                      "params": params, "guard": [e.as_dict() for e in events],
                      "swap": result.as_dict() if result else None})
        self.publish()
        out = self.status()
        out["result"] = result.as_dict() if result else None
        if result is not None and not result.ok:
            raise ControlError(RpcError.FAILED, f"{verb} failed: {result.outcome} "
                               f"({result.reason}: {result.detail})", out)
        return out
