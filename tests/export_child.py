"""Child process for the 100 MB export test of ``test_faults_more.py``.

``python export_child.py <json>`` with ``impl`` (``reference``/``ours``), ``face``
(``sync``/``async``), ``path`` (``native``/``injected``) and ``url``. Imports the SDK, makes one
small warm-up call (``health``), records ``ru_maxrss``, then calls ``fetch_runs_export_ndjson``
once and prints one JSON line: the body's length and SHA-256, the export headers, and the peak
RSS before and after the call (bytes). Peak RSS is per process, so it is measured here rather
than in the test process.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import resource
import sys
from typing import Any

import httpx


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def summary(body: bytes, headers: dict[str, str], before: int) -> dict[str, Any]:
    return {
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "headers": headers,
        "rss_before": before,
        "rss_after": peak_rss(),
    }


def run_sync(sdk: Any, url: str, injected: bool) -> dict[str, Any]:
    inj = httpx.Client(timeout=30.0) if injected else None
    client = sdk.FlightdeckClient(url, timeout_s=30.0, client=inj)
    try:
        client.health()
        before = peak_rss()
        body, headers = client.fetch_runs_export_ndjson(release_id="rel_big", window="7d")
        return summary(body, headers, before)
    finally:
        client.close()
        if inj is not None:
            inj.close()


async def run_async(sdk: Any, url: str, injected: bool) -> dict[str, Any]:
    inj = httpx.AsyncClient(timeout=30.0) if injected else None
    client = sdk.AsyncFlightdeckClient(url, timeout_s=30.0, client=inj)
    try:
        await client.health()
        before = peak_rss()
        body, headers = await client.fetch_runs_export_ndjson(release_id="rel_big", window="7d")
        return summary(body, headers, before)
    finally:
        await client.aclose()
        if inj is not None:
            await inj.aclose()


def main() -> None:
    args = json.loads(sys.argv[1])
    module = {"reference": "flightdeck.sdk", "ours": "flightdeck_rs.sdk"}[args["impl"]]
    sdk = importlib.import_module(module)
    injected = args["path"] == "injected"
    if args["face"] == "sync":
        result = run_sync(sdk, args["url"], injected)
    else:
        result = asyncio.run(run_async(sdk, args["url"], injected))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
