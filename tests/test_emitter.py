"""Fault tests for the background emitter (test plan of ``docs/emitter.md``, section 7.2).

Cases 1-8, 10, 12, 15, 16, 17, 18 and 22 run against the scripted fake server of
``emitter_server.py``; one more test (and case 16) runs against the real ``flightdeck serve``.
"Nothing lost" is checked by comparing the run_ids emitted with the server's unique ids, the
drop counters and the accounting identity of ``stats()``.

Every test runs under a hard wall-clock guard: a pytest-timeout marker, plus a faulthandler
watchdog that dumps every thread and exits if even that does not fire (a test stuck in native
code). Child processes run with their own timeouts. No test measures speed: the time bounds
are the design's own (a retry not before its backoff or Retry-After, exit within
atexit_timeout_s + 0.5 s, Ctrl-C within 0.5 s, a request cut at its timeout) with margins for
a loaded machine, or hang guards.
"""

from __future__ import annotations

import asyncio
import email.utils
import faulthandler
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import event_kwargs, unique_env
from emitter_server import (
    CommitThenReset,
    EventsServer,
    Ok,
    ResetMidBody,
    Sleep,
    Status,
    closed_port,
)
from flightdeck_rs import Emitter
from flightdeck_rs.models import RunEvent

# Short timings keep every case fast; each test overrides what it exercises.
FAST: dict[str, Any] = {
    "flush_interval_s": 0.05,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.5,
    "atexit_timeout_s": 0,
}
TEMPLATE = event_kwargs("rel_emitter_tests", run_id="template")
TEMPLATE["timestamp"] = TEMPLATE["timestamp"].isoformat()

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _watchdog(request: pytest.FixtureRequest) -> Iterator[None]:
    """Dump every thread's stack and exit if a test outlives its timeout by 15 s."""
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else 60.0
    faulthandler.dump_traceback_later(limit + 15.0, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# ----------------------------------------------------------------------------- helpers


def ev(run_id: str, **extra: Any) -> dict[str, Any]:
    event = dict(TEMPLATE)
    event["run_id"] = run_id
    event.update(extra)
    return event


def ids_for(tag: str, n: int) -> list[str]:
    return [f"{tag}-{os.getpid()}-{i}" for i in range(n)]


def assert_identity(s: dict[str, Any]) -> None:
    """G3: accepted = acked + dropped after accept + left in spool + queued + in flight."""
    rhs = (
        s["acked"]
        + s["dropped_after_accept"]
        + s.get("left_in_spool", 0)
        + s["queue_events"]
        + s["in_flight"]
    )
    assert s["accepted"] == rhs, s
    after_accept = s["dropped_invalid"] + s["dropped_at_shutdown"]
    # server-413 drops are part of too_large and of dropped_after_accept
    assert s["dropped_after_accept"] >= after_accept, s
    for reason, n in s["dropped"].items():
        assert s[f"dropped_{reason}"] == n, s


def assert_nothing_lost(
    emitted: list[str],
    server: EventsServer,
    s: dict[str, Any],
    *,
    refused: frozenset[str] = frozenset(),
    invalid: frozenset[str] = frozenset(),
) -> None:
    """Every accepted id is on the server or counted as dropped; no phantom ids."""
    held = server.unique_ids()
    assert held <= set(emitted), f"phantom ids: {sorted(held - set(emitted))[:5]}"
    accepted = set(emitted) - refused
    missing = accepted - held
    assert missing == set(invalid), f"missing: {sorted(missing - set(invalid))[:5]}"
    assert s["accepted"] == len(accepted), s
    assert s["acked"] == len(accepted) - len(invalid), s
    assert s["dropped_after_accept"] == len(invalid), s
    assert s["queue_events"] == 0 and s["in_flight"] == 0, s
    assert_identity(s)


def wait_until(predicate: Any, timeout_s: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


@pytest.fixture
def fake() -> Iterator[EventsServer]:
    with EventsServer() as srv:
        yield srv


def run_child(code: str, *args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter (under a timeout) and returns its outcome."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


# ----------------------------------------------------------------------------- case 1


@pytest.mark.timeout(30)
def test_01_burst_healthy_all_delivered_in_batches_of_100(fake: EventsServer) -> None:
    ids = ids_for("burst", 10_000)
    em = Emitter(fake.url, flush_interval_s=0.05, atexit_timeout_s=0)
    assert all(em.emit(ev(i)) for i in ids)
    assert em.close(timeout_s=20.0) is True
    s = em.stats()
    assert_nothing_lost(ids, fake, s)
    assert s["state"] == "closed"
    assert s["server_inserted"] == 10_000 and s["server_duplicates"] == 0
    reqs = fake.requests()
    assert all(0 < len(r.ids) <= 100 for r in reqs)
    assert sum(len(r.ids) for r in reqs) == 10_000  # each id sent exactly once
    assert s["requests"] == len(reqs) and s["retries"] == 0


# ----------------------------------------------------------------------------- case 2


@pytest.mark.timeout(30)
def test_02_server_down_then_up_delivers_without_drops(fake: EventsServer) -> None:
    fake.stop_listening()
    ids = ids_for("downup", 500)
    em = Emitter(fake.url, **FAST)
    try:
        assert all(em.emit(ev(i)) for i in ids)
        # Down for a while: the sender keeps retrying (connection refused), drops nothing.
        assert wait_until(lambda: em.stats()["retries"] >= 3, 10.0)
        time.sleep(1.0)
        s = em.stats()
        assert s["state"] == "retrying" and s["acked"] == 0
        assert sum(s["dropped"].values()) == 0
        assert "refused" in (s["last_error"] or "").lower()
        fake.start_listening()
        # No flush: delivery resumes by itself within the backoff cap + interval.
        assert wait_until(lambda: em.stats()["acked"] == 500, 10.0), em.stats()
        s = em.stats()
        assert s["retries"] > 0 and s["state"] == "running"
        assert_nothing_lost(ids, fake, s)
    finally:
        em.close(2.0)


# ----------------------------------------------------------------------------- case 3


@pytest.mark.timeout(30)
def test_03_down_past_capacity_drops_only_the_newest(fake: EventsServer) -> None:
    fake.stop_listening()
    ids = ids_for("capacity", 12_000)
    # A long interval: the sender takes a batch only when 100 events are queued.
    em = Emitter(fake.url, max_queue_events=10_000, **{**FAST, "flush_interval_s": 5.0})
    try:
        first = [em.emit(ev(i)) for i in ids[:100]]
        # The sender takes one batch (100) and retries it; that batch is in flight.
        assert wait_until(lambda: em.stats()["in_flight"] == 100, 5.0), em.stats()
        results = first + [em.emit(ev(i)) for i in ids[100:]]
        accepted = [i for i, ok in zip(ids, results, strict=True) if ok]
        refused = [i for i, ok in zip(ids, results, strict=True) if not ok]
        # 10,000 queued + the 100 in flight; the 1,900 refused are exactly the newest ids.
        assert len(accepted) == 10_100 and accepted == ids[:10_100]
        assert refused == ids[10_100:]
        s = em.stats()
        assert s["dropped_queue_full"] == 1_900 and s["accepted"] == 10_100
        assert s["queue_events"] == 10_000 and s["in_flight"] == 100
        assert_identity(s)
        fake.start_listening()
        assert em.flush(timeout_s=20.0) is True
        s = em.stats()
        assert_nothing_lost(ids, fake, s, refused=frozenset(refused))
        assert s["dropped_queue_full"] == 1_900
    finally:
        em.close(2.0)


# ----------------------------------------------------------------------------- case 4


@pytest.mark.timeout(40)
def test_04_500s_are_retried_with_equal_jitter_backoff() -> None:
    rng = random.Random(4)
    base, cap = 0.05, 0.8

    def script(k: int, ids: list[str]) -> Status | Ok:
        return Status(500) if k < 5 or rng.random() < 0.3 else Ok()

    ids = ids_for("five-hundreds", 300)
    with EventsServer(script) as srv:
        em = Emitter(
            srv.url,
            max_batch_events=50,
            flush_interval_s=0.05,
            backoff_base_s=base,
            backoff_max_s=cap,
            atexit_timeout_s=0,
        )
        try:
            assert all(em.emit(ev(i)) for i in ids)
            assert em.flush(timeout_s=30.0) is True
            s = em.stats()
        finally:
            em.close(2.0)
        reqs = srv.requests()
    assert_nothing_lost(ids, srv, s)
    failures = [r for r in reqs if r.status == 500]
    assert len(failures) >= 5 and s["retries"] == len(failures)
    assert [r.status for r in reqs[:5]] == [500] * 5
    # Each retry of a batch waits a random time in [d/2, d], d = min(cap, base * 2^attempt).
    checked = 0
    attempt = 0
    for prev, nxt in zip(reqs, reqs[1:], strict=False):
        if prev.status != 500:
            attempt = 0
            continue
        assert nxt.ids == prev.ids, "a failed batch is retried as is, before anything else"
        ceiling = min(cap, base * 2**attempt)
        gap = nxt.t - prev.t
        assert gap >= ceiling / 2 - 0.01, (attempt, gap, ceiling)
        assert gap <= ceiling + 1.0, (attempt, gap, ceiling)  # hang guard, generous
        checked += 1
        attempt += 1
    assert checked == len(failures)


# ----------------------------------------------------------------------------- case 5


def _http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("form", ["seconds", "http-date", "clamped"])
def test_05_429_retry_after_is_a_minimum_and_is_clamped(form: str) -> None:
    backoff_max = 1.0  # caps Retry-After in the "clamped" form; 5 s otherwise
    if form == "seconds":
        headers, low, high = (("Retry-After", "2"),), 2.0, 2.0 + 0.05 + 1.0
    elif form == "http-date":
        # HTTP dates have 1 s resolution: "now + 2 s" truncated waits at least 1 s, less the
        # time between the server formatting the date and the client reading it (loaded CI).
        headers, low, high = (("Retry-After", _http_date(2.0)),), 0.85, 2.0 + 0.05 + 1.0
    else:  # an hour is clamped to backoff_max_s
        headers, low, high = (("Retry-After", "3600"),), backoff_max, backoff_max + 1.0
    ids = ids_for(f"retry-after-{form}", 20)
    with EventsServer([Status(429, headers)]) as srv:
        em = Emitter(
            srv.url,
            flush_interval_s=0.05,
            backoff_base_s=0.05,
            backoff_max_s=backoff_max if form == "clamped" else 5.0,
            atexit_timeout_s=0,
        )
        try:
            assert all(em.emit(ev(i)) for i in ids)
            assert srv.wait_for_requests(2, timeout_s=10.0)
            assert em.flush(timeout_s=10.0) is True
            s = em.stats()
        finally:
            em.close(2.0)
        reqs = srv.requests()
    assert [r.status for r in reqs[:2]] == [429, 200]
    gap = reqs[1].t - reqs[0].t
    assert gap >= low - 0.01, gap
    assert gap <= high, gap
    assert s["retries"] == 1
    assert_nothing_lost(ids, srv, s)


# ----------------------------------------------------------------------------- case 6


@pytest.mark.timeout(30)
def test_06_slow_server_times_out_retries_and_counts_duplicates() -> None:
    timeout = 0.6
    ids = ids_for("slow", 100)
    # The server commits, then answers only after 2.5 s: twice.
    with EventsServer([Sleep(2.5), Sleep(2.5)]) as srv:
        em = Emitter(srv.url, request_timeout_s=timeout, **{**FAST, "flush_interval_s": 5.0})
        try:
            assert all(em.emit(ev(i)) for i in ids)
            assert em.flush(timeout_s=15.0) is True
            s = em.stats()
        finally:
            em.close(2.0)
        reqs = srv.requests()
    assert [r.action for r in reqs] == ["Sleep", "Sleep", "Ok"]
    for r in reqs[:2]:
        assert r.client_gone_after is not None, "the client must give up on a slow answer"
        assert r.client_gone_after >= timeout * 0.9, r
        assert r.client_gone_after <= timeout + 1.0, r  # hang guard
    assert s["retries"] == 2 and s["requests"] == 3
    # The first attempt committed everything: the retries are duplicates, not errors.
    assert s["server_duplicates"] == 100 and s["server_inserted"] == 0
    assert_nothing_lost(ids, srv, s)


# ----------------------------------------------------------------------------- case 7


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fault", ["reset_mid_body", "commit_then_reset"])
def test_07_reset_connection_is_retried(fault: str) -> None:
    step = ResetMidBody() if fault == "reset_mid_body" else CommitThenReset()
    ids = ids_for(fault, 100)
    with EventsServer([step]) as srv:
        em = Emitter(srv.url, **{**FAST, "flush_interval_s": 5.0})  # one batch of 100
        try:
            assert all(em.emit(ev(i)) for i in ids)
            assert em.flush(timeout_s=10.0) is True
            s = em.stats()
        finally:
            em.close(2.0)
        reqs = srv.requests()
    assert reqs[0].action == ("reset_mid_body" if fault == "reset_mid_body" else "CommitThenReset")
    assert s["retries"] >= 1
    assert_nothing_lost(ids, srv, s)
    if fault == "commit_then_reset":
        assert s["server_duplicates"] == 100 and s["server_inserted"] == 0
    else:
        assert s["server_duplicates"] == 0 and s["server_inserted"] == 100


# ----------------------------------------------------------------------------- case 8


@pytest.mark.timeout(30)
def test_08_poison_event_is_isolated_and_dropped_with_detail(
    fake: EventsServer, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ids_for("bisect", 100)
    ids[37] = f"poison-{os.getpid()}-37"
    em = Emitter(fake.url, flush_interval_s=5.0, atexit_timeout_s=0)
    try:
        with caplog.at_level("WARNING", logger="flightdeck_rs"):
            assert all(em.emit(ev(i)) for i in ids)
            assert em.flush(timeout_s=10.0) is True
        s = em.stats()
    finally:
        em.close(2.0)
    assert s["dropped_invalid"] == 1 and s["dropped"]["invalid"] == 1
    assert s["requests"] <= 15, s["requests"]
    assert s["retries"] == 0
    assert_nothing_lost(ids, fake, s, invalid=frozenset({ids[37]}))
    assert ids[37] in (s["last_error"] or "") and "400" in (s["last_error"] or "")
    assert ids[37] in caplog.text  # one warning carrying the server's detail
    # All-or-nothing: every request holding the poison id was refused as a whole.
    for r in fake.requests():
        assert (r.status == 400) == (ids[37] in r.ids)


# ----------------------------------------------------------------------------- case 10

EXIT_CHILD = """
    import asyncio, json, sys, time
    from flightdeck_rs import Emitter

    url, ending, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
    template = json.loads(sys.argv[4])
    # Nothing is due before exit (one 1000-event batch, 30 s interval): the atexit hook
    # has all 500 to deliver, except in "in_flight", where a request is already out.
    cfg = dict(max_batch_events=1000, flush_interval_s=30.0, atexit_timeout_s=1.0,
               request_timeout_s=10.0, backoff_base_s=0.05, backoff_max_s=0.5)
    if ending == "in_flight":
        cfg.update(max_batch_events=100, flush_interval_s=0.05)

    def emit_all(em):
        for i in range(500):
            assert em.emit(dict(template, run_id=f"{prefix}-{i}"))

    def ending_now():
        print("ending", time.monotonic(), flush=True)

    if ending == "asyncio":
        em = Emitter(url, **cfg)
        async def main():
            emit_all(em)  # emitted on the loop, which is closed before the atexit hooks
        asyncio.run(main())
        ending_now()
    elif ending == "asyncio_local":
        async def main():
            emit_all(Emitter(url, **cfg))  # the emitter lives only inside the coroutine
        asyncio.run(main())
        ending_now()
    else:
        em = Emitter(url, **cfg)
        emit_all(em)
        if ending == "in_flight":
            deadline = time.monotonic() + 5
            while em.stats()["in_flight"] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
        ending_now()
        if ending == "sys_exit":
            sys.exit(3)
        if ending == "exception":
            raise RuntimeError("boom")
"""
EXIT_CODES = {
    "return": 0,
    "sys_exit": 3,
    "exception": 1,
    "asyncio": 0,
    "asyncio_local": 0,
    "in_flight": 0,
}
ATEXIT_TIMEOUT_S = 1.0


@pytest.mark.timeout(40)
@pytest.mark.parametrize(
    ("mode", "ending"),
    [
        ("healthy", "return"),
        ("healthy", "sys_exit"),
        ("healthy", "exception"),
        ("healthy", "asyncio"),
        ("healthy", "asyncio_local"),
        ("closed", "return"),
        ("closed", "exception"),
        ("closed", "asyncio_local"),
        ("blackhole", "sys_exit"),
        ("blackhole", "asyncio"),
        ("blackhole", "in_flight"),
    ],
)
def test_10_exit_with_queue(mode: str, ending: str) -> None:
    prefix = f"exit-{mode}-{ending}-{os.getpid()}"
    ids = {f"{prefix}-{i}" for i in range(500)}
    with EventsServer(blackhole=mode == "blackhole") as srv:
        url = srv.url if mode != "closed" else f"http://127.0.0.1:{closed_port()}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(EXIT_CHILD),
                url,
                ending,
                prefix,
                json.dumps(TEMPLATE),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # printed just before the script ends
            out, err = proc.communicate(timeout=20.0)
            exited = time.monotonic()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        held = srv.unique_ids()
    assert line.startswith("ending"), (line, out, err)
    assert proc.returncode == EXIT_CODES[ending], err
    if ending == "exception":
        assert "RuntimeError: boom" in err
    if mode == "healthy":
        # The atexit hook delivered everything before the interpreter finished.
        assert held == ids
        assert "not delivered" not in err, err
    else:
        exit_delay = exited - float(line.split()[1])
        # G6: exit is delayed by at most atexit_timeout_s + 0.5 s, whatever the server does
        # (measured from the script's last line, so it includes interpreter teardown).
        assert exit_delay <= ATEXIT_TIMEOUT_S + 0.5, exit_delay
        assert not held
        assert "500 event(s) were not delivered (at_shutdown=500)" in err, err


# ----------------------------------------------------------------------------- case 12

FORK_CHILD = """
    import json, multiprocessing, os, sys, time
    from flightdeck_rs import get_emitter

    url, rounds = sys.argv[1], int(sys.argv[2])
    template = json.loads(sys.argv[3])
    cfg = dict(flush_interval_s=0.05, backoff_base_s=0.05, backoff_max_s=0.5,
               atexit_timeout_s=0)

    def ev(rid):
        return dict(template, run_id=rid)

    def tasks():
        return len(os.listdir("/proc/self/task"))

    def worker(k):
        em = get_emitter(url, **cfg)  # the preloaded emitter, reset in this child
        ids = [f"fork-w-{os.getpid()}-{k}-{i}" for i in range(25)]
        ok = all(em.emit(ev(i)) for i in ids)
        return {"ids": ids, "ok": ok, "flushed": em.flush(10.0), "pid": os.getpid()}

    em = get_emitter(url, **cfg)
    me = os.getpid()
    out = {"parent": [], "children": [], "workers": [], "threads": []}
    for r in range(rounds):
        ids = [f"fork-p-{me}-{r}-{i}" for i in range(100)]
        assert all(em.emit(ev(i)) for i in ids)
        out["parent"] += ids
        deadline = time.monotonic() + 5
        while em.stats()["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        rfd, wfd = os.pipe()
        started = time.monotonic()
        pid = os.fork()  # lands while a send is in flight (the server sleeps 0.2 s)
        if pid == 0:
            os.close(rfd)
            try:
                cids = [f"fork-c-{me}-{r}-{i}" for i in range(50)]
                ok = all(em.emit(ev(i)) for i in cids)
                closed = em.close(5.0)
                res = {"ok": ok, "closed": closed, "stats": em.stats(), "ids": cids,
                       "tasks": tasks()}
            except BaseException as e:
                res = {"error": repr(e)}
            os.write(wfd, json.dumps(res).encode())
            os._exit(0)
        os.close(wfd)
        more = [f"fork-p2-{me}-{r}-{i}" for i in range(50)]
        assert all(em.emit(ev(i)) for i in more)
        out["parent"] += more
        chunks = []
        while True:
            b = os.read(rfd, 65536)
            if not b:
                break
            chunks.append(b)
        os.close(rfd)
        status = None
        while time.monotonic() - started < 10:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.005)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        res = json.loads(b"".join(chunks) or b"{}")
        res.update(elapsed=time.monotonic() - started, status=status)
        out["children"].append(res)
        out["threads"].append(tasks())
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        out["workers"] = pool.map(worker, range(8))
    out["flushed"] = em.flush(10.0)
    out["stats"] = em.stats()
    out["threads_end"] = tasks()
    em.close(2.0)
    print(json.dumps(out))
"""


@pytest.mark.timeout(60)
def test_12_fork_child_gets_a_fresh_emitter_and_never_resends_parent_events() -> None:
    rounds = 8
    with EventsServer([], then=Sleep(0.2)) as srv:
        proc = run_child(FORK_CHILD, srv.url, str(rounds), json.dumps(TEMPLATE), timeout_s=45)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        held = srv.unique_ids()
        sent = srv.sent
    parent = out["parent"]
    children = out["children"]
    workers = out["workers"]
    child_ids = [i for c in children for i in c.get("ids", [])]
    worker_ids = [i for w in workers for i in w["ids"]]
    everything = parent + child_ids + worker_ids
    assert len(children) == rounds
    for k, c in enumerate(children):
        assert "error" not in c, c
        assert c["status"] == 0 and c["elapsed"] <= 5.0, c  # child always exits <= 5 s
        assert c["ok"] and c["closed"], c
        cs = c["stats"]
        assert cs["accepted"] == 50 and cs["acked"] == 50, cs
        assert sum(cs["dropped"].values()) == 0, cs
        # what the parent still held at the fork: queued + in flight, never more
        assert 0 <= cs["discarded_on_fork"] <= 100 + 150 * k, cs
        assert c["tasks"] <= 4, c  # main thread + a fresh sender (not the parent's threads)
    # The forks landed while the parent had a batch in flight: the children counted it.
    assert any(c["stats"]["discarded_on_fork"] > 0 for c in children)
    for w in workers:
        assert w["ok"] and w["flushed"], w
    assert out["flushed"] is True
    ps = out["stats"]
    assert ps["accepted"] == len(parent) and ps["acked"] == len(parent), ps
    assert ps["retries"] == 0 and sum(ps["dropped"].values()) == 0, ps
    # Every id reached the server exactly once: no child re-sent a parent event.
    assert held == set(everything) and len(everything) == len(set(everything))
    assert all(sent[i] == 1 for i in everything), [i for i in everything if sent[i] != 1][:5]
    # No thread growth in the parent across the rounds.
    assert len(set(out["threads"])) == 1, out["threads"]


# ----------------------------------------------------------------------------- case 15

MEMORY_CHILD = """
    import json, sys
    from flightdeck_rs import Emitter

    url, n, max_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    event = json.loads(sys.argv[4])
    event["labels"] = {"pad": "x" * 1900}  # ~2.3 KB encoded

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    em = Emitter(url, max_queue_events=10**9, max_queue_bytes=max_bytes,
                 flush_interval_s=0.05, backoff_base_s=0.05, backoff_max_s=0.5,
                 atexit_timeout_s=0)
    base = status("VmRSS")
    accepted = 0
    for i in range(n):
        event["run_id"] = f"mem-{i:08d}"
        accepted += em.emit(event)
    s = em.stats()
    peak = status("VmHWM")
    em.close(0.2)
    print(json.dumps({"base": base, "peak": peak, "accepted": accepted, "stats": s,
                      "closed_stats": em.stats()}))
"""


@pytest.mark.timeout(60)
def test_15_memory_stays_bounded_during_an_outage() -> None:
    n, max_bytes = 200_000, 16 * 1024 * 1024
    url = f"http://127.0.0.1:{closed_port()}"
    proc = run_child(MEMORY_CHILD, url, str(n), str(max_bytes), json.dumps(TEMPLATE), timeout_s=50)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    s = out["stats"]
    growth = out["peak"] - out["base"]
    assert growth <= max_bytes + 8 * 1024 * 1024, growth
    size = s["queue_bytes"] // s["queue_events"]
    assert s["queue_bytes"] <= max_bytes
    assert s["queue_events"] == max_bytes // size  # full, by bytes
    assert 0 < s["in_flight"] <= 100  # one batch, stuck retrying
    assert s["accepted"] == out["accepted"] == s["queue_events"] + s["in_flight"]
    assert s["dropped_queue_full"] == n - out["accepted"]  # the drop count matches
    assert_identity(s)
    closed = out["closed_stats"]
    assert closed["dropped_at_shutdown"] == out["accepted"]
    assert_identity(closed)


# ----------------------------------------------------------------------------- case 16


@pytest.mark.timeout(60)
def test_16_sender_delivers_while_python_holds_the_gil(server: Any) -> None:
    from flightdeck_rs.sdk import FlightdeckClient

    env = unique_env("gil")
    ids = ids_for("gil", 50)
    em = Emitter(server.base_url, flush_interval_s=0.05, atexit_timeout_s=0)
    acked_during_spin = 0
    old = sys.getswitchinterval()
    try:
        base = dict(TEMPLATE, release_id=server.baseline_id, environment=env)
        assert all(em.emit(dict(base, run_id=i)) for i in ids)
        # Pure-Python spin that never gives the GIL away (no other thread would get it
        # before 30 s): a sender needing the GIL could not deliver during it.
        sys.setswitchinterval(30.0)
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            acked_during_spin = em.stats()["acked"]
            if acked_during_spin == len(ids):
                break
    finally:
        sys.setswitchinterval(old)
        em.close(5.0)
    assert acked_during_spin == len(ids)
    with FlightdeckClient(server.base_url) as client:
        runs = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
    assert runs["matched_total"] == len(ids)


# ----------------------------------------------------------------------------- case 17


@pytest.mark.timeout(40)
@pytest.mark.parametrize("mode", ["healthy", "blackhole"])
def test_17_emit_never_waits_on_the_server(mode: str) -> None:
    n = 10_000
    dicts = [ev(i) for i in ids_for(f"hot-{mode}-dict", n)]
    encoded = [json.dumps(ev(i)).encode() for i in ids_for(f"hot-{mode}-bytes", n)]
    with EventsServer(blackhole=mode == "blackhole") as srv:
        em = Emitter(srv.url, max_queue_events=3 * n, request_timeout_s=30.0, **FAST)
        try:
            for batch in (dicts, encoded):
                started = time.monotonic()
                results = [em.emit(e) for e in batch]
                elapsed = time.monotonic() - started
                assert all(results)
                assert elapsed < 5.0, elapsed  # hang guard, not a benchmark
            if mode == "blackhole":
                s = em.stats()
                assert s["acked"] == 0 and 0 < s["in_flight"] <= 100
        finally:
            assert em.close(timeout_s=10.0 if mode == "healthy" else 0.3) is (mode == "healthy")
        s = em.stats()
    assert s["accepted"] == 2 * n
    if mode == "healthy":
        assert s["acked"] == 2 * n
    else:
        assert s["dropped_at_shutdown"] == 2 * n
    assert_identity(s)


# ----------------------------------------------------------------------------- case 18


@pytest.mark.timeout(40)
def test_18_asyncio_loop_keeps_running_during_aflush() -> None:
    ids = ids_for("asyncio", 1000)
    # One batch; the server answers it after 1 s, so aflush() has to wait that long.
    with EventsServer([Sleep(1.0, commit_first=False)]) as srv:

        async def main() -> tuple[bool, list[float], int, float]:
            loop = asyncio.get_running_loop()
            em = Emitter(srv.url, max_batch_events=1000, flush_interval_s=30.0, atexit_timeout_s=0)
            lags: list[float] = []
            stop = asyncio.Event()

            async def ticker() -> None:
                while not stop.is_set():
                    t = loop.time()
                    await asyncio.sleep(0.01)
                    lags.append(loop.time() - t - 0.01)

            async def producer(rid: str) -> bool:
                await asyncio.sleep(0)
                return em.emit(ev(rid))

            tick = asyncio.create_task(ticker())
            async with em:
                assert all(await asyncio.gather(*(producer(i) for i in ids)))
                before = len(lags)
                started = loop.time()
                flushed = await em.aflush(timeout_s=10.0)
                waited = loop.time() - started
                during = len(lags) - before
            stop.set()
            await tick
            return flushed, lags[before : before + during], during, waited

        flushed, lags_during, ticks_during, waited = asyncio.run(main())
        held = srv.unique_ids()
    assert flushed is True and held == set(ids)
    assert waited >= 0.9  # aflush really waited on the slow server...
    assert ticks_during >= 20, ticks_during  # ...while the loop kept ticking (10 ms ticker)
    assert max(lags_during) < 0.5, max(lags_during)  # never blocked for the server's 1 s


@pytest.mark.timeout(40)
def test_18_emit_from_coroutines_while_aflush_waits() -> None:
    """emit() is safe in coroutines even while an aflush()/flush() waits in another thread."""
    first, second = ids_for("aflush-a", 100), ids_for("aflush-b", 100)
    with EventsServer([Sleep(0.5, commit_first=False)]) as srv:

        async def main() -> tuple[list[bool], bool, dict[str, Any]]:
            em = Emitter(srv.url, flush_interval_s=0.05, atexit_timeout_s=0)
            try:
                assert all(em.emit(ev(i)) for i in first)

                async def produce() -> list[bool]:
                    out = []
                    for rid in second:
                        await asyncio.sleep(0.002)
                        out.append(em.emit(ev(rid)))
                    return out

                results, flushed = await asyncio.gather(produce(), em.aflush(timeout_s=10.0))
                assert await em.aflush(timeout_s=10.0)
                return results, flushed, em.stats()
            finally:
                await em.aclose()

        results, flushed, s = asyncio.run(main())
    assert all(results) and flushed
    assert_nothing_lost(first + second, srv, s)


def test_18_emit_and_stats_from_another_thread_while_flush_waits() -> None:
    """The thread-level form of the case above: flush() in one thread, emit() in another."""
    ids = ids_for("thread-flush", 50)
    with EventsServer([Sleep(0.5, commit_first=False)]) as srv:
        em = Emitter(srv.url, **FAST)
        try:
            assert em.emit(ev(ids[0]))
            flusher = threading.Thread(target=em.flush, args=(10.0,))
            flusher.start()
            time.sleep(0.1)  # the flush is now waiting on the slow server
            errors: list[BaseException] = []
            for rid in ids[1:]:
                try:
                    assert em.emit(ev(rid))
                    em.stats()
                except RuntimeError as e:  # pragma: no cover - the bug this test guards
                    errors.append(e)
            flusher.join(timeout=15.0)
            assert not errors, f"{len(errors)} emit/stats calls raised, e.g. {errors[0]!r}"
            assert em.flush(10.0) is True
            s = em.stats()
        finally:
            em.close(2.0)
    assert_nothing_lost(ids, srv, s)


# ----------------------------------------------------------------------------- case 22

CTRL_C_CHILD = """
    import json, sys, time
    from flightdeck_rs import Emitter

    em = Emitter(sys.argv[1], atexit_timeout_s=0.1, request_timeout_s=60.0)
    template = json.loads(sys.argv[2])
    for i in range(10):
        em.emit(dict(template, run_id=f"ctrl-c-{i}"))
    print("flushing", flush=True)
    try:
        em.flush(60.0)
        print("flushed", time.monotonic(), flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
"""


@pytest.mark.timeout(30)
def test_22_one_ctrl_c_interrupts_flush() -> None:
    with EventsServer(blackhole=True) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CTRL_C_CHILD), srv.url, json.dumps(TEMPLATE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "flushing"
            time.sleep(0.3)  # well inside flush(60), which a black hole never completes
            sent_at = time.monotonic()
            proc.send_signal(signal.SIGINT)
            line = proc.stdout.readline()
            proc.wait(timeout=10.0)
            exited = time.monotonic()
            err = proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert line.startswith("interrupted"), (line, err)
    latency = float(line.split()[1]) - sent_at
    assert latency < 0.5, latency  # one SIGINT interrupts the flush at once
    assert exited - sent_at < 0.1 + 0.5 + 1.0, exited - sent_at  # then atexit's 0.1 s
    assert proc.returncode == 0, err


# ----------------------------------------------------------------------------- real server


@pytest.mark.timeout(90)
def test_real_server_receives_every_event(server: Any) -> None:
    """Against ``flightdeck serve``: every kind of event input, all delivered, counted."""
    import flightdeck.models

    from flightdeck_rs.sdk import FlightdeckClient

    env = unique_env("emitter")
    n = 2_000
    ids = [f"real-{env}-{i}" for i in range(n)]
    kw = event_kwargs(server.baseline_id, environment=env, seconds_ago=30.0)
    em = Emitter(server.base_url, flush_interval_s=0.05, atexit_timeout_s=0)
    try:
        for k, rid in enumerate(ids):
            kind = k % 4
            if kind == 0:
                event: Any = RunEvent(**dict(kw, run_id=rid))
            elif kind == 1:
                event = dict(kw, run_id=rid)
            elif kind == 2:
                event = RunEvent(**dict(kw, run_id=rid)).model_dump_json()
            else:
                event = flightdeck.models.RunEvent(**dict(kw, run_id=rid))
            assert em.emit(event)
        # Re-sending is safe: the server counts these as duplicates.
        for rid in ids[:10]:
            assert em.emit(dict(kw, run_id=rid))
    finally:
        assert em.close(timeout_s=60.0) is True
    s = em.stats()
    assert s["accepted"] == s["acked"] == n + 10
    assert s["server_inserted"] == n and s["server_duplicates"] == 10
    assert sum(s["dropped"].values()) == 0 and s["retries"] == 0
    assert_identity(s)
    with FlightdeckClient(server.base_url) as client:
        runs = client.list_runs(release_id=server.baseline_id, window="1h", environment=env)
    assert runs["matched_total"] == n
