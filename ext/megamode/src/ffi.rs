//! The FFI helpers every binding call uses: running core code without the GVL, keeping Rust panics
//! out of Ruby, and turning core errors into `Megamode::Error` subclasses.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{Error, ExceptionClass, Module, RModule, Ruby};
use megamode_core::{Cancel, ErrorKind};

struct Call<F, R> {
    work: Option<F>,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn run<F: FnOnce(&Cancel) -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `(Call, Cancel)` pair that `without_gvl` owns for the whole call.
    let (call, cancel) = unsafe { &mut *(data as *mut (Call<F, R>, Cancel)) };
    if let Some(work) = call.work.take() {
        call.result = Some(catch_unwind(AssertUnwindSafe(|| work(cancel))));
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn unblock<F, R>(data: *mut c_void) {
    // SAFETY: as in `run`; only the `Cancel`, which is Sync, is touched from this other thread.
    let (_, cancel) = unsafe { &*(data as *const (Call<F, R>, Cancel)) };
    cancel.cancel();
}

/// Runs `work` with the GVL released. `work` must not touch any Ruby object. When Ruby wants the
/// thread back (Thread#raise, Ctrl-C) the `Cancel` it is given fires, and once `work` has returned
/// the pending Ruby exception is raised here.
pub fn without_gvl<F, R>(work: F) -> Result<R, Error>
where
    F: FnOnce(&Cancel) -> R,
{
    let mut data = (
        Call {
            work: Some(work),
            result: None,
        },
        Cancel::default(),
    );
    let ptr = &mut data as *mut (Call<F, R>, Cancel) as *mut c_void;
    // SAFETY: `data` outlives the call; the `2` variant does not check interrupts itself, so no
    // Ruby exception can unwind through this Rust frame: `check_interrupts` does it under `protect`.
    unsafe {
        rb_sys::rb_thread_call_without_gvl2(Some(run::<F, R>), ptr, Some(unblock::<F, R>), ptr);
    }
    let result = data.0.result.take();
    check_interrupts()?;
    match result {
        Some(Ok(value)) => Ok(value),
        Some(Err(panic)) => Err(megamode_error(
            ErrorKind::Proxy,
            &format!("megamode's core panicked: {}", panic_message(&panic)),
        )),
        // Ruby had an interrupt pending before the call could start, and `check_interrupts` found it
        // already handled: nothing ran.
        None => Err(megamode_error(
            ErrorKind::Interrupted,
            "interrupted before the call started",
        )),
    }
}

fn check_interrupts() -> Result<(), Error> {
    magnus::rb_sys::protect(|| {
        // SAFETY: called with the GVL held; may raise, which `protect` catches.
        unsafe { rb_sys::rb_thread_check_ints() };
        rb_sys::Qnil as rb_sys::VALUE
    })
    .map(|_| ())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// The Ruby exception for a core error: `Megamode::EventError`, `Megamode::BootError`, ... as
/// defined in lib/megamode/errors.rb.
pub fn megamode_error(kind: ErrorKind, message: &str) -> Error {
    let ruby = Ruby::get().expect("binding calls run on a Ruby thread");
    let name = match kind {
        ErrorKind::Event => "EventError",
        ErrorKind::Boot => "BootError",
        ErrorKind::Config => "ConfigError",
        ErrorKind::Proxy => "ProxyError",
        ErrorKind::Timeout => "TimeoutError",
        ErrorKind::App => "AppError",
        ErrorKind::Interrupted => "Error",
    };
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("Megamode")
        .and_then(|m| m.const_get::<_, ExceptionClass>(name));
    match class {
        Ok(class) => Error::new(class, message.to_string()),
        Err(_) => Error::new(ruby.exception_runtime_error(), message.to_string()),
    }
}

pub fn core_error(error: megamode_core::Error) -> Error {
    megamode_error(error.kind, &error.message)
}
