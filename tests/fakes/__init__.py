"""A fake sched_ext kernel (a directory tree + a watcher thread) and fake loader binaries.

``FakeKernel(root)`` lays out ``sys/kernel/sched_ext`` as a 6.12 kernel shows it with no
scheduler loaded, and runs a thread that does what the kernel does when a loader process
dies: release its struct_ops (state → disabled, ``root/`` removed, a kernel log line).
``install_fake(bin_dir, name, ...)`` writes an executable ``name`` that runs
``fake_scx.py`` with the chosen behaviour, so the actuator spawns it like a real binary.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from pathlib import Path

import psutil

FAKE_SCX = Path(__file__).with_name("fake_scx.py")


class FakeKernel:
    def __init__(self, root: Path, real_proc: bool = True):
        self.root = Path(root)
        self.sx = self.root / "sys/kernel/sched_ext"
        self.sx.mkdir(parents=True, exist_ok=True)
        (self.root / "dev").mkdir(exist_ok=True)
        (self.root / "dev" / "kmsg").touch()
        for name, value in (("state", "disabled"), ("switch_all", "0"), ("nr_rejected", "0"),
                            ("hotplug_seq", "1"), ("enable_seq", "0")):
            (self.sx / name).write_text(value + "\n")
        # Loaders are real processes: the fake tree shows the real /proc (unless the test
        # lays out a /proc of its own, e.g. tests.fakes.synthetic_host).
        if real_proc:
            (self.root / "proc").symlink_to("/proc")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="fake-kernel")
        self.releases = 0

    def __enter__(self) -> FakeKernel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def state(self) -> str:
        return (self.sx / "state").read_text().strip()

    @property
    def ops(self) -> str | None:
        p = self.sx / "root" / "ops"
        return p.read_text().strip() if p.exists() else None

    @property
    def enable_seq(self) -> int:
        return int((self.sx / "enable_seq").read_text())

    def _owner(self) -> int | None:
        try:
            return int((self.sx / ".attached").read_text() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            pid = self._owner()
            if pid is None:
                continue
            try:
                proc = psutil.Process(pid)
                dead = proc.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                dead = True
            if dead:
                self.release(pid)

    def release(self, pid: int) -> None:
        """The loader died: the kernel frees its struct_ops link and disables."""
        from tests.fakes.fake_scx import kmsg, write

        ops = self.ops
        write(self.sx / "state", "disabling")  # atomic, as sysfs reads are
        (self.sx / "root" / "ops").unlink(missing_ok=True)
        write(self.sx / "state", "disabled")
        (self.sx / ".attached").unlink(missing_ok=True)
        if ops:
            kmsg(self.root, f'sched_ext: BPF scheduler "{ops}" disabled (unregistered from '
                 'user space)')
        self.releases += 1


def install_fake(bin_dir: Path, name: str, root: Path, ops: str, mode: str = "normal",
                 enable_delay: float = 0.05, after: float = 0.3, supports: str = "",
                 refuse_with: str = "") -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / name
    cmd = [sys.executable, str(FAKE_SCX), "--name", name, "--fake-root", str(root), "--ops",
           ops, "--mode",
           mode, "--enable-delay", str(enable_delay), "--after", str(after), "--supports",
           supports]
    if refuse_with:
        cmd.append(f"--refuse-with={refuse_with}")   # "=": the value may look like a flag
    exe.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(c) for c in cmd) + ' "$@"\n')
    exe.chmod(0o755)
    return exe


def fake_processes(root: Path) -> list[psutil.Process]:
    """Live fake loaders that belong to this fake kernel (orphan check)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if str(FAKE_SCX) in cmd and str(root) in cmd and p.info["status"] != \
                psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


__all__ = ["FakeKernel", "fake_processes", "install_fake", "os", "wait_for"]
