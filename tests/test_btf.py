"""The BTF function-name reader against a hand-built blob and the running kernel's BTF."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from scxd import btf


def make_btf(types: list[tuple[str, int, int, bytes]]) -> bytes:
    """A little-endian BTF blob: (name, kind, vlen, trailing bytes) per type."""
    strings = b"\0"
    body = b""
    for name, kind, vlen, extra in types:
        off = len(strings) if name else 0
        if name:
            strings += name.encode() + b"\0"
        body += struct.pack("<III", off, (kind << 24) | vlen, 0) + extra
    header = struct.pack("<HBBIIIII", btf.BTF_MAGIC, 1, 0, 24, 0, len(body), len(body),
                         len(strings))
    return header + body + strings


def test_func_names_skips_every_kind_by_its_size():
    blob = make_btf([
        ("int", 1, 0, b"\0" * 4),                       # INT
        ("s", 4, 2, b"\0" * 24),                        # STRUCT, 2 members
        ("", 13, 1, b"\0" * 8),                         # FUNC_PROTO, 1 param
        ("scx_bpf_cpu_curr", btf.KIND_FUNC, 0, b""),    # FUNC
        ("e", 6, 3, b"\0" * 24),                        # ENUM, 3 values
        ("schedule", btf.KIND_FUNC, 0, b""),
    ])
    assert btf.func_names(blob) == {"scx_bpf_cpu_curr", "schedule"}
    assert btf.has_name(blob, "schedule") and not btf.has_name(blob, "sched")


@pytest.mark.parametrize("blob,msg", [
    (struct.pack("<HBBIIIII", btf.BTF_MAGIC, 1, 0, 24, 0, 1000, 0, 0), "run past"),
    (b"\0" * 30, "bad BTF magic"), (b"", "too short")])
def test_bad_blobs_say_why(blob, msg):
    with pytest.raises(btf.BtfError, match=msg):
        btf.func_names(blob)


def test_the_running_kernels_btf_parses():
    path = Path("/sys/kernel/btf/vmlinux")
    if not path.exists():
        pytest.skip("this kernel exports no BTF")
    names = btf.func_names(path.read_bytes())
    assert "schedule" in names and len(names) > 1000
