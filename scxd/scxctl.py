"""``scxctl``: the thin client of scxd's control socket.

Speaks scx_loader's verbs so its users feel at home — ``get``, ``list``, ``start``/``switch``
``-s NAME [-m MODE | -a ARGS]``, ``stop``, ``restart``, ``restore`` — and adds ``status``,
``freeze [--for DURATION]``, ``thaw``, ``pin``, ``unpin``, ``history [-n N]`` and
``explain``.  Every verb takes ``--json`` and then prints exactly the object the socket
returned.  Exit codes: 0 ok, 1 scxd unreachable / refused / the operation failed,
2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from typing import Any

from scxd.catalog import BUILTIN
from scxd.control import PERMISSION_DENIED, ControlError, call

DEFAULT_SOCKET = "/run/scxd/scxd.sock"
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def split_args(values: list[str] | None) -> list[str] | None:
    """``-a "-s 20000 -m all"`` or scx_loader's ``-a -s,20000`` or repeated ``-a``."""
    if not values:
        return None
    out: list[str] = []
    for v in values:
        if "," in v and " " not in v.strip():
            out += [x for x in v.split(",") if x]
        else:
            out += shlex.split(v)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scxctl", description=__doc__.splitlines()[0])
    p.add_argument("--socket", default=os.environ.get("SCXD_SOCKET", DEFAULT_SOCKET),
                   help="control socket (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the raw reply object")
    sub = p.add_subparsers(dest="verb", required=True)
    names = [s.name for s in BUILTIN]

    def verb(name: str, help_: str) -> argparse.ArgumentParser:
        v = sub.add_parser(name, help=help_)
        v.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        return v

    verb("status", "what the kernel runs, what scxd intends and why")
    verb("get", "the scheduler running now (scx_loader verb)")
    verb("list", "schedulers, presets/modes and availability")
    h = verb("history", "recent swaps, actuator and guard events")
    h.add_argument("-n", type=int, default=20, metavar="N")
    verb("explain", "what the policy saw and its per-arm scores for the last decision")
    f = verb("freeze", "hold the current scheduler")
    f.add_argument("--for", dest="duration", metavar="DURATION",
                   help="expire after e.g. 90, 30s, 5m, 2h (default: until thaw)")
    verb("thaw", "end a freeze (also clears a panic)")
    for name, help_ in (("start", "run a scheduler (pins it; scx_loader verb)"),
                        ("switch", "switch to a scheduler (pins it; scx_loader verb)"),
                        ("pin", "force a scheduler until unpin")):
        v = verb(name, help_)
        v.add_argument("-s", "--sched", required=True, metavar="NAME",
                       help=f"one of: {', '.join(names)} (or a configured one)")
        g = v.add_mutually_exclusive_group()
        g.add_argument("-m", "--mode", metavar="MODE", help="a preset / scx_loader mode")
        g.add_argument("-a", "--args", action="append", metavar="ARGS",
                       help="scheduler arguments, e.g. -a '-s 20000 -m all'")
    verb("unpin", "give control back to the policy")
    verb("stop", "back to the fair scheduler (pins it; scx_loader verb)")
    verb("restore", "unpin and thaw: back to scxd's own choice (scx_loader verb)")
    verb("restart", "restart the current scheduler")
    return p


def params_for(args: argparse.Namespace) -> dict[str, Any]:
    if args.verb in ("start", "switch", "pin"):
        return {"scheduler": args.sched, "mode": args.mode, "args": split_args(args.args)}
    if args.verb == "freeze":
        return {"for": args.duration}
    if args.verb == "history":
        return {"n": args.n}
    return {}


def _action(a: dict[str, Any] | None) -> str:
    if not a:
        return "-"
    words = [a["scheduler"], *a.get("args", [])]
    preset = a.get("preset")
    return " ".join(words) + (f"  [{preset}]" if preset and preset != "default" else "")


def _ago(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def render(verb: str, r: dict[str, Any]) -> str:
    if verb in ("status", "freeze", "thaw", "pin", "switch", "start", "unpin", "stop",
                "restore", "restart"):
        k = r["kernel"]
        lines = []
        if verb != "status" and r.get("result"):
            res = r["result"]
            lines.append(f"{verb}: {res['outcome']}"
                         + (f" in {res['timings']['total_s']:.3f} s" if res.get("timings") else ""))
        kstate = ("no sched_ext in this kernel" if k["state"] == "unavailable" else
                  f"{k['state']}, ops {k.get('ops') or '-'}, enable_seq {k['enable_seq']}"
                  + (" (partial)" if k.get("partial") else ""))
        running = r["running"]
        lines += [
            f"kernel:     {kstate}",
            f"running:    {running.get('scheduler') or running.get('ops')} "
            f"({running['source']})",
            f"scxd:       {r['mode']}" + (f" — {r['advisory_reason']}"
                                          if r.get("advisory_reason") else ""),
            f"current:    {_action(r['current'])} for {r['current_since_s']:.0f} s",
            f"intended:   {_action(r['intended'])}",
            f"why:        {r['why']}",
            f"policy:     {r['policy']['name']} ({r['policy']['version']}), objective "
            f"{r['policy']['objective']}",
        ]
        g = r["guard"]
        state = []
        if r["frozen"]:
            left = g.get("frozen_for_s")
            state.append("FROZEN" + (f" ({left:.0f} s left)" if left is not None else "")
                         + (f" [{g['frozen_reason']}]" if g.get("frozen_reason") else ""))
        if r["pinned"]:
            state.append(f"PINNED {_action(r['pinned'])}")
        if g.get("panic"):
            state.append("PANIC")
        state.append(f"swaps {g['swaps_last_hour']}/{g['swap_budget_per_hour']} this hour")
        if g.get("warmup_windows_left"):
            state.append(f"warm-up {g['warmup_windows_left']} window(s)")
        for q in g.get("quarantined") or ():
            state.append(f"quarantined {q['scheduler']} ({q['for_s']:.0f} s left)")
        lines.append(f"guard:      {', '.join(state)}")
        t = r["telemetry"]
        lines.append(f"telemetry:  {t.get('mode')}" + (f" — DEGRADED: {t['degraded_reason']}"
                                                       if t.get("degraded") else ""))
        if r.get("last_swap"):
            s = r["last_swap"]
            lines.append(f"last swap:  {_ago(s['at'])} → {_action(s['requested'])}: "
                         f"{s['outcome']}" + (f" ({s['reason']})" if s["reason"] else ""))
        return "\n".join(lines)
    if verb == "get":
        if r["running"].get("scheduler") in (None, "fair"):
            base = "no scx scheduler running" if r["running"].get("scheduler") == "fair" else \
                f"{r['running'].get('ops')} running (not started by scxd)"
        else:
            base = f"running {r['scheduler']} in {r['mode']} mode"
            if r["args"]:
                base += f" with arguments {' '.join(r['args'])}"
        return base + (" (advisory: would run " + r["scheduler"] + ")"
                       if r.get("advisory") and r["scheduler"] != "fair" else "")
    if verb == "list":
        out = []
        for s in r["schedulers"]:
            a = s.get("availability", {})
            avail = "available" if a.get("available") else f"unavailable: {a.get('reason')}"
            out.append(f"{s['name']:18s} {avail}")
            out.append(f"{'':18s} modes: {', '.join(s['presets'])}")
        return "\n".join(out)
    if verb == "history":
        out = []
        for e in r["entries"]:
            at = _ago(e.get("at", 0))
            if e["type"] == "swap":
                out.append(f"{at} swap     {_action(e['requested'])}: {e['outcome']}"
                           + (f" ({e['reason']}: {e['detail']})" if e.get("reason") else ""))
            elif e["type"] == "actuator":
                out.append(f"{at} {e['kind']:8s} {e['scheduler']}: {e['detail']}")
            else:
                out.append(f"{at} guard    {e['kind']}: {e['detail']}")
        return "\n".join(out) or "(nothing yet)"
    if verb == "explain":
        if "decision" not in r:
            return r.get("note", "")
        d = r["decision"]
        lines = [f"window {r['window_id']}: {d['policy']} chose {d['arm']} "
                 f"(p={d['propensity']:.3f}, {'explore' if d['explore'] else 'exploit'}, "
                 f"exploration mode {d.get('mode', 'none')})",
                 f"  reason:  {d['reason']}", f"  guard:   {r['verdict']}"]
        ex = r.get("executed")
        if ex:
            who = "the policy's draw" if ex["by_policy"] else "decided by the guard"
            lines.append(f"  runs next: {ex['label']} (p={ex['propensity']:.3f} under "
                         f"policy∘guard, {who})")
        if r.get("basis"):
            lines.append(f"  basis:   {r['basis']}")
        lines += [f"  score    {k}: {v:.4g}" for k, v in d.get("scores", {}).items()]
        stats = d.get("stats") or {}
        if stats:
            lines.append("  stats:   " + ", ".join(f"{k}={v:.3g}" for k, v in stats.items()))
        arms = r.get("arms") or []
        if arms and any(a.get("value") is not None for a in arms):
            lines.append(f"  {'probability':>11}  {'value':>8}  {'± uncert.':>9}  arm")
            for a in arms[:15]:
                v, u = a.get("value"), a.get("uncertainty")
                vs = "" if v is None else f"{v:8.3f}"
                us = "" if u is None else f"{u:9.3f}"
                lines.append(f"  {a['probability']:11.4f}  {vs:>8}  {us:>9}  {a['arm']}")
            if len(arms) > 15:
                lines.append(f"  … {len(arms) - 15} more arms (--json shows all)")
        lines.append("  features: " + ", ".join(f"{k}={v:.3g}" for k, v in
                                                r["features"].items()))
        if r.get("cost") is not None:
            lines.append(f"  cost {r['cost']:.3f} (terms relative to fair)")
        return "\n".join(lines)
    return json.dumps(r, indent=2)


def glue_args(argv: list[str]) -> list[str]:
    """``-a "-s 5000"``: the value starts with '-', which argparse would take for an option;
    scx_loader's users write it that way, so bind the next word to -a/--args verbatim."""
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        if word in ("-a", "--args") and i + 1 < len(argv):
            out.append(f"--args={argv[i + 1]}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a program: `scxctl history | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = build_parser().parse_args(glue_args(sys.argv[1:] if argv is None else argv))
    params = params_for(args)
    try:
        result = call(args.socket, args.verb, params, busy_retries=3)
    except FileNotFoundError:
        print(f"scxctl: cannot reach scxd: {args.socket} does not exist (is scxd running?)",
              file=sys.stderr)
        return EXIT_FAIL
    except ConnectionRefusedError:
        print(f"scxctl: cannot reach scxd at {args.socket}: connection refused (scxd not "
              "running?)", file=sys.stderr)
        return EXIT_FAIL
    except PermissionError:
        print(f"scxctl: permission denied opening {args.socket} (root or the configured "
              "control.group can use it)", file=sys.stderr)
        return EXIT_FAIL
    except TimeoutError:
        print(f"scxctl: scxd did not answer on {args.socket}", file=sys.stderr)
        return EXIT_FAIL
    except ControlError as exc:
        if args.json:
            print(json.dumps({"error": exc.as_dict()}, indent=2))
        else:
            what = "permission denied" if exc.code == PERMISSION_DENIED else "error"
            msg = exc.message if exc.message.startswith(what) else f"{what}: {exc.message}"
            print(f"scxctl: {msg}", file=sys.stderr)
        return EXIT_FAIL
    except OSError as exc:
        print(f"scxctl: cannot reach scxd at {args.socket}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(result, indent=2, default=str) if args.json else render(args.verb, result))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
