"""The control socket: JSON-RPC 2.0 over an AF_UNIX stream socket, one request per line.

Try it by hand::

    echo '{"jsonrpc":"2.0","id":1,"method":"status"}' | nc -U /run/scxd/scxd.sock

This module is the transport only; the methods and what they mean are the controller's
(:mod:`scxd.controller` hands over ``method → changes anything``).

**Who may do what** is decided from the peer's ``SO_PEERCRED``: root may do everything;
members of the configured group may read and — when ``group_can_change`` — change things;
everyone else is refused with an error that says why and names no method.  The socket is
mode 0660, owned by root and that group.

**Order of checks**, so every bad request gets the right error and nothing leaks: parse
(-32700, also for NaN/Infinity, absurd numbers and nesting too deep) → JSON-RPC shape
(-32600) → may this peer use the socket at all (-32001) → method known (-32601) → may it
change things (-32001) → parameters (-32602, by the controller) → run it (-32003 when the
operation failed, -32002 when scxd is busy and nothing ran, -32004 when a change did not
finish in time).  A request without ``id`` is a notification
and, as the specification says, gets no reply; batches (arrays) of up to
:data:`MAX_BATCH` requests are answered with an array.

**It cannot be starved.**  Every connection has an idle timeout between requests, a
deadline for completing a request once its first byte arrived (a slowloris client is cut
off) and one for writing a reply.  At most ``max_connections`` are served at once, at most
``connections_per_user`` per non-root uid and per process (root's included: one leaking
script cannot take them all), and :data:`ROOT_RESERVED` of them are kept for root, so
root's ``scxctl status`` always gets in.  A refused connection gets a JSON-RPC
"busy" reply saying why, never a reset.

**Client errors never reach the log as tracebacks**: they are counted
(``scxd_control_requests_total{outcome}``) and summarised in rate-limited one-line
warnings.  Only a bug (-32603) is logged with its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import json
import logging
import math
import os
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

log = logging.getLogger("scxd.control")


class RpcError(IntEnum):
    """Every JSON-RPC error code scxd answers with: the standard ones, then its own."""

    PARSE_ERROR = -32700        # not JSON (or nested too deep, NaN, absurd numbers)
    INVALID_REQUEST = -32600    # not a JSON-RPC 2.0 request object, too large, too slow
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603     # a bug in scxd: logged with its traceback
    PERMISSION_DENIED = -32001  # the peer may not do that (SO_PEERCRED)
    BUSY = -32002               # too many connections/changes now, or shutting down: nothing
    #                             ran, try again
    FAILED = -32003             # the operation ran and failed (e.g. the swap rolled back)
    TIMEOUT = -32004            # a change did not finish in time; it may still complete

    @property
    def outcome(self) -> str:
        """The ``outcome`` label of ``scxd_control_requests_total``."""
        return self.name.lower()


PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    RpcError.PARSE_ERROR, RpcError.INVALID_REQUEST, RpcError.METHOD_NOT_FOUND,
    RpcError.INVALID_PARAMS, RpcError.INTERNAL_ERROR)
PERMISSION_DENIED, BUSY, FAILED = RpcError.PERMISSION_DENIED, RpcError.BUSY, RpcError.FAILED

#: sizeof(sockaddr_un.sun_path) minus the terminating NUL.
MAX_SOCKET_PATH = 107
#: Connections only root may use, whatever the others hold.
ROOT_RESERVED = 2
MAX_BATCH = 16
#: Pending connections the kernel queues for accept(): deep enough that a burst of refused
#: connections from one client does not make connect() fail for the others.
LISTEN_BACKLOG = 1024
#: A reply must be written within this (a client that does not read is dropped).
WRITE_TIMEOUT_S = 5.0
#: After refusing a too-large request, what scxd still reads (and discards) so that closing
#: does not reset the connection: a close with unread bytes makes the peer's next recv fail
#: with ECONNRESET, and a client still sending would lose the error reply it was sent.
LINGER_S = 1.0
LINGER_BYTES = 1 << 20
#: Rate limit of client-error warnings: this many per window, then one summary.
WARN_BURST, WARN_WINDOW_S = 5, 60.0
METHOD_LABEL_MAX = 32


class ControlError(Exception):
    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def as_dict(self) -> dict:
        err: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class ControlSetupError(OSError):
    """The control socket cannot be created as configured (the message says why)."""


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @classmethod
    def of(cls, sock: socket.socket) -> Peer:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return cls(*struct.unpack("3i", raw))

    def groups(self) -> set[int]:
        """Primary + supplementary groups of the peer process (from /proc/<pid>/status)."""
        out = {self.gid}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("Groups:"):
                    out |= {int(g) for g in line.split()[1:]}
        except (OSError, ValueError):
            pass
        return out


class RateLimitedWarnings:
    """One-line warnings, at most ``burst`` per ``window`` seconds; the rest are counted and
    summarised when the next window opens (so a flood costs a line a minute)."""

    def __init__(self, logger: logging.Logger, burst: int = WARN_BURST,
                 window: float = WARN_WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.log, self.burst, self.window, self.clock = logger, burst, window, clock
        self._lock = threading.Lock()
        self._start = -math.inf
        self._sent = 0
        self._suppressed: Counter = Counter()

    def warn(self, kind: str, message: str) -> None:
        with self._lock:
            now = self.clock()
            summary = ""
            if now - self._start >= self.window:
                if self._suppressed:
                    summary = ", ".join(f"{n} {k}" for k, n in self._suppressed.most_common())
                self._start, self._sent = now, 0
                self._suppressed.clear()
            emit = self._sent < self.burst
            if emit:
                self._sent += 1
            else:
                self._suppressed[kind] += 1
        if summary:
            self.log.warning("%s more client errors were not logged (last %.0f s)",
                             summary, self.window)
        if emit:
            self.log.warning("%s", message)


def parse_request_bytes(line: bytes) -> Any:
    """JSON text → value, refusing what is not JSON in the strict sense (NaN, Infinity) and
    what would blow up the parser (nesting too deep, 4300+ digit integers)."""
    def no_constants(name: str) -> Any:
        raise ControlError(PARSE_ERROR, f"parse error: {name} is not JSON")

    try:
        return json.loads(line, parse_constant=no_constants)
    except RecursionError:
        raise ControlError(PARSE_ERROR, "parse error: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ControlError(PARSE_ERROR, f"parse error: not UTF-8 ({exc.reason} at byte "
                           f"{exc.start})") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing absurdly long numbers
        raise ControlError(PARSE_ERROR, f"parse error: {exc}"[:200]) from None


def _hung_up(conn: socket.socket) -> bool:
    """Has the peer closed its end (seen without reading anything)?"""
    poller = select.poll()
    poller.register(conn, select.POLLRDHUP)
    try:
        return any(ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                   for _, ev in poller.poll(0))
    except OSError:
        return True


Handler = Callable[[str, dict[str, Any], Peer], Any]
_NO_REPLY = object()


class ControlServer:
    def __init__(self, path: str | os.PathLike[str], handler: Handler,
                 methods: Mapping[str, bool], *, group: str = "",
                 group_can_change: bool = True, max_request_bytes: int = 65536,
                 max_connections: int = 32, connections_per_user: int = 8,
                 idle_timeout: float = 30.0, request_timeout: float = 5.0,
                 on_request: Callable[[str, str], None] | None = None):
        self.path = Path(path)
        self.handler = handler
        self.methods = dict(methods)  # method → does it change anything
        self.group = group
        self.gid = grp.getgrnam(group).gr_gid if group else None
        self.group_can_change = group_can_change
        self.max_request_bytes = max_request_bytes
        self.max_connections = max(max_connections, ROOT_RESERVED + 1)
        self.per_user = connections_per_user
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.on_request = on_request or (lambda method, outcome: None)
        self.warnings = RateLimitedWarnings(log)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[socket.socket, Peer] = {}  # connections holding a slot

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise ControlSetupError(f"{self.path} is {len(os.fsencode(self.path))} bytes long; "
                                    f"AF_UNIX socket paths may have at most {MAX_SOCKET_PATH}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        # Bound and listening under a temporary name, then renamed into place: a client
        # that sees the path can connect (no ECONNREFUSED window between bind and listen).
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        if len(os.fsencode(tmp)) > MAX_SOCKET_PATH:
            tmp = self.path  # no room for a temporary name: bind in place
        tmp.unlink(missing_ok=True)
        old_umask = os.umask(0o117)  # never world-accessible, not even for an instant
        try:
            sock.bind(str(tmp))
        finally:
            os.umask(old_umask)
        try:
            os.chmod(tmp, 0o660)
            if self.gid is not None:
                os.chown(tmp, 0, self.gid)
            sock.listen(LISTEN_BACKLOG)
            if tmp != self.path:
                os.rename(tmp, self.path)
        except OSError:
            sock.close()
            tmp.unlink(missing_ok=True)
            raise
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def _remove_stale(self) -> None:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                self.path.unlink(missing_ok=True)
                return
            raise
        finally:
            probe.close()
        raise ControlSetupError(f"another process (scxd?) is listening on {self.path}")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with self._lock:
            for conn in list(self._open):  # wake connection threads blocked in recv
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def connections(self) -> dict[int, int]:
        """uid → open connections (for tests and status)."""
        with self._lock:
            return dict(Counter(p.uid for p in self._open.values()))

    # -- admission ------------------------------------------------------------------------
    def _admit(self, conn: socket.socket, peer: Peer) -> str:
        """Take a slot for ``peer``; empty when admitted, else why not."""
        with self._lock:
            why = self._over_limit(peer, self._open)
            if why:
                # A client that closed a moment ago may not have been noticed by its
                # connection thread yet: count only connections whose peer is still there.
                why = self._over_limit(peer, {c: p for c, p in self._open.items()
                                              if not _hung_up(c)})
            if not why:
                self._open[conn] = peer
            return why

    def _over_limit(self, peer: Peer, held: Mapping[socket.socket, Peer]) -> str:
        by_pid = sum(1 for p in held.values() if p.pid == peer.pid)
        if by_pid >= self.per_user:  # one leaking process, even root's
            return (f"pid {peer.pid} already has {by_pid} connections "
                    f"(control.connections_per_user = {self.per_user})")
        if peer.uid != 0:
            by_uid = sum(1 for p in held.values() if p.uid == peer.uid)
            if by_uid >= self.per_user:
                return (f"uid {peer.uid} already has {by_uid} connections "
                        f"(control.connections_per_user = {self.per_user})")
            if len(held) >= self.max_connections - ROOT_RESERVED:
                return (f"all {self.max_connections - ROOT_RESERVED} connections for "
                        "non-root clients are in use")
        elif len(held) >= self.max_connections:
            return f"all {self.max_connections} connections are in use"
        return ""

    def _release(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.pop(conn, None)

    def _refuse(self, conn: socket.socket, peer: Peer | None, why: str) -> None:
        """Answer "busy" without blocking the accept loop, then close cleanly."""
        self.on_request("?", BUSY.outcome)
        who = f"uid {peer.uid} pid {peer.pid}" if peer else "a peer"
        self.warnings.warn("busy", f"refused a connection from {who}: {why}")
        try:
            conn.setblocking(False)
            with contextlib.suppress(OSError):  # what it already sent: read, so no reset
                conn.recv(self.max_request_bytes)
            reply = {"jsonrpc": "2.0", "id": None,
                     "error": ControlError(BUSY, f"scxd is busy: {why}; try again").as_dict()}
            conn.send((json.dumps(reply) + "\n").encode())
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            conn.close()

    # -- serving --------------------------------------------------------------------------
    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)  # e.g. EMFILE: do not spin
                continue
            try:
                peer = Peer.of(conn)
            except OSError:
                conn.close()
                continue
            why = self._admit(conn, peer)
            if why:
                self._refuse(conn, peer, why)
                continue
            try:
                threading.Thread(target=self._connection, args=(conn, peer), daemon=True,
                                 name="control-conn").start()
            except RuntimeError:  # cannot start a thread: out of resources
                self._release(conn)
                self._refuse(conn, peer, "cannot start a thread")

    def _connection(self, conn: socket.socket, peer: Peer) -> None:
        try:
            self._converse(conn, peer)
        except OSError:
            pass  # the peer went away or timed out: nothing to tell anyone
        except Exception:  # a bug; the connection dies, the daemon does not
            log.exception("control connection from uid %d pid %d failed", peer.uid, peer.pid)
        finally:
            self._release(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _converse(self, conn: socket.socket, peer: Peer) -> None:
        """Serve request lines until the peer closes, idles out or is too slow."""
        buf = b""
        idle_until = time.monotonic() + self.idle_timeout
        request_until: float | None = None  # set when a request's first byte arrives
        while not self._stop.is_set():
            nl = buf.find(b"\n")
            if nl >= 0:
                line, buf = buf[:nl], buf[nl + 1:]
                if len(line) > self.max_request_bytes:
                    self._too_large(conn, peer)
                    self._linger(conn)
                    return
                if line.strip():
                    self._answer(conn, line, peer)
                idle_until = time.monotonic() + self.idle_timeout
                request_until = time.monotonic() + self.request_timeout if buf.strip() \
                    else None
                continue
            if len(buf) > self.max_request_bytes:
                self._too_large(conn, peer)
                self._linger(conn)
                return
            now = time.monotonic()
            deadline = request_until if request_until is not None else idle_until
            if now >= deadline:
                if request_until is not None:
                    self._client_error(peer, "?", INVALID_REQUEST, "slow")
                    self._send(conn, self._error(None, ControlError(
                        INVALID_REQUEST, f"request not completed within "
                        f"{self.request_timeout:g} s")))
                return  # idle: just close
            conn.settimeout(deadline - now)
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                if buf.strip():  # a last request without a newline
                    self._answer(conn, buf, peer)
                return
            if request_until is None and chunk.strip():
                request_until = time.monotonic() + self.request_timeout
            buf += chunk

    def _too_large(self, conn: socket.socket, peer: Peer) -> None:
        self._client_error(peer, "?", INVALID_REQUEST, "too large")
        self._send(conn, self._error(None, ControlError(
            INVALID_REQUEST, f"request larger than {self.max_request_bytes} bytes")))

    @staticmethod
    def _linger(conn: socket.socket) -> None:
        """Half-close, then discard what the peer still sends until it closes, for at most
        LINGER_S and LINGER_BYTES: the peer reads the error and then a clean end of file."""
        conn.shutdown(socket.SHUT_WR)
        until, left = time.monotonic() + LINGER_S, LINGER_BYTES
        while left > 0:
            wait = until - time.monotonic()
            if wait <= 0:
                return
            conn.settimeout(wait)
            try:
                chunk = conn.recv(min(left, 65536))
            except TimeoutError:
                return
            if not chunk:
                return
            left -= len(chunk)

    def _send(self, conn: socket.socket, reply: Any) -> None:
        if reply is _NO_REPLY:
            return
        conn.settimeout(WRITE_TIMEOUT_S)
        conn.sendall((json.dumps(reply, default=str) + "\n").encode())

    def _answer(self, conn: socket.socket, line: bytes, peer: Peer) -> None:
        try:
            req = parse_request_bytes(line)
        except ControlError as exc:
            self._client_error(peer, "?", exc.code, exc.message)
            self._send(conn, self._error(None, exc))
            return
        if isinstance(req, list):
            if not req:
                self._client_error(peer, "?", INVALID_REQUEST, "empty batch")
                self._send(conn, self._error(None, ControlError(INVALID_REQUEST,
                                                                "an empty batch")))
                return
            if len(req) > MAX_BATCH:
                self._client_error(peer, "?", INVALID_REQUEST, "batch too large")
                self._send(conn, self._error(None, ControlError(
                    INVALID_REQUEST, f"a batch of {len(req)} requests; at most {MAX_BATCH}")))
                return
            replies = [r for r in (self._one(item, peer) for item in req) if r is not _NO_REPLY]
            if replies:
                self._send(conn, replies)
            return
        self._send(conn, self._one(req, peer))

    @staticmethod
    def _error(req_id: Any, exc: ControlError) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": req_id, "error": exc.as_dict()}

    def _one(self, req: Any, peer: Peer) -> Any:
        """One request object → its reply (or _NO_REPLY for a notification)."""
        req_id: Any = None
        method = "?"
        notification = False
        try:
            if not isinstance(req, dict):
                raise ControlError(INVALID_REQUEST, "a request must be a JSON object")
            req_id = req.get("id")
            if req_id is not None and (isinstance(req_id, bool) or not isinstance(
                    req_id, str | int | float)):
                req_id = None
                raise ControlError(INVALID_REQUEST, '"id" must be a string, a number or null')
            if req.get("jsonrpc") != "2.0":
                raise ControlError(INVALID_REQUEST, 'missing "jsonrpc": "2.0"')
            raw_method = req.get("method")
            if not isinstance(raw_method, str):
                raise ControlError(INVALID_REQUEST, '"method" must be a string')
            params = req.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict | list):
                raise ControlError(INVALID_REQUEST, '"params" must be an object or an array')
            # A valid request without an id is a notification: it runs, nothing is replied.
            notification = "id" not in req
            if isinstance(params, list):
                raise ControlError(INVALID_PARAMS, "params by position are not supported: "
                                   "give an object of named params")
            self.admit_peer(peer)
            if raw_method not in self.methods:
                raise ControlError(METHOD_NOT_FOUND, f"unknown method {raw_method[:64]!r}",
                                   {"methods": sorted(self.methods)})
            method = raw_method
            self.authorize(peer, method)
            result = self.handler(method, params, peer)
        except ControlError as exc:
            self._client_error(peer, method, exc.code, exc.message)
            return _NO_REPLY if notification else self._error(req_id, exc)
        except Exception as exc:
            log.exception("control method %s failed", method)
            self.on_request(method, INTERNAL_ERROR.outcome)
            return _NO_REPLY if notification else self._error(req_id, ControlError(
                INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}"))
        self.on_request(method, "ok")
        return _NO_REPLY if notification else {"jsonrpc": "2.0", "id": req_id,
                                               "result": result}

    def _client_error(self, peer: Peer, method: str, code: int, message: str) -> None:
        try:
            outcome = RpcError(code).outcome
        except ValueError:
            outcome = "error"
        self.on_request(method if method in self.methods else "?", outcome)
        if code in (FAILED, BUSY):
            return  # not the client's fault; the controller logs what failed
        self.warnings.warn(outcome, f"uid {peer.uid} pid {peer.pid}: {outcome} "
                           f"({message[:160]})")

    # -- permissions ------------------------------------------------------------------------
    def _member(self, peer: Peer) -> bool:
        return self.gid is not None and self.gid in peer.groups()

    def admit_peer(self, peer: Peer) -> None:
        """May this peer use the socket at all?  (Says nothing about methods.)"""
        if peer.uid == 0 or self._member(peer):
            return
        need = f"root or group {self.group}" if self.group else "root"
        raise ControlError(PERMISSION_DENIED, f"permission denied: uid {peer.uid} is not "
                           f"{need}")

    def authorize(self, peer: Peer, method: str) -> None:
        self.admit_peer(peer)
        if peer.uid == 0 or not self.methods.get(method, True) or self.group_can_change:
            return
        raise ControlError(PERMISSION_DENIED, f"permission denied: group {self.group} may "
                           f"only read (control.group_can_change = false); {method} needs "
                           "root")


def connect(s: socket.socket, path: str, timeout: float) -> None:
    """``connect`` that waits while the daemon's accept queue is full (AF_UNIX says EAGAIN
    at once to a socket with a timeout instead of blocking)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            s.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"{path}: the accept queue stayed full for "
                                   f"{timeout:g} s") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def exchange(path: str | os.PathLike[str], data: bytes, timeout: float = 90.0) -> bytes:
    """Send raw bytes, return the raw reply line (empty if the daemon closed without one).

    A reply the daemon sent before closing (e.g. "busy") is read even when sending failed.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(timeout)
        connect(s, str(path), timeout)
        # Refused before it read us: its reply (if any) says why, so read on.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


BUSY_BACKOFF_S = (0.1, 0.3, 1.0)


def call(path: str | os.PathLike[str], method: str, params: dict[str, Any] | None = None,
         timeout: float = 90.0, busy_retries: int = 0) -> Any:
    """Client side: one request, the result or a raised ControlError / OSError.

    ``busy_retries``: on a "busy" answer (nothing ran) try again that many times, backing
    off (:data:`BUSY_BACKOFF_S`).
    """
    for attempt in range(busy_retries + 1):
        try:
            return _call_once(path, method, params, timeout)
        except ControlError as exc:
            if exc.code != BUSY or attempt >= busy_retries:
                raise
            time.sleep(BUSY_BACKOFF_S[min(attempt, len(BUSY_BACKOFF_S) - 1)])
    raise AssertionError("unreachable")


def _call_once(path: str | os.PathLike[str], method: str, params: dict[str, Any] | None,
               timeout: float) -> Any:
    req = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    buf = exchange(path, (json.dumps(req) + "\n").encode(), timeout)
    if not buf:
        raise ControlError(INTERNAL_ERROR, "scxd closed the connection without a reply")
    try:
        reply = json.loads(buf)
    except ValueError:
        raise ControlError(INTERNAL_ERROR, f"scxd sent an unreadable reply: "
                           f"{buf[:100]!r}") from None
    if "error" in reply:
        e = reply["error"]
        raise ControlError(e.get("code", INTERNAL_ERROR), e.get("message", "?"), e.get("data"))
    return reply.get("result")
