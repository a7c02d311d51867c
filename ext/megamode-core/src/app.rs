//! What kind of app lives in a directory, judged from its files alone. This is megamode's one rule
//! for "is this a Rails app": the log prefix follows it, and so does the packager (through the
//! binding), so a build and the app it packaged never disagree. And the app's `Gemfile.lock`, which
//! a launch reads once (`App`) for what it says about the app's gems.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use crate::regular_file::{self, Links};

/// The most bytes read from an app's `config/application.rb`: a Rails app's has a few KB.
const SOURCE_MAX: u64 = 1024 * 1024;
/// The most bytes read from an app's `Gemfile.lock`: a large Rails app's has a few hundred KB.
const LOCKFILE_MAX: u64 = 16 * 1024 * 1024;

/// An app's directory, and its `Gemfile.lock` read at most once however many parts of a launch ask
/// about it (whether it uses bootsnap, whether its server is puma), and only when one does.
#[derive(Clone, Debug)]
pub struct App {
    pub root: PathBuf,
    lockfile: OnceCell<Option<String>>,
}

impl App {
    pub fn new(root: impl Into<PathBuf>) -> App {
        App {
            root: root.into(),
            lockfile: OnceCell::new(),
        }
    }

    /// The app's `Gemfile.lock`, when it has one to read. Links are followed (a checkout may have
    /// one); what is read is a regular file, up to `LOCKFILE_MAX` (so a FIFO or `/dev/zero` in its
    /// place counts as no lockfile, not a hang or an allocation that aborts).
    pub fn lockfile(&self) -> Option<&str> {
        self.lockfile
            .get_or_init(|| {
                let path = self.root.join("Gemfile.lock");
                regular_file::read_text(&path, Links::Follow, LOCKFILE_MAX).ok()
            })
            .as_deref()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    Rails,
    Rack,
}

impl AppKind {
    /// A Rails app has a `config/application.rb` that defines a `Rails::Application` subclass
    /// (the file every Rails app boots from); anything else is plain Rack (Sinatra, Hanami, Roda,
    /// ...), including other frameworks' `config/application.rb`.
    pub fn detect(root: &Path) -> AppKind {
        let application = root.join("config").join("application.rb");
        match regular_file::read_text(&application, Links::Follow, SOURCE_MAX) {
            Ok(source) if defines_rails_application(&source) => AppKind::Rails,
            _ => AppKind::Rack,
        }
    }

    pub fn log_prefix(self) -> &'static str {
        match self {
            AppKind::Rails => "Rails",
            AppKind::Rack => "Rack",
        }
    }
}

/// Whether `source` subclasses `Rails::Application` (`< Rails::Application` or
/// `< ::Rails::Application`, the whole name).
fn defines_rails_application(source: &str) -> bool {
    const NAME: &str = "Rails::Application";
    source.match_indices(NAME).any(|(at, _)| {
        let whole =
            !source[at + NAME.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let before = source[..at].strip_suffix("::").unwrap_or(&source[..at]);
        whole && before.trim_end().ends_with('<')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rails_app_is_one_whose_application_subclasses_rails_application() {
        let rails = [
            "module Blog\n  class Application < Rails::Application\n  end\nend\n",
            "class App <  ::Rails::Application; end",
            "class App <\n  Rails::Application\nend",
        ];
        for source in rails {
            assert!(defines_rails_application(source), "{source:?}");
        }
        let not_rails = [
            "",
            "require 'rails/all'\n# Rails::Application is configured below\n",
            "class App < Rails::ApplicationBase; end",
            "class App < Hanami::App; end",
            "x = Rails::Application",
        ];
        for source in not_rails {
            assert!(!defines_rails_application(source), "{source:?}");
        }
    }

    #[test]
    fn the_kind_comes_from_config_application_rb_alone() {
        let dir = std::env::temp_dir().join(format!("megamode-app-kind-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("config")).unwrap();
        assert_eq!(AppKind::detect(&dir), AppKind::Rack);
        // Without config/environment.rb still Rails: the class is what says so.
        std::fs::write(
            dir.join("config/application.rb"),
            "module Blog\n  class Application < Rails::Application\n  end\nend\n",
        )
        .unwrap();
        assert_eq!(AppKind::detect(&dir), AppKind::Rails);
        assert_eq!(AppKind::detect(&dir).log_prefix(), "Rails");
        std::fs::write(dir.join("config/application.rb"), "# not Rails\n").unwrap();
        std::fs::write(dir.join("config/environment.rb"), "").unwrap();
        assert_eq!(AppKind::detect(&dir), AppKind::Rack);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_lockfile_is_read_once_when_first_asked_for() {
        let dir = std::env::temp_dir().join(format!("megamode-app-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let app = App::new(&dir);
        std::fs::write(
            dir.join("Gemfile.lock"),
            "GEM\n  specs:\n    puma (6.4.0)\n",
        )
        .unwrap();
        assert_eq!(app.lockfile(), Some("GEM\n  specs:\n    puma (6.4.0)\n"));
        std::fs::remove_file(dir.join("Gemfile.lock")).unwrap();
        assert!(app.lockfile().is_some(), "not read again");
        assert_eq!(App::new(&dir).lockfile(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
