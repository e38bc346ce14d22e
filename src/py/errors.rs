//! The one mapping from core errors to the exceptions callers of `flightdeck.sdk` catch.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::core::error::Error;

/// Converts a core error into the matching Python exception, for the async face.
/// Transport errors become the `httpx.RequestError` subclass httpx would raise, carrying an
/// `httpx.Request`, with the message httpx's async transport gives (see
/// [`Error::async_text`]).
pub fn to_pyerr(py: Python<'_>, e: Error, method: &str, url: &str) -> PyErr {
    let text = e.async_text().map(str::to_string);
    convert(py, e, text, method, url)
}

/// [`to_pyerr`] for the blocking face, whose httpx transport reports a reset during the
/// upload as the closed connection it reads afterwards, and words errors as the core does.
pub fn to_pyerr_sync(py: Python<'_>, e: Error, method: &str, url: &str) -> PyErr {
    let e = match e {
        Error::UploadReset(_) => {
            Error::RemoteProtocol("Server disconnected without sending a response.".into())
        }
        other => other,
    };
    convert(py, e, None, method, url)
}

/// [`to_pyerr`] or [`to_pyerr_sync`], by face.
pub fn to_pyerr_for(py: Python<'_>, e: Error, method: &str, url: &str, sync: bool) -> PyErr {
    if sync {
        to_pyerr_sync(py, e, method, url)
    } else {
        to_pyerr(py, e, method, url)
    }
}

/// `text` replaces the error's own message.
fn convert(py: Python<'_>, e: Error, text: Option<String>, method: &str, url: &str) -> PyErr {
    match &e {
        Error::InvalidUrl(m) => return httpx_error(py, "InvalidURL", m, None),
        Error::Closed => return PyRuntimeError::new_err(e.to_string()),
        Error::NonFinite => return PyValueError::new_err(e.to_string()),
        _ => {}
    }
    let class = e.class_name();
    let request = (|| -> PyResult<Bound<'_, PyAny>> {
        py.import("httpx")?.getattr("Request")?.call1((method, url))
    })()
    .ok();
    let text = text.unwrap_or_else(|| e.to_string());
    let err = httpx_error(py, class, &text, request);
    if let Some(cause) = os_cause(py, &e) {
        err.set_cause(py, Some(cause));
    }
    err
}

/// The `OSError` (e.g. `ConnectionRefusedError`) or `socket.gaierror` behind a transport
/// failure, for `__cause__`: httpx's exceptions have it at the end of their chain, so code
/// that walks the chain for an errno finds it on ours too.
fn os_cause(py: Python<'_>, e: &Error) -> Option<PyErr> {
    let (errno, text) = e.os_error()?;
    let cls = if errno < 0 {
        py.import("socket").ok()?.getattr("gaierror").ok()?
    } else {
        py.get_type::<PyOSError>().into_any()
    };
    Some(PyErr::from_value(cls.call1((errno, text)).ok()?))
}

fn httpx_error(py: Python<'_>, class: &str, msg: &str, request: Option<Bound<'_, PyAny>>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = py.import("httpx")?.getattr(class)?;
        let exc = match request {
            Some(r) => {
                let kw = PyDict::new(py);
                kw.set_item("request", r)?;
                cls.call((msg,), Some(&kw))?
            }
            None => cls.call1((msg,))?,
        };
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}
