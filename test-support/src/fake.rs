//! A fault-injecting fake registry: serves exactly what the test put in it, however
//! wrong, and can fail requests or demand credentials on command.

use crate::http::{header, mk_header, ResponseCuts, TlsRejectingFront};
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A manifest as stored by [`FakeRegistry::add_manifest`].
struct Manifest {
    media_type: String,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// (repo, tag or digest) → manifest.
    manifests: HashMap<(String, String), Manifest>,
    /// (repo, digest string) → bytes served for it.
    blobs: HashMap<(String, String), Vec<u8>>,
    /// `Some(realm)`: requests without `Authorization` get 401 Basic.
    basic_realm: Option<String>,
    /// The next `fail_count` requests are answered with `fail_status`.
    fail_count: usize,
    fail_status: u16,
    /// Blob digest → body bytes after which its next GET has its connection closed.
    cuts: HashMap<String, usize>,
    /// `("METHOD PATH[ range=RANGE]", Authorization header)` per request, in order.
    requests: Vec<(String, Option<String>)>,
}

/// A fake registry on 127.0.0.1, served by a background thread until dropped.
///
/// Routes: `GET /v2/` (200, `Docker-Distribution-API-Version: registry/2.0`),
/// `GET|HEAD /v2/REPO/manifests/REF` and `GET|HEAD /v2/REPO/blobs/DIGEST`; anything else
/// is 404 (there is no push support). Query strings are ignored. Bodies are always sent
/// with a `Content-Length` (never chunked).
///
/// Blob GETs honour `Range: bytes=N-` and `bytes=N-M`: `206 Partial Content` with
/// `Content-Range: bytes N-END/LEN` and those bytes, or `416` with `Content-Range:
/// bytes */LEN` when N is past the end. Any other `Range` value is ignored (200, all
/// bytes). [`FakeRegistry::requests`] shows the `Range` header of each request.
pub struct FakeRegistry {
    /// What clients connect to; relays to `server` (see [`TlsRejectingFront`]).
    front: TlsRejectingFront,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
}

impl FakeRegistry {
    /// Starts an empty fake registry on a free port.
    pub fn start() -> FakeRegistry {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake registry"));
        let inner_port = server
            .server_addr()
            .to_ip()
            .expect("fake registry listens on IP")
            .port();
        let front = TlsRejectingFront::start(inner_port);
        let state = Arc::new(Mutex::new(State::default()));
        let thread = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            let cuts = front.cuts();
            std::thread::Builder::new()
                .name("fake-registry".into())
                .spawn(move || {
                    for request in server.incoming_requests() {
                        handle(&state, &cuts, request);
                    }
                })
                .expect("spawn fake registry thread")
        };
        FakeRegistry {
            front,
            server,
            thread: Some(thread),
            state,
        }
    }

    /// `"127.0.0.1:PORT"`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.front.port())
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Serves `bytes` for `GET|HEAD /v2/REPO/manifests/REFERENCE` (a tag or a digest) with
    /// `Content-Type: media_type`. It is also served under its true `sha256:` digest, and
    /// `Docker-Content-Digest` is always that true digest.
    pub fn add_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let digest = sha256_digest(bytes);
        let mut state = self.lock();
        for r in [reference, digest.as_str()] {
            state.manifests.insert(
                (repo.to_string(), r.to_string()),
                Manifest {
                    media_type: media_type.to_string(),
                    bytes: bytes.to_vec(),
                },
            );
        }
    }

    /// Serves `bytes` for `GET|HEAD /v2/REPO/blobs/DIGEST`, whatever they really hash to
    /// (that is how a test serves corrupt content).
    pub fn add_blob(&self, repo: &str, digest: &str, bytes: &[u8]) {
        self.lock()
            .blobs
            .insert((repo.to_string(), digest.to_string()), bytes.to_vec());
    }

    /// From now on, answers every request that has no `Authorization` header with 401 and
    /// `WWW-Authenticate: Basic realm="REALM"`. Any `Authorization` value is accepted;
    /// see [`FakeRegistry::authorizations`] to check what was sent.
    pub fn require_basic_auth(&self, realm: &str) {
        self.lock().basic_realm = Some(realm.to_string());
    }

    /// The next `n` requests (to any path) are answered with `status` and an empty body.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut state = self.lock();
        state.fail_count = n;
        state.fail_status = status;
    }

    /// The next `GET` of blob `digest` (in any repository) that would be answered with
    /// its bytes gets its normal status and headers (including the full `Content-Length`
    /// for a 200), but the connection is closed after `n` body bytes, so the client sees
    /// the body end early. One-shot: later requests are served normally. Calling it again
    /// for the same digest before the cut happened replaces `n`.
    pub fn cut_blob_after(&self, digest: &str, n: usize) {
        self.lock().cuts.insert(digest.to_string(), n);
    }

    /// Every request so far, in order, as `"METHOD PATH"` (path without query string),
    /// or `"METHOD PATH range=VALUE"` when it had a `Range: VALUE` header (for example
    /// `"GET /v2/a/blobs/sha256:… range=bytes=300000-"`).
    pub fn requests(&self) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// The `Authorization` header of every request so far (same order as `requests`).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.lock()
            .requests
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake registry state")
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `sha256:HEX` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({ "errors": [{ "code": code, "message": message }] })
        .to_string()
        .into_bytes()
}

/// `Range: bytes=N-` or `bytes=N-M` → `(N, Some(M) or None)`; `None` for anything else.
fn parse_range(value: &str) -> Option<(usize, Option<usize>)> {
    let (first, last) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let last = match last.trim() {
        "" => None,
        l => Some(l.parse().ok()?),
    };
    match last {
        Some(l) if l < first => None,
        _ => Some((first, last)),
    }
}

/// Serves one request to the fake registry.
fn handle(state: &Mutex<State>, cuts: &ResponseCuts, request: tiny_http::Request) {
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let path = url.split_once('?').map_or(url.as_str(), |(p, _)| p);
    let authorization = header(&request, "Authorization");
    let range = header(&request, "Range");

    let mut state = state.lock().expect("fake registry state");
    let line = match &range {
        Some(r) => format!("{method} {path} range={r}"),
        None => format!("{method} {path}"),
    };
    state.requests.push((line, authorization.clone()));

    let mut headers = vec![(
        "Docker-Distribution-API-Version",
        "registry/2.0".to_string(),
    )];
    let (status, body): (u16, Vec<u8>) = if state.fail_count > 0 {
        state.fail_count -= 1;
        (state.fail_status, Vec::new())
    } else if let (Some(realm), None) = (&state.basic_realm, &authorization) {
        headers.push(("WWW-Authenticate", format!("Basic realm=\"{realm}\"")));
        (401, error_body("UNAUTHORIZED", "authentication required"))
    } else if path == "/v2/" || path == "/v2" {
        (200, b"{}".to_vec())
    } else if method != "GET" && method != "HEAD" {
        (
            405,
            error_body("UNSUPPORTED", "the fake registry is read-only"),
        )
    } else if let Some((repo, reference)) = split_route(path, "/manifests/") {
        match state.manifests.get(&(repo, reference)) {
            Some(m) => {
                headers.push(("Content-Type", m.media_type.clone()));
                headers.push(("Docker-Content-Digest", sha256_digest(&m.bytes)));
                (200, m.bytes.clone())
            }
            None => (404, error_body("MANIFEST_UNKNOWN", "manifest unknown")),
        }
    } else if let Some((repo, digest)) = split_route(path, "/blobs/") {
        match state.blobs.get(&(repo, digest.clone())) {
            Some(bytes) => {
                let bytes = bytes.clone();
                let len = bytes.len();
                headers.push(("Content-Type", "application/octet-stream".to_string()));
                headers.push(("Docker-Content-Digest", digest.clone()));
                headers.push(("Accept-Ranges", "bytes".to_string()));
                let wanted = range
                    .as_deref()
                    .and_then(parse_range)
                    .filter(|_| method == "GET");
                let answer = match wanted {
                    None => (200, bytes),
                    Some((first, _)) if first >= len => {
                        headers.push(("Content-Range", format!("bytes */{len}")));
                        (416, Vec::new())
                    }
                    Some((first, last)) => {
                        let last = last.map_or(len - 1, |l| l.min(len - 1));
                        headers.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
                        (206, bytes[first..=last].to_vec())
                    }
                };
                if method == "GET" && answer.0 < 300 {
                    if let (Some(n), Some(peer)) =
                        (state.cuts.remove(&digest), request.remote_addr())
                    {
                        cuts.cut_after_headers(*peer, n);
                    }
                }
                answer
            }
            None => (404, error_body("BLOB_UNKNOWN", "blob unknown")),
        }
    } else {
        (404, error_body("NOT_FOUND", "no such route"))
    };
    drop(state);

    if status >= 400 && !body.is_empty() && !headers.iter().any(|(n, _)| *n == "Content-Type") {
        headers.push(("Content-Type", "application/json".to_string()));
    }
    let mut response = tiny_http::Response::from_data(body)
        .with_status_code(status)
        .with_chunked_threshold(usize::MAX);
    for (name, value) in &headers {
        response.add_header(mk_header(name, value));
    }
    let _ = request.respond(response);
}

/// `/v2/REPO{sep}REST` → `(REPO, REST)`; the repo may contain slashes.
fn split_route(path: &str, sep: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/v2/")?;
    let at = rest.rfind(sep)?;
    let (repo, tail) = (&rest[..at], &rest[at + sep.len()..]);
    if repo.is_empty() || tail.is_empty() {
        return None;
    }
    Some((repo.to_string(), tail.to_string()))
}
