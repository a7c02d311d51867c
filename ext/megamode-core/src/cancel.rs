//! Stopping a call that waits: the caller's other thread (Ruby's unblock function, on Thread#raise
//! or Ctrl-C) cancels, and whatever the call was waiting for is dropped with an `Interrupted` error.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::error::{Error, ErrorKind, Result};

/// Lets another thread stop a call that is waiting.
///
/// A caller can be woken for nothing (Ruby also wakes a blocked thread to run a signal handler), so a
/// `confirm` hook, when given, decides whether a wake-up really stops the call; when it does not, the
/// call goes on waiting for the same request, which is never sent twice.
#[derive(Default)]
pub struct Cancel {
    cancelled: AtomicBool,
    notify: Notify,
    confirm: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl Cancel {
    pub fn with_confirm(confirm: impl Fn() -> bool + Send + Sync + 'static) -> Cancel {
        Cancel {
            confirm: Some(Box::new(confirm)),
            ..Cancel::default()
        }
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// `work`, unless this is cancelled first: then an `Interrupted` error saying what was going on
    /// (`doing`: "waiting for the app").
    pub async fn unless_cancelled<T>(
        &self,
        doing: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            result = work => result,
            _ = self.cancelled() => Err(Error::new(ErrorKind::Interrupted, format!("interrupted while {doing}"))),
        }
    }

    pub(crate) async fn cancelled(&self) {
        loop {
            // Created before the flag is read, so a `cancel` in between still wakes it.
            let notified = self.notify.notified();
            if self.cancelled.swap(false, Ordering::SeqCst)
                && self.confirm.as_ref().is_none_or(|c| c())
            {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{block_on, new_runtime};
    use std::time::Duration;

    #[test]
    fn a_wake_up_the_confirm_hook_rejects_does_not_cancel() {
        let rejected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::clone(&rejected);
        let cancel = Cancel::with_confirm(move || seen.fetch_add(1, Ordering::SeqCst) > 0);
        cancel.cancel();
        let runtime = new_runtime().unwrap();
        let outcome = runtime.block_on(async {
            tokio::select! {
                _ = cancel.cancelled() => "cancelled",
                _ = tokio::time::sleep(Duration::from_millis(50)) => "still waiting",
            }
        });
        assert_eq!(outcome, "still waiting");
        cancel.cancel();
        runtime.block_on(cancel.cancelled());
        assert_eq!(rejected.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn cancel_before_waiting_still_cancels() {
        let cancel = Cancel::default();
        cancel.cancel();
        block_on(cancel.cancelled());
        cancel.cancel();
        let err = block_on(cancel.unless_cancelled("waiting for the app", async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(())
        }))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Interrupted);
        assert_eq!(err.message, "interrupted while waiting for the app");
    }
}
