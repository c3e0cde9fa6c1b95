"""Boot the sched_ext test-bed kernel under qemu and bring results back as structured data.

Two modes:

* **fast** — a busybox initramfs holding the static schedulers and a shell scenario; the
  scenario prints result lines ``@@SCXD {json}`` on the serial console.  ≈5 s to boot.
* **full** — virtme-ng with the host file system (9p), so the project's own venv, actuator
  and daemon run inside the guest; results are JSON-lines files in a shared directory.
  Every test-bed scheduler (kernel tree and scx) is linked into the guest's
  ``/usr/local/bin`` — virtme-ng overlays /usr, the host's stays untouched — where scxd's
  default ``actuator.search_path`` looks, and put on ``PATH``; ``$SCXD_TESTBED_PATH`` lists
  their directories (:func:`guest_search_path`).

Always software emulation with single-threaded TCG (``-accel tcg,thread=single``:
multi-threaded TCG crashed the guest in 2 of 6 runs) and ``--disable-kvm`` (/dev/kvm exists
here but is unusable).  A guest that panics, oopses or times out is reported as such with
the console tail; "no results" is never mistaken for "no failures".
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from scxd.testbed.build import Artifacts, tool_path

MARKER = "@@SCXD "
#: In a full-mode guest: the test bed's scheduler directories, ':'-separated.
TESTBED_PATH_ENV = "SCXD_TESTBED_PATH"
GUEST_BIN = "/usr/local/bin"
DONE = "@@SCXD-DONE"
CRASH_PATTERNS = (r"Kernel panic", r"\bOops\b", r"BUG: ", r"general protection fault",
                  r"end Kernel panic")
QEMU_ACCEL = "tcg,thread=single"


@dataclass
class GuestRun:
    """What one guest boot produced."""

    mode: str
    returncode: int | None
    seconds: float
    console: str
    records: list[dict] = field(default_factory=list)
    timed_out: bool = False
    crashed: bool = False
    completed: bool = False          # the guest reached its end marker

    def console_tail(self, n: int = 40) -> str:
        return "\n".join(self.console.splitlines()[-n:])

    def problem(self) -> str:
        """Empty when the guest ran to completion; else what went wrong, with the tail."""
        if self.crashed:
            what = "the guest kernel crashed"
        elif self.timed_out:
            what = f"the guest timed out after {self.seconds:.0f} s"
        elif not self.completed:
            what = f"the guest stopped before finishing (exit {self.returncode})"
        else:
            return ""
        return f"{what}; console tail:\n{self.console_tail()}"

    def by_name(self, key: str = "scenario") -> dict[str, dict]:
        return {r[key]: r for r in self.records if key in r}


def detect_crash(console: str) -> bool:
    return any(re.search(p, console) for p in CRASH_PATTERNS)


def parse_marked(console: str) -> list[dict]:
    out = []
    for line in console.splitlines():
        at = line.find(MARKER)
        if at >= 0:
            try:
                out.append(json.loads(line[at + len(MARKER):]))
            except json.JSONDecodeError:
                out.append({"unparsable": line[at:]})
    return out


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None
         ) -> tuple[int | None, str, bool, float]:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        timed_out = True
    text = out.decode(errors="replace")
    return proc.returncode, text, timed_out, time.monotonic() - start


# -- fast mode --------------------------------------------------------------------------------
INIT_PRELUDE = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mkdir -p /tmp && mount -t tmpfs tmp /tmp
export PATH=/bin:/sbin
emit() { echo "@@SCXD $1"; }
"""
INIT_EPILOGUE = """
echo "@@SCXD-DONE"
poweroff -f
"""


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive of (path, mode, data) — files and directories."""
    buf = io.BytesIO()
    ino = 1
    for path, mode, data in [*entries, ("TRAILER!!!", 0, b"")]:
        name = path.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0))
        buf.write(header.encode() + name)
        buf.write(b"\0" * ((4 - (110 + len(name)) % 4) % 4))
        buf.write(data)
        buf.write(b"\0" * ((4 - len(data) % 4) % 4))
        ino += 1
    return buf.getvalue()


def build_initramfs(art: Artifacts, scenario: str, dest: Path,
                    extra_files: dict[str, Path] | None = None) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise FileNotFoundError("busybox not found (Debian package busybox-static)")
    entries: list[tuple[str, int, bytes]] = [(d, 0o40755, b"") for d in (
        "bin", "sbin", "proc", "sys", "dev", "tmp", "etc", "testbed")]
    entries.append(("bin/busybox", 0o100755, Path(busybox).read_bytes()))
    for static_dir in art.static_dirs:
        for exe in sorted(static_dir.iterdir()):
            entries.append((f"bin/{exe.name}", 0o100755, exe.read_bytes()))
    for name, src in (extra_files or {}).items():
        entries.append((name, 0o100755, src.read_bytes()))
    entries.append(("init", 0o100755, (INIT_PRELUDE + scenario + INIT_EPILOGUE).encode()))
    dest.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=1))
    return dest


def run_fast(art: Artifacts, scenario: str, timeout: float = 120.0, cpus: int = 2,
             memory: str = "1G") -> GuestRun:
    """Boot with a busybox initramfs running ``scenario`` (busybox sh; ``emit JSON``)."""
    with tempfile.TemporaryDirectory(prefix="scxd-fast-") as tmp:
        initrd = build_initramfs(art, scenario, Path(tmp) / "initramfs.cpio.gz")
        cmd = ["qemu-system-x86_64", "-accel", QEMU_ACCEL, "-smp", str(cpus), "-m", memory,
               "-display", "none", "-serial", "stdio", "-nic", "none", "-no-reboot",
               "-kernel", str(art.bzimage), "-initrd", str(initrd),
               "-append", "console=ttyS0 quiet panic=-1 oops=panic loglevel=4"]
        rc, console, timed_out, secs = _run(cmd, timeout)
    return GuestRun("fast", rc, secs, console, parse_marked(console), timed_out,
                    detect_crash(console), DONE in console)


# -- full mode --------------------------------------------------------------------------------
#: numpy's SIMD dispatch levels above its x86-64-v2 baseline.  qemu 7.2's TCG (Debian 12)
#: mis-emulates the AVX2 code of numpy's vectorised sort: ``np.argsort`` in Optuna's TPE
#: sampler segfaulted the guest's ``scxd tune`` (rc 139) at its first model-based trial.
#: Guests run numpy on its baseline code paths instead; the host is unaffected.
GUEST_NUMPY_ENV = "NPY_DISABLE_CPU_FEATURES='X86_V3 X86_V4 AVX512_ICL AVX512_SPR'"


def guest_setup_script(art: Artifacts) -> str:
    """Shell run first in a full-mode guest: the built tree as kernel headers for bcc, and
    the test-bed schedulers in /usr/local/bin and on PATH, numpy kept off the SIMD levels the
    emulator gets wrong."""
    tree = shlex.quote(str(art.tree))
    dirs = art.search_path
    links = " ".join(f"{shlex.quote(d)}/*" for d in dirs)
    return (f"mkdir -p /lib/modules/$(uname -r) && "
            f"ln -sfn {tree} /lib/modules/$(uname -r)/build && "
            f"ln -sfn {tree} /lib/modules/$(uname -r)/source; "
            f"ln -sf {links} {GUEST_BIN}/ 2>/dev/null; "
            f"export {GUEST_NUMPY_ENV}; "
            f"export {TESTBED_PATH_ENV}={shlex.quote(':'.join(dirs))}; "
            f"export PATH={shlex.quote(':'.join(dirs))}:$PATH")


def guest_search_path(testbed_root: Path | None = None) -> list[str]:
    """Inside a full-mode guest: the test bed's scheduler directories (from the environment
    run_full sets), else ``<testbed_root>/bin``."""
    env = os.environ.get(TESTBED_PATH_ENV, "")
    if env:
        return [d for d in env.split(":") if d]
    return [str(testbed_root / "bin")] if testbed_root else [GUEST_BIN]


#: The full-mode command, written into results_dir when it is passed as a file.
GUEST_SCRIPT = "scxd-guest.sh"


def run_full(art: Artifacts, command: list[str], results_dir: Path, timeout: float = 600.0,
             cpus: int = 2, memory: str = "2G", cwd: Path | None = None,
             keep: bool = False, rwdirs: tuple[Path, ...] = (),
             script_file: bool = True) -> GuestRun:
    """Boot with virtme-ng and run ``command`` in the guest as root.

    The artifacts (read-only), ``results_dir`` and ``rwdirs`` (read-write) appear in the
    guest at their host paths — virtme-ng hides /var/cache behind a tmpfs unless it is
    mounted explicitly; records are every ``*.jsonl`` line the guest wrote to
    ``results_dir``.  ``keep`` leaves earlier results in place (a resumable recording).
    """
    vng = shutil.which("vng", path=tool_path())
    if vng is None:
        raise FileNotFoundError("vng not found: pip install virtme-ng into the venv")
    results_dir.mkdir(parents=True, exist_ok=True)
    if not keep:
        for old in results_dir.glob("*.jsonl"):
            old.unlink()
    cwd = cwd or Path.cwd()
    inner = (f"{guest_setup_script(art)}; cd {shlex.quote(str(cwd))} && "
             f"{shlex.join(command)}; echo {DONE} rc=$?")
    if script_file:
        # virtme-ng passes --exec on the kernel command line (base64), and x86 caps that
        # line at 2048 bytes: a long command makes qemu stop at once with no console.  The
        # script goes into results_dir (mounted at its host path in the guest) instead —
        # always by default: the set-up alone (three scheduler directories on PATH) comes to
        # ~900 bytes, 1 200 in base64, and the scenario boot from a CI clone went over.
        script = results_dir / GUEST_SCRIPT
        script.write_text(inner + "\n")
        inner = f"sh {shlex.quote(str(script))}"
    cmd = [vng, "--run", str(art.bzimage), "--disable-kvm", "--force-9p",
           "--qemu-opts=-accel " + QEMU_ACCEL, "--cpus", str(cpus), "--memory", memory,
           f"--rodir={art.root}", f"--rwdir={results_dir}",
           *(f"--rwdir={d}" for d in rwdirs), "--exec", inner]
    env = dict(os.environ, PATH=tool_path())
    rc, console, timed_out, secs = _run(cmd, timeout, env)
    records = []
    for f in sorted(results_dir.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    records.append({"unparsable": line, "file": f.name})
    m = re.search(DONE + r" rc=(\d+)", console)
    return GuestRun("full", int(m.group(1)) if m else rc, secs, console, records, timed_out,
                    detect_crash(console), m is not None)



@dataclass
class ExecResult:
    """What a command run in the full-mode guest produced."""

    returncode: int | None         # None: the guest failed before the command finished
    stdout: str
    stderr: str
    run: GuestRun

    def as_dict(self) -> dict:
        return {"returncode": self.returncode, "stdout": self.stdout, "stderr": self.stderr,
                "guest_seconds": round(self.run.seconds, 1), "problem": self.run.problem()}


def exec_in_guest(art: Artifacts, command: list[str], timeout: float = 600.0,
                  rwdirs: tuple[Path, ...] = (), cwd: Path | None = None, cpus: int = 2,
                  memory: str = "2G") -> ExecResult:
    """Run ``command`` as root in a full-mode guest (host file system, ``rwdirs`` writable,
    the test-bed schedulers on PATH and in /usr/local/bin) and bring back its exit status
    and output (kept apart from the guest console)."""
    with tempfile.TemporaryDirectory(prefix="scxd-exec-") as tmp:
        out = Path(tmp)
        script = (f"{shlex.join(command)} >{shlex.quote(str(out / 'stdout'))} "
                  f"2>{shlex.quote(str(out / 'stderr'))}; "
                  f"echo $? >{shlex.quote(str(out / 'rc'))}")
        run = run_full(art, ["sh", "-c", script], out, timeout=timeout, cpus=cpus,
                       memory=memory, cwd=cwd, rwdirs=rwdirs, script_file=True)

        def text(name: str) -> str:
            p = out / name
            return p.read_text(errors="replace") if p.exists() else ""

        rc_text = text("rc").strip()
        rc = int(rc_text) if rc_text.lstrip("-").isdigit() else None
        return ExecResult(rc, text("stdout"), text("stderr"), run)
