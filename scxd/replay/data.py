"""Recorded windows and workload outcomes, loaded for replay (one reader for every verb).

A dataset directory is what ``scxd-testbed record`` packages (``windows.jsonl.xz``,
``runs.jsonl.xz``, ``manifest.json``; see :mod:`scxd.testbed.dataset`).  Feature vectors of
different schema versions are not comparable (features were added, renamed or rescaled), so
:func:`feature_version` refuses a set of records that mixes them and
:func:`require_feature_version` refuses one that is not the version the caller was built for,
each with a message that says what to do.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scxd.features import SCHEMA_NAME, SCHEMA_VERSION
from scxd.testbed.dataset import load_runs, load_windows


class DatasetError(ValueError):
    """A dataset that cannot be replayed as asked; the message names the file and why."""


def feature_version(records: Iterable[dict[str, Any]], where: str) -> int | None:
    """The one feature-schema version of ``records`` (None when none carries features).

    Raises :class:`DatasetError` when records of several versions are mixed."""
    versions: collections.Counter = collections.Counter()
    for rec in records:
        feats = rec.get("features")
        if feats:
            if feats.get("schema", SCHEMA_NAME) != SCHEMA_NAME:
                raise DatasetError(f"{where}: window features of schema "
                                   f"{feats.get('schema')!r}, expected {SCHEMA_NAME!r}")
            versions[feats.get("version")] += 1
    if len(versions) > 1:
        detail = ", ".join(f"v{v}: {n} windows" for v, n in sorted(versions.items()))
        raise DatasetError(f"{where} mixes feature schema versions ({detail}); replay one "
                           "version at a time (record again, or split the journal at the "
                           "upgrade)")
    return next(iter(versions), None)


def require_feature_version(version: int | None, where: str,
                            wanted: int = SCHEMA_VERSION) -> None:
    """Refuse features of another schema version than ``wanted`` (this build's)."""
    if version != wanted:
        raise DatasetError(f"{where} holds feature schema v{version}, this scxd uses "
                           f"v{wanted}: its feature vectors cannot be fed to a v{wanted} "
                           "policy (re-record it, or use an scxd of that version)")


@dataclass
class Dataset:
    path: Path
    manifest: dict[str, Any]
    windows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    feature_version: int | None
    skipped: list[str] = field(default_factory=list)

    def scored(self) -> list[dict[str, Any]]:
        """Windows a daemon would score (not warm-up after a swap)."""
        return [w for w in self.windows if not w.get("warmup")]

    def workloads(self) -> list[str]:
        names = list(self.manifest.get("workloads", {}))
        return names or sorted({w["workload"] for w in self.windows})

    def arms(self) -> list[str]:
        """Arms in the recording's order (manifest), then any others seen."""
        seen = list(dict.fromkeys(w["arm"] for w in self.windows))
        listed = [a for a in self.manifest.get("arms", []) if a in seen]
        return listed + [a for a in seen if a not in listed]


def load_dataset(path: Path, *, features: int | None = None) -> Dataset:
    """Load a packaged dataset.  ``features``: the schema version the caller needs (None:
    any single version)."""
    path = Path(path)
    for name in ("windows.jsonl.xz", "runs.jsonl.xz"):
        if not (path / name).exists():
            raise DatasetError(f"{path}: no {name} (a dataset directory is what "
                               "`scxd-testbed record` packages)")
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{manifest_path}: not valid JSON ({exc})") from None
    skipped: list[str] = []
    windows = list(load_windows(path, skipped))
    if not windows:
        raise DatasetError(f"{path}: no window records")
    version = feature_version(windows, str(path))
    if features is not None:
        require_feature_version(version, str(path), features)
    return Dataset(path, manifest, windows, load_runs(path), version, skipped)
