//! Hostile CLI values and Dockerfiles, and ADD servers that stall, trickle
//! or lie (issue 13, findings 6, 7 and 10): every one ends in a one-line
//! error that names the flag or `FILE:LINE:COL`, never a panic or a hang.
//! The HTTP servers are std TcpListener threads on loopback; the download
//! deadlines are shortened with `KILN_ADD_TIMEOUTS` so a stall costs
//! seconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A store and a context directory for one test.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(dockerfile: &[u8]) -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).expect("context");
        std::fs::write(ctx.join("Dockerfile"), dockerfile).expect("Dockerfile");
        std::fs::write(ctx.join("f"), "f\n").expect("file");
        Sandbox { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn kiln(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .env("KILN_ROOT", self.path("store"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env_remove("KILN_CONFIG")
            .env_remove("KILN_RUNTIME")
            .envs(envs.iter().copied())
            .current_dir(self.dir.path())
            .output()
            .expect("kiln runs")
    }

    /// `kiln build ARGS ctx`, which must fail; its error line.
    fn build_fails(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let ctx = self.path("ctx");
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        all.push(s(&ctx));
        let out = self.kiln(&all, envs);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "kiln {all:?} succeeded:\n{stderr}");
        assert!(
            !stderr.contains("panicked"),
            "kiln {all:?} panicked:\n{stderr}"
        );
        error_line(&stderr)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The one error line of stderr (`kiln: ...` or clap's `error: ...`);
/// fails when there is none or more than one.
fn error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("kiln: ") || l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line in:\n{stderr}");
    lines[0].to_string()
}

#[test]
fn bad_flag_values_are_refused_naming_the_flag() {
    let sandbox = Sandbox::new(b"FROM scratch\nCOPY f /f\n");
    for (args, flag) in [
        (&["--build-arg", "=x"][..], "--build-arg"),
        (&["--build-arg", ""], "--build-arg"),
        (&["-o", ""], "--output"),
        (&["-o", ",,,"], "--output"),
        (&["-o", "type=oci,dest="], "--output"),
        (&["--jobs", "0"], "--jobs"),
        (&["--runtime", ""], "--runtime"),
        (&["--label", "=x"], "--label"),
        (&["--secret", "id=nosuchsecret"], "--secret"),
        (&["--secret", "id=x,src=/nonexistent"], "--secret"),
    ] {
        // --print would succeed with any value the parse lets through.
        let mut all = args.to_vec();
        all.extend(["--print", "json"]);
        let line = sandbox.build_fails(&all, &[]);
        assert!(line.contains(flag), "{args:?}: {line}");
    }
    let line = sandbox.build_fails(&["-o", "type=oci,dest="], &[]);
    assert_eq!(
        line,
        "kiln: invalid --output \"type=oci,dest=\": dest= is empty"
    );
    // An empty KILN_RUNTIME stays "not set".
    let out = sandbox.kiln(
        &["build", "--print", "json", s(&sandbox.path("ctx"))],
        &[("KILN_RUNTIME", "")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = sandbox.build_fails(&["--secret", "id=nosuchsecret"], &[]);
    assert!(
        line.contains("no variable nosuchsecret and no file nosuchsecret"),
        "{line}"
    );
}

#[test]
fn secrets_without_a_source_follow_buildx() {
    // The variable named by the id, else the file named by it.
    let sandbox = Sandbox::new(b"FROM scratch\nCOPY f /f\n");
    let ctx = sandbox.path("ctx");
    let ok = |args: &[&str], envs: &[(&str, &str)]| {
        let mut all = vec!["build", "--print", "json"];
        all.extend_from_slice(args);
        all.push(s(&ctx));
        let out = sandbox.kiln(&all, envs);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&["--secret", "id=TOKEN"], &[("TOKEN", "t")]);
    std::fs::write(sandbox.path("tokenfile"), "t").expect("secret file");
    ok(&["--secret", "id=tokenfile"], &[]);
}

#[test]
fn dockerfile_text_errors_have_a_position_and_a_hint() {
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("FROM scratch\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    for (bytes, want) in [
        (
            utf16,
            "kiln: Dockerfile:1:1: the file looks like UTF-16 (it starts with the UTF-16 byte-order mark FF FE): save it as UTF-8",
        ),
        (
            b"FROM scratch\nCOPY \xe9 /\n".to_vec(),
            "kiln: Dockerfile:2:6: invalid UTF-8 (byte 18): Dockerfiles must be UTF-8",
        ),
        (
            Vec::new(),
            "kiln: Dockerfile:1:1: the Dockerfile cannot be empty",
        ),
    ] {
        let sandbox = Sandbox::new(&bytes);
        assert_eq!(sandbox.build_fails(&[], &[]), want);
    }
    // `kiln parse` says the same.
    let sandbox = Sandbox::new(b"\xFE\xFF\0F");
    let out = sandbox.kiln(&["parse", "-f", s(&sandbox.path("ctx/Dockerfile"))], &[]);
    let line = error_line(&String::from_utf8_lossy(&out.stderr));
    assert!(line.ends_with(":1:1: the file looks like UTF-16 (it starts with the UTF-16 byte-order mark FE FF): save it as UTF-8"), "{line}");
}

#[test]
fn a_dockerfile_of_only_args_fails_cleanly_in_every_mode() {
    let sandbox = Sandbox::new(b"ARG A=1\n");
    for args in [&[][..], &["--check"], &["--print", "json"]] {
        assert_eq!(
            sandbox.build_fails(args, &[]),
            "kiln: Dockerfile:1:1: dockerfile contains no stages to build",
            "{args:?}"
        );
    }
}

#[test]
fn two_thousand_chained_stages_build() {
    let mut text = String::from("FROM scratch AS s0\nCOPY f /f\n");
    for i in 1..2000 {
        text.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
    }
    let sandbox = Sandbox::new(text.as_bytes());
    let out = sandbox.kiln(&["build", "--print", "json", s(&sandbox.path("ctx"))], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn build_errors_name_file_line_and_column() {
    for (text, want) in [
        // Lowering, at the flag.
        (
            "FROM scratch\n  COPY --chmod=abc f /\n",
            "kiln: Dockerfile:2:8: invalid --chmod=abc: \"abc\" is not a symbolic mode",
        ),
        // Lowering, at the instruction.
        (
            "FROM scratch\n\tEXPOSE nope\n",
            "kiln: Dockerfile:2:2: invalid port \"nope\"",
        ),
        // A step that fails while building.
        (
            "FROM scratch\n   COPY nothere /\n",
            "kiln: Dockerfile:2:4: ",
        ),
    ] {
        let sandbox = Sandbox::new(text.as_bytes());
        let line = sandbox.build_fails(&[], &[]);
        assert!(line.starts_with(want), "{text:?}: {line}");
    }
}

// ---- ADD <url> against servers that misbehave ----

/// What a test server does with each connection.
type Handler = fn(TcpStream);

/// A loopback HTTP server running `handler` on a thread per connection;
/// counts the connections.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Server {
    fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || handler(stream));
            }
        });
        Server { port, connections }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Reads the request head.
fn read_request(stream: &TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        head.push_str(&line);
        line.clear();
    }
    head
}

/// Holds the connection open without a word until the client goes (or a
/// minute passes, so a kiln without deadlines fails instead of hanging).
fn hold(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = [0u8; 1024];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

fn never_answers(stream: TcpStream) {
    read_request(&stream);
    hold(stream);
}

fn promises_5_gib_then_stalls(mut stream: TcpStream) {
    read_request(&stream);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5368709120\r\n\r\nabc");
    hold(stream);
}

fn trickles(mut stream: TcpStream) {
    read_request(&stream);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    for _ in 0..60 {
        if stream.write_all(b"x").is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// 200 KiB in 20 chunks, 100 ms apart: slow, but moving.
fn slow_but_steady(mut stream: TcpStream) {
    read_request(&stream);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 204800\r\n\r\n");
    for _ in 0..20 {
        if stream.write_all(&[b'y'; 10240]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn short_body(mut stream: TcpStream) {
    read_request(&stream);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345");
}

fn redirects_to_a_file(mut stream: TcpStream) {
    read_request(&stream);
    let _ = stream.write_all(
        b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n",
    );
}

/// Deadlines of a second or two, so each stall costs seconds.
const QUICK: (&str, &str) = (
    "KILN_ADD_TIMEOUTS",
    "connect=2,idle=2,window=2,min-bytes=1024",
);

fn add_fails(server: &Server, path: &str, envs: &[(&str, &str)]) -> String {
    let text = format!("FROM scratch\nADD {} /x\n", server.url(path));
    Sandbox::new(text.as_bytes()).build_fails(&[], envs)
}

#[test]
fn add_from_a_server_that_never_answers_times_out() {
    let server = Server::start(never_answers);
    let line = add_fails(&server, "/f", &[QUICK]);
    assert!(line.starts_with("kiln: Dockerfile:2:1: "), "{line}");
    assert!(
        line.ends_with(&format!(
            "https {}: no response within 4s",
            server.url("/f")
        )),
        "{line}"
    );
}

#[test]
fn add_of_a_huge_body_that_stalls_times_out() {
    let server = Server::start(promises_5_gib_then_stalls);
    let line = add_fails(&server, "/f", &[QUICK]);
    assert!(line.contains("no data for 2s (after 3 bytes)"), "{line}");
}

#[test]
fn add_from_a_trickling_server_is_too_slow() {
    let server = Server::start(trickles);
    let line = add_fails(&server, "/f", &[QUICK]);
    assert!(line.contains("too slow: "), "{line}");
    assert!(line.contains("at least 1024 needed"), "{line}");
}

#[test]
fn a_slow_but_moving_download_finishes() {
    let server = Server::start(slow_but_steady);
    let text = format!("FROM scratch\nADD {} /x\n", server.url("/big"));
    let sandbox = Sandbox::new(text.as_bytes());
    let dest = sandbox.path("out");
    let out = sandbox.kiln(
        &[
            "build",
            "-o",
            &format!("type=local,dest={}", s(&dest)),
            s(&sandbox.path("ctx")),
        ],
        // 10 KiB every 100 ms is well above 20 KiB per second.
        &[(
            "KILN_ADD_TIMEOUTS",
            "connect=2,idle=2,window=1,min-bytes=20480",
        )],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dest.join("x")).expect("x"),
        vec![b'y'; 204800]
    );
}

#[test]
fn add_of_a_body_shorter_than_its_length_fails() {
    let server = Server::start(short_body);
    let line = add_fails(&server, "/f", &[QUICK]);
    assert!(line.starts_with("kiln: Dockerfile:2:1: "), "{line}");
    assert!(
        line.contains("closed after 5 of 10 bytes")
            || line.contains("error decoding response body"),
        "{line}"
    );
}

#[test]
fn add_redirected_to_a_file_url_says_so() {
    let server = Server::start(redirects_to_a_file);
    let line = add_fails(&server, "/f", &[QUICK]);
    assert!(
        line.contains("redirected to file:///etc/passwd: only http and https URLs are followed"),
        "{line}"
    );
}

#[test]
fn bad_add_checksums_and_urls_fail_before_any_download() {
    let server = Server::start(never_answers);
    let text = format!(
        "FROM scratch\nADD --checksum=md5:d41d8cd98f00b204e9800998ecf8427e {} /x\n",
        server.url("/f")
    );
    let line = Sandbox::new(text.as_bytes()).build_fails(&[], &[]);
    assert_eq!(
        line,
        "kiln: Dockerfile:2:5: invalid --checksum=md5:d41d8cd98f00b204e9800998ecf8427e: unsupported algorithm \"md5\" (sha256:HEX or sha512:HEX)"
    );
    let text = format!(
        "FROM scratch\nADD --checksum=sha256:12 {} /x\n",
        server.url("/f")
    );
    let line = Sandbox::new(text.as_bytes()).build_fails(&[], &[]);
    assert!(
        line.starts_with("kiln: Dockerfile:2:5: invalid --checksum=sha256:12: "),
        "{line}"
    );
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        0,
        "nothing was downloaded"
    );
    let line = Sandbox::new(b"FROM scratch\nADD http://[::1/ok /x\n").build_fails(&[], &[]);
    assert_eq!(
        line,
        "kiln: Dockerfile:2:1: ADD invalid URL \"http://[::1/ok\": invalid IPv6 address"
    );
}

#[test]
fn add_checksums_are_verified() {
    fn serves_hello(mut stream: TcpStream) {
        read_request(&stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    }
    let server = Server::start(serves_hello);
    let sha512 = "sha512:9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043";
    let text = format!(
        "FROM scratch\nADD --checksum={sha512} {} /x\n",
        server.url("/hello")
    );
    let sandbox = Sandbox::new(text.as_bytes());
    let out = sandbox.kiln(&["build", s(&sandbox.path("ctx"))], &[QUICK]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    let text = format!(
        "FROM scratch\nADD --checksum={wrong} {} /x\n",
        server.url("/hello")
    );
    let line = Sandbox::new(text.as_bytes()).build_fails(&[], &[QUICK]);
    assert!(
        line.ends_with(&format!(
            "https {}: digest mismatch: expected {wrong}, got {}",
            server.url("/hello"),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        )),
        "{line}"
    );
}

#[test]
fn a_cause_is_printed_once() {
    // The store's I/O error prints its cause, which the chain held again.
    let sandbox = Sandbox::new(b"FROM scratch\n");
    let out = sandbox.kiln(&["load", "-i", "/nonexistent"], &[]);
    assert!(!out.status.success());
    let line = error_line(&String::from_utf8_lossy(&out.stderr));
    assert!(line.starts_with("kiln: "), "{line}");
    assert_eq!(line.matches("os error 2").count(), 1, "{line}");
}
