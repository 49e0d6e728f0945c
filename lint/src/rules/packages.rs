//! DL rules about package managers inside RUN (pinning, caches, `-y`).

use super::run::per_run;
use crate::context::Context;
use crate::diagnostic::Diagnostics;
use crate::run_script::Command;
use kiln_parser::instruction::{MountType, Run};
use kiln_parser::Instruction;
use std::collections::HashSet;

/// True when a RUN has a cache or tmpfs mount whose target contains `dir`.
fn has_cache_mount(run: &Run, dir: &str) -> bool {
    run.mounts.iter().any(|m| {
        matches!(m.mount.kind, MountType::Cache | MountType::Tmpfs)
            && mount_target(m).is_some_and(|t| t.contains(dir))
    })
}

fn mount_target(m: &kiln_parser::instruction::MountFlag) -> Option<String> {
    if let Some(t) = &m.mount.target {
        return Some(t.clone());
    }
    // Targets holding `$` are left unset by the parser; read the spec.
    m.spec.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        matches!(k.trim(), "target" | "dst" | "destination").then(|| v.to_string())
    })
}

/// Reports each RUN whose commands satisfy `bad`, unless `exempt` says the
/// RUN's mounts make it fine.
fn per_run_unless(
    cx: &Context<'_>,
    out: &mut Diagnostics,
    exempt: impl Fn(&Run) -> bool,
    bad: impl Fn(&Command) -> bool,
) {
    for (item, run, script) in cx.runs(true) {
        if !exempt(run) && script.commands().iter().any(&bad) {
            out.at(item.line);
        }
    }
}

fn is_apt_get_install(c: &Command) -> bool {
    c.is_with_any_arg("apt-get", &["install"])
}

pub(crate) fn dl3008(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        is_apt_get_install(c)
            && c.drop_flag_values(&["t", "target-release"])
                .args_no_flags()
                .iter()
                .filter(|a| **a != "install")
                .any(|p| !(p.contains('=') || p.contains('/') || p.ends_with(".deb")))
    });
}

pub(crate) fn dl3009(cx: &Context<'_>, out: &mut Diagnostics) {
    let stages = &cx.dockerfile.stages;
    let Some(last) = stages.len().checked_sub(1) else {
        return;
    };
    let last_from = &stages[last].base();
    for (item, run, script) in cx.runs(true) {
        let update = script.commands().iter().any(|c| {
            c.is_with_any_arg("apt-get", &["update"])
                || c.is_with_any_arg("apt", &["update"])
                || c.is_with_any_arg("aptitude", &["update"])
        });
        let cleanup = script
            .commands()
            .iter()
            .any(|c| c.is_with_any_arg("rm", &["-rf", "/var/lib/apt/lists/*"]));
        if !update || cleanup {
            continue;
        }
        if has_cache_mount(run, "/var/lib/apt/lists")
            || (has_cache_mount(run, "/var/lib/apt") && has_cache_mount(run, "/var/cache/apt"))
        {
            continue;
        }
        if kept_stage(cx, item.stage, last_from) {
            out.at(item.line);
        }
    }
}

/// True for the last stage (or one with the same FROM), and for stages a
/// FROM uses as its base (DL3009's and DL3060's scope).
fn kept_stage(
    cx: &Context<'_>,
    stage: Option<usize>,
    last_from: &kiln_parser::instruction::From,
) -> bool {
    let Some(stage) = stage else { return true };
    let base = cx.dockerfile.stages[stage].base();
    if base.image == last_from.image
        && base.stage_name == last_from.stage_name
        && base.platform == last_from.platform
    {
        return true;
    }
    match &base.stage_name {
        Some(name) => cx
            .dockerfile
            .stages
            .iter()
            .any(|s| s.base().image.eq_ignore_ascii_case(name)),
        None => false,
    }
}

const PIP_VALUE_FLAGS: [&str; 24] = [
    "abi",
    "b",
    "build",
    "e",
    "editable",
    "extra-index-url",
    "f",
    "find-links",
    "i",
    "index-url",
    "implementation",
    "no-binary",
    "only-binary",
    "platform",
    "prefix",
    "progress-bar",
    "proxy",
    "python-version",
    "root",
    "src",
    "t",
    "target",
    "trusted-host",
    "upgrade-strategy",
];

const VCS: [&str; 22] = [
    "git+file",
    "git+https",
    "git+ssh",
    "git+http",
    "git+git",
    "git",
    "hg+file",
    "hg+http",
    "hg+https",
    "hg+ssh",
    "hg+static-http",
    "svn",
    "svn+svn",
    "svn+http",
    "svn+https",
    "svn+ssh",
    "bzr+http",
    "bzr+https",
    "bzr+ssh",
    "bzr+sftp",
    "bzr+ftp",
    "bzr+lp",
];

/// `pip* install ...` or `python* -m pip install ...`.
fn is_pip_install(c: &Command) -> bool {
    let has_seq = |seq: &[&str]| {
        c.args
            .windows(seq.len())
            .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
    };
    (c.name.starts_with("pip") && c.has_arg("install"))
        || (c.name.starts_with("python") && has_seq(&["-m", "pip", "install"]))
}

fn pip_packages(c: &Command) -> Vec<String> {
    let dropped = c.drop_flag_values(&PIP_VALUE_FLAGS);
    let args = dropped.args_no_flags();
    args.iter()
        .skip_while(|a| **a != "install")
        .skip_while(|a| **a == "install")
        .map(|a| a.to_string())
        .collect()
}

fn pip_pinned(p: &str) -> bool {
    let vcs = VCS.iter().any(|s| p.starts_with(s));
    ["==", ">=", "<=", ">", "<", "!=", "~=", "==="]
        .iter()
        .any(|s| p.contains(s))
        || (vcs && p.contains('@'))
        || p.ends_with(".whl")
        || p.ends_with(".tar.gz")
        || (!vcs && p.contains('/'))
}

pub(crate) fn dl3013(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        is_pip_install(c)
            && !c.has_any_flag(&["constraint", "c"])
            && !pip_packages(c).iter().all(|p| pip_pinned(p))
            && !c.has_arg("--requirement")
            && !c.has_arg("-r")
            && !c.has_arg(".")
    });
}

pub(crate) fn dl3014(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        if !is_apt_get_install(c) {
            return false;
        }
        let flags = c.flags();
        let count = |n: &str| flags.iter().filter(|f| f.name == n).count();
        let yes = c.has_any_flag(&["y", "yes", "assume-yes"])
            || count("q") >= 2
            || count("quiet") >= 2
            || c.has_arg("-q=2");
        !yes
    });
}

pub(crate) fn dl3015(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        is_apt_get_install(c)
            && !c.has_flag("no-install-recommends")
            && !c.has_arg("APT::Install-Recommends=false")
    });
}

fn npm_pinned(p: &str) -> bool {
    if p.starts_with("git") {
        return p.contains('#');
    }
    if [".tar", ".tgz", ".tar.gz"].iter().any(|e| p.ends_with(e))
        || ["/", "./", "../", "~/"].iter().any(|s| p.starts_with(s))
    {
        return true;
    }
    match p.strip_prefix('@') {
        Some(scoped) => scoped.contains('@'),
        None => p.contains('@'),
    }
}

pub(crate) fn dl3016(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        if c.name != "npm" {
            return false;
        }
        let dropped = c.drop_flag_values(&["loglevel", "registry"]);
        let args = dropped.args_no_flags();
        match args.split_first() {
            Some((&"install", packages)) => packages.iter().any(|p| !npm_pinned(p)),
            _ => false,
        }
    });
}

pub(crate) fn dl3018(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        c.is_with_any_arg("apk", &["add"])
            && c.drop_flag_values(&["t", "virtual", "repository", "X"])
                .args_no_flags()
                .iter()
                .filter(|a| **a != "add")
                .any(|p| !(p.contains(['=', '~', '>', '<']) || p.ends_with(".apk")))
    });
}

pub(crate) fn dl3019(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run_unless(
        cx,
        out,
        |run| has_cache_mount(run, "/var/cache/apk"),
        |c| c.is_with_any_arg("apk", &["add"]) && !c.has_flag("no-cache"),
    );
}

pub(crate) fn dl3028(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        if c.name != "gem" || !(c.has_arg("install") || c.has_arg("i")) {
            return false;
        }
        if c.has_any_flag(&["v", "version"]) {
            return false;
        }
        let mut gems = Vec::new();
        let mut skip_next = false;
        for a in c.args.iter().take_while(|a| *a != "--") {
            if skip_next {
                skip_next = false;
                continue;
            }
            if a.starts_with('-') {
                skip_next = true;
                continue;
            }
            if a != "install" && a != "i" {
                gems.push(a);
            }
        }
        gems.iter().any(|g| !g.contains(':'))
    });
}

fn is_yum_install(c: &Command) -> bool {
    c.is_with_any_arg("yum", &["install", "groupinstall", "localinstall"])
}

pub(crate) fn dl3030(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        is_yum_install(c) && !c.has_any_flag(&["y", "assumeyes"])
    });
}

/// True when some command matching `install` comes before every command
/// matching `clean` (none after it).
fn install_without_later_clean(
    commands: &[Command],
    install: impl Fn(&Command) -> bool,
    clean: impl Fn(&Command) -> bool,
) -> bool {
    match commands.iter().rposition(&install) {
        Some(i) => !commands[i + 1..].iter().any(clean),
        None => false,
    }
}

pub(crate) fn dl3032(cx: &Context<'_>, out: &mut Diagnostics) {
    for (item, _, script) in cx.runs(true) {
        if install_without_later_clean(
            script.commands(),
            |c| c.is_with_any_arg("yum", &["install"]),
            |c| {
                (c.is_with_any_arg("yum", &["clean"]) && c.has_arg("all"))
                    || (c.name == "rm" && c.has_arg("/var/cache/yum/*"))
            },
        ) {
            out.at(item.line);
        }
    }
}

/// `name-1.2.3` style (yum/dnf pinning): after the first `-`, some part
/// starts with a digit and all parts are version characters.
/// yum/dnf pinning of one package: `simple` is the flattened word, `raw`
/// the word as written, `known` the variables that may carry a version
/// (global ARGs and the stage's ENVs).
fn rpm_pinned_word(simple: &str, raw: &str, known: &HashSet<String>) -> bool {
    if raw.contains('$') {
        return super::variables(raw).iter().any(|v| known.contains(v));
    }
    rpm_pinned(simple)
}

fn rpm_pinned(p: &str) -> bool {
    if p.ends_with(".rpm") {
        return true;
    }
    let Some((_, rest)) = p.split_once('-') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('-').collect();
    parts.iter().all(|part| {
        part.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".~^_:+".contains(c))
    }) && parts
        .iter()
        .any(|part| part.chars().next().is_some_and(|c| c.is_ascii_digit()))
}

/// The (flattened, as written) words after the install subcommand.
fn rpm_packages<'c>(c: &'c Command, sub: &[&str]) -> Vec<(&'c str, &'c str)> {
    let words: Vec<(&str, &str)> = c
        .args
        .iter()
        .zip(&c.raw_args)
        .filter(|(a, _)| !crate::run_script::is_flag_word(a))
        .map(|(a, r)| (a.as_str(), r.as_str()))
        .collect();
    let Some(i) = words.iter().position(|(a, _)| sub.contains(a)) else {
        return Vec::new();
    };
    words[i + 1..].to_vec()
}

/// Global ARG names plus ENV names of `stage` and the stages it is built on.
fn version_vars(cx: &Context<'_>, stage: Option<usize>) -> HashSet<String> {
    let mut known = HashSet::new();
    for c in &cx.dockerfile.global_args {
        if let Instruction::Arg(args) = &c.instruction {
            known.extend(args.iter().map(|a| a.name.clone()));
        }
    }
    if let Some(stage) = stage {
        for s in cx.lineage(stage) {
            for c in &cx.dockerfile.stages[s].commands {
                if let Instruction::Env(env) = &c.instruction {
                    known.extend(env.pairs.iter().map(|p| p.key.clone()));
                }
            }
        }
    }
    known
}

fn rpm_rule(cx: &Context<'_>, out: &mut Diagnostics, is_manager: fn(&Command) -> bool) {
    for (item, _, script) in cx.runs(true) {
        let known = version_vars(cx, item.stage);
        let bad = script.commands().iter().any(|c| {
            is_manager(c)
                && rpm_packages(c, &["install", "groupinstall", "localinstall"])
                    .iter()
                    .any(|(p, raw)| !rpm_pinned_word(p, raw, &known))
        });
        if bad {
            out.at(item.line);
        }
    }
}

pub(crate) fn dl3033(cx: &Context<'_>, out: &mut Diagnostics) {
    rpm_rule(cx, out, |c| c.name == "yum" && !c.has_arg("module"));
}

const ZYPPER_INSTALL: [&str; 7] = [
    "install",
    "in",
    "remove",
    "rm",
    "source-install",
    "si",
    "patch",
];

pub(crate) fn dl3034(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        c.is_with_any_arg("zypper", &ZYPPER_INSTALL)
            && !c.has_any_flag(&["n", "non-interactive", "no-confirm", "y"])
    });
}

pub(crate) fn dl3035(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        c.is_with_any_arg("zypper", &["dist-upgrade", "dup"])
    });
}

pub(crate) fn dl3036(cx: &Context<'_>, out: &mut Diagnostics) {
    for (item, run, script) in cx.runs(true) {
        if has_cache_mount(run, "/var/cache/zypp") {
            continue;
        }
        if install_without_later_clean(
            script.commands(),
            |c| c.is_with_any_arg("zypper", &["install", "in"]),
            |c| c.is_with_any_arg("zypper", &["clean", "cc"]),
        ) {
            out.at(item.line);
        }
    }
}

pub(crate) fn dl3037(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        if c.name != "zypper" {
            return false;
        }
        rpm_packages(c, &["install", "in"])
            .iter()
            .any(|(p, _)| !(p.contains(['=', '>', '<']) || p.ends_with(".rpm")))
    });
}

fn is_dnf(c: &Command) -> bool {
    c.name == "dnf" || c.name == "microdnf"
}

pub(crate) fn dl3038(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        is_dnf(c)
            && c.args
                .iter()
                .any(|a| ["install", "groupinstall", "localinstall"].contains(&a.as_str()))
            && !c.has_any_flag(&["y", "assumeyes"])
    });
}

pub(crate) fn dl3040(cx: &Context<'_>, out: &mut Diagnostics) {
    const INSTALL: [&str; 8] = [
        "install",
        "in",
        "upgrade",
        "up",
        "upgrade-minimal",
        "up-min",
        "reinstall",
        "rei",
    ];
    for (item, run, script) in cx.runs(true) {
        if has_cache_mount(run, "/var/cache/libdnf5") || has_cache_mount(run, ".cache/libdnf5") {
            continue;
        }
        if install_without_later_clean(
            script.commands(),
            |c| is_dnf(c) && c.args.iter().any(|a| INSTALL.contains(&a.as_str())),
            |c| {
                (is_dnf(c) && c.has_arg("clean") && c.has_arg("all"))
                    || (c.name == "rm"
                        && c.args.iter().any(|a| a.starts_with("/var/cache/libdnf5")))
            },
        ) {
            out.at(item.line);
        }
    }
}

pub(crate) fn dl3041(cx: &Context<'_>, out: &mut Diagnostics) {
    rpm_rule(cx, out, |c| {
        is_dnf(c) && !c.has_arg("module") && !c.has_arg("group")
    });
}

fn truthy(v: &str) -> bool {
    let v = super::instructions::unquote(v.trim());
    ["1", "true", "on", "yes"]
        .iter()
        .any(|t| v.eq_ignore_ascii_case(t))
}

pub(crate) fn dl3042(cx: &Context<'_>, out: &mut Diagnostics) {
    let stages = cx.dockerfile.stages.len();
    let mut no_cache_env = vec![false; stages];
    for item in cx.items() {
        let Some(stage) = item.stage else { continue };
        match &item.command.instruction {
            Instruction::From(_) => {
                no_cache_env[stage] = cx.parent(stage).is_some_and(|p| no_cache_env[p]);
            }
            Instruction::Env(env) if !item.onbuild => {
                for p in &env.pairs {
                    if p.key == "PIP_NO_CACHE_DIR" {
                        no_cache_env[stage] = truthy(&p.value);
                    }
                }
            }
            Instruction::Run(run) => {
                if no_cache_env[stage] || has_cache_mount(run, ".cache/pip") {
                    continue;
                }
                let text = crate::run_text::run_text(run);
                if text
                    .split_whitespace()
                    .any(|w| w.strip_prefix("PIP_NO_CACHE_DIR=").is_some_and(truthy))
                {
                    continue;
                }
                let Some(script) = cx.script(item.command) else {
                    continue;
                };
                let bad = script.commands().iter().any(|c| {
                    is_pip_install(c)
                        && !c.has_arg("--no-cache-dir")
                        && !c.name.contains("pipx")
                        && !c.name.contains("pipenv")
                        && !c.has_arg("pipx")
                        && !c.has_arg("pipenv")
                });
                if bad {
                    out.at(item.line);
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn dl3060(cx: &Context<'_>, out: &mut Diagnostics) {
    let stages = &cx.dockerfile.stages;
    let Some(last) = stages.len().checked_sub(1) else {
        return;
    };
    let last_from = stages[last].base();
    for (item, run, script) in cx.runs(true) {
        if has_cache_mount(run, ".cache/yarn") {
            continue;
        }
        if install_without_later_clean(
            script.commands(),
            |c| c.is_with_any_arg("yarn", &["install"]),
            |c| c.name == "yarn" && c.has_arg("cache") && c.has_arg("clean"),
        ) && kept_stage(cx, item.stage, last_from)
        {
            out.at(item.line);
        }
    }
}

fn go_pinned(p: &str) -> bool {
    if p == "." || p.starts_with('/') || p.starts_with("./") || p.starts_with("../") {
        return true;
    }
    match p.rsplit_once('@') {
        Some((_, v)) => v != "latest" && v != "none" && !v.is_empty(),
        None => false,
    }
}

pub(crate) fn dl3062(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        if c.name != "go" {
            return false;
        }
        let args = c.args_no_flags();
        match args.first() {
            Some(&"install") | Some(&"get") => args
                .iter()
                .filter(|a| !["tool", "install", "get"].contains(*a))
                .any(|p| !go_pinned(p)),
            Some(&"run") => args.get(1).is_some_and(|p| !go_pinned(p)),
            _ => false,
        }
    });
}
