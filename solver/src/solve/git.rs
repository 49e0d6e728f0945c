//! `ADD <git url>`: the repository checked out into the store's downloads
//! directory (`<store>/http/<url digest>-<commit>`, beside `ADD <url>`
//! files, pruned with them), through [`crate::context::git::fetch`] with
//! the build's `GIT_AUTH_TOKEN`/`GIT_AUTH_HEADER` secrets and `--ssh`
//! agent.

use super::step::HostInputs;
use super::SecretSource;
use crate::context::git::{self, FetchOptions, GitAuth, GitError, GitUrl};
use crate::op::GitSource;
use kiln_oci::{Digest, LocalStore};
use std::path::PathBuf;

/// Checks `source` out; returns the directory of its tree (the subdir
/// when one is given) and the commit.
///
/// # Errors
/// [`GitError`]: a bad URL, git failing, the deadline, a pinned commit
/// that differs.
pub(super) fn checkout(
    store: &LocalStore,
    host: &HostInputs,
    source: &GitSource,
) -> Result<(PathBuf, String), GitError> {
    let mut url = match GitUrl::detect(&source.url) {
        Some(u) => u?,
        None => {
            return Err(GitError::BadUrl {
                url: git::redact_url(&source.url),
                problem: "not a git URL".into(),
            })
        }
    };
    if let Some(c) = &source.checksum {
        url.pin(c)?;
    }
    url.keep_git_dir |= source.keep_git_dir;
    let auth = GitAuth::for_url(&url, |id| match host.secrets.get(id)? {
        SecretSource::File(p) => std::fs::read(p).ok(),
        SecretSource::Env(v) => std::env::var(v).ok().map(String::into_bytes),
    });
    let options = FetchOptions::from_env(auth, host.ssh.get("default").cloned())?;
    let shown = url.to_string();
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        let url = shown.clone();
        move |error| GitError::Io { url, path, error }
    };
    let downloads = store.layout().downloads();
    std::fs::create_dir_all(&downloads).map_err(io(&downloads))?;
    // `.tmp-<process tag>-`: `kiln prune` knows a running build's
    // temporaries.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{}-", kiln_oci::process_tag()))
        .tempdir_in(&downloads)
        .map_err(io(&downloads))?;
    let tree = tmp.path().join("tree");
    let fetched = git::fetch(&url, &tree, &tmp.path().join("work"), &options)?;
    let identity = format!(
        "{}\n{}\n{}",
        source.url,
        source.checksum.as_deref().unwrap_or(""),
        url.keep_git_dir
    );
    let dir = downloads.join(format!(
        "{}-{}",
        Digest::sha256(identity.as_bytes()).hex(),
        fetched.commit.get(..16).unwrap_or(&fetched.commit)
    ));
    if !dir.exists() {
        std::fs::rename(&tree, &dir).map_err(io(&dir))?;
    } else if let Ok(d) = std::fs::File::open(&dir) {
        // The last use, for `kiln prune`'s order.
        let _ = d.set_modified(std::time::SystemTime::now());
    }
    Ok((dir, fetched.commit))
}
