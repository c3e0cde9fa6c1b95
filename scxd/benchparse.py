"""Parsers for the raw output of the benchmark tools scxd uses as real workloads (pure).

Each parser takes the tool's text output and returns typed figures; none of them decides
what a figure *means* for a workload (that is :mod:`scxd.workloads`).  Formats, as printed
by the Debian 12 versions:

* stress-ng 0.15 ``--metrics-brief`` (after ``stress-ng: metrc: [PID]``)::

      stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s
      cpu                2156      2.00      1.80      0.00      1077.99        1200.00

* ``perf bench sched messaging`` / ``perf bench sched pipe``: ``Total time: 0.097 [sec]``;
  pipe adds ``4.888700 usecs/op`` and ``204553 ops/sec``;
* hackbench (rt-tests): ``Time: 0.448``;
* cyclictest (rt-tests, ``-q``): one summary line per thread,
  ``T: 0 ( 1234) P: 0 I:2000 C:   4999 Min:  12 Act:  40 Avg:  61 Max:  912`` (µs);
* :func:`timed_loop` lines written by :func:`scxd.workloads.timed_loop`:
  ``@@iteration_s 0.412``;
* llama.cpp ``llama-bench`` in any of its md/csv/json/jsonl outputs (:func:`llama_bench`):
  tokens/s per test, mean and stddev over its repetitions.

A parser finds nothing rather than guessing: missing lines give an empty result, and
:mod:`scxd.workloads` records the outcome as missing for that cell.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class StressorMetrics:
    """One stressor's ``--metrics-brief`` row."""

    name: str
    bogo_ops: int
    real_s: float
    usr_s: float
    sys_s: float
    bogo_ops_per_s: float           # per second of wall-clock time

    @property
    def bogo_ops_per_cpu_s(self) -> float:
        """Per second of CPU time used (usr+sys); 0 when no CPU time was reported."""
        cpu = self.usr_s + self.sys_s
        return self.bogo_ops / cpu if cpu > 0 else 0.0


_STRESS = re.compile(r"metrc: \[\d+\] (\w[\w-]*)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+"
                     r"([\d.]+)")


#: stress-ng's own verdict that a run's figures cannot be trusted (0.15.06 in the test-bed
#: guest: the switch stressor, interrupted mid-operation, fails its metrics check and
#: reports rates that are 2–4× the completed runs' — or 0).
_STRESS_FAILED = re.compile(r"metrics-check: stressor metrics corrupted|"
                            r"unsuccessful run completed")


def stress_ng_failed(text: str) -> bool:
    """Whether stress-ng said its run failed or its metrics are compromised."""
    return _STRESS_FAILED.search(text) is not None


def stress_ng(text: str) -> dict[str, StressorMetrics]:
    """Rows of ``stress-ng --metrics-brief``, by stressor name (the header row has no
    numbers and does not match)."""
    out = {}
    for m in _STRESS.finditer(text):
        out[m.group(1)] = StressorMetrics(m.group(1), int(m.group(2)), float(m.group(3)),
                                          float(m.group(4)), float(m.group(5)),
                                          float(m.group(6)))
    return out


_PERF_TOTAL = re.compile(r"Total time: ([\d.]+) \[sec\]")
_PERF_USECS = re.compile(r"^\s*([\d.]+) usecs/op", re.M)


def perf_total_seconds(text: str) -> list[float]:
    """``Total time`` of every ``perf bench sched messaging|pipe`` run in ``text``."""
    return [float(x) for x in _PERF_TOTAL.findall(text)]


def perf_pipe_usecs_per_op(text: str) -> list[float]:
    """``usecs/op`` of every ``perf bench sched pipe`` run in ``text``."""
    return [float(x) for x in _PERF_USECS.findall(text)]


_HACKBENCH = re.compile(r"^Time: ([\d.]+)", re.M)


def hackbench_seconds(text: str) -> list[float]:
    """``Time`` of every hackbench run in ``text``."""
    return [float(x) for x in _HACKBENCH.findall(text)]


@dataclass(frozen=True)
class CyclictestThread:
    """One measuring thread's summary (latencies in µs)."""

    thread: int
    cycles: int
    min_us: int
    avg_us: int
    max_us: int


_CYCLICTEST = re.compile(r"T:\s*(\d+).*?C:\s*(\d+)\s+Min:\s*(\d+)\s+Act:\s*\d+\s+"
                         r"Avg:\s*(\d+)\s+Max:\s*(\d+)")


def cyclictest(text: str) -> list[CyclictestThread]:
    """Per-thread summaries of cyclictest (``-q`` prints them once, at the end)."""
    return [CyclictestThread(int(t), int(c), int(mn), int(avg), int(mx))
            for t, c, mn, avg, mx in _CYCLICTEST.findall(text)]


@dataclass(frozen=True)
class CyclictestSummary:
    threads: int
    cycles: int
    avg_us: float                   # cycle-weighted mean over threads
    max_us: int


def cyclictest_summary(text: str) -> CyclictestSummary | None:
    threads = cyclictest(text)
    cycles = sum(t.cycles for t in threads)
    if not threads or cycles == 0:
        return None
    avg = sum(t.avg_us * t.cycles for t in threads) / cycles
    return CyclictestSummary(len(threads), cycles, avg, max(t.max_us for t in threads))


TIMED_LOOP_MARK = "@@iteration_s"
_TIMED = re.compile(r"^" + TIMED_LOOP_MARK + r" ([\d.]+)$", re.M)


def timed_loop(text: str) -> list[float]:
    """Iteration times (s) printed by :func:`scxd.workloads.timed_loop`."""
    return [float(x) for x in _TIMED.findall(text)]


def mean_or_none(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


# -- llama.cpp llama-bench ---------------------------------------------------------------------
# Formats as printed by llama.cpp's tools/llama-bench (``-o md|csv|json|jsonl``):
#
# * md: a table whose ``test`` column names the test (``pp512``, ``tg128``, ``pp512+tg128``,
#   ``pp512 @ d512``; builds before 2024 wrote ``pp 512``) and whose ``t/s`` column is
#   ``"%.2f ± %.2f"`` (mean ± sample stddev of tokens/s over ``-r`` repetitions); a
#   ``build: COMMIT (NUMBER)`` footer;
# * csv: a header row of field names (``build_commit,build_number,…,n_prompt,n_gen,…,avg_ts,
#   stddev_ts``), then one row per test with every value double-quoted;
# * json: an array of objects with the same fields plus ``samples_ns`` and ``samples_ts``
#   (each repetition); jsonl: the same objects, one per line.
# The test name of csv/json rows is built as llama-bench builds it for md: ``pp{n_prompt}``,
# ``tg{n_gen}`` or ``pp{n_prompt}+tg{n_gen}``, with ``@d{n_depth}`` when a depth is set.


@dataclass(frozen=True)
class LlamaBenchResult:
    """One llama-bench test: tokens per second, mean and sample stddev over repetitions."""

    test: str                       # pp512, tg128, pp512+tg128, pp512@d512
    avg_ts: float
    stddev_ts: float
    model: str = ""
    n_threads: int | None = None
    samples_ts: tuple[float, ...] = ()


def llama_test_name(n_prompt: int, n_gen: int, n_depth: int = 0) -> str:
    if n_prompt > 0 and n_gen == 0:
        name = f"pp{n_prompt}"
    elif n_gen > 0 and n_prompt == 0:
        name = f"tg{n_gen}"
    else:
        name = f"pp{n_prompt}+tg{n_gen}"
    return name + (f"@d{n_depth}" if n_depth > 0 else "")


def _llama_row(row: dict) -> LlamaBenchResult:
    def num(key: str, default: float = 0.0) -> float:
        v = row.get(key, default)
        return float(v) if v not in ("", None) else default

    threads = row.get("n_threads")
    return LlamaBenchResult(
        llama_test_name(int(num("n_prompt")), int(num("n_gen")), int(num("n_depth"))),
        num("avg_ts"), num("stddev_ts"), str(row.get("model_type", "")),
        int(float(threads)) if threads not in (None, "") else None,
        tuple(float(x) for x in row.get("samples_ts") or ()))


def llama_bench_json(text: str) -> list[LlamaBenchResult]:
    """``-o json``: the array (log lines around it, as with ``2>&1``, are ignored)."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "["), None)
    end = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip() == "]"), None)
    if start is None or end is None or end < start:
        return []
    data = json.loads("\n".join(lines[start:end + 1]))
    return [_llama_row(obj) for obj in data if isinstance(obj, dict)]


def llama_bench_jsonl(text: str) -> list[LlamaBenchResult]:
    """``-o jsonl``: one object per line."""
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if ln.startswith("{") and ln.endswith("}") and '"avg_ts"' in ln:
            out.append(_llama_row(json.loads(ln)))
    return out


def llama_bench_csv(text: str) -> list[LlamaBenchResult]:
    """``-o csv``: the header row, then quoted rows."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("build_commit,")), None)
    if start is None:
        return []
    rows = []
    for ln in lines[start + 1:]:
        if not ln.startswith('"'):
            break
        rows.append(ln)
    reader = csv.DictReader([lines[start], *rows])
    return [_llama_row(row) for row in reader]


_LLAMA_TS = re.compile(r"^\s*([\d.]+)\s*±\s*([\d.]+)\s*$")


def llama_bench_md(text: str) -> list[LlamaBenchResult]:
    """``-o md`` (the default): the table's ``test`` and ``t/s`` columns."""
    header: list[str] | None = None
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln.startswith("|"):
            header = None                             # a table ends at its first other line
            continue
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if header is None:
            if "test" in cells and "t/s" in cells:
                header = cells
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue                                  # the alignment row
        if len(cells) != len(header):
            continue
        row = dict(zip(header, cells, strict=True))
        m = _LLAMA_TS.match(row["t/s"])
        if not m:
            continue
        threads = row.get("threads", "")
        out.append(LlamaBenchResult("".join(row["test"].split()), float(m.group(1)),
                                    float(m.group(2)), row.get("model", ""),
                                    int(threads) if threads.isdigit() else None))
    return out


def llama_bench(text: str) -> list[LlamaBenchResult]:
    """Whichever of llama-bench's md/csv/json/jsonl outputs ``text`` holds."""
    for parse in (llama_bench_json, llama_bench_jsonl, llama_bench_csv, llama_bench_md):
        try:
            found = parse(text)
        except ValueError:
            continue
        if found:
            return found
    return []
