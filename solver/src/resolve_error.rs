//! Why an [`ImageResolver`](crate::ImageResolver) could not resolve an
//! image (its own error type, so implementors in other crates can carry
//! their errors).

/// Why an image reference or layout could not be resolved. Lowering adds
/// the Dockerfile line; the text is the rest of what the user sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The resolver cannot read OCI layouts (the trait's default).
    #[error("oci-layout://{layout}: layouts cannot be read here")]
    LayoutUnsupported {
        /// The layout as given (`PATH[:TAG|@DIGEST]`).
        layout: String,
    },
    /// A `--build-context` named as a base image is a local directory.
    #[error(
        "build context {name:?} is a local directory; it can be a COPY --from source, not a base image"
    )]
    LocalContext {
        /// The context's name.
        name: String,
    },
    /// The implementor's error with what it was doing, as
    /// `CONTEXT: ERROR` (just `ERROR` when the context is empty).
    #[error("{}{error}", if context.is_empty() { String::new() } else { format!("{context}: ") })]
    Source {
        /// What was being resolved, for the message (may be empty).
        context: String,
        /// The cause.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A message of the implementor's.
    #[error("{0}")]
    Message(String),
}

impl ResolveError {
    /// `error` while doing `context` (see [`ResolveError::Source`]).
    pub fn source(
        context: impl Into<String>,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ResolveError {
        ResolveError::Source {
            context: context.into(),
            error: error.into(),
        }
    }
}

impl From<String> for ResolveError {
    fn from(message: String) -> ResolveError {
        ResolveError::Message(message)
    }
}
