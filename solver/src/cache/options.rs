//! `--cache-from` and `--cache-to` values in buildx's syntax:
//! `type=registry,ref=R[,mode=min|max]`, `type=local,src=DIR` or
//! `type=local,dest=DIR[,tag=T]`, `type=inline`, or a bare reference for a
//! registry. A `--cache-from` value parses as a [`CacheLocation`], a
//! `--cache-to` value as a [`CacheTo`].

use super::mounts::{parse_size, MountExport};
use super::remote::{CacheMode, CacheModeError};
use kiln_oci::{Reference, ReferenceError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a cache lives. Parses a `--cache-from` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=registry,ref=R`.
    Registry(Reference),
    /// `type=local,src=DIR` or `dest=DIR`, with the layout tag.
    Local(PathBuf, String),
    /// `--cache-to type=inline`: in the image's own config.
    Inline,
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{r}"),
            CacheLocation::Local(dir, tag) => write!(f, "{}:{tag}", dir.display()),
            CacheLocation::Inline => write!(f, "the image config"),
        }
    }
}

/// A `--cache-to` value: where the cache goes and which steps go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTo {
    /// Where the cache goes.
    pub location: CacheLocation,
    /// Which steps go.
    pub mode: CacheMode,
    /// Whether and which cache mounts go (`cache-mounts=true`,
    /// `cache-mounts-max-size=`, `cache-mounts-exclude=ID[;ID...]`).
    pub mounts: MountExport,
}

/// A `--cache-from` or `--cache-to` value that does not parse; the text
/// names the flag and the value.
#[derive(Debug, thiserror::Error)]
pub enum CacheOptionError {
    /// A bare value that is not a reference.
    #[error("{flag} {value:?}: reference")]
    Reference {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
        /// Why the reference does not parse.
        #[source]
        source: ReferenceError,
    },
    /// `ref=` that is not a reference.
    #[error("{flag} {value:?}: ref")]
    Ref {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
        /// Why the reference does not parse.
        #[source]
        source: ReferenceError,
    },
    /// A comma-separated part without `=`.
    #[error("{flag} {value:?}: {part:?} is not KEY=VALUE")]
    NotKeyValue {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
        /// The part.
        part: String,
    },
    /// `mode=` that is neither `min` nor `max`.
    #[error("{flag}: {error}")]
    Mode {
        /// The flag.
        flag: &'static str,
        /// What is wrong with the mode.
        error: CacheModeError,
    },
    /// `mode=` given to `--cache-from`.
    #[error("{flag} {value:?}: mode= is a --cache-to option")]
    ModeNotHere {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
    },
    /// A key the cache type needs is missing.
    #[error("{flag} {value:?}: {key}= is required")]
    Required {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
        /// The missing key.
        key: &'static str,
    },
    /// `--cache-from type=inline`.
    #[error("{flag} {value:?}: an inline cache is read from its image: --cache-from REF")]
    InlineFrom {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
    },
    /// A cache type kiln does not have.
    #[error("{flag} {value:?}: cache type {kind:?} is not supported (registry, local or inline)")]
    UnsupportedType {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
        /// The type given.
        kind: String,
    },
    /// A key neither kiln nor buildx knows.
    #[error("{flag} {value:?}: unknown option {key:?}")]
    UnknownOption {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
        /// The first unknown key.
        key: String,
    },
    /// A `cache-mounts*=` value that does not parse.
    #[error("{flag} {value:?}: {key}={given:?}: {expected}")]
    Mounts {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
        /// The option.
        key: &'static str,
        /// Its value.
        given: String,
        /// What it should be.
        expected: &'static str,
    },
    /// `type=inline,mode=max`.
    #[error("{flag} {value:?}: an inline cache holds the image's own steps only (mode=min); use type=registry for mode=max")]
    InlineMax {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        value: String,
    },
}

/// buildx options kiln has no use for: accepted and ignored.
const IGNORED: [&str; 6] = [
    "compression",
    "compression-level",
    "force-compression",
    "oci-mediatypes",
    "image-manifest",
    "ignore-error",
];

impl FromStr for CacheLocation {
    type Err = CacheOptionError;

    /// Reads a `--cache-from` value.
    fn from_str(value: &str) -> Result<CacheLocation, CacheOptionError> {
        parse("--cache-from", value, false).map(|(location, _, _)| location)
    }
}

impl FromStr for CacheTo {
    type Err = CacheOptionError;

    /// Reads a `--cache-to` value.
    fn from_str(value: &str) -> Result<CacheTo, CacheOptionError> {
        parse("--cache-to", value, true).map(|(location, mode, mounts)| CacheTo {
            location,
            mode,
            mounts,
        })
    }
}

/// Reads `--cache-from` (`to == false`, `src=`) or `--cache-to` (`dest=`,
/// `mode=`) options.
fn parse(
    flag: &'static str,
    value: &str,
    to: bool,
) -> Result<(CacheLocation, CacheMode, MountExport), CacheOptionError> {
    let owned = || value.to_string();
    if !value.contains('=') {
        let reference = Reference::parse(value).map_err(|source| CacheOptionError::Reference {
            flag,
            value: owned(),
            source,
        })?;
        return Ok((
            CacheLocation::Registry(reference),
            CacheMode::default(),
            MountExport::default(),
        ));
    }
    let mut fields = BTreeMap::new();
    for part in value.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| CacheOptionError::NotKeyValue {
                flag,
                value: owned(),
                part: part.to_string(),
            })?;
        fields.insert(k.trim().to_string(), v.trim().to_string());
    }
    let mut take = |k: &str| fields.remove(k);
    let kind = take("type").unwrap_or_else(|| "registry".into());
    let mode = match take("mode") {
        Some(m) if to => m
            .parse()
            .map_err(|error| CacheOptionError::Mode { flag, error })?,
        Some(_) => {
            return Err(CacheOptionError::ModeNotHere {
                flag,
                value: owned(),
            })
        }
        None => CacheMode::default(),
    };
    let required = |key: &'static str| CacheOptionError::Required {
        flag,
        value: owned(),
        key,
    };
    let location = match kind.as_str() {
        "registry" => {
            let r = take("ref").ok_or_else(|| required("ref"))?;
            CacheLocation::Registry(Reference::parse(&r).map_err(|source| {
                CacheOptionError::Ref {
                    flag,
                    value: owned(),
                    source,
                }
            })?)
        }
        "local" => {
            let key = if to { "dest" } else { "src" };
            let dir = take(key).ok_or_else(|| required(key))?;
            let tag = take("tag").unwrap_or_else(|| "latest".into());
            CacheLocation::Local(PathBuf::from(dir), tag)
        }
        "inline" if to => CacheLocation::Inline,
        "inline" => {
            return Err(CacheOptionError::InlineFrom {
                flag,
                value: owned(),
            })
        }
        other => {
            return Err(CacheOptionError::UnsupportedType {
                flag,
                value: owned(),
                kind: other.to_string(),
            })
        }
    };
    let mut mounts = MountExport::default();
    if to {
        let bad =
            |key: &'static str, given: String, expected: &'static str| CacheOptionError::Mounts {
                flag,
                value: value.to_string(),
                key,
                given,
                expected,
            };
        if let Some(v) = fields.remove("cache-mounts") {
            mounts.enabled = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(bad("cache-mounts", v, "true or false")),
            };
        }
        if let Some(v) = fields.remove("cache-mounts-max-size") {
            mounts.max_size = parse_size(&v)
                .ok_or_else(|| bad("cache-mounts-max-size", v, "a size such as 512MiB or 2GiB"))?;
        }
        if let Some(v) = fields.remove("cache-mounts-exclude") {
            mounts.exclude = v
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
    }
    for ignored in IGNORED {
        fields.remove(ignored);
    }
    if let Some(key) = fields.into_keys().next() {
        return Err(CacheOptionError::UnknownOption {
            flag,
            value: owned(),
            key,
        });
    }
    if location == CacheLocation::Inline && mode == CacheMode::Max {
        return Err(CacheOptionError::InlineMax {
            flag,
            value: owned(),
        });
    }
    if mounts.enabled && location == CacheLocation::Inline {
        return Err(CacheOptionError::Mounts {
            flag,
            value: owned(),
            key: "cache-mounts",
            given: "true".into(),
            expected: "a registry or local cache (an image config cannot hold them)",
        });
    }
    Ok((location, mode, mounts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(value: &str) -> Result<CacheTo, CacheOptionError> {
        value.parse()
    }

    fn from(value: &str) -> Result<CacheLocation, CacheOptionError> {
        value.parse()
    }

    /// The error text and, when there is one, its cause's, as the cli
    /// prints them.
    fn text(err: &CacheOptionError) -> String {
        use std::error::Error;
        match err.source() {
            Some(cause) => format!("{err}: {cause}"),
            None => err.to_string(),
        }
    }

    #[test]
    fn cache_mount_options() {
        let plain = to("type=registry,ref=r,mode=max").expect("parse");
        assert!(
            !plain.mounts.enabled,
            "mode=max does not imply cache mounts"
        );
        let m = to("type=local,dest=/c,cache-mounts=true,cache-mounts-max-size=512MiB,cache-mounts-exclude=a;b")
            .expect("parse")
            .mounts;
        assert!(m.enabled);
        assert_eq!(m.max_size, 512 << 20);
        assert_eq!(m.exclude, ["a", "b"]);
        assert_eq!(
            to("type=registry,ref=r,cache-mounts=true")
                .expect("parse")
                .mounts
                .max_size,
            1 << 30
        );
        for (bad, text) in [
            (
                "type=registry,ref=r,cache-mounts=yes",
                "cache-mounts=\"yes\": true or false",
            ),
            (
                "type=registry,ref=r,cache-mounts-max-size=lots",
                "cache-mounts-max-size=\"lots\"",
            ),
            (
                "type=inline,cache-mounts=true",
                "an image config cannot hold them",
            ),
            (
                "type=local,src=/c,cache-mounts=true",
                "unknown option \"cache-mounts\"",
            ),
        ] {
            let e = if bad.contains("src=") {
                from(bad).map(|_| ()).expect_err(bad)
            } else {
                to(bad).map(|_| ()).expect_err(bad)
            };
            assert!(e.to_string().contains(text), "{bad}: {e}");
        }
    }

    #[test]
    fn buildx_syntax() {
        let registry = to("type=registry,ref=localhost:5000/app:cache,mode=max").expect("parse");
        assert_eq!(registry.mode, CacheMode::Max);
        assert_eq!(registry.location.to_string(), "localhost:5000/app:cache");
        let local = to("type=local,dest=/tmp/c").expect("parse");
        assert_eq!(
            local.location,
            CacheLocation::Local("/tmp/c".into(), "latest".into())
        );
        assert_eq!(local.mode, CacheMode::Min);
        assert_eq!(
            from("user/app:cache").expect("parse").to_string(),
            "docker.io/user/app:cache"
        );
        assert_eq!(
            from("type=local,src=/c,tag=t").expect("parse"),
            CacheLocation::Local("/c".into(), "t".into())
        );
        assert_eq!(
            to("type=registry,ref=r,compression=zstd,ignore-error=true")
                .expect("ignored options")
                .location
                .to_string(),
            "docker.io/library/r:latest"
        );
        for bad in [
            "type=gha",
            "type=local,dest=/x",
            "type=registry",
            "type=registry,ref=a,mode=max",
            "ref=a,what=1",
        ] {
            assert!(from(bad).is_err(), "{bad}");
        }
        assert!(to("type=registry,ref=a,mode=all").is_err());
        assert_eq!(
            to("type=inline").expect("inline").location,
            CacheLocation::Inline
        );
        assert!(to("type=inline,mode=max").is_err());
        assert!(from("type=inline").is_err());
    }

    #[test]
    fn errors_name_the_flag_and_value() {
        let cases: [(Result<(), CacheOptionError>, &str); 10] = [
            (
                from("type=gha").map(drop),
                r#"--cache-from "type=gha": cache type "gha" is not supported (registry, local or inline)"#,
            ),
            (
                from("type=local,dest=/x").map(drop),
                r#"--cache-from "type=local,dest=/x": src= is required"#,
            ),
            (
                to("type=registry").map(drop),
                r#"--cache-to "type=registry": ref= is required"#,
            ),
            (
                from("type=registry,ref=a,mode=max").map(drop),
                r#"--cache-from "type=registry,ref=a,mode=max": mode= is a --cache-to option"#,
            ),
            (
                from("ref=a,what=1").map(drop),
                r#"--cache-from "ref=a,what=1": unknown option "what""#,
            ),
            (
                to("ref=a,x").map(drop),
                r#"--cache-to "ref=a,x": "x" is not KEY=VALUE"#,
            ),
            (
                to("type=registry,ref=a,mode=all").map(drop),
                "--cache-to: mode=all: expected min or max",
            ),
            (
                to("type=inline,mode=max").map(drop),
                r#"--cache-to "type=inline,mode=max": an inline cache holds the image's own steps only (mode=min); use type=registry for mode=max"#,
            ),
            (
                from("type=inline").map(drop),
                r#"--cache-from "type=inline": an inline cache is read from its image: --cache-from REF"#,
            ),
            (
                from("type=registry,ref=UPPER").map(drop),
                r#"--cache-from "type=registry,ref=UPPER": ref: "#,
            ),
        ];
        for (result, want) in cases {
            let got = text(&result.expect_err(want));
            assert!(
                got.starts_with(want),
                "{got:?} does not start with {want:?}"
            );
        }
        let bare = text(&from("Bad Name").expect_err("bare"));
        assert!(
            bare.starts_with(r#"--cache-from "Bad Name": reference: "#) && bare.len() > 35,
            "{bare}"
        );
    }
}
