"""Smoke test of an installed flightdeck-rs, run in a fresh venv by `make smoke-dist`.

Checks, with no Rust toolchain on PATH: the package imports from the venv (not a source tree),
its native module is the expected build (per-version or stable ABI), ``__version__``, the
installed metadata and ``flightdeck-rs --version`` agree, and the sync and async clients talk
to a real ``flightdeck serve`` (found on PATH; it comes from flightdeck-ai): health, one event
written and read back, ``flightdeck-rs doctor`` with a round trip.

Usage: python smoke.py --abi {version,abi3} --version X.Y.Z
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import uuid
from datetime import UTC, datetime, timedelta


def fail(message: str) -> None:
    print(f"smoke: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--abi", choices=["version", "abi3"], required=True)
    parser.add_argument("--version", required=True, help="the expected package version")
    args = parser.parse_args()

    for tool in ("cargo", "rustc"):
        check(shutil.which(tool) is None, f"a Rust toolchain is on PATH ({shutil.which(tool)})")

    import flightdeck_rs
    from flightdeck_rs import AsyncFlightdeckClient, FlightdeckClient, RunEvent, _native
    from flightdeck_rs._server import FlightdeckServer

    prefix = pathlib.Path(sys.prefix).resolve()
    package = pathlib.Path(flightdeck_rs.__file__).resolve()
    check(package.is_relative_to(prefix), f"flightdeck_rs imported from {package}, not {prefix}")
    native = pathlib.Path(str(_native.__file__)).name
    if args.abi == "abi3":
        check(".abi3." in native or native.endswith(".pyd"), f"not a stable-ABI module: {native}")
    else:
        suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
        check(native.endswith(suffix), f"{native} is not built for this interpreter ({suffix})")

    installed = importlib.metadata.version("flightdeck-rs")
    check(
        flightdeck_rs.__version__ == installed == args.version,
        f"versions differ: __version__ {flightdeck_rs.__version__}, metadata {installed}, "
        f"expected {args.version}",
    )
    script = shutil.which("flightdeck-rs")
    check(
        script is not None and pathlib.Path(script).resolve().is_relative_to(prefix),
        f"flightdeck-rs script not installed in the venv (found {script})",
    )
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    check(
        out.returncode == 0 and out.stdout.strip() == f"flightdeck-rs {args.version}",
        f"flightdeck-rs --version: exit {out.returncode}, {out.stdout!r} {out.stderr!r}",
    )

    run_id = f"smoke-{uuid.uuid4().hex}"
    with FlightdeckServer() as srv:
        event = RunEvent(
            timestamp=datetime.now(UTC) - timedelta(seconds=1),
            agent_id="agent_smoke",
            release_id=srv.baseline_id,
            run_id=run_id,
            tenant_id="tenant_smoke",
            task_id="smoke",
            environment="local",
            request={"trace_id": run_id},
            usage={
                "model": {
                    "provider": "openai",
                    "model": "gpt-4.1-mini",
                    "input_tokens": 10,
                    "output_tokens": 5,
                }
            },
            metrics={"success": True, "latency_ms": 12},
        )
        with FlightdeckClient(srv.base_url, timeout_s=10.0) as client:
            health = client.health()
            check(bool(health), f"empty health answer: {health!r}")
            check(client.ingest_run_events([event]) == 1, "the event was not inserted")
            page = client.list_runs(
                release_id=srv.baseline_id, window="1h", environment="local", trace_id=run_id
            )
            found = [e for e in page.get("events", []) if e.get("run_id") == run_id]
            check(len(found) == 1, f"the event was not read back: {page!r}")

        async def async_calls() -> dict[str, object]:
            async with AsyncFlightdeckClient(srv.base_url, timeout_s=10.0) as aclient:
                return await aclient.health()

        check(asyncio.run(async_calls()) == health, "async health differs from sync health")

        doctor = subprocess.run(
            [
                str(script),
                "doctor",
                "--url",
                srv.base_url,
                "--release",
                srv.baseline_id,
                "--json",
                "-q",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        check(
            doctor.returncode == 0,
            f"flightdeck-rs doctor: exit {doctor.returncode}, {doctor.stdout!r} {doctor.stderr!r}",
        )
        check(json.loads(doctor.stdout).get("ok") is True, f"doctor: {doctor.stdout!r}")

    print(
        f"smoke: ok: flightdeck-rs {installed} ({native}) on Python "
        f"{sys.version.split()[0]}, against flightdeck serve"
    )


if __name__ == "__main__":
    main()
