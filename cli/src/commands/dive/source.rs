//! Where `kiln dive` and `kiln diff` get an image's layers: a thin
//! adapter over the store (an image by name or digest, or one layer blob
//! by digest), so the analysis only sees layer metadata and tar readers.

use super::analysis::{self, Change, LayerMeta, MAX_ENTRIES};
use crate::commands::image::{lookup, pick_image};
use crate::global::GlobalArgs;
use anyhow::{Context, Result};
use kiln_oci::{BlobReader, Digest, LocalStore};
use std::io::BufReader;

/// An image's layers, ready to read.
pub struct ImageLayers {
    /// The image as the user named it.
    pub name: String,
    /// The layers, base first.
    pub layers: Vec<LayerMeta>,
    store: LocalStore,
}

/// Opens the image `name` (a store name or digest) for `platform`.
pub fn open(global: &GlobalArgs, name: &str, platform: &Option<String>) -> Result<ImageLayers> {
    let store = global.store()?;
    let (_, digest) = lookup(&store, name)?;
    let image = pick_image(&store, &digest, platform)?;
    let diff_ids = image.config.rootfs().diff_ids().clone();
    let mut history = image
        .config
        .history()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|h| !h.empty_layer().unwrap_or(false));
    let mut layers = Vec::new();
    for (i, desc) in image.manifest.layers().iter().enumerate() {
        let digest = kiln_oci::descriptor_digest(desc, image.manifest_digest.as_str())?;
        let command = history
            .next()
            .and_then(|h| h.created_by().clone())
            .map(|c| tidy_command(&c))
            .unwrap_or_else(|| "(missing)".into());
        layers.push(LayerMeta {
            digest: digest.to_string(),
            diff_id: diff_ids.get(i).cloned(),
            blob_size: desc.size(),
            command,
        });
    }
    Ok(ImageLayers {
        name: name.to_string(),
        layers,
        store,
    })
}

/// Opens one layer blob of the store by digest, as an image of one layer.
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
        store,
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
    /// Reads the first `count` layers' changes (all with `None`), hashing
    /// file contents when `hash` is set.
    pub fn read(
        &self,
        count: Option<usize>,
        hash: bool,
        budget: &mut usize,
    ) -> Result<Vec<Vec<Change>>> {
        let count = count.unwrap_or(self.layers.len()).min(self.layers.len());
        let mut out = Vec::with_capacity(count);
        for meta in &self.layers[..count] {
            let digest: Digest = meta
                .digest
                .parse()
                .with_context(|| format!("layer digest {}", meta.digest))?;
            let file = self
                .store
                .open(&digest)
                .with_context(|| format!("opening layer {digest} of {}", self.name))?;
            let tar = kiln_oci::compress::decompressor(BufReader::with_capacity(256 * 1024, file))
                .with_context(|| format!("reading layer {digest}"))?;
            out.push(
                analysis::read_layer(tar, hash, budget)
                    .with_context(|| format!("layer {digest} of {}", self.name))?,
            );
        }
        Ok(out)
    }

    /// Reads and analyses the whole image.
    pub fn analyse(&self) -> Result<analysis::Analysis> {
        let mut budget = MAX_ENTRIES;
        let changes = self.read(None, false, &mut budget)?;
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
