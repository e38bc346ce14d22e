"""Service rows of ``bench/run.py``: a one-worker uvicorn + FastAPI app under load.

For each contender (reference, ours, limit anchor) in turn, ``bench/service_app.py`` is started
with one shared async client pointed at the Rust stub server, and
``flightdeck-loadgen`` (a closed-loop HTTP/1.1 load generator built with the stub, in Rust, on
one thread) keeps ``CONCURRENCY`` keep-alive connections busy on one endpoint for a fixed time
after a warm-up: ``GET /health`` (``await client.health()``) and ``GET /ingest`` (build one
event, ``await client.ingest_run_events([event])``). Recorded per endpoint: requests/s and p99
latency over the measured window, and errors over the whole run (refused or broken
connections, timeouts, non-200 answers, or a body other than the expected one): every
contender must have none, a correctness check of the run.

Everything runs on this machine: the service, the stub and the load generator share its cores,
so the service's requests/s is a same-machine figure, not a capacity.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
APP = BENCH_DIR / "service_app.py"
LOADGEN = BENCH_DIR / "stub-server" / "target" / "release" / "flightdeck-loadgen"
IMPLS = ("reference", "ours", "limit")
CONCURRENCY = 32
HEALTH_JSON = {"status": "ok", "mutation_auth": "loopback", "read_auth": "open"}


#: (key, path, the JSON body each answer must hold).
ENDPOINTS = (
    ("health", "/health", HEALTH_JSON),
    ("ingest", "/ingest", {"inserted": 1}),
)


@dataclass(frozen=True)
class Plan:
    duration_s: float
    warmup_s: float
    reps: int


FULL = Plan(duration_s=5.0, warmup_s=1.0, reps=3)
QUICK = Plan(duration_s=0.5, warmup_s=0.2, reps=1)

#: (row key, title) in table order.
ROWS = (
    ("service_health", "service: await health()"),
    ("service_health_p99", "service: await health() p99"),
    ("service_ingest", "service: RunEvent + await ingest"),
    ("service_ingest_p99", "service: RunEvent + await ingest p99"),
)

#: (row, target text, check(row, workloads)) -- wrapped into ``run.Target``.
TARGETS: list[tuple[str, str, Callable[[Any, dict[str, Any]], bool]]] = [
    (
        "service_health",
        "≥10× the reference's requests/s",
        lambda r, _w: r.advantage(r.ref) >= 10,
    ),
    (
        "service_health",
        "zero errors",
        lambda _r, w: max(w["service_health"]["errors"]["ours"], default=1) == 0,
    ),
    (
        "service_ingest",
        "≥10× the reference's requests/s",
        lambda r, _w: r.advantage(r.ref) >= 10,
    ),
    (
        "service_ingest",
        "zero errors",
        lambda _r, w: max(w["service_ingest"]["errors"]["ours"], default=1) == 0,
    ),
]

#: Chart ticks (targets vs the reference).
GOALS = {"service_health": 10, "service_ingest": 10}


def _progress(msg: str) -> None:
    print(f"  {msg}", flush=True)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid``, all its threads (Linux; else ``None``)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def app_server(impl: str, stub_url: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Runs the app with ``impl``'s client; yields its port once ``/health`` answers (and its
    pid in the info dict)."""
    proc = subprocess.Popen(
        [sys.executable, str(APP), impl, stub_url],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=BENCH_DIR,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        try:
            info: dict[str, Any] = json.loads(line)
        except ValueError:
            raise RuntimeError(f"service app ({impl}) did not start (printed {line!r})") from None
        port = int(info["port"])
        info["pid"] = proc.pid
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = get(port, "/health")
                if status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"service app ({impl}) never answered /health")
            time.sleep(0.05)
        yield port, info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def load(port: int, path: str, expected: bytes, plan: Plan, pid: int) -> dict[str, Any]:
    """One run of the load generator against ``path``, every answer expected to be
    ``expected`` byte for byte; its JSON summary, plus the service process's CPU time per
    answered request (µs, warm-up included) as ``cpu_us_per_request``."""
    cpu_before = cpu_seconds(pid)
    r = subprocess.run(
        [
            str(LOADGEN),
            str(port),
            path,
            str(CONCURRENCY),
            str(plan.duration_s),
            str(plan.warmup_s),
            expected.decode(),
        ],
        capture_output=True,
        text=True,
        timeout=plan.duration_s + plan.warmup_s + 60,
        check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(f"flightdeck-loadgen failed ({r.returncode}): {r.stderr.strip()}")
    cpu_after = cpu_seconds(pid)
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    answered = out["ok_total"] + out["bad_status"] + out["bad_body"]
    out["cpu_us_per_request"] = (
        (cpu_after - cpu_before) / answered * 1e6
        if cpu_before is not None and cpu_after is not None and answered
        else None
    )
    return out


def _rotated(seq: tuple[Any, ...], k: int) -> tuple[Any, ...]:
    k %= len(seq)
    return seq[k:] + seq[:k]


def run(stub_url: str, quick: bool, checks: Any) -> dict[str, dict[str, Any]]:
    """All service measurements; the workload dicts ``bench/run.py`` turns into rows."""
    if not LOADGEN.is_file():
        raise SystemExit(
            f"load generator not built: {LOADGEN} (run: make bench, or cargo build --release "
            f"--manifest-path {LOADGEN.parents[2] / 'Cargo.toml'})"
        )
    plan = QUICK if quick else FULL
    rps: dict[str, dict[str, list[float]]] = {e[0]: {n: [] for n in IMPLS} for e in ENDPOINTS}
    p99: dict[str, dict[str, list[float]]] = {e[0]: {n: [] for n in IMPLS} for e in ENDPOINTS}
    errors: dict[str, dict[str, list[int]]] = {e[0]: {n: [] for n in IMPLS} for e in ENDPOINTS}
    cpu: dict[str, dict[str, list[float]]] = {e[0]: {n: [] for n in IMPLS} for e in ENDPOINTS}
    ceiling: dict[str, dict[str, list[float]]] = {
        e[0]: {"rps": [], "p99_ms": [], "cpu_us_per_request": []} for e in ENDPOINTS
    }
    runs: list[dict[str, Any]] = []
    server_info: dict[str, Any] = {}
    for rep in range(plan.reps):
        # "none": the same app without any client call, the ceiling of this machine right now.
        for impl in _rotated((*IMPLS, "none"), rep):
            with app_server(impl, stub_url) as (port, info):
                server_info = {"loop": info.get("loop"), "http": info.get("http")}
                bodies: dict[str, bytes] = {}
                for key, path, expected in ENDPOINTS:
                    # The exact bytes every answer under load must repeat; what they say is
                    # checked here (key order is the client's own: pyreqwest sorts them).
                    status, body = get(port, path)
                    answer = (status, json.loads(body) if status == 200 else body)
                    checks.expect(f"service {path}: answer", impl, answer, (200, expected))
                    bodies[key] = body
                for key, path, _expected in _rotated(ENDPOINTS, rep):
                    res = load(port, path, bodies[key], plan, info["pid"])
                    runs.append({"client": impl, "endpoint": key, "rep": rep, **res})
                    checks.expect(f"service {path}: errors under load", impl, res["errors"], 0)
                    checks.expect(
                        f"service {path}: requests measured", impl, res["requests"] > 0, True
                    )
                    note = f", first error: {res['first_error']}" if res["errors"] else ""
                    cpu_note = (
                        ""
                        if res["cpu_us_per_request"] is None
                        else f"  CPU {res['cpu_us_per_request']:5.0f} µs/req"
                    )
                    _progress(
                        f"{impl:9s} {path:8s} {res['rps']:8.0f} req/s  p99 "
                        f"{res['p99_us'] / 1000:6.1f} ms{cpu_note}  errors {res['errors']}{note}"
                    )
                    if impl == "none":
                        ceiling[key]["rps"].append(float(res["rps"]))
                        ceiling[key]["p99_ms"].append(res["p99_us"] / 1000.0)
                        if res["cpu_us_per_request"] is not None:
                            ceiling[key]["cpu_us_per_request"].append(res["cpu_us_per_request"])
                        continue
                    rps[key][impl].append(float(res["rps"]))
                    p99[key][impl].append(res["p99_us"] / 1000.0)
                    errors[key][impl].append(int(res["errors"]))
                    if res["cpu_us_per_request"] is not None:
                        cpu[key][impl].append(float(res["cpu_us_per_request"]))
    common = {
        "concurrency": CONCURRENCY,
        "duration_s": plan.duration_s,
        "warmup_s": plan.warmup_s,
        "reps": plan.reps,
        "server": {"uvicorn_workers": 1, **server_info},
        "load_generator": "bench/stub-server flightdeck-loadgen (Rust, 1 thread, closed loop)",
    }
    out: dict[str, dict[str, Any]] = {}
    for key, _path, _expected in ENDPOINTS:
        out[f"service_{key}"] = {
            "unit": "req/s",
            "better": "higher",
            "samples": rps[key],
            "errors": errors[key],
            "cpu_us_per_request": cpu[key],
            "app_without_client": ceiling[key],
            "limit_is": "the same app with pyreqwest's async client and orjson, plain dicts",
            **common,
            "runs": [r for r in runs if r["endpoint"] == key],
        }
        out[f"service_{key}_p99"] = {
            "unit": "ms p99",
            "better": "lower",
            "samples": p99[key],
            **common,
        }
    return out


def note(w: dict[str, Any], key: str) -> str:
    """The table's note of a service row: errors (req/s rows) or the load (p99 rows)."""
    d = w[key]
    if key.endswith("_p99"):
        return f"{d['concurrency']} conns, {d['duration_s']:g} s after {d['warmup_s']:g} s warm-up"
    errs, cpu = d["errors"], d["cpu_us_per_request"]
    text = "errors: " + ", ".join(f"{n} {max(errs[n], default=0)}" for n in IMPLS)
    if all(cpu[n] for n in IMPLS):
        text += "; service CPU µs/req: " + ", ".join(
            f"{n} {statistics.median(cpu[n]):.0f}" for n in IMPLS
        )
    alone = d["app_without_client"]
    if alone["rps"]:
        text += f"; the app without a client call: {statistics.median(alone['rps']):.0f} req/s"
        if alone["cpu_us_per_request"]:
            text += f", {statistics.median(alone['cpu_us_per_request']):.0f} µs/req"
    return text


def report_lines(w: dict[str, Any]) -> list[str]:
    d = w.get("service_health") or w.get("service_ingest")
    if d is None:
        return []
    server = d["server"]
    return [
        f"- service rows: FastAPI on uvicorn (1 worker, loop {server.get('loop')}, http "
        f"{server.get('http')}) holding one shared async client per contender, against the "
        f"stub; `flightdeck-loadgen` (Rust, one thread) keeps {d['concurrency']} keep-alive "
        f"connections busy for {d['duration_s']:g} s after {d['warmup_s']:g} s of warm-up, "
        f"{d['reps']} repeats; service, stub and load generator share this machine's cores. "
        "The note gives the service process's CPU time per request (all its threads, warm-up "
        "included): less sensitive to other load on the machine than requests/s",
    ]
