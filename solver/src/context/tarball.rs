//! Unpacking a context sent as a tar stream (plain or gzip).

use super::error::ContextError;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Whether `path` stays inside the directory it is joined to.
fn stays_inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Extracts the tar (or gzip-compressed tar) read from `reader` into `dest`,
/// which is created if missing. Entries whose path, or hard-link target,
/// would leave `dest` are refused.
pub(crate) fn extract<R: Read>(reader: R, dest: &Path) -> Result<(), ContextError> {
    let tar_err = |source| ContextError::Tar {
        dest: dest.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dest).map_err(ContextError::io(dest))?;
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let gzip = reader
        .fill_buf()
        .map_err(tar_err)?
        .starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    // Directory modes are applied at the end so read-only directories can
    // still be filled.
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let path = entry.path().map_err(tar_err)?.into_owned();
        let escape = |entry: &Path| ContextError::TarEscape {
            entry: entry.display().to_string(),
            dest: dest.to_path_buf(),
        };
        if !stays_inside(&path) {
            return Err(escape(&path));
        }
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(tar_err)? {
                if !stays_inside(&target) {
                    return Err(escape(&target));
                }
            }
        }
        if !entry.unpack_in(dest).map_err(tar_err)? {
            return Err(escape(&path));
        }
        if kind.is_dir() {
            let abs = dest.join(&path);
            let mode = entry.header().mode().map_err(tar_err)? & 0o7777;
            std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(ContextError::io(&abs))?;
            dirs.push((abs, mode));
        }
    }
    for (abs, mode) in dirs.into_iter().rev() {
        std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(mode))
            .map_err(ContextError::io(&abs))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inside_table() {
        let cases: &[(&str, bool)] = &[
            ("a/b", true),
            ("./a", true),
            ("../a", false),
            ("a/../../b", false),
            ("/etc/passwd", false),
        ];
        for (path, want) in cases {
            assert_eq!(stays_inside(Path::new(path)), *want, "{path}");
        }
    }
}
