//! Real `docker-registry` processes on 127.0.0.1: no auth, htpasswd Basic auth,
//! or token auth with an in-process token issuer.

use crate::bases::BUSYBOX_LAYOUT;
use crate::tools::{require_tool, skopeo};
use crate::{http, token};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a registry gets to answer `GET /v2/` after it is started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`Registry`] authenticates clients.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// htpasswd (bcrypt) Basic auth with one account.
    Basic {
        /// Account name.
        user: String,
        /// Account password.
        password: String,
    },
    /// Docker token auth: the registry sends clients to a token issuer run by the
    /// harness, which knows one account (anonymous requests get tokens with no access).
    Token {
        /// Account name.
        user: String,
        /// Account password.
        password: String,
    },
}

impl Auth {
    /// `Auth::Basic` with the given account.
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic {
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// `Auth::Token` with the given account.
    pub fn token(user: &str, password: &str) -> Auth {
        Auth::Token {
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// `Some((user, password))` unless this is `Auth::None`.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            Auth::None => None,
            Auth::Basic { user, password } | Auth::Token { user, password } => {
                Some((user.as_str(), password.as_str()))
            }
        }
    }
}

/// A real `docker-registry` (distribution 2.x) process on 127.0.0.1, with its config,
/// storage and log in a temporary directory it owns. Killed on drop.
pub struct Registry {
    auth: Auth,
    /// The `auth:` section of the config (empty for `Auth::None`).
    auth_yaml: String,
    port: u16,
    child: Option<Child>,
    issuer: Option<token::TokenIssuer>,
    // Declared last so it is removed after the process is gone.
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry with the given auth on a free port and waits until it answers.
    pub fn start(auth: Auth) -> Registry {
        require_tool("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()
            .expect("registry temp dir");
        let mut issuer = None;
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Basic { user, password } => {
                let hash = bcrypt::hash_with_result(password, 4)
                    .expect("bcrypt hash")
                    .format_for_version(bcrypt::Version::TwoA);
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            Auth::Token { user, password } => {
                let started = token::TokenIssuer::start(dir.path(), user, password);
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    started.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    started.cert_path().display()
                );
                issuer = Some(started);
                yaml
            }
        };
        let mut registry = Registry {
            auth,
            auth_yaml,
            port: 0,
            child: None,
            issuer,
            dir,
        };
        // The free port may be taken by someone else before the registry binds it:
        // try another one in that case.
        for attempt in 1.. {
            registry.port = http::free_port();
            registry.write_config();
            match registry.try_spawn() {
                Ok(()) => break,
                Err(e) if attempt < 3 && e.contains("address already in use") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        registry
    }

    /// `"127.0.0.1:PORT"`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The auth this registry was started with.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// `Some("user:password")` (skopeo's `--creds` form) unless the registry has no auth.
    pub fn creds(&self) -> Option<String> {
        self.auth.credentials().map(|(u, p)| format!("{u}:{p}"))
    }

    /// The temporary directory holding `config.yml`, `storage/` and `registry.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the registry process wrote to stdout/stderr so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Token requests seen by the issuer (token auth only; empty otherwise), one line
    /// each: `"METHOD user=NAME scope=S1 scope=S2 -> granted|401"`, NAME `anonymous`
    /// without credentials.
    pub fn token_requests(&self) -> Vec<String> {
        self.issuer
            .as_ref()
            .map(token::TokenIssuer::requests)
            .unwrap_or_default()
    }

    /// The token issuer's realm URL (`http://127.0.0.1:TPORT/token`), token auth only.
    pub fn token_realm(&self) -> Option<String> {
        self.issuer.as_ref().map(token::TokenIssuer::realm)
    }

    /// SIGKILLs the registry process and waits for it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the registry if running, then starts it again on the same port with the same
    /// config and storage, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.try_spawn() {
            panic!("restart: {e}");
        }
    }

    /// Pushes [`BUSYBOX_LAYOUT`] as `HOST/REPO_TAG` (e.g. `"library/busybox:1"`) with
    /// skopeo, using the registry's credentials; panics with skopeo's stderr on failure.
    pub fn seed_busybox(&self, repo_tag: &str) {
        let source = format!("oci:{BUSYBOX_LAYOUT}:latest");
        let dest = format!("docker://{}/{repo_tag}", self.host());
        let creds = self.creds();
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if let Some(creds) = &creds {
            args.extend(["--dest-creds", creds.as_str()]);
        }
        args.extend([source.as_str(), dest.as_str()]);
        let out = skopeo(&args);
        assert!(
            out.status.success(),
            "seeding busybox with `skopeo {}` failed ({}):\n{}\nregistry log:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Writes `config.yml` for the current port.
    fn write_config(&self) {
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: kiln-test-secret\n\
             {auth}",
            storage = self.dir.path().join("storage").display(),
            port = self.port,
            auth = self.auth_yaml,
        );
        std::fs::write(self.dir.path().join("config.yml"), config).expect("write registry config");
    }

    /// Starts the process and waits for `GET /v2/` to answer with any HTTP status.
    /// On failure the process is gone and the error includes the registry's log.
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open registry log");
        let log_for_stdout = log.try_clone().expect("clone registry log handle");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let answered = answers_http(&self.host());
            // Check the process after the port answers too: something else may own it.
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "docker-registry exited ({status}) before answering on {}; log:\n{}",
                    self.host(),
                    self.log()
                ));
            }
            if answered {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "docker-registry did not answer GET /v2/ on {} within {:?}; log:\n{}",
                    self.host(),
                    STARTUP_TIMEOUT,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True if something on `host` answers `GET /v2/` with an HTTP status line.
fn answers_http(host: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
