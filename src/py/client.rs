//! The native client: one `core::transport::Client`, a sync and an async send, and the
//! request builders (one per endpoint, from `core::api`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::core::api::{self, Action, ApiRequest, RunsQuery, EXPORT_HEADER_KEYS};
use crate::core::event::serialize::{self, NonFinite};
use crate::core::event::RunEvent;
use crate::core::transport::{BodyStream, Client, Config, Notice, Observer, Response};

use super::errors::{to_pyerr, to_pyerr_sync};
use super::export::NativeExportStream;
use super::http_args::query_value;
use super::models::{validate_event, PyRunEvent};
use super::runtime;

/// `json.loads(body)`: the UTF-8 text scanned by the `json` module's own scanner (what
/// `json.loads` runs after its Python-level steps); any other case (not UTF-8, leading or
/// trailing text the scanner does not take, a scan error) goes to `json.loads` itself, so
/// values and exceptions are its own.
fn json_loads(py: Python<'_>, body: &[u8]) -> PyResult<Py<PyAny>> {
    static SCAN: pyo3::sync::PyOnceLock<(Py<PyAny>, Py<PyAny>)> = pyo3::sync::PyOnceLock::new();
    let (scan, loads) = SCAN.get_or_try_init(py, || -> PyResult<_> {
        let json = py.import("json")?;
        let scan = json.getattr("_default_decoder")?.getattr("scan_once")?;
        Ok((scan.unbind(), json.getattr("loads")?.unbind()))
    })?;
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    if let Ok(text) = std::str::from_utf8(body) {
        if text.as_bytes().first().is_some_and(|b| !is_ws(b)) {
            let s = PyString::new(py, text);
            if let Ok(found) = scan.call1(py, (&s, 0)) {
                let (value, end): (Py<PyAny>, usize) = found.extract(py)?;
                if end == text.len() {
                    return Ok(value); // all of it (`end` counts characters: ASCII text)
                }
                // The rest must be JSON whitespace only.
                let rest = text.char_indices().nth(end).map_or("", |(i, _)| &text[i..]);
                if rest.bytes().all(|b| is_ws(&b)) {
                    return Ok(value);
                }
            }
        }
    }
    loads.call1(py, (PyBytes::new(py, body),))
}

/// A request defined by the core, ready for either transport.
#[pyclass(module = "flightdeck_rs._native", name = "NativeRequest", frozen)]
pub struct NativeRequest {
    pub inner: ApiRequest,
}

#[pymethods]
impl NativeRequest {
    /// `"GET"` or `"POST"`.
    #[getter]
    fn method(&self) -> &'static str {
        self.inner.method.as_str()
    }
    /// Path with the encoded query string.
    #[getter]
    fn path(&self) -> String {
        self.inner.path_and_query()
    }
    /// The JSON body, if any.
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.body.as_ref().map(|b| PyBytes::new(py, b))
    }
    /// Whether a copy reaching the server twice is harmless.
    #[getter]
    fn idempotent(&self) -> bool {
        self.inner.idempotent
    }
    fn __repr__(&self) -> String {
        format!(
            "<NativeRequest {} {}>",
            self.inner.method.as_str(),
            self.inner.path
        )
    }
}

/// A received response (any status).
#[pyclass(module = "flightdeck_rs._native", name = "NativeResponse", frozen)]
pub struct NativeResponse {
    inner: Response,
}

#[pymethods]
impl NativeResponse {
    #[getter]
    fn status(&self) -> u16 {
        self.inner.status
    }
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.body)
    }
    /// The status line's reason phrase.
    #[getter]
    fn reason<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.reason.as_bytes())
    }
    /// Headers as `(name, value)` byte pairs in arrival order.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .inner
            .headers
            .iter()
            .map(|(k, v)| (PyBytes::new(py, k.as_bytes()), PyBytes::new(py, v)))
            .collect::<Vec<_>>();
        PyList::new(py, items)
    }
    /// The `X-Flightdeck-*` export headers, spelled as the reference returns them.
    fn export_headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for k in EXPORT_HEADER_KEYS {
            if let Some(v) = self.inner.header(k) {
                let all = self.inner.headers.iter().map(|(_, v)| v.as_slice());
                d.set_item(k, crate::py::http_args::header_text(all, v))?;
            }
        }
        Ok(d)
    }
}

/// The native transport of one SDK client.
#[pyclass(module = "flightdeck_rs._native", name = "NativeClient", frozen)]
pub struct NativeClient {
    inner: Arc<Client>,
}

#[pymethods]
impl NativeClient {
    #[new]
    #[pyo3(signature = (base_url, *, timeout_s, max_retries, retry_backoff_s, api_token, observer = None, slow_request_s = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        base_url: &str,
        timeout_s: Option<f64>,
        max_retries: i64,
        retry_backoff_s: f64,
        api_token: Option<String>,
        observer: Option<Py<PyAny>>,
        slow_request_s: Option<f64>,
    ) -> PyResult<Self> {
        let mut cfg = Config::new(base_url);
        cfg.timeout = match timeout_s {
            Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(PyValueError::new_err(format!(
                    "timeout_s must be >= 0, got {t}"
                )))
            }
            _ => None,
        };
        cfg.max_retries = u32::try_from(max_retries.max(0)).unwrap_or(u32::MAX);
        cfg.backoff_s = if retry_backoff_s.is_nan() {
            0.0
        } else {
            retry_backoff_s.max(0.0)
        };
        cfg.api_token = api_token;
        cfg.observer = observer.map(py_observer);
        cfg.slow_after = slow_request_s
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(Duration::from_secs_f64);
        let client = Client::new(cfg).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(client),
        })
    }

    /// The absolute URL of a request.
    fn url(&self, req: &NativeRequest) -> String {
        self.inner.url_for(&req.inner)
    }

    /// The SDK's own headers for a request (content type, auth), or `None` when there are
    /// none (the reference passes `headers=None` then).
    fn headers<'py>(
        &self,
        py: Python<'py>,
        req: &NativeRequest,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let h = self.inner.request_headers(&req.inner);
        if h.is_empty() {
            return Ok(None);
        }
        let d = PyDict::new(py);
        for (k, v) in h {
            d.set_item(k, v)?;
        }
        Ok(Some(d))
    }

    /// Sends a request and waits (GIL released).
    fn send(&self, py: Python<'_>, req: &NativeRequest) -> PyResult<NativeResponse> {
        let client = self.inner.clone();
        let r = &req.inner;
        let out = match runtime::green(py)? {
            Some(waiter) => {
                let owned = r.clone();
                runtime::block_green(&waiter, async move { client.send(&owned).await })?
            }
            None => runtime::block_on(py, client.send(r))?,
        };
        match out {
            Ok(resp) => Ok(NativeResponse { inner: resp }),
            Err(e) => Err(to_pyerr_sync(
                py,
                e,
                r.method.as_str(),
                &self.inner.url_for(r),
            )),
        }
    }

    /// Sends a request; returns an awaitable for the running event loop (asyncio or trio).
    fn send_async<'py>(&self, py: Python<'py>, req: &NativeRequest) -> PyResult<Bound<'py, PyAny>> {
        let client = self.inner.clone();
        let r = req.inner.clone();
        runtime::awaitable(py, move || async move {
            let out = client.send(&r).await;
            move |py: Python<'_>| match out {
                Ok(resp) => Ok(Py::new(py, NativeResponse { inner: resp })?.into_any()),
                Err(e) => Err(to_pyerr(py, e, r.method.as_str(), &client.url_for(&r))),
            }
        })
    }

    /// Sends a request; returns an awaitable of its JSON body, as `json.loads` reads it (a
    /// 2xx status), or of the `httpx.HTTPStatusError` that `core.status_error(req, resp)`
    /// builds (any other status). One step on the event loop's thread instead of a
    /// coroutine that awaits `send_async` and decodes.
    fn send_json_async<'py>(
        &self,
        req: &Bound<'py, NativeRequest>,
        core: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = req.py();
        let client = self.inner.clone();
        let r = req.get().inner.clone();
        let req_obj = req.clone().unbind();
        runtime::awaitable(py, move || async move {
            let out = client.send(&r).await;
            move |py: Python<'_>| match out {
                Ok(resp) if (200..300).contains(&resp.status) => json_loads(py, &resp.body),
                Ok(resp) => {
                    let resp = Py::new(py, NativeResponse { inner: resp })?;
                    let exc = core.call_method1(py, "status_error", (req_obj, resp))?;
                    Err(PyErr::from_value(exc.into_bound(py)))
                }
                Err(e) => Err(to_pyerr(py, e, r.method.as_str(), &client.url_for(&r))),
            }
        })
    }

    /// Sends a request and reads the response head (GIL released): a 2xx status comes with
    /// its body as a `NativeExportStream`, any other with the whole body and no stream.
    fn open_stream(
        &self,
        py: Python<'_>,
        req: &NativeRequest,
    ) -> PyResult<(NativeResponse, Option<NativeExportStream>)> {
        let client = self.inner.clone();
        let r = &req.inner;
        let url = self.inner.url_for(r);
        let owned = r.clone();
        match runtime::block_on_shared(py, async move { client.open(&owned).await })? {
            Ok((head, body)) => Ok(opened(head, body, r.method.as_str(), url)),
            Err(e) => Err(to_pyerr_sync(py, e, r.method.as_str(), &url)),
        }
    }

    /// Async twin of `open_stream`.
    fn open_stream_async<'py>(
        &self,
        py: Python<'py>,
        req: &NativeRequest,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.inner.clone();
        let r = req.inner.clone();
        runtime::awaitable(py, move || async move {
            let url = client.url_for(&r);
            let out = client.open(&r).await;
            move |py: Python<'_>| match out {
                Ok((head, body)) => {
                    let pair = opened(head, body, r.method.as_str(), url);
                    Ok(pair.into_pyobject(py)?.into_any().unbind())
                }
                Err(e) => Err(to_pyerr(py, e, r.method.as_str(), &url)),
            }
        })
    }

    /// Closes the pool; later sends raise `RuntimeError`.
    fn close(&self) {
        self.inner.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    #[getter]
    fn base_url(&self) -> String {
        self.inner.config().base_url.clone()
    }
}

/// Forwards retries and slow calls to a Python callable `observer(kind, info)`, `kind`
/// being `"retry"` or `"slow"` and `info` a dict. Its exceptions are reported as
/// unraisable, never raised into the call.
fn py_observer(cb: Py<PyAny>) -> Observer {
    Observer(Arc::new(move |n: &Notice<'_>| {
        crate::py::runtime::attach(|py| {
            let run = || -> PyResult<()> {
                let d = PyDict::new(py);
                let kind = match n {
                    Notice::Retry {
                        req,
                        attempt,
                        max_retries,
                        delay_s,
                        error,
                    } => {
                        d.set_item("method", req.method.as_str())?;
                        d.set_item("path", req.path)?;
                        d.set_item("attempt", attempt)?;
                        d.set_item("max_retries", max_retries)?;
                        d.set_item("delay_s", delay_s)?;
                        d.set_item("error", error.class_name())?;
                        d.set_item("message", error.to_string())?;
                        "retry"
                    }
                    Notice::Slow {
                        req,
                        elapsed,
                        attempts,
                        status,
                    } => {
                        d.set_item("method", req.method.as_str())?;
                        d.set_item("path", req.path)?;
                        d.set_item("elapsed_s", elapsed.as_secs_f64())?;
                        d.set_item("attempts", attempts)?;
                        d.set_item("status", status)?;
                        "slow"
                    }
                };
                cb.bind(py).call1((kind, d))?;
                Ok(())
            };
            if let Err(e) = run() {
                e.write_unraisable(py, Some(cb.bind(py)));
            }
        });
    }))
}

fn opened(
    head: Response,
    body: Option<BodyStream>,
    method: &str,
    url: String,
) -> (NativeResponse, Option<NativeExportStream>) {
    let stream = body.map(|b| NativeExportStream::new(b, head.headers.clone(), method, url));
    (NativeResponse { inner: head }, stream)
}

fn text(name: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_string()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name} must be a str, got {}",
            v.get_type().name()?
        ))),
    }
}

fn opt_text(name: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(x) if x.is_none() => Ok(None),
        Some(x) => text(name, x).map(Some),
    }
}

fn req(inner: ApiRequest) -> NativeRequest {
    NativeRequest { inner }
}

/// `GET /health`
#[pyfunction]
pub fn health() -> NativeRequest {
    req(api::health())
}

/// `GET /v1/workspace`
#[pyfunction]
pub fn get_workspace() -> NativeRequest {
    req(api::get_workspace())
}

/// `GET /v1/metrics`
#[pyfunction]
pub fn get_metrics() -> NativeRequest {
    req(api::get_metrics())
}

/// `GET /v1/releases`
#[pyfunction]
pub fn list_releases() -> NativeRequest {
    req(api::list_releases())
}

/// `GET /v1/promoted`
#[pyfunction]
pub fn list_promoted() -> NativeRequest {
    req(api::list_promoted())
}

/// `GET /v1/actions`
#[pyfunction]
#[pyo3(signature = (*, agent_id = None, environment = None, limit))]
pub fn list_actions(
    agent_id: Option<&Bound<'_, PyAny>>,
    environment: Option<&Bound<'_, PyAny>>,
    limit: &Bound<'_, PyAny>,
) -> PyResult<NativeRequest> {
    Ok(req(api::list_actions(
        opt_query(agent_id)?,
        opt_query(environment)?,
        query_value(limit)?,
    )))
}

fn opt_query(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match v {
        Some(x) if !x.is_none() => query_value(x).map(Some),
        _ => Ok(None),
    }
}

/// `GET /v1/promotion-requests`
#[pyfunction]
#[pyo3(signature = (*, status = None, limit))]
pub fn list_promotion_requests(
    status: Option<&Bound<'_, PyAny>>,
    limit: &Bound<'_, PyAny>,
) -> PyResult<NativeRequest> {
    Ok(req(api::list_promotion_requests(
        opt_query(status)?,
        query_value(limit)?,
    )))
}

/// `GET /v1/runs` or, with `export=True`, `GET /v1/runs/export`.
#[pyfunction]
#[pyo3(signature = (
    *,
    release_id,
    window,
    environment = None,
    tenant_id = None,
    task_id = None,
    trace_id = None,
    session_id = None,
    span_id = None,
    offset,
    limit,
    export,
))]
#[allow(clippy::too_many_arguments)]
pub fn list_runs(
    release_id: &Bound<'_, PyAny>,
    window: &Bound<'_, PyAny>,
    environment: Option<&Bound<'_, PyAny>>,
    tenant_id: Option<&Bound<'_, PyAny>>,
    task_id: Option<&Bound<'_, PyAny>>,
    trace_id: Option<&Bound<'_, PyAny>>,
    session_id: Option<&Bound<'_, PyAny>>,
    span_id: Option<&Bound<'_, PyAny>>,
    offset: &Bound<'_, PyAny>,
    limit: &Bound<'_, PyAny>,
    export: bool,
) -> PyResult<NativeRequest> {
    let q = RunsQuery {
        release_id: query_value(release_id)?,
        window: query_value(window)?,
        environment: opt_query(environment)?,
        tenant_id: opt_query(tenant_id)?,
        task_id: opt_query(task_id)?,
        trace_id: opt_query(trace_id)?,
        session_id: opt_query(session_id)?,
        span_id: opt_query(span_id)?,
        offset: query_value(offset)?,
        limit: query_value(limit)?,
    };
    Ok(req(if export {
        api::runs_export(q)
    } else {
        api::list_runs(q)
    }))
}

/// `POST /v1/diff`
#[pyfunction]
#[pyo3(signature = (
    *,
    baseline_release_id,
    candidate_release_id,
    window,
    environment = None,
    tenant_id = None,
    task_id = None,
))]
pub fn post_diff(
    baseline_release_id: &Bound<'_, PyAny>,
    candidate_release_id: &Bound<'_, PyAny>,
    window: &Bound<'_, PyAny>,
    environment: Option<&Bound<'_, PyAny>>,
    tenant_id: Option<&Bound<'_, PyAny>>,
    task_id: Option<&Bound<'_, PyAny>>,
) -> PyResult<NativeRequest> {
    Ok(req(api::post_diff(
        &text("baseline_release_id", baseline_release_id)?,
        &text("candidate_release_id", candidate_release_id)?,
        &text("window", window)?,
        opt_text("environment", environment)?.as_deref(),
        opt_text("tenant_id", tenant_id)?.as_deref(),
        opt_text("task_id", task_id)?.as_deref(),
    )))
}

/// `POST /v1/promote`, `/v1/promote/request` or `/v1/rollback` (`action` names which).
#[pyfunction]
#[pyo3(signature = (*, action, release_id, environment, window, reason, actor))]
pub fn promote_like(
    action: &str,
    release_id: &Bound<'_, PyAny>,
    environment: &Bound<'_, PyAny>,
    window: &Bound<'_, PyAny>,
    reason: &Bound<'_, PyAny>,
    actor: &Bound<'_, PyAny>,
) -> PyResult<NativeRequest> {
    let action = match action {
        "promote" => Action::Promote,
        "request" => Action::PromoteRequest,
        "rollback" => Action::Rollback,
        other => return Err(PyValueError::new_err(format!("unknown action {other:?}"))),
    };
    Ok(req(api::promote_like(
        action,
        &text("release_id", release_id)?,
        &text("environment", environment)?,
        &text("window", window)?,
        &text("reason", reason)?,
        &text("actor", actor)?,
    )))
}

/// `POST /v1/promote/confirm`
#[pyfunction]
#[pyo3(signature = (*, request_id, approval_reason, actor))]
pub fn promote_confirm(
    request_id: &Bound<'_, PyAny>,
    approval_reason: &Bound<'_, PyAny>,
    actor: &Bound<'_, PyAny>,
) -> PyResult<NativeRequest> {
    Ok(req(api::promote_confirm(
        &text("request_id", request_id)?,
        &text("approval_reason", approval_reason)?,
        &text("actor", actor)?,
    )))
}

/// Collects events for an ingest request (GIL held, no encoding): our `RunEvent`s are
/// shared as they are, pydantic `RunEvent`s and dicts are validated.
fn collect_events(py: Python<'_>, events: &Bound<'_, PyList>) -> PyResult<Vec<Arc<RunEvent>>> {
    let mut items: Vec<Arc<RunEvent>> = Vec::with_capacity(events.len());
    for (i, item) in events.iter().enumerate() {
        if let Ok(e) = item.cast::<PyRunEvent>() {
            items.push(PyRunEvent::shared(e)?);
            continue;
        }
        let validated = if item.cast::<PyDict>().is_ok() {
            validate_event(py, &item)
        } else if item.hasattr("model_dump")? {
            validate_event(py, &item.call_method0("model_dump")?)
        } else {
            return Err(PyTypeError::new_err(format!(
                "events[{i}] must be a RunEvent or a dict, got {}",
                item.get_type().name()?
            )));
        };
        match validated {
            Ok(e) => items.push(Arc::new(e)),
            Err(err) => {
                let note = format!("in events[{i}]");
                let _ = err.value(py).call_method1("add_note", (note,));
                return Err(err);
            }
        }
    }
    Ok(items)
}

fn non_finite() -> PyErr {
    PyValueError::new_err("Out of range float values are not JSON compliant")
}

/// Encodes events while yielding to the runtime every few events, so that a request in
/// flight on the same thread keeps moving.
async fn encode_interleaved(events: &[Arc<RunEvent>]) -> Result<Vec<u8>, NonFinite> {
    let mut w = serialize::BodyWriter::new(events.len());
    for slice in events.chunks(64) {
        for e in slice {
            w.push(e)?;
        }
        tokio::task::yield_now().await;
    }
    Ok(w.finish())
}

/// Validates and encodes events into a `POST /v1/events` request; `None` when `events`
/// is empty. Items may be our `RunEvent`, a pydantic `RunEvent` or a dict.
#[pyfunction]
pub fn ingest(py: Python<'_>, events: &Bound<'_, PyList>) -> PyResult<Option<NativeRequest>> {
    if events.is_empty() {
        return Ok(None);
    }
    let items = collect_events(py, events)?;
    let body = py
        .detach(|| serialize::events_body(items.iter().map(|a| a.as_ref())))
        .map_err(|_| non_finite())?;
    Ok(Some(req(api::ingest(body))))
}

/// Validated events of one ingest request, to be encoded while another request is in
/// flight (see `NativeClient.send_and_encode`).
#[pyclass(module = "flightdeck_rs._native", name = "NativeBatch", frozen)]
pub struct NativeBatch {
    events: Vec<Arc<RunEvent>>,
    body: Mutex<Option<Result<Vec<u8>, NonFinite>>>,
}

#[pymethods]
impl NativeBatch {
    /// The `POST /v1/events` request of these events (encoding them now if
    /// `send_and_encode` has not); raises `ValueError` when an event holds `inf`.
    fn request(&self, py: Python<'_>) -> PyResult<NativeRequest> {
        let done = self.body.lock().unwrap_or_else(|p| p.into_inner()).take();
        let body = match done {
            Some(b) => b,
            None => py.detach(|| serialize::events_body(self.events.iter().map(|a| a.as_ref()))),
        };
        Ok(req(api::ingest(body.map_err(|_| non_finite())?)))
    }

    fn __len__(&self) -> usize {
        self.events.len()
    }
}

/// Validates events for a later `send_and_encode`; `None` when `events` is empty.
#[pyfunction]
pub fn collect(py: Python<'_>, events: &Bound<'_, PyList>) -> PyResult<Option<NativeBatch>> {
    if events.is_empty() {
        return Ok(None);
    }
    Ok(Some(NativeBatch {
        events: collect_events(py, events)?,
        body: Mutex::new(None),
    }))
}

#[pymethods]
impl NativeClient {
    /// `POST /v1/events` of `events` in one GIL-free section (encode, send, receive);
    /// returns the request and its response, or `None` when `events` is empty.
    fn send_events(
        &self,
        py: Python<'_>,
        events: &Bound<'_, PyList>,
    ) -> PyResult<Option<(NativeRequest, NativeResponse)>> {
        if events.is_empty() {
            return Ok(None);
        }
        let items = collect_events(py, events)?;
        let client = self.inner.clone();
        let work = async move {
            let body =
                serialize::events_body(items.iter().map(|a| a.as_ref())).map_err(|_| None)?;
            let r = api::ingest(body);
            match client.send(&r).await {
                Ok(resp) => Ok((r, resp)),
                Err(e) => Err(Some((r, e))),
            }
        };
        let out = match runtime::green(py)? {
            Some(waiter) => runtime::block_green(&waiter, work)?,
            None => runtime::block_on(py, work)?,
        };
        match out {
            Ok((r, resp)) => Ok(Some((req(r), NativeResponse { inner: resp }))),
            Err(None) => Err(non_finite()),
            Err(Some((r, e))) => Err(to_pyerr_sync(
                py,
                e,
                r.method.as_str(),
                &self.inner.url_for(&r),
            )),
        }
    }

    /// Sends `req` (if any) while encoding `batch` (if any), in one GIL-free section;
    /// returns the response of `req`. Take the encoded request with `batch.request()`.
    #[pyo3(signature = (req, batch))]
    fn send_and_encode(
        &self,
        py: Python<'_>,
        req: Option<&NativeRequest>,
        batch: Option<&NativeBatch>,
    ) -> PyResult<Option<NativeResponse>> {
        let client = self.inner.clone();
        let r = req.map(|r| &r.inner);
        let (sent, encoded) = match runtime::green(py)? {
            Some(waiter) => {
                let owned = r.cloned();
                let events = batch.map(|b| b.events.clone());
                runtime::block_green(&waiter, async move {
                    let send = async {
                        match &owned {
                            Some(r) => Some(client.send(r).await),
                            None => None,
                        }
                    };
                    let encode = async {
                        match &events {
                            Some(ev) => Some(encode_interleaved(ev).await),
                            None => None,
                        }
                    };
                    tokio::join!(send, encode)
                })?
            }
            None => runtime::block_on(py, async move {
                let send = async {
                    match r {
                        Some(r) => Some(client.send(r).await),
                        None => None,
                    }
                };
                let encode = async {
                    match batch {
                        Some(b) => Some(encode_interleaved(&b.events).await),
                        None => None,
                    }
                };
                tokio::join!(send, encode)
            })?,
        };
        if let (Some(b), Some(body)) = (batch, encoded) {
            *b.body.lock().unwrap_or_else(|p| p.into_inner()) = Some(body);
        }
        match (sent, r) {
            (Some(Ok(resp)), _) => Ok(Some(NativeResponse { inner: resp })),
            (Some(Err(e)), Some(r)) => Err(to_pyerr_sync(
                py,
                e,
                r.method.as_str(),
                &self.inner.url_for(r),
            )),
            _ => Ok(None),
        }
    }
}
