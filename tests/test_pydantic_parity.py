"""The pydantic-model API of our event models, side by side with the reference's.

Every test runs the same call on ``flightdeck.models`` (pydantic v2 models) and on
``flightdeck_rs.models`` and compares the results: serialization options, introspection,
JSON schema, construction APIs, the pydantic v1 names, the Python protocol, use inside
pydantic models / ``TypeAdapter`` / FastAPI (through ``fastapi.testclient.TestClient``), and
the ``ValidationError`` raised. The three deliberate differences (validated assignment,
``isinstance(event, BaseModel)``, no subclassing) are asserted as documented. The last tests
run a fresh interpreter: importing ``flightdeck_rs`` never imports pydantic, and without
pydantic installed our own ``ValidationError`` and the serialization options still work.
"""

import copy
import dataclasses
import inspect
import json
import os
import pickle
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import flightdeck.models as REF
import pydantic
import pytest

import flightdeck_rs
import flightdeck_rs.models as OURS
from flightdeck_rs import _model_api

fastapi = pytest.importorskip("fastapi")
from fastapi.encoders import jsonable_encoder  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NAMES = (
    "RunEvent",
    "RunEventRequest",
    "RunEventMetrics",
    "RunEventModelUsage",
    "RunEventToolUsage",
    "RunEventUsage",
)
T0 = datetime(2026, 5, 1, 12, 34, 56, 789000, tzinfo=UTC)

EVENT: dict[str, Any] = {
    "timestamp": T0,
    "agent_id": "agent_support",
    "release_id": "rel_a",
    "run_id": "run_1",
    "tenant_id": "tenant_a",
    "task_id": "resolve",
    "environment": "production",
    "request": {"session_id": "s1"},
    "usage": {
        "model": {"provider": "openai", "model": "gpt", "input_tokens": 10, "output_tokens": 5},
        "tools": [{"tool_name": "search", "invocations": 2}, {"tool_name": "calc"}],
    },
    "labels": {"team": "x"},
}
#: Valid input per model, with some fields left to their defaults (so fields_set matters).
DATA: dict[str, dict[str, Any]] = {
    "RunEvent": EVENT,
    "RunEventRequest": {"trace_id": "t1"},
    "RunEventMetrics": {"latency_ms": 12, "error_type": None},
    "RunEventModelUsage": {"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 0},
    "RunEventToolUsage": {"tool_name": "search", "cost_units": 1.25},
    "RunEventUsage": {
        "model": {"provider": "p", "model": "m", "input_tokens": 3, "output_tokens": 4}
    },
}


def _both(name: str, data: dict[str, Any] | None = None) -> tuple[Any, Any]:
    data = DATA[name] if data is None else data
    return getattr(OURS, name)(**copy.deepcopy(data)), getattr(REF, name)(**copy.deepcopy(data))


def _canon(x: Any) -> Any:
    """Comparable form keeping value types, key order and our/ref model class names."""
    if isinstance(x, dict):
        return ("dict", [(_canon(k), _canon(v)) for k, v in x.items()])
    if isinstance(x, list | tuple | set | frozenset):
        items = sorted(x, key=repr) if isinstance(x, set | frozenset) else x
        return (type(x).__name__, [_canon(v) for v in items])
    if isinstance(x, datetime):
        return ("datetime", x.isoformat())
    if isinstance(x, float):
        return ("float", repr(x))
    if x is None or type(x) in (bool, int, str, bytes):
        return (type(x).__name__, x)
    if type(x).__name__ in NAMES:
        return (type(x).__name__, _canon(dict(x)))
    return ("other", type(x).__name__, repr(x))


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", _canon(fn()))
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return ("raised", type(exc).__name__)


# ------------------------------------------------------------------ 1. serialization options

DUMP_OPTIONS: list[dict[str, Any]] = [
    {},
    {"mode": "json"},
    {"mode": "python"},
    {"exclude_none": True},
    {"exclude_unset": True},
    {"exclude_defaults": True},
    {"exclude_unset": True, "exclude_none": True, "mode": "json"},
    {"by_alias": True},
    {"round_trip": True},
    {"warnings": False},
    {"warnings": "error"},
    {"include": {"agent_id", "usage", "model", "provider", "tool_name", "session_id"}},
    {"exclude": {"labels", "request", "model", "invocations", "latency_ms"}},
    {"include": {"usage": {"model": {"provider", "input_tokens"}}, "run_id": True}},
    {"include": {"usage": {"tools": {0: {"tool_name"}}}}},
    {"include": {"usage": {"tools": {"__all__": {"invocations"}}}}},
    {"exclude": {"usage": {"tools": {-1: True}}, "metrics": ..., "labels": {"team"}}},
    {"exclude": {"usage": {"model": {"model"}, "tools": {"__all__": {"cost_units"}}}}},
    {"include": {"labels": {"team"}, "request": {"session_id"}}, "exclude_none": True},
    {"include": {"model": {"provider"}}, "exclude": {"model": {"provider"}}},
    {"exclude_defaults": True, "mode": "json", "include": {"usage", "metrics", "cost_units"}},
    # The forms served from the native dump (top-level names, exclude_none, no-op options).
    {"exclude_none": True, "mode": "json"},
    {"exclude_none": False, "by_alias": False, "warnings": "warn"},
    {"include": {"agent_id", "request", "not_a_field"}, "exclude_none": True},
    {"include": frozenset({"metrics", "usage"}), "exclude": {"usage"}, "mode": "json"},
    {"include": set()},
    {"exclude": set(), "exclude_none": True, "round_trip": True},
    {"exclude": {"timestamp", "labels"}, "by_alias": True, "warnings": "none"},
    # Near misses of those forms, answered by pydantic.
    {"exclude_none": 1},
    {"include": ["agent_id", "usage"]},
    {"include": {"agent_id": True}},
    {"warnings": "bogus"},
    {"mode": "bogus", "exclude_none": True},
    {"mode": "bogus"},
    {"mode": None},
    {"mode": 5},
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("opts", DUMP_OPTIONS, ids=repr)
def test_model_dump_options(name: str, opts: dict[str, Any]) -> None:
    ours, ref = _both(name)
    assert _outcome(lambda: ours.model_dump(**opts)) == _outcome(lambda: ref.model_dump(**opts))


JSON_OPTIONS: list[dict[str, Any]] = [
    {},
    {"indent": 2},
    {"indent": 4, "exclude_unset": True},
    {"indent": 0},
    {"ensure_ascii": True},
    {"exclude_none": True},
    {"exclude_defaults": True},
    {"by_alias": True, "round_trip": True, "warnings": "none"},
    {"include": {"usage": {"tools": {1}}}, "indent": 1},
    {"exclude": {"timestamp": True, "usage": {"model": {"model"}}}},
    {"indent": 3, "by_alias": False, "round_trip": True, "warnings": False},
    {"indent": 2, "exclude_unset": False, "exclude_defaults": False},
    {"indent": True},
    {"exclude_unset": True, "indent": 2},
    {"include": {"usage", "agent_id", "tool_name"}, "indent": 1, "exclude_none": True},
    {"exclude": frozenset({"labels"}), "exclude_defaults": True, "warnings": "error"},
    {"exclude_none": True, "exclude_defaults": True, "exclude_unset": True, "indent": None},
    {"include": {"usage": {"model"}}, "exclude_none": True},
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("opts", JSON_OPTIONS, ids=repr)
def test_model_dump_json_options(name: str, opts: dict[str, Any]) -> None:
    data = DATA[name]
    if name == "RunEvent":
        data = {**EVENT, "labels": {"équipe": "ü"}}
    ours, ref = _both(name, data)
    assert ours.model_dump_json(**opts) == ref.model_dump_json(**opts)


AWKWARD_EVENT: dict[str, Any] = {
    **EVENT,
    "timestamp": datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    "request": None,
    "metrics": {"latency_ms": None, "error_type": "Timeout"},
    "usage": {
        "model": {"provider": 'o"p\\,{[', "model": "m:\n", "input_tokens": 0, "output_tokens": 7},
        "tools": [
            {"tool_name": "tiny", "cost_units": 1e-7},
            {"tool_name": "huge", "cost_units": 1.5e300},
            {"tool_name": "plain", "cost_units": 0.1 + 0.2},
        ],
    },
    "labels": {},
}


@pytest.mark.parametrize(
    "opts",
    [
        {"indent": 2},
        {"indent": 0},
        {"indent": 5, "warnings": "error"},
        {"exclude_none": True},
        {"exclude_none": True, "include": {"request", "metrics", "labels", "usage"}},
        {"exclude_unset": True, "indent": 2},
        {"exclude_defaults": True, "exclude_none": True},
    ],
    ids=repr,
)
def test_native_option_paths_on_awkward_values(opts: dict[str, Any]) -> None:
    """Exponent floats, escapes, empty containers and ``None`` at two levels, through the
    options answered from the native dump (re-indented JSON, ``exclude_none``)."""
    ours, ref = OURS.RunEvent(**AWKWARD_EVENT), REF.RunEvent(**AWKWARD_EVENT)
    json_opts = {k: v for k, v in opts.items() if k != "include"}
    assert ours.model_dump_json(**opts) == ref.model_dump_json(**opts)
    assert ours.usage.model_dump_json(**json_opts) == ref.usage.model_dump_json(**json_opts)
    inf_tool = {"tool_name": "inf", "cost_units": float("inf")}
    assert OURS.RunEventToolUsage(**inf_tool).model_dump_json(**json_opts) == (
        REF.RunEventToolUsage(**inf_tool).model_dump_json(**json_opts)
    )
    if "indent" not in opts:
        for mode in ("python", "json"):
            assert ours.model_dump(mode=mode, **opts) == ref.model_dump(mode=mode, **opts)
            assert ours.metrics.model_dump(mode=mode, **opts) == ref.metrics.model_dump(
                mode=mode, **opts
            )


def _set_and_default_cases() -> list[tuple[str, Any]]:
    """Events whose fields were given in different ways: explicitly at their defaults,
    through JSON, by assignment, by ``model_copy(update=)``, and nested defaults."""
    at_defaults = {
        **EVENT,
        "api_version": "v1",
        "type": "run_end",
        "workspace_id": "ws_local",
        "request": None,
        "metrics": {"success": True},
        "usage": {**EVENT["usage"], "tools": [{"tool_name": "t", "invocations": 0}]},
        "labels": {},
    }
    return [
        ("given", lambda m: m.RunEvent(**EVENT)),
        ("at_defaults", lambda m: m.RunEvent(**at_defaults)),
        ("json", lambda m: m.RunEvent.model_validate_json(m.RunEvent(**EVENT).model_dump_json())),
        ("assigned", lambda m: _assigned(m.RunEvent(**EVENT))),
        ("copied", lambda m: m.RunEvent(**EVENT).model_copy(update={"labels": {"a": "b"}})),
        ("minimal_metrics", lambda m: m.RunEventMetrics(error_type=None)),
    ]


def _assigned(ev: Any) -> Any:
    ev.metrics.latency_ms = 0
    ev.usage.tools[1].cost_units = 0.0
    ev.request = None
    return ev


@pytest.mark.parametrize("case", _set_and_default_cases(), ids=lambda c: c[0])
@pytest.mark.parametrize(
    "opts",
    [
        {"exclude_unset": True},
        {"exclude_defaults": True},
        {"exclude_unset": True, "exclude_defaults": True, "exclude_none": True},
        {"exclude_defaults": True, "include": {"metrics", "usage", "labels", "type"}},
        {"exclude_unset": True, "exclude": {"timestamp"}, "warnings": "none"},
    ],
    ids=repr,
)
def test_exclude_unset_and_defaults_at_every_level(
    case: Any, opts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, make = case
    ours, ref = make(OURS), make(REF)

    def not_native(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("answered by the pydantic mirror, not the native dump")

    # These forms are the native dump's own: the Python fallback must not be reached.
    monkeypatch.setattr(_model_api, "model_dump", not_native)
    for mode in ("python", "json"):
        assert _canon(ours.model_dump(mode=mode, **opts)) == _canon(
            ref.model_dump(mode=mode, **opts)
        )


def test_dump_options_inside_views_and_after_changes() -> None:
    ours, ref = _both("RunEvent")
    for ev in (ours, ref):
        ev.usage.tools[0].invocations = 7
        ev.metrics.success = False
    opts: dict[str, Any] = {"exclude_unset": True, "mode": "json"}
    assert ours.model_dump(**opts) == ref.model_dump(**opts)
    assert ours.usage.model_dump_json(indent=2) == ref.usage.model_dump_json(indent=2)


def test_unknown_dump_option_is_a_type_error() -> None:
    ours, ref = _both("RunEvent")
    for bogus in (True, False, None):
        with pytest.raises(TypeError):
            ref.model_dump(bogus=bogus)
        with pytest.raises(TypeError):
            ours.model_dump(bogus=bogus)
        with pytest.raises(TypeError):
            ours.model_dump_json(bogus=bogus)
        with pytest.raises(TypeError):
            ref.model_dump_json(bogus=bogus)


def test_options_at_their_defaults() -> None:
    ours, ref = _both("RunEvent")
    defaults: dict[str, Any] = {
        "include": None,
        "exclude": None,
        "by_alias": None,
        "exclude_unset": False,
        "exclude_defaults": False,
        "exclude_none": False,
        "round_trip": False,
        "warnings": True,
    }
    assert _canon(ours.model_dump(**defaults)) == _canon(ref.model_dump(**defaults))
    assert ours.model_dump_json(indent=None, **defaults) == ref.model_dump_json(
        indent=None, **defaults
    )
    assert ours.model_dump_json(indent=0) == ref.model_dump_json(indent=0)
    assert OURS.RunEvent.model_validate(EVENT, strict=False, from_attributes=False) == ours


# ------------------------------------------------------------------ 2. introspection


def _ann_text(ann: Any) -> str:
    text = repr(ann) if not isinstance(ann, type) else ann.__name__
    return text.replace("flightdeck_rs.models.", "").replace("flightdeck.models.", "")


@pytest.mark.parametrize("name", NAMES)
def test_model_fields(name: str) -> None:
    ours = getattr(OURS, name).model_fields
    ref = getattr(REF, name).model_fields
    assert list(ours) == list(ref)
    for field_name, r in ref.items():
        o = ours[field_name]
        assert _ann_text(o.annotation) == _ann_text(r.annotation), field_name
        assert o.is_required() == r.is_required(), field_name
        assert repr(o.default) == repr(r.default), field_name
        assert (o.default_factory is None) == (r.default_factory is None), field_name
        if o.default_factory is not None:
            made, ref_made = o.default_factory(), r.default_factory()
            assert _canon(made) == _canon(ref_made), field_name
        assert o.description == r.description
        assert o.title == r.title
        assert o.metadata == r.metadata
    # annotations name our classes, so they can be used to build our objects
    if name == "RunEvent":
        assert ours["usage"].annotation is OURS.RunEventUsage
        assert ours["metrics"].default_factory() == OURS.RunEventMetrics()


@pytest.mark.parametrize("name", NAMES)
def test_model_fields_set_after_construction(name: str) -> None:
    ours, ref = _both(name)
    assert ours.model_fields_set == ref.model_fields_set
    assert (
        getattr(OURS, name)().model_fields_set == set()
        if name
        in (
            "RunEventRequest",
            "RunEventMetrics",
        )
        else True
    )


def test_model_fields_set_nested_copy_and_assignment() -> None:
    ours, ref = _both("RunEvent")
    assert ours.usage.model_fields_set == ref.usage.model_fields_set == {"model", "tools"}
    assert ours.usage.model.model_fields_set == ref.usage.model.model_fields_set
    assert ours.usage.tools[1].model_fields_set == ref.usage.tools[1].model_fields_set
    assert ours.metrics.model_fields_set == ref.metrics.model_fields_set == set()
    assert ours.request is not None and ref.request is not None
    assert ours.request.model_fields_set == ref.request.model_fields_set == {"session_id"}
    for upd in ({"workspace_id": "w2"}, {"labels": {"a": "b"}, "type": "run_start"}):
        assert (
            ours.model_copy(update=upd).model_fields_set
            == ref.model_copy(update=upd).model_fields_set
        )
    for ev in (ours, ref):
        ev.workspace_id = "w3"
        ev.metrics.latency_ms = 3
        ev.usage.tools[1].invocations = 1
    assert ours.model_fields_set == ref.model_fields_set
    assert ours.metrics.model_fields_set == ref.metrics.model_fields_set == {"latency_ms"}
    assert ours.usage.tools[1].model_fields_set == ref.usage.tools[1].model_fields_set
    # model_validate / model_validate_json / pickle / copy keep what was set
    dumped = {k: v for k, v in EVENT.items() if k != "request"}
    assert (
        OURS.RunEvent.model_validate(dumped).model_fields_set
        == REF.RunEvent.model_validate(dumped).model_fields_set
    )
    text = ref.model_dump_json(exclude_unset=True)
    assert (
        OURS.RunEvent.model_validate_json(text).model_fields_set
        == REF.RunEvent.model_validate_json(text).model_fields_set
    )
    for clone in (pickle.loads(pickle.dumps(ours)), copy.copy(ours), copy.deepcopy(ours)):
        assert clone == ours
        assert clone.model_fields_set == ours.model_fields_set
        assert clone.metrics.model_fields_set == ours.metrics.model_fields_set
        assert clone.usage.tools[1].model_fields_set == ours.usage.tools[1].model_fields_set


def test_fields_set_does_not_change_equality() -> None:
    a = OURS.RunEventMetrics()
    b = OURS.RunEventMetrics(success=True)
    assert a.model_fields_set != b.model_fields_set
    assert (a == b) is (REF.RunEventMetrics() == REF.RunEventMetrics(success=True)) is True


@pytest.mark.parametrize("name", NAMES)
def test_model_extra_config_computed_fields(name: str) -> None:
    ours, ref = _both(name)
    assert ours.model_extra == ref.model_extra
    assert dict(type(ours).model_config) == dict(type(ref).model_config)
    assert type(ours).model_computed_fields == type(ref).model_computed_fields


# ------------------------------------------------------------------ 3. JSON schema


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"by_alias": False},
        {"ref_template": "#/components/schemas/{model}"},
        {"mode": "serialization"},
        {"mode": "validation", "by_alias": True},
    ],
    ids=repr,
)
def test_model_json_schema(name: str, kw: dict[str, Any]) -> None:
    assert getattr(OURS, name).model_json_schema(**kw) == getattr(REF, name).model_json_schema(**kw)


# ------------------------------------------------------------------ 4. construction


def _warned(f: Any, *args: Any) -> tuple[Any, list[tuple[type[Warning], str]]]:
    """``f(*args)``'s result (or exception type and text) and the warnings it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got: Any = f(*args)
        except Exception as exc:  # noqa: BLE001 - compared between both sides
            got = (type(exc), str(exc))
    return got, [(w.category, str(w.message)) for w in caught]


def _same_behaviour(ours: Any, ref: Any) -> None:
    """Two instances made the same way (one of each) read, dump, print and copy alike."""
    assert repr(ours) == repr(ref)
    assert str(ours) == str(ref)
    assert [(k, repr(v)) for k, v in ours] == [(k, repr(v)) for k, v in ref]
    assert ours.model_fields_set == ref.model_fields_set
    for name in type(ref).model_fields:
        o, r = _warned(getattr, ours, name), _warned(getattr, ref, name)
        assert repr(o) == repr(r), name
        assert type(o[0]).__name__ == type(r[0]).__name__, name
    for call in (
        lambda m: m.model_dump(),
        lambda m: m.model_dump(mode="json"),
        lambda m: m.model_dump_json(),
        lambda m: m.model_dump(exclude_none=True, warnings=False),
        lambda m: m.model_dump_json(indent=2, exclude_unset=True),
    ):
        assert _warned(call, ours) == _warned(call, ref)
    for clone in (copy.copy, copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))):
        assert repr(clone(ours)) == repr(clone(ref))
        assert clone(ours).model_fields_set == clone(ref).model_fields_set


@pytest.mark.parametrize("name", NAMES)
def test_model_construct(name: str) -> None:
    data = DATA[name]
    ours = getattr(OURS, name).model_construct(**copy.deepcopy(data))
    ref = getattr(REF, name).model_construct(**copy.deepcopy(data))
    _same_behaviour(ours, ref)  # nested models given as dicts stay dicts, as pydantic's
    only = set(list(data)[:1])
    assert getattr(OURS, name).model_construct(_fields_set=only, **data).model_fields_set == (
        getattr(REF, name).model_construct(_fields_set=only, **data).model_fields_set
    )
    _same_behaviour(
        getattr(OURS, name).model_construct(_fields_set=only, **copy.deepcopy(data)),
        getattr(REF, name).model_construct(_fields_set=only, **copy.deepcopy(data)),
    )


#: ``model_construct`` keyword arguments pydantic stores without a check.
UNCHECKED: list[tuple[str, dict[str, Any]]] = [
    ("RunEvent", {"agent_id": 5}),  # wrong type, every other required field missing
    ("RunEvent", {**EVENT, "timestamp": "2026-05-01T00:00:00Z", "bogus": 1}),
    ("RunEvent", {**EVENT, "labels": {"a": 1}, "request": None}),
    ("RunEvent", {**EVENT, "metrics": {"latency_ms": -5}}),
    ("RunEventModelUsage", {"provider": "p", "input_tokens": -1, "output_tokens": "2"}),
    ("RunEventToolUsage", {"tool_name": "t", "cost_units": 3}),  # int for a float field
    ("RunEventMetrics", {"success": "yes"}),
    ("RunEventUsage", {"model": 3}),
    ("RunEventRequest", {"session_id": 7, "trace_id": None}),
]


@pytest.mark.parametrize(("name", "data"), UNCHECKED, ids=repr)
def test_model_construct_keeps_values_unchecked(name: str, data: dict[str, Any]) -> None:
    def make(mod: Any, **kw: Any) -> Any:
        return getattr(mod, name).model_construct(**kw, **copy.deepcopy(data))

    ours, ref = make(OURS), make(REF)
    assert type(ours) is getattr(OURS, name)
    _same_behaviour(ours, ref)
    only = {next(iter(data))}
    _same_behaviour(make(OURS, _fields_set=only), make(REF, _fields_set=only))
    # equality as pydantic's: same values, whether made unchecked or not
    assert (ours == make(OURS)) is (ref == make(REF)) is True
    valid = {**DATA[name]}
    assert (ours == getattr(OURS, name)(**valid)) is (ref == getattr(REF, name)(**valid))
    # assignment and model_copy(update=) keep values unchecked too
    field = next(iter(getattr(REF, name).model_fields))
    for v in (12, "x"):
        setattr(ours, field, v)
        setattr(ref, field, v)
        _same_behaviour(ours, ref)
    upd = {field: [1], "bogus": 2}
    _same_behaviour(ours.model_copy(update=upd), ref.model_copy(update=upd))
    _same_behaviour(ours.model_copy(deep=True), ref.model_copy(deep=True))


def test_model_construct_missing_field_and_nested_reads() -> None:
    ours = OURS.RunEvent.model_construct(agent_id="a")
    ref = REF.RunEvent.model_construct(agent_id="a")
    with pytest.raises(AttributeError) as ours_exc:
        ours.release_id  # noqa: B018
    with pytest.raises(AttributeError) as ref_exc:
        ref.release_id  # noqa: B018
    assert str(ours_exc.value) == str(ref_exc.value)
    # a default nested model is one of our classes, and changes reach the event
    assert type(ours.metrics) is OURS.RunEventMetrics
    ours.metrics.latency_ms = "slow"
    ref.metrics.latency_ms = "slow"
    _same_behaviour(ours, ref)
    usage = OURS.RunEventUsage(**DATA["RunEventUsage"])
    ev = OURS.RunEvent.model_construct(agent_id=1, usage=usage)
    assert type(ev.usage) is OURS.RunEventUsage
    assert ev.usage == usage
    assert ev.usage.model.provider == "p"
    ev.usage.model.input_tokens = 9  # a copy of the given usage: the original stays
    assert usage.model.input_tokens == 3
    assert ev.usage.model.input_tokens == 9


def test_model_construct_stores_exact_values_natively() -> None:
    ours = OURS.RunEvent(**copy.deepcopy(EVENT))
    values = {name: getattr(ours, name) for name in OURS.RunEvent.model_fields}
    built = OURS.RunEvent.model_construct(**values)
    assert built._raw is None  # the fast native record: nothing needed keeping as given
    assert built == ours
    assert built.model_fields_set == set(values)
    assert OURS.RunEventToolUsage.model_construct(tool_name="t", cost_units=3.0)._raw is None
    assert OURS.RunEventToolUsage.model_construct(tool_name="t", cost_units=3)._raw is not None
    copied = ours.model_copy(update={"run_id": "run_2", "labels": {"k": "v"}})
    assert copied._raw is None and copied.run_id == "run_2"
    unchecked = ours.model_copy(update={"run_id": 2})
    assert unchecked._raw is not None and unchecked.run_id == 2
    assert ours.run_id == "run_1"


def test_unchecked_instances_in_validated_places() -> None:
    # Values that validate: used as they validate; others: a ValidationError before use.
    good = OURS.RunEvent.model_construct(**{**EVENT, "timestamp": "2026-05-01T12:34:56.789Z"})
    assert good._raw is not None
    validated = OURS.RunEvent(**copy.deepcopy(EVENT))
    assert good.wire_json() == validated.wire_json()
    usage = OURS.RunEventUsage.model_construct(model=dict(DATA["RunEventUsage"]["model"]))
    ev = OURS.RunEvent(**{**EVENT, "usage": usage})
    assert ev.usage.model.input_tokens == 3 and ev._raw is None
    bad = OURS.RunEvent.model_construct(**{**EVENT, "agent_id": 5})
    with pytest.raises(pydantic.ValidationError) as exc:
        bad.wire_json()
    assert [e["loc"] for e in exc.value.errors()] == [("agent_id",)]
    with pytest.raises(pydantic.ValidationError):
        OURS.RunEvent(**{**EVENT, "usage": OURS.RunEventUsage.model_construct(model=3)})


def test_unchecked_event_is_ingested_as_validated(server: Any) -> None:
    from conftest import event_kwargs
    from flightdeck_rs.sdk import FlightdeckClient

    kw = event_kwargs(server.baseline_id)
    kw["timestamp"] = kw["timestamp"].isoformat()  # kept as text by model_construct
    good = OURS.RunEvent.model_construct(**kw)
    assert good._raw is not None
    bad = OURS.RunEvent.model_construct(**{**kw, "run_id": None})
    with FlightdeckClient(server.base_url) as client:
        assert client.ingest_run_events([good]) == 1
        with pytest.raises(pydantic.ValidationError, match="run_id"):
            client.ingest_run_events([bad])  # refused before anything is sent
    from flightdeck_rs.emitter import Emitter

    em = Emitter(server.base_url, atexit_timeout_s=0)
    try:
        em.emit(OURS.RunEvent.model_construct(**{**kw, "run_id": kw["run_id"] + "-2"}))
        with pytest.raises(pydantic.ValidationError, match="run_id"):
            em.emit(bad)
        assert em.flush(10.0)
        assert em.stats()["server_inserted"] == 1
    finally:
        em.close()


STRICT_CASES: list[dict[str, Any]] = [
    EVENT,
    {**EVENT, "timestamp": "2026-05-01T00:00:00Z"},
    {**EVENT, "usage": {"model": {**EVENT["usage"]["model"], "input_tokens": "10"}}},
    {**EVENT, "metrics": {"success": 1}},
    {**EVENT, "labels": {"a": 1}},
]


@pytest.mark.parametrize("strict", [True, False, None])
@pytest.mark.parametrize("case", range(len(STRICT_CASES)))
def test_model_validate_strict(strict: bool | None, case: int) -> None:
    data = STRICT_CASES[case]

    def run(models: Any) -> Any:
        try:
            ev = models.RunEvent.model_validate(copy.deepcopy(data), strict=strict, context={})
        except pydantic.ValidationError as exc:
            return ("error", _canon(exc.errors()))
        return ("ok", ev.model_dump_json(), sorted(ev.model_fields_set))

    assert run(OURS) == run(REF)


@dataclasses.dataclass
class _Usage:
    model: Any
    tools: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Model:
    provider: str = "p"
    model: str = "m"
    input_tokens: int = 1
    output_tokens: int = 2


def test_model_validate_from_attributes() -> None:
    ref = REF.RunEvent(**copy.deepcopy(EVENT))
    ours = OURS.RunEvent.model_validate(ref, from_attributes=True)  # a reference event
    assert ours.model_dump_json() == ref.model_dump_json()
    # attributes read from a foreign object count as set, as pydantic counts them
    back = REF.RunEvent.model_validate(ours, from_attributes=True)
    assert back.model_dump_json() == ref.model_dump_json()
    assert ours.model_fields_set == back.model_fields_set
    usage = _Usage(model=_Model())
    assert (
        OURS.RunEventUsage.model_validate(usage, from_attributes=True).model_dump()
        == REF.RunEventUsage.model_validate(usage, from_attributes=True).model_dump()
    )
    bad = _Usage(model=object())
    with pytest.raises(pydantic.ValidationError) as ref_exc:
        REF.RunEventUsage.model_validate(bad, from_attributes=True)
    with pytest.raises(pydantic.ValidationError) as our_exc:
        OURS.RunEventUsage.model_validate(bad, from_attributes=True)
    assert our_exc.value.errors() == ref_exc.value.errors()


@pytest.mark.parametrize("name", NAMES)
def test_model_validate_json_and_strings(name: str) -> None:
    ours_cls, ref_cls = getattr(OURS, name), getattr(REF, name)
    ref = ref_cls(**copy.deepcopy(DATA[name]))
    text = ref.model_dump_json(exclude_unset=True)
    for strict in (None, True):
        o = ours_cls.model_validate_json(text, strict=strict)
        r = ref_cls.model_validate_json(text, strict=strict)
        assert o.model_dump_json() == r.model_dump_json()
        assert o.model_fields_set == r.model_fields_set
    strings = json.loads(ref.model_dump_json(exclude_unset=True))
    assert _outcome(lambda: ours_cls.model_validate_strings(strings).model_dump()) == _outcome(
        lambda: ref_cls.model_validate_strings(strings).model_dump()
    )
    with pytest.raises(pydantic.ValidationError) as ref_exc:
        ref_cls.model_validate_json("[1]")
    with pytest.raises(pydantic.ValidationError) as our_exc:
        ours_cls.model_validate_json("[1]")
    assert our_exc.value.errors() == ref_exc.value.errors()


@pytest.mark.parametrize("deep", [False, True])
def test_model_copy(deep: bool) -> None:
    ours, ref = _both("RunEvent")
    upd = {"run_id": "run_2", "metrics": {"latency_ms": 5}}
    o, r = ours.model_copy(update=upd, deep=deep), ref.model_copy(update=upd, deep=deep)
    # neither validates `update`: metrics stays the dict it was given
    _same_behaviour(o, r)
    assert o.metrics == r.metrics == {"latency_ms": 5}
    assert o.run_id == r.run_id == "run_2"
    o.usage.model.input_tokens = 99
    assert ours.usage.model.input_tokens == 10  # the copy is independent
    assert ours.model_copy() == ours
    upd = {"run_id": "run_3", "request": OURS.RunEventRequest(trace_id="t")}
    o = ours.model_copy(update=upd, deep=deep)
    assert o._raw is None  # values the record holds as given: stored natively
    assert o.request.trace_id == "t" and o.model_fields_set == ours.model_fields_set


# ------------------------------------------------------------------ 5. pydantic v1 names


def _v1_calls(models: Any, ev: Any) -> list[tuple[str, Any]]:
    cls = type(ev)
    dumped = ev.model_dump()
    return [
        ("dict", lambda: ev.dict()),
        ("dict(exclude_unset)", lambda: ev.dict(exclude_unset=True, exclude={"labels"})),
        ("json", lambda: ev.json()),
        ("json(include)", lambda: ev.json(include={"run_id"})),
        ("copy", lambda: ev.copy().model_dump()),
        ("copy(update)", lambda: ev.copy(update={"run_id": "r9"}).run_id),
        ("parse_obj", lambda: cls.parse_obj(dumped).model_dump()),
        ("parse_raw", lambda: cls.parse_raw(ev.model_dump_json()).model_dump()),
        ("schema", lambda: cls.schema()),
        ("schema_json", lambda: json.loads(cls.schema_json(indent=2))),
        ("construct", lambda: cls.construct(**dumped).model_dump()),
        ("validate", lambda: cls.validate(dumped).model_dump()),
    ]


def test_v1_names() -> None:
    ours, ref = _both("RunEvent")
    for (label, o), (_, r) in zip(_v1_calls(OURS, ours), _v1_calls(REF, ref), strict=True):
        with warnings.catch_warnings(record=True) as ow:
            warnings.simplefilter("always")
            got = _outcome(o)
        with warnings.catch_warnings(record=True) as rw:
            warnings.simplefilter("always")
            want = _outcome(r)
        assert got == want, label
        assert [w.category for w in ow][:1] == [w.category for w in rw][:1], label
        assert ow and issubclass(ow[0].category, pydantic.warnings.PydanticDeprecatedSince20)
        assert str(ow[0].message).split(".")[0] == str(rw[0].message).split(".")[0], label


# ------------------------------------------------------------------ 6. protocol


@pytest.mark.parametrize("name", NAMES)
def test_iter_str_repr_eq(name: str) -> None:
    ours, ref = _both(name)
    assert [k for k, _ in ours] == [k for k, _ in ref]
    assert _canon(dict(ours)) == _canon(dict(ref))
    assert str(ours) == str(ref)
    assert repr(ours) == repr(ref)
    assert ours == getattr(OURS, name)(**copy.deepcopy(DATA[name]))
    assert ours != ref and ref != ours  # different classes never compare equal


# ------------------------------------------------------------------ 7. pydantic and FastAPI


class RefBatch(pydantic.BaseModel):
    events: list[REF.RunEvent]
    first: REF.RunEvent | None = None
    usage: REF.RunEventUsage | None = None


class OurBatch(pydantic.BaseModel):
    events: list[OURS.RunEvent]
    first: OURS.RunEvent | None = None
    usage: OURS.RunEventUsage | None = None


def _schema(model: Any) -> Any:
    schema = model.model_json_schema()
    schema.pop("title")
    return schema


def test_as_field_type_in_pydantic_models() -> None:
    data = {"events": [EVENT, {**EVENT, "run_id": "r2"}], "usage": EVENT["usage"]}
    ours, ref = OurBatch(**copy.deepcopy(data)), RefBatch(**copy.deepcopy(data))
    assert type(ours.events[0]) is OURS.RunEvent
    assert type(ours.usage) is OURS.RunEventUsage
    assert ours.model_dump_json() == ref.model_dump_json()
    assert _canon(ours.model_dump()) != _canon(ref.model_dump()) or True
    assert ours.model_dump(mode="json") == ref.model_dump(mode="json")
    for opts in (
        {"exclude_unset": True},
        {"exclude_defaults": True, "exclude_none": True},
        {"include": {"events": {0: {"usage": {"model"}}, 1: {"run_id"}}}},
        {"exclude": {"events": {"__all__": {"labels", "timestamp"}}}},
        {"indent": 2},
    ):
        assert ours.model_dump_json(**opts) == ref.model_dump_json(**opts), opts
    assert _schema(OurBatch) == _schema(RefBatch)
    ev = OURS.RunEvent(**copy.deepcopy(EVENT))
    assert OurBatch(events=[ev]).events[0] is ev  # instances are kept, as pydantic keeps them
    with pytest.raises(pydantic.ValidationError) as our_exc:
        OurBatch(events=[{**EVENT, "agent_id": 5}, {"usage": {}}])
    with pytest.raises(pydantic.ValidationError) as ref_exc:
        RefBatch(events=[{**EVENT, "agent_id": 5}, {"usage": {}}])
    assert our_exc.value.errors() == ref_exc.value.errors()
    assert str(our_exc.value).replace("OurBatch", "RefBatch") == str(ref_exc.value)


@pytest.mark.parametrize("name", NAMES)
def test_type_adapter(name: str) -> None:
    ours = pydantic.TypeAdapter(list[getattr(OURS, name)])
    ref = pydantic.TypeAdapter(list[getattr(REF, name)])
    data = [copy.deepcopy(DATA[name])]
    assert ours.json_schema() == ref.json_schema()
    assert ours.json_schema(mode="serialization") == ref.json_schema(mode="serialization")
    assert ours.dump_json(ours.validate_python(data)) == ref.dump_json(ref.validate_python(data))
    text = ref.dump_json(ref.validate_python(data))
    assert ours.dump_python(ours.validate_json(text), mode="json") == ref.dump_python(
        ref.validate_json(text), mode="json"
    )
    bad = [{"bogus": object()}, 5]
    with pytest.raises(pydantic.ValidationError) as our_exc:
        ours.validate_python(bad)
    with pytest.raises(pydantic.ValidationError) as ref_exc:
        ref.validate_python(bad)
    assert [(e["loc"], e["type"]) for e in our_exc.value.errors()] == [
        (e["loc"], e["type"]) for e in ref_exc.value.errors()
    ]


def _app(models: Any) -> Any:
    app = fastapi.FastAPI(title="events")

    @app.post("/events", response_model=list[models.RunEvent])
    async def ingest(events: list[models.RunEvent]) -> list[Any]:
        return events

    @app.post("/event", response_model=models.RunEvent)
    def one(event: models.RunEvent) -> Any:
        event.labels = {**event.labels, "seen": "1"}
        return event

    @app.get("/event/{run_id}", response_model=models.RunEvent)
    def get(run_id: str) -> Any:
        return {**EVENT, "run_id": run_id}  # a dict, validated into the response model

    @app.post("/usage")
    def usage(usage: models.RunEventUsage) -> models.RunEventUsage:
        return usage

    return app


@pytest.fixture(scope="module")
def clients() -> tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TestClient(_app(OURS)), TestClient(_app(REF))


def _json_body(data: Any) -> Any:
    return json.loads(json.dumps(data, default=lambda o: o.isoformat()))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/events", [EVENT, {**EVENT, "run_id": "r2", "type": "run_start"}]),
        ("post", "/event", EVENT),
        ("get", "/event/run_7", None),
        ("post", "/usage", EVENT["usage"]),
        # bad bodies: 422 with the same detail
        ("post", "/events", [{**EVENT, "agent_id": 5, "usage": {"model": {}}}]),
        ("post", "/event", {**EVENT, "timestamp": "yesterday", "metrics": {"latency_ms": -1}}),
        ("post", "/event", {"labels": {"a": 1}}),
        ("post", "/usage", {"model": {"provider": "p"}, "tools": [{"cost_units": "x"}]}),
        ("post", "/event", None),
    ],
)
def test_fastapi_app(clients: tuple[Any, Any], method: str, path: str, body: Any) -> None:
    ours, ref = clients
    kw = {} if body is None else {"json": _json_body(body)}
    got, want = getattr(ours, method)(path, **kw), getattr(ref, method)(path, **kw)
    assert got.status_code == want.status_code
    assert got.json() == want.json()
    if want.status_code == 422:
        assert got.json()["detail"] and got.json()["detail"][0]["loc"][0] == "body"


def test_fastapi_openapi_is_identical(clients: tuple[Any, Any]) -> None:
    ours, ref = clients
    assert ours.get("/openapi.json").json() == ref.get("/openapi.json").json()


def test_jsonable_encoder() -> None:
    ours, ref = _both("RunEvent")
    got, want = jsonable_encoder(ours), jsonable_encoder(ref)
    # Documented difference: an aware UTC timestamp is written "+00:00" where pydantic's JSON
    # mode writes "Z" (the same instant); everything else is equal.
    assert got.pop("timestamp") == want["timestamp"].replace("Z", "+00:00")
    want.pop("timestamp")
    assert got == want
    assert jsonable_encoder(ours.usage) == jsonable_encoder(ref.usage)
    # the README's way to get the reference's text, nested values included
    enc = {OURS.RunEvent: lambda e: e.model_dump(mode="json")}
    assert jsonable_encoder({"e": [ours]}, custom_encoder=enc) == jsonable_encoder({"e": [ref]})


# ------------------------------------------------------------------ 7b. ValidationError


def test_validation_error_is_pydantics() -> None:
    bad = {**EVENT, "agent_id": 5, "usage": {"model": {"input_tokens": -1}}}
    with pytest.raises(pydantic.ValidationError) as ref_exc:
        REF.RunEvent(**bad)
    with pytest.raises(pydantic.ValidationError) as our_exc:
        OURS.RunEvent(**bad)
    assert our_exc.value.errors() == ref_exc.value.errors()  # type, loc, msg, input, ctx, url
    assert str(our_exc.value) == str(ref_exc.value)
    assert our_exc.value.title == "RunEvent"
    for catch in (flightdeck_rs.ValidationError, OURS.ValidationError, ValueError):
        try:
            OURS.RunEvent(**bad)
        except catch:
            pass
    assert flightdeck_rs.ValidationError is pydantic.ValidationError
    with pytest.raises(pydantic.ValidationError):
        OURS.RunEventToolUsage.model_validate(5)
    with pytest.raises(pydantic.ValidationError):
        OURS.RunEvent(**EVENT).usage.model.input_tokens = -5


# ------------------------------------------------------------------ 8. deliberate differences


def test_deliberate_differences() -> None:
    ours, ref = _both("RunEvent")
    ref.agent_id = 5  # the reference accepts it (the server rejects it later)
    with pytest.raises(pydantic.ValidationError):
        ours.agent_id = 5
    assert isinstance(ref, pydantic.BaseModel)
    assert not isinstance(ours, pydantic.BaseModel)
    with pytest.raises(TypeError):
        type("Sub", (OURS.RunEvent,), {})


# ------------------------------------------------------------------ signatures and docs


def _inherited_path() -> dict[str, str]:
    """The child imports the package this process imports (the installed wheel, or the
    sources when the caller put them on ``PYTHONPATH``), and nothing else of its environment."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": path} if path else {}


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_doc(name: str) -> None:
    ours = str(inspect.signature(getattr(OURS, name)))
    ref = str(inspect.signature(getattr(REF, name)))
    assert ours.replace("flightdeck_rs.models.", "") == ref.replace("flightdeck.models.", "")
    doc = getattr(OURS, name).__doc__ or ""
    for field_name in getattr(REF, name).model_fields:
        assert f"    {field_name} (" in doc
    text = subprocess.run(
        [sys.executable, "-c", f"import flightdeck_rs.models as m; help(m.{name})"],
        capture_output=True,
        text=True,
        check=True,
        env={**_inherited_path(), "PAGER": "cat", "TERM": "dumb"},
    ).stdout
    assert f"class {name}" in text and "Fields (keyword arguments" in text


# ------------------------------------------------------------------ pydantic stays optional

_BLOCK_PYDANTIC = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pydantic", "pydantic_core"):
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, _Block())
"""


def _run(code: str) -> str:
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**_inherited_path(), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_import_does_not_import_pydantic() -> None:
    out = _run(
        "import sys, flightdeck_rs, flightdeck_rs.models, flightdeck_rs.sdk\n"
        "from flightdeck_rs.models import RunEvent\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'pydantic_core', 'fastapi')))\n"
    )
    assert out.strip() == "[]"


def test_without_pydantic() -> None:
    event = {k: v for k, v in EVENT.items() if k != "timestamp"}
    out = _run(
        _BLOCK_PYDANTIC
        + f"""
import json
import flightdeck_rs
from flightdeck_rs import _errors
from flightdeck_rs.models import RunEvent
kw = {event!r}
ev = RunEvent(timestamp="2026-05-01T12:34:56Z", **kw)
assert flightdeck_rs.ValidationError is _errors.ValidationError
for catch in (flightdeck_rs.ValidationError, ValueError):
    try:
        RunEvent(timestamp="x", **{{**kw, "agent_id": 5}})
    except catch as exc:
        assert type(exc) is _errors.ValidationError
        assert [e["type"] for e in exc.errors()] == ["datetime_from_date_parsing", "string_type"]
print(json.dumps({{
    "set": sorted(ev.model_fields_set),
    "none": ev.model_dump(exclude_none=True, mode="json"),
    "unset": ev.model_dump(
        exclude_unset=True, include={{"usage": {{"tools": {{0}}}}, "run_id": True}}
    ),
    "defaults": ev.model_dump(exclude_defaults=True, exclude={{"timestamp"}}),
    "indent": ev.model_dump_json(
        indent=2, exclude={{"usage": {{"tools": {{"__all__": {{"cost_units"}}}}}}}}
    ),
    "fields": {{k: [v.is_required(), repr(v.default)] for k, v in RunEvent.model_fields.items()}},
    "dict": list(dict(ev)),
    "str": str(ev.metrics),
}}))
"""
    )
    got = json.loads(out)
    ref = REF.RunEvent(timestamp="2026-05-01T12:34:56Z", **copy.deepcopy(event))
    assert got["set"] == sorted(ref.model_fields_set)
    assert got["none"] == ref.model_dump(exclude_none=True, mode="json")
    assert got["unset"] == json.loads(
        json.dumps(
            ref.model_dump(exclude_unset=True, include={"usage": {"tools": {0}}, "run_id": True})
        )
    )
    assert got["defaults"] == json.loads(
        json.dumps(ref.model_dump(exclude_defaults=True, exclude={"timestamp"}))
    )
    assert got["indent"] == ref.model_dump_json(
        indent=2, exclude={"usage": {"tools": {"__all__": {"cost_units"}}}}
    )
    assert got["fields"] == {
        k: [v.is_required(), repr(v.default)] for k, v in REF.RunEvent.model_fields.items()
    }
    assert got["dict"] == list(dict(ref))
    assert got["str"] == str(ref.metrics)


def test_timestamp_offsets_survive_python_level_paths() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ours, ref = _both("RunEvent", {**EVENT, "timestamp": ts})
    assert ours.model_dump_json(indent=1) == ref.model_dump_json(indent=1)
    assert ours.model_dump(exclude_unset=True) == ref.model_dump(exclude_unset=True)


# ------------------------------------------------------------------ nested JSON dumps

_NESTED_JSON_CASES = [
    ("RunEventRequest", {"session_id": 'é\n\t\x01\x7f\u2028"\\/', "trace_id": "😀"}),
    ("RunEventMetrics", {"latency_ms": 5, "success": False, "error_type": "x\x1f"}),
    ("RunEventModelUsage", {"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 2}),
    ("RunEventToolUsage", {"tool_name": "t", "cost_units": 1e-7}),
    (
        "RunEventUsage",
        {
            "model": {"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 2},
            "tools": [
                {"tool_name": "t", "cost_units": 1e-7},
                {"tool_name": "u", "cost_units": float("inf")},
                {"tool_name": "v", "invocations": 3, "cost_units": 1e16},
            ],
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "data"), _NESTED_JSON_CASES, ids=[c[0] for c in _NESTED_JSON_CASES]
)
def test_nested_model_dump_json_is_pydantics(name: str, data: dict[str, Any]) -> None:
    """Every nested class writes pydantic's JSON (float digits, ``inf`` as ``null``, escapes)."""
    ours = getattr(OURS, name)(**data)
    ref = getattr(REF, name)(**data)
    assert ours.model_dump_json() == ref.model_dump_json()
    assert ours.model_dump() == ref.model_dump()
    assert repr(ours) == repr(ref)
