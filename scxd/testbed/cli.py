"""``scxd-testbed``: build the sched_ext kernel, boot it, record real data.

    scxd-testbed build              build (or verify the cached) kernel + schedulers
    scxd-testbed status             where the test bed is, whether it is built
    scxd-testbed kernel             fast mode: busybox guest, kernel-level scenarios
    scxd-testbed scenarios [--only a,b]   full mode: scxd's actuator and daemon in the guest
    scxd-testbed record [--repeats 3] [--out DIR] [--dataset data/testbed]
                                    workloads × arms × repeats, packaged as a dataset
                                    (resumable: run it again with the same --out)
    scxd-testbed systemd [--out DIR]   Debian 12 + systemd as PID 1: the unit, for real
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scxd.testbed import build as tb_build

REPO = Path(__file__).resolve().parents[2]


def print_run(run) -> int:
    for rec in run.records:
        ok = rec.get("ok")
        print(f"{rec.get('scenario', '?'):24s} {'ok' if ok else 'FAILED'}")
        for c in rec.get("checks", []):
            if not c["ok"]:
                print(f"    ✗ {c['what']}: {json.dumps(c['got'])[:300]}")
    problem = run.problem()
    if problem:
        print(problem, file=sys.stderr)
    failed = problem or not run.records or not all(r.get("ok", True) for r in run.records)
    print(f"guest ran {run.seconds:.0f} s", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scxd-testbed",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--cache", type=Path, default=tb_build.DEFAULT_CACHE,
                        help="artifact cache directory (default: %(default)s)")
    sub = parser.add_subparsers(dest="verb", required=True)
    p_build = sub.add_parser("build", help="build (or verify cached) kernel + schedulers")
    p_build.add_argument("--jobs", "-j", type=int, default=None)
    p_build.add_argument("--no-install", action="store_true",
                         help="fail instead of installing missing Debian packages")
    sub.add_parser("status", help="print where the test bed is and whether it is built")
    sub.add_parser("kernel", help="fast mode: kernel-level scenarios in a busybox guest")
    p_sc = sub.add_parser("scenarios", help="scxd's actuator and daemon in the guest")
    p_sc.add_argument("--only", default="")
    p_sc.add_argument("--out", type=Path, default=Path("/tmp/scxd-testbed-scenarios"))
    p_rec = sub.add_parser("record", help="record workloads × arms × repeats")
    p_rec.add_argument("--repeats", type=int, default=3)
    p_rec.add_argument("--out", type=Path, default=Path("/var/tmp/scxd-testbed-record"),
                       help="raw recording (resumable)")
    p_rec.add_argument("--dataset", type=Path, default=REPO / "data" / "testbed",
                       help="where the packaged dataset goes")
    p_rec.add_argument("--timeout", type=float, default=4 * 3600)
    p_rec.add_argument("--windows", type=int, default=3, help="scored windows per cell")
    p_rec.add_argument("--draws", type=int, default=8,
                       help="parameter draws added to the named presets")
    p_rec.add_argument("--only-workloads", default="", help="comma-separated workloads")
    p_rec.add_argument("--only-arms", default="", help="comma-separated arm labels")
    p_sd = sub.add_parser("systemd", help="boot Debian 12 with systemd; check scxd's unit")
    p_sd.add_argument("--out", type=Path, default=Path("/tmp/scxd-testbed-systemd"))
    args = parser.parse_args(argv)
    try:
        if args.verb == "build":
            art = tb_build.build(args.cache, jobs=args.jobs, install=not args.no_install)
            print(json.dumps(tb_build.describe(art), indent=2))
            return 0
        art = tb_build.artifacts_for(args.cache)
        if args.verb == "status":
            print(json.dumps(tb_build.describe(art), indent=2))
            return 0
        if not art.complete():
            print("scxd-testbed: the test bed is not built: run `scxd-testbed build`",
                  file=sys.stderr)
            return 1
        from scxd.testbed import run as tb_run

        if args.verb == "kernel":
            script = (Path(__file__).with_name("guest") / "kernel.sh").read_text()
            run = tb_run.run_fast(art, script, timeout=300)
            for rec in run.records:
                print(json.dumps(rec))
            if run.problem():
                print(run.problem(), file=sys.stderr)
                return 1
            return 0
        if args.verb == "scenarios":
            cmd = [sys.executable, "-m", "scxd.testbed.guest_scenarios", "--testbed",
                   str(art.root), "--out", str(args.out)]
            if args.only:
                cmd += ["--only", args.only]
            return print_run(tb_run.run_full(art, cmd, args.out, timeout=1800))
        if args.verb == "systemd":
            from scxd.testbed.systemd_guest import main_systemd

            return main_systemd(art, args.cache, args.out)
        if args.verb == "record":
            from scxd.testbed.dataset import package

            cmd = [sys.executable, "-m", "scxd.testbed.record", "--testbed", str(art.root),
                   "--out", str(args.out), "--repeats", str(args.repeats),
                   "--windows", str(args.windows), "--draws", str(args.draws),
                   "--only-workloads", args.only_workloads, "--only-arms", args.only_arms]
            run = tb_run.run_full(art, cmd, args.out, timeout=args.timeout, keep=True)
            if run.problem():
                print(run.problem(), file=sys.stderr)
            summary = package(args.out, args.dataset, art)
            print(json.dumps(summary, indent=2))
            return 0 if summary["complete"] else 1
    except tb_build.BuildError as exc:
        print(f"scxd-testbed: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
