"""Reading a JSONL file of events for ``ingest_jsonl``: the line reader, the chunks it
makes, and the tally that becomes the :class:`IngestSummary`. No I/O besides the file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import httpx

from flightdeck_rs._errors import ValidationError
from flightdeck_rs._helpers_base import JsonlSource, ProgressCallback, logger
from flightdeck_rs.models import RunEvent

__all__ = ["IngestSummary"]

_BOM_BYTES = b"\xef\xbb\xbf"
_BOM_STR = "\ufeff"


@dataclass
class IngestSummary:
    """What :func:`ingest_jsonl` did.

    Attributes:
        sent: Events the server accepted (inserted or recognised as duplicates).
        inserted: Events the server stored.
        duplicates: ``sent - inserted``: events whose ``run_id`` was already stored.
        rejected: ``(line_no, message)`` for every line that was not sent, because it is not
            a valid ``RunEvent`` or because the server refused it; 1-based, sorted.
        lines: Input lines read, blank ones included.
    """

    sent: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0

    @property
    def ok(self) -> bool:
        """``True`` when no line was rejected."""
        return not self.rejected

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``rejected`` becomes a list of ``{"line", "error"}`` objects."""
        return {
            "lines": self.lines,
            "sent": self.sent,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "rejected": [{"line": n, "error": msg} for n, msg in self.rejected],
        }


def _describe_invalid(exc: ValueError) -> str:
    """One line per problem, joined: ``"usage.model: Field required; run_id: ..."``."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            msg = str(err.get("msg", "invalid"))
            parts.append(f"{loc}: {msg}" if loc else msg)
        if parts:
            return "; ".join(parts)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def server_detail(exc: httpx.HTTPStatusError) -> str:
    response = exc.response
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        detail = response.text.strip()[:300] or response.reason_phrase
    return f"server rejected it (HTTP {response.status_code}): {detail}"


@dataclass
class Chunk:
    events: list[RunEvent]
    line_nos: list[int]
    lines: int  # input lines consumed to build this chunk (blank and rejected included)


@dataclass
class Outcome:
    lines: int
    sent: int = 0
    inserted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


class LineReader:
    """Reads a JSONL source and validates each line; invalid lines go to ``rejected``."""

    def __init__(self, source: JsonlSource) -> None:
        if isinstance(source, str | os.PathLike):
            self._file: IO[Any] = open(source, "rb")  # closed in close()
            self._owned = True
        elif isinstance(source, bytes | bytearray):
            raise TypeError("path_or_file must be a str path or a file object, not bytes")
        elif hasattr(source, "readline") or hasattr(source, "__iter__"):
            self._file = source
            self._owned = False
        else:
            raise TypeError(
                f"path_or_file must be a path or a file object, got {type(source).__name__}"
            )
        self._lines: Iterator[bytes | str] = iter(self._file)
        self.line_no = 0
        self.rejected: list[tuple[int, str]] = []

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def read_chunk(self, size: int) -> Chunk | None:
        events: list[RunEvent] = []
        line_nos: list[int] = []
        first = self.line_no
        for raw in self._lines:
            self.line_no += 1
            line: bytes | str = raw
            if self.line_no == 1:
                if isinstance(line, bytes) and line.startswith(_BOM_BYTES):
                    line = line[len(_BOM_BYTES) :]
                elif isinstance(line, str) and line.startswith(_BOM_STR):
                    line = line[1:]
            line = line.strip()
            if not line:
                continue
            try:
                event = RunEvent.model_validate_json(line)
            except ValueError as exc:  # ValidationError, UnicodeDecodeError
                message = _describe_invalid(exc)
                logger.debug("line %d rejected: %s", self.line_no, message)
                self.rejected.append((self.line_no, message))
                continue
            events.append(event)
            line_nos.append(self.line_no)
            if len(events) >= size:
                break
        consumed = self.line_no - first
        if consumed == 0:
            return None
        return Chunk(events, line_nos, consumed)


class Tally:
    """Accumulates outcomes into an :class:`IngestSummary` and reports progress."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.summary = IngestSummary()
        self.done_lines = 0
        self._progress = progress
        self._reported: tuple[int, int, int] | None = None

    def add(self, outcome: Outcome) -> None:
        s = self.summary
        self.done_lines += outcome.lines
        s.sent += outcome.sent
        s.inserted += outcome.inserted
        s.duplicates = s.sent - s.inserted
        s.rejected.extend(outcome.rejected)
        self._report()

    def _report(self) -> None:
        s = self.summary
        state = (self.done_lines, s.sent, s.inserted)
        if self._progress is not None and state != self._reported:
            self._reported = state
            self._progress(*state)

    def finish(self, reader: LineReader) -> IngestSummary:
        s = self.summary
        s.lines = reader.line_no
        s.rejected.extend(reader.rejected)
        s.rejected.sort(key=lambda item: item[0])
        self.done_lines = reader.line_no
        self._report()
        return s

    def note(self, exc: BaseException, reader: LineReader) -> None:
        s = self.summary
        exc.add_note(
            f"ingest_jsonl stopped after line {reader.line_no}: {s.sent} sent, "
            f"{s.inserted} inserted, {len(s.rejected) + len(reader.rejected)} rejected so far"
        )
