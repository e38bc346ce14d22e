"""Timestamp parsing against pydantic: src/core/event/timestamp.rs (speedate 0.18), the
hand-written parser it replaced, and speedate 0.17 (pinned by pydantic-core 2.41).

Builds a corpus (hand-picked edge cases, the fuzz seeds, a seeded random sample of the
property tests' timestamp grammar, numbers), asks pydantic for each value what a
``datetime`` field makes of it (the value in pydantic's JSON form, or the error's reason),
and compares that with each Rust parser through ``bench/timestamp-eval`` (built here with
cargo, release profile). Prints the mismatches and a summary; ``--bench`` also prints the
Rust parse-speed figures. Exits non-zero when timestamp.rs disagrees with pydantic.

    python bench/timestamp_eval.py [--random N] [--bench]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pydantic
import pydantic_core
from pydantic import TypeAdapter, ValidationError

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "bench" / "timestamp-eval"
ADAPTER: TypeAdapter[datetime] = TypeAdapter(datetime)

# fmt: off
HAND_PICKED: list[Any] = [
    # ISO forms and separators
    "2026-05-01T12:34:56Z", "2026-05-01t12:34:56z", "2026-05-01 12:34:56", "2026-05-01_12:34:56",
    "2026-05-01T12:34", "2026-05-01T12", "2026-05-01T", "2026-05-01", "2026-5-1", "20260501",
    "20260501T123456Z", "2026-05-01T123456", "2026-05-01T12:34:56Zjunk", "2026-05-01x12:34",
    # offsets
    "2026-05-01T12:34:56+02:00", "2026-05-01T12:34:56+0200", "2026-05-01T12:34:56+02",
    "2026-05-01T12:34:56-00:00", "2026-05-01T12:34:56+23:59", "2026-05-01T12:34:56+24:00",
    "2026-05-01T12:34:56+05:60", "2026-05-01T12:34:56+05:30:15", "2026-05-01T12:34:56\u221205:00",
    "2026-05-01T12:34:56 +02:00", "2026-05-01T12:34+02:00", "2026-05-01T12:34:56UTC",
    "2026-05-01T12:34:56+2:00", "2026-05-01T12:34:56-23:59", "2026-05-01T12:34:56+",
    # fractions
    "2026-05-01T12:34:56.", "2026-05-01T12:34:56.1", "2026-05-01T12:34:56,5",
    "2026-05-01T12:34:56.123456", "2026-05-01T12:34:56.1234567", "2026-05-01T12:34:56.9999999",
    "2026-05-01T12:34:56.123456789123Z", "2026-05-01T12:34:56.000000000001+01:00",
    "2026-05-01T12:34.5", "2026-05-01T12:34:56.12a",
    # leap seconds and ranges
    "2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5Z", "2016-12-31T23:59:61Z",
    "2026-05-01T24:00:00", "2026-05-01T23:60:00", "2026-13-01", "2026-00-01", "2026-02-29",
    "2024-02-29", "2026-04-31", "2026-05-00", "0000-01-01", "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59-23:59", "10000-01-01", "-2026-05-01",
    # whitespace and oddities
    " 2026-05-01T12:34:56Z", "2026-05-01T12:34:56Z ", "2026-05-01 ", "\t2026-05-01", "",
    " ", "x", "2026", "2026-05", "now", "2026-05-01T12:34:56Z\n", "２０２６-05-01",
    # unix times as text
    "0", "1", "-1", "1700000000", "1700000000.5", "1700000000.1234567", "+1700000000",
    "1.5e3", "1e3", "+.5e1", "-.5", ".5", "1.", "00000000000000000001", "99999999999999999999",
    "9999999999998", "20000000000", "20000000001", "-20000000001", "253402300799999",
    "253402300800000", "-62135596800000", "-62167219200000", "-62167219200001", "1700000000 ",
    " 1700000000", "1_700_000_000", "0x10", "inf", "nan", "1700000000Z", "86400", "-0",
    "1.7e9", "1.7E+09", "123.456e-2", "1e400",
    # numbers (not text)
    0, 1, -1, 1_700_000_000, 1_700_000_000.5, 1.0000005, -1.0000005, 2e10, 2e10 + 0.5,
    -2e10, -2e10 - 0.5, 20_000_000_001, 9_999_999_999_998.25, 253_402_300_799_999,
    253_402_300_800_000, -62_135_596_800_000, -62_167_219_200_000, -62_167_219_200_001,
    -11_676_096_000, 1e19, -1e19, 1.5e300, 20_000_000_000.3125,
]
# fmt: on

YEARS = ["0000", "0001", "0002", "1969", "1970", "2016", "2024", "2026", "9998", "9999"]


def random_text(r: random.Random) -> str:
    """The property tests' timestamp grammar (tests/test_properties.py) from a seeded RNG."""

    def two() -> str:
        return f"{r.randrange(100):02d}"

    def pick(edges: list[str]) -> str:
        return r.choice(edges) if r.random() < 0.6 else two()

    year = r.choice(YEARS) if r.random() < 0.5 else f"{r.randrange(10000):04d}"
    text = f"{year}-{pick(['01', '02', '12', '00', '13'])}-"
    text += pick(["01", "28", "29", "30", "31", "00", "32"])
    if r.randrange(10) == 0:
        return text
    text += r.choice(["T", "T", "t", " ", "_", "x"])
    text += pick(["00", "23", "24"]) + ":" + pick(["00", "59", "60"])
    if r.random() < 0.5:
        text += ":" + pick(["00", "59", "60", "61"])
        if r.random() < 0.5:
            text += r.choice(".,") + "".join(r.choice("0123456789") for _ in range(r.randrange(13)))
    if r.random() < 0.5:
        text += r.choice(["", "Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00"])
    else:
        text += f"{r.choice('+-')}{r.randrange(26):02d}{r.choice([':', ''])}{r.randrange(62):02d}"
    return text


def random_number_text(r: random.Random) -> str:
    sign = r.choice(["", "", "+", "-"])
    digits = "".join(r.choice("0123456789") for _ in range(r.randint(1, 19)))
    if r.random() < 0.5:
        digits += "." + "".join(r.choice("0123456789") for _ in range(r.randrange(7)))
    return sign + digits


def fuzz_seeds() -> list[str]:
    seeds = ROOT / "fuzz" / "seeds" / "timestamp"
    return [p.read_text() for p in sorted(seeds.iterdir()) if p.is_file()]


def pydantic_says(value: Any) -> str:
    try:
        return json.loads(ADAPTER.dump_json(ADAPTER.validate_python(value)))  # type: ignore[no-any-return]
    except ValidationError as e:
        err = e.errors()[0]
        return f"ERR {(err.get('ctx') or {}).get('error', err['msg'])}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=4000, help="random corpus entries (seeded)")
    ap.add_argument("--bench", action="store_true", help="also print the parse-speed figures")
    args = ap.parse_args()

    r = random.Random(13)
    corpus: list[Any] = HAND_PICKED + fuzz_seeds()
    corpus += [random_text(r) for _ in range(args.random)]
    corpus += [random_number_text(r) for _ in range(args.random // 4)]
    corpus += [r.uniform(-1e13, 1e13) for _ in range(args.random // 8)]
    corpus += [r.randint(-(10**11), 10**14) for _ in range(args.random // 8)]

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=EVAL, check=True)
    binary = EVAL / "target" / "release" / "flightdeck-timestamp-eval"
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for v in corpus:
            f.write(json.dumps(v) + "\n")
    out = subprocess.run(
        [str(binary), "corpus", f.name], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    Path(f.name).unlink()

    agree = {"hand-written": 0, "timestamp.rs": 0, "speedate 0.17": 0}
    accept = dict.fromkeys(agree, 0)
    for value, line in zip(corpus, out, strict=True):
        row = json.loads(line)
        want = pydantic_says(value)
        for who in agree:
            if row[who] == want:
                agree[who] += 1
            else:
                print(f"{who:13} {value!r:45} got {row[who]!r}, pydantic {want!r}")
            if row[who].startswith("ERR") == want.startswith("ERR") and (
                want.startswith("ERR") or row[who] == want
            ):
                accept[who] += 1
    n = len(corpus)
    print(
        f"\n{n} inputs; the same value or the same error reason as pydantic "
        f"{pydantic.VERSION} (pydantic-core {pydantic_core.__version__}):"
    )
    for who in agree:
        print(f"  {who:13} {agree[who]:5} exact, {accept[who]:5} same value or rejection")
    if args.bench:
        print(
            subprocess.run(
                [str(binary), "bench"], check=True, capture_output=True, text=True
            ).stdout,
            end="",
        )
    return 0 if agree["timestamp.rs"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
