"""Child process for the 100 MB export test of ``test_faults_more.py``.

``python export_child.py <json>`` with ``impl`` (``reference``/``ours``), ``face``
(``sync``/``async``), ``path`` (``native``/``injected``) and ``url``. Imports the SDK, makes one
small warm-up call (``health``), resets the peak RSS, then calls ``fetch_runs_export_ndjson``
once and prints one JSON line: the body's length and SHA-256, the export headers, the RSS before
the call and the peak RSS after it (bytes). Peak RSS is per process, so it is measured here
rather than in the test process.

The peak is the kernel's high-water mark ``VmHWM``, reset just before the call by writing ``5``
to ``/proc/self/clear_refs``: ``getrusage``'s ``ru_maxrss`` cannot be reset and, after
``vfork`` + ``exec``, starts at the parent's peak (the test process holds the 100 MB body it
serves). Where ``clear_refs`` is not writable, ``ru_maxrss`` is used instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import re
import resource
import sys
from typing import Any

import httpx


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    assert match is not None, key
    return int(match.group(1))


_CLEARED = False


def reset_peak_rss() -> int:
    """Reset the high-water mark to the current RSS (when allowed); return the current peak."""
    global _CLEARED
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _CLEARED = True
    except OSError:
        pass
    return peak_rss()


def peak_rss() -> int:
    if _CLEARED:
        return _status_kib("VmHWM") * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def summary(body: bytes, headers: dict[str, str], before: int) -> dict[str, Any]:
    return {
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "headers": headers,
        "rss_before": before,
        "rss_after": peak_rss(),
        "peak_source": "VmHWM" if _CLEARED else "ru_maxrss",
    }


def run_sync(sdk: Any, url: str, injected: bool) -> dict[str, Any]:
    inj = httpx.Client(timeout=30.0) if injected else None
    client = sdk.FlightdeckClient(url, timeout_s=30.0, client=inj)
    try:
        client.health()
        before = reset_peak_rss()
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
        before = reset_peak_rss()
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
