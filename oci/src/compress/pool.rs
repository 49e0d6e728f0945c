//! The compression pool: worker threads shared by every
//! [`LayerCompressor`](super::LayerCompressor) of the process, so that
//! several layers packed at once (the solver runs several steps in
//! parallel) share the cores instead of each starting its own threads.
//!
//! Tasks run in the order they were queued. Each compressor keeps a
//! bounded number of blocks in flight (twice the pool's threads), so one
//! big layer cannot starve another: their blocks interleave in the queue.
//! Work that must stay in order (hashing a stream) runs as a [`Lane`]: a
//! queue of chunks drained by one task at a time.

use sha2::{Digest as _, Sha256};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

type Task = Box<dyn FnOnce() + Send + 'static>;

/// Worker threads shared by compressors; a cheap handle to clone.
///
/// [`CompressionPool::global`] is the pool every compressor uses by
/// default, sized by [`available_threads`](super::available_threads)
/// (`KILN_COMPRESSION_THREADS`). A pool made with [`CompressionPool::new`]
/// stops its threads when its last handle (its compressors hold one) is
/// dropped, after the task each is running.
#[derive(Clone)]
pub struct CompressionPool {
    handle: Arc<Handle>,
}

/// Owns the threads: dropping it closes the queue and joins them.
struct Handle {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    threads: usize,
}

struct Shared {
    state: Mutex<Queue>,
    ready: Condvar,
}

struct Queue {
    tasks: VecDeque<Task>,
    running: usize,
    closed: bool,
}

impl fmt::Debug for CompressionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompressionPool")
            .field("threads", &self.handle.threads)
            .field("busy", &self.busy())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A task that panicked leaves the queue consistent (tasks run outside
    // the lock), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CompressionPool {
    /// A pool of `threads` workers (at least one is asked for). When the
    /// system refuses threads, the pool has as many as it got, possibly
    /// none: compressors then work on the calling thread, with the same
    /// output.
    pub fn new(threads: usize) -> CompressionPool {
        let shared = Arc::new(Shared {
            state: Mutex::new(Queue {
                tasks: VecDeque::new(),
                running: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            match std::thread::Builder::new()
                .name(format!("kiln-compress-{i}"))
                .spawn(move || worker(&shared))
            {
                Ok(h) => workers.push(h),
                Err(_) => break,
            }
        }
        CompressionPool {
            handle: Arc::new(Handle {
                threads: workers.len(),
                shared,
                workers: Mutex::new(workers),
            }),
        }
    }

    /// The process's pool, started on first use with
    /// [`available_threads`](super::available_threads) workers; it lives as
    /// long as the process (its idle workers sleep).
    pub fn global() -> &'static CompressionPool {
        static GLOBAL: OnceLock<CompressionPool> = OnceLock::new();
        GLOBAL.get_or_init(|| CompressionPool::new(super::available_threads()))
    }

    /// How many worker threads the pool has.
    pub fn threads(&self) -> usize {
        self.handle.threads
    }

    /// Tasks queued or running: 0 once every compressor using the pool has
    /// finished or been dropped and its last task is done.
    pub fn busy(&self) -> usize {
        let q = lock(&self.handle.shared.state);
        q.tasks.len() + q.running
    }

    /// Queues `task`; false when the pool has no threads (then nothing
    /// runs it).
    pub(super) fn spawn(&self, task: Task) -> bool {
        if self.handle.threads == 0 {
            return false;
        }
        let shared = &self.handle.shared;
        lock(&shared.state).tasks.push_back(task);
        shared.ready.notify_one();
        true
    }
}

fn worker(shared: &Shared) {
    let mut q = lock(&shared.state);
    loop {
        if let Some(task) = q.tasks.pop_front() {
            q.running += 1;
            drop(q);
            // A panicking task loses only its own reply channel, which its
            // compressor reports as `WorkerLost`; the worker carries on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
            q = lock(&shared.state);
            q.running -= 1;
            continue;
        }
        if q.closed {
            return;
        }
        q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
    }
}

impl Drop for Handle {
    /// Closes the queue (tasks still queued are dropped unrun: their
    /// compressors are gone, since each holds a handle) and joins the
    /// workers.
    fn drop(&mut self) {
        {
            let mut q = lock(&self.shared.state);
            q.closed = true;
            q.tasks.clear();
        }
        self.shared.ready.notify_all();
        for w in lock(&self.workers).drain(..) {
            let _ = w.join();
        }
    }
}

/// How many bytes a lane may hold unhashed before `push` waits.
const LANE_LIMIT: usize = 16 << 20;

/// A chunk of a stream for a lane: `buf[start..]`.
pub(super) struct Chunk {
    pub(super) buf: Arc<Vec<u8>>,
    pub(super) start: usize,
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

/// sha256 of a stream whose chunks are handed over in order, hashed on the
/// pool (one task at a time, in order) or, without a pool, at once.
pub(super) enum Lane {
    Inline(Sha256, u64),
    Pooled(Arc<LaneShared>, CompressionPool),
}

pub(super) struct LaneShared {
    state: Mutex<LaneState>,
    changed: Condvar,
    cancelled: AtomicBool,
}

struct LaneState {
    queue: VecDeque<Chunk>,
    queued_bytes: usize,
    /// `None` while a task is hashing (it holds the hasher).
    hasher: Option<Sha256>,
    draining: bool,
    hashed: u64,
    lost: bool,
}

impl Lane {
    /// A lane on `pool`, or hashing on the caller's thread without one.
    pub(super) fn new(pool: Option<&CompressionPool>) -> Lane {
        let mut lane = Lane::Inline(Sha256::new(), 0);
        if let Some(pool) = pool {
            lane.upgrade(pool);
        }
        lane
    }

    /// Moves an inline lane, with what it hashed so far, onto `pool` (if
    /// it has threads).
    pub(super) fn upgrade(&mut self, pool: &CompressionPool) {
        if pool.threads() == 0 {
            return;
        }
        if let Lane::Inline(h, n) = self {
            let shared = Arc::new(LaneShared {
                state: Mutex::new(LaneState {
                    queue: VecDeque::new(),
                    queued_bytes: 0,
                    hasher: Some(std::mem::take(h)),
                    draining: false,
                    hashed: *n,
                    lost: false,
                }),
                changed: Condvar::new(),
                cancelled: AtomicBool::new(false),
            });
            *self = Lane::Pooled(shared, pool.clone());
        }
    }

    /// Whether chunks go to a pool.
    pub(super) fn is_pooled(&self) -> bool {
        matches!(self, Lane::Pooled(..))
    }

    /// Hashes `bytes` now (inline lanes only; pooled lanes copy them into a
    /// chunk).
    pub(super) fn push_slice(&mut self, bytes: &[u8]) {
        match self {
            Lane::Inline(h, n) => {
                h.update(bytes);
                *n += bytes.len() as u64;
            }
            Lane::Pooled(..) => self.push(Chunk {
                buf: Arc::new(bytes.to_vec()),
                start: 0,
            }),
        }
    }

    /// Queues `chunk` to be hashed after those before it; waits while the
    /// lane holds more than [`LANE_LIMIT`] unhashed bytes.
    pub(super) fn push(&mut self, chunk: Chunk) {
        let (shared, pool) = match self {
            Lane::Inline(h, n) => {
                h.update(chunk.bytes());
                *n += chunk.bytes().len() as u64;
                return;
            }
            Lane::Pooled(shared, pool) => (shared, pool),
        };
        let len = chunk.bytes().len();
        let mut s = lock(&shared.state);
        while s.queued_bytes > LANE_LIMIT && s.draining && !s.lost {
            s = shared
                .changed
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
        s.queue.push_back(chunk);
        s.queued_bytes += len;
        if !s.draining {
            s.draining = true;
            let task_shared = Arc::clone(shared);
            if !pool.spawn(Box::new(move || drain(&task_shared))) {
                // No thread will drain it: hash here.
                drop(s);
                drain(shared);
            }
        }
    }

    /// The digest and length of everything pushed, once hashed.
    pub(super) fn finish(&mut self) -> Result<(Sha256, u64), super::CompressError> {
        match self {
            Lane::Inline(h, n) => Ok((std::mem::take(h), *n)),
            Lane::Pooled(shared, _) => {
                let mut s = lock(&shared.state);
                while s.draining && !s.lost {
                    s = shared
                        .changed
                        .wait(s)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                match s.hasher.take() {
                    Some(h) if !s.lost => Ok((h, s.hashed)),
                    _ => Err(super::CompressError::WorkerLost),
                }
            }
        }
    }
}

impl Drop for Lane {
    /// Drops what is still queued and stops the draining task early.
    fn drop(&mut self) {
        if let Lane::Pooled(shared, _) = self {
            shared.cancelled.store(true, Ordering::Relaxed);
            let mut s = lock(&shared.state);
            s.queue.clear();
            s.queued_bytes = 0;
        }
    }
}

/// Hashes a lane's queue until it is empty.
fn drain(shared: &LaneShared) {
    // If hashing panics, the lane is marked lost so that nobody waits on
    // it forever.
    struct Guard<'a>(&'a LaneShared, bool);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if !self.1 {
                let mut s = lock(&self.0.state);
                s.lost = true;
                s.draining = false;
                drop(s);
                self.0.changed.notify_all();
            }
        }
    }
    let mut guard = Guard(shared, false);
    let mut s = lock(&shared.state);
    let Some(mut hasher) = s.hasher.take() else {
        guard.1 = true;
        return;
    };
    loop {
        let next = s.queue.pop_front();
        let Some(chunk) = next.filter(|_| !shared.cancelled.load(Ordering::Relaxed)) else {
            s.hasher = Some(hasher);
            s.draining = false;
            s.queue.clear();
            drop(s);
            shared.changed.notify_all();
            guard.1 = true;
            return;
        };
        drop(s);
        let bytes = chunk.bytes();
        hasher.update(bytes);
        let n = bytes.len();
        drop(chunk);
        s = lock(&shared.state);
        s.hashed += n as u64;
        s.queued_bytes = s.queued_bytes.saturating_sub(n);
        shared.changed.notify_all();
    }
}
