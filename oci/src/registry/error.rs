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
    /// retries). The URL is shortened (no upload state); the message ends
    /// with the cause in one line ([`transport_cause`]: connection refused,
    /// DNS, TLS, ...), so the transport error is kept beside it rather
    /// than as the source (whose chain would say it again, less clearly).
    #[error("{method} {url}: {}", transport_cause(error, url))]
    Http {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The transport error.
        error: reqwest::Error,
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

/// Why a request could not be sent or its response not read, in one line
/// a user can act on, from the error's chain of causes: `connection
/// refused by HOST`, `DNS lookup of HOST failed: ...` (HOST from the
/// error's URL, else `url`), `TLS: ...` (an
/// untrusted or expired certificate, one for another name, a server that
/// speaks no TLS), `connection reset`, else the innermost cause.
pub fn transport_cause(error: &reqwest::Error, url: &str) -> String {
    let parsed = reqwest::Url::parse(url).ok();
    let url = error.url().or(parsed.as_ref());
    let host = url
        .and_then(|u| {
            let host = u.host_str()?;
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            })
        })
        .unwrap_or_default();
    let at = |what: &str| {
        if host.is_empty() {
            what.to_string()
        } else {
            format!("{what} {host}")
        }
    };
    let causes = causes(error);
    for cause in &causes {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return tls_cause(tls, &host);
        }
    }
    for cause in &causes {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            let what = match io.kind() {
                K::ConnectionRefused => Some(at("connection refused by")),
                K::ConnectionReset => Some(at("connection reset by")),
                K::ConnectionAborted => Some(at("connection aborted by")),
                K::HostUnreachable => Some(at("no route to host")),
                K::NetworkUnreachable => Some(at("network unreachable for")),
                K::TimedOut => Some(at("timed out connecting to")),
                _ => None,
            };
            if let Some(what) = what {
                return what;
            }
        }
    }
    let innermost = causes
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| error.to_string());
    if causes.iter().any(|c| c.to_string() == "dns error") {
        let host = url.and_then(|u| u.host_str()).unwrap_or_default();
        return format!("DNS lookup of {host} failed: {innermost}");
    }
    if error.is_connect() {
        return format!("{}: {innermost}", at("cannot connect to"));
    }
    innermost
}

/// Every cause of `error`, outermost first, looking inside io::Errors that
/// wrap another error (rustls's errors come that way); at most 32.
fn causes(error: &reqwest::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    use std::error::Error as _;
    let mut causes: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(cause) = next {
        if causes.len() >= 32 {
            break;
        }
        causes.push(cause);
        next = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|e| e as _).or_else(|| cause.source()),
            None => cause.source(),
        };
    }
    causes
}

/// True when sending again cannot help: the server's certificate was
/// refused (untrusted, expired, for another name), it speaks no TLS, or
/// the name does not exist (the resolver's definite answer; a temporary
/// resolver failure is tried again).
pub(crate) fn is_permanent(error: &reqwest::Error) -> bool {
    let causes = causes(error);
    let tls = causes
        .iter()
        .any(|c| c.downcast_ref::<rustls::Error>().is_some());
    let no_such_name = causes.iter().any(|c| c.to_string() == "dns error")
        && causes.last().is_some_and(|c| {
            let text = c.to_string();
            // glibc's and musl's words for EAI_NONAME.
            text.contains("Name or service not known") || text.contains("Name does not resolve")
        });
    tls || no_such_name
}

/// A TLS failure in words.
fn tls_cause(error: &rustls::Error, host: &str) -> String {
    use rustls::{CertificateError as C, Error as E};
    let what = match error {
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature)
        | E::InvalidCertificate(C::Other(_)) => {
            "the certificate is not trusted (self-signed, or its issuer is unknown)".to_string()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the certificate has expired".to_string()
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the certificate is for another name".to_string()
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the server does not speak TLS (for a plain-HTTP registry, set http = true in its [registry.\"HOST\"] section of the config file)".to_string()
        }
        other => other.to_string(),
    };
    format!("TLS handshake with {host} failed: {what}")
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
