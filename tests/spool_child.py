"""Child processes for ``test_spool.py`` (run as ``python spool_child.py <scenario> <json>``).

The single argument is a JSON object: ``url``, ``dir``, ``mode``, ``prefix``, ``template`` (an
event as a JSON-ready dict) and scenario-specific keys. Scenarios:

* ``ledger``: emit forever; before each ``emit()`` append ``"<run_id> <monotonic>\\n"`` to
  ``ledger`` with one unbuffered ``os.write`` on an ``O_APPEND`` descriptor, so the ledger
  survives ``kill -9``. Prints ``ready`` once the emitter exists.
* ``steady``: emit ``n`` events, print ``emitted`` and the spool's file names, wait for a line
  on stdin, ``close(15)`` and print the stats (plus the close result) as JSON.
* ``fork``: emit ``n_pre`` events, fork; the child emits ``n_child`` events, flushes, closes
  and writes its stats to ``child_stats``; the parent prints ``forked``, emits ``n_post``,
  waits for the child and prints its own stats as JSON.
* ``fork_orphan``: emit ``n`` events (server down), fork a child that sleeps; once the
  child runs, print its pid, then sleep (the test kills this process with SIGKILL).
* ``outage``: with the emitter's default queue and spool limits (``FAST`` timings only),
  emit ``n`` events as fast as possible, each preceded by a ledger line as in ``ledger``; a
  refused event gets a second line ``"! <run_id>"``. Prints ``ready``, then ``passed`` once
  ``report_at`` events were emitted, then ``done``, then sleeps (the test kills it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flightdeck_rs import Emitter

FAST: dict[str, Any] = {
    "flush_interval_s": 0.05,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.2,
    "atexit_timeout_s": 0,
    # The in-memory queue bounds still apply with a spool: keep them out of the way.
    "max_queue_events": 10**7,
    "max_queue_bytes": 2**31,
}


def emitter(cfg: dict[str, Any]) -> Emitter:
    return Emitter(cfg["url"], spool_dir=cfg["dir"], spool_mode=cfg["mode"], **FAST)


def event(cfg: dict[str, Any], run_id: str) -> dict[str, Any]:
    e = dict(cfg["template"])
    e["run_id"] = run_id
    # Distinct timestamps keep the server's newest-first paging unambiguous.
    e["timestamp"] = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    return e


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def ledger(cfg: dict[str, Any]) -> None:
    em = emitter(cfg)
    fd = os.open(cfg["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    out("ready")
    i = 0
    while True:
        rid = f"{cfg['prefix']}-{i}"
        os.write(fd, f"{rid} {time.monotonic():.6f}\n".encode())
        em.emit(event(cfg, rid))
        i += 1
        if i % cfg.get("burst", 100) == 0:  # ~burst x 100 events/s at most
            time.sleep(0.01)


def steady(cfg: dict[str, Any]) -> None:
    em = emitter(cfg)
    for i in range(cfg["n"]):
        assert em.emit(event(cfg, f"{cfg['prefix']}-{i}"))
        if i % 10 == 0:
            time.sleep(0.001)
    time.sleep(0.3)  # async mode: let the sender write the queue to the spool
    out("emitted " + json.dumps(sorted(os.listdir(cfg["dir"]))))
    sys.stdin.readline()
    ok = em.close(15)
    out(json.dumps({"close": ok, **em.stats()}))


def fork(cfg: dict[str, Any]) -> None:
    em = emitter(cfg)
    for i in range(cfg["n_pre"]):
        assert em.emit(event(cfg, f"{cfg['prefix']}-pre-{i}"))
    time.sleep(0.3)  # async mode: the parent's events are in its spool before the fork
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for i in range(cfg["n_child"]):
                assert em.emit(event(cfg, f"{cfg['prefix']}-child-{i}"))
            flushed = em.flush(15)
            ok = em.close(15)
            with open(cfg["child_stats"], "w") as f:
                json.dump({"flush": flushed, "close": ok, "pid": os.getpid(), **em.stats()}, f)
            code = 0
        finally:
            os._exit(code)
    out("forked")
    for i in range(cfg["n_post"]):
        assert em.emit(event(cfg, f"{cfg['prefix']}-post-{i}"))
    _, status = os.waitpid(pid, 0)
    ok = em.close(15)
    out(json.dumps({"close": ok, "child_status": status, "pid": os.getpid(), **em.stats()}))


def fork_orphan(cfg: dict[str, Any]) -> None:
    em = emitter(cfg)
    for i in range(cfg["n"]):
        assert em.emit(event(cfg, f"{cfg['prefix']}-{i}"))
    time.sleep(0.3)
    # The child reports once its after-fork hooks have run (os.fork() returns in the child
    # only after them); only then does the parent announce it, so the test's kill -9 of the
    # parent never races the child's start.
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.write(ready_w, b"1")
        os.close(ready_w)
        time.sleep(cfg.get("child_sleep_s", 20.0))
        os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    out(str(pid))
    time.sleep(60)


def outage(cfg: dict[str, Any]) -> None:
    em = Emitter(
        cfg["url"],
        spool_dir=cfg["dir"],
        spool_mode=cfg["mode"],
        **{k: v for k, v in FAST.items() if not k.startswith("max_queue")},
    )
    fd = os.open(cfg["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    base = event(cfg, "x")
    prefix, report_at = cfg["prefix"], cfg["report_at"]
    out("ready")
    for i in range(cfg["n"]):
        rid = f"{prefix}-{i}"
        os.write(fd, f"{rid} {time.monotonic():.6f}\n".encode())
        e = dict(base)
        e["run_id"] = rid
        if not em.emit(e):
            os.write(fd, f"! {rid}\n".encode())
        if i + 1 == report_at:
            out("passed")
    out("done")
    time.sleep(600)


SCENARIOS = {
    "ledger": ledger,
    "outage": outage,
    "steady": steady,
    "fork": fork,
    "fork_orphan": fork_orphan,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](json.loads(sys.argv[2]))
