//! Compares timestamp parsers against pydantic: `src/core/event/timestamp.rs` (speedate 0.18
//! since issue 13), the hand-written parser it held before (`handwritten.rs`), and speedate
//! 0.17 (the version pydantic-core 2.41 pins). speedate is what pydantic-core calls for a
//! `datetime` field, with the configuration of `adapter.rs`.
//!
//! * `corpus FILE`: FILE holds one JSON string or number per line; for each, prints a JSON
//!   line mapping each parser to the pydantic JSON form of its value or `"ERR <reason>"`
//!   (year 0 rejected after parsing, as pydantic-core and our validator do).
//!   `bench/timestamp_eval.py` builds the corpus and compares every column with pydantic.
//! * `bench [ROUNDS]`: parse speed on a mix of 8 event timestamp forms, in ns per parse
//!   (best of ROUNDS rounds of 200k parses each; `PER_SAMPLE=1` adds one line per form).
//!   "-> Timestamp" includes the conversion to our chrono-based `Timestamp`.
//!
//! Build and run: `cargo run --release -- bench` in this directory.

#[allow(dead_code)]
#[path = "../../../src/core/event/timestamp.rs"]
mod timestamp;

#[allow(dead_code)]
mod handwritten;

use std::hint::black_box;
use std::time::Instant;

use timestamp::Timestamp;

/// speedate 0.17, the version pydantic-core 2.41 pins.
mod v17 {
    use speedate017 as sd;
    use strum027 as sd_strum;
    include!("adapter.rs");
}

/// speedate 0.18, as the crate uses it (only for the "alone" speed figure).
#[allow(dead_code)]
mod v18 {
    use speedate as sd;
    use strum as sd_strum;
    include!("adapter.rs");
}

fn render(r: Result<Timestamp, String>) -> String {
    match r {
        Ok(t) if !t.year_in_range() => format!("ERR {}", timestamp::YEAR_ZERO),
        Ok(t) => t.to_pydantic_string(),
        Err(e) => format!("ERR {e}"),
    }
}

fn render_old(r: Result<handwritten::Timestamp, String>) -> String {
    match r {
        Ok(t) if !t.year_in_range() => format!("ERR {}", handwritten::YEAR_ZERO),
        Ok(t) => t.to_pydantic_string(),
        Err(e) => format!("ERR {e}"),
    }
}

fn corpus(path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let c17 = v17::config();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{line}: {e}"))?;
        let [a, b, c] = match v.as_str() {
            Some(s) => [
                render_old(handwritten::parse(s).map_err(|e| e.0.to_string())),
                render(timestamp::parse(s).map_err(|e| e.0.to_string())),
                render(v17::parse(s, &c17)),
            ],
            None => {
                let (old, new) = match v.as_i64() {
                    Some(i) => (
                        handwritten::Timestamp::from_epoch_int(i),
                        Timestamp::from_epoch_int(i),
                    ),
                    None => {
                        let f = v.as_f64().unwrap_or(f64::NAN);
                        (
                            handwritten::Timestamp::from_epoch(f),
                            Timestamp::from_epoch(f),
                        )
                    }
                };
                [
                    render_old(old.map_err(str::to_string)),
                    render(new.map_err(str::to_string)),
                    render(v17::number(&v, &c17)),
                ]
            }
        };
        println!(
            "{}",
            serde_json::json!({"hand-written": a, "timestamp.rs": b, "speedate 0.17": c})
        );
    }
    Ok(())
}

const SAMPLES: [&str; 8] = [
    "2026-11-28T09:27:12Z",
    "2026-11-28T09:27:12.123456Z",
    "2026-11-28T09:27:12.123456+00:00",
    "2026-11-28T09:27:12.123456+05:30",
    "2026-11-28 09:27:12",
    "2026-11-28T09:27:12.123456789-08:00",
    "2026-11-28",
    "1764322032.5",
];

fn time_per_parse(rounds: usize, samples: &[&str], f: &dyn Fn(&str) -> bool) -> f64 {
    const N: usize = 200_000;
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut ok = 0usize;
        for i in 0..N {
            if f(black_box(samples[i % samples.len()])) {
                ok += 1;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / N as f64;
        assert_eq!(black_box(ok), N, "every sample must parse");
        best = best.min(ns);
    }
    best
}

fn bench(rounds: usize) {
    let (c17, c18) = (v17::config(), v18::config());
    if std::env::var_os("PER_SAMPLE").is_some() {
        for s in SAMPLES {
            let one = [s];
            let a = time_per_parse(rounds, &one, &|s| handwritten::parse(s).is_ok());
            let b = time_per_parse(rounds, &one, &|s| timestamp::parse(s).is_ok());
            println!("{s:38} hand-written {a:6.1} ns   timestamp.rs {b:6.1} ns");
        }
    }
    let rows: [(&str, &dyn Fn(&str) -> bool); 5] = [
        ("hand-written (before)", &|s| handwritten::parse(s).is_ok()),
        ("timestamp.rs (speedate 0.18)", &|s| {
            timestamp::parse(s).is_ok()
        }),
        ("speedate 0.17 -> Timestamp", &|s| {
            v17::parse(s, &c17).is_ok()
        }),
        ("speedate 0.18 alone", &|s| v18::parses(s, &c18)),
        ("speedate 0.17 alone", &|s| v17::parses(s, &c17)),
    ];
    for (name, f) in rows {
        let ns = time_per_parse(rounds, &SAMPLES, f);
        println!("{name:29} {ns:6.1} ns/parse");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("corpus") => {
            if let Err(e) = corpus(args.get(2).map_or("/dev/stdin", String::as_str)) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        Some("bench") => bench(args.get(2).and_then(|r| r.parse().ok()).unwrap_or(7)),
        _ => {
            eprintln!("usage: timestamp-eval corpus FILE | bench [ROUNDS]");
            std::process::exit(2);
        }
    }
}
