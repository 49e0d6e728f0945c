//! `kiln diff A B`: the files added, removed and changed from A to B, two
//! images or layers read as tar streams (nothing unpacked).
//!
//! A path is changed when its type, content (size, or the sha256 of its
//! content computed while the tar streams by), mode, owner or link target
//! differ; directories compare by type, mode and owner only.

use super::dive::analysis::{compare, Budget, Compared, Status, Tree};
use super::dive::{analysis, human_bytes, source};
use crate::global::GlobalArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::HashSet;
use std::io::Write;

/// Arguments of `kiln diff`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each side is one of:
  IMAGE              an image (a store name or digest, docker://REF,
                     oci-layout://DIR[:TAG|@DIGEST], docker-archive://FILE):
                     its whole filesystem
  IMAGE@layer:N      the image's filesystem after its layer N (0 is the base layer)
  sha256:DIGEST      one layer blob in the store: the files that layer holds

Examples:
  kiln diff app:1 app:2
  kiln diff app:1@layer:2 app:1@layer:3     (what layer 3 changed)")]
pub struct DiffArgs {
    /// The older side.
    a: String,
    /// The newer side.
    b: String,
    /// Read plain names from their registry rather than the store.
    #[arg(long)]
    remote: bool,
    /// The platform to compare of multi-platform images.
    #[arg(long)]
    platform: Option<String>,
    /// Print JSON: {"added": [...], "removed": [...], "changed": [...]}.
    #[arg(long)]
    json: bool,
}

/// Reads one side into its merged tree.
fn side(global: &GlobalArgs, args: &DiffArgs, text: &str) -> Result<Tree> {
    let budget = &mut Budget::image();
    let platform = args.platform.as_deref();
    let (image, count) = match text.rsplit_once("@layer:") {
        Some((name, n)) => {
            let n: usize = n
                .parse()
                .with_context(|| format!("{text}: the layer after @layer: must be a number"))?;
            let image = source::open(global, name, args.remote, platform)?;
            if n >= image.layers.len() {
                bail!(
                    "{text}: {name} has {} layers (0 to {})",
                    image.layers.len(),
                    image.layers.len().saturating_sub(1)
                );
            }
            (image, Some(n + 1))
        }
        None => match source::open(global, text, args.remote, platform) {
            Ok(image) => (image, None),
            Err(err) => match source::open_layer_blob(global, text)? {
                Some(layer) => (layer, None),
                None => return Err(err),
            },
        },
    };
    let mut tree = Tree::new();
    for changes in image.read(global, count, true, budget)? {
        analysis::apply(&mut tree, &changes);
    }
    Ok(tree)
}

/// Runs `kiln diff`.
pub fn diff(global: &GlobalArgs, args: &DiffArgs) -> Result<()> {
    let a = side(global, args, &args.a)?;
    let b = side(global, args, &args.b)?;
    let compared = compare(&a, &b, &HashSet::new(), false);
    let mut out = std::io::stdout().lock();
    if args.json {
        let pick = |status: Status| -> Vec<serde_json::Value> {
            compared
                .iter()
                .filter(|c| c.status == status)
                .map(json_of)
                .collect()
        };
        let value = serde_json::json!({
            "added": pick(Status::Added),
            "removed": pick(Status::Removed),
            "changed": pick(Status::Changed),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let rows: Vec<[String; 3]> = compared
        .iter()
        .map(|c| {
            let size = match (&c.old, &c.new) {
                (Some(o), Some(n)) if o.size != n.size => {
                    format!("{} → {}", human_bytes(o.size), human_bytes(n.size))
                }
                (_, Some(e)) | (Some(e), None) => human_bytes(e.size),
                (None, None) => String::new(),
            };
            let mut path = format!("/{}", analysis::printable(&c.path));
            if let (Some(o), Some(n)) = (&c.old, &c.new) {
                path.push_str(&format!(" ({})", analysis::differences(o, n).join(", ")));
            }
            [c.status.letter().to_string(), size, path]
        })
        .collect();
    let width = rows
        .iter()
        .map(|r| r[1].chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(out, "{:<6} {:>width$}  PATH", "CHANGE", "SIZE")?;
    for [letter, size, path] in &rows {
        writeln!(out, "{letter:<6} {size:>width$}  {path}")?;
    }
    let count = |s: Status| compared.iter().filter(|c| c.status == s).count();
    let bytes = |s: Status, new: bool| -> u64 {
        compared
            .iter()
            .filter(|c| c.status == s)
            .filter_map(|c| if new { c.new.as_ref() } else { c.old.as_ref() })
            .map(|e| e.size)
            .sum()
    };
    writeln!(
        out,
        "{} added ({}), {} removed ({}), {} changed",
        count(Status::Added),
        human_bytes(bytes(Status::Added, true)),
        count(Status::Removed),
        human_bytes(bytes(Status::Removed, false)),
        count(Status::Changed),
    )?;
    Ok(())
}

fn json_of(c: &Compared) -> serde_json::Value {
    let entry = c.new.as_ref().or(c.old.as_ref());
    let mut v = serde_json::json!({
        "path": format!("/{}", c.path),
        "type": entry.map(|e| e.kind),
        "size": entry.map_or(0, |e| e.size),
    });
    if let (Some(o), Some(n)) = (&c.old, &c.new) {
        v["sizeBefore"] = o.size.into();
        v["what"] = analysis::differences(o, n).into();
    }
    v
}
