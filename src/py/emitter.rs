//! `NativeEmitter`: the Python face of `core::emitter`. `emit()` validates and encodes on
//! the caller's thread and enqueues without waiting; waits release the GIL.

use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::core::emitter::spool::{Mode as SpoolMode, SpoolConfig};
use crate::core::emitter::{Config, Emitter, Level, Rejected};
use crate::core::event::serialize::{self, Mode};
use crate::core::event::source_json;
use crate::core::retry::DeliveryRule;

use super::models::{validate_event, PyRunEvent};
use super::validation_error::raise_json_errors;

/// Return codes of `emit`.
const ACCEPTED: u32 = 1;
const QUEUE_FULL: u32 = 10;
const TOO_LARGE: u32 = 11;
const AFTER_CLOSE: u32 = 12;
const SPOOL_FULL: u32 = 13;
/// Added to the code when log notices are waiting to be drained.
const NOTICES: u32 = 0x100;

fn secs(name: &str, v: f64) -> PyResult<Duration> {
    if !v.is_finite() || v < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a finite number >= 0, got {v}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

fn positive(name: &str, v: i64) -> PyResult<usize> {
    if v <= 0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be > 0, got {v}"
        )));
    }
    usize::try_from(v).map_err(|_| PyValueError::new_err(format!("{name} is too large: {v}")))
}

/// The native background emitter.
#[pyclass(module = "flightdeck_rs._native", name = "NativeEmitter")]
pub struct NativeEmitter {
    inner: Emitter,
}

impl NativeEmitter {
    fn ensure_pid(&mut self) -> PyResult<()> {
        if self.inner.pid() != crate::core::pid::current() {
            self.inner.reset_after_fork().map_err(|e| {
                PyRuntimeError::new_err(format!("cannot restart emitter after fork: {e}"))
            })?;
        }
        Ok(())
    }

    fn encode(py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        let nonfinite =
            |_| PyValueError::new_err("Out of range float values are not JSON compliant");
        if let Ok(e) = event.cast::<PyRunEvent>() {
            return serialize::to_vec(&*PyRunEvent::shared(e)?, Mode::Wire).map_err(nonfinite);
        }
        let validated = if event.cast::<PyDict>().is_ok() {
            validate_event(py, event)?
        } else if event.cast::<PyString>().is_ok() || event.cast::<PyBytes>().is_ok() {
            let v: serde_json::Value = if let Ok(s) = event.cast::<PyString>() {
                crate::core::json::parse_value(s.to_str()?.as_bytes())
            } else {
                crate::core::json::parse_value(event.cast::<PyBytes>()?.as_bytes())
            }
            .map_err(|e| PyValueError::new_err(format!("Invalid JSON: {e}")))?;
            source_json::event_from_value(&v).map_err(|errs| raise_json_errors(py, &errs))?
        } else if event.hasattr("model_dump")? {
            validate_event(py, &event.call_method0("model_dump")?)?
        } else {
            return Err(PyTypeError::new_err(format!(
                "event must be a RunEvent, a dict or JSON text, got {}",
                event.get_type().name()?
            )));
        };
        serialize::to_vec(&validated, Mode::Wire).map_err(nonfinite)
    }

    fn encode_compact(py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        // Queue limits count bytes; keep the allocation equal to the length.
        let mut v = Self::encode(py, event)?;
        v.shrink_to_fit();
        Ok(v)
    }
}

#[pymethods]
impl NativeEmitter {
    #[new]
    #[pyo3(signature = (base_url, *, api_token, max_queue_events, max_queue_bytes, max_batch_events,
        max_batch_bytes, max_event_bytes, flush_interval_s, connect_timeout_s, request_timeout_s,
        backoff_base_s, backoff_max_s, spool_dir, spool_mode, spool_max_bytes, spool_max_age_s))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        base_url: &str,
        api_token: Option<String>,
        max_queue_events: i64,
        max_queue_bytes: i64,
        max_batch_events: i64,
        max_batch_bytes: i64,
        max_event_bytes: i64,
        flush_interval_s: f64,
        connect_timeout_s: f64,
        request_timeout_s: f64,
        backoff_base_s: f64,
        backoff_max_s: f64,
        spool_dir: Option<std::path::PathBuf>,
        spool_mode: &str,
        spool_max_bytes: i64,
        spool_max_age_s: f64,
    ) -> PyResult<Self> {
        let mut cfg = Config::new(base_url);
        cfg.api_token = api_token;
        cfg.max_queue_events = positive("max_queue_events", max_queue_events)?;
        cfg.max_queue_bytes = positive("max_queue_bytes", max_queue_bytes)?;
        cfg.max_batch_events = positive("max_batch_events", max_batch_events)?;
        cfg.max_batch_bytes = positive("max_batch_bytes", max_batch_bytes)?;
        cfg.max_event_bytes = positive("max_event_bytes", max_event_bytes)?;
        cfg.flush_interval =
            secs("flush_interval_s", flush_interval_s)?.max(Duration::from_millis(1));
        cfg.connect_timeout = secs("connect_timeout_s", connect_timeout_s)?;
        cfg.request_timeout = secs("request_timeout_s", request_timeout_s)?;
        cfg.retry = DeliveryRule {
            base: secs("backoff_base_s", backoff_base_s)?,
            cap: secs("backoff_max_s", backoff_max_s)?,
        };
        let mode = match spool_mode {
            "async" => SpoolMode::Async,
            "sync" => SpoolMode::Sync,
            other => {
                return Err(PyValueError::new_err(format!(
                    "spool_mode must be 'async' or 'sync', got {other:?}"
                )))
            }
        };
        if let Some(dir) = spool_dir {
            let mut sc = SpoolConfig::new(dir, mode);
            sc.set_max_bytes(positive("spool_max_bytes", spool_max_bytes)? as u64);
            sc.max_age = secs("spool_max_age_s", spool_max_age_s)?;
            cfg.spool = Some(sc);
        }
        let inner = Emitter::start(cfg)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start emitter thread: {e}")))?;
        Ok(Self { inner })
    }

    /// Validates, encodes and enqueues one event; returns a status code (1 = accepted).
    fn emit(&mut self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<u32> {
        self.ensure_pid()?;
        let bytes = Self::encode_compact(py, event)?;
        let code = match self.inner.emit(bytes) {
            Ok(()) => ACCEPTED,
            Err(Rejected::QueueFull) => QUEUE_FULL,
            Err(Rejected::TooLarge) => TOO_LARGE,
            Err(Rejected::AfterClose) => AFTER_CLOSE,
            Err(Rejected::SpoolFull) => SPOOL_FULL,
        };
        Ok(if self.inner.has_notices() {
            code | NOTICES
        } else {
            code
        })
    }

    /// Asks for immediate delivery; returns the sequence number to wait for.
    fn request_flush(&mut self) -> PyResult<u64> {
        self.ensure_pid()?;
        Ok(self.inner.request_flush())
    }

    /// Waits (GIL released) up to `timeout_s` for events up to `target` to be resolved.
    fn wait(slf: PyRef<'_, Self>, target: u64, timeout_s: f64) -> PyResult<bool> {
        let t = secs("timeout_s", timeout_s)?;
        let py = slf.py();
        let shared = slf.inner.shared();
        drop(slf);
        super::runtime::wait_blocking(py, move || shared.wait_resolved(target, t))
    }

    /// Starts closing with a delivery deadline of `timeout_s`.
    fn begin_close(&mut self, timeout_s: f64) -> PyResult<()> {
        self.ensure_pid()?;
        self.inner.begin_close(secs("timeout_s", timeout_s)?);
        Ok(())
    }

    /// Waits (GIL released) for the sender thread to stop.
    fn wait_finished(slf: &Bound<'_, Self>, timeout_s: f64) -> PyResult<bool> {
        let t = secs("timeout_s", timeout_s)?;
        let shared = slf.borrow().inner.shared();
        let done = super::runtime::wait_blocking(slf.py(), move || shared.wait_finished(t))?;
        if done {
            if let Ok(mut me) = slf.try_borrow_mut() {
                me.inner.reap();
            }
        }
        Ok(done)
    }

    /// Re-creates the queue and sender in a forked child.
    fn reset_after_fork(&mut self) -> PyResult<u64> {
        self.inner
            .reset_after_fork()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot restart emitter after fork: {e}")))
    }

    /// Log notices from the sender: `(level, message)` pairs.
    fn take_notices(&self) -> Vec<(&'static str, String)> {
        self.inner
            .take_notices()
            .into_iter()
            .map(|(l, m)| {
                (
                    if l == Level::Error {
                        "error"
                    } else {
                        "warning"
                    },
                    m,
                )
            })
            .collect()
    }

    /// Counters and gauges.
    fn stats<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.ensure_pid()?;
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("accepted", s.accepted)?;
        d.set_item("acked", s.acked)?;
        d.set_item("server_inserted", s.server_inserted)?;
        d.set_item("server_duplicates", s.server_duplicates)?;
        d.set_item("requests", s.requests)?;
        d.set_item("retries", s.retries)?;
        let dropped = PyDict::new(py);
        dropped.set_item("queue_full", s.dropped_queue_full)?;
        dropped.set_item("invalid", s.dropped_invalid)?;
        dropped.set_item("too_large", s.dropped_too_large)?;
        dropped.set_item("at_shutdown", s.dropped_at_shutdown)?;
        dropped.set_item("after_close", s.dropped_after_close)?;
        dropped.set_item("spool_full", s.dropped_spool_full)?;
        dropped.set_item("spool_expired", s.dropped_spool_expired)?;
        dropped.set_item("spool_unreadable", s.dropped_spool_unreadable)?;
        for (k, v) in dropped.iter() {
            d.set_item(format!("dropped_{}", k.extract::<String>()?), v)?;
        }
        d.set_item("dropped", dropped)?;
        d.set_item("dropped_after_accept", s.dropped_after_accept)?;
        d.set_item("worker_restarts", s.worker_restarts)?;
        d.set_item("discarded_on_fork", s.discarded_on_fork)?;
        d.set_item("spool_bytes", s.spool_bytes)?;
        d.set_item("spool_events", s.spool_events)?;
        d.set_item("oldest_unsent_age_s", s.oldest_unsent_age_s)?;
        d.set_item("spool_replayed", s.spool_replayed)?;
        d.set_item("spool_corrupt_lines", s.spool_corrupt_lines)?;
        d.set_item("left_in_spool", s.left_in_spool)?;
        d.set_item("queue_events", s.queue_events)?;
        d.set_item("queue_bytes", s.queue_bytes)?;
        d.set_item("in_flight", s.in_flight)?;
        d.set_item("state", s.state)?;
        d.set_item("last_error", s.last_error)?;
        Ok(d)
    }

    #[getter]
    fn pid(&self) -> u32 {
        self.inner.pid()
    }

    #[getter]
    fn closing(&self) -> bool {
        self.inner.is_closing()
    }
}
