"""BPF scheduling telemetry: loads ``bpf/scxd_sched.bpf.c`` with bcc and reads its aggregates.

The only module that imports bcc.  Layout of the shared ``stats`` array (three log2
histograms then the counters) is defined here and handed to the C program as ``-D`` cflags,
so there is one definition of it.  Readings are monotonic; :meth:`BpfSchedSource.read`
returns the difference since the previous reading.

Cost accounting: while the source runs it holds a ``BPF_ENABLE_STATS`` file descriptor (the
kernel counts run time per program only while one is open, and drops the overhead as soon as
it is closed — no global sysctl is left changed) and reads ``run_time_ns``/``run_cnt`` from
each program's fdinfo.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scxd.histogram import HIST_SLOTS, Log2Histogram
from scxd.hostfs import HostFS
from scxd.types import SchedSample, TaskExit, TaskWindow

PROGRAM = "scxd_sched.bpf.c"
#: Histograms in the stats array, in order; each has HIST_SLOTS slots.  Runqueue waits are
#: split by cause: WAKE (woken from sleep), PREEMPT (runnable again after a preemption or
#: yield), and a new task's first wait, which is its response time (RESP).
HISTOGRAMS = ("WAKE", "PREEMPT", "RESP", "TURN", "EXT")  # EXT ⊂ WAKE: external wakeups
#: Counters after the histograms, in order.
COUNTERS = ("SWITCHES", "VOLUNTARY", "PREEMPTIONS", "WAKEUPS", "NEW_TASKS", "WAKE_SUM_NS",
            "PREEMPT_SUM_NS", "RESP_SUM_NS", "TURN_SUM_NS", "EXT_SUM_NS", "EXITS",
            "EXIT_DROPS", "TABLE_EVICTIONS")
COUNTER_BASE = len(HISTOGRAMS) * HIST_SLOTS
STATS_SLOTS = COUNTER_BASE + len(COUNTERS)
#: Bits of the reported prev_state that mean "went to sleep" (S D T t X Z P I); a preempted
#: task is reported as TASK_REPORT_MAX (0x100) and a yielding one as 0.
SLEEP_STATE_MASK = 0xFF
#: struct task_acct in the C program (the mmapped per-task table).
TASK_ACCT = np.dtype([("pid", "<u4"), ("flags", "<u4"), ("ready_ts", "<u8"), ("born_ts", "<u8"),
                      ("first_run_ts", "<u8"), ("oncpu_ns", "<u8"), ("wait_ns", "<u8"),
                      ("wake_wait_ns", "<u8"), ("wakes", "<u8"), ("ext_wait_ns", "<u8"),
                      ("ext_wakes", "<u8")])
#: struct exit_event in the C program.
EXIT_EVENT = struct.Struct("<IIQQQQQQ16sQQQQ")
#: Tracepoint fields the program reads (TRACEPOINT_PROBE args), checked in tracefs first.
TRACEPOINT_FIELDS = {
    "sched:sched_wakeup": ("pid",), "sched:sched_wakeup_new": ("pid",),
    "sched:sched_switch": ("prev_pid", "prev_state", "next_pid"),
    "sched:sched_process_exit": ("pid", "comm"),
    # Interrupt-context brackets (external wakeups): only their presence matters.
    **{f"{cat}:{ev}_{edge}": () for cat, ev in (
        ("timer", "hrtimer_expire"), ("timer", "timer_expire"), ("irq", "irq_handler"),
        ("irq", "softirq")) for edge in ("entry", "exit")},
}
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_BPF_ENABLE_STATS = 32
_BPF_STATS_RUN_TIME = 0


class BpfUnavailable(RuntimeError):
    """BPF telemetry cannot run here; the message says why (permission, headers, kernel)."""


def default_bpf_dir() -> Path:
    """``bpf/`` beside the package (source checkout / editable install), else /usr/share."""
    here = Path(__file__).resolve().parents[2] / "bpf"
    return here if (here / PROGRAM).exists() else Path("/usr/share/scxd/bpf")


def cflags(max_tasks: int, ringbuf_pages: int) -> list[str]:
    flags = [f"-DMAX_TASKS={max_tasks}", f"-DRINGBUF_PAGES={ringbuf_pages}",
             f"-DHIST_SLOTS={HIST_SLOTS}", f"-DSTATS_SLOTS={STATS_SLOTS}",
             f"-DSLEEP_STATE_MASK={SLEEP_STATE_MASK:#x}", "-Wno-ignored-attributes"]
    flags += [f"-DH_{name}_BASE={i * HIST_SLOTS}" for i, name in enumerate(HISTOGRAMS)]
    flags += [f"-DC_{name}={COUNTER_BASE + i}" for i, name in enumerate(COUNTERS)]
    return flags


def parse_exit_event(raw: bytes) -> TaskExit:
    (pid, tgid, born, first, exit_ts, oncpu, wait, _flags, comm, wake_wait, wakes,
     ext_wait, ext_wakes) = EXIT_EVENT.unpack_from(raw)
    return TaskExit(pid=pid, tgid=tgid, comm=comm.split(b"\0", 1)[0].decode(errors="replace"),
                    born_ns=born, first_run_ns=first, exit_ns=exit_ts, oncpu_ns=oncpu,
                    wait_ns=wait, wake_wait_ns=wake_wait, wakes=wakes,
                    ext_wait_ns=ext_wait, ext_wakes=ext_wakes)


#: Cumulative per-task figures of the table, in TaskTimes/TaskWindow order.
TASK_FIELDS = ("oncpu_ns", "wait_ns", "wake_wait_ns", "wakes", "ext_wait_ns", "ext_wakes")


class TaskTimes(NamedTuple):
    """One task's cumulative times (ns) since the collector first saw it."""

    oncpu_ns: int
    wait_ns: int                  # runqueue wait of every kind
    wake_wait_ns: int             # the part after wakeups (the rest: preemptions, 1st run)
    wakes: int                    # wakeup waits in wake_wait_ns
    ext_wait_ns: int              # the part of wake_wait_ns after external wakeups
    ext_wakes: int


@dataclass(frozen=True)
class StatsReading:
    """Summed-over-CPUs values of the stats array at one moment."""

    values: tuple[int, ...]

    def hist(self, name: str) -> Log2Histogram:
        base = HISTOGRAMS.index(name) * HIST_SLOTS
        sum_idx = COUNTER_BASE + COUNTERS.index(f"{name}_SUM_NS")
        return Log2Histogram(self.values[base:base + HIST_SLOTS], self.values[sum_idx])

    def counter(self, name: str) -> int:
        return self.values[COUNTER_BASE + COUNTERS.index(name)]


def counters_delta(new: StatsReading, old: StatsReading) -> dict[str, int]:
    return {name: new.counter(name) - old.counter(name) for name in COUNTERS}


class StatsFd:
    """Holds BPF run-time statistics on for as long as it is open."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.error = ""
        nr = _SYS_BPF.get(platform.machine())
        if nr is None:
            self.error = f"no bpf syscall number known for {platform.machine()}"
            return
        libc = ctypes.CDLL(None, use_errno=True)
        attr = ctypes.c_uint32(_BPF_STATS_RUN_TIME)
        fd = libc.syscall(nr, _BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
        if fd < 0:
            err = ctypes.get_errno()
            self.error = f"BPF_ENABLE_STATS failed: {os.strerror(err)}"
        else:
            self.fd = fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class BpfSchedSource:
    """The scheduling source backed by the BPF program."""

    name = "bpf"

    def __init__(self, host: HostFS, *, bpf_dir: Path | None = None, max_tasks: int = 32768,
                 ringbuf_pages: int = 256, enable_stats: bool = True):
        self.host = host
        self.path = (bpf_dir or default_bpf_dir()) / PROGRAM
        if max_tasks & (max_tasks - 1):
            raise ValueError(f"max_tasks must be a power of two, got {max_tasks}")
        self.max_tasks = max_tasks
        self.cflags = cflags(max_tasks, ringbuf_pages)
        self._table: mmap.mmap | None = None
        self._task_view: np.ndarray | None = None
        self.enable_stats = enable_stats
        self._bpf = None
        self._stats_fd: StatsFd | None = None
        self._prev: StatsReading | None = None
        self._prev_cost = (0, 0)
        self._exits: list[TaskExit] = []
        self._task_prev: np.ndarray | None = None
        self.cost_error = ""
        self.load_seconds = 0.0

    # -- lifecycle ------------------------------------------------------------------------
    def load(self) -> None:
        """Compile and attach; raises :class:`BpfUnavailable` with the reason."""
        if os.geteuid() != 0:
            raise BpfUnavailable("not root: loading BPF programs needs CAP_BPF+CAP_PERFMON")
        if not self.path.exists():
            raise BpfUnavailable(f"BPF program {self.path} not found")
        try:
            self.host.ensure_tracefs()
        except OSError as exc:
            raise BpfUnavailable(str(exc)) from None
        self.check_tracepoints()
        try:
            from bcc import BPF
        except ImportError as exc:
            raise BpfUnavailable(
                f"bcc is not importable ({exc}): install Debian's python3-bpfcc and use a "
                "venv made with --system-site-packages") from None
        release = os.uname().release
        if not self.host.exists(f"lib/modules/{release}/build"):
            raise BpfUnavailable(
                f"no kernel headers at /lib/modules/{release}/build: install them (the "
                "install step links Debian's linux-headers-6.12 there on kernels without a "
                "headers package)")
        start = time.monotonic()
        try:
            self._bpf = BPF(src_file=str(self.path).encode(), cflags=self.cflags)
        except Exception as exc:  # bcc raises bare Exception on compile/load failures
            raise BpfUnavailable(f"loading {self.path.name} failed: {exc}") from None
        self.load_seconds = time.monotonic() - start
        self._bpf[b"exits"].open_ring_buffer(self._on_exit)
        self._map_task_table()
        if self.enable_stats:
            self._stats_fd = StatsFd()
            self.cost_error = self._stats_fd.error
        self._prev = self._read_stats()
        self._prev_cost = self._read_cost()

    def _map_task_table(self) -> None:
        size = self.max_tasks * TASK_ACCT.itemsize
        length = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        fd = self._bpf[b"tasks"].map_fd
        self._table = mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        self._task_view = np.frombuffer(self._table, dtype=TASK_ACCT, count=self.max_tasks)

    def check_tracepoints(self) -> None:
        """Every field the program reads must be in this kernel's tracefs format: a kernel
        that renamed or dropped one gets a clear reason instead of a compile error."""
        for name, needed in TRACEPOINT_FIELDS.items():
            category, event = name.split(":")
            try:
                fields = self.host.tracepoint_format(category, event)
            except (OSError, ValueError) as exc:
                raise BpfUnavailable(f"tracepoint {name} unreadable: {exc}") from None
            missing = [f for f in needed if f not in fields]
            if missing:
                raise BpfUnavailable(f"tracepoint {name} has no field "
                                     f"{', '.join(missing)} in this kernel's tracefs format")

    def close(self) -> None:
        if self._table is not None:
            self._task_view = None
            self._table.close()
            self._table = None
        if self._stats_fd is not None:
            self._stats_fd.close()
            self._stats_fd = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> BpfSchedSource:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def loaded(self) -> bool:
        return self._bpf is not None

    def source_text(self) -> str:
        """The program and the flags it is compiled with (``scxd observe --print-bpf``)."""
        return f"/* cflags: {' '.join(self.cflags)} */\n" + self.path.read_text()

    # -- readings -------------------------------------------------------------------------
    def _on_exit(self, _ctx, data, size) -> None:
        self._exits.append(parse_exit_event(ctypes.string_at(data, size)))

    def _read_stats(self) -> StatsReading:
        table = self._bpf[b"stats"]
        totals = [0] * STATS_SLOTS
        try:
            for key, per_cpu in table.items_lookup_batch():
                totals[getattr(key, "value", key)] = sum(per_cpu)
        except Exception:  # kernels without batch ops on arrays: one lookup per slot
            for i in range(STATS_SLOTS):
                totals[i] = table.sum(i).value
        return StatsReading(tuple(totals))

    def _read_cost(self) -> tuple[int, int]:
        if self._stats_fd is None or self._stats_fd.fd is None:
            return (0, 0)
        run_time = run_cnt = 0
        for fn in self._bpf.funcs.values():
            try:
                st = self.host.bpf_prog_stats(fn.fd)
            except (OSError, ValueError) as exc:
                self.cost_error = str(exc)
                return (0, 0)
            run_time += st.run_time_ns
            run_cnt += st.run_cnt
        return (run_time, run_cnt)

    def read(self) -> SchedSample:
        if self._bpf is None or self._prev is None:
            raise RuntimeError("BPF source is not loaded")
        self._bpf.ring_buffer_consume()
        now = self._read_stats()
        cost = self._read_cost()
        delta = counters_delta(now, self._prev)
        wake = now.hist("WAKE") - self._prev.hist("WAKE")
        ext = now.hist("EXT") - self._prev.hist("EXT")
        preempt = now.hist("PREEMPT") - self._prev.hist("PREEMPT")
        resp = now.hist("RESP") - self._prev.hist("RESP")
        rq = wake + preempt + resp  # every runqueue wait, whatever its cause
        turn = now.hist("TURN") - self._prev.hist("TURN")
        exits, self._exits = tuple(self._exits), []
        sample = SchedSample(
            source="bpf",
            rq_count=rq.count,
            rq_sum_ns=rq.sum_ns,
            rq_hist=rq,
            wake_hist=wake,
            ext_hist=ext,
            preempt_hist=preempt,
            resp_hist=resp,
            turn_hist=turn,
            switches=delta["SWITCHES"],
            wakeups=delta["WAKEUPS"],
            new_tasks=delta["NEW_TASKS"],
            preemptions=delta["PREEMPTIONS"],
            voluntary=delta["VOLUNTARY"],
            exits=delta["EXITS"],
            lost_events=delta["EXIT_DROPS"] + delta["TABLE_EVICTIONS"],
            task_exits=exits,
            bpf_run_time_ns=cost[0] - self._prev_cost[0],
            bpf_run_cnt=cost[1] - self._prev_cost[1],
        )
        self._prev, self._prev_cost = now, cost
        return sample

    def _snapshot(self) -> np.ndarray:
        """A private copy of the per-task table (bytes() of the mapping: a plain memcpy,
        several times faster than numpy's element-wise copy of the mapped view)."""
        if self._table is None:
            raise RuntimeError("BPF source is not loaded")
        return np.frombuffer(bytes(self._table), dtype=TASK_ACCT, count=self.max_tasks)

    def task_times(self) -> dict[int, TaskTimes]:
        """Cumulative times per task the table holds now."""
        snap = self._snapshot()
        live = snap[np.flatnonzero(snap["pid"])]
        return {int(t["pid"]): TaskTimes(*(int(t[f]) for f in TASK_FIELDS)) for t in live}

    def window_task_cpu(self, exited: tuple[TaskExit, ...]) -> tuple[int, ...]:
        """CPU time each task received since the previous call, for tasks that waited in a
        runqueue meanwhile (the ones that competed for a CPU)."""
        return tuple(t.oncpu_ns for t in self.window_tasks(exited) if t.wait_ns > 0)

    def window_tasks(self, exited: tuple[TaskExit, ...]) -> tuple[TaskWindow, ...]:
        """Each task's times since the previous call, for tasks that ran or waited
        meanwhile.  Exited tasks count with the final totals of their exit records."""
        # One copy of the mapped table, then arithmetic on the occupied slots only (a few
        # hundred of MAX_TASKS): per-field work on the whole structured table cost ≈ 20 ms
        # per window here, this ≈ 1 ms.
        now = self._snapshot()
        prev = self._task_prev if self._task_prev is not None else np.zeros_like(now)
        slots = np.flatnonzero(now["pid"])
        cur, old = now[slots], prev[slots]
        # A slot holds the same task when the pid matches and its totals did not go back
        # (a recycled pid — the old task exited, a new one got its number — starts at 0:
        # an unsigned difference would wrap to ~1.8e19 ns).
        same = cur["pid"] == old["pid"]
        for f in TASK_FIELDS:
            same &= cur[f] >= old[f]
        deltas = [np.where(same, cur[f] - old[f], cur[f]).astype(np.int64) for f in TASK_FIELDS]
        active = (deltas[0] > 0) | (deltas[1] > 0)
        columns = [*(d[active] for d in deltas), cur["pid"][active].astype(np.int64)]
        tasks = [TaskWindow(*row) for row in np.stack(columns, 1).tolist()] if columns[0].size \
            else []
        # Tasks gone since the last window: their slot was cleared at exit; the exit
        # record has their totals.  Subtract what the previous window had already seen.
        mask = self.max_tasks - 1
        for e in exited:
            old = prev[e.pid & mask]
            base = ([int(old[f]) for f in TASK_FIELDS] if old["pid"] == e.pid
                    else [0] * len(TASK_FIELDS))
            final = (e.oncpu_ns, e.wait_ns, e.wake_wait_ns, e.wakes, e.ext_wait_ns, e.ext_wakes)
            if all(f >= b for f, b in zip(final, base, strict=True)) and (
                    final[0] > base[0] or final[1] > base[1]):
                tasks.append(TaskWindow(*(f - b for f, b in zip(final, base, strict=True)),
                                        pid=e.pid))
        self._task_prev = now
        return tuple(tasks)
