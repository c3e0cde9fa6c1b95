"""The control socket: JSON-RPC 2.0 over an AF_UNIX stream socket, one request per line.

Try it by hand::

    echo '{"jsonrpc":"2.0","id":1,"method":"status"}' | nc -U /run/scxd/scxd.sock

Who may do what is decided from the peer's ``SO_PEERCRED``: root may do everything; members
of the configured group may read (status, get, list, history, explain) and — when
``group_can_change`` — change things; everyone else is refused with a JSON-RPC error that
says why.  The socket is mode 0660, owned by root and that group.

A request larger than ``max_request_bytes``, malformed JSON, a non-object, a wrong method or
wrong params each get an error response (standard JSON-RPC codes, plus -32001 permission
denied, -32002 busy/timeout, -32003 the operation failed); none of them can hurt the daemon:
every connection runs on its own thread with a time limit, and at most
``MAX_CONNECTIONS`` are served at once.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

log = logging.getLogger("scxd.control")



class RpcError(IntEnum):
    """Every JSON-RPC error code scxd answers with: the standard ones, then its own."""

    PARSE_ERROR = -32700        # not JSON (or nested too deep)
    INVALID_REQUEST = -32600    # not a JSON-RPC 2.0 request object, or too large
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603     # a bug in scxd: logged with its traceback
    PERMISSION_DENIED = -32001  # the peer may not do that (SO_PEERCRED)
    BUSY = -32002               # too many connections/commands now, or shutting down
    FAILED = -32003             # the operation ran and failed (e.g. the swap rolled back)

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
MAX_CONNECTIONS = 16
CONNECTION_TIMEOUT_S = 30.0


class ControlError(Exception):
    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def as_dict(self) -> dict:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
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


Handler = Callable[[str, dict[str, Any], Peer], Any]


class ControlServer:
    def __init__(self, path: str | os.PathLike[str], handler: Handler,
                 methods: Mapping[str, bool], *, group: str = "",
                 group_can_change: bool = True, max_request_bytes: int = 65536,
                 on_request: Callable[[str, str], None] | None = None):
        self.path = Path(path)
        self.handler = handler
        self.methods = dict(methods)  # method → does it change anything
        self.group = group
        self.gid = grp.getgrnam(group).gr_gid if group else None
        self.group_can_change = group_can_change
        self.max_request_bytes = max_request_bytes
        self.on_request = on_request or (lambda method, outcome: None)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._stop = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        # Bound and listening under a temporary name, then renamed into place: a client
        # that sees the path can connect (no ECONNREFUSED window between bind and listen).
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise ControlSetupError(f"{self.path} is {len(os.fsencode(self.path))} bytes long; "
                                    f"AF_UNIX socket paths may have at most {MAX_SOCKET_PATH}")
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
            sock.listen(32)
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
        raise RuntimeError(f"another process (scxd?) is listening on {self.path}")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

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
                continue
            if not self._slots.acquire(blocking=False):
                self._reply(conn, None, error=ControlError(BUSY, "too many connections"))
                conn.close()
                continue
            threading.Thread(target=self._connection, args=(conn,), daemon=True,
                             name="control-conn").start()

    def _connection(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(CONNECTION_TIMEOUT_S)
            peer = Peer.of(conn)
            buf = b""
            while not self._stop.is_set():
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > self.max_request_bytes:
                        self._reply(conn, None, error=ControlError(
                            INVALID_REQUEST, f"request larger than {self.max_request_bytes} "
                            "bytes"))
                        self.on_request("?", "too_large")
                        return
                    try:
                        chunk = conn.recv(65536)
                    except (TimeoutError, OSError):
                        return
                    if not chunk:
                        if buf.strip():
                            self._handle_line(conn, buf, peer)
                        return
                    buf += chunk
                    continue
                line, buf = buf[:nl], buf[nl + 1:]
                if len(line) > self.max_request_bytes:
                    self._reply(conn, None, error=ControlError(
                        INVALID_REQUEST, f"request larger than {self.max_request_bytes} bytes"))
                    self.on_request("?", "too_large")
                    return
                if line.strip():
                    self._handle_line(conn, line, peer)
        except Exception:  # a broken connection must never reach the daemon
            log.exception("control connection failed")
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            self._slots.release()

    def _handle_line(self, conn: socket.socket, line: bytes, peer: Peer) -> None:
        req_id = None
        method = "?"
        try:
            try:
                req = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ControlError(PARSE_ERROR, f"parse error: {exc}") from None
            if not isinstance(req, dict):
                raise ControlError(INVALID_REQUEST, "a request must be a JSON object")
            req_id = req.get("id")
            if req.get("jsonrpc") != "2.0":
                raise ControlError(INVALID_REQUEST, 'missing "jsonrpc": "2.0"')
            method = req.get("method")
            if not isinstance(method, str):
                raise ControlError(INVALID_REQUEST, '"method" must be a string')
            if method not in self.methods:
                raise ControlError(METHOD_NOT_FOUND, f"unknown method {method!r}",
                                   {"methods": sorted(self.methods)})
            params = req.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ControlError(INVALID_PARAMS, '"params" must be an object')
            self.authorize(peer, method)
            result = self.handler(method, params, peer)
        except ControlError as exc:
            self.on_request(method if method in self.methods else "?", _outcome(exc.code))
            self._reply(conn, req_id, error=exc)
            return
        except Exception as exc:
            log.exception("control method %s failed", method)
            self.on_request(method, "internal_error")
            self._reply(conn, req_id, error=ControlError(INTERNAL_ERROR, f"internal error: "
                                                         f"{type(exc).__name__}: {exc}"))
            return
        self.on_request(method, "ok")
        self._reply(conn, req_id, result=result)

    def authorize(self, peer: Peer, method: str) -> None:
        if peer.uid == 0:
            return
        member = self.gid is not None and self.gid in peer.groups()
        if member and (not self.methods.get(method, True) or self.group_can_change):
            return
        if member:
            raise ControlError(PERMISSION_DENIED, f"permission denied: group {self.group} "
                               f"may only read (control.group_can_change = false); "
                               f"{method} needs root")
        who = f"uid {peer.uid}"
        need = f"root or group {self.group}" if self.group else "root"
        raise ControlError(PERMISSION_DENIED, f"permission denied: {who} is not {need}")

    @staticmethod
    def _reply(conn: socket.socket, req_id: Any, result: Any = None,
               error: ControlError | None = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id}
        if error is not None:
            msg["error"] = error.as_dict()
        else:
            msg["result"] = result
        with contextlib.suppress(OSError):
            conn.sendall((json.dumps(msg, default=str) + "\n").encode())


def _outcome(code: int) -> str:
    return {PARSE_ERROR: "parse_error", INVALID_REQUEST: "invalid_request",
            METHOD_NOT_FOUND: "unknown_method", INVALID_PARAMS: "invalid_params",
            PERMISSION_DENIED: "denied", BUSY: "busy", FAILED: "failed"}.get(code, "error")


def exchange(path: str | os.PathLike[str], data: bytes, timeout: float = 90.0) -> bytes:
    """Send raw bytes, return the raw reply line (empty if the daemon closed without one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(data)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf


def call(path: str | os.PathLike[str], method: str, params: dict[str, Any] | None = None,
         timeout: float = 90.0) -> Any:
    """Client side: one request, the result or a raised ControlError / OSError."""
    req = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    buf = exchange(path, (json.dumps(req) + "\n").encode(), timeout)
    if not buf:
        raise ControlError(INTERNAL_ERROR, "scxd closed the connection without a reply")
    reply = json.loads(buf)
    if "error" in reply:
        e = reply["error"]
        raise ControlError(e.get("code", INTERNAL_ERROR), e.get("message", "?"), e.get("data"))
    return reply.get("result")
