//! SIGINT and SIGTERM during `kiln build`: the build's token is cancelled
//! ([`build_cancel`]: no step starts any more, and its RUN processes are
//! killed), the RUN steps' processes are gone and their scratch
//! directories removed before kiln ends ([`kiln_executor::abort_runs`]);
//! kiln then ends as the signal would have ended it.

use std::sync::LazyLock;

/// The cancellation token of this process's build (its solves take it);
/// SIGINT and SIGTERM cancel it.
pub fn build_cancel() -> &'static kiln_solver::CancelToken {
    static TOKEN: LazyLock<kiln_solver::CancelToken> = LazyLock::new(Default::default);
    &TOKEN
}

/// Waits for the end when a signal arrived: its handler thread ends the
/// process as the signal would, so an error the interruption caused (a
/// cancelled build) is not reported. Returns at once otherwise.
pub fn end_if_interrupted() {
    if build_cancel().is_cancelled() {
        loop {
            std::thread::park();
        }
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread it
/// starts later: call it before any) and starts a thread that waits for
/// them.
pub fn handle_interrupts() {
    // SAFETY: signal-set calls on a local set; pthread_sigmask on this
    // thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: a valid set and out-parameter.
            while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
            build_cancel().cancel();
            kiln_executor::abort_runs();
            // SAFETY: the default action, unblocked in this thread, for
            // the signal sent to this thread: the process ends by it.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(sig);
            }
            std::process::exit(128 + sig);
        });
    if spawned.is_err() {
        // No thread: the signals end kiln at once, as before (the steps
        // still die with it; the next build sweeps their directories).
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}
