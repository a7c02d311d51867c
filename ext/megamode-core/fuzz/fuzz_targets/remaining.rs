//! Any remaining time must become a deadline or an error, never a panic: a panic in the binding
//! crosses into Ruby as an unrescuable `fatal`. Covered: the float a Lambda context answers
//! (`get_remaining_time_in_millis`, through `remaining_from_millis`), any `Duration` handed to
//! `Invocation::new`, the Runtime API's `Lambda-Runtime-Deadline-Ms`, and `MEGAMODE_BOOT_TIMEOUT`.

#![no_main]

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use megamode_core::invocation::{remaining_from_millis, NO_DEADLINE};
use megamode_core::runtime::api::Next;
use megamode_core::{Config, Invocation};

fuzz_target!(|data: &[u8]| {
    let _ = exercise(&mut Unstructured::new(data));
});

fn exercise(u: &mut Unstructured) -> Result<()> {
    // The context's answer: any bit pattern, so NaNs, infinities, subnormals and -0.0 too.
    let ms = f64::from_bits(u.arbitrary()?);
    match remaining_from_millis(ms) {
        Ok(remaining) => {
            assert!(remaining <= NO_DEADLINE, "{ms} -> {remaining:?}");
            if ms <= 0.0 {
                assert_eq!(remaining, Duration::ZERO, "{ms}");
            } else if ms < 1e12 {
                let back = remaining.as_secs_f64() * 1000.0;
                assert!(
                    (back - ms).abs() <= ms * 1e-9 + 1e-6,
                    "{ms} -> {remaining:?}"
                );
            }
            deadline(remaining);
        }
        Err(error) => {
            assert!(ms.is_nan(), "{ms} refused: {error}");
            assert!(error.message.contains("get_remaining_time_in_millis"));
        }
    }
    // Any duration, as callers of the core may build one.
    deadline(Duration::new(
        u.arbitrary()?,
        u.int_in_range(0..=999_999_999)?,
    ));
    // The Runtime API's deadline, in milliseconds since the epoch.
    let next = Next {
        request_id: "r".into(),
        deadline_ms: u.arbitrary()?,
        function_arn: None,
        trace_id: None,
        invocation_id: None,
        tenant_id: None,
        body: Default::default(),
    };
    deadline(next.remaining());
    // The boot timeout setting, as text.
    let text = if u.arbitrary()? {
        f64::from_bits(u.arbitrary()?).to_string()
    } else {
        u.arbitrary::<String>()?
    };
    let config = Config::from_lookup(|name| match name {
        "MEGAMODE_APP_ROOT" => Some("/nonexistent".into()),
        "MEGAMODE_BOOT_TIMEOUT" => Some(text.clone()),
        _ => None,
    });
    // (A positive timeout below a nanosecond is zero: what was asked for, near enough.)
    if let Ok(config) = config {
        assert!(config.boot_timeout <= NO_DEADLINE, "{text:?}");
        deadline(config.boot_timeout);
    }
    Ok(())
}

/// An invocation with this remaining time: its deadlines are in range and it serialises.
fn deadline(remaining: Duration) {
    let invocation = Invocation::new("r", remaining);
    assert!(invocation.remaining() <= remaining.min(NO_DEADLINE));
    let header: serde_json::Value =
        serde_json::from_str(&invocation.lambda_context_json()).expect("the context header parses");
    assert!(header["deadline"].as_u64().is_some());
}
