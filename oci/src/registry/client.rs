//! The client: options, endpoints (scheme, mirrors) and the one request
//! path every call goes through, which adds authentication, answers 401
//! challenges and retries transient failures with backoff.

use super::auth::{AuthCache, CredentialProvider, StaticCredentials};
use super::error::{error_detail, RegistryError, Result, TimeoutStage};
use super::operation::{doing, retry_after, short_url, Operation};
use super::TransferObserver;
use crate::reference::Reference;
use crate::store::{LocalStore, StoreError};
use crate::Digest;
use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;

/// How the client behaves; the defaults suit a shell or CI job.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) reached over plain HTTP. Loopback
    /// registries (`localhost`, `127.0.0.0/8`, `::1`) always are.
    pub insecure_registries: Vec<String>,
    /// Mirrors by registry host: `docker.io` → `["https://mirror.example"]`.
    /// Tried in order for pulls, before the registry itself.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Blobs transferred at once, per pull or push.
    pub max_concurrent_transfers: usize,
    /// Retries after connection errors, timeouts, 5xx and 429: one budget
    /// for a whole pull or push (never per request), full again whenever a
    /// resumed download makes progress.
    pub retries: u32,
    /// Delay before the first retry; doubled each time, capped at 8 s.
    pub initial_backoff: Duration,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// How long a response may send no data (headers or body) before the
    /// request counts as failed.
    pub progress_timeout: Duration,
    /// How long a whole pull or push (or a manifest or config fetch) may
    /// take, retries and waits included; none by default.
    pub deadline: Option<Duration>,
    /// The longest `Retry-After` (on 429 and 503) that is honoured; longer
    /// asks wait this long.
    pub max_retry_after: Duration,
    /// Blobs up to this size are uploaded in one PUT; larger ones in PATCH
    /// chunks of this size.
    pub chunk_size: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_registries: Vec::new(),
            mirrors: BTreeMap::new(),
            max_concurrent_transfers: 4,
            retries: 5,
            initial_backoff: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(15),
            progress_timeout: Duration::from_secs(30),
            deadline: None,
            max_retry_after: Duration::from_secs(60),
            chunk_size: 32 << 20,
        }
    }
}

/// A registry endpoint: the host used for credentials and the base URL
/// requests go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The registry host as users name it (`docker.io`, `127.0.0.1:5000`).
    pub(crate) host: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub(crate) base: String,
    /// True for a mirror (a missing manifest there is not final).
    pub(crate) mirror: bool,
}

impl Endpoint {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}", self.base, path)
    }
}

/// A Distribution API v2 client. Cheap to clone; clones share the token
/// cache and connection pool.
#[derive(Clone)]
pub struct RegistryClient {
    pub(crate) inner: Arc<Inner>,
    /// The retry budget and deadline of the operation this clone serves;
    /// `None` on the client users hold (each request then has its own).
    pub(crate) op: Option<Arc<Operation>>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) options: RegistryOptions,
    pub(crate) credentials: Box<dyn CredentialProvider>,
    pub(crate) auth: AuthCache,
}

/// One request, kept as data so it can be sent again after a 401 or a
/// transient failure.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(HeaderName, String)>,
    pub(crate) body: Option<Body>,
}

/// A request body that can be produced again for each attempt: bytes in
/// memory (manifests), or a range of a file streamed from disk (blob
/// uploads, so memory stays flat whatever the chunk size).
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Bytes(Bytes),
    FileRange {
        path: PathBuf,
        offset: u64,
        len: u64,
        /// Told the bytes of the range read so far, as they are handed to
        /// the connection (upload progress).
        progress: Option<ReadProgress>,
    },
}

/// A callback with the number of bytes of a [`Body::FileRange`] read so
/// far.
#[derive(Clone)]
pub(crate) struct ReadProgress(pub(crate) Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for ReadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadProgress(..)")
    }
}

impl Body {
    async fn to_reqwest(&self) -> Result<reqwest::Body> {
        match self {
            Body::Bytes(b) => Ok(reqwest::Body::from(b.clone())),
            Body::FileRange {
                path,
                offset,
                len,
                progress,
            } => {
                let io = |action: &'static str| {
                    let path = path.clone();
                    move |source| {
                        RegistryError::Store(StoreError::Io {
                            action,
                            path,
                            source,
                        })
                    }
                };
                let mut file = tokio::fs::File::open(path).await.map_err(io("opening"))?;
                file.seek(std::io::SeekFrom::Start(*offset))
                    .await
                    .map_err(io("seeking"))?;
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file.take(*len), 256 * 1024);
                match progress.clone() {
                    Some(ReadProgress(report)) => {
                        use futures_util::TryStreamExt;
                        let mut read = 0u64;
                        Ok(reqwest::Body::wrap_stream(stream.inspect_ok(
                            move |chunk: &Bytes| {
                                read += chunk.len() as u64;
                                report(read);
                            },
                        )))
                    }
                    None => Ok(reqwest::Body::wrap_stream(stream)),
                }
            }
        }
    }
}

impl Request {
    pub(crate) fn new(method: Method, url: String) -> Request {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: Body) -> Request {
        self.body = Some(body);
        self
    }
}

impl RegistryClient {
    /// A client with these options and credentials.
    ///
    /// # Errors
    /// The HTTP client cannot be built (TLS backend initialisation).
    pub fn new(
        options: RegistryOptions,
        credentials: Box<dyn CredentialProvider>,
    ) -> Result<RegistryClient> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.progress_timeout)
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|error| RegistryError::Http {
                method: "INIT".into(),
                url: String::new(),
                error,
            })?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                options,
                credentials,
                auth: AuthCache::default(),
            }),
            op: None,
        })
    }

    /// An anonymous client with default options.
    ///
    /// # Errors
    /// As [`RegistryClient::new`].
    pub fn anonymous() -> Result<RegistryClient> {
        RegistryClient::new(
            RegistryOptions::default(),
            Box::new(StaticCredentials::none()),
        )
    }

    /// The options in use.
    pub fn options(&self) -> &RegistryOptions {
        &self.inner.options
    }

    /// True when `host` is reached over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        is_loopback_host(host)
            || self
                .inner
                .options
                .insecure_registries
                .iter()
                .any(|h| h == host)
    }

    /// The endpoint of a registry host itself (no mirrors).
    pub(crate) fn endpoint(&self, host: &str) -> Endpoint {
        let api_host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let scheme = if self.is_insecure(host) {
            "http"
        } else {
            "https"
        };
        Endpoint {
            host: host.to_string(),
            base: format!("{scheme}://{api_host}"),
            mirror: false,
        }
    }

    /// The endpoints to pull `reference` from: its mirrors, then the
    /// registry itself.
    pub(crate) fn pull_endpoints(&self, reference: &Reference) -> Vec<Endpoint> {
        let host = reference.registry_host();
        let mut out: Vec<Endpoint> = self
            .inner
            .options
            .mirrors
            .get(reference.domain())
            .into_iter()
            .flatten()
            .map(|m| {
                let m = m.trim_end_matches('/');
                let (base, mhost) = match m.split_once("://") {
                    Some((_, rest)) => (m.to_string(), rest.to_string()),
                    None => {
                        let scheme = if self.is_insecure(m) { "http" } else { "https" };
                        (format!("{scheme}://{m}"), m.to_string())
                    }
                };
                Endpoint {
                    host: mhost,
                    base,
                    mirror: true,
                }
            })
            .collect();
        out.push(self.endpoint(host));
        out
    }

    /// A clone of this client for one operation (a pull, a push, a
    /// fetch): its requests share one retry budget and the deadline. A
    /// clone that already serves an operation is returned as is, so
    /// operations never nest budgets.
    pub(crate) fn operation(&self) -> RegistryClient {
        if self.op.is_some() {
            return self.clone();
        }
        let options = &self.inner.options;
        RegistryClient {
            inner: self.inner.clone(),
            op: Some(Arc::new(Operation::new(options.retries, options.deadline))),
        }
    }

    /// Runs `work` (which uses `self`, an operation clone) within the
    /// operation's deadline; `name` says what it was in the error.
    pub(crate) async fn within<T>(
        &self,
        name: &str,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match &self.op {
            Some(op) => op.within(name, work).await,
            None => work.await,
        }
    }

    /// Awaits `work` until the operation's deadline, if any; `doing` says
    /// what it was in the error.
    pub(crate) async fn bounded<F: std::future::Future>(
        &self,
        doing: impl FnOnce() -> String,
        work: F,
    ) -> Result<F::Output> {
        match &self.op {
            Some(op) => op.bounded(doing, work).await,
            None => Ok(work.await),
        }
    }

    /// The operation's budget (a fresh one for a client that serves none).
    pub(crate) fn budget(&self) -> Arc<Operation> {
        match &self.op {
            Some(op) => op.clone(),
            None => Arc::new(Operation::new(self.inner.options.retries, None)),
        }
    }

    /// Sends a request: adds a cached `Authorization`, answers one 401
    /// challenge, and retries connection errors, timeouts, 5xx and 429
    /// when `retry` is set, drawing on the operation's budget and waiting
    /// as `Retry-After` asks (capped) or with backoff. Returns the final
    /// response whatever its status (except a second 401, which becomes
    /// [`RegistryError::Unauthorized`]).
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
        request: &Request,
        retry: bool,
    ) -> Result<Response> {
        let inner = &self.inner;
        let budget = self.budget();
        let mut backoffs = 0u32;
        let mut answered = false;
        let mut auth = inner
            .auth
            .header(
                &inner.http,
                &endpoint.host,
                scopes,
                inner.credentials.as_ref(),
            )
            .await?;
        loop {
            let mut headers = HeaderMap::new();
            for (name, value) in &request.headers {
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.append(name.clone(), v);
                }
            }
            if let Some(a) = &auth {
                if let Ok(v) = HeaderValue::from_str(a) {
                    headers.insert(AUTHORIZATION, v);
                }
            }
            let mut builder = inner
                .http
                .request(request.method.clone(), &request.url)
                .headers(headers);
            if let Some(body) = &request.body {
                builder = builder.body(body.to_reqwest().await?);
            }
            let what = || doing(request.method.as_str(), &request.url);
            let result = self.bounded(what, builder.send()).await?;
            let (retryable, asked) = match &result {
                Ok(r) => {
                    let status = r.status();
                    let asked = if status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE
                    {
                        retry_after(
                            r.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
                            inner.options.max_retry_after,
                        )
                    } else {
                        None
                    };
                    (
                        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
                        asked,
                    )
                }
                // A refused certificate stays refused, a name that does
                // not exist stays missing.
                Err(e) => (
                    !e.is_builder() && !e.is_redirect() && !super::error::is_permanent(e),
                    None,
                ),
            };
            if retry && retryable {
                let wait = asked.unwrap_or_else(|| self.backoff(backoffs));
                if budget.would_pass_deadline(wait) {
                    budget.take_retry();
                    let status = result.as_ref().map(|r| r.status().as_u16()).ok();
                    let mut told = what();
                    if let (Some(asked), Some(status)) = (asked, status) {
                        told.push_str(&format!(
                            "; {} answered {status} and asked to retry in {} s",
                            endpoint.host,
                            asked.as_secs()
                        ));
                    }
                    return Err(budget.expired(told));
                }
                if budget.take_retry() {
                    if asked.is_none() {
                        backoffs += 1;
                    }
                    self.bounded(what, tokio::time::sleep(wait)).await?;
                    continue;
                }
            }
            let response = result.map_err(|source| {
                self.transport_error(endpoint, request, source, budget.attempts())
            })?;
            if response.status() == StatusCode::UNAUTHORIZED {
                if answered {
                    return Err(inner
                        .auth
                        .refused(&endpoint.host, inner.credentials.as_ref()));
                }
                answered = true;
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                auth = Some(
                    inner
                        .auth
                        .answer(
                            &inner.http,
                            &endpoint.host,
                            challenge.as_deref(),
                            scopes,
                            inner.credentials.as_ref(),
                        )
                        .await?,
                );
                continue;
            }
            return Ok(response);
        }
    }

    /// The error for a request that failed in transport, after the
    /// operation's retries: a timeout names the host, what was slow and
    /// the attempts; anything else keeps reqwest's cause (without its copy
    /// of the URL).
    pub(crate) fn transport_error(
        &self,
        endpoint: &Endpoint,
        request: &Request,
        source: reqwest::Error,
        attempts: u32,
    ) -> RegistryError {
        let options = &self.inner.options;
        let host = reqwest::Url::parse(&request.url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
            })
            .unwrap_or_else(|| endpoint.host.clone());
        let method = request.method.as_str();
        if source.is_timeout() {
            let (stage, limit) = if source.is_connect() {
                (TimeoutStage::Connect, options.connect_timeout)
            } else {
                (TimeoutStage::Progress, options.progress_timeout)
            };
            return RegistryError::Timeout {
                stage,
                host,
                seconds: limit.as_secs_f64(),
                doing: doing(method, &request.url),
                attempts,
            };
        }
        RegistryError::Http {
            method: method.to_string(),
            url: short_url(&request.url),
            error: source.without_url(),
        }
    }

    /// Checks that `host` answers the v2 API and accepts the client's
    /// credentials for it, as `docker login` does.
    ///
    /// # Errors
    /// [`RegistryError::Unauthorized`] when the credentials are refused,
    /// or transport errors.
    pub async fn ping(&self, host: &str) -> Result<()> {
        let endpoint = self.endpoint(host);
        let request = Request::new(Method::GET, endpoint.url(""));
        let response = self
            .operation()
            .send(&endpoint, &[], &request, true)
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(&request, response).await)
        }
    }

    /// The shared state of one pull's or push's blob transfers.
    pub(crate) fn transfer(
        &self,
        endpoint: &Endpoint,
        repo: &str,
        store: &LocalStore,
        observer: Arc<dyn TransferObserver>,
    ) -> Transfer {
        Transfer {
            client: self.clone(),
            endpoint: endpoint.clone(),
            repo: repo.to_string(),
            store: store.clone(),
            observer,
        }
    }

    /// The delay before retry number `attempt` (0-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let base = self.inner.options.initial_backoff;
        base.saturating_mul(1 << attempt.min(6))
            .min(Duration::from_secs(8))
    }

    /// Turns an unexpected response into an error carrying the registry's
    /// own error message and the operation's failed attempts.
    pub(crate) async fn status_error(
        &self,
        request: &Request,
        response: Response,
    ) -> RegistryError {
        let attempts = self.op.as_ref().map_or(1, |op| op.attempts());
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        RegistryError::Status {
            method: request.method.to_string(),
            url: short_url(&request.url),
            status,
            detail: error_detail(&body),
            attempts,
        }
    }
}

/// What every blob transfer of one pull or push shares.
#[derive(Clone)]
pub(crate) struct Transfer {
    pub(crate) client: RegistryClient,
    pub(crate) endpoint: Endpoint,
    pub(crate) repo: String,
    pub(crate) store: LocalStore,
    pub(crate) observer: Arc<dyn TransferObserver>,
}

impl Transfer {
    /// Runs `work` for each blob, at most
    /// [`RegistryOptions::max_concurrent_transfers`] at once, and collects
    /// the results (the first error aborts the rest).
    pub(crate) async fn for_each_blob<T, F, Fut>(
        &self,
        blobs: Vec<(Digest, u64)>,
        what: &str,
        work: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(Transfer, Digest, u64) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let permits = Arc::new(Semaphore::new(
            self.client.options().max_concurrent_transfers.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for (digest, size) in blobs {
            let permits = permits.clone();
            let job = work(self.clone(), digest, size);
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                job.await
            });
        }
        join_transfers(tasks, &self.endpoint, what).await
    }

    /// `host/repository`, as recorded in the store's blob sources.
    pub(crate) fn location(&self) -> String {
        format!("{}/{}", self.endpoint.host, self.repo)
    }
}

/// Waits for every transfer task; on the first failure aborts the rest and
/// returns that error. `what` names the tasks in a panic report.
async fn join_transfers<T: 'static>(
    mut tasks: tokio::task::JoinSet<Result<T>>,
    endpoint: &Endpoint,
    what: &str,
) -> Result<Vec<T>> {
    let mut done = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(value)) => done.push(value),
            Ok(Err(e)) => {
                if first_error.is_none() {
                    first_error = Some(e);
                    tasks.abort_all();
                }
            }
            Err(join) if join.is_cancelled() => {}
            Err(join) => {
                first_error.get_or_insert(RegistryError::Protocol {
                    url: endpoint.base.clone(),
                    message: format!("{what} task failed: {join}"),
                });
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// True for `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The scope to pull from a repository.
pub(crate) fn pull_scope(repository: &str) -> Vec<String> {
    vec![super::challenge::scope_for(repository, &["pull"])]
}

/// The scope to push to a repository.
pub(crate) fn push_scope(repository: &str) -> Vec<String> {
    vec![super::challenge::scope_for(repository, &["pull", "push"])]
}
