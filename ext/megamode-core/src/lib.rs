//! megamode's core: everything between a Lambda event and the app's server process, with no Ruby.
//!
//! The per-event path (translate, proxy, respond, logs) lives here so that both callers, the Ruby
//! handler and the native Runtime API loop, share it and so that it can be tested with `cargo test`.

pub mod app;
pub mod app_copy;
pub mod bootsnap;
pub mod cancel;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod invocation;
pub mod io;
pub mod lazy;
pub mod lifecycle;
pub mod listen;
pub mod logs;
pub mod proxy;
pub mod regular_file;
pub mod runtime;
pub mod snapstart;
pub mod stream;
pub mod supervisor;
pub mod task;
pub mod tmp_dir;

pub use cancel::Cancel;
pub use config::{Compress, Config, CopyApp, InvokeMode, Transport};
pub use engine::Engine;
pub use error::{Error, ErrorKind};
pub use invocation::{Function, Invocation};
