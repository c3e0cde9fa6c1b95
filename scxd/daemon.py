"""``scxd run``: the composition root and the tick loop.

Wires telemetry → windows → features → policy → guard → actuator → journal + metrics, plus
the control socket and sd_notify.  It is the only module that imports many stages.

The loop waits on an event until the next sample is due, so SIGTERM/SIGINT, SIGHUP and
control requests act at once.  Control requests that change anything are executed on this
thread (the actuator has one owner); reads (status) are served from the control thread using
a snapshot plus a live read of the kernel's state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scxd import __version__
from scxd.actuator import Actuator, ActuatorEvent, ApplyResult
from scxd.catalog import Action, CatalogError, build_catalog
from scxd.catalog_view import catalog_json
from scxd.config import ConfigError, Settings, load_config
from scxd.control import FAILED, INVALID_PARAMS, READ_METHODS, ControlError, ControlServer
from scxd.features import FEATURE_NAMES, SCHEMA_NAME, SCHEMA_VERSION, featurize, schema_doc
from scxd.guard import Guard, GuardEvent
from scxd.hostfs import HostFS
from scxd.journal import JournalWriter, window_measurements
from scxd.metrics import MetricsBoard, MetricsServer, MetricsState, make_registry
from scxd.notify import Notifier
from scxd.observe import samples_per_window
from scxd.policy import Decision, eligible_arms
from scxd.policy.baseline import make_policy
from scxd.probe import ProbedCatalog, probe_catalog
from scxd.reward import Cost, FairReference, cost, window_terms
from scxd.telemetry.sampler import Sampler, TelemetryUnavailable
from scxd.types import Window
from scxd.window import Windower

log = logging.getLogger("scxd")
COMMAND_TIMEOUT_S = 90.0
SHUTDOWN_BUDGET_S = 5.0


@dataclass
class Command:
    method: str
    params: dict[str, Any]
    future: Future = field(default_factory=Future)


def parse_duration(value: Any) -> float | None:
    """``30``, ``"30s"``, ``"5m"``, ``"1h"`` → seconds; None/""/0 → no expiry."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        mult = units.get(text[-1:])
        number = text[:-1] if mult else text
        try:
            seconds = float(number) * (mult or 1)
        except ValueError:
            raise ValueError(f"not a duration: {value!r} (use e.g. 90, 30s, 5m, 2h)") from None
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


class Daemon:
    def __init__(self, settings: Settings, config_path: str | None = None):
        self.settings = settings
        self.config_path = config_path
        self.host = HostFS(settings.host_root)
        self.state_dir = Path(settings.state_dir)
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = False
        self.commands: queue.Queue[Command] = queue.Queue()
        self.notifier = Notifier()
        # Owned by this (the loop) thread; scrapes read copies published to the board.
        self.metrics = MetricsState(version=__version__)
        self.board = MetricsBoard(self.metrics)
        self.history: deque[dict[str, Any]] = deque(maxlen=500)
        self.pending_events: list[dict[str, Any]] = []
        self.last_explain: dict[str, Any] = {}
        self.last_decision: Decision | None = None
        self.started_wall = time.time()
        self.window_id = 0
        # What control threads may read, published by the loop thread after every tick and
        # command: (status dict, ops prefix of the loader scxd runs, history entries).
        self._status_lock = threading.Lock()
        self._published_status: tuple[dict[str, Any], str | None, tuple[dict, ...]] = (
            {}, None, ())
        self.control: ControlServer | None = None
        self.metrics_server: MetricsServer | None = None
        self.journal: JournalWriter | None = None
        self.sampler: Sampler | None = None
        self._build(settings)

    # -- wiring -------------------------------------------------------------------------------
    def _build(self, s: Settings) -> None:
        try:
            catalog = build_catalog(s.scheduler_overrides())
        except CatalogError as exc:
            raise ConfigError(str(exc)) from None
        self.probed: ProbedCatalog = probe_catalog(catalog, s.actuator.search_path, self.host)
        self.catalog = self.probed.catalog
        self.arms = eligible_arms(self.probed)
        try:
            self.policy = make_policy(s.policy, self.probed)
            self.exit_action = self.catalog.action(s.actuator.exit_scheduler)
        except (ValueError, CatalogError) as exc:
            raise ConfigError(str(exc)) from None
        self.guard = Guard(s.guard, current_since=time.monotonic())
        self.reference = FairReference()
        self.actuator = Actuator(self.probed, self.host, s.actuator, self.state_dir)
        self.metrics.mode = self.actuator.mode
        self.metrics.policy = self.policy.name
        self.metrics.objective = s.policy.objective

    def start(self) -> None:
        s = self.settings
        for ev in self.actuator.recover():
            self._record_actuator_event(ev)
        self.sampler = Sampler(s.telemetry, self.host)
        self.sampler.open()
        health = self.sampler.health
        self.metrics.telemetry_mode = health.mode
        self.metrics.telemetry_degraded = health.degraded
        self.windower = Windower(s.telemetry.sample_interval)
        self.windower.start(time.monotonic(), time.time())
        self.per_window = samples_per_window(s.telemetry.window, s.telemetry.sample_interval)
        if s.journal.enabled:
            self.journal = JournalWriter(
                self.state_dir / "journal", self._journal_header(), s.journal.max_file_bytes,
                s.journal.max_files, s.journal.fsync)
            self._journal({"kind": "event", "event": "start", "at": time.time(),
                           "version": __version__, "mode": self.actuator.mode,
                           "telemetry": health.as_dict(), "policy": self.policy.name})
        if s.metrics.enabled:
            self.metrics_server = MetricsServer(s.metrics.address, make_registry(self.board))
        self._refresh_status()  # published before the first client can ask
        self.control = ControlServer(
            s.control.socket, self.handle_request, group=s.control.group,
            group_can_change=s.control.group_can_change,
            max_request_bytes=s.control.max_request_bytes, on_request=self.board.count_request)
        self.control.start()
        self.notifier.ready(self._status_line())
        log.info("scxd %s running: mode %s (%s), telemetry %s, policy %s, %d arms", __version__,
                 self.actuator.mode, self.actuator.advisory_reason or "sched_ext present",
                 health.mode, self.policy.name, len(self.arms))

    def _journal_header(self) -> dict[str, Any]:
        return {"feature_schema": SCHEMA_NAME, "feature_version": SCHEMA_VERSION,
                "feature_names": list(FEATURE_NAMES), "feature_doc": schema_doc(),
                "host": socket.gethostname(),
                "kernel": os.uname().release, "scxd_version": __version__,
                "mode": self.actuator.mode, "objective": self.settings.policy.objective,
                "window_s": self.settings.telemetry.window,
                "sample_interval_s": self.settings.telemetry.sample_interval}

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        interval = self.settings.telemetry.sample_interval
        start = time.monotonic()
        tick = 0
        next_ping = time.monotonic()
        while not self.stop_event.is_set():
            deadline = start + (tick + 1) * interval
            while not self.stop_event.is_set():
                self._drain_commands()
                if self.reload_requested:
                    self.reload()
                now = time.monotonic()
                if self.notifier.watchdog_interval and now >= next_ping:
                    self.notifier.watchdog()
                    next_ping = now + self.notifier.watchdog_interval
                if now >= deadline:
                    break
                self.wake.wait(min(deadline - now, 0.5))
                self.wake.clear()
            if self.stop_event.is_set():
                break
            tick += 1
            behind = int((time.monotonic() - deadline) // interval)
            if behind > 0:  # skip missed ticks instead of bursting
                tick += behind
            self._tick(closes_window=tick % self.per_window == 0)

    def _tick(self, closes_window: bool) -> None:
        assert self.sampler is not None
        sample = self.sampler.sample(closes_window=closes_window)
        self.metrics.telemetry_errors = self.sampler.health.errors.copy()
        self.metrics.collector_cpu_seconds += sample.collector_cpu_s
        if sample.sched is not None:
            self.metrics.collector_bpf_seconds += sample.sched.bpf_run_time_ns / 1e9
        for ev in self.actuator.poll():
            self._record_actuator_event(ev)
        window = self.windower.add(sample)
        if window is not None:
            self.on_window(window)
        self._refresh_status()

    # -- one window -----------------------------------------------------------------------------
    def on_window(self, window: Window) -> None:
        t0 = time.perf_counter()
        now = time.monotonic()
        objective = self.settings.policy.objective
        features = featurize(window)
        terms = window_terms(window)
        intended_before = self.actuator.current
        # Rewards belong to what the kernel really ran: in advisory mode that is always the
        # fair scheduler, whatever scxd would have applied; in active mode only what the
        # kernel confirms — a foreign scheduler's windows must not feed the fair reference.
        if self.actuator.mode == "advisory":
            running, trusted = self.catalog.fair().label(), True
        elif self.actuator.verified(intended_before):
            running, trusted = intended_before.label(), True
        else:
            ext = self.actuator.external_ops
            running, trusted = (f"external:{ext}" if ext else "unverified"), False
        scored = self.guard.window_scored() and trusted
        window_cost: Cost | None = None
        if scored:
            window_cost = cost(terms, objective, self.reference.means())
            if running == "fair":
                self.reference.add_cost(objective, window_cost.value)
                self.reference.add(terms)
            else:
                self.guard.record_cost(window_cost.value)
        decision = self.policy.decide(features, self.arms)
        verdict = self.guard.review(decision.action, intended_before, self.catalog.fair(),
                                    now, self.reference.baseline_cost(objective))
        decided_s = time.perf_counter() - t0
        guard_events = list(verdict.events)
        swap: ApplyResult | None = None
        if verdict.apply is not None:
            swap = self._apply(verdict.apply, guard_events)
        self._note_guard(guard_events)
        record = {
            "kind": "window", "id": self.window_id, "at": time.time(),
            **window_measurements(window, features),
            "eligible": [a.label() for a in self.arms],
            "decision": decision.as_dict(),
            "running": running, "previous": intended_before.label(),
            "intended": self.actuator.current.label(), "mode": self.actuator.mode,
            "verdict": verdict.why, "swap": swap.as_dict() if swap else None,
            "swapped": bool(swap and swap.ok and swap.outcome in ("applied", "advisory")),
            "warmup": not scored,
            "cost": window_cost.value if window_cost else None,
            "reward": window_cost.reward if window_cost else None,
            "cost_ratios": window_cost.ratios if window_cost else None,
            "objective": objective, "reference": self.reference.as_dict(),
            "guard": [e.as_dict() for e in guard_events],
            "events": self.pending_events, "decision_seconds": decided_s,
        }
        self.pending_events = []
        self._journal(record)
        self.policy.update(record)
        self.window_id += 1
        self.last_decision = decision
        self.last_explain = {
            "window_id": record["id"], "at": record["at"], "decision": decision.as_dict(),
            "verdict": verdict.why, "guard": record["guard"],
            "features": features.as_dict(), "missing_features": list(features.missing),
            "quality": record["quality"], "terms": terms, "cost": record["cost"],
            "reference": record["reference"], "warmup": record["warmup"],
        }
        self._update_metrics(window, decision, window_cost, decided_s)
        self.notifier.status(self._status_line())

    def _apply(self, action: Action, guard_events: list[GuardEvent]) -> ApplyResult:
        before = self.actuator.current
        result = self.actuator.apply(action)
        now = time.monotonic()
        changed = not self.actuator.current.same_as(before)
        self.guard.on_swap(now, changed)
        guard_events += self.guard.on_apply_result(
            result.ok, f"{result.reason}: {result.detail}", now,
            fell_to_fair=result.outcome == "fell_back_to_fair")
        if self.guard.panic and not self.actuator.current.is_fair:
            self.actuator.apply(self.catalog.fair())
            self.guard.on_swap(time.monotonic(), True)
        self.history.append({"type": "swap", **result.as_dict()})
        if result.outcome != "noop":
            self.metrics.observe_swap(result.outcome, result.timings.total_s)
        if not result.ok:
            self.metrics.actuator_failures[result.reason or "unknown"] += 1
        return result

    def _note_guard(self, events: list[GuardEvent]) -> None:
        """History + metrics for guard events (each counted exactly once, here)."""
        for e in events:
            self.history.append({"type": "guard", "at": time.time(), **e.as_dict()})
        for e in events:
            self.metrics.guard_events[e.kind] += 1

    def _record_actuator_event(self, ev: ActuatorEvent) -> None:
        d = ev.as_dict()
        self.pending_events.append(d)
        self.history.append({"type": "actuator", **d})
        self.metrics.actuator_events[ev.kind] += 1
        if ev.kind in ("crashed", "ejected", "recovery_failed", "recovered", "takeover"):
            self.guard.on_kernel_change(time.monotonic())  # warm up again, no budget used

    def _journal(self, record: dict[str, Any]) -> None:
        if self.journal is None:
            return
        try:
            self.journal.append(record)
            self.metrics.journal_records += 1
        except OSError as exc:
            self.journal.errors += 1
            self.metrics.journal_errors += 1
            log.error("journal write failed: %s", exc)

    def _update_metrics(self, window: Window, decision: Decision, window_cost: Cost | None,
                        decided_s: float) -> None:
        m = self.metrics
        m.windows += 1
        if window_cost is not None:
            m.windows_scored += 1
            m.reward = window_cost.reward
            m.cost_ratio = dict(window_cost.ratios)
        m.decisions[(decision.policy, decision.explore)] += 1
        m.decision_seconds.observe(decided_s)
        m.action_probability = dict(decision.distribution)
        for name in ("rq_hist", "resp_hist", "turn_hist"):
            h = getattr(window, name)
            if h is not None:
                setattr(m, name, getattr(m, name) + h)
        m.last = {k: window.metrics[k] for k in (
            "turnaround_avg_s", "response_avg_s", "runq_latency_p99_s", "fairness_cv",
            "T_cpu_busy_avg") if k in window.metrics}

    # -- status ---------------------------------------------------------------------------------
    def _refresh_status(self) -> None:
        now = time.monotonic()
        act = self.actuator
        guard = self.guard.status(now)
        snap = {
            "version": __version__, "mode": act.mode, "advisory_reason": act.advisory_reason,
            "current": act.current.as_dict(), "intended": act.intended.as_dict(),
            "current_since_s": guard["on_current_for_s"],
            "last_good": act.last_good.as_dict(), "pid": act.proc.pid if act.proc else None,
            "external_ops": act.external_ops,
            "why": self.last_decision.reason if self.last_decision else "no window yet",
            "policy": {"name": self.policy.name, "version": self.policy.version,
                       "objective": self.settings.policy.objective},
            "frozen": guard["frozen"], "pinned": guard["pinned"], "guard": guard,
            "telemetry": self.sampler.health.as_dict() if self.sampler else {},
            "last_swap": act.history[-1].as_dict() if act.history else None,
            "windows": self.window_id, "uptime_s": time.time() - self.started_wall,
            "reference": self.reference.as_dict(),
        }
        cur = act.current
        owned_prefix = (self.catalog.get(cur.scheduler).ops_prefix
                        if not cur.is_fair and act.proc is not None else None)
        published = (snap, owned_prefix, tuple(self.history))
        with self._status_lock:
            self._published_status = published
        k = act.kernel()
        self.metrics.scheduler = self._labels(act.current if act.mode == "active"
                                              else self.catalog.fair())
        self.metrics.intended = self._labels(act.current)
        self.metrics.kernel_state = k.state if k.present else "unavailable"
        self.metrics.kernel_enable_seq = k.enable_seq
        self.metrics.frozen = guard["frozen"]
        self.metrics.pinned = guard["pinned"] is not None
        self.board.publish(self.metrics)

    @staticmethod
    def _labels(a: Action) -> dict[str, str]:
        return {"scheduler": a.scheduler, "args": " ".join(a.argv), "preset": a.preset}

    def status(self) -> dict[str, Any]:
        """Safe on any thread: the loop's last published status + the kernel read now."""
        with self._status_lock:
            snap, owned_prefix, _ = self._published_status
        snap = dict(snap)
        k = self.actuator.kernel()  # the kernel's word, read now (files only, no state)
        snap["kernel"] = k.as_dict()
        snap["running"] = self._running_from_kernel(k, snap["current"]["scheduler"],
                                                    owned_prefix)
        return snap

    @staticmethod
    def _running_from_kernel(k, current: str, owned_prefix: str | None) -> dict[str, Any]:
        if not k.present:
            return {"scheduler": "fair", "source": "kernel has no sched_ext"}
        if not k.enabled:
            return {"scheduler": "fair", "source": f"state {k.state}"}
        ours = owned_prefix is not None and k.runs(owned_prefix)
        return {"scheduler": current if ours else None, "ops": k.ops,
                "partial": k.partial, "source": "started by scxd" if ours else
                "not started by scxd"}

    def _status_line(self) -> str:
        cur = self.actuator.current.label()
        extra = " (advisory)" if self.actuator.mode == "advisory" else ""
        flags = " frozen" if self.guard.frozen else ""
        flags += " pinned" if self.guard.pinned else ""
        return f"{cur}{extra}{flags}; {self.window_id} windows"

    # -- control --------------------------------------------------------------------------------
    def handle_request(self, method: str, params: dict[str, Any], peer) -> Any:
        if method in READ_METHODS:
            return self._read(method, params)
        cmd = Command(method, params)
        self.commands.put(cmd)
        self.wake.set()
        try:
            return cmd.future.result(timeout=COMMAND_TIMEOUT_S)
        except TimeoutError:
            raise ControlError(-32002, f"scxd did not finish {method} within "
                               f"{COMMAND_TIMEOUT_S:.0f} s") from None

    def _read(self, method: str, params: dict[str, Any]) -> Any:
        if method == "ping":
            return {"pong": True, "version": __version__}
        if method == "status":
            return self.status()
        if method == "get":
            st = self.status()
            cur = st["current"]
            return {"scheduler": cur["scheduler"], "args": cur["args"],
                    "mode": cur["preset"] or "default", "running": st["running"],
                    "kernel": st["kernel"], "advisory": st["mode"] == "advisory"}
        if method == "list":
            return {"schedulers": catalog_json(self.probed)}
        if method == "history":
            n = params.get("n", 20)
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 500:
                raise ControlError(INVALID_PARAMS, f"n must be an integer 1..500, got {n!r}")
            with self._status_lock:
                entries = self._published_status[2]
            return {"entries": list(entries[-n:])}
        if method == "explain":
            return self.last_explain or {"note": "no window has closed yet"}
        raise ControlError(-32601, f"unknown method {method!r}")

    def _drain_commands(self) -> None:
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                cmd.future.set_result(self._execute(cmd.method, cmd.params))
            except ControlError as exc:
                cmd.future.set_exception(exc)
            except (CatalogError, ValueError) as exc:
                cmd.future.set_exception(ControlError(INVALID_PARAMS, str(exc)))
            except Exception as exc:  # never let a request kill the loop
                log.exception("control command %s failed", cmd.method)
                cmd.future.set_exception(ControlError(FAILED, f"{type(exc).__name__}: {exc}"))
            self._refresh_status()

    def resolve(self, params: dict[str, Any]) -> Action:
        name = params.get("scheduler")
        if not isinstance(name, str) or not name:
            raise ControlError(INVALID_PARAMS, "scheduler (-s NAME) is required")
        if name not in self.catalog and f"scx_{name}" in self.catalog:
            name = f"scx_{name}"
        mode, args = params.get("mode"), params.get("args")
        if mode and args:
            raise ControlError(INVALID_PARAMS, "give a mode (-m) or arguments (-a), not both")
        spec = self.catalog.get(name)
        if args:
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise ControlError(INVALID_PARAMS, "args must be a list of strings")
            return self.catalog.action_from_args(name, args)
        if mode and mode not in spec.presets:
            if mode == "auto":  # scx_loader's default mode
                mode = "default"
            else:
                raise ControlError(INVALID_PARAMS, f"{name} has no mode {mode!r} (modes: "
                                   f"{', '.join(spec.presets)})")
        return self.catalog.action(name, preset=mode or None)

    def _execute(self, method: str, params: dict[str, Any]) -> Any:
        now = time.monotonic()
        events: list[GuardEvent] = []
        result: ApplyResult | None = None
        if method == "freeze":
            try:
                duration = parse_duration(params.get("for"))
            except ValueError as exc:
                raise ControlError(INVALID_PARAMS, str(exc)) from None
            events.append(self.guard.freeze(now, duration, "scxctl"))
        elif method == "thaw":
            events.append(self.guard.thaw())
        elif method in ("pin", "switch", "start", "stop"):
            action = self.catalog.fair() if method == "stop" else self.resolve(params)
            avail = self.probed.availability.get(action.scheduler)
            if avail is not None and not avail.available:
                raise ControlError(FAILED, f"{action.scheduler} is not available here: "
                                   f"{avail.reason}")
            events.append(self.guard.pin(action))
            result = self._apply(action, events)
            if not result.ok:
                # A pin that cannot run must not be retried every window: drop it and
                # leave what the roll back verified.
                events.append(self.guard.unpin())
        elif method == "unpin":
            events.append(self.guard.unpin())
        elif method == "restore":
            if self.guard.pinned is not None:
                events.append(self.guard.unpin())
            if self.guard.frozen:
                events.append(self.guard.thaw())
        elif method == "restart":
            result = self.actuator.apply(self.actuator.current, force=True)
            self.guard.on_kernel_change(time.monotonic())
            self.history.append({"type": "swap", **result.as_dict()})
        self._note_guard(events)
        self._journal({"kind": "event", "event": f"control:{method}", "at": time.time(),
                       "params": params, "guard": [e.as_dict() for e in events],
                       "swap": result.as_dict() if result else None})
        self._refresh_status()
        out = self.status()
        out["result"] = result.as_dict() if result else None
        if result is not None and not result.ok:
            raise ControlError(FAILED, f"{method} failed: {result.outcome} "
                               f"({result.reason}: {result.detail})", out)
        return out

    # -- reload and shutdown -------------------------------------------------------------------
    def reload(self) -> None:
        self.reload_requested = False
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
            make_policy(new.policy, self.probed)
            self.catalog.action(new.actuator.exit_scheduler)
        except (ConfigError, ValueError, CatalogError) as exc:
            log.error("SIGHUP: invalid configuration, keeping the running one:\n%s", exc)
            self._journal({"kind": "event", "event": "reload_failed", "at": time.time(),
                           "error": str(exc)})
            self.notifier.send(READY=1, STATUS="reload failed; old configuration kept")
            return
        needs_restart = [k for k in ("telemetry", "metrics", "control", "host_root",
                                     "state_dir", "schedulers")
                         if getattr(new, k) != getattr(self.settings, k)]
        if new.policy != self.settings.policy:
            self.policy = make_policy(new.policy, self.probed)
        self.guard.cfg = new.guard
        self.actuator.cfg = new.actuator
        self.exit_action = self.catalog.action(new.actuator.exit_scheduler)
        self.settings = new
        self.metrics.policy = self.policy.name
        self.metrics.objective = new.policy.objective
        msg = "configuration reloaded" + (f"; restart needed for {', '.join(needs_restart)}"
                                          if needs_restart else "")
        log.info(msg)
        self._journal({"kind": "event", "event": "reload", "at": time.time(), "note": msg})
        self.notifier.send(READY=1, STATUS=msg)

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()
        self.wake.set()

    def request_reload(self, *_: Any) -> None:
        self.reload_requested = True
        self.wake.set()

    def shutdown(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        self.notifier.stopping("restoring the exit scheduler")
        if self.control is not None:
            self.control.close()
        while not self.commands.empty():
            with contextlib.suppress(queue.Empty):
                self.commands.get_nowait().future.set_exception(
                    ControlError(-32002, "scxd is shutting down"))
        result = self.actuator.shutdown(self.exit_action)
        if self.sampler is not None:
            self.sampler.close()
        self._journal({"kind": "event", "event": "stop", "at": time.time(),
                       "exit_scheduler": self.exit_action.label(), "result": result.as_dict()})
        if self.journal is not None:
            self.journal.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        left = deadline - time.monotonic()
        log.info("scxd stopped: %s restored (%s)%s", self.exit_action.label(), result.outcome,
                 "" if left >= 0 else f"; shutdown took {SHUTDOWN_BUDGET_S - left:.1f} s")


def run_daemon(settings: Settings, config_path: str | None = None) -> int:
    """``scxd run``: returns the process exit code."""
    try:
        daemon = Daemon(settings, config_path)
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    except RuntimeError as exc:
        log.error("cannot start: %s", exc)
        return 1
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    signal.signal(signal.SIGHUP, daemon.request_reload)
    try:
        daemon.start()
    except (TelemetryUnavailable, RuntimeError, OSError) as exc:
        log.error("cannot start: %s", exc)
        daemon.shutdown()
        return 1
    try:
        daemon.run()
    finally:
        daemon.shutdown()
    return 0
