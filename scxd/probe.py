"""Start-up probe: which schedulers are installed and which of their flags they accept.

For each catalog entry: find the binary on the configured search path, run it with its help
arguments, and drop (and report) every parameter whose flag the help text lacks.  When the
help text cannot be obtained — the kernel-tree examples open their BPF skeleton before
parsing arguments, so on a kernel without sched_ext ``scx_simple -h`` fails with
``[SCX_BUG]`` — the flags are kept as catalogued and the entry says they are unverified.
The fair scheduler's debugfs tunables are kept only when readable and writable; their
defaults become the values read (they depend on the CPU count and the kernel build).
A parameter that needs a kernel capability (``ParamSpec.requires``: a kfunc in the kernel's
BTF, a loaded module) is refused on a kernel without it: the entry keeps it in
``unavailable`` with the reason, so asking for it fails before anything is spawned.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scxd import btf
from scxd.catalog import Catalog, SchedulerSpec
from scxd.hostfs import SCHED_DEBUGFS_DIR, HostFS

HELP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    reason: str = ""                                 # why not available
    binary_path: str = ""
    flags_verified: bool = False                     # help text read and flags checked
    note: str = ""                                   # e.g. why flags are unverified
    dropped: dict[str, str] = field(default_factory=dict)   # parameter → reason
    dropped_presets: dict[str, str] = field(default_factory=dict)
    version: str = ""                                # the binary's --version line

    def as_dict(self) -> dict:
        return {"available": self.available, "reason": self.reason,
                "binary_path": self.binary_path, "flags_verified": self.flags_verified,
                "note": self.note, "version": self.version,
                "dropped_params": dict(self.dropped),
                "dropped_presets": dict(self.dropped_presets)}


@dataclass(frozen=True)
class ProbedCatalog:
    """The catalog as this machine can run it."""

    catalog: Catalog                                 # unsupported parameters removed
    availability: dict[str, Availability]

    def available(self) -> list[str]:
        return [n for n, a in self.availability.items() if a.available]

    def binary(self, name: str) -> str:
        return self.availability[name].binary_path


def find_binary(binary: str, search_path: Iterable[str]) -> Path | None:
    if os.path.isabs(binary):
        p = Path(binary)
        return p if p.is_file() and os.access(p, os.X_OK) else None
    for d in search_path:
        p = Path(d) / binary
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def flag_in_help(flag: str, text: str) -> bool:
    """Is ``flag`` a whole word of the help text (not a prefix of a longer flag)?"""
    return re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", text) is not None


def read_help(path: Path, args: tuple[str, ...], timeout: float = HELP_TIMEOUT_S
              ) -> tuple[str | None, str]:
    """(help text, problem).  Text is None when the binary gave no usable help."""
    try:
        res = subprocess.run([str(path), *args], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=timeout,
                             errors="replace")
    except subprocess.TimeoutExpired:
        return None, f"'{path.name} {' '.join(args)}' did not finish in {timeout:.0f} s"
    except OSError as exc:
        return None, f"cannot run {path}: {exc.strerror}"
    text = res.stdout + res.stderr
    if res.returncode != 0 or not re.search(r"(?i)usage", text):
        tail = " ".join(text.strip().splitlines()[-2:])[:200]
        return None, f"'{path.name} {' '.join(args)}' exited {res.returncode}: {tail}"
    return text, ""


def missing_capability(host: HostFS, requirement: str, cache: dict[str, object]) -> str:
    """Why the running kernel lacks ``requirement`` ("" when it has it).  ``kfunc:NAME`` is
    looked up among the FUNC types of /sys/kernel/btf/vmlinux, ``module:NAME`` in
    /sys/module.  ``cache`` keeps the parsed BTF across calls."""
    kind, _, name = requirement.partition(":")
    if kind == "module":
        return "" if host.exists(f"sys/module/{name}") else \
            f"kernel module {name} is not loaded (/sys/module/{name} absent)"
    if kind != "kfunc":
        return f"unknown kernel capability {requirement!r}"
    if "btf" not in cache:
        try:
            data = host.read_bytes("sys/kernel/btf/vmlinux")
            cache["btf"] = data
        except OSError as exc:
            cache["btf"] = f"kernel BTF unreadable ({exc.strerror or exc})"
    data = cache["btf"]
    if isinstance(data, str):
        return data
    assert isinstance(data, bytes)
    if btf.has_name(data, name):
        funcs = cache.get("funcs")
        if funcs is None:
            try:
                funcs = cache["funcs"] = btf.func_names(data)
            except btf.BtfError as exc:
                return f"kernel BTF unreadable ({exc})"
        if name in funcs:  # type: ignore[operator]
            return ""
    return f"this kernel has no kfunc {name} (not in /sys/kernel/btf/vmlinux)"


def restrict(spec: SchedulerSpec, dropped: dict[str, str]) -> tuple[SchedulerSpec, dict[str, str]]:
    """The spec without the dropped parameters (and presets/constraints that use them);
    dropped ones are kept in ``unavailable`` with their reason."""
    if not dropped:
        return spec, {}
    params = tuple(p for p in spec.params if p.name not in dropped)
    kept_presets, lost = {}, {}
    for name, values in spec.presets.items():
        gone = [k for k in values if k in dropped]
        if gone:
            lost[name] = f"uses unsupported {', '.join(gone)}"
        else:
            kept_presets[name] = values
    constraints = tuple(c for c in spec.constraints
                        if c.parts()[0] not in dropped and c.parts()[2] not in dropped)
    aliases = {k: v for k, v in spec.aliases.items() if v[0] not in dropped}
    unavailable = {**spec.unavailable,
                   **{p.name: (p, dropped[p.name]) for p in spec.params if p.name in dropped}}
    return replace(spec, params=params, presets=kept_presets, constraints=constraints,
                   aliases=aliases, unavailable=unavailable), lost


def fair_as_found(spec: SchedulerSpec, defaults: Mapping[str, Any],
                  dropped: dict[str, str]) -> tuple[SchedulerSpec, dict[str, str]]:
    """The fair scheduler's spec as one machine has it: the tunables it cannot set dropped
    (:func:`restrict`), the others defaulting to that machine's values (probed live here,
    or read from a recording's plain ``fair`` arm by replay)."""
    narrowed, lost = restrict(spec, dropped)
    return replace(narrowed, params=tuple(replace(p, default=defaults[p.name])
                                          if p.name in defaults else p
                                          for p in narrowed.params)), lost


def parse_preempt(text: str) -> str | None:
    """debugfs sched/preempt reads like ``none (voluntary) full lazy``: the current one is
    in parentheses."""
    m = re.search(r"\((\w+)\)", text)
    return m.group(1) if m else None


def read_fair_tunable(host: HostFS, name: str) -> str:
    """A fair-scheduler tunable's current value as it would be written back: the file's
    text, except ``preempt``, which lists every model and marks the current one."""
    text = host.read(f"{SCHED_DEBUGFS_DIR}/{name}").strip()
    return (parse_preempt(text) or text) if name == "preempt" else text


def probe_fair(spec: SchedulerSpec, host: HostFS) -> tuple[SchedulerSpec, Availability]:
    host.ensure_debugfs()
    dropped: dict[str, str] = {}
    live: dict[str, Any] = {}
    for p in spec.params:
        rel = f"{SCHED_DEBUGFS_DIR}/{p.flag}"
        try:
            value = read_fair_tunable(host, p.flag)
        except OSError as exc:
            dropped[p.name] = f"debugfs sched/{p.flag}: {exc.strerror or exc}"
            continue
        if not os.access(host.path(rel), os.W_OK):
            dropped[p.name] = f"debugfs sched/{p.flag} is read-only"
            continue
        try:
            live_default = p.check(int(value) if p.kind == "int" else value)
        except (ValueError, TypeError, Exception) as exc:
            dropped[p.name] = f"debugfs sched/{p.flag} reads {value!r}: {exc}"
            continue
        live[p.name] = live_default
    narrowed, lost = fair_as_found(spec, live, dropped)
    return narrowed, Availability(spec.name, True, flags_verified=True, dropped=dropped,
                                  dropped_presets=lost,
                                  note="tunables dropped: debugfs not writable" if dropped
                                  else "")


def read_version(path: Path) -> str:
    """First line of ``BINARY --version`` ("" when it has none)."""
    try:
        res = subprocess.run([str(path), "--version"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=HELP_TIMEOUT_S,
                             errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = res.stdout.strip().splitlines()
    return lines[0] if res.returncode == 0 and lines else ""


def probe_one(spec: SchedulerSpec, search_path: Iterable[str], host: HostFS,
              caps: dict[str, object] | None = None) -> tuple[SchedulerSpec, Availability]:
    if spec.is_fair:
        return probe_fair(spec, host)
    path = find_binary(spec.binary, search_path)
    if path is None:
        where = spec.binary if os.path.isabs(spec.binary) else \
            f"{spec.binary} in {':'.join(search_path)}"
        return spec, Availability(spec.name, False, reason=f"binary not found: {where}")
    if not spec.help_args:
        return spec, Availability(spec.name, True, binary_path=str(path),
                                  note="no help probe configured; flags unverified")
    text, problem = read_help(path, spec.help_args)
    if text is None:
        return spec, Availability(spec.name, True, binary_path=str(path),
                                  note=f"help probe failed ({problem}); flags unverified")
    dropped = {}
    for p in spec.params:
        missing = [f for f in p.flag_words() if not flag_in_help(f, text)]
        if missing:
            dropped[p.name] = f"{', '.join(missing)} not in '{path.name} " \
                              f"{' '.join(spec.help_args)}' output"
        elif p.requires:
            why = missing_capability(host, p.requires, caps if caps is not None else {})
            if why:
                dropped[p.name] = f"{p.flag} needs {p.requires}: {why}"
    narrowed, lost = restrict(spec, dropped)
    return narrowed, Availability(spec.name, True, binary_path=str(path), flags_verified=True,
                                  dropped=dropped, dropped_presets=lost,
                                  version=read_version(path) if "--help" in spec.help_args
                                  else "")


def probe_catalog(catalog: Catalog, search_path: Iterable[str], host: HostFS,
                  on_probe: Callable[[str], object] | None = None) -> ProbedCatalog:
    """Probe every scheduler of ``catalog``; ``on_probe(name)`` is called before each (the
    daemon extends systemd's start timeout per binary: each probe spawns it twice)."""
    search_path = list(search_path)
    specs, avail = [], {}
    caps: dict[str, object] = {}
    for spec in catalog:
        if on_probe is not None:
            on_probe(spec.name)
        narrowed, a = probe_one(spec, search_path, host, caps)
        specs.append(narrowed)
        avail[spec.name] = a
    return ProbedCatalog(Catalog(specs), avail)
