"""End-to-end demo: ``python -m flightdeck_rs.demo`` (or ``make demo``).

Starts a real ``flightdeck serve`` (the reference server from ``flightdeck-ai``) on a
temporary SQLite workspace with two registered releases, then drives it with the
``flightdeck_rs`` clients:

1. ``health()`` and ``get_workspace()``;
2. 20 baseline events with the sync client (``ingest_run_events``);
3. 20 candidate events with the async client (``ingest_run_events_batch``, chunks of 8);
4. ``post_diff(window="1h")``;
5. promote the baseline (the first promotion always passes);
6. promote the candidate, which the policy blocks with HTTP 409 (its cost per run is over
   the cap);
7. ``list_actions()`` and ``list_promoted()``;

and prints a short summary. The server is stopped and its workspace removed in every case.
The exit status is 0 when every step behaved as expected, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from flightdeck_rs._server import FlightdeckServer
from flightdeck_rs.models import RunEvent
from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

__all__ = ["main"]

AGENT_ID = "agent_support"
ENVIRONMENT = "local"  # the workspace default environment
WINDOW = "1h"
EVENTS_PER_RELEASE = 20
ASYNC_CHUNK_SIZE = 8
STEPS = 8

JsonDict = dict[str, Any]


class DemoError(Exception):
    """A step of the demo did not behave as expected."""


# ---------------------------------------------------------------------------- helpers


def _step(number: int, text: str) -> None:
    print(f"[{number}/{STEPS}] {text}")


def _ms(start: float) -> str:
    return f"{(time.perf_counter() - start) * 1000:.0f} ms"


def _num(value: object, spec: str, *, signed: bool = False) -> str:
    """Format a number from a server payload; ``None`` (no data) prints as ``n/a``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return format(value, ("+" if signed else "") + spec)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Render a left-aligned text table with a dashed rule under the header."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return indent + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _make_events(release_id: str, role: str, seed: int) -> list[RunEvent]:
    """Build ``EVENTS_PER_RELEASE`` events stamped a few seconds in the past (aware UTC)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        RunEvent(
            timestamp=now - timedelta(seconds=2 + i * 0.25),
            agent_id=AGENT_ID,
            release_id=release_id,
            run_id=f"demo-{role}-{i:02d}-{uuid.uuid4().hex[:12]}",
            tenant_id="tenant_demo",
            task_id="support_ticket",
            environment=ENVIRONMENT,
            usage={
                "model": {
                    "provider": "openai",
                    "model": "gpt-4.1-mini",
                    "input_tokens": 1000,
                    "output_tokens": 500,
                }
            },
            metrics={"success": True, "latency_ms": rng.randint(800, 1200)},
        )
        for i in range(EVENTS_PER_RELEASE)
    ]


async def _ingest_async(base_url: str, events: list[RunEvent]) -> int:
    async with AsyncFlightdeckClient(base_url) as client:
        return await client.ingest_run_events_batch(events, chunk_size=ASYNC_CHUNK_SIZE)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoError(message)


# ---------------------------------------------------------------------------- the demo


def _run(server: FlightdeckServer) -> None:
    base_url = server.base_url
    baseline_id, candidate_id = server.baseline_id, server.candidate_id

    with FlightdeckClient(base_url) as client:
        started = time.perf_counter()
        health: JsonDict = client.health()
        workspace: JsonDict = client.get_workspace()
        _step(
            2,
            f"health: status={health.get('status')}, mutation_auth={health.get('mutation_auth')}"
            f", server {workspace.get('server_version')} ({_ms(started)})",
        )
        _expect(health.get("status") == "ok", f"unexpected health answer: {health!r}")

        releases: list[JsonDict] = client.list_releases()["releases"]
        versions = {str(r["release_id"]): str(r.get("version", "?")) for r in releases}
        _step(3, f"releases: baseline {baseline_id}, candidate {candidate_id}")

        started = time.perf_counter()
        inserted_baseline = client.ingest_run_events(_make_events(baseline_id, "baseline", 1))
        _step(
            4,
            f"sync  ingest_run_events: {EVENTS_PER_RELEASE} baseline events, "
            f"{inserted_baseline} inserted ({_ms(started)})",
        )

        started = time.perf_counter()
        candidate_events = _make_events(candidate_id, "candidate", 2)
        inserted_candidate = asyncio.run(_ingest_async(base_url, candidate_events))
        chunks = -(-EVENTS_PER_RELEASE // ASYNC_CHUNK_SIZE)
        _step(
            5,
            f"async ingest_run_events_batch(chunk_size={ASYNC_CHUNK_SIZE}): "
            f"{EVENTS_PER_RELEASE} candidate events in {chunks} requests, "
            f"{inserted_candidate} inserted ({_ms(started)})",
        )
        _expect(
            inserted_baseline == EVENTS_PER_RELEASE and inserted_candidate == EVENTS_PER_RELEASE,
            f"expected {EVENTS_PER_RELEASE} + {EVENTS_PER_RELEASE} inserted events, "
            f"got {inserted_baseline} + {inserted_candidate}",
        )

        started = time.perf_counter()
        diff: JsonDict = client.post_diff(
            baseline_release_id=baseline_id, candidate_release_id=candidate_id, window=WINDOW
        )
        samples: JsonDict = diff["samples"]
        _step(
            6,
            f'post_diff(window="{WINDOW}"): {samples["baseline_runs"]} vs '
            f"{samples['candidate_runs']} runs, confidence {samples['confidence']} "
            f"({_ms(started)})",
        )
        _expect(
            samples["baseline_runs"] == EVENTS_PER_RELEASE
            and samples["candidate_runs"] == EVENTS_PER_RELEASE,
            f"the diff window should hold {EVENTS_PER_RELEASE} runs per release, got "
            f"{samples['baseline_runs']} / {samples['candidate_runs']}",
        )

        started = time.perf_counter()
        first: JsonDict = client.post_promote(
            release_id=baseline_id,
            environment=ENVIRONMENT,
            window=WINDOW,
            reason="demo: first rollout of the baseline",
        )
        first_policy: JsonDict = first["policy"]
        _expect(bool(first_policy["passed"]), f"promoting the baseline failed: {first!r}")
        blocked_reasons: list[str] = []
        try:
            second: JsonDict = client.post_promote(
                release_id=candidate_id,
                environment=ENVIRONMENT,
                window=WINDOW,
                reason="demo: try the candidate",
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 409:
                raise
            detail: JsonDict = exc.response.json()["detail"]
            blocked_reasons = [str(r) for r in detail["outcome"]["policy"]["reasons"]]
        else:
            raise DemoError(f"the candidate promotion was expected to be blocked: {second!r}")
        _step(
            7,
            f"promote baseline: passed; promote candidate: HTTP 409 blocked ({_ms(started)})",
        )

        started = time.perf_counter()
        actions: list[JsonDict] = client.list_actions(agent_id=AGENT_ID, environment=ENVIRONMENT)[
            "actions"
        ]
        promoted: list[JsonDict] = client.list_promoted()["promoted"]
        _step(8, f"list_actions: {len(actions)} audit actions ({_ms(started)})")

    _expect(len(actions) >= 2, f"expected two audit actions, got {actions!r}")
    _print_summary(
        versions=versions,
        ids=(baseline_id, candidate_id),
        inserted=(inserted_baseline, inserted_candidate),
        diff=diff,
        first_reasons=[str(r) for r in first_policy["reasons"]],
        blocked_reasons=blocked_reasons,
        actions=actions,
        promoted=promoted,
    )


def _print_summary(
    *,
    versions: dict[str, str],
    ids: tuple[str, str],
    inserted: tuple[int, int],
    diff: JsonDict,
    first_reasons: list[str],
    blocked_reasons: list[str],
    actions: list[JsonDict],
    promoted: list[JsonDict],
) -> None:
    baseline_id, candidate_id = ids
    samples: JsonDict = diff["samples"]
    metrics: JsonDict = diff["metrics"]
    policy: JsonDict = diff["policy"]
    live = {str(p.get("release_id")) for p in promoted if p.get("environment") == ENVIRONMENT}

    print()
    print("Releases")
    print(
        _table(
            ["role", "release_id", "version", "events", "promoted"],
            [
                [role, rid, versions.get(rid, "?"), str(count), "yes" if rid in live else "no"]
                for role, rid, count in (
                    ("baseline", baseline_id, inserted[0]),
                    ("candidate", candidate_id, inserted[1]),
                )
            ],
        )
    )

    pct = metrics.get("delta_cost_per_run_pct")
    pct_text = f" ({_num(pct * 100, '.1f', signed=True)}%)" if isinstance(pct, int | float) else ""
    print()
    print(f"Diff (window {WINDOW}, environment {diff.get('filters', {}).get('environment')})")
    print(
        _table(
            ["metric", "baseline", "candidate", "delta"],
            [
                [
                    "cost per run (USD)",
                    _num(metrics.get("baseline_cost_per_run_usd"), ".4f"),
                    _num(metrics.get("candidate_cost_per_run_usd"), ".4f"),
                    _num(metrics.get("delta_cost_per_run_usd"), ".4f", signed=True) + pct_text,
                ],
                [
                    "latency avg (ms)",
                    _num(metrics.get("baseline_latency_ms_avg"), ".1f"),
                    _num(metrics.get("candidate_latency_ms_avg"), ".1f"),
                    _num(metrics.get("delta_latency_ms_avg"), ".1f", signed=True),
                ],
                [
                    "error rate",
                    _num(metrics.get("baseline_error_rate"), ".3f"),
                    _num(metrics.get("candidate_error_rate"), ".3f"),
                    _num(metrics.get("delta_error_rate"), ".3f", signed=True),
                ],
                [
                    "runs",
                    str(samples.get("baseline_runs")),
                    str(samples.get("candidate_runs")),
                    f"confidence {samples.get('confidence')}",
                ],
            ],
        )
    )

    print()
    print("Policy verdicts")
    print(
        _table(
            ["check", "verdict", "reasons"],
            [
                [
                    "diff policy (candidate vs baseline)",
                    "passed" if policy.get("passed") else "blocked",
                    "; ".join(str(r) for r in policy.get("reasons", [])) or "-",
                ],
                ["promote baseline (HTTP 200)", "passed", "; ".join(first_reasons) or "-"],
                ["promote candidate (HTTP 409)", "blocked", "; ".join(blocked_reasons) or "-"],
            ],
        )
    )

    print()
    print(f"Audit actions for {AGENT_ID}/{ENVIRONMENT} (newest first)")
    print(
        _table(
            ["seq", "action", "release_id", "policy", "reason"],
            [
                [
                    str(a.get("audit_seq")),
                    str(a.get("action")),
                    str(a.get("release_id")),
                    "passed" if a.get("policy_passed") else "blocked",
                    str(a.get("reason")),
                ]
                for a in actions
            ],
        )
    )


def _describe_http_error(exc: httpx.HTTPStatusError) -> str:
    request = exc.request
    body = exc.response.text.strip()
    if len(body) > 500:
        body = body[:500] + "..."
    return (
        f"HTTP {exc.response.status_code} from {request.method} {request.url}: "
        f"{body or '<empty body>'}"
    )


def _describe_request_error(exc: httpx.RequestError) -> str:
    try:
        target = f"{exc.request.method} {exc.request.url}"
    except RuntimeError:  # httpx raises this when no request is attached
        target = "a request"
    return f"{target} failed: {type(exc).__name__}: {exc}"


def main() -> int:
    """Run the demo; return the process exit status (0 on success)."""
    print("flightdeck_rs demo: the Rust-core client against a real `flightdeck serve`")
    server = FlightdeckServer()
    try:
        started = time.perf_counter()
        server.start()
        _step(1, f"flightdeck serve ready at {server.base_url} ({_ms(started)})")
        _run(server)
    except DemoError as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPStatusError as exc:
        print(f"\ndemo FAILED: {_describe_http_error(exc)}", file=sys.stderr)
        return 1
    except httpx.RequestError as exc:
        print(f"\ndemo FAILED: {_describe_request_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else: say what it was, with the traceback
        traceback.print_exc()
        print(f"\ndemo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            server.stop()
        except Exception as exc:
            print(f"warning: stopping flightdeck serve failed: {exc}", file=sys.stderr)
    print("\ndemo OK: server stopped, temporary workspace removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
