//! `Megamode::Native::Engine`: one megamode-core `Engine`, driven from Ruby.

use std::collections::HashMap;
use std::sync::Mutex;

use magnus::{function, method, prelude::*, Error, RHash, RModule, Ruby, Value};
use megamode_core::runtime::api::RuntimeApi;
use megamode_core::snapstart::{self, Failure};
use megamode_core::{Config, Engine};

use crate::convert::{from_json, to_json};
use crate::ffi::{class_name, core_error, restore_error, without_gvl};

#[magnus::wrap(class = "Megamode::Native::Engine", free_immediately, size)]
struct NativeEngine(Mutex<Engine>);

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Engine", ruby.class_object())?;
    class.define_singleton_method("new", function!(NativeEngine::new, 1))?;
    class.define_method("boot", method!(NativeEngine::boot, 0))?;
    class.define_method("wait_ready", method!(NativeEngine::wait_ready, 0))?;
    class.define_method("handle", method!(NativeEngine::handle, 2))?;
    class.define_method("status", method!(NativeEngine::status, 0))?;
    class.define_method("shutdown", method!(NativeEngine::shutdown, 0))?;
    class.define_method("run_runtime", method!(NativeEngine::run_runtime, 2))?;
    class.define_method("snap_start", method!(NativeEngine::snap_start, 1))?;
    Ok(())
}

impl NativeEngine {
    /// `settings`: `MEGAMODE_*` names to values (from `Megamode.configure`); each falls back to the
    /// process environment.
    fn new(ruby: &Ruby, settings: RHash) -> Result<Self, Error> {
        let settings: HashMap<String, String> = settings.to_hash_map()?;
        let mut config = Config::from_lookup(|name| {
            settings
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        })
        .map_err(core_error)?;
        let object = ruby.class_object();
        config.ruby = Some(megamode_core::bootsnap::Ruby {
            version: object.const_get("RUBY_VERSION")?,
            revision: object.const_get("RUBY_REVISION")?,
            platform: object.const_get("RUBY_PLATFORM")?,
        });
        Ok(NativeEngine(Mutex::new(Engine::new(config))))
    }

    fn boot(&self) -> Result<(), Error> {
        without_gvl(|_| self.engine().boot())?.map_err(core_error)
    }

    fn wait_ready(&self) -> Result<(), Error> {
        without_gvl(|cancel| {
            let mut engine = self.engine();
            engine.boot()?;
            engine.wait_ready(cancel)
        })?
        .map_err(core_error)
    }

    /// `context`: the Lambda context object the handler was given.
    fn handle(ruby: &Ruby, rb_self: &Self, event: Value, context: Value) -> Result<Value, Error> {
        let event = to_json(event)?;
        let invocation = crate::context::invocation(context)?;
        let result = without_gvl(|cancel| rb_self.engine().handle(&event, &invocation, cancel))?;
        let result = result.map_err(core_error)?;
        Ok(from_json(ruby, &result))
    }

    /// The native Runtime API loop (`Megamode::Runtime.start`): returns only when interrupted or
    /// when the Runtime API fails. `events` (nil, or the callable given to `start`) handles the
    /// events that are not HTTP, called with the GVL taken back.
    fn run_runtime(&self, address: String, events: Option<Value>) -> Result<(), Error> {
        let mut host = crate::runtime::Host::new(events);
        without_gvl(|cancel| {
            let mut api = RuntimeApi::new(&address);
            megamode_core::runtime::run(&mut self.engine(), &mut api, cancel, &mut host)
        })?
        .map_err(core_error)
    }

    /// SnapStart's cycle (`Megamode.snap_start`) against the Runtime API at `address`, the same the
    /// native loop runs. An init failure raises its error; a failed restore, posted on
    /// restore/error already, raises `Megamode::RestoreError`.
    fn snap_start(&self, address: String) -> Result<(), Error> {
        without_gvl(|cancel| {
            let mut api = RuntimeApi::new(&address);
            snapstart::cycle(&mut self.engine(), &mut api, cancel, &class_name)
        })?
        .map_err(|failure| match failure {
            Failure::Restore(error) => restore_error(&error.message),
            Failure::Init(error) | Failure::Ended(error) => core_error(error),
        })
    }

    fn status(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let status = rb_self.engine().status();
        let hash = ruby.hash_new();
        hash.aset("pid", status.pid)?;
        hash.aset("port", status.port)?;
        hash.aset("socket", status.socket)?;
        hash.aset("ready", status.ready)?;
        hash.aset("connections_opened", status.connections_opened)?;
        hash.aset("boot_ms", status.boot_ms)?;
        Ok(hash)
    }

    fn shutdown(&self) -> Result<(), Error> {
        without_gvl(|_| self.engine().shutdown())
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
