"""The columnar form of recorded windows: what ``export`` writes and ``evaluate`` reads fast.

A :class:`Table` is one row per window, numpy columns by name, plus metadata (feature schema
and names, the arm set's keys, labels and hash, objectives, sources).  Column names:

* every feature by its schema name (``cpu_user``, ``runq_per_core``, …);
* ``arm`` (the arm's stable key), ``arm_label`` (its command line), ``scheduler``, and
  ``param_<name>`` for every parameter of every scheduler in the arm set (empty where the
  arm's scheduler has no such parameter);
* ``term_<name>`` raw reward terms, ``cost_<objective>`` for every objective, ``cost`` and
  ``reward`` under the chosen objective;
* ``propensity`` (the probability with which the arm running in the window was chosen,
  NaN when unknown), ``explore``, ``warmup``, ``window_id``, ``at``;
* ``workload``, ``run_id``, ``repeat`` when the source has them.

Formats: parquet (pyarrow; metadata in the file's schema metadata, dictionary-encoded string
columns — the format to use for millions of windows), csv and jsonl (metadata in a
``<file>.meta.json`` sidecar).  All three read back into the same :class:`Table`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("parquet", "csv", "jsonl")
META_KEY = b"scxd"
TABLE_VERSION = 1


class TableError(ValueError):
    """A table that cannot be written or read as asked; the message names the file."""


def optional_import(module: str, feature: str):
    """Import an optional dependency or raise a TableError that says how to install it."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise TableError(f"{feature} needs {module.split('.')[0]}: "
                         "pip install 'scxd[replay]'") from None


@dataclass
class Table:
    columns: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.meta.pop("dtypes", None)
        lengths = {k: len(v) for k, v in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise TableError(f"columns of different lengths: {lengths}")

    @property
    def n(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def feature_names(self) -> list[str]:
        return list(self.meta.get("feature_names", []))

    @property
    def arms(self) -> list[str]:
        """Arm keys in arm-set order (the index every learner and estimator uses)."""
        return list(self.meta.get("arms", []))

    @property
    def arm_labels(self) -> list[str]:
        return list(self.meta.get("arm_labels", self.arms))

    def features(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """(n, F) float64 feature matrix (in schema order)."""
        sel = slice(None) if rows is None else rows
        return np.column_stack([self.columns[f][sel].astype(np.float64)
                                for f in self.feature_names])

    def contexts(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """(n, F) decision contexts: the features each row's arm was chosen from (NaN rows:
        no decision led to the window)."""
        names = self.meta.get("context_columns") or [f"ctx_{f}" for f in self.feature_names]
        sel = slice(None) if rows is None else rows
        cols = [self.column(c)[sel] for c in names]
        dtype = np.float32 if all(c.dtype == np.float32 for c in cols) else np.float64
        return np.column_stack([c.astype(dtype, copy=False) for c in cols])

    def actions(self) -> np.ndarray:
        """Index of each row's arm in :attr:`arms` (int32)."""
        index = {k: i for i, k in enumerate(self.arms)}
        col = self.column("arm")
        try:
            return np.fromiter((index[k] for k in col), dtype=np.int32, count=len(col))
        except KeyError:
            unknown = sorted({str(k) for k in col if k not in index})
            raise TableError(f"arms {unknown[:3]} are not in the table's arm set") from None

    def column(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise TableError(f"no column {name!r} (have: {', '.join(self.columns)})") from None

    def select(self, rows: np.ndarray) -> Table:
        return Table({k: v[rows] for k, v in self.columns.items()}, dict(self.meta))


# -- writing ---------------------------------------------------------------------------------

def write(table: Table, path: Path, fmt: str | None = None) -> Path:
    path = Path(path)
    fmt = fmt or guess_format(path)
    if fmt == "parquet":
        pa = optional_import("pyarrow", "parquet export")
        pq = optional_import("pyarrow.parquet", "parquet export")
        arrays = {k: _arrow_column(pa, v) for k, v in table.columns.items()}
        at = pa.table(arrays)
        at = at.replace_schema_metadata({META_KEY: json.dumps(_meta(table)).encode()})
        pq.write_table(at, path, compression="zstd")
        return path
    if fmt == "csv":
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            names = list(table.columns)
            w.writerow(names)
            cols = [table.columns[k] for k in names]
            for i in range(table.n):
                w.writerow([_cell(c[i]) for c in cols])
    elif fmt == "jsonl":
        names = list(table.columns)
        cols = [table.columns[k] for k in names]
        with open(path, "w") as fh:
            for i in range(table.n):
                fh.write(json.dumps({k: _json(c[i]) for k, c in zip(names, cols, strict=True)})
                         + "\n")
    else:
        raise TableError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    Path(str(path) + ".meta.json").write_text(json.dumps(_meta(table), indent=1) + "\n")
    return path


def guess_format(path: Path) -> str:
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix in FORMATS:
        return suffix
    raise TableError(f"{path}: cannot tell the format from the suffix; use "
                     f".parquet, .csv or .jsonl (or --format)")


def _meta(table: Table) -> dict[str, Any]:
    return {"table_version": TABLE_VERSION, **table.meta,
            "dtypes": {k: _kind(v) for k, v in table.columns.items()}}


def _kind(v: np.ndarray) -> str:
    if v.dtype == object or v.dtype.kind in "US":
        return "str"
    if v.dtype.kind == "b":
        return "bool"
    if v.dtype.kind in "iu":
        return "int"
    return "float"


def _arrow_column(pa, v: np.ndarray):
    if _kind(v) == "str":
        return pa.array([None if x is None else str(x) for x in v]).dictionary_encode()
    return pa.array(v)


def _cell(x: Any) -> Any:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, np.bool_ | bool):
        return "true" if x else "false"
    return x


def _json(x: Any) -> Any:
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# -- reading ---------------------------------------------------------------------------------

def read(path: Path, fmt: str | None = None,
         columns: Callable[[dict[str, Any]], list[str]] | None = None) -> Table:
    """Read a table back.  ``columns`` (parquet only) maps the table's metadata to the
    columns to read: a fast path for evaluation, which needs a few of a wide table's."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: no such file")
    fmt = fmt or guess_format(path)
    if fmt == "parquet":
        pq = optional_import("pyarrow.parquet", "reading parquet")
        try:
            at = pq.read_table(path, columns=_present(pq, path, columns))
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise TableError(f"{path}: not a readable parquet file ({exc})") from None
        raw = (at.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise TableError(f"{path}: no scxd metadata (not written by `scxd replay export`)")
        meta = json.loads(raw)
        cols = {}
        for name in at.column_names:
            col = at.column(name)
            if _is_dictionary(col):
                col = col.combine_chunks()
                cols[name] = np.asarray([*col.dictionary.to_pylist(), None],
                                        dtype=object)[_indices(col)]
            else:
                cols[name] = col.to_numpy(zero_copy_only=False)
        return _typed(cols, meta)
    sidecar = Path(str(path) + ".meta.json")
    if not sidecar.exists():
        raise TableError(f"{path}: no {sidecar.name} beside it (written by export)")
    meta = json.loads(sidecar.read_text())
    if fmt == "csv":
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            raise TableError(f"{path}: empty")
        names, body = rows[0], rows[1:]
        cols = {k: np.array([r[i] for r in body], dtype=object) for i, k in enumerate(names)}
    elif fmt == "jsonl":
        recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        names = list(meta.get("dtypes", {})) or (list(recs[0]) if recs else [])
        cols = {k: np.array([r.get(k) for r in recs], dtype=object) for k in names}
    else:
        raise TableError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return _typed(cols, meta)


def _present(pq, path: Path, columns: Callable[[dict[str, Any]], list[str]] | None
             ) -> list[str] | None:
    if columns is None:
        return None
    schema = pq.read_schema(path)
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        return None  # the caller reports the missing metadata
    have = set(schema.names)
    return [c for c in columns(json.loads(raw)) if c in have]


def _is_dictionary(col) -> bool:
    return str(col.type).startswith("dictionary")


def _indices(col) -> np.ndarray:
    idx = col.indices.to_numpy(zero_copy_only=False)
    if col.null_count:  # nulls come back as NaN: point them at the trailing None
        mask = np.asarray(col.is_null())
        idx = np.where(mask, len(col.dictionary), np.nan_to_num(idx))
    return idx.astype(np.int64)


def _typed(cols: dict[str, np.ndarray], meta: dict[str, Any]) -> Table:
    """Restore each column's dtype from the metadata (csv/jsonl give strings/objects)."""
    dtypes = meta.pop("dtypes", {})
    out: dict[str, np.ndarray] = {}
    for name, v in cols.items():
        kind = dtypes.get(name, "str")
        if kind == "str":
            out[name] = np.array([None if x in (None, "") else str(x) for x in v], dtype=object)
        elif kind == "bool":
            out[name] = np.array([x in (True, "true", "True", 1, "1") for x in v], dtype=bool) \
                if v.dtype == object else v.astype(bool)
        elif kind == "int":
            out[name] = v.astype(np.int64) if v.dtype != object else \
                np.array([int(x) if x not in (None, "") else 0 for x in v], dtype=np.int64)
        else:
            out[name] = v.astype(np.float64) if v.dtype != object else \
                np.array([float(x) if x not in (None, "") else math.nan for x in v])
    return Table(out, meta)
