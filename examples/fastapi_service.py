"""A FastAPI service that reports one ``RunEvent`` per request through the background emitter.

The emitter is created in the app's lifespan and closed (flushing what is queued) when the
app shuts down; ``emit()`` only queues, so the endpoint never waits on FlightDeck::

    pip install fastapi uvicorn
    FLIGHTDECK_URL=http://127.0.0.1:8765 FLIGHTDECK_RELEASE_ID=rel_abc \\
        uvicorn examples.fastapi_service:app --port 8000

    curl -X POST 'http://127.0.0.1:8000/answer?question=hello'

FastAPI is imported inside :func:`create_app`, so this module imports without it. (No
``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at run
time, and ``Request`` is a local name of :func:`create_app`.)
"""

import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flightdeck_rs import Emitter, RunEvent

if TYPE_CHECKING:
    from fastapi import FastAPI

AGENT_ID = "agent_support"
MODEL = "gpt-4.1-mini"


def run_event(release_id: str, environment: str, *, latency_ms: int, ok: bool) -> RunEvent:
    """Builds the event describing one handled request.

    Args:
        release_id: The release this service runs.
        environment: Where it runs.
        latency_ms: How long the request took.
        ok: Whether it succeeded.

    Returns:
        A ``run_end`` event with a fresh ``run_id``.
    """
    return RunEvent(
        timestamp=datetime.now(UTC),
        agent_id=AGENT_ID,
        release_id=release_id,
        run_id=f"run-{uuid.uuid4().hex}",
        tenant_id="tenant_demo",
        task_id="task_answer",
        environment=environment,
        metrics={"success": ok, "latency_ms": latency_ms},
        usage={
            "model": {
                "provider": "openai",
                "model": MODEL,
                "input_tokens": 420,
                "output_tokens": 96,
            }
        },
        labels={"service": "fastapi_example"},
    )


def create_app(
    base_url: str | None = None,
    *,
    release_id: str | None = None,
    environment: str | None = None,
    api_token: str | None = None,
) -> "FastAPI":
    """Builds the app.

    Args:
        base_url: FlightDeck server (default: ``$FLIGHTDECK_URL`` or ``http://127.0.0.1:8765``).
        release_id: Release to report (default: ``$FLIGHTDECK_RELEASE_ID``).
        environment: Environment to report (default: ``$FLIGHTDECK_ENVIRONMENT`` or
            ``local``).
        api_token: Bearer token (default: ``$FLIGHTDECK_LOCAL_API_TOKEN``).

    Returns:
        A FastAPI application with ``POST /answer`` and ``GET /emitter``.
    """
    from fastapi import FastAPI, Request

    url = base_url or os.environ.get("FLIGHTDECK_URL", "http://127.0.0.1:8765")
    release = release_id or os.environ.get("FLIGHTDECK_RELEASE_ID", "rel_unknown")
    env = environment or os.environ.get("FLIGHTDECK_ENVIRONMENT", "local")
    token = api_token or os.environ.get("FLIGHTDECK_LOCAL_API_TOKEN") or None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        emitter = Emitter(url, api_token=token, flush_interval_s=0.2)
        app.state.emitter = emitter
        try:
            yield
        finally:
            # Waits (bounded) for queued events to be delivered; never raises on a dead server.
            await emitter.aclose(timeout_s=5.0)

    app = FastAPI(title="flightdeck-rs example service", lifespan=lifespan)

    @app.post("/answer")
    async def answer(question: str, request: Request) -> dict[str, Any]:
        started = time.perf_counter()
        reply = question[::-1]  # stand-in for the real work (an LLM call, ...)
        latency_ms = int((time.perf_counter() - started) * 1000)
        event = run_event(release, env, latency_ms=latency_ms, ok=True)
        queued = request.app.state.emitter.emit(event)
        return {"answer": reply, "run_id": event.run_id, "queued": queued}

    @app.get("/emitter")
    async def emitter_stats(request: Request) -> dict[str, Any]:
        stats: dict[str, Any] = request.app.state.emitter.stats()
        return stats

    return app


_app: "FastAPI | None" = None


def __getattr__(name: str) -> Any:
    """``uvicorn examples.fastapi_service:app`` builds the app on first access."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
