"""Drop-in replacement for ``flightdeck.sdk``: the same two clients, a Rust transport."""

from __future__ import annotations

from flightdeck_rs.sdk.client import AsyncFlightdeckClient, FlightdeckClient

__all__ = ["FlightdeckClient", "AsyncFlightdeckClient"]
