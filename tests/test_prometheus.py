"""Prometheus exposition, end to end: promtool lints a real scrape, Debian's Prometheus server
scrapes a running scxd, every Grafana panel's query returns data from it, and the alert rules
load and pass their unit tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.daemon_helper import ACTIVE, Daemon, free_port
from tests.fakes import FakeKernel, fake_processes, install_fake, wait_for

REPO = Path(__file__).parents[1]
DASHBOARD = REPO / "dashboards" / "scxd.json"
ALERTS = REPO / "prometheus" / "alerts.yml"
pytestmark = [pytest.mark.prometheus, pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="Debian's prometheus (server + promtool) is not installed")]


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
            out.append((panel["title"], expr))
    return out


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A scxd on a fake sched_ext kernel with real BPF telemetry, put through swaps, a
    failed start, a crash and freeze/thaw so every metric family has data."""
    tmp = tmp_path_factory.mktemp("prom")
    with FakeKernel(tmp / "host") as kernel:
        bins = tmp / "bin"
        install_fake(bins, "scx_simple", kernel.root, "simple", supports="-f -v -h")
        install_fake(bins, "scx_qmap", kernel.root, "qmap", supports="-s -b -H -p -e -t -T -h")
        install_fake(bins, "scx_flatcg", kernel.root, "flatcg", mode="refuse",
                     supports="-s -f -h")
        d = Daemon(tmp, ACTIVE.replace('bpf = "off"', 'bpf = "auto"'))
        try:
            assert wait_for(lambda: d.ctl("status")["current"]["scheduler"] == "scx_simple",
                            20), d.output()
            d.scxctl("freeze", "--for", "30s")
            d.scxctl("thaw")
            d.scxctl("switch", "-s", "scx_qmap")
            d.scxctl("switch", "-s", "scx_flatcg")  # refuses to start: a failure
            d.scxctl("freeze")  # hold still while a loader is killed under scxd
            pid = d.ctl("status")["pid"]
            os.kill(pid, signal.SIGKILL)
            assert wait_for(lambda: any(e.get("kind") == "crashed" for e in
                                        d.ctl("history", n=100)["entries"]), 10)
            d.scxctl("restore")
            d.wait_windows(d.ctl("status")["windows"] + 4)
            yield d
        finally:
            d.stop()
        assert wait_for(lambda: not fake_processes(kernel.root), 10)


@pytest.fixture(scope="module")
def prometheus(running, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("promserver")
    shutil.copy(ALERTS, tmp / "alerts.yml")
    port = free_port()
    (tmp / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - alerts.yml\n"
        f"scrape_configs:\n  - job_name: scxd\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{running.port}']\n")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "prom.log", "w"))  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"

    def query(expr: str) -> list:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        data = json.loads(http_get(url))
        assert data["status"] == "success", data
        return data["data"]["result"]

    try:
        def scraped() -> bool:
            try:
                return bool(query('up{job="scxd"} == 1')) and bool(
                    query('count_over_time(up{job="scxd"}[1m]) >= 12'))
            except OSError:
                return False

        assert wait_for(scraped, 60), (tmp / "prom.log").read_text()[-2000:]
        yield query, base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_promtool_finds_nothing_in_a_real_scrape(running):
    text = http_get(f"http://127.0.0.1:{running.port}/metrics")
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert res.returncode == 0 and res.stdout.strip() == b"" and res.stderr.strip() == b"", \
        (res.stdout + res.stderr).decode()


def test_exposition_names_and_le_bounds(running):
    text = http_get(f"http://127.0.0.1:{running.port}/metrics").decode()
    assert 'scxd_info{mode="active"' in text
    assert 'scxd_scheduler_info{args="",preset="default",scheduler="scx_simple"} 1.0' in text
    assert re.search(r'scxd_swaps_total\{result="applied"\} [1-9]', text)
    assert re.search(r'scxd_actuator_failures_total\{reason="exited"\} [1-9]', text)
    assert re.search(r'scxd_actuator_events_total\{kind="crashed"\} [1-9]', text)
    assert 'scxd_runqueue_latency_seconds_bucket{le="1.023e-06"}' in text  # 2^10 - 1 ns
    assert 'scxd_runqueue_latency_seconds_bucket{le="+Inf"}' in text
    count = re.search(r"scxd_runqueue_latency_seconds_count ([0-9.e+]+)", text)
    assert count and float(count.group(1)) > 0, "BPF histogram exported"
    assert 'scxd_telemetry_degraded{mode="bpf"} 0.0' in text


def test_prometheus_scrapes_scxd(prometheus):
    query, _ = prometheus
    assert query('up{job="scxd"}')[0]["value"][1] == "1"
    assert query("scxd_windows_total > 0")


@pytest.mark.parametrize("title,expr", dashboard_queries(), ids=[t for t, _ in
                                                                  dashboard_queries()])
def test_every_dashboard_panel_query_returns_data(prometheus, title, expr):
    query, _ = prometheus
    assert query(expr), f"panel {title!r}: {expr} returned no data"


def test_alert_rules_load_and_are_healthy(prometheus):
    _, base = prometheus
    groups = json.loads(http_get(f"{base}/api/v1/rules"))["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert {"ScxdDown", "ScxdSwapFailures", "ScxdFrozenTooLong", "ScxdRegressionGuardFiring",
            "ScxdTelemetryDegraded", "ScxdSchedulerEjected", "ScxdPanic"} <= set(rules)
    assert all(r["health"] == "ok" for r in rules.values()), rules


def test_alerts_fire_on_a_real_failure_and_crash(running, prometheus):
    _, base = prometheus
    assert wait_for(lambda: running.ctl("status")["pid"] is not None, 20)
    running.scxctl("switch", "-s", "scx_flatcg")  # refuses to start
    running.scxctl("freeze")
    pid = running.ctl("status")["pid"]
    assert pid is not None, json.dumps(running.ctl("history", n=20), indent=1)[-6000:]
    os.kill(pid, signal.SIGKILL)
    running.scxctl("restore")
    assert wait_for(lambda: {"ScxdSwapFailures", "ScxdSchedulerEjected"} <= {
        a["labels"]["alertname"] for a in json.loads(http_get(f"{base}/api/v1/alerts"))
        ["data"]["alerts"]}, 20)


def test_promtool_rule_unit_tests():
    res = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"],
                         cwd=REPO / "prometheus", capture_output=True, text=True)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr
    res = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True,
                         text=True)
    assert res.returncode == 0 and "SUCCESS: 7 rules found" in res.stdout


def test_dashboard_is_valid_grafana_json():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "scxd-overview" and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["targets"] and all(t["expr"] for t in p["targets"])
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
