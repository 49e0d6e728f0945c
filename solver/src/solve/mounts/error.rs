//! Why a `RUN --mount` could not be prepared.

use std::path::PathBuf;

/// Why a `RUN --mount` could not be prepared. The text is what the user
/// sees after the step's name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// A required secret was not given.
    #[error(
        "secret {id}: not provided (give it with --secret id={id},src=FILE or id={id},env=VAR)"
    )]
    SecretMissing {
        /// The secret's id.
        id: String,
    },
    /// A secret's file could not be read.
    #[error("secret {id}: reading {}: {error}", path.display())]
    SecretRead {
        /// The secret's id.
        id: String,
        /// Its file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A secret's environment variable is not set.
    #[error("secret {id}: environment variable {var} is not set")]
    SecretEnv {
        /// The secret's id.
        id: String,
        /// The variable.
        var: String,
    },
    /// A secret given to the process as a variable is not UTF-8.
    #[error("secret {id}: env={var} needs a UTF-8 value")]
    SecretNotText {
        /// The secret's id.
        id: String,
        /// The variable of the process.
        var: String,
    },
    /// A required SSH agent was not forwarded.
    #[error(
        "no SSH agent {id:?} forwarded (give it with --ssh {id}=SOCKET or --ssh {id} with SSH_AUTH_SOCK set)"
    )]
    SshMissing {
        /// The agent's id.
        id: String,
    },
    /// The SSH agent could not be forwarded.
    #[error("forwarding SSH agent {id:?}: {error}")]
    SshForward {
        /// The agent's id.
        id: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A directory could not be created.
    #[error("creating {}: {error}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A cache mount's directory could not be created, locked or set up
    /// (`action` is `creating`, `locking` or `preparing`).
    #[error("{action} cache {id:?}: {error}")]
    Cache {
        /// What was being done.
        action: &'static str,
        /// The cache's id.
        id: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The mount names an input the step does not have.
    #[error("mount source #{input} is missing")]
    NoInput {
        /// The input's index.
        input: usize,
    },
    /// The mount reads a build context the solve was not given.
    #[error("build context {name:?} is not available")]
    NoContext {
        /// The context's name.
        name: String,
    },
    /// The source could not be read.
    #[error(transparent)]
    Source(Box<kiln_executor::SourceError>),
    /// The source path does not exist in its input.
    #[error("mount source {path:?}: not found")]
    NotFound {
        /// The path.
        path: String,
    },
    /// Copying the source out of its input failed.
    #[error("mount source {path:?}: {error}")]
    Copy {
        /// The path.
        path: String,
        /// What went wrong.
        error: Box<kiln_executor::FileOpError>,
    },
}
