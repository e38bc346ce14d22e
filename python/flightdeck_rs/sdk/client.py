"""``FlightdeckClient`` and ``AsyncFlightdeckClient``: the reference SDK's surface on a Rust
transport.

Every request is defined once in the Rust core (method, path, query, body). The sync client
blocks on it with the GIL released (or waits cooperatively under gevent/eventlet); the async
client awaits it on the running event loop (asyncio or trio). When an ``httpx`` client is
injected, the same request goes through it instead, so ``httpx.MockTransport``, proxies and
custom CAs keep working.
"""

from __future__ import annotations

import time
from itertools import islice

from flightdeck_rs import _logging, _native
from flightdeck_rs._errors import check_api_token
from flightdeck_rs._lazy import lazy_module
from flightdeck_rs._native import (
    NativeClient,
    NativeExportStream,
    NativeRequest,
    NativeResponse,
)
from flightdeck_rs.models import RunEvent

# Imported when first used, not with the package (see ``flightdeck_rs._lazy``): httpx only
# matters to injected clients and error paths, _runtimes to the injected async path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import json
    from collections.abc import Iterable
    from types import TracebackType
    from typing import Any

    import httpx

    from flightdeck_rs import _retry, _runtimes
else:
    # The running async library's sleep for the injected path's retries (asyncio or trio).
    _runtimes = lazy_module("flightdeck_rs._runtimes", globals())
    # The retry rule of the injected path (core/retry.rs), needed only after a failure.
    _retry = lazy_module("flightdeck_rs._retry", globals())
    json = lazy_module("json", globals())
    httpx = lazy_module("httpx", globals())

__all__ = ["FlightdeckClient", "AsyncFlightdeckClient"]

EXPORT_HEADER_KEYS = _native.EXPORT_HEADER_KEYS


def _native_client(
    base_url: str,
    timeout_s: float | None,
    max_retries: int,
    retry_backoff_s: float,
    api_token: str | None,
) -> NativeClient:
    check_api_token(api_token)
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    return NativeClient(
        base_url,
        timeout_s=None if timeout_s is None else float(timeout_s),
        max_retries=int(max_retries),
        retry_backoff_s=float(retry_backoff_s),
        api_token=api_token,
        observer=_logging.observe,
        slow_request_s=_logging.slow_request_s(),
    )


def _status_error(
    native: NativeClient, req: NativeRequest, resp: NativeResponse
) -> httpx.HTTPStatusError:
    """Builds the exact ``HTTPStatusError`` httpx raises, with real Request/Response objects
    (the request carries the headers that were sent, as httpx's does)."""
    request = httpx.Request(
        req.method, native.url(req), content=req.body, headers=native.headers(req)
    )
    response = httpx.Response(
        resp.status,
        headers=resp.headers,
        content=resp.body,
        request=request,
        extensions={"reason_phrase": resp.reason, "http_version": b"HTTP/1.1"},
    )
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return exc
    return httpx.HTTPStatusError(  # pragma: no cover - only non-2xx reach here
        f"unexpected status {resp.status}", request=request, response=response
    )


def _export_request(
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
) -> NativeRequest:
    return _native.list_runs(
        release_id, window, environment, tenant_id, task_id, trace_id, session_id,
        span_id, offset, limit, True,
    )


def _log_path(req: NativeRequest) -> str:
    return req.path.partition("?")[0]


def _log_retry(
    req: NativeRequest, exc: Exception, attempt: int, max_retries: int, delay: float
) -> None:
    _logging.retry(
        req.method, _log_path(req), type(exc).__name__, str(exc), attempt + 1, max_retries, delay
    )


def _log_if_slow(
    req: NativeRequest, started: float, attempts: int, status: int | None, slow_s: float
) -> None:
    elapsed = time.perf_counter() - started
    if elapsed >= slow_s:
        _logging.slow(req.method, _log_path(req), elapsed, attempts, status)


def _as_list(events: Iterable[Any]) -> list[Any]:
    return events if type(events) is list else list(events)


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
        self._native = _native_client(base_url, timeout_s, max_retries, retry_backoff_s, api_token)
        self._owns_client = client is None
        self._client = client
        self._max_retries = max(0, int(max_retries))
        self._backoff_s = max(0.0, float(retry_backoff_s))
        self._slow_s = _logging.slow_request_s()

    def __repr__(self) -> str:
        return f"FlightdeckClient(base_url={self._native.base_url!r})"

    def __enter__(self) -> FlightdeckClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection pool (an injected ``httpx.Client`` is left open)."""
        if self._owns_client:
            self._native.close()

    # -- transport -------------------------------------------------------------------------

    def _send_injected(self, req: NativeRequest) -> httpx.Response:
        client = self._client
        assert client is not None
        url = self._native.url(req)
        headers = self._native.headers(req)
        body = req.body
        attempt = 0
        started = time.perf_counter()
        status: int | None = None
        try:
            while True:
                try:
                    if body is None:
                        resp = client.request(req.method, url, headers=headers)
                    else:
                        resp = client.request(req.method, url, content=body, headers=headers)
                    break
                except httpx.RequestError as exc:
                    delay = _retry.client_retry_delay(
                        exc,
                        idempotent=req.idempotent,
                        attempt=attempt,
                        max_retries=self._max_retries,
                        backoff_s=self._backoff_s,
                    )
                    if delay is None:
                        raise
                    _log_retry(req, exc, attempt, self._max_retries, delay)
                    time.sleep(delay)
                    attempt += 1
            status = resp.status_code
        finally:
            _log_if_slow(req, started, attempt + 1, status, self._slow_s)
        resp.raise_for_status()
        return resp

    def _send(self, req: NativeRequest) -> NativeResponse:
        resp = self._native.send(req)
        if not 200 <= resp.status < 300:
            raise _status_error(self._native, req, resp)
        return resp

    def _json(self, req: NativeRequest) -> Any:
        if self._client is not None:
            return self._send_injected(req).json()
        return json.loads(self._send(req).body)

    def _inserted(self, req: NativeRequest, resp: NativeResponse) -> int:
        if not 200 <= resp.status < 300:
            raise _status_error(self._native, req, resp)
        return int(json.loads(resp.body)["inserted"])

    # -- endpoints -------------------------------------------------------------------------

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
        return self._json(  # type: ignore[no-any-return]
            _native.list_actions(agent_id, environment, limit)
        )

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
        req = _native.post_diff(
            baseline_release_id, candidate_release_id, window, environment, tenant_id, task_id
        )
        return self._json(req)  # type: ignore[no-any-return]

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
        req = _native.promote_like("promote", release_id, environment, window, reason, actor)
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
        req = _native.promote_like("request", release_id, environment, window, reason, actor)
        return self._json(req)  # type: ignore[no-any-return]

    def post_promote_confirm(
        self,
        *,
        request_id: str,
        approval_reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/promote/confirm``: completes a pending promotion request."""
        req = _native.promote_confirm(request_id, approval_reason, actor)
        return self._json(req)  # type: ignore[no-any-return]

    def list_promotion_requests(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """``GET /v1/promotion-requests``, newest first."""
        return self._json(  # type: ignore[no-any-return]
            _native.list_promotion_requests(status, limit)
        )

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
        req = _native.list_runs(
            release_id, window, environment, tenant_id, task_id, trace_id, session_id,
            span_id, offset, limit, False,
        )
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
        req = _native.list_runs(
            release_id, window, environment, tenant_id, task_id, trace_id, session_id,
            span_id, offset, limit, True,
        )
        if self._client is not None:
            r = self._send_injected(req)
            return r.content, {k: r.headers[k] for k in EXPORT_HEADER_KEYS if k in r.headers}
        resp = self._send(req)
        return resp.body, resp.export_headers()

    def _open_runs_export(self, **params: Any) -> NativeExportStream:
        """``GET /v1/runs/export`` with the body left unread: a stream that parses it line
        by line as it arrives (``fetch_runs_export_ndjson``'s parameters)."""
        req = _export_request(**params)
        if self._client is not None:
            r = self._send_injected(req)
            return NativeExportStream.from_body(r.content, list(r.headers.multi_items()))
        resp, stream = self._native.open_stream(req)
        if stream is None:
            raise _status_error(self._native, req, resp)
        return stream

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
        req = _native.promote_like("rollback", release_id, environment, window, reason, actor)
        return self._json(req)  # type: ignore[no-any-return]

    def ingest_run_events(self, events: Iterable[RunEvent]) -> int:
        """``POST /v1/events`` in one request; returns how many events were inserted.

        Accepts ``RunEvent`` instances (ours or pydantic's) and dicts; all are validated
        before anything is sent. Returns ``0`` without a request when ``events`` is empty.
        """
        if self._client is not None:
            req = _native.ingest(_as_list(events))
            if req is None:
                return 0
            return int(self._json(req)["inserted"])
        # One GIL-free section: encode, send, receive.
        sent = self._native.send_events(_as_list(events))
        if sent is None:
            return 0
        return self._inserted(*sent)

    def ingest_run_events_batch(self, events: Iterable[RunEvent], *, chunk_size: int = 500) -> int:
        """Sends ``events`` in chunks of ``chunk_size``; returns the total inserted.

        Chunks are sent in order, one at a time; a failing chunk raises after the chunks
        before it were ingested.
        """
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        total = 0
        it = iter(events)
        if self._client is not None:
            while chunk := list(islice(it, chunk_size)):
                total += self.ingest_run_events(chunk)
            return total
        # Pipelined: chunk n+1 is encoded (without the GIL) while chunk n is in flight.
        native = self._native
        ready: NativeRequest | None = None
        while True:
            try:
                batch = _native.collect(list(islice(it, chunk_size)))
            except BaseException:
                if ready is not None:  # chunks before the failing one are still sent
                    self._inserted(ready, native.send(ready))
                raise
            resp = native.send_and_encode(ready, batch)
            if ready is not None and resp is not None:
                total += self._inserted(ready, resp)
            if batch is None:
                return total
            ready = batch.request()

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
        from flightdeck_rs import helpers

        return helpers.iter_runs(
            self, release_id=release_id, window=window, page_size=page_size, **filters
        )

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
        from flightdeck_rs import helpers

        return helpers.iter_runs_export(
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
            concurrency: Requests in flight at most (worker threads).
            progress: ``progress(done_lines, sent, inserted)`` after each chunk.
            max_retries: Retries of a chunk after a transient failure.

        Returns:
            The summary; see :func:`flightdeck_rs.helpers.ingest_jsonl`.
        """
        from flightdeck_rs import helpers

        return helpers.ingest_jsonl(
            self,
            path_or_file,
            chunk_size=chunk_size,
            concurrency=concurrency,
            progress=progress,
            max_retries=max_retries,
        )


class AsyncFlightdeckClient:
    """Asynchronous client: the same methods as :class:`FlightdeckClient`, as coroutines.

    Args:
        base_url: Server URL, e.g. ``"http://127.0.0.1:8765"``; trailing ``/`` are removed.
        timeout_s: Connect and read timeout in seconds (``None``: no timeout).
        max_retries: Extra attempts after a transport failure (``httpx.RequestError``).
        retry_backoff_s: Sleep before retry *n* is ``retry_backoff_s * 2**n``.
        api_token: Bearer token, required by a server started with
            ``FLIGHTDECK_LOCAL_API_TOKEN``.
        client: An ``httpx.AsyncClient`` to send requests through instead of the native
            transport; it is not closed by :meth:`aclose`.
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
        self._native = _native_client(base_url, timeout_s, max_retries, retry_backoff_s, api_token)
        self._owns_client = client is None
        self._client = client
        self._max_retries = max(0, int(max_retries))
        self._backoff_s = max(0.0, float(retry_backoff_s))
        self._slow_s = _logging.slow_request_s()

    def __repr__(self) -> str:
        return f"AsyncFlightdeckClient(base_url={self._native.base_url!r})"

    async def __aenter__(self) -> AsyncFlightdeckClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connection pool (an injected ``httpx.AsyncClient`` is left open)."""
        if self._owns_client:
            self._native.close()

    # -- transport -------------------------------------------------------------------------

    async def _send_injected(self, req: NativeRequest) -> httpx.Response:
        client = self._client
        assert client is not None
        url = self._native.url(req)
        headers = self._native.headers(req)
        body = req.body
        attempt = 0
        started = time.perf_counter()
        status: int | None = None
        try:
            while True:
                try:
                    if body is None:
                        resp = await client.request(req.method, url, headers=headers)
                    else:
                        resp = await client.request(req.method, url, content=body, headers=headers)
                    break
                except httpx.RequestError as exc:
                    delay = _retry.client_retry_delay(
                        exc,
                        idempotent=req.idempotent,
                        attempt=attempt,
                        max_retries=self._max_retries,
                        backoff_s=self._backoff_s,
                    )
                    if delay is None:
                        raise
                    _log_retry(req, exc, attempt, self._max_retries, delay)
                    await _runtimes.sleep(delay)
                    attempt += 1
            status = resp.status_code
        finally:
            _log_if_slow(req, started, attempt + 1, status, self._slow_s)
        resp.raise_for_status()
        return resp

    async def _send(self, req: NativeRequest) -> NativeResponse:
        resp: NativeResponse = await self._native.send_async(req)
        if not 200 <= resp.status < 300:
            raise _status_error(self._native, req, resp)
        return resp

    async def _json(self, req: NativeRequest) -> Any:
        if self._client is not None:
            return (await self._send_injected(req)).json()
        return json.loads((await self._send(req)).body)

    # -- endpoints -------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``GET /health``: ``{"status": "ok", "mutation_auth": …, "read_auth": …}``."""
        return await self._json(_native.health())  # type: ignore[no-any-return]

    async def get_workspace(self) -> dict[str, Any]:
        """``GET /v1/workspace``: the public workspace flags and server version."""
        return await self._json(_native.get_workspace())  # type: ignore[no-any-return]

    async def get_metrics(self) -> dict[str, Any]:
        """``GET /v1/metrics``: ledger counters (an addition; the reference has no method)."""
        return await self._json(_native.get_metrics())  # type: ignore[no-any-return]

    async def list_releases(self) -> dict[str, Any]:
        """``GET /v1/releases``: ``{"releases": [...]}``, newest first."""
        return await self._json(_native.list_releases())  # type: ignore[no-any-return]

    async def list_promoted(self) -> dict[str, Any]:
        """``GET /v1/promoted``: the promoted release per agent and environment."""
        return await self._json(_native.list_promoted())  # type: ignore[no-any-return]

    async def list_actions(
        self,
        *,
        agent_id: str | None = None,
        environment: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """``GET /v1/actions``: the audit log, newest first."""
        return await self._json(  # type: ignore[no-any-return]
            _native.list_actions(agent_id, environment, limit)
        )

    async def post_diff(
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
        req = _native.post_diff(
            baseline_release_id, candidate_release_id, window, environment, tenant_id, task_id
        )
        return await self._json(req)  # type: ignore[no-any-return]

    async def post_promote(
        self,
        *,
        release_id: str,
        environment: str,
        window: str,
        reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/promote``; a policy block raises ``HTTPStatusError`` (409)."""
        req = _native.promote_like("promote", release_id, environment, window, reason, actor)
        return await self._json(req)  # type: ignore[no-any-return]

    async def post_promote_request(
        self,
        *,
        release_id: str,
        environment: str,
        window: str,
        reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/promote/request``: first step of a two-step promotion."""
        req = _native.promote_like("request", release_id, environment, window, reason, actor)
        return await self._json(req)  # type: ignore[no-any-return]

    async def post_promote_confirm(
        self,
        *,
        request_id: str,
        approval_reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/promote/confirm``: completes a pending promotion request."""
        req = _native.promote_confirm(request_id, approval_reason, actor)
        return await self._json(req)  # type: ignore[no-any-return]

    async def list_promotion_requests(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """``GET /v1/promotion-requests``, newest first."""
        return await self._json(  # type: ignore[no-any-return]
            _native.list_promotion_requests(status, limit)
        )

    async def list_runs(
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
        req = _native.list_runs(
            release_id, window, environment, tenant_id, task_id, trace_id, session_id,
            span_id, offset, limit, False,
        )
        return await self._json(req)  # type: ignore[no-any-return]

    async def fetch_runs_export_ndjson(
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
        req = _native.list_runs(
            release_id, window, environment, tenant_id, task_id, trace_id, session_id,
            span_id, offset, limit, True,
        )
        if self._client is not None:
            r = await self._send_injected(req)
            return r.content, {k: r.headers[k] for k in EXPORT_HEADER_KEYS if k in r.headers}
        resp = await self._send(req)
        return resp.body, resp.export_headers()

    async def _open_runs_export(self, **params: Any) -> NativeExportStream:
        """Async twin of :meth:`FlightdeckClient._open_runs_export`."""
        req = _export_request(**params)
        if self._client is not None:
            r = await self._send_injected(req)
            return NativeExportStream.from_body(r.content, list(r.headers.multi_items()))
        opened: tuple[NativeResponse, NativeExportStream | None]
        opened = await self._native.open_stream_async(req)
        resp, stream = opened
        if stream is None:
            raise _status_error(self._native, req, resp)
        return stream

    async def post_rollback(
        self,
        *,
        release_id: str,
        environment: str,
        window: str,
        reason: str,
        actor: str = "sdk",
    ) -> dict[str, Any]:
        """``POST /v1/rollback``; a policy block raises ``HTTPStatusError`` (409)."""
        req = _native.promote_like("rollback", release_id, environment, window, reason, actor)
        return await self._json(req)  # type: ignore[no-any-return]

    async def ingest_run_events(self, events: Iterable[RunEvent]) -> int:
        """``POST /v1/events`` in one request; returns how many events were inserted.

        Accepts ``RunEvent`` instances (ours or pydantic's) and dicts; all are validated
        before anything is sent. Returns ``0`` without a request when ``events`` is empty.
        """
        req = _native.ingest(_as_list(events))
        if req is None:
            return 0
        return int((await self._json(req))["inserted"])

    async def ingest_run_events_batch(
        self, events: Iterable[RunEvent], *, chunk_size: int = 500
    ) -> int:
        """Sends ``events`` in chunks of ``chunk_size``; returns the total inserted."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        total = 0
        it = iter(events)
        while chunk := list(islice(it, chunk_size)):
            total += await self.ingest_run_events(chunk)
        return total

    # -- everyday-use helpers (see flightdeck_rs.helpers) -----------------------------------

    def iter_runs(
        self,
        *,
        release_id: str,
        window: str,
        page_size: int = 500,
        **filters: Unpack[RunFilters],
    ) -> AsyncIterator[RunEvent]:
        """Every matching event of ``GET /v1/runs``: ``async for event in client.iter_runs(...)``.

        Args:
            release_id: Release whose events are read.
            window: Look-back window, e.g. ``"7d"``.
            page_size: Events per request (at most 500).
            **filters: ``environment``, ``tenant_id``, ``task_id``, ``trace_id``,
                ``session_id``, ``span_id``.

        Returns:
            An async generator of events; see :func:`flightdeck_rs.helpers.aiter_runs`.
        """
        from flightdeck_rs import helpers

        return helpers.aiter_runs(
            self, release_id=release_id, window=window, page_size=page_size, **filters
        )

    def iter_runs_export(
        self,
        *,
        release_id: str,
        window: str,
        page_size: int = 500,
        **filters: Unpack[RunFilters],
    ) -> AsyncIterator[RunEvent]:
        """Every matching event of the NDJSON export, as an async generator.

        Args:
            release_id: Release whose events are read.
            window: Look-back window, e.g. ``"7d"``.
            page_size: Events per request (at most 500).
            **filters: ``environment``, ``tenant_id``, ``task_id``, ``trace_id``,
                ``session_id``, ``span_id``.

        Returns:
            An async generator of events; see :func:`flightdeck_rs.helpers.aiter_runs_export`.
        """
        from flightdeck_rs import helpers

        return helpers.aiter_runs_export(
            self, release_id=release_id, window=window, page_size=page_size, **filters
        )

    async def ingest_jsonl(
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
            concurrency: Requests in flight at most (asyncio tasks).
            progress: ``progress(done_lines, sent, inserted)`` after each chunk.
            max_retries: Retries of a chunk after a transient failure.

        Returns:
            The summary; see :func:`flightdeck_rs.helpers.aingest_jsonl`.
        """
        from flightdeck_rs import helpers

        return await helpers.aingest_jsonl(
            self,
            path_or_file,
            chunk_size=chunk_size,
            concurrency=concurrency,
            progress=progress,
            max_retries=max_retries,
        )


# Names used only in the annotations of the helper methods above (kept down here so that the
# imports at the top of the module stay untouched).
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from typing import Unpack

    from flightdeck_rs.helpers import IngestSummary, JsonlSource, ProgressCallback, RunFilters
