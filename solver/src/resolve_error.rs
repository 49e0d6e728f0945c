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
    /// `error` while doing `context` (see [`ResolveError::Source`]); an
    /// `anyhow::Error` or any `std::error::Error` fits.
    pub fn wrap(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_what_was_resolved_and_the_cause() {
        let io = std::io::Error::other("connection refused");
        assert_eq!(
            ResolveError::wrap("pulling busybox", io).to_string(),
            "pulling busybox: connection refused"
        );
        let bare = ResolveError::wrap("", std::io::Error::other("no such image"));
        assert_eq!(bare.to_string(), "no such image");
        assert_eq!(
            ResolveError::from("denied".to_string()).to_string(),
            "denied"
        );
        assert_eq!(
            ResolveError::LayoutUnsupported {
                layout: "dir:tag".into()
            }
            .to_string(),
            "oci-layout://dir:tag: layouts cannot be read here"
        );
    }
}
