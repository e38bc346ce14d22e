//! The native transport: a keep-alive reqwest client per SDK client, URL joining, the
//! bearer header and the retry loop (whose decisions are [`retry::ClientRule`]'s).
//!
//! [`http_client`] and [`Target`] are also how the emitter's sender builds its client and
//! requests, so both speak to the server the same way.

use std::cell::RefCell;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::{watch, Semaphore};

use crate::core::api::{ApiRequest, Method};
use crate::core::error::Error;
use crate::core::retry::{ClientRule, Decision, Transport};
use crate::core::runtime;

/// How the crate's reqwest clients are built; see [`http_client`].
#[derive(Clone, Copy, Debug)]
pub struct HttpOptions {
    pub user_agent: &'static str,
    /// Time allowed to connect (TCP and TLS); `None`: no limit.
    pub connect_timeout: Option<Duration>,
    /// Time allowed between reads of the response; `None`: no limit.
    pub read_timeout: Option<Duration>,
    /// Idle keep-alive connections kept per host.
    pub max_idle_per_host: usize,
}

/// The one reqwest client builder of the crate: redirects never followed (the bearer token
/// stays with its host), HTTP/1.1 only (what the server speaks; no HTTP/2 code compiled in),
/// `TCP_NODELAY`, idle connections closed after 4 s (before the server's keep-alive ends).
///
/// # Errors
/// The builder's failure (e.g. no TLS roots), as an [`Error`].
pub fn http_client(opts: &HttpOptions) -> Result<reqwest::Client, Error> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(opts.user_agent)
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(opts.max_idle_per_host.max(1))
        .http1_only()
        .tcp_nodelay(true);
    if let Some(t) = opts.connect_timeout {
        b = b.connect_timeout(t);
    }
    if let Some(t) = opts.read_timeout {
        b = b.read_timeout(t);
    }
    b.build().map_err(|e| Error::from_reqwest(&e))
}

/// Where requests go and as whom: the base URL and the bearer header.
#[derive(Clone, Debug)]
pub struct Target {
    /// Base URL with trailing slashes removed; request URLs are `base_url + path`.
    base_url: String,
    auth: Option<HeaderValue>,
}

impl Target {
    /// # Errors
    /// [`Error::LocalProtocol`] when the token cannot be sent as a header value.
    pub fn new(base_url: &str, api_token: Option<&str>) -> Result<Self, Error> {
        let auth = match api_token {
            Some(t) if !t.is_empty() => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    Error::LocalProtocol(
                        "api_token contains characters not allowed in an HTTP header".into(),
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            _ => None,
        };
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            auth,
        })
    }

    /// The absolute URL of a request, as text.
    pub fn url_for(&self, req: &ApiRequest) -> String {
        format!("{}{}", self.base_url, req.path_and_query())
    }

    /// The absolute URL of a request, checked as httpx checks it.
    ///
    /// # Errors
    /// [`Error::UnsupportedProtocol`] without an `http(s)://` scheme, [`Error::InvalidUrl`]
    /// when it does not parse.
    pub fn url(&self, req: &ApiRequest) -> Result<reqwest::Url, Error> {
        let full = self.url_for(req);
        let lower = full.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(if lower.contains("://") {
                Error::UnsupportedProtocol(format!(
                    "Request URL has an unsupported protocol '{}'.",
                    full.split("://").next().unwrap_or_default()
                ))
            } else {
                Error::UnsupportedProtocol(
                    "Request URL is missing an 'http://' or 'https://' protocol.".into(),
                )
            });
        }
        reqwest::Url::parse(&full).map_err(|e| Error::InvalidUrl(format!("Invalid URL: {e}")))
    }

    /// A request to `url` with its method and the SDK's headers (content type for a body,
    /// bearer token); the caller adds the body.
    pub fn request(
        &self,
        http: &reqwest::Client,
        url: reqwest::Url,
        req: &ApiRequest,
    ) -> reqwest::RequestBuilder {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut headers = HeaderMap::with_capacity(2);
        if req.body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(a) = &self.auth {
            headers.insert(AUTHORIZATION, a.clone());
        }
        http.request(method, url).headers(headers)
    }
}

/// How a client talks to the server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Base URL with trailing slashes removed; request URLs are `base_url + path`.
    pub base_url: String,
    /// Connect and per-read timeout (`None`: no timeout).
    pub timeout: Option<Duration>,
    /// Extra attempts after a transport failure.
    pub max_retries: u32,
    /// Sleep before retry *n* (0-based) is `backoff_s * 2^n`.
    pub backoff_s: f64,
    /// Bearer token; empty means none.
    pub api_token: Option<String>,
    /// Requests in flight at once; further calls wait for a slot (not counted as timeout).
    pub max_in_flight: usize,
    /// Told about retries and slow requests (for the host's logging).
    pub observer: Option<Observer>,
    /// A call taking longer than this (all attempts, up to the whole response) is reported
    /// to the observer as slow.
    pub slow_after: Option<Duration>,
}

/// Something worth logging that happened during a call.
#[derive(Debug)]
pub enum Notice<'a> {
    /// Attempt `attempt` (1-based) failed with `error`; the next one starts in `delay_s`.
    Retry {
        req: &'a ApiRequest,
        attempt: u32,
        max_retries: u32,
        delay_s: f64,
        error: &'a Error,
    },
    /// The call took `elapsed` over `attempts` attempts; `status` is `None` when it failed.
    Slow {
        req: &'a ApiRequest,
        elapsed: Duration,
        attempts: u32,
        status: Option<u16>,
    },
}

/// A callback for [`Notice`]s; it must not block for long (it runs on the I/O path).
#[derive(Clone)]
pub struct Observer(pub Arc<dyn Fn(&Notice<'_>) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Config {
    /// A config with the reference SDK's defaults for `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            timeout: Some(Duration::from_secs(5)),
            max_retries: 0,
            backoff_s: 0.1,
            api_token: None,
            max_in_flight: 100,
            observer: None,
            slow_after: None,
        }
    }
}

/// A received HTTP response (any status).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// The reason phrase as sent by the server (canonical text when it sent the usual one).
    pub reason: String,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl Response {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }
}

struct Http {
    pid: u32,
    client: reqwest::Client,
}

/// A connection pool of one [`Client`] bound to one thread's local runtime (see
/// [`runtime::block_on_local`]): its connections' tasks live on that runtime, so the pool
/// is only ever used by the thread that drives it.
struct LocalPool {
    generation: u64,
    client_id: u64,
    /// The owning client's `closed` flag; the owner holds the other reference.
    closed: Arc<AtomicBool>,
    http: reqwest::Client,
}

impl LocalPool {
    fn is_live(&self) -> bool {
        Arc::strong_count(&self.closed) > 1 && !self.closed.load(Ordering::SeqCst)
    }
}

thread_local! {
    static LOCAL_POOLS: RefCell<Vec<LocalPool>> = const { RefCell::new(Vec::new()) };
}

static CLIENT_IDS: AtomicU64 = AtomicU64::new(1);

/// A FlightDeck HTTP client: connection pool, auth, timeouts and retries.
pub struct Client {
    id: u64,
    cfg: Config,
    target: Target,
    rule: ClientRule,
    /// The pool used from the shared runtime (async face).
    http: Mutex<Option<Http>>,
    closed: Arc<AtomicBool>,
    /// Flipped by [`Client::close`]: ends the calls in flight.
    shutdown: watch::Sender<bool>,
    slots: Semaphore,
}

impl Client {
    /// Creates a client; no connection is made until the first request.
    ///
    /// # Errors
    /// [`Error::LocalProtocol`] when the token cannot be sent as a header value.
    pub fn new(cfg: Config) -> Result<Self, Error> {
        let target = Target::new(&cfg.base_url, cfg.api_token.as_deref())?;
        let rule = ClientRule {
            max_retries: cfg.max_retries,
            backoff_s: cfg.backoff_s,
        };
        let slots = Semaphore::new(cfg.max_in_flight.max(1));
        Ok(Self {
            id: CLIENT_IDS.fetch_add(1, Ordering::Relaxed),
            cfg,
            target,
            rule,
            http: Mutex::new(None),
            closed: Arc::new(AtomicBool::new(false)),
            shutdown: watch::Sender::new(false),
            slots,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The absolute URL of a request.
    pub fn url_for(&self, req: &ApiRequest) -> String {
        self.target.url_for(req)
    }

    /// Headers the SDK adds to a request (auth, content type), in wire order.
    pub fn request_headers(&self, req: &ApiRequest) -> Vec<(&'static str, String)> {
        let mut h = Vec::with_capacity(2);
        if req.method == Method::Post {
            h.push(("Content-Type", "application/json".to_string()));
        }
        if let Some(tok) = self.cfg.api_token.as_deref().filter(|t| !t.is_empty()) {
            h.push(("Authorization", format!("Bearer {tok}")));
        }
        h
    }

    /// Closes the client: calls in flight end with [`Error::Read`], the pools are dropped
    /// and later requests fail with [`Error::Closed`].
    ///
    /// The shared pool's connections close at once, and so do this thread's (its runtime
    /// is run for a moment so that their tasks see the pool gone). A pool that another
    /// thread drives closes when that thread next makes a call (with any client), or exits.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
        let mut g = self.http.lock().unwrap_or_else(|p| p.into_inner());
        *g = None;
        drop(g);
        let generation = runtime::thread_generation();
        let pruned = LOCAL_POOLS
            .try_with(|pools| match pools.try_borrow_mut() {
                Ok(mut pools) => prune(&mut pools, generation),
                Err(_) => 0,
            })
            .unwrap_or(0);
        if pruned > 0 {
            // Idle connections' tasks were woken by the pool's drop; let them finish
            // (closing their sockets). Refused inside a running runtime: then they close
            // on this thread's next call.
            let _ = runtime::block_on_local(async {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            });
        }
    }

    /// Whether [`Client::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The reqwest client to use from the current context: this thread's own pool when
    /// running on its local runtime (sync face), else the shared one (async face).
    fn http(&self) -> Result<reqwest::Client, Error> {
        if let Some(generation) = runtime::local_generation() {
            return self.local_http(generation);
        }
        let pid = crate::core::pid::current();
        let mut g = self.http.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = g.as_ref() {
            if h.pid == pid {
                return Ok(h.client.clone());
            }
        }
        let client = self.build_http()?;
        if let Some(old) = g.take() {
            if old.pid != pid {
                // The parent's pool belongs to the parent's runtime; never touch it here.
                std::mem::forget(old);
            }
        }
        *g = Some(Http {
            pid,
            client: client.clone(),
        });
        Ok(client)
    }

    fn local_http(&self, generation: u64) -> Result<reqwest::Client, Error> {
        let found = LOCAL_POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if pools.iter().any(|p| !p.is_live()) {
                // A client closed from another thread: its pool here goes now.
                prune(&mut pools, Some(generation));
            }
            pools
                .iter()
                .find(|p| p.client_id == self.id && p.generation == generation)
                .map(|p| p.http.clone())
        });
        if let Some(h) = found {
            return Ok(h);
        }
        let http = self.build_http()?;
        LOCAL_POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            prune(&mut pools, Some(generation));
            pools.push(LocalPool {
                generation,
                client_id: self.id,
                closed: self.closed.clone(),
                http: http.clone(),
            });
        });
        Ok(http)
    }

    fn build_http(&self) -> Result<reqwest::Client, Error> {
        let t = self.cfg.timeout;
        http_client(&HttpOptions {
            user_agent: concat!("flightdeck-rs/", env!("CARGO_PKG_VERSION")),
            connect_timeout: t,
            // The head's deadline runs from the start of the request, connecting included;
            // the margin lets a stalled connect or TLS handshake end as the connect timeout
            // it is (never sent, so safe to retry) rather than as a read timeout.
            read_timeout: t.map(|t| t + CONNECT_MARGIN.min(t / 2)),
            max_idle_per_host: self.cfg.max_in_flight,
        })
    }

    /// Sends one attempt and reads the response head.
    async fn head(
        &self,
        url: reqwest::Url,
        req: &ApiRequest,
    ) -> Result<(Response, reqwest::Response), Error> {
        let http = self.http()?;
        let mut rb = self.target.request(&http, url, req);
        let mut upload = None;
        if let Some(body) = &req.body {
            if body.len() > TRACKED_UPLOAD_OVER {
                let (tracked, done) = Upload::new(Bytes::from(body.clone()));
                upload = Some(done);
                rb = rb.body(reqwest::Body::wrap(tracked));
            } else {
                rb = rb.body(body.clone());
            }
        }
        let resp = rb.send().await.map_err(|e| {
            match (Error::from_reqwest(&e), upload) {
                // The server stopped reading before the body was all handed over.
                (Error::ReadTimeout(m), Some(done)) if !done.load(Ordering::Acquire) => {
                    Error::WriteTimeout(m)
                }
                (Error::Read(m) | Error::Write(m), Some(done)) if !done.load(Ordering::Acquire) => {
                    Error::UploadReset(m)
                }
                (err, _) => err,
            }
        })?;
        let status = resp.status().as_u16();
        let reason = match resp.extensions().get::<hyper::ext::ReasonPhrase>() {
            Some(r) => String::from_utf8_lossy(r.as_bytes()).into_owned(),
            None => resp.status().canonical_reason().unwrap_or("").to_string(),
        };
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        let head = Response {
            status,
            reason,
            headers,
            body: Bytes::new(),
        };
        Ok((head, resp))
    }

    async fn once(&self, url: reqwest::Url, req: &ApiRequest) -> Result<Response, Error> {
        let _slot = self.slots.acquire().await.map_err(|_| Error::Closed)?;
        let (mut head, resp) = self.head(url, req).await?;
        head.body = read_body(resp).await?;
        Ok(head)
    }

    /// Runs `attempt_fn` with the retry policy of [`Client::send`], telling the observer
    /// about retries and about a slow call.
    async fn with_retries<'a, T, F, Fut>(
        &'a self,
        req: &'a ApiRequest,
        attempt_fn: F,
    ) -> Result<T, Error>
    where
        T: Status,
        F: Fn(reqwest::Url) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>> + 'a,
    {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let started = std::time::Instant::now();
        let url = self.target.url(req);
        let mut attempt: u32 = 0;
        let result = loop {
            let result = match &url {
                Ok(u) => {
                    let mut shutdown = self.shutdown.subscribe();
                    tokio::select! {
                        biased;
                        r = attempt_fn(u.clone()) => r,
                        _ = shutdown.wait_for(|closed| *closed) => Err(Error::Read(
                            "the client was closed while the request was in flight".into(),
                        )),
                    }
                }
                Err(e) => Err(clone_err(e)),
            };
            match result {
                Ok(r) => break Ok(r),
                Err(e) => {
                    let decision =
                        self.rule
                            .decide(Transport::of_error(&e), req.idempotent, attempt);
                    let delay = match decision {
                        Decision::Retry(d) if !self.is_closed() => d,
                        _ => break Err(e),
                    };
                    self.notify(&Notice::Retry {
                        req,
                        attempt: attempt + 1,
                        max_retries: self.cfg.max_retries,
                        delay_s: self.rule.delay_s(attempt),
                        error: &e,
                    });
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    attempt += 1;
                }
            }
        };
        if let Some(limit) = self.cfg.slow_after {
            let elapsed = started.elapsed();
            if elapsed >= limit {
                self.notify(&Notice::Slow {
                    req,
                    elapsed,
                    attempts: attempt + 1,
                    status: result.as_ref().ok().map(Status::status),
                });
            }
        }
        result
    }

    fn notify(&self, notice: &Notice<'_>) {
        if let Some(o) = &self.cfg.observer {
            (o.0)(notice);
        }
    }

    /// Sends `req`, retrying transport failures as [`ClientRule`] decides: up to
    /// `max_retries` times with exponential backoff; non-idempotent requests only when they
    /// never reached the server.
    ///
    /// # Errors
    /// The last attempt's [`Error`]; HTTP error statuses are returned as a [`Response`].
    pub async fn send(&self, req: &ApiRequest) -> Result<Response, Error> {
        self.with_retries(req, |url| self.once(url, req)).await
    }

    /// Sends `req` (with the retries of [`Client::send`] up to the response head) and, on a
    /// 2xx status, returns the head with the body left unread as a [`BodyStream`]. Any other
    /// status comes back as a complete [`Response`] and no stream. A stream does not hold
    /// one of the client's in-flight slots.
    ///
    /// # Errors
    /// The last attempt's [`Error`].
    pub async fn open(&self, req: &ApiRequest) -> Result<(Response, Option<BodyStream>), Error> {
        self.with_retries(req, |url| async move {
            let (mut head, resp) = self.head(url, req).await?;
            if (200..300).contains(&head.status) {
                Ok((head, Some(BodyStream::new(resp))))
            } else {
                head.body = read_body(resp).await?;
                Ok((head, None))
            }
        })
        .await
    }
}

/// A call's outcome whose HTTP status can be reported.
trait Status {
    fn status(&self) -> u16;
}

impl Status for Response {
    fn status(&self) -> u16 {
        self.status
    }
}

impl Status for (Response, Option<BodyStream>) {
    fn status(&self) -> u16 {
        self.0.status
    }
}

/// How much longer than the connect timeout the response head may take.
const CONNECT_MARGIN: Duration = Duration::from_millis(100);

/// Request bodies larger than this are handed to the connection in pieces, so that a
/// timeout can tell a stalled upload ([`Error::WriteTimeout`]) from a slow answer. Smaller
/// ones fit in the socket buffers whether or not the server reads them.
const TRACKED_UPLOAD_OVER: usize = 256 * 1024;
const UPLOAD_PIECE: usize = 64 * 1024;

/// A request body that records when its last piece was taken by the connection.
struct Upload {
    rest: Bytes,
    done: Arc<AtomicBool>,
}

impl Upload {
    fn new(body: Bytes) -> (Self, Arc<AtomicBool>) {
        let done = Arc::new(AtomicBool::new(body.is_empty()));
        (
            Self {
                rest: body,
                done: done.clone(),
            },
            done,
        )
    }
}

impl http_body::Body for Upload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(UPLOAD_PIECE);
        let piece = self.rest.split_to(n);
        if self.rest.is_empty() {
            self.done.store(true, Ordering::Release);
        }
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// Reads a whole response body (a failure says how much of it had arrived).
async fn read_body(resp: reqwest::Response) -> Result<Bytes, Error> {
    let mut stream = BodyStream::new(resp);
    let Some(first) = stream.chunk().await? else {
        return Ok(Bytes::new());
    };
    let Some(second) = stream.chunk().await? else {
        return Ok(first);
    };
    let hint = stream.expected.unwrap_or(0) as usize;
    let mut buf = Vec::with_capacity(hint.max(first.len() + second.len()));
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    while let Some(c) = stream.chunk().await? {
        buf.extend_from_slice(&c);
    }
    Ok(Bytes::from(buf))
}

/// The unread body of a response opened with [`Client::open`].
#[derive(Debug)]
pub struct BodyStream {
    resp: reqwest::Response,
    received: u64,
    /// The `Content-Length` (unknown for a chunked or decompressed body).
    expected: Option<u64>,
}

impl BodyStream {
    fn new(resp: reqwest::Response) -> Self {
        let expected = resp.content_length();
        Self {
            resp,
            received: 0,
            expected,
        }
    }

    /// The next chunk of the body as it arrives, or `None` at its end.
    ///
    /// # Errors
    /// The transport error that broke the body (reset, timeout, truncation).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        match self.resp.chunk().await {
            Ok(c) => {
                self.received += c.as_ref().map_or(0, |c| c.len() as u64);
                Ok(c)
            }
            Err(e) => Err(Error::from_body(&e, self.received, self.expected)),
        }
    }
}

/// Drops the pools of closed or dropped clients; pools of another runtime generation (one
/// inherited across `fork()`, or one whose runtime is gone) are leaked, never shut down here.
fn prune(pools: &mut Vec<LocalPool>, generation: Option<u64>) -> usize {
    let mut dropped = 0;
    for p in std::mem::take(pools) {
        if Some(p.generation) != generation {
            std::mem::forget(p);
        } else if p.is_live() {
            pools.push(p);
        } else {
            dropped += 1;
        }
    }
    dropped
}

fn clone_err(e: &Error) -> Error {
    match e {
        Error::UnsupportedProtocol(m) => Error::UnsupportedProtocol(m.clone()),
        Error::InvalidUrl(m) => Error::InvalidUrl(m.clone()),
        other => Error::LocalProtocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback server answering every request with `reply`, counting connections.
    async fn server(reply: &'static [u8]) -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                h.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(reply).await;
                });
            }
        });
        (format!("http://{addr}"), hits)
    }

    #[tokio::test]
    async fn returns_status_and_body() {
        let (url, _) =
            server(b"HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\nx-a: b\r\n\r\n{}").await;
        let c = Client::new(Config::new(&url)).unwrap();
        let r = c.send(&api::health()).await.unwrap();
        assert_eq!(r.status, 409);
        assert_eq!(r.header("X-A"), Some(&b"b"[..]));
        assert_eq!(&r.body[..], b"{}");
    }

    #[tokio::test]
    async fn refused_is_connect_error_and_retried() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let mut cfg = Config::new(&url);
        cfg.max_retries = 2;
        cfg.backoff_s = 0.0;
        let c = Client::new(cfg).unwrap();
        let e = c.send(&api::health()).await.unwrap_err();
        assert!(matches!(e, Error::Connect(_)), "{e:?}");
        #[cfg(target_os = "linux")]
        assert_eq!(e.to_string(), "[Errno 111] Connection refused");
    }

    #[tokio::test]
    async fn retries_sleep_as_the_client_rule_says() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let delays = Arc::new(Mutex::new(Vec::new()));
        let seen = delays.clone();
        let mut cfg = Config::new(&url);
        cfg.max_retries = 3;
        cfg.backoff_s = 0.001;
        cfg.observer = Some(Observer(Arc::new(move |n: &Notice<'_>| {
            if let Notice::Retry { delay_s, .. } = n {
                seen.lock().unwrap().push(*delay_s);
            }
        })));
        let c = Client::new(cfg).unwrap();
        let req = api::promote_like(api::Action::Promote, "r", "e", "1h", "x", "sdk");
        assert!(matches!(c.send(&req).await, Err(Error::Connect(_))));
        let rule = ClientRule {
            max_retries: 3,
            backoff_s: 0.001,
        };
        let want: Vec<f64> = (0..3).map(|n| rule.delay_s(n)).collect();
        assert_eq!(*delays.lock().unwrap(), want);
    }

    #[tokio::test]
    async fn audit_actions_are_not_resent_after_reaching_the_server() {
        // The server accepts, reads, and closes without answering.
        let (url, hits) = server(b"").await;
        let mut cfg = Config::new(&url);
        cfg.max_retries = 3;
        cfg.backoff_s = 0.0;
        let c = Client::new(cfg).unwrap();
        let req = api::promote_like(api::Action::Promote, "r", "e", "1h", "x", "sdk");
        let e = c.send(&req).await.unwrap_err();
        assert_eq!(
            Transport::of_error(&e),
            Some(Transport::Interrupted),
            "{e:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let e2 = c.send(&api::health()).await.unwrap_err();
        assert!(Transport::of_error(&e2).is_some());
        assert_eq!(hits.load(Ordering::SeqCst), 1 + 4);
    }

    #[test]
    fn blocking_sends_use_a_per_thread_pool_that_close_prunes() {
        let rt = runtime::get().unwrap();
        let (url, _) = rt.block_on(server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"));
        let c = Client::new(Config::new(&url)).unwrap();
        let r = runtime::block_on_local(c.send(&api::health()))
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200);
        let pools = || LOCAL_POOLS.with(|p| p.borrow().len());
        assert_eq!(pools(), 1);
        // The async face (shared runtime) does not touch the thread's pools.
        let r2 = rt.block_on(c.send(&api::health())).unwrap();
        assert_eq!(r2.status, 200);
        assert_eq!(pools(), 1);
        c.close();
        assert_eq!(pools(), 0);
        let c2 = Client::new(Config::new(&url)).unwrap();
        runtime::block_on_local(c2.send(&api::health()))
            .unwrap()
            .unwrap();
        drop(c2);
        let c3 = Client::new(Config::new(&url)).unwrap();
        runtime::block_on_local(c3.send(&api::health()))
            .unwrap()
            .unwrap();
        // Adding c3's pool pruned the pool of the dropped c2.
        assert_eq!(pools(), 1);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_a_protocol_error() {
        let (url, _) =
            server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"status\": \"o").await;
        let c = Client::new(Config::new(&url)).unwrap();
        let e = c.send(&api::health()).await.unwrap_err();
        assert!(matches!(e, Error::RemoteProtocol(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "peer closed connection without sending complete message body \
             (received 13 bytes, expected 100)"
        );
    }

    /// A server that accepts connections and never reads from them.
    async fn deaf_server() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = l.accept().await {
                held.push(sock);
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_stalled_upload_is_a_write_timeout_and_a_silent_server_a_read_timeout() {
        let url = deaf_server().await;
        let mut cfg = Config::new(&url);
        cfg.timeout = Some(Duration::from_millis(300));
        let c = Client::new(cfg).unwrap();
        // Far more than the socket buffers hold.
        let e = c
            .send(&api::ingest(vec![b' '; 64 << 20]))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::WriteTimeout(_)), "{e:?}");
        // A small body fits in the buffers: the wait is for the answer.
        let e = c.send(&api::ingest(b"[]".to_vec())).await.unwrap_err();
        assert!(matches!(e, Error::ReadTimeout(_)), "{e:?}");
    }

    #[tokio::test]
    async fn a_large_upload_keeps_its_content_length() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let body_len = TRACKED_UPLOAD_OVER * 3 + 7;
        let head = tokio::spawn(async move {
            let (mut sock, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    if buf.len() >= end + 4 + body_len {
                        break;
                    }
                }
            }
            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
            sock.write_all(reply).await.unwrap();
            let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
            text[..text.find("\r\n\r\n").unwrap()].to_string()
        });
        let c = Client::new(Config::new(&url)).unwrap();
        let r = c.send(&api::ingest(vec![b' '; body_len])).await.unwrap();
        assert_eq!(r.status, 200);
        let head = head.await.unwrap();
        assert!(
            head.contains(&format!("content-length: {body_len}")),
            "{head}"
        );
        assert!(!head.contains("transfer-encoding"), "{head}");
    }

    #[tokio::test]
    async fn close_ends_the_calls_in_flight() {
        let url = deaf_server().await;
        let c = Arc::new(Client::new(Config::new(&url)).unwrap());
        let call = tokio::spawn({
            let c = c.clone();
            async move { c.send(&api::health()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.close();
        let e = tokio::time::timeout(Duration::from_secs(2), call)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, Error::Read(_)), "{e:?}");
    }

    #[tokio::test]
    async fn closed_client_refuses() {
        let c = Client::new(Config::new("http://127.0.0.1:9")).unwrap();
        c.close();
        assert!(matches!(c.send(&api::health()).await, Err(Error::Closed)));
    }

    #[tokio::test]
    async fn missing_scheme_is_unsupported_protocol() {
        let c = Client::new(Config::new("127.0.0.1:8765")).unwrap();
        assert!(matches!(
            c.send(&api::health()).await,
            Err(Error::UnsupportedProtocol(_))
        ));
    }
}
