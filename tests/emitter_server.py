"""A scripted loopback fake of ``POST /v1/events`` for the emitter tests (stdlib threads).

It applies the real server's rules:

* all-or-nothing validation: a body that is not ``{"events": [<object>, ...]}`` (non-empty)
  gets 422; a batch holding an event whose ``run_id`` starts with ``"poison"`` gets 400 with
  a ``detail`` naming it, and nothing of that batch is inserted;
* idempotent insert by ``run_id``; the answer is ``{"inserted": <new ids>}``;
* optionally, bodies above ``max_body_bytes`` get 413.

Each request takes the next behaviour of the script (a sequence, or a callable
``(index, ids) -> behaviour``), then ``then`` once the script is used up:

* :class:`Ok` — apply the rules and answer.
* :class:`Status` ``(code, headers, body)`` — answer that status; nothing is inserted.
* :class:`Sleep` ``(seconds, commit_first)`` — insert (before or after the pause), wait
  ``seconds`` and answer if the client is still there; records when the client gave up.
* :class:`ResetMidBody` ``(after)`` — read ``after`` body bytes (default: half), then abort the
  connection with an RST; nothing is inserted.
* :class:`CommitThenReset` — read and insert the batch, then abort with an RST, no answer.

Server-wide modes: :meth:`EventsServer.stop_listening` / :meth:`start_listening` (a closed
port: connections are refused, then the same port listens again), and ``blackhole`` (accept
connections and never read from them).

Every request is recorded (:class:`Record`: monotonic time, body size, ids, what was done,
the status sent), with the set of unique ids held (``ids``) and how often each id was sent
(``sent``). Only 127.0.0.1 is used.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fault_server import _rst, closed_port

__all__ = [
    "Behaviour",
    "CommitThenReset",
    "EventsServer",
    "Ok",
    "Record",
    "ResetMidBody",
    "Sleep",
    "Status",
    "closed_port",
]


@dataclass(frozen=True)
class Ok:
    """Apply the server's rules and answer (200, 400, 413 or 422)."""


@dataclass(frozen=True)
class Status:
    """Answer ``code`` (with ``headers``) without inserting anything."""

    code: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` before answering; the batch is inserted before the pause when
    ``commit_first`` (a slow response), after it otherwise (a slow handler)."""

    seconds: float
    commit_first: bool = True


@dataclass(frozen=True)
class ResetMidBody:
    """Read ``after`` body bytes (``None``: half the body), then reset the connection."""

    after: int | None = None


@dataclass(frozen=True)
class CommitThenReset:
    """Insert the batch, then reset the connection without answering."""


Behaviour = Ok | Status | Sleep | ResetMidBody | CommitThenReset
Script = Sequence[Behaviour] | Callable[[int, list[str]], Behaviour]


@dataclass
class Record:
    """One request as the server saw it."""

    index: int
    conn: int
    t: float  # time.monotonic() when the request (or the part read of it) was in
    size: int  # body bytes announced by Content-Length
    ids: list[str]
    action: str
    status: int | None = None  # status sent, None when no answer was sent
    inserted: int | None = None
    client_gone_after: float | None = None  # Sleep: seconds until the client hung up


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Content Too Large",
    422: "Unprocessable Entity",
    425: "Too Early",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _response(status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _ids_of(body: bytes) -> list[str]:
    try:
        doc = json.loads(body)
        events = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(events, list):
            return []
        return [str(e.get("run_id")) for e in events if isinstance(e, dict)]
    except (ValueError, UnicodeDecodeError):
        return []


class EventsServer:
    """The fake events server; a context manager. ``url`` is its base URL."""

    def __init__(
        self,
        script: Script = (),
        then: Behaviour | None = None,
        *,
        max_body_bytes: int | None = None,
        blackhole: bool = False,
    ) -> None:
        self.records: list[Record] = []
        self.ids: set[str] = set()
        self.sent: Counter[str] = Counter()
        self.max_body_bytes = max_body_bytes
        self.blackhole = blackhole
        self._script: Script = script
        self._script_base = 0  # index of the first request under the current script
        self._then: Behaviour = then if then is not None else Ok()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._connections = 0
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self.port = 0
        self._bind()
        self.url = f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ lifecycle

    def _bind(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._listener = sock

    def start(self) -> EventsServer:
        self.start_listening()
        return self

    def start_listening(self) -> None:
        """Listen (again, on the same port) and accept connections."""
        if self._accept_thread is not None:
            return
        if self._listener is None:
            self._bind()
        assert self._listener is not None
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        listener = self._listener
        t = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True)
        t.start()
        self._accept_thread = t

    def stop_listening(self) -> None:
        """Close the port (connects are refused) and every open connection."""
        listener, self._listener = self._listener, None
        thread, self._accept_thread = self._accept_thread, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if thread is not None:
            thread.join(timeout=5)
        self._close_connections()

    def stop(self) -> None:
        self._stop.set()
        self.stop_listening()
        for t in list(self._threads):
            t.join(timeout=5)

    def __enter__(self) -> EventsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _close_connections(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    # ------------------------------------------------------------------ scripting / queries

    def set_script(self, script: Script, then: Behaviour | None = None) -> None:
        """Replace the script; request numbering restarts at 0 for it."""
        with self._lock:
            self._script = script
            self._then = then if then is not None else Ok()
            self._script_base = len(self.records)

    def requests(self) -> list[Record]:
        with self._lock:
            return list(self.records)

    def unique_ids(self) -> set[str]:
        with self._lock:
            return set(self.ids)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_for_requests(self, n: int, timeout_s: float = 5.0) -> bool:
        return self.wait_for(lambda: len(self.requests()) >= n, timeout_s)

    def wait_for_ids(self, ids: Iterable[str], timeout_s: float = 5.0) -> bool:
        wanted = set(ids)
        return self.wait_for(lambda: wanted <= self.unique_ids(), timeout_s)

    # ------------------------------------------------------------------ the rules

    def apply(self, body: bytes) -> tuple[int, dict[str, Any], int]:
        """The real server's rules: ``(status, answer, inserted)``; inserts on 200."""
        if self.max_body_bytes is not None and len(body) > self.max_body_bytes:
            return 413, {"detail": "Request body too large"}, 0
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return 422, {"detail": f"JSON decode error: {e}"}, 0
        events = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(events, list) or not events:
            return 422, {"detail": "events: a non-empty list is required"}, 0
        ids: list[str] = []
        for e in events:
            rid = e.get("run_id") if isinstance(e, dict) else None
            if not isinstance(rid, str) or not rid:
                return 422, {"detail": "events: each event needs a run_id"}, 0
            if rid.startswith("poison"):
                return 400, {"detail": f"Invalid RunEvent: run_id {rid!r} is poison"}, 0
            ids.append(rid)
        with self._lock:
            new = set(ids) - self.ids
            self.ids |= new
        return 200, {"inserted": len(new)}, len(new)

    # ------------------------------------------------------------------ internals

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                idx = self._connections
                self._connections += 1
                self._socks.append(conn)
            if self.blackhole:
                continue  # accepted, never read: the kernel buffers fill, then the client waits
            t = threading.Thread(target=self._serve, args=(conn, idx), daemon=True)
            t.start()
            self._threads.append(t)

    def _recv_until(self, conn: socket.socket, buf: bytearray, done: Callable[[], bool]) -> bool:
        while not done():
            if self._stop.is_set():
                return False
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return False
            if not chunk:
                return False
            buf += chunk
        return True

    def _serve(self, conn: socket.socket, idx: int) -> None:
        conn.settimeout(0.05)
        buf = bytearray()
        try:
            while not self._stop.is_set():
                if not self._recv_until(conn, buf, lambda: b"\r\n\r\n" in buf):
                    return
                head_end = buf.index(b"\r\n\r\n") + 4
                head = bytes(buf[:head_end]).decode("latin-1")
                del buf[:head_end]
                headers: dict[str, str] = {}
                for line in head.split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                if not self._handle(conn, idx, buf, length):
                    return
                if headers.get("connection", "").lower() == "close":
                    return
        except OSError:
            return
        finally:
            with self._lock:
                if conn in self._socks:
                    self._socks.remove(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _record(self, rec: Record, ids: list[str]) -> None:
        # Called with the lock held, so records stay in index order.
        self.records.append(rec)
        self.sent.update(ids)

    def _handle(self, conn: socket.socket, idx: int, buf: bytearray, length: int) -> bool:
        """Serves one request whose head is read; False when the connection is finished."""
        # The behaviour is chosen before the body is read (ResetMidBody needs that); the
        # ids are not known yet, so a callable script sees the ids only for full bodies.
        with self._lock:
            k = len(self.records) - self._script_base
            script = self._script
            if callable(script):
                behaviour: Behaviour | None = None
            else:
                behaviour = script[k] if k < len(script) else self._then
        if isinstance(behaviour, ResetMidBody):
            after = behaviour.after if behaviour.after is not None else length // 2
            self._recv_until(conn, buf, lambda: len(buf) >= after)
            with self._lock:
                self._record(
                    Record(len(self.records), idx, time.monotonic(), length, [], "reset_mid_body"),
                    [],
                )
            _rst(conn)
            return False
        if not self._recv_until(conn, buf, lambda: len(buf) >= length):
            return False
        body = bytes(buf[:length])
        del buf[:length]
        ids = _ids_of(body)
        with self._lock:
            index = len(self.records)
            if behaviour is None:
                assert callable(script)
                behaviour = script(index - self._script_base, ids)
            rec = Record(index, idx, time.monotonic(), length, ids, type(behaviour).__name__)
            self._record(rec, ids)
        if isinstance(behaviour, Ok):
            status, answer, inserted = self.apply(body)
            rec.status, rec.inserted = status, inserted
            conn.sendall(_response(status, json.dumps(answer).encode()))
            return True
        if isinstance(behaviour, Status):
            rec.status = behaviour.code
            payload = behaviour.body
            if payload is None:
                payload = json.dumps({"detail": f"scripted {behaviour.code}"}).encode()
            conn.sendall(_response(behaviour.code, payload, behaviour.headers))
            return True
        if isinstance(behaviour, CommitThenReset):
            _, _, rec.inserted = self.apply(body)
            _rst(conn)
            return False
        if isinstance(behaviour, Sleep):
            answer_status, answer, inserted = (0, {}, 0)
            if behaviour.commit_first:
                answer_status, answer, inserted = self.apply(body)
            gone = self._pause(conn, behaviour.seconds)
            if gone is not None:
                rec.client_gone_after = gone - rec.t
            if not behaviour.commit_first:
                answer_status, answer, inserted = self.apply(body)
            rec.inserted = inserted
            if gone is not None or self._stop.is_set():
                return False
            rec.status = answer_status
            conn.sendall(_response(answer_status, json.dumps(answer).encode()))
            return True
        raise AssertionError(f"unknown behaviour {behaviour!r}")

    def _pause(self, conn: socket.socket, seconds: float) -> float | None:
        """Waits ``seconds`` (or until stopped); returns when the client hung up, if it did."""
        deadline = time.monotonic() + seconds
        gone: float | None = None
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if gone is None:
                try:
                    readable, _, _ = select.select([conn], [], [], min(left, 0.02))
                except (OSError, ValueError):
                    readable = [conn]
                if readable:
                    try:
                        data = conn.recv(1, socket.MSG_PEEK)
                    except TimeoutError:
                        data = b"x"
                    except OSError:
                        data = b""
                    if not data:
                        gone = time.monotonic()
            else:
                self._stop.wait(min(left, 0.02))
        return gone
