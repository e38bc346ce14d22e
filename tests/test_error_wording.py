"""Transport errors read as httpx words them, side by side with the reference SDK.

Each fault is triggered on 127.0.0.1 (DNS: a ``.invalid`` name, which no resolver can answer)
for the reference (``flightdeck.sdk`` on httpx) and ours (native transport), on both clients.
The exception type and ``str(exc)`` must be the reference's. httpx's two transports word the
same fault differently: the blocking one gives the socket error ("[Errno 111] Connection
refused", "timed out"), the async one (httpcore on anyio) an empty message for timeouts and
broken connections and "All connection attempts failed" for a failed connect; ours follows each.

The one textual difference: OpenSSL's source location at the end of a TLS failure ("(_ssl.c:1006)"
on CPython 3.11, another number on other versions) is not imitated, and the reference's message
is compared without it.

The ``OSError`` at the end of httpx's exception chain (``ConnectionRefusedError``,
``socket.gaierror``, ...) is at the end of ours too, with the same errno.

The literal texts are asserted too (Linux errno numbers and glibc wording), so that a change on
both sides is noticed. No message contains the URL or the token.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme

from conftest import FACES, IMPLS, load_impl, open_client
from fault_server import (
    Close,
    FaultServer,
    Hang,
    Reset,
    Respond,
    Step,
    Truncated,
    closed_port,
)

pytestmark = pytest.mark.timeout(60)

TOKEN = "wording-secret-token"
TIMEOUT = 0.5
SSL_LOCATION = re.compile(r" \(_ssl\.c:\d+\)$")
BODY = b'{"status": "ok", "x": 1}'  # 24 bytes


def failure(impl_name: str, face: str, url: str, timeout_s: float = TIMEOUT) -> BaseException:
    """The exception ``health()`` raises on ``impl``'s native transport."""
    with open_client(load_impl(impl_name), face, url, api_token=TOKEN, timeout_s=timeout_s) as c:
        with pytest.raises(httpx.TransportError) as info:
            c.health()
    return info.value


def both_sides(
    face: str, url: Callable[[], contextlib.AbstractContextManager[str]]
) -> tuple[BaseException, BaseException]:
    """``(reference, ours)`` failures, each against a fresh server from ``url()``."""
    got = []
    for impl in IMPLS:
        with url() as u:
            exc = failure(impl, face, u)
            assert u not in str(exc) and TOKEN not in str(exc), str(exc)
            got.append(exc)
    return got[0], got[1]


def scripted(*steps: Step) -> Callable[[], contextlib.AbstractContextManager[str]]:
    @contextlib.contextmanager
    def url() -> Iterator[str]:
        with FaultServer([list(steps)]) as fs:
            yield fs.url

    return url


@contextlib.contextmanager
def refused() -> Iterator[str]:
    yield f"http://127.0.0.1:{closed_port()}"


@contextlib.contextmanager
def unresolvable() -> Iterator[str]:
    yield "http://nonexistent.invalid:8765"


@contextlib.contextmanager
def raw_server(reply: bytes, read_first: bool = True, scheme: str = "http") -> Iterator[str]:
    """Answers every connection with ``reply`` (after reading the request head) and closes."""
    sock = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    if read_first:
                        conn.recv(65536)
                    conn.sendall(reply)
                    conn.shutdown(socket.SHUT_WR)
                    conn.recv(65536)  # until the client hangs up
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        sock.close()
        t.join(timeout=5)


def same(ref: BaseException, ours: BaseException) -> None:
    assert type(ours) is type(ref), (repr(ref), repr(ours))
    assert str(ours) == SSL_LOCATION.sub("", str(ref)), (str(ref), str(ours))


# ----------------------------------------------------------------------------- the common causes

# name -> (server, exception type, message on the sync face, message on the async face)
CASES: dict[str, tuple[Callable[[], Any], type[Exception], str, str]] = {
    "refused": (
        lambda: refused,
        httpx.ConnectError,
        "[Errno 111] Connection refused",
        "All connection attempts failed",
    ),
    "dns": (
        lambda: unresolvable,
        httpx.ConnectError,
        "[Errno -2] Name or service not known",
        "[Errno -2] Name or service not known",
    ),
    "read-timeout": (lambda: scripted(Hang()), httpx.ReadTimeout, "timed out", ""),
    "reset": (
        lambda: scripted(Reset()),
        httpx.ReadError,
        "[Errno 104] Connection reset by peer",
        "",
    ),
    "reset-mid-body": (
        lambda: scripted(Truncated(Respond(200, BODY), reset=True)),
        httpx.ReadError,
        "[Errno 104] Connection reset by peer",
        "",
    ),
    "closed-without-response": (
        lambda: scripted(Close()),
        httpx.RemoteProtocolError,
        "Server disconnected without sending a response.",
        "Server disconnected without sending a response.",
    ),
    "closed-mid-head": (
        lambda: lambda: raw_server(b"HTTP/1.1 200 OK\r\nContent-Le"),
        httpx.RemoteProtocolError,
        "Server disconnected without sending a response.",
        "Server disconnected without sending a response.",
    ),
    "body-cut-short": (
        lambda: scripted(Truncated(Respond(200, BODY))),
        httpx.RemoteProtocolError,
        "peer closed connection without sending complete message body "
        "(received 14 bytes, expected 24)",
        "peer closed connection without sending complete message body "
        "(received 14 bytes, expected 24)",
    ),
    "chunked-body-cut-short": (
        lambda: (
            lambda: raw_server(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
            )
        ),
        httpx.RemoteProtocolError,
        "peer closed connection without sending complete message body (incomplete chunked read)",
        "peer closed connection without sending complete message body (incomplete chunked read)",
    ),
    "https-to-plain-http": (
        lambda: (
            lambda: raw_server(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                read_first=False,
                scheme="https",
            )
        ),
        httpx.ConnectError,
        "[SSL: WRONG_VERSION_NUMBER] wrong version number",
        "[SSL: WRONG_VERSION_NUMBER] wrong version number",
    ),
}


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("name", list(CASES))
def test_message_is_the_references(name: str, face: str) -> None:
    server, exc_type, sync_text, async_text = CASES[name]
    ref, ours = both_sides(face, server())
    same(ref, ours)
    assert type(ours) is exc_type
    assert str(ours) == (sync_text if face == "sync" else async_text)


def _https(
    url: Callable[[], contextlib.AbstractContextManager[str]],
) -> Callable[[], contextlib.AbstractContextManager[str]]:
    @contextlib.contextmanager
    def https() -> Iterator[str]:
        with url() as u:
            yield u.replace("http://", "https://")

    return https


@pytest.mark.parametrize("face", FACES)
def test_tls_handshake_timeout(face: str) -> None:
    """A peer that never answers the ClientHello. CPython prefixes its source location
    ("_ssl.c:989: The handshake operation timed out"); ours gives the rest."""
    ref, ours = both_sides(face, _https(scripted(Hang())))
    assert type(ref) is type(ours) is httpx.ConnectTimeout
    if face == "sync":
        assert str(ours) == "The handshake operation timed out"
        assert str(ref).endswith(": " + str(ours)), str(ref)
    else:
        assert str(ours) == str(ref) == ""


@pytest.mark.parametrize("face", FACES)
def test_connect_timeout(face: str) -> None:
    """A listener whose accept queue is full: the SYN goes unanswered."""

    @contextlib.contextmanager
    def full_backlog() -> Iterator[str]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(4):
                f = socket.socket()
                f.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    f.connect(listener.getsockname())
                fillers.append(f)
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            for f in fillers:
                f.close()
            listener.close()

    ref, ours = both_sides(face, full_backlog)
    same(ref, ours)


# ----------------------------------------------------------------------------- certificates


@pytest.mark.parametrize("face", FACES)
def test_untrusted_certificate(face: str) -> None:
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with tls_server(ctx) as url:
        ref, ours = both_sides(face, lambda: contextlib.nullcontext(url))
    same(ref, ours)
    assert str(ours) == (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        "unable to get local issuer certificate"
    )


@contextlib.contextmanager
def tls_server(ctx: ssl.SSLContext) -> Iterator[str]:
    """Accepts connections and runs the TLS handshake (which the client may refuse)."""
    sock = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                ctx.wrap_socket(conn, server_side=True).close()
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
        t.join(timeout=5)


# A child process with SSL_CERT_FILE set before anything is imported: the CA is trusted, so
# the failure is about the certificate itself. Prints [type, message] per impl, face and URL.
CHILD = r"""
import asyncio, json, sys
import flightdeck.sdk as reference, flightdeck_rs.sdk as ours

def one(mod, face, url):
    try:
        if face == "sync":
            c = mod.FlightdeckClient(url, timeout_s=10.0)
            try:
                c.health()
            finally:
                c.close()
        else:
            async def main():
                c = mod.AsyncFlightdeckClient(url, timeout_s=10.0)
                try:
                    await c.health()
                finally:
                    await c.aclose()
            asyncio.run(main())
        return None
    except Exception as exc:
        return [type(exc).__name__, str(exc)]

out = {}
for name, url in json.loads(sys.argv[1]).items():
    for face in ("sync", "async"):
        for impl, mod in (("reference", reference), ("ours", ours)):
            out[f"{name}/{face}/{impl}"] = one(mod, face, url)
print(json.dumps(out))
"""


def test_trusted_ca_certificate_failures(tmp_path: Any) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    now = dt.datetime.now(dt.UTC)
    certs = {
        "ip-mismatch": (ca.issue_cert("flightdeck.test"), "127.0.0.1"),
        "name-mismatch": (ca.issue_cert("flightdeck.test"), "localhost"),
        "expired": (
            ca.issue_cert(
                "127.0.0.1",
                not_before=now - dt.timedelta(days=30),
                not_after=now - dt.timedelta(days=1),
            ),
            "127.0.0.1",
        ),
    }
    expected = {
        "ip-mismatch": "IP address mismatch, certificate is not valid for '127.0.0.1'.",
        "name-mismatch": "Hostname mismatch, certificate is not valid for 'localhost'.",
        "expired": "certificate has expired",
    }
    with contextlib.ExitStack() as stack:
        urls = {}
        for name, (cert, host) in certs.items():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert.configure_cert(ctx)
            url = stack.enter_context(tls_server(ctx))
            urls[name] = url.replace("127.0.0.1", host)
        env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
        env["SSL_CERT_FILE"] = str(ca_file)
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(urls)],
            env=env,
            capture_output=True,
            text=True,
            timeout=50,
        )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for name, reason in expected.items():
        for face in FACES:
            ref, ours = got[f"{name}/{face}/reference"], got[f"{name}/{face}/ours"]
            assert ours == [
                "ConnectError",
                f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {reason}",
            ], (name, face, ours)
            location = SSL_LOCATION.search(ref[1])
            assert location is not None, ref
            assert ref == [ours[0], ours[1] + location.group()], (ref, ours)


# ----------------------------------------------------------------------------- body faults

EXPORT_ARGS = {"release_id": "rel_x", "window": "1h"}
BODY_FAULTS = {
    "reset-mid-body": (
        Truncated(Respond(200, BODY), reset=True),
        {"sync": "[Errno 104] Connection reset by peer", "async": ""},
    ),
    "body-cut-short": (
        Truncated(Respond(200, BODY)),
        dict.fromkeys(
            FACES,
            "peer closed connection without sending complete message body "
            "(received 14 bytes, expected 24)",
        ),
    ),
}


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("fault", list(BODY_FAULTS))
@pytest.mark.parametrize("method", ["list_runs", "fetch_runs_export_ndjson"])
def test_body_faults_of_other_calls(method: str, fault: str, face: str) -> None:
    """The export is read as a stream on our side; its failures read the same."""
    step, texts = BODY_FAULTS[fault]
    got = []
    for impl in IMPLS:
        with FaultServer([[step]]) as fs:
            with open_client(load_impl(impl), face, fs.url, timeout_s=TIMEOUT) as c:
                with pytest.raises(httpx.TransportError) as info:
                    c.call(method, **EXPORT_ARGS)
        got.append(info.value)
    same(*got)
    assert str(got[1]) == texts[face]


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("fault", list(BODY_FAULTS))
def test_export_helpers_word_errors_by_face(fault: str, face: str) -> None:
    """``iter_runs_export`` / ``aiter_runs_export`` (ours only) read the body in Rust batches;
    a failure there is worded as the client of that face words it."""
    from flightdeck_rs import helpers

    step, texts = BODY_FAULTS[fault]
    with FaultServer([[step]]) as fs:
        with open_client(load_impl("ours"), face, fs.url, timeout_s=TIMEOUT) as c:
            with pytest.raises(httpx.TransportError) as info:
                if face == "sync":
                    list(helpers.iter_runs_export(c.client, **EXPORT_ARGS))
                else:

                    async def drain() -> None:
                        async for _ in helpers.aiter_runs_export(c.client, **EXPORT_ARGS):
                            pass

                    c.run(drain())
    assert str(info.value) == texts[face], repr(info.value)


# ----------------------------------------------------------------------------- the OS error


def root_os_error(exc: BaseException) -> OSError | None:
    """The last ``OSError`` along ``__cause__`` / ``__context__`` (httpx's own exceptions
    are no ``OSError``)."""
    found, seen = None, set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError):
            found = cur
        cur = cur.__cause__ or cur.__context__
    return found


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("name", ["refused", "dns", "reset", "reset-mid-body"])
def test_the_os_error_is_at_the_end_of_the_chain(name: str, face: str) -> None:
    """Code that walks the exception chain for an errno (``ECONNREFUSED``, ``EAI_NONAME``)
    finds the same OSError subclass and errno on ours as on the reference."""
    ref, ours = both_sides(face, CASES[name][0]())
    ref_os, our_os = root_os_error(ref), root_os_error(ours)
    assert ref_os is not None and our_os is not None, (ref_os, our_os)
    assert type(our_os) is type(ref_os), (ref_os, our_os)
    assert our_os.errno == ref_os.errno
    assert str(our_os) == CASES[name][2]  # "[Errno 111] Connection refused", ...
