//! The closed set of operations a build is made of. Each is plain data,
//! serialised canonically (fields in declaration order, no maps with
//! unordered keys) so that its digest is stable.

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
    /// File operations applied on top of input 0; other inputs are sources.
    File(FileOp),
    /// A process run on top of input 0 (RUN; executed in the next issue).
    Exec(ExecOp),
    /// The layers of every input stacked in order (`COPY --link`).
    Merge,
}

impl Op {
    /// A short kind name for graph output and progress.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Scratch => "scratch",
            Op::Image(_) => "image",
            Op::Context(_) => "context",
            Op::Http(_) => "http",
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

/// A local context source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextSource {
    /// `context` for the main one, else the `--build-context` name.
    pub name: String,
}

/// A sequence of file actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOp {
    /// Applied in order.
    pub actions: Vec<FileAction>,
}

pub use kiln_executor::{Chmod, CopyAction, FileAction, Owner};

/// A process to run (RUN). Lowered now, executed by the next issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecOp {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// `user[:group]`.
    pub user: String,
    /// `--network` mode: `default`, `host` or `none`.
    pub network: String,
    /// `--security` mode: `sandbox` or `insecure`.
    pub security: String,
    /// Files provided read-only at these paths while the process runs (a
    /// `#!` heredoc script at `/dev/pipes/NAME`); never in the layer.
    pub files: Vec<ExecFile>,
    /// `RUN --mount`s. Only their definitions are hashed: a secret's value
    /// and a cache's contents never reach a cache key.
    pub mounts: Vec<ExecMount>,
}

/// A `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecMount {
    /// A persistent cache directory, shared between builds.
    Cache {
        /// Where it appears.
        target: String,
        /// Its identity (`id=`, default the target).
        id: String,
        /// Mode of a new cache directory (default 0755).
        mode: u32,
        /// Owner of a new cache directory.
        uid: u32,
        /// Group of a new cache directory.
        gid: u32,
        /// `sharing=`: how concurrent steps share it.
        sharing: CacheSharing,
        /// `ro`.
        readonly: bool,
        /// `from=`/`source=`: what a new cache directory starts with.
        seed: Option<MountSource>,
    },
    /// A path of another input (`type=bind`): a stage, an image or a
    /// context. Writes (`rw`) are discarded after the step.
    Bind {
        /// Where it appears.
        target: String,
        /// The input and the path in it.
        source: MountSource,
        /// Read-only (the default).
        readonly: bool,
    },
    /// An SSH agent socket forwarded from `--ssh`.
    Ssh {
        /// The `--ssh` id (default `default`).
        id: String,
        /// Where the socket appears (default `/run/buildkit/ssh_agent.N`).
        target: String,
        /// Socket mode (default 0600).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Fail when the agent was not given.
        required: bool,
    },
    /// A secret from `--secret`, as a file and/or an environment variable.
    Secret {
        /// The secret id.
        id: String,
        /// Where the file appears (default `/run/secrets/<id>` unless only
        /// `env=` is given).
        target: Option<String>,
        /// `env=`: the environment variable that holds the value.
        env: Option<String>,
        /// File mode (default 0400).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Fail when the secret was not given.
        required: bool,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Where it appears.
        target: String,
        /// Size limit in bytes.
        size: Option<u64>,
    },
}

/// A path inside one of a vertex's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSource {
    /// The index in the vertex's inputs (0 is the base filesystem).
    pub input: usize,
    /// The path inside it (`/` for all of it).
    pub path: String,
}

/// How concurrent steps share a cache mount (`sharing=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    /// Every step uses the same directory at once.
    Shared,
    /// A step finding the directory in use gets a directory of its own.
    Private,
    /// Steps wait for each other.
    Locked,
}

/// A file an exec op provides while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecFile {
    /// Absolute path inside the container.
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
}
