"""``scxd run``: the composition root and the tick loop.

Wires telemetry → windows → features → policy → guard → actuator → journal + metrics, plus
the controller behind the control socket and sd_notify.  It is the only module that imports
many stages; what they mean lives with them: control verbs and status in
:mod:`scxd.controller`, what really runs in :mod:`scxd.actuator`, which windows count and
against what in :mod:`scxd.scorer`.

Threads: the loop thread (this module's :meth:`Daemon.run`, driven by one
:class:`~scxd.clock.Ticker`) owns every stage and the live metrics.  The control server's
connection threads and the /metrics thread only read snapshots the loop publishes after
each tick and command; changes they ask for are executed on the loop thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scxd import __version__
from scxd.actuator import Actuator
from scxd.catalog import CatalogError, build_catalog
from scxd.clock import Ticker
from scxd.config import ConfigError, Settings, load_config
from scxd.control import ControlServer
from scxd.controller import METHODS, Controller
from scxd.decide import DecisionPath
from scxd.features import featurize, schema_header
from scxd.guard import Guard
from scxd.histogram import WindowHistogram
from scxd.hostfs import HostFS
from scxd.journal import JournalWriter, window_measurements
from scxd.metrics import MetricsBoard, MetricsServer, MetricsState, make_registry
from scxd.notify import Notifier
from scxd.observe import samples_per_window
from scxd.policy import Decision
from scxd.policy import registry as policies
from scxd.policy.arms import ArmSet
from scxd.policy.base import PolicyEnv
from scxd.probe import ProbedCatalog, probe_catalog
from scxd.reward import window_terms
from scxd.scorer import Score, Scorer
from scxd.service import RunMarker, setting
from scxd.telemetry.sampler import Sampler, TelemetryUnavailable
from scxd.types import Window
from scxd.window import Windower

log = logging.getLogger("scxd")
#: One line per window (``scxd run --quiet`` turns it off; the unit runs quiet).
window_log = logging.getLogger("scxd.window")
SHUTDOWN_BUDGET_S = 5.0
#: Settings that only take effect at start-up (a reload reports them, keeps the old ones).
RESTART_ONLY = ("telemetry", "metrics", "control", "host_root", "state_dir", "schedulers")


class Daemon:
    def __init__(self, settings: Settings, config_path: str | None = None,
                 overrides: Mapping[str, Any] | None = None,
                 notifier: Notifier | None = None):
        self.settings = settings
        self.config_path = config_path
        self.overrides = dict(overrides or {})  # command-line flags: they win on reload too
        self.host = HostFS(settings.host_root)
        self.state_dir = Path(settings.state_dir)
        self.ticker = Ticker(settings.telemetry.sample_interval, on_wake=self._serve)
        self.reload_requested = False
        # The caller's, when it already told systemd about the phases before this one.
        self.notifier = notifier or Notifier()
        # Owned by the loop thread; scrapes read copies published to the board.
        self.metrics = MetricsState(version=__version__)
        self.board = MetricsBoard(self.metrics)
        self.pending_events: list[dict[str, Any]] = []
        self.last_decision: Decision | None = None
        self.started_wall = time.time()
        self.window_id = 0
        self.control: ControlServer | None = None
        self.metrics_server: MetricsServer | None = None
        self.journal: JournalWriter | None = None
        self.sampler: Sampler | None = None
        self.marker = RunMarker(self.state_dir)
        self._build(settings)

    # -- wiring -------------------------------------------------------------------------------
    def _build(self, s: Settings) -> None:
        self.notifier.starting("probing the schedulers")
        try:
            catalog = build_catalog(s.scheduler_overrides())
        except CatalogError as exc:
            raise ConfigError(str(exc)) from None
        self.probed: ProbedCatalog = probe_catalog(
            catalog, s.actuator.search_path, self.host,
            on_probe=lambda name: self.notifier.starting(f"probing {name}"))
        self.catalog = self.probed.catalog
        self.arm_set = ArmSet.from_catalog(self.probed, s.policy.arm_space,
                                           policies.model_arm_keys(s.policy))
        self.arms = self.arm_set.actions()
        self.notifier.starting("loading the policy")
        try:
            self.policy = self._make_policy(s)
            self.exit_action = self.catalog.action(s.actuator.exit_scheduler)
        except (ValueError, CatalogError) as exc:
            raise ConfigError(str(exc)) from None
        self.policy_note = policies.restore(self.policy, s.policy, self.state_dir)
        self.checkpoint_saved_at: float | None = None
        self.guard = Guard(s.guard, current_since=time.monotonic())
        self.scorer = Scorer(s.policy.objective, self.catalog.fair())
        self.path = DecisionPath(self.policy, self.guard, self.arm_set, self.scorer)
        self.actuator = Actuator(self.probed, self.host, s.actuator, self.state_dir)
        self.controller = Controller(self.probed, self.guard, self.actuator, self.metrics,
                                     self.board, self._journal, self.ticker.poke,
                                     self._status_context)
        self.metrics.mode = self.actuator.mode
        self.metrics.policy = self.policy.name
        self.metrics.objective = s.policy.objective

    def _make_policy(self, s: Settings):
        seed = s.policy.seed if s.policy.seed >= 0 else int.from_bytes(os.urandom(4), "little")
        env = PolicyEnv(self.arm_set, seed=seed, probed=self.probed,
                        window_s=s.telemetry.window)
        policy = policies.make_policy(s.policy, env)
        log.info("policy %s (seed %d) over %d arms, arm set %s", policy.name, seed,
                 len(self.arm_set), self.arm_set.hash)
        return policy

    def save_policy(self) -> None:
        """Checkpoint the learner (atomic); a failure is logged, never fatal."""
        try:
            if policies.save(self.policy, self.state_dir) is not None:
                self.checkpoint_saved_at = time.time()
        except OSError as exc:
            log.error("policy checkpoint failed: %s", exc)

    def start(self) -> None:
        s = self.settings
        self.notifier.starting("recovering what a previous run left")
        with setting("state_dir", s.state_dir):
            self.marker.acquire()  # before anything touches the state or the kernel
            previous = self.marker.previous()
            recovered = self.controller.note_actuator(self.actuator.recover())
            self.marker.begin(__version__)
        self.pending_events += recovered
        self.notifier.starting("opening the telemetry (compiling the BPF programs)")
        self.sampler = Sampler(s.telemetry, self.host)
        self.sampler.open()
        health = self.sampler.health
        self.metrics.telemetry_mode = health.mode
        self.metrics.telemetry_degraded = health.degraded
        self.windower = Windower(s.telemetry.sample_interval)
        self.windower.start(time.monotonic(), time.time())
        self.per_window = samples_per_window(s.telemetry.window, s.telemetry.sample_interval)
        if s.journal.enabled:
            with setting("state_dir", s.state_dir):
                self.journal = JournalWriter(
                    self.state_dir / "journal", self._journal_header(),
                    s.journal.max_file_bytes, s.journal.max_files, s.journal.fsync)
            self._journal({"kind": "event", "event": "start", "at": time.time(),
                           "version": __version__, "mode": self.actuator.mode,
                           "telemetry": health.as_dict(), "policy": self.policy.name})
        if previous is not None:
            what = "; ".join(f"{e['kind']} {e['scheduler']}: {e['detail']}"
                             for e in recovered) or "nothing was left to undo"
            log.warning("%s; recovered: %s", previous.describe(), what)
            self._journal({"kind": "event", "event": "unclean_exit", "at": time.time(),
                           "previous": previous.as_dict(), "recovered": recovered})
        if s.metrics.enabled:
            with setting("metrics.address", s.metrics.address):
                self.metrics_server = MetricsServer(s.metrics.address,
                                                    make_registry(self.board))
        self.controller.publish()  # before the first client can ask
        with setting("control.group", s.control.group):
            self.control = ControlServer(
                s.control.socket, self.controller.handle_request, METHODS,
                group=s.control.group, group_can_change=s.control.group_can_change,
                max_request_bytes=s.control.max_request_bytes,
                max_connections=s.control.max_connections,
                connections_per_user=s.control.connections_per_user,
                idle_timeout=s.control.idle_timeout, request_timeout=s.control.request_timeout,
                on_request=self.board.count_request)
        with setting("control.socket", s.control.socket):
            self.control.start()
        if self.notifier.watchdog_interval:
            self.ticker.every(self.notifier.watchdog_interval, self.notifier.watchdog)
        release_heap()  # BPF compilation (LLVM) and torch's start-up leave freed heap behind
        self.notifier.ready(self._status_line())
        log.info("scxd %s running: mode %s (%s), telemetry %s, policy %s, %d arms", __version__,
                 self.actuator.mode, self.actuator.advisory_reason or "sched_ext present",
                 health.mode, self.policy.name, len(self.arms))
        log.info("started in %s", self.notifier.startup_report())

    def _journal_header(self) -> dict[str, Any]:
        return {**schema_header(), "host": socket.gethostname(),
                "kernel": os.uname().release, "scxd_version": __version__,
                "mode": self.actuator.mode, "objective": self.settings.policy.objective,
                "window_s": self.settings.telemetry.window,
                "arm_set": self.arm_set.header(), "policy": self.policy.name,
                "sample_interval_s": self.settings.telemetry.sample_interval}

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        for tick in self.ticker:
            self._tick(closes_window=tick % self.per_window == 0)

    def _serve(self) -> None:
        """The ticker woke us between ticks: control changes, reload."""
        self.controller.drain()
        if self.reload_requested:
            self.reload()

    def _tick(self, closes_window: bool) -> None:
        assert self.sampler is not None
        sample = self.sampler.sample(closes_window=closes_window)
        self.metrics.telemetry_errors = self.sampler.health.errors.copy()
        self.metrics.collector_cpu_seconds += sample.collector_cpu_s
        if sample.sched is not None:
            self.metrics.collector_bpf_seconds += sample.sched.bpf_run_time_ns / 1e9
        self.pending_events += self.controller.note_actuator(self.actuator.poll())
        window = self.windower.add(sample)
        if window is not None:
            self.on_window(window)
        self.controller.publish()

    # -- one window -----------------------------------------------------------------------------
    def on_window(self, window: Window) -> None:
        t0 = time.perf_counter()
        features = featurize(window)
        previous = self.actuator.current
        # Rewards belong to what the kernel really ran (the actuator's answer), and only
        # once the guard's warm-up after a swap is over (the scorer's rules).
        running = self.actuator.running()
        score = self.path.score(window_terms(window), running)
        decision, verdict = self.path.decide(features, previous, time.monotonic())
        decided_s = time.perf_counter() - t0
        guard_events, swap = self.controller.carry_out(verdict)
        t1 = time.perf_counter()
        c = score.cost
        measured = window_measurements(window, features)
        wrec, _ = self.path.record(
            at=time.time(), window_id=self.window_id, features=features, running=running,
            score=score, choice=self.path.choice(decision, verdict, self.actuator.current),
            extra={
                **{k: v for k, v in measured.items() if k not in ("features", "terms")},
                "eligible": [a.label() for a in self.arms],
                "decision": decision.as_dict(),
                "previous": previous.label(),
                "intended": self.actuator.current.label(), "mode": self.actuator.mode,
                "verdict": verdict.why, "swap": swap.as_dict() if swap else None,
                "swapped": bool(swap and swap.ok and swap.outcome in ("applied", "advisory")),
                "unscored": score.why_unscored or None,
                "cost_ratios": c.ratios if c else None,
                "reference": self.scorer.as_dict(),
                "guard": [e.as_dict() for e in guard_events],
                "events": self.pending_events,
            })
        record = wrec.to_journal()
        record["decision_seconds"] = decided_s
        record["update_seconds"] = time.perf_counter() - t1
        self.pending_events = []
        self._journal(record)
        self.marker.alive()
        window_log.info("%s", window_line(record, window.metrics))
        self.window_id += 1
        if self.window_id % self.settings.policy.checkpoint_every == 0:
            self.save_policy()
            release_heap()
        self.last_decision = decision
        self.controller.explain = {
            "window_id": record["id"], "at": record["at"], "decision": decision.as_dict(),
            "executed": record["executed"], "arms": self._arm_table(decision),
            "mode": decision.mode, "policy_state": self.policy_note, "basis": self._basis(),
            "verdict": verdict.why, "guard": record["guard"],
            "features": features.as_dict(), "missing_features": list(features.missing),
            "quality": record["quality"], "terms": score.terms, "cost": record["cost"],
            "reference": record["reference"], "warmup": record["warmup"],
        }
        self._update_metrics(window, decision, score, decided_s)
        self.notifier.status(self._status_line())

    def _arm_table(self, decision: Decision) -> list[dict[str, Any]]:
        """Every eligible arm: probability, estimated value (reward, −cost) and its
        uncertainty, most probable first."""
        rows = []
        for key, p in decision.distribution.items():
            arm = self.arm_set.get(key) if key in self.arm_set else None
            rows.append({"arm": arm.label if arm else key, "key": key, "probability": p,
                         "value": decision.values.get(key),
                         "uncertainty": decision.uncertainty.get(key)})
        return sorted(rows, key=lambda r: (-r["probability"], -(r["value"] or -1e9)))

    def _basis(self) -> str:
        """What the policy's values rest on (advisory mode measures only the fair
        scheduler: every other arm's value is the pretrained prior's)."""
        if self.actuator.mode == "advisory":
            return ("prior-based: advisory mode runs only the fair scheduler, so the values "
                    "of the other arms come from the policy's prior (" + self.policy_note +
                    "), not from this machine")
        return "learnt online on this machine from " + self.policy_note

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

    def _update_metrics(self, window: Window, decision: Decision, score: Score,
                        decided_s: float) -> None:
        m = self.metrics
        m.windows += 1
        if score.cost is not None:
            m.windows_scored += 1
            m.reward = score.cost.reward
            m.cost_ratio = dict(score.cost.ratios)
        m.decisions[(decision.policy, decision.explore)] += 1
        m.decision_seconds.observe(decided_s)
        m.action_probability = {(self.arm_set.get(k).label if k in self.arm_set else k, k): p
                                for k, p in decision.distribution.items()}
        m.explored.append(1.0 if decision.explore else 0.0)
        st = decision.stats
        m.policy_epsilon = float(st.get("epsilon") or st.get("floor") or 0.0)
        m.policy_entropy = float(st.get("entropy", 0.0))
        m.policy_losses = {k.removesuffix("_loss"): float(v) for k, v in st.items()
                           if k.endswith("_loss")}
        m.policy_updates = int(getattr(self.policy, "updates", 0))
        m.policy_changes = int(st.get("changes", 0))
        m.policy_novelty = float(st["novelty_ratio"]) if "novelty_ratio" in st else None
        m.policy_novel = float(st["novel"]) if "novel" in st else None
        m.checkpoint_saved_at = self.checkpoint_saved_at
        for name in WindowHistogram:
            h = getattr(window, name)
            if h is not None:
                m.histograms[name] = m.histograms[name] + h
        m.last = {k: window.metrics[k] for k in (
            "turnaround_avg_s", "response_avg_s", "runq_latency_p99_s", "fairness_cv",
            "T_cpu_busy_avg") if k in window.metrics}

    # -- status ---------------------------------------------------------------------------------
    def _status_context(self) -> dict[str, Any]:
        """The daemon's part of ``scxctl status`` (the controller adds the rest)."""
        return {
            "why": self.last_decision.reason if self.last_decision else "no window yet",
            "policy": {"name": self.policy.name, "version": self.policy.version,
                       "objective": self.settings.policy.objective,
                       "arms": len(self.arm_set), "arm_set": self.arm_set.hash,
                       "state": self.policy_note},
            "telemetry": self.sampler.health.as_dict() if self.sampler else {},
            "windows": self.window_id, "uptime_s": time.time() - self.started_wall,
            "reference": self.scorer.as_dict(),
        }

    def _status_line(self) -> str:
        cur = self.actuator.current.label()
        extra = " (advisory)" if self.actuator.mode == "advisory" else ""
        flags = " frozen" if self.guard.frozen else ""
        flags += " pinned" if self.guard.pinned else ""
        return f"{cur}{extra}{flags}; {self.window_id} windows"

    # -- reload and shutdown -------------------------------------------------------------------
    def reload(self) -> None:
        self.reload_requested = False
        self.notifier.reloading()
        try:
            new = load_config(self.config_path, self.overrides)
            policies.entry(new.policy.name)
            self.catalog.action(new.actuator.exit_scheduler)
            policy = self._make_policy(new) if new.policy != self.settings.policy else None
        except (ConfigError, ValueError, CatalogError) as exc:
            log.error("SIGHUP: invalid configuration, keeping the running one:\n%s", exc)
            self._journal({"kind": "event", "event": "reload_failed", "at": time.time(),
                           "error": str(exc)})
            self.notifier.send(READY=1, STATUS="reload failed; old configuration kept")
            return
        needs_restart = [k for k in RESTART_ONLY if getattr(new, k) != getattr(self.settings, k)]
        if policy is not None:
            # Learned state survives a reload: checkpoint the old learner, then give the new
            # one the newest state it can use (its own checkpoint, else pretrained).
            self.save_policy()
            self.policy = self.path.policy = policy
            self.path.joiner.reset()
            self.policy_note = policies.restore(self.policy, new.policy, self.state_dir)
        self.guard.cfg = new.guard
        self.actuator.cfg = new.actuator
        self.scorer.objective = new.policy.objective
        self.exit_action = self.catalog.action(new.actuator.exit_scheduler)
        self.settings = new
        self.metrics.policy = self.policy.name
        self.metrics.objective = new.policy.objective
        msg = "configuration reloaded" + (f"; restart needed for {', '.join(needs_restart)}"
                                          if needs_restart else "")
        log.info(msg)
        self._journal({"kind": "event", "event": "reload", "at": time.time(), "note": msg})
        self.controller.publish()
        self.notifier.send(READY=1, STATUS=msg)

    def request_stop(self, *_: Any) -> None:
        self.ticker.halt()

    def request_reload(self, *_: Any) -> None:
        self.reload_requested = True
        self.ticker.poke()

    def shutdown(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        self.notifier.stopping("restoring the exit scheduler")
        if not self.marker.held:  # another scxd owns this state: touch nothing of it
            log.info("scxd stopped before it started")
            return
        self.controller.close()
        if self.control is not None:
            self.control.close()
        self.save_policy()
        result = self.actuator.shutdown(self.exit_action)
        if self.sampler is not None:
            self.sampler.close()
        self._journal({"kind": "event", "event": "stop", "at": time.time(),
                       "exit_scheduler": self.exit_action.label(), "result": result.as_dict()})
        if self.journal is not None:
            self.journal.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.marker.end()
        left = deadline - time.monotonic()
        log.info("scxd stopped: %s restored (%s)%s", self.exit_action.label(), result.outcome,
                 "" if left >= 0 else f"; shutdown took {SHUTDOWN_BUDGET_S - left:.1f} s")


def release_heap() -> None:
    """Give freed heap pages back to the kernel (glibc's malloc_trim; a no-op elsewhere).

    Compiling the BPF program with LLVM and importing torch free a lot of memory that glibc
    keeps mapped; trimming at start-up lowers the daemon's steady RSS, and trimming again at
    every checkpoint returns what the windows since have freed (measured side by side with
    and without by ``bench/policy_cost.py --baseline``)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, loaded once (None where libc is not glibc)."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL("libc.so.6").malloc_trim
    return None


def window_line(record: Mapping[str, Any], metrics: Mapping[str, float]) -> str:
    """``scxd run``'s per-window line: what ran, what the policy wanted and what came of
    it, the cost, and three figures of the load."""
    d = record["decision"]
    swap = record.get("swap")
    if swap:
        outcome = swap["outcome"] + (f" ({swap['reason']})" if swap.get("reason") else "")
        did = f"→ {d['arm']}: {outcome}"
        if swap["outcome"] == "advisory":
            did = f"would apply {d['arm']} (advisory)"
    elif d["arm"] == record["intended"]:
        did = "keeps it"
    else:
        did = f"wants {d['arm']}, held: {record['verdict']}"
    cost = record.get("cost")
    score = (f"cost {cost:+.3f} ({record['objective']})" if cost is not None else
             f"unscored ({record.get('unscored') or 'warm-up'})")

    def fig(key: str, fmt: str, scale: float = 1.0) -> str:
        v = metrics.get(key)
        return format(v * scale, fmt) if v is not None else "–"

    return (f"window {record['id']}: running {record['running']} | {d['policy']} {did} | "
            f"{score} | busy {fig('T_cpu_busy_avg', '.0f')}% runq/cpu "
            f"{fig('runq_per_core', '.2f')} rq p99 {fig('runq_latency_p99_s', '.0f', 1e6)} µs")


def run_daemon(settings: Settings, config_path: str | None = None,
               overrides: Mapping[str, Any] | None = None,
               notifier: Notifier | None = None) -> int:
    """``scxd run``: returns the process exit code."""
    try:
        daemon = Daemon(settings, config_path, overrides, notifier)
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
    except (TelemetryUnavailable, RuntimeError, OSError) as exc:  # StartupError names it
        log.error("cannot start: %s", exc)
        daemon.shutdown()
        return 1
    try:
        daemon.run()
    finally:
        daemon.shutdown()
    return 0
