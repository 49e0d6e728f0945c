//! Attestations of `kiln build`: `--provenance`, `--sbom` and `--attest`
//! read as buildx reads them, and the statements made for each
//! platform's image (provenance from the request and the graph, the SBOM
//! from the image's filesystem).

use super::plan::Source;
use super::request::BuildRequest;
use crate::commands::image::parse_ref;
use crate::progress::{eprint_line, Reporter};
use anyhow::{bail, Context, Result};
use kiln_exporter::attest::{
    write_referrers, Attestation, Material, ProvenanceInput, ProvenanceMode,
};
use kiln_exporter::{ExportTarget, WrittenImage};
use kiln_oci::{LocalStore, Platform, RegistryClient};
use kiln_solver::{Lowered, Op, Solved};
use std::sync::Arc;
use std::time::SystemTime;

/// The attestations a build makes, and where they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AttestRequest {
    /// SLSA provenance, with its mode and `builder-id=`.
    pub(super) provenance: Option<(ProvenanceMode, Option<String>)>,
    /// An SPDX SBOM.
    pub(super) sbom: bool,
    /// `oci-artifact=true`: OCI 1.1 referrers instead of attestation
    /// manifests in the index.
    pub(super) referrers: bool,
    /// Notes for the progress output (ignored options).
    pub(super) notes: Vec<String>,
}

impl AttestRequest {
    /// Whether any attestation is made.
    pub(super) fn any(&self) -> bool {
        self.provenance.is_some() || self.sbom
    }
}

/// One `--attest` value, or the value of a shorthand.
struct Entry {
    kind: String,
    disabled: bool,
    mode: Option<ProvenanceMode>,
    builder_id: Option<String>,
    referrers: bool,
}

fn parse_bool(flag: &str, key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("{flag}: {key}={v:?} must be true or false"),
    }
}

/// Reads `type=provenance|sbom,KEY=VALUE,...` (the `type=` may be given
/// by the shorthand `kind`).
fn entry(flag: &str, value: &str, kind: Option<&str>, notes: &mut Vec<String>) -> Result<Entry> {
    let mut e = Entry {
        kind: kind.unwrap_or_default().to_string(),
        disabled: false,
        mode: None,
        builder_id: None,
        referrers: false,
    };
    for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let Some((k, v)) = field.split_once('=') else {
            bail!("{flag}={value}: {field:?} is not KEY=VALUE");
        };
        match k {
            "type" if kind.is_none() => e.kind = v.to_string(),
            "disabled" => e.disabled = parse_bool(flag, k, v)?,
            "mode" => {
                e.mode = Some(match v {
                    "min" => ProvenanceMode::Min,
                    "max" => ProvenanceMode::Max,
                    _ => bail!("{flag}={value}: mode must be min or max"),
                })
            }
            "builder-id" => e.builder_id = Some(v.to_string()),
            "oci-artifact" => e.referrers = parse_bool(flag, k, v)?,
            // buildx's SBOM scanner image and its scan options: kiln reads
            // the image itself.
            "generator" | "scan-context" | "scan-stage" => notes.push(format!(
                "NOTE: {flag} {k}={v} is ignored: kiln reads the image's package databases itself"
            )),
            // Accepted by BuildKit's provenance; kiln has one version.
            "version" | "reproducible" | "inline-only" => {
                notes.push(format!("NOTE: {flag} {k}={v} is ignored"))
            }
            _ => bail!("{flag}={value}: unknown key {k:?}"),
        }
    }
    match e.kind.as_str() {
        "provenance" => {}
        "sbom" if e.mode.is_none() && e.builder_id.is_none() => {}
        "sbom" => bail!("{flag}={value}: mode= and builder-id= are provenance's"),
        "" => bail!("{flag}={value}: type= is required (provenance or sbom)"),
        other => bail!("{flag}={value}: unknown type {other:?} (provenance or sbom)"),
    }
    Ok(e)
}

/// Reads `--attest`, `--provenance` and `--sbom` (the shorthands win, as
/// they come last in buildx). Without any, a push gets `mode=min`
/// provenance as with buildx (unless `BUILDX_NO_DEFAULT_ATTESTATIONS`
/// is set); other outputs get none.
///
/// # Errors
/// A value that does not parse, named with its flag.
pub(super) fn parse(
    attest: &[String],
    provenance: Option<&str>,
    sbom: Option<&str>,
    pushing: bool,
) -> Result<AttestRequest> {
    let mut out = AttestRequest::default();
    let mut entries = Vec::new();
    for a in attest {
        entries.push(entry("--attest", a, None, &mut out.notes)?);
    }
    for (flag, kind, value) in [
        ("--provenance", "provenance", provenance),
        ("--sbom", "sbom", sbom),
    ] {
        let Some(value) = value else { continue };
        let e = match value {
            "true" | "1" => entry(flag, "", Some(kind), &mut out.notes)?,
            "false" | "0" => Entry {
                disabled: true,
                ..entry(flag, "", Some(kind), &mut out.notes)?
            },
            v => entry(flag, v, Some(kind), &mut out.notes)?,
        };
        entries.push(e);
    }
    let mut provenance_given = false;
    for e in entries {
        out.referrers |= e.referrers && !e.disabled;
        match e.kind.as_str() {
            "provenance" => {
                provenance_given = true;
                out.provenance = (!e.disabled).then(|| (e.mode.unwrap_or_default(), e.builder_id));
            }
            _ => out.sbom = !e.disabled,
        }
    }
    let no_default = std::env::var("BUILDX_NO_DEFAULT_ATTESTATIONS")
        .is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    if !provenance_given && pushing && !no_default {
        out.provenance = Some((ProvenanceMode::Min, None));
    }
    Ok(out)
}

/// What [`statements`] reads besides the request.
pub(super) struct Built<'a> {
    /// The Dockerfile and context.
    pub(super) source: &'a Source,
    /// Each platform's graph.
    pub(super) lowered: &'a [Lowered],
    /// Each platform's result.
    pub(super) solved: &'a [Solved],
    /// When the build started.
    pub(super) started: SystemTime,
    /// The context's git URL and commit, when it is one.
    pub(super) git_context: Option<(String, Option<String>)>,
}

/// The statements of each platform's image (in the order of
/// `request.platforms`); empty lists when none are asked for.
///
/// # Errors
/// An image file the SBOM must read that cannot be read.
pub(super) fn statements(
    request: &BuildRequest,
    built: &Built<'_>,
    reporter: &Reporter,
) -> Result<Vec<Vec<Attestation>>> {
    let attest = &request.attest;
    if !attest.any() {
        return Ok(vec![Vec::new(); request.platforms.len()]);
    }
    let finished = SystemTime::now();
    let created = humantime::format_rfc3339_seconds(finished).to_string();
    let invocation_id = kiln_oci::Digest::sha256(
        format!(
            "{}:{:?}",
            std::process::id(),
            built
                .started
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
        )
        .as_bytes(),
    )
    .hex()[..26]
        .to_string();
    let name = request
        .tags
        .first()
        .cloned()
        .unwrap_or_else(|| "kiln-build".to_string());
    let mut all = Vec::new();
    for ((platform, lowered), solved) in request
        .platforms
        .iter()
        .zip(built.lowered)
        .zip(built.solved)
    {
        let mut list = Vec::new();
        if let Some((mode, builder_id)) = &attest.provenance {
            let max = *mode == ProvenanceMode::Max;
            list.push(kiln_exporter::attest::provenance(&ProvenanceInput {
                mode: *mode,
                builder_id: builder_id.clone(),
                dockerfile_name: built.source.name.clone(),
                dockerfile: built.source.text.as_bytes().to_vec(),
                git_context: built.git_context.clone(),
                build_args: request.options.build_args.clone(),
                target: request.options.target.clone(),
                platform: platform.short_string(),
                materials: materials(lowered),
                steps: max.then(|| lowered.graph.to_json(&[lowered.root])),
                started: built.started,
                finished,
                invocation_id: invocation_id.clone(),
            }));
        }
        if attest.sbom {
            let sbom = kiln_exporter::attest::sbom(&solved.stack(), &name, &created)
                .with_context(|| format!("making the SBOM of {}", platform.short_string()))?;
            if reporter.prints_summary() {
                for w in &sbom.warnings {
                    eprint_line(&format!("WARNING: {w}"));
                }
            }
            list.push(sbom.attestation);
        }
        all.push(list);
    }
    Ok(all)
}

/// The base images (by manifest digest) and remote sources the graph
/// reads.
fn materials(lowered: &Lowered) -> Vec<Material> {
    let mut out: Vec<Material> = Vec::new();
    for id in lowered.graph.closure(&[lowered.root]) {
        let m = match &lowered.graph.vertex(id).op {
            Op::Image(src) => Material {
                // An `oci-layout://` context is named as given; registry
                // images as BuildKit names them (`pkg:docker/...`).
                uri: if src.reference.contains("://") {
                    src.reference.clone()
                } else {
                    kiln_exporter::attest::subject_name(
                        &src.reference,
                        &src.platform
                            .parse::<Platform>()
                            .unwrap_or_else(|_| Platform::host()),
                    )
                },
                digest: src
                    .manifest
                    .strip_prefix("sha256:")
                    .map(|hex| ("sha256".to_string(), hex.to_string())),
            },
            Op::Http(src) => Material {
                uri: src.url.clone(),
                digest: src
                    .checksum
                    .as_deref()
                    .and_then(|c| c.strip_prefix("sha256:"))
                    .map(|hex| ("sha256".to_string(), hex.to_string())),
            },
            Op::Git(src) => Material {
                uri: src.url.clone(),
                digest: None,
            },
            _ => continue,
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Attaching attestations as OCI 1.1 referrers (`oci-artifact=true`).
pub(crate) struct Referrers<'a> {
    /// The store they are written to.
    pub(crate) store: &'a LocalStore,
    /// For pushes.
    pub(crate) client: &'a RegistryClient,
    /// The async runtime.
    pub(crate) rt: &'a tokio::runtime::Runtime,
    /// Progress output.
    pub(crate) reporter: &'a Arc<Reporter>,
}

impl Referrers<'_> {
    /// Writes the referrers of `images` (each platform's image manifest)
    /// and their fallback tag index (`REPO:sha256-<hex>`, OCI 1.1's tag
    /// schema, which registries without the referrers API need), then
    /// pushes them to every name `target` pushes to, or names them in the
    /// store for `type=image`. Other outputs get none (with a note).
    ///
    /// # Errors
    /// Store or push errors.
    pub(crate) fn write(
        &self,
        target: &ExportTarget,
        images: &[(Platform, WrittenImage)],
        attestations: &[Vec<Attestation>],
        tags: &[String],
    ) -> Result<()> {
        if attestations.iter().all(|a| a.is_empty()) {
            return Ok(());
        }
        let referrers = write_referrers(self.store, images, attestations, tags)
            .context("writing the attestations as referrers")?;
        match target {
            ExportTarget::Image { .. } | ExportTarget::Registry { .. } => {}
            other => {
                if self.reporter.prints_summary() {
                    eprint_line(&format!(
                        "NOTE: --output {other} gets no referrers (oci-artifact=true attaches them in registries and the store)"
                    ));
                }
                return Ok(());
            }
        }
        let pushes = target.push_names();
        for name in target.names() {
            let reference = parse_ref(name)?;
            for r in &referrers {
                let tagged = reference
                    .with_tag(&r.tag)
                    .with_context(|| format!("naming the referrers of {name}"))?;
                if matches!(target, ExportTarget::Image { .. }) {
                    self.store.set_ref(&tagged.to_string(), &r.index)?;
                }
                if !pushes.contains(name) {
                    continue;
                }
                let transfer = self
                    .reporter
                    .transfer(&format!("pushing attestations {tagged}"));
                match self.rt.block_on(self.client.push(
                    self.store,
                    &r.index,
                    &tagged,
                    transfer.clone(),
                )) {
                    Ok(_) => transfer.done(),
                    Err(e) => {
                        transfer.failed(&e);
                        return Err(e).with_context(|| format!("pushing {tagged}"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(attest: &[&str], prov: Option<&str>, sbom: Option<&str>, push: bool) -> AttestRequest {
        let attest: Vec<String> = attest.iter().map(|s| s.to_string()).collect();
        parse(&attest, prov, sbom, push).expect("parses")
    }

    #[test]
    fn reads_buildx_syntax() {
        assert_eq!(p(&[], None, None, false), AttestRequest::default());
        let r = p(&[], None, None, true);
        assert_eq!(r.provenance, Some((ProvenanceMode::Min, None)));
        assert!(!r.sbom);
        let r = p(&[], Some("false"), Some("false"), true);
        assert!(!r.any(), "{r:?}");
        let r = p(
            &[],
            Some("mode=max,builder-id=https://ci/1"),
            Some("true"),
            false,
        );
        assert_eq!(
            r.provenance,
            Some((ProvenanceMode::Max, Some("https://ci/1".into())))
        );
        assert!(r.sbom);
        let r = p(
            &["type=provenance,mode=max", "type=sbom,oci-artifact=true"],
            None,
            None,
            false,
        );
        assert!(r.sbom && r.referrers);
        assert_eq!(r.provenance, Some((ProvenanceMode::Max, None)));
        let r = p(
            &[],
            None,
            Some("generator=docker/buildkit-syft-scanner"),
            false,
        );
        assert!(r.sbom && r.notes.len() == 1, "{r:?}");
        let r = p(&["type=provenance,disabled=true"], None, None, true);
        assert_eq!(r.provenance, None);
        for (attest, prov) in [
            (vec!["type=foo"], None),
            (vec!["mode=max"], None),
            (vec!["type=sbom,mode=max"], None),
            (vec![], Some("mode=most")),
            (vec![], Some("yes")),
        ] {
            let attest: Vec<String> = attest.iter().map(|s| s.to_string()).collect();
            assert!(
                parse(&attest, prov, None, false).is_err(),
                "{attest:?} {prov:?}"
            );
        }
    }
}
