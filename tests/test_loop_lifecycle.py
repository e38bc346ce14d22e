"""Event loops that end with native completions still pending, then a new loop in the process.

The async face resolves its futures in batches on the loop's thread (``src/py/runtime.rs``):
a finished call is queued in an inbox keyed by the event loop's address, and the first
completion of a batch wakes the loop once (a byte on the loop's wake-up socket, or
``call_soon_threadsafe``), which drains the inbox. These tests end a
loop while calls are in flight against a loopback server that answers only when told to
(``GatedServer``), in the ways a program can:

* a loop stopped while the answers arrive (their drain is scheduled on the stopped loop and
  never runs), then closed;
* a loop closed before the answers arrive;
* ``asyncio.run`` / ``asyncio.Runner`` returning while its calls are still running (it
  cancels them), twice in a row;
* each with uvloop too when it is installed;

and then make calls on a new loop (against the real server of the ``server`` fixture), which
must complete. The ended loop must be freed: the runtime may not keep it (or its futures)
alive in a stale inbox, and a new loop allocated at the same address (tried for on purpose)
must get its own completions. Every wait is bounded, so a lost completion fails instead of
hanging.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import select
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flightdeck_rs.sdk.client import AsyncFlightdeckClient

pytestmark = pytest.mark.timeout(120)

N_CALLS = 8
SETTLE_S = 0.5  # for the I/O threads to read answers already written (not asserted on)


class GatedServer:
    """Loopback HTTP server whose ``GET /health`` answers only once :meth:`release` is
    called (or after 30 s); counts requests received and answers written."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.received = 0
        self.answered = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with outer._lock:
                    outer.received += 1
                outer.gate.wait(30.0)
                body = json.dumps({"status": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                with outer._lock:
                    outer.answered += 1

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def wait_for(self, what: str, n: int, timeout_s: float = 10.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if getattr(self, what) >= n:
                    break
            time.sleep(0.01)
        with self._lock:
            return int(getattr(self, what))

    def release(self) -> None:
        self.gate.set()

    def __enter__(self) -> GatedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)


def _loop_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        factories.append(
            pytest.param(None, id="uvloop", marks=pytest.mark.skip(reason="uvloop not installed"))
        )
    else:
        factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


LOOPS = _loop_factories()


@pytest.fixture
def slow_server() -> Iterator[GatedServer]:
    with GatedServer() as srv:
        yield srv


def _collected(ref: weakref.ref[Any], timeout_s: float = 5.0) -> bool:
    """Whether the object is freed once nothing of ours holds it (late I/O threads may still
    be finishing their completions, so a few collections are allowed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        gc.collect()
        if ref() is None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


async def _calls_complete(base_url: str, n: int = N_CALLS) -> list[dict[str, Any]]:
    client = AsyncFlightdeckClient(base_url, timeout_s=10.0)
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(client.health() for _ in range(n))), timeout=20.0
        )
    finally:
        await client.aclose()


def _new_loop_works(new_loop: Callable[[], asyncio.AbstractEventLoop], base_url: str) -> None:
    loop = new_loop()
    try:
        results = loop.run_until_complete(_calls_complete(base_url))
    finally:
        loop.close()
    assert len(results) == N_CALLS
    assert all(r.get("status") == "ok" for r in results), results


def _loop_at(address: int, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> Any:
    """A new loop at ``address`` if the allocator hands it out within a few tries, else the
    last one made (freed blocks are usually reused for the next object of the same size)."""
    spare = []
    loop = new_loop()
    for _ in range(50):
        if id(loop) == address:
            break
        spare.append(loop)
        loop = new_loop()
    for other in spare:
        other.close()
    return loop


def _wake_pending(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether an asyncio selector loop has a drain of ours queued or its wake-up socket
    (a reader whose callback is our waker) holds a byte."""
    if loop._ready:  # type: ignore[attr-defined]
        return True
    for key in loop._selector.get_map().values():  # type: ignore[attr-defined]
        reader = key.data[0]
        if reader is not None and type(reader._callback).__name__ == "_LoopWaker":
            return bool(select.select([key.fd], [], [], 0)[0])
    return False


def _wakers_watched(loop: asyncio.AbstractEventLoop) -> int:
    """How many of our wake-up sockets an asyncio selector loop watches."""
    return sum(
        1
        for key in loop._selector.get_map().values()  # type: ignore[attr-defined]
        if key.data[0] is not None and type(key.data[0]._callback).__name__ == "_LoopWaker"
    )


def _start_slow_calls(loop: asyncio.AbstractEventLoop, url: str) -> list[asyncio.Task[Any]]:
    client = AsyncFlightdeckClient(url, timeout_s=10.0)

    async def start() -> list[asyncio.Task[Any]]:
        tasks = [asyncio.ensure_future(client.health()) for _ in range(N_CALLS)]
        await asyncio.sleep(0)  # the calls are spawned on the I/O runtime
        return tasks

    return loop.run_until_complete(start())


@pytest.mark.parametrize("new_loop", LOOPS)
def test_loop_closed_after_completions_queued_while_stopped(
    new_loop: Callable[[], asyncio.AbstractEventLoop], slow_server: GatedServer, server: Any
) -> None:
    loop = new_loop()
    tasks = _start_slow_calls(loop, slow_server.url)
    assert slow_server.wait_for("received", N_CALLS) == N_CALLS
    # The loop is stopped (not running, not closed) while the answers arrive: the first
    # completion wakes it (a byte on its wake-up socket), but the drain never runs.
    slow_server.release()
    assert slow_server.wait_for("answered", N_CALLS) == N_CALLS
    if isinstance(loop, asyncio.BaseEventLoop):  # the wake-up is visible in its selector
        deadline = time.monotonic() + 10.0
        while not _wake_pending(loop) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _wake_pending(loop), "the loop was not woken"
    else:
        time.sleep(SETTLE_S)
    assert not any(t.done() for t in tasks)
    loop.close()
    address = id(loop)
    ref = weakref.ref(loop)
    del loop, tasks

    # A new loop makes calls while the old one's completions are still queued.
    _new_loop_works(new_loop, server.base_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Task was destroyed but it is pending"
        assert _collected(ref), "the closed loop is kept alive by its queued completions"

    # A loop at the freed address (the inbox key) gets its own completions.
    again = _loop_at(address, new_loop)
    try:
        results = again.run_until_complete(_calls_complete(server.base_url))
    finally:
        again.close()
    assert [r.get("status") for r in results] == ["ok"] * N_CALLS


@pytest.mark.parametrize("new_loop", LOOPS)
def test_loop_closed_with_calls_in_flight(
    new_loop: Callable[[], asyncio.AbstractEventLoop], slow_server: GatedServer, server: Any
) -> None:
    """Closed before any answer: the completions arrive for a closed loop."""
    loop = new_loop()
    tasks = _start_slow_calls(loop, slow_server.url)
    assert slow_server.wait_for("received", N_CALLS) == N_CALLS
    loop.close()
    address = id(loop)
    ref = weakref.ref(loop)
    del loop, tasks
    slow_server.release()  # the answers arrive, for a closed loop
    assert slow_server.wait_for("answered", N_CALLS) == N_CALLS
    time.sleep(SETTLE_S)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _collected(ref), "the closed loop is kept alive by its completions"
    again = _loop_at(address, new_loop)
    try:
        results = again.run_until_complete(_calls_complete(server.base_url))
    finally:
        again.close()
    assert [r.get("status") for r in results] == ["ok"] * N_CALLS


@pytest.mark.parametrize("new_loop", LOOPS)
def test_asyncio_run_twice_with_calls_pending(
    new_loop: Callable[[], asyncio.AbstractEventLoop], slow_server: GatedServer, server: Any
) -> None:
    """``asyncio.run`` returns with calls in flight (it cancels them), then runs again."""
    refs: list[weakref.ref[Any]] = []

    async def leave_calls_running() -> None:
        refs.append(weakref.ref(asyncio.get_running_loop()))
        client = AsyncFlightdeckClient(slow_server.url, timeout_s=10.0)
        for _ in range(N_CALLS):
            asyncio.ensure_future(client.health())
        while slow_server.received < N_CALLS:  # sent, not answered
            await asyncio.sleep(0.01)

    async def calls() -> list[dict[str, Any]]:
        return await _calls_complete(server.base_url)

    for _ in range(2):
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(leave_calls_running())
        with asyncio.Runner(loop_factory=new_loop) as runner:
            results = runner.run(calls())
        assert [r.get("status") for r in results] == ["ok"] * N_CALLS
        slow_server.received = 0
    slow_server.release()  # answers for the cancelled calls (their requests were aborted)
    time.sleep(SETTLE_S)
    assert all(_collected(r) for r in refs), "an ended asyncio.run loop is still alive"


def test_asyncio_run_twice(slow_server: GatedServer, server: Any) -> None:
    """Plain ``asyncio.run``: the first run ends with calls pending, the second makes calls."""

    async def leave_calls_running() -> None:
        client = AsyncFlightdeckClient(slow_server.url, timeout_s=10.0)
        for _ in range(N_CALLS):
            asyncio.ensure_future(client.health())
        while slow_server.received < N_CALLS:
            await asyncio.sleep(0.01)

    asyncio.run(leave_calls_running())
    results = asyncio.run(_calls_complete(server.base_url))
    assert [r.get("status") for r in results] == ["ok"] * N_CALLS


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
@pytest.mark.parametrize("new_loop", LOOPS)
def test_wake_up_sockets_go_with_their_loops(
    new_loop: Callable[[], asyncio.AbstractEventLoop], server: Any
) -> None:
    """Each asyncio loop gets one wake-up socket pair, watched by the loop; it is closed with
    the loop (read end) and when the loop is collected (write end): loops that come and go
    leave no open files behind, and every loop still gets its answers."""

    def open_files() -> int:
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    _new_loop_works(new_loop, server.base_url)  # the client's own pool and threads
    before = open_files()
    refs = []
    for _ in range(20):
        loop = new_loop()
        try:
            assert len(loop.run_until_complete(_calls_complete(server.base_url))) == N_CALLS
            if isinstance(loop, asyncio.BaseEventLoop):
                assert _wakers_watched(loop) == 1  # one socket per loop, however many calls
        finally:
            loop.close()
        refs.append(weakref.ref(loop))
        del loop
    assert all(_collected(r) for r in refs)
    assert open_files() <= before + 2


# ----------------------------------------------------------------------------- starting calls
#
# An asyncio loop's calls are queued as they are made and start together, on the I/O runtime,
# from one callback the first call of a loop iteration schedules (``start_queued``).


@pytest.mark.parametrize("new_loop", LOOPS)
def test_call_cancelled_before_it_starts_is_never_sent(
    new_loop: Callable[[], asyncio.AbstractEventLoop], slow_server: GatedServer
) -> None:
    """Cancelled in the loop iteration that made it: the request never reaches the server,
    while a call made in the same iteration and not cancelled does."""
    slow_server.release()
    loop = new_loop()
    client = AsyncFlightdeckClient(slow_server.url, timeout_s=10.0)

    async def main() -> tuple[bool, dict[str, Any]]:
        await client.health()  # a pooled connection: a request started would go out at once
        cancelled = asyncio.ensure_future(client.health())
        kept = asyncio.ensure_future(client.health())
        await asyncio.sleep(0)  # both tasks run: their calls are queued, not started
        cancelled.cancel()
        result = await asyncio.wait_for(kept, timeout=20.0)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        return cancelled.cancelled(), result

    try:
        was_cancelled, result = loop.run_until_complete(main())
        time.sleep(SETTLE_S)  # a request started by mistake would arrive meanwhile
    finally:
        loop.close()
    assert was_cancelled
    assert result == {"status": "ok"}
    assert slow_server.received == 2


def test_loop_closed_before_its_calls_started(slow_server: GatedServer, server: Any) -> None:
    """Stopped in the iteration that queued its calls, then closed: the calls never start
    (nothing reaches the server), and the closed loop is not kept alive by its queued calls
    once another loop makes calls. (asyncio's loop only: uvloop still runs, after ``stop()``,
    the callbacks scheduled before it, so its calls do start.)"""
    new_loop = asyncio.new_event_loop
    loop = new_loop()
    client = AsyncFlightdeckClient(slow_server.url, timeout_s=10.0)

    async def queue_and_stop() -> None:
        for _ in range(N_CALLS):
            asyncio.ensure_future(client.health())
        await asyncio.sleep(0)  # the tasks run: their calls are queued
        asyncio.get_running_loop().stop()  # the start callback stays in the ready queue
        await asyncio.sleep(3600)

    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        loop.run_until_complete(queue_and_stop())
    loop.close()
    ref = weakref.ref(loop)
    del loop
    slow_server.release()
    time.sleep(SETTLE_S)
    assert slow_server.received == 0

    _new_loop_works(new_loop, server.base_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Task was destroyed but it is pending"
        assert _collected(ref), "the closed loop is kept alive by its unstarted calls"


class _NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop that cannot watch file descriptors (as some custom loops cannot)."""

    def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:
        raise NotImplementedError("no readers here")


class _ReaderlessLoop(asyncio.SelectorEventLoop):
    """A loop without ``add_reader`` at all."""

    def __getattribute__(self, name: str) -> Any:
        if name == "add_reader":
            raise AttributeError(name)
        return super().__getattribute__(name)


@pytest.mark.parametrize("loop_class", [_NoReaderLoop, _ReaderlessLoop])
def test_loop_that_cannot_watch_sockets_gets_its_answers(
    loop_class: type[asyncio.AbstractEventLoop], server: Any
) -> None:
    """Where the loop refuses (or lacks) ``add_reader``, completions wake it the thread-safe
    way instead: every call of several rounds completes, nothing is logged as an error."""
    loop = loop_class()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        for _ in range(3):
            results = loop.run_until_complete(_calls_complete(server.base_url))
            assert [r.get("status") for r in results] == ["ok"] * N_CALLS
        assert _wakers_watched(loop) == 0
    finally:
        loop.close()
    assert errors == []
