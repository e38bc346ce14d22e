"""The pydantic-model API of the event classes beyond the native fast paths.

The native classes build, validate and dump events themselves (``RunEvent(**kw)``,
``model_dump()``, ``model_dump_json()``, ``model_validate(dict)``, ingest). Calls with
pydantic's other options come here: serialization options, strict and attribute validation,
``model_json_schema()``, introspection, the pydantic v1 names and the Python protocol. This
module never imports pydantic itself; the features that need it load
``flightdeck_rs._pydantic`` on first use.
"""

from __future__ import annotations

import datetime as _dt
import warnings

from flightdeck_rs import _native
from flightdeck_rs._errors import pydantic_core_or_none
from flightdeck_rs._lazy import lazy_module

# Imported with ``flightdeck_rs.models``: ``typing``, ``collections.abc`` and ``json`` are
# loaded when first needed, not at import (cold start, ``tests/test_import_cost.py``).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import json
    from collections.abc import Callable, Iterator
    from typing import Any
else:
    json = lazy_module("json", globals())

if TYPE_CHECKING:
    _StrDict = dict[str, Any]
    _TableDict = dict[type[Any], list[tuple[str, Any, Any, str]]]
else:
    _StrDict = _TableDict = dict

# ------------------------------------------------------------------------------ field table

if TYPE_CHECKING:
    import inspect


class _Required:
    """A required field (no default); ``inspect.Parameter.empty`` in signatures."""

    def __repr__(self) -> str:
        return "PydanticUndefined"


REQUIRED: Any = _Required()


class _Factory(_StrDict):
    """A default made by a factory (shown as ``<factory>``, as pydantic shows it).

    An (always empty) mapping, so that it also fits the stubs' parameter types.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        super().__init__()
        self.make = make

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)

    def __repr__(self) -> str:
        return "<factory>"


_R = _native.RunEvent
_REQ = _native.RunEventRequest
_MET = _native.RunEventMetrics
_USG = _native.RunEventUsage
_MU = _native.RunEventModelUsage
_TU = _native.RunEventToolUsage


def _build_fields() -> dict[type[Any], list[tuple[str, Any, Any, str]]]:
    from typing import Literal

    return {
        _REQ: [
            ("session_id", str | None, None, "Session the run belongs to."),
            ("trace_id", str | None, None, "Distributed-tracing trace id."),
            ("span_id", str | None, None, "Distributed-tracing span id."),
        ],
        _MET: [
            ("latency_ms", int | None, None, "Wall-clock latency of the run in ms (>= 0)."),
            ("success", bool, True, "Whether the run succeeded."),
            ("error_type", str | None, None, "Error class of a failed run."),
        ],
        _MU: [
            ("provider", str, REQUIRED, "Model provider, e.g. 'openai'."),
            ("model", str, REQUIRED, "Model name, priced by the server's pricing table."),
            ("input_tokens", int, REQUIRED, "Prompt tokens (>= 0)."),
            ("output_tokens", int, REQUIRED, "Completion tokens (>= 0)."),
            ("cached_input_tokens", int, 0, "Prompt tokens served from cache (>= 0)."),
        ],
        _TU: [
            ("tool_name", str, REQUIRED, "Name of the tool."),
            ("invocations", int, 0, "How many times the run called it (>= 0)."),
            ("cost_units", float, 0.0, "Cost units the calls used (>= 0)."),
        ],
        _USG: [
            ("model", _MU, REQUIRED, "Model usage: provider, model and token counts."),
            ("tools", list[_TU], _Factory(list), "Tools the run used."),
        ],
        _R: [
            ("api_version", Literal["v1"], "v1", "Event schema version; only 'v1'."),
            ("type", Literal["run_start", "run_end"], "run_end", "Event type."),
            ("timestamp", _dt.datetime, REQUIRED, "When the run happened (send aware UTC)."),
            ("workspace_id", str, "ws_local", "Workspace of the run."),
            ("agent_id", str, REQUIRED, "Agent that ran."),
            ("release_id", str, REQUIRED, "Release of the agent that ran."),
            ("run_id", str, REQUIRED, "Unique id of the run (the server skips duplicates)."),
            ("tenant_id", str, REQUIRED, "Tenant the run served."),
            ("task_id", str, REQUIRED, "Task the run performed."),
            ("environment", str, REQUIRED, "Environment, e.g. 'production'."),
            ("request", _REQ | None, None, "Correlation ids (session, trace, span)."),
            ("metrics", _MET, _Factory(_MET), "Latency, success and error type."),
            ("usage", _USG, REQUIRED, "Model and tool usage."),
            ("labels", dict[str, str], _Factory(dict), "Free-form string labels."),
        ],
    }


class _FieldTable(_TableDict):
    """The field table, built on first use (its annotations need ``typing``)."""

    def _fill(self) -> None:
        if not dict.__len__(self):
            self.update(_build_fields())

    def __contains__(self, key: object) -> bool:
        self._fill()
        return dict.__contains__(self, key)

    def __getitem__(self, key: type[Any]) -> list[tuple[str, Any, Any, str]]:
        self._fill()
        return dict.__getitem__(self, key)

    def __iter__(self) -> Iterator[type[Any]]:
        self._fill()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._fill()
        return dict.__len__(self)


#: Per class: (name, annotation, default, description of the field) in declaration order.
FIELDS = _FieldTable()

CLASSES = (_REQ, _MET, _MU, _TU, _USG, _R)

_SUMMARY = {
    _R: "One agent run: the record ``POST /v1/events`` accepts (``flightdeck.models.RunEvent``).",
    _REQ: "Correlation ids of a run (``flightdeck.models.RunEventRequest``).",
    _MET: "Latency, success and error type of a run (``flightdeck.models.RunEventMetrics``).",
    _USG: "Model and tool usage of a run (``flightdeck.models.RunEventUsage``).",
    _MU: "Provider, model and token counts of a run (``flightdeck.models.RunEventModelUsage``).",
    _TU: "One tool's invocations and cost units (``flightdeck.models.RunEventToolUsage``).",
}


def _type_name(t: Any) -> str:
    if isinstance(t, type) and not getattr(t, "__args__", None):
        return t.__qualname__
    return repr(t).replace("typing.", "").replace("flightdeck_rs.models.", "")


def _doc(cls: type[Any]) -> str:
    lines = [_SUMMARY[cls], "", "Fields (keyword arguments of the constructor):", ""]
    for name, ann, default, text in FIELDS[cls]:
        if default is REQUIRED:
            tail = "required"
        elif isinstance(default, _Factory):
            tail = "default: empty" if default.make in (list, dict) else "default: all defaults"
        else:
            tail = f"default: {default!r}"
        lines.append(f"    {name} ({_type_name(ann)}, {tail}): {text}")
    lines += [
        "",
        "Validated as pydantic validates the reference model (the same lax coercions, "
        "constraints and errors); attribute assignment is validated too.",
    ]
    return "\n".join(lines)


_SIGNATURES: dict[type[Any], inspect.Signature] = {}

#: Fields constrained to ``>= 0`` (pydantic shows them as ``Annotated[int, Ge(ge=0)]``).
_GE0 = {
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "invocations",
    "cost_units",
}


class _Ge:
    """``annotated_types.Ge(ge=0)`` when that package (pydantic's) is not installed."""

    def __init__(self, ge: int) -> None:
        self.ge = ge

    def __repr__(self) -> str:
        return f"Ge(ge={self.ge})"


def _ge0() -> Any:
    try:
        from annotated_types import Ge
    except ImportError:
        return _Ge(0)
    return Ge(0)


def _signature(cls: type[Any]) -> inspect.Signature:
    """The constructor's signature as pydantic's: keyword-only fields with annotations and
    defaults (built on first use: ``inspect`` is not imported by ``flightdeck_rs``)."""
    sig = _SIGNATURES.get(cls)
    if sig is None:
        import inspect
        from typing import Annotated

        empty = inspect.Parameter.empty
        params = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=empty if default is REQUIRED else default,
                annotation=Annotated[ann, _ge0()] if name in _GE0 else ann,
            )
            for name, ann, default, _ in FIELDS[cls]
        ]
        sig = _SIGNATURES[cls] = inspect.Signature(params, return_annotation=None)
    return sig


# ------------------------------------------------------------------------------ helpers


_MIRROR_MODULE: Any = None


def _mirror() -> Any:
    """``flightdeck_rs._pydantic`` (imports pydantic), or an ImportError that says why."""
    global _MIRROR_MODULE
    if _MIRROR_MODULE is None:
        try:
            from flightdeck_rs import _pydantic
        except ImportError as exc:  # pragma: no cover - exercised without pydantic
            raise ImportError(
                "this feature of the event models needs pydantic (pip install pydantic)"
            ) from exc
        _MIRROR_MODULE = _pydantic
    return _MIRROR_MODULE


def _has_pydantic() -> bool:
    return _MIRROR_MODULE is not None or pydantic_core_or_none() is not None


def reduce(obj: Any) -> tuple[Any, ...]:
    """Pickle support: the values and which fields were set, at every level."""
    raw = obj._raw
    if raw is not None:
        return (_restore_raw, (type(obj), raw))
    return (_restore, (type(obj), obj.model_dump(), _fields_set_tree(obj)))


def _restore_raw(cls: type[Any], raw: Any) -> Any:
    return cls._from_raw(raw)


def _fields_set_tree(obj: Any) -> tuple[set[str], dict[str, Any]]:
    nested: dict[str, Any] = {}
    for name, value in _iter(obj):
        if type(value) in FIELDS:
            nested[name] = _fields_set_tree(value)
        elif type(value) is list and value and type(value[0]) in FIELDS:
            nested[name] = [_fields_set_tree(v) for v in value]
    return set(obj.model_fields_set), nested


def _apply_fields_set_tree(obj: Any, tree: tuple[set[str], dict[str, Any]]) -> None:
    own, nested = tree
    obj._replace_fields_set(own)
    for name, sub in nested.items():
        value = getattr(obj, name)
        if isinstance(sub, list):
            for v, s in zip(value, sub, strict=True):
                _apply_fields_set_tree(v, s)
        else:
            _apply_fields_set_tree(value, sub)


def _restore(cls: type[Any], data: dict[str, Any], tree: Any) -> Any:
    obj = cls.model_validate(data)
    _apply_fields_set_tree(obj, tree)
    return obj


def _iter(obj: Any) -> Iterator[tuple[str, Any]]:
    """``(name, value)`` for each field, as pydantic iterates a model (``dict(event)``)."""
    raw = obj._raw
    if raw is not None:
        # Only the fields it holds (a required one not given is absent), as pydantic.
        for name, value in raw:
            yield name, _from_mirror_value(value)
        return
    for name, _, _, _ in FIELDS[type(obj)]:
        yield name, getattr(obj, name)


# ------------------------------------------------------------------------------ dumping


def model_dump(obj: Any, mode: str | None = "python", **opts: Any) -> dict[str, Any]:
    """``model_dump`` with the options the native dump does not answer itself (it answers
    ``exclude_none``, ``include`` / ``exclude`` as sets of top-level names, and the options
    that change nothing for these models), dumped by the pydantic mirror (exact)."""
    if _has_pydantic():
        mirror = _mirror()
        result: dict[str, Any] = mirror.to_mirror(obj).model_dump(mode=mode, **opts)
        return result
    from flightdeck_rs import _dump_fallback

    return _dump_fallback.dump(obj, mode, opts, FIELDS, _Factory)


def model_dump_json(obj: Any, **opts: Any) -> str:
    """``model_dump_json`` with the options the native dump does not answer itself (it
    answers ``indent`` and the same options as ``model_dump``), by the pydantic mirror."""
    if _has_pydantic():
        mirror = _mirror()
        text: str = mirror.to_mirror(obj).model_dump_json(**opts)
        return text
    from flightdeck_rs import _dump_fallback

    return _dump_fallback.dump_json(obj, opts, FIELDS, _Factory)


# ------------------------------------------------------------------------------ validation


def _validate_with_mirror(cls: type[Any], how: str, obj: Any, **opts: Any) -> Any:
    mirror = _mirror()
    m = getattr(mirror.MIRROR[cls], how)(obj, **opts)
    return mirror.from_mirror(cls, m)


def model_validate(
    cls: type[Any],
    /,
    obj: Any,
    *,
    strict: bool | None = None,
    extra: Any = None,
    from_attributes: bool | None = None,
    context: Any = None,
    by_alias: bool | None = None,
    by_name: bool | None = None,
) -> Any:
    """``model_validate`` with pydantic's options.

    ``strict=True`` and ``from_attributes=True`` validate as pydantic does (through the
    mirror); the others do not change how these models validate.
    """
    if type(obj) is cls:
        return obj
    if strict or from_attributes or extra is not None:
        if not _has_pydantic() and not strict and extra is None:
            return cls.model_validate(_attributes(cls, obj))
        return _validate_with_mirror(
            cls,
            "model_validate",
            obj,
            strict=strict,
            extra=extra,
            from_attributes=from_attributes,
            context=context,
            by_alias=by_alias,
            by_name=by_name,
        )
    return cls.model_validate(obj)


def _attributes(cls: type[Any], obj: Any) -> Any:
    """An object's fields as a dict (``from_attributes`` without pydantic)."""
    if isinstance(obj, dict) or type(obj) in FIELDS:
        return obj
    out: dict[str, Any] = {}
    for name, ann, _, _ in FIELDS[cls]:
        if not hasattr(obj, name):
            continue
        value = getattr(obj, name)
        sub = ann if ann in FIELDS else None
        if sub is None and getattr(ann, "__args__", None):
            sub = next((a for a in ann.__args__ if a in FIELDS), None)
        if sub is not None and value is not None:
            if isinstance(value, list | tuple):
                value = [_attributes(sub, v) for v in value]
            else:
                value = _attributes(sub, value)
        out[name] = value
    return out


def model_validate_json(
    cls: type[Any],
    /,
    json_data: str | bytes | bytearray,
    *,
    strict: bool | None = None,
    extra: Any = None,
    context: Any = None,
    by_alias: bool | None = None,
    by_name: bool | None = None,
) -> Any:
    """``model_validate_json`` with pydantic's options."""
    if cls is _R and not strict and extra is None:
        return cls.model_validate_json(json_data)
    if _has_pydantic():
        return _validate_with_mirror(
            cls,
            "model_validate_json",
            json_data,
            strict=strict,
            extra=extra,
            context=context,
            by_alias=by_alias,
            by_name=by_name,
        )
    return cls.model_validate(json.loads(json_data))


def model_validate_strings(
    cls: type[Any],
    /,
    obj: Any,
    *,
    strict: bool | None = None,
    extra: Any = None,
    context: Any = None,
    by_alias: bool | None = None,
    by_name: bool | None = None,
) -> Any:
    """Validates a structure of strings (as from a query string or a form) as pydantic does."""
    return _validate_with_mirror(
        cls,
        "model_validate_strings",
        obj,
        strict=strict,
        extra=extra,
        context=context,
        by_alias=by_alias,
        by_name=by_name,
    )


def model_construct(cls: type[Any], /, _fields_set: set[str] | None = None, **values: Any) -> Any:
    """An instance from trusted values, not validated, as pydantic's ``model_construct``.

    Values the native record holds exactly as given (a ``str`` for a text field, an ``int``
    for a count, one of our instances for a nested model, ...) are stored natively. Any other
    value (a dict for a nested model, text for the timestamp, a wrong type) or a missing
    required field makes an instance that keeps the values as given in a pydantic-mirror
    instance, so reading, dumping, ``repr`` and ``==`` give what pydantic gives. Without
    pydantic installed, the values are validated instead.
    """
    names = {name for name, _, _, _ in FIELDS[cls]}
    given = {k: v for k, v in values.items() if k in names}
    if not _has_pydantic():
        obj = cls(**given)
    else:
        obj = _native_if_exact(lambda: cls(**given), given)
        if obj is None:
            mirror = _mirror().MIRROR[cls]
            given = {k: _to_mirror_value(v) for k, v in given.items()}
            return cls._from_raw(mirror.model_construct(_fields_set, **given))
    if _fields_set is not None:
        obj._replace_fields_set(_fields_set)
    return obj


def model_copy(obj: Any, update: dict[str, Any] | None, deep: bool) -> Any:
    """``model_copy`` with changes, or of an instance holding unchecked values: as
    pydantic's, the new values are not checked (see ``model_construct``)."""
    raw = obj._raw
    if raw is None:
        copy = _native_if_exact(lambda: obj._copy_checked(update), update or {})
        if copy is not None:
            return copy
        raw = _mirror().to_mirror(obj)
    if update:
        update = {k: _to_mirror_value(v) for k, v in update.items()}
    return type(obj)._from_raw(raw.model_copy(update=update, deep=deep))


def _native_if_exact(make: Callable[[], Any], given: dict[str, Any]) -> Any:
    """``make()`` when it succeeds and reads back every value of ``given`` as it was given
    (same type, equal); ``None`` otherwise."""
    try:
        obj = make()
    except (ValueError, AttributeError):
        return None
    for name, value in given.items():
        if not _same(getattr(obj, name), value):
            return None
    return obj


def _same(stored: Any, given: Any) -> bool:
    """Whether the native record gives back ``given`` unchanged."""
    t = type(given)
    if type(stored) is not t:
        return False
    if t is list:
        return len(stored) == len(given) and all(map(_same, stored, given))
    if t is dict:
        return list(stored) == list(given) and all(_same(stored[k], v) for k, v in given.items())
    if t is _dt.datetime:
        return bool(stored == given and stored.tzinfo == given.tzinfo)
    if t in FIELDS:
        return bool(stored == given) and stored.model_fields_set == given.model_fields_set
    return bool(stored == given)


def _to_mirror_value(value: Any) -> Any:
    """A value for a mirror instance: our instances as mirror instances (lists too)."""
    if type(value) in FIELDS:
        return _mirror().to_mirror(value)
    if type(value) is list:
        return [_to_mirror_value(v) for v in value]
    return value


def _from_mirror_value(value: Any) -> Any:
    """A value read from a mirror instance: mirror instances as ours (holding them)."""
    ours = _mirror().OURS.get(type(value))
    if ours is not None:
        return ours._from_raw(value)
    if type(value) is list and any(type(v) in _mirror().OURS for v in value):
        return [_from_mirror_value(v) for v in value]
    return value


# ----------------------------------------------------------- instances of unchecked values
# The native methods of an instance made by ``model_construct`` from values its record
# cannot hold call these with the instance and its pydantic-mirror instance.


def raw_values(raw: Any) -> dict[str, Any]:
    """The values, for validation (ingest, use inside a validated event)."""
    return raw.model_dump(warnings=False)  # type: ignore[no-any-return]


def raw_getattr(obj: Any, raw: Any, name: str) -> Any:
    return _from_mirror_value(getattr(raw, name))


def raw_setattr(obj: Any, raw: Any, name: str, value: Any) -> None:
    setattr(raw, name, _to_mirror_value(value))


def raw_dump(obj: Any, raw: Any, mode: Any, **opts: Any) -> Any:
    return raw.model_dump(mode=mode, **opts)


def raw_dump_json(obj: Any, raw: Any, **opts: Any) -> Any:
    return raw.model_dump_json(**opts)


def raw_eq(obj: Any, raw: Any, other: Any) -> Any:
    if type(other) is not type(obj):
        return NotImplemented
    a, b = obj._raw, other._raw
    to_mirror = _mirror().to_mirror
    return (a if a is not None else to_mirror(obj)) == (b if b is not None else to_mirror(other))


def raw_copy(obj: Any, raw: Any) -> Any:
    import copy

    return type(obj)._from_raw(copy.copy(raw))


def raw_deepcopy(obj: Any, raw: Any, memo: Any) -> Any:
    import copy

    return type(obj)._from_raw(copy.deepcopy(raw, memo))


# ------------------------------------------------------------------------------ schema


def model_json_schema(
    cls: type[Any],
    /,
    by_alias: bool = True,
    ref_template: str = "#/$defs/{model}",
    schema_generator: Any = None,
    mode: str = "validation",
    **kw: Any,
) -> dict[str, Any]:
    """The JSON schema, equal to the reference model's."""
    mirror = _mirror()
    opts: dict[str, Any] = {"by_alias": by_alias, "ref_template": ref_template, "mode": mode}
    if schema_generator is not None:
        opts["schema_generator"] = schema_generator
    schema: dict[str, Any] = mirror.MIRROR[cls].model_json_schema(**opts, **kw)
    return schema


def get_pydantic_core_schema(cls: type[Any], source: Any, handler: Any) -> Any:
    return _mirror().core_schema_for(cls, handler)


# ------------------------------------------------------------------------------ field info


class FieldInfo:
    """What ``model_fields`` holds without pydantic installed (with it: pydantic's
    ``FieldInfo``): ``annotation``, ``default``, ``default_factory``, ``is_required()``."""

    def __init__(self, annotation: Any, default: Any, description: str | None = None) -> None:
        self.annotation = annotation
        self.default_factory = default.make if isinstance(default, _Factory) else None
        if default is REQUIRED or isinstance(default, _Factory):
            self.default: Any = _PydanticUndefined
        else:
            self.default = default
        self.description = description
        self.title: str | None = None

    def is_required(self) -> bool:
        return self.default is _PydanticUndefined and self.default_factory is None

    def __repr__(self) -> str:
        parts = [f"annotation={_type_name(self.annotation)}", f"required={self.is_required()}"]
        if self.default is not _PydanticUndefined:
            parts.append(f"default={self.default!r}")
        if self.default_factory is not None:
            parts.append(f"default_factory={getattr(self.default_factory, '__name__', '?')}")
        return f"FieldInfo({', '.join(parts)})"


class _Undefined:
    def __repr__(self) -> str:
        return "PydanticUndefined"


_PydanticUndefined: Any = _Undefined()

_FIELDS_CACHE: dict[type[Any], dict[str, Any]] = {}


def model_fields(cls: type[Any]) -> dict[str, Any]:
    """``{name: FieldInfo}`` in declaration order: pydantic's ``FieldInfo`` objects (those of
    the reference model, with annotations naming our classes) when pydantic is installed."""
    cached = _FIELDS_CACHE.get(cls)
    if cached is not None:
        return cached
    out: dict[str, Any] = {}
    if _has_pydantic():
        import copy

        mirror = _mirror()
        for (name, ann, default, _), (_, info) in zip(
            FIELDS[cls], mirror.MIRROR[cls].model_fields.items(), strict=True
        ):
            info = copy.copy(info)
            info.annotation = ann
            if isinstance(default, _Factory):
                info.default_factory = default.make
            out[name] = info
    else:
        for name, ann, default, _ in FIELDS[cls]:
            out[name] = FieldInfo(ann, default)
    _FIELDS_CACHE[cls] = out
    return out


class _ClassAttr:
    """An attribute computed from the class, readable on the class and its instances."""

    def __init__(self, get: Callable[[type[Any]], Any]) -> None:
        self.get = get

    def __get__(self, obj: Any, cls: type[Any] | None = None) -> Any:
        return self.get(cls if cls is not None else type(obj))


# ------------------------------------------------------------------------------ v1 names


def _deprecated(message: str) -> None:
    core = pydantic_core_or_none()
    category: Any = DeprecationWarning
    if core is not None:
        try:
            from pydantic.warnings import PydanticDeprecatedSince20
        except ImportError:  # pragma: no cover - pydantic_core without pydantic
            pass
        else:
            warnings.warn(PydanticDeprecatedSince20(message), stacklevel=3)
            return
    warnings.warn(message, category, stacklevel=3)


def _v1_dict(self: Any, **kw: Any) -> dict[str, Any]:
    """Deprecated pydantic v1 name of ``model_dump``."""
    _deprecated("The `dict` method is deprecated; use `model_dump` instead.")
    return model_dump(self, **kw) if kw else self.model_dump()  # type: ignore[no-any-return,unused-ignore]


def _v1_json(self: Any, **kw: Any) -> str:
    """Deprecated pydantic v1 name of ``model_dump_json``."""
    _deprecated("The `json` method is deprecated; use `model_dump_json` instead.")
    for unsupported in ("encoder", "models_as_dict"):
        if kw.pop(unsupported, None) is not None:
            raise TypeError(f"The `{unsupported}` argument is no longer supported.")
    dumps_kwargs = {k: kw.pop(k) for k in list(kw) if k not in _DUMP_OPTIONS}
    if dumps_kwargs:
        raise TypeError("`dumps_kwargs` keyword arguments are no longer supported.")
    return model_dump_json(self, **kw) if kw else self.model_dump_json()  # type: ignore[no-any-return,unused-ignore]


_DUMP_OPTIONS = {
    "include",
    "exclude",
    "by_alias",
    "exclude_unset",
    "exclude_defaults",
    "exclude_none",
}


def _v1_copy(
    self: Any,
    *,
    include: Any = None,
    exclude: Any = None,
    update: dict[str, Any] | None = None,
    deep: bool = False,
) -> Any:
    """Deprecated pydantic v1 name of ``model_copy``."""
    _deprecated(
        "The `copy` method is deprecated; use `model_copy` instead. See the docstring of "
        "`BaseModel.copy` for details about how to handle `include` and `exclude`."
    )
    if include is not None or exclude is not None:
        data = model_dump(self, include=include, exclude=exclude)
        data.update(update or {})
        return type(self).model_validate(data)
    return self.model_copy(update=update, deep=deep)


def _v1_parse_obj(cls: type[Any], /, obj: Any) -> Any:
    """Deprecated pydantic v1 name of ``model_validate``."""
    _deprecated("The `parse_obj` method is deprecated; use `model_validate` instead.")
    return cls.model_validate(obj)


def _v1_parse_raw(cls: type[Any], /, b: str | bytes, **kw: Any) -> Any:
    """Deprecated pydantic v1 name of ``model_validate_json``."""
    _deprecated(
        "The `parse_raw` method is deprecated; if your data is JSON use "
        "`model_validate_json`, otherwise load the data then use `model_validate` instead."
    )
    return model_validate_json(cls, b)


def _v1_schema(
    cls: type[Any], /, by_alias: bool = True, ref_template: str = "#/$defs/{model}"
) -> dict[str, Any]:
    """Deprecated pydantic v1 name of ``model_json_schema``."""
    _deprecated("The `schema` method is deprecated; use `model_json_schema` instead.")
    return model_json_schema(cls, by_alias=by_alias, ref_template=ref_template)


def _v1_schema_json(
    cls: type[Any],
    /,
    *,
    by_alias: bool = True,
    ref_template: str = "#/$defs/{model}",
    **dumps_kwargs: Any,
) -> str:
    """Deprecated pydantic v1 name of ``json.dumps(model_json_schema())``."""
    _deprecated(
        "The `schema_json` method is deprecated; use `model_json_schema` and json.dumps instead."
    )
    schema = model_json_schema(cls, by_alias=by_alias, ref_template=ref_template)
    return json.dumps(schema, **dumps_kwargs)


def _v1_construct(cls: type[Any], /, _fields_set: set[str] | None = None, **values: Any) -> Any:
    """Deprecated pydantic v1 name of ``model_construct``."""
    _deprecated("The `construct` method is deprecated; use `model_construct` instead.")
    return model_construct(cls, _fields_set=_fields_set, **values)


def _v1_validate(cls: type[Any], /, value: Any) -> Any:
    """Deprecated pydantic v1 name of ``model_validate``."""
    _deprecated("The `validate` method is deprecated; use `model_validate` instead.")
    return cls.model_validate(value)


# ------------------------------------------------------------------------------ protocol


def _str(self: Any) -> str:
    """``name=value`` pairs separated by spaces, as pydantic's ``str()``."""
    raw = self._raw
    if raw is not None:
        return str(raw)
    return " ".join(f"{name}={value!r}" for name, value in _iter(self))


# ------------------------------------------------------------------------------ install


def install() -> None:
    """Adds the Python-level API to the six native classes (once, at import)."""
    common: dict[str, Any] = {
        "__signature__": _ClassAttr(_signature),
        "__dataclass_fields__": _ClassAttr(_dataclass_fields),
        "__iter__": _iter,
        "__str__": _str,
        "model_fields": _ClassAttr(model_fields),
        "model_config": _ClassAttr(lambda c: {}),
        "model_computed_fields": _ClassAttr(lambda c: {}),
        "model_extra": property(lambda self: None, doc="Extra fields: always None."),
        "model_construct": classmethod(model_construct),
        "model_validate_strings": classmethod(model_validate_strings),
        "model_json_schema": classmethod(model_json_schema),
        "__get_pydantic_core_schema__": classmethod(get_pydantic_core_schema),
        "dict": _v1_dict,
        "json": _v1_json,
        "copy": _v1_copy,
        "parse_obj": classmethod(_v1_parse_obj),
        "parse_raw": classmethod(_v1_parse_raw),
        "schema": classmethod(_v1_schema),
        "schema_json": classmethod(_v1_schema_json),
        "construct": classmethod(_v1_construct),
        "validate": classmethod(_v1_validate),
    }
    for cls in CLASSES:
        # Written on first read (the type's ``__doc__`` getter honours descriptors): the
        # field table behind it needs ``typing``, which importing the models must not load.
        cls.__doc__ = _ClassAttr(_doc)  # type: ignore[assignment]
        for name, value in common.items():
            setattr(cls, name, _named(value, cls, name))


def _named(value: Any, cls: type[Any], name: str) -> Any:
    """A copy of a function (or classmethod) named as the method it becomes, so ``help()``
    and tracebacks show ``RunEvent.model_construct``, not the helper's name."""
    import types

    wrap = isinstance(value, classmethod)
    f = value.__func__ if wrap else value
    if not isinstance(f, types.FunctionType):
        return value
    g = types.FunctionType(f.__code__, f.__globals__, name, f.__defaults__, f.__closure__)
    g.__kwdefaults__ = f.__kwdefaults__
    g.__doc__ = f.__doc__
    g.__annotations__ = dict(f.__annotations__)
    g.__qualname__ = f"{cls.__name__}.{name}"
    g.__module__ = cls.__module__
    return classmethod(g) if wrap else g


_RECORD_FIELDS: dict[type[Any], dict[str, Any]] = {}


def _dataclass_fields(cls: type[Any]) -> dict[str, Any]:
    """The fields described the way ``dataclasses`` does (``__dataclass_fields__``).

    FastAPI reads a parameter as the request body only when its type is a pydantic model, a
    mapping, a sequence or a dataclass; this makes ``def create(event: RunEvent)`` take the
    event from the body, as with the reference model. ``dataclasses.fields()`` /
    ``asdict()`` and pydantic's serialization of unknown objects work on our models too.
    Built on first use (``dataclasses`` is then already imported by the caller).
    """
    fields = _RECORD_FIELDS.get(cls)
    if fields is None:
        import dataclasses

        marker = getattr(dataclasses, "_FIELD", None)
        fields = {}
        for name, ann, _, _ in FIELDS[cls]:
            f = dataclasses.field()
            f.name = name
            f.type = ann
            if marker is not None:
                f._field_type = marker
            fields[name] = f
        _RECORD_FIELDS[cls] = fields
    return fields
