"""Paging over the run ledger: ``iter_runs``, ``iter_runs_export`` and their async twins.

The walk itself does no I/O: :func:`pages` yields each page to request (the keyword
arguments of the call and what to do with its answer) for as long as there is one, and a
:class:`Page` turns the answer into events while :class:`Pager` keeps the offsets. The four
public iterators are the short loops that make the calls, blocking or awaiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Unpack

from flightdeck_rs._helpers_base import (
    AsyncExportStreams,
    AsyncRunsReader,
    ExportStreams,
    RunFilters,
    RunsReader,
    Timer,
    logger,
    twin_of,
)
from flightdeck_rs._native import NativeExportStream
from flightdeck_rs.models import RunEvent

__all__ = [
    "MAX_OFFSET",
    "MAX_PAGE_SIZE",
    "Pager",
    "aiter_runs",
    "aiter_runs_export",
    "export_pairs",
    "iter_runs",
    "iter_runs_export",
    "page_size",
]

#: Largest ``limit`` the server accepts on ``GET /v1/runs`` and ``GET /v1/runs/export``.
MAX_PAGE_SIZE = 500
#: Largest ``offset`` the server accepts on the same endpoints.
MAX_OFFSET = 500_000
#: Events handed over from Rust per call while streaming an export page.
_STREAM_BATCH = 256

_RUNS = "GET /v1/runs"
_EXPORT = "GET /v1/runs/export"


def page_size(value: int) -> int:
    """``page_size``, checked and capped at :data:`MAX_PAGE_SIZE`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"page_size must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"page_size must be >= 1, got {value}")
    return min(value, MAX_PAGE_SIZE)


class Pager:
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


def _as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


class Page:
    """One page to request: ``params`` are the keyword arguments of the call; the answer
    goes to :meth:`runs` (a ``GET /v1/runs`` body) or :meth:`export` (an export stream)."""

    __slots__ = ("pager", "params", "offset", "limit", "skip", "timer")

    def __init__(self, pager: Pager, params: dict[str, Any], request: tuple[int, int, int]):
        self.pager = pager
        self.offset, self.limit, self.skip = request
        self.params = {**params, "offset": self.offset, "limit": self.limit}
        self.timer = Timer(f"{pager.endpoint} offset={self.offset} limit={self.limit}")

    def runs(self, body: dict[str, Any]) -> list[RunEvent]:
        """The new events of a ``GET /v1/runs`` answer."""
        self.timer.done()
        pager, skip = self.pager, self.skip
        raw = body.get("events") or []
        events = [RunEvent.model_validate(item) for item in raw[skip:]]
        truncated = bool(body.get("truncated"))
        pager.advance(len(raw), skip, truncated, _as_int(body.get("matched_total")))
        keep = pager.fresh([e.run_id for e in events])
        return [e for e, k in zip(events, keep, strict=True) if k]

    def export(self, opened: NativeExportStream | tuple[bytes, dict[str, str]]) -> ExportPage:
        """The page's export stream (or its whole body, from a client without streaming)."""
        self.timer.done(" (response head)")
        if isinstance(opened, tuple):
            body, headers = opened
            opened = NativeExportStream.from_body(body, list(headers.items()))
        return ExportPage(opened, self)


class ExportPage:
    """An export page being read: a context manager around its stream that skips the
    unwanted head, drops events already seen on the previous page, and records the page in
    the pager when it was read to the end."""

    def __init__(self, stream: NativeExportStream, page: Page) -> None:
        self.stream = stream
        self.page = page
        self.skip = page.skip
        self.headers = stream.export_headers()
        total = _as_int(self.headers.get("X-Flightdeck-Matched-Total"))
        if total is not None:
            page.pager.matched_total = total
        page.pager.begin_page()

    def take(self, batch: list[tuple[bytes, RunEvent]]) -> list[tuple[bytes, RunEvent]] | None:
        """The wanted ``(line, event)`` pairs of a batch read from the stream; ``None``
        at the end of the page."""
        if not batch:
            return None
        out = []
        is_fresh = self.page.pager.is_fresh
        for line, event in batch:
            if self.skip > 0:
                self.skip -= 1
                continue
            if is_fresh(event.run_id):
                out.append((line, event))
        return out

    def __enter__(self) -> ExportPage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        exc = exc_info[1]
        stream, page = self.stream, self.page
        if isinstance(exc, ValueError):
            exc.add_note(
                f"while reading event #{page.offset + stream.returned - 1} of GET /v1/runs/export"
            )
        stream.close()
        if exc is None:
            returned = stream.returned
            page.pager.end_page()
            total = _as_int(self.headers.get("X-Flightdeck-Matched-Total"))
            page.pager.advance(returned, page.skip, self._truncated(returned), total)

    def _truncated(self, returned: int) -> bool:
        value = self.headers.get("X-Flightdeck-Truncated")
        if value is None:  # headers lost on the way (a proxy): assume more if the page is full
            return returned >= self.page.limit
        return value.strip().lower() == "true"


def pages(
    pager: Pager, release_id: str, window: str, filters: RunFilters | dict[str, Any]
) -> Iterator[Page]:
    """The I/O-free walk: each page to request, as long as the pager wants one (the caller
    hands each answer to the page before asking for the next)."""
    params: dict[str, Any] = {"release_id": release_id, "window": window, **filters}
    while (request := pager.request()) is not None:
        yield Page(pager, params, request)


def _walk(
    endpoint: str, *, release_id: str, window: str, page_size: int = 500, **filters: Any
) -> tuple[Pager, Iterator[Page]]:
    """A helper's arguments, checked (``page_size`` at the call), as a pager and its walk."""
    pager = Pager(_checked(page_size), endpoint)
    return pager, pages(pager, release_id, window, filters)


# ----------------------------------------------------------------------------- the loops


def iter_runs(
    client: RunsReader,
    *,
    release_id: str,
    window: str,
    page_size: int = 500,
    **filters: Unpack[RunFilters],
) -> Iterator[RunEvent]:
    """Yields every matching event of ``GET /v1/runs``, newest first, one page at a time.

    Args:
        client: A :class:`~flightdeck_rs.FlightdeckClient` (or any :class:`RunsReader`).
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
    _, walk = _walk(_RUNS, release_id=release_id, window=window, page_size=page_size, **filters)
    return (event for page in walk for event in page.runs(client.list_runs(**page.params)))


@twin_of(iter_runs)
def aiter_runs(client: AsyncRunsReader, **arguments: Any) -> AsyncIterator[RunEvent]:
    """Async twin of :func:`iter_runs`: ``async for event in aiter_runs(client, ...)``
    (the same arguments, with an :class:`~flightdeck_rs.AsyncFlightdeckClient`)."""
    return _aruns(client, _walk(_RUNS, **arguments)[1])


async def _aruns(client: AsyncRunsReader, walk: Iterator[Page]) -> AsyncIterator[RunEvent]:
    for page in walk:
        for event in page.runs(await client.list_runs(**page.params)):
            yield event


def export_pairs(client: RunsReader, walk: Iterator[Page]) -> Iterator[tuple[bytes, RunEvent]]:
    """Each wanted export line, with its event (``flightdeck-rs export`` writes the lines)."""
    for page in walk:
        if isinstance(client, ExportStreams):
            opened: Any = client._open_runs_export(**page.params)
        else:
            opened = client.fetch_runs_export_ndjson(**page.params)
        with page.export(opened) as reader:
            read = reader.stream.next_batch
            while (batch := reader.take(read(_STREAM_BATCH, True))) is not None:
                yield from batch


async def _aexport(client: AsyncRunsReader, walk: Iterator[Page]) -> AsyncIterator[RunEvent]:
    for page in walk:
        if isinstance(client, AsyncExportStreams):
            opened: Any = await client._open_runs_export(**page.params)
        else:
            opened = await client.fetch_runs_export_ndjson(**page.params)
        with page.export(opened) as reader:
            read = reader.stream.next_batch_async
            while (got := reader.take(await read(_STREAM_BATCH, True))) is not None:
                for _, event in got:
                    yield event


def iter_runs_export(
    client: RunsReader,
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
        client: A :class:`~flightdeck_rs.FlightdeckClient` (or any :class:`RunsReader`).
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
    _, walk = _walk(_EXPORT, release_id=release_id, window=window, page_size=page_size, **filters)
    return (event for _, event in export_pairs(client, walk))


@twin_of(iter_runs_export)
def aiter_runs_export(client: AsyncRunsReader, **arguments: Any) -> AsyncIterator[RunEvent]:
    """Async twin of :func:`iter_runs_export` (the same arguments, with an
    :class:`~flightdeck_rs.AsyncFlightdeckClient`)."""
    return _aexport(client, _walk(_EXPORT, **arguments)[1])


_checked = page_size
