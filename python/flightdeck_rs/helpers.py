"""Everyday-use helpers: paging iterators over the run ledger and a concurrent JSONL ingester.

Every helper has a sync and an async twin taking the matching client:

=====================================  ==========================================
:class:`~flightdeck_rs.FlightdeckClient`  :class:`~flightdeck_rs.AsyncFlightdeckClient`
=====================================  ==========================================
:func:`iter_runs`                      :func:`aiter_runs`
:func:`iter_runs_export`               :func:`aiter_runs_export`
:func:`ingest_jsonl`                   :func:`aingest_jsonl`
=====================================  ==========================================

The clients expose the same helpers as methods (``client.iter_runs(...)``,
``client.ingest_jsonl(...)``; on the async client ``iter_runs`` and ``iter_runs_export``
return async iterators and ``ingest_jsonl`` is a coroutine).

Logging goes to the ``flightdeck_rs`` logger: retries and slow requests at ``WARNING``,
splitting of rejected chunks at ``INFO``, every page and chunk at ``DEBUG``. Nothing is logged
above ``WARNING``.

Example:
    >>> from flightdeck_rs.sdk import FlightdeckClient
    >>> with FlightdeckClient("http://127.0.0.1:8765") as client:  # doctest: +SKIP
    ...     for event in client.iter_runs(release_id="rel_abc", window="7d"):
    ...         print(event.run_id, event.metrics.latency_ms)
    ...     summary = client.ingest_jsonl("events.jsonl", concurrency=8)
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TypedDict, Unpack

import httpx

from flightdeck_rs import _retry, _runtimes
from flightdeck_rs._errors import ValidationError
from flightdeck_rs._native import NativeExportStream
from flightdeck_rs.models import RunEvent

if TYPE_CHECKING:
    from flightdeck_rs.sdk.client import AsyncFlightdeckClient, FlightdeckClient

__all__ = [
    "MAX_OFFSET",
    "MAX_PAGE_SIZE",
    "SLOW_REQUEST_S",
    "IngestSummary",
    "JsonlSource",
    "ProgressCallback",
    "RunFilters",
    "aingest_jsonl",
    "aiter_runs",
    "aiter_runs_export",
    "ingest_jsonl",
    "iter_runs",
    "iter_runs_export",
]

logger = logging.getLogger("flightdeck_rs")

#: Largest ``limit`` the server accepts on ``GET /v1/runs`` and ``GET /v1/runs/export``.
MAX_PAGE_SIZE = 500
#: Largest ``offset`` the server accepts on the same endpoints.
MAX_OFFSET = 500_000
#: Client calls slower than this many seconds (all attempts included) are logged at
#: ``WARNING``; read when a client is created.
SLOW_REQUEST_S = 5.0

_BOM_BYTES = b"\xef\xbb\xbf"
_BOM_STR = "\ufeff"


class RunFilters(TypedDict, total=False):
    """Optional filters of ``GET /v1/runs`` (``None`` means "not filtered").

    Attributes:
        environment: Environment name (the server defaults to the workspace default).
        tenant_id: Only this tenant.
        task_id: Only this task.
        trace_id: Only events whose ``request.trace_id`` matches.
        session_id: Only events whose ``request.session_id`` matches.
        span_id: Only events whose ``request.span_id`` matches.
    """

    environment: str | None
    tenant_id: str | None
    task_id: str | None
    trace_id: str | None
    session_id: str | None
    span_id: str | None


#: ``progress(done_lines, sent, inserted)``, called after each chunk and once at the end.
ProgressCallback = Callable[[int, int, int], object]
#: A path to a JSONL file, or a file object open for reading (binary or text).
JsonlSource = str | os.PathLike[str] | IO[bytes] | IO[str]


@dataclass
class IngestSummary:
    """What :func:`ingest_jsonl` did.

    Attributes:
        sent: Events the server accepted (inserted or recognised as duplicates).
        inserted: Events the server stored.
        duplicates: ``sent - inserted``: events whose ``run_id`` was already stored.
        rejected: ``(line_no, message)`` for every line that was not sent, because it is not
            a valid ``RunEvent`` or because the server refused it; 1-based, sorted.
        lines: Input lines read, blank ones included.
    """

    sent: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0

    @property
    def ok(self) -> bool:
        """``True`` when no line was rejected."""
        return not self.rejected

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``rejected`` becomes a list of ``{"line", "error"}`` objects."""
        return {
            "lines": self.lines,
            "sent": self.sent,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "rejected": [{"line": n, "error": msg} for n, msg in self.rejected],
        }


# ----------------------------------------------------------------------------- shared pieces


def _page_size(page_size: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError(f"page_size must be an int, got {type(page_size).__name__}")
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    return min(page_size, MAX_PAGE_SIZE)


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class _Timer:
    """Logs a request at DEBUG (the clients themselves log slow calls at WARNING)."""

    __slots__ = ("_what", "_start")

    def __init__(self, what: str) -> None:
        self._what = what
        self._start = time.perf_counter()

    def done(self, detail: str = "") -> None:
        logger.debug("%s took %.3f s%s", self._what, time.perf_counter() - self._start, detail)


class _Pager:
    """Offset bookkeeping shared by the four paging iterators.

    The server sorts newest first and re-evaluates the window on every request, so events
    ingested while paging shift later pages: the events that moved over a page boundary are
    skipped by remembering the ``run_id``s of the previous page (``run_id`` is unique in the
    ledger). Past ``MAX_OFFSET`` the last reachable events are fetched from ``MAX_OFFSET``
    with a larger limit; beyond that the walk stops with a warning.
    """

    def __init__(self, page_size: int, endpoint: str) -> None:
        self.page_size = page_size
        self.endpoint = endpoint
        self.offset = 0  # server position of the next wanted event
        self.done = False
        self.incomplete = False  # stopped at the server's offset cap with events left over
        self.matched_total: int | None = None
        self.yielded = 0
        self._previous: frozenset[str] = frozenset()

    def request(self) -> tuple[int, int, int] | None:
        """``(offset, limit, skip)`` of the next request, or ``None`` when finished."""
        if self.done:
            return None
        if self.offset <= MAX_OFFSET:
            return self.offset, self.page_size, 0
        skip = self.offset - MAX_OFFSET
        if skip >= MAX_PAGE_SIZE:
            self.done = self.incomplete = True
            logger.warning(
                "%s: the server pages only up to offset %d; stopped after %d of %s matching "
                "events (narrow the window or add filters to read the rest)",
                self.endpoint,
                MAX_OFFSET + MAX_PAGE_SIZE,
                self.yielded,
                self.matched_total,
            )
            return None
        return MAX_OFFSET, min(MAX_PAGE_SIZE, skip + self.page_size), skip

    def advance(self, returned: int, skip: int, truncated: bool, matched_total: int | None) -> None:
        """Record a page of ``returned`` events (``skip`` of which were not wanted)."""
        self.matched_total = matched_total
        taken = max(0, returned - skip)
        self.offset += taken
        if taken == 0 or not truncated:
            self.done = True

    def fresh(self, run_ids: Sequence[str]) -> list[bool]:
        """Which events of a whole page are new (not on the previous page)."""
        self.begin_page()
        keep = [self.is_fresh(rid) for rid in run_ids]
        self.end_page()
        return keep

    def begin_page(self) -> None:
        """Starts a page whose events are checked one by one with :meth:`is_fresh`."""
        self._current: set[str] = set()
        self._moved = 0

    def is_fresh(self, run_id: str) -> bool:
        """Whether an event of the current page was not on the previous page."""
        self._current.add(run_id)
        if run_id in self._previous:
            self._moved += 1
            return False
        self.yielded += 1
        return True

    def end_page(self) -> None:
        if self._moved:
            logger.debug(
                "%s: %d event(s) moved across a page boundary (new events arrived while "
                "paging) and were skipped as already seen",
                self.endpoint,
                self._moved,
            )
        self._previous = frozenset(self._current)
        self._current = set()


def _runs_page(body: dict[str, Any], skip: int, pager: _Pager) -> list[RunEvent]:
    raw = body.get("events") or []
    events = [RunEvent.model_validate(item) for item in raw[skip:]]
    pager.advance(len(raw), skip, bool(body.get("truncated")), _as_int(body.get("matched_total")))
    keep = pager.fresh([e.run_id for e in events])
    return [e for e, k in zip(events, keep, strict=True) if k]


def _as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


#: Events handed over from Rust per call while streaming an export page.
_STREAM_BATCH = 256


def _export_truncated(headers: dict[str, str], returned: int, limit: int) -> bool:
    value = headers.get("X-Flightdeck-Truncated")
    if value is None:  # headers lost on the way (a proxy): assume more if the page is full
        return returned >= limit
    return value.strip().lower() == "true"


def _export_note(exc: ValueError, stream: NativeExportStream, offset: int) -> None:
    exc.add_note(f"while reading event #{offset + stream.returned - 1} of GET /v1/runs/export")


class _ExportPage:
    """One export page being streamed: skips the unwanted head, drops events already seen
    on the previous page, and records the page in the pager at its end."""

    def __init__(
        self, stream: NativeExportStream, pager: _Pager, offset: int, limit: int, skip: int
    ) -> None:
        self.stream = stream
        self.pager = pager
        self.offset = offset
        self.limit = limit
        self.skip = skip
        self.asked_skip = skip
        self.headers = stream.export_headers()
        total = _as_int(self.headers.get("X-Flightdeck-Matched-Total"))
        if total is not None:
            pager.matched_total = total
        pager.begin_page()

    def keep(self, batch: list[tuple[bytes, RunEvent]]) -> list[tuple[bytes, RunEvent]]:
        out = []
        for line, event in batch:
            if self.skip > 0:
                self.skip -= 1
                continue
            if self.pager.is_fresh(event.run_id):
                out.append((line, event))
        return out

    def finish(self) -> None:
        returned = self.stream.returned
        self.pager.end_page()
        total = _as_int(self.headers.get("X-Flightdeck-Matched-Total"))
        truncated = _export_truncated(self.headers, returned, self.limit)
        self.pager.advance(returned, self.asked_skip, truncated, total)


def _open_export(client: Any, offset: int, limit: int, params: dict[str, Any]) -> Any:
    opener = getattr(client, "_open_runs_export", None)
    if opener is not None:
        return opener(offset=offset, limit=limit, **params)
    return client.fetch_runs_export_ndjson(offset=offset, limit=limit, **params)


def _as_stream(opened: Any) -> NativeExportStream:
    if isinstance(opened, tuple):  # a client without streaming: a whole page of bytes
        body, headers = opened
        return NativeExportStream.from_body(body, list(headers.items()))
    return opened  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- paging (sync)


def iter_runs(
    client: FlightdeckClient,
    *,
    release_id: str,
    window: str,
    page_size: int = 500,
    **filters: Unpack[RunFilters],
) -> Iterator[RunEvent]:
    """Yields every matching event of ``GET /v1/runs``, newest first, one page at a time.

    Args:
        client: A :class:`~flightdeck_rs.FlightdeckClient`.
        release_id: Release whose events are read.
        window: Look-back window, e.g. ``"1h"`` or ``"7d"``.
        page_size: Events per request (the server allows at most 500; larger is capped).
        **filters: ``environment``, ``tenant_id``, ``task_id``, ``trace_id``,
            ``session_id``, ``span_id``.

    Returns:
        An iterator of :class:`~flightdeck_rs.RunEvent`; requests are made as it is consumed.

    Raises:
        ValueError: If ``page_size`` is smaller than 1 (raised at the call).
        httpx.HTTPStatusError: On an error status (e.g. 400 for an unknown release).
        httpx.RequestError: When the server cannot be reached.
    """
    pager = _Pager(_page_size(page_size), "GET /v1/runs")
    return _iter_runs(client, pager, release_id, window, filters)


def _iter_runs(
    client: FlightdeckClient,
    pager: _Pager,
    release_id: str,
    window: str,
    filters: RunFilters,
) -> Iterator[RunEvent]:
    while (req := pager.request()) is not None:
        offset, limit, skip = req
        timer = _Timer(f"GET /v1/runs offset={offset} limit={limit}")
        body = client.list_runs(
            release_id=release_id, window=window, offset=offset, limit=limit, **filters
        )
        timer.done()
        yield from _runs_page(body, skip, pager)


def iter_runs_export(
    client: FlightdeckClient,
    *,
    release_id: str,
    window: str,
    page_size: int = 500,
    **filters: Unpack[RunFilters],
) -> Iterator[RunEvent]:
    """Yields every matching event of the NDJSON export ``GET /v1/runs/export``.

    Pages are requested with ``offset``/``limit`` and followed through the
    ``X-Flightdeck-*`` headers. Each page's body is read as it arrives and split and
    validated line by line in Rust, so memory stays bounded by one network chunk plus one
    small batch of events, whatever the size of a page or of the export.

    Args:
        client: A :class:`~flightdeck_rs.FlightdeckClient`.
        release_id: Release whose events are read.
        window: Look-back window, e.g. ``"1h"`` or ``"7d"``.
        page_size: Events per request (at most 500, the default).
        **filters: ``environment``, ``tenant_id``, ``task_id``, ``trace_id``,
            ``session_id``, ``span_id``.

    Returns:
        An iterator of :class:`~flightdeck_rs.RunEvent`, newest first.

    Raises:
        ValueError: If ``page_size`` is smaller than 1 (at the call), or the server sent a
            line that is not a valid event (:class:`~flightdeck_rs.ValidationError`).
        httpx.HTTPStatusError: On an error status.
        httpx.RequestError: When the server cannot be reached.
    """
    pager = _Pager(_page_size(page_size), "GET /v1/runs/export")
    pairs = _iter_export_pairs(client, pager, release_id, window, filters)
    return (event for _, event in pairs)


def _iter_export_pairs(
    client: FlightdeckClient,
    pager: _Pager,
    release_id: str,
    window: str,
    filters: RunFilters,
) -> Iterator[tuple[bytes, RunEvent]]:
    params: dict[str, Any] = {"release_id": release_id, "window": window, **filters}
    while (req := pager.request()) is not None:
        offset, limit, skip = req
        timer = _Timer(f"GET /v1/runs/export offset={offset} limit={limit}")
        stream = _as_stream(_open_export(client, offset, limit, params))
        timer.done(" (response head)")
        page = _ExportPage(stream, pager, offset, limit, skip)
        try:
            while True:
                try:
                    batch = stream.next_batch(_STREAM_BATCH, True)
                except ValueError as exc:
                    _export_note(exc, stream, offset)
                    raise
                if not batch:
                    break
                yield from page.keep(batch)
        finally:
            stream.close()
        page.finish()


# ----------------------------------------------------------------------------- paging (async)


def aiter_runs(
    client: AsyncFlightdeckClient,
    *,
    release_id: str,
    window: str,
    page_size: int = 500,
    **filters: Unpack[RunFilters],
) -> AsyncIterator[RunEvent]:
    """Async twin of :func:`iter_runs`: ``async for event in aiter_runs(client, ...)``.

    Args:
        client: An :class:`~flightdeck_rs.AsyncFlightdeckClient`.
        release_id: Release whose events are read.
        window: Look-back window, e.g. ``"1h"`` or ``"7d"``.
        page_size: Events per request (the server allows at most 500; larger is capped).
        **filters: ``environment``, ``tenant_id``, ``task_id``, ``trace_id``,
            ``session_id``, ``span_id``.

    Returns:
        An async iterator of :class:`~flightdeck_rs.RunEvent`, newest first.

    Raises:
        ValueError: If ``page_size`` is smaller than 1 (raised at the call).
        httpx.HTTPStatusError: On an error status.
        httpx.RequestError: When the server cannot be reached.
    """
    pager = _Pager(_page_size(page_size), "GET /v1/runs")
    return _aiter_runs(client, pager, release_id, window, filters)


async def _aiter_runs(
    client: AsyncFlightdeckClient,
    pager: _Pager,
    release_id: str,
    window: str,
    filters: RunFilters,
) -> AsyncIterator[RunEvent]:
    while (req := pager.request()) is not None:
        offset, limit, skip = req
        timer = _Timer(f"GET /v1/runs offset={offset} limit={limit}")
        body = await client.list_runs(
            release_id=release_id, window=window, offset=offset, limit=limit, **filters
        )
        timer.done()
        for event in _runs_page(body, skip, pager):
            yield event


def aiter_runs_export(
    client: AsyncFlightdeckClient,
    *,
    release_id: str,
    window: str,
    page_size: int = 500,
    **filters: Unpack[RunFilters],
) -> AsyncIterator[RunEvent]:
    """Async twin of :func:`iter_runs_export`.

    Args:
        client: An :class:`~flightdeck_rs.AsyncFlightdeckClient`.
        release_id: Release whose events are read.
        window: Look-back window, e.g. ``"1h"`` or ``"7d"``.
        page_size: Events per request (at most 500, the default).
        **filters: ``environment``, ``tenant_id``, ``task_id``, ``trace_id``,
            ``session_id``, ``span_id``.

    Returns:
        An async iterator of :class:`~flightdeck_rs.RunEvent`, newest first.

    Raises:
        ValueError: If ``page_size`` is smaller than 1 (at the call), or the server sent a
            line that is not a valid event.
        httpx.HTTPStatusError: On an error status.
        httpx.RequestError: When the server cannot be reached.
    """
    pager = _Pager(_page_size(page_size), "GET /v1/runs/export")
    return _aiter_runs_export(client, pager, release_id, window, filters)


async def _aiter_runs_export(
    client: AsyncFlightdeckClient,
    pager: _Pager,
    release_id: str,
    window: str,
    filters: RunFilters,
) -> AsyncIterator[RunEvent]:
    params: dict[str, Any] = {"release_id": release_id, "window": window, **filters}
    while (req := pager.request()) is not None:
        offset, limit, skip = req
        timer = _Timer(f"GET /v1/runs/export offset={offset} limit={limit}")
        stream = _as_stream(await _open_export(client, offset, limit, params))
        timer.done(" (response head)")
        page = _ExportPage(stream, pager, offset, limit, skip)
        try:
            while True:
                try:
                    batch = await stream.next_batch_async(_STREAM_BATCH, True)
                except ValueError as exc:
                    _export_note(exc, stream, offset)
                    raise
                if not batch:
                    break
                for _, event in page.keep(batch):
                    yield event
        finally:
            stream.close()
        page.finish()


# ----------------------------------------------------------------------------- JSONL ingest


def _describe_invalid(exc: ValueError) -> str:
    """One line per problem, joined: ``"usage.model: Field required; run_id: ..."``."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            msg = str(err.get("msg", "invalid"))
            parts.append(f"{loc}: {msg}" if loc else msg)
        if parts:
            return "; ".join(parts)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _server_detail(exc: httpx.HTTPStatusError) -> str:
    response = exc.response
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        detail = response.text.strip()[:300] or response.reason_phrase
    return f"server rejected it (HTTP {response.status_code}): {detail}"


@dataclass
class _Chunk:
    events: list[RunEvent]
    line_nos: list[int]
    lines: int  # input lines consumed to build this chunk (blank and rejected included)


@dataclass
class _Outcome:
    lines: int
    sent: int = 0
    inserted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


class _LineReader:
    """Reads a JSONL source and validates each line; invalid lines go to ``rejected``."""

    def __init__(self, source: JsonlSource) -> None:
        if isinstance(source, str | os.PathLike):
            self._file: IO[Any] = open(source, "rb")  # closed in close()
            self._owned = True
        elif isinstance(source, bytes | bytearray):
            raise TypeError("path_or_file must be a str path or a file object, not bytes")
        elif hasattr(source, "readline") or hasattr(source, "__iter__"):
            self._file = source
            self._owned = False
        else:
            raise TypeError(
                f"path_or_file must be a path or a file object, got {type(source).__name__}"
            )
        self._lines: Iterator[bytes | str] = iter(self._file)
        self.line_no = 0
        self.rejected: list[tuple[int, str]] = []

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def read_chunk(self, size: int) -> _Chunk | None:
        events: list[RunEvent] = []
        line_nos: list[int] = []
        first = self.line_no
        for raw in self._lines:
            self.line_no += 1
            line: bytes | str = raw
            if self.line_no == 1:
                if isinstance(line, bytes) and line.startswith(_BOM_BYTES):
                    line = line[len(_BOM_BYTES) :]
                elif isinstance(line, str) and line.startswith(_BOM_STR):
                    line = line[1:]
            line = line.strip()
            if not line:
                continue
            try:
                event = RunEvent.model_validate_json(line)
            except ValueError as exc:  # ValidationError, UnicodeDecodeError
                message = _describe_invalid(exc)
                logger.debug("line %d rejected: %s", self.line_no, message)
                self.rejected.append((self.line_no, message))
                continue
            events.append(event)
            line_nos.append(self.line_no)
            if len(events) >= size:
                break
        consumed = self.line_no - first
        if consumed == 0:
            return None
        return _Chunk(events, line_nos, consumed)


class _Tally:
    """Accumulates outcomes into an :class:`IngestSummary` and reports progress."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.summary = IngestSummary()
        self.done_lines = 0
        self._progress = progress
        self._reported: tuple[int, int, int] | None = None

    def add(self, outcome: _Outcome) -> None:
        s = self.summary
        self.done_lines += outcome.lines
        s.sent += outcome.sent
        s.inserted += outcome.inserted
        s.duplicates = s.sent - s.inserted
        s.rejected.extend(outcome.rejected)
        self._report()

    def _report(self) -> None:
        s = self.summary
        state = (self.done_lines, s.sent, s.inserted)
        if self._progress is not None and state != self._reported:
            self._reported = state
            self._progress(*state)

    def finish(self, reader: _LineReader) -> IngestSummary:
        s = self.summary
        s.lines = reader.line_no
        s.rejected.extend(reader.rejected)
        s.rejected.sort(key=lambda item: item[0])
        self.done_lines = reader.line_no
        self._report()
        return s

    def note(self, exc: BaseException, reader: _LineReader) -> None:
        s = self.summary
        exc.add_note(
            f"ingest_jsonl stopped after line {reader.line_no}: {s.sent} sent, "
            f"{s.inserted} inserted, {len(s.rejected) + len(reader.rejected)} rejected so far"
        )


def _log_retry(exc: Exception, n: int, attempt: int, max_retries: int, delay: float) -> None:
    logger.warning(
        "POST /v1/events (%d events) failed: %s; retry %d/%d in %.1f s",
        n,
        exc,
        attempt + 1,
        max_retries,
        delay,
    )


def _send_chunk(client: FlightdeckClient, chunk: _Chunk, max_retries: int) -> _Outcome:
    outcome = _Outcome(lines=chunk.lines)
    _send_part(client, chunk.events, chunk.line_nos, max_retries, outcome)
    return outcome


def _send_part(
    client: FlightdeckClient,
    events: list[RunEvent],
    line_nos: list[int],
    max_retries: int,
    outcome: _Outcome,
) -> None:
    attempt = 0
    while True:
        timer = _Timer(
            f"POST /v1/events ({len(events)} events, lines {line_nos[0]}-{line_nos[-1]})"
        )
        try:
            inserted = client.ingest_run_events(events)
        except Exception as exc:
            action, delay = _retry.delivery(exc, attempt, max_retries)
            if action == "split" and isinstance(exc, httpx.HTTPStatusError):
                halves = _split(exc, events, line_nos, outcome)
                if halves is not None:
                    _send_part(client, halves[0], halves[1], max_retries, outcome)
                    _send_part(client, halves[2], halves[3], max_retries, outcome)
                return
            if action != "retry":
                raise
            _log_retry(exc, len(events), attempt, max_retries, delay)
            time.sleep(delay)
            attempt += 1
            continue
        timer.done()
        outcome.sent += len(events)
        outcome.inserted += int(inserted)
        return


def _split(
    exc: httpx.HTTPStatusError, events: list[RunEvent], line_nos: list[int], outcome: _Outcome
) -> tuple[list[RunEvent], list[int], list[RunEvent], list[int]] | None:
    """Rejects a lone refused event, or returns the two halves of a refused batch."""
    if len(events) == 1:
        message = _server_detail(exc)
        logger.info("line %d rejected: %s", line_nos[0], message)
        outcome.rejected.append((line_nos[0], message))
        return None
    mid = len(events) // 2
    logger.info(
        "POST /v1/events refused %d events (HTTP %d); splitting to find the bad line(s)",
        len(events),
        exc.response.status_code,
    )
    return events[:mid], line_nos[:mid], events[mid:], line_nos[mid:]


async def _asend_chunk(client: AsyncFlightdeckClient, chunk: _Chunk, max_retries: int) -> _Outcome:
    outcome = _Outcome(lines=chunk.lines)
    await _asend_part(client, chunk.events, chunk.line_nos, max_retries, outcome)
    return outcome


async def _asend_part(
    client: AsyncFlightdeckClient,
    events: list[RunEvent],
    line_nos: list[int],
    max_retries: int,
    outcome: _Outcome,
) -> None:
    attempt = 0
    while True:
        timer = _Timer(
            f"POST /v1/events ({len(events)} events, lines {line_nos[0]}-{line_nos[-1]})"
        )
        try:
            inserted = await client.ingest_run_events(events)
        except Exception as exc:
            action, delay = _retry.delivery(exc, attempt, max_retries)
            if action == "split" and isinstance(exc, httpx.HTTPStatusError):
                halves = _split(exc, events, line_nos, outcome)
                if halves is not None:
                    await _asend_part(client, halves[0], halves[1], max_retries, outcome)
                    await _asend_part(client, halves[2], halves[3], max_retries, outcome)
                return
            if action != "retry":
                raise
            _log_retry(exc, len(events), attempt, max_retries, delay)
            await _runtimes.sleep(delay)
            attempt += 1
            continue
        timer.done()
        outcome.sent += len(events)
        outcome.inserted += int(inserted)
        return


def _first_error(futures: set[cf.Future[_Outcome]], tally: _Tally) -> BaseException | None:
    """Adds the outcome of every finished future; returns the first failure, if any."""
    error: BaseException | None = None
    for future in futures:
        if future.cancelled():
            continue
        exc = future.exception()
        if exc is None:
            tally.add(future.result())
        elif error is None:
            error = exc
    return error


def ingest_jsonl(
    client: FlightdeckClient,
    path_or_file: JsonlSource,
    *,
    chunk_size: int = 500,
    concurrency: int = 4,
    progress: ProgressCallback | None = None,
    max_retries: int = 2,
) -> IngestSummary:
    """Streams a JSONL file of events to ``POST /v1/events``, validating every line.

    Lines are read and validated as they are needed (memory holds about
    ``concurrency + 1`` chunks). Blank lines are skipped; a line that is not a valid
    ``RunEvent`` is reported with its line number and the rest are still sent. Chunks go out
    on up to ``concurrency`` threads. Failures follow the delivery rule shared with the
    emitter (README, "Retries"): when the server refuses a chunk (400/413/422) it is split in
    halves until the offending lines are isolated and reported; connection failures,
    timeouts and 408/425/429/5xx (but 501) are retried ``max_retries`` times with backoff
    (``Retry-After`` is honoured); this is safe because the server ignores an already stored
    ``run_id``.

    Args:
        client: A :class:`~flightdeck_rs.FlightdeckClient` (shared by the worker threads).
        path_or_file: A path, or a file object open for reading in binary or text mode
            (left open).
        chunk_size: Events per request.
        concurrency: Requests in flight at most.
        progress: ``progress(done_lines, sent, inserted)``, called from the calling thread
            after each chunk and once at the end.
        max_retries: Retries of a chunk after a transient failure.

    Returns:
        An :class:`IngestSummary`.

    Raises:
        OSError: If the file cannot be opened or read.
        httpx.HTTPStatusError: On a status that is neither a refusal of the data nor
            transient (e.g. 401). A note on the exception tells what was done so far.
        httpx.RequestError: When the server stays unreachable.
    """
    chunk_size = _positive("chunk_size", chunk_size)
    concurrency = _positive("concurrency", concurrency)
    reader = _LineReader(path_or_file)
    tally = _Tally(progress)
    pending: set[cf.Future[_Outcome]] = set()
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="flightdeck-ingest")
    try:
        error: BaseException | None = None
        while error is None:
            chunk = reader.read_chunk(chunk_size)
            if chunk is None:
                break
            if not chunk.events:
                tally.add(_Outcome(lines=chunk.lines))
                continue
            if len(pending) >= concurrency:
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                error = _first_error(done, tally)
                if error is not None:
                    break
            pending.add(pool.submit(_send_chunk, client, chunk, max_retries))
        done, pending = cf.wait(pending)
        error = _first_error(done, tally) or error
        if error is not None:
            raise error
    except BaseException as exc:
        for future in pending:
            future.cancel()
        done, pending = cf.wait(pending)
        _first_error(done, tally)
        tally.note(exc, reader)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        reader.close()
    return tally.finish(reader)


async def aingest_jsonl(
    client: AsyncFlightdeckClient,
    path_or_file: JsonlSource,
    *,
    chunk_size: int = 500,
    concurrency: int = 4,
    progress: ProgressCallback | None = None,
    max_retries: int = 2,
) -> IngestSummary:
    """Async twin of :func:`ingest_jsonl`: chunks go out as up to ``concurrency`` tasks.

    The file is read and validated in a worker thread (``asyncio.to_thread``) one chunk at a
    time, so a slow pipe never blocks the event loop.

    Args:
        client: An :class:`~flightdeck_rs.AsyncFlightdeckClient`.
        path_or_file: A path, or a file object open for reading in binary or text mode
            (left open).
        chunk_size: Events per request.
        concurrency: Requests in flight at most.
        progress: ``progress(done_lines, sent, inserted)``, called on the event loop after
            each chunk and once at the end.
        max_retries: Retries of a chunk after a transient failure.

    Returns:
        An :class:`IngestSummary`.

    Raises:
        OSError: If the file cannot be opened or read.
        httpx.HTTPStatusError: On a status that is neither a refusal of the data nor
            transient (e.g. 401). A note on the exception tells what was done so far.
        httpx.RequestError: When the server stays unreachable.
    """
    chunk_size = _positive("chunk_size", chunk_size)
    concurrency = _positive("concurrency", concurrency)
    if asyncio._get_running_loop() is None:  # trio (or anyio on trio)
        return await _runtimes.aingest_jsonl_trio(
            client, path_or_file, chunk_size=chunk_size, concurrency=concurrency,
            progress=progress, max_retries=max_retries,
        )
    reader = await asyncio.to_thread(_LineReader, path_or_file)
    tally = _Tally(progress)
    pending: set[asyncio.Task[_Outcome]] = set()

    def collect(done: set[asyncio.Task[_Outcome]]) -> BaseException | None:
        error: BaseException | None = None
        for task in done:
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is None:
                tally.add(task.result())
            elif error is None:
                error = exc
        return error

    try:
        error: BaseException | None = None
        while error is None:
            chunk = await asyncio.to_thread(reader.read_chunk, chunk_size)
            if chunk is None:
                break
            if not chunk.events:
                tally.add(_Outcome(lines=chunk.lines))
                continue
            if len(pending) >= concurrency:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                error = collect(done)
                if error is not None:
                    break
            pending.add(asyncio.create_task(_asend_chunk(client, chunk, max_retries)))
        if pending:
            done, pending = await asyncio.wait(pending)
            error = collect(done) or error
        if error is not None:
            raise error
    except BaseException as exc:
        for task in pending:
            task.cancel()
        if pending:
            done, pending = await asyncio.wait(pending)
            collect(done)
        tally.note(exc, reader)
        raise
    finally:
        reader.close()
    return tally.finish(reader)
