"""``flightdeck_rs.recipes``: runs as flat records and as a pandas DataFrame (pandas optional)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd  # a test dependency; the package itself never imports it
import pytest
from flightdeck.models import RunEvent as ReferenceRunEvent

from conftest import make_events, unique_env
from flightdeck_rs import FlightdeckClient, RunEvent
from flightdeck_rs.models import ValidationError
from flightdeck_rs.recipes import RUN_COLUMNS, flatten_run, run_records, runs_dataframe

pytestmark = pytest.mark.timeout(60)


def sample(**overrides: Any) -> RunEvent:
    kwargs: dict[str, Any] = {
        "timestamp": datetime(2026, 3, 1, 14, 30, 15, 250000, tzinfo=timezone(timedelta(hours=2))),
        "agent_id": "agent_support",
        "release_id": "rel_1",
        "run_id": "run-1",
        "tenant_id": "tenant_a",
        "task_id": "task_b",
        "environment": "production",
        "request": {"trace_id": "tr-1"},
        "metrics": {"success": False, "latency_ms": 812, "error_type": "timeout"},
        "usage": {
            "model": {
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "input_tokens": 1200,
                "output_tokens": 400,
                "cached_input_tokens": 100,
            },
            "tools": [{"tool_name": "search", "invocations": 2}],
        },
        "labels": {"team": "support"},
    }
    kwargs.update(overrides)
    return RunEvent(**kwargs)


def test_flatten_run_gives_json_normalize_names() -> None:
    event = sample()
    record = flatten_run(event)
    assert list(record) == [*RUN_COLUMNS, "labels.team"]
    assert record["timestamp"] == "2026-03-01T12:30:15.250000Z"  # UTC text
    assert record["request.trace_id"] == "tr-1" and record["request.session_id"] is None
    assert record["metrics.latency_ms"] == 812 and record["metrics.error_type"] == "timeout"
    assert record["usage.model.input_tokens"] == 1200
    assert record["usage.tools"] == [{"tool_name": "search", "invocations": 2, "cost_units": 0.0}]
    # The same names pandas.json_normalize gives a JSON dump (tools stay a list).
    normalized = pd.json_normalize([event.model_dump(mode="json")])
    assert set(normalized.columns) - {"request.session_id", "request.span_id"} <= set(record)
    # Every input form gives the same record.
    dump = event.model_dump(mode="json")
    assert flatten_run(dump) == record
    assert flatten_run(event.model_dump_json()) == record
    assert flatten_run(event.model_dump_json().encode()) == record
    assert flatten_run(ReferenceRunEvent.model_validate(dump)) == record
    # Absent optional parts are None, not missing keys.
    bare = flatten_run(sample(request=None, labels={}, metrics={}))
    assert list(bare) == list(RUN_COLUMNS)
    assert bare["request.trace_id"] is None and bare["metrics.latency_ms"] is None
    with pytest.raises(ValidationError):
        flatten_run({"run_id": "x"})


def test_runs_dataframe_types() -> None:
    events = [
        sample(),
        sample(run_id="run-2", metrics={"success": True}, labels={"region": "eu"}),
        sample(run_id="run-3", timestamp=datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
    ]
    df = runs_dataframe(events)
    assert list(df.columns) == [*RUN_COLUMNS, "labels.region", "labels.team"]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["timestamp"].iloc[0] == pd.Timestamp("2026-03-01 12:30:15.25", tz="UTC")
    assert df["timestamp"].iloc[2] == pd.Timestamp("2026-03-01 12:00", tz="UTC")
    assert str(df["usage.model.input_tokens"].dtype) == "int64"
    assert str(df["metrics.latency_ms"].dtype) == "Int64"
    assert df["metrics.latency_ms"].isna().tolist() == [False, True, False]
    assert df["metrics.success"].tolist() == [False, True, False]
    assert df["labels.region"].tolist()[1] == "eu" and pd.isna(df["labels.region"].iloc[0])
    assert list(df["run_id"]) == ["run-1", "run-2", "run-3"]  # input order is kept

    empty = runs_dataframe([])
    assert list(empty.columns) == list(RUN_COLUMNS) and len(empty) == 0
    assert str(empty["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_runs_dataframe_from_a_server(server: Any, tmp_path: Any) -> None:
    env = unique_env("recipes")
    with FlightdeckClient(server.base_url) as client:
        client.ingest_run_events(make_events(RunEvent, server.baseline_id, 7, environment=env))
        filters = {"release_id": server.baseline_id, "window": "1h", "environment": env}
        from_iter = runs_dataframe(client.iter_runs(**filters, page_size=3))
        from_export = runs_dataframe(client.iter_runs_export(**filters))
        from_page = runs_dataframe(client.list_runs(**filters)["events"])
        path = tmp_path / "runs.ndjson"
        path.write_text("".join(e.model_dump_json() + "\n" for e in client.iter_runs(**filters)))
    with path.open() as lines:
        from_file = runs_dataframe(lines)
    assert len(from_iter) == 7
    for other in (from_export, from_page, from_file):
        pd.testing.assert_frame_equal(
            other.sort_values("run_id").reset_index(drop=True),
            from_iter.sort_values("run_id").reset_index(drop=True),
        )
    assert (from_iter["timestamp"] > pd.Timestamp.now(tz="UTC") - pd.Timedelta("1h")).all()
    assert from_iter["usage.model.output_tokens"].sum() == 7 * 500


def test_pandas_stays_optional() -> None:
    code = (
        "import sys\n"
        "import flightdeck_rs, flightdeck_rs.recipes, flightdeck_rs.cli, flightdeck_rs.demo\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
        "from flightdeck_rs.recipes import run_records, runs_dataframe\n"
        "sys.modules['pandas'] = None  # as if it were not installed\n"
        "try:\n"
        "    runs_dataframe([])\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "print(len(run_records([])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "runs_dataframe needs pandas, an optional dependency: pip install pandas",
        "0",
    ]
    assert run_records([sample()]) == [flatten_run(sample())]
    assert json.loads(json.dumps(run_records([sample()])))  # plain JSON-able records
