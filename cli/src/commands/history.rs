//! `kiln history`: an image's history, with `docker history`'s columns
//! (IMAGE, CREATED, CREATED BY, SIZE, COMMENT), newest first, for an
//! image in the store, a registry (`--remote`: the manifest's layer sizes,
//! no layer downloaded), an OCI layout or an archive
//! ([`image_source`](super::image_source)). A store image is only read,
//! so that works on a read-only store.

use super::image_source::{self, ImageArg};
use crate::global::GlobalArgs;
use crate::units::{ago, docker_size};
use anyhow::{bail, Result};
use clap::Args;
use std::io::Write;

/// Arguments of `kiln history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// An image: a name or digest in the store, `docker://REF`,
    /// `oci-layout://DIR[:TAG]`, `docker-archive://FILE` or
    /// `oci-archive://FILE`.
    image: String,
    /// Read the image from its registry (layer sizes from the manifest;
    /// no layer is downloaded).
    #[arg(long)]
    remote: bool,
    /// The platform to show from a multi-platform image.
    #[arg(long)]
    platform: Option<String>,
    /// Print whole commands and digests.
    #[arg(long)]
    no_trunc: bool,
    /// Print only the image's id.
    #[arg(short, long)]
    quiet: bool,
    /// `table` (the default) or `json`: one object per line, with
    /// docker's keys.
    #[arg(long, default_value = "table")]
    format: String,
    /// Print sizes and dates for people (`--human=false`: bytes and
    /// RFC 3339 times).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
}

/// One line of the history.
struct Row {
    id: String,
    created: Option<String>,
    created_by: String,
    size: u64,
    comment: String,
}

/// Runs `kiln history`.
pub fn history(global: &GlobalArgs, args: &HistoryArgs) -> Result<()> {
    if args.format != "table" && args.format != "json" {
        bail!("--format {:?}: kiln prints table or json", args.format);
    }
    let arg = ImageArg::parse(&args.image, args.remote)?;
    let opened = image_source::open(global, &arg, args.platform.as_deref())?;
    let image = opened.image;
    let id = if args.no_trunc {
        image.config_digest.to_string()
    } else {
        image.config_digest.hex()[..12].to_string()
    };
    let mut out = std::io::stdout().lock();
    if args.quiet {
        writeln!(out, "{id}")?;
        return Ok(());
    }
    let rows = rows(&image, id);
    if args.format == "json" {
        for row in &rows {
            let line = serde_json::json!({
                "Comment": row.comment,
                "CreatedAt": row.created.clone().unwrap_or_default(),
                "CreatedBy": row.created_by,
                "CreatedSince": since(row.created.as_deref()),
                "ID": row.id,
                "Size": docker_size(row.size),
            });
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let mut table = vec![[
        "IMAGE".to_string(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
    ]];
    for row in rows {
        let created = match (args.human, &row.created) {
            (true, created) => since(created.as_deref()),
            (false, Some(at)) => at.clone(),
            (false, None) => String::new(),
        };
        let created_by = if args.no_trunc {
            row.created_by
        } else {
            crate::table::truncate(&row.created_by, 45)
        };
        let size = if args.human {
            docker_size(row.size)
        } else {
            row.size.to_string()
        };
        table.push([row.id, created, created_by, size, row.comment]);
    }
    crate::table::write(&mut out, &table)?;
    Ok(())
}

/// The config's history, newest first, each entry that made a layer
/// paired with that layer's size in the manifest (compressed, as a
/// registry holds it). Only the newest row carries the image's id, as
/// with docker.
fn rows(image: &kiln_oci::Image, id: String) -> Vec<Row> {
    let layers = image.manifest.layers();
    let mut sizes = layers.iter().map(|l| l.size());
    let mut rows: Vec<Row> = image
        .config
        .history()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|h| Row {
            id: "<missing>".into(),
            created: h.created().clone(),
            created_by: h.created_by().clone().unwrap_or_default(),
            size: if h.empty_layer().unwrap_or(false) {
                0
            } else {
                sizes.next().unwrap_or(0)
            },
            comment: h.comment().clone().unwrap_or_default(),
        })
        .collect();
    // Layers the history does not describe (an image without history).
    for size in sizes {
        rows.push(Row {
            id: "<missing>".into(),
            created: None,
            created_by: String::new(),
            size,
            comment: String::new(),
        });
    }
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first.id = id;
    }
    rows
}

/// "3 days ago" from an RFC 3339 time; empty when there is none.
fn since(created: Option<&str>) -> String {
    let Some(at) =
        created.and_then(|c| humantime::parse_rfc3339_weak(c.trim_end_matches('Z')).ok())
    else {
        return String::new();
    };
    ago(std::time::SystemTime::now()
        .duration_since(at)
        .unwrap_or_default())
}
