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

/// Which fields of a record the caller gave (pydantic's `model_fields_set`), one bit per
/// field in declaration order.
///
/// Bookkeeping, not data: two records with the same values are equal whatever their sets
/// (pydantic's `==` ignores `model_fields_set` too), so `PartialEq` and `Hash` ignore it.
#[derive(Clone, Copy, Debug, Default)]
pub struct FieldsSet(pub u16);

impl FieldsSet {
    /// Marks field `i` as given.
    #[inline]
    pub fn add(&mut self, i: usize) {
        self.0 |= 1 << i;
    }
    /// Whether field `i` was given.
    #[inline]
    pub fn contains(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
}

impl PartialEq for FieldsSet {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for FieldsSet {}

impl std::hash::Hash for FieldsSet {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// `RunEventRequest` field names, in declaration order (the bits of its [`FieldsSet`]).
pub const REQUEST_FIELDS: [&str; 3] = ["session_id", "trace_id", "span_id"];
/// `RunEventMetrics` field names.
pub const METRICS_FIELDS: [&str; 3] = ["latency_ms", "success", "error_type"];
/// `RunEventModelUsage` field names.
pub const MODEL_USAGE_FIELDS: [&str; 5] = [
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
];
/// `RunEventToolUsage` field names.
pub const TOOL_FIELDS: [&str; 3] = ["tool_name", "invocations", "cost_units"];
/// `RunEventUsage` field names.
pub const USAGE_FIELDS: [&str; 2] = ["model", "tools"];

/// `RunEventRequest`: correlation ids of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Request {
    pub session_id: Option<Text>,
    pub trace_id: Option<Text>,
    pub span_id: Option<Text>,
    pub set: FieldsSet,
}

/// `RunEventMetrics`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Metrics {
    /// Milliseconds, `>= 0`.
    pub latency_ms: Option<u64>,
    pub success: bool,
    pub error_type: Option<Text>,
    pub set: FieldsSet,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            latency_ms: None,
            success: true,
            error_type: None,
            set: FieldsSet::default(),
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
    pub set: FieldsSet,
}

/// `RunEventToolUsage`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolUsage {
    pub tool_name: Text,
    pub invocations: u64,
    /// `>= 0`; may be `inf` (accepted by validation, not encodable as JSON).
    pub cost_units: f64,
    pub set: FieldsSet,
}

/// `RunEventUsage`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub model: ModelUsage,
    pub tools: Vec<ToolUsage>,
    pub set: FieldsSet,
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
    /// The fields the caller gave, by index in `validate::EVENT_FIELDS`.
    pub set: FieldsSet,
}

/// The only accepted `api_version`.
pub const API_VERSION: &str = "v1";
/// Default `workspace_id`.
pub const DEFAULT_WORKSPACE: &str = "ws_local";
