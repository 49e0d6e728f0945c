//! What a solve reports while it runs: [`Event`]s to a [`ProgressSink`].

/// What happens during a solve, for progress displays.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step starts running.
    Started {
        /// Its display name.
        name: String,
    },
    /// A step was found in the cache.
    Cached {
        /// Its display name.
        name: String,
    },
    /// A step missed the cache, and why.
    Miss {
        /// Its display name.
        name: String,
        /// Which input changed.
        reason: String,
    },
    /// Something the user should know about a step (e.g. a fallback).
    Note {
        /// Its display name.
        name: String,
        /// The message.
        message: String,
    },
    /// Output of a running step, as the process wrote it (stdout and
    /// stderr combined; a chunk may end mid-line).
    Log {
        /// Its display name.
        name: String,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A step failed; the solve stops after the steps still running.
    Error {
        /// Its display name.
        name: String,
        /// What went wrong (the same text as the [`SolveError`](super::SolveError)).
        message: String,
    },
    /// A step finished.
    Done {
        /// Its display name.
        name: String,
        /// Seconds it took.
        seconds: f64,
    },
}

/// Receives [`Event`]s; called from worker threads.
pub trait ProgressSink: Send + Sync {
    /// One event.
    fn event(&self, event: Event);
}
