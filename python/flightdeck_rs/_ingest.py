"""``ingest_jsonl`` and ``aingest_jsonl``: a JSONL file of events, sent concurrently.

Both are written once, as I/O-free procedures driven by ``flightdeck_rs._steps``: the plan
of the whole ingest (:func:`_plan`: read a chunk, start sending it, wait when enough are in
flight, stop at the first failure) and the sending of one chunk (:func:`_send_steps`:
retries, and halving a refused chunk to find the bad lines). The blocking driver sends
chunks on worker threads, the async one as tasks (trio: in a nursery).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time
from collections.abc import Generator
from typing import Any

import httpx

from flightdeck_rs import _retry, _runtimes
from flightdeck_rs._helpers_base import (
    AsyncEventsWriter,
    EventsWriter,
    JsonlSource,
    ProgressCallback,
    Timer,
    logger,
    positive,
    twin_of,
)
from flightdeck_rs._jsonl import Chunk, IngestSummary, LineReader, Outcome, Tally, server_detail
from flightdeck_rs._steps import arun, run
from flightdeck_rs.models import RunEvent

__all__ = ["aingest_jsonl", "ingest_jsonl"]

def _log_retry(exc: Exception, n: int, attempt: int, max_retries: int, delay: float) -> None:
    logger.warning(
        "POST /v1/events (%d events) failed: %s; retry %d/%d in %.1f s",
        n,
        exc,
        attempt + 1,
        max_retries,
        delay,
    )


# ----------------------------------------------------------------------------- one chunk

#: A step of :func:`_send_steps`: events to send (answer: the inserted count, or the error
#: thrown in), or seconds to sleep before a retry.
_SendStep = list[RunEvent] | float


def _chunk_steps(chunk: Chunk, max_retries: int) -> Generator[_SendStep, Any, Outcome]:
    outcome = Outcome(lines=chunk.lines)
    yield from _send_steps(chunk.events, chunk.line_nos, max_retries, outcome)
    return outcome


def _send_steps(
    events: list[RunEvent], line_nos: list[int], max_retries: int, outcome: Outcome
) -> Generator[_SendStep, Any, None]:
    """Sends ``events`` (a chunk or part of one) until it is stored, refused line by line,
    or a failure is final (raised)."""
    attempt = 0
    while True:
        timer = Timer(f"POST /v1/events ({len(events)} events, lines {line_nos[0]}-{line_nos[-1]})")
        try:
            inserted = yield events
        except Exception as exc:
            # The delivery rule shared with the emitter (core/retry.rs).
            action, delay = _retry.delivery(exc, attempt, max_retries)
            if action == "split" and isinstance(exc, httpx.HTTPStatusError):
                halves = _split(exc, events, line_nos, outcome)
                if halves is not None:
                    yield from _send_steps(halves[0], halves[1], max_retries, outcome)
                    yield from _send_steps(halves[2], halves[3], max_retries, outcome)
                return
            if action != "retry":
                raise
            _log_retry(exc, len(events), attempt, max_retries, delay)
            yield delay
            attempt += 1
            continue
        timer.done()
        outcome.sent += len(events)
        outcome.inserted += int(inserted)
        return


def _split(
    exc: httpx.HTTPStatusError, events: list[RunEvent], line_nos: list[int], outcome: Outcome
) -> tuple[list[RunEvent], list[int], list[RunEvent], list[int]] | None:
    """Rejects a lone refused event, or returns the two halves of a refused batch."""
    if len(events) == 1:
        message = server_detail(exc)
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


def _send_chunk(client: EventsWriter, chunk: Chunk, max_retries: int) -> Outcome:
    def perform(step: _SendStep) -> Any:
        if isinstance(step, list):
            return client.ingest_run_events(step)
        return time.sleep(step)

    return run(_chunk_steps(chunk, max_retries), perform)


async def _asend_chunk(client: AsyncEventsWriter, chunk: Chunk, max_retries: int) -> Outcome:
    async def perform(step: _SendStep) -> Any:
        if isinstance(step, list):
            return await client.ingest_run_events(step)
        return await _runtimes.sleep(step)

    return await arun(_chunk_steps(chunk, max_retries), perform)


# ----------------------------------------------------------------------------- the whole file

#: Steps of :func:`_plan` besides a :class:`Chunk` to start sending.
_READ, _WAIT_ONE, _WAIT_ALL, _CANCEL = "read", "wait for one", "wait for all", "cancel"

#: What a driver answers to a wait: per finished send, its outcome or its failure
#: (``(None, None)`` for a cancelled one).
_Finished = list[tuple[Outcome | None, BaseException | None]]


def _plan(
    reader: LineReader, tally: Tally, chunk_size: int, concurrency: int
) -> Generator[str | Chunk, Any, IngestSummary]:
    """The ingest, step by step: yields ``_READ`` (answer: the next :class:`Chunk`, or
    ``None`` at the end of the file), a chunk to start sending (answer: ``None``),
    ``_WAIT_ONE`` / ``_WAIT_ALL`` (answer: the :data:`_Finished` sends, at least one / all),
    or ``_CANCEL`` (stop the sends in flight and wait for them; answered as ``_WAIT_ALL``).
    The first failed send stops the reading; the sends in flight are then still counted."""
    running = 0
    try:
        error: BaseException | None = None
        while error is None:
            chunk = yield _READ
            if chunk is None:
                break
            if not chunk.events:
                tally.add(Outcome(lines=chunk.lines))
                continue
            if running >= concurrency:
                finished: _Finished = yield _WAIT_ONE
                running -= len(finished)
                error = _count(finished, tally)
                if error is not None:
                    break
            yield chunk
            running += 1
        if running:
            finished = yield _WAIT_ALL
            running -= len(finished)
            error = _count(finished, tally) or error
        if error is not None:
            raise error
    except BaseException as exc:
        if running:
            _count((yield _CANCEL), tally)
        tally.note(exc, reader)
        raise
    finally:
        reader.close()
    return tally.finish(reader)


def _count(finished: _Finished, tally: Tally) -> BaseException | None:
    """Adds the outcome of every finished send; returns the first failure, if any."""
    error: BaseException | None = None
    for outcome, exc in finished:
        if outcome is not None:
            tally.add(outcome)
        elif exc is not None and error is None:
            error = exc
    return error


def _finished(send: cf.Future[Outcome] | asyncio.Task[Outcome]) -> tuple[Any, Any]:
    if send.cancelled():
        return None, None
    exc = send.exception()
    return (send.result(), None) if exc is None else (None, exc)


def _options(
    path_or_file: JsonlSource,
    *,
    chunk_size: int = 500,
    concurrency: int = 4,
    progress: ProgressCallback | None = None,
    max_retries: int = 2,
) -> tuple[JsonlSource, int, int, ProgressCallback | None, int]:
    return (
        path_or_file,
        positive("chunk_size", chunk_size),
        positive("concurrency", concurrency),
        progress,
        max_retries,
    )


def ingest_jsonl(
    client: EventsWriter,
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
    emitter (README, "Retries"): when the server refuses a chunk (413, or 400/422 and any
    other 4xx but 401/403/404 and the retried ones) it is split in halves until the offending
    lines are isolated and reported; connection failures, timeouts and 408/425/429/5xx (but
    501) are retried ``max_retries`` times with backoff (``Retry-After`` is honoured); this is
    safe because the server ignores an already stored ``run_id``.

    Args:
        client: A :class:`~flightdeck_rs.FlightdeckClient` (shared by the worker threads),
            or any :class:`~flightdeck_rs._helpers_base.EventsWriter`.
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
    source, chunk_size, concurrency, progress, max_retries = _options(
        path_or_file,
        chunk_size=chunk_size,
        concurrency=concurrency,
        progress=progress,
        max_retries=max_retries,
    )
    reader = LineReader(source)
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="flightdeck-ingest")
    pending: set[cf.Future[Outcome]] = set()

    def perform(step: str | Chunk) -> Any:
        nonlocal pending
        if step == _READ:
            return reader.read_chunk(chunk_size)
        if isinstance(step, Chunk):
            return pending.add(pool.submit(_send_chunk, client, step, max_retries))
        for send in pending if step == _CANCEL else ():
            send.cancel()
        done, pending = cf.wait(pending, return_when=_RETURN_WHEN[step])
        return [_finished(send) for send in done]

    try:
        return run(_plan(reader, Tally(progress), chunk_size, concurrency), perform)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_RETURN_WHEN = {
    _WAIT_ONE: cf.FIRST_COMPLETED,
    _WAIT_ALL: cf.ALL_COMPLETED,
    _CANCEL: cf.ALL_COMPLETED,
}


@twin_of(ingest_jsonl)
async def aingest_jsonl(client: AsyncEventsWriter, *args: Any, **kwargs: Any) -> IngestSummary:
    """Async twin of :func:`ingest_jsonl`: chunks go out as up to ``concurrency`` tasks.

    The file is read and validated in a worker thread (``asyncio.to_thread``) one chunk at a
    time, so a slow pipe never blocks the event loop; ``progress`` is called on the event
    loop. Under trio the chunks are tasks of one nursery.
    """
    source, chunk_size, concurrency, progress, max_retries = _options(*args, **kwargs)
    if asyncio._get_running_loop() is None:  # trio (or anyio on trio)
        return await _aingest_trio(client, source, chunk_size, concurrency, progress, max_retries)
    reader = await asyncio.to_thread(LineReader, source)
    pending: set[asyncio.Task[Outcome]] = set()

    async def perform(step: str | Chunk) -> Any:
        nonlocal pending
        if step == _READ:
            return await asyncio.to_thread(reader.read_chunk, chunk_size)
        if isinstance(step, Chunk):
            return pending.add(asyncio.create_task(_asend_chunk(client, step, max_retries)))
        for task in pending if step == _CANCEL else ():
            task.cancel()
        when = asyncio.FIRST_COMPLETED if step == _WAIT_ONE else asyncio.ALL_COMPLETED
        done, pending = await asyncio.wait(pending, return_when=when)
        return [_finished(task) for task in done]

    return await arun(_plan(reader, Tally(progress), chunk_size, concurrency), perform)


async def _aingest_trio(
    client: AsyncEventsWriter,
    source: JsonlSource,
    chunk_size: int,
    concurrency: int,
    progress: ProgressCallback | None,
    max_retries: int,
) -> IngestSummary:
    """:func:`aingest_jsonl` under trio: the same reading, splitting, retries and summary,
    with the chunks as tasks of one nursery (a failed chunk stops new ones; those in flight
    finish and are counted, then the error is raised)."""
    library = _runtimes.current_library()
    if library != "trio":
        raise _runtimes.unsupported(library)
    import trio

    reader = await trio.to_thread.run_sync(LineReader, source)
    tally = Tally(progress)
    slots = trio.Semaphore(concurrency)
    errors: list[Exception] = []

    async def send(chunk: Chunk) -> None:
        try:
            tally.add(await _asend_chunk(client, chunk, max_retries))
        except Exception as exc:  # noqa: BLE001 - the first one is raised below
            errors.append(exc)
        finally:
            slots.release()

    try:
        async with trio.open_nursery() as nursery:
            while not errors:
                chunk = await trio.to_thread.run_sync(reader.read_chunk, chunk_size)
                if chunk is None:
                    break
                if not chunk.events:
                    tally.add(Outcome(lines=chunk.lines))
                    continue
                await slots.acquire()
                if errors:
                    slots.release()
                    break
                nursery.start_soon(send, chunk)
        if errors:
            raise errors[0]
    except BaseException as exc:
        tally.note(exc, reader)
        raise
    finally:
        reader.close()
    return tally.finish(reader)
