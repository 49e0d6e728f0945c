//! dpkg's database: `/var/lib/dpkg/status` and distroless's
//! `/var/lib/dpkg/status.d/*`.

use super::{paragraphs, purl_escape, Distro, ImageFiles, Package, MAX_DB, MAX_FILE};
use crate::attest::AttestError;

/// How many `status.d` files are read at most.
const MAX_STATUS_D: usize = 10_000;

/// The installed packages of dpkg's database.
pub(super) fn packages(
    files: &mut ImageFiles<'_>,
    distro: &Distro,
) -> Result<Vec<Package>, AttestError> {
    let mut out = Vec::new();
    if let Some(text) = files.read("var/lib/dpkg/status", MAX_DB)? {
        read_status(files, &text, distro, "/var/lib/dpkg/status", &mut out)?;
    }
    let names = files.list("var/lib/dpkg/status.d");
    for name in names.iter().take(MAX_STATUS_D) {
        // distroless also keeps `NAME.md5sums` there.
        if name.contains('.') && !name.ends_with(".status") {
            continue;
        }
        let rel = format!("var/lib/dpkg/status.d/{name}");
        if let Some(text) = files.read(&rel, MAX_FILE)? {
            read_status(files, &text, distro, &format!("/{rel}"), &mut out)?;
        }
    }
    Ok(out)
}

fn read_status(
    files: &mut ImageFiles<'_>,
    text: &str,
    distro: &Distro,
    source_file: &str,
    out: &mut Vec<Package>,
) -> Result<(), AttestError> {
    let namespace = if distro.id.is_empty() {
        "debian"
    } else {
        distro.id.as_str()
    };
    for p in paragraphs(text) {
        let field = |name: &str| -> Option<&str> {
            p.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        // `status.d` has no Status field: everything there is installed.
        if let Some(status) = field("Status") {
            if !status.ends_with(" installed") {
                continue;
            }
        }
        let mut purl = format!(
            "pkg:deb/{}/{}@{}",
            purl_escape(namespace),
            purl_escape(name),
            purl_escape(version)
        );
        let mut sep = '?';
        if let Some(arch) = field("Architecture") {
            purl.push_str(&format!("{sep}arch={}", purl_escape(arch)));
            sep = '&';
        }
        if let Some(source) = field("Source") {
            // `Source: glibc (2.36-9)`: the source package's name.
            let source = source.split_whitespace().next().unwrap_or(source);
            if source != name {
                purl.push_str(&format!("{sep}upstream={}", purl_escape(source)));
                sep = '&';
            }
        }
        let distro_q = distro.purl_qualifier();
        if !distro_q.is_empty() {
            purl.push(sep);
            purl.push_str(&distro_q[1..]);
        }
        let license = license(files, name)?;
        out.push(Package {
            name: name.to_string(),
            version: version.to_string(),
            purl,
            license,
            supplier: field("Maintainer").map(|m| format!("Person: {m}")),
            source_file: source_file.to_string(),
        });
    }
    Ok(())
}

/// The licenses of a machine-readable `/usr/share/doc/NAME/copyright`
/// as one SPDX expression (each `License:` line's `or`/`and` kept, the
/// lines joined with `AND`), when every name maps to an SPDX id.
fn license(files: &mut ImageFiles<'_>, name: &str) -> Result<Option<String>, AttestError> {
    let Some(text) = files.read(&format!("usr/share/doc/{name}/copyright"), MAX_FILE)? else {
        return Ok(None);
    };
    if !text.starts_with("Format:") {
        return Ok(None);
    }
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(value) = line.strip_prefix("License:") else {
            continue;
        };
        let mut expr = Vec::new();
        let mut has_or = false;
        for word in value.split_whitespace() {
            match word.to_ascii_lowercase().as_str() {
                "or" => {
                    has_or = true;
                    expr.push("OR".to_string());
                }
                "and" => expr.push("AND".to_string()),
                // Exceptions and free-form names: no SPDX expression.
                "with" => return Ok(None),
                _ => match spdx_id(word.trim_end_matches(',')) {
                    Some(id) => expr.push(id),
                    None => return Ok(None),
                },
            }
        }
        if expr.is_empty() {
            continue;
        }
        let mut one = expr.join(" ");
        if has_or && expr.len() > 1 {
            one = format!("({one})");
        }
        if !lines.contains(&one) {
            lines.push(one);
        }
    }
    if lines.is_empty() {
        return Ok(None);
    }
    lines.sort();
    let joined = lines.join(" AND ");
    let joined = match lines.as_slice() {
        // One line needs no parentheses.
        [only] => only
            .trim_start_matches('(')
            .trim_end_matches(')')
            .to_string(),
        _ => joined,
    };
    Ok(super::spdx::valid_expression(&joined))
}

/// The SPDX id of a Debian license short name (`GPL-2+` is
/// `GPL-2.0-or-later`, `BSD-3-clause` is `BSD-3-Clause`), when it has
/// one.
fn spdx_id(debian: &str) -> Option<String> {
    let (base, later) = match debian.strip_suffix('+') {
        Some(b) => (b, true),
        None => (debian, false),
    };
    let versioned = |family: &str, v: &str| {
        let v = if v.contains('.') {
            v.to_string()
        } else {
            format!("{v}.0")
        };
        format!("{family}-{v}-{}", if later { "or-later" } else { "only" })
    };
    for family in ["LGPL", "GPL", "AGPL", "GFDL"] {
        if let Some(v) = base.strip_prefix(family).and_then(|r| r.strip_prefix('-')) {
            if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return Some(versioned(family, v));
            }
        }
    }
    let id = match base {
        "Expat" | "MIT/X11" => "MIT",
        "Apache-2" => "Apache-2.0",
        // Debian's `Artistic` is the Artistic License 1.0 (Perl's).
        "Artistic" => "Artistic-1.0-Perl",
        other => other,
    };
    // SPDX ids are matched without regard to case (`ZLIB`, `BSD-3-clause`).
    let found = spdx::identifiers::LICENSES
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(id))?;
    Some(if later {
        format!("{}+", found.0)
    } else {
        found.0.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::spdx_id;

    #[test]
    fn debian_license_names_map_to_spdx() {
        for (debian, spdx) in [
            ("GPL-2+", Some("GPL-2.0-or-later")),
            ("LGPL-2.1", Some("LGPL-2.1-only")),
            ("Expat", Some("MIT")),
            ("BSD-3-clause", Some("BSD-3-Clause")),
            ("ZLIB", Some("Zlib")),
            ("Artistic", Some("Artistic-1.0-Perl")),
            ("BSD-3-clause-with-weird-numbering", None),
            ("Apache-2.0", Some("Apache-2.0")),
            ("public-domain", None),
        ] {
            assert_eq!(spdx_id(debian).as_deref(), spdx, "{debian}");
        }
    }
}
