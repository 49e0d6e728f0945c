//! What the user configures: ignored rules, severity overrides, trusted
//! registries and the failure threshold.

use crate::diagnostic::Severity;
use crate::format::Format;
use crate::shellcheck::ShellCheck;
use std::collections::BTreeMap;

/// Lint settings; `Config::default()` is hadolint with no config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Codes never reported (`DL3008`, `SC2086`, `StageNameCasing`).
    pub ignored: Vec<String>,
    /// Severity per code, replacing the rule's default. Overriding a rule
    /// that is off by default (DL1001, DL3057) turns it on.
    pub overrides: BTreeMap<String, Severity>,
    /// Registries FROM images may come from (DL3026); empty turns DL3026 off.
    /// `*` matches anything, `*.x` a suffix and `x*` a prefix.
    pub trusted_registries: Vec<String>,
    /// Findings at this severity or more serious make [`crate::is_failure`]
    /// true (hadolint's default is `info`).
    pub failure_threshold: Severity,
    /// Never fail.
    pub no_fail: bool,
    /// Ignore `# hadolint ignore=` pragmas of every kind.
    pub disable_ignore_pragma: bool,
    /// The report format asked for by a config file (`format:`).
    pub format: Option<Format>,
    /// Never colour the tty format.
    pub no_color: bool,
    /// `label-schema`: label name -> type (`text`, `url`, `semver`, ...).
    pub label_schema: BTreeMap<String, String>,
    /// `strict-labels`: DL3050 reports labels not in the schema.
    pub strict_labels: bool,
    /// Run ShellCheck on every RUN and report its SC findings (off unless
    /// set; [`ShellCheck::find`] looks on `PATH`).
    pub shellcheck: Option<ShellCheck>,
    /// The build context's `.dockerignore`, for BuildKit's CopyIgnoredFile
    /// check (off when `None`).
    pub dockerignore: Option<crate::DockerIgnore>,
    /// What the base images are known to hold, for BuildKit's UndefinedVar
    /// (exact where the image's ENV is known) and InvalidBaseImagePlatform
    /// (off when `None`); see [`crate::base_refs`].
    pub base_images: Option<crate::BaseImages>,
    /// `verbose`: the caller says what it read and resolved (on stderr).
    pub verbose: bool,
    /// Run only the rules of this origin (`kiln build` runs BuildKit's
    /// checks alone); `None` runs every rule.
    pub only: Option<crate::Origin>,
    /// A `check=` directive value that replaces the file's own (BuildKit's
    /// `BUILDKIT_DOCKERFILE_CHECK` build argument).
    pub check_directive: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ignored: Vec::new(),
            overrides: BTreeMap::new(),
            trusted_registries: Vec::new(),
            failure_threshold: Severity::Info,
            no_fail: false,
            disable_ignore_pragma: false,
            format: None,
            no_color: false,
            label_schema: BTreeMap::new(),
            strict_labels: false,
            shellcheck: None,
            dockerignore: None,
            base_images: None,
            verbose: false,
            only: None,
            check_directive: None,
        }
    }
}

impl Config {
    /// Turns BuildKit's checks on or off as a group: off, only hadolint's
    /// rules (and ShellCheck's) are reported and count toward the exit
    /// status, so a CI gate that passed with hadolint passes with kiln.
    pub fn set_buildkit_checks(&mut self, on: bool) {
        self.only = if on {
            None
        } else {
            Some(crate::Origin::Hadolint)
        };
    }

    /// True when `code` is in the ignore list.
    pub fn is_ignored(&self, code: &str) -> bool {
        self.ignored.iter().any(|c| c == code)
    }

    /// The severity `code` is reported at, given its default.
    pub fn severity_of(&self, code: &str, default: Severity) -> Severity {
        self.overrides.get(code).copied().unwrap_or(default)
    }
}
