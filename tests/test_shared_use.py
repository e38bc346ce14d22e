"""Shared use and lifecycle of one client: many threads, many tasks, several event loops,
``close()`` under load, calls after ``close()``, ``os.fork()`` and interpreter exit.

Pure load runs against :class:`EchoServer`, a small keep-alive loopback server defined here
that answers every request with what it received (method, target, JSON body), so each result
can be checked against the call that produced it (a response crossed between threads would
show). Everything else uses the real ``flightdeck serve`` (conftest ``server``) or the scripted
fault server.

What the reference (``flightdeck.sdk`` over httpx 0.28) does, as observed on this machine:

* 32 threads sharing one sync client: works (slower); covered with fewer calls.
* 5,000 tasks on one async client: the reference hits ``httpx.PoolTimeout`` from ~500
  concurrent calls (``test_concurrency_real.py``); ours only.
* One async client across two ``asyncio.run()`` loops: the reference raises
  ``RuntimeError('Event loop is closed')`` in the second loop as soon as it reuses a pooled
  connection (asserted in :func:`test_reference_async_client_fails_on_a_second_loop`); ours
  works in both loops.
* ``close()`` while calls are in flight: both raise ``httpx.ReadError`` in those calls; the
  reference only once its read timeout expires, ours at once.
* Calls after ``close()``: both raise ``RuntimeError('Cannot send a request, as the client has
  been closed.')``.
* Fork: a sync client used before ``fork()`` works in the child for both; the reference's child
  deadlocks about half the time when other threads are mid-call at the fork (ours only); the
  reference's async client fails in a child's new event loop (``Event loop is closed``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from conftest import Impl, load_impl, make_events, unique_env
from emitter_server import EventsServer
from fault_server import FaultServer, Hang, Respond, closed_port

pytestmark = pytest.mark.timeout(60)

CLOSED_MESSAGE = "Cannot send a request, as the client has been closed."


# ----------------------------------------------------------------------------- echo server


class EchoServer:
    """Loopback HTTP/1.1 keep-alive server, one thread per connection, answering at once.

    ``POST /v1/events`` gets ``{"inserted": <number of events in the body>}``; every other
    request gets ``{"status": "ok", "method": ..., "target": ..., "body": <parsed JSON body or
    None>}``. A target containing ``slow`` is answered after ``slow_s`` seconds.
    """

    def __init__(self, slow_s: float = 0.0) -> None:
        self.slow_s = slow_s
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(512)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> EchoServer:
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in list(self._threads):
            t.join(timeout=5)

    def seen(self) -> int:
        with self._lock:
            return self.requests

    def wait_for_requests(self, n: int, timeout_s: float = 10.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.seen() < n and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.seen()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target = request_line.split(" ")[:2]
                length = 0
                for line in header_lines:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:length], buf[length:]
                with self._lock:
                    self.requests += 1
                if "slow" in target and self._stop.wait(self.slow_s):
                    return
                doc = json.loads(body) if body else None
                if target == "/v1/events":
                    answer: dict[str, Any] = {"inserted": len(doc["events"])}
                else:
                    answer = {"status": "ok", "method": method, "target": target, "body": doc}
                out = json.dumps(answer).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(out) + out
                )
        except OSError:
            return
        finally:
            with self._lock:
                if conn in self._socks:
                    self._socks.remove(conn)
            conn.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer(slow_s=2.0) as srv:
        yield srv


# ----------------------------------------------------------------------------- checked calls

# A checked call: (client, i) -> None, raising AssertionError when the result is not the one
# call number ``i`` must get from EchoServer. Three kinds, by i % 3: a GET with a query, a
# POST with a JSON body, an event ingest.


def runs_target(i: int) -> str:
    return f"/v1/runs?release_id=rel-{i}&window=1h&limit={i % 100 + 1}&offset=0"


def _sync_checked(events: list[Any]) -> Callable[[Any, int], None]:
    def call(client: Any, i: int) -> None:
        kind = i % 3
        if kind == 0:
            r = client.list_runs(release_id=f"rel-{i}", window="1h", limit=i % 100 + 1)
            assert r["target"] == runs_target(i)
        elif kind == 1:
            r = client.post_diff(
                baseline_release_id=f"b-{i}", candidate_release_id="c", window="1h"
            )
            assert (r["target"], r["body"]["baseline_release_id"]) == ("/v1/diff", f"b-{i}")
        else:
            n = i % len(events) + 1
            assert client.ingest_run_events(events[:n]) == n

    return call


def _async_checked(events: list[Any]) -> Callable[[Any, int], Any]:
    async def call(client: Any, i: int) -> None:
        kind = i % 3
        if kind == 0:
            r = await client.list_runs(release_id=f"rel-{i}", window="1h", limit=i % 100 + 1)
            assert r["target"] == runs_target(i)
        elif kind == 1:
            r = await client.post_diff(
                baseline_release_id=f"b-{i}", candidate_release_id="c", window="1h"
            )
            assert (r["target"], r["body"]["baseline_release_id"]) == ("/v1/diff", f"b-{i}")
        else:
            n = i % len(events) + 1
            assert await client.ingest_run_events(events[:n]) == n

    return call


# ----------------------------------------------------------------------------- threads and tasks


@pytest.mark.parametrize("impl_name", ["ours", "reference"])
def test_32_threads_share_one_sync_client(echo: EchoServer, impl_name: str) -> None:
    """10,000 mixed calls from 32 threads on one client: every result is the right one.

    The reference is slower here (about 8 s for 10,000), so it runs 2,000 for parity.
    """
    impl = load_impl(impl_name)
    calls = 10_000 if impl.name == "ours" else 2_000
    check = _sync_checked(make_events(impl.RunEvent, "rel_threads", 5))
    client = impl.FlightdeckClient(echo.url, timeout_s=30.0)
    failures: list[tuple[int, BaseException]] = []
    start = threading.Barrier(32)

    def worker(w: int) -> int:
        start.wait(timeout=30)
        done = 0
        for i in range(w, calls, 32):
            try:
                check(client, i)
                done += 1
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                failures.append((i, exc))
        return done

    try:
        with ThreadPoolExecutor(32) as pool:
            done = sum(pool.map(worker, range(32)))
        assert not failures, [(i, repr(exc)) for i, exc in failures[:5]]
        assert (done, echo.seen()) == (calls, calls)
        # Still usable afterwards, from this thread and from a fresh one.
        assert client.health()["target"] == "/health"
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(client.health).result(timeout=10)["status"] == "ok"
    finally:
        client.close()


def test_5000_tasks_share_one_async_client(echo: EchoServer) -> None:
    impl = load_impl("ours")
    check = _async_checked(make_events(impl.RunEvent, "rel_tasks", 5))

    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        client = impl.AsyncFlightdeckClient(echo.url, timeout_s=30.0)
        try:
            results = await asyncio.gather(
                *(check(client, i) for i in range(5000)), return_exceptions=True
            )
            return results, await client.health()
        finally:
            await client.aclose()

    results, after = asyncio.run(scenario())
    errors = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert errors[:3] == []
    assert len(results) == 5000
    assert echo.seen() == 5001
    assert after["target"] == "/health"


# ----------------------------------------------------------------------------- event loops


def test_async_client_across_two_asyncio_run_loops(server: Any) -> None:
    """Ours: one async client keeps working when the first loop is closed and a second runs."""
    impl = load_impl("ours")
    env = unique_env("loops")
    events = make_events(impl.RunEvent, server.baseline_id, 4, environment=env)
    client = impl.AsyncFlightdeckClient(server.base_url)

    async def first() -> int:
        await client.health()
        inserted: int = await client.ingest_run_events(events[:2])
        return inserted

    async def second() -> tuple[int, list[Any]]:
        inserted = await client.ingest_run_events(events[2:])
        pages = await asyncio.gather(
            *(client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
              for _ in range(20))
        )
        return inserted, pages

    assert asyncio.run(first()) == 2
    inserted, pages = asyncio.run(second())
    assert inserted == 2
    want = {e.run_id for e in events}
    assert all({r["run_id"] for r in page["events"]} == want for page in pages)

    async def third() -> None:
        assert (await client.health())["status"] == "ok"
        await client.aclose()

    asyncio.run(third())


def test_reference_async_client_fails_on_a_second_loop(echo: EchoServer) -> None:
    """What ours improves on: httpx ties pooled connections to the loop that opened them."""
    client = load_impl("reference").AsyncFlightdeckClient(echo.url)
    asyncio.run(client.health())
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        asyncio.run(client.health())


@pytest.mark.parametrize("impl_name", ["ours", "reference"])
def test_sync_client_inside_a_running_loop(server: Any, impl_name: str) -> None:
    """A sync client called from a coroutine (a notebook cell), next to an async client."""
    impl = load_impl(impl_name)
    env = unique_env("inloop")
    events = make_events(impl.RunEvent, server.baseline_id, 3, environment=env)

    async def scenario() -> tuple[Any, ...]:
        client = impl.FlightdeckClient(server.base_url)  # the reference has no `with`
        try:
            health = client.health()
            inserted = client.ingest_run_events(events)
            runs = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
            async_client = impl.AsyncFlightdeckClient(server.base_url)
            try:
                async_health = await async_client.health()
            finally:
                await async_client.aclose()
            again = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
            return health, inserted, runs, async_health, again
        finally:
            client.close()

    health, inserted, runs, async_health, again = asyncio.run(scenario())
    assert health["status"] == async_health["status"] == "ok"
    assert inserted == 3
    assert [r["run_id"] for r in runs["events"]] == [e.run_id for e in events]
    assert again["events"] == runs["events"]


# ----------------------------------------------------------------------------- close()


ALLOWED_IN_FLIGHT = (httpx.RequestError, RuntimeError)


@pytest.mark.parametrize("impl_name", ["ours", "reference"])
def test_close_while_sync_calls_are_in_flight(impl_name: str) -> None:
    """Threads blocked on a server that never answers; close() from another thread.

    Every call ends with a clean error, well before the test's guard. Ours ends them at once;
    the reference only when its read timeout expires.
    """
    impl = load_impl(impl_name)
    timeout_s = 2.0
    with FaultServer([[Respond.json(200, {"status": "ok"}), Hang()], [Hang()]]) as fs:
        client = impl.FlightdeckClient(fs.url, timeout_s=timeout_s)
        assert client.health() == {"status": "ok"}  # a pooled connection too
        outcomes: list[BaseException | dict[str, Any]] = []
        ended: list[float] = []

        def call() -> None:
            try:
                outcomes.append(client.health())
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                outcomes.append(exc)
            ended.append(time.monotonic())

        threads = [threading.Thread(target=call, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        assert fs.wait_for_requests(9, timeout_s=10) == 9
        closed_at = time.monotonic()
        client.close()
        for t in threads:
            t.join(timeout=timeout_s + 10)
        assert not any(t.is_alive() for t in threads), "a call hung after close()"
        with pytest.raises(RuntimeError) as after:
            client.health()
    assert len(outcomes) == 8
    assert all(isinstance(o, ALLOWED_IN_FLIGHT) for o in outcomes), outcomes
    assert str(after.value) == CLOSED_MESSAGE
    if impl.name == "ours":
        assert all(type(o) is httpx.ReadError for o in outcomes), outcomes
        assert max(ended) - closed_at < 1.0  # not left waiting for the read timeout


@pytest.mark.parametrize("impl_name", ["ours", "reference"])
def test_close_while_async_calls_are_in_flight(impl_name: str) -> None:
    impl = load_impl(impl_name)

    async def scenario(url: str, fs: FaultServer) -> tuple[list[Any], float, BaseException]:
        client = impl.AsyncFlightdeckClient(url, timeout_s=2.0)
        assert await client.health() == {"status": "ok"}
        tasks = [asyncio.create_task(client.health()) for _ in range(8)]
        while fs.requests_seen() < 9:
            await asyncio.sleep(0.01)
        start = time.monotonic()
        await client.aclose()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 12)
        elapsed = time.monotonic() - start
        try:
            await client.health()
        except RuntimeError as exc:
            return results, elapsed, exc
        raise AssertionError("a call after aclose() did not raise")

    with FaultServer([[Respond.json(200, {"status": "ok"}), Hang()], [Hang()]]) as fs:
        results, elapsed, after = asyncio.run(asyncio.wait_for(scenario(fs.url, fs), 30))
    assert all(isinstance(r, ALLOWED_IN_FLIGHT) for r in results), results
    assert str(after) == CLOSED_MESSAGE
    if impl.name == "ours":
        assert all(type(r) is httpx.ReadError for r in results), results
        assert elapsed < 1.0


def _after_close_outcomes(impl: Impl, face: str, url: str) -> list[tuple[str, str]]:
    """Use a client (so its pool holds a connection), close it, then call every kind of
    method from several threads (sync) or tasks (async); ``(type name, message)`` of each."""
    events = make_events(impl.RunEvent, "rel_after_close", 2)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("health", {}),
        ("list_runs", {"release_id": "r", "window": "1h"}),
        ("post_diff", {"baseline_release_id": "a", "candidate_release_id": "b", "window": "1h"}),
        ("ingest_run_events", {"events": events}),
        ("ingest_run_events_batch", {"events": events, "chunk_size": 1}),
        ("fetch_runs_export_ndjson", {"release_id": "r", "window": "1h"}),
    ]

    def outcome(exc: BaseException | None) -> tuple[str, str]:
        return ("no error", "") if exc is None else (type(exc).__name__, str(exc))

    if face == "sync":
        client = impl.FlightdeckClient(url, max_retries=2)
        client.health()
        client.close()

        def one(call: tuple[str, dict[str, Any]]) -> tuple[str, str]:
            try:
                getattr(client, call[0])(**call[1])
            except BaseException as exc:  # noqa: BLE001 - the outcome is compared
                return outcome(exc)
            return outcome(None)

        with ThreadPoolExecutor(len(calls)) as pool:
            got = list(pool.map(one, calls))
        client.close()  # harmless again
        return got

    async def scenario() -> list[tuple[str, str]]:
        client = impl.AsyncFlightdeckClient(url, max_retries=2)
        await client.health()
        await client.aclose()
        results = await asyncio.gather(
            *(getattr(client, name)(**kw) for name, kw in calls), return_exceptions=True
        )
        await client.aclose()
        return [outcome(r if isinstance(r, BaseException) else None) for r in results]

    return asyncio.run(scenario())


@pytest.mark.parametrize("face", ["sync", "async"])
def test_calls_after_close_match_the_reference(echo: EchoServer, face: str) -> None:
    ours = _after_close_outcomes(load_impl("ours"), face, echo.url)
    reference = _after_close_outcomes(load_impl("reference"), face, echo.url)
    assert ours == reference
    assert set(ours) == {("RuntimeError", CLOSED_MESSAGE)}
    assert echo.seen() == 2  # the two health() calls before close()


@pytest.mark.parametrize("impl_name", ["ours", "reference"])
def test_close_leaves_an_injected_client_usable(echo: EchoServer, impl_name: str) -> None:
    impl = load_impl(impl_name)
    with httpx.Client() as http:
        client = impl.FlightdeckClient(echo.url, client=http)
        assert client.health()["target"] == "/health"
        client.close()
        assert client.health()["target"] == "/health"
        assert http.get(echo.url + "/x").json()["target"] == "/x"


# ----------------------------------------------------------------------------- fork


def _wait_child(pid: int, timeout_s: float) -> int | None:
    """Exit code of child ``pid``, or ``None`` if it had to be killed at ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.005)


def _fork_and_run(child: Callable[[], bool], timeout_s: float = 20.0) -> int | None:
    """Fork; the child runs ``child()`` and leaves with ``os._exit`` (0 if it returned True,
    1 if False, 2 if it raised, after writing the exception to stderr)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        code = 2
        try:
            code = 0 if child() else 1
        except BaseException as exc:  # noqa: BLE001 - reported through the exit code
            os.write(2, f"fork child: {exc!r}\n".encode())
        finally:
            os._exit(code)
    return _wait_child(pid, timeout_s)


@pytest.mark.parametrize("impl_name", ["ours", "reference"])
def test_sync_client_used_before_fork_works_in_the_child(server: Any, impl_name: str) -> None:
    impl = load_impl(impl_name)
    env = unique_env("fork")
    parent_events = make_events(impl.RunEvent, server.baseline_id, 2, environment=env)
    child_events = make_events(impl.RunEvent, server.baseline_id, 2, environment=env)
    client = impl.FlightdeckClient(server.base_url)
    try:
        assert client.ingest_run_events(parent_events) == 2  # pooled connection at fork time

        def child() -> bool:
            runs = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
            seen = {r["run_id"] for r in runs["events"]}
            ok = seen == {e.run_id for e in parent_events}
            return ok and client.ingest_run_events(child_events) == 2

        assert _fork_and_run(child) == 0
        runs = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
        assert {r["run_id"] for r in runs["events"]} == {
            e.run_id for e in parent_events + child_events
        }
    finally:
        client.close()


def test_async_client_used_before_fork_works_in_the_child(server: Any) -> None:
    """Ours only: the reference's child fails with ``RuntimeError('Event loop is closed')``."""
    impl = load_impl("ours")
    env = unique_env("afork")
    events = make_events(impl.RunEvent, server.baseline_id, 2, environment=env)
    client = impl.AsyncFlightdeckClient(server.base_url)
    assert asyncio.run(client.ingest_run_events(events[:1])) == 1

    def child() -> bool:
        async def use() -> bool:
            inserted = await client.ingest_run_events(events[1:])
            await client.aclose()
            return inserted == 1

        return asyncio.run(use())

    assert _fork_and_run(child) == 0

    async def parent() -> set[str]:
        runs = await client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
        await client.aclose()
        return {r["run_id"] for r in runs["events"]}

    assert asyncio.run(parent()) == {e.run_id for e in events}


def test_fork_while_other_threads_are_mid_call(echo: EchoServer) -> None:
    """Ours only: forks land while 4 threads keep calling the same client; each child's call
    succeeds. (The reference's child deadlocked in ~half of such forks, holding a pool lock
    copied from a thread that does not exist in the child.)"""
    impl = load_impl("ours")
    client = impl.FlightdeckClient(echo.url, timeout_s=10.0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer(w: int) -> None:
        i = w
        while not stop.is_set():
            try:
                r = client.list_runs(release_id=f"w{i}", window="1h")
                assert r["target"].startswith(f"/v1/runs?release_id=w{i}&")
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return
            i += 4

    threads = [threading.Thread(target=hammer, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    codes: list[int | None] = []
    try:
        echo.wait_for_requests(50)
        for n in range(30):

            def child(n: int = n) -> bool:
                r = client.list_runs(release_id=f"child-{n}", window="1h")
                return bool(r["target"].startswith(f"/v1/runs?release_id=child-{n}&"))

            codes.append(_fork_and_run(child, timeout_s=10.0))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert codes == [0] * 30
    assert errors == []
    assert client.health()["status"] == "ok"
    client.close()


# ----------------------------------------------------------------------------- interpreter exit


def _run_child(code: str, *args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter that exits normally (no ``os._exit``)."""
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )


ASYNC_EXIT_CHILD = """
    import asyncio, sys, threading
    from flightdeck_rs.sdk import AsyncFlightdeckClient

    url, hang_url, variant = sys.argv[1:4]

    async def calls(client):
        rs = await asyncio.gather(
            *(client.list_runs(release_id=f"r{i}", window="1h") for i in range(40))
        )
        assert all(r["target"].startswith(f"/v1/runs?release_id=r{i}&") for i, r in enumerate(rs))

    async def main():
        client = AsyncFlightdeckClient(url)
        await calls(client)
        if variant == "closed":
            await client.aclose()
        elif variant == "unclosed":
            globals()["kept"] = client  # alive until interpreter finalization
        elif variant == "pending":
            # A call still waiting on the network when asyncio.run cancels it.
            globals()["kept"] = AsyncFlightdeckClient(hang_url, timeout_s=30)
            asyncio.get_running_loop().create_task(kept.health())
            await asyncio.sleep(0.1)

    asyncio.run(main())
    if variant == "thread_loop":
        # A loop on a daemon thread, mid-call when the interpreter exits.
        started = threading.Event()

        def other():
            async def hang():
                started.set()
                await AsyncFlightdeckClient(hang_url, timeout_s=30).health()
            asyncio.run(hang())

        threading.Thread(target=other, daemon=True).start()
        started.wait(10)
"""

ASYNC_VARIANTS = ("closed", "unclosed", "pending", "thread_loop")


def test_process_exit_after_async_use_is_clean(echo: EchoServer) -> None:
    """20 interpreters use an async client under asyncio.run and exit normally: exit code 0
    and nothing on stderr, every time (closed, never closed, a call cancelled by
    asyncio.run, a call in flight on a daemon thread's loop)."""
    with FaultServer([[Hang()]]) as hang:
        results = [
            _run_child(ASYNC_EXIT_CHILD, echo.url, hang.url, ASYNC_VARIANTS[n % 4])
            for n in range(20)
        ]
    bad = [(n, r.returncode, r.stderr[-800:]) for n, r in enumerate(results)
           if r.returncode != 0 or r.stderr]
    assert bad == []
    assert echo.seen() == 20 * 40


SYNC_EXIT_CHILD = """
    import sys, threading, time
    from flightdeck_rs.sdk import FlightdeckClient

    url, hang_url, variant = sys.argv[1:4]
    client = FlightdeckClient(url)
    for i in range(40):
        r = client.list_runs(release_id=f"r{i}", window="1h")
        assert r["target"].startswith(f"/v1/runs?release_id=r{i}&")
    if variant == "closed":
        client.close()
    elif variant == "in_flight":
        blocked = FlightdeckClient(hang_url, timeout_s=30)
        started = threading.Event()

        def call():
            started.set()
            blocked.health()

        threading.Thread(target=call, daemon=True).start()
        started.wait(10)
        time.sleep(0.05)
"""


def test_process_exit_after_sync_use_is_clean(echo: EchoServer) -> None:
    """Closed, never closed, and a daemon thread blocked in a call at exit."""
    variants = ("closed", "unclosed", "in_flight")
    with FaultServer([[Hang()]]) as hang:
        results = [
            _run_child(SYNC_EXIT_CHILD, echo.url, hang.url, variants[n % 3]) for n in range(9)
        ]
    bad = [(n, r.returncode, r.stderr[-800:]) for n, r in enumerate(results)
           if r.returncode != 0 or r.stderr]
    assert bad == []
    assert echo.seen() == 9 * 40


EMITTER_EXIT_CHILD = """
    import asyncio, json, sys
    from flightdeck_rs import Emitter
    from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

    events_url, echo_url, prefix, template = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    template = json.loads(template)
    # Long interval and no flush: the events are still queued when the script ends, so the
    # emitter's atexit close delivers them.
    em = Emitter(
        events_url, flush_interval_s=60.0, max_batch_events=1000, atexit_timeout_s=10.0
    )
    for i in range(300):
        assert em.emit({**template, "run_id": f"{prefix}-{i}"})
    sync = FlightdeckClient(echo_url)
    assert sync.health()["status"] == "ok"

    async def main():
        client = AsyncFlightdeckClient(echo_url)
        await asyncio.gather(*(client.health() for _ in range(10)))

    asyncio.run(main())
    print(em.stats()["queue_events"])
"""


def test_process_exit_with_queued_emitter_events_is_clean(echo: EchoServer) -> None:
    """An Emitter with queued events, next to unclosed sync and async clients: every exit is
    clean (code 0, empty stderr) and the atexit close delivers all the events."""
    template = make_events(load_impl("ours").RunEvent, "rel_exit", 1)[0].model_dump(mode="json")
    with EventsServer() as events:
        prefixes = [f"exit-{uuid.uuid4().hex[:8]}-{n}" for n in range(5)]
        results = [
            _run_child(EMITTER_EXIT_CHILD, events.url, echo.url, p, json.dumps(template))
            for p in prefixes
        ]
        delivered = events.unique_ids()
    bad = [(n, r.returncode, r.stderr[-800:]) for n, r in enumerate(results)
           if r.returncode != 0 or r.stderr]
    assert bad == []
    assert [int(r.stdout) for r in results] == [300] * 5  # queued at the end of the script
    assert delivered == {f"{p}-{i}" for p in prefixes for i in range(300)}


def test_process_exit_with_queued_events_and_server_down_is_bounded() -> None:
    """Server down: the exit waits at most atexit_timeout_s, exits 0, and stderr holds only
    the emitter's one-line loss summary."""
    template = make_events(load_impl("ours").RunEvent, "rel_exit", 1)[0].model_dump(mode="json")
    code = EMITTER_EXIT_CHILD.replace("atexit_timeout_s=10.0", "atexit_timeout_s=1.0")
    with EchoServer() as echo:
        start = time.monotonic()
        result = _run_child(
            code, f"http://127.0.0.1:{closed_port()}", echo.url, "down", json.dumps(template)
        )
        elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "flightdeck_rs emitter closed: 300 event(s) were not delivered (at_shutdown=300)"
    ]
    assert elapsed < 1.0 + 10.0  # atexit_timeout_s + interpreter start-up on a loaded machine


CHURN_CHILD = """
    import asyncio, gc, os, sys, time
    from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

    url = sys.argv[1]

    def counts():
        with open("/proc/self/status") as f:
            threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
        return len(os.listdir("/proc/self/fd")), threads

    async def use_async():
        async with AsyncFlightdeckClient(url) as client:
            await asyncio.gather(*(client.health() for _ in range(4)))

    def cycle():
        with FlightdeckClient(url) as client:
            client.health()
        asyncio.run(use_async())
        unclosed = FlightdeckClient(url)  # dropped without close(): the pool goes with it
        unclosed.health()
        del unclosed
        gc.collect()

    cycle()
    baseline = counts()
    for _ in range(100):
        cycle()
    deadline = time.monotonic() + 10
    while counts() > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        gc.collect()
    print(*baseline, *counts())
"""


def test_client_churn_leaks_no_fds_or_threads(echo: EchoServer) -> None:
    """100 rounds of creating, using and closing (or just dropping) clients in a fresh
    process: its open file descriptors and threads come back to where they were."""
    result = _run_child(CHURN_CHILD, echo.url)
    assert result.returncode == 0, result.stderr
    fds_before, threads_before, fds_after, threads_after = map(int, result.stdout.split())
    assert (fds_after, threads_after) == (fds_before, threads_before)
    assert echo.seen() == 101 * 6
