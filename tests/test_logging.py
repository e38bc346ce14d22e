"""Logging of the clients under the ``flightdeck_rs`` logger: retries and slow calls at
``WARNING``, nothing for a plain fast call, nothing above ``WARNING``, never the token.

Native and injected-``httpx`` paths, sync and async.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flightdeck_rs import AsyncFlightdeckClient, FlightdeckClient, helpers

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cr3t-token-for-logging-test"
HEALTH = b'{"status":"ok","mutation_auth":"open","read_auth":"open"}'


@contextlib.contextmanager
def slow_server(delay_s: float) -> Iterator[str]:
    """Answers every request to ``/health`` after ``delay_s``."""
    sock = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                got = conn.recv(65536)
                if not got:
                    return
                data += got
            time.sleep(delay_s)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(HEALTH), HEALTH)
            )

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        sock.close()


def refused_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def make(face: str, path: str, url: str, **kw: Any) -> Any:
    if face == "sync":
        client = httpx.Client() if path == "injected" else None
        return FlightdeckClient(url, api_token=TOKEN, client=client, **kw)
    aclient = httpx.AsyncClient() if path == "injected" else None
    return AsyncFlightdeckClient(url, api_token=TOKEN, client=aclient, **kw)


def call_health(face: str, client: Any) -> Any:
    if face == "sync":
        with client:
            return client.health()

    async def main() -> Any:
        async with client:
            return await client.health()

    return asyncio.run(main())


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("flightdeck_rs")]


def assert_no_token(records: list[logging.LogRecord]) -> None:
    for r in records:
        assert TOKEN not in r.getMessage()
        assert r.levelno <= logging.WARNING


FACES = [(f, p) for f in ("sync", "async") for p in ("native", "injected")]


@pytest.mark.parametrize(("face", "path"), FACES)
def test_retries_are_logged_at_warning(
    face: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flightdeck_rs")
    client = make(face, path, refused_url(), max_retries=2, retry_backoff_s=0.01)
    with pytest.raises(httpx.ConnectError):
        call_health(face, client)
    records = ours(caplog)
    retries = [r for r in records if "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.WARNING] * 2, records
    first = retries[0].getMessage()
    assert first.startswith("retrying GET /health after ConnectError"), first
    assert "attempt 1 of 3 failed" in first and "attempt 2 of 3 failed" in retries[1].getMessage()
    assert_no_token(records)


@pytest.mark.parametrize(("face", "path"), FACES)
def test_slow_calls_are_logged_at_warning(
    face: str, path: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="flightdeck_rs")
    monkeypatch.setattr(helpers, "SLOW_REQUEST_S", 0.2)
    with slow_server(0.4) as url:
        assert call_health(face, make(face, path, url))["status"] == "ok"
    records = ours(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    msg = records[0].getMessage()
    assert records[0].levelno == logging.WARNING
    assert msg.startswith("slow request: GET /health took"), msg
    assert msg.endswith("(1 attempt(s), status 200)"), msg
    assert_no_token(records)


@pytest.mark.parametrize(("face", "path"), FACES)
def test_a_fast_call_logs_nothing(
    face: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flightdeck_rs")
    with slow_server(0.0) as url:
        assert call_health(face, make(face, path, url))["status"] == "ok"
    assert ours(caplog) == []


def test_the_threshold_is_read_when_the_client_is_created(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="flightdeck_rs")
    with slow_server(0.3) as url:
        client = FlightdeckClient(url)  # default threshold (5 s): not slow
        monkeypatch.setattr(helpers, "SLOW_REQUEST_S", 0.1)
        call_health("sync", client)
        assert ours(caplog) == []
        call_health("sync", FlightdeckClient(url))
        assert len(ours(caplog)) == 1


def test_a_failing_log_handler_never_breaks_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside the logging path is reported as unraisable, not raised."""
    from flightdeck_rs import _logging

    def boom(*_: Any) -> None:
        raise RuntimeError("handler failed")

    monkeypatch.setattr(_logging, "retry", boom)
    unraisable: list[Any] = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)
    client = FlightdeckClient(refused_url(), max_retries=1, retry_backoff_s=0.0)
    with pytest.raises(httpx.ConnectError):
        call_health("sync", client)
    assert len(unraisable) == 1 and isinstance(unraisable[0].exc_value, RuntimeError)
