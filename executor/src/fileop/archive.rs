//! ADD of local archives: detection by content (tar, gzip, bzip2, xz) and
//! extraction as Docker's `archive.Untar` does it: entries keep the
//! archive's modes (setuid/sticky included), owners, symlinks and
//! hardlinks; a directory over a directory merges and takes the entry's
//! metadata; anything else replaces what is there; missing parents are
//! created 0755 0:0; entries escaping the destination are an error.
//!
//! Entries are confined to the root as BuildKit does it: entry and
//! hardlink-target paths have `..` clamped at the destination (past it:
//! an error, Docker's "breakout") and absolute names taken relative to
//! the destination; symlinks met on the way (written by earlier entries
//! or present in the image) are resolved inside the root, so
//! `link -> /tmp/x` then `link/f` writes `/tmp/x/f` of the image, never of
//! the host.

use super::tree::{abs, base_name, join, parent, Meta, Upper};
use super::FileOpError;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The archive's content, decompressed.
fn open(path: &Path) -> Result<Box<dyn Read>, FileOpError> {
    let mut file = File::open(path).map_err(|e| FileOpError::io("opening", path, e))?;
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FileOpError::io("reading", path, e)),
        }
    }
    let head = io::Cursor::new(magic[..n].to_vec());
    let reader = BufReader::new(head.chain(file));
    let magic = &magic[..n];
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if magic.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(reader))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(reader))
    } else {
        Box::new(reader)
    })
}

/// Whether the file at `path` is a (possibly compressed) tar: its first
/// 512 decompressed bytes are a tar header with a valid checksum.
pub(crate) fn is_archive(path: &Path) -> Result<bool, FileOpError> {
    let mut reader = open(path)?;
    let mut block = [0u8; 512];
    if reader.read_exact(&mut block).is_err() {
        return Ok(false);
    }
    if block.iter().all(|&b| b == 0) {
        return Ok(false);
    }
    let Some(stored) = octal(&block[148..156]) else {
        return Ok(false);
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    Ok(stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed))
}

/// A NUL/space-terminated octal number of a tar header field.
fn octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return None;
    }
    u64::from_str_radix(s, 8).ok()
}

/// The entry path cleaned and checked to stay below the destination.
fn entry_rel(raw: &[u8]) -> Result<String, FileOpError> {
    let name = String::from_utf8_lossy(raw);
    let mut comps: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if comps.pop().is_none() {
                    return Err(FileOpError::invalid(format!(
                        "archive entry {name:?} is outside of the destination"
                    )));
                }
            }
            c => comps.push(c),
        }
    }
    Ok(comps.join("/"))
}

/// Refuses a PAX sparse member (GNU tar `--sparse --format=posix`): `tar`
/// would hand out its sparse map as file content under a
/// `GNUSparseFile.N/` name.
fn refuse_pax_sparse<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw: &[u8],
    path: &Path,
) -> Result<(), FileOpError> {
    let Some(pax) = entry
        .pax_extensions()
        .map_err(|e| FileOpError::io("reading archive", path, e))?
    else {
        return Ok(());
    };
    for ext in pax {
        let ext = ext.map_err(|e| FileOpError::io("reading archive", path, e))?;
        if ext.key().is_ok_and(|k| k.starts_with("GNU.sparse.")) {
            return Err(FileOpError::invalid(format!(
                "{}: archive entry {:?} is a PAX sparse file, which kiln does not extract; \
                 write the archive without --sparse or in GNU format",
                path.display(),
                String::from_utf8_lossy(raw)
            )));
        }
    }
    Ok(())
}

/// Extracts the archive at `path` into directory `dest` (resolved, exists).
pub(crate) fn extract(fs: &mut Upper<'_>, path: &Path, dest: &str) -> Result<(), FileOpError> {
    let mut archive = tar::Archive::new(open(path)?);
    let read_err = |e: io::Error| FileOpError::io("reading archive", path, e);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes().into_owned();
        let rel = entry_rel(&raw)?;
        if rel.is_empty() {
            continue;
        }
        refuse_pax_sparse(&mut entry, &raw, path)?;
        let header = entry.header();
        let kind = header.entry_type();
        // Empty numeric fields read as 0, as Go's archive/tar does.
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mode = header.mode().unwrap_or(0) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let meta = Meta {
            uid,
            gid,
            mode,
            mtime: Some((mtime as i64, 0)),
        };
        let parent_dir = fs.resolve(&join(dest, parent(&rel)), true)?;
        let root_dirs = Meta {
            uid: 0,
            gid: 0,
            mode: 0o755,
            mtime: None,
        };
        fs.mkdir_all(&parent_dir, root_dirs)?;
        let target = join(&parent_dir, base_name(&rel));
        let shown = abs(&target);
        if kind.is_dir() {
            fs.make_dir(&target, meta, true)?;
            fs.set_meta(&target, meta, true)?;
            continue;
        }
        let real = match kind {
            tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::GNUSparse
            | tar::EntryType::Symlink
            | tar::EntryType::Link
            | tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo => fs.prepare_nondir(&target)?,
            // Pax/GNU extensions are folded into the entries by `tar`;
            // anything else (volume labels) is skipped.
            _ => continue,
        };
        match kind {
            // `tar` expands a GNU sparse member to its full content.
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut out =
                    File::create(&real).map_err(|e| FileOpError::io("creating", &shown, e))?;
                io::copy(&mut entry, &mut out)
                    .map_err(|e| FileOpError::io("extracting", &shown, e))?;
            }
            tar::EntryType::Symlink => {
                let link = entry.link_name_bytes().ok_or_else(|| {
                    FileOpError::invalid(format!("symlink {} has no target", shown.display()))
                })?;
                let link = std::ffi::OsStr::from_bytes(&link).to_os_string();
                std::os::unix::fs::symlink(&link, &real)
                    .map_err(|e| FileOpError::io("creating symlink", &shown, e))?;
            }
            tar::EntryType::Link => {
                let link = entry.link_name_bytes().ok_or_else(|| {
                    FileOpError::invalid(format!("hardlink {} has no target", shown.display()))
                })?;
                // Resolved inside the root (not following a final
                // symlink): a path through a symlink written by an earlier
                // entry must not reach the host's filesystem.
                let first = fs.resolve(&join(dest, &entry_rel(&link)?), false)?;
                let first_real = fs.real(&first);
                std::fs::hard_link(&first_real, &real)
                    .map_err(|e| FileOpError::io("linking", &shown, e))?;
                continue;
            }
            _ => {
                let ftype = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                crate::file_meta::mknod(
                    &real,
                    ftype | mode,
                    crate::file_meta::makedev(major, minor),
                )
                .map_err(|e| FileOpError::io("creating node", &shown, e))?;
            }
        }
        fs.set_meta(&target, meta, false)?;
    }
    Ok(())
}
