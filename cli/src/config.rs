//! The kiln config file: `$KILN_CONFIG`, `--config`, else
//! `$XDG_CONFIG_HOME/kiln/config.toml` (`~/.config/kiln/config.toml`), else
//! `/etc/kiln/config.toml`. Registry entries use BuildKit's buildkitd.toml
//! shape:
//!
//! ```toml
//! [registry."docker.io"]
//! mirrors = ["mirror.gcr.io"]
//!
//! [registry."registry.internal:5000"]
//! http = true
//! ```

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The whole config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Per-registry settings by host.
    #[serde(default)]
    pub registry: BTreeMap<String, RegistryConfig>,
}

/// Settings for one registry host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Mirrors tried before the registry for pulls (`host[:port]` or URLs).
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Reach this registry over plain HTTP.
    #[serde(default)]
    pub http: bool,
    /// Same as `http` (BuildKit's `insecure` also skips TLS verification;
    /// kiln treats it as plain HTTP).
    #[serde(default)]
    pub insecure: bool,
}

impl Config {
    /// Loads the config from `explicit` or the default locations; a missing
    /// default file is an empty config, a missing explicit one an error.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => match default_path() {
                Some(p) => p,
                None => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Registries to reach over plain HTTP.
    pub fn insecure_registries(&self) -> Vec<String> {
        self.registry
            .iter()
            .filter(|(_, r)| r.http || r.insecure)
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// Mirrors by registry host.
    pub fn mirrors(&self) -> BTreeMap<String, Vec<String>> {
        self.registry
            .iter()
            .filter(|(_, r)| !r.mirrors.is_empty())
            .map(|(h, r)| (h.clone(), r.mirrors.clone()))
            .collect()
    }
}

fn default_path() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let user = env("XDG_CONFIG_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".config")))
        .map(|d| d.join("kiln/config.toml"));
    [user, Some(PathBuf::from("/etc/kiln/config.toml"))]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}
