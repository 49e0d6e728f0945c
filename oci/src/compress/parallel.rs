//! pigz-style parallel gzip: fixed-size blocks deflated on worker
//! threads, each primed with the 32 KiB of input before it, written in
//! order (see the parent module on determinism).

use super::{CompressError, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, WINDOW};
use flate2::{Compress, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One block for a worker: `data[..dict]` is the preset dictionary,
/// `data[dict..]` the block itself.
struct Job {
    data: Vec<u8>,
    dict: usize,
    last: bool,
    out: Vec<u8>,
    level: u32,
    reply: SyncSender<Result<Done, CompressError>>,
}

/// A compressed block, with its buffers handed back for reuse.
struct Done {
    data: Vec<u8>,
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    /// Uncompressed length of the block.
    len: u64,
}

/// pigz-style gzip: blocks compressed independently (in parallel when
/// there are worker threads) and written in order.
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
    /// Threads to start for the second block; 1 once started (or when
    /// compressing on the calling thread).
    threads: usize,
    /// Buffers handed back by finished blocks.
    spare: Vec<Vec<u8>>,
}

enum Engine {
    /// Compress on the calling thread.
    Inline,
    /// Compress on worker threads.
    Pool(Pool),
}

/// Worker threads, at most `window` blocks in flight; dropping it stops
/// them.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<Result<Done, CompressError>>>,
    window: usize,
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
    data: Vec<u8>,
    dict: usize,
    last: bool,
    mut out: Vec<u8>,
) -> Result<Done, CompressError> {
    deflate_block(&mut new_deflate(level), &data, dict, last, &mut out)?;
    let block = &data[dict.min(data.len())..];
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

fn worker(jobs: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let Job {
            data,
            dict,
            last,
            out,
            level,
            reply,
        } = job;
        let result = compress_block(level, data, dict, last, out);
        // The receiver is gone only when the compressor was dropped.
        let _ = reply.send(result);
    }
}

impl<W: Write> ParallelGzip<W> {
    pub(super) fn new(
        mut sink: W,
        level: u32,
        block_size: usize,
        threads: usize,
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
        sink.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff])?;
        Ok(ParallelGzip {
            sink,
            level,
            block_size,
            buf: Vec::with_capacity(block_size),
            dict: 0,
            crc: crc32fast::Hasher::new(),
            total: 0,
            engine: Engine::Inline,
            threads,
            spare: Vec::new(),
        })
    }

    /// Moves compression to worker threads, once there is more than one
    /// block (a layer smaller than a block starts no thread). When no
    /// thread can be started, compression stays on the calling thread:
    /// the output is the same either way.
    fn start_pool(&mut self) {
        let threads = std::mem::replace(&mut self.threads, 1);
        let window = threads * 2;
        let (tx, rx) = mpsc::sync_channel::<Job>(window);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            match std::thread::Builder::new()
                .name(format!("kiln-gzip-{i}"))
                .spawn(move || worker(rx))
            {
                Ok(handle) => workers.push(handle),
                Err(_) => break,
            }
        }
        if workers.len() > 1 {
            self.engine = Engine::Pool(Pool {
                jobs: Some(tx),
                workers,
                pending: VecDeque::with_capacity(window),
                window,
            });
        }
        // Otherwise dropping `tx` stops the one worker that started.
    }

    fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut b) => {
                b.clear();
                b
            }
            None => Vec::with_capacity(capacity),
        }
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
        if !last && self.threads > 1 {
            self.start_pool();
        }
        let mut next = self.buffer(WINDOW + self.block_size);
        if !last {
            next.extend_from_slice(&self.buf[self.buf.len() - WINDOW..]);
        }
        let data = std::mem::replace(&mut self.buf, next);
        let dict = self.dict;
        self.dict = if last { 0 } else { WINDOW };
        let out = self.buffer(self.block_size + self.block_size / 1024 + 64);
        match &mut self.engine {
            Engine::Inline => {
                let done = compress_block(self.level, data, dict, last, out)?;
                self.emit(done)?;
            }
            Engine::Pool(Pool {
                jobs,
                pending,
                window,
                ..
            }) => {
                let (reply, result) = mpsc::sync_channel(1);
                let job = Job {
                    data,
                    dict,
                    last,
                    out,
                    level: self.level,
                    reply,
                };
                jobs.as_ref()
                    .ok_or(CompressError::WorkerLost)?
                    .send(job)
                    .map_err(|_| CompressError::WorkerLost)?;
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
            let Engine::Pool(Pool { pending, .. }) = &mut self.engine else {
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
        self.spare.push(done.data);
        self.spare.push(done.out);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<W, CompressError> {
        self.dispatch(true)?;
        while matches!(&self.engine, Engine::Pool(p) if !p.pending.is_empty()) {
            self.collect(true)?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&crc.to_le_bytes());
        // ISIZE is the length modulo 2^32.
        trailer[4..].copy_from_slice(&((self.total & 0xffff_ffff) as u32).to_le_bytes());
        self.sink.write_all(&trailer)?;
        Ok(self.sink)
    }
}

impl Drop for Pool {
    /// Closes the job queue and waits for the workers to exit.
    fn drop(&mut self) {
        self.pending.clear();
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
