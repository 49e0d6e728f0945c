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
    /// Print the target's build arguments, secrets and SSH agents.
    Outline {
        /// `format=json`.
        json: bool,
    },
    /// Print the stages that can be built.
    Targets {
        /// `format=json`.
        json: bool,
    },
}

/// `--call build|check|outline|targets[,format=json|text]`; `--check` is
/// `--call check`.
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
        "build" => {
            bail!("--call {value:?}: --check and format= go with --call check, outline or targets")
        }
        "outline" | "targets" if check => {
            bail!("--call {method}: --check is --call check; give one of them")
        }
        "outline" => Ok(Call::Outline { json }),
        "targets" => Ok(Call::Targets { json }),
        other => bail!("--call {other:?}: unknown method (build, check, outline or targets)"),
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
    // An empty KILN_RUNTIME is unset; an empty --runtime clap refuses.
    let env = std::env::var("KILN_RUNTIME")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (name, origin) = match (flag, env.as_deref(), &config.checked.runtime) {
        (Some(f), _, _) => (f, "--runtime".to_string()),
        (None, Some(e), _) => (e, "KILN_RUNTIME".to_string()),
        (None, None, Some(c)) => (c.as_str(), format!("{} =", config.origin("runtime"))),
        (None, None, None) => ("builtin", String::new()),
    };
    Ok(match name {
        "builtin" | "" => Arc::new(kiln_executor::BuiltinRuntime::new(fallbacks())),
        other => Arc::new(
            kiln_executor::OciRuntime::new(other)
                .with_context(|| format!("{origin} {other}"))?
                .with_fallbacks(fallbacks()),
        ),
    })
}

/// What runs RUN steps: the isolation `--isolation` (or
/// `KILN_ISOLATION`, else the config file's `isolation`, else `auto`)
/// asks for, with [`run_runtime`]'s runtime as the sandbox. An OCI
/// runtime needs the sandbox: with one, `auto` means `sandbox`, and
/// `chroot` is refused.
pub(super) fn isolated_runtime(
    flag: Option<kiln_executor::Isolation>,
    runtime_flag: Option<&str>,
    config: &crate::config::Config,
) -> Result<Arc<dyn kiln_executor::Runtime>> {
    use kiln_executor::Isolation;
    let env = std::env::var("KILN_ISOLATION")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (isolation, origin) = match (flag, env, config.checked.isolation) {
        (Some(i), _, _) => (i, "--isolation".to_string()),
        (None, Some(e), _) => (
            e.trim()
                .parse::<Isolation>()
                .map_err(|err| anyhow::anyhow!("KILN_ISOLATION={e}: {err}"))?,
            "KILN_ISOLATION".to_string(),
        ),
        (None, None, Some(c)) => (c, format!("{} =", config.origin("isolation"))),
        (None, None, None) => (Isolation::Auto, String::new()),
    };
    let sandbox = run_runtime(runtime_flag, config)?;
    let oci = sandbox_is_oci(runtime_flag, config);
    let isolation = match (isolation, oci) {
        (Isolation::Chroot, Some(name)) => {
            bail!("{origin} chroot: the OCI runtime {name} needs the sandbox isolation (--isolation sandbox)")
        }
        (Isolation::Auto, Some(_)) => Isolation::Sandbox,
        (i, _) => i,
    };
    Ok(Arc::new(kiln_executor::IsolatedRuntime::new(
        isolation, sandbox,
    )))
}

/// The OCI runtime [`run_runtime`] takes, if not the built-in one.
fn sandbox_is_oci(flag: Option<&str>, config: &crate::config::Config) -> Option<String> {
    let env = std::env::var("KILN_RUNTIME")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let name = flag
        .map(str::to_string)
        .or(env)
        .or_else(|| config.checked.runtime.clone())?;
    (name != "builtin").then_some(name)
}

/// The fallbacks `KILN_RUNTIME_FALLBACKS` forces (for tests; see
/// [`kiln_executor::Fallbacks::parse`]).
pub(super) fn fallbacks() -> kiln_executor::Fallbacks {
    std::env::var("KILN_RUNTIME_FALLBACKS")
        .map(|v| kiln_executor::Fallbacks::parse(&v))
        .unwrap_or_default()
}

/// What `--ssh` values give, by id: agent sockets to forward, and key
/// files for kiln's own agent ([`crate::ssh_agent`]).
#[derive(Debug, Default)]
pub(super) struct SshSources {
    /// `ID=SOCKET`, or `ID` with `$SSH_AUTH_SOCK`.
    pub(super) sockets: BTreeMap<String, PathBuf>,
    /// `ID=KEYFILE[,KEYFILE...]`.
    pub(super) keys: BTreeMap<String, Vec<crate::ssh_agent::KeyFile>>,
}

/// Reads `--ssh default|ID[=SOCKET|KEYFILE[,KEYFILE...]]` (buildx
/// syntax); without a path, `$SSH_AUTH_SOCK`. A socket is forwarded as
/// the agent; private key files (OpenSSH format, not encrypted) are
/// served by an agent of kiln's own.
pub(super) fn parse_ssh(values: &[String]) -> Result<SshSources> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = SshSources::default();
    for value in values {
        let (id, paths) = match value.split_once('=') {
            Some((id, paths)) => (
                id.to_string(),
                paths
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect::<Vec<_>>(),
            ),
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    anyhow::anyhow!(
                        "--ssh {value}: SSH_AUTH_SOCK is not set (give --ssh {value}=SOCKET or {value}=KEYFILE)"
                    )
                })?;
                (value.clone(), vec![PathBuf::from(sock)])
            }
        };
        if id.is_empty() {
            bail!("--ssh {value:?}: the id is empty");
        }
        if paths.is_empty() {
            bail!("--ssh {value:?}: no socket or key file after {id}=");
        }
        if out.sockets.contains_key(&id) || out.keys.contains_key(&id) {
            bail!("--ssh {value:?}: {id} is given twice");
        }
        let mut keys = Vec::new();
        for path in &paths {
            let md = std::fs::metadata(path)
                .with_context(|| format!("--ssh {value}: {}", path.display()))?;
            if md.file_type().is_socket() {
                if paths.len() > 1 {
                    bail!(
                        "--ssh {value}: {} is an agent socket: give it alone ({id}=SOCKET), or only key files",
                        path.display()
                    );
                }
                out.sockets.insert(id.clone(), path.clone());
            } else if md.is_dir() {
                bail!(
                    "--ssh {value}: {} is a directory, not an agent socket or a key file",
                    path.display()
                );
            } else {
                keys.push(crate::ssh_agent::read_key(value, path)?);
            }
        }
        if !keys.is_empty() {
            out.keys.insert(id, keys);
        }
    }
    Ok(out)
}

/// Reads `--secret id=ID[,src=FILE|,env=VAR]` (buildx syntax; `source=`
/// and `type=file|env` accepted). With neither source, as buildx: the
/// variable named ID when it is set, else the file named ID. A file must
/// exist now (a variable is read when a step mounts it).
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
                "type" if v == "file" || v == "env" => kind = Some(v.to_string()),
                "type" => bail!("--secret {value:?}: type={v} (file or env)"),
                other => bail!("--secret {value:?}: unknown key {other:?}"),
            }
        }
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| anyhow::anyhow!("--secret {value:?}: id= is required"))?;
        let source = match (kind.as_deref(), src, env) {
            (Some("env"), Some(v), None) | (_, None, Some(v)) => kiln_solver::SecretSource::Env(v),
            (_, Some(path), None) => kiln_solver::SecretSource::File(PathBuf::from(path)),
            (_, None, None) if std::env::var_os(&id).is_some() => {
                kiln_solver::SecretSource::Env(id.clone())
            }
            (Some("env"), None, None) => kiln_solver::SecretSource::Env(id.clone()),
            (_, None, None) => kiln_solver::SecretSource::File(PathBuf::from(&id)),
            (_, Some(_), Some(_)) => bail!("--secret {value:?}: give src= or env=, not both"),
        };
        if let kiln_solver::SecretSource::File(path) = &source {
            let md = std::fs::metadata(path).map_err(|e| {
                if path.as_os_str() == id.as_str() && !value.contains("src") {
                    anyhow::anyhow!(
                        "--secret {value:?}: no src= or env=, no variable {id} and no file {id} ({e})"
                    )
                } else {
                    anyhow::anyhow!("--secret {value:?}: {}: {e}", path.display())
                }
            })?;
            if md.is_dir() {
                bail!("--secret {value:?}: {} is a directory", path.display());
            }
        }
        out.insert(id, source);
    }
    Ok(out)
}

/// `--build-arg KEY=VALUE` or `KEY` (from the environment): the name
/// may not be empty.
pub(super) fn build_arg(value: &str) -> std::result::Result<String, String> {
    let name = value.split_once('=').map_or(value, |(k, _)| k);
    if name.trim().is_empty() {
        return Err("the name is empty (KEY=VALUE, or KEY to take it from the environment)".into());
    }
    Ok(value.to_string())
}

/// `KEY=VALUE` with a non-empty key (`--label`).
pub(super) fn key_value(value: &str) -> std::result::Result<String, String> {
    match value.split_once('=') {
        Some((k, _)) if !k.trim().is_empty() => Ok(value.to_string()),
        Some(_) => Err("the key is empty (KEY=VALUE)".into()),
        None => Err("expected KEY=VALUE".into()),
    }
}

/// An `--output` value: not empty, not only commas.
pub(super) fn output(value: &str) -> std::result::Result<String, String> {
    if value.split(',').all(|f| f.trim().is_empty()) {
        return Err("empty (type=TYPE[,dest=PATH...], or a directory)".into());
    }
    Ok(value.to_string())
}

/// A count of at least 1 (`--jobs`).
pub(super) fn positive(value: &str) -> std::result::Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A value that may not be empty (`--runtime`).
pub(super) fn not_empty(value: &str) -> std::result::Result<String, String> {
    if value.trim().is_empty() {
        return Err("empty".into());
    }
    Ok(value.to_string())
}

/// Drops a leading `N: ` or `line N: ` the error text already carries.
pub(super) fn strip_line(text: &str, line: usize) -> String {
    let text = text.strip_prefix(&format!("line {line}: ")).unwrap_or(text);
    text.strip_prefix(&format!("{line}: "))
        .unwrap_or(text)
        .to_string()
}

/// `--add-host NAME:IP` or `NAME=IP` (buildx's forms; an IPv6 address
/// after the first `:` keeps its colons).
pub(super) fn parse_add_host(value: &str) -> Result<(String, std::net::IpAddr)> {
    let (name, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(|| anyhow::anyhow!("--add-host {value:?}: expected NAME:IP"))?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        bail!("--add-host {value:?}: {name:?} is not a host name");
    }
    if ip == "host-gateway" {
        bail!("--add-host {value:?}: kiln has no daemon, so no host-gateway address; give the address");
    }
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| anyhow::anyhow!("--add-host {value:?}: {ip:?} is not an IP address"))?;
    Ok((name.to_string(), ip))
}

/// `--shm-size`, `--ulimit` and `--cgroup-parent` (buildx's syntax; the
/// size with Docker's units, `0` meaning the default as in buildx). A
/// later `--ulimit` of a name replaces an earlier one, as Docker's do; the
/// limits are kept in name order, so the order of the flags does not
/// change a cache key.
pub(super) fn run_resources(
    shm_size: Option<&str>,
    ulimits: &[String],
    cgroup_parent: Option<&str>,
) -> Result<kiln_executor::Resources> {
    let shm_size = shm_size
        .map(|s| crate::units::parse_size(s).map_err(|e| anyhow::anyhow!("--shm-size: {e}")))
        .transpose()?
        .filter(|bytes| *bytes > 0);
    let mut limits: BTreeMap<kiln_executor::UlimitName, kiln_executor::Ulimit> = BTreeMap::new();
    for u in ulimits {
        let limit: kiln_executor::Ulimit = u
            .parse()
            .map_err(|e| anyhow::anyhow!("--ulimit {u:?}: {e}"))?;
        limits.insert(limit.name, limit);
    }
    let cgroup_parent = cgroup_parent
        .map(|p| {
            kiln_executor::cgroup_parent(p).map_err(|e| anyhow::anyhow!("--cgroup-parent {e}"))
        })
        .transpose()?;
    Ok(kiln_executor::Resources {
        shm_size,
        ulimits: limits.into_values().collect(),
        cgroup_parent,
    })
}
