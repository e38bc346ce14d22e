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
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from flightdeck_rs import __version__, helpers
from flightdeck_rs._cli_common import (
    _LOGGER,
    _PROG,
    DEFAULT_URL,
    EXIT_AUTH,
    EXIT_HTTP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    TOKEN_ENV,
    URL_ENV,
    CliError,
    _classify,
    _emit_json,
    _LogHandler,
    _say,
    _Settings,
)
from flightdeck_rs._cli_doctor import DOCTOR_ENVIRONMENT, _cmd_doctor
from flightdeck_rs._cli_transfer import _cmd_export, _cmd_ingest

__all__ = [
    "DEFAULT_URL",
    "DOCTOR_ENVIRONMENT",
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
