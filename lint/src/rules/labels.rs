//! The label-schema rules (DL3049-DL3058): only active when the config has
//! a `label-schema` (and DL3050 with `strict-labels`).

use super::instructions::unquote;
use crate::context::Context;
use crate::diagnostic::Diagnostics;
use kiln_parser::Instruction;
use std::collections::HashSet;

/// Every `LABEL key=value` of the file (ONBUILD triggers excluded), with
/// the stage and line.
fn labels<'a>(cx: &Context<'a>) -> Vec<(usize, usize, String, String)> {
    let mut out = Vec::new();
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        let (Some(stage), Instruction::Label(kv)) = (item.stage, &item.command.instruction) else {
            continue;
        };
        for p in &kv.pairs {
            out.push((
                stage,
                item.line,
                unquote(&p.key).to_string(),
                unquote(&p.value).to_string(),
            ));
        }
    }
    out
}

pub(crate) fn dl3049(cx: &Context<'_>, out: &mut Diagnostics) {
    let schema = &cx.config.label_schema;
    if schema.is_empty() {
        return;
    }
    let all = labels(cx);
    // Stages other stages copy from are excused.
    let copied: HashSet<String> = cx
        .items()
        .iter()
        .filter_map(|i| match &i.command.instruction {
            Instruction::Copy(c) => c.from.as_ref().map(|f| f.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    for (i, stage) in cx.dockerfile.stages.iter().enumerate() {
        if stage.name().is_some_and(|n| copied.contains(n)) {
            continue;
        }
        let lineage = cx.lineage(i);
        for label in schema.keys() {
            let has = all
                .iter()
                .any(|(s, _, k, _)| lineage.contains(s) && k == label);
            if !has {
                out.at_with(
                    stage.from.span.start.line,
                    format!("Label `{label}` is missing."),
                );
            }
        }
    }
}

pub(crate) fn dl3050(cx: &Context<'_>, out: &mut Diagnostics) {
    let schema = &cx.config.label_schema;
    if !cx.config.strict_labels || schema.is_empty() {
        return;
    }
    let mut lines: Vec<usize> = labels(cx)
        .into_iter()
        .filter(|(_, _, k, _)| !schema.contains_key(k))
        .map(|(_, l, _, _)| l)
        .collect();
    lines.dedup();
    for line in lines {
        out.at(line);
    }
}

/// Runs `valid` on every schema label of type `kind`.
fn typed(
    cx: &Context<'_>,
    out: &mut Diagnostics,
    kind: &str,
    message: &str,
    valid: fn(&str) -> bool,
) {
    for (_, line, key, value) in labels(cx) {
        if cx.config.label_schema.get(&key).map(String::as_str) == Some(kind)
            && !value.is_empty()
            && !valid(&value)
        {
            out.at_with(line, message.replace("{}", &key));
        }
    }
}

pub(crate) fn dl3051(cx: &Context<'_>, out: &mut Diagnostics) {
    for (_, line, key, value) in labels(cx) {
        if cx.config.label_schema.contains_key(&key) && value.trim().is_empty() {
            out.at_with(line, format!("label `{key}` is empty."));
        }
    }
}

fn is_url(v: &str) -> bool {
    let Some((scheme, rest)) = v.split_once(':') else {
        return false;
    };
    let mut c = scheme.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch))
        && !rest.is_empty()
        && !v.contains(char::is_whitespace)
}

pub(crate) fn dl3052(cx: &Context<'_>, out: &mut Diagnostics) {
    typed(cx, out, "url", "Label `{}` is not a valid URL.", is_url);
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.chars().all(|c| c.is_ascii_digit())
}

/// `2024-01-31T12:34:56Z`, with optional fraction and `+hh:mm` offset.
fn is_rfc3339(v: &str) -> bool {
    let Some((date, time)) = v.split_once(['T', 't', ' ']) else {
        return false;
    };
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 || !digits(d[0], 4) || !digits(d[1], 2) || !digits(d[2], 2) {
        return false;
    }
    let (clock, zone) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, None)
    } else if let Some(i) = time.rfind(['+', '-']) {
        (&time[..i], Some(&time[i + 1..]))
    } else {
        return false;
    };
    if let Some(z) = zone {
        let z: Vec<&str> = z.split(':').collect();
        if z.len() != 2 || !digits(z[0], 2) || !digits(z[1], 2) {
            return false;
        }
    }
    let clock = clock.split('.').next().unwrap_or_default();
    let t: Vec<&str> = clock.split(':').collect();
    t.len() == 3 && t.iter().all(|p| digits(p, 2))
}

pub(crate) fn dl3053(cx: &Context<'_>, out: &mut Diagnostics) {
    typed(
        cx,
        out,
        "rfc3339",
        "Label `{}` is not a valid time format - must conform to RFC3339.",
        is_rfc3339,
    );
}

/// An SPDX licence id from the SPDX licence list (the `spdx` crate's copy,
/// deprecated ids included, as hadolint's Cabal list has them), a
/// `LicenseRef-...`, or an expression of those (`Apache-2.0 OR MIT`,
/// `GPL-2.0+`, `... WITH Classpath-exception-2.0`).
fn is_spdx(v: &str) -> bool {
    // An empty value is DL3051's, not this rule's.
    v.split_whitespace()
        .filter(|w| !["AND", "OR", "WITH"].contains(w))
        .map(|w| w.trim_matches(['(', ')']).trim_end_matches('+'))
        .all(|id| {
            spdx::license_id(id).is_some()
                || spdx::exception_id(id).is_some()
                || id.starts_with("LicenseRef-")
        })
}

pub(crate) fn dl3054(cx: &Context<'_>, out: &mut Diagnostics) {
    typed(
        cx,
        out,
        "spdx",
        "Label `{}` is not a valid SPDX identifier.",
        is_spdx,
    );
}

fn is_git_hash(v: &str) -> bool {
    (v.len() == 7 || v.len() == 40)
        && v.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

pub(crate) fn dl3055(cx: &Context<'_>, out: &mut Diagnostics) {
    typed(
        cx,
        out,
        "hash",
        "Label `{}` is not a valid git hash.",
        is_git_hash,
    );
}

fn is_semver(v: &str) -> bool {
    let (core, _) = v.split_once('+').unwrap_or((v, ""));
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    let number = |n: &&str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    nums.len() == 3
        && nums.iter().all(number)
        && pre.is_none_or(|p| {
            p.split('.').all(|id| {
                !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        })
}

pub(crate) fn dl3056(cx: &Context<'_>, out: &mut Diagnostics) {
    typed(
        cx,
        out,
        "semver",
        "Label `{}` does not conform to semantic versioning.",
        is_semver,
    );
}

fn is_email(v: &str) -> bool {
    let v = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    };
    match v.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.contains(char::is_whitespace)
        }
        None => false,
    }
}

pub(crate) fn dl3058(cx: &Context<'_>, out: &mut Diagnostics) {
    typed(
        cx,
        out,
        "email",
        "Label `{}` is not a valid email format - must conform to RFC5322.",
        is_email,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_checks() {
        assert!(is_url("https://example.com/x") && !is_url("example.com") && !is_url("a b:c"));
        assert!(is_rfc3339("2024-01-31T12:34:56Z") && is_rfc3339("2024-01-31T12:34:56.5+01:00"));
        assert!(!is_rfc3339("2024-01-31") && !is_rfc3339("yesterday"));
        assert!(is_spdx("MIT") && is_spdx("Apache-2.0 OR MIT") && !is_spdx("Apache 2"));
        // The whole SPDX list, not only common ids; exceptions after WITH.
        for id in [
            "Beerware",
            "WTFPL",
            "Zlib",
            "GPL-2.0+",
            "Apache-2.0 WITH LLVM-exception",
        ] {
            assert!(is_spdx(id), "{id}");
        }
        assert!(!is_spdx("Apache-2.0 WITH Made-Up-exception"));
        assert!(is_git_hash("0123abc") && !is_git_hash("0123ABC") && !is_git_hash("abc"));
        assert!(
            is_semver("1.2.3")
                && is_semver("1.2.3-rc.1+b5")
                && !is_semver("1.2")
                && !is_semver("01.2.3")
        );
        assert!(is_email("a@b.c") && is_email("Me <a@b.c>") && !is_email("nobody"));
    }
}
