"""What :class:`~flightdeck_rs.FlightdeckClient` and
:class:`~flightdeck_rs.AsyncFlightdeckClient` share, written once: the configuration, the
native client, request building, response handling, and the injected-``httpx`` path's retry
loop (:meth:`ClientCore.exchange`). The two public classes only perform what this module
decides, one blocking and one awaiting (see ``flightdeck_rs._steps``).

Every request is defined once in the Rust core; the builders take keywords only, and the
public methods hand them their own arguments (:func:`args`), so a name can only be passed
to the parameter of the same name.
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

# Imported when first used, not with the package (see ``flightdeck_rs._lazy``): httpx only
# matters to injected clients and error paths.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import json
    from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator
    from typing import Any, Concatenate, ParamSpec, TypeVar

    import httpx

    from flightdeck_rs import _retry

    #: One step of :meth:`ClientCore.exchange`: ``client.request(**step)``, or a sleep of
    #: that many seconds.
    Step = dict[str, Any] | float

    P = ParamSpec("P")
    R = TypeVar("R")
else:
    json = lazy_module("json", globals())
    httpx = lazy_module("httpx", globals())
    # The client rule of the injected path (core/retry.rs), needed only after a failure.
    _retry = lazy_module("flightdeck_rs._retry", globals())

__all__ = [
    "EXPORT_HEADER_KEYS",
    "ClientCore",
    "args",
    "as_list",
    "awaiting",
    "chunks",
    "export_request",
    "export_result",
    "stream_of",
]

EXPORT_HEADER_KEYS = _native.EXPORT_HEADER_KEYS


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


def args(frame: dict[str, Any]) -> dict[str, Any]:
    """A public method's arguments, from its ``locals()`` taken on entry, without ``self``:
    the keywords of the native request builder of the same names. (``locals()`` of a
    function is a snapshot: removing ``self`` from it leaves the method's own ``self`` be.)"""
    frame.pop("self", None)
    return frame


def as_list(events: Iterable[Any]) -> list[Any]:
    return events if type(events) is list else list(events)


def chunks(events: Iterable[Any], chunk_size: int) -> Iterator[list[Any]]:
    """``events`` in lists of ``chunk_size`` (checked at the call)."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be > 0")
    return _chunks(iter(events), chunk_size)


def _chunks(it: Iterator[Any], chunk_size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(it, chunk_size)):
        yield chunk


def export_request(params: dict[str, Any]) -> NativeRequest:
    """``GET /v1/runs/export`` for ``fetch_runs_export_ndjson``'s keyword arguments."""
    return _native.list_runs(export=True, **{"offset": 0, "limit": 500, **params})


def export_result(resp: httpx.Response) -> tuple[bytes, dict[str, str]]:
    """``fetch_runs_export_ndjson``'s value from an injected client's response."""
    headers = resp.headers
    return resp.content, {k: headers[k] for k in EXPORT_HEADER_KEYS if k in headers}


def stream_of(resp: httpx.Response) -> NativeExportStream:
    """An export stream over an injected client's (already read) response."""
    return NativeExportStream.from_body(resp.content, list(resp.headers.multi_items()))


def awaiting(
    method: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """The async client's twin of a :class:`~flightdeck_rs.FlightdeckClient` method.

    The method's one line calls a primitive (``self._json``, ``self._export``, ...) and
    returns what it returns; called on the async client, that primitive is a coroutine
    function, so the twin awaits it. The twin is a real ``async def`` (``inspect`` sees a
    coroutine function) with the method's name, docstring and, through ``__wrapped__``,
    signature.
    """

    async def twin(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await method(self, *args, **kwargs)  # type: ignore[misc,no-any-return]

    twin.__name__ = method.__name__
    twin.__qualname__ = f"AsyncFlightdeckClient.{method.__name__}"
    twin.__doc__ = method.__doc__
    twin.__module__ = method.__module__
    twin.__wrapped__ = method  # type: ignore[attr-defined]
    return twin


class ClientCore:
    """A client's configuration and every part of a call that does no I/O.

    Attributes:
        native: The Rust client (connection pool, retries of the native path).
        http: The injected ``httpx.Client`` / ``httpx.AsyncClient``, or ``None``.
        max_retries: Extra attempts after a transport failure (injected path).
        backoff_s: Base of the injected path's exponential backoff.
        slow_s: Calls slower than this are logged at WARNING (injected path).
    """

    __slots__ = ("native", "http", "max_retries", "backoff_s", "slow_s")

    def __init__(
        self,
        base_url: str,
        timeout_s: float | None,
        max_retries: int,
        retry_backoff_s: float,
        api_token: str | None,
        http: Any,
    ) -> None:
        check_api_token(api_token)
        if not isinstance(base_url, str):
            raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
        self.native = NativeClient(
            base_url,
            timeout_s=None if timeout_s is None else float(timeout_s),
            max_retries=int(max_retries),
            retry_backoff_s=float(retry_backoff_s),
            api_token=api_token,
            observer=_logging.observe,
            slow_request_s=_logging.slow_request_s(),
        )
        self.http = http
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = max(0.0, float(retry_backoff_s))
        self.slow_s = _logging.slow_request_s()

    # -- the native path ---------------------------------------------------------------------

    def checked(self, req: NativeRequest, resp: NativeResponse) -> NativeResponse:
        """``resp``, or the ``HTTPStatusError`` httpx would raise for it."""
        if not 200 <= resp.status < 300:
            raise self.status_error(req, resp)
        return resp

    def decoded(self, req: NativeRequest, resp: NativeResponse) -> Any:
        """The JSON body of a successful response."""
        return json.loads(self.checked(req, resp).body)

    def inserted(self, req: NativeRequest, resp: NativeResponse) -> int:
        """``POST /v1/events``' count of inserted events."""
        return int(self.decoded(req, resp)["inserted"])

    def opened(
        self, req: NativeRequest, opened: tuple[NativeResponse, NativeExportStream | None]
    ) -> NativeExportStream:
        """The export stream of a response head, or the status error it carries."""
        resp, stream = opened
        if stream is None:
            raise self.status_error(req, resp)
        return stream

    def status_error(self, req: NativeRequest, resp: NativeResponse) -> httpx.HTTPStatusError:
        """Builds the exact ``HTTPStatusError`` httpx raises, with real Request/Response
        objects (the request carries the headers that were sent, as httpx's does)."""
        native = self.native
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

    # -- the injected-httpx path -------------------------------------------------------------

    def exchange(self, req: NativeRequest) -> Generator[Step, Any, httpx.Response]:
        """The injected client's call of ``req``, retries included: THE retry loop of the
        injected path, driven by both clients.

        Yields the keyword arguments of ``client.request`` (and is sent the response, or has
        the ``httpx`` error thrown in), or a delay in seconds to sleep before the next
        attempt. Returns the response; raises ``HTTPStatusError`` for an error status.
        """
        call: dict[str, Any] = {
            "method": req.method,
            "url": self.native.url(req),
            "headers": self.native.headers(req),
        }
        if req.body is not None:
            call["content"] = req.body
        attempt = 0
        started = time.perf_counter()
        status: int | None = None
        try:
            while True:
                try:
                    resp: httpx.Response = yield call
                    break
                except httpx.RequestError as exc:
                    delay = _retry.client_retry_delay(
                        exc,
                        idempotent=req.idempotent,
                        attempt=attempt,
                        max_retries=self.max_retries,
                        backoff_s=self.backoff_s,
                    )
                    if delay is None:
                        raise
                    _log_retry(req, exc, attempt, self.max_retries, delay)
                    yield delay
                    attempt += 1
            status = resp.status_code
        finally:
            _log_if_slow(req, started, attempt + 1, status, self.slow_s)
        resp.raise_for_status()
        return resp
