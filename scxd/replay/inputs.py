"""What every replay verb reads: ``--journal``/``--dataset`` (through :mod:`scxd.replay.logs`)
or ``--table`` (an ``export`` file), turned into one :class:`~scxd.replay.table.Table`; and the
target policies named on the command line.

Journals and datasets become a table through :mod:`scxd.replay.build` (imported only then:
reading an exported table needs neither the catalog nor the journal reader).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scxd.config import PolicyConfig
from scxd.replay.offpolicy import FixedTarget, Target, arm_index
from scxd.replay.table import Table, TableError, read
from scxd.reward import OBJECTIVES

DEFAULT_OBJECTIVE: str = PolicyConfig.model_fields["objective"].default
#: A progress bar appears only for work that lasts longer than this (seconds).
PROGRESS_DELAY_S = 2.0


def add_input_arguments(p: argparse.ArgumentParser, objective: bool = True) -> None:
    src = p.add_argument_group("recorded windows (any mix of one kind: same features, arms)")
    src.add_argument("--journal", action="append", type=Path, default=[], metavar="DIR",
                     help="a scxd journal directory (repeatable)")
    src.add_argument("--dataset", action="append", type=Path, default=[], metavar="DIR",
                     help="a packaged test-bed dataset directory (repeatable)")
    src.add_argument("--table", type=Path, metavar="FILE",
                     help="a table written by `scxd replay export` (.parquet/.csv/.jsonl)")
    if objective:
        p.add_argument("--objective", choices=OBJECTIVES, default=DEFAULT_OBJECTIVE,
                       help=f"cost to evaluate (default {DEFAULT_OBJECTIVE})")


@contextmanager
def progress(total: int, desc: str, unit: str = "it") -> Iterator[Any]:
    """A tqdm bar on stderr, shown only when the work outlasts PROGRESS_DELAY_S and stderr is
    a terminal."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, delay=PROGRESS_DELAY_S, leave=False,
              disable=None, file=sys.stderr, unit_scale=True) as bar:
        yield bar


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """One BLAS thread for replay's many small matrix products: OpenBLAS' pool spin-waits
    for cores that other processes hold, and on the 2-core development VM a 1 M-window
    evaluation took 7–12 s with its default two threads and 3.6–4 s with one (measured
    side by side; ``bench/replay_evaluate.py``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def load_table(args: argparse.Namespace,
               columns: Callable[[dict[str, Any]], list[str]] | None = None) -> Table:
    """The table the command line names (exactly one kind of source); ``columns`` limits
    what is read of a parquet table."""
    if args.table and (args.journal or args.dataset):
        raise TableError("give --table, or --journal/--dataset, not both")
    if args.table:
        return read(args.table, columns=columns)
    if not (args.journal or args.dataset):
        raise TableError("nothing to read: give --dataset DIR, --journal DIR or --table FILE")
    from scxd.replay.build import table_from_log
    from scxd.replay.logs import load_logs

    log = load_logs(journals=args.journal, datasets=args.dataset)
    return table_from_log(log, getattr(args, "objective", DEFAULT_OBJECTIVE))


# -- targets ------------------------------------------------------------------------------------

def resolve_target(spec: str, table: Table, args: argparse.Namespace) -> Target:
    """``fixed:ARM`` or a bare arm label/key → always that arm; else a registered policy."""
    if spec.startswith("fixed:"):
        arm = spec.split(":", 1)[1]
        return FixedTarget(f"fixed:{arm}", arm_index(table, arm), len(table.arms))
    if spec in table.arm_labels or spec in table.arms:
        return FixedTarget(f"fixed:{spec}", arm_index(table, spec), len(table.arms))
    from scxd.replay.policies import policy_target

    return policy_target(spec, table, args)
