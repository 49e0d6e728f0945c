//! DL rules over instructions other than RUN's shell text.

use crate::context::{Context, Item};
use crate::diagnostic::Diagnostics;
use crate::pragma::{parse_pragma, Pragma};
use kiln_parser::instruction::{CopySource, Healthcheck};
use kiln_parser::Instruction;
use std::collections::HashSet;

/// Removes one layer of matching quotes.
pub(crate) fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// `C:` or `c:\...`: a Windows drive path.
fn is_windows_path(s: &str) -> bool {
    let mut c = s.chars();
    matches!((c.next(), c.next()), (Some(d), Some(':')) if d.is_ascii_alphabetic())
}

fn is_absolute(path: &str) -> bool {
    let p = path.trim_start_matches(['"', '\'']);
    p.starts_with('/') || p.starts_with('$') || is_windows_path(p)
}

fn own_items<'a, 'b>(cx: &'b Context<'a>) -> impl Iterator<Item = &'b Item<'a>> {
    cx.items().iter().filter(|i| !i.onbuild)
}

pub(crate) fn dl1001(cx: &Context<'_>, out: &mut Diagnostics) {
    for c in &cx.dockerfile.comments {
        if let Some(Pragma::Ignore(_)) = parse_pragma(&c.text) {
            out.at(c.line);
        }
    }
}

pub(crate) fn dl3000(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        if let Instruction::Workdir(dir) = &item.command.instruction {
            if !is_absolute(dir) {
                out.at(item.line);
            }
        }
    }
}

fn is_root(user: &str) -> bool {
    let user = unquote(user);
    let name = user.split(':').next().unwrap_or(user);
    name == "root" || name == "0"
}

pub(crate) fn dl3002(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        let last = stage
            .commands
            .iter()
            .rev()
            .find_map(|c| match &c.instruction {
                Instruction::User(u) => Some((c.span.start.line, u)),
                _ => None,
            });
        if let Some((line, user)) = last {
            if is_root(user) {
                out.at(line);
            }
        }
    }
}

/// An image reference split as language-docker does: name, tag, digest.
pub(crate) struct ImageRef<'a> {
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

pub(crate) fn split_image(image: &str) -> ImageRef<'_> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    // A `:` inside `${...}` is a modifier, not the tag separator.
    let mut depth = 0usize;
    let mut colon = None;
    let tail = &rest[slash..];
    for (i, c) in tail.char_indices() {
        match c {
            '{' if tail[..i].ends_with('$') => depth += 1,
            '}' if depth > 0 => depth -= 1,
            ':' if depth == 0 => colon = Some(i),
            _ => {}
        }
    }
    match colon {
        Some(i) => ImageRef {
            tag: Some(&rest[slash + i + 1..]),
            digest,
        },
        None => ImageRef { tag: None, digest },
    }
}

pub(crate) fn dl3006(cx: &Context<'_>, out: &mut Diagnostics) {
    for (i, stage) in cx.dockerfile.stages.iter().enumerate() {
        let image = &stage.base().image;
        let r = split_image(image);
        if r.tag.is_some() || r.digest.is_some() || image == "scratch" || image.starts_with('$') {
            continue;
        }
        if cx.stage_named(image, i).is_some() {
            continue;
        }
        out.at(stage.from.span.start.line);
    }
}

pub(crate) fn dl3007(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        let r = split_image(&stage.base().image);
        if r.tag == Some("latest") && r.digest.is_none() {
            out.at(stage.from.span.start.line);
        }
    }
}

pub(crate) fn dl3011(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        if let Instruction::Expose(ports) = &item.command.instruction {
            let bad = ports.iter().any(|p| {
                let p = p.split('/').next().unwrap_or(p);
                p.split('-')
                    .any(|n| n.parse::<u64>().map(|n| n > 65535).unwrap_or(false))
            });
            if bad {
                out.at(item.line);
            }
        }
    }
}

pub(crate) fn dl3012(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        let mut seen = false;
        for c in &stage.commands {
            if matches!(c.instruction, Instruction::Healthcheck(_)) {
                if seen {
                    out.at(c.span.start.line);
                }
                seen = true;
            }
        }
    }
}

const ARCHIVES: [&str; 15] = [
    ".tar", ".Z", ".bz2", ".gz", ".lz", ".lzma", ".tZ", ".tb2", ".tbz", ".tbz2", ".tgz", ".tlz",
    ".tpz", ".txz", ".xz",
];

pub(crate) fn is_archive(path: &str) -> bool {
    ARCHIVES.iter().any(|e| path.ends_with(e))
}

fn is_url(path: &str) -> bool {
    path.starts_with("http://") || path.starts_with("https://")
}

pub(crate) fn dl3020(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        if let Instruction::Add(add) = &item.command.instruction {
            let bad = add.sources.iter().any(|s| match s {
                CopySource::Path(p) => {
                    let p = unquote(p);
                    !is_archive(p) && !is_url(p)
                }
                CopySource::Heredoc(_) => false,
            });
            if bad {
                out.at(item.line);
            }
        }
    }
}

pub(crate) fn dl3021(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        if let Instruction::Copy(copy) = &item.command.instruction {
            if copy.sources.len() >= 2 && !unquote(&copy.dest).ends_with('/') {
                out.at(item.line);
            }
        }
    }
}

pub(crate) fn dl3022(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        let (Instruction::Copy(copy), Some(stage)) = (&item.command.instruction, item.stage) else {
            continue;
        };
        let Some(from) = &copy.from else { continue };
        if from.contains(':') {
            continue;
        }
        let defined = cx.dockerfile.stages[..=stage]
            .iter()
            .any(|s| s.name() == Some(from.to_ascii_lowercase().as_str()));
        let index = from.parse::<usize>().map(|n| n <= stage).unwrap_or(false);
        if !defined && !index {
            out.at(item.line);
        }
    }
}

pub(crate) fn dl3023(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        let (Instruction::Copy(copy), Some(stage)) = (&item.command.instruction, item.stage) else {
            continue;
        };
        let name = cx.dockerfile.stages[stage].name();
        if let (Some(from), Some(name)) = (&copy.from, name) {
            if from.eq_ignore_ascii_case(name) {
                out.at(item.line);
            }
        }
    }
}

pub(crate) fn dl3024(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut seen = HashSet::new();
    for stage in &cx.dockerfile.stages {
        if let Some(name) = &stage.base().stage_name_as_written {
            if !seen.insert(name.clone()) {
                out.at(stage.from.span.start.line);
            }
        }
    }
}

pub(crate) fn dl3025(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        let shell_form = match &item.command.instruction {
            Instruction::Cmd(c) | Instruction::Entrypoint(c) => !c.is_exec(),
            Instruction::Healthcheck(Healthcheck::Cmd(h)) => {
                h.test.first().map(String::as_str) == Some("CMD-SHELL")
            }
            _ => false,
        };
        if shell_form {
            out.at(item.line);
        }
    }
}

/// The registry part of an image reference (`docker.io` when none).
fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

fn registry_allowed(registry: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        if p == "*" {
            true
        } else if let Some(suffix) = p.strip_prefix('*') {
            registry.ends_with(suffix)
        } else if let Some(prefix) = p.strip_suffix('*') {
            registry.starts_with(prefix)
        } else {
            p == registry
                || (registry == "docker.io" && (p == "hub.docker.com" || p == "docker.io"))
        }
    })
}

pub(crate) fn dl3026(cx: &Context<'_>, out: &mut Diagnostics) {
    let trusted = &cx.config.trusted_registries;
    if trusted.is_empty() {
        return;
    }
    for (i, stage) in cx.dockerfile.stages.iter().enumerate() {
        let image = &stage.base().image;
        if image == "scratch" || cx.stage_named(image, i).is_some() {
            continue;
        }
        if !registry_allowed(registry_of(image), trusted) {
            out.at(stage.from.span.start.line);
        }
    }
}

pub(crate) fn dl3029(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        if let Some(p) = &stage.base().platform {
            if !p.contains("BUILDPLATFORM") && !p.contains("TARGETPLATFORM") {
                out.at(stage.from.span.start.line);
            }
        }
    }
}

/// Names of ARGs and ENVs defined so far, for DL3044.
pub(crate) fn dl3044(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut defined: HashSet<String> = HashSet::new();
    for item in own_items(cx) {
        match &item.command.instruction {
            Instruction::Arg(args) => {
                defined.extend(args.iter().map(|a| a.name.clone()));
            }
            Instruction::Env(env) => {
                let mut bad = false;
                for (i, pair) in env.pairs.iter().enumerate() {
                    for earlier in &env.pairs[..i] {
                        let k = &earlier.key;
                        if k != &pair.key && !defined.contains(k) && references(&pair.value, k) {
                            bad = true;
                        }
                    }
                }
                if bad {
                    out.at(item.line);
                }
                defined.extend(env.pairs.iter().map(|p| p.key.clone()));
            }
            _ => {}
        }
    }
}

/// True when `text` uses `$name` or `${name...}` as a whole variable name.
fn references(text: &str, name: &str) -> bool {
    let braced = format!("${{{name}");
    let bare = format!("${name}");
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (at, _) in text.match_indices(&braced) {
        let after = text[at + braced.len()..].chars().next();
        if !after.is_some_and(ident) {
            return true;
        }
    }
    for (at, _) in text.match_indices(&bare) {
        let after = text[at + bare.len()..].chars().next();
        if !after.is_some_and(ident) {
            return true;
        }
    }
    false
}

pub(crate) fn dl3045(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut workdir = vec![false; cx.dockerfile.stages.len()];
    for item in own_items(cx) {
        let Some(stage) = item.stage else { continue };
        match &item.command.instruction {
            Instruction::From(_) => {
                if let Some(p) = cx.parent(stage) {
                    workdir[stage] = workdir[p];
                }
            }
            Instruction::Workdir(_) => workdir[stage] = true,
            Instruction::Copy(copy) if !workdir[stage] && !is_absolute(&copy.dest) => {
                out.at(item.line);
            }
            _ => {}
        }
    }
}

fn valid_label_key(key: &str) -> bool {
    let key = unquote(key);
    let mut chars = key.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let last = key.chars().last().unwrap_or(first);
    first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._/-".contains(c))
        && !["com.docker.", "io.docker.", "org.dockerproject."]
            .iter()
            .any(|ns| key.starts_with(ns))
        && !key.contains("..")
        && !key.contains("--")
}

pub(crate) fn dl3048(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        if let Instruction::Label(labels) = &item.command.instruction {
            if labels.pairs.iter().any(|p| !valid_label_key(&p.key)) {
                out.at(item.line);
            }
        }
    }
}

pub(crate) fn dl3057(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut has = vec![false; cx.dockerfile.stages.len()];
    for (i, stage) in cx.dockerfile.stages.iter().enumerate() {
        has[i] = cx.parent(i).map(|p| has[p]).unwrap_or(false)
            || stage
                .commands
                .iter()
                .any(|c| matches!(c.instruction, Instruction::Healthcheck(_)));
        if !has[i] {
            out.at(stage.from.span.start.line);
        }
    }
}

pub(crate) fn dl3063(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        if matches!(stage.name(), Some("scratch" | "context")) {
            out.at(stage.from.span.start.line);
        }
    }
}

const SENSITIVE_NAMES: [&str; 48] = [
    "ACCESS_TOKEN",
    "APPLICATION_KEY",
    "APP_SECRET",
    "AUTH_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "BITTREX_API_KEY",
    "BITTREX_API_SECRET",
    "CF_PASSWORD",
    "CF_USERNAME",
    "CIRCLE_TOKEN",
    "CI_DEPLOY_PASSWORD",
    "CI_DEPLOY_USER",
    "DOCKERHUB_PASSWORD",
    "DOCKER_EMAIL",
    "DOCKER_PASSWORD",
    "DOCKER_USERNAME",
    "FACEBOOK_ACCESS_TOKEN",
    "FACEBOOK_APP_ID",
    "FACEBOOK_APP_SECRET",
    "FIREBASE_API_TOKEN",
    "FIREBASE_TOKEN",
    "FOSSA_API_KEY",
    "GH_ENTERPRISE_TOKEN",
    "GH_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "GITHUB_TOKEN",
    "HEROKU_API_KEY",
    "HEROKU_API_USER",
    "NPM_AUTH_TOKEN",
    "NPM_TOKEN",
    "OKTA_AUTHN_GROUPID",
    "OKTA_CLIENT_ORGURL",
    "OKTA_CLIENT_TOKEN",
    "OKTA_OAUTH2_CLIENTID",
    "OKTA_OAUTH2_CLIENTSECRET",
    "OPENAI_API_KEY",
    "OS_PASSWORD",
    "OS_USERNAME",
    "POSTGRES_PASSWORD",
    "SLACK_TOKEN",
    "STRIPE_API_KEY",
    "STRIPE_DEVICE_NAME",
    "TRAVIS_OS_NAME",
    "TRAVIS_SECURE_ENV_VARS",
    "TRAVIS_SUDO",
    "VAULT_CLIENT_KEY",
    "VAULT_TOKEN",
];

const SUSPICIOUS: [&str; 7] = [
    "api_key",
    "client_key",
    "password",
    "private",
    "secret",
    "token",
    "username",
];

fn is_sensitive(name: &str) -> bool {
    SENSITIVE_NAMES.contains(&name.to_ascii_uppercase().as_str())
        || SUSPICIOUS
            .iter()
            .any(|s| name.to_ascii_lowercase().contains(s))
}

pub(crate) fn dl3064(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in cx.items() {
        let bad = match &item.command.instruction {
            Instruction::Arg(args) => args.iter().any(|a| is_sensitive(&a.name)),
            Instruction::Env(env) => env.pairs.iter().any(|p| is_sensitive(&p.key)),
            _ => false,
        };
        if bad {
            out.at(item.line);
        }
    }
}

pub(crate) fn dl3065(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        if let Some(p) = &stage.base().platform {
            if p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
                out.at(stage.from.span.start.line);
            }
        }
    }
}

pub(crate) fn dl3066(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut args: HashSet<String> = HashSet::new();
    for item in own_items(cx) {
        match &item.command.instruction {
            Instruction::Arg(a) => args.extend(a.iter().map(|a| a.name.clone())),
            Instruction::User(user) => {
                let user = unquote(user);
                let uid = user.split(':').next().unwrap_or(user);
                if uid.chars().all(|c| c.is_ascii_digit()) && !uid.is_empty() {
                    continue;
                }
                if let Some(var) = uid.strip_prefix('$') {
                    let var = var.trim_start_matches('{').trim_end_matches('}');
                    if args.contains(var) {
                        continue;
                    }
                }
                out.at(item.line);
            }
            _ => {}
        }
    }
}

pub(crate) fn dl3067(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        if let Instruction::Copy(copy) = &item.command.instruction {
            if copy.from.is_some()
                && matches!(copy.sources.as_slice(), [CopySource::Path(p)] if unquote(p) == "/")
                && unquote(&copy.dest) == "/"
            {
                out.at(item.line);
            }
        }
    }
}

pub(crate) fn dl4000(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in own_items(cx) {
        if matches!(item.command.instruction, Instruction::Maintainer(_)) {
            out.at(item.line);
        }
    }
}

fn repeated_in_stage(cx: &Context<'_>, out: &mut Diagnostics, cmd: bool) {
    for stage in &cx.dockerfile.stages {
        let mut seen = false;
        for c in &stage.commands {
            let hit = match &c.instruction {
                Instruction::Cmd(_) => cmd,
                Instruction::Entrypoint(_) => !cmd,
                _ => false,
            };
            if hit {
                if seen {
                    out.at(c.span.start.line);
                }
                seen = true;
            }
        }
    }
}

pub(crate) fn dl4003(cx: &Context<'_>, out: &mut Diagnostics) {
    repeated_in_stage(cx, out, true);
}

pub(crate) fn dl4004(cx: &Context<'_>, out: &mut Diagnostics) {
    repeated_in_stage(cx, out, false);
}
