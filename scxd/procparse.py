"""Pure parsers for the kernel's text files (/proc, /sys, tracefs, bpf fdinfo).

Every function takes the file's text and returns typed values; none does I/O (that is
``hostfs``).  Malformed input raises :class:`ParseError` naming the file and the problem, so a
caller can count the failure and carry on rather than feed garbage to the policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: /proc/stat's cpu line columns, in kernel order (Documentation/filesystems/proc.rst).
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
              "guest", "guest_nice")
#: /proc/diskstats counts sectors of 512 bytes whatever the device's sector size.
DISKSTATS_SECTOR_BYTES = 512


class ParseError(ValueError):
    """A kernel file did not have the expected shape."""

    def __init__(self, what: str, problem: str):
        super().__init__(f"{what}: {problem}")
        self.what = what
        self.problem = problem


@dataclass(frozen=True)
class ProcStat:
    """/proc/stat: aggregate CPU jiffies and scheduler counters since boot."""

    cpu: dict[str, int]            # aggregate "cpu" line, jiffies per CPU_FIELDS name
    ncpus: int                     # number of "cpuN" lines
    per_cpu: tuple[tuple[int, int], ...]  # per "cpuN" line: (busy jiffies, total jiffies)
    ctxt: int                      # context switches since boot
    processes: int                 # forks since boot
    procs_running: int             # runnable threads now (nr_running)
    procs_blocked: int             # threads in uninterruptible IO wait now


@dataclass(frozen=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float
    runnable: int                  # currently runnable scheduling entities
    total: int                     # existing scheduling entities (threads)


@dataclass(frozen=True)
class Pressure:
    """One PSI file: "some" (and "full" where the kernel has it) lines."""

    some_avg10: float              # percent of the last 10 s
    some_total_us: int             # cumulative stall time, microseconds
    full_avg10: float | None
    full_total_us: int | None


@dataclass(frozen=True)
class DiskStat:
    name: str
    read_bytes: int
    write_bytes: int


@dataclass(frozen=True)
class PidStatus:
    """The /proc/<pid>/status fields the sampler uses."""

    state: str                     # one letter: R S D T t X Z P I
    threads: int
    voluntary_ctxt_switches: int
    nonvoluntary_ctxt_switches: int


@dataclass(frozen=True)
class SchedStat:
    """/proc/<pid>/schedstat: sched_info of one task (needs CONFIG_SCHED_INFO)."""

    oncpu_ns: int                  # time spent on a CPU
    wait_ns: int                   # time spent waiting on a runqueue
    timeslices: int                # number of times it was switched in


def _int(what: str, token: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise ParseError(what, f"expected an integer, got {token!r}") from None


def _float(what: str, token: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise ParseError(what, f"expected a number, got {token!r}") from None


def parse_proc_stat(text: str) -> ProcStat:
    what = "/proc/stat"
    cpu: dict[str, int] | None = None
    per_cpu: list[tuple[int, int]] = []
    scalars: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "cpu":
            if len(parts) < 5:
                raise ParseError(what, f"cpu line has {len(parts) - 1} columns, need ≥4")
            values = [_int(what, p) for p in parts[1:1 + len(CPU_FIELDS)]]
            values += [0] * (len(CPU_FIELDS) - len(values))
            cpu = dict(zip(CPU_FIELDS, values, strict=True))
        elif key.startswith("cpu") and key[3:].isdigit():
            if len(parts) < 5:
                raise ParseError(what, f"{key} line has {len(parts) - 1} columns, need ≥4")
            # guest time is already inside user/nice: only the first 8 columns add up.
            values = [_int(what, p) for p in parts[1:9]]
            total = sum(values)
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            per_cpu.append((total - idle, total))
        elif key in ("ctxt", "processes", "procs_running", "procs_blocked") and len(parts) == 2:
            scalars[key] = _int(what, parts[1])
    missing = [k for k in ("ctxt", "processes", "procs_running", "procs_blocked")
               if k not in scalars]
    if cpu is None:
        missing.insert(0, "cpu")
    if missing:
        raise ParseError(what, f"missing {', '.join(missing)} (truncated file?)")
    assert cpu is not None
    return ProcStat(cpu=cpu, ncpus=max(len(per_cpu), 1), per_cpu=tuple(per_cpu), **scalars)


def parse_key_value_kb(text: str, what: str) -> dict[str, int]:
    """/proc/meminfo style "Key:   123 kB" → {Key: bytes}; lines without a unit are counts."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            raise ParseError(what, f"line without ':' {line!r}")
        fields = rest.split()
        if not fields:
            raise ParseError(what, f"key {key!r} has no value")
        value = _int(what, fields[0])
        if len(fields) > 1 and fields[1] == "kB":
            value *= 1024
        out[key.strip()] = value
    return out


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo → bytes.  MemTotal and MemAvailable must be present."""
    values = parse_key_value_kb(text, "/proc/meminfo")
    for key in ("MemTotal", "MemFree", "MemAvailable"):
        if key not in values:
            raise ParseError("/proc/meminfo", f"missing {key} (truncated file?)")
    return values


def parse_vmstat(text: str) -> dict[str, int]:
    """/proc/vmstat "name value" lines → {name: value}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ParseError("/proc/vmstat", f"malformed line {line!r}")
        out[parts[0]] = _int("/proc/vmstat", parts[1])
    if "pswpin" not in out or "pswpout" not in out:
        raise ParseError("/proc/vmstat", "missing pswpin/pswpout (truncated file?)")
    return out


def parse_loadavg(text: str) -> LoadAvg:
    what = "/proc/loadavg"
    parts = text.split()
    if len(parts) < 4 or "/" not in parts[3]:
        raise ParseError(what, f"expected 'l1 l5 l15 running/total ...', got {text.strip()!r}")
    running, _, total = parts[3].partition("/")
    return LoadAvg(_float(what, parts[0]), _float(what, parts[1]), _float(what, parts[2]),
                   _int(what, running), _int(what, total))


def parse_pressure(text: str, what: str) -> Pressure:
    """/proc/pressure/{cpu,memory,io}: 'some avg10=.. avg60=.. avg300=.. total=..' lines."""
    lines: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        fields = {}
        for item in parts[1:]:
            k, sep, v = item.partition("=")
            if not sep:
                raise ParseError(what, f"malformed field {item!r}")
            fields[k] = v
        lines[parts[0]] = fields
    some = lines.get("some")
    if some is None or "avg10" not in some or "total" not in some:
        raise ParseError(what, "missing 'some avg10=… total=…' line")
    full = lines.get("full")
    return Pressure(
        some_avg10=_float(what, some["avg10"]),
        some_total_us=_int(what, some["total"]),
        full_avg10=_float(what, full["avg10"]) if full and "avg10" in full else None,
        full_total_us=_int(what, full["total"]) if full and "total" in full else None,
    )


def parse_diskstats(text: str) -> dict[str, DiskStat]:
    """/proc/diskstats → {device: DiskStat}; columns per Documentation/admin-guide/iostats."""
    what = "/proc/diskstats"
    out: dict[str, DiskStat] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 14:
            raise ParseError(what, f"line has {len(parts)} columns, need ≥14: {line.strip()!r}")
        name = parts[2]
        sectors_read = _int(what, parts[5])
        sectors_written = _int(what, parts[9])
        out[name] = DiskStat(name, sectors_read * DISKSTATS_SECTOR_BYTES,
                             sectors_written * DISKSTATS_SECTOR_BYTES)
    return out


_PARTITION = re.compile(
    r"^(sd[a-z]+|vd[a-z]+|xvd[a-z]+|hd[a-z]+)\d+$|^(nvme\d+n\d+|mmcblk\d+)p\d+$")


def is_partition_name(name: str) -> bool:
    """Name-based fallback when /sys/block is not available to tell disks from partitions."""
    return bool(_PARTITION.match(name))


_STATUS_KEYS = (b"\nState:", b"\nThreads:", b"\nvoluntary_ctxt_switches:",
                b"\nnonvoluntary_ctxt_switches:")


def parse_pid_status(text: str | bytes, pid: int | str) -> PidStatus:
    """The four fields the sampler needs, found directly: this runs for every process on
    every sample, so it avoids splitting the whole ~1.4 kB file into lines."""
    what = f"/proc/{pid}/status"
    data = text.encode() if isinstance(text, str) else text
    values = []
    for key in _STATUS_KEYS:
        at = data.find(key)
        if at < 0:
            raise ParseError(what, f"missing field {key.strip().decode()!r} (truncated file?)")
        start = at + len(key)
        end = data.find(b"\n", start)
        values.append(data[start:end if end >= 0 else len(data)].strip())
    state = values[0][:1].decode(errors="replace")
    if not state:
        raise ParseError(what, "empty State field")
    nums = []
    for raw in values[1:]:
        try:
            nums.append(int(raw))
        except ValueError:
            raise ParseError(what, f"expected an integer, got {raw!r}") from None
    return PidStatus(state, *nums)


def parse_schedstat(text: str, what: str = "schedstat") -> SchedStat:
    parts = text.split()
    if len(parts) != 3:
        raise ParseError(what, f"expected 3 numbers, got {text.strip()!r}")
    return SchedStat(*(_int(what, p) for p in parts))


def parse_fdinfo(text: str, what: str = "fdinfo") -> dict[str, str]:
    """/proc/<pid>/fdinfo/<fd> 'key:\tvalue' lines (bpf programs add run_time_ns, run_cnt)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    if "pos" not in out:
        raise ParseError(what, "not an fdinfo file (no 'pos' line)")
    return out


@dataclass(frozen=True)
class BpfProgStats:
    """Per-program cost counters kept while BPF run-time statistics are enabled."""

    run_time_ns: int
    run_cnt: int


def parse_bpf_prog_fdinfo(text: str, what: str = "fdinfo") -> BpfProgStats:
    info = parse_fdinfo(text, what)
    if "run_time_ns" not in info:
        raise ParseError(what, "no run_time_ns: not a BPF program fd, or kernel < 5.1")
    return BpfProgStats(_int(what, info["run_time_ns"]), _int(what, info.get("run_cnt", "0")))


@dataclass(frozen=True)
class TracepointField:
    ctype: str
    name: str
    offset: int
    size: int
    signed: bool


def parse_tracepoint_format(text: str, what: str = "format") -> dict[str, TracepointField]:
    """tracefs events/<sys>/<event>/format → {field name: TracepointField}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        parts = dict(p.strip().split(":", 1) for p in line.rstrip(";").split(";") if ":" in p)
        decl = parts.get("field", "")
        name = decl.split()[-1].split("[")[0] if decl.split() else ""
        if not name:
            raise ParseError(what, f"field without a name: {line!r}")
        ctype = decl[: decl.rfind(name)].strip()
        out[name] = TracepointField(ctype, name, _int(what, parts.get("offset", "?")),
                                    _int(what, parts.get("size", "?")),
                                    parts.get("signed", "0").strip() == "1")
    if not out:
        raise ParseError(what, "no 'field:' lines")
    return out
