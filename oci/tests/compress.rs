//! Layer compression (oci/src/compress.rs): round trips for every mode,
//! gzip and zstd output independent of the thread count and of how the
//! input is written, digests checked against independent sha256s, and the
//! `gzip`/`zstd` command-line tools accepting the output.

use kiln_oci::compress::{
    compress, CompressError, CompressOptions, CompressedLayer, Compression, LayerCompressor,
    DEFAULT_BLOCK_SIZE,
};
use kiln_oci::media;
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

/// A small deterministic PRNG (xorshift64*), so test data is the same on
/// every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

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
    "gzip",
    "zstd",
    "/usr/lib/x86_64-linux-gnu",
    "config",
    "rootfs",
    "sha256",
    "the",
    "of",
    "and",
    "ENV PATH=/usr/local/bin",
    "0644",
    "root",
    "\n",
];

/// `len` bytes alternating runs of random bytes and text-like lines.
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 1024);
    while out.len() < len {
        let run = 1024 + (rng.next() % (96 * 1024)) as usize;
        if rng.next() & 1 == 0 {
            for _ in 0..run / 8 {
                out.extend_from_slice(&rng.next().to_le_bytes());
            }
        } else {
            let start = out.len();
            while out.len() - start < run {
                let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
                out.extend_from_slice(w.as_bytes());
                out.push(b' ');
            }
        }
    }
    out.truncate(len);
    out
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

fn run(data: &[u8], compression: Compression, threads: usize) -> (Vec<u8>, CompressedLayer) {
    compress(
        data,
        Vec::new(),
        compression,
        CompressOptions::with_threads(threads),
    )
    .expect("compressing")
}

fn decode(compression: Compression, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match compression {
        Compression::Gzip { .. } => {
            flate2::read::GzDecoder::new(blob)
                .read_to_end(&mut out)
                .expect("gzip decoding");
        }
        Compression::Zstd { .. } => {
            out = zstd::decode_all(blob).expect("zstd decoding");
        }
        Compression::Uncompressed => out = blob.to_vec(),
    }
    out
}

/// Compresses `data`, checks the decoded output and every digest, and
/// returns the blob.
fn check_roundtrip(data: &[u8], compression: Compression, threads: usize) -> Vec<u8> {
    let (blob, layer) = run(data, compression, threads);
    let decoded = decode(compression, &blob);
    assert!(
        decoded == data,
        "{compression:?}, {threads} threads, {} bytes: decoded output differs from the input",
        data.len()
    );
    assert_eq!(layer.diff_id.as_str(), sha256(data), "diff_id");
    assert_eq!(layer.digest.as_str(), sha256(&blob), "digest");
    assert_eq!(layer.size, blob.len() as u64, "size");
    assert_eq!(layer.uncompressed_size, data.len() as u64);
    assert_eq!(layer.media_type, compression.media_type());
    if compression == Compression::Uncompressed {
        assert_eq!(layer.diff_id, layer.digest);
    }
    blob
}

/// Runs `tool -t` on `blob` if the tool is installed; says why not if not.
fn cli_test(tool: &str, ext: &str, blob: &[u8]) {
    if Command::new(tool).arg("--version").output().is_err() {
        eprintln!("skipping `{tool} -t`: {tool} is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("layer.tar.{ext}"));
    std::fs::write(&path, blob).expect("writing blob");
    let out = Command::new(tool)
        .arg("-t")
        .arg(&path)
        .output()
        .expect("running the tool");
    assert!(
        out.status.success(),
        "`{tool} -t` rejected the output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Decompresses `blob` with the CLI and compares with `data`.
fn cli_decode(tool: &str, ext: &str, blob: &[u8], data: &[u8]) {
    if Command::new(tool).arg("--version").output().is_err() {
        eprintln!("skipping `{tool} -dc`: {tool} is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path: &Path = &dir.path().join(format!("layer.tar.{ext}"));
    std::fs::write(path, blob).expect("writing blob");
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .expect("running the tool");
    assert!(out.status.success(), "`{tool} -dc` failed");
    assert!(out.stdout == data, "`{tool} -dc` output differs from input");
}

const GZIP6: Compression = Compression::Gzip { level: 6 };
const ZSTD3: Compression = Compression::Zstd { level: 3 };

#[test]
fn roundtrip_20mb_every_mode() {
    let data = mixed(20 << 20, 1);
    let small = &data[..3 << 20];
    for (c, data) in [
        (GZIP6, &data[..]),
        (ZSTD3, &data[..]),
        (Compression::Uncompressed, &data[..]),
        // Other levels on less data: debug builds compress slowly.
        (Compression::Gzip { level: 1 }, small),
        (Compression::Gzip { level: 9 }, small),
        (Compression::Zstd { level: 19 }, small),
    ] {
        let blob = check_roundtrip(data, c, 0);
        if c != Compression::Uncompressed {
            assert!(
                blob.len() < data.len() * 3 / 4,
                "{c:?} compressed 20 MB of half-text only to {} bytes",
                blob.len()
            );
        }
    }
}

#[test]
fn gzip_identical_for_1_2_and_8_threads() {
    let data = mixed(20 << 20, 2);
    let one = check_roundtrip(&data, GZIP6, 1);
    let two = check_roundtrip(&data, GZIP6, 2);
    let eight = check_roundtrip(&data, GZIP6, 8);
    assert!(one == two, "gzip: 1 and 2 threads differ");
    assert!(one == eight, "gzip: 1 and 8 threads differ");
    cli_test("gzip", "gz", &one);
    cli_decode("gzip", "gz", &one, &data);
}

#[test]
fn gzip_output_independent_of_write_sizes() {
    let data = mixed(3 << 20, 3);
    let (whole, _) = run(&data, GZIP6, 3);
    let mut rng = Rng(7);
    let mut c = LayerCompressor::with_options(Vec::new(), GZIP6, CompressOptions::with_threads(2))
        .expect("compressor");
    let mut rest = &data[..];
    while !rest.is_empty() {
        let n = (1 + rng.next() % 300_000) as usize;
        let n = n.min(rest.len());
        c.write_all(&rest[..n]).expect("write");
        // A flush must not end a block early.
        c.flush().expect("flush");
        rest = &rest[n..];
    }
    let (pieces, layer) = c.finish().expect("finish");
    assert!(
        whole == pieces,
        "gzip output depends on how the input was written"
    );
    assert_eq!(layer.digest.as_str(), sha256(&whole));
}

#[test]
fn zstd_identical_for_1_2_and_8_workers() {
    // More than one zstd job (level 3's job size is a few MB), so that
    // the worker count could matter.
    let data = mixed(20 << 20, 4);
    let one = check_roundtrip(&data, ZSTD3, 1);
    let two = check_roundtrip(&data, ZSTD3, 2);
    let eight = check_roundtrip(&data, ZSTD3, 8);
    assert!(one == two, "zstd: 1 and 2 workers differ");
    assert!(one == eight, "zstd: 1 and 8 workers differ");
    // Written in pieces with flushes: the same bytes again.
    let mut c = LayerCompressor::with_options(Vec::new(), ZSTD3, CompressOptions::with_threads(2))
        .expect("compressor");
    for piece in data.chunks(777_777) {
        c.write_all(piece).expect("write");
        c.flush().expect("flush");
    }
    let (pieces, _) = c.finish().expect("finish");
    assert!(
        one == pieces,
        "zstd output depends on how the input was written"
    );
    cli_test("zstd", "zst", &one);
    cli_decode("zstd", "zst", &one, &data);
}

#[test]
fn edge_sizes_every_mode() {
    let b = DEFAULT_BLOCK_SIZE;
    let sizes = [
        0,
        1,
        100,
        32 * 1024 - 1,
        32 * 1024,
        32 * 1024 + 1,
        b - 1,
        b,
        b + 1,
        2 * b - 1,
        2 * b,
        2 * b + 1,
        9 * b,
    ];
    for &len in &sizes {
        let data = mixed(len, 5 + len as u64);
        let one = check_roundtrip(&data, GZIP6, 1);
        let four = check_roundtrip(&data, GZIP6, 4);
        assert!(one == four, "gzip, {len} bytes: 1 and 4 threads differ");
        cli_test("gzip", "gz", &one);
        let z1 = check_roundtrip(&data, ZSTD3, 1);
        let z4 = check_roundtrip(&data, ZSTD3, 4);
        assert!(z1 == z4, "zstd, {len} bytes: 1 and 4 workers differ");
        cli_test("zstd", "zst", &z1);
        check_roundtrip(&data, Compression::Uncompressed, 1);
    }
}

#[test]
fn all_zero_and_incompressible_inputs() {
    // Extremes for the output buffer sizing: very compressible, and
    // random (deflate falls back to stored blocks).
    let zeros = vec![0u8; 5 * DEFAULT_BLOCK_SIZE + 17];
    let mut rng = Rng(99);
    let random: Vec<u8> = (0..(5 * DEFAULT_BLOCK_SIZE + 17) / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    for data in [&zeros, &random] {
        for level in [1, 6, 9] {
            let c = Compression::Gzip { level };
            let a = check_roundtrip(data, c, 1);
            let b = check_roundtrip(data, c, 3);
            assert!(a == b);
        }
        check_roundtrip(data, ZSTD3, 2);
    }
}

#[test]
fn block_size_is_honoured_and_checked() {
    let data = mixed(1 << 20, 6);
    let opts = |threads, block_size| CompressOptions {
        threads: std::num::NonZeroUsize::new(threads),
        block_size,
    };
    let (a, _) = compress(&data[..], Vec::new(), GZIP6, opts(1, 32 * 1024)).expect("32k");
    let (b, _) = compress(&data[..], Vec::new(), GZIP6, opts(2, 32 * 1024)).expect("32k");
    assert!(a == b);
    assert_eq!(decode(GZIP6, &a), data);
    let (c, _) = compress(&data[..], Vec::new(), GZIP6, opts(2, 1 << 20)).expect("1m");
    assert_eq!(decode(GZIP6, &c), data);
    assert!(matches!(
        LayerCompressor::with_options(Vec::new(), GZIP6, opts(1, 1000)),
        Err(CompressError::InvalidBlockSize(1000))
    ));
}

#[test]
fn gzip_header_is_fixed() {
    let (blob, _) = run(b"hello", GZIP6, 1);
    // No name, mtime 0, OS unknown: nothing from the machine or the clock.
    assert_eq!(&blob[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let (blob, _) = run(b"", Compression::Gzip { level: 9 }, 1);
    assert_eq!(blob[8], 2, "XFL for level 9");
}

#[test]
fn names_levels_and_media_types() {
    assert_eq!("gzip".parse::<Compression>().ok(), Some(GZIP6));
    assert_eq!("zstd".parse::<Compression>().ok(), Some(ZSTD3));
    assert_eq!(
        "uncompressed".parse::<Compression>().ok(),
        Some(Compression::Uncompressed)
    );
    assert!(matches!(
        "lz4".parse::<Compression>(),
        Err(CompressError::UnknownCompression(_))
    ));
    for c in [GZIP6, ZSTD3, Compression::Uncompressed] {
        assert_eq!(c.to_string().parse::<Compression>().ok(), Some(c));
    }
    assert_eq!(Compression::default(), GZIP6);
    assert_eq!(GZIP6.media_type(), media::OCI_LAYER_GZIP);
    assert_eq!(ZSTD3.media_type(), media::OCI_LAYER_ZSTD);
    assert_eq!(Compression::Uncompressed.media_type(), media::OCI_LAYER_TAR);
    assert_eq!(
        GZIP6.with_level(9).ok(),
        Some(Compression::Gzip { level: 9 })
    );
    assert_eq!(
        ZSTD3.with_level(22).ok(),
        Some(Compression::Zstd { level: 22 })
    );
    for bad in [0, 10, -1, 1 << 40] {
        assert!(matches!(
            GZIP6.with_level(bad),
            Err(CompressError::InvalidLevel { level, .. }) if level == bad
        ));
    }
    assert!(ZSTD3.with_level(23).is_err());
    assert!(ZSTD3.with_level(0).is_err());
    assert!(matches!(
        Compression::Uncompressed.with_level(1),
        Err(CompressError::NoLevel)
    ));
    assert!(LayerCompressor::new(Vec::new(), Compression::Gzip { level: 0 }).is_err());
    assert!(LayerCompressor::new(Vec::new(), Compression::Zstd { level: 30 }).is_err());
}

/// A sink that fails after `left` bytes.
#[derive(Debug)]
struct Failing {
    left: usize,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn sink_errors_are_returned_not_hung_on() {
    let data = mixed(4 << 20, 8);
    for c in [GZIP6, ZSTD3, Compression::Uncompressed] {
        for threads in [1, 4] {
            let r = compress(
                &data[..],
                Failing { left: 100_000 },
                c,
                CompressOptions::with_threads(threads),
            );
            match r {
                Err(CompressError::Io(e)) => assert!(e.to_string().contains("disk full")),
                other => panic!("{c:?}: expected the sink's error, got {other:?}"),
            }
        }
    }
}

#[test]
fn dropping_unfinished_stops_the_threads() {
    let data = mixed(2 << 20, 9);
    let mut c = LayerCompressor::with_options(Vec::new(), GZIP6, CompressOptions::with_threads(4))
        .expect("compressor");
    c.write_all(&data).expect("write");
    drop(c);
}

/// Digests of gzip output for compressible input, computed with the
/// implementation before the incompressible-block path existed: deflated
/// blocks must keep their bytes (layer digests are pinned by goldens).
#[test]
fn compressible_output_is_unchanged() {
    let want = [
        (
            11,
            3 << 20,
            1,
            "sha256:68805975aae0df366fcdda9f6156fd5c8b55de2fbf9a06ecf2e9f107cb672591",
        ),
        (
            11,
            3 << 20,
            6,
            "sha256:22b0aead033b98813017df773e9d00e0722de7583e9854640eadaf6adfe56e44",
        ),
        (
            11,
            3 << 20,
            9,
            "sha256:d5ebe1d6a18a09ffa9f2ff0ad7a1ff511cb4ab8bee0af26517c2018918ea82bc",
        ),
        (
            12,
            1 << 20,
            6,
            "sha256:df5d394c8cb59e49f50aca3fa3b7b64de60e2904acbd86c57434de125d9c84a0",
        ),
    ];
    for (seed, len, level, digest) in want {
        let data = mixed(len, seed);
        for threads in [1, 2] {
            let (_, layer) = run(&data, Compression::Gzip { level }, threads);
            assert_eq!(
                layer.digest.as_str(),
                digest,
                "mixed({len}, {seed}) at level {level} on {threads} threads"
            );
        }
    }
    let text: Vec<u8> = mixed(4 << 20, 13)
        .into_iter()
        .filter(u8::is_ascii)
        .collect();
    let (_, layer) = run(&text, GZIP6, 2);
    assert_eq!(
        layer.digest.as_str(),
        "sha256:81ce25f807ae273be2df9ca831995947e46426d20e0bf0660bc1ed4c39674eda"
    );
}

/// `len` pseudo-random bytes.
fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out: Vec<u8> = (0..len / 8 + 1)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    out.truncate(len);
    out
}

/// The most a stored stream may take: the gzip header and trailer, and
/// per block of input (the last one may be empty) its stored-block
/// headers (5 bytes per 64 KiB) and its sync flush (5 bytes).
fn stored_bound(len: usize) -> usize {
    let blocks = len / DEFAULT_BLOCK_SIZE + 1;
    18 + len + 5 * (len / 65_535 + blocks) + 5 * blocks
}

/// Decodes `blob` with Python's zlib (a third implementation, besides
/// flate2 and gzip(1)), if python3 is installed.
fn python_decode(blob: &[u8], data: &[u8]) {
    let probe = Command::new("python3").arg("--version").output();
    if probe.is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is not installed (CI=true needs it)"
        );
        eprintln!("skipping the Python decoder: python3 is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("layer.tar.gz");
    std::fs::write(&path, blob).expect("writing blob");
    let out = Command::new("python3")
        .arg("-c")
        .arg("import gzip, sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())")
        .arg(&path)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "python3's gzip module rejected the output"
    );
    assert!(
        out.stdout == data,
        "python3's gzip output differs from input"
    );
}

#[test]
fn random_blocks_are_stored_and_bounded() {
    let b = DEFAULT_BLOCK_SIZE;
    for len in [64 * 1024, b - 1, b, b + 1, 2 * b, 5 * b + 17, 3 << 20] {
        let data = random(len, 40 + len as u64);
        let one = check_roundtrip(&data, GZIP6, 1);
        assert!(
            one.len() <= stored_bound(len),
            "{len} random bytes took {} bytes (bound {})",
            one.len(),
            stored_bound(len)
        );
        for threads in [2, 4] {
            assert!(
                one == check_roundtrip(&data, GZIP6, threads),
                "random, {len} bytes: 1 and {threads} threads differ"
            );
        }
        // The shared pool, and levels 1 and 9: stored blocks too.
        assert!(one == check_roundtrip(&data, GZIP6, 0));
        for level in [1, 9] {
            let other = check_roundtrip(&data, Compression::Gzip { level }, 2);
            assert!(other.len() <= stored_bound(len), "level {level}");
        }
        cli_test("gzip", "gz", &one);
        cli_decode("gzip", "gz", &one, &data);
        python_decode(&one, &data);
    }
}

#[test]
fn incompressible_path_gives_the_same_digest_every_run() {
    // Random blocks, a compressed file stored twice (a repeat deflate
    // finds), text, and random again, across block boundaries.
    let b = DEFAULT_BLOCK_SIZE;
    let mut data = random(3 * b + 1000, 77);
    let piece = data[b..b + 20_000].to_vec();
    data.extend_from_slice(&piece);
    data.extend_from_slice(&mixed(2 * b, 78));
    data.extend(random(2 * b + 5, 79));
    let (first, layer) = run(&data, GZIP6, 2);
    for threads in [0, 1, 3, 8] {
        for _ in 0..2 {
            let (blob, again) = run(&data, GZIP6, threads);
            assert!(blob == first, "{threads} threads: another output");
            assert_eq!(again, layer);
        }
    }
    assert_eq!(decode(GZIP6, &first), data);
    // Smaller than storing everything: the text and the repeat were
    // deflated.
    assert!(first.len() < data.len() - b / 2, "{} bytes", first.len());
    cli_test("gzip", "gz", &first);
    python_decode(&first, &data);
}

#[test]
fn concurrent_compressors_share_one_pool() {
    let pool = kiln_oci::compress::CompressionPool::new(2);
    assert_eq!(pool.threads(), 2);
    let inputs: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let mut d = mixed(2 << 20, 100 + i);
            d.extend(random(1 << 20, 200 + i));
            d
        })
        .collect();
    let expected: Vec<(Vec<u8>, CompressedLayer)> = inputs
        .iter()
        .map(|d| run(d, GZIP6, 1))
        .chain(inputs.iter().map(|d| run(d, Compression::Uncompressed, 1)))
        .collect();
    let outputs: Vec<(Vec<u8>, CompressedLayer)> = std::thread::scope(|s| {
        let handles: Vec<_> = [GZIP6, Compression::Uncompressed]
            .into_iter()
            .flat_map(|c| inputs.iter().map(move |d| (c, d)))
            .map(|(c, d)| {
                let pool = &pool;
                s.spawn(move || {
                    let mut w =
                        LayerCompressor::with_pool(Vec::new(), c, CompressOptions::default(), pool)
                            .expect("compressor");
                    for piece in d.chunks(100_000) {
                        w.write_all(piece).expect("write");
                    }
                    w.finish().expect("finish")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("compressor thread"))
            .collect()
    });
    for (i, (got, want)) in outputs.iter().zip(&expected).enumerate() {
        assert!(
            got.0 == want.0,
            "compressor {i}: output differs on the shared pool"
        );
        assert_eq!(got.1, want.1, "compressor {i}: digests differ");
    }
    wait_idle(&pool, "after every finish");
}

/// Waits for `pool` to have no task queued or running (a worker may still
/// be returning from the last one when a compressor finishes). The
/// deadline only keeps a broken pool from hanging the test.
fn wait_idle(pool: &kiln_oci::compress::CompressionPool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while pool.busy() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the pool never emptied"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn dropping_unfinished_on_a_shared_pool_stops_its_work() {
    let pool = kiln_oci::compress::CompressionPool::new(1);
    let data = mixed(8 << 20, 300);
    for c in [GZIP6, Compression::Uncompressed, ZSTD3] {
        let mut w = LayerCompressor::with_pool(Vec::new(), c, CompressOptions::default(), &pool)
            .expect("compressor");
        w.write_all(&data).expect("write");
        drop(w);
        // Its queued blocks are skipped: the pool empties.
        wait_idle(&pool, &format!("{c:?}"));
        // The pool still works.
        let small = &data[..1 << 20];
        let mut w = LayerCompressor::with_pool(Vec::new(), c, CompressOptions::default(), &pool)
            .expect("compressor");
        w.write_all(small).expect("write");
        let (blob, layer) = w.finish().expect("finish");
        assert_eq!(decode(c, &blob), small);
        assert_eq!(layer.diff_id.as_str(), sha256(small));
    }
    // Dropping the last handle stops the threads (and does not hang).
    drop(pool);
}

#[test]
fn compressors_and_pools_move_between_threads() {
    // Background compression hands a compressor to another thread.
    fn send<T: Send>() {}
    fn shared<T: Send + Sync>() {}
    send::<LayerCompressor<Vec<u8>>>();
    shared::<kiln_oci::compress::CompressionPool>();
    let data = mixed(3 << 20, 400);
    let mut c = LayerCompressor::new(Vec::new(), GZIP6).expect("compressor");
    c.write_all(&data[..1 << 20]).expect("write");
    let (blob, layer) = std::thread::spawn(move || {
        c.write_all(&data[1 << 20..]).expect("write");
        c.finish().expect("finish")
    })
    .join()
    .expect("thread");
    assert_eq!(layer.digest.as_str(), sha256(&blob));
    assert_eq!(decode(GZIP6, &blob), mixed(3 << 20, 400));
}
