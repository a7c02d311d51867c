//! One Lambda invocation as the proxy sees it: who asked, and how long is left.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{Error, Result};

/// The longest remaining time megamode keeps (100 years): anything longer, infinity included, is
/// "no deadline to speak of", and every deadline computed from it stays far from overflowing.
pub const NO_DEADLINE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The remaining time a Lambda context reports (`get_remaining_time_in_millis`, any float) as a
/// duration: negative means none left (Lambda's own contexts go below zero past the deadline),
/// infinite or beyond `NO_DEADLINE` is clamped to it, and NaN, which says nothing, is the caller's
/// error, named.
pub fn remaining_from_millis(ms: f64) -> Result<Duration> {
    if ms.is_nan() {
        return Err(Error::event(format!(
            "the context's get_remaining_time_in_millis returned {ms}, not a number of milliseconds"
        )));
    }
    if ms <= 0.0 {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::try_from_secs_f64(ms / 1000.0)
        .unwrap_or(NO_DEADLINE)
        .min(NO_DEADLINE))
}

#[derive(Clone, Debug)]
pub struct Invocation {
    pub request_id: String,
    /// When Lambda stops the invocation, on the monotonic clock.
    pub deadline: Instant,
    /// The same moment in milliseconds since the epoch, as Lambda reports it.
    pub deadline_ms: u64,
    pub trace_id: Option<String>,
    pub function_arn: Option<String>,
    pub function_name: Option<String>,
    pub function_version: Option<String>,
    pub memory_limit_in_mb: Option<u32>,
    pub log_group_name: Option<String>,
    pub log_stream_name: Option<String>,
}

/// The shape of `X-Amzn-Lambda-Context`: the field names AWS's runtime clients use for the
/// context object, so apps that already read it from another adapter keep working.
#[derive(Serialize)]
struct LambdaContextHeader<'a> {
    request_id: &'a str,
    deadline: u64,
    invoked_function_arn: Option<&'a str>,
    xray_trace_id: Option<&'a str>,
    env_config: EnvConfig<'a>,
}

#[derive(Serialize)]
struct EnvConfig<'a> {
    function_name: Option<&'a str>,
    memory: Option<u32>,
    version: Option<&'a str>,
    log_group: Option<&'a str>,
    log_stream: Option<&'a str>,
}

impl Invocation {
    /// `remaining` beyond `NO_DEADLINE` (a bad context, or a Runtime API that sent no deadline)
    /// is taken as `NO_DEADLINE`.
    pub fn new(request_id: impl Into<String>, remaining: Duration) -> Invocation {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let remaining = remaining.min(NO_DEADLINE);
        let now = Instant::now();
        Invocation {
            request_id: request_id.into(),
            deadline: now.checked_add(remaining).unwrap_or(now),
            deadline_ms: now_ms.saturating_add(remaining.as_millis() as u64),
            trace_id: None,
            function_arn: None,
            function_name: None,
            function_version: None,
            memory_limit_in_mb: None,
            log_group_name: None,
            log_stream_name: None,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn lambda_context_json(&self) -> String {
        let header = LambdaContextHeader {
            request_id: &self.request_id,
            deadline: self.deadline_ms,
            invoked_function_arn: self.function_arn.as_deref(),
            xray_trace_id: self.trace_id.as_deref(),
            env_config: EnvConfig {
                function_name: self.function_name.as_deref(),
                memory: self.memory_limit_in_mb,
                version: self.function_version.as_deref(),
                log_group: self.log_group_name.as_deref(),
                log_stream: self.log_stream_name.as_deref(),
            },
        };
        serde_json::to_string(&header).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn a_huge_remaining_time_is_clamped_not_a_panic() {
        for remaining in [Duration::from_secs_f64(1e19), Duration::MAX] {
            let before = now_ms();
            let invocation = Invocation::new("x", remaining);
            assert!(invocation.remaining() > NO_DEADLINE - Duration::from_secs(3600));
            assert!(invocation.remaining() <= NO_DEADLINE);
            let far = NO_DEADLINE.as_millis() as u64;
            assert!((before + far..=now_ms() + far).contains(&invocation.deadline_ms));
            assert!(invocation.lambda_context_json().contains("\"deadline\":"));
        }
    }

    #[test]
    fn any_float_a_context_answers_is_a_remaining_time_or_an_error_naming_it() {
        let ms = |v: f64| remaining_from_millis(v).unwrap();
        assert_eq!(ms(1500.0), Duration::from_millis(1500));
        assert_eq!(ms(0.5), Duration::from_micros(500));
        // Infinite or past any clock: no deadline to speak of.
        for huge in [f64::INFINITY, f64::MAX, 1e300, 1e22, 1.8446744073709552e22] {
            assert_eq!(ms(huge), NO_DEADLINE, "{huge}");
            // And usable: the invocation's arithmetic holds.
            let invocation = Invocation::new("x", ms(huge));
            assert!(invocation.remaining() > Duration::from_secs(3600));
        }
        // Past the deadline, as Lambda's own contexts report it: none left.
        for past in [-1.0, -0.0, -1e300, f64::NEG_INFINITY, -f64::MIN_POSITIVE] {
            assert_eq!(ms(past), Duration::ZERO, "{past}");
        }
        let err = remaining_from_millis(f64::NAN).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Event);
        assert!(
            err.message
                .contains("get_remaining_time_in_millis returned NaN"),
            "{err}"
        );
    }
}
