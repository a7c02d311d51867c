//! Why the app's server did not boot, read from what it printed: the line a boot error leads with,
//! and, for a cause megamode recognises (a missing variable, secret key or master key), what the
//! app needs and what to do on Lambda. The runtime reads its server's output with it, and the
//! build its boot's (through the binding's `Native.boot_cause`), which words what to do for the
//! build itself from `Need`.
//!
//! The cause is, in this order: puma's `Unable to load application: <Class>: <message>` (when that
//! is only `SystemExit`, as after Rails' `abort`: the line the app said why in, which is a line
//! megamode recognises wherever it is, as stderr and stdout are read apart, else the line before,
//! else the one after); else the first exception Ruby printed (`path:line:in 'meth': message
//! (Class)`, with either quote, Ruby 3.1 to 3.4), not a later `from` frame; else a line that names
//! an exception class and its message.

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use regex_lite::Regex;

/// Lines of a message kept after its first (a syntax error's excerpt of the code).
const MORE_LINES: usize = 8;
/// A line of the cause longer than this is cut.
const MAX_LINE: usize = 1000;
/// puma's line (5 and 6, single and cluster mode) for an app that raised while it loaded.
const PUMA_UNABLE: &str = "Unable to load application: ";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `Class: message`, with the further lines of a message of several lines; paths in the app
    /// are relative to its root.
    pub text: String,
    /// Where in the app it was raised (`config/initializers/env.rb:3`), when the text does not
    /// already say where.
    pub place: Option<String>,
    /// What the app needs, for a cause megamode recognises.
    pub need: Option<Need>,
}

/// What an app that did not boot needs, as megamode recognises it in the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// A variable `ENV.fetch` read, not set (its name).
    Variable(String),
    /// Rails' `secret_key_base`.
    SecretKeyBase,
    /// Rails' master key, to decrypt the credentials with.
    MasterKey,
    /// Another master key: the one given does not decrypt the credentials.
    RightMasterKey,
}

impl Need {
    /// What to do about it on Lambda.
    pub fn advice(&self) -> String {
        let master_key = "give the template's RailsMasterKey parameter (RAILS_MASTER_KEY) what config/master.key holds";
        match self {
            Need::Variable(name) => format!(
                "set {name} in the function's environment (the template's Environment: Variables)"
            ),
            Need::SecretKeyBase => "give the template's SecretKeyBase parameter (SECRET_KEY_BASE), e.g. from `bin/rails secret`".to_string(),
            Need::MasterKey => master_key.to_string(),
            Need::RightMasterKey => {
                format!("the master key does not decrypt the credentials: {master_key}")
            }
        }
    }
}

impl Cause {
    /// What to do about it on Lambda, for a cause megamode recognises.
    pub fn advice(&self) -> Option<String> {
        self.need.as_ref().map(Need::advice)
    }

    /// The cause without the advice: its text, with the place after the first line.
    pub fn line(&self) -> String {
        match (&self.place, self.text.split_once('\n')) {
            (None, _) => self.text.clone(),
            (Some(place), Some((first, more))) => format!("{first} ({place})\n{more}"),
            (Some(place), None) => format!("{} ({place})", self.text),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())?;
        if let Some(advice) = self.advice() {
            write!(f, "\nOn Lambda: {advice}.")?;
        }
        Ok(())
    }
}

/// The cause in `lines` (what the server printed, oldest first), for the app at `app`.
pub fn find(lines: &[String], app: &Path) -> Option<Cause> {
    let app = format!("{}/", app.display().to_string().trim_end_matches('/'));
    let found = from_puma(lines)
        .or_else(|| from_ruby(lines))
        .or_else(|| from_any(lines))?;
    let text = found.text.replace(&app, "");
    let place = match found.raised {
        // A syntax error's message says where already.
        _ if names_a_place(&text) => None,
        Some(at) => app_frame(&lines[at..], &app),
        None => None,
    };
    let need = need(&text, found.method.as_deref());
    Some(Cause { text, place, need })
}

struct Found {
    text: String,
    /// The index of Ruby's line for the exception, where its backtrace starts.
    raised: Option<usize>,
    /// The method that raised, as Ruby named it (`fetch`, `Hash#fetch`).
    method: Option<String>,
}

/// `path:line:in 'meth': message (Class)`, Ruby's first line for an exception (backticks before
/// 3.4); the `in` part is missing for code outside any method in some versions.
fn raised_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(\S+?):(\d+):(?:in [`']([^`']*)':)? ?(.*) \(([A-Z]\w*(?:::[A-Z]\w*)*)\)$")
            .expect("a valid pattern")
    })
}

/// `Class: message` anywhere in a line, for a class that is an exception by its name.
fn class_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?:^|[^\w:])((?:[A-Z]\w*::)*[A-Z]\w*(?:Error|Exception)|Errno::E[A-Z0-9]+|(?:[A-Z]\w*::)+Invalid\w*): (\S.*)$",
        )
        .expect("a valid pattern")
    })
}

fn from_puma(lines: &[String]) -> Option<Found> {
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find(PUMA_UNABLE) else {
            continue;
        };
        let rest = &line[at + PUMA_UNABLE.len()..];
        if rest == "SystemExit: exit" || rest.starts_with("SystemExit: exit ") {
            // The app exited (Rails' `abort`) after saying why: in a line megamode recognises
            // (on stderr, which may come before or after puma's line on stdout), else the line
            // before, else the one after.
            let said = lines
                .iter()
                .find(|l| !is_frame(l) && need(l.trim(), None).is_some())
                .or_else(|| lines[..i].iter().rev().find(|l| !is_server_chatter(l)))
                .or_else(|| {
                    lines[i + 1..]
                        .iter()
                        .find(|l| !is_server_chatter(l) && !is_frame(l))
                });
            if let Some(said) = said {
                return Some(Found {
                    text: cut(said.trim()),
                    raised: None,
                    method: None,
                });
            }
            continue;
        }
        // Ruby's own line for it, on the other pipe (stderr), may come before or after.
        let raised_at = lines[i + 1..]
            .iter()
            .position(|l| raised(l).is_some())
            .map(|p| i + 1 + p)
            .or_else(|| lines[..i].iter().position(|l| raised(l).is_some()));
        let method = raised_at
            .and_then(|r| raised(&lines[r])?.get(3))
            .map(|m| m.as_str().to_string());
        return Some(Found {
            text: with_more(rest, &lines[i + 1..]),
            raised: raised_at,
            method,
        });
    }
    None
}

/// Ruby's line for an exception, not a warning (`file.rb:3: warning: ... (Deprecated)`).
fn raised(line: &str) -> Option<regex_lite::Captures<'_>> {
    raised_re().captures(line).filter(|caps| {
        !caps
            .get(4)
            .is_some_and(|m| m.as_str().starts_with("warning: "))
    })
}

fn from_ruby(lines: &[String]) -> Option<Found> {
    lines.iter().enumerate().find_map(|(i, line)| {
        let caps = raised(line)?;
        let message = caps.get(4).map_or("", |m| m.as_str());
        let first = format!("{}: {message}", &caps[5]);
        Some(Found {
            text: with_more(&first, &lines[i + 1..]),
            raised: Some(i),
            method: caps.get(3).map(|m| m.as_str().to_string()),
        })
    })
}

fn from_any(lines: &[String]) -> Option<Found> {
    lines.iter().find_map(|line| {
        if is_frame(line) {
            return None;
        }
        let text = match class_re().captures(line) {
            Some(caps) => format!("{}: {}", &caps[1], &caps[2]),
            // A line megamode can explain, without a class (a message printed before an exit).
            None if need(line, None).is_some() => line.trim().to_string(),
            None => return None,
        };
        Some(Found {
            text: cut(&text),
            raised: None,
            method: None,
        })
    })
}

/// `first`, and the lines after it that continue its message: up to an empty line, a frame or the
/// next exception, at most `MORE_LINES`.
fn with_more(first: &str, after: &[String]) -> String {
    let mut text = cut(first);
    for line in after
        .iter()
        .take_while(|l| {
            !l.trim().is_empty()
                && !is_frame(l)
                && raised(l).is_none()
                && !l.contains(PUMA_UNABLE)
                // Bundler's own line when the command it ran failed, which stdout can put between
                // the message's lines on stderr.
                && !l.starts_with("bundler: ")
        })
        .take(MORE_LINES)
    {
        text.push('\n');
        text.push_str(&cut(line));
    }
    text
}

/// A line of a backtrace: `\tfrom path:line:in ...`.
fn is_frame(line: &str) -> bool {
    line.trim_start().starts_with("from ") && line.starts_with(char::is_whitespace)
}

/// puma's own lines around a boot: its banner (`* Min threads: 5`, `Puma starting in ...`), its
/// `! ...` notices, `[pid]` prefixes in cluster mode, and empty lines.
fn is_server_chatter(line: &str) -> bool {
    let line = match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
        Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => line,
    };
    let line = line.trim();
    line.is_empty()
        || line.starts_with('*')
        || line.starts_with("! ")
        || line.starts_with("- ")
        || line.starts_with("Puma starting")
        || line.starts_with("Use Ctrl-C")
}

/// Whether a message names a file and line already (`config/routes.rb:4: syntax error ...`).
fn names_a_place(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\.(?:rb|ru|erb|yml):\d+").expect("a valid pattern"))
        .is_match(text)
}

/// The first place in the app's own files in the backtrace that starts at `lines[0]` (Ruby's line
/// for the exception, then its `from` frames), relative to the app's root (`app`, with its slash).
fn app_frame(lines: &[String], app: &str) -> Option<String> {
    let frames = lines.iter().take(1).chain(
        lines
            .iter()
            .skip(1)
            .skip_while(|l| !is_frame(l))
            .take_while(|l| is_frame(l)),
    );
    frames.enumerate().find_map(|(n, line)| {
        let line = line.trim_start();
        let line = line.strip_prefix("from ").unwrap_or(line);
        let mut parts = line.splitn(3, ':');
        let (path, number) = (parts.next()?, parts.next()?);
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let relative = match path.strip_prefix(app) {
            Some(relative) => relative,
            // Relative to the server's directory, the app's root; `-e` and Ruby's
            // `<internal:...>` are no file of the app's.
            None if !path.starts_with(['/', '-', '<']) => path,
            None => return None,
        };
        // A Rails app's config.ru only requires the app: as a frame, the place says nothing; as
        // where it was raised (a Rack app's own code), it does.
        (relative != "config.ru" || n == 0).then(|| format!("{relative}:{number}"))
    })
}

/// What the app needs, for a cause megamode recognises.
fn need(text: &str, method: Option<&str>) -> Option<Need> {
    static KEY: OnceLock<Regex> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        Regex::new(r#"^KeyError: key not found: "([A-Z][A-Z0-9_]*)"$"#).expect("a valid pattern")
    });
    let first = text.lines().next().unwrap_or("");
    // ENV.fetch; Ruby 3.4 names a Hash's own `Hash#fetch`.
    if let Some(caps) = key.captures(first) {
        if !method.is_some_and(|m| m.contains('#')) {
            return Some(Need::Variable(caps[1].to_string()));
        }
    }
    if first.contains("secret_key_base") && first.to_ascii_lowercase().contains("missing") {
        return Some(Need::SecretKeyBase);
    }
    if first.contains("Missing encryption key")
        || first.contains("MissingKeyError")
        || first.contains("RAILS_MASTER_KEY")
    {
        return Some(Need::MasterKey);
    }
    if first.contains("MessageEncryptor::InvalidMessage") || first.contains("InvalidKeyLengthError")
    {
        return Some(Need::RightMasterKey);
    }
    None
}

/// `line`, cut at `MAX_LINE` bytes.
fn cut(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [...]", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output, captured on Debian 12 (puma 5.6, Rails 6.1, Ruby 3.1) and from Lambda's Ruby 3.3
    /// and 3.4, with the app at /tmp/megamode/app-b1 (see testdata/boot).
    macro_rules! sample {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/testdata/boot/",
                $name,
                ".txt"
            ))
        };
    }

    const APP: &str = "/tmp/megamode/app-b1";

    fn cause(output: &str) -> Option<Cause> {
        let lines: Vec<String> = output.lines().map(str::to_string).collect();
        find(&lines, Path::new(APP))
    }

    #[test]
    fn a_routes_typo_is_the_syntax_error_with_its_code() {
        let cause = cause(sample!("puma5-rails61-routes-typo")).unwrap();
        assert_eq!(
            cause.to_string(),
            "SyntaxError: config/routes.rb:4: syntax error, unexpected symbol literal, expecting `do' or '{' or '('\n  resourcs :comments\n           ^"
        );
        assert_eq!(cause.place, None, "the message says where");
        assert_eq!(cause.advice(), None);
    }

    #[test]
    fn an_unset_variable_read_with_env_fetch_says_where_to_set_it() {
        let cause = cause(sample!("puma5-rails61-env-fetch")).unwrap();
        assert_eq!(
            cause.to_string(),
            "KeyError: key not found: \"UNSET_PAYMENTS_API_KEY\" (config/initializers/megamode_test.rb:1)\n\
             On Lambda: set UNSET_PAYMENTS_API_KEY in the function's environment (the template's Environment: Variables)."
        );
    }

    #[test]
    fn rails_missing_secret_key_base_names_the_parameter() {
        let cause = cause(sample!("puma5-rails61-no-secret-key-base")).unwrap();
        assert!(
            cause.to_string().starts_with(
                "ArgumentError: Missing `secret_key_base` for 'production' environment, set this string with `bin/rails credentials:edit` (config/initializers/megamode_test.rb:1)\n\
                 On Lambda: give the template's SecretKeyBase parameter (SECRET_KEY_BASE)"
            ),
            "{cause}"
        );
    }

    #[test]
    fn a_missing_master_key_is_the_line_rails_printed_before_it_exited() {
        let cause = cause(sample!("puma5-rails61-no-master-key")).unwrap();
        assert_eq!(
            cause.text,
            "Missing encryption key to decrypt file with. Ask your team for your master key and write it to config/master.key or put it in the ENV['RAILS_MASTER_KEY']."
        );
        assert!(cause
            .advice()
            .unwrap()
            .starts_with("give the template's RailsMasterKey parameter (RAILS_MASTER_KEY)"));
    }

    #[test]
    fn the_master_key_rails_printed_after_pumas_line_is_the_cause_too() {
        // stderr (Rails' line) and stdout (puma's) are read apart: Rails' may come after, with
        // other lines of the server's in between, and before neither.
        let output = "Puma starting in single mode...\n\
                      * Environment: production\n\
                      ! Unable to load application: SystemExit: exit\n\
                      bundler: failed to load command: puma (/usr/bin/puma)\n\
                      Missing encryption key to decrypt file with. Ask your team for your master key.\n";
        let found = cause(output).unwrap();
        assert_eq!(
            found.text,
            "Missing encryption key to decrypt file with. Ask your team for your master key."
        );
        assert_eq!(found.need, Some(Need::MasterKey));
        // Nothing megamode recognises: the line before puma's, else the one after.
        let before = "* Environment: production\nit went wrong\n! Unable to load application: SystemExit: exit\nbye";
        assert_eq!(cause(before).unwrap().text, "it went wrong");
        let after = "* Environment: production\n! Unable to load application: SystemExit: exit\n\tfrom x.rb:1\nbye";
        assert_eq!(cause(after).unwrap().text, "bye");
    }

    #[test]
    fn a_wrong_master_key_is_the_decryption_error() {
        let cause = cause(sample!("puma5-rails61-wrong-master-key")).unwrap();
        assert_eq!(
            cause.text,
            "ActiveSupport::MessageEncryptor::InvalidMessage: ActiveSupport::MessageEncryptor::InvalidMessage"
        );
        // The first frame in the app's files, not the gem's that raised.
        assert_eq!(
            cause.place.as_deref(),
            Some("config/initializers/megamode_test.rb:1")
        );
        assert!(cause
            .advice()
            .unwrap()
            .contains("the template's RailsMasterKey parameter (RAILS_MASTER_KEY)"));
    }

    #[test]
    fn without_puma_the_first_exception_ruby_printed_in_33_and_34_formats() {
        for sample in [sample!("ruby33-env-fetch"), sample!("ruby34-env-fetch")] {
            let cause = cause(sample).unwrap();
            assert_eq!(
                cause.text,
                "KeyError: key not found: \"UNSET_PAYMENTS_API_KEY\""
            );
            assert_eq!(
                cause.place.as_deref(),
                Some("config/initializers/keys.rb:2")
            );
            assert_eq!(
                cause.need,
                Some(Need::Variable("UNSET_PAYMENTS_API_KEY".to_string()))
            );
        }
        let cause33 = cause(sample!("ruby33-syntax-error")).unwrap();
        assert_eq!(
            cause33.text,
            "SyntaxError: config/routes.rb:4: syntax error, unexpected symbol literal, expecting `do' or '{' or '('\n  resourcs :comments\n           ^"
        );
        let cause34 = cause(sample!("ruby34-syntax-error")).unwrap();
        assert_eq!(
            cause34.text,
            "SyntaxError: config/routes.rb:4: syntax error found\n  2 | def draw\n  3 |   get \"/a\", to: \"b#c\",\n> 4 |   resourcs :comments\n    |           ^ expected a `=>` between the hash key and value\n  5 | end"
        );
    }

    #[test]
    fn the_first_exception_not_a_later_one_nor_a_frame() {
        let output = "booting\n\
                      /app/a.rb:3:in `load': first (RuntimeError)\n\
                      \tfrom /app/b.rb:9:in `x': not this (ArgumentError)\n\
                      /app/c.rb:1:in `y': nor this (NameError)";
        assert_eq!(cause(output).unwrap().text, "RuntimeError: first");
    }

    #[test]
    fn the_place_is_a_file_of_the_apps_wherever_rubys_line_is() {
        // puma's line on stdout after Ruby's on stderr (each pipe is read by itself); a frame in
        // Ruby's own `<internal:...>` code is no place in the app.
        let output = "loading the broken app\n\
                      <internal:/usr/lib/ruby/vendor_ruby/rubygems/core_ext/kernel_require.rb>:85:in `require': cannot load such file -- nope (LoadError)\n\
                      \tfrom <internal:/usr/lib/ruby/vendor_ruby/rubygems/core_ext/kernel_require.rb>:85:in `require'\n\
                      \tfrom /tmp/megamode/app-b1/config/application.rb:7:in `<top (required)>'\n\
                      Puma starting in single mode...\n\
                      ! Unable to load application: LoadError: cannot load such file -- nope";
        let cause = cause(output).unwrap();
        assert_eq!(
            cause.to_string(),
            "LoadError: cannot load such file -- nope (config/application.rb:7)"
        );
    }

    #[test]
    fn a_rack_apps_config_ru_that_raised_is_the_place_but_not_as_a_frame() {
        let raised = "/tmp/megamode/app-b1/config.ru:1:in `block in <main>': no such region (ArgumentError)\n\
                      \tfrom /gems/rack/builder.rb:116:in `eval'\n\
                      ! Unable to load application: ArgumentError: no such region";
        assert_eq!(
            cause(raised).unwrap().line(),
            "ArgumentError: no such region (config.ru:1)"
        );
        let required = "/gems/x.rb:3:in `boot': no database (RuntimeError)\n\
                        \tfrom /tmp/megamode/app-b1/config.ru:3:in `<main>'";
        assert_eq!(cause(required).unwrap().place, None);
    }

    #[test]
    fn the_line_is_the_cause_without_the_advice_with_the_place_on_its_first_line() {
        let cause = Cause {
            text: "SyntaxError: oops\n  code\n  ^".to_string(),
            place: Some("config/routes.rb:4".to_string()),
            need: Some(Need::SecretKeyBase),
        };
        assert_eq!(
            cause.line(),
            "SyntaxError: oops (config/routes.rb:4)\n  code\n  ^"
        );
        assert!(cause
            .to_string()
            .starts_with(&format!("{}\nOn Lambda: give", cause.line())));
    }

    #[test]
    fn bundlers_line_is_not_part_of_the_message() {
        let output = "/tmp/megamode/app-b1/config/initializers/keys.rb:1:in 'fetch': key not found: \"API_KEY\" (KeyError)\n\
                      bundler: failed to load command: puma (/usr/local/bundle/bin/puma)\n\
                      \tfrom /tmp/megamode/app-b1/config/initializers/keys.rb:1:in '<top (required)>'\n";
        let cause = cause(output).unwrap().to_string();
        assert!(!cause.contains("bundler:"), "{cause}");
        assert!(
            cause.contains("set API_KEY in the function's environment"),
            "{cause}"
        );
    }

    #[test]
    fn a_warning_is_no_cause() {
        let output = "/gems/x.rb:10: warning: URI.escape is obsolete (Deprecated)\n\
                      /app/a.rb:3:in `load': the real one (RuntimeError)";
        assert_eq!(cause(output).unwrap().text, "RuntimeError: the real one");
    }

    #[test]
    fn a_hash_fetch_in_ruby_34_is_no_variable_to_set() {
        let output =
            "/tmp/megamode/app-b1/x.rb:1:in 'Hash#fetch': key not found: \"HOST\" (KeyError)";
        let cause = cause(output).unwrap();
        assert_eq!(cause.text, "KeyError: key not found: \"HOST\"");
        assert_eq!(cause.advice(), None);
    }

    #[test]
    fn else_a_line_with_an_exception_class_and_its_message() {
        let output = "starting\nERROR: boot failed\n  Errno::ECONNREFUSED: Connection refused - connect(2)\nbye";
        assert_eq!(
            cause(output).unwrap().text,
            "Errno::ECONNREFUSED: Connection refused - connect(2)"
        );
        assert_eq!(cause("starting\nERROR: it failed\nbye"), None);
        assert_eq!(cause(""), None);
    }

    #[test]
    fn a_long_line_is_cut() {
        let output = format!("/a.rb:1:in `x': {} (RuntimeError)", "y".repeat(5000));
        assert!(cause(&output).unwrap().text.len() < MAX_LINE + 10);
    }
}
