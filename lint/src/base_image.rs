//! What the base images say, for the two BuildKit checks that need them:
//! UndefinedVar (an image's ENV names are defined in its stages) and
//! InvalidBaseImagePlatform (an image built for another platform).
//!
//! Linting never touches a registry. The caller asks [`base_refs`] which
//! images a Dockerfile's stages start from, resolves what it can (the `kiln`
//! binary reads its image store, and registries with `--pull`), and passes
//! the answers in [`crate::Config::base_images`]. A stage whose image is
//! not in [`BaseImages`] is linted as if nothing were known about it.

use crate::context::Context;
use crate::Config;
use kiln_parser::{Dockerfile, Instruction};
use std::collections::BTreeMap;

/// An image a stage starts from, as a build would pull it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseRef {
    /// The FROM image with the global ARGs' defaults substituted
    /// (`python:3.12-slim`).
    pub image: String,
    /// The platform the stage wants it for (`linux/amd64`): its
    /// `--platform` with the platform ARGs substituted, else the target.
    pub platform: String,
    /// The line of the FROM.
    pub line: usize,
}

/// What is known of one base image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The names its config's `Env` sets (`PATH`, `PYTHON_VERSION`).
    pub env: Vec<String>,
    /// The platform its config declares (`linux/arm64`).
    pub platform: String,
}

/// Base images resolved ahead of linting, and the platforms of the build
/// they were resolved for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImages {
    target: String,
    build: String,
    images: BTreeMap<(String, String), BaseImage>,
}

impl Default for BaseImages {
    fn default() -> Self {
        BaseImages::new(DEFAULT_PLATFORM, DEFAULT_PLATFORM)
    }
}

/// The platform assumed when none is given.
pub(crate) const DEFAULT_PLATFORM: &str = "linux/amd64";

impl BaseImages {
    /// An empty set for a build targeting `target` on a `build` host
    /// (both `os/arch[/variant]`).
    pub fn new(target: impl Into<String>, build: impl Into<String>) -> Self {
        BaseImages {
            target: target.into().to_ascii_lowercase(),
            build: build.into().to_ascii_lowercase(),
            images: BTreeMap::new(),
        }
    }

    /// The platform the build targets (`TARGETPLATFORM`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The platform the build runs on (`BUILDPLATFORM`).
    pub fn build(&self) -> &str {
        &self.build
    }

    /// Records what `base` resolved to.
    pub fn insert(&mut self, base: &BaseRef, image: BaseImage) {
        self.images.insert(key(base), image);
    }

    /// What `base` resolved to, if it was.
    pub fn get(&self, base: &BaseRef) -> Option<&BaseImage> {
        self.images.get(&key(base))
    }

    /// How many images are known.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when no image is known.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// Where a base image is kept: its name, and its platform normalised
/// (`linux/arm64/v8` and `linux/aarch64` are the same).
fn key(base: &BaseRef) -> (String, String) {
    (base.image.clone(), normalize_platform(&base.platform))
}

/// The images the stages of the Dockerfile in `source` start from, for a
/// build with `platforms`' target and build platforms: one per stage that
/// is not built on another stage or `scratch`, in file order. A file that
/// does not parse has none.
pub fn base_refs(source: &str, platforms: &BaseImages) -> Vec<BaseRef> {
    let Ok(dockerfile) = kiln_parser::parse(source) else {
        return Vec::new();
    };
    let config = Config {
        base_images: Some(BaseImages::new(platforms.target(), platforms.build())),
        ..Config::default()
    };
    let cx = Context::new(&dockerfile, source, &config);
    (0..dockerfile.stages.len())
        .filter_map(|stage| stage_base(&cx, stage))
        .collect()
}

/// The image stage `stage` starts from, unless it is built on another
/// stage or on `scratch`, or its name does not expand.
pub(crate) fn stage_base(cx: &Context<'_>, stage: usize) -> Option<BaseRef> {
    if cx.parent(stage).is_some() {
        return None;
    }
    let from = cx.dockerfile.stages.get(stage)?;
    let base = from.base();
    let (target, build) = platforms(cx.config);
    let defaults = global_defaults(cx.dockerfile, target, build).0;
    let lexer = kiln_parser::shell::Lexer::new(cx.dockerfile.escape);
    let image = lexer.process_word(&base.image, &defaults).ok()?;
    if image.is_empty() || image.eq_ignore_ascii_case("scratch") {
        return None;
    }
    let platform = match &base.platform {
        Some(p) => lexer.process_word(p, &defaults).ok()?.to_ascii_lowercase(),
        None => target.to_string(),
    };
    Some(BaseRef {
        image,
        platform,
        line: from.from.span.start.line,
    })
}

/// The target and build platforms `config` lints for.
pub(crate) fn platforms(config: &Config) -> (&str, &str) {
    match &config.base_images {
        Some(b) => (b.target(), b.build()),
        None => (DEFAULT_PLATFORM, DEFAULT_PLATFORM),
    }
}

/// The values FROM lines see: BuildKit's platform ARGs, then the defaults
/// of the global ARGs in order; and the names the global ARGs declare.
pub(crate) fn global_defaults(
    dockerfile: &Dockerfile,
    target: &str,
    build: &str,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut defaults = Vec::new();
    for (prefix, platform) in [("TARGET", target), ("BUILD", build)] {
        let mut parts = platform.splitn(3, '/');
        let os = parts.next().unwrap_or_default();
        let arch = parts.next().unwrap_or_default();
        let variant = parts.next().unwrap_or_default();
        for (name, value) in [
            ("PLATFORM", platform),
            ("OS", os),
            ("ARCH", arch),
            ("VARIANT", variant),
        ] {
            defaults.push((format!("{prefix}{name}"), value.to_string()));
        }
    }
    let mut declared = Vec::new();
    let lexer = kiln_parser::shell::Lexer::new(dockerfile.escape);
    for c in &dockerfile.global_args {
        if let Instruction::Arg(args) = &c.instruction {
            for a in args {
                declared.push(a.name.clone());
                if let Some(d) = &a.default {
                    let value = lexer
                        .process_word(d, &defaults)
                        .unwrap_or_else(|_| d.clone());
                    defaults.push((a.name.clone(), value));
                }
            }
        }
    }
    (defaults, declared)
}

/// `os/arch[/variant]` as BuildKit prints a normalised platform: lower
/// case, `x86_64` as `amd64`, `aarch64` as `arm64`, arm64's default `v8`
/// variant left out.
pub(crate) fn normalize_platform(platform: &str) -> String {
    let lower = platform.to_ascii_lowercase();
    let mut parts = lower.splitn(3, '/');
    let os = parts.next().unwrap_or_default();
    let arch = match parts.next().unwrap_or_default() {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        other => other,
    };
    let variant = parts.next().unwrap_or_default();
    let variant = match (arch, variant) {
        ("arm64", "v8" | "8") => "",
        (_, v) => v,
    };
    if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_expand_global_args_and_platforms_and_skip_stages() {
        let source = "ARG TAG=3.12\nFROM --platform=$BUILDPLATFORM python:${TAG} AS build\n\
                      FROM build AS test\nFROM scratch\nFROM alpine\n";
        let platforms = BaseImages::new("linux/arm64", "linux/amd64");
        let refs = base_refs(source, &platforms);
        let got: Vec<(&str, &str, usize)> = refs
            .iter()
            .map(|r| (r.image.as_str(), r.platform.as_str(), r.line))
            .collect();
        assert_eq!(
            got,
            [
                ("python:3.12", "linux/amd64", 2),
                ("alpine", "linux/arm64", 5)
            ]
        );
    }

    #[test]
    fn platforms_normalise_as_buildkit_prints_them() {
        assert_eq!(normalize_platform("linux/aarch64/v8"), "linux/arm64");
        assert_eq!(normalize_platform("Linux/x86_64"), "linux/amd64");
        assert_eq!(normalize_platform("linux/arm/v7"), "linux/arm/v7");
    }
}
