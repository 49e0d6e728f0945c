//! `--ssh ID=KEYFILE[,KEYFILE]`: private key files served by an SSH agent
//! inside kiln, as buildx serves them, so `RUN --mount=type=ssh` works
//! without a running `ssh-agent`.
//!
//! Keys are read with `ssh-key` (OpenSSH's private key format; encrypted
//! keys are refused, as kiln cannot ask for a passphrase) and served with
//! `ssh-agent-lib` on a unix socket in a private directory, which the
//! solver forwards into RUN steps like any agent socket. The agent only
//! lists its keys and signs; it takes no new keys. A connection may send
//! at most [`MAX_CONNECTION_BYTES`] (RUN steps are the build's code, and
//! the agent protocol has no size bound of its own).

use anyhow::{bail, Context, Result};
use signature::Signer;
use ssh_agent_lib::agent::{listen, Agent, ListeningSocket, Session};
use ssh_agent_lib::error::AgentError;
use ssh_agent_lib::proto::{message, signature as flags, SignRequest};
use ssh_key::private::KeypairData;
use ssh_key::{Algorithm, HashAlg, PrivateKey, Signature};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;

/// The largest key file read.
const MAX_KEY_FILE: u64 = 1 << 20;
/// What one client connection may send to the agent in all.
pub const MAX_CONNECTION_BYTES: u64 = 1 << 20;

/// A private key read from a file, with the name the agent lists it by.
#[derive(Clone)]
pub struct KeyFile {
    key: PrivateKey,
    comment: String,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("KeyFile")
            .field("algorithm", &self.key.algorithm())
            .field("comment", &self.comment)
            .finish()
    }
}

/// Reads the OpenSSH private key at `path` (for `--ssh` value `flag`).
///
/// # Errors
/// One line naming the flag and file: unreadable, too large, not an
/// OpenSSH private key, or encrypted.
pub fn read_key(flag: &str, path: &Path) -> Result<KeyFile> {
    let md =
        std::fs::metadata(path).with_context(|| format!("--ssh {flag}: {}", path.display()))?;
    if md.len() > MAX_KEY_FILE {
        bail!(
            "--ssh {flag}: {} is over {} bytes: not a private key",
            path.display(),
            MAX_KEY_FILE
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--ssh {flag}: {} is not a text key file", path.display()))?;
    let key = PrivateKey::from_openssh(&text).map_err(|e| {
        anyhow::anyhow!(
            "--ssh {flag}: {} is not an OpenSSH private key ({e}); give a key file in OpenSSH format (ssh-keygen -p -f FILE converts one) or an agent socket",
            path.display()
        )
    })?;
    if key.is_encrypted() {
        bail!(
            "--ssh {flag}: {} is encrypted and kiln cannot ask for its passphrase (nor can buildx); add it to an ssh-agent (ssh-add) and give --ssh {}=$SSH_AUTH_SOCK",
            path.display(),
            flag.split('=').next().unwrap_or("default")
        );
    }
    let comment = match key.comment() {
        "" => path.display().to_string(),
        c => c.to_string(),
    };
    Ok(KeyFile { key, comment })
}

/// A running agent serving some keys; dropping it stops the agent and
/// removes its socket.
pub struct KeyAgent {
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
    // Holds the private directory of the socket until the agent stops.
    _dir: tempfile::TempDir,
}

impl KeyAgent {
    /// Starts an agent for `keys` on `rt`, on a socket in a new private
    /// directory (mode 0700, the socket 0600).
    ///
    /// # Errors
    /// The directory or the socket cannot be made.
    pub fn start(rt: &tokio::runtime::Runtime, keys: Vec<KeyFile>) -> Result<KeyAgent> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-ssh-")
            .tempdir()
            .context("creating the SSH agent's directory")?;
        let socket = dir.path().join("agent.sock");
        let listener = {
            let _guard = rt.enter();
            UnixListener::bind(&socket)
                .with_context(|| format!("listening on {}", socket.display()))?
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", socket.display()))?;
        let keys = Keys(Arc::new(keys));
        let task = rt.spawn(async move {
            // Ends only when the listener fails; the owner aborts it.
            let _ = listen(Bounded(listener), keys).await;
        });
        Ok(KeyAgent {
            socket,
            task,
            _dir: dir,
        })
    }

    /// The agent's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts one agent per `--ssh` id given key files, and returns them with
/// the socket of each id.
///
/// # Errors
/// As [`KeyAgent::start`].
pub fn serve(
    rt: &tokio::runtime::Runtime,
    keys: &BTreeMap<String, Vec<KeyFile>>,
) -> Result<(Vec<KeyAgent>, BTreeMap<String, PathBuf>)> {
    let mut agents = Vec::new();
    let mut sockets = BTreeMap::new();
    for (id, files) in keys {
        let agent = KeyAgent::start(rt, files.clone())
            .with_context(|| format!("--ssh {id}: starting the agent for its keys"))?;
        sockets.insert(id.clone(), agent.socket().to_path_buf());
        agents.push(agent);
    }
    Ok((agents, sockets))
}

/// The keys one agent serves (each connection gets a clone).
#[derive(Clone)]
struct Keys(Arc<Vec<KeyFile>>);

#[ssh_agent_lib::async_trait]
impl Session for Keys {
    async fn request_identities(&mut self) -> Result<Vec<message::Identity>, AgentError> {
        Ok(self
            .0
            .iter()
            .map(|k| message::Identity {
                credential: k.key.public_key().key_data().clone().into(),
                comment: k.comment.clone(),
            })
            .collect())
    }

    async fn sign(&mut self, request: SignRequest) -> Result<Signature, AgentError> {
        let wanted = request.credential.key_data();
        let key = self
            .0
            .iter()
            .find(|k| k.key.public_key().key_data() == wanted)
            .ok_or_else(|| AgentError::other(io::Error::other("no such key in this agent")))?;
        sign(&key.key, &request.data, request.flags)
    }
}

/// Signs `data` with `key`; RSA keys with SHA-256 or SHA-512 as the
/// request's flags ask (SHA-1 `ssh-rsa` signatures are not made).
fn sign(key: &PrivateKey, data: &[u8], request_flags: u32) -> Result<Signature, AgentError> {
    let KeypairData::Rsa(rsa_key) = key.key_data() else {
        return key.try_sign(data).map_err(AgentError::other);
    };
    // ssh-key 0.6's own RSA conversion repeats a prime, so the key is
    // rebuilt from its components here.
    let int = |m: &ssh_key::Mpint| rsa::BigUint::try_from(m).map_err(AgentError::other);
    let private = rsa::RsaPrivateKey::from_components(
        int(&rsa_key.public.n)?,
        int(&rsa_key.public.e)?,
        int(&rsa_key.private.d)?,
        vec![int(&rsa_key.private.p)?, int(&rsa_key.private.q)?],
    )
    .map_err(AgentError::other)?;
    let (hash, signed) = if request_flags & flags::RSA_SHA2_512 != 0 {
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(private);
        (HashAlg::Sha512, signer.try_sign(data))
    } else if request_flags & flags::RSA_SHA2_256 != 0 {
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private);
        (HashAlg::Sha256, signer.try_sign(data))
    } else {
        return Err(AgentError::other(io::Error::other(
            "ssh-rsa (SHA-1) signatures are not made; ask for rsa-sha2-256 or -512",
        )));
    };
    let signed = signed.map_err(AgentError::other)?;
    Signature::new(
        Algorithm::Rsa { hash: Some(hash) },
        rsa::signature::SignatureEncoding::to_vec(&signed),
    )
    .map_err(AgentError::other)
}

/// The agent's listener: its connections are [`BoundedStream`]s.
#[derive(Debug)]
struct Bounded(UnixListener);

#[ssh_agent_lib::async_trait]
impl ListeningSocket for Bounded {
    type Stream = BoundedStream;

    async fn accept(&mut self) -> io::Result<BoundedStream> {
        let (stream, _) = self.0.accept().await?;
        let (read, write) = stream.into_split();
        Ok(BoundedStream {
            read: read.take(MAX_CONNECTION_BYTES),
            write,
        })
    }
}

impl Agent<Bounded> for Keys {
    fn new_session(&mut self, _socket: &BoundedStream) -> impl Session {
        self.clone()
    }
}

/// A connection that reads end (EOF) after [`MAX_CONNECTION_BYTES`].
#[derive(Debug)]
struct BoundedStream {
    read: tokio::io::Take<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as StdStream;
    use std::time::Duration;

    /// `SSH_AGENTC_REQUEST_IDENTITIES` and the answer of an agent with
    /// no keys (`SSH_AGENT_IDENTITIES_ANSWER`, count 0).
    const LIST: [u8; 5] = [0, 0, 0, 1, 11];
    const NONE: [u8; 9] = [0, 0, 0, 5, 12, 0, 0, 0, 0];

    fn ask(socket: &Path) -> Vec<u8> {
        let mut c = StdStream::connect(socket).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        c.write_all(&LIST).expect("write");
        let mut answer = [0u8; 9];
        c.read_exact(&mut answer).expect("answer");
        answer.to_vec()
    }

    #[test]
    fn a_connection_sending_too_much_is_dropped_and_the_agent_goes_on() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let agent = KeyAgent::start(&rt, Vec::new()).expect("agent");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(agent.socket())
            .expect("socket")
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
        assert_eq!(ask(agent.socket()), NONE);

        // A message that claims 16 MiB and keeps sending: the agent stops
        // reading at its bound and closes the connection.
        let mut c = StdStream::connect(agent.socket()).expect("connect");
        c.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        c.write_all(&[0, 0xff, 0xff, 0xff]).expect("header");
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        let refused = loop {
            match c.write(&chunk) {
                Ok(n) => sent += n as u64,
                Err(e) => break e,
            }
            assert!(sent < 8 * MAX_CONNECTION_BYTES, "the agent kept reading");
        };
        assert!(
            matches!(
                refused.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{refused}"
        );
        assert!(sent <= 2 * MAX_CONNECTION_BYTES, "read {sent} bytes");
        assert_eq!(ask(agent.socket()), NONE, "still serving");

        let socket = agent.socket().to_path_buf();
        drop(agent);
        assert!(!socket.exists(), "its directory goes with it");
    }
}
