"""Sampler: degraded modes are loud, run-time failures are counted, cadence is kept."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from scxd.config import Settings, TelemetryConfig
from scxd.hostfs import HostFS
from scxd.observe import run_windows, samples_per_window
from scxd.telemetry.sampler import Sampler, TelemetryUnavailable
from scxd.telemetry.system import SystemSource


def test_bpf_off_is_reported_as_degraded(snapshot_root, caplog):
    cfg = TelemetryConfig(bpf="off")
    with caplog.at_level(logging.WARNING), Sampler(cfg, HostFS(snapshot_root)) as sampler:
        assert sampler.health.mode == "schedstat" and sampler.health.degraded
        assert "disabled by config" in sampler.health.degraded_reason
        s = sampler.sample(closes_window=True)
        assert s.sched.source == "schedstat" and s.sched.rq_hist is None
    assert "DEGRADED telemetry" in caplog.text


def test_bpf_program_missing_falls_back(tmp_path, snapshot_root):
    cfg = TelemetryConfig(bpf="auto", bpf_dir=str(tmp_path))
    with Sampler(cfg, HostFS(snapshot_root)) as sampler:
        assert sampler.health.mode == "schedstat"
        assert "BPF telemetry unavailable" in sampler.health.degraded_reason
        assert sampler.health.as_dict()["degraded"] is True


def test_bpf_required_refuses_to_start(tmp_path, snapshot_root):
    cfg = TelemetryConfig(bpf="required", bpf_dir=str(tmp_path))
    with pytest.raises(TelemetryUnavailable, match="required"):
        Sampler(cfg, HostFS(snapshot_root)).open()


def test_no_sched_source_at_all(tmp_path, snapshot_root):
    for f in snapshot_root.glob("proc/*/task/*/schedstat"):
        f.unlink()
    cfg = TelemetryConfig(bpf="off")
    with Sampler(cfg, HostFS(snapshot_root)) as sampler:
        assert sampler.health.mode == "none"
        assert "schedstat fallback unavailable" in sampler.health.degraded_reason
        assert sampler.sample().sched is None


class FlakySystem(SystemSource):
    """Fails every other read, as a source with a transient fault would."""

    def __init__(self, host):
        super().__init__(host)
        self.calls = 0

    def read(self, mono):
        self.calls += 1
        if self.calls % 2 == 0:
            raise OSError("transient EIO")
        return super().read(mono)


def test_failures_are_counted_and_cadence_kept(snapshot_root):
    host = HostFS(snapshot_root)
    cfg = TelemetryConfig(bpf="off", sample_interval=0.1,
                          window=0.3)
    settings = Settings(telemetry=cfg)
    windows = []
    with Sampler(cfg, host=host, system=FlakySystem(host)) as sampler:
        start = time.monotonic()
        n = run_windows(settings, 3, windows.append, threading.Event(), sampler)
        took = time.monotonic() - start
        errors = sampler.health.errors["system"]
    assert n == 3 and all(w.n_samples == 3 for w in windows)
    assert took == pytest.approx(0.9, abs=0.25)  # 9 ticks of 0.1 s despite the failures
    assert errors >= 4
    assert all("system:error" in w.quality for w in windows)
    assert "transient EIO" in sampler.health.last_error["system"]


def test_stop_event_ends_the_loop_promptly(snapshot_root):
    cfg = TelemetryConfig(bpf="off", sample_interval=5.0,
                          window=5.0)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    start = time.monotonic()
    settings = Settings(telemetry=cfg, host_root=str(snapshot_root))
    n = run_windows(settings, None, lambda w: None, stop)
    assert n == 0 and time.monotonic() - start < 2.0


@pytest.mark.parametrize("window,interval,expect", [(5, 1, 5), (1, 1, 1), (2.5, 1, 2),
                                                    (0.3, 0.1, 3)])
def test_samples_per_window(window, interval, expect):
    assert samples_per_window(window, interval) == expect
