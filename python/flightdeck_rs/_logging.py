"""What the clients tell the ``flightdeck_rs.client`` logger.

Retries and slow calls are logged at ``WARNING`` (the Rust transport reports them through
:func:`observe`; the injected-``httpx`` path calls :func:`retry` and :func:`slow` itself).
Nothing is logged above ``WARNING``, and never a token: messages carry the method, the
path without its query, the exception class and its text.

Like ``urllib3``, the logger has a :class:`logging.NullHandler`: an application that has not
configured logging sees nothing of it (Python's last-resort handler would otherwise print
every retry on stderr, where the reference SDK prints nothing), while one that has (e.g.
``logging.basicConfig()``) gets these records through propagation as usual. The emitter's
data-loss warnings go to the parent ``flightdeck_rs`` logger, which has no such handler, so
they stay visible by default.

``logging`` itself is imported by the first message, not with the package (cold start).
"""

from __future__ import annotations

from flightdeck_rs._lazy import lazy_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from typing import Any
else:
    logging = lazy_module("logging", globals())

LOGGER_NAME = "flightdeck_rs.client"
# The default of :data:`flightdeck_rs.helpers.SLOW_REQUEST_S` (a test keeps the two equal).
DEFAULT_SLOW_REQUEST_S = 5.0

_configured: list[logging.Logger] = []
_slow_request_source: list[Callable[[], float]] = []


def _logger() -> logging.Logger:
    if _configured:
        return _configured[0]
    log = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
    _configured.append(log)
    return log


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
    it, so creating a client does not import it: that module registers itself here
    (:func:`set_slow_request_source`) when it is imported."""
    if _slow_request_source:
        return _slow_request_source[0]()
    return DEFAULT_SLOW_REQUEST_S


def set_slow_request_source(source: Callable[[], float]) -> None:
    """Makes :func:`slow_request_s` return ``source()`` (``flightdeck_rs.helpers`` calls
    this once, so that assigning its ``SLOW_REQUEST_S`` takes effect)."""
    _slow_request_source[:] = [source]


def retry(
    method: str, path: str, error: str, message: str, attempt: int, max_retries: int, delay: float
) -> None:
    # httpx's async transport raises timeouts and broken connections without a message.
    _logger().warning(
        "retrying %s %s after %s%s (attempt %d of %d failed; next in %.2f s)",
        method,
        path,
        error,
        f": {message}" if message else "",
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
