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
return async iterators and ``ingest_jsonl`` is a coroutine). The helpers accept any object
with the client methods they call (typed as the protocols in
``flightdeck_rs._helpers_base``), not only this package's clients.

Logging goes to the ``flightdeck_rs`` logger: retries and slow requests at ``WARNING``,
splitting of rejected chunks at ``INFO``, every page and chunk at ``DEBUG``. Nothing is logged
above ``WARNING``.

Example:
    >>> from flightdeck_rs.sdk import FlightdeckClient
    >>> with FlightdeckClient("http://127.0.0.1:8765") as client:  # doctest: +SKIP
    ...     for event in client.iter_runs(release_id="rel_abc", window="7d"):
    ...         print(event.run_id, event.metrics.latency_ms)
    ...     summary = client.ingest_jsonl("events.jsonl", concurrency=8)

This module only gathers the public names: paging lives in ``flightdeck_rs._paging``, the
JSONL reading in ``flightdeck_rs._jsonl`` and the sending in ``flightdeck_rs._ingest``.
"""

from __future__ import annotations

from flightdeck_rs import _logging
from flightdeck_rs._helpers_base import JsonlSource, ProgressCallback, RunFilters
from flightdeck_rs._ingest import aingest_jsonl, ingest_jsonl
from flightdeck_rs._jsonl import IngestSummary
from flightdeck_rs._paging import (
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    aiter_runs,
    aiter_runs_export,
    iter_runs,
    iter_runs_export,
)

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

#: Client calls slower than this many seconds (all attempts included) are logged at
#: ``WARNING``; read when a client is created.
SLOW_REQUEST_S = _logging.DEFAULT_SLOW_REQUEST_S


def _slow_request_s() -> float:
    return float(SLOW_REQUEST_S)  # this module's value at the time of the call


# The clients read the threshold through ``_logging``, which does not import this module:
# from now on it asks this module's current value.
_logging.set_slow_request_source(_slow_request_s)
