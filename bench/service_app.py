#!/usr/bin/env python3
"""The service of the benchmark's service rows: a FastAPI app on uvicorn, one worker.

Usage: ``service_app.py IMPL STUB_URL`` with IMPL one of ``reference``, ``ours``, ``limit``
(the contenders of ``bench/run.py``), or ``none``: the same endpoints answering without any
client call (the app's own ceiling on this machine). The app holds one shared async client
of that contender, opened in the lifespan on the server's event loop, and serves:

- ``GET /health``: ``await client.health()``, answered as JSON;
- ``GET /ingest``: builds one event (``RunEvent(**kw)``; the limit anchor a plain dict) with a
  fresh ``run_id`` and answers ``{"inserted": await client.ingest_run_events([event])}``.

It binds a free port on 127.0.0.1, prints ``{"port": ..., "loop": ..., "http": ...}`` on the
first line of stdout, and serves until SIGTERM. uvloop and httptools are used when installed
(what ``uvicorn[standard]`` gives a service), for every contender alike.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import HEALTH_BODY, Contender, Limit, Ours, Reference, event_kwargs  # noqa: E402


class NoClient(Contender):
    """No client at all: the answers a client would return, without a request."""

    name, label = "none", "no client call (the app alone)"

    def event(self, kw: dict[str, Any]) -> Any:
        return kw

    def async_client(self, url: str) -> Any:
        return None

    async def ahealth(self, client: Any) -> Any:
        return dict(HEALTH_BODY)

    async def aingest(self, client: Any, events: list[Any]) -> int:
        return len(events)

    async def aclose(self, client: Any) -> None:
        return None


CONTENDERS: dict[str, type[Contender]] = {
    "reference": Reference,
    "ours": Ours,
    "limit": Limit,
    "none": NoClient,
}


def create_app(impl: str, stub_url: str) -> Any:
    from fastapi import FastAPI

    contender = CONTENDERS[impl]()
    held: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        client = contender.async_client(stub_url)
        held["client"] = client
        try:
            yield
        finally:
            await contender.aclose(client)

    app = FastAPI(lifespan=lifespan)
    ahealth, aingest, make = contender.ahealth, contender.aingest, contender.event
    run_ids = itertools.count()

    @app.get("/health", response_model=None)
    async def health() -> Any:
        return await ahealth(held["client"])

    @app.get("/ingest", response_model=None)
    async def ingest() -> Any:
        event = make(event_kwargs(next(run_ids), "rel_service", f"svc-{impl}"))
        return {"inserted": await aingest(held["client"], [event])}

    return app


def main() -> None:
    import uvicorn

    impl, stub_url = sys.argv[1], sys.argv[2]
    if impl not in CONTENDERS or not stub_url.startswith("http://127.0.0.1:"):
        raise SystemExit("usage: service_app.py reference|ours|limit|none http://127.0.0.1:PORT")
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    http = "httptools" if find_spec("httptools") else "h11"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(impl, stub_url),
        loop=loop,
        http=http,
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="on",
        backlog=2048,
    )
    print(json.dumps({"port": port, "loop": loop, "http": http}), flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
