//! pydantic-compatible `ValidationError`s from the core validator's line errors.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::core::event::validate::{render_errors, CtxValue, LineError, Loc};

static VALIDATION_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

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

fn py_input(py: Python<'_>, i: &Py<PyAny>) -> PyResult<Py<PyAny>> {
    Ok(i.clone_ref(py))
}

/// Raises `ValidationError` for Python-object input errors.
pub fn raise_py(py: Python<'_>, title: &str, errors: &[LineError<Py<PyAny>>]) -> PyErr {
    validation_error(py, title, errors, py_input, "python")
}

pub fn raise_json(py: Python<'_>, title: &str, errors: &[LineError<serde_json::Value>]) -> PyErr {
    validation_error(py, title, errors, json_to_py, "json")
}

/// Raises `ValidationError` for JSON-input errors of a `RunEvent`.
pub fn raise_json_errors(py: Python<'_>, errors: &[LineError<serde_json::Value>]) -> PyErr {
    raise_json(py, "RunEvent", errors)
}

/// The `ValidationError` pydantic raises for JSON text that is not valid Unicode.
pub fn string_unicode(data: &Bound<'_, PyAny>) -> PyErr {
    let err = LineError {
        loc: Vec::new(),
        kind: "string_unicode",
        msg: "Input should be a valid string, unable to parse raw data as a unicode string".into(),
        input: data.clone().unbind(),
        input_repr: data.repr().map(|r| r.to_string()).unwrap_or_default(),
        input_type: "str".to_string(),
        ctx: None,
    };
    raise_py(data.py(), "RunEvent", &[err])
}

/// The `ValidationError` pydantic raises for text that is not JSON.
pub fn json_invalid(data: &Bound<'_, PyAny>, e: &serde_json::Error) -> PyErr {
    let err = LineError {
        loc: Vec::new(),
        kind: "json_invalid",
        msg: format!("Invalid JSON: {e}"),
        input: data.clone().unbind(),
        input_repr: data.repr().map(|r| r.to_string()).unwrap_or_default(),
        input_type: "str".to_string(),
        ctx: Some(("error", CtxValue::Str(e.to_string()))),
    };
    raise_py(data.py(), "RunEvent", &[err])
}

/// pydantic's `model_type` error for a value that is neither a mapping nor an instance.
pub fn model_type_error(obj: &Bound<'_, PyAny>, class: &str) -> PyErr {
    let err = LineError {
        loc: Vec::new(),
        kind: "model_type",
        msg: format!("Input should be a valid dictionary or instance of {class}"),
        input: obj.clone().unbind(),
        input_repr: obj.repr().map(|r| r.to_string()).unwrap_or_default(),
        input_type: obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        ctx: Some(("class_name", CtxValue::Str(class.to_string()))),
    };
    raise_py(obj.py(), class, &[err])
}
