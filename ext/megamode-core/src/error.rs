//! Errors are values. Each kind says what failed; the binding alone decides what a caller sees for
//! it (a Ruby exception class, Lambda's `errorType`).

use std::fmt;

use http::StatusCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The event is not something megamode can handle.
    Event,
    /// The app's server could not be started or never became ready.
    Boot,
    /// A setting has a value megamode cannot use.
    Config,
    /// The app answered with an error: a pass-through event with an error status, or a status
    /// `MEGAMODE_ERROR_STATUS` lists.
    App,
    /// Talking to the app's server failed in a way that is not a response.
    Upstream,
    /// The app's response is larger than its source accepts; reading it stopped there (answered
    /// with a 502).
    Oversize,
    /// The request is one HTTP does not allow (a header name or value with CR, LF, NUL or another
    /// character HTTP forbids): answered with a 400, never forwarded.
    BadRequest,
    /// The request's URI is longer than the app's server takes: answered with a 414.
    UriTooLong,
    /// The request's headers, or one of them, are larger than the app's server takes, or too
    /// many: answered with a 431.
    HeadersTooLarge,
    /// Lambda's Runtime API could not be reached, or answered what it should not.
    RuntimeApi,
    /// The app did not answer within the invocation's time.
    Timeout,
    /// The caller asked to stop waiting (Ruby's Thread#raise, Ctrl-C).
    Interrupted,
}

impl ErrorKind {
    /// The status megamode answers itself, without asking the app, for a request it refuses to
    /// forward; `None` for the kinds that are not a client's mistake.
    pub fn refusal_status(self) -> Option<StatusCode> {
        match self {
            ErrorKind::BadRequest => Some(StatusCode::BAD_REQUEST),
            ErrorKind::UriTooLong => Some(StatusCode::URI_TOO_LONG),
            ErrorKind::HeadersTooLarge => Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn event(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Event, message)
    }

    pub fn boot(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Boot, message)
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
