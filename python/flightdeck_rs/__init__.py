"""flightdeck-rs: a fast drop-in replacement for ``flightdeck.sdk`` with a Rust core.

Switch by changing two imports::

    from flightdeck_rs.sdk import FlightdeckClient, AsyncFlightdeckClient
    from flightdeck_rs.models import RunEvent
"""

from __future__ import annotations

from flightdeck_rs._errors import ValidationError
from flightdeck_rs._native import __version__
from flightdeck_rs.emitter import Emitter, get_emitter
from flightdeck_rs.models import RunEvent
from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient
from flightdeck_rs.tracking import Run, current_run

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
