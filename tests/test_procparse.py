"""Parsers against real captured kernel files, and malformed/truncated variants of them."""

from __future__ import annotations

import pytest

from scxd import procparse as pp
from tests.conftest import DATA, SNAPSHOT


def snap(rel: str) -> str:
    return (SNAPSHOT / rel).read_text()


def truncated(text: str, keep_lines: int) -> str:
    return "\n".join(text.splitlines()[:keep_lines])


def test_proc_stat_real():
    st = pp.parse_proc_stat(snap("proc/stat"))
    assert st.ncpus == 2 and len(st.per_cpu) == 2
    assert set(st.cpu) == set(pp.CPU_FIELDS)
    assert st.ctxt > 0 and st.processes > 0 and st.procs_running >= 1
    for busy, total in st.per_cpu:
        assert 0 <= busy <= total


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_proc_stat_truncated_names_what_is_missing(keep):
    with pytest.raises(pp.ParseError, match="missing") as err:
        pp.parse_proc_stat(truncated(snap("proc/stat"), keep))
    assert err.value.what == "/proc/stat"


def test_proc_stat_garbage_number():
    text = snap("proc/stat").replace("ctxt ", "ctxt x", 1)
    with pytest.raises(pp.ParseError, match="integer"):
        pp.parse_proc_stat(text)


def test_meminfo_real_is_bytes():
    mem = pp.parse_meminfo(snap("proc/meminfo"))
    assert mem["MemTotal"] > 1024**3  # kB converted to bytes
    assert mem["MemAvailable"] <= mem["MemTotal"]
    assert mem["HugePages_Total"] >= 0  # unitless lines stay counts


def test_meminfo_truncated_and_malformed():
    with pytest.raises(pp.ParseError, match="MemAvailable"):
        pp.parse_meminfo(truncated(snap("proc/meminfo"), 2))
    with pytest.raises(pp.ParseError, match="without ':'"):
        pp.parse_meminfo("MemTotal 12 kB\n")


def test_vmstat_real_and_broken():
    vm = pp.parse_vmstat(snap("proc/vmstat"))
    assert "pswpin" in vm and "nr_free_pages" in vm
    with pytest.raises(pp.ParseError, match="pswpin"):
        pp.parse_vmstat(truncated(snap("proc/vmstat"), 3))
    with pytest.raises(pp.ParseError, match="malformed"):
        pp.parse_vmstat("pswpin 1 2\n")


def test_loadavg_real_and_broken():
    la = pp.parse_loadavg(snap("proc/loadavg"))
    assert la.total >= la.runnable >= 0 and la.load1 >= 0
    for bad in ("", "1.0 2.0", "a b c 1/2 3"):
        with pytest.raises(pp.ParseError):
            pp.parse_loadavg(bad)


@pytest.mark.parametrize("kind", ["cpu", "memory", "io"])
def test_pressure_real(kind):
    p = pp.parse_pressure(snap(f"proc/pressure/{kind}"), kind)
    assert p.some_total_us >= 0 and 0 <= p.some_avg10 <= 100
    assert p.full_total_us is not None  # this kernel prints "full" for cpu too


def test_pressure_broken():
    with pytest.raises(pp.ParseError, match="some"):
        pp.parse_pressure("full avg10=0.00 total=1\n", "x")
    with pytest.raises(pp.ParseError, match="malformed"):
        pp.parse_pressure("some avg10\n", "x")


def test_diskstats_real_counts_512_byte_sectors():
    stats = pp.parse_diskstats(snap("proc/diskstats"))
    vda = stats["vda"]
    cols = next(line.split() for line in snap("proc/diskstats").splitlines()
                if line.split()[2] == "vda")
    assert vda.read_bytes == int(cols[5]) * 512
    assert vda.write_bytes == int(cols[9]) * 512


def test_diskstats_short_line():
    with pytest.raises(pp.ParseError, match="columns"):
        pp.parse_diskstats("   8 0 sda 1 2 3\n")


@pytest.mark.parametrize("name,part", [("vda1", True), ("sda", False), ("nvme0n1p2", True),
                                       ("nvme0n1", False), ("mmcblk0p1", True), ("vda", False)])
def test_partition_names(name, part):
    assert pp.is_partition_name(name) is part


def test_pid_status_real_and_truncated():
    st = pp.parse_pid_status(snap("proc/1/status"), 1)
    assert st.state in "RSDTtXZPI" and st.threads >= 1
    assert st.voluntary_ctxt_switches >= 0
    with pytest.raises(pp.ParseError, match="missing field"):
        pp.parse_pid_status(truncated(snap("proc/1/status"), 8), 1)


def test_schedstat_real_and_broken():
    ss = pp.parse_schedstat(snap("proc/1/schedstat"))
    assert ss.oncpu_ns > 0 and ss.timeslices > 0
    with pytest.raises(pp.ParseError, match="3 numbers"):
        pp.parse_schedstat("1 2")
    with pytest.raises(pp.ParseError, match="integer"):
        pp.parse_schedstat("1 2 x")


def test_bpf_fdinfo_real():
    st = pp.parse_bpf_prog_fdinfo(snap("proc/self/fdinfo/7"))
    assert st.run_cnt > 0 and st.run_time_ns > 0


def test_fdinfo_of_a_non_bpf_fd_is_rejected():
    with pytest.raises(pp.ParseError, match="run_time_ns"):
        pp.parse_bpf_prog_fdinfo("pos:\t0\nflags:\t02\n")
    with pytest.raises(pp.ParseError, match="fdinfo"):
        pp.parse_bpf_prog_fdinfo("")


def test_tracepoint_format_real():
    fields = pp.parse_tracepoint_format((DATA / "sched_switch.format").read_text())
    assert fields["prev_pid"].offset == 24 and fields["prev_pid"].size == 4
    assert fields["prev_state"].ctype == "long" and fields["prev_state"].size == 8
    assert fields["next_comm"].size == 16
    with pytest.raises(pp.ParseError):
        pp.parse_tracepoint_format("name: sched_switch\n")
