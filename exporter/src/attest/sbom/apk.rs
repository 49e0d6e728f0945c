//! apk's database: `/lib/apk/db/installed`.

use super::{paragraphs, purl_escape, Distro, ImageFiles, Package, MAX_DB};
use crate::attest::AttestError;

/// The installed packages of apk's database.
pub(super) fn packages(
    files: &mut ImageFiles<'_>,
    distro: &Distro,
) -> Result<Vec<Package>, AttestError> {
    let Some(text) = files.read("lib/apk/db/installed", MAX_DB)? else {
        return Ok(Vec::new());
    };
    let namespace = if distro.id.is_empty() {
        "alpine"
    } else {
        distro.id.as_str()
    };
    let mut out = Vec::new();
    for p in paragraphs(&text) {
        let field = |key: char| -> Option<&str> {
            p.lines().find_map(|l| {
                let mut chars = l.chars();
                (chars.next() == Some(key) && chars.next() == Some(':')).then(|| l[2..].trim())
            })
        };
        let (Some(name), Some(version)) = (field('P'), field('V')) else {
            continue;
        };
        let mut purl = format!(
            "pkg:apk/{}/{}@{}",
            purl_escape(namespace),
            purl_escape(name),
            purl_escape(version)
        );
        let mut sep = '?';
        if let Some(arch) = field('A') {
            purl.push_str(&format!("{sep}arch={}", purl_escape(arch)));
            sep = '&';
        }
        if let Some(origin) = field('o').filter(|o| *o != name) {
            purl.push_str(&format!("{sep}upstream={}", purl_escape(origin)));
            sep = '&';
        }
        let distro_q = distro.purl_qualifier();
        if !distro_q.is_empty() {
            purl.push(sep);
            purl.push_str(&distro_q[1..]);
        }
        out.push(Package {
            name: name.to_string(),
            version: version.to_string(),
            purl,
            license: field('L').and_then(super::spdx::valid_expression),
            supplier: field('m').map(|m| format!("Person: {m}")),
            source_file: "/lib/apk/db/installed".into(),
        });
    }
    Ok(out)
}
