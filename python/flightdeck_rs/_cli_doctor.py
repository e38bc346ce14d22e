"""``flightdeck-rs doctor``: read-only checks of a server (and, on request, one write)."""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from flightdeck_rs import __version__
from flightdeck_rs._cli_common import (
    _PROG,
    EXIT_AUTH,
    EXIT_HTTP,
    EXIT_OK,
    EXIT_USAGE,
    TARGET_SERVER_VERSION,
    TOKEN_ENV,
    CliError,
    _classify,
    _client,
    _emit_json,
    _say,
    _Settings,
)
from flightdeck_rs.models import RunEvent
from flightdeck_rs.sdk import FlightdeckClient


@dataclass
class _Doctor:
    settings: _Settings
    checks: list[dict[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, status: str, name: str, detail: str) -> None:
        self.checks.append({"name": name, "status": status, "detail": detail})
        if not self.settings.json:
            _say(sys.stdout, f"  {status:<5} {name:<11} {detail}")


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _header_version(url: str) -> str | None:
    """``X-FlightDeck-Server-Version`` of ``GET /health`` (needs no token)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url.rstrip("/") + "/health", timeout=5.0) as resp:
            value = resp.headers.get("x-flightdeck-server-version")
            return str(value) if value else None
    except OSError:
        return None


#: Environment the ``doctor --write-check`` event is stored in. Diffs, promotions and policy
#: checks read events of one release *and one environment*, so an event here never enters
#: the outcome for any environment a real deployment uses.
DOCTOR_ENVIRONMENT = "flightdeck-rs-doctor"
_DOCTOR_READ_WINDOW = "1h"


def _doctor_find_release(client: FlightdeckClient, doc: _Doctor, release_id: str) -> dict[str, Any]:
    releases = client.list_releases().get("releases", [])
    release = next((r for r in releases if r.get("release_id") == release_id), None)
    if release is None:
        doc.add("fail", "release", f"release {release_id} is not registered on the server")
        raise CliError(EXIT_USAGE, "usage", f"unknown release {release_id}")
    return dict(release)


def _doctor_read_check(
    client: FlightdeckClient, doc: _Doctor, args: argparse.Namespace, release: dict[str, Any]
) -> None:
    """Read access to the release: one ``GET /v1/runs`` page of at most one event."""
    started = time.perf_counter()
    page = client.list_runs(
        release_id=args.release,
        window=_DOCTOR_READ_WINDOW,
        environment=args.environment,
        limit=1,
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    environment = (page.get("filters") or {}).get("environment") or args.environment
    doc.info["release"] = {
        "release_id": args.release,
        "agent_id": release.get("agent_id"),
        "version": release.get("version"),
        "environment": environment,
        "runs_last_hour": page.get("matched_total"),
    }
    doc.add(
        "ok",
        "release",
        f"{args.release} ({release.get('agent_id')} {release.get('version')}) is readable: "
        f"{page.get('matched_total')} run(s) in environment {environment!r} in the last hour "
        f"({elapsed_ms:.0f} ms)",
    )


def _doctor_write_check(
    client: FlightdeckClient, doc: _Doctor, args: argparse.Namespace, release: dict[str, Any]
) -> None:
    """Stores one test event in :data:`DOCTOR_ENVIRONMENT` and reads it back."""
    run_id = f"flightdeck-rs-doctor-{uuid.uuid4().hex}"
    event = RunEvent(
        timestamp=datetime.now(UTC),
        agent_id=str(release.get("agent_id") or "flightdeck-rs-doctor"),
        release_id=args.release,
        run_id=run_id,
        tenant_id="flightdeck-rs-doctor",
        task_id="doctor",
        environment=DOCTOR_ENVIRONMENT,
        request={"trace_id": run_id},
        metrics={"success": True, "latency_ms": 0},
        usage={
            "model": {
                "provider": "flightdeck-rs",
                "model": "doctor",
                "input_tokens": 0,
                "output_tokens": 0,
            }
        },
        labels={"flightdeck_rs.doctor": "true"},
    )
    started = time.perf_counter()
    inserted = client.ingest_run_events([event])
    page = client.list_runs(
        release_id=args.release,
        window=_DOCTOR_READ_WINDOW,
        environment=DOCTOR_ENVIRONMENT,
        trace_id=run_id,
        limit=5,
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    found = [e for e in page.get("events", []) if e.get("run_id") == run_id]
    doc.info["write_check"] = {
        "run_id": run_id,
        "release_id": args.release,
        "environment": DOCTOR_ENVIRONMENT,
        "inserted": inserted,
        "read_back": bool(found),
    }
    where = f"release {args.release}, environment {DOCTOR_ENVIRONMENT!r}"
    if inserted == 1 and found:
        doc.add(
            "ok",
            "write check",
            f"stored test event {run_id} in {where} and read it back in {elapsed_ms:.0f} ms "
            "(it stays there; no other environment's diff or promotion reads it)",
        )
    else:
        doc.add(
            "fail",
            "write check",
            f"stored test event {run_id} in {where} (inserted={inserted}) but GET /v1/runs "
            "did not return it",
        )
        raise CliError(EXIT_HTTP, "write_check", "the test event could not be read back")


def _cmd_doctor(args: argparse.Namespace, settings: _Settings) -> int:
    if args.write_check and args.release is None:
        raise CliError(
            EXIT_USAGE,
            "usage",
            "--write-check needs --release REL_ID (the test event is stored in that release, "
            f"environment {DOCTOR_ENVIRONMENT!r})",
        )
    doc = _Doctor(settings)
    doc.info.update(url=settings.url, client_version=__version__, read_only=not args.write_check)
    if not settings.json:
        mode = (
            f"with --write-check: stores one test event in environment {DOCTOR_ENVIRONMENT!r}"
            if args.write_check
            else "read-only"
        )
        _say(sys.stdout, f"{_PROG} doctor: {settings.url} (client {__version__}; {mode})")
    code = EXIT_OK
    try:
        with _client(settings) as client:
            started = time.perf_counter()
            try:
                health = client.health()
            except Exception as exc:
                err = _classify(exc, settings)
                doc.add("fail", "reachable", err.message)
                raise err from exc
            doc.add(
                "ok",
                "reachable",
                f"GET /health answered in {(time.perf_counter() - started) * 1000:.0f} ms",
            )
            mutation, read = health.get("mutation_auth"), health.get("read_auth")
            doc.info.update(mutation_auth=mutation, read_auth=read)
            auth = f"writes: {mutation}, reads: {read}"
            workspace: dict[str, Any] | None = None
            if read == "bearer" and settings.token is None:
                doc.add(
                    "fail",
                    "auth",
                    f"{auth}; the server requires a token: pass --token or set {TOKEN_ENV}",
                )
                code = EXIT_AUTH
            else:
                try:
                    workspace = client.get_workspace()
                except httpx.HTTPStatusError as exc:
                    err = _classify(exc, settings)
                    doc.add("fail", "auth", f"{auth}; {err.message}")
                    code = err.code
                else:
                    if settings.token is not None and read != "bearer":
                        doc.add(
                            "warn",
                            "auth",
                            f"{auth}; a token was given but the server does not check it",
                        )
                    elif mutation == "loopback" and not _is_loopback(settings.url):
                        doc.add(
                            "warn",
                            "auth",
                            f"{auth}; writes are accepted from loopback "
                            "only, so ingesting from here may get HTTP 403",
                        )
                    else:
                        doc.add("ok", "auth", auth + ("; token accepted" if settings.token else ""))
            version = (workspace or {}).get("server_version") or _header_version(settings.url)
            doc.info["server_version"] = version
            if version is None:
                doc.add("warn", "version", "the server did not tell its version")
            elif version.split(".")[:2] != TARGET_SERVER_VERSION.split(".")[:2]:
                doc.add(
                    "warn",
                    "version",
                    f"server {version}; flightdeck-rs {__version__} is "
                    f"tested against flightdeck-ai {TARGET_SERVER_VERSION}",
                )
            else:
                doc.add("ok", "version", f"server {version}, flightdeck-rs {__version__}")
            if code != EXIT_OK:
                pass
            elif args.release is None:
                doc.add("skip", "release", "pass --release REL_ID to check read access to it")
            else:
                release = _doctor_find_release(client, doc, args.release)
                _doctor_read_check(client, doc, args, release)
                if args.write_check:
                    _doctor_write_check(client, doc, args, release)
            if not args.write_check:
                doc.add(
                    "skip",
                    "write check",
                    "read-only: nothing was written (--write-check --release REL_ID stores "
                    f"one test event in environment {DOCTOR_ENVIRONMENT!r})",
                )
            elif code != EXIT_OK:
                doc.add("skip", "write check", "not run: an earlier check failed")
    except CliError as exc:
        code = exc.code
        doc.info["error"] = {"kind": exc.kind, "message": exc.message}
    except Exception as exc:
        err = _classify(exc, settings)
        code = err.code
        doc.add("fail", "request", err.message)
        doc.info["error"] = {"kind": err.kind, "message": err.message}
    if settings.json:
        _emit_json(
            {
                "command": "doctor",
                "ok": code == EXIT_OK,
                "exit_code": code,
                **doc.info,
                "checks": doc.checks,
            },
            sys.stdout,
        )
    else:
        failed = [c for c in doc.checks if c["status"] == "fail"]
        _say(sys.stdout, "all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return code

