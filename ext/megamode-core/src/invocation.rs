//! One Lambda invocation as the proxy sees it: who asked, and how long is left.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

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
    pub fn new(request_id: impl Into<String>, remaining: Duration) -> Invocation {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // A remaining time too large to add (a bad context) means "no deadline to speak of".
        let now = Instant::now();
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        Invocation {
            request_id: request_id.into(),
            deadline: now.checked_add(remaining).unwrap_or(now + far),
            deadline_ms: now_ms
                .saturating_add(u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX)),
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

    #[test]
    fn a_huge_remaining_time_is_clamped_not_a_panic() {
        let invocation = Invocation::new("x", Duration::from_secs_f64(1e19));
        assert!(invocation.remaining() > Duration::from_secs(3600));
        assert_eq!(invocation.deadline_ms, u64::MAX);
    }
}
