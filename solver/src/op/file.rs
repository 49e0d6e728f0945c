//! File operations (COPY, ADD, WORKDIR's mkdir, heredoc files, removal) as
//! the solver hashes them. The executor has its own types for carrying them
//! out; `convert.rs` turns these into those.

use serde::Serialize;

/// A sequence of file actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOp {
    /// Applied in order.
    pub actions: Vec<FileAction>,
}

/// One file action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FileAction {
    /// Copy paths from a source tree into the destination.
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

/// COPY/ADD of paths from one of the vertex's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyAction {
    /// Index of the source (in the vertex's inputs).
    pub input: usize,
    /// Source paths as written (after expansion); may hold wildcards.
    pub sources: Vec<String>,
    /// Destination path, absolute (already joined with WORKDIR), cleaned.
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

/// Owner for created files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Owner {
    /// Numeric ids.
    Ids {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
    },
    /// Names (or numbers as text), looked up in the destination's
    /// /etc/passwd and /etc/group when the action runs.
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
