"""``scxd-testbed``: build the sched_ext kernel, boot it, record real data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scxd.testbed import build as tb_build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scxd-testbed", description=__doc__)
    parser.add_argument("--cache", type=Path, default=tb_build.DEFAULT_CACHE,
                        help="artifact cache directory (default: %(default)s)")
    sub = parser.add_subparsers(dest="verb", required=True)
    p_build = sub.add_parser("build", help="build (or verify cached) kernel + schedulers")
    p_build.add_argument("--jobs", "-j", type=int, default=None)
    p_build.add_argument("--no-install", action="store_true",
                         help="fail instead of installing missing Debian packages")
    sub.add_parser("status", help="print where the test bed is and whether it is built")
    args = parser.parse_args(argv)
    try:
        if args.verb == "build":
            art = tb_build.build(args.cache, jobs=args.jobs, install=not args.no_install)
            print(json.dumps(tb_build.describe(art), indent=2))
        elif args.verb == "status":
            print(json.dumps(tb_build.describe(tb_build.artifacts_for(args.cache)), indent=2))
    except tb_build.BuildError as exc:
        print(f"scxd-testbed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
