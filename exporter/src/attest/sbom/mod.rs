//! An SPDX 2.3 document of what an image's filesystem holds, read by kiln
//! itself: dpkg's status (and distroless's `status.d/`), apk's installed
//! database, rpm's sqlite database, and language lock files. Every file is read through the
//! layer stack (no link is followed) and bounded in size; the walk for
//! lock files is bounded in depth and entries.

mod apk;
mod dpkg;
mod lockfiles;
mod rpm;
mod spdx;

use super::statement::{Attestation, PREDICATE_SPDX};
use super::AttestError;
use kiln_executor::{LayerStack, SourceTree};
use std::io::Read;

/// The largest package database read (dpkg's status of a big image is a
/// few MiB).
const MAX_DB: u64 = 64 << 20;
/// The largest lock file or small metadata file read.
const MAX_FILE: u64 = 16 << 20;
/// How deep the lock file walk goes below `/`.
const MAX_DEPTH: usize = 8;
/// How many directory entries the lock file walk looks at.
const MAX_ENTRIES: usize = 200_000;

/// One package found in the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Package {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its package URL.
    pub purl: String,
    /// An SPDX license expression, when known and valid.
    pub license: Option<String>,
    /// `Organization: ...` or `Person: ...`, when known.
    pub supplier: Option<String>,
    /// Where it was found (`/var/lib/dpkg/status`).
    pub source_file: String,
}

/// The SBOM of an image, with what could not be read.
#[derive(Debug, Clone)]
pub struct Sbom {
    /// The SPDX document as an attestation.
    pub attestation: Attestation,
    /// How many packages it lists.
    pub packages: usize,
    /// Files skipped (too big, unreadable): one line each, for the
    /// progress output.
    pub warnings: Vec<String>,
}

/// The distribution, from `/etc/os-release` (`debian`, `12`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Distro {
    /// `ID`.
    pub id: String,
    /// `VERSION_ID`.
    pub version: String,
}

impl Distro {
    /// `&distro=debian-12`, or nothing when unknown.
    pub fn purl_qualifier(&self) -> String {
        match (self.id.is_empty(), self.version.is_empty()) {
            (true, _) => String::new(),
            (false, true) => format!("&distro={}", self.id),
            (false, false) => format!("&distro={}-{}", self.id, self.version),
        }
    }
}

/// Reads a file of the image, not following links; `None` when absent or
/// not a regular file.
pub(crate) struct ImageFiles<'a> {
    stack: &'a LayerStack,
    warnings: Vec<String>,
}

impl ImageFiles<'_> {
    /// `rel` (no leading `/`) as text, bounded by `limit` bytes: a bigger
    /// file is skipped with a warning.
    fn read(&mut self, rel: &str, limit: u64) -> Result<Option<String>, AttestError> {
        Ok(self
            .read_bytes(rel, limit)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// `rel`'s bytes, bounded by `limit`: a bigger file is skipped with a
    /// warning.
    fn read_bytes(&mut self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, AttestError> {
        let fail = |message: String| AttestError::Read {
            path: rel.to_string(),
            message,
        };
        let Some(entry) = self.stack.entry(rel).map_err(|e| fail(e.to_string()))? else {
            return Ok(None);
        };
        if !entry.metadata.is_file() {
            return Ok(None);
        }
        if entry.metadata.len() > limit {
            self.warnings.push(format!(
                "sbom: /{rel} is larger than {limit} bytes; skipped"
            ));
            return Ok(None);
        }
        let file = std::fs::File::open(&entry.real).map_err(|e| fail(e.to_string()))?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(e.to_string()))?;
        if bytes.len() as u64 > limit {
            self.warnings.push(format!(
                "sbom: /{rel} is larger than {limit} bytes; skipped"
            ));
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// The names in directory `rel`, or none when it is absent.
    fn list(&self, rel: &str) -> Vec<String> {
        match self.stack.entry(rel) {
            Ok(Some(e)) if e.metadata.is_dir() => self.stack.list(rel).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// The SBOM of the filesystem `stack`, named `name` in the document.
/// `created` is RFC 3339.
///
/// # Errors
/// A package database that exists but cannot be read.
pub fn sbom(stack: &LayerStack, name: &str, created: &str) -> Result<Sbom, AttestError> {
    let mut files = ImageFiles {
        stack,
        warnings: Vec::new(),
    };
    let distro = files
        .read("etc/os-release", MAX_FILE)?
        .or(files.read("usr/lib/os-release", MAX_FILE)?)
        .map(|t| os_release(&t))
        .unwrap_or_default();
    let mut packages = Vec::new();
    packages.extend(dpkg::packages(&mut files, &distro)?);
    packages.extend(apk::packages(&mut files, &distro)?);
    packages.extend(rpm::packages(&mut files, &distro)?);
    packages.extend(lockfiles::packages(&mut files)?);
    packages.sort();
    packages.dedup();
    let count = packages.len();
    let document = spdx::document(name, created, &packages);
    Ok(Sbom {
        attestation: Attestation {
            predicate_type: PREDICATE_SPDX.to_string(),
            predicate: document,
        },
        packages: count,
        warnings: files.warnings,
    })
}

/// `ID` and `VERSION_ID` of an os-release file.
fn os_release(text: &str) -> Distro {
    let mut d = Distro::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(['"', '\'']).to_string();
        match k.trim() {
            "ID" => d.id = v,
            "VERSION_ID" => d.version = v,
            _ => {}
        }
    }
    d
}

/// Percent-encodes a purl segment (RFC 3986 unreserved characters and
/// `+` stay, as purl implementations leave versions like `1.2+dfsg`).
pub(crate) fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The paragraphs of a deb822 / apk database (blank-line separated),
/// with continuation lines (starting with a space) kept in their field.
pub(crate) fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n").filter(|p| !p.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack_with(files: &[(&str, &str)]) -> (tempfile::TempDir, LayerStack) {
        let dir = tempfile::tempdir().expect("tmp");
        for (p, content) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        let stack = LayerStack::new(vec![dir.path().to_path_buf()]);
        (dir, stack)
    }

    #[test]
    fn reads_dpkg_apk_and_lock_files() {
        let (_dir, stack) = stack_with(&[
            ("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            (
                "var/lib/dpkg/status",
                "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\nSource: glibc\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n",
            ),
            (
                "var/lib/dpkg/status.d/base",
                "Package: base-files\nVersion: 12.4\nArchitecture: amd64\n",
            ),
            ("usr/share/doc/libc6/copyright", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: LGPL-2.1\n\nFiles: b\nLicense: GPL-1+ or Artistic\n\nLicense: LGPL-2.1\n Text.\n"),
            ("app/Cargo.lock", "version = 3\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n"),
            ("app/requirements.txt", "# pinned\nRequests==2.31.0\nflask>=2\n"),
            ("app/go.sum", "github.com/pkg/errors v0.9.1 h1:x=\ngithub.com/pkg/errors v0.9.1/go.mod h1:y=\n"),
            ("web/package-lock.json", "{\"lockfileVersion\":3,\"packages\":{\"\":{\"name\":\"web\"},\"node_modules/@types/node\":{\"version\":\"20.1.0\"},\"node_modules/lodash\":{\"version\":\"4.17.21\",\"license\":\"MIT\"}}}"),
        ]);
        let s = sbom(&stack, "app", "2024-01-01T00:00:00Z").expect("sbom");
        let doc = &s.attestation.predicate;
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        let purls: Vec<&str> = doc["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
            .collect();
        for want in [
            "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&upstream=glibc&distro=debian-12",
            "pkg:deb/debian/base-files@12.4?arch=amd64&distro=debian-12",
            "pkg:cargo/serde@1.0.200",
            "pkg:pypi/requests@2.31.0",
            "pkg:golang/github.com/pkg/errors@v0.9.1",
            "pkg:npm/%40types/node@20.1.0",
            "pkg:npm/lodash@4.17.21",
        ] {
            assert!(purls.contains(&want), "{want} in {purls:?}");
        }
        assert!(!purls.iter().any(|p| p.contains("gone")), "{purls:?}");
        assert!(
            !purls.iter().any(|p| p.contains("cargo/app")),
            "path crates are left out"
        );
        let libc = doc["packages"]
            .as_array()
            .expect("p")
            .iter()
            .find(|p| p["name"] == "libc6")
            .expect("libc6");
        assert_eq!(
            libc["licenseDeclared"],
            "(GPL-1.0-or-later OR Artistic-1.0-Perl) AND LGPL-2.1-only"
        );
        assert_eq!(s.packages, purls.len());
    }

    #[test]
    fn reads_apk_and_bounds_files() {
        let (dir, stack) = stack_with(&[
            ("etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n"),
            (
                "lib/apk/db/installed",
                "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n\n",
            ),
        ]);
        let s = sbom(&stack, "x", "2024-01-01T00:00:00Z").expect("sbom");
        let doc = &s.attestation.predicate;
        let musl = doc["packages"]
            .as_array()
            .expect("p")
            .iter()
            .find(|p| p["name"] == "musl")
            .expect("musl");
        assert_eq!(
            musl["externalRefs"][0]["referenceLocator"],
            "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
        );
        assert_eq!(musl["licenseDeclared"], "MIT");
        // A database bigger than the bound is skipped with a warning.
        let big = dir.path().join("app/requirements.txt");
        std::fs::create_dir_all(big.parent().expect("p")).expect("mkdir");
        std::fs::write(&big, vec![b'a'; (MAX_FILE + 1) as usize]).expect("write");
        let stack = LayerStack::new(vec![dir.path().to_path_buf()]);
        let s = sbom(&stack, "x", "2024-01-01T00:00:00Z").expect("sbom");
        assert!(
            s.warnings.iter().any(|w| w.contains("requirements.txt")),
            "{:?}",
            s.warnings
        );
    }
}
