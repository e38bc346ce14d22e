//! Request arguments and response headers as httpx renders them (for the native client).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};

/// Renders a value as the reference renders query parameters (httpx's rules):
/// `True`/`False` → `true`/`false`, `None` → empty, anything else `str(value)`.
pub fn query_value(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_str()?.to_string());
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_string());
    }
    if v.is_none() {
        return Ok(String::new());
    }
    Ok(v.str()?.to_str()?.to_string())
}

/// A response header's value as text, decoded as httpx decodes it: UTF-8 when every header
/// value of the response is valid UTF-8, else ISO-8859-1 (each byte one character).
pub fn header_text<'a>(all: impl IntoIterator<Item = &'a [u8]>, value: &[u8]) -> String {
    let utf8 = all.into_iter().all(|v| std::str::from_utf8(v).is_ok());
    match std::str::from_utf8(value) {
        Ok(s) if utf8 => s.to_owned(),
        _ => value.iter().map(|&b| char::from(b)).collect(),
    }
}
