//! `datetime.datetime` <-> [`Timestamp`].

use chrono::{Datelike, Timelike};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
#[cfg(feature = "abi3")]
use pyo3::types::{PyBytes, PyTuple};
use pyo3::types::{PyDateAccess, PyDeltaAccess, PyTimeAccess, PyTzInfoAccess};
use pyo3::types::{PyDateTime, PyDelta, PyType, PyTzInfo};

use crate::core::event::timestamp::Timestamp;

static DATETIME_CLS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE_CLS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `datetime.datetime`.
pub fn datetime_cls(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DATETIME_CLS.import(py, "datetime", "datetime")
}

/// `datetime.date`.
pub fn date_cls(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DATE_CLS.import(py, "datetime", "date")
}

/// Reads an exact `datetime.datetime` from its pickle state, one call instead of eight
/// attribute reads (the limited API has no field access): `__reduce__()` is
/// `(cls, (state,))` or `(cls, (state, tzinfo))`, where `state` is 10 bytes: year (2, big
/// endian), month, day, hour, minute, second, microsecond (3, big endian). Both the C and
/// the pure-Python `datetime` use this format. `None` when the state is not that shape.
///
/// Only in the abi3 build: there pyo3 reads each field through a descriptor, and this is
/// faster (assigning an aware datetime: 337 ns against 583 ns). The per-version builds read
/// the fields with the `PyDateTime_GET_*` macros, which beat it (166 ns against 276 ns); see
/// docs/architecture.md, "Speed tricks".
#[cfg(feature = "abi3")]
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
    // A naive datetime's state tuple has one item: checked, not a raised IndexError.
    let offset = if args.len() > 1 {
        let tz = args.get_item(1)?;
        if tz.is_none() {
            None
        } else {
            tz_offset(o, &tz)?
        }
    } else {
        None
    };
    Ok(Some(Timestamp {
        naive: date.and_time(time),
        offset,
    }))
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
    #[cfg(feature = "abi3")]
    if o.get_type().is(datetime_cls(o.py())?) {
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
