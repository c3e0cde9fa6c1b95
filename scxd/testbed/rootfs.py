"""A Debian 12 root file system for the systemd test bed, built once and cached.

The busybox and virtme-ng guests have no real init; the service (``systemd/scxd.service``)
has to be proven under systemd as PID 1.  This module builds a minimal bookworm system with
``mmdebstrap`` from the package mirror the host's APT uses, holding:

* systemd, dbus and the packages ``setup.sh install`` installs (read from its lists: bcc
  from Debian, python3-venv, the test tools), so the guest — which has no network —
  installs scxd with the README's own steps;
* a venv at ``/opt/scxd/.venv`` made the way ``setup.sh`` makes it, with the project's
  PyPI dependencies and scxd (editable from /opt/scxd) already in it and setup.sh's stamp
  written — torch alone is ≈ 1 GB unpacked, and pip under software emulation took 7 min —
  plus a wheelhouse with the build backend, so a guest ``pip install -e .`` (when
  pyproject.toml changed since the build) needs no index;
* a machine id, a host name, and no first-boot prompts.

Cached under ``<cache>/rootfs-<key>/rootfs`` where the key hashes this recipe, the package
list, the Python requirements and the mirror — separate from the kernel's key, so neither
invalidates the other.  Runs never write into the cache: each boot gets an overlay.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from scxd.testbed.build import (
    DEFAULT_CACHE,
    BuildError,
    StepTimer,
    install_packages,
    missing_packages,
    run_logged,
)

#: Bump when the steps below change the result.
RECIPE_VERSION = 2
SUITE = "bookworm"
REPO = Path(__file__).resolve().parents[2]
#: What the guest needs besides setup.sh's packages: an init and the service manager's
#: helpers.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "procps", "kmod", "util-linux",
                 "iproute2", "python3")


def setup_packages(setup: Path = REPO / "setup.sh") -> tuple[str, ...]:
    """The Debian packages ``setup.sh install`` installs (its RUN_ and TEST_PACKAGES): in
    the root file system already, so the offline guest's run of it finds them."""
    text = setup.read_text()
    found: list[str] = []
    for name in ("RUN_PACKAGES", "TEST_PACKAGES"):
        m = re.search(rf"^{name}=\(([^)]*)\)", text, re.M)
        if m is None:
            raise BuildError(f"{setup}: no {name}=(...) list to install from")
        found += m.group(1).split()
    return tuple(found)


def setup_extras(setup: Path = REPO / "setup.sh") -> str:
    """The extras ``setup.sh install`` puts in the venv (its ``install "…"`` argument)."""
    m = re.search(r'^\s*install\)\s*\n\s*install "([^"]+)"', setup.read_text(), re.M)
    if m is None:
        raise BuildError(f"{setup}: no install) case naming the extras")
    return m.group(1)


PACKAGES = tuple(dict.fromkeys((*BASE_PACKAGES, *setup_packages())))
SETUP_EXTRAS = setup_extras()
HOST_PACKAGES = ("mmdebstrap",)
GUEST_REPO = "/opt/scxd"
VENV = f"{GUEST_REPO}/.venv"
#: What a copy of the repository leaves out.
REPO_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache",
                                     ".ruff_cache", ".hypothesis", "data")
WHEELHOUSE = "/var/cache/scxd-wheels"
BUILD_REQUIREMENTS = ("setuptools>=77", "wheel")
#: Paths of the host's pip configuration that may point at local package stores.
PIP_CONFIG = (Path("/etc/pip.conf"), Path("/etc/xdg/pip"), Path("/root/.config/pip"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: A cold build wants room for the unpacked system and the venv (torch).
COLD_FREE_BYTES = 6 * 1024**3


@dataclass(frozen=True)
class RootFS:
    root: Path
    key: str

    @property
    def tree(self) -> Path:
        return self.root / "rootfs"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def complete(self) -> bool:
        return (self.manifest_path.exists() and (self.tree / "sbin/init").exists()
                and (self.tree / VENV.lstrip("/") / "bin/python").exists())

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text())


def apt_mirror(sources: Sequence[Path] = (Path("/etc/apt/sources.list.d/debian.sources"),
                                          Path("/etc/apt/sources.list"))) -> str:
    """The Debian mirror the host's APT uses (deb822 ``URIs:`` or a ``deb`` line)."""
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or \
            re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+\S+", text, re.M)
        if m:
            return m.group(1)
    return DEFAULT_MIRROR


def requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The project's PyPI requirements with the extras setup.sh installs."""
    meta = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(meta.get("dependencies", []))
    for extra in SETUP_EXTRAS.split(","):
        reqs += meta.get("optional-dependencies", {}).get(extra, [])
    return sorted(set(reqs))


def setup_stamp(pyproject: Path) -> str:
    """What setup.sh writes to ``$VENV/.scxd-installed`` once the venv is complete
    (``want=$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras``)."""
    return hashlib.sha256(pyproject.read_bytes()).hexdigest()[:16] + "-" + SETUP_EXTRAS


def rootfs_key(mirror: str, reqs: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for part in (str(RECIPE_VERSION), SUITE, mirror, *PACKAGES, "|", *reqs):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def rootfs_for(cache: Path = DEFAULT_CACHE) -> RootFS:
    key = rootfs_key(apt_mirror(), requirements())
    return RootFS(cache / f"rootfs-{key}", key)


@contextlib.contextmanager
def chroot_mounts(tree: Path, binds: Sequence[Path] = ()) -> Iterator[None]:
    """/proc, /sys, /dev and read-only binds of host paths inside ``tree`` for a chroot."""
    mounted: list[Path] = []
    try:
        for fs, where, opts in (("proc", "proc", []), ("sysfs", "sys", []),
                                ("devtmpfs", "dev", [])):
            target = tree / where
            target.mkdir(exist_ok=True)
            subprocess.run(["mount", "-t", fs, fs, str(target), *opts], check=True)
            mounted.append(target)
        for src in binds:
            target = tree / str(src).lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(target)], check=True)
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)


def _chroot(tree: Path, *cmd: str, log: Path, timer: StepTimer) -> None:
    run_logged(["chroot", str(tree), *cmd], log, tree, timer,
               env={"HOME": "/root", "LANG": "C.UTF-8", "PYTHONPATH": ""})


def debootstrap(tree: Path, mirror: str, log: Path, timer: StepTimer) -> None:
    try:
        run_logged(["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
                    f"--include={','.join(PACKAGES)}", "--aptopt=Acquire::Retries \"3\"",
                    "--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*",
                    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
                    SUITE, str(tree), mirror], log, tree.parent, timer)
    except BuildError as exc:
        raise BuildError(f"mmdebstrap {SUITE} from {mirror}: {exc}") from None


def configure(tree: Path) -> None:
    """Make it boot unattended: identity, no first-boot prompts, nothing waiting on
    devices or a network that the guest does not have."""
    (tree / "etc/hostname").write_text("scxd-guest\n")
    (tree / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 scxd-guest\n")
    (tree / "etc/machine-id").write_text(hashlib.sha256(b"scxd-testbed").hexdigest()[:32]
                                         + "\n")
    (tree / "etc/fstab").write_text("# root is 9p, mounted by the kernel\n")
    masked = ("systemd-firstboot.service", "getty@tty1.service", "serial-getty@ttyS0.service",
              "systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
              "e2scrub_all.timer", "fstrim.timer", "man-db.timer")
    for unit in masked:
        link = tree / "etc/systemd/system" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    journald = tree / "etc/systemd/journald.conf.d/testbed.conf"
    journald.parent.mkdir(parents=True, exist_ok=True)
    journald.write_text("[Journal]\nStorage=volatile\nForwardToConsole=no\n")


def install_venv(tree: Path, log: Path, timer: StepTimer) -> None:
    """The venv setup.sh makes, with every requirement in it, and the build backend as
    wheels: the offline guest's ``./setup.sh install`` then finds all it needs."""
    for cfg in PIP_CONFIG:  # the host's pip configuration, local package stores included
        if cfg.is_file():
            shutil.copy2(cfg, tree / str(cfg).lstrip("/"))
        elif cfg.is_dir():
            shutil.copytree(cfg, tree / str(cfg).lstrip("/"), dirs_exist_ok=True)
    stores = [Path(p) for p in _local_stores()]
    # The host's CA bundle (PIP_CERT / pip.conf may name it; a proxy's CA may be in it).
    stores += [p for p in (Path("/etc/ssl/certs"),) if p.is_dir()]
    resolv = tree / "etc/resolv.conf"
    if Path("/etc/resolv.conf").exists() and not resolv.exists():
        shutil.copy2("/etc/resolv.conf", resolv)
    with chroot_mounts(tree, stores):
        _chroot(tree, "/usr/bin/python3", "-m", "venv", "--system-site-packages", VENV,
                log=log, timer=timer)
        pip = f"{VENV}/bin/pip"
        timer.run("pip install the requirements into the guest venv", _chroot, tree, pip,
                  "install", "-q", "--disable-pip-version-check", "torch==2.13.0",
                  *requirements(), log=log, timer=timer)
        _chroot(tree, pip, "download", "-q", "--disable-pip-version-check", "-d", WHEELHOUSE,
                *BUILD_REQUIREMENTS, log=log, timer=timer)
        # scxd itself, editable from /opt/scxd as setup.sh installs it, with setup.sh's
        # stamp: a guest's run of ./setup.sh install then only checks (each boot copies
        # the tree under test over /opt/scxd, which the editable install reads).
        repo = tree / GUEST_REPO.lstrip("/")
        shutil.copytree(REPO, repo, ignore=REPO_IGNORE, dirs_exist_ok=True, symlinks=True)
        _chroot(tree, pip, "install", "-q", "--disable-pip-version-check", "-e",
                f"{GUEST_REPO}[{SETUP_EXTRAS}]", log=log, timer=timer)
        (tree / VENV.lstrip("/") / ".scxd-installed").write_text(
            setup_stamp(REPO / "pyproject.toml") + "\n")
        _chroot(tree, f"{VENV}/bin/python", "-c", "import bcc, torch, psutil, "
                "prometheus_client, pydantic_settings", log=log, timer=timer)


PIP_SOURCE_KEYS = ("find-links", "index-url", "extra-index-url")


def _local_stores() -> list[str]:
    """Local directories the host's pip reads packages from (find-links, index-url and
    extra-index-url in its config files and PIP_* variables), to bind into the chroot."""
    values: list[str] = [os.environ.get("PIP_" + k.upper().replace("-", "_"), "")
                         for k in PIP_SOURCE_KEYS]
    files = [f for cfg in PIP_CONFIG
             for f in ([cfg] if cfg.is_file() else sorted(cfg.glob("*.conf")))]
    for f in files:
        parser = configparser.ConfigParser()
        with contextlib.suppress(OSError, configparser.Error):
            parser.read(f)
            for section in parser.sections():
                values += [parser[section].get(k, "") for k in PIP_SOURCE_KEYS]
    out: list[str] = []
    for token in " ".join(values).split():
        path = Path(token.removeprefix("file://"))
        if not path.is_absolute() or not path.exists():
            continue  # a URL: reached over the network
        while path.parent != Path("/") and path.parent.parent != Path("/"):
            path = path.parent  # bind the store's top directory (/opt/pypi, not …/simple)
        if str(path) not in out:
            out.append(str(path))
    return out


def build_rootfs(cache: Path = DEFAULT_CACHE, quiet: bool = False,
                 install: bool = True) -> RootFS:
    """Build (or verify the cached) root file system."""
    timer = StepTimer(quiet=quiet)
    missing = missing_packages(HOST_PACKAGES)
    if missing:
        if not install:
            raise BuildError(f"missing Debian packages: {' '.join(missing)}")
        timer.run("install mmdebstrap", install_packages, missing, timer)
    rfs = rootfs_for(cache)
    if rfs.complete():
        timer.say(f"[testbed] cached root file system: {rfs.tree} (key {rfs.key})")
        return rfs
    rfs.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(rfs.root).free
    if free < COLD_FREE_BYTES:
        raise BuildError(f"not enough disk space in {rfs.root}: {free / 1024**3:.1f} GiB "
                         f"free, the root file system needs "
                         f"{COLD_FREE_BYTES / 1024**3:.0f} GiB")
    log = rfs.root / "build.log"
    partial = rfs.root / "rootfs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    mirror = apt_mirror()
    timer.run(f"mmdebstrap {SUITE} ({len(PACKAGES)} packages + deps) from {mirror}",
              debootstrap, partial, mirror, log, timer)
    configure(partial)
    install_venv(partial, log, timer)
    shutil.rmtree(rfs.tree, ignore_errors=True)
    partial.rename(rfs.tree)
    size = subprocess.run(["du", "-sb", str(rfs.tree)], capture_output=True,
                          text=True).stdout.split()[0]
    manifest = {
        "key": rfs.key, "suite": SUITE, "mirror": mirror, "recipe_version": RECIPE_VERSION,
        "packages": list(PACKAGES), "requirements": requirements(),
        "size_bytes": int(size), "timings_s": timer.timings,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rfs.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for old in cache.glob("rootfs-*"):  # earlier keys: 2+ GiB each, never used again
        if old != rfs.root and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            timer.say(f"[testbed] removed the outdated root file system {old}")
    timer.say(f"[testbed] root file system {rfs.tree}: {int(size) / 2**30:.1f} GiB in "
              f"{sum(timer.timings.values()):.0f} s")
    return rfs
