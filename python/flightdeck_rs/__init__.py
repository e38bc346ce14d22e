"""flightdeck-rs: a fast drop-in replacement for ``flightdeck.sdk`` with a Rust core.

Switch by changing two imports::

    from flightdeck_rs.sdk import FlightdeckClient, AsyncFlightdeckClient
    from flightdeck_rs.models import RunEvent
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flightdeck_rs._native import __version__
from flightdeck_rs.emitter import Emitter, get_emitter
from flightdeck_rs.models import RunEvent
from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

if TYPE_CHECKING:
    from flightdeck_rs._errors import ValidationError

__all__ = [
    "AsyncFlightdeckClient",
    "Emitter",
    "FlightdeckClient",
    "RunEvent",
    "ValidationError",
    "__version__",
    "get_emitter",
]


def __getattr__(name: str) -> Any:
    # pydantic's ValidationError when pydantic is installed (see flightdeck_rs.models).
    if name == "ValidationError":
        from flightdeck_rs._errors import public_validation_error

        return public_validation_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
