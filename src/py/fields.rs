//! The binding's side of the field table: each field type as a Python value
//! ([`PyValue`]: `model_dump`, `repr`), and each record as a dict and a repr ([`PyModel`]).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::core::event::{ApiVersion, EventType, Model, Text, Timestamp};

use super::datetime::timestamp_to_py;

/// The `model_dump` options a native dump applies, at every level of the record.
#[derive(Clone, Copy, Debug, Default)]
pub struct DumpOptions {
    /// `mode="json"`.
    pub json: bool,
    /// Leaves out the fields the caller did not set (`model_fields_set`).
    pub exclude_unset: bool,
    /// Leaves out the fields equal to their default.
    pub exclude_defaults: bool,
    /// Leaves out the fields whose value is `None`.
    pub exclude_none: bool,
}

/// A field's value in Python.
pub trait PyValue {
    /// The value in `model_dump()` (and as an attribute, for plain values); `json` is
    /// `mode="json"`.
    fn to_py<'py>(&self, py: Python<'py>, json: bool) -> PyResult<Bound<'py, PyAny>>;
    /// Appends the value's `repr`.
    fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()>;
    /// The value in `model_dump(**opts)`: records apply the options to their fields.
    fn dump<'py>(&self, py: Python<'py>, opts: DumpOptions) -> PyResult<Bound<'py, PyAny>> {
        self.to_py(py, opts.json)
    }
}

/// A record of the field table in Python (implemented by `py_models!` in `models`, which
/// also makes its [`PyValue`]: the dict of `model_dump()`, and its repr).
pub trait PyModel: Model + PyValue {
    /// The record's field names as Python strings, made once.
    fn keys(py: Python<'_>) -> &[Py<PyString>];
    /// Calls `f` on every field value in declaration order.
    fn for_each_value(&self, f: &mut dyn FnMut(&dyn PyValue) -> PyResult<()>) -> PyResult<()>;
}

/// The record's fields as `name=value, ...` (inside its `repr`).
fn model_repr_fields<M: PyModel>(m: &M, py: Python<'_>, out: &mut String) -> PyResult<()> {
    let mut names = M::FIELDS.iter().enumerate();
    m.for_each_value(&mut |v| {
        if let Some((i, name)) = names.next() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(name);
            out.push('=');
            v.repr(py, out)?;
        }
        Ok(())
    })
}

/// The record's `repr`: `Class(name=value, ...)`.
pub fn model_repr<M: PyModel>(m: &M, py: Python<'_>, out: &mut String) -> PyResult<()> {
    out.push_str(M::NAME);
    out.push('(');
    model_repr_fields(m, py, out)?;
    out.push(')');
    Ok(())
}

fn push_repr(out: &mut String, v: &Bound<'_, PyAny>) -> PyResult<()> {
    out.push_str(v.repr()?.to_str()?);
    Ok(())
}

impl PyValue for Text {
    fn to_py<'py>(&self, py: Python<'py>, _: bool) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyString::new(py, self).into_any())
    }
    fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()> {
        push_repr(out, PyString::new(py, self).as_any())
    }
}

impl PyValue for u64 {
    fn to_py<'py>(&self, py: Python<'py>, _: bool) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.into_pyobject(py)?.into_any())
    }
    fn repr(&self, _: Python<'_>, out: &mut String) -> PyResult<()> {
        out.push_str(&self.to_string());
        Ok(())
    }
}

impl PyValue for bool {
    fn to_py<'py>(&self, py: Python<'py>, _: bool) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.into_pyobject(py)?.to_owned().into_any())
    }
    fn repr(&self, _: Python<'_>, out: &mut String) -> PyResult<()> {
        out.push_str(if *self { "True" } else { "False" });
        Ok(())
    }
}

impl PyValue for f64 {
    fn to_py<'py>(&self, py: Python<'py>, _: bool) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.into_pyobject(py)?.into_any())
    }
    fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()> {
        push_repr(out, &self.into_pyobject(py)?.into_any())
    }
}

/// A `datetime` (pydantic's JSON text with `mode="json"`).
impl PyValue for Timestamp {
    fn to_py<'py>(&self, py: Python<'py>, json: bool) -> PyResult<Bound<'py, PyAny>> {
        if json {
            Ok(PyString::new(py, &self.to_pydantic_string()).into_any())
        } else {
            timestamp_to_py(py, self)
        }
    }
    fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()> {
        push_repr(out, &timestamp_to_py(py, self)?)
    }
}

impl PyValue for EventType {
    fn to_py<'py>(&self, py: Python<'py>, _: bool) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyString::new(py, self.as_str()).into_any())
    }
    fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()> {
        push_repr(out, PyString::new(py, self.as_str()).as_any())
    }
}

impl PyValue for ApiVersion {
    fn to_py<'py>(&self, py: Python<'py>, _: bool) -> PyResult<Bound<'py, PyAny>> {
        Ok(intern!(py, "v1").clone().into_any())
    }
    fn repr(&self, _: Python<'_>, out: &mut String) -> PyResult<()> {
        out.push_str("'v1'");
        Ok(())
    }
}

impl<T: PyValue> PyValue for Option<T> {
    fn to_py<'py>(&self, py: Python<'py>, json: bool) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Some(v) => v.to_py(py, json),
            None => Ok(py.None().into_bound(py)),
        }
    }
    fn dump<'py>(&self, py: Python<'py>, opts: DumpOptions) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Some(v) => v.dump(py, opts),
            None => Ok(py.None().into_bound(py)),
        }
    }
    fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()> {
        match self {
            Some(v) => v.repr(py, out),
            None => {
                out.push_str("None");
                Ok(())
            }
        }
    }
}

impl<T: PyValue> PyValue for Vec<T> {
    fn to_py<'py>(&self, py: Python<'py>, json: bool) -> PyResult<Bound<'py, PyAny>> {
        let list = PyList::empty(py);
        for v in self {
            list.append(v.to_py(py, json)?)?;
        }
        Ok(list.into_any())
    }
    fn dump<'py>(&self, py: Python<'py>, opts: DumpOptions) -> PyResult<Bound<'py, PyAny>> {
        let list = PyList::empty(py);
        for v in self {
            list.append(v.dump(py, opts)?)?;
        }
        Ok(list.into_any())
    }
    fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()> {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            v.repr(py, out)?;
        }
        out.push(']');
        Ok(())
    }
}

/// Labels as a dict (insertion order kept).
pub fn labels_dict<'py>(py: Python<'py>, labels: &[(Text, Text)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in labels {
        d.set_item(k.as_str(), v.as_str())?;
    }
    Ok(d)
}

impl PyValue for Vec<(Text, Text)> {
    fn to_py<'py>(&self, py: Python<'py>, _: bool) -> PyResult<Bound<'py, PyAny>> {
        Ok(labels_dict(py, self)?.into_any())
    }
    fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()> {
        push_repr(out, labels_dict(py, self)?.as_any())
    }
}
