"""Log2 histogram slot edges (inclusive upper bounds), and the C slot function agrees."""

from __future__ import annotations

import itertools
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scxd.histogram import (
    HIST_SLOTS,
    Log2Histogram,
    le_bounds_seconds,
    slot_lower_ns,
    slot_of,
    slot_upper_ns,
)

BPF_SOURCE = Path(__file__).parents[1] / "bpf" / "scxd_sched.bpf.c"


@pytest.mark.parametrize("value,slot", [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (7, 3),
                                        (8, 4), (1023, 10), (1024, 11), (2**46 - 1, 46),
                                        (2**46, 47), (2**63, 47)])
def test_slot_edges(value, slot):
    assert slot_of(value) == slot


def test_upper_bounds_are_inclusive():
    for i in range(HIST_SLOTS - 1):
        upper = int(slot_upper_ns(i))
        assert slot_of(upper) == i, "the bound itself belongs to the slot"
        assert slot_of(upper + 1) == i + 1, "one past the bound is the next slot"
        assert slot_of(slot_lower_ns(i)) == i
    assert math.isinf(slot_upper_ns(HIST_SLOTS - 1))


def test_le_bounds_in_seconds():
    le = le_bounds_seconds()
    assert le[0] == 0.0
    assert le[10] == pytest.approx(1023e-9)
    assert math.isinf(le[-1]) and len(le) == HIST_SLOTS
    assert all(a < b for a, b in itertools.pairwise(le))


@given(st.lists(st.integers(min_value=0, max_value=2**50), max_size=200))
def test_from_values_counts_every_value_under_its_le(values):
    h = Log2Histogram.from_values(values)
    assert h.count == len(values) and h.sum_ns == sum(values)
    cum = h.cumulative()
    for i, bound in enumerate(le_bounds_seconds()):
        # Prometheus semantics: bucket i counts values ≤ le_i.
        assert cum[i] == sum(1 for v in values if v / 1e9 <= bound or math.isinf(bound))


def test_quantile_interpolates_within_slot():
    h = Log2Histogram.from_values([1000] * 100)  # all in slot 10: [512, 1023]
    for q in (0.01, 0.5, 0.99):
        assert 512 <= h.quantile_ns(q) <= 1023
    assert Log2Histogram.empty().quantile_ns(0.99) == 0.0
    skew = Log2Histogram.from_values([10] * 99 + [10**6])
    assert skew.quantile_ns(0.5) < 16 and skew.quantile_ns(0.999) > 2**19
    with pytest.raises(ValueError):
        h.quantile_ns(1.5)


def test_difference_of_readings():
    a = Log2Histogram.from_values([5, 100])
    b = a + Log2Histogram.from_values([7])
    assert (b - a) == Log2Histogram.from_values([7])
    with pytest.raises(ValueError, match="backwards"):
        _ = a - b


def test_c_slot_of_matches_python(tmp_path):
    """Compile the BPF program's slot_of as plain C and compare it on edge values."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    src = BPF_SOURCE.read_text()
    body = re.search(r"static __always_inline u32 slot_of\(u64 v\)\n\{.*?\n\}", src, re.S)
    assert body, "slot_of not found in the BPF program"
    values = sorted({0, 1, 2, 3, 4, 5, 1023, 1024, 65535, 65536, 2**32 - 1, 2**32, 2**32 + 1,
                     2**46 - 1, 2**46, 2**47, 2**64 - 1} | {2**k + d for k in range(1, 63)
                                                            for d in (-1, 0, 1)})
    harness = tmp_path / "slot.c"
    harness.write_text(
        "#include <stdio.h>\n#include <stdint.h>\ntypedef uint64_t u64; typedef uint32_t u32;\n"
        "#define __always_inline inline __attribute__((always_inline))\n"
        f"#define HIST_SLOTS {HIST_SLOTS}\n{body.group(0)}\n"
        "int main(void){ u64 v; while (scanf(\"%llu\", (unsigned long long *)&v) == 1)"
        " printf(\"%u\\n\", slot_of(v)); return 0; }\n")
    exe = tmp_path / "slot"
    subprocess.run([cc, "-O2", "-o", str(exe), str(harness)], check=True)
    out = subprocess.run([str(exe)], input="\n".join(map(str, values)), capture_output=True,
                         text=True, check=True).stdout.split()
    assert [int(x) for x in out] == [slot_of(v) for v in values]
