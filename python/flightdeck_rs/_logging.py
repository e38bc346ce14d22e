"""What the clients tell the ``flightdeck_rs`` logger.

Retries and slow calls are logged at ``WARNING`` (the Rust transport reports them through
:func:`observe`; the injected-``httpx`` path calls :func:`retry` and :func:`slow` itself).
Nothing is logged above ``WARNING``, and never a token: messages carry the method, the
path without its query, the exception class and its text.
"""

from __future__ import annotations

import sys

from flightdeck_rs._lazy import lazy_module

# ``logging`` is imported by the first message, not with the package.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any
else:
    logging = lazy_module("logging", globals())

LOGGER_NAME = "flightdeck_rs"
# The default of :data:`flightdeck_rs.helpers.SLOW_REQUEST_S` (a test keeps the two equal).
DEFAULT_SLOW_REQUEST_S = 5.0


def _logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


if TYPE_CHECKING:
    logger: logging.Logger
else:

    def __getattr__(name: str) -> Any:
        if name == "logger":
            return _logger()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def slow_request_s() -> float:
    """The slow-call threshold, :data:`flightdeck_rs.helpers.SLOW_REQUEST_S` (read when a
    client is created). Until ``flightdeck_rs.helpers`` is imported nobody can have changed
    it, so creating a client does not import it."""
    helpers = sys.modules.get("flightdeck_rs.helpers")
    if helpers is None:
        return DEFAULT_SLOW_REQUEST_S
    return float(getattr(helpers, "SLOW_REQUEST_S", DEFAULT_SLOW_REQUEST_S))


def retry(
    method: str, path: str, error: str, message: str, attempt: int, max_retries: int, delay: float
) -> None:
    _logger().warning(
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
    _logger().warning(
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
