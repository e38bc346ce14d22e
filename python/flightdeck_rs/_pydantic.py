"""pydantic interop of the event models (imported only when a pydantic feature is used).

pydantic mirrors of the six event classes (same names, fields, defaults and constraints as
``flightdeck.models``) give the features that must be pydantic's own to be identical: the
JSON schema, strict and ``from_attributes`` validation, serialization options, and the core
schema that makes our classes usable as field types, in ``TypeAdapter`` and in FastAPI.
Nothing here runs on the fast paths (construction, plain dumps, ingest).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from flightdeck_rs import _native


class RunEventRequest(BaseModel):
    session_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None


class RunEventMetrics(BaseModel):
    latency_ms: int | None = Field(default=None, ge=0)
    success: bool = True
    error_type: str | None = None


class RunEventModelUsage(BaseModel):
    provider: str
    model: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)


class RunEventToolUsage(BaseModel):
    tool_name: str
    invocations: int = Field(default=0, ge=0)
    cost_units: float = Field(default=0.0, ge=0)


class RunEventUsage(BaseModel):
    model: RunEventModelUsage
    tools: list[RunEventToolUsage] = Field(default_factory=list)


class RunEvent(BaseModel):
    api_version: Literal["v1"] = "v1"
    type: Literal["run_start", "run_end"] = "run_end"
    timestamp: datetime
    workspace_id: str = "ws_local"
    agent_id: str
    release_id: str
    run_id: str
    tenant_id: str
    task_id: str
    environment: str
    request: RunEventRequest | None = None
    metrics: RunEventMetrics = Field(default_factory=RunEventMetrics)
    usage: RunEventUsage
    labels: dict[str, str] = Field(default_factory=dict)


#: Our class -> its pydantic mirror, and back.
MIRROR: dict[type[Any], type[BaseModel]] = {
    _native.RunEvent: RunEvent,
    _native.RunEventRequest: RunEventRequest,
    _native.RunEventMetrics: RunEventMetrics,
    _native.RunEventUsage: RunEventUsage,
    _native.RunEventModelUsage: RunEventModelUsage,
    _native.RunEventToolUsage: RunEventToolUsage,
}
OURS: dict[type[BaseModel], type[Any]] = {v: k for k, v in MIRROR.items()}


#: Per class of ours: the fields that hold nested models (or lists of them).
_NESTED: dict[type[Any], tuple[str, ...]] = {
    _native.RunEvent: ("request", "metrics", "usage"),
    _native.RunEventUsage: ("model", "tools"),
}


def _construct(cls: type[BaseModel], values: dict[str, Any], fields_set: set[str]) -> BaseModel:
    # What ``model_construct`` does, without re-checking defaults: the values are complete
    # and valid (they come from one of our validated records).
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", fields_set)
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


def to_mirror(obj: Any, data: dict[str, Any] | None = None) -> BaseModel:
    """Our instance as its pydantic mirror, with the same values and ``model_fields_set``
    (for an instance holding unchecked values, the mirror instance it holds)."""
    raw = obj._raw
    if raw is not None:
        return raw  # type: ignore[no-any-return]
    if data is None:
        data = obj.model_dump()
    for name in _NESTED.get(type(obj), ()):
        value = data[name]
        if value is None:
            continue
        sub = getattr(obj, name)
        if type(value) is list:
            data[name] = [to_mirror(s, d) for s, d in zip(sub, value, strict=True)]
        else:
            data[name] = to_mirror(sub, value)
    return _construct(MIRROR[type(obj)], data, obj.model_fields_set)


def _set_values(m: BaseModel) -> dict[str, Any]:
    """The fields a mirror instance had set, nested models as dicts of theirs."""
    values = m.__dict__
    out: dict[str, Any] = {}
    for name in m.__pydantic_fields_set__:
        v = values[name]
        if isinstance(v, BaseModel):
            v = _set_values(v)
        elif type(v) is list:
            v = [_set_values(x) if isinstance(x, BaseModel) else x for x in v]
        out[name] = v
    return out


def from_mirror(cls: type[Any], m: BaseModel) -> Any:
    """A validated mirror instance as ours: only the set fields are passed, so ours records
    the same ``model_fields_set`` at every level and fills in the same defaults."""
    return cls.model_validate(_set_values(m))


def core_schema_for(cls: type[Any], handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    """``__get_pydantic_core_schema__`` of our classes.

    Validation and JSON schema are the mirror's (so the errors, the OpenAPI components and
    the strictness rules are pydantic's, with the reference's names); instances of ours pass
    through unchanged, as pydantic passes model instances; serialization dumps through the
    mirror, so every ``model_dump`` option of an enclosing model applies inside ours too.
    """
    mirror = MIRROR[cls]
    inner = handler(mirror)

    def validate(value: Any, nxt: core_schema.ValidatorFunctionWrapHandler) -> Any:
        if type(value) is cls:
            return value
        return from_mirror(cls, nxt(value))

    return core_schema.no_info_wrap_validator_function(
        validate,
        inner,
        serialization=core_schema.plain_serializer_function_ser_schema(_serialize, info_arg=True),
    )


def _serialize(value: Any, info: core_schema.SerializationInfo) -> Any:
    """Dumps one of ours inside an enclosing pydantic serialization, with its options."""
    if type(value) not in MIRROR:
        return value
    if (
        info.include is None
        and info.exclude is None
        and not (info.exclude_unset or info.exclude_defaults or info.exclude_none)
        and info.mode in ("python", "json")
    ):
        return value.model_dump(mode=info.mode)  # the native dump: the same values
    return to_mirror(value).model_dump(
        mode=info.mode,
        include=info.include,  # type: ignore[arg-type]
        exclude=info.exclude,  # type: ignore[arg-type]
        context=info.context,
        by_alias=info.by_alias,
        exclude_unset=info.exclude_unset,
        exclude_defaults=info.exclude_defaults,
        exclude_none=info.exclude_none,
        round_trip=info.round_trip,
        serialize_as_any=info.serialize_as_any,
    )
