"""The system source against the checked-in snapshot tree, edited between two readings."""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest

from scxd.hostfs import HostFS
from scxd.telemetry.system import PAGE_SIZE, SystemSource


def bump(path: Path, pattern: str, delta: int) -> None:
    """Add ``delta`` to the first integer after ``pattern`` in the file."""
    text = path.read_text()
    m = re.search(pattern + r"(\d+)", text, re.M)
    assert m, f"{pattern} not in {path}"
    path.write_text(text[:m.start(1)] + str(int(m.group(1)) + delta) + text[m.end(1):])


def bump_cpu_line(path: Path, label: str, deltas: list[int]) -> None:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        parts = line.split()
        if parts and parts[0] == label:
            for j, d in enumerate(deltas):
                parts[1 + j] = str(int(parts[1 + j]) + d)
            lines[i] = " ".join(parts)
    path.write_text("\n".join(lines) + "\n")


NIC = "eth0"


def bump_nic(path: Path, nic: str, recv: int, sent: int, packets: tuple[int, int] = (0, 0)
             ) -> None:
    """Add to an interface's receive/transmit bytes (and packets) in /proc/net/dev."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        name, sep, rest = line.partition(":")
        if sep and name.strip() == nic:
            cols = rest.split()
            cols[0] = str(int(cols[0]) + recv)
            cols[1] = str(int(cols[1]) + packets[0])
            cols[8] = str(int(cols[8]) + sent)
            cols[9] = str(int(cols[9]) + packets[1])
            lines[i] = f"{name}: " + " ".join(cols)
            break
    else:
        raise AssertionError(f"{nic} not in {path}")
    path.write_text("\n".join(lines) + "\n")


def test_first_read_primes(snapshot_root):
    src = SystemSource(HostFS(snapshot_root))
    assert src.read(100.0) is None


def test_deltas_and_percentages(snapshot_root):
    proc = snapshot_root / "proc"
    src = SystemSource(HostFS(snapshot_root))
    src.read(100.0)
    # 2 s later: cpu0 fully busy in user (200 jiffies), cpu1 idle; aggregate line sums them.
    bump_cpu_line(proc / "stat", "cpu", [200, 0, 0, 200])
    bump_cpu_line(proc / "stat", "cpu0", [200])
    bump_cpu_line(proc / "stat", "cpu1", [0, 0, 0, 200])
    bump(proc / "stat", r"^ctxt ", 5000)
    bump(proc / "stat", r"^processes ", 12)
    bump(proc / "vmstat", r"^pswpout ", 3)
    vda = next(line for line in (proc / "diskstats").read_text().splitlines()
               if " vda " in line)
    cols = vda.split()
    cols[5] = str(int(cols[5]) + 8)   # sectors read
    cols[9] = str(int(cols[9]) + 16)  # sectors written
    (proc / "diskstats").write_text((proc / "diskstats").read_text().replace(vda, " ".join(cols)))
    bump(proc / "pressure" / "cpu", r"^some .*total=", 500_000)  # 0.5 s of 2 s
    bump(proc / "1" / "status", r"^voluntary_ctxt_switches:\s+", 40)
    bump_nic(proc / "net" / "dev", "lo", 10**6, 10**6)      # loopback: not counted
    bump_nic(proc / "net" / "dev", NIC, 3000, 700, packets=(4, 2))
    s = src.read(102.0)
    assert s is not None
    assert s.interval_s == pytest.approx(2.0)
    assert s.cpu.user == pytest.approx(50.0) and s.cpu.idle == pytest.approx(50.0)
    assert s.cpu.busy == pytest.approx(50.0)
    assert s.busiest_cpu_pct == pytest.approx(100.0)
    assert s.ctx_switches == 5000 and s.forks == 12
    assert s.swap_out_bytes == 3 * PAGE_SIZE and s.swap_in_bytes == 0
    assert s.disk_read_bytes == 8 * 512 and s.disk_write_bytes == 16 * 512
    assert s.psi_cpu_some == pytest.approx(25.0)
    assert s.voluntary_switches == 40 and s.involuntary_switches == 0
    assert s.processes == 1 and s.threads >= 1
    assert (s.net_recv_bytes, s.net_sent_bytes) == (3000, 700)
    assert (s.net_recv_packets, s.net_sent_packets) == (4, 2)
    assert psutil.PROCFS_PATH == "/proc", "psutil's global is restored after a test root"


def test_memory_and_swap_match_meminfo(snapshot_root):
    """psutil's memory figures, checked against the snapshot's meminfo by hand."""
    host = HostFS(snapshot_root)
    src = SystemSource(host)
    src.read(1.0)
    s = src.read(2.0)
    mem = host.meminfo()
    cached = mem["Cached"] + mem["SReclaimable"]
    assert s.mem_cached == cached and s.mem_buffers == mem["Buffers"]
    assert s.mem_available == mem["MemAvailable"]
    assert s.mem_used == mem["MemTotal"] - mem["MemFree"] - cached - mem["Buffers"]
    assert s.swap_used == mem["SwapTotal"] - mem["SwapFree"]


def test_without_net_dev_network_is_none(snapshot_root):
    (snapshot_root / "proc" / "net" / "dev").unlink()
    src = SystemSource(HostFS(snapshot_root))
    src.read(1.0)
    s = src.read(2.0)
    assert s.net_recv_bytes is None and s.net_sent_packets is None


def test_partitions_and_virtual_devices_not_counted(snapshot_root):
    totals = HostFS(snapshot_root).disk_totals()
    assert totals.devices == ("vda",)  # loop0 has no device link, zram0 not in sys/block


def test_a_new_disk_is_seen_at_once(snapshot_root):
    host = HostFS(snapshot_root)
    assert host.disk_totals().devices == ("vda",)
    diskstats = snapshot_root / "proc" / "diskstats"
    vda = next(x for x in diskstats.read_text().splitlines() if " vda " in x)
    diskstats.write_text(diskstats.read_text() + vda.replace(" vda ", " vdb ") + "\n")
    (snapshot_root / "sys" / "block" / "vdb" / "device").mkdir(parents=True)
    totals = host.disk_totals()
    assert totals.devices == ("vda", "vdb")
    single = int(vda.split()[5]) * 512
    assert totals.read_bytes == 2 * single


def test_missing_psi_is_none_not_error(snapshot_root):
    for f in (snapshot_root / "proc" / "pressure").iterdir():
        f.unlink()
    src = SystemSource(HostFS(snapshot_root))
    src.read(1.0)
    s = src.read(2.0)
    assert s.psi_cpu_some is None and s.psi_io_full is None


def test_vanished_process_is_skipped(snapshot_root):
    src = SystemSource(HostFS(snapshot_root))
    src.read(1.0)
    (snapshot_root / "proc" / "1" / "status").unlink()
    s = src.read(2.0)
    assert s.processes == 0 and s.voluntary_switches == 0


def test_corrupt_file_raises_for_the_sampler_to_count(snapshot_root):
    src = SystemSource(HostFS(snapshot_root))
    src.read(1.0)
    (snapshot_root / "proc" / "stat").write_text("cpu 1 2\n")
    with pytest.raises(ValueError, match="/proc/stat"):
        src.read(2.0)


def test_per_process_off(snapshot_root):
    src = SystemSource(HostFS(snapshot_root), per_process=False)
    src.read(1.0)
    s = src.read(2.0)
    assert s.voluntary_switches is None and s.processes is None
