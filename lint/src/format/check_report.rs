//! BuildKit's build-check reports, as `kiln build` prints them: the
//! `N warnings found:` summary at a build's end, the `--check` report with
//! source excerpts, and `--call check,format=json`'s JSON.

use crate::diagnostic::{Diagnostic, Severity};
use crate::format::help_uri;
use std::fmt::Write as _;

/// True when `# check=error=true` (or the build argument) made a finding
/// an error: the build must stop.
pub fn has_errors(found: &[Diagnostic]) -> bool {
    found.iter().any(|d| d.severity == Severity::Error)
}

/// The rule names, in order and once each, for
/// `lint violation found for rules: A, B`.
pub fn rule_names(found: &[Diagnostic]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for d in found {
        if !names.contains(&d.code.as_str()) {
            names.push(&d.code);
        }
    }
    names.join(", ")
}

/// The lines a build prints at its end: `N warnings found:` and one
/// `- Rule: message (line N)` per finding.
pub fn summary(found: &[Diagnostic]) -> Vec<String> {
    let n = found.len();
    let mut lines = vec![format!(
        "{n} warning{} found:",
        if n == 1 { "" } else { "s" }
    )];
    lines.extend(
        found
            .iter()
            .map(|d| format!(" - {}: {} (line {})", d.code, d.message, d.line)),
    );
    lines
}

/// BuildKit's lint result as `--call check,format=json` prints it (the
/// `frontend.lint` subrequest's shape): each warning's rule, its
/// description and URL, the message as `detail`, its line as a range; and
/// the Dockerfile as the one source (`data` base64, as Go encodes bytes).
pub fn report_json(found: &[Diagnostic], file: &str, source: &str) -> serde_json::Value {
    use base64::Engine as _;
    let warnings: Vec<serde_json::Value> = found
        .iter()
        .map(|d| {
            let description = crate::find_rule(&d.code)
                .map(|r| r.message())
                .unwrap_or_default();
            let at = serde_json::json!({ "line": d.line, "character": 0 });
            serde_json::json!({
                "ruleName": d.code,
                "description": description,
                "url": help_uri(&d.code),
                "detail": d.message,
                "location": {
                    "sourceIndex": 0,
                    "ranges": [{ "start": at, "end": at }],
                },
            })
        })
        .collect();
    serde_json::json!({
        "warnings": warnings,
        "sources": [{
            "filename": file,
            "language": "Dockerfile",
            "data": base64::engine::general_purpose::STANDARD.encode(source),
        }],
    })
}

/// BuildKit's `--check` report: a verdict, then per finding
/// `WARNING: Rule - URL`, the message, and the lines around it with the
/// finding's line marked.
pub fn report(found: &[Diagnostic], source: &str) -> String {
    let mut out = String::new();
    match found.len() {
        0 => {
            let _ = writeln!(out, "Check complete, no warnings found.");
            return out;
        }
        1 => {
            let _ = writeln!(out, "Check complete, 1 warning has been found!");
        }
        n => {
            let _ = writeln!(out, "Check complete, {n} warnings have been found!");
        }
    }
    for d in found {
        let level = if d.severity == Severity::Error {
            "ERROR"
        } else {
            "WARNING"
        };
        let _ = writeln!(out, "\n{level}: {} - {}", d.code, help_uri(&d.code));
        let _ = writeln!(out, "{}", d.message);
        out.push_str(&kiln_parser::excerpt(&d.file, source, d.line..=d.line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{lint_file, Config, Origin};

    fn buildkit_checks(source: &str) -> Vec<Diagnostic> {
        let config = Config {
            only: Some(Origin::BuildKit),
            ..Config::default()
        };
        lint_file("Dockerfile", source, &config)
    }

    #[test]
    fn report_marks_the_line_and_names_the_rule() {
        let source = "FROM busybox\nRUN true\nCMD echo hi\n";
        let found = buildkit_checks(source);
        assert_eq!(rule_names(&found), "JSONArgsRecommended");
        let text = report(&found, source);
        assert!(text.starts_with("Check complete, 1 warning has been found!\n"));
        assert!(text.contains(
            "WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/\n"
        ));
        assert!(text.contains("Dockerfile:3\n"));
        assert!(text.contains("   3 | >>> CMD echo hi\n"), "{text}");
        assert!(text.contains("   1 |     FROM busybox\n"), "{text}");
        assert!(!has_errors(&found));
    }

    #[test]
    fn summary_and_json_name_every_finding() {
        let source = "FROM busybox\nCMD echo hi\nENTRYPOINT echo\n";
        let found = buildkit_checks(source);
        assert_eq!(
            summary(&found),
            [
                "2 warnings found:",
                " - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 2)",
                " - JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals (line 3)",
            ]
        );
        assert_eq!(rule_names(&found), "JSONArgsRecommended");
        let json = report_json(&found, "Dockerfile", source);
        assert_eq!(
            json["warnings"][1]["location"]["ranges"][0]["start"]["line"],
            3
        );
        assert_eq!(json["warnings"][0]["ruleName"], "JSONArgsRecommended");
        assert_eq!(json["sources"][0]["filename"], "Dockerfile");
        assert_eq!(
            json["sources"][0]["data"],
            "RlJPTSBidXN5Ym94CkNNRCBlY2hvIGhpCkVOVFJZUE9JTlQgZWNobwo="
        );
        assert_eq!(report(&[], source), "Check complete, no warnings found.\n");
    }
}
