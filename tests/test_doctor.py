"""``flightdeck-rs doctor`` never changes a release's diff, promotion or policy outcome.

A fresh ``flightdeck serve`` gets priced runs for two releases in the default environment and
in a named one; the diff of the two releases and the promotion verdicts are taken before and
after ``doctor`` (read-only, then ``--write-check``) and must be identical. A control shows that
the comparison does notice a harmful event (the unpriced test event the old ``doctor`` stored in
the release's own environment turns the diff into HTTP 400).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import FlightdeckServer, make_events, unique_env
from flightdeck_rs import FlightdeckClient, RunEvent, cli

pytestmark = pytest.mark.timeout(120)

WINDOW = "7d"  # the gate window: an event stays inside it for a week
DEFAULT_ENV = "local"  # the workspace default of FlightdeckServer
#: Keys whose values change with the clock or with each call, not with the ledger's data.
VOLATILE = {
    "since",
    "until",
    "evaluated_at",
    "action_id",
    "created_at",
    "audit_seq",
    "request_id",
}


def run_doctor(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    return subprocess.run(
        [sys.executable, "-m", "flightdeck_rs", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def stable(value: Any) -> Any:
    """``value`` without the clock- and call-dependent keys, at any depth."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [stable(v) for v in value]
    return value


def leaf_diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where ``a`` and ``b`` differ (for a readable failure message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in sorted(set(a) | set(b)) for d in leaf_diff(a.get(k), b.get(k), f"{path}/{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in leaf_diff(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def answer(call: Any, **kwargs: Any) -> tuple[int, Any]:
    """``(200, body)`` or ``(status, detail)`` of an HTTP error."""
    try:
        return 200, call(**kwargs)
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code, exc.response.json().get("detail")


@pytest.fixture()
def fresh_server(database_url: str | None) -> Iterator[Any]:
    """A server of this test's own: nothing else writes to its default environment."""
    srv = FlightdeckServer(database_url=database_url)
    srv.start(timeout_s=30.0)
    try:
        yield srv
    finally:
        srv.stop()


def outcomes(client: FlightdeckClient, srv: Any, envs: list[str | None]) -> dict[str, Any]:
    """Everything a gate decides on, for each environment (``None``: the server default)."""
    out: dict[str, Any] = {}
    for env in envs:
        name = env or "<default>"
        filters = {} if env is None else {"environment": env}
        out[f"diff {name}"] = answer(
            client.post_diff,
            baseline_release_id=srv.baseline_id,
            candidate_release_id=srv.candidate_id,
            window=WINDOW,
            **filters,
        )
        out[f"diff reversed {name}"] = answer(
            client.post_diff,
            baseline_release_id=srv.candidate_id,
            candidate_release_id=srv.baseline_id,
            window=WINDOW,
            **filters,
        )
        promote_env = env or DEFAULT_ENV  # post_promote needs an explicit environment
        for role, release in (("baseline", srv.baseline_id), ("candidate", srv.candidate_id)):
            out[f"promote {role} {name}"] = answer(
                client.post_promote,
                release_id=release,
                environment=promote_env,
                window=WINDOW,
                reason="doctor test",
            )
        for release in (srv.baseline_id, srv.candidate_id):
            out[f"runs {release} {name}"] = sorted(
                e.run_id for e in client.iter_runs(release_id=release, window=WINDOW, **filters)
            )
    out["promoted"] = sorted(
        (p["agent_id"], p["environment"], p["release_id"])
        for p in client.list_promoted()["promoted"]
    )
    return stable(out)


def test_doctor_leaves_diffs_and_promotions_unchanged(fresh_server: Any) -> None:
    srv = fresh_server
    named = unique_env("production")
    envs: list[str | None] = [None, named]
    with FlightdeckClient(srv.base_url) as client:
        for env in (DEFAULT_ENV, named):
            for release in (srv.baseline_id, srv.candidate_id):
                assert (
                    client.ingest_run_events(make_events(RunEvent, release, 6, environment=env))
                    == 6
                )
            # The baseline is live in both environments, so promoting the candidate runs the
            # full policy comparison (blocked: its pricing table makes a run cost 5.0 USD).
            client.post_promote(
                release_id=srv.baseline_id, environment=env, window=WINDOW, reason="setup"
            )

        before = outcomes(client, srv, envs)
        # The starting point is a real, priced comparison on both sides.
        for name in ("<default>", named):
            status, diff = before[f"diff {name}"]
            assert status == 200, diff
            assert diff["samples"]["baseline_runs"] == diff["samples"]["candidate_runs"] == 6
            assert diff["metrics"]["candidate_cost_per_run_usd"] == pytest.approx(5.0)
            status, detail = before[f"promote candidate {name}"]
            assert status == 409 and not detail["outcome"]["policy"]["passed"], detail
            assert before[f"promote baseline {name}"][0] == 200

        for extra in ([], ["--environment", named]):
            r = run_doctor("--url", srv.base_url, "--release", srv.baseline_id, "--json", *extra)
            assert r.returncode == 0, r.stdout + r.stderr
            report = json.loads(r.stdout)
            assert report["read_only"] is True and "write_check" not in report
            now = outcomes(client, srv, envs)
            assert now == before, leaf_diff(before, now)

        for release in (srv.baseline_id, srv.candidate_id):
            r = run_doctor("--url", srv.base_url, "--release", release, "--write-check")
            assert r.returncode == 0, r.stdout + r.stderr
            assert f"stores one test event in environment '{cli.DOCTOR_ENVIRONMENT}'" in r.stdout
            assert "ok    write check stored test event" in r.stdout
            now = outcomes(client, srv, envs)
            assert now == before, leaf_diff(before, now)

        # The test events are where doctor said, and nowhere else.
        stored = list(
            client.iter_runs(
                release_id=srv.baseline_id, window=WINDOW, environment=cli.DOCTOR_ENVIRONMENT
            )
        )
        assert [e.usage.model.model for e in stored] == ["doctor"]
        assert stored[0].labels == {"flightdeck_rs.doctor": "true"}

        # Control: the same unpriced event in a real environment does change the outcome,
        # so the comparison above would have caught it.
        client.ingest_run_events(
            [
                RunEvent(
                    **{
                        **stored[0].model_dump(),
                        "run_id": stored[0].run_id + "-control",
                        "environment": named,
                    }
                )
            ]
        )
        after = outcomes(client, srv, envs)
        assert after != before
        status, detail = after[f"diff {named}"]
        assert status == 400 and "Pricing table missing model entry" in str(detail)
        assert after["diff <default>"] == before["diff <default>"]


def test_doctor_write_check_needs_a_release(server: Any) -> None:
    r = run_doctor("--url", server.base_url, "--write-check")
    assert r.returncode == cli.EXIT_USAGE
    assert "--write-check needs --release" in r.stderr
    r = run_doctor("--url", server.base_url, "--release", "rel_nope", "--write-check", "--json")
    assert r.returncode == cli.EXIT_USAGE, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["error"]["message"] == "unknown release rel_nope"
    assert "write_check" not in report


def test_doctor_help_says_what_it_writes() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "flightdeck_rs", "doctor", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "Read-only: nothing is written unless --write-check is given." in text
    assert "--write-check also STORE one test event" in text
    assert f"environment '{cli.DOCTOR_ENVIRONMENT}'" in text
