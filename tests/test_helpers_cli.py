"""Everyday-use layer: paging helpers, ``ingest_jsonl``, the ``flightdeck-rs`` CLI, examples.

Runs against the shared real servers of ``conftest`` (each test works in its own environment);
the CLI and the examples run as subprocesses of the current interpreter.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import REPO, TOKEN, make_events, unique_env
from flightdeck_rs import (
    AsyncFlightdeckClient,
    FlightdeckClient,
    RunEvent,
    _cli_common,
    _paging,
    cli,
    helpers,
)

pytestmark = pytest.mark.timeout(60)
EXAMPLES = REPO / "examples"


# ----------------------------------------------------------------------------- helpers


def write_jsonl(path: pathlib.Path, events: list[Any], bad: dict[int, str] | None = None) -> None:
    """Writes ``events`` one per line; ``bad`` maps a 1-based line number to raw text."""
    bad = dict(bad or {})
    lines: list[str] = []
    it = iter(events)
    line_no = 0
    while True:
        line_no += 1
        if line_no in bad:
            lines.append(bad.pop(line_no))
            continue
        event = next(it, None)
        if event is None:
            break
        lines.append(event.model_dump_json())
    assert not bad, "bad lines past the end"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_ids(events: Any) -> list[str]:
    return [e.run_id for e in events]


class Spy:
    """Forwards to a client, counting calls and in-flight ``ingest_run_events`` requests."""

    def __init__(self, client: Any, delay_s: float = 0.0) -> None:
        self.client = client
        self.delay_s = delay_s
        self.calls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.before_call: Any = None

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.before_call is not None:
            self.before_call(name, self.calls[name])

    def list_runs(self, **kwargs: Any) -> Any:
        self._count("list_runs")
        return self.client.list_runs(**kwargs)

    def fetch_runs_export_ndjson(self, **kwargs: Any) -> Any:
        self._count("fetch_runs_export_ndjson")
        return self.client.fetch_runs_export_ndjson(**kwargs)

    def _open_runs_export(self, **kwargs: Any) -> Any:
        self._count("_open_runs_export")
        return self.client._open_runs_export(**kwargs)

    def ingest_run_events(self, events: Any) -> int:
        with self.lock:
            self._count("ingest_run_events")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            return int(self.client.ingest_run_events(events))
        finally:
            with self.lock:
                self.in_flight -= 1


class NoStreamSpy(Spy):
    """A client without the streaming opener: the helpers fall back to whole pages."""

    _open_runs_export = None  # type: ignore[assignment]


@pytest.fixture()
def client(server: Any) -> Iterator[FlightdeckClient]:
    with FlightdeckClient(server.base_url) as c:
        yield c


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run_cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flightdeck_rs", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        check=False,
    )


# ----------------------------------------------------------------------------- paging


def test_iter_runs_walks_pages(server: Any, client: FlightdeckClient) -> None:
    env = unique_env()
    events = make_events(RunEvent, server.baseline_id, 23, environment=env)
    assert client.ingest_run_events(events) == 23
    spy = Spy(client)
    got = list(
        helpers.iter_runs(
            spy, release_id=server.baseline_id, window="1h", environment=env, page_size=5
        )
    )
    assert run_ids(got) == run_ids(events)  # newest first, nothing lost or repeated
    assert spy.calls["list_runs"] == 5
    assert all(isinstance(e, RunEvent) for e in got)
    # The client method delegates; page sizes above the server cap are capped.
    again = client.iter_runs(
        release_id=server.baseline_id, window="1h", environment=env, page_size=10_000
    )
    assert run_ids(again) == run_ids(events)
    with pytest.raises(ValueError, match="page_size"):
        client.iter_runs(release_id=server.baseline_id, window="1h", page_size=0)


def test_iter_runs_export_walks_pages(server: Any, client: FlightdeckClient) -> None:
    env = unique_env()
    events = make_events(RunEvent, server.candidate_id, 16, environment=env)
    client.ingest_run_events(events)
    spy = Spy(client)
    got = list(
        helpers.iter_runs_export(
            spy, release_id=server.candidate_id, window="1h", environment=env, page_size=7
        )
    )
    assert run_ids(got) == run_ids(events)
    assert got == events  # parsed back into equal models
    assert spy.calls == {"_open_runs_export": 3}  # streamed, page by page
    plain = NoStreamSpy(client)
    assert (
        list(
            helpers.iter_runs_export(
                plain, release_id=server.candidate_id, window="1h", environment=env, page_size=7
            )
        )
        == events
    )
    assert plain.calls == {"fetch_runs_export_ndjson": 3}
    assert run_ids(
        client.iter_runs_export(release_id=server.candidate_id, window="1h", environment=env)
    ) == run_ids(events)
    with pytest.raises(httpx.HTTPStatusError) as info:
        list(client.iter_runs_export(release_id="rel_nope", window="1h"))
    assert info.value.response.status_code == 400


def test_iter_runs_skips_events_shifted_by_new_arrivals(
    server: Any, client: FlightdeckClient
) -> None:
    env = unique_env()
    events = make_events(RunEvent, server.baseline_id, 12, environment=env, seconds_ago=30)
    client.ingest_run_events(events)
    newer = make_events(RunEvent, server.baseline_id, 3, environment=env, seconds_ago=1)
    spy = Spy(client)

    def arrive(name: str, n: int) -> None:
        if n == 2:  # new events land between the first and the second page
            client.ingest_run_events(newer)

    spy.before_call = arrive
    got = run_ids(
        helpers.iter_runs(
            spy, release_id=server.baseline_id, window="1h", environment=env, page_size=5
        )
    )
    assert len(got) == len(set(got))
    assert got == run_ids(events)


def test_pager_stops_at_the_server_offset_cap(caplog: pytest.LogCaptureFixture) -> None:
    total = helpers.MAX_OFFSET + 2_000
    for page_size in (500, 300):
        pager = _paging.Pager(page_size, "GET /v1/runs")
        taken = 0
        with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
            while (req := pager.request()) is not None:
                offset, limit, skip = req
                assert offset <= helpers.MAX_OFFSET and limit <= helpers.MAX_PAGE_SIZE
                returned = min(limit, total - offset)
                ids = [f"r{offset + i}" for i in range(skip, returned)]
                assert ids[0] == f"r{taken}"  # contiguous: nothing skipped or repeated
                pager.advance(returned, skip, offset + returned < total, total)
                taken += sum(pager.fresh(ids))
        assert taken == helpers.MAX_OFFSET + helpers.MAX_PAGE_SIZE
        assert pager.incomplete
        assert "pages only up to offset 500500" in caplog.text
        caplog.clear()


# ----------------------------------------------------------------------------- ingest_jsonl


def test_ingest_jsonl_reports_bad_lines(
    server: Any, client: FlightdeckClient, tmp_path: pathlib.Path
) -> None:
    env = unique_env()
    events = make_events(RunEvent, server.baseline_id, 30, environment=env)
    path = tmp_path / "events.jsonl"
    write_jsonl(path, events, {4: "{not json", 9: "", 17: '{"api_version": "v1", "run_id": 1}'})
    progress: list[tuple[int, int, int]] = []
    summary = client.ingest_jsonl(
        path, chunk_size=4, concurrency=3, progress=lambda *a: progress.append(a)
    )
    assert [n for n, _ in summary.rejected] == [4, 17]  # the blank line 9 is skipped
    assert "Invalid JSON" in summary.rejected[0][1]
    assert "timestamp: Field required" in summary.rejected[1][1]
    assert (summary.sent, summary.inserted, summary.duplicates) == (30, 30, 0)
    assert summary.lines == 33 and not summary.ok
    assert progress[-1] == (33, 30, 30)
    assert progress == sorted(progress)  # monotonic
    stored = run_ids(client.iter_runs(release_id=server.baseline_id, window="1h", environment=env))
    assert sorted(stored) == sorted(run_ids(events))

    again = helpers.ingest_jsonl(client, str(path), chunk_size=7)
    assert (again.sent, again.inserted, again.duplicates) == (30, 0, 30)
    assert summary.to_dict()["rejected"][0]["line"] == 4


def test_ingest_jsonl_runs_chunks_concurrently(server: Any, client: FlightdeckClient) -> None:
    env = unique_env()
    events = make_events(RunEvent, server.candidate_id, 40, environment=env)
    text = "\ufeff" + "".join(e.model_dump_json() + "\r\n" for e in events)  # BOM, CRLF
    spy = Spy(client, delay_s=0.05)
    summary = helpers.ingest_jsonl(spy, io.StringIO(text), chunk_size=5, concurrency=4)
    assert (summary.sent, summary.inserted, summary.rejected) == (40, 40, [])
    assert spy.calls["ingest_run_events"] == 8
    assert 2 <= spy.max_in_flight <= 4
    with pytest.raises(ValueError, match="concurrency"):
        helpers.ingest_jsonl(client, io.BytesIO(b""), concurrency=0)
    with pytest.raises(FileNotFoundError):
        client.ingest_jsonl("/nonexistent/events.jsonl")


def status_error(
    status: int, detail: str = "nope", headers: dict[str, str] | None = None
) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://x/v1/events")
    response = httpx.Response(status, json={"detail": detail}, headers=headers, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


class FakeClient:
    """Refuses batches holding a poisoned run_id (400); can fail the first calls (503)."""

    def __init__(
        self, poison: frozenset[str] = frozenset(), fail_first: int = 0, status: int = 503
    ) -> None:
        self.poison = poison
        self.fail_first = fail_first
        self.status = status
        self.calls = 0
        self.stored: list[str] = []

    def ingest_run_events(self, events: list[RunEvent]) -> int:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise status_error(self.status, "busy", {"retry-after": "0"})
        if any(e.run_id in self.poison for e in events):
            raise status_error(400, "Invalid RunEvent: poisoned")
        self.stored += [e.run_id for e in events]
        return len(events)


def test_ingest_jsonl_isolates_lines_the_server_refuses(tmp_path: pathlib.Path) -> None:
    events = make_events(RunEvent, "rel_x", 10)
    path = tmp_path / "e.jsonl"
    write_jsonl(path, events)
    fake = FakeClient(poison=frozenset({events[2].run_id, events[7].run_id}))
    summary = helpers.ingest_jsonl(fake, path, chunk_size=10, concurrency=1)
    assert [n for n, _ in summary.rejected] == [3, 8]
    assert "server rejected it (HTTP 400): Invalid RunEvent: poisoned" in summary.rejected[0][1]
    assert (summary.sent, summary.inserted) == (8, 8)
    assert sorted(fake.stored) == sorted(run_ids(events[:2] + events[3:7] + events[8:]))


def test_ingest_jsonl_retries_transient_failures(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "e.jsonl"
    write_jsonl(path, make_events(RunEvent, "rel_x", 6))
    fake = FakeClient(fail_first=2)
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        summary = helpers.ingest_jsonl(fake, path, chunk_size=3, concurrency=1)
    assert (summary.sent, summary.inserted) == (6, 6)
    assert caplog.text.count("retry") == 2
    assert all(r.levelno <= logging.WARNING for r in caplog.records)

    fatal = FakeClient(fail_first=1, status=401)
    with pytest.raises(httpx.HTTPStatusError) as info:
        helpers.ingest_jsonl(fatal, path, chunk_size=3, concurrency=2)
    assert info.value.response.status_code == 401
    assert any("ingest_jsonl stopped after line" in n for n in info.value.__notes__)


def test_async_twins(server: Any, tmp_path: pathlib.Path) -> None:
    env = unique_env()
    events = make_events(RunEvent, server.baseline_id, 21, environment=env)
    path = tmp_path / "events.jsonl"
    write_jsonl(path, events, {2: "[]", 12: '{"x": 1}'})

    async def main() -> None:
        async with AsyncFlightdeckClient(server.base_url) as aclient:
            seen: list[tuple[int, int, int]] = []
            summary = await aclient.ingest_jsonl(
                path, chunk_size=4, concurrency=3, progress=lambda *a: seen.append(a)
            )
            assert [n for n, _ in summary.rejected] == [2, 12]
            assert (summary.sent, summary.inserted) == (21, 21)
            assert seen[-1] == (23, 21, 21)
            with open(path, "rb") as f:
                again = await helpers.aingest_jsonl(aclient, f, chunk_size=50)
            assert (again.sent, again.duplicates) == (21, 21)

            got = [
                e
                async for e in aclient.iter_runs(
                    release_id=server.baseline_id, window="1h", environment=env, page_size=4
                )
            ]
            assert run_ids(got) == run_ids(events)
            exported = [
                e
                async for e in helpers.aiter_runs_export(
                    aclient,
                    release_id=server.baseline_id,
                    window="1h",
                    environment=env,
                    page_size=8,
                )
            ]
            assert exported == got

    asyncio.run(main())


def test_async_ingest_concurrency(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "e.jsonl"
    write_jsonl(path, make_events(RunEvent, "rel_x", 20))
    state = {"in": 0, "max": 0}

    class SlowAsync:
        async def ingest_run_events(self, events: list[RunEvent]) -> int:
            state["in"] += 1
            state["max"] = max(state["max"], state["in"])
            await asyncio.sleep(0.05)
            state["in"] -= 1
            return len(events)

    summary = asyncio.run(helpers.aingest_jsonl(SlowAsync(), path, chunk_size=2, concurrency=3))
    assert (summary.sent, summary.inserted) == (20, 20)
    assert 2 <= state["max"] <= 3


# -------------------------------------------------------------------------- flightdeck.integrations


def test_openai_chat_mapper_events_are_accepted(
    server: Any, client: FlightdeckClient, tmp_path: pathlib.Path
) -> None:
    openai_chat = pytest.importorskip("flightdeck.integrations.openai_chat")
    env = unique_env()

    def completion(model: str, prompt: int, completion_tokens: int, cached: int) -> Any:
        usage = types.SimpleNamespace(
            prompt_tokens=prompt,
            completion_tokens=completion_tokens,
            prompt_tokens_details=types.SimpleNamespace(cached_tokens=cached),
        )
        return types.SimpleNamespace(model=model, usage=usage, choices=[])

    theirs = [
        openai_chat.run_event_from_openai_chat_completion(
            completion("gpt-4.1-mini", 1000 + i, 500, 100 * i),
            agent_id="agent_support",
            release_id=server.baseline_id,
            run_id=f"oa-{env}-{i}",
            tenant_id="tenant_acme",
            task_id="task_support",
            environment=env,
            labels={"team": "search"},
            trace_id=f"trace-{i}",
            latency_ms=700 + i,
        )
        for i in range(4)
    ]
    # Their pydantic models go straight into our client...
    assert client.ingest_run_events(theirs[:2]) == 2
    # ...convert to ours losslessly...
    ours = [RunEvent.model_validate(e.model_dump()) for e in theirs]
    assert [o.model_dump(mode="json") for o in ours] == [t.model_dump(mode="json") for t in theirs]
    # ...and their JSON lines are valid input for ingest_jsonl.
    path = tmp_path / "openai.jsonl"
    path.write_text("".join(t.model_dump_json() + "\n" for t in theirs))
    summary = client.ingest_jsonl(path)
    assert (summary.sent, summary.inserted, summary.rejected) == (4, 2, [])

    stored = {
        e.run_id: e
        for e in client.iter_runs(release_id=server.baseline_id, window="1h", environment=env)
    }
    assert sorted(stored) == sorted(t.run_id for t in theirs)
    first = stored[theirs[1].run_id]
    assert first.labels == {"integration": "openai_chat", "team": "search"}
    assert first.usage.model.cached_input_tokens == 100
    assert first.request is not None and first.request.trace_id == "trace-1"


# ----------------------------------------------------------------------------- CLI


def test_cli_ingest_export_roundtrip(
    server: Any, client: FlightdeckClient, tmp_path: pathlib.Path
) -> None:
    env = unique_env()
    events = make_events(RunEvent, server.baseline_id, 12, environment=env)
    src = tmp_path / "in.jsonl"
    write_jsonl(src, events, {5: "oops"})

    r = run_cli("ingest", str(src), "--url", server.base_url, "--chunk-size", "5")
    assert r.returncode == cli.EXIT_PARTIAL, r.stderr
    assert "13 lines, 12 sent (12 inserted, 0 duplicates), 1 rejected" in r.stdout
    assert "line 5: Invalid JSON" in r.stderr

    r = run_cli("--json", "ingest", str(src), env={"FLIGHTDECK_URL": server.base_url})
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["exit_code"] == 1 and out["ok"] is False
    assert (out["sent"], out["inserted"], out["duplicates"]) == (12, 0, 12)
    assert out["rejected"] == [{"line": 5, "error": out["rejected"][0]["error"]}]

    dest = tmp_path / "out.ndjson"
    r = run_cli(
        "export",
        "--release",
        server.baseline_id,
        "--window",
        "1h",
        "--environment",
        env,
        "-o",
        str(dest),
        "--page-size",
        "5",
        "--url",
        server.base_url,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["events"], out["matched_total"], out["complete"]) == (12, 12, True)
    lines = dest.read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == run_ids(events)
    assert not list(tmp_path.glob(".*.part"))

    # Export to stdout, ingest from stdin: a copy is all duplicates.
    r = run_cli(
        "export",
        "--release",
        server.baseline_id,
        "--window",
        "1h",
        "--environment",
        env,
        "--url",
        server.base_url,
    )
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 12
    assert "exported 12 events" in r.stderr
    r2 = run_cli("ingest", "-", "--url", server.base_url, "--json", stdin=r.stdout)
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["duplicates"] == 12


def test_cli_exit_codes(server: Any, token_server: Any, tmp_path: pathlib.Path) -> None:
    good = tmp_path / "good.jsonl"
    write_jsonl(good, make_events(RunEvent, server.baseline_id, 2, environment=unique_env()))

    down = closed_port_url()
    r = run_cli("ingest", str(good), "--url", down)
    assert r.returncode == cli.EXIT_UNREACHABLE
    assert f"cannot reach the server at {down}" in r.stderr
    r = run_cli("export", "--release", "r", "--window", "1h", "--url", down, "--json")
    assert r.returncode == cli.EXIT_UNREACHABLE
    assert json.loads(r.stderr.splitlines()[0])["error"]["kind"] == "unreachable"

    r = run_cli("ingest", str(good), "--url", token_server.base_url)
    assert r.returncode == cli.EXIT_AUTH
    assert "requires a bearer token" in r.stderr and "FLIGHTDECK_LOCAL_API_TOKEN" in r.stderr
    r = run_cli(
        "export",
        "--release",
        token_server.baseline_id,
        "--window",
        "1h",
        "--url",
        token_server.base_url,
        "--token",
        "wrong",
    )
    assert r.returncode == cli.EXIT_AUTH and "HTTP 401" in r.stderr
    r = run_cli(
        "ingest",
        str(good),
        "--url",
        token_server.base_url,
        env={"FLIGHTDECK_LOCAL_API_TOKEN": TOKEN + "\n"},
    )
    assert r.returncode == cli.EXIT_OK, r.stderr

    r = run_cli("ingest", str(tmp_path / "missing.jsonl"), "--url", server.base_url)
    assert r.returncode == cli.EXIT_USAGE and "no such file" in r.stderr
    r = run_cli("ingest", str(tmp_path), "--url", server.base_url)
    assert r.returncode == cli.EXIT_USAGE and "directory" in r.stderr
    junk = tmp_path / "junk.jsonl"
    junk.write_text("a\nb\n")
    r = run_cli("ingest", str(junk), "--url", server.base_url, "--json")
    assert r.returncode == cli.EXIT_USAGE
    assert [x["line"] for x in json.loads(r.stdout)["rejected"]] == [1, 2]

    r = run_cli("export", "--release", "rel_nope", "--window", "1h", "--url", server.base_url)
    assert r.returncode == cli.EXIT_HTTP and "Unknown release: rel_nope" in r.stderr
    r = run_cli("export", "--window", "1h")
    assert r.returncode == cli.EXIT_USAGE and "--release" in r.stderr
    r = run_cli("ingest", str(good), "--url", "ftp://nowhere")
    assert r.returncode == cli.EXIT_USAGE


def test_cli_doctor(server: Any, token_server: Any) -> None:
    r = run_cli("doctor", "--url", server.base_url, "--release", server.baseline_id, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["server_version"] == "1.3.0" and out["mutation_auth"] == "loopback"
    assert out["read_only"] is True and out["release"]["release_id"] == server.baseline_id
    assert [(c["name"], c["status"]) for c in out["checks"]] == [
        ("reachable", "ok"),
        ("auth", "ok"),
        ("version", "ok"),
        ("release", "ok"),
        ("write check", "skip"),
    ]

    r = run_cli(
        "doctor",
        "--url",
        server.base_url,
        "--release",
        server.baseline_id,
        "--write-check",
        "--json",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["read_only"] is False and [c["status"] for c in out["checks"]] == ["ok"] * 5
    written = out["write_check"]
    assert written["environment"] == cli.DOCTOR_ENVIRONMENT and written["read_back"] is True
    with FlightdeckClient(server.base_url) as c:
        page = c.list_runs(
            release_id=server.baseline_id,
            window="1h",
            environment=cli.DOCTOR_ENVIRONMENT,
            trace_id=written["run_id"],
        )
    assert [e["run_id"] for e in page["events"]] == [written["run_id"]]

    r = run_cli("doctor", "--url", server.base_url)
    assert r.returncode == 0 and "skip  release" in r.stdout and "read-only" in r.stdout

    r = run_cli("doctor", "--url", token_server.base_url)
    assert r.returncode == cli.EXIT_AUTH and "requires a token" in r.stdout
    r = run_cli("doctor", "--url", token_server.base_url, "--token", TOKEN)
    assert r.returncode == 0 and "token accepted" in r.stdout

    r = run_cli("doctor", "--url", closed_port_url())
    assert r.returncode == cli.EXIT_UNREACHABLE and "fail  reachable" in r.stdout


def test_cli_version_and_progress_rendering() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("flightdeck-rs ")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = _cli_common._Progress("ingest", stream=tty, enabled=True)
    bar.start -= 2.0
    bar.update(1000, 0.25, "1,000 lines")
    text = tty.getvalue()
    assert text.startswith("\ringest [") and "25%" in text and "ev/s" in text
    assert "ETA 0:0" in text  # about 6 s left at a quarter after 2 s
    bar.clear()
    assert tty.getvalue().endswith("\r\x1b[K")

    plain = io.StringIO()
    bar = _cli_common._Progress("export", stream=plain, enabled=True)
    bar.update(5, 0.5)
    assert plain.getvalue() == ""  # plain output waits one interval
    bar.update(10, None, force=True)
    assert plain.getvalue().startswith("export: 10 events") and "\r" not in plain.getvalue()


# ----------------------------------------------------------------------------- examples


def seed_diff(client: FlightdeckClient, server: Any, env: str) -> None:
    client.ingest_run_events(make_events(RunEvent, server.baseline_id, 2, environment=env))
    client.ingest_run_events(make_events(RunEvent, server.candidate_id, 2, environment=env))


def test_ci_gate_blocks_and_promotes(server: Any, client: FlightdeckClient) -> None:
    env = unique_env()
    seed_diff(client, server, env)
    gate = [
        sys.executable,
        str(EXAMPLES / "ci_gate.py"),
        "--url",
        server.base_url,
        "--environment",
        env,
        "--window",
        "1h",
        "--baseline",
        server.baseline_id,
    ]
    r = subprocess.run(
        [*gate, "--candidate", server.candidate_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "BLOCKED by policy" in r.stdout and "exceeds max" in r.stdout
    assert client.list_actions(environment=env)["actions"] == []  # nothing was promoted

    r = subprocess.run(
        [*gate, "--candidate", server.baseline_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PROMOTED" in r.stdout
    promoted = client.list_promoted()["promoted"]
    assert {
        "agent_id": "agent_support",
        "environment": env,
        "release_id": server.baseline_id,
    } in promoted


def load_example(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fastapi_example_emits_through_lifespan(server: Any, client: FlightdeckClient) -> None:
    example = load_example("fastapi_service")  # importable without touching fastapi
    testclient = pytest.importorskip("fastapi.testclient")
    env = unique_env()
    app = example.create_app(server.base_url, release_id=server.baseline_id, environment=env)
    with testclient.TestClient(app) as http:
        replies = [http.post("/answer", params={"question": f"q{i}"}).json() for i in range(3)]
        assert http.post("/answer", params={"question": " ", "tenant": "t_b"}).status_code == 422
        assert http.get("/emitter").json()["accepted"] == 4
    # Leaving the TestClient ran the lifespan exit: the emitter flushed and closed.
    stored = {
        e.run_id: e
        for e in client.iter_runs(release_id=server.baseline_id, window="1h", environment=env)
    }
    assert set(r["run_id"] for r in replies) < set(stored) and len(stored) == 4
    for r in replies:  # tracked runs: usage read from the OpenAI-shaped response
        e = stored[r["run_id"]]
        assert e.metrics.success and e.tenant_id == "tenant_demo"
        assert (e.usage.model.input_tokens, e.usage.model.cached_input_tokens) == (146, 256)
        assert e.labels == {"service": "fastapi_example", "question_chars": "2"}
    (failed,) = [e for e in stored.values() if not e.metrics.success]
    assert (failed.metrics.error_type, failed.tenant_id) == ("ValueError", "t_b")


def test_notebook_walkthrough_runs(server: Any) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")},
        "FLIGHTDECK_URL": server.base_url,
        "FLIGHTDECK_BASELINE_ID": server.baseline_id,
        "FLIGHTDECK_CANDIDATE_ID": server.candidate_id,
        "FLIGHTDECK_ENVIRONMENT": unique_env("nb"),
    }
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "notebook_walkthrough.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "240 sent, 240 inserted" in r.stdout and "line 241 rejected" in r.stdout
    assert "failed candidate runs: " in r.stdout  # the asyncio.run twin of the notebook's await
    assert "timestamp                   datetime64[ns, UTC]" in r.stdout  # the pandas recipe


# ----------------------------------------------------------------------------- typing


def test_mypy_strict_on_usage_file_and_package() -> None:
    pytest.importorskip("mypy")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "tests/typing_usage.py",
            "python/flightdeck_rs",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_stubtest_on_the_native_module() -> None:
    """The hand-written stubs of ``flightdeck_rs._native`` match the compiled module: every
    class, function, signature, and ``__all__``."""
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            # The models module adds the pydantic-model API (model_fields, the v1 names, ...)
            # to the native classes; importing the package alone no longer loads it.
            "import sys, flightdeck_rs.models; from mypy.stubtest import main; "
            "sys.argv = ['stubtest', 'flightdeck_rs._native']; sys.exit(main())",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found in 1 module" in r.stdout


def test_cli_export_filters_reach_the_request() -> None:
    """Each ``export`` filter option sets its own ``GET /v1/runs`` filter, unset ones none."""
    from flightdeck_rs import _cli_transfer

    args = cli.build_parser().parse_args(
        ["export", "--release", "r", "--window", "1h", "--environment", "e", "--tenant", "t",
         "--task", "k", "--trace-id", "tr", "--session-id", "se", "--span-id", "sp"]
    )
    assert _cli_transfer._run_filters(args) == {
        "environment": "e",
        "tenant_id": "t",
        "task_id": "k",
        "trace_id": "tr",
        "session_id": "se",
        "span_id": "sp",
    }
    args = cli.build_parser().parse_args(["export", "--release", "r", "--window", "1h",
                                          "--tenant", "t"])
    assert _cli_transfer._run_filters(args) == {"tenant_id": "t"}
