"""``model_dump`` / ``model_dump_json`` options without pydantic installed.

With pydantic installed the options are applied by pydantic itself (see ``_pydantic``); this
module gives the same results for the common options when it is not: ``include`` /
``exclude`` (sets and nested dicts, list indices and ``"__all__"``), ``exclude_unset``,
``exclude_defaults``, ``exclude_none``, ``indent`` and ``ensure_ascii``. The options that
cannot change these models' output (``by_alias``, ``round_trip``, ``warnings``, ``context``,
...) are accepted and ignored.
"""

from __future__ import annotations

import json
from typing import Any

_NO_EFFECT = {
    "by_alias",
    "round_trip",
    "warnings",
    "context",
    "fallback",
    "serialize_as_any",
    "exclude_computed_fields",
    "polymorphic_serialization",
}
_DUMP = {"include", "exclude", "exclude_unset", "exclude_defaults", "exclude_none"}


def _normalize(spec: Any) -> dict[Any, Any] | None:
    if spec is None:
        return None
    if isinstance(spec, dict):
        return spec
    return dict.fromkeys(spec, True)


def _whole(v: Any) -> bool:
    return v is True or v is Ellipsis


def _child(spec: dict[Any, Any] | None, key: Any, length: int | None = None) -> Any:
    """The part of a filter for ``key`` (``"__all__"`` and negative indices included)."""
    if spec is None:
        return None
    hit = spec.get(key)
    if hit is None and length is not None and isinstance(key, int):
        hit = spec.get(key - length)
    if hit is None:
        hit = spec.get("__all__")
    return hit


def _filter(
    value: Any, data: Any, include: Any, exclude: Any, flags: dict[str, Any], length: Any = None
) -> Any:
    # The models' field table and default-factory type, handed over by ``_model_api`` (which
    # imports this module, so this module does not import it back).
    FIELDS, _Factory = flags["fields"], flags["factory"]  # noqa: N806
    inc, exc = _normalize(include), _normalize(exclude)
    if type(value) in FIELDS:
        out: dict[str, Any] = {}
        fields_set = value.model_fields_set
        for name, _, default, _ in FIELDS[type(value)]:
            sub_inc, sub_exc = _child(inc, name), _child(exc, name)
            if inc is not None and sub_inc is None:
                continue
            if sub_exc is not None and _whole(sub_exc):
                continue
            v = getattr(value, name)
            if flags["exclude_unset"] and name not in fields_set:
                continue
            if flags["exclude_none"] and v is None:
                continue
            if flags["exclude_defaults"]:
                dv = default.make() if isinstance(default, _Factory) else default
                if v == dv and type(v) is type(dv):
                    continue
            out[name] = _filter(
                v,
                data[name],
                None if _whole(sub_inc) else sub_inc,
                sub_exc,
                flags,
            )
        return out
    if isinstance(value, list):
        items = []
        for i, (v, d) in enumerate(zip(value, data, strict=True)):
            sub_inc, sub_exc = _child(inc, i, len(value)), _child(exc, i, len(value))
            if inc is not None and sub_inc is None:
                continue
            if sub_exc is not None and _whole(sub_exc):
                continue
            items.append(_filter(v, d, None if _whole(sub_inc) else sub_inc, sub_exc, flags))
        return items
    if isinstance(value, dict):
        result = {}
        for k, v in data.items():
            sub_inc, sub_exc = _child(inc, k), _child(exc, k)
            if inc is not None and sub_inc is None:
                continue
            if sub_exc is not None and _whole(sub_exc):
                continue
            result[k] = v
        return result
    return data


def _split(opts: dict[str, Any], extra: set[str]) -> dict[str, Any]:
    for k in opts:
        if k not in _DUMP | _NO_EFFECT | extra:
            raise TypeError(f"model_dump() got an unexpected keyword argument '{k}'")
    return {k: opts[k] for k in _DUMP if k in opts}


def dump(
    obj: Any, mode: str | None, opts: dict[str, Any], fields: Any, factory: type
) -> dict[str, Any]:
    """``obj.model_dump(mode=mode, **opts)``; ``fields`` is the models' field table (type ->
    ``(name, _, default, _)`` rows) and ``factory`` the type of a default made by a call."""
    o = _split(opts, set())
    flags: dict[str, Any] = {
        k: bool(o.get(k)) for k in ("exclude_unset", "exclude_defaults", "exclude_none")
    }
    flags.update(fields=fields, factory=factory)
    data = obj.model_dump(mode=mode)
    result: dict[str, Any] = _filter(obj, data, o.get("include"), o.get("exclude"), flags)
    return result


def dump_json(obj: Any, opts: dict[str, Any], fields: Any, factory: type) -> str:
    """``obj.model_dump_json(**opts)`` (``fields`` and ``factory`` as for :func:`dump`)."""
    opts = dict(opts)
    indent = opts.pop("indent", None)
    ensure_ascii = bool(opts.pop("ensure_ascii", False))
    data = dump(obj, "json", opts, fields, factory)
    if indent is None:
        return json.dumps(data, ensure_ascii=ensure_ascii, separators=(",", ":"))
    return json.dumps(data, ensure_ascii=ensure_ascii, indent=indent)
