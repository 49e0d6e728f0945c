//! Where `kiln dive` and `kiln diff` get an image's layers: a thin
//! adapter over [`image_source`] (the store, a registry, an OCI layout or
//! an archive), or one layer blob of the store by digest, so the analysis
//! only sees layer metadata and tar readers.

use super::analysis::{self, Budget, Change, LayerMeta};
use crate::commands::image_source::{self, ImageArg, OpenedImage};
use crate::global::GlobalArgs;
use anyhow::{Context, Result};
use kiln_oci::{BlobReader, Digest};
use std::io::{BufReader, Read};

/// An image's layers, ready to read.
pub struct ImageLayers {
    /// The image as the user named it.
    pub name: String,
    /// The layers, base first.
    pub layers: Vec<LayerMeta>,
    /// The image, or `None` for a single layer blob.
    opened: Option<OpenedImage>,
}

/// Opens the image `text` names (see [`ImageArg::parse`]; `remote` is
/// the `--remote` flag) for `platform`, without reading a layer.
pub fn open(
    global: &GlobalArgs,
    text: &str,
    remote: bool,
    platform: Option<&str>,
) -> Result<ImageLayers> {
    let arg = ImageArg::parse(text, remote)?;
    let opened = image_source::open(global, &arg, platform)?;
    let mut history = opened
        .image
        .config
        .history()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|h| !h.empty_layer().unwrap_or(false));
    let layers = opened
        .layers
        .iter()
        .map(|layer| LayerMeta {
            digest: layer.digest.to_string(),
            diff_id: layer.diff_id.as_ref().map(Digest::to_string),
            blob_size: layer.size,
            command: history
                .next()
                .and_then(|h| h.created_by().clone())
                .map(|c| tidy_command(&c))
                .unwrap_or_else(|| "(missing)".into()),
        })
        .collect();
    Ok(ImageLayers {
        name: text.to_string(),
        layers,
        opened: Some(opened),
    })
}

/// Opens one layer blob of the store by digest, as an image of one
/// layer; `None` when `digest` is no blob of the store.
pub fn open_layer_blob(global: &GlobalArgs, digest: &str) -> Result<Option<ImageLayers>> {
    let Ok(d) = digest.parse::<Digest>() else {
        return Ok(None);
    };
    let store = global.store()?;
    let Some(size) = store.size(&d) else {
        return Ok(None);
    };
    Ok(Some(ImageLayers {
        name: digest.to_string(),
        layers: vec![LayerMeta {
            digest: d.to_string(),
            diff_id: None,
            blob_size: size,
            command: String::new(),
        }],
        opened: None,
    }))
}

/// A history command as dive shows it: without the shell prefix and
/// BuildKit's `# buildkit` note.
fn tidy_command(command: &str) -> String {
    let c = command.trim();
    let c = c
        .strip_prefix("/bin/sh -c #(nop) ")
        .map(str::to_string)
        .or_else(|| c.strip_prefix("/bin/sh -c ").map(|r| format!("RUN {r}")))
        .unwrap_or_else(|| c.to_string());
    c.trim_end_matches("# buildkit").trim().to_string()
}

impl ImageLayers {
    /// The uncompressed tar of layer `index`.
    fn layer_tar(&self, global: &GlobalArgs, index: usize) -> Result<Box<dyn Read + Send>> {
        if let Some(opened) = &self.opened {
            return opened.layer_tar(index);
        }
        let digest: Digest = self.layers[index]
            .digest
            .parse()
            .with_context(|| format!("layer digest {}", self.layers[index].digest))?;
        let file = global
            .store()?
            .open(&digest)
            .with_context(|| format!("opening layer {digest}"))?;
        kiln_oci::compress::decompressor(BufReader::with_capacity(1 << 20, file))
            .with_context(|| format!("reading layer {digest}"))
    }

    /// Reads the first `count` layers' changes (all with `None`), hashing
    /// file contents when `hash` is set. Each tar is read to its end, so
    /// its diff id is checked.
    pub fn read(
        &self,
        global: &GlobalArgs,
        count: Option<usize>,
        hash: bool,
        budget: &mut Budget,
    ) -> Result<Vec<Vec<Change>>> {
        let count = count.unwrap_or(self.layers.len()).min(self.layers.len());
        let mut out = Vec::with_capacity(count);
        for (index, meta) in self.layers.iter().enumerate().take(count) {
            let mut tar = self.layer_tar(global, index)?;
            let changes = analysis::read_layer(&mut tar, hash, budget)
                .and_then(|changes| {
                    std::io::copy(&mut tar, &mut std::io::sink())
                        .context("reading the layer tar to its end")?;
                    Ok(changes)
                })
                .with_context(|| format!("{}: layer {index} ({})", self.name, meta.digest))?;
            out.push(changes);
        }
        Ok(out)
    }

    /// Reads and analyses the whole image.
    pub fn analyse(&self, global: &GlobalArgs) -> Result<analysis::Analysis> {
        let mut budget = Budget::image();
        let changes = self.read(global, None, false, &mut budget)?;
        Ok(analysis::analyse(
            self.name.clone(),
            self.layers.clone(),
            changes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::tidy_command;

    #[test]
    fn commands_read_as_dive_shows_them() {
        assert_eq!(
            tidy_command("/bin/sh -c #(nop) ADD file:abc in / "),
            "ADD file:abc in /"
        );
        assert_eq!(
            tidy_command("RUN /bin/sh -c echo hi # buildkit"),
            "RUN /bin/sh -c echo hi"
        );
        assert_eq!(tidy_command("/bin/sh -c ls"), "RUN ls");
    }
}
