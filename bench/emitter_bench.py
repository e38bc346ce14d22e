#!/usr/bin/env python3
"""Background emitter benchmark: the numbers issue 4 asks for.

1. latency     ``emit()`` per call, p50 / p99 / p99.9 in µs, for our ``RunEvent`` and for a
               ~1 KB dict, with the server healthy (a real ``flightdeck serve``, bursts of
               5,000 then an untimed flush) and down (a closed loopback port, the same bursts,
               each into a fresh emitter), plus the drop path (down, queue full).
               Target: p99 <= 50 µs, and no change when the server is down.
2. throughput  N events (50,000) emitted into a real ``flightdeck serve`` and ``close()``:
               events/s from the first ``emit()`` until ``close()`` returns (every event
               acknowledged; the count is verified with ``GET /v1/runs``).
3. memory      RSS growth of a fresh process emitting 1M events while the server is down,
               default queue limits; and the worst case for the byte cap (~2 KB events,
               ``max_queue_events`` raised so the 16 MiB ``max_queue_bytes`` binds).
               Target: growth <= max_queue_bytes + 8 MiB.

Outputs: a table on stdout and ``bench/out/emitter.json`` (``bench/out/quick/emitter.json``
with ``--quick``, which runs small sizes in < 20 s: a smoke test, not a measurement).
Only servers started here, on 127.0.0.1, are contacted.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
MiB = 1024 * 1024
DEFAULT_QUEUE_BYTES = 16 * MiB
P99_TARGET_US = 50.0
LATENCY_PAD = 300  # ~1 KB encoded events, the size G1's budget is stated for
SCENARIOS = ("healthy", "down", "down, queue full")

# Loopback only: never let a proxy from the environment see the benchmark's traffic.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


@dataclass(frozen=True)
class Sizes:
    latency_rounds: int  # interleaved repeats of every latency scenario (median reported)
    latency_n: int  # timed emit() calls per scenario and event kind, per round
    burst: int  # healthy server: emits per burst before an untimed flush
    throughput_n: int
    memory_n: int


FULL = Sizes(
    latency_rounds=3, latency_n=100_000, burst=5_000, throughput_n=50_000, memory_n=1_000_000
)
QUICK = Sizes(latency_rounds=1, latency_n=5_000, burst=2_500, throughput_n=5_000, memory_n=100_000)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def event_kwargs(
    release_id: str, run_id: str, environment: str = "bench", pad: int = 0
) -> dict[str, Any]:
    """A run event like an agent would send; ``pad`` adds label bytes (~1 KB at 300)."""
    labels = {f"label_{k}": f"value-{k}-{'x' * 24}" for k in range(4)}
    if pad:
        labels["pad"] = "p" * pad
    return {
        "timestamp": datetime.now(UTC) - timedelta(seconds=30),
        "agent_id": "agent_support",
        "release_id": release_id,
        "run_id": run_id,
        "tenant_id": "tenant_acme",
        "task_id": "task_support",
        "environment": environment,
        "request": {"trace_id": f"tr-{run_id}", "session_id": "sess-1", "span_id": "span-1"},
        "usage": {
            "model": {
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "input_tokens": 1000,
                "output_tokens": 500,
            }
        },
        "metrics": {"success": True, "latency_ms": 900},
        "labels": labels,
    }


def event_bytes() -> int:
    """Encoded size of the events timed by the latency workload."""
    from flightdeck_rs.models import RunEvent

    return len(RunEvent(**event_kwargs("rel_bench", "lat-x-0", pad=LATENCY_PAD)).model_dump_json())


def percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    i = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[i] / 1000.0


def summarize(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {
        "n": len(s),
        "p50_us": percentile(s, 0.50),
        "p99_us": percentile(s, 0.99),
        "p999_us": percentile(s, 0.999),
        "max_us": s[-1] / 1000.0,
        "mean_us": sum(s) / len(s) / 1000.0,
    }


def timer_overhead_ns() -> float:
    pc = time.perf_counter_ns
    samples = []
    for _ in range(100_000):
        t0 = pc()
        samples.append(pc() - t0)
    samples.sort()
    return float(samples[len(samples) // 2])


def time_emits(em: Any, events: list[Any]) -> tuple[list[int], int]:
    """Times each ``emit()``; returns the samples (ns) and how many were accepted."""
    pc = time.perf_counter_ns
    emit = em.emit
    out: list[int] = []
    append = out.append
    accepted = 0
    for e in events:
        t0 = pc()
        ok = emit(e)
        append(pc() - t0)
        accepted += ok
    return out, accepted


def build_events(kind: str, n: int, release_id: str, tag: str, env: str) -> list[Any]:
    from flightdeck_rs.models import RunEvent

    kws = (event_kwargs(release_id, f"{tag}-{i}", env, pad=LATENCY_PAD) for i in range(n))
    if kind == "RunEvent":
        return [RunEvent(**kw) for kw in kws]
    return list(kws)


# ----------------------------------------------------------------------------- latency


def measure_latency(
    sz: Sizes, url: str, release_id: str, scenario: str, kind: str, tag: str
) -> dict[str, Any]:
    """One scenario x event kind: ``latency_n`` timed ``emit()`` calls."""
    from flightdeck_rs import Emitter

    events = build_events(kind, sz.latency_n, release_id, tag, f"bench-{tag}")
    samples: list[int] = []
    accepted = acked = dropped_full = 0
    gc.collect()
    gc.disable()
    try:
        if scenario == "healthy":
            em = Emitter(url, atexit_timeout_s=0)
            for i in range(0, len(events), sz.burst):
                got, ok = time_emits(em, events[i : i + sz.burst])
                samples += got
                accepted += ok
                if not em.flush(timeout_s=120.0):
                    raise RuntimeError(f"flush timed out: {em.stats()}")
            em.close(30.0)
            acked = em.stats()["acked"]
        elif scenario == "down":
            # The same bursts as "healthy"; a fresh emitter per burst keeps the queue as
            # short as there, so only the server differs.
            url_down = f"http://127.0.0.1:{closed_port()}"
            for i in range(0, len(events), sz.burst):
                em = Emitter(url_down, atexit_timeout_s=0)
                got, ok = time_emits(em, events[i : i + sz.burst])
                samples += got
                accepted += ok
                em.close(0.0)
                dropped_full += em.stats()["dropped_queue_full"]
        else:  # default limits, filled first: every timed call is a drop
            em = Emitter(f"http://127.0.0.1:{closed_port()}", atexit_timeout_s=0)
            time_emits(em, build_events(kind, 10_100, release_id, f"{tag}-fill", "fill"))
            samples, accepted = time_emits(em, events)
            em.close(0.0)
            dropped_full = em.stats()["dropped_queue_full"]
    finally:
        gc.enable()
    row: dict[str, Any] = summarize(samples)
    row.update(accepted=accepted, acked=acked, dropped_queue_full=dropped_full)
    return row


def bench_latency(sz: Sizes, url: str, release_id: str, rounds: int) -> dict[str, Any]:
    """Every scenario and kind, ``rounds`` times interleaved; the median of each statistic."""
    per_round: dict[str, dict[str, list[dict[str, Any]]]] = {}
    run = uuid.uuid4().hex[:8]
    for r in range(rounds):
        for scenario in SCENARIOS:
            for kind in ("RunEvent", "dict"):
                tag = f"lat-{run}-{r}-{scenario[:4]}-{kind}"
                row = measure_latency(sz, url, release_id, scenario, kind, tag)
                per_round.setdefault(scenario, {}).setdefault(kind, []).append(row)
                print(
                    f"  round {r + 1}/{rounds} {scenario:17} {kind:8} "
                    f"p50 {row['p50_us']:6.2f} µs  p99 {row['p99_us']:6.2f} µs  "
                    f"accepted {row['accepted']}",
                    flush=True,
                )
    results: dict[str, Any] = {}
    for scenario, kinds in per_round.items():
        results[scenario] = {}
        for kind, rows in kinds.items():
            med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            med["rounds"] = rows
            results[scenario][kind] = med
    return results


# ----------------------------------------------------------------------------- throughput


def bench_throughput(sz: Sizes, srv: Any, batch: int) -> dict[str, Any]:
    from flightdeck_rs import Emitter
    from flightdeck_rs.sdk import FlightdeckClient

    env = f"bench-tp-{uuid.uuid4().hex[:8]}"
    events = build_events("RunEvent", sz.throughput_n, srv.baseline_id, env, env)
    gc.collect()
    em = Emitter(
        srv.base_url,
        max_queue_events=sz.throughput_n + 1,
        max_queue_bytes=1024 * MiB,
        max_batch_events=batch,
        atexit_timeout_s=0,
    )
    t0 = time.perf_counter()
    for e in events:
        em.emit(e)
    t_emit = time.perf_counter() - t0
    closed = em.close(timeout_s=600.0)
    elapsed = time.perf_counter() - t0
    s = em.stats()
    with FlightdeckClient(srv.base_url, timeout_s=60.0) as client:
        matched = client.list_runs(release_id=srv.baseline_id, window="1h", environment=env)[
            "matched_total"
        ]
    ok = closed and s["acked"] == sz.throughput_n and matched == sz.throughput_n
    row = {
        "n": sz.throughput_n,
        "max_batch_events": batch,
        "events_per_s": sz.throughput_n / elapsed,
        "seconds": elapsed,
        "emit_phase_s": t_emit,
        "requests": s["requests"],
        "retries": s["retries"],
        "server_matched_total": matched,
        "all_delivered": ok,
    }
    print(
        f"  batch {batch:4}: {row['events_per_s']:8.0f} events/s "
        f"({sz.throughput_n} in {elapsed:.2f} s, {s['requests']} requests, verified={ok})",
        flush=True,
    )
    return row


# ----------------------------------------------------------------------------- memory

MEMORY_CHILD = """
import json, socket, sys, time
from flightdeck_rs import Emitter

n, pad, queue_events = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
event = json.loads(sys.argv[4])
event["labels"]["pad"] = "p" * pad

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
cfg = {"atexit_timeout_s": 0}
if queue_events:
    cfg["max_queue_events"] = queue_events
em = Emitter(f"http://127.0.0.1:{port}", **cfg)
base = status()["VmRSS"]
samples = []
t0 = time.perf_counter()
step = max(1, n // 20)
for i in range(n):
    event["run_id"] = f"mem-{i:09d}"
    em.emit(event)
    if i % step == 0:
        samples.append(status()["VmRSS"] - base)
elapsed = time.perf_counter() - t0
st = em.stats()
end = status()
em.close(0.0)
print(json.dumps({"base": base, "peak_growth": end["VmHWM"] - base,
                  "end_growth": end["VmRSS"] - base, "samples": samples, "elapsed_s": elapsed,
                  "stats": st}))
"""


def bench_memory(sz: Sizes, pad: int, queue_events: int, label: str) -> dict[str, Any]:
    template = event_kwargs("rel_memory", "x", pad=0)
    template["timestamp"] = template["timestamp"].isoformat()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MEMORY_CHILD,
            str(sz.memory_n),
            str(pad),
            str(queue_events),
            json.dumps(template),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    res = json.loads(done.stdout.strip().splitlines()[-1])
    st = res["stats"]
    target = DEFAULT_QUEUE_BYTES + 8 * MiB
    row = {
        "case": label,
        "n": sz.memory_n,
        "event_bytes": st["queue_bytes"] // max(1, st["queue_events"]),
        "max_queue_events": queue_events or 10_000,
        "max_queue_bytes": DEFAULT_QUEUE_BYTES,
        "queue_events": st["queue_events"],
        "queue_bytes": st["queue_bytes"],
        "in_flight": st["in_flight"],
        "accepted": st["accepted"],
        "dropped_queue_full": st["dropped_queue_full"],
        "peak_rss_growth_bytes": res["peak_growth"],
        "end_rss_growth_bytes": res["end_growth"],
        "rss_growth_samples": res["samples"],
        "target_bytes": target,
        "met": res["peak_growth"] <= target,
        "emit_s": res["elapsed_s"],
    }
    print(
        f"  {label}: peak RSS growth {row['peak_rss_growth_bytes'] / MiB:.1f} MiB "
        f"(queue {row['queue_bytes'] / MiB:.1f} MiB of {row['event_bytes']} B events; "
        f"target {target / MiB:.0f} MiB) {'MET' if row['met'] else 'MISS'}",
        flush=True,
    )
    return row


# ----------------------------------------------------------------------------- report


def table(results: dict[str, Any]) -> list[str]:
    ev_bytes = results["meta"]["latency_event_bytes"]
    rounds = results["meta"]["sizes"]["latency_rounds"]
    lines = [f"emit() latency (µs per call; {ev_bytes} B events; median of {rounds} rounds)", ""]
    lines.append(f"  {'scenario':18} {'event':9} {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>8}")
    for scenario, kinds in results["latency"].items():
        for kind, r in kinds.items():
            lines.append(
                f"  {scenario:18} {kind:9} {r['p50_us']:7.2f} {r['p99_us']:7.2f} "
                f"{r['p999_us']:7.2f} {r['max_us']:8.1f}"
            )
    lines.append(f"  (timer overhead ~{results['meta']['timer_overhead_ns']:.0f} ns, included)")
    lines += ["", "throughput into a real flightdeck serve (emit N, then close())", ""]
    for r in results["throughput"]:
        lines.append(
            f"  N={r['n']:>6}  max_batch_events={r['max_batch_events']:<4} "
            f"{r['events_per_s']:9.0f} events/s  ({r['seconds']:.2f} s, "
            f"{r['requests']} requests, all delivered: {r['all_delivered']})"
        )
    lines += ["", f"RSS during a {results['meta']['sizes']['memory_n']:,}-event outage", ""]
    for r in results["memory"]:
        lines.append(
            f"  {r['case']:34} peak growth {r['peak_rss_growth_bytes'] / MiB:6.1f} MiB  "
            f"queue {r['queue_bytes'] / MiB:5.1f} MiB ({r['queue_events']} x "
            f"{r['event_bytes']} B)  target <= {r['target_bytes'] / MiB:.0f} MiB  "
            f"{'MET' if r['met'] else 'MISS'}"
        )
    lines += ["", "targets", ""]
    for t in results["targets"]:
        lines.append(f"  [{'MET ' if t['met'] else 'MISS'}] {t['target']}: {t['value']}")
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    lat = results["latency"]
    for kind in ("RunEvent", "dict"):
        for scenario in ("healthy", "down"):
            p99 = lat[scenario][kind]["p99_us"]
            out.append(
                {
                    "target": f"emit() p99 <= {P99_TARGET_US:.0f} µs ({kind}, server {scenario})",
                    "value": f"{p99:.2f} µs",
                    "met": p99 <= P99_TARGET_US,
                }
            )
        h, d = lat["healthy"][kind]["p99_us"], lat["down"][kind]["p99_us"]
        out.append(
            {
                "target": f"no change when the server is down ({kind} p99 down / healthy)",
                "value": f"{d / h:.2f}x",
                "met": d <= h * 1.25 + 1.0,
            }
        )
    for r in results["memory"]:
        out.append(
            {
                "target": f"RSS growth <= max_queue_bytes + 8 MiB ({r['case']})",
                "value": f"{r['peak_rss_growth_bytes'] / MiB:.1f} MiB",
                "met": r["met"],
            }
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, < 20 s, not measurements")
    ap.add_argument("--out", type=Path, default=None, help="output directory")
    args = ap.parse_args()
    sz = QUICK if args.quick else FULL
    out_dir: Path = args.out or (BENCH_DIR / "out" / ("quick" if args.quick else ""))
    out_dir.mkdir(parents=True, exist_ok=True)

    from flightdeck_rs._server import FlightdeckServer

    # Drops and shutdown losses are part of the scenarios; keep their warnings off the table.
    logging.getLogger("flightdeck_rs").setLevel(logging.ERROR)
    started = time.time()
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "sizes": asdict(sz),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "timer_overhead_ns": timer_overhead_ns(),
        "gc": "disabled while timing emit() calls",
        "latency_event_bytes": event_bytes(),
    }
    print(
        f"emitter benchmark ({'QUICK' if args.quick else 'full'}): python {meta['python']}, "
        f"{meta['cores']} cores, load {meta['loadavg_start'][0]:.2f}",
        flush=True,
    )
    results: dict[str, Any] = {"meta": meta}
    with FlightdeckServer() as srv:
        print(f"real flightdeck serve at {srv.base_url}", flush=True)
        print("[latency]", flush=True)
        results["latency"] = bench_latency(sz, srv.base_url, srv.baseline_id, sz.latency_rounds)
        print("[throughput]", flush=True)
        results["throughput"] = [bench_throughput(sz, srv, b) for b in (100, 500)]
    print("[memory]", flush=True)
    results["memory"] = [
        bench_memory(sz, LATENCY_PAD, 0, "default limits"),
        bench_memory(sz, 1500, 10**9, "byte cap binds (~2.2 KB events)"),
    ]
    results["targets"] = targets(results)
    meta["loadavg_end"] = os.getloadavg()
    meta["elapsed_s"] = time.time() - started
    path = out_dir / "emitter.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print()
    if args.quick:
        print("QUICK MODE: small sizes; a smoke test, the numbers are not measurements.")
    print("\n".join(table(results)))
    print(f"\nwrote {path} in {meta['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
