//! Compose files: each service's `build:` section read as a bake target,
//! as buildx reads it (the service's `image:` names it when the section
//! has no `tags`; services without `build:` are left out), and a
//! `default` group of them all. A section's `x-bake` map (buildx's
//! extension) sets bake fields over the section's. Strings are
//! interpolated from the environment as compose does (`$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
//! `${VAR:+alt}`, `$$`).

use super::model::{Definition, Group, Target};
use anyhow::{anyhow, bail, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    services: BTreeMap<String, Service>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretDef>,
}

#[derive(Deserialize)]
struct Service {
    image: Option<String>,
    build: Option<Build>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Build {
    Context(String),
    Full(Box<BuildSection>),
}

#[derive(Deserialize, Default)]
struct BuildSection {
    context: Option<String>,
    dockerfile: Option<String>,
    dockerfile_inline: Option<String>,
    #[serde(default)]
    args: MapOrList,
    target: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    labels: MapOrList,
    #[serde(default)]
    cache_from: Vec<String>,
    #[serde(default)]
    cache_to: Vec<String>,
    #[serde(default)]
    secrets: Vec<ServiceSecret>,
    #[serde(default)]
    ssh: MapOrList,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default)]
    additional_contexts: MapOrList,
    network: Option<String>,
    #[serde(default)]
    extra_hosts: MapOrList,
    no_cache: Option<bool>,
    pull: Option<bool>,
    shm_size: Option<serde_yaml_ng::Value>,
    /// buildx's extension: bake fields laid over the section's.
    #[serde(rename = "x-bake")]
    x_bake: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Compose's two spellings of a string map: `{K: V}` or `["K=V"]`.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum MapOrList {
    #[default]
    Empty,
    Map(BTreeMap<String, Option<serde_yaml_ng::Value>>),
    List(Vec<String>),
}

impl MapOrList {
    /// The entries; `sep` splits list items (`=`, or `:` for hosts).
    fn entries(&self, seps: &[char]) -> Vec<(String, Option<String>)> {
        match self {
            MapOrList::Empty => Vec::new(),
            MapOrList::Map(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_ref().map(yaml_text)))
                .collect(),
            MapOrList::List(l) => l
                .iter()
                .map(|item| match item.split_once(seps) {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (item.clone(), None),
                })
                .collect(),
        }
    }
}

/// A scalar YAML value as text.
fn yaml_text(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Bool(b) => b.to_string(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ServiceSecret {
    Short(String),
    Long { source: String },
}

#[derive(Deserialize)]
struct SecretDef {
    file: Option<String>,
    environment: Option<String>,
}

/// Reads the compose file `name` (in directory `dir`, which relative
/// contexts start from).
///
/// # Errors
/// YAML that does not parse or has the wrong shape (`NAME:LINE:COL`), or
/// a service naming a secret the file does not define.
pub(super) fn parse(name: &str, text: &str, dir: &Path) -> Result<Definition> {
    let at = |e: serde_yaml_ng::Error| match e.location() {
        Some(at) => anyhow!("{name}:{}:{}: {e}", at.line(), at.column()),
        None => anyhow!("{name}: {e}"),
    };
    // The shape is checked on the text, where errors have positions; the
    // values are read after `${VAR}` interpolation.
    let _: File = serde_yaml_ng::from_str(text).map_err(at)?;
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(at)?;
    interpolate_all(&mut value, &|k| std::env::var(k).ok()).map_err(|e| anyhow!("{name}: {e}"))?;
    let file: File = serde_yaml_ng::from_value(value).map_err(|e| anyhow!("{name}: {e}"))?;
    let mut def = Definition::default();
    let mut members = Vec::new();
    for (service, s) in file.services {
        let Some(build) = s.build else { continue };
        let b = match build {
            Build::Context(c) => BuildSection {
                context: Some(c),
                ..BuildSection::default()
            },
            Build::Full(b) => *b,
        };
        let context = local(dir, &b.context.clone().unwrap_or_else(|| ".".into()));
        let mut secrets = Vec::new();
        for sec in &b.secrets {
            let id = match sec {
                ServiceSecret::Short(s) | ServiceSecret::Long { source: s } => s,
            };
            let def_ = file.secrets.get(id).ok_or_else(|| {
                anyhow!("{name}: service {service:?}: secret {id:?} is not defined under secrets:")
            })?;
            match (&def_.file, &def_.environment) {
                (Some(f), _) => secrets.push(format!("id={id},src={}", local(dir, f))),
                (None, Some(env)) => secrets.push(format!("id={id},env={env}")),
                (None, None) => bail!("{name}: secret {id:?}: needs file or environment"),
            }
        }
        let map = |m: &MapOrList, seps: &[char]| -> Option<BTreeMap<String, String>> {
            let e: BTreeMap<String, String> = m
                .entries(seps)
                .into_iter()
                .filter_map(|(k, v)| v.or_else(|| std::env::var(&k).ok()).map(|v| (k, v)))
                .collect();
            (!e.is_empty()).then_some(e)
        };
        let list = |l: &[String]| (!l.is_empty()).then(|| l.to_vec());
        let mut tags = b.tags.clone();
        if let Some(image) = &s.image {
            tags.insert(0, image.clone());
        }
        let ssh: Vec<String> = b
            .ssh
            .entries(&['='])
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k,
            })
            .collect();
        let target = Target {
            context: Some(context),
            dockerfile: b.dockerfile.clone(),
            dockerfile_inline: b.dockerfile_inline.clone(),
            args: map(&b.args, &['=']),
            labels: map(&b.labels, &['=']),
            tags: list(&tags),
            cache_from: list(&b.cache_from),
            cache_to: list(&b.cache_to),
            target: b.target.clone(),
            secret: list(&secrets),
            ssh: list(&ssh),
            platforms: list(&b.platforms),
            contexts: map(&b.additional_contexts, &['=']).map(|m| {
                m.into_iter()
                    .map(|(k, v)| {
                        let v = if v.starts_with("target:") {
                            v
                        } else {
                            local(dir, &v)
                        };
                        (k, v)
                    })
                    .collect()
            }),
            network: b.network.clone(),
            extra_hosts: map(&b.extra_hosts, &['=', ':']),
            no_cache: b.no_cache,
            pull: b.pull,
            shm_size: b.shm_size.as_ref().map(yaml_text),
            ..Target::default()
        };
        let mut target = target;
        if let Some(extra) = b.x_bake.clone() {
            let extra = Target::from_json(extra)
                .map_err(|e| anyhow!("{name}: service {service:?}: x-bake: {e}"))?;
            target.merge(&extra);
        }
        members.push(service.clone());
        def.targets.insert(service, target);
    }
    def.groups.insert(
        "default".into(),
        Group {
            description: None,
            targets: members,
        },
    );
    Ok(def)
}

/// A path of the compose file made absolute from its directory `dir` (as
/// compose does), `.` components left out; URLs and absolute paths as
/// they are.
fn local(dir: &Path, value: &str) -> String {
    if value.contains("://") || value.starts_with("git@") || Path::new(value).is_absolute() {
        return value.to_string();
    }
    let rel: std::path::PathBuf = Path::new(value)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    dir.join(rel).display().to_string()
}

/// Deepest nesting of `${...}` in a default.
const MAX_NESTING: usize = 8;

/// Interpolates every string in `value` (an explicit stack, no recursion
/// on the document's depth).
fn interpolate_all(
    value: &mut serde_yaml_ng::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_yaml_ng::Value::String(s) if s.contains('$') => {
                *s = interpolate(s, env, 0)?;
            }
            serde_yaml_ng::Value::Sequence(items) => stack.extend(items.iter_mut()),
            serde_yaml_ng::Value::Mapping(m) => stack.extend(m.values_mut()),
            serde_yaml_ng::Value::Tagged(t) => stack.push(&mut t.value),
            _ => {}
        }
    }
    Ok(())
}

/// Compose's interpolation of one string.
fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>, depth: usize) -> Result<String> {
    if depth > MAX_NESTING {
        bail!("{text:?}: ${{...}} nested deeper than {MAX_NESTING}");
    }
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(inner) = after.strip_prefix('{') {
            // The matching brace, counting nested `${`.
            let mut open = 1usize;
            let mut end = None;
            let bytes = inner.as_bytes();
            let mut j = 0;
            while j < bytes.len() {
                match bytes[j] {
                    b'{' => open += 1,
                    b'}' => {
                        open -= 1;
                        if open == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let Some(end) = end else {
                bail!("{text:?}: unclosed ${{");
            };
            let expr = &inner[..end];
            let name_len = expr.find(|c: char| !is_name(c)).unwrap_or(expr.len());
            let (var, op) = expr.split_at(name_len);
            if var.is_empty() {
                bail!("{text:?}: invalid interpolation ${{{expr}}}");
            }
            let value = env(var);
            let set = value.is_some();
            let nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
            let sub = |t: &str| interpolate(t, env, depth + 1);
            let got = if op.is_empty() {
                value.unwrap_or_default()
            } else if let Some(d) = op.strip_prefix(":-") {
                if nonempty {
                    value.unwrap_or_default()
                } else {
                    sub(d)?
                }
            } else if let Some(d) = op.strip_prefix('-') {
                if set {
                    value.unwrap_or_default()
                } else {
                    sub(d)?
                }
            } else if let Some(m) = op.strip_prefix(":?") {
                if !nonempty {
                    bail!("required variable {var} is missing a value: {}", sub(m)?);
                }
                value.unwrap_or_default()
            } else if let Some(m) = op.strip_prefix('?') {
                if !set {
                    bail!("required variable {var} is missing a value: {}", sub(m)?);
                }
                value.unwrap_or_default()
            } else if let Some(a) = op.strip_prefix(":+") {
                if nonempty {
                    sub(a)?
                } else {
                    String::new()
                }
            } else if let Some(a) = op.strip_prefix('+') {
                if set {
                    sub(a)?
                } else {
                    String::new()
                }
            } else {
                bail!("{text:?}: invalid interpolation ${{{expr}}}");
            };
            out.push_str(&got);
            rest = &inner[end + 1..];
        } else {
            let name_len = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            if name_len == 0 {
                out.push('$');
            } else {
                out.push_str(&env(&after[..name_len]).unwrap_or_default());
            }
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    fn env(k: &str) -> Option<String> {
        match k {
            "TAG" => Some("1.2".into()),
            "EMPTY" => Some(String::new()),
            "REG" => Some("registry.example.com".into()),
            _ => None,
        }
    }

    fn i(t: &str) -> String {
        interpolate(t, &env, 0).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn compose_interpolation() {
        assert_eq!(i("app:${TAG}"), "app:1.2");
        assert_eq!(i("app:$TAG-x"), "app:1.2-x");
        assert_eq!(i("${NOPE:-latest}"), "latest");
        assert_eq!(i("${EMPTY:-d}"), "d");
        assert_eq!(i("${EMPTY-d}"), "");
        assert_eq!(i("${NOPE-d}"), "d");
        assert_eq!(i("${NOPE:-${REG}/app}"), "registry.example.com/app");
        assert_eq!(i("${TAG:+set}/${NOPE:+set}"), "set/");
        assert_eq!(i("$$TAG costs $$5"), "$TAG costs $5");
        assert_eq!(i("a $ b"), "a $ b");
        assert!(i("${NOPE:?needs a tag}").contains("NOPE is missing a value: needs a tag"));
        assert!(i("${TAG").starts_with("ERR"));
        assert!(i("${:-x}").starts_with("ERR"));
        let deep = "${A:-".repeat(20) + &"}".repeat(20);
        assert!(i(&deep).contains("nested deeper"));
    }
}
