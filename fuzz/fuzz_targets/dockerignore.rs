//! `.dockerignore` parsing and matching. Input: the file's text, then
//! after a NUL byte the paths to match, one a line (a fixed list without
//! one).
#![no_main]

use kiln_patterns::DockerIgnore;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const PATHS: &str =
    "a\na/b\nnode_modules/x/y.js\n.git/HEAD\nsrc/main.rs\nDockerfile\n.dockerignore\nx/../y\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (ignore_text, paths) = text.split_once('\0').unwrap_or((&text, PATHS));
    if let Ok(ignore) = DockerIgnore::parse(ignore_text, Path::new(".dockerignore")) {
        let _ = ignore.has_exceptions();
        for path in paths.lines() {
            let _ = ignore.is_excluded(path);
            for pattern in ignore.patterns() {
                let _ = pattern.matches(path);
            }
        }
    }
    let lines: Vec<&str> = ignore_text.lines().collect();
    if let Ok(ignore) = DockerIgnore::from_patterns(&lines) {
        for path in paths.lines() {
            let _ = ignore.is_excluded(path);
        }
    }
});
