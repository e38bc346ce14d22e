#!/usr/bin/env python3
"""Cost of ``Emitter.emit()`` with the durable spool off, ``async`` and ``sync`` (issue 5).

For each spool mode and each server state, a fresh emitter gets ``--n`` prebuilt ~1 KB
``RunEvent`` objects (distinct run_ids) in a tight loop; every call is timed with
``perf_counter_ns`` (GC disabled while timing). The table shows p50 / p99 / p99.9 / max in µs,
the median over ``--rounds`` rounds, plus how many events were accepted.

Server states:

* ``healthy``: the Rust stub of ``bench/stub-server`` (prebuilt release binary; falls back to a
  real ``flightdeck serve`` when the stub is not built). The sender keeps up, so the queue
  stays short;
* ``down``: a closed loopback port. Everything stays queued (queue bounds raised so that the
  spool-off rows drop nothing; with a spool, the backlog is on disk and the async sender
  moves the memory queue there every tick). ``bench/spool_outage_bench.py`` measures a
  1,000,000-event outage with the default limits.

The spool directory is a fresh temporary directory under ``--dir`` (default: the system temp
dir; note its filesystem: tmpfs hides the cost of ``write(2)`` on a real disk).
Only 127.0.0.1 is contacted. Nothing is asserted; this prints numbers.

Usage: ``python bench/spool_bench.py [--n 100000] [--rounds 5] [--dir PATH] [--json FILE]``
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flightdeck_rs import Emitter
from flightdeck_rs.models import RunEvent

BENCH_DIR = Path(__file__).resolve().parent
STUB_BIN = BENCH_DIR / "stub-server" / "target" / "release" / "flightdeck-stub-server"
MODES = ("off", "async", "sync")
STATES = ("healthy", "down")


@contextlib.contextmanager
def healthy_server() -> Iterator[tuple[str, str]]:
    """Yields ``(base_url, release_id)`` of the stub (or of a real server)."""
    if STUB_BIN.is_file():
        proc = subprocess.Popen(
            [str(STUB_BIN), "0"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        try:
            assert proc.stdout is not None
            port = proc.stdout.readline().decode().strip()
            if not port.isdigit():
                raise RuntimeError(f"stub server did not print its port (got {port!r})")
            yield f"http://127.0.0.1:{port}", "rel_bench"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return
    from flightdeck_rs._server import FlightdeckServer

    with FlightdeckServer() as srv:
        yield srv.base_url, srv.baseline_id


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def make_events(n: int, release_id: str, tag: str) -> list[Any]:
    ts = datetime.now(UTC) - timedelta(seconds=5)
    base = {
        "timestamp": ts,
        "agent_id": "agent_support",
        "release_id": release_id,
        "tenant_id": "tenant_acme",
        "task_id": "task_support",
        "environment": "bench",
        "usage": {
            "model": {
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "input_tokens": 1000,
                "output_tokens": 500,
            }
        },
        "metrics": {"success": True, "latency_ms": 900},
        "labels": {"pad": "x" * 560},  # ~1 KB on the wire
    }
    return [RunEvent(**base, run_id=f"{tag}-{i:07d}") for i in range(n)]


def pct(sorted_ns: list[int], q: float) -> float:
    i = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[i] / 1000.0


def one_round(
    url: str, mode: str, events: list[Any], spool_parent: str, close_s: float
) -> dict[str, Any]:
    spool = tempfile.mkdtemp(prefix="spool-bench-", dir=spool_parent) if mode != "off" else None
    em = Emitter(
        url,
        spool_dir=spool,
        spool_mode="async" if mode == "off" else mode,
        max_queue_events=10**7,
        max_queue_bytes=2**31,
        flush_interval_s=0.05,
        backoff_base_s=0.05,
        backoff_max_s=0.2,
        atexit_timeout_s=0,
    )
    timings = [0] * len(events)
    accepted = 0
    emit = em.emit
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i, e in enumerate(events):
            t0 = clock()
            ok = emit(e)
            timings[i] = clock() - t0
            accepted += ok
    finally:
        gc.enable()
    em.close(close_s)
    s = em.stats()
    if spool is not None:
        with contextlib.suppress(OSError):
            for name in os.listdir(spool):
                os.unlink(os.path.join(spool, name))
            os.rmdir(spool)
    timings.sort()
    return {
        "p50_us": pct(timings, 0.50),
        "p99_us": pct(timings, 0.99),
        "p999_us": pct(timings, 0.999),
        "max_us": timings[-1] / 1000.0,
        "mean_us": statistics.fmean(timings) / 1000.0,
        "accepted": accepted,
        "acked": s["acked"],
        "spool_full": s["dropped"]["spool_full"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="emits per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="parent of the spool dirs")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    # close() in the 'down' rows logs what it kept or dropped; that is expected here.
    logging.getLogger("flightdeck_rs").setLevel(logging.ERROR)

    results: dict[str, dict[str, Any]] = {}
    t_start = time.monotonic()
    with healthy_server() as (healthy_url, release_id):
        urls = {"healthy": healthy_url, "down": f"http://127.0.0.1:{closed_port()}"}
        for state in STATES:
            for mode in MODES:
                rounds = []
                for r in range(args.rounds):
                    events = make_events(args.n, release_id, f"bench-{state}-{mode}-{r}")
                    url = urls[state]
                    close_s = 10.0 if state == "healthy" else 0.2
                    rounds.append(one_round(url, mode, events, args.dir, close_s))
                    del events
                summary = {
                    k: statistics.median(x[k] for x in rounds)
                    for k in ("p50_us", "p99_us", "p999_us", "max_us", "mean_us")
                }
                summary["accepted"] = min(x["accepted"] for x in rounds)
                summary["rounds"] = rounds
                results[f"{state}/{mode}"] = summary
                print(
                    f"  {state:8s} {mode:6s} p50 {summary['p50_us']:7.2f} µs  "
                    f"p99 {summary['p99_us']:7.2f} µs",
                    file=sys.stderr,
                    flush=True,
                )

    print()
    print(
        f"emit() cost, {args.n} prebuilt ~1 KB RunEvents per round, median of {args.rounds} "
        f"rounds (python {platform.python_version()}, {os.cpu_count()} cores, "
        f"spool under {args.dir})"
    )
    head = f"{'server':8s} {'spool':6s} {'p50 µs':>8s} {'p99 µs':>8s} {'p99.9 µs':>9s} "
    head += f"{'max µs':>9s} {'mean µs':>8s} {'accepted':>9s}"
    print(head)
    print("-" * len(head))
    for key, s in results.items():
        state, mode = key.split("/")
        print(
            f"{state:8s} {mode:6s} {s['p50_us']:8.2f} {s['p99_us']:8.2f} {s['p999_us']:9.1f} "
            f"{s['max_us']:9.0f} {s['mean_us']:8.2f} {s['accepted']:9d}"
        )
    print(f"\n(elapsed {time.monotonic() - t_start:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
