"""The only module that touches /proc, /sys, tracefs and debugfs (directly, or through
psutil pointed at the same root).

Every path is taken relative to an injected root, so tests hand in a temporary tree (or the
checked-in snapshot under ``tests/data/host``) and the production daemon hands in ``/``.
Readers return the typed values of :mod:`scxd.procparse`; ``None`` means "this kernel or this
process does not have it" (a vanished pid, no PSI), never "something went wrong" — errors
raise :class:`OSError` or :class:`~scxd.procparse.ParseError` so callers count them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from scxd import procparse as pp

PSI_KINDS = ("cpu", "memory", "io")
#: tracefs mount points, in the order tools look for them.
TRACEFS_CANDIDATES = ("sys/kernel/tracing", "sys/kernel/debug/tracing")
SCHED_EXT_DIR = "sys/kernel/sched_ext"
SCHED_DEBUGFS_DIR = "sys/kernel/debug/sched"
_PSUTIL_ROOT_LOCK = threading.Lock()


@dataclass(frozen=True)
class NetTotals:
    recv_bytes: int
    sent_bytes: int
    recv_packets: int
    sent_packets: int
    interfaces: tuple[str, ...]


@dataclass(frozen=True)
class DiskTotals:
    read_bytes: int
    write_bytes: int
    devices: tuple[str, ...]


class HostFS:
    """Read (and, for the few writable knobs, write) kernel files under ``root``."""

    def __init__(self, root: str | os.PathLike[str] = "/"):
        self.root = Path(root)
        self._disk_cache: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._root_prefix = str(self.root).rstrip("/") + "/"

    def __repr__(self) -> str:
        return f"HostFS({str(self.root)!r})"

    # -- generic access -------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def read(self, rel: str) -> str:
        with open(self.path(rel), encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def read_small(self, rel: str, limit: int = 8192) -> bytes | None:
        """Raw bytes of a small file in one read(2), None if it vanished.  For the per-pid
        files read on every sample, where text decoding and pathlib would dominate."""
        try:
            fd = os.open(self._root_prefix + rel, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            return None
        try:
            return os.read(fd, limit)
        except ProcessLookupError:
            return None
        finally:
            os.close(fd)

    def read_bytes(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def read_optional(self, rel: str) -> str | None:
        """The file's text, None when it is absent — or vanished under us: a sysfs attribute
        whose object is removed between open and read fails with ENODEV (e.g.
        /sys/kernel/sched_ext/root/ops while a scheduler unregisters)."""
        try:
            return self.read(rel)
        except (FileNotFoundError, ProcessLookupError):
            return None
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise

    def write(self, rel: str, text: str) -> None:
        with open(self.path(rel), "w", encoding="utf-8") as fh:
            fh.write(text)

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def listdir(self, rel: str) -> list[str]:
        try:
            return os.listdir(self.path(rel))
        except FileNotFoundError:
            return []

    # -- system-wide figures through psutil ------------------------------------------------
    @contextlib.contextmanager
    def _psutil(self) -> Iterator[None]:
        """psutil reading ``<root>/proc``: its ``PROCFS_PATH`` is a process-wide global, so
        it is set (and restored) under a lock, and left alone for the live root."""
        proc = str(self.root / "proc")
        if proc == psutil.PROCFS_PATH:
            yield
            return
        with _PSUTIL_ROOT_LOCK:
            saved, psutil.PROCFS_PATH = psutil.PROCFS_PATH, proc
            try:
                yield
            finally:
                psutil.PROCFS_PATH = saved

    def cpu_times(self) -> list[Any]:
        """psutil's per-CPU times (seconds since boot: user, nice, system, idle, iowait,
        irq, softirq, steal, …), one entry per CPU."""
        with self._psutil():
            return psutil.cpu_times(percpu=True)

    def cpu_stats(self) -> Any:
        """psutil's ctx_switches, interrupts, soft_interrupts since boot."""
        with self._psutil():
            return psutil.cpu_stats()

    def memory(self) -> Any:
        """psutil's virtual_memory(): total, available, used, free, buffers, cached, …"""
        with self._psutil():
            return psutil.virtual_memory()

    def swap(self) -> Any:
        """psutil's swap_memory(): used, and sin/sout — bytes swapped in/out since boot."""
        with self._psutil():
            return psutil.swap_memory()

    def net_totals(self) -> NetTotals | None:
        """Bytes and packets through every network interface but loopback since boot; None
        when the root has no /proc/net/dev."""
        try:
            with self._psutil():
                nics = psutil.net_io_counters(pernic=True, nowrap=False)
        except FileNotFoundError:
            return None
        real = {n: c for n, c in nics.items() if n != "lo"}
        return NetTotals(sum(c.bytes_recv for c in real.values()),
                         sum(c.bytes_sent for c in real.values()),
                         sum(c.packets_recv for c in real.values()),
                         sum(c.packets_sent for c in real.values()), tuple(sorted(real)))

    # -- what psutil does not read ----------------------------------------------------------
    def proc_stat(self) -> pp.ProcStat:
        """/proc/stat by hand: psutil has no procs_running, procs_blocked or forks."""
        return pp.parse_proc_stat(self.read("proc/stat"))

    def meminfo(self) -> dict[str, int]:
        return pp.parse_meminfo(self.read("proc/meminfo"))

    def vmstat(self) -> dict[str, int]:
        return pp.parse_vmstat(self.read("proc/vmstat"))

    def loadavg(self) -> pp.LoadAvg:
        """/proc/loadavg by hand: psutil.getloadavg() is os.getloadavg(), which always
        reads the live kernel, never a test root."""
        return pp.parse_loadavg(self.read("proc/loadavg"))

    def pressure(self, kind: str) -> pp.Pressure | None:
        """PSI for ``kind``; None when the kernel has no PSI or it is disabled (EOPNOTSUPP)."""
        rel = f"proc/pressure/{kind}"
        try:
            text = self.read(rel)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (95, 22):  # EOPNOTSUPP / EINVAL: built in but psi=0 at boot
                return None
            raise
        return pp.parse_pressure(text, "/" + rel)

    def disk_totals(self) -> DiskTotals:
        """Bytes read/written by whole physical disks (partitions and virtual devices are
        skipped so nothing is counted twice).  The counters are psutil's (per disk); which
        disks are physical is decided here under the root — psutil's own filter looks at
        the live /sys/block and counts virtual devices too."""
        with self._psutil():
            stats = psutil.disk_io_counters(perdisk=True, nowrap=False)
        names = self._physical_disks(tuple(stats))
        return DiskTotals(sum(stats[n].read_bytes for n in names),
                          sum(stats[n].write_bytes for n in names), tuple(sorted(names)))

    def _physical_disks(self, devices: tuple[str, ...]) -> tuple[str, ...]:
        """Which of ``devices`` are whole physical disks — looked up under /sys/block only
        when the device list changes (it costs more than reading the counters)."""
        cached = self._disk_cache
        if cached is not None and cached[0] == devices:
            return cached[1]
        block = set(self.listdir("sys/block"))
        if block:
            names = tuple(n for n in devices
                          if n in block and self.exists(f"sys/block/{n}/device"))
        else:
            names = tuple(n for n in devices if not pp.is_partition_name(n)
                          and not n.startswith(("loop", "ram", "dm-", "md", "zram")))
        self._disk_cache = (devices, names)
        return names

    # -- processes and threads ------------------------------------------------------------
    def pids(self) -> list[int]:
        return [int(name) for name in self.listdir("proc") if name.isdigit()]

    def tids(self, pid: int) -> list[int]:
        return [int(name) for name in self.listdir(f"proc/{pid}/task") if name.isdigit()]

    def pid_status(self, pid: int) -> pp.PidStatus | None:
        data = self.read_small(f"proc/{pid}/status")
        return None if data is None else pp.parse_pid_status(data, pid)

    def schedstat(self, pid: int, tid: int | None = None) -> pp.SchedStat | None:
        rel = f"proc/{pid}/schedstat" if tid is None else f"proc/{pid}/task/{tid}/schedstat"
        text = self.read_optional(rel)
        return None if text is None else pp.parse_schedstat(text, "/" + rel)

    def thread_schedstats(self) -> Iterator[tuple[int, pp.SchedStat]]:
        """(tid, schedstat) for every thread on the system; vanished ones are skipped."""
        for pid in self.pids():
            for tid in self.tids(pid):
                stat = self.schedstat(pid, tid)
                if stat is not None:
                    yield tid, stat

    def pid_comm(self, pid: int) -> str | None:
        data = self.read_small(f"proc/{pid}/comm", 64)
        return None if data is None else data.decode(errors="replace").strip()

    def is_kernel_thread(self, pid: int) -> bool:
        """PF_KTHREAD in /proc/<pid>/stat flags (field 9): e.g. sched_ext's own
        scx_ops_enable_helper, which must never be mistaken for a loader."""
        data = self.read_small(f"proc/{pid}/stat", 1024)
        if data is None:
            return False
        fields = data[data.rfind(b")") + 2:].split()
        try:
            return bool(int(fields[6]) & 0x00200000)
        except (IndexError, ValueError):
            return False

    def pid_alive(self, pid: int) -> bool:
        return self.exists(f"proc/{pid}")

    def bpf_prog_stats(self, fd: int, pid: int | str = "self") -> pp.BpfProgStats:
        rel = f"proc/{pid}/fdinfo/{fd}"
        return pp.parse_bpf_prog_fdinfo(self.read(rel), "/" + rel)

    # -- sysctl ---------------------------------------------------------------------------
    def sysctl(self, name: str) -> str | None:
        text = self.read_optional("proc/sys/" + name.replace(".", "/"))
        return None if text is None else text.strip()

    # -- tracefs / debugfs ----------------------------------------------------------------
    def tracefs(self) -> Path | None:
        for rel in TRACEFS_CANDIDATES:
            if self.exists(rel + "/events"):
                return self.path(rel)
        return None

    @property
    def is_live(self) -> bool:
        """True for the real root: only then does scxd mount anything."""
        return self.root.resolve() == Path("/")

    def ensure_tracefs(self) -> Path:
        """Mount tracefs if no mount is visible (bcc resolves tracepoints through it)."""
        found = self.tracefs()
        if found is not None:
            return found
        if not self.is_live:
            raise OSError(f"no tracefs under test root {self.root}")
        target = self.path(TRACEFS_CANDIDATES[0])
        res = subprocess.run(["mount", "-t", "tracefs", "nodev", str(target)],
                             capture_output=True, text=True)
        if res.returncode != 0 or self.tracefs() is None:
            raise OSError(f"tracefs is not mounted and mounting it at {target} failed: "
                          f"{res.stderr.strip() or 'no events directory'}")
        return target

    def tracepoint_format(self, category: str, event: str) -> dict[str, pp.TracepointField]:
        base = self.tracefs()
        if base is None:
            raise FileNotFoundError("tracefs is not mounted")
        rel = base / "events" / category / event / "format"
        return pp.parse_tracepoint_format(rel.read_text(), str(rel))

    def ensure_debugfs(self) -> bool:
        """Mount debugfs if absent; returns whether the scheduler's debugfs dir is visible."""
        if (self.is_live and not self.exists("sys/kernel/debug/sched")
                and self.exists("sys/kernel/debug")):
            subprocess.run(["mount", "-t", "debugfs", "nodev", str(self.path("sys/kernel/debug"))],
                           capture_output=True)
        return self.exists(SCHED_DEBUGFS_DIR)

    # -- kernel log -----------------------------------------------------------------------
    def kernel_log(self, after_seq: int = -1) -> list[tuple[int, str]]:
        """(sequence, message) of kernel log records newer than ``after_seq``.

        Reads /dev/kmsg (one record per read; "prio,seq,usec,flags;message").  In a test
        tree ``dev/kmsg`` is a regular file with one such record per line.
        """
        try:
            fd = os.open(self.path("dev/kmsg"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, PermissionError):
            return []
        raw: list[str] = []
        try:
            if stat.S_ISCHR(os.fstat(fd).st_mode):
                while True:
                    try:
                        rec = os.read(fd, 8192)
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno == errno.EPIPE:  # overwritten while we read: go on
                            continue
                        raise
                    if not rec:
                        break
                    raw.append(rec.decode(errors="replace"))
            else:
                with os.fdopen(os.dup(fd), encoding="utf-8", errors="replace") as fh:
                    raw = fh.read().splitlines()
        finally:
            os.close(fd)
        out = []
        for rec in raw:
            head, sep, msg = rec.partition(";")
            if not sep:
                continue
            fields = head.split(",")
            try:
                seq = int(fields[1])
            except (IndexError, ValueError):
                continue
            if seq > after_seq:
                out.append((seq, msg.split("\n", 1)[0]))
        return out
