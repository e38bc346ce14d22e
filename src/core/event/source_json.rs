//! [`Source`] for parsed JSON, so `model_validate_json` and JSONL ingest share the
//! exact rules of Python-object validation.

use std::borrow::Cow;

use serde_json::Value;

use super::validate::{self, Ctx, Key, LineError, Scalar, Source};
use super::RunEvent;

impl Source for &Value {
    type Input = Value;

    fn scalar(&self) -> Scalar<'_> {
        match self {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Scalar::Int(i128::from(i))
                } else if let Some(u) = n.as_u64() {
                    Scalar::Int(i128::from(u))
                } else {
                    Scalar::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Scalar::Str(Cow::Borrowed(s.as_str())),
            Value::Array(_) => Scalar::Sequence,
            Value::Object(_) => Scalar::Mapping,
        }
    }

    fn for_each_entry(&self, f: &mut dyn FnMut(Key<'_, Self>, Self)) {
        if let Value::Object(m) = self {
            for (k, v) in m {
                f(Key::Str(k.as_str()), v);
            }
        }
    }

    fn elements(&self) -> Vec<Self> {
        match self {
            Value::Array(a) => a.iter().collect(),
            _ => Vec::new(),
        }
    }

    fn input(&self) -> Value {
        (*self).clone()
    }

    fn describe(&self) -> (String, String) {
        let t = match self {
            Value::Null => "NoneType",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_f64() => "float",
            Value::Number(_) => "int",
            Value::String(_) => "str",
            Value::Array(_) => "list",
            Value::Object(_) => "dict",
        };
        (py_repr(self), t.to_string())
    }
}

/// A Python-style `repr` of a JSON value (for error messages).
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.is_finite() => {
                crate::core::json::format_float(f, crate::core::json::FloatStyle::Python)
            }
            _ => n.to_string(),
        },
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Validates one parsed JSON value as a `RunEvent`.
///
/// # Errors
/// Returns every validation failure found.
pub fn event_from_value(v: &Value) -> Result<RunEvent, Vec<LineError<Value>>> {
    let mut ctx = Ctx::default();
    match validate::event(&mut ctx, &v) {
        Some(e) if ctx.errors.is_empty() => Ok(e),
        _ => Err(ctx.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"timestamp": "2026-05-01T12:34:56Z", "agent_id": "a", "release_id": "r",
               "run_id": "x", "tenant_id": "t", "task_id": "k", "environment": "local",
               "usage": {"model": {"provider": "p", "model": "m", "input_tokens": 1,
                                   "output_tokens": 2}}})
    }

    #[test]
    fn minimal_event_validates_with_defaults() {
        let e = event_from_value(&minimal()).unwrap();
        assert_eq!(e.workspace_id, "ws_local");
        assert!(e.metrics.success);
        assert_eq!(e.usage.model.cached_input_tokens, 0);
    }

    #[test]
    fn every_error_is_collected_with_its_path() {
        let v = json!({"timestamp": "x", "metrics": {"latency_ms": -1},
                       "usage": {"model": {"input_tokens": "abc"}}, "labels": {"k": 1}});
        let errs = event_from_value(&v).unwrap_err();
        let locs: Vec<(String, &str)> = errs.iter().map(|e| (e.loc_string(), e.kind)).collect();
        assert_eq!(locs[0], ("timestamp".into(), "datetime_from_date_parsing"));
        assert!(locs.contains(&("metrics.latency_ms".into(), "greater_than_equal")));
        assert!(locs.contains(&("usage.model.input_tokens".into(), "int_parsing")));
        assert!(locs.contains(&("usage.model.provider".into(), "missing")));
        assert!(locs.contains(&("labels.k".into(), "string_type")));
        assert!(locs.contains(&("agent_id".into(), "missing")));
        let text = validate::render_errors("RunEvent", &errs);
        assert!(text.starts_with(&format!(
            "{} validation errors for RunEvent\ntimestamp\n",
            errs.len()
        )));
    }

    #[test]
    fn lax_coercions() {
        let mut v = minimal();
        v["usage"]["model"]["input_tokens"] = json!("15");
        v["usage"]["model"]["output_tokens"] = json!(3.0);
        v["metrics"] = json!({"success": "no", "latency_ms": true});
        v["usage"]["tools"] = json!([{"tool_name": "t", "cost_units": 1}]);
        let e = event_from_value(&v).unwrap();
        assert_eq!(e.usage.model.input_tokens, 15);
        assert_eq!(e.usage.model.output_tokens, 3);
        assert!(!e.metrics.success);
        assert_eq!(e.metrics.latency_ms, Some(1));
        assert_eq!(e.usage.tools[0].cost_units, 1.0);
    }

    #[test]
    fn literals_and_models_are_checked() {
        let mut v = minimal();
        v["api_version"] = json!("v2");
        v["type"] = json!("run_middle");
        v["metrics"] = Value::Null;
        v["labels"] = Value::Null;
        let errs = event_from_value(&v).unwrap_err();
        let kinds: Vec<&str> = errs.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            ["literal_error", "literal_error", "model_type", "dict_type"]
        );
        assert_eq!(errs[1].msg, "Input should be 'run_start' or 'run_end'");
    }
}
