//! Registry credentials the way the docker CLI finds them: Docker's
//! `config.json` and `docker-credential-*` helpers.
//!
//! - The config file is `$DOCKER_CONFIG/config.json`, or
//!   `$HOME/.docker/config.json` when `DOCKER_CONFIG` is not set. A missing
//!   file is an empty config; the whole JSON document is kept, so keys kiln
//!   does not know (`proxies`, `currentContext`, …) survive a rewrite.
//! - Credentials are keyed by [`registry_key`]: the host (`host[:port]`),
//!   except Docker Hub, which is `https://index.docker.io/v1/`. Keys written
//!   as URLs (`https://host/v2/`) match their host.
//! - For a host, the helper named in `credHelpers` is asked first, else the
//!   `credsStore` helper; when that helper has nothing (or none is
//!   configured) the `auths` entry is used. A `credHelpers` entry with an
//!   empty name means "this host has no helper", even when `credsStore` is
//!   set.
//! - A helper is the program `docker-credential-<name>` on `PATH`, spoken to
//!   with the docker-credential-helpers protocol (`get`, `store`, `erase`
//!   with the request on stdin).
//!
//! Helpers are run synchronously; from async code call this from
//! `spawn_blocking`.

mod entry;
mod helper;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use entry::{auths_entry, decode_entry};
#[cfg(test)]
use helper::find_helper;
use serde::Serialize;
use serde_json::{Map, Value};
use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The key Docker uses for Docker Hub in `auths` and towards helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// The canonical host Docker Hub's aliases are folded into for matching.
const DOCKER_HUB_HOST: &str = "index.docker.io";
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
const HELPER_PREFIX: &str = "docker-credential-";
/// The username with which helpers mark `Secret` as an identity token.
const TOKEN_USERNAME: &str = "<token>";
/// What helpers print when they hold nothing for a server.
const NOT_FOUND_MESSAGE: &str = "credentials not found";
/// How much helper output an error message carries at most.
const MAX_OUTPUT_IN_ERROR: usize = 2000;

/// Docker's base64: the standard alphabet; accept missing padding as well.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A username with its password or identity token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The username; may be empty for identity tokens.
    pub username: String,
    /// The password or token. Its `Debug` output is redacted.
    pub secret: Secret,
}

/// The secret half of a [`Credential`]. `Debug` prints `<redacted>` instead
/// of the value.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A password (or personal access token) for Basic auth or a token
    /// request.
    Password(String),
    /// An OAuth2 refresh token for the registry's token endpoint (Docker's
    /// `identitytoken`).
    IdentityToken(String),
}

impl Secret {
    /// The secret value itself.
    pub fn expose(&self) -> &str {
        match self {
            Secret::Password(s) | Secret::IdentityToken(s) => s,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Secret::Password(_) => "Password",
            Secret::IdentityToken(_) => "IdentityToken",
        };
        f.debug_tuple(name)
            .field(&format_args!("<redacted>"))
            .finish()
    }
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Neither `DOCKER_CONFIG` nor `HOME` is set.
    #[error("cannot locate Docker's config.json: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigLocation,
    /// A file system operation on the config file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `reading`.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The config file is not JSON.
    #[error("{path} is not valid JSON: {source}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The config file is JSON but not shaped like Docker's config.
    #[error("{path}: {reason}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong (never contains a secret).
        reason: String,
    },
    /// A helper name that cannot be a program name.
    #[error("invalid credential helper name {helper:?}")]
    InvalidHelperName {
        /// The name as configured.
        helper: String,
    },
    /// `docker-credential-<helper>` is not on `PATH`.
    #[error("credential helper docker-credential-{helper} not found in PATH")]
    HelperNotFound {
        /// The helper's name (without the `docker-credential-` prefix).
        helper: String,
    },
    /// The helper could not be run or talked to.
    #[error(
        "running credential helper docker-credential-{helper} ({action} for {registry}): {source}"
    )]
    HelperIo {
        /// The helper's name.
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The server URL the request was for.
        registry: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The helper exited unsuccessfully.
    #[error("credential helper docker-credential-{helper} failed to {action} credentials for {registry} ({status}): {output}")]
    HelperFailed {
        /// The helper's name.
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The server URL the request was for.
        registry: String,
        /// How it exited.
        status: String,
        /// Its stdout and stderr, trimmed and shortened.
        output: String,
    },
    /// The helper's answer to `get` is not the expected JSON.
    #[error("credential helper docker-credential-{helper} gave an unreadable answer for {registry}: {reason}")]
    HelperResponse {
        /// The helper's name.
        helper: String,
        /// The server URL the request was for.
        registry: String,
        /// Where the JSON went wrong (never contains the answer itself).
        reason: String,
    },
}

type Result<T, E = CredentialError> = std::result::Result<T, E>;

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CredentialError {
    let path = path.to_path_buf();
    move |source| CredentialError::Io {
        action,
        path,
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> CredentialError {
    CredentialError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The key Docker files credentials for `registry_host` under, in `auths`
/// and towards helpers: `https://index.docker.io/v1/` for Docker Hub
/// (`docker.io`, `index.docker.io`, `registry-1.docker.io`), the
/// `host[:port]` otherwise. A URL is accepted too; its scheme and path are
/// dropped.
pub fn registry_key(registry_host: &str) -> String {
    let host = strip_url(registry_host);
    if is_docker_hub(host) {
        DOCKER_HUB_KEY.to_owned()
    } else {
        host.to_owned()
    }
}

/// `https://host:5000/v2/` → `host:5000`.
fn strip_url(s: &str) -> &str {
    let s = s.trim();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| {
            s.get(..scheme.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
                .map(|_| &s[scheme.len()..])
        })
        .unwrap_or(s);
    rest.split_once('/').map_or(rest, |(host, _)| host)
}

fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(host))
}

/// The host a key or host names, lowercased, with Docker Hub's aliases
/// folded together; two names are the same registry when these are equal.
fn canonical_host(s: &str) -> String {
    let host = strip_url(s);
    if is_docker_hub(host) {
        DOCKER_HUB_HOST.to_owned()
    } else {
        host.to_ascii_lowercase()
    }
}

/// Docker's config file, kept whole as JSON.
#[derive(Clone)]
pub struct DockerConfig {
    path: PathBuf,
    root: Map<String, Value>,
    /// Directories to find helpers in, in `PATH` syntax; `None` means the
    /// process's `PATH`.
    helper_search_path: Option<OsString>,
}

impl fmt::Debug for DockerConfig {
    // The JSON holds secrets: show only the path and the top-level keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .field("keys", &self.root.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl DockerConfig {
    /// Where the docker CLI keeps its config: `$DOCKER_CONFIG/config.json`,
    /// else `$HOME/.docker/config.json`; `None` when neither variable is set
    /// (or both are empty).
    pub fn default_path() -> Option<PathBuf> {
        default_path_from(env::var_os("DOCKER_CONFIG"), env::var_os("HOME"))
    }

    /// Loads the config at [`default_path`](Self::default_path).
    pub fn load_default() -> Result<DockerConfig> {
        let path = Self::default_path().ok_or(CredentialError::NoConfigLocation)?;
        Self::load(&path)
    }

    /// Loads the config at `path`. A missing (or empty) file is an empty
    /// config; a file that is not JSON, or whose `auths`, `credHelpers` or
    /// `credsStore` have the wrong type, is an error naming the path.
    /// Individual `auths` entries are checked only when used, so one broken
    /// entry does not stop other registries from working.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        let root = match fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(root)) => root,
                Ok(_) => return Err(invalid(path, "the top level is not a JSON object")),
                Err(source) => {
                    return Err(CredentialError::Parse {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(io_err("reading", path)(e)),
        };
        let config = DockerConfig {
            path: path.to_path_buf(),
            root,
            helper_search_path: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// Finds helpers in `search_path` (in `PATH` syntax) instead of the
    /// process's `PATH`, so tests need not change the environment.
    #[cfg(test)]
    pub(crate) fn with_helper_search_path(mut self, search_path: impl Into<OsString>) -> Self {
        self.helper_search_path = Some(search_path.into());
        self
    }

    fn validate(&self) -> Result<()> {
        match self.root.get("auths") {
            None | Some(Value::Null | Value::Object(_)) => {}
            Some(_) => return Err(invalid(&self.path, "`auths` is not a JSON object")),
        }
        match self.root.get("credHelpers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(helpers)) => {
                if let Some((key, _)) = helpers.iter().find(|(_, v)| !v.is_string()) {
                    return Err(invalid(
                        &self.path,
                        format!("`credHelpers` entry {key:?} is not a string"),
                    ));
                }
            }
            Some(_) => return Err(invalid(&self.path, "`credHelpers` is not a JSON object")),
        }
        match self.root.get("credsStore") {
            None | Some(Value::Null | Value::String(_)) => Ok(()),
            Some(_) => Err(invalid(&self.path, "`credsStore` is not a string")),
        }
    }

    /// The file this config was loaded from and is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential for `registry_host` (`host[:port]`, or a URL): from
    /// its helper if one is configured and has one, else from `auths`.
    /// `Ok(None)` when there is none.
    pub fn credential_for(&self, registry_host: &str) -> Result<Option<Credential>> {
        if let Some(helper) = self.helper_for(registry_host) {
            if let Some(credential) = self.helper_get(&helper, registry_host)? {
                return Ok(Some(credential));
            }
        }
        self.auths_credential(registry_host)
    }

    /// Stores `cred` for `registry_host`: with the host's helper when one is
    /// configured (`credHelpers` or `credsStore`), else as an `auths` entry
    /// with base64 `auth` (and `identitytoken` for identity tokens). Any
    /// other `auths` entries for the same registry (URL-shaped keys, and a
    /// plaintext copy when a helper now holds the credential) are removed.
    /// Then the file is saved.
    pub fn store_credential(&mut self, registry_host: &str, cred: &Credential) -> Result<()> {
        if let Some(helper) = self.helper_for(registry_host) {
            self.helper_store(&helper, registry_host, cred)?;
            self.remove_auths_entries(registry_host)?;
        } else {
            self.remove_auths_entries(registry_host)?;
            let entry = auths_entry(cred);
            self.auths_mut()?
                .insert(registry_key(registry_host), Value::Object(entry));
        }
        self.save()
    }

    /// Removes the credential for `registry_host` from its helper (if one is
    /// configured) and every `auths` entry for that registry, saving the
    /// file if it changed. `true` when something was removed.
    pub fn erase_credential(&mut self, registry_host: &str) -> Result<bool> {
        let mut erased = false;
        if let Some(helper) = self.helper_for(registry_host) {
            erased |= self.helper_erase(&helper, registry_host)?;
        }
        if self.remove_auths_entries(registry_host)? {
            self.save()?;
            erased = true;
        }
        Ok(erased)
    }

    /// Writes the config back atomically: a temporary file with mode 0600
    /// in the same directory (created if missing, mode 0700), fsynced, then
    /// renamed over the config. A symlinked config is replaced at its
    /// target, leaving the link in place.
    pub fn save(&self) -> Result<()> {
        let target = match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                fs::canonicalize(&self.path).map_err(io_err("resolving", &self.path))?
            }
            _ => self.path.clone(),
        };
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_private_dir(&dir)?;

        let mut bytes = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
        self.root
            .serialize(&mut serializer)
            .map_err(|e| io_err("serialising", &target)(io::Error::other(e)))?;
        bytes.push(b'\n');

        let tmp = temp_path(&target, &dir);
        let written = write_synced(&tmp, &bytes)
            .and_then(|()| fs::rename(&tmp, &target).map_err(io_err("replacing", &target)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        // Make the rename itself durable.
        #[cfg(unix)]
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing", &dir))?;
        Ok(())
    }

    // ---- auths ------------------------------------------------------------

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.root.get("auths").and_then(Value::as_object)
    }

    fn auths_mut(&mut self) -> Result<&mut Map<String, Value>> {
        let auths = self.root.entry("auths").or_insert(Value::Null);
        if auths.is_null() {
            *auths = Value::Object(Map::new());
        }
        match auths {
            Value::Object(map) => Ok(map),
            _ => Err(invalid(&self.path, "`auths` is not a JSON object")),
        }
    }

    /// The credential in `auths` for `registry_host`: the entry under its
    /// [`registry_key`] first, then entries whose key names the same host.
    fn auths_credential(&self, registry_host: &str) -> Result<Option<Credential>> {
        let Some(auths) = self.auths() else {
            return Ok(None);
        };
        let key = registry_key(registry_host);
        let host = canonical_host(registry_host);
        let exact = auths.get_key_value(&key);
        let others = auths
            .iter()
            .filter(|(k, _)| **k != key && canonical_host(k) == host);
        for (k, entry) in exact.into_iter().chain(others) {
            if let Some(credential) = decode_entry(&self.path, k, entry)? {
                return Ok(Some(credential));
            }
        }
        Ok(None)
    }

    /// Removes every `auths` entry for `registry_host`'s registry; `true`
    /// when there was one.
    fn remove_auths_entries(&mut self, registry_host: &str) -> Result<bool> {
        if self.auths().is_none() {
            return Ok(false);
        }
        let host = canonical_host(registry_host);
        let auths = self.auths_mut()?;
        let before = auths.len();
        auths.retain(|k, _| canonical_host(k) != host);
        Ok(auths.len() != before)
    }
}

fn default_path_from(docker_config: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    if let Some(dir) = docker_config.filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    home.filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err("creating", dir))
}

/// A fresh name beside `target` for the temporary file.
fn temp_path(target: &Path, dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = target
        .file_name()
        .map_or_else(|| "config.json".into(), |n| n.to_string_lossy());
    dir.join(format!(".{base}.tmp-{}-{n}", crate::process_tag()))
}

/// Creates `path` (which must not exist) with mode 0600 and writes and
/// fsyncs `bytes`.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err("creating", path))?;
    // The umask can only have removed bits; make it exactly 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err("setting permissions of", path))?;
    }
    file.write_all(bytes).map_err(io_err("writing", path))?;
    file.sync_all().map_err(io_err("syncing", path))
}

#[cfg(test)]
mod tests;
