"""Response bodies are read exactly as ``json.loads`` reads them, on both clients.

The async client decodes a 2xx body on the event loop's thread with the ``json`` module's
own scanner, and hands every case the scanner alone does not settle (leading text, a byte
order mark, bytes that are not UTF-8, a scan error) to ``json.loads``. Each body below is
served by a scripted loopback server; the value, or the exception's type and text, must be
``json.loads(body)``'s.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fault_server import FaultServer, Respond
from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

BODIES = [
    b'{"status": "ok"}',
    b'  {"status": "ok"}',
    b'{"status": "ok"}  \r\n\t',
    b'{"caf\xc3\xa9": "\xe2\x82\xac", "n": [1, 2.5, -0.0]}',
    b'{"caf\xc3\xa9": "\xe2\x82\xac"}  \n',
    b'{"caf\xc3\xa9": 1} x',
    b'\xef\xbb\xbf{"bom": true}',
    b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'{"big": 123456789012345678901234567890, "e": 1e400}',
    b'{"a": 1, "a": 2}',
    b'"just text"',
    b'{"s": "\\ud800"}',
    b"[1, 2] x",
    b'{"a":',
    b"",
    b"\xff\xfe{}",
    b"{}\x00",
]


def _outcome(f: Any) -> tuple[str, str]:
    try:
        return ("value", repr(f()))
    except Exception as exc:  # noqa: BLE001 - compared as type and text
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_body_decoded_as_json_loads(body: bytes) -> None:
    want = _outcome(lambda: json.loads(body))
    with FaultServer([[Respond(200, body)] * 2]) as fs:
        with FlightdeckClient(fs.url) as client:
            assert _outcome(client.health) == want

        async def call() -> Any:
            async with AsyncFlightdeckClient(fs.url) as client:
                return await client.health()

        assert _outcome(lambda: asyncio.run(call())) == want


def test_error_status_is_the_same_status_error() -> None:
    body = b'{"detail": "no such release"}'
    with FaultServer([[Respond(404, body)] * 2]) as fs:
        with FlightdeckClient(fs.url) as client:
            try:
                client.health()
            except Exception as exc:  # noqa: BLE001
                sync_exc = exc

        async def call() -> Any:
            async with AsyncFlightdeckClient(fs.url) as client:
                return await client.health()

        try:
            asyncio.run(call())
        except Exception as exc:  # noqa: BLE001
            async_exc = exc
    assert type(async_exc) is type(sync_exc)
    assert str(async_exc) == str(sync_exc)
    assert async_exc.response.status_code == 404  # type: ignore[attr-defined]
    assert async_exc.response.content == body  # type: ignore[attr-defined]
