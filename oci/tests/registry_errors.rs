//! Why a request failed, in one line ([`kiln_oci::transport_cause`] and
//! [`RegistryError`]'s text), against real servers on 127.0.0.1: a port
//! nothing listens on, a TLS server with a self-signed certificate
//! (`openssl s_server`), a plain-HTTP server asked for TLS, and a name
//! that cannot resolve (`kiln.invalid`, no network needed).

use kiln_test_support as support;

use kiln_oci::{
    transport_cause, LocalStore, NoProgress, Platform, Reference, RegistryClient, RegistryError,
    RegistryOptions, StaticCredentials,
};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that nothing listens on.
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// `openssl s_server` on 127.0.0.1 with a fresh self-signed certificate;
/// killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        support::require_tool("openssl");
        let dir = tempfile::tempdir().expect("temp dir");
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::piped())
            .output()
            .expect("openssl req runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = refused_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server runs");
        let server = TlsServer {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "s_server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP server (one canned answer per connection).
fn plain_http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(8) {
            let Ok(mut conn) = conn else { continue };
            use std::io::{Read, Write};
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    port
}

/// The cause of a GET of `url` failing, as the registry client words it.
fn cause_of(url: &str) -> String {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let error = rt
        .block_on(
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("client")
                .get(url)
                .send(),
        )
        .expect_err("the request fails");
    transport_cause(&error.without_url(), url)
}

#[test]
fn each_transport_failure_has_its_own_line() {
    let tls = TlsServer::start();
    let refused = refused_port();
    let plain = plain_http_server();
    let causes = [
        cause_of(&format!("https://127.0.0.1:{}/v2/", tls.port)),
        cause_of(&format!("http://127.0.0.1:{refused}/v2/")),
        cause_of(&format!("https://127.0.0.1:{plain}/v2/")),
        cause_of("https://kiln.invalid/v2/"),
    ];
    println!("{causes:#?}");
    assert_eq!(
        causes[0],
        format!(
            "TLS handshake with 127.0.0.1:{} failed: the certificate is not trusted \
             (self-signed, or its issuer is unknown)",
            tls.port
        )
    );
    assert_eq!(
        causes[1],
        format!("connection refused by 127.0.0.1:{refused}")
    );
    assert!(
        causes[2].starts_with(&format!(
            "TLS handshake with 127.0.0.1:{plain} failed: the server does not speak TLS"
        )),
        "{}",
        causes[2]
    );
    assert!(
        causes[3].starts_with("DNS lookup of kiln.invalid failed: "),
        "{}",
        causes[3]
    );
    for cause in &causes {
        assert!(!cause.contains('\n'), "{cause}");
    }
}

#[test]
fn a_pull_error_ends_with_the_cause_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    let options = RegistryOptions {
        retries: 1,
        initial_backoff: Duration::from_millis(10),
        ..RegistryOptions::default()
    };
    let client = RegistryClient::new(options, Box::new(StaticCredentials::none())).expect("client");
    let port = refused_port();
    let reference: Reference = format!("127.0.0.1:{port}/x:1").parse().expect("reference");
    let platform: Platform = "linux/amd64".parse().expect("platform");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt
        .block_on(client.pull(
            &reference,
            &platform,
            &store,
            std::sync::Arc::new(NoProgress),
        ))
        .expect_err("nothing listens");
    assert!(matches!(err, RegistryError::Http { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "GET http://127.0.0.1:{port}/v2/x/manifests/1: connection refused by 127.0.0.1:{port}"
        )
    );
    // The cause is in the text, not again in a source chain.
    assert!(std::error::Error::source(&err).is_none());
}

/// A TCP front on 127.0.0.1 that counts the connections it accepts and
/// pipes each to port `to`.
fn counting_front(to: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(client) = conn else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone(), server.try_clone()),
                (server.try_clone(), client.try_clone()),
            ]
            .into_iter()
            .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
            {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (port, count)
}

#[test]
fn a_refused_certificate_is_not_tried_again() {
    let tls = TlsServer::start();
    let (front, connections) = counting_front(tls.port);
    let registry = format!("127.0.0.1:{}", refused_port());
    // The TLS server is the registry's mirror (the one way to reach a
    // loopback address over https); the registry itself refuses.
    let options = RegistryOptions {
        retries: 3,
        initial_backoff: Duration::from_millis(10),
        mirrors: [(registry.clone(), vec![format!("https://127.0.0.1:{front}")])].into(),
        ..RegistryOptions::default()
    };
    let client = RegistryClient::new(options, Box::new(StaticCredentials::none())).expect("client");
    let reference: Reference = format!("{registry}/x:1").parse().expect("reference");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt
        .block_on(client.fetch_manifest(&reference))
        .expect_err("nothing serves it");
    assert!(
        err.to_string()
            .ends_with(&format!("connection refused by {registry}")),
        "{err}"
    );
    let tried = connections.load(std::sync::atomic::Ordering::SeqCst);
    println!("TLS connections to the mirror: {tried}");
    assert_eq!(tried, 1, "the mirror's certificate was tried again");
}
