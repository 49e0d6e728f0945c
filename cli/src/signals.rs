//! SIGINT and SIGTERM during `kiln build`.
//!
//! The first signal cancels the build's token ([`build_cancel`]: no step
//! starts any more, and the running RUN steps' process trees are killed,
//! [`kiln_executor::abort_runs`]). The build then stops through the
//! scheduler and unwinds as after any failure (mounts undone, staging and
//! scratch directories removed), and [`end_if_interrupted`] removes what
//! is left of this run in the store, says `interrupted` and exits 130
//! (SIGINT) or 143 (SIGTERM). A second signal ends kiln at once, with the
//! same code.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::LazyLock;

/// The first signal that arrived (0 while none did).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The cancellation token of this process's build (its solves take it);
/// SIGINT and SIGTERM cancel it.
pub fn build_cancel() -> &'static kiln_solver::CancelToken {
    static TOKEN: LazyLock<kiln_solver::CancelToken> = LazyLock::new(Default::default);
    &TOKEN
}

/// After a command: when a signal arrived, makes sure the runs are gone
/// ([`kiln_executor::abort_runs`] again: at once when the signal thread
/// finished it), removes this run's temporaries from the store, says
/// `interrupted` and exits 128 + the signal. Returns at once otherwise.
pub fn end_if_interrupted(global: &crate::global::GlobalArgs) {
    let sig = SIGNAL.load(Ordering::SeqCst);
    if sig == 0 {
        return;
    }
    kiln_executor::abort_runs();
    if let Ok(store) = global.store() {
        // Best effort: what stays is swept by the next command.
        let _ = kiln_solver::gc::sweep_temporaries(&store, true);
    }
    crate::progress::eprint_line("interrupted");
    std::process::exit(128 + sig);
}

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread it
/// starts later: call it before any) and starts a thread that waits for
/// them: the first cancels the build, a second exits at once.
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
    let wait = move || {
        let mut sig = 0;
        // SAFETY: a valid set and out-parameter.
        while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
        sig
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let first = wait();
            SIGNAL.store(first, Ordering::SeqCst);
            build_cancel().cancel();
            // Killing the runs waits for them (up to 10 s): in its own
            // thread, so that a second signal is heard meanwhile.
            let _ = std::thread::Builder::new()
                .name("abort-runs".into())
                .spawn(kiln_executor::abort_runs);
            let second = wait();
            crate::progress::eprint_line("interrupted");
            std::process::exit(128 + second);
        });
    if spawned.is_err() {
        // No thread: the signals end kiln at once, as before (the steps
        // still die with it; the next command sweeps their temporaries).
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}
