//! Platforms (`os/arch[/variant]`) and their normalisation, as containerd
//! and BuildKit spell them.

use std::fmt;
use std::str::FromStr;

/// A target platform: operating system, CPU architecture and variant, in
/// normalised Go spelling (`linux/arm64/v8`, `linux/amd64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture (`amd64`, `arm64`, `arm`, ...).
    pub architecture: String,
    /// CPU variant (`v7`, `v8`), empty when none.
    pub variant: String,
}

/// A platform string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {input:?}: {reason}")]
pub struct PlatformError {
    /// What was given.
    pub input: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl Platform {
    /// Builds a normalised platform.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        let os = os.to_ascii_lowercase();
        let os = if os == "macos" {
            "darwin".to_string()
        } else {
            os
        };
        let (architecture, variant) = normalize_arch(architecture, variant);
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The variant as BuildKit reports it: arm64's default `v8` is left
    /// out (BuildKit's `TARGETVARIANT` is empty for `linux/arm64`).
    pub fn short_variant(&self) -> &str {
        if self.architecture == "arm64" && self.variant == "v8" {
            ""
        } else {
            &self.variant
        }
    }

    /// `os/arch[/variant]` as BuildKit prints a platform: `linux/arm64`
    /// for arm64/v8 (see [`Platform::short_variant`]), else as
    /// [`fmt::Display`].
    pub fn short_string(&self) -> String {
        match self.short_variant() {
            "" => format!("{}/{}", self.os, self.architecture),
            v => format!("{}/{}/{v}", self.os, self.architecture),
        }
    }

    /// The platform of the machine kiln runs on.
    pub fn host() -> Platform {
        Platform::new(std::env::consts::OS, std::env::consts::ARCH, "")
    }

    /// Reads the platform of an index entry or image config.
    pub fn from_oci(p: &oci_spec::image::Platform) -> Platform {
        Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref().unwrap_or(""),
        )
    }

    /// True when an image built for `candidate` runs as this platform:
    /// same OS and architecture, and a variant that is equal or, for
    /// 32-bit ARM, an older one (v7 hardware runs v6 and v5 images).
    pub fn accepts(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        if self.variant == candidate.variant || self.variant.is_empty() {
            return true;
        }
        if self.architecture == "arm" {
            return arm_rank(&candidate.variant) <= arm_rank(&self.variant);
        }
        false
    }

    /// How well `candidate` fits; higher is better. `None` when it does not
    /// run at all.
    pub fn score(&self, candidate: &Platform) -> Option<u32> {
        if !self.accepts(candidate) {
            return None;
        }
        if self.variant == candidate.variant {
            return Some(100);
        }
        Some(arm_rank(&candidate.variant))
    }

    /// Converts to the OCI spec type.
    pub fn to_oci(&self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(oci_spec::image::Os::from(self.os.as_str()));
        p.set_architecture(oci_spec::image::Arch::from(self.architecture.as_str()));
        if !self.variant.is_empty() {
            p.set_variant(Some(self.variant.clone()));
        }
        p
    }
}

fn arm_rank(variant: &str) -> u32 {
    variant
        .strip_prefix('v')
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Normalises Go, uname and Debian spellings of an architecture.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), normalize_amd64_variant(&variant)),
        "i386" | "i686" | "386" => ("386".into(), String::new()),
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "8" | "v8" | "" => "v8".to_string(),
                other => other.to_string(),
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                other => other.to_string(),
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

fn normalize_amd64_variant(variant: &str) -> String {
    if variant == "v1" {
        String::new()
    } else {
        variant.to_string()
    }
}

/// Operating systems Go (and so OCI images) name.
const KNOWN_OS: [&str; 15] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "windows",
];

/// Architectures Go names, after normalisation (`x86_64` is `amd64`).
const KNOWN_ARCH: [&str; 20] = [
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv64",
    "s390x",
    "wasm",
];

impl FromStr for Platform {
    type Err = PlatformError;

    /// Reads `os/arch[/variant]`, or `arch` alone (os defaults to linux), or
    /// `local` for the host.
    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        let err = |reason| PlatformError {
            input: s.to_string(),
            reason,
        };
        if s == "local" {
            return Ok(Platform::host());
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("empty component"));
        }
        if parts.iter().any(|p| {
            !p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        }) {
            return Err(err("unexpected character"));
        }
        match parts.as_slice() {
            // One word is an OS (on this machine's architecture) or an
            // architecture (on linux), as containerd reads it.
            [word] if KNOWN_OS.contains(&word.to_ascii_lowercase().as_str()) => {
                let host = Platform::host();
                Ok(Platform::new(word, &host.architecture, &host.variant))
            }
            [arch] => {
                let p = Platform::new("linux", arch, "");
                if KNOWN_ARCH.contains(&p.architecture.as_str()) {
                    Ok(p)
                } else {
                    Err(err("unknown operating system or architecture"))
                }
            }
            [os, arch] => Ok(Platform::new(os, arch, "")),
            [os, arch, variant] => Ok(Platform::new(os, arch, variant)),
            _ => Err(err("expected os/arch[/variant]")),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_normalise() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/armhf", "linux/arm/v7"),
            ("arm64", "linux/arm64/v8"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/riscv64", "linux/riscv64"),
            ("windows/amd64", "windows/amd64"),
        ];
        for (input, want) in cases {
            let p: Platform = input.parse().expect(input);
            assert_eq!(p.to_string(), want, "{input}");
        }
        for bad in ["", "linux/", "/amd64", "a/b/c/d", "linux/am d64", "bogus"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        // One word: an OS on this machine's architecture, or an
        // architecture on linux.
        let windows: Platform = "windows".parse().expect("windows");
        assert_eq!(windows.os, "windows");
        assert_eq!(windows.architecture, Platform::host().architecture);
        assert_eq!(
            "x86_64".parse::<Platform>().map(|p| p.to_string()),
            Ok("linux/amd64".to_string())
        );
    }

    #[test]
    fn matching() {
        let p = |s: &str| s.parse::<Platform>().expect(s);
        assert!(p("linux/amd64").accepts(&p("linux/amd64")));
        assert!(!p("linux/amd64").accepts(&p("linux/arm64")));
        assert!(p("linux/arm64").accepts(&p("linux/arm64/v8")));
        assert!(p("linux/arm/v7").accepts(&p("linux/arm/v6")));
        assert!(!p("linux/arm/v6").accepts(&p("linux/arm/v7")));
        assert!(
            p("linux/arm/v7").score(&p("linux/arm/v7"))
                > p("linux/arm/v7").score(&p("linux/arm/v6"))
        );
        let oci = p("linux/arm/v7").to_oci();
        assert_eq!(Platform::from_oci(&oci), p("linux/arm/v7"));
    }
}
