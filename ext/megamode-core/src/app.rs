//! What kind of app lives in a directory, judged from its files alone.

use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    Rails,
    Rack,
}

impl AppKind {
    /// Rails apps are recognised by the two files every Rails app boots from; anything else that
    /// has a config.ru is plain Rack (Sinatra, Hanami, Roda, ...).
    pub fn detect(root: &Path) -> AppKind {
        let config = root.join("config");
        if config.join("application.rb").is_file() && config.join("environment.rb").is_file() {
            AppKind::Rails
        } else {
            AppKind::Rack
        }
    }

    pub fn log_prefix(self) -> &'static str {
        match self {
            AppKind::Rails => "Rails",
            AppKind::Rack => "Rack",
        }
    }
}
