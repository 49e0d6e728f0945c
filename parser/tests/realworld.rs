//! Every real-world Dockerfile in `../shared/corpus/realworld/` parses,
//! except the ones BuildKit rejects too.

use std::fs;
use std::path::{Path, PathBuf};

/// Files BuildKit also refuses (corpus README and lint/hadolint-rules.md §8).
const BUILDKIT_REJECTS: &[(&str, &str)] = &[
    (
        "containers__buildah__tests__bud__buildkit-mount__Dockerfilemultiplemounts",
        "unexpected key 'z'",
    ),
    (
        "moby__buildkit__frontend__dockerfile__parser__testfiles__health__Dockerfile",
        "HEALTHCHECK requires at least one argument",
    ),
];

fn realworld_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/realworld");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            !(name.ends_with(".dockerignore")
                || name.ends_with(".tsv")
                || name.starts_with("README"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn realworld_corpus_parses() {
    let files = realworld_files();
    let mut parsed = 0;
    let mut rejected_as_buildkit = 0;
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let source = String::from_utf8(fs::read(path).expect("readable")).expect("utf-8");
        let expected_rejection = BUILDKIT_REJECTS.iter().find(|(f, _)| *f == name);
        match (kiln_parser::parse(&source), expected_rejection) {
            (Ok(_), None) => parsed += 1,
            (Err(e), Some((_, why))) if e.to_string().contains(why) => rejected_as_buildkit += 1,
            (Err(e), Some((_, why))) => failures.push(format!(
                "{name}: rejected for the wrong reason: {e} (want {why:?})"
            )),
            (Ok(_), Some(_)) => failures.push(format!("{name}: parsed, but BuildKit rejects it")),
            (Err(e), None) => failures.push(format!("{name}:{e}")),
        }
    }
    println!(
        "realworld corpus: {parsed} of {} files parse, {rejected_as_buildkit} rejected as BuildKit rejects them, {} unexpected",
        files.len(),
        failures.len()
    );
    assert_eq!(files.len(), 294, "the corpus holds 294 Dockerfiles");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(parsed, 292);
}
