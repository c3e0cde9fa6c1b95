"""``scxd tune``: benchmark-driven tuning of one scheduler from the command line.

    scxd tune --scheduler scx_bpfland --benchmark "perf bench sched messaging -g 2 -l 50" \\
              --budget 24 --repeats 3 --out tune-bpfland
    scxd tune --resume --out tune-bpfland          # continue an interrupted run
    scxd tune --reproduce tune-bpfland             # re-apply the best and measure again
    scxd tune --scheduler scx_flashyspark --dry-run --benchmark "…"   # show the plan

Exit codes: 0 done, 1 failed (no sched_ext, broken benchmark, a reproduction outside its
interval), 2 bad usage, 130 interrupted (the outputs so far are written; ``--resume``).
This module only defines arguments; the heavy work is imported when the verb runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "tune", help="tune one scheduler's parameters with a real benchmark (Optuna)",
        description="Tune one scheduler's parameters with a real benchmark: Optuna proposes\n"
        "configurations, scxd's actuator applies and verifies each in the kernel, and the\n"
        "benchmark measures it against the fair scheduler and the scheduler's defaults.",
        epilog="examples:\n" + "\n".join(__doc__.splitlines()[2:7]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE",
                   help="scxd config ([schedulers.NAME] ranges, binary search path)")
    what = p.add_argument_group("what to tune")
    what.add_argument("--scheduler", "-s", metavar="NAME", help="catalog name (scxd catalog)")
    sel = what.add_mutually_exclusive_group()
    sel.add_argument("--params", metavar="A,B,…", help="parameters to search")
    sel.add_argument("--all", action="store_true",
                     help="every parameter the catalog lets the policy explore (default)")
    what.add_argument("--range", action="append", default=[], metavar="NAME=LOW:HIGH[:log]",
                      help="a parameter's range, or NAME=v1,v2,… values (repeatable)")
    what.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                      help="hold a parameter at a value (repeatable)")
    bench = p.add_argument_group("the benchmark")
    bench.add_argument("--benchmark", "-b", metavar="CMD", help="shell command to run")
    bench.add_argument("--parser", metavar="NAME",
                       help="perf-messaging, perf-pipe, hackbench, stress-ng, cyclictest, "
                       "llama-bench, json:PATH, regex:PATTERN (default: guessed from CMD)")
    bench.add_argument("--metric", metavar="NAME", help="default: the parser's own")
    way = bench.add_mutually_exclusive_group()
    way.add_argument("--maximize", action="store_true", help="higher is better")
    way.add_argument("--minimize", action="store_true", help="lower is better")
    bench.add_argument("--timeout", type=float, default=600.0, metavar="S",
                       help="per benchmark run (default: %(default)s)")
    run = p.add_argument_group("the run")
    run.add_argument("--budget", "-n", type=int, metavar="N", help="search trials (default 20)")
    run.add_argument("--repeats", "-r", type=int, metavar="R",
                     help="measured runs per trial (default 3; --reproduce: the run's)")
    run.add_argument("--warmup", "-w", type=int, default=1, metavar="W",
                     help="unmeasured runs after each swap (default: %(default)s)")
    run.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    run.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe",
                     help="Optuna sampler (default: %(default)s)")
    run.add_argument("--grid-points", type=int, default=5, metavar="K",
                     help="values per numeric range for --sampler grid (default: %(default)s)")
    run.add_argument("--baseline-every", type=int, metavar="K",
                     help="re-measure the baselines every K trials (default: budget/4, ≥ 4)")
    run.add_argument("--confirm-repeats", type=int, metavar="R",
                     help="re-measure the best at the end (default: --repeats; 0: no)")
    run.add_argument("--no-early-stop", action="store_true",
                     help="always spend the whole budget")
    run.add_argument("--min-trials", type=int, metavar="M",
                     help="never stop early before M trials (default: budget/3, ≥ 5)")
    run.add_argument("--stop-probability", type=float, default=0.05, metavar="P",
                     help="stop when the remaining budget's chance to beat the best is "
                     "below P (default: %(default)s)")
    run.add_argument("--out", "-o", metavar="DIR",
                     help="output directory (default: scxd-tune-NAME-TIMESTAMP)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument("--quiet", "-q", action="store_true", help="no live progress")
    mode = p.add_argument_group("other modes")
    mode.add_argument("--dry-run", action="store_true",
                      help="print the search space and plan, run nothing")
    mode.add_argument("--reproduce", metavar="DIR",
                      help="re-apply DIR/best_parameters.json and measure it again")
    return p


def _split(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"{what} expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _space_args(spec: Any, args: argparse.Namespace) -> tuple[list[str] | None, dict, dict]:
    from scxd.catalog import CatalogError, parse_value
    from scxd.tune.space import parse_range

    params = [x.strip() for x in args.params.split(",") if x.strip()] if args.params else None
    ranges = {}
    for name, text in _split(args.range, "--range").items():
        ranges[name] = parse_range(spec.param(name), text)
    fixed = {}
    for name, text in _split(args.fix, "--fix").items():
        p = spec.param(name)
        try:
            raw = {"on": "true", "off": "false"}.get(text.lower(), text) \
                if p.kind == "bool" else text
            fixed[name] = p.check(parse_value(p, raw))
        except CatalogError as exc:
            raise ValueError(f"--fix {name}: {exc}") from None
    if params is not None:
        params += [n for n in ranges if n not in params]
    return params, ranges, fixed


def _direction(args: argparse.Namespace) -> str | None:
    return "maximize" if args.maximize else "minimize" if args.minimize else None


def dry_run(args: argparse.Namespace, settings: Any) -> int:
    from scxd.hostfs import HostFS
    from scxd.probe import probe_catalog
    from scxd.tune.api import _benchmark, build_space
    from scxd.tune.session import catalog_with

    catalog, name = catalog_with(settings, args.scheduler)
    probed = probe_catalog(catalog, settings.actuator.search_path, HostFS(settings.host_root))
    avail = probed.availability[name]
    spec = probed.catalog.get(name)
    params, ranges, fixed = _space_args(spec, args)
    space = build_space(spec, params, ranges, fixed, avail.dropped)
    opts = _options(args)
    where = f"available: {avail.binary_path}" if avail.available else \
        f"NOT available here: {avail.reason}"
    print(f"scheduler: {name} ({where})")
    for pname, why in avail.dropped.items():
        print(f"  dropped {pname}: {why}")
    print("search space:")
    for line in space.describe():
        print(f"  {line}")
    if spec.constraints:
        print(f"constraints: {', '.join(c.text for c in spec.constraints)}")
    if args.benchmark:
        b = _benchmark(args.benchmark, args.parser, args.metric, _direction(args),
                       args.timeout)
        print(f"benchmark: {b.command_text}\n  parser {b.parser}, metric {b.metric} "
              f"({'higher' if b.higher_is_better else 'lower'} is better)")
    rounds = 1 + (opts.budget - 1) // opts.every + 1
    nb = 1 if spec.is_fair else 2
    per = opts.repeats + opts.warmup
    runs = opts.budget * per + rounds * nb * per + (opts.confirm + opts.warmup
                                                    if opts.confirm else 0)
    print(f"plan: {opts.budget} trials with {opts.sampler} (seed {opts.seed}); baseline rounds "
          f"of {nb} every {opts.every} trials (≈{rounds}); at most {runs} benchmark runs")
    if opts.sampler == "grid":
        print(f"grid: {space.grid_size(opts.grid_points)} points")
    return EXIT_OK


def _options(args: argparse.Namespace) -> Any:
    from scxd.tune.session import RunOptions

    return RunOptions(args.budget or 20, args.repeats or 3, args.warmup, args.seed, args.sampler,
                      args.grid_points, args.baseline_every, args.confirm_repeats,
                      not args.no_early_stop, args.min_trials, args.stop_probability)


def run(args: argparse.Namespace, settings: Any, argv: list[str] | None = None) -> int:
    from scxd.catalog import CatalogError
    from scxd.tune import api
    from scxd.tune.session import NoSchedExt, Progress, TuneError, TuneUsageError
    from scxd.tune.space import SpaceError

    if argv is None:     # what the user typed after "tune", for the test-bed hint
        argv = sys.argv[sys.argv.index("tune") + 1:] if "tune" in sys.argv else []
    hint = list(argv)
    if settings.log_level != "debug":   # each trial's line says what the actuator did
        logging.getLogger("scxd.actuator").setLevel(logging.ERROR)
    try:
        if args.reproduce:
            res = api.reproduce(args.reproduce, args.repeats, settings=settings,
                                command_hint=hint, progress=Progress(enabled=not args.quiet))
            return EXIT_OK if res.within_interval else EXIT_FAILURE
        if args.resume and not args.scheduler:
            if not args.out:
                print("scxd tune: --resume needs --out DIR", file=sys.stderr)
                return EXIT_USAGE
            result = api.resume(args.out, args.budget, settings=settings, command_hint=hint,
                                progress=Progress(enabled=not args.quiet))
        else:
            if not args.scheduler or (not args.benchmark and not args.dry_run):
                print("scxd tune: give --scheduler NAME and --benchmark CMD (or --resume "
                      "--out DIR, or --reproduce DIR)", file=sys.stderr)
                return EXIT_USAGE
            if args.dry_run:
                return dry_run(args, settings)
            from scxd.tune.session import catalog_with

            catalog, name = catalog_with(settings, args.scheduler)
            params, ranges, fixed = _space_args(catalog.get(name), args)
            o = _options(args)
            result = api.optimize_scheduler(
                name, args.benchmark, args.metric, o.budget, parser=args.parser,
                direction=_direction(args), params=params, space=ranges, fixed=fixed,
                repeats=o.repeats, warmup=o.warmup, seed=o.seed, sampler=o.sampler,
                grid_points=o.grid_points, baseline_every=args.baseline_every,
                confirm_repeats=args.confirm_repeats, early_stop=o.early_stop,
                min_trials=args.min_trials, stop_probability=o.stop_probability,
                timeout=args.timeout, out=args.out, resume=args.resume, settings=settings,
                progress=Progress(enabled=not args.quiet), command_hint=hint)
    except NoSchedExt as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILURE
    except (ValueError, SpaceError, CatalogError, TuneUsageError) as exc:
        print(f"scxd tune: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TuneError as exc:
        print(f"scxd tune: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if result.analysis.best is not None else EXIT_FAILURE
