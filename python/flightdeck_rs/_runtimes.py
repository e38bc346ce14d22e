"""Where the clients wait: which event loop is running, and whether gevent or eventlet has
monkey-patched the process.

* **asyncio** (any loop implementation, uvloop included, and anyio on asyncio): the native
  calls return asyncio futures, resolved in batches on the loop's thread (``src/py/runtime.rs``).
  Nothing here is on that path.
* **trio** (and anyio on trio): :func:`foreign_call` gives the native call a
  :class:`TrioCall`, which the I/O thread resumes through the run's ``TrioToken`` (batched the
  same way); a cancelled wait aborts the Rust task, which drops its connection.
* **gevent / eventlet**: when either has patched ``socket``, a blocking native call parks the
  calling greenlet on a :class:`GreenCall` (the others run) while the Rust I/O threads do the
  work; they wake the hub in batches (gevent: one ``async_`` watcher per hub; eventlet: one
  pipe per hub). The native side looks for ``gevent`` or ``eventlet`` in ``sys.modules``
  before calling in here, so without them nothing is imported.

The running library is found the way the ecosystem does: an asyncio loop first (cheap and
exact), then ``sniffio`` when it is installed, then trio's own check.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
import sys
import weakref
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import outcome
    import trio

__all__ = [
    "SUPPORTED",
    "TrioCall",
    "current_library",
    "foreign_call",
    "GreenCall",
    "green_call_factory",
    "run_sync",
    "sleep",
]

T = TypeVar("T")

#: What the async client runs on, as said in errors.
SUPPORTED = "asyncio (uvloop included), trio, or anyio on either backend"


def current_library() -> str | None:
    """``"asyncio"``, ``"trio"``, another library's sniffio name, or ``None`` outside any."""
    if asyncio._get_running_loop() is not None:
        return "asyncio"
    sniffio = sys.modules.get("sniffio")
    if sniffio is None:
        try:
            import sniffio
        except ImportError:
            sniffio = None
    if sniffio is not None:
        try:
            return str(sniffio.current_async_library())
        except sniffio.AsyncLibraryNotFoundError:
            pass
    trio_mod = sys.modules.get("trio")
    if trio_mod is not None:
        try:
            trio_mod.lowlevel.current_task()
        except RuntimeError:
            return None
        return "trio"
    return None


def unsupported(library: str | None) -> RuntimeError:
    """The error for a call made outside any event loop, or under an unsupported one."""
    if library is None:
        return RuntimeError(
            f"no running event loop: the async client must be awaited from {SUPPORTED}"
        )
    return RuntimeError(
        f"the async client cannot run on {library!r}; it runs on {SUPPORTED}"
    )


class TrioCall:
    """One native call awaited under trio.

    The Rust side sets :attr:`canceller` and, on the run's thread (through
    ``token.run_sync_soon``), calls :meth:`done` and then :meth:`set_result` or
    :meth:`set_exception`, as it does with an asyncio future.
    """

    __slots__ = ("token", "canceller", "_task", "_outcome", "_finished", "_cancelled")

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self.token = token
        self.canceller: Callable[[TrioCall], None] | None = None
        self._task: trio.lowlevel.Task | None = None
        self._outcome: outcome.Outcome[Any] | None = None
        self._finished = False
        self._cancelled = False

    def done(self) -> bool:
        return self._finished

    def cancelled(self) -> bool:
        return self._cancelled

    def set_result(self, value: Any) -> None:
        import outcome

        self._deliver(outcome.Value(value))

    def set_exception(self, exc: BaseException) -> None:
        import outcome

        self._deliver(outcome.Error(exc))

    def _deliver(self, result: outcome.Outcome[Any]) -> None:
        import trio

        self._finished = True
        task, self._task = self._task, None
        if task is None:  # finished before anyone awaited it
            self._outcome = result
        else:
            trio.lowlevel.reschedule(task, result)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        import trio

        if not self._finished:
            self._task = trio.lowlevel.current_task()

            def abort(_raise_cancel: Any) -> trio.lowlevel.Abort:
                # The I/O task is aborted at once: its request stops and its connection is
                # dropped, as when an asyncio future is cancelled.
                self._task = None
                self._finished = self._cancelled = True
                if self.canceller is not None:
                    self.canceller(self)
                return trio.lowlevel.Abort.SUCCEEDED

            return await trio.lowlevel.wait_task_rescheduled(abort)
        result, self._outcome = self._outcome, None
        if result is None:
            raise RuntimeError("this native call was already awaited")
        await trio.lowlevel.cancel_shielded_checkpoint()
        return result.unwrap()


def foreign_call() -> TrioCall:
    """A waiter for the running event loop, called by the native side when no asyncio loop
    runs in this thread. Raises ``RuntimeError`` saying what is supported otherwise."""
    library = current_library()
    if library == "trio":
        import trio

        return TrioCall(trio.lowlevel.current_trio_token())
    raise unsupported(library)


async def sleep(delay: float) -> None:
    """``asyncio.sleep`` or ``trio.sleep``, whichever loop is running."""
    if asyncio._get_running_loop() is not None:
        await asyncio.sleep(delay)
        return
    library = current_library()
    if library != "trio":
        raise unsupported(library)
    import trio

    await trio.sleep(delay)


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """Runs a blocking ``fn(*args)`` in a worker thread without blocking the event loop;
    a cancelled caller stops waiting at once (the thread finishes on its own)."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return await loop.run_in_executor(None, fn, *args)
    library = current_library()
    if library != "trio":
        raise unsupported(library)
    import trio

    return await trio.to_thread.run_sync(
        functools.partial(fn, *args), abandon_on_cancel=True
    )


# ----------------------------------------------------------------------------- gevent, eventlet


class GreenCall:
    """One blocking native call waited for by a greenlet. The Rust side runs the call on its
    I/O threads, calls ``token.schedule(drain, key)`` (thread-safe) when a batch of calls is
    done, and the drain, run by the hub, calls :meth:`set_result` (or
    :meth:`set_exception`), which wakes the greenlet parked in :meth:`wait`. The value itself
    stays on the Rust side."""

    __slots__ = ("token", "_event")

    def __init__(self, token: Any, event: Any) -> None:
        self.token = token
        self._event = event

    def done(self) -> bool:
        return bool(self._event.is_set())

    def cancelled(self) -> bool:
        return False

    def set_result(self, _value: Any) -> None:
        self._event.set()

    def set_exception(self, _exc: BaseException) -> None:
        self._event.set()

    def wait(self) -> None:
        self.token.hold()
        try:
            self._event.wait()
        finally:
            self.token.release()


class _GeventBridge:
    """Wakes one gevent hub from the I/O threads: one ``async_`` watcher (thread-safe
    ``send()``, no file descriptor of its own), referenced only while a greenlet waits, so
    that the hub neither exits under a waiting call nor stays up for an idle watcher."""

    def __init__(self, hub: Any) -> None:
        self.pid = os.getpid()
        self._pending: deque[tuple[Callable[[int], None], int]] = deque()
        self._waiting = 0
        self._watcher = hub.loop.async_()
        self._watcher.ref = False
        self._watcher.start(self._run)

    def hold(self) -> None:
        """A greenlet of this hub starts waiting (called in the hub's thread)."""
        self._waiting += 1
        if self._waiting == 1:
            self._watcher.ref = True

    def release(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self._watcher.ref = False

    def schedule(self, drain: Callable[[int], None], key: int) -> None:
        """Called from an I/O thread (with the GIL)."""
        self._pending.append((drain, key))
        self._watcher.send()

    def _run(self) -> None:
        while self._pending:
            drain, key = self._pending.popleft()
            drain(key)


class _EventletBridge:
    """Wakes one eventlet hub from the I/O threads: a pipe written by :meth:`schedule`, read
    by one green thread that runs the drains (eventlet has no thread-safe wake-up of its
    own besides its thread pool)."""

    def __init__(self) -> None:
        eventlet = importlib.import_module("eventlet")
        patcher = importlib.import_module("eventlet.patcher")

        self.pid = os.getpid()
        self._os = patcher.original("os")
        self._pending: deque[tuple[Callable[[int], None], int]] = deque()
        self._r, self._w = self._os.pipe()
        self._os.set_blocking(self._r, False)
        self._os.set_blocking(self._w, False)
        self._trampoline = importlib.import_module("eventlet.hubs").trampoline
        eventlet.spawn(self._dispatch)

    def hold(self) -> None:
        """Nothing to do: the reading green thread keeps the hub busy."""

    def release(self) -> None:
        pass

    def schedule(self, drain: Callable[[int], None], key: int) -> None:
        """Called from an I/O thread (with the GIL)."""
        self._pending.append((drain, key))
        with contextlib.suppress(BlockingIOError):  # already full: the reader will wake
            self._os.write(self._w, b"!")

    def _dispatch(self) -> None:
        while True:
            self._trampoline(self._r, read=True)
            with contextlib.suppress(BlockingIOError):
                self._os.read(self._r, 4096)
            while self._pending:
                drain, key = self._pending.popleft()
                drain(key)


_bridges: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _bridge(hub: Any, make: Callable[[], Any]) -> Any:
    bridge = _bridges.get(hub)
    if bridge is None or bridge.pid != os.getpid():
        bridge = _bridges[hub] = make()
    return bridge


def _gevent_call() -> GreenCall:
    hub = importlib.import_module("gevent").get_hub()
    event = importlib.import_module("gevent.event").Event()
    return GreenCall(_bridge(hub, lambda: _GeventBridge(hub)), event)


def _eventlet_call() -> GreenCall:
    hubs = importlib.import_module("eventlet.hubs")
    event_cls = importlib.import_module("eventlet.event").Event

    class _Flag:  # eventlet's Event, with the is_set()/set() of threading's
        __slots__ = ("_event",)

        def __init__(self) -> None:
            self._event = event_cls()

        def is_set(self) -> bool:
            return bool(self._event.ready())

        def set(self) -> None:
            if not self._event.ready():
                self._event.send(None)

        def wait(self) -> None:
            self._event.wait()

    return GreenCall(_bridge(hubs.get_hub(), _EventletBridge), _Flag())


def green_call_factory() -> Callable[[], GreenCall] | None:
    """When gevent or eventlet has monkey-patched ``socket`` (then the reference's httpx
    calls yield to other greenlets too), a ``make()`` giving a :class:`GreenCall` for the
    calling thread's hub; ``None`` otherwise. Imports only what is already imported."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        return _gevent_call
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("socket"):
        return _eventlet_call
    return None
