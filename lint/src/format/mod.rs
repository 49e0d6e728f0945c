//! Report formats. Each writes to any `impl Write`; the caller picks stdout,
//! a file or a buffer. [`check_report`] holds BuildKit's build-check reports.

pub mod check_report;

use crate::diagnostic::{Diagnostic, Severity};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// An output format, named as hadolint names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `FILE:LINE CODE level: message`, one per line.
    Tty,
    /// hadolint's JSON: one array of `{code,column,file,level,line,message}`.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
    /// Checkstyle XML.
    Checkstyle,
    /// `kiln:FILE:LINE: CODE level: message` (GNU error format).
    Gnu,
    /// Code Climate engine stream: one JSON object per issue, each
    /// followed by a NUL byte.
    Codeclimate,
    /// GitLab's Code Quality report: a JSON array with fingerprints.
    GitlabCodeclimate,
    /// Codacy: JSON objects written one after another.
    Codacy,
    /// SonarQube generic issue import format.
    Sonarqube,
    /// JUnit XML, one test case per finding.
    Junit,
}

/// A format name kiln does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?} (expected tty, json, sarif, checkstyle, gnu, codeclimate, gitlab_codeclimate, codacy, sonarqube or junit)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "tty" => Format::Tty,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            "checkstyle" => Format::Checkstyle,
            "gnu" => Format::Gnu,
            "codeclimate" => Format::Codeclimate,
            "gitlab_codeclimate" => Format::GitlabCodeclimate,
            "codacy" => Format::Codacy,
            "sonarqube" => Format::Sonarqube,
            "junit" => Format::Junit,
            other => return Err(UnknownFormat(other.to_string())),
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Tty => "tty",
            Format::Json => "json",
            Format::Sarif => "sarif",
            Format::Checkstyle => "checkstyle",
            Format::Gnu => "gnu",
            Format::Codeclimate => "codeclimate",
            Format::GitlabCodeclimate => "gitlab_codeclimate",
            Format::Codacy => "codacy",
            Format::Sonarqube => "sonarqube",
            Format::Junit => "junit",
        })
    }
}

impl Format {
    /// Writes `found` (findings of one or more files) in this format.
    /// `color` only affects `tty`.
    ///
    /// # Errors
    /// Whatever writing to `out` returns.
    pub fn write(self, found: &[Diagnostic], color: bool, out: &mut impl Write) -> io::Result<()> {
        match self {
            Format::Tty => write_tty(found, color, out),
            Format::Json => write_json(found, out),
            Format::Sarif => write_sarif(found, out),
            Format::Checkstyle => write_checkstyle(found, out),
            Format::Gnu => write_gnu(found, out),
            Format::Codeclimate => {
                for d in found {
                    out.write_all(codeclimate_issue(d, false).as_bytes())?;
                    out.write_all(b"\0")?;
                }
                Ok(())
            }
            Format::GitlabCodeclimate => {
                let items: Vec<String> = found.iter().map(|d| codeclimate_issue(d, true)).collect();
                writeln!(out, "[{}]", items.join(","))
            }
            Format::Codacy => {
                for d in found {
                    write!(
                        out,
                        "{{\"filename\":{},\"line\":{},\"message\":{},\"patternId\":{}}}",
                        js(&d.file),
                        d.line,
                        js(&d.message),
                        js(&d.code)
                    )?;
                }
                Ok(())
            }
            Format::Sonarqube => write_sonarqube(found, out),
            Format::Junit => write_junit(found, out),
        }
    }

    /// True for the formats after which hadolint always exits 0.
    pub fn never_fails(self) -> bool {
        matches!(self, Format::Codeclimate | Format::Codacy)
    }
}

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn write_tty(found: &[Diagnostic], color: bool, out: &mut impl Write) -> io::Result<()> {
    for d in found {
        if d.code == crate::PARSE_ERROR {
            writeln!(out, "{}:{}:{} {}", d.file, d.line, d.column, d.message)?;
            continue;
        }
        let level = d.severity.as_str();
        let level = if color {
            let code = match d.severity {
                Severity::Error => "31",
                Severity::Warning => "33",
                Severity::Info => "32",
                Severity::Style | Severity::Ignore => "36",
            };
            format!("\x1b[{code}m{level}\x1b[0m")
        } else {
            level.to_string()
        };
        writeln!(
            out,
            "{}:{} {} {}: {}",
            d.file, d.line, d.code, level, d.message
        )?;
    }
    Ok(())
}

fn write_json(found: &[Diagnostic], out: &mut impl Write) -> io::Result<()> {
    let items: Vec<String> = found
        .iter()
        .map(|d| {
            format!(
                "{{\"code\":{},\"column\":{},\"file\":{},\"level\":{},\"line\":{},\"message\":{}}}",
                js(&d.code),
                d.column,
                js(&d.file),
                js(d.severity.as_str()),
                d.line,
                js(&d.message)
            )
        })
        .collect();
    writeln!(out, "[{}]", items.join(","))
}

fn write_gnu(found: &[Diagnostic], out: &mut impl Write) -> io::Result<()> {
    for d in found {
        writeln!(
            out,
            "kiln:{}:{}: {} {}: {}",
            d.file, d.line, d.code, d.severity, d.message
        )?;
    }
    Ok(())
}

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

fn write_checkstyle(found: &[Diagnostic], out: &mut impl Write) -> io::Result<()> {
    write!(
        out,
        "<?xml version='1.0' encoding='UTF-8'?><checkstyle version='4.3'>"
    )?;
    let mut files: Vec<&str> = Vec::new();
    for d in found {
        if !files.contains(&d.file.as_str()) {
            files.push(&d.file);
        }
    }
    for file in files {
        write!(out, "<file name=\"{}\">", xml(file))?;
        for d in found.iter().filter(|d| d.file == file) {
            write!(
                out,
                "<error column=\"{}\" line=\"{}\" message=\"{}\" severity=\"{}\" source=\"{}\"/>",
                d.column,
                d.line,
                xml(&d.message),
                d.severity,
                xml(&d.code)
            )?;
        }
        write!(out, "</file>")?;
    }
    writeln!(out, "</checkstyle>")
}

fn codeclimate_issue(d: &Diagnostic, fingerprint: bool) -> String {
    let severity = match d.severity {
        Severity::Error => "blocker",
        Severity::Warning => "major",
        Severity::Info => "info",
        Severity::Style | Severity::Ignore => "minor",
    };
    let mut s = format!(
        "{{\"categories\":[\"Bug Risk\"],\"check_name\":{},\"description\":{},",
        js(&d.code),
        js(&d.message)
    );
    if fingerprint {
        s.push_str(&format!("\"fingerprint\":{},", js(&fingerprint_of(d))));
    }
    s.push_str(&format!(
        "\"location\":{{\"lines\":{{\"begin\":{},\"end\":{}}},\"path\":{}}},\"severity\":\"{}\",\"type\":\"issue\"}}",
        d.line,
        d.line,
        js(&d.file),
        severity
    ));
    s
}

/// A stable 64-bit FNV-1a hash of the finding, in hex: GitLab only needs a
/// fingerprint that is the same for the same finding.
fn fingerprint_of(d: &Diagnostic) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}\0{}\0{}\0{}", d.file, d.line, d.code, d.message).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn write_sonarqube(found: &[Diagnostic], out: &mut impl Write) -> io::Result<()> {
    let issues: Vec<String> = found
        .iter()
        .map(|d| {
            let (severity, kind) = match d.severity {
                _ if d.code == crate::PARSE_ERROR => ("BLOCKER", "BUG"),
                Severity::Error => ("CRITICAL", "BUG"),
                Severity::Warning => ("MAJOR", "CODE_SMELL"),
                Severity::Info => ("MINOR", "CODE_SMELL"),
                Severity::Style | Severity::Ignore => ("INFO", "CODE_SMELL"),
            };
            format!(
                "{{\"engineId\":\"kiln-lint\",\"primaryLocation\":{{\"filePath\":{},\"message\":{},\"textRange\":{{\"endColumn\":{},\"endLine\":{},\"startColumn\":{},\"startLine\":{}}}}},\"ruleId\":{},\"severity\":\"{}\",\"type\":\"{}\"}}",
                js(&d.file),
                js(&d.message),
                d.column,
                d.line,
                d.column.saturating_sub(1),
                d.line,
                js(&d.code),
                severity,
                kind
            )
        })
        .collect();
    writeln!(out, "{{\"issues\":[{}]}}", issues.join(","))
}

fn write_junit(found: &[Diagnostic], out: &mut impl Write) -> io::Result<()> {
    write!(
        out,
        "<?xml version='1.0' encoding='UTF-8'?><testsuites><testsuite name=\"kiln-lint\" tests=\"{0}\" failures=\"{0}\">",
        found.len()
    )?;
    for d in found {
        write!(
            out,
            "<testcase id=\"kiln-lint.rule.{0}\" name=\"{0}\" classname=\"{1}\"><failure type=\"{2}\" message=\"{3}\">{1}:{4}:{5} {0}: {3}</failure></testcase>",
            xml(&d.code),
            xml(&d.file),
            d.severity,
            xml(&d.message),
            d.line,
            d.column
        )?;
    }
    writeln!(out, "</testsuite></testsuites>")
}

/// Where a rule is documented: hadolint's wiki, ShellCheck's wiki or
/// BuildKit's rule pages.
pub fn help_uri(code: &str) -> String {
    if code.starts_with("DL") {
        format!("https://github.com/hadolint/hadolint/wiki/{code}")
    } else if code.starts_with("SC") {
        format!("https://www.shellcheck.net/wiki/{code}")
    } else if code == "InvalidBaseImagePlatform" {
        // The one check without a page of its own.
        "https://docs.docker.com/reference/build-checks/".to_string()
    } else {
        // CamelCase to kebab-case; an acronym (`JSON`) stays one word.
        let chars: Vec<char> = code.chars().collect();
        let mut kebab = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let prev = i.checked_sub(1).and_then(|p| chars.get(p));
            let next = chars.get(i + 1);
            let starts_word = c.is_ascii_uppercase()
                && prev.is_some_and(|p| {
                    p.is_ascii_lowercase()
                        || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
                });
            if starts_word {
                kebab.push('-');
            }
            kebab.push(c.to_ascii_lowercase());
        }
        format!("https://docs.docker.com/go/dockerfile/rule/{kebab}/")
    }
}

fn write_sarif(found: &[Diagnostic], out: &mut impl Write) -> io::Result<()> {
    let mut codes: Vec<&str> = found.iter().map(|d| d.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    let rules: Vec<String> = codes
        .iter()
        .map(|c| {
            let short = crate::find_rule(c).map(|r| r.message()).unwrap_or(c);
            let full = crate::explain(c).unwrap_or(short);
            format!(
                "{{\"id\":{},\"shortDescription\":{{\"text\":{}}},\"fullDescription\":{{\"text\":{}}},\"helpUri\":{}}}",
                js(c),
                js(short),
                js(full),
                js(&help_uri(c))
            )
        })
        .collect();
    let results: Vec<String> = found
        .iter()
        .map(|d| {
            let level = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                _ => "note",
            };
            format!(
                "{{\"ruleId\":{},\"level\":\"{}\",\"message\":{{\"text\":{}}},\"locations\":[{{\"physicalLocation\":{{\"artifactLocation\":{{\"uri\":{}}},\"region\":{{\"startLine\":{},\"startColumn\":{},\"endLine\":{},\"endColumn\":{},\"sourceLanguage\":\"{}\"}}}}}}]}}",
                js(&d.code),
                level,
                js(&d.message),
                js(&d.file),
                d.line,
                d.column,
                d.line,
                d.column,
                if d.code.starts_with("SC") { "sh" } else { "dockerfile" }
            )
        })
        .collect();
    writeln!(
        out,
        "{{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"version\":\"2.1.0\",\"runs\":[{{\"tool\":{{\"driver\":{{\"name\":\"kiln-lint\",\"fullName\":\"kiln Dockerfile linter\",\"version\":{},\"informationUri\":\"https://github.com/hadolint/hadolint\",\"rules\":[{}]}}}},\"results\":[{}]}}]}}",
        js(env!("CARGO_PKG_VERSION")),
        rules.join(","),
        results.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Diagnostic> {
        vec![Diagnostic {
            code: "DL3006".into(),
            severity: Severity::Warning,
            line: 1,
            column: 1,
            message: "Always tag the version of an image explicitly".into(),
            file: "Dockerfile".into(),
        }]
    }

    fn render(f: Format) -> String {
        let mut buf = Vec::new();
        f.write(&sample(), false, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn tty_and_json_match_hadolint() {
        assert_eq!(
            render(Format::Tty),
            "Dockerfile:1 DL3006 warning: Always tag the version of an image explicitly\n"
        );
        assert_eq!(
            render(Format::Json),
            "[{\"code\":\"DL3006\",\"column\":1,\"file\":\"Dockerfile\",\"level\":\"warning\",\"line\":1,\"message\":\"Always tag the version of an image explicitly\"}]\n"
        );
        let mut buf = Vec::new();
        Format::Json.write(&[], false, &mut buf).unwrap();
        assert_eq!(buf, b"[]\n");
    }

    #[test]
    fn structured_formats_parse() {
        for f in [Format::Sarif, Format::GitlabCodeclimate, Format::Sonarqube] {
            let v: serde_json::Value = serde_json::from_str(&render(f)).unwrap();
            assert!(v.is_object() || v.is_array());
        }
        let cc = render(Format::Codeclimate);
        assert!(cc.ends_with('\0'));
        let v: serde_json::Value = serde_json::from_str(cc.trim_end_matches('\0')).unwrap();
        assert_eq!(v["location"]["lines"]["begin"], 1);
        assert!(render(Format::Checkstyle).contains("source=\"DL3006\""));
        assert!(render(Format::Junit).contains("<testcase id=\"kiln-lint.rule.DL3006\""));
        let codacy: serde_json::Value = serde_json::from_str(&render(Format::Codacy)).unwrap();
        assert_eq!(codacy["patternId"], "DL3006");
        assert_eq!(
            render(Format::Gnu),
            "kiln:Dockerfile:1: DL3006 warning: Always tag the version of an image explicitly\n"
        );
        assert_eq!(
            "gitlab_codeclimate".parse::<Format>().unwrap(),
            Format::GitlabCodeclimate
        );
        assert!("xml".parse::<Format>().is_err());
    }

    #[test]
    fn sarif_has_rules_with_help() {
        let sarif: serde_json::Value = serde_json::from_str(&render(Format::Sarif)).unwrap();
        assert_eq!(sarif["version"], "2.1.0");
        let result = &sarif["runs"][0]["results"][0];
        assert_eq!(result["ruleId"], "DL3006");
        let region = &result["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], 1);
        let rule = &sarif["runs"][0]["tool"]["driver"]["rules"][0];
        assert_eq!(
            rule["helpUri"],
            "https://github.com/hadolint/hadolint/wiki/DL3006"
        );
        assert_eq!(
            help_uri("JSONArgsRecommended"),
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        );
        assert_eq!(
            help_uri("FromAsCasing"),
            "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
        );
        assert_eq!(help_uri("SC2086"), "https://www.shellcheck.net/wiki/SC2086");
    }
}
