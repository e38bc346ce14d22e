#!/usr/bin/env python3
"""Soak test: minutes of mixed client and emitter traffic with faults, watching for leaks.

Runs for ``--seconds`` (default 180; ``--quick``: 20) against servers it starts itself on
127.0.0.1:

* a real ``flightdeck serve`` (``flightdeck_rs._server.FlightdeckServer``): rounds of ingest,
  ``list_runs``, ``iter_runs`` / ``iter_runs_export`` helpers, ``fetch_runs_export_ndjson``,
  ``post_diff`` and ``health`` on sync and async clients, native and injected (httpx) paths,
  long-lived and freshly created clients, a new event loop per async round;
* a chaos server (this file with ``--serve-chaos``, in a child process so its threads,
  sockets and memory are not counted here) with two ports: an API port whose answer is
  chosen by the request (``fault-<kind>`` in the path or the events' ``release_id``: ok, 500,
  reset, close, hang, partial status line, cut-short body), and an events port for an
  ``Emitter`` with random 500s, 429 + Retry-After, slow answers, resets mid-body,
  commit-then-reset and periodic outages (port closed).

Every call must return the right result (compared with what was sent) or raise the exception
expected for its fault; anything else is an *unexpected outcome*. Every few seconds the
process's RSS (``/proc/self/status`` VmRSS), open file descriptors (``/proc/self/fd``) and
thread count are sampled, and each emitter's accounting identity is checked
(``accepted == acked + dropped_after_accept + queue_events + in_flight``).

At the end it fails (exit status 1) unless: RSS grew by less than ``--rss-bound-mib``
(default 20) after the warm-up, file descriptors and threads are back to their baseline
(within ``--fd-tolerance`` / ``--thread-tolerance``) once every client is closed, the
identity always held, every event accepted by an emitter reached the server or was counted
as dropped, and there was no unexpected outcome. It prints a sample table and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MiB = 1024 * 1024
FAULT_KINDS = ("ok", "500", "reset", "close", "hang", "partial", "cut")
HANG_S = 2.0  # how long the chaos server holds a "hang" / "partial" connection
FAULT_TIMEOUT_S = 0.3  # client read timeout for fault calls (well below HANG_S)


# ============================================================================ chaos server
# Runs in a child process (``--serve-chaos``): prints "READY <api port> <events port>", then
# serves until its stdin reaches EOF (the parent exited or closed it).


def _http(status: int, body: bytes, *headers: tuple[str, str]) -> bytes:
    reasons = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error"}
    lines = [f"HTTP/1.1 {status} {reasons.get(status, 'Status')}"]
    lines += ["Content-Type: application/json", *(f"{k}: {v}" for k, v in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Conn:
    """Reads HTTP/1.1 requests off one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def read_head(self) -> tuple[str, str, int] | None:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target = request_line.split(" ")[:2]
        length = 0
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return method, target, length

    def read_body(self, length: int, upto: int | None = None) -> bytes | None:
        want = length if upto is None else min(length, upto)
        while len(self.buf) < want:
            if not self._fill():
                return None
        body, self.buf = self.buf[:want], self.buf[want:]
        return body


class ChaosServer:
    def __init__(self, seed: int, down_every_s: float, down_for_s: float) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.calm = False
        self.ids: set[str] = set()
        self.requests = Counter[str]()
        self.down_every_s = down_every_s
        self.down_for_s = down_for_s
        self.api = self._listen(0)
        self.events_port = 0
        self.events: socket.socket | None = self._listen(0)
        self.events_port = self.events.getsockname()[1]
        self.events_conns: set[socket.socket] = set()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(256)
        return sock

    def _count(self, what: str) -> None:
        with self.lock:
            self.requests[what] += 1

    # -- accept loops
    def _accept(self, listener: socket.socket, handler: Callable[[socket.socket], None]) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._guard, args=(handler, conn), daemon=True).start()

    @staticmethod
    def _guard(handler: Callable[[socket.socket], None], conn: socket.socket) -> None:
        try:
            handler(conn)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _outages(self) -> None:
        """Close the events port for ``down_for_s`` every ``down_every_s`` (unless calm)."""
        while not self.stop.wait(self.down_every_s):
            if self.calm or self.events is None:
                continue
            listener, self.events = self.events, None
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            with self.lock:
                conns, self.events_conns = self.events_conns, set()
            for c in conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
            self._count("outage")
            self.stop.wait(self.down_for_s)
            self.events = self._listen(self.events_port)
            threading.Thread(
                target=self._accept, args=(self.events, self._events_conn), daemon=True
            ).start()

    # -- API port: the request names its fault
    def _api_conn(self, sock: socket.socket) -> None:
        conn = _Conn(sock)
        while True:
            head = conn.read_head()
            if head is None:
                return
            method, target, length = head
            kind = "ok"
            if "fault-" in target:
                kind = target.split("fault-", 1)[1].split("&", 1)[0].split("-", 1)[0]
            body = conn.read_body(length) if length else b""
            if body is None:
                return
            if target.startswith("/_ctl/"):
                self._control(sock, target)
                continue
            if kind == "ok" and b'"fault-' in body:  # POST bodies: a release id names it
                kind = body.split(b'"fault-', 1)[1].split(b"-", 1)[0].decode()
            self._count(f"api:{kind}")
            if kind == "ok":
                if target == "/v1/events":
                    answer: Any = {"inserted": len(json.loads(body)["events"])}
                else:
                    doc = json.loads(body) if body else None
                    answer = {"status": "ok", "method": method, "target": target, "body": doc}
                sock.sendall(_http(200, json.dumps(answer).encode()))
            elif kind == "500":
                sock.sendall(_http(500, b'{"detail": "chaos"}'))
            elif kind == "reset":
                _rst(sock)
                return
            elif kind == "close":
                sock.shutdown(socket.SHUT_RDWR)
                return
            elif kind == "hang":
                self.stop.wait(HANG_S)
                return
            elif kind == "partial":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
                self.stop.wait(HANG_S)
                return
            elif kind == "cut":
                sock.sendall(_http(200, b'{"status": "ok", "pad": "xxxxxxxxxxxxxxxxxxxx"}')[:-20])
                sock.shutdown(socket.SHUT_RDWR)
                return
            else:
                sock.sendall(_http(400, b'{"detail": "unknown fault"}'))

    def _control(self, sock: socket.socket, target: str) -> None:
        if target.startswith("/_ctl/calm"):
            self.calm = True
        with self.lock:
            answer = {"unique_ids": len(self.ids), "requests": dict(self.requests)}
        sock.sendall(_http(200, json.dumps(answer).encode()))

    # -- events port: random chaos for the emitter
    def _insert(self, body: bytes) -> int:
        ids = [str(e["run_id"]) for e in json.loads(body)["events"]]
        with self.lock:
            new = set(ids) - self.ids
            self.ids |= new
        return len(new)

    def _events_conn(self, sock: socket.socket) -> None:
        with self.lock:
            self.events_conns.add(sock)
        try:
            self._events_loop(sock)
        finally:
            with self.lock:
                self.events_conns.discard(sock)

    def _events_loop(self, sock: socket.socket) -> None:
        conn = _Conn(sock)
        while True:
            head = conn.read_head()
            if head is None:
                return
            _, _, length = head
            with self.lock:
                roll = 0.0 if self.calm else self.rng.random()
            if 0.95 <= roll:  # reset mid-body
                self._count("events:reset_mid_body")
                conn.read_body(length, upto=length // 2)
                _rst(sock)
                return
            body = conn.read_body(length)
            if body is None:
                return
            if roll < 0.70:
                self._count("events:ok")
                inserted = self._insert(body)
                sock.sendall(_http(200, json.dumps({"inserted": inserted}).encode()))
            elif roll < 0.80:
                self._count("events:500")
                sock.sendall(_http(500, b'{"detail": "chaos"}'))
            elif roll < 0.85:
                self._count("events:429")
                sock.sendall(_http(429, b'{"detail": "slow down"}', ("Retry-After", "1")))
            elif roll < 0.90:  # slower than the emitter's request timeout
                self._count("events:slow")
                inserted = self._insert(body)
                if self.stop.wait(1.5):
                    return
                sock.sendall(_http(200, json.dumps({"inserted": inserted}).encode()))
            else:  # committed, then the connection drops
                self._count("events:commit_then_reset")
                self._insert(body)
                _rst(sock)
                return

    def serve(self) -> None:
        threading.Thread(target=self._accept, args=(self.api, self._api_conn), daemon=True).start()
        assert self.events is not None
        threading.Thread(
            target=self._accept, args=(self.events, self._events_conn), daemon=True
        ).start()
        threading.Thread(target=self._outages, daemon=True).start()
        print(f"READY {self.api.getsockname()[1]} {self.events_port}", flush=True)
        sys.stdin.read()  # until the parent closes our stdin or exits
        self.stop.set()


def serve_chaos(args: argparse.Namespace) -> int:
    ChaosServer(args.seed, args.down_every, args.down_for).serve()
    return 0


# ============================================================================ measurements


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def thread_count() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError("no Threads in /proc/self/status")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Sample:
    t: float
    rss: int
    fds: int
    threads: int
    calls: int
    events_accepted: int
    events_acked: int


@dataclass
class Tally:
    """Outcomes of every call, by (worker, what, outcome); unexpected ones are kept."""

    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    unexpected_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, worker: str, what: str, outcome: str = "ok") -> None:
        with self.lock:
            self.outcomes[(worker, what, outcome)] += 1

    def bad(self, worker: str, what: str, detail: str) -> None:
        with self.lock:
            self.outcomes[(worker, what, "UNEXPECTED")] += 1
            self.unexpected_count += 1
            if len(self.unexpected) < 20:
                self.unexpected.append(f"{worker}/{what}: {detail}")

    def calls(self) -> int:
        with self.lock:
            return sum(self.outcomes.values())


# ============================================================================ workloads


def event_kwargs(release_id: str, run_id: str, environment: str, n: int) -> dict[str, Any]:
    return {
        "timestamp": datetime.now(UTC) - timedelta(seconds=5 + n),
        "agent_id": "agent_support",
        "release_id": release_id,
        "run_id": run_id,
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
        "metrics": {"success": n % 5 != 0, "latency_ms": 100 + n},
    }


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# Expected exception per fault kind (observed on the reference, i.e. httpx; the injected path
# raises httpx's own exceptions, the native path must raise the same).
EXPECTED: dict[str, tuple[str, ...]] = {
    "500": ("HTTPStatusError",),
    "reset": ("ReadError",),
    "close": ("RemoteProtocolError",),
    "hang": ("ReadTimeout",),
    "partial": ("ReadTimeout",),
    "cut": ("RemoteProtocolError",),
}


class Soak:
    def __init__(self, args: argparse.Namespace, srv: Any, api_url: str, events_url: str) -> None:
        self.args = args
        self.srv = srv
        self.api_url = api_url
        self.events_url = events_url
        self.stop = threading.Event()
        self.tally = Tally()
        self.rng_lock = threading.Lock()
        self.seq = 0
        self.diff_keys: set[str] | None = None
        # Emitter accounting over every emitter generation.
        self.em_lock = threading.Lock()
        self.em_current: Any = None
        self.em_closed_stats: list[dict[str, Any]] = []
        self.em_identity_violations: list[str] = []
        self.em_generations = 0
        self.em_close_results: list[bool] = []

    def next_id(self, prefix: str) -> str:
        with self.rng_lock:
            self.seq += 1
            return f"{prefix}-{os.getpid()}-{self.seq}"

    # -- real server rounds ------------------------------------------------------------------

    def _round_events(self, worker: str, n: int) -> tuple[str, list[Any]]:
        from flightdeck_rs.models import RunEvent

        env = f"soak-{worker}-{uuid.uuid4().hex[:10]}"
        events = [
            RunEvent(**event_kwargs(self.srv.baseline_id, self.next_id("run"), env, i))
            for i in range(n)
        ]
        return env, events

    def _check_runs(self, what: str, worker: str, got: list[str], want: list[str]) -> None:
        if sorted(got) == sorted(want):
            self.tally.ok(worker, what)
        else:
            self.tally.bad(worker, what, f"run ids {sorted(got)[:3]}... != {sorted(want)[:3]}...")

    def _check_diff(self, worker: str, diff: Any) -> None:
        keys = set(diff) if isinstance(diff, dict) else set()
        with self.rng_lock:
            if self.diff_keys is None:
                self.diff_keys = keys
        if keys and keys == self.diff_keys:
            self.tally.ok(worker, "post_diff")
        else:
            self.tally.bad(worker, "post_diff", f"keys {sorted(keys)}")

    def sync_round(self, worker: str, client: Any, n_round: int) -> None:
        from flightdeck_rs.helpers import iter_runs, iter_runs_export

        env, events = self._round_events(worker, 3 + n_round % 4)
        want = [e.run_id for e in events]
        base = self.srv.baseline_id
        if client.health().get("status") == "ok":
            self.tally.ok(worker, "health")
        else:
            self.tally.bad(worker, "health", "status != ok")
        if n_round % 2:
            inserted = client.ingest_run_events(events)
        else:
            inserted = client.ingest_run_events_batch(events, chunk_size=2)
        if inserted == len(events):
            self.tally.ok(worker, "ingest")
        else:
            self.tally.bad(worker, "ingest", f"inserted {inserted} of {len(events)}")
        runs = client.list_runs(release_id=base, window="1h", environment=env)
        self._check_runs("list_runs", worker, [r["run_id"] for r in runs["events"]], want)
        if n_round % 3 == 0:
            got = [e.run_id for e in iter_runs_export(client, release_id=base, window="1h",
                                                       environment=env, page_size=2)]
            self._check_runs("iter_runs_export", worker, got, want)
        elif n_round % 3 == 1:
            got = [e.run_id for e in iter_runs(client, release_id=base, window="1h",
                                                environment=env, page_size=2)]
            self._check_runs("iter_runs", worker, got, want)
        else:
            body, headers = client.fetch_runs_export_ndjson(
                release_id=base, window="1h", environment=env
            )
            got = [json.loads(line)["run_id"] for line in body.splitlines() if line.strip()]
            self._check_runs("fetch_runs_export_ndjson", worker, got, want)
        if n_round % 5 == 0:
            self._check_diff(worker, client.post_diff(
                baseline_release_id=base, candidate_release_id=self.srv.candidate_id,
                window="1h", environment=env,
            ))

    async def async_round(self, worker: str, client: Any, n_round: int) -> None:
        from flightdeck_rs.helpers import aiter_runs_export

        env, events = self._round_events(worker, 3 + n_round % 4)
        want = [e.run_id for e in events]
        base = self.srv.baseline_id
        half = len(events) // 2
        health, a, b = await asyncio.gather(
            client.health(),
            client.ingest_run_events(events[:half]),
            client.ingest_run_events(events[half:]),
        )
        if health.get("status") == "ok":
            self.tally.ok(worker, "health")
        else:
            self.tally.bad(worker, "health", "status != ok")
        if a + b == len(events):
            self.tally.ok(worker, "ingest")
        else:
            self.tally.bad(worker, "ingest", f"inserted {a + b} of {len(events)}")
        pages = await asyncio.gather(
            *(client.list_runs(release_id=base, window="1h", environment=env) for _ in range(3))
        )
        for page in pages:
            self._check_runs("list_runs", worker, [r["run_id"] for r in page["events"]], want)
        if n_round % 2 == 0:
            got = [e.run_id async for e in aiter_runs_export(
                client, release_id=base, window="1h", environment=env, page_size=2)]
            self._check_runs("aiter_runs_export", worker, got, want)
        if n_round % 5 == 0:
            self._check_diff(worker, await client.post_diff(
                baseline_release_id=base, candidate_release_id=self.srv.candidate_id,
                window="1h", environment=env,
            ))

    def _guarded(self, worker: str, body: Callable[[int], None]) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                body(n)
            except BaseException as exc:  # noqa: BLE001 - any exception here is unexpected
                self.tally.bad(worker, "round", _describe(exc) + "\n" + traceback.format_exc())
                time.sleep(0.2)
            n += 1

    def sync_worker(self, injected: bool) -> None:
        import httpx

        from flightdeck_rs.sdk import FlightdeckClient

        worker = "sync-injected" if injected else "sync-native"
        http = httpx.Client(timeout=10.0) if injected else None
        long_lived = FlightdeckClient(self.srv.base_url, timeout_s=10.0, client=http)

        def body(n: int) -> None:
            if n % 10 == 9:  # a fresh client now and then: lifecycle churn
                with FlightdeckClient(self.srv.base_url, timeout_s=10.0, client=http) as fresh:
                    self.sync_round(worker, fresh, n)
            else:
                self.sync_round(worker, long_lived, n)

        try:
            self._guarded(worker, body)
        finally:
            long_lived.close()
            if http is not None:
                http.close()

    def async_worker(self, injected: bool) -> None:
        """A new event loop (asyncio.run) every round; the native long-lived client is shared
        across those loops, an injected httpx.AsyncClient is made per loop (httpx ties it to
        one loop)."""
        import httpx

        from flightdeck_rs.sdk import AsyncFlightdeckClient

        worker = "async-injected" if injected else "async-native"
        long_lived = None if injected else AsyncFlightdeckClient(self.srv.base_url, timeout_s=10.0)

        async def one(n: int) -> None:
            if injected:
                async with httpx.AsyncClient(timeout=10.0) as http:
                    client = AsyncFlightdeckClient(self.srv.base_url, client=http)
                    await self.async_round(worker, client, n)
                    await client.aclose()
            elif n % 10 == 9:
                async with AsyncFlightdeckClient(self.srv.base_url, timeout_s=10.0) as fresh:
                    await self.async_round(worker, fresh, n)
            else:
                assert long_lived is not None
                await self.async_round(worker, long_lived, n)

        try:
            self._guarded(worker, lambda n: asyncio.run(one(n)))
        finally:
            if long_lived is not None:
                asyncio.run(long_lived.aclose())

    # -- faults -------------------------------------------------------------------------------

    def _fault_outcome(self, worker: str, what: str, kind: str, call: Callable[[], Any]) -> None:
        import httpx

        try:
            result = call()
        except httpx.HTTPStatusError as exc:
            name = "HTTPStatusError"
            if kind == "500" and exc.response.status_code == 500:
                self.tally.ok(worker, what, f"{kind}:{name}")
            else:
                self.tally.bad(worker, what, f"{kind}: {_describe(exc)}")
            return
        except Exception as exc:  # noqa: BLE001 - compared with the expected types
            name = type(exc).__name__
            if kind != "ok" and name in EXPECTED[kind]:
                self.tally.ok(worker, what, f"{kind}:{name}")
            else:
                self.tally.bad(worker, what, f"{kind}: {_describe(exc)}")
            return
        if kind != "ok":
            self.tally.bad(worker, what, f"{kind}: no exception, got {result!r:.200}")
        elif result is True:
            self.tally.ok(worker, what, "ok")
        else:
            self.tally.bad(worker, what, f"ok: wrong result {result!r:.200}")

    def _fault_call(self, client: Any, what: str, kind: str, tag: str) -> Callable[[], Any]:
        from flightdeck_rs.models import RunEvent

        rel = f"fault-{kind}-{tag}"
        if what == "list_runs":
            def call() -> bool:
                r = client.list_runs(release_id=rel, window="1h")
                return bool(r["target"].startswith(f"/v1/runs?release_id={rel}&"))
        elif what == "post_diff":
            def call() -> bool:
                r = client.post_diff(
                    baseline_release_id=rel, candidate_release_id="c", window="1h"
                )
                return bool(r["body"]["baseline_release_id"] == rel)
        else:
            events = [RunEvent(**event_kwargs(rel, self.next_id("f"), "soak", i)) for i in range(3)]

            def call() -> bool:
                return bool(client.ingest_run_events(events) == 3)
        return call

    def fault_worker(self, seed: int) -> None:
        import httpx

        from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

        rng = random.Random(seed)
        worker = "faults"
        http = httpx.Client(timeout=FAULT_TIMEOUT_S)
        clients = {
            "native": FlightdeckClient(self.api_url, timeout_s=FAULT_TIMEOUT_S),
            "injected": FlightdeckClient(self.api_url, client=http),
        }
        async_client = AsyncFlightdeckClient(self.api_url, timeout_s=FAULT_TIMEOUT_S)
        loop = asyncio.new_event_loop()
        whats = ("list_runs", "post_diff", "ingest")
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                kind = rng.choice(FAULT_KINDS) if rng.random() < 0.5 else "ok"
                what = rng.choice(whats)
                path = rng.choice(("native", "injected", "async"))
                tag = str(n)
                if path == "async":
                    sync_call = self._fault_call(_AsyncAsSync(async_client, loop), what, kind, tag)
                else:
                    sync_call = self._fault_call(clients[path], what, kind, tag)
                self._fault_outcome(f"{worker}-{path}", what, kind, sync_call)
                if kind in ("hang", "partial"):
                    time.sleep(0.05)
        finally:
            for c in clients.values():
                c.close()
            loop.run_until_complete(async_client.aclose())
            loop.close()
            http.close()

    # -- emitter ------------------------------------------------------------------------------

    def _emitter_stats(self) -> dict[str, Any] | None:
        with self.em_lock:
            em = self.em_current
        return None if em is None else dict(em.stats())

    def check_identity(self, stats: dict[str, Any], when: str) -> None:
        lhs = stats["accepted"]
        rhs = (stats["acked"] + stats["dropped_after_accept"] + stats.get("left_in_spool", 0)
               + stats["queue_events"] + stats["in_flight"])
        if lhs != rhs:
            detail = {k: stats.get(k) for k in ("accepted", "acked", "dropped_after_accept",
                                                 "queue_events", "in_flight")}
            self.em_identity_violations.append(f"{when}: {detail}")

    def emitter_worker(self, rate: float, generation_s: float) -> None:
        from flightdeck_rs import Emitter

        template = event_kwargs("rel_emitter", "x", "soak-emitter", 1)
        template["timestamp"] = template["timestamp"].isoformat()
        config: dict[str, Any] = {
            "flush_interval_s": 0.2,
            "connect_timeout_s": 0.5,
            "request_timeout_s": 1.0,
            "backoff_base_s": 0.05,
            "backoff_max_s": 1.0,
            "atexit_timeout_s": 0,
        }
        interval = 1.0 / rate
        while not self.stop.is_set():
            em = Emitter(self.events_url, **config)
            with self.em_lock:
                self.em_current = em
                self.em_generations += 1
            born = time.monotonic()
            next_at = born
            while not self.stop.is_set() and time.monotonic() - born < generation_s:
                # A few events per tick keeps the rate without a sleep per event.
                for _ in range(10):
                    if not em.emit({**template, "run_id": self.next_id("ev")}):
                        self.tally.bad("emitter", "emit", "emit() returned False")
                next_at += 10 * interval
                self.stop.wait(max(0.0, next_at - time.monotonic()))
            self.em_close_results.append(em.close(timeout_s=15.0))
            stats = dict(em.stats())
            self.check_identity(stats, f"generation {self.em_generations} closed")
            with self.em_lock:
                self.em_closed_stats.append(stats)
                self.em_current = None

    def emitter_totals(self) -> dict[str, int]:
        with self.em_lock:
            all_stats = list(self.em_closed_stats)
        keys = ("accepted", "acked", "dropped_after_accept", "server_duplicates", "requests",
                "retries")
        return {k: sum(int(s.get(k, 0)) for s in all_stats) for k in keys}


class _AsyncAsSync:
    """Drives an async client's coroutines to completion on one private loop."""

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda *a, **kw: self._loop.run_until_complete(method(*a, **kw))


# ============================================================================ driver


@contextlib.contextmanager
def chaos_process(args: argparse.Namespace) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve-chaos", "--seed", str(args.seed),
         "--down-every", str(args.down_every), "--down-for", str(args.down_for)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"chaos server did not start: {line!r}")
        _, api, events = line.split()
        yield f"http://127.0.0.1:{api}", f"http://127.0.0.1:{events}", proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chaos_control(api_url: str, action: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{api_url}/_ctl/{action}", timeout=10) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def settle(baseline: int, probe: Callable[[], int], timeout_s: float) -> int:
    """``probe()`` once it is back to ``baseline`` (or at the deadline)."""
    deadline = time.monotonic() + timeout_s
    value = probe()
    while value > baseline and time.monotonic() < deadline:
        time.sleep(0.25)
        gc.collect()
        value = probe()
    return value


def prime(soak: Soak) -> None:
    """One round of every kind before the baseline: lazy imports, runtimes and caches."""
    import httpx

    from flightdeck_rs import Emitter
    from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

    with FlightdeckClient(soak.srv.base_url) as c:
        soak.sync_round("prime", c, 0)
        soak.sync_round("prime", c, 1)
        soak.sync_round("prime", c, 2)
    with httpx.Client() as http, FlightdeckClient(soak.srv.base_url, client=http) as c:
        soak.sync_round("prime", c, 0)

    async def one() -> None:
        async with AsyncFlightdeckClient(soak.srv.base_url) as c:
            await soak.async_round("prime", c, 0)
        async with httpx.AsyncClient() as http:
            injected = AsyncFlightdeckClient(soak.srv.base_url, client=http)
            await soak.async_round("prime", injected, 0)

    asyncio.run(one())
    em = Emitter(soak.events_url, atexit_timeout_s=0, flush_interval_s=0.05)
    em.emit({**event_kwargs("rel_emitter", "prime", "soak-emitter", 1),
             "timestamp": datetime.now(UTC).isoformat(), "run_id": soak.next_id("prime")})
    em.close(timeout_s=10)
    gc.collect()


def run(args: argparse.Namespace) -> int:
    from flightdeck_rs._server import FlightdeckServer

    seconds = 20.0 if args.quick and args.seconds is None else float(args.seconds or 180.0)
    warmup = max(5.0, seconds * 0.15)
    srv = FlightdeckServer()
    print(f"soak: {seconds:.0f} s (warm-up {warmup:.0f} s); starting servers ...", flush=True)
    srv.start(timeout_s=60.0)
    failures: list[str] = []
    samples: list[Sample] = []
    try:
        with chaos_process(args) as (api_url, events_url, _proc):
            soak = Soak(args, srv, api_url, events_url)
            prime(soak)
            soak.tally = Tally()  # the primer's calls are not part of the soak's counts
            base_fds, base_threads = fd_count(), thread_count()
            workers = [
                threading.Thread(target=soak.sync_worker, args=(False,), name="sync-native"),
                threading.Thread(target=soak.sync_worker, args=(True,), name="sync-injected"),
                threading.Thread(target=soak.async_worker, args=(False,), name="async-native"),
                threading.Thread(target=soak.async_worker, args=(True,), name="async-injected"),
                threading.Thread(target=soak.fault_worker, args=(args.seed,), name="faults"),
                threading.Thread(
                    target=soak.emitter_worker,
                    args=(args.rate, max(10.0, seconds / 4)),
                    name="emitter",
                ),
            ]
            start = time.monotonic()
            for w in workers:
                w.start()
            rss_warm: int | None = None
            while True:
                now = time.monotonic() - start
                stats = soak._emitter_stats()
                if stats is not None:
                    soak.check_identity(stats, f"t={now:.0f}s")
                totals = soak.emitter_totals()
                accepted = totals["accepted"] + (stats["accepted"] if stats else 0)
                acked = totals["acked"] + (stats["acked"] if stats else 0)
                samples.append(Sample(now, rss_bytes(), fd_count(), thread_count(),
                                      soak.tally.calls(), accepted, acked))
                if rss_warm is None and now >= warmup:
                    rss_warm = samples[-1].rss
                if now >= seconds:
                    break
                time.sleep(min(args.sample_every, max(0.05, seconds - now)))
            soak.stop.set()
            for w in workers:
                w.join(timeout=60)
            hung = [w.name for w in workers if w.is_alive()]
            if hung:
                failures.append(f"workers did not stop: {hung}")
            end_rss = rss_bytes()
            server_side = chaos_control(api_url, "calm")
            gc.collect()
            end_fds = settle(base_fds, fd_count, 15.0)
            end_threads = settle(base_threads, thread_count, 15.0)
            totals = soak.emitter_totals()
            summary = summarize(args, soak, samples, rss_warm, warmup, end_rss, base_fds, end_fds,
                                base_threads, end_threads, totals, server_side, failures)
            print(summary)
    finally:
        srv.stop()
    if failures:
        print("\nSOAK FAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("\nsoak passed")
    return 0


def summarize(
    args: argparse.Namespace,
    soak: Soak,
    samples: list[Sample],
    rss_warm: int | None,
    warmup_s: float,
    end_rss: int,
    base_fds: int,
    end_fds: int,
    base_threads: int,
    end_threads: int,
    totals: dict[str, int],
    server_side: dict[str, Any],
    failures: list[str],
) -> str:
    out: list[str] = []
    out.append("\n   t(s)   RSS MiB   fds  threads    calls  ev.accepted  ev.acked")
    for s in samples:
        out.append(f"{s.t:7.1f} {s.rss / MiB:9.1f} {s.fds:5d} {s.threads:8d} {s.calls:8d} "
                   f"{s.events_accepted:12d} {s.events_acked:9d}")
    warm = rss_warm if rss_warm is not None else samples[-1].rss
    # The highest RSS seen from the end of the warm-up on, against the RSS at that point.
    growth = max([s.rss for s in samples if s.t >= warmup_s] + [end_rss]) - warm
    by_outcome = Counter[str]()
    by_worker = Counter[str]()
    for (worker, _what, outcome), n in soak.tally.outcomes.items():
        by_worker[worker] += n
        if worker == "faults" or worker.startswith("faults-"):
            by_outcome[outcome] += n
    calls = soak.tally.calls()
    out.append("\nsummary")
    rows = [
        ("calls (checked)", f"{calls}"),
        ("  by worker", ", ".join(f"{k}={v}" for k, v in sorted(by_worker.items()))),
        ("  fault outcomes", ", ".join(f"{k}={v}" for k, v in sorted(by_outcome.items()))),
        ("unexpected outcomes", f"{soak.tally.unexpected_count}"),
        ("emitter generations", f"{soak.em_generations}"),
        ("events accepted", f"{totals['accepted']}"),
        ("events acked", f"{totals['acked']}"),
        ("events dropped (counted)", f"{totals['dropped_after_accept']}"),
        ("events at server (unique)", f"{server_side['unique_ids']}"),
        ("emitter requests / retries", f"{totals['requests']} / {totals['retries']}"),
        ("server duplicates", f"{totals['server_duplicates']}"),
        ("chaos requests", ", ".join(f"{k}={v}" for k, v in sorted(
            server_side["requests"].items()))),
        ("identity violations", f"{len(soak.em_identity_violations)}"),
        ("RSS at warm-up / end", f"{warm / MiB:.1f} / {end_rss / MiB:.1f} MiB"),
        ("RSS growth after warm-up", f"{growth / MiB:+.1f} MiB (bound {args.rss_bound_mib} MiB)"),
        ("fds baseline / end",
         f"{base_fds} / {end_fds} (max during {max(s.fds for s in samples)})"),
        ("threads baseline / end",
         f"{base_threads} / {end_threads} (max during {max(s.threads for s in samples)})"),
    ]
    width = max(len(k) for k, _ in rows)
    out += [f"  {k.ljust(width)}  {v}" for k, v in rows]

    if growth >= args.rss_bound_mib * MiB:
        failures.append(f"RSS grew {growth / MiB:.1f} MiB after warm-up "
                        f"(bound {args.rss_bound_mib} MiB)")
    if end_fds > base_fds + args.fd_tolerance:
        failures.append(f"file descriptors: {end_fds} at the end vs {base_fds} at baseline")
    if end_threads > base_threads + args.thread_tolerance:
        failures.append(f"threads: {end_threads} at the end vs {base_threads} at baseline")
    if soak.tally.unexpected_count:
        failures.append(f"{soak.tally.unexpected_count} unexpected outcomes, e.g.:\n      "
                        + "\n      ".join(soak.tally.unexpected[:5]))
    if soak.em_identity_violations:
        failures.append("emitter accounting identity broken: "
                        + "; ".join(soak.em_identity_violations[:3]))
    delivered_min = totals["accepted"] - totals["dropped_after_accept"]
    if server_side["unique_ids"] < delivered_min:
        failures.append(f"events lost: server holds {server_side['unique_ids']} unique ids, "
                        f"expected at least {delivered_min} (accepted - counted drops)")
    if server_side["unique_ids"] > totals["accepted"] + 1:  # +1: the primer's event
        failures.append("server holds more unique ids than were accepted")
    if calls == 0 or totals["accepted"] == 0:
        failures.append("no traffic was generated")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--seconds", type=float, default=None, help="duration (default 180)")
    p.add_argument("--quick", action="store_true", help="20 s smoke run")
    p.add_argument("--sample-every", type=float, default=2.0, help="seconds between samples")
    p.add_argument("--rate", type=float, default=300.0, help="emitter events per second")
    p.add_argument("--rss-bound-mib", type=float, default=20.0)
    p.add_argument("--fd-tolerance", type=int, default=2)
    p.add_argument("--thread-tolerance", type=int, default=1)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--down-every", type=float, default=15.0, help="events port outage period")
    p.add_argument("--down-for", type=float, default=2.0, help="events port outage length")
    p.add_argument("--serve-chaos", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_chaos:
        return serve_chaos(args)
    if args.quick and args.seconds is None:
        args.down_every = min(args.down_every, 6.0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
