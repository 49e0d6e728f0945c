//! Language lock files found in the image: Cargo.lock, package-lock.json,
//! go.sum, requirements.txt. The walk skips the kernel's and the package
//! managers' trees and `node_modules`, and is bounded in depth and
//! entries.

use super::{purl_escape, ImageFiles, Package, MAX_DEPTH, MAX_ENTRIES, MAX_FILE};
use crate::attest::AttestError;
use kiln_executor::SourceTree;

/// Directories never walked (relative to `/`).
const SKIP: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "run",
    "tmp",
    "var/lib/dpkg",
    "var/lib/apk",
    "var/cache",
    "usr/share",
    "usr/include",
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
];

/// The packages of every lock file found.
pub(super) fn packages(files: &mut ImageFiles<'_>) -> Result<Vec<Package>, AttestError> {
    let mut found = Vec::new();
    let mut seen = 0usize;
    // An explicit stack: the depth is bounded, and no recursion.
    let mut dirs = vec![(String::new(), 0usize)];
    while let Some((dir, depth)) = dirs.pop() {
        for name in files.list(&dir) {
            seen += 1;
            if seen > MAX_ENTRIES {
                files.warnings.push(format!(
                    "sbom: more than {MAX_ENTRIES} files; lock files deeper in the walk are left out"
                ));
                return parse_all(files, found);
            }
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            if matches!(
                name.as_str(),
                "Cargo.lock" | "package-lock.json" | "go.sum" | "requirements.txt"
            ) {
                found.push(rel);
                continue;
            }
            if depth + 1 >= MAX_DEPTH
                || name == "node_modules"
                || name == ".git"
                || SKIP.contains(&rel.as_str())
            {
                continue;
            }
            if let Ok(Some(e)) = files.stack.entry(&rel) {
                if e.metadata.is_dir() {
                    dirs.push((rel, depth + 1));
                }
            }
        }
    }
    parse_all(files, found)
}

fn parse_all(
    files: &mut ImageFiles<'_>,
    mut found: Vec<String>,
) -> Result<Vec<Package>, AttestError> {
    found.sort();
    let mut out = Vec::new();
    for rel in found {
        let Some(text) = files.read(&rel, MAX_FILE)? else {
            continue;
        };
        let source_file = format!("/{rel}");
        let parsed = match rel.rsplit('/').next().unwrap_or(&rel) {
            "Cargo.lock" => cargo(&text),
            "package-lock.json" => npm(&text),
            "go.sum" => go(&text),
            _ => pip(&text),
        };
        match parsed {
            Some(list) => {
                out.extend(
                    list.into_iter()
                        .map(|(name, version, purl, license)| Package {
                            name,
                            version,
                            purl,
                            license,
                            supplier: None,
                            source_file: source_file.clone(),
                        }),
                )
            }
            None => files
                .warnings
                .push(format!("sbom: {source_file} does not parse; skipped")),
        }
    }
    Ok(out)
}

type Found = (String, String, String, Option<String>);

/// `[[package]]` entries from a registry (path and git crates are the
/// project's own).
fn cargo(text: &str) -> Option<Vec<Found>> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Crate>,
    }
    #[derive(serde::Deserialize)]
    struct Crate {
        name: String,
        version: String,
        source: Option<String>,
    }
    let lock: Lock = toml::from_str(text).ok()?;
    Some(
        lock.package
            .into_iter()
            .filter(|c| {
                c.source
                    .as_deref()
                    .is_some_and(|s| s.starts_with("registry+"))
            })
            .map(|c| {
                let purl = format!(
                    "pkg:cargo/{}@{}",
                    purl_escape(&c.name),
                    purl_escape(&c.version)
                );
                (c.name, c.version, purl, None)
            })
            .collect(),
    )
}

/// `packages` (lockfile v2/v3) or `dependencies` (v1).
fn npm(text: &str) -> Option<Vec<Found>> {
    let lock: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut out = Vec::new();
    let mut push = |name: &str, v: &serde_json::Value| {
        let Some(version) = v["version"].as_str() else {
            return;
        };
        if name.is_empty() || v["link"].as_bool() == Some(true) {
            return;
        }
        let purl = match name.split_once('/') {
            Some((scope, n)) if scope.starts_with('@') => format!(
                "pkg:npm/{}/{}@{}",
                purl_escape(scope),
                purl_escape(n),
                purl_escape(version)
            ),
            _ => format!("pkg:npm/{}@{}", purl_escape(name), purl_escape(version)),
        };
        let license = v["license"]
            .as_str()
            .and_then(super::spdx::valid_expression);
        out.push((name.to_string(), version.to_string(), purl, license));
    };
    if let Some(packages) = lock["packages"].as_object() {
        for (path, v) in packages {
            // `node_modules/a/node_modules/@s/b`: the name after the last
            // `node_modules/`.
            let Some(i) = path.rfind("node_modules/") else {
                continue;
            };
            push(&path[i + "node_modules/".len()..], v);
        }
    } else if let Some(deps) = lock["dependencies"].as_object() {
        for (name, v) in deps {
            push(name, v);
        }
    }
    Some(out)
}

/// `MODULE VERSION h1:HASH` lines; `VERSION/go.mod` lines only count when
/// the module has no other.
fn go(text: &str) -> Option<Vec<Found>> {
    let mut out: Vec<Found> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(module), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let version = version.strip_suffix("/go.mod").unwrap_or(version);
        if out.iter().any(|(m, v, _, _)| m == module && v == version) {
            continue;
        }
        let purl = format!(
            "pkg:golang/{}@{}",
            module
                .split('/')
                .map(purl_escape)
                .collect::<Vec<_>>()
                .join("/"),
            purl_escape(version)
        );
        out.push((module.to_string(), version.to_string(), purl, None));
    }
    Some(out)
}

/// `name==version` lines (other specifiers pin nothing).
fn pip(text: &str) -> Option<Vec<Found>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((name, version)) = line.split_once("==") else {
            continue;
        };
        let name = name.split('[').next().unwrap_or(name).trim();
        let version = version.split([';', ' ']).next().unwrap_or("").trim();
        if name.is_empty() || version.is_empty() {
            continue;
        }
        // PEP 503 normalisation, as purl's pypi type wants it.
        let normal = name.to_ascii_lowercase().replace(['_', '.'], "-");
        let purl = format!("pkg:pypi/{}@{}", purl_escape(&normal), purl_escape(version));
        out.push((normal, version.to_string(), purl, None));
    }
    Some(out)
}
