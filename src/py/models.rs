//! `RunEvent` and its nested records as Python classes.
//!
//! A `RunEvent` owns its data (`Arc<core::RunEvent>`, copied on write, so a batch can be
//! serialized without the GIL). Nested objects read from an event (`ev.usage.model`) are
//! views that read and write through their parent, so `ev.usage.model.input_tokens = 5`
//! changes `ev` as it does with pydantic; nested objects built directly own their data.
//!
//! The classes' getters, dumps, reprs and equality come from the field table
//! (`core::event::event_models!`, expanded here by [`py_models!`]); the methods every class
//! shares are written once ([`model_methods!`]) over the [`Node`] trait.

use std::sync::Arc;

use pyo3::exceptions::{PyAttributeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::False;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};
use pyo3::IntoPyObjectExt;

use crate::core::event::serialize::{self, Mode, WriteJson};
use crate::core::event::source_json;
use crate::core::event::validate::{self, Ctx, Instance, Key, Scalar, Source};
use crate::core::event::{
    event_models, ApiVersion, EventType, FieldEq, FieldsSet, Metrics, Model, ModelUsage, Request,
    RunEvent, Text, Timestamp, ToolUsage, Usage, DEFAULT_WORKSPACE,
};
use crate::core::json;

use super::convert;
use super::fields::{model_repr, DumpOptions, PyModel, PyValue};
use super::validation_error::{
    json_invalid, model_type_error, raise_json, raise_py, string_unicode,
};

/// A Python value as seen by the core validator.
pub struct PySrc<'py>(pub Bound<'py, PyAny>);

impl<'py> Source for PySrc<'py> {
    type Input = Py<PyAny>;

    fn scalar(&self) -> Scalar<'_> {
        convert::scalar(&self.0)
    }

    fn instance(&self) -> Option<Instance> {
        let o = &self.0;
        // The common inputs (dicts, None) are never our model classes: skip six type checks.
        if o.is_none() || o.cast::<PyDict>().is_ok() {
            return None;
        }
        instance_of(o)
    }

    fn for_each_entry(&self, f: &mut dyn FnMut(Key<'_, Self>, Self)) {
        convert::for_each_entry(&self.0, |k, v| match k {
            Key::Str(s) => f(Key::Str(s), PySrc(v)),
            Key::Other(o) => f(Key::Other(PySrc(o)), PySrc(v)),
        });
    }

    fn elements(&self) -> Vec<Self> {
        convert::elements(&self.0).into_iter().map(PySrc).collect()
    }

    fn input(&self) -> Py<PyAny> {
        self.0.clone().unbind()
    }

    fn describe(&self) -> (String, String) {
        convert::describe(&self.0)
    }
}

/// Validates a Python value (mapping, our instance) as a `RunEvent`.
pub fn validate_event(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<RunEvent> {
    let mut ctx = Ctx::default();
    match validate::event(&mut ctx, &PySrc(v.clone())) {
        Some(e) if ctx.errors.is_empty() => Ok(e),
        _ => Err(raise_py(py, "RunEvent", &ctx.errors)),
    }
}

fn kwargs_or_empty<'py>(py: Python<'py>, kw: Option<&Bound<'py, PyDict>>) -> Bound<'py, PyAny> {
    match kw {
        Some(d) => d.clone().into_any(),
        None => PyDict::new(py).into_any(),
    }
}

fn json_text(data: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let parsed = if let Ok(s) = data.cast::<PyString>() {
        // A lone surrogate cannot be UTF-8: pydantic reports the text as not a string.
        let text = s.to_str().map_err(|_| string_unicode(data))?;
        json::parse_value(text.as_bytes())
    } else if let Ok(b) = data.cast::<PyBytes>() {
        json::parse_value(b.as_bytes())
    } else {
        let b: Vec<u8> = data.extract()?;
        json::parse_value(&b)
    };
    parsed.map_err(|e| json_invalid(data, &e))
}

/// Calls `flightdeck_rs._model_api.<name>(*args, **kwargs)`: the pydantic-model API beyond
/// the fast paths (serialization options, strict / attribute validation) lives in Python.
fn model_api<'py>(
    py: Python<'py>,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("flightdeck_rs._model_api")?
        .getattr(name)?
        .call(args, kwargs)
}

/// The mirror instance of `slf` when it holds unchecked values (see [`Node::raw`]).
#[inline]
fn raw_of<C: Node>(slf: &Bound<'_, C>) -> Option<Py<PyAny>> {
    slf.try_borrow().ok()?.raw().map(|m| m.clone_ref(slf.py()))
}

/// Calls `flightdeck_rs._model_api.<name>(slf, mirror, *args)` for an instance holding
/// unchecked values: its methods answer as pydantic's do, from the mirror instance.
fn raw_call<'py, C: Node>(
    slf: &Bound<'py, C>,
    mirror: Py<PyAny>,
    name: &str,
    args: impl IntoIterator<Item = Bound<'py, PyAny>>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let mut all = vec![slf.clone().into_any(), mirror.into_bound(py)];
    all.extend(args);
    model_api(py, name, pyo3::types::PyTuple::new(py, all)?, kwargs)
}

/// The record of an instance, cloned: its own, or for an instance holding unchecked
/// values, those values validated now.
fn record_of<C: Node>(slf: &Bound<'_, C>) -> PyResult<C::Data> {
    let py = slf.py();
    match raw_of(slf) {
        None => slf.try_borrow()?.read(py, Clone::clone),
        Some(m) => {
            let values = model_api(py, "raw_values", (m,), None)?;
            let d = values.cast::<PyDict>()?;
            Ok(construct::<C>(py, Some(d))?.read(py, Clone::clone)?)
        }
    }
}

/// pydantic's keyword options of `model_dump*` / `model_validate*`.
const KNOWN_OPTIONS: [&str; 20] = [
    "include",
    "exclude",
    "context",
    "by_alias",
    "exclude_unset",
    "exclude_defaults",
    "exclude_none",
    "exclude_computed_fields",
    "round_trip",
    "warnings",
    "fallback",
    "serialize_as_any",
    "polymorphic_serialization",
    "indent",
    "ensure_ascii",
    "strict",
    "extra",
    "from_attributes",
    "by_name",
    "mode",
];

/// Whether any keyword option is given with an effect: an unknown name, or a known one not
/// at pydantic's default (`None`, `False`, `warnings=True`). Those calls leave the fast path.
fn has_options(opts: Option<&Bound<'_, PyDict>>) -> bool {
    opts.is_some_and(|d| d.iter().any(|(k, v)| !is_default_option(&k, &v)))
}

/// A known option at a value that changes nothing (`None`, `False`, `warnings=True`).
fn is_default_option(k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> bool {
    let Ok(k) = k.extract::<&str>() else {
        return false;
    };
    KNOWN_OPTIONS.contains(&k)
        && (v.is_none()
            || v.cast::<pyo3::types::PyBool>()
                .is_ok_and(|b| !b.is_true() || k == "warnings"))
}

/// `warnings=` values other than booleans (no warning can arise from valid values).
const WARNINGS: [&str; 3] = ["none", "warn", "error"];

/// The options a native dump answers exactly: `exclude_unset`, `exclude_defaults`,
/// `exclude_none`, and `include` / `exclude` given as sets of top-level field names; every
/// other option at a value that changes nothing for these models (no aliases, no special
/// serializers).
struct Selection<'py> {
    opts: DumpOptions,
    include: Option<Bound<'py, PyAny>>,
    exclude: Option<Bound<'py, PyAny>>,
    /// `model_dump_json(indent=)`.
    indent: Option<usize>,
}

impl<'py> Selection<'py> {
    /// The selection of a `model_dump(mode=...)` call (`text`: false) or of a
    /// `model_dump_json()` call (`text`: true, which also takes `indent`).
    fn of(opts: &Bound<'py, PyDict>, json: bool, text: bool) -> Option<Self> {
        let mut sel = Self {
            opts: DumpOptions {
                json,
                ..DumpOptions::default()
            },
            include: None,
            exclude: None,
            indent: None,
        };
        let flag =
            |v: &Bound<'py, PyAny>| v.cast::<pyo3::types::PyBool>().ok().map(|b| b.is_true());
        for (k, v) in opts.iter() {
            let key = k.cast::<PyString>().ok()?.to_str().ok()?;
            match key {
                "exclude_none" => sel.opts.exclude_none = flag(&v)?,
                "exclude_unset" => sel.opts.exclude_unset = flag(&v)?,
                "exclude_defaults" => sel.opts.exclude_defaults = flag(&v)?,
                "include" | "exclude" if !v.is_none() => {
                    if !names_set(&v) {
                        return None;
                    }
                    if key == "include" {
                        sel.include = Some(v);
                    } else {
                        sel.exclude = Some(v);
                    }
                }
                "indent" if text => {
                    if !v.is_none() {
                        let n = v.cast_exact::<pyo3::types::PyInt>().ok()?;
                        sel.indent = Some(n.extract::<usize>().ok()?);
                    }
                }
                "by_alias" | "round_trip" if v.is_exact_instance_of::<pyo3::types::PyBool>() => {}
                "warnings" if v.extract::<&str>().is_ok_and(|w| WARNINGS.contains(&w)) => {}
                _ if is_default_option(&k, &v) => {}
                _ => return None,
            }
        }
        Some(sel)
    }

    /// The record's dump with the selection applied.
    fn dump<M: PyValue>(&self, py: Python<'py>, record: &M) -> PyResult<Bound<'py, PyAny>> {
        let dump = record.dump(py, self.opts)?;
        if self.include.is_none() && self.exclude.is_none() {
            return Ok(dump);
        }
        let d = dump.cast::<PyDict>()?;
        for key in d.keys().iter() {
            let kept = match &self.include {
                Some(inc) => inc.contains(&key)?,
                None => true,
            } && match &self.exclude {
                Some(exc) => !exc.contains(&key)?,
                None => true,
            };
            if !kept {
                d.del_item(key)?;
            }
        }
        Ok(dump)
    }
}

/// Writes a JSON-mode dump (dicts, lists, `str`, `int`, `float`, `bool`, `None`) as
/// pydantic's `model_dump_json` does: compact, floats in pydantic's form, `inf`/`nan` as
/// `null`.
fn write_dump_json(v: &Bound<'_, PyAny>, buf: &mut Vec<u8>) -> PyResult<()> {
    use pyo3::types::{PyBool, PyFloat, PyInt};
    if v.is_none() {
        buf.extend_from_slice(b"null");
    } else if let Ok(b) = v.cast_exact::<PyBool>() {
        buf.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if let Ok(s) = v.cast_exact::<PyString>() {
        json::write_str(buf, s.to_str()?);
    } else if let Ok(i) = v.cast_exact::<PyInt>() {
        buf.extend_from_slice(i.str()?.to_str()?.as_bytes());
    } else if let Ok(f) = v.cast_exact::<PyFloat>() {
        let x = f.value();
        if x.is_finite() {
            buf.extend_from_slice(json::format_float(x, json::FloatStyle::Pydantic).as_bytes());
        } else {
            buf.extend_from_slice(b"null");
        }
    } else if let Ok(d) = v.cast_exact::<PyDict>() {
        buf.push(b'{');
        for (i, (k, x)) in d.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            json::write_str(buf, k.cast::<PyString>()?.to_str()?);
            buf.push(b':');
            write_dump_json(&x, buf)?;
        }
        buf.push(b'}');
    } else if let Ok(l) = v.cast_exact::<PyList>() {
        buf.push(b'[');
        for (i, x) in l.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_dump_json(&x, buf)?;
        }
        buf.push(b']');
    } else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "unexpected {} in a dump",
            v.get_type().name()?
        )));
    }
    Ok(())
}

/// A `set` or `frozenset` of `str` (exactly those types).
fn names_set(v: &Bound<'_, PyAny>) -> bool {
    let is_name = |n: Bound<'_, PyAny>| n.is_exact_instance_of::<PyString>();
    if let Ok(s) = v.cast_exact::<pyo3::types::PySet>() {
        s.iter().all(is_name)
    } else if let Ok(s) = v.cast_exact::<pyo3::types::PyFrozenSet>() {
        s.iter().all(is_name)
    } else {
        false
    }
}

/// The names in `set`, as a Python `set`.
fn fields_set_of<'py>(
    py: Python<'py>,
    names: &[&str],
    set: FieldsSet,
) -> PyResult<Bound<'py, pyo3::types::PySet>> {
    let out = pyo3::types::PySet::empty(py)?;
    for (i, n) in names.iter().enumerate() {
        if set.contains(i) {
            out.add(*n)?;
        }
    }
    Ok(out)
}

/// A [`FieldsSet`] from field names (unknown names are ignored, as pydantic keeps them
/// without effect on dumps).
fn fields_set_from(names: &[&str], given: &Bound<'_, PyAny>) -> PyResult<FieldsSet> {
    let mut set = FieldsSet::default();
    for n in given.try_iter()? {
        let n = n?;
        if let Ok(s) = n.extract::<String>() {
            if let Some(i) = names.iter().position(|f| *f == s) {
                set.add(i);
            }
        }
    }
    Ok(set)
}

fn dump_mode(mode: Option<&str>) -> bool {
    mode == Some("json")
}

/// A model class: its instances hold a record of their own, or view one inside a parent.
pub trait Node: pyo3::PyClass<Frozen = False> + Into<PyClassInitializer<Self>> {
    /// The record.
    type Data: PyModel;
    /// An instance owning `data`.
    fn own(data: Self::Data) -> Self;
    /// Runs `f` on the record.
    fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&Self::Data) -> R) -> PyResult<R>;
    /// Runs `f` on the record for modification.
    fn write<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut Self::Data) -> R) -> PyResult<R>;
    /// The pydantic-mirror instance of an instance made by `model_construct` from values the
    /// record cannot hold (pydantic keeps them unchecked); `None` for every other instance.
    fn raw(&self) -> Option<&Py<PyAny>>;
    /// An instance that holds `mirror`'s values as they are (see [`Node::raw`]).
    fn from_raw(py: Python<'_>, mirror: Py<PyAny>) -> PyResult<Self>;
    /// `model_validate(obj)` of a value that is not an instance of the class: a dict.
    fn validate_other(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        match obj.cast::<PyDict>() {
            Ok(d) => construct(obj.py(), Some(d)),
            Err(_) => Err(model_type_error(obj, Self::Data::NAME)),
        }
    }

    /// `model_validate_json(data)` without options; `None` leaves it to pydantic's path.
    fn validate_json(_data: &Bound<'_, PyAny>) -> Option<PyResult<Self>> {
        None
    }

    /// Changes a copy of `slf`'s record with `f` (no borrow is held while `f` runs: it may
    /// run Python code) and stores the copy when `f` succeeds.
    #[inline]
    fn edit(
        slf: &Bound<'_, Self>,
        f: impl FnOnce(&mut Self::Data) -> PyResult<()>,
    ) -> PyResult<()> {
        let py = slf.py();
        let mut copy = slf.borrow().read(py, Clone::clone)?;
        f(&mut copy)?;
        slf.borrow_mut().write(py, |d| *d = copy)
    }
}

/// A parent's field that holds nested records `T`: the record itself, an `Option` of it, or
/// a list of them.
pub trait Holds<T> {
    /// What the record is called when it is gone (`request`, `tool`).
    const WHAT: &'static str;
    /// The record at `index`.
    fn at(&self, index: usize) -> Option<&T>;
    /// The record at `index`, for modification.
    fn at_mut(&mut self, index: usize) -> Option<&mut T>;
}

macro_rules! holds_itself {
    ($($t:ty),*) => {
        $(impl Holds<$t> for $t {
            const WHAT: &'static str = stringify!($t);
            #[inline]
            fn at(&self, _: usize) -> Option<&$t> {
                Some(self)
            }
            #[inline]
            fn at_mut(&mut self, _: usize) -> Option<&mut $t> {
                Some(self)
            }
        })*
    };
}

holds_itself!(Metrics, Usage, ModelUsage);

impl Holds<Request> for Option<Request> {
    const WHAT: &'static str = "request";
    #[inline]
    fn at(&self, _: usize) -> Option<&Request> {
        self.as_ref()
    }
    #[inline]
    fn at_mut(&mut self, _: usize) -> Option<&mut Request> {
        self.as_mut()
    }
}

impl Holds<ToolUsage> for Vec<ToolUsage> {
    const WHAT: &'static str = "tool";
    #[inline]
    fn at(&self, index: usize) -> Option<&ToolUsage> {
        self.get(index)
    }
    #[inline]
    fn at_mut(&mut self, index: usize) -> Option<&mut ToolUsage> {
        self.get_mut(index)
    }
}

/// Where a nested record lives: in the view itself, or at `index` of field `F` of its
/// parent `P`.
pub enum Slot<T: 'static, P: Node, F: Holds<T> + 'static> {
    Own(T),
    In(Lens<P, F>),
    /// Unchecked values in a pydantic-mirror instance (see [`Node::raw`]).
    Raw(Py<PyAny>),
}

/// The record of an instance that holds unchecked values: every method answers from the
/// pydantic mirror before it would read one, so this is not reached.
fn unchecked(what: &str) -> PyErr {
    pyo3::exceptions::PyTypeError::new_err(format!(
        "this {what} was made by model_construct from unchecked values"
    ))
}

/// The way from a parent to one nested record.
pub struct Lens<P: Node, F: 'static> {
    parent: Py<P>,
    /// The field of the parent.
    field: fn(&P::Data) -> &F,
    field_mut: fn(&mut P::Data) -> &mut F,
    index: usize,
}

fn stale(what: &str) -> PyErr {
    PyAttributeError::new_err(format!("{what} is no longer part of its parent event"))
}

impl<T: 'static, P: Node, F: Holds<T> + 'static> Slot<T, P, F> {
    #[inline]
    fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&T) -> R) -> PyResult<R> {
        match self {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(l) => l
                .parent
                .bind(py)
                .try_borrow()?
                .read(py, |pd| (l.field)(pd).at(l.index).map(f))?
                .ok_or_else(|| stale(F::WHAT)),
            Slot::Raw(_) => Err(unchecked(F::WHAT)),
        }
    }

    #[inline]
    fn write<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> PyResult<R> {
        match self {
            Slot::Own(d) => Ok(f(d)),
            Slot::In(l) => l
                .parent
                .bind(py)
                .try_borrow_mut()?
                .write(py, |pd| (l.field_mut)(pd).at_mut(l.index).map(f))?
                .ok_or_else(|| stale(F::WHAT)),
            Slot::Raw(_) => Err(unchecked(F::WHAT)),
        }
    }
}

/// A field as an attribute of instances of `O`: plain values are read out, nested records
/// are views into `O`'s record.
pub trait Attr<O: Node>: Sized {
    /// `owner.<field>`, where `field` and `field_mut` reach the field in `O`'s record.
    fn get<'py>(
        owner: &Bound<'py, O>,
        field: fn(&O::Data) -> &Self,
        field_mut: fn(&mut O::Data) -> &mut Self,
    ) -> PyResult<Bound<'py, PyAny>>;
}

macro_rules! plain_attrs {
    ($($t:ty),*) => {
        $(impl<O: Node> Attr<O> for $t {
            #[inline]
            fn get<'py>(
                owner: &Bound<'py, O>,
                field: fn(&O::Data) -> &Self,
                _: fn(&mut O::Data) -> &mut Self,
            ) -> PyResult<Bound<'py, PyAny>> {
                let py = owner.py();
                owner.borrow().read(py, |d| field(d).to_py(py, false))?
            }
        })*
    };
}

plain_attrs!(
    Text,
    Option<Text>,
    u64,
    Option<u64>,
    bool,
    f64,
    Timestamp,
    EventType,
    ApiVersion,
    Vec<(Text, Text)>
);

/// A view of the record at `index` of a field of `owner`.
fn view<'py, C, P, F>(
    owner: &Bound<'py, P>,
    field: fn(&P::Data) -> &F,
    field_mut: fn(&mut P::Data) -> &mut F,
    index: usize,
) -> PyResult<Bound<'py, C>>
where
    C: Node + From<Slot<C::Data, P, F>>,
    P: Node,
    F: Holds<C::Data> + 'static,
{
    let lens = Lens {
        parent: owner.clone().unbind(),
        field,
        field_mut,
        index,
    };
    Bound::new(owner.py(), C::from(Slot::In(lens)))
}

/// `RunEvent.request`: `None`, or a view.
impl Attr<PyRunEvent> for Option<Request> {
    fn get<'py>(
        owner: &Bound<'py, PyRunEvent>,
        field: fn(&RunEvent) -> &Self,
        field_mut: fn(&mut RunEvent) -> &mut Self,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = owner.py();
        if owner.borrow().read(py, |e| field(e).is_none())? {
            return Ok(py.None().into_bound(py));
        }
        let v = view::<PyRequest, _, _>(owner, field, field_mut, 0)?;
        Ok(v.into_any())
    }
}

macro_rules! nested_attr {
    ($t:ty, $class:ty, $parent:ty) => {
        impl Attr<$parent> for $t {
            fn get<'py>(
                owner: &Bound<'py, $parent>,
                field: fn(&<$parent as Node>::Data) -> &Self,
                field_mut: fn(&mut <$parent as Node>::Data) -> &mut Self,
            ) -> PyResult<Bound<'py, PyAny>> {
                let v = view::<$class, _, _>(owner, field, field_mut, 0)?;
                Ok(v.into_any())
            }
        }
    };
}

nested_attr!(Metrics, PyMetrics, PyRunEvent);
nested_attr!(Usage, PyUsage, PyRunEvent);
nested_attr!(ModelUsage, PyModelUsage, PyUsage);

/// `RunEventUsage.tools`: a list of views.
impl Attr<PyUsage> for Vec<ToolUsage> {
    fn get<'py>(
        owner: &Bound<'py, PyUsage>,
        field: fn(&Usage) -> &Self,
        field_mut: fn(&mut Usage) -> &mut Self,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = owner.py();
        let n = owner.borrow().read(py, |u| field(u).len())?;
        let items = (0..n)
            .map(|i| view::<PyToolUsage, _, _>(owner, field, field_mut, i))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, items)?.into_any())
    }
}

/// A field's Python name: its `as "name"`, or the Rust one.
macro_rules! attr_name {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident $py:literal) => {
        $py
    };
}

/// Whether a field holds its default (`false` for a required field).
macro_rules! is_default {
    ($v:expr) => {
        false
    };
    ($v:expr, $d:expr) => {
        $v == $d
    };
}

/// From the field table: each record's dict, repr and field values ([`PyModel`]), its
/// classes' getters, and the recognition of instances as validator input.
macro_rules! py_models {
    ([$($class:ident),*] $(
        $(#[$meta:meta])*
        $name:ident $pyclass:literal $($dflt:ident)? {
            $(
                $(#[$fmeta:meta])*
                $f:ident $(as $py:literal)? : $t:ty $(= $d:expr)?
            ),* $(,)?
        }
    )*) => {
        $(
            impl PyModel for $name {
                fn keys(py: Python<'_>) -> &[Py<PyString>] {
                    static KEYS: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();
                    KEYS.get_or_init(py, || {
                        <$name as Model>::FIELDS
                            .iter()
                            .map(|n| PyString::intern(py, n).unbind())
                            .collect()
                    })
                }

                fn for_each_value(
                    &self,
                    f: &mut dyn FnMut(&dyn PyValue) -> PyResult<()>,
                ) -> PyResult<()> {
                    $(f(&self.$f)?;)*
                    Ok(())
                }
            }

            impl PyValue for $name {
                /// The record as a dict (`model_dump()`). Kept apart from `dump` below:
                /// going through it costs plain dumps 2-5% in option checks.
                fn to_py<'py>(&self, py: Python<'py>, json: bool) -> PyResult<Bound<'py, PyAny>> {
                    let d = PyDict::new(py);
                    let mut keys = <$name as PyModel>::keys(py).iter();
                    $(
                        if let Some(k) = keys.next() {
                            d.set_item(k.bind(py), PyValue::to_py(&self.$f, py, json)?)?;
                        }
                    )*
                    Ok(d.into_any())
                }
                fn repr(&self, py: Python<'_>, out: &mut String) -> PyResult<()> {
                    model_repr(self, py, out)
                }
                /// The record as a dict, with pydantic's `exclude_*` options applied to
                /// its fields (and, through their own `dump`, to nested records').
                fn dump<'py>(
                    &self,
                    py: Python<'py>,
                    opts: DumpOptions,
                ) -> PyResult<Bound<'py, PyAny>> {
                    let d = PyDict::new(py);
                    let set = <$name as Model>::fields_set(self);
                    let mut keys = <$name as PyModel>::keys(py).iter().enumerate();
                    $(
                        if let Some((i, k)) = keys.next() {
                            let unset = opts.exclude_unset && !set.contains(i);
                            let default = opts.exclude_defaults && is_default!(self.$f $(, $d)?);
                            if !unset && !default {
                                let v = PyValue::dump(&self.$f, py, opts)?;
                                if !(opts.exclude_none && v.is_none()) {
                                    d.set_item(k.bind(py), v)?;
                                }
                            }
                        }
                    )*
                    Ok(d.into_any())
                }
            }

            // The class listed for this record in `event_models!(py_models [...])` holds it.
            const _: fn(&<$class as Node>::Data) -> &$name = |d| d;

            #[pymethods]
            impl $class {
                $(
                    #[getter]
                    $(#[pyo3(name = $py)])?
                    fn $f<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
                        if let Some(m) = raw_of(slf) {
                            let name = PyString::new(slf.py(), attr_name!($f $($py)?));
                            return raw_call(slf, m, "raw_getattr", [name.into_any()], None);
                        }
                        <$t as Attr<Self>>::get(slf, |d| &d.$f, |d| &mut d.$f)
                    }
                )*
            }
        )*

        /// Our model instance's record, as validator input.
        fn instance_of(o: &Bound<'_, PyAny>) -> Option<Instance> {
            $(
                if let Ok(x) = o.cast::<$class>() {
                    return record_of(x).ok().map(|d| d.into_instance());
                }
            )*
            None
        }
    };
}

event_models!(py_models PyRequest, PyMetrics, PyModelUsage, PyToolUsage, PyUsage, PyRunEvent);

/// One agent run: the record `POST /v1/events` accepts.
#[pyclass(module = "flightdeck_rs.models", name = "RunEvent", weakref)]
pub struct PyRunEvent {
    /// The record (a placeholder when `raw` is set).
    inner: Arc<RunEvent>,
    /// See [`Node::raw`].
    raw: Option<Py<PyAny>>,
}

impl PyRunEvent {
    /// The event's record, shared: its own, or for an instance holding unchecked values,
    /// those values validated now (a `ValidationError` when they are not valid).
    #[inline]
    pub fn shared(slf: &Bound<'_, Self>) -> PyResult<Arc<RunEvent>> {
        let this = slf.try_borrow()?;
        if this.raw.is_none() {
            return Ok(this.inner.clone());
        }
        drop(this);
        Ok(Arc::new(record_of(slf)?))
    }

    /// An event owning `data`.
    pub fn owning(data: RunEvent) -> Self {
        <Self as Node>::own(data)
    }
}

/// What a `RunEvent` holding unchecked values keeps as its record: never read (see
/// [`Node::raw`]), built once from a fixed valid event.
fn placeholder() -> PyResult<Arc<RunEvent>> {
    static EVENT: std::sync::OnceLock<Arc<RunEvent>> = std::sync::OnceLock::new();
    if let Some(e) = EVENT.get() {
        return Ok(e.clone());
    }
    let v = serde_json::json!({
        "timestamp": "1970-01-01T00:00:00Z", "agent_id": "", "release_id": "", "run_id": "",
        "tenant_id": "", "task_id": "", "environment": "",
        "usage": {"model": {"provider": "", "model": "", "input_tokens": 0, "output_tokens": 0}},
    });
    let e = source_json::event_from_value(&v)
        .map_err(|_| PyValueError::new_err("the placeholder event does not validate"))?;
    Ok(EVENT.get_or_init(|| Arc::new(e)).clone())
}

impl Node for PyRunEvent {
    type Data = RunEvent;

    #[inline]
    fn own(data: RunEvent) -> Self {
        Self {
            inner: Arc::new(data),
            raw: None,
        }
    }

    #[inline]
    fn raw(&self) -> Option<&Py<PyAny>> {
        self.raw.as_ref()
    }

    fn from_raw(_py: Python<'_>, mirror: Py<PyAny>) -> PyResult<Self> {
        Ok(Self {
            inner: placeholder()?,
            raw: Some(mirror),
        })
    }

    #[inline]
    fn read<R>(&self, _py: Python<'_>, f: impl FnOnce(&RunEvent) -> R) -> PyResult<R> {
        if self.raw.is_some() {
            return Err(unchecked("RunEvent"));
        }
        Ok(f(&self.inner))
    }

    /// Copy-on-write: a batch being sent keeps the data it took.
    #[inline]
    fn write<R>(&mut self, _py: Python<'_>, f: impl FnOnce(&mut RunEvent) -> R) -> PyResult<R> {
        if self.raw.is_some() {
            return Err(unchecked("RunEvent"));
        }
        Ok(f(Arc::make_mut(&mut self.inner)))
    }

    /// A dict, or an object with `model_dump()` (another pydantic model, say).
    fn validate_other(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        let e = if obj.cast::<PyDict>().is_err() && obj.hasattr("model_dump")? {
            validate_event(py, &obj.call_method0("model_dump")?)?
        } else {
            validate_event(py, obj)?
        };
        Ok(Self::own(e))
    }

    /// JSON text (str or bytes), validated in Rust.
    fn validate_json(data: &Bound<'_, PyAny>) -> Option<PyResult<Self>> {
        let py = data.py();
        Some(json_text(data).and_then(|v| {
            source_json::event_from_value(&v)
                .map(Self::own)
                .map_err(|errs| raise_json(py, "RunEvent", &errs))
        }))
    }

    /// The copy is made in its `Arc` and moved no more.
    #[inline]
    fn edit(slf: &Bound<'_, Self>, f: impl FnOnce(&mut RunEvent) -> PyResult<()>) -> PyResult<()> {
        let mut copy = Arc::new((*slf.borrow().inner).clone());
        f(Arc::make_mut(&mut copy))?;
        slf.borrow_mut().inner = copy;
        Ok(())
    }
}

/// A nested record's class: a [`Slot`] in `$parent`'s record, reached through field type `$field`.
macro_rules! nested_class {
    ($(#[$meta:meta])* $class:ident, $pyname:literal, $data:ty, $parent:ty, $field:ty) => {
        $(#[$meta])*
        #[pyclass(module = "flightdeck_rs.models", name = $pyname)]
        pub struct $class {
            slot: Slot<$data, $parent, $field>,
        }

        impl From<Slot<$data, $parent, $field>> for $class {
            fn from(slot: Slot<$data, $parent, $field>) -> Self {
                Self { slot }
            }
        }

        impl Node for $class {
            type Data = $data;

            #[inline]
            fn own(data: $data) -> Self {
                Self {
                    slot: Slot::Own(data),
                }
            }

            #[inline]
            fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&$data) -> R) -> PyResult<R> {
                self.slot.read(py, f)
            }

            #[inline]
            fn write<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut $data) -> R) -> PyResult<R> {
                self.slot.write(py, f)
            }

            #[inline]
            fn raw(&self) -> Option<&Py<PyAny>> {
                match &self.slot {
                    Slot::Raw(m) => Some(m),
                    _ => None,
                }
            }

            fn from_raw(_py: Python<'_>, mirror: Py<PyAny>) -> PyResult<Self> {
                Ok(Self {
                    slot: Slot::Raw(mirror),
                })
            }
        }
    };
}

nested_class!(
    /// `RunEventRequest`: session / trace / span ids.
    PyRequest, "RunEventRequest", Request, PyRunEvent, Option<Request>
);
nested_class!(
    /// `RunEventMetrics`: latency, success and error type of a run.
    PyMetrics, "RunEventMetrics", Metrics, PyRunEvent, Metrics
);
nested_class!(
    /// `RunEventUsage`: the model usage and the tools used by a run.
    PyUsage, "RunEventUsage", Usage, PyRunEvent, Usage
);
nested_class!(
    /// `RunEventModelUsage`: provider, model and token counts.
    PyModelUsage, "RunEventModelUsage", ModelUsage, PyUsage, ModelUsage
);
nested_class!(
    /// `RunEventToolUsage`: one tool's invocations and cost units.
    PyToolUsage, "RunEventToolUsage", ToolUsage, PyUsage, Vec<ToolUsage>
);

/// `Class(**data)`.
#[inline]
fn construct<C: Node>(py: Python<'_>, data: Option<&Bound<'_, PyDict>>) -> PyResult<C> {
    let src = kwargs_or_empty(py, data);
    let mut ctx = Ctx::default();
    match C::Data::from_map(&mut ctx, &PySrc(src)) {
        Some(d) if ctx.errors.is_empty() => Ok(C::own(d)),
        _ => Err(raise_py(py, C::Data::NAME, &ctx.errors)),
    }
}

/// A copy of `slf`'s record with the fields of `update` assigned (validated).
#[inline]
fn copy_with<C: Node>(slf: &Bound<'_, C>, update: Option<&Bound<'_, PyDict>>) -> PyResult<C> {
    let py = slf.py();
    let mut copy = slf.borrow().read(py, Clone::clone)?;
    if let Some(u) = update {
        let mut ctx = Ctx::default();
        for (k, v) in u.iter() {
            let name: String = k.extract()?;
            if !copy.assign(&mut ctx, &name, &PySrc(v)) {
                return Err(PyAttributeError::new_err(format!(
                    "{} has no field {name:?}",
                    C::Data::NAME
                )));
            }
        }
        if !ctx.errors.is_empty() {
            return Err(raise_py(py, C::Data::NAME, &ctx.errors));
        }
    }
    Ok(C::own(copy))
}

/// `obj.name = value`, validated.
#[inline]
fn set_attr<C: Node>(slf: &Bound<'_, C>, name: &str, value: Bound<'_, PyAny>) -> PyResult<()> {
    let py = slf.py();
    C::edit(slf, |copy| {
        let mut ctx = Ctx::default();
        if !copy.assign(&mut ctx, name, &PySrc(value)) {
            return Err(PyValueError::new_err(format!(
                "\"{}\" object has no field \"{name}\"",
                C::Data::NAME
            )));
        }
        if !ctx.errors.is_empty() {
            return Err(raise_py(py, C::Data::NAME, &ctx.errors));
        }
        Ok(())
    })
}

/// pydantic's `==`: field by field (aware timestamps by instant, labels as a dict).
#[inline]
fn equal<C: Node>(this: &C, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let py = other.py();
    match other.cast::<C>() {
        Ok(o) => {
            let o = o.try_borrow()?;
            this.read(py, |a| o.read(py, |b| a.same(b)))??
                .into_py_any(py)
        }
        Err(_) => Ok(py.NotImplemented()),
    }
}

/// The methods every model class has, written once.
macro_rules! model_methods {
    (
        $class:ty,
        validate: [$(#[$validate_doc:meta])*],
        validate_json: [$(#[$validate_json_doc:meta])*],
        dump: [$(#[$dump_doc:meta])*],
        dump_json: [$(#[$json_doc:meta])*]
    ) => {
        #[pymethods]
        impl $class {
            #[new]
            #[pyo3(signature = (**data))]
            fn new(py: Python<'_>, data: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
                construct(py, data)
            }

            $(#[$validate_doc])*
            #[classmethod]
            #[pyo3(signature = (obj, **opts))]
            fn model_validate<'py>(
                cls: &Bound<'py, PyType>,
                py: Python<'py>,
                obj: &Bound<'py, PyAny>,
                opts: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                if has_options(opts) {
                    return model_api(py, "model_validate", (cls, obj), opts);
                }
                if let Ok(o) = obj.cast::<Self>() {
                    return Ok(o.clone().into_any());
                }
                Ok(Bound::new(py, Self::validate_other(obj)?)?.into_any())
            }

            $(#[$validate_json_doc])*
            #[classmethod]
            #[pyo3(signature = (json_data, **opts))]
            fn model_validate_json<'py>(
                cls: &Bound<'py, PyType>,
                py: Python<'py>,
                json_data: &Bound<'py, PyAny>,
                opts: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                if !has_options(opts) {
                    if let Some(v) = Self::validate_json(json_data) {
                        return Ok(Bound::new(py, v?)?.into_any());
                    }
                }
                model_api(py, "model_validate_json", (cls, json_data), opts)
            }

            $(#[$dump_doc])*
            #[pyo3(
                signature = (*, mode = Some("python"), **opts),
                text_signature = "($self, *, mode='python', **opts)"
            )]
            fn model_dump<'py>(
                slf: &Bound<'py, Self>,
                mode: Option<&str>,
                opts: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let py = slf.py();
                if let Some(m) = raw_of(slf) {
                    let mode = mode.into_bound_py_any(py)?;
                    return raw_call(slf, m, "raw_dump", [mode], opts);
                }
                if has_options(opts) {
                    if let Some(sel) = opts.and_then(|o| Selection::of(o, dump_mode(mode), false)) {
                        return slf.borrow().read(py, |d| sel.dump(py, d))?;
                    }
                    return model_api(py, "model_dump", (slf, mode), opts);
                }
                let json = dump_mode(mode);
                slf.borrow().read(py, |d| d.to_py(py, json))?
            }

            $(#[$json_doc])*
            #[pyo3(signature = (**opts))]
            fn model_dump_json<'py>(
                slf: &Bound<'py, Self>,
                opts: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let py = slf.py();
                if let Some(m) = raw_of(slf) {
                    return raw_call(slf, m, "raw_dump_json", [], opts);
                }
                if has_options(opts) {
                    let Some(sel) = opts.and_then(|o| Selection::of(o, true, true)) else {
                        return model_api(py, "model_dump_json", (slf,), opts);
                    };
                    let dump = slf.borrow().read(py, |d| sel.dump(py, d))??;
                    let mut buf = Vec::with_capacity(512);
                    write_dump_json(&dump, &mut buf)?;
                    let text =
                        String::from_utf8(buf).map_err(|e| PyValueError::new_err(e.to_string()))?;
                    let text = match sel.indent {
                        Some(n) => json::indent(&text, n),
                        None => text,
                    };
                    return Ok(PyString::new(py, &text).into_any());
                }
                let mut buf = Vec::with_capacity(512);
                slf.borrow()
                    .read(py, |d| d.write_json(&mut buf, Mode::Pydantic))?
                    .map_err(|_| {
                        PyValueError::new_err("Out of range float values are not JSON compliant")
                    })?;
                let text =
                    String::from_utf8(buf).map_err(|e| PyValueError::new_err(e.to_string()))?;
                Ok(PyString::new(py, &text).into_any())
            }

            /// The names of the fields the caller set (pydantic's `model_fields_set`).
            #[getter]
            fn model_fields_set<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
                let py = slf.py();
                if let Some(m) = raw_of(slf) {
                    return m.into_bound(py).getattr("model_fields_set");
                }
                let set = slf.borrow().read(py, |d| d.fields_set())?;
                Ok(fields_set_of(py, <Self as Node>::Data::FIELDS, set)?.into_any())
            }

            /// The pydantic-mirror instance of an instance holding unchecked values
            /// (from `model_construct`), else `None`.
            #[getter]
            fn _raw(&self, py: Python<'_>) -> Option<Py<PyAny>> {
                self.raw().map(|m| m.clone_ref(py))
            }

            /// An instance holding a pydantic-mirror instance's values unchecked.
            #[classmethod]
            fn _from_raw(
                _cls: &Bound<'_, PyType>,
                py: Python<'_>,
                mirror: Py<PyAny>,
            ) -> PyResult<Self> {
                Self::from_raw(py, mirror)
            }

            /// `model_copy(update=)` with the values validated (a `ValidationError`, or an
            /// `AttributeError` for an unknown name, when they cannot be stored).
            fn _copy_checked(
                slf: &Bound<'_, Self>,
                update: Option<&Bound<'_, PyDict>>,
            ) -> PyResult<Self> {
                copy_with(slf, update)
            }

            /// Replaces the record of set fields (for `model_construct(_fields_set=...)`).
            fn _replace_fields_set(
                &mut self,
                py: Python<'_>,
                names: &Bound<'_, PyAny>,
            ) -> PyResult<()> {
                let set = fields_set_from(<Self as Node>::Data::FIELDS, names)?;
                self.write(py, |d| d.set_fields_set(set))
            }

            /// A copy, optionally with fields replaced. As pydantic's, the new values are
            /// not checked: values the record cannot hold are kept as given.
            #[pyo3(signature = (*, update = None, deep = false))]
            fn model_copy<'py>(
                slf: &Bound<'py, Self>,
                update: Option<&Bound<'py, PyDict>>,
                deep: bool,
            ) -> PyResult<Bound<'py, PyAny>> {
                let py = slf.py();
                let changes = update.is_some_and(|u| !u.is_empty());
                if changes || raw_of(slf).is_some() {
                    let deep = deep.into_bound_py_any(py)?;
                    let update = update.into_bound_py_any(py)?;
                    return model_api(py, "model_copy", (slf, update, deep), None);
                }
                Ok(Bound::new(py, copy_with(slf, None)?)?.into_any())
            }

            fn __setattr__(
                slf: &Bound<'_, Self>,
                name: &str,
                value: Bound<'_, PyAny>,
            ) -> PyResult<()> {
                if let Some(m) = raw_of(slf) {
                    let name = PyString::new(slf.py(), name).into_any();
                    return raw_call(slf, m, "raw_setattr", [name, value], None).map(|_| ());
                }
                set_attr(slf, name, value)
            }

            fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let other_raw = other.cast::<Self>().ok().and_then(raw_of);
                if let Some(m) = raw_of(slf).or(other_raw) {
                    return Ok(raw_call(slf, m, "raw_eq", [other.clone()], None)?.unbind());
                }
                equal(&*slf.borrow(), other)
            }

            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                let py = slf.py();
                if let Some(m) = raw_of(slf) {
                    return Ok(m.into_bound(py).repr()?.to_string());
                }
                let mut out = String::with_capacity(128);
                slf.borrow().read(py, |d| model_repr(d, py, &mut out))??;
                Ok(out)
            }

            fn __copy__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
                let py = slf.py();
                if let Some(m) = raw_of(slf) {
                    return raw_call(slf, m, "raw_copy", [], None);
                }
                Ok(Bound::new(py, Self::own(slf.borrow().read(py, Clone::clone)?))?.into_any())
            }

            fn __deepcopy__<'py>(
                slf: &Bound<'py, Self>,
                memo: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                if let Some(m) = raw_of(slf) {
                    return raw_call(slf, m, "raw_deepcopy", [memo.clone()], None);
                }
                Self::__copy__(slf)
            }

            fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
                model_api(slf.py(), "reduce", (slf,), None)
            }
        }
    };
}

model_methods!(
    PyRunEvent,
    validate: [
        /// Validates a dict (or an existing event) into a `RunEvent`.
    ],
    validate_json: [
        /// Validates JSON text (str or bytes) into a `RunEvent`.
    ],
    dump: [
        /// The event as a dict; `mode="json"` gives JSON-ready values (timestamp as text).
        /// Takes pydantic's other options too (`include`, `exclude`, `exclude_unset`, ...).
    ],
    dump_json: [
        /// The event as compact JSON text, as pydantic's `model_dump_json()` writes it.
        /// Takes pydantic's options too (`indent`, `include`, `exclude`, ...).
    ]
);
model_methods!(PyRequest, validate: [], validate_json: [], dump: [], dump_json: []);
model_methods!(PyMetrics, validate: [], validate_json: [], dump: [], dump_json: []);
model_methods!(PyUsage, validate: [], validate_json: [], dump: [], dump_json: []);
model_methods!(PyModelUsage, validate: [], validate_json: [], dump: [], dump_json: []);
model_methods!(PyToolUsage, validate: [], validate_json: [], dump: [], dump_json: []);

#[pymethods]
impl PyRunEvent {
    /// The exact bytes this event contributes to a `POST /v1/events` body.
    fn wire_json<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyBytes>> {
        let py = slf.py();
        let v = serialize::to_vec(&*Self::shared(slf)?, Mode::Wire).map_err(|_| {
            PyValueError::new_err("Out of range float values are not JSON compliant")
        })?;
        Ok(PyBytes::new(py, &v))
    }
}

/// `RunEvent(**kw)` straight from the caller's keyword dict.
///
/// pyo3's generated constructor copies `**kw` into a fresh dict before validation starts,
/// which is about a fifth of the cost of building an event. This slot validates the
/// interpreter's own keyword dict instead (it is only read) and leaves every other call
/// shape (positional arguments) to pyo3's constructor. Not available with the stable ABI,
/// whose type objects are opaque.
#[cfg(not(feature = "abi3"))]
#[allow(unsafe_code)]
mod fast_new {
    use std::panic::AssertUnwindSafe;
    use std::sync::OnceLock;

    use pyo3::exceptions::PyRuntimeError;
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyDict;
    use pyo3::PyTypeInfo;

    use super::PyRunEvent;

    /// pyo3's constructor slot, for the calls this one does not take.
    static PYO3_NEW: OnceLock<ffi::newfunc> = OnceLock::new();

    fn construct(py: Python<'_>, kwds: *mut ffi::PyObject) -> PyResult<*mut ffi::PyObject> {
        let data = if kwds.is_null() {
            PyDict::new(py)
        } else {
            // SAFETY: a borrowed reference the interpreter keeps alive for the call.
            unsafe { Bound::from_borrowed_ptr(py, kwds) }.cast_into::<PyDict>()?
        };
        let event = PyRunEvent::new(py, Some(&data))?;
        Ok(Bound::new(py, event)?.into_ptr())
    }

    /// The `tp_new` slot of `RunEvent`.
    ///
    /// # Safety
    /// Called by the interpreter, attached, with valid (or null) `args` and `kwds`.
    unsafe extern "C" fn tp_new(
        subtype: *mut ffi::PyTypeObject,
        args: *mut ffi::PyObject,
        kwds: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: the interpreter calls slots attached.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: `args` is the call's tuple (or null) and `kwds` its dict (or null).
        let plain = subtype == PyRunEvent::type_object_raw(py)
            && (args.is_null() || unsafe { ffi::PyTuple_Size(args) } == 0)
            && (kwds.is_null() || unsafe { ffi::PyDict_CheckExact(kwds) } != 0);
        if !plain {
            return match PYO3_NEW.get() {
                // SAFETY: pyo3's own slot for this type, called as the interpreter would.
                Some(f) => unsafe { f(subtype, args, kwds) },
                None => {
                    PyRuntimeError::new_err("RunEvent constructor is not set up").restore(py);
                    std::ptr::null_mut()
                }
            };
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| construct(py, kwds))) {
            Ok(Ok(obj)) => obj,
            Ok(Err(e)) => {
                e.restore(py);
                std::ptr::null_mut()
            }
            Err(_) => {
                PyRuntimeError::new_err("internal error while building a RunEvent").restore(py);
                std::ptr::null_mut()
            }
        }
    }

    /// Puts [`tp_new`] in `RunEvent`'s constructor slot (once, at module import).
    pub fn install(py: Python<'_>) {
        let ty = PyRunEvent::type_object_raw(py);
        // SAFETY: `ty` is our heap type, fully built; no instance is being created while
        // the module initialises, and the type's caches are invalidated afterwards.
        unsafe {
            if let Some(orig) = (*ty).tp_new {
                if PYO3_NEW.set(orig).is_ok() {
                    (*ty).tp_new = Some(tp_new);
                    ffi::PyType_Modified(ty);
                }
            }
        }
    }
}

/// Installs the fast `RunEvent(**kw)` constructor where the build allows it.
pub fn install_fast_constructor(py: Python<'_>) {
    #[cfg(not(feature = "abi3"))]
    fast_new::install(py);
    #[cfg(feature = "abi3")]
    let _ = py;
}
