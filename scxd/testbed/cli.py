"""``scxd-testbed``: build the sched_ext kernel, boot it, record real data.

    scxd-testbed build [--scx-src DIR]   build (or verify the cached) kernel + schedulers
    scxd-testbed status             where the test bed is, whether it is built
    scxd-testbed kernel             fast mode: busybox guest, kernel-level scenarios
    scxd-testbed scenarios [--only a,b]   full mode: scxd's actuator and daemon in the guest
    scxd-testbed exec [--timeout S] [--rwdir DIR]... -- CMD...
                                    run CMD as root in the full-mode guest; its exit status
                                    and output come back (the schedulers are on PATH)
    scxd-testbed swap ARM [ARM...]  apply each ARM with scxd's actuator in the guest, one
                                    JSON line per swap (e.g. fair scx_bpfland:lowlatency
                                    "scx_flashyspark --dsq-mode cpu -K")
    scxd-testbed record [--repeats 3] [--out DIR] [--dataset data/testbed]
                                    workloads × arms × repeats, packaged as a dataset
                                    (resumable: run it again with the same --out)
    scxd-testbed package [--out RAW] [--dataset DIR]
                                    package a raw (e.g. interrupted) recording as a dataset
    scxd-testbed refeature [--dataset DIR]
                                    recompute a dataset's features under this build's
                                    schema from the metrics every window keeps
    scxd-testbed systemd [--out DIR]   Debian 12 + systemd as PID 1: the unit, for real

The scx schedulers (scx_bpfland, scx_flash, scx_flashyspark, …) are built from an upstream
source tree: --scx-src DIR, else $SCXD_SCX_SRC, else ../shared/third_party/scx beside the
repository when it exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scxd.catalog import CatalogError, build_catalog
from scxd.journal import JournalError
from scxd.testbed import build as tb_build
from scxd.testbed.dataset import PackagedDatasetError
from scxd.workloads import UnknownWorkload, WorkloadFileError

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


def exec_verb(art, args) -> int:
    from scxd.testbed.run import exec_in_guest

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("scxd-testbed exec: no command given (scxd-testbed exec -- CMD ...)",
              file=sys.stderr)
        return 2
    res = exec_in_guest(art, command, timeout=args.timeout,
                        rwdirs=tuple(d.resolve() for d in args.rwdir), cwd=Path.cwd())
    if args.json:
        print(json.dumps(res.as_dict()))
    else:
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        if res.run.problem():
            print(f"scxd-testbed exec: {res.run.problem()}", file=sys.stderr)
    # 125: the guest itself failed (crash, timeout), as `docker run` reports its own errors
    return res.returncode if res.returncode is not None else 125


def swap_verb(art, args) -> int:
    import tempfile

    from scxd.testbed.run import run_full

    catalog = build_catalog()
    for text in args.arms:  # syntax is checked here, before a 1-minute boot
        try:
            catalog.action_from_text(text)
        except CatalogError as exc:
            print(f"scxd-testbed swap: {text!r}: {exc}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="scxd-swap-") as tmp:
        out = Path(tmp)
        run = run_full(art, [sys.executable, "-m", "scxd.testbed.guest_swap", "--out",
                             str(out / "swaps.jsonl"), *args.arms], out,
                       timeout=args.timeout, cwd=Path.cwd())
    for rec in run.records:
        print(json.dumps(rec), flush=True)
    if run.problem():
        print(f"scxd-testbed swap: {run.problem()}", file=sys.stderr)
    done = len(run.records) == len(args.arms)
    return 0 if done and all(r.get("verified") for r in run.records) else 1


def prepare_recording(args: argparse.Namespace) -> list[str]:
    """Check a workloads file and copy it, and a reused design, into the recording's
    directory (the guest reads them there; they stay with the raw recording).  Returns the
    recorder's extra arguments."""
    from scxd.testbed.record import recorded_workloads

    recorded_workloads(args.only_workloads, args.workloads_file)  # every name resolves
    args.out.mkdir(parents=True, exist_ok=True)
    extra: list[str] = []
    if args.workloads_file:
        copy = args.out / "workloads.toml"
        wanted = args.workloads_file.read_bytes()
        # A resumed recording keeps its workloads: cells already done are known by name.
        if copy.exists() and copy.read_bytes() != wanted:
            raise WorkloadFileError(f"{copy} exists and differs from {args.workloads_file}: "
                                    "a recording keeps its workloads (use a new --out)")
        copy.write_bytes(wanted)
        extra += ["--workloads-file", str(copy)]
    if args.design_from:
        manifest = args.design_from / "manifest.json"
        try:
            design = json.loads(manifest.read_text()).get("design")
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            raise PackagedDatasetError(f"--design-from {manifest}: {exc}") from None
        if not isinstance(design, dict) or not all(design.get(k) is not None
                                                   for k in ("arms", "seed", "draws")):
            raise PackagedDatasetError(f"--design-from {manifest}: no recording design "
                                       "(arms, seed and draws) in it")
        saved = args.out / "design.json"
        try:
            same = not saved.exists() or json.loads(saved.read_text()) == design
        except json.JSONDecodeError as exc:
            raise PackagedDatasetError(f"{saved}: not valid JSON ({exc})") from None
        if not same:
            raise PackagedDatasetError(f"{saved} exists with another design than "
                                       f"{args.design_from}'s: use a new --out")
        saved.write_text(json.dumps(design, indent=1) + "\n")
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scxd-testbed",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--cache", type=Path, default=tb_build.DEFAULT_CACHE,
                        help="artifact cache directory (default: %(default)s)")
    parser.add_argument("--scx-src", type=Path, default=None,
                        help="upstream scx source tree (default: $SCXD_SCX_SRC, else "
                        "../shared/third_party/scx beside the repository)")
    sub = parser.add_subparsers(dest="verb", required=True)
    p_build = sub.add_parser("build", help="build (or verify cached) kernel + schedulers")
    p_build.add_argument("--scx-src", type=Path, default=argparse.SUPPRESS,
                         help="upstream scx source tree")
    p_build.add_argument("--jobs", "-j", type=int, default=None)
    p_build.add_argument("--no-install", action="store_true",
                         help="fail instead of installing missing Debian packages")
    sub.add_parser("status", help="print where the test bed is and whether it is built")
    sub.add_parser("kernel", help="fast mode: kernel-level scenarios in a busybox guest")
    p_sc = sub.add_parser("scenarios", help="scxd's actuator and daemon in the guest")
    p_sc.add_argument("--only", default="")
    p_sc.add_argument("--out", type=Path, default=Path("/tmp/scxd-testbed-scenarios"))
    p_exec = sub.add_parser("exec", help="run a command in the full-mode guest")
    p_exec.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    p_exec.add_argument("--rwdir", type=Path, action="append", default=[],
                        help="a host directory the guest may write (repeatable)")
    p_exec.add_argument("--json", action="store_true",
                        help="print one JSON object (returncode, stdout, stderr, …)")
    p_exec.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p_swap = sub.add_parser("swap", help="apply scheduler choices in the guest, verified")
    p_swap.add_argument("--timeout", type=float, default=900.0)
    p_swap.add_argument("arms", nargs="+", help="fair | NAME[:PRESET] [ARGS...] (quoted)")
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
    p_rec.add_argument("--workloads-file", type=Path, default=None,
                       help="workloads scxd does not declare, in TOML (see "
                       "bench/workloads/unseen.toml); checked before the guest boots")
    p_rec.add_argument("--design-from", type=Path, default=None,
                       help="a packaged dataset whose arms (its recording design) this "
                       "recording reuses, so that the two can be replayed together")
    p_pkg = sub.add_parser("package", help="package a raw recording (e.g. an interrupted "
                           "one) as a dataset, features under this build's schema")
    p_pkg.add_argument("--out", type=Path, default=Path("/var/tmp/scxd-testbed-record"),
                       help="the raw recording")
    p_pkg.add_argument("--dataset", type=Path, default=REPO / "data" / "testbed")
    p_ref = sub.add_parser("refeature", help="recompute a packaged dataset's window features "
                           "under this build's schema, from the metrics every window keeps")
    p_ref.add_argument("--dataset", type=Path, default=REPO / "data" / "testbed")
    p_sd = sub.add_parser("systemd", help="boot Debian 12 with systemd; check scxd's unit")
    p_sd.add_argument("--out", type=Path, default=Path("/tmp/scxd-testbed-systemd"))
    args = parser.parse_args(argv)
    try:
        if args.verb == "build":
            art = tb_build.build(args.cache, jobs=args.jobs, install=not args.no_install,
                                 scx_src=args.scx_src)
            print(json.dumps(tb_build.describe(art), indent=2))
            return 0
        # A recording's own inputs are checked first: a typo is not worth a boot.
        recorder_args = prepare_recording(args) if args.verb == "record" else []
        art = tb_build.artifacts_for(args.cache, args.scx_src)
        if args.verb == "status":
            print(json.dumps(tb_build.describe(art), indent=2))
            return 0
        if args.verb in ("package", "refeature"):
            from scxd.testbed.dataset import package, refeature

            if args.verb == "refeature":
                summary = refeature(args.dataset)
            else:
                summary = package(args.out, args.dataset, art)
            print(json.dumps(summary, indent=2))
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
        if args.verb == "exec":
            return exec_verb(art, args)
        if args.verb == "swap":
            return swap_verb(art, args)
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
            cmd += recorder_args
            run = tb_run.run_full(art, cmd, args.out, timeout=args.timeout, keep=True)
            if run.problem():
                print(run.problem(), file=sys.stderr)
            summary = package(args.out, args.dataset, art)
            print(json.dumps(summary, indent=2))
            return 0 if summary["complete"] else 1
    except (tb_build.BuildError, JournalError, PackagedDatasetError,
            WorkloadFileError, UnknownWorkload) as exc:
        # e.g. a recording whose guest never started has no journal to package
        print(f"scxd-testbed: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
