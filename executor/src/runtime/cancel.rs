//! Stopping runs that have started: a [`CancelSignal`] kills the process
//! of every run that watches it, the moment it is cancelled.
//!
//! A run registers its child (through a pidfd, so that a reaped and
//! reused pid is never signalled) with the signal of its request and with
//! the process-wide signal that [`super::abort_runs`] cancels. Killing the
//! child kills its whole process tree: the child is the init of a pid
//! namespace of its own (the sandbox, or the `runc`/`crun` process), and
//! the kernel kills every other process of that namespace with it. The
//! run's wait then ends as for any exit, it cleans up as usual and returns
//! [`super::RuntimeError::Cancelled`].

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Asks running processes to stop. Clones share one state; a
/// [`child`](CancelSignal::child) is cancelled with its parent. Hand one
/// to a run in [`RunRequest::cancel`](super::RunRequest::cancel): when it
/// is cancelled, before or while the process runs, the run kills the
/// process tree, cleans up and fails with
/// [`RuntimeError::Cancelled`](super::RuntimeError::Cancelled).
#[derive(Debug, Clone, Default)]
pub struct CancelSignal {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    cancelled: bool,
    /// Signals made by [`CancelSignal::child`] that are still alive.
    children: Vec<Weak<Inner>>,
    /// pidfds of the running children that watch this signal, owned by
    /// their [`Watch`]es.
    runs: Vec<RawFd>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CancelSignal {
    /// A signal nobody has cancelled yet.
    pub fn new() -> CancelSignal {
        CancelSignal::default()
    }

    /// Cancels this signal, its clones and its children, and kills the
    /// processes of the runs that watch any of them.
    pub fn cancel(&self) {
        let children = {
            let mut state = self.inner.state();
            if state.cancelled {
                return;
            }
            state.cancelled = true;
            for fd in &state.runs {
                // SAFETY: a Watch keeps the fd open while it is listed, and
                // unlists it under this lock.
                kill(unsafe { BorrowedFd::borrow_raw(*fd) });
            }
            std::mem::take(&mut state.children)
        };
        for child in children.iter().filter_map(Weak::upgrade) {
            CancelSignal { inner: child }.cancel();
        }
    }

    /// True once this signal (or one it was made from) is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.state().cancelled
    }

    /// A signal cancelled with this one, that can also be cancelled on its
    /// own without cancelling this one.
    pub fn child(&self) -> CancelSignal {
        let child = CancelSignal::new();
        let mut state = self.inner.state();
        if state.cancelled {
            child.inner.state().cancelled = true;
        } else {
            state.children.retain(|c| c.strong_count() > 0);
            state.children.push(Arc::downgrade(&child.inner));
        }
        child
    }

    /// Registers the running child `pidfd` until the returned watch is
    /// dropped (drop it before the fd closes); kills it at once when this
    /// signal is cancelled already.
    pub(super) fn watch(&self, pidfd: BorrowedFd<'_>) -> Watch {
        let mut state = self.inner.state();
        if state.cancelled {
            kill(pidfd);
        }
        state.runs.push(pidfd.as_raw_fd());
        Watch {
            signal: self.clone(),
            fd: pidfd.as_raw_fd(),
        }
    }
}

/// A registration of a running child with a [`CancelSignal`]; unregistered
/// on drop.
pub(super) struct Watch {
    signal: CancelSignal,
    fd: RawFd,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = self.signal.inner.state();
        if let Some(i) = state.runs.iter().position(|fd| *fd == self.fd) {
            state.runs.swap_remove(i);
        }
    }
}

/// `SIGKILL` through a pidfd.
pub(super) fn kill(fd: BorrowedFd<'_>) {
    // SAFETY: a valid pidfd and no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::CancelSignal;

    #[test]
    fn a_cancel_reaches_clones_and_children_but_not_parents() {
        let parent = CancelSignal::new();
        let child = parent.child();
        let grandchild = child.child();
        let other = parent.child();
        child.cancel();
        assert!(child.is_cancelled() && grandchild.is_cancelled());
        assert!(!parent.is_cancelled() && !other.is_cancelled());
        parent.clone().cancel();
        assert!(parent.is_cancelled() && other.is_cancelled());
        assert!(parent.child().is_cancelled(), "born cancelled");
    }

    #[test]
    fn dropped_children_are_forgotten() {
        let parent = CancelSignal::new();
        for _ in 0..100 {
            drop(parent.child());
        }
        let kept = parent.child();
        assert_eq!(parent.inner.state().children.len(), 1);
        parent.cancel();
        assert!(kept.is_cancelled());
    }
}
