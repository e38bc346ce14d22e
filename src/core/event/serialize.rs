//! JSON encoding of events, field by field in declaration order.

use super::{RunEvent, Text, ToolUsage};
use crate::core::json::{format_float, write_str, write_u64, FloatStyle};

/// Which JSON dialect to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// What goes on the wire: timestamps as UTC with `Z`, floats like Python's `json.dumps`,
    /// non-finite floats rejected.
    Wire,
    /// pydantic's `model_dump_json()`: timestamps as given, non-finite floats as `null`.
    Pydantic,
}

/// The event holds a float JSON cannot represent (`inf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFinite;

fn opt_str(buf: &mut Vec<u8>, v: &Option<Text>) {
    match v {
        Some(s) => write_str(buf, s),
        None => buf.extend_from_slice(b"null"),
    }
}

fn field(buf: &mut Vec<u8>, first: bool, name: &str) {
    if !first {
        buf.push(b',');
    }
    buf.push(b'"');
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// Appends one event as a compact JSON object.
///
/// # Errors
/// [`NonFinite`] in [`Mode::Wire`] when a float is `inf`/`NaN`.
pub fn write_event(buf: &mut Vec<u8>, e: &RunEvent, mode: Mode) -> Result<(), NonFinite> {
    buf.extend_from_slice(b"{\"api_version\":\"v1\",\"type\":\"");
    buf.extend_from_slice(e.kind.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"timestamp\":\"");
    match mode {
        Mode::Wire => e.timestamp.write_utc(buf),
        Mode::Pydantic => e.timestamp.write_pydantic(buf),
    }
    buf.push(b'"');
    for (name, v) in [
        ("workspace_id", &e.workspace_id),
        ("agent_id", &e.agent_id),
        ("release_id", &e.release_id),
        ("run_id", &e.run_id),
        ("tenant_id", &e.tenant_id),
        ("task_id", &e.task_id),
        ("environment", &e.environment),
    ] {
        field(buf, false, name);
        write_str(buf, v);
    }
    field(buf, false, "request");
    match &e.request {
        None => buf.extend_from_slice(b"null"),
        Some(r) => {
            buf.extend_from_slice(b"{\"session_id\":");
            opt_str(buf, &r.session_id);
            field(buf, false, "trace_id");
            opt_str(buf, &r.trace_id);
            field(buf, false, "span_id");
            opt_str(buf, &r.span_id);
            buf.push(b'}');
        }
    }
    field(buf, false, "metrics");
    buf.extend_from_slice(b"{\"latency_ms\":");
    match e.metrics.latency_ms {
        Some(v) => write_u64(buf, v),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(if e.metrics.success {
        b",\"success\":true"
    } else {
        b",\"success\":false"
    });
    field(buf, false, "error_type");
    opt_str(buf, &e.metrics.error_type);
    buf.push(b'}');
    let m = &e.usage.model;
    field(buf, false, "usage");
    buf.extend_from_slice(b"{\"model\":{\"provider\":");
    write_str(buf, &m.provider);
    field(buf, false, "model");
    write_str(buf, &m.model);
    field(buf, false, "input_tokens");
    write_u64(buf, m.input_tokens);
    field(buf, false, "output_tokens");
    write_u64(buf, m.output_tokens);
    field(buf, false, "cached_input_tokens");
    write_u64(buf, m.cached_input_tokens);
    buf.extend_from_slice(b"},\"tools\":[");
    for (i, t) in e.usage.tools.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_tool(buf, t, mode)?;
    }
    buf.extend_from_slice(b"]},\"labels\":{");
    for (i, (k, v)) in e.labels.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_str(buf, k);
        buf.push(b':');
        write_str(buf, v);
    }
    buf.extend_from_slice(b"}}");
    Ok(())
}

/// Appends one tool-usage record as a compact JSON object.
///
/// # Errors
/// [`NonFinite`] in [`Mode::Wire`] when `cost_units` is `inf`/`NaN`.
pub fn write_tool(buf: &mut Vec<u8>, t: &ToolUsage, mode: Mode) -> Result<(), NonFinite> {
    buf.extend_from_slice(b"{\"tool_name\":");
    write_str(buf, &t.tool_name);
    field(buf, false, "invocations");
    write_u64(buf, t.invocations);
    field(buf, false, "cost_units");
    if t.cost_units.is_finite() {
        let style = match mode {
            Mode::Wire => FloatStyle::Python,
            Mode::Pydantic => FloatStyle::Pydantic,
        };
        buf.extend_from_slice(format_float(t.cost_units, style).as_bytes());
    } else if mode == Mode::Wire {
        return Err(NonFinite);
    } else {
        buf.extend_from_slice(b"null");
    }
    buf.push(b'}');
    Ok(())
}

/// Encodes one event in the given mode.
///
/// # Errors
/// [`NonFinite`] in [`Mode::Wire`] when a float is `inf`/`NaN`.
pub fn to_vec(e: &RunEvent, mode: Mode) -> Result<Vec<u8>, NonFinite> {
    let mut buf = Vec::with_capacity(512);
    write_event(&mut buf, e, mode)?;
    Ok(buf)
}

/// Builds the `POST /v1/events` body `{"events":[...]}` from events.
///
/// # Errors
/// [`NonFinite`] when any event holds a float JSON cannot represent.
pub fn events_body<'a, I>(events: I) -> Result<Vec<u8>, NonFinite>
where
    I: IntoIterator<Item = &'a RunEvent>,
{
    let iter = events.into_iter();
    let mut w = BodyWriter::new(iter.size_hint().0);
    for e in iter {
        w.push(e)?;
    }
    Ok(w.finish())
}

/// Builds a `POST /v1/events` body one event at a time (for callers that interleave
/// encoding with other work).
pub struct BodyWriter {
    buf: Vec<u8>,
    empty: bool,
}

impl BodyWriter {
    /// A writer sized for about `n` events.
    pub fn new(n: usize) -> Self {
        let mut buf = Vec::with_capacity(16 + 480 * n);
        buf.extend_from_slice(b"{\"events\":[");
        Self { buf, empty: true }
    }

    /// Appends one event.
    ///
    /// # Errors
    /// [`NonFinite`] when the event holds a float JSON cannot represent.
    pub fn push(&mut self, e: &RunEvent) -> Result<(), NonFinite> {
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        write_event(&mut self.buf, e, Mode::Wire)
    }

    /// The finished body.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(b"]}");
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::source_json::event_from_value;
    use serde_json::json;

    #[test]
    fn minimal_dump_matches_reference_bytes() {
        let v = json!({"timestamp": "2026-05-01T12:34:56Z", "agent_id": "a", "release_id": "r",
                       "run_id": "x", "tenant_id": "t", "task_id": "k", "environment": "local",
                       "usage": {"model": {"provider": "p", "model": "m", "input_tokens": 1,
                                           "output_tokens": 2}}});
        let e = event_from_value(&v).unwrap();
        let want = r#"{"api_version":"v1","type":"run_end","timestamp":"2026-05-01T12:34:56Z","workspace_id":"ws_local","agent_id":"a","release_id":"r","run_id":"x","tenant_id":"t","task_id":"k","environment":"local","request":null,"metrics":{"latency_ms":null,"success":true,"error_type":null},"usage":{"model":{"provider":"p","model":"m","input_tokens":1,"output_tokens":2,"cached_input_tokens":0},"tools":[]},"labels":{}}"#;
        assert_eq!(
            String::from_utf8(to_vec(&e, Mode::Pydantic).unwrap()).unwrap(),
            want
        );
        assert_eq!(
            String::from_utf8(to_vec(&e, Mode::Wire).unwrap()).unwrap(),
            want
        );
    }

    #[test]
    fn wire_converts_to_utc_and_rejects_inf() {
        let v = json!({"timestamp": "2026-05-01T14:34:56+02:00", "agent_id": "a", "release_id": "r",
                       "run_id": "x", "tenant_id": "t", "task_id": "k", "environment": "local",
                       "request": {"trace_id": "tr"},
                       "usage": {"model": {"provider": "p", "model": "m", "input_tokens": 1,
                                           "output_tokens": 2},
                                 "tools": [{"tool_name": "t", "cost_units": 1e-7}]},
                       "labels": {"k": "é"}});
        let mut e = event_from_value(&v).unwrap();
        let wire = String::from_utf8(to_vec(&e, Mode::Wire).unwrap()).unwrap();
        assert!(wire.contains(r#""timestamp":"2026-05-01T12:34:56Z""#));
        assert!(wire.contains(r#""request":{"session_id":null,"trace_id":"tr","span_id":null}"#));
        assert!(wire.contains(r#""cost_units":1e-07"#));
        assert!(wire.ends_with(r#""labels":{"k":"é"}}"#));
        let py = String::from_utf8(to_vec(&e, Mode::Pydantic).unwrap()).unwrap();
        assert!(py.contains(r#""timestamp":"2026-05-01T14:34:56+02:00""#));
        e.usage.tools[0].cost_units = f64::INFINITY;
        assert_eq!(to_vec(&e, Mode::Wire), Err(NonFinite));
        assert!(String::from_utf8(to_vec(&e, Mode::Pydantic).unwrap())
            .unwrap()
            .contains("null}"));
    }
}
