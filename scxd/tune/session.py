"""A tuning run from start to finish: baselines, search, confirmation, outputs — resumable.

The order of work is a pure function of what ``trials.jsonl`` already holds
(:meth:`Tuner.next_step`), so an interrupted run resumes exactly where it stopped:

1. baseline round 1 — the fair scheduler and the tuned scheduler's defaults (order
   alternates between rounds so neither always runs first);
2. search trials proposed by the optimiser, with a baseline round again every
   ``baseline_every`` trials so drift over the run shows;
3. early stop once, judged by the recent trials, the remaining budget has less than
   ``stop_probability`` chance of beating the best by more than one standard error
   (:func:`scxd.tune.stats.chance_to_beat`);
4. a last baseline round, then a confirmation run of the best configuration.

Whatever happens — the end, Ctrl-C, SIGTERM, an exception — the actuator restores the fair
scheduler (and fair tunables) and the outputs are written for what was measured.  If the
process itself is killed, the scheduler child dies with it (``PR_SET_PDEATHSIG``) and the
actuator's intent file in ``DIR/state`` lets the next ``--resume`` undo the rest.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import optuna

from scxd import __version__
from scxd.actuator import Actuator
from scxd.catalog import Action, Catalog, CatalogError, SchedulerSpec, build_catalog
from scxd.config import Settings
from scxd.hostfs import SCHED_EXT_DIR, HostFS
from scxd.probe import ProbedCatalog, probe_catalog
from scxd.tune.benchmark import Benchmark
from scxd.tune.optimizer import (
    OptimizerError,
    SchedulerOptimizer,
    startup_trials_for,
)
from scxd.tune.records import (
    RUN_JSON,
    TrialLog,
    TrialRecord,
    read_run,
    write_json,
)
from scxd.tune.report import Analysis, analyze, write_outputs
from scxd.tune.space import DEFAULT_GRID_POINTS, SearchSpace
from scxd.tune.stats import chance_to_beat, pooled_noise, summarize
from scxd.tune.trial import TrialRunner

TESTBED_HINT = "scxd-testbed exec -- scxd tune"


class TuneError(RuntimeError):
    """The run cannot start or go on; the message says why and what to do."""


class TuneUsageError(TuneError):
    """The run is mis-specified (space, benchmark, options): nothing was started."""


class NoSchedExt(TuneError):
    """This kernel has no sched_ext."""


class Interrupted(Exception):
    """SIGTERM/SIGHUP during a run (Ctrl-C is KeyboardInterrupt)."""


@dataclass(frozen=True)
class RunOptions:
    """How much to measure and how to search (``run.json`` keeps them for ``--resume``)."""

    budget: int = 20
    repeats: int = 3
    warmup: int = 1
    seed: int = 0
    sampler: str = "tpe"
    grid_points: int = DEFAULT_GRID_POINTS
    baseline_every: int | None = None     # None: max(4, budget // 4)
    confirm_repeats: int | None = None    # None: = repeats; 0: no confirmation
    early_stop: bool = True
    min_trials: int | None = None         # None: max(5, budget // 3)
    stop_probability: float = 0.05

    def __post_init__(self) -> None:
        for name, low in (("budget", 1), ("repeats", 1), ("warmup", 0), ("grid_points", 2)):
            if getattr(self, name) < low:
                raise TuneUsageError(f"{name} must be ≥ {low}, got {getattr(self, name)}")
        if self.baseline_every is not None and self.baseline_every < 1:
            raise TuneUsageError("baseline_every must be ≥ 1")
        if self.confirm_repeats is not None and self.confirm_repeats < 0:
            raise TuneUsageError("confirm_repeats must be ≥ 0")
        if not 0 < self.stop_probability < 1:
            raise TuneUsageError("stop_probability must be between 0 and 1")

    @property
    def every(self) -> int:
        return self.baseline_every or max(4, self.budget // 4)

    @property
    def confirm(self) -> int:
        return self.repeats if self.confirm_repeats is None else self.confirm_repeats

    @property
    def min_before_stop(self) -> int:
        return self.min_trials if self.min_trials is not None else max(5, self.budget // 3)

    def as_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "repeats": self.repeats, "warmup": self.warmup,
                "seed": self.seed, "sampler": self.sampler, "grid_points": self.grid_points,
                "baseline_every": self.every, "confirm_repeats": self.confirm,
                "early_stop": self.early_stop, "min_trials": self.min_before_stop,
                "stop_probability": self.stop_probability}


# -- progress -----------------------------------------------------------------------------------
class Progress:
    """Live progress on a stream: a line per measurement; on a terminal also a transient
    status line (what is running right now)."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._transient = False

    def _clear(self) -> None:
        if self._transient:
            self.stream.write("\r\033[K")
            self._transient = False

    def status(self, text: str) -> None:
        if self.tty:
            self._clear()
            self.stream.write(text[:150])
            self.stream.flush()
            self._transient = True

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()


# -- the run ----------------------------------------------------------------------------------
@dataclass
class Result:
    """What :func:`optimize_scheduler` returns (``analysis`` has every figure)."""

    status: str                       # complete / interrupted / failed
    out_dir: Path
    analysis: Analysis
    stopped: str = ""
    restored: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def best(self):
        return self.analysis.best

    @property
    def best_parameters(self) -> dict[str, Any] | None:
        return dict(self.analysis.best.params) if self.analysis.best else None

    @property
    def baselines(self):
        return {n: v.summary for n, v in self.analysis.baselines.items()}

    @property
    def improvement(self):
        return self.analysis.improvements

    @property
    def trials(self) -> list[TrialRecord]:
        return self.analysis.records


class Tuner:
    """One tuning run in ``out_dir`` with an actuator that can really swap schedulers."""

    def __init__(self, space: SearchSpace, benchmark: Benchmark, out_dir: Path,
                 actuator: Actuator, options: RunOptions, progress: Progress | None = None,
                 resume: bool = False):
        self.space = space
        self.bench = benchmark
        self.out = Path(out_dir)
        self.actuator = actuator
        self.opts = options
        self.progress = progress or Progress(enabled=False)
        self.log = TrialLog(self.out)
        self.spec = space.spec
        self.baseline_names = ["fair"] if self.spec.is_fair else ["fair", "defaults"]
        self.runner = TrialRunner(actuator, benchmark, options.repeats, options.warmup,
                                  self.progress.status)
        self.state: dict[str, Any] = {}
        self._resume = resume
        self._t0 = time.monotonic()

    # -- settings persistence --------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        o = self.opts.as_dict()
        o.pop("budget")
        return {"scheduler": self.spec.name, "space": self.space.as_dict(),
                "benchmark": self.bench.as_dict(), "options": o}

    def _open(self) -> None:
        old = read_run(self.out)
        if old is None:
            if self.out.exists() and (self.out / "trials.jsonl").exists():
                raise TuneError(f"{self.out} holds trials but no {RUN_JSON}: choose another "
                                "--out")
            if self._resume:
                raise TuneError(f"nothing to resume in {self.out} (no {RUN_JSON})")
            self.state = {"created_at": time.time(), "resumed": 0}
            return
        if not self._resume:
            raise TuneError(f"{self.out} already holds a tuning run ({old.get('status')}): "
                            "pass --resume to continue it, or choose another --out")
        mine, theirs = self.identity(), old.get("identity", {})
        diffs = _differences(theirs, mine)
        if diffs:
            raise TuneError(f"--resume: {self.out} was started with different settings: "
                            + "; ".join(diffs[:8]))
        self.state = {k: old.get(k) for k in ("created_at", "stopped", "resumed")}
        self.state["resumed"] = int(self.state.get("resumed") or 0) + 1
        self.log.load()
        for note in self.log.skipped:
            self.progress.line(f"resume: {note}")

    def run_info(self, status: str) -> dict[str, Any]:
        search = [r for r in self.log.records if r.kind == "search"]
        return {
            "status": status, "scheduler": self.spec.name, "budget": self.opts.budget,
            "search_trials": len(search), "stopped": self.state.get("stopped") or "",
            "resumed": self.state.get("resumed", 0), "created_at": self.state.get("created_at"),
            "updated_at": time.time(), "kernel": os.uname().release,
            "scxd_version": __version__, "optuna_version": optuna.__version__,
            **self.opts.as_dict(),
        }

    def _save(self, status: str, **extra: Any) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / RUN_JSON, {**self.run_info(status), "identity": self.identity(),
                                         **extra})

    # -- what to do next ------------------------------------------------------------------------
    def _rounds(self) -> dict[int, list[TrialRecord]]:
        out: dict[int, list[TrialRecord]] = {}
        for r in self.log.records:
            if r.kind == "baseline":
                out.setdefault(r.round, []).append(r)
        return out

    def _round_order(self, rnd: int) -> list[str]:
        return self.baseline_names if rnd % 2 else list(reversed(self.baseline_names))

    def next_step(self) -> Callable[[], None] | None:
        rounds = self._rounds()
        last = max(rounds, default=0)
        if last:
            missing = [b for b in self._round_order(last)
                       if b not in {r.baseline for r in rounds[last]}]
            if missing:
                return lambda: self.baseline(missing[0], last)
        search = [r for r in self.log.records if r.kind == "search"]
        if last == 0:
            return lambda: self.baseline(self._round_order(1)[0], 1)
        finished = bool(self.state.get("stopped")) or len(search) >= self.opts.budget
        if not finished:
            due = 1 + len(search) // self.opts.every
            if last < due:
                return lambda: self.baseline(self._round_order(last + 1)[0], last + 1)
            return self.search
        round_start = min(r.seq for r in rounds[last])
        if search and max(r.seq for r in search) > round_start:
            return lambda: self.baseline(self._round_order(last + 1)[0], last + 1)
        if self.opts.confirm and not any(r.kind == "confirm" for r in self.log.records):
            return self.confirm
        return None

    # -- steps ---------------------------------------------------------------------------------
    def _record(self, kind: str, label: str, action: Action, **kw: Any) -> TrialRecord:
        return TrialRecord(self.log.next_seq(), kind, label, "running", action.scheduler,
                           dict(action.params), dict(kw.pop("sampled", {})), list(action.argv),
                           **kw)

    def action(self, values: dict[str, Any], label: str = "custom") -> Action:
        """The tuned scheduler with exactly these parameter values."""
        return Action(self.spec.name, tuple(sorted(values.items())),
                      tuple(self.spec.argv(values)), label)

    def defaults_action(self) -> Action:
        """The scheduler exactly as it ships (``fixed`` values are part of the search, not
        of this baseline)."""
        return self.action(self.spec.resolve({}), "default")

    def baseline(self, name: str, rnd: int) -> None:
        action = self.actuator.catalog.fair() if name == "fair" else self.defaults_action()
        label = "fair" if name == "fair" else f"{self.spec.name} defaults"
        rec = self._record("baseline", label, action, baseline=name, round=rnd)
        self.runner.measure(action, rec)
        self.log.append(rec)
        self._learn_baseline(rec)
        self._report(rec, f"baseline {rnd}")
        if rnd == 1 and not rec.complete:
            why = f"{rec.state}: {rec.reason} {rec.detail}".strip()
            if name == "fair":
                raise TuneError(f"the benchmark does not work under the fair scheduler, so "
                                f"nothing can be compared: {why}\n{rec.output_tail}")
            raise TuneError(f"{self.spec.name} with its defaults could not be measured: "
                            f"{why}\n{rec.output_tail}")

    def _learn_baseline(self, rec: TrialRecord) -> None:
        """The tuned scheduler's defaults (the fair baseline when fair is tuned) are a point
        of the search space: tell the optimiser (not for grid search, whose bookkeeping
        counts only its own points)."""
        if rec.scheduler != self.spec.name or self.opts.sampler == "grid":
            return
        sample = self.space.defaults_sample()
        if sample is not None and rec.complete:
            self.opt.add_measured(sample, rec.mean)

    def search(self) -> None:
        before = len(self.opt.rejected)
        try:
            s = self.opt.ask()
        except OptimizerError as exc:
            self._stop(str(exc))
            return
        for sampled, why, attrs in self.opt.rejected[before:]:
            rec = TrialRecord(self.log.next_seq(), "infeasible", "rejected", "infeasible",
                              self.spec.name, {}, dict(sampled), [], reason="constraint",
                              detail=why, optuna={"system_attrs": attrs})
            self.log.append(rec)
        rec = self._record("search", f"trial {s.number}", s.action, sampled=s.sampled,
                           number=s.number,
                           optuna={"number": s.optuna_number, "system_attrs": s.system_attrs})
        self.runner.measure(s.action, rec)
        self.opt.tell(s, rec.values if rec.complete else None, rec.reason or rec.state)
        rec.optuna["system_attrs"] = self.opt.told[-1].system_attrs
        self.log.append(rec)
        self._report(rec, f"trial {s.number}/{self.opts.budget}")
        self._maybe_stop()

    def confirm(self) -> None:
        a = self.analysis()
        if a.best is None:
            self.progress.line("no configuration was measured: nothing to confirm")
            rec = TrialRecord(self.log.next_seq(), "confirm", "confirm best", "lost",
                              self.spec.name, {}, {}, [], reason="no_best")
            self.log.append(rec)
            return
        action = self.action(dict(a.best.params))
        rec = self._record("confirm", f"confirm {a.best.label}", action)
        self.runner.measure(action, rec, self.opts.confirm)
        self.log.append(rec)
        self._report(rec, "confirm")

    # -- early stop ------------------------------------------------------------------------------
    def _stop(self, reason: str) -> None:
        self.state["stopped"] = reason
        self.progress.line(f"stopping the search: {reason}")

    def _maybe_stop(self) -> None:
        if not self.opts.early_stop:
            return
        done = [r for r in self.log.records if r.kind == "search" and r.complete]
        searched = len([r for r in self.log.records if r.kind == "search"])
        remaining = self.opts.budget - searched
        if len(done) < self.opts.min_before_stop or remaining <= 0:
            return
        a = self.analysis(importance=False)
        if a.best is None:
            return
        noise = pooled_noise([r.values for r in self.log.records if r.complete])
        margin = noise.within_sd / max(1, self.opts.repeats) ** 0.5
        window = max(5, len(done) // 2)
        recent = [r.mean for r in done[-window:]]
        chance = chance_to_beat(recent, a.best.mean, remaining, margin, a.higher_is_better)
        if chance < self.opts.stop_probability:
            unit = f" {self.bench.unit}" if self.bench.unit else ""
            self._stop(f"after {searched} of {self.opts.budget} trials: the chance that any "
                       f"of the remaining {remaining} beats the best ({a.best.mean:.4g}{unit}) "
                       f"by more than one standard error ({margin:.2g}{unit}) is "
                       f"{100 * chance:.1f}% < {100 * self.opts.stop_probability:g}%")

    # -- reporting --------------------------------------------------------------------------------
    def analysis(self, importance: bool = True) -> Analysis:
        """Figures from the records so far (``importance`` False skips the slow part)."""
        return analyze(self.log.records, self.space, self.bench.metric or "", self.bench.unit,
                       bool(self.bench.higher_is_better), self.opts.repeats, self.opts.seed,
                       importance=importance)

    def _report(self, rec: TrialRecord, tag: str) -> None:
        unit = self.bench.unit
        if rec.complete:
            s = summarize(rec.values)
            hw = f" ± {s.half_width:.2g}" if s.n > 1 else ""
            what = f"{s.mean:.4g}{hw} {unit}".rstrip()
        else:
            what = f"{rec.state} ({rec.reason}): {rec.detail}"[:160]
        best = ""
        if rec.kind == "search":
            a = self.analysis(importance=False)
            if a.best is not None:
                star = " ★" if rec.complete and a.best.records[0].key() == rec.key() else ""
                best = f"  best {a.best.mean:.4g}{star}"
        args = " ".join(rec.argv) or ("(defaults)" if rec.kind != "baseline" else "")
        self.progress.line(f"[{tag}] {rec.label} {args[:60]} → {what}{best}  "
                           f"({rec.seconds:.1f} s; {self._eta()})")

    def _eta(self) -> str:
        """Elapsed time, and the rest estimated from this run's mean time per measurement
        (the search may stop early: then it is less)."""
        elapsed = time.monotonic() - self._t0
        done = [r for r in self.log.records if r.kind != "infeasible"]
        searched = sum(r.kind == "search" for r in done)
        if not done or self.state.get("stopped"):
            return f"{_clock(elapsed)} elapsed"
        per = sum(r.seconds for r in done) / len(done)
        left_search = max(0, self.opts.budget - searched)
        rounds_left = 1 + left_search // self.opts.every
        left = left_search + rounds_left * len(self.baseline_names) + \
            (1 if self.opts.confirm and not any(r.kind == "confirm" for r in done) else 0)
        return f"{_clock(elapsed)} elapsed, ~{_clock(per * left)} left"

    # -- driver ----------------------------------------------------------------------------------
    def run(self) -> Result:
        self._open()
        self.opt = SchedulerOptimizer(
            self.space, direction=self.bench.direction, sampler=self.opts.sampler,
            seed=self.opts.seed, grid_points=self.opts.grid_points,
            startup_trials=startup_trials_for(self.opts.budget))
        self._replay()
        searched = len([r for r in self.log.records if r.kind == "search"])
        self.opt.resume_count(searched)
        self._header(searched)
        status = "interrupted"
        restored: dict[str, Any] = {}
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

        def interrupt(signum: int, _frame: Any) -> None:
            raise Interrupted(signal.Signals(signum).name)
        for s in previous:
            signal.signal(s, interrupt)
        try:
            self._save("running")
            while (step := self.next_step()) is not None:
                step()
                self._save("running")
            status = "complete"
        except (KeyboardInterrupt, Interrupted) as exc:
            self.progress.line(f"interrupted ({exc or 'Ctrl-C'}): continue with --resume")
        except TuneError:
            status = "failed"
            raise
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            res = self.actuator.shutdown()
            restored = res.as_dict()
            k = self.actuator.kernel()
            self.progress.line(f"restored the fair scheduler: {res.outcome} (kernel state "
                               f"{k.state})")
            files: list[str] = []
            a = self.analysis()
            if any(r.complete for r in self.log.records):
                files = write_outputs(self.out, a, self.space, self.bench.as_dict(),
                                      self.run_info(status), self.binary)
            self._save(status, restored=restored)
        result = Result(status, self.out, a, self.state.get("stopped") or "", restored, files)
        self._footer(result)
        return result

    @property
    def binary(self) -> str:
        if self.spec.is_fair or self.spec.name not in self.actuator.probed.availability:
            return ""
        return self.actuator.probed.binary(self.spec.name)

    def _replay(self) -> None:
        """Tell a fresh optimiser what the records hold (a resumed run)."""
        for r in self.log.records:
            if r.kind == "baseline":
                self._learn_baseline(r)
            elif r.kind in ("search", "infeasible"):
                self.opt.add_measured(r.sampled, r.mean if r.complete else None,
                                      (r.optuna or {}).get("system_attrs"),
                                      why_not=r.detail or r.reason,
                                      infeasible=r.kind == "infeasible")

    def _header(self, searched: int) -> None:
        p = self.progress
        b = self.bench
        direction = "higher" if b.higher_is_better else "lower"
        p.line(f"scxd tune: {self.spec.name}, {len(self.space.dims)} parameter(s), budget "
               f"{self.opts.budget} trials × {self.opts.repeats} repeats (+{self.opts.warmup} "
               f"warm-up), sampler {self.opts.sampler}, seed {self.opts.seed}")
        p.line(f"  benchmark: {b.command_text}")
        p.line(f"  metric: {b.metric} via {b.parser} ({direction} is better) → {self.out}")
        for line in self.space.describe():
            p.line(f"    {line}")
        if searched:
            p.line(f"  resuming after {searched} search trial(s)")

    def _footer(self, r: Result) -> None:
        a = r.analysis
        p = self.progress
        if a.best is None:
            p.line("no configuration was measured successfully")
            return
        unit = self.bench.unit
        s = a.best_summary
        p.line(f"best: {a.best.label}: {self.spec.name} {' '.join(a.best.argv)}".rstrip())
        if s is not None:
            p.line(f"  {a.metric} {s.mean:.4g} {unit} [{s.ci_low:.4g}, {s.ci_high:.4g}] "
                   f"(95% CI, {a.best_source})")
        for name, i in a.improvements.items():
            p.line(f"  vs {name}: {i.percent:+.2f}% [{i.ci_low_percent:+.2f}%, "
                   f"{i.ci_high_percent:+.2f}%] — {i.verdict}")
        if r.files:
            p.line(f"  outputs in {r.out_dir}: {', '.join(r.files)}")


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
                 ) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} was {a!r}, now {b!r}")
    return out


# -- composition ----------------------------------------------------------------------------------
def no_sched_ext_message(argv: list[str] | None = None) -> str:
    """The refusal on a kernel without sched_ext, with the test-bed command to use instead
    (the guest sees the host's files read-only: the output directory is passed writable)."""
    release = os.uname().release
    args = list(argv or [])
    out = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--out", "-o")),
               next((a.split("=", 1)[1] for a in args if a.startswith("--out=")), None))
    if out is None and args:
        out = "DIR"
        args += ["--out", out]
    rw = f"--rwdir {shlex.quote(os.path.abspath(out) if out != 'DIR' else out)} " if out else ""
    cmd = f"scxd-testbed exec {rw}-- scxd tune {shlex.join(args)}" if args else \
        f"{TESTBED_HINT} …"
    return (f"scxd tune: this kernel ({release}) has no sched_ext (/sys/kernel/sched_ext is "
            "absent: CONFIG_SCHED_CLASS_EXT is off), so it cannot swap schedulers and there "
            "is nothing to tune.  Run it on a sched_ext kernel (6.12+), or in this project's "
            f"sched_ext test bed (a qemu guest; --rwdir makes the output directory writable "
            f"there):\n    {cmd}")


def daemon_running(settings: Settings) -> bool:
    path = settings.control.socket
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def catalog_with(settings: Settings, scheduler: str | SchedulerSpec) -> tuple[Catalog, str]:
    """The effective catalog (config overrides; a Python-given spec replaces its entry)."""
    try:
        cat = build_catalog(settings.scheduler_overrides())
    except CatalogError as exc:
        raise TuneUsageError(f"configuration: {exc}") from None
    if isinstance(scheduler, SchedulerSpec):
        specs = {s.name: s for s in cat}
        specs[scheduler.name] = scheduler
        return Catalog(specs.values()), scheduler.name
    try:
        cat.get(scheduler)
    except CatalogError as exc:
        raise TuneUsageError(str(exc)) from None
    return cat, scheduler


def open_actuator(settings: Settings, catalog: Catalog, state_dir: Path,
                  argv: list[str] | None = None) -> tuple[Actuator, ProbedCatalog]:
    """An active actuator on this machine, or TuneError saying why not."""
    host = HostFS(settings.host_root)
    if not host.exists(SCHED_EXT_DIR):
        raise NoSchedExt(no_sched_ext_message(argv))
    if daemon_running(settings):
        raise TuneError(f"scxd run is active ({settings.control.socket}) and decides which "
                        "scheduler runs: stop it for the tuning run (systemctl stop scxd) "
                        "and start it again afterwards")
    probed = probe_catalog(catalog, settings.actuator.search_path, host)
    cfg = settings.actuator.model_copy(update={"mode": "active", "takeover": "respect"})
    act = Actuator(probed, host, cfg, state_dir)
    for ev in act.recover():
        if ev.kind != "takeover":
            print(f"scxd tune: {ev.detail}", file=sys.stderr)
    k = act.kernel()
    if k.enabled:
        raise TuneError(f"a sched_ext scheduler that scxd tune did not start is running "
                        f"(ops {k.ops!r}): stop it first (e.g. systemctl stop scx, or stop "
                        "scx_loader); scxd tune restores the fair scheduler when it ends")
    return act, probed
