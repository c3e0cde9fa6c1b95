"""Strict parsing of /sys/kernel/sched_ext and of the kernel's sched_ext log lines."""

from __future__ import annotations

import errno
import os

import pytest

from scxd.hostfs import HostFS
from scxd.procparse import ParseError
from scxd.schedext import parse_events, parse_kernel_log, read_state


def tree(tmp_path, state="enabled", ops="lavd_1.0.20_g85f140fd_x86_64_unknown_linux_gnu",
         seq="3", switch_all="1", events=None):
    sx = tmp_path / "sys/kernel/sched_ext"
    sx.mkdir(parents=True)
    for name, value in (("state", state), ("switch_all", switch_all), ("nr_rejected", "0"),
                        ("hotplug_seq", "1"), ("enable_seq", seq)):
        (sx / name).write_text(value + "\n")
    if ops is not None:
        (sx / "root").mkdir()
        (sx / "root" / "ops").write_text(ops + "\n")
        if events is not None:
            (sx / "root" / "events").write_text(events)
    return HostFS(tmp_path)


def test_enabled_rust_scheduler_matches_by_prefix(tmp_path):
    k = read_state(tree(tmp_path))
    assert k.enabled and k.runs("lavd") and not k.runs("bpfland") and k.enable_seq == 3
    assert k.as_dict()["state"] == "enabled" and not k.partial


@pytest.mark.parametrize("ops,prefix,match", [
    ("flash", "flash", True), ("flashyspark", "flash", False),
    ("flashyspark", "flashyspark", True), ("flash_1.0.14_gabc", "flash", True),
    ("lavd", "lav", False),
])
def test_prefix_ends_at_a_word_boundary(tmp_path, ops, prefix, match):
    assert read_state(tree(tmp_path, ops=ops)).runs(prefix) is match


class FailingRead(HostFS):
    """Files open, then read(2) fails with ``errno`` — ENODEV is what sysfs does when an
    attribute's object goes away mid-read (root/ops while a scheduler unregisters, seen in
    the test bed during CPU hotplug)."""

    def __init__(self, root, errno_: int):
        super().__init__(root)
        self.errno = errno_

    def read(self, rel: str) -> str:
        if rel.endswith("root/ops"):
            raise OSError(self.errno, os.strerror(self.errno))
        return super().read(rel)


def test_ops_vanishing_while_read_is_no_scheduler(tmp_path):
    tree(tmp_path)
    k = read_state(FailingRead(tmp_path, errno.ENODEV))
    assert k.ops is None and not k.runs("lavd") and k.enable_seq == 3


def test_other_read_errors_still_surface(tmp_path):
    tree(tmp_path)
    with pytest.raises(PermissionError):
        read_state(FailingRead(tmp_path, errno.EACCES))


def test_partial_mode(tmp_path):
    k = read_state(tree(tmp_path, ops="qmap", switch_all="0"))
    assert k.partial and k.runs("qmap")


def test_disabled_without_root(tmp_path):
    k = read_state(tree(tmp_path, state="disabled", ops=None, seq="0"))
    assert k.disabled and k.ops is None and not k.runs("")


def test_no_sched_ext_kernel(tmp_path):
    k = read_state(HostFS(tmp_path))
    assert not k.present and k.disabled
    assert k.as_dict() == {"state": "unavailable", "ops": None, "enable_seq": "unavailable"}


@pytest.mark.parametrize("state", ["", "running", "ENABLED"])
def test_unknown_state_is_an_error(tmp_path, state):
    with pytest.raises(ParseError, match="unknown state"):
        read_state(tree(tmp_path, state=state))


def test_garbage_counter_is_an_error(tmp_path):
    with pytest.raises(ParseError, match="enable_seq: expected an integer"):
        read_state(tree(tmp_path, seq="x"))


def test_events_file(tmp_path):
    text = "SCX_EV_SELECT_CPU_FALLBACK 12\nSCX_EV_BYPASS_DURATION 0\n"
    k = read_state(tree(tmp_path, events=text))
    assert k.events == {"SCX_EV_SELECT_CPU_FALLBACK": 12, "SCX_EV_BYPASS_DURATION": 0}
    with pytest.raises(ParseError, match="malformed"):
        parse_events("A B C\n")


def test_kernel_log_lines_seen_on_the_test_bed():
    lines = [
        '[    2.005572] sched_ext: BPF scheduler "simple" enabled',
        'sched_ext: BPF scheduler "qmap" enabled (partial)',
        'sched_ext: BPF scheduler "qmap" disabled (scx_bpf_error)',
        "sched_ext: qmap: sleep[383] failed to run for 5.068s",
        'sched_ext: BPF scheduler "qmap" disabled (runnable task stall)',
        "unrelated line",
    ]
    ev = parse_kernel_log(lines)
    assert [(e.kind, e.ops, e.detail) for e in ev] == [
        ("enabled", "simple", ""), ("enabled", "qmap", "partial"),
        ("disabled", "qmap", "scx_bpf_error"),
        ("stall", "qmap", "sleep[383] failed to run for 5.068s"),
        ("disabled", "qmap", "runnable task stall")]


def test_kmsg_records_from_a_file(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "kmsg").write_text("6,1,100,-;first\n6,2,200,-;second\nbroken\n")
    host = HostFS(tmp_path)
    assert host.kernel_log() == [(1, "first"), (2, "second")]
    assert host.kernel_log(after_seq=1) == [(2, "second")]


def test_real_kmsg_is_readable():
    records = HostFS("/").kernel_log()
    assert records and all(isinstance(s, int) for s, _ in records)
