//! A Docker token-protocol issuer for a real `docker-registry` configured with
//! `auth: token`.
//!
//! The issuer owns an ECDSA P-256 key and a self-signed certificate for it (made with the
//! `openssl` CLI). Tokens are ES256 JWTs whose header carries the certificate as its only
//! `x5c` element; the registry trusts it because the same certificate is its
//! `rootcertbundle`.

use crate::http::{header, mk_header, parse_basic, parse_form};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `service` (token audience) the registry is configured with.
pub(crate) const SERVICE: &str = "kiln-test";
/// The `issuer` the registry is configured to trust.
pub(crate) const ISSUER: &str = "kiln-test-issuer";
/// Lifetime of an issued token, in seconds.
const EXPIRES_IN: u64 = 300;

/// What the issuer shares between its thread and the test.
struct State {
    user: String,
    password: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The certificate, base64 DER, as the JWT `x5c` element.
    cert_b64: String,
    /// Refresh token → user it was issued to.
    refresh_tokens: HashMap<String, String>,
    /// One line per token request, see [`TokenIssuer::requests`].
    log: Vec<String>,
}

/// A running token issuer: an HTTP server on 127.0.0.1 in a background thread.
pub(crate) struct TokenIssuer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
    port: u16,
    cert_path: PathBuf,
}

impl TokenIssuer {
    /// Makes a key and certificate in `dir` and starts serving `/token` for one account.
    pub(crate) fn start(dir: &Path, user: &str, password: &str) -> TokenIssuer {
        crate::tools::require_tool("openssl");
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load generated P-256 key");
        let key_path = dir.join("token-key.pem");
        std::fs::write(&key_path, pem("PRIVATE KEY", pkcs8.as_ref())).expect("write key");
        let cert_path = dir.join("token-cert.pem");
        let out = Command::new("openssl")
            .args(["req", "-new", "-x509", "-days", "2", "-subj"])
            .arg(format!("/CN={ISSUER}"))
            .arg("-key")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .output()
            .expect("run openssl req");
        assert!(
            out.status.success(),
            "openssl req -x509 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cert_pem = std::fs::read_to_string(&cert_path).expect("read cert");
        let cert_b64: String = cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();

        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind token issuer"));
        let port = server
            .server_addr()
            .to_ip()
            .expect("issuer listens on IP")
            .port();
        let state = Arc::new(Mutex::new(State {
            user: user.to_string(),
            password: password.to_string(),
            key,
            rng,
            cert_b64,
            refresh_tokens: HashMap::new(),
            log: Vec::new(),
        }));
        let thread = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name("token-issuer".into())
                .spawn(move || {
                    for request in server.incoming_requests() {
                        handle(&state, request);
                    }
                })
                .expect("spawn issuer thread")
        };
        TokenIssuer {
            server,
            thread: Some(thread),
            state,
            port,
            cert_path,
        }
    }

    /// The realm URL to put in the registry config.
    pub(crate) fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate the registry should use as `rootcertbundle`.
    pub(crate) fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// One line per token request so far, in order:
    /// `"METHOD user=NAME scope=S1 scope=S2 -> RESULT"` where NAME is `anonymous` when
    /// no credentials were sent, scopes appear as requested (none if absent), and RESULT
    /// is `granted` or `401`.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.state.lock().expect("issuer state").log.clone()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Wraps DER bytes in PEM armor.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A process-unique string for `jti` and refresh tokens.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Splits `type:name:actions` (the name may itself contain `:`).
fn parse_scope(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    Some(serde_json::json!({ "type": kind, "name": name, "actions": actions }))
}

impl State {
    /// Signs an ES256 JWT granting `scopes` to `user` (anonymous: no access at all).
    fn sign(&self, user: Option<&str>, scopes: &[String]) -> String {
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.cert_b64] });
        let access: Vec<serde_json::Value> = match user {
            Some(_) => scopes.iter().filter_map(|s| parse_scope(s)).collect(),
            None => Vec::new(),
        };
        let now = now();
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": user.unwrap_or(""),
            "aud": SERVICE,
            "exp": now + EXPIRES_IN,
            "nbf": now - 60,
            "iat": now,
            "jti": unique("jti"),
            "access": access,
        });
        let input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .expect("sign token");
        format!("{input}.{}", b64.encode(sig.as_ref()))
    }
}

fn respond(request: tiny_http::Request, status: u16, body: String, extra: &[(&str, &str)]) {
    let mut response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(mk_header("Content-Type", "application/json"));
    for (name, value) in extra {
        response.add_header(mk_header(name, value));
    }
    let _ = request.respond(response);
}

/// Serves one request to the issuer.
fn handle(state: &Mutex<State>, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    if path != "/token" {
        return respond(request, 404, r#"{"error":"not found"}"#.into(), &[]);
    }
    let mut state = state.lock().expect("issuer state");
    let params = if method == "POST" {
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        parse_form(&body)
    } else {
        parse_form(query)
    };
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        // OAuth2 allows several space-separated scopes in one parameter.
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();

    // Who is asking: Basic credentials (GET), a password grant or a refresh token (POST).
    // Ok(None) is anonymous, Err(()) is bad credentials.
    let who: Result<Option<String>, ()> = if method == "POST" {
        match param("grant_type").as_deref() {
            Some("password") => {
                let user = param("username").unwrap_or_default();
                let password = param("password").unwrap_or_default();
                if user == state.user && password == state.password {
                    Ok(Some(user))
                } else {
                    Err(())
                }
            }
            Some("refresh_token") => param("refresh_token")
                .and_then(|t| state.refresh_tokens.get(&t).cloned())
                .map(Some)
                .ok_or(()),
            _ => Err(()),
        }
    } else {
        match header(&request, "Authorization") {
            None => Ok(None),
            Some(value) => match parse_basic(&value) {
                Some((u, p)) if u == state.user && p == state.password => Ok(Some(u)),
                _ => Err(()),
            },
        }
    };

    let user_label = match &who {
        Ok(Some(u)) => u.clone(),
        Ok(None) => "anonymous".to_string(),
        Err(()) => param("username")
            .or_else(|| {
                header(&request, "Authorization")
                    .and_then(|v| parse_basic(&v))
                    .map(|(u, _)| u)
            })
            .unwrap_or_else(|| "?".to_string()),
    };
    let mut line = format!("{method} user={user_label}");
    for scope in &scopes {
        line.push_str(&format!(" scope={scope}"));
    }

    match who {
        Err(()) => {
            line.push_str(" -> 401");
            state.log.push(line);
            drop(state);
            respond(
                request,
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}"#.into(),
                &[("WWW-Authenticate", r#"Basic realm="kiln-test-issuer""#)],
            );
        }
        Ok(user) => {
            line.push_str(" -> granted");
            state.log.push(line);
            let token = state.sign(user.as_deref(), &scopes);
            let mut body = serde_json::json!({
                "token": token,
                "access_token": token,
                "expires_in": EXPIRES_IN,
            });
            // Docker asks for a refresh (identity) token with a password grant or with
            // `offline_token=true`; hand one out to authenticated users.
            let wants_refresh =
                method == "POST" || param("offline_token").as_deref() == Some("true");
            if let (Some(user), true) = (&user, wants_refresh) {
                let refresh = unique("refresh");
                state.refresh_tokens.insert(refresh.clone(), user.clone());
                body["refresh_token"] = serde_json::Value::String(refresh);
            }
            drop(state);
            respond(request, 200, body.to_string(), &[]);
        }
    }
}
