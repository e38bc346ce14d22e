"""flightdeck-rs: a fast drop-in replacement for ``flightdeck.sdk`` with a Rust core.

Switch by changing two imports::

    from flightdeck_rs.sdk import FlightdeckClient, AsyncFlightdeckClient
    from flightdeck_rs.models import RunEvent
"""

from __future__ import annotations

import sys

from flightdeck_rs._native import __version__

# The other public names are imported on first access (module ``__getattr__``), so that
# ``import flightdeck_rs.models`` does not load the clients and ``import flightdeck_rs.sdk``
# does not load the emitter.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from flightdeck_rs.emitter import Emitter, get_emitter
    from flightdeck_rs.models import RunEvent
    from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient
    from flightdeck_rs.tracking import Run, current_run

if TYPE_CHECKING:
    from flightdeck_rs._errors import ValidationError

__all__ = [
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

# public name -> the submodule defining it
_LAZY = {
    "AsyncFlightdeckClient": "flightdeck_rs.sdk",
    "FlightdeckClient": "flightdeck_rs.sdk",
    "Emitter": "flightdeck_rs.emitter",
    "get_emitter": "flightdeck_rs.emitter",
    "RunEvent": "flightdeck_rs.models",
    "Run": "flightdeck_rs.tracking",
    "current_run": "flightdeck_rs.tracking",
}


if not TYPE_CHECKING:  # hidden from type checkers, which see the imports above

    def __getattr__(name: str) -> object:
        if name == "ValidationError":
            # pydantic's when pydantic is installed (what invalid data raises), else ours;
            # see flightdeck_rs.models.
            from flightdeck_rs._errors import public_validation_error

            return public_validation_error()
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        __import__(module)
        value = getattr(sys.modules[module], name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))
