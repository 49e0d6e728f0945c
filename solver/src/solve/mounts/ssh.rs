//! SSH agent forwarding for `RUN --mount=type=ssh`: a socket with the
//! mount's mode and owner whose connections are relayed to the agent
//! given with `--ssh`, for as long as the step runs.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running relay; dropping it stops accepting connections.
pub(super) struct Forwarder {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Listens on `socket` (mode `mode`, owned by `uid:gid`) and relays
    /// each connection to the agent at `agent`.
    pub(super) fn start(
        socket: &Path,
        agent: &Path,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> io::Result<Forwarder> {
        // Fail now, with the path, when the agent is not there.
        UnixStream::connect(agent).map_err(|e| {
            io::Error::new(e.kind(), format!("connecting to {}: {e}", agent.display()))
        })?;
        let listener = UnixListener::bind(socket)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(socket, Some(uid), Some(gid))?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    let agent = agent.clone();
                    std::thread::spawn(move || {
                        if let Ok(upstream) = UnixStream::connect(&agent) {
                            relay(client, upstream);
                        }
                    });
                }
            })
        };
        Ok(Forwarder {
            socket: socket.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

/// Copies both ways until each side has finished writing.
fn relay(client: UnixStream, upstream: UnixStream) {
    let (Ok(mut client_r), Ok(mut upstream_w)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut client_r, &mut upstream_w);
        let _ = upstream_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_r, mut client_w) = (upstream, client);
    let _ = io::copy(&mut upstream_r, &mut client_w);
    let _ = client_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn connections_are_relayed_to_the_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent_path = dir.path().join("agent");
        let agent = UnixListener::bind(&agent_path).expect("bind");
        // An "agent" answering each request with its reversed bytes.
        std::thread::spawn(move || {
            for conn in agent.incoming() {
                let Ok(mut c) = conn else { continue };
                let mut buf = Vec::new();
                if c.read_to_end(&mut buf).is_ok() {
                    buf.reverse();
                    let _ = c.write_all(&buf);
                }
            }
        });
        let socket = dir.path().join("fwd");
        let me = std::fs::metadata(dir.path()).expect("stat");
        let (uid, gid) = (me.uid(), me.gid());
        let fwd = Forwarder::start(&socket, &agent_path, 0o600, uid, gid).expect("start");
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::metadata(&socket).expect("socket");
        assert!(md.file_type().is_socket());
        assert_eq!(md.mode() & 0o777, 0o600);
        for request in ["ping", "second"] {
            let mut c = UnixStream::connect(&socket).expect("connect");
            c.write_all(request.as_bytes()).expect("write");
            c.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let mut answer = String::new();
            c.read_to_string(&mut answer).expect("read");
            assert_eq!(answer, request.chars().rev().collect::<String>());
        }
        drop(fwd);
        assert!(!socket.exists());
        // A missing agent is an error naming it.
        let err = Forwarder::start(&socket, &dir.path().join("none"), 0o600, uid, gid)
            .err()
            .expect("fails");
        assert!(err.to_string().contains("none"), "{err}");
    }
}
