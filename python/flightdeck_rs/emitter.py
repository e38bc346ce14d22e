"""Background event emitter: ``emit()`` never waits on the network.

Events are validated and encoded on the caller's thread, queued in bounded memory, and sent
by one Rust thread per emitter in batches to ``POST /v1/events``, with retries and backoff.
Nothing accepted is dropped silently: every drop is counted by reason in :meth:`stats` and
logged through the ``flightdeck_rs`` logger.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
import weakref
from types import TracebackType
from typing import Any

from flightdeck_rs import _runtimes
from flightdeck_rs._errors import check_api_token
from flightdeck_rs._native import NativeEmitter
from flightdeck_rs.tracking import TrackingMixin

__all__ = ["Emitter", "get_emitter"]

logger = logging.getLogger("flightdeck_rs")

MiB = 1024 * 1024
_DROP_REASONS = {10: "queue_full", 11: "too_large", 12: "after_close", 13: "spool_full"}
_NOTICES = 0x100
_SUMMARY_EVERY_S = 60.0

_live: weakref.WeakSet[Emitter] = weakref.WeakSet()
_registry: dict[tuple[str, str | None], Emitter] = {}
_registry_lock = threading.Lock()


def _atexit_close(ref: weakref.ReferenceType[Emitter]) -> None:
    emitter = ref()
    if emitter is not None and not emitter.closed:
        emitter.close(emitter.atexit_timeout_s)


_orphans: list[tuple[NativeEmitter, float]] = []


def _orphaned(native: NativeEmitter, timeout_s: float) -> None:
    """An emitter was garbage-collected without close(): stop accepting, let its sender
    deliver in the background, and give it until interpreter exit to finish."""
    try:
        native.begin_close(max(timeout_s, 0.1))
    except Exception:  # noqa: BLE001 - a finalizer must not raise
        return
    _orphans.append((native, time.monotonic() + timeout_s))


@atexit.register
def _wait_for_orphans() -> None:
    while _orphans:
        native, deadline = _orphans.pop()
        try:
            native.wait_finished(max(0.0, deadline - time.monotonic()) + 0.3)
            for level, message in native.take_notices():
                (logger.error if level == "error" else logger.warning)("%s", message)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _after_fork_in_child() -> None:
    for emitter in list(_live):
        emitter._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Emitter(TrackingMixin):
    """Sends run events in the background; ``run()`` / ``track()`` build them (see
    :mod:`flightdeck_rs.tracking`).

    Args:
        base_url: Server URL, e.g. ``"http://127.0.0.1:8765"``.
        api_token: Bearer token for a server started with ``FLIGHTDECK_LOCAL_API_TOKEN``.
        max_queue_events: Events held in memory at most. Without a spool, new events are
            dropped (counted, ``queue_full``) when it is full; with a spool it only buffers.
        max_queue_bytes: Encoded bytes held in memory at most.
        max_batch_events: Events per request at most.
        max_batch_bytes: Encoded bytes per request at most.
        flush_interval_s: A partial batch is sent after this long.
        connect_timeout_s: Connection timeout of the sender.
        request_timeout_s: Whole-request timeout of the sender.
        atexit_timeout_s: How long interpreter exit may wait for delivery (0 skips it).
        max_event_bytes: Larger events are dropped at ``emit()`` (``too_large``).
        backoff_base_s: First retry delay (doubling, with jitter).
        backoff_max_s: Longest retry delay; also caps ``Retry-After``.
        spool_dir: Directory of a durable write-ahead spool (off when ``None``). Events
            survive server outages and restarts of this process; a later emitter on the
            same directory replays what was not acknowledged.
        spool_mode: ``"async"`` (the sender writes as it drains; a kill -9 loses at most
            the last drain tick) or ``"sync"`` (``emit()`` writes before returning).
        spool_max_bytes: Spool size cap. With a spool, this (not the memory queue) bounds
            what ``emit()`` accepts during an outage: the sender reads batches back from disk.
            Beyond it new events are refused (``spool_full``; in async mode once the memory
            queue holding what the spool cannot take is full too).
        spool_max_age_s: Spooled events older than this are discarded at replay
            (``spool_expired``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_token: str | None = None,
        max_queue_events: int = 10_000,
        max_queue_bytes: int = 16 * MiB,
        max_batch_events: int = 100,
        max_batch_bytes: int = 1 * MiB,
        flush_interval_s: float = 1.0,
        connect_timeout_s: float = 1.0,
        request_timeout_s: float = 5.0,
        atexit_timeout_s: float = 3.0,
        max_event_bytes: int = 256 * 1024,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_mode: str = "async",
        spool_max_bytes: int = 256 * MiB,
        spool_max_age_s: float = 7 * 24 * 3600.0,
    ) -> None:
        check_api_token(api_token)
        if atexit_timeout_s < 0:
            raise ValueError(f"atexit_timeout_s must be >= 0, got {atexit_timeout_s}")
        self._base_url = base_url.rstrip("/")
        self._native = NativeEmitter(
            self._base_url,
            api_token=api_token,
            max_queue_events=max_queue_events,
            max_queue_bytes=max_queue_bytes,
            max_batch_events=max_batch_events,
            max_batch_bytes=max_batch_bytes,
            max_event_bytes=max_event_bytes,
            flush_interval_s=flush_interval_s,
            connect_timeout_s=connect_timeout_s,
            request_timeout_s=request_timeout_s,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            spool_dir=None if spool_dir is None else os.fspath(spool_dir),
            spool_mode=spool_mode,
            spool_max_bytes=spool_max_bytes,
            spool_max_age_s=spool_max_age_s,
        )
        self.atexit_timeout_s = float(atexit_timeout_s)
        self._closed = False
        self._close_result = True
        self._warned: set[str] = set()
        self._unreported: dict[str, int] = {}
        self._last_summary = time.monotonic()
        self._atexit_cb: Any = None
        if self.atexit_timeout_s > 0:
            self._atexit_cb = functools.partial(_atexit_close, weakref.ref(self))
            atexit.register(self._atexit_cb)
        self._finalizer = weakref.finalize(self, _orphaned, self._native, self.atexit_timeout_s)
        self._finalizer.atexit = False
        _live.add(self)

    def __repr__(self) -> str:
        return f"Emitter(base_url={self._base_url!r}, closed={self._closed})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # -- hot path --------------------------------------------------------------------------

    def emit(self, event: Any) -> bool:
        """Validates, encodes and enqueues ``event``; never waits on the network.

        Args:
            event: Our ``RunEvent``, a pydantic ``flightdeck.models.RunEvent``, a dict, or
                JSON text of one event.

        Returns:
            ``True`` if accepted, ``False`` if dropped (queue or spool full, too large, after
            close).

        Raises:
            ValueError: the event is invalid (``flightdeck_rs.models.ValidationError``).
        """
        code = self._native.emit(event)
        if code & _NOTICES:
            self._drain_notices()
            code &= ~_NOTICES
        if code == 1:
            return True
        self._note_drop(_DROP_REASONS.get(code, "unknown"))
        return False

    # -- waiting ---------------------------------------------------------------------------

    def _wait(self, target: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout_s)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if self._native.wait(target, max(0.0, min(0.05, remaining))):
                    return True
                if remaining <= 0:
                    return False
        finally:
            self._drain_notices()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Sends everything accepted so far; ``True`` once all of it is acknowledged or
        dropped (counted), ``False`` at the deadline. One Ctrl-C interrupts it."""
        return self._wait(self._native.request_flush(), timeout_s)

    def close(self, timeout_s: float = 5.0) -> bool:
        """Flushes with a deadline, then stops the sender. Later ``emit()`` calls return
        ``False`` (``after_close``). Events still undelivered at the deadline are dropped and
        counted as ``at_shutdown``. Idempotent."""
        if self._closed:
            return self._close_result
        self._closed = True
        self._finalizer.detach()
        if self._atexit_cb is not None:
            atexit.unregister(self._atexit_cb)
            self._atexit_cb = None
        target = self._native.request_flush()
        self._native.begin_close(max(0.0, timeout_s))
        delivered = self._wait(target, timeout_s + 0.5)
        self._native.wait_finished(0.5)
        self._drain_notices()
        # Losses at close were already logged from the sender's notices.
        stats = self._native.stats()
        lost = stats["dropped_after_accept"]
        self._close_result = delivered and lost == 0 and stats.get("left_in_spool", 0) == 0
        return self._close_result

    async def aflush(self, timeout_s: float = 5.0) -> bool:
        """Awaitable :meth:`flush` (asyncio or trio); waits in a worker thread, never
        blocking the loop."""
        return await _runtimes.run_sync(self.flush, timeout_s)

    async def aclose(self, timeout_s: float = 5.0) -> bool:
        """Awaitable :meth:`close`."""
        return await _runtimes.run_sync(self.close, timeout_s)

    def stats(self) -> dict[str, Any]:
        """Counters and gauges: ``accepted``, ``acked``, ``server_inserted``,
        ``server_duplicates``, ``requests``, ``retries``, ``dropped`` (per reason, also as
        ``dropped_<reason>``), ``dropped_after_accept``, ``queue_events``, ``queue_bytes``,
        ``in_flight``, ``state`` and ``last_error``. ``queue_events`` counts the events
        waiting in memory or in the spool; ``queue_bytes`` only what memory holds.

        At every quiet point ``accepted == acked + dropped_after_accept + left_in_spool +
        queue_events + in_flight``; ``queue_full``, ``too_large`` (at ``emit``),
        ``after_close`` and ``spool_full`` drops were never accepted. With a spool,
        ``spool_bytes``, ``spool_events`` (not yet acknowledged), ``oldest_unsent_age_s``,
        ``spool_replayed``, ``spool_corrupt_lines`` and ``left_in_spool`` are reported too.
        Run tracking adds its ``track_*`` counters.
        """
        self._drain_notices()
        stats: dict[str, Any] = self._native.stats()
        stats.update(self._track_stats())
        return stats

    def __enter__(self) -> Emitter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Emitter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------------------

    def _after_fork(self) -> None:
        if not self._closed:
            self._native.reset_after_fork()

    def _note_drop(self, reason: str) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            logger.warning(
                "flightdeck_rs emitter dropped an event (%s); further drops are summarised",
                reason,
            )
            return
        self._unreported[reason] = self._unreported.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last_summary >= _SUMMARY_EVERY_S:
            self._last_summary = now
            summary = ", ".join(f"{k}={v}" for k, v in sorted(self._unreported.items()))
            self._unreported.clear()
            logger.warning("flightdeck_rs emitter dropped more events: %s", summary)

    def _drain_notices(self) -> None:
        for level, message in self._native.take_notices():
            if level == "error":
                logger.error("%s", message)
            else:
                logger.warning("%s", message)


def get_emitter(base_url: str, *, api_token: str | None = None, **config: Any) -> Emitter:
    """One emitter per process and ``(base_url, api_token)``: re-running a notebook cell
    returns the same emitter instead of starting another thread. ``config`` applies only
    when the emitter is created."""
    key = (base_url.rstrip("/"), api_token)
    with _registry_lock:
        emitter = _registry.get(key)
        if emitter is None or emitter.closed:
            emitter = Emitter(base_url, api_token=api_token, **config)
            _registry[key] = emitter
        return emitter
