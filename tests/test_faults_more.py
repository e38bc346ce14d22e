"""The fault suite of the reliability issue, on both clients and both transports.

Every fault runs against a scripted loopback server (``fault_server.py``) for
{``FlightdeckClient``, ``AsyncFlightdeckClient``} × {native transport, injected ``httpx`` client}
× {reference ``flightdeck.sdk``, ours}. The expected exception types were observed on the
reference (httpx 0.28 / httpcore 1.0) and are asserted for both implementations, so ours must
raise exactly what the reference raises. ``test_errors.py`` holds the older native-path cases
(refused, reset, close, status errors, retry counts); this file adds the injected path, faults
during the upload of a large body, dripped responses, truncated and undecodable bodies, a stalled
upload, closing a client with a call in flight, non-ASCII response headers and a 100 MB export.

The one intended difference (README, "Compatibility notes"): ours never re-sends
``post_promote`` / ``post_rollback`` / ``post_promote_request`` / ``post_promote_confirm`` once
the request reached the server, whatever the fault; the reference re-sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ClientFace, Impl, load_impl, make_event, open_client
from fault_server import (
    Close,
    Drip,
    FaultServer,
    Generated,
    Hang,
    Reset,
    ResetEarly,
    Respond,
    Stall,
    Step,
    Truncated,
    closed_port,
)

pytestmark = pytest.mark.timeout(60)

PATHS = ("native", "injected")
TIMEOUT = 0.25  # timeout_s of the clients in this file
MARGIN = 1.5  # "nothing hangs past the timeout": generous, the machine is shared
BIG = 8_000_000  # bytes of a large request body: more than the client's send buffer (4 MiB)
SMALL_RCVBUF = 65_536  # the fault server's receive buffer for upload faults


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def session(
    impl: Impl, face: str, path: str, url: str, *, timeout_s: float = TIMEOUT, **kwargs: Any
) -> Iterator[ClientFace]:
    """A client of ``impl`` on ``face``; on the injected path it sends through an httpx client
    with the same timeout (closed afterwards, on the face's event loop)."""
    injected: httpx.Client | httpx.AsyncClient | None = None
    if path == "injected":
        if face == "sync":
            injected = httpx.Client(timeout=timeout_s)
        else:
            injected = httpx.AsyncClient(timeout=timeout_s)
        kwargs["client"] = injected
    client = open_client(impl, face, url, timeout_s=timeout_s, **kwargs)
    try:
        yield client
    finally:
        try:
            if isinstance(injected, httpx.Client):
                injected.close()
            elif isinstance(injected, httpx.AsyncClient):
                client.run(injected.aclose())
        finally:
            client.close()


# ----------------------------------------------------------------------------- call arguments


@functools.cache
def big_events(impl_name: str) -> list[Any]:
    """2 000 events padded to ~4 KB each: one ingest request of ~8.5 MB."""
    impl = load_impl(impl_name)
    return [make_event(impl.RunEvent, "rel_big", labels={"pad": "p" * 4_000}) for _ in range(2_000)]


def call_args(impl: Impl, method: str, big: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``method``; ``big`` makes the request body ~8 MB."""
    reason = "r" * BIG if big else "x"
    if method in ("ingest_run_events", "ingest_run_events_batch"):
        events = big_events(impl.name) if big else [make_event(impl.RunEvent, "rel_x")]
        extra = {"chunk_size": len(events)} if method == "ingest_run_events_batch" else {}
        return {"events": events, **extra}
    promote = {"release_id": "r", "environment": "e", "window": "1h", "reason": reason}
    return {
        "health": {},
        "list_promoted": {},
        "list_runs": {"release_id": "rel_x", "window": "1h"},
        "post_diff": {"baseline_release_id": "a", "candidate_release_id": "b", "window": "1h"},
        "post_promote": promote,
        "post_rollback": promote,
        "post_promote_request": promote,
        "post_promote_confirm": {"request_id": "prq_x", "approval_reason": reason},
    }[method]


def call_error(client: ClientFace, method: str, kwargs: dict[str, Any]) -> tuple[Exception, float]:
    """Call ``method``, which must raise; return the exception and the elapsed seconds."""
    start = time.monotonic()
    with pytest.raises(Exception) as info:  # noqa: B017 - the type is asserted by callers
        client.call(method, **kwargs)
    assert isinstance(info.value, Exception)
    return info.value, time.monotonic() - start


def settle(fs: FaultServer, at_least: int) -> int:
    """Requests the fault server read, after giving late retries time to arrive."""
    fs.wait_for_requests(at_least)
    time.sleep(0.05)
    return fs.requests_seen()


# ----------------------------------------------------------------------------- the fault matrix

OK_JSON = Respond.json(200, {"status": "ok", "pad": "y" * 40})


@dataclass(frozen=True)
class Fault:
    script: list[list[Step]] | None  # None: connection refused
    method: str
    expected: dict[str, type[Exception]]  # by face, as observed on the reference
    big: bool = False  # ~8 MB request body
    rcvbuf: int | None = None
    timeout: bool = False  # the failure is a timeout: bounded by timeout_s, not immediate
    reached: bool = True  # the request (at least its head) reached the server


def both(exc: type[Exception]) -> dict[str, type[Exception]]:
    return {"sync": exc, "async": exc}


# While the client is still uploading, an RST makes its send fail. httpcore swallows the write
# error and reads the response: the sync backend then reads EOF (RemoteProtocolError "Server
# disconnected without sending a response."), the async one a ReadError. The small receive
# buffer keeps the client blocked in send when the reset arrives, so this is deterministic.
UPLOAD_RESET = {"sync": httpx.RemoteProtocolError, "async": httpx.ReadError}

FAULTS: dict[str, Fault] = {
    "refused": Fault(None, "post_rollback", both(httpx.ConnectError), reached=False),
    "reset-before-body": Fault(
        [[ResetEarly(0)]], "post_promote", UPLOAD_RESET, big=True, rcvbuf=SMALL_RCVBUF
    ),
    "reset-mid-body": Fault(
        [[ResetEarly(2_000_000)]],
        "ingest_run_events_batch",
        UPLOAD_RESET,
        big=True,
        rcvbuf=SMALL_RCVBUF,
    ),
    "reset-after-body": Fault([[Reset()]], "ingest_run_events_batch", both(httpx.ReadError), True),
    # Each piece arrives after more than timeout_s: a ReadTimeout for both, although ours bounds
    # the status line and headers as a whole and httpx each read (README).
    "slow-headers": Fault(
        [[Drip(OK_JSON, piece=10, interval=2 * TIMEOUT)]],
        "list_runs",
        both(httpx.ReadTimeout),
        timeout=True,
    ),
    "slow-body": Fault(
        [[Drip(OK_JSON, piece=4, interval=2 * TIMEOUT, head_at_once=True)]],
        "health",
        both(httpx.ReadTimeout),
        timeout=True,
    ),
    "truncated-json": Fault([[Truncated(OK_JSON)]], "list_runs", both(httpx.RemoteProtocolError)),
    "truncated-json-reset": Fault(
        [[Truncated(OK_JSON, reset=True)]], "health", both(httpx.ReadError)
    ),
    "200-html": Fault(
        [[Respond(200, b"<html><body>ok</body></html>", (("Content-Type", "text/html"),))]],
        "list_promoted",
        both(json.JSONDecodeError),
    ),
    "invalid-utf8": Fault(
        [[Respond(200, b'{"status": "caf\xe9 \xff\xfe"}')]],
        "post_rollback",
        both(UnicodeDecodeError),
    ),
    "redirect-302": Fault(
        [[Respond(302, b"", (("Location", "/elsewhere"),)), OK_JSON]],
        "post_promote_confirm",
        both(httpx.HTTPStatusError),
    ),
    "never-answers": Fault([[Hang()]], "post_promote", both(httpx.ReadTimeout), timeout=True),
    "stalled-upload": Fault(
        [[Stall()]],
        "ingest_run_events_batch",
        both(httpx.WriteTimeout),
        big=True,
        rcvbuf=SMALL_RCVBUF,
        timeout=True,
    ),
}


@contextlib.contextmanager
def fault_url(fault: Fault) -> Iterator[FaultServer | None]:
    if fault.script is None:
        yield None
        return
    with FaultServer(fault.script, rcvbuf=fault.rcvbuf) as fs:
        yield fs


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(
    request: pytest.FixtureRequest, impl: Impl, face: str, path: str, name: str
) -> None:
    """Each fault raises exactly the reference's exception type, promptly, after one request."""
    fault = FAULTS[name]
    kwargs = call_args(impl, fault.method, fault.big)
    with fault_url(fault) as fs:
        url = fs.url if fs is not None else f"http://127.0.0.1:{closed_port()}"
        with session(impl, face, path, url) as client:
            exc, elapsed = call_error(client, fault.method, kwargs)
        # max_retries=0: no late request can come, the one that failed was recorded already
        seen = fs.wait_for_requests(1) if fs is not None else 0
    assert type(exc) is fault.expected[face], f"{type(exc).__name__}: {exc}"
    assert elapsed < (TIMEOUT if fault.timeout else 0) + MARGIN
    if fault.timeout:
        assert elapsed >= TIMEOUT * 0.9  # waited for the timeout, did not give up early
    assert seen == (1 if fault.reached else 0)
    if isinstance(exc, httpx.RequestError | httpx.HTTPStatusError):
        assert isinstance(exc.request, httpx.Request)
        assert str(exc.request.url).startswith(url)
    if isinstance(exc, httpx.HTTPStatusError):
        assert exc.response.status_code == 302
        assert exc.response.headers["location"] == "/elsewhere"


# ----------------------------------------------------------------------------- no second send

# The transport faults after which the request had reached the server.
RESEND_FAULTS = {
    name: fault
    for name, fault in FAULTS.items()
    if fault.reached and issubclass(fault.expected["sync"], httpx.RequestError)
}
RESEND_FAULTS["close"] = Fault([[Close()]], "post_promote", both(httpx.RemoteProtocolError))


def resend_case(name: str) -> tuple[Fault, bool]:
    """The fault and whether its request body must be large (upload faults)."""
    fault = RESEND_FAULTS[name]
    return fault, fault.big


ACTION_TARGETS = {
    "post_promote": "/v1/promote",
    "post_rollback": "/v1/rollback",
    "post_promote_request": "/v1/promote/request",
    "post_promote_confirm": "/v1/promote/confirm",
}


def call_all_at_once(client: ClientFace, calls: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run every ``method(**kwargs)`` of ``calls`` concurrently (threads on the sync face, one
    ``gather`` on the async face); returns each result or exception by method."""
    if client.face == "sync":
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = {m: pool.submit(client.call, m, **kw) for m, kw in calls.items()}
        return {m: f.exception() or f.result() for m, f in futures.items()}

    async def gather() -> list[Any]:
        coros = [getattr(client.client, m)(**kw) for m, kw in calls.items()]
        return await asyncio.gather(*coros, return_exceptions=True)

    return dict(zip(calls, client.run(gather()), strict=True))


@pytest.mark.parametrize("name", list(RESEND_FAULTS))
def test_actions_reaching_the_server_are_never_sent_twice(face: str, path: str, name: str) -> None:
    """With ``max_retries=2``, ours sends each audit action (promote, rollback, promote request,
    promote confirm; all four at once, one connection each) exactly once when the request
    reached the server, and raises the reference's exception type."""
    ours = load_impl("ours")
    fault, big = resend_case(name)
    calls = {method: call_args(ours, method, big) for method in ACTION_TARGETS}
    with FaultServer(fault.script or [], rcvbuf=fault.rcvbuf) as fs:
        with session(ours, face, path, fs.url, max_retries=2, retry_backoff_s=0.01) as client:
            start = time.monotonic()
            results = call_all_at_once(client, calls)
            elapsed = time.monotonic() - start
        settle(fs, len(calls))
        targets = sorted(s.target for s in fs.seen)
    assert targets == sorted(ACTION_TARGETS.values())  # each exactly once
    assert fs.connections == len(calls)
    for method, exc in results.items():
        assert isinstance(exc, httpx.RequestError), (method, exc)
        if not (face == "sync" and path == "native" and fault.expected is UPLOAD_RESET):
            assert type(exc) is fault.expected[face], (method, repr(exc))
    assert elapsed < (TIMEOUT if fault.timeout else 0) + MARGIN


def test_refused_actions_are_still_retried(face: str, path: str) -> None:
    """A refused connection never reached the server: ours retries actions then, with backoff."""
    ours = load_impl("ours")
    url = f"http://127.0.0.1:{closed_port()}"
    with session(ours, face, path, url, max_retries=2, retry_backoff_s=0.05) as client:
        exc, elapsed = call_error(client, "post_promote", call_args(ours, "post_promote"))
    assert type(exc) is httpx.ConnectError
    assert 0.15 <= elapsed < 0.15 + MARGIN  # slept 0.05 + 0.1 between three attempts


@pytest.mark.parametrize("name", [n for n, f in RESEND_FAULTS.items() if not f.timeout])
def test_reference_resends_actions(face: str, name: str) -> None:
    """Control for the test above: the same faults make the reference send ``post_promote``
    three times (so the fault server would see a second send if ours made one)."""
    reference = load_impl("reference")
    fault, big = resend_case(name)
    kwargs = call_args(reference, "post_promote", big)
    with FaultServer(fault.script or [], rcvbuf=fault.rcvbuf) as fs:
        with session(reference, face, "native", fs.url, max_retries=2, retry_backoff_s=0.01) as c:
            exc, _ = call_error(c, "post_promote", kwargs)
        assert settle(fs, 3) == 3
    assert isinstance(exc, httpx.RequestError)


@pytest.mark.parametrize("method", ["post_promote", "post_rollback"])
def test_action_on_a_kept_alive_connection_reset_after_500(
    face: str, path: str, method: str
) -> None:
    """After a 500 the real server resets the kept-alive connection. The next action on it
    reached the server (the fault server read it) and is not re-sent, although retries are on."""
    ours = load_impl("ours")
    script: list[list[Step]] = [
        [Respond.text(500, "Internal Server Error"), Reset()],
        [Respond.json(200, {"ok": 1})],
    ]
    kwargs = call_args(ours, method)
    with FaultServer(script) as fs:
        with session(ours, face, path, fs.url, max_retries=2, retry_backoff_s=0.01) as client:
            with pytest.raises(httpx.HTTPStatusError) as first:
                client.call(method, **kwargs)
            assert first.value.response.status_code == 500
            assert first.value.response.text == "Internal Server Error"
            exc, _ = call_error(client, method, kwargs)
            assert type(exc) is httpx.ReadError
            assert settle(fs, 2) == 2
            assert client.call(method, **kwargs) == {"ok": 1}
        assert (fs.connections, settle(fs, 3)) == (2, 3)


def test_500_then_reset_on_kept_alive_connection(impl: Impl, face: str, path: str) -> None:
    """``max_retries=0``: the 500, then a ReadError on the reset connection, then success."""
    script: list[list[Step]] = [
        [Respond.text(500, "Internal Server Error"), Reset()],
        [Respond.json(200, {"ok": 1})],
    ]
    with FaultServer(script) as fs, session(impl, face, path, fs.url) as client:
        with pytest.raises(httpx.HTTPStatusError) as first:
            client.health()
        assert first.value.response.status_code == 500
        with pytest.raises(json.JSONDecodeError):
            first.value.response.json()
        exc, _ = call_error(client, "health", {})
        assert type(exc) is httpx.ReadError
        assert client.health() == {"ok": 1}
        assert (fs.connections, settle(fs, 3)) == (2, 3)


# ----------------------------------------------------------------------------- closing


def test_close_ends_the_kept_alive_connection(impl: Impl, face: str, path: str) -> None:
    """``close()`` / ``aclose()`` of an owned client closes its kept-alive socket at once (the
    server sees EOF); with an injected client the connection stays open until that client is
    closed (the wrapper does not close what it does not own)."""
    injected: httpx.Client | httpx.AsyncClient | None = None
    if path == "injected":
        injected = httpx.Client(timeout=5.0) if face == "sync" else httpx.AsyncClient(timeout=5)
    script: list[list[Step]] = [[Respond.json(200, {"ok": 1}), Respond.json(200, {"ok": 2})]]
    with FaultServer(script) as fs:
        client = open_client(impl, face, fs.url, client=injected)
        try:
            assert client.health() == {"ok": 1}
            time.sleep(0.1)
            assert fs.peer_closed == {}  # kept alive
            closed_at = time.monotonic()
            if face == "sync":
                client.client.close()
            else:
                client.run(client.client.aclose())
            if injected is not None:
                time.sleep(0.2)
                assert fs.peer_closed == {}, "closing the wrapper closed the injected client"
                if isinstance(injected, httpx.Client):
                    injected.close()
                else:
                    client.run(injected.aclose())
            deadline = time.monotonic() + MARGIN
            while 0 not in fs.peer_closed and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            client.close()
        assert fs.connections == 1
    assert 0 in fs.peer_closed, "the server never saw the connection closed"
    assert fs.peer_closed[0] - closed_at < MARGIN


def test_aclose_ends_calls_in_flight(impl: Impl, path: str) -> None:
    """Closing the async client that owns the connection while a call waits on it ends that
    call with ``ReadError`` at once (not at the timeout). On the injected path the owner is
    the injected ``httpx.AsyncClient``."""

    async def scenario(fs: FaultServer) -> tuple[BaseException | None, float]:
        injected = httpx.AsyncClient(timeout=5.0) if path == "injected" else None
        client = impl.AsyncFlightdeckClient(fs.url, timeout_s=5.0, client=injected)
        task = asyncio.ensure_future(client.health())
        while fs.requests_seen() < 1:
            await asyncio.sleep(0.005)
        start = time.monotonic()
        await client.aclose()
        if injected is not None:
            await injected.aclose()
        error: BaseException | None = None
        try:
            await asyncio.wait_for(task, 5 + MARGIN)
        except Exception as exc:  # noqa: BLE001 - asserted below
            error = exc
        return error, time.monotonic() - start

    with FaultServer([[Hang()]]) as fs:
        error, elapsed = asyncio.run(scenario(fs))
    assert type(error) is httpx.ReadError, repr(error)
    assert isinstance(error, httpx.ReadError)
    assert isinstance(error.request, httpx.Request)
    assert elapsed < MARGIN


def test_sync_close_with_a_call_in_flight(impl: Impl) -> None:
    """``close()`` from another thread while a call waits: the call raises ``ReadError``
    (the reference when its read times out, on the closed socket), never hangs."""
    timeout_s = 1.0
    with FaultServer([[Hang()]]) as fs:
        client = impl.FlightdeckClient(fs.url, timeout_s=timeout_s)
        errors: list[tuple[BaseException, float]] = []

        def call() -> None:
            try:
                client.health()
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append((exc, time.monotonic()))

        thread = threading.Thread(target=call)
        thread.start()
        fs.wait_for_requests(1)
        start = time.monotonic()
        client.close()
        thread.join(timeout_s + 2 * MARGIN)
        assert not thread.is_alive()
    assert len(errors) == 1
    exc, ended = errors[0]
    assert type(exc) is httpx.ReadError, repr(exc)
    assert ended - start < timeout_s + MARGIN


# ----------------------------------------------------------------------------- response headers

LATIN1 = "caf\xe9"  # sent as the single byte 0xE9
UTF8 = "café".encode().decode("latin-1")  # sent as the UTF-8 bytes C3 A9
HEADER_CASES: dict[str, tuple[tuple[tuple[str, str], ...], dict[str, str]]] = {
    # name: (headers sent, export headers returned); httpx decodes all header values of a
    # response as ASCII, else UTF-8, else (one undecodable value is enough) ISO-8859-1.
    "latin-1": (
        (("X-Flightdeck-Offset", LATIN1), ("X-Flightdeck-Truncated", "false")),
        {"X-Flightdeck-Offset": "café", "X-Flightdeck-Truncated": "false"},
    ),
    "utf-8": (
        (("X-Flightdeck-Offset", UTF8), ("X-Flightdeck-Truncated", "false")),
        {"X-Flightdeck-Offset": "café", "X-Flightdeck-Truncated": "false"},
    ),
    "mixed": (
        (("X-Flightdeck-Offset", LATIN1), ("X-Other", UTF8), ("X-Flightdeck-Returned", UTF8)),
        {"X-Flightdeck-Offset": "café", "X-Flightdeck-Returned": "cafÃ©"},
    ),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_non_ascii_response_headers(impl: Impl, face: str, path: str, case: str) -> None:
    """Export headers and a status error's ``response.headers`` decode non-ASCII header bytes
    exactly like httpx does."""
    sent, expected = HEADER_CASES[case]
    ndjson = (("Content-Type", "application/x-ndjson"), *sent)
    script: list[list[Step]] = [[Respond(200, b"{}\n", ndjson), Respond(409, b"{}\n", ndjson)]]
    with FaultServer(script) as fs, session(impl, face, path, fs.url) as client:
        kwargs = {"release_id": "rel_x", "window": "1h"}
        body, headers = client.fetch_runs_export_ndjson(**kwargs)
        assert (body, headers) == (b"{}\n", expected)
        exc, _ = call_error(client, "fetch_runs_export_ndjson", kwargs)
    assert isinstance(exc, httpx.HTTPStatusError)
    got = exc.response.headers
    encoding = "iso-8859-1" if case == "mixed" or case == "latin-1" else "utf-8"
    assert got.encoding == encoding
    for key, value in sent:
        assert got[key] == value.encode("latin-1").decode(encoding)
    assert [(k.lower(), v) for k, v in got.raw] == [
        (k.lower().encode(), v.encode("latin-1")) for k, v in (*ndjson, ("Content-Length", "3"))
    ]


# ----------------------------------------------------------------------------- 100 MB export

EXPORT_LINE = (
    b'{"agent_id": "agent_support", "api_version": "v1", "environment": "local", '
    b'"labels": {"k": "v"}, "metrics": {"error_type": null, "latency_ms": 1200, '
    b'"success": true}, "release_id": "rel_big", "request": null, "run_id": "run-%09d", '
    b'"task_id": "task_support", "tenant_id": "tenant_acme", "timestamp": '
    b'"2026-11-28T09:27:12Z", "type": "run_end", "usage": {"model": {"cached_input_tokens": 0, '
    b'"input_tokens": 1000, "model": "gpt-4.1-mini", "output_tokens": 500, '
    b'"provider": "openai"}, "tools": []}, "workspace_id": "ws_local"}\n'
)
EXPORT_BYTES = 100_000_000
CHILD = Path(__file__).with_name("export_child.py")


@dataclass(frozen=True)
class ExportRun:
    length: int
    sha256: str
    headers: dict[str, str]
    growth: int  # peak RSS growth of the child during the call, bytes


@pytest.fixture(scope="module")
def export_runs() -> tuple[dict[tuple[str, str, str], ExportRun], int, str]:
    """Every (impl, face, path) fetches one ~100 MB NDJSON page in its own child process
    (all at once, each from its own fault server); returns the runs, the size and digest."""
    n = EXPORT_BYTES // len(EXPORT_LINE % 0) + 1
    per_chunk = 2_000
    chunks = [
        b"".join(EXPORT_LINE % i for i in range(start, min(n, start + per_chunk)))
        for start in range(0, n, per_chunk)
    ]
    length = sum(map(len, chunks))
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    digest = sha.hexdigest()
    headers = (
        ("Content-Type", "application/x-ndjson"),
        ("X-Flightdeck-Matched-Total", str(n)),
        ("X-Flightdeck-Returned", str(n)),
        ("X-Flightdeck-Offset", "0"),
        ("X-Flightdeck-Truncated", "false"),
    )
    page = Generated(200, headers, length, lambda: iter(chunks))
    combos = [(i, f, p) for i in ("reference", "ours") for f in ("sync", "async") for p in PATHS]

    def run(combo: tuple[str, str, str]) -> ExportRun:
        impl_name, face, path = combo
        with FaultServer([[Respond.json(200, {"status": "ok"}), page], [page]]) as fs:
            arg = json.dumps({"impl": impl_name, "face": face, "path": path, "url": fs.url})
            proc = subprocess.run(
                [sys.executable, str(CHILD), arg], capture_output=True, text=True, timeout=50
            )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        growth = out["rss_after"] - out["rss_before"]
        return ExportRun(out["length"], out["sha256"], out["headers"], growth)

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = dict(zip(combos, pool.map(run, combos), strict=True))
    return runs, length, digest


def test_100_mb_export(
    export_runs: tuple[dict[tuple[str, str, str], ExportRun], int, str], face: str, path: str
) -> None:
    """``fetch_runs_export_ndjson`` of a ~100 MB page completes with the reference's result,
    and the peak RSS it adds is no worse than the reference's plus a quarter of the body."""
    runs, length, digest = export_runs
    ours, ref = runs["ours", face, path], runs["reference", face, path]
    print(
        f"100 MB export {face}/{path}: peak RSS growth ours {ours.growth / 1e6:.0f} MB, "
        f"reference {ref.growth / 1e6:.0f} MB (body {length / 1e6:.0f} MB)"
    )
    assert length >= EXPORT_BYTES
    assert (ref.length, ref.sha256) == (length, digest)
    assert (ours.length, ours.sha256, ours.headers) == (ref.length, ref.sha256, ref.headers)
    assert ours.headers["X-Flightdeck-Truncated"] == "false"
    # The measurement means something: the reference holds the whole body as one bytes object.
    assert ref.growth >= length // 2
    assert ours.growth <= ref.growth + length // 4

