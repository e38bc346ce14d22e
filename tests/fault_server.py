"""A scripted loopback TCP server that misbehaves on purpose (raw sockets, one thread each).

Every accepted connection gets the next script from ``scripts`` (the last one repeats). A
script is a list of steps; each step first reads one full HTTP request (head + body) from the
connection, records it, then acts:

* ``Respond(status, body, headers)`` — send a complete HTTP/1.1 response (keep-alive).
* ``Reset()`` — abort the connection with an RST (``SO_LINGER`` 0), no response.
* ``Close()`` — close gracefully (FIN), no response.
* ``Hang()`` — never answer (until the server stops).
* ``Partial(data)`` — send ``data`` (e.g. half a status line) and then hang.
* ``Drip(response, piece, interval)`` — send a response slowly, ``piece`` bytes at a time.
* ``Truncated(response, missing, reset)`` — send all but the last ``missing`` bytes of a
  response (its ``Content-Length`` promises more), then close (FIN, or RST with ``reset``).
* ``Generated(status, headers, length, chunks)`` — send a large response whose body is produced
  on the fly by ``chunks()`` (``length`` bytes in total), without holding it in memory.

Two steps act before the request body was read, so the client may still be sending it; the
request is recorded with the part of the body that was read:

* ``ResetEarly(body_bytes)`` — read the head and ``body_bytes`` of the body, then RST.
* ``Stall()`` — read the head, then neither read the body nor answer (a stalled upload; pass
  ``rcvbuf=`` to :class:`FaultServer` so the socket buffers fill up quickly).

When a script runs out of steps the connection is closed gracefully. ``peer_closed`` maps a
connection index to the monotonic time at which the client closed it (seen as EOF while waiting
for the next request). :func:`closed_port` returns a port where nothing listens (connection
refused).
"""

from __future__ import annotations

import http
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Seen:
    conn: int  # index of the connection (0-based, in accept order)
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Respond:
    status: int = 200
    body: bytes = b"{}"
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    reason: str | None = None

    @classmethod
    def json(cls, status: int, obj: Any, *extra: tuple[str, str]) -> Respond:
        return cls(status, json.dumps(obj).encode(), (("Content-Type", "application/json"), *extra))

    @classmethod
    def text(cls, status: int, text: str, *extra: tuple[str, str]) -> Respond:
        return cls(status, text.encode(), (("Content-Type", "text/plain; charset=utf-8"), *extra))

    def raw(self) -> bytes:
        reason = self.reason if self.reason is not None else http.HTTPStatus(self.status).phrase
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class Hang:
    pass


@dataclass(frozen=True)
class Partial:
    data: bytes = b"HTTP/1.1 200 OK\r\n"


@dataclass(frozen=True)
class Drip:
    """Send ``response`` a few bytes at a time, pausing ``interval`` seconds between pieces."""

    response: Respond
    piece: int = 1
    interval: float = 0.05
    head_at_once: bool = False  # send the status line and headers in one piece, drip the body


@dataclass(frozen=True)
class Truncated:
    """Send ``response`` without its last ``missing`` bytes, then close (RST with ``reset``)."""

    response: Respond
    missing: int = 10
    reset: bool = False


@dataclass(frozen=True)
class Generated:
    """A response of ``length`` body bytes produced by ``chunks()`` while it is sent."""

    status: int
    headers: tuple[tuple[str, str], ...]
    length: int
    chunks: Callable[[], Iterable[bytes]]

    def head(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {http.HTTPStatus(self.status).phrase}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines.append(f"Content-Length: {self.length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class ResetEarly:
    """Read the request head and ``body_bytes`` of its body, then abort with an RST."""

    body_bytes: int = 0


@dataclass(frozen=True)
class Stall:
    """Read the request head, then never read the body nor answer."""


Step = Respond | Reset | Close | Hang | Partial | Drip | Truncated | Generated | ResetEarly | Stall


def closed_port() -> int:
    """A loopback port with no listener (connect → ECONNREFUSED)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _rst(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@dataclass
class FaultServer:
    """Scripted misbehaving server; use as a context manager. ``url`` is its base URL."""

    scripts: Sequence[Sequence[Step]] = field(default_factory=lambda: [[Respond()]])
    rcvbuf: int | None = None  # SO_RCVBUF of accepted connections (small: uploads stall soon)

    def __post_init__(self) -> None:
        self.seen: list[Seen] = []
        self.connections = 0
        self.peer_closed: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf is not None:  # inherited by accepted sockets
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # -- lifecycle
    def start(self) -> FaultServer:
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_seen(self) -> int:
        with self._lock:
            return len(self.seen)

    def wait_for_requests(self, n: int, timeout_s: float = 2.0) -> int:
        """Wait until at least ``n`` requests were read (or timeout); return the count."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.requests_seen() < n:
            time.sleep(0.01)
        return self.requests_seen()

    # -- internals
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                idx = self.connections
                self.connections += 1
                self._socks.append(conn)
            script = self.scripts[min(idx, len(self.scripts) - 1)]
            t = threading.Thread(target=self._serve, args=(conn, idx, script), daemon=True)
            t.start()
            self._threads.append(t)

    def _read_request(
        self, conn: socket.socket, buf: bytearray, idx: int, body_limit: int | None = None
    ) -> bool:
        """Read one request (head, then at most ``body_limit`` body bytes) and record it."""
        conn.settimeout(0.05)
        while b"\r\n\r\n" not in buf:
            if self._stop.is_set():
                return False
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return False
            if not chunk:
                if not buf:
                    with self._lock:
                        self.peer_closed.setdefault(idx, time.monotonic())
                return False
            buf += chunk
        head_end = buf.index(b"\r\n\r\n") + 4
        head = bytes(buf[:head_end]).decode("latin-1")
        del buf[:head_end]
        request_line, *header_lines = head.split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0") or 0)
        if body_limit is not None:
            length = min(length, body_limit)
        while len(buf) < length:
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
        body = bytes(buf[:length])
        del buf[:length]
        parts = request_line.split(" ")
        method, target = (parts[0], parts[1]) if len(parts) >= 2 else (request_line, "")
        with self._lock:
            self.seen.append(Seen(idx, method, target, headers, body))
        return True

    def _serve(self, conn: socket.socket, idx: int, script: Sequence[Step]) -> None:
        buf = bytearray()
        try:
            for step in script:
                body_limit: int | None = None
                if isinstance(step, ResetEarly):
                    body_limit = step.body_bytes
                elif isinstance(step, Stall):
                    body_limit = 0
                if not self._read_request(conn, buf, idx, body_limit):
                    return
                if isinstance(step, Respond):
                    conn.sendall(step.raw())
                elif isinstance(step, Reset):
                    _rst(conn)
                    return
                elif isinstance(step, Close):
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                elif isinstance(step, Partial):
                    conn.sendall(step.data)
                    self._stop.wait()
                    return
                elif isinstance(step, Hang | Stall):
                    self._stop.wait()
                    return
                elif isinstance(step, ResetEarly):
                    _rst(conn)
                    return
                elif isinstance(step, Truncated):
                    raw = step.response.raw()
                    conn.sendall(raw[: len(raw) - step.missing])
                    if step.reset:
                        time.sleep(0.05)  # let the client read what was sent first
                        _rst(conn)
                    else:
                        conn.shutdown(socket.SHUT_RDWR)
                    return
                elif isinstance(step, Generated):
                    conn.settimeout(10.0)  # bounds each sendall: a stalled reader ends it
                    conn.sendall(step.head())
                    for chunk in step.chunks():
                        if self._stop.is_set():
                            return
                        conn.sendall(chunk)
                elif isinstance(step, Drip):
                    raw = step.response.raw()
                    if step.head_at_once:
                        split = raw.index(b"\r\n\r\n") + 4
                        conn.sendall(raw[:split])
                        raw = raw[split:]
                    for i in range(0, len(raw), step.piece):
                        if self._stop.wait(step.interval):
                            return
                        conn.sendall(raw[i : i + step.piece])
            # Script exhausted: close gracefully (the finally clause).
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass
