"""Notebook recipes: run events as flat records and as a pandas ``DataFrame``.

pandas is optional: this module never imports it at import time, and :func:`runs_dataframe`
imports it when called (``pip install pandas``).

Example:
    >>> from flightdeck_rs.recipes import runs_dataframe
    >>> df = runs_dataframe(client.iter_runs(release_id=rel, window="7d"))  # doctest: +SKIP
    >>> df["timestamp"].dtype  # doctest: +SKIP
    datetime64[ns, UTC]
    >>> df.groupby("usage.model.model")["metrics.latency_ms"].median()  # doctest: +SKIP

The export works the same way, streamed (``client.iter_runs_export(...)``) or from a file
written by ``flightdeck-rs export`` (``runs_dataframe(open("runs.ndjson"))``: each line is
parsed as one event).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any

from flightdeck_rs.models import RunEvent

__all__ = ["RUN_COLUMNS", "flatten_run", "run_records", "runs_dataframe"]

#: The columns of a flattened run, in order: nested objects become ``parent.child`` columns
#: (the names ``pandas.json_normalize`` gives them). ``labels`` add one ``labels.<key>`` column
#: per key after these; ``usage.tools`` stays a list of dicts.
RUN_COLUMNS: tuple[str, ...] = (
    "api_version",
    "type",
    "timestamp",
    "workspace_id",
    "agent_id",
    "release_id",
    "run_id",
    "tenant_id",
    "task_id",
    "environment",
    "request.session_id",
    "request.trace_id",
    "request.span_id",
    "metrics.latency_ms",
    "metrics.success",
    "metrics.error_type",
    "usage.model.provider",
    "usage.model.model",
    "usage.model.input_tokens",
    "usage.model.output_tokens",
    "usage.model.cached_input_tokens",
    "usage.tools",
)

RunLike = RunEvent | Mapping[str, Any] | str | bytes | bytearray


def _as_event(item: object) -> RunEvent:
    if isinstance(item, RunEvent):
        return item
    if isinstance(item, str | bytes | bytearray):
        return RunEvent.model_validate_json(item)
    dump = getattr(item, "model_dump", None)  # e.g. a pydantic flightdeck.models.RunEvent
    if callable(dump) and not isinstance(item, Mapping):
        return RunEvent.model_validate(dump(mode="json"))
    return RunEvent.model_validate(item)


def flatten_run(event: RunLike) -> dict[str, Any]:
    """One run as a flat dict with the :data:`RUN_COLUMNS` keys (and ``labels.<key>``).

    Args:
        event: A ``RunEvent`` (ours or the reference's), a dict as ``GET /v1/runs`` returns
            it, or one line of JSON text (an NDJSON export line). It is validated like any
            event, so every record has the same keys and types.

    Returns:
        The record; ``timestamp`` is ISO 8601 text in UTC (``2026-03-01T12:30:15.250000Z``,
        naive values taken as UTC, as on the wire); absent optional values are ``None``.

    Raises:
        flightdeck_rs.models.ValidationError: If ``event`` is not a valid run event.
    """
    run = _as_event(event)
    data = run.model_dump(mode="json")
    stamp = run.timestamp
    stamp = stamp.astimezone(UTC) if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    data["timestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # as sent on the wire
    record: dict[str, Any] = {}
    for column in RUN_COLUMNS:  # each dotted name is a path into the dump
        value: Any = data
        for part in column.split("."):
            value = (value or {}).get(part)
        record[column] = value
    record["usage.tools"] = list(record["usage.tools"] or [])
    for key, value in sorted((data.get("labels") or {}).items()):
        record[f"labels.{key}"] = value
    return record


def run_records(events: Iterable[RunLike]) -> list[dict[str, Any]]:
    """:func:`flatten_run` of each event (no pandas needed)."""
    return [flatten_run(e) for e in events]


def runs_dataframe(events: Iterable[RunLike]) -> Any:
    """Runs as a ``pandas.DataFrame``: one row per run, one column per field.

    ``timestamp`` is a ``datetime64[ns, UTC]`` column; ``request``, ``metrics`` and
    ``usage.model`` are flattened into :data:`RUN_COLUMNS` (token counts are ``int64``,
    ``metrics.latency_ms`` is a nullable ``Int64``), labels into ``labels.<key>`` columns.
    Rows keep the order of ``events`` (``iter_runs`` yields the newest first). An empty input
    gives an empty frame with the same columns and dtypes.

    Args:
        events: What :func:`flatten_run` takes: ``client.iter_runs(...)``,
            ``client.iter_runs_export(...)``, ``list_runs(...)["events"]``, the lines of an
            NDJSON export file, ...

    Returns:
        The ``pandas.DataFrame`` (typed ``Any`` so pandas stays optional).

    Raises:
        ImportError: If pandas is not installed.
        flightdeck_rs.models.ValidationError: If an item is not a valid run event.
    """
    try:
        pd: Any = importlib.import_module("pandas")
    except ImportError as exc:
        raise ImportError(
            "runs_dataframe needs pandas, an optional dependency: pip install pandas"
        ) from exc
    records = run_records(events)
    labels = sorted({k for r in records for k in r if k.startswith("labels.")})
    columns = [*RUN_COLUMNS, *labels]
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601").astype(
        "datetime64[ns, UTC]"
    )
    for name in (
        "usage.model.input_tokens",
        "usage.model.output_tokens",
        "usage.model.cached_input_tokens",
    ):
        frame[name] = frame[name].astype("int64")
    frame["metrics.latency_ms"] = frame["metrics.latency_ms"].astype("Int64")
    frame["metrics.success"] = frame["metrics.success"].astype("bool")
    return frame
