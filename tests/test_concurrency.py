"""Shared state under concurrent load: the tick loop, the /metrics scrape thread and the
control server touch it at once.

Regression: ``MetricsState.snapshot()`` used to set ``self.lock = None`` while
copying, so a control request entering ``with metrics.lock`` meanwhile raised ``TypeError``
and the daemon died; concurrent scrapes got HTTP 500s.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from scxd.control import ControlError
from scxd.metrics import MetricsBoard, MetricsState, ScxdCollector
from tests.daemon_helper import ACTIVE, Daemon
from tests.fakes import FakeKernel, install_fake


def test_publishing_never_disturbs_scrapes():
    """The owner mutates and publishes, control threads count requests and scrapes collect,
    all at once with a thread switch every microsecond: no error, and every scrape sees a
    consistent copy (the two counters the owner bumps together are equal in it)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    state = MetricsState(version="t")
    board = MetricsBoard(state)
    collector = ScxdCollector(board)
    errors: list[BaseException] = []
    stop = threading.Event()
    seen: list[tuple[float, float]] = []

    def loop(step):
        """Run ``step`` until stopped; the first exception stops everyone and is kept."""
        def run() -> None:
            try:
                while not stop.is_set():
                    step()
            except BaseException as exc:
                errors.append(exc)
                stop.set()
        return run

    def owner_step() -> None:
        state.windows += 1
        state.guard_events["thaw"] += 1
        board.publish(state)

    def scrape_step() -> None:
        fams = {f.name: f for f in collector.collect()}
        windows = fams["scxd_windows"].samples[0].value
        thaws = next(s.value for s in fams["scxd_guard_events"].samples
                     if s.labels["kind"] == "thaw")
        seen.append((windows, thaws))

    owner = loop(owner_step)
    counter = loop(lambda: board.count_request("thaw", "ok"))
    scraper = loop(scrape_step)

    threads = [threading.Thread(target=owner), threading.Thread(target=counter),
               threading.Thread(target=counter)] + \
        [threading.Thread(target=scraper) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(old)
    assert not errors, errors
    assert len(seen) > 50 and seen[-1][0] > 0
    assert all(w == t for w, t in seen), "a scrape saw a half-updated state"
    requests = board.snapshot().control_requests[("thaw", "ok")]
    assert requests > 0


def fast_thread_switching(tmp: Path) -> dict[str, str]:
    """Environment that makes the daemon switch threads every 10 µs (default 5 ms), so a
    race window of microseconds is hit in seconds instead of minutes (a ``sitecustomize``
    on PYTHONPATH runs at interpreter start-up)."""
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.setswitchinterval(1e-5)\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, (str(site),
                                                        os.environ.get("PYTHONPATH"))))}


def scrape_loop(url: str, stop: threading.Event, counts: dict, errors: list) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=20) as resp:
                body = resp.read()
            counts["ok"] += 1
            assert b"scxd_windows_total" in body
        except urllib.error.HTTPError as exc:
            errors.append(f"HTTP {exc.code}")
        except (OSError, AssertionError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")


def control_loop(d: Daemon, method: str, stop: threading.Event, counts: dict,
                 errors: list, **params) -> None:
    while not stop.is_set():
        try:
            d.ctl(method, **params)
            counts["ok"] += 1
        except (ControlError, OSError, ValueError) as exc:
            errors.append(f"{method}: {type(exc).__name__}: {exc}")


def test_concurrent_scrapes_and_control_mutations(tmp_path):
    """6 scrapers + thaw/freeze/status clients against a real daemon on the fake kernel:
    the daemon stays up, every scrape is a 200, every control request gets its reply."""
    with FakeKernel(tmp_path / "host") as kernel:
        install_fake(tmp_path / "bin", "scx_simple", kernel.root, "simple", supports="-f -v -h")
        d = Daemon(tmp_path, ACTIVE, env=fast_thread_switching(tmp_path))
        stop = threading.Event()
        scrapes, ctl = {"ok": 0}, {"ok": 0}
        errors: list[str] = []
        url = f"http://127.0.0.1:{d.port}/metrics"
        threads = [threading.Thread(target=scrape_loop, args=(url, stop, scrapes, errors))
                   for _ in range(8)]
        for method, params in (("thaw", {}), ("thaw", {}), ("freeze", {"for": "1h"}),
                               ("status", {})):
            threads.append(threading.Thread(target=control_loop,
                                            args=(d, method, stop, ctl, errors),
                                            kwargs=params))
        try:
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and d.proc.poll() is None:
                time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            alive = d.proc.poll() is None
        finally:
            d.stop()
        out = d.output()
        assert alive, f"scxd died under concurrent load:\n{out[-3000:]}"
        assert not errors, errors[:10]
        assert scrapes["ok"] > 20 and ctl["ok"] > 20, (scrapes, ctl)
        assert "Traceback" not in out, out[-3000:]
