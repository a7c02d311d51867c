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

/// Where a Ruby exception found while the GVL was released waits to be raised. It lives on the
/// calling Ruby thread's stack, which Ruby's GC scans conservatively (up to where the thread released
/// the GVL), so the exception stays alive until it is raised.
struct Raised(std::cell::UnsafeCell<Option<Error>>);

/// Runs `work` with the GVL released. `work` must not touch any Ruby object.
///
/// When Ruby wakes the thread (Thread#raise, Ctrl-C, or only a signal handler to run), `work`'s
/// `Cancel` asks Ruby, with the GVL taken back for a moment, whether an exception is due. If one is,
/// `work` stops and that exception is raised here; if not, `work` goes on undisturbed.
pub fn without_gvl<F, R>(work: F) -> Result<R, Error>
where
    F: FnOnce(&Cancel) -> R,
{
    let raised = Raised(std::cell::UnsafeCell::new(None));
    // An address, not a reference: the hook must be 'static, and it only runs during this call,
    // while `raised` is alive on this frame.
    let slot = &raised as *const Raised as usize;
    let cancel = Cancel::with_confirm(move || {
        // SAFETY: this runs on the thread that released the GVL, which may take it back this way.
        unsafe { rb_sys::rb_thread_call_with_gvl(Some(check_with_gvl), slot as *mut c_void) };
        // SAFETY: written above on this same thread; nothing else touches it meanwhile.
        unsafe { (*(*(slot as *const Raised)).0.get()).is_some() }
    });
    let mut data = (
        Call {
            work: Some(work),
            result: None,
        },
        cancel,
    );
    let ptr = &mut data as *mut (Call<F, R>, Cancel) as *mut c_void;
    loop {
        // SAFETY: `data` outlives the call. The `2` variant does not check interrupts itself, so no
        // Ruby exception unwinds through this Rust frame.
        unsafe {
            rb_sys::rb_thread_call_without_gvl2(Some(run::<F, R>), ptr, Some(unblock::<F, R>), ptr);
        }
        // SAFETY: the blocking call has returned; only this thread touches the slot now.
        if let Some(error) = unsafe { (*raised.0.get()).take() } {
            return Err(error);
        }
        if data.0.work.is_none() {
            break;
        }
        // An interrupt was pending before `work` could start: raise it if it is an exception,
        // otherwise start `work` now.
        check_interrupts()?;
    }
    match data.0.result.take() {
        Some(Ok(value)) => Ok(value),
        Some(Err(panic)) => Err(megamode_error(
            ErrorKind::Upstream,
            &format!("megamode's core panicked: {}", panic_message(&panic)),
        )),
        None => Err(megamode_error(ErrorKind::Interrupted, "interrupted")),
    }
}

struct WithGvl<F, R> {
    work: Option<F>,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn run_with_gvl<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `WithGvl` that `with_gvl` owns for the whole call.
    let call = unsafe { &mut *(data as *mut WithGvl<F, R>) };
    if let Some(work) = call.work.take() {
        call.result = Some(catch_unwind(AssertUnwindSafe(work)));
    }
    std::ptr::null_mut()
}

/// Runs `work` with the GVL taken back, from inside `without_gvl`'s work (on the same thread), so
/// it may touch Ruby objects; `work` must not let a Ruby exception escape (use magnus calls, which
/// return them as errors). None if it panicked.
pub fn with_gvl<F, R>(work: F) -> Option<R>
where
    F: FnOnce() -> R,
{
    let mut call = WithGvl {
        work: Some(work),
        result: None,
    };
    // SAFETY: called on a Ruby thread that released the GVL through `without_gvl`; `call` outlives
    // the call.
    unsafe {
        rb_sys::rb_thread_call_with_gvl(
            Some(run_with_gvl::<F, R>),
            &mut call as *mut WithGvl<F, R> as *mut c_void,
        )
    };
    call.result.and_then(|r| r.ok())
}

unsafe extern "C" fn check_with_gvl(slot: *mut c_void) -> *mut c_void {
    // SAFETY: `slot` is the `Raised` of the `without_gvl` call on this thread's stack.
    let raised = unsafe { &*(slot as *const Raised) };
    if let Err(error) = check_interrupts() {
        // SAFETY: this thread holds the GVL and is the only one that touches the slot.
        unsafe { *raised.0.get() = Some(error) };
    }
    std::ptr::null_mut()
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

/// Everything megamode raises is one of these.
pub const BASE_CLASS: &str = "Megamode::Error";

/// The one mapping from the core's error kinds to Ruby: the `Megamode::Error` subclass raised for
/// each (lib/megamode/errors.rb), which is also what Lambda's error shape names as `errorType`, so
/// both ways of running report an error the same way.
pub fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Event
        | ErrorKind::BadRequest
        | ErrorKind::UriTooLong
        | ErrorKind::HeadersTooLarge => "Megamode::EventError",
        ErrorKind::Boot => "Megamode::BootError",
        ErrorKind::Config => "Megamode::ConfigError",
        ErrorKind::Upstream | ErrorKind::Oversize => "Megamode::ProxyError",
        ErrorKind::RuntimeApi => "Megamode::RuntimeApiError",
        ErrorKind::Timeout => "Megamode::TimeoutError",
        ErrorKind::App => "Megamode::AppError",
        ErrorKind::Interrupted => BASE_CLASS,
    }
}

/// The Ruby exception for a core error of `kind`.
pub fn megamode_error(kind: ErrorKind, message: &str) -> Error {
    named_error(class_name(kind), message)
}

/// SnapStart's restore failed, and was posted on restore/error: `Megamode::RestoreError`, which
/// is not a kind of error but the phase it happened in (the environment is to end).
pub fn restore_error(message: &str) -> Error {
    named_error("Megamode::RestoreError", message)
}

fn named_error(class_name: &str, message: &str) -> Error {
    let ruby = Ruby::get().expect("binding calls run on a Ruby thread");
    let name = class_name.trim_start_matches("Megamode::");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_requests_are_event_errors_and_oversize_answers_proxy_errors() {
        for kind in [
            ErrorKind::Event,
            ErrorKind::BadRequest,
            ErrorKind::UriTooLong,
            ErrorKind::HeadersTooLarge,
        ] {
            assert_eq!(class_name(kind), "Megamode::EventError", "{kind:?}");
        }
        assert_eq!(class_name(ErrorKind::Oversize), "Megamode::ProxyError");
        assert_eq!(class_name(ErrorKind::Upstream), "Megamode::ProxyError");
        assert_eq!(
            class_name(ErrorKind::RuntimeApi),
            "Megamode::RuntimeApiError"
        );
    }
}
