"""Load and event-loop behaviour of our clients against a real ``flightdeck serve``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient


@pytest.mark.timeout(120)
def test_2000_concurrent_calls_on_one_async_client(server: Any) -> None:
    """The reference raises PoolTimeout around 500 concurrent calls; ours completes all."""

    async def scenario() -> list[Any]:
        async with AsyncFlightdeckClient(server.base_url, timeout_s=30.0) as client:
            return await asyncio.gather(
                *(client.health() for _ in range(2000)), return_exceptions=True
            )

    results = asyncio.run(scenario())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert all(r["status"] == "ok" for r in results)


@pytest.mark.timeout(60)
def test_sync_client_inside_a_running_loop(server: Any) -> None:
    """Notebooks run cells inside an asyncio loop: a sync call must still work there."""

    async def scenario() -> dict[str, Any]:
        with FlightdeckClient(server.base_url) as client:
            return client.health()

    assert asyncio.run(scenario())["status"] == "ok"
