//! Why lowering fails ([`LowerError`]), and how lowering a stage stops to
//! wait for another ([`Flow`]).

use kiln_parser::{ParseError, Position};

/// Why a Dockerfile cannot be lowered. Every variant that comes from an
/// instruction carries its position (`LINE:COL`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LowerError {
    /// A word did not expand, or an expanded value is invalid.
    #[error(transparent)]
    Expand(#[from] ParseError),
    /// The Dockerfile has ARGs but no FROM.
    #[error("{at}: dockerfile contains no stages to build")]
    NoStages {
        /// Where the file starts.
        at: Position,
    },
    /// An instruction kiln (and BuildKit) does not know.
    #[error("{at}: unknown instruction: {keyword}{}", did_you_mean(keyword))]
    UnknownInstruction {
        /// Position.
        at: Position,
        /// The keyword as written.
        keyword: String,
    },
    /// Stages that depend on each other.
    #[error("{at}: circular dependency detected on stage: {stage}")]
    Circular {
        /// Position of the reference that closed the cycle.
        at: Position,
        /// The stage.
        stage: String,
    },
    /// `--target` names no stage.
    #[error("--target: target stage {0:?} could not be found")]
    NoTarget(String),
    /// An image could not be resolved.
    #[error("{at}: {reference}: {message}")]
    Image {
        /// Position.
        at: Position,
        /// The reference.
        reference: String,
        /// Why.
        message: String,
    },
    /// An instruction's value is invalid.
    #[error("{at}: {message}")]
    Invalid {
        /// Position (of the flag at fault when there is one).
        at: Position,
        /// What is wrong.
        message: String,
    },
}

impl LowerError {
    /// The Dockerfile position the error is about, when there is one.
    pub fn position(&self) -> Option<Position> {
        match self {
            LowerError::Expand(e) => Some(e.position),
            LowerError::NoStages { at }
            | LowerError::UnknownInstruction { at, .. }
            | LowerError::Circular { at, .. }
            | LowerError::Image { at, .. }
            | LowerError::Invalid { at, .. } => Some(*at),
            LowerError::NoTarget(_) => None,
        }
    }

    /// The Dockerfile line the error is about, when there is one.
    pub fn line(&self) -> Option<usize> {
        self.position().map(|p| p.line)
    }

    /// The message without its position.
    pub fn message(&self) -> String {
        match self {
            LowerError::Expand(e) => e.kind.to_string(),
            LowerError::NoStages { .. } => "dockerfile contains no stages to build".into(),
            LowerError::UnknownInstruction { keyword, .. } => {
                format!("unknown instruction: {keyword}{}", did_you_mean(keyword))
            }
            LowerError::Circular { stage, .. } => {
                format!("circular dependency detected on stage: {stage}")
            }
            LowerError::Image {
                reference, message, ..
            } => format!("{reference}: {message}"),
            LowerError::Invalid { message, .. } => message.clone(),
            LowerError::NoTarget(_) => self.to_string(),
        }
    }
}

/// ` (did you mean RUN?)` for a keyword near a known one, as BuildKit
/// says it; else nothing.
fn did_you_mean(keyword: &str) -> String {
    kiln_parser::suggest_instruction(keyword)
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}

/// Shorthand for lowering results.
pub type Result<T> = std::result::Result<T, LowerError>;

/// How lowering a stage can stop: an error, or the need of another stage
/// that is not lowered yet (the driver lowers that one first and tries
/// again, so lowering never recurses on the depth of stage chains).
#[derive(Debug)]
pub(crate) enum Flow {
    /// A real error.
    Error(LowerError),
    /// Stage `0` must be lowered first; the reference is at `1`.
    Need(usize, Position),
}

impl From<LowerError> for Flow {
    fn from(e: LowerError) -> Flow {
        Flow::Error(e)
    }
}

impl From<ParseError> for Flow {
    fn from(e: ParseError) -> Flow {
        Flow::Error(LowerError::Expand(e))
    }
}

/// Results inside stage lowering.
pub(crate) type Step<T> = std::result::Result<T, Flow>;
