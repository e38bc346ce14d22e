"""HTTPS against a local TLS server whose certificate comes from a throwaway test CA (trustme).

* Verification is on by default: neither SDK trusts the test CA out of the box, and a
  refused handshake is ``httpx.ConnectError`` with nothing sent (so no token either).
* The native path trusts extra CAs the way the reference (httpx + certifi) does: through
  ``SSL_CERT_FILE``, read when the client is created (rustls-native-certs in the core, httpx's
  ``create_ssl_context`` in the reference). Those runs happen in a child process so the
  variable is set before anything is imported. The injected path takes
  ``httpx.Client(verify=<ssl.SSLContext>)``.
* A trusted CA does not make a certificate for another host name, or an expired one,
  acceptable.
* The background emitter verifies certificates the same way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import os
import pathlib
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trustme

from conftest import FACES, IMPLS, ClientFace, Impl, load_impl, make_event, open_client
from fault_server import FaultServer, Hang

pytestmark = pytest.mark.timeout(60)

HEALTH = {"status": "ok", "mutation_auth": "bearer", "read_auth": "bearer"}
CA_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR")


# ----------------------------------------------------------------------------- TLS server


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class TlsServer:
    """A threaded HTTPS server on 127.0.0.1 answering ``GET /health`` and ``POST /v1/events``.

    The TLS handshake runs on the connection's own thread, so a client that refuses the
    certificate never blocks other connections. ``seen`` records every HTTP request that got
    through the handshake; ``handshake_failures`` counts the ones that did not.
    """

    cert: trustme.LeafCert
    seen: list[SeenRequest] = field(default_factory=list)
    handshake_failures: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(ctx)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, obj: Any) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with owner._lock:
                    owner.seen.append(SeenRequest(self.command, self.path, headers, body))
                return body

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._record()
                if self.path == "/health":
                    self._answer(200, HEALTH)
                else:
                    self._answer(404, {"detail": "Not Found"})

            def do_POST(self) -> None:  # noqa: N802
                body = self._record()
                if self.path == "/v1/events":
                    self._answer(200, {"inserted": len(json.loads(body)["events"])})
                else:
                    self._answer(404, {"detail": "Not Found"})

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                try:
                    tls = ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    with owner._lock:
                        owner.handshake_failures += 1
                    return
                with tls:
                    super().finish_request(tls, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client hanging up mid-connection is not a server failure

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> TlsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TlsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def failed_handshakes(self, at_least: int, timeout_s: float = 3.0) -> int:
        """Handshake failures so far, after waiting up to ``timeout_s`` for ``at_least``."""
        deadline = time.monotonic() + timeout_s
        while self.handshake_failures < at_least and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.handshake_failures

    def requests(self, token: str | None = None) -> list[SeenRequest]:
        """Requests seen, only those carrying ``Bearer <token>`` when ``token`` is given."""
        with self._lock:
            seen = list(self.seen)
        if token is None:
            return seen
        return [s for s in seen if s.headers.get("authorization") == f"Bearer {token}"]


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    ca_file: pathlib.Path
    good: trustme.LeafCert  # 127.0.0.1 and localhost
    wrong_host: trustme.LeafCert  # only flightdeck.test
    expired: trustme.LeafCert  # 127.0.0.1, expired yesterday

    def client_context(self) -> ssl.SSLContext:
        """What a user would pass to ``httpx.Client(verify=...)``."""
        return ssl.create_default_context(cadata=self.ca.cert_pem.bytes().decode("ascii"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("tls") / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    now = dt.datetime.now(dt.UTC)
    expired = ca.issue_cert(
        "127.0.0.1",
        "localhost",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    return Pki(
        ca,
        ca_file,
        ca.issue_cert("127.0.0.1", "localhost"),
        ca.issue_cert("flightdeck.test"),
        expired,
    )


@pytest.fixture(scope="module")
def servers(pki: Pki) -> Iterator[dict[str, TlsServer]]:
    """One server per certificate, shared by the module (tests tell requests apart by token)."""
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(TlsServer(getattr(pki, name)))
            for name in ("good", "wrong_host", "expired")
        }


@pytest.fixture
def no_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients created in this process see the default trust store only."""
    for name in CA_ENV:
        monkeypatch.delenv(name, raising=False)


def token_for(*parts: str) -> str:
    return "tls-tok-" + "-".join(parts)


def new_httpx_client(face: str, **kwargs: Any) -> httpx.Client | httpx.AsyncClient:
    return httpx.Client(**kwargs) if face == "sync" else httpx.AsyncClient(**kwargs)


def close_httpx_client(face: ClientFace, injected: httpx.Client | httpx.AsyncClient | None) -> None:
    """Closes an injected client (an async one on the face's own event loop)."""
    if isinstance(injected, httpx.AsyncClient):
        face.run(injected.aclose())
    elif injected is not None:
        injected.close()


def assert_certificate_refused(exc: BaseException) -> None:
    assert type(exc) is httpx.ConnectError, repr(exc)
    assert "certificate" in str(exc).lower(), str(exc)


# ----------------------------------------------------------------------------- verification on


@pytest.mark.parametrize("path", ["native", "injected"])
def test_unknown_ca_is_refused_by_default(
    impl: Impl, face: str, path: str, servers: dict[str, TlsServer], no_ca_env: None
) -> None:
    server, token = servers["good"], token_for("default", impl.name, face, path)
    before = server.handshake_failures
    injected = new_httpx_client(face) if path == "injected" else None
    with open_client(impl, face, server.url, api_token=token, client=injected) as client:
        with pytest.raises(httpx.ConnectError) as info:
            client.health()
        with pytest.raises(httpx.ConnectError):
            client.ingest_run_events([make_event(impl.RunEvent, "rel_tls")])
        close_httpx_client(client, injected)
    assert_certificate_refused(info.value)
    assert server.requests(token) == []
    assert server.failed_handshakes(before + 2) >= before + 2


def test_injected_client_with_verify_false_is_the_users_choice(
    servers: dict[str, TlsServer], no_ca_env: None
) -> None:
    """``verify=False`` on an injected client is honoured (it is the caller's client)."""
    ours = load_impl("ours")
    server, token = servers["good"], token_for("noverify")
    with httpx.Client(verify=False) as injected:
        with open_client(ours, "sync", server.url, api_token=token, client=injected) as client:
            assert client.health() == HEALTH
    assert len(server.requests(token)) == 1


# ----------------------------------------------------------------------------- injected path


@pytest.mark.parametrize("cert", ["good", "wrong_host", "expired"])
def test_injected_client_with_test_ca(
    impl: Impl, face: str, cert: str, pki: Pki, servers: dict[str, TlsServer]
) -> None:
    server, token = servers[cert], token_for("injected", impl.name, face, cert)
    injected = new_httpx_client(face, verify=pki.client_context())
    with open_client(impl, face, server.url, api_token=token, client=injected) as client:
        if cert == "good":
            assert client.health() == HEALTH
            assert client.ingest_run_events([make_event(impl.RunEvent, "rel_tls")]) == 1
        else:
            with pytest.raises(httpx.ConnectError) as info:
                client.health()
            assert_certificate_refused(info.value)
        close_httpx_client(client, injected)
    seen = server.requests(token)
    if cert == "good":
        assert [(s.method, s.path) for s in seen] == [("GET", "/health"), ("POST", "/v1/events")]
    else:
        assert seen == []


# ----------------------------------------------------------------------------- native path

# Runs in a child process with SSL_CERT_FILE set before anything is imported. Prints one JSON
# object: per server, the outcome of health() and (on the good server) ingest_run_events().
CHILD = r"""
import asyncio, json, sys
from datetime import UTC, datetime

impl, face, token, urls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if impl == "reference":
    from flightdeck.models import RunEvent
    from flightdeck.sdk import AsyncFlightdeckClient, FlightdeckClient
else:
    from flightdeck_rs.models import RunEvent
    from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

event = RunEvent(
    timestamp=datetime.now(UTC), agent_id="agent_support", release_id="rel_tls",
    run_id="run-tls-" + token, tenant_id="tenant_acme", task_id="task_support",
    environment="local",
    usage={"model": {"provider": "openai", "model": "gpt-4.1-mini",
                     "input_tokens": 1, "output_tokens": 1}},
    metrics={"success": True},
)

def failure(exc):
    return {"error": type(exc).__module__ + "." + type(exc).__qualname__, "message": str(exc)}

async def calls(client, ingest):
    out = {}
    for name in (["health", "ingest"] if ingest else ["health"]):
        try:
            if name == "health":
                result = client.health()
            else:
                result = client.ingest_run_events([event])
            out[name] = {"ok": await result if face == "async" else result}
        except Exception as exc:
            out[name] = failure(exc)
    return out

async def main():
    results = {}
    for name, url in urls.items():
        cls = AsyncFlightdeckClient if face == "async" else FlightdeckClient
        client = cls(url, api_token=token, timeout_s=10.0)
        try:
            results[name] = await calls(client, name == "good")
        finally:
            if face == "async":
                await client.aclose()
            else:
                client.close()
    return results

print(json.dumps(asyncio.run(main())))
"""


@pytest.fixture(scope="module")
def native_outcomes(pki: Pki, servers: dict[str, TlsServer]) -> dict[tuple[str, str], Any]:
    """Outcomes per ``(impl, face)`` of the child runs (started together, collected once)."""
    env = {k: v for k, v in os.environ.items() if k not in CA_ENV}
    env["SSL_CERT_FILE"] = str(pki.ca_file)
    urls = json.dumps({name: srv.url for name, srv in servers.items()})
    procs = {
        (impl, face): subprocess.Popen(
            [sys.executable, "-c", CHILD, impl, face, token_for("native", impl, face), urls],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for impl in IMPLS
        for face in FACES
    }
    outcomes: dict[tuple[str, str], Any] = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=45)
        assert proc.returncode == 0, err
        outcomes[key] = json.loads(out)
    return outcomes


def test_ssl_cert_file_trusts_the_test_ca(
    impl: Impl,
    face: str,
    native_outcomes: dict[tuple[str, str], Any],
    servers: dict[str, TlsServer],
) -> None:
    got = native_outcomes[impl.name, face]["good"]
    assert got == {"health": {"ok": HEALTH}, "ingest": {"ok": 1}}
    seen = servers["good"].requests(token_for("native", impl.name, face))
    assert [(s.method, s.path) for s in seen] == [("GET", "/health"), ("POST", "/v1/events")]
    assert json.loads(seen[1].body)["events"][0]["release_id"] == "rel_tls"


@pytest.mark.parametrize("cert", ["wrong_host", "expired"])
def test_trusted_ca_does_not_excuse_a_bad_certificate(
    impl: Impl,
    face: str,
    cert: str,
    native_outcomes: dict[tuple[str, str], Any],
    servers: dict[str, TlsServer],
) -> None:
    got = native_outcomes[impl.name, face][cert]["health"]
    assert got.get("error") == "httpx.ConnectError", got
    assert "certificate" in got["message"].lower(), got
    assert servers[cert].requests(token_for("native", impl.name, face)) == []


def test_native_outcomes_match_the_reference(native_outcomes: dict[tuple[str, str], Any]) -> None:
    """Same results and exception types for every server (messages are the TLS library's)."""

    def shape(outcome: dict[str, Any]) -> dict[str, Any]:
        return {
            server: {call: r.get("error", r.get("ok")) for call, r in calls.items()}
            for server, calls in outcome.items()
        }

    for face in FACES:
        assert shape(native_outcomes["ours", face]) == shape(native_outcomes["reference", face])


def test_ssl_cert_dir_trusts_the_test_ca(
    face: str, pki: Pki, servers: dict[str, TlsServer], tmp_path: pathlib.Path
) -> None:
    """Ours also reads ``SSL_CERT_DIR`` (any file names; OpenSSL, hence the reference, needs
    ``c_rehash`` names there, so this one is ours only)."""
    (tmp_path / "test-ca.pem").write_bytes(pki.ca.cert_pem.bytes())
    env = {k: v for k, v in os.environ.items() if k not in CA_ENV}
    env["SSL_CERT_DIR"] = str(tmp_path)
    token = token_for("certdir", face)
    urls = json.dumps({"good": servers["good"].url, "wrong_host": servers["wrong_host"].url})
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "ours", face, token, urls],
        env=env,
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["good"] == {"health": {"ok": HEALTH}, "ingest": {"ok": 1}}
    assert got["wrong_host"]["health"].get("error") == "httpx.ConnectError", got
    assert len(servers["good"].requests(token)) == 2
    assert servers["wrong_host"].requests(token) == []


# ----------------------------------------------------------------------------- handshake timeout


@pytest.mark.parametrize(
    "impl_name",
    [
        "reference",
        "ours",
    ],
)
def test_stalled_handshake_is_a_connect_timeout(impl_name: str, face: str) -> None:
    """A peer that accepts TCP but never answers the ClientHello: the handshake is part of
    connecting, so httpx raises ``ConnectTimeout`` (retried even for audit actions)."""
    with FaultServer([[Hang()]]) as fs:
        url = fs.url.replace("http://", "https://")
        with open_client(load_impl(impl_name), face, url, timeout_s=0.5) as client:
            with pytest.raises(httpx.TimeoutException) as info:
                client.health()
    assert type(info.value) is httpx.ConnectTimeout, repr(info.value)


# ----------------------------------------------------------------------------- emitter

EMITTER_CHILD = r"""
import json, sys
from datetime import UTC, datetime
from flightdeck_rs import Emitter

url, token = sys.argv[1], sys.argv[2]
emitter = Emitter(url, api_token=token, atexit_timeout_s=0)
event = {
    "timestamp": datetime.now(UTC).isoformat(), "agent_id": "agent_support",
    "release_id": "rel_tls", "run_id": "run-emit-" + token, "tenant_id": "tenant_acme",
    "task_id": "task_support", "environment": "local",
    "usage": {"model": {"provider": "openai", "model": "gpt-4.1-mini",
                        "input_tokens": 1, "output_tokens": 1}},
    "metrics": {"success": True},
}
accepted = emitter.emit(event)
flushed = emitter.flush(timeout_s=10.0)
stats = emitter.stats()
emitter.close(timeout_s=1.0)
print(json.dumps({"accepted": accepted, "flushed": flushed, "acked": stats["acked"]}))
"""


def test_emitter_trusts_ssl_cert_file(pki: Pki, servers: dict[str, TlsServer]) -> None:
    server, token = servers["good"], token_for("emitter-trusted")
    env = {k: v for k, v in os.environ.items() if k not in CA_ENV}
    env["SSL_CERT_FILE"] = str(pki.ca_file)
    proc = subprocess.run(
        [sys.executable, "-c", EMITTER_CHILD, server.url, token],
        env=env,
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"accepted": True, "flushed": True, "acked": 1}
    seen = server.requests(token)
    assert [(s.method, s.path) for s in seen] == [("POST", "/v1/events")]


def test_emitter_refuses_an_unknown_ca(servers: dict[str, TlsServer], no_ca_env: None) -> None:
    from flightdeck_rs import Emitter

    server, token = servers["good"], token_for("emitter-default")
    before = server.handshake_failures
    emitter = Emitter(server.url, api_token=token, atexit_timeout_s=0, backoff_base_s=0.05)
    try:
        assert emitter.emit(make_event(load_impl("ours").RunEvent, "rel_tls"))
        assert emitter.flush(timeout_s=1.0) is False
        stats = emitter.stats()
    finally:
        emitter.close(timeout_s=0.2)
    assert stats["acked"] == 0
    assert "certificate" in (stats["last_error"] or "").lower(), stats
    assert server.requests(token) == []
    assert server.failed_handshakes(before + 1) > before
