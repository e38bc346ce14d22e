"""Durable spool of the emitter (issue 5; the spool section of ``docs/emitter.md``).

* kill -9 while the server is down, in ``sync`` and ``async`` modes, then a restart on the same
  directory against the real ``flightdeck serve``: a kill-proof ledger written by the child
  before each ``emit()`` is compared with the run_ids the server holds.
* Robust reading (ack offset, torn and garbage lines), an unwritable directory, a full spool,
  two live processes sharing a directory, fork, permissions, expiry, orphan hand-over.

Tests marked ``xfail(strict=True)`` pin down bugs found while writing this file; each reason
says what is expected and what happens. Fixing the bug turns the test into an XPASS failure,
so the marker must then be removed.

Every test runs under a pytest-timeout marker plus a faulthandler watchdog; child processes
run under their own timeouts. No test asserts a speed.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import random
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import event_kwargs, unique_env
from emitter_server import EventsServer, closed_port
from flightdeck_rs import Emitter
from flightdeck_rs.sdk import FlightdeckClient

pytestmark = pytest.mark.timeout(30)

CHILD = Path(__file__).with_name("spool_child.py")
FAST: dict[str, Any] = {
    "flush_interval_s": 0.05,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.2,
    "atexit_timeout_s": 0,
}
TEMPLATE = event_kwargs("rel_spool_tests", run_id="template")
TEMPLATE["timestamp"] = TEMPLATE["timestamp"].isoformat()
SEGMENT = re.compile(
    r"^(?P<host>.+)-(?P<pid>\d+)-(?P<ns>\d+)-(?P<rand>[0-9a-f]{8})"
    r"\.(?P<tag>[sr])(?P<seq>\d{6})\.jsonl$"
)
# async mode spools the queue at least every 100 ms; allow scheduling noise on top.
ASYNC_TICK_SLACK_S = 0.25


@pytest.fixture(autouse=True)
def _watchdog(request: pytest.FixtureRequest) -> Iterator[None]:
    """Dump every thread's stack and exit if a test outlives its timeout by 15 s."""
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else 30.0
    faulthandler.dump_traceback_later(limit + 15.0, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# ----------------------------------------------------------------------------- helpers


def ev(run_id: str) -> dict[str, Any]:
    event = dict(TEMPLATE)
    event["run_id"] = run_id
    return event


def line(run_id: str) -> bytes:
    """One spool line as a crashed emitter would have left it."""
    return json.dumps(ev(run_id), separators=(",", ":")).encode() + b"\n"


def tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def down_url() -> str:
    return f"http://127.0.0.1:{closed_port()}"


def orphan_name(seq: int = 0) -> str:
    """A segment name of a dead process (pid 1 never runs an emitter here)."""
    return f"deadhost-1-{time.time_ns()}-{random.getrandbits(32):08x}.s{seq:06d}.jsonl"


def write_orphan(d: Path, data: bytes, *, ack: int | None = None) -> Path:
    path = d / orphan_name()
    path.write_bytes(data)
    if ack is not None:
        Path(f"{path}.ack").write_text(str(ack))
    return path


def files(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def segments(d: Path) -> list[str]:
    return [n for n in files(d) if n.endswith(".jsonl")]


def assert_identity(s: dict[str, Any]) -> None:
    rhs = (
        s["acked"]
        + s["dropped_after_accept"]
        + s["left_in_spool"]
        + s["queue_events"]
        + s["in_flight"]
    )
    assert s["accepted"] == rhs, s


def wait_until(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def spawn(scenario: str, cfg: dict[str, Any], **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), scenario, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        **kw,
    )


_pending: dict[int, bytearray] = {}


def read_line(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> str:
    """The child's next stdout line, or a failure with its stderr (hang guard)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = _pending.setdefault(proc.pid, bytearray())
    deadline = time.monotonic() + timeout_s
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
        if not ready:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            pytest.fail(f"child produced no line in {timeout_s} s; stderr:\n{err.decode()}")
        chunk = os.read(fd, 65536)
        if not chunk:
            _, err = proc.communicate(timeout=5)
            pytest.fail(f"child exited (rc={proc.returncode}); stderr:\n{err.decode()}")
        buf += chunk
    text, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return text.decode().strip()


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def server_run_ids(base_url: str, release_id: str, environment: str) -> set[str]:
    """Every run_id the real server holds for ``environment`` (export, paged by 500)."""
    ids: list[str] = []
    client = FlightdeckClient(base_url)
    try:
        while True:
            body, headers = client.fetch_runs_export_ndjson(
                release_id=release_id,
                window="1h",
                environment=environment,
                offset=len(ids),
                limit=500,
            )
            page = [json.loads(x)["run_id"] for x in body.splitlines() if x.strip()]
            ids += page
            total = int(headers["X-Flightdeck-Matched-Total"])
            if not page or len(ids) >= total:
                break
    finally:
        client.close()
    assert len(set(ids)) == len(ids) == total, (len(set(ids)), len(ids), total)
    return set(ids)


@pytest.fixture
def fake() -> Iterator[EventsServer]:
    with EventsServer() as srv:
        yield srv


# ----------------------------------------------------------------------------- 1. kill -9


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_kill9_while_server_down_then_replay_on_restart(
    server: Any, tmp_path: Path, mode: str
) -> None:
    spool = tmp_path / "spool"
    ledger = tmp_path / "ledger.txt"
    env = unique_env("spool")
    template = event_kwargs(server.baseline_id, environment=env, run_id="x")
    template["timestamp"] = template["timestamp"].isoformat()
    cfg = {
        "url": down_url(),
        "dir": str(spool),
        "mode": mode,
        "prefix": tag(f"kill-{mode}"),
        "template": template,
        "ledger": str(ledger),
        "burst": 25,  # <= 2,500 events/s: enough for the check, cheap to read back
    }
    delay = random.uniform(0.3, 1.5)
    proc = spawn("ledger", cfg)
    try:
        assert read_line(proc) == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGKILL

    entries = [x.split() for x in ledger.read_text().splitlines()]
    assert len(entries) > 100, (delay, len(entries))
    times = {rid: float(t) for rid, t in entries}
    last_id, last_t = entries[-1][0], float(entries[-1][1])
    assert segments(spool), "the killed child left no segment"

    em = Emitter(server.base_url, spool_dir=spool, spool_mode=mode, **FAST)
    replayed = em.stats()["spool_replayed"]
    assert em.close(30) is True
    s = em.stats()
    held = server_run_ids(server.base_url, server.baseline_id, env)

    ctx = f"mode={mode} delay={delay:.2f}s ledger={len(entries)} held={len(held)}"
    assert held <= set(times), f"phantom ids: {sorted(held - set(times))[:5]} ({ctx})"
    missing = set(times) - held
    if mode == "sync":
        # Only the id whose ledger line was written just before the kill may be missing.
        assert missing <= {last_id}, f"{sorted(missing)[:5]} ({ctx})"
    else:
        late = sorted((last_t - times[r], r) for r in missing)
        too_old = [(round(age, 3), r) for age, r in late if age > ASYNC_TICK_SLACK_S]
        assert not too_old, f"lost more than one tick: {too_old[-5:]} ({ctx})"
    assert replayed == len(held) == s["acked"], (replayed, s, ctx)
    assert s["spool_corrupt_lines"] == 0, s
    assert s["left_in_spool"] == 0 and s["dropped_after_accept"] == 0, s
    assert_identity(s)
    assert files(spool) == [], f"spool not empty after a clean close ({ctx})"


@pytest.mark.timeout(40)
def test_async_kill9_with_a_hung_server_loses_at_most_one_tick(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    ledger = tmp_path / "ledger.txt"
    with EventsServer(blackhole=True) as hung:
        cfg = {
            "url": hung.url,
            "dir": str(spool),
            "mode": "async",
            "prefix": tag("hung"),
            "template": TEMPLATE,
            "ledger": str(ledger),
        }
        proc = spawn("ledger", cfg)
        try:
            assert read_line(proc) == "ready"
            time.sleep(1.5)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            kill(proc)
    entries = [x.split() for x in ledger.read_text().splitlines()]
    times = {rid: float(t) for rid, t in entries}
    last_t = float(entries[-1][1])
    with EventsServer() as srv:
        em = Emitter(srv.url, spool_dir=spool, **FAST)
        assert em.close(20) is True
        held = srv.unique_ids()
    missing = set(times) - held
    oldest = max((last_t - times[r] for r in missing), default=0.0)
    assert oldest <= ASYNC_TICK_SLACK_S, (
        f"{len(missing)} of {len(times)} lost; the oldest {oldest:.2f} s before the kill"
    )


# ----------------------------------------------------------------------------- 2. reading


@pytest.mark.timeout(20)
def test_orphan_with_ack_offset_garbage_and_torn_lines(
    fake: EventsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    ids = [tag(f"torn-{i}") for i in range(4)]
    first = line(ids[0])
    data = (
        first  # acknowledged before the crash: must not be resent
        + line(ids[1])
        + b"this is not json\n"
        + line(ids[2])
        + b"\n"  # an empty line is skipped silently
        + b"\xff\xfe\x00 binary garbage\n"
        + line(ids[3])
        + line("torn-last")[:57]  # the write of the last line was cut: no newline
    )
    seg = write_orphan(spool, data, ack=len(first))
    # A second orphan holding nothing deliverable.
    write_orphan(spool, b'{"run_id": "half\n' + line("torn-only")[:40])
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        em = Emitter(fake.url, spool_dir=spool, **FAST)
        s = em.stats()
        assert s["spool_replayed"] == 3, s
        assert s["spool_corrupt_lines"] == 3, s  # two in the first orphan, one in the second
        assert not seg.exists(), "the orphan was not claimed (renamed)"
        assert em.flush(10) is True
        s = em.stats()
        assert em.close(5) is True
    assert fake.unique_ids() == set(ids[1:])
    assert all(fake.sent[i] == 1 for i in ids[1:]), fake.sent
    assert s["acked"] == 3 and s["accepted"] == 3, s
    assert_identity(s)
    assert files(spool) == []
    warnings = [r.getMessage() for r in caplog.records if r.name == "flightdeck_rs"]
    assert any("3 unreadable line" in m for m in warnings), warnings


@pytest.mark.timeout(20)
def test_spool_bytes_is_zero_once_a_torn_orphan_is_delivered(
    fake: EventsServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    write_orphan(spool, line(tag("a")) + b"garbage\n" + line("torn")[:30])
    write_orphan(spool, b"garbage only\n")
    em = Emitter(fake.url, spool_dir=spool, **FAST)
    assert em.flush(10) is True
    s = em.stats()
    em.close(5)
    assert files(spool) == []
    assert s["spool_bytes"] == 0, s


@pytest.mark.timeout(20)
def test_unreadable_segment_never_blocks_the_constructor(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    os.mkfifo(spool / orphan_name())
    code = (
        "import sys\nfrom flightdeck_rs import Emitter\n"
        "e = Emitter('http://127.0.0.1:9', spool_dir=sys.argv[1], atexit_timeout_s=0)\n"
        "print(e.stats()['spool_replayed'])\ne.close(0.1)\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(spool)], capture_output=True, text=True, timeout=3
        )
    except subprocess.TimeoutExpired:
        pytest.fail("Emitter() hung on a FIFO named like a segment")
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------- 3. unwritable


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_unwritable_spool_dir_falls_back_to_memory(
    fake: EventsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    # We run as root in CI, so chmod 0500 would not stop writes: put the spool under a file.
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ids = [tag(f"ro-{i}") for i in range(20)]
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        em = Emitter(fake.url, spool_dir=blocker / "spool", spool_mode=mode, **FAST)
        assert all(em.emit(ev(i)) is True for i in ids)
        assert em.flush(10) is True
        s = em.stats()
        assert em.close(5) is True
    assert fake.unique_ids() == set(ids)
    assert s["acked"] == 20 and s["spool_bytes"] == 0, s
    assert sum(s["dropped"].values()) == 0, s
    assert_identity(s)
    warnings = [r.getMessage() for r in caplog.records if r.name == "flightdeck_rs"]
    assert any("spool disabled" in m and "memory" in m for m in warnings), warnings
    assert blocker.read_text() == "not a directory"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_spool_dir_removed_after_start_falls_back_to_memory(
    fake: EventsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    spool = tmp_path / "spool"
    ids = [tag(f"gone-{i}") for i in range(20)]
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        em = Emitter(fake.url, spool_dir=spool, spool_mode=mode, **FAST)
        shutil.rmtree(spool)
        assert all(em.emit(ev(i)) is True for i in ids)
        assert em.flush(10) is True
        s = em.stats()
        assert em.close(5) is True
    assert fake.unique_ids() == set(ids)
    assert s["acked"] == 20, s
    assert_identity(s)
    warnings = [r.getMessage() for r in caplog.records if r.name == "flightdeck_rs"]
    assert any("spool write failed" in m for m in warnings), warnings
    assert not spool.exists()


# ----------------------------------------------------------------------------- 4. spool full


@pytest.mark.timeout(20)
def test_spool_full_in_sync_mode_rejects_the_newest(
    fake: EventsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    cap = 4096
    ids = [tag(f"full-{i}") for i in range(40)]
    fake.stop_listening()
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        em = Emitter(fake.url, spool_dir=spool, spool_mode="sync", spool_max_bytes=cap, **FAST)
        results = [em.emit(ev(i)) for i in ids]
        s = em.stats()
    k = results.count(True)
    assert 0 < k < len(ids), results
    assert results == [True] * k + [False] * (len(ids) - k), results  # drop newest
    assert s["dropped"]["spool_full"] == s["dropped_spool_full"] == len(ids) - k, s
    assert s["accepted"] == k, s
    (seg,) = segments(spool)
    on_disk = (spool / seg).read_bytes()
    assert on_disk.count(b"\n") == k and len(on_disk) == s["spool_bytes"] <= cap, s
    warnings = [r.getMessage() for r in caplog.records if r.name == "flightdeck_rs"]
    assert any("spool is full" in m for m in warnings), warnings
    fake.start_listening()
    assert em.flush(10) is True
    s = em.stats()
    assert em.close(5) is True
    assert fake.unique_ids() == set(ids[:k])
    assert s["acked"] == k, s
    assert_identity(s)


@pytest.mark.timeout(20)
def test_spool_full_in_async_mode_keeps_events_in_memory_then_refuses(
    fake: EventsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Async mode: what the full spool cannot take waits in the memory queue (bounded by
    ``max_queue_*``); once that is full too, the newest events are refused (``spool_full``,
    never ``queue_full`` with a spool). ``dropped_spool_full`` counts refusals only."""
    spool = tmp_path / "spool"
    ids = [tag(f"afull-{i}") for i in range(40)]
    fake.stop_listening()
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
        em = Emitter(
            fake.url,
            spool_dir=spool,
            spool_mode="async",
            spool_max_bytes=4096,
            max_queue_events=20,
            **FAST,
        )
        results = [em.emit(ev(i)) for i in ids]
        s = em.stats()
    a = results.count(True)
    assert results == [True] * a + [False] * (len(ids) - a), results  # drop newest
    (seg,) = segments(spool)
    k = (spool / seg).read_bytes().count(b"\n")
    assert 0 < k < len(ids)
    assert a == k + 20, (a, k, s)  # the spool's k, then a full memory queue
    assert s["dropped"]["spool_full"] == len(ids) - a and s["dropped_queue_full"] == 0, s
    assert s["accepted"] == a and s["spool_events"] == k, s
    assert_identity(s)
    warnings = [r.getMessage() for r in caplog.records if r.name == "flightdeck_rs"]
    assert any("spool is full" in m for m in warnings), warnings
    fake.start_listening()
    assert em.flush(10) is True
    s = em.stats()
    assert em.close(5) is True
    assert fake.unique_ids() == set(ids[:a])
    assert s["acked"] == a and s["dropped_after_accept"] == 0, s
    assert_identity(s)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_small_spool_never_fills_while_the_server_keeps_up(
    fake: EventsServer, tmp_path: Path, mode: str
) -> None:
    spool = tmp_path / "spool"
    em = Emitter(fake.url, spool_dir=spool, spool_mode=mode, spool_max_bytes=64 * 1024, **FAST)
    results = []
    for i in range(600):
        results.append(em.emit(ev(tag(f"small-{i}"))))
        if i % 25 == 24:
            assert em.flush(10) is True  # at most ~25 events (~13 KB) are ever pending
    s = em.stats()
    em.close(5)
    assert all(results), f"{results.count(False)} rejected; {s}"
    assert s["dropped"]["spool_full"] == 0, s


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_backlog_beyond_the_memory_queue_drains_in_order_and_flush_waits_for_it(
    fake: EventsServer, tmp_path: Path, mode: str
) -> None:
    """Issue 12: with a spool, the memory queue only buffers. 60x its size is accepted while
    the server is down (no ``queue_full``), read back from disk oldest first once it is up,
    while new events still get in; ``flush()`` waits for the whole backlog."""
    spool = tmp_path / "spool"
    fake.stop_listening()
    em = Emitter(
        fake.url,
        spool_dir=spool,
        spool_mode=mode,
        max_queue_events=50,
        max_queue_bytes=64 * 1024,
        **FAST,
    )
    first = [tag(f"back-{i}") for i in range(3000)]
    assert all(em.emit(ev(i)) for i in first)
    # async mode: the sender moves the memory queue to disk within a tick or so.
    assert wait_until(lambda: em.stats()["queue_bytes"] == 0, 10), em.stats()
    s = em.stats()
    assert s["dropped_queue_full"] == 0 and s["dropped_spool_full"] == 0, s
    assert s["spool_events"] == 3000 and s["accepted"] == 3000, s
    assert s["queue_events"] + s["in_flight"] == 3000 and s["in_flight"] <= 100, s
    assert s["oldest_unsent_age_s"] > 0, s
    assert s["spool_bytes"] > 0 and len(segments(spool)) == 1, s
    assert_identity(s)

    fake.start_listening()
    later = [tag(f"later-{i}") for i in range(500)]
    assert all(em.emit(ev(i)) for i in later)  # new events get in during the recovery
    assert em.flush(30) is True
    s = em.stats()
    assert s["acked"] == 3500, s  # flush() returned only once the backlog was delivered
    assert s["queue_events"] == s["in_flight"] == s["spool_events"] == 0, s
    assert s["oldest_unsent_age_s"] == 0, s
    assert_identity(s)
    seen: dict[str, None] = {}
    for rec in fake.requests():
        for i in rec.ids:
            seen.setdefault(i, None)
    assert list(seen) == first + later  # per-emitter order kept
    assert em.close(5) is True
    assert files(spool) == []


# ----------------------------------------------------------------------------- 5. two processes


@pytest.mark.timeout(45)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_two_live_processes_share_a_directory(
    fake: EventsServer, tmp_path: Path, mode: str
) -> None:
    spool = tmp_path / "spool"
    n = 300
    fake.stop_listening()
    cfgs = [
        {
            "url": fake.url,
            "dir": str(spool),
            "mode": mode,
            "prefix": tag(p),
            "n": n,
            "template": TEMPLATE,
        }
        for p in ("A", "B")
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        listings = []
        for cfg in cfgs:  # B starts while A is alive and its segment exists
            procs.append(spawn("steady", cfg, stdin=subprocess.PIPE))
            word, listing = read_line(procs[-1]).split(" ", 1)
            assert word == "emitted"
            listings.append(json.loads(listing))
        pids = {p.pid for p in procs}
        # Nothing was claimed: only "s" segments of the two live owners.
        names = [SEGMENT.match(x) for x in segments(spool)]
        assert all(names), segments(spool)
        assert {int(m["pid"]) for m in names if m} == pids, (segments(spool), pids)
        assert {m["tag"] for m in names if m} == {"s"}
        # A third emitter started now must not take the live owners' segments either.
        third = Emitter(fake.url, spool_dir=spool, spool_mode=mode, **FAST)
        assert third.stats()["spool_replayed"] == 0, third.stats()
        assert third.close(1) is True
        fake.start_listening()
        outs = []
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.flush()
        for p in procs:
            outs.append(json.loads(read_line(p, 30)))
            p.wait(timeout=10)
    finally:
        for p in procs:
            kill(p)
    for out in outs:
        assert out["close"] is True, out
        assert out["spool_replayed"] == 0, out
        assert out["accepted"] == out["acked"] == n, out
        assert_identity(out)
    everything = {f"{c['prefix']}-{i}" for c in cfgs for i in range(n)}
    assert fake.unique_ids() == everything
    dup = {i: c for i, c in fake.sent.items() if c != 1}
    assert not dup, list(dup.items())[:5]
    # Nothing acknowledged is replayed by a later start.
    later = Emitter(fake.url, spool_dir=spool, spool_mode=mode, **FAST)
    assert later.stats()["spool_replayed"] == 0
    assert later.close(5) is True
    assert files(spool) == []
    assert all(c == 1 for c in fake.sent.values())


# ----------------------------------------------------------------------------- 6. fork


@pytest.mark.timeout(45)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fork_child_sends_only_its_own_events(
    fake: EventsServer, tmp_path: Path, mode: str
) -> None:
    spool = tmp_path / "spool"
    child_stats = tmp_path / "child.json"
    cfg = {
        "url": fake.url,
        "dir": str(spool),
        "mode": mode,
        "prefix": tag("fork"),
        "template": TEMPLATE,
        "n_pre": 30,
        "n_child": 20,
        "n_post": 20,
        "child_stats": str(child_stats),
    }
    fake.stop_listening()  # the parent's pre-fork events are queued and spooled at the fork
    proc = spawn("fork", cfg)
    try:
        assert read_line(proc) == "forked"
        fake.start_listening()
        parent = json.loads(read_line(proc, 30))
        proc.wait(timeout=10)
    finally:
        kill(proc)
    assert proc.returncode == 0
    assert parent["child_status"] == 0, parent
    child = json.loads(child_stats.read_text())
    p = cfg["prefix"]
    pre = {f"{p}-pre-{i}" for i in range(30)}
    post = {f"{p}-post-{i}" for i in range(20)}
    kids = {f"{p}-child-{i}" for i in range(20)}
    assert fake.unique_ids() == pre | post | kids
    dup = {i: c for i, c in fake.sent.items() if c != 1}
    assert not dup, list(dup.items())[:5]  # the child never re-sent the parent's events
    assert child["flush"] is True and child["close"] is True, child
    assert child["accepted"] == child["acked"] == 20, child
    assert child["spool_replayed"] == 0, child  # the parent's locked segments were left alone
    assert child["discarded_on_fork"] == 30, child
    assert parent["close"] is True, parent
    assert parent["accepted"] == parent["acked"] == 50, parent
    assert parent["spool_replayed"] == 0, parent
    assert_identity(child)
    assert_identity(parent)


@pytest.mark.timeout(30)
def test_a_forked_child_does_not_keep_the_parent_spool_locked(
    fake: EventsServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    cfg = {
        "url": down_url(),
        "dir": str(spool),
        "mode": "sync",
        "prefix": tag("orphan"),
        "template": TEMPLATE,
        "n": 20,
        "child_sleep_s": 20.0,
    }
    proc = spawn("fork_orphan", cfg)
    grandchild = 0
    try:
        grandchild = int(read_line(proc))
        proc.send_signal(signal.SIGKILL)  # the owner dies; its forked child lives on
        proc.wait(timeout=10)
        em = Emitter(fake.url, spool_dir=spool, **FAST)
        replayed = em.stats()["spool_replayed"]
        em.close(5)
    finally:
        if grandchild:  # first: it holds the pipes that kill() drains
            try:
                os.kill(grandchild, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill(proc)
    assert replayed == 20, "the dead parent's segment was still locked by its forked child"


# ----------------------------------------------------------------------------- 7. files


@pytest.mark.timeout(20)
def test_segments_are_published_only_once_locked(fake: EventsServer, tmp_path: Path) -> None:
    """A segment is created under a ``.new`` staging name, locked, then renamed: a starting
    emitter never sees (and never claims) a live segment before its owner holds the lock.
    Staging files left by a crash are removed once stale; fresh ones are left alone."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    stale = spool / "host-1-1-00000000.s000000.jsonl.new"
    fresh = spool / "host-2-2-00000000.s000000.jsonl.new"
    stale.write_bytes(line(tag("stale")))
    fresh.write_bytes(line(tag("fresh")))
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    em = Emitter(fake.url, spool_dir=spool, spool_mode="sync", **FAST)
    assert em.stats()["spool_replayed"] == 0  # staging files are never replayed
    assert not stale.exists() and fresh.exists()
    assert em.emit(ev(tag("pub")))
    names = files(spool)
    (seg,) = segments(spool)
    assert SEGMENT.match(seg), seg
    assert [n for n in names if n.endswith(".new")] == [fresh.name], names
    assert em.close(10) is True


@pytest.mark.timeout(20)
def test_directory_is_0700_and_segments_are_0600(fake: EventsServer, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o755)
    old = os.umask(0)  # permissions must not depend on the caller's umask
    try:
        em = Emitter(fake.url, spool_dir=spool, spool_mode="sync", **FAST)
        assert em.emit(ev(tag("perm")))
        (seg,) = segments(spool)
        assert stat.S_IMODE(os.stat(spool).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(spool / seg).st_mode) == 0o600
        m = SEGMENT.match(seg)
        assert m and int(m["pid"]) == os.getpid() and m["tag"] == "s" and m["seq"] == "000000"
        assert em.flush(10) is True
        em.close(5)
    finally:
        os.umask(old)
    nested = tmp_path / "a" / "b" / "spool"  # created on demand
    em = Emitter(fake.url, spool_dir=nested, spool_mode="sync", **FAST)
    assert stat.S_IMODE(os.stat(nested).st_mode) == 0o700
    em.close(1)


@pytest.mark.timeout(20)
def test_ack_sidecar_is_0600(fake: EventsServer, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    old = os.umask(0o022)
    try:
        em = Emitter(fake.url, spool_dir=spool, spool_mode="sync", **FAST)
        assert em.emit(ev(tag("ack")))
        assert em.flush(10) is True
        acks = [n for n in files(spool) if n.endswith(".ack")]
        modes = {n: oct(stat.S_IMODE(os.stat(spool / n).st_mode)) for n in acks}
        em.close(5)
    finally:
        os.umask(old)
    assert acks, "no .ack sidecar was written"
    assert set(modes.values()) == {"0o600"}, modes


@pytest.mark.timeout(20)
def test_expired_segments_are_deleted_and_counted(fake: EventsServer, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    old_ids = [tag(f"old-{i}") for i in range(3)]
    new_ids = [tag(f"new-{i}") for i in range(2)]
    old = write_orphan(spool, b"".join(line(i) for i in old_ids) + b"garbage\n", ack=0)
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(old, (eight_days_ago, eight_days_ago))
    write_orphan(spool, b"".join(line(i) for i in new_ids))
    # With a short max age, a segment just past it expires too.
    short = tmp_path / "short"
    short.mkdir()
    stale = write_orphan(short, line(tag("stale")))
    os.utime(stale, (time.time() - 120, time.time() - 120))

    em = Emitter(fake.url, spool_dir=spool, **FAST)  # default max age: 7 days
    s = em.stats()
    assert s["dropped"]["spool_expired"] == s["dropped_spool_expired"] == 3, s
    assert s["spool_replayed"] == 2, s
    assert not old.exists() and not Path(f"{old}.ack").exists()
    assert em.flush(10) is True
    assert em.close(5) is True
    assert fake.unique_ids() == set(new_ids)
    assert files(spool) == []

    em = Emitter(fake.url, spool_dir=short, spool_max_age_s=60, **FAST)
    s = em.stats()
    assert s["dropped"]["spool_expired"] == 1 and s["spool_replayed"] == 0, s
    assert em.close(5) is True
    assert files(short) == []
    assert fake.unique_ids() == set(new_ids)


# ----------------------------------------------------------------------------- hand-over


@pytest.mark.timeout(30)
def test_orphan_is_claimed_by_rename_kept_at_close_and_handed_over(
    fake: EventsServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    ids = [tag(f"hand-{i}") for i in range(5)]
    orphan = write_orphan(spool, b"".join(line(i) for i in ids))
    fake.stop_listening()

    first = Emitter(fake.url, spool_dir=spool, **FAST)
    assert first.stats()["spool_replayed"] == 5
    assert not orphan.exists()
    (claimed,) = segments(spool)
    m = SEGMENT.match(claimed)
    assert m and m["tag"] == "r" and int(m["pid"]) == os.getpid(), claimed
    # The claimer holds the lock: another emitter leaves the claimed segment alone.
    other = Emitter(fake.url, spool_dir=spool, **FAST)
    assert other.stats()["spool_replayed"] == 0
    assert other.close(1) is True
    assert first.close(0.3) is False  # still down: the events stay in the spool
    s = first.stats()
    assert s["left_in_spool"] == 5 and s["acked"] == 0 and s["dropped_after_accept"] == 0, s
    assert_identity(s)
    assert segments(spool) == [claimed]
    # close() released the segments: the next emitter claims them at once.
    fake.start_listening()
    last = Emitter(fake.url, spool_dir=spool, **FAST)
    assert last.stats()["spool_replayed"] == 5
    assert last.close(10) is True
    assert fake.unique_ids() == set(ids)
    assert files(spool) == []


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_clean_close_leaves_the_spool_dir_empty(
    fake: EventsServer, tmp_path: Path, mode: str
) -> None:
    spool = tmp_path / "spool"
    em = Emitter(fake.url, spool_dir=spool, spool_mode=mode, **FAST)
    for i in range(50):
        assert em.emit(ev(tag(f"clean-{i}")))
    assert em.close(10) is True
    s = em.stats()
    assert len(fake.unique_ids()) == 50
    assert files(spool) == [] and s["spool_bytes"] == 0, (files(spool), s["spool_bytes"])


@pytest.mark.timeout(20)
def test_closed_emitter_releases_its_segments(fake: EventsServer, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    ids = [tag(f"rel-{i}") for i in range(20)]
    first = Emitter(down_url(), spool_dir=spool, spool_mode="sync", **FAST)
    assert all(first.emit(ev(i)) for i in ids)
    assert first.close(0.3) is False
    assert first.stats()["left_in_spool"] == 20
    second = Emitter(fake.url, spool_dir=spool, **FAST)  # `first` is still referenced
    replayed = second.stats()["spool_replayed"]
    assert second.close(10) is True
    assert replayed == 20 and fake.unique_ids() == set(ids), replayed
