//! Small HTTP helpers shared by the token issuer and the fake registry.

use base64::Engine as _;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, then release it).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
pub(crate) fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a query string or form body into decoded `(key, value)` pairs, keeping repeats.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

/// Decodes an `Authorization: Basic ...` header value into `(user, password)`.
pub(crate) fn parse_basic(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The value of header `name` (case-insensitive) on a tiny_http request.
pub(crate) fn header(request: &tiny_http::Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

/// Builds a tiny_http header; panics on invalid bytes (test code only).
pub(crate) fn mk_header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| panic!("invalid header {name}: {value}"))
}

/// A raw HTTP/1.0 exchange with `host` ("127.0.0.1:PORT"): sends `METHOD path` with the
/// given extra header lines and body (a `Content-Length` is added when the body is not
/// empty), returns `(status, headers, body)`. Response headers are lower-cased
/// `(name, value)` pairs. Panics if the connection fails.
pub fn raw_request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect to {host}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set read timeout");
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream
        .write_all(&bytes)
        .unwrap_or_else(|e| panic!("write request to {host}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read response from {host}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in response from {host}: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line from {host}: {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

/// A TCP front for a plain-HTTP test server that answers TLS handshakes at once.
///
/// Clients told a registry is insecure (skopeo `--tls-verify=false`, docker) try HTTPS
/// first and fall back to HTTP only when the handshake fails. A Go server answers a TLS
/// ClientHello with `400 Bad Request` right away; tiny_http instead waits for a request
/// line that never comes, and the client only falls back after its 10 s handshake
/// timeout. The front peeks at each connection: a TLS record (first byte 0x16) gets that
/// same 400 and is closed; anything else is relayed byte for byte to `127.0.0.1:inner`.
///
/// The relay can also cut a response short on command, see [`ResponseCuts`].
pub(crate) struct TlsRejectingFront {
    port: u16,
    stop: Arc<AtomicBool>,
    cuts: ResponseCuts,
    thread: Option<JoinHandle<()>>,
}

/// Pending response cuts of a [`TlsRejectingFront`], shared with the inner server.
///
/// Relayed connections are named by the local address of the relay's socket to the
/// inner server, which is what the inner server sees as the peer (tiny_http's
/// `Request::remote_addr`).
#[derive(Clone, Default)]
pub(crate) struct ResponseCuts(Arc<Mutex<HashMap<SocketAddr, usize>>>);

impl ResponseCuts {
    /// The next response the inner server sends on the connection from `inner_peer` is
    /// relayed up to the end of its header block plus `body_bytes` more bytes; then the
    /// relay closes both sides of the connection, so the client sees the body end early.
    ///
    /// Call it before the inner server starts writing that response. That is enough to
    /// hit the right response as long as the client does not pipeline requests (it only
    /// sends a request once it has read the previous response in full).
    pub(crate) fn cut_after_headers(&self, inner_peer: SocketAddr, body_bytes: usize) {
        self.0
            .lock()
            .expect("response cuts")
            .insert(inner_peer, body_bytes);
    }

    fn take(&self, inner_peer: SocketAddr) -> Option<usize> {
        self.0.lock().expect("response cuts").remove(&inner_peer)
    }
}

/// An armed cut being applied to one relayed response.
struct Cut {
    /// How much of `\r\n\r\n` (the end of the header block) was just seen.
    matched: usize,
    /// Body bytes still to let through once the header block is over.
    body_left: usize,
}

impl Cut {
    /// How many bytes of `chunk` to relay, and whether the connection is to be closed
    /// after them.
    fn feed(&mut self, chunk: &[u8]) -> (usize, bool) {
        const END: &[u8] = b"\r\n\r\n";
        for (i, &b) in chunk.iter().enumerate() {
            if self.matched == END.len() {
                if self.body_left == 0 {
                    return (i, true);
                }
                self.body_left -= 1;
            } else if b == END[self.matched] {
                self.matched += 1;
            } else {
                self.matched = usize::from(b == b'\r');
            }
        }
        (
            chunk.len(),
            self.matched == END.len() && self.body_left == 0,
        )
    }
}

impl TlsRejectingFront {
    /// Listens on a free port of 127.0.0.1 and relays to `127.0.0.1:inner_port`.
    pub(crate) fn start(inner_port: u16) -> TlsRejectingFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS-rejecting front");
        let port = listener.local_addr().expect("front address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = ResponseCuts::default();
        let thread = {
            let stop = Arc::clone(&stop);
            let cuts = cuts.clone();
            std::thread::Builder::new()
                .name("http-front".into())
                .spawn(move || {
                    for client in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        if let Ok(client) = client {
                            let cuts = cuts.clone();
                            std::thread::spawn(move || relay(client, inner_port, &cuts));
                        }
                    }
                })
                .expect("spawn front thread")
        };
        TlsRejectingFront {
            port,
            stop,
            cuts,
            thread: Some(thread),
        }
    }

    /// The port clients should connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// A handle to arm response cuts on this front's connections.
    pub(crate) fn cuts(&self) -> ResponseCuts {
        self.cuts.clone()
    }
}

impl Drop for TlsRejectingFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one front connection: reject TLS, otherwise pipe both ways to the inner port,
/// cutting a response short when `cuts` says so.
fn relay(client: TcpStream, inner_port: u16, cuts: &ResponseCuts) {
    let mut first = [0u8; 1];
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    match client.peek(&mut first) {
        Ok(1) if first[0] == 0x16 => {
            let mut client = client;
            let _ = client.write_all(
                b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
            );
            return;
        }
        Ok(1) => {}
        _ => return,
    }
    let _ = client.set_read_timeout(None);
    let Ok(inner) = TcpStream::connect(("127.0.0.1", inner_port)) else {
        return;
    };
    let Ok(inner_local) = inner.local_addr() else {
        return;
    };
    let (Ok(mut client_read), Ok(mut inner_write)) = (client.try_clone(), inner.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut inner_write);
        let _ = inner_write.shutdown(Shutdown::Write);
    });
    let (mut inner_read, mut client_write) = (inner, client);
    let mut buf = vec![0u8; 64 * 1024];
    let mut cut: Option<Cut> = None;
    loop {
        let n = match inner_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut.is_none() {
            cut = cuts.take(inner_local).map(|body_left| Cut {
                matched: 0,
                body_left,
            });
        }
        let (pass, close) = match cut.as_mut() {
            Some(c) => c.feed(&buf[..n]),
            None => (n, false),
        };
        if client_write.write_all(&buf[..pass]).is_err() || close {
            break;
        }
    }
    let _ = client_write.shutdown(Shutdown::Both);
    let _ = inner_read.shutdown(Shutdown::Both);
    let _ = upstream.join();
}
