//! BuildKit's build checks as `kiln build` runs them: after lowering (so
//! the base images it resolved are known), before any step runs. A build
//! prints what they found at the end (`N warnings found:`), fails first
//! when `# check=error=true` makes them errors, and `--check` prints
//! BuildKit's report with source excerpts instead of building.

use super::base_images::base_image;
use kiln_lint::{
    base_refs, help_uri, try_lint_file, BaseImages, Config, Diagnostic, Origin, Severity,
};
use kiln_oci::{ImageConfig, Platform};
use kiln_solver::NamedContext;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The build argument that replaces the Dockerfile's `# check=` directive.
pub const CHECK_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// A base image lowering resolved: the FROM text, the platform asked for
/// and the image's config.
pub type Resolved = (String, Platform, ImageConfig);

/// `resolved` plus, for each named context that is an image
/// (`--build-context busybox=docker-image://...` or `oci-layout://...`),
/// what it resolved to under the context's name, which is what FROM says.
pub fn through_contexts(
    resolved: &[Resolved],
    contexts: &BTreeMap<String, NamedContext>,
) -> Vec<Resolved> {
    let mut out = resolved.to_vec();
    for (name, context) in contexts {
        let source = match context {
            NamedContext::Image(reference) => reference.clone(),
            NamedContext::OciLayout(layout) => format!("oci-layout://{layout}"),
            NamedContext::Local(_) => continue,
        };
        for (text, platform, config) in resolved {
            if *text == source {
                out.push((name.clone(), platform.clone(), config.clone()));
            }
        }
    }
    out
}

/// Runs BuildKit's checks over `source` (read from `file`) for a build
/// targeting `target` with `build_args`, knowing the images in `resolved`.
pub fn run(
    file: &str,
    source: &str,
    resolved: &[Resolved],
    target: &Platform,
    build_args: &BTreeMap<String, String>,
) -> Vec<Diagnostic> {
    let mut images = BaseImages::new(target.to_string(), Platform::host().to_string());
    for base in base_refs(source, &images) {
        let found = resolved.iter().find(|(text, platform, _)| {
            *text == base.image
                && base
                    .platform
                    .parse::<Platform>()
                    .is_ok_and(|p| p == *platform)
        });
        if let Some((_, _, config)) = found {
            images.insert(&base, base_image(config));
        }
    }
    let config = Config {
        only: Some(Origin::BuildKit),
        base_images: Some(images),
        check_directive: build_args.get(CHECK_ARG).cloned(),
        ..Config::default()
    };
    match try_lint_file(file, source, &config) {
        Ok(found) => found,
        Err((found, _)) => found,
    }
}

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
            let description = kiln_lint::find_rule(&d.code)
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
    let lines: Vec<&str> = source.lines().collect();
    for d in found {
        let level = if d.severity == Severity::Error {
            "ERROR"
        } else {
            "WARNING"
        };
        let _ = writeln!(out, "\n{level}: {} - {}", d.code, help_uri(&d.code));
        let _ = writeln!(out, "{}", d.message);
        let _ = writeln!(out, "{}:{}", d.file, d.line);
        let _ = writeln!(out, "--------------------");
        let first = d.line.saturating_sub(2).max(1);
        let last = (d.line + 1).min(lines.len());
        for n in first..=last {
            let text = lines.get(n - 1).copied().unwrap_or_default();
            let mark = if n == d.line { ">>>" } else { "   " };
            let _ = writeln!(out, " {n:>3} | {mark} {text}");
        }
        let _ = writeln!(out, "--------------------");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_marks_the_line_and_names_the_rule() {
        let source = "FROM busybox\nRUN true\nCMD echo hi\n";
        let found = run(
            "Dockerfile",
            source,
            &[],
            &"linux/amd64".parse().expect("platform"),
            &BTreeMap::new(),
        );
        assert_eq!(rule_names(&found), "JSONArgsRecommended");
        let text = report(&found, source);
        assert!(text.starts_with("Check complete, 1 warning has been found!\n"));
        assert!(text.contains(
            "WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/\n"
        ));
        assert!(text.contains("Dockerfile:3\n"));
        assert!(text.contains("   3 | >>> CMD echo hi\n"), "{text}");
        assert!(text.contains("   1 |     FROM busybox\n"), "{text}");
    }

    #[test]
    fn the_build_argument_replaces_the_directive() {
        let source = "# check=skip=JSONArgsRecommended\nFROM busybox\nCMD echo hi\n";
        let platform = "linux/amd64".parse().expect("platform");
        assert!(run("Dockerfile", source, &[], &platform, &BTreeMap::new()).is_empty());
        let args = BTreeMap::from([(CHECK_ARG.to_string(), "error=true".to_string())]);
        let found = run("Dockerfile", source, &[], &platform, &args);
        assert!(has_errors(&found), "{found:?}");
    }
}
