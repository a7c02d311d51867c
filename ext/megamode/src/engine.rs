//! `Megamode::Native::Engine`: one megamode-core `Engine`, driven from Ruby.

use std::collections::HashMap;
use std::sync::Mutex;

use magnus::{function, method, prelude::*, Error, RHash, RModule, Ruby, Value};
use megamode_core::invocation::remaining_from_millis;
use megamode_core::runtime_api::RuntimeApi;
use megamode_core::runtime_loop::{Answer, OtherEvents};
use megamode_core::{Config, Engine, Invocation};
use serde_json::Value as Json;

use crate::convert::{from_json, to_json};
use crate::ffi::{core_error, with_gvl, without_gvl};

#[magnus::wrap(class = "Megamode::Native::Engine", free_immediately, size)]
struct NativeEngine(Mutex<Engine>);

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Engine", ruby.class_object())?;
    class.define_singleton_method("new", function!(NativeEngine::new, 1))?;
    class.define_method("boot", method!(NativeEngine::boot, 0))?;
    class.define_method("wait_ready", method!(NativeEngine::wait_ready, 0))?;
    class.define_method("handle", method!(NativeEngine::handle, 4))?;
    class.define_method("status", method!(NativeEngine::status, 0))?;
    class.define_method("shutdown", method!(NativeEngine::shutdown, 0))?;
    class.define_method("run_runtime", method!(NativeEngine::run_runtime, 2))?;
    Ok(())
}

impl NativeEngine {
    /// `settings`: `MEGAMODE_*` names to values (from `Megamode.configure`); each falls back to the
    /// process environment.
    fn new(settings: RHash) -> Result<Self, Error> {
        let settings: HashMap<String, String> = settings.to_hash_map()?;
        let config = Config::from_lookup(|name| {
            settings
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        })
        .map_err(core_error)?;
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

    /// `context`: the optional parts of the Lambda context, by name (`trace_id`, `function_arn`, ...).
    fn handle(
        ruby: &Ruby,
        rb_self: &Self,
        event: Value,
        request_id: String,
        remaining_ms: f64,
        context: RHash,
    ) -> Result<Value, Error> {
        let event = to_json(event)?;
        let context = to_json(context.as_value())?;
        // Any float the context answered: infinite or huge is no deadline, NaN an EventError.
        let remaining = remaining_from_millis(remaining_ms).map_err(core_error)?;
        let mut invocation = Invocation::new(request_id, remaining);
        let text = |name: &str| context.get(name).and_then(Json::as_str).map(str::to_owned);
        invocation.trace_id = text("trace_id");
        invocation.function_arn = text("function_arn");
        invocation.function_name = text("function_name");
        invocation.function_version = text("function_version");
        invocation.log_group_name = text("log_group_name");
        invocation.log_stream_name = text("log_stream_name");
        invocation.memory_limit_in_mb = context
            .get("memory_limit_in_mb")
            .and_then(|m| m.as_u64().or_else(|| m.as_str()?.parse().ok()))
            .and_then(|m| u32::try_from(m).ok());
        let result = without_gvl(|cancel| rb_self.engine().handle(&event, &invocation, cancel))?;
        let result = result.map_err(core_error)?;
        Ok(from_json(ruby, &result))
    }

    /// The native Runtime API loop (`Megamode::Runtime.start`): returns only when interrupted or
    /// when the Runtime API fails. With `ruby_events`, events that are not HTTP go to
    /// `Megamode::Runtime.dispatch` (the Ruby handler given to `start`), with the GVL taken back.
    fn run_runtime(&self, address: String, ruby_events: bool) -> Result<(), Error> {
        without_gvl(|cancel| {
            let mut api = RuntimeApi::new(&address)?;
            let mut dispatch = |event: &Json, invocation: &Invocation| {
                with_gvl(|| dispatch_to_ruby(event, invocation)).unwrap_or_else(|| Answer::Error {
                    error_type: "Megamode::Error".into(),
                    message: "megamode panicked while calling the Ruby handler".into(),
                })
            };
            let other: Option<OtherEvents> = if ruby_events {
                Some(&mut dispatch)
            } else {
                None
            };
            megamode_core::runtime_loop::run(&mut self.engine(), &mut api, cancel, other)
        })?
        .map_err(core_error)
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

/// Calls `Megamode::Runtime.dispatch(event, request_id, deadline_ms, function_arn, trace_id)`, which answers
/// `{"result" => ...}` or `{"errorType" => ..., "errorMessage" => ...}`. Runs with the GVL held.
fn dispatch_to_ruby(event: &Json, invocation: &Invocation) -> Answer {
    let failed = |message: String| Answer::Error {
        error_type: "Megamode::Error".into(),
        message,
    };
    let Ok(ruby) = Ruby::get() else {
        return failed("the Ruby handler cannot be called from this thread".into());
    };
    let runtime = ruby
        .class_object()
        .const_get::<_, RModule>("Megamode")
        .and_then(|m| m.const_get::<_, RModule>("Runtime"));
    let answer = runtime.and_then(|runtime| {
        runtime.funcall::<_, _, Value>(
            "dispatch",
            (
                from_json(&ruby, event),
                invocation.request_id.as_str(),
                invocation.deadline_ms,
                invocation.function_arn.as_deref(),
                invocation.trace_id.as_deref(),
            ),
        )
    });
    match answer.and_then(to_json) {
        Ok(mut answer) => match answer.get_mut("result").map(Json::take) {
            Some(result) => Answer::Result(result),
            None => Answer::Error {
                error_type: text(&answer, "errorType"),
                message: text(&answer, "errorMessage"),
            },
        },
        Err(error) => failed(format!("the Ruby handler failed: {error}")),
    }
}

fn text(answer: &Json, key: &str) -> String {
    answer
        .get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}
