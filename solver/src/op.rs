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

/// Owner for created files: numeric ids, resolved while lowering or at
/// execution from the destination's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Owner {
    /// Numeric ids.
    Ids {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
    },
    /// Names (or a mix) looked up in the destination filesystem's
    /// /etc/passwd and /etc/group when the action runs; unknown names give
    /// 0, as BuildKit does.
    Names {
        /// User name or number.
        user: String,
        /// Group name or number, if given.
        group: Option<String>,
    },
}

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Chmod {
    /// Octal permission bits.
    Octal(u32),
    /// A symbolic mode (`u+x,g-w`), applied to each file's current mode.
    Symbolic(String),
}

/// One file action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FileAction {
    /// Copy paths from a source input into the destination.
    Copy(CopyAction),
    /// Create a directory.
    Mkdir {
        /// Absolute path.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Owner of the directory and of parents it creates.
        owner: Option<Owner>,
        /// Create missing parents.
        parents: bool,
    },
    /// Create a file with given content (heredoc COPY sources).
    Mkfile {
        /// Absolute path.
        path: String,
        /// Content.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner.
        owner: Option<Owner>,
    },
    /// Remove a path.
    Rm {
        /// Absolute path.
        path: String,
        /// No error when absent.
        allow_not_found: bool,
    },
}

/// COPY/ADD of paths from an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyAction {
    /// Index of the input holding the sources (in the vertex's inputs).
    pub input: usize,
    /// Source paths as written (after expansion); may hold wildcards.
    pub sources: Vec<String>,
    /// Destination path, absolute (already joined with WORKDIR).
    pub dest: String,
    /// The destination was written with a trailing slash (or is `.`):
    /// sources go inside it.
    pub dest_is_dir: bool,
    /// `--chown`.
    pub owner: Option<Owner>,
    /// `--chmod`.
    pub chmod: Option<Chmod>,
    /// ADD: extract local tar archives.
    pub unpack: bool,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// `--parents`: keep the source's parent directories.
    pub parents: bool,
}

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
    /// `--network` mode.
    pub network: String,
}
