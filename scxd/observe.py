"""``scxd observe``: sample, window and print what scxd sees — nothing is decided or changed."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from scxd.clock import Ticker
from scxd.config import Settings
from scxd.features import featurize
from scxd.hostfs import HostFS
from scxd.telemetry.sampler import Sampler
from scxd.types import Window
from scxd.window import Windower, window_to_dict


def samples_per_window(window_s: float, interval_s: float) -> int:
    return max(1, round(window_s / interval_s))


def format_window(w: Window) -> str:
    m = w.metrics

    def us(key: str) -> str:
        return f"{m[key] * 1e6:8.1f}" if key in m else "       -"

    stamp = time.strftime("%H:%M:%S", time.localtime(w.end_wall))
    flags = ",".join(w.quality) or "ok"
    return (f"{stamp} busy {m.get('T_cpu_busy_avg', 0):5.1f}% "
            f"runq/cpu {m.get('runq_per_core', 0):5.2f} "
            f"ctxsw/s/cpu {m.get('ctx_switches_per_s_per_core', 0):8.0f} "
            f"rq_lat µs mean {us('runq_latency_mean_s')} p50 {us('runq_latency_p50_s')} "
            f"p99 {us('runq_latency_p99_s')} "
            f"resp µs {us('response_avg_s')} turn ms "
            f"{m.get('turnaround_avg_s', 0) * 1e3:8.1f} "
            f"cv {m.get('fairness_cv', 0):5.2f} done {m.get('tasks_completed', 0):5.0f} "
            f"[{w.sched_source}] {flags}")


def window_json(w: Window) -> str:
    data = window_to_dict(w)
    fv = featurize(w)
    data["features"] = {"schema": fv.schema, "version": fv.version, "values": fv.as_dict(),
                        "missing": list(fv.missing)}
    return json.dumps(data, separators=(",", ":"))


def run_windows(settings: Settings, count: int | None, emit: Callable[[Window], None],
                stop: threading.Event, sampler: Sampler | None = None) -> int:
    """Sample until ``count`` windows closed (None = until stopped); returns windows seen."""
    tcfg = settings.telemetry
    per_window = samples_per_window(tcfg.window, tcfg.sample_interval)
    own = sampler is None
    sampler = sampler or Sampler(tcfg, HostFS(settings.host_root))
    if own:
        sampler.open()
    try:
        windower = Windower(tcfg.sample_interval)
        windower.start(time.monotonic(), time.time())
        seen = 0
        for tick in Ticker(tcfg.sample_interval, stop):
            window = windower.add(sampler.sample(closes_window=tick % per_window == 0))
            if window is not None:
                emit(window)
                seen += 1
                if count is not None and seen >= count:
                    break
        return seen
    finally:
        if own:
            sampler.close()


def observe(settings: Settings, count: int | None, as_json: bool,
            out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sampler = Sampler(settings.telemetry, HostFS(settings.host_root))
    sampler.open()
    health = sampler.health
    note = (f"telemetry: {health.mode}" + (f" — DEGRADED: {health.degraded_reason}"
                                           if health.degraded else ""))
    print(f"scxd observe: {note}; window {settings.telemetry.window} s, sample "
          f"{settings.telemetry.sample_interval} s", file=err, flush=True)

    def emit(w: Window) -> None:
        print(window_json(w) if as_json else format_window(w), file=out, flush=True)

    try:
        run_windows(settings, count, emit, stop, sampler)
    finally:
        sampler.close()
    return 0
