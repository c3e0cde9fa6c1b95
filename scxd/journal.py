"""Append-only, crash-safe journal of every window and decision; and its reader.

Format: JSON lines in ``<dir>/journal.jsonl`` (the file being written) and rotated
``<dir>/journal.<N>.jsonl`` (N grows; the oldest beyond ``max_files`` are deleted).  Each line
is one object ``{"crc": "<crc32 of the record's canonical JSON>", "record": {...}}``; every
file starts with a ``header`` record (schema versions, feature names, host).  Record kinds:

* ``header`` — ``journal_version``, ``feature_schema``, ``feature_names``, ``host``;
* ``window`` — one per closed window: ``id``, window
  bounds, ``features`` + schema version, data-quality flags, ``eligible`` arms, ``decision``
  (chosen arm, full distribution, propensity, explore, policy version), ``previous`` arm,
  ``swap`` (the actuator's result when one happened), ``warmup`` (not scored), ``terms``
  (raw reward inputs), ``cost``/``reward`` under the configured objective, ``guard`` events,
  ``events`` (actuator events since the previous window), the window's ``metrics``;
* ``event`` — something that happened outside a window (start, stop, reload, control).

Crash safety: each record is written with one ``write(2)`` on an O_APPEND descriptor and
fsynced.  A record torn by a crash is a last line without newline or failing its CRC: the
reader skips and reports it; the writer, on opening, ends such a line first, so what it
appends next never merges with the fragment.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scxd.features import FeatureVector
from scxd.reward import window_terms
from scxd.types import Window
from scxd.window import window_to_dict

JOURNAL_VERSION = 1
CURRENT = "journal.jsonl"
_ROTATED = re.compile(r"^journal\.(\d+)\.jsonl$")


def window_measurements(window: Window, features: FeatureVector) -> dict[str, Any]:
    """The measured part of a ``window`` record (what the daemon and the test-bed recorder
    both write): bounds, quality, features, raw reward terms, metrics, histograms."""
    return {
        "window": {"start": window.start_wall, "end": window.end_wall,
                   "duration_s": window.duration_s, "samples": window.n_samples},
        "quality": list(window.quality), "telemetry": window.sched_source,
        "features": features.as_record(),
        "terms": window_terms(window), "metrics": window.metrics,
        "hists": {k: v for k, v in window_to_dict(window).items() if k.endswith("_hist")},
        "sample_intervals_s": window.extras.get("sample_intervals_s", []),
        "exits_by_comm": window.extras.get("exits_by_comm", {}),
    }


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=_default)


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def encode(record: dict[str, Any]) -> bytes:
    body = canonical(record)
    crc = f"{zlib.crc32(body.encode()) & 0xFFFFFFFF:08x}"
    return ('{"crc":"' + crc + '","record":' + body + "}\n").encode()


class JournalError(ValueError):
    """A journal line that cannot be trusted; says which file and line, and why."""


def decode(line: bytes, where: str) -> dict[str, Any]:
    if not line.endswith(b"\n"):
        raise JournalError(f"{where}: torn record (no newline: written when scxd stopped?)")
    try:
        outer = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JournalError(f"{where}: not JSON ({exc})") from None
    if not isinstance(outer, dict) or "crc" not in outer or "record" not in outer:
        raise JournalError(f"{where}: not a journal record (no crc/record)")
    record = outer["record"]
    body = canonical(record)
    crc = f"{zlib.crc32(body.encode()) & 0xFFFFFFFF:08x}"
    if crc != outer["crc"]:
        raise JournalError(f"{where}: CRC mismatch ({outer['crc']} != {crc}): corrupted")
    if not isinstance(record, dict) or "kind" not in record:
        raise JournalError(f"{where}: record has no kind")
    return record


def journal_files(directory: Path) -> list[Path]:
    """Oldest first: rotated files by number, then the current one."""
    rotated = []
    for p in directory.glob("journal.*.jsonl"):
        m = _ROTATED.match(p.name)
        if m:
            rotated.append((int(m.group(1)), p))
    files = [p for _, p in sorted(rotated)]
    if (directory / CURRENT).exists():
        files.append(directory / CURRENT)
    return files


class JournalWriter:
    def __init__(self, directory: str | os.PathLike[str], header: dict[str, Any],
                 max_file_bytes: int = 64 * 1024**2, max_files: int = 8, fsync: bool = True):
        self.dir = Path(directory)
        self.header = {"kind": "header", "journal_version": JOURNAL_VERSION, **header}
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.fsync = fsync
        self.dir.mkdir(parents=True, exist_ok=True)
        self.records_written = 0
        self.errors = 0
        self._fd = -1
        self._open()

    def _open(self) -> None:
        path = self.dir / CURRENT
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        size = os.fstat(self._fd).st_size
        if size:
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    os.write(self._fd, b"\n")  # end a torn record: it stays apart, skipped
        self._size = os.fstat(self._fd).st_size
        if size == 0:
            self._write(encode(self.header))

    def _write(self, data: bytes) -> None:
        os.write(self._fd, data)
        if self.fsync:
            os.fsync(self._fd)
        self._size += len(data)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record; rotate first when the file is full.  Raises OSError (the daemon
        counts it and keeps running)."""
        data = encode(record)
        if self._size + len(data) > self.max_file_bytes and self._size > 0:
            self.rotate()
        self._write(data)
        self.records_written += 1

    def rotate(self) -> None:
        os.close(self._fd)
        numbers = [int(m.group(1)) for p in self.dir.iterdir()
                   if (m := _ROTATED.match(p.name))]
        nxt = max(numbers, default=0) + 1
        os.replace(self.dir / CURRENT, self.dir / f"journal.{nxt}.jsonl")
        rotated = [p for p in journal_files(self.dir) if p.name != CURRENT]
        for old in rotated[:-self.max_files] if len(rotated) > self.max_files else []:
            old.unlink()
        self._open()

    def close(self) -> None:
        if self._fd >= 0:
            if self.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


@dataclass
class JournalReader:
    """Iterates records oldest first; bad lines are skipped and listed in ``skipped``."""

    directory: Path
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if not self.directory.is_dir():
            raise JournalError(f"{self.directory}: no such journal directory")

    def records(self, kinds: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
        for path in journal_files(self.directory):
            with open(path, "rb") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = decode(line, f"{path}:{n}")
                    except JournalError as exc:
                        self.skipped.append(str(exc))
                        continue
                    if kinds is None or rec["kind"] in kinds:
                        yield rec

    def windows(self) -> Iterator[dict[str, Any]]:
        return self.records(("window",))
