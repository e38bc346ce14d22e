"""The bearer token stays secret: never in ``repr``/``str``, exception messages, tracebacks or
log records, never sent anywhere but the configured server (redirects are not followed), and
a token that cannot work is refused when the client is built, not on the wire.

Scripted loopback servers (``fault_server``) stand in for FlightDeck. Where the reference
(``flightdeck.sdk``) is the contract the tests run both implementations; where ours is meant
to be better (malformed tokens are rejected at construction, and never echoed), the better
behaviour is asserted for ours and the reference's is recorded next to it.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import FACES, IMPLS, ClientFace, Impl, load_impl, make_event, open_client
from fault_server import Drip, FaultServer, Hang, Reset, Respond, Step, closed_port

pytestmark = pytest.mark.timeout(30)

TOKEN = "tkn-Q9xZ7wL2vB5nR8mK"
PATHS = ("native", "injected")
HEALTH = {"status": "ok", "mutation_auth": "bearer", "read_auth": "bearer"}


def injected_client(face: str, **kwargs: Any) -> httpx.Client | httpx.AsyncClient:
    return httpx.Client(**kwargs) if face == "sync" else httpx.AsyncClient(**kwargs)


def client_kwargs(face: str, path: str, **kwargs: Any) -> dict[str, Any]:
    if path == "injected":  # an injected client keeps its own timeout: give it the same one
        kwargs["client"] = injected_client(face, timeout=kwargs.get("timeout_s", 5.0))
    return kwargs


def close_injected(client: ClientFace) -> None:
    """Closes the face's injected httpx client, if any (an async one on the face's loop)."""
    injected = getattr(client.client, "_client", None)
    if isinstance(injected, httpx.AsyncClient):
        client.run(injected.aclose())
    elif isinstance(injected, httpx.Client):
        injected.close()


def everything_shown(exc: BaseException) -> str:
    """What a user or an error reporter can print of an exception (with its chain)."""
    return "\n".join([str(exc), repr(exc), *map(str, exc.args), *traceback.format_exception(exc)])


def log_text(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in records)


def settle(fs: FaultServer, at_least: int) -> int:
    fs.wait_for_requests(at_least)
    time.sleep(0.06)
    return fs.requests_seen()


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger (ours, httpx, httpcore, asyncio) captured at ``DEBUG``."""
    with caplog.at_level(logging.DEBUG):
        yield caplog


# ----------------------------------------------------------------------------- repr / str


@pytest.mark.parametrize("path", PATHS)
def test_client_repr_and_str_hide_the_token(impl: Impl, face: str, path: str) -> None:
    with FaultServer() as fs:
        with open_client(impl, face, fs.url, **client_kwargs(face, path, api_token=TOKEN)) as c:
            shown = [repr(c.client), str(c.client), format(c.client)]
            if impl.name == "ours":
                shown.append(repr(c.client._native))  # the native config object
            close_injected(c)
        assert fs.connections == 0
    for text in shown:
        assert TOKEN not in text


def test_emitter_repr_str_and_stats_hide_the_token() -> None:
    from flightdeck_rs import Emitter, get_emitter

    misconfigured = Respond.json(
        401, {"detail": "Missing or invalid API token for mutation route."}
    )
    with FaultServer([[misconfigured]]) as fs:
        emitters = [
            Emitter(fs.url, api_token=TOKEN, atexit_timeout_s=0, backoff_base_s=0.05),
            get_emitter(fs.url, api_token=TOKEN + "-shared", atexit_timeout_s=0),
        ]
        try:
            emitters[0].emit(make_event(load_impl("ours").RunEvent, "rel_hyg"))
            assert emitters[0].flush(timeout_s=0.5) is False  # 401: kept, not acknowledged
            assert fs.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
            stats = emitters[0].stats()
            assert stats["state"] == "misconfigured"
            shown = [repr(stats)]
            for e in emitters:
                shown += [repr(e), str(e), repr(e._native)]
        finally:
            for e in emitters:
                e.close(timeout_s=0.2)
    for text in shown:
        assert TOKEN not in text


# ----------------------------------------------------------------------------- exceptions and logs

FAILURES: dict[str, tuple[list[list[Step]] | None, type[Exception]]] = {
    "401": (
        [[Respond.json(401, {"detail": "Missing or invalid API token for read route."})]],
        httpx.HTTPStatusError,
    ),
    "403": ([[Respond.json(403, {"detail": "Forbidden"})]], httpx.HTTPStatusError),
    "500": ([[Respond.text(500, "Internal Server Error")]], httpx.HTTPStatusError),
    "refused": (None, httpx.ConnectError),
    "reset": ([[Reset()]], httpx.RequestError),
    "timeout": ([[Hang()]], httpx.ReadTimeout),
}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("path", PATHS)
def test_failures_never_show_the_token(
    impl: Impl, face: str, path: str, failure: str, all_logs: pytest.LogCaptureFixture
) -> None:
    """Exception text, chained tracebacks and every log record (retries included)."""
    script, expected = FAILURES[failure]
    kwargs = client_kwargs(
        face, path, api_token=TOKEN, max_retries=1, retry_backoff_s=0.01, timeout_s=0.3
    )
    with FaultServer(script or [[]]) as fs:
        url = fs.url if script is not None else f"http://127.0.0.1:{closed_port()}"
        with open_client(impl, face, url, **kwargs) as client:
            with pytest.raises(expected) as info:
                client.list_runs(release_id="rel_hyg", window="1h")
            close_injected(client)
        if script is not None:  # the token did go to the configured server
            assert fs.seen and all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in fs.seen)
    assert TOKEN not in everything_shown(info.value)
    assert TOKEN not in log_text(all_logs.records)
    if failure in ("refused", "reset", "timeout") and impl.name == "ours":
        assert "retrying GET /v1/runs" in log_text(all_logs.records)  # the retry was logged


@pytest.mark.parametrize("path", PATHS)
def test_retry_and_slow_call_logs_never_show_the_token(
    face: str, path: str, all_logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightdeck_rs import helpers

    monkeypatch.setattr(helpers, "SLOW_REQUEST_S", 0.2)
    slow_ok = Drip(Respond.json(200, HEALTH), piece=16, interval=0.03)
    kwargs = client_kwargs(face, path, api_token=TOKEN, max_retries=1, retry_backoff_s=0.01)
    with FaultServer([[Reset()], [slow_ok]]) as fs:
        with open_client(load_impl("ours"), face, fs.url, **kwargs) as client:
            assert client.health() == HEALTH
            close_injected(client)
    text = log_text(all_logs.records)
    assert "retrying GET /health" in text and "slow request: GET /health" in text, text
    assert TOKEN not in text


@pytest.mark.parametrize(
    "path",
    [
        "native",
        "injected",
    ],
)
def test_retry_logs_leave_out_the_query_string(
    face: str, path: str, all_logs: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    kwargs = client_kwargs(face, path, api_token=TOKEN, max_retries=1, retry_backoff_s=0.01)
    with open_client(load_impl("ours"), face, url, **kwargs) as client:
        with pytest.raises(httpx.ConnectError):
            client.list_runs(release_id="rel-private-7f3a", window="1h")
        close_injected(client)
    ours = [r for r in all_logs.records if r.name.startswith("flightdeck_rs")]
    text = log_text(ours)
    assert "retrying GET /v1/runs after ConnectError" in text, text
    assert "rel-private-7f3a" not in text and "?" not in text, text




@pytest.mark.parametrize(
    ("impl_name", "path"),
    [
        ("reference", "native"),
        ("reference", "injected"),
        ("ours", "native"),
        ("ours", "injected"),
    ],
)
def test_status_error_carries_the_request_like_httpx(impl_name: str, face: str, path: str) -> None:
    """``exc.request`` is the request that was sent, Authorization included, as httpx builds it;
    the message shows only the status and URL."""
    impl = load_impl(impl_name)
    with FaultServer([[Respond.json(403, {"detail": "Forbidden"})]]) as fs:
        with open_client(impl, face, fs.url, **client_kwargs(face, path, api_token=TOKEN)) as c:
            with pytest.raises(httpx.HTTPStatusError) as info:
                c.health()
            close_injected(c)
    assert info.value.request.headers.get("authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in str(info.value)


# ----------------------------------------------------------------------------- malformed tokens

WHITESPACE_TOKENS = [" " + TOKEN, TOKEN + "\n", "\t" + TOKEN, TOKEN + " "]
NON_ASCII_TOKENS = [TOKEN + "é", TOKEN + "\x00", "to\rk" + TOKEN]


def build(kind: str, url: str, token: str) -> Any:
    """Constructs one kind of token-taking object of ours (never sends anything itself)."""
    from flightdeck_rs import Emitter, get_emitter
    from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

    if kind == "sync-native":
        return FlightdeckClient(url, api_token=token)
    if kind == "sync-injected":
        return FlightdeckClient(url, api_token=token, client=httpx.Client())
    if kind == "async-native":
        return AsyncFlightdeckClient(url, api_token=token)
    if kind == "async-injected":
        return AsyncFlightdeckClient(url, api_token=token, client=httpx.AsyncClient())
    if kind == "emitter":
        return Emitter(url, api_token=token, atexit_timeout_s=0)
    if kind == "get_emitter":
        return get_emitter(url, api_token=token, atexit_timeout_s=0)
    raise AssertionError(kind)


KINDS = ["sync-native", "sync-injected", "async-native", "async-injected", "emitter", "get_emitter"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("token", "reason"),
    [(t, "whitespace") for t in WHITESPACE_TOKENS]
    + [(t, "printable ASCII") for t in NON_ASCII_TOKENS],
    ids=lambda v: repr(v).replace(TOKEN, "T"),
)
def test_unusable_token_is_refused_at_construction(kind: str, token: str, reason: str) -> None:
    with FaultServer() as fs:
        with pytest.raises(ValueError) as info:
            build(kind, fs.url, token)
        if "emitter" in kind:  # give a sender thread, had one started, time to connect
            time.sleep(0.05)
        assert fs.connections == 0  # nothing was sent, not even a connection attempt
    message = str(info.value)
    assert "api_token" in message and reason in message, message
    assert TOKEN not in everything_shown(info.value)


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    ("token", "sent"),
    [
        (" " + TOKEN, "Bearer  " + TOKEN),  # sent as is: the server (which strips) answers 401
        ("\t" + TOKEN, "Bearer \t" + TOKEN),
        (TOKEN + " ", None),  # httpx refuses the header: LocalProtocolError naming the token
        (TOKEN + "\n", None),
        (TOKEN + "é", None),  # UnicodeEncodeError at the first request
    ],
    ids=lambda v: repr(v).replace(TOKEN, "T"),
)
def test_reference_fails_on_the_wire_with_an_unusable_token(
    reference: Impl, face: str, token: str, sent: str | None
) -> None:
    """What ours improves on: the reference accepts these tokens, then sends them or fails per
    request (the LocalProtocolError text even contains the token)."""
    with FaultServer([[Respond.json(200, HEALTH)]]) as fs:
        with open_client(reference, face, fs.url, api_token=token) as client:
            if sent is not None:
                assert client.health() == HEALTH
            else:
                with pytest.raises((httpx.LocalProtocolError, UnicodeEncodeError)) as info:
                    client.health()
                if isinstance(info.value, httpx.LocalProtocolError):
                    assert TOKEN in str(info.value)  # "Illegal header value b'Bearer <token> '"
        settle(fs, 1 if sent else 0)
        assert [s.headers["authorization"] for s in fs.seen] == ([sent] if sent else [])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "token", [None, "", "to k" + TOKEN, TOKEN], ids=["None", "empty", "space", "plain"]
)
def test_authorization_header_matches_the_reference(
    face: str, path: str, token: str | None
) -> None:
    """``None`` and ``""`` send no Authorization at all; other tokens are sent verbatim."""
    sent: dict[str, list[str | None]] = {}
    for name in IMPLS:
        with FaultServer([[Respond.json(200, HEALTH)]]) as fs:
            kwargs = client_kwargs(face, path, api_token=token)
            with open_client(load_impl(name), face, fs.url, **kwargs) as client:
                assert client.health() == HEALTH
                close_injected(client)
            sent[name] = [s.headers.get("authorization") for s in fs.seen]
    assert sent["ours"] == sent["reference"]
    assert sent["ours"] == [f"Bearer {token}" if token else None]


# ----------------------------------------------------------------------------- redirects

REDIRECTS = [(302, "health"), (307, "ingest_run_events"), (308, "post_promote")]


def call(impl: Impl, client: ClientFace, method: str) -> Any:
    if method == "health":
        return client.health()
    if method == "ingest_run_events":
        return client.ingest_run_events([make_event(impl.RunEvent, "rel_hyg")])
    return client.post_promote(release_id="r", environment="e", window="1h", reason="x")


@pytest.mark.parametrize(("status", "method"), REDIRECTS)
@pytest.mark.parametrize("path", PATHS)
def test_redirect_to_another_host_is_not_followed(
    impl: Impl, face: str, path: str, status: int, method: str
) -> None:
    with FaultServer([[Respond.json(200, HEALTH)]]) as other:
        location = f"{other.url}/collect?via=redirect"
        redirect = Respond(status, b"", (("Location", location),))
        with FaultServer([[redirect]]) as fs:
            kwargs = client_kwargs(face, path, api_token=TOKEN, max_retries=2)
            with open_client(impl, face, fs.url, **kwargs) as client:
                with pytest.raises(httpx.HTTPStatusError) as info:
                    call(impl, client, method)
                close_injected(client)
            assert settle(fs, 1) == 1
            assert fs.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
        time.sleep(0.05)
        assert other.connections == 0  # the token never left for the other host
    assert info.value.response.status_code == status
    assert info.value.response.headers["location"] == location
    assert TOKEN not in everything_shown(info.value)


@pytest.mark.parametrize("face", FACES)
def test_injected_client_that_follows_redirects_drops_the_token(face: str) -> None:
    """A caller's ``httpx`` client with ``follow_redirects=True`` is used as given (like the
    reference); httpx strips Authorization when the redirect leaves the origin."""
    seen: dict[str, list[str | None]] = {}
    for name in IMPLS:
        with FaultServer([[Respond.json(200, HEALTH)]]) as other:
            redirect = Respond(302, b"", (("Location", f"{other.url}/health"),))
            with FaultServer([[redirect]]) as fs:
                injected = injected_client(face, follow_redirects=True)
                kwargs = {"api_token": TOKEN, "client": injected}
                with open_client(load_impl(name), face, fs.url, **kwargs) as client:
                    assert client.health() == HEALTH
                    close_injected(client)
                assert fs.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
            seen[name] = [s.headers.get("authorization") for s in other.seen]
    assert seen["ours"] == seen["reference"] == [None]


def test_emitter_does_not_follow_a_redirect() -> None:
    from flightdeck_rs import Emitter

    with FaultServer([[Respond.json(200, {"inserted": 1})]]) as other:
        redirect = Respond(307, b"", (("Location", f"{other.url}/v1/events"),))
        with FaultServer([[redirect]]) as fs:
            emitter = Emitter(fs.url, api_token=TOKEN, atexit_timeout_s=0, backoff_base_s=0.05)
            try:
                assert emitter.emit(make_event(load_impl("ours").RunEvent, "rel_hyg"))
                assert emitter.flush(timeout_s=0.5) is False
                stats = emitter.stats()
            finally:
                emitter.close(timeout_s=0.2)
            assert fs.seen and fs.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
        time.sleep(0.05)
        assert other.connections == 0
    assert stats["acked"] == 0 and stats["state"] == "misconfigured", stats
    assert "307" in (stats["last_error"] or ""), stats
    assert TOKEN not in repr(stats)
