//! The scheduler with fake work: counters and flags instead of ops, no
//! root, no sandbox. Nothing here asserts a duration: [`wait_for`]'s limit
//! only keeps a broken scheduler from hanging the test run.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Waits until `cond` holds; false when it never does (a hang guard).
fn wait_for(cond: impl Fn() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(60);
    while !cond() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn node(id: usize, inputs: &[usize]) -> Node<usize> {
    Node {
        id,
        inputs: inputs.to_vec(),
    }
}

/// The vertices work started on, shared with the fake work.
#[derive(Clone, Default)]
struct Started(Arc<Mutex<Vec<usize>>>);

impl Started {
    fn push(&self, id: usize) {
        self.0.lock().expect("lock").push(id);
    }

    fn has(&self, id: usize) -> bool {
        self.0.lock().expect("lock").contains(&id)
    }

    fn sorted(&self) -> Vec<usize> {
        let mut v = self.0.lock().expect("lock").clone();
        v.sort();
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_reaches_the_job_limit_and_never_exceeds_it() {
    let running = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let nodes = (0..9).map(|i| node(i, &[])).collect();
    let (r, s, p) = (running.clone(), started.clone(), peak.clone());
    let result = run(
        nodes,
        3,
        &CancelToken::new(),
        move |id, _: Vec<usize>, _| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            // Vertices start in waves of three and each holds until its wave
            // is complete: a limit below three never completes a wave.
            let n = s.fetch_add(1, Ordering::SeqCst);
            let wave_end = (n / 3 + 1) * 3;
            let full = wait_for(|| s.load(Ordering::SeqCst) >= wave_end);
            r.fetch_sub(1, Ordering::SeqCst);
            if full {
                Ok(id)
            } else {
                Err(format!("vertex {id}: its wave of three never ran together"))
            }
        },
    )
    .await;
    let done = match result {
        Ok(done) => done,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(done.len(), 9);
    assert_eq!(peak.load(Ordering::SeqCst), 3, "peak parallelism");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_failure_cancels_the_rest() {
    let started = Started::default();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    // 0 fails once 1 runs; 1 runs until it sees the token; 2 is queued
    // behind the limit and 3 waits for 1: neither may start.
    let nodes = vec![node(0, &[]), node(1, &[]), node(2, &[]), node(3, &[1])];
    let (s, seen) = (started.clone(), saw_cancel.clone());
    let result = run(
        nodes,
        2,
        &CancelToken::new(),
        move |id, _: Vec<()>, token| {
            s.push(id);
            match id {
                0 => {
                    wait_for(|| s.has(1));
                    Err(format!("vertex {id} failed"))
                }
                1 => {
                    seen.store(wait_for(|| token.is_cancelled()), Ordering::SeqCst);
                    Ok(())
                }
                _ => Ok(()),
            }
        },
    )
    .await;
    match result {
        Err(Failure::Failed { vertex: 0, error }) => assert_eq!(error, "vertex 0 failed"),
        other => panic!("expected vertex 0's failure, got {other:?}"),
    }
    assert!(saw_cancel.load(Ordering::SeqCst), "the running step saw it");
    assert_eq!(started.sorted(), vec![0, 1], "queued steps never start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_reaches_a_running_step_and_nothing_more_starts() {
    let started = Started::default();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let caller = CancelToken::new();
    let nodes = vec![node(0, &[]), node(1, &[0])];
    let (s, seen) = (started.clone(), saw_cancel.clone());
    let solve = tokio::spawn({
        let caller = caller.clone();
        async move {
            run(nodes, 4, &caller, move |id, _: Vec<()>, token| {
                s.push(id);
                let cancelled = wait_for(|| token.is_cancelled());
                seen.store(cancelled, Ordering::SeqCst);
                // A step that stops when cancelled fails.
                Err::<(), _>(format!("vertex {id} stopped"))
            })
            .await
        }
    });
    let s = started.clone();
    let cancelled = tokio::task::spawn_blocking(move || {
        let running = wait_for(|| s.has(0));
        caller.cancel();
        running
    });
    assert!(cancelled.await.expect("join"), "vertex 0 started");
    match solve.await.expect("join") {
        Err(Failure::Cancelled) => {}
        other => panic!("expected a cancelled run, got {other:?}"),
    }
    assert!(saw_cancel.load(Ordering::SeqCst), "the running step saw it");
    assert_eq!(started.sorted(), vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_vertex_runs_once_and_feeds_each_user() {
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    // 0 is the input of 1 and 2, which are the inputs of 3; 0 is listed
    // twice as well.
    let nodes = vec![
        node(0, &[]),
        node(1, &[0]),
        node(0, &[]),
        node(2, &[0]),
        node(3, &[1, 2]),
    ];
    let r = runs.clone();
    let result = run(
        nodes,
        4,
        &CancelToken::new(),
        move |id, inputs: Vec<String>, _| {
            r[id].fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(format!("{id}({})", inputs.join(",")))
        },
    )
    .await;
    let done = match result {
        Ok(done) => done,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(done[&3], "3(1(0()),2(0()))");
    let counts: Vec<usize> = runs.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(counts, vec![1, 1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_the_failure_of_its_own_vertex() {
    let nodes = vec![node(0, &[]), node(7, &[0]), node(8, &[7])];
    let started = Started::default();
    let s = started.clone();
    let result = run(nodes, 2, &CancelToken::new(), move |id, _: Vec<()>, _| {
        s.push(id);
        if id == 7 {
            panic!("vertex {id} broke");
        }
        Ok::<_, String>(())
    })
    .await;
    match result {
        Err(Failure::Panicked { vertex: 7, message }) => assert_eq!(message, "vertex 7 broke"),
        other => panic!("expected vertex 7's panic, got {other:?}"),
    }
    assert_eq!(started.sorted(), vec![0, 7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertex_with_an_input_outside_the_run_is_refused() {
    let nodes = vec![node(0, &[]), node(1, &[5])];
    let result = run(nodes, 2, &CancelToken::new(), |_, _: Vec<()>, _| {
        Ok::<_, String>(())
    })
    .await;
    assert!(matches!(result, Err(Failure::Unrunnable { vertex: 1 })));
}

#[test]
fn a_child_token_follows_its_parent_but_not_the_other_way() {
    let parent = CancelToken::new();
    let child = parent.child();
    child.cancel();
    assert!(!parent.is_cancelled());
    let other = parent.child();
    parent.cancel();
    assert!(other.is_cancelled());
    assert!(parent.clone().is_cancelled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_steps_overlap_beyond_the_cores_while_cpu_work_stays_in_the_pool() {
    // Six steps, a job limit of eight and a CPU pool of two: each step
    // first waits (a process, a download) until all six wait together,
    // then does CPU work in the pool. CPU work enters in pairs and each
    // holds until its pair is complete, so a pool of one never finishes a
    // pair, and without a pool more than two would run at once.
    let pool = super::super::CpuPool::new(2);
    let waiting = Arc::new(AtomicUsize::new(0));
    let cpu_started = Arc::new(AtomicUsize::new(0));
    let cpu_running = Arc::new(AtomicUsize::new(0));
    let cpu_peak = Arc::new(AtomicUsize::new(0));
    let nodes = (0..6).map(|i| node(i, &[])).collect();
    let (w, s, r, p) = (
        waiting.clone(),
        cpu_started.clone(),
        cpu_running.clone(),
        cpu_peak.clone(),
    );
    let result = run(
        nodes,
        8,
        &CancelToken::new(),
        move |id, _: Vec<usize>, token| {
            w.fetch_add(1, Ordering::SeqCst);
            if !wait_for(|| w.load(Ordering::SeqCst) >= 6) {
                return Err(format!("vertex {id}: the six waits never overlapped"));
            }
            pool.run(token, || {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let n = s.fetch_add(1, Ordering::SeqCst);
                let pair_end = (n / 2 + 1) * 2;
                let full = wait_for(|| s.load(Ordering::SeqCst) >= pair_end);
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(full)
            })
            .map_err(|e| e.to_string())
            .and_then(|full| {
                if full {
                    Ok(id)
                } else {
                    Err(format!("vertex {id}: its CPU pair never ran together"))
                }
            })
        },
    )
    .await;
    let done = match result {
        Ok(done) => done,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(done.len(), 6);
    assert_eq!(waiting.load(Ordering::SeqCst), 6);
    assert_eq!(cpu_peak.load(Ordering::SeqCst), 2, "CPU work at once");
}
