"""Type-checked usage of every public name: ``mypy --strict tests/typing_usage.py``.

Never run by pytest (its name does not start with ``test_``); ``test_helpers_cli`` runs mypy on
it. Each function is written the way a user would, with the types mypy should infer spelled
out through ``assert_type``, so a stub or signature regression fails the check.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any, assert_type

import flightdeck_rs
from flightdeck_rs import (
    AsyncFlightdeckClient,
    Emitter,
    FlightdeckClient,
    Run,
    RunEvent,
    ValidationError,
    __version__,
    cli,
    current_run,
    get_emitter,
    helpers,
    models,
)
from flightdeck_rs.helpers import (
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    SLOW_REQUEST_S,
    IngestSummary,
    RunFilters,
    aingest_jsonl,
    aiter_runs,
    aiter_runs_export,
    ingest_jsonl,
    iter_runs,
    iter_runs_export,
)
from flightdeck_rs.models import (
    RunEventMetrics,
    RunEventModelUsage,
    RunEventRequest,
    RunEventToolUsage,
    RunEventUsage,
)
from flightdeck_rs.sdk import AsyncFlightdeckClient as SdkAsyncClient
from flightdeck_rs.sdk import FlightdeckClient as SdkClient


def models_usage() -> None:
    event = RunEvent(
        timestamp=datetime.now(),
        agent_id="a",
        release_id="r",
        run_id="x",
        tenant_id="t",
        task_id="k",
        environment="local",
        usage={"model": {"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 2}},
    )
    assert_type(event.timestamp, datetime)
    assert_type(event.labels, dict[str, str])
    assert_type(event.request, RunEventRequest | None)
    assert_type(event.metrics, RunEventMetrics)
    assert_type(event.metrics.latency_ms, int | None)
    assert_type(event.usage, RunEventUsage)
    assert_type(event.usage.model, RunEventModelUsage)
    assert_type(event.usage.tools, list[RunEventToolUsage])
    assert_type(event.model_dump(mode="json"), dict[str, Any])
    assert_type(event.model_dump_json(), str)
    assert_type(event.wire_json(), bytes)
    assert_type(RunEvent.model_validate(event.model_dump()), RunEvent)
    assert_type(RunEvent.model_validate_json(event.model_dump_json()), RunEvent)
    assert_type(event.model_copy(update={"run_id": "y"}), RunEvent)
    assert_type(RunEventRequest.model_validate({"trace_id": "t"}), RunEventRequest)
    assert_type(RunEventMetrics(success=True).success, bool)
    assert_type(RunEventToolUsage.model_validate({"tool_name": "s"}).cost_units, float)
    assert_type(models.RunEvent, type[RunEvent])
    # the pydantic-model API
    assert_type(event.model_fields_set, set[str])
    assert_type(RunEvent.model_fields, dict[str, Any])
    assert_type(event.model_dump(exclude_none=True, include={"usage"}), dict[str, Any])
    assert_type(event.model_dump_json(indent=2, exclude_unset=True), str)
    assert_type(RunEvent.model_validate(event, strict=True, from_attributes=True), RunEvent)
    assert_type(RunEvent.model_construct(run_id="x"), RunEvent)
    assert_type(RunEvent.model_json_schema(), dict[str, Any])
    assert_type(RunEventUsage.model_validate_json("{}"), RunEventUsage)
    assert_type(dict(event), dict[str, Any])
    try:
        RunEvent.model_validate({})
    except ValidationError as exc:
        assert_type(exc.errors(), list[dict[str, Any]])
        assert_type(exc.error_count(), int)
        assert_type(exc.title, str)
    assert_type(models.ValidationError, type[ValidationError])
    assert_type(__version__, str)
    assert_type(flightdeck_rs.__version__, str)


def client_usage(client: FlightdeckClient, event: RunEvent) -> None:
    assert SdkClient is FlightdeckClient
    assert_type(client.health(), dict[str, Any])
    assert_type(client.get_workspace(), dict[str, Any])
    assert_type(client.get_metrics(), dict[str, Any])
    assert_type(client.list_releases(), dict[str, Any])
    assert_type(client.list_promoted(), dict[str, Any])
    assert_type(client.list_actions(agent_id="a", environment="e", limit=5), dict[str, Any])
    assert_type(client.list_promotion_requests(status="pending"), dict[str, Any])
    assert_type(
        client.post_diff(baseline_release_id="a", candidate_release_id="b", window="1h"),
        dict[str, Any],
    )
    assert_type(
        client.post_promote(release_id="a", environment="e", window="1h", reason="r"),
        dict[str, Any],
    )
    assert_type(
        client.post_promote_request(release_id="a", environment="e", window="1h", reason="r"),
        dict[str, Any],
    )
    assert_type(client.post_promote_confirm(request_id="q", approval_reason="ok"), dict[str, Any])
    assert_type(
        client.post_rollback(release_id="a", environment="e", window="1h", reason="r"),
        dict[str, Any],
    )
    assert_type(client.list_runs(release_id="a", window="1h", offset=0, limit=5), dict[str, Any])
    body, headers = client.fetch_runs_export_ndjson(release_id="a", window="1h")
    assert_type(body, bytes)
    assert_type(headers, dict[str, str])
    assert_type(client.ingest_run_events([event]), int)
    assert_type(client.ingest_run_events_batch([event], chunk_size=10), int)

    runs = client.iter_runs(release_id="a", window="7d", environment="e", page_size=50)
    assert_type(runs, Iterator[RunEvent])
    for run in runs:
        assert_type(run, RunEvent)
    assert_type(client.iter_runs_export(release_id="a", window="7d"), Iterator[RunEvent])
    summary = client.ingest_jsonl("events.jsonl", concurrency=2, progress=lambda d, s, i: None)
    assert_type(summary, IngestSummary)
    assert_type(client.ingest_jsonl(io.BytesIO(b""), chunk_size=10), IngestSummary)
    assert_type(client.ingest_jsonl(io.StringIO(""), max_retries=0), IngestSummary)
    with FlightdeckClient("http://127.0.0.1:8765", timeout_s=1.0, api_token=None) as c:
        assert_type(c, FlightdeckClient)
    client.close()


async def async_client_usage(client: AsyncFlightdeckClient, event: RunEvent) -> None:
    assert SdkAsyncClient is AsyncFlightdeckClient
    assert_type(await client.health(), dict[str, Any])
    assert_type(await client.get_workspace(), dict[str, Any])
    assert_type(await client.get_metrics(), dict[str, Any])
    assert_type(await client.list_releases(), dict[str, Any])
    assert_type(await client.list_promoted(), dict[str, Any])
    assert_type(await client.list_actions(limit=5), dict[str, Any])
    assert_type(await client.list_promotion_requests(), dict[str, Any])
    assert_type(
        await client.post_diff(baseline_release_id="a", candidate_release_id="b", window="1h"),
        dict[str, Any],
    )
    assert_type(
        await client.post_promote(release_id="a", environment="e", window="1h", reason="r"),
        dict[str, Any],
    )
    assert_type(
        await client.post_promote_request(release_id="a", environment="e", window="1h", reason="r"),
        dict[str, Any],
    )
    assert_type(
        await client.post_promote_confirm(request_id="q", approval_reason="ok"), dict[str, Any]
    )
    assert_type(
        await client.post_rollback(release_id="a", environment="e", window="1h", reason="r"),
        dict[str, Any],
    )
    assert_type(await client.list_runs(release_id="a", window="1h"), dict[str, Any])
    body, headers = await client.fetch_runs_export_ndjson(release_id="a", window="1h")
    assert_type(body, bytes)
    assert_type(headers, dict[str, str])
    assert_type(await client.ingest_run_events([event]), int)
    assert_type(await client.ingest_run_events_batch([event]), int)

    runs = client.iter_runs(release_id="a", window="7d", tenant_id="t")
    assert_type(runs, AsyncIterator[RunEvent])
    async for run in runs:
        assert_type(run, RunEvent)
    async for run in client.iter_runs_export(release_id="a", window="7d", page_size=10):
        assert_type(run, RunEvent)
    assert_type(await client.ingest_jsonl("events.jsonl"), IngestSummary)
    async with AsyncFlightdeckClient("http://127.0.0.1:8765") as c:
        assert_type(c, AsyncFlightdeckClient)
    await client.aclose()


def helpers_usage(client: FlightdeckClient) -> None:
    filters: RunFilters = {"environment": "prod", "task_id": None}
    assert_type(iter_runs(client, release_id="a", window="1d", **filters), Iterator[RunEvent])
    assert_type(iter_runs_export(client, release_id="a", window="1d"), Iterator[RunEvent])
    summary = ingest_jsonl(client, "events.jsonl", chunk_size=100, concurrency=8)
    assert_type(summary.sent, int)
    assert_type(summary.inserted, int)
    assert_type(summary.duplicates, int)
    assert_type(summary.rejected, list[tuple[int, str]])
    assert_type(summary.lines, int)
    assert_type(summary.ok, bool)
    assert_type(summary.to_dict(), dict[str, Any])
    assert_type(helpers.IngestSummary(), IngestSummary)
    assert_type(MAX_OFFSET + MAX_PAGE_SIZE, int)
    assert_type(SLOW_REQUEST_S, float)


async def async_helpers_usage(client: AsyncFlightdeckClient) -> None:
    assert_type(aiter_runs(client, release_id="a", window="1d"), AsyncIterator[RunEvent])
    assert_type(
        aiter_runs_export(client, release_id="a", window="1d", span_id="s"),
        AsyncIterator[RunEvent],
    )
    assert_type(await aingest_jsonl(client, io.BytesIO(b"")), IngestSummary)


def emitter_usage(event: RunEvent) -> None:
    emitter = Emitter("http://127.0.0.1:8765", api_token=None, max_queue_events=100)
    assert_type(emitter.emit(event), bool)
    assert_type(emitter.emit({"run_id": "x"}), bool)
    assert_type(emitter.flush(timeout_s=1.0), bool)
    assert_type(emitter.stats(), dict[str, Any])
    assert_type(emitter.closed, bool)
    assert_type(emitter.close(), bool)
    with Emitter("http://127.0.0.1:8765") as e:
        assert_type(e, Emitter)
    assert_type(get_emitter("http://127.0.0.1:8765"), Emitter)


async def async_emitter_usage() -> None:
    async with Emitter("http://127.0.0.1:8765") as e:
        assert_type(await e.aflush(), bool)
        assert_type(await e.aclose(), bool)


def tracking_usage(emitter: Emitter) -> None:
    with emitter.run(
        agent_id="a",
        release_id="r",
        tenant_id="t",
        task_id="k",
        environment="e",
        labels={"k": "v"},
        provider="openai",
        model="m",
    ) as run:
        assert_type(run, Run)
        run.add_model_usage("openai", "gpt-4.1-mini", 10, 2, cached_input_tokens=1)
        run.add_tool("search", invocations=2, cost_units=0.5)
        run.labels["ticket"] = "T-1"
        run.fail("Handled")
        run.set_request(session_id="s", trace_id="t", span_id="p")
        assert_type(run.add_usage_from(object(), provider="openai"), int)
        assert_type(run.run_id, str)
        assert_type(run.success, bool)
        assert_type(run.error_type, str | None)
    assert_type(current_run(), Run | None)

    @emitter.track(
        agent_id="a",
        release_id="r",
        tenant_id=lambda ticket, **_: str(ticket),
        task_id="k",
        environment="e",
        run_id=lambda ticket, **_: f"run-{ticket}",
        labels=lambda ticket, **_: {"ticket": str(ticket)},
    )
    def handle(ticket: int, *, urgent: bool = False) -> str:
        return str(ticket)

    @emitter.track(agent_id="a", release_id="r", tenant_id="t", task_id="k", environment="e")
    def stream(n: int) -> Iterator[int]:
        yield n

    @emitter.track(agent_id="a", release_id="r", tenant_id="t", task_id="k", environment="e")
    async def astream(n: int) -> AsyncIterator[int]:
        yield n

    assert_type(handle(1, urgent=True), str)
    assert_type(stream(1), Iterator[int])
    assert_type(astream(1), AsyncIterator[int])


async def async_tracking_usage(emitter: Emitter) -> None:
    async with emitter.run(
        agent_id="a", release_id="r", tenant_id="t", task_id="k", environment="e"
    ) as run:
        assert_type(run, Run)

    @emitter.track(agent_id="a", release_id="r", tenant_id="t", task_id="k", environment="e")
    async def ahandle(ticket: int) -> list[int]:
        return [ticket]

    assert_type(await ahandle(1), list[int])


def cli_usage() -> None:
    assert_type(cli.main(["--version"]), int)
    assert_type(cli.build_parser().prog, str)
    codes: list[int] = [
        cli.EXIT_OK,
        cli.EXIT_PARTIAL,
        cli.EXIT_USAGE,
        cli.EXIT_UNREACHABLE,
        cli.EXIT_AUTH,
        cli.EXIT_HTTP,
        cli.EXIT_INTERRUPTED,
    ]
    assert_type(codes, list[int])
    assert_type(cli.DEFAULT_URL, str)
