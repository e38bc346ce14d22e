//! Events rendered as Python dicts (`model_dump()`).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::core::event::{Metrics, ModelUsage, Request, RunEvent, Text, ToolUsage, Usage};

use super::datetime::timestamp_to_py;

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
