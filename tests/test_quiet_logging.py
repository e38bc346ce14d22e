"""No output nobody asked for: an application that has not configured logging sees nothing of
the clients' retries on stderr (as with the reference SDK, and as ``urllib3`` does it: a
``NullHandler`` on the ``flightdeck_rs.client`` logger), while the emitter's data-loss warnings
still reach stderr through Python's last-resort handler.

Each run is a child process, so that logging starts unconfigured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)

TESTS = Path(__file__).resolve().parent

# Retried calls on every face and path (the fault server resets each connection, so every
# attempt fails with a ReadError and health() is retried twice), then one emitter drop. With
# "configured" as argv[1], logging.basicConfig() runs first. Prints the attempts per face.
CHILD = r"""
import asyncio, json, logging, sys
sys.path.insert(0, sys.argv[2])
if sys.argv[1] == "configured":
    logging.basicConfig(format="%(name)s %(levelname)s %(message)s")

import httpx
from fault_server import FaultServer, Reset
from flightdeck_rs import AsyncFlightdeckClient, Emitter, FlightdeckClient

attempts = {}
for face in ("sync", "async"):
    for path in ("native", "injected"):
        with FaultServer([[Reset()]]) as fs:
            kw = dict(api_token="quiet-token", max_retries=2, retry_backoff_s=0.01)
            if face == "sync":
                client = FlightdeckClient(
                    fs.url, client=httpx.Client() if path == "injected" else None, **kw
                )
                try:
                    client.health()
                except httpx.ReadError:
                    pass
                client.close()
            else:
                async def main():
                    inj = httpx.AsyncClient() if path == "injected" else None
                    async with AsyncFlightdeckClient(fs.url, client=inj, **kw) as client:
                        try:
                            await client.health()
                        except httpx.ReadError:
                            pass
                    if inj is not None:
                        await inj.aclose()
                asyncio.run(main())
            attempts[f"{face}/{path}"] = fs.wait_for_requests(3)

print(json.dumps(attempts), flush=True)

# Then one event dropped by the emitter (emitted after close).
from datetime import UTC, datetime

emitter = Emitter("http://127.0.0.1:9", atexit_timeout_s=0)
emitter.close(timeout_s=0)
event = {
    "timestamp": datetime.now(UTC).isoformat(), "agent_id": "agent_support",
    "release_id": "rel_quiet", "run_id": "run-quiet", "tenant_id": "tenant_acme",
    "task_id": "task_support", "environment": "local",
    "usage": {"model": {"provider": "openai", "model": "gpt-4.1-mini",
                        "input_tokens": 1, "output_tokens": 1}},
    "metrics": {"success": True},
}
assert emitter.emit(event) is False
"""

DROP_WARNING = "flightdeck_rs emitter dropped an event (after_close); further drops are summarised"


def run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def attempts(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(proc.stdout)
    return got


FACES = {"sync/native", "sync/injected", "async/native", "async/injected"}


def test_retries_write_nothing_to_stderr_without_logging_configured() -> None:
    proc = run_child(CHILD, "unconfigured", str(TESTS))
    # Every call really was retried (1 + 2 attempts) ...
    assert attempts(proc) == {face: 3 for face in FACES}
    # ... and the only line on stderr is the emitter's data-loss warning.
    assert proc.stderr.splitlines() == [DROP_WARNING], proc.stderr


def test_retries_reach_an_application_that_configured_logging() -> None:
    """The NullHandler silences nothing for an application with handlers of its own."""
    proc = run_child(CHILD, "configured", str(TESTS))
    assert attempts(proc) == {face: 3 for face in FACES}
    lines = proc.stderr.splitlines()
    retries = [line for line in lines if line.startswith("flightdeck_rs.client ")]
    assert len(retries) == 2 * len(FACES), proc.stderr
    assert all(
        line.startswith("flightdeck_rs.client WARNING retrying GET /health after ReadError")
        for line in retries
    ), retries
    assert f"flightdeck_rs WARNING {DROP_WARNING}" in lines, proc.stderr
    assert "quiet-token" not in proc.stderr
