//! Image references, parsed and normalised the way Docker does it.
//!
//! The grammar follows `github.com/distribution/reference`:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]
//! host             := domain-name | "[" ipv6 "]"
//! domain-name      := domain-component ( "." domain-component )*
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! port             := [0-9]+
//! path             := path-component ( "/" path-component )*
//! path-component   := alnum ( separator alnum )*
//! alnum            := [a-z0-9]+
//! separator        := "." | "_" | "__" | "-"+
//! tag              := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" hex
//! ```
//!
//! Normalisation (`ParseNormalizedNamed` + default tag): the first path
//! component is a registry domain only if it contains `.` or `:`, is
//! `localhost`, or contains an upper-case letter; otherwise the registry is
//! `docker.io`, and single-component Docker Hub names get `library/`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The canonical Docker Hub domain.
const DEFAULT_DOMAIN: &str = "docker.io";
/// Other spellings of Docker Hub that are normalised to [`DEFAULT_DOMAIN`].
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// The host actually serving the Docker Hub registry API.
const DOCKER_HUB_REGISTRY_HOST: &str = "registry-1.docker.io";
/// Namespace of the official images on Docker Hub.
const OFFICIAL_PREFIX: &str = "library/";
/// Tag used when a reference has neither a tag nor a digest.
const DEFAULT_TAG: &str = "latest";
/// Maximum length of the repository path (distribution/reference).
const MAX_PATH_LEN: usize = 255;
/// Maximum length of a tag.
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference: registry domain, repository path, optional
/// tag, optional digest.
///
/// After [`Reference::parse`] at least one of tag and digest is set: a
/// reference with neither gets the tag `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a string is not a valid image reference. Every variant carries the
/// offending input (the whole reference, or the tag given to
/// [`Reference::with_tag`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The input is empty.
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    /// The input does not follow the reference grammar (bad repository path,
    /// stray separators, invalid characters, ...).
    #[error("invalid reference format: {0:?}")]
    InvalidFormat(String),
    /// The registry domain (`host[:port]`) is malformed.
    #[error("invalid reference format: bad registry domain in {0:?}")]
    InvalidDomain(String),
    /// The repository path contains upper-case letters.
    #[error("invalid reference format: repository name must be lowercase in {0:?}")]
    UppercaseRepository(String),
    /// The repository path is longer than 255 characters.
    #[error(
        "invalid reference format: repository name must not be more than 255 characters in {0:?}"
    )]
    NameTooLong(String),
    /// The tag is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid reference format: bad tag in {0:?}")]
    InvalidTag(String),
    /// The digest is malformed or uses an unsupported algorithm.
    #[error("invalid reference format: bad digest in {0:?}")]
    InvalidDigest(String),
    /// The input is a bare 64-hex-digit identifier, which Docker refuses as a
    /// repository name.
    #[error("invalid repository name {0:?}: cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
}

impl Reference {
    /// Parses and normalises a reference: `busybox` becomes
    /// `docker.io/library/busybox:latest`, `user/app` becomes
    /// `docker.io/user/app:latest`; `localhost:5000/app` keeps its domain;
    /// `index.docker.io` and `registry-1.docker.io` become `docker.io`.
    /// A reference with only a digest gets no default tag, and
    /// `name:tag@digest` keeps both.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(is_lower_hex) {
            return Err(ReferenceError::HexIdentifier(s.to_owned()));
        }
        let err_format = || ReferenceError::InvalidFormat(s.to_owned());

        // Names and tags never contain '@', so the digest is everything after
        // the first one.
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };

        // Split off the domain (splitDockerDomain).
        let (domain, remainder): (&str, String) = match name_tag.split_once('/') {
            None => (DEFAULT_DOMAIN, format!("{OFFICIAL_PREFIX}{name_tag}")),
            Some((first, rest)) => {
                let (domain, rest) = if DOCKER_HUB_ALIASES.contains(&first) {
                    (DEFAULT_DOMAIN, rest)
                } else if first == "localhost"
                    || first.contains(['.', ':'])
                    || first.bytes().any(|b| b.is_ascii_uppercase())
                {
                    (first, rest)
                } else {
                    (DEFAULT_DOMAIN, name_tag)
                };
                if domain == DEFAULT_DOMAIN && !rest.contains('/') {
                    (domain, format!("{OFFICIAL_PREFIX}{rest}"))
                } else {
                    (domain, rest.to_owned())
                }
            }
        };

        // The tag starts at the first ':' of the last path component.
        let last_slash = remainder.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match remainder[last_slash..].find(':') {
            Some(i) => (
                &remainder[..last_slash + i],
                Some(&remainder[last_slash + i + 1..]),
            ),
            None => (remainder.as_str(), None),
        };

        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::UppercaseRepository(s.to_owned()));
        }
        if !is_valid_domain(domain) {
            return Err(ReferenceError::InvalidDomain(s.to_owned()));
        }
        if !is_valid_path(path) {
            return Err(err_format());
        }
        if path.len() > MAX_PATH_LEN {
            return Err(ReferenceError::NameTooLong(s.to_owned()));
        }
        if let Some(tag) = tag {
            if !is_valid_tag(tag) {
                return Err(ReferenceError::InvalidTag(s.to_owned()));
            }
        }
        if let Some(digest) = digest {
            if !is_valid_digest(digest) {
                return Err(ReferenceError::InvalidDigest(s.to_owned()));
            }
        }

        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag.map(str::to_owned),
        };
        Ok(Reference {
            domain: domain.to_owned(),
            path: path.to_owned(),
            tag,
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry domain, possibly with a port: `docker.io`,
    /// `localhost:5000`, `127.0.0.1:5000`, `[::1]:5000`, `ghcr.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path without the domain, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.path
    }

    /// The full repository name, domain included, without tag or digest,
    /// e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`algorithm:hex`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same reference with its tag replaced by `tag`; a digest is kept.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag(tag.to_owned()));
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// Docker's short form (`FamiliarString`): `busybox:latest`,
    /// `user/app:1`, `localhost:5000/app:1`.
    pub fn familiar(&self) -> String {
        let mut out = if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(short) if !short.contains('/') => short.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        };
        self.push_suffix(&mut out);
        out
    }

    /// The registry host to contact: `registry-1.docker.io` for `docker.io`,
    /// the domain itself otherwise.
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DOCKER_HUB_REGISTRY_HOST
        } else {
            &self.domain
        }
    }

    /// True for registries on `localhost`, `127.0.0.0/8` or `::1` (which are
    /// spoken to over plain HTTP by default).
    pub fn is_loopback_registry(&self) -> bool {
        let host = split_host_port(&self.domain).0;
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return inner.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
        }
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Appends `:tag` and `@digest` when present.
    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    /// The full normalised form: `docker.io/library/busybox:latest`,
    /// `name@digest` or `name:tag@digest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// Splits `host[:port]`, where host may be a bracketed IPv6 address.
fn split_host_port(domain: &str) -> (&str, Option<&str>) {
    if domain.starts_with('[') {
        if let Some(end) = domain.find(']') {
            let (host, rest) = domain.split_at(end + 1);
            return match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => (host, None),
            };
        }
        return (domain, None);
    }
    match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    }
}

/// `host[:port]` with host a domain name, IPv4 address or `[ipv6]`.
fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = split_host_port(domain);
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return false;
        };
        // Whatever follows "]" must have been ":port".
        if host.len() + port.map_or(0, |p| p.len() + 1) != domain.len() {
            return false;
        }
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !host.is_empty() && host.split('.').all(is_valid_domain_component)
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_valid_domain_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// One or more path components separated by single slashes.
fn is_valid_path(path: &str) -> bool {
    path.split('/').all(is_valid_path_component)
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn is_valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // An alphanumeric run.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator, which must be followed by another run.
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match tag.as_bytes().split_first() {
        Some((first, rest)) => {
            tag.len() <= MAX_TAG_LEN
                && word(first)
                && rest.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
        }
        None => false,
    }
}

/// `algorithm:hex` where the algorithm matches both Docker's reference
/// pattern and go-digest's (`[a-z][a-z0-9]*` parts joined by `+._-`) and is
/// one of the algorithms Docker supports, with the matching hex length.
fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok =
        algorithm
            .split(['+', '.', '_', '-'])
            .all(|part| match part.as_bytes().split_first() {
                Some((first, rest)) => {
                    first.is_ascii_lowercase()
                        && rest
                            .iter()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                }
                None => false,
            });
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    algorithm_ok && encoded.len() == hex_len && encoded.bytes().all(is_lower_hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

    fn d() -> String {
        format!("sha256:{H}")
    }

    /// (input, domain, repository, tag, has the sha256 digest `d()`, Display, familiar)
    type Row = (
        String,
        &'static str,
        &'static str,
        Option<&'static str>,
        bool,
        String,
        String,
    );

    fn table() -> Vec<Row> {
        let dg = d();
        vec![
            (
                "busybox".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "busybox:1.36".into(),
                "docker.io",
                "library/busybox",
                Some("1.36"),
                false,
                "docker.io/library/busybox:1.36".into(),
                "busybox:1.36".into(),
            ),
            (
                "library/busybox".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "docker.io/busybox".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "docker.io/library/busybox:latest".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "index.docker.io/busybox".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "registry-1.docker.io/user/app:2".into(),
                "docker.io",
                "user/app",
                Some("2"),
                false,
                "docker.io/user/app:2".into(),
                "user/app:2".into(),
            ),
            (
                "user/repo".into(),
                "docker.io",
                "user/repo",
                Some("latest"),
                false,
                "docker.io/user/repo:latest".into(),
                "user/repo:latest".into(),
            ),
            (
                "user/app:1".into(),
                "docker.io",
                "user/app",
                Some("1"),
                false,
                "docker.io/user/app:1".into(),
                "user/app:1".into(),
            ),
            (
                "library/a/b".into(),
                "docker.io",
                "library/a/b",
                Some("latest"),
                false,
                "docker.io/library/a/b:latest".into(),
                "library/a/b:latest".into(),
            ),
            (
                "ghcr.io/org/app:v1".into(),
                "ghcr.io",
                "org/app",
                Some("v1"),
                false,
                "ghcr.io/org/app:v1".into(),
                "ghcr.io/org/app:v1".into(),
            ),
            (
                "ghcr.io/app".into(),
                "ghcr.io",
                "app",
                Some("latest"),
                false,
                "ghcr.io/app:latest".into(),
                "ghcr.io/app:latest".into(),
            ),
            (
                "localhost/app".into(),
                "localhost",
                "app",
                Some("latest"),
                false,
                "localhost/app:latest".into(),
                "localhost/app:latest".into(),
            ),
            (
                "localhost:5000/app:1".into(),
                "localhost:5000",
                "app",
                Some("1"),
                false,
                "localhost:5000/app:1".into(),
                "localhost:5000/app:1".into(),
            ),
            (
                "127.0.0.1:5000/a/b/c:tag".into(),
                "127.0.0.1:5000",
                "a/b/c",
                Some("tag"),
                false,
                "127.0.0.1:5000/a/b/c:tag".into(),
                "127.0.0.1:5000/a/b/c:tag".into(),
            ),
            (
                "[::1]:5000/app".into(),
                "[::1]:5000",
                "app",
                Some("latest"),
                false,
                "[::1]:5000/app:latest".into(),
                "[::1]:5000/app:latest".into(),
            ),
            (
                "[2001:db8::1]/app".into(),
                "[2001:db8::1]",
                "app",
                Some("latest"),
                false,
                "[2001:db8::1]/app:latest".into(),
                "[2001:db8::1]/app:latest".into(),
            ),
            (
                "example:5000/app".into(),
                "example:5000",
                "app",
                Some("latest"),
                false,
                "example:5000/app:latest".into(),
                "example:5000/app:latest".into(),
            ),
            (
                "Example.COM/app".into(),
                "Example.COM",
                "app",
                Some("latest"),
                false,
                "Example.COM/app:latest".into(),
                "Example.COM/app:latest".into(),
            ),
            (
                "UpperHost/app".into(),
                "UpperHost",
                "app",
                Some("latest"),
                false,
                "UpperHost/app:latest".into(),
                "UpperHost/app:latest".into(),
            ),
            (
                "localhost:5000".into(),
                "docker.io",
                "library/localhost",
                Some("5000"),
                false,
                "docker.io/library/localhost:5000".into(),
                "localhost:5000".into(),
            ),
            (
                "a.b-c---d/e__f.g-h:Tag_1.x-y".into(),
                "a.b-c---d",
                "e__f.g-h",
                Some("Tag_1.x-y"),
                false,
                "a.b-c---d/e__f.g-h:Tag_1.x-y".into(),
                "a.b-c---d/e__f.g-h:Tag_1.x-y".into(),
            ),
            (
                "foo/a__b---c_d.e".into(),
                "docker.io",
                "foo/a__b---c_d.e",
                Some("latest"),
                false,
                "docker.io/foo/a__b---c_d.e:latest".into(),
                "foo/a__b---c_d.e:latest".into(),
            ),
            (
                "app:_tag".into(),
                "docker.io",
                "library/app",
                Some("_tag"),
                false,
                "docker.io/library/app:_tag".into(),
                "app:_tag".into(),
            ),
            (
                format!("busybox@{dg}"),
                "docker.io",
                "library/busybox",
                None,
                true,
                format!("docker.io/library/busybox@{dg}"),
                format!("busybox@{dg}"),
            ),
            (
                format!("busybox:1.36@{dg}"),
                "docker.io",
                "library/busybox",
                Some("1.36"),
                true,
                format!("docker.io/library/busybox:1.36@{dg}"),
                format!("busybox:1.36@{dg}"),
            ),
            (
                format!("localhost:5000/app@{dg}"),
                "localhost:5000",
                "app",
                None,
                true,
                format!("localhost:5000/app@{dg}"),
                format!("localhost:5000/app@{dg}"),
            ),
            (
                format!("ghcr.io/o/a:v1@{dg}"),
                "ghcr.io",
                "o/a",
                Some("v1"),
                true,
                format!("ghcr.io/o/a:v1@{dg}"),
                format!("ghcr.io/o/a:v1@{dg}"),
            ),
            (
                format!("busybox@sha512:{H}{H}"),
                "docker.io",
                "library/busybox",
                None,
                false,
                format!("docker.io/library/busybox@sha512:{H}{H}"),
                format!("busybox@sha512:{H}{H}"),
            ),
        ]
    }

    #[test]
    fn normalisation_table() {
        let rows = table();
        assert!(rows.len() >= 29);
        for (input, domain, repo, tag, sha256_digest, display, familiar) in rows {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.domain(), domain, "{input}");
            assert_eq!(r.repository(), repo, "{input}");
            assert_eq!(r.name(), format!("{domain}/{repo}"), "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            if sha256_digest {
                assert_eq!(r.digest(), Some(d().as_str()), "{input}");
            }
            assert_eq!(r.to_string(), display, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            // Both forms parse back to the same reference.
            assert_eq!(Reference::parse(&display).as_ref(), Ok(&r), "{input}");
            assert_eq!(Reference::parse(&familiar).as_ref(), Ok(&r), "{input}");
            assert_eq!(display.parse::<Reference>().as_ref(), Ok(&r), "{input}");
        }
    }

    #[test]
    fn registry_host() {
        let cases = [
            ("busybox", "registry-1.docker.io"),
            ("index.docker.io/user/app", "registry-1.docker.io"),
            ("ghcr.io/o/a", "ghcr.io"),
            ("localhost:5000/a", "localhost:5000"),
            ("[::1]:5000/a", "[::1]:5000"),
            ("quay.io:443/a", "quay.io:443"),
        ];
        for (input, host) in cases {
            assert_eq!(
                Reference::parse(input).unwrap().registry_host(),
                host,
                "{input}"
            );
        }
    }

    #[test]
    fn loopback_registries() {
        let cases = [
            ("localhost/a", true),
            ("localhost:5000/a", true),
            ("LOCALHOST:5000/a", true),
            ("127.0.0.1/a", true),
            ("127.0.0.1:5000/a", true),
            ("127.255.3.4:80/a", true),
            ("[::1]/a", true),
            ("[::1]:5000/a", true),
            ("[0:0:0:0:0:0:0:1]:5000/a", true),
            ("busybox", false),
            ("localhost", false),
            ("ghcr.io/a", false),
            ("128.0.0.1:5000/a", false),
            ("127.0.0.1.example.com/a", false),
            ("localhost.example.com/a", false),
            ("[::2]:5000/a", false),
            ("10.0.0.1:5000/a", false),
        ];
        for (input, expected) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.is_loopback_registry(), expected, "{input}");
        }
    }

    #[test]
    fn with_tag_replaces_tag_and_keeps_digest() {
        let r = Reference::parse("busybox")
            .unwrap()
            .with_tag("1.36")
            .unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
        let dr = Reference::parse(&format!("busybox@{}", d())).unwrap();
        let dt = dr.with_tag("v2").unwrap();
        assert_eq!(
            dt.to_string(),
            format!("docker.io/library/busybox:v2@{}", d())
        );
        for bad in ["", ".x", "-x", "a:b", "a/b", "a@b", &"a".repeat(129), "é"] {
            assert_eq!(
                r.with_tag(bad),
                Err(ReferenceError::InvalidTag(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert!(r.with_tag(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn errors() {
        use ReferenceError as E;
        let long_path = "a".repeat(248); // "library/" + 248 = 256
        let ok_path = "a".repeat(247); // "library/" + 247 = 255
        type Case = (String, fn(String) -> E);
        let cases: Vec<Case> = vec![
            ("Busybox".into(), E::UppercaseRepository),
            ("docker.io/User/app".into(), E::UppercaseRepository),
            ("ghcr.io/org/App:v1".into(), E::UppercaseRepository),
            ("user/Repo".into(), E::UppercaseRepository),
            ("busybox:".into(), E::InvalidTag),
            ("busybox:.tag".into(), E::InvalidTag),
            ("busybox:-tag".into(), E::InvalidTag),
            ("busybox:a:b".into(), E::InvalidTag),
            ("busybox:t!".into(), E::InvalidTag),
            (format!("busybox:{}", "t".repeat(129)), E::InvalidTag),
            ("busybox@".into(), E::InvalidDigest),
            ("busybox@sha256".into(), E::InvalidDigest),
            ("busybox@sha256:abc".into(), E::InvalidDigest),
            (
                format!("busybox@sha256:{}", H.to_uppercase()),
                E::InvalidDigest,
            ),
            (format!("busybox@sha256:{H}0"), E::InvalidDigest),
            (format!("busybox@sha512:{H}"), E::InvalidDigest),
            (format!("busybox@md5:{H}"), E::InvalidDigest),
            (format!("busybox@{H}"), E::InvalidDigest),
            (format!("busybox@sha256:{H}@sha256:{H}"), E::InvalidDigest),
            ("busybox/".into(), E::InvalidFormat),
            ("user//app".into(), E::InvalidFormat),
            ("/app".into(), E::InvalidFormat),
            (":tag".into(), E::InvalidFormat),
            (format!("@{}", d()), E::InvalidFormat),
            ("a_-b".into(), E::InvalidFormat),
            ("a___b".into(), E::InvalidFormat),
            ("a..b".into(), E::InvalidFormat),
            ("-app".into(), E::InvalidFormat),
            ("app-".into(), E::InvalidFormat),
            ("my app".into(), E::InvalidFormat),
            ("app!".into(), E::InvalidFormat),
            ("caf\u{e9}".into(), E::InvalidFormat),
            ("[::1]:5000".into(), E::InvalidFormat),
            ("ghcr.io/".into(), E::InvalidFormat),
            (long_path, E::NameTooLong),
            (format!("ghcr.io/{}", "a".repeat(256)), E::NameTooLong),
            ("-bad.io/app".into(), E::InvalidDomain),
            ("bad-.io/app".into(), E::InvalidDomain),
            ("a..io/app".into(), E::InvalidDomain),
            ("host:/app".into(), E::InvalidDomain),
            ("host:50x/app".into(), E::InvalidDomain),
            ("host:1:2/app".into(), E::InvalidDomain),
            ("[::1/app".into(), E::InvalidDomain),
            ("[]:5000/app".into(), E::InvalidDomain),
            ("[::1]x/app".into(), E::InvalidDomain),
            ("[::g]/app".into(), E::InvalidDomain),
            ("under_score.io/app".into(), E::InvalidDomain),
            (H.into(), E::HexIdentifier),
        ];
        for (input, make) in cases {
            assert_eq!(
                Reference::parse(&input),
                Err(make(input.clone())),
                "{input}"
            );
        }
        assert_eq!(Reference::parse(""), Err(E::Empty));
        assert!(Reference::parse(&ok_path).is_ok());
        // A 64-hex name with a tag is a plain repository name.
        assert!(Reference::parse(&format!("{H}:v1")).is_ok());
        // 63 hex digits are an ordinary name.
        assert!(Reference::parse(&H[1..]).is_ok());
    }

    #[test]
    fn error_messages_name_the_problem() {
        let e = Reference::parse("Busybox").unwrap_err();
        assert!(e.to_string().contains("must be lowercase"), "{e}");
        assert!(e.to_string().contains("Busybox"), "{e}");
    }

    #[test]
    fn serde_round_trip() {
        let r = Reference::parse(&format!("ghcr.io/o/a:v1@{}", d())).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"ghcr.io/o/a:v1@{}\"", d()));
        let back: Reference = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let short: Reference = serde_json::from_str("\"busybox\"").unwrap();
        assert_eq!(short.to_string(), "docker.io/library/busybox:latest");
        assert!(serde_json::from_str::<Reference>("\"Bad\"").is_err());
        assert!(serde_json::from_str::<Reference>("42").is_err());
    }

    #[test]
    fn never_panics_on_odd_input() {
        let mut inputs: Vec<String> = Vec::new();
        let mut seeds: Vec<String> = table().into_iter().map(|row| row.0).collect();
        seeds.extend(
            [
                "[::1]:5000/app@sha256:",
                "a@b@c",
                "@",
                ":",
                "/",
                "//",
                "[",
                "]",
                "[]",
                "[:",
                "[::1]",
                "::1/a",
                ":5000/a",
                "a:/b",
                "a/b:c/d",
                "a/:b",
                "localhost:",
                "x\u{0}y",
                "\u{1F600}/\u{1F600}:\u{1F600}@\u{1F600}",
                "é/ü:ß@sha256:é",
                "   ",
                "\n",
                "a\tb",
                "sha256:abc",
            ]
            .map(String::from),
        );
        seeds.push("a/".repeat(200));
        seeds.push(format!("{}/x", ".".repeat(300)));
        seeds.push(format!("x:{}", ":".repeat(300)));
        for seed in &seeds {
            for i in 0..=seed.len() {
                if let (Some(head), Some(tail)) = (seed.get(..i), seed.get(i..)) {
                    inputs.push(head.to_owned());
                    inputs.push(tail.to_owned());
                }
            }
        }
        assert!(inputs.len() > 300);
        for input in &inputs {
            if let Ok(r) = Reference::parse(input) {
                // Whatever parses is stable under re-parsing its forms.
                assert_eq!(
                    Reference::parse(&r.to_string()).as_ref(),
                    Ok(&r),
                    "{input:?}"
                );
                assert_eq!(
                    Reference::parse(&r.familiar()).as_ref(),
                    Ok(&r),
                    "{input:?}"
                );
                let _ = (r.registry_host(), r.is_loopback_registry());
            }
        }
    }
}
