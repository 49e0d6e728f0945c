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
mod tests;
