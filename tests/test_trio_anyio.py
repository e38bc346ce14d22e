"""The async client, helpers and emitter on every supported event loop: asyncio, trio, and
anyio with either backend (the same scenarios, each written with the loop's own tools).

Covers what ``tests/test_runtimes.py`` cannot import from the asyncio-only modules: 2,000
concurrent calls, cancellation by each library's rules (the call stops waiting at once and
its connection is closed), ``aclose()`` with calls in flight, the loop staying responsive,
the error outside any loop, ``Emitter.aflush``/``aclose`` and the async helpers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from async_backends import BACKENDS, run
from conftest import make_events, unique_env
from fault_server import FaultServer, Hang, Respond
from flightdeck_rs import Emitter, helpers
from flightdeck_rs.models import RunEvent
from flightdeck_rs.sdk import AsyncFlightdeckClient

OK = {"status": "ok", "mutation_auth": "loopback", "read_auth": "open"}
LONG = 30.0  # a client timeout no test waits for


# ----------------------------------------------------------------------------- loop tools


async def gather(backend: str, fns: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Runs every ``fn()`` concurrently on the running loop; results or exceptions, in order."""
    out: list[Any] = [None] * len(fns)

    async def one(i: int) -> None:
        try:
            out[i] = await fns[i]()
        except Exception as exc:  # noqa: BLE001 - returned to the caller
            out[i] = exc

    if backend == "asyncio":
        await asyncio.gather(*(one(i) for i in range(len(fns))))
    elif backend == "trio":
        import trio

        async with trio.open_nursery() as nursery:
            for i in range(len(fns)):
                nursery.start_soon(one, i)
    else:
        import anyio

        async with anyio.create_task_group() as tg:
            for i in range(len(fns)):
                tg.start_soon(one, i)
    return out


async def sleep(backend: str, seconds: float) -> None:
    if backend == "asyncio":
        await asyncio.sleep(seconds)
    elif backend == "trio":
        import trio

        await trio.sleep(seconds)
    else:
        import anyio

        await anyio.sleep(seconds)


# ----------------------------------------------------------------------------- a hanging server


class HangingServer:
    """Accepts connections, reads one request head on each and never answers; records when
    the client closes each connection (EOF)."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.requests = 0
        self.closed: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    self.closed.append(time.monotonic())
                    return
                buf += chunk
                if b"\r\n\r\n" in buf:
                    buf = b""
                    self.requests += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    srv = HangingServer()
    try:
        yield srv
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- tests


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", BACKENDS)
def test_2000_concurrent_calls(backend: str, server: Any) -> None:
    async def scenario() -> list[Any]:
        async with AsyncFlightdeckClient(server.base_url, timeout_s=LONG) as client:
            return await gather(backend, [client.health] * 2000)

    results = run(backend, scenario)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert all(r["status"] == "ok" for r in results)


CANCELLATIONS = [
    ("asyncio", "wait_for"),
    ("asyncio", "timeout"),
    ("trio", "move_on_after"),
    ("trio", "fail_after"),
    ("anyio-asyncio", "move_on_after"),
    ("anyio-asyncio", "fail_after"),
    ("anyio-trio", "move_on_after"),
    ("anyio-trio", "fail_after"),
]


async def cancelled_call(backend: str, how: str, call: Callable[[], Awaitable[Any]]) -> str:
    """Awaits ``call()`` under the library's own deadline of 0.2 s; says how it ended."""
    if backend == "asyncio":
        try:
            if how == "wait_for":
                await asyncio.wait_for(call(), 0.2)
            else:
                async with asyncio.timeout(0.2):
                    await call()
        except TimeoutError:
            return "timed out"
        return "returned"
    if backend == "trio":
        import trio

        if how == "move_on_after":
            with trio.move_on_after(0.2) as scope:
                await call()
            return "moved on" if scope.cancelled_caught else "returned"
        try:
            with trio.fail_after(0.2):
                await call()
        except trio.TooSlowError:
            return "timed out"
        return "returned"
    import anyio

    if how == "move_on_after":
        with anyio.move_on_after(0.2) as scope:
            await call()
        return "moved on" if scope.cancelled_caught else "returned"
    try:
        with anyio.fail_after(0.2):
            await call()
    except TimeoutError:
        return "timed out"
    return "returned"


@pytest.mark.parametrize(("backend", "how"), CANCELLATIONS)
def test_cancelled_call_stops_waiting_and_closes_its_connection(
    backend: str, how: str, hanging: HangingServer
) -> None:
    """The server never answers; the library's deadline cancels the call long before the
    client's own timeout, the I/O task is aborted (its connection closed, seen by the server),
    and the client stays usable."""

    async def scenario() -> tuple[str, float, bool, BaseException | None]:
        client = AsyncFlightdeckClient(hanging.url, timeout_s=LONG)
        try:
            start = time.monotonic()
            ended = await cancelled_call(backend, how, client.health)
            elapsed = time.monotonic() - start
            # The connection is closed by the cancellation itself, before any aclose().
            deadline = time.monotonic() + 5.0
            while not hanging.closed and time.monotonic() < deadline:
                await sleep(backend, 0.01)
            closed_by_cancel = bool(hanging.closed)
            # Still usable: a second call reaches the server (and times out on its own).
            second: BaseException | None = None
            short = AsyncFlightdeckClient(hanging.url, timeout_s=0.3)
            try:
                await short.health()
            except httpx.ReadTimeout as exc:
                second = exc
            finally:
                await short.aclose()
            return ended, elapsed, closed_by_cancel, second
        finally:
            await client.aclose()

    ended, elapsed, closed_by_cancel, second = run(backend, scenario)
    assert ended == ("moved on" if how == "move_on_after" else "timed out")
    assert elapsed < LONG / 3  # it did not wait for the client's timeout
    assert closed_by_cancel
    assert type(second) is httpx.ReadTimeout


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelled_then_reused(backend: str) -> None:
    """After a cancelled call, the same client makes the next call normally."""

    async def scenario(url: str) -> Any:
        async with AsyncFlightdeckClient(url, timeout_s=LONG) as client:
            how = "wait_for" if backend == "asyncio" else "fail_after"
            assert await cancelled_call(backend, how, client.health) == "timed out"
            return await client.health()

    with FaultServer([[Hang()], [Respond.json(200, {"status": "ok"})]]) as fs:
        assert run(backend, scenario, fs.url) == {"status": "ok"}
        assert fs.connections == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_aclose_ends_calls_in_flight(backend: str, hanging: HangingServer) -> None:
    async def scenario() -> list[Any]:
        client = AsyncFlightdeckClient(hanging.url, timeout_s=LONG)

        async def close_when_sent() -> None:
            while hanging.requests < 3:
                await sleep(backend, 0.005)
            await client.aclose()

        results = await gather(backend, [client.health] * 3 + [close_when_sent])
        return results[:3]

    errors = run(backend, scenario)
    assert [type(e) for e in errors] == [httpx.ReadError] * 3
    assert all(isinstance(e.request, httpx.Request) for e in errors)


@pytest.mark.parametrize("backend", BACKENDS)
def test_call_does_not_block_the_loop(backend: str, hanging: HangingServer) -> None:
    async def scenario() -> list[Any]:
        ticks = 0
        client = AsyncFlightdeckClient(hanging.url, timeout_s=0.4)

        async def call() -> Any:
            try:
                return await client.health()
            finally:
                await client.aclose()

        async def ticker() -> int:
            nonlocal ticks
            while not hanging.closed:
                ticks += 1
                await sleep(backend, 0.01)
            return ticks

        return await gather(backend, [call, ticker])

    error, ticks = run(backend, scenario)
    assert type(error) is httpx.ReadTimeout
    assert ticks >= 10  # ~40 expected while the call waits 0.4 s


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_and_errors_match_asyncio(backend: str, server: Any) -> None:
    """The same calls give the same results and exception types as on asyncio."""

    async def scenario() -> list[Any]:
        async with AsyncFlightdeckClient(server.base_url) as client:
            out: list[Any] = [await client.health(), await client.get_workspace()]
            try:
                await client.post_promote(
                    release_id="nope", environment=unique_env(), window="1h", reason="x"
                )
            except httpx.HTTPStatusError as exc:
                out.append((type(exc), exc.response.status_code, str(exc)))
        async with AsyncFlightdeckClient("http://127.0.0.1:9", timeout_s=1.0) as closed:
            try:
                await closed.health()
            except httpx.RequestError as exc:
                out.append((type(exc), str(exc)))
        after = AsyncFlightdeckClient(server.base_url)
        await after.aclose()
        try:
            await after.health()
        except RuntimeError as exc:
            out.append((type(exc), str(exc)))
        return out

    ws = run("asyncio", scenario)
    assert run(backend, scenario) == ws


def test_outside_any_event_loop_says_what_is_supported() -> None:
    client = AsyncFlightdeckClient("http://127.0.0.1:9")
    coro = client.health()
    with pytest.raises(RuntimeError, match=r"asyncio .*trio.*anyio") as info:
        coro.send(None)
    assert "no running event loop" in str(info.value)
    client._native.close()


def test_unsupported_library_is_named() -> None:
    sniffio = pytest.importorskip("sniffio")  # installed with trio (a test dependency)
    client = AsyncFlightdeckClient("http://127.0.0.1:9")
    token = sniffio.current_async_library_cvar.set("curio")
    try:
        coro = client.health()
        with pytest.raises(RuntimeError, match=r"cannot run on 'curio'.*trio"):
            coro.send(None)
    finally:
        sniffio.current_async_library_cvar.reset(token)
        client._native.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", BACKENDS)
def test_helpers_and_emitter(backend: str, server: Any, tmp_path: Any) -> None:
    """``aingest_jsonl`` (with a bad line), ``iter_runs``/``iter_runs_export`` and
    ``Emitter.aflush``/``aclose`` give the same outcome on every loop."""
    env = unique_env(backend)
    release = server.baseline_id
    events = make_events(RunEvent, release, 30, environment=env)
    lines = [e.model_dump_json() for e in events[:20]]
    lines.insert(5, "{not json")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    async def scenario() -> dict[str, Any]:
        async with AsyncFlightdeckClient(server.base_url) as client:
            summary = await helpers.aingest_jsonl(client, path, chunk_size=4, concurrency=3)
            emitter = Emitter(server.base_url, flush_interval_s=10.0)
            try:
                accepted = [emitter.emit(e) for e in events[20:]]
                flushed = await emitter.aflush(10.0)
            finally:
                closed = await emitter.aclose(10.0)
            pages = [e.run_id async for e in client.iter_runs(
                release_id=release, window="1h", environment=env, page_size=7
            )]
            exported = [e.run_id async for e in client.iter_runs_export(
                release_id=release, window="1h", environment=env, page_size=7
            )]
        return {
            "sent": summary.sent,
            "inserted": summary.inserted,
            "rejected": [n for n, _ in summary.rejected],
            "lines": summary.lines,
            "accepted": accepted,
            "flushed": flushed,
            "closed": closed,
            "pages": sorted(pages),
            "exported": sorted(exported),
        }

    got = run(backend, scenario)
    assert got["sent"] == got["inserted"] == 20
    assert got["rejected"] == [6]
    assert got["lines"] == 21
    assert got["accepted"] == [True] * 10
    assert got["flushed"] is got["closed"] is True
    assert got["pages"] == got["exported"] == sorted(e.run_id for e in events)


@pytest.mark.parametrize("backend", ["trio", "anyio-trio"])
def test_aingest_jsonl_error_reports_progress(backend: str, tmp_path: Any) -> None:
    """Under trio, a chunk failing for good raises its error with the summary note, as on
    asyncio; chunks in flight finish first."""
    path = tmp_path / "events.jsonl"
    events = make_events(RunEvent, "rel-x", 6)
    path.write_text("\n".join(json.dumps(json.loads(e.model_dump_json())) for e in events))

    async def scenario(url: str) -> BaseException | None:
        async with AsyncFlightdeckClient(url) as client:
            try:
                await helpers.aingest_jsonl(client, path, chunk_size=2, max_retries=0)
            except httpx.HTTPStatusError as exc:
                return exc
        return None

    def on(backend_: str) -> BaseException | None:
        with FaultServer([[Respond.json(401, {"detail": "no"})]]) as fs:
            return run(backend_, scenario, fs.url)  # type: ignore[no-any-return]

    exc, ref = on(backend), on("asyncio")
    assert exc is not None and ref is not None
    assert type(exc) is type(ref)
    assert exc.response.status_code == 401
    assert getattr(exc, "__notes__", None) == getattr(ref, "__notes__", None)
