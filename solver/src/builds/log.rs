//! Collecting a build's steps while it runs: [`StepLog`].

use super::{bounded, new_id, BuildInfo, BuildRecord, BuildStatus, StepRecord, StepState};
use super::{MAX_STEPS, RECORD_VERSION};
use crate::solve::{Event, ProgressSink, StepReport, StepStatus};
use kiln_oci::Digest;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The steps of one build (or one `kiln bake`), as their
/// [`StepReport`]s arrive, timed from when the log was made. Put it in
/// front of the progress display with [`StepLog::sink`]; make the record
/// with [`StepLog::record`] when the build ends.
#[derive(Debug)]
pub struct StepLog {
    started: Instant,
    started_at: SystemTime,
    steps: Mutex<Vec<StepReport>>,
    /// Failures reported only as an [`Event::Error`] (a step that failed
    /// before its report began): name, message, when.
    errors: Mutex<Vec<(String, String, Instant)>>,
    /// Work of the build that is no vertex ([`StepLog::add_other`]).
    others: Mutex<Vec<OtherStep>>,
}

/// A step that is no vertex of the graph: a base image pulled while the
/// Dockerfile was lowered.
#[derive(Debug, Clone)]
struct OtherStep {
    name: String,
    started: Instant,
    ended: Instant,
    bytes: Option<u64>,
    error: Option<String>,
}

impl Default for StepLog {
    fn default() -> Self {
        StepLog::new()
    }
}

/// Passes everything on to the display and keeps the steps.
struct Tee {
    log: Arc<StepLog>,
    display: Arc<dyn ProgressSink>,
}

impl ProgressSink for Tee {
    fn event(&self, event: Event) {
        if let Event::Error { name, message } = &event {
            self.log
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((name.clone(), message.clone(), Instant::now()));
        }
        self.display.event(event);
    }

    fn step(&self, report: StepReport) {
        self.log
            .steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(report.clone());
        self.display.step(report);
    }
}

impl StepLog {
    /// A log whose build begins now.
    pub fn new() -> StepLog {
        StepLog {
            started: Instant::now(),
            started_at: SystemTime::now(),
            steps: Mutex::default(),
            errors: Mutex::default(),
            others: Mutex::default(),
        }
    }

    /// Adds a step that is no vertex of the graph (a base image pulled
    /// while the Dockerfile was lowered): it began at `started` and ended
    /// now, with `bytes` transferred, or failed with `error`. Its record
    /// has no digest; every target of a bake lists it.
    pub fn add_other(&self, name: &str, started: Instant, bytes: Option<u64>, error: Option<&str>) {
        self.others
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(OtherStep {
                name: name.to_string(),
                started,
                ended: Instant::now(),
                bytes,
                error: error.map(str::to_string),
            });
    }

    /// A sink that passes every event and report on to `display` and
    /// keeps the reports here.
    pub fn sink(self: &Arc<Self>, display: Arc<dyn ProgressSink>) -> Arc<dyn ProgressSink> {
        Arc::new(Tee {
            log: self.clone(),
            display,
        })
    }

    /// When the build began.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The record of the build as it ended now: `info`, `status` and
    /// `error`, and the steps so far (only those of the vertices `only`,
    /// when given: one target of several solved together), by start, at
    /// most [`MAX_STEPS`].
    pub fn record(
        &self,
        info: BuildInfo,
        status: BuildStatus,
        error: Option<&str>,
        only: Option<&HashSet<Digest>>,
    ) -> BuildRecord {
        let now = Instant::now();
        let offset = |t: Instant| t.saturating_duration_since(self.started).as_secs_f64() * 1e3;
        let wall = |t: Instant| {
            humantime::format_rfc3339_millis(
                self.started_at + t.saturating_duration_since(self.started),
            )
            .to_string()
        };
        let reports = self
            .steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut steps: Vec<StepRecord> = reports
            .iter()
            .filter(|r| only.is_none_or(|o| o.contains(&r.vertex)))
            .map(|r| {
                let (state, error) = match &r.status {
                    StepStatus::Cached => (StepState::Cached, None),
                    StepStatus::Built => (StepState::Built, None),
                    StepStatus::Failed(e) => (StepState::Failed, Some(bounded(e))),
                    StepStatus::Cancelled => (StepState::Cancelled, None),
                };
                StepRecord {
                    name: bounded(&r.name),
                    digest: Some(r.vertex.to_string()),
                    start_ms: offset(r.started),
                    end_ms: offset(r.ended),
                    started_at: wall(r.started),
                    state,
                    reason: r.miss_reason.as_deref().map(bounded),
                    bytes: r.bytes,
                    error,
                }
            })
            .collect();
        let others = self
            .others
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for o in others {
            steps.push(StepRecord {
                name: bounded(&o.name),
                digest: None,
                start_ms: offset(o.started),
                end_ms: offset(o.ended),
                started_at: wall(o.started),
                state: if o.error.is_some() {
                    StepState::Failed
                } else {
                    StepState::Built
                },
                reason: None,
                bytes: o.bytes,
                error: o.error.as_deref().map(bounded),
            });
        }
        // A failure with no report (a step that failed before it began,
        // checking its context files): named by the error event alone.
        if only.is_none() {
            let errors = self
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            for (name, message, at) in errors {
                if !reports.iter().any(|r| r.name == name) {
                    steps.push(StepRecord {
                        name: bounded(&name),
                        digest: None,
                        start_ms: offset(at),
                        end_ms: offset(at),
                        started_at: wall(at),
                        state: StepState::Failed,
                        reason: None,
                        bytes: None,
                        error: Some(bounded(&message)),
                    });
                }
            }
        }
        steps.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        let steps_omitted = steps.len().saturating_sub(MAX_STEPS);
        steps.truncate(MAX_STEPS);
        let started_unix_ms = self
            .started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        BuildRecord {
            version: RECORD_VERSION,
            id: new_id(self.started_at),
            info: BuildInfo {
                name: bounded(&info.name),
                context: bounded(&info.context),
                dockerfile: bounded(&info.dockerfile),
                target: info.target.as_deref().map(bounded),
                ..info
            },
            started_at: humantime::format_rfc3339_millis(self.started_at).to_string(),
            started_unix_ms,
            duration_ms: offset(now),
            status,
            error: error.map(bounded),
            steps,
            steps_omitted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl ProgressSink for Nothing {
        fn event(&self, _: Event) {}
    }

    fn report(name: &str, vertex: &Digest, status: StepStatus) -> StepReport {
        let now = Instant::now();
        StepReport {
            name: name.into(),
            vertex: vertex.clone(),
            started: now,
            ended: now + Duration::from_millis(5),
            status,
            miss_reason: Some("no cache record".into()),
            bytes: Some(10),
        }
    }

    #[test]
    fn the_record_holds_the_reported_steps_and_unreported_failures() {
        let log = Arc::new(StepLog::new());
        let sink = log.sink(Arc::new(Nothing));
        let (a, b) = (Digest::sha256(b"a"), Digest::sha256(b"b"));
        sink.step(report("[1/2] RUN a", &a, StepStatus::Built));
        sink.step(report(
            "[2/2] RUN b",
            &b,
            StepStatus::Failed("exit 1".into()),
        ));
        sink.event(Event::Error {
            name: "[2/2] RUN b".into(),
            message: "exit 1".into(),
        });
        sink.event(Event::Error {
            name: "[x 1/1] COPY y /".into(),
            message: "no such file".into(),
        });
        log.add_other("[internal] pull busybox", Instant::now(), Some(7), None);
        let record = log.record(
            BuildInfo::default(),
            BuildStatus::Failed,
            Some("exit 1"),
            None,
        );
        // By start (equal clock readings keep the order they came in).
        assert!(record
            .steps
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms));
        let mut states: Vec<(&str, StepState)> = record
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.state))
            .collect();
        states.sort_by_key(|(name, _)| *name);
        assert_eq!(
            states,
            [
                ("[1/2] RUN a", StepState::Built),
                ("[2/2] RUN b", StepState::Failed),
                ("[internal] pull busybox", StepState::Built),
                ("[x 1/1] COPY y /", StepState::Failed),
            ]
        );
        let pull = record
            .steps
            .iter()
            .find(|s| s.name == "[internal] pull busybox")
            .expect("pull");
        assert_eq!((pull.digest.as_deref(), pull.bytes), (None, Some(7)));
        assert_eq!(record.steps[0].digest.as_deref(), Some(a.as_str()));
        assert!(record.steps[0].end_ms - record.steps[0].start_ms >= 5.0);
        // One target of several: only its vertices.
        let only: HashSet<Digest> = [b.clone()].into();
        let one = log.record(BuildInfo::default(), BuildStatus::Failed, None, Some(&only));
        let mut names: Vec<&str> = one.steps.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["[2/2] RUN b", "[internal] pull busybox"]);
    }
}
