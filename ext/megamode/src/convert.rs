//! Ruby values <-> JSON values. Lambda events are JSON documents, so the Hash the Ruby runtime hands
//! over holds only Hashes, Arrays, Strings, numbers, booleans and nil; that is all that crosses.

use magnus::rb_sys::FromRawValue;
use magnus::value::{Qfalse, Qnil, Qtrue, ReprValue};
use magnus::{
    Error, Float, Integer, IntoValue, RArray, RHash, RString, Ruby, Symbol, TryConvert, Value,
};
use megamode_core::ErrorKind;
use serde_json::{Map, Number, Value as Json};

use crate::ffi::megamode_error;

/// Deeper than any real event; stops a self-referencing Hash from recursing forever.
const MAX_DEPTH: usize = 64;

/// Why a value could not be converted. The path to it is collected while the recursion unwinds, so
/// the common case (nothing wrong) builds no path at all.
enum Failure {
    Invalid { path: Vec<String>, what: String },
    Ruby(Error),
}

impl Failure {
    fn at(mut self, step: impl FnOnce() -> String) -> Failure {
        if let Failure::Invalid { path, .. } = &mut self {
            path.push(step());
        }
        self
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Ruby(error)
    }
}

fn invalid(what: impl Into<String>) -> Failure {
    Failure::Invalid {
        path: Vec::new(),
        what: what.into(),
    }
}

pub fn to_json(value: Value) -> Result<Json, Error> {
    convert(value, 0).map_err(|failure| match failure {
        Failure::Ruby(error) => error,
        Failure::Invalid { path, what } => {
            let mut at = String::from("event");
            for step in path.iter().rev() {
                at.push_str(step);
            }
            megamode_error(ErrorKind::Event, &format!("{at} {what}"))
        }
    })
}

fn convert(value: Value, depth: usize) -> Result<Json, Failure> {
    if depth > MAX_DEPTH {
        return Err(invalid("is nested too deeply"));
    }
    if let Some(s) = RString::from_value(value) {
        return string(s)
            .map(Json::String)
            .ok_or_else(|| invalid("is not valid UTF-8"));
    }
    if let Some(hash) = RHash::from_value(value) {
        let mut map = Map::with_capacity(hash.len());
        let mut failure = None;
        hash.foreach(|key: Value, item: Value| {
            let key = match key_string(key) {
                Ok(key) => key,
                Err(f) => {
                    failure = Some(f);
                    return Ok(magnus::r_hash::ForEach::Stop);
                }
            };
            match convert(item, depth + 1) {
                Ok(item) => {
                    map.insert(key, item);
                    Ok(magnus::r_hash::ForEach::Continue)
                }
                Err(f) => {
                    failure = Some(f.at(|| format!(".{key}")));
                    Ok(magnus::r_hash::ForEach::Stop)
                }
            }
        })?;
        return match failure {
            Some(failure) => Err(failure),
            None => Ok(Json::Object(map)),
        };
    }
    if Qnil::from_value(value).is_some() {
        return Ok(Json::Null);
    }
    if Qtrue::from_value(value).is_some() {
        return Ok(Json::Bool(true));
    }
    if Qfalse::from_value(value).is_some() {
        return Ok(Json::Bool(false));
    }
    if let Some(array) = RArray::from_value(value) {
        let mut items = Vec::with_capacity(array.len());
        for i in 0..array.len() {
            let item = array.entry::<Value>(i as isize)?;
            items.push(convert(item, depth + 1).map_err(|f| f.at(|| format!("[{i}]")))?);
        }
        return Ok(Json::Array(items));
    }
    if let Some(int) = Integer::from_value(value) {
        if let Ok(i) = int.to_i64() {
            return Ok(Json::Number(i.into()));
        }
        if let Ok(u) = int.to_u64() {
            return Ok(Json::Number(u.into()));
        }
        return Err(invalid("is an Integer too large for JSON"));
    }
    if let Some(float) = Float::from_value(value) {
        return Number::from_f64(float.to_f64())
            .map(Json::Number)
            .ok_or_else(|| invalid("is a Float that JSON cannot hold (NaN or infinite)"));
    }
    if let Some(symbol) = Symbol::from_value(value) {
        return Ok(Json::String(symbol.name()?.into_owned()));
    }
    Err(invalid(format!(
        "is a {}, which a Lambda event (JSON) cannot contain",
        value.class()
    )))
}

fn key_string(key: Value) -> Result<String, Failure> {
    if let Some(s) = RString::from_value(key) {
        return string(s).ok_or_else(|| invalid("has a key that is not valid UTF-8"));
    }
    if let Some(symbol) = Symbol::from_value(key) {
        return Ok(symbol.name()?.into_owned());
    }
    Ok(String::try_convert(key.funcall("to_s", ())?)?)
}

fn string(s: RString) -> Option<String> {
    // SAFETY: the bytes are copied out before any other Ruby call can change the string.
    let bytes = unsafe { s.as_slice() };
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

pub fn from_json(ruby: &Ruby, value: &Json) -> Value {
    match value {
        Json::Null => ruby.qnil().as_value(),
        Json::Bool(true) => ruby.qtrue().as_value(),
        Json::Bool(false) => ruby.qfalse().as_value(),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                ruby.integer_from_i64(i).as_value()
            } else if let Some(u) = n.as_u64() {
                ruby.integer_from_u64(u).as_value()
            } else {
                ruby.float_from_f64(n.as_f64().unwrap_or(f64::NAN))
                    .as_value()
            }
        }
        Json::String(s) => ruby.str_new(s).as_value(),
        Json::Array(items) => {
            let array = ruby.ary_new_capa(items.len());
            for item in items {
                // Pushing onto a fresh Array cannot fail.
                let _ = array.push(from_json(ruby, item));
            }
            array.as_value()
        }
        Json::Object(map) => {
            let hash = ruby.hash_new();
            for (key, item) in map {
                let _ = hash.aset(interned(key), from_json(ruby, item));
            }
            hash.into_value_with(ruby)
        }
    }
}

/// A frozen, deduplicated String for a Hash key: Hash#[]= would otherwise copy and freeze every
/// key, and the same few keys ("statusCode", "headers", ...) come back on every response.
fn interned(key: &str) -> Value {
    // SAFETY: a valid pointer and length, UTF-8 as declared; the result is a live Ruby String.
    unsafe {
        let raw = rb_sys::rb_enc_interned_str(
            key.as_ptr().cast(),
            key.len() as _,
            rb_sys::rb_utf8_encoding(),
        );
        Value::from_raw(raw)
    }
}
