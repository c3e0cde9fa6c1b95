"""The test-bed builder's checks and cache key (pure parts; the build itself runs in
tests/test_testbed.py's fixture and in the test command)."""

from __future__ import annotations

import shutil

import pytest

from scxd.testbed import build as tb


def test_config_parsing_and_unmet_options():
    fragment = "CONFIG_SCHED_CLASS_EXT=y\n# CONFIG_DRM is not set\nCONFIG_DEBUG_INFO_BTF=y\n"
    config = "CONFIG_SCHED_CLASS_EXT=y\nCONFIG_DRM=y\n"
    assert tb.parse_config(fragment) == {"CONFIG_SCHED_CLASS_EXT": "y", "CONFIG_DRM": "n",
                                         "CONFIG_DEBUG_INFO_BTF": "y"}
    assert tb.unmet_options(fragment, config) == ["CONFIG_DRM=n (got y)",
                                                  "CONFIG_DEBUG_INFO_BTF=y (got absent)"]
    assert tb.unmet_options(fragment, fragment) == []


def test_the_shipped_fragment_asks_for_sched_ext_and_btf():
    opts = tb.parse_config(tb.FRAGMENT.read_text())
    for name in ("CONFIG_SCHED_CLASS_EXT", "CONFIG_BPF_SYSCALL", "CONFIG_DEBUG_INFO_BTF",
                 "CONFIG_9P_FS", "CONFIG_SERIAL_8250_CONSOLE", "CONFIG_BLK_DEV_INITRD"):
        assert opts[name] == "y", name


def test_cache_key_changes_with_fragment_and_version():
    a = tb.cache_key(b"CONFIG_X=y\n", "6.12.117-1")
    assert a == tb.cache_key(b"CONFIG_X=y\n", "6.12.117-1") and len(a) == 16
    assert a != tb.cache_key(b"CONFIG_X=n\n", "6.12.117-1")
    assert a != tb.cache_key(b"CONFIG_X=y\n", "6.12.118-1")


def test_not_enough_disk_names_the_place(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(tb.BuildError, match=rf"not enough disk space in {tmp_path}: .* GiB"):
        tb.require_space(tmp_path, free * 2)
    tb.require_space(tmp_path, 1)


def test_missing_packages_are_listed():
    assert tb.missing_packages(["dpkg", "scxd-no-such-package"]) == ["scxd-no-such-package"]


def test_missing_tool_names_the_package(monkeypatch):
    monkeypatch.setattr(tb.shutil, "which", lambda name, path=None: None)
    with pytest.raises(tb.BuildError, match=r"compiler/tool 'clang-19' not found .*clang-19"):
        tb.require_tools()


def test_artifacts_complete_needs_every_piece(tmp_path):
    art = tb.Artifacts(tmp_path, "k")
    assert not art.complete()
    for p in [art.bzimage, art.manifest_path, art.tree / "Makefile",
              *(art.bin_dir / s for s in tb.SCHEDULERS),
              *(art.static_dir / s for s in tb.SCHEDULERS)]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    assert art.complete()
    (art.static_dir / "scx_qmap").unlink()
    assert not art.complete()
