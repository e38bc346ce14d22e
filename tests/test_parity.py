"""Wire and return-value parity between ``flightdeck.sdk`` (reference) and ``flightdeck_rs.sdk``.

Every SDK method is called by the reference and by ``impl`` (the reference itself, which
validates the harness, or ours) against the same :class:`WireRecorder`, through the sync and
the async face, with and without a token. The recorded requests must agree on method, path,
exact query string, JSON body (values, value types and key order) and the ``Authorization`` /
``Content-Type`` headers; the return values must be equal (including types and key order).
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from conftest import TOKEN, Impl, load_impl, open_client
from wire_recorder import (
    Canned,
    RecordedRequest,
    WireRecorder,
    assert_same_requests,
    first_difference,
)

pytestmark = pytest.mark.timeout(30)

ODD = "a b&c/é"
ODD_ENCODED = "a+b%26c%2F%C3%A9"
NASTY = "x=y+z;100% ~*'\"#?[]{}|^`<> \u2603\U0001f600"

T0 = datetime(2026, 5, 1, 12, 34, 56, tzinfo=UTC)


# ----------------------------------------------------------------------------- case table

Builder = Callable[[Any], tuple[tuple[Any, ...], dict[str, Any]]]


def kw(**kwargs: Any) -> Builder:
    return lambda _run_event: ((), kwargs)


def parity_events(run_event: Any, n: int = 3, prefix: str = "p") -> list[Any]:
    """Deterministic events with aware UTC timestamps that exercise every field."""
    out = []
    for i in range(n):
        out.append(
            run_event(
                timestamp=T0 + timedelta(seconds=i, microseconds=[0, 123000, 500][i % 3]),
                agent_id="agent_support",
                release_id="rel_aaaaaaaaaaaa",
                run_id=f"{prefix}-{i}",
                tenant_id="tenant_é",
                task_id="task_support",
                environment="local",
                type="run_start" if i == 1 else "run_end",
                request={"session_id": "s-1", "trace_id": f"tr-{i}"} if i != 2 else None,
                metrics=(
                    {"latency_ms": 820 + i, "success": i != 1, "error_type": "Timeout" * (i == 1)}
                    if i != 2
                    else {}
                ),
                usage={
                    "model": {
                        "provider": "openai",
                        "model": "gpt-4.1-mini",
                        "input_tokens": 1000,
                        "output_tokens": 500,
                        "cached_input_tokens": 7 * i,
                    },
                    "tools": [{"tool_name": "search", "invocations": 2, "cost_units": 1}]
                    if i == 0
                    else [],
                },
                labels={"team": "helpdesk", "note": "ünïcödé ☃"} if i == 0 else {},
            )
        )
    return out


def events_arg(n: int, *, generator: bool = False, chunk_size: int | None = None) -> Builder:
    def build(run_event: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        events = parity_events(run_event, n)
        arg: Any = (e for e in events) if generator else events
        extra = {} if chunk_size is None else {"chunk_size": chunk_size}
        return (arg,), extra

    return build


RUNS_FULL = {
    "release_id": ODD,
    "window": "",
    "environment": "",
    "tenant_id": NASTY,
    "task_id": None,
    "trace_id": "tr 1",
    "session_id": None,
    "span_id": "é",
    "offset": 3,
    "limit": 1,
}
PROMOTE_KW = {"release_id": "rel_x", "environment": "local", "window": "1h", "reason": "first"}
PROMOTE_ODD = {
    "release_id": ODD,
    "environment": "",
    "window": "garbage",
    "reason": 'multi\nline "quoted" \\ é ☃ \U0001f600',
    "actor": "ci-bot é",
}

CASES: list[tuple[str, str, Builder]] = [
    ("health", "plain", kw()),
    ("get_workspace", "plain", kw()),
    ("list_releases", "plain", kw()),
    ("list_promoted", "plain", kw()),
    ("list_actions", "defaults", kw()),
    ("list_actions", "all", kw(agent_id="agent_support", environment="local", limit=5)),
    ("list_actions", "odd", kw(agent_id=ODD, environment="", limit=1)),
    ("list_actions", "nasty", kw(agent_id=NASTY, environment=None, limit=500)),
    ("list_actions", "nones", kw(agent_id=None, environment=None)),
    ("list_promotion_requests", "defaults", kw()),
    ("list_promotion_requests", "status", kw(status="pending", limit=3)),
    ("list_promotion_requests", "odd", kw(status=ODD)),
    ("list_promotion_requests", "empty", kw(status="", limit=0)),
    ("list_runs", "minimal", kw(release_id="rel_x", window="1h")),
    ("list_runs", "odd", kw(**RUNS_FULL)),
    (
        "list_runs",
        "all-set",
        kw(
            release_id="rel_x",
            window="7d",
            environment="production",
            tenant_id="t",
            task_id="k",
            trace_id="tr",
            session_id="s",
            span_id="sp",
            offset=500000,
            limit=500,
        ),
    ),
    ("fetch_runs_export_ndjson", "minimal", kw(release_id="rel_x", window="1h")),
    ("fetch_runs_export_ndjson", "odd", kw(**RUNS_FULL)),
    (
        "post_diff",
        "minimal",
        kw(baseline_release_id="rel_a", candidate_release_id="rel_b", window="1h"),
    ),
    (
        "post_diff",
        "odd",
        kw(
            baseline_release_id=ODD,
            candidate_release_id=NASTY,
            window="",
            environment="",
            tenant_id=None,
            task_id="é",
        ),
    ),
    ("post_promote", "defaults", kw(**PROMOTE_KW)),
    ("post_promote", "odd", kw(**PROMOTE_ODD)),
    ("post_rollback", "defaults", kw(**PROMOTE_KW)),
    ("post_rollback", "odd", kw(**PROMOTE_ODD)),
    ("post_promote_request", "defaults", kw(**PROMOTE_KW)),
    ("post_promote_request", "odd", kw(**PROMOTE_ODD)),
    ("post_promote_confirm", "defaults", kw(request_id="prq_x", approval_reason="ok")),
    (
        "post_promote_confirm",
        "odd",
        kw(request_id=ODD, approval_reason="é\n\t☃", actor=""),
    ),
    ("ingest_run_events", "three", events_arg(3)),
    ("ingest_run_events", "generator", events_arg(3, generator=True)),
    ("ingest_run_events", "empty", events_arg(0)),
    ("ingest_run_events_batch", "default-chunk", events_arg(3)),
    ("ingest_run_events_batch", "chunked", events_arg(5, chunk_size=2)),
    ("ingest_run_events_batch", "generator", events_arg(4, generator=True, chunk_size=3)),
    ("ingest_run_events_batch", "empty", events_arg(0, chunk_size=1)),
    ("ingest_run_events_batch", "many", events_arg(1100, chunk_size=500)),
]
CASE_IDS = [f"{name}-{label}" for name, label, _ in CASES]
TOKENS = [None, TOKEN]


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def recorder() -> Iterator[WireRecorder]:
    with WireRecorder() as rec:
        yield rec


def typed(obj: Any) -> Any:
    """A comparable form that keeps key order and distinguishes int / float / bool."""
    if isinstance(obj, dict):
        return ("dict", [(k, typed(v)) for k, v in obj.items()])
    if isinstance(obj, list):
        return ("list", [typed(v) for v in obj])
    if isinstance(obj, tuple):
        return ("tuple", [typed(v) for v in obj])
    return (type(obj).__name__, obj)


def run_call(
    impl: Impl, face: str, url: str, rec: WireRecorder, token: str | None, name: str, b: Builder
) -> tuple[Any, list[RecordedRequest]]:
    args, kwargs = b(impl.RunEvent)
    with open_client(impl, face, url, api_token=token) as client:
        rec.take()
        result = client.call(name, *args, **kwargs)
        reqs = rec.take()
    return result, reqs


_REF_CACHE: dict[tuple[Any, ...], tuple[Any, list[RecordedRequest]]] = {}


def reference_call(
    face: str, url: str, rec: WireRecorder, token: str | None, case: int
) -> tuple[Any, list[RecordedRequest]]:
    key = (face, url, token, case)
    if key not in _REF_CACHE:
        name, _, b = CASES[case]
        _REF_CACHE[key] = run_call(load_impl("reference"), face, url, rec, token, name, b)
    return _REF_CACHE[key]


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("token", TOKENS, ids=["notoken", "token"])
@pytest.mark.parametrize("case", range(len(CASES)), ids=CASE_IDS)
def test_method_parity(
    impl: Impl, face: str, token: str | None, case: int, recorder: WireRecorder
) -> None:
    name, _, builder = CASES[case]
    ref_result, ref_reqs = reference_call(face, recorder.url, recorder, token, case)
    result, reqs = run_call(impl, face, recorder.url, recorder, token, name, builder)
    assert_same_requests(ref_reqs, reqs)
    assert result == ref_result
    assert typed(result) == typed(ref_result)


def test_reference_wire_facts(recorder: WireRecorder) -> None:
    """Anchor the harness to documented reference behaviour (wire contract sections 3-4)."""
    ref = load_impl("reference")
    _, reqs = run_call(ref, "sync", recorder.url, recorder, TOKEN, "list_runs", kw(**RUNS_FULL))
    (req,) = reqs
    assert req.method == "GET" and req.path == "/v1/runs"
    assert req.query == (
        f"release_id={ODD_ENCODED}&window=&limit=1&offset=3&environment="
        "&tenant_id=x%3Dy%2Bz%3B100%25+~%2A%27%22%23%3F%5B%5D%7B%7D%7C%5E%60%3C%3E+%E2%98%83"
        "%F0%9F%98%80&trace_id=tr+1&span_id=%C3%A9"
    )
    assert req.header("authorization") == f"Bearer {TOKEN}"
    assert req.header("content-type") is None
    _, reqs = run_call(ref, "sync", recorder.url, recorder, None, "post_promote", kw(**PROMOTE_KW))
    (req,) = reqs
    assert req.header("authorization") is None
    assert req.header("content-type") == "application/json"
    assert req.body == (
        b'{"release_id":"rel_x","environment":"local","window":"1h","reason":"first","actor":"sdk"}'
    )


@pytest.mark.parametrize(
    ("name", "label"),
    [("post_diff", "odd"), ("post_promote", "odd"), ("ingest_run_events", "three")],
)
def test_json_body_bytes_identical(
    impl: Impl, face: str, name: str, label: str, recorder: WireRecorder
) -> None:
    """Compact separators, UTF-8 without ``\\u`` escapes, same float rendering (contract §4)."""
    case = CASE_IDS.index(f"{name}-{label}")
    _, ref_reqs = reference_call(face, recorder.url, recorder, None, case)
    _, reqs = run_call(impl, face, recorder.url, recorder, None, name, CASES[case][2])
    assert [r.body for r in reqs] == [r.body for r in ref_reqs]


@pytest.mark.parametrize("token", ["", None], ids=["empty", "none"])
def test_falsy_token_sends_no_authorization(
    impl: Impl, face: str, token: str | None, recorder: WireRecorder
) -> None:
    """``api_token=""`` counts as no token (contract §3), for GETs and POSTs."""
    for name, builder in [("health", kw()), ("post_promote", kw(**PROMOTE_KW))]:
        _, reqs = run_call(impl, face, recorder.url, recorder, token, name, builder)
        assert [r.header("authorization") for r in reqs] == [None]


@pytest.mark.parametrize(
    ("suffix", "expected_path"),
    [("", "/health"), ("/", "/health"), ("///", "/health"), ("/prefix/", "/prefix/health")],
)
def test_base_url_joining(
    impl: Impl, face: str, suffix: str, expected_path: str, recorder: WireRecorder
) -> None:
    recorder.set("/prefix/health", Canned.json({"status": "ok", "prefixed": True}))
    result, reqs = run_call(impl, face, recorder.url + suffix, recorder, None, "health", kw())
    assert [r.path for r in reqs] == [expected_path]
    assert result["status"] == "ok"


# ----------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("timestamp", "reference_wire", "ours_wire"),
    [
        (T0, "2026-05-01T12:34:56Z", "2026-05-01T12:34:56Z"),
        (
            T0.replace(microsecond=123000),
            "2026-05-01T12:34:56.123000Z",
            "2026-05-01T12:34:56.123000Z",
        ),
        (
            datetime(2026, 5, 1, 14, 34, 56, tzinfo=timezone(timedelta(hours=2))),
            "2026-05-01T14:34:56+02:00",
            "2026-05-01T12:34:56Z",
        ),
        (
            datetime(2026, 5, 1, 7, 4, 56, 500, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2026-05-01T07:04:56.000500-05:30",
            "2026-05-01T12:34:56.000500Z",
        ),
        (datetime(2026, 5, 1, 12, 34, 56), "2026-05-01T12:34:56", "2026-05-01T12:34:56Z"),
        (
            datetime(2026, 1, 2, 0, 0, 0, 1),
            "2026-01-02T00:00:00.000001",
            "2026-01-02T00:00:00.000001Z",
        ),
    ],
    ids=["utc", "utc-micro", "plus0200", "minus0530-micro", "naive", "naive-micro"],
)
def test_event_timestamp_on_the_wire(
    impl: Impl,
    face: str,
    timestamp: datetime,
    reference_wire: str,
    ours_wire: str,
    recorder: WireRecorder,
) -> None:
    """Known, intended difference: ours sends every timestamp as the UTC instant with ``Z``
    (the server compares timestamps as text, so offsets would hide events); the reference
    keeps the offset and leaves naive timestamps without a suffix."""
    event = impl.RunEvent(
        timestamp=timestamp,
        agent_id="agent_support",
        release_id="rel_x",
        run_id="ts-1",
        tenant_id="t",
        task_id="k",
        environment="local",
        usage={
            "model": {"provider": "openai", "model": "m", "input_tokens": 1, "output_tokens": 2}
        },
    )
    with open_client(impl, face, recorder.url) as client:
        recorder.take()
        assert client.ingest_run_events([event]) == 1
        (req,) = recorder.take()
    expected = ours_wire if impl.name == "ours" else reference_wire
    assert req.json()["events"][0]["timestamp"] == expected


# ----------------------------------------------------------------------------- chunking


def _chunk_sizes(reqs: list[RecordedRequest]) -> list[int]:
    assert all(r.method == "POST" and r.path == "/v1/events" for r in reqs)
    return [len(r.json()["events"]) for r in reqs]


def test_batch_five_events_chunk_two(impl: Impl, face: str, recorder: WireRecorder) -> None:
    events = parity_events(impl.RunEvent, 5)
    with open_client(impl, face, recorder.url) as client:
        recorder.take()
        total = client.ingest_run_events_batch(events, chunk_size=2)
        reqs = recorder.take()
    assert total == 5 and type(total) is int
    assert _chunk_sizes(reqs) == [2, 2, 1]
    run_ids = [e["run_id"] for r in reqs for e in r.json()["events"]]
    assert run_ids == [f"p-{i}" for i in range(5)]


@pytest.mark.parametrize("chunk_size", [0, -1])
def test_batch_rejects_bad_chunk_size_before_any_request(
    impl: Impl, face: str, chunk_size: int, recorder: WireRecorder
) -> None:
    touched: list[int] = []

    def gen() -> Iterator[Any]:
        touched.append(1)
        yield from parity_events(impl.RunEvent, 2)

    with open_client(impl, face, recorder.url) as client:
        recorder.take()
        with pytest.raises(ValueError, match=r"^chunk_size must be > 0$"):
            client.ingest_run_events_batch(gen(), chunk_size=chunk_size)
        assert recorder.take() == []
    assert touched == []


@pytest.mark.parametrize("method", ["ingest_run_events", "ingest_run_events_batch"])
@pytest.mark.parametrize("generator", [False, True], ids=["list", "generator"])
def test_empty_ingest_makes_no_request(
    impl: Impl, face: str, method: str, generator: bool, recorder: WireRecorder
) -> None:
    events: Any = iter([]) if generator else []
    with open_client(impl, face, recorder.url) as client:
        recorder.take()
        assert client.call(method, events) == 0
        assert recorder.take() == []


def test_batch_failure_in_later_chunk_propagates(
    impl: Impl, face: str, recorder: WireRecorder
) -> None:
    """Earlier chunks stay sent; the status error of the failing chunk propagates."""
    calls: list[int] = []

    def responder(req: RecordedRequest) -> Canned:
        calls.append(1)
        if len(calls) == 2:
            return Canned.json({"detail": "boom"}, status=500)
        return Canned.json({"inserted": len(req.json()["events"])})

    recorder.set("/v1/events", responder)
    try:
        with open_client(impl, face, recorder.url, max_retries=3) as client:
            recorder.take()
            with pytest.raises(httpx.HTTPStatusError) as info:
                client.ingest_run_events_batch(parity_events(impl.RunEvent, 5), chunk_size=2)
            reqs = recorder.take()
    finally:
        recorder.set("/v1/events", lambda r: Canned.json({"inserted": len(r.json()["events"])}))
    assert info.value.response.status_code == 500
    assert _chunk_sizes(reqs) == [2, 2]  # 5xx is not retried and the third chunk is never sent


# ----------------------------------------------------------------------------- signatures


def _normalise(sig: str) -> str:
    """Drop module qualifiers and spaces so ``httpx.Client`` == ``Client`` on both sides."""
    sig = re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", sig)
    sig = sig.replace("'", "").replace('"', "")
    return re.sub(r"\s+", "", sig)


def _public(cls: type) -> list[str]:
    return sorted(n for n in vars(cls) if not n.startswith("_")) + ["__init__"]


REF_SDK = importlib.import_module("flightdeck.sdk")
SIG_CASES = [
    (cls_name, member)
    for cls_name in ("FlightdeckClient", "AsyncFlightdeckClient")
    for member in _public(getattr(REF_SDK, cls_name))
]


@pytest.fixture(scope="module")
def ours_sdk() -> Any:
    return importlib.import_module("flightdeck_rs.sdk")


@pytest.mark.parametrize(("cls_name", "member"), SIG_CASES, ids=[f"{c}.{m}" for c, m in SIG_CASES])
def test_signature_parity(cls_name: str, member: str, ours_sdk: Any) -> None:
    ref_fn = getattr(getattr(REF_SDK, cls_name), member)
    ours_fn = getattr(getattr(ours_sdk, cls_name), member, None)
    assert ours_fn is not None, f"{cls_name}.{member} is missing"
    ref_sig, ours_sig = inspect.signature(ref_fn), inspect.signature(ours_fn)
    # Names, kinds and defaults must match exactly; annotations up to module qualifiers.
    assert [(p.name, p.kind, p.default) for p in ours_sig.parameters.values()] == [
        (p.name, p.kind, p.default) for p in ref_sig.parameters.values()
    ]
    assert _normalise(str(ours_sig)) == _normalise(str(ref_sig))


@pytest.mark.parametrize(("cls_name", "member"), SIG_CASES, ids=[f"{c}.{m}" for c, m in SIG_CASES])
def test_coroutine_parity(cls_name: str, member: str, ours_sdk: Any) -> None:
    ref_fn = getattr(getattr(REF_SDK, cls_name), member)
    ours_fn = getattr(getattr(ours_sdk, cls_name), member)
    expected = cls_name == "AsyncFlightdeckClient" and member != "__init__"
    assert inspect.iscoroutinefunction(ref_fn) is expected  # harness sanity
    assert inspect.iscoroutinefunction(ours_fn) is expected


def test_module_surface(ours_sdk: Any) -> None:
    assert {"FlightdeckClient", "AsyncFlightdeckClient"} <= set(ours_sdk.__all__)
    for cls_name in ("FlightdeckClient", "AsyncFlightdeckClient"):
        missing = set(_public(getattr(REF_SDK, cls_name))) - set(dir(getattr(ours_sdk, cls_name)))
        assert not missing, f"{cls_name} lacks {sorted(missing)}"


def test_export_headers_exact_keys(impl: Impl, face: str, recorder: WireRecorder) -> None:
    body, headers = run_call(
        impl,
        face,
        recorder.url,
        recorder,
        None,
        "fetch_runs_export_ndjson",
        kw(release_id="rel_x", window="1h"),
    )[0]
    assert type(body) is bytes
    assert list(headers.items()) == [
        ("X-Flightdeck-Matched-Total", "7"),
        ("X-Flightdeck-Returned", "2"),
        ("X-Flightdeck-Offset", "3"),
        ("X-Flightdeck-Truncated", "true"),
    ]
    assert [json.loads(line)["run_id"] for line in body.splitlines()] == ["r-1", "r-2"]


# ----------------------------------------------------------------------------- models on the wire


def _models(impl: Impl) -> Any:
    return importlib.import_module(
        "flightdeck.models" if impl.name == "reference" else "flightdeck_rs.models"
    )


def _wire_events(impl: Impl, face: str, recorder: WireRecorder, events: list[Any]) -> Any:
    with open_client(impl, face, recorder.url) as client:
        recorder.take()
        client.ingest_run_events(events)
        (req,) = recorder.take()
    return req.json_pairs()


def _base_event(impl: Impl) -> Any:
    return parity_events(impl.RunEvent, 1)[0]


def test_nested_model_instances(impl: Impl, face: str, recorder: WireRecorder) -> None:
    """Events built from the nested model classes serialise like the reference's."""

    def build(which: Impl) -> Any:
        m = _models(which)
        return which.RunEvent(
            timestamp=T0,
            agent_id="agent_support",
            release_id="rel_x",
            run_id="nested-1",
            tenant_id="t",
            task_id="k",
            environment="local",
            request=m.RunEventRequest(trace_id="tr", span_id="sp"),
            metrics=m.RunEventMetrics(latency_ms=12, success=False, error_type="E"),
            usage=m.RunEventUsage(
                model=m.RunEventModelUsage(
                    provider="openai", model="gpt-4.1-mini", input_tokens=3, output_tokens=4
                ),
                tools=[m.RunEventToolUsage(tool_name="search", invocations=1, cost_units=0.25)],
            ),
            labels={"a": "b"},
        )

    ref = load_impl("reference")
    expected = _wire_events(ref, face, recorder, [build(ref)])
    assert _wire_events(impl, face, recorder, [build(impl)]) == expected


MUTATIONS: dict[str, Callable[[Any, Any], None]] = {
    "top-level-str": lambda e, m: setattr(e, "run_id", "mutated"),
    "top-level-model": lambda e, m: setattr(e, "request", m.RunEventRequest(trace_id="new")),
    "nested-attr": lambda e, m: setattr(e.metrics, "latency_ms", 7),
    "deep-nested-attr": lambda e, m: setattr(e.usage.model, "input_tokens", 99),
    "labels-replace": lambda e, m: setattr(e, "labels", {"only": "this"}),
    "tools-replace": lambda e, m: setattr(
        e.usage, "tools", [*e.usage.tools, m.RunEventToolUsage(tool_name="t2")]
    ),
    "tools-item-attr": lambda e, m: setattr(e.usage.tools[0], "invocations", 42),
    "timestamp": lambda e, m: setattr(e, "timestamp", T0 + timedelta(days=1)),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_mutated_event_is_sent_as_mutated(
    impl: Impl, face: str, mutation: str, recorder: WireRecorder
) -> None:
    """RunEvent is mutable (pydantic default config): in-place changes reach the wire."""
    ref = load_impl("reference")
    sent = {}
    for which in (ref, impl):
        event = _base_event(which)
        MUTATIONS[mutation](event, _models(which))
        sent[which.name] = _wire_events(which, face, recorder, [event])
    assert sent[impl.name] == sent["reference"], first_difference(
        sent["reference"], sent[impl.name]
    )


# Documented difference (README, compatibility notes): `ev.labels` and `ev.usage.tools` return
# copies, so editing that dict or list in place does not change the event (assign a new one).
IN_PLACE_CONTAINER_EDITS: dict[str, Callable[[Any, Any], None]] = {
    "labels-item": lambda e, m: e.labels.__setitem__("added", "yes"),
    "tools-append": lambda e, m: e.usage.tools.append(m.RunEventToolUsage(tool_name="t2")),
}


@pytest.mark.parametrize("mutation", list(IN_PLACE_CONTAINER_EDITS))
def test_in_place_container_edits(
    impl: Impl, face: str, mutation: str, recorder: WireRecorder
) -> None:
    """The reference sends in-place container edits; ours sends the event unchanged."""
    untouched = _wire_events(impl, face, recorder, [_base_event(impl)])
    event = _base_event(impl)
    IN_PLACE_CONTAINER_EDITS[mutation](event, _models(impl))
    sent = _wire_events(impl, face, recorder, [event])
    if impl.name == "reference":
        assert sent != untouched
    else:
        assert sent == untouched


@pytest.mark.parametrize("method", ["ingest_run_events", "ingest_run_events_batch"])
def test_generator_failing_midway(
    impl: Impl, face: str, method: str, recorder: WireRecorder
) -> None:
    """ingest materialises first (no request); batch streams (chunks before the error go out)."""
    events = parity_events(impl.RunEvent, 3)

    def gen() -> Iterator[Any]:
        yield events[0]
        yield events[1]
        raise RuntimeError("generator failed")

    kwargs = {"chunk_size": 1} if method == "ingest_run_events_batch" else {}
    with open_client(impl, face, recorder.url) as client:
        recorder.take()
        with pytest.raises(RuntimeError, match="generator failed"):
            client.call(method, gen(), **kwargs)
        reqs = recorder.take()
    assert len(reqs) == (2 if method == "ingest_run_events_batch" else 0)


# ----------------------------------------------------------------------------- response decoding

RESPONSE_BODIES: dict[str, tuple[bytes, tuple[tuple[str, str], ...]]] = {
    "numbers": (
        b'{"a":1e-07,"b":1E+20,"c":-0.0,"d":1.7976931348623157e308,"e":2.0,"f":0.1,'
        b'"g":123456789012345678901234567890,"h":-9223372036854775809,"i":0}',
        (("Content-Type", "application/json"),),
    ),
    "escapes": (
        b'{"s":"\\u00e9\\ud83d\\ude00\\/\\"\\\\\\n\\t","raw":"\xc3\xa9\xe2\x98\x83","\\u00fc":1}',
        (("Content-Type", "application/json"),),
    ),
    "top-level-list": (b'[1,"two",{"three":[null,true,false]}]', ()),
    "top-level-string": (b'"just a string"', (("Content-Type", "application/json"),)),
    "top-level-null": (b"null", (("Content-Type", "application/json"),)),
    "whitespace": (b' \r\n\t{ "ws" : [ 1 , 2 ] }\n ', (("Content-Type", "application/json"),)),
    "duplicate-keys": (b'{"dup":1,"other":0,"dup":2}', (("Content-Type", "application/json"),)),
    "key-order": (b'{"z":1,"a":2,"m":{"y":1,"b":2}}', (("Content-Type", "application/json"),)),
    "text-content-type": (b'{"status":"ok"}', (("Content-Type", "text/plain"),)),
}


@pytest.mark.parametrize("case", list(RESPONSE_BODIES))
def test_response_json_decoding(impl: Impl, face: str, case: str, recorder: WireRecorder) -> None:
    body, headers = RESPONSE_BODIES[case]
    recorder.set("/health", Canned(200, headers, body))
    try:
        expected = run_call(
            load_impl("reference"), face, recorder.url, recorder, None, "health", kw()
        )[0]
        result = run_call(impl, face, recorder.url, recorder, None, "health", kw())[0]
    finally:
        recorder.set("/health", Canned.json({"status": "ok"}))
    assert typed(result) == typed(expected)
    assert repr(result) == repr(expected)  # -0.0, big ints, key order


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"a": 1} trailing', b"{'single': 1}"],
    ids=["empty", "text", "extra-data", "single-quotes"],
)
def test_response_not_json(impl: Impl, face: str, body: bytes, recorder: WireRecorder) -> None:
    recorder.set("/health", Canned(200, (("Content-Type", "application/json"),), body))
    try:
        with pytest.raises(json.JSONDecodeError) as info:
            run_call(impl, face, recorder.url, recorder, None, "health", kw())
    finally:
        recorder.set("/health", Canned.json({"status": "ok"}))
    with pytest.raises(json.JSONDecodeError) as ref_info:
        json.loads(body)
    assert (info.value.msg, info.value.pos) == (ref_info.value.msg, ref_info.value.pos)


def test_gzip_response_is_decoded(impl: Impl, face: str, recorder: WireRecorder) -> None:
    payload = {"status": "ok", "pad": "x" * 2000}
    body = gzip.compress(json.dumps(payload).encode())
    headers = (("Content-Type", "application/json"), ("Content-Encoding", "gzip"))
    recorder.set("/health", Canned(200, headers, body))
    ndjson = b'{"run_id": "g-1"}\n' * 50
    export_headers = (("Content-Encoding", "gzip"), ("x-flightdeck-returned", "50"))
    recorder.set("/v1/runs/export", Canned(200, export_headers, gzip.compress(ndjson)))
    try:
        assert run_call(impl, face, recorder.url, recorder, None, "health", kw())[0] == payload
        content, hdrs = run_call(
            impl,
            face,
            recorder.url,
            recorder,
            None,
            "fetch_runs_export_ndjson",
            kw(release_id="r", window="1h"),
        )[0]
        assert content == ndjson  # decoded bytes, like httpx's Response.content
        assert hdrs == {"X-Flightdeck-Returned": "50"}  # only the present headers
    finally:
        recorder.set("/health", Canned.json({"status": "ok"}))
        from wire_recorder import default_table

        recorder.set("/v1/runs/export", default_table()["/v1/runs/export"])


@pytest.mark.parametrize("inserted", ["3", 3.0, 3], ids=["str", "float", "int"])
def test_ingest_return_is_int(impl: Impl, face: str, inserted: Any, recorder: WireRecorder) -> None:
    """``int(resp.json()["inserted"])`` (contract §4): numeric strings and floats become int."""
    recorder.set("/v1/events", Canned.json({"inserted": inserted}))
    try:
        result = run_call(
            impl, face, recorder.url, recorder, None, "ingest_run_events", events_arg(1)
        )[0]
    finally:
        recorder.set("/v1/events", lambda r: Canned.json({"inserted": len(r.json()["events"])}))
    assert result == 3 and type(result) is int


# ----------------------------------------------------------------------------- proxies


PROXY_VARS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


@pytest.mark.parametrize("no_proxy", [None, "flightdeck.invalid"], ids=["proxied", "no_proxy"])
def test_http_proxy_from_environment(
    impl: Impl,
    face: str,
    no_proxy: str | None,
    recorder: WireRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Owned clients honour HTTP_PROXY / NO_PROXY like httpx's ``trust_env=True``."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", recorder.url)
    if no_proxy:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    outcome: dict[str, Any] = {}
    for which in (load_impl("reference"), impl):
        try:
            _, reqs = run_call(
                which, face, "http://flightdeck.invalid:8765", recorder, TOKEN, "health", kw()
            )
            outcome[which.name] = "ok"
        except httpx.ConnectError:
            outcome[which.name] = "ConnectError"
            reqs = recorder.take()
        outcome[which.name + "-seen"] = [
            (r.target, r.header("host"), r.header("authorization")) for r in reqs
        ]
    assert outcome[impl.name] == outcome["reference"]
    assert outcome[impl.name + "-seen"] == outcome["reference-seen"]
    if not no_proxy:
        assert outcome["reference-seen"] == [
            ("http://flightdeck.invalid:8765/health", "flightdeck.invalid:8765", f"Bearer {TOKEN}")
        ]


@pytest.mark.parametrize("events_from", ["reference", "ours"])
def test_events_from_either_models_module(
    impl: Impl, face: str, events_from: str, recorder: WireRecorder
) -> None:
    """Migrating code may mix ``flightdeck.models.RunEvent`` with our client and vice versa."""
    ref = load_impl("reference")
    expected = _wire_events(ref, face, recorder, parity_events(ref.RunEvent, 3))
    events = parity_events(load_impl(events_from).RunEvent, 3)
    assert _wire_events(impl, face, recorder, events) == expected
