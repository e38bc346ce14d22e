"""``flightdeck-rs demo``: a throwaway server by default; ``--url`` drives an existing one
without changing anything outside the demo's own environment; ``--json`` prints one object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from conftest import make_events
from flightdeck_rs import FlightdeckClient, RunEvent, cli

pytestmark = pytest.mark.timeout(120)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    return subprocess.run(
        [sys.executable, "-m", "flightdeck_rs", *args],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        check=False,
    )


def snapshot(client: FlightdeckClient, srv: Any, skip_env: str | None = None) -> dict[str, Any]:
    """What the demo must not change: releases, live pointers outside ``skip_env``, and the
    default environment's runs and audit actions."""
    return {
        "releases": client.list_releases()["releases"],
        "promoted": [p for p in client.list_promoted()["promoted"] if p["environment"] != skip_env],
        "actions": client.list_actions(environment="local", limit=500)["actions"],
        "runs": {
            rid: sorted(e.run_id for e in client.iter_runs(release_id=rid, window="7d"))
            for rid in (srv.baseline_id, srv.candidate_id)
        },
    }


def test_demo_drives_an_existing_server_in_its_own_environment(server: Any) -> None:
    with FlightdeckClient(server.base_url) as client:
        # Something of the user's own in the default environment.
        client.ingest_run_events(make_events(RunEvent, server.baseline_id, 3))
        before = snapshot(client, server)
        r = run(
            "demo",
            "--url",
            server.base_url,
            "--baseline",
            server.baseline_id,
            "--candidate",
            server.candidate_id,
            "--json",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        out = json.loads(r.stdout)  # one JSON object and nothing else on stdout
        env = out["environment"]
        assert out["ok"] is True and out["server"] == "existing" and out["url"] == server.base_url
        assert env.startswith("flightdeck-rs-demo-")
        assert [p["status"] for p in out["promotions"]] == [200, 409]
        assert out["diff"]["samples"]["baseline_runs"] == out["diff"]["samples"]["candidate_runs"]
        assert [s["step"] for s in out["steps"]] == list(range(1, 9))

        assert snapshot(client, server, skip_env=env) == before
        for rid in (server.baseline_id, server.candidate_id):
            demo_runs = list(client.iter_runs(release_id=rid, window="1h", environment=env))
            assert len(demo_runs) == 20
            assert all(e.labels == {"flightdeck_rs.demo": "true"} for e in demo_runs)
        assert (
            client.list_promoted()["promoted"].count(
                {"agent_id": "agent_support", "environment": env, "release_id": server.baseline_id}
            )
            == 1
        )

    # Text mode names the environment it wrote to.
    r = run(
        "demo",
        "--url",
        server.base_url,
        "--baseline",
        server.baseline_id,
        "--candidate",
        server.candidate_id,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "driving the existing server at " + server.base_url in r.stdout
    assert "demo OK: everything it wrote is in environment flightdeck-rs-demo-" in r.stdout


def test_demo_json_with_its_own_server() -> None:
    r = run("demo", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["server"] == "throwaway" and out["environment"] == "local"
    assert out["diff"]["metrics"]["candidate_cost_per_run_usd"] == pytest.approx(5.0)
    assert [(p["status"], p["passed"]) for p in out["promotions"]] == [(200, True), (409, False)]
    assert "exceeds max" in out["promotions"][1]["reasons"][0]


def test_demo_rejects_what_it_cannot_do(server: Any) -> None:
    r = run("demo", "--url", server.base_url)
    assert r.returncode == cli.EXIT_USAGE
    assert "--url needs --baseline REL_ID and --candidate REL_ID" in r.stderr

    r = run("demo", "--url", server.base_url, "--json")
    assert r.returncode == cli.EXIT_USAGE
    out = json.loads(r.stdout)
    assert out["ok"] is False and "--url needs --baseline" in out["error"]

    r = run("demo", "--baseline", server.baseline_id, "--candidate", server.candidate_id)
    assert r.returncode == cli.EXIT_USAGE and "pass --url too" in r.stderr

    r = run(
        "demo", "--url", server.base_url, "--baseline", server.baseline_id, "--candidate", "rel_x"
    )
    assert r.returncode == cli.EXIT_USAGE
    assert "--candidate rel_x is not registered" in r.stderr and server.baseline_id in r.stderr

    r = run(
        "demo",
        "--url",
        server.base_url,
        "--baseline",
        server.baseline_id,
        "--candidate",
        server.candidate_id,
        "--model",
        "openai/not-priced",
    )
    assert r.returncode == 1
    assert "pricing tables have no price for openai/not-priced" in r.stderr
