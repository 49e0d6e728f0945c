//! The error type of shell-word expansion.

/// Why a word could not be expanded.
///
/// The `Display` texts are BuildKit's (`frontend/dockerfile/shell/lex.go`),
/// without its outer `failed to process "<word>": ` wrapper. Every variant
/// carries `offset`, the byte offset in the input word of the construct that
/// failed: the `$` of the failing `${…}` substitution, or the opening quote of
/// an unterminated quoted part. [`ShellError::offset`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    /// `${` is followed by `}`, `:` or `{` (`${}`, `${:-x}`, `${{x}`).
    #[error("syntax error: bad substitution")]
    BadSubstitution {
        /// The substitution text from `$` up to the offending character,
        /// e.g. `${}` or `${:`.
        word: String,
        /// Byte offset of the `$`.
        offset: usize,
    },
    /// The word ends inside a `${…}` substitution.
    #[error("syntax error: missing '}}'")]
    MissingClosingBrace {
        /// Byte offset of the `$` of the unterminated substitution.
        offset: usize,
    },
    /// The word ends inside the pattern of `${name/pattern/replacement}`.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash {
        /// Byte offset of the `$` of the substitution.
        offset: usize,
    },
    /// A modifier BuildKit does not support, such as `${a:=b}`, `${a=b}`,
    /// `${a:b}`, `${a:#b}` or `${.}`.
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The modifier text as BuildKit reports it, e.g. `:=`, `=`, `:#`.
        modifier: String,
        /// Byte offset of the `$` of the substitution.
        offset: usize,
    },
    /// A `'…'` or `"…"` part is not closed before the end of the word.
    #[error("unexpected end of statement while looking for matching {}", quote_name(*.quote))]
    UnterminatedQuote {
        /// The quote character, `'` or `"`.
        quote: char,
        /// Byte offset of the opening quote.
        offset: usize,
    },
    /// `${name?msg}` or `${name:?msg}` with `name` unset.
    #[error("{name}: {message}")]
    VariableUnset {
        /// The variable name.
        name: String,
        /// The expanded custom message, or `is not allowed to be unset`.
        message: String,
        /// Byte offset of the `$` of the substitution.
        offset: usize,
    },
    /// `${name:?msg}` with `name` set to the empty string.
    #[error("{name}: {message}")]
    VariableEmpty {
        /// The variable name.
        name: String,
        /// The expanded custom message, or `is not allowed to be empty`.
        message: String,
        /// Byte offset of the `$` of the substitution.
        offset: usize,
    },
    /// The pattern of `#`, `##`, `%`, `%%`, `/` or `//` has an escape other
    /// than `\*`, `\?`, `\\`, `\}` or `\/`.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern after expansion (without the second `#`/`%` of a
        /// longest-match operator).
        pattern: String,
        /// What is wrong with it, e.g. `invalid escape '\x'`.
        reason: String,
        /// Byte offset of the `$` of the substitution.
        offset: usize,
    },
    /// `${…}` substitutions are nested deeper than the lexer allows
    /// (a guard against stack exhaustion; BuildKit has no such limit).
    #[error("substitutions nested deeper than {limit} levels")]
    TooDeeplyNested {
        /// The nesting limit that was exceeded.
        limit: usize,
        /// Byte offset of the `$` that exceeded it.
        offset: usize,
    },
    /// Expansion made a word longer than the lexer allows (a guard
    /// against memory exhaustion, e.g. `ENV A=${A}${A}` repeated; BuildKit
    /// has no such limit). Words written that long are accepted as they are.
    #[error("expanded word is longer than {limit} bytes")]
    TooLong {
        /// The size limit in bytes.
        limit: usize,
        /// Byte offset of the `$` whose expansion exceeded it.
        offset: usize,
    },
    /// A `#`, `%` or `/` substitution whose pattern and value are so long
    /// that matching one against the other would take more than `limit`
    /// steps (pattern bytes times value bytes; BuildKit has no such limit).
    #[error("pattern and value of the substitution are too long to match (over {limit} steps)")]
    PatternTooCostly {
        /// The step limit.
        limit: usize,
        /// Byte offset of the `$` of the substitution.
        offset: usize,
    },
}

impl ShellError {
    /// Byte offset in the input word of the construct that failed.
    #[must_use]
    pub fn offset(&self) -> usize {
        match self {
            Self::BadSubstitution { offset, .. }
            | Self::MissingClosingBrace { offset }
            | Self::MissingSlash { offset }
            | Self::UnsupportedModifier { offset, .. }
            | Self::UnterminatedQuote { offset, .. }
            | Self::VariableUnset { offset, .. }
            | Self::VariableEmpty { offset, .. }
            | Self::InvalidPattern { offset, .. }
            | Self::TooDeeplyNested { offset, .. }
            | Self::TooLong { offset, .. }
            | Self::PatternTooCostly { offset, .. } => *offset,
        }
    }
}

fn quote_name(quote: char) -> &'static str {
    if quote == '\'' {
        "single-quote"
    } else {
        "double-quote"
    }
}
