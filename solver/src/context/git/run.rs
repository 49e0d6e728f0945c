//! Running the `git` binary: a clean environment (no system config, no
//! prompts, no repository variables of the caller), extra config through
//! `GIT_CONFIG_COUNT` (never the command line, where `ps` shows it), and a
//! deadline after which git's whole process group is killed.

use super::GitError;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Variables of the caller that would point git at another repository
/// or config; they are removed.
const CLEARED: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_COUNT",
    "GIT_EXTERNAL_DIFF",
    "GIT_TRACE",
    "GIT_TRACE_CURL",
    "GIT_TRACE_PACKET",
    "GIT_CURL_VERBOSE",
];

/// Most bytes of git's stdout kept (rev-parse and ls-remote answers).
const STDOUT_LIMIT: usize = 1 << 20;
/// Most bytes of git's stderr kept (its last lines make the message).
const STDERR_LIMIT: usize = 1 << 16;

/// How git runs: the deadline, extra config, the environment.
pub(crate) struct Runner<'a> {
    /// When every git command of this fetch must have finished.
    pub deadline: Instant,
    /// The whole budget, for messages.
    pub budget: Duration,
    /// `key=value` config passed through the environment.
    pub config: Vec<(String, String)>,
    /// Other variables (`SSH_AUTH_SOCK`, `GIT_SSH_COMMAND`).
    pub env: Vec<(String, String)>,
    /// Strings never to show (secret values): replaced in git's output.
    pub secrets: &'a [String],
    /// The URL as messages name it.
    pub shown: &'a str,
}

impl Runner<'_> {
    /// Runs `git ARGS` in `cwd`; returns its stdout.
    ///
    /// # Errors
    /// git cannot be started, exits non-zero (its last stderr line), or
    /// the deadline passes.
    pub(crate) fn git(&self, cwd: &Path, args: &[&str]) -> Result<String, GitError> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("git");
        cmd.current_dir(cwd)
            .args(["-c", "protocol.allow=never"])
            .args(["-c", "protocol.https.allow=always"])
            .args(["-c", "protocol.http.allow=always"])
            .args(["-c", "protocol.git.allow=always"])
            .args(["-c", "protocol.ssh.allow=always"])
            .args(["-c", "core.autocrlf=false", "-c", "core.fsmonitor=false"])
            .args([
                "-c",
                "advice.detachedHead=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args([
                "-c",
                "http.lowSpeedLimit=1000",
                "-c",
                "http.lowSpeedTime=30",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for v in CLEARED {
            cmd.env_remove(v);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GCM_INTERACTIVE", "never")
            .env("LC_ALL", "C");
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        cmd.env("GIT_CONFIG_COUNT", self.config.len().to_string());
        for (i, (k, v)) in self.config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let what = args.first().copied().unwrap_or("git");
        let mut child = cmd.spawn().map_err(|error| GitError::Spawn {
            url: self.shown.to_string(),
            error,
        })?;
        let out = child.stdout.take().map(|s| read_capped(s, STDOUT_LIMIT));
        let err = child.stderr.take().map(|s| read_capped(s, STDERR_LIMIT));
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= self.deadline => {
                    kill_group(child.id());
                    let _ = child.wait();
                    return Err(GitError::Timeout {
                        url: self.shown.to_string(),
                        seconds: self.budget.as_secs(),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(error) => {
                    kill_group(child.id());
                    return Err(GitError::Spawn {
                        url: self.shown.to_string(),
                        error,
                    });
                }
            }
        };
        // The group may hold the pipes open (a stuck helper): kill it
        // before joining the readers.
        kill_group(child.id());
        let stdout = out
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let stderr = err
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        if !status.success() {
            let text = self.scrub(&String::from_utf8_lossy(&stderr));
            let line = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
                .or_else(|| text.lines().map(str::trim).rfind(|l| !l.is_empty()))
                .unwrap_or("no message")
                .chars()
                .take(300)
                .collect::<String>();
            return Err(GitError::Failed {
                url: self.shown.to_string(),
                what: what.to_string(),
                message: line,
            });
        }
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }

    /// `text` with every secret value replaced.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for s in self.secrets.iter().filter(|s| s.len() >= 3) {
            text = text.replace(s.as_str(), "xxxxx");
        }
        text
    }
}

/// Reads a pipe to its end on a thread, keeping the first `limit` bytes.
fn read_capped<R: Read + Send + 'static>(
    mut r: R,
    limit: usize,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        kept
    })
}

/// Kills the process group git leads (it and its helpers).
fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // the group is git's own (process_group(0)), nothing else's.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}
