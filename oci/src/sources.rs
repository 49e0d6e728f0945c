//! Where each blob is known to live remotely (`registry/repository`), so a
//! push to another repository of the same registry can mount it instead of
//! uploading it. One small file per blob under `sources/`, appended to with
//! single `O_APPEND` writes, which concurrent processes cannot interleave.

use crate::digest::Digest;
use crate::store::{io_err, LocalStore, Result};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

impl LocalStore {
    fn sources_path(&self, digest: &Digest) -> PathBuf {
        self.layout().blob_sources(digest)
    }

    /// Records that `digest` is present in `location` (`host/repository`).
    ///
    /// # Errors
    /// An I/O error naming the sources file.
    pub fn add_source(&self, digest: &Digest, location: &str) -> Result<()> {
        if self.sources(digest)?.iter().any(|s| s == location) {
            return Ok(());
        }
        let path = self.sources_path(digest);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        file.write_all(format!("{location}\n").as_bytes())
            .map_err(io_err("appending to", &path))
    }

    /// The locations `digest` is known to be in, oldest first.
    ///
    /// # Errors
    /// An I/O error naming the sources file.
    pub fn sources(&self, digest: &Digest) -> Result<Vec<String>> {
        let path = self.sources_path(digest);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// Forgets where `digest` lives (when the blob is deleted).
    pub(crate) fn forget_sources(&self, digest: &Digest) {
        let _ = fs::remove_file(self.sources_path(digest));
    }
}
