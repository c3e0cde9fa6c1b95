"""``scxd replay export``: recorded windows as one flat table for data tools.

    scxd replay export --dataset data/testbed --format parquet --out windows.parquet
    scxd replay export --journal /var/lib/scxd/journal --format csv --out windows.csv

One row per window (warm-up windows included, flagged): every feature by its schema name,
the decision context as ``ctx_<feature>``, ``arm`` (the arm's stable key), ``arm_label``,
``scheduler``, every parameter as ``param_<name>``, raw terms as ``term_<name>``,
``cost_<objective>`` for every objective, ``cost``/``reward`` under ``--objective``,
``propensity``, ``explore``, ``warmup``, ``window_id``, ``at``, and ``workload``,
``run_id``, ``repeat`` when present (see :mod:`scxd.replay.table`).  Parquet keeps the
metadata (feature schema, arm set) inside the file; csv and jsonl get a ``.meta.json``
sidecar.  ``scxd replay evaluate --table FILE`` reads any of them back.

In pandas: ``pd.read_parquet("windows.parquet")``; in polars: ``pl.read_parquet(…)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scxd.replay.inputs import add_input_arguments, load_table
from scxd.replay.table import FORMATS, TableError, guess_format, write

VERB = "export"
HELP = "recorded windows as one flat table (parquet, csv, jsonl)"

def add_arguments(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--format", choices=FORMATS, help="default: from --out's suffix")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.add_argument("--scored-only", action="store_true",
                   help="leave out warm-up windows and windows without a cost")


def run(args: argparse.Namespace) -> int:
    try:
        fmt = args.format or guess_format(args.out)
        table = load_table(args)
        if args.scored_only:
            import numpy as np

            keep = ~table.column("warmup").astype(bool) & np.isfinite(
                table.column("cost").astype(float))
            table = table.select(np.flatnonzero(keep))
        write(table, args.out, fmt)
    except (TableError, ValueError, OSError) as exc:
        print(f"scxd replay export: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {table.n} windows × {len(table.columns)} columns ({fmt}); arms "
          f"{len(table.arms)} (arm set {table.meta.get('arm_set')}), features "
          f"{len(table.feature_names)} ({table.meta.get('feature_schema')} "
          f"v{table.meta.get('feature_version')})", file=sys.stderr)
    return 0
