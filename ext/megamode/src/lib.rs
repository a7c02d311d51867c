//! The Ruby binding: `Megamode::Native`, a thin layer over `megamode-core`.
//!
//! No logic lives here: values are converted, calls into the core are made with the GVL released,
//! and the core's errors become `Megamode::Error` subclasses.

mod convert;
mod engine;
mod ffi;

use magnus::{function, Error, Module, Object, Ruby, Value};

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let native = ruby.define_module("Megamode")?.define_module("Native")?;
    engine::define(ruby, native)?;
    native.define_singleton_method("round_trip", function!(round_trip, 1))?;
    native.define_singleton_method("stage", function!(stage, 2))?;
    native.define_singleton_method("pack", function!(pack, 2))?;
    native.define_singleton_method("unpack", function!(unpack, 2))?;
    Ok(())
}

/// The event conversion both ways (Ruby -> JSON value -> Ruby), alone: for benchmarks and tests of
/// what crosses the boundary.
fn round_trip(ruby: &Ruby, value: Value) -> Result<Value, Error> {
    let json = convert::to_json(value)?;
    Ok(convert::from_json(ruby, &json))
}

/// Staging alone (`app` into `tmp`), for benchmarks: the staged root, or the BootError.
fn stage(app: String, tmp: String) -> Result<String, Error> {
    let staged = ffi::without_gvl(|_| megamode_core::stage::stage(app.as_ref(), tmp.as_ref()))?
        .map_err(ffi::core_error)?;
    Ok(staged.root.display().to_string())
}

/// Packs the gem tree `src` (a `vendor/bundle`) into `out_dir` as megamode's bundle archive and
/// manifest; returns the manifest. The build uses it, and so do tests and benchmarks.
fn pack(ruby: &Ruby, src: String, out_dir: String) -> Result<Value, Error> {
    let manifest = ffi::without_gvl(|_| megamode_core::lazy::pack(src.as_ref(), out_dir.as_ref()))?
        .map_err(ffi::core_error)?;
    let json = serde_json::to_value(&manifest).unwrap_or_default();
    Ok(convert::from_json(ruby, &json))
}

/// Unpacks the bundle whose manifest is `manifest` into `tmp`, alone, for benchmarks: the directory.
fn unpack(manifest: String, tmp: String) -> Result<String, Error> {
    let unpacked =
        ffi::without_gvl(|_| megamode_core::lazy::unpack(manifest.as_ref(), tmp.as_ref()))?
            .map_err(ffi::core_error)?;
    Ok(unpacked.root.display().to_string())
}
