//! Where a stage's inputs come from: the main and named build contexts,
//! and images, resolved through an [`ImageResolver`] as they are met and
//! replaced by `--build-context` values.

use super::{LowerError, Lowered, Lowerer, Result};
use crate::graph::{VertexId, VertexMeta};
use crate::op::{ContextSource, ImageSource, Op};
use crate::resolve_error::ResolveError;
use kiln_oci::{Digest, ImageConfig, Platform};
use kiln_parser::Position;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The value of a `--build-context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory.
    Local(PathBuf),
    /// `docker-image://REF`.
    Image(String),
    /// `oci-layout://PATH[:TAG|@DIGEST]`.
    OciLayout(String),
    /// Another target of the same build, lowered (`target:NAME` in a bake
    /// file): its graph becomes part of this one.
    Target(LinkedTarget),
}

/// A lowered target that another target reads as a named context.
#[derive(Debug, Clone)]
pub struct LinkedTarget(pub std::sync::Arc<Lowered>);

impl PartialEq for LinkedTarget {
    fn eq(&self, other: &LinkedTarget) -> bool {
        self.0.graph.vertex(self.0.root).digest == other.0.graph.vertex(other.0.root).digest
    }
}

impl Eq for LinkedTarget {}

/// Copies `from`'s graph (what its root needs) into `graph` and returns
/// its root there. Its local contexts keep their names unless `contexts`
/// (name to directory, what `graph` already reads) has the name for
/// another directory: then the name gets a digest of the directory as a
/// suffix (and loses it again where the plain name is that directory's),
/// so equal steps on one directory stay one vertex. `contexts` gets the
/// names used.
pub fn import_lowered(
    graph: &mut crate::graph::Graph,
    contexts: &mut BTreeMap<String, PathBuf>,
    from: &Lowered,
) -> VertexId {
    let mut rename = |name: &str| -> String {
        let Some(dir) = from.contexts.get(name) else {
            return name.to_string();
        };
        // The suffix is the directory's, so a name renamed by an earlier
        // import comes back to the same name: one vertex per directory.
        let hex = Digest::sha256(dir.to_string_lossy().as_bytes())
            .hex()
            .to_string();
        let suffix = hex.get(..12).unwrap_or(&hex);
        let base = name
            .strip_suffix(suffix)
            .and_then(|b| b.strip_suffix('-'))
            .unwrap_or(name);
        let new = match contexts.get(base) {
            Some(have) if have != dir => format!("{base}-{suffix}"),
            _ => base.to_string(),
        };
        contexts.insert(new.clone(), dir.clone());
        new
    };
    graph
        .import(&from.graph, &[from.root], &mut rename)
        .first()
        .copied()
        .unwrap_or(from.root)
}

impl std::str::FromStr for NamedContext {
    type Err = String;

    fn from_str(value: &str) -> std::result::Result<NamedContext, String> {
        if let Some(r) = value.strip_prefix("docker-image://") {
            return Ok(NamedContext::Image(r.to_string()));
        }
        if let Some(r) = value.strip_prefix("oci-layout://") {
            return Ok(NamedContext::OciLayout(r.to_string()));
        }
        if value.contains("://") {
            return Err(format!("unsupported build context source {value:?}"));
        }
        Ok(NamedContext::Local(PathBuf::from(value)))
    }
}

/// An image a FROM or `--from` resolved to.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The normalised reference.
    pub reference: String,
    /// Its manifest digest (for the platform asked for).
    pub manifest: Digest,
    /// Its config.
    pub config: ImageConfig,
}

/// Resolves image references for FROM and `COPY --from` while lowering.
pub trait ImageResolver {
    /// The image `reference` names, for `platform`.
    ///
    /// # Errors
    /// Why it cannot be resolved (the caller adds the line).
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError>;

    /// The image in an OCI layout (`PATH[:TAG|@DIGEST]`), for
    /// `--build-context NAME=oci-layout://...`.
    ///
    /// # Errors
    /// Why it cannot be read. The default refuses.
    fn resolve_layout(
        &self,
        layout: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError> {
        let _ = platform;
        Err(ResolveError::LayoutUnsupported {
            layout: layout.to_string(),
        })
    }
}

impl Lowerer<'_> {
    /// The main build context's vertex.
    pub(crate) fn context_vertex(&mut self) -> VertexId {
        if let Some(v) = self.context {
            return v;
        }
        let v = self.graph.add(
            Op::Context(ContextSource {
                name: "context".into(),
            }),
            vec![],
            VertexMeta {
                name: "[context] load build context".into(),
                line: None,
                stage: None,
            },
        );
        self.contexts
            .insert("context".into(), self.context_dir.clone());
        self.context = Some(v);
        v
    }

    /// The vertex of a named local context.
    pub(crate) fn named_context_vertex(&mut self, name: &str, dir: &std::path::Path) -> VertexId {
        let v = self.graph.add(
            Op::Context(ContextSource {
                name: name.to_string(),
            }),
            vec![],
            VertexMeta {
                name: format!("[context {name}] load build context"),
                line: None,
                stage: None,
            },
        );
        self.contexts.insert(name.to_string(), dir.to_path_buf());
        v
    }

    /// The `--build-context` a FROM or `--from` name selects, matched the
    /// way BuildKit matches: the familiar name with its tag, then without a
    /// `:latest` tag.
    pub(crate) fn named_context(&self, name: &str) -> Option<(String, NamedContext)> {
        let contexts = &self.options.named_contexts;
        if contexts.is_empty() {
            return None;
        }
        let mut candidates = vec![name.to_string()];
        if let Ok(r) = kiln_oci::Reference::parse(name) {
            let familiar = r.familiar();
            if let Some(bare) = familiar.strip_suffix(":latest") {
                candidates.push(bare.to_string());
            }
            candidates.insert(0, familiar);
        }
        candidates
            .into_iter()
            .find_map(|c| contexts.get(&c).map(|v| (c, v.clone())))
    }

    /// Resolves an image reference into an image vertex and its config,
    /// honouring `--build-context` replacements.
    pub(crate) fn image(
        &mut self,
        reference: &str,
        platform: &Platform,
        at: Position,
    ) -> Result<(VertexId, ImageConfig)> {
        if let Some((_, NamedContext::Target(linked))) = self.named_context(reference) {
            // The main context's name stays this target's.
            let mut taken = self.contexts.clone();
            taken
                .entry("context".into())
                .or_insert_with(|| self.context_dir.clone());
            for (name, value) in &self.options.named_contexts {
                if let NamedContext::Local(dir) = value {
                    taken.entry(name.clone()).or_insert_with(|| dir.clone());
                }
            }
            let root = import_lowered(&mut self.graph, &mut taken, &linked.0);
            for (name, dir) in taken {
                if linked.0.contexts.values().any(|d| *d == dir) {
                    self.contexts.insert(name, dir);
                }
            }
            return Ok((root, linked.0.config.clone()));
        }
        let resolved = self
            .lookup_image(reference, platform)
            .map_err(|e| LowerError::Image {
                at,
                reference: reference.to_string(),
                message: e.to_string(),
            })?;
        let vertex = self.graph.add(
            Op::Image(ImageSource {
                reference: resolved.reference.clone(),
                manifest: resolved.manifest.to_string(),
                platform: platform.to_string(),
            }),
            vec![],
            VertexMeta {
                name: format!("[internal] load {}", resolved.reference),
                line: Some(at.line),
                stage: None,
            },
        );
        Ok((vertex, resolved.config))
    }

    /// Asks the resolver for `reference`, honouring `--build-context`.
    fn lookup_image(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError> {
        match self.named_context(reference) {
            Some((_, NamedContext::Image(r))) => self.resolver.resolve(&r, platform),
            Some((_, NamedContext::OciLayout(layout))) => {
                self.resolver.resolve_layout(&layout, platform)
            }
            Some((name, NamedContext::Local(_) | NamedContext::Target(_))) => {
                Err(ResolveError::LocalContext { name })
            }
            None => self.resolver.resolve(reference, platform),
        }
    }
}
