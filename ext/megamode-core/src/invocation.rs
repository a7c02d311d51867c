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
    /// `Lambda-Runtime-Aws-Tenant-Id`, for a multi-tenant function (native loop only).
    pub tenant_id: Option<String>,
    /// The Cognito identity and the client context of an invocation from the AWS Mobile SDK, as
    /// the Runtime API sends them (native loop only: for the context of its Ruby handler).
    pub identity: Option<serde_json::Value>,
    pub client_context: Option<serde_json::Value>,
    pub function: Function,
}

/// The function being invoked, as a Lambda context describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Function {
    pub arn: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub memory_limit_in_mb: Option<u32>,
    pub log_group_name: Option<String>,
    pub log_stream_name: Option<String>,
}

/// A part of a function's identity, by where each caller finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Arn,
    Name,
    Version,
    MemoryLimitInMb,
    LogGroupName,
    LogStreamName,
}

impl Field {
    /// The variable of Lambda's environment that holds it; the ARN is the invocation's own
    /// (`Lambda-Runtime-Invoked-Function-Arn`: it names the alias or version invoked).
    pub fn env_var(self) -> Option<&'static str> {
        match self {
            Field::Arn => None,
            Field::Name => Some("AWS_LAMBDA_FUNCTION_NAME"),
            Field::Version => Some("AWS_LAMBDA_FUNCTION_VERSION"),
            Field::MemoryLimitInMb => Some("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            Field::LogGroupName => Some("AWS_LAMBDA_LOG_GROUP_NAME"),
            Field::LogStreamName => Some("AWS_LAMBDA_LOG_STREAM_NAME"),
        }
    }
}

impl Function {
    /// The one way a function's identity is built, whoever asks: each field as text from `get`
    /// (a context object's method, an environment variable); empty text is no value, and the
    /// memory size is a number or nothing.
    pub fn read(mut get: impl FnMut(Field) -> Option<String>) -> Function {
        let mut text = |field| get(field).filter(|v| !v.is_empty());
        Function {
            arn: text(Field::Arn),
            name: text(Field::Name),
            version: text(Field::Version),
            memory_limit_in_mb: text(Field::MemoryLimitInMb).and_then(|m| m.trim().parse().ok()),
            log_group_name: text(Field::LogGroupName),
            log_stream_name: text(Field::LogStreamName),
        }
    }

    /// From Lambda's environment, the variables its own context objects read (the ARN comes with
    /// each invocation).
    pub fn from_env() -> Function {
        Function::read(|field| std::env::var(field.env_var()?).ok())
    }
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
            tenant_id: None,
            identity: None,
            client_context: None,
            function: Function::default(),
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn lambda_context_json(&self) -> String {
        let function = &self.function;
        let header = LambdaContextHeader {
            request_id: &self.request_id,
            deadline: self.deadline_ms,
            invoked_function_arn: function.arn.as_deref(),
            xray_trace_id: self.trace_id.as_deref(),
            env_config: EnvConfig {
                function_name: function.name.as_deref(),
                memory: function.memory_limit_in_mb,
                version: function.version.as_deref(),
                log_group: function.log_group_name.as_deref(),
                log_stream: function.log_stream_name.as_deref(),
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
    fn a_function_is_read_the_same_way_from_a_context_or_the_environment() {
        let values = |field: Field| match field {
            Field::Arn => Some("arn:aws:lambda:us-east-1:1:function:f".to_string()),
            Field::Name => Some("f".into()),
            Field::Version => Some(String::new()),
            Field::MemoryLimitInMb => Some(" 1024".into()),
            Field::LogGroupName => Some("/aws/lambda/f".into()),
            Field::LogStreamName => None,
        };
        let function = Function::read(values);
        assert_eq!(
            function,
            Function {
                arn: Some("arn:aws:lambda:us-east-1:1:function:f".into()),
                name: Some("f".into()),
                version: None,
                memory_limit_in_mb: Some(1024),
                log_group_name: Some("/aws/lambda/f".into()),
                log_stream_name: None,
            }
        );
        let bad_memory = Function::read(|f| (f == Field::MemoryLimitInMb).then(|| "lots".into()));
        assert_eq!(bad_memory, Function::default());
        assert_eq!(Field::Arn.env_var(), None);
        assert_eq!(
            Field::MemoryLimitInMb.env_var(),
            Some("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        );
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
