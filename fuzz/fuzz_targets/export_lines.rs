//! Arbitrary bytes, cut into arbitrary chunks, through the NDJSON `LineSplitter`.
//!
//! The first byte picks the chunk size. Invariants: nothing panics; the lines handed out are
//! exactly the non-blank lines of the whole body, stripped like Python's `bytes.strip()`,
//! whatever the chunking; `lines()` counts them; each line is then validated as an event
//! (which must not panic either).
#![no_main]

use flightdeck_rs::core::event::source_json;
use flightdeck_rs::core::export::LineSplitter;
use libfuzzer_sys::fuzz_target;

/// Python's `bytes.strip()` set: `[u8]::trim_ascii` would keep the vertical tab (0x0b).
fn py_strip(mut l: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    while let Some((first, rest)) = l.split_first() {
        if !space(first) {
            break;
        }
        l = rest;
    }
    while let Some((last, rest)) = l.split_last() {
        if !space(last) {
            break;
        }
        l = rest;
    }
    l
}

fn drain(s: &mut LineSplitter, out: &mut Vec<Vec<u8>>) {
    loop {
        match s.next_line() {
            Ok(Some(line)) => out.push(line.to_vec()),
            Ok(None) => return,
            Err(e) => panic!("split error on a small body: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let size = usize::from(first % 64) + 1;
    let mut s = LineSplitter::default();
    let mut got = Vec::new();
    for chunk in body.chunks(size) {
        s.feed(chunk);
        drain(&mut s, &mut got);
    }
    s.finish();
    assert!(s.is_finished());
    drain(&mut s, &mut got);
    drain(&mut s, &mut got); // exhausted stays exhausted

    let want: Vec<Vec<u8>> = body
        .split(|b| *b == b'\n')
        .map(|l| py_strip(l).to_vec())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want, "chunk size {size}");
    assert_eq!(s.lines(), want.len() as u64);

    let mut whole = Vec::new();
    drain(&mut LineSplitter::complete(body), &mut whole);
    assert_eq!(whole, want);

    for line in &got {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
            let _ = source_json::event_from_value(&v);
        }
    }
});
