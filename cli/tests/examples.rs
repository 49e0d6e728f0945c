//! The examples in examples/ stay valid: every Dockerfile parses, and the
//! ones whose bases ship with the project build.

mod common;

use common::{s, Env, BUSYBOX};
use std::path::Path;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

#[test]
fn every_example_dockerfile_parses() {
    let env = Env::new();
    let mut n = 0;
    for entry in std::fs::read_dir(EXAMPLES).expect("examples") {
        let dockerfile = entry.expect("entry").path().join("Dockerfile");
        if !dockerfile.exists() {
            continue;
        }
        env.ok(&["parse", "-f", s(&dockerfile)], None);
        n += 1;
    }
    assert!(n >= 3, "{n} example Dockerfiles");
}

#[test]
fn busybox_examples_build() {
    let env = Env::new();
    let base = format!("busybox=oci-layout://{BUSYBOX}");
    for (example, check) in [("hello", "usr/local/bin/hello"), ("static-site", "")] {
        let out = env.path(example);
        let dir = Path::new(EXAMPLES).join(example);
        env.ok(
            &["build", "--build-context", &base, "-o", s(&out), s(&dir)],
            None,
        );
        if !check.is_empty() {
            assert!(out.join(check).exists(), "{example}: {check}");
        }
    }
}
