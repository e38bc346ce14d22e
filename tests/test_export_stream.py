"""Streaming the NDJSON export: ``iter_runs_export`` reads each page as it arrives and
validates it line by line in Rust, so a page of any size is held one chunk at a time.

A loopback server sends one export page (``X-Flightdeck-Truncated: false``) generated on the
fly with chunked transfer encoding, in chunks that cut lines anywhere; it can end the body
with an invalid line or a connection reset. The real-server walk over several pages is in
``test_helpers_cli.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from flightdeck_rs import AsyncFlightdeckClient, FlightdeckClient, RunEvent, ValidationError

pytestmark = pytest.mark.timeout(120)

TEMPLATE = {
    "agent_id": "agent_support",
    "api_version": "v1",
    "environment": "local",
    "labels": {"k": "v"},
    "metrics": {"error_type": None, "latency_ms": 1200, "success": True},
    "release_id": "rel_stream",
    "request": None,
    "run_id": "RUNID",
    "task_id": "task_support",
    "tenant_id": "tenant_acme",
    "timestamp": "2026-11-28T09:27:12Z",
    "type": "run_end",
    "usage": {
        "model": {
            "cached_input_tokens": 0,
            "input_tokens": 1000,
            "model": "gpt-4.1-mini",
            "output_tokens": 500,
            "provider": "openai",
        },
        "tools": [],
    },
    "workspace_id": "ws_local",
}


def export_line(i: int, pad: int = 0) -> bytes:
    event = dict(TEMPLATE, run_id=f"run-{i:09d}")
    if pad:
        event["labels"] = {"pad": "x" * pad}
    return json.dumps(event, sort_keys=True).encode() + b"\n"


@dataclass
class Page:
    n: int
    pad: int = 0
    chunk: int = 7919  # a prime: chunk borders fall anywhere in a line
    bad_after: int | None = None  # an invalid line after this many events
    reset_after: int | None = None  # the connection is reset after this many events


class ExportServer:
    """Serves ``GET /v1/runs/export`` with the configured page, once per connection."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _body(self) -> Iterator[bytes]:
        p = self.page
        buf = bytearray()
        for i in range(p.n):
            if p.bad_after is not None and i == p.bad_after:
                buf += b'{"run_id": "broken", "timestamp": \n'
            if p.reset_after is not None and i == p.reset_after:
                if buf:
                    yield bytes(buf)
                time.sleep(0.5)  # let the client read what was sent (a reset discards it)
                raise ConnectionResetError
            buf += export_line(i, p.pad)
            while len(buf) >= p.chunk:
                yield bytes(buf[: p.chunk])
                del buf[: p.chunk]
        if buf:
            yield bytes(buf)

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                got = conn.recv(65536)
                if not got:
                    return
                data += got
            self.requests += 1
            head = (
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n"
                f"x-flightdeck-matched-total: {self.page.n}\r\n"
                f"x-flightdeck-returned: {self.page.n}\r\nx-flightdeck-offset: 0\r\n"
                "x-flightdeck-truncated: false\r\ntransfer-encoding: chunked\r\n"
                "connection: close\r\n\r\n"
            )
            try:
                conn.sendall(head.encode())
                for part in self._body():
                    conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                conn.sendall(b"0\r\n\r\n")
            except ConnectionResetError:
                linger_zero = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # close() sends a reset
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@contextlib.contextmanager
def export_server(page: Page) -> Iterator[ExportServer]:
    srv = ExportServer(page)
    try:
        yield srv
    finally:
        srv.close()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples this process's RSS every 5 ms in a thread; ``growth`` is peak minus start."""

    def __init__(self) -> None:
        self.start = rss_bytes()
        self.peak = self.start
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        return self.peak - self.start


def test_a_100_mb_page_streams_in_bounded_memory() -> None:
    """One page of ~100 MB (pydantic-sized events padded to ~2 KB): every event arrives, in
    order and equal to a ``model_validate_json`` of its line, and memory grows by a small
    fraction of the body (the whole body held at once would be 100 MB of bytes alone)."""
    n, pad = 50_000, 1_700
    body_size = sum(len(export_line(i, pad)) for i in range(0, n, 997)) * n // len(range(0, n, 997))
    assert body_size > 95_000_000
    with export_server(Page(n=n, pad=pad)) as srv, FlightdeckClient(srv.url) as client:
        probe = PeakRss()
        count = 0
        first: RunEvent | None = None
        for event in client.iter_runs_export(release_id="rel_stream", window="7d"):
            assert event.run_id == f"run-{count:09d}"
            if first is None:
                first = event
            count += 1
            del event
        growth = probe.growth
    assert count == n
    assert first == RunEvent.model_validate_json(export_line(0, pad))
    assert srv.requests == 1
    assert growth < 40 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB for a 100 MB body"


def test_async_stream_yields_while_the_page_arrives() -> None:
    n = 3_000

    async def main() -> list[str]:
        with export_server(Page(n=n, chunk=1013)) as srv:
            async with AsyncFlightdeckClient(srv.url) as client:
                return [
                    e.run_id
                    async for e in client.iter_runs_export(release_id="rel_stream", window="7d")
                ]

    assert asyncio.run(main()) == [f"run-{i:09d}" for i in range(n)]


@pytest.mark.parametrize("face", ["sync", "async"])
def test_an_invalid_line_raises_after_the_events_before_it(face: str) -> None:
    with export_server(Page(n=1_000, bad_after=600)) as srv:
        got: list[str] = []
        with pytest.raises(ValidationError) as info:
            if face == "sync":
                with FlightdeckClient(srv.url) as client:
                    for e in client.iter_runs_export(release_id="rel_stream", window="7d"):
                        got.append(e.run_id)
            else:

                async def main() -> None:
                    async with AsyncFlightdeckClient(srv.url) as client:
                        async for e in client.iter_runs_export(
                            release_id="rel_stream", window="7d"
                        ):
                            got.append(e.run_id)

                asyncio.run(main())
    assert got == [f"run-{i:09d}" for i in range(600)]
    assert info.value.errors()[0]["type"] == "json_invalid"
    assert "while reading event #600 of GET /v1/runs/export" in "\n".join(
        getattr(info.value, "__notes__", [])
    )


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_reset_mid_body_raises_a_read_error_after_the_events_received(face: str) -> None:
    with export_server(Page(n=2_000, reset_after=1_500, chunk=4096)) as srv:
        got: list[str] = []
        started = time.monotonic()
        with pytest.raises(httpx.RequestError) as info:
            if face == "sync":
                with FlightdeckClient(srv.url, timeout_s=5) as client:
                    for e in client.iter_runs_export(release_id="rel_stream", window="7d"):
                        got.append(e.run_id)
            else:

                async def main() -> None:
                    async with AsyncFlightdeckClient(srv.url, timeout_s=5) as client:
                        async for e in client.iter_runs_export(
                            release_id="rel_stream", window="7d"
                        ):
                            got.append(e.run_id)

                asyncio.run(main())
    assert isinstance(info.value, httpx.ReadError | httpx.RemoteProtocolError), repr(info.value)
    assert time.monotonic() - started < 5
    assert got == [f"run-{i:09d}" for i in range(len(got))]
    assert 1_000 <= len(got) <= 1_500  # what arrived before the reset, nothing invented


def test_the_stream_object_reports_lines_and_headers() -> None:
    with export_server(Page(n=10)) as srv, FlightdeckClient(srv.url) as client:
        stream = client._open_runs_export(release_id="rel_stream", window="7d")
        assert stream.export_headers() == {
            "X-Flightdeck-Matched-Total": "10",
            "X-Flightdeck-Returned": "10",
            "X-Flightdeck-Offset": "0",
            "X-Flightdeck-Truncated": "false",
        }
        first = stream.next_batch(4)
        assert [e.run_id for e in first] == [f"run-{i:09d}" for i in range(4)]
        pairs: list[Any] = stream.next_batch(100, True)
        assert [line for line, _ in pairs] == [export_line(i).strip() for i in range(4, 10)]
        assert stream.next_batch(100) == []
        assert stream.returned == 10
        stream.close()
        assert stream.returned == 10
        with pytest.raises(ValueError, match="max_events"):
            stream.next_batch(0)
