"""`scxd run` with the torch network policy on the fake kernel: it swaps among schedulers,
journals composite propensities, explains itself, exports its learning metrics, and keeps
what it learnt across SIGHUP and restarts."""

from __future__ import annotations

import json
import signal
import urllib.request

import pytest

from scxd.journal import JournalReader
from scxd.replay.logs import load_logs
from tests.daemon_helper import ACTIVE, Daemon
from tests.fakes import wait_for
from tests.test_daemon import fake  # noqa: F401  (the fake kernel with two fake loaders)

NETWORK = ACTIVE.replace('name = "fixed"\nscheduler = "scx_simple"', '''name = "network"
seed = 7
arm_space = "presets"
checkpoint_every = 5
pretrained = "none"
[policy.network]
exploration = "epsilon"
epsilon_start = 0.6
epsilon_floor = 0.3
hidden = 16
''')


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def test_network_policy_end_to_end(tmp_path, fake):  # noqa: F811 (the imported fixture)
    assert 'name = "network"' in NETWORK
    d = Daemon(tmp_path, NETWORK)
    seen: set[str] = set()
    try:
        assert wait_for(lambda: seen.add(fake.ops) or len(seen - {""}) >= 2, 60), d.output()
        st = d.ctl("status")
        assert st["policy"]["name"] == "network" and st["policy"]["arms"] >= 5
        assert "starting fresh" in st["policy"]["state"]
        d.wait_windows(12)
        explain = json.loads(d.scxctl("explain", "--json").stdout)
        assert explain["mode"] == "epsilon" and explain["decision"]["stats"]["epsilon"] >= 0.3
        arms = explain["arms"]
        assert len(arms) == st["policy"]["arms"]
        assert abs(sum(a["probability"] for a in arms) - 1.0) < 1e-6
        assert all(a["value"] is not None and a["uncertainty"] >= 0 for a in arms)
        assert 0 < explain["executed"]["propensity"] <= 1
        human = d.scxctl("explain").stdout
        assert "exploration mode epsilon" in human and "probability" in human
        assert "runs next:" in human
        text = scrape(d.port)
        for name in ("scxd_policy_epsilon", "scxd_policy_entropy_nats",
                     "scxd_policy_exploration_ratio", "scxd_policy_updates_total",
                     'scxd_policy_loss{loss="critic"}', "scxd_policy_checkpoint_age_seconds"):
            assert name in text, name
        assert (d.state / "policy" / "network.npz").exists()
        # SIGHUP with a changed policy table: the learner is rebuilt from its checkpoint.
        d.config.write_text(d.config.read_text().replace("epsilon_floor = 0.3",
                                                         "epsilon_floor = 0.25"))
        d.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "state from checkpoint" in d.ctl("status")["policy"]["state"],
                        20), d.output()
    finally:
        assert d.stop() < 5.0
    assert d.proc.returncode == 0
    windows = list(JournalReader(d.state / "journal").windows())
    header = next(JournalReader(d.state / "journal").records(("header",)))
    assert header["arm_set"]["hash"] == st["policy"]["arm_set"]
    for w in windows:
        ex = w["executed"]
        assert 0 < ex["propensity"] <= 1 and ex["arm_set"] == header["arm_set"]["hash"]
        if not ex["by_policy"]:
            assert ex["propensity"] == 1.0 and ex["distribution"] == {ex["arm"]: 1.0}
        else:
            assert ex["propensity"] == pytest.approx(w["decision"]["distribution"][ex["arm"]])
    assert any(w["swapped"] for w in windows)
    log = load_logs(journals=[d.state / "journal"])
    assert log.arms.hash == header["arm_set"]["hash"] and len(log.transitions) >= 10
    assert sum(t.usable for t in log.transitions) >= 5

    # A restart starts from the saved checkpoint, not from scratch.
    d2 = Daemon(tmp_path, NETWORK)
    try:
        st = d2.ctl("status")
        assert "state from checkpoint" in st["policy"]["state"], st["policy"]
    finally:
        d2.stop()


def test_the_default_asa_policy_exports_its_novelty(tmp_path, fake):  # noqa: F811
    """The default policy from its shipped model on the fake kernel: each decision reports
    how unlike the training workloads the window is, and Prometheus carries it."""
    cfg = ACTIVE.replace('name = "fixed"\nscheduler = "scx_simple"', 'name = "asa"')
    d = Daemon(tmp_path, cfg)
    try:
        d.wait_windows(4)
        st = d.ctl("status")
        assert st["policy"]["name"] == "asa" and "state from pretrained" in st["policy"]["state"]
        stats = json.loads(d.scxctl("explain", "--json").stdout)["decision"]["stats"]
        assert stats["novelty_ratio"] > 0 and stats["novel"] in (0.0, 1.0)
        text = scrape(d.port)
        assert "scxd_policy_novelty_ratio " in text and "scxd_policy_novel " in text
    finally:
        assert d.stop() < 5.0
