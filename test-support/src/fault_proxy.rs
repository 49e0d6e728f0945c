//! A fault-injecting HTTP proxy on 127.0.0.1 in front of a real registry:
//! requests pass through unchanged unless a [`Fault`] rule matches them,
//! in which case the proxy stalls, trickles, oversends, cuts, redirects or
//! answers a status of its own. Every request is logged, so tests can
//! count what a client tried.
//!
//! One request per connection: the proxy asks the registry to close after
//! each response and tells the client the same, so a rule sees every
//! request.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// What the proxy does to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Read the request and never answer (the connection stays open until
    /// the proxy is dropped).
    Stall,
    /// Forward the response head at once, then its body one byte every
    /// `every`.
    Trickle {
        /// The pause before each body byte.
        every: Duration,
    },
    /// Answer `code` with an empty body and a `Retry-After` header, if
    /// given; without contacting the registry.
    Status {
        /// The status code.
        code: u16,
        /// The `Retry-After` value to send.
        retry_after: Option<RetryAfter>,
    },
    /// Forward the response with `extra` bytes after its body. With
    /// `declare`, `Content-Length` counts them; without, the header is
    /// dropped and the body ends when the connection closes.
    Oversend {
        /// How many junk bytes follow the real body.
        extra: usize,
        /// Whether `Content-Length` announces them.
        declare: bool,
    },
    /// Forward the response head and this many body bytes, then close the
    /// connection.
    CutAfter(usize),
    /// Answer `307` pointing at the same path on the registry itself.
    Redirect,
    /// Read the request and close the connection without answering.
    Close,
}

/// A `Retry-After` value.
#[derive(Clone, Debug)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <HTTP date>`, this far in the future when sent.
    DateIn(Duration),
}

#[derive(Clone, Debug)]
struct Rule {
    method: Option<String>,
    path_contains: String,
    fault: Fault,
    /// How many more requests it applies to; `None` for all.
    left: Option<usize>,
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target (`/v2/repo/blobs/sha256:...`).
    pub path: String,
    /// When it arrived.
    pub at: Instant,
    /// The fault applied, if any (`Debug` form).
    pub fault: Option<String>,
}

struct Shared {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
}

/// The proxy; stops accepting and releases stalled connections on drop.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy on a free 127.0.0.1 port forwarding to `upstream`
    /// (`127.0.0.1:5000`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept = shared.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if accept.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = accept.clone();
                thread::spawn(move || {
                    let _ = serve(&shared, conn);
                });
            }
        });
        FaultProxy { port, shared }
    }

    /// `127.0.0.1:PORT`, as a registry host.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Applies `fault` to requests whose method is `method` (any when
    /// `None`) and whose path contains `path_contains`, for the next
    /// `times` of them (all when `None`). Earlier rules win.
    pub fn add(
        &self,
        method: Option<&str>,
        path_contains: &str,
        fault: Fault,
        times: Option<usize>,
    ) {
        lock(&self.shared.rules).push(Rule {
            method: method.map(str::to_string),
            path_contains: path_contains.to_string(),
            fault,
            left: times,
        });
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// How many requests had `method` (any when `None`) and a path
    /// containing `path_contains`.
    pub fn count(&self, method: Option<&str>, path_contains: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| method.is_none_or(|m| s.method == m) && s.path.contains(path_contains))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads up to the blank line ending an HTTP head; returns the head and
/// whatever was read past it.
fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The head with `name` removed (and `Connection: close` set).
fn rewrite(head: &str, drop: &[&str], add: &[String]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for (i, l) in head.trim_end_matches("\r\n").split("\r\n").enumerate() {
        let name = l.split(':').next().unwrap_or("").trim();
        if i > 0
            && (name.eq_ignore_ascii_case("connection")
                || drop.iter().any(|d| name.eq_ignore_ascii_case(d)))
        {
            continue;
        }
        lines.push(l.to_string());
    }
    lines.extend(add.iter().cloned());
    lines.push("Connection: close".into());
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// Reads the rest of a request body (by `Content-Length`, or to the end
/// of a chunked body).
fn read_body(stream: &mut TcpStream, head: &str, mut body: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut chunk = [0u8; 65536];
    if let Some(len) = header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if header(head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(body)
}

fn serve(shared: &Shared, mut client: TcpStream) -> std::io::Result<()> {
    let (head, rest) = read_head(&mut client)?;
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let body = read_body(&mut client, &head, rest)?;
    let fault = {
        let mut rules = lock(&shared.rules);
        let hit = rules.iter_mut().find(|r| {
            r.left != Some(0)
                && r.method.as_ref().is_none_or(|m| *m == method)
                && path.contains(&r.path_contains)
        });
        hit.map(|r| {
            if let Some(left) = &mut r.left {
                *left -= 1;
            }
            r.fault.clone()
        })
    };
    lock(&shared.seen).push(Seen {
        method: method.clone(),
        path: path.clone(),
        at: Instant::now(),
        fault: fault.as_ref().map(|f| format!("{f:?}")),
    });
    match &fault {
        Some(Fault::Close) => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Stall) => {
            while !shared.stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
        Some(Fault::Status { code, retry_after }) => {
            let mut extra = String::new();
            match retry_after {
                Some(RetryAfter::Seconds(s)) => extra = format!("Retry-After: {s}\r\n"),
                Some(RetryAfter::DateIn(d)) => {
                    let at = httpdate::fmt_http_date(SystemTime::now() + *d);
                    extra = format!("Retry-After: {at}\r\n");
                }
                None => {}
            }
            let answer = format!(
                "HTTP/1.1 {code} Fault\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n"
            );
            client.write_all(answer.as_bytes())?;
            return Ok(());
        }
        Some(Fault::Redirect) => {
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                shared.upstream
            );
            client.write_all(answer.as_bytes())?;
            return Ok(());
        }
        _ => {}
    }
    let mut upstream = TcpStream::connect(&shared.upstream)?;
    // The client's Host stays, so the registry's Location headers (upload
    // sessions) point back at the proxy.
    let request_head = rewrite(&head, &[], &[]);
    upstream.write_all(request_head.as_bytes())?;
    upstream.write_all(&body)?;
    let (response_head, mut rest) = read_head(&mut upstream)?;
    // Connection: close, so the body ends with the stream.
    upstream.read_to_end(&mut rest)?;
    let response_body = rest;
    match fault {
        Some(Fault::Trickle { every }) => {
            client.write_all(rewrite(&response_head, &[], &[]).as_bytes())?;
            for byte in response_body {
                thread::sleep(every);
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                client.write_all(&[byte])?;
            }
        }
        Some(Fault::Oversend { extra, declare }) => {
            let length = if declare {
                vec![format!("Content-Length: {}", response_body.len() + extra)]
            } else {
                Vec::new()
            };
            client.write_all(rewrite(&response_head, &["content-length"], &length).as_bytes())?;
            client.write_all(&response_body)?;
            client.write_all(&vec![b'x'; extra])?;
        }
        Some(Fault::CutAfter(n)) => {
            client.write_all(rewrite(&response_head, &[], &[]).as_bytes())?;
            client.write_all(&response_body[..n.min(response_body.len())])?;
        }
        _ => {
            client.write_all(rewrite(&response_head, &[], &[]).as_bytes())?;
            client.write_all(&response_body)?;
        }
    }
    client.flush()?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}
