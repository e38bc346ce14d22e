#!/usr/bin/env python3
"""Added cost of a tracked run on the agent's thread: ``make bench``'s ``track`` rows.

Each contender does, per run, what an agent would do to report one run with one LLM call,
timed call by call with ``perf_counter_ns``:

- ``ours``: ``with emitter.run(...) as run: run.add_model_usage(...)`` -- enter, one
  ``add_model_usage``, exit, build and ``emit()`` the event (queued; a Rust thread sends it
  to the stub server in batches). The decorator form (``@emitter.track``) is measured too and
  reported in the results (``decorator``).
- ``reference``: the glue the reference leaves to the user: note the start, make a
  ``uuid4`` run id, build a pydantic ``flightdeck.models.RunEvent`` and send it with
  ``FlightdeckClient.ingest_run_events([event])`` (a blocking HTTP call per run).
- ``limit``: the same glue written by hand on our emitter (a plain dict event with a
  ``uuid4`` run id, ``emitter.emit(dict)``): the floor of what the context manager adds to.

The added cost is the contender's percentile minus the same percentile of an empty function
timed the same way (so the timer's own cost cancels out). Reported: the median over the
repeats of the added p50 and of the added p99, in µs per run. Target: p50 <= 10 µs and
p99 <= 50 µs for ``ours``.

Standalone: ``python bench/track_bench.py [--quick]`` (needs the stub server built; see
``bench/run.py``). Only servers started here, on 127.0.0.1, are contacted.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

FULL_N, FULL_REPS, REF_N = 20_000, 5, 2_000
QUICK_N, QUICK_REPS, QUICK_REF_N = 300, 1, 50
P50_TARGET_US, P99_TARGET_US = 10.0, 50.0

IDS = {
    "agent_id": "agent_support",
    "release_id": "rel_track_bench",
    "tenant_id": "tenant_acme",
    "task_id": "resolve_ticket",
    "environment": "bench",
}
MODEL = ("openai", "gpt-4.1-mini")


def _percentiles(samples: list[int]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] / 1000.0, s[min(len(s) - 1, (len(s) * 99) // 100)] / 1000.0


def _time_calls(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """p50 and p99 in µs of ``n`` calls of ``fn``, each timed on its own."""
    clock = time.perf_counter_ns
    samples = [0] * n
    for _ in range(min(200, n)):  # warm-up: first-call costs are not per-run costs
        fn()
    gc.collect()
    for k in range(n):
        t0 = clock()
        fn()
        samples[k] = clock() - t0
    return _percentiles(samples)


def _empty() -> None:
    return None


def w_track(url: str, quick: bool, checks: Any) -> dict[str, Any]:
    """Runs the workload against the stub server at ``url``; returns the results dict
    (``samples`` of the added p50 per contender, ``p99`` likewise)."""
    import flightdeck.models
    import flightdeck.sdk

    from flightdeck_rs import Emitter, current_run

    n, reps, ref_n = (QUICK_N, QUICK_REPS, QUICK_REF_N) if quick else (FULL_N, FULL_REPS, REF_N)
    provider, model = MODEL
    em = Emitter(url, atexit_timeout_s=0)
    ref_client = flightdeck.sdk.FlightdeckClient(url)
    RefRunEvent = flightdeck.models.RunEvent
    inserted: list[int] = []

    def ours() -> None:
        with em.run(**IDS) as run:
            run.add_model_usage(provider, model, 1200, 300)

    @em.track(**IDS)
    def decorated() -> None:
        run = current_run()
        if run is not None:
            run.add_model_usage(provider, model, 1200, 300)

    def limit() -> None:
        ts = datetime.now(UTC)
        t0 = time.perf_counter_ns()
        em.emit(
            {
                "timestamp": ts,
                **IDS,
                "run_id": str(uuid.uuid4()),
                "metrics": {
                    "latency_ms": (time.perf_counter_ns() - t0) // 1_000_000,
                    "success": True,
                },
                "usage": {
                    "model": {
                        "provider": provider,
                        "model": model,
                        "input_tokens": 1200,
                        "output_tokens": 300,
                    }
                },
            }
        )

    def reference() -> None:
        ts = datetime.now(UTC)
        t0 = time.perf_counter()
        event = RefRunEvent(
            timestamp=ts,
            **IDS,
            run_id=str(uuid.uuid4()),
            metrics={"success": True, "latency_ms": int((time.perf_counter() - t0) * 1000)},
            usage={
                "model": {
                    "provider": provider,
                    "model": model,
                    "input_tokens": 1200,
                    "output_tokens": 300,
                }
            },
        )
        inserted.append(ref_client.ingest_run_events([event]))

    contenders: dict[str, tuple[Callable[[], Any], int]] = {
        "ours": (ours, n),
        "decorator": (decorated, n),
        "limit": (limit, n),
        "reference": (reference, ref_n),
    }
    names = list(contenders)
    p50: dict[str, list[float]] = {k: [] for k in names}
    p99: dict[str, list[float]] = {k: [] for k in names}
    empty: list[tuple[float, float]] = []
    try:
        for r in range(reps):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn, count = contenders[name]
                base = _time_calls(_empty, count)
                got = _time_calls(fn, count)
                empty.append(base)
                p50[name].append(max(0.0, got[0] - base[0]))
                p99[name].append(max(0.0, got[1] - base[1]))
                em.flush(30.0)  # untimed: the next contender starts with an empty queue
        em.flush(30.0)
        stats = em.stats()
    finally:
        em.close(10.0)
        ref_client.close()
    emitted = reps * 3 * (n + min(200, n))
    checks.expect("track: runs accepted by the emitter", "ours", stats["accepted"], emitted)
    checks.expect("track: runs acknowledged by the stub", "ours", stats["acked"], emitted)
    checks.expect("track: runs dropped", "ours", sum(stats["dropped"].values()), 0)
    track_problems = {k: v for k, v in stats.items() if k.startswith("track_") and v}
    checks.expect("track: tracking problems", "ours", track_problems, {})
    checks.expect("track: reference ingest_run_events results", "reference", set(inserted), {1})
    return {
        "unit": "µs/run",
        "better": "lower",
        "samples": {k: p50[k] for k in ("reference", "ours", "limit")},
        "p99": {
            "unit": "µs/run",
            "better": "lower",
            "samples": {k: p99[k] for k in ("reference", "ours", "limit")},
        },
        "decorator": {"p50": p50["decorator"], "p99": p99["decorator"]},
        "empty_function": {"p50": [e[0] for e in empty], "p99": [e[1] for e in empty]},
        "runs_per_repeat": {"ours": n, "decorator": n, "limit": n, "reference": ref_n},
        "targets_us": {"p50": P50_TARGET_US, "p99": P99_TARGET_US},
    }


def main() -> int:
    import argparse
    import statistics

    from run import Checks, build_stub, stub_server

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo for the stub")
    args = ap.parse_args()
    if not args.no_build:
        build_stub()
    checks = Checks()
    with stub_server() as url:
        w = w_track(url, args.quick, checks)
    med = statistics.median
    print(f"added cost per run vs an empty function (median of {len(w['samples']['ours'])})")
    print(f"  {'contender':<11} {'p50 µs':>10} {'p99 µs':>10}")
    for name in ("ours", "limit", "reference"):
        print(
            f"  {name:<11} {med(w['samples'][name]):>10.2f} {med(w['p99']['samples'][name]):>10.2f}"
        )
    dec = w["decorator"]
    print(f"  {'decorator':<11} {med(dec['p50']):>10.2f} {med(dec['p99']):>10.2f}")
    failed = checks.failed
    print(f"correctness: {len(checks.rows) - len(failed)} of {len(checks.rows)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
