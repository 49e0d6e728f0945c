//! One pull's or push's shared limits: a single retry budget (every
//! request of the operation draws on it, so retries never nest), an
//! optional overall deadline, `Retry-After` parsing, and the short form of
//! URLs that carry upload state.

use super::error::{RegistryError, Result};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// The retry budget and deadline of one operation.
#[derive(Debug)]
pub(crate) struct Operation {
    /// Retries allowed since the last progress.
    limit: u32,
    /// Retries used since the last progress.
    used: AtomicU32,
    /// Attempts that failed over the whole operation (for messages).
    failed: AtomicU32,
    /// When the operation must be over, if ever, and how long it had.
    deadline: Option<(Instant, Duration)>,
    /// What the operation is (`pulling host/repo:tag`), for messages.
    name: OnceLock<String>,
}

/// How long after its deadline an operation is dropped outright, should
/// a step not watch the deadline itself (every network wait does, so its
/// transfers end cleanly and leave no temporaries).
const BACKSTOP: Duration = Duration::from_secs(2);

impl Operation {
    /// A fresh budget of `limit` retries, ending `deadline` from now.
    pub(crate) fn new(limit: u32, deadline: Option<Duration>) -> Operation {
        Operation {
            limit,
            used: AtomicU32::new(0),
            failed: AtomicU32::new(0),
            deadline: deadline.map(|d| (Instant::now() + d, d)),
            name: OnceLock::new(),
        }
    }

    /// Records a failed attempt; true when a retry is still allowed (and
    /// takes it from the budget).
    pub(crate) fn take_retry(&self) -> bool {
        self.failed.fetch_add(1, Ordering::SeqCst);
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                (u < self.limit).then_some(u + 1)
            })
            .is_ok()
    }

    /// A resumed transfer made progress: the budget is full again.
    pub(crate) fn progress(&self) {
        self.used.store(0, Ordering::SeqCst);
    }

    /// Attempts made so far that failed, plus the one that gave up.
    pub(crate) fn attempts(&self) -> u32 {
        self.failed.load(Ordering::SeqCst).max(1)
    }

    /// True when waiting `wait` would pass the deadline.
    pub(crate) fn would_pass_deadline(&self, wait: Duration) -> bool {
        self.deadline
            .is_some_and(|(d, _)| Instant::now() + wait >= d)
    }

    /// The error for a deadline that ran out while `doing`.
    pub(crate) fn expired(&self, doing: String) -> RegistryError {
        RegistryError::Deadline {
            operation: self
                .name
                .get()
                .cloned()
                .unwrap_or_else(|| "the registry operation".into()),
            seconds: self.deadline.map_or(0.0, |(_, d)| d.as_secs_f64()),
            doing,
            attempts: self.failed.load(Ordering::SeqCst),
        }
    }

    /// Awaits `work` until the deadline, if there is one.
    pub(crate) async fn bounded<F: std::future::Future>(
        &self,
        doing: impl FnOnce() -> String,
        work: F,
    ) -> Result<F::Output> {
        match self.deadline {
            Some((deadline, _)) => tokio::time::timeout_at(deadline.into(), work)
                .await
                .map_err(|_| self.expired(doing())),
            None => Ok(work.await),
        }
    }

    /// Runs `work`, the operation called `name`, within the deadline, if
    /// there is one (a backstop: the steps inside watch it themselves).
    pub(crate) async fn within<T>(
        &self,
        name: &str,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let _ = self.name.set(name.to_string());
        match self.deadline {
            Some((deadline, _)) => {
                match tokio::time::timeout_at((deadline + BACKSTOP).into(), work).await {
                    Ok(done) => done,
                    Err(_) => Err(self.expired("finishing".into())),
                }
            }
            None => work.await,
        }
    }
}

/// The wait a `Retry-After` header asks for (delay-seconds or an HTTP
/// date), at most `cap`; `None` when absent or unreadable.
pub(crate) fn retry_after(value: Option<&str>, cap: Duration) -> Option<Duration> {
    let value = value?.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(cap))
}

/// `url` with long query values (an upload's `_state=...`, but not its
/// `digest`) cut to a few characters, for messages.
pub(crate) fn short_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if v.len() > 24 && k != "digest" => {
                let cut: String = v.chars().take(8).collect();
                format!("{k}={cut}…")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

/// What a request to `url` was doing, for messages: `downloading
/// sha256:…`, `fetching manifest latest`, `uploading sha256:…`.
pub(crate) fn doing(method: &str, url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    let digest_param = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("digest="))
        .map(|d| d.replace("%3A", ":"));
    if path.contains("/blobs/uploads/") {
        return match digest_param {
            Some(d) => format!("uploading {d}"),
            None => "uploading a blob".into(),
        };
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if path.contains("/blobs/") {
        return match method {
            "HEAD" => format!("checking for {last}"),
            _ => format!("downloading {last}"),
        };
    }
    if path.contains("/manifests/") {
        return match method {
            "PUT" => format!("pushing manifest {last}"),
            _ => format!("fetching manifest {last}"),
        };
    }
    format!("{method} {}", short_url(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_and_reset_by_progress() {
        let op = Operation::new(2, None);
        assert!(op.take_retry());
        assert!(op.take_retry());
        assert!(!op.take_retry());
        op.progress();
        assert!(op.take_retry());
        assert_eq!(op.attempts(), 4);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let cap = Duration::from_secs(60);
        assert_eq!(retry_after(Some("3"), cap), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(Some("3600"), cap), Some(cap));
        assert_eq!(retry_after(Some("soon"), cap), None);
        assert_eq!(retry_after(None, cap), None);
        let past = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH);
        assert_eq!(retry_after(Some(&past), cap), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(5));
        let wait = retry_after(Some(&later), cap).unwrap_or_default();
        assert!(wait <= Duration::from_secs(5) && wait >= Duration::from_secs(3));
    }

    #[test]
    fn upload_state_is_shortened() {
        let long = format!(
            "http://h/v2/r/blobs/uploads/u?_state={}&digest=sha256%3Aab",
            "x".repeat(900)
        );
        let short = short_url(&long);
        assert!(short.len() < 80, "{short}");
        assert!(short.ends_with("&digest=sha256%3Aab"));
        assert_eq!(doing("PUT", &long), "uploading sha256:ab");
        assert_eq!(
            doing("GET", "http://h/v2/r/blobs/sha256:cd"),
            "downloading sha256:cd"
        );
    }
}
