"""The project's C loaders for scx_bpfland, scx_flash and scx_flashyspark, run on the host.

Their command line needs no sched_ext kernel (it is parsed first, like clap does), so this
checks on the host what the guest scenarios cannot see cheaply: the real --help output
against scxd's help probe, --version, clap's error texts and exit codes, and the Rust
panics (exit 101) for slice_us < slice_us_min and a bad --dsq-mode.  Loading the BPF side
is the guest's business (tests/test_testbed.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scxd.catalog import build_catalog
from scxd.hostfs import HostFS
from scxd.probe import flag_in_help, probe_catalog

pytestmark = [pytest.mark.testbed]
LOADERS = ("scx_bpfland", "scx_flash", "scx_flashyspark")


@pytest.fixture(scope="module")
def scx_bin(testbed_artifacts) -> Path:
    from tests.test_testbed import need_scx

    need_scx(testbed_artifacts)
    return testbed_artifacts.scx.bin_dir


def run(exe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", LOADERS)
def test_help_lists_every_catalogued_flag(scx_bin, name):
    res = run(scx_bin / name, "--help")
    assert res.returncode == 0 and res.stdout.startswith(("scx_", "A deadline"))
    assert f"Usage: {name} [OPTIONS]" in res.stdout
    spec = build_catalog().get(name)
    for p in spec.params:
        for flag in (*p.flag_words(), p.short):
            if flag:
                assert flag_in_help(flag, res.stdout), f"{flag} missing from {name} --help"
    short = run(scx_bin / name, "-h")
    assert short.returncode == 0 and "--slice-us <SLICE_US>" in short.stdout


@pytest.mark.parametrize("name,bpf", [("scx_bpfland", "sched-ext/scx v1.1.0"),
                                      ("scx_flash", "sched-ext/scx v1.1.0"),
                                      ("scx_flashyspark", "esot0/scx scx_spark 1bd93fe9")])
def test_version_says_it_is_a_c_loader(scx_bin, name, bpf):
    for flag in ("--version", "-V"):
        res = run(scx_bin / name, flag)
        assert res.returncode == 0 and res.stdout.startswith(f"{name} ")
        assert "scxd C loader" in res.stdout and bpf in res.stdout


def test_the_probe_reads_the_real_help(scx_bin, tmp_path):
    """scxd's start-up probe against the loaders' real --help: every flag verified; only
    what this kernel cannot load is refused (the host has no scx_bpf_cpu_curr, no
    nvidia.ko)."""
    probed = probe_catalog(build_catalog(), [str(scx_bin)], HostFS("/"))
    for name in LOADERS:
        a = probed.availability[name]
        assert a.available and a.flags_verified and a.binary_path == str(scx_bin / name)
        assert set(a.dropped) <= {"tickless", "aggressive_gpu_tasks"}, a.dropped
        assert "scxd C loader" in a.version
    assert "kfunc:scx_bpf_cpu_curr" in probed.availability["scx_flash"].dropped["tickless"]


@pytest.mark.parametrize("args,code,text", [
    (["--bogus"], 2, "error: unexpected argument '--bogus' found"),
    (["-Z"], 2, "error: unexpected argument '-Z' found"),
    (["-s", "abc"], 2, "error: invalid value 'abc' for '--slice-us <SLICE_US>': invalid digit"),
    (["--slice-us=-5"], 2, "invalid value '-5' for '--slice-us <SLICE_US>'"),
    (["-s"], 2, "error: a value is required for '--slice-us <SLICE_US>' but none was supplied"),
    (["-p", "--local-pcpu"], 2, "the argument '--local-pcpu' cannot be used multiple times"),
    (["--local-pcpu=true"], 2, "unexpected value 'true' for '--local-pcpu'"),
    (["--monitor", "1"], 1, "Error: --monitor needs the scx_stats server"),
])
def test_clap_errors(scx_bin, args, code, text):
    res = run(scx_bin / "scx_bpfland", *args)
    assert res.returncode == code and text in res.stderr, res.stderr


def test_rust_panics_are_exit_101(scx_bin):
    res = run(scx_bin / "scx_flash", "-s", "100", "-S", "200")
    assert res.returncode == 101 and "assertion failed: opts.slice_us >= opts.slice_us_min" \
        in res.stderr
    res = run(scx_bin / "scx_flashyspark", "--dsq-mode", "both")
    assert res.returncode == 101 and "Invalid DSQ mode: 'both'. Valid options: cpu, shared" \
        in res.stderr


def test_without_sched_ext_the_start_fails_cleanly(scx_bin):
    """The host kernel has no sched_ext: the loaders say so (status 1), and a changed CPU
    idle resume latency is put back (flash sets it by default, before opening BPF)."""
    qos = Path("/sys/devices/system/cpu/cpu0/power/pm_qos_resume_latency_us")
    before = qos.read_text() if qos.exists() else None
    for name in LOADERS:
        res = run(scx_bin / name)
        assert res.returncode == 1 and "Error: " in res.stderr, res.stderr
    if before is not None:
        assert qos.read_text() == before


def test_allow_hyphen_values_for_signed_options(scx_bin):
    # -I -1 and -C -1 are values (clap allow_hyphen_values), not flags
    for name, args in (("scx_bpfland", ["-I", "-1", "--version"]),
                       ("scx_flash", ["-C", "-1", "-I", "-1", "--version"])):
        assert run(scx_bin / name, *args).returncode == 0
