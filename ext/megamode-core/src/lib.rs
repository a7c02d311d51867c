//! megamode's core: everything between a Lambda event and the app's server process, with no Ruby.
//!
//! The per-request path (translate, proxy, respond, logs) lives here so that both callers, the Ruby
//! handler and a native Runtime API loop, share it and so that it can be tested with `cargo test`.

pub mod app;
pub mod config;
pub mod error;
pub mod events;
pub mod invocation;

pub use config::Config;
pub use error::{Error, ErrorKind};
pub use invocation::Invocation;
