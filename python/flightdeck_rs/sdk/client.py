"""``FlightdeckClient`` and ``AsyncFlightdeckClient``: the reference SDK's surface on a Rust
transport.

Every request is defined once in the Rust core (method, path, query, body). The sync client
blocks on it with the GIL released (or waits cooperatively under gevent/eventlet); the async
client awaits it on the running event loop (asyncio or trio). When an ``httpx`` client is
injected, the same request goes through it instead, so ``httpx.MockTransport``, proxies and
custom CAs keep working.

Everything the two classes share is written once in ``flightdeck_rs.sdk._core`` (requests,
responses, errors, the injected path's retry loop) and ``flightdeck_rs._steps`` (which drives
that loop blocking or awaiting). A public method is its signature, its docstring and one
line; what differs between the classes is only how they wait: the ``_json``, ``_export``,
``_open_runs_export`` and ``_exchange`` primitives below.
"""

from __future__ import annotations

import time

from flightdeck_rs import _native
from flightdeck_rs._lazy import lazy_module
from flightdeck_rs._steps import arun, run
from flightdeck_rs.sdk._core import (
    ClientCore,
    args,
    as_list,
    awaiting,
    chunks,
    export_request,
    export_result,
    stream_of,
)

# Imported when first used, not with the package (see ``flightdeck_rs._lazy``): httpx only
# matters to injected clients and error paths, _runtimes to the injected async path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
    from typing import Any, Unpack

    import httpx

    from flightdeck_rs import _runtimes
    from flightdeck_rs._helpers_base import JsonlSource, ProgressCallback, RunFilters
    from flightdeck_rs._jsonl import IngestSummary
    from flightdeck_rs._native import NativeExportStream, NativeRequest
    from flightdeck_rs.models import RunEvent
    from flightdeck_rs.sdk._core import Step
else:
    # The running async library's sleep for the injected path's retries (asyncio or trio).
    _runtimes = lazy_module("flightdeck_rs._runtimes", globals())

__all__ = ["FlightdeckClient", "AsyncFlightdeckClient"]


class FlightdeckClient:
    """Synchronous client for a running ``flightdeck serve``.

    Args:
        base_url: Server URL, e.g. ``"http://127.0.0.1:8765"``; trailing ``/`` are removed.
        timeout_s: Connect and read timeout in seconds (``None``: no timeout).
        max_retries: Extra attempts after a transport failure (``httpx.RequestError``).
        retry_backoff_s: Sleep before retry *n* is ``retry_backoff_s * 2**n``.
        api_token: Bearer token, required by a server started with
            ``FLIGHTDECK_LOCAL_API_TOKEN``.
        client: An ``httpx.Client`` to send requests through instead of the native
            transport; it is not closed by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        max_retries: int = 0,
        retry_backoff_s: float = 0.1,
        api_token: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        core = ClientCore(base_url, timeout_s, max_retries, retry_backoff_s, api_token, client)
        self._core, self._native, self._client = core, core.native, client

    def __repr__(self) -> str:
        return f"FlightdeckClient(base_url={self._native.base_url!r})"

    def __enter__(self) -> FlightdeckClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection pool (an injected ``httpx.Client`` is left open)."""
        if self._client is None:
            self._native.close()

    # -- how this client waits ---------------------------------------------------------------

    def _perform(self, step: Step) -> Any:
        if isinstance(step, float):
            return time.sleep(step)
        assert self._client is not None
        return self._client.request(**step)

    def _exchange(self, req: NativeRequest) -> httpx.Response:
        return run(self._core.exchange(req), self._perform)

    def _json(self, req: NativeRequest) -> Any:
        if self._client is None:
            return self._core.decoded(req, self._native.send(req))
        return self._exchange(req).json()

    def _export(self, req: NativeRequest) -> tuple[bytes, dict[str, str]]:
        if self._client is None:
            resp = self._core.checked(req, self._native.send(req))
            return resp.body, resp.export_headers()
        return export_result(self._exchange(req))

    def _open_runs_export(self, **params: Any) -> NativeExportStream:
        """``GET /v1/runs/export`` with the body left unread: a stream that parses it line
        by line as it arrives (``fetch_runs_export_ndjson``'s parameters)."""
        req = export_request(params)
        if self._client is None:
            return self._core.opened(req, self._native.open_stream(req))
        return stream_of(self._exchange(req))

    def _ingest(self, events: Iterable[RunEvent]) -> int:
        if self._client is None:  # one GIL-free section: encode, send, receive
            sent = self._native.send_events(as_list(events))
            return 0 if sent is None else self._core.inserted(*sent)
        req = _native.ingest(as_list(events))
        return 0 if req is None else int(self._json(req)["inserted"])

    def _ingest_jsonl(self, **params: Any) -> IngestSummary:
        from flightdeck_rs._ingest import ingest_jsonl

        return ingest_jsonl(self, **params)

    def _ingest_batch(self, events: Iterable[RunEvent], chunk_size: int) -> int:
        parts = chunks(events, chunk_size)
        if self._client is not None:
            return sum(self._ingest(part) for part in parts)
        # Pipelined: chunk n+1 is encoded (without the GIL) while chunk n is in flight.
        native, total = self._native, 0
        ready: NativeRequest | None = None
        while True:
            try:
                batch = _native.collect(next(parts, []))
            except BaseException:
                if ready is not None:  # chunks before the failing one are still sent
                    self._core.inserted(ready, native.send(ready))
                raise
            resp = native.send_and_encode(ready, batch)
            if ready is not None and resp is not None:
                total += self._core.inserted(ready, resp)
            if batch is None:
                return total
            ready = batch.request()

    # -- endpoints ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /health``: ``{"status": "ok", "mutation_auth": …, "read_auth": …}``."""
        return self._json(_native.health())  # type: ignore[no-any-return]

    def get_workspace(self) -> dict[str, Any]:
        """``GET /v1/workspace``: the public workspace flags and server version."""
        return self._json(_native.get_workspace())  # type: ignore[no-any-return]

    def get_metrics(self) -> dict[str, Any]:
        """``GET /v1/metrics``: ledger counters (an addition; the reference has no method)."""
        return self._json(_native.get_metrics())  # type: ignore[no-any-return]

    def list_releases(self) -> dict[str, Any]:
        """``GET /v1/releases``: ``{"releases": [...]}``, newest first."""
        return self._json(_native.list_releases())  # type: ignore[no-any-return]

    def list_promoted(self) -> dict[str, Any]:
        """``GET /v1/promoted``: the promoted release per agent and environment."""
        return self._json(_native.list_promoted())  # type: ignore[no-any-return]

    def list_actions(
        self,
        *,
        agent_id: str | None = None,
        environment: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """``GET /v1/actions``: the audit log, newest first."""
        return self._json(_native.list_actions(**args(locals())))  # type: ignore[no-any-return]

    def post_diff(
        self,
        *,
        baseline_release_id: str,
        candidate_release_id: str,
        window: str,
        environment: str | None = None,
        tenant_id: str | None = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/diff``: cost / latency / error-rate diff with a confidence label."""
        return self._json(_native.post_diff(**args(locals())))  # type: ignore[no-any-return]

    def post_promote(
        self,
        *,
        release_id: str,
        environment: str,
        window: str,
        reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/promote``; a policy block raises ``HTTPStatusError`` (409)."""
        req = _native.promote_like(action="promote", **args(locals()))
        return self._json(req)  # type: ignore[no-any-return]

    def post_promote_request(
        self,
        *,
        release_id: str,
        environment: str,
        window: str,
        reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/promote/request``: first step of a two-step promotion."""
        req = _native.promote_like(action="request", **args(locals()))
        return self._json(req)  # type: ignore[no-any-return]

    def post_promote_confirm(
        self,
        *,
        request_id: str,
        approval_reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/promote/confirm``: completes a pending promotion request."""
        return self._json(_native.promote_confirm(**args(locals())))  # type: ignore[no-any-return]

    def list_promotion_requests(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """``GET /v1/promotion-requests``, newest first."""
        req = _native.list_promotion_requests(**args(locals()))
        return self._json(req)  # type: ignore[no-any-return]

    def list_runs(
        self,
        *,
        release_id: str,
        window: str,
        environment: str | None = None,
        tenant_id: str | None = None,
        task_id: str | None = None,
        trace_id: str | None = None,
        session_id: str | None = None,
        span_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """``GET /v1/runs``: a page of events, newest first."""
        req = _native.list_runs(export=False, **args(locals()))
        return self._json(req)  # type: ignore[no-any-return]

    def fetch_runs_export_ndjson(
        self,
        *,
        release_id: str,
        window: str,
        environment: str | None = None,
        tenant_id: str | None = None,
        task_id: str | None = None,
        trace_id: str | None = None,
        session_id: str | None = None,
        span_id: str | None = None,
        offset: int = 0,
        limit: int = 500,
    ) -> tuple[bytes, dict[str, str]]:
        """``GET /v1/runs/export``: the raw NDJSON body and the ``X-Flightdeck-*`` headers."""
        return self._export(_native.list_runs(export=True, **args(locals())))

    def post_rollback(
        self,
        *,
        release_id: str,
        environment: str,
        window: str,
        reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/rollback``; a policy block raises ``HTTPStatusError`` (409)."""
        req = _native.promote_like(action="rollback", **args(locals()))
        return self._json(req)  # type: ignore[no-any-return]

    def ingest_run_events(self, events: Iterable[RunEvent]) -> int:
        """``POST /v1/events`` in one request; returns how many events were inserted.

        Accepts ``RunEvent`` instances (ours or pydantic's) and dicts; all are validated
        before anything is sent. Returns ``0`` without a request when ``events`` is empty.
        """
        return self._ingest(events)

    def ingest_run_events_batch(self, events: Iterable[RunEvent], *, chunk_size: int = 500) -> int:
        """Sends ``events`` in chunks of ``chunk_size``; returns the total inserted.

        Chunks are sent in order, one at a time; a failing chunk raises after the chunks
        before it were ingested.
        """
        return self._ingest_batch(events, chunk_size)

    # -- everyday-use helpers (see flightdeck_rs.helpers) -----------------------------------

    def iter_runs(
        self,
        *,
        release_id: str,
        window: str,
        page_size: int = 500,
        **filters: Unpack[RunFilters],
    ) -> Iterator[RunEvent]:
        """Every matching event of ``GET /v1/runs``, newest first, fetched page by page.

        Args:
            release_id: Release whose events are read.
            window: Look-back window, e.g. ``"7d"``.
            page_size: Events per request (at most 500).
            **filters: ``environment``, ``tenant_id``, ``task_id``, ``trace_id``,
                ``session_id``, ``span_id``.

        Returns:
            An iterator of events; see :func:`flightdeck_rs.helpers.iter_runs`.
        """
        from flightdeck_rs._paging import iter_runs

        return iter_runs(self, release_id=release_id, window=window, page_size=page_size, **filters)

    def iter_runs_export(
        self,
        *,
        release_id: str,
        window: str,
        page_size: int = 500,
        **filters: Unpack[RunFilters],
    ) -> Iterator[RunEvent]:
        """Every matching event of the NDJSON export, parsed line by line, page by page.

        Args:
            release_id: Release whose events are read.
            window: Look-back window, e.g. ``"7d"``.
            page_size: Events per request (at most 500).
            **filters: ``environment``, ``tenant_id``, ``task_id``, ``trace_id``,
                ``session_id``, ``span_id``.

        Returns:
            An iterator of events; see :func:`flightdeck_rs.helpers.iter_runs_export`.
        """
        from flightdeck_rs._paging import iter_runs_export

        return iter_runs_export(
            self, release_id=release_id, window=window, page_size=page_size, **filters
        )

    def ingest_jsonl(
        self,
        path_or_file: JsonlSource,
        *,
        chunk_size: int = 500,
        concurrency: int = 4,
        progress: ProgressCallback | None = None,
        max_retries: int = 2,
    ) -> IngestSummary:
        """Streams a JSONL file of events to the server, ``concurrency`` chunks at a time.

        Args:
            path_or_file: A path, or a file object open for reading.
            chunk_size: Events per request.
            concurrency: Requests in flight at most (worker threads; on the async client,
                tasks).
            progress: ``progress(done_lines, sent, inserted)`` after each chunk.
            max_retries: Retries of a chunk after a transient failure.

        Returns:
            The summary; see :func:`flightdeck_rs.helpers.ingest_jsonl` (and
            :func:`~flightdeck_rs.helpers.aingest_jsonl` for the async client).
        """
        return self._ingest_jsonl(**args(locals()))


class AsyncFlightdeckClient:
    """Asynchronous client: the same methods as :class:`FlightdeckClient`, as coroutines.

    The arguments are :class:`FlightdeckClient`'s, except ``client``: an
    ``httpx.AsyncClient`` to send requests through instead of the native transport; it is
    not closed by :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        max_retries: int = 0,
        retry_backoff_s: float = 0.1,
        api_token: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        core = ClientCore(base_url, timeout_s, max_retries, retry_backoff_s, api_token, client)
        self._core, self._native, self._client = core, core.native, client

    def __repr__(self) -> str:
        return f"AsyncFlightdeckClient(base_url={self._native.base_url!r})"

    async def __aenter__(self) -> AsyncFlightdeckClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connection pool (an injected ``httpx.AsyncClient`` is left open)."""
        if self._client is None:
            self._native.close()

    # -- how this client waits ---------------------------------------------------------------

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, float):
            return await _runtimes.sleep(step)
        assert self._client is not None
        return await self._client.request(**step)

    async def _exchange(self, req: NativeRequest) -> httpx.Response:
        return await arun(self._core.exchange(req), self._perform)

    def _json(self, req: NativeRequest) -> Awaitable[Any]:
        # Natively one awaitable (sent, checked and decoded by the native client: no
        # coroutine of ours to step through on the event loop's thread).
        if self._client is None:
            return self._native.send_json_async(req, self._core)  # type: ignore[no-any-return]
        return self._json_injected(req)

    async def _json_injected(self, req: NativeRequest) -> Any:
        return (await self._exchange(req)).json()

    async def _export(self, req: NativeRequest) -> tuple[bytes, dict[str, str]]:
        if self._client is None:
            resp = self._core.checked(req, await self._native.send_async(req))
            return resp.body, resp.export_headers()
        return export_result(await self._exchange(req))

    async def _open_runs_export(self, **params: Any) -> NativeExportStream:
        """Async twin of :meth:`FlightdeckClient._open_runs_export`."""
        req = export_request(params)
        if self._client is None:
            return self._core.opened(req, await self._native.open_stream_async(req))
        return stream_of(await self._exchange(req))

    async def _ingest(self, events: Iterable[RunEvent]) -> int:
        req = _native.ingest(as_list(events))
        return 0 if req is None else int((await self._json(req))["inserted"])

    async def _ingest_batch(self, events: Iterable[RunEvent], chunk_size: int) -> int:
        total = 0
        for part in chunks(events, chunk_size):
            total += await self._ingest(part)
        return total

    async def _ingest_jsonl(self, **params: Any) -> IngestSummary:
        from flightdeck_rs._ingest import aingest_jsonl

        return await aingest_jsonl(self, **params)

    # -- endpoints: FlightdeckClient's, each awaiting this client's primitives ---------------

    health = awaiting(FlightdeckClient.health)
    get_workspace = awaiting(FlightdeckClient.get_workspace)
    get_metrics = awaiting(FlightdeckClient.get_metrics)
    list_releases = awaiting(FlightdeckClient.list_releases)
    list_promoted = awaiting(FlightdeckClient.list_promoted)
    list_actions = awaiting(FlightdeckClient.list_actions)
    post_diff = awaiting(FlightdeckClient.post_diff)
    post_promote = awaiting(FlightdeckClient.post_promote)
    post_promote_request = awaiting(FlightdeckClient.post_promote_request)
    post_promote_confirm = awaiting(FlightdeckClient.post_promote_confirm)
    list_promotion_requests = awaiting(FlightdeckClient.list_promotion_requests)
    list_runs = awaiting(FlightdeckClient.list_runs)
    fetch_runs_export_ndjson = awaiting(FlightdeckClient.fetch_runs_export_ndjson)
    post_rollback = awaiting(FlightdeckClient.post_rollback)
    ingest_run_events = awaiting(FlightdeckClient.ingest_run_events)
    ingest_run_events_batch = awaiting(FlightdeckClient.ingest_run_events_batch)
    ingest_jsonl = awaiting(FlightdeckClient.ingest_jsonl)

    # -- paging: async iterators -------------------------------------------------------------

    def iter_runs(
        self, *, release_id: str, window: str, page_size: int = 500, **filters: Unpack[RunFilters]
    ) -> AsyncIterator[RunEvent]:
        """:meth:`FlightdeckClient.iter_runs` as an async generator:
        ``async for event in client.iter_runs(...)``; see
        :func:`flightdeck_rs.helpers.aiter_runs`."""
        from flightdeck_rs._paging import aiter_runs

        return aiter_runs(
            self, release_id=release_id, window=window, page_size=page_size, **filters
        )

    def iter_runs_export(
        self, *, release_id: str, window: str, page_size: int = 500, **filters: Unpack[RunFilters]
    ) -> AsyncIterator[RunEvent]:
        """:meth:`FlightdeckClient.iter_runs_export` as an async generator; see
        :func:`flightdeck_rs.helpers.aiter_runs_export`."""
        from flightdeck_rs._paging import aiter_runs_export as walk

        return walk(self, release_id=release_id, window=window, page_size=page_size, **filters)
