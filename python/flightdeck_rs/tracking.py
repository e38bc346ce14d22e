"""Track a run in one line: ``with emitter.run(...)`` and ``@emitter.track(...)``.

A run notes its start (an aware UTC timestamp and a monotonic clock), collects model and tool
usage, labels and request ids while it is active, and on exit builds one ``RunEvent`` and hands
it to the emitter (which only queues it). The block's exception, if any, marks the run failed
with the exception's class name and propagates unchanged.

Telemetry never breaks the agent: once a run is active nothing here raises into the caller's
code. Bad values recorded at run time, invalid labels and unsendable events are counted in
:meth:`Emitter.stats` (``track_*`` keys) and logged on the ``flightdeck_rs`` logger. Bad
arguments to :meth:`~TrackingMixin.run` / :meth:`~TrackingMixin.track` themselves (a missing or
non-str id) raise at once.

One model per event (the ``RunEvent`` holds one): when a run used several models, the event
carries the one with the most tokens (input + output + cached; the first one used on a tie),
with only that model's tokens, and the label ``flightdeck.other_models`` lists the others'
usage as JSON. A warning is logged once per process. Nothing is summed across models, so no
model's tokens are priced at another model's price.

This module imports only the standard library (no ``uuid``: run ids come from
``os.urandom``), and never imports OpenTelemetry: spans are read only when the application
has already imported ``opentelemetry.trace``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import operator
import os
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, ParamSpec, Protocol, TypeVar

__all__ = ["OTHER_MODELS_LABEL", "Run", "TrackingMixin", "current_run"]

logger = logging.getLogger("flightdeck_rs")

P = ParamSpec("P")
R = TypeVar("R")

#: Label holding the usage of every model but the one the event carries (JSON list).
OTHER_MODELS_LABEL: Final = "flightdeck.other_models"

#: ``stats()`` keys added by run tracking (all counters, 0 until something happens).
TRACK_COUNTERS: Final = (
    "track_invalid",
    "track_invalid_labels",
    "track_no_model",
    "track_bad_usage",
    "track_errors",
    "track_multi_model",
)
_SUMMARY_EVERY_S = 60.0

_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "flightdeck_rs_current_run", default=None
)
_now = datetime.now
_perf_ns = time.perf_counter_ns
_warned_multi_model = False


def current_run() -> Run | None:
    """The innermost active run of this context (thread or asyncio task), or ``None``.

    Library code deep in the call stack, and code after an ``await``, records into it::

        run = current_run()
        if run is not None:
            run.add_usage_from(response)
    """
    return _current.get()


# ----------------------------------------------------------------------------- run ids

_rand: Iterator[bytes] = iter(())
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _refill() -> Iterator[bytes]:
    global _rand
    buf = os.urandom(16 * 256)
    _rand = chunks = iter([buf[i : i + 16] for i in range(0, len(buf), 16)])
    return chunks


def new_run_id() -> str:
    """A random (version 4) UUID in its canonical text form, as ``str(uuid.uuid4())``.

    Randomness comes from ``os.urandom`` in blocks of 256 ids (a child process after ``fork``
    starts a fresh block, so parent and child never share ids).
    """
    try:
        b = next(_rand)
    except StopIteration:
        b = next(_refill())
    s = b.hex()
    return f"{s[:8]}-{s[8:12]}-4{s[13:16]}-{_VARIANT[s[16]]}{s[17:20]}-{s[20:]}"


def _forget_random_block() -> None:
    global _rand
    _rand = iter(())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_random_block)


# ----------------------------------------------------------------------------- runs

_NEW, _ACTIVE, _DONE = 0, 1, 2


def _token_count(v: object) -> int | None:
    """``v`` as a token count (an int >= 0, bool excluded), else ``None``."""
    if type(v) is int:
        return v if v >= 0 else None
    if isinstance(v, bool):
        return None
    try:
        n = operator.index(v)  # type: ignore[arg-type]
    except TypeError:
        return None
    return n if n >= 0 else None


class Run:
    """One tracked run; made by :meth:`Emitter.run` (a context manager) or by
    :meth:`Emitter.track`, and reachable from inside it through :func:`current_run`.

    Attributes:
        run_id: The event's ``run_id`` (a fresh UUID unless one was given).
        labels: The event's labels; set items freely (``run.labels["k"] = "v"``). Keys and
            values must be str: invalid items are removed at exit (counted in
            ``stats()["track_invalid_labels"]`` and logged), the rest of the run is sent.
    """

    __slots__ = (
        "_emitter",
        "_ids",
        "_default_model",
        "_usage",
        "_tools",
        "_error_type",
        "_success",
        "_session_id",
        "_trace_id",
        "_span_id",
        "_t0",
        "_ts",
        "_token",
        "_state",
        "run_id",
        "labels",
    )

    def __init__(
        self,
        emitter: TrackingMixin,
        ids: tuple[str, str, str, str, str, str],
        run_id: str | None,
        labels: dict[str, str],
        default_model: tuple[str, str] | None,
    ) -> None:
        self._emitter = emitter
        self._ids = ids
        self._default_model = default_model
        self._usage: list[tuple[str, str, int, int, int]] = []
        self._tools: list[tuple[str, int, float]] = []
        self._error_type: str | None = None
        self._success = True
        self._session_id: str | None = None
        self._trace_id: str | None = None
        self._span_id: str | None = None
        self._t0 = 0
        self._ts: datetime | None = None
        self._token: contextvars.Token[Run | None] | None = None
        self._state = _NEW
        self.run_id: str = run_id if run_id is not None else new_run_id()
        self.labels: dict[str, str] = labels

    def __repr__(self) -> str:
        state = ("new", "active", "done")[self._state]
        return f"Run(run_id={self.run_id!r}, agent_id={self.agent_id!r}, {state})"

    # -- identity ----------------------------------------------------------------------------

    @property
    def workspace_id(self) -> str:
        return self._ids[0]

    @property
    def agent_id(self) -> str:
        return self._ids[1]

    @property
    def release_id(self) -> str:
        return self._ids[2]

    @property
    def tenant_id(self) -> str:
        return self._ids[3]

    @property
    def task_id(self) -> str:
        return self._ids[4]

    @property
    def environment(self) -> str:
        return self._ids[5]

    @property
    def success(self) -> bool:
        """``False`` once :meth:`fail` was called or the block raised."""
        return self._success

    @property
    def error_type(self) -> str | None:
        return self._error_type

    # -- recording -----------------------------------------------------------------------------

    def add_model_usage(
        self,
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
    ) -> None:
        """Adds one model call's tokens (accumulated per ``(provider, model)``).

        The server prices ``input_tokens`` and ``cached_input_tokens`` separately and adds
        them, so ``input_tokens`` should not include the cached ones (the usage readers of
        :meth:`add_usage_from` split them this way). Invalid values (a non-str name, a
        negative or non-integer count) are ignored, counted in
        ``stats()["track_bad_usage"]`` and logged; this never raises.
        """
        if (
            type(input_tokens) is int
            and type(output_tokens) is int
            and type(cached_input_tokens) is int
            and type(provider) is str
            and type(model) is str
            and input_tokens >= 0
            and output_tokens >= 0
            and cached_input_tokens >= 0
        ):
            # list.append is atomic: threads sharing one run never lose an update.
            self._usage.append((provider, model, input_tokens, output_tokens, cached_input_tokens))
            return
        i, o, c = (_token_count(x) for x in (input_tokens, output_tokens, cached_input_tokens))
        if (
            i is None
            or o is None
            or c is None
            or not isinstance(provider, str)
            or not (isinstance(model, str))
        ):
            self._emitter._track_note(
                "track_bad_usage",
                "flightdeck_rs: ignored add_model_usage(%r, %r, %r, %r, %r) in run %s "
                "(provider and model must be str, token counts int >= 0)",
                provider,
                model,
                input_tokens,
                output_tokens,
                cached_input_tokens,
                self.run_id,
            )
            return
        self._usage.append((str(provider), str(model), i, o, c))

    def add_tool(self, tool_name: str, invocations: int = 1, cost_units: float = 0.0) -> None:
        """Adds tool use (accumulated per ``tool_name``). Invalid values are ignored, counted
        in ``stats()["track_bad_usage"]`` and logged; this never raises."""
        n = _token_count(invocations)
        try:
            cost = float(cost_units)
        except (TypeError, ValueError):
            cost = -1.0
        if not isinstance(tool_name, str) or n is None or not (0.0 <= cost < float("inf")):
            self._emitter._track_note(
                "track_bad_usage",
                "flightdeck_rs: ignored add_tool(%r, %r, %r) in run %s "
                "(tool_name must be str, invocations int >= 0, cost_units finite >= 0)",
                tool_name,
                invocations,
                cost_units,
                self.run_id,
            )
            return
        self._tools.append((str(tool_name), n, cost))

    def add_usage_from(
        self, response: object, *, provider: str | None = None, model: str | None = None
    ) -> int:
        """Adds the token usage reported in an LLM SDK's response object.

        Reads, by duck typing (no SDK is imported): OpenAI chat completions (also a stream's
        final chunk with usage) and Responses API objects, Anthropic messages, LangChain
        ``LLMResult`` objects, and the same shapes as plain dicts (``model_dump()``).
        ``provider`` / ``model`` override what the response says.

        Returns:
            How many model usages were added (0 when the response carries no usage; an
            unreadable object is also counted in ``stats()["track_bad_usage"]`` and logged).
        """
        from flightdeck_rs.usage import UnreadableUsage, read_usage

        try:
            found = read_usage(response, provider=provider, model=model)
        except UnreadableUsage as e:
            self._emitter._track_note(
                "track_bad_usage", "flightdeck_rs: add_usage_from in run %s: %s", self.run_id, e
            )
            return 0
        except Exception as e:  # noqa: BLE001 - a reader bug must not reach the agent
            self._emitter._track_note(
                "track_bad_usage",
                "flightdeck_rs: add_usage_from in run %s failed on a %s: %r",
                self.run_id,
                type(response).__name__,
                e,
            )
            return 0
        for u in found:
            self._usage.append(
                (u.provider, u.model, u.input_tokens, u.output_tokens, u.cached_input_tokens)
            )
        return len(found)

    def fail(self, error_type: str) -> None:
        """Marks a handled failure: the event gets ``success=False`` and this
        ``error_type`` (an exception escaping the run later replaces it with its class
        name)."""
        self._success = False
        self._error_type = error_type if isinstance(error_type, str) else str(error_type)

    def set_request(
        self,
        *,
        session_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
    ) -> None:
        """Sets the event's ``request`` ids; ``None`` leaves an id as it is. Explicit ids take
        precedence over those read from an active OpenTelemetry span."""
        if session_id is not None:
            self._session_id = session_id
        if trace_id is not None:
            self._trace_id = trace_id
        if span_id is not None:
            self._span_id = span_id

    # -- lifecycle ---------------------------------------------------------------------------

    def _begin(self) -> None:
        if self._state != _NEW:
            raise RuntimeError(
                f"run {self.run_id} was already started; a Run is used once "
                "(call emitter.run(...) again for another run)"
            )
        self._state = _ACTIVE
        otel = sys.modules.get("opentelemetry.trace")
        if otel is not None and (self._trace_id is None or self._span_id is None):
            self._read_span(otel)
        self._ts = _now(UTC)
        self._t0 = _perf_ns()

    def _read_span(self, otel: Any) -> None:
        try:
            ctx = otel.get_current_span().get_span_context()
            if ctx.is_valid:
                if self._trace_id is None:
                    self._trace_id = format(ctx.trace_id, "032x")
                if self._span_id is None:
                    self._span_id = format(ctx.span_id, "016x")
        except Exception as e:  # noqa: BLE001 - a tracing problem must not reach the agent
            self._emitter._track_note(
                "track_errors", "flightdeck_rs: could not read the OpenTelemetry span: %r", e
            )

    def _end(self, exc: BaseException | None) -> None:
        """Emits the event; never raises."""
        latency_ms = (_perf_ns() - self._t0 + 500_000) // 1_000_000
        if self._state != _ACTIVE:
            return
        self._state = _DONE
        if exc is not None and not isinstance(exc, GeneratorExit):
            self._success = False
            self._error_type = type(exc).__name__
        try:
            event = self._event(latency_ms)
            if event is not None:
                self._send(event)
        except Exception as e:  # noqa: BLE001 - telemetry never breaks the agent
            self._emitter._track_note(
                "track_errors", "flightdeck_rs: run %s was not sent: %r", self.run_id, e
            )

    def _event(self, latency_ms: int) -> dict[str, Any] | None:
        usage = self._usage
        labels: Any = self.labels
        if len(usage) == 1:
            p, m, i, o, c = usage[0]
        elif usage:
            p, m, i, o, c, labels = self._pick_model(labels)
        elif self._default_model is not None:
            p, m = self._default_model
            i = o = c = 0
        else:
            self._emitter._track_note(
                "track_no_model",
                "flightdeck_rs: run %s (agent %s) recorded no model usage and has no default "
                "model (pass provider= and model= to run()/track()); it was not sent",
                self.run_id,
                self.agent_id,
            )
            return None
        tools: list[dict[str, Any]] = []
        if self._tools:
            merged: dict[str, list[Any]] = {}
            for name, n, cost in self._tools:
                acc = merged.get(name)
                if acc is None:
                    merged[name] = [n, cost]
                else:
                    acc[0] += n
                    acc[1] += cost
            tools = [
                {"tool_name": k, "invocations": v[0], "cost_units": v[1]} for k, v in merged.items()
            ]
        request = None
        if self._session_id is not None or self._trace_id is not None or self._span_id is not None:
            request = {
                "session_id": self._session_id,
                "trace_id": self._trace_id,
                "span_id": self._span_id,
            }
        ids = self._ids
        return {
            "timestamp": self._ts,
            "workspace_id": ids[0],
            "agent_id": ids[1],
            "release_id": ids[2],
            "run_id": self.run_id,
            "tenant_id": ids[3],
            "task_id": ids[4],
            "environment": ids[5],
            "request": request,
            "metrics": {
                "latency_ms": latency_ms,
                "success": self._success,
                "error_type": self._error_type,
            },
            "usage": {
                "model": {
                    "provider": p,
                    "model": m,
                    "input_tokens": i,
                    "output_tokens": o,
                    "cached_input_tokens": c,
                },
                "tools": tools,
            },
            "labels": labels,
        }

    def _pick_model(self, labels: Any) -> tuple[str, str, int, int, int, Any]:
        """The multi-model rule (see the module docs): the model with the most tokens."""
        totals: dict[tuple[str, str], list[int]] = {}
        for p, m, i, o, c in list(self._usage):
            acc = totals.get((p, m))
            if acc is None:
                totals[(p, m)] = [i, o, c]
            else:
                acc[0] += i
                acc[1] += o
                acc[2] += c
        (p, m), (i, o, c) = max(totals.items(), key=lambda kv: sum(kv[1]))
        if len(totals) == 1:
            return p, m, i, o, c, labels
        others = [
            {
                "provider": op,
                "model": om,
                "input_tokens": oi,
                "output_tokens": oo,
                "cached_input_tokens": oc,
            }
            for (op, om), (oi, oo, oc) in totals.items()
            if (op, om) != (p, m)
        ]
        if isinstance(labels, dict):
            import json  # only for multi-model runs: keeps the package's import light

            labels = {**labels, OTHER_MODELS_LABEL: json.dumps(others, separators=(",", ":"))}
        self._emitter._track_count("track_multi_model")
        global _warned_multi_model
        if not _warned_multi_model:
            _warned_multi_model = True
            logger.warning(
                "flightdeck_rs: run %s used %d models; a RunEvent holds one, so the event "
                "carries %s/%s (most tokens) and the label %r lists the others' usage, which "
                "the server does not price (logged once per process)",
                self.run_id,
                len(totals),
                p,
                m,
                OTHER_MODELS_LABEL,
            )
        return p, m, i, o, c, labels

    def _send(self, event: dict[str, Any]) -> None:
        emitter = self._emitter
        try:
            emitter.emit(event)
            return
        except ValueError as e:
            # Ours, or pydantic's ValidationError when pydantic is installed (both have
            # errors()); any other ValueError is not a validation failure.
            if not hasattr(e, "errors"):
                raise
            errors = e.errors()
        if not all(err["loc"][:1] == ("labels",) for err in errors):
            emitter._track_note(
                "track_invalid",
                "flightdeck_rs: run %s was not sent, its event is invalid: %s",
                self.run_id,
                "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in errors),
            )
            return
        labels = event["labels"]
        kept: dict[str, str] = {}
        if isinstance(labels, Mapping):
            kept = {k: v for k, v in labels.items() if type(k) is str and type(v) is str}
            dropped = sorted(repr(k) for k in labels if k not in kept)
        else:
            dropped = [f"labels={type(labels).__name__}"]
        emitter._track_note(
            "track_invalid_labels",
            "flightdeck_rs: run %s: removed invalid labels %s (keys and values must be str); "
            "the run is sent without them",
            self.run_id,
            ", ".join(dropped),
        )
        event["labels"] = kept
        emitter.emit(event)

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> Run:
        self._begin()
        self._token = _current.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._token
        if token is not None:
            self._token = None
            try:
                _current.reset(token)
            except ValueError:  # exited in another context than it was entered in
                pass
        self._end(exc)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


# ----------------------------------------------------------------------------- arguments

_ID_FIELDS = ("workspace_id", "agent_id", "release_id", "tenant_id", "task_id", "environment")


def _check_str(where: str, name: str, value: object, *, allow_callable: bool) -> None:
    if isinstance(value, str):
        return
    if allow_callable and callable(value):
        return
    want = (
        "a str or a callable of the call's arguments returning one" if allow_callable else ("a str")
    )
    raise TypeError(f"{where}: {name} must be {want}, got {type(value).__name__}")


def _check_labels(where: str, labels: object, *, allow_callable: bool) -> None:
    if labels is None or (allow_callable and callable(labels) and not isinstance(labels, Mapping)):
        return
    if not isinstance(labels, Mapping):
        raise TypeError(
            f"{where}: labels must be a dict of str to str, got {type(labels).__name__}"
        )
    for k, v in labels.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"{where}: labels must map str to str, got {k!r}: {type(v).__name__}")


def _check_model(where: str, provider: object, model: object) -> tuple[str, str] | None:
    if provider is None and model is None:
        return None
    if not isinstance(provider, str) or not isinstance(model, str):
        raise TypeError(
            f"{where}: provider and model (the default model of a run that records no usage) "
            f"must both be str, got {type(provider).__name__} and {type(model).__name__}"
        )
    return (provider, model)


class _Decorator(Protocol):
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...


class _Factory:
    """Makes the :class:`Run` of one call of a tracked function."""

    __slots__ = ("emitter", "ids", "resolvers", "run_id", "labels", "default_model", "name")

    def __init__(
        self,
        emitter: TrackingMixin,
        values: dict[str, Any],
        run_id: Callable[..., str] | None,
        labels: Mapping[str, str] | Callable[..., Mapping[str, str]] | None,
        default_model: tuple[str, str] | None,
    ) -> None:
        self.emitter = emitter
        self.resolvers = [(n, v) for n, v in values.items() if not isinstance(v, str)]
        self.ids: tuple[str, ...] = tuple(values[n] for n in _ID_FIELDS)
        self.run_id = run_id
        self.labels = labels
        self.default_model = default_model
        self.name = "?"

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Run | None:
        """The call's run, or ``None`` (counted and logged) when an argument callable fails."""
        labels = self.labels
        if not self.resolvers and self.run_id is None and not callable(labels):
            return Run(
                self.emitter,
                self.ids,  # type: ignore[arg-type]
                None,
                {} if labels is None else dict(labels),
                self.default_model,
            )
        try:
            ids = list(self.ids)
            for name, fn in self.resolvers:
                value = fn(*args, **kwargs)
                if not isinstance(value, str):
                    raise TypeError(f"{name} callable returned {type(value).__name__}, not str")
                ids[_ID_FIELDS.index(name)] = value
            run_id = None
            if self.run_id is not None:
                run_id = self.run_id(*args, **kwargs)
                if not isinstance(run_id, str):
                    raise TypeError(f"run_id callable returned {type(run_id).__name__}, not str")
            if callable(labels) and not isinstance(labels, Mapping):
                labels = labels(*args, **kwargs)
            label_dict = {} if labels is None else dict(labels)
        except Exception as e:  # noqa: BLE001 - telemetry never breaks the agent
            self.emitter._track_note(
                "track_errors",
                "flightdeck_rs: a call of %s was not tracked: an argument callable failed: %r",
                self.name,
                e,
            )
            return None
        return Run(self.emitter, tuple(ids), run_id, label_dict, self.default_model)  # type: ignore[arg-type]


def _wrap(factory: _Factory, fn: Callable[..., Any]) -> Callable[..., Any]:
    factory.name = getattr(fn, "__qualname__", repr(fn))
    if inspect.isasyncgenfunction(fn):
        return _wrap_asyncgen(factory, fn)
    if inspect.isgeneratorfunction(fn):
        return _wrap_gen(factory, fn)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def coroutine_wrapper(*args: Any, **kwargs: Any) -> Any:
            run = factory(args, kwargs)
            if run is None:
                return await fn(*args, **kwargs)
            run._begin()
            token = _current.set(run)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as e:
                _reset(token)
                run._end(e)
                raise
            _reset(token)
            run._end(None)
            return result

        return coroutine_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = factory(args, kwargs)
        if run is None:
            return fn(*args, **kwargs)
        run._begin()
        token = _current.set(run)
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            _reset(token)
            run._end(e)
            raise
        _reset(token)
        run._end(None)
        return result

    return wrapper


def _reset(token: contextvars.Token[Run | None]) -> None:
    try:
        _current.reset(token)
    except ValueError:  # pragma: no cover - only if user code switched contexts under us
        pass


def _wrap_gen(factory: _Factory, fn: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
    """A generator is one run, from its first ``next()`` until it returns, raises or is
    closed (closing early is not a failure). The run is current only while the generator's
    own code runs, not in the consumer's code between items."""

    @functools.wraps(fn)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        run = factory(args, kwargs)
        gen = fn(*args, **kwargs)
        if run is None:
            return (yield from gen)
        run._begin()
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = _current.set(run)
                try:
                    if to_throw is None:
                        item = gen.send(to_send)
                    else:
                        item = gen.throw(to_throw)
                        to_throw = None
                except StopIteration as stop:
                    result = stop.value
                    break
                finally:
                    _reset(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    raise
                except BaseException as e:  # thrown in by the consumer: pass it on
                    to_throw = e
        except GeneratorExit as e:
            token = _current.set(run)
            try:
                gen.close()
            except BaseException as err:
                run._end(err)
                raise
            finally:
                _reset(token)
            run._end(e)
            raise
        except BaseException as e:
            run._end(e)
            raise
        run._end(None)
        return result

    return gen_wrapper


def _wrap_asyncgen(
    factory: _Factory, fn: Callable[..., AsyncGenerator[Any, Any]]
) -> Callable[..., Any]:
    """Like :func:`_wrap_gen`, for async generators."""

    @functools.wraps(fn)
    async def asyncgen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        run = factory(args, kwargs)
        agen = fn(*args, **kwargs)
        # Untracked (run is None): the same delegation, with the current run left as it is.
        if run is not None:
            run._begin()
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = _current.set(run) if run is not None else None
                try:
                    if to_throw is None:
                        item = await agen.asend(to_send)
                    else:
                        item = await agen.athrow(to_throw)
                        to_throw = None
                except StopAsyncIteration:
                    break
                finally:
                    if token is not None:
                        _reset(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    raise
                except BaseException as e:  # thrown in by the consumer: pass it on
                    to_throw = e
        except GeneratorExit as e:
            token = _current.set(run) if run is not None else None
            try:
                await agen.aclose()
            except BaseException as err:
                if run is not None:
                    run._end(err)
                raise
            finally:
                if token is not None:
                    _reset(token)
            if run is not None:
                run._end(e)
            raise
        except BaseException as e:
            if run is not None:
                run._end(e)
            raise
        if run is not None:
            run._end(None)

    return asyncgen_wrapper


# ----------------------------------------------------------------------------- the mixin


class _TrackState:
    __slots__ = ("counts", "warned", "unreported", "last_summary", "lock")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(TRACK_COUNTERS, 0)
        self.warned: set[str] = set()
        self.unreported: dict[str, int] = {}
        self.last_summary = time.monotonic()
        self.lock = threading.Lock()


_state_lock = threading.Lock()


class TrackingMixin:
    """``run()`` and ``track()``: the front half of :class:`~flightdeck_rs.Emitter`."""

    if TYPE_CHECKING:

        def emit(self, event: Any) -> bool: ...

    def run(
        self,
        *,
        agent_id: str,
        release_id: str,
        tenant_id: str,
        task_id: str,
        environment: str,
        run_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        workspace_id: str = "ws_local",
        provider: str | None = None,
        model: str | None = None,
    ) -> Run:
        """A run to use as ``with emitter.run(...) as run:`` (or ``async with``).

        On exit one event is emitted: ``timestamp`` = the start (aware UTC),
        ``metrics.latency_ms`` from a monotonic clock, ``success=False`` and ``error_type`` =
        the exception's class name when the block raises (the exception propagates
        unchanged), and ``run_id`` a fresh UUID unless given.

        Args:
            agent_id: The event's ids (all str).
            release_id: See ``agent_id``.
            tenant_id: See ``agent_id``.
            task_id: See ``agent_id``.
            environment: See ``agent_id``.
            run_id: The run's id (default: a fresh UUID).
            labels: Initial labels (copied; add more with ``run.labels[k] = v``).
            workspace_id: The event's workspace (default ``"ws_local"``).
            provider: With ``model``: the model of a run that records no usage (sent with
                zero tokens). A run with neither usage nor a default model is not sent
                (counted in ``stats()["track_no_model"]`` and logged), because the server
                cannot price an unknown model.
            model: See ``provider``.

        Raises:
            TypeError: an id, the labels or the default model have the wrong type.
        """
        if (
            type(agent_id) is str
            and type(release_id) is str
            and type(tenant_id) is str
            and type(task_id) is str
            and type(environment) is str
            and type(workspace_id) is str
            and (run_id is None or type(run_id) is str)
            and labels is None
            and provider is None
            and model is None
        ):
            ids = (workspace_id, agent_id, release_id, tenant_id, task_id, environment)
            return Run(self, ids, run_id, {}, None)
        where = "Emitter.run()"
        values = {
            "workspace_id": workspace_id,
            "agent_id": agent_id,
            "release_id": release_id,
            "tenant_id": tenant_id,
            "task_id": task_id,
            "environment": environment,
        }
        for name, value in values.items():
            _check_str(where, name, value, allow_callable=False)
        if run_id is not None:
            _check_str(where, "run_id", run_id, allow_callable=False)
        _check_labels(where, labels, allow_callable=False)
        default_model = _check_model(where, provider, model)
        return Run(
            self,
            (workspace_id, agent_id, release_id, tenant_id, task_id, environment),
            run_id,
            {} if labels is None else dict(labels),
            default_model,
        )

    def track(
        self,
        *,
        agent_id: str | Callable[..., str],
        release_id: str | Callable[..., str],
        tenant_id: str | Callable[..., str],
        task_id: str | Callable[..., str],
        environment: str | Callable[..., str],
        run_id: Callable[..., str] | None = None,
        labels: Mapping[str, str] | Callable[..., Mapping[str, str]] | None = None,
        workspace_id: str | Callable[..., str] = "ws_local",
        provider: str | None = None,
        model: str | None = None,
    ) -> _Decorator:
        """A decorator making every call of a function one run (see :meth:`run`).

        Works on plain functions, coroutine functions, generators and async generators,
        recognised with :mod:`inspect` (a generator's run lasts from its first item until it
        is exhausted, raises or is closed; a plain function that returns an awaitable is
        timed until it returns). Any id, ``run_id`` and ``labels`` may be a callable of the
        call's arguments, e.g. ``tenant_id=lambda ticket, **_: ticket.tenant``; if one
        raises or returns a non-str, that call runs untracked (counted in
        ``stats()["track_errors"]`` and logged). The decorated function keeps its signature
        and type.

        Raises:
            TypeError: at decoration time, for a missing id, an id that is neither a str nor
                a callable, a fixed str ``run_id`` (every call would be the same run), bad
                ``labels`` or a bad default model.
        """
        where = "Emitter.track()"
        values: dict[str, Any] = {
            "workspace_id": workspace_id,
            "agent_id": agent_id,
            "release_id": release_id,
            "tenant_id": tenant_id,
            "task_id": task_id,
            "environment": environment,
        }
        for name, value in values.items():
            _check_str(where, name, value, allow_callable=True)
        if run_id is not None and not callable(run_id):
            raise TypeError(
                f"{where}: run_id must be a callable of the call's arguments returning a str "
                f"(a fixed run_id would make every call the same run), got {type(run_id).__name__}"
            )
        _check_labels(where, labels, allow_callable=True)
        default_model = _check_model(where, provider, model)
        factory = _Factory(self, values, run_id, labels, default_model)

        def decorate(fn: Callable[P, R], /) -> Callable[P, R]:
            if not callable(fn):
                raise TypeError(f"{where}: can only decorate a callable, got {type(fn).__name__}")
            return _wrap(factory, fn)

        return decorate

    # -- counters and logs -------------------------------------------------------------------

    def _track_state(self) -> _TrackState:
        d = self.__dict__
        st = d.get("_fd_track_state")
        if st is None:
            with _state_lock:
                st = d.setdefault("_fd_track_state", _TrackState())
        return st  # type: ignore[no-any-return]

    def _track_count(self, key: str) -> None:
        st = self._track_state()
        with st.lock:
            st.counts[key] += 1

    def _track_note(self, key: str, msg: str, *args: Any) -> None:
        """Counts ``key`` and logs: a WARNING the first time per key, then at most one
        summary a minute."""
        try:
            st = self._track_state()
            with st.lock:
                st.counts[key] += 1
                first = key not in st.warned
                st.warned.add(key)
                summary = ""
                if not first:
                    st.unreported[key] = st.unreported.get(key, 0) + 1
                    now = time.monotonic()
                    if now - st.last_summary >= _SUMMARY_EVERY_S:
                        st.last_summary = now
                        summary = ", ".join(f"{k}={v}" for k, v in sorted(st.unreported.items()))
                        st.unreported.clear()
            if first:
                logger.warning(msg, *args)
            else:
                logger.debug(msg, *args)
                if summary:
                    logger.warning("flightdeck_rs: more run tracking problems: %s", summary)
        except Exception:  # noqa: BLE001 - logging must not break the agent
            pass

    def _track_stats(self) -> dict[str, int]:
        st = self.__dict__.get("_fd_track_state")
        if st is None:
            return dict.fromkeys(TRACK_COUNTERS, 0)
        with st.lock:
            return dict(st.counts)
