//! Path patterns as BuildKit reads them, in one place for the whole
//! workspace: Go's `filepath.Match` (COPY sources, in the build context and
//! in stages), moby/patternmatcher's `**` patterns with `!` exceptions, and
//! `.dockerignore` files as docker/cli reads them.
//!
//! Matching is a table over pattern tokens × path characters, never
//! recursive, so a hostile pattern costs at most their product.
//!
//! ```
//! use kiln_patterns::{go_match, DockerIgnore};
//!
//! assert_eq!(go_match("*.txt", "a.txt"), Ok(true));
//! assert!(go_match("[", "a").is_err());
//!
//! let ignore = DockerIgnore::from_patterns(&["**/*.log", "!keep.log"]).unwrap();
//! assert!(ignore.is_excluded("a/b/debug.log"));
//! assert!(!ignore.is_excluded("keep.log"));
//! ```

#![deny(missing_docs)]

mod glob;
mod ignore;

pub use glob::{clean_relative, go_clean, go_match, has_wildcards, Pattern};
pub use ignore::{DockerIgnore, IgnorePattern, ParentState};

use std::path::PathBuf;

/// Why a pattern is malformed (Go's `filepath.ErrBadPattern`, with the
/// reason).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A `[` without its `]`.
    #[error("unterminated character class")]
    UnterminatedClass,
    /// An unescaped `-` or `]` where a class character must be.
    #[error("'-' or ']' must be escaped in a class")]
    UnescapedInClass,
    /// A `\` at the end of a class.
    #[error("trailing '\\' in a class")]
    TrailingEscapeInClass,
    /// A `\` at the end of the pattern.
    #[error("trailing '\\'")]
    TrailingEscape,
    /// A range whose start is after its end.
    #[error("invalid range {lo}-{hi}")]
    InvalidRange {
        /// The range's start.
        lo: char,
        /// The range's end.
        hi: char,
    },
    /// A `.dockerignore` line that is only `!`.
    #[error("illegal exclusion pattern \"!\"")]
    LoneExclamation,
}

/// Why a `.dockerignore` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The ignore file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line holds a malformed pattern.
    #[error("{}:{line}: invalid pattern {pattern:?}: {reason}", path.display())]
    BadPattern {
        /// The ignore file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The pattern as read (after `ReadAll`'s cleaning).
        pattern: String,
        /// What is wrong with it.
        reason: PatternError,
    },
}
