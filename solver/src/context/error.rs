//! Errors of the build context.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a build-context operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ContextError {
    /// A filesystem operation on `path` failed.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `.dockerignore` line is not a valid pattern.
    BadIgnorePattern {
        /// The ignore file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The pattern as read (after `ReadAll`'s cleaning).
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A COPY/ADD source names nothing in the context (or only excluded
    /// paths). `source` is the cleaned path with a leading `/`, as BuildKit
    /// prints it: `"/nope.txt": not found`.
    NotFound {
        /// The cleaned source path, e.g. `/nope.txt`.
        source: String,
    },
    /// A COPY/ADD source has an invalid wildcard pattern.
    BadSourcePattern {
        /// The source as written.
        source: String,
        /// The offending path component.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path that must be a directory is not one.
    NotADirectory {
        /// The context-relative path.
        path: String,
    },
    /// Resolving symlinks inside the context took too many steps.
    SymlinkLoop {
        /// The context-relative path being resolved.
        path: String,
    },
    /// A tar context entry would land outside the destination directory.
    TarEscape {
        /// The entry's path (or link target) in the archive.
        entry: String,
        /// The extraction directory.
        dest: PathBuf,
    },
    /// Reading or unpacking a tar context failed.
    Tar {
        /// The extraction directory.
        dest: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl From<kiln_patterns::IgnoreError> for ContextError {
    fn from(err: kiln_patterns::IgnoreError) -> ContextError {
        match err {
            kiln_patterns::IgnoreError::Io { path, source } => ContextError::Io { path, source },
            kiln_patterns::IgnoreError::BadPattern {
                path,
                line,
                pattern,
                reason,
            } => ContextError::BadIgnorePattern {
                path,
                line,
                pattern,
                reason: reason.to_string(),
            },
        }
    }
}

// Written by hand rather than with thiserror: `NotFound` and
// `BadSourcePattern` have a field named `source` (the COPY source) that
// thiserror would take for the underlying error.
impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ContextError::BadIgnorePattern {
                path,
                line,
                pattern,
                reason,
            } => write!(
                f,
                "{}:{line}: invalid pattern {pattern:?}: {reason}",
                path.display()
            ),
            ContextError::NotFound { source } => write!(f, "{source:?}: not found"),
            ContextError::BadSourcePattern {
                source,
                pattern,
                reason,
            } => write!(
                f,
                "COPY source {source:?}: invalid pattern {pattern:?}: {reason}"
            ),
            ContextError::NotADirectory { path } => {
                write!(f, "{path:?}: not a directory in the build context")
            }
            ContextError::SymlinkLoop { path } => {
                write!(f, "{path:?}: too many levels of symbolic links")
            }
            ContextError::TarEscape { entry, dest } => {
                write!(f, "tar context entry {entry:?} escapes {}", dest.display())
            }
            ContextError::Tar { dest, source } => {
                write!(f, "tar context into {}: {source}", dest.display())
            }
        }
    }
}

impl std::error::Error for ContextError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ContextError::Io { source, .. } | ContextError::Tar { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ContextError {
    /// An [`ContextError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ContextError {
        let path = path.into();
        move |source| ContextError::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_pattern() {
        let cases: Vec<(ContextError, &str)> = vec![
            (
                ContextError::NotFound {
                    source: "/nope.txt".into(),
                },
                "\"/nope.txt\": not found",
            ),
            (
                ContextError::BadIgnorePattern {
                    path: "/c/.dockerignore".into(),
                    line: 3,
                    pattern: "[".into(),
                    reason: "unterminated character class".into(),
                },
                "/c/.dockerignore:3: invalid pattern \"[\": unterminated character class",
            ),
            (
                ContextError::BadSourcePattern {
                    source: "src/a[".into(),
                    pattern: "a[".into(),
                    reason: "unterminated character class".into(),
                },
                "COPY source \"src/a[\": invalid pattern \"a[\": unterminated character class",
            ),
            (
                ContextError::TarEscape {
                    entry: "../x".into(),
                    dest: "/d".into(),
                },
                "tar context entry \"../x\" escapes /d",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
            assert!(std::error::Error::source(&err).is_none());
        }
        let io = ContextError::io("/x/y")(io::Error::from(io::ErrorKind::NotFound));
        assert!(io.to_string().starts_with("/x/y: "), "{io}");
        assert!(std::error::Error::source(&io).is_some());
    }
}
