"""Event loops for the async face of the tests: one long-lived loop per client, like
``asyncio.Runner``, on asyncio, trio, or anyio with either backend.

``make_runner(name)`` returns an object with ``run(coroutine)`` and ``close()``. The trio and
anyio loops run in a thread of their own (trio has no re-entrant runner), so a client keeps one
loop for its whole life; the coroutine is awaited there and its result or exception comes back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from contextlib import AbstractContextManager
from typing import Any

#: Every backend of the async face (asyncio is the default one of ``conftest.ClientFace``).
BACKENDS = ("asyncio", "trio", "anyio-asyncio", "anyio-trio")


class TrioRunner:
    """A ``trio.run`` in a thread, waiting for work sent with ``trio.from_thread.run``."""

    def __init__(self) -> None:
        import trio

        self._trio = trio
        ready = threading.Event()
        self._token: Any = None
        self._stop: Any = None

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            ready.set()
            await self._stop.wait()

        self._thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("trio did not start")

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        async def body() -> Any:
            return await coro

        return self._trio.from_thread.run(body, trio_token=self._token)

    def close(self) -> None:
        if self._thread.is_alive():
            self._trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            self._thread.join(10)


class AnyioRunner:
    """An anyio blocking portal (its own event loop thread) on ``backend``."""

    def __init__(self, backend: str) -> None:
        import anyio.from_thread

        self._cm: AbstractContextManager[Any] = anyio.from_thread.start_blocking_portal(backend)
        self._portal = self._cm.__enter__()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        async def body() -> Any:
            return await coro

        return self._portal.call(body)

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


def make_runner(backend: str) -> Any:
    if backend == "asyncio":
        return asyncio.Runner()
    if backend == "trio":
        return TrioRunner()
    if backend in ("anyio-asyncio", "anyio-trio"):
        return AnyioRunner(backend.removeprefix("anyio-"))
    raise ValueError(f"unknown async backend {backend!r}")


def run(backend: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` (an async function) run to completion on a fresh loop of ``backend``."""
    if backend == "asyncio":
        return asyncio.run(fn(*args))
    if backend == "trio":
        import trio

        return trio.run(fn, *args)
    import anyio

    return anyio.run(fn, *args, backend=backend.removeprefix("anyio-"))
