"""What the clients tell the ``flightdeck_rs`` logger.

Retries and slow calls are logged at ``WARNING`` (the Rust transport reports them through
:func:`observe`; the injected-``httpx`` path calls :func:`retry` and :func:`slow` itself).
Nothing is logged above ``WARNING``, and never a token: messages carry the method, the
path without its query, the exception class and its text.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("flightdeck_rs")


def slow_request_s() -> float:
    """The slow-call threshold, :data:`flightdeck_rs.helpers.SLOW_REQUEST_S` (read when a
    client is created)."""
    from flightdeck_rs import helpers

    return float(helpers.SLOW_REQUEST_S)


def retry(
    method: str, path: str, error: str, message: str, attempt: int, max_retries: int, delay: float
) -> None:
    logger.warning(
        "retrying %s %s after %s: %s (attempt %d of %d failed; next in %.2f s)",
        method,
        path,
        error,
        message,
        attempt,
        max_retries + 1,
        delay,
    )


def slow(method: str, path: str, elapsed_s: float, attempts: int, status: int | None) -> None:
    outcome = "failed" if status is None else f"status {status}"
    logger.warning(
        "slow request: %s %s took %.1f s (%d attempt(s), %s)",
        method,
        path,
        elapsed_s,
        attempts,
        outcome,
    )


def observe(kind: str, info: dict[str, Any]) -> None:
    """Receives the Rust transport's notices (``"retry"`` or ``"slow"``)."""
    if kind == "retry":
        retry(
            info["method"],
            info["path"],
            info["error"],
            info["message"],
            info["attempt"],
            info["max_retries"],
            info["delay_s"],
        )
    elif kind == "slow":
        slow(info["method"], info["path"], info["elapsed_s"], info["attempts"], info["status"])
