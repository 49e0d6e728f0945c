//! The generic scheduler: runs a set of vertices, each after its inputs,
//! at most `jobs` at a time, each once, on blocking threads.
//!
//! It knows vertex ids, their dependencies, a job limit and a
//! [`CancelToken`]; what running a vertex means is the caller's `work`
//! function (the solver's per-op code). The first failure cancels the
//! rest: queued vertices never start, and running ones see the token
//! cancelled. A panic in `work` is that vertex's failure.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// Asks a solve to stop. Clones share one state: the caller keeps one and
/// cancels it; every step of the solve is handed one and can ask
/// [`is_cancelled`](CancelToken::is_cancelled) at any time. It wraps the
/// executor's [`kiln_executor::CancelSignal`], which a RUN step hands to
/// the runtime ([`signal`](CancelToken::signal)): cancelling the token
/// kills the processes running for it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    signal: kiln_executor::CancelSignal,
}

impl CancelToken {
    /// A token nobody has cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels this token, its clones and its children (and kills the
    /// processes running for them).
    pub fn cancel(&self) {
        self.signal.cancel();
    }

    /// True once this token or one it was made from is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.signal.is_cancelled()
    }

    /// A token cancelled with this one, that can also be cancelled on its
    /// own without cancelling this one.
    pub fn child(&self) -> CancelToken {
        CancelToken {
            signal: self.signal.child(),
        }
    }

    /// The executor's signal this token is: hand it to a run
    /// ([`kiln_executor::RunStep::cancel`]) to have the run's process
    /// killed when the token is cancelled.
    pub fn signal(&self) -> &kiln_executor::CancelSignal {
        &self.signal
    }
}

/// One vertex to run: its id and the ids whose results it takes, in order.
#[derive(Debug, Clone)]
pub(crate) struct Node<Id> {
    /// The vertex.
    pub id: Id,
    /// Its inputs (each must be a node of the same run).
    pub inputs: Vec<Id>,
}

/// Why a run stopped.
#[derive(Debug)]
pub(crate) enum Failure<Id, E> {
    /// A vertex's work returned an error (the first one).
    Failed {
        /// The vertex.
        vertex: Id,
        /// Its error.
        error: E,
    },
    /// A vertex's work panicked.
    Panicked {
        /// The vertex.
        vertex: Id,
        /// The panic's message.
        message: String,
    },
    /// The caller cancelled the token before anything failed.
    Cancelled,
    /// A vertex whose inputs are not all in the run (or wait for each
    /// other) can never start.
    Unrunnable {
        /// The vertex.
        vertex: Id,
    },
}

/// What a blocking task hands back: the vertex and its work's outcome.
type Finished<Id, T, E> = (Id, Result<Result<T, E>, String>);

/// Runs `nodes`: each once its inputs are done, in the given order among
/// those ready, at most `jobs` at once (at least one). `work` gets the
/// vertex, its inputs' results (in its inputs' order) and a token that is
/// cancelled when the caller cancels `cancel` or another vertex fails.
///
/// Returns every vertex's result, or the first failure once the vertices
/// still running have finished.
pub(crate) async fn run<Id, T, E, F>(
    nodes: Vec<Node<Id>>,
    jobs: usize,
    cancel: &CancelToken,
    work: F,
) -> Result<HashMap<Id, T>, Failure<Id, E>>
where
    Id: Copy + Eq + Hash + Send + 'static,
    T: Clone + Send + 'static,
    E: Send + 'static,
    F: Fn(Id, Vec<T>, &CancelToken) -> Result<T, E> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let token = cancel.child();
    let mut seen = HashSet::new();
    let nodes: Vec<Node<Id>> = nodes.into_iter().filter(|n| seen.insert(n.id)).collect();
    if let Some(n) = nodes
        .iter()
        .find(|n| n.inputs.iter().any(|i| !seen.contains(i)))
    {
        return Err(Failure::Unrunnable { vertex: n.id });
    }
    let jobs = jobs.max(1);
    let mut done: HashMap<Id, T> = HashMap::new();
    let mut running: HashSet<Id> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::<Finished<Id, T, E>>::new();
    let mut failure: Option<Failure<Id, E>> = None;
    loop {
        if failure.is_none() && cancel.is_cancelled() {
            failure = Some(Failure::Cancelled);
        }
        if failure.is_none() {
            for node in &nodes {
                if tasks.len() >= jobs {
                    break;
                }
                if done.contains_key(&node.id) || running.contains(&node.id) {
                    continue;
                }
                let Some(inputs) = node
                    .inputs
                    .iter()
                    .map(|i| done.get(i).cloned())
                    .collect::<Option<Vec<T>>>()
                else {
                    continue;
                };
                let (work, token, id) = (work.clone(), token.clone(), node.id);
                running.insert(id);
                tasks.spawn_blocking(move || {
                    let outcome =
                        std::panic::catch_unwind(AssertUnwindSafe(|| work(id, inputs, &token)));
                    (id, outcome.map_err(|payload| panic_message(&*payload)))
                });
            }
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let Ok((id, outcome)) = joined else {
            // Not a panic (those are caught in the task): the runtime is
            // shutting down under the solve.
            failure.get_or_insert(Failure::Cancelled);
            token.cancel();
            continue;
        };
        running.remove(&id);
        match outcome {
            Ok(Ok(value)) => {
                done.insert(id, value);
            }
            Ok(Err(error)) => {
                let first = if cancel.is_cancelled() {
                    Failure::Cancelled
                } else {
                    Failure::Failed { vertex: id, error }
                };
                failure.get_or_insert(first);
                token.cancel();
            }
            Err(message) => {
                failure.get_or_insert(Failure::Panicked {
                    vertex: id,
                    message,
                });
                token.cancel();
            }
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    // Without a failure every vertex ran, unless their inputs form a loop.
    match nodes.iter().find(|n| !done.contains_key(&n.id)) {
        Some(n) => Err(Failure::Unrunnable { vertex: n.id }),
        None => Ok(done),
    }
}

/// The text of a panic's payload.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests;
