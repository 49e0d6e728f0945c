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

// Re-exported from lib.rs by the lead; until then nothing outside the tests
// uses it.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

    // ---- helpers ----------------------------------------------------------

    /// The helper to use for `registry_host`: its `credHelpers` entry (an
    /// empty name there means none), else `credsStore`.
    fn helper_for(&self, registry_host: &str) -> Option<String> {
        let key = registry_key(registry_host);
        let host = canonical_host(registry_host);
        if let Some(Value::Object(helpers)) = self.root.get("credHelpers") {
            let entry = helpers.get(&key).or_else(|| {
                helpers
                    .iter()
                    .find(|(k, _)| canonical_host(k) == host)
                    .map(|(_, v)| v)
            });
            if let Some(entry) = entry {
                return entry.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
            }
        }
        self.root
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    fn helper_get(&self, helper: &str, registry_host: &str) -> Result<Option<Credential>> {
        let server_url = registry_key(registry_host);
        let output = self.run_helper(helper, "get", &server_url, server_url.as_bytes())?;
        if !output.status.success() {
            if is_not_found(&output) {
                return Ok(None);
            }
            return Err(helper_failed(helper, "get", &server_url, &output));
        }
        let answer: HelperCredential = serde_json::from_slice(&output.stdout).map_err(|e| {
            CredentialError::HelperResponse {
                helper: helper.to_owned(),
                registry: server_url.clone(),
                // Not `e` itself: serde's messages can quote the value.
                reason: format!(
                    "{:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            }
        })?;
        if answer.username.is_empty() && answer.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if answer.username == TOKEN_USERNAME {
            Credential {
                username: String::new(),
                secret: Secret::IdentityToken(answer.secret),
            }
        } else {
            Credential {
                username: answer.username,
                secret: Secret::Password(answer.secret),
            }
        }))
    }

    fn helper_store(&self, helper: &str, registry_host: &str, cred: &Credential) -> Result<()> {
        let server_url = registry_key(registry_host);
        let request = HelperCredential {
            server_url: server_url.clone(),
            username: match &cred.secret {
                Secret::IdentityToken(_) => TOKEN_USERNAME.to_owned(),
                Secret::Password(_) => cred.username.clone(),
            },
            secret: cred.secret.expose().to_owned(),
        };
        let input = serde_json::to_vec(&request).map_err(|e| CredentialError::HelperIo {
            helper: helper.to_owned(),
            action: "store",
            registry: server_url.clone(),
            source: io::Error::other(e),
        })?;
        let output = self.run_helper(helper, "store", &server_url, &input)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(helper_failed(helper, "store", &server_url, &output))
        }
    }

    fn helper_erase(&self, helper: &str, registry_host: &str) -> Result<bool> {
        let server_url = registry_key(registry_host);
        let output = self.run_helper(helper, "erase", &server_url, server_url.as_bytes())?;
        if output.status.success() {
            Ok(true)
        } else if is_not_found(&output) {
            Ok(false)
        } else {
            Err(helper_failed(helper, "erase", &server_url, &output))
        }
    }

    /// Runs `docker-credential-<helper> <action>` with `input` on stdin.
    fn run_helper(
        &self,
        helper: &str,
        action: &'static str,
        server_url: &str,
        input: &[u8],
    ) -> Result<Output> {
        if helper.is_empty() || helper.contains(['/', '\\', '\0']) {
            return Err(CredentialError::InvalidHelperName {
                helper: helper.to_owned(),
            });
        }
        let env_path;
        let search_path = match &self.helper_search_path {
            Some(p) => Some(p.as_os_str()),
            None => {
                env_path = env::var_os("PATH");
                env_path.as_deref()
            }
        };
        let program =
            find_helper(helper, search_path).ok_or_else(|| CredentialError::HelperNotFound {
                helper: helper.to_owned(),
            })?;
        let io_error = |source| CredentialError::HelperIo {
            helper: helper.to_owned(),
            action,
            registry: server_url.to_owned(),
            source,
        };
        let mut child = spawn_retrying(
            Command::new(&program)
                .arg(action)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .map_err(io_error)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper may exit without reading its input; its exit status
            // then tells what happened.
            match stdin.write_all(input) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(io_error(e));
                }
                _ => {}
            }
        }
        child.wait_with_output().map_err(io_error)
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

/// The `auths` entry Docker writes for `cred`.
fn auths_entry(cred: &Credential) -> Map<String, Value> {
    let mut entry = Map::new();
    match &cred.secret {
        Secret::Password(password) => {
            let auth = BASE64.encode(format!("{}:{password}", cred.username));
            entry.insert("auth".to_owned(), Value::String(auth));
        }
        Secret::IdentityToken(token) => {
            if !cred.username.is_empty() {
                let auth = BASE64.encode(format!("{}:", cred.username));
                entry.insert("auth".to_owned(), Value::String(auth));
            }
            entry.insert("identitytoken".to_owned(), Value::String(token.clone()));
        }
    }
    entry
}

/// Reads one `auths` entry. `auth` (base64 `user:password`) wins over
/// `username`/`password`; an `identitytoken` wins over the password. An
/// entry with none of them (Docker writes `{}` when a helper holds the
/// credential) is `None`.
fn decode_entry(path: &Path, key: &str, entry: &Value) -> Result<Option<Credential>> {
    let Value::Object(fields) = entry else {
        return Err(invalid(
            path,
            format!("`auths` entry {key:?} is not an object"),
        ));
    };
    let field = |name: &str| -> Result<&str> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(""),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(invalid(
                path,
                format!("`{name}` of `auths` entry {key:?} is not a string"),
            )),
        }
    };
    let auth = field("auth")?.trim();
    let token = field("identitytoken")?;
    let (username, password) = if auth.is_empty() {
        (field("username")?.to_owned(), field("password")?.to_owned())
    } else {
        let decoded = BASE64
            .decode(auth)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                invalid(
                    path,
                    format!("`auth` of `auths` entry {key:?} is not base64-encoded UTF-8"),
                )
            })?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            invalid(
                path,
                format!("`auth` of `auths` entry {key:?} is not of the form user:password"),
            )
        })?;
        (user.to_owned(), password.trim_end_matches('\0').to_owned())
    };
    if !token.is_empty() {
        return Ok(Some(Credential {
            username,
            secret: Secret::IdentityToken(token.to_owned()),
        }));
    }
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username,
        secret: Secret::Password(password),
    }))
}

/// The JSON helpers read on `store` and print on `get`.
#[derive(Serialize, Deserialize)]
struct HelperCredential {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Finds `docker-credential-<name>` in `search_path` (`PATH` syntax), the
/// first executable file in directory order. Empty entries (the current
/// directory in POSIX shells) are ignored.
fn find_helper(name: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    let program = format!("{HELPER_PREFIX}{name}");
    env::split_paths(search_path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(&program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Spawns `command`, retrying briefly on `ETXTBSY`: a helper that was just
/// written can still be open for writing in a child forked concurrently by
/// another thread.
fn spawn_retrying(command: &mut Command) -> io::Result<std::process::Child> {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn combined_output(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = match (stdout.trim(), stderr.trim()) {
        ("", "") => "no output".to_owned(),
        (out, "") => out.to_owned(),
        ("", err) => err.to_owned(),
        (out, err) => format!("{out}; stderr: {err}"),
    };
    match text.char_indices().nth(MAX_OUTPUT_IN_ERROR) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn is_not_found(output: &Output) -> bool {
    combined_output(output)
        .to_ascii_lowercase()
        .contains(NOT_FOUND_MESSAGE)
}

fn helper_failed(
    helper: &str,
    action: &'static str,
    registry: &str,
    output: &Output,
) -> CredentialError {
    CredentialError::HelperFailed {
        helper: helper.to_owned(),
        action,
        registry: registry.to_owned(),
        status: output.status.to_string(),
        output: combined_output(output),
    }
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
    dir.join(format!(".{base}.tmp-{}-{n}", std::process::id()))
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
mod tests {
    use super::*;
    use serde_json::json;
    use tempfile::TempDir;

    fn password(user: &str, pass: &str) -> Credential {
        Credential {
            username: user.to_owned(),
            secret: Secret::Password(pass.to_owned()),
        }
    }

    fn b64(s: &str) -> String {
        BASE64.encode(s)
    }

    /// A tempdir with `config.json` holding `json`.
    fn config_with(json: &Value) -> (TempDir, DockerConfig) {
        let dir = TempDir::new().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, serde_json::to_vec_pretty(json).expect("json")).expect("write");
        let config = DockerConfig::load(&path).expect("load");
        (dir, config)
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
    }

    /// Writes an executable `docker-credential-<name>` with `body` into
    /// `dir/bin` and returns that directory.
    fn write_helper(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).expect("mkdir");
        let path = bin.join(format!("{HELPER_PREFIX}{name}"));
        fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write helper");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        bin
    }

    /// A helper that records its input beside itself (`get-input`,
    /// `store-input`, `erase-input`) and answers `get` with `answer.json`
    /// if that exists, else with "not found".
    const RECORDING_HELPER: &str = r#"dir=$(dirname "$0")
input=$(cat)
case "$1" in
  get)
    printf '%s' "$input" > "$dir/get-input"
    if [ -f "$dir/answer.json" ]; then cat "$dir/answer.json"
    else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) printf '%s' "$input" > "$dir/store-input" ;;
  erase) printf '%s' "$input" > "$dir/erase-input" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
"#;

    #[test]
    fn registry_keys() {
        for hub in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "Docker.IO",
            "https://index.docker.io/v1/",
            "https://registry-1.docker.io/v2/",
        ] {
            assert_eq!(registry_key(hub), DOCKER_HUB_KEY, "{hub}");
        }
        assert_eq!(registry_key("ghcr.io"), "ghcr.io");
        assert_eq!(registry_key("localhost:5000"), "localhost:5000");
        assert_eq!(registry_key("https://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(registry_key("HTTP://reg.example"), "reg.example");
        assert_eq!(registry_key("reg.example/"), "reg.example");
    }

    #[test]
    fn default_path_prefers_docker_config() {
        assert_eq!(
            default_path_from(Some("/cfg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/cfg/config.json"))
        );
        assert_eq!(
            default_path_from(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(
            default_path_from(None, Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(default_path_from(None, None), None);
        assert_eq!(default_path_from(None, Some("".into())), None);
        // The public wrappers read the real environment (never changed here).
        assert_eq!(
            DockerConfig::default_path(),
            default_path_from(env::var_os("DOCKER_CONFIG"), env::var_os("HOME"))
        );
        let _: fn() -> Result<DockerConfig> = DockerConfig::load_default;
    }

    #[test]
    fn base64_auth() {
        let (_dir, config) = config_with(&json!({
            "auths": { "reg.example": { "auth": b64("alice:pa:ss") } }
        }));
        assert_eq!(
            config.credential_for("reg.example").expect("lookup"),
            Some(password("alice", "pa:ss"))
        );
        assert_eq!(
            config.credential_for("other.example").expect("lookup"),
            None
        );
    }

    #[test]
    fn auth_without_padding_and_with_username_fields() {
        let (_dir, config) = config_with(&json!({
            "auths": {
                // "a:b" encodes to "YTpi" (no padding); "ab:c" needs it.
                "one.example": { "auth": b64("ab:c").trim_end_matches('=') },
                "two.example": { "username": "bob", "password": "pw" },
                "three.example": { "auth": "", "username": "carol", "password": "x" },
            }
        }));
        assert_eq!(
            config.credential_for("one.example").expect("lookup"),
            Some(password("ab", "c"))
        );
        assert_eq!(
            config.credential_for("two.example").expect("lookup"),
            Some(password("bob", "pw"))
        );
        assert_eq!(
            config.credential_for("three.example").expect("lookup"),
            Some(password("carol", "x"))
        );
    }

    #[test]
    fn identity_token() {
        let (_dir, config) = config_with(&json!({
            "auths": {
                "reg.example": { "auth": b64("bob:"), "identitytoken": "refresh-tok" },
                "bare.example": { "identitytoken": "t2" },
            }
        }));
        assert_eq!(
            config.credential_for("reg.example").expect("lookup"),
            Some(Credential {
                username: "bob".into(),
                secret: Secret::IdentityToken("refresh-tok".into()),
            })
        );
        assert_eq!(
            config.credential_for("bare.example").expect("lookup"),
            Some(Credential {
                username: String::new(),
                secret: Secret::IdentityToken("t2".into()),
            })
        );
    }

    #[test]
    fn url_shaped_keys() {
        let (_dir, config) = config_with(&json!({
            "auths": {
                "https://reg.example": { "auth": b64("a:1") },
                "http://localhost:5000/v2/": { "auth": b64("b:2") },
                "HTTPS://Upper.Example/": { "auth": b64("c:3") },
            }
        }));
        assert_eq!(
            config.credential_for("reg.example").expect("lookup"),
            Some(password("a", "1"))
        );
        assert_eq!(
            config.credential_for("localhost:5000").expect("lookup"),
            Some(password("b", "2"))
        );
        assert_eq!(
            config.credential_for("upper.example").expect("lookup"),
            Some(password("c", "3"))
        );
        // Different port, different registry.
        assert_eq!(
            config.credential_for("localhost:5001").expect("lookup"),
            None
        );
        assert_eq!(config.credential_for("localhost").expect("lookup"), None);
    }

    #[test]
    fn exact_key_wins_over_url_key() {
        let (_dir, config) = config_with(&json!({
            "auths": {
                "https://reg.example/v2/": { "auth": b64("old:1") },
                "reg.example": { "auth": b64("new:2") },
            }
        }));
        assert_eq!(
            config.credential_for("reg.example").expect("lookup"),
            Some(password("new", "2"))
        );
    }

    #[test]
    fn docker_hub_aliases() {
        let (_dir, config) = config_with(&json!({
            "auths": { "https://index.docker.io/v1/": { "auth": b64("hubuser:hubpw") } }
        }));
        for host in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                config.credential_for(host).expect("lookup"),
                Some(password("hubuser", "hubpw")),
                "{host}"
            );
        }
        let (_dir, config) = config_with(&json!({
            "auths": { "docker.io": { "auth": b64("u:p") } }
        }));
        assert_eq!(
            config
                .credential_for("registry-1.docker.io")
                .expect("lookup"),
            Some(password("u", "p"))
        );
    }

    #[test]
    fn empty_entries_are_no_credential() {
        // What Docker writes when a helper holds the credential.
        let (_dir, config) = config_with(&json!({
            "auths": { "reg.example": {}, "https://index.docker.io/v1/": { "auth": "" } }
        }));
        assert_eq!(config.credential_for("reg.example").expect("lookup"), None);
        assert_eq!(config.credential_for("docker.io").expect("lookup"), None);
    }

    #[test]
    fn missing_and_empty_files_are_empty_configs() {
        let dir = TempDir::new().expect("tempdir");
        let path = dir.path().join("nowhere").join("config.json");
        let config = DockerConfig::load(&path).expect("missing file");
        assert_eq!(config.path(), path);
        assert_eq!(config.credential_for("docker.io").expect("lookup"), None);

        let empty = dir.path().join("empty.json");
        fs::write(&empty, " \n").expect("write");
        let config = DockerConfig::load(&empty).expect("empty file");
        assert_eq!(config.credential_for("reg.example").expect("lookup"), None);
    }

    #[test]
    fn malformed_files_name_the_path() {
        let dir = TempDir::new().expect("tempdir");
        let path = dir.path().join("config.json");
        for (content, want) in [
            ("{\"auths\": {", "not valid JSON"),
            ("[1, 2]", "not a JSON object"),
            ("{\"auths\": []}", "`auths`"),
            ("{\"credHelpers\": {\"x\": 1}}", "`credHelpers`"),
            ("{\"credsStore\": true}", "`credsStore`"),
        ] {
            fs::write(&path, content).expect("write");
            let err = DockerConfig::load(&path).expect_err(content).to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn bad_auth_entry_is_an_error_without_the_secret() {
        let (dir, config) = config_with(&json!({
            "auths": {
                "bad.example": { "auth": "%%not-base64-s3cret%%" },
                "nocolon.example": { "auth": b64("justuser-s3cret") },
                "good.example": { "auth": b64("u:p") },
            }
        }));
        for host in ["bad.example", "nocolon.example"] {
            let err = config.credential_for(host).expect_err(host).to_string();
            assert!(err.contains(host), "{err}");
            assert!(err.contains(&dir.path().display().to_string()), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        // Other registries still work.
        assert_eq!(
            config.credential_for("good.example").expect("lookup"),
            Some(password("u", "p"))
        );
    }

    #[test]
    fn store_and_load_round_trip_preserving_unknown_keys() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, mut config) = config_with(&json!({
            "auths": {
                "keep.example": { "auth": b64("k:k") },
                "https://reg.example/v2/": { "auth": b64("stale:stale") },
            },
            "proxies": { "default": { "httpProxy": "http://proxy:3128" } },
            "currentContext": "colima",
            "psFormat": "table {{.ID}}",
        }));
        config
            .store_credential("reg.example", &password("alice", "pw"))
            .expect("store");
        config
            .store_credential(
                "docker.io",
                &Credential {
                    username: "hub".into(),
                    secret: Secret::IdentityToken("idtok".into()),
                },
            )
            .expect("store hub");

        let path = config.path().to_path_buf();
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let json = read_json(&path);
        assert_eq!(json["currentContext"], "colima");
        assert_eq!(json["psFormat"], "table {{.ID}}");
        assert_eq!(json["proxies"]["default"]["httpProxy"], "http://proxy:3128");
        assert_eq!(
            json["auths"]["reg.example"],
            json!({ "auth": b64("alice:pw") })
        );
        assert_eq!(
            json["auths"][DOCKER_HUB_KEY],
            json!({ "auth": b64("hub:"), "identitytoken": "idtok" })
        );
        // The stale URL-shaped entry for the same registry is gone.
        assert!(json["auths"].get("https://reg.example/v2/").is_none());

        let reloaded = DockerConfig::load(&path).expect("reload");
        assert_eq!(
            reloaded.credential_for("reg.example").expect("lookup"),
            Some(password("alice", "pw"))
        );
        assert_eq!(
            reloaded.credential_for("keep.example").expect("lookup"),
            Some(password("k", "k"))
        );
        assert_eq!(
            reloaded
                .credential_for("registry-1.docker.io")
                .expect("lookup"),
            Some(Credential {
                username: "hub".into(),
                secret: Secret::IdentityToken("idtok".into()),
            })
        );
        // No temporary files left behind.
        let leftovers: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("readdir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn store_creates_missing_directory_and_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new().expect("tempdir");
        let path = dir.path().join("docker").join("config.json");
        let mut config = DockerConfig::load(&path).expect("missing is empty");
        config
            .store_credential("localhost:5000", &password("u", "p"))
            .expect("store");
        assert_eq!(
            fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            DockerConfig::load(&path)
                .expect("reload")
                .credential_for("localhost:5000")
                .expect("lookup"),
            Some(password("u", "p"))
        );
    }

    #[test]
    fn save_through_a_symlink_keeps_the_link() {
        let dir = TempDir::new().expect("tempdir");
        let real = dir.path().join("real.json");
        fs::write(&real, "{}").expect("write");
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let mut config = DockerConfig::load(&link).expect("load");
        config
            .store_credential("reg.example", &password("u", "p"))
            .expect("store");
        assert!(fs::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink());
        assert_eq!(read_json(&real)["auths"]["reg.example"]["auth"], b64("u:p"));
    }

    #[test]
    fn erase() {
        let (_dir, mut config) = config_with(&json!({
            "auths": {
                "reg.example": { "auth": b64("a:1") },
                "https://reg.example": { "auth": b64("b:2") },
                "other.example": { "auth": b64("c:3") },
            },
            "currentContext": "default",
        }));
        assert!(config.erase_credential("reg.example").expect("erase"));
        assert!(!config.erase_credential("reg.example").expect("erase again"));
        assert!(!config
            .erase_credential("never.example")
            .expect("erase none"));

        let reloaded = DockerConfig::load(config.path()).expect("reload");
        assert_eq!(
            reloaded.credential_for("reg.example").expect("lookup"),
            None
        );
        assert_eq!(
            reloaded.credential_for("other.example").expect("lookup"),
            Some(password("c", "3"))
        );
        assert_eq!(read_json(config.path())["currentContext"], "default");
    }

    #[test]
    fn erase_docker_hub_by_alias() {
        let (_dir, mut config) = config_with(&json!({
            "auths": { DOCKER_HUB_KEY: { "auth": b64("u:p") } }
        }));
        assert!(config.erase_credential("docker.io").expect("erase"));
        assert_eq!(
            config.credential_for("index.docker.io").expect("lookup"),
            None
        );
    }

    #[test]
    fn helper_get_password_and_token() {
        let dir = TempDir::new().expect("tempdir");
        let bin = write_helper(dir.path(), "fake", RECORDING_HELPER);
        let (_cfg_dir, config) = config_with(&json!({
            "credHelpers": { "reg.example": "fake" },
            "auths": { "reg.example": { "auth": b64("file:file") } },
        }));
        let config = config.with_helper_search_path(&bin);

        fs::write(
            bin.join("answer.json"),
            r#"{"ServerURL":"reg.example","Username":"alice","Secret":"s3cret"}"#,
        )
        .expect("answer");
        assert_eq!(
            config.credential_for("reg.example").expect("lookup"),
            Some(password("alice", "s3cret"))
        );
        assert_eq!(
            fs::read_to_string(bin.join("get-input")).expect("input"),
            "reg.example"
        );

        fs::write(
            bin.join("answer.json"),
            r#"{"ServerURL":"reg.example","Username":"<token>","Secret":"refresh"}"#,
        )
        .expect("answer");
        assert_eq!(
            config.credential_for("reg.example").expect("lookup"),
            Some(Credential {
                username: String::new(),
                secret: Secret::IdentityToken("refresh".into()),
            })
        );
    }

    #[test]
    fn helper_not_found_falls_back_to_auths() {
        let dir = TempDir::new().expect("tempdir");
        let bin = write_helper(
            dir.path(),
            "fake",
            "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n",
        );
        let (_cfg_dir, config) = config_with(&json!({
            "credsStore": "fake",
            "auths": { "reg.example": { "auth": b64("file:pw") } },
        }));
        let config = config.with_helper_search_path(&bin);
        assert_eq!(
            config.credential_for("reg.example").expect("lookup"),
            Some(password("file", "pw"))
        );
        assert_eq!(config.credential_for("none.example").expect("lookup"), None);
    }

    #[test]
    fn creds_store_gets_docker_hub_key() {
        let dir = TempDir::new().expect("tempdir");
        let bin = write_helper(dir.path(), "desk", RECORDING_HELPER);
        fs::write(
            bin.join("answer.json"),
            r#"{"ServerURL":"https://index.docker.io/v1/","Username":"hub","Secret":"pw"}"#,
        )
        .expect("answer");
        let (_cfg_dir, config) = config_with(&json!({ "credsStore": "desk" }));
        let config = config.with_helper_search_path(&bin);
        assert_eq!(
            config
                .credential_for("registry-1.docker.io")
                .expect("lookup"),
            Some(password("hub", "pw"))
        );
        assert_eq!(
            fs::read_to_string(bin.join("get-input")).expect("input"),
            DOCKER_HUB_KEY
        );
    }

    #[test]
    fn cred_helpers_entry_overrides_creds_store() {
        let dir = TempDir::new().expect("tempdir");
        write_helper(dir.path(), "store", RECORDING_HELPER);
        let bin = write_helper(
            dir.path(),
            "special",
            "cat >/dev/null\necho '{\"Username\":\"special\",\"Secret\":\"x\"}'\n",
        );
        fs::write(
            bin.join("answer.json"),
            r#"{"Username":"store","Secret":"y"}"#,
        )
        .expect("answer");
        let (_cfg_dir, config) = config_with(&json!({
            "credsStore": "store",
            // URL-shaped credHelpers keys match too; "" means no helper.
            "credHelpers": { "https://special.example": "special", "plain.example": "" },
            "auths": { "plain.example": { "auth": b64("plain:z") } },
        }));
        let config = config.with_helper_search_path(&bin);
        assert_eq!(
            config.credential_for("special.example").expect("lookup"),
            Some(password("special", "x"))
        );
        assert_eq!(
            config.credential_for("other.example").expect("lookup"),
            Some(password("store", "y"))
        );
        assert_eq!(
            config.credential_for("plain.example").expect("lookup"),
            Some(password("plain", "z"))
        );
        // "plain.example" never reached the credsStore helper.
        assert_eq!(
            fs::read_to_string(bin.join("get-input")).expect("input"),
            "other.example"
        );
    }

    #[test]
    fn helper_failure_names_helper_and_output() {
        let dir = TempDir::new().expect("tempdir");
        let bin = write_helper(
            dir.path(),
            "broken",
            "cat >/dev/null\necho 'keychain is locked' >&2\nexit 3\n",
        );
        let (_cfg_dir, config) = config_with(&json!({ "credsStore": "broken" }));
        let config = config.with_helper_search_path(&bin);
        let err = config.credential_for("reg.example").expect_err("fails");
        assert!(
            matches!(err, CredentialError::HelperFailed { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("docker-credential-broken"), "{msg}");
        assert!(msg.contains("keychain is locked"), "{msg}");
        assert!(msg.contains("reg.example"), "{msg}");
    }

    #[test]
    fn helper_garbage_answer_is_an_error_without_the_answer() {
        let dir = TempDir::new().expect("tempdir");
        let bin = write_helper(
            dir.path(),
            "junk",
            "cat >/dev/null\necho '{\"Username\": \"u\", \"Secret\": 12345}'\n",
        );
        let (_cfg_dir, config) = config_with(&json!({ "credsStore": "junk" }));
        let config = config.with_helper_search_path(&bin);
        let err = config.credential_for("reg.example").expect_err("fails");
        let msg = err.to_string();
        assert!(
            matches!(err, CredentialError::HelperResponse { .. }),
            "{msg}"
        );
        assert!(msg.contains("docker-credential-junk"), "{msg}");
        assert!(!msg.contains("12345"), "{msg}");
    }

    #[test]
    fn missing_and_invalid_helpers() {
        let dir = TempDir::new().expect("tempdir");
        let (_cfg_dir, config) = config_with(&json!({
            "credsStore": "absent",
            "credHelpers": { "evil.example": "../../bin/sh" },
        }));
        let config = config.with_helper_search_path(dir.path());
        let err = config.credential_for("reg.example").expect_err("no helper");
        assert!(
            matches!(&err, CredentialError::HelperNotFound { helper } if helper == "absent"),
            "{err:?}"
        );
        assert!(err.to_string().contains("docker-credential-absent"));
        let err = config.credential_for("evil.example").expect_err("bad name");
        assert!(
            matches!(err, CredentialError::InvalidHelperName { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn find_helper_needs_an_executable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new().expect("tempdir");
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        fs::create_dir_all(&first).expect("mkdir");
        fs::create_dir_all(first.join("docker-credential-x")).expect("a directory");
        fs::create_dir_all(&second).expect("mkdir");
        let plain = second.join("docker-credential-y");
        fs::write(&plain, "").expect("write");
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).expect("chmod");
        let bin = write_helper(dir.path(), "x", "exit 0\n");

        let search = env::join_paths([&first, &second, &bin]).expect("join");
        assert_eq!(
            find_helper("x", Some(&search)),
            Some(bin.join("docker-credential-x"))
        );
        assert_eq!(find_helper("y", Some(&search)), None);
        assert_eq!(find_helper("x", None), None);
    }

    #[test]
    fn store_and_erase_through_helper() {
        let dir = TempDir::new().expect("tempdir");
        let bin = write_helper(dir.path(), "fake", RECORDING_HELPER);
        let (_cfg_dir, config) = config_with(&json!({
            "credHelpers": { "reg.example": "fake" },
            "auths": {
                "reg.example": { "auth": b64("plaintext:old") },
                "other.example": { "auth": b64("o:o") },
            },
            "currentContext": "ctx",
        }));
        let mut config = config.with_helper_search_path(&bin);

        config
            .store_credential("reg.example", &password("alice", "new"))
            .expect("store");
        let sent = read_json(&bin.join("store-input"));
        assert_eq!(
            sent,
            json!({ "ServerURL": "reg.example", "Username": "alice", "Secret": "new" })
        );
        // The plaintext copy is gone from the file; the rest is kept.
        let json = read_json(config.path());
        assert!(json["auths"].get("reg.example").is_none());
        assert_eq!(json["auths"]["other.example"]["auth"], b64("o:o"));
        assert_eq!(json["currentContext"], "ctx");

        config
            .store_credential(
                "reg.example",
                &Credential {
                    username: "ignored".into(),
                    secret: Secret::IdentityToken("tok".into()),
                },
            )
            .expect("store token");
        assert_eq!(
            read_json(&bin.join("store-input")),
            json!({ "ServerURL": "reg.example", "Username": "<token>", "Secret": "tok" })
        );

        assert!(config.erase_credential("reg.example").expect("erase"));
        assert_eq!(
            fs::read_to_string(bin.join("erase-input")).expect("input"),
            "reg.example"
        );
    }

    #[test]
    fn erase_through_helper_that_has_nothing() {
        let dir = TempDir::new().expect("tempdir");
        let bin = write_helper(
            dir.path(),
            "empty",
            "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n",
        );
        let (_cfg_dir, config) = config_with(&json!({ "credsStore": "empty" }));
        let mut config = config.with_helper_search_path(&bin);
        assert!(!config.erase_credential("reg.example").expect("erase"));
    }

    #[test]
    fn debug_output_is_redacted() {
        let cred = password("alice", "hunter2-s3cret");
        let shown = format!("{cred:?} {cred:#?}");
        assert!(!shown.contains("hunter2-s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");

        let token = Secret::IdentityToken("tok-s3cret".into());
        let shown = format!("{token:?}");
        assert_eq!(shown, "IdentityToken(<redacted>)");
        assert_eq!(token.expose(), "tok-s3cret");

        let (_dir, config) = config_with(&json!({
            "auths": { "reg.example": { "auth": b64("u:hunter2-s3cret") } }
        }));
        let shown = format!("{config:?}");
        assert!(!shown.contains(&b64("u:hunter2-s3cret")), "{shown}");
        assert!(shown.contains("auths"), "{shown}");
    }
}
