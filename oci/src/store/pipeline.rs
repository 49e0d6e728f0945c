//! The pipelined sink of a [`super::BlobWriter`]: the writing thread only
//! copies into buffers from a small pool and hands full ones to a worker
//! thread, which writes them to the ingest file and hashes them, so a
//! producer that reads thousands of files overlaps with the hashing on
//! another core instead of taking turns with it.
//!
//! Memory is bounded by the pool ([`PipelineOptions::buffers`] buffers of
//! [`PipelineOptions::chunk_size`] bytes, reused): when the worker falls
//! behind, the writer waits for a buffer to come back. A worker that fails
//! stops and its error comes out of the writer's next `write` or `commit`;
//! dropping the writer stops the worker and waits for it, so no thread
//! outlives its writer.

use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::num::NonZeroU64;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How a pipelined [`super::BlobWriter`] buffers and splits its work
/// ([`super::LocalStore::writer_with`]). None of it changes the blob or
/// its digest, only how fast it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineOptions {
    /// Bytes per buffer handed to the worker (clamped to 64 KiB..=64 MiB).
    pub chunk_size: usize,
    /// Buffers in the pool, including the one being filled (clamped to
    /// 2..=16): the writer gets this far ahead of the worker.
    pub buffers: usize,
    /// Whether the worker also writes the file (else the writing thread
    /// writes each full buffer and the worker only hashes it).
    pub worker_writes: bool,
    /// Starts the writeback of the file every this many bytes
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on the range written
    /// since), so the `sync_all` of `commit` has less left to wait for.
    /// `None` leaves writeback to the kernel. `commit` syncs either way.
    pub writeback_every: Option<NonZeroU64>,
}

impl Default for PipelineOptions {
    /// What measured fastest on kiln's 2-core bench machine
    /// (bench/blob-write.sh, bench/README.md): 4 buffers of 1 MiB, the
    /// worker writes and hashes, writeback started every 16 MiB.
    fn default() -> PipelineOptions {
        PipelineOptions {
            chunk_size: 1 << 20,
            buffers: 4,
            worker_writes: true,
            writeback_every: NonZeroU64::new(16 << 20),
        }
    }
}

impl PipelineOptions {
    fn clamped(self) -> PipelineOptions {
        PipelineOptions {
            chunk_size: self.chunk_size.clamp(64 << 10, 64 << 20),
            buffers: self.buffers.clamp(2, 16),
            ..self
        }
    }
}

/// Starts writeback of what was written since the last start, every
/// `every` bytes.
#[derive(Debug)]
struct Writeback {
    every: Option<NonZeroU64>,
    written: u64,
    started: u64,
}

impl Writeback {
    fn new(every: Option<NonZeroU64>) -> Writeback {
        Writeback {
            every,
            written: 0,
            started: 0,
        }
    }

    fn wrote(&mut self, file: &File, n: usize) {
        self.written += n as u64;
        let Some(every) = self.every else { return };
        let pending = self.written - self.started;
        if pending < every.get() {
            return;
        }
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(self.started),
            libc::off64_t::try_from(pending),
        ) else {
            return;
        };
        // SAFETY: a valid open descriptor and a range inside the file.
        // The result is ignored on purpose: this only starts writeback
        // early, and `commit`'s `sync_all` is what makes the blob durable
        // (and reports any write error).
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
        self.started = self.written;
    }
}

/// What the worker hands back when the writer is done with it.
#[derive(Debug)]
struct Done {
    /// The file, when the worker wrote it.
    file: Option<File>,
    hasher: Sha256,
}

/// The writing side of the pipeline.
#[derive(Debug)]
pub(super) struct Pipeline {
    chunk_size: usize,
    buffers: usize,
    /// The buffer being filled.
    buf: Vec<u8>,
    /// Buffers made so far (at most `buffers`).
    allocated: usize,
    /// The file, when this side writes it.
    file: Option<File>,
    writeback: Writeback,
    /// Full buffers, to the worker.
    full: Option<SyncSender<Vec<u8>>>,
    /// Emptied buffers, back from the worker.
    empty: Receiver<Vec<u8>>,
    /// Tells the worker to stop (the writer was dropped).
    abort: Arc<AtomicBool>,
    worker: Option<JoinHandle<io::Result<Done>>>,
    /// The worker failed or stopped: every later write fails.
    failed: bool,
}

impl Pipeline {
    /// Starts the worker for `file`.
    ///
    /// # Errors
    /// The error of spawning the thread.
    pub(super) fn start(file: File, options: PipelineOptions) -> io::Result<Pipeline> {
        let options = options.clamped();
        let (full_tx, full_rx) = sync_channel::<Vec<u8>>(options.buffers);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(options.buffers);
        let abort = Arc::new(AtomicBool::new(false));
        let (mine, theirs) = if options.worker_writes {
            (None, Some(file))
        } else {
            (Some(file), None)
        };
        let worker = {
            let abort = Arc::clone(&abort);
            let every = options.writeback_every;
            std::thread::Builder::new()
                .name("kiln-blob-writer".into())
                .spawn(move || work(theirs, every, &full_rx, &empty_tx, &abort))?
        };
        Ok(Pipeline {
            chunk_size: options.chunk_size,
            buffers: options.buffers,
            buf: Vec::with_capacity(options.chunk_size),
            allocated: 1,
            file: mine,
            writeback: Writeback::new(options.writeback_every),
            full: Some(full_tx),
            empty: empty_rx,
            abort,
            worker: Some(worker),
            failed: false,
        })
    }

    /// Takes all of `data` (copied into the pool's buffers).
    ///
    /// # Errors
    /// The worker's error, or that of writing the file on this side.
    pub(super) fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.check()?;
        while !data.is_empty() {
            let n = (self.chunk_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == self.chunk_size {
                let full = std::mem::take(&mut self.buf);
                self.hand_over(full)?;
                self.buf = self.next_buffer()?;
            }
        }
        Ok(())
    }

    /// Fails when an earlier write failed.
    pub(super) fn check(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the blob writer failed earlier"));
        }
        Ok(())
    }

    /// Hands the last buffer over, waits for the worker and gives back the
    /// file with everything written and the hash of it.
    ///
    /// # Errors
    /// The worker's error, or that of writing the file on this side.
    pub(super) fn finish(mut self) -> io::Result<(File, Sha256)> {
        self.check()?;
        let last = std::mem::take(&mut self.buf);
        if !last.is_empty() {
            self.hand_over(last)?;
        }
        self.full = None;
        let done = self.join()?;
        match self.file.take().or(done.file) {
            Some(file) => Ok((file, done.hasher)),
            None => Err(io::Error::other("the blob writer lost its file")),
        }
    }

    /// Stops the worker without finishing and waits for it.
    pub(super) fn abort(&mut self) {
        self.abort.store(true, Ordering::Relaxed);
        self.full = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }

    fn hand_over(&mut self, full: Vec<u8>) -> io::Result<()> {
        if let Some(file) = self.file.as_mut() {
            if let Err(e) = file.write_all(&full) {
                self.failed = true;
                return Err(e);
            }
            self.writeback.wrote(file, full.len());
        }
        let sent = match &self.full {
            Some(tx) => tx.send(full).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.worker_error())
        }
    }

    fn next_buffer(&mut self) -> io::Result<Vec<u8>> {
        if self.allocated < self.buffers {
            self.allocated += 1;
            return Ok(Vec::with_capacity(self.chunk_size));
        }
        match self.empty.recv() {
            Ok(buf) => Ok(buf),
            Err(_) => Err(self.worker_error()),
        }
    }

    /// The worker stopped early: its error.
    fn worker_error(&mut self) -> io::Error {
        self.full = None;
        match self.join() {
            Err(e) => e,
            Ok(_) => io::Error::other("the blob writer's worker stopped"),
        }
    }

    fn join(&mut self) -> io::Result<Done> {
        let result = match self.worker.take() {
            Some(worker) => worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the blob writer's worker panicked"))),
            None => Err(io::Error::other("the blob writer's worker already stopped")),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The worker: writes (when it has the file) and hashes each full buffer
/// in order, and returns it to the pool.
fn work(
    mut file: Option<File>,
    every: Option<NonZeroU64>,
    full: &Receiver<Vec<u8>>,
    empty: &SyncSender<Vec<u8>>,
    abort: &AtomicBool,
) -> io::Result<Done> {
    let mut hasher = Sha256::new();
    let mut writeback = Writeback::new(every);
    for mut buf in full {
        if abort.load(Ordering::Relaxed) {
            return Err(io::Error::other("the blob writer was dropped"));
        }
        if let Some(file) = file.as_mut() {
            file.write_all(&buf)?;
            writeback.wrote(file, buf.len());
        }
        hasher.update(&buf);
        buf.clear();
        // The pool's channel holds every buffer, so this never blocks; it
        // fails only when the writer is gone, and then the buffer is freed.
        let _ = empty.try_send(buf);
    }
    Ok(Done { file, hasher })
}
