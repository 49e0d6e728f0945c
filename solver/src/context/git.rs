//! A git repository as a build context (`kiln build <git url>`,
//! `--build-context name=<git url>`) or an `ADD` source: the URL rules
//! ([`GitUrl`]), credentials ([`GitAuth`]) and a shallow fetch into a
//! directory ([`fetch`]) through the `git` binary.
//!
//! Every fetch has one deadline for all its git commands
//! (`KILN_GIT_TIMEOUT`, seconds, default 600), after which git and its
//! helpers are killed, and curl's low-speed limit (1000 B/s over 30 s)
//! for HTTP. Tokens go to git as `http.<url>.extraheader` config through
//! the environment: never on a command line, in a message, a file of the
//! checkout or a cache key.

mod run;
mod url;

pub use url::redact as redact_url;
pub use url::{is_git_url, GitUrl};

use run::Runner;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The variable that sets the deadline of a git fetch, in seconds.
pub const TIMEOUT_VAR: &str = "KILN_GIT_TIMEOUT";
/// The deadline without [`TIMEOUT_VAR`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a git URL cannot be used or fetched. One line, naming the URL
/// (without its password) and never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// The URL's options are unusable.
    #[error("git URL {url}: {problem}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// `KILN_GIT_TIMEOUT` is not a number of seconds.
    #[error("{TIMEOUT_VAR}={value:?}: expected a positive number of seconds")]
    BadTimeout {
        /// Its value.
        value: String,
    },
    /// git could not be started.
    #[error("{url}: cannot run git: {error}")]
    Spawn {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// A git command failed.
    #[error("{url}: git {what} failed: {message}")]
    Failed {
        /// The URL.
        url: String,
        /// The git command (`fetch`, `checkout`...).
        what: String,
        /// git's message.
        message: String,
    },
    /// The deadline passed.
    #[error("{url}: git did not finish within {seconds}s (set {TIMEOUT_VAR}=SECONDS for more)")]
    Timeout {
        /// The URL.
        url: String,
        /// The deadline.
        seconds: u64,
    },
    /// The fetched commit is not the pinned one.
    #[error("{url}: commit {got} does not match the pinned checksum {expected}")]
    Mismatch {
        /// The URL.
        url: String,
        /// The pin.
        expected: String,
        /// The commit the ref resolved to.
        got: String,
    },
    /// The subdirectory is missing, not a directory, or a symlink.
    #[error("{url}: subdir {subdir:?} is not a directory of commit {commit}")]
    NoSubdir {
        /// The URL.
        url: String,
        /// The subdirectory.
        subdir: String,
        /// The commit.
        commit: String,
    },
    /// A file operation on the checkout failed.
    #[error("{url}: {path}: {error}")]
    Io {
        /// The URL.
        url: String,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
}

/// An `Authorization` header for git over HTTP(S), from the
/// `GIT_AUTH_HEADER` / `GIT_AUTH_TOKEN` secrets (BuildKit's names). Its
/// `Debug` shows no value.
#[derive(Clone, Default)]
pub struct GitAuth {
    header: Option<String>,
    secrets: Vec<String>,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.header.is_some() {
            "GitAuth(set)"
        } else {
            "GitAuth(none)"
        })
    }
}

impl GitAuth {
    /// Picks the credential for `url` from the secrets `secret(id)`
    /// returns, first found of `GIT_AUTH_HEADER.<host>`,
    /// `GIT_AUTH_TOKEN.<host>`, `GIT_AUTH_HEADER`, `GIT_AUTH_TOKEN`. A
    /// token becomes `basic base64(x-access-token:TOKEN)`. Nothing for a
    /// remote that is not HTTP(S).
    pub fn for_url(url: &GitUrl, secret: impl Fn(&str) -> Option<Vec<u8>>) -> GitAuth {
        use base64::Engine as _;
        if !url.is_http() {
            return GitAuth::default();
        }
        let host = url.host().unwrap_or_default();
        let names = [
            (format!("GIT_AUTH_HEADER.{host}"), false),
            (format!("GIT_AUTH_TOKEN.{host}"), true),
            ("GIT_AUTH_HEADER".to_string(), false),
            ("GIT_AUTH_TOKEN".to_string(), true),
        ];
        for (name, token) in names {
            let Some(value) = secret(&name) else { continue };
            let value = String::from_utf8_lossy(&value).trim().to_string();
            if value.is_empty() {
                continue;
            }
            let header = if token {
                let b64 = base64::engine::general_purpose::STANDARD
                    .encode(format!("x-access-token:{value}"));
                format!("basic {b64}")
            } else {
                value.clone()
            };
            let secrets = vec![value, header.clone()];
            return GitAuth {
                header: Some(header),
                secrets,
            };
        }
        GitAuth::default()
    }

    /// Whether a credential was found.
    pub fn is_set(&self) -> bool {
        self.header.is_some()
    }
}

/// How to fetch: credentials, an SSH agent, the deadline.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// HTTP credentials.
    pub auth: GitAuth,
    /// An SSH agent socket (`--ssh default`).
    pub ssh_agent: Option<PathBuf>,
    /// The deadline of the whole fetch.
    pub timeout: Duration,
}

impl FetchOptions {
    /// Options with the deadline from `KILN_GIT_TIMEOUT`.
    ///
    /// # Errors
    /// The variable is set to something that is not a positive number.
    pub fn from_env(auth: GitAuth, ssh_agent: Option<PathBuf>) -> Result<FetchOptions, GitError> {
        let timeout = match std::env::var(TIMEOUT_VAR) {
            Ok(v) => {
                let secs: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .ok_or(GitError::BadTimeout { value: v.clone() })?;
                Duration::from_secs_f64(secs)
            }
            Err(_) => DEFAULT_TIMEOUT,
        };
        Ok(FetchOptions {
            auth,
            ssh_agent,
            timeout,
        })
    }
}

/// What a fetch checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The full commit id.
    pub commit: String,
}

/// Fetches `url` shallowly (`--depth 1`; a commit by its id) into a
/// repository under `work`, checks it out (with submodules unless turned
/// off), and moves its `subdir` (or the whole tree) to `dest`, which must
/// not exist. `.git` is left out unless `keep-git-dir`. `work` is scratch
/// space the caller removes.
///
/// # Errors
/// [`GitError`]: git failing (its message), the deadline, a pinned
/// commit that differs, a missing subdirectory.
pub fn fetch(
    url: &GitUrl,
    dest: &Path,
    work: &Path,
    options: &FetchOptions,
) -> Result<Fetched, GitError> {
    let shown = url.to_string();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        let url = shown.clone();
        move |error| GitError::Io { url, path, error }
    };
    let mut config = Vec::new();
    if let Some(h) = &options.auth.header {
        config.push((
            format!("http.{}.extraheader", url.remote),
            format!("Authorization: {h}"),
        ));
    }
    let mut env = Vec::new();
    if let Some(sock) = &options.ssh_agent {
        env.push(("SSH_AUTH_SOCK".to_string(), sock.display().to_string()));
    }
    let runner = Runner {
        deadline: Instant::now() + options.timeout,
        budget: options.timeout,
        config,
        env,
        secrets: &options.auth.secrets,
        shown: &shown,
    };
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo).map_err(io(&repo))?;
    runner.git(&repo, &["init", "-q"])?;
    let wanted = url.reference.clone().or_else(|| {
        url.checksum
            .clone()
            .filter(|c| c.len() == 40 || c.len() == 64)
    });
    let target = wanted.as_deref().unwrap_or("HEAD");
    let shallow = runner.git(
        &repo,
        &[
            "fetch",
            "-q",
            "--depth=1",
            "--no-tags",
            "--end-of-options",
            &url.remote,
            target,
        ],
    );
    let commit = match shallow {
        Ok(_) => rev_parse(&runner, &repo, "FETCH_HEAD^{commit}")?,
        Err(e) if is_commit_id(target) => {
            // The server refuses a commit in `want` (v0 without
            // allowReachableSHA1InWant): fetch everything.
            runner
                .git(
                    &repo,
                    &[
                        "fetch",
                        "-q",
                        "--end-of-options",
                        &url.remote,
                        "+refs/heads/*:refs/remotes/origin/*",
                        "+refs/tags/*:refs/tags/*",
                    ],
                )
                .map_err(|_| e)?;
            rev_parse(&runner, &repo, &format!("{target}^{{commit}}"))?
        }
        Err(e) => return Err(e),
    };
    if let Some(pin) = &url.checksum {
        if !commit.starts_with(&pin.to_ascii_lowercase()) {
            return Err(GitError::Mismatch {
                url: shown.clone(),
                expected: pin.clone(),
                got: commit,
            });
        }
    }
    runner.git(&repo, &["checkout", "-q", "--detach", &commit])?;
    if url.submodules && repo.join(".gitmodules").is_file() {
        runner.git(
            &repo,
            &[
                "submodule",
                "update",
                "-q",
                "--init",
                "--recursive",
                "--depth=1",
            ],
        )?;
    }
    let source = match &url.subdir {
        Some(sub) => {
            let mut p = repo.clone();
            for part in sub.split('/') {
                p.push(part);
                let is_dir = std::fs::symlink_metadata(&p)
                    .map(|m| m.file_type().is_dir())
                    .unwrap_or(false);
                if !is_dir {
                    return Err(GitError::NoSubdir {
                        url: shown.clone(),
                        subdir: sub.clone(),
                        commit,
                    });
                }
            }
            p
        }
        None => {
            if !url.keep_git_dir {
                let git_dir = repo.join(".git");
                std::fs::remove_dir_all(&git_dir).map_err(io(&git_dir))?;
            }
            repo.clone()
        }
    };
    std::fs::rename(&source, dest).map_err(io(dest))?;
    Ok(Fetched { commit })
}

fn rev_parse(runner: &Runner<'_>, repo: &Path, what: &str) -> Result<String, GitError> {
    let out = runner.git(repo, &["rev-parse", "--verify", "-q", what])?;
    Ok(out.trim().to_string())
}

fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}
