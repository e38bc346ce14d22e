"""The retry policy (``src/core/retry.rs``): its two rules, table-driven, through the native
functions the Python paths call; then each caller applying its rule; then the two users of the
delivery rule (the emitter and ``ingest_jsonl``) deciding alike against a real local server.

Timing: only the lower bounds the rules promise (a ``Retry-After`` is waited for) are checked,
never how fast anything is.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import logging
import pathlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import event_kwargs, make_events
from emitter_server import CommitThenReset, EventsServer, Record, ResetMidBody, Sleep, Status
from fault_server import FaultServer, Reset, closed_port
from flightdeck_rs import (
    AsyncFlightdeckClient,
    Emitter,
    FlightdeckClient,
    RunEvent,
    _native,
    _retry,
    helpers,
)

pytestmark = pytest.mark.timeout(120)

NOW = 1_000_000_000.0


def http_date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


# ------------------------------------------------------------------------ the rules, as a table

# (status or httpx class name, Retry-After, delivery decision at attempt 1 with jitter draw 0.5).
# At attempt 1 the backoff ceiling is 1 s (0.5 s doubled), drawn in [0.5, 1]: 0.75 s.
DELIVERY_TABLE: list[tuple[int | str | None, str | None, tuple[str, float]]] = [
    (400, None, ("split", 0.0)),
    (422, None, ("split", 0.0)),
    (413, "5", ("split", 0.0)),
    (401, None, ("give_up", 0.0)),
    (403, None, ("give_up", 0.0)),
    (404, None, ("give_up", 0.0)),
    (409, None, ("split", 0.0)),
    (410, None, ("split", 0.0)),
    (301, None, ("give_up", 0.0)),
    (501, None, ("give_up", 0.0)),
    (408, None, ("retry", 0.75)),
    (425, None, ("retry", 0.75)),
    (429, None, ("retry", 0.75)),
    (429, "2", ("retry", 2.0)),
    (429, " 0.2 ", ("retry", 0.75)),  # Retry-After is a floor, not the delay
    (429, http_date(NOW + 5), ("retry", 5.0)),
    (429, http_date(NOW - 5), ("retry", 0.75)),
    (429, "3600", ("retry", 30.0)),  # clamped to the cap
    (429, "soon", ("retry", 0.75)),
    (429, "-3", ("retry", 0.75)),
    (500, None, ("retry", 0.75)),
    (502, None, ("retry", 0.75)),
    (503, "1", ("retry", 1.0)),
    (504, None, ("retry", 0.75)),
    (599, None, ("retry", 0.75)),
    ("ConnectError", None, ("retry", 0.75)),
    ("ConnectTimeout", None, ("retry", 0.75)),
    ("PoolTimeout", None, ("retry", 0.75)),
    ("ReadTimeout", None, ("retry", 0.75)),
    ("WriteTimeout", None, ("retry", 0.75)),
    ("ReadError", None, ("retry", 0.75)),
    ("WriteError", None, ("retry", 0.75)),
    ("RemoteProtocolError", None, ("retry", 0.75)),
    ("UnsupportedProtocol", None, ("give_up", 0.0)),
    ("LocalProtocolError", None, ("give_up", 0.0)),
    ("DecodingError", None, ("give_up", 0.0)),
    ("TooManyRedirects", None, ("give_up", 0.0)),
    ("InvalidURL", None, ("give_up", 0.0)),
    (None, None, ("give_up", 0.0)),  # not an httpx exception
]
assert len({(w, r) for w, r, _ in DELIVERY_TABLE}) == len(DELIVERY_TABLE)


def delivery(what: int | str | None, retry_after: str | None, **kw: Any) -> tuple[str, float]:
    if isinstance(what, int):
        return _native.delivery_decision(status=what, retry_after=retry_after, now_s=NOW, **kw)
    return _native.delivery_decision(failure=what, now_s=NOW, **kw)


@pytest.mark.parametrize(("what", "retry_after", "want"), DELIVERY_TABLE)
def test_delivery_rule_table(what: int | str | None, retry_after: str | None, want: Any) -> None:
    got = delivery(what, retry_after, attempt=1, unit=0.5)
    assert got == pytest.approx(want)
    # The budget turns retries into give-ups; a split is not a retry.
    spent = delivery(what, retry_after, attempt=2, max_retries=2, unit=0.5)
    assert spent == (want if want[0] == "split" else ("give_up", 0.0))
    assert delivery(what, retry_after, attempt=1, max_retries=2, unit=0.5) == pytest.approx(want)


# (httpx class name, idempotent, retried by the client rule)
CLIENT_TABLE = [
    (name, idempotent, retried)
    for name, never_sent in [
        ("ConnectError", True),
        ("ConnectTimeout", True),
        ("PoolTimeout", True),
        ("UnsupportedProtocol", True),
        ("LocalProtocolError", True),
        ("ReadTimeout", False),
        ("WriteTimeout", False),
        ("ReadError", False),
        ("WriteError", False),
        ("RemoteProtocolError", False),
        ("ProxyError", False),
        ("DecodingError", False),
        ("TooManyRedirects", False),
    ]
    for idempotent, retried in [(True, True), (False, never_sent)]
] + [
    ("HTTPStatusError", True, False),  # a status raises at once (a 503 too)
    ("InvalidURL", True, False),
    (None, True, False),
]


@pytest.mark.parametrize(("name", "idempotent", "retried"), CLIENT_TABLE)
def test_client_rule_table(name: str | None, idempotent: bool, retried: bool) -> None:
    def delay(attempt: int, max_retries: int = 3) -> float | None:
        return _native.client_retry_delay(
            name, idempotent=idempotent, attempt=attempt, max_retries=max_retries, backoff_s=0.25
        )

    if not retried:
        assert [delay(n) for n in range(4)] == [None] * 4
        return
    # retry_backoff_s * 2**n, as the reference sleeps; never capped, never jittered.
    assert [delay(n) for n in range(4)] == [0.25, 0.5, 1.0, None]
    assert delay(20, max_retries=100) == 0.25 * 2**20
    assert delay(0, max_retries=0) is None


def test_delivery_backoff_is_capped_with_equal_jitter() -> None:
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        for unit in (0.0, 0.999):
            action, d = _native.delivery_decision(failure="ReadError", attempt=attempt, unit=unit)
            assert action == "retry"
            assert ceiling / 2 - 1e-9 <= d <= ceiling + 1e-9
    action, d = _native.delivery_decision(
        failure="ReadError", attempt=3, base_s=0.05, cap_s=0.2, unit=0.999
    )
    assert (action, round(d, 3)) == ("retry", 0.2)


def _httpx_request_errors() -> list[type[Exception]]:
    found = [
        obj
        for obj in vars(httpx).values()
        if isinstance(obj, type) and issubclass(obj, httpx.RequestError)
    ]
    assert httpx.ReadError in found and httpx.PoolTimeout in found
    return found


@pytest.mark.parametrize("cls", _httpx_request_errors(), ids=lambda c: c.__name__)
def test_every_httpx_request_error_is_classified(cls: type[Exception]) -> None:
    """The native table knows every ``httpx.RequestError`` class (a transport failure is retried
    by the client rule on an idempotent request), and a subclass is read as its httpx base."""
    exc = cls("boom")
    assert _retry.httpx_class(exc) == cls.__name__
    delay = _retry.client_retry_delay(
        exc, idempotent=True, attempt=0, max_retries=1, backoff_s=0.5
    )
    assert delay == 0.5
    sub = type("Custom" + cls.__name__, (cls,), {})("boom")
    assert _retry.httpx_class(sub) == cls.__name__


def test_the_wrapper_reads_status_and_retry_after_from_the_exception() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/events")
    response = httpx.Response(429, headers={"Retry-After": "7"}, request=request)
    exc = httpx.HTTPStatusError("busy", request=request, response=response)
    assert _retry.delivery(exc, 0, 2) == ("retry", 7.0)
    assert _retry.delivery(exc, 2, 2) == ("give_up", 0.0)
    assert _retry.delivery(ValueError("not transport"), 0, None) == ("give_up", 0.0)
    assert _retry.client_retry_delay(
        exc, idempotent=True, attempt=0, max_retries=3, backoff_s=0.1
    ) is None


# ------------------------------------------------------------------------ each caller, its rule


def _client_failures() -> list[type[Exception]]:
    return [
        httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ReadError,
        httpx.WriteError, httpx.RemoteProtocolError, httpx.UnsupportedProtocol,
    ]


CALLS = {
    "health": ({}, True),
    "post_promote": (
        {"release_id": "r", "environment": "e", "window": "1h", "reason": "x"},
        False,
    ),
}


@pytest.mark.parametrize("face", ["sync", "async"])
@pytest.mark.parametrize("method", list(CALLS))
@pytest.mark.parametrize("cls", _client_failures(), ids=lambda c: c.__name__)
def test_injected_client_path_follows_the_client_rule(
    face: str, method: str, cls: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Around an injected httpx client, an idempotent read and an audit action are attempted
    and slept between exactly as the client rule says."""
    from flightdeck_rs import _runtimes

    kwargs, idempotent = CALLS[method]
    slept: list[float] = []

    async def asleep(d: float) -> None:
        slept.append(d)

    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(_runtimes, "sleep", asleep)
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if cls is httpx.UnsupportedProtocol:
            raise cls("boom")
        raise cls("boom", request=request)  # type: ignore[call-arg]

    want: list[float] = []
    for n in range(3):
        d = _native.client_retry_delay(
            cls.__name__, idempotent=idempotent, attempt=n, max_retries=3, backoff_s=0.01
        )
        if d is None:
            break
        want.append(d)
    transport = httpx.MockTransport(handler)
    if face == "sync":
        with httpx.Client(transport=transport) as hc:
            client = FlightdeckClient(
                "http://127.0.0.1:1", max_retries=3, retry_backoff_s=0.01, client=hc
            )
            with pytest.raises(cls):
                getattr(client, method)(**kwargs)
    else:

        async def run() -> None:
            async with httpx.AsyncClient(transport=transport) as hc:
                client = AsyncFlightdeckClient(
                    "http://127.0.0.1:1", max_retries=3, retry_backoff_s=0.01, client=hc
                )
                call = getattr(client, method)
                assert inspect.iscoroutinefunction(call)
                with pytest.raises(cls):
                    await call(**kwargs)

        asyncio.run(run())
    assert attempts == 1 + len(want), (attempts, want)
    assert slept == want
    never_sent = cls in (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol)
    assert (len(want) == 3) == (idempotent or never_sent)


def test_native_path_follows_the_client_rule(caplog: pytest.LogCaptureFixture) -> None:
    """The native transport retries a refused connection with the rule's delays (reported in
    its retry log lines), and sends an audit action that reached the server once."""
    url = f"http://127.0.0.1:{closed_port()}"
    with caplog.at_level(logging.WARNING, logger="flightdeck_rs.client"):
        with FlightdeckClient(url, max_retries=3, retry_backoff_s=0.01) as client:
            with pytest.raises(httpx.ConnectError):
                client.health()
    delays = [r.args[-1] for r in caplog.records if "retrying" in r.getMessage()]
    assert delays == [
        _native.client_retry_delay(
            "ConnectError", idempotent=True, attempt=n, max_retries=3, backoff_s=0.01
        )
        for n in range(3)
    ]
    with FaultServer([[Reset()]]) as fs:
        with FlightdeckClient(fs.url, max_retries=3, retry_backoff_s=0.01) as client:
            with pytest.raises(httpx.RequestError):
                client.post_promote(release_id="r", environment="e", window="1h", reason="x")
            assert len(fs.seen) == 1
            with pytest.raises(httpx.RequestError):
                client.health()
            assert len(fs.seen) == 1 + 4


class _Failing:
    """An ingest client whose first call raises ``exc``; later calls store the events."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls: list[int] = []

    def ingest_run_events(self, events: list[RunEvent]) -> int:
        self.calls.append(len(events))
        if len(self.calls) == 1:
            raise self.exc
        return len(events)


class _AsyncFailing(_Failing):
    async def ingest_run_events(self, events: list[RunEvent]) -> int:  # type: ignore[override]
        return super().ingest_run_events(events)


def _status_exc(status: int, retry_after: str | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/events")
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    response = httpx.Response(status, json={"detail": "x"}, headers=headers, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


def _jsonl(path: pathlib.Path, n: int) -> pathlib.Path:
    path.write_text("".join(e.model_dump_json() + "\n" for e in make_events(RunEvent, "r", n)))
    return path


def _delay_range(exc: Exception) -> tuple[float, float]:
    """The least and the most the delivery rule sleeps after a first failure with ``exc``."""
    if isinstance(exc, httpx.HTTPStatusError):
        what: dict[str, Any] = {
            "status": exc.response.status_code,
            "retry_after": exc.response.headers.get("retry-after"),
        }
    else:
        what = {"failure": type(exc).__name__}
    low = _native.delivery_decision(**what, attempt=0, unit=0.0)[1]
    high = _native.delivery_decision(**what, attempt=0, unit=1.0)[1]
    return low, high


@pytest.mark.parametrize(
    "exc",
    [_status_exc(s) for s in (400, 401, 404, 408, 409, 413, 422, 425, 429, 500, 501, 502, 503)]
    + [_status_exc(429, "3")]
    + [cls("boom") for cls in _client_failures()],
    ids=lambda e: str(getattr(getattr(e, "response", None), "status_code", type(e).__name__)),
)
@pytest.mark.parametrize("face", ["sync", "async"])
def test_ingest_jsonl_follows_the_delivery_rule(
    exc: Exception, face: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ingest_jsonl`` (and ``aingest_jsonl``) raises, splits or retries (sleeping in the
    rule's range) as the delivery rule decides for the first failure."""
    from flightdeck_rs import _runtimes

    slept: list[float] = []

    async def asleep(d: float) -> None:
        slept.append(d)

    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(_runtimes, "sleep", asleep)
    fake: Any = _Failing(exc) if face == "sync" else _AsyncFailing(exc)
    action, _ = _retry.delivery(exc, 0, 1)
    path = _jsonl(tmp_path / "e.jsonl", 4)

    def ingest() -> Any:
        kw: dict[str, Any] = {"chunk_size": 4, "concurrency": 1, "max_retries": 1}
        if face == "sync":
            return helpers.ingest_jsonl(fake, path, **kw)
        return asyncio.run(helpers.aingest_jsonl(fake, path, **kw))

    if action == "give_up":
        with pytest.raises(type(exc)):
            ingest()
        assert fake.calls == [4]
        return
    summary = ingest()
    assert summary.sent == 4
    if action == "split":
        assert fake.calls == [4, 2, 2] and slept == []
        return
    assert fake.calls == [4, 4] and len(slept) == 1
    low, high = _delay_range(exc)
    assert low <= slept[0] <= high
    hinted = isinstance(exc, httpx.HTTPStatusError) and "retry-after" in exc.response.headers
    assert (low, high) == ((3.0, 3.0) if hinted else (0.25, 0.5))


# ----------------------------------------------- the emitter and ingest_jsonl decide alike

TEMPLATE = event_kwargs("rel_retry_policy", run_id="template")
TEMPLATE["timestamp"] = TEMPLATE["timestamp"].isoformat()
TIMEOUT_S = 0.5

# (name, the first request's fault, the decision both must take, the least wait before the
# second request)
FAULTS: list[tuple[str, Callable[[], Any], str, float]] = [
    ("408", lambda: Status(408), "retry", 0.0),
    ("413", lambda: Status(413), "split", 0.0),
    ("425", lambda: Status(425), "retry", 0.0),
    ("429-seconds", lambda: Status(429, (("Retry-After", "1"),)), "retry", 1.0),
    # HTTP dates have 1 s resolution: "now + 2 s" waits at least about 1 s.
    ("429-http-date", lambda: Status(429, (("Retry-After", http_date(time.time() + 2)),)),
     "retry", 0.85),
    ("500", lambda: Status(500), "retry", 0.0),
    ("501", lambda: Status(501), "give_up", 0.0),
    ("502", lambda: Status(502), "retry", 0.0),
    ("503", lambda: Status(503), "retry", 0.0),
    ("504", lambda: Status(504), "retry", 0.0),
    ("reset-mid-body", lambda: ResetMidBody(), "retry", 0.0),
    ("reset-after-commit", lambda: CommitThenReset(), "retry", 0.0),
    ("timeout", lambda: Sleep(TIMEOUT_S * 4, commit_first=False), "retry", 0.0),
]


def _observed(reqs: list[Record], raised: bool) -> str:
    if raised:
        return "give_up"
    first, second = reqs[0], reqs[1]
    if second.ids == first.ids:
        return "retry"
    if not first.ids and first.action == "reset_mid_body":  # body not read: compare sizes
        return "retry" if second.size == first.size else "split"
    assert second.ids == first.ids[: len(first.ids) // 2], (first.ids, second.ids)
    return "split"


def _emitter_decision(fault: Any, caplog: pytest.LogCaptureFixture) -> tuple[str, float]:
    ids = [f"em-{i}-{time.monotonic_ns()}" for i in range(4)]
    with EventsServer([fault]) as srv:
        em = Emitter(
            srv.url,
            flush_interval_s=0.05,
            backoff_base_s=0.05,
            backoff_max_s=2.0,
            request_timeout_s=TIMEOUT_S,
            atexit_timeout_s=0,
        )
        try:
            with caplog.at_level(logging.WARNING, logger="flightdeck_rs"):
                assert all(em.emit({**TEMPLATE, "run_id": i}) for i in ids)
                assert em.flush(timeout_s=30.0) is True
        finally:
            em.close(2.0)
        reqs = srv.requests()
    assert srv.unique_ids() == set(ids)
    gave_up = "emitter cannot deliver" in caplog.text
    caplog.clear()
    if gave_up:  # it keeps the events and tries again: the same batch, later
        assert reqs[1].ids == reqs[0].ids
    return _observed(reqs, gave_up), reqs[1].t - reqs[0].t


def _ingest_decision(fault: Any, tmp_path: pathlib.Path) -> tuple[str, float]:
    tag = time.monotonic_ns()
    events = [
        RunEvent(**{**event_kwargs("rel_retry_policy"), "run_id": f"in-{i}-{tag}"})
        for i in range(4)
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(e.model_dump_json() + "\n" for e in events))
    raised = False
    with EventsServer([fault]) as srv:
        with FlightdeckClient(srv.url, timeout_s=TIMEOUT_S) as client:
            try:
                summary = client.ingest_jsonl(path, chunk_size=4, concurrency=1, max_retries=1)
            except (httpx.HTTPStatusError, httpx.RequestError):
                raised = True
            else:
                assert summary.sent == 4
        reqs = srv.requests()
        assert raised or srv.unique_ids() == {e.run_id for e in events}
    gap = reqs[1].t - reqs[0].t if len(reqs) > 1 else 0.0
    if raised:
        assert len(reqs) == 1
    return _observed(reqs, raised), gap


@pytest.mark.parametrize(("name", "make", "want", "least_wait"), FAULTS, ids=[f[0] for f in FAULTS])
def test_emitter_and_ingest_jsonl_decide_alike(
    name: str,
    make: Callable[[], Any],
    want: str,
    least_wait: float,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitter, emitter_gap = _emitter_decision(make(), caplog)
    ingest, ingest_gap = _ingest_decision(make(), tmp_path)
    assert emitter == ingest == want, (emitter, ingest)
    if want == "retry":
        assert emitter_gap >= least_wait - 0.01, emitter_gap
        assert ingest_gap >= least_wait - 0.01, ingest_gap


def test_emitter_and_ingest_jsonl_retry_a_refused_connection(tmp_path: pathlib.Path) -> None:
    """The server is down for the first attempt(s): both retry until it is up."""
    srv = EventsServer()
    url = srv.url
    srv.stop_listening()
    try:
        em = Emitter(url, flush_interval_s=0.05, backoff_base_s=0.05, atexit_timeout_s=0)
        assert em.emit({**TEMPLATE, "run_id": f"down-{time.monotonic_ns()}"})
        deadline = time.monotonic() + 10
        while em.stats()["retries"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert em.stats()["state"] == "retrying"
        srv.start_listening()
        assert em.flush(timeout_s=30.0) is True
        em.close(2.0)
    finally:
        srv.stop()
    with pytest.raises(httpx.ConnectError):
        with FlightdeckClient(f"http://127.0.0.1:{closed_port()}") as client:
            client.ingest_jsonl(_jsonl(tmp_path / "e.jsonl", 2), max_retries=1)
    assert _retry.delivery(httpx.ConnectError("x"), 0, 1)[0] == "retry"
