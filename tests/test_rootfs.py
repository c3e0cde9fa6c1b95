"""The systemd test bed's pieces that run on the host without booting anything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scxd.testbed import rootfs
from scxd.testbed.systemd_guest import qemu_command, unit_name

ROOT = Path(__file__).resolve().parents[1]


def test_packages_are_setup_sh_lists():
    text = (ROOT / "setup.sh").read_text()
    for pkg in rootfs.setup_packages():
        assert pkg in text
    assert "python3-bpfcc" in rootfs.PACKAGES and "systemd-sysv" in rootfs.PACKAGES


def test_stamp_is_what_setup_sh_writes():
    shell = subprocess.run("cat pyproject.toml | sha256sum | cut -c1-16", shell=True,
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert rootfs.setup_stamp(ROOT / "pyproject.toml") == f"{shell}-{rootfs.SETUP_EXTRAS}"
    assert f'install "{rootfs.SETUP_EXTRAS}"' in (ROOT / "setup.sh").read_text()


@pytest.mark.parametrize("text,mirror", [
    ("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n",
     "http://mirror.example/debian"),
    ("deb [arch=amd64] http://ftp.de.debian.org/debian/ bookworm main\n",
     "http://ftp.de.debian.org/debian"),
    ("# nothing here\n", rootfs.DEFAULT_MIRROR),
])
def test_apt_mirror(tmp_path, text, mirror):
    src = tmp_path / "sources"
    src.write_text(text)
    assert rootfs.apt_mirror((src,)) == mirror


def test_key_changes_with_requirements_not_with_order():
    a = rootfs.rootfs_key("http://m/debian", ["b>=1", "a"])
    assert a != rootfs.rootfs_key("http://m/debian", ["b>=2", "a"])
    assert a != rootfs.rootfs_key("http://n/debian", ["b>=1", "a"])
    reqs = rootfs.requirements()
    assert reqs == sorted(reqs) and any(r.startswith("torch") for r in reqs)


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="no systemd-escape")
@pytest.mark.parametrize("path", ["/results", "/var/cache/scxd-testbed/05c80b48b23fa41b",
                                  "/opt/a-b/c"])
def test_mount_unit_names_match_systemd(path):
    want = subprocess.run(["systemd-escape", "--path", "--suffix=mount", path],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert unit_name(path) == want


def test_qemu_boots_9p_root_with_systemd_and_cpu_max(tmp_path):
    from scxd.testbed.build import Artifacts

    cmd = qemu_command(Artifacts(tmp_path / "tb", "k"), tmp_path / "root", tmp_path / "res",
                       2, "2G")
    text = " ".join(cmd)
    assert "-cpu max" in text and "tcg,thread=single" in text and "-nic none" in text
    assert "rootfstype=9p" in text and "init=/lib/systemd/systemd" in text
    assert "mount_tag=/dev/root" in text and "readonly=on" in text
