//! Options every command shares (`--root`, `--config`,
//! `--insecure-registry`, `--registry-timeout`, `--registry-deadline`) and
//! the objects built from them.

use crate::config::Config;
use anyhow::{Context, Result};
use clap::Args;
use kiln_oci::{DockerConfig, LocalStore, RegistryClient, RegistryOptions};
use std::path::PathBuf;

/// Global options.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The state directory (blobs, refs). Default: /var/lib/kiln as root,
    /// else $XDG_DATA_HOME/kiln.
    #[arg(long, global = true, env = "KILN_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The config file. Default: $XDG_CONFIG_HOME/kiln/config.toml, else
    /// /etc/kiln/config.toml.
    #[arg(long, global = true, env = "KILN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A registry (host[:port]) to reach over plain HTTP; repeatable.
    /// Loopback registries always are.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Fail a registry request that sends no data for this long (`30s`,
    /// `2m`; default 30s, or `timeout` in `[registry-defaults]`).
    #[arg(long = "registry-timeout", global = true, env = "KILN_REGISTRY_TIMEOUT", value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub registry_timeout: Option<std::time::Duration>,
    /// Fail a whole pull or push that takes longer than this, retries
    /// included (default none, or `deadline` in `[registry-defaults]`).
    #[arg(long = "registry-deadline", global = true, env = "KILN_REGISTRY_DEADLINE", value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub registry_deadline: Option<std::time::Duration>,
}

impl GlobalArgs {
    /// Opens the local store.
    pub fn store(&self) -> Result<LocalStore> {
        let root = match &self.root {
            Some(r) => r.clone(),
            None => kiln_oci::default_root().context(
                "cannot tell where to keep images: set --root or KILN_ROOT (HOME is not set)",
            )?,
        };
        LocalStore::open(&root).with_context(|| format!("opening the store at {}", root.display()))
    }

    /// The config file (`--config`, `$KILN_CONFIG` or the default places).
    pub fn config_file(&self) -> Result<Config> {
        Config::load(self.config.as_deref())
    }

    /// A registry client with the config's mirrors, insecure registries
    /// and `[registry-defaults]` (the timeout flags win), and the user's
    /// Docker credentials.
    pub fn registry(&self) -> Result<RegistryClient> {
        let config = Config::load(self.config.as_deref())?;
        let mut insecure = config.insecure_registries();
        insecure.extend(self.insecure_registries.iter().cloned());
        let defaults = RegistryOptions::default();
        let set = &config.checked.registry;
        let options = RegistryOptions {
            insecure_registries: insecure,
            mirrors: config.mirrors(),
            connect_timeout: set.connect_timeout.unwrap_or(defaults.connect_timeout),
            progress_timeout: self
                .registry_timeout
                .or(set.timeout)
                .unwrap_or(defaults.progress_timeout),
            deadline: self.registry_deadline.or(set.deadline),
            retries: set.retries.unwrap_or(defaults.retries),
            max_retry_after: set.max_retry_after.unwrap_or(defaults.max_retry_after),
            ..defaults
        };
        let credentials = DockerConfig::load_default().context("reading Docker credentials")?;
        Ok(RegistryClient::new(options, Box::new(credentials))?)
    }
}

/// Starts the async runtime the registry commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `1.2 MB`-style sizes (decimal units, as docker prints them).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.3} {}", UNITS[unit])
            .replace(".000 ", " ")
            .to_string()
    }
}
