//! pigz-style parallel gzip: fixed-size blocks deflated on the
//! [`CompressionPool`], each primed with the 32 KiB of input before it,
//! written in order (see the parent module on determinism). Blocks that
//! [`incompressible`] picks are written as stored blocks instead. The
//! diff id and the blob digest are computed by two [`Lane`]s on the pool,
//! while the blocks are compressed.

use super::incompressible::incompressible;
use super::pool::{Chunk, CompressionPool, Lane};
use super::{CompressError, PoolChoice, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, WINDOW};
use flate2::{Compress, FlushCompress, Status};
use sha2::Sha256;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

/// A compressed block, with its buffers handed back for reuse.
struct Done {
    data: Arc<Vec<u8>>,
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    /// Uncompressed length of the block.
    len: u64,
}

/// pigz-style gzip: blocks compressed independently (in parallel when
/// there is a pool) and written in order.
pub(super) struct ParallelGzip<W: Write> {
    pub(super) sink: W,
    level: u32,
    block_size: usize,
    /// The block being filled, after `dict` bytes of dictionary.
    buf: Vec<u8>,
    dict: usize,
    crc: crc32fast::Hasher,
    total: u64,
    engine: Engine,
    /// Where to find a pool for the second block; `None` once decided.
    choice: Option<PoolChoice>,
    /// Buffers free for reuse.
    spare: Vec<Vec<u8>>,
    /// Buffers handed to a lane, reusable once it has hashed them.
    lent: VecDeque<Arc<Vec<u8>>>,
    /// sha256 of the input (the diff id).
    diff: Lane,
    /// sha256 of the output (the blob digest), and its length.
    out: Lane,
}

enum Engine {
    /// Compress on the calling thread.
    Inline,
    /// Compress on a pool, at most `window` blocks in flight.
    Pool {
        pool: CompressionPool,
        pending: VecDeque<Receiver<Result<Done, CompressError>>>,
        window: usize,
        /// Set when the compressor is dropped: its queued blocks are
        /// skipped.
        cancelled: Cancel,
    },
}

/// A flag set when dropped.
struct Cancel(Arc<AtomicBool>);

impl Drop for Cancel {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What [`ParallelGzip::finish`] returns: the sink, the hashers of the
/// input and output, and the output's length.
pub(super) struct Finished<W> {
    pub(super) sink: W,
    pub(super) diff: Sha256,
    pub(super) digest: Sha256,
    pub(super) size: u64,
}

fn new_deflate(level: u32) -> Compress {
    // Raw deflate (no zlib header), 32 KiB window.
    Compress::new(flate2::Compression::new(level), false)
}

/// Compresses `data[dict..]` primed with `data[..dict]` into `out`, as a
/// byte-aligned piece of one deflate stream: sync-flushed, or ending the
/// stream when `last`.
fn deflate_block(
    c: &mut Compress,
    data: &[u8],
    dict: usize,
    last: bool,
    out: &mut Vec<u8>,
) -> Result<(), CompressError> {
    let (dictionary, input) = data.split_at(dict.min(data.len()));
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary)
            .map_err(|e| CompressError::Deflate(e.to_string()))?;
    }
    out.clear();
    // Incompressible data grows by ~5 bytes per 16 KiB stored block.
    out.reserve(input.len() + input.len() / 1024 + 64);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut pos = 0usize;
    loop {
        let before = c.total_in();
        let status = c
            .compress_vec(&input[pos..], out, flush)
            .map_err(|e| CompressError::Deflate(e.to_string()))?;
        pos += usize::try_from(c.total_in() - before)
            .map_err(|_| CompressError::Deflate("input count overflow".into()))?;
        let done = match status {
            Status::StreamEnd => true,
            // A flush is complete when all input is consumed and deflate
            // left room in the output.
            Status::Ok | Status::BufError => {
                !last && pos == input.len() && out.len() < out.capacity()
            }
        };
        if done {
            return Ok(());
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// [`deflate_block`] on a fresh deflate state, with the block's CRC-32
/// and length. A state is never reused: zlib's `deflateReset` leaves the
/// previous input in the window, and the match search may read past the
/// end of the new input there (only the match length is clamped), so a
/// reused state could pick another match at a block's end depending on
/// which block it compressed before, and the output would depend on the
/// thread count. A new state costs an allocation per block.
fn compress_block(
    level: u32,
    data: Arc<Vec<u8>>,
    dict: usize,
    last: bool,
    mut out: Vec<u8>,
) -> Result<Done, CompressError> {
    let block = &data[dict.min(data.len())..];
    if incompressible(block) {
        // Level 0: stored blocks, no dictionary needed (nothing refers
        // back), copied at memory speed.
        deflate_block(&mut new_deflate(0), block, 0, last, &mut out)?;
    } else {
        deflate_block(&mut new_deflate(level), &data, dict, last, &mut out)?;
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(block);
    let len = block.len() as u64;
    Ok(Done {
        data,
        out,
        crc,
        len,
    })
}

impl<W: Write> ParallelGzip<W> {
    pub(super) fn new(
        mut sink: W,
        level: u32,
        block_size: usize,
        choice: PoolChoice,
    ) -> Result<ParallelGzip<W>, CompressError> {
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(CompressError::InvalidBlockSize(block_size));
        }
        // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL OS=unknown, as Go's gzip.
        let xfl = match level {
            1 => 4,
            9 => 2,
            _ => 0,
        };
        let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff];
        sink.write_all(&header)?;
        let mut out = Lane::new(None);
        out.push_slice(&header);
        Ok(ParallelGzip {
            sink,
            level,
            block_size,
            buf: Vec::with_capacity(block_size),
            dict: 0,
            crc: crc32fast::Hasher::new(),
            total: 0,
            engine: Engine::Inline,
            choice: Some(choice),
            spare: Vec::new(),
            lent: VecDeque::new(),
            diff: Lane::new(None),
            out,
        })
    }

    /// Moves compression and hashing to a pool, once there is more than
    /// one block (a layer smaller than a block starts no thread). Without
    /// a pool with threads, everything stays on the calling thread: the
    /// output is the same either way.
    fn start_pool(&mut self) {
        let Some(pool) = self.choice.take().and_then(PoolChoice::resolve) else {
            return;
        };
        if pool.threads() == 0 {
            return;
        }
        self.diff.upgrade(&pool);
        self.out.upgrade(&pool);
        self.engine = Engine::Pool {
            window: pool.threads() * 2,
            pending: VecDeque::new(),
            cancelled: Cancel(Arc::new(AtomicBool::new(false))),
            pool,
        };
    }

    fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        if let Some(mut b) = self.spare.pop() {
            b.clear();
            return b;
        }
        // The oldest lent buffers are the likeliest to be hashed already.
        for _ in 0..self.lent.len() {
            let Some(arc) = self.lent.pop_front() else {
                break;
            };
            match Arc::try_unwrap(arc) {
                Ok(mut b) => {
                    b.clear();
                    return b;
                }
                Err(arc) => self.lent.push_back(arc),
            }
            if self.lent.len() <= 64 {
                break;
            }
        }
        Vec::with_capacity(capacity)
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> Result<usize, CompressError> {
        let room = self.dict + self.block_size - self.buf.len();
        let n = room.min(buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == self.dict + self.block_size {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    /// Hands the current block on, and starts the next one with this
    /// block's last 32 KiB as its dictionary.
    fn dispatch(&mut self, last: bool) -> Result<(), CompressError> {
        if !last && self.choice.is_some() {
            self.start_pool();
        }
        let mut next = self.buffer(WINDOW + self.block_size);
        if !last {
            next.extend_from_slice(&self.buf[self.buf.len() - WINDOW..]);
        }
        let data = Arc::new(std::mem::replace(&mut self.buf, next));
        let dict = self.dict;
        self.dict = if last { 0 } else { WINDOW };
        self.diff.push(Chunk {
            buf: Arc::clone(&data),
            start: dict,
        });
        let out = self.buffer(self.block_size + self.block_size / 1024 + 64);
        let level = self.level;
        match &mut self.engine {
            Engine::Inline => {
                let done = compress_block(level, data, dict, last, out)?;
                self.emit(done)?;
            }
            Engine::Pool {
                pool,
                pending,
                window,
                cancelled,
            } => {
                let (reply, result) = mpsc::sync_channel(1);
                let cancelled = Arc::clone(&cancelled.0);
                let queued = pool.spawn(Box::new(move || {
                    if cancelled.load(Ordering::Relaxed) {
                        return;
                    }
                    // The receiver is gone only when the compressor was
                    // dropped.
                    let _ = reply.send(compress_block(level, data, dict, last, out));
                }));
                if !queued {
                    return Err(CompressError::WorkerLost);
                }
                pending.push_back(result);
                let full = pending.len() >= *window;
                self.collect(full)?;
            }
        }
        Ok(())
    }

    /// Writes out finished blocks in order: all those already done, and
    /// when `wait`, at least the oldest.
    fn collect(&mut self, mut wait: bool) -> Result<(), CompressError> {
        loop {
            let Engine::Pool { pending, .. } = &mut self.engine else {
                return Ok(());
            };
            let Some(front) = pending.front() else {
                return Ok(());
            };
            let done = if wait {
                wait = false;
                front.recv().map_err(|_| CompressError::WorkerLost)?
            } else {
                match front.try_recv() {
                    Ok(done) => done,
                    Err(mpsc::TryRecvError::Empty) => return Ok(()),
                    Err(mpsc::TryRecvError::Disconnected) => return Err(CompressError::WorkerLost),
                }
            };
            pending.pop_front();
            self.emit(done?)?;
        }
    }

    fn emit(&mut self, done: Done) -> Result<(), CompressError> {
        self.sink.write_all(&done.out)?;
        self.total += done.len;
        self.crc.combine(&done.crc);
        let out = Arc::new(done.out);
        self.out.push(Chunk {
            buf: Arc::clone(&out),
            start: 0,
        });
        self.lent.push_back(out);
        self.lent.push_back(done.data);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<Finished<W>, CompressError> {
        self.dispatch(true)?;
        while matches!(&self.engine, Engine::Pool { pending, .. } if !pending.is_empty()) {
            self.collect(true)?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&crc.to_le_bytes());
        // ISIZE is the length modulo 2^32.
        trailer[4..].copy_from_slice(&((self.total & 0xffff_ffff) as u32).to_le_bytes());
        self.sink.write_all(&trailer)?;
        self.out.push_slice(&trailer);
        let (diff, _) = self.diff.finish()?;
        let (digest, size) = self.out.finish()?;
        Ok(Finished {
            sink: self.sink,
            diff,
            digest,
            size,
        })
    }
}
