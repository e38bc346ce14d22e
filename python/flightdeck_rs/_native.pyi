"""Type stubs for the Rust extension module ``flightdeck_rs._native``."""

import builtins
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal, Self, final, overload, type_check_only

__all__ = [
    "__version__",
    "RunEvent",
    "RunEventRequest",
    "RunEventMetrics",
    "RunEventUsage",
    "RunEventModelUsage",
    "RunEventToolUsage",
    "NativeClient",
    "NativeRequest",
    "NativeResponse",
    "NativeExportStream",
    "NativeEmitter",
    "health",
    "get_workspace",
    "get_metrics",
    "list_releases",
    "list_promoted",
    "list_actions",
    "list_promotion_requests",
    "list_runs",
    "post_diff",
    "promote_like",
    "promote_confirm",
    "ingest",
    "NativeBatch",
    "collect",
    "prepare_exit",
    "EXPORT_HEADER_KEYS",
    "client_retry_delay",
    "delivery_decision",
]

__version__: str

@type_check_only
class _Model:
    """What every model class has (a stub-only base: at run time each class has these
    methods itself)."""
    def __copy__(self) -> Self: ...
    def __deepcopy__(self, _memo: builtins.dict[int, Any], /) -> Self: ...
    def __iter__(self) -> Iterator[tuple[str, Any]]: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    __signature__: ClassVar[inspect.Signature]
    model_fields: ClassVar[builtins.dict[str, Any]]
    model_config: ClassVar[builtins.dict[str, Any]]
    model_computed_fields: ClassVar[builtins.dict[str, Any]]
    @property
    def model_extra(self) -> builtins.dict[str, Any] | None: ...
    @property
    def model_fields_set(self) -> set[str]: ...
    def _replace_fields_set(self, names: Iterable[str]) -> None: ...
    @property
    def _raw(self) -> Any: ...
    @classmethod
    def _from_raw(cls, mirror: Any) -> Self: ...
    def _copy_checked(self, update: builtins.dict[str, Any] | None) -> Self: ...
    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: Any = None,
        from_attributes: bool | None = None,
        context: Any = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self: ...
    @classmethod
    def model_validate_json(
        cls,
        json_data: str | bytes | bytearray,
        *,
        strict: bool | None = None,
        extra: Any = None,
        context: Any = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self: ...
    @classmethod
    def model_validate_strings(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: Any = None,
        context: Any = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self: ...
    @classmethod
    def model_construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Self: ...
    @classmethod
    def model_json_schema(
        cls,
        by_alias: bool = True,
        ref_template: str = "#/$defs/{model}",
        schema_generator: Any = None,
        mode: str = "validation",
        **kw: Any,
    ) -> builtins.dict[str, Any]: ...
    def model_dump(
        self,
        *,
        mode: Literal["python", "json"] | str = "python",
        include: Any = None,
        exclude: Any = None,
        context: Any = None,
        by_alias: bool | None = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        round_trip: bool = False,
        warnings: bool | Literal["none", "warn", "error"] = True,
        **opts: Any,
    ) -> builtins.dict[str, Any]: ...
    def model_dump_json(
        self,
        *,
        indent: int | None = None,
        ensure_ascii: bool = False,
        include: Any = None,
        exclude: Any = None,
        context: Any = None,
        by_alias: bool | None = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        round_trip: bool = False,
        warnings: bool | Literal["none", "warn", "error"] = True,
        **opts: Any,
    ) -> str: ...
    def model_copy(
        self, *, update: builtins.dict[str, Any] | None = None, deep: bool = False
    ) -> Self: ...
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any, /) -> Any: ...
    def dict(self, **kw: Any) -> builtins.dict[str, Any]: ...
    def json(self, **kw: Any) -> str: ...
    def copy(
        self,
        *,
        include: Any = None,
        exclude: Any = None,
        update: builtins.dict[str, Any] | None = None,
        deep: bool = False,
    ) -> Self: ...
    @classmethod
    def parse_obj(cls, obj: Any) -> Self: ...
    @classmethod
    def parse_raw(cls, b: str | bytes, **kw: Any) -> Self: ...
    @classmethod
    def schema(
        cls, by_alias: bool = True, ref_template: str = "#/$defs/{model}"
    ) -> builtins.dict[str, Any]: ...
    @classmethod
    def schema_json(
        cls, *, by_alias: bool = True, ref_template: str = "#/$defs/{model}", **dumps_kwargs: Any
    ) -> str: ...
    @classmethod
    def construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Self: ...
    @classmethod
    def validate(cls, value: Any) -> Self: ...


@final
class RunEventRequest(_Model):
    session_id: str | None
    trace_id: str | None
    span_id: str | None
    def __new__(
        cls,
        *,
        session_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
    ) -> Self: ...

@final
class RunEventMetrics(_Model):
    latency_ms: int | None
    success: bool
    error_type: str | None
    def __new__(
        cls,
        *,
        latency_ms: int | None = None,
        success: bool = True,
        error_type: str | None = None,
    ) -> Self: ...

@final
class RunEventModelUsage(_Model):
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    def __new__(
        cls,
        *,
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
    ) -> Self: ...

@final
class RunEventToolUsage(_Model):
    tool_name: str
    invocations: int
    cost_units: float
    def __new__(
        cls,
        *,
        tool_name: str,
        invocations: int = 0,
        cost_units: float = 0.0,
    ) -> Self: ...

@final
class RunEventUsage(_Model):
    model: RunEventModelUsage
    tools: list[RunEventToolUsage]
    def __new__(
        cls,
        *,
        model: RunEventModelUsage | Mapping[str, Any],
        tools: Iterable[Any] = ...,
    ) -> Self: ...

@final
class RunEvent(_Model):
    api_version: Literal["v1"]
    type: Literal["run_start", "run_end"]
    timestamp: datetime
    workspace_id: str
    agent_id: str
    release_id: str
    run_id: str
    tenant_id: str
    task_id: str
    environment: str
    request: RunEventRequest | None
    metrics: RunEventMetrics
    usage: RunEventUsage
    labels: builtins.dict[str, str]
    def __new__(
        cls,
        *,
        api_version: Literal["v1"] = "v1",
        type: Literal["run_start", "run_end"] = "run_end",
        timestamp: datetime | str | int | float,
        workspace_id: str = "ws_local",
        agent_id: str,
        release_id: str,
        run_id: str,
        tenant_id: str,
        task_id: str,
        environment: str,
        request: RunEventRequest | Mapping[str, Any] | None = None,
        metrics: RunEventMetrics | Mapping[str, Any] = ...,
        usage: RunEventUsage | Mapping[str, Any],
        labels: Mapping[str, str] = ...,
    ) -> Self: ...
    def wire_json(self) -> bytes: ...

@final
class NativeRequest:
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def body(self) -> bytes | None: ...
    @property
    def idempotent(self) -> bool: ...

@final
class NativeResponse:
    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> bytes: ...
    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...
    def export_headers(self) -> dict[str, str]: ...

@final
class NativeExportStream:
    @staticmethod
    def from_body(body: bytes, headers: list[tuple[str, str]]) -> NativeExportStream: ...
    @overload
    def next_batch(self, max_events: int, with_lines: Literal[False] = False) -> list[RunEvent]: ...
    @overload
    def next_batch(
        self, max_events: int, with_lines: Literal[True]
    ) -> list[tuple[bytes, RunEvent]]: ...
    def next_batch_async(self, max_events: int, with_lines: bool = False) -> Any: ...
    @property
    def returned(self) -> int: ...
    def export_headers(self) -> dict[str, str]: ...
    def close(self) -> None: ...

@final
class NativeClient:
    def __new__(
        cls,
        base_url: str,
        *,
        timeout_s: float | None,
        max_retries: int,
        retry_backoff_s: float,
        api_token: str | None,
        observer: Callable[[str, dict[str, Any]], None] | None = None,
        slow_request_s: float | None = None,
    ) -> Self: ...
    def url(self, req: NativeRequest) -> str: ...
    def headers(self, req: NativeRequest) -> dict[str, str] | None: ...
    def send(self, req: NativeRequest) -> NativeResponse: ...
    def send_async(self, req: NativeRequest) -> Any: ...
    def send_json_async(self, req: NativeRequest, core: Any) -> Any: ...
    def open_stream(
        self, req: NativeRequest
    ) -> tuple[NativeResponse, NativeExportStream | None]: ...
    def open_stream_async(self, req: NativeRequest) -> Any: ...
    def send_events(self, events: list[Any]) -> tuple[NativeRequest, NativeResponse] | None: ...
    def send_and_encode(
        self, req: NativeRequest | None, batch: NativeBatch | None
    ) -> NativeResponse | None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def base_url(self) -> str: ...

def prepare_exit(timeout_s: float = 2.0) -> None:
    """Registered with ``atexit``: I/O threads stop taking the GIL before finalization."""

def health() -> NativeRequest: ...
def get_workspace() -> NativeRequest: ...
def get_metrics() -> NativeRequest: ...
def list_releases() -> NativeRequest: ...
def list_promoted() -> NativeRequest: ...
# Request builders: keyword-only, so that two swapped filters cannot go unnoticed. The values
# are the public methods' arguments as the caller gave them (query values are converted the
# way httpx converts them; body fields must be ``str``).
def list_actions(
    *, agent_id: str | None = None, environment: str | None = None, limit: int
) -> NativeRequest: ...
def list_promotion_requests(*, status: str | None = None, limit: int) -> NativeRequest: ...
def list_runs(
    *,
    release_id: str,
    window: str,
    environment: str | None = None,
    tenant_id: str | None = None,
    task_id: str | None = None,
    trace_id: str | None = None,
    session_id: str | None = None,
    span_id: str | None = None,
    offset: int,
    limit: int,
    export: bool,
) -> NativeRequest: ...
def post_diff(
    *,
    baseline_release_id: str,
    candidate_release_id: str,
    window: str,
    environment: str | None = None,
    tenant_id: str | None = None,
    task_id: str | None = None,
) -> NativeRequest: ...
def promote_like(
    *,
    action: Literal["promote", "request", "rollback"],
    release_id: str,
    environment: str,
    window: str,
    reason: str,
    actor: str,
) -> NativeRequest: ...
def promote_confirm(*, request_id: str, approval_reason: str, actor: str) -> NativeRequest: ...
def ingest(events: list[Any]) -> NativeRequest | None: ...

@final
class NativeEmitter:
    def __new__(
        cls,
        base_url: str,
        *,
        api_token: str | None,
        max_queue_events: int,
        max_queue_bytes: int,
        max_batch_events: int,
        max_batch_bytes: int,
        max_event_bytes: int,
        flush_interval_s: float,
        connect_timeout_s: float,
        request_timeout_s: float,
        backoff_base_s: float,
        backoff_max_s: float,
        spool_dir: str | None,
        spool_mode: str,
        spool_max_bytes: int,
        spool_max_age_s: float,
    ) -> Self: ...
    def emit(self, event: Any) -> int: ...
    def request_flush(self) -> int: ...
    def wait(self, target: int, timeout_s: float) -> bool: ...
    def begin_close(self, timeout_s: float) -> None: ...
    def wait_finished(self, timeout_s: float) -> bool: ...
    def reset_after_fork(self) -> int: ...
    def take_notices(self) -> list[tuple[str, str]]: ...
    def stats(self) -> dict[str, Any]: ...
    @property
    def pid(self) -> int: ...
    @property
    def closing(self) -> bool: ...

@final
class NativeBatch:
    def request(self) -> NativeRequest: ...
    def __len__(self) -> int: ...

def collect(events: list[Any]) -> NativeBatch | None: ...

# The retry rules of ``core::retry`` (see ``flightdeck_rs._retry``).
EXPORT_HEADER_KEYS: tuple[str, str, str, str]

def client_retry_delay(
    failure: str | None,
    *,
    idempotent: bool,
    attempt: int,
    max_retries: int,
    backoff_s: float,
) -> float | None: ...
def delivery_decision(
    *,
    status: int | None = None,
    failure: str | None = None,
    retry_after: str | None = None,
    attempt: int,
    max_retries: int | None = None,
    base_s: float = 0.5,
    cap_s: float = 30.0,
    unit: float | None = None,
    now_s: float | None = None,
) -> tuple[Literal["retry", "split", "give_up"], float]: ...
