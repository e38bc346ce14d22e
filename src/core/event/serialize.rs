//! JSON encoding of events, field by field in declaration order.

use super::{ApiVersion, EventType, RunEvent, Text, Timestamp};
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

/// A field's value as JSON, by the field's type; records write themselves field by field
/// (`define_models!`).
pub trait WriteJson {
    /// Appends the value.
    ///
    /// # Errors
    /// [`NonFinite`] in [`Mode::Wire`] when a float is `inf`/`NaN`.
    fn write_json(&self, buf: &mut Vec<u8>, mode: Mode) -> Result<(), NonFinite>;
}

impl WriteJson for Text {
    fn write_json(&self, buf: &mut Vec<u8>, _: Mode) -> Result<(), NonFinite> {
        write_str(buf, self);
        Ok(())
    }
}

impl WriteJson for u64 {
    fn write_json(&self, buf: &mut Vec<u8>, _: Mode) -> Result<(), NonFinite> {
        write_u64(buf, *self);
        Ok(())
    }
}

impl WriteJson for bool {
    fn write_json(&self, buf: &mut Vec<u8>, _: Mode) -> Result<(), NonFinite> {
        buf.extend_from_slice(if *self { b"true" } else { b"false" });
        Ok(())
    }
}

/// Python's `json.dumps` digits on the wire, pydantic's in [`Mode::Pydantic`]; `inf` and
/// `NaN` are `null` for pydantic and refused on the wire.
impl WriteJson for f64 {
    fn write_json(&self, buf: &mut Vec<u8>, mode: Mode) -> Result<(), NonFinite> {
        if self.is_finite() {
            let style = match mode {
                Mode::Wire => FloatStyle::Python,
                Mode::Pydantic => FloatStyle::Pydantic,
            };
            buf.extend_from_slice(format_float(*self, style).as_bytes());
        } else if mode == Mode::Wire {
            return Err(NonFinite);
        } else {
            buf.extend_from_slice(b"null");
        }
        Ok(())
    }
}

/// UTC with `Z` on the wire; as given for pydantic.
impl WriteJson for Timestamp {
    fn write_json(&self, buf: &mut Vec<u8>, mode: Mode) -> Result<(), NonFinite> {
        buf.push(b'"');
        match mode {
            Mode::Wire => self.write_utc(buf),
            Mode::Pydantic => self.write_pydantic(buf),
        }
        buf.push(b'"');
        Ok(())
    }
}

impl WriteJson for EventType {
    fn write_json(&self, buf: &mut Vec<u8>, _: Mode) -> Result<(), NonFinite> {
        buf.push(b'"');
        buf.extend_from_slice(self.as_str().as_bytes());
        buf.push(b'"');
        Ok(())
    }
}

impl WriteJson for ApiVersion {
    fn write_json(&self, buf: &mut Vec<u8>, _: Mode) -> Result<(), NonFinite> {
        buf.extend_from_slice(b"\"v1\"");
        Ok(())
    }
}

impl<T: WriteJson> WriteJson for Option<T> {
    fn write_json(&self, buf: &mut Vec<u8>, mode: Mode) -> Result<(), NonFinite> {
        match self {
            Some(v) => v.write_json(buf, mode),
            None => {
                buf.extend_from_slice(b"null");
                Ok(())
            }
        }
    }
}

impl<T: WriteJson> WriteJson for Vec<T> {
    fn write_json(&self, buf: &mut Vec<u8>, mode: Mode) -> Result<(), NonFinite> {
        buf.push(b'[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            v.write_json(buf, mode)?;
        }
        buf.push(b']');
        Ok(())
    }
}

/// Labels as an object.
impl WriteJson for Vec<(Text, Text)> {
    fn write_json(&self, buf: &mut Vec<u8>, _: Mode) -> Result<(), NonFinite> {
        buf.push(b'{');
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_str(buf, k);
            buf.push(b':');
            write_str(buf, v);
        }
        buf.push(b'}');
        Ok(())
    }
}

/// Appends one event as a compact JSON object.
///
/// # Errors
/// [`NonFinite`] in [`Mode::Wire`] when a float is `inf`/`NaN`.
pub fn write_event(buf: &mut Vec<u8>, e: &RunEvent, mode: Mode) -> Result<(), NonFinite> {
    e.write_json(buf, mode)
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
