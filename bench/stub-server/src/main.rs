//! Benchmark stub of `flightdeck serve`, built to never be the bottleneck.
//!
//! Usage: `flightdeck-stub-server [PORT]` (default 0 = any free port). Binds `127.0.0.1` only
//! and prints the bound port alone on the first line of stdout, then serves until killed:
//!
//! - `GET /health` answers the real server's body
//!   `{"status":"ok","mutation_auth":"loopback","read_auth":"open"}`;
//! - `POST /v1/events` reads the whole body, counts the occurrences of `"run_id"` in it (one per
//!   event: no JSON parsing) and answers `{"inserted":N}`;
//! - anything else answers 404 `{"detail":"Not Found"}`.
//!
//! HTTP/1.1 with keep-alive, one current-thread tokio runtime (a single core is plenty for
//! this work and leaves the other core to the client under test), TCP_NODELAY, and a deep
//! accept backlog so a 2,000-request fan-out never waits on SYN retries.

use std::convert::Infallible;
use std::future::poll_fn;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

const HEALTH: &[u8] = br#"{"status":"ok","mutation_auth":"loopback","read_auth":"open"}"#;
const NOT_FOUND: &[u8] = br#"{"detail":"Not Found"}"#;
const NEEDLE: &[u8] = br#""run_id""#;
const BACKLOG: u32 = 4096;
const READ_CHUNK: usize = 64 * 1024;

/// A complete in-memory response body (hyper alone ships no outgoing body type).
struct Full(Option<Bytes>);

impl Body for Full {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// Adapts a tokio `TcpStream` to hyper's I/O traits (what `hyper_util::rt::TokioIo` does),
/// without unsafe code: reads land in a reused buffer and are copied into hyper's.
struct Io {
    stream: TcpStream,
    buf: Box<[u8]>,
}

impl Io {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
        }
    }
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut cursor: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = cursor.remaining().min(this.buf.len());
        let mut buf = ReadBuf::new(&mut this.buf[..n]);
        match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                cursor.put_slice(buf.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Occurrences of `"run_id"` in `hay`, at every offset.
///
/// Blocks of 32 offsets are filtered on two bytes of the needle (`r` at +1, `d` at +6: a rare
/// pair in JSON) with a branch-free loop the compiler vectorizes; only the few blocks with a
/// candidate are compared in full. Safe code only, no dependencies.
fn count_needles(hay: &[u8]) -> usize {
    const N: usize = NEEDLE.len();
    const BLOCK: usize = 32;
    let mut count = 0;
    let mut i = 0;
    while i + BLOCK + N <= hay.len() {
        let a: &[u8; BLOCK] = hay[i + 1..i + 1 + BLOCK].try_into().unwrap_or(&[0; BLOCK]);
        let b: &[u8; BLOCK] = hay[i + N - 2..i + N - 2 + BLOCK]
            .try_into()
            .unwrap_or(&[0; BLOCK]);
        // Vectorized: 32 byte compares, AND, OR-reduce; almost always 0 in JSON text.
        let mut any = 0u8;
        for k in 0..BLOCK {
            any |= u8::from(a[k] == NEEDLE[1]) & u8::from(b[k] == NEEDLE[N - 2]);
        }
        if any != 0 {
            for k in 0..BLOCK {
                if hay[i + k..i + k + N] == *NEEDLE {
                    count += 1;
                }
            }
        }
        i += BLOCK;
    }
    while i + N <= hay.len() {
        if hay[i..i + N] == *NEEDLE {
            count += 1;
        }
        i += 1;
    }
    count
}

/// Counts needles over a body that arrives in frames, including needles split across frames.
#[derive(Default)]
struct Counter {
    count: usize,
    /// The last `NEEDLE.len() - 1` bytes seen: too short to hold a whole needle.
    carry: Vec<u8>,
}

impl Counter {
    fn feed(&mut self, data: &[u8]) {
        const KEEP: usize = NEEDLE.len() - 1;
        if data.is_empty() {
            return;
        }
        // Needles straddling the boundary lie in carry + the first KEEP bytes of `data`.
        let mut joint = std::mem::take(&mut self.carry);
        joint.extend_from_slice(&data[..data.len().min(KEEP)]);
        if joint.len() > data.len().min(KEEP) {
            self.count += count_needles(&joint);
        }
        self.count += count_needles(data);
        self.carry = if data.len() >= KEEP {
            data[data.len() - KEEP..].to_vec()
        } else {
            joint[joint.len().saturating_sub(KEEP)..].to_vec()
        };
    }
}

/// Streams the request body through a [`Counter`].
async fn count_events(mut body: Incoming) -> Result<usize, hyper::Error> {
    let mut counter = Counter::default();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            counter.feed(&data);
        }
    }
    Ok(counter.count)
}

fn json(status: StatusCode, body: Bytes) -> Response<Full> {
    let mut resp = Response::new(Full(Some(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full>, hyper::Error> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => json(StatusCode::OK, Bytes::from_static(HEALTH)),
        (&Method::POST, "/v1/events") => {
            let n = count_events(req.into_body()).await?;
            json(StatusCode::OK, Bytes::from(format!("{{\"inserted\":{n}}}")))
        }
        _ => json(StatusCode::NOT_FOUND, Bytes::from_static(NOT_FOUND)),
    };
    Ok(resp)
}

async fn serve(port: u16) -> io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let listener = socket.listen(BACKLOG)?;
    let bound = listener.local_addr()?.port();
    {
        let mut out = io::stdout().lock();
        writeln!(out, "{bound}")?;
        out.flush()?;
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            // EMFILE and friends: keep serving the connections we have.
            Err(_) => {
                tokio::task::yield_now().await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::task::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(Io::new(stream), service_fn(handle))
                .await;
        });
    }
}

fn main() {
    let port = match std::env::args().nth(1) {
        None => 0,
        Some(arg) => match arg.parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("usage: flightdeck-stub-server [PORT]  (0 or none: any free port)");
                std::process::exit(2);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("flightdeck-stub-server: cannot start the runtime: {err}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(serve(port)) {
        eprintln!("flightdeck-stub-server: {err}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::{count_needles, Counter};

    #[test]
    fn counts_needles() {
        assert_eq!(
            count_needles(br#"{"events":[{"run_id":"a"},{"run_id":"b"}]}"#),
            2
        );
        assert_eq!(count_needles(b""), 0);
        assert_eq!(count_needles(br#""run_i"#), 0);
        assert_eq!(count_needles(br#""run_id""run_id"x"run_id""#), 3);
        assert_eq!(count_needles(br#""""run_id"""#), 1);
        assert_eq!(count_needles(br#"run_id"run_id""#), 1);
        // Long inputs take the block path; every offset is tested exactly once.
        let unit = br#"{"run_id":"x","tenant_id":"t","task_id":"k","run_end":1},"#;
        for reps in [0usize, 1, 2, 3, 7, 50, 333] {
            for pad in 0..40 {
                let mut hay = vec![b'd'; pad];
                for _ in 0..reps {
                    hay.extend_from_slice(unit);
                }
                assert_eq!(count_needles(&hay), reps, "reps {reps} pad {pad}");
            }
        }
    }

    #[test]
    fn counts_across_frames_of_any_size() {
        let body: Vec<u8> =
            br#"{"events":[{"run_id":"a"},{"run_id":"bb"},{"x":"run_idx"}]}"#.to_vec();
        for size in 1..body.len() {
            let mut c = Counter::default();
            for chunk in body.chunks(size) {
                c.feed(chunk);
            }
            assert_eq!(c.count, 2, "frame size {size}");
        }
    }
}
