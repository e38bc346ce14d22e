"""Event models: drop-in replacements for ``flightdeck.models``' run-event classes.

Built in Rust: keyword construction with nested dicts or instances, pydantic's lax
coercion rules and constraints, ``model_dump`` / ``model_dump_json`` /
``model_validate`` / ``model_validate_json``, equality, ``repr``, pickle and copy. The rest of
the pydantic-model API (serialization options, ``model_fields``, ``model_json_schema()``,
``model_construct()``, the v1 names, use as a field type in pydantic models, ``TypeAdapter``
and FastAPI) is added by ``flightdeck_rs._model_api``; pydantic stays optional and is
imported only when one of its features is used.
"""

from __future__ import annotations

from flightdeck_rs import _model_api
from flightdeck_rs._native import (
    RunEvent,
    RunEventMetrics,
    RunEventModelUsage,
    RunEventRequest,
    RunEventToolUsage,
    RunEventUsage,
)

TYPE_CHECKING = False  # not typing's: importing typing costs the package's start
if TYPE_CHECKING:
    from typing import Any

    from flightdeck_rs._errors import ValidationError

_model_api.install()

__all__ = [
    "RunEvent",
    "RunEventMetrics",
    "RunEventModelUsage",
    "RunEventRequest",
    "RunEventToolUsage",
    "RunEventUsage",
    "ValidationError",
]


def __getattr__(name: str) -> Any:
    # ``ValidationError`` is pydantic's when pydantic is installed (what invalid data raises,
    # so ``except ValidationError`` catches it), else ours: resolved on first use, so that
    # importing this module never imports pydantic.
    if name == "ValidationError":
        from flightdeck_rs._errors import public_validation_error

        return public_validation_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
