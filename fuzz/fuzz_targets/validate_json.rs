//! Arbitrary bytes -> JSON -> `RunEvent` validation -> both JSON encodings -> parse again.
//!
//! Invariants: nothing panics; a rejected value yields at least one error whose report
//! renders; an accepted event always encodes in pydantic mode, and that encoding is valid
//! JSON which validates back to the same event and re-encodes to the same bytes (unless a
//! cost is `inf`, which pydantic mode writes as `null`); wire mode fails exactly when a cost
//! is not finite, and otherwise is valid JSON with a UTC (`Z`) timestamp (or, when the UTC
//! date would leave years 1 to 9999, the timestamp with its offset). Accepted timestamps, and
//! their wire form, stay within Python's `datetime` range (years 1 to 9999).
#![no_main]

use chrono::Datelike;
use flightdeck_rs::core::event::serialize::{self, Mode};
use flightdeck_rs::core::event::{source_json, timestamp, validate, RunEvent, Timestamp};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn parse(bytes: &[u8], what: &str) -> Value {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(e) => panic!(
            "{what} is not valid JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// Python's `datetime` holds years 1..=9999 only.
fn in_range(t: &Timestamp) -> bool {
    (1..=9999).contains(&t.naive.year())
}

fn check_event(event: &RunEvent) {
    assert!(
        in_range(&event.timestamp),
        "accepted timestamp out of range: {:?}",
        event.timestamp
    );
    let finite = event.usage.tools.iter().all(|t| t.cost_units.is_finite());

    let Ok(py) = serialize::to_vec(event, Mode::Pydantic) else {
        panic!("pydantic mode must always encode: {event:?}");
    };
    let py_value = parse(&py, "pydantic-mode JSON");
    let Value::Object(map) = &py_value else {
        panic!("pydantic-mode JSON is not an object");
    };
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    assert_eq!(keys, validate::EVENT_FIELDS, "field order");
    if finite {
        match source_json::event_from_value(&py_value) {
            Ok(back) => {
                assert_eq!(&back, event, "round trip through pydantic-mode JSON");
                let again = serialize::to_vec(&back, Mode::Pydantic);
                assert_eq!(again.as_deref(), Ok(&py[..]), "re-encoding differs");
            }
            Err(errs) => panic!(
                "own pydantic-mode output does not validate: {}\n{}",
                validate::render_errors("RunEvent", &errs),
                String::from_utf8_lossy(&py)
            ),
        }
    }

    match serialize::to_vec(event, Mode::Wire) {
        Ok(wire) => {
            assert!(finite, "wire mode encoded a non-finite cost");
            let v = parse(&wire, "wire JSON");
            let ts = v
                .get("timestamp")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // UTC with `Z`, unless the UTC date leaves years 1-9999: then the offset stays.
            let utc_year = event.timestamp.utc_naive().year();
            if (1..=9999).contains(&utc_year) {
                assert!(ts.ends_with('Z'), "wire timestamp not UTC: {ts}");
            } else {
                assert_eq!(ts, event.timestamp.to_pydantic_string(), "wire timestamp");
            }
            // The server parses it with Python's datetime: years 1..=9999 only.
            match timestamp::parse(ts) {
                Ok(t) => assert!(in_range(&t), "wire timestamp out of range: {ts}"),
                Err(e) => panic!("wire timestamp {ts:?} does not parse: {}", e.0),
            }
            let body = serialize::events_body([event, event]);
            let body = body.unwrap_or_else(|_| panic!("events_body failed on a finite event"));
            parse(&body, "POST /v1/events body");
        }
        Err(serialize::NonFinite) => assert!(!finite, "wire mode rejected finite costs"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match source_json::event_from_value(&value) {
        Ok(event) => check_event(&event),
        Err(errs) => {
            assert!(!errs.is_empty(), "rejected without an error");
            for e in &errs {
                let _ = e.loc_string();
            }
            let text = validate::render_errors("RunEvent", &errs);
            assert!(text.contains("validation error"));
        }
    }
});
