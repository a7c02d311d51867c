//! The Ruby binding: `Megamode::Native`, a thin layer over `megamode-core`, internal to the gem
//! (lib/megamode/native.rb makes it a private constant).
//!
//! No logic lives here: values are converted, calls into the core are made with the GVL released,
//! and the core's errors become `Megamode::Error` subclasses (`ffi`, the one mapping).

mod context;
mod convert;
mod engine;
mod ffi;
mod runtime;

use magnus::{function, Error, Module, Object, Ruby, Value};

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    same_ruby_as_compiled(ruby)?;
    let native = ruby.define_module("Megamode")?.define_module("Native")?;
    engine::define(ruby, native)?;
    native.define_singleton_method("pack", function!(pack, 2))?;
    native.define_singleton_method("rails_app?", function!(is_rails_app, 1))?;
    native.define_singleton_method("boot_cause", function!(boot_cause, 2))?;
    #[cfg(feature = "bench")]
    bench::define(native)?;
    Ok(())
}

/// An extension compiled for one Ruby and loaded by another reads that Ruby's objects wrongly (an
/// event's keys came back empty) instead of failing: so before anything else, the Ruby this was
/// compiled for is compared with the one running, through libruby's exported version numbers, a
/// plain array whose layout no Ruby version changes.
fn same_ruby_as_compiled(ruby: &Ruby) -> Result<(), Error> {
    // SAFETY: a constant array of three ints that every libruby exports.
    let running = unsafe { rb_sys::ruby_api_version };
    let compiled = [
        rb_sys::RUBY_API_VERSION_MAJOR as i32,
        rb_sys::RUBY_API_VERSION_MINOR as i32,
    ];
    if running[..2] == compiled {
        return Ok(());
    }
    Err(Error::new(
        ruby.exception_load_error(),
        format!(
            "megamode's native extension was compiled for Ruby {}.{} and this is Ruby {}.{}: it \
             cannot run here. Build it for this Ruby (`rake compile` in a checkout, reinstall the \
             gem, or build the package with this Ruby: `megamode build --runtime` for the Lambda \
             runtime that runs it)",
            compiled[0], compiled[1], running[0], running[1]
        ),
    ))
}

/// Packs the gem tree `src` (a `vendor/bundle`) into `out_dir` as megamode's bundle archive and
/// manifest; returns the manifest. The build uses it, and so do tests and benchmarks.
fn pack(ruby: &Ruby, src: String, out_dir: String) -> Result<Value, Error> {
    let manifest = ffi::without_gvl(|_| megamode_core::lazy::pack(src.as_ref(), out_dir.as_ref()))?
        .map_err(ffi::core_error)?;
    let json = serde_json::to_value(&manifest).unwrap_or_default();
    Ok(convert::from_json(ruby, &json))
}

/// Whether the app in `dir` is a Rails app: the core's rule, which the packager asks too.
fn is_rails_app(dir: String) -> bool {
    megamode_core::app::AppKind::detect(dir.as_ref()) == megamode_core::app::AppKind::Rails
}

/// Why an app did not boot, from its server's output (`lines`, oldest first, without a log prefix)
/// with the app at `app`: the core's reading (`supervisor::cause`), which the build asks too. nil,
/// or `{"line", "advice", "need", "variable"}`: the cause's line, what to do on Lambda, and what the
/// app needs ("variable", "secret_key_base", "master_key", "right_master_key"; nil when megamode
/// does not recognise it), with the variable's name for "variable".
fn boot_cause(ruby: &Ruby, lines: Vec<String>, app: String) -> Option<Value> {
    use megamode_core::supervisor::cause::{self, Need};
    let found = cause::find(&lines, app.as_ref())?;
    let (need, variable) = match &found.need {
        Some(Need::Variable(name)) => (Some("variable"), Some(name.as_str())),
        Some(Need::SecretKeyBase) => (Some("secret_key_base"), None),
        Some(Need::MasterKey) => (Some("master_key"), None),
        Some(Need::RightMasterKey) => (Some("right_master_key"), None),
        None => (None, None),
    };
    let json = serde_json::json!({
        "line": found.line(),
        "advice": found.advice(),
        "need": need,
        "variable": variable,
    });
    Some(convert::from_json(ruby, &json))
}

/// What only the benchmarks call (bench/*.rb, built by `rake bench` with the `bench` feature):
/// single steps of the core, alone.
#[cfg(feature = "bench")]
mod bench {
    use magnus::{function, Error, Object, RModule, Ruby, Value};

    use crate::{convert, ffi};

    pub fn define(native: RModule) -> Result<(), Error> {
        native.define_singleton_method("round_trip", function!(round_trip, 1))?;
        native.define_singleton_method("copy_app", function!(copy_app, 2))?;
        native.define_singleton_method("unpack", function!(unpack, 2))?;
        Ok(())
    }

    /// The event conversion both ways (Ruby -> JSON value -> Ruby), alone: what crosses the
    /// boundary.
    fn round_trip(ruby: &Ruby, value: Value) -> Result<Value, Error> {
        let json = convert::to_json(value)?;
        Ok(convert::from_json(ruby, &json))
    }

    /// Copying the app (`app` into `tmp`) alone: the copy's root, or the BootError.
    fn copy_app(app: String, tmp: String) -> Result<String, Error> {
        let copy = ffi::without_gvl(|_| megamode_core::app_copy::make(app.as_ref(), tmp.as_ref()))?
            .map_err(ffi::core_error)?;
        Ok(copy.root.display().to_string())
    }

    /// Unpacks the bundle whose manifest is `manifest` into `tmp`, alone: the directory.
    fn unpack(manifest: String, tmp: String) -> Result<String, Error> {
        let unpacked =
            ffi::without_gvl(|_| megamode_core::lazy::unpack(manifest.as_ref(), tmp.as_ref()))?
                .map_err(ffi::core_error)?;
        Ok(unpacked.root.display().to_string())
    }
}
