"""``scxd``: the daemon's command line (run, observe, check-config, catalog, tune, replay).

Exit codes: 0 success, 1 run-time failure, 2 bad usage or bad configuration (nothing was
started).  Configuration precedence: defaults < TOML (--config) < SCXD_* env < flags.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from scxd import __version__
from scxd.catalog import Catalog, CatalogError, build_catalog
from scxd.config import ConfigError, Settings, effective_toml, example_toml, load_config
from scxd.probe import ProbedCatalog

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _set(overrides: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None:
        return
    *parents, leaf = dotted.split(".")
    node = overrides
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scxd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"scxd {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", metavar="FILE",
                       help="TOML config (default: /etc/scxd/config.toml when present)")
        return p

    run = with_config(sub.add_parser("run", help="run the daemon in the foreground"))
    run.add_argument("--socket", metavar="PATH", help="control socket path")
    run.add_argument("--metrics-address", metavar="HOST:PORT", help="Prometheus listen address")
    run.add_argument("--state-dir", metavar="DIR", help="journal and persisted intent")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--quiet", "-q", action="store_true",
                     help="no line per window (the systemd unit runs quiet)")

    obs = with_config(sub.add_parser("observe", help="print windows as they close"))
    obs.add_argument("--count", "-n", type=int, metavar="N",
                     help="stop after N windows (default: until interrupted)")
    obs.add_argument("--interval", type=float, metavar="S", help="sample interval, seconds")
    obs.add_argument("--window", type=float, metavar="S", help="window length, seconds")
    obs.add_argument("--json", action="store_true", help="one JSON object per line")
    obs.add_argument("--print-bpf", action="store_true",
                     help="print the BPF program and its cflags, then exit")

    cat = with_config(sub.add_parser("catalog", help="list schedulers, parameters, presets "
                                     "and whether they are available here"))
    fmt = cat.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable")
    fmt.add_argument("--markdown", action="store_true",
                     help="the README table (built-in catalog, no probing)")

    chk = sub.add_parser("check-config", help="validate a config and print the effective one")
    chk.add_argument("path", nargs="?", metavar="PATH",
                     help="config file (default: /etc/scxd/config.toml when present)")
    chk.add_argument("--example", action="store_true",
                     help="print the documented example config (all defaults)")

    from scxd.tune.cli import add_parser as add_tune_parser

    add_tune_parser(sub)
    from scxd.replay.cli import add_parser as add_replay

    add_replay(sub)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    for attr, key in (("socket", "control.socket"), ("metrics_address", "metrics.address"),
                      ("state_dir", "state_dir"), ("log_level", "log_level"),
                      ("interval", "telemetry.sample_interval"), ("window", "telemetry.window")):
        _set(o, key, getattr(args, attr, None))
    return o


def catalog_from_settings(settings: Settings, source: str | None) -> Catalog:
    """The catalog with the config's [schedulers.*] applied; errors become ConfigError."""
    try:
        return build_catalog(settings.scheduler_overrides())
    except CatalogError as exc:
        raise ConfigError(f"{source or 'settings'}: {exc}") from None


def probed_catalog(settings: Settings, source: str | None) -> ProbedCatalog:
    from scxd.hostfs import HostFS
    from scxd.probe import probe_catalog

    return probe_catalog(catalog_from_settings(settings, source),
                         settings.actuator.search_path, HostFS(settings.host_root))


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    catalog_from_settings(settings, args.path)
    print(effective_toml(settings), end="")
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from scxd.catalog_view import catalog_json, catalog_markdown, catalog_text

    if args.markdown:
        print(catalog_markdown(catalog_from_settings(settings, args.config)))
        return EXIT_OK
    probed = probed_catalog(settings, args.config)
    if args.json:
        print(json.dumps(catalog_json(probed), indent=2))
    else:
        print(catalog_text(probed), end="")
    return EXIT_OK


def cmd_observe(args: argparse.Namespace, settings: Settings) -> int:
    from scxd.observe import observe

    if args.count is not None and args.count < 1:
        print("scxd observe: --count must be ≥ 1", file=sys.stderr)
        return EXIT_USAGE
    if args.print_bpf:
        from pathlib import Path

        from scxd.hostfs import HostFS
        from scxd.telemetry.bpf import BpfSchedSource

        t = settings.telemetry
        src = BpfSchedSource(HostFS(settings.host_root),
                             bpf_dir=Path(t.bpf_dir) if t.bpf_dir else None,
                             max_tasks=t.max_tasks, ringbuf_pages=t.ringbuf_pages)
        print(src.source_text())
        return EXIT_OK
    return observe(settings, args.count, args.json)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from scxd.notify import Notifier

    # Under systemd, the first start-up phase is announced before the daemon's modules load:
    # on a slow (emulated) machine the imports alone take a good part of TimeoutStartSec.
    notifier = Notifier()
    notifier.starting("loading the daemon's modules")
    from scxd.daemon import run_daemon, window_log

    if args.quiet:
        window_log.setLevel(logging.WARNING)

    return run_daemon(settings, config_path=args.config, overrides=_overrides(args),
                      notifier=notifier)


def cmd_tune(args: argparse.Namespace, settings: Settings) -> int:
    from scxd.tune.cli import run

    return run(args, settings)


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "check-config": cmd_check_config, "observe": cmd_observe, "run": cmd_run,
    "catalog": cmd_catalog, "tune": cmd_tune,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None and args.verb != "run":
        # Run as a program: like other Unix tools, `scxd catalog --json | head` ends
        # quietly.  The daemon keeps Python's SIGPIPE-ignored default (its sockets report
        # EPIPE instead), and so does a caller that passes argv (tests, embedding).
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args.verb == "replay":  # offline: reads files it is given, not the daemon's config
        from scxd.replay.cli import run as run_replay

        return run_replay(args)
    if args.verb == "check-config" and args.example:
        print(example_toml(), end="")
        return EXIT_OK
    path = getattr(args, "path", None) or getattr(args, "config", None)
    try:
        settings = load_config(path, _overrides(args))
    except ConfigError as exc:
        print(f"scxd: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.verb](args, settings)
    except ConfigError as exc:
        print(f"scxd: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
