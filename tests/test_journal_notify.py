"""The journal survives crashes and rotates; sd_notify speaks to a real datagram socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from scxd.journal import CURRENT, JournalError, JournalReader, JournalWriter, decode, encode
from scxd.notify import Notifier

HEADER = {"feature_version": 1}


def test_round_trip_with_header(tmp_path):
    w = JournalWriter(tmp_path, HEADER, fsync=False)
    for i in range(3):
        w.append({"kind": "window", "id": i, "cost": 1.5})
    w.close()
    r = JournalReader(tmp_path)
    recs = list(r.records())
    assert recs[0]["kind"] == "header" and recs[0]["feature_version"] == 1
    assert [x["id"] for x in r.windows()] == [0, 1, 2] and r.skipped == []


def test_torn_last_record_is_skipped_and_never_merges(tmp_path):
    w = JournalWriter(tmp_path, HEADER, fsync=False)
    w.append({"kind": "window", "id": 0})
    w.close()
    with open(tmp_path / CURRENT, "ab") as fh:  # a crash mid-write
        fh.write(encode({"kind": "window", "id": 1})[:25])
    r = JournalReader(tmp_path)
    assert [x["id"] for x in r.windows()] == [0]
    assert len(r.skipped) == 1 and "torn record" in r.skipped[0]
    # The next daemon appends: its record is intact, the fragment stays apart.
    w = JournalWriter(tmp_path, HEADER, fsync=False)
    w.append({"kind": "window", "id": 2})
    w.close()
    r = JournalReader(tmp_path)
    assert [x["id"] for x in r.windows()] == [0, 2]
    assert len(r.skipped) == 1 and "not JSON" in r.skipped[0]


def test_crash_while_writing_from_another_process(tmp_path):
    """A writer killed with SIGKILL between records leaves every finished record readable."""
    script = textwrap.dedent(f"""
        import os, signal
        from scxd.journal import JournalWriter
        w = JournalWriter({str(tmp_path)!r}, {{}}, fsync=True)
        for i in range(50):
            w.append({{"kind": "window", "id": i, "pad": "x" * 500}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", script])
    assert [x["id"] for x in JournalReader(tmp_path).windows()] == list(range(50))


def test_corruption_is_detected_by_crc(tmp_path):
    w = JournalWriter(tmp_path, HEADER, fsync=False)
    w.append({"kind": "window", "id": 7, "cost": 1.25})
    w.close()
    path = tmp_path / CURRENT
    path.write_bytes(path.read_bytes().replace(b'"cost":1.25', b'"cost":9.25'))
    r = JournalReader(tmp_path)
    assert list(r.windows()) == [] and "CRC mismatch" in r.skipped[0]


@pytest.mark.parametrize("line,problem", [
    (b'{"crc":"0","record":{}}', "torn"), (b"[1,2]\n", "not a journal record"),
    (b"\xff\xfe\n", "not JSON"),
])
def test_decode_names_the_problem(line, problem):
    with pytest.raises(JournalError, match=problem):
        decode(line, "f:1")


def test_rotation_keeps_max_files(tmp_path):
    w = JournalWriter(tmp_path, HEADER, max_file_bytes=4096, max_files=2, fsync=False)
    for i in range(60):
        w.append({"kind": "window", "id": i, "pad": "y" * 200})
    w.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    rotated = [n for n in names if n != CURRENT]
    assert len(rotated) == 2 and CURRENT in names
    ids = [x["id"] for x in JournalReader(tmp_path).windows()]
    assert ids == sorted(ids) and ids[-1] == 59 and ids[0] > 0  # oldest dropped, order kept
    headers = list(JournalReader(tmp_path).records(("header",)))
    assert len(headers) == 3  # every file starts with a header
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 4096 + 400


def test_reader_on_missing_dir(tmp_path):
    with pytest.raises(JournalError, match="no such journal directory"):
        JournalReader(tmp_path / "nope")


# -- sd_notify --------------------------------------------------------------------------------
@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_notify_datagrams(notify_socket):
    path, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000",
                  "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_interval == 10.0
    assert n.ready("advisory; 0 windows")
    assert sock.recv(4096) == b"READY=1\nSTATUS=advisory; 0 windows"
    assert n.watchdog() and sock.recv(4096) == b"WATCHDOG=1"
    assert n.status("a\nb") and sock.recv(4096) == b"STATUS=a b"
    assert n.stopping() and sock.recv(4096) == b"STOPPING=1"
    assert n.starting("probing the schedulers", 90)
    assert sock.recv(4096) == (b"STATUS=starting: probing the schedulers\n"
                               b"EXTEND_TIMEOUT_USEC=90000000")


def test_notify_abstract_socket():
    name = f"scxd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_notify_without_systemd_and_foreign_watchdog(tmp_path):
    assert not Notifier({}).enabled and Notifier({}).ready() is False
    other = Notifier({"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "100",
                      "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None  # the watchdog is for another process
    assert other.ready() is False and other.errors == 1  # nobody listens: counted


def test_startup_report_names_each_phase_and_its_time():
    n = Notifier({})
    assert n.startup_report() == "0.0 s"
    n.starting("loading")  # recorded even without systemd: the log line still wants it
    n.starting("probing")
    n.phases = [("loading", 100.0), ("probing", 102.5)]
    assert n.startup_report(now=110.0) == "10.0 s (loading 2.5 s, probing 7.5 s)"

