//! The SPDX 2.3 JSON document.

use super::Package;
use kiln_oci::Digest;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: &'a str,
    document_namespace: String,
    creation_info: CreationInfo<'a>,
    packages: Vec<SpdxPackage<'a>>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo<'a> {
    created: &'a str,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage<'a> {
    name: &'a str,
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    version_info: &'a str,
    download_location: &'static str,
    files_analyzed: bool,
    license_concluded: &'static str,
    license_declared: &'a str,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    supplier: Option<&'a str>,
    source_info: String,
    external_refs: Vec<ExternalRef<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef<'a> {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: &'static str,
    relationship_type: &'static str,
    related_spdx_element: String,
}

/// The document listing `packages` (sorted, unique).
pub(super) fn document(name: &str, created: &str, packages: &[Package]) -> serde_json::Value {
    let ids: Vec<String> = packages
        .iter()
        .map(|p| {
            // SPDX ids allow letters, digits, `.` and `-`.
            let hash = Digest::sha256(p.purl.as_bytes());
            let clean: String = p
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("SPDXRef-Package-{clean}-{}", &hash.hex()[..16])
        })
        .collect();
    let namespace_seed: String = packages.iter().map(|p| p.purl.as_str()).collect();
    let doc = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name,
        document_namespace: format!(
            "https://kiln.invalid/spdx/{}",
            Digest::sha256(format!("{name}\n{created}\n{namespace_seed}").as_bytes()).hex()
        ),
        creation_info: CreationInfo {
            created,
            creators: vec![format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages: packages
            .iter()
            .zip(&ids)
            .map(|(p, id)| SpdxPackage {
                name: &p.name,
                spdx_id: id.clone(),
                version_info: &p.version,
                download_location: "NOASSERTION",
                files_analyzed: false,
                license_concluded: "NOASSERTION",
                license_declared: p.license.as_deref().unwrap_or("NOASSERTION"),
                copyright_text: "NOASSERTION",
                supplier: p.supplier.as_deref(),
                source_info: format!("acquired package info from {}", p.source_file),
                external_refs: vec![ExternalRef {
                    reference_category: "PACKAGE-MANAGER",
                    reference_type: "purl",
                    reference_locator: &p.purl,
                }],
            })
            .collect(),
        relationships: ids
            .iter()
            .map(|id| Relationship {
                spdx_element_id: "SPDXRef-DOCUMENT",
                relationship_type: "DESCRIBES",
                related_spdx_element: id.clone(),
            })
            .collect(),
    };
    serde_json::to_value(&doc).unwrap_or_default()
}

/// `text` when it is a valid SPDX license expression.
pub(super) fn valid_expression(text: &str) -> Option<String> {
    spdx::Expression::parse(text).ok().map(|_| text.to_string())
}
