//! `--output` targets and writing them.

use crate::image::BuiltImage;
use kiln_oci::archive::{self, NamedImage};
use kiln_oci::{Digest, LocalStore, Platform};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where a build's result goes (`--output`, `-o`, `-t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// The local image store, under these names (`type=image`).
    Image {
        /// Names to tag (may be empty: the image is kept by digest).
        names: Vec<String>,
    },
    /// An OCI layout: a tar file, or a directory with `tar=false`.
    Oci {
        /// Destination (`-` for stdout, tar only).
        dest: PathBuf,
        /// Write a tar (default) or a directory.
        tar: bool,
        /// Names recorded in the layout.
        names: Vec<String>,
    },
    /// A docker-archive tarball (`docker load`-able).
    Docker {
        /// Destination file (`-` for stdout).
        dest: PathBuf,
        /// Names recorded in it.
        names: Vec<String>,
    },
    /// The final filesystem in a directory.
    Local {
        /// Destination directory.
        dest: PathBuf,
    },
    /// The final filesystem as a tar.
    Tar {
        /// Destination file (`-` for stdout).
        dest: PathBuf,
    },
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// An `--output` value is invalid.
    #[error("invalid --output {value:?}: {reason}")]
    BadTarget {
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Writing failed.
    #[error("writing {path}: {message}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] kiln_oci::StoreError),
    /// An archive codec failed.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
}

impl FromStr for ExportTarget {
    type Err = ExportError;

    /// Reads buildx syntax: `type=oci,dest=out.tar[,tar=false][,name=a,b]`,
    /// or a bare path (`-o DIR` = `type=local,dest=DIR`, `-o -` =
    /// `type=tar,dest=-`).
    fn from_str(value: &str) -> Result<ExportTarget, ExportError> {
        let bad = |reason: &str| ExportError::BadTarget {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if !value.contains('=') {
            return Ok(if value == "-" {
                ExportTarget::Tar { dest: "-".into() }
            } else {
                ExportTarget::Local { dest: value.into() }
            });
        }
        let mut kind = None;
        let mut dest = None;
        let mut tar = true;
        let mut names = Vec::new();
        for field in value.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| bad(&format!("{field:?} is not key=value")))?;
            match k.trim() {
                "type" => kind = Some(v.trim().to_string()),
                "dest" => dest = Some(PathBuf::from(v.trim())),
                "tar" => {
                    tar = v
                        .trim()
                        .parse()
                        .map_err(|_| bad("tar must be true or false"))?;
                }
                "name" => names.extend(
                    v.split(';')
                        .map(|n| n.trim().to_string())
                        .filter(|n| !n.is_empty()),
                ),
                "push" | "compression" | "compression-level" | "force-compression"
                | "oci-mediatypes" => {}
                other => return Err(bad(&format!("unknown key {other:?}"))),
            }
        }
        let need_dest = |d: Option<PathBuf>| d.ok_or_else(|| bad("dest= is required"));
        match kind.as_deref() {
            Some("image") => Ok(ExportTarget::Image { names }),
            Some("oci") => Ok(ExportTarget::Oci {
                dest: need_dest(dest)?,
                tar,
                names,
            }),
            Some("docker") => Ok(ExportTarget::Docker {
                dest: need_dest(dest)?,
                names,
            }),
            Some("local") => Ok(ExportTarget::Local {
                dest: need_dest(dest)?,
            }),
            Some("tar") => Ok(ExportTarget::Tar {
                dest: need_dest(dest)?,
            }),
            Some(other) => Err(bad(&format!(
                "unknown type {other:?} (image, oci, docker, local, tar)"
            ))),
            None => Err(bad("type= is required")),
        }
    }
}

/// Writes `image` (whose manifest is `manifest` in `store`) to `target`.
///
/// # Errors
/// Write, store or codec errors naming the destination. Files are written
/// beside the destination and renamed, so a failure leaves no partial
/// file under the requested name.
pub fn export(
    store: &LocalStore,
    target: &ExportTarget,
    image: &BuiltImage,
    manifest: &Digest,
) -> Result<(), ExportError> {
    let named = |names: &[String]| {
        vec![NamedImage {
            names: names.to_vec(),
            digest: manifest.clone(),
        }]
    };
    match target {
        ExportTarget::Image { names } => {
            for n in names {
                store.set_ref(n, manifest)?;
            }
            Ok(())
        }
        ExportTarget::Oci {
            dest,
            tar: false,
            names,
        } => {
            archive::write_layout_dir(store, &named(names), dest)?;
            Ok(())
        }
        ExportTarget::Oci {
            dest,
            tar: true,
            names,
        } => write_file(dest, |w| {
            archive::write_layout_tar(store, &named(names), w)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
        ExportTarget::Docker { dest, names } => {
            let platform = Platform::new(
                &image.config.os,
                &image.config.architecture,
                image.config.variant.as_deref().unwrap_or(""),
            );
            write_file(dest, |w| {
                archive::write_docker_archive(store, &named(names), &platform, w)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        }
        ExportTarget::Local { dest } => {
            kiln_executor::materialize(&image.stack, dest).map_err(|e| ExportError::Write {
                path: dest.clone(),
                message: e.to_string(),
            })
        }
        ExportTarget::Tar { dest } => {
            let tmp = tempfile::tempdir_in(store.root()).map_err(|e| ExportError::Write {
                path: dest.clone(),
                message: e.to_string(),
            })?;
            let rootfs = tmp.path().join("rootfs");
            kiln_executor::materialize(&image.stack, &rootfs).map_err(|e| ExportError::Write {
                path: dest.clone(),
                message: e.to_string(),
            })?;
            write_file(dest, |w| {
                kiln_executor::diff(&rootfs, w).map_err(|e| e.to_string())
            })
        }
    }
}

/// Writes through `write` to `dest` (or stdout for `-`), via a temporary
/// file renamed into place.
fn write_file(
    dest: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), String>,
) -> Result<(), ExportError> {
    let fail = |message: String| ExportError::Write {
        path: dest.to_path_buf(),
        message,
    };
    if dest.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        write(&mut lock).map_err(fail)?;
        return std::io::Write::flush(&mut lock).map_err(|e| fail(e.to_string()));
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(e.to_string()))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut w).map_err(fail)?;
        std::io::Write::flush(&mut w).map_err(|e| fail(e.to_string()))?;
    }
    tmp.persist(dest).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_outputs() {
        let t: ExportTarget = "type=oci,dest=out,tar=false".parse().expect("oci");
        assert_eq!(
            t,
            ExportTarget::Oci {
                dest: "out".into(),
                tar: false,
                names: vec![]
            }
        );
        let t: ExportTarget = "type=docker,dest=a.tar".parse().expect("docker");
        assert!(matches!(t, ExportTarget::Docker { .. }));
        assert_eq!(
            "dir".parse::<ExportTarget>().expect("local"),
            ExportTarget::Local { dest: "dir".into() }
        );
        assert_eq!(
            "-".parse::<ExportTarget>().expect("tar"),
            ExportTarget::Tar { dest: "-".into() }
        );
        let err = "type=zip,dest=x"
            .parse::<ExportTarget>()
            .expect_err("bad type");
        assert!(err.to_string().contains("zip"));
        assert!("type=oci".parse::<ExportTarget>().is_err());
        assert!("type=local,dest=x,bogus=1".parse::<ExportTarget>().is_err());
    }
}
