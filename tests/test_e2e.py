"""End-to-end: the SDK Quickstart against a real ``flightdeck serve``.

The flows run through both faces (sync and async) of both implementations; the reference runs
validate the expectations, ours are the point. Servers are shared per session, so each flow
works in its own environment (promotion pointers are per agent and environment).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
import threading
from typing import Any

import httpx
import pytest
import yaml

from conftest import (
    AGENT_ID,
    PG_DUPLICATE_INGEST_BROKEN,
    PG_PROMOTION_REQUESTS_BROKEN,
    TEST_DATABASE,
    TOKEN,
    FlightdeckServer,
    Impl,
    load_impl,
    make_events,
    new_database_url,
    open_client,
    unique_env,
)

pytestmark = pytest.mark.timeout(90)
flightdeck_cli = sys.modules[FlightdeckServer.__module__].flightdeck_cli
ON_POSTGRES = TEST_DATABASE == "postgres"

COST_REASON = "candidate cost_per_run_usd 5.000000 exceeds max 4.000000"
FIRST_PROMOTION = "first promotion: no promoted baseline for agent/environment"
EXPORT_KEYS = [
    "X-Flightdeck-Matched-Total",
    "X-Flightdeck-Returned",
    "X-Flightdeck-Offset",
    "X-Flightdeck-Truncated",
]


def status_error(info: pytest.ExceptionInfo[httpx.HTTPStatusError], status: int) -> Any:
    """Check a status error the way callers use it; return the parsed ``detail``."""
    exc = info.value
    assert type(exc) is httpx.HTTPStatusError
    assert isinstance(exc.response, httpx.Response) and isinstance(exc.request, httpx.Request)
    assert exc.response.status_code == status
    assert exc.response.headers["content-type"] == "application/json"
    assert exc.response.json() == json.loads(exc.response.text)
    return exc.response.json()["detail"]


# ----------------------------------------------------------------------------- the quickstart


def quickstart_flow(client: Any, srv: Any, run_event: Any, env: str) -> dict[str, Any]:
    """Seed Quickstart plus the 409 / audit / rollback / paging / export follow-ups.

    Returns the raw results so implementations can be compared with each other.
    """
    out: dict[str, Any] = {}
    base, cand = srv.baseline_id, srv.candidate_id

    out["health"] = client.health()
    assert out["health"] == {"status": "ok", "mutation_auth": "loopback", "read_auth": "open"}

    out["workspace"] = client.get_workspace()
    assert out["workspace"] == {
        "api_version": "v1",
        "kind": "WorkspacePublic",
        "promotion_requires_approval": False,
        "pricing_catalog_configured": False,
        "server_version": "1.3.0",
    }

    out["releases"] = client.list_releases()
    by_id = {r["release_id"]: r for r in out["releases"]["releases"]}
    assert by_id[base]["version"] == "v1-baseline" and by_id[cand]["version"] == "v2-candidate"
    assert by_id[base]["agent_id"] == AGENT_ID and len(by_id[base]["checksum"]) == 64

    baseline_events = make_events(run_event, base, 2, environment=env)
    candidate_events = make_events(run_event, cand, 3, environment=env, latency_ms=1200)
    out["ingest_baseline"] = client.ingest_run_events(baseline_events)
    out["ingest_candidate"] = client.ingest_run_events_batch(candidate_events, chunk_size=2)
    assert (out["ingest_baseline"], out["ingest_candidate"]) == (2, 3)
    if not ON_POSTGRES:  # see test_reingest_skips_duplicates
        out["ingest_again"] = client.ingest_run_events(baseline_events)
        assert out["ingest_again"] == 0  # duplicates (same run_id) are skipped silently

    diff = client.post_diff(
        baseline_release_id=base, candidate_release_id=cand, window="1h", environment=env
    )
    out["diff"] = diff
    assert diff["samples"]["confidence"] == "HIGH"
    assert (diff["samples"]["baseline_runs"], diff["samples"]["candidate_runs"]) == (2, 3)
    assert diff["metrics"]["baseline_cost_per_run_usd"] == 2.0
    assert diff["metrics"]["candidate_cost_per_run_usd"] == 5.0
    assert type(diff["metrics"]["delta_cost_per_run_pct"]) is float
    assert diff["policy"]["passed"] is False
    assert diff["policy"]["reasons"] == [COST_REASON]
    assert diff["filters"]["environment"] == env

    promoted = client.post_promote(
        release_id=base, environment=env, window="1h", reason="baseline validated"
    )
    out["promote_baseline"] = promoted
    assert promoted["promoted_pointer_changed"] is True
    assert promoted["policy"] == {
        "passed": True,
        "reasons": [FIRST_PROMOTION],
        "evaluated_at": promoted["policy"]["evaluated_at"],
    }

    with pytest.raises(httpx.HTTPStatusError) as info:
        client.post_promote(release_id=cand, environment=env, window="1h", reason="try cand")
    detail = status_error(info, 409)
    out["promote_candidate_409"] = detail
    assert detail["message"] == "Promotion blocked by policy."
    assert detail["outcome"]["policy"]["reasons"] == [COST_REASON]
    assert detail["outcome"]["promoted_pointer_changed"] is False
    assert str(info.value).startswith(
        f"Client error '409 Conflict' for url '{srv.base_url}/v1/promote'\n"
    )

    actions = client.list_actions(agent_id=AGENT_ID, environment=env, limit=10)["actions"]
    out["actions_after_block"] = actions
    assert [(a["action"], a["release_id"], a["policy_passed"]) for a in actions] == [
        ("promote", cand, False),
        ("promote", base, True),
    ]
    assert actions[0]["policy_reasons"] == [COST_REASON]
    assert actions[0]["reason"] == "try cand"

    with pytest.raises(httpx.HTTPStatusError) as info:
        client.post_rollback(release_id=cand, environment=env, window="1h", reason="nope")
    assert status_error(info, 409)["message"] == "Rollback blocked by policy."

    rolled = client.post_rollback(
        release_id=base, environment=env, window="1h", reason="back to baseline", actor="oncall"
    )
    out["rollback"] = rolled
    assert rolled["action"] == "rollback" and rolled["policy"]["passed"] is True

    promoted_now = client.list_promoted()["promoted"]
    assert {"agent_id": AGENT_ID, "environment": env, "release_id": base} in promoted_now

    # Paging through /v1/runs (newest first).
    expected_ids = [e.run_id for e in candidate_events]
    page1 = client.list_runs(release_id=cand, window="1h", environment=env, limit=2)
    page2 = client.list_runs(release_id=cand, window="1h", environment=env, limit=2, offset=2)
    out["runs_page1"], out["runs_page2"] = page1, page2
    assert (page1["matched_total"], page1["returned"], page1["truncated"]) == (3, 2, True)
    assert (page2["matched_total"], page2["returned"], page2["truncated"]) == (3, 1, False)
    assert [e["run_id"] for e in page1["events"] + page2["events"]] == expected_ids
    assert page1["events"][0]["timestamp"].endswith("Z")
    assert page1["events"][0]["metrics"] == {
        "latency_ms": 1200,
        "success": True,
        "error_type": None,
    }

    body, headers = client.fetch_runs_export_ndjson(
        release_id=cand, window="1h", environment=env, limit=2, offset=1
    )
    out["export"] = (body, headers)
    assert type(body) is bytes and body.endswith(b"\n")
    assert list(headers) == EXPORT_KEYS
    assert headers == dict(zip(EXPORT_KEYS, ["3", "2", "1", "false"], strict=True))
    lines = body.decode().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == expected_ids[1:]
    assert lines[0].startswith('{"agent_id": ')  # sorted keys, spaced separators

    with pytest.raises(httpx.HTTPStatusError) as info:
        client.list_runs(release_id="rel_nope", window="1h")
    assert status_error(info, 400) == "Unknown release: rel_nope"

    out["promotion_requests"] = client.list_promotion_requests(status="pending")
    assert isinstance(out["promotion_requests"]["requests"], list)
    return out


def test_quickstart(impl: Impl, face: str, server: Any) -> None:
    env = unique_env("qs")
    with open_client(impl, face, server.base_url) as client:
        quickstart_flow(client, server, impl.RunEvent, env)


@pytest.mark.xfail(
    ON_POSTGRES, reason=PG_DUPLICATE_INGEST_BROKEN, raises=httpx.HTTPStatusError, strict=True
)
def test_reingest_skips_duplicates(impl: Impl, face: str, server: Any) -> None:
    env = unique_env("dup")
    events = make_events(impl.RunEvent, server.baseline_id, 3, environment=env)
    with open_client(impl, face, server.base_url) as client:
        assert client.ingest_run_events(events[:2]) == 2
        assert client.ingest_run_events(events[:2]) == 0
        assert client.ingest_run_events([events[2], events[0]]) == 1
        runs = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
        assert runs["matched_total"] == 3


# ----------------------------------------------------------------------------- vs reference

VOLATILE_KEYS = {
    "action_id",
    "request_id",
    "completed_action_id",
    "evaluated_at",
    "created_at",
    "resolved_at",
    "since",
    "until",
    "timestamp",
    "run_id",
    "audit_seq",
}


def normalise(obj: Any, env: str) -> Any:
    """Replace ids, timestamps and the flow's environment with placeholders."""
    if isinstance(obj, dict):
        return {
            k: (f"<{k}>" if k in VOLATILE_KEYS and v is not None else normalise(v, env))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return type(obj)(normalise(v, env) for v in obj)
    if isinstance(obj, str):
        return obj.replace(env, "<env>")
    if isinstance(obj, bytes):
        return normalise([json.loads(line) for line in obj.splitlines()], env)
    return obj


def test_quickstart_same_results_as_ref(impl: Impl, face: str, server: Any) -> None:
    """Same calls through the reference and ``impl``: identical results up to ids and clocks.

    With ``impl`` = reference this checks that the normalisation removes all volatility.
    """
    results = {}
    for label, which in (("ref", load_impl("reference")), ("impl", impl)):
        env = unique_env(f"cmp-{label}")
        with open_client(which, face, server.base_url) as client:
            results[label] = normalise(quickstart_flow(client, server, which.RunEvent, env), env)
    for key in results["ref"]:
        assert results["impl"][key] == results["ref"][key], key
    assert json.dumps(results["impl"]) == json.dumps(results["ref"])  # key order too


# ----------------------------------------------------------------------------- token server


@pytest.mark.slow
def test_token_server(impl: Impl, face: str, token_server: Any) -> None:
    srv, env = token_server, unique_env("tok")
    base, cand = srv.baseline_id, srv.candidate_id
    events = make_events(impl.RunEvent, base, 2, environment=env)

    with open_client(impl, face, srv.base_url) as anon:
        assert anon.health() == {"status": "ok", "mutation_auth": "bearer", "read_auth": "bearer"}
        with pytest.raises(httpx.HTTPStatusError) as info:
            anon.list_releases()
        assert status_error(info, 401) == "Missing or invalid API token for read route."
        assert "www-authenticate" not in info.value.response.headers
        with pytest.raises(httpx.HTTPStatusError) as info:
            anon.ingest_run_events(events)
        assert status_error(info, 401) == "Missing or invalid API token for mutation route."
        with pytest.raises(httpx.HTTPStatusError) as info:
            anon.post_promote(release_id=base, environment=env, window="1h", reason="x")
        assert status_error(info, 401) == "Missing or invalid API token for mutation route."
        # POST /v1/diff is never authenticated.
        diff = anon.post_diff(
            baseline_release_id=base, candidate_release_id=cand, window="1h", environment=env
        )
        assert diff["samples"]["confidence"] == "LOW"

    with open_client(impl, face, srv.base_url, api_token="wrong-token") as wrong:
        with pytest.raises(httpx.HTTPStatusError) as info:
            wrong.get_workspace()
        status_error(info, 401)

    with open_client(impl, face, srv.base_url, api_token=TOKEN) as client:
        assert client.get_workspace()["server_version"] == "1.3.0"
        assert {base, cand} <= {r["release_id"] for r in client.list_releases()["releases"]}
        assert client.ingest_run_events(events) == 2
        promoted = client.post_promote(release_id=base, environment=env, window="1h", reason="ok")
        assert promoted["promoted_pointer_changed"] is True
        runs = client.list_runs(release_id=base, window="1h", environment=env)
        assert runs["matched_total"] == 2
        body, headers = client.fetch_runs_export_ndjson(
            release_id=base, window="1h", environment=env
        )
        assert len(body.splitlines()) == 2 and headers["X-Flightdeck-Returned"] == "2"
        actions = client.list_actions(environment=env)["actions"]
        assert [a["release_id"] for a in actions] == [base]
        assert client.list_promoted()["promoted"]
        assert client.list_promotion_requests()["requests"] == []


# ----------------------------------------------------------------------------- approval server


@pytest.mark.slow
@pytest.mark.xfail(
    ON_POSTGRES, reason=PG_PROMOTION_REQUESTS_BROKEN, raises=httpx.HTTPStatusError, strict=True
)
def test_approval_server(impl: Impl, face: str, approval_server: Any) -> None:
    srv, env = approval_server, unique_env("appr")
    base, cand = srv.baseline_id, srv.candidate_id
    with open_client(impl, face, srv.base_url) as client:
        assert client.get_workspace()["promotion_requires_approval"] is True

        with pytest.raises(httpx.HTTPStatusError) as info:
            client.post_promote(release_id=base, environment=env, window="1h", reason="direct")
        assert status_error(info, 400).startswith("Workspace promotion_requires_approval=true")

        request = client.post_promote_request(
            release_id=base, environment=env, window="1h", reason="first rollout", actor="ci-bot"
        )
        assert request["status"] == "pending"
        assert re.fullmatch(r"prq_[0-9a-f]{12}", request["request_id"])
        assert request["policy"]["reasons"] == [FIRST_PROMOTION]
        request_id = request["request_id"]

        pending = client.list_promotion_requests(status="pending", limit=500)["requests"]
        mine = [r for r in pending if r["request_id"] == request_id]
        assert len(mine) == 1 and mine[0]["actor"] == "ci-bot" and mine[0]["environment"] == env
        assert mine[0]["resolved_at"] is None and mine[0]["completed_action_id"] is None

        confirmed = client.post_promote_confirm(
            request_id=request_id, approval_reason="lgtm", actor="approver"
        )
        assert confirmed["action"] == "promote" and confirmed["release_id"] == base
        assert confirmed["promoted_pointer_changed"] is True

        completed = client.list_promotion_requests(status="completed", limit=500)["requests"]
        done = [r for r in completed if r["request_id"] == request_id]
        assert len(done) == 1 and done[0]["completed_action_id"] == confirmed["action_id"]
        assert all(
            r["request_id"] != request_id
            for r in client.list_promotion_requests()["requests"]
            if r["status"] == "pending"
        )

        actions = client.list_actions(agent_id=AGENT_ID, environment=env)["actions"]
        assert [a["reason"] for a in actions] == ["first rollout | approval: lgtm"]

        with pytest.raises(httpx.HTTPStatusError) as info:
            client.post_promote_confirm(request_id=request_id, approval_reason="again")
        assert status_error(info, 400) == "Unknown promotion request_id or request is not pending."

        # Candidate is too expensive: the request is refused and nothing is recorded.
        assert client.ingest_run_events(make_events(impl.RunEvent, cand, 2, environment=env)) == 2
        assert client.ingest_run_events(make_events(impl.RunEvent, base, 1, environment=env)) == 1
        with pytest.raises(httpx.HTTPStatusError) as info:
            client.post_promote_request(release_id=cand, environment=env, window="1h", reason="c")
        detail = status_error(info, 409)
        assert set(detail) == {"message"}
        assert detail["message"].startswith("Policy does not allow this promotion")
        assert COST_REASON in detail["message"]

        # Rollback never needs approval.
        rolled = client.post_rollback(release_id=base, environment=env, window="1h", reason="rb")
        assert rolled["action"] == "rollback"


# ----------------------------------------------------------------------------- the launcher


def test_launcher_cli_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    found = flightdeck_cli()
    assert len(found) == 1 and os.access(found[0], os.X_OK)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"pip install flightdeck-ai==1\.3\.0"):
        flightdeck_cli()


def test_launcher_reports_cli_failure(tmp_path: Any) -> None:
    (tmp_path / "flightdeck.yaml").write_text("already here\n")
    srv = FlightdeckServer(workdir=tmp_path)
    with pytest.raises(RuntimeError, match="already exists"):
        srv.start(timeout_s=20)
    assert srv.pid is None
    srv.stop()  # idempotent
    assert (tmp_path / "flightdeck.yaml").read_text() == "already here\n"  # caller's dir kept


@pytest.mark.slow
def test_launcher_lifecycle(database_url: str | None) -> None:
    """Own workdir kept, temp workdir removed, process gone after stop (also twice)."""
    with FlightdeckServer(database_url=database_url) as srv:
        workdir, pid = srv.workdir, srv.pid
        assert pid is not None and srv.base_url.startswith("http://127.0.0.1:")
        assert re.fullmatch(r"rel_[0-9a-f]{12}", srv.baseline_id)
        assert (workdir / "flightdeck-serve.log").exists()
    assert srv.pid is None and not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    srv.stop()


def test_launcher_rejects_bad_database_url() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        FlightdeckServer(database_url="sqlite:///ledger.db")
    with pytest.raises(ValueError, match="bundled_pricing"):
        FlightdeckServer(database_url="postgresql://u@127.0.0.1/db", bundled_pricing=True)


# ----------------------------------------------------------------------------- ledger backend


def sqlite_ledger_runs(srv: Any, env: str) -> int:
    """Rows of ``env`` in the workspace's SQLite ledger (0 when it has no such table or file)."""
    config = yaml.safe_load((srv.workdir / "flightdeck.yaml").read_text(encoding="utf-8"))
    path = srv.workdir / config["db_path"]
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM run_events WHERE environment = ?", (env,)
            ).fetchone()
        except sqlite3.OperationalError:  # no run_events table
            return 0
    return int(row[0])


def postgres_ledger_runs(database_url: str, env: str) -> int:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM run_events WHERE environment = %s", (env,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("which", ["server", "token_server", "approval_server"])
def test_ledger_is_on_the_requested_database(which: str, request: pytest.FixtureRequest) -> None:
    """Events ingested through the server land in the backend that FDRS_TEST_DATABASE names."""
    srv = request.getfixturevalue(which)
    env, ours = unique_env("ledger"), load_impl("ours")
    events = make_events(ours.RunEvent, srv.baseline_id, 3, environment=env)
    token = TOKEN if which == "token_server" else None
    with open_client(ours, "sync", srv.base_url, api_token=token) as client:
        assert client.ingest_run_events(events) == 3
        runs = client.list_runs(release_id=srv.baseline_id, window="1h", environment=env)
        assert runs["matched_total"] == 3
    config = yaml.safe_load((srv.workdir / "flightdeck.yaml").read_text(encoding="utf-8"))
    if TEST_DATABASE == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        assert srv.database_url and config["database_url"] == srv.database_url
        assert srv.database_url.rsplit("/", 1)[1] in cluster.databases
        assert postgres_ledger_runs(srv.database_url, env) == 3
        assert sqlite_ledger_runs(srv, env) == 0
    else:
        assert TEST_DATABASE == "sqlite"
        assert srv.database_url is None and config["database_url"] is None
        assert sqlite_ledger_runs(srv, env) == 3


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL only (FDRS_TEST_DATABASE=postgres)")
def test_pg_schema_workaround_still_needed(request: pytest.FixtureRequest) -> None:
    """flightdeck-ai 1.3.0 cannot migrate a fresh database (see PG_SCHEMA_WORKAROUND).

    When this fails, the server migrates PostgreSQL by itself: drop the workaround.
    """
    srv = FlightdeckServer(database_url=new_database_url(request, workaround=False))
    with pytest.raises(RuntimeError, match='syntax error at or near "window"'):
        srv.start(timeout_s=30)
    assert srv.pid is None


# ----------------------------------------------------------------------------- concurrency


def test_sync_client_shared_by_threads(impl: Impl, server: Any) -> None:
    env = unique_env("thr")
    client = impl.FlightdeckClient(server.base_url)
    batches = [make_events(impl.RunEvent, server.baseline_id, 5, environment=env) for _ in range(8)]
    results: list[int] = []
    errors: list[BaseException] = []

    def work(events: list[Any]) -> None:
        try:
            results.append(client.ingest_run_events(events))
            client.list_releases()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert errors == [] and sorted(results) == [5] * 8
        runs = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
        assert runs["matched_total"] == 40
    finally:
        client.close()


def test_async_client_gather(impl: Impl, server: Any) -> None:
    env = unique_env("gather")
    batches = [
        make_events(impl.RunEvent, server.candidate_id, 5, environment=env) for _ in range(8)
    ]

    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        client = impl.AsyncFlightdeckClient(server.base_url)
        try:
            results = await asyncio.gather(
                *(client.ingest_run_events(b) for b in batches),
                *(client.health() for _ in range(8)),
            )
            runs = await client.list_runs(
                release_id=server.candidate_id, window="1h", environment=env, limit=500
            )
            return results, runs
        finally:
            await client.aclose()

    results, runs = asyncio.run(scenario())
    assert results[:8] == [5] * 8
    assert all(r["status"] == "ok" for r in results[8:])
    assert runs["matched_total"] == 40 and runs["returned"] == 40
