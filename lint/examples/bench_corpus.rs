//! Lints every file of a directory in one process and prints files/s:
//! `cargo run --release -p kiln-lint --example bench_corpus -- DIR [ROUNDS]`.

use kiln_lint::{lint_file, Config};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: bench_corpus DIR [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(20);
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{dir}: {e}");
            std::process::exit(1);
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".dockerignore") || name.ends_with(".tsv") {
            continue;
        }
        if let Ok(bytes) = std::fs::read(entry.path()) {
            files.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    let config = Config::default();
    let start = Instant::now();
    let mut findings = 0;
    for _ in 0..rounds {
        for (name, text) in &files {
            findings += lint_file(name, text, &config).len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = files.len() * rounds;
    println!(
        "{} files x {rounds} rounds in {secs:.3}s: {:.0} files/s ({findings} findings)",
        files.len(),
        n as f64 / secs
    );
}
