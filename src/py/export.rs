//! `NativeExportStream`: an NDJSON export read line by line as it arrives, each line
//! validated into a `RunEvent` in Rust. Memory stays bounded by one network chunk plus one
//! batch of events, whatever the size of the body.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::core::api::EXPORT_HEADER_KEYS;
use crate::core::error::Error;
use crate::core::event::validate::LineError;
use crate::core::event::{source_json, RunEvent};
use crate::core::export::{LineSplitter, SplitError};
use crate::core::transport::BodyStream;

use super::errors::to_pyerr_for;
use super::models::PyRunEvent;
use super::runtime;
use super::validation_error::{json_invalid, raise_json_errors};

/// Why a line is not an event.
enum Bad {
    Json(serde_json::Error),
    Event(Vec<LineError<serde_json::Value>>),
}

/// What one batch produced.
struct Batch {
    items: Vec<(Bytes, RunEvent)>,
    /// The line that failed, when it is the first of the batch.
    bad: Option<(Bytes, Bad)>,
    failed: Option<Error>,
    too_long: Option<SplitError>,
}

struct State {
    body: Option<BodyStream>,
    split: LineSplitter,
    /// Lines split off but not handed out yet (after a bad line ended a batch early).
    backlog: VecDeque<Bytes>,
    /// A transport failure met after some lines of a batch: reported by the next batch.
    failure: Option<Error>,
    /// `returned` when the stream was closed.
    closed_at: Option<u64>,
}

impl State {
    /// Non-empty lines handed out (valid or not).
    fn returned(&self) -> u64 {
        if let Some(n) = self.closed_at {
            return n;
        }
        self.split.lines() - self.backlog.len() as u64
    }

    async fn next_line(&mut self) -> Result<Option<Bytes>, (Option<Error>, Option<SplitError>)> {
        if let Some(l) = self.backlog.pop_front() {
            return Ok(Some(l));
        }
        if let Some(e) = self.failure.take() {
            return Err((Some(e), None));
        }
        loop {
            if let Some(l) = self.split.next_line().map_err(|e| (None, Some(e)))? {
                return Ok(Some(l));
            }
            if self.split.is_finished() {
                return Ok(None);
            }
            let chunk = match self.body.as_mut() {
                Some(b) => b.chunk().await.map_err(|e| (Some(e), None))?,
                None => None,
            };
            match chunk {
                Some(c) => self.split.feed(&c),
                None => {
                    self.body = None;
                    self.split.finish();
                }
            }
        }
    }

    /// Reads and validates up to `max` lines. A line that is not a valid event ends the
    /// batch before it (it is reported alone, by the next batch).
    async fn batch(&mut self, max: usize) -> Batch {
        let mut out = Batch {
            items: Vec::new(),
            bad: None,
            failed: None,
            too_long: None,
        };
        while out.items.len() < max {
            let line = match self.next_line().await {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err((failed, too_long)) => {
                    if out.items.is_empty() {
                        out.failed = failed;
                        out.too_long = too_long;
                    } else {
                        // Hand out what was read; the next batch reports the failure.
                        self.failure = failed;
                        if let Some(e) = too_long {
                            self.failure = Some(Error::LocalProtocol(e.to_string()));
                        }
                    }
                    break;
                }
            };
            let parsed = match crate::core::json::parse_value(&line) {
                Ok(v) => source_json::event_from_value(&v).map_err(Bad::Event),
                Err(e) => Err(Bad::Json(e)),
            };
            match parsed {
                Ok(ev) => out.items.push((line, ev)),
                Err(bad) if out.items.is_empty() => {
                    out.bad = Some((line, bad));
                    break;
                }
                Err(_) => {
                    self.backlog.push_front(line);
                    break;
                }
            }
        }
        out
    }
}

/// An export body being read (or a complete one, see `from_body`).
#[pyclass(module = "flightdeck_rs._native", name = "NativeExportStream", frozen)]
pub struct NativeExportStream {
    state: Arc<tokio::sync::Mutex<State>>,
    headers: Vec<(String, Vec<u8>)>,
    method: String,
    url: String,
}

impl NativeExportStream {
    pub fn new(
        body: BodyStream,
        headers: Vec<(String, Vec<u8>)>,
        method: &str,
        url: String,
    ) -> Self {
        Self::with_state(
            State {
                body: Some(body),
                split: LineSplitter::default(),
                backlog: VecDeque::new(),
                failure: None,
                closed_at: None,
            },
            headers,
            method,
            url,
        )
    }

    fn with_state(
        state: State,
        headers: Vec<(String, Vec<u8>)>,
        method: &str,
        url: String,
    ) -> Self {
        Self {
            state: Arc::new(tokio::sync::Mutex::new(state)),
            headers,
            method: method.to_string(),
            url,
        }
    }
}

fn convert(
    py: Python<'_>,
    batch: Batch,
    with_lines: bool,
    method: &str,
    url: &str,
    sync: bool,
) -> PyResult<Py<PyAny>> {
    if let Some(e) = batch.failed {
        return Err(to_pyerr_for(py, e, method, url, sync));
    }
    if let Some(e) = batch.too_long {
        return Err(PyValueError::new_err(e.to_string()));
    }
    if let Some((line, bad)) = batch.bad {
        return Err(match bad {
            Bad::Json(e) => json_invalid(PyBytes::new(py, &line).as_any(), &e),
            Bad::Event(errs) => raise_json_errors(py, &errs),
        });
    }
    let list = PyList::empty(py);
    for (line, ev) in batch.items {
        let ev = Py::new(py, PyRunEvent::owning(ev))?;
        if with_lines {
            list.append(PyTuple::new(
                py,
                [
                    PyBytes::new(py, &line).into_any(),
                    ev.into_bound(py).into_any(),
                ],
            )?)?;
        } else {
            list.append(ev)?;
        }
    }
    Ok(list.into_any().unbind())
}

fn check_max(max_events: usize) -> PyResult<usize> {
    if max_events == 0 {
        return Err(PyValueError::new_err("max_events must be > 0"));
    }
    Ok(max_events)
}

#[pymethods]
impl NativeExportStream {
    /// A stream over a body that was already read in full (the injected-httpx path).
    #[staticmethod]
    fn from_body(body: &[u8], headers: Vec<(String, String)>) -> Self {
        Self::with_state(
            State {
                body: None,
                split: LineSplitter::complete(body),
                backlog: VecDeque::new(),
                failure: None,
                closed_at: None,
            },
            headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_bytes()))
                .collect(),
            "GET",
            String::new(),
        )
    }

    /// Up to `max_events` events (as `(line, event)` pairs with `with_lines`), waiting for
    /// the network as needed (GIL released); an empty list at the end of the body. Raises
    /// `ValidationError` for a line that is not an event (after handing out the events
    /// before it), or the `httpx` error that broke the body.
    #[pyo3(signature = (max_events, with_lines = false))]
    fn next_batch(
        &self,
        py: Python<'_>,
        max_events: usize,
        with_lines: bool,
    ) -> PyResult<Py<PyAny>> {
        let max = check_max(max_events)?;
        let state = self.state.clone();
        let batch =
            runtime::block_on_shared(py, async move { state.lock().await.batch(max).await })?;
        convert(py, batch, with_lines, &self.method, &self.url, true)
    }

    /// Async twin of `next_batch`: an awaitable for the running event loop (asyncio or trio).
    #[pyo3(signature = (max_events, with_lines = false))]
    fn next_batch_async<'py>(
        &self,
        py: Python<'py>,
        max_events: usize,
        with_lines: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let max = check_max(max_events)?;
        let state = self.state.clone();
        let method = self.method.clone();
        let url = self.url.clone();
        runtime::awaitable(py, move || async move {
            let batch = state.lock().await.batch(max).await;
            move |py: Python<'_>| convert(py, batch, with_lines, &method, &url, false)
        })
    }

    /// Non-empty lines handed out so far, valid or not.
    #[getter]
    fn returned(&self) -> PyResult<u64> {
        self.state
            .try_lock()
            .map(|s| s.returned())
            .map_err(|_| PyRuntimeError::new_err("the export stream is being read"))
    }

    /// The `X-Flightdeck-*` headers, spelled as `fetch_runs_export_ndjson` returns them.
    fn export_headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for k in EXPORT_HEADER_KEYS {
            let lower = k.to_ascii_lowercase();
            if let Some((_, v)) = self.headers.iter().find(|(n, _)| *n == lower) {
                let all = self.headers.iter().map(|(_, v)| v.as_slice());
                d.set_item(k, crate::py::http_args::header_text(all, v))?;
            }
        }
        Ok(d)
    }

    /// Stops reading: the connection is dropped (not reused), later batches are empty;
    /// `returned` keeps its value.
    fn close(&self) {
        if let Ok(mut s) = self.state.try_lock() {
            let returned = s.returned();
            s.body = None;
            s.split = LineSplitter::complete(b"");
            s.backlog.clear();
            s.failure = None;
            s.closed_at = Some(returned);
        }
    }
}
