//! Remote build contexts, as `docker buildx build` takes them: a git URL
//! (`https://host/org/repo.git#ref:subdir`, `git@host:org/repo.git`,
//! `git://`, `ssh://`) or an HTTP(S) URL of a tarball, as the main
//! context or as `--build-context NAME=URL`. They are fetched into the
//! build's staging directory before anything else happens; the rest of
//! the build sees a local directory.
//!
//! Credentials: git's own credential helpers (kiln runs `git`), the
//! `--secret id=GIT_AUTH_TOKEN[.<host>]` / `GIT_AUTH_HEADER[.<host>]`
//! secrets (an `Authorization` header passed to git through its
//! environment) and `--ssh default` (the agent for ssh URLs).

use super::flags::{parse_secrets, parse_ssh};
use super::BuildArgs;
use anyhow::{Context, Result};
use kiln_solver::context::git::{self, FetchOptions, GitAuth, GitUrl};
use kiln_solver::context::url as context_url;
use kiln_solver::SecretSource;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Whether `value` names a remote context: a git URL or an http(s) URL
/// that is not a local directory (buildx looks for the directory first).
pub(super) fn is_remote(value: &str) -> bool {
    !Path::new(value).is_dir() && (git::is_git_url(value) || context_url::is_http_url(value))
}

/// Fetches the main context `args.context` into `staging/context`.
///
/// # Errors
/// The fetch's one-line error, naming the URL.
pub(super) fn fetch_main(args: &BuildArgs, staging: &Path) -> Result<PathBuf> {
    fetch(args, &args.context, staging, "context")
}

/// The commit a git context was checked out at (kept beside the checkout
/// by [`fetch_main`]), for the provenance's materials.
pub(super) fn main_commit(staging: &Path) -> Option<String> {
    std::fs::read_to_string(staging.join("context.commit"))
        .ok()
        .filter(|c| c.len() <= 64 && c.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Fetches every remote `--build-context NAME=URL` into the staging
/// directory; the directories by URL (each URL once).
///
/// # Errors
/// The first fetch that fails, named with its flag.
pub(super) fn fetch_named(args: &BuildArgs, staging: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut fetched = BTreeMap::new();
    for (i, c) in args.build_contexts.iter().enumerate() {
        let Some((name, value)) = c.split_once('=') else {
            continue;
        };
        if !is_remote(value) || fetched.contains_key(value) {
            continue;
        }
        let dir = fetch(args, value, staging, &format!("named-{i}"))
            .with_context(|| format!("--build-context {name}"))?;
        fetched.insert(value.to_string(), dir);
    }
    Ok(fetched)
}

fn fetch(args: &BuildArgs, value: &str, staging: &Path, dir_name: &str) -> Result<PathBuf> {
    let dest = staging.join(dir_name);
    let work = staging.join(format!("{dir_name}.work"));
    let result = fetch_into(args, value, &dest, &work);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| dest)
}

fn fetch_into(args: &BuildArgs, value: &str, dest: &Path, work: &Path) -> Result<()> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let options = FetchOptions::from_env(GitAuth::default(), None)?;
    match GitUrl::detect(value) {
        Some(url) => {
            let url = url?;
            let secrets = parse_secrets(&args.secret)?;
            let auth = GitAuth::for_url(&url, |id| secret_value(&secrets, id));
            let sources = parse_ssh(&args.ssh)?;
            let mut ssh = sources
                .sockets
                .get("default")
                .or_else(|| sources.sockets.values().next())
                .cloned();
            // Key files (`--ssh default=KEYFILE`): kiln's agent serves them
            // for the fetch, on a runtime of its own.
            let mut _agent = None;
            let keys = sources
                .keys
                .get("default")
                .or_else(|| sources.keys.values().next());
            if let (None, Some(keys)) = (&ssh, keys) {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .context("starting the SSH agent's runtime")?;
                let agent = crate::ssh_agent::KeyAgent::start(&rt, keys.clone())?;
                ssh = Some(agent.socket().to_path_buf());
                _agent = Some((agent, rt));
            }
            let options = FetchOptions {
                auth,
                ssh_agent: ssh,
                ..options
            };
            let fetched = git::fetch(&url, dest, work, &options)?;
            if let Some(parent) = dest.parent() {
                // Only the provenance reads it; a failure costs its digest.
                let name = dest.file_name().unwrap_or_default().to_string_lossy();
                let _ = std::fs::write(parent.join(format!("{name}.commit")), fetched.commit);
            }
        }
        None => {
            context_url::fetch(value, dest, work, options.timeout)?;
        }
    }
    Ok(())
}

/// A secret's value, or `None` when it is not given or cannot be read
/// (a credential is optional: git's helpers may have one).
fn secret_value(secrets: &BTreeMap<String, SecretSource>, id: &str) -> Option<Vec<u8>> {
    match secrets.get(id)? {
        SecretSource::File(p) => std::fs::read(p).ok(),
        SecretSource::Env(v) => std::env::var(v).ok().map(String::into_bytes),
    }
}

/// `-f FILE` of a remote context: relative to the context root, and
/// inside it.
///
/// # Errors
/// A path that leaves the context.
pub(super) fn dockerfile_in(context_dir: &Path, file: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let mut rel = PathBuf::new();
    for c in file.components() {
        match c {
            Component::Normal(p) => rel.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir if rel.pop() => {}
            _ => anyhow::bail!("-f {}: leaves the remote context", file.display()),
        }
    }
    let path = context_dir.join(&rel);
    let real = std::fs::canonicalize(&path).with_context(|| format!("-f {}", file.display()))?;
    let root = std::fs::canonicalize(context_dir)?;
    if !real.starts_with(&root) {
        anyhow::bail!("-f {}: leaves the remote context", file.display());
    }
    Ok(real)
}
