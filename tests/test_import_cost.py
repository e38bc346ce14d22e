"""Cold start: ``import flightdeck_rs.sdk, flightdeck_rs.models`` loads only what a client needs.

Guarded without timing: each check runs in a fresh interpreter and asserts which heavy modules
the import did not load (httpx, asyncio, json, logging, typing, the emitter, helpers, CLI, ...),
that every public name still resolves to the same object as before, and that the exception
types raised later are the real httpx / flightdeck_rs classes. ``make bench`` times it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

#: Modules ``import flightdeck_rs.sdk, flightdeck_rs.models`` must not load: each is imported
#: when a call first needs it (together they cost several times a bare interpreter start).
HEAVY = (
    "httpx",
    "httpcore",
    "anyio",
    "h11",
    "ssl",
    "socket",
    "asyncio",
    "concurrent.futures",
    "threading",
    "json",
    "re",
    "logging",
    "typing",
    "collections",
    "dataclasses",
    "enum",
    "inspect",
    "pydantic",
    "flightdeck",
    "flightdeck_rs.emitter",
    "flightdeck_rs.helpers",
    "flightdeck_rs.cli",
    "flightdeck_rs._server",
)

# Results come back as ``repr`` (read with ``ast.literal_eval``): the child must not import
# json itself.
_PRELUDE = """
import sys
_before = set(sys.modules)

def added():
    return sorted(set(sys.modules) - _before)

def loaded(heavy):
    return sorted(m for m in heavy if m in sys.modules and m not in _before)
"""


def run_fresh(code: str) -> Any:
    """Runs ``code`` (after ``_PRELUDE``) in a new interpreter; it prints one ``repr`` last."""
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return ast.literal_eval(r.stdout.strip().splitlines()[-1])


def test_the_environment_does_not_preload_the_heavy_modules() -> None:
    """Otherwise the checks below would pass whatever the package imports."""
    out = run_fresh(f"print(repr(sorted(m for m in {HEAVY!r} if m in _before)))")
    assert out == []


@pytest.mark.parametrize(
    "statement",
    [
        "import flightdeck_rs.sdk, flightdeck_rs.models",
        "import flightdeck_rs",
        "from flightdeck_rs.sdk import FlightdeckClient, AsyncFlightdeckClient; "
        "from flightdeck_rs.models import RunEvent",
        "from flightdeck_rs import FlightdeckClient, AsyncFlightdeckClient, RunEvent, "
        "__version__",
    ],
)
def test_importing_the_clients_and_models_loads_no_heavy_module(statement: str) -> None:
    out = run_fresh(
        f"""
        {statement}
        print(repr({{"heavy": loaded({HEAVY!r}), "added": added()}}))
        """
    )
    assert out["heavy"] == [], f"imported up front: {out['heavy']} (all new: {out['added']})"


def test_naming_validation_error_loads_only_pydantic_core() -> None:
    """``ValidationError`` is pydantic's own class when pydantic is installed (so that
    ``except flightdeck_rs.ValidationError`` catches what invalid data raises): naming it
    imports ``pydantic_core`` and what that needs, and still nothing of ours or of httpx."""
    out = run_fresh(
        f"""
        from flightdeck_rs import ValidationError, RunEvent
        import pydantic_core
        print(repr({{"heavy": loaded({HEAVY!r}),
                     "is_pydantic": ValidationError is pydantic_core.ValidationError}}))
        """
    )
    # What importing pydantic_core itself loads.
    allowed = {"typing", "re", "enum", "collections", "inspect", "dataclasses"}
    assert sorted(set(out["heavy"]) - allowed) == []
    assert out["is_pydantic"] is True


def test_creating_clients_and_events_loads_no_heavy_module() -> None:
    """Constructing both clients and a RunEvent (no request yet) stays light as well."""
    out = run_fresh(
        f"""
        from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient
        from flightdeck_rs.models import RunEvent

        sync = FlightdeckClient("http://127.0.0.1:9", timeout_s=1.0)
        asy = AsyncFlightdeckClient("http://127.0.0.1:9", timeout_s=1.0)
        repr(sync), repr(asy)
        sync.close()
        print(repr({{"heavy": loaded({HEAVY!r}), "added": added()}}))
        """
    )
    assert out["heavy"] == [], f"imported by construction: {out['heavy']}"


def test_emitter_and_helpers_load_only_when_asked_for() -> None:
    out = run_fresh(
        """
        import flightdeck_rs
        before = "flightdeck_rs.emitter" in sys.modules
        emitter_cls = flightdeck_rs.Emitter
        from flightdeck_rs import get_emitter
        from flightdeck_rs import helpers, cli
        import flightdeck_rs.emitter as em
        print(repr({
            "before": before,
            "same_cls": emitter_cls is em.Emitter,
            "same_fn": get_emitter is em.get_emitter,
            "helpers": helpers.__name__,
            "cli": cli.__name__,
        }))
        """
    )
    assert out == {
        "before": False,
        "same_cls": True,
        "same_fn": True,
        "helpers": "flightdeck_rs.helpers",
        "cli": "flightdeck_rs.cli",
    }


def test_every_public_name_resolves_to_the_defining_object() -> None:
    out = run_fresh(
        """
        import flightdeck_rs
        import flightdeck_rs.emitter, flightdeck_rs.models, flightdeck_rs.sdk
        import flightdeck_rs.tracking
        from flightdeck_rs._errors import public_validation_error
        VE = public_validation_error()  # pydantic's when pydantic is installed
        home = {
            "AsyncFlightdeckClient": flightdeck_rs.sdk,
            "FlightdeckClient": flightdeck_rs.sdk,
            "Emitter": flightdeck_rs.emitter,
            "get_emitter": flightdeck_rs.emitter,
            "Run": flightdeck_rs.tracking,
            "current_run": flightdeck_rs.tracking,
            "RunEvent": flightdeck_rs.models,
            "ValidationError": flightdeck_rs.models,
            "__version__": flightdeck_rs._native,
        }
        ns = {}
        exec("from flightdeck_rs import *", ns)
        same = {n: getattr(flightdeck_rs, n) is getattr(m, n) for n, m in home.items()}
        star = sorted(n for n in ns if not n.startswith("__") or n == "__version__")
        missing = None
        try:
            flightdeck_rs.NoSuchName
        except AttributeError as e:
            missing = str(e)
        print(repr({
            "all": sorted(flightdeck_rs.__all__),
            "same": same,
            "star": star,
            "in_dir": sorted(set(flightdeck_rs.__all__) - set(dir(flightdeck_rs))),
            "missing": missing,
            "ve": [flightdeck_rs.ValidationError is VE, issubclass(VE, ValueError)],
        }))
        """
    )
    names = sorted(
        [
            "AsyncFlightdeckClient",
            "Emitter",
            "FlightdeckClient",
            "Run",
            "RunEvent",
            "ValidationError",
            "__version__",
            "current_run",
            "get_emitter",
        ]
    )
    assert out["all"] == names
    assert out["star"] == names
    assert out["same"] == dict.fromkeys(names, True)
    assert out["in_dir"] == []
    assert out["missing"] == "module 'flightdeck_rs' has no attribute 'NoSuchName'"
    assert out["ve"] == [True, True]


def test_errors_are_the_real_classes_after_a_lazy_import() -> None:
    """A refused connection raises the real ``httpx.ConnectError`` (sync and async), and an
    invalid event the package's ``ValidationError``, although nothing imported httpx first."""
    out = run_fresh(
        """
        import socket as _s
        sock = _s.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now

        from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient
        from flightdeck_rs.models import RunEvent, ValidationError
        from flightdeck_rs.sdk import _core as client_mod  # where the lazy placeholders live
        url = f"http://127.0.0.1:{port}"
        res = {"before": "httpx" in sys.modules}
        try:
            FlightdeckClient(url, timeout_s=2.0).health()
        except Exception as e:
            import httpx
            res["sync"] = [type(e).__name__, isinstance(e, httpx.ConnectError),
                           isinstance(e, httpx.RequestError)]

        async def main():
            try:
                await AsyncFlightdeckClient(url, timeout_s=2.0).health()
            except Exception as e:
                import httpx
                return [type(e).__name__, isinstance(e, httpx.ConnectError)]

        import asyncio
        res["async"] = asyncio.run(main())
        try:
            RunEvent(run_id=1)
        except Exception as e:
            res["validation"] = [type(e) is ValidationError, isinstance(e, ValueError)]
        # The placeholders gave way to the real modules once used.
        client_mod.httpx.RequestError, client_mod.json.loads
        res["bound"] = [client_mod.httpx is sys.modules["httpx"],
                        client_mod.json is sys.modules["json"]]
        from flightdeck_rs import _logging
        res["logger"] = _logging.logger.name
        print(repr(res))
        """
    )
    assert out == {
        "before": False,
        "sync": ["ConnectError", True, True],
        "async": ["ConnectError", True],
        "validation": [True, True],
        "bound": [True, True],
        "logger": "flightdeck_rs.client",
    }


def test_slow_request_default_matches_helpers() -> None:
    """Clients read the slow-call threshold without importing helpers until it is imported."""
    from flightdeck_rs import _logging, helpers

    assert helpers.SLOW_REQUEST_S == _logging.DEFAULT_SLOW_REQUEST_S
    assert _logging.slow_request_s() == helpers.SLOW_REQUEST_S
