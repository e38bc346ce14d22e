"""I/O-free procedures and their two drivers.

A procedure that has to wait (send a request, sleep before a retry) is written once, as a
generator that yields each thing it needs done and is sent the result back (or has the
failure thrown in at the ``yield``). :func:`run` performs the steps blocking, :func:`arun`
awaiting them; the procedure itself never knows which. This is how the injected-``httpx``
retry loop of the two clients and the chunk sending of ``ingest_jsonl`` exist once.

Imports nothing at run time: it is on the import path of ``flightdeck_rs.sdk``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator
    from typing import Any, TypeVar

    S = TypeVar("S")
    R = TypeVar("R")

__all__ = ["arun", "resume", "run"]


def resume(
    steps: Generator[Any, Any, Any], result: Any, error: BaseException | None
) -> tuple[bool, Any]:
    """Hands ``result`` (or throws ``error``) into ``steps``: ``(False, next_step)``, or
    ``(True, return_value)`` once the procedure has finished."""
    try:
        step = steps.send(result) if error is None else steps.throw(error)
    except StopIteration as done:
        return True, done.value
    return False, step


def run(steps: Generator[S, Any, R], perform: Callable[[S], Any]) -> R:
    """Drives ``steps`` to the end, blocking: ``perform(step)`` does each step."""
    finished, value = resume(steps, None, None)
    while not finished:
        try:
            result = perform(value)
        except BaseException as exc:  # handed to the procedure, which decides
            finished, value = resume(steps, None, exc)
        else:
            finished, value = resume(steps, result, None)
    return value  # type: ignore[no-any-return]


async def arun(steps: Generator[S, Any, R], perform: Callable[[S], Awaitable[Any]]) -> R:
    """Drives ``steps`` to the end on the running event loop: ``await perform(step)``."""
    finished, value = resume(steps, None, None)
    while not finished:
        try:
            result = await perform(value)
        except BaseException as exc:  # cancellation included: the procedure's cleanup runs
            finished, value = resume(steps, None, exc)
        else:
            finished, value = resume(steps, result, None)
    return value  # type: ignore[no-any-return]
