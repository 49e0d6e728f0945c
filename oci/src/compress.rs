//! Layer compression: gzip (in parallel, pigz-style), zstd (multi-threaded)
//! or none, computing the layer's diff id (sha256 of the uncompressed tar),
//! its blob digest (sha256 of the compressed bytes) and the blob size in the
//! same pass that compresses it.
//!
//! [`LayerCompressor`] is a [`Write`] sink: the caller writes the
//! uncompressed tar into it (as `kiln_executor::diff` does) and the
//! compressed bytes go on to the inner writer (a store `BlobWriter`, say).
//! [`LayerCompressor::finish`] returns the inner writer and a
//! [`CompressedLayer`].
//!
//! # Determinism
//!
//! The compressed bytes depend only on the input, the [`Compression`]
//! (algorithm and level) and, for gzip, the block size; never on the number
//! of threads, the machine, or how the input was split into `write` calls.
//!
//! - **gzip**: the input is cut into fixed-size blocks
//!   ([`DEFAULT_BLOCK_SIZE`]). Each block is compressed on its own as raw
//!   deflate, primed with the last 32 KiB of the input before it as preset
//!   dictionary, and ends with a sync flush (an empty stored block, which
//!   byte-aligns it without ending the stream), except the last block,
//!   which ends the deflate stream. The blocks concatenate into one deflate
//!   stream, wrapped in a gzip header (no name, mtime 0, OS "unknown") and
//!   trailer (the CRC-32 of the input, combined over the blocks, and its
//!   length mod 2³²). This is pigz's scheme; any gzip decoder reads it.
//!   Since a block's bytes are a function of its own data and dictionary
//!   only, the thread count cannot change them. (They do depend on the
//!   deflate implementation: flate2's zlib-rs backend, whose SIMD paths
//!   compute the same results as its portable ones, so the CPU does not
//!   matter; a different backend or a zlib-rs release that changes its
//!   match finder could change the bytes, as with any compressor.)
//!   A block that deflate cannot shrink (random or already compressed
//!   data, told by its own bytes only: see `compress/incompressible.rs`)
//!   is written at level 0 instead, as stored blocks, at copy speed; text,
//!   binaries and typical layer content never take that path, so their
//!   bytes are what they were before it existed.
//!   Memory stays bounded: at most two blocks per pool thread are in
//!   flight, and a layer smaller than one block is compressed without
//!   threads.
//!
//! # Threads
//!
//! gzip blocks are compressed on a [`CompressionPool`], by default the one
//! [`CompressionPool::global`] shared by every compressor of the process
//! and sized to the cores (`KILN_COMPRESSION_THREADS`), so that layers
//! packed at once share the cores instead of oversubscribing them. The
//! diff id and the blob digest (sha256 does not compose, so each is one
//! ordered stream) are hashed on the pool too, while the blocks compress;
//! the calling thread only fills blocks and writes the output. For
//! uncompressed and zstd layers the hashes move to the pool after the
//! first MiB (zstd compresses on libzstd's own threads).
//! - **zstd**: libzstd's multi-threaded mode always (at least one worker,
//!   never the single-threaded `nbWorkers = 0` mode). libzstd documents
//!   that streaming multi-threaded output is the same for any number of
//!   workers (and it differs from single-threaded output); the tests check
//!   it for 1, 2 and 8 workers. Frames carry a content checksum. At most
//!   16 workers per layer, to bound memory.
//! - **uncompressed**: the tar itself; the digest is the diff id.
//!
//! [`Write::flush`] flushes the inner writer only: it never ends a block or
//! a zstd frame early, since that would make the output depend on when the
//! caller flushed.

use crate::media::{LayerCompression, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD};
use crate::Digest;
use sha2::Digest as _;
use std::fmt;
use std::io::{self, Read, Write};
use std::num::NonZeroUsize;
use std::str::FromStr;

mod incompressible;
mod parallel;
mod pool;

use parallel::ParallelGzip;
pub use pool::CompressionPool;
use pool::{Chunk, Lane};
use std::sync::Arc;

/// The gzip level `compression=gzip` uses when no level is given.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// The zstd level `compression=zstd` uses when no level is given.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// The gzip block size: the unit of parallel work (pigz's default).
pub const DEFAULT_BLOCK_SIZE: usize = 128 * 1024;
/// The smallest gzip block size: one deflate window, so that each block's
/// dictionary is the tail of the block before it.
pub const MIN_BLOCK_SIZE: usize = WINDOW;
/// The largest gzip block size.
pub const MAX_BLOCK_SIZE: usize = 64 * 1024 * 1024;

/// The most zstd workers one layer uses (each buffers a job of a few MiB;
/// the count does not change the output).
const ZSTD_MAX_WORKERS: usize = 16;

/// The deflate window: how much of the preceding input primes a block.
const WINDOW: usize = 32 * 1024;

/// Errors of layer compression.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// A compression name other than `gzip`, `zstd` or `uncompressed`.
    #[error("unknown compression {0:?} (expected gzip, zstd or uncompressed)")]
    UnknownCompression(String),
    /// A level outside the algorithm's range.
    #[error("{algorithm} compression level {level} is out of range {min}..={max}")]
    InvalidLevel {
        /// `gzip` or `zstd`.
        algorithm: &'static str,
        /// The level asked for.
        level: i64,
        /// Lowest level.
        min: i64,
        /// Highest level.
        max: i64,
    },
    /// A level given for `uncompressed`, which has none.
    #[error("uncompressed layers take no compression level")]
    NoLevel,
    /// A gzip block size outside [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`].
    #[error("gzip block size {0} is out of range {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}")]
    InvalidBlockSize(usize),
    /// The deflate engine failed.
    #[error("deflate: {0}")]
    Deflate(String),
    /// A compression thread stopped without an answer (it panicked).
    #[error("a compression thread stopped unexpectedly")]
    WorkerLost,
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<CompressError> for io::Error {
    fn from(e: CompressError) -> io::Error {
        match e {
            CompressError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// How to compress a layer, with its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip, level 1 (fastest) to 9 (smallest).
    Gzip {
        /// 1..=9.
        level: u32,
    },
    /// zstd, level 1 to 22.
    Zstd {
        /// 1..=22.
        level: i32,
    },
    /// A plain tar.
    Uncompressed,
}

impl Default for Compression {
    /// gzip at [`DEFAULT_GZIP_LEVEL`].
    fn default() -> Compression {
        Compression::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        }
    }
}

impl Compression {
    /// gzip at [`DEFAULT_GZIP_LEVEL`].
    pub fn gzip() -> Compression {
        Compression::default()
    }

    /// zstd at [`DEFAULT_ZSTD_LEVEL`].
    pub fn zstd() -> Compression {
        Compression::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }

    /// The same algorithm at `level` (what `compression-level=N` sets),
    /// checked against the algorithm's range.
    ///
    /// # Errors
    /// [`CompressError::InvalidLevel`], or [`CompressError::NoLevel`] for
    /// [`Compression::Uncompressed`].
    pub fn with_level(self, level: i64) -> Result<Compression, CompressError> {
        let c = match self {
            Compression::Gzip { .. } => Compression::Gzip {
                level: u32::try_from(level).unwrap_or(0),
            },
            Compression::Zstd { .. } => Compression::Zstd {
                level: i32::try_from(level).unwrap_or(0),
            },
            Compression::Uncompressed => return Err(CompressError::NoLevel),
        };
        match c.validate() {
            Ok(()) => Ok(c),
            Err(CompressError::InvalidLevel {
                algorithm,
                min,
                max,
                ..
            }) => Err(CompressError::InvalidLevel {
                algorithm,
                level,
                min,
                max,
            }),
            Err(e) => Err(e),
        }
    }

    /// Checks the level is in range: gzip 1..=9, zstd 1..=22.
    ///
    /// # Errors
    /// [`CompressError::InvalidLevel`].
    pub fn validate(self) -> Result<(), CompressError> {
        match self {
            Compression::Gzip { level } if !(1..=9).contains(&level) => {
                Err(CompressError::InvalidLevel {
                    algorithm: "gzip",
                    level: level.into(),
                    min: 1,
                    max: 9,
                })
            }
            Compression::Zstd { level } if !(1..=22).contains(&level) => {
                Err(CompressError::InvalidLevel {
                    algorithm: "zstd",
                    level: level.into(),
                    min: 1,
                    max: 22,
                })
            }
            _ => Ok(()),
        }
    }

    /// The OCI layer media type of this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip { .. } => OCI_LAYER_GZIP,
            Compression::Zstd { .. } => OCI_LAYER_ZSTD,
            Compression::Uncompressed => OCI_LAYER_TAR,
        }
    }

    /// The algorithm, without the level (for [`crate::MediaFamily::layer`]).
    pub fn layer_compression(self) -> LayerCompression {
        match self {
            Compression::Gzip { .. } => LayerCompression::Gzip,
            Compression::Zstd { .. } => LayerCompression::Zstd,
            Compression::Uncompressed => LayerCompression::None,
        }
    }
}

impl FromStr for Compression {
    type Err = CompressError;

    /// `gzip`, `zstd` or `uncompressed`, at the default level.
    fn from_str(s: &str) -> Result<Compression, CompressError> {
        match s {
            "gzip" => Ok(Compression::gzip()),
            "zstd" => Ok(Compression::zstd()),
            "uncompressed" => Ok(Compression::Uncompressed),
            other => Err(CompressError::UnknownCompression(other.to_string())),
        }
    }
}

impl fmt::Display for Compression {
    /// The algorithm name (`gzip`, `zstd`, `uncompressed`), without level.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
            Compression::Uncompressed => "uncompressed",
        })
    }
}

/// Tuning that never changes the output, except `block_size` for gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressOptions {
    /// Compression threads; `None` means the shared
    /// [`CompressionPool::global`] (every core, or
    /// `KILN_COMPRESSION_THREADS`), 1 the calling thread only, N a pool of
    /// N threads of the compressor's own. Does not change the output.
    pub threads: Option<NonZeroUsize>,
    /// gzip block size, [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`]. Part of
    /// what determines the gzip output; keep the default for reproducible
    /// digests.
    pub block_size: usize,
}

impl Default for CompressOptions {
    fn default() -> CompressOptions {
        CompressOptions {
            threads: None,
            block_size: DEFAULT_BLOCK_SIZE,
        }
    }
}

impl CompressOptions {
    /// The default options with `threads` threads (0 means every core).
    pub fn with_threads(threads: usize) -> CompressOptions {
        CompressOptions {
            threads: NonZeroUsize::new(threads),
            ..CompressOptions::default()
        }
    }

    fn thread_count(&self) -> usize {
        match self.threads {
            Some(n) => n.get(),
            None => available_threads(),
        }
    }
}

/// The number of threads compression uses by default: `KILN_COMPRESSION_THREADS`
/// when set to a positive number (like `pigz -p`; it never changes the
/// output), else the cores this process may use (1 when unknown).
pub fn available_threads() -> usize {
    std::env::var("KILN_COMPRESSION_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// What compressing a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedLayer {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the compressed bytes (the blob digest).
    pub digest: Digest,
    /// Compressed size in bytes.
    pub size: u64,
    /// Uncompressed size in bytes.
    pub uncompressed_size: u64,
    /// The OCI media type of the blob.
    pub media_type: &'static str,
}

/// Compresses a layer tar written into it; see the [module docs](self).
///
/// Write the uncompressed tar into it, then call
/// [`LayerCompressor::finish`]. Dropping it unfinished stops its work (its
/// blocks still queued on the pool are skipped) and leaves the inner
/// writer with an incomplete stream.
pub struct LayerCompressor<W: Write> {
    uncompressed: u64,
    compression: Compression,
    inner: Inner<W>,
}

enum Inner<W: Write> {
    /// The tar itself: its hash is both the diff id and the digest.
    Plain(Staged<W>),
    Gzip(ParallelGzip<W>),
    /// The encoder writing to the sink, and the hash of the input.
    Zstd(zstd::stream::write::Encoder<'static, Staged<W>>, StreamHash),
}

/// Where a compressor finds worker threads.
#[derive(Clone)]
pub(crate) enum PoolChoice {
    /// None: everything on the calling thread.
    Inline,
    /// [`CompressionPool::global`], if it has more than one thread.
    Global,
    /// A pool of its own with this many threads.
    Private(usize),
    /// The given pool.
    Given(CompressionPool),
}

impl PoolChoice {
    fn from_threads(threads: Option<NonZeroUsize>) -> PoolChoice {
        match threads.map(NonZeroUsize::get) {
            None => PoolChoice::Global,
            Some(1) => PoolChoice::Inline,
            Some(n) => PoolChoice::Private(n),
        }
    }

    /// The pool to use, if any (starting it, for a private one).
    pub(crate) fn resolve(self) -> Option<CompressionPool> {
        match self {
            PoolChoice::Inline => None,
            PoolChoice::Global => {
                Some(CompressionPool::global().clone()).filter(|p| p.threads() > 1)
            }
            PoolChoice::Private(n) => Some(CompressionPool::new(n)),
            PoolChoice::Given(p) => Some(p),
        }
    }
}

impl<W: Write> fmt::Debug for LayerCompressor<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerCompressor")
            .field("compression", &self.compression)
            .field("uncompressed", &self.uncompressed)
            .finish_non_exhaustive()
    }
}

impl<W: Write> LayerCompressor<W> {
    /// A compressor writing to `sink` with the default options (the
    /// process's [`CompressionPool::global`], [`DEFAULT_BLOCK_SIZE`]).
    ///
    /// # Errors
    /// An out-of-range level, zstd failing to set up, or the sink failing
    /// to take the gzip header.
    pub fn new(sink: W, compression: Compression) -> Result<LayerCompressor<W>, CompressError> {
        LayerCompressor::with_options(sink, compression, CompressOptions::default())
    }

    /// A compressor writing to `sink` with `options`: with
    /// `options.threads` unset it shares [`CompressionPool::global`]; set
    /// to 1 it works on the calling thread; set to N it starts a pool of N
    /// threads of its own, stopped when it is finished or dropped.
    ///
    /// # Errors
    /// As [`LayerCompressor::new`], and [`CompressError::InvalidBlockSize`].
    pub fn with_options(
        sink: W,
        compression: Compression,
        options: CompressOptions,
    ) -> Result<LayerCompressor<W>, CompressError> {
        let choice = PoolChoice::from_threads(options.threads);
        let zstd_workers = options.thread_count();
        LayerCompressor::build(sink, compression, options.block_size, choice, zstd_workers)
    }

    /// A compressor writing to `sink` that compresses and hashes on `pool`
    /// (shared with other compressors); `options.threads` only sets zstd's
    /// worker count, which has its own threads.
    ///
    /// # Errors
    /// As [`LayerCompressor::with_options`].
    pub fn with_pool(
        sink: W,
        compression: Compression,
        options: CompressOptions,
        pool: &CompressionPool,
    ) -> Result<LayerCompressor<W>, CompressError> {
        let zstd_workers = options.thread_count();
        LayerCompressor::build(
            sink,
            compression,
            options.block_size,
            PoolChoice::Given(pool.clone()),
            zstd_workers,
        )
    }

    fn build(
        sink: W,
        compression: Compression,
        block_size: usize,
        choice: PoolChoice,
        zstd_workers: usize,
    ) -> Result<LayerCompressor<W>, CompressError> {
        compression.validate()?;
        let inner = match compression {
            Compression::Uncompressed => Inner::Plain(Staged::new(sink, choice.resolve())),
            Compression::Gzip { level } => {
                Inner::Gzip(ParallelGzip::new(sink, level, block_size, choice)?)
            }
            Compression::Zstd { level } => {
                let pool = choice.resolve();
                let diff = StreamHash::new(pool.clone());
                let mut enc = zstd::stream::write::Encoder::new(Staged::new(sink, pool), level)?;
                // Always multi-threaded mode (nbWorkers >= 1), whose output
                // does not depend on the worker count; nbWorkers = 0 would
                // give different bytes. Each worker holds a job of several
                // MiB, hence the cap.
                let workers = u32::try_from(zstd_workers.clamp(1, ZSTD_MAX_WORKERS)).unwrap_or(1);
                enc.multithread(workers)?;
                enc.include_checksum(true)?;
                Inner::Zstd(enc, diff)
            }
        };
        Ok(LayerCompressor {
            uncompressed: 0,
            compression,
            inner,
        })
    }

    /// The compression this compressor writes.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Ends the compressed stream and returns the inner writer (unflushed
    /// beyond what the stream needed) and the digests.
    ///
    /// # Errors
    /// The sink failing, or a compression thread failing.
    pub fn finish(self) -> Result<(W, CompressedLayer), CompressError> {
        let media_type = self.compression.media_type();
        let (sink, diff_id, digest, size) = match self.inner {
            Inner::Plain(staged) => {
                let (sink, digest, size) = staged.finish()?;
                (sink, digest.clone(), digest, size)
            }
            Inner::Gzip(gz) => {
                let f = gz.finish()?;
                (
                    f.sink,
                    Digest::from_sha256(&f.diff.finalize()),
                    Digest::from_sha256(&f.digest.finalize()),
                    f.size,
                )
            }
            Inner::Zstd(enc, diff) => {
                let (sink, digest, size) = enc.finish()?.finish()?;
                let (diff_id, _) = diff.finish()?;
                (sink, diff_id, digest, size)
            }
        };
        Ok((
            sink,
            CompressedLayer {
                diff_id,
                digest,
                size,
                uncompressed_size: self.uncompressed,
                media_type,
            },
        ))
    }
}

impl<W: Write> Write for LayerCompressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            Inner::Plain(staged) => staged.write(buf)?,
            Inner::Gzip(gz) => gz.write(buf)?,
            Inner::Zstd(enc, diff) => {
                let n = enc.write(buf)?;
                diff.update(&buf[..n]);
                n
            }
        };
        self.uncompressed += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Never a compressor flush: that would put the caller's flush
        // points into the output.
        match &mut self.inner {
            Inner::Plain(staged) => staged.inner.flush(),
            Inner::Gzip(gz) => gz.sink.flush(),
            Inner::Zstd(enc, _) => enc.get_mut().inner.flush(),
        }
    }
}

/// Compresses everything `source` yields into `sink`: a [`LayerCompressor`]
/// fed by [`io::copy`].
///
/// # Errors
/// Reading `source`, or as [`LayerCompressor::with_options`] and
/// [`LayerCompressor::finish`].
pub fn compress<R: Read, W: Write>(
    mut source: R,
    sink: W,
    compression: Compression,
    options: CompressOptions,
) -> Result<(W, CompressedLayer), CompressError> {
    let mut c = LayerCompressor::with_options(sink, compression, options)?;
    io::copy(&mut source, &mut c)?;
    c.finish()
}

/// The size of the pieces a [`StreamHash`] hands to the pool.
const HASH_CHUNK: usize = 1 << 20;

/// sha256 of a stream written in pieces of any size: on the calling
/// thread for the first [`HASH_CHUNK`] bytes (small layers never touch the
/// pool), then copied into chunks hashed on the pool, if there is one.
struct StreamHash {
    lane: Lane,
    pool: Option<CompressionPool>,
    cur: Vec<u8>,
    seen: u64,
    /// Chunks handed to the lane, reused once hashed (a few MiB at most:
    /// the lane holds a bounded amount).
    lent: std::collections::VecDeque<Arc<Vec<u8>>>,
}

impl StreamHash {
    fn new(pool: Option<CompressionPool>) -> StreamHash {
        StreamHash {
            lane: Lane::new(None),
            pool,
            cur: Vec::new(),
            seen: 0,
            lent: std::collections::VecDeque::new(),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        if !self.lane.is_pooled() {
            if let Some(pool) = self.pool.as_ref().filter(|_| self.seen > HASH_CHUNK as u64) {
                self.lane.upgrade(pool);
            }
        }
        if !self.lane.is_pooled() {
            self.lane.push_slice(bytes);
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.cur.capacity() == 0 {
                self.cur = self.reuse();
            }
            let n = rest.len().min(HASH_CHUNK - self.cur.len());
            self.cur.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.cur.len() == HASH_CHUNK {
                self.push();
            }
        }
    }

    fn push(&mut self) {
        let buf = Arc::new(std::mem::take(&mut self.cur));
        self.lane.push(Chunk {
            buf: Arc::clone(&buf),
            start: 0,
        });
        self.lent.push_back(buf);
    }

    /// An empty chunk buffer: the oldest lent one if the lane is done with
    /// it, else a new one.
    fn reuse(&mut self) -> Vec<u8> {
        if let Some(oldest) = self.lent.pop_front() {
            match Arc::try_unwrap(oldest) {
                Ok(mut b) => {
                    b.clear();
                    return b;
                }
                Err(oldest) => self.lent.push_front(oldest),
            }
        }
        // Keep the list short: forget buffers the lane still holds.
        if self.lent.len() > 32 {
            self.lent.pop_front();
        }
        Vec::with_capacity(HASH_CHUNK)
    }

    fn finish(mut self) -> Result<(Digest, u64), CompressError> {
        if !self.cur.is_empty() {
            self.push();
        }
        let (h, n) = self.lane.finish()?;
        Ok((Digest::from_sha256(&h.finalize()), n))
    }
}

/// A writer that hashes and counts what passes through.
struct Staged<W> {
    inner: W,
    hash: StreamHash,
}

impl<W: Write> Staged<W> {
    fn new(inner: W, pool: Option<CompressionPool>) -> Staged<W> {
        Staged {
            inner,
            hash: StreamHash::new(pool),
        }
    }

    fn finish(self) -> Result<(W, Digest, u64), CompressError> {
        let (digest, n) = self.hash.finish()?;
        Ok((self.inner, digest, n))
    }
}

impl<W: Write> Write for Staged<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader of the uncompressed tar inside a layer blob read from
/// `reader`: gzip (multi-member, as parallel gzip writes), zstd or plain,
/// told apart by the first bytes (media types lie more often than magic).
///
/// # Errors
/// Reading the first bytes, or starting the zstd decoder.
pub fn decompressor<'a, R: std::io::BufRead + Send + 'a>(
    mut reader: R,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    let head = reader.fill_buf()?;
    Ok(match LayerCompression::detect(head) {
        LayerCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        LayerCompression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        LayerCompression::None => Box::new(reader),
    })
}
