"""What the everyday-use helpers (``flightdeck_rs.helpers``) share: the types in their
signatures, the client interfaces they are typed against, their logger and argument checks.

The helpers take any object with the methods below, not only this package's clients (a
wrapper that counts or delays calls works too): :class:`RunsReader` / :class:`EventsWriter`
for the blocking helpers, :class:`AsyncRunsReader` / :class:`AsyncEventsWriter` for the async
ones. :class:`ExportStreams` / :class:`AsyncExportStreams` is the optional streaming export
that this package's clients add; without it a helper reads whole export pages.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Concatenate,
    ParamSpec,
    Protocol,
    TypedDict,
    TypeVar,
    Unpack,
    runtime_checkable,
)

if TYPE_CHECKING:
    from flightdeck_rs._native import NativeExportStream
    from flightdeck_rs.models import RunEvent

logger = logging.getLogger("flightdeck_rs")

P = ParamSpec("P")
C = TypeVar("C")
R = TypeVar("R")


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


class RunsPage(RunFilters, total=False):
    """The filters plus the page position: the keywords a paging helper passes on."""

    offset: int
    limit: int


# ----------------------------------------------------------------------------- interfaces


class RunsReader(Protocol):
    """What the blocking paging helpers call (a :class:`~flightdeck_rs.FlightdeckClient`)."""

    def list_runs(
        self, *, release_id: str, window: str, **page: Unpack[RunsPage]
    ) -> dict[str, Any]: ...
    def fetch_runs_export_ndjson(
        self, *, release_id: str, window: str, **page: Unpack[RunsPage]
    ) -> tuple[bytes, dict[str, str]]: ...


class AsyncRunsReader(Protocol):
    """What the async paging helpers await (an :class:`~flightdeck_rs.AsyncFlightdeckClient`)."""

    async def list_runs(
        self, *, release_id: str, window: str, **page: Unpack[RunsPage]
    ) -> dict[str, Any]: ...
    async def fetch_runs_export_ndjson(
        self, *, release_id: str, window: str, **page: Unpack[RunsPage]
    ) -> tuple[bytes, dict[str, str]]: ...


@runtime_checkable
class ExportStreams(Protocol):
    """A :class:`RunsReader` that can open an export page as a stream (parsed while it
    arrives) instead of reading it whole: this package's clients."""

    def _open_runs_export(self, **params: Any) -> NativeExportStream: ...


@runtime_checkable
class AsyncExportStreams(Protocol):
    """The async twin of :class:`ExportStreams`."""

    async def _open_runs_export(self, **params: Any) -> NativeExportStream: ...


class EventsWriter(Protocol):
    """What the blocking ``ingest_jsonl`` calls (from several threads at once)."""

    def ingest_run_events(self, events: Iterable[RunEvent]) -> int: ...


class AsyncEventsWriter(Protocol):
    """What the async ``aingest_jsonl`` awaits."""

    async def ingest_run_events(self, events: Iterable[RunEvent]) -> int: ...


# ----------------------------------------------------------------------------- small shared parts


def positive(name: str, value: int) -> int:
    """``value``, checked to be an ``int`` of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class Timer:
    """Logs a request at DEBUG (the clients themselves log slow calls at WARNING)."""

    __slots__ = ("_what", "_start")

    def __init__(self, what: str) -> None:
        self._what = what
        self._start = time.perf_counter()

    def done(self, detail: str = "") -> None:
        logger.debug("%s took %.3f s%s", self._what, time.perf_counter() - self._start, detail)


def twin_of(
    spec: Callable[Concatenate[Any, P], object],
) -> Callable[[Callable[Concatenate[C, ...], R]], Callable[Concatenate[C, P], R]]:
    """Makes the decorated async helper take the arguments of the blocking helper ``spec``
    after its client: the parameters are written once, in ``spec``; type checkers and
    ``inspect.signature`` see them on the twin too (with the twin's client and result)."""

    def declare(impl: Callable[Concatenate[C, ...], R]) -> Callable[Concatenate[C, P], R]:
        theirs, own = inspect.signature(spec), inspect.signature(impl)
        client = next(iter(own.parameters.values()))
        params = [client.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += list(theirs.parameters.values())[1:]
        impl.__signature__ = theirs.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=own.return_annotation
        )
        return impl

    return declare
