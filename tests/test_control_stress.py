"""Short versions of bench/control_stress.py, in the suite: the fuzz + slowloris + idle
hoarding run (root's status stays fast, RSS and fds flat, no wrong answer), and the soak of
scrapes + control reads and mutations + SIGHUPs on the fake kernel (0 crashes, 0 HTTP
errors, 0 dropped replies)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[1] / "bench" / "control_stress.py"


@pytest.fixture(scope="module")
def stress():
    spec = importlib.util.spec_from_file_location("control_stress", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_with_slowloris_and_hoarders(stress):
    r = stress.run_fuzz(requests=4000, fuzzers=2, scxctl_every=4.0, min_seconds=12.0)
    assert r["alive"] and r["wrong_answers"] == 0, r["examples"]
    assert r["requests"] == 4000 and r["tracebacks"] == 0
    assert r["probe_error_count"] == 0 and r["root_status_s"]["n"] >= 20
    assert r["root_status_s"]["max"] < 1.0 and r["scxctl_status_s"]["max"] < 5.0
    assert r["attackers"]["slowloris"]["cut_off"] > 0, "the attack really ran"
    assert r["fds"]["end"] <= r["fds"]["start"] + 2, r["fds"]
    assert r["rss_mb"]["end"] < r["rss_mb"]["start"] + 30, r["rss_mb"]
    assert r["control_warning_lines"] < 20


def test_soak_scrapes_control_and_sighups(stress):
    r = stress.run_soak(seconds=15, hup_every=3.0)
    assert r["crashes"] == 0 and r["tracebacks"] == 0
    assert r["http_errors"] == 0 and r["scrapes"] > 50, r["http"]
    assert r["dropped_replies"] == 0, r["dropped_examples"]
    assert r["control_requests"] > 50 and r["sighups"] >= 4
    # SIGHUPs during a busy swap coalesce into one reload; none may go unserved.
    assert r["reloads_logged"] >= 1 and not r["unserved_sighups"], (r["sighups"],
                                                                    r["reloads_logged"])
    assert not [k for k in r["answers"] if k.endswith(": -32603")], r["answers"]
