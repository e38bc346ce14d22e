"""A loopback HTTP server that records raw requests and answers from a canned table.

Both SDK implementations are pointed at the same recorder, so they receive byte-identical
answers and their requests can be compared field by field.
"""

from __future__ import annotations

import contextlib
import http
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One request exactly as it arrived on the socket."""

    method: str
    target: str  # raw request target, e.g. "/v1/runs?release_id=a&window=1h" (absolute if proxied)
    path: str  # target before "?"
    query: str  # raw query string after "?" ("" when absent)
    has_query_mark: bool  # whether the target contained "?" at all
    headers: list[tuple[str, str]]  # in wire order, original capitalisation
    body: bytes

    def header(self, name: str) -> str | None:
        """Value of the header ``name`` (case-insensitive); joined with ", " if repeated."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def header_count(self, name: str) -> int:
        return sum(1 for k, _ in self.headers if k.lower() == name.lower())

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` for an empty body."""
        return json.loads(self.body) if self.body else None

    def json_pairs(self) -> Any:
        """The body parsed as JSON with objects as ``[(key, value), ...]`` (keeps key order)."""
        return json.loads(self.body, object_pairs_hook=list) if self.body else None


@dataclass(frozen=True)
class Canned:
    """A canned answer."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    body: bytes = b"{}"

    @classmethod
    def json(cls, obj: Any, status: int = 200, **extra: str) -> Canned:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        hdrs = (("Content-Type", "application/json"), *extra.items())
        return cls(status=status, headers=hdrs, body=data)


Responder = Canned | Callable[[RecordedRequest], Canned]

NDJSON_BODY = (
    b'{"agent_id": "agent_support", "run_id": "r-1", "timestamp": "2026-05-01T12:00:00Z"}\n'
    b'{"agent_id": "agent_support", "run_id": "r-2", "timestamp": "2026-05-01T12:00:01Z"}\n'
)

EXPORT_HEADERS = (
    ("Content-Type", "application/x-ndjson"),
    ("x-flightdeck-matched-total", "7"),
    ("x-flightdeck-returned", "2"),
    ("x-flightdeck-offset", "3"),
    ("x-flightdeck-truncated", "true"),
    ("x-unrelated", "ignored"),
)


def _inserted_count(req: RecordedRequest) -> Canned:
    payload = req.json() or {}
    return Canned.json({"inserted": len(payload.get("events", []))})


def _action(action: str) -> dict[str, Any]:
    return {
        "action_id": "act_0123456789ab",
        "action": action,
        "release_id": "rel_aaaaaaaaaaaa",
        "agent_id": "agent_support",
        "environment": "local",
        "baseline_release_id": None,
        "promoted_pointer_changed": True,
        "policy": {
            "passed": True,
            "reasons": ["first promotion: no promoted baseline for agent/environment"],
            "evaluated_at": "2026-05-01T12:00:00.123456Z",
        },
    }


def default_table() -> dict[str, Responder]:
    """Realistic canned answers for every SDK endpoint (shapes follow the live server)."""
    return {
        "/health": Canned.json({"status": "ok", "mutation_auth": "loopback", "read_auth": "open"}),
        "/v1/workspace": Canned.json(
            {
                "api_version": "v1",
                "kind": "WorkspacePublic",
                "promotion_requires_approval": False,
                "pricing_catalog_configured": False,
                "server_version": "1.3.0",
            }
        ),
        "/v1/releases": Canned.json(
            {
                "releases": [
                    {
                        "release_id": "rel_aaaaaaaaaaaa",
                        "agent_id": "agent_support",
                        "version": "v1-baseline",
                        "environment": "local",
                        "checksum": "0" * 64,
                        "created_at": "2026-05-01T12:00:00.000001+00:00",
                    }
                ]
            }
        ),
        "/v1/promoted": Canned.json(
            {
                "promoted": [
                    {
                        "agent_id": "agent_support",
                        "environment": "local",
                        "release_id": "rel_aaaaaaaaaaaa",
                    }
                ]
            }
        ),
        "/v1/actions": Canned.json(
            {
                "actions": [
                    {
                        **{k: v for k, v in _action("promote").items() if k != "policy"},
                        "reason": "r é ☃",
                        "policy_passed": False,
                        "policy_reasons": ["candidate cost_per_run_usd 5.000000 exceeds max 4.0"],
                        "created_at": "2026-05-01T12:00:00+00:00",
                        "audit_seq": 2,
                    }
                ]
            }
        ),
        "/v1/promotion-requests": Canned.json({"requests": []}),
        "/v1/runs": Canned.json(
            {
                "release_id": "rel_aaaaaaaaaaaa",
                "offset": 0,
                "limit": 100,
                "matched_total": 0,
                "returned": 0,
                "truncated": False,
                "ratio": 1.5,
                "float_int": 2.0,
                "big": 12345678901234567890,
                "events": [],
            }
        ),
        "/v1/runs/export": Canned(status=200, headers=EXPORT_HEADERS, body=NDJSON_BODY),
        "/v1/events": _inserted_count,
        "/v1/diff": Canned.json(
            {
                "window": "1h",
                "samples": {"baseline_runs": 1, "candidate_runs": 2, "confidence": "HIGH"},
                "metrics": {"delta_cost_per_run_pct": 1.5, "baseline_error_rate": 0.0},
                "policy": {"passed": False, "reasons": ["x"], "evaluated_at": "2026-05-01T12:00Z"},
            }
        ),
        "/v1/promote": Canned.json(_action("promote")),
        "/v1/rollback": Canned.json(_action("rollback")),
        "/v1/promote/request": Canned.json(
            {"request_id": "prq_0123456789ab", "status": "pending", "release_id": "rel_a"}
        ),
        "/v1/promote/confirm": Canned.json(_action("promote")),
    }


@dataclass
class WireRecorder:
    """Threaded HTTP/1.1 server on ``127.0.0.1:0`` recording every request.

    Use as a context manager; ``url`` is ``http://127.0.0.1:<port>``. Unknown paths answer
    404 ``{"detail":"Not Found"}`` like the real server.
    """

    table: dict[str, Responder] = field(default_factory=default_table)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle
    def start(self) -> WireRecorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def setup(self) -> None:
                super().setup()
                # Avoid Nagle / delayed-ACK stalls (~40 ms per request) on loopback.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _read_body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._read_body()
                target = self.path
                # A proxied request carries an absolute-form target (http://host/path?query).
                local = urllib.parse.urlsplit(target)
                local_target = (
                    target
                    if not local.scheme
                    else target[len(f"{local.scheme}://{local.netloc}") :]
                )
                path, mark, query = local_target.partition("?")
                rec = RecordedRequest(
                    method=self.command,
                    target=target,
                    path=path,
                    query=query,
                    has_query_mark=bool(mark),
                    headers=list(self.headers.items()),
                    body=body,
                )
                with recorder._lock:
                    recorder.requests.append(rec)
                    responder = recorder.table.get(path)
                if responder is None:
                    canned = Canned.json({"detail": "Not Found"}, status=404)
                elif isinstance(responder, Canned):
                    canned = responder
                else:
                    canned = responder(rec)
                # Status line, headers and body in a single write.
                phrase = http.HTTPStatus(canned.status).phrase
                lines = [f"HTTP/1.1 {canned.status} {phrase}"]
                lines += [f"{k}: {v}" for k, v in canned.headers]
                lines.append(f"Content-Length: {len(canned.body)}")
                head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                self.wfile.write(head + canned.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WireRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers
    def take(self) -> list[RecordedRequest]:
        """Return and forget the requests recorded so far."""
        with self._lock:
            out, self.requests = self.requests, []
        return out

    def set(self, path: str, responder: Responder) -> None:
        with self._lock:
            self.table[path] = responder

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[RecordedRequest]]:
        """``with rec.capture() as reqs:`` collects the requests made inside the block."""
        self.take()
        box: list[RecordedRequest] = []
        yield box
        box.extend(self.take())


# -------------------------------------------------------------------------------- compare

COMPARED_HEADERS = ("authorization", "content-type")


def wire_view(req: RecordedRequest) -> dict[str, Any]:
    """The parts of a request that must be identical between implementations."""
    return {
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "has_query_mark": req.has_query_mark,
        "json": req.json(),
        **{h: req.header(h) for h in COMPARED_HEADERS},
        **{f"count({h})": req.header_count(h) for h in COMPARED_HEADERS},
    }


def _is_pair(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str)


def first_difference(ref: Any, ours: Any, path: str = "$") -> str | None:
    """Describe where two JSON-like values (``json_pairs`` form allowed) first differ."""
    if type(ref) is not type(ours):
        ref_t, ours_t = type(ref).__name__, type(ours).__name__
        return f"{path}: reference {ref!r} ({ref_t}) != ours {ours!r} ({ours_t})"
    if isinstance(ref, dict):
        ref, ours = list(ref.items()), list(ours.items())
    if isinstance(ref, list | tuple):
        for i, (a, b) in enumerate(zip(ref, ours, strict=False)):
            if _is_pair(a) and _is_pair(b):  # an object member in json_pairs form
                if a[0] != b[0]:
                    return f"{path}: key #{i} is {a[0]!r} in reference, {b[0]!r} in ours"
                found = first_difference(a[1], b[1], f"{path}.{a[0]}")
            else:
                found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(ref) != len(ours):
            return f"{path}: reference has {len(ref)} items, ours {len(ours)}"
        return None
    return None if ref == ours else f"{path}: reference {ref!r} != ours {ours!r}"


def assert_same_request(ref: RecordedRequest, ours: RecordedRequest) -> None:
    """Assert method, path, exact query, JSON body (incl. key order) and auth/CT headers match."""
    a, b = wire_view(ref), wire_view(ours)
    assert b == a, first_difference(a, b)
    assert ours.json_pairs() == ref.json_pairs(), first_difference(
        ref.json_pairs(), ours.json_pairs()
    )


def assert_same_requests(ref: list[RecordedRequest], ours: list[RecordedRequest]) -> None:
    assert len(ours) == len(ref), (
        f"request count differs: reference {len(ref)} {[r.target for r in ref]}, "
        f"ours {len(ours)} {[r.target for r in ours]}"
    )
    for a, b in zip(ref, ours, strict=True):
        assert_same_request(a, b)
