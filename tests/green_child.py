"""Child process of ``tests/test_green.py``: monkey-patches with gevent or eventlet (or not),
runs one scenario with the sync client and prints its outcome as JSON on the last line.

    python green_child.py MODE SCENARIO ARGS_JSON

``MODE`` is ``gevent``, ``eventlet`` or ``none``. Monkey-patching happens only here, never in
the pytest process.
"""

from __future__ import annotations

import sys

MODE = sys.argv[1]
if MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif MODE == "eventlet":
    # httpcore imports trio when it is installed, and trio cannot be imported once eventlet
    # has patched socket (GreenSocket has no sendmsg): import it first, for the reference.
    import eventlet
    import httpcore  # noqa: F401

    eventlet.monkey_patch()

import json  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402


def spawn_all(fns: list[Callable[[], Any]]) -> list[Any]:
    """Runs every ``fn()`` concurrently (greenlets, or threads without patching); returns
    results or exceptions in order."""
    out: list[Any] = [None] * len(fns)

    def one(i: int) -> None:
        try:
            out[i] = fns[i]()
        except BaseException as exc:  # noqa: BLE001 - reported
            out[i] = exc

    if MODE == "gevent":
        import gevent

        gevent.joinall([gevent.spawn(one, i) for i in range(len(fns))])
    elif MODE == "eventlet":
        import eventlet

        pool = eventlet.GreenPool(len(fns))
        for i in range(len(fns)):
            pool.spawn(one, i)
        pool.waitall()
    else:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(fns))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return out


def client_cls(impl: str) -> Any:
    if impl == "reference":
        from flightdeck.sdk import FlightdeckClient
    else:
        from flightdeck_rs.sdk import FlightdeckClient
    return FlightdeckClient


def described(value: Any) -> Any:
    if isinstance(value, BaseException):
        return [type(value).__module__ + "." + type(value).__qualname__, str(value)]
    return value


def fanout(args: dict[str, Any]) -> dict[str, Any]:
    client = client_cls(args["impl"])(args["url"], timeout_s=30.0)
    try:
        client.health()  # one connection open before the clock starts, as for every impl
        start = time.perf_counter()
        results = spawn_all([client.health] * args["n"])
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    return {"elapsed": elapsed, "results": [described(r) for r in results]}


def errors(args: dict[str, Any]) -> dict[str, Any]:
    """Each failure as (type, message): the parent compares them with the unpatched run."""
    cls = client_cls(args["impl"])
    out: dict[str, Any] = {}
    for name, url, kw in (
        ("refused", args["refused"], {"max_retries": 2, "retry_backoff_s": 0.01}),
        ("timeout", args["hang"], {"timeout_s": 0.3}),
        ("status", args["status"], {}),
    ):
        client = cls(url, **kw)
        try:
            out[name] = described(client.health())
        except Exception as exc:  # noqa: BLE001 - reported
            out[name] = described(exc)
        finally:
            client.close()
    # close() from another greenlet (thread) while a call waits on a server that never answers
    client = cls(args["hang"], timeout_s=5.0)

    def close_soon() -> None:
        time.sleep(0.3)
        client.close()

    call, _ = spawn_all([client.health, close_soon])
    out["close_in_flight"] = described(call)
    return out


def emitter(args: dict[str, Any]) -> dict[str, Any]:
    """``flush()``/``close()`` wait for a slow server; another greenlet keeps running."""
    from flightdeck_rs import Emitter
    from flightdeck_rs.models import RunEvent

    em = Emitter(args["url"], flush_interval_s=60.0)
    event = json.loads(args["event"])
    ticks = 0
    done = False

    def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            time.sleep(0.01)

    def flush() -> Any:
        nonlocal done
        try:
            started = time.perf_counter()
            emitted = [em.emit(RunEvent(**{**event, "run_id": f"r{i}"})) for i in range(5)]
            emit_s = time.perf_counter() - started
            flushed = em.flush(10.0)
            em.emit(RunEvent(**{**event, "run_id": "r-last"}))
            closed = em.close(10.0)
            return {"emitted": emitted, "emit_s": emit_s, "flushed": flushed, "closed": closed}
        finally:
            done = True

    result, _ = spawn_all([flush, ticker])
    return {"result": described(result), "ticks": ticks, "stats": em.stats()["acked"]}


def interrupt(args: dict[str, Any]) -> dict[str, Any]:
    """Ctrl-C (SIGINT) while the main greenlet waits in a call raises KeyboardInterrupt."""
    client = client_cls(args["impl"])(args["hang"], timeout_s=30.0)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    start = time.perf_counter()
    try:
        client.health()
        outcome: Any = "returned"
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt"
    elapsed = time.perf_counter() - start
    client.close()
    return {"outcome": outcome, "elapsed": elapsed}


def green_timeout(args: dict[str, Any]) -> dict[str, Any]:
    """A ``gevent.Timeout`` / ``eventlet.Timeout`` around a call ends it; the call's
    connection is closed at once (the parent checks, then lets this process exit)."""
    if MODE == "gevent":
        import gevent

        timeout_cls: Any = gevent.Timeout
    else:
        import eventlet

        timeout_cls = eventlet.Timeout
    client = client_cls("ours")(args["hang"], timeout_s=30.0)
    try:
        with timeout_cls(0.3):
            client.health()
        outcome = "returned"
    except timeout_cls:
        outcome = "Timeout"
    print("ended", flush=True)
    sys.stdin.readline()  # the parent has looked at the connection
    client.close()
    return {"outcome": outcome}


def modules(args: dict[str, Any]) -> dict[str, Any]:
    """Sync and async calls without gevent: nothing green (or trio) gets imported."""
    import asyncio

    from flightdeck_rs.sdk import AsyncFlightdeckClient, FlightdeckClient

    with FlightdeckClient(args["url"]) as client:
        client.health()

    async def main() -> None:
        async with AsyncFlightdeckClient(args["url"]) as aclient:
            await aclient.health()

    asyncio.run(main())
    return {
        name: name in sys.modules
        for name in ("gevent", "eventlet", "greenlet", "trio", "sniffio", "anyio")
    }


if __name__ == "__main__":
    scenario = {
        "fanout": fanout,
        "errors": errors,
        "emitter": emitter,
        "interrupt": interrupt,
        "modules": modules,
        "green_timeout": green_timeout,
    }[sys.argv[2]]
    print(json.dumps(scenario(json.loads(sys.argv[3])), default=str))
