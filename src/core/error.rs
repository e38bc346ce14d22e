//! The one error type of the core, and the only place transport errors are classified.

use std::error::Error as StdError;

/// Everything a request can fail with, short of an HTTP status (which is a response).
///
/// Each transport variant corresponds to one `httpx.RequestError` subclass, so callers
/// keep catching what they caught with the reference SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connection refused, DNS failure, TLS handshake failure (`httpx.ConnectError`).
    #[error("{0}")]
    Connect(String),
    /// No connection within the timeout (`httpx.ConnectTimeout`).
    #[error("{0}")]
    ConnectTimeout(String),
    /// No response (or body data) within the timeout (`httpx.ReadTimeout`).
    #[error("{0}")]
    ReadTimeout(String),
    /// The request body could not be sent within the timeout (`httpx.WriteTimeout`).
    #[error("{0}")]
    WriteTimeout(String),
    /// The connection broke while reading the response (`httpx.ReadError`).
    #[error("{0}")]
    Read(String),
    /// The connection broke while sending the request (`httpx.WriteError`).
    #[error("{0}")]
    Write(String),
    /// The server reset the connection before taking the whole request body. httpx's
    /// async transport reports a `ReadError`; its sync one ignores the failed write and
    /// reports the closed connection it then reads (`RemoteProtocolError`).
    #[error("{0}")]
    UploadReset(String),
    /// The server violated HTTP/1.1 or closed without a response (`httpx.RemoteProtocolError`).
    #[error("{0}")]
    RemoteProtocol(String),
    /// The request itself is malformed, e.g. an illegal header value (`httpx.LocalProtocolError`).
    #[error("{0}")]
    LocalProtocol(String),
    /// The URL has no `http://` or `https://` scheme (`httpx.UnsupportedProtocol`).
    #[error("{0}")]
    UnsupportedProtocol(String),
    /// The URL cannot be parsed (`httpx.InvalidURL`, not retried).
    #[error("{0}")]
    InvalidUrl(String),
    /// The client was closed (`RuntimeError`, not retried).
    #[error("Cannot send a request, as the client has been closed.")]
    Closed,
    /// A float that JSON cannot represent (`ValueError`, not retried).
    #[error("Out of range float values are not JSON compliant")]
    NonFinite,
}

impl Error {
    /// The name of the exception class the caller sees (an `httpx` class for transport
    /// failures).
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Connect(_) => "ConnectError",
            Self::ConnectTimeout(_) => "ConnectTimeout",
            Self::ReadTimeout(_) => "ReadTimeout",
            Self::WriteTimeout(_) => "WriteTimeout",
            Self::Read(_) => "ReadError",
            Self::Write(_) => "WriteError",
            Self::UploadReset(_) => "ReadError",
            Self::RemoteProtocol(_) => "RemoteProtocolError",
            Self::LocalProtocol(_) => "LocalProtocolError",
            Self::UnsupportedProtocol(_) => "UnsupportedProtocol",
            Self::InvalidUrl(_) => "InvalidURL",
            Self::Closed => "RuntimeError",
            Self::NonFinite => "ValueError",
        }
    }

    /// Classifies a reqwest error by walking its cause chain. The message is worded as
    /// httpx's blocking transport words the same failure (see [`Cause::text`]); the URL is
    /// never part of it.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        let cause = Cause::of(e);
        let text = |fallback: &str| cause.text(fallback);
        if e.is_builder() {
            return Self::LocalProtocol(cause.chain.clone());
        }
        if e.is_timeout() {
            return if e.is_connect() {
                Self::ConnectTimeout(cause.connect_timeout_text())
            } else {
                Self::ReadTimeout(TIMED_OUT.into())
            };
        }
        if e.is_connect() {
            return Self::Connect(text(&cause.chain));
        }
        if let Some(kind) = cause.io_kind {
            return match kind {
                std::io::ErrorKind::TimedOut => Self::ReadTimeout(TIMED_OUT.into()),
                std::io::ErrorKind::BrokenPipe => Self::Write(text(&cause.chain)),
                // A body cut short of its Content-Length (or chunked end).
                std::io::ErrorKind::UnexpectedEof => Self::RemoteProtocol(BODY_CUT_SHORT.into()),
                _ => Self::Read(text(&cause.chain)),
            };
        }
        if cause.incomplete_head {
            return Self::RemoteProtocol(DISCONNECTED.into());
        }
        if cause.parse {
            return Self::RemoteProtocol(cause.chain.clone());
        }
        if e.is_body() || e.is_decode() {
            return Self::Read(text(&cause.chain));
        }
        Self::RemoteProtocol(cause.chain.clone())
    }

    /// [`Error::from_reqwest`] for a failure while reading a response body, of which
    /// `received` bytes had arrived; `expected` is the `Content-Length`, if any. A body cut
    /// short says how much of it came, as httpx (h11) does.
    pub fn from_body(e: &reqwest::Error, received: u64, expected: Option<u64>) -> Self {
        match Self::from_reqwest(e) {
            Self::RemoteProtocol(m) if m == BODY_CUT_SHORT => {
                Self::RemoteProtocol(match expected {
                    Some(n) => {
                        format!("{BODY_CUT_SHORT} (received {received} bytes, expected {n})")
                    }
                    None => format!("{BODY_CUT_SHORT} (incomplete chunked read)"),
                })
            }
            other => other,
        }
    }

    /// The message httpx's *async* transport (httpcore on anyio) gives for the same
    /// failure, where it differs from the blocking one: anyio raises its timeouts and
    /// broken-stream errors without a message, and reports a refused (or otherwise failed)
    /// connect as "All connection attempts failed". `None`: same text on both.
    pub fn async_text(&self) -> Option<&'static str> {
        match self {
            Self::ConnectTimeout(_) | Self::ReadTimeout(_) | Self::WriteTimeout(_) => Some(""),
            Self::Read(m) | Self::Write(m) | Self::UploadReset(m) if os_errno(m).is_some() => {
                Some("")
            }
            Self::Connect(m) if os_errno(m).is_some_and(|n| n > 0) => {
                Some("All connection attempts failed")
            }
            _ => None,
        }
    }
}

impl Error {
    /// The errno and text of the OS (or resolver) error behind a transport failure, as
    /// Python's `OSError` (or `socket.gaierror`) carries them: `(111, "Connection refused")`.
    pub fn os_error(&self) -> Option<(i32, &str)> {
        match self {
            Self::Connect(m) | Self::Read(m) | Self::Write(m) | Self::UploadReset(m) => {
                Some((os_errno(m)?, m.split_once("] ")?.1))
            }
            _ => None,
        }
    }
}

/// What httpx says when a socket operation times out (`socket.timeout`).
const TIMED_OUT: &str = "timed out";
/// h11's words for a connection closed before the response head was complete.
const DISCONNECTED: &str = "Server disconnected without sending a response.";
/// h11's words for a connection closed before the end of the response body.
const BODY_CUT_SHORT: &str = "peer closed connection without sending complete message body";

/// The errno of a message worded by [`os_text`] or [`gai_text`].
fn os_errno(msg: &str) -> Option<i32> {
    let rest = msg.strip_prefix("[Errno ")?;
    rest[..rest.find(']')?].parse().ok()
}

/// An OS error as Python's `OSError` prints it: `[Errno 111] Connection refused`.
fn os_text(code: i32) -> String {
    let text = std::io::Error::from_raw_os_error(code).to_string();
    let detail = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    format!("[Errno {code}] {detail}")
}

/// A resolver failure as Python's `socket.gaierror` prints it: `[Errno -2] Name or service
/// not known`. The standard library keeps only `gai_strerror`'s text; the number is found
/// by asking the C library which code has that text.
fn gai_text(detail: &str) -> String {
    match gai_code(detail) {
        Some(code) => format!("[Errno {code}] {detail}"),
        None => detail.to_string(),
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn gai_code(detail: &str) -> Option<i32> {
    // EAI_* codes are small: negative on glibc and musl, positive on the BSDs and macOS.
    (-20..=20).filter(|c| *c != 0).find(|&code| {
        // SAFETY: gai_strerror returns a pointer to a static NUL-terminated string (or
        // NULL) for any argument.
        let p = unsafe { libc::gai_strerror(code) };
        !p.is_null() && unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes() == detail.as_bytes()
    })
}

#[cfg(not(unix))]
fn gai_code(_detail: &str) -> Option<i32> {
    None
}

/// A refused certificate as CPython's `ssl` module (OpenSSL) words it.
fn tls_text(e: &rustls::Error, host: Option<url::Host<&str>>) -> String {
    use rustls::CertificateError as C;
    const VERIFY: &str = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed";
    let reason = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "unable to get local issuer certificate".to_string(),
            C::Expired | C::ExpiredContext { .. } => "certificate has expired".to_string(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate is not yet valid".to_string()
            }
            C::Revoked => "certificate revoked".to_string(),
            C::BadSignature => "certificate signature failure".to_string(),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "unsupported certificate purpose".to_string()
            }
            C::UnhandledCriticalExtension => "unhandled critical extension".to_string(),
            C::NotValidForName | C::NotValidForNameContext { .. } => match host {
                Some(url::Host::Domain(h)) => {
                    format!("Hostname mismatch, certificate is not valid for '{h}'.")
                }
                Some(url::Host::Ipv4(ip)) => {
                    format!("IP address mismatch, certificate is not valid for '{ip}'.")
                }
                Some(url::Host::Ipv6(ip)) => {
                    format!("IP address mismatch, certificate is not valid for '{ip}'.")
                }
                None => "certificate is not valid for the host name".to_string(),
            },
            _ => e.to_string(),
        },
        // A plain-HTTP server answering the ClientHello.
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            return "[SSL: WRONG_VERSION_NUMBER] wrong version number".to_string();
        }
        other => return other.to_string(),
    };
    format!("{VERIFY}: {reason}")
}

/// What the cause chain of a reqwest error says, gathered in one walk.
struct Cause<'a> {
    /// `outer: cause: cause`, without the URL: the message when nothing better is known.
    chain: String,
    os_errno: Option<i32>,
    io_kind: Option<std::io::ErrorKind>,
    tls: Option<&'a rustls::Error>,
    /// `gai_strerror` text of a failed name lookup.
    gai: Option<String>,
    incomplete_head: bool,
    parse: bool,
    /// The failure happened in the TCP connect (not the TLS handshake).
    tcp_connect: bool,
    https: bool,
    host: Option<url::Host<&'a str>>,
}

impl<'a> Cause<'a> {
    fn of(e: &'a reqwest::Error) -> Self {
        let mut chain = describe_chain(e);
        if let Some(url) = e.url() {
            // The URL may carry query parameters; the message (and logs) leave it out.
            chain = chain.replacen(&format!(" for url ({url})"), "", 1);
        }
        let mut c = Self {
            chain,
            os_errno: None,
            io_kind: None,
            tls: None,
            gai: None,
            incomplete_head: false,
            parse: false,
            tcp_connect: false,
            https: e.url().is_some_and(|u| u.scheme() == "https"),
            host: e.url().and_then(|u| u.host()),
        };
        let mut src: Option<&'a (dyn StdError + 'static)> = e.source();
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                if c.io_kind.is_none() && !e.is_connect() {
                    c.io_kind = Some(io.kind());
                }
                c.os_errno = c.os_errno.or(io.raw_os_error());
                // An io::Error's source() skips the error it wraps, and the TLS connector
                // wraps the handshake's io::Error (holding the rustls error) in another.
                let mut inner = io.get_ref();
                while let Some(i) = inner {
                    if let Some(t) = i.downcast_ref::<rustls::Error>() {
                        c.tls = Some(t);
                        break;
                    }
                    inner = i
                        .downcast_ref::<std::io::Error>()
                        .and_then(|io| io.get_ref());
                }
                let text = io.to_string();
                if let Some(d) = text.strip_prefix("failed to lookup address information: ") {
                    c.gai = Some(d.to_string());
                }
            } else if let Some(t) = s.downcast_ref::<rustls::Error>() {
                c.tls = Some(t);
            } else if let Some(h) = s.downcast_ref::<hyper_error::HyperError>() {
                c.incomplete_head |= h.is_incomplete_message();
                c.parse |= h.is_parse();
            } else if s.to_string() == "tcp connect error" {
                c.tcp_connect = true;
            }
            src = s.source();
        }
        c
    }

    /// The httpx wording of a transport failure with a known cause, else `fallback`.
    fn text(&self, fallback: &str) -> String {
        if let Some(t) = self.tls {
            return tls_text(t, self.host.clone());
        }
        if let Some(d) = &self.gai {
            return gai_text(d);
        }
        if let Some(n) = self.os_errno {
            return os_text(n);
        }
        fallback.to_string()
    }

    fn connect_timeout_text(&self) -> String {
        if self.https && !self.tcp_connect {
            // CPython's text, less its source location ("_ssl.c:NNN: ").
            "The handshake operation timed out".into()
        } else {
            TIMED_OUT.into()
        }
    }
}

mod hyper_error {
    pub use hyper::Error as HyperError;
}

/// `outer: cause: cause` text of an error chain.
fn describe_chain(e: &dyn StdError) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn os_and_resolver_errors_read_as_python_prints_them() {
        assert_eq!(os_text(111), "[Errno 111] Connection refused");
        assert_eq!(os_text(104), "[Errno 104] Connection reset by peer");
        assert_eq!(
            gai_text("Name or service not known"),
            "[Errno -2] Name or service not known"
        );
        assert_eq!(gai_text("no such text"), "no such text");
    }

    #[test]
    fn the_async_face_has_anyios_texts() {
        let refused = Error::Connect(os_text(111));
        assert_eq!(refused.async_text(), Some("All connection attempts failed"));
        assert_eq!(Error::Connect("[Errno -2] x".into()).async_text(), None);
        assert_eq!(Error::ReadTimeout(TIMED_OUT.into()).async_text(), Some(""));
        assert_eq!(Error::Read(os_text(104)).async_text(), Some(""));
        assert_eq!(Error::Read("closed".into()).async_text(), None);
        assert_eq!(
            Error::RemoteProtocol(DISCONNECTED.into()).async_text(),
            None
        );
        assert_eq!(os_errno("[Errno -3] y"), Some(-3));
        assert_eq!(refused.os_error(), Some((111, "Connection refused")));
        assert_eq!(Error::ReadTimeout(TIMED_OUT.into()).os_error(), None);
        assert_eq!(os_errno("Errno 3"), None);
    }
}
