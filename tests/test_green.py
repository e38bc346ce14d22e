"""The sync client under gevent and eventlet monkey-patching: a call waits cooperatively (the
calling greenlet sleeps, the others run) and behaves as without patching.

Patching happens only in child processes (``tests/green_child.py``, a gunicorn gevent worker);
the servers run here, on loopback, with plain threads. No timing bound is tight: 20 greenlets
against a server that answers after ``DELAY`` must finish in well under 20 delays (blocking
calls would take 20).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from conftest import event_kwargs
from fault_server import FaultServer, Hang, Respond, closed_port
from test_trio_anyio import HangingServer

HERE = pathlib.Path(__file__).resolve().parent


def _child_path() -> str:
    """The tests folder, then whatever ``PYTHONPATH`` this process has: the children import
    the same flightdeck_rs as the tests (the installed wheel, unless the caller pointed
    ``PYTHONPATH`` at the sources)."""
    return os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)

DELAY = 0.3
GREENLETS = 24
MODES = ("gevent", "eventlet")
HEALTH = {"status": "ok", "mutation_auth": "loopback", "read_auth": "open"}


class SlowServer(ThreadingHTTPServer):
    """Answers every request after ``delay`` seconds: ``GET`` with the health body, ``POST``
    (``/v1/events``) with ``{"inserted": <events in the body>}``."""

    daemon_threads = True
    request_queue_size = 256  # every greenlet's connection is accepted at once

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.started = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SlowServer

    def _answer(self, payload: dict[str, Any]) -> None:
        with self.server.lock:
            self.server.started += 1
        time.sleep(self.server.delay)
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(HEALTH)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer({"inserted": len(json.loads(body)["events"])})

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def slow_server(delay: float) -> Iterator[SlowServer]:
    srv = SlowServer(delay)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def slow() -> Iterator[SlowServer]:
    with slow_server(DELAY) as srv:
        yield srv


def child(mode: str, scenario: str, timeout_s: float = 120, **args: Any) -> Any:
    env = {**os.environ, "PYTHONPATH": _child_path()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", str(HERE / "green_child.py"), mode, scenario,
         json.dumps(args)],
        capture_output=True, text=True, timeout=timeout_s, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_greenlets_wait_concurrently(mode: str, impl: str, slow: SlowServer) -> None:
    """24 greenlets, one call each, on a server answering after 0.3 s: about one delay in
    total, not 24 (each blocking the hub in turn)."""
    out = child(mode, "fanout", impl=impl, url=slow.url, n=GREENLETS)
    assert out["results"] == [HEALTH] * GREENLETS
    assert out["elapsed"] < 5 * DELAY, out["elapsed"]


@pytest.mark.parametrize("mode", MODES)
def test_errors_map_as_without_patching(mode: str) -> None:
    """Connection refused (after retries), read timeout, an error status and ``close()`` from
    another greenlet during a call raise what they raise without gevent/eventlet."""
    with (
        FaultServer([[Hang()]]) as hang,
        FaultServer([[Respond.json(500, {"detail": "boom"})]]) as status,
    ):
        args = {"refused": f"http://127.0.0.1:{closed_port()}", "hang": hang.url,
                "status": status.url, "impl": "ours"}
        green = child(mode, "errors", **args)
        plain = child("none", "errors", **args)
    assert green == plain
    assert green["refused"][0] == "httpx.ConnectError"
    assert green["timeout"][0] == "httpx.ReadTimeout"
    assert green["status"][0] == "httpx.HTTPStatusError"
    assert green["close_in_flight"][0] == "httpx.ReadError"


@pytest.mark.parametrize("mode", MODES)
def test_emitter_flush_and_close_wait_cooperatively(mode: str, slow: SlowServer) -> None:
    """``flush()`` and ``close()`` wait for a slow server while another greenlet keeps
    ticking; ``emit()`` returns at once."""
    event = json.dumps(event_kwargs("rel_x", seconds_ago=1.0), default=str)
    out = child(mode, "emitter", url=slow.url, event=event)
    assert out["result"]["emitted"] == [True] * 5
    assert out["result"]["flushed"] is True and out["result"]["closed"] is True
    assert out["result"]["emit_s"] < DELAY  # emit never waits on the network
    assert out["stats"] == 6
    # Two requests of 0.3 s each: a hub blocked by them would see no tick at all.
    assert out["ticks"] >= 10, out["ticks"]


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_interrupts_a_waiting_call(mode: str) -> None:
    with FaultServer([[Hang()]]) as hang:
        out = child(mode, "interrupt", impl="ours", hang=hang.url)
    assert out["outcome"] == "KeyboardInterrupt"
    assert out["elapsed"] < 10  # long before the client's 30 s timeout


@pytest.mark.parametrize("mode", MODES)
def test_library_timeout_ends_the_call_and_its_connection(mode: str) -> None:
    """``gevent.Timeout`` (``eventlet.Timeout``) around a call raises as it would around the
    reference's call, and the aborted call's connection is closed before the client is."""
    hanging = HangingServer()
    env = {**os.environ, "PYTHONPATH": _child_path()}
    proc = subprocess.Popen(
        [sys.executable, "-W", "ignore", str(HERE / "green_child.py"), mode, "green_timeout",
         json.dumps({"hang": hanging.url})],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ended"
        deadline = time.monotonic() + 10
        while not hanging.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        closed_before_exit = bool(hanging.closed)
        proc.stdin.write("\n")
        proc.stdin.flush()
        out = json.loads(proc.stdout.read().strip().splitlines()[-1])
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        hanging.stop()
    assert out == {"outcome": "Timeout"}
    assert closed_before_exit


def test_nothing_green_is_imported_without_gevent(slow: SlowServer) -> None:
    out = child("none", "modules", url=slow.url)
    assert out == {name: False for name in out}, out


# ----------------------------------------------------------------------------- gunicorn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
def test_gunicorn_gevent_worker_keeps_answering() -> None:
    """One gevent worker, a Flask view calling our client on a server that answers after 3 s:
    while that request waits, the same worker answers other requests."""
    pytest.importorskip("gunicorn")
    pytest.importorskip("flask")
    with slow_server(3.0) as srv:
        port = _free_port()
        env = {**os.environ, "FDRS_SLOW_URL": srv.url,
               "PYTHONPATH": _child_path()}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1",
             "-b", f"127.0.0.1:{port}", "--chdir", str(HERE), "green_wsgi_app:app"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/fast", timeout=1.0).text == "fast":
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
            slow_result: list[Any] = []
            waiter = threading.Thread(
                target=lambda: slow_result.append(httpx.get(base + "/slow", timeout=30.0))
            )
            waiter.start()
            while srv.started < 1:  # the view's call has reached the slow server
                assert waiter.is_alive()
                time.sleep(0.01)
            fast = [httpx.get(base + "/fast", timeout=30.0).text for _ in range(5)]
            still_waiting = waiter.is_alive()
            waiter.join(30)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert fast == ["fast"] * 5
        assert still_waiting  # answered while /slow was still waiting on the server
        assert slow_result[0].status_code == 200
        assert slow_result[0].json() == HEALTH
