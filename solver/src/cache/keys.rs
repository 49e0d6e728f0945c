//! Cache keys: what a step's key is made of, and why a key missed.
//!
//! A cache key is sha256 of [`CACHE_KEY_VERSION`], the vertex digest (the
//! op and its inputs' ops), the inputs' cache keys, and the content
//! checksum of the context files the step reads. Names, lines and progress
//! groups are not part of it.

use kiln_oci::Digest;
use serde::{Deserialize, Serialize};

/// Bumped whenever what a key covers changes.
pub const CACHE_KEY_VERSION: &str = "kiln.cache.v1";

/// The parts a cache key is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKeyParts {
    /// The vertex digest.
    pub vertex: String,
    /// The inputs' cache keys.
    pub inputs: Vec<String>,
    /// The checksum of the context files read, if any.
    pub context: Option<String>,
}

impl CacheKeyParts {
    /// The key.
    pub fn key(&self) -> Digest {
        let text = serde_json::json!([CACHE_KEY_VERSION, self]).to_string();
        Digest::sha256(text.as_bytes())
    }

    /// Why `self` differs from the `previous` key of the same step.
    pub fn miss_reason(&self, previous: Option<&CacheKeyParts>) -> String {
        let Some(p) = previous else {
            return "no earlier build of this step".into();
        };
        if p.vertex != self.vertex {
            return "the instruction or its inputs changed".into();
        }
        if p.context != self.context {
            return "context files it copies changed".into();
        }
        if p.inputs != self.inputs {
            return "an earlier step or the base image changed".into();
        }
        "the cached result was removed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_reasons() {
        let a = CacheKeyParts {
            vertex: "v".into(),
            inputs: vec!["i".into()],
            context: Some("c1".into()),
        };
        let mut b = a.clone();
        assert_eq!(a.key(), b.key());
        b.context = Some("c2".into());
        assert_ne!(a.key(), b.key());
        assert!(b.miss_reason(Some(&a)).contains("context"));
        assert!(a.miss_reason(None).contains("no earlier"));
    }
}
