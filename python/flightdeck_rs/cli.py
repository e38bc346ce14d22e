"""The ``flightdeck-rs`` command line (also ``python -m flightdeck_rs``).

Commands:

* ``flightdeck-rs ingest FILE|-``: stream a JSONL file of run events (``-``: standard input)
  to ``POST /v1/events``; bad lines are reported with their line numbers, the rest are sent.
* ``flightdeck-rs export --release R --window 7d [-o FILE]``: write the run events of a
  release as NDJSON (to standard output by default).
* ``flightdeck-rs doctor [--release R] [--write-check]``: check that the server answers, how
  it authenticates, its version and (with ``--release``) read access to a release. Read-only;
  ``--write-check`` also stores one test event in environment ``flightdeck-rs-doctor`` of the
  release and reads it back.
* ``flightdeck-rs demo``: the end-to-end demo against a throwaway local server, or with
  ``--url URL --baseline R --candidate R`` against an existing one (written to a new
  environment).

Every command takes ``--url`` (default ``$FLIGHTDECK_URL`` or ``http://127.0.0.1:8765``),
``--token`` (default ``$FLIGHTDECK_LOCAL_API_TOKEN``), ``--json`` (one JSON object on
standard output, or on standard error when the exported data goes to standard output),
``-q`` (no progress) and ``-v`` (log more; ``-vv`` for every request).

Exit codes:
    0: success.
    1: partial success (some input lines were rejected, or an export stopped at the server's
        paging limit).
    2: usage error or unusable input (unreadable file, no valid event in it, bad ``--url``).
    3: the server could not be reached.
    4: authentication failed (HTTP 401 or 403).
    5: any other HTTP error.
    130: interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import shutil
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, NoReturn, TextIO

import httpx

from flightdeck_rs import __version__, helpers
from flightdeck_rs.models import RunEvent
from flightdeck_rs.sdk import FlightdeckClient

__all__ = [
    "DEFAULT_URL",
    "EXIT_AUTH",
    "EXIT_HTTP",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_HTTP = 5
EXIT_INTERRUPTED = 130

#: Server URL used when neither ``--url`` nor ``$FLIGHTDECK_URL`` is set.
DEFAULT_URL = "http://127.0.0.1:8765"
URL_ENV = "FLIGHTDECK_URL"
TOKEN_ENV = "FLIGHTDECK_LOCAL_API_TOKEN"
#: The reference server release this package is tested against.
TARGET_SERVER_VERSION = "1.3.0"

_PROG = "flightdeck-rs"
_LOGGER = logging.getLogger("flightdeck_rs")
_SHOW_REJECTED = 20
_TTY_REFRESH_S = 0.1
_PLAIN_REFRESH_S = 5.0


class CliError(Exception):
    """A failure with its exit code, a short machine-readable kind and a message for people."""

    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.message = message


@dataclass
class _Settings:
    url: str
    token: str | None
    json: bool
    quiet: bool
    verbose: int
    timeout_s: float


# ----------------------------------------------------------------------------- output


class _Progress:
    """A redrawn bar on a terminal, plain periodic lines otherwise, nothing when disabled."""

    def __init__(self, label: str, *, stream: IO[str], enabled: bool) -> None:
        self.label = label
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and _isatty(stream)
        self.start = time.monotonic()
        # A terminal shows the bar at once; plain output waits one interval, so short runs
        # print nothing but their summary.
        self._last = 0.0 if self.tty else self.start
        self._drawn = False

    def update(
        self, events: int, fraction: float | None, extra: str = "", force: bool = False
    ) -> None:
        """Redraws (throttled): ``events`` done so far, ``fraction`` of the input if known."""
        if not self.enabled:
            return
        now = time.monotonic()
        interval = _TTY_REFRESH_S if self.tty else _PLAIN_REFRESH_S
        if not force and now - self._last < interval:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        rate = events / elapsed
        parts = [f"{events:,} events", f"{rate:,.0f} ev/s"]
        if extra:
            parts.append(extra)
        if fraction is not None and 0 < fraction <= 1:
            # The first second's rate says little about the rest.
            eta = elapsed * (1 - fraction) / fraction if elapsed >= 1.0 else None
            parts.append(f"ETA {_duration(eta)}" if eta is not None else "ETA --")
        if self.tty:
            width = shutil.get_terminal_size((80, 20)).columns
            text = "  ".join(parts)
            if fraction is not None:
                bar_width = max(10, min(30, width - len(text) - len(self.label) - 14))
                filled = int(bar_width * min(max(fraction, 0.0), 1.0))
                bar = "#" * filled + "-" * (bar_width - filled)
                text = f"[{bar}] {fraction * 100:3.0f}%  {text}"
            line = f"{self.label} {text}"[: max(10, width - 1)]
            self.stream.write("\r" + line + "\x1b[K")
            self._drawn = True
        else:
            pct = f"{fraction * 100:.0f}%, " if fraction is not None else ""
            self.stream.write(f"{self.label}: {pct}{', '.join(parts)}\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erases the bar (before other output, and at the end)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


class _LogHandler(logging.StreamHandler[TextIO]):
    """Writes ``flightdeck-rs: warning: ...`` lines, erasing a live progress bar first."""

    progress: _Progress | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is not None:
            self.progress.clear()
        super().emit(record)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _emit_json(payload: dict[str, Any], stream: IO[str]) -> None:
    stream.write(json.dumps(payload, sort_keys=False) + "\n")
    stream.flush()


def _say(stream: IO[str], text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


# ----------------------------------------------------------------------------- errors


def _response_detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        detail = detail.get("message") or json.dumps(detail)
    if detail is None:
        detail = response.text.strip()[:300] or response.reason_phrase
    return str(detail)


def _notes(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None) or []
    return "".join(f" ({note})" for note in notes)


def _classify(exc: BaseException, settings: _Settings) -> CliError:
    """Maps an exception from a command to an exit code and a message."""
    if isinstance(exc, CliError):
        return exc
    url = settings.url
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        what = f"{exc.request.method} {exc.request.url.path}"
        detail = _response_detail(exc.response)
        if status in (401, 403):
            if settings.token is None:
                hint = f"the server wants a token: pass --token or set {TOKEN_ENV}"
            else:
                hint = f"check the token (it must equal the server's {TOKEN_ENV})"
            if status == 403 and settings.token is None:
                hint += "; a server without a token accepts writes from loopback only"
            return CliError(
                EXIT_AUTH,
                "auth",
                f"{what} was refused: HTTP {status} ({detail}); {hint}" + _notes(exc),
            )
        return CliError(EXIT_HTTP, "http", f"{what} failed: HTTP {status} ({detail})" + _notes(exc))
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return CliError(EXIT_USAGE, "usage", f"invalid server URL {url!r}: {exc}")
    if isinstance(exc, httpx.RequestError):
        reason = str(exc).rsplit(": ", 1)[-1] or type(exc).__name__
        return CliError(
            EXIT_UNREACHABLE,
            "unreachable",
            f"cannot reach the server at {url} ({reason}); is `flightdeck serve` running? "
            f"Set --url or {URL_ENV} to point elsewhere." + _notes(exc),
        )
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else ""
        return CliError(EXIT_USAGE, "bad_file", f"cannot use {name!s}: {exc.strerror or exc}")
    if isinstance(exc, ValueError):
        return CliError(EXIT_HTTP, "bad_response", f"unexpected data from the server: {exc}")
    raise exc


# ----------------------------------------------------------------------------- commands


def _client(settings: _Settings) -> FlightdeckClient:
    try:
        return FlightdeckClient(
            settings.url, timeout_s=settings.timeout_s, api_token=settings.token
        )
    except (TypeError, ValueError) as exc:
        raise CliError(EXIT_USAGE, "usage", str(exc)) from exc


def _preflight(client: FlightdeckClient, settings: _Settings, *, write: bool) -> dict[str, Any]:
    """``GET /health``, and a clear auth error before any data is read or sent."""
    health = client.health()
    bearer = (
        health.get("mutation_auth") == "bearer" if write else health.get("read_auth") == "bearer"
    )
    if bearer and settings.token is None:
        raise CliError(
            EXIT_AUTH,
            "auth",
            f"the server at {settings.url} requires a bearer token for "
            f"{'writes' if write else 'reads'}: pass --token or set {TOKEN_ENV}",
        )
    return health


@contextlib.contextmanager
def _open_input(name: str) -> Iterator[tuple[IO[bytes], int | None, str]]:
    if name == "-":
        yield sys.stdin.buffer, None, "<stdin>"
        return
    path = pathlib.Path(name)
    if path.is_dir():
        raise CliError(EXIT_USAGE, "bad_file", f"cannot read {name}: it is a directory")
    try:
        f = open(path, "rb")
    except FileNotFoundError as exc:
        raise CliError(EXIT_USAGE, "bad_file", f"cannot read {name}: no such file") from exc
    except OSError as exc:
        raise CliError(EXIT_USAGE, "bad_file", f"cannot read {name}: {exc.strerror}") from exc
    with f:
        st = os.fstat(f.fileno())
        size = st.st_size if path.is_file() else None
        yield f, size, name


def _cmd_ingest(args: argparse.Namespace, settings: _Settings) -> int:
    with _open_input(args.file) as (f, size, name), _client(settings) as client:
        _preflight(client, settings, write=True)
        bar = _Progress("ingest", stream=sys.stderr, enabled=not settings.quiet)
        _LogHandler.progress = bar

        def progress(done_lines: int, sent: int, inserted: int) -> None:
            fraction: float | None = None
            if size:
                try:
                    fraction = f.tell() / size
                except (OSError, ValueError):
                    fraction = None
            bar.update(sent, fraction, f"{done_lines:,} lines")

        started = time.monotonic()
        try:
            summary = helpers.ingest_jsonl(
                client,
                f,
                chunk_size=args.chunk_size,
                concurrency=args.concurrency,
                progress=progress,
                max_retries=args.max_retries,
            )
        finally:
            bar.clear()
            _LogHandler.progress = None
        elapsed = time.monotonic() - started

    if summary.rejected and summary.sent == 0:
        code = EXIT_USAGE
    elif summary.rejected:
        code = EXIT_PARTIAL
    else:
        code = EXIT_OK
    rate = summary.sent / elapsed if elapsed > 0 else 0.0
    if settings.json:
        payload: dict[str, Any] = {
            "command": "ingest",
            "ok": code == EXIT_OK,
            "exit_code": code,
            "source": name,
            "url": settings.url,
            **summary.to_dict(),
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(rate, 1),
        }
        _emit_json(payload, sys.stdout)
        return code
    _say(
        sys.stdout,
        f"ingested {name}: {summary.lines:,} lines, {summary.sent:,} sent "
        f"({summary.inserted:,} inserted, {summary.duplicates:,} duplicates), "
        f"{len(summary.rejected):,} rejected, in {elapsed:.2f} s ({rate:,.0f} events/s)",
    )
    if summary.rejected:
        _say(sys.stderr, f"{_PROG}: {len(summary.rejected):,} line(s) rejected:")
        for line_no, message in summary.rejected[:_SHOW_REJECTED]:
            _say(sys.stderr, f"  line {line_no}: {message}")
        more = len(summary.rejected) - _SHOW_REJECTED
        if more > 0:
            _say(sys.stderr, f"  ... and {more:,} more (--json lists them all)")
        if code == EXIT_USAGE:
            _say(sys.stderr, f"{_PROG}: no valid event in {name}")
    return code


def _run_filters(args: argparse.Namespace) -> helpers.RunFilters:
    filters: helpers.RunFilters = {}
    if args.environment is not None:
        filters["environment"] = args.environment
    if args.tenant is not None:
        filters["tenant_id"] = args.tenant
    if args.task is not None:
        filters["task_id"] = args.task
    if args.trace_id is not None:
        filters["trace_id"] = args.trace_id
    if args.session_id is not None:
        filters["session_id"] = args.session_id
    if args.span_id is not None:
        filters["span_id"] = args.span_id
    return filters


def _cmd_export(args: argparse.Namespace, settings: _Settings) -> int:
    to_stdout = args.output in (None, "-")
    report = sys.stderr if to_stdout else sys.stdout
    target = "<stdout>" if to_stdout else str(args.output)
    tmp: pathlib.Path | None = None
    out: IO[bytes]
    if to_stdout:
        out = sys.stdout.buffer
    else:
        dest = pathlib.Path(args.output)
        if dest.is_dir():
            raise CliError(EXIT_USAGE, "bad_file", f"cannot write {dest}: it is a directory")
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            out = open(tmp, "wb")
        except OSError as exc:
            raise CliError(EXIT_USAGE, "bad_file", f"cannot write {dest}: {exc.strerror}") from exc

    pager = helpers._Pager(helpers._page_size(args.page_size), "GET /v1/runs/export")
    bar = _Progress("export", stream=sys.stderr, enabled=not settings.quiet)
    count = 0
    started = time.monotonic()
    ok = False
    try:
        with _client(settings) as client:
            _LogHandler.progress = bar
            pairs = helpers._iter_export_pairs(
                client, pager, args.release, args.window, _run_filters(args)
            )
            for line, _event in pairs:
                out.write(line)
                out.write(b"\n")
                count += 1
                total = pager.matched_total
                bar.update(count, count / total if total else None)
        out.flush()
        ok = True
    finally:
        bar.clear()
        _LogHandler.progress = None
        if tmp is not None:
            out.close()
            if ok:
                os.replace(tmp, args.output)
            else:
                with contextlib.suppress(OSError):
                    tmp.unlink()
    elapsed = time.monotonic() - started

    code = EXIT_PARTIAL if pager.incomplete else EXIT_OK
    if settings.json:
        _emit_json(
            {
                "command": "export",
                "ok": code == EXIT_OK,
                "exit_code": code,
                "url": settings.url,
                "release_id": args.release,
                "window": args.window,
                "output": "-" if to_stdout else str(args.output),
                "events": count,
                "matched_total": pager.matched_total,
                "complete": not pager.incomplete,
                "elapsed_s": round(elapsed, 3),
            },
            report,
        )
        return code
    _say(
        report,
        f"exported {count:,} events of {args.release} (window {args.window}) to {target} "
        f"in {elapsed:.2f} s",
    )
    if pager.incomplete:
        _say(
            sys.stderr,
            f"{_PROG}: export incomplete: {pager.matched_total:,} events match but the server "
            f"pages only up to offset {helpers.MAX_OFFSET + helpers.MAX_PAGE_SIZE:,}; narrow "
            "--window or add filters (--environment, --tenant, --task)",
        )
    return code


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


def _cmd_demo(args: argparse.Namespace, settings: _Settings) -> int:
    from flightdeck_rs import demo

    # Only an explicit --url drives an existing server ($FLIGHTDECK_URL does not): the demo
    # writes events and promotions.
    url = getattr(args, "url", None)
    return demo.run_demo(
        url=settings.url if url is not None else None,
        token=settings.token if url is not None else None,
        baseline=args.baseline,
        candidate=args.candidate,
        model=args.model,
        json_output=settings.json,
        timeout_s=settings.timeout_s,
    )


# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _common(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    g = parser.add_argument_group("connection and output")
    g.add_argument("--url", default=s, help=f"server URL (default: ${URL_ENV} or {DEFAULT_URL})")
    g.add_argument("--token", default=s, help=f"bearer token (default: ${TOKEN_ENV})")
    g.add_argument(
        "--timeout",
        type=float,
        default=s,
        metavar="SECONDS",
        help="per-request timeout (default: 30)",
    )
    g.add_argument(
        "--json", action="store_true", default=s, help="print one JSON object instead of text"
    )
    g.add_argument("-q", "--quiet", action="store_true", default=s, help="no progress output")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=s,
        help="log retries and requests (-vv: every request)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Builds the ``flightdeck-rs`` argument parser.

    Returns:
        The parser; ``parse_args`` leaves the chosen command's function in ``func``.
    """
    parser = _Parser(
        prog=_PROG,
        description="Bulk ingest, export and checks for a FlightDeck server (flightdeck-rs).",
        epilog="exit codes: 0 ok, 1 partial (lines rejected), 2 usage or bad file, "
        "3 server unreachable, 4 authentication failed, 5 other HTTP error",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "ingest",
        help="send a JSONL file of run events",
        description="Stream a JSONL file of run events (one per line) to the "
        "server. Invalid lines are reported with their line numbers; the others "
        "are sent.",
    )
    p.add_argument("file", metavar="FILE|-", help="JSONL file, or - for standard input")
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=500,
        metavar="N",
        help="events per request (default: 500)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="requests in flight (default: 4)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=2,
        metavar="N",
        help="retries of a chunk after a transient failure (default: 2)",
    )
    _common(p)
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser(
        "export",
        help="write the run events of a release as NDJSON",
        description="Write the run events of a release (newest first) as NDJSON, "
        "one event per line; the output can be fed back to `ingest`.",
    )
    p.add_argument("--release", required=True, metavar="RELEASE_ID", help="release id (rel_...)")
    p.add_argument("--window", required=True, help="look-back window, e.g. 1h, 7d")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="output file (default: standard output); written atomically",
    )
    p.add_argument("--environment", help="environment (default: the workspace default)")
    p.add_argument("--tenant", help="only this tenant_id")
    p.add_argument("--task", help="only this task_id")
    p.add_argument("--trace-id", help="only this request.trace_id")
    p.add_argument("--session-id", help="only this request.session_id")
    p.add_argument("--span-id", help="only this request.span_id")
    p.add_argument(
        "--page-size",
        type=_positive_int,
        default=helpers.MAX_PAGE_SIZE,
        metavar="N",
        help="events per request (default and maximum: 500)",
    )
    _common(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "doctor",
        help="read-only checks: reachable, auth, version, read access to a release",
        description="Check that the server answers (GET /health), how it authenticates "
        "and its version (GET /v1/workspace) and, with --release, that the release is "
        "registered and its runs can be read (GET /v1/releases, one GET /v1/runs page). "
        "Read-only: nothing is written unless --write-check is given.",
    )
    p.add_argument(
        "--release",
        metavar="RELEASE_ID",
        help="release to check read access to (skipped without it)",
    )
    p.add_argument(
        "--environment",
        help="environment of the read check (default: the server's default environment)",
    )
    p.add_argument(
        "--write-check",
        action="store_true",
        help="also STORE one test event (zero tokens, label flightdeck_rs.doctor) in the "
        f"--release, environment {DOCTOR_ENVIRONMENT!r}, and read it back; the event "
        "stays in the ledger (it is counted in /v1/metrics and shows up when that "
        "environment is exported) but no diff, promotion or policy check of any other "
        "environment reads it",
    )
    _common(p)
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo (a throwaway local server, or --url)",
        description="Start a temporary `flightdeck serve`, drive it with the "
        "flightdeck-rs clients and print a summary. With --url, drive that existing "
        "server instead: --baseline and --candidate name two registered releases of one "
        "agent, and everything the demo writes (40 events, two promotions and their audit "
        "actions) goes to a new environment, so no other environment's diffs, promotions "
        "or policy verdicts change. $FLIGHTDECK_URL is not used by this command.",
    )
    from flightdeck_rs import demo

    demo.add_arguments(p)
    _common(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def _settings(args: argparse.Namespace) -> _Settings:
    url = getattr(args, "url", None) or os.environ.get(URL_ENV) or DEFAULT_URL
    token = getattr(args, "token", None)
    if token is None:
        token = os.environ.get(TOKEN_ENV)
    token = token.strip() if token else None
    timeout = float(getattr(args, "timeout", 30.0))
    if not timeout > 0:
        raise CliError(EXIT_USAGE, "usage", f"--timeout must be > 0, got {timeout}")
    return _Settings(
        url=url.strip(),
        token=token or None,
        json=bool(getattr(args, "json", False)),
        quiet=bool(getattr(args, "quiet", False)),
        verbose=int(getattr(args, "verbose", 0) or 0),
        timeout_s=timeout,
    )


def _setup_logging(verbose: int) -> _LogHandler:
    handler = _LogHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{_PROG}: %(levelname)s: %(message)s"))
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    _LOGGER.addHandler(handler)
    _LOGGER.setLevel(level)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see the module docstring).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except CliError as exc:
        _say(sys.stderr, f"{_PROG}: error: {exc.message}")
        return exc.code
    previous_level = _LOGGER.level
    handler = _setup_logging(settings.verbose)
    try:
        return int(args.func(args, settings))
    except KeyboardInterrupt:
        _say(sys.stderr, f"\n{_PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of standard output went away (e.g. `| head`): stop quietly.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PARTIAL
    except Exception as exc:
        err = _classify(exc, settings)
        if settings.json:
            payload = {
                "command": args.command,
                "ok": False,
                "exit_code": err.code,
                "error": {"kind": err.kind, "message": err.message},
            }
            stream = (
                sys.stderr if args.command == "export" and _exports_to_stdout(args) else sys.stdout
            )
            _emit_json(payload, stream)
        _say(sys.stderr, f"{_PROG}: error: {err.message}")
        return err.code
    finally:
        _LOGGER.removeHandler(handler)
        _LOGGER.setLevel(previous_level)


def _exports_to_stdout(args: argparse.Namespace) -> bool:
    return getattr(args, "output", None) in (None, "-")
