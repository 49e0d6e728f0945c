//! The in-toto statement around a predicate.

use kiln_oci::{Digest, Platform};
use serde_json::{json, Value};

/// The media type of an in-toto statement layer.
pub const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The statement type BuildKit writes.
pub const IN_TOTO_STATEMENT: &str = "https://in-toto.io/Statement/v0.1";
/// SLSA provenance v0.2's predicate type.
pub const PREDICATE_PROVENANCE: &str = "https://slsa.dev/provenance/v0.2";
/// An SPDX document's predicate type.
pub const PREDICATE_SPDX: &str = "https://spdx.dev/Document";

/// A predicate waiting for its subject (the image it is about).
#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    /// `https://slsa.dev/provenance/v0.2` or `https://spdx.dev/Document`.
    pub predicate_type: String,
    /// The predicate.
    pub predicate: Value,
}

impl Attestation {
    /// The in-toto statement about the image manifest `manifest` of
    /// `platform`, named by `names` (a subject per name, `_` when it has
    /// none), as JSON bytes.
    pub fn statement(&self, names: &[String], manifest: &Digest, platform: &Platform) -> Vec<u8> {
        let mut subjects: Vec<Value> = names
            .iter()
            .map(|n| subject_name(n, platform))
            .map(|name| json!({"name": name, "digest": {"sha256": manifest.hex()}}))
            .collect();
        if subjects.is_empty() {
            subjects.push(json!({"name": "_", "digest": {"sha256": manifest.hex()}}));
        }
        let statement = json!({
            "_type": IN_TOTO_STATEMENT,
            "predicateType": self.predicate_type,
            "subject": subjects,
            "predicate": self.predicate,
        });
        // Plain JSON values always serialise.
        serde_json::to_vec(&statement).unwrap_or_default()
    }

    /// `provenance` or `sbom` (or the predicate type itself).
    pub fn kind(&self) -> &str {
        kind_of(&self.predicate_type)
    }
}

/// `provenance`, `sbom` or, for another predicate, the predicate type
/// itself.
pub fn kind_of(predicate_type: &str) -> &str {
    if predicate_type.starts_with("https://slsa.dev/provenance/") {
        "provenance"
    } else if predicate_type == PREDICATE_SPDX {
        "sbom"
    } else {
        predicate_type
    }
}

/// The package URL of image `name` (`host/repo:tag`) for `platform`, as
/// BuildKit names subjects and materials:
/// `pkg:docker/host/repo@tag?platform=linux%2Famd64`.
pub fn subject_name(name: &str, platform: &Platform) -> String {
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    // `@sha256:...` or `:tag` after the last `/`.
    let (repo, version) = match name.split_once('@') {
        Some((repo, digest)) => (repo, digest.to_string()),
        None => {
            let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
            match name[slash..].rfind(':') {
                Some(i) => (&name[..slash + i], name[slash + i + 1..].to_string()),
                None => (name, "latest".to_string()),
            }
        }
    };
    let repo = repo
        .split_once(':')
        .map_or(repo.to_string(), |(host, rest)| format!("{host}%3A{rest}"));
    format!(
        "pkg:docker/{repo}@{version}?platform={}",
        platform.short_string().replace('/', "%2F")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_names_are_docker_purls() {
        let amd64 = Platform::new("linux", "amd64", "");
        assert_eq!(
            subject_name("docker.io/library/debian:bookworm", &amd64),
            "pkg:docker/debian@bookworm?platform=linux%2Famd64"
        );
        assert_eq!(
            subject_name("127.0.0.1:5000/team/app:1", &amd64),
            "pkg:docker/127.0.0.1%3A5000/team/app@1?platform=linux%2Famd64"
        );
        assert_eq!(
            subject_name("r.io/app", &amd64),
            "pkg:docker/r.io/app@latest?platform=linux%2Famd64"
        );
    }

    #[test]
    fn a_statement_names_its_subject_by_digest() {
        let a = Attestation {
            predicate_type: PREDICATE_SPDX.into(),
            predicate: json!({"spdxVersion": "SPDX-2.3"}),
        };
        let d = Digest::sha256(b"m");
        let s: Value =
            serde_json::from_slice(&a.statement(&[], &d, &Platform::new("linux", "arm64", "")))
                .expect("json");
        assert_eq!(s["_type"], IN_TOTO_STATEMENT);
        assert_eq!(s["subject"][0]["digest"]["sha256"], d.hex());
        assert_eq!(s["predicate"]["spdxVersion"], "SPDX-2.3");
        assert_eq!(a.kind(), "sbom");
    }
}
