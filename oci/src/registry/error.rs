//! Registry client errors. Each names the registry, the URL or the digest
//! concerned, so a user can tell what failed without a debugger.

use crate::credentials::CredentialError;
use crate::image::ImageError;
use crate::store::StoreError;
use crate::Digest;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The request could not be sent or its response not read (after
    /// retries). The URL is shortened (no upload state) and the source
    /// carries no URL of its own, so each appears once.
    #[error("{method} {url}")]
    Http {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// No connection, or no data, within the configured timeout, after
    /// the operation's retries.
    #[error("{}; {attempts} attempt{}", match stage {
        TimeoutStage::Connect => format!("could not connect to {host} within {} while {doing}", secs(*seconds)),
        TimeoutStage::Progress => format!("no data from {host} for {} while {doing}", secs(*seconds)),
    }, if *attempts == 1 { "" } else { "s" })]
    Timeout {
        /// Connecting or waiting for data.
        stage: TimeoutStage,
        /// The registry host (`host:port`).
        host: String,
        /// The timeout that ran out, in seconds.
        seconds: f64,
        /// What the request was for (`downloading sha256:…`).
        doing: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The overall deadline of a pull or push ran out. The message leaves
    /// the operation out, as callers name it already (`pulling X: ...`).
    #[error("the {} deadline passed while {doing}; {attempts} failed attempt{}", secs(*seconds), if *attempts == 1 { "" } else { "s" })]
    Deadline {
        /// `pulling docker.io/library/busybox:latest`.
        operation: String,
        /// The deadline, in seconds.
        seconds: f64,
        /// What was under way (`downloading sha256:…`).
        doing: String,
        /// Failed attempts before it ran out.
        attempts: u32,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: {status}{}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") }, if *attempts > 1 { format!("; {attempts} attempts") } else { String::new() })]
    Status {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's error codes and messages, if it gave any.
        detail: String,
        /// Attempts the operation made that failed (shown when more than
        /// one).
        attempts: u32,
    },
    /// The registry requires credentials and none were found, or those
    /// found were refused.
    #[error("{registry}: {message}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What happened and what to do.
        message: String,
    },
    /// The manifest or tag does not exist.
    #[error("{reference}: not found in the registry")]
    ManifestUnknown {
        /// The reference asked for.
        reference: String,
    },
    /// Content does not hash to the digest it was fetched by.
    #[error("{registry}: content of {expected} does not match its digest (got {actual}); the download was discarded")]
    DigestMismatch {
        /// The registry host.
        registry: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what was received.
        actual: Digest,
    },
    /// The registry broke the protocol (a missing header, a bad token
    /// response).
    #[error("{url}: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// An image in the store or from the registry is invalid.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading credentials failed.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// Which timeout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutStage {
    /// Opening the connection.
    Connect,
    /// Waiting for the next bytes of a response.
    Progress,
}

/// `30 s`, `1.5 s`.
fn secs(seconds: f64) -> String {
    if seconds.fract() == 0.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{seconds:.1} s")
    }
}

/// Shorthand for registry results.
pub type Result<T> = std::result::Result<T, RegistryError>;

/// Turns a Distribution error body (`{"errors":[{"code","message"}]}`) into
/// one line; other bodies are cut short.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(b) = serde_json::from_slice::<Body>(body) {
        return b
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.code.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                )
                .trim()
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}
