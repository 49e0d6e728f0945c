//! The [`Rule`] trait and [`FnRule`], the shape of every rule
//! (the registry that lists them is in `rules/`).

use crate::context::Context;
use crate::diagnostic::{Diagnostics, Severity};

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// One of hadolint's DL rules (same code, severity and message).
    Hadolint,
    /// One of BuildKit's checks (`docker build --check`), by its name.
    BuildKit,
}

/// A check over one Dockerfile.
///
/// A rule is stateless: [`Rule::check`] walks the file (through the
/// [`Context`], which holds the parsed Dockerfile and each RUN's parsed
/// script) and reports lines into [`Diagnostics`], which already knows the
/// rule's code, severity and default message. Configuration (ignores,
/// severity overrides, pragmas) is applied afterwards by [`crate::lint`].
pub trait Rule: Send + Sync {
    /// The code (`DL3008`) or BuildKit check name (`StageNameCasing`).
    fn code(&self) -> &'static str;
    /// The default severity; [`Severity::Ignore`] means off by default.
    fn severity(&self) -> Severity;
    /// The message reported, unless the rule gives one per finding.
    fn message(&self) -> &'static str;
    /// Who defined the rule.
    fn origin(&self) -> Origin;
    /// Reports this rule's findings for one file.
    fn check(&self, cx: &Context<'_>, out: &mut Diagnostics);
}

/// A rule made of a code, a severity, a message and a function.
#[derive(Clone, Copy)]
pub(crate) struct FnRule {
    pub code: &'static str,
    pub severity: Severity,
    pub message: &'static str,
    pub origin: Origin,
    pub check: fn(&Context<'_>, &mut Diagnostics),
}

impl Rule for FnRule {
    fn code(&self) -> &'static str {
        self.code
    }
    fn severity(&self) -> Severity {
        self.severity
    }
    fn message(&self) -> &'static str {
        self.message
    }
    fn origin(&self) -> Origin {
        self.origin
    }
    fn check(&self, cx: &Context<'_>, out: &mut Diagnostics) {
        (self.check)(cx, out)
    }
}
