"""Journals and packaged datasets → typed window records and transitions (one reader).

Both sources hold the same window records (:mod:`scxd.record`): a daemon journal directory
(``journal.jsonl`` + rotated files, a ``header`` per file, ``event`` records between) and a
packaged test-bed dataset (``windows.jsonl.xz`` + ``runs.jsonl.xz`` + ``manifest.json``).
:func:`load_logs` reads any number of each and returns one :class:`ReplayLog`: the records in
order, the transitions joined once (:class:`scxd.record.TransitionJoiner`: never across two
runs of a dataset or across a daemon restart), the arm set, and the datasets' per-run workload
outcomes.

It refuses — with a message naming the sources — to mix feature schemas or versions (the
vectors are not comparable) and arm sets (a learner's outputs are per arm): replay one kind at
a time.
"""

from __future__ import annotations

import json
import lzma
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scxd.catalog import Catalog, build_catalog
from scxd.journal import JournalError, JournalReader, decode
from scxd.policy.arms import ArmSet, ArmSetError, action_from_key, action_from_label
from scxd.record import Transition, TransitionJoiner, WindowRecord


class LogError(ValueError):
    """Logs that cannot be replayed as asked; the message names the source and why."""


@dataclass
class ReplayLog:
    sources: list[str]
    schema: str
    feature_version: int
    feature_names: list[str]
    arms: ArmSet
    records: list[WindowRecord]
    transitions: list[Transition]
    runs: list[dict[str, Any]] = field(default_factory=list)   # datasets: per-run outcomes
    skipped: list[str] = field(default_factory=list)           # unreadable lines
    window_s: float | None = None                              # recorded window length

    def workloads(self) -> list[str]:
        return list(dict.fromkeys(str(r.tags["workload"]) for r in self.records
                                  if "workload" in r.tags))

    def repeats(self) -> list[int]:
        return sorted({int(r.tags["repeat"]) for r in self.records if "repeat" in r.tags})


@dataclass
class _Source:
    name: str
    header: dict[str, Any]
    raw: list[dict[str, Any]]          # window records and restart markers, in order
    runs: list[dict[str, Any]]
    skipped: list[str]
    arm_labels: list[str]              # declared arms (labels or keys), in order
    arm_keys: list[str] | None = None  # recorded keys (with arm_labels as their labels)


def _dataset(path: Path) -> _Source:
    path = Path(path)
    wpath = path / "windows.jsonl.xz"
    if not wpath.exists():
        raise LogError(f"{path}: no windows.jsonl.xz (a dataset directory is what "
                       "`scxd-testbed record` packages)")
    header: dict[str, Any] = {}
    raw: list[dict[str, Any]] = []
    skipped: list[str] = []
    with lzma.open(wpath, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                rec = decode(line, f"{wpath}:{n}")
            except JournalError as exc:
                skipped.append(str(exc))
                continue
            if rec["kind"] == "header" and not header:
                header = rec
            elif rec["kind"] == "window":
                raw.append(rec)
    runs: list[dict[str, Any]] = []
    if (path / "runs.jsonl.xz").exists():
        from scxd.testbed.dataset import load_runs

        runs = load_runs(path)
    manifest: dict[str, Any] = {}
    if (path / "manifest.json").exists():
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except json.JSONDecodeError as exc:
            raise LogError(f"{path}/manifest.json: not valid JSON ({exc})") from None
    header = {**manifest, **header}
    arm_set = header.get("arm_set") or {}
    if arm_set.get("keys"):
        return _Source(str(path), header, raw, runs, skipped, list(arm_set["labels"]),
                       list(arm_set["keys"]))
    return _Source(str(path), header, raw, runs, skipped, list(header.get("arms") or []))


def _journal(path: Path) -> _Source:
    try:
        reader = JournalReader(Path(path))
    except JournalError as exc:
        raise LogError(str(exc)) from None
    header: dict[str, Any] = {}
    raw: list[dict[str, Any]] = []
    versions: set[tuple[Any, Any]] = set()
    arm_sets: dict[str, dict[str, list[str]]] = {}
    for rec in reader.records():
        if rec["kind"] == "header":
            header = header or rec
            versions.add((rec.get("feature_schema"), rec.get("feature_version")))
            if rec.get("arm_set"):
                arm_sets[rec["arm_set"]["hash"]] = rec["arm_set"]
        elif rec["kind"] == "event" and rec.get("event") == "start":
            raw.append({"kind": "restart"})
        elif rec["kind"] == "window":
            raw.append(rec)
    if len(versions) > 1:
        raise LogError(f"{path}: the journal's files mix feature schemas "
                       f"{sorted(map(str, versions))} (scxd was upgraded in between); replay "
                       "the files of one version at a time")
    if len(arm_sets) > 1:
        raise LogError(f"{path}: the journal's files mix arm sets {sorted(arm_sets)} (the "
                       "catalog or the installed schedulers changed); replay one at a time")
    if arm_sets:
        recorded = next(iter(arm_sets.values()))
        return _Source(str(path), header, raw, [], list(reader.skipped),
                       list(recorded["labels"]), list(recorded["keys"]))
    # Journals written before the arm set was logged: the eligible arms' labels.
    declared = list(dict.fromkeys(lbl for r in raw for lbl in r.get("eligible", ())))
    return _Source(str(path), header, raw, [], list(reader.skipped), declared)


def _arm_set(catalog: Catalog, src: _Source) -> ArmSet:
    where, declared = src.name, src.arm_labels
    if src.arm_keys is not None:
        try:
            return ArmSet.from_keys(src.arm_keys, src.arm_labels)
        except ArmSetError as exc:
            raise LogError(f"{where}: {exc}") from None
    actions = []
    try:
        for name in declared:
            if "=" in name or (" " not in name and name in catalog):
                actions.append(action_from_key(catalog, name) if "=" in name
                               else catalog.action(name))
            else:
                actions.append(action_from_label(catalog, name))
        return ArmSet(actions)
    except ArmSetError as exc:
        raise LogError(f"{where}: {exc}") from None


def _features(src: _Source) -> tuple[str, int, list[str]]:
    seen = {(r["features"].get("schema"), r["features"].get("version"))
            for r in src.raw if r.get("features")}
    if len(seen) > 1:
        raise LogError(f"{src.name} mixes feature schemas {sorted(map(str, seen))}; replay one "
                       "version at a time")
    if not seen:
        raise LogError(f"{src.name}: no window records with features")
    schema, version = next(iter(seen))
    return str(schema), int(version), list(src.header.get("feature_names") or [])


def load_logs(journals: Iterable[str | Path] = (), datasets: Iterable[str | Path] = (),
              catalog: Catalog | None = None) -> ReplayLog:
    """Read every source; refuse mixed feature schemas and arm sets."""
    catalog = catalog or build_catalog()
    sources = [_dataset(Path(d)) for d in datasets] + [_journal(Path(j)) for j in journals]
    if not sources:
        raise LogError("nothing to replay: give at least one --journal or --dataset")
    feats = {s.name: _features(s) for s in sources}
    kinds = {(f[0], f[1]) for f in feats.values()}
    if len(kinds) > 1:
        detail = "; ".join(f"{n}: {f[0]} v{f[1]}" for n, f in feats.items())
        raise LogError(f"the sources mix feature schemas ({detail}): their vectors are not "
                       "comparable; replay one version at a time")
    arms_by_source = {s.name: _arm_set(catalog, s) for s in sources}
    hashes = {a.hash for a in arms_by_source.values()}
    if len(hashes) > 1:
        detail = "; ".join(f"{n}: {len(a)} arms, hash {a.hash}"
                           for n, a in arms_by_source.items())
        raise LogError(f"the sources mix arm sets ({detail}): a learner's outputs are per "
                       "arm; replay sources recorded with the same arms")
    arms = next(iter(arms_by_source.values()))
    key_of_label = {a.label: a.key for a in arms}
    records: list[WindowRecord] = []
    transitions: list[Transition] = []
    runs: list[dict[str, Any]] = []
    skipped: list[str] = []
    for src in sources:
        joiner = TransitionJoiner(break_on="run_id")
        for raw in src.raw:
            if raw["kind"] == "restart":
                joiner.reset()
                continue
            rec = WindowRecord.from_journal(raw, key_of_label)
            records.append(rec)
            t = joiner.push(rec)
            if t is not None:
                transitions.append(t)
        runs += src.runs
        skipped += src.skipped
    schema, version, names = next(iter(feats.values()))
    window_s = next((float(s.header["recorder"]["window"]) for s in sources
                     if isinstance(s.header.get("recorder"), Mapping)
                     and "window" in s.header["recorder"]),
                    next((float(s.header["window_s"]) for s in sources
                          if "window_s" in s.header), None))
    return ReplayLog([s.name for s in sources], schema, version, names, arms, records,
                     transitions, runs, skipped, window_s)

