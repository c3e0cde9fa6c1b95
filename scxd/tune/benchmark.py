"""A user's benchmark: the command, how its output becomes named metrics, and one run of it.

Parsers (``--parser``) turn one run's stdout/stderr into ``{metric name: value}``; the raw
formats are read by :mod:`scxd.benchparse`.  Each parser knows which way its metrics improve
(seconds: lower; tokens/s, bogo ops/s: higher), so ``--maximize/--minimize`` is only needed
for ``json:`` and ``regex:`` metrics.

=================  ==========================================================================
``perf-messaging``  ``perf bench sched messaging``: ``total_time_s`` (mean over the runs in
                    one output)
``perf-pipe``       ``perf bench sched pipe``: ``total_time_s``, ``usecs_per_op``,
                    ``ops_per_sec``
``hackbench``       rt-tests hackbench: ``time_s``
``stress-ng``       ``--metrics-brief``: ``<stressor>_bogo_ops_per_s`` (wall clock),
                    ``<stressor>_bogo_ops_per_cpu_s``; plain ``bogo_ops_per_s`` with one
                    stressor
``cyclictest``      rt-tests cyclictest ``-q``: ``avg_us``, ``max_us`` (all threads)
``llama-bench``     llama.cpp's llama-bench, any of md/csv/json/jsonl (detected): one metric
                    per test, named as llama-bench names it (``pp512``, ``tg128``,
                    ``pp512+tg128``, ``pp512@d512``) = mean tokens/s, and ``<test>_stddev``;
                    ``pp``/``tg`` when there is one test of that kind
``json:PATH``       a JSON file the benchmark writes (``-`` = its stdout): every number in it,
                    by dotted path (``results.0.tps``)
``regex:PATTERN``   a regular expression over stdout+stderr: named groups are metrics (plain
                    group 1 is ``value``); several matches are averaged
=================  ==========================================================================

A run is a process of its own session, so a timeout or Ctrl-C stops the whole pipeline it
started, never scxd's scheduler.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scxd import benchparse

OUTPUT_TAIL = 2000            # characters of stdout/stderr kept with a failed run


class BenchmarkError(ValueError):
    """A benchmark definition is unusable (unknown parser, metric, missing direction)."""


Extract = Callable[[str, str], dict[str, float]]    # (stdout, stderr) → metrics


@dataclass(frozen=True)
class MetricParser:
    name: str
    doc: str
    extract: Extract
    default_metric: str | None = None
    #: metric name → higher is better (None: unknown, the user must say)
    direction: Callable[[str], bool | None] = lambda metric: None
    unit: Callable[[str], str] = lambda metric: ""


def _mean_of(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _perf_messaging(out: str, err: str) -> dict[str, float]:
    total = _mean_of(benchparse.perf_total_seconds(out))
    return {} if total is None else {"total_time_s": total}


def _perf_pipe(out: str, err: str) -> dict[str, float]:
    res = _perf_messaging(out, err)
    usecs = _mean_of(benchparse.perf_pipe_usecs_per_op(out))
    if usecs is not None:
        res["usecs_per_op"] = usecs
        res["ops_per_sec"] = 1e6 / usecs if usecs else math.inf
    return res


def _hackbench(out: str, err: str) -> dict[str, float]:
    t = _mean_of(benchparse.hackbench_seconds(out + "\n" + err))
    return {} if t is None else {"time_s": t}


def _stress_ng(out: str, err: str) -> dict[str, float]:
    rows = benchparse.stress_ng(out + "\n" + err)
    res: dict[str, float] = {}
    for name, row in rows.items():
        res[f"{name}_bogo_ops_per_s"] = row.bogo_ops_per_s
        res[f"{name}_bogo_ops_per_cpu_s"] = row.bogo_ops_per_cpu_s
        res[f"{name}_bogo_ops"] = float(row.bogo_ops)
    if len(rows) == 1:
        (row,) = rows.values()
        res["bogo_ops_per_s"] = row.bogo_ops_per_s
        res["bogo_ops_per_cpu_s"] = row.bogo_ops_per_cpu_s
        res["bogo_ops"] = float(row.bogo_ops)
    return res


def _cyclictest(out: str, err: str) -> dict[str, float]:
    s = benchparse.cyclictest_summary(out)
    return {} if s is None else {"avg_us": s.avg_us, "max_us": float(s.max_us)}


def _llama_bench(out: str, err: str) -> dict[str, float]:
    results = benchparse.llama_bench(out)
    res: dict[str, float] = {}
    seen: dict[str, int] = {}
    for r in results:
        seen[r.test] = seen.get(r.test, 0) + 1
        res[r.test] = r.avg_ts
        res[f"{r.test}_stddev"] = r.stddev_ts
    dup = sorted(t for t, n in seen.items() if n > 1)
    if dup:
        raise BenchmarkError(f"llama-bench printed test {', '.join(dup)} more than once "
                             "(several models or settings in one run): give one model and one "
                             "value per setting so each test is one metric")
    for kind in ("pp", "tg"):
        tests = [t for t in seen if re.fullmatch(kind + r"\d+(@d\d+)?", t)]
        if len(tests) == 1:
            res[kind] = res[tests[0]]
    return res


def _seconds_lower(metric: str) -> bool | None:
    return False


def _llama_direction(metric: str) -> bool | None:
    return not metric.endswith("_stddev")


PARSERS: dict[str, MetricParser] = {p.name: p for p in (
    MetricParser("perf-messaging", "perf bench sched messaging: Total time", _perf_messaging,
                 "total_time_s", _seconds_lower, lambda m: "s"),
    MetricParser("perf-pipe", "perf bench sched pipe: Total time, usecs/op, ops/sec",
                 _perf_pipe, "usecs_per_op", lambda m: m == "ops_per_sec",
                 lambda m: {"total_time_s": "s", "usecs_per_op": "µs",
                            "ops_per_sec": "ops/s"}.get(m, "")),
    MetricParser("hackbench", "rt-tests hackbench: Time", _hackbench, "time_s",
                 _seconds_lower, lambda m: "s"),
    MetricParser("stress-ng", "stress-ng --metrics-brief: bogo ops/s per stressor",
                 _stress_ng, "bogo_ops_per_s", lambda m: True,
                 lambda m: "" if m.endswith("bogo_ops") else "bogo ops/s"),
    MetricParser("cyclictest", "rt-tests cyclictest -q: wake-up latency", _cyclictest,
                 "avg_us", _seconds_lower, lambda m: "µs"),
    MetricParser("llama-bench", "llama.cpp llama-bench (md, csv, json, jsonl): tokens/s per "
                 "test", _llama_bench, None, _llama_direction, lambda m: "t/s"),
)}
#: Commands whose parser is obvious (first words → parser).
GUESSES = (("perf bench sched messaging", "perf-messaging"), ("perf bench sched pipe",
           "perf-pipe"), ("hackbench", "hackbench"), ("stress-ng", "stress-ng"),
           ("cyclictest", "cyclictest"), ("llama-bench", "llama-bench"))


def guess_parser(command: str) -> str | None:
    words = shlex.split(command) if command.strip() else []
    for i in range(len(words)):    # allow wrappers: taskset, env, nice, sudo …
        tail = " ".join(os.path.basename(w) if j == 0 else w
                        for j, w in enumerate(words[i:]))
        for prefix, name in GUESSES:
            if tail.startswith(prefix):
                return name
    return None


def flatten_json(data: Any, prefix: str = "") -> dict[str, float]:
    """Every number (not bool) of a JSON document by dotted path."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten_json(v, f"{prefix}{k}."))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.update(flatten_json(v, f"{prefix}{i}."))
    elif isinstance(data, int | float) and not isinstance(data, bool):
        out[prefix[:-1]] = float(data)
    return out


def json_parser(path: str) -> MetricParser:
    def extract(out: str, err: str) -> dict[str, float]:
        if path == "-":
            text = out
        else:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise BenchmarkError(f"json:{path}: the benchmark wrote no readable file: "
                                     f"{exc.strerror or exc}") from None
        try:
            return flatten_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise BenchmarkError(f"json:{path}: not JSON ({exc})") from None
    return MetricParser(f"json:{path}", f"numbers in the JSON document {path}", extract)


def regex_parser(pattern: str) -> MetricParser:
    try:
        rx = re.compile(pattern, re.M)
    except re.error as exc:
        raise BenchmarkError(f"regex:{pattern}: {exc}") from None
    if rx.groups == 0:
        raise BenchmarkError(f"regex:{pattern}: needs a capture group around the number")

    def extract(out: str, err: str) -> dict[str, float]:
        found: dict[str, list[float]] = {}
        for m in rx.finditer(out + "\n" + err):
            groups = m.groupdict() or {"value": m.group(1)}
            for name, raw in groups.items():
                if raw is None:
                    continue
                try:
                    found.setdefault(name, []).append(float(raw))
                except ValueError:
                    raise BenchmarkError(f"regex:{pattern}: group {name} matched {raw!r}, "
                                         "not a number") from None
        return {k: statistics.fmean(v) for k, v in found.items()}
    default = None if rx.groupindex else "value"
    return MetricParser(f"regex:{pattern}", "regular expression", extract, default)


def get_parser(spec: str) -> MetricParser:
    if spec.startswith("json:"):
        return json_parser(spec[5:] or "-")
    if spec.startswith("regex:"):
        return regex_parser(spec[6:])
    try:
        return PARSERS[spec]
    except KeyError:
        raise BenchmarkError(f"unknown parser {spec!r} (known: {', '.join(PARSERS)}, "
                             "json:PATH, regex:PATTERN)") from None


@dataclass(frozen=True)
class RunResult:
    """One run of the benchmark."""

    returncode: int | None
    seconds: float
    metrics: dict[str, float]
    value: float | None              # the tuned metric (None: failed)
    error: str = ""                  # empty when value is set
    state: str = "ok"                # ok failed timeout parse_failed
    stdout_tail: str = ""
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None

    def as_dict(self) -> dict:
        return {"returncode": self.returncode, "seconds": round(self.seconds, 4),
                "value": self.value, "metrics": self.metrics, "state": self.state,
                "error": self.error, "stdout_tail": self.stdout_tail,
                "stderr_tail": self.stderr_tail}


@dataclass(frozen=True)
class Benchmark:
    """What to run and which number to read from it.

    ``command``: a shell command line (run by ``/bin/sh -c``) or an argv list.  ``parser``:
    a name from :data:`PARSERS`, ``json:PATH``, ``regex:PATTERN``, or None to guess from the
    command.  ``metric`` None takes the parser's default.  ``higher_is_better`` None takes
    the parser's knowledge of the metric.
    """

    command: str | tuple[str, ...]
    parser: str | None = None
    metric: str | None = None
    higher_is_better: bool | None = None
    timeout: float = 600.0
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.command, list):
            object.__setattr__(self, "command", tuple(self.command))
        if not self.command or (isinstance(self.command, str) and not self.command.strip()):
            raise BenchmarkError("the benchmark command is empty")
        if self.parser is None:
            guessed = guess_parser(self.command_text)
            if guessed is None:
                raise BenchmarkError(f"cannot tell how to read the output of "
                                     f"{self.command_text!r}: give --parser (one of "
                                     f"{', '.join(PARSERS)}, json:PATH, regex:PATTERN)")
            object.__setattr__(self, "parser", guessed)
        p = get_parser(self.parser or "")
        if self.metric is None:
            if p.default_metric is None:
                raise BenchmarkError(f"parser {p.name} has no default metric: give --metric "
                                     "(for llama-bench: the test name, e.g. pp512 or tg128)")
            object.__setattr__(self, "metric", p.default_metric)
        if self.higher_is_better is None:
            hib = p.direction(self.metric or "")
            if hib is None:
                raise BenchmarkError(f"is a higher {self.metric} better or worse? give "
                                     "--maximize or --minimize")
            object.__setattr__(self, "higher_is_better", hib)
        if self.timeout <= 0:
            raise BenchmarkError("the benchmark timeout must be positive")

    @property
    def command_text(self) -> str:
        return self.command if isinstance(self.command, str) else shlex.join(self.command)

    @property
    def argv(self) -> list[str]:
        return ["/bin/sh", "-c", self.command] if isinstance(self.command, str) \
            else list(self.command)

    @property
    def metric_parser(self) -> MetricParser:
        return get_parser(self.parser or "")

    @property
    def unit(self) -> str:
        return self.metric_parser.unit(self.metric or "")

    @property
    def direction(self) -> str:
        return "maximize" if self.higher_is_better else "minimize"

    def as_dict(self) -> dict:
        return {"command": self.command if isinstance(self.command, str)
                else list(self.command), "parser": self.parser, "metric": self.metric,
                "higher_is_better": self.higher_is_better, "timeout": self.timeout,
                "cwd": self.cwd, "env": dict(self.env)}

    def parse(self, stdout: str, stderr: str) -> tuple[dict[str, float], float | None, str]:
        """(all metrics, the tuned metric or None, error)."""
        try:
            metrics = self.metric_parser.extract(stdout, stderr)
        except BenchmarkError as exc:
            return {}, None, str(exc)
        if self.metric not in metrics:
            found = ", ".join(sorted(metrics)) or "nothing"
            return metrics, None, (f"metric {self.metric!r} not in the output "
                                   f"({self.parser} found: {found})")
        value = metrics[self.metric]
        if not math.isfinite(value):
            return metrics, None, f"metric {self.metric} is {value}"
        return metrics, value, ""

    def _stale_output(self) -> Path | None:
        parser = self.parser or ""
        if parser.startswith("json:") and parser[5:] not in ("", "-"):
            path = Path(parser[5:])
            return path if path.is_absolute() or self.cwd is None else Path(self.cwd) / path
        return None

    def run(self) -> RunResult:
        """Run once; a failure is a result with the reason, never an exception (except
        KeyboardInterrupt, after the process group is stopped)."""
        stale = self._stale_output()
        if stale is not None:
            stale.unlink(missing_ok=True)   # never read the previous run's file
        start = time.monotonic()
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    errors="replace", cwd=self.cwd,
                                    env={**os.environ, **self.env}, start_new_session=True)
        except OSError as exc:
            return RunResult(None, 0.0, {}, None, f"cannot start: {exc.strerror or exc}",
                             "failed")
        timed_out = False
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            out, err = proc.communicate()
        except BaseException:
            _kill_group(proc, signal.SIGINT)
            raise
        secs = time.monotonic() - start
        tails = {"stdout_tail": out[-OUTPUT_TAIL:], "stderr_tail": err[-OUTPUT_TAIL:]}
        if timed_out:
            return RunResult(proc.returncode, secs, {}, None,
                             f"timed out after {self.timeout:g} s", "timeout", **tails)
        if proc.returncode != 0:
            return RunResult(proc.returncode, secs, {}, None,
                             f"exit code {proc.returncode}", "failed", **tails)
        metrics, value, error = self.parse(out, err)
        if value is None:
            return RunResult(0, secs, metrics, None, error, "parse_failed", **tails)
        return RunResult(0, secs, metrics, value)


def _kill_group(proc: subprocess.Popen, first: int = signal.SIGKILL, grace: float = 2.0
                ) -> None:
    """Stop the benchmark's whole process group (``sh -c`` pipelines included)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, first)
    if first != signal.SIGKILL:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
