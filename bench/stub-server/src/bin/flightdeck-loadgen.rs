//! Closed-loop HTTP/1.1 load generator for the service benchmark (`bench/service_bench.py`).
//!
//! Usage: `flightdeck-loadgen PORT PATH CONCURRENCY DURATION_S WARMUP_S [EXPECTED_BODY]`
//!
//! Opens `CONCURRENCY` keep-alive connections to `127.0.0.1:PORT` (loopback only) and on each
//! sends `GET PATH` again as soon as the previous answer has arrived, for `WARMUP_S +
//! DURATION_S` seconds. Requests that start after the warm-up and finish before the end are
//! measured (throughput and latency); errors are counted over the whole run, warm-up included:
//! a refused or broken connection, a 10 s timeout, a status other than 200, or a body other
//! than `EXPECTED_BODY` (when given). Prints one JSON object on stdout.
//!
//! One current-thread tokio runtime: on a 2-core machine the load generator must leave the
//! cores to the service under test; it still sustains tens of thousands of requests/s.

use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEADERS: usize = 64;
const MAX_RESPONSE: usize = 1 << 20;

struct Plan {
    addr: SocketAddr,
    request: Vec<u8>,
    expect: Option<Vec<u8>>,
    measure_from: Instant,
    end: Instant,
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    ok_total: u64,
    bad_status: u64,
    bad_body: u64,
    io_errors: u64,
    timeouts: u64,
    connects: u64,
    first_error: Option<String>,
}

impl Stats {
    fn error(&mut self, what: String) {
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }

    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        self.ok_total += other.ok_total;
        self.bad_status += other.bad_status;
        self.bad_body += other.bad_body;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
        self.connects += other.connects;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn errors(&self) -> u64 {
        self.bad_status + self.bad_body + self.io_errors + self.timeouts
    }
}

/// One parsed response: its status, body, and whether the connection stays open.
struct Answer {
    status: u16,
    body_ok: bool,
    keep_alive: bool,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Sends one request on `stream` and reads its whole response (Content-Length framing).
async fn exchange(
    stream: &mut TcpStream,
    plan: &Plan,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> io::Result<Answer> {
    stream.write_all(&plan.request).await?;
    buf.clear();
    loop {
        let n = stream.read(chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a full response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let head = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let mut length = None;
                    let mut close = false;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    let length =
                        length.ok_or_else(|| invalid("response without Content-Length"))?;
                    Some((resp.code.unwrap_or(0), head_len, length, close))
                }
                Ok(httparse::Status::Partial) => None,
                Err(_) => return Err(invalid("malformed response head")),
            }
        };
        let Some((status, head_len, length, close)) = head else {
            if buf.len() > MAX_RESPONSE {
                return Err(invalid("response head too large"));
            }
            continue;
        };
        let total = head_len + length;
        if total > MAX_RESPONSE {
            return Err(invalid("response too large"));
        }
        while buf.len() < total {
            let n = stream.read(chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a response body",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if buf.len() > total {
            return Err(invalid("bytes after the response (nothing was pipelined)"));
        }
        let body = &buf[head_len..total];
        let body_ok = plan.expect.as_deref().is_none_or(|e| e == body);
        return Ok(Answer {
            status,
            body_ok,
            keep_alive: !close,
        });
    }
}

async fn worker(plan: Arc<Plan>) -> Stats {
    let mut stats = Stats::default();
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    while Instant::now() < plan.end {
        let stream = match conn.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(plan.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stats.connects += 1;
                    conn.insert(s)
                }
                Err(e) => {
                    stats.io_errors += 1;
                    stats.error(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            REQUEST_TIMEOUT,
            exchange(stream, &plan, &mut buf, &mut chunk),
        )
        .await;
        let finished = Instant::now();
        match outcome {
            Ok(Ok(answer)) => {
                if !answer.keep_alive {
                    conn = None;
                }
                if answer.status != 200 {
                    stats.bad_status += 1;
                    stats.error(format!(
                        "status {}: {}",
                        answer.status,
                        String::from_utf8_lossy(&buf[buf.len().saturating_sub(200)..])
                    ));
                } else if !answer.body_ok {
                    stats.bad_body += 1;
                    stats.error(format!(
                        "unexpected body: {}",
                        String::from_utf8_lossy(&buf[buf.len().saturating_sub(200)..])
                    ));
                } else {
                    stats.ok_total += 1;
                    if started >= plan.measure_from && finished <= plan.end {
                        let us = finished.duration_since(started).as_micros();
                        stats
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                }
            }
            Ok(Err(e)) => {
                conn = None;
                stats.io_errors += 1;
                stats.error(format!("i/o: {e}"));
            }
            Err(_) => {
                conn = None;
                stats.timeouts += 1;
                stats.error(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()));
            }
        }
    }
    stats
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn usage() -> ! {
    eprintln!(
        "usage: flightdeck-loadgen PORT PATH CONCURRENCY DURATION_S WARMUP_S [EXPECTED_BODY]"
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(5..=6).contains(&args.len()) {
        usage();
    }
    let port: u16 = args[0].parse().unwrap_or_else(|_| usage());
    let path = &args[1];
    let concurrency: usize = args[2].parse().unwrap_or_else(|_| usage());
    let duration: f64 = args[3].parse().unwrap_or_else(|_| usage());
    let warmup: f64 = args[4].parse().unwrap_or_else(|_| usage());
    if !path.starts_with('/')
        || concurrency == 0
        || !duration.is_finite()
        || duration <= 0.0
        || !warmup.is_finite()
        || warmup < 0.0
    {
        usage();
    }
    let expect = args.get(5).map(|s| s.as_bytes().to_vec());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: flightdeck-loadgen\r\n\
         Accept: */*\r\n\r\n"
    )
    .into_bytes();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("flightdeck-loadgen: cannot start the runtime: {err}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let plan = Arc::new(Plan {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        request,
        expect,
        measure_from: start + Duration::from_secs_f64(warmup),
        end: start + Duration::from_secs_f64(warmup + duration),
    });
    let total = runtime.block_on(async {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| tokio::spawn(worker(Arc::clone(&plan))))
            .collect();
        let mut total = Stats::default();
        for h in handles {
            match h.await {
                Ok(s) => total.merge(s),
                Err(e) => {
                    total.io_errors += 1;
                    total.error(format!("worker failed: {e}"));
                }
            }
        }
        total
    });
    let window = plan.end.duration_since(plan.measure_from).as_secs_f64();
    let mut lat = total.latencies_us.clone();
    lat.sort_unstable();
    let measured = lat.len();
    let mean = if measured == 0 {
        0.0
    } else {
        lat.iter().map(|&v| f64::from(v)).sum::<f64>() / measured as f64
    };
    let line = format!(
        "{{\"requests\":{measured},\"window_s\":{window:.3},\"rps\":{rps:.1},\
         \"p50_us\":{p50},\"p90_us\":{p90},\"p99_us\":{p99},\"max_us\":{max},\
         \"mean_us\":{mean:.1},\"ok_total\":{ok},\"errors\":{errors},\
         \"bad_status\":{bs},\"bad_body\":{bb},\"io_errors\":{io},\"timeouts\":{to},\
         \"connects\":{conns},\"concurrency\":{concurrency},\"first_error\":{first}}}",
        rps = measured as f64 / window,
        p50 = percentile(&lat, 0.50),
        p90 = percentile(&lat, 0.90),
        p99 = percentile(&lat, 0.99),
        max = lat.last().copied().unwrap_or(0),
        ok = total.ok_total,
        errors = total.errors(),
        bs = total.bad_status,
        bb = total.bad_body,
        io = total.io_errors,
        to = total.timeouts,
        conns = total.connects,
        first = total
            .first_error
            .as_deref()
            .map_or_else(|| "null".to_string(), json_str),
    );
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
