//! The CPU pool: how many steps may do kiln's own CPU-heavy work at once.
//!
//! `--jobs` bounds the steps that run at once, and most of a step's time
//! can be waiting: a RUN process that sleeps or downloads, an image pull,
//! an `ADD <url>`. What kiln itself computes in a step (the diff, tar,
//! hashes and compression of a new layer, a COPY's materialisation,
//! unpacking a base image's layers, the checksum of the context files a
//! step reads) is bounded separately by a
//! [`CpuPool`] sized to the cores, so that many waiting steps can overlap
//! without that work fighting over the cores. A step takes one slot for
//! such work and gives it back when done; it never holds one while it
//! waits on a process, the network or another slot.

use super::{CancelToken, StepError};
use std::num::NonZeroUsize;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How often a step waiting for a slot looks at its cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// A counting limit on CPU-heavy in-process work, shared by its clones
/// (one per build: every solve of a multi-platform build shares it).
#[derive(Debug, Clone)]
pub struct CpuPool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    /// Slots free now.
    free: Mutex<usize>,
    freed: Condvar,
}

impl CpuPool {
    /// A pool of `size` slots (at least one).
    pub fn new(size: usize) -> CpuPool {
        let size = size.max(1);
        CpuPool {
            shared: Arc::new(Shared {
                size,
                free: Mutex::new(size),
                freed: Condvar::new(),
            }),
        }
    }

    /// A pool with one slot per core this process may use (1 when unknown).
    pub fn cores() -> CpuPool {
        CpuPool::new(cores())
    }

    /// The number of slots.
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// Waits for a free slot; it is given back when the returned
    /// [`CpuSlot`] is dropped.
    ///
    /// # Errors
    /// [`StepError::Cancelled`] when `cancel` is cancelled before a slot
    /// is free (or already was).
    pub fn acquire(&self, cancel: &CancelToken) -> Result<CpuSlot, StepError> {
        let mut free = self
            .shared
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if cancel.is_cancelled() {
                return Err(StepError::Cancelled);
            }
            if *free > 0 {
                *free -= 1;
                return Ok(CpuSlot {
                    shared: self.shared.clone(),
                });
            }
            free = self
                .shared
                .freed
                .wait_timeout(free, CANCEL_POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Runs `work` holding a slot (see [`acquire`](CpuPool::acquire)).
    ///
    /// # Errors
    /// [`StepError::Cancelled`] while waiting for a slot, or `work`'s.
    pub fn run<T>(
        &self,
        cancel: &CancelToken,
        work: impl FnOnce() -> Result<T, StepError>,
    ) -> Result<T, StepError> {
        let _slot = self.acquire(cancel)?;
        work()
    }
}

impl Default for CpuPool {
    /// [`CpuPool::cores`].
    fn default() -> CpuPool {
        CpuPool::cores()
    }
}

/// One slot of a [`CpuPool`], held while it lives.
#[derive(Debug)]
pub struct CpuSlot {
    shared: Arc<Shared>,
}

impl Drop for CpuSlot {
    fn drop(&mut self) {
        let mut free = self
            .shared
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *free += 1;
        drop(free);
        self.shared.freed.notify_one();
    }
}

/// The cores this process may use (1 when unknown).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The default `--jobs`: steps that run at once. Most steps wait (on a
/// process, a pull, a download) more than they compute, and kiln's own
/// CPU work is bounded by the [`CpuPool`], so it is well above the core
/// count: 16, or four per core on a machine with more than four cores.
pub fn default_jobs() -> usize {
    (cores() * 4).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn slots_are_bounded_and_given_back() {
        let pool = CpuPool::new(2);
        let token = CancelToken::new();
        let a = pool.acquire(&token).expect("first");
        let _b = pool.acquire(&token).expect("second");
        // A third waits: a thread blocked on it gets one once `a` drops.
        let got = Arc::new(AtomicUsize::new(0));
        let waiter = std::thread::spawn({
            let (pool, token, got) = (pool.clone(), token.clone(), got.clone());
            move || {
                let slot = pool.acquire(&token);
                got.store(1, Ordering::SeqCst);
                slot.is_ok()
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(got.load(Ordering::SeqCst), 0, "the third slot waited");
        drop(a);
        assert!(waiter.join().expect("join"), "it got the freed slot");
        assert_eq!(CpuPool::new(0).size(), 1);
    }

    #[test]
    fn cancelling_ends_the_wait_for_a_slot() {
        let pool = CpuPool::new(1);
        let token = CancelToken::new();
        let _held = pool.acquire(&token).expect("slot");
        let waiter = std::thread::spawn({
            let (pool, token) = (pool.clone(), token.clone());
            move || pool.run(&token, || Ok(()))
        });
        std::thread::sleep(Duration::from_millis(50));
        token.cancel();
        assert!(matches!(
            waiter.join().expect("join"),
            Err(StepError::Cancelled)
        ));
    }

    #[test]
    fn the_default_job_limit_is_above_the_cores() {
        assert!(default_jobs() >= 16);
        assert!(default_jobs() >= cores());
    }
}
