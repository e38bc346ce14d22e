"""A long outage held by the spool (issue 12): disk, not the memory queue, bounds what
``emit()`` accepts.

A child process with the emitter's *default* queue and spool limits emits ``N`` events as
fast as it can while the server is down (``N`` = 300,000 by default; ``FDRS_OUTAGE_EVENTS``
sets another size), writing a kill-proof ledger line before each ``emit()`` and a second
line for every refusal. It is killed with SIGKILL at a random point after two thirds of
them; an emitter restarted on the same directory then delivers the backlog to a real
``flightdeck serve``, and the run_ids in the server's ledger are compared with the child's:

* no event was refused (the default 256 MiB spool holds them all, and without the spool the
  10,000-event memory queue would have refused most of them);
* ``sync``: every accepted event is on the server (only the one whose ``emit()`` the kill
  may have cut can be missing); ``async``: only events of the last drain tick are missing;
* nothing is on the server that the child did not emit, the replay count matches, the
  accounting identity holds, and the spool directory is empty after a clean close.

The run_ids are read from the server's ledger database through the reference package's own
``Storage`` (one query), because paging ``/v1/runs/export`` re-reads every matching run for
each page of 500. No test asserts a speed; the timeouts are hang guards.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import event_kwargs, unique_env
from emitter_server import closed_port
from flightdeck_rs import Emitter
from test_spool import ASYNC_TICK_SLACK_S, FAST, assert_identity, files, kill, read_line, spawn, tag

N = int(os.environ.get("FDRS_OUTAGE_EVENTS", "300000"))
KILL_AFTER = N * 2 // 3
DEFAULT_MAX_QUEUE_EVENTS = 10_000


def ledger_run_ids(server: Any, environment: str) -> set[str]:
    """Every run_id the server's ledger holds for ``environment``."""
    from flightdeck.config import load_config
    from flightdeck.storage import Storage

    cfg = load_config(Path(server.workdir) / "flightdeck.yaml")
    dsn = (cfg.database_url or "").strip()
    if not dsn:
        db = Path(cfg.db_path).expanduser()
        dsn = str(db if db.is_absolute() else Path(server.workdir) / db)
    with Storage(dsn=dsn).connect() as conn:
        rows = conn.execute(
            "SELECT run_id FROM run_events WHERE environment = ?", (environment,)
        ).fetchall()
    return {r["run_id"] for r in rows}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_outage_of_300k_events_is_held_by_the_spool_and_survives_kill9(
    server: Any, tmp_path: Path, mode: str
) -> None:
    spool = tmp_path / "spool"
    ledger = tmp_path / "ledger.txt"
    env = unique_env(f"outage-{mode}")
    template = event_kwargs(server.baseline_id, environment=env, run_id="x")
    template["timestamp"] = template["timestamp"].isoformat()
    cfg = {
        "url": f"http://127.0.0.1:{closed_port()}",
        "dir": str(spool),
        "mode": mode,
        "prefix": tag(f"outage-{mode}"),
        "template": template,
        "ledger": str(ledger),
        "n": N,
        "report_at": KILL_AFTER,
    }
    proc = spawn("outage", cfg)
    try:
        assert read_line(proc) == "ready"
        t0 = time.monotonic()
        assert read_line(proc, 600) == "passed"
        # The rest takes about half as long as the first two thirds: kill somewhere in it.
        elapsed = time.monotonic() - t0
        delay = random.uniform(0.0, elapsed * (N - KILL_AFTER) / KILL_AFTER)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGKILL

    emitted: dict[str, float] = {}
    refused: list[str] = []
    last_id = ""
    for raw in ledger.read_text().splitlines():
        a, b = raw.split()
        if a == "!":
            refused.append(b)
        else:
            emitted[a] = float(b)
            last_id = a
    ctx = f"mode={mode} n={N} emitted={len(emitted)} delay={delay:.2f}s"
    assert len(emitted) >= KILL_AFTER, ctx
    # The default memory queue holds 10,000 events: the spool, not memory, bounded this.
    assert not refused, f"{len(refused)} refused, first {refused[:3]} ({ctx})"

    t_emit = time.monotonic() - t0
    t1 = time.monotonic()
    em = Emitter(server.base_url, spool_dir=spool, spool_mode=mode, **FAST)
    replayed = em.stats()["spool_replayed"]
    t_open = time.monotonic() - t1
    assert em.flush(600) is True, em.stats()
    assert em.close(30) is True
    t_drain = time.monotonic() - t1
    s = em.stats()
    held = ledger_run_ids(server, env)

    ctx += f" replayed={replayed} held={len(held)}"
    assert held <= set(emitted), f"phantom ids: {sorted(held - set(emitted))[:5]} ({ctx})"
    missing = set(emitted) - held
    if mode == "sync":
        assert missing <= {last_id}, f"{sorted(missing)[:5]} ({ctx})"
    else:
        last_t = emitted[last_id]
        late = sorted((last_t - emitted[r], r) for r in missing)
        too_old = [(round(age, 3), r) for age, r in late if age > ASYNC_TICK_SLACK_S]
        assert not too_old, f"lost more than one tick: {too_old[-5:]} ({ctx})"
        assert len(missing) <= DEFAULT_MAX_QUEUE_EVENTS, ctx
    assert replayed == len(held) == s["acked"], (s, ctx)
    assert s["server_inserted"] == len(held), (s, ctx)
    assert s["spool_corrupt_lines"] == 0, s
    assert s["left_in_spool"] == 0 and s["dropped_after_accept"] == 0, s
    assert s["spool_events"] == 0 and s["spool_bytes"] == 0, s
    assert_identity(s)
    assert files(spool) == [], f"spool not empty after a clean close ({ctx})"
    timings = {"emit_and_kill_s": t_emit, "restart_s": t_open, "drain_s": t_drain}
    rounded = {k: round(v, 2) for k, v in timings.items()}
    print(json.dumps({"mode": mode, "emitted": len(emitted), "missing": len(missing), **rounded}))
