"""The real workloads scxd is judged on, each declared once.

A :class:`Workload` says what it is (description, category), how to run it (command lines for
a duration and a seed), how to read its own figures from its output (its outcome parser,
built on :mod:`scxd.benchparse`), and which of those figures is its **headline** — the one
number a user of that workload would call "better" or "worse" — with its direction.  The
test-bed recorder runs them, the dataset packager tabulates them, ``scxd replay
validate-reward`` ranks schedulers by them, the replay benchmark and tuning read them from
here: nothing else names an outcome key or a direction.

The commands assume the Debian tools (stress-ng 0.15, linux-perf, rt-tests, gcc) and a
writable ``/tmp``.  Every command runs at least ``seconds`` and stops cleanly on SIGINT
(stress-ng and cyclictest print their summaries on SIGINT; loops stop between iterations).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scxd import benchparse

#: Categories a workload belongs to (what the dataset must cover).
CATEGORIES = ("cpu_batch", "build", "ipc", "latency_beside_batch", "io_cpu", "memory", "idle")


class HeadlineError(ValueError):
    """A dataset manifest's headline that cannot be read (the message names the workload)."""


@dataclass(frozen=True)
class Headline:
    """A workload's headline figure: a key of its outcome dict and its direction."""

    metric: str
    higher_is_better: bool
    unit: str
    doc: str
    #: For a figure computed from others (a recording made before it was declared holds
    #: only its inputs): outcome dict → the figure, or None when an input is missing.
    derive: Callable[[Mapping[str, Any]], float | None] | None = field(default=None,
                                                                        compare=False)

    def value(self, outcome: Mapping[str, Any] | None) -> float | None:
        """This headline's figure in a run's outcome dict (recorded or derived), if finite."""
        outcome = outcome or {}
        v = outcome.get(self.metric)
        if v is None and self.derive is not None:
            v = self.derive(outcome)
        if v is None:
            return None
        v = float(v)
        return v if math.isfinite(v) else None

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @classmethod
    def from_manifest(cls, workload: str, declared: Any) -> Headline | None:
        """The headline a dataset manifest carries for ``workload`` (None when it carries
        none): its ``metric`` and its direction, spelled ``direction`` "higher"/"lower" (as
        the recorder writes it) or a boolean ``higher_is_better``.  A metric without a
        direction is an error that names the workload."""
        if not isinstance(declared, Mapping) or not declared.get("metric"):
            return None
        direction = declared.get("direction")
        if direction in ("higher", "lower"):
            higher = direction == "higher"
        elif isinstance(declared.get("higher_is_better"), bool):
            higher = declared["higher_is_better"]
        else:
            raise HeadlineError(f"dataset manifest: the headline of workload {workload!r} "
                             f"declares no direction ('direction': 'higher' or 'lower'; got "
                             f"{direction!r})")
        return cls(str(declared["metric"]), higher, str(declared.get("unit", "")),
                   str(declared.get("doc", "")))

    def goodness(self, value: float) -> float:
        """A number that grows as the outcome improves (for ranking)."""
        return value if self.higher_is_better else -value

    def loss_pct(self, value: float, best: float) -> float:
        """How much worse ``value`` is than ``best``, in percent of ``best`` (≥ 0 when best
        really is the best): fewer ops/s or more seconds, relative to the best arm."""
        if best == 0:
            return 0.0 if value == best else math.inf
        diff = (best - value) if self.higher_is_better else (value - best)
        return 100.0 * diff / abs(best)


Commands = Callable[[int, int], list[list[str]]]   # (seconds, seed) → processes
Parser = Callable[[list[str]], dict[str, Any]]     # one output text per process → figures


@dataclass(frozen=True)
class Workload:
    name: str
    describe: str
    category: str
    commands: Commands
    parse: Parser
    headline: Headline
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"workload {self.name}: unknown category {self.category!r}")

    def outcome(self, outputs: list[str]) -> dict[str, Any]:
        """The workload's own figures from its processes' outputs (missing → absent)."""
        return self.parse(outputs)

    def headline_value(self, outcome: Mapping[str, Any] | None) -> float | None:
        return self.headline.value(outcome)

    def as_dict(self) -> dict[str, Any]:
        h = self.headline
        return {"name": self.name, "describe": self.describe, "category": self.category,
                "headline": {"metric": h.metric, "direction": h.direction, "unit": h.unit,
                             "doc": h.doc}}


# -- command builders ---------------------------------------------------------------------------
def stress(args: list[str], seconds: int, seed: int) -> list[str]:
    return ["stress-ng", *args, "--timeout", f"{seconds}s", "--metrics-brief", "--seed",
            str(seed), "--temp-path", "/tmp"]


def loop(cmd: str, seconds: int) -> list[str]:
    """Repeat ``cmd`` until ``seconds`` pass, printing each iteration's output."""
    return ["sh", "-c", f"end=$(($(date +%s) + {seconds})); "
            f"while [ $(date +%s) -lt $end ]; do {cmd}; done"]


def timed_loop(cmd: str, seconds: int, setup: str = "") -> list[str]:
    """Repeat ``cmd`` (output discarded) until ``seconds`` pass, printing each iteration's
    wall time as ``@@iteration_s S`` (:func:`scxd.benchparse.timed_loop`)."""
    mark = benchparse.TIMED_LOOP_MARK
    return ["sh", "-c", f"{setup}end=$(($(date +%s) + {seconds})); "
            f"while [ $(date +%s) -lt $end ]; do s=$(date +%s%N); {cmd} >/dev/null 2>&1; "
            f"e=$(date +%s%N); t=$(((e - s) / 1000)); "
            f"printf '{mark} %d.%06d\\n' $((t / 1000000)) $((t % 1000000)); done"]


#: A small C file compiled over and over by ``n`` parallel loops: each compile forks and
#: execs cc → cc1 → as (what a build does to a scheduler); the headline is the mean time of
#: one compile.  One file per loop, so the loops never wait for each other.
BUILD_SOURCE = ("int f(int x) { return x * 3 + 1; } "
                "int main(void) { int s = 0; for (int i = 0; i < 100; i++) s += f(i); "
                "return s & 1; }")


def compile_loops(n: int, seconds: int) -> list[list[str]]:
    out = []
    for i in range(n):
        src = f"/tmp/scxd-build-$$-{i}.c"
        setup = f"echo '{BUILD_SOURCE}' > {src}; trap 'rm -f {src}' EXIT; "
        out.append(timed_loop(f"cc -O1 -c {src} -o /dev/null", seconds, setup))
    return out


# -- outcome parsers ----------------------------------------------------------------------------
def parse_stress(outputs: list[str]) -> dict[str, Any]:
    """stress-ng's figures; none from a run stress-ng itself calls failed."""
    out: dict[str, Any] = {}
    for text in outputs:
        if benchparse.stress_ng_failed(text):
            continue
        for name, m in benchparse.stress_ng(text).items():
            out[f"{name}_bogo_ops"] = m.bogo_ops
            out[f"{name}_bogo_ops_per_s"] = m.bogo_ops_per_s
            out[f"{name}_bogo_ops_per_cpu_s"] = round(m.bogo_ops_per_cpu_s, 3)
    return out


def trusted_outcome(run: dict[str, Any]) -> dict[str, Any]:
    """A recorded run with the stress-ng figures dropped when stress-ng said the run failed
    (its output's tail, kept per process, says so; recordings made before
    :func:`parse_stress` learnt to skip them hold those figures).  Other figures — a
    cyclictest's beside a failed stress-ng — stay; ``outcome_dropped`` says what went."""
    tails = run.get("output_tail") or []
    outcome = run.get("outcome")
    if not isinstance(outcome, dict) or not any(
            isinstance(t, str) and benchparse.stress_ng_failed(t) for t in tails):
        return run
    dropped = sorted(k for k in outcome if "bogo_ops" in k or k == IO_CPU_WORK)
    if not dropped:
        return run
    return {**run, "outcome": {k: v for k, v in outcome.items() if k not in dropped},
            "outcome_dropped": {"figures": dropped,
                                "why": "stress-ng: unsuccessful run (metrics check failed)"}}


def parse_iterations(key: str, reader: Callable[[str], list[float]]) -> Parser:
    """Mean (and count) of per-iteration figures read by ``reader`` as ``<key>_mean``."""
    def parse(outputs: list[str]) -> dict[str, Any]:
        values = [v for text in outputs for v in reader(text)]
        if not values:
            return {}
        return {f"{key}_iterations": len(values), f"{key}_mean": sum(values) / len(values)}
    return parse


def parse_cyclictest(outputs: list[str]) -> dict[str, Any]:
    for text in outputs:
        s = benchparse.cyclictest_summary(text)
        if s is not None:
            return {"wakeup_us_avg": s.avg_us, "wakeup_us_max": s.max_us,
                    "wakeup_cycles": s.cycles}
    return {}


def combine(*parsers: Parser) -> Parser:
    def parse(outputs: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in parsers:
            out.update(p(outputs))
        return out
    return parse


def io_cpu_work_rate(figures: Mapping[str, Any]) -> float | None:
    """Geometric mean of the writer's and the CPU hogs' bogo ops/s.

    Both halves of an IO+CPU workload are work the user wants done.  The writer's rate alone
    ranks first a scheduler that trades the hogs' work for the writer's (dataset v2:
    scx_flashyspark --rr-sched, writer 1224 ops/s vs scx_simple's 1065, hogs 183 vs 229; its
    three runs swung from 467 to 1957 writer ops/s).  A geometric mean weighs a given
    percentage change of either half the same, whatever their units."""
    hdd, cpu = figures.get("hdd_bogo_ops_per_s"), figures.get("cpu_bogo_ops_per_s")
    if not isinstance(hdd, int | float) or not isinstance(cpu, int | float) or \
            hdd < 0 or cpu < 0:
        return None
    return round(math.sqrt(hdd * cpu), 3)


def parse_io_cpu(outputs: list[str]) -> dict[str, Any]:
    out = parse_stress(outputs)
    if (rate := io_cpu_work_rate(out)) is not None:
        out[IO_CPU_WORK] = rate
    return out


IO_CPU_WORK = "io_cpu_work_ops_per_s"
_OPS = "bogo ops per second of wall time (stress-ng --metrics-brief)"
_WAKE = Headline("wakeup_us_avg", False, "µs",
                 "cyclictest's mean wakeup latency (timer expiry → the thread runs)")

WORKLOADS: tuple[Workload, ...] = (
    Workload("cpu_batch", "4 CPU-bound integer workers (stress-ng --cpu 4, int64)",
             "cpu_batch",
             lambda s, seed: [stress(["--cpu", "4", "--cpu-method", "int64"], s, seed)],
             parse_stress, Headline("cpu_bogo_ops_per_s", True, "ops/s", _OPS)),
    Workload("build", "3 parallel loops compiling a small C file with cc -O1 (fork/exec of "
             "cc1 and as per compile)", "build", lambda s, seed: compile_loops(3, s),
             parse_iterations("build_s", benchparse.timed_loop),
             Headline("build_s_mean", False, "s", "wall time of one build")),
    Workload("fork_heavy", "2 workers forking and exiting (stress-ng --fork 2)", "build",
             lambda s, seed: [stress(["--fork", "2"], s, seed)],
             parse_stress, Headline("fork_bogo_ops_per_s", True, "ops/s", _OPS)),
    Workload("messaging", "perf bench sched messaging -g 2 -l 50, repeated", "ipc",
             lambda s, seed: [loop("perf bench sched messaging -g 2 -l 50", s)],
             parse_iterations("messaging_s", benchparse.perf_total_seconds),
             Headline("messaging_s_mean", False, "s", "wall time of one messaging run")),
    Workload("hackbench", "hackbench -g 2 -l 50 (sockets), repeated", "ipc",
             lambda s, seed: [loop("hackbench -g 2 -l 50", s)],
             parse_iterations("hackbench_s", benchparse.hackbench_seconds),
             Headline("hackbench_s_mean", False, "s", "wall time of one hackbench run")),
    Workload("pipe", "perf bench sched pipe -l 5000 (two tasks ping-pong), repeated", "ipc",
             lambda s, seed: [loop("perf bench sched pipe -l 5000", s)],
             parse_iterations("pipe_usecs_per_op", benchparse.perf_pipe_usecs_per_op),
             Headline("pipe_usecs_per_op_mean", False, "µs", "round-trip time per operation")),
    Workload("mixed", "2 periodic wakers (cyclictest, SCHED_OTHER, 2 ms) beside 2 CPU hogs",
             "latency_beside_batch",
             lambda s, seed: [["cyclictest", "-t", "2", "-i", "2000", "-D", f"{s}s", "-q"],
                              stress(["--cpu", "2", "--cpu-method", "int64"], s, seed)],
             combine(parse_cyclictest, parse_stress), _WAKE),
    Workload("io_cpu", "1 writer + 2 CPU hogs (stress-ng --hdd 1 --cpu 2)", "io_cpu",
             lambda s, seed: [stress(["--hdd", "1", "--hdd-bytes", "16M", "--cpu", "2",
                                      "--cpu-method", "int64"], s, seed)],
             parse_io_cpu,
             Headline(IO_CPU_WORK, True, "ops/s", "geometric mean of the writer's and the "
                      "CPU hogs' bogo ops per second of wall time (stress-ng --metrics-brief)",
                      derive=io_cpu_work_rate)),
    Workload("memory", "3 memory-streaming workers on 2 CPUs (stress-ng --vm 3, 32 MiB, "
             "read64)", "memory",
             lambda s, seed: [stress(["--vm", "3", "--vm-bytes", "32M", "--vm-method",
                                      "read64", "--vm-keep"], s, seed)],
             parse_stress, Headline("vm_bogo_ops_per_s", True, "ops/s", _OPS)),
    Workload("idle", "one 100 Hz periodic waker on an otherwise idle machine (cyclictest)",
             "idle",
             lambda s, seed: [["cyclictest", "-t", "1", "-i", "10000", "-D", f"{s}s", "-q"]],
             parse_cyclictest, _WAKE),
    Workload("interactive_build", "1 periodic waker (cyclictest, 5 ms) beside 2 parallel "
             "compile loops", "latency_beside_batch",
             lambda s, seed: [["cyclictest", "-t", "1", "-i", "5000", "-D", f"{s}s", "-q"],
                              *compile_loops(2, s)],
             combine(parse_cyclictest, parse_iterations("build_s", benchparse.timed_loop)),
             _WAKE),
)
BY_NAME: dict[str, Workload] = {w.name: w for w in WORKLOADS}


class UnknownWorkload(KeyError):
    """A dataset or a command line names a workload this module does not declare (nor the
    workloads file given with it)."""

    def __init__(self, name: str, extra: tuple[str, ...] = ()):
        super().__init__(name, extra)

    def __str__(self) -> str:
        name, extra = self.args
        known = f"declared in scxd/workloads.py: {', '.join(BY_NAME)}"
        if extra:
            known += f"; in the workloads file: {', '.join(extra)}"
        return f"unknown workload {name!r} ({known})"


def get(name: str) -> Workload:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownWorkload(name) from None


def select(names: str | list[str] | None, extra: tuple[Workload, ...] = ()
           ) -> tuple[Workload, ...]:
    """Workloads by comma-separated or listed names, in declaration order (``extra``, from a
    workloads file, after scxd's own); all of them when empty."""
    known = WORKLOADS + extra
    if not names:
        return known
    wanted = names.split(",") if isinstance(names, str) else list(names)
    by_name = {w.name: w for w in known}
    for n in wanted:
        if n not in by_name:
            raise UnknownWorkload(n, tuple(w.name for w in extra))
    return tuple(w for w in known if w.name in wanted)


def recorded_headlines(names: list[str], declared: dict[str, Any]) -> dict[str, Headline]:
    """Each recorded workload's headline: scxd's declaration, else the one the recording's
    header carries (a workload from a workloads file); workloads with neither are left out.
    scxd's own come first, in declaration order."""
    declared_order = list(BY_NAME)
    out = {}
    for name in sorted(names, key=lambda n: (declared_order.index(n) if n in BY_NAME
                                              else len(declared_order), n)):
        if name in BY_NAME:
            out[name] = BY_NAME[name].headline
            continue
        h = Headline.from_manifest(name, declared.get(name))
        if h is not None:
            out[name] = h
    return out


# -- workloads declared in a file ---------------------------------------------------------------
# So that the policy can be judged on workloads scxd was never tuned to, a user (or a
# reviewer) declares them in TOML and ``scxd-testbed record --workloads-file`` records them;
# the dataset's manifest carries their headline, which is all the replay tools need.

#: Outcome parsers a file may name: what each reads from the processes' outputs, and which
#: headline keys it can produce (a regular expression).
FILE_PARSERS: dict[str, tuple[Parser, str]] = {
    "stress-ng": (parse_stress, r"[a-z0-9_-]+_bogo_ops(_per_s|_per_cpu_s)?"),
    "cyclictest": (parse_cyclictest, r"wakeup_us_(avg|max)"),
    "timed-loop": (parse_iterations("iteration_s", benchparse.timed_loop),
                   r"iteration_s_mean"),
    "perf-seconds": (parse_iterations("perf_s", benchparse.perf_total_seconds),
                     r"perf_s_mean"),
    "perf-pipe": (parse_iterations("pipe_usecs_per_op", benchparse.perf_pipe_usecs_per_op),
                  r"pipe_usecs_per_op_mean"),
    "hackbench": (parse_iterations("hackbench_s", benchparse.hackbench_seconds),
                  r"hackbench_s_mean"),
}
#: How a file's process runs for the cell's duration: ``once`` (the command itself stops at
#: ``{seconds}``, or at the recorder's SIGINT), ``loop`` (repeated until the time is up),
#: ``timed-loop`` (repeated, each iteration's wall time printed for the ``timed-loop``
#: parser).
FILE_REPEAT = ("once", "loop", "timed-loop")


class WorkloadFileError(ValueError):
    """A workloads file that cannot be used; the message names the file and the field."""


def load_file(path: str | Path) -> tuple[Workload, ...]:
    """The workloads a TOML file declares (``config.example.toml``'s sibling format: see
    ``bench/workloads/unseen.toml``); a clear :class:`WorkloadFileError` on any problem."""
    import re
    import shlex
    import tomllib

    from pydantic import ValidationError

    from scxd.workload_file import WorkloadsFile

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WorkloadFileError(f"{path}: {exc}") from None
    try:
        parsed = WorkloadsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise WorkloadFileError(f"{path}: {problems}") from None
    out: list[Workload] = []
    for i, d in enumerate(parsed.workloads):
        where = f"{path}: workloads[{i}] ({d.name})"
        if d.name in BY_NAME or any(w.name == d.name for w in out):
            raise WorkloadFileError(f"{where}: the name is taken (scxd declares "
                                    f"{', '.join(BY_NAME)}; names in a file are unique)")
        if d.category not in CATEGORIES:
            raise WorkloadFileError(f"{where}: category {d.category!r} is not one of "
                                    f"{', '.join(CATEGORIES)}")
        unknown = [p for p in d.parsers if p not in FILE_PARSERS]
        if unknown:
            raise WorkloadFileError(f"{where}: unknown parser {unknown[0]!r} (one of "
                                    f"{', '.join(FILE_PARSERS)})")
        if not any(re.fullmatch(FILE_PARSERS[p][1], d.headline.metric) for p in d.parsers):
            raise WorkloadFileError(
                f"{where}: headline.metric {d.headline.metric!r} is not a figure its parsers "
                f"({', '.join(d.parsers)}) produce")
        for j, proc in enumerate(d.processes):
            if proc.repeat not in FILE_REPEAT:
                raise WorkloadFileError(f"{where}: processes[{j}].repeat {proc.repeat!r} is "
                                        f"not one of {', '.join(FILE_REPEAT)}")
            odd = sorted({m for a in proc.argv for m in re.findall(r"\{[^}]*\}", a)}
                         - {"{seconds}", "{seed}"})
            if odd:
                raise WorkloadFileError(f"{where}: processes[{j}].argv: unknown placeholder "
                                        f"{odd[0]} (only {{seconds}} and {{seed}})")
        # A timed loop prints only its iteration times (the command's output is
        # discarded): the timed-loop parser needs one, and every other parser another kind.
        timed = [p.repeat == "timed-loop" for p in d.processes]
        if "timed-loop" in d.parsers and not any(timed):
            raise WorkloadFileError(f"{where}: parser timed-loop needs a process with "
                                    "repeat = \"timed-loop\"")
        if any(p != "timed-loop" for p in d.parsers) and all(timed):
            raise WorkloadFileError(f"{where}: parsers {', '.join(d.parsers)} read a "
                                    "command's output, but every process is a timed loop "
                                    "(whose commands' output is discarded)")
        procs = [(list(p.argv), p.repeat) for p in d.processes]

        def commands(seconds: int, seed: int, procs=procs) -> list[list[str]]:
            cmds = []
            for argv, repeat in procs:
                argv = [a.replace("{seconds}", str(seconds)).replace("{seed}", str(seed))
                        for a in argv]
                if repeat == "once":
                    cmds.append(argv)
                elif repeat == "loop":
                    cmds.append(loop(shlex.join(argv), seconds))
                else:
                    cmds.append(timed_loop(shlex.join(argv), seconds))
            return cmds

        h = d.headline
        out.append(Workload(d.name, d.describe, d.category, commands,
                            combine(*(FILE_PARSERS[p][0] for p in d.parsers)),
                            Headline(h.metric, h.direction == "higher", h.unit, h.doc),
                            tags=("file",)))
    return tuple(out)
