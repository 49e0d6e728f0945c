//! Why a solve failed: [`SolveError`] names the step and its Dockerfile
//! line, [`StepError`] says what went wrong in it.

use super::http::DownloadError;
use super::mounts::MountError;
use super::Entitlement;
use crate::cache::LazyError;
use crate::context::ContextError;
use crate::layer::LayerError;
use std::path::PathBuf;

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SolveError {
    /// A step failed (the first one; the others were cancelled).
    #[error("{}{name}: {error}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Step {
        /// The step's display name.
        name: String,
        /// Its Dockerfile line.
        line: Option<usize>,
        /// What went wrong.
        error: StepError,
    },
    /// The caller cancelled the solve before any step failed.
    #[error("the build was cancelled")]
    Cancelled,
}

impl SolveError {
    /// The Dockerfile line of the failed step.
    pub fn line(&self) -> Option<usize> {
        match self {
            SolveError::Step { line, .. } => *line,
            SolveError::Cancelled => None,
        }
    }

    /// What went wrong in the failed step.
    pub fn step_error(&self) -> Option<&StepError> {
        match self {
            SolveError::Step { error, .. } => Some(error),
            SolveError::Cancelled => None,
        }
    }
}

/// What went wrong in one step. The text is what the user sees after the
/// step's name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The step's first input is not a filesystem (`what` is the op).
    #[error("{what} needs a filesystem input")]
    NoFilesystem {
        /// `RUN` or `a file operation`.
        what: &'static str,
    },
    /// A COPY names an input that is neither a filesystem nor a context.
    #[error("a COPY source is not available")]
    NoCopySource,
    /// A step reads a build context the solve was not given.
    #[error("build context {name:?} is not available")]
    NoContext {
        /// The context's name.
        name: String,
    },
    /// Reading the build context failed.
    #[error(transparent)]
    Context(Box<ContextError>),
    /// An `ADD <git url>` could not be fetched (the message names the
    /// URL, never a credential).
    #[error(transparent)]
    Git(Box<crate::context::git::GitError>),
    /// A RUN step asks for a privilege the build was not granted.
    #[error("{flag} needs the {entitlement} entitlement: add --allow {entitlement}")]
    NotAllowed {
        /// The RUN flag that asks for it.
        flag: &'static str,
        /// What `--allow` must grant.
        entitlement: Entitlement,
    },
    /// A RUN step for another architecture, and no emulator for it (or
    /// one that could not be registered).
    #[error(transparent)]
    Emulation(Box<kiln_executor::EmulationError>),
    /// A `RUN --mount` cannot be prepared (a secret or SSH agent missing,
    /// a cache directory, a bind source).
    #[error(transparent)]
    Mount(#[from] MountError),
    /// An `ADD` URL could not be downloaded.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// A layer could not be read, unpacked or made.
    #[error(transparent)]
    Layer(Box<LayerError>),
    /// A layer from a `--cache-from` cache could not be had.
    #[error(transparent)]
    Lazy(Box<LazyError>),
    /// The scratch directory of a RUN step could not be created.
    #[error("creating a scratch directory: {0}")]
    Scratch(std::io::Error),
    /// A file a RUN step reads (a heredoc script) could not be written.
    #[error("writing {}: {error}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The runtime could not run the process; `hint` says what to do
    /// when the program is for another machine.
    #[error("{error}{}", hint.as_ref().map(|h| format!(": {h}")).unwrap_or_default())]
    Runtime {
        /// The runtime's error.
        error: Box<kiln_executor::RuntimeError>,
        /// What to do about it, if kiln knows.
        hint: Option<String>,
    },
    /// The process ran and failed.
    #[error(
        "process {command:?} did not complete successfully: exit code: {status}{}{output}",
        hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Exit {
        /// The command line.
        command: String,
        /// Its exit code (128 + the signal number when killed).
        status: i32,
        /// What to do about it, if kiln knows.
        hint: Option<String>,
        /// The last lines of its output, indented (empty when none).
        output: String,
    },
    /// The step is not in the cache of a read-only store, so it would
    /// have to run and write there.
    #[error(
        "not cached in the read-only store {}: use --root DIR for a writable store",
        root.display()
    )]
    ReadOnlyStore {
        /// The store's root.
        root: PathBuf,
    },
    /// The layer was made but its cache record could not be written.
    #[error("recording the cache: {0}")]
    RecordCache(std::io::Error),
    /// Preparing a new layer for the outputs (compressing it in the
    /// background) failed.
    #[error("compressing the layer for the outputs: {0}")]
    Prepare(String),
    /// The step's code panicked.
    #[error("a build step panicked: {0}")]
    Panicked(String),
    /// The step stopped because the solve was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The step's inputs never finished (a graph the scheduler refused).
    #[error("its inputs never finished")]
    Unrunnable,
}

impl From<LayerError> for StepError {
    fn from(error: LayerError) -> StepError {
        StepError::Layer(Box::new(error))
    }
}

impl From<LazyError> for StepError {
    fn from(error: LazyError) -> StepError {
        StepError::Lazy(Box::new(error))
    }
}

impl From<ContextError> for StepError {
    fn from(error: ContextError) -> StepError {
        StepError::Context(Box::new(error))
    }
}
