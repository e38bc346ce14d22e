//! The core validator's view of a Python value: what [`Scalar`] it is, its entries and
//! elements, and its description in error messages. Recognising our own model classes is
//! left to `models` (the only module that knows them).

use std::borrow::Cow;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyIterator, PyList, PySet,
    PyString, PyTuple,
};

use crate::core::event::validate::{Key, Scalar};

use super::datetime::{date_cls, datetime_cls, timestamp_from_py};

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

/// Classifies a Python value for the validator.
#[inline]
pub fn scalar<'a>(o: &'a Bound<'_, PyAny>) -> Scalar<'a> {
    if let Ok(s) = o.cast::<PyString>() {
        return match s.to_str() {
            Ok(t) => Scalar::Str(Cow::Borrowed(t)),
            Err(_) => Scalar::Other,
        };
    }
    if o.is_none() {
        return Scalar::Null;
    }
    if o.cast::<PyDict>().is_ok() {
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

/// Visits every entry of a dict: the key (text, or a value that is not a string) and the
/// value.
#[inline]
pub fn for_each_entry<'py>(
    o: &Bound<'py, PyAny>,
    mut f: impl FnMut(Key<'_, Bound<'py, PyAny>>, Bound<'py, PyAny>),
) {
    if let Ok(d) = o.cast::<PyDict>() {
        for (k, v) in d.iter() {
            match k.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) {
                Some(ks) => f(Key::Str(ks), v),
                None => f(Key::Other(k.clone()), v),
            }
        }
    }
}

/// The elements of an iterable (empty when it cannot be iterated).
#[inline]
pub fn elements<'py>(o: &Bound<'py, PyAny>) -> Vec<Bound<'py, PyAny>> {
    match o.try_iter() {
        Ok(it) => it.filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// `(repr, type name)` of a value, for error messages.
pub fn describe(o: &Bound<'_, PyAny>) -> (String, String) {
    let r = o
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unrepresentable>".into());
    let t = o
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into());
    (r, t)
}
