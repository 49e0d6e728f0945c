//! Registry authentication: where credentials come from, and the
//! per-registry state learned from `WWW-Authenticate` challenges (basic
//! credentials, or bearer tokens cached per scope until they expire).

use super::challenge::{parse_challenges, Challenge};
use super::error::{RegistryError, Result};
use crate::credentials::{Credential, CredentialError, DockerConfig, Secret};
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the client finds credentials for a registry host.
pub trait CredentialProvider: Send + Sync {
    /// The credential for `registry_host` (`docker.io`, `127.0.0.1:5000`),
    /// or `None` to go anonymous.
    ///
    /// # Errors
    /// A credential store or helper that fails.
    fn credential_for(
        &self,
        registry_host: &str,
    ) -> std::result::Result<Option<Credential>, CredentialError>;
}

impl CredentialProvider for DockerConfig {
    fn credential_for(
        &self,
        registry_host: &str,
    ) -> std::result::Result<Option<Credential>, CredentialError> {
        DockerConfig::credential_for(self, registry_host)
    }
}

/// Fixed credentials by registry host (for `--creds`-style flags and tests).
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials {
    by_host: HashMap<String, Credential>,
}

impl StaticCredentials {
    /// No credentials at all: every registry is used anonymously.
    pub fn none() -> StaticCredentials {
        StaticCredentials::default()
    }

    /// Adds a username and password for a registry host.
    pub fn with(
        mut self,
        registry_host: &str,
        username: &str,
        password: &str,
    ) -> StaticCredentials {
        self.by_host.insert(
            registry_host.to_string(),
            Credential {
                username: username.to_string(),
                secret: Secret::Password(password.to_string()),
            },
        );
        self
    }
}

impl CredentialProvider for StaticCredentials {
    fn credential_for(
        &self,
        registry_host: &str,
    ) -> std::result::Result<Option<Credential>, CredentialError> {
        Ok(self.by_host.get(registry_host).cloned())
    }
}

/// How a registry wants to be authenticated, learned from its first
/// challenge.
#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// Authentication state shared by all requests of one client.
#[derive(Default)]
pub(crate) struct AuthCache {
    schemes: Mutex<HashMap<String, Scheme>>,
    tokens: Mutex<HashMap<String, Token>>,
}

impl AuthCache {
    /// The `Authorization` header to send to `host` for `scopes`, if the
    /// registry's scheme is already known: basic credentials, or a cached
    /// token, or a new token fetched from the realm learned earlier (which
    /// saves the 401 round trip for each new scope).
    pub(crate) async fn header(
        &self,
        http: &reqwest::Client,
        host: &str,
        scopes: &[String],
        creds: &dyn CredentialProvider,
    ) -> Result<Option<String>> {
        let scheme = lock(&self.schemes).get(host).cloned();
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(creds.credential_for(host)?.map(|c| basic_header(&c))),
            Some(Scheme::Bearer { realm, service }) => {
                let key = token_key(host, scopes);
                let cached = lock(&self.tokens)
                    .get(&key)
                    .filter(|t| t.expires > Instant::now())
                    .map(|t| format!("Bearer {}", t.value));
                if cached.is_some() {
                    return Ok(cached);
                }
                let credential = creds.credential_for(host)?;
                let realm = Realm {
                    url: &realm,
                    service: service.as_deref(),
                };
                self.bearer(http, host, &realm, scopes, credential.as_ref())
                    .await
                    .map(Some)
            }
        }
    }

    /// Fetches a token for `scopes`, caches it, and returns its header.
    async fn bearer(
        &self,
        http: &reqwest::Client,
        host: &str,
        realm: &Realm<'_>,
        scopes: &[String],
        credential: Option<&Credential>,
    ) -> Result<String> {
        let token = fetch_token(http, host, realm, scopes, credential).await?;
        let header = format!("Bearer {}", token.value);
        lock(&self.tokens).insert(token_key(host, scopes), token);
        Ok(header)
    }

    /// Answers a 401: records the registry's scheme and, for bearer auth,
    /// fetches a token for `scopes`. Returns the header to retry with.
    pub(crate) async fn answer(
        &self,
        http: &reqwest::Client,
        host: &str,
        challenge_header: Option<&str>,
        scopes: &[String],
        creds: &dyn CredentialProvider,
    ) -> Result<String> {
        let challenges = challenge_header.map(parse_challenges).unwrap_or_default();
        let credential = creds.credential_for(host)?;
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer { realm, service, .. } => Some((realm.clone(), service.clone())),
            Challenge::Basic { .. } => None,
        });
        if let Some((realm, service)) = bearer {
            lock(&self.schemes).insert(
                host.to_string(),
                Scheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            let realm = Realm {
                url: &realm,
                service: service.as_deref(),
            };
            return self
                .bearer(http, host, &realm, scopes, credential.as_ref())
                .await;
        }
        if challenges
            .iter()
            .any(|c| matches!(c, Challenge::Basic { .. }))
        {
            lock(&self.schemes).insert(host.to_string(), Scheme::Basic);
            return match credential {
                Some(c) => Ok(basic_header(&c)),
                None => Err(no_credentials(host)),
            };
        }
        Err(RegistryError::Unauthorized {
            registry: host.to_string(),
            message: "authentication required, and the registry sent no usable WWW-Authenticate challenge".into(),
        })
    }

    /// True when a retry with the header from [`AuthCache::answer`] was also
    /// refused: the credentials (or their absence) are the problem.
    pub(crate) fn refused(&self, host: &str, creds: &dyn CredentialProvider) -> RegistryError {
        match creds.credential_for(host) {
            Ok(Some(c)) => RegistryError::Unauthorized {
                registry: host.to_string(),
                message: format!(
                    "access denied for user {:?} (the credentials were refused or lack permission for this repository)",
                    c.username
                ),
            },
            _ => no_credentials(host),
        }
    }
}

fn no_credentials(host: &str) -> RegistryError {
    RegistryError::Unauthorized {
        registry: host.to_string(),
        message: format!("authentication required and no credentials were found for {host}; run `kiln login {host}`"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a plain map behind; using it is safe.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn token_key(host: &str, scopes: &[String]) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    format!("{host} {}", s.join(" "))
}

fn basic_header(c: &Credential) -> String {
    let secret = match &c.secret {
        Secret::Password(p) | Secret::IdentityToken(p) => p,
    };
    let raw = format!("{}:{}", c.username, secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Where tokens come from: the challenge's realm URL and service.
struct Realm<'a> {
    url: &'a str,
    service: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Asks the token server for a bearer token: GET with basic credentials
/// (or none), or the OAuth2 refresh-token POST when the credential is an
/// identity token.
async fn fetch_token(
    http: &reqwest::Client,
    host: &str,
    realm: &Realm<'_>,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<Token> {
    let (service, realm) = (realm.service, realm.url);
    let started = Instant::now();
    let request = match credential {
        Some(Credential {
            secret: Secret::IdentityToken(token),
            ..
        }) => {
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", "kiln"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            for s in scopes {
                form.push(("scope", s));
            }
            http.post(realm).form(&form)
        }
        _ => {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(s) = service {
                query.push(("service", s));
            }
            for s in scopes {
                query.push(("scope", s));
            }
            let mut req = http.get(realm).query(&query);
            if let Some(c) = credential {
                req = req.header(reqwest::header::AUTHORIZATION, basic_header(c));
            }
            req
        }
    };
    let response = request.send().await.map_err(|error| RegistryError::Http {
        method: "GET".into(),
        url: realm.to_string(),
        error,
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(match credential {
            Some(c) => RegistryError::Unauthorized {
                registry: host.to_string(),
                message: format!(
                    "the token server {realm} refused the credentials of user {:?}",
                    c.username
                ),
            },
            None => no_credentials(host),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|error| RegistryError::Http {
            method: "GET".into(),
            url: realm.to_string(),
            error,
        })?;
    if !status.is_success() {
        return Err(RegistryError::Status {
            method: "GET".into(),
            url: realm.to_string(),
            status: status.as_u16(),
            detail: super::error::error_detail(&body),
            attempts: 1,
        });
    }
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
            url: realm.to_string(),
            message: format!("token response is not valid JSON: {e}"),
        })?;
    let value = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| RegistryError::Protocol {
            url: realm.to_string(),
            message: "token response has neither `token` nor `access_token`".into(),
        })?;
    // Tokens live at least 60 s by the spec; renew a little early.
    let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(60));
    Ok(Token {
        value,
        expires: started + lifetime - Duration::from_secs(10),
    })
}
