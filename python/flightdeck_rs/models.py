"""Event models: drop-in replacements for ``flightdeck.models``' run-event classes.

Built in Rust: keyword construction with nested dicts or instances, pydantic's lax
coercion rules and constraints, ``model_dump`` / ``model_dump_json`` /
``model_validate`` / ``model_validate_json``, equality, ``repr``, pickle and copy.
"""

from __future__ import annotations

from flightdeck_rs._errors import ValidationError
from flightdeck_rs._native import (
    RunEvent,
    RunEventMetrics,
    RunEventModelUsage,
    RunEventRequest,
    RunEventToolUsage,
    RunEventUsage,
)

__all__ = [
    "RunEvent",
    "RunEventMetrics",
    "RunEventModelUsage",
    "RunEventRequest",
    "RunEventToolUsage",
    "RunEventUsage",
    "ValidationError",
]
