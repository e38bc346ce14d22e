"""The retry rules for the Python paths, decided by the native core (``src/core/retry.rs``).

Two rules, the same ones the native paths follow (README, "Retries"):

* :func:`client_retry_delay`, the drop-in rule of the client methods, used by the clients'
  loops around an injected ``httpx`` client (the native transport applies it in Rust).
* :func:`delivery`, the rule shared by ``ingest_jsonl`` and the background emitter (whose
  sender applies it in Rust).

Only the decision is taken here; the callers sleep (``time.sleep`` or the running async
library's sleep) and log. Loaded on the first failure, so a call that succeeds never imports
it.
"""

from __future__ import annotations

from typing import Literal

import httpx

from flightdeck_rs import _native

__all__ = ["Action", "client_retry_delay", "delivery", "httpx_class"]

#: What the delivery rule says to do after a failed attempt.
Action = Literal["retry", "split", "give_up"]


def httpx_class(exc: BaseException) -> str | None:
    """The name of the most derived ``httpx`` class ``exc`` is an instance of (so that a
    subclass raised by a custom transport is classified as its ``httpx`` base), or ``None``."""
    for cls in type(exc).__mro__:
        name: str = cls.__name__
        if getattr(httpx, name, None) is cls:
            return name
    return None


def client_retry_delay(
    exc: BaseException,
    *,
    idempotent: bool,
    attempt: int,
    max_retries: int,
    backoff_s: float,
) -> float | None:
    """Seconds to sleep before retrying after attempt ``attempt`` (0-based) raised ``exc``,
    or ``None`` when ``exc`` is to be raised: the client rule."""
    return _native.client_retry_delay(
        httpx_class(exc),
        idempotent=idempotent,
        attempt=attempt,
        max_retries=max_retries,
        backoff_s=backoff_s,
    )


def delivery(exc: BaseException, attempt: int, max_retries: int | None) -> tuple[Action, float]:
    """``(action, delay_s)`` after attempt ``attempt`` (0-based) of a batch raised ``exc``:
    the delivery rule, with its default timing (0.5 s doubling, capped at 30 s)."""
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        status = response.status_code
        return _native.delivery_decision(
            status=status if 0 <= status <= 0xFFFF else 0,
            retry_after=response.headers.get("retry-after"),
            attempt=attempt,
            max_retries=max_retries,
        )
    return _native.delivery_decision(
        failure=httpx_class(exc), attempt=attempt, max_retries=max_retries
    )
