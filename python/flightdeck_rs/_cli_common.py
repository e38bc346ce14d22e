"""The ``flightdeck-rs`` command line's shared parts: exit codes, settings, output (the
progress bar, JSON and text lines) and the mapping of failures to exit codes and messages."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from typing import IO, Any, TextIO

import httpx

from flightdeck_rs.sdk import FlightdeckClient

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

