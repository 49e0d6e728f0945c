//! `RUN --mount=...` specifications.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A read-only (by default) view of a stage, image or the build context.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file (or environment variable).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        })
    }
}

impl FromStr for MountType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "bind" => Ok(MountType::Bind),
            "cache" => Ok(MountType::Cache),
            "tmpfs" => Ok(MountType::Tmpfs),
            "secret" => Ok(MountType::Secret),
            "ssh" => Ok(MountType::Ssh),
            _ => Err(format!("unsupported mount type {s:?}")),
        }
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Several writers at once (the default).
    Shared,
    /// Each concurrent writer gets its own copy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `--mount` of a RUN instruction, as BuildKit reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunMount {
    /// The mount type (`type=`; bind when absent).
    pub kind: MountType,
    /// Where the mount appears in the container (`target`, `dst`,
    /// `destination`). For secrets and ssh it has a default, applied later.
    pub target: Option<String>,
    /// Path inside `from` (`source`, `src`).
    pub source: Option<String>,
    /// Stage, image or named context to mount from.
    pub from: Option<String>,
    /// Read-only; defaults to true for bind and false otherwise.
    pub readonly: bool,
    /// Cache or secret id.
    pub id: Option<String>,
    /// Cache sharing mode.
    pub sharing: Option<Sharing>,
    /// File mode, from octal.
    pub mode: Option<u32>,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Owner gid.
    pub gid: Option<u32>,
    /// tmpfs size limit in bytes.
    pub size: Option<u64>,
    /// Fail the build if the secret or ssh socket is not provided.
    pub required: bool,
    /// Expose a secret as this environment variable.
    pub env: Option<String>,
}

impl RunMount {
    /// Parses a `--mount` value (comma-separated, CSV-quoted) after passing
    /// every `key=value` value through `expand`. When `expand` answers
    /// `Ok(None)` (a value it cannot expand yet), that field is left unset.
    ///
    /// # Errors
    /// A message naming the offending key or value.
    pub fn parse_with(
        spec: &str,
        expand: &mut dyn FnMut(&str) -> Result<Option<String>, String>,
    ) -> Result<RunMount, String> {
        let fields = csv_fields(spec)?;
        let mut kind = MountType::Bind;
        // The type decides defaults, so read it first wherever it is.
        for field in &fields {
            if let Some((key, value)) = field.split_once('=') {
                if key.eq_ignore_ascii_case("type") {
                    if let Some(value) = expand(value)? {
                        kind = value.parse()?;
                    }
                }
            }
        }
        let mut m = RunMount {
            kind,
            target: None,
            source: None,
            from: None,
            readonly: kind == MountType::Bind,
            id: None,
            sharing: None,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            required: false,
            env: None,
        };
        for field in &fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
                None => (field.to_ascii_lowercase(), None),
            };
            let Some(raw) = value else {
                match key.as_str() {
                    "readonly" | "ro" => m.readonly = true,
                    "readwrite" | "rw" => m.readonly = false,
                    "required" if matches!(kind, MountType::Secret | MountType::Ssh) => {
                        m.required = true
                    }
                    _ => return Err(format!("unexpected key '{key}' in '{field}'")),
                }
                continue;
            };
            let Some(value) = expand(raw)? else {
                continue;
            };
            match key.as_str() {
                "type" => {}
                "from" => m.from = Some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => m.readonly = parse_bool(&key, &value)?,
                "readwrite" | "rw" => m.readonly = !parse_bool(&key, &value)?,
                "required" => m.required = parse_bool(&key, &value)?,
                "id" => m.id = Some(value),
                "sharing" => {
                    if kind != MountType::Cache {
                        return Err(format!("invalid cache sharing set for {kind} mount"));
                    }
                    m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => return Err(format!("unsupported sharing value {value:?}")),
                    });
                }
                "mode" => {
                    m.mode = Some(
                        u32::from_str_radix(&value, 8)
                            .map_err(|_| format!("invalid value {value} for mode"))?,
                    )
                }
                "uid" => m.uid = Some(parse_id(&key, &value)?),
                "gid" => m.gid = Some(parse_id(&key, &value)?),
                "size" => {
                    if kind != MountType::Tmpfs {
                        return Err(format!("size is only valid for tmpfs mounts, not {kind}"));
                    }
                    m.size = Some(parse_size(&value)?);
                }
                "env" => {
                    if kind != MountType::Secret {
                        return Err(format!("env is only valid for secret mounts, not {kind}"));
                    }
                    m.env = Some(value);
                }
                _ => return Err(format!("unexpected key '{key}' in '{field}'")),
            }
        }
        if m.kind == MountType::Secret && m.from.is_some() {
            return Err("secret mount should not have a from".to_string());
        }
        if m.kind == MountType::Cache && m.id.is_none() {
            // BuildKit identifies an unnamed cache by its target.
            m.id = m.target.clone();
        }
        if m.kind == MountType::Secret && m.id.is_none() {
            m.id = m.source.clone();
        }
        Ok(m)
    }

    /// Parses a `--mount` value without expanding variables: fields whose
    /// value holds a `$` are left unset, to be read once expanded.
    ///
    /// # Errors
    /// A message naming the offending key or value.
    pub fn parse_literal(spec: &str) -> Result<RunMount, String> {
        Self::parse_with(spec, &mut |v| {
            Ok(if v.contains('$') {
                None
            } else {
                Some(v.to_string())
            })
        })
    }
}

fn csv_fields(spec: &str) -> Result<Vec<String>, String> {
    if !spec.contains(['"', '\n', '\r']) {
        // Without quotes or line breaks a CSV record is a plain comma split;
        // skip building a CSV reader (its setup dominated parse profiles).
        return Ok(spec
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(spec.as_bytes());
    let mut fields = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("invalid mount {spec:?}: {e}"))?;
        fields.extend(record.iter().map(str::to_string));
    }
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

fn parse_id(key: &str, value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .map_err(|_| format!("invalid value for {key}: {value}"))
}

/// Parses sizes like `64m`, `1g`, `512MiB` or `1048576` (binary multiples),
/// as Docker's `RAMInBytes` does.
pub(crate) fn parse_size(value: &str) -> Result<u64, String> {
    let bad = || format!("invalid size: {value:?}");
    let s = value.trim();
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_len);
    let number: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    Ok((number * multiplier as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        let m = RunMount::parse_literal("type=cache,target=/root/.cache,sharing=locked,mode=0755")
            .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert!(!m.readonly);
        let m = RunMount::parse_literal("target=/src,rw").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(!m.readonly);
        let m = RunMount::parse_literal("type=secret,id=npm,required,env=TOKEN").unwrap();
        assert!(m.required);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = RunMount::parse_literal("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = RunMount::parse_literal("type=cache,target=/c,uid=$UID").unwrap();
        assert_eq!(m.uid, None);
        let m = RunMount::parse_literal("\"target=/a,b\",type=bind").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
    }

    #[test]
    fn bad_mount_specs() {
        for bad in [
            "type=bind,target=/a,z",
            "type=nfs,target=/a",
            "type=cache,sharing=sometimes",
            "type=bind,sharing=locked",
            "type=cache,mode=999",
            "type=cache,uid=-1",
            "type=bind,size=1m",
            "type=bind,required",
            "type=secret,from=x",
            "type=bind,unknown=1",
        ] {
            assert!(RunMount::parse_literal(bad).is_err(), "{bad}");
        }
    }
}
