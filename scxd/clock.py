"""A drift-free ticker that sleeps on an event, so a stop request acts at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator


class Ticker:
    """Yields tick numbers every ``interval`` seconds on the monotonic clock.

    Deadlines are ``start + k × interval``: a slow tick does not shift the ones after it.
    When a tick is more than a whole interval late, the missed deadlines are skipped (and
    counted in :attr:`skipped`) instead of firing in a burst.
    """

    def __init__(self, interval: float, stop: threading.Event | None = None):
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.stop = stop or threading.Event()
        self.skipped = 0
        self.start = time.monotonic()

    def __iter__(self) -> Iterator[int]:
        k = 0
        self.start = time.monotonic()
        while not self.stop.is_set():
            k += 1
            deadline = self.start + k * self.interval
            delay = deadline - time.monotonic()
            if delay < -self.interval:
                missed = int(-delay // self.interval)
                self.skipped += missed
                k += missed
                deadline = self.start + k * self.interval
                delay = deadline - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return
            yield k
