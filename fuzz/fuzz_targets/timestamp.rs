//! Arbitrary text -> timestamp parsing (pydantic's lax form), and text read as a Unix time.
//!
//! Invariants: nothing panics; an accepted timestamp's pydantic form parses back to the same
//! value (offset seconds, which that form drops, aside), its year is within Python's
//! `datetime` range (1 to 9999) or 0 (rejected by validation), and its UTC form is computed
//! without panicking.
#![no_main]

use chrono::Datelike;
use flightdeck_rs::core::event::timestamp::{self, Timestamp};
use libfuzzer_sys::fuzz_target;

fn check(t: &Timestamp) {
    // pydantic's datetime is Python's: years 1..=9999. Text and Unix times can reach year
    // 0, which validation then rejects (`year_in_range`); nothing can go further.
    let year = t.naive.year();
    if !t.year_in_range() {
        assert_eq!(year, 0, "parsed a timestamp in year {year}: {t:?}");
        return;
    }
    let text = t.to_pydantic_string();
    let _ = t.to_utc_string();
    let _ = t.utc_naive();
    match timestamp::parse(&text) {
        Ok(back) => {
            assert_eq!(back.naive, t.naive, "{text}");
            let minutes = |o: Option<i32>| o.map(|s| s / 60);
            assert_eq!(minutes(back.offset), minutes(t.offset), "{text}");
        }
        Err(e) => panic!("own pydantic form {text:?} does not parse: {}", e.0),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = timestamp::parse(s) {
        check(&t);
    }
    if let Ok(v) = s.trim().parse::<f64>() {
        if let Ok(t) = Timestamp::from_epoch(v) {
            check(&t);
        }
    }
});
