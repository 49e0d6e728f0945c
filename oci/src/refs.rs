//! Named references (`docker.io/library/busybox:latest` → manifest digest),
//! kept in `refs.json` beside the blobs.
//!
//! Every change is a read-modify-write under an exclusive lock on
//! `refs.lock`, and the new file is written to a temporary name (with the
//! writer's pid, [`crate::StoreLayout::staging_prefix`]) and renamed over
//! the old one, so concurrent kiln processes never lose an update and
//! a crash never leaves a half-written file. Reads take a shared lock on
//! a read-only handle, so they work on a store on a read-only mount.

use crate::digest::Digest;
use crate::store::{io_err, LocalStore, Result};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;

impl LocalStore {
    fn refs_path(&self) -> PathBuf {
        self.layout().refs()
    }

    /// Takes the lock on `refs.lock`: exclusive for a change, shared for a
    /// read. A reader opens the file read-only, so a store on a read-only
    /// mount can be read; there no writer can exist, and when the lock file
    /// is absent and cannot be made, a reader goes without it.
    fn lock_refs(&self, exclusive: bool) -> Result<Option<File>> {
        let path = self.layout().refs_lock();
        let create = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        };
        let file = if exclusive {
            create()
        } else {
            match File::open(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => match create() {
                    Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => return Ok(None),
                    other => other,
                },
                other => other,
            }
        };
        let file = file.map_err(io_err("opening", &path))?;
        if exclusive {
            file.lock().map_err(io_err("locking", &path))?;
        } else {
            file.lock_shared().map_err(io_err("locking", &path))?;
        }
        Ok(Some(file))
    }

    fn load_refs(&self) -> Result<BTreeMap<String, Digest>> {
        let path = self.refs_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io_err("parsing", &path)(io::Error::new(io::ErrorKind::InvalidData, e))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    fn save_refs(&self, refs: &BTreeMap<String, Digest>) -> Result<()> {
        let path = self.refs_path();
        // Named for this process, so a sweep removes it after a kill -9.
        let tmp = self.layout().staging().join(format!(
            "{}refs.json",
            crate::layout::StoreLayout::staging_prefix()
        ));
        let bytes = serde_json::to_vec_pretty(refs).map_err(|e| {
            io_err("encoding", &path)(io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        fs::write(&tmp, bytes).map_err(io_err("writing", &tmp))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("replacing", &path))
    }

    /// Points `name` at `digest`, replacing what it pointed at.
    ///
    /// # Errors
    /// An I/O error naming the refs file or its lock.
    pub fn set_ref(&self, name: &str, digest: &Digest) -> Result<()> {
        let _lock = self.lock_refs(true)?;
        let mut refs = self.load_refs()?;
        refs.insert(name.to_string(), digest.clone());
        self.save_refs(&refs)
    }

    /// What `name` points at, if anything.
    ///
    /// # Errors
    /// An I/O error naming the refs file or its lock.
    pub fn get_ref(&self, name: &str) -> Result<Option<Digest>> {
        let _lock = self.lock_refs(false)?;
        Ok(self.load_refs()?.remove(name))
    }

    /// Removes `name`; returns whether it existed.
    ///
    /// # Errors
    /// An I/O error naming the refs file or its lock.
    pub fn remove_ref(&self, name: &str) -> Result<bool> {
        let _lock = self.lock_refs(true)?;
        let mut refs = self.load_refs()?;
        let existed = refs.remove(name).is_some();
        if existed {
            self.save_refs(&refs)?;
        }
        Ok(existed)
    }

    /// Every reference and its digest, sorted by name.
    ///
    /// # Errors
    /// An I/O error naming the refs file or its lock.
    pub fn refs(&self) -> Result<BTreeMap<String, Digest>> {
        let _lock = self.lock_refs(false)?;
        self.load_refs()
    }
}
