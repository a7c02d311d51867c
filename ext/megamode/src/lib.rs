//! The Ruby binding: `Megamode::Native`, a thin layer over `megamode-core`.
//!
//! No logic lives here: values are converted, calls into the core are made with the GVL released,
//! and the core's errors become `Megamode::Error` subclasses.

mod convert;
mod engine;
mod ffi;

use magnus::{Error, Module, Ruby};

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let native = ruby.define_module("Megamode")?.define_module("Native")?;
    engine::define(ruby, native)?;
    Ok(())
}
