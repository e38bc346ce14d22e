#!/usr/bin/env python3
"""A long server outage held by the emitter's spool (issue 12).

For each spool mode, a fresh emitter with the *default* limits (10,000-event / 16 MiB memory
queue, 100-event batches, 1 s interval, 0.5-30 s backoff) and a 1 GiB spool
(``spool_max_bytes``) gets ``--events`` (default 1,000,000) ~0.5 KB dict events while the
server is down (a real ``flightdeck serve`` that was stopped, so its port refuses
connections). Then the same server is started again on the same port and ``flush()`` waits
for the whole backlog. Reported:

* ``emit()`` p50 / p99 / p99.9 / max in µs (only the call is timed; GC off while timing),
  and how many events were accepted / refused (and why);
* RSS growth over the baseline taken just before the first ``emit()``, at each quarter of
  the outage and at the end of the drain (the peak of these samples): the memory bound does
  not depend on the outage's length;
* spool size per event: ``spool_bytes / spool_events`` (the wire bytes plus a newline) and
  the disk blocks actually used (``du``) per event;
* the drain rate once the server is back: accepted events / seconds until ``flush()``
  returned (the real server's ingest rate is the limit: measure it with ``--server-only``).

Only 127.0.0.1 is contacted. Nothing is asserted; this prints numbers.

Usage: ``python bench/spool_outage_bench.py [--events 1000000] [--modes sync,async]
[--dir PATH] [--json FILE]``
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flightdeck_rs import Emitter
from flightdeck_rs._server import FlightdeckServer, flightdeck_cli

GiB = 1024**3


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def disk_bytes(path: str) -> int:
    """Blocks allocated under ``path`` (what ``du`` reports)."""
    total = 0
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


def pct(sorted_ns: array[int], q: float) -> float:
    i = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[i] / 1000.0


class Server:
    """A real ``flightdeck serve`` that can be stopped and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        srv = FlightdeckServer(workdir=workdir)
        srv.start(timeout_s=60)
        self.port, self.release_id = srv.port, srv.baseline_id
        self.base_url = srv.base_url
        srv.stop()  # the workspace (ledger) stays: we own workdir
        self.log = open(workdir / "outage-bench-serve.log", "ab")  # noqa: SIM115

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*flightdeck_cli(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"flightdeck serve exited ({self.proc.returncode})")
            try:
                with opener.open(f"{self.base_url}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("flightdeck serve did not become ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        self.log.close()


def template(release_id: str, environment: str) -> dict[str, Any]:
    return {
        "timestamp": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "agent_id": "agent_support",
        "release_id": release_id,
        "tenant_id": "tenant_acme",
        "task_id": "task_support",
        "environment": environment,
        "usage": {
            "model": {
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "input_tokens": 1000,
                "output_tokens": 500,
            }
        },
        "metrics": {"success": True, "latency_ms": 900},
        "labels": {"pad": "x" * 120},
    }


class RssSampler(threading.Thread):
    """Samples RSS every ``every_s`` while the drain runs."""

    def __init__(self, every_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.peak = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, rss_bytes())
            self.stop_flag.wait(self.every_s)


def server_only_rate(server: Server, base: dict[str, Any], mode: str, n: int) -> float:
    """Events/s the live server takes from a memory-only emitter (no spool), same events:
    the reference for the drain rate, measured at the same time on the same machine."""
    if n <= 0:
        return 0.0
    em = Emitter(server.base_url, atexit_timeout_s=0, max_queue_events=n, max_queue_bytes=2**31)
    t0 = time.perf_counter()
    for i in range(n):
        e = dict(base)
        e["run_id"] = f"outage-ref-{mode}-{os.getpid()}-{i:07d}"
        em.emit(e)
    em.flush(600)
    dt = time.perf_counter() - t0
    acked = em.stats()["acked"]
    em.close(5)
    return acked / dt if dt > 0 else 0.0


def one_mode(
    server: Server, mode: str, n: int, parent: str, server_rate_events: int
) -> dict[str, Any]:
    spool = tempfile.mkdtemp(prefix=f"outage-{mode}-", dir=parent)
    env = f"outage-bench-{mode}-{os.getpid()}"
    base = template(server.release_id, env)
    em = Emitter(
        server.base_url, spool_dir=spool, spool_mode=mode, spool_max_bytes=GiB, atexit_timeout_s=0
    )
    timings = array("q", bytes(8 * n))
    checkpoints = {n * k // 4 for k in range(1, 5)}
    rss_at: dict[int, int] = {}
    refused = 0
    emit = em.emit
    clock = time.perf_counter_ns
    gc.collect()
    rss0 = rss_bytes()
    t_start = time.perf_counter()
    gc.disable()
    try:
        for i in range(n):
            e = dict(base)
            e["run_id"] = f"outage-{mode}-{os.getpid()}-{i:07d}"
            t0 = clock()
            ok = emit(e)
            timings[i] = clock() - t0
            refused += not ok
            if i + 1 in checkpoints:
                rss_at[i + 1] = rss_bytes() - rss0
    finally:
        gc.enable()
    emit_s = time.perf_counter() - t_start
    time.sleep(0.3)  # async mode: the last tick reaches the disk
    s = em.stats()
    on_disk = disk_bytes(spool)
    per_event = s["spool_bytes"] / max(1, s["spool_events"])
    print(
        f"  {mode}: {n} emitted in {emit_s:.1f} s, {refused} refused, "
        f"spool {s['spool_bytes'] / 1e6:.0f} MB, RSS +{max(rss_at.values()) / 2**20:.1f} MiB; "
        "starting the server",
        file=sys.stderr,
        flush=True,
    )

    sampler = RssSampler()
    sampler.start()
    server.start()
    t_drain = time.perf_counter()
    flushed = em.flush(3600)
    drain_s = time.perf_counter() - t_drain
    sampler.stop_flag.set()
    sampler.join()
    after = em.stats()
    em.close(10)
    server_rate = server_only_rate(server, base, mode, server_rate_events)
    server.stop()
    shutil.rmtree(spool, ignore_errors=True)

    timings = array("q", sorted(timings))
    result = {
        "mode": mode,
        "events": n,
        "accepted": s["accepted"],
        "refused": refused,
        "dropped_queue_full": s["dropped_queue_full"],
        "dropped_spool_full": s["dropped_spool_full"],
        "emit_s": emit_s,
        "p50_us": pct(timings, 0.50),
        "p99_us": pct(timings, 0.99),
        "p999_us": pct(timings, 0.999),
        "max_us": timings[-1] / 1000.0,
        "rss_growth_bytes_at": rss_at,
        "rss_growth_peak_bytes": max(max(rss_at.values()), sampler.peak - rss0),
        "rss_growth_during_drain_bytes": sampler.peak - rss0,
        "spool_bytes": s["spool_bytes"],
        "spool_events": s["spool_events"],
        "spool_bytes_per_event": per_event,
        "disk_bytes_per_event": on_disk / max(1, s["spool_events"]),
        "oldest_unsent_age_s": s["oldest_unsent_age_s"],
        "flushed": flushed,
        "drain_s": drain_s,
        "drain_events_per_s": after["acked"] / drain_s if drain_s > 0 else 0.0,
        "acked": after["acked"],
        "server_inserted": after["server_inserted"],
        "server_only_events_per_s": server_rate,
    }
    print(
        f"  {mode}: drained {after['acked']} in {drain_s:.1f} s "
        f"({result['drain_events_per_s']:.0f}/s), flush={flushed}; the server alone took "
        f"{server_rate:.0f}/s from a memory-only emitter",
        file=sys.stderr,
        flush=True,
    )
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--modes", default="sync,async")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="parent of the spool dirs")
    ap.add_argument(
        "--server-rate-events",
        type=int,
        default=20_000,
        help="events for the server-only reference rate after each drain (0: skip)",
    )
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    # The emitter logs its retries and what close() keeps; expected here.
    logging.getLogger("flightdeck_rs").setLevel(logging.ERROR)
    modes = [m for m in args.modes.split(",") if m]

    workdir = Path(tempfile.mkdtemp(prefix="outage-bench-server-", dir=args.dir))
    results = []
    t0 = time.monotonic()
    server = Server(workdir)
    try:
        for mode in modes:
            results.append(one_mode(server, mode, args.events, args.dir, args.server_rate_events))
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(
        f"spool outage: {args.events:,} ~0.5 KB dict events with the server down, default "
        f"limits, 1 GiB spool (python {platform.python_version()}, {os.cpu_count()} cores, "
        f"spool under {args.dir})"
    )
    head = (
        f"{'mode':6s} {'p50 µs':>7s} {'p99 µs':>7s} {'p99.9':>7s} {'refused':>8s} "
        f"{'RSS +MiB':>8s} {'B/event':>8s} {'disk B/ev':>9s} {'drain ev/s':>10s} "
        f"{'server ev/s':>11s}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['mode']:6s} {r['p50_us']:7.2f} {r['p99_us']:7.2f} {r['p999_us']:7.1f} "
            f"{r['refused']:8d} {r['rss_growth_peak_bytes'] / 2**20:8.1f} "
            f"{r['spool_bytes_per_event']:8.0f} {r['disk_bytes_per_event']:9.0f} "
            f"{r['drain_events_per_s']:10.0f} {r['server_only_events_per_s']:11.0f}"
        )
        quarters = ", ".join(
            f"{k:,}: {v / 2**20:.1f}" for k, v in sorted(r["rss_growth_bytes_at"].items())
        )
        print(
            f"       RSS growth (MiB) after {quarters}; during the drain "
            f"{r['rss_growth_during_drain_bytes'] / 2**20:.1f}"
        )
    print(f"\n(elapsed {time.monotonic() - t0:.0f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
