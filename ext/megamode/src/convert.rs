//! Ruby values <-> JSON values. Lambda events are JSON documents, so the Hash the Ruby runtime hands
//! over holds only Hashes, Arrays, Strings, numbers, booleans and nil; that is all that crosses.

use magnus::value::{Qfalse, Qnil, Qtrue, ReprValue};
use magnus::{
    Error, Float, Integer, IntoValue, RArray, RHash, RString, Ruby, Symbol, TryConvert, Value,
};
use megamode_core::ErrorKind;
use serde_json::{Map, Number, Value as Json};

use crate::ffi::megamode_error;

/// Deeper than any real event; stops a self-referencing Hash from recursing forever.
const MAX_DEPTH: usize = 64;

pub fn to_json(value: Value) -> Result<Json, Error> {
    convert(value, &mut String::from("event"), 0)
}

fn convert(value: Value, path: &mut String, depth: usize) -> Result<Json, Error> {
    if depth > MAX_DEPTH {
        return Err(invalid(path, "is nested too deeply"));
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
    if let Some(s) = RString::from_value(value) {
        return string(s)
            .map(Json::String)
            .ok_or_else(|| invalid(path, "is not valid UTF-8"));
    }
    if let Some(hash) = RHash::from_value(value) {
        let mut map = Map::with_capacity(hash.len());
        hash.foreach(|key: Value, item: Value| {
            let key = key_string(key)?;
            let len = path.len();
            path.push('.');
            path.push_str(&key);
            let item = convert(item, path, depth + 1)?;
            path.truncate(len);
            map.insert(key, item);
            Ok(magnus::r_hash::ForEach::Continue)
        })?;
        return Ok(Json::Object(map));
    }
    if let Some(array) = RArray::from_value(value) {
        let mut items = Vec::with_capacity(array.len());
        for i in 0..array.len() {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            items.push(convert(array.entry::<Value>(i as isize)?, path, depth + 1)?);
            path.truncate(len);
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
        return Err(invalid(path, "is an Integer too large for JSON"));
    }
    if let Some(float) = Float::from_value(value) {
        return Number::from_f64(float.to_f64())
            .map(Json::Number)
            .ok_or_else(|| invalid(path, "is a Float that JSON cannot hold (NaN or infinite)"));
    }
    if let Some(symbol) = Symbol::from_value(value) {
        return Ok(Json::String(symbol.name()?.into_owned()));
    }
    Err(invalid(
        path,
        &format!(
            "is a {}, which a Lambda event (JSON) cannot contain",
            value.class()
        ),
    ))
}

fn key_string(key: Value) -> Result<String, Error> {
    if let Some(s) = RString::from_value(key) {
        return string(s)
            .ok_or_else(|| megamode_error(ErrorKind::Event, "an event key is not valid UTF-8"));
    }
    if let Some(symbol) = Symbol::from_value(key) {
        return Ok(symbol.name()?.into_owned());
    }
    String::try_convert(key.funcall("to_s", ())?)
}

fn string(s: RString) -> Option<String> {
    // SAFETY: the bytes are copied out before any other Ruby call can change the string.
    let bytes = unsafe { s.as_slice() };
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

fn invalid(path: &str, what: &str) -> Error {
    megamode_error(ErrorKind::Event, &format!("{path} {what}"))
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
                let _ = hash.aset(ruby.str_new(key), from_json(ruby, item));
            }
            hash.into_value_with(ruby)
        }
    }
}
