//! Reading `kiln build`'s flags that need more than clap: platforms,
//! secrets, SSH agents and the runtime.

use anyhow::{bail, Context, Result};
use kiln_oci::Platform;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What `kiln build` is asked to do (buildx's `--call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// Build.
    Build,
    /// Run the build checks only; `json` for BuildKit's lint JSON.
    Check {
        /// `format=json`.
        json: bool,
    },
}

/// `--call build|check[,format=json|text]`; `--check` is `--call check`.
pub(super) fn parse_call(value: Option<&str>, check: bool) -> Result<Call> {
    let Some(value) = value else {
        return Ok(if check {
            Call::Check { json: false }
        } else {
            Call::Build
        });
    };
    let mut parts = value.split(',');
    let method = parts.next().unwrap_or_default().trim();
    let mut json = false;
    for option in parts {
        match option.trim().split_once('=') {
            Some(("format", "json")) => json = true,
            Some(("format", "text")) => json = false,
            _ => bail!("--call {value:?}: unknown option {option:?} (format=json or format=text)"),
        }
    }
    match method {
        "build" if !json && !check => Ok(Call::Build),
        "check" => Ok(Call::Check { json }),
        "build" => bail!("--call {value:?}: --check and format= go with --call check"),
        "outline" | "targets" => bail!("--call {method}: not supported (build or check)"),
        other => bail!("--call {other:?}: unknown method (build or check)"),
    }
}

/// `--platform a,b`: the platforms in order, each once (default: this
/// machine's).
pub(super) fn parse_platforms(value: Option<&str>) -> Result<Vec<Platform>> {
    let Some(value) = value else {
        return Ok(vec![Platform::host()]);
    };
    let mut out: Vec<Platform> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p: Platform = part
            .parse()
            .with_context(|| format!("--platform {part:?}"))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        bail!("--platform {value:?}: no platform given");
    }
    Ok(out)
}

/// The runtime `--runtime` (or `KILN_RUNTIME`) names, else the config
/// file's `runtime`, else builtin.
pub(super) fn run_runtime(
    flag: Option<&str>,
    config: &crate::config::Config,
) -> Result<Arc<dyn kiln_executor::Runtime>> {
    let (name, origin) = match (flag, &config.checked.runtime) {
        (Some(f), _) => (f, "--runtime".to_string()),
        (None, Some(c)) => (c.as_str(), format!("{} =", config.origin("runtime"))),
        (None, None) => ("builtin", String::new()),
    };
    Ok(match name {
        "builtin" | "" => Arc::new(kiln_executor::BuiltinRuntime),
        other => Arc::new(
            kiln_executor::OciRuntime::new(other).with_context(|| format!("{origin} {other}"))?,
        ),
    })
}

/// Reads `--ssh default|ID[=SOCKET]` (buildx syntax); without a socket,
/// `$SSH_AUTH_SOCK`. Key files are not supported: use an agent.
pub(super) fn parse_ssh(values: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for value in values {
        let (id, path) = match value.split_once('=') {
            Some((id, path)) => (id.to_string(), PathBuf::from(path)),
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    anyhow::anyhow!(
                        "--ssh {value}: SSH_AUTH_SOCK is not set (give --ssh {value}=SOCKET)"
                    )
                })?;
                (value.clone(), PathBuf::from(sock))
            }
        };
        if id.is_empty() {
            bail!("--ssh {value:?}: the id is empty");
        }
        if path.as_os_str().to_string_lossy().contains(',') {
            bail!("--ssh {value:?}: only one agent socket per id is supported");
        }
        use std::os::unix::fs::FileTypeExt;
        let md = std::fs::metadata(&path)
            .with_context(|| format!("--ssh {value}: {}", path.display()))?;
        if !md.file_type().is_socket() {
            bail!(
                "--ssh {value}: {} is not a socket (kiln forwards SSH agents, not key files; run ssh-agent and ssh-add)",
                path.display()
            );
        }
        out.insert(id, path);
    }
    Ok(out)
}

/// Reads `--secret id=ID[,src=FILE|,env=VAR]` (buildx syntax; `source=`
/// and `type=file|env` accepted; with neither, the variable named ID).
pub(super) fn parse_secrets(
    values: &[String],
) -> Result<BTreeMap<String, kiln_solver::SecretSource>> {
    let mut out = BTreeMap::new();
    for value in values {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        let mut kind = None;
        for field in value.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--secret {value:?}: {field:?} is not key=value"))?;
            match k {
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                "type" => kind = Some(v.to_string()),
                other => bail!("--secret {value:?}: unknown key {other:?}"),
            }
        }
        let id = id.ok_or_else(|| anyhow::anyhow!("--secret {value:?}: id= is required"))?;
        let source = match (kind.as_deref(), src, env) {
            (Some("env"), Some(v), None) | (_, None, Some(v)) => kiln_solver::SecretSource::Env(v),
            (_, Some(path), None) => kiln_solver::SecretSource::File(PathBuf::from(path)),
            (_, None, None) => kiln_solver::SecretSource::Env(id.clone()),
            (_, Some(_), Some(_)) => bail!("--secret {value:?}: give src= or env=, not both"),
        };
        out.insert(id, source);
    }
    Ok(out)
}

/// Drops a leading `N: ` or `line N: ` the error text already carries.
pub(super) fn strip_line(text: &str, line: usize) -> String {
    let text = text.strip_prefix(&format!("line {line}: ")).unwrap_or(text);
    text.strip_prefix(&format!("{line}: "))
        .unwrap_or(text)
        .to_string()
}
