"""``flightdeck-rs ingest`` and ``flightdeck-rs export``."""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import time
from collections.abc import Iterator
from typing import IO, Any, cast

from flightdeck_rs import _paging, helpers
from flightdeck_rs._cli_common import (
    _PROG,
    _SHOW_REJECTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CliError,
    _client,
    _emit_json,
    _LogHandler,
    _preflight,
    _Progress,
    _say,
    _Settings,
)


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


#: ``export`` option (argparse destination) -> the ``GET /v1/runs`` filter it sets.
_FILTER_OPTIONS = {
    "environment": "environment",
    "tenant": "tenant_id",
    "task": "task_id",
    "trace_id": "trace_id",
    "session_id": "session_id",
    "span_id": "span_id",
}


def _run_filters(args: argparse.Namespace) -> helpers.RunFilters:
    given = {name: getattr(args, option) for option, name in _FILTER_OPTIONS.items()}
    return cast("helpers.RunFilters", {k: v for k, v in given.items() if v is not None})


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

    pager = _paging.Pager(_paging.page_size(args.page_size), "GET /v1/runs/export")
    bar = _Progress("export", stream=sys.stderr, enabled=not settings.quiet)
    count = 0
    started = time.monotonic()
    ok = False
    try:
        with _client(settings) as client:
            _LogHandler.progress = bar
            walk = _paging.pages(pager, args.release, args.window, _run_filters(args))
            pairs = _paging.export_pairs(client, walk)
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
            f"pages only up to offset {_paging.MAX_OFFSET + _paging.MAX_PAGE_SIZE:,}; narrow "
            "--window or add filters (--environment, --tenant, --task)",
        )
    return code

