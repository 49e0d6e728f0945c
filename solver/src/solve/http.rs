//! `ADD <url>`: one download, streamed to a file, with deadlines so that
//! no server can hold a build forever.
//!
//! - **connect**: the TCP (and TLS) connection must open within 30 s;
//! - **idle**: 60 s without a byte of the response (headers or body)
//!   fails the download;
//! - **progress**: in every 60 s window at least 16 KiB must arrive, so a
//!   server trickling a byte every few seconds fails, while a slow but
//!   moving big download finishes.
//!
//! The body must be exactly its `Content-Length` when there is one.
//! Redirects are followed (10 at most) to `http` and `https` URLs only.
//! `KILN_ADD_TIMEOUTS` tunes the limits, e.g.
//! `connect=5,idle=10,window=30,min-bytes=1024` (seconds and bytes).

use kiln_oci::Digest;
use sha2::Digest as _;
use std::io::Write;
use std::time::Duration;
use tokio::time::Instant;

/// The variable that tunes [`Deadlines`].
pub(crate) const DEADLINES_VAR: &str = "KILN_ADD_TIMEOUTS";

/// Why an `ADD` URL cannot be downloaded (or its `--checksum` or the
/// deadlines are unusable). One line; the step's name holds the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// `KILN_ADD_TIMEOUTS` has a field that is not a known key with a
    /// number.
    #[error(
        "{DEADLINES_VAR}={text:?}: {field:?} is not connect=, idle= or window= (seconds) or \
         min-bytes= (bytes)"
    )]
    Deadlines {
        /// The variable's value.
        text: String,
        /// The field.
        field: String,
    },
    /// The URL does not parse.
    #[error("invalid URL {url:?}: {error}")]
    Url {
        /// The URL.
        url: String,
        /// Why (the URL parser's error).
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The URL is not `http` or `https`.
    #[error("invalid URL {url:?}: scheme {scheme:?} (only http and https)")]
    Scheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The `--checksum` value cannot be verified against.
    #[error("invalid --checksum={checksum}: {problem} (sha256:HEX or sha512:HEX)")]
    Checksum {
        /// The value.
        checksum: String,
        /// What is wrong with it.
        problem: ChecksumProblem,
    },
    /// The server did not answer in time.
    #[error("no response within {seconds}s")]
    NoResponse {
        /// The connect and idle deadlines together.
        seconds: f64,
    },
    /// The connection did not open in time.
    #[error("no connection within {seconds}s")]
    NoConnection {
        /// The connect deadline.
        seconds: f64,
    },
    /// The HTTP client failed (its causes, each once).
    #[error("{0}")]
    Client(String),
    /// The server redirected to a URL that is not followed.
    #[error("{status}: redirected to {location}: only http and https URLs are followed")]
    Redirected {
        /// The redirect's status.
        status: reqwest::StatusCode,
        /// Where it pointed.
        location: String,
    },
    /// The server answered with an error status.
    #[error("{0}")]
    Status(reqwest::StatusCode),
    /// No byte arrived within the idle deadline.
    #[error("no data for {seconds}s (after {received} bytes)")]
    NoData {
        /// The idle deadline.
        seconds: f64,
        /// Bytes received until then.
        received: u64,
    },
    /// Too few bytes arrived in a progress window.
    #[error(
        "too slow: {window_bytes} bytes in {seconds}s, at least {min_bytes} needed (after \
         {received} bytes)"
    )]
    TooSlow {
        /// Bytes in the window.
        window_bytes: u64,
        /// The window's length.
        seconds: f64,
        /// Bytes a window needs.
        min_bytes: u64,
        /// Bytes received until then.
        received: u64,
    },
    /// The body is longer than its `Content-Length`.
    #[error("the server sent more than its Content-Length of {length} bytes")]
    TooLong {
        /// The `Content-Length`.
        length: u64,
    },
    /// The body is shorter than its `Content-Length`.
    #[error("the connection closed after {received} of {length} bytes")]
    Truncated {
        /// Bytes received.
        received: u64,
        /// The `Content-Length`.
        length: u64,
    },
    /// The download does not match `--checksum`.
    #[error("digest mismatch: expected {expected}, got {got}")]
    Mismatch {
        /// The `--checksum`.
        expected: Digest,
        /// The download's digest in the same algorithm.
        got: String,
    },
    /// No async runtime to download with (a solve outside tokio).
    #[error("no async runtime to download with")]
    NoAsyncRuntime,
    /// A file of the download could not be written.
    #[error("{what}: {error}")]
    Io {
        /// What was being done, e.g. `writing the download`.
        what: String,
        /// The error.
        #[source]
        error: std::io::Error,
    },
}

/// What is wrong with a `--checksum` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChecksumProblem {
    /// Neither `sha256` nor `sha512`.
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    /// Not the right number of lowercase hex digits.
    #[error("the digest is not the right number of lowercase hex digits")]
    Hex,
    /// Not `ALGORITHM:HEX` at all.
    #[error("not ALGORITHM:HEX")]
    Form,
}

/// A [`DownloadError::Io`] maker for `map_err`.
pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DownloadError {
    let what = what.into();
    move |error| DownloadError::Io { what, error }
}

/// How long a download may wait, and how slow it may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Deadlines {
    /// For the connection to open.
    pub(crate) connect: Duration,
    /// Longest wait for the next byte.
    pub(crate) idle: Duration,
    /// The length of a progress window.
    pub(crate) window: Duration,
    /// Bytes that must arrive in every window.
    pub(crate) min_bytes: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            connect: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            window: Duration::from_secs(60),
            min_bytes: 16 * 1024,
        }
    }
}

impl Deadlines {
    /// The defaults, changed by `KILN_ADD_TIMEOUTS` when it is set.
    ///
    /// # Errors
    /// The variable's value is not `key=number,...` with known keys.
    pub(crate) fn from_env() -> Result<Deadlines, DownloadError> {
        match std::env::var(DEADLINES_VAR) {
            Ok(v) if !v.trim().is_empty() => Deadlines::parse(&v),
            _ => Ok(Deadlines::default()),
        }
    }

    /// `connect=S,idle=S,window=S,min-bytes=N`, any subset.
    fn parse(text: &str) -> Result<Deadlines, DownloadError> {
        let mut d = Deadlines::default();
        for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let bad = || DownloadError::Deadlines {
                text: text.to_string(),
                field: field.to_string(),
            };
            let (key, value) = field.split_once('=').ok_or_else(bad)?;
            let seconds = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(bad)
            };
            match key {
                "connect" => d.connect = seconds()?,
                "idle" => d.idle = seconds()?,
                "window" => d.window = seconds()?,
                "min-bytes" => d.min_bytes = value.parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            }
        }
        Ok(d)
    }
}

/// Checks an `ADD` URL: absolute, `http` or `https`, well formed.
///
/// # Errors
/// Why it is not a URL kiln can download.
pub(crate) fn check_url(url: &str) -> Result<reqwest::Url, DownloadError> {
    let parsed = reqwest::Url::parse(url).map_err(|error| DownloadError::Url {
        url: url.to_string(),
        error: Box::new(error),
    })?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(DownloadError::Scheme {
            url: url.to_string(),
            scheme: other.to_string(),
        }),
    }
}

/// Checks an `ADD --checksum` value: `sha256:` or `sha512:` and the right
/// number of lowercase hex digits.
///
/// # Errors
/// Why kiln cannot verify a download against it.
pub(crate) fn check_checksum(checksum: &str) -> Result<Digest, DownloadError> {
    checksum.parse::<Digest>().map_err(|e| {
        let problem = match e {
            kiln_oci::DigestError::Algorithm(_) => {
                let algorithm = checksum.split(':').next().unwrap_or_default();
                ChecksumProblem::Algorithm(algorithm.to_string())
            }
            kiln_oci::DigestError::Hex(_) => ChecksumProblem::Hex,
            _ => ChecksumProblem::Form,
        };
        DownloadError::Checksum {
            checksum: checksum.to_string(),
            problem,
        }
    })
}

/// Downloads `url` into `out`, verifying `checksum` when given; returns
/// the sha256 of the content.
///
/// # Errors
/// A one-line message (the step's name holds the URL): the deadline that
/// passed, the HTTP
/// status, a body shorter or longer than its `Content-Length`, a redirect
/// to another scheme, a checksum mismatch, or a write error.
pub(crate) async fn fetch(
    url: &str,
    checksum: Option<&str>,
    out: &mut std::fs::File,
    deadlines: &Deadlines,
) -> Result<Digest, DownloadError> {
    let parsed = check_url(url)?;
    let expected = checksum.map(check_checksum).transpose()?;
    let client = reqwest::Client::builder()
        .connect_timeout(deadlines.connect)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            match attempt.url().scheme() {
                _ if attempt.previous().len() >= 10 => attempt.error("more than 10 redirects"),
                "http" | "https" => attempt.follow(),
                _ => {
                    let message = format!(
                        "redirected to {}: only http and https URLs are followed",
                        attempt.url()
                    );
                    attempt.error(message)
                }
            }
        }))
        .build()
        .map_err(|e| DownloadError::Client(describe(&e)))?;
    let secs = |d: Duration| d.as_secs_f64();
    let mut response = tokio::time::timeout(
        deadlines.connect + deadlines.idle,
        client.get(parsed).send(),
    )
    .await
    .map_err(|_| DownloadError::NoResponse {
        seconds: secs(deadlines.connect + deadlines.idle),
    })?
    .map_err(|e| {
        if e.is_connect() && e.is_timeout() {
            DownloadError::NoConnection {
                seconds: secs(deadlines.connect),
            }
        } else {
            DownloadError::Client(describe(&e))
        }
    })?;
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
    if let Some(location) = location.filter(|_| response.status().is_redirection()) {
        // reqwest hands back the redirects it will not follow.
        return Err(DownloadError::Redirected {
            status: response.status(),
            location,
        });
    }
    if !response.status().is_success() {
        return Err(DownloadError::Status(response.status()));
    }
    let length = response.content_length();
    let mut sha256 = sha2::Sha256::new();
    let mut sha512 = expected
        .as_ref()
        .filter(|d| d.algorithm() == "sha512")
        .map(|_| sha2::Sha512::new());
    let mut received: u64 = 0;
    let mut last_byte = Instant::now();
    let mut window_start = last_byte;
    let mut window_bytes: u64 = 0;
    let too_slow = |window_bytes: u64, received: u64| DownloadError::TooSlow {
        window_bytes,
        seconds: secs(deadlines.window),
        min_bytes: deadlines.min_bytes,
        received,
    };
    loop {
        let deadline = (last_byte + deadlines.idle).min(window_start + deadlines.window);
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(chunk) => chunk.map_err(|e| DownloadError::Client(describe(&e)))?,
            Err(_) => {
                let now = Instant::now();
                if now >= last_byte + deadlines.idle {
                    return Err(DownloadError::NoData {
                        seconds: secs(deadlines.idle),
                        received,
                    });
                }
                if window_bytes < deadlines.min_bytes {
                    return Err(too_slow(window_bytes, received));
                }
                window_start = now;
                window_bytes = 0;
                continue;
            }
        };
        let Some(chunk) = chunk else { break };
        let now = Instant::now();
        last_byte = now;
        if now >= window_start + deadlines.window {
            if window_bytes < deadlines.min_bytes {
                return Err(too_slow(window_bytes, received));
            }
            window_start = now;
            window_bytes = 0;
        }
        let n = chunk.len() as u64;
        received += n;
        window_bytes += n;
        if let Some(length) = length.filter(|l| received > *l) {
            return Err(DownloadError::TooLong { length });
        }
        sha256.update(&chunk);
        if let Some(h) = &mut sha512 {
            h.update(&chunk);
        }
        out.write_all(&chunk).map_err(io("writing the download"))?;
    }
    if let Some(length) = length.filter(|l| received < *l) {
        return Err(DownloadError::Truncated { received, length });
    }
    out.flush().map_err(io("writing the download"))?;
    let content = Digest::from_sha256(&sha256.finalize());
    if let Some(expected) = expected {
        let got = match sha512 {
            Some(h) => {
                let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                format!("sha512:{hex}")
            }
            None => content.to_string(),
        };
        if got != expected.as_str() {
            return Err(DownloadError::Mismatch { expected, got });
        }
    }
    Ok(content)
}

/// A reqwest error with its causes, each once (reqwest's own text is
/// often only "error sending request" or "builder error").
fn describe(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_from_text() {
        let d = Deadlines::parse("connect=1.5,idle=2,window=3,min-bytes=10").expect("parse");
        assert_eq!(d.connect, Duration::from_millis(1500));
        assert_eq!(d.idle, Duration::from_secs(2));
        assert_eq!(d.window, Duration::from_secs(3));
        assert_eq!(d.min_bytes, 10);
        for bad in ["idle", "idle=0", "idle=-1", "speed=3", "min-bytes=x"] {
            let e = Deadlines::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(DEADLINES_VAR), "{e}");
        }
    }

    #[test]
    fn urls_and_checksums() {
        let e = check_url("http://[::1/ok")
            .expect_err("bad host")
            .to_string();
        assert!(e.contains("invalid IPv6 address"), "{e}");
        assert!(check_url("ftp://x/y")
            .expect_err("ftp")
            .to_string()
            .contains("only http"));
        assert!(check_url("https://example.com/a").is_ok());
        let e = check_checksum("md5:d41d8cd98f00b204e9800998ecf8427e")
            .expect_err("md5")
            .to_string();
        assert!(e.contains("invalid --checksum=md5:"), "{e}");
        assert!(check_checksum("sha256:abc").is_err());
        assert!(check_checksum(Digest::sha256(b"").as_str()).is_ok());
    }

    #[test]
    fn typed_errors_keep_their_texts() {
        assert_eq!(
            check_checksum("md5:abc").expect_err("md5").to_string(),
            "invalid --checksum=md5:abc: unsupported algorithm \"md5\" (sha256:HEX or sha512:HEX)"
        );
        assert_eq!(
            check_checksum("sha256:abc").expect_err("short").to_string(),
            "invalid --checksum=sha256:abc: the digest is not the right number of lowercase hex \
             digits (sha256:HEX or sha512:HEX)"
        );
        assert_eq!(
            check_url("ftp://x/y").expect_err("ftp").to_string(),
            "invalid URL \"ftp://x/y\": scheme \"ftp\" (only http and https)"
        );
        assert_eq!(
            Deadlines::parse("idle=0").expect_err("zero").to_string(),
            format!(
                "{DEADLINES_VAR}=\"idle=0\": \"idle=0\" is not connect=, idle= or window= \
                 (seconds) or min-bytes= (bytes)"
            )
        );
        let slow = DownloadError::TooSlow {
            window_bytes: 3,
            seconds: 1.5,
            min_bytes: 10,
            received: 7,
        };
        assert_eq!(
            slow.to_string(),
            "too slow: 3 bytes in 1.5s, at least 10 needed (after 7 bytes)"
        );
        assert_eq!(
            DownloadError::NoData {
                seconds: 60.0,
                received: 0
            }
            .to_string(),
            "no data for 60s (after 0 bytes)"
        );
    }
}
