//! Layer compression benchmark (run through `bench/compress.sh`).
//!
//! `compress_bench INPUT [MB]` compresses INPUT (created first if missing
//! or of another size: MB megabytes, default 500, half pseudo-random bytes
//! and half text-like lines, in alternating runs) from memory with:
//! flate2's single-threaded `GzEncoder` (levels 1 and 6), kiln's parallel
//! gzip at level 6 on 1 thread and on every core, and zstd level 3 on 1
//! worker and on every core. Every variant hashes the input and the output
//! (the diff id and blob digest a layer needs), so they do the same work.
//! Prints a Markdown table.

use kiln_oci::compress::{available_threads, compress, CompressOptions, Compression};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::time::Instant;

/// Hashes and counts what is written; the bytes go nowhere.
struct HashSink {
    hasher: Sha256,
    n: u64,
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.n += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn sink() -> HashSink {
    HashSink {
        hasher: Sha256::new(),
        n: 0,
    }
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn generate(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "layer",
        "image",
        "manifest",
        "digest",
        "kiln",
        "build",
        "stage",
        "copy",
        "run",
        "tar",
        "/usr/lib/x86_64-linux-gnu",
        "config",
        "rootfs",
        "sha256",
        "the",
        "of",
        "and",
        "0644",
        "ENV PATH=/usr/local/bin:/usr/bin",
        "root",
        "\n",
    ];
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut out = Vec::with_capacity(len + (1 << 20));
    let (mut random, mut text) = (0usize, 0usize);
    while out.len() < len {
        // Runs of 64 KiB..1 MiB, keeping the two kinds level.
        let run = (64 << 10) + (next() % (960 << 10)) as usize;
        if random <= text {
            for _ in 0..run / 8 {
                out.extend_from_slice(&next().to_le_bytes());
            }
            random += run;
        } else {
            let start = out.len();
            while out.len() - start < run {
                out.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize].as_bytes());
                out.push(b' ');
            }
            text += out.len() - start;
        }
    }
    out.truncate(len);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: compress_bench INPUT [MB]")?;
    let mb: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let len = mb << 20;
    let data = match std::fs::read(&path) {
        Ok(d) if d.len() == len => d,
        _ => {
            eprintln!("generating {mb} MB into {path}");
            let d = generate(len);
            std::fs::write(&path, &d)?;
            d
        }
    };
    // ONLY=substring runs just the variants whose "name threads" has it.
    let only = std::env::var("ONLY").unwrap_or_default();
    let runs: usize = std::env::var("RUNS").map_or(Ok(1), |r| r.parse())?;
    let cores = available_threads();
    let mb_in = data.len() as f64 / (1 << 20) as f64;
    let kind = std::env::var("INPUT_KIND").unwrap_or_else(|_| "half random, half text".into());
    println!(
        "input: {path}, {mb_in:.0} MiB ({kind}); {cores} cores available; \
         best of {runs} run(s)\n"
    );
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average before: {}", l.trim());
    }
    println!("| variant | threads | seconds | MiB/s | CPU s | CPU/wall | output MiB | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str,
               threads: usize,
               f: &dyn Fn() -> Result<u64, Box<dyn std::error::Error>>|
     -> Result<f64, Box<dyn std::error::Error>> {
        if !only.is_empty() && !format!("{name} {threads}").contains(&only) {
            return Ok(f64::NAN);
        }
        // The fastest of RUNS runs: other load on the machine only slows.
        let (mut secs, mut cpu, mut out) = (f64::INFINITY, 0.0, 0);
        for _ in 0..runs {
            let (start, cpu0) = (Instant::now(), cpu_seconds());
            let n = f()?;
            let s = start.elapsed().as_secs_f64();
            if s < secs {
                (secs, cpu, out) = (s, cpu_seconds() - cpu0, n);
            }
        }
        println!(
            "| {name} | {threads} | {secs:.2} | {:.1} | {cpu:.2} | {:.2} | {:.1} | {:.3} |",
            mb_in / secs,
            cpu / secs,
            out as f64 / (1 << 20) as f64,
            out as f64 / data.len() as f64
        );
        Ok(secs)
    };
    let flate = |level: u32| -> Result<u64, Box<dyn std::error::Error>> {
        let diff_id = Sha256::digest(&data);
        std::hint::black_box(diff_id);
        let mut enc = flate2::write::GzEncoder::new(sink(), flate2::Compression::new(level));
        enc.write_all(&data)?;
        let s = enc.finish()?;
        std::hint::black_box(s.hasher.finalize());
        Ok(s.n)
    };
    let ours = |c: Compression, threads: usize| -> Result<u64, Box<dyn std::error::Error>> {
        let (_, layer) = compress(&data[..], sink(), c, CompressOptions::with_threads(threads))?;
        Ok(layer.size)
    };
    row("flate2 GzEncoder level 1 (kiln today)", 1, &|| flate(1))?;
    let base = row("flate2 GzEncoder level 6 (baseline)", 1, &|| flate(6))?;
    let par1 = row("kiln parallel gzip level 6", 1, &|| {
        ours(Compression::Gzip { level: 6 }, 1)
    })?;
    let par = row("kiln parallel gzip level 6", cores, &|| {
        ours(Compression::Gzip { level: 6 }, cores)
    })?;
    row("kiln uncompressed (two hashes)", cores, &|| {
        ours(Compression::Uncompressed, cores)
    })?;
    row("kiln zstd level 3", 1, &|| {
        ours(Compression::Zstd { level: 3 }, 1)
    })?;
    row("kiln zstd level 3", cores, &|| {
        ours(Compression::Zstd { level: 3 }, cores)
    })?;
    println!();
    println!(
        "parallel gzip level 6 on {cores} threads vs flate2 GzEncoder level 6: {:.2}x faster",
        base / par
    );
    println!(
        "parallel gzip level 6 on {cores} threads vs on 1 thread: {:.2}x faster",
        par1 / par
    );
    Ok(())
}
