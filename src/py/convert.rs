//! Conversions between Python objects and core types: the validator's view of Python
//! values ([`PySrc`]), datetimes, and events rendered back as Python dicts.

use std::borrow::Cow;

use chrono::{Datelike, Timelike};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDateTime, PyDelta, PyDict, PyFloat, PyFrozenSet, PyInt,
    PyIterator, PyList, PySet, PyString, PyTuple, PyType, PyTzInfo,
};
use pyo3::types::{PyDateAccess, PyDeltaAccess, PyTimeAccess, PyTzInfoAccess};
use pyo3::{intern, IntoPyObjectExt};

use crate::core::event::timestamp::Timestamp;
use crate::core::event::validate::{
    render_errors, CtxValue, Instance, Key, LineError, Loc, Scalar, Source,
};
use crate::core::event::{Metrics, ModelUsage, Request, RunEvent, Text, ToolUsage, Usage};

use super::models::{PyMetrics, PyModelUsage, PyRequest, PyRunEvent, PyToolUsage, PyUsage};

static DATETIME_CLS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE_CLS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static VALIDATION_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A Python value as seen by the core validator.
pub struct PySrc<'py>(pub Bound<'py, PyAny>);

fn datetime_cls(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DATETIME_CLS.import(py, "datetime", "datetime")
}

fn date_cls(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DATE_CLS.import(py, "datetime", "date")
}

/// Reads an exact `datetime.datetime` from its pickle state, one call instead of eight
/// attribute reads (the limited API has no field access): `__reduce__()` is
/// `(cls, (state,))` or `(cls, (state, tzinfo))`, where `state` is 10 bytes: year (2, big
/// endian), month, day, hour, minute, second, microsecond (3, big endian). Both the C and
/// the pure-Python `datetime` use this format. `None` when the state is not that shape.
fn timestamp_from_state(o: &Bound<'_, PyAny>) -> PyResult<Option<Timestamp>> {
    let py = o.py();
    let reduced = o.call_method0(intern!(py, "__reduce__"))?;
    let Ok(reduced) = reduced.cast::<PyTuple>() else {
        return Ok(None);
    };
    let Ok(args) = reduced.get_item(1) else {
        return Ok(None);
    };
    let Ok(args) = args.cast_into::<PyTuple>() else {
        return Ok(None);
    };
    let Ok(state) = args.get_item(0) else {
        return Ok(None);
    };
    let Ok(state) = state.cast::<PyBytes>() else {
        return Ok(None);
    };
    let &[y0, y1, month, day, hour, minute, second, u0, u1, u2] = state.as_bytes() else {
        return Ok(None);
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::from(y0) << 8 | i32::from(y1),
        u32::from(month & 0x7f),
        u32::from(day),
    );
    let time = chrono::NaiveTime::from_hms_micro_opt(
        u32::from(hour),
        u32::from(minute),
        u32::from(second),
        u32::from(u0) << 16 | u32::from(u1) << 8 | u32::from(u2),
    );
    let (Some(date), Some(time)) = (date, time) else {
        return Ok(None);
    };
    let offset = match args.get_item(1) {
        Err(_) => None,
        Ok(tz) if tz.is_none() => None,
        Ok(tz) => tz_offset(o, &tz)?,
    };
    Ok(Some(Timestamp {
        naive: date.and_time(time),
        offset,
    }))
}

/// Whether `o` is one of the other iterables pydantic's lax `list` accepts: sets, ranges,
/// deques, dict views, iterators and generators (never str, bytes or a mapping).
fn is_lax_sequence(o: &Bound<'_, PyAny>) -> bool {
    if o.cast::<PySet>().is_ok()
        || o.cast::<PyFrozenSet>().is_ok()
        || o.cast::<PyIterator>().is_ok()
    {
        return true;
    }
    let ty = o.get_type();
    let Ok(name) = ty.name() else {
        return false;
    };
    let Ok(module) = ty.module() else {
        return false;
    };
    matches!(
        (module.to_str().unwrap_or(""), name.to_str().unwrap_or("")),
        (
            "builtins",
            "range" | "dict_keys" | "dict_values" | "dict_items"
        ) | ("collections", "deque")
    )
}

/// The UTC offset in seconds of `dt` (whose tzinfo is `tz`), as `dt.utcoffset()` says.
fn tz_offset(dt: &Bound<'_, PyAny>, tz: &Bound<'_, PyAny>) -> PyResult<Option<i32>> {
    let py = dt.py();
    if tz.is(PyTzInfo::utc(py)?.as_any()) {
        return Ok(Some(0));
    }
    let off = dt.call_method0(intern!(py, "utcoffset"))?;
    if off.is_none() {
        return Ok(None);
    }
    let d = off.cast::<PyDelta>()?;
    // Rounded to the second, as pydantic does (an offset of 59.999999 s dumps as +00:01).
    let micros = i64::from(d.get_days()) * 86_400_000_000
        + i64::from(d.get_seconds()) * 1_000_000
        + i64::from(d.get_microseconds());
    let secs = (micros as f64 / 1e6).round() as i32;
    Ok(Some(secs))
}

/// Reads a `datetime.datetime` (or subclass) into a [`Timestamp`].
pub fn timestamp_from_py(o: &Bound<'_, PyAny>) -> PyResult<Timestamp> {
    let py = o.py();
    if o.get_type().is(datetime_cls(py)?) {
        if let Some(t) = timestamp_from_state(o)? {
            return Ok(t);
        }
    }
    let dt = o.cast::<PyDateTime>()?;
    let date = chrono::NaiveDate::from_ymd_opt(
        dt.get_year(),
        u32::from(dt.get_month()),
        u32::from(dt.get_day()),
    );
    let time = chrono::NaiveTime::from_hms_micro_opt(
        u32::from(dt.get_hour()),
        u32::from(dt.get_minute()),
        u32::from(dt.get_second()),
        dt.get_microsecond(),
    );
    let (Some(date), Some(time)) = (date, time) else {
        return Err(PyValueError::new_err("datetime out of range"));
    };
    let offset = match dt.get_tzinfo() {
        None => None,
        Some(tz) => tz_offset(o, tz.as_any())?,
    };
    Ok(Timestamp {
        naive: date.and_time(time),
        offset,
    })
}

/// Builds a `datetime.datetime` from a [`Timestamp`] (fixed-offset `timezone` when aware).
pub fn timestamp_to_py<'py>(py: Python<'py>, t: &Timestamp) -> PyResult<Bound<'py, PyAny>> {
    let n = &t.naive;
    let tz = match t.offset {
        None => None,
        Some(0) => Some(PyTzInfo::utc(py)?.to_owned()),
        Some(off) => {
            let delta = PyDelta::new(py, 0, off, 0, true)?;
            Some(PyTzInfo::fixed_offset(py, delta)?)
        }
    };
    let dt = PyDateTime::new(
        py,
        n.year(),
        n.month() as u8,
        n.day() as u8,
        n.hour() as u8,
        n.minute() as u8,
        n.second() as u8,
        n.nanosecond() / 1000,
        tz.as_ref(),
    )?;
    Ok(dt.into_any())
}

impl<'py> Source for PySrc<'py> {
    type Input = Py<PyAny>;

    fn scalar(&self) -> Scalar<'_> {
        let o = &self.0;
        if let Ok(s) = o.cast::<PyString>() {
            return match s.to_str() {
                Ok(t) => Scalar::Str(Cow::Borrowed(t)),
                Err(_) => Scalar::Other,
            };
        }
        if o.is_none() {
            return Scalar::Null;
        }
        if let Ok(d) = o.cast::<PyDict>() {
            let _ = d;
            return Scalar::Mapping;
        }
        if let Ok(b) = o.cast::<PyBool>() {
            return Scalar::Bool(b.is_true());
        }
        if o.cast::<PyInt>().is_ok() {
            return match o.extract::<i64>() {
                Ok(i) => Scalar::Int(i128::from(i)),
                Err(_) => match o.extract::<u64>() {
                    Ok(u) => Scalar::Int(i128::from(u)),
                    Err(_) => Scalar::BigInt(o.lt(0).unwrap_or(false)),
                },
            };
        }
        if let Ok(f) = o.cast::<PyFloat>() {
            return Scalar::Float(f.value());
        }
        if o.cast::<PyList>().is_ok() || o.cast::<PyTuple>().is_ok() {
            return Scalar::Sequence;
        }
        if let Ok(b) = o.cast::<PyBytes>() {
            return Scalar::Bytes(Cow::Borrowed(b.as_bytes()));
        }
        if let Ok(b) = o.cast::<PyByteArray>() {
            return Scalar::ByteArray(Cow::Owned(b.to_vec()));
        }
        let py = o.py();
        if let Ok(cls) = datetime_cls(py) {
            if o.is_instance(cls).unwrap_or(false) {
                return match timestamp_from_py(o) {
                    Ok(t) => Scalar::DateTime(t),
                    Err(_) => Scalar::Other,
                };
            }
        }
        if let Ok(cls) = date_cls(py) {
            if o.is_instance(cls).unwrap_or(false) {
                let ymd = (|| -> PyResult<_> {
                    Ok((
                        o.getattr(intern!(py, "year"))?.extract::<i32>()?,
                        o.getattr(intern!(py, "month"))?.extract::<u32>()?,
                        o.getattr(intern!(py, "day"))?.extract::<u32>()?,
                    ))
                })();
                if let Ok((y, m, d)) = ymd {
                    if let Some(date) = chrono::NaiveDate::from_ymd_opt(y, m, d) {
                        return Scalar::Date(date);
                    }
                }
                return Scalar::Other;
            }
        }
        if is_lax_sequence(o) {
            return Scalar::Sequence;
        }
        Scalar::Other
    }

    fn instance(&self) -> Option<Instance> {
        let o = &self.0;
        // The common inputs (dicts, None) are never our model classes: skip six type checks.
        if o.is_none() || o.cast::<PyDict>().is_ok() {
            return None;
        }
        let py = o.py();
        if let Ok(e) = o.cast::<PyRunEvent>() {
            return e
                .try_borrow()
                .ok()
                .map(|b| Instance::Event(Box::new((*b.inner).clone())));
        }
        if let Ok(x) = o.cast::<PyUsage>() {
            return x
                .try_borrow()
                .ok()?
                .read(py, Usage::clone)
                .ok()
                .map(Instance::Usage);
        }
        if let Ok(x) = o.cast::<PyModelUsage>() {
            return x
                .try_borrow()
                .ok()?
                .read(py, ModelUsage::clone)
                .ok()
                .map(Instance::ModelUsage);
        }
        if let Ok(x) = o.cast::<PyMetrics>() {
            return x
                .try_borrow()
                .ok()?
                .read(py, Metrics::clone)
                .ok()
                .map(Instance::Metrics);
        }
        if let Ok(x) = o.cast::<PyRequest>() {
            return x
                .try_borrow()
                .ok()?
                .read(py, Request::clone)
                .ok()
                .map(Instance::Request);
        }
        if let Ok(x) = o.cast::<PyToolUsage>() {
            return x
                .try_borrow()
                .ok()?
                .read(py, ToolUsage::clone)
                .ok()
                .map(Instance::Tool);
        }
        None
    }

    fn for_each_entry(&self, f: &mut dyn FnMut(Key<'_, Self>, Self)) {
        if let Ok(d) = self.0.cast::<PyDict>() {
            for (k, v) in d.iter() {
                match k.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) {
                    Some(ks) => f(Key::Str(ks), PySrc(v)),
                    None => f(Key::Other(PySrc(k.clone())), PySrc(v)),
                }
            }
        }
    }

    fn elements(&self) -> Vec<Self> {
        match self.0.try_iter() {
            Ok(it) => it.filter_map(Result::ok).map(PySrc).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn input(&self) -> Py<PyAny> {
        self.0.clone().unbind()
    }

    fn describe(&self) -> (String, String) {
        let r = self
            .0
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "<unrepresentable>".into());
        let t = self
            .0
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "object".into());
        (r, t)
    }
}

fn ctx_value(py: Python<'_>, v: &CtxValue) -> PyResult<Py<PyAny>> {
    match v {
        CtxValue::Int(i) => i.into_py_any(py),
        CtxValue::Float(f) => f.into_py_any(py),
        CtxValue::Str(s) => s.into_py_any(py),
    }
}

/// Turns line errors into the `ValidationError` that `flightdeck_rs._errors.validation_error`
/// builds: pydantic's own when pydantic is installed, else ours (a `ValueError` subclass).
pub fn validation_error<I>(
    py: Python<'_>,
    title: &str,
    errors: &[LineError<I>],
    input_to_py: impl Fn(Python<'_>, &I) -> PyResult<Py<PyAny>>,
    input_type: &str,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = VALIDATION_ERROR.import(py, "flightdeck_rs._errors", "validation_error")?;
        let items = PyList::empty(py);
        for e in errors {
            let d = PyDict::new(py);
            d.set_item("type", e.kind)?;
            let loc: Vec<Py<PyAny>> = e
                .loc
                .iter()
                .map(|l| match l {
                    Loc::Key(k) => k.into_py_any(py),
                    Loc::Field(k) => k.into_py_any(py),
                    Loc::Index(i) => i.into_py_any(py),
                })
                .collect::<PyResult<_>>()?;
            d.set_item("loc", PyTuple::new(py, loc)?)?;
            d.set_item("msg", &e.msg)?;
            d.set_item("input", input_to_py(py, &e.input)?)?;
            if let Some((k, v)) = &e.ctx {
                let c = PyDict::new(py);
                c.set_item(*k, ctx_value(py, v)?)?;
                d.set_item("ctx", c)?;
            }
            items.append(d)?;
        }
        let exc = cls.call1((render_errors(title, errors), title, items, input_type))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// Converts a JSON value to the equivalent Python object.
pub fn json_to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_py_any(py)?,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_py_any(py)?
            } else if let Some(u) = n.as_u64() {
                u.into_py_any(py)?
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_py_any(py)?
            }
        }
        Value::String(s) => s.into_py_any(py)?,
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| json_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

fn opt_str<'py>(py: Python<'py>, v: &Option<Text>) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Some(s) => Ok(PyString::new(py, s).into_any()),
        None => Ok(py.None().into_bound(py)),
    }
}

/// `RunEventRequest` as a dict.
pub fn request_dict<'py>(py: Python<'py>, r: &Request) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "session_id"), opt_str(py, &r.session_id)?)?;
    d.set_item(intern!(py, "trace_id"), opt_str(py, &r.trace_id)?)?;
    d.set_item(intern!(py, "span_id"), opt_str(py, &r.span_id)?)?;
    Ok(d)
}

/// `RunEventMetrics` as a dict.
pub fn metrics_dict<'py>(py: Python<'py>, m: &Metrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "latency_ms"), m.latency_ms)?;
    d.set_item(intern!(py, "success"), m.success)?;
    d.set_item(intern!(py, "error_type"), opt_str(py, &m.error_type)?)?;
    Ok(d)
}

/// `RunEventModelUsage` as a dict.
pub fn model_usage_dict<'py>(py: Python<'py>, m: &ModelUsage) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "provider"), m.provider.as_str())?;
    d.set_item(intern!(py, "model"), m.model.as_str())?;
    d.set_item(intern!(py, "input_tokens"), m.input_tokens)?;
    d.set_item(intern!(py, "output_tokens"), m.output_tokens)?;
    d.set_item(intern!(py, "cached_input_tokens"), m.cached_input_tokens)?;
    Ok(d)
}

/// `RunEventToolUsage` as a dict.
pub fn tool_dict<'py>(py: Python<'py>, t: &ToolUsage) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "tool_name"), t.tool_name.as_str())?;
    d.set_item(intern!(py, "invocations"), t.invocations)?;
    d.set_item(intern!(py, "cost_units"), t.cost_units)?;
    Ok(d)
}

/// `RunEventUsage` as a dict.
pub fn usage_dict<'py>(py: Python<'py>, u: &Usage) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "model"), model_usage_dict(py, &u.model)?)?;
    let tools = PyList::empty(py);
    for t in &u.tools {
        tools.append(tool_dict(py, t)?)?;
    }
    d.set_item(intern!(py, "tools"), tools)?;
    Ok(d)
}

/// Labels as a dict (insertion order kept).
pub fn labels_dict<'py>(py: Python<'py>, labels: &[(Text, Text)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in labels {
        d.set_item(k.as_str(), v.as_str())?;
    }
    Ok(d)
}

/// `model_dump()`: `json_mode` renders the timestamp as pydantic's JSON text.
pub fn event_dict<'py>(
    py: Python<'py>,
    e: &RunEvent,
    json_mode: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "api_version"), intern!(py, "v1"))?;
    d.set_item(intern!(py, "type"), e.kind.as_str())?;
    if json_mode {
        d.set_item(intern!(py, "timestamp"), e.timestamp.to_pydantic_string())?;
    } else {
        d.set_item(intern!(py, "timestamp"), timestamp_to_py(py, &e.timestamp)?)?;
    }
    d.set_item(intern!(py, "workspace_id"), e.workspace_id.as_str())?;
    d.set_item(intern!(py, "agent_id"), e.agent_id.as_str())?;
    d.set_item(intern!(py, "release_id"), e.release_id.as_str())?;
    d.set_item(intern!(py, "run_id"), e.run_id.as_str())?;
    d.set_item(intern!(py, "tenant_id"), e.tenant_id.as_str())?;
    d.set_item(intern!(py, "task_id"), e.task_id.as_str())?;
    d.set_item(intern!(py, "environment"), e.environment.as_str())?;
    match &e.request {
        Some(r) => d.set_item(intern!(py, "request"), request_dict(py, r)?)?,
        None => d.set_item(intern!(py, "request"), py.None())?,
    }
    d.set_item(intern!(py, "metrics"), metrics_dict(py, &e.metrics)?)?;
    d.set_item(intern!(py, "usage"), usage_dict(py, &e.usage)?)?;
    d.set_item(intern!(py, "labels"), labels_dict(py, &e.labels)?)?;
    Ok(d)
}

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
