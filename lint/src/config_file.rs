//! `.hadolint.yaml` / `.hadolint.yml`: the subset of YAML hadolint's config
//! uses (scalars, block and flow lists, one level of nested maps), read
//! into a [`Config`] without a YAML library.

use crate::config::Config;
use crate::diagnostic::Severity;

use std::path::{Path, PathBuf};

#[cfg(test)]
use crate::format::Format;

/// A config file that could not be read, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config line {line}: {key}: {message}")]
pub struct ConfigError {
    /// 1-based line of the problem.
    pub line: usize,
    /// The key concerned (empty when the line has none).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Scalar(String),
    List(Vec<String>),
    Map(Vec<(String, usize, Value)>),
}

fn err(line: usize, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        line,
        key: key.to_string(),
        message: message.into(),
    }
}

/// Drops a `# comment` (outside quotes) and trailing blanks.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('#', None) if i == 0 || line[..i].ends_with([' ', '\t']) => {
                return line[..i].trim_end();
            }
            _ => {}
        }
    }
    line.trim_end()
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// `[a, b]` -> the items; anything else -> a scalar.
fn inline_value(text: &str) -> Value {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let items = inner
            .split(',')
            .map(unquote)
            .filter(|s| !s.is_empty())
            .collect();
        Value::List(items)
    } else {
        Value::Scalar(unquote(t))
    }
}

/// Reads `key: value` lines at `indent`, with nested blocks below them.
fn parse_block(
    lines: &[(usize, usize, &str)],
    at: &mut usize,
    indent: usize,
) -> Result<Vec<(String, usize, Value)>, ConfigError> {
    let mut out = Vec::new();
    while let Some(&(line_no, ind, text)) = lines.get(*at) {
        if ind < indent {
            break;
        }
        if ind > indent {
            return Err(err(line_no, "", "unexpected indentation"));
        }
        let Some((key, rest)) = text.split_once(':') else {
            return Err(err(line_no, text, "expected `key: value`"));
        };
        let key = unquote(key);
        *at += 1;
        let rest = rest.trim();
        if !rest.is_empty() {
            out.push((key, line_no, inline_value(rest)));
            continue;
        }
        // A nested block: a list of `- item` or a map.
        match lines.get(*at) {
            Some(&(_, child, t)) if child > indent && t.starts_with('-') => {
                let mut items = Vec::new();
                while let Some(&(_, ci, t)) = lines.get(*at) {
                    if ci != child || !t.starts_with('-') {
                        break;
                    }
                    items.push(unquote(t.trim_start_matches('-')));
                    *at += 1;
                }
                out.push((key, line_no, Value::List(items)));
            }
            Some(&(_, child, _)) if child > indent => {
                let map = parse_block(lines, at, child)?;
                out.push((key, line_no, Value::Map(map)));
            }
            _ => out.push((key, line_no, Value::List(Vec::new()))),
        }
    }
    Ok(out)
}

fn as_list(key: &str, line: usize, v: Value) -> Result<Vec<String>, ConfigError> {
    match v {
        Value::List(l) => Ok(l),
        _ => Err(err(line, key, "expected a list")),
    }
}

fn as_bool(key: &str, line: usize, v: Value) -> Result<bool, ConfigError> {
    match v {
        Value::Scalar(s) => match s.as_str() {
            "true" | "yes" | "on" | "True" | "TRUE" => Ok(true),
            "false" | "no" | "off" | "False" | "FALSE" => Ok(false),
            _ => Err(err(line, key, format!("expected true or false, got {s:?}"))),
        },
        _ => Err(err(line, key, "expected true or false")),
    }
}

fn as_scalar(key: &str, line: usize, v: Value) -> Result<String, ConfigError> {
    match v {
        Value::Scalar(s) => Ok(s),
        _ => Err(err(line, key, "expected a single value")),
    }
}

impl Config {
    /// Reads a hadolint config file's text and merges it into `self`
    /// (lists are appended, scalars replace).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the line and key of an unknown key, a value
    /// of the wrong shape, or an unknown severity or format.
    pub fn merge_yaml(&mut self, text: &str) -> Result<(), ConfigError> {
        let lines: Vec<(usize, usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, strip_comment(l)))
            .filter(|(_, l)| !l.trim().is_empty() && l.trim() != "---")
            .map(|(n, l)| (n, l.len() - l.trim_start().len(), l.trim_start()))
            .collect();
        let mut at = 0;
        let top = parse_block(&lines, &mut at, lines.first().map(|l| l.1).unwrap_or(0))?;
        for (key, line, value) in top {
            match key.as_str() {
                "ignored" => self.ignored.extend(as_list(&key, line, value)?),
                "trustedRegistries" => self.trusted_registries.extend(as_list(&key, line, value)?),
                "failure-threshold" => {
                    let s = as_scalar(&key, line, value)?;
                    self.failure_threshold =
                        s.parse().map_err(|e| err(line, &key, format!("{e}")))?;
                }
                "no-fail" => self.no_fail = as_bool(&key, line, value)?,
                "no-color" => self.no_color = as_bool(&key, line, value)?,
                "strict-labels" => self.strict_labels = as_bool(&key, line, value)?,
                // kiln's own key: BuildKit's checks as a group.
                "buildkit-checks" => {
                    let on = as_bool(&key, line, value)?;
                    self.set_buildkit_checks(on);
                }
                "disable-ignore-pragma" => self.disable_ignore_pragma = as_bool(&key, line, value)?,
                "verbose" => self.verbose = as_bool(&key, line, value)?,
                "format" => {
                    let s = as_scalar(&key, line, value)?;
                    self.format = Some(
                        s.parse()
                            .map_err(|e: crate::UnknownFormat| err(line, &key, e.to_string()))?,
                    );
                }
                "formats" => {
                    if let Some(first) = as_list(&key, line, value)?.first() {
                        self.format =
                            Some(first.parse().map_err(|e: crate::UnknownFormat| {
                                err(line, &key, e.to_string())
                            })?);
                    }
                }
                "override" => {
                    let Value::Map(map) = value else {
                        return Err(err(line, &key, "expected error/warning/info/style lists"));
                    };
                    for (level, l, codes) in map {
                        let severity: Severity = level
                            .parse()
                            .map_err(|e| err(l, &format!("override.{level}"), format!("{e}")))?;
                        for code in as_list(&format!("override.{level}"), l, codes)? {
                            self.overrides.insert(code, severity);
                        }
                    }
                }
                "label-schema" => {
                    let Value::Map(map) = value else {
                        return Err(err(line, &key, "expected a map of label: type"));
                    };
                    for (label, l, kind) in map {
                        let kind = as_scalar(&format!("label-schema.{label}"), l, kind)?;
                        self.label_schema.insert(label, kind);
                    }
                }
                _ => return Err(err(line, &key, "unknown key")),
            }
        }
        Ok(())
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
}

fn comma_list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

impl Config {
    /// Merges hadolint's environment variables (`HADOLINT_NOFAIL`,
    /// `HADOLINT_FORMAT`, `HADOLINT_FAILURE_THRESHOLD`, `HADOLINT_IGNORE`,
    /// `HADOLINT_OVERRIDE_{ERROR,WARNING,INFO,STYLE}`,
    /// `HADOLINT_TRUSTED_REGISTRIES`, `HADOLINT_STRICT_LABELS`,
    /// `HADOLINT_DISABLE_IGNORE_PRAGMA`, `HADOLINT_REQUIRE_LABELS`,
    /// `NO_COLOR`) read through `lookup`. hadolint applies them before the
    /// config file and the command line.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable whose value is not valid.
    pub fn merge_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| err(0, key, message);
        if lookup("NO_COLOR").is_some() {
            self.no_color = true;
        }
        if let Some(v) = lookup("HADOLINT_NOFAIL") {
            self.no_fail = truthy(&v);
        }
        if let Some(v) = lookup("HADOLINT_STRICT_LABELS") {
            self.strict_labels = truthy(&v);
        }
        if let Some(v) = lookup("KILN_LINT_BUILDKIT_CHECKS") {
            self.set_buildkit_checks(truthy(&v));
        }
        if let Some(v) = lookup("HADOLINT_DISABLE_IGNORE_PRAGMA") {
            self.disable_ignore_pragma = truthy(&v);
        }
        if let Some(v) = lookup("HADOLINT_FORMAT") {
            let f = v
                .parse()
                .map_err(|e: crate::UnknownFormat| bad("HADOLINT_FORMAT", e.to_string()))?;
            self.format = Some(f);
        }
        if let Some(v) = lookup("HADOLINT_FAILURE_THRESHOLD") {
            self.failure_threshold = v
                .parse()
                .map_err(|e| bad("HADOLINT_FAILURE_THRESHOLD", format!("{e}")))?;
        }
        if let Some(v) = lookup("HADOLINT_IGNORE") {
            self.ignored.extend(comma_list(&v));
        }
        if let Some(v) = lookup("HADOLINT_TRUSTED_REGISTRIES") {
            self.trusted_registries.extend(comma_list(&v));
        }
        for (key, severity) in [
            ("HADOLINT_OVERRIDE_ERROR", Severity::Error),
            ("HADOLINT_OVERRIDE_WARNING", Severity::Warning),
            ("HADOLINT_OVERRIDE_INFO", Severity::Info),
            ("HADOLINT_OVERRIDE_STYLE", Severity::Style),
        ] {
            if let Some(v) = lookup(key) {
                for code in comma_list(&v) {
                    self.overrides.insert(code, severity);
                }
            }
        }
        if let Some(v) = lookup("HADOLINT_REQUIRE_LABELS") {
            for item in comma_list(&v) {
                let Some((label, kind)) = item.split_once(':') else {
                    return Err(bad(
                        "HADOLINT_REQUIRE_LABELS",
                        format!("{item:?} is not label:format"),
                    ));
                };
                self.label_schema
                    .insert(label.to_string(), kind.to_string());
            }
        }
        Ok(())
    }
}

/// Where hadolint looks for a config file, in order: `.hadolint.yaml` and
/// `.hadolint.yml` in `cwd`, then `hadolint.yaml`/`.yml` in
/// `$XDG_CONFIG_HOME` (or `~/.config`), then `~/.hadolint/hadolint.yaml`
/// and friends, then `~/.hadolint.yaml`/`.yml`. The first that exists wins.
pub fn config_candidates(cwd: &Path, xdg: Option<&Path>, home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = vec![cwd.join(".hadolint.yaml"), cwd.join(".hadolint.yml")];
    let xdg = xdg
        .map(Path::to_path_buf)
        .or_else(|| home.map(|h| h.join(".config")));
    if let Some(x) = xdg {
        out.push(x.join("hadolint.yaml"));
        out.push(x.join("hadolint.yml"));
    }
    if let Some(h) = home {
        for name in ["hadolint.yaml", "hadolint.yml", "config.yaml", "config.yml"] {
            out.push(h.join(".hadolint").join(name));
        }
        out.push(h.join(".hadolint.yaml"));
        out.push(h.join(".hadolint.yml"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hadolint_config() {
        let mut c = Config::default();
        c.merge_yaml(
            "---\n# comment\nfailure-threshold: warning\nformat: json\nignored: [DL3000, SC1010]\n\
             override:\n  error:\n    - DL3001\n  style: [DL3015]\n\
             trustedRegistries:\n  - docker.io\n  - \"my-company.com:5000\" # ok\n\
             label-schema:\n  author: text\nstrict-labels: true\nno-fail: false\n",
        )
        .unwrap();
        assert_eq!(c.failure_threshold, Severity::Warning);
        assert_eq!(c.format, Some(Format::Json));
        assert_eq!(c.ignored, ["DL3000", "SC1010"]);
        assert_eq!(c.overrides["DL3001"], Severity::Error);
        assert_eq!(c.overrides["DL3015"], Severity::Style);
        assert_eq!(c.trusted_registries, ["docker.io", "my-company.com:5000"]);
        assert_eq!(c.label_schema["author"], "text");
        assert!(c.strict_labels);
    }

    #[test]
    fn environment() {
        let env = [
            ("HADOLINT_NOFAIL", "1"),
            ("HADOLINT_IGNORE", "DL3000, DL3001"),
            ("HADOLINT_OVERRIDE_STYLE", "DL3015"),
            ("HADOLINT_REQUIRE_LABELS", "maintainer:text"),
            ("HADOLINT_FORMAT", "json"),
        ];
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let mut c = Config::default();
        c.merge_env(lookup).unwrap();
        assert!(c.no_fail);
        assert_eq!(c.ignored, ["DL3000", "DL3001"]);
        assert_eq!(c.overrides["DL3015"], Severity::Style);
        assert_eq!(c.label_schema["maintainer"], "text");
        assert_eq!(c.format, Some(Format::Json));
        let e = Config::default()
            .merge_env(|k| (k == "HADOLINT_FAILURE_THRESHOLD").then(|| "loud".to_string()))
            .unwrap_err();
        assert_eq!(e.key, "HADOLINT_FAILURE_THRESHOLD");
    }

    #[test]
    fn bad_config_names_the_key() {
        let e = Config::default()
            .merge_yaml("ignored: [DL3000]\nbogus: 1\n")
            .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "bogus"));
        let e = Config::default()
            .merge_yaml("trustedRegistries: docker.io\n")
            .unwrap_err();
        assert_eq!(e.key, "trustedRegistries");
        let e = Config::default()
            .merge_yaml("failure-threshold: loud\n")
            .unwrap_err();
        assert!(e.to_string().contains("failure-threshold"));
        let e = Config::default()
            .merge_yaml("override:\n  fatal: [DL3000]\n")
            .unwrap_err();
        assert_eq!(e.key, "override.fatal");
    }
}
