//! Parses the whole real-world corpus (`../shared/corpus/realworld/`, 294
//! files) per iteration. Run with `cargo bench -p kiln-parser`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::fs;
use std::path::Path;

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/realworld");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("the realworld corpus is at ../shared/corpus/realworld")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            !(n.ends_with(".dockerignore") || n.ends_with(".tsv") || n.starts_with("README"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| String::from_utf8_lossy(&fs::read(p).expect("readable")).into_owned())
        .collect()
}

fn bench(c: &mut Criterion) {
    let files = corpus();
    let bytes: usize = files.iter().map(String::len).sum();
    let mut group = c.benchmark_group("realworld");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("parse {} files", files.len()), |b| {
        b.iter(|| {
            for f in &files {
                let _ = std::hint::black_box(kiln_parser::parse(std::hint::black_box(f)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
