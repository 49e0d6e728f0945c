//! Parse errors: every error carries the position it refers to.

use crate::span::Position;
use std::fmt;

/// A Dockerfile that could not be parsed, with the position of the problem.
///
/// `Display` renders `LINE:COL: message`; callers that know the file name
/// prefix it (`Dockerfile:3:7: unknown flag: --foo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where the problem is.
    pub position: Position,
    /// What the problem is.
    pub kind: ErrorKind,
}

impl ParseError {
    pub(crate) fn new(position: Position, kind: ErrorKind) -> Self {
        ParseError { position, kind }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position, self.kind)
    }
}

impl std::error::Error for ParseError {}

/// The kinds of parse failure. Messages follow BuildKit's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file holds no instruction at all.
    #[error("file with no instructions")]
    NoInstructions,
    /// A physical line is longer than BuildKit's scanner allows.
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    /// The same parser directive appears twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// `# escape=` names something other than a backslash or backtick.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// A JSON array holding something other than strings.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    /// A heredoc whose terminator never appears.
    #[error("unterminated heredoc {0}")]
    UnterminatedHeredoc(String),
    /// A heredoc delimiter that could not be read.
    #[error("invalid heredoc delimiter {0:?}: {1}")]
    InvalidHeredoc(String, String),
    /// An instruction was given the wrong number of arguments.
    #[error("{0}")]
    Arguments(String),
    /// ENV/LABEL/ARG word without `=` in the `key=value` form.
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    /// A flag the instruction does not know.
    #[error("unknown flag: --{0}")]
    UnknownFlag(String),
    /// A flag given a value it cannot take.
    #[error("invalid value for --{flag}: {message}")]
    InvalidFlagValue {
        /// The flag's name without dashes.
        flag: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A flag given more than once where only one is allowed.
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    /// An instruction that may not appear where it does.
    #[error("{0}")]
    Misplaced(String),
    /// A word that could not be expanded.
    #[error("failed to process {word:?}: {message}")]
    Expansion {
        /// The word as written.
        word: String,
        /// Why it failed.
        message: String,
    },
    /// Anything else wrong with an instruction's arguments.
    #[error("{0}")]
    Invalid(String),
    /// The file is UTF-16, and why kiln thinks so.
    #[error("the file looks like UTF-16 ({0}): save it as UTF-8")]
    Utf16(String),
    /// A byte (at this offset) that is not UTF-8.
    #[error("invalid UTF-8 (byte {0}): Dockerfiles must be UTF-8")]
    NotUtf8(usize),
}
