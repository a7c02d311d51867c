//! megamode's core: everything between a Lambda event and the app's server process, with no Ruby.
//!
//! The per-request path (translate, proxy, respond, logs) lives here so that both callers, the Ruby
//! handler and a native Runtime API loop, share it and so that it can be tested with `cargo test`.

pub mod app;
pub mod clock;
pub mod command;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod fit;
pub mod invocation;
pub mod lazy;
pub mod listen;
pub mod logs;
pub mod proxy;
pub mod runtime_api;
pub mod runtime_loop;
pub mod stage;
pub mod supervisor;

pub use config::{Compress, Config, Stage, Transport};
pub use engine::{Cancel, Engine};
pub use error::{Error, ErrorKind};
pub use invocation::Invocation;
