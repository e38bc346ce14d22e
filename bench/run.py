#!/usr/bin/env python3
"""Side-by-side benchmark: the reference ``flightdeck.sdk`` vs ``flightdeck_rs`` vs a limit anchor.

One run starts the Rust stub server (``bench/stub-server``, release build, loopback only) and,
for the end-to-end workload, a real ``flightdeck serve``; it then measures, turn by turn (the
order of the clients rotates every repeat) and reports the median of the repeats:

1. construct  ``RunEvent(**kw)`` with nested dicts, 10,000 held in a list   [µs/event]
2. ingest     ``ingest_run_events_batch`` of 50,000 prebuilt events, chunk 500 [events/s]
3. health     2,000 sequential ``health()`` on one sync client                [µs/call]
4. fan-out    ``asyncio.gather`` of 2,000 ``health()`` on one async client    [ms, errors]
5. GIL        a second thread counts in a tight loop while the client makes 200
              ``ingest_run_events`` calls of 500 events: its rate / its idle rate, and wall time
6. memory     peak RSS growth of a fresh process holding 100,000 events      [bytes/event]
7. e2e        50,000 events into a real ``flightdeck serve``                   [events/s]
8. track      added cost of a tracked run vs an empty function, p50 and p99  [µs/run]
              (``bench/track_bench.py``: ours = ``emitter.run()`` + one ``add_model_usage``;
              reference = pydantic ``RunEvent`` + ``ingest_run_events`` per run; limit = a
              hand-built dict + ``emitter.emit``)
9. service    FastAPI on one uvicorn worker, 32 connections for 5 s per endpoint: await
              ``health()``; build a RunEvent and await ``ingest_run_events`` [req/s, p99 ms]
              (``bench/service_bench.py``; the limit anchor's app uses pyreqwest)
10. cold start a fresh ``python -c "import <sdk>, <models>"``; limit: a bare interpreter [ms]
              (``bench/coldstart_bench.py``)
11. trio_fanout, gevent_fanout: the fan-out on trio and under gevent monkey-patching
              (``bench/runtimes_bench.py``; no limit anchor)                  [ms, errors]

The three contenders:

- ``reference``: ``flightdeck.sdk`` + ``flightdeck.models.RunEvent`` (flightdeck-ai 1.3.0);
- ``ours``: ``flightdeck_rs.sdk`` + ``flightdeck_rs.models.RunEvent``;
- ``limit``: plain dicts (construct, memory) sent as ``orjson`` bytes by ``pyreqwest``
  (everything else) -- what a hand-written client with the fastest parts could do.

Correctness comes first: every client's result on the smoke calls (and on every workload) must
equal the reference's, and the JSON each client puts on the wire must be the reference's.
A failed check makes the run exit with status 1 (after writing the outputs).

Outputs: a table on stdout, ``<out>/results.json``, ``<out>/report.md`` and ``<out>/ratios.png``
(``<out>`` is ``bench/out``, or ``bench/out/quick`` with ``--quick``).

``--quick`` runs tiny sizes once: a correctness smoke test (< 60 s) whose numbers are not
measurements. Only servers started by this script, on 127.0.0.1, are contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import coldstart_bench  # cold-start row
import runtimes_bench  # trio and gevent fan-out (bench/runtimes_bench.py)
import service_bench  # service rows (uvicorn + FastAPI under load)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
STUB_DIR = BENCH_DIR / "stub-server"
STUB_BIN = STUB_DIR / "target" / "release" / "flightdeck-stub-server"

# Loopback only: never let a proxy from the environment see the benchmark's traffic.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

IMPLS = ("reference", "ours", "limit")
HEALTH_BODY = {"status": "ok", "mutation_auth": "loopback", "read_auth": "open"}
BASE_TS = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
CLIENT_TIMEOUT_S = 5.0  # the reference's default, used by all three contenders
E2E_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Sizes:
    construct_n: int
    construct_reps: int
    ingest_n: int
    chunk: int
    ingest_reps: int
    health_n: int
    health_reps: int
    fanout_n: int
    fanout_reps: int
    gil_calls: int
    gil_batch: int
    gil_reps: int
    gil_idle_s: float
    mem_n: int
    mem_reps: int
    e2e_n: int
    e2e_reps: int


FULL = Sizes(
    construct_n=10_000,
    construct_reps=7,
    ingest_n=50_000,
    chunk=500,
    ingest_reps=5,
    health_n=2_000,
    health_reps=5,
    fanout_n=2_000,
    fanout_reps=5,
    gil_calls=200,
    gil_batch=500,
    gil_reps=5,
    gil_idle_s=1.0,
    mem_n=100_000,
    mem_reps=3,
    e2e_n=50_000,
    e2e_reps=3,
)

QUICK = Sizes(
    construct_n=200,
    construct_reps=1,
    ingest_n=1_050,
    chunk=100,
    ingest_reps=1,
    health_n=20,
    health_reps=1,
    fanout_n=50,
    fanout_reps=1,
    gil_calls=4,
    gil_batch=50,
    gil_reps=1,
    gil_idle_s=0.1,
    mem_n=2_000,
    mem_reps=1,
    e2e_n=600,
    e2e_reps=1,
)

WORKLOADS = ("construct", "ingest", "health", "fanout", "gil", "memory", "e2e", "track")
WORKLOADS += ("service", "coldstart")
WORKLOADS += runtimes_bench.WORKLOADS


# ----------------------------------------------------------------------------- events


def event_kwargs(i: int, release_id: str, prefix: str) -> dict[str, Any]:
    """Keyword arguments of event ``i``: aware UTC timestamp, nested usage/metrics/labels."""
    return {
        "timestamp": BASE_TS + timedelta(milliseconds=i),
        "agent_id": "agent_support",
        "release_id": release_id,
        "run_id": f"{prefix}-{i:07d}",
        "tenant_id": "tenant_acme",
        "task_id": "resolve_ticket",
        "environment": "production",
        "usage": {
            "model": {
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "input_tokens": 1000 + i % 500,
                "output_tokens": 200 + i % 300,
            }
        },
        "metrics": {"success": i % 17 != 0, "latency_ms": 500 + i % 1000},
        "labels": {"team": "support"},
    }


def plain_event(kw: dict[str, Any]) -> dict[str, Any]:
    """The plain-dict twin of ``RunEvent(**kw)``: the same fields and nesting, as built dicts."""
    model = kw["usage"]["model"]
    metrics = kw["metrics"]
    return {
        "api_version": "v1",
        "type": "run_end",
        "timestamp": kw["timestamp"],
        "workspace_id": "ws_local",
        "agent_id": kw["agent_id"],
        "release_id": kw["release_id"],
        "run_id": kw["run_id"],
        "tenant_id": kw["tenant_id"],
        "task_id": kw["task_id"],
        "environment": kw["environment"],
        "request": None,
        "metrics": {
            "latency_ms": metrics["latency_ms"],
            "success": metrics["success"],
            "error_type": None,
        },
        "usage": {
            "model": {
                "provider": model["provider"],
                "model": model["model"],
                "input_tokens": model["input_tokens"],
                "output_tokens": model["output_tokens"],
                "cached_input_tokens": 0,
            },
            "tools": [],
        },
        "labels": dict(kw["labels"]),
    }


def all_kwargs(n: int, release_id: str, prefix: str) -> list[dict[str, Any]]:
    return [event_kwargs(i, release_id, prefix) for i in range(n)]


# ----------------------------------------------------------------------------- contenders


class Contender:
    """One client family: how it builds events and talks to a server."""

    name = ""
    label = ""

    def event(self, kw: dict[str, Any]) -> Any:
        raise NotImplementedError

    def events(self, kws: list[dict[str, Any]]) -> list[Any]:
        make = self.event
        return [make(kw) for kw in kws]

    def sync_client(self, url: str, timeout_s: float = CLIENT_TIMEOUT_S) -> Any:
        raise NotImplementedError

    def close(self, client: Any) -> None:
        client.close()

    def health(self, client: Any) -> Any:
        return client.health()

    def ingest(self, client: Any, events: list[Any]) -> int:
        return int(client.ingest_run_events(events))

    def ingest_batch(self, client: Any, events: list[Any], chunk: int) -> int:
        return int(client.ingest_run_events_batch(events, chunk_size=chunk))

    def async_client(self, url: str) -> Any:
        raise NotImplementedError

    async def ahealth(self, client: Any) -> Any:
        return await client.health()

    async def aingest(self, client: Any, events: list[Any]) -> int:
        return int(await client.ingest_run_events(events))

    async def aclose(self, client: Any) -> None:
        await client.aclose()

    def wire_events(self, events: list[Any]) -> Any:
        """The parsed ``{"events": [...]}`` JSON this contender sends for ``events``."""
        raise NotImplementedError


class SdkContender(Contender):
    def __init__(self, name: str, label: str, sdk: Any, models: Any) -> None:
        self.name, self.label = name, label
        self._sdk, self._cls = sdk, models.RunEvent

    def event(self, kw: dict[str, Any]) -> Any:
        return self._cls(**kw)

    def events(self, kws: list[dict[str, Any]]) -> list[Any]:
        cls = self._cls
        return [cls(**kw) for kw in kws]

    def sync_client(self, url: str, timeout_s: float = CLIENT_TIMEOUT_S) -> Any:
        return self._sdk.FlightdeckClient(url, timeout_s=timeout_s)

    def async_client(self, url: str) -> Any:
        return self._sdk.AsyncFlightdeckClient(url, timeout_s=CLIENT_TIMEOUT_S)


class Reference(SdkContender):
    def __init__(self) -> None:
        import flightdeck.models
        import flightdeck.sdk

        super().__init__("reference", "flightdeck.sdk 1.3.0", flightdeck.sdk, flightdeck.models)

    def wire_events(self, events: list[Any]) -> Any:
        from flightdeck.sdk.http_common import events_ingest_json

        # httpx sends ``json=`` with json.dumps; a round trip gives what the server parses.
        return json.loads(json.dumps(events_ingest_json(events)))


class Ours(SdkContender):
    def __init__(self) -> None:
        import flightdeck_rs.models
        import flightdeck_rs.sdk

        super().__init__("ours", "flightdeck_rs", flightdeck_rs.sdk, flightdeck_rs.models)

    def wire_events(self, events: list[Any]) -> Any:
        from flightdeck_rs import _native

        req = _native.ingest(list(events))  # the exact request the client would send
        return None if req is None or req.body is None else json.loads(req.body)


class Limit(Contender):
    """Plain dicts, serialized by orjson, sent by pyreqwest (responses decoded by pyreqwest)."""

    name, label = "limit", "pyreqwest + orjson, plain dicts"

    def __init__(self) -> None:
        import orjson
        import pyreqwest.client

        self._orjson = orjson
        self._opt = orjson.OPT_UTC_Z  # "...Z" like pydantic, so the bytes match the others
        self._pr = pyreqwest.client

    def event(self, kw: dict[str, Any]) -> Any:
        return plain_event(kw)

    def _body(self, events: list[Any]) -> bytes:
        body: bytes = self._orjson.dumps({"events": events}, option=self._opt)
        return body

    def sync_client(self, url: str, timeout_s: float = CLIENT_TIMEOUT_S) -> Any:
        client = (
            self._pr.SyncClientBuilder()
            .base_url(url)
            .timeout(timedelta(seconds=timeout_s))
            .no_proxy()
            .error_for_status(True)
            .build()
        )
        return client

    def health(self, client: Any) -> Any:
        return client.get("/health").build().send().json()

    def ingest(self, client: Any, events: list[Any]) -> int:
        if not events:
            return 0
        req = client.post("/v1/events").header("Content-Type", "application/json")
        return int(req.body_bytes(self._body(events)).build().send().json()["inserted"])

    def ingest_batch(self, client: Any, events: list[Any], chunk: int) -> int:
        total = 0
        for i in range(0, len(events), chunk):
            total += self.ingest(client, events[i : i + chunk])
        return total

    def async_client(self, url: str) -> Any:
        return (
            self._pr.ClientBuilder()
            .base_url(url)
            .timeout(timedelta(seconds=CLIENT_TIMEOUT_S))
            .no_proxy()
            .error_for_status(True)
            .build()
        )

    async def ahealth(self, client: Any) -> Any:
        resp = await client.get("/health").build().send()
        return await resp.json()

    async def aingest(self, client: Any, events: list[Any]) -> int:
        req = client.post("/v1/events").header("Content-Type", "application/json")
        resp = await req.body_bytes(self._body(events)).build().send()
        return int((await resp.json())["inserted"])

    async def aclose(self, client: Any) -> None:
        await client.close()

    def wire_events(self, events: list[Any]) -> Any:
        return json.loads(self._body(events))


def make_contenders() -> dict[str, Contender]:
    return {"reference": Reference(), "ours": Ours(), "limit": Limit()}


# ----------------------------------------------------------------------------- servers


@contextmanager
def stub_server() -> Iterator[str]:
    """Runs the stub on a free loopback port; yields its base URL."""
    if not STUB_BIN.is_file():
        raise SystemExit(
            f"stub server not built: {STUB_BIN} (run: make bench, or cargo build "
            f"--release --manifest-path {STUB_DIR / 'Cargo.toml'})"
        )
    proc = subprocess.Popen([str(STUB_BIN), "0"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.isdigit():
            raise RuntimeError(f"stub server did not print its port (got {line!r})")
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def build_stub() -> None:
    """``cargo build --release`` of the stub when cargo is around (a no-op when up to date)."""
    cargo = shutil.which("cargo")
    if cargo is None:
        return
    subprocess.run(
        [cargo, "build", "--release", "--quiet", "--manifest-path", str(STUB_DIR / "Cargo.toml")],
        check=True,
    )


# ----------------------------------------------------------------------------- correctness


@dataclass
class Checks:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def expect(self, what: str, impl: str, got: Any, expected: Any) -> bool:
        ok = got == expected and type(got) is type(expected)
        self.rows.append(
            {
                "check": what,
                "client": impl,
                "ok": ok,
                "got": _short(got),
                "expected": _short(expected),
            }
        )
        if not ok:
            print(
                f"  CORRECTNESS FAILURE [{impl}] {what}: got {_short(got)}, "
                f"expected {_short(expected)}",
                file=sys.stderr,
            )
        return ok

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r["ok"]]


def _short(v: Any, limit: int = 160) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def smoke_stub(cs: dict[str, Contender], url: str, checks: Checks) -> None:
    """Smoke calls on the stub: every client's result must equal the reference's."""
    kws = all_kwargs(12, "rel_smoke", "smoke")
    expected: dict[str, Any] = {}
    for name in IMPLS:
        c = cs[name]
        events = c.events(kws)
        client = c.sync_client(url)
        try:
            got = {
                "health": c.health(client),
                "ingest(5)": c.ingest(client, events[:5]),
                "ingest([])": c.ingest(client, []),
                "batch(12, chunk=5)": c.ingest_batch(client, events, 5),
            }
        finally:
            c.close(client)

        async def run_async(c: Contender = c, events: list[Any] = events) -> dict[str, Any]:
            client = c.async_client(url)
            try:
                return {
                    "async health": await c.ahealth(client),
                    "async ingest(7)": await c.aingest(client, events[:7]),
                }
            finally:
                await c.aclose(client)

        got.update(asyncio.run(run_async()))
        got["wire JSON of 12 events"] = c.wire_events(events)
        if name == "reference":
            expected = got
            checks.expect(
                "reference health is the real server's body", name, got["health"], HEALTH_BODY
            )
        for key, value in got.items():
            checks.expect(f"stub: {key}", name, value, expected[key])
    # The models themselves: ours dumps exactly what pydantic dumps.
    ref_cls, ours_cls = cs["reference"], cs["ours"]
    for kw in kws[:3]:
        checks.expect(
            "model_dump(mode='json')",
            "ours",
            ours_cls.event(kw).model_dump(mode="json"),
            ref_cls.event(kw).model_dump(mode="json"),
        )


# ----------------------------------------------------------------------------- timing helpers


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def rotations(reps: int) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Turn by turn: every repeat runs each client once, in a rotated order."""
    for r in range(reps):
        k = r % len(IMPLS)
        yield r, IMPLS[k:] + IMPLS[:k]


def progress(msg: str) -> None:
    print(f"  {msg}", flush=True)


# ----------------------------------------------------------------------------- workloads


def w_construct(cs: dict[str, Contender], sz: Sizes, checks: Checks) -> dict[str, Any]:
    kws = all_kwargs(sz.construct_n, "rel_construct", "construct")
    samples: dict[str, list[float]] = {n: [] for n in IMPLS}
    for r, order in rotations(sz.construct_reps):
        for name in order:
            c = cs[name]
            dt, held = timed(lambda c=c: c.events(kws))
            samples[name].append(dt / sz.construct_n * 1e6)
            if r == 0:
                checks.expect("construct: events held", name, len(held), sz.construct_n)
            del held
    return {
        "unit": "µs/event",
        "better": "lower",
        "samples": samples,
        "limit_is": "plain-dict construction of the same fields and nesting",
    }


def w_ingest(
    cs: dict[str, Contender], sz: Sizes, url: str, checks: Checks, prebuilt: dict[str, list[Any]]
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {n: [] for n in IMPLS}
    for _r, order in rotations(sz.ingest_reps):
        for name in order:
            c, events = cs[name], prebuilt[name]
            client = c.sync_client(url)
            try:
                c.health(client)  # connect outside the timed region
                dt, n = timed(
                    lambda c=c, client=client, events=events: c.ingest_batch(
                        client, events, sz.chunk
                    )
                )
            finally:
                c.close(client)
            checks.expect("ingest_run_events_batch: inserted", name, n, sz.ingest_n)
            samples[name].append(sz.ingest_n / dt)
    return {"unit": "events/s", "better": "higher", "samples": samples}


def w_health(cs: dict[str, Contender], sz: Sizes, url: str, checks: Checks) -> dict[str, Any]:
    samples: dict[str, list[float]] = {n: [] for n in IMPLS}
    for _r, order in rotations(sz.health_reps):
        for name in order:
            c = cs[name]
            client = c.sync_client(url)
            try:
                for _ in range(10):  # warm: connection, lazy imports, caches
                    c.health(client)
                health = c.health

                def loop(client: Any = client, health: Callable[[Any], Any] = health) -> Any:
                    last = None
                    for _ in range(sz.health_n):
                        last = health(client)
                    return last

                dt, last = timed(loop)
            finally:
                c.close(client)
            checks.expect("health(): last result", name, last, HEALTH_BODY)
            samples[name].append(dt / sz.health_n * 1e6)
    return {"unit": "µs/call", "better": "lower", "samples": samples}


def w_fanout(cs: dict[str, Contender], sz: Sizes, url: str, checks: Checks) -> dict[str, Any]:
    samples: dict[str, list[float]] = {n: [] for n in IMPLS}
    errors: dict[str, list[int]] = {n: [] for n in IMPLS}
    for _r, order in rotations(sz.fanout_reps):
        for name in order:
            c = cs[name]

            async def run(c: Contender = c) -> tuple[float, list[Any]]:
                client = c.async_client(url)
                try:
                    await c.ahealth(client)  # one warm call: the pool opens a connection
                    gc.collect()
                    t0 = time.perf_counter()
                    res = await asyncio.gather(
                        *[c.ahealth(client) for _ in range(sz.fanout_n)], return_exceptions=True
                    )
                    return time.perf_counter() - t0, res
                finally:
                    await c.aclose(client)

            dt, res = asyncio.run(run())
            errs = [x for x in res if isinstance(x, BaseException)]
            ok = [x for x in res if not isinstance(x, BaseException)]
            errors[name].append(len(errs))
            if errs:
                kinds = sorted({type(e).__name__ for e in errs})
                progress(f"fan-out {name}: {len(errs)} errors ({', '.join(kinds)})")
            checks.expect(
                "fan-out: every answer is the health body",
                name,
                all(x == HEALTH_BODY for x in ok),
                True,
            )
            samples[name].append(dt * 1e3)
    return {"unit": "ms total", "better": "lower", "samples": samples, "errors": errors}


def _spin_rate(run_while: Callable[[], Any]) -> tuple[float, float, Any]:
    """Count in a tight loop on a second thread while ``run_while()`` runs on this one.

    Returns (the counter's rate in counts/s, the wall time of ``run_while``, its result).
    """
    flag = [True]
    out: list[float] = []
    started = threading.Event()

    def spin() -> None:
        n = 0
        started.set()
        t0 = time.perf_counter()
        while flag[0]:
            n += 1
        out.append(n / (time.perf_counter() - t0))

    th = threading.Thread(target=spin, daemon=True)
    gc.collect()
    th.start()
    started.wait()
    t0 = time.perf_counter()
    result = run_while()
    wall = time.perf_counter() - t0
    flag[0] = False
    th.join()
    return out[0], wall, result


def w_gil(
    cs: dict[str, Contender], sz: Sizes, url: str, checks: Checks, prebuilt: dict[str, list[Any]]
) -> dict[str, Any]:
    ratios: dict[str, list[float]] = {n: [] for n in IMPLS}
    walls: dict[str, list[float]] = {n: [] for n in IMPLS}
    idles: dict[str, list[float]] = {n: [] for n in IMPLS}
    for _r, order in rotations(sz.gil_reps):
        for name in order:
            c, events = cs[name], prebuilt[name]
            k = len(events) // sz.gil_batch
            chunks = [
                events[(i % k) * sz.gil_batch : (i % k + 1) * sz.gil_batch]
                for i in range(sz.gil_calls)
            ]
            client = c.sync_client(url)
            try:
                c.health(client)
                # Idle rate: the mean of one measurement before and one after the calls, so
                # that drift in the machine's load hits both sides alike.
                idle_a, _, _ = _spin_rate(lambda: time.sleep(sz.gil_idle_s / 2))

                def calls(
                    c: Contender = c, client: Any = client, chunks: list[list[Any]] = chunks
                ) -> int:
                    ingest = c.ingest
                    return sum(ingest(client, ch) for ch in chunks)

                busy, wall, total = _spin_rate(calls)
                idle_b, _, _ = _spin_rate(lambda: time.sleep(sz.gil_idle_s / 2))
                idle = (idle_a + idle_b) / 2
            finally:
                c.close(client)
            checks.expect(
                "GIL: inserted by the ingest calls", name, total, sz.gil_calls * sz.gil_batch
            )
            idles[name].append(idle)
            ratios[name].append(busy / idle)
            walls[name].append(wall)
    return {
        "unit": "other thread's rate / idle rate",
        "better": "higher",
        "samples": ratios,
        "wall": {"unit": "s", "better": "lower", "samples": walls},
        "idle_rate": idles,
    }


def memory_child(kind: str, n: int) -> None:
    """In a fresh interpreter: hold ``n`` events of ``kind``; print the RSS numbers as JSON."""
    c = {"reference": Reference, "ours": Ours, "limit": Limit}[kind]()
    c.event(event_kwargs(0, "rel_memory", "warm"))  # import / first-call costs
    gc.collect()
    before = _proc_status()
    make = c.event
    held = [make(event_kwargs(i, "rel_memory", "mem")) for i in range(n)]
    gc.collect()
    after = _proc_status()
    print(
        json.dumps(
            {
                "n": len(held),
                "rss_before": before["VmRSS"],
                "rss_after": after["VmRSS"],
                "hwm_after": after["VmHWM"],
            }
        )
    )


def _proc_status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def w_memory(sz: Sizes, checks: Checks) -> dict[str, Any]:
    samples: dict[str, list[float]] = {n: [] for n in IMPLS}
    raw: dict[str, list[dict[str, int]]] = {n: [] for n in IMPLS}
    for _r, order in rotations(sz.mem_reps):
        for name in order:
            done = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--memory-child",
                    name,
                    str(sz.mem_n),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=str(BENCH_DIR),
            )
            res = json.loads(done.stdout.strip().splitlines()[-1])
            checks.expect("memory: events held", name, res["n"], sz.mem_n)
            raw[name].append(res)
            samples[name].append((res["hwm_after"] - res["rss_before"]) / sz.mem_n)
    return {
        "unit": "bytes/event (peak RSS growth)",
        "better": "lower",
        "samples": samples,
        "raw": raw,
        "limit_is": "plain dicts of the same fields",
    }


def w_e2e(cs: dict[str, Contender], sz: Sizes, checks: Checks) -> dict[str, Any]:
    from flightdeck_rs._server import FlightdeckServer

    samples: dict[str, list[float]] = {n: [] for n in IMPLS}
    with FlightdeckServer() as srv:
        progress(f"real flightdeck serve at {srv.base_url}")
        # Smoke on the real server: equal results, duplicates are not inserted again.
        expected: dict[str, Any] = {}
        for name in IMPLS:
            c = cs[name]
            events = c.events(all_kwargs(3, srv.baseline_id, f"e2e-smoke-{name}"))
            client = c.sync_client(srv.base_url, E2E_TIMEOUT_S)
            try:
                got = {
                    "health": c.health(client),
                    "ingest(3)": c.ingest(client, events),
                    "ingest(3) again": c.ingest(client, events),
                }
            finally:
                c.close(client)
            if name == "reference":
                expected = got
            for key, value in got.items():
                checks.expect(f"real server: {key}", name, value, expected[key])
        for r, order in rotations(sz.e2e_reps):
            for name in order:
                c = cs[name]
                events = c.events(all_kwargs(sz.e2e_n, srv.baseline_id, f"e2e-{r}-{name}"))
                client = c.sync_client(srv.base_url, E2E_TIMEOUT_S)
                try:
                    c.health(client)
                    dt, n = timed(
                        lambda c=c, client=client, events=events: c.ingest_batch(
                            client, events, FULL.chunk
                        )
                    )
                finally:
                    c.close(client)
                del events
                checks.expect("real server: inserted", name, n, sz.e2e_n)
                samples[name].append(sz.e2e_n / dt)
    return {"unit": "events/s", "better": "higher", "samples": samples}


# ----------------------------------------------------------------------------- analysis


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    unit: str
    better: str  # "lower" | "higher"
    ref: float
    ours: float
    limit: float
    extra: str = ""

    def ratio(self, other: float) -> float:
        return self.ours / other if other else float("nan")

    def advantage(self, other: float) -> float:
        """How many times better ours is than ``other`` (> 1: ours is better)."""
        if not other or not self.ours:
            return float("nan")
        return other / self.ours if self.better == "lower" else self.ours / other


@dataclass(frozen=True)
class Target:
    row: str
    text: str
    check: Callable[[Row, dict[str, Any]], bool]


TARGETS = [
    Target("construct", "≥10× faster than the reference", lambda r, _w: r.advantage(r.ref) >= 10),
    Target("construct", "no slower than plain-dict construction", lambda r, _w: r.ours <= r.limit),
    Target("ingest", "≥10× the reference's events/s", lambda r, _w: r.advantage(r.ref) >= 10),
    Target("ingest", "≥ the limit anchor's events/s", lambda r, _w: r.ours >= r.limit),
    Target("health", "latency ≥6× lower than the reference", lambda r, _w: r.advantage(r.ref) >= 6),
    Target("health", "latency ≤ the limit anchor's", lambda r, _w: r.ours <= r.limit),
    Target("fanout", "≥19× faster than the reference", lambda r, _w: r.advantage(r.ref) >= 19),
    Target(
        "fanout", "zero errors", lambda _r, w: max(w["fanout"]["errors"]["ours"], default=0) == 0
    ),
    Target("fanout", "no slower than the limit anchor", lambda r, _w: r.ours <= r.limit),
    Target("gil", "other thread keeps ≥0.85 of its idle rate", lambda r, _w: r.ours >= 0.85),
    Target("gil_wall", "less wall time than the reference", lambda r, _w: r.ours < r.ref),
    Target("memory", "≤ 1/3 of the reference's bytes per event", lambda r, _w: r.ours <= r.ref / 3),
    Target("track", "added p50 ≤ 10 µs per tracked run", lambda r, _w: r.ours <= 10.0),
    Target("track_p99", "added p99 ≤ 50 µs per tracked run", lambda r, _w: r.ours <= 50.0),
    *(Target(*t) for t in (*service_bench.TARGETS, *coldstart_bench.TARGETS)),
]


def rows_from(w: dict[str, Any]) -> list[Row]:
    def mk(key: str, title: str, d: dict[str, Any], extra: str = "") -> Row:
        m = {n: median(d["samples"][n]) for n in IMPLS}
        return Row(key, title, d["unit"], d["better"], m["reference"], m["ours"], m["limit"], extra)

    rows = []
    if "construct" in w:
        rows.append(mk("construct", "construct RunEvent(**kw)", w["construct"]))
    if "ingest" in w:
        rows.append(mk("ingest", "ingest_run_events_batch", w["ingest"]))
    if "health" in w:
        rows.append(mk("health", "sequential health()", w["health"]))
    if "fanout" in w:
        errs = w["fanout"]["errors"]
        extra = "errors: " + ", ".join(f"{n} {max(errs[n], default=0)}" for n in IMPLS)
        rows.append(mk("fanout", "async fan-out health()", w["fanout"], extra))
    rows.extend(runtimes_bench.rows(w, mk))
    if "gil" in w:
        rows.append(mk("gil", "GIL: other thread's rate", w["gil"]))
        rows.append(mk("gil_wall", "GIL: wall of the calls", w["gil"]["wall"]))
    if "memory" in w:
        rows.append(mk("memory", "memory per held event", w["memory"]))
    if "e2e" in w:
        rows.append(mk("e2e", "e2e into flightdeck serve", w["e2e"]))
    if "track" in w:
        rows.append(mk("track", "tracked run, added p50", w["track"]))
        rows.append(mk("track_p99", "tracked run, added p99", w["track"]["p99"]))
    for mod in (service_bench, coldstart_bench):
        rows += [mk(k, t, w[k], mod.note(w, k)) for k, t in mod.ROWS if k in w]
    return rows


def fmt(v: float) -> str:
    if v != v:  # NaN
        return "n/a"
    a = abs(v)
    if a >= 10_000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(row: Row, other: float) -> str:
    r, adv = row.ratio(other), row.advantage(other)
    if r != r or adv != adv:
        return "n/a"
    word = "better" if adv >= 1 else "worse"
    return f"{r:.3f} ({adv:.2f}× {word})"


def verdicts(rows: list[Row], w: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    by_key = {r.key: r for r in rows}
    out = []
    for t in TARGETS:
        row = by_key.get(t.row)
        if row is None:
            continue
        met = None if quick else bool(t.check(row, w))
        out.append({"workload": t.row, "target": t.text, "met": met})
    return out


def table_lines(rows: list[Row], markdown: bool) -> list[str]:
    head = [
        "workload",
        "unit",
        "reference",
        "ours",
        "limit",
        "ours/reference",
        "ours/limit",
        "note",
    ]
    body = [
        [
            r.title,
            r.unit,
            fmt(r.ref),
            fmt(r.ours),
            fmt(r.limit),
            fmt_ratio(r, r.ref),
            fmt_ratio(r, r.limit),
            r.extra,
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return lines
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(wd) for h, wd in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * wd for wd in widths))
    lines += ["  ".join(c.ljust(wd) for c, wd in zip(b, widths, strict=True)) for b in body]
    return lines


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("flightdeck-ai", "flightdeck-rs", "pyreqwest", "orjson", "httpx", "pydantic"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "missing"
    return {
        "native_module": _native_module_stamp(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
    }


def _native_module_stamp() -> str:
    """Path and mtime of our compiled module: a rebuild during a run makes it suspect."""
    import flightdeck_rs._native as native

    path = Path(native.__file__ or "")
    try:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    except OSError:
        mtime = "unknown"
    return f"{path} (mtime {mtime})"


# ----------------------------------------------------------------------------- outputs


def write_chart(rows: list[Row], path: Path, quick: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.advantage(r.ref) == r.advantage(r.ref)]
    labels = [r.title for r in rows]
    vs_ref = [r.advantage(r.ref) for r in rows]
    vs_lim = [r.advantage(r.limit) for r in rows]
    goals = {"construct": 10, "ingest": 10, "health": 6, "fanout": 19, "memory": 3}
    goals |= service_bench.GOALS
    fig, ax = plt.subplots(figsize=(10, 0.75 * len(rows) + 1.8))
    ys = list(range(len(rows)))
    h = 0.38
    ax.barh([y - h / 2 for y in ys], vs_ref, height=h, label="vs reference", color="#3b7dd8")
    ax.barh([y + h / 2 for y in ys], vs_lim, height=h, label="vs limit anchor", color="#e39b2d")
    for y, r in zip(ys, rows, strict=True):
        g = goals.get(r.key)
        if g:
            ax.plot([g, g], [y - h, y], color="#1b3d6e", lw=2)
        for val, dy in ((r.advantage(r.ref), -h / 2), (r.advantage(r.limit), h / 2)):
            if val == val and val > 0:
                ax.text(val * 1.05, y + dy, f"{val:.2f}×", va="center", fontsize=8)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xlabel("how many times better flightdeck_rs is (log scale; > 1 = ours better)")
    title = "flightdeck_rs vs reference and limit anchor (dark ticks: targets vs reference)"
    if quick:
        title = "QUICK MODE, tiny sizes: not a measurement\n" + title
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _sampled(w: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    titles = {"fanout": "fan-out", "gil": "GIL rate"}
    for key, d in w.items():
        yield titles.get(key, key), d
        if key == "gil":
            yield "GIL wall", d["wall"]


def write_report(out: Path, results: dict[str, Any], rows: list[Row], quick: bool) -> None:
    meta = results["meta"]
    lines = ["# flightdeck_rs benchmark", ""]
    if quick:
        lines += [
            "**Quick mode**: tiny sizes, one repeat. A correctness smoke test; the",
            "numbers below are not measurements.",
            "",
        ]
    lines += [
        *([f"- **WARNING: {meta['warning']}**"] if "warning" in meta else []),
        f"- machine: {meta['cpu']} ({meta['cores']} cores), {meta['platform']}",
        f"- our module: {meta['native_module']}",
        f"- python {meta['python']}; " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- load average at start / end: {meta['loadavg_start'][0]:.2f} / "
        f"{meta['loadavg_end'][0]:.2f}",
        f"- run at {meta['started']}, took {meta['elapsed_s']:.0f} s; medians of "
        + ", ".join(f"{k}={v}" for k, v in meta["repeats"].items())
        + " repeats",
        "- reference: `flightdeck.sdk` + `flightdeck.models.RunEvent`; ours: `flightdeck_rs`; "
        "limit: plain dicts (construct, memory), else `pyreqwest` sending `orjson` bytes",
        "- stub server: `bench/stub-server` (Rust, tokio + hyper, release), 127.0.0.1; e2e: a "
        "real `flightdeck serve` (SQLite) on 127.0.0.1",
        *service_bench.report_lines(results["workloads"]),
        *coldstart_bench.report_lines(results["workloads"]),
        "",
        "## Results",
        "",
        *table_lines(rows, markdown=True),
        "",
        "Ratios are ours / other on the raw metric; the factor in parentheses says how many",
        "times better ours is (lower is better for time and memory, higher for rates).",
        "",
        "## Targets",
        "",
        "| workload | target | met |",
        "|---|---|---|",
    ]
    for v in results["targets"]:
        met = "n/a (quick)" if v["met"] is None else ("yes" if v["met"] else "**no**")
        lines.append(f"| {v['workload']} | {v['target']} | {met} |")
    lines += [
        "",
        "## Spread of the repeats (min / median / max)",
        "",
        "| workload | " + " | ".join(IMPLS) + " |",
        "|---|" + "---|" * len(IMPLS),
    ]
    for title, d in _sampled(results["workloads"]):
        cells = []
        for n in IMPLS:
            xs = d["samples"][n]
            cells.append(f"{fmt(min(xs))} / {fmt(median(xs))} / {fmt(max(xs))}" if xs else "n/a")
        lines.append(f"| {title} ({d['unit']}) | " + " | ".join(cells) + " |")
    checks = results["correctness"]
    failed = [c for c in checks if not c["ok"]]
    lines += [
        "",
        "## Correctness",
        "",
        f"{len(checks) - len(failed)} of {len(checks)} checks passed.",
    ]
    for c in failed:
        lines.append(
            f"- FAILED [{c['client']}] {c['check']}: got {c['got']}, expected {c['expected']}"
        )
    lines += ["", "![ratios](ratios.png)", "", "Reproduce: `make bench` (or `make bench-quick`)."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, correctness only, < 60 s")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(WORKLOADS)}")
    ap.add_argument("--out", type=Path, default=None, help="output directory")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo for the stub")
    ap.add_argument("--memory-child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return 0

    sz = QUICK if args.quick else FULL
    only = [x for x in args.only.split(",") if x] or list(WORKLOADS)
    unknown = set(only) - set(WORKLOADS)
    if unknown:
        ap.error(f"unknown workloads: {sorted(unknown)}")
    out: Path = args.out or (BENCH_DIR / "out" / ("quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_build:
        build_stub()

    started = time.time()
    meta = machine_info()
    meta["started"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["quick"] = args.quick
    meta["sizes"] = sz.__dict__
    meta["repeats"] = {
        k.removesuffix("_reps"): v for k, v in sz.__dict__.items() if k.endswith("_reps")
    }
    mode = "QUICK (correctness smoke, tiny sizes)" if args.quick else "full"
    print(
        f"flightdeck_rs benchmark, {mode}: {meta['cpu']}, {meta['cores']} cores, "
        f"python {meta['python']}, load {meta['loadavg_start'][0]:.2f}",
        flush=True,
    )

    cs = make_contenders()
    checks = Checks()
    w: dict[str, Any] = {}
    with stub_server() as url:
        print(f"stub server at {url}", flush=True)
        print("[smoke] correctness on the stub", flush=True)
        smoke_stub(cs, url, checks)
        prebuilt: dict[str, list[Any]] = {}
        if {"ingest", "gil"} & set(only):
            n = max(sz.ingest_n, sz.gil_batch)
            kws = all_kwargs(n, "rel_ingest", "ingest")
            prebuilt = {name: cs[name].events(kws) for name in IMPLS}
            del kws
            payload = {name: cs[name].wire_events(prebuilt[name][:50]) for name in IMPLS}
            for name in IMPLS:
                checks.expect(
                    "wire JSON of the prebuilt events", name, payload[name], payload["reference"]
                )
        for name in only:
            if name in ("memory", "e2e"):
                continue
            print(f"[{name}]", flush=True)
            t0 = time.perf_counter()
            if name == "construct":
                w[name] = w_construct(cs, sz, checks)
            elif name == "ingest":
                w[name] = w_ingest(cs, sz, url, checks, prebuilt)
            elif name == "health":
                w[name] = w_health(cs, sz, url, checks)
            elif name == "fanout":
                w[name] = w_fanout(cs, sz, url, checks)
            elif name == "gil":
                w[name] = w_gil(cs, sz, url, checks, prebuilt)
            elif name == "track":
                import track_bench

                w[name] = track_bench.w_track(url, args.quick, checks)
            elif name == "service":
                w.update(service_bench.run(url, args.quick, checks))
            elif name == "coldstart":
                w[name] = coldstart_bench.run(args.quick, checks)
            elif name in runtimes_bench.WORKLOADS:  # trio and gevent fan-out
                w[name] = runtimes_bench.run(
                    name, url, sz.fanout_n, sz.fanout_reps, checks, progress
                )
            progress(f"done in {time.perf_counter() - t0:.1f} s")
        prebuilt.clear()
    gc.collect()
    if "memory" in only:
        print("[memory]", flush=True)
        t0 = time.perf_counter()
        w["memory"] = w_memory(sz, checks)
        progress(f"done in {time.perf_counter() - t0:.1f} s")
    if "e2e" in only:
        print("[e2e]", flush=True)
        t0 = time.perf_counter()
        w["e2e"] = w_e2e(cs, sz, checks)
        progress(f"done in {time.perf_counter() - t0:.1f} s")

    meta["loadavg_end"] = os.getloadavg()
    if _native_module_stamp() != meta["native_module"]:
        meta["warning"] = "flightdeck_rs._native was rebuilt during the run; results are mixed"
        print(f"WARNING: {meta['warning']}", file=sys.stderr)
    meta["elapsed_s"] = time.time() - started
    rows = rows_from(w)
    targets = verdicts(rows, w, args.quick)
    for wl in w.values():
        wl["median"] = {n: median(wl["samples"][n]) for n in IMPLS}
    results = {
        "meta": meta,
        "rows": [
            {
                **r.__dict__,
                "ours/reference": r.ratio(r.ref),
                "ours/limit": r.ratio(r.limit),
                "advantage_vs_reference": r.advantage(r.ref),
                "advantage_vs_limit": r.advantage(r.limit),
            }
            for r in rows
        ],
        "targets": targets,
        "correctness": checks.rows,
        "workloads": w,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    write_report(out, results, rows, args.quick)
    write_chart(rows, out / "ratios.png", args.quick)

    print()
    if args.quick:
        print("QUICK MODE: tiny sizes, one repeat; the numbers are not measurements.")
    print("\n".join(table_lines(rows, markdown=False)))
    print()
    for v in targets:
        met = "n/a" if v["met"] is None else ("MET " if v["met"] else "MISS")
        print(f"  [{met}] {v['workload']}: {v['target']}")
    failed = checks.failed
    print(f"\ncorrectness: {len(checks.rows) - len(failed)} of {len(checks.rows)} checks passed")
    print(
        f"wrote {out / 'results.json'}, {out / 'report.md'}, {out / 'ratios.png'} "
        f"in {meta['elapsed_s']:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
