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
//!
//! and kiln's own keys:
//!
//! ```toml
//! runtime = "crun"          # default of `kiln build --runtime`
//! isolation = "auto"        # default of `kiln build --isolation`
//! jobs = 4                  # default of `kiln build --jobs`
//! emulate = true            # `kiln build --emulate` on every build
//!
//! [gc]
//! max-storage = "10GB"      # pruned back to this after each build
//!
//! [registry-defaults]      # every registry request, pull and push
//! connect-timeout = "15s"   # opening a connection
//! timeout = "30s"           # no data for this long fails a request
//! deadline = "10m"          # a whole pull or push (none by default)
//! retries = 5               # one budget per pull or push
//! max-retry-after = "60s"   # longest Retry-After honoured
//! ```

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Per-registry settings by host.
    #[serde(default)]
    pub registry: BTreeMap<String, RegistryConfig>,
    /// What runs RUN steps when neither `--runtime` nor `KILN_RUNTIME` is
    /// given: `builtin`, `runc`, `crun` or a path (checked by [`Config::load`]).
    #[serde(default)]
    runtime: Option<toml::Value>,
    /// Which isolation runs RUN steps when neither `--isolation` nor
    /// `KILN_ISOLATION` is given: `auto`, `sandbox` or `chroot`.
    #[serde(default)]
    isolation: Option<toml::Value>,
    /// Steps run at once when `--jobs` is not given (at least 1).
    #[serde(default)]
    jobs: Option<toml::Value>,
    /// `true`: every build may register QEMU emulation, as `--emulate`.
    #[serde(default)]
    emulate: Option<toml::Value>,
    /// Build-cache garbage collection.
    #[serde(default)]
    gc: GcConfig,
    /// Timeouts and retries of every registry request.
    #[serde(default, rename = "registry-defaults")]
    registry_defaults: RegistryDefaults,
    /// The values above, checked.
    #[serde(skip)]
    pub checked: Checked,
}

/// The `[gc]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GcConfig {
    /// The size the store is pruned back to after each build.
    #[serde(default, rename = "max-storage")]
    max_storage: Option<toml::Value>,
}

/// The `[registry-defaults]` table, as written (durations are strings
/// such as `"30s"` or whole seconds).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RegistryDefaults {
    connect_timeout: Option<toml::Value>,
    timeout: Option<toml::Value>,
    deadline: Option<toml::Value>,
    retries: Option<toml::Value>,
    max_retry_after: Option<toml::Value>,
}

/// `[registry-defaults]`, checked; `None` keeps kiln's default.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegistryTimeouts {
    /// `connect-timeout`.
    pub connect_timeout: Option<Duration>,
    /// `timeout`: how long a response may send no data.
    pub timeout: Option<Duration>,
    /// `deadline`: how long a whole pull or push may take.
    pub deadline: Option<Duration>,
    /// `retries`: the retry budget of one pull or push.
    pub retries: Option<u32>,
    /// `max-retry-after`.
    pub max_retry_after: Option<Duration>,
}

/// A positive duration: `"30s"`, `"1m 30s"` or whole seconds.
pub fn parse_duration(value: &str) -> std::result::Result<Duration, String> {
    let value = value.trim();
    let d = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(value).map_err(|e| e.to_string())?,
    };
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn duration_key(
    key: &str,
    v: &Option<toml::Value>,
) -> std::result::Result<Option<Duration>, String> {
    match v {
        None => Ok(None),
        Some(toml::Value::String(s)) => parse_duration(s)
            .map(Some)
            .map_err(|e| format!("registry-defaults.{key} = {s:?}: {e}")),
        Some(toml::Value::Integer(n)) if *n > 0 => Ok(Some(Duration::from_secs(n.unsigned_abs()))),
        Some(v) => Err(format!(
            "registry-defaults.{key} = {v}: expected a duration such as \"30s\" or a number of seconds"
        )),
    }
}

/// kiln's own keys, checked, and the file they came from.
#[derive(Debug, Default, Clone)]
pub struct Checked {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// `runtime`.
    pub runtime: Option<String>,
    /// `isolation`.
    pub isolation: Option<kiln_executor::Isolation>,
    /// `jobs`.
    pub jobs: Option<usize>,
    /// `emulate`.
    pub emulate: bool,
    /// `gc.max-storage` in bytes.
    pub max_storage: Option<u64>,
    /// `[registry-defaults]`.
    pub registry: RegistryTimeouts,
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
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        config.checked = config
            .check(&path)
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        Ok(config)
    }

    /// Checks kiln's own keys; the error names the key and the value.
    fn check(&self, path: &Path) -> std::result::Result<Checked, String> {
        let runtime = match &self.runtime {
            None => None,
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(v) => {
                return Err(format!(
                    "runtime = {v}: expected \"builtin\", \"runc\", \"crun\" or the path of an OCI runtime"
                ))
            }
        };
        let isolation = match &self.isolation {
            None => None,
            Some(toml::Value::String(s)) => Some(
                s.parse::<kiln_executor::Isolation>()
                    .map_err(|e| format!("isolation = {s:?}: {e}"))?,
            ),
            Some(v) => {
                return Err(format!(
                    "isolation = {v}: expected \"auto\", \"sandbox\" or \"chroot\""
                ))
            }
        };
        let jobs = match &self.jobs {
            None => None,
            Some(toml::Value::Integer(n)) if *n >= 1 => {
                Some(usize::try_from(*n).map_err(|_| format!("jobs = {n}: too large"))?)
            }
            Some(v) => return Err(format!("jobs = {v}: expected a whole number of at least 1")),
        };
        let emulate = match &self.emulate {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => return Err(format!("emulate = {v}: expected true or false")),
        };
        let max_storage = match &self.gc.max_storage {
            None => None,
            Some(toml::Value::String(s)) => Some(
                crate::units::parse_size(s).map_err(|e| format!("gc.max-storage = {s:?}: {e}"))?,
            ),
            Some(toml::Value::Integer(n)) if *n >= 0 => Some(n.unsigned_abs()),
            Some(v) => {
                return Err(format!(
                    "gc.max-storage = {v}: expected a size such as \"10GB\" or a number of bytes"
                ))
            }
        };
        let d = &self.registry_defaults;
        let retries = match &d.retries {
            None => None,
            Some(toml::Value::Integer(n)) if *n >= 0 => Some(
                u32::try_from(*n)
                    .map_err(|_| format!("registry-defaults.retries = {n}: too large"))?,
            ),
            Some(v) => {
                return Err(format!(
                    "registry-defaults.retries = {v}: expected a whole number of at least 0"
                ))
            }
        };
        let registry = RegistryTimeouts {
            connect_timeout: duration_key("connect-timeout", &d.connect_timeout)?,
            timeout: duration_key("timeout", &d.timeout)?,
            deadline: duration_key("deadline", &d.deadline)?,
            retries,
            max_retry_after: duration_key("max-retry-after", &d.max_retry_after)?,
        };
        Ok(Checked {
            path: Some(path.to_path_buf()),
            runtime,
            isolation,
            jobs,
            emulate,
            max_storage,
            registry,
        })
    }

    /// Where a key came from, for messages: `config file PATH: KEY`.
    pub fn origin(&self, key: &str) -> String {
        match &self.checked.path {
            Some(p) => format!("config file {}: {key}", p.display()),
            None => key.to_string(),
        }
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
