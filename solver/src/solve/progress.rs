//! What a solve reports while it runs: [`Event`]s to a [`ProgressSink`],
//! and a [`StepReport`] when each step ends (for build records).

use kiln_oci::Digest;
use std::time::Instant;

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

/// How a step ended, in a [`StepReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    /// Found in the cache.
    Cached,
    /// Run (or, for a source, fetched or unpacked).
    Built,
    /// Failed with this message: the error's first line (without the
    /// output lines a failed process's error carries).
    Failed(String),
    /// Stopped by a cancellation (Ctrl-C, or another step's failure).
    Cancelled,
}

/// What a solve says about a step when it ends, cached, built or failed:
/// a step that adds a layer (RUN, COPY and the like) and a source that
/// does work (an image's layers, `ADD URL`, `ADD <git url>`). Display
/// data like [`Event`]; build records are made of it.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Its display name, as in the [`Event`]s.
    pub name: String,
    /// The vertex digest (the graph's, as `--print` shows it).
    pub vertex: Digest,
    /// When the step began (its cache lookup).
    pub started: Instant,
    /// When it ended.
    pub ended: Instant,
    /// How it ended.
    pub status: StepStatus,
    /// Why the cache was not used, when it was looked up and missed.
    pub miss_reason: Option<String>,
    /// The size of the layer blob it made or found (uncompressed for a
    /// layer made here).
    pub bytes: Option<u64>,
}

/// Receives [`Event`]s and [`StepReport`]s; called from worker threads.
pub trait ProgressSink: Send + Sync {
    /// One event.
    fn event(&self, event: Event);

    /// One step ended. Displays need not care: the default ignores it.
    fn step(&self, report: StepReport) {
        let _ = report;
    }
}
