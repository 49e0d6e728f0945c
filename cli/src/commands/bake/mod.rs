//! `kiln bake`: buildx bake's files (`docker-bake.hcl`, `.json`, compose
//! files) and flags. The files are read into one [`model::Definition`]
//! (later files over earlier ones), `inherits` and `--set` applied, then
//! each selected target becomes the flags of one `kiln build` and goes
//! through its phases; all targets' graphs are solved as one
//! ([`crate::commands::build::multi`]).

mod compose;
mod hcl;
mod model;

use crate::commands::build::multi::{Planned, Session};
use crate::commands::build::BuildArgs;
use crate::global::GlobalArgs;
use crate::progress::ProgressMode;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser};
use model::{Definition, Target};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest bake file read.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most `-f` files.
const MAX_FILES: usize = 64;

/// The files buildx reads, in order, when no `-f` is given.
const DEFAULT_FILES: [&str; 8] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
    "docker-bake.json",
    "docker-bake.hcl",
    "docker-bake.override.json",
    "docker-bake.override.hcl",
];

/// Arguments of `kiln bake`.
#[derive(Debug, Args)]
pub struct BakeArgs {
    /// Targets or groups to build (default: the `default` group).
    targets: Vec<String>,
    /// A bake file (repeatable; later files override earlier ones):
    /// HCL, JSON or a compose file. Default: buildx's file names in the
    /// current directory.
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// Override a target's value (repeatable): `TARGET.KEY=VALUE`, with
    /// `*` matching several targets; `args.K=V`, `labels.K=V`,
    /// `contexts.K=V` set one entry.
    #[arg(long = "set", value_name = "TARGET.KEY=VALUE")]
    set: Vec<String>,
    /// Print the resolved targets as buildx's JSON and build nothing.
    #[arg(long)]
    print: bool,
    /// Push every target's image (`--set *.output=type=registry`).
    #[arg(long)]
    push: bool,
    /// Load every target's image into Docker
    /// (`--set *.output=type=docker`).
    #[arg(long)]
    load: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// Do not use the cache for any target.
    #[arg(long)]
    no_cache: bool,
    /// Resolve every base image in its registry again.
    #[arg(long)]
    pull: bool,
    /// Grant a privilege to every target (repeatable or comma-separated):
    /// network.host, security.insecure.
    #[arg(long, value_delimiter = ',')]
    allow: Vec<String>,
}

/// `kiln build`'s flags, parsed from the words a target makes.
#[derive(Parser)]
#[command(no_binary_name = true)]
struct AsBuild {
    #[command(flatten)]
    args: BuildArgs,
}

/// Runs `kiln bake`.
pub fn bake(global: &GlobalArgs, args: &BakeArgs) -> Result<()> {
    let mut def = load(&args.files)?;
    let (selected, groups) = def.select(&args.targets)?;
    def.resolve_inherits(&selected)?;
    def.apply_sets(&args.set, &selected)?;
    if args.print {
        use std::io::Write;
        // As buildx shows them: `--push` and `--load` are outputs.
        for name in &selected {
            if let Some(t) = def.targets.get_mut(name) {
                let outputs = t.output.get_or_insert_with(Vec::new);
                for (on, output) in [(args.push, "type=registry"), (args.load, "type=docker")] {
                    if on && !outputs.iter().any(|o| o == output) {
                        outputs.push(output.into());
                    }
                }
                if outputs.is_empty() {
                    t.output = None;
                }
            }
        }
        let json = def.print_json(&selected, &groups);
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(());
    }
    let order = build_order(&mut def, &selected)?;
    let session = Session::open(global, args.progress, args.pull)?;
    let mut planned: Vec<Planned> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for name in &order {
        let target = def
            .targets
            .get(name)
            .ok_or_else(|| anyhow!("failed to find target {name:?}"))?
            .clone()
            .with_defaults();
        let exported = selected.contains(name);
        let inline =
            session
                .staging()
                .join(format!("{}-{}.Dockerfile", planned.len(), sanitize(name)));
        let words = build_words(name, &target, args, exported, &inline)?;
        let build = AsBuild::try_parse_from(&words)
            .map_err(|e| anyhow!("target {name:?}: {}", first_line(&e.to_string())))?;
        let mut links = BTreeMap::new();
        for (ctx, value) in target.contexts.iter().flatten() {
            if let Some(linked) = value.strip_prefix("target:") {
                let i = index.get(linked).ok_or_else(|| {
                    anyhow!("target {name:?}: contexts.{ctx}: no target {linked:?}")
                })?;
                links.insert(ctx.clone(), planned[*i].linked());
            }
        }
        // A target only linked is solved through the targets reading it.
        let p = session
            .plan(name, &build.args, &links)
            .with_context(|| format!("target {name:?}"))?;
        index.insert(name.clone(), planned.len());
        planned.push(p);
    }
    let exported: Vec<Planned> = planned
        .into_iter()
        .filter(|p| selected.contains(&p.name))
        .collect();
    session.build_all(&exported)
}

/// The first line of a clap message, without its `error: ` prefix.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Reads the bake files: `files`, else buildx's default names that
/// exist here; each read by its extension (or, without one, as HCL).
fn load(files: &[PathBuf]) -> Result<Definition> {
    if files.len() > MAX_FILES {
        bail!("-f: more than {MAX_FILES} files");
    }
    let files: Vec<PathBuf> = if files.is_empty() {
        let found: Vec<PathBuf> = DEFAULT_FILES
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            bail!(
                "no bake file here: looked for {} (give one with -f)",
                DEFAULT_FILES.join(", ")
            );
        }
        found
    } else {
        files.to_vec()
    };
    let mut def = Definition::default();
    for path in &files {
        let name = path.display().to_string();
        let text = read_bounded(path).with_context(|| format!("-f {name}"))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let one = match ext.as_str() {
            "json" => json(&name, &text)?,
            "yml" | "yaml" => {
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let dir = dir.canonicalize().unwrap_or(dir.to_path_buf());
                compose::parse(&name, &text, &dir)?
            }
            _ if file_name.contains("compose") => compose::parse(&name, &text, Path::new("."))?,
            _ => hcl::parse(&name, &text)?,
        };
        def.merge(one).with_context(|| format!("-f {name}"))?;
    }
    Ok(def)
}

/// A file's text, refused past [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        bail!("larger than {} MiB", MAX_FILE_BYTES >> 20);
    }
    Ok(text)
}

/// A JSON bake file: `{"variable": {...}, "group": {...}, "target":
/// {...}}`; `${...}` in target strings is evaluated with the variables.
fn json(name: &str, text: &str) -> Result<Definition> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| anyhow!("{name}:{}:{}: {e}", e.line(), e.column()))?;
    let serde_json::Value::Object(top) = value else {
        bail!("{name}: expected an object with group and target");
    };
    let vars = match top.get("variable") {
        Some(serde_json::Value::Object(v)) => hcl::json_variables(name, v)?,
        Some(_) => bail!("{name}: variable: expected an object"),
        None => Vec::new(),
    };
    let mut def = Definition::default();
    for (key, value) in top {
        match (key.as_str(), value) {
            ("target", serde_json::Value::Object(targets)) => {
                for (t, fields) in targets {
                    let serde_json::Value::Object(fields) = fields else {
                        bail!("{name}: target {t:?}: expected an object");
                    };
                    let fields = fields
                        .into_iter()
                        .map(|(k, v)| hcl::interpolate(v, &vars).map(|v| (k, v)))
                        .collect::<Result<_>>()
                        .map_err(|e| anyhow!("{name}: target {t:?}: {e}"))?;
                    let target = Target::from_json(fields)
                        .map_err(|e| anyhow!("{name}: target {t:?}: {e}"))?;
                    def.targets.insert(t, target);
                }
            }
            ("group", serde_json::Value::Object(groups)) => {
                for (g, fields) in groups {
                    let group = serde_json::from_value(fields)
                        .map_err(|e| anyhow!("{name}: group {g:?}: {e}"))?;
                    def.groups.insert(g, group);
                }
            }
            ("variable" | "function", _) => {}
            (other, _) => bail!("{name}: unknown key {other:?}"),
        }
    }
    Ok(def)
}

/// The targets in the order they are planned: every `target:` context
/// before the target reading it (an iterative walk; cycles refused).
fn build_order(def: &mut Definition, selected: &[String]) -> Result<Vec<String>> {
    let links = |def: &Definition, name: &str| -> Vec<String> {
        def.targets
            .get(name)
            .and_then(|t| t.contexts.as_ref())
            .map(|c| {
                c.values()
                    .filter_map(|v| v.strip_prefix("target:").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut order: Vec<String> = Vec::new();
    for start in selected {
        let mut stack: Vec<(String, bool)> = vec![(start.clone(), false)];
        let mut path: Vec<String> = Vec::new();
        while let Some((name, expanded)) = stack.pop() {
            if expanded {
                path.pop();
                if !order.contains(&name) {
                    order.push(name);
                }
                continue;
            }
            if order.contains(&name) {
                continue;
            }
            if path.contains(&name) {
                bail!(
                    "target {name:?}: target: contexts form a cycle ({} -> {name})",
                    path.join(" -> ")
                );
            }
            if !def.targets.contains_key(&name) {
                bail!(
                    "target {:?}: contexts: no target {name:?}",
                    path.last().unwrap_or(start)
                );
            }
            path.push(name.clone());
            if path.len() > model::MAX_TARGETS {
                bail!("target: contexts nest too deep");
            }
            def.resolve_inherits(std::slice::from_ref(&name))?;
            stack.push((name.clone(), true));
            for l in links(def, &name).into_iter().rev() {
                if path.contains(&l) {
                    bail!(
                        "target {l:?}: target: contexts form a cycle ({} -> {l})",
                        path.join(" -> ")
                    );
                }
                stack.push((l, false));
            }
        }
    }
    Ok(order)
}

/// The `kiln build` words of one target (a `dockerfile-inline` written
/// to `inline_path`). A target that is only read by others (`exported`
/// false) gets no outputs of its own.
fn build_words(
    name: &str,
    t: &Target,
    args: &BakeArgs,
    exported: bool,
    inline_path: &Path,
) -> Result<Vec<String>> {
    let mut w: Vec<String> = Vec::new();
    let mut flag = |f: &str, v: &str| {
        w.push(format!("--{f}={v}"));
    };
    let context = t.context.clone().unwrap_or_else(|| ".".into());
    let remote = context.contains("://") || context.starts_with("git@");
    if let Some(inline) = &t.dockerfile_inline {
        std::fs::write(inline_path, inline)
            .with_context(|| format!("target {name:?}: writing dockerfile-inline"))?;
        flag("file", &inline_path.display().to_string());
    } else if let Some(d) = &t.dockerfile {
        // buildx: the Dockerfile is relative to the context.
        let path = if remote || Path::new(d).is_absolute() {
            d.clone()
        } else {
            Path::new(&context).join(d).display().to_string()
        };
        flag("file", &path);
    }
    for (k, v) in t.args.iter().flatten() {
        flag("build-arg", &format!("{k}={v}"));
    }
    for (k, v) in t.labels.iter().flatten() {
        flag("label", &format!("{k}={v}"));
    }
    for (k, v) in t.contexts.iter().flatten() {
        if !v.starts_with("target:") {
            flag("build-context", &format!("{k}={v}"));
        }
    }
    for (k, v) in t.extra_hosts.iter().flatten() {
        for ip in v.split(',').filter(|s| !s.is_empty()) {
            flag("add-host", &format!("{k}={ip}"));
        }
    }
    let lists: [(&str, &Option<Vec<String>>); 7] = [
        ("cache-from", &t.cache_from),
        ("secret", &t.secret),
        ("ssh", &t.ssh),
        ("no-cache-filter", &t.no_cache_filter),
        ("allow", &t.entitlements),
        ("ulimit", &t.ulimits),
        ("attest", &t.attest),
    ];
    for (f, values) in lists {
        for v in values.iter().flatten() {
            flag(f, v);
        }
    }
    if let Some(p) = &t.platforms {
        if !p.is_empty() {
            flag("platform", &p.join(","));
        }
    }
    for (f, v) in [
        ("target", &t.target),
        ("network", &t.network),
        ("shm-size", &t.shm_size),
        ("call", &t.call),
    ] {
        if let Some(v) = v {
            flag(f, v);
        }
    }
    for a in &args.allow {
        flag("allow", a);
    }
    if exported {
        for v in t.tags.iter().flatten() {
            flag("tag", v);
        }
        for v in t.annotations.iter().flatten() {
            flag("annotation", v);
        }
        for v in t.cache_to.iter().flatten() {
            flag("cache-to", v);
        }
        for v in t.output.iter().flatten() {
            flag("output", v);
        }
        if args.load {
            flag("output", "type=docker");
        }
    }
    let switches = [
        ("--push", exported && args.push),
        ("--no-cache", args.no_cache || t.no_cache == Some(true)),
        ("--pull", args.pull || t.pull == Some(true)),
    ];
    for (name, on) in switches {
        if on {
            w.push(name.into());
        }
    }
    w.push("--".into());
    w.push(context);
    Ok(w)
}

/// A target name made safe for a file name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
