"""``model_dump`` / ``model_dump_json`` options without pydantic (``_dump_fallback``) give what
pydantic gives with it: the fallback is forced here by hiding pydantic from ``_model_api``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flightdeck_rs import _dump_fallback, _model_api
from flightdeck_rs.models import RunEvent

EVENT = RunEvent(
    timestamp=datetime(2024, 1, 1, tzinfo=UTC),
    agent_id="a",
    release_id="r",
    run_id="x",
    tenant_id="t",
    task_id="k",
    environment="e",
    metrics={"success": True},
    usage={
        "model": {"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 2},
        "tools": [{"tool_name": "s"}, {"tool_name": "u", "cost_units": 2.0}],
    },
)

OPTIONS: list[dict[str, Any]] = [
    {"exclude_defaults": True},
    {"exclude_unset": True},
    {"exclude_none": True, "exclude": {"usage": {"model"}}},
    {"include": {"usage": {"tools": {0}}, "run_id": True}},
    {"exclude": {"usage": {"tools": {"__all__": {"cost_units"}}}}},
]


#: Options the native dump answers itself; the others reach the fallback.
NATIVE = ({"exclude_defaults": True}, {"exclude_unset": True})


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(o) for o in OPTIONS])
@pytest.mark.parametrize("mode", ["python", "json"])
def test_fallback_dump_matches_pydantic(
    opts: dict[str, Any], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = EVENT.model_dump(mode=mode, **opts)
    want_json = EVENT.model_dump_json(indent=2, **opts)
    monkeypatch.setattr(_model_api, "_has_pydantic", lambda: False)
    calls: list[str] = []
    real_dump = _dump_fallback.dump

    def dump(*args: Any) -> Any:
        calls.append(args[1])
        return real_dump(*args)

    monkeypatch.setattr(_dump_fallback, "dump", dump)
    assert EVENT.model_dump(mode=mode, **opts) == want
    assert EVENT.model_dump_json(indent=2, **opts) == want_json
    # Without pydantic, the fallback answers what the native dump does not.
    assert calls == ([] if opts in NATIVE else [mode, "json"])
    # The fallback's own results agree either way.
    fields, factory = _model_api.FIELDS, _model_api._Factory
    assert real_dump(EVENT, mode, dict(opts), fields, factory) == want
    assert _dump_fallback.dump_json(EVENT, {"indent": 2, **opts}, fields, factory) == want_json
