//! `--output` targets and writing them.

use crate::error::ExportError;
use crate::image::{BuiltImage, WrittenImage};
use crate::options::ImageOptions;
use kiln_oci::archive::{self, NamedImage};
use kiln_oci::{Compression, LocalStore, Platform};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where a build's result goes (`--output`, `-o`, `-t`, `--push`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// The local image store, under these names (`type=image`), and
    /// pushed to them with `push=true`.
    Image {
        /// Names to tag (may be empty: the image is kept by digest).
        names: Vec<String>,
        /// Also push to the names' registries.
        push: bool,
        /// How the image is written.
        options: ImageOptions,
    },
    /// A registry (`type=registry`, `--push`): pushed to every name.
    Registry {
        /// Where to push (at least one).
        names: Vec<String>,
        /// How the image is written.
        options: ImageOptions,
    },
    /// An OCI layout: a tar file, or a directory with `tar=false`.
    Oci {
        /// Destination (`-` for stdout, tar only).
        dest: PathBuf,
        /// Write a tar (default) or a directory.
        tar: bool,
        /// Names recorded in the layout.
        names: Vec<String>,
        /// How the image is written.
        options: ImageOptions,
    },
    /// A docker-archive tarball (`docker load`-able), or with no `dest`
    /// the image loaded into the local Docker engine (`--load`; the
    /// caller's, as pushing is: it needs an engine client).
    Docker {
        /// Destination file (`-` for stdout); `None` loads into Docker.
        dest: Option<PathBuf>,
        /// Names recorded in it.
        names: Vec<String>,
        /// How the image is written (Docker media types by default).
        options: ImageOptions,
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
    /// Nothing but the build cache (`type=cacheonly`): `--cache-to` is
    /// still written.
    CacheOnly,
}

impl ExportTarget {
    /// How an image output writes the image (`None` for filesystem
    /// outputs).
    pub fn image_options(&self) -> Option<&ImageOptions> {
        match self {
            ExportTarget::Image { options, .. }
            | ExportTarget::Registry { options, .. }
            | ExportTarget::Oci { options, .. }
            | ExportTarget::Docker { options, .. } => Some(options),
            ExportTarget::Local { .. } | ExportTarget::Tar { .. } | ExportTarget::CacheOnly => None,
        }
    }

    /// The names an image output gives the image (`-t` fills them in when
    /// `name=` was not given).
    pub fn names_mut(&mut self) -> Option<&mut Vec<String>> {
        match self {
            ExportTarget::Image { names, .. }
            | ExportTarget::Registry { names, .. }
            | ExportTarget::Oci { names, .. }
            | ExportTarget::Docker { names, .. } => Some(names),
            ExportTarget::Local { .. } | ExportTarget::Tar { .. } | ExportTarget::CacheOnly => None,
        }
    }

    /// The names an image output gives the image.
    pub fn names(&self) -> &[String] {
        match self {
            ExportTarget::Image { names, .. }
            | ExportTarget::Registry { names, .. }
            | ExportTarget::Oci { names, .. }
            | ExportTarget::Docker { names, .. } => names,
            ExportTarget::Local { .. } | ExportTarget::Tar { .. } | ExportTarget::CacheOnly => &[],
        }
    }

    /// The references this output pushes the image to.
    pub fn push_names(&self) -> &[String] {
        match self {
            ExportTarget::Image {
                names, push: true, ..
            }
            | ExportTarget::Registry { names, .. } => names,
            _ => &[],
        }
    }

    /// Whether this output loads the image into the local Docker engine
    /// (`type=docker` without `dest`, `--load`).
    pub fn is_docker_load(&self) -> bool {
        matches!(self, ExportTarget::Docker { dest: None, .. })
    }
}

impl std::fmt::Display for ExportTarget {
    /// The output in `--output` syntax (type and destination or names).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, dest) = match self {
            ExportTarget::Image { .. } => ("image", None),
            ExportTarget::Registry { .. } => ("registry", None),
            ExportTarget::Oci { dest, .. } => ("oci", Some(dest)),
            ExportTarget::Docker { dest, .. } => ("docker", dest.as_ref()),
            ExportTarget::Local { dest } => ("local", Some(dest)),
            ExportTarget::Tar { dest } => ("tar", Some(dest)),
            ExportTarget::CacheOnly => ("cacheonly", None),
        };
        write!(f, "type={kind}")?;
        if let Some(dest) = dest {
            write!(f, ",dest={}", dest.display())?;
        }
        if !self.names().is_empty() {
            write!(f, ",name={}", self.names().join(";"))?;
        }
        Ok(())
    }
}

fn parse_bool(v: &str, key: &str) -> Result<bool, String> {
    match v.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key} must be true or false")),
    }
}

impl FromStr for ExportTarget {
    type Err = ExportError;

    /// Reads buildx syntax: `type=oci,dest=out.tar[,tar=false][,name=a,b]`,
    /// image options (`compression=gzip|zstd|uncompressed`,
    /// `compression-level=N`, `force-compression=true`,
    /// `oci-mediatypes=false`, `rewrite-timestamp=true`), `push=true` on
    /// `type=image`, or a bare path (`-o DIR` = `type=local,dest=DIR`,
    /// `-o -` = `type=tar,dest=-`).
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
        let mut push = false;
        let mut names = Vec::new();
        let mut compression: Option<Compression> = None;
        let mut level: Option<i64> = None;
        let mut force = false;
        let mut oci_mediatypes: Option<bool> = None;
        let mut rewrite = false;
        // A quoted CSV field may hold commas (`"name=a,b"`), as buildx reads it.
        for field in split_fields(value) {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| bad(&format!("{field:?} is not key=value")))?;
            match k.trim() {
                "type" => kind = Some(v.trim().to_string()),
                "dest" => dest = Some(PathBuf::from(v.trim())),
                "tar" => tar = parse_bool(v, "tar").map_err(|e| bad(&e))?,
                "name" => names.extend(
                    v.split([';', ','])
                        .map(|n| n.trim().to_string())
                        .filter(|n| !n.is_empty()),
                ),
                "push" => push = parse_bool(v, "push").map_err(|e| bad(&e))?,
                "compression" => {
                    compression = Some(
                        v.trim()
                            .parse()
                            .map_err(|e: kiln_oci::compress::CompressError| bad(&e.to_string()))?,
                    )
                }
                "compression-level" => {
                    level = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| bad("compression-level must be a number"))?,
                    )
                }
                "force-compression" => {
                    force = parse_bool(v, "force-compression").map_err(|e| bad(&e))?
                }
                "oci-mediatypes" => {
                    oci_mediatypes = Some(parse_bool(v, "oci-mediatypes").map_err(|e| bad(&e))?)
                }
                "rewrite-timestamp" => {
                    rewrite = parse_bool(v, "rewrite-timestamp").map_err(|e| bad(&e))?
                }
                // buildx's `store=false` and `unpack` have no meaning here.
                "store" | "unpack" => {}
                other => return Err(bad(&format!("unknown key {other:?}"))),
            }
        }
        let asked = compression.is_some() || level.is_some() || force;
        let mut compression = compression.unwrap_or_default();
        if let Some(level) = level {
            compression = compression
                .with_level(level)
                .map_err(|e| bad(&e.to_string()))?;
        }
        let docker = kind.as_deref() == Some("docker");
        let mut options = ImageOptions {
            compression,
            keep_layers: false,
            force_compression: force,
            oci_mediatypes: oci_mediatypes.unwrap_or(!docker),
            rewrite_timestamp: rewrite,
        };
        if compression.layer_compression() == kiln_oci::LayerCompression::Zstd {
            // As buildx: zstd has only an OCI media type.
            if oci_mediatypes == Some(false) {
                return Err(bad("compression=zstd needs oci-mediatypes=true"));
            }
            options.oci_mediatypes = true;
        }
        let need_dest = |d: Option<PathBuf>| match d {
            Some(d) if d.as_os_str().is_empty() => Err(bad("dest= is empty")),
            Some(d) => Ok(d),
            None => Err(bad("dest= is required")),
        };
        match kind.as_deref() {
            // The local store keeps layers as built, unless a compression
            // is asked for or the image is pushed.
            Some("image") => Ok(ExportTarget::Image {
                names,
                push,
                options: ImageOptions {
                    keep_layers: !asked && !push,
                    ..options
                },
            }),
            Some("registry") => Ok(ExportTarget::Registry { names, options }),
            Some("oci") => Ok(ExportTarget::Oci {
                dest: need_dest(dest)?,
                tar,
                names,
                options,
            }),
            // buildx: without `dest`, the image goes into the Docker engine.
            Some("docker") => Ok(ExportTarget::Docker {
                dest: dest.map(|d| need_dest(Some(d))).transpose()?,
                names,
                options,
            }),
            Some("local") => Ok(ExportTarget::Local {
                dest: need_dest(dest)?,
            }),
            Some("tar") => Ok(ExportTarget::Tar {
                dest: need_dest(dest)?,
            }),
            Some("cacheonly") => Ok(ExportTarget::CacheOnly),
            Some(other) => Err(bad(&format!(
                "unknown type {other:?} (image, registry, oci, docker, local, tar, cacheonly)"
            ))),
            None => Err(bad("type= is required")),
        }
    }
}

/// Splits `a=1,"name=x,y",b=2` at commas outside double quotes, dropping
/// the quotes.
fn split_fields(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|f| !f.trim().is_empty()).collect()
}

/// Writes `image` (written to the store as `written` with this target's
/// options) to `target`. Pushing is the caller's ([`ExportTarget::push_names`]):
/// it needs a registry client.
///
/// # Errors
/// Write, store or codec errors naming the destination. Files are written
/// beside the destination and renamed, so a failure leaves no partial
/// file under the requested name.
pub fn export(
    store: &LocalStore,
    target: &ExportTarget,
    image: &BuiltImage,
    written: Option<&WrittenImage>,
) -> Result<(), ExportError> {
    let manifest = || {
        written
            .map(|w| w.manifest.clone())
            .ok_or_else(|| ExportError::Options("an image output needs the written image".into()))
    };
    let named = |names: &[String]| -> Result<Vec<NamedImage>, ExportError> {
        Ok(vec![NamedImage {
            names: names.to_vec(),
            digest: manifest()?,
        }])
    };
    match target {
        ExportTarget::Image { names, .. } => {
            let digest = manifest()?;
            for n in names {
                store.set_ref(n, &digest)?;
            }
            Ok(())
        }
        // Pushing and loading into Docker are the caller's.
        ExportTarget::Registry { .. }
        | ExportTarget::Docker { dest: None, .. }
        | ExportTarget::CacheOnly => Ok(()),
        ExportTarget::Oci {
            dest,
            tar: false,
            names,
            ..
        } => {
            archive::write_layout_dir(store, &named(names)?, dest)?;
            Ok(())
        }
        ExportTarget::Oci {
            dest,
            tar: true,
            names,
            ..
        } => {
            let named = named(names)?;
            write_file(dest, |w| {
                archive::write_layout_tar(store, &named, w)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        }
        ExportTarget::Docker {
            dest: Some(dest),
            names,
            ..
        } => {
            let platform = Platform::new(
                &image.config.os,
                &image.config.architecture,
                image.config.variant.as_deref().unwrap_or(""),
            );
            let named = named(names)?;
            write_file(dest, |w| {
                archive::write_docker_archive(store, &named, &platform, w)
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
            let tmp = store.staging_dir().map_err(|e| ExportError::Write {
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
                names: vec![],
                options: ImageOptions::default(),
            }
        );
        let t: ExportTarget = "type=docker".parse().expect("docker load");
        assert!(t.is_docker_load());
        assert_eq!(t.to_string(), "type=docker");
        assert!("type=docker,dest=".parse::<ExportTarget>().is_err());
        let t: ExportTarget = "type=cacheonly".parse().expect("cacheonly");
        assert_eq!(t, ExportTarget::CacheOnly);
        assert!(t.image_options().is_none() && t.names().is_empty());
        let t: ExportTarget = "type=docker,dest=a.tar".parse().expect("docker");
        assert!(!t.is_docker_load());
        assert!(
            matches!(&t, ExportTarget::Docker { options, .. } if !options.oci_mediatypes),
            "docker outputs use Docker media types"
        );
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

    #[test]
    fn parses_image_options_and_push() {
        let t: ExportTarget =
            "type=registry,\"name=r.io/a:1,r.io/b:2\",compression=zstd,compression-level=9,force-compression=true"
                .parse()
                .expect("registry");
        assert_eq!(t.push_names(), ["r.io/a:1", "r.io/b:2"]);
        let o = t.image_options().expect("options");
        assert_eq!(o.compression, Compression::Zstd { level: 9 });
        assert!(o.force_compression && o.oci_mediatypes);
        let t: ExportTarget =
            "type=image,name=x:1,push=true,oci-mediatypes=false,rewrite-timestamp=true"
                .parse()
                .expect("image");
        assert_eq!(t.push_names(), ["x:1"]);
        let o = t.image_options().expect("options");
        assert!(!o.oci_mediatypes && o.rewrite_timestamp);
        let t: ExportTarget = "type=image,name=x:1".parse().expect("image");
        assert!(t.push_names().is_empty());
        for bad in [
            "type=image,compression=lz4",
            "type=image,compression=gzip,compression-level=12",
            "type=image,compression=zstd,oci-mediatypes=false",
            "type=image,push=maybe",
        ] {
            assert!(bad.parse::<ExportTarget>().is_err(), "{bad}");
        }
        let t: ExportTarget = "type=image,compression=uncompressed"
            .parse()
            .expect("plain");
        assert_eq!(
            t.image_options().expect("o").compression,
            Compression::Uncompressed
        );
    }
}
