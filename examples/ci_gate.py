"""CI gate: diff a candidate release against its baseline, check the policy, then promote.

Run it as a deployment step; it exits non-zero when the promotion is blocked, so the
pipeline stops there::

    python examples/ci_gate.py --baseline rel_aaa --candidate rel_bbb \\
        --environment production --window 24h --reason "deploy $GIT_SHA"

Steps:

1. ``POST /v1/diff``: cost, latency and error rate of the candidate against the baseline,
   printed as a table.
2. Policy: the workspace policy's verdict on that diff (``diff["policy"]``). A failed verdict
   blocks here, before anything is changed.
3. ``POST /v1/promote``: the server evaluates the policy again and moves the promoted
   pointer; an HTTP 409 means it blocked the promotion.

Exit status: 0 promoted (or, with ``--dry-run``, would be promoted), 1 blocked by the
policy, 2 any other failure (server unreachable, bad token, unknown release, ...).

``--url`` defaults to ``$FLIGHTDECK_URL`` (else ``http://127.0.0.1:8765``) and ``--token`` to
``$FLIGHTDECK_LOCAL_API_TOKEN``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from flightdeck_rs import FlightdeckClient

PROMOTED, BLOCKED, FAILED = 0, 1, 2


def _fmt(value: object, spec: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return format(value, spec)


def print_diff(diff: dict[str, Any]) -> None:
    """Prints the diff's metrics as a small table.

    Args:
        diff: The answer of ``post_diff``.
    """
    m = diff.get("metrics", {})
    s = diff.get("samples", {})
    rows = [
        ("metric", "baseline", "candidate", "delta"),
        (
            "cost/run USD",
            _fmt(m.get("baseline_cost_per_run_usd"), ".4f"),
            _fmt(m.get("candidate_cost_per_run_usd"), ".4f"),
            _fmt(m.get("delta_cost_per_run_usd"), "+.4f"),
        ),
        (
            "latency ms",
            _fmt(m.get("baseline_latency_ms_avg"), ".1f"),
            _fmt(m.get("candidate_latency_ms_avg"), ".1f"),
            _fmt(m.get("delta_latency_ms_avg"), "+.1f"),
        ),
        (
            "error rate",
            _fmt(m.get("baseline_error_rate"), ".3f"),
            _fmt(m.get("candidate_error_rate"), ".3f"),
            _fmt(m.get("delta_error_rate"), "+.3f"),
        ),
        (
            "runs",
            str(s.get("baseline_runs")),
            str(s.get("candidate_runs")),
            f"confidence {s.get('confidence')}",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def gate(client: FlightdeckClient, args: argparse.Namespace) -> int:
    """Runs diff -> policy -> promote.

    Args:
        client: A connected client.
        args: The parsed command line.

    Returns:
        ``PROMOTED`` (0), ``BLOCKED`` (1) or ``FAILED`` (2).
    """
    print(f"diff {args.candidate} vs {args.baseline} ({args.environment}, {args.window})")
    diff = client.post_diff(
        baseline_release_id=args.baseline,
        candidate_release_id=args.candidate,
        window=args.window,
        environment=args.environment,
    )
    print_diff(diff)

    policy = diff.get("policy", {})
    reasons = [str(r) for r in policy.get("reasons", [])]
    if not policy.get("passed"):
        print("BLOCKED by policy:")
        for reason in reasons:
            print(f"  - {reason}")
        return BLOCKED
    print("policy passed" + (f" ({'; '.join(reasons)})" if reasons else ""))

    if args.dry_run:
        print("--dry-run: not promoting")
        return PROMOTED
    try:
        result = client.post_promote(
            release_id=args.candidate,
            environment=args.environment,
            window=args.window,
            reason=args.reason,
            actor=args.actor,
        )
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 409:
            raise
        detail = exc.response.json().get("detail", {})
        outcome = detail.get("outcome", {}) if isinstance(detail, dict) else {}
        print(f"BLOCKED by the server: {detail.get('message') if outcome else detail}")
        for reason in outcome.get("policy", {}).get("reasons", []):
            print(f"  - {reason}")
        return BLOCKED
    changed = result.get("promoted_pointer_changed")
    print(f"PROMOTED {args.candidate} to {args.environment} (pointer changed: {changed})")
    return PROMOTED


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line and runs the gate.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("FLIGHTDECK_URL", "http://127.0.0.1:8765"))
    parser.add_argument("--token", default=os.environ.get("FLIGHTDECK_LOCAL_API_TOKEN"))
    parser.add_argument("--baseline", required=True, help="release id of the current release")
    parser.add_argument("--candidate", required=True, help="release id to promote")
    parser.add_argument("--environment", required=True)
    parser.add_argument("--window", default="24h", help="diff window (default: 24h)")
    parser.add_argument("--reason", default="ci gate", help="reason recorded in the audit log")
    parser.add_argument("--actor", default="ci", help="actor recorded in the audit log")
    parser.add_argument("--dry-run", action="store_true", help="diff and policy only")
    args = parser.parse_args(argv)
    token = args.token.strip() if args.token else None

    try:
        with FlightdeckClient(args.url, api_token=token or None, timeout_s=30.0) as client:
            return gate(client, args)
    except httpx.HTTPStatusError as exc:
        print(
            f"error: {exc.request.method} {exc.request.url.path} answered "
            f"HTTP {exc.response.status_code}: {exc.response.text.strip()[:300]}",
            file=sys.stderr,
        )
    except httpx.RequestError as exc:
        print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
    return FAILED


if __name__ == "__main__":
    raise SystemExit(main())
