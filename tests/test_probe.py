"""Start-up probe: installed binaries, their --help flags, and the fair debugfs tunables."""

from __future__ import annotations

import os
import stat

import pytest

from scxd.catalog import build_catalog
from scxd.hostfs import HostFS
from scxd.probe import flag_in_help, parse_preempt, probe_catalog
from tests.fakes import FakeKernel, install_fake

BPFLAND_HELP = "--slice-us --slice-min-us --slice-us-lag --throttle-us --idle-resume-us " \
               "--local-pcpu --local-kthreads --no-wake-sync --sticky-tasks --primary-domain"


@pytest.mark.parametrize("flag,text,found", [
    ("-f", "  -f   FIFO", True), ("-f", "  -fifo", False), ("--slice-us", "--slice-us-min",
                                                           False),
    ("--slice-us", "  -s, --slice-us <SLICE_US>", True), ("-s", "[-s SLICE_US]", True),
])
def test_flag_in_help(flag, text, found):
    assert flag_in_help(flag, text) is found


def test_probe_drops_flags_the_binary_lacks(tmp_path):
    root = tmp_path / "host"
    with FakeKernel(root):
        install_fake(tmp_path / "bin", "scx_bpfland", root, "bpfland", supports=BPFLAND_HELP)
        probed = probe_catalog(build_catalog(), [str(tmp_path / "bin")], HostFS(root))
    a = probed.availability["scx_bpfland"]
    assert a.available and a.flags_verified
    assert set(a.dropped) == {"preferred_idle_scan", "disable_smt", "disable_numa", "cpufreq"}
    assert "--cpufreq not in 'scx_bpfland --help' output" in a.dropped["cpufreq"]
    spec = probed.catalog.get("scx_bpfland")
    assert "cpufreq" not in {p.name for p in spec.params}
    assert probed.catalog.action("scx_bpfland", preset="gaming").argv == (
        "--primary-domain", "all")
    assert "scx_bpfland" in probed.available()


def test_presets_using_dropped_flags_are_dropped(tmp_path):
    root = tmp_path / "host"
    with FakeKernel(root):
        install_fake(tmp_path / "bin", "scx_bpfland", root, "bpfland",
                     supports="--slice-us --primary-domain")
        probed = probe_catalog(build_catalog(), [str(tmp_path / "bin")], HostFS(root))
    a = probed.availability["scx_bpfland"]
    assert "lowlatency" in a.dropped_presets and "no_wake_sync" in a.dropped_presets["lowlatency"]
    assert "gaming" in probed.catalog.get("scx_bpfland").presets
    # the constraint on a dropped parameter is gone with it
    assert probed.catalog.get("scx_bpfland").constraints == ()


def test_help_that_fails_keeps_flags_unverified(tmp_path):
    # No sched_ext tree: the fake behaves like the kernel-tree loaders here ([SCX_BUG]).
    install_fake(tmp_path / "bin", "scx_simple", tmp_path / "nokernel", "simple",
                 supports="-f")
    (tmp_path / "nokernel").mkdir()
    exe = tmp_path / "bin" / "scx_simple"
    exe.write_text(exe.read_text().replace('"$@"', '--mode refuse "$@"'))
    probed = probe_catalog(build_catalog(), [str(tmp_path / "bin")], HostFS(tmp_path))
    a = probed.availability["scx_simple"]
    assert a.available and not a.flags_verified and "flags unverified" in a.note
    assert "fifo" in {p.name for p in probed.catalog.get("scx_simple").params}


def test_missing_binary_says_where_it_looked(tmp_path):
    probed = probe_catalog(build_catalog(), [str(tmp_path / "a"), "/nonexistent"],
                           HostFS(tmp_path))
    a = probed.availability["scx_lavd"]
    assert not a.available
    assert a.reason == f"binary not found: scx_lavd in {tmp_path / 'a'}:/nonexistent"
    assert probed.availability["fair"].available


def test_non_executable_binary_is_not_found(tmp_path):
    (tmp_path / "scx_simple").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "scx_simple", stat.S_IRUSR)
    probed = probe_catalog(build_catalog(), [str(tmp_path)], HostFS(tmp_path))
    assert not probed.availability["scx_simple"].available


def test_fair_tunables_kept_when_writable_with_live_defaults(tmp_path):
    sched = tmp_path / "sys/kernel/debug/sched"
    sched.mkdir(parents=True)
    (sched / "base_slice_ns").write_text("1500000\n")
    (sched / "migration_cost_ns").write_text("500000\n")
    (sched / "nr_migrate").write_text("32\n")
    (sched / "preempt").write_text("none (voluntary) full lazy\n")
    probed = probe_catalog(build_catalog(), [], HostFS(tmp_path))
    fair = probed.catalog.get("fair")
    assert fair.param("base_slice_ns").default == 1_500_000
    assert fair.param("preempt").default == "voluntary"
    assert probed.availability["fair"].dropped == {}


def test_fair_tunables_dropped_when_unreadable(tmp_path):
    probed = probe_catalog(build_catalog(), [], HostFS(tmp_path))
    a = probed.availability["fair"]
    assert set(a.dropped) == {"base_slice_ns", "migration_cost_ns", "nr_migrate", "preempt"}
    assert probed.catalog.get("fair").params == ()


def test_parse_preempt():
    assert parse_preempt("none (voluntary) full lazy") == "voluntary"
    assert parse_preempt("garbage") is None


def test_catalog_cli_text_and_json(tmp_path, capsys):
    import json

    from scxd import cli

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[actuator]\nsearch_path = ["{tmp_path}"]\n')
    assert cli.main(["catalog", "--config", str(cfg), "--json"]) == 0
    data = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert set(data) == {s.name for s in build_catalog()}
    assert data["scx_bpfland"]["availability"]["available"] is False
    assert data["scx_bpfland"]["presets"]["gaming"] == ["--primary-domain", "all"]
    assert cli.main(["catalog", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "available: no — binary not found: scx_lavd" in text
    assert "presets: default (defaults), fifo (-f)" in text


FLASH_HELP = " ".join(["--slice-us", "--slice-us-min", "--slice-us-lag", "--slice-lag-scaling",
                       "--run-us-lag", "--max-avg-nvcsw", "--cpu-busy-thresh", "--throttle-us",
                       "--idle-resume-us", "--tickless", "--rr-sched", "--no-builtin-idle",
                       "--local-pcpu", "--direct-dispatch", "--sticky-cpu", "--native-priority",
                       "--local-kthreads", "--no-wake-sync", "--primary-domain", "--disable-l2",
                       "--disable-l3", "--disable-smt", "--disable-numa", "--cpufreq"])


@pytest.mark.parametrize("kfuncs,refused", [((), True), (("scx_bpf_cpu_curr",), False)])
def test_flags_the_kernel_cannot_load_are_refused_with_the_reason(tmp_path, kfuncs, refused):
    from scxd.catalog import CatalogError
    from tests.test_btf import make_btf

    root = tmp_path / "host"
    with FakeKernel(root):
        (root / "sys/kernel/btf").mkdir(parents=True)
        (root / "sys/kernel/btf/vmlinux").write_bytes(
            make_btf([("schedule", 12, 0, b""), *((k, 12, 0, b"") for k in kfuncs)]))
        install_fake(tmp_path / "bin", "scx_flash", root, "flash", supports=FLASH_HELP)
        probed = probe_catalog(build_catalog(), [str(tmp_path / "bin")], HostFS(root))
    a = probed.availability["scx_flash"]
    if not refused:
        assert "tickless" not in a.dropped
        assert probed.catalog.action_from_text("scx_flash -T").values["tickless"] is True
        return
    why = a.dropped["tickless"]
    assert "--tickless needs kfunc:scx_bpf_cpu_curr" in why and "no kfunc" in why
    for text in ("scx_flash -T", "scx_flash --tickless", "scx_flash -s 5000 -T"):
        with pytest.raises(CatalogError, match=r"refused: --tickless needs kfunc"):
            probed.catalog.action_from_text(text)
    with pytest.raises(CatalogError, match="tickless refused"):
        probed.catalog.action("scx_flash", {"tickless": True})
    assert probed.catalog.action_from_text("scx_flash -s 5000").values["slice_us"] == 5000


def test_a_module_capability(tmp_path):
    from scxd.probe import missing_capability

    host = HostFS(tmp_path)
    assert "nvidia is not loaded" in missing_capability(host, "module:nvidia", {})
    (tmp_path / "sys/module/nvidia").mkdir(parents=True)
    assert missing_capability(host, "module:nvidia", {}) == ""
    assert "unknown kernel capability" in missing_capability(host, "x:y", {})
    assert "kernel BTF unreadable" in missing_capability(host, "kfunc:f", {})
