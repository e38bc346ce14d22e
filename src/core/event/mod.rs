//! `RunEvent` and its nested records, in wire field order, with pydantic-compatible
//! validation (`validate`) and serialization (`serialize`).

pub mod serialize;
pub mod source_json;
pub mod timestamp;
pub mod validate;

pub use timestamp::Timestamp;

/// Text of an event field: up to 24 bytes are stored inline (ids, names, label keys are
/// usually that short), longer text on the heap.
pub type Text = compact_str::CompactString;

/// `RunEvent.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `"run_start"`
    RunStart,
    /// `"run_end"` (the default)
    RunEnd,
}

impl EventType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunStart => "run_start",
            Self::RunEnd => "run_end",
        }
    }
}

/// `RunEventRequest`: correlation ids of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Request {
    pub session_id: Option<Text>,
    pub trace_id: Option<Text>,
    pub span_id: Option<Text>,
}

/// `RunEventMetrics`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Metrics {
    /// Milliseconds, `>= 0`.
    pub latency_ms: Option<u64>,
    pub success: bool,
    pub error_type: Option<Text>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            latency_ms: None,
            success: true,
            error_type: None,
        }
    }
}

/// `RunEventModelUsage`: token counts of the model call(s) of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModelUsage {
    pub provider: Text,
    pub model: Text,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
}

/// `RunEventToolUsage`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolUsage {
    pub tool_name: Text,
    pub invocations: u64,
    /// `>= 0`; may be `inf` (accepted by validation, not encodable as JSON).
    pub cost_units: f64,
}

/// `RunEventUsage`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub model: ModelUsage,
    pub tools: Vec<ToolUsage>,
}

/// One record per agent run, as accepted by `POST /v1/events`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEvent {
    pub kind: EventType,
    pub timestamp: Timestamp,
    pub workspace_id: Text,
    pub agent_id: Text,
    pub release_id: Text,
    pub run_id: Text,
    pub tenant_id: Text,
    pub task_id: Text,
    pub environment: Text,
    pub request: Option<Request>,
    pub metrics: Metrics,
    pub usage: Usage,
    /// Insertion-ordered, unique keys.
    pub labels: Vec<(Text, Text)>,
}

/// The only accepted `api_version`.
pub const API_VERSION: &str = "v1";
/// Default `workspace_id`.
pub const DEFAULT_WORKSPACE: &str = "ws_local";
