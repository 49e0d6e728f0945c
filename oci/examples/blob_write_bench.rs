//! Big-blob write benchmark (run through `bench/blob-write.sh`).
//!
//! `blob_write_bench DIR STORE` tars every file under DIR (sorted, as a
//! layer's tar is) into a blob of a store at STORE, once per variant of
//! the store's writer, and commits it: today's writer behind a 1 MiB
//! `BufWriter` (what `solver/src/layer.rs` does), and the pipelined writer
//! with and without that `BufWriter` and with other [`PipelineOptions`].
//! Variants are interleaved (run 1 of each, then run 2 of each, ...), the
//! page cache is written back (`sync`) before every run, and the table
//! gives medians. Every variant must produce the same digest. Two more
//! rows copy the finished tar, as one file, into `writer()` and into
//! `writer_pipelined()` (what archive import does with each blob); their
//! ratio is to the first of them. With GZIP=1, two last rows gzip that
//! file (default level, the shared compression pool) into each writer, as
//! an export's layer conversion does (slow: about 15 s a run).
//!
//! Environment: RUNS (5), ONLY (run the variants whose name contains it,
//! plus the baseline and the import rows), GZIP=1 (add the gzip rows).

use kiln_oci::{
    BlobIngester, BlobWriter, Compression, Digest, LayerCompressor, LocalStore, PipelineOptions,
};
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error>;

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Every regular file and directory under `dir`, sorted by path.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path)?;
        out.push(path.clone());
        if meta.is_dir() {
            walk(&path, out)?;
        }
    }
    Ok(())
}

/// Tars `paths` (relative to `root`) into `out`.
fn produce<W: Write>(root: &Path, paths: &[PathBuf], out: W) -> Result<W, BoxError> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    for path in paths {
        let name = path.strip_prefix(root)?;
        tar.append_path_with_name(path, name)?;
    }
    Ok(tar.into_inner()?)
}

#[derive(Clone, Copy)]
enum Kind {
    /// `writer()` behind a 1 MiB `BufWriter`: today's layer writer.
    Today,
    /// `writer_with(options)` behind a 1 MiB `BufWriter`.
    PipelinedBuffered(PipelineOptions),
    /// `writer_with(options)` written directly.
    Pipelined(PipelineOptions),
    /// No blob: the tar goes to `io::sink()`, what producing it costs.
    Floor,
    /// `io::copy` of the tar, as one file, into `writer()` (what archive
    /// import does with a blob).
    ImportToday,
    /// The same into `writer_pipelined()`.
    ImportPipelined,
    /// The tar, as one file, gzip-compressed (default level, the shared
    /// pool) into `writer()`: what an export's layer conversion does.
    GzipToday,
    /// The same into `writer_pipelined()`.
    GzipPipelined,
}

impl Kind {
    /// Rows of a group make the same blob; the first is the baseline.
    fn group(self) -> &'static str {
        match self {
            Kind::ImportToday | Kind::ImportPipelined => "import",
            Kind::GzipToday | Kind::GzipPipelined => "gzip",
            _ => "layer",
        }
    }
}

struct Variant {
    name: String,
    kind: Kind,
    total: Vec<f64>,
    commit: Vec<f64>,
    cpu: Vec<f64>,
}

/// One run: (seconds in all, seconds in commit, CPU seconds, digest).
fn run(
    store: &LocalStore,
    root: &Path,
    paths: &[PathBuf],
    source: &Path,
    kind: Kind,
) -> Result<(f64, f64, f64, Option<Digest>), BoxError> {
    // SAFETY: sync has no preconditions. The previous run's dirty pages
    // are written back now, not during this run.
    unsafe { libc::sync() };
    let (start, cpu0) = (Instant::now(), cpu_seconds());
    let writer: BlobWriter = match kind {
        Kind::Floor => {
            produce(root, paths, std::io::sink())?;
            let secs = start.elapsed().as_secs_f64();
            return Ok((secs, 0.0, cpu_seconds() - cpu0, None));
        }
        Kind::Today => {
            let out = produce(
                root,
                paths,
                BufWriter::with_capacity(1 << 20, store.writer()?),
            )?;
            out.into_inner().map_err(|e| e.into_error())?
        }
        Kind::PipelinedBuffered(options) => {
            let out = produce(
                root,
                paths,
                BufWriter::with_capacity(1 << 20, store.writer_with(options)?),
            )?;
            out.into_inner().map_err(|e| e.into_error())?
        }
        Kind::Pipelined(options) => produce(root, paths, store.writer_with(options)?)?,
        Kind::ImportToday | Kind::ImportPipelined => {
            let mut writer = match kind {
                Kind::ImportToday => store.writer()?,
                _ => store.writer_pipelined()?,
            };
            std::io::copy(&mut std::fs::File::open(source)?, &mut writer)?;
            writer
        }
        Kind::GzipToday | Kind::GzipPipelined => {
            let writer = match kind {
                Kind::GzipToday => store.writer()?,
                _ => store.writer_pipelined()?,
            };
            let mut gzip = LayerCompressor::new(writer, Compression::default())?;
            std::io::copy(&mut std::fs::File::open(source)?, &mut gzip)?;
            let (writer, _) = gzip.finish()?;
            writer
        }
    };
    let produced = Instant::now();
    let digest = writer.commit(None, None)?;
    let end = Instant::now();
    let cpu = cpu_seconds() - cpu0;
    store.delete(&digest)?;
    Ok((
        (end - start).as_secs_f64(),
        (end - produced).as_secs_f64(),
        cpu,
        Some(digest),
    ))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: blob_write_bench DIR STORE";
    let root = PathBuf::from(args.next().ok_or(usage)?);
    let store = LocalStore::open(args.next().ok_or(usage)?)?;
    let runs: usize = std::env::var("RUNS").map_or(Ok(5), |r| r.parse())?;
    let only = std::env::var("ONLY").unwrap_or_default();
    let gzip = std::env::var("GZIP").is_ok_and(|g| g == "1");

    let mut paths = Vec::new();
    walk(&root, &mut paths)?;
    let defaults = PipelineOptions::default();
    let every = |mib: u64| NonZeroU64::new(mib << 20);
    let mut variants: Vec<Variant> = [
        ("today: writer() + BufWriter 1 MiB", Kind::Today),
        ("(floor) the tar into io::sink(), no blob", Kind::Floor),
        (
            "pipelined (defaults) + BufWriter 1 MiB",
            Kind::PipelinedBuffered(defaults),
        ),
        ("pipelined (defaults)", Kind::Pipelined(defaults)),
        (
            "pipelined, no early writeback",
            Kind::Pipelined(PipelineOptions {
                writeback_every: None,
                ..defaults
            }),
        ),
        (
            "pipelined, caller writes, worker hashes",
            Kind::Pipelined(PipelineOptions {
                worker_writes: false,
                ..defaults
            }),
        ),
        (
            "pipelined, 4 x 4 MiB buffers",
            Kind::Pipelined(PipelineOptions {
                chunk_size: 4 << 20,
                ..defaults
            }),
        ),
        (
            "pipelined, writeback every 8 MiB",
            Kind::Pipelined(PipelineOptions {
                writeback_every: every(8),
                ..defaults
            }),
        ),
        (
            "pipelined, writeback every 32 MiB",
            Kind::Pipelined(PipelineOptions {
                writeback_every: every(32),
                ..defaults
            }),
        ),
        (
            "import: io::copy of the tar file into writer()",
            Kind::ImportToday,
        ),
        (
            "import: io::copy of the tar file into writer_pipelined()",
            Kind::ImportPipelined,
        ),
        (
            "export: gzip of the tar file into writer()",
            Kind::GzipToday,
        ),
        (
            "export: gzip of the tar file into writer_pipelined()",
            Kind::GzipPipelined,
        ),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, (name, kind))| {
        (*i == 0 || kind.group() == "import" || only.is_empty() || name.contains(&only))
            && (kind.group() != "gzip" || gzip)
    })
    .map(|(_, (name, kind))| Variant {
        name: name.to_string(),
        kind,
        total: Vec::new(),
        commit: Vec::new(),
        cpu: Vec::new(),
    })
    .collect();

    // One untimed run reads the context into the page cache and leaves
    // the tar, for the import variants, beside the store.
    let source = store.root().join("source.tar");
    produce(&root, &paths, std::fs::File::create(&source)?)?;
    let (_, _, _, expected) = run(&store, &root, &paths, &source, Kind::Today)?;
    let expected = expected.ok_or("no digest")?;
    let mut group_digests = HashMap::from([("layer", expected.clone())]);
    let size = std::fs::metadata(&source)?.len();
    println!(
        "{}: {} entries, a {:.1} MB tar ({expected}); {runs} runs per variant, interleaved",
        root.display(),
        paths.len(),
        size as f64 / 1e6
    );
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average before: {}", l.trim());
    }
    for _ in 0..runs {
        for v in &mut variants {
            let (total, commit, cpu, digest) = run(&store, &root, &paths, &source, v.kind)?;
            if let Some(digest) = digest {
                let want = group_digests
                    .entry(v.kind.group())
                    .or_insert(digest.clone());
                if digest != *want {
                    return Err(format!("{}: digest {digest}, expected {want}", v.name).into());
                }
            }
            v.total.push(total);
            v.commit.push(commit);
            v.cpu.push(cpu);
        }
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average after: {}", l.trim());
    }
    println!();
    println!("| variant | runs (s) | median s | of which commit s | CPU s | MB/s | today / this |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    std::fs::remove_file(&source)?;
    for v in &variants {
        let m = median(&v.total);
        let base = variants
            .iter()
            .find(|b| b.kind.group() == v.kind.group())
            .map_or(f64::NAN, |b| median(&b.total));
        let list: Vec<String> = v.total.iter().map(|t| format!("{t:.2}")).collect();
        println!(
            "| {} | {} | {m:.3} | {:.3} | {:.2} | {:.0} | {:.2}x |",
            v.name,
            list.join(", "),
            median(&v.commit),
            median(&v.cpu),
            size as f64 / 1e6 / m,
            base / m
        );
    }
    Ok(())
}
