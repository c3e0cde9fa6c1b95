"""The control socket cannot be starved or confused: admission per uid and process with
slots kept for root, idle and slow-client timeouts, "busy" instead of a reset, the order of
checks, notifications and batches, rate-limited one-line warnings — and a grammar fuzzer
(hypothesis) against a real daemon."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scxd.control import (
    ControlError,
    ControlServer,
    RateLimitedWarnings,
    RpcError,
    call,
    exchange,
    parse_request_bytes,
)
from scxd.controller import METHODS
from tests.control_fuzz import Case, Checker, fuzz_case
from tests.daemon_helper import BASE, Daemon
from tests.fakes import wait_for


@pytest.fixture
def server():
    """A real ControlServer in this process whose socket anyone may open (so non-root
    peers reach scxd's own checks); the handler echoes the method."""
    run_dir = Path(tempfile.mkdtemp(prefix="scxd-ctl-"))
    os.chmod(run_dir, 0o755)
    srv = ControlServer(run_dir / "s.sock", lambda m, p, peer: {"method": m, "params": p},
                        METHODS, group="nogroup", max_connections=8, connections_per_user=3,
                        idle_timeout=2.0, request_timeout=1.0)
    srv.start()
    os.chmod(srv.path, 0o666)
    yield srv
    srv.close()
    shutil.rmtree(run_dir, ignore_errors=True)


def raw(path, data: bytes) -> dict:
    return json.loads(exchange(path, data, timeout=10))


ROOT = Path(__file__).resolve().parents[1]


def as_user(uid: int | None) -> dict:
    """subprocess arguments to run as ``uid`` with its own group (None: stay root)."""
    if uid is None:
        return {}
    return {"user": uid, "group": uid, "extra_groups": []}


def holder(path: Path, n: int, uid: int | None = 65534) -> subprocess.Popen:
    """A process holding ``n`` idle connections (as ``uid``; None: as root)."""
    code = textwrap.dedent(f"""
        import socket, sys, time
        socks = []
        for _ in range({n}):
            s = socket.socket(socket.AF_UNIX)
            s.connect({str(path)!r})
            socks.append(s)
        print("ready", flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         **as_user(uid))
    assert p.stdout.readline().strip() == "ready"
    return p


def ask_as(path: Path, uid: int | None) -> dict:
    """One status request from another process (as ``uid``; None: root), with its
    round-trip time under "seconds"."""
    code = textwrap.dedent(f"""
        import time
        from scxd.control import exchange
        t0 = time.monotonic()
        r = exchange({str(path)!r}, b'{{"jsonrpc":"2.0","id":1,"method":"status"}}\\n', 10)
        print(time.monotonic() - t0)
        print(r.decode(), end="")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         **as_user(uid))
    assert out.returncode == 0, out.stderr
    took, reply = out.stdout.split("\n", 1)
    return {**json.loads(reply), "seconds": float(took)}


# -- order of checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("line,code", [
    (b"{nope", -32700), (b'{"a":NaN}', -32700), (b"[" * 3000 + b"]" * 3000, -32700),
    (b"1" * 5000, -32700), (b"\xff\xfe", -32700), (b"[1,2]", None), (b"5", -32600),
    (b"[]", -32600), (b'{"jsonrpc":"2.0","id":1,"method":[1]}', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":{}}', -32600), (b"{}", -32600),
    (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', -32600),
    (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":3}', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}', -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"reboot"}', -32601),
])
def test_malformed_requests_get_the_right_error(server, line, code, caplog):
    with caplog.at_level(logging.WARNING):
        reply = json.loads(exchange(server.path, line + b"\n", timeout=10))
    if code is None:  # a batch of two non-objects: two errors
        assert [r["error"]["code"] for r in reply] == [-32600, -32600]
        return
    assert reply["error"]["code"] == code and reply["jsonrpc"] == "2.0"
    assert "Traceback" not in caplog.text
    assert all(len(r.getMessage().splitlines()) == 1 for r in caplog.records)


def test_unauthorised_peers_learn_no_method_names(server):
    """A peer that is neither root nor in the group: malformed input gets its proper error,
    everything else "permission denied" that names no method."""
    code = textwrap.dedent(f"""
        import json
        from scxd.control import exchange
        for line in (b"{{nope", b'{{"jsonrpc":"2.0","id":1,"method":"reboot"}}',
                     b'{{"jsonrpc":"2.0","id":2,"method":"status"}}'):
            print(exchange({str(server.path)!r}, line + b"\\n", 10).decode(), end="")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         **as_user(1234))
    assert out.returncode == 0, out.stderr
    replies = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r["error"]["code"] for r in replies] == [-32700, -32001, -32001]
    assert all("data" not in r["error"] and "status" not in r["error"]["message"]
               for r in replies[1:])
    assert "uid 1234 is not root or group nogroup" in replies[1]["error"]["message"]


def test_notifications_get_no_reply_and_batches_an_array(server):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(server.path))
        s.sendall(b'{"jsonrpc":"2.0","method":"status"}\n'
                  b'[{"jsonrpc":"2.0","id":"a","method":"ping"},'
                  b'{"jsonrpc":"2.0","method":"ping"},'
                  b'{"jsonrpc":"2.0","id":"b","method":"nosuch"}, 7]\n'
                  b'{"jsonrpc":"2.0","id":"last","method":"ping"}\n')
        lines = []
        while len(lines) < 2:
            lines += s.recv(65536).decode().splitlines()
    batch, last = json.loads(lines[0]), json.loads(lines[1])
    assert [r["id"] for r in batch] == ["a", "b", None]
    assert batch[0]["result"]["method"] == "ping"
    assert [r.get("error", {}).get("code") for r in batch] == [None, -32601, -32600]
    assert last["id"] == "last"


def test_parser_refuses_what_is_not_strict_json():
    for bad in (b"NaN", b"[Infinity]", b"-Infinity", b"9" * 5000):
        with pytest.raises(ControlError) as err:
            parse_request_bytes(bad)
        assert err.value.code == RpcError.PARSE_ERROR
    assert parse_request_bytes(b'{"a": [1.5, null]}') == {"a": [1.5, None]}


# -- admission and timeouts ---------------------------------------------------------------------
def test_one_user_cannot_lock_out_others_and_root_always_gets_in(server):
    holders = [holder(server.path, 3)]  # nobody: its per-user limit
    try:
        assert wait_for(lambda: server.connections().get(65534) == 3, 5)
        reply = ask_as(server.path, 65534)
        assert reply["error"]["code"] == RpcError.BUSY
        assert "uid 65534 already has 3 connections" in reply["error"]["message"]
        holders.append(holder(server.path, 3, uid=1))  # 6 = every non-root slot
        assert wait_for(lambda: sum(server.connections().values()) == 6, 5)
        reply = ask_as(server.path, 2)
        assert reply["error"]["code"] == RpcError.BUSY
        assert "all 6 connections for non-root clients are in use" in reply["error"]["message"]
        reply = ask_as(server.path, None)  # root: one of its reserved slots, at once
        assert reply["result"]["method"] == "status" and reply["seconds"] < 1.0
    finally:
        for p in holders:
            p.kill()
            p.wait()
    assert wait_for(lambda: not server.connections(), 5)


def test_one_process_cannot_take_every_slot_not_even_roots(server):
    hog = holder(server.path, 6, uid=None)
    try:
        assert wait_for(lambda: server.connections().get(0) == 3, 5)  # capped per process
        time.sleep(0.2)
        assert server.connections() == {0: 3}
        reply = ask_as(server.path, None)
        assert reply["result"]["method"] == "status" and reply["seconds"] < 1.0
    finally:
        hog.kill()
        hog.wait()


def test_slowloris_is_cut_off_and_idle_connections_closed(server):
    slow = socket.socket(socket.AF_UNIX)
    slow.connect(str(server.path))
    slow.settimeout(5)
    t0 = time.monotonic()
    reply = b""
    try:
        for byte in b'{"jsonrpc":"2.0","id":1,"method":"status"}':
            slow.send(bytes([byte]))
            time.sleep(0.2)
            if time.monotonic() - t0 > 3:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = slow.recv(65536)
    slow.close()
    took = time.monotonic() - t0
    err = json.loads(reply)["error"]
    assert err["code"] == RpcError.INVALID_REQUEST and "within 1 s" in err["message"]
    assert took < 2.5
    idle = socket.socket(socket.AF_UNIX)
    idle.connect(str(server.path))
    idle.settimeout(5)
    t0 = time.monotonic()
    assert idle.recv(10) == b""  # closed by the server, without a reply
    assert 1.8 < time.monotonic() - t0 < 3.5
    idle.close()


def test_a_too_large_request_gets_its_error_then_a_clean_close(server):
    """The client is still sending when scxd refuses the request: it must be able to finish
    sending, read the error and then end of file (a close with unread bytes would reset the
    connection: CI saw ECONNRESET in the fuzz bench)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(server.path))
    s.settimeout(5)
    s.sendall(b'{"x":"' + b"a" * 70000)  # over the limit, no newline yet: refused now
    time.sleep(0.3)                       # scxd has answered; the client goes on sending
    s.sendall(b"b" * 200000 + b'"}\n')
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    err = json.loads(data)["error"]
    assert err["code"] == RpcError.INVALID_REQUEST and "larger than 65536" in err["message"]
    assert wait_for(lambda: not server.connections(), 3)


def test_warnings_are_one_line_and_rate_limited():
    now = [0.0]
    logger = logging.getLogger("test-rate")
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger.addHandler(Grab())
    w = RateLimitedWarnings(logger, burst=3, window=60, clock=lambda: now[0])
    for i in range(100):
        w.warn("parse_error", f"bad {i}")
    assert records == ["bad 0", "bad 1", "bad 2"]
    now[0] = 61
    w.warn("invalid_params", "next")
    assert records[3] == ("97 parse_error more client errors were not logged "
                          "(last 60 s)")
    assert records[4] == "next"


def test_socket_path_too_long_is_named(tmp_path):
    from scxd.control import ControlSetupError

    srv = ControlServer(tmp_path / ("x" * 120), lambda *a: None, METHODS)
    with pytest.raises(ControlSetupError, match="bytes long; AF_UNIX socket paths may have"):
        srv.start()


# -- the fuzzer against a real daemon ------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("fuzz"), BASE)
    checker = Checker(str(d.sock))
    yield d, checker
    checker.close()
    d.stop()


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(rng=st.randoms(use_true_random=False))
def test_grammar_fuzz_against_a_real_daemon(daemon, rng):
    d, checker = daemon
    for i in range(5):
        # The case depends on the drawn randomness only (not on the checker's counter), so
        # hypothesis can replay and shrink it.
        problems = checker.check(fuzz_case(rng, i))
        assert not problems, problems
    assert d.proc.poll() is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(sorted(METHODS)) | st.text(max_size=12),
       params=st.dictionaries(st.sampled_from(["n", "for", "scheduler", "mode", "args", "x"]),
                              json_values, max_size=3))
def test_any_params_get_a_result_or_a_named_error(daemon, method, params):
    _, checker = daemon
    req = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    problems = checker.check(Case(json.dumps(req).encode(), "reply", 7))
    assert not problems, problems


def test_after_the_fuzz_the_log_has_no_tracebacks_and_root_gets_status(daemon):
    d, checker = daemon
    for i in range(300):
        checker.check(fuzz_case(random.Random(i), checker.serial))
    assert not checker.problems, checker.problems[:5]
    t0 = time.monotonic()
    assert call(d.sock, "status")["mode"] == "advisory"
    assert time.monotonic() - t0 < 1.0
    out = d.output()
    assert "Traceback" not in out, out[-3000:]
    warnings = [line for line in out.splitlines() if "scxd.control" in line]
    assert warnings and len(warnings) < 40, "client errors are summarised, not each logged"
