//! An HTTP(S) URL as the build context (`kiln build https://host/ctx.tar.gz`):
//! downloaded with a deadline and a size cap, then told apart by content
//! as buildx does: a tar (plain, gzip or zstd) is unpacked with the same
//! hardened reader as a context on stdin; anything else is the Dockerfile
//! of an otherwise empty context.

use super::tarball;
use super::ContextError;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most bytes a context URL may send.
pub const MAX_BYTES: u64 = 2 << 30;

/// Why a context URL cannot be used. One line, naming the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlContextError {
    /// The URL does not parse or is not http(s).
    #[error("context {url}: not an http or https URL")]
    Url {
        /// The URL.
        url: String,
    },
    /// The transfer failed.
    #[error("context {url}: {message}")]
    Transfer {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The deadline passed.
    #[error(
        "context {url}: not downloaded within {seconds}s (set KILN_GIT_TIMEOUT=SECONDS for more)"
    )]
    Timeout {
        /// The URL.
        url: String,
        /// The deadline.
        seconds: u64,
    },
    /// More than [`MAX_BYTES`].
    #[error("context {url}: larger than {MAX_BYTES} bytes")]
    TooBig {
        /// The URL.
        url: String,
    },
    /// Writing or unpacking failed.
    #[error("context {url}: {source}")]
    Unpack {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: ContextError,
    },
}

/// What a context URL held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlContent {
    /// A tar, unpacked into the directory.
    Archive,
    /// A single file, saved as the directory's `Dockerfile`.
    Dockerfile,
}

/// Whether `value` is an http(s) URL.
pub fn is_http_url(value: &str) -> bool {
    let lower = value.get(..8).unwrap_or(value).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Downloads `url` (within `timeout`, at most [`MAX_BYTES`]) to a file
/// under `work` and unpacks it into `dest` (see the module doc).
///
/// # Errors
/// [`UrlContextError`].
pub fn fetch(
    url: &str,
    dest: &Path,
    work: &Path,
    timeout: Duration,
) -> Result<UrlContent, UrlContextError> {
    let shown = super::git::redact_url(url);
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| UrlContextError::Url { url: shown.clone() })?;
    let unpack = |source| UrlContextError::Unpack {
        url: shown.clone(),
        source,
    };
    std::fs::create_dir_all(work).map_err(|e| unpack(ContextError::io(work)(e)))?;
    let file_path = work.join("download");
    download_parsed(parsed, &shown, &file_path, timeout)?;
    let f = std::fs::File::open(&file_path).map_err(|e| unpack(ContextError::io(&file_path)(e)))?;
    let mut reader = BufReader::with_capacity(1 << 16, f);
    let head = reader
        .fill_buf()
        .map_err(|e| unpack(ContextError::io(&file_path)(e)))?
        .to_vec();
    let compressed = head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let plain_tar = head.len() >= 262 && &head[257..262] == b"ustar";
    if compressed || plain_tar {
        let stream = kiln_oci::compress::decompressor(reader)
            .map_err(|e| unpack(ContextError::io(&file_path)(e)))?;
        tarball::extract(stream, dest).map_err(unpack)?;
        return Ok(UrlContent::Archive);
    }
    std::fs::create_dir_all(dest).map_err(|e| unpack(ContextError::io(dest)(e)))?;
    let dockerfile: PathBuf = dest.join("Dockerfile");
    std::fs::rename(&file_path, &dockerfile)
        .map_err(|e| unpack(ContextError::io(&dockerfile)(e)))?;
    Ok(UrlContent::Dockerfile)
}

/// Downloads `url` (within `timeout`, at most [`MAX_BYTES`]) to the new
/// file `path`, as [`fetch`] does before it looks at the content
/// (`kiln import URL` uses it too).
///
/// # Errors
/// [`UrlContextError`] (not http(s), the transfer, the deadline, the
/// size, creating the file).
pub fn download_to(url: &str, path: &Path, timeout: Duration) -> Result<(), UrlContextError> {
    let shown = super::git::redact_url(url);
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| UrlContextError::Url { url: shown.clone() })?;
    download_parsed(parsed, &shown, path, timeout)
}

/// [`download_to`] of a parsed URL (`shown` is it without a password).
fn download_parsed(
    url: reqwest::Url,
    shown: &str,
    path: &Path,
    timeout: Duration,
) -> Result<(), UrlContextError> {
    let file = std::fs::File::create(path).map_err(|e| UrlContextError::Unpack {
        url: shown.to_string(),
        source: ContextError::io(path)(e),
    })?;
    // A runtime of its own, on a thread of its own: the caller may or may
    // not be inside one.
    std::thread::scope(|s| {
        s.spawn(move || download(url, file, shown, timeout))
            .join()
            .unwrap_or_else(|_| {
                Err(UrlContextError::Transfer {
                    url: shown.to_string(),
                    message: "the download thread failed".into(),
                })
            })
    })
}

fn download(
    url: reqwest::Url,
    mut file: std::fs::File,
    shown: &str,
    timeout: Duration,
) -> Result<(), UrlContextError> {
    let transfer = |message: String| UrlContextError::Transfer {
        url: shown.to_string(),
        message,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| transfer(format!("starting the HTTP client: {e}")))?;
    let work = async {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| transfer(describe(e)))?;
        let mut response = client
            .get(url)
            .send()
            .await
            .map_err(|e| transfer(describe(e)))?;
        if !response.status().is_success() {
            return Err(transfer(format!("HTTP status {}", response.status())));
        }
        if response.content_length().is_some_and(|l| l > MAX_BYTES) {
            return Err(UrlContextError::TooBig {
                url: shown.to_string(),
            });
        }
        let mut received: u64 = 0;
        while let Some(chunk) = response.chunk().await.map_err(|e| transfer(describe(e)))? {
            received += chunk.len() as u64;
            if received > MAX_BYTES {
                return Err(UrlContextError::TooBig {
                    url: shown.to_string(),
                });
            }
            file.write_all(&chunk)
                .map_err(|e| transfer(format!("writing the download: {e}")))?;
        }
        file.flush()
            .map_err(|e| transfer(format!("writing the download: {e}")))?;
        Ok(())
    };
    rt.block_on(async {
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| UrlContextError::Timeout {
                url: shown.to_string(),
                seconds: timeout.as_secs(),
            })?
    })
}

/// reqwest's error (without its URL) with its causes, each once, on one
/// line.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = s.source();
    }
    text.lines().next().unwrap_or("").to_string()
}
