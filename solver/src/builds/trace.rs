//! A record as a timeline: the Chrome trace event format (the JSON
//! object form), which Perfetto and `chrome://tracing` open.

use super::{BuildRecord, StepRecord, StepState};
use serde_json::{json, Value};

/// The process id every event of a build carries.
const PID: u64 = 1;

/// `record` in the Chrome trace event format: one complete event (`"ph":
/// "X"`) per step, `ts` and `dur` in microseconds from the build's start,
/// steps that overlap in time on different lanes (`tid`), each lane named
/// by a metadata event; `args` carry the step's digest, cache state, miss
/// reason, bytes and error. `otherData` has the build's id, name, status
/// and start.
pub fn chrome_trace(record: &BuildRecord) -> Value {
    let lanes = lanes(&record.steps);
    let count = lanes.iter().copied().max().map_or(0, |n| n + 1);
    let mut events = vec![json!({
        "name": "process_name",
        "ph": "M",
        "pid": PID,
        "tid": 0,
        "args": { "name": format!("kiln build {} ({})", record.info.name, record.id) },
    })];
    for lane in 0..count {
        events.push(json!({
            "name": "thread_name",
            "ph": "M",
            "pid": PID,
            "tid": lane + 1,
            "args": { "name": format!("lane {}", lane + 1) },
        }));
        events.push(json!({
            "name": "thread_sort_index",
            "ph": "M",
            "pid": PID,
            "tid": lane + 1,
            "args": { "sort_index": lane + 1 },
        }));
    }
    for (step, lane) in record.steps.iter().zip(&lanes) {
        let mut args = serde_json::Map::new();
        args.insert("status".into(), json!(step.state));
        args.insert("cached".into(), json!(step.state == StepState::Cached));
        if let Some(d) = &step.digest {
            args.insert("digest".into(), json!(d));
        }
        if let Some(r) = &step.reason {
            args.insert("reason".into(), json!(r));
        }
        if let Some(b) = step.bytes {
            args.insert("bytes".into(), json!(b));
        }
        if let Some(e) = &step.error {
            args.insert("error".into(), json!(e));
        }
        args.insert("started_at".into(), json!(step.started_at));
        events.push(json!({
            "name": step.name,
            "cat": step.state,
            "ph": "X",
            "ts": micros(step.start_ms),
            "dur": micros(step.duration_ms()),
            "pid": PID,
            "tid": lane + 1,
            "args": args,
        }));
    }
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "id": record.id,
            "name": record.info.name,
            "status": record.status,
            "started_at": record.started_at,
            "duration_ms": record.duration_ms,
        },
    })
}

fn micros(ms: f64) -> u64 {
    (ms * 1e3).round().max(0.0) as u64
}

/// A lane (from 0) for each step, in order: the first lane free when the
/// step starts, so steps that overlap never share one. `steps` is sorted
/// by start (as records are).
fn lanes(steps: &[StepRecord]) -> Vec<usize> {
    let mut ends: Vec<f64> = Vec::new();
    steps
        .iter()
        .map(|s| {
            let end = s.end_ms.max(s.start_ms);
            match ends.iter().position(|e| *e <= s.start_ms) {
                Some(i) => {
                    ends[i] = end;
                    i
                }
                None => {
                    ends.push(end);
                    ends.len() - 1
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{BuildInfo, BuildStatus, RECORD_VERSION};
    use super::*;

    fn step(name: &str, start_ms: f64, end_ms: f64) -> StepRecord {
        StepRecord {
            name: name.into(),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            start_ms,
            end_ms,
            started_at: String::new(),
            state: StepState::Built,
            reason: Some("no cache record".into()),
            bytes: Some(3),
            error: None,
        }
    }

    #[test]
    fn overlapping_steps_get_separate_lanes_and_named_lanes() {
        let steps = vec![
            step("a", 0.0, 10.0),
            step("b", 2.0, 8.0),
            step("c", 8.0, 9.0),
            step("d", 10.0, 11.0),
        ];
        assert_eq!(lanes(&steps), [0, 1, 1, 0]);
        let record = BuildRecord {
            version: RECORD_VERSION,
            id: "x".into(),
            info: BuildInfo::default(),
            started_at: String::new(),
            started_unix_ms: 0,
            duration_ms: 11.0,
            status: BuildStatus::Completed,
            error: None,
            steps,
            steps_omitted: 0,
        };
        let trace = chrome_trace(&record);
        let events = trace["traceEvents"].as_array().expect("events");
        let x: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 4);
        assert_eq!(
            (x[1]["ts"].as_u64(), x[1]["dur"].as_u64()),
            (Some(2000), Some(6000))
        );
        assert_eq!(x[1]["tid"], 2);
        assert_eq!(x[1]["args"]["cached"], false);
        let named = events.iter().filter(|e| e["name"] == "thread_name").count();
        assert_eq!(named, 2);
    }
}
