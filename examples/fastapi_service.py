"""A FastAPI service that reports one run per request with ``@emitter.track``.

The tracked function is the agent's entry point: each call becomes one ``RunEvent`` (start
time, latency, success or the exception's class name, token usage read from the LLM's
response, tenant from the call's arguments), queued by the background emitter, so the
endpoint never waits on FlightDeck. The app's lifespan closes the emitter (flushing what is
queued) when the app shuts down::

    pip install fastapi uvicorn
    FLIGHTDECK_URL=http://127.0.0.1:8765 FLIGHTDECK_RELEASE_ID=rel_abc \\
        uvicorn examples.fastapi_service:app --port 8000

    curl -X POST 'http://127.0.0.1:8000/answer?question=hello&tenant=tenant_a'

FastAPI is imported inside :func:`create_app`, so this module imports without it. (No
``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at run
time.)
"""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from flightdeck_rs import Emitter, current_run

if TYPE_CHECKING:
    from fastapi import FastAPI

AGENT_ID = "agent_support"
MODEL = "gpt-4.1-mini"


async def call_llm(question: str) -> dict[str, Any]:
    """Stand-in for ``await openai_client.chat.completions.create(...)``: a response shaped
    like OpenAI's chat completion (as ``model_dump()`` gives it)."""
    await asyncio.sleep(0.01)
    prompt_tokens = 400 + len(question)
    return {
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": question[::-1]}}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 96,
            "total_tokens": prompt_tokens + 96,
            "prompt_tokens_details": {"cached_tokens": 256},
        },
    }


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
    from fastapi import FastAPI, HTTPException

    url = base_url or os.environ.get("FLIGHTDECK_URL", "http://127.0.0.1:8765")
    release = release_id or os.environ.get("FLIGHTDECK_RELEASE_ID", "rel_unknown")
    env = environment or os.environ.get("FLIGHTDECK_ENVIRONMENT", "local")
    token = api_token or os.environ.get("FLIGHTDECK_LOCAL_API_TOKEN") or None
    emitter = Emitter(url, api_token=token, flush_interval_s=0.2)

    @emitter.track(
        agent_id=AGENT_ID,
        release_id=release,
        tenant_id=lambda question, tenant: tenant,  # from the call's arguments
        task_id="task_answer",
        environment=env,
        labels={"service": "fastapi_example"},
        provider="openai",  # the model of a run that fails before its LLM call
        model=MODEL,
    )
    async def answer_question(question: str, tenant: str) -> dict[str, str]:
        """The agent: one call is one tracked run."""
        run = current_run()
        if not question.strip():
            raise ValueError("empty question")  # the run is sent with error_type=ValueError
        completion = await call_llm(question)
        if run is not None:
            run.add_usage_from(completion)  # tokens, cached tokens and model of the response
            run.labels["question_chars"] = str(len(question))
        reply = completion["choices"][0]["message"]["content"]
        return {"answer": reply, "run_id": run.run_id if run is not None else ""}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # Waits (bounded) for queued events to be delivered; never raises on a dead server.
            await emitter.aclose(timeout_s=5.0)

    app = FastAPI(title="flightdeck-rs example service", lifespan=lifespan)
    app.state.emitter = emitter

    @app.post("/answer")
    async def answer(question: str, tenant: str = "tenant_demo") -> dict[str, str]:
        try:
            return await answer_question(question, tenant)
        except ValueError as e:
            raise HTTPException(status_code=422, detail=str(e)) from e

    @app.get("/emitter")
    async def emitter_stats() -> dict[str, Any]:
        return emitter.stats()

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
