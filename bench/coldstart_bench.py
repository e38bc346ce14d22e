"""Cold-start row of ``bench/run.py``: wall time of a fresh interpreter that imports the SDK.

Each sample is one new process, ``python -c "<imports>"``, timed from spawn to exit:

- reference: ``import flightdeck.sdk, flightdeck.models``;
- ours: ``import flightdeck_rs.sdk, flightdeck_rs.models``;
- limit: a bare interpreter, ``python -c pass`` (the floor every start pays).

The three alternate (order rotated every round) and the row is the median of the rounds. One
untimed round first warms the page cache and writes any missing ``.pyc`` files
(``PYTHONDONTWRITEBYTECODE`` is dropped for these children), as ``pip install`` leaves them.
The children run in an empty temporary directory with this interpreter and environment, so
``PYTHONPATH`` (if set) decides which ``flightdeck_rs`` is measured.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

IMPLS = ("reference", "ours", "limit")
CODE = {
    "reference": "import flightdeck.sdk, flightdeck.models",
    "ours": "import flightdeck_rs.sdk, flightdeck_rs.models",
    "limit": "pass",
}
FULL_ROUNDS = 21
QUICK_ROUNDS = 3

ROWS = (("coldstart", "cold start: import sdk + models"),)

TARGETS: list[tuple[str, str, Callable[[Any, dict[str, Any]], bool]]] = [
    ("coldstart", "≤ 2× a bare interpreter start", lambda r, _w: r.ours <= 2 * r.limit),
    (
        "coldstart",
        "moonshot: ≤ 1.5× a bare interpreter start",
        lambda r, _w: r.ours <= 1.5 * r.limit,
    ),
]

_COUNT = "; import sys; print(len(sys.modules))"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(quick: bool, checks: Any) -> dict[str, Any]:
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    env = _env()
    samples: dict[str, list[float]] = {n: [] for n in IMPLS}
    modules: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="fdrs-coldstart-") as cwd:
        # Untimed: warms caches, writes .pyc files, and counts the modules each start loads.
        for name in IMPLS:
            r = subprocess.run(
                [sys.executable, "-c", CODE[name] + _COUNT],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            checks.expect("cold start: the imports succeed", name, r.returncode, 0)
            if r.returncode != 0:
                print(f"  cold start {name}: {r.stderr.strip()[-500:]}", file=sys.stderr)
            modules[name] = int(r.stdout.strip() or 0)
        for i in range(rounds):
            k = i % len(IMPLS)
            for name in IMPLS[k:] + IMPLS[:k]:
                argv = [sys.executable, "-c", CODE[name]]
                t0 = time.perf_counter()
                rc = subprocess.call(
                    argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                samples[name].append((time.perf_counter() - t0) * 1e3)
                if rc != 0:
                    checks.expect("cold start: the imports succeed", name, rc, 0)
    med = {n: statistics.median(v) for n, v in samples.items()}
    print(
        "  "
        + ", ".join(f"{n} {med[n]:.1f} ms ({modules[n]} modules)" for n in IMPLS)
        + f"; median of {rounds}",
        flush=True,
    )
    return {
        "unit": "ms",
        "better": "lower",
        "samples": samples,
        "modules_loaded": modules,
        "code": CODE,
        "rounds": rounds,
        "limit_is": "a bare interpreter start (python -c pass)",
    }


def note(w: dict[str, Any], key: str) -> str:
    m = w[key]["modules_loaded"]
    return (
        "limit = bare `python -c pass`; modules loaded: "
        + ", ".join(f"{n} {m[n]}" for n in IMPLS)
    )


def report_lines(w: dict[str, Any]) -> list[str]:
    d = w.get("coldstart")
    if d is None:
        return []
    return [
        f"- cold start: wall time of a fresh `python -c` process (spawn to exit), median of "
        f"{d['rounds']} rotated rounds after an untimed one; ours "
        f"`{d['code']['ours']}`, reference `{d['code']['reference']}`, limit a bare "
        f"interpreter (`{d['code']['limit']}`)",
    ]
