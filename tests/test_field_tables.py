"""The three descriptions of the event fields agree with each other.

The native classes take their fields from the Rust field table (``event_models!``). Two
Python tables describe the same fields for the pydantic-facing API: ``_model_api.FIELDS``
(``model_fields``, ``__signature__``, ``__dataclass_fields__``) and the pydantic mirrors in
``_pydantic`` (validation errors, JSON schema, core schema). A field added to one table and
not the others must fail here, checked against what the native classes actually do, not
against what the Python tables say about them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, get_args, get_origin

import pydantic
import pytest

from flightdeck_rs import ValidationError, _model_api, _pydantic
from flightdeck_rs import models as ours

CLASSES = _model_api.CLASSES


def _sample(annotation: Any) -> Any:
    """A valid value for a required field of this annotation."""
    if annotation is str:
        return "x"
    if annotation is int:
        return 3
    if annotation is dt.datetime:
        return dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    if annotation in CLASSES:
        return annotation(**_required_values(annotation))
    raise AssertionError(f"no sample for required field type {annotation!r}")


def _required_values(cls: type[Any]) -> dict[str, Any]:
    return {
        name: _sample(ann)
        for name, ann, default, _ in _model_api.FIELDS[cls]
        if default is _model_api.REQUIRED
    }


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def _default_value(default: Any) -> Any:
    if isinstance(default, _model_api._Factory):
        return default.make()
    return default


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_python_table_matches_native_fields(cls: type[Any]) -> None:
    table = _model_api.FIELDS[cls]
    minimal = cls(**_required_values(cls))
    # Names and order: the native record dumps its fields in declaration order.
    assert list(minimal.model_dump()) == [name for name, *_ in table]
    # Defaults: what the native class fills in for each optional field.
    for name, _, default, _ in table:
        if default is not _model_api.REQUIRED:
            assert getattr(minimal, name) == _default_value(default), name
    # Required: leaving out any one of them is rejected by the native validator, naming it.
    for name in _required_values(cls):
        values = _required_values(cls)
        del values[name]
        with pytest.raises(ValidationError) as info:
            cls(**values)
        assert name in str(info.value)
    # A name beyond the table is ignored, as pydantic's default ``extra="ignore"`` does.
    extra = cls(**_required_values(cls), not_a_field=1)
    assert extra.model_dump() == minimal.model_dump()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_pydantic_mirror_matches_python_table(cls: type[Any]) -> None:
    mirror = _pydantic.MIRROR[cls]
    table = _model_api.FIELDS[cls]
    assert list(mirror.model_fields) == [name for name, *_ in table]
    for name, ann, default, _ in table:
        info = mirror.model_fields[name]
        assert info.is_required() == (default is _model_api.REQUIRED), name
        if isinstance(default, _model_api._Factory):
            assert info.default_factory is not None, name
            assert _plain(info.default_factory()) == _plain(default.make()), name
        elif default is not _model_api.REQUIRED:
            assert info.default == default, name
        mirrored = info.annotation
        if ann in CLASSES:
            assert mirrored is _pydantic.MIRROR[ann], name
        elif get_origin(ann) is list and get_args(ann)[0] in CLASSES:
            assert get_origin(mirrored) is list, name
            assert get_args(mirrored)[0] is _pydantic.MIRROR[get_args(ann)[0]], name
        elif get_args(ann) and any(a in CLASSES for a in get_args(ann)):
            assert [_pydantic.MIRROR.get(a, a) for a in get_args(ann)] == list(get_args(mirrored))
        else:
            assert mirrored == ann, name


def _negative_int_fields(cls: type[Any]) -> list[str]:
    fields = []
    for name, ann, _, _ in _model_api.FIELDS[cls]:
        if ann in (int, float) or ann == int | None:
            fields.append(name)
    return fields


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_mirror_constraints_match_native(cls: type[Any]) -> None:
    """Every numeric field rejects -1 in both, and accepts 0 in both."""
    mirror = _pydantic.MIRROR[cls]
    base = _required_values(cls)
    mirror_base = {
        k: (_pydantic.to_mirror(v) if type(v) in CLASSES else v) for k, v in base.items()
    }
    for name in _negative_int_fields(cls):
        cls(**{**base, name: 0})
        mirror(**{**mirror_base, name: 0})
        with pytest.raises(ValidationError):
            cls(**{**base, name: -1})
        with pytest.raises(pydantic.ValidationError):
            mirror(**{**mirror_base, name: -1})


def test_every_class_has_both_tables() -> None:
    assert set(_model_api.FIELDS) == set(CLASSES) == set(_pydantic.MIRROR) & set(CLASSES)
    assert {c.__name__ for c in CLASSES} == {n for n in ours.__all__ if n.startswith("RunEvent")}
