//! Findings: [`Severity`], [`Diagnostic`] and the [`Diagnostics`] collector
//! rules write into.

use std::fmt;
use std::str::FromStr;

/// How serious a finding is, in hadolint's order: `Error` is the most
/// serious and `Ignore` means "drop it".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something is wrong.
    Error,
    /// Something is probably wrong.
    Warning,
    /// Worth knowing.
    Info,
    /// A matter of style.
    Style,
    /// Not reported.
    Ignore,
}

impl Severity {
    /// The lower-case name hadolint prints (`warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Style => "style",
            Severity::Ignore => "ignore",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is not one of hadolint's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected error, warning, info, style, ignore or none)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    /// Parses `error`, `warning`, `info`, `style`, `ignore` or `none`
    /// (hadolint treats `none` as `ignore`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Severity::Error),
            "warning" => Ok(Severity::Warning),
            "info" => Ok(Severity::Info),
            "style" => Ok(Severity::Style),
            "ignore" | "none" => Ok(Severity::Ignore),
            _ => Err(UnknownSeverity(s.to_string())),
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// The rule code (`DL3008`, `DL1000`, `StageNameCasing`).
    pub code: String,
    /// The severity after configuration was applied.
    pub severity: Severity,
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// 1-based column: 1, except for parse errors.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The file name as given to [`crate::lint_file`] (`-` for stdin).
    pub file: String,
}

/// The collector a [`crate::Rule`] reports into. The registry tells it
/// which rule is running, so a rule only gives the line (and, for rules
/// whose message varies, the message).
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    code: &'static str,
    severity: Option<Severity>,
    message: &'static str,
}

impl Diagnostics {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `rule` the one later findings are attributed to.
    pub(crate) fn begin(&mut self, code: &'static str, severity: Severity, message: &'static str) {
        self.code = code;
        self.severity = Some(severity);
        self.message = message;
    }

    /// Reports the running rule's default message at `line`.
    pub fn at(&mut self, line: usize) {
        self.at_with(line, self.message.to_string());
    }

    /// Reports the running rule at `line` with its own `message`.
    pub fn at_with(&mut self, line: usize, message: String) {
        self.items.push(Diagnostic {
            code: self.code.to_string(),
            severity: self.severity.unwrap_or(Severity::Warning),
            line,
            column: 1,
            message,
            file: String::new(),
        });
    }

    /// Adds a finding as it is.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// The findings so far.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.items
    }

    /// The findings.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}
