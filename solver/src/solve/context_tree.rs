//! The build context seen as an executor [`SourceTree`]: `.dockerignore`
//! applies to everything COPY reads.

use crate::context::{BuildContext, ContextError, EntryKind};
use kiln_executor::{names, SourceEntry, SourceError, SourceTree};
use std::sync::Arc;

/// A [`BuildContext`] as a COPY source.
#[derive(Debug, Clone)]
pub struct ContextTree(pub Arc<BuildContext>);

fn to_source_error(e: ContextError) -> SourceError {
    match e {
        ContextError::NotFound { source } => SourceError::NotFound { path: source },
        other => SourceError::Io {
            action: "reading the build context",
            path: std::path::PathBuf::new(),
            error: std::io::Error::other(other.to_string()),
        },
    }
}

impl SourceTree for ContextTree {
    fn resolve(&self, source: &str) -> Result<Vec<String>, SourceError> {
        let entries = self.0.resolve(source).map_err(to_source_error)?;
        Ok(entries.into_iter().map(|e| e.rel_path).collect())
    }

    fn entry(&self, rel: &str) -> Result<Option<SourceEntry>, SourceError> {
        let rel = rel.trim_matches('/');
        let included = rel.is_empty()
            || self.0.includes(rel).map_err(|e| SourceError::Io {
                action: "reading the build context",
                path: names::rel_path(self.0.root(), rel),
                error: std::io::Error::other(e.to_string()),
            })?;
        if !included {
            return Ok(None);
        }
        let real = names::rel_path(self.0.root(), rel);
        match std::fs::symlink_metadata(&real) {
            Ok(metadata) => Ok(Some(SourceEntry {
                rel: rel.to_string(),
                real,
                metadata,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(SourceError::Io {
                action: "reading",
                path: real,
                error,
            }),
        }
    }

    fn list(&self, rel: &str) -> Result<Vec<String>, SourceError> {
        Ok(self
            .children(rel)?
            .into_iter()
            .map(|e| match e.rel.rsplit_once('/') {
                Some((_, name)) => name.to_string(),
                None => e.rel,
            })
            .collect())
    }

    /// One read of the directory, each child's metadata from it
    /// (`fstatat`, not a lookup of its whole path).
    fn children(&self, rel: &str) -> Result<Vec<SourceEntry>, SourceError> {
        let rel = rel.trim_matches('/');
        let dir = names::rel_path(self.0.root(), rel);
        let listing = |error| SourceError::Io {
            action: "listing",
            path: dir.clone(),
            error,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(listing)? {
            let entry = entry.map_err(listing)?;
            let metadata = match entry.metadata() {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    return Err(SourceError::Io {
                        action: "reading",
                        path: entry.path(),
                        error,
                    })
                }
            };
            let name = names::encode(&entry.file_name()).into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            // An excluded directory stays listed when an exception
            // re-includes something below it.
            let kind = EntryKind::from_file_type(metadata.file_type());
            let present = self
                .0
                .is_present(&child, kind)
                .map_err(|e| SourceError::Io {
                    action: "reading the build context",
                    path: entry.path(),
                    error: std::io::Error::other(e.to_string()),
                })?;
            if present {
                out.push(SourceEntry {
                    rel: child,
                    real: entry.path(),
                    metadata,
                });
            }
        }
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }
}
