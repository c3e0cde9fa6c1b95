"""``scxd replay VERB …``: the offline verbs, each a module of this package.

A verb module exposes ``VERB`` (its name on the command line), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> exit code``; it keeps heavy imports (torch,
bcc) inside ``run`` so ``scxd --help`` stays fast.  Adding a verb is one line in
:data:`VERBS`.  Exit codes: 0 success, 1 a check failed, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

#: Modules implementing ``scxd replay`` verbs, in the order ``--help`` lists them.
VERBS: tuple[str, ...] = (
    "scxd.replay.train",
    "scxd.replay.evaluate",
    "scxd.replay.export",
    "scxd.replay.report",
    "scxd.replay.validate_reward",
    "scxd.replay.bench",
)


def verb_modules() -> list[ModuleType]:
    return [importlib.import_module(m) for m in VERBS]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``replay`` and its verbs to the ``scxd`` command line."""
    replay = sub.add_parser("replay", help="offline: check rewards, train and evaluate "
                            "policies on recorded windows")
    verbs = replay.add_subparsers(dest="replay_verb", required=True, metavar="VERB")
    for mod in verb_modules():
        p = verbs.add_parser(mod.VERB, help=mod.HELP, description=mod.__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(replay_run=mod.run)
    return replay


def run(args: argparse.Namespace) -> int:
    return args.replay_run(args)
