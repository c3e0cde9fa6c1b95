#!/usr/bin/env python3
"""The service under abuse and under load: the figures in the README's service section.

Two runs, each against a real ``scxd run`` process:

``fuzz`` — this host, advisory mode (telemetry from /proc: the control plane is under
test).  ``--requests`` fuzzed requests (the grammar fuzzer of tests/control_fuzz.py,
seeded, every reply judged by its oracle) from ``--fuzzers`` processes, while an attacker
running as *nobody* opens connections up to its limit and drips one byte every 2 s into
each (slowloris) and another uid hoards idle connections (both in the control group, so
they pass the socket's permissions and meet scxd's own limits).  A root prober asks
``status`` every 0.25 s on a fresh connection, and runs the real ``scxctl status`` every
10 s.  Prints: requests, wrong answers, root's status round trip p50/p99/max and scxctl's
wall time max, the daemon's RSS and open fds at start / end / max, tracebacks in its log,
and whether it is still alive.

``soak`` — the fake sched_ext kernel (tests/fakes), active mode.  ``--minutes`` of
concurrent /metrics scrapers, control reads (status, history, explain, get) and mutations
(freeze, thaw, pin/switch between two fake schedulers, unpin, restore), and a SIGHUP every
``--hup-every`` seconds.  Prints: crashes (the daemon exiting), HTTP errors (any non-200,
500s separately), dropped replies (a request that got no reply or a socket error), the
answers it got, RSS and fds.

    .venv/bin/python bench/control_stress.py fuzz [--requests 100000]
    .venv/bin/python bench/control_stress.py soak [--minutes 10]

Both return a dict too (``run_fuzz`` / ``run_soak``): tests/test_control_stress.py runs
short versions of each in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scxd.control import ControlError, call  # noqa: E402
from tests.control_fuzz import Checker, fuzz_case  # noqa: E402
from tests.daemon_helper import ACTIVE, BASE, Daemon  # noqa: E402
from tests.fakes import FakeKernel, install_fake  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Watch:
    """RSS and open fds of the daemon, sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 2.0):
        self.proc = psutil.Process(pid)
        self.rss: list[float] = []
        self.fds: list[int] = []
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        with self.proc.oneshot():
            self.rss.append(self.proc.memory_info().rss / 2**20)
            self.fds.append(self.proc.num_fds())

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.sample()
            except psutil.Error:
                return

    def __enter__(self) -> Watch:
        self.sample()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        with contextlib.suppress(psutil.Error):
            self.sample()

    def figures(self) -> dict[str, Any]:
        """Start/end/max, and the second half's RSS growth (warm-up excluded: thread stacks
        and malloc arenas are claimed in the first minutes and then reused)."""
        half = len(self.rss) // 2
        second = self.rss[half:]
        minutes = max((len(second) - 1) * self.every / 60.0, 1e-9)
        return {"rss_mb": {"start": self.rss[0], "half": self.rss[half], "end": self.rss[-1],
                           "max": max(self.rss),
                           "second_half_mb_per_min": (second[-1] - second[0]) / minutes},
                "fds": {"start": self.fds[0], "end": self.fds[-1], "max": max(self.fds)}}


# -- fuzz ---------------------------------------------------------------------------------------
def _fuzzer(path: str, seed: int, n: int, out: multiprocessing.Queue) -> None:
    rng = random.Random(seed)
    checker = Checker(path, timeout=30)
    kinds: Counter = Counter()
    for _ in range(n):
        case = fuzz_case(rng, checker.serial)
        kinds[case.expect] += 1
        checker.check(case)
    checker.close()
    out.put({"sent": checker.sent, "replies": checker.replies, "problems": checker.problems,
             "expect": dict(kinds)})


ATTACKER = textwrap.dedent("""
    import signal, socket, sys, time
    # SIGINT ends the attack (KeyboardInterrupt below), even when this process inherited it
    # ignored: a shell's background job ignores SIGINT, and Python then installs no handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path, n, drip = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    req = b'{"jsonrpc":"2.0","id":1,"method":"status"}\\n'
    conns, opened, refused, cut = {}, 0, 0, 0


    def round_():
        global opened, refused, cut
        while len(conns) < n:          # top up to n connections, as fast as allowed
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
            except OSError:
                refused += 1
                break
            s.setblocking(False)
            conns[s] = 0
            opened += 1
        for s in list(conns):          # one byte each (drip > 0), or stay idle
            try:
                if drip:
                    s.send(req[conns[s] % len(req):][:1])
                    conns[s] += 1
                if s.recv(65536) == b"":
                    raise OSError
                cut += 1               # an answer (busy or 'not completed'): it is over
                s.close()
                del conns[s]
            except BlockingIOError:
                pass
            except OSError:
                cut += 1
                s.close()
                del conns[s]


    try:
        while True:
            round_()
            time.sleep(drip or 1.0)
    except KeyboardInterrupt:
        pass
    print(opened, refused, cut, flush=True)
""")


def _attacker(path: Path, uid: int, n: int, drip: float) -> subprocess.Popen:
    """A client of ``uid`` in the control group (so it passes the socket's permissions and
    meets scxd's own limits)."""
    return subprocess.Popen([sys.executable, "-c", ATTACKER, str(path), str(n), str(drip)],
                            stdout=subprocess.PIPE, text=True, user=uid,
                            group=65534, extra_groups=[])


#: The control group is nogroup, so the attackers (nobody, and uid 1 in nogroup) may connect.
FUZZ_TOML = BASE.replace('[control]\nsocket = "{sock}"',
                         '[control]\nsocket = "{sock}"\ngroup = "nogroup"')


def run_fuzz(requests: int = 100_000, fuzzers: int = 2, toml: str = FUZZ_TOML,
             probe_every: float = 0.25, scxctl_every: float = 10.0,
             attack: bool = True, min_seconds: float = 300.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        d = Daemon(tmp, toml)
        try:
            d.wait_windows(1)
            return _fuzz_against(d, requests, fuzzers, probe_every, scxctl_every, attack,
                                 min_seconds)
        finally:
            d.stop()


def _fuzz_against(d: Daemon, requests: int, fuzzers: int, probe_every: float,
                  scxctl_every: float, attack: bool, min_seconds: float) -> dict[str, Any]:
    out: multiprocessing.Queue = multiprocessing.Queue()
    per = requests // fuzzers
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_fuzzer, args=(str(d.sock), 1000 + i, per, out))
             for i in range(fuzzers)]
    probes: list[float] = []
    probe_errors: list[str] = []
    scxctl_times: list[float] = []
    stop = threading.Event()

    def prober() -> None:
        next_scxctl = time.monotonic() + scxctl_every
        while not stop.wait(probe_every):
            t0 = time.monotonic()
            try:
                call(d.sock, "status", timeout=10)
                probes.append(time.monotonic() - t0)
            except (ControlError, OSError) as exc:
                probe_errors.append(f"{type(exc).__name__}: {exc}")
            if time.monotonic() >= next_scxctl:
                next_scxctl += scxctl_every
                t0 = time.monotonic()
                res = d.scxctl("status")
                scxctl_times.append(time.monotonic() - t0)
                if res.returncode != 0:
                    probe_errors.append(f"scxctl status: {res.stderr.strip()}")

    with Watch(d.proc.pid) as watch:
        t0 = time.monotonic()
        for p in procs:
            p.start()
        attackers = []
        if attack:
            # nobody drips into as many connections as it can; uid 1 hoards idle ones.
            attackers = [_attacker(d.sock, 65534, 64, 2.0), _attacker(d.sock, 1, 64, 0.0)]
        probe = threading.Thread(target=prober, daemon=True)
        probe.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.monotonic() - t0
        while time.monotonic() - t0 < min_seconds and d.proc.poll() is None:
            time.sleep(0.5)  # keep the attack and the probes going
        stop.set()
        probe.join()
        attacked = {}
        for name, a in zip(("slowloris", "idle_hoarder"), attackers, strict=False):
            a.send_signal(signal.SIGINT)
            opened, refused, cut = (int(x) for x in a.communicate(timeout=30)[0].split())
            attacked[name] = {"opened": opened, "refused": refused, "cut_off": cut}
        attack_s = time.monotonic() - t0
        time.sleep(1.0)  # let the daemon see the attackers' connections close
    log = d.output()
    problems = [p for r in results for p in r["problems"]]
    return {
        "requests": sum(r["sent"] for r in results), "replies": sum(r["replies"]
                                                                     for r in results),
        "expect": dict(sum((Counter(r["expect"]) for r in results), Counter())),
        "wrong_answers": len(problems), "examples": problems[:5], "seconds": elapsed,
        "attack_seconds": attack_s, "attackers": attacked,
        "root_status_s": {"n": len(probes), "p50": pct(probes, 0.5), "p99": pct(probes, 0.99),
                          "max": max(probes, default=float("nan"))},
        "scxctl_status_s": {"n": len(scxctl_times), "max": max(scxctl_times,
                                                               default=float("nan"))},
        "probe_errors": probe_errors[:5], "probe_error_count": len(probe_errors),
        **watch.figures(), "alive": d.proc.poll() is None,
        "tracebacks": log.count("Traceback"), "log_lines": len(log.splitlines()),
        "log_bytes": len(log.encode()),
        "control_warning_lines": sum(1 for line in log.splitlines()
                                     if " scxd.control: " in line),
    }


# -- soak -----------------------------------------------------------------------------------------
def _reload_times(log: str) -> list[float]:
    """Wall-clock times of the daemon's "configuration reloaded" lines (logging's asctime,
    local time, milliseconds)."""
    out = []
    for line in log.splitlines():
        if "configuration reloaded" in line:
            with contextlib.suppress(ValueError):
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                out.append(stamp.timestamp())
    return out


def _unserved(hup_times: list[float], log: str) -> list[float]:
    """SIGHUPs with no reload logged at or after them (1 ms: asctime truncates)."""
    reloads = _reload_times(log)
    return [h for h in hup_times if not any(r >= h - 0.001 for r in reloads)]


def run_soak(seconds: float = 600.0, scrapers: int = 6, readers: int = 3, writers: int = 2,
             hup_every: float = 5.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        with FakeKernel(tmp / "host") as kernel:
            install_fake(tmp / "bin", "scx_simple", kernel.root, "simple", supports="-f -v -h")
            install_fake(tmp / "bin", "scx_qmap", kernel.root, "qmap",
                         supports="-s -b -H -p -e -t -T -h")
            d = Daemon(tmp, ACTIVE)
            try:
                return _soak(d, seconds, scrapers, readers, writers, hup_every)
            finally:
                d.stop()


def _soak(d: Daemon, seconds: float, scrapers: int, readers: int, writers: int,
          hup_every: float) -> dict[str, Any]:
    stop = threading.Event()
    lock = threading.Lock()
    http: Counter = Counter()
    answers: Counter = Counter()
    dropped: list[str] = []
    url = f"http://127.0.0.1:{d.port}/metrics"

    def scrape() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:
                    resp.read()
                    key = str(resp.status)
            except urllib.error.HTTPError as exc:
                key = str(exc.code)
            except OSError as exc:
                key = f"error: {type(exc).__name__}"
            with lock:
                http[key] += 1

    def control(methods: list[tuple[str, dict]], seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            method, params = rng.choice(methods)
            try:
                call(d.sock, method, params, timeout=60)
                key = f"{method}: ok"
            except ControlError as exc:
                # An answer, even an error, is a reply; a closed connection is not.
                key = f"{method}: {exc.code}"
                if "closed the connection without a reply" in exc.message:
                    with lock:
                        dropped.append(f"{method}: {exc.message}")
            except OSError as exc:
                key = f"{method}: {type(exc).__name__}"
                with lock:
                    dropped.append(f"{method}: {type(exc).__name__}: {exc}")
            with lock:
                answers[key] += 1

    reads = [("status", {}), ("history", {"n": 50}), ("explain", {}), ("get", {}),
             ("list", {})]
    changes = [("freeze", {"for": "1h"}), ("thaw", {}), ("pin", {"scheduler": "scx_qmap"}),
               ("switch", {"scheduler": "scx_simple"}), ("unpin", {}), ("restore", {}),
               ("pin", {"scheduler": "scx_qmap", "args": ["-s", "5000"]})]
    threads = [threading.Thread(target=scrape) for _ in range(scrapers)]
    threads += [threading.Thread(target=control, args=(reads, i)) for i in range(readers)]
    threads += [threading.Thread(target=control, args=(changes, 100 + i))
                for i in range(writers)]
    hup_times: list[float] = []
    with Watch(d.proc.pid, every=5.0) as watch:
        for t in threads:
            t.start()
        t0 = time.monotonic()
        next_hup = t0 + hup_every
        while time.monotonic() - t0 < seconds and d.proc.poll() is None:
            time.sleep(0.1)
            if time.monotonic() >= next_hup:
                hup_times.append(time.time())
                d.proc.send_signal(signal.SIGHUP)
                next_hup += hup_every
        alive = d.proc.poll() is None
        stop.set()
        for t in threads:
            t.join(timeout=120)
    # SIGHUPs that arrive while the loop is busy coalesce into one reload (by design); none
    # may be lost: every SIGHUP must be followed by a reload.  The last one gets 30 s.
    deadline = time.monotonic() + 30
    while alive and time.monotonic() < deadline and _unserved(hup_times, d.output()):
        time.sleep(0.2)
    log = d.output()
    status = {k: v for k, v in http.items()}
    return {
        "seconds": seconds, "crashes": 0 if alive else 1, "alive": alive,
        "scrapes": sum(http.values()), "http": status,
        "http_500": http.get("500", 0),
        "http_errors": sum(v for k, v in http.items() if k != "200"),
        "control_requests": sum(answers.values()), "answers": dict(answers),
        "dropped_replies": len(dropped), "dropped_examples": dropped[:5],
        "sighups": len(hup_times), "reloads_logged": log.count("configuration reloaded"),
        "unserved_sighups": _unserved(hup_times, log),
        "tracebacks": log.count("Traceback"), **watch.figures(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="run", required=True)
    f = sub.add_parser("fuzz")
    f.add_argument("--requests", type=int, default=100_000)
    f.add_argument("--fuzzers", type=int, default=2)
    f.add_argument("--min-seconds", type=float, default=300.0,
                   help="keep the attack and the probes going at least this long")
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--hup-every", type=float, default=5.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the attackers run as other users)")
    if args.run == "fuzz":
        res = run_fuzz(args.requests, args.fuzzers, min_seconds=args.min_seconds)
    else:
        res = run_soak(args.minutes * 60, hup_every=args.hup_every)
    print(json.dumps(res, indent=2, default=str))
    if args.run == "fuzz":
        r = res
        print(f"\nfuzz: {r['requests']} requests in {r['seconds']:.0f} s (attack and probes "
              f"for {r['attack_seconds']:.0f} s: {r['attackers']}), "
              f"{r['wrong_answers']} wrong answers, alive {r['alive']}, "
              f"{r['tracebacks']} tracebacks; root status p50 "
              f"{r['root_status_s']['p50'] * 1e3:.1f} ms p99 "
              f"{r['root_status_s']['p99'] * 1e3:.1f} ms max "
              f"{r['root_status_s']['max'] * 1e3:.1f} ms ({r['root_status_s']['n']} probes, "
              f"{r['probe_error_count']} failed); scxctl status max "
              f"{r['scxctl_status_s']['max']:.2f} s; RSS {r['rss_mb']['start']:.1f} → "
              f"{r['rss_mb']['half']:.1f} (half-way) → {r['rss_mb']['end']:.1f} MB, second "
              f"half {r['rss_mb']['second_half_mb_per_min']:+.2f} MB/min; fds "
              f"{r['fds']['start']} → {r['fds']['end']} (max {r['fds']['max']})")
    else:
        r = res
        print(f"\nsoak: {r['seconds'] / 60:.1f} min, {r['crashes']} crashes, "
              f"{r['scrapes']} scrapes ({r['http_500']} HTTP 500, {r['http_errors']} "
              f"non-200), {r['control_requests']} control requests, {r['dropped_replies']} "
              f"dropped replies, {r['sighups']} SIGHUPs ({r['reloads_logged']} reloads "
              f"logged, {len(r['unserved_sighups'])} never served), {r['tracebacks']} "
              f"tracebacks; RSS {r['rss_mb']['start']:.1f} → "
              f"{r['rss_mb']['half']:.1f} (half-way) → {r['rss_mb']['end']:.1f} MB, second "
              f"half {r['rss_mb']['second_half_mb_per_min']:+.2f} MB/min; fds "
              f"{r['fds']['start']} → {r['fds']['end']}")


if __name__ == "__main__":
    main()
