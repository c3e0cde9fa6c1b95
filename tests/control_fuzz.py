"""A grammar fuzzer for the control socket, and the oracle that judges scxd's replies.

Shared by ``tests/test_control.py`` (driven by hypothesis, which shrinks a failing case to
a small one) and ``bench/control_stress.py`` (10⁵ requests from a seeded generator).

Each generated case is one request line plus what a correct server must do with it:
``"reply"`` (exactly one reply whose id matches), ``"none"`` (a valid notification: no
reply), ``"any"`` (a batch or a case whose reply count the grammar cannot promise) or
``"close"`` (too large: an error, then the connection is closed).
"""

from __future__ import annotations

import json
import random
import socket
from dataclasses import dataclass
from typing import Any

from scxd.control import MAX_BATCH, RpcError, connect

METHODS = ("ping", "status", "get", "list", "history", "explain", "freeze", "thaw", "pin",
           "switch", "start", "unpin", "stop", "restore", "restart")
#: Methods the fuzzer may call with well-formed params: cheap and harmless in advisory mode.
SAFE = ("ping", "status", "get", "list", "history", "explain", "freeze", "thaw", "unpin",
        "restore", "switch", "pin", "start")
CODES = {c.value for c in RpcError}
SENTINEL = "sentinel"


@dataclass(frozen=True)
class Case:
    line: bytes        # without the trailing newline
    expect: str        # reply | none | any | close
    req_id: Any = None


def _scalar(rng: random.Random) -> Any:
    return rng.choice([
        None, True, False, 0, -1, 1, 2**31, -(2**63), 2**64, 1.5, -0.0, 1e308, 1e-308,
        "", "a", "x" * rng.randint(1, 300), "\u00e9\u6f22\U0001f600", "\x00\x1f", "NaN",
        "inf", "-1m", "30s", "2h", "999999d", "scx_simple", "fair", "simple", "qmap",
    ])


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.6:
        return _scalar(rng)
    if roll < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["scheduler", "mode", "args", "for", "n", "x", "", "id"]):
            _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _params(rng: random.Random, method: str) -> Any:
    """Mostly plausible params for ``method``, often subtly wrong."""
    if rng.random() < 0.15:
        return _value(rng)
    if method == "history":
        return {"n": rng.choice([1, 20, 500, 0, 501, -3, 2.5, True, "5", None, 10**30])}
    if method == "freeze":
        return {"for": rng.choice([None, 0, 30, "30s", "5m", "1h", "soon", -5, "NaN", 1e308,
                                   "infs", [1], {"a": 1}, True, "400d"])}
    if method in ("pin", "switch", "start"):
        out: dict[str, Any] = {"scheduler": rng.choice(
            ["scx_simple", "simple", "fair", "scx_qmap", "scx_lavd", "nosuch", "", 7,
             ["scx_simple"], None, "x" * 100])}
        if rng.random() < 0.5:
            out["mode"] = rng.choice(["default", "fifo", "auto", "nosuch", 3, None])
        if rng.random() < 0.4:
            out["args"] = rng.choice([["-f"], ["-s", "5000"], ["--nosuch"], "-f", [1], [],
                                      ["-s"], ["-s", "nan"], None])
        return out
    return rng.choice([{}, None, {}, {"unexpected": 1}])


def _envelope(rng: random.Random, req_id: Any) -> dict[str, Any]:
    method = rng.choice(SAFE)
    req: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id, "method": method}
    params = _params(rng, method)
    if params is not None or rng.random() < 0.5:
        req["params"] = params
    return req


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([50, 500, 1000, 5000, 20000])
    o, c = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    return o * depth + b"1" + c * depth


#: The daemon's default ``control.max_request_bytes``: longer lines end the connection.
MAX_REQUEST_BYTES = 65536


def fuzz_case(rng: random.Random, serial: int) -> Case:
    """One request line: valid, structurally wrong, semantically wrong, or garbage."""
    case = _fuzz_case(rng, serial)
    if len(case.line) > MAX_REQUEST_BYTES:
        return Case(case.line, "close")
    return case


def _fuzz_case(rng: random.Random, serial: int) -> Case:
    req_id = rng.choice([serial, f"r{serial}", serial + 0.5])
    kind = rng.randrange(16)
    if kind <= 4:  # well-formed envelope, params often wrong
        return Case(json.dumps(_envelope(rng, req_id)).encode(), "reply", req_id)
    if kind == 5:  # structure broken in one place
        req = _envelope(rng, req_id)
        field, bad = rng.choice([("jsonrpc", None), ("jsonrpc", "1.0"), ("jsonrpc", 2.0),
                                 ("method", [1]), ("method", {}), ("method", None),
                                 ("method", 5), ("params", "x"), ("params", 5),
                                 ("params", [1, 2]), ("method", "reboot"),
                                 ("method", "x" * 5000), ("method", "STATUS")])
        req[field] = bad
        return Case(json.dumps(req).encode(), "reply", req_id)
    if kind == 6:  # bad ids: the reply's id must be null
        bad_id = rng.choice([[1], {"a": 1}, True])
        return Case(json.dumps({"jsonrpc": "2.0", "id": bad_id, "method": "ping"}).encode(),
                    "reply", None)
    if kind == 7:  # a notification: it runs, no reply — unless it is not a valid request
        req = _envelope(rng, None)
        del req["id"]
        valid = isinstance(req.get("params", {}), dict | list | None)
        return Case(json.dumps(req).encode(), "none" if valid else "reply", None)
    if kind == 8:  # not JSON, in many ways
        junk = rng.choice([
            b"{nope", b"", b"   ", b"\xff\xfe\x00", b"\xef\xbb\xbf{}", b'{"a":NaN}',
            b'{"jsonrpc":"2.0","id":1,"method":"history","params":{"n":Infinity}}',
            b'{"jsonrpc":"2.0","id":1,"method":"ping"', b"1" * 5000, b"[" * 3, b"null",
            b'"just a string"', b"true", bytes(rng.randrange(256) for _ in range(40))])
        junk = junk.replace(b"\n", b" ")
        return Case(junk, "any" if not junk.strip() else "reply", None)
    if kind == 9:  # nesting
        return Case(_deep(rng), "reply", None)
    if kind == 10:  # batches
        n = rng.choice([0, 1, 3, MAX_BATCH, MAX_BATCH + 1])
        batch = [_envelope(rng, f"b{serial}-{i}") if rng.random() < 0.8 else _value(rng)
                 for i in range(n)]
        return Case(json.dumps(batch).encode(), "any")
    if kind == 11:  # any JSON value (rarely a request): the reply echoes a usable id
        value = _value(rng)
        if isinstance(value, list):  # a batch: one reply per member that is not a notification
            return Case(json.dumps(value).encode(), "any")
        vid = value.get("id") if isinstance(value, dict) else None
        usable = isinstance(vid, str | int | float) and not isinstance(vid, bool)
        return Case(json.dumps(value).encode(), "reply", vid if usable else None)
    if kind == 12:  # fuzzed JSON inside the envelope
        req = {"jsonrpc": "2.0", "id": req_id, "method": rng.choice(METHODS),
               "params": {rng.choice(["n", "for", "scheduler", "args", "mode", "x"]):
                          _value(rng)}}
        return Case(json.dumps(req).encode(), "reply", req_id)
    if kind == 13:  # byte-level mutation of a valid request
        raw = bytearray(json.dumps(_envelope(rng, req_id)).encode())
        for _ in range(rng.randint(1, 4)):
            if raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        return Case(bytes(raw).replace(b"\n", b" "), "any")
    if kind == 14 and rng.random() < 0.05:  # too large: error, then closed
        return Case(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' +
                    b"a" * 70000 + b'"}}', "close")
    return Case(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "ping"}).encode(),
                "reply", req_id)


class Checker:
    """Sends cases on one connection, each followed by a sentinel ping, and judges what
    comes back.  ``problems`` lists every wrong answer (empty = all correct)."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.path, self.timeout = path, timeout
        self.sock: socket.socket | None = None
        self.buf = b""
        self.problems: list[str] = []
        self.sent = self.replies = 0
        self.serial = 0

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            connect(self.sock, self.path, self.timeout)
            self.buf = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _lines_until(self, sentinel: str) -> list[Any]:
        out = []
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                assert self.sock is not None
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("closed before the sentinel's reply")
                self.buf += chunk
                continue
            line, self.buf = self.buf[:nl], self.buf[nl + 1:]
            reply = json.loads(line)
            if isinstance(reply, dict) and reply.get("id") == sentinel:
                return out
            out.append(reply)

    def check(self, case: Case) -> list[str]:
        """Send one case and judge the answer; returns this case's problems."""
        before = len(self.problems)
        self._check(case)
        return self.problems[before:]

    def _check(self, case: Case) -> None:
        self.serial += 1
        sentinel = f"{SENTINEL}-{self.serial}"
        ping = json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "ping"}).encode()
        sock = self._connect()
        self.sent += 1
        try:
            if case.expect == "close":
                sock.sendall(case.line + b"\n")
                data = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                reply = json.loads(data.splitlines()[0])
                self._judge(case, reply)
                self.close()
                return
            sock.sendall(case.line + b"\n" + ping + b"\n")
            replies = self._lines_until(sentinel)
        except (OSError, ValueError, IndexError) as exc:
            self.problems.append(f"{case.line[:120]!r}: {type(exc).__name__}: {exc}")
            self.close()
            return
        self.replies += len(replies)
        if case.expect == "reply" and len(replies) != 1:
            self.problems.append(f"{case.line[:120]!r}: {len(replies)} replies, expected 1")
        if case.expect == "none" and replies:
            self.problems.append(f"{case.line[:120]!r}: a notification got {replies[:1]}")
        for reply in replies:
            for one in reply if isinstance(reply, list) else [reply]:
                self._judge(case, one)

    def _judge(self, case: Case, reply: Any) -> None:
        what = f"{case.line[:120]!r} → {str(reply)[:200]}"
        if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0" or "id" not in reply:
            self.problems.append(f"not a JSON-RPC reply: {what}")
            return
        if ("result" in reply) == ("error" in reply):
            self.problems.append(f"needs exactly one of result/error: {what}")
            return
        if case.expect == "reply" and reply["id"] != case.req_id:
            self.problems.append(f"id {reply['id']!r}, expected {case.req_id!r}: {what}")
        if "error" in reply:
            err = reply["error"]
            if err.get("code") not in CODES or not isinstance(err.get("message"), str):
                self.problems.append(f"unknown error code: {what}")
            if err.get("code") == RpcError.INTERNAL_ERROR:
                self.problems.append(f"internal error (a bug): {what}")
