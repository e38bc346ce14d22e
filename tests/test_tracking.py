"""Run tracking: ``with emitter.run(...)``, ``@emitter.track(...)``, ``current_run()``.

Every behaviour that ends in an event is checked against a real ``flightdeck serve``: the runs
are read back with ``list_runs`` (latency, success, error_type, usage, tools, labels, request
ids). No test measures speed: latency is checked only against bounds that hold on any machine
(at least the time slept inside the run, at most the wall time around it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace as NS
from typing import Any

import pytest

from conftest import AGENT_ID, REPO, unique_env
from emitter_server import closed_port
from flightdeck_rs import Emitter, Run, current_run, get_emitter, tracking
from flightdeck_rs.sdk import FlightdeckClient
from flightdeck_rs.tracking import OTHER_MODELS_LABEL, TRACK_COUNTERS
from flightdeck_rs.usage import ModelUsage, UnreadableUsage, read_usage

pytestmark = pytest.mark.timeout(120)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MODEL = "gpt-4.1-mini"


class Tracked:
    """An emitter on the real server plus the ids of one test (a fresh environment)."""

    def __init__(self, server: Any, prefix: str) -> None:
        self.server = server
        self.env = unique_env(prefix)
        self.em = Emitter(server.base_url, flush_interval_s=0.05, atexit_timeout_s=0)
        self.ids: dict[str, Any] = {
            "agent_id": AGENT_ID,
            "release_id": server.baseline_id,
            "tenant_id": "tenant_acme",
            "task_id": "task_support",
            "environment": self.env,
        }

    def runs(self, expected: int) -> dict[str, dict[str, Any]]:
        """Closes the emitter (everything delivered) and reads this test's runs back."""
        assert self.em.close(timeout_s=30.0) is True
        stats = self.em.stats()
        assert stats["acked"] == stats["accepted"]
        out: dict[str, dict[str, Any]] = {}
        with FlightdeckClient(self.server.base_url) as client:
            offset = 0
            while True:
                page = client.list_runs(
                    release_id=self.server.baseline_id,
                    window="1h",
                    environment=self.env,
                    offset=offset,
                    limit=500,
                )
                for r in page["events"]:
                    out[r["run_id"]] = r
                offset += len(page["events"])
                if not page["events"] or offset >= page["matched_total"]:
                    break
        assert len(out) == expected, sorted(out)
        return out


@pytest.fixture
def tr(server: Any, request: pytest.FixtureRequest) -> Iterator[Tracked]:
    t = Tracked(server, request.node.name[:20].replace("[", "-").strip("_-"))
    try:
        yield t
    finally:
        t.em.close(timeout_s=5.0)


def model_of(run: dict[str, Any]) -> tuple[str, str, int, int, int]:
    m = run["usage"]["model"]
    return (
        m["provider"],
        m["model"],
        m["input_tokens"],
        m["output_tokens"],
        m["cached_input_tokens"],
    )


def ts_of(run: dict[str, Any]) -> datetime:
    ts = datetime.fromisoformat(run["timestamp"].replace("Z", "+00:00"))
    assert ts.tzinfo is not None
    return ts


class AppError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- context manager


def test_context_manager_emits_one_complete_run(tr: Tracked) -> None:
    before = datetime.now(UTC)
    t0 = time.monotonic()
    with tr.em.run(**tr.ids, labels={"team": "support"}) as run:
        assert current_run() is run
        run.add_model_usage("openai", MODEL, 100, 20)
        run.add_model_usage("openai", MODEL, 50, 5, cached_input_tokens=7)
        run.add_tool("search")
        run.add_tool("search", invocations=2, cost_units=0.5)
        run.add_tool("calculator", cost_units=1.25)
        run.labels["ticket"] = "T-1"
        run.set_request(session_id="sess-1", trace_id="trace-1")
        run.set_request(span_id="span-1")
        time.sleep(0.06)
    wall_ms = (time.monotonic() - t0) * 1000
    assert current_run() is None
    assert run.success and run.error_type is None
    assert UUID4.match(run.run_id)
    got = tr.runs(1)[run.run_id]
    assert got["agent_id"] == AGENT_ID and got["environment"] == tr.env
    assert got["workspace_id"] == "ws_local" and got["type"] == "run_end"
    assert before - timedelta(seconds=1) <= ts_of(got) <= before + timedelta(seconds=1)
    assert 60 <= got["metrics"]["latency_ms"] <= wall_ms + 1
    assert got["metrics"]["success"] is True and got["metrics"]["error_type"] is None
    assert model_of(got) == ("openai", MODEL, 150, 25, 7)
    assert got["usage"]["tools"] == [
        {"tool_name": "search", "invocations": 3, "cost_units": 0.5},
        {"tool_name": "calculator", "invocations": 1, "cost_units": 1.25},
    ]
    assert got["labels"] == {"team": "support", "ticket": "T-1"}
    assert got["request"] == {"session_id": "sess-1", "trace_id": "trace-1", "span_id": "span-1"}


def test_exception_marks_failure_and_propagates_unchanged(tr: Tracked) -> None:
    err = AppError("boom")
    with pytest.raises(AppError) as info:
        with tr.em.run(**tr.ids, provider="openai", model=MODEL) as run:
            run.add_model_usage("openai", MODEL, 10, 1)
            raise err
    assert info.value is err
    assert not run.success and run.error_type == "AppError"
    got = tr.runs(1)[run.run_id]
    assert got["metrics"]["success"] is False
    assert got["metrics"]["error_type"] == "AppError"
    assert model_of(got) == ("openai", MODEL, 10, 1, 0)
    assert got["request"] is None


def test_fail_given_ids_and_default_model(tr: Tracked) -> None:
    with tr.em.run(
        **tr.ids, run_id="given-run-1", workspace_id="ws_local", provider="openai", model=MODEL
    ) as handled:
        handled.fail("RateLimited")
    with pytest.raises(KeyError):
        with tr.em.run(**tr.ids, run_id="given-run-2", provider="openai", model=MODEL) as r2:
            r2.fail("Handled")
            raise KeyError("x")  # the escaping exception wins
    runs = tr.runs(2)
    a, b = runs["given-run-1"], runs["given-run-2"]
    assert (a["metrics"]["success"], a["metrics"]["error_type"]) == (False, "RateLimited")
    assert (b["metrics"]["success"], b["metrics"]["error_type"]) == (False, "KeyError")
    assert model_of(a) == ("openai", MODEL, 0, 0, 0)  # no usage: the default model, 0 tokens


def test_async_with(tr: Tracked) -> None:
    async def main() -> list[Run]:
        runs = []
        async with tr.em.run(**tr.ids) as run:
            await asyncio.sleep(0.02)
            assert current_run() is run
            run.add_model_usage("openai", MODEL, 3, 4)
            runs.append(run)
        with pytest.raises(asyncio.TimeoutError):
            async with tr.em.run(**tr.ids) as run2:
                run2.add_model_usage("openai", MODEL, 1, 1)
                await asyncio.wait_for(asyncio.sleep(5), 0.01)
        runs.append(run2)
        return runs

    ok, timed_out = asyncio.run(main())
    runs = tr.runs(2)
    assert runs[ok.run_id]["metrics"]["success"] is True
    assert runs[ok.run_id]["metrics"]["latency_ms"] >= 20
    assert runs[timed_out.run_id]["metrics"]["error_type"] == "TimeoutError"


def test_a_run_is_used_once(tr: Tracked) -> None:
    run = tr.em.run(**tr.ids, provider="openai", model=MODEL)
    with run:
        pass
    with pytest.raises(RuntimeError, match="already started"):
        with run:
            pass
    assert len(tr.runs(1)) == 1


# ----------------------------------------------------------------------------- decorator


def test_decorator_on_functions_keeps_value_name_and_exceptions(tr: Tracked) -> None:
    @tr.em.track(**tr.ids)
    def answer(question: str, *, tokens: int = 10) -> str:
        """Answers."""
        run = current_run()
        assert run is not None
        run.add_model_usage("openai", MODEL, tokens, 1)
        run.labels["question"] = question
        if question == "bad":
            raise AppError(question)
        return question.upper()

    assert answer.__name__ == "answer" and answer.__doc__ == "Answers."
    assert answer("hi", tokens=5) == "HI"
    with pytest.raises(AppError):
        answer("bad")
    assert current_run() is None
    runs = sorted(tr.runs(2).values(), key=lambda r: r["labels"]["question"])
    assert [r["labels"]["question"] for r in runs] == ["bad", "hi"]
    assert runs[0]["metrics"]["error_type"] == "AppError"
    assert runs[1]["metrics"]["success"] is True
    assert model_of(runs[1]) == ("openai", MODEL, 5, 1, 0)


def test_decorator_with_argument_callables(tr: Tracked) -> None:
    ids = dict(tr.ids)
    ids["tenant_id"] = lambda ticket, **_: ticket.tenant
    ids["task_id"] = lambda ticket, kind="triage": f"task_{kind}"

    @tr.em.track(
        **ids,
        run_id=lambda ticket, **_: f"ticket-{ticket.id}",
        labels=lambda ticket, **_: {"priority": ticket.priority},
        provider="openai",
        model=MODEL,
    )
    def handle(ticket: Any, kind: str = "triage") -> int:
        return int(ticket.id)

    assert handle(NS(id=1, tenant="tenant_a", priority="p1")) == 1
    assert handle(NS(id=2, tenant="tenant_b", priority="p2"), kind="refund") == 2
    runs = tr.runs(2)
    one, two = runs["ticket-1"], runs["ticket-2"]
    assert (one["tenant_id"], one["task_id"], one["labels"]) == (
        "tenant_a",
        "task_triage",
        {"priority": "p1"},
    )
    assert (two["tenant_id"], two["task_id"], two["labels"]) == (
        "tenant_b",
        "task_refund",
        {"priority": "p2"},
    )


def test_failing_argument_callable_leaves_the_call_untracked(
    tr: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    @tr.em.track(**{**tr.ids, "tenant_id": lambda t: t["tenant"]}, provider="openai", model=MODEL)
    def handle(t: dict[str, str]) -> str:
        assert current_run() is None
        return "done"

    @tr.em.track(**{**tr.ids, "tenant_id": lambda t: 42}, provider="openai", model=MODEL)
    def handle_non_str(t: dict[str, str]) -> str:
        return "done too"

    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        assert handle({}) == "done"  # KeyError in the callable: the call still runs
        assert handle_non_str({}) == "done too"
    assert tr.em.stats()["track_errors"] == 2
    assert "argument callable failed" in caplog.text
    tr.runs(0)


def test_bad_arguments_raise_at_once(tr: Tracked) -> None:
    ids = dict(tr.ids)
    em = tr.em
    missing = {k: v for k, v in ids.items() if k != "agent_id"}
    with pytest.raises(TypeError, match="agent_id"):
        em.track(**missing)
    with pytest.raises(TypeError, match="agent_id"):
        em.run(**missing)
    with pytest.raises(TypeError, match=r"Emitter.track\(\): release_id must be a str .*got int"):
        em.track(**{**ids, "release_id": 7})
    with pytest.raises(TypeError, match=r"Emitter.run\(\): tenant_id must be a str, got function"):
        em.run(**{**ids, "tenant_id": lambda: "t"})
    with pytest.raises(TypeError, match="a fixed run_id would make every call the same run"):
        em.track(**ids, run_id="same-every-time")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="labels must map str to str"):
        em.track(**ids, labels={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="labels must be a dict"):
        em.run(**ids, labels=["k"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="provider and model"):
        em.run(**ids, model=MODEL)
    with pytest.raises(TypeError, match="run_id must be a str"):
        em.run(**ids, run_id=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="can only decorate a callable"):
        em.track(**ids)(5)  # type: ignore[arg-type]
    tr.runs(0)


# ----------------------------------------------------------------------------- concurrency


def test_asyncio_gather_of_many_tracked_coroutines(tr: Tracked) -> None:
    n = 300

    @tr.em.track(**tr.ids, run_id=lambda i: f"co-{tr.env}-{i}", labels=lambda i: {"i": str(i)})
    async def work(i: int) -> int:
        run = current_run()
        assert run is not None
        for step in range(3):
            await asyncio.sleep(0.001 * (i % 3))
            assert current_run() is run  # survives awaits; other tasks do not leak in
            run.add_model_usage("openai", MODEL, i, step + 1)
        return i

    async def main() -> list[int]:
        return await asyncio.gather(*(work(i) for i in range(n)))

    assert asyncio.run(main()) == list(range(n))
    runs = tr.runs(n)
    for i in range(n):
        got = runs[f"co-{tr.env}-{i}"]
        assert got["labels"] == {"i": str(i)}
        assert model_of(got) == ("openai", MODEL, 3 * i, 6, 0)


def test_threads(tr: Tracked) -> None:
    n = 400

    @tr.em.track(**tr.ids, run_id=lambda i: f"th-{tr.env}-{i}")
    def work(i: int) -> int:
        run = current_run()
        assert run is not None and run.run_id == f"th-{tr.env}-{i}"
        for _ in range(5):
            run.add_model_usage("openai", MODEL, i, 1)
            time.sleep(0)
        if i % 7 == 0:
            raise AppError(str(i))
        return i

    def call(i: int) -> str:
        try:
            return str(work(i))
        except AppError:
            return "err"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(n)))
    assert results == ["err" if i % 7 == 0 else str(i) for i in range(n)]
    runs = tr.runs(n)
    for i in range(n):
        got = runs[f"th-{tr.env}-{i}"]
        assert model_of(got) == ("openai", MODEL, 5 * i, 5, 0)
        assert got["metrics"]["success"] is (i % 7 != 0)


def test_threads_share_one_run_without_losing_updates(tr: Tracked) -> None:
    with tr.em.run(**tr.ids) as run:

        def add() -> None:
            for _ in range(2_000):
                run.add_model_usage("openai", MODEL, 1, 2)
                run.add_tool("t")

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    got = tr.runs(1)[run.run_id]
    assert model_of(got) == ("openai", MODEL, 8_000, 16_000, 0)
    assert got["usage"]["tools"] == [{"tool_name": "t", "invocations": 8_000, "cost_units": 0.0}]


def test_nested_runs_are_separate_events(tr: Tracked) -> None:
    @tr.em.track(**{**tr.ids, "task_id": "task_inner"})
    def inner() -> None:
        run = current_run()
        assert run is not None and run.task_id == "task_inner"
        run.add_model_usage("anthropic", "claude-sonnet-4", 7, 8)
        raise AppError("inner")

    with tr.em.run(**{**tr.ids, "task_id": "task_outer"}) as outer:
        outer.add_model_usage("openai", MODEL, 1, 2)
        with pytest.raises(AppError):
            inner()
        assert current_run() is outer
        with tr.em.run(**{**tr.ids, "task_id": "task_middle"}) as middle:
            assert current_run() is middle
            middle.add_model_usage("openai", MODEL, 30, 40)
        assert current_run() is outer
    runs = list(tr.runs(3).values())
    by_task = {r["task_id"]: r for r in runs}
    assert model_of(by_task["task_outer"]) == ("openai", MODEL, 1, 2, 0)
    assert by_task["task_outer"]["metrics"]["success"] is True
    assert model_of(by_task["task_middle"]) == ("openai", MODEL, 30, 40, 0)
    assert model_of(by_task["task_inner"]) == ("anthropic", "claude-sonnet-4", 7, 8, 0)
    assert by_task["task_inner"]["metrics"]["error_type"] == "AppError"


# ----------------------------------------------------------------------------- generators


def test_generators(tr: Tracked) -> None:
    @tr.em.track(**tr.ids, labels=lambda name, n: {"name": name}, provider="openai", model=MODEL)
    def produce(name: str, n: int) -> Iterator[int]:
        for i in range(n):
            run = current_run()
            assert run is not None and run.labels["name"] == name
            run.add_model_usage("openai", MODEL, 1, 1)
            if name == "raises" and i == 1:
                raise AppError(name)
            yield i

    assert list(produce("full", 3)) == [0, 1, 2]
    gen = produce("early", 10)
    assert current_run() is None
    assert next(gen) == 0
    assert current_run() is None  # the consumer's code between items is outside the run
    assert next(gen) == 1
    gen.close()  # closing early is not a failure
    with pytest.raises(AppError):
        list(produce("raises", 3))
    produce("never-started", 3)  # no iteration, no run
    runs = {r["labels"]["name"]: r for r in tr.runs(3).values()}
    assert model_of(runs["full"])[2:4] == (3, 3)
    assert model_of(runs["early"])[2:4] == (2, 2)
    assert runs["early"]["metrics"]["success"] is True
    assert runs["raises"]["metrics"]["error_type"] == "AppError"
    assert model_of(runs["raises"])[2:4] == (2, 2)


def test_generator_send_throw_and_return_value(tr: Tracked) -> None:
    @tr.em.track(**tr.ids, provider="openai", model=MODEL)
    def echo() -> Any:
        total = 0
        while True:
            try:
                got = yield total
            except ValueError:
                current_run().fail("ValueHandled")  # type: ignore[union-attr]
                got = 100
            if got is None:
                return total
            total += got

    def drive() -> Any:
        return (yield from echo())

    g = drive()
    assert next(g) == 0
    assert g.send(5) == 5
    assert g.throw(ValueError("x")) == 105
    with pytest.raises(StopIteration) as stop:
        g.send(None)
    assert stop.value.value == 105
    (got,) = tr.runs(1).values()
    assert (got["metrics"]["success"], got["metrics"]["error_type"]) == (False, "ValueHandled")


def test_async_generators(tr: Tracked) -> None:
    @tr.em.track(**tr.ids, labels=lambda name, n: {"name": name}, provider="openai", model=MODEL)
    async def produce(name: str, n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            run = current_run()
            assert run is not None and run.labels["name"] == name
            run.add_model_usage("openai", MODEL, 2, 1)
            if name == "raises" and i == 2:
                raise AppError(name)
            yield i

    async def main() -> None:
        assert [x async for x in produce("full", 3)] == [0, 1, 2]
        agen = produce("early", 5)
        assert await agen.__anext__() == 0
        assert current_run() is None
        await agen.aclose()
        with pytest.raises(AppError):
            async for _ in produce("raises", 5):
                pass

        # Many concurrently: each keeps its own run.
        async def drain(k: int) -> list[int]:
            return [x async for x in produce(f"many-{k}", 4)]

        assert await asyncio.gather(*(drain(k) for k in range(20))) == [[0, 1, 2, 3]] * 20

    asyncio.run(main())
    runs = {r["labels"]["name"]: r for r in tr.runs(23).values()}
    assert model_of(runs["full"])[2:4] == (6, 3)
    assert model_of(runs["early"])[2:4] == (2, 1)
    assert runs["early"]["metrics"]["success"] is True
    assert runs["raises"]["metrics"]["error_type"] == "AppError"
    assert all(model_of(runs[f"many-{k}"])[2:4] == (8, 4) for k in range(20))


def test_async_generator_asend_athrow_and_untracked_fallback(tr: Tracked) -> None:
    @tr.em.track(**tr.ids, provider="openai", model=MODEL)
    async def acc() -> AsyncIterator[int]:
        total = 0
        while True:
            try:
                got = yield total
            except ValueError:
                current_run().fail("ValueHandled")  # type: ignore[union-attr]
                got = 100
            if got is None:
                return
            total += got

    @tr.em.track(**{**tr.ids, "tenant_id": lambda: 1 / 0}, provider="openai", model=MODEL)
    async def untracked() -> AsyncIterator[int]:
        got = yield 1
        assert current_run() is None
        yield got * 2

    async def main() -> None:
        g = acc()
        assert await g.asend(None) == 0
        assert await g.asend(5) == 5
        assert await g.athrow(ValueError("x")) == 105
        with pytest.raises(StopAsyncIteration):
            await g.asend(None)
        u = untracked()
        assert await u.asend(None) == 1
        assert await u.asend(21) == 42
        await u.aclose()

    asyncio.run(main())
    assert tr.em.stats()["track_errors"] == 1
    (got,) = tr.runs(1).values()
    assert (got["metrics"]["success"], got["metrics"]["error_type"]) == (False, "ValueHandled")


def test_current_run_across_threads_and_to_thread(tr: Tracked) -> None:
    seen: list[Run | None] = []

    async def main() -> Run:
        async with tr.em.run(**tr.ids, provider="openai", model=MODEL) as run:
            # asyncio.to_thread copies the context: the worker records into the run.
            await asyncio.to_thread(lambda: current_run().add_model_usage("openai", MODEL, 4, 2))  # type: ignore[union-attr]
            t = threading.Thread(target=lambda: seen.append(current_run()))
            t.start()
            t.join()
        return run

    run = asyncio.run(main())
    assert seen == [None]  # a new thread starts without a current run
    assert model_of(tr.runs(1)[run.run_id]) == ("openai", MODEL, 4, 2, 0)


# ----------------------------------------------------------------------------- never breaks


def test_invalid_label_at_exit_is_counted_logged_and_removed(
    tr: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        with tr.em.run(**tr.ids, labels={"ok": "yes"}) as run:
            run.add_model_usage("openai", MODEL, 1, 1)
            run.labels["count"] = 3  # type: ignore[assignment]
            run.labels[4] = "four"  # type: ignore[index]
        with tr.em.run(**tr.ids, provider="openai", model=MODEL) as run2:
            run2.labels = "not a dict"  # type: ignore[assignment]
    stats = tr.em.stats()
    assert stats["track_invalid_labels"] == 2
    assert "removed invalid labels" in caplog.text and "'count'" in caplog.text
    runs = tr.runs(2)
    assert runs[run.run_id]["labels"] == {"ok": "yes"}
    assert runs[run2.run_id]["labels"] == {}


def test_invalid_usage_values_are_ignored_and_counted(
    tr: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        with tr.em.run(**tr.ids) as run:
            run.add_model_usage("openai", MODEL, 10, 2)
            run.add_model_usage("openai", MODEL, -1, 2)
            run.add_model_usage("openai", MODEL, 1.5, 2)  # type: ignore[arg-type]
            run.add_model_usage("openai", None, 1, 2)  # type: ignore[arg-type]
            run.add_model_usage("openai", MODEL, True, 2)
            run.add_tool("t", invocations=-1)
            run.add_tool("t", cost_units=float("nan"))
            run.add_tool(None)  # type: ignore[arg-type]
            assert run.add_usage_from(object()) == 0
    assert tr.em.stats()["track_bad_usage"] == 8
    assert "ignored add_model_usage" in caplog.text
    got = tr.runs(1)[run.run_id]
    assert model_of(got) == ("openai", MODEL, 10, 2, 0)
    assert got["usage"]["tools"] == []


def test_full_queue_at_exit_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    em = Emitter(
        f"http://127.0.0.1:{closed_port()}",
        max_queue_events=1,
        atexit_timeout_s=0,
        backoff_base_s=5.0,
        flush_interval_s=10.0,
    )
    ids = {
        "agent_id": "a",
        "release_id": "r",
        "tenant_id": "t",
        "task_id": "k",
        "environment": "e",
    }
    try:
        with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
            for _ in range(3):
                with em.run(**ids, provider="openai", model=MODEL):
                    pass
        stats = em.stats()
        assert stats["accepted"] == 1 and stats["dropped"]["queue_full"] == 2
        assert "queue_full" in caplog.text
    finally:
        em.close(timeout_s=0.2)


def test_run_without_model_is_not_sent_but_counted(
    tr: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        with tr.em.run(**tr.ids):
            pass
    assert tr.em.stats()["track_no_model"] == 1
    assert "recorded no model usage" in caplog.text
    tr.runs(0)


def test_stats_always_have_the_tracking_counters() -> None:
    em = Emitter(f"http://127.0.0.1:{closed_port()}", atexit_timeout_s=0)
    try:
        stats = em.stats()
        assert {k: stats[k] for k in TRACK_COUNTERS} == dict.fromkeys(TRACK_COUNTERS, 0)
    finally:
        em.close(timeout_s=0.1)


def test_get_emitter_tracks(server: Any) -> None:
    env = unique_env("getem")
    em = get_emitter(server.base_url, flush_interval_s=0.05, atexit_timeout_s=0)
    try:

        @get_emitter(server.base_url).track(
            agent_id=AGENT_ID,
            release_id=server.baseline_id,
            tenant_id="tenant_acme",
            task_id="task_support",
            environment=env,
            provider="openai",
            model=MODEL,
        )
        def f() -> int:
            return 1

        assert f() == 1
        assert em.flush(10.0)
    finally:
        em.close(timeout_s=5.0)
    with FlightdeckClient(server.base_url) as client:
        page = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
    assert page["matched_total"] == 1


# ----------------------------------------------------------------------------- multi-model


def test_multi_model_rule(
    tr: Tracked, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "_warned_multi_model", False)
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        for _ in range(2):
            with tr.em.run(**tr.ids, labels={"k": "v"}) as run:
                run.add_model_usage("openai", "gpt-4.1-nano", 300, 10)
                run.add_model_usage("anthropic", "claude-sonnet-4", 200, 150, 40)
                run.add_model_usage("openai", "gpt-4.1-nano", 1, 1)
                run.add_model_usage("openai", MODEL, 5, 5)
    # A tie goes to the model used first.
    with tr.em.run(**tr.ids) as tie:
        tie.add_model_usage("openai", "a", 10, 0)
        tie.add_model_usage("openai", "b", 0, 10)
    assert caplog.text.count("a RunEvent holds one") == 1  # once per process
    assert tr.em.stats()["track_multi_model"] == 3
    runs = tr.runs(3)
    got = runs[run.run_id]
    # Most tokens (input + output + cached): claude 390 > nano 312 > mini 10. Only its tokens.
    assert model_of(got) == ("anthropic", "claude-sonnet-4", 200, 150, 40)
    assert got["labels"]["k"] == "v"
    others = json.loads(got["labels"][OTHER_MODELS_LABEL])
    assert others == [
        {
            "provider": "openai",
            "model": "gpt-4.1-nano",
            "input_tokens": 301,
            "output_tokens": 11,
            "cached_input_tokens": 0,
        },
        {
            "provider": "openai",
            "model": MODEL,
            "input_tokens": 5,
            "output_tokens": 5,
            "cached_input_tokens": 0,
        },
    ]
    assert model_of(runs[tie.run_id])[1] == "a"


# ----------------------------------------------------------------------------- usage readers


def openai_chat(model: str = "gpt-4o-2024-08-06", cached: int | None = 30) -> NS:
    details = None if cached is None else NS(cached_tokens=cached, audio_tokens=0)
    return NS(
        id="chatcmpl-1",
        object="chat.completion",
        model=model,
        choices=[NS(index=0, message=NS(role="assistant", content="hi"), finish_reason="stop")],
        usage=NS(
            prompt_tokens=120,
            completion_tokens=40,
            total_tokens=160,
            prompt_tokens_details=details,
            completion_tokens_details=NS(reasoning_tokens=12),
        ),
    )


def openai_response() -> NS:
    return NS(
        id="resp_1",
        object="response",
        model="o4-mini",
        output=[],
        usage=NS(
            input_tokens=500,
            input_tokens_details=NS(cached_tokens=100),
            output_tokens=80,
            output_tokens_details=NS(reasoning_tokens=64),
            total_tokens=580,
        ),
    )


def anthropic_message() -> NS:
    return NS(
        id="msg_1",
        type="message",
        role="assistant",
        model="claude-sonnet-4-20250514",
        content=[NS(type="text", text="hi")],
        stop_reason="end_turn",
        usage=NS(
            input_tokens=50,
            output_tokens=25,
            cache_creation_input_tokens=10,
            cache_read_input_tokens=200,
        ),
    )


def langchain_result() -> NS:
    def gen(model: str, provider: str | None, inp: int, out: int, cache_read: int) -> NS:
        meta: dict[str, Any] = {"model_name": model}
        if provider:
            meta["model_provider"] = provider
        return NS(
            text="x",
            generation_info=None,
            message=NS(
                content="x",
                usage_metadata={
                    "input_tokens": inp,
                    "output_tokens": out,
                    "total_tokens": inp + out,
                    "input_token_details": {"cache_read": cache_read},
                },
                response_metadata=meta,
            ),
        )

    return NS(
        generations=[
            [gen("gpt-4o-mini", "openai", 100, 10, 20)],
            [gen("gpt-4o-mini", None, 50, 5, 0), gen("claude-3-5-haiku-latest", None, 7, 3, 0)],
        ],
        llm_output={"token_usage": {"prompt_tokens": 999}, "model_name": "ignored"},
        run=None,
    )


def test_readers_on_fakes_shaped_like_the_sdks() -> None:
    assert read_usage(openai_chat()) == [ModelUsage("openai", "gpt-4o-2024-08-06", 90, 40, 30)]
    assert read_usage(openai_chat(cached=None)) == [
        ModelUsage("openai", "gpt-4o-2024-08-06", 120, 40, 0)
    ]
    assert read_usage(openai_response()) == [ModelUsage("openai", "o4-mini", 400, 80, 100)]
    assert read_usage(anthropic_message()) == [
        ModelUsage("anthropic", "claude-sonnet-4-20250514", 60, 25, 200)
    ]
    assert read_usage(langchain_result()) == [
        ModelUsage("openai", "gpt-4o-mini", 130, 15, 20),
        ModelUsage("anthropic", "claude-3-5-haiku-latest", 7, 3, 0),
    ]


def test_readers_on_dicts_chunks_and_llm_output_forms() -> None:
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [], "usage": None}
    assert read_usage(chunk) == []
    last = dict(chunk, usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    assert read_usage(last) == [ModelUsage("openai", "gpt-4o", 9, 3, 0)]
    msg = {
        "type": "message",
        "model": "claude-3-5-haiku-latest",
        "usage": {"input_tokens": 4, "output_tokens": 2, "cache_read_input_tokens": None},
    }
    assert read_usage(msg) == [ModelUsage("anthropic", "claude-3-5-haiku-latest", 4, 2, 0)]
    lc_openai = NS(
        generations=[[NS(text="x", generation_info=None)]],
        llm_output={
            "token_usage": {
                "prompt_tokens": 11,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 1},
            },
            "model_name": "gpt-4o-mini",
        },
    )
    assert read_usage(lc_openai) == [ModelUsage("openai", "gpt-4o-mini", 10, 4, 1)]
    lc_anthropic = NS(
        generations=[[]],
        llm_output={
            "model": "claude-3-5-haiku-latest",
            "usage": {"input_tokens": 6, "output_tokens": 2, "cache_read_input_tokens": 3},
        },
    )
    assert read_usage(lc_anthropic) == [ModelUsage("anthropic", "claude-3-5-haiku-latest", 6, 2, 3)]
    assert read_usage(NS(generations=[], llm_output=None)) == []
    # A ChatResult (what a chat model's _generate returns) has a flat list of generations.
    chat_result = NS(generations=langchain_result().generations[0], llm_output=None)
    assert read_usage(chat_result) == [ModelUsage("openai", "gpt-4o-mini", 80, 10, 20)]
    # Overrides.
    assert read_usage(openai_chat(), provider="azure", model="my-deploy") == [
        ModelUsage("azure", "my-deploy", 90, 40, 30)
    ]


def test_readers_reject_what_they_cannot_read() -> None:
    with pytest.raises(UnreadableUsage, match="has no usage"):
        read_usage(object())
    with pytest.raises(UnreadableUsage, match="no model name"):
        read_usage(NS(object="chat.completion", usage=NS(prompt_tokens=1, completion_tokens=1)))
    with pytest.raises(UnreadableUsage, match="negative"):
        read_usage(NS(type="message", model="m", usage=NS(input_tokens=-1, output_tokens=1)))
    with pytest.raises(UnreadableUsage, match="not an integer"):
        read_usage(NS(type="message", model="m", usage=NS(input_tokens="x", output_tokens=1)))
    with pytest.raises(UnreadableUsage, match="unknown shape"):
        read_usage(NS(usage=NS(tokens=3)))


def test_add_usage_from_into_the_server(tr: Tracked) -> None:
    with tr.em.run(**tr.ids) as chat:
        assert chat.add_usage_from(openai_chat(model=MODEL)) == 1
        assert chat.add_usage_from(openai_chat(model=MODEL)) == 1
        assert chat.add_usage_from({"object": "chat.completion.chunk", "usage": None}) == 0
    with tr.em.run(**tr.ids) as resp:
        assert resp.add_usage_from(openai_response()) == 1
    with tr.em.run(**tr.ids) as claude:
        assert claude.add_usage_from(anthropic_message()) == 1
    with tr.em.run(**tr.ids) as lc:
        assert lc.add_usage_from(langchain_result()) == 2
    runs = tr.runs(4)
    assert model_of(runs[chat.run_id]) == ("openai", MODEL, 180, 80, 60)
    assert model_of(runs[resp.run_id]) == ("openai", "o4-mini", 400, 80, 100)
    assert model_of(runs[claude.run_id]) == ("anthropic", "claude-sonnet-4-20250514", 60, 25, 200)
    assert model_of(runs[lc.run_id]) == ("openai", "gpt-4o-mini", 130, 15, 20)
    assert OTHER_MODELS_LABEL in runs[lc.run_id]["labels"]


# ----------------------------------------------------------------------------- OpenTelemetry


def test_otel_span_ids_fill_the_request(tr: Tracked) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("agent") as span:
        ctx = span.get_span_context()
        with tr.em.run(**tr.ids, provider="openai", model=MODEL) as from_span:
            pass
        with tr.em.run(**tr.ids, provider="openai", model=MODEL) as explicit:
            explicit.set_request(trace_id="mine", session_id="s")
    with tr.em.run(**tr.ids, provider="openai", model=MODEL) as no_span:
        pass
    runs = tr.runs(3)
    trace_hex, span_hex = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    assert runs[from_span.run_id]["request"] == {
        "session_id": None,
        "trace_id": trace_hex,
        "span_id": span_hex,
    }
    assert runs[explicit.run_id]["request"] == {
        "session_id": "s",
        "trace_id": "mine",
        "span_id": span_hex,
    }
    assert runs[no_span.run_id]["request"] is None


def test_opentelemetry_is_never_imported_by_us() -> None:
    code = (
        "import sys, flightdeck_rs\n"
        "em = flightdeck_rs.Emitter('http://127.0.0.1:9', atexit_timeout_s=0)\n"
        "with em.run(agent_id='a', release_id='r', tenant_id='t', task_id='k',\n"
        "            environment='e', provider='p', model='m') as run:\n"
        "    run.add_usage_from({'type': 'message', 'model': 'm', 'usage': {}})\n"
        "em.close(0.1)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "             ('opentelemetry', 'openai', 'anthropic', 'langchain_core'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_run_ids_are_uuid4_and_fresh() -> None:
    ids = {tracking.new_run_id() for _ in range(5_000)}
    assert len(ids) == 5_000
    assert all(UUID4.match(i) for i in ids)


# ----------------------------------------------------------------------------- typing

TYPED_MISUSE = """
from flightdeck_rs import Emitter

emitter = Emitter("http://127.0.0.1:9")


@emitter.track(agent_id="a", release_id="r", tenant_id="t", task_id="k", environment="e")
def handle(ticket: int, *, urgent: bool = False) -> str:
    return str(ticket)


@emitter.track(agent_id="a", release_id="r", tenant_id="t", task_id="k", environment="e")
async def ahandle(ticket: int) -> int:
    return ticket


handle("not an int")
handle(1, urgent="yes")
n: int = handle(1)
s: str = ahandle(1)
emitter.track(release_id="r", tenant_id="t", task_id="k", environment="e")
"""


def test_mypy_sees_the_wrapped_signature(tmp_path: Any) -> None:
    """The decorator keeps the function's type: misuse of a tracked function is a type error
    (``tests/typing_usage.py`` holds the correct uses)."""
    pytest.importorskip("mypy")
    path = tmp_path / "misuse.py"
    path.write_text(TYPED_MISUSE)
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert 'Argument 1 to "handle" has incompatible type "str"; expected "int"' in out
    assert 'Argument "urgent" to "handle" has incompatible type "str"; expected "bool"' in out
    assert (
        'Incompatible types in assignment (expression has type "str", variable has type "int")'
        in out
    )
    assert '(expression has type "Coroutine[Any, Any, int]", variable has type "str")' in out
    assert 'Missing named argument "agent_id" for "track"' in out
    assert sum(": error: " in line for line in out.splitlines()) == 5, out
