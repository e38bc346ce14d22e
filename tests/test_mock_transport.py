"""Injected ``httpx.Client`` / ``httpx.AsyncClient`` (``client=``): requests go through it.

Upstream tests drive the SDK with ``httpx.MockTransport``; a drop-in replacement must route
every request through an injected client, merge its default headers, ignore its ``base_url``
and leave it open on ``close()`` / ``aclose()``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import TOKEN, Impl, load_impl, make_event, open_client

pytestmark = pytest.mark.timeout(30)

BASE = "http://flightdeck.test:8765"


class Handler:
    """MockTransport handler that records requests and answers per path."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self.answer = answer or self.default_answer

    @staticmethod
    def default_answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/v1/events"):
            n = len(json.loads(request.content)["events"])
            return httpx.Response(200, json={"inserted": n})
        if path.endswith("/v1/runs/export"):
            return httpx.Response(
                200,
                content=b'{"run_id": "r-1"}\n',
                headers={
                    "content-type": "application/x-ndjson",
                    "x-flightdeck-matched-total": "1",
                    "x-flightdeck-returned": "1",
                    "x-flightdeck-offset": "0",
                    "x-flightdeck-truncated": "false",
                },
            )
        return httpx.Response(200, json={"path": path, "ok": True, "f": 1.0})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.seen.append(request)
        return self.answer(request)


def http_client(face: str, handler: Handler, **kwargs: Any) -> Any:
    transport = httpx.MockTransport(handler)
    if face == "sync":
        return httpx.Client(transport=transport, **kwargs)
    return httpx.AsyncClient(transport=transport, **kwargs)


def close_http(http: Any) -> None:
    if isinstance(http, httpx.AsyncClient):
        asyncio.run(http.aclose())
    else:
        http.close()


def view(req: httpx.Request) -> dict[str, Any]:
    return {
        "method": req.method,
        "url": str(req.url),
        "headers": sorted((k.lower(), v) for k, v in req.headers.multi_items()),
        "json": json.loads(req.content) if req.content else None,
    }


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("health", {}),
    ("get_workspace", {}),
    ("list_releases", {}),
    ("list_promoted", {}),
    ("list_actions", {"agent_id": "a b&c/é", "environment": "", "limit": 3}),
    ("list_promotion_requests", {"status": "pending"}),
    ("list_runs", {"release_id": "rel_x", "window": "1h", "trace_id": "t 1", "offset": 2}),
    ("fetch_runs_export_ndjson", {"release_id": "rel_x", "window": "1h"}),
    ("post_diff", {"baseline_release_id": "a", "candidate_release_id": "b", "window": "1h"}),
    ("post_promote", {"release_id": "r", "environment": "e", "window": "1h", "reason": "é"}),
    ("post_rollback", {"release_id": "r", "environment": "e", "window": "1h", "reason": "x"}),
    (
        "post_promote_request",
        {"release_id": "r", "environment": "e", "window": "1h", "reason": "x", "actor": "me"},
    ),
    ("post_promote_confirm", {"request_id": "prq_1", "approval_reason": "ok"}),
]


def run_all(impl: Impl, face: str, token: str | None, **http_kw: Any) -> tuple[list[Any], Handler]:
    handler = Handler()
    http = http_client(face, handler, **http_kw)
    results: list[Any] = []
    try:
        with open_client(impl, face, BASE, api_token=token, client=http) as client:
            for name, kwargs in CALLS:
                results.append(client.call(name, **kwargs))
            results.append(client.ingest_run_events([make_event(impl.RunEvent, "rel_x")]))
            results.append(
                client.ingest_run_events_batch(
                    [make_event(impl.RunEvent, "rel_x", run_id=f"b-{i}") for i in range(3)],
                    chunk_size=2,
                )
            )
    finally:
        close_http(http)
    return results, handler


def strip_events(v: dict[str, Any]) -> dict[str, Any]:
    """Event timestamps/run ids are fresh per call: compare their keys only."""
    if v["json"] and "events" in v["json"]:
        v = {**v, "json": [sorted(e) for e in v["json"]["events"]]}
    return v


@pytest.mark.parametrize("token", [None, TOKEN], ids=["notoken", "token"])
def test_requests_go_through_injected_client(impl: Impl, face: str, token: str | None) -> None:
    http_kw = {"headers": {"X-Custom": "yes"}, "base_url": "http://ignored.invalid/prefix"}
    ref_results, ref_handler = run_all(load_impl("reference"), face, token, **http_kw)
    results, handler = run_all(impl, face, token, **http_kw)
    assert len(handler.seen) == len(CALLS) + 3
    assert [strip_events(view(r)) for r in handler.seen] == [
        strip_events(view(r)) for r in ref_handler.seen
    ]
    for req in handler.seen:
        assert req.headers["x-custom"] == "yes"
        assert str(req.url).startswith(BASE + "/")
        assert req.headers.get("authorization") == (f"Bearer {token}" if token else None)
    assert results == ref_results
    assert results[-2:] == [1, 3]


@pytest.mark.parametrize("token", [None, TOKEN], ids=["notoken", "token"])
def test_injected_authorization_header(impl: Impl, face: str, token: str | None) -> None:
    """The injected client's own Authorization is merged like httpx merges it."""
    seen = {}
    for name in ("reference", impl.name):
        handler = Handler()
        http = http_client(face, handler, headers={"Authorization": "Bearer from-client"})
        try:
            with open_client(load_impl(name), face, BASE, api_token=token, client=http) as c:
                c.health()
                c.post_diff(baseline_release_id="a", candidate_release_id="b", window="1h")
        finally:
            close_http(http)
        seen[name] = [r.headers.get_list("authorization") for r in handler.seen]
    assert seen[impl.name] == seen["reference"]


def test_close_leaves_injected_client_open(impl: Impl, face: str) -> None:
    handler = Handler()
    http = http_client(face, handler)
    try:
        client = open_client(impl, face, BASE, client=http)
        client.health()
        if face == "sync":
            client.client.close()
            client.client.close()
            assert not http.is_closed
            assert client.health()["ok"] is True  # the SDK still works on the open client
        else:
            client.run(client.client.aclose())
            client.run(client.client.aclose())
            assert not http.is_closed
            assert client.health()["ok"] is True
            client.close()
        assert len(handler.seen) == 2
    finally:
        close_http(http)
    assert http.is_closed


def test_status_error_through_injected_client(impl: Impl, face: str) -> None:
    body = {"detail": {"message": "Promotion blocked by policy.", "outcome": {"x": 1}}}
    handler = Handler(lambda request: httpx.Response(409, json=body))
    http = http_client(face, handler)
    try:
        with open_client(impl, face, BASE, client=http, max_retries=3) as client:
            with pytest.raises(httpx.HTTPStatusError) as info:
                client.post_promote(release_id="r", environment="e", window="1h", reason="x")
    finally:
        close_http(http)
    assert len(handler.seen) == 1
    assert info.value.response.status_code == 409
    assert info.value.response.json() == body
    assert info.value.request.url == handler.seen[0].url
    assert str(info.value).startswith(f"Client error '409 Conflict' for url '{BASE}/v1/promote'")


@pytest.mark.parametrize(
    ("error", "method", "ref_calls", "ours_calls"),
    [
        (httpx.ConnectError, "health", 3, 3),
        (httpx.ConnectError, "post_promote", 3, 3),
        (httpx.ReadTimeout, "health", 3, 3),
        (httpx.ReadTimeout, "ingest_run_events", 3, 3),
        (httpx.ReadTimeout, "post_promote", 3, 1),
        (httpx.ReadError, "post_rollback", 3, 1),
        (httpx.RemoteProtocolError, "post_promote_confirm", 3, 1),
    ],
)
def test_transport_errors_through_injected_client(
    impl: Impl,
    face: str,
    error: type[httpx.RequestError],
    method: str,
    ref_calls: int,
    ours_calls: int,
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error("injected failure", request=request)

    handler = Handler(fail)
    http = http_client(face, handler)
    args: dict[str, Any] = {
        "health": dict[str, Any](),
        "ingest_run_events": {"events": [make_event(impl.RunEvent, "rel_x")]},
        "post_promote": {"release_id": "r", "environment": "e", "window": "1h", "reason": "x"},
        "post_rollback": {"release_id": "r", "environment": "e", "window": "1h", "reason": "x"},
        "post_promote_confirm": {"request_id": "prq_1", "approval_reason": "ok"},
    }[method]
    try:
        with open_client(impl, face, BASE, client=http, max_retries=2, retry_backoff_s=0) as c:
            with pytest.raises(httpx.RequestError) as info:
                c.call(method, **args)
    finally:
        close_http(http)
    assert type(info.value) is error
    assert len(handler.seen) == (ours_calls if impl.name == "ours" else ref_calls)
