//! The closed set of operations a build is made of. Each is plain data,
//! serialised canonically (fields in declaration order, no maps with
//! unordered keys) so that its digest is stable.
//!
//! The solver owns these types: their serialised form decides vertex
//! digests and cache keys (pinned by `tests/digests.rs`), so no other
//! crate's layout may leak into them. The executor's types for carrying
//! an op out are made from them in one place, `convert.rs`.

mod convert;

pub(crate) use convert::executor_actions;
mod exec;
mod file;

pub use exec::{CacheSharing, ExecFile, ExecMount, ExecOp, MountSource, NetworkMode, SecurityMode};
pub use file::{Chmod, CopyAction, FileAction, FileOp, Owner};

use serde::Serialize;

/// One operation of the build graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The empty filesystem (`FROM scratch`).
    Scratch,
    /// An image's filesystem, pinned to a manifest digest.
    Image(ImageSource),
    /// Files of a local build context (the main one or a named one).
    Context(ContextSource),
    /// A file downloaded over HTTP(S) (ADD of a URL).
    Http(HttpSource),
    /// A git repository checked out (ADD of a git URL).
    Git(GitSource),
    /// File operations applied on top of input 0; other inputs are sources.
    File(FileOp),
    /// A process run on top of input 0 (RUN).
    Exec(ExecOp),
    /// The layers of every input stacked in order (`COPY --link`).
    Merge,
}

impl Op {
    /// The op as `--print json` shows it: a password in a URL is
    /// replaced (its digest, computed from the op itself, is unchanged).
    pub fn shown(&self) -> Op {
        let mut op = self.clone();
        match &mut op {
            Op::Http(source) => source.url = crate::context::git::redact_url(&source.url),
            Op::Git(source) => source.url = crate::context::git::redact_url(&source.url),
            _ => {}
        }
        op
    }

    /// A short kind name for graph output and progress.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Scratch => "scratch",
            Op::Image(_) => "image",
            Op::Context(_) => "context",
            Op::Http(_) => "http",
            Op::Git(_) => "git",
            Op::File(_) => "file",
            Op::Exec(_) => "exec",
            Op::Merge => "merge",
        }
    }
}

/// An image source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSource {
    /// The normalised reference as written (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// The manifest digest it resolved to (identity of the content).
    pub manifest: String,
    /// The platform selected (`linux/amd64`).
    pub platform: String,
}

/// A URL to download (ADD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpSource {
    /// The URL.
    pub url: String,
    /// `--checksum`, verified against the content.
    pub checksum: Option<String>,
    /// The file name it is saved as (the last path segment).
    pub filename: String,
}

/// A git repository to check out (ADD). Its vertex digest covers the
/// URL as written (ref, subdir and options); the step's cache key covers
/// the commit it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitSource {
    /// The URL as written (`https://host/repo.git?ref=v1&subdir=docs`).
    pub url: String,
    /// `ADD --checksum`: the commit the ref must resolve to.
    pub checksum: Option<String>,
    /// `ADD --keep-git-dir=true` (the URL's `keep-git-dir=true` also
    /// keeps it).
    pub keep_git_dir: bool,
}

/// A local context source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextSource {
    /// `context` for the main one, else the `--build-context` name.
    pub name: String,
}
