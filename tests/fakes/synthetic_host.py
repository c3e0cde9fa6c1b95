"""A synthetic host whose runqueue latency is *caused* by the scheduler the daemon runs, with a
known expected cost per arm: the world in which off-policy estimates from real daemon journals
are checked against the truth (``tests/test_replay_coverage.py``, ``bench/replay_coverage.py``).

``scxd run`` runs unmodified against a fake host root: the fake sched_ext kernel and fake
loaders of :mod:`tests.fakes`, and a ``/proc`` tree built here from the checked-in snapshot
(``tests/data/host``) plus one workload thread.  Telemetry is the schedstat source
(``telemetry.bpf = "off"``), so the daemon's runqueue latency of a window is the workload
thread's added wait divided by its added switch-ins.

:class:`SyntheticHost` follows the daemon's journal.  When window *w* is journaled — after its
decision was carried out, so the arm that runs next is known (``executed``) — it draws the
workload's phase for window *w + 1* (a two-state Markov chain: phases persist, so a window's
features say something about the next) and adds one window's worth of runqueue waits to the
thread: ``SLICES`` switch-ins with mean wait ``R0_S · exp(μ[arm][phase] + ε)``,
ε ~ N(0, σ²) — ε = 0 and μ = 0 for the fair scheduler, whose windows are the reference.
Between journal records it advances ``/proc/stat`` and ``/proc/loadavg`` at the phase's rates
(busy CPUs, runnable tasks), so the daemon's features tell the phases apart.

Under v1's latency objective (``v1_latency``, which replay recomputes from the journaled
raw terms; in schedstat mode its term is the runqueue mean) a scored window's cost is
log(runqueue mean / the fair scheduler's median) = μ[arm][phase] + ε exactly (the fair
reference is noise-free), so over any set of windows the expected cost of "always arm k" is
the mean of μ[k][phase] over them: the truth is known window by window
(:attr:`SyntheticHost.windows`), and checked — every scored window's recomputed cost must
equal the value written for it.  The current objectives measure nothing in schedstat mode
(their terms need BPF), so the daemon itself scores every window 0 under its ``latency``
objective and its network's greedy arm is arbitrary: the logging policy is ε-greedy around
it, which is all off-policy evaluation needs (every arm has a logged propensity ≥ ε / arms).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scxd.journal import JournalError, decode

SNAPSHOT = Path(__file__).resolve().parents[1] / "data" / "host"
WORKLOAD_PID = 4242
#: Runqueue wait of the fair scheduler per switch-in (s), and switch-ins per window.
R0_S = 0.002
SLICES = 1000
#: Per phase: share of CPU time busy in user mode, and runnable tasks.
PHASES = ((0.30, 1), (0.90, 5))
USER_HZ = 100


@dataclass(frozen=True)
class Truth:
    """The world: μ per arm label (per phase, in cost units), noise, phase persistence."""

    mu: dict[str, tuple[float, float]]
    noise_sd: float = 0.25
    stay: float = 0.85

    def cost(self, label: str, phase: int) -> float:
        try:
            return self.mu[label][phase]
        except KeyError:
            raise KeyError(f"the synthetic host knows no arm {label!r} (knows: "
                           f"{', '.join(self.mu)})") from None


#: The default world over the fake kernel's arms (fair, scx_simple and scx_qmap presets):
#: the best arm differs by phase, so a context-aware logging policy logs unevenly.
DEFAULT_TRUTH = Truth({
    "fair": (0.0, 0.0),
    "scx_simple": (-0.20, 0.30),
    "scx_simple -f": (-0.10, 0.10),
    "scx_qmap": (0.10, -0.20),
    "scx_qmap -s 5000": (0.20, -0.10),
    "scx_qmap -b 8": (0.05, 0.05),
})


@dataclass
class WindowTruth:
    window: int          # the daemon's window id
    arm: str             # label of the arm the journal says runs in it
    phase: int
    epsilon: float
    runq_mean_s: float   # what the window's runqueue latency must come out as


@dataclass
class SyntheticHost:
    root: Path                   # fake host root (``host_root`` of the daemon)
    journal: Path                # the daemon's journal directory
    truth: Truth = DEFAULT_TRUTH
    seed: int = 0
    windows: dict[int, WindowTruth] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.phase = int(self.rng.integers(2))
        self.proc = self.root / "proc"
        self._wait_ns = 0
        self._slices = 0
        self._oncpu_ns = 0
        self._cpu = np.zeros((2, 4))   # per CPU: user, system, idle, iowait (jiffies)
        self._ctxt = 0.0
        self._forks = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="synthetic")
        self._offset = 0
        self._pending = b""
        self._lay_out()

    # -- the tree ---------------------------------------------------------------------------
    def _lay_out(self) -> None:
        if self.proc.is_symlink() or self.proc.exists():
            raise FileExistsError(f"{self.proc} exists: build the fake kernel with "
                                  "real_proc=False")
        shutil.copytree(SNAPSHOT / "proc", self.proc)
        if not (self.root / "sys" / "block").exists():
            shutil.copytree(SNAPSHOT / "sys" / "block", self.root / "sys" / "block")
        task = self.proc / str(WORKLOAD_PID) / "task" / str(WORKLOAD_PID)
        task.mkdir(parents=True)
        status = (SNAPSHOT / "proc/1/status").read_text()
        status = status.replace("process_api", "workload").replace("Pid:\t1",
                                                                     f"Pid:\t{WORKLOAD_PID}")
        status = status.replace("State:\tS (sleeping)", "State:\tR (running)")
        status = status.replace("Threads:\t13", "Threads:\t1")
        (self.proc / str(WORKLOAD_PID) / "status").write_text(status)
        stat = (SNAPSHOT / "proc/1/stat").read_text().replace("1 (process_api) S",
                                                              f"{WORKLOAD_PID} (workload) R")
        (self.proc / str(WORKLOAD_PID) / "stat").write_text(stat)
        self._write_schedstat()
        self._write_system(0.0)

    def _write(self, rel: str, text: str) -> None:
        path = self.proc / rel
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)   # readers see the old or the new file, never half of one

    def _write_schedstat(self) -> None:
        line = f"{self._oncpu_ns} {self._wait_ns} {self._slices}\n"
        for rel in (f"{WORKLOAD_PID}/schedstat", f"{WORKLOAD_PID}/task/{WORKLOAD_PID}/schedstat"):
            self._write(rel, line)

    def _write_system(self, dt: float) -> None:
        busy, running = PHASES[self.phase]
        ticks = dt * USER_HZ
        self._cpu[:, 0] += ticks * busy * 0.9
        self._cpu[:, 1] += ticks * busy * 0.1
        self._cpu[:, 2] += ticks * (1.0 - busy)
        self._ctxt += dt * (200 + 2000 * busy)
        self._forks += dt * 2
        total = self._cpu.sum(axis=0)
        lines = ["cpu  " + self._jiffies(total)]
        lines += [f"cpu{i} " + self._jiffies(c) for i, c in enumerate(self._cpu)]
        lines += [f"ctxt {int(self._ctxt)}", "btime 1795316559",
                  f"processes {int(self._forks)}", f"procs_running {running}",
                  "procs_blocked 0"]
        self._write("stat", "\n".join(lines) + "\n")
        self._write("loadavg", f"{running:.2f} {running:.2f} {running:.2f} {running}/90 "
                    f"{WORKLOAD_PID}\n")

    @staticmethod
    def _jiffies(c: np.ndarray) -> str:
        user, system, idle, iowait = (int(v) for v in c)
        return f"{user} 0 {system} {idle} {iowait} 0 0 0 0 0"

    # -- following the daemon ----------------------------------------------------------------
    def start(self, first_arm: str = "fair") -> None:
        """Write window 0's waits (the daemon starts on ``first_arm``), then follow."""
        self._window(0, first_arm)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _window(self, window: int, arm: str) -> None:
        """Draw window ``window``'s phase and noise and add its runqueue waits."""
        if window > 0 and self.rng.random() > self.truth.stay:
            self.phase = 1 - self.phase
        eps = 0.0 if arm == "fair" else float(self.rng.normal(0.0, self.truth.noise_sd))
        mean_s = R0_S * math.exp(self.truth.cost(arm, self.phase) + eps)
        self._wait_ns += round(mean_s * 1e9) * SLICES
        self._slices += SLICES
        self._oncpu_ns += 10**8
        self._write_schedstat()
        self.windows[window] = WindowTruth(window, arm, self.phase, eps,
                                           round(mean_s * 1e9) * 1e-9)

    def _follow(self) -> None:
        last = time.monotonic()
        path = self.journal / "journal.jsonl"
        while not self._stop.wait(0.002):
            now = time.monotonic()
            if now - last >= 0.02:
                self._write_system(now - last)
                last = now
            try:
                for rec in self._new_records(path):
                    if rec.get("kind") == "window" and rec.get("executed"):
                        self._window(int(rec["id"]) + 1, str(rec["executed"]["label"]))
            except (OSError, KeyError, JournalError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _new_records(self, path: Path) -> list[dict]:
        try:
            with open(path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._pending + data
        *lines, self._pending = data.split(b"\n")
        return [decode(line + b"\n", str(path)) for line in lines if line.strip()]

    # -- what the test reads back --------------------------------------------------------------
    def as_json(self) -> str:
        return json.dumps({str(w): vars(t) for w, t in sorted(self.windows.items())})


# -- one daemon run ------------------------------------------------------------------------------

#: ``scxd run`` against the synthetic host: schedstat telemetry, 1 s windows (default), the latency
#: objective (every window scores 0 in schedstat mode: see the module docstring), the torch
#: network as an ε-greedy logging policy (ε fixed at 0.3), and a guard that never overrides it
#: (no dwell, no budget, no regression guard, no warm-up windows: this world has no swap
#: transient) — so every window is scored and every propensity is the policy's own.
DAEMON_CONFIG = """
state_dir = "{state}"
host_root = "{tmp}/host"
[telemetry]
sample_interval = %(sample)s
window = %(window)s
bpf = "off"
[control]
socket = "{sock}"
[metrics]
address = "127.0.0.1:{port}"
[journal]
fsync = false
[guard]
min_dwell = 0.0
warmup_windows = %(warmup)d
swaps_per_hour = 3600
regression_margin = 10.0
[actuator]
search_path = ["{tmp}/bin"]
start_timeout = 5.0
stop_timeout = 1.0
[policy]
name = "network"
seed = %(seed)d
objective = "latency"
arm_space = "presets"
pretrained = "none"
checkpoint_every = 100000
[policy.network]
exploration = "epsilon"
epsilon_start = %(epsilon)s
epsilon_floor = %(epsilon)s
hidden = 16
"""


@dataclass
class DaemonRun:
    journal: Path
    host: SyntheticHost
    seconds: float
    output: str


def daemon_journal(tmp: Path, seed: int, windows: int, truth: Truth = DEFAULT_TRUTH,
                   epsilon: float = 0.3, warmup: int = 0, window_s: float = 1.0,
                   timeout_per_window: float = 3.0) -> DaemonRun:
    """Run ``scxd run`` on the synthetic host until it journaled ``windows`` windows.

    ``warmup``: the guard's ``warmup_windows``.  This world has no swap transient, so any
    value leaves the truth unchanged; ≥ 1 shows what discarding warm-up windows does to the
    estimators (the windows left are selected by the previous arm).  ``window_s``: the
daemon's window (4 samples each); the host writes a window's waits within milliseconds of
the journal record before it; 1 s windows leave it ample time (at 0.5 s with five daemons
at once a window's waits were once seen a window late: :func:`check_estimates` raises)."""
    from tests.daemon_helper import Daemon
    from tests.fakes import FakeKernel, fake_processes, install_fake, wait_for

    tmp = Path(tmp)
    t0 = time.monotonic()
    with FakeKernel(tmp / "host", real_proc=False) as kernel:
        install_fake(tmp / "bin", "scx_simple", kernel.root, "simple", supports="-f -v -h")
        install_fake(tmp / "bin", "scx_qmap", kernel.root, "qmap",
                     supports="-s -b -H -p -e -t -T -h")
        host = SyntheticHost(kernel.root, tmp / "state" / "journal", truth, seed)
        d = Daemon(tmp, DAEMON_CONFIG % {"seed": seed, "epsilon": epsilon,
                                         "warmup": warmup,
                                         "window": window_s, "sample": window_s / 4})
        try:
            host.start()
            ok = wait_for(lambda: d.ctl("status")["windows"] >= windows,
                          timeout_per_window * windows + 30)
        finally:
            d.stop()
            host.stop()
        output = d.output()
        if not ok or d.proc.returncode != 0:
            raise AssertionError(f"scxd did not journal {windows} windows "
                                 f"(exit {d.proc.returncode}):\n{output[-3000:]}")
        if not wait_for(lambda: not fake_processes(kernel.root), 10):
            raise AssertionError("orphaned fake loaders")
    return DaemonRun(tmp / "state" / "journal", host, time.monotonic() - t0, output)


# -- estimates against the truth -----------------------------------------------------------------

ESTIMATORS = ("ips", "snips", "dr")
#: The objective the truth is known for (see the module docstring).
OBJECTIVE = "v1_latency"


@dataclass
class ArmCheck:
    arm: str
    truth: float                                   # mean of μ[arm][phase] over the rows
    estimates: dict[str, tuple]    # estimator → (value, lo, hi); None = undefined
    matched: int                                   # rows that logged this arm

    def covered(self, estimator: str) -> bool:
        return covers(self.estimates[estimator], self.truth)


def covers(estimate: tuple[float, float | None, float | None], truth: float) -> bool:
    """(value, lo, hi) covers ``truth``; an undefined interval (no window matched) does
    not."""
    _, lo, hi = estimate
    return lo is not None and hi is not None and lo <= truth <= hi


def check_estimates(run: DaemonRun, bootstrap: int = 200, seed: int = 0,
                    alpha: float = 0.05) -> list[ArmCheck]:
    """Read the run's journal the way ``scxd replay evaluate --journal`` does and estimate
    "always arm k" for every arm, with (1 − ``alpha``) intervals; the truth is μ[k][phase]
    averaged over the evaluated rows' windows.  Raises AssertionError when a scored window's
    cost is not the one the synthetic host caused (then the truth would not be known)."""
    from scxd.replay import offpolicy
    from scxd.replay.build import table_from_log
    from scxd.replay.logs import load_logs
    from scxd.replay.offpolicy import FixedTarget

    table = table_from_log(load_logs(journals=[run.journal]), OBJECTIVE)
    rows = offpolicy.Rows.of(table, OBJECTIVE)
    ids = table.column("window_id")[rows.index]
    unknown = [int(w) for w in ids if int(w) not in run.host.windows]
    if unknown:
        raise AssertionError(f"windows {unknown[:5]} were never written by the host")
    for w, y in zip(ids, rows.logged.outcomes, strict=True):
        t = run.host.windows[int(w)]
        want = t.epsilon + run.host.truth.cost(t.arm, t.phase)
        if abs(y - want) > 1e-6:
            raise AssertionError(f"window {w}: cost {y:+.6f} but the host caused "
                                 f"{want:+.6f} ({t})")
    phases = np.array([run.host.windows[int(w)].phase for w in ids])
    targets = {f"fixed:{label}": FixedTarget(f"fixed:{label}", k, len(table.arms))
               for k, label in enumerate(table.arm_labels)}
    ev = offpolicy.evaluate_targets(rows, targets, n_bootstrap=bootstrap, seed=seed,
                                    alpha=alpha)
    out = []
    for k, label in enumerate(table.arm_labels):
        mu = np.array([run.host.truth.cost(label, p) for p in (0, 1)])
        est = ev.targets[f"fixed:{label}"].as_dict()["estimates"]
        out.append(ArmCheck(label, float(mu[phases].mean()),
                            {e: (est[e]["value"], *est[e]["ci95"]) for e in ESTIMATORS},
                            int((rows.logged.actions == k).sum())))
    return out
