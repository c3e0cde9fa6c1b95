"""Names of the functions a kernel's BTF declares (``/sys/kernel/btf/vmlinux``), pure.

Used to probe kernel capabilities that decide whether a scheduler flag can load at all —
e.g. scx_flash's ``--tickless`` needs the kfunc ``scx_bpf_cpu_curr``.  Only the layout of
the type section is walked (no type resolution): each BTF type is a 12-byte header plus
kind-specific trailing data (include/uapi/linux/btf.h).
"""

from __future__ import annotations

import struct

BTF_MAGIC = 0xEB9F
KIND_FUNC = 12
#: Bytes of trailing data per kind: fixed, and per vlen entry.
_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}                   # INT, ARRAY, VAR, DECL_TAG
_PER_VLEN = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}  # STRUCT UNION ENUM FUNC_PROTO
#                                                        DATASEC ENUM64


class BtfError(ValueError):
    """The data is not BTF this reader understands; the message says where it stopped."""


def func_names(data: bytes) -> set[str]:
    """Every FUNC type's name in a raw BTF blob (kfuncs included)."""
    if len(data) < 24:
        raise BtfError(f"BTF too short ({len(data)} bytes)")
    magic = struct.unpack_from("<H", data, 0)[0]
    if magic != BTF_MAGIC:
        raise BtfError(f"bad BTF magic {magic:#x} (big-endian BTF is not supported)")
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", data, 4)
    types = hdr_len + type_off
    strings = hdr_len + str_off
    if types + type_len > len(data) or strings + str_len > len(data):
        raise BtfError("BTF sections run past the end of the data")
    names: set[str] = set()
    at, end = types, types + type_len
    while at < end:
        name_off, info, _ = struct.unpack_from("<III", data, at)
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        if kind == KIND_FUNC:
            stop = data.index(b"\0", strings + name_off)
            names.add(data[strings + name_off:stop].decode(errors="replace"))
        if kind > 19:
            raise BtfError(f"unknown BTF kind {kind} at offset {at}")
        at += 12 + _FIXED.get(kind, 0) + _PER_VLEN.get(kind, 0) * vlen
    return names


def has_name(data: bytes, name: str) -> bool:
    """Cheap pre-check: is ``name`` in the string section at all?"""
    return b"\0" + name.encode() + b"\0" in data
