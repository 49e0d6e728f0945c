//! The docker-credential-helpers protocol: which helper serves a host,
//! and running it (`get`, `store`, `erase`).

use super::*;
use serde::Deserialize;
use std::process::{Command, Output, Stdio};

impl DockerConfig {
    /// The helper to use for `registry_host`: its `credHelpers` entry (an
    /// empty name there means none), else `credsStore`.
    pub(super) fn helper_for(&self, registry_host: &str) -> Option<String> {
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

    pub(super) fn helper_get(
        &self,
        helper: &str,
        registry_host: &str,
    ) -> Result<Option<Credential>> {
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

    pub(super) fn helper_store(
        &self,
        helper: &str,
        registry_host: &str,
        cred: &Credential,
    ) -> Result<()> {
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

    pub(super) fn helper_erase(&self, helper: &str, registry_host: &str) -> Result<bool> {
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
    pub(super) fn run_helper(
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
}

/// The JSON helpers read on `store` and print on `get`.
#[derive(Serialize, Deserialize)]
pub(super) struct HelperCredential {
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
pub(super) fn find_helper(name: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    let program = format!("{HELPER_PREFIX}{name}");
    env::split_paths(search_path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(&program))
        .find(|candidate| is_executable(candidate))
}

pub(super) fn is_executable(path: &Path) -> bool {
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
pub(super) fn spawn_retrying(command: &mut Command) -> io::Result<std::process::Child> {
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

pub(super) fn combined_output(output: &Output) -> String {
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

pub(super) fn is_not_found(output: &Output) -> bool {
    combined_output(output)
        .to_ascii_lowercase()
        .contains(NOT_FOUND_MESSAGE)
}

pub(super) fn helper_failed(
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
