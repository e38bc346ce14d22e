"""Fan-out on the other runtimes, for ``bench/run.py``: the async client under trio, and the sync
client under gevent monkey-patching, each next to the reference on the same runtime.

- ``trio_fanout``: 2,000 ``health()`` on one async client in one trio nursery (the reference
  runs on trio through httpx/anyio)                                             [ms, errors]
- ``gevent_fanout``: 500 greenlets, one sync ``health()`` each, on one client, in a child
  process patched with ``gevent.monkey.patch_all()`` (never this process)       [ms, errors]

No limit anchor runs here (its client has no trio or gevent mode): that column is ``n/a``.

``python bench/runtimes_bench.py costs URL`` measures what a cooperative wait costs under
gevent (sequential calls: blocking unpatched, our cooperative path, and gevent's thread pool as
the alternative) -- the figures quoted in the README.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORKLOADS = ("trio_fanout", "gevent_fanout")
HEALTH_BODY = {"status": "ok", "mutation_auth": "loopback", "read_auth": "open"}
CONTENDERS = ("reference", "ours")
TIMEOUT_S = 5.0  # the reference's default, as in bench/run.py


def _client_cls(impl: str, face: str) -> Any:
    if impl == "reference":
        import flightdeck.sdk as sdk
    else:
        import flightdeck_rs.sdk as sdk  # type: ignore[no-redef]
    return sdk.FlightdeckClient if face == "sync" else sdk.AsyncFlightdeckClient


def _trio_once(impl: str, url: str, n: int) -> tuple[float, list[Any]]:
    import trio

    async def main() -> tuple[float, list[Any]]:
        client = _client_cls(impl, "async")(url, timeout_s=TIMEOUT_S)
        out: list[Any] = [None] * n

        async def one(i: int) -> None:
            try:
                out[i] = await client.health()
            except Exception as exc:  # noqa: BLE001 - counted
                out[i] = exc

        try:
            await client.health()  # one warm call: the pool opens a connection
            gc.collect()
            t0 = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(one, i)
            return time.perf_counter() - t0, out
        finally:
            await client.aclose()

    return trio.run(main)


def _gevent_once(impl: str, url: str, n: int) -> tuple[float, list[Any]]:
    """Runs in a child process: patches first, then fans out."""
    cmd = [sys.executable, "-W", "ignore", __file__, "gevent-child", impl, url, str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"gevent child failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    results = [r if isinstance(r, dict) else RuntimeError(r) for r in out["results"]]
    return out["elapsed"], results


def _gevent_child(impl: str, url: str, n: int) -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    client = _client_cls(impl, "sync")(url, timeout_s=TIMEOUT_S)

    def one() -> Any:
        try:
            return client.health()
        except Exception as exc:  # noqa: BLE001 - counted
            return f"{type(exc).__name__}: {exc}"

    try:
        client.health()
        gc.collect()
        t0 = time.perf_counter()
        greenlets = [gevent.spawn(one) for _ in range(n)]
        gevent.joinall(greenlets)
        elapsed = time.perf_counter() - t0
    finally:
        client.close()
    print(json.dumps({"elapsed": elapsed, "results": [g.value for g in greenlets]}))


def run(
    name: str, url: str, n: int, reps: int, checks: Any, progress: Any
) -> dict[str, Any]:
    """One workload in ``bench/run.py``'s shape (samples per contender; limit: none)."""
    once = _trio_once if name == "trio_fanout" else _gevent_once
    if name == "gevent_fanout":
        # At 2,000 greenlets the reference's pool (100 connections, 5 s pool timeout) fails
        # most calls with PoolTimeout and a repeat takes ~45 s: 500 keep it measurable.
        n = max(1, n // 4)
    samples: dict[str, list[float]] = {"reference": [], "ours": [], "limit": []}
    errors: dict[str, list[int]] = {"reference": [], "ours": [], "limit": []}
    for r in range(reps):
        order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
        for impl in order:
            dt, res = once(impl, url, n)
            errs = [x for x in res if isinstance(x, BaseException)]
            errors[impl].append(len(errs))
            if errs:
                kinds = sorted({str(e).split(":")[0] for e in errs})[:3]
                progress(f"{name} {impl}: {len(errs)} errors ({', '.join(kinds)})")
            ok = [x for x in res if not isinstance(x, BaseException)]
            checks.expect(f"{name}: every answer is the health body", impl,
                          all(x == HEALTH_BODY for x in ok), True)
            samples[impl].append(dt * 1e3)
    return {"unit": "ms total", "better": "lower", "samples": samples, "errors": errors}


TITLES = {
    "trio_fanout": "trio fan-out health() ×2,000",
    "gevent_fanout": "gevent fan-out health() ×500",
}


def rows(w: dict[str, Any], mk: Any) -> list[Any]:
    """``bench/run.py`` rows of these workloads (``mk(key, title, data, extra)``)."""
    out = []
    for key in WORKLOADS:
        if key in w:
            errs = w[key]["errors"]
            extra = "errors: " + ", ".join(
                f"{n} {max(errs[n], default=0)}" for n in CONTENDERS
            )
            out.append(mk(key, TITLES[key], w[key], extra))
    return out


# ----------------------------------------------------------------------------- wait costs


def _costs_child(mode: str, url: str, n: int) -> None:
    if mode == "patched":
        from gevent import monkey

        monkey.patch_all()
    import flightdeck_rs.sdk as sdk

    client = sdk.FlightdeckClient(url)
    call = client.health
    if mode == "threadpool":
        # gevent imported, not patched: calls block in the hub's pool threads instead.
        import gevent

        pool = gevent.get_hub().threadpool

        def call() -> Any:
            return pool.apply(client.health)

    for _ in range(200):
        call()
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    print(json.dumps({"us_per_call": (time.perf_counter() - t0) / n * 1e6}))


def costs(url: str, n: int = 3000) -> dict[str, float]:
    out = {}
    for mode in ("blocking", "patched", "threadpool"):
        cmd = [sys.executable, "-W", "ignore", __file__, "costs-child", mode, url, str(n)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])["us_per_call"]
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1] == "gevent-child":
        _gevent_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "costs-child":
        _costs_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "costs":
        print(json.dumps(costs(sys.argv[2]), indent=2))
