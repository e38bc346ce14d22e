"""End-to-end demo: ``flightdeck-rs demo``, ``python -m flightdeck_rs.demo`` or ``make demo``.

By default it starts a real ``flightdeck serve`` (the reference server from ``flightdeck-ai``)
on a temporary SQLite workspace with two registered releases, then drives it with the
``flightdeck_rs`` clients:

1. ``health()`` and ``get_workspace()``;
2. 20 baseline events with the sync client (``ingest_run_events``);
3. 20 candidate events with the async client (``ingest_run_events_batch``, chunks of 8);
4. ``post_diff(window="1h")``;
5. promote the baseline (the first promotion in an environment always passes);
6. promote the candidate, which the policy blocks with HTTP 409 (its cost per run is over
   the cap);
7. ``list_actions()`` and ``list_promoted()``;

and prints a short summary. The server is stopped and its workspace removed in every case.

With ``--url`` it drives an existing server instead. Releases cannot be registered over HTTP,
so ``--baseline`` and ``--candidate`` name two registered releases of one agent. Everything the
demo writes goes to a new environment (``flightdeck-rs-demo-<random>``):
its events, the promotions and their audit actions. Diffs, promotions and policy verdicts of
every other environment are unchanged, no release is registered or modified and the policy is
not touched. The events use ``--model`` (default ``openai/gpt-4.1-mini``), which must be priced
in the releases' pricing tables. The candidate's verdict is reported, not expected.

``--json`` prints one JSON object (the steps, the diff and the verdicts) instead of text.
The exit status is 0 when every step behaved as expected, 1 when a step failed, 2 for a usage
error (e.g. ``--url`` without the releases) and 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from flightdeck_rs._server import FlightdeckServer
from flightdeck_rs.models import RunEvent
from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

__all__ = ["DemoError", "main", "run_demo"]

LOCAL_ENVIRONMENT = "local"  # the default environment of the throwaway workspace
WINDOW = "1h"
EVENTS_PER_RELEASE = 20
ASYNC_CHUNK_SIZE = 8
STEPS = 8
DEFAULT_MODEL = "openai/gpt-4.1-mini"
TOKEN_ENV = "FLIGHTDECK_LOCAL_API_TOKEN"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

JsonDict = dict[str, Any]


class DemoError(Exception):
    """A step of the demo did not behave as expected."""


class DemoUsageError(DemoError):
    """The demo was asked for something it cannot do (bad options or releases)."""


@dataclass
class _Target:
    """The server the demo drives and what it may write to."""

    base_url: str
    token: str | None
    baseline_id: str
    candidate_id: str
    environment: str
    provider: str
    model: str
    existing: bool  # True: a server we did not start (--url)
    timeout_s: float = 30.0


@dataclass
class _Report:
    """Steps and results, printed as text as they happen or collected for ``--json``."""

    json: bool
    steps: list[JsonDict] = field(default_factory=list)
    data: JsonDict = field(default_factory=dict)

    def step(self, number: int, text: str) -> None:
        self.steps.append({"step": number, "text": text})
        if not self.json:
            print(f"[{number}/{STEPS}] {text}", flush=True)

    def say(self, text: str) -> None:
        if not self.json:
            print(text, flush=True)


# ---------------------------------------------------------------------------- helpers


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


def _make_events(
    target: _Target, agent_id: str, release_id: str, role: str, seed: int
) -> list[RunEvent]:
    """Build ``EVENTS_PER_RELEASE`` events stamped a few seconds in the past (aware UTC)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        RunEvent(
            timestamp=now - timedelta(seconds=2 + i * 0.25),
            agent_id=agent_id,
            release_id=release_id,
            run_id=f"demo-{role}-{i:02d}-{uuid.uuid4().hex[:12]}",
            tenant_id="tenant_demo",
            task_id="support_ticket",
            environment=target.environment,
            usage={
                "model": {
                    "provider": target.provider,
                    "model": target.model,
                    "input_tokens": 1000,
                    "output_tokens": 500,
                }
            },
            metrics={"success": True, "latency_ms": rng.randint(800, 1200)},
            labels={"flightdeck_rs.demo": "true"},
        )
        for i in range(EVENTS_PER_RELEASE)
    ]


async def _ingest_async(target: _Target, events: list[RunEvent]) -> int:
    async with AsyncFlightdeckClient(
        target.base_url, api_token=target.token, timeout_s=target.timeout_s
    ) as client:
        return await client.ingest_run_events_batch(events, chunk_size=ASYNC_CHUNK_SIZE)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoError(message)


def _promote(client: FlightdeckClient, target: _Target, release_id: str, reason: str) -> JsonDict:
    """``post_promote``; a policy block (HTTP 409) is a result, not an error."""
    try:
        outcome: JsonDict = client.post_promote(
            release_id=release_id, environment=target.environment, window=WINDOW, reason=reason
        )
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 409:
            raise
        detail: JsonDict = exc.response.json()["detail"]
        policy: JsonDict = detail["outcome"]["policy"]
        return {
            "release_id": release_id,
            "status": 409,
            "passed": False,
            "reasons": [str(r) for r in policy.get("reasons", [])],
        }
    policy = outcome["policy"]
    return {
        "release_id": release_id,
        "status": 200,
        "passed": bool(policy.get("passed")),
        "reasons": [str(r) for r in policy.get("reasons", [])],
    }


# ---------------------------------------------------------------------------- the demo


def _run(target: _Target, report: _Report) -> None:
    baseline_id, candidate_id = target.baseline_id, target.candidate_id
    data = report.data

    with FlightdeckClient(target.base_url, api_token=target.token, timeout_s=target.timeout_s) as (
        client
    ):
        started = time.perf_counter()
        health: JsonDict = client.health()
        workspace: JsonDict = client.get_workspace()
        report.step(
            2,
            f"health: status={health.get('status')}, mutation_auth={health.get('mutation_auth')}"
            f", server {workspace.get('server_version')} ({_ms(started)})",
        )
        _expect(health.get("status") == "ok", f"unexpected health answer: {health!r}")
        data["server_version"] = workspace.get("server_version")

        releases: dict[str, JsonDict] = {
            str(r["release_id"]): r for r in client.list_releases()["releases"]
        }
        for role, rid in (("baseline", baseline_id), ("candidate", candidate_id)):
            if rid not in releases:
                known = ", ".join(
                    f"{k} ({v.get('agent_id')} {v.get('version')})" for k, v in releases.items()
                )
                raise DemoUsageError(
                    f"--{role} {rid} is not registered on {target.base_url} (registered: "
                    f"{known or 'none'}); releases are registered on the server's workspace "
                    "with `flightdeck release register PATH`"
                )
        agent_id = str(releases[baseline_id].get("agent_id"))
        if str(releases[candidate_id].get("agent_id")) != agent_id:
            raise DemoUsageError(
                f"the releases belong to different agents ({agent_id} and "
                f"{releases[candidate_id].get('agent_id')}); a diff compares one agent's releases"
            )
        versions = {
            rid: str(releases[rid].get("version", "?")) for rid in (baseline_id, candidate_id)
        }
        report.step(
            3,
            f"releases: baseline {baseline_id} ({versions[baseline_id]}), candidate "
            f"{candidate_id} ({versions[candidate_id]}), agent {agent_id}, environment "
            f"{target.environment}",
        )
        data.update(agent_id=agent_id, environment=target.environment)

        started = time.perf_counter()
        inserted_baseline = client.ingest_run_events(
            _make_events(target, agent_id, baseline_id, "baseline", 1)
        )
        report.step(
            4,
            f"sync  ingest_run_events: {EVENTS_PER_RELEASE} baseline events, "
            f"{inserted_baseline} inserted ({_ms(started)})",
        )

        started = time.perf_counter()
        candidate_events = _make_events(target, agent_id, candidate_id, "candidate", 2)
        inserted_candidate = asyncio.run(_ingest_async(target, candidate_events))
        chunks = -(-EVENTS_PER_RELEASE // ASYNC_CHUNK_SIZE)
        report.step(
            5,
            f"async ingest_run_events_batch(chunk_size={ASYNC_CHUNK_SIZE}): "
            f"{EVENTS_PER_RELEASE} candidate events in {chunks} requests, "
            f"{inserted_candidate} inserted ({_ms(started)})",
        )
        data["releases"] = [
            {"role": role, "release_id": rid, "version": versions[rid], "inserted": n}
            for role, rid, n in (
                ("baseline", baseline_id, inserted_baseline),
                ("candidate", candidate_id, inserted_candidate),
            )
        ]
        _expect(
            inserted_baseline == EVENTS_PER_RELEASE and inserted_candidate == EVENTS_PER_RELEASE,
            f"expected {EVENTS_PER_RELEASE} + {EVENTS_PER_RELEASE} inserted events, "
            f"got {inserted_baseline} + {inserted_candidate}",
        )

        started = time.perf_counter()
        try:
            diff: JsonDict = client.post_diff(
                baseline_release_id=baseline_id,
                candidate_release_id=candidate_id,
                window=WINDOW,
                environment=target.environment,
            )
        except httpx.HTTPStatusError as exc:
            if target.existing and "Pricing table missing model entry" in exc.response.text:
                raise DemoError(
                    f"the releases' pricing tables have no price for {target.provider}/"
                    f"{target.model}; pass --model PROVIDER/MODEL with a priced model "
                    f"(the demo's events stay in environment {target.environment})"
                ) from exc
            raise
        samples: JsonDict = diff["samples"]
        report.step(
            6,
            f'post_diff(window="{WINDOW}"): {samples["baseline_runs"]} vs '
            f"{samples['candidate_runs']} runs, confidence {samples['confidence']} "
            f"({_ms(started)})",
        )
        data["diff"] = {k: diff.get(k) for k in ("filters", "samples", "metrics", "policy")}
        _expect(
            samples["baseline_runs"] == EVENTS_PER_RELEASE
            and samples["candidate_runs"] == EVENTS_PER_RELEASE,
            f"the diff window should hold {EVENTS_PER_RELEASE} runs per release, got "
            f"{samples['baseline_runs']} / {samples['candidate_runs']}",
        )

        started = time.perf_counter()
        promotions: list[JsonDict] = []
        if workspace.get("promotion_requires_approval"):
            report.step(7, "promotions skipped: the workspace requires approval for them")
        else:
            first = _promote(client, target, baseline_id, "demo: first rollout of the baseline")
            _expect(first["passed"], f"promoting the baseline failed: {first!r}")
            second = _promote(client, target, candidate_id, "demo: try the candidate")
            if not target.existing:
                _expect(
                    second["status"] == 409,
                    f"the candidate promotion was expected to be blocked: {second!r}",
                )
            promotions = [first, second]
            verdict = "passed" if second["passed"] else f"HTTP {second['status']} blocked"
            report.step(
                7, f"promote baseline: passed; promote candidate: {verdict} ({_ms(started)})"
            )
        data["promotions"] = promotions

        started = time.perf_counter()
        actions: list[JsonDict] = client.list_actions(
            agent_id=agent_id, environment=target.environment
        )["actions"]
        promoted: list[JsonDict] = client.list_promoted()["promoted"]
        report.step(8, f"list_actions: {len(actions)} audit actions ({_ms(started)})")
        data["actions"] = actions
        data["promoted"] = [
            p
            for p in promoted
            if p.get("environment") == target.environment and p.get("agent_id") == agent_id
        ]

    _expect(
        len(actions) >= len(promotions),
        f"expected {len(promotions)} audit actions, got {actions!r}",
    )
    if not report.json:
        _print_summary(target, data)


def _print_summary(target: _Target, data: JsonDict) -> None:
    diff: JsonDict = data["diff"]
    samples: JsonDict = diff["samples"]
    metrics: JsonDict = diff["metrics"]
    policy: JsonDict = diff["policy"]
    live = {str(p.get("release_id")) for p in data["promoted"]}

    print()
    print("Releases")
    print(
        _table(
            ["role", "release_id", "version", "events", "promoted"],
            [
                [
                    r["role"],
                    r["release_id"],
                    r["version"],
                    str(r["inserted"]),
                    "yes" if r["release_id"] in live else "no",
                ]
                for r in data["releases"]
            ],
        )
    )

    pct = metrics.get("delta_cost_per_run_pct")
    pct_text = f" ({_num(pct * 100, '.1f', signed=True)}%)" if isinstance(pct, int | float) else ""
    print()
    print(f"Diff (window {WINDOW}, environment {(diff.get('filters') or {}).get('environment')})")
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

    rows = [
        [
            "diff policy (candidate vs baseline)",
            "passed" if policy.get("passed") else "blocked",
            "; ".join(str(r) for r in policy.get("reasons", [])) or "-",
        ]
    ]
    for role, promotion in zip(("baseline", "candidate"), data["promotions"], strict=False):
        rows.append(
            [
                f"promote {role} (HTTP {promotion['status']})",
                "passed" if promotion["passed"] else "blocked",
                "; ".join(promotion["reasons"]) or "-",
            ]
        )
    print()
    print("Policy verdicts")
    print(_table(["check", "verdict", "reasons"], rows))

    print()
    print(f"Audit actions for {data['agent_id']}/{target.environment} (newest first)")
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
                for a in data["actions"]
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


def _split_model(text: str) -> tuple[str, str]:
    provider, sep, model = text.partition("/")
    if not sep or not provider or not model:
        raise DemoUsageError(f"--model must look like PROVIDER/MODEL, got {text!r}")
    return provider, model


def run_demo(
    *,
    url: str | None = None,
    token: str | None = None,
    baseline: str | None = None,
    candidate: str | None = None,
    model: str = DEFAULT_MODEL,
    json_output: bool = False,
    timeout_s: float = 30.0,
) -> int:
    """Run the demo and return the process exit status.

    Args:
        url: An existing server to drive; ``None`` starts a throwaway ``flightdeck serve``.
        token: Bearer token for ``url``.
        baseline: Registered baseline release id (required with ``url``, else not allowed).
        candidate: Registered candidate release id (required with ``url``, else not allowed).
        model: ``PROVIDER/MODEL`` of the events; must be priced in the releases' tables.
        json_output: Print one JSON object instead of text.
        timeout_s: Per-request timeout.

    Returns:
        0 on success, 1 when a step failed, 2 for a usage error, 130 when interrupted.
    """
    report = _Report(json=json_output)
    server: FlightdeckServer | None = None
    code = EXIT_OK
    error: str | None = None
    target: _Target | None = None
    try:
        provider, model_name = _split_model(model)
        if url is None:
            if baseline or candidate:
                raise DemoUsageError(
                    "--baseline and --candidate apply to an existing "
                    "server: pass --url too (without it the demo starts its own server)"
                )
            report.say("flightdeck_rs demo: the Rust-core client against a real `flightdeck serve`")
            server = FlightdeckServer()
            started = time.perf_counter()
            server.start()
            report.step(1, f"flightdeck serve ready at {server.base_url} ({_ms(started)})")
            target = _Target(
                base_url=server.base_url,
                token=None,
                baseline_id=server.baseline_id,
                candidate_id=server.candidate_id,
                environment=LOCAL_ENVIRONMENT,
                provider=provider,
                model=model_name,
                existing=False,
                timeout_s=timeout_s,
            )
        else:
            if not baseline or not candidate:
                raise DemoUsageError(
                    "--url needs --baseline REL_ID and --candidate REL_ID: two registered "
                    "releases of one agent (releases cannot be registered over HTTP; use "
                    "`flightdeck release register PATH` on the server's workspace)"
                )
            # Always a new environment: promotions there cannot move a real deployment's
            # pointer, and the first promotion in it passes by definition.
            env = f"flightdeck-rs-demo-{uuid.uuid4().hex[:8]}"
            report.say(f"flightdeck_rs demo: driving the existing server at {url}")
            report.step(1, f"existing server {url}: everything is written to environment {env}")
            target = _Target(
                base_url=url,
                token=token,
                baseline_id=baseline,
                candidate_id=candidate,
                environment=env,
                provider=provider,
                model=model_name,
                existing=True,
                timeout_s=timeout_s,
            )
        _run(target, report)
    except DemoUsageError as exc:
        code, error = EXIT_USAGE, str(exc)
    except DemoError as exc:
        code, error = EXIT_FAILED, str(exc)
    except httpx.HTTPStatusError as exc:
        code, error = EXIT_FAILED, _describe_http_error(exc)
    except httpx.RequestError as exc:
        code, error = EXIT_FAILED, _describe_request_error(exc)
    except KeyboardInterrupt:
        code, error = EXIT_INTERRUPTED, "interrupted"
    except Exception as exc:  # anything else: say what it was, with the traceback
        traceback.print_exc()
        code, error = EXIT_FAILED, f"{type(exc).__name__}: {exc}"
    finally:
        if server is not None:
            try:
                server.stop()
            except Exception as exc:
                print(f"warning: stopping flightdeck serve failed: {exc}", file=sys.stderr)

    if json_output:
        payload: JsonDict = {
            "command": "demo",
            "ok": code == EXIT_OK,
            "exit_code": code,
            "server": "existing" if url is not None else "throwaway",
            "url": target.base_url if target is not None else url,
            **report.data,
            "steps": report.steps,
        }
        if error is not None:
            payload["error"] = error
        print(json.dumps(payload), flush=True)
    if error is not None:
        if code == EXIT_INTERRUPTED:
            print("\ndemo interrupted", file=sys.stderr)
        elif code == EXIT_USAGE:
            print(f"flightdeck-rs demo: error: {error}", file=sys.stderr)
        else:
            print(f"\ndemo FAILED: {error}", file=sys.stderr)
    elif not json_output and target is not None:
        if target.existing:
            print(f"\ndemo OK: everything it wrote is in environment {target.environment}")
        else:
            print("\ndemo OK: server stopped, temporary workspace removed")
    return code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's own options (shared by ``flightdeck-rs demo`` and ``-m flightdeck_rs.demo``)."""
    parser.add_argument(
        "--baseline",
        metavar="RELEASE_ID",
        help="with --url: a registered release to use as the baseline",
    )
    parser.add_argument(
        "--candidate",
        metavar="RELEASE_ID",
        help="with --url: a registered release of the same agent to use as the candidate",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="PROVIDER/MODEL",
        help="model of the demo's events, priced in the releases' tables "
        f"(default: {DEFAULT_MODEL})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flightdeck_rs.demo [--url URL --baseline R --candidate R] [--json]``."""
    parser = argparse.ArgumentParser(
        prog="python -m flightdeck_rs.demo",
        description="End-to-end demo against a throwaway `flightdeck serve`, or with --url "
        "against an existing server (two registered releases; everything is written to a new "
        "environment).",
    )
    parser.add_argument("--url", help="drive this existing server instead of a throwaway one")
    parser.add_argument("--token", help=f"bearer token for --url (default: ${TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_arguments(parser)
    args = parser.parse_args(argv)
    token = args.token
    if token is None and args.url is not None:
        token = os.environ.get(TOKEN_ENV) or None
    return run_demo(
        url=args.url,
        token=token,
        baseline=args.baseline,
        candidate=args.candidate,
        model=args.model,
        json_output=args.json,
    )


if __name__ == "__main__":
    raise SystemExit(main())
