"""Timestamp inputs side by side with the reference RunEvent (pydantic), wording included.

``src/core/event/timestamp.rs`` parses with speedate, the parser pydantic-core calls (see
the comment at the top of that file and ``bench/timestamp_eval.py``, which compares
thousands of inputs). This pins the cases where a hand-written parser went wrong or could:
the error reason pydantic reports when a date-time fails (its date parser's, not the
date-time parser's), ISO 8601's U+2212 minus in an offset, leap seconds, fractions past six
digits, Unix times as text and as numbers (NaN, infinities, the millisecond watershed), year 0.
Each case must give the reference's value, or the reference's error type, message and reason.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from flightdeck.models import RunEvent as RefRunEvent

from flightdeck_rs.models import RunEvent

BASE: dict[str, Any] = {
    "agent_id": "agent",
    "release_id": "rel",
    "run_id": "run",
    "tenant_id": "tenant",
    "task_id": "task",
    "environment": "prod",
    "usage": {"model": {"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 1}},
}

CASES: list[Any] = [
    # accepted forms
    "2026-05-01T12:34:56Z",
    "2026-05-01t12:34:56z",
    "2026-05-01 12:34:56",
    "2026-05-01_12:34:56+0200",
    "2026-05-01T12:34",
    "2026-05-01",
    b"2026-05-01T12:34:56Z",
    "2026-05-01T12:34:56\u221205:00",
    "2026-05-01T12:34:56,5+23:59",
    "2026-05-01T12:34:56.9999999-00:00",
    "2026-05-01T12:34:56.123456789123Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59.999999-23:59",
    "1700000000",
    "1700000000.5",
    "-1",
    "1.5e3",
    "+.5e1",
    "1.",
    "20000000001",
    "9999999999998",
    # rejected: the date-time fails, the date parser's reason is reported
    "2026-05-01T24:00:00",
    "2026-05-01T23:60:00",
    "2016-12-31T23:59:60Z",
    "2026-05-01T12:34:56.",
    "2026-05-01T12:34:56+24:00",
    "2026-05-01T12:34:56+05:60",
    "2026-05-01T12:34:56+02",
    "2026-05-01T12:34:56+05:30:15",
    "2026-05-01T12",
    "2026-05-01T",
    "2026-05-01 ",
    " 2026-05-01T12:34:56Z",
    "2026-02-29",
    "2026-13-01",
    "2026-5-1",
    "20260501T123456Z",
    "0000-01-01",
    "",
    "x",
    "1e3",
    "1e400",
    "0x10",
    "99999999999999999999",
    "5045022524244243",
    "nan",
    # numbers
    0,
    1_700_000_000,
    1.0000005,
    -1.0000005,
    2e10,
    2e10 + 0.5,
    -2e10 - 0.5,
    253_402_300_799_999,
    253_402_300_800_000,
    -62_135_596_801_000,
    -62_167_219_200_001,
    2**63,
    math.nan,
    math.inf,
    -math.inf,
    8e30,
]


def outcome(cls: Any, value: Any) -> Any:
    try:
        return cls(**BASE, timestamp=value).model_dump(mode="json")["timestamp"]
    except ValueError as exc:
        errors = exc.errors()  # type: ignore[attr-defined]
        return [(e["type"], e["msg"], (e.get("ctx") or {}).get("error")) for e in errors]


@pytest.mark.parametrize("value", CASES, ids=repr)
def test_timestamp_like_the_reference(value: Any) -> None:
    assert outcome(RunEvent, value) == outcome(RefRunEvent, value)
