//! `RunEvent` and its nested records, in wire field order, with pydantic-compatible
//! validation (`validate`) and serialization (`serialize`).
//!
//! Every record is declared once, in the field table [`event_models!`]: a field's name, type
//! and default there give the struct, its validation from a mapping and by attribute
//! assignment, its JSON, its `==`, and (in the binding) its getters, `model_dump` and `repr`.
//! What a field does follows from its type, through one trait per job: validation
//! ([`validate::FieldValue`]), JSON ([`serialize::WriteJson`]), equality ([`FieldEq`]).

pub mod serialize;
pub mod source_json;
pub mod timestamp;
pub mod validate;

pub use timestamp::Timestamp;

use serialize::{Mode, NonFinite};
use validate::{Ctx, Source};

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

/// `RunEvent.api_version`: always `"v1"` (the only version), so it holds no data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ApiVersion;

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

/// A record of the field table.
pub trait Model: Clone + Sized + FieldEq + serialize::WriteJson + 'static {
    /// The class name (in reprs and error messages).
    const NAME: &'static str;
    /// The field names, in declaration order: the order of dumps, of the wire, and of the
    /// bits of the record's [`FieldsSet`].
    const FIELDS: &'static [&'static str];
    /// Which fields the caller gave.
    fn fields_set(&self) -> FieldsSet;
    /// Replaces the record of given fields.
    fn set_fields_set(&mut self, set: FieldsSet);
    /// Validates a mapping into a record; on failure every problem is in `ctx.errors`.
    fn from_map<S: Source>(ctx: &mut Ctx<S::Input>, v: &S) -> Option<Self>;
    /// Validates `v` for the field `name` and stores it (attribute assignment); `false`
    /// when `name` is not a field.
    fn assign<S: Source>(&mut self, ctx: &mut Ctx<S::Input>, name: &str, v: &S) -> bool;
    /// The record, when `i` is one of this kind.
    fn from_instance(i: Instance) -> Option<Self>;
    /// The record as an already-validated input.
    fn into_instance(self) -> Instance;
}

/// pydantic's `==` of a field value.
pub trait FieldEq {
    /// Whether the two values compare equal in Python.
    fn same(&self, other: &Self) -> bool;
}

macro_rules! field_eq_by_partial_eq {
    ($($t:ty),*) => {
        $(impl FieldEq for $t {
            fn same(&self, other: &Self) -> bool {
                self == other
            }
        })*
    };
}

field_eq_by_partial_eq!(Text, u64, bool, f64, EventType, ApiVersion);

/// Aware timestamps compare by instant; an aware one never equals a naive one.
impl FieldEq for Timestamp {
    fn same(&self, other: &Self) -> bool {
        match (self.offset, other.offset) {
            (Some(_), Some(_)) => self.utc_naive() == other.utc_naive(),
            (None, None) => self.naive == other.naive,
            _ => false,
        }
    }
}

impl<T: FieldEq> FieldEq for Option<T> {
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.same(b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl<T: FieldEq> FieldEq for Vec<T> {
    fn same(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a.same(b))
    }
}

/// Labels compare as dicts: the same pairs in any order.
impl FieldEq for Vec<(Text, Text)> {
    fn same(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.iter().any(|(k2, v2)| k == k2 && v == v2))
    }
}

/// The field table: every record with its fields, in declaration order.
///
/// `event_models!(then extra...)` calls `then! { [extra...] records... }`; the core builds
/// the records from it below ([`define_models!`]) and the binding its classes' getters,
/// dumps and reprs. A field is `name: Type` (required) or `name: Type = default`;
/// `name as "py"` gives a Python name that is not a Rust one. A record marked `default`
/// also implements `Default` (its required fields then take their type's default).
macro_rules! event_models {
    ($then:ident $($extra:tt)*) => {
        $then! {
            [$($extra)*]

            /// `RunEventRequest`: correlation ids of the run.
            #[derive(Clone, Debug, PartialEq, Eq, Hash)]
            Request "RunEventRequest" default {
                session_id: Option<Text> = None,
                trace_id: Option<Text> = None,
                span_id: Option<Text> = None,
            }

            /// `RunEventMetrics`.
            #[derive(Clone, Debug, PartialEq, Eq, Hash)]
            Metrics "RunEventMetrics" default {
                /// Milliseconds, `>= 0`.
                latency_ms: Option<u64> = None,
                success: bool = true,
                error_type: Option<Text> = None,
            }

            /// `RunEventModelUsage`: token counts of the model call(s) of a run.
            #[derive(Clone, Debug, PartialEq, Eq, Hash)]
            ModelUsage "RunEventModelUsage" default {
                provider: Text,
                model: Text,
                input_tokens: u64,
                output_tokens: u64,
                cached_input_tokens: u64 = 0,
            }

            /// `RunEventToolUsage`.
            #[derive(Clone, Debug, PartialEq)]
            ToolUsage "RunEventToolUsage" default {
                tool_name: Text,
                invocations: u64 = 0,
                /// `>= 0`; may be `inf` (accepted by validation, not encodable as JSON).
                cost_units: f64 = 0.0,
            }

            /// `RunEventUsage`.
            #[derive(Clone, Debug, PartialEq)]
            Usage "RunEventUsage" default {
                model: ModelUsage,
                tools: Vec<ToolUsage> = Vec::new(),
            }

            /// One record per agent run, as accepted by `POST /v1/events`.
            #[derive(Clone, Debug, PartialEq)]
            RunEvent "RunEvent" {
                api_version: ApiVersion = ApiVersion,
                kind as "type": EventType = EventType::RunEnd,
                timestamp: Timestamp,
                workspace_id: Text = Text::const_new(DEFAULT_WORKSPACE),
                agent_id: Text,
                release_id: Text,
                run_id: Text,
                tenant_id: Text,
                task_id: Text,
                environment: Text,
                request: Option<Request> = None,
                metrics: Metrics = Metrics::default(),
                usage: Usage,
                /// Insertion-ordered, unique keys.
                labels: Vec<(Text, Text)> = Vec::new(),
            }
        }
    };
}
pub(crate) use event_models;

/// A field's Python name: its Rust name unless the table gives one.
macro_rules! py_name {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident $py:literal) => {
        $py
    };
}

/// A missing field's value: its default, or a `missing` error when it is required.
macro_rules! when_missing {
    ($ctx:ident, $v:ident, $name:expr,) => {{
        $ctx.missing($v, $name);
        None
    }};
    ($ctx:ident, $v:ident, $name:expr, $d:expr) => {
        Some($d)
    };
}

/// A field's value in `Default`: its default, or its type's.
macro_rules! default_value {
    () => {
        Default::default()
    };
    ($d:expr) => {
        $d
    };
}

/// `impl Default` for the records marked `default` in the table.
macro_rules! impl_default {
    ([] $name:ident [$($f:ident $(= $d:expr)?),*]) => {};
    ([default] $name:ident [$($f:ident $(= $d:expr)?),*]) => {
        impl Default for $name {
            fn default() -> Self {
                Self {
                    $($f: default_value!($($d)?),)*
                    set: FieldsSet::default(),
                }
            }
        }
    };
}

/// Builds the records of the table: structs, [`Model`], [`FieldEq`],
/// [`serialize::WriteJson`] and the [`Instance`] of every record.
macro_rules! define_models {
    ([] $(
        $(#[$meta:meta])*
        $name:ident $class:literal $($dflt:ident)? {
            $(
                $(#[$fmeta:meta])*
                $f:ident $(as $py:literal)? : $t:ty $(= $d:expr)?
            ),* $(,)?
        }
    )*) => {
        $(
            $(#[$meta])*
            pub struct $name {
                $($(#[$fmeta])* pub $f: $t,)*
                /// The fields the caller gave, by index in [`Model::FIELDS`].
                pub set: FieldsSet,
            }

            impl_default!([$($dflt)?] $name [$($f $(= $d)?),*]);

            impl Model for $name {
                const NAME: &'static str = $class;
                const FIELDS: &'static [&'static str] = &[$(py_name!($f $($py)?)),*];

                fn fields_set(&self) -> FieldsSet {
                    self.set
                }

                fn set_fields_set(&mut self, set: FieldsSet) {
                    self.set = set;
                }

                fn from_map<S: Source>(ctx: &mut Ctx<S::Input>, v: &S) -> Option<Self> {
                    // The names as an array of known length: the lookups compile to
                    // comparisons with constants.
                    let (picked, set) = validate::pick(v, [$(py_name!($f $($py)?)),*]);
                    let [$($f),*] = picked;
                    let n = ctx.errors.len();
                    $(
                        let $f: Option<$t> = match $f {
                            Some(x) => validate::FieldValue::validate(ctx, py_name!($f $($py)?), &x),
                            None => when_missing!(ctx, v, py_name!($f $($py)?), $($d)?),
                        };
                    )*
                    if ctx.errors.len() != n {
                        return None;
                    }
                    Some(Self { $($f: $f?,)* set })
                }

                fn assign<S: Source>(&mut self, ctx: &mut Ctx<S::Input>, name: &str, v: &S) -> bool {
                    match name {
                        $(py_name!($f $($py)?) => {
                            let name = py_name!($f $($py)?);
                            if let Some(x) = <$t as validate::FieldValue>::validate(ctx, name, v) {
                                self.$f = x;
                            }
                        })*
                        _ => return false,
                    }
                    if let Some(i) = Self::FIELDS.iter().position(|n| *n == name) {
                        self.set.add(i);
                    }
                    true
                }

                fn from_instance(i: Instance) -> Option<Self> {
                    match i {
                        Instance::$name(x) => Some(*x),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }

                fn into_instance(self) -> Instance {
                    Instance::$name(Box::new(self))
                }
            }

            impl FieldEq for $name {
                fn same(&self, other: &Self) -> bool {
                    true $(&& FieldEq::same(&self.$f, &other.$f))*
                }
            }

            impl serialize::WriteJson for $name {
                fn write_json(&self, buf: &mut Vec<u8>, mode: Mode) -> Result<(), NonFinite> {
                    buf.push(b'{');
                    $(
                        buf.extend_from_slice(concat!("\"", py_name!($f $($py)?), "\":").as_bytes());
                        serialize::WriteJson::write_json(&self.$f, buf, mode)?;
                        buf.push(b',');
                    )*
                    // The comma after the last field closes the object instead.
                    if let Some(last) = buf.last_mut() {
                        *last = b'}';
                    }
                    Ok(())
                }
            }
        )*

        /// An already-validated record handed in directly (an instance of one of the model
        /// classes).
        #[derive(Debug, Clone)]
        pub enum Instance {
            $($name(Box<$name>),)*
        }
    };
}

event_models!(define_models);

/// The only accepted `api_version`.
pub const API_VERSION: &str = "v1";
/// Default `workspace_id`.
pub const DEFAULT_WORKSPACE: &str = "ws_local";
