//! Criterion benchmarks of the pure-Rust hot paths, with no Python involved:
//! validating a batch of 500 events from JSON values and from bytes, serializing a batch
//! into a `POST /v1/events` body, splitting and validating an NDJSON export page, and
//! parsing timestamps.
//!
//! Run with `make bench-rust` (or `cargo bench --bench core`); criterion prints the time
//! per batch and the throughput in events per second.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flightdeck_rs::core::event::{serialize, source_json, timestamp, RunEvent};
use flightdeck_rs::core::export::LineSplitter;
use serde_json::{json, Value};

const BATCH: usize = 500;

fn event_value(i: usize) -> Value {
    json!({
        "api_version": "v1",
        "type": "run_end",
        "timestamp": format!("2026-11-28T09:{:02}:{:02}.123456+00:00", (i / 60) % 60, i % 60),
        "workspace_id": "ws_local",
        "agent_id": "agent_support",
        "release_id": "rel_67fa3af8b495",
        "run_id": format!("run-{i:08}"),
        "tenant_id": "tenant_acme",
        "task_id": "task_support",
        "environment": "production",
        "request": {"session_id": "s-1", "trace_id": format!("t-{i}"), "span_id": null},
        "metrics": {"latency_ms": 1200 + i as i64, "success": !i.is_multiple_of(7),
                    "error_type": if i.is_multiple_of(7) { json!("timeout") } else { Value::Null }},
        "usage": {
            "model": {"provider": "openai", "model": "gpt-4.1-mini", "input_tokens": 1000,
                      "output_tokens": 500, "cached_input_tokens": 100},
            "tools": [{"tool_name": "search", "invocations": 2, "cost_units": 0.5}]
        },
        "labels": {"team": "support", "region": "eu-west-1", "ticket": format!("T-{i}")}
    })
}

fn events(values: &[Value]) -> Vec<RunEvent> {
    values
        .iter()
        .filter_map(|v| source_json::event_from_value(v).ok())
        .collect()
}

fn bench_validate(c: &mut Criterion) {
    let values: Vec<Value> = (0..BATCH).map(event_value).collect();
    assert_eq!(
        events(&values).len(),
        BATCH,
        "the sample events must be valid"
    );
    let lines: Vec<Vec<u8>> = values
        .iter()
        .filter_map(|v| serde_json::to_vec(v).ok())
        .collect();
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("500 events from JSON values", |b| {
        b.iter(|| events(black_box(&values)))
    });
    g.bench_function("500 events from JSON bytes", |b| {
        b.iter(|| {
            black_box(&lines)
                .iter()
                .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
                .filter_map(|v| source_json::event_from_value(&v).ok())
                .count()
        })
    });
    g.finish();
}

fn bench_serialize(c: &mut Criterion) {
    let batch = events(&(0..BATCH).map(event_value).collect::<Vec<_>>());
    let mut g = c.benchmark_group("serialize");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("POST /v1/events body of 500 events", |b| {
        b.iter(|| serialize::events_body(black_box(&batch)).map(|v| v.len()))
    });
    g.bench_function("pydantic model_dump_json of 500 events", |b| {
        b.iter(|| {
            black_box(&batch)
                .iter()
                .filter_map(|e| serialize::to_vec(e, serialize::Mode::Pydantic).ok())
                .count()
        })
    });
    g.finish();
}

fn bench_export(c: &mut Criterion) {
    let mut page = Vec::new();
    for i in 0..BATCH {
        if let Ok(l) = serde_json::to_vec(&event_value(i)) {
            page.extend_from_slice(&l);
            page.push(b'\n');
        }
    }
    let mut g = c.benchmark_group("export");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(
        "split + validate a 500-event NDJSON page in 16 KiB chunks",
        |b| {
            b.iter_batched(
                LineSplitter::default,
                |mut split| {
                    let mut n = 0usize;
                    for chunk in page.chunks(16 * 1024) {
                        split.feed(chunk);
                        while let Ok(Some(line)) = split.next_line() {
                            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                                n += usize::from(source_json::event_from_value(&v).is_ok());
                            }
                        }
                    }
                    split.finish();
                    while let Ok(Some(line)) = split.next_line() {
                        n += line.len().min(1);
                    }
                    n
                },
                BatchSize::SmallInput,
            )
        },
    );
    g.finish();
}

fn bench_timestamp(c: &mut Criterion) {
    let samples = [
        "2026-11-28T09:27:12Z",
        "2026-11-28T09:27:12.123456+05:30",
        "2026-11-28 09:27:12",
        "2026-11-28",
    ];
    let mut g = c.benchmark_group("timestamp");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("parse 4 ISO 8601 forms", |b| {
        b.iter(|| {
            black_box(&samples)
                .iter()
                .filter(|s| timestamp::parse(s).is_ok())
                .count()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_validate,
    bench_serialize,
    bench_export,
    bench_timestamp
);
criterion_main!(benches);
