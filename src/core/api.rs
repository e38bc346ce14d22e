//! Every FlightDeck endpoint the SDK calls, defined once: method, path, query order and
//! JSON body exactly as the reference client puts them on the wire.

use crate::core::json::write_str;

/// HTTP method of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// The method name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// A fully defined request, independent of the transport that will send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: Method,
    pub path: &'static str,
    /// Query parameters in wire order, values already rendered as text.
    pub query: Vec<(&'static str, String)>,
    /// Compact JSON body for POSTs.
    pub body: Option<Vec<u8>>,
    /// Whether repeating the request after it reached the server is harmless. Audit
    /// actions (promote, rollback, request, confirm) are not: a second copy would be
    /// recorded twice.
    pub idempotent: bool,
}

impl ApiRequest {
    fn get(path: &'static str, query: Vec<(&'static str, String)>) -> Self {
        Self {
            method: Method::Get,
            path,
            query,
            body: None,
            idempotent: true,
        }
    }

    fn post(path: &'static str, body: Vec<u8>, idempotent: bool) -> Self {
        Self {
            method: Method::Post,
            path,
            query: Vec::new(),
            body: Some(body),
            idempotent,
        }
    }

    /// The path plus the form-encoded query string (`/v1/runs?release_id=...`).
    pub fn path_and_query(&self) -> String {
        let mut out = String::from(self.path);
        for (i, (k, v)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            form_encode(&mut out, k);
            out.push('=');
            form_encode(&mut out, v);
        }
        out
    }
}

/// `application/x-www-form-urlencoded` encoding as httpx does it: space becomes `+`,
/// unreserved characters stay, everything else is percent-encoded UTF-8.
pub fn form_encode(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

/// A compact JSON object with string or null values, keys in the given order.
fn json_object(fields: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(160);
    buf.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_str(&mut buf, k);
        buf.push(b':');
        match v {
            Some(s) => write_str(&mut buf, s),
            None => buf.extend_from_slice(b"null"),
        }
    }
    buf.push(b'}');
    buf
}

fn push_opt(q: &mut Vec<(&'static str, String)>, name: &'static str, v: Option<String>) {
    if let Some(v) = v {
        q.push((name, v));
    }
}

/// `GET /health`
pub fn health() -> ApiRequest {
    ApiRequest::get("/health", Vec::new())
}

/// `GET /v1/workspace`
pub fn get_workspace() -> ApiRequest {
    ApiRequest::get("/v1/workspace", Vec::new())
}

/// `GET /v1/metrics`
pub fn get_metrics() -> ApiRequest {
    ApiRequest::get("/v1/metrics", Vec::new())
}

/// `GET /v1/releases`
pub fn list_releases() -> ApiRequest {
    ApiRequest::get("/v1/releases", Vec::new())
}

/// `GET /v1/promoted`
pub fn list_promoted() -> ApiRequest {
    ApiRequest::get("/v1/promoted", Vec::new())
}

/// `GET /v1/actions?limit=&agent=&env=`
pub fn list_actions(
    agent_id: Option<String>,
    environment: Option<String>,
    limit: String,
) -> ApiRequest {
    let mut q = vec![("limit", limit)];
    push_opt(&mut q, "agent", agent_id);
    push_opt(&mut q, "env", environment);
    ApiRequest::get("/v1/actions", q)
}

/// `GET /v1/promotion-requests?limit=&status=`
pub fn list_promotion_requests(status: Option<String>, limit: String) -> ApiRequest {
    let mut q = vec![("limit", limit)];
    push_opt(&mut q, "status", status);
    ApiRequest::get("/v1/promotion-requests", q)
}

/// Filters shared by `GET /v1/runs` and `GET /v1/runs/export`.
#[derive(Clone, Debug, Default)]
pub struct RunsQuery {
    pub release_id: String,
    pub window: String,
    pub environment: Option<String>,
    pub tenant_id: Option<String>,
    pub task_id: Option<String>,
    pub trace_id: Option<String>,
    pub session_id: Option<String>,
    pub span_id: Option<String>,
    pub offset: String,
    pub limit: String,
}

fn runs(path: &'static str, r: RunsQuery) -> ApiRequest {
    let mut q = vec![
        ("release_id", r.release_id),
        ("window", r.window),
        ("limit", r.limit),
        ("offset", r.offset),
    ];
    push_opt(&mut q, "environment", r.environment);
    push_opt(&mut q, "tenant_id", r.tenant_id);
    push_opt(&mut q, "task_id", r.task_id);
    push_opt(&mut q, "trace_id", r.trace_id);
    push_opt(&mut q, "session_id", r.session_id);
    push_opt(&mut q, "span_id", r.span_id);
    ApiRequest::get(path, q)
}

/// `GET /v1/runs`
pub fn list_runs(r: RunsQuery) -> ApiRequest {
    runs("/v1/runs", r)
}

/// `GET /v1/runs/export`
pub fn runs_export(r: RunsQuery) -> ApiRequest {
    runs("/v1/runs/export", r)
}

/// `POST /v1/diff` (all six keys always present).
pub fn post_diff(
    baseline_release_id: &str,
    candidate_release_id: &str,
    window: &str,
    environment: Option<&str>,
    tenant_id: Option<&str>,
    task_id: Option<&str>,
) -> ApiRequest {
    let body = json_object(&[
        ("baseline_release_id", Some(baseline_release_id)),
        ("candidate_release_id", Some(candidate_release_id)),
        ("window", Some(window)),
        ("environment", environment),
        ("tenant_id", tenant_id),
        ("task_id", task_id),
    ]);
    ApiRequest::post("/v1/diff", body, true)
}

/// Which audit action a promote-like body is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Promote,
    PromoteRequest,
    Rollback,
}

/// `POST /v1/promote`, `/v1/promote/request` or `/v1/rollback`.
pub fn promote_like(
    action: Action,
    release_id: &str,
    environment: &str,
    window: &str,
    reason: &str,
    actor: &str,
) -> ApiRequest {
    let path = match action {
        Action::Promote => "/v1/promote",
        Action::PromoteRequest => "/v1/promote/request",
        Action::Rollback => "/v1/rollback",
    };
    let body = json_object(&[
        ("release_id", Some(release_id)),
        ("environment", Some(environment)),
        ("window", Some(window)),
        ("reason", Some(reason)),
        ("actor", Some(actor)),
    ]);
    ApiRequest::post(path, body, false)
}

/// `POST /v1/promote/confirm`
pub fn promote_confirm(request_id: &str, approval_reason: &str, actor: &str) -> ApiRequest {
    let body = json_object(&[
        ("request_id", Some(request_id)),
        ("approval_reason", Some(approval_reason)),
        ("actor", Some(actor)),
    ]);
    ApiRequest::post("/v1/promote/confirm", body, false)
}

/// `POST /v1/events` with an already encoded `{"events":[...]}` body (safe to repeat: the
/// server skips duplicate `run_id`s).
pub fn ingest(body: Vec<u8>) -> ApiRequest {
    ApiRequest::post("/v1/events", body, true)
}

/// The response headers `fetch_runs_export_ndjson` returns, in the reference's spelling.
pub const EXPORT_HEADER_KEYS: [&str; 4] = [
    "X-Flightdeck-Matched-Total",
    "X-Flightdeck-Returned",
    "X-Flightdeck-Offset",
    "X-Flightdeck-Truncated",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_order_and_encoding_match_the_reference() {
        let r = list_runs(RunsQuery {
            release_id: "rel_1".into(),
            window: "1h".into(),
            trace_id: Some("a b&c/é".into()),
            environment: Some(String::new()),
            offset: "0".into(),
            limit: "100".into(),
            ..Default::default()
        });
        assert_eq!(
            r.path_and_query(),
            "/v1/runs?release_id=rel_1&window=1h&limit=100&offset=0&environment=&trace_id=a+b%26c%2F%C3%A9"
        );
        let a = list_actions(
            Some("agent_support".into()),
            Some("local".into()),
            "5".into(),
        );
        assert_eq!(
            a.path_and_query(),
            "/v1/actions?limit=5&agent=agent_support&env=local"
        );
    }

    #[test]
    fn bodies_are_compact_in_key_order() {
        let p = promote_like(Action::Promote, "rel_1", "local", "1h", "first", "sdk");
        assert_eq!(
            String::from_utf8(p.body.unwrap_or_default()).unwrap_or_default(),
            r#"{"release_id":"rel_1","environment":"local","window":"1h","reason":"first","actor":"sdk"}"#
        );
        assert!(!p.idempotent);
        let d = post_diff("a", "b", "7d", None, Some("t"), None);
        assert_eq!(
            String::from_utf8(d.body.unwrap_or_default()).unwrap_or_default(),
            r#"{"baseline_release_id":"a","candidate_release_id":"b","window":"7d","environment":null,"tenant_id":"t","task_id":null}"#
        );
    }
}
