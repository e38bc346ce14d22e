//! `RunEvent` and its nested records as Python classes.
//!
//! A `RunEvent` owns its data (`Arc<core::RunEvent>`, copied on write, so a batch can be
//! serialized without the GIL). Nested objects read from an event (`ev.usage.model`) are
//! views that read and write through their parent, so `ev.usage.model.input_tokens = 5`
//! changes `ev` as it does with pydantic; nested objects built directly own their data.

use std::sync::Arc;

use pyo3::exceptions::{PyAttributeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};
use pyo3::IntoPyObjectExt;

use crate::core::event::serialize::{self, Mode};
use crate::core::event::source_json;
use crate::core::event::validate::{self, Ctx, Instance, Key, Scalar, Source};
use crate::core::event::{
    FieldsSet, Metrics, ModelUsage, Request, RunEvent, Text, ToolUsage, Usage, METRICS_FIELDS,
    MODEL_USAGE_FIELDS, REQUEST_FIELDS, TOOL_FIELDS, USAGE_FIELDS,
};
use crate::core::json;

use super::convert;
use super::datetime::timestamp_to_py;
use super::dump;
use super::validation_error::{
    json_invalid, model_type_error, raise_json, raise_py, string_unicode,
};

/// A Python value as seen by the core validator.
pub struct PySrc<'py>(pub Bound<'py, PyAny>);

/// Reads the data of an instance of model class `C` (`None` when borrowed or detached).
fn instance_of<C: pyo3::PyClass, T>(
    o: &Bound<'_, PyAny>,
    read: impl FnOnce(&C, Python<'_>) -> PyResult<T>,
) -> Option<Option<T>> {
    let x = o.cast::<C>().ok()?;
    Some(x.try_borrow().ok().and_then(|b| read(&b, o.py()).ok()))
}

impl<'py> Source for PySrc<'py> {
    type Input = Py<PyAny>;

    fn scalar(&self) -> Scalar<'_> {
        convert::scalar(&self.0)
    }

    fn instance(&self) -> Option<Instance> {
        let o = &self.0;
        // The common inputs (dicts, None) are never our model classes: skip six type checks.
        if o.is_none() || o.cast::<PyDict>().is_ok() {
            return None;
        }
        if let Some(e) = instance_of(o, |e: &PyRunEvent, _| Ok((*e.inner).clone())) {
            return e.map(|e| Instance::Event(Box::new(e)));
        }
        if let Some(x) = instance_of(o, |x: &PyUsage, py| x.read(py, Usage::clone)) {
            return x.map(Instance::Usage);
        }
        if let Some(x) = instance_of(o, |x: &PyModelUsage, py| x.read(py, ModelUsage::clone)) {
            return x.map(Instance::ModelUsage);
        }
        if let Some(x) = instance_of(o, |x: &PyMetrics, py| x.read(py, Metrics::clone)) {
            return x.map(Instance::Metrics);
        }
        if let Some(x) = instance_of(o, |x: &PyRequest, py| x.read(py, Request::clone)) {
            return x.map(Instance::Request);
        }
        if let Some(x) = instance_of(o, |x: &PyToolUsage, py| x.read(py, ToolUsage::clone)) {
            return x.map(Instance::Tool);
        }
        None
    }

    fn for_each_entry(&self, f: &mut dyn FnMut(Key<'_, Self>, Self)) {
        convert::for_each_entry(&self.0, &mut |k, v| match k {
            Key::Str(s) => f(Key::Str(s), PySrc(v)),
            Key::Other(o) => f(Key::Other(PySrc(o)), PySrc(v)),
        });
    }

    fn elements(&self) -> Vec<Self> {
        convert::elements(&self.0).into_iter().map(PySrc).collect()
    }

    fn input(&self) -> Py<PyAny> {
        self.0.clone().unbind()
    }

    fn describe(&self) -> (String, String) {
        convert::describe(&self.0)
    }
}

/// Validates a Python value (mapping, our instance) as a `RunEvent`.
pub fn validate_event(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<RunEvent> {
    let mut ctx = Ctx::default();
    match validate::event(&mut ctx, &PySrc(v.clone())) {
        Some(e) if ctx.errors.is_empty() => Ok(e),
        _ => Err(raise_py(py, "RunEvent", &ctx.errors)),
    }
}

fn kwargs_or_empty<'py>(py: Python<'py>, kw: Option<&Bound<'py, PyDict>>) -> Bound<'py, PyAny> {
    match kw {
        Some(d) => d.clone().into_any(),
        None => PyDict::new(py).into_any(),
    }
}

fn json_text(data: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let parsed = if let Ok(s) = data.cast::<PyString>() {
        // A lone surrogate cannot be UTF-8: pydantic reports the text as not a string.
        let text = s.to_str().map_err(|_| string_unicode(data))?;
        json::parse_value(text.as_bytes())
    } else if let Ok(b) = data.cast::<PyBytes>() {
        json::parse_value(b.as_bytes())
    } else {
        let b: Vec<u8> = data.extract()?;
        json::parse_value(&b)
    };
    parsed.map_err(|e| json_invalid(data, &e))
}

/// Calls `flightdeck_rs._model_api.<name>(*args, **kwargs)`: the pydantic-model API beyond
/// the fast paths (serialization options, strict / attribute validation) lives in Python.
fn model_api<'py>(
    py: Python<'py>,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("flightdeck_rs._model_api")?
        .getattr(name)?
        .call(args, kwargs)
}

/// pydantic's keyword options of `model_dump*` / `model_validate*`.
const KNOWN_OPTIONS: [&str; 20] = [
    "include",
    "exclude",
    "context",
    "by_alias",
    "exclude_unset",
    "exclude_defaults",
    "exclude_none",
    "exclude_computed_fields",
    "round_trip",
    "warnings",
    "fallback",
    "serialize_as_any",
    "polymorphic_serialization",
    "indent",
    "ensure_ascii",
    "strict",
    "extra",
    "from_attributes",
    "by_name",
    "mode",
];

/// Whether any keyword option is given with an effect: an unknown name, or a known one not
/// at pydantic's default (`None`, `False`, `warnings=True`). Those calls leave the fast path.
fn has_options(opts: Option<&Bound<'_, PyDict>>) -> bool {
    opts.is_some_and(|d| {
        d.iter().any(|(k, v)| {
            let Ok(k) = k.extract::<&str>() else {
                return true;
            };
            if !KNOWN_OPTIONS.contains(&k) {
                return true;
            }
            let default = v.is_none()
                || v.cast::<pyo3::types::PyBool>()
                    .is_ok_and(|b| !b.is_true() || k == "warnings");
            !default
        })
    })
}

/// The names in `set`, as a Python `set`.
fn fields_set_of<'py>(
    py: Python<'py>,
    names: &[&str],
    set: FieldsSet,
) -> PyResult<Bound<'py, pyo3::types::PySet>> {
    let out = pyo3::types::PySet::empty(py)?;
    for (i, n) in names.iter().enumerate() {
        if set.contains(i) {
            out.add(*n)?;
        }
    }
    Ok(out)
}

/// A [`FieldsSet`] from field names (unknown names are ignored, as pydantic keeps them
/// without effect on dumps).
fn fields_set_from(names: &[&str], given: &Bound<'_, PyAny>) -> PyResult<FieldsSet> {
    let mut set = FieldsSet::default();
    for n in given.try_iter()? {
        let n = n?;
        if let Ok(s) = n.extract::<String>() {
            if let Some(i) = names.iter().position(|f| *f == s) {
                set.add(i);
            }
        }
    }
    Ok(set)
}

fn dump_mode(mode: &str) -> PyResult<bool> {
    match mode {
        "python" => Ok(false),
        "json" => Ok(true),
        other => Err(PyValueError::new_err(format!(
            "mode must be 'python' or 'json', got {other:?}"
        ))),
    }
}

fn repr_of(v: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(v.repr()?.to_str()?.to_string())
}

fn s_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    repr_of(PyString::new(py, s).as_any())
}

fn opt_repr(py: Python<'_>, s: &Option<Text>) -> PyResult<String> {
    match s {
        Some(s) => s_repr(py, s),
        None => Ok("None".into()),
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn request_fields(py: Python<'_>, r: &Request) -> PyResult<String> {
    Ok(format!(
        "session_id={}, trace_id={}, span_id={}",
        opt_repr(py, &r.session_id)?,
        opt_repr(py, &r.trace_id)?,
        opt_repr(py, &r.span_id)?
    ))
}

fn metrics_fields(py: Python<'_>, m: &Metrics) -> PyResult<String> {
    Ok(format!(
        "latency_ms={}, success={}, error_type={}",
        m.latency_ms.map_or("None".to_string(), |v| v.to_string()),
        py_bool(m.success),
        opt_repr(py, &m.error_type)?
    ))
}

fn model_usage_fields(py: Python<'_>, m: &ModelUsage) -> PyResult<String> {
    Ok(format!(
        "provider={}, model={}, input_tokens={}, output_tokens={}, cached_input_tokens={}",
        s_repr(py, &m.provider)?,
        s_repr(py, &m.model)?,
        m.input_tokens,
        m.output_tokens,
        m.cached_input_tokens
    ))
}

fn tool_fields(py: Python<'_>, t: &ToolUsage) -> PyResult<String> {
    Ok(format!(
        "tool_name={}, invocations={}, cost_units={}",
        s_repr(py, &t.tool_name)?,
        t.invocations,
        repr_of(&t.cost_units.into_pyobject(py)?.into_any())?
    ))
}

fn usage_fields(py: Python<'_>, u: &Usage) -> PyResult<String> {
    let tools = u
        .tools
        .iter()
        .map(|t| Ok(format!("RunEventToolUsage({})", tool_fields(py, t)?)))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(format!(
        "model=RunEventModelUsage({}), tools=[{}]",
        model_usage_fields(py, &u.model)?,
        tools.join(", ")
    ))
}

fn event_fields(py: Python<'_>, e: &RunEvent) -> PyResult<String> {
    let mut out = format!(
        "api_version='v1', type={}, timestamp={}",
        s_repr(py, e.kind.as_str())?,
        repr_of(&timestamp_to_py(py, &e.timestamp)?)?
    );
    for (name, v) in [
        ("workspace_id", &e.workspace_id),
        ("agent_id", &e.agent_id),
        ("release_id", &e.release_id),
        ("run_id", &e.run_id),
        ("tenant_id", &e.tenant_id),
        ("task_id", &e.task_id),
        ("environment", &e.environment),
    ] {
        out.push_str(&format!(", {name}={}", s_repr(py, v)?));
    }
    let req = match &e.request {
        Some(r) => format!("RunEventRequest({})", request_fields(py, r)?),
        None => "None".into(),
    };
    out.push_str(&format!(
        ", request={req}, metrics=RunEventMetrics({}), usage=RunEventUsage({}), labels={}",
        metrics_fields(py, &e.metrics)?,
        usage_fields(py, &e.usage)?,
        repr_of(dump::labels_dict(py, &e.labels)?.as_any())?
    ));
    Ok(out)
}

/// Field-wise equality as pydantic compares: aware timestamps by instant, labels as a dict.
fn events_equal(a: &RunEvent, b: &RunEvent) -> bool {
    let ts_equal = match (a.timestamp.offset, b.timestamp.offset) {
        (Some(_), Some(_)) => a.timestamp.utc_naive() == b.timestamp.utc_naive(),
        (None, None) => a.timestamp.naive == b.timestamp.naive,
        _ => false,
    };
    let labels_equal = a.labels.len() == b.labels.len()
        && a.labels
            .iter()
            .all(|(k, v)| b.labels.iter().any(|(k2, v2)| k == k2 && v == v2));
    ts_equal
        && labels_equal
        && a.kind == b.kind
        && a.workspace_id == b.workspace_id
        && a.agent_id == b.agent_id
        && a.release_id == b.release_id
        && a.run_id == b.run_id
        && a.tenant_id == b.tenant_id
        && a.task_id == b.task_id
        && a.environment == b.environment
        && a.request == b.request
        && a.metrics == b.metrics
        && a.usage == b.usage
}

/// One agent run: the record `POST /v1/events` accepts.
#[pyclass(module = "flightdeck_rs.models", name = "RunEvent", weakref)]
pub struct PyRunEvent {
    pub inner: Arc<RunEvent>,
}

impl PyRunEvent {
    /// Runs `f` on the event data.
    pub fn read<R>(&self, _py: Python<'_>, f: impl FnOnce(&RunEvent) -> R) -> PyResult<R> {
        Ok(f(&self.inner))
    }

    /// Runs `f` on the event data for modification (copy-on-write).
    pub fn write<R>(&mut self, _py: Python<'_>, f: impl FnOnce(&mut RunEvent) -> R) -> PyResult<R> {
        Ok(f(Arc::make_mut(&mut self.inner)))
    }
}

#[pymethods]
impl PyRunEvent {
    #[new]
    #[pyo3(signature = (**data))]
    fn new(py: Python<'_>, data: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let src = kwargs_or_empty(py, data);
        let mut ctx = Ctx::default();
        match validate::event_from_map(&mut ctx, &PySrc(src)) {
            Some(e) if ctx.errors.is_empty() => Ok(Self { inner: Arc::new(e) }),
            _ => Err(raise_py(py, "RunEvent", &ctx.errors)),
        }
    }

    /// Validates a dict (or an existing event) into a `RunEvent`.
    #[classmethod]
    #[pyo3(signature = (obj, **opts))]
    fn model_validate<'py>(
        cls: &Bound<'py, PyType>,
        py: Python<'py>,
        obj: &Bound<'py, PyAny>,
        opts: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if has_options(opts) {
            return model_api(py, "model_validate", (cls, obj), opts);
        }
        if let Ok(o) = obj.cast::<PyRunEvent>() {
            return Ok(o.clone().into_any());
        }
        let e = if obj.cast::<PyDict>().is_err()
            && obj.cast::<PyRunEvent>().is_err()
            && obj.hasattr("model_dump")?
        {
            validate_event(py, &obj.call_method0("model_dump")?)?
        } else {
            validate_event(py, obj)?
        };
        Ok(Bound::new(py, Self { inner: Arc::new(e) })?.into_any())
    }

    /// Validates JSON text (str or bytes) into a `RunEvent`.
    #[classmethod]
    #[pyo3(signature = (json_data, **opts))]
    fn model_validate_json<'py>(
        cls: &Bound<'py, PyType>,
        py: Python<'py>,
        json_data: &Bound<'py, PyAny>,
        opts: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if has_options(opts) {
            return model_api(py, "model_validate_json", (cls, json_data), opts);
        }
        let v = json_text(json_data)?;
        let e =
            source_json::event_from_value(&v).map_err(|errs| raise_json(py, "RunEvent", &errs))?;
        Ok(Bound::new(py, Self { inner: Arc::new(e) })?.into_any())
    }

    /// The event as a dict; `mode="json"` gives JSON-ready values (timestamp as text).
    /// Takes pydantic's other options too (`include`, `exclude`, `exclude_unset`, ...).
    #[pyo3(signature = (*, mode = "python", **opts))]
    fn model_dump<'py>(
        slf: &Bound<'py, Self>,
        mode: &str,
        opts: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if has_options(opts) {
            return model_api(py, "model_dump", (slf, mode), opts);
        }
        Ok(dump::event_dict(py, &slf.borrow().inner, dump_mode(mode)?)?.into_any())
    }

    /// The event as compact JSON text, as pydantic's `model_dump_json()` writes it.
    /// Takes pydantic's options too (`indent`, `include`, `exclude`, ...).
    #[pyo3(signature = (**opts))]
    fn model_dump_json<'py>(
        slf: &Bound<'py, Self>,
        opts: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if has_options(opts) {
            return model_api(py, "model_dump_json", (slf,), opts);
        }
        let v = serialize::to_vec(&slf.borrow().inner, Mode::Pydantic).map_err(|_| {
            PyValueError::new_err("Out of range float values are not JSON compliant")
        })?;
        let text = String::from_utf8(v).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyString::new(py, &text).into_any())
    }

    /// The names of the fields the caller set (pydantic's `model_fields_set`).
    #[getter]
    fn model_fields_set<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PySet>> {
        fields_set_of(py, &validate::EVENT_FIELDS, self.inner.set)
    }

    /// Replaces the record of set fields (for `model_construct(_fields_set=...)`).
    fn _replace_fields_set(&mut self, names: &Bound<'_, PyAny>) -> PyResult<()> {
        let set = fields_set_from(&validate::EVENT_FIELDS, names)?;
        Arc::make_mut(&mut self.inner).set = set;
        Ok(())
    }

    /// The exact bytes this event contributes to a `POST /v1/events` body.
    fn wire_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let v = serialize::to_vec(&self.inner, Mode::Wire).map_err(|_| {
            PyValueError::new_err("Out of range float values are not JSON compliant")
        })?;
        Ok(PyBytes::new(py, &v))
    }

    /// A copy, optionally with fields replaced (validated).
    #[pyo3(signature = (*, update = None, deep = false))]
    fn model_copy(
        slf: &Bound<'_, Self>,
        update: Option<&Bound<'_, PyDict>>,
        deep: bool,
    ) -> PyResult<Self> {
        let _ = deep;
        let py = slf.py();
        let mut copy = (*slf.borrow().inner).clone();
        if let Some(u) = update {
            let mut ctx = Ctx::default();
            for (k, v) in u.iter() {
                let name: String = k.extract()?;
                if !validate::assign_event(&mut ctx, &mut copy, &name, &PySrc(v)) {
                    return Err(PyAttributeError::new_err(format!(
                        "RunEvent has no field {name:?}"
                    )));
                }
            }
            if !ctx.errors.is_empty() {
                return Err(raise_py(py, "RunEvent", &ctx.errors));
            }
        }
        Ok(Self {
            inner: Arc::new(copy),
        })
    }

    #[getter]
    fn api_version(&self) -> &'static str {
        "v1"
    }
    #[getter(r#type)]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        timestamp_to_py(py, &self.inner.timestamp)
    }
    #[getter]
    fn workspace_id(&self) -> &str {
        &self.inner.workspace_id
    }
    #[getter]
    fn agent_id(&self) -> &str {
        &self.inner.agent_id
    }
    #[getter]
    fn release_id(&self) -> &str {
        &self.inner.release_id
    }
    #[getter]
    fn run_id(&self) -> &str {
        &self.inner.run_id
    }
    #[getter]
    fn tenant_id(&self) -> &str {
        &self.inner.tenant_id
    }
    #[getter]
    fn task_id(&self) -> &str {
        &self.inner.task_id
    }
    #[getter]
    fn environment(&self) -> &str {
        &self.inner.environment
    }
    #[getter]
    fn request(slf: &Bound<'_, Self>) -> PyResult<Option<PyRequest>> {
        Ok(slf.borrow().inner.request.as_ref().map(|_| PyRequest {
            slot: Slot::In(slf.clone().unbind()),
        }))
    }
    #[getter]
    fn metrics(slf: &Bound<'_, Self>) -> PyMetrics {
        PyMetrics {
            slot: Slot::In(slf.clone().unbind()),
        }
    }
    #[getter]
    fn usage(slf: &Bound<'_, Self>) -> PyUsage {
        PyUsage {
            slot: Slot::In(slf.clone().unbind()),
        }
    }
    #[getter]
    fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dump::labels_dict(py, &self.inner.labels)
    }

    fn __setattr__(slf: &Bound<'_, Self>, name: &str, value: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let mut copy = (*slf.borrow().inner).clone();
        let mut ctx = Ctx::default();
        if !validate::assign_event(&mut ctx, &mut copy, name, &PySrc(value)) {
            return Err(PyValueError::new_err(format!(
                "\"RunEvent\" object has no field \"{name}\""
            )));
        }
        if !ctx.errors.is_empty() {
            return Err(raise_py(py, "RunEvent", &ctx.errors));
        }
        slf.borrow_mut().inner = Arc::new(copy);
        Ok(())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = other.py();
        match other.cast::<PyRunEvent>() {
            Ok(o) => events_equal(&self.inner, &o.try_borrow()?.inner).into_py_any(py),
            Err(_) => Ok(py.NotImplemented()),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("RunEvent({})", event_fields(py, &self.inner)?))
    }

    fn __copy__(&self) -> Self {
        Self {
            inner: Arc::new((*self.inner).clone()),
        }
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Self {
        self.__copy__()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        model_api(slf.py(), "reduce", (slf,), None)
    }
}

/// Where a nested record's data lives: in itself, or inside its parent.
pub enum Slot<T, P> {
    Own(T),
    In(Py<P>),
}

/// Compact JSON of a nested record through Python's encoder (no floats in these records).
fn json_of_dict(py: Python<'_>, d: Bound<'_, PyDict>) -> PyResult<String> {
    let json = py.import("json")?;
    let kw = PyDict::new(py);
    kw.set_item("separators", (",", ":"))?;
    kw.set_item("ensure_ascii", false)?;
    json.call_method("dumps", (d,), Some(&kw))?.extract()
}

/// pydantic's JSON of a tool record (its float is formatted like pydantic's).
fn tool_json(_py: Python<'_>, t: &ToolUsage) -> PyResult<String> {
    let mut buf = Vec::new();
    serialize::write_tool(&mut buf, t, Mode::Pydantic)
        .map_err(|_| PyValueError::new_err("Out of range float values are not JSON compliant"))?;
    String::from_utf8(buf).map_err(|e| PyValueError::new_err(e.to_string()))
}

macro_rules! nested_model {
    ($ty:ident, $pyname:literal, $data:ty, $own:path, $from_map:path, $assign:path, $dict:path,
     $fields:path, $json:expr, $names:expr) => {
        #[pymethods]
        impl $ty {
            #[new]
            #[pyo3(signature = (**data))]
            fn new(py: Python<'_>, data: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
                let src = kwargs_or_empty(py, data);
                let mut ctx = Ctx::default();
                match $from_map(&mut ctx, &PySrc(src)) {
                    Some(v) if ctx.errors.is_empty() => Ok(Self { slot: $own(v) }),
                    _ => Err(raise_py(py, $pyname, &ctx.errors)),
                }
            }

            #[classmethod]
            #[pyo3(signature = (obj, **opts))]
            fn model_validate<'py>(
                cls: &Bound<'py, PyType>,
                py: Python<'py>,
                obj: &Bound<'py, PyAny>,
                opts: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                if has_options(opts) {
                    return model_api(py, "model_validate", (cls, obj), opts);
                }
                if let Ok(o) = obj.cast::<$ty>() {
                    return Ok(o.clone().into_any());
                }
                let mut ctx = Ctx::default();
                let src = PySrc(obj.clone());
                if obj.cast::<PyDict>().is_err() {
                    return Err(model_type_error(obj, $pyname));
                }
                match $from_map(&mut ctx, &src) {
                    Some(v) if ctx.errors.is_empty() => {
                        Ok(Bound::new(py, Self { slot: $own(v) })?.into_any())
                    }
                    _ => Err(raise_py(py, $pyname, &ctx.errors)),
                }
            }

            #[classmethod]
            #[pyo3(signature = (json_data, **opts))]
            fn model_validate_json<'py>(
                cls: &Bound<'py, PyType>,
                py: Python<'py>,
                json_data: &Bound<'py, PyAny>,
                opts: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                model_api(py, "model_validate_json", (cls, json_data), opts)
            }

            #[pyo3(signature = (*, mode = "python", **opts))]
            fn model_dump<'py>(
                slf: &Bound<'py, Self>,
                mode: &str,
                opts: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let py = slf.py();
                if has_options(opts) {
                    return model_api(py, "model_dump", (slf, mode), opts);
                }
                dump_mode(mode)?;
                let d = slf.borrow().read(py, <$data>::clone)?;
                Ok($dict(py, &d)?.into_any())
            }

            #[pyo3(signature = (**opts))]
            fn model_dump_json<'py>(
                slf: &Bound<'py, Self>,
                opts: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let py = slf.py();
                if has_options(opts) {
                    return model_api(py, "model_dump_json", (slf,), opts);
                }
                let d = slf.borrow().read(py, <$data>::clone)?;
                Ok(PyString::new(py, &($json)(py, &d)?).into_any())
            }

            /// The names of the fields the caller set (pydantic's `model_fields_set`).
            #[getter]
            fn model_fields_set<'py>(
                &self,
                py: Python<'py>,
            ) -> PyResult<Bound<'py, pyo3::types::PySet>> {
                let set = self.read(py, |d| d.set)?;
                fields_set_of(py, &$names, set)
            }

            /// Replaces the record of set fields (for `model_construct(_fields_set=...)`).
            fn _replace_fields_set(
                &mut self,
                py: Python<'_>,
                names: &Bound<'_, PyAny>,
            ) -> PyResult<()> {
                let set = fields_set_from(&$names, names)?;
                self.write(py, |d| d.set = set)
            }

            /// A copy, optionally with fields replaced (validated).
            #[pyo3(signature = (*, update = None, deep = false))]
            fn model_copy(
                slf: &Bound<'_, Self>,
                update: Option<&Bound<'_, PyDict>>,
                deep: bool,
            ) -> PyResult<Self> {
                let _ = deep;
                let py = slf.py();
                let mut copy = slf.borrow().read(py, <$data>::clone)?;
                if let Some(u) = update {
                    let mut ctx = Ctx::default();
                    for (k, v) in u.iter() {
                        let name: String = k.extract()?;
                        if !$assign(&mut ctx, &mut copy, &name, &PySrc(v)) {
                            return Err(PyAttributeError::new_err(format!(
                                concat!($pyname, " has no field {:?}"),
                                name
                            )));
                        }
                    }
                    if !ctx.errors.is_empty() {
                        return Err(raise_py(py, $pyname, &ctx.errors));
                    }
                }
                Ok(Self { slot: $own(copy) })
            }

            fn __setattr__(
                slf: &Bound<'_, Self>,
                name: &str,
                value: Bound<'_, PyAny>,
            ) -> PyResult<()> {
                let py = slf.py();
                let mut copy = slf.borrow().read(py, <$data>::clone)?;
                let mut ctx = Ctx::default();
                if !$assign(&mut ctx, &mut copy, name, &PySrc(value)) {
                    return Err(PyValueError::new_err(format!(
                        concat!("\"", $pyname, "\" object has no field \"{}\""),
                        name
                    )));
                }
                if !ctx.errors.is_empty() {
                    return Err(raise_py(py, $pyname, &ctx.errors));
                }
                slf.borrow_mut().write(py, |d| *d = copy)
            }

            fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let py = other.py();
                match other.cast::<$ty>() {
                    Ok(o) => {
                        let a = self.read(py, <$data>::clone)?;
                        let b = o.try_borrow()?.read(py, <$data>::clone)?;
                        (a == b).into_py_any(py)
                    }
                    Err(_) => Ok(py.NotImplemented()),
                }
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                let d = self.read(py, <$data>::clone)?;
                Ok(format!(concat!($pyname, "({})"), $fields(py, &d)?))
            }

            fn __copy__(&self, py: Python<'_>) -> PyResult<Self> {
                Ok(Self {
                    slot: $own(self.read(py, <$data>::clone)?),
                })
            }

            fn __deepcopy__(&self, py: Python<'_>, _memo: &Bound<'_, PyAny>) -> PyResult<Self> {
                self.__copy__(py)
            }

            fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
                model_api(slf.py(), "reduce", (slf,), None)
            }
        }
    };
}

fn stale(what: &str) -> PyErr {
    PyAttributeError::new_err(format!("{what} is no longer part of its parent event"))
}

/// `RunEventRequest`: session / trace / span ids.
#[pyclass(module = "flightdeck_rs.models", name = "RunEventRequest")]
pub struct PyRequest {
    slot: Slot<Request, PyRunEvent>,
}

impl PyRequest {
    pub fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&Request) -> R) -> PyResult<R> {
        match &self.slot {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(p) => p
                .bind(py)
                .try_borrow()?
                .read(py, |e| e.request.as_ref().map(f))?
                .ok_or_else(|| stale("request")),
        }
    }
    pub fn write<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut Request) -> R) -> PyResult<R> {
        match &mut self.slot {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(p) => p
                .bind(py)
                .try_borrow_mut()?
                .write(py, |e| e.request.as_mut().map(f))?
                .ok_or_else(|| stale("request")),
        }
    }
}

nested_model!(
    PyRequest,
    "RunEventRequest",
    Request,
    Slot::Own,
    validate::request_from_map,
    validate::assign_request,
    dump::request_dict,
    request_fields,
    |py, d| json_of_dict(py, dump::request_dict(py, d)?),
    REQUEST_FIELDS
);

#[pymethods]
impl PyRequest {
    #[getter]
    fn session_id(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.read(py, |d| d.session_id.as_deref().map(str::to_owned))
    }
    #[getter]
    fn trace_id(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.read(py, |d| d.trace_id.as_deref().map(str::to_owned))
    }
    #[getter]
    fn span_id(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.read(py, |d| d.span_id.as_deref().map(str::to_owned))
    }
}

/// `RunEventMetrics`: latency, success and error type of a run.
#[pyclass(module = "flightdeck_rs.models", name = "RunEventMetrics")]
pub struct PyMetrics {
    slot: Slot<Metrics, PyRunEvent>,
}

impl PyMetrics {
    pub fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&Metrics) -> R) -> PyResult<R> {
        match &self.slot {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(p) => p.bind(py).try_borrow()?.read(py, |e| f(&e.metrics)),
        }
    }
    pub fn write<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut Metrics) -> R) -> PyResult<R> {
        match &mut self.slot {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(p) => p
                .bind(py)
                .try_borrow_mut()?
                .write(py, |e| f(&mut e.metrics)),
        }
    }
}

nested_model!(
    PyMetrics,
    "RunEventMetrics",
    Metrics,
    Slot::Own,
    validate::metrics_from_map,
    validate::assign_metrics,
    dump::metrics_dict,
    metrics_fields,
    |py, d| json_of_dict(py, dump::metrics_dict(py, d)?),
    METRICS_FIELDS
);

#[pymethods]
impl PyMetrics {
    #[getter]
    fn latency_ms(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.read(py, |d| d.latency_ms)
    }
    #[getter]
    fn success(&self, py: Python<'_>) -> PyResult<bool> {
        self.read(py, |d| d.success)
    }
    #[getter]
    fn error_type(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.read(py, |d| d.error_type.as_deref().map(str::to_owned))
    }
}

/// `RunEventUsage`: the model usage and the tools used by a run.
#[pyclass(module = "flightdeck_rs.models", name = "RunEventUsage")]
pub struct PyUsage {
    slot: Slot<Usage, PyRunEvent>,
}

impl PyUsage {
    pub fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&Usage) -> R) -> PyResult<R> {
        match &self.slot {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(p) => p.bind(py).try_borrow()?.read(py, |e| f(&e.usage)),
        }
    }
    pub fn write<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut Usage) -> R) -> PyResult<R> {
        match &mut self.slot {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(p) => p.bind(py).try_borrow_mut()?.write(py, |e| f(&mut e.usage)),
        }
    }
}

nested_model!(
    PyUsage,
    "RunEventUsage",
    Usage,
    Slot::Own,
    validate::usage_from_map,
    validate::assign_usage,
    dump::usage_dict,
    usage_fields,
    |py, d| json_of_dict(py, dump::usage_dict(py, d)?),
    USAGE_FIELDS
);

#[pymethods]
impl PyUsage {
    #[getter]
    fn model(slf: &Bound<'_, Self>) -> PyModelUsage {
        PyModelUsage {
            slot: Slot::In(slf.clone().unbind()),
        }
    }
    #[getter]
    fn tools<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let n = slf.borrow().read(py, |u| u.tools.len())?;
        let items = (0..n)
            .map(|i| PyToolUsage {
                slot: ToolSlot::In(slf.clone().unbind(), i),
            })
            .collect::<Vec<_>>();
        PyList::new(py, items)
    }
}

/// `RunEventModelUsage`: provider, model and token counts.
#[pyclass(module = "flightdeck_rs.models", name = "RunEventModelUsage")]
pub struct PyModelUsage {
    slot: Slot<ModelUsage, PyUsage>,
}

impl PyModelUsage {
    pub fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&ModelUsage) -> R) -> PyResult<R> {
        match &self.slot {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(p) => p.bind(py).try_borrow()?.read(py, |u| f(&u.model)),
        }
    }
    pub fn write<R>(
        &mut self,
        py: Python<'_>,
        f: impl FnOnce(&mut ModelUsage) -> R,
    ) -> PyResult<R> {
        match &mut self.slot {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(p) => p.bind(py).try_borrow_mut()?.write(py, |u| f(&mut u.model)),
        }
    }
}

nested_model!(
    PyModelUsage,
    "RunEventModelUsage",
    ModelUsage,
    Slot::Own,
    validate::model_usage_from_map,
    validate::assign_model_usage,
    dump::model_usage_dict,
    model_usage_fields,
    |py, d| json_of_dict(py, dump::model_usage_dict(py, d)?),
    MODEL_USAGE_FIELDS
);

#[pymethods]
impl PyModelUsage {
    #[getter]
    fn provider(&self, py: Python<'_>) -> PyResult<String> {
        self.read(py, |d| d.provider.to_string())
    }
    #[getter]
    fn model(&self, py: Python<'_>) -> PyResult<String> {
        self.read(py, |d| d.model.to_string())
    }
    #[getter]
    fn input_tokens(&self, py: Python<'_>) -> PyResult<u64> {
        self.read(py, |d| d.input_tokens)
    }
    #[getter]
    fn output_tokens(&self, py: Python<'_>) -> PyResult<u64> {
        self.read(py, |d| d.output_tokens)
    }
    #[getter]
    fn cached_input_tokens(&self, py: Python<'_>) -> PyResult<u64> {
        self.read(py, |d| d.cached_input_tokens)
    }
}

/// Where a tool record lives: in itself, or at an index of its parent's list.
pub enum ToolSlot {
    Own(ToolUsage),
    In(Py<PyUsage>, usize),
}

/// `RunEventToolUsage`: one tool's invocations and cost units.
#[pyclass(module = "flightdeck_rs.models", name = "RunEventToolUsage")]
pub struct PyToolUsage {
    slot: ToolSlot,
}

impl PyToolUsage {
    pub fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&ToolUsage) -> R) -> PyResult<R> {
        match &self.slot {
            ToolSlot::Own(d) => Ok(f(d)),
            ToolSlot::In(p, i) => p
                .bind(py)
                .try_borrow()?
                .read(py, |u| u.tools.get(*i).map(f))?
                .ok_or_else(|| stale("tool")),
        }
    }
    pub fn write<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut ToolUsage) -> R) -> PyResult<R> {
        match &mut self.slot {
            ToolSlot::Own(d) => Ok(f(d)),
            ToolSlot::In(p, i) => {
                let i = *i;
                p.bind(py)
                    .try_borrow_mut()?
                    .write(py, |u| u.tools.get_mut(i).map(f))?
                    .ok_or_else(|| stale("tool"))
            }
        }
    }
}

nested_model!(
    PyToolUsage,
    "RunEventToolUsage",
    ToolUsage,
    ToolSlot::Own,
    validate::tool_from_map,
    validate::assign_tool,
    dump::tool_dict,
    tool_fields,
    tool_json,
    TOOL_FIELDS
);

#[pymethods]
impl PyToolUsage {
    #[getter]
    fn tool_name(&self, py: Python<'_>) -> PyResult<String> {
        self.read(py, |d| d.tool_name.to_string())
    }
    #[getter]
    fn invocations(&self, py: Python<'_>) -> PyResult<u64> {
        self.read(py, |d| d.invocations)
    }
    #[getter]
    fn cost_units(&self, py: Python<'_>) -> PyResult<f64> {
        self.read(py, |d| d.cost_units)
    }
}

/// `RunEvent(**kw)` straight from the caller's keyword dict.
///
/// pyo3's generated constructor copies `**kw` into a fresh dict before validation starts,
/// which is about a fifth of the cost of building an event. This slot validates the
/// interpreter's own keyword dict instead (it is only read) and leaves every other call
/// shape (positional arguments) to pyo3's constructor. Not available with the stable ABI,
/// whose type objects are opaque.
#[cfg(not(feature = "abi3"))]
#[allow(unsafe_code)]
mod fast_new {
    use std::panic::AssertUnwindSafe;
    use std::sync::OnceLock;

    use pyo3::exceptions::PyRuntimeError;
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyDict;
    use pyo3::PyTypeInfo;

    use super::PyRunEvent;

    /// pyo3's constructor slot, for the calls this one does not take.
    static PYO3_NEW: OnceLock<ffi::newfunc> = OnceLock::new();

    fn construct(py: Python<'_>, kwds: *mut ffi::PyObject) -> PyResult<*mut ffi::PyObject> {
        let data = if kwds.is_null() {
            PyDict::new(py)
        } else {
            // SAFETY: a borrowed reference the interpreter keeps alive for the call.
            unsafe { Bound::from_borrowed_ptr(py, kwds) }.cast_into::<PyDict>()?
        };
        let event = PyRunEvent::new(py, Some(&data))?;
        Ok(Bound::new(py, event)?.into_ptr())
    }

    /// The `tp_new` slot of `RunEvent`.
    ///
    /// # Safety
    /// Called by the interpreter, attached, with valid (or null) `args` and `kwds`.
    unsafe extern "C" fn tp_new(
        subtype: *mut ffi::PyTypeObject,
        args: *mut ffi::PyObject,
        kwds: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: the interpreter calls slots attached.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: `args` is the call's tuple (or null) and `kwds` its dict (or null).
        let plain = subtype == PyRunEvent::type_object_raw(py)
            && (args.is_null() || unsafe { ffi::PyTuple_Size(args) } == 0)
            && (kwds.is_null() || unsafe { ffi::PyDict_CheckExact(kwds) } != 0);
        if !plain {
            return match PYO3_NEW.get() {
                // SAFETY: pyo3's own slot for this type, called as the interpreter would.
                Some(f) => unsafe { f(subtype, args, kwds) },
                None => {
                    PyRuntimeError::new_err("RunEvent constructor is not set up").restore(py);
                    std::ptr::null_mut()
                }
            };
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| construct(py, kwds))) {
            Ok(Ok(obj)) => obj,
            Ok(Err(e)) => {
                e.restore(py);
                std::ptr::null_mut()
            }
            Err(_) => {
                PyRuntimeError::new_err("internal error while building a RunEvent").restore(py);
                std::ptr::null_mut()
            }
        }
    }

    /// Puts [`tp_new`] in `RunEvent`'s constructor slot (once, at module import).
    pub fn install(py: Python<'_>) {
        let ty = PyRunEvent::type_object_raw(py);
        // SAFETY: `ty` is our heap type, fully built; no instance is being created while
        // the module initialises, and the type's caches are invalidated afterwards.
        unsafe {
            if let Some(orig) = (*ty).tp_new {
                if PYO3_NEW.set(orig).is_ok() {
                    (*ty).tp_new = Some(tp_new);
                    ffi::PyType_Modified(ty);
                }
            }
        }
    }
}

/// Installs the fast `RunEvent(**kw)` constructor where the build allows it.
pub fn install_fast_constructor(py: Python<'_>) {
    #[cfg(not(feature = "abi3"))]
    fast_new::install(py);
    #[cfg(feature = "abi3")]
    let _ = py;
}
