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


#: Data-quality flags (scxd.window) in words; ``prefix:detail`` flags by their prefix.
QUALITY_WORDS = {
    "no_psi": "no PSI (pressure stall info)", "no_per_process": "no per-process data",
    "system:missing": "system figures missing", "system:error": "system figures failed",
    "sched:bpf": "BPF", "sched:schedstat": "schedstat fallback (no BPF)",
    "sched:missing": "scheduler figures missing", "sched:error": "scheduler figures failed",
    "lost_events": "BPF events lost", "late_samples": "samples late",
    "no_previous_window": "first window (no rates yet)",
}
QUALITY_PREFIXES = {"sched": "scheduler figures from {}", "nonfinite": "{} not finite"}
NO_DATA = "–"


def quality_words(flags: tuple[str, ...] | list[str]) -> str:
    """Human names for a window's data-quality flags ("ok" when there are none)."""
    words = []
    for flag in flags:
        if flag in QUALITY_WORDS:
            words.append(QUALITY_WORDS[flag])
            continue
        prefix, _, detail = flag.partition(":")
        words.append(QUALITY_PREFIXES[prefix].format(detail) if detail and prefix in
                     QUALITY_PREFIXES else flag)
    return ", ".join(words) or "ok"


def format_window(w: Window) -> str:
    """One line per window; "–" where the window has no data for a figure."""
    m = w.metrics

    def fig(key: str, width: int, fmt: str, scale: float = 1.0) -> str:
        v = m.get(key)
        return (format(v * scale, fmt) if v is not None else NO_DATA).rjust(width)

    stamp = time.strftime("%H:%M:%S", time.localtime(w.end_wall))
    return (f"{stamp} busy {fig('T_cpu_busy_avg', 5, '.1f')}% "
            f"runq/cpu {fig('runq_per_core', 5, '.2f')} "
            f"ctxsw/s/cpu {fig('ctx_switches_per_s_per_core', 8, '.0f')} "
            f"wakeup µs mean {fig('wakeup_latency_mean_s', 8, '.1f', 1e6)} "
            f"p99 {fig('wakeup_latency_p99_s', 8, '.1f', 1e6)} "
            f"preempt-wait µs mean {fig('preempt_wait_mean_s', 8, '.1f', 1e6)} "
            f"rq p99 {fig('runq_latency_p99_s', 8, '.1f', 1e6)} "
            f"resp µs {fig('response_avg_s', 8, '.1f', 1e6)} "
            f"turn ms {fig('turnaround_avg_s', 8, '.1f', 1e3)} "
            f"cv {fig('fairness_cv', 5, '.2f')} done {fig('tasks_completed', 5, '.0f')} "
            f"[{w.sched_source}] {quality_words(w.quality)}")


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
