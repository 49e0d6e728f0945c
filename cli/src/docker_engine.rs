//! Loading a built image into the local Docker engine (`--load`,
//! `--output type=docker` without `dest`), through the Engine API's
//! `POST /images/load` with bollard.
//!
//! The engine is the one `DOCKER_HOST` names (`unix://PATH`, or plain
//! `tcp://HOST:PORT`), else `/var/run/docker.sock`. The docker CLI's
//! contexts (`docker context use`) are not read: set `DOCKER_HOST`.
//!
//! The docker-archive is streamed into the request as it is written,
//! never to a file. Connecting (and the API version handshake) has a
//! deadline, and so does a transfer that stops moving either way.

use anyhow::{bail, Context, Result};
use bollard::query_parameters::ImportImageOptions;
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use kiln_oci::archive::NamedImage;
use kiln_oci::{Digest, LocalStore, Platform};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The default socket when `DOCKER_HOST` is not set.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How long connecting and the version handshake may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How long a load may go with no byte taken by the engine and no
/// message from it, unless `KILN_LOAD_IDLE_TIMEOUT` (seconds) says.
const IDLE_DEADLINE: Duration = Duration::from_secs(120);
/// The longest a whole load may take, however it moves (also bollard's
/// request timeout, which runs until the engine's first answer).
const LOAD_DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// The size of the pieces the archive is sent in.
const CHUNK: usize = 256 * 1024;
/// Pieces in flight between the archive writer and the request.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Bound on the "Loaded image" lines kept from the engine's answer.
const MAX_LOADED_LINES: usize = 64;

/// Where the engine is, and how the user named it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineAddress {
    /// The transport and address.
    pub kind: AddressKind,
    /// `DOCKER_HOST=…` or the default socket, as said in errors.
    pub origin: String,
}

/// A Docker engine's transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressKind {
    /// A unix socket.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp(String),
}

impl EngineAddress {
    /// The engine `DOCKER_HOST` (the value given here) names, else the
    /// default socket.
    ///
    /// # Errors
    /// A scheme kiln does not speak (`ssh://`, `npipe://`, `fd://`), or
    /// `tcp://` with TLS asked for (`DOCKER_TLS_VERIFY`).
    pub fn from_docker_host(value: Option<&str>, tls_verify: bool) -> Result<EngineAddress> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(EngineAddress {
                kind: AddressKind::Unix(PathBuf::from(DEFAULT_SOCKET)),
                origin: format!("the default socket {DEFAULT_SOCKET} (DOCKER_HOST is not set)"),
            });
        };
        let origin = format!("DOCKER_HOST={value}");
        let kind = if let Some(path) = value.strip_prefix("unix://") {
            if path.is_empty() {
                bail!("{origin}: no socket path after unix://");
            }
            AddressKind::Unix(PathBuf::from(path))
        } else if let Some(addr) = value.strip_prefix("tcp://") {
            if tls_verify {
                bail!("{origin} with DOCKER_TLS_VERIFY: kiln speaks plain HTTP to tcp:// engines only; use the engine's unix socket");
            }
            let addr = addr.trim_end_matches('/');
            if addr.is_empty() || addr.contains('/') {
                bail!("{origin}: expected tcp://HOST:PORT");
            }
            AddressKind::Tcp(addr.to_string())
        } else {
            let scheme = value.split("://").next().unwrap_or(value);
            bail!("{origin}: kiln loads through unix:// or tcp:// engines, not {scheme}:// (set DOCKER_HOST to the engine's socket)");
        };
        Ok(EngineAddress { kind, origin })
    }

    /// Checks that a unix socket is there (before a build, so a missing
    /// engine is said before the work, not after).
    ///
    /// # Errors
    /// No socket at the path, or something else there.
    pub fn check_socket(&self) -> Result<()> {
        let AddressKind::Unix(path) = &self.kind else {
            return Ok(());
        };
        let origin = &self.origin;
        match std::fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
                "no Docker engine socket at {} ({origin}): start dockerd, or set DOCKER_HOST=unix://PATH to its socket",
                path.display()
            ),
            Err(e) => bail!(
                "cannot use the Docker engine socket {} ({origin}): {e}",
                path.display()
            ),
            Ok(md) => {
                use std::os::unix::fs::FileTypeExt;
                if !md.file_type().is_socket() {
                    bail!(
                        "{} ({origin}) is not a socket: set DOCKER_HOST=unix://PATH to the Docker engine's socket",
                        path.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// From the environment: `DOCKER_HOST` and `DOCKER_TLS_VERIFY`.
    ///
    /// # Errors
    /// As [`EngineAddress::from_docker_host`].
    pub fn from_env() -> Result<EngineAddress> {
        let host = std::env::var("DOCKER_HOST").ok();
        let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0");
        EngineAddress::from_docker_host(host.as_deref(), tls)
    }
}

/// What the engine said it loaded.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The engine's `Loaded image: …` / `Loaded image ID: …` lines.
    pub lines: Vec<String>,
    /// The archive's size in bytes.
    pub bytes: u64,
}

/// A connected engine.
pub struct Engine {
    docker: Docker,
    address: EngineAddress,
    idle: Duration,
}

/// The idle deadline of a load: `KILN_LOAD_IDLE_TIMEOUT` seconds, else
/// [`IDLE_DEADLINE`].
fn idle_deadline() -> Result<Duration> {
    match std::env::var("KILN_LOAD_IDLE_TIMEOUT") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => bail!("KILN_LOAD_IDLE_TIMEOUT={v:?}: expected a number of seconds, at least 1"),
        },
        _ => Ok(IDLE_DEADLINE),
    }
}

impl Engine {
    /// Connects to the engine at `address` and agrees on the API version,
    /// within [`CONNECT_DEADLINE`].
    ///
    /// # Errors
    /// One line naming where the engine was looked for and what to do: no
    /// socket there, the connection refused, or an answer that is not the
    /// Docker Engine API.
    pub async fn connect(address: EngineAddress) -> Result<Engine> {
        address.check_socket()?;
        let idle = idle_deadline()?;
        let origin = &address.origin;
        // bollard's request timeout covers a load until the engine's first
        // answer; the idle deadline is what bounds it in practice.
        let timeout = LOAD_DEADLINE.as_secs();
        let docker = match &address.kind {
            AddressKind::Unix(path) => {
                let path = path
                    .to_str()
                    .with_context(|| format!("{origin}: the socket path is not UTF-8"))?;
                Docker::connect_with_unix(path, timeout, bollard::API_DEFAULT_VERSION)
            }
            AddressKind::Tcp(addr) => Docker::connect_with_http(
                &format!("tcp://{addr}"),
                timeout,
                bollard::API_DEFAULT_VERSION,
            ),
        }
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        let docker = match tokio::time::timeout(CONNECT_DEADLINE, docker.negotiate_version()).await
        {
            Err(_) => bail!(
                "the Docker engine at {origin} did not answer within {}s: check that dockerd is running there",
                CONNECT_DEADLINE.as_secs()
            ),
            Ok(Err(e)) => bail!("{}", connect_error(&e, origin)),
            Ok(Ok(docker)) => docker,
        };
        Ok(Engine {
            docker,
            address,
            idle,
        })
    }

    /// Streams `image` (in `store`; an index is resolved to `platform`) as
    /// a docker-archive naming it `names` into the engine, and reads the
    /// engine's answer to its end.
    ///
    /// The archive is written on a thread of its own while the request
    /// sends it; nothing is written to disk.
    ///
    /// # Errors
    /// The archive's own errors, the engine's `error`/`errorDetail`, a
    /// failed transfer, or the idle deadline without progress.
    pub fn load(
        &self,
        rt: &tokio::runtime::Runtime,
        store: &LocalStore,
        image: &Digest,
        platform: &Platform,
        names: &[String],
    ) -> Result<Loaded> {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
        let named = [NamedImage {
            names: names.to_vec(),
            digest: image.clone(),
        }];
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> Result<u64> {
                // On an error the writer is dropped unfinished, which ends
                // the request body with an error: the engine never sees a
                // cut archive as a whole one.
                let out = ChannelWriter::new(tx);
                let mut out =
                    kiln_oci::archive::write_docker_archive(store, &named, platform, out)?;
                out.flush()?;
                out.finished = true;
                Ok(out.sent)
            });
            let answer = rt.block_on(self.send(rx));
            let written = writer
                .join()
                .map_err(|_| anyhow::anyhow!("writing the docker-archive failed"))?;
            match (answer, written) {
                (Ok(mut loaded), Ok(bytes)) => {
                    loaded.bytes = bytes;
                    Ok(loaded)
                }
                // The request's end stopped the writer: the request says why.
                (Err(e), Err(w)) if stopped_by_request(&w) => Err(e),
                // Otherwise the archive's own error explains a failure best.
                (_, Err(w)) => Err(w.context("writing the docker-archive")),
                (Err(e), Ok(_)) => Err(e),
            }
        })
    }

    /// Sends the pieces from `rx` as the body of `POST /images/load` and
    /// reads the engine's JSON messages.
    async fn send(&self, rx: mpsc::Receiver<io::Result<Bytes>>) -> Result<Loaded> {
        let origin = &self.address.origin;
        let activity = Arc::new(Mutex::new(Instant::now()));
        let touch = {
            let activity = activity.clone();
            move || {
                if let Ok(mut at) = activity.lock() {
                    *at = Instant::now();
                }
            }
        };
        let body_touch = touch.clone();
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        })
        .inspect(move |_| body_touch());
        let options = ImportImageOptions {
            quiet: false,
            platform: None,
        };
        let mut answers = self.docker.import_image_stream(options, body, None);
        let mut loaded = Loaded::default();
        let tick = Duration::from_secs(1).min(self.idle);
        let started = Instant::now();
        loop {
            if started.elapsed() > LOAD_DEADLINE {
                bail!(
                    "loading into the Docker engine at {origin} took over {}s; gave up",
                    LOAD_DEADLINE.as_secs()
                );
            }
            let next = match tokio::time::timeout(tick, answers.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let idle = activity.lock().map(|at| at.elapsed()).unwrap_or_default();
                    if idle >= self.idle {
                        bail!(
                            "the Docker engine at {origin} took no data and sent nothing for {}s; gave up (KILN_LOAD_IDLE_TIMEOUT sets the limit)",
                            self.idle.as_secs()
                        );
                    }
                    continue;
                }
            };
            touch();
            match next {
                None => break,
                Some(Ok(info)) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        bail!("the Docker engine at {origin} refused the image: {detail}");
                    }
                    if let Some(line) = info.stream {
                        let line = line.trim();
                        if line.starts_with("Loaded image") && loaded.lines.len() < MAX_LOADED_LINES
                        {
                            loaded.lines.push(line.to_string());
                        }
                    }
                }
                Some(Err(bollard::errors::Error::DockerStreamError { error })) => {
                    bail!("the Docker engine at {origin} refused the image: {error}")
                }
                Some(Err(e)) => bail!("loading into the Docker engine at {origin}: {e}"),
            }
        }
        Ok(loaded)
    }
}

/// Whether the archive writer stopped only because the request ended.
fn stopped_by_request(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// One line for a failed connection: what happened and what to do.
fn connect_error(e: &bollard::errors::Error, origin: &str) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::ConnectionRefused => format!(
                    "cannot connect to the Docker engine at {origin}: connection refused (is dockerd running? set DOCKER_HOST to its socket)"
                ),
                io::ErrorKind::PermissionDenied => format!(
                    "cannot connect to the Docker engine at {origin}: permission denied (run as a member of the docker group, or as root)"
                ),
                io::ErrorKind::NotFound => format!(
                    "no Docker engine at {origin}: start dockerd, or set DOCKER_HOST to its socket"
                ),
                _ => format!("cannot connect to the Docker engine at {origin}: {io}"),
            };
        }
        source = s.source();
    }
    format!("{origin} did not answer as a Docker engine ({e}): set DOCKER_HOST to the Docker engine's socket")
}

/// A `Write` that sends what is written in [`CHUNK`]-sized pieces down a
/// channel (blocking when the engine is slower than the writer).
struct ChannelWriter {
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    buf: Vec<u8>,
    sent: u64,
    /// Set once the whole archive is sent.
    finished: bool,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
            sent: 0,
            finished: false,
        }
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let len = piece.len() as u64;
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "the request has ended"))?;
        tx.blocking_send(Ok(piece)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the Docker engine stopped reading the image",
            )
        })?;
        self.sent += len;
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buffered()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        // A writer dropped with its archive unfinished (an error, or a
        // panic) must not end the body as if it were complete.
        if !self.finished {
            if let Some(tx) = self.tx.take() {
                let _ = tx.blocking_send(Err(io::Error::other("the docker-archive is incomplete")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_forms() {
        let a = EngineAddress::from_docker_host(None, false).expect("default");
        assert_eq!(a.kind, AddressKind::Unix(DEFAULT_SOCKET.into()));
        let a = EngineAddress::from_docker_host(Some("unix:///run/d.sock"), false).expect("unix");
        assert_eq!(a.kind, AddressKind::Unix("/run/d.sock".into()));
        assert_eq!(a.origin, "DOCKER_HOST=unix:///run/d.sock");
        let a = EngineAddress::from_docker_host(Some("tcp://127.0.0.1:2375"), false).expect("tcp");
        assert_eq!(a.kind, AddressKind::Tcp("127.0.0.1:2375".into()));
        for (bad, says) in [
            ("ssh://me@host", "not ssh://"),
            ("npipe:////./pipe/docker", "not npipe://"),
            ("unix://", "no socket path"),
            ("tcp://", "tcp://HOST:PORT"),
        ] {
            let err = EngineAddress::from_docker_host(Some(bad), false)
                .expect_err(bad)
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let err = EngineAddress::from_docker_host(Some("tcp://h:2376"), true)
            .expect_err("tls")
            .to_string();
        assert!(err.contains("DOCKER_TLS_VERIFY"), "{err}");
    }

    #[test]
    fn the_writer_sends_pieces_and_fails_when_nobody_reads() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut w = ChannelWriter::new(tx);
        w.write_all(&vec![1u8; CHUNK + 10]).expect("write");
        assert_eq!(
            rx.try_recv().expect("a full piece").expect("ok").len(),
            CHUNK + 10
        );
        w.write_all(b"tail").expect("write");
        assert!(rx.try_recv().is_err(), "a short piece waits");
        w.flush().expect("flush");
        assert_eq!(
            rx.try_recv().expect("flushed").expect("ok").as_ref(),
            b"tail"
        );
        assert_eq!(w.sent, (CHUNK + 14) as u64);
        drop(rx);
        w.write_all(b"x").expect("buffered");
        let err = w.flush().expect_err("no reader");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn an_unfinished_archive_ends_the_body_with_an_error() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut w = ChannelWriter::new(tx);
        w.write_all(b"part").expect("write");
        w.flush().expect("flush");
        drop(w);
        assert!(rx.try_recv().expect("piece").is_ok());
        assert!(rx.try_recv().expect("end").is_err());
        let (tx, mut rx) = mpsc::channel(4);
        let mut w = ChannelWriter::new(tx);
        w.flush().expect("flush");
        w.finished = true;
        drop(w);
        assert!(rx.try_recv().is_err(), "a finished archive just ends");
    }
}
