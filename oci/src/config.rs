//! The image config as Docker and BuildKit write it: the OCI fields plus
//! Docker's extensions (`Healthcheck`, `Shell`, `OnBuild`, ...). Unknown
//! fields are kept, so reading and re-writing a base config loses nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

type Extra = serde_json::Map<String, serde_json::Value>;

/// An image config blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// MAINTAINER.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// What a container runs with.
    #[serde(default)]
    pub config: ContainerConfig,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// One entry per instruction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields kiln does not interpret.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `config` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// USER.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// EXPOSE (`"80/tcp": {}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// ENV (`KEY=value`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// ENTRYPOINT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// CMD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// VOLUME.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// WORKDIR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// LABEL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// STOPSIGNAL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Set by a CMD in a Dockerfile (Docker's field; deprecated in the
    /// OCI spec, but BuildKit writes it, so the bytes match).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    /// HEALTHCHECK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// ONBUILD triggers, unexpanded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// SHELL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields kiln does not interpret.
    #[serde(flatten)]
    pub extra: Extra,
}

/// HEALTHCHECK as Docker stores it (durations in nanoseconds). Zero
/// durations and retries mean "inherit" and are left out, as Go's
/// `omitempty` leaves them out of BuildKit's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_unset")]
    pub interval: Option<u64>,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_unset")]
    pub timeout: Option<u64>,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_unset")]
    pub start_period: Option<u64>,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_unset")]
    pub start_interval: Option<u64>,
    /// Consecutive failures.
    #[serde(skip_serializing_if = "is_unset")]
    pub retries: Option<u32>,
}

/// `None` or zero: a HEALTHCHECK field Docker's config omits.
fn is_unset<N: Default + PartialEq>(value: &Option<N>) -> bool {
    value.as_ref().is_none_or(|n| *n == N::default())
}

/// `rootfs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, base first.
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A comment (`buildkit.dockerfile.v0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the instruction made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// Parses a config blob.
    ///
    /// # Errors
    /// Invalid JSON or missing required fields.
    pub fn from_slice(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Serialises compactly (map keys sorted, as the structs declare them).
    pub fn to_vec(&self) -> Vec<u8> {
        // Plain data with string keys cannot fail to serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_docker_fields() {
        let text = r#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":["sh"],"Healthcheck":{"Test":["NONE"]},"OnBuild":["RUN x"],"ArgsEscaped":true},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"x","empty_layer":true}],"docker_version":"26"}"#;
        let c = ImageConfig::from_slice(text.as_bytes()).expect("parses");
        assert_eq!(
            c.config.on_build.as_deref(),
            Some(&["RUN x".to_string()][..])
        );
        assert!(c.history[0].empty_layer);
        let back: serde_json::Value = serde_json::from_slice(&c.to_vec()).expect("json");
        assert_eq!(back["docker_version"], "26");
        assert_eq!(back["config"]["ArgsEscaped"], true);
        assert_eq!(back["config"]["Healthcheck"]["Test"][0], "NONE");
    }

    #[test]
    fn zero_healthcheck_fields_are_left_out() {
        let h = HealthConfig {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: Some(5),
            timeout: Some(0),
            start_period: Some(0),
            start_interval: None,
            retries: Some(0),
        };
        let json = serde_json::to_string(&h).expect("json");
        assert_eq!(json, r#"{"Test":["CMD","true"],"Interval":5}"#);
    }
}
