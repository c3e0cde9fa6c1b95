"""What a tuning run writes as it goes: one record per measured configuration, crash-safe.

``trials.jsonl`` is the run's source of truth: one JSON object per baseline, search trial,
rejected proposal and confirmation, appended with one ``write(2)`` and fsynced, so an
interrupted run loses at most the trial in progress and ``--resume`` rebuilds everything
(the optimiser's study included) from it.  A torn last line is skipped; a damaged line
elsewhere is an error naming the line.  ``trials.csv`` is rewritten from the records after
each one.  ``run.json`` holds the run's settings (what ``--resume`` must match) and status.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scxd.tune.stats import summarize

TRIALS_JSONL = "trials.jsonl"
TRIALS_CSV = "trials.csv"
RUN_JSON = "run.json"
FORMAT_VERSION = 1

KINDS = ("baseline", "search", "infeasible", "confirm")
#: complete = measured; the rest say why not.
STATES = ("complete", "failed_to_start", "benchmark_failed", "timeout", "parse_failed",
          "ejected", "lost", "infeasible")


class RecordError(ValueError):
    """A run directory's files are unreadable or belong to a different run."""


@dataclass
class TrialRecord:
    seq: int                          # 1-based position in the run
    kind: str                         # baseline search infeasible confirm
    label: str                        # "fair", "defaults", "trial 3", "confirm best"
    state: str
    scheduler: str
    params: dict[str, Any]            # every parameter's value
    sampled: dict[str, Any]           # searched parameters only (search/infeasible)
    argv: list[str]
    baseline: str = ""                # fair / defaults (kind=baseline)
    round: int = 0                    # baseline round (1-based)
    number: int = 0                   # search trial number (1-based)
    values: list[float] = field(default_factory=list)         # the metric, per repeat
    warmup_values: list[float | None] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)   # every metric, per repeat
    run_seconds: list[float] = field(default_factory=list)
    reason: str = ""
    detail: str = ""
    output_tail: str = ""
    apply: dict[str, Any] = field(default_factory=dict)   # actuator outcome and timings
    started_at: float = 0.0
    seconds: float = 0.0
    optuna: dict[str, Any] = field(default_factory=dict)  # number, system_attrs

    @property
    def complete(self) -> bool:
        return self.state == "complete" and bool(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None

    def key(self) -> tuple:
        """Identity of the configuration (scheduler + every value): equal keys pool."""
        return (self.scheduler, tuple(sorted((k, repr(v)) for k, v in self.params.items())))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["version"] = FORMAT_VERSION
        if self.values:
            s = summarize(self.values)
            d.update(mean=s.mean, sd=s.sd, ci_low=_finite(s.ci_low), ci_high=_finite(s.ci_high))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class TrialLog:
    """Append-only ``trials.jsonl`` + regenerated ``trials.csv`` in a run directory."""

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir)
        self.path = self.dir / TRIALS_JSONL
        self.records: list[TrialRecord] = []
        self.skipped: list[str] = []

    def load(self) -> list[TrialRecord]:
        self.records = []
        if not self.path.exists():
            return self.records
        lines = self.path.read_bytes().split(b"\n")
        for i, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                self.records.append(TrialRecord.from_dict(json.loads(raw)))
            except (ValueError, TypeError) as exc:
                if i >= len(lines) - 1:          # the last line: torn by a crash
                    self.skipped.append(f"line {i}: torn record skipped ({exc})")
                    self._truncate_torn(raw)
                    continue
                raise RecordError(f"{self.path}: line {i} is damaged ({exc}); move the "
                                  "file away to start over") from None
        return self.records

    def _truncate_torn(self, raw: bytes) -> None:
        data = self.path.read_bytes()
        if data.endswith(raw) or data.endswith(raw + b"\n"):
            keep = data[: data.rfind(raw)]
            with open(self.path, "wb") as fh:
                fh.write(keep)
                fh.flush()
                os.fsync(fh.fileno())

    def next_seq(self) -> int:
        return len(self.records) + 1

    def append(self, rec: TrialRecord) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(rec.as_dict(), allow_nan=False, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records.append(rec)
        write_atomic(self.dir / TRIALS_CSV, trials_csv(self.records))


CSV_FIXED = ("seq", "kind", "label", "state", "number", "baseline", "round", "scheduler",
             "args", "n", "mean", "sd", "ci_low", "ci_high", "values", "reason",
             "swap_seconds", "started_at", "seconds")


def trials_csv(records: Iterable[TrialRecord]) -> str:
    recs = list(records)
    param_names = list(dict.fromkeys(k for r in recs for k in r.params))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CSV_FIXED, *(f"param_{p}" for p in param_names)])
    for r in recs:
        d = r.as_dict()
        timings = r.apply.get("timings") or {}
        row = [r.seq, r.kind, r.label, r.state, r.number or "", r.baseline, r.round or "",
               r.scheduler, " ".join(r.argv), len(r.values), _num(d.get("mean")),
               _num(d.get("sd")), _num(d.get("ci_low")), _num(d.get("ci_high")),
               " ".join(f"{v:.6g}" for v in r.values), r.reason,
               _num(timings.get("total_s")),
               time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(r.started_at))
               if r.started_at else "", f"{r.seconds:.2f}"]
        row += [_cell(r.params.get(p)) for p in param_names]
        w.writerow(row)
    return buf.getvalue()


def _num(x: Any) -> str:
    return "" if x is None else f"{x:.6g}"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def read_run(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / RUN_JSON
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from None
