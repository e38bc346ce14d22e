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

/// Whether a failed attempt may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The request never left: retrying cannot duplicate a side effect.
    Connect,
    /// The request may have been received and acted upon.
    AfterSend,
}

impl Error {
    /// `true` for the transport failures the reference SDK retries (every `RequestError`).
    pub fn is_transport(&self) -> bool {
        !matches!(self, Self::Closed | Self::NonFinite | Self::InvalidUrl(_))
    }

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

    /// Whether the request could have reached the server.
    pub fn phase(&self) -> Phase {
        match self {
            Self::Connect(_)
            | Self::ConnectTimeout(_)
            | Self::UnsupportedProtocol(_)
            | Self::LocalProtocol(_)
            | Self::InvalidUrl(_)
            | Self::Closed
            | Self::NonFinite => Phase::Connect,
            _ => Phase::AfterSend,
        }
    }

    /// Classifies a reqwest error by walking its cause chain.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        let mut chain = describe_chain(e);
        if let Some(url) = e.url() {
            // The URL may carry query parameters; the message (and logs) leave it out.
            chain = chain.replacen(&format!(" for url ({url})"), "", 1);
        }
        if e.is_builder() {
            return Self::LocalProtocol(chain);
        }
        if e.is_timeout() {
            return if e.is_connect() {
                Self::ConnectTimeout(chain)
            } else {
                Self::ReadTimeout(chain)
            };
        }
        if e.is_connect() {
            return Self::Connect(chain);
        }
        let mut src: Option<&(dyn StdError + 'static)> = e.source();
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::TimedOut => Self::ReadTimeout(chain),
                    std::io::ErrorKind::BrokenPipe => Self::Write(chain),
                    // A body cut short of its Content-Length (or chunked end).
                    std::io::ErrorKind::UnexpectedEof => Self::RemoteProtocol(chain),
                    _ => Self::Read(chain),
                };
            }
            if let Some(h) = s.downcast_ref::<hyper_error::HyperError>() {
                if h.is_incomplete_message() || h.is_parse() {
                    return Self::RemoteProtocol(chain);
                }
            }
            src = s.source();
        }
        if e.is_body() || e.is_decode() {
            return Self::Read(chain);
        }
        Self::RemoteProtocol(chain)
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
