"""The test-bed builder's checks and cache key (pure parts; the build itself runs in
tests/test_testbed.py's fixture and in the test command)."""

from __future__ import annotations

import shutil
from pathlib import Path

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


# -- the scx schedulers' own cache key ---------------------------------------------------------
def fake_scx_tree(root):
    """The smallest tree scx.py accepts: the files each scheduler's build reads."""
    from scxd.testbed import scx

    for sched in scx.SCHEDULERS:
        for rel in (sched.bpf, "scheds/include/scx/common.bpf.h",
                    *(() if sched.ours else (sched.loader,))):
            origin = sched.include_origin if rel.startswith("scheds/include") else sched.origin
            p = root / origin / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"/* {rel} */\n")
    return root


def test_scx_key_moves_with_sources_and_loaders_never_the_kernel_key(tmp_path, monkeypatch):
    from scxd.testbed import scx

    src = fake_scx_tree(tmp_path / "src")
    kernel_key = tb.cache_key(tb.FRAGMENT.read_bytes(), "6.12.117-1")
    key, skipped = scx.scx_key(src, kernel_key)
    assert skipped == {} and key == scx.scx_key(src, kernel_key)[0]
    # an upstream file changes → a new scx key; the kernel key does not see it
    (src / scx.V110 / "scheds/rust/scx_flash/src/bpf/main.bpf.c").write_text("/* v2 */\n")
    key2, _ = scx.scx_key(src, kernel_key)
    assert key2 != key
    # a project loader changes → a new scx key too
    loaders = tmp_path / "loaders"
    loaders.mkdir()
    for f in scx.LOADERS.iterdir():
        (loaders / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(scx, "LOADERS", loaders)
    assert scx.scx_key(src, kernel_key)[0] == key2
    (loaders / "scx_bpfland.c").write_text("/* changed */\n")
    assert scx.scx_key(src, kernel_key)[0] != key2
    assert tb.cache_key(tb.FRAGMENT.read_bytes(), "6.12.117-1") == kernel_key
    # ...and a new kernel means new scx artifacts (they link against its tree)
    assert scx.scx_key(src, "another")[0] != scx.scx_key(src, kernel_key)[0]


def test_scx_without_source_says_what_is_skipped_and_why(tmp_path, monkeypatch):
    from scxd.testbed import scx

    monkeypatch.delenv("SCXD_SCX_SRC", raising=False)
    monkeypatch.setattr(scx, "DEFAULT_SOURCE", tmp_path / "absent")
    assert scx.resolve_source() is None
    _, skipped = scx.scx_key(None, "k")
    assert set(skipped) == set(scx.NAMES)
    assert "no scx source tree (pass --scx-src DIR or set SCXD_SCX_SRC)" in skipped["scx_flash"]
    src = fake_scx_tree(tmp_path / "src")
    (src / scx.FORK / scx.SCHEDULERS[2].bpf).unlink()
    _, skipped = scx.scx_key(src, "k")
    assert list(skipped) == ["scx_flashyspark"] and "source missing" in skipped["scx_flashyspark"]


def test_scx_source_precedence(tmp_path, monkeypatch):
    from scxd.testbed import scx

    monkeypatch.setattr(scx, "DEFAULT_SOURCE", tmp_path)
    monkeypatch.delenv("SCXD_SCX_SRC", raising=False)
    assert scx.resolve_source() == tmp_path.resolve()
    monkeypatch.setenv("SCXD_SCX_SRC", str(tmp_path / "env"))
    assert scx.resolve_source() == (tmp_path / "env").resolve()
    assert scx.resolve_source(tmp_path / "arg") == (tmp_path / "arg").resolve()


def test_exec_passes_its_command_as_a_file_not_on_the_kernel_command_line(tmp_path,
                                                                           monkeypatch):
    """virtme-ng puts --exec on the kernel command line (x86: 2048 bytes at most); a long
    `scxd-testbed exec` command made qemu stop at once.  The command goes in a file."""
    from scxd.testbed import run as tb_run

    if shutil.which("vng", path=tb_run.tool_path()) is None:
        pytest.skip("virtme-ng is not installed")
    seen: dict[str, list[str]] = {}

    def fake_run(cmd, timeout, env=None):
        seen["cmd"] = cmd
        script = cmd[cmd.index("--exec") + 1].split()[-1]
        seen["script"] = Path(script).read_text().splitlines()
        return 0, "", False, 0.1

    monkeypatch.setattr(tb_run, "_run", fake_run)
    long_arg = "x" * 3000
    res = tb_run.exec_in_guest(tb.Artifacts(tmp_path, "k"), ["echo", long_arg],
                               cwd=tmp_path)
    exec_arg = seen["cmd"][seen["cmd"].index("--exec") + 1]
    assert len(exec_arg) < 200 and exec_arg.startswith("sh ")
    assert long_arg in seen["script"][0] and "echo @@" in seen["script"][0]
    assert res.returncode is None  # the fake guest wrote no rc file
