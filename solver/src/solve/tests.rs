//! Whole solves with a fake [`kiln_executor::Runtime`]: RUN steps on
//! scratch whose "process" is a closure, in a store in a temporary
//! directory. No root, no sandbox.

use super::*;
use crate::lower::{lower, BuildOptions, ImageResolver, ResolvedImage};
use crate::resolve_error::ResolveError;
use kiln_executor::{RunOutput, RunRequest, Runtime, RuntimeError};
use kiln_oci::Platform;
use std::sync::Mutex;

struct NoImages;

impl ImageResolver for NoImages {
    fn resolve(&self, reference: &str, _: &Platform) -> Result<ResolvedImage, ResolveError> {
        Err(format!("{reference}: no images in these tests").into())
    }
}

/// A runtime whose process is `run`, called with the command line.
struct FakeRuntime<F> {
    run: F,
    calls: Mutex<Vec<String>>,
}

impl<F> Runtime for FakeRuntime<F>
where
    F: Fn(&str, &RunRequest<'_>) -> RunOutput + Send + Sync,
{
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        let command = req.process.args.join(" ");
        self.calls.lock().expect("lock").push(command.clone());
        Ok((self.run)(&command, req))
    }
}

fn fake<F>(run: F) -> Arc<FakeRuntime<F>>
where
    F: Fn(&str, &RunRequest<'_>) -> RunOutput + Send + Sync,
{
    Arc::new(FakeRuntime {
        run,
        calls: Mutex::new(Vec::new()),
    })
}

fn exited(status: i32, output: &str) -> RunOutput {
    RunOutput {
        status,
        output: output.as_bytes().to_vec(),
        notes: Vec::new(),
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl ProgressSink for Events {
    fn event(&self, event: Event) {
        self.0.lock().expect("lock").push(event);
    }
}

impl Events {
    fn errors(&self) -> Vec<(String, String)> {
        let events = self.0.lock().expect("lock");
        events
            .iter()
            .filter_map(|e| match e {
                Event::Error { name, message } => Some((name.clone(), message.clone())),
                _ => None,
            })
            .collect()
    }

    fn cached(&self) -> usize {
        let events = self.0.lock().expect("lock");
        events
            .iter()
            .filter(|e| matches!(e, Event::Cached { .. }))
            .count()
    }
}

struct Build {
    _dir: tempfile::TempDir,
    store: LocalStore,
    lowered: Lowered,
}

fn build(dockerfile: &str) -> Build {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    let parsed = kiln_parser::parse(dockerfile).expect("parse");
    let lowered = lower(
        &parsed,
        &BuildOptions::default(),
        &NoImages,
        std::path::Path::new("."),
    )
    .expect("lower");
    Build {
        _dir: dir,
        store,
        lowered,
    }
}

async fn run(
    b: &Build,
    runtime: Arc<dyn Runtime>,
    events: &Arc<Events>,
    cancel: &CancelToken,
) -> Result<Solved, SolveError> {
    solve_with_cancel(
        &b.lowered,
        &b.store,
        HashMap::new(),
        &SolveOptions::default(),
        runtime,
        events.clone(),
        cancel,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_step_makes_a_layer_that_the_next_solve_finds_in_the_cache() {
    let b = build("FROM scratch\nRUN [\"make\", \"it\"]\n");
    let runtime = fake(|_, req| {
        std::fs::write(req.rootfs.changes().join("made.txt"), "made\n").expect("write");
        exited(0, "")
    });
    let events = Arc::new(Events::default());
    let first = run(&b, runtime.clone(), &events, &CancelToken::new())
        .await
        .expect("first solve");
    assert_eq!(first.layers.len(), 1);
    assert!(first.layers[0].dir.join("made.txt").exists());
    assert_eq!(first.steps.len(), 1);
    let again = Arc::new(Events::default());
    let second = run(&b, runtime.clone(), &again, &CancelToken::new())
        .await
        .expect("second solve");
    assert_eq!(second.layers, first.layers);
    assert_eq!(again.cached(), 1);
    assert_eq!(*runtime.calls.lock().expect("lock"), vec!["make it"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_named_with_its_line_and_output() {
    let b = build("FROM scratch\nRUN [\"false\"]\n");
    let events = Arc::new(Events::default());
    let err = run(
        &b,
        fake(|_, _| exited(3, "one\ntwo\n")),
        &events,
        &CancelToken::new(),
    )
    .await
    .expect_err("the step fails");
    assert_eq!(err.line(), Some(2));
    assert!(matches!(
        err.step_error(),
        Some(StepError::Exit { status: 3, .. })
    ));
    let text = err.to_string();
    assert!(text.starts_with("line 2: "), "{text}");
    assert!(
        text.ends_with(
            ": process \"false\" did not complete successfully: exit code: 3\n  > one\n  > two"
        ),
        "{text}"
    );
    // The progress display got the same message, under the step's name.
    let errors = events.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(format!("line 2: {}: {}", errors[0].0, errors[0].1), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_is_reported_under_its_own_name() {
    let b = build("FROM scratch\nRUN [\"explode\"]\n");
    let events = Arc::new(Events::default());
    let err = run(
        &b,
        fake(|_, _| panic!("the fake runtime broke")),
        &events,
        &CancelToken::new(),
    )
    .await
    .expect_err("the step panics");
    let SolveError::Step { name, line, error } = &err else {
        panic!("expected a step failure, got {err:?}");
    };
    assert_eq!(*line, Some(2));
    assert!(name.contains("RUN [\"explode\"]"), "{name}");
    assert_eq!(
        error.to_string(),
        "a build step panicked: the fake runtime broke"
    );
    assert_eq!(events.errors().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_cancel_no_further_step_starts() {
    let b = build("FROM scratch\nRUN [\"first\"]\nRUN [\"second\"]\n");
    let cancel = CancelToken::new();
    let events = Arc::new(Events::default());
    // The first process is where the user presses Ctrl-C.
    let runtime = fake({
        let cancel = cancel.clone();
        move |_, _| {
            cancel.cancel();
            exited(0, "")
        }
    });
    let err = run(&b, runtime.clone(), &events, &cancel)
        .await
        .expect_err("cancelled");
    assert!(matches!(err, SolveError::Cancelled), "{err:?}");
    assert_eq!(*runtime.calls.lock().expect("lock"), vec!["first"]);
    assert!(events.errors().is_empty());
}

/// A runtime whose process runs until the run's cancel signal is
/// cancelled, then ends as a real runtime does: with
/// [`RuntimeError::Cancelled`]. The command `fail` instead exits with 1
/// once another process has started.
#[derive(Default)]
struct UntilCancelled {
    started: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    running: std::sync::atomic::AtomicBool,
    saw_cancel: std::sync::atomic::AtomicBool,
}

/// Waits until `cond` holds or a hang guard's minute has passed.
fn wait_until(cond: impl Fn() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

impl Runtime for UntilCancelled {
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        use std::sync::atomic::Ordering::SeqCst;
        let signal = req
            .cancel
            .expect("a RUN step hands the runtime a cancel signal");
        if req.process.args == ["fail"] {
            wait_until(|| self.running.load(SeqCst));
            return Ok(exited(1, "failed"));
        }
        self.running.store(true, SeqCst);
        if let Some(started) = self.started.lock().expect("lock").take() {
            let _ = started.send(());
        }
        // A hang guard only: a signal that is never cancelled fails below.
        wait_until(|| signal.is_cancelled());
        if !signal.is_cancelled() {
            return Ok(exited(0, "never cancelled"));
        }
        self.saw_cancel
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Err(RuntimeError::Cancelled)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_runtime_of_a_running_step() {
    let b = build("FROM scratch\nRUN [\"long\"]\nRUN [\"after\"]\n");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let runtime = Arc::new(UntilCancelled {
        started: Mutex::new(Some(started_tx)),
        ..Default::default()
    });
    let cancel = CancelToken::new();
    let events = Arc::new(Events::default());
    let canceller = std::thread::spawn({
        let cancel = cancel.clone();
        move || {
            // The user presses Ctrl-C while the first process runs.
            let started = started_rx.recv_timeout(std::time::Duration::from_secs(60));
            cancel.cancel();
            started.is_ok()
        }
    });
    let err = run(&b, runtime.clone(), &events, &cancel)
        .await
        .expect_err("cancelled");
    assert!(canceller.join().expect("canceller"), "the step never ran");
    assert!(matches!(err, SolveError::Cancelled), "{err:?}");
    assert!(runtime.saw_cancel.load(std::sync::atomic::Ordering::SeqCst));
    assert!(events.errors().is_empty(), "{:?}", events.errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_failure_kills_the_process_of_a_step_running_beside_it() {
    let b = build(
        "FROM scratch AS long\nRUN [\"long\"]\n\
         FROM scratch AS failing\nRUN [\"fail\"]\n\
         FROM scratch\nCOPY --from=long / /long/\nCOPY --from=failing / /failing/\n",
    );
    let runtime = Arc::new(UntilCancelled::default());
    let events = Arc::new(Events::default());
    let options = SolveOptions {
        jobs: 2,
        ..SolveOptions::default()
    };
    let err = solve_with_cancel(
        &b.lowered,
        &b.store,
        HashMap::new(),
        &options,
        runtime.clone(),
        events.clone(),
        &CancelToken::new(),
    )
    .await
    .expect_err("a step fails");
    assert!(
        matches!(err.step_error(), Some(StepError::Exit { status: 1, .. })),
        "{err:?}"
    );
    assert!(runtime.saw_cancel.load(std::sync::atomic::Ordering::SeqCst));
    // Only the failure is reported, not the step it stopped.
    let errors = events.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].0.contains("fail"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privilege_not_granted_fails_before_anything_runs() {
    let b = build("FROM scratch\nRUN [\"ok\"]\nRUN --network=host [\"net\"]\n");
    let runtime = fake(|_, _| exited(0, ""));
    let err = run(
        &b,
        runtime.clone(),
        &Arc::new(Events::default()),
        &CancelToken::new(),
    )
    .await
    .expect_err("refused");
    assert!(
        err.to_string().ends_with(
            ": --network=host needs the network.host entitlement: add --allow network.host"
        ),
        "{err}"
    );
    assert_eq!(err.line(), Some(3));
    assert!(runtime.calls.lock().expect("lock").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_processes_overlap_beyond_the_cpu_pool() {
    // Four independent stages whose processes each wait until all four
    // run at once: with the default job limit and a CPU pool of one slot
    // they do, since a running process holds no CPU slot (the old
    // default of one job per core never completed the wave).
    let b = build(
        "FROM scratch AS s1\nRUN [\"w1\"]\nFROM scratch AS s2\nRUN [\"w2\"]\n\
         FROM scratch AS s3\nRUN [\"w3\"]\nFROM scratch AS s4\nRUN [\"w4\"]\n\
         FROM scratch\nCOPY --from=s1 / /1/\nCOPY --from=s2 / /2/\n\
         COPY --from=s3 / /3/\nCOPY --from=s4 / /4/\n",
    );
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let runtime = fake(move |_, _| {
        use std::sync::atomic::Ordering::SeqCst;
        let now = r.fetch_add(1, SeqCst) + 1;
        p.fetch_max(now, SeqCst);
        // A hang guard, not a duration under test.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while p.load(SeqCst) < 4 && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        r.fetch_sub(1, SeqCst);
        if p.load(SeqCst) >= 4 {
            exited(0, "")
        } else {
            exited(1, "the four waits never overlapped")
        }
    });
    let options = SolveOptions {
        cpu: CpuPool::new(1),
        ..SolveOptions::default()
    };
    assert!(options.jobs >= 4, "default jobs {}", options.jobs);
    let solved = solve_with_cancel(
        &b.lowered,
        &b.store,
        HashMap::new(),
        &options,
        runtime.clone(),
        Arc::new(Events::default()),
        &CancelToken::new(),
    )
    .await;
    if let Err(e) = solved {
        panic!("{e}");
    }
    assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert_eq!(runtime.calls.lock().expect("lock").len(), 4);
}

async fn run_with(
    b: &Build,
    runtime: Arc<dyn Runtime>,
    events: &Arc<Events>,
    cancel: &CancelToken,
    prepare: PrepareLayer,
) -> Result<Solved, SolveError> {
    let options = SolveOptions {
        prepare: Some(prepare),
        ..SolveOptions::default()
    };
    solve_with_cancel(
        &b.lowered,
        &b.store,
        HashMap::new(),
        &options,
        runtime,
        events.clone(),
        cancel,
    )
    .await
}

fn writes(name: &'static str) -> impl Fn(&str, &RunRequest<'_>) -> RunOutput + Send + Sync {
    move |_, req| {
        std::fs::write(req.rootfs.changes().join(name), name).expect("write");
        exited(0, "")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_layers_are_stored_plain_and_prepared_before_the_solve_returns() {
    let b = build("FROM scratch\nRUN [\"one\"]\nRUN [\"two\"]\n");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let prepare = PrepareLayer::new({
        let seen = seen.clone();
        move |layer: &Layer, _: &dyn Fn() -> bool| {
            // Slow enough that a solve not waiting for it would return first.
            std::thread::sleep(std::time::Duration::from_millis(200));
            seen.lock().expect("lock").push(layer.diff_id.clone());
            Ok(())
        }
    });
    let events = Arc::new(Events::default());
    let solved = run_with(
        &b,
        fake(writes("f")),
        &events,
        &CancelToken::new(),
        prepare.clone(),
    )
    .await
    .expect("solve");
    for layer in &solved.layers {
        assert_eq!(layer.media_type, kiln_oci::media::OCI_LAYER_TAR);
        assert_eq!(layer.blob, layer.diff_id);
    }
    let mut want: Vec<Digest> = solved.layers.iter().map(|l| l.diff_id.clone()).collect();
    let mut got = seen.lock().expect("lock").clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "every new layer prepared, once");
    // A cached layer made here is prepared again (the work finds its
    // memo); the solve waits for that too.
    seen.lock().expect("lock").clear();
    run_with(&b, fake(writes("f")), &events, &CancelToken::new(), prepare)
        .await
        .expect("cached solve");
    assert_eq!(seen.lock().expect("lock").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_preparation_fails_the_solve_under_its_step() {
    let b = build("FROM scratch\nRUN [\"one\"]\n");
    let prepare = PrepareLayer::new(|_: &Layer, _: &dyn Fn() -> bool| Err("disk full".into()));
    let events = Arc::new(Events::default());
    let err = run_with(&b, fake(writes("f")), &events, &CancelToken::new(), prepare)
        .await
        .expect_err("the preparation fails");
    assert_eq!(err.line(), Some(2));
    assert!(
        matches!(err.step_error(), Some(StepError::Prepare(m)) if m == "disk full"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with("compressing the layer for the outputs: disk full"),
        "{err}"
    );
    assert_eq!(events.errors().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_running_preparations_and_the_solve_waits_for_them() {
    let b = build("FROM scratch\nRUN [\"one\"]\nRUN [\"two\"]\n");
    let cancel = CancelToken::new();
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prepare = PrepareLayer::new({
        let (cancel, stopped) = (cancel.clone(), stopped.clone());
        move |_: &Layer, cancelled: &dyn Fn() -> bool| {
            // The user presses Ctrl-C while the first layer compresses.
            cancel.cancel();
            wait_until(cancelled);
            stopped.store(true, std::sync::atomic::Ordering::SeqCst);
            Err("stopped".into())
        }
    });
    let events = Arc::new(Events::default());
    let runtime = fake(writes("f"));
    let err = run_with(&b, runtime.clone(), &events, &cancel, prepare)
        .await
        .expect_err("cancelled");
    assert!(matches!(err, SolveError::Cancelled), "{err:?}");
    assert!(stopped.load(std::sync::atomic::Ordering::SeqCst));
    assert!(events.errors().is_empty(), "{:?}", events.errors());
}
