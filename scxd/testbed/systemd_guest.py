"""Boot the cached Debian root file system with systemd as PID 1 on the test-bed kernel, and
prove scxd's unit there (``scxd-testbed systemd``; the ``testbed`` test in
tests/test_systemd_guest.py).

One boot: the root file system (:mod:`scxd.testbed.rootfs`) is mounted as an overlay, so the
cache stays untouched, and exported to qemu over virtio-9p as the guest's root.  Into the
overlay go a copy of this repository (what the README's steps install), the test bed's
static schedulers in /usr/local/bin (a user would install scx the same way), a kernel
headers link for bcc to the test bed's kernel tree (shared read-only at the same path), and
a one-shot unit that runs ``guest/systemd_check.py`` after boot and powers off.  Results
come back as JSON lines through a second 9p share; the console is kept for diagnosis.

Software emulation only (``-accel tcg,thread=single``, as every test-bed boot).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scxd.testbed.build import Artifacts
from scxd.testbed.rootfs import GUEST_REPO, REPO, REPO_IGNORE, RootFS
from scxd.testbed.run import QEMU_ACCEL, _run, detect_crash

CHECK_SCRIPT = Path(__file__).with_name("guest") / "systemd_check.py"
GUEST_RESULTS = "/results"
CHECK_UNIT = f"""[Unit]
Description=scxd test bed: install scxd with the README's steps and check the service
After=multi-user.target
[Service]
Type=simple
ExecStart=/usr/bin/python3 /usr/local/lib/scxd-testbed/systemd_check.py {GUEST_REPO} \\
    {GUEST_RESULTS}
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
"""
RESULTS_MOUNT = f"""[Unit]
Description=test-bed results share
[Mount]
What=results
Where={GUEST_RESULTS}
Type=9p
Options=trans=virtio,version=9p2000.L,msize=262144
[Install]
WantedBy=multi-user.target
"""


@dataclass
class SystemdRun:
    """What one systemd boot produced."""

    returncode: int | None
    seconds: float
    console: str
    checks: list[dict] = field(default_factory=list)
    done: dict | None = None
    timed_out: bool = False
    crashed: bool = False
    boot_s: float | None = None       # qemu start → the check script's first line
    journal: str = ""

    def problem(self) -> str:
        if self.crashed:
            what = "the guest kernel crashed"
        elif self.timed_out:
            what = f"the guest timed out after {self.seconds:.0f} s"
        elif self.done is None:
            what = f"the check script did not finish (qemu exit {self.returncode})"
        else:
            return ""
        tail = "\n".join(self.console.splitlines()[-40:])
        return f"{what}; console tail:\n{tail}"

    def failed(self) -> list[dict]:
        return [c for c in self.checks if not c.get("ok")]


def unit_name(mount_point: str) -> str:
    """systemd's unit name for a mount point (what systemd-escape --path gives)."""
    return mount_point.strip("/").replace("-", "\\x2d").replace("/", "-") + ".mount"


@contextlib.contextmanager
def overlay(lower: Path, scratch: Path) -> Iterator[Path]:
    """``lower`` made writable for one boot: an overlay whose changes stay in ``scratch``."""
    upper, work, merged = scratch / "upper", scratch / "work", scratch / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)],
                   check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False)


def provision(root: Path, art: Artifacts, repo: Path = REPO) -> None:
    """What this boot adds to the root file system (all in the overlay)."""
    # The tree under test replaces the build's copy (the venv's editable install reads it).
    guest_repo = root / GUEST_REPO.lstrip("/")
    for old in guest_repo.iterdir() if guest_repo.is_dir() else ():
        if old.name != ".venv":
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    shutil.copytree(repo, guest_repo, ignore=REPO_IGNORE, dirs_exist_ok=True, symlinks=True)
    bin_dir = root / "usr/local/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for exe in sorted(art.static_dir.iterdir()):
        shutil.copy2(exe, bin_dir / exe.name)
    release = art.manifest().get("kernel_release", "6.12.117")
    modules = root / "lib/modules" / release
    modules.mkdir(parents=True, exist_ok=True)
    for name in ("build", "source"):
        (modules / name).unlink(missing_ok=True)
        (modules / name).symlink_to(art.tree)
    # The test tools setup.sh installs bring services of their own (Debian enables the
    # Prometheus server, which cannot start here and would restart forever, eating the
    # emulated CPU): masked for this boot.
    units_dir = root / "etc/systemd/system"
    for unit in ("prometheus.service", "prometheus-node-exporter.service"):
        (units_dir / unit).unlink(missing_ok=True)
        (units_dir / unit).symlink_to("/dev/null")
    lib = root / "usr/local/lib/scxd-testbed"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copy2(CHECK_SCRIPT, lib / CHECK_SCRIPT.name)
    units = root / "etc/systemd/system"
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (units / "scxd-testbed-check.service").write_text(CHECK_UNIT)
    (wants / "scxd-testbed-check.service").symlink_to("../scxd-testbed-check.service")
    for where, tag in ((GUEST_RESULTS, "results"), (str(art.root), "testbed")):
        name = unit_name(where)
        text = RESULTS_MOUNT.replace("What=results", f"What={tag}").replace(
            f"Where={GUEST_RESULTS}", f"Where={where}")
        if tag == "testbed":
            text = text.replace("Options=", "Options=ro,")
        (units / name).write_text(text)
        (wants / name).symlink_to(f"../{name}")
    # The check runs once the shares are there.
    dropin = units / "scxd-testbed-check.service.d"
    dropin.mkdir(exist_ok=True)
    (dropin / "mounts.conf").write_text(
        "[Unit]\nRequires=" + " ".join(unit_name(w) for w in (GUEST_RESULTS, str(art.root)))
        + "\nAfter=" + " ".join(unit_name(w) for w in (GUEST_RESULTS, str(art.root))) + "\n")


def qemu_command(art: Artifacts, root: Path, results: Path, cpus: int, memory: str
                 ) -> list[str]:
    def share(ident: str, path: Path, tag: str, ro: bool = False, model: str = "passthrough"
              ) -> list[str]:
        opts = f"local,id={ident},path={path},security_model={model},multidevs=remap"
        return ["-fsdev", opts + (",readonly=on" if ro else ""),
                "-device", f"virtio-9p-pci,fsdev={ident},mount_tag={tag}"]

    append = ("root=/dev/root rootfstype=9p rootflags=trans=virtio,version=9p2000.L,"
              "msize=262144,access=any rw console=ttyS0 panic=-1 oops=panic loglevel=4 "
              "systemd.show_status=1 systemd.log_color=0 init=/lib/systemd/systemd")
    # -cpu max: the venv's numpy and torch need x86-64-v2 and more (qemu64, the default
    # model, dies with SIGILL importing them), as virtme-ng's guests have it.
    return ["qemu-system-x86_64", "-accel", QEMU_ACCEL, "-cpu", "max", "-smp", str(cpus),
            "-m", memory,
            "-display", "none", "-serial", "stdio", "-nic", "none", "-no-reboot",
            "-kernel", str(art.bzimage), "-append", append,
            *share("root", root, "/dev/root"),
            *share("results", results, "results"),
            *share("testbed", art.root, "testbed", ro=True, model="none")]


def run_systemd(art: Artifacts, rfs: RootFS, results: Path, timeout: float = 2400.0,
                cpus: int = 2, memory: str = "2G", repo: Path = REPO) -> SystemdRun:
    results.mkdir(parents=True, exist_ok=True)
    for old in results.iterdir():
        if old.is_file():
            old.unlink()
    with tempfile.TemporaryDirectory(prefix="scxd-systemd-", dir="/var/tmp") as tmp, \
            overlay(rfs.tree, Path(tmp)) as root:
        provision(root, art, repo)
        cmd = qemu_command(art, root, results, cpus, memory)
        rc, console, timed_out, secs = _run(cmd, timeout)
    out = results / "systemd.jsonl"
    records = [json.loads(line) for line in out.read_text().splitlines()
               if line.strip()] if out.exists() else []
    checks = [r for r in records if "check" in r]
    done = next((r for r in records if r.get("done")), None)
    journal = (results / "journal-scxd.txt").read_text() \
        if (results / "journal-scxd.txt").exists() else ""
    boot = next((c for c in checks if c["check"].startswith("booted")), None)
    boot_s = None
    if boot is not None:
        with contextlib.suppress(TypeError, ValueError, KeyError):
            boot_s = float(boot["got"]["uptime_s"])
    return SystemdRun(rc, secs, console, checks, done, timed_out, detect_crash(console),
                      boot_s, journal)


def main_systemd(art: Artifacts, cache: Path, out: Path) -> int:
    """``scxd-testbed systemd``: build (or reuse) the root file system, boot, report."""
    from scxd.testbed.rootfs import build_rootfs

    rfs = build_rootfs(cache)
    run = run_systemd(art, rfs, out)
    for c in run.checks:
        print(f"{'ok ' if c['ok'] else 'BAD'} {c['seconds']:7.1f} s  {c['check']}")
        if not c["ok"]:
            print(f"      {json.dumps(c['got'])[:600]}")
    if run.problem():
        print(run.problem())
    print(f"guest ran {run.seconds:.0f} s (systemd reached the check after "
          f"{run.boot_s} s of guest uptime); results in {out}")
    return 1 if run.problem() or run.failed() or not run.checks else 0
