"""The one clock every scxd loop runs on: drift-free ticks, chores between them, instant
wake-ups.

``scxd run`` (sample ticks, sd_notify watchdog pings, control commands, reload, stop) and
``scxd observe`` (sample ticks, stop) both iterate a :class:`Ticker`; nothing else in scxd
sleeps in a loop of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass
class _Chore:
    period: float
    run: Callable[[], None]
    due: float


class Ticker:
    """Yields tick numbers every ``interval`` seconds on the monotonic clock.

    Deadlines are ``start + k × interval``: a slow tick does not shift the ones after it.
    When a tick is more than a whole interval late, the missed deadlines are skipped (and
    counted in :attr:`skipped`) instead of firing in a burst.

    Between ticks the ticker sleeps on an event, so :meth:`halt` (or ``stop.set()`` for a
    ticker without wake-ups and chores) ends the iteration at once, and :meth:`poke` runs
    the ``on_wake`` handler at once (e.g. to serve a control command
    on the loop thread).  Chores added with :meth:`every` run on the same thread when due
    (first at once), whether or not a tick is.
    """

    def __init__(self, interval: float, stop: threading.Event | None = None,
                 on_wake: Callable[[], None] | None = None):
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.stop = stop or threading.Event()
        self.on_wake = on_wake
        self.skipped = 0
        self.start = time.monotonic()
        self._wake = threading.Event()
        self._chores: list[_Chore] = []

    def every(self, period: float, run: Callable[[], None]) -> None:
        """Run ``run`` every ``period`` seconds between ticks (first time: at once)."""
        if period <= 0:
            raise ValueError(f"period must be positive, got {period}")
        self._chores.append(_Chore(period, run, time.monotonic()))

    def poke(self) -> None:
        """Wake the loop now: ``on_wake`` runs before the next tick (any thread)."""
        self._wake.set()

    def halt(self) -> None:
        """End the iteration now (any thread, signal handlers included)."""
        self.stop.set()
        self._wake.set()

    def _run_chores(self, now: float) -> float:
        """Run due chores; returns when the next one is due."""
        next_due = float("inf")
        for chore in self._chores:
            if now >= chore.due:
                chore.run()
                # Chores keep their phase; a chore more than a period late runs once.
                chore.due = max(chore.due + chore.period, now)
            next_due = min(next_due, chore.due)
        return next_due

    def _sleep_until(self, deadline: float) -> bool:
        """Sleep until ``deadline``, serving wake-ups and chores; False when halted."""
        while not self.stop.is_set():
            now = time.monotonic()
            chores_due = self._run_chores(now)
            if self._wake.is_set():
                self._wake.clear()
                if self.on_wake is not None:
                    self.on_wake()
                continue
            now = time.monotonic()
            if now >= deadline:
                return True
            # A plain ticker sleeps on ``stop`` itself, so setting it from anywhere ends the
            # sleep; one with wake-ups or chores sleeps on its wake event (use halt()).
            event = self._wake if self.on_wake is not None or self._chores else self.stop
            event.wait(min(deadline, chores_due) - now)
        return False

    def __iter__(self) -> Iterator[int]:
        k = 0
        self.start = time.monotonic()
        while not self.stop.is_set():
            k += 1
            deadline = self.start + k * self.interval
            late = time.monotonic() - deadline
            if late > self.interval:
                missed = int(late // self.interval)
                self.skipped += missed
                k += missed
                deadline = self.start + k * self.interval
            if not self._sleep_until(deadline):
                return
            yield k
