//! A real git server on 127.0.0.1 for remote-context tests: `git daemon`
//! (`git://`) and smart HTTP through git's own `git-http-backend`, run
//! per request as a CGI behind a small tiny_http bridge. The HTTP side
//! also serves plain files (context tarballs), can require a token
//! (`Authorization: basic base64(x-access-token:TOKEN)`), and a third
//! port accepts connections and never answers (a stalled server).

use crate::http::{free_port, header, mk_header};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `git ARGS` in `dir` with a fixed identity and no user config;
/// panics on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "kiln test")
        .env("GIT_AUTHOR_EMAIL", "test@kiln.invalid")
        .env("GIT_COMMITTER_NAME", "kiln test")
        .env("GIT_COMMITTER_EMAIL", "test@kiln.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Default)]
struct HttpState {
    token: Option<String>,
    files: std::collections::BTreeMap<String, Vec<u8>>,
}

/// A git server on 127.0.0.1 serving the repositories under its base
/// directory (`<base>/NAME.git`, bare), killed on drop.
pub struct GitServer {
    base: tempfile::TempDir,
    daemon: Child,
    daemon_port: u16,
    http: Arc<tiny_http::Server>,
    http_port: u16,
    state: Arc<Mutex<HttpState>>,
    authorized: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    stall_port: u16,
    _stalled: Arc<Mutex<Vec<TcpStream>>>,
}

impl GitServer {
    /// Starts `git daemon`, the HTTP bridge and the stalling port.
    pub fn start() -> GitServer {
        let base = tempfile::tempdir().expect("git server base dir");
        let daemon_port = free_port();
        let daemon = Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg("--informative-errors")
            .arg(format!("--base-path={}", base.path().display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={daemon_port}"))
            .arg(base.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", daemon_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "git daemon did not listen on {daemon_port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let http = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind git http"));
        let http_port = http
            .server_addr()
            .to_ip()
            .expect("git http listens on IP")
            .port();
        let state = Arc::new(Mutex::new(HttpState::default()));
        let authorized = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        {
            let http = Arc::clone(&http);
            let state = Arc::clone(&state);
            let root = base.path().to_path_buf();
            let (authorized, refused) = (Arc::clone(&authorized), Arc::clone(&refused));
            std::thread::spawn(move || {
                for request in http.incoming_requests() {
                    serve(&root, &state, &authorized, &refused, request);
                }
            });
        }
        let stall = TcpListener::bind("127.0.0.1:0").expect("bind stalling port");
        let stall_port = stall.local_addr().expect("stall addr").port();
        let stalled = Arc::new(Mutex::new(Vec::new()));
        {
            let stalled = Arc::clone(&stalled);
            std::thread::spawn(move || {
                for conn in stall.incoming().flatten() {
                    if let Ok(mut held) = stalled.lock() {
                        held.push(conn);
                    }
                }
            });
        }
        GitServer {
            base,
            daemon,
            daemon_port,
            http,
            http_port,
            state,
            authorized,
            refused,
            stall_port,
            _stalled: stalled,
        }
    }

    /// Makes a bare repository `NAME.git` from the work tree `work` (a
    /// repository with commits): pushes every branch and tag to it.
    pub fn publish(&self, name: &str, work: &Path) -> PathBuf {
        let bare = self.base.path().join(format!("{name}.git"));
        git(
            self.base.path(),
            &["init", "-q", "--bare", &format!("{name}.git")],
        );
        git(&bare, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
        git(&bare, &["config", "http.receivepack", "false"]);
        git(
            work,
            &[
                "push",
                "-q",
                &bare.display().to_string(),
                "refs/heads/*:refs/heads/*",
                "refs/tags/*:refs/tags/*",
            ],
        );
        git(&bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
        bare
    }

    /// `git://127.0.0.1:PORT/NAME.git`.
    pub fn git_url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.daemon_port)
    }

    /// `http://127.0.0.1:PORT/NAME.git`.
    pub fn http_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.http_port)
    }

    /// `http://127.0.0.1:PORT/files/NAME`, serving what [`Self::add_file`] put.
    pub fn file_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/files/{name}", self.http_port)
    }

    /// A git URL on the port that accepts and never answers.
    pub fn stalled_git_url(&self) -> String {
        format!("git://127.0.0.1:{}/stall.git", self.stall_port)
    }

    /// An http URL of a repository on the port that never answers.
    pub fn stalled_http_url(&self) -> String {
        format!("http://127.0.0.1:{}/stall.git", self.stall_port)
    }

    /// Serves `bytes` at [`Self::file_url`]`(name)`.
    pub fn add_file(&self, name: &str, bytes: Vec<u8>) {
        if let Ok(mut s) = self.state.lock() {
            s.files.insert(name.to_string(), bytes);
        }
    }

    /// From now on, HTTP git requests need `Authorization: basic
    /// base64(x-access-token:TOKEN)` (else 401).
    pub fn require_token(&self, token: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.token = Some(token.to_string());
        }
    }

    /// HTTP git requests that carried the required token.
    pub fn authorized_requests(&self) -> usize {
        self.authorized.load(Ordering::SeqCst)
    }

    /// HTTP git requests refused for a missing or wrong token.
    pub fn refused_requests(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        self.http.unblock();
    }
}

fn serve(
    root: &Path,
    state: &Mutex<HttpState>,
    authorized: &AtomicUsize,
    refused: &AtomicUsize,
    mut request: tiny_http::Request,
) {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    if let Some(name) = path.strip_prefix("/files/") {
        let body = state.lock().ok().and_then(|s| s.files.get(name).cloned());
        let response = match body {
            Some(b) => tiny_http::Response::from_data(b),
            None => tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404),
        };
        let _ = request.respond(response);
        return;
    }
    let token = state.lock().ok().and_then(|s| s.token.clone());
    if let Some(token) = token {
        use base64::Engine as _;
        let want = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
        );
        let got = header(&request, "Authorization").unwrap_or_default();
        if !got.eq_ignore_ascii_case(&want) {
            refused.fetch_add(1, Ordering::SeqCst);
            let response = tiny_http::Response::from_data(b"token required".to_vec())
                .with_status_code(401)
                .with_header(mk_header("WWW-Authenticate", "Basic realm=\"git\""));
            let _ = request.respond(response);
            return;
        }
        authorized.fetch_add(1, Ordering::SeqCst);
    }
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut cmd = Command::new(Path::new(&exec_path).join("git-http-backend"));
    cmd.env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("REQUEST_METHOD", request.method().as_str())
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(t) = header(&request, "Content-Type") {
        cmd.env("CONTENT_TYPE", t);
    }
    if let Some(p) = header(&request, "Git-Protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    if let Some(e) = header(&request, "Content-Encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", e);
    }
    let Ok(mut child) = cmd.spawn() else {
        let _ = request.respond(tiny_http::Response::empty(500));
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_end(&mut out);
    }
    let _ = child.wait();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        let _ = request.respond(tiny_http::Response::empty(502));
        return;
    };
    let head = String::from_utf8_lossy(&out[..at]).into_owned();
    let mut status = 200;
    let mut response_headers = Vec::new();
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("Status") {
            status = v
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
        } else {
            response_headers.push(mk_header(k.trim(), v));
        }
    }
    let data = out[at + sep..].to_vec();
    let len = data.len();
    let response = tiny_http::Response::new(
        tiny_http::StatusCode(status),
        response_headers,
        std::io::Cursor::new(data),
        Some(len),
        None,
    );
    let _ = request.respond(response);
}
