//! Pulling: manifest resolution (index → platform), then config and layers
//! in parallel, each streamed into the store, resumed with `Range` after a
//! dropped connection, and verified against its digest before it becomes
//! visible. Nothing is read past the size a descriptor gives (manifests
//! and configs past their size limits are refused unread), and an image is
//! named only once its manifest and config make a valid image.

use super::client::{pull_scope, Endpoint, RegistryClient, Request, Transfer};
use super::error::{RegistryError, Result};
use super::{BlobOutcome, TransferObserver};
use crate::image::{
    check_size, descriptor_digest, select_platform, validate_image, Manifest, MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
};
use crate::media::MANIFEST_ACCEPT;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::{BlobIngester, BlobReader, LocalStore, StoreError};
use crate::Digest;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};
use std::io::Write;
use std::sync::Arc;

/// A manifest or index as the registry sent it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Its digest (of the bytes as received).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The bytes, unchanged.
    pub bytes: Vec<u8>,
    /// The parsed content.
    pub manifest: Manifest,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The digest the reference resolved to (an index or a manifest).
    pub digest: Digest,
    /// The manifest for the requested platform.
    pub manifest: Digest,
    /// Blobs downloaded.
    pub fetched: usize,
    /// Blobs already in the store.
    pub present: usize,
    /// Bytes downloaded.
    pub bytes: u64,
    /// The registry or mirror the content came from.
    pub source: String,
}

impl RegistryClient {
    /// Fetches the manifest or index `reference` names, trying mirrors
    /// first. Returns it with the endpoint that served it.
    ///
    /// # Errors
    /// [`RegistryError::ManifestUnknown`], a digest mismatch for a
    /// by-digest reference, or transport and auth errors.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest> {
        let this = self.operation();
        this.within(
            &format!("fetching the manifest of {reference}"),
            this.fetch_manifest_from(reference),
        )
        .await
        .map(|(m, _)| m)
    }

    pub(crate) async fn fetch_manifest_from(
        &self,
        reference: &Reference,
    ) -> Result<(FetchedManifest, Endpoint)> {
        let target = reference
            .digest()
            .map(str::to_string)
            .or_else(|| reference.tag().map(str::to_string))
            .unwrap_or_else(|| "latest".to_string());
        let endpoints = self.pull_endpoints(reference);
        let mut last_err = None;
        for endpoint in endpoints {
            match self
                .fetch_manifest_at(&endpoint, reference, &target, MAX_MANIFEST_SIZE)
                .await
            {
                Ok(m) => return Ok((m, endpoint)),
                Err(e) if endpoint.mirror => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or(RegistryError::ManifestUnknown {
            reference: reference.to_string(),
        }))
    }

    async fn fetch_manifest_at(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        target: &str,
        limit: u64,
    ) -> Result<FetchedManifest> {
        let repo = reference.repository();
        let request = Request::new(
            Method::GET,
            endpoint.url(&format!("{repo}/manifests/{target}")),
        )
        .header(ACCEPT, MANIFEST_ACCEPT);
        let response = self
            .send(endpoint, &pull_scope(repo), &request, true)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::ManifestUnknown {
                reference: reference.to_string(),
            });
        }
        if !response.status().is_success() {
            return Err(self.status_error(&request, response).await);
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let bytes = self
            .bounded_body(endpoint, &request, response, "manifest", target, limit)
            .await?;
        let digest = Digest::sha256(&bytes);
        let expected = reference
            .digest()
            .and_then(|d| d.parse::<Digest>().ok())
            .or(header_digest);
        if let Some(expected) = expected {
            if expected.algorithm() == "sha256" && expected != digest {
                return Err(RegistryError::DigestMismatch {
                    registry: endpoint.host.clone(),
                    expected,
                    actual: digest,
                });
            }
        }
        let manifest = Manifest::from_slice(&bytes, content_type.as_deref(), digest.as_str())?;
        let media_type = manifest.media_type();
        Ok(FetchedManifest {
            digest,
            media_type,
            bytes: bytes.to_vec(),
            manifest,
        })
    }

    /// Pulls `reference` for `platform` into `store` and names it there
    /// (`docker.io/library/busybox:latest`). An index is stored as is, with
    /// the blobs of the selected platform only.
    ///
    /// # Errors
    /// Transport, auth, digest or store errors; nothing is named unless
    /// every blob arrived and was verified.
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &LocalStore,
        observer: Arc<dyn TransferObserver>,
    ) -> Result<PullReport> {
        let this = self.operation();
        this.within(
            &format!("pulling {reference}"),
            this.pull_within(reference, platform, store, observer),
        )
        .await
    }

    async fn pull_within(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &LocalStore,
        observer: Arc<dyn TransferObserver>,
    ) -> Result<PullReport> {
        let _lease = store.lease()?;
        let PlatformManifest {
            endpoint,
            top,
            children,
            image,
            digest: manifest_digest,
        } = self.platform_manifest(reference, platform).await?;
        let repo = reference.repository().to_string();
        check_size(
            "config",
            image.config().digest().as_ref(),
            image.config().size(),
            MAX_CONFIG_SIZE,
        )?;
        let blobs: Vec<(Digest, u64)> = std::iter::once(image.config())
            .chain(image.layers())
            .map(|d| Ok((descriptor_digest(d, manifest_digest.as_str())?, d.size())))
            .collect::<Result<_>>()?;

        let mut present = 0;
        let mut seen = std::collections::BTreeSet::new();
        let mut missing = Vec::new();
        for (digest, size) in blobs {
            if !seen.insert(digest.clone()) {
                continue;
            }
            if store.exists(&digest) {
                present += 1;
                observer.blob_finished(&digest, size, BlobOutcome::Present);
            } else {
                missing.push((digest, size));
            }
        }
        let transfer = self.transfer(&endpoint, &repo, store, observer);
        let received = transfer
            .for_each_blob(missing, "download", |t, digest, size| async move {
                t.fetch_blob(&digest, size).await
            })
            .await?;
        let fetched = received.len();
        let bytes = received.iter().sum();
        validate_image(store, &manifest_digest, &image)?;
        // Manifests last, child before parent, so a stored index never
        // points at a manifest that is missing.
        for m in children.iter().rev().chain(std::iter::once(&top)) {
            store.write_blob(&m.bytes, Some(&m.digest))?;
            store.add_source(&m.digest, &format!("{}/{}", endpoint.host, repo))?;
        }
        store.set_ref(&reference.to_string(), &top.digest)?;
        Ok(PullReport {
            digest: top.digest,
            manifest: manifest_digest,
            fetched,
            present,
            bytes,
            source: endpoint.host,
        })
    }
}

/// Where a reference led for one platform.
struct PlatformManifest {
    /// The registry or mirror that served it.
    endpoint: Endpoint,
    /// What the reference names (an index or the image manifest).
    top: FetchedManifest,
    /// The manifests below `top`, parent first, down to the image manifest.
    children: Vec<FetchedManifest>,
    /// The image manifest for the platform.
    image: oci_spec::image::ImageManifest,
    /// Its digest.
    digest: Digest,
}

impl RegistryClient {
    /// Follows what `reference` names down to the image manifest for
    /// `platform`.
    async fn platform_manifest(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<PlatformManifest> {
        let (top, endpoint) = self.fetch_manifest_from(reference).await?;
        let mut children: Vec<FetchedManifest> = Vec::new();
        for _ in 0..5 {
            let current = children.last().unwrap_or(&top);
            let index = match &current.manifest {
                Manifest::Image(image) => {
                    let (image, digest) = (image.clone(), current.digest.clone());
                    return Ok(PlatformManifest {
                        endpoint,
                        top,
                        children,
                        image,
                        digest,
                    });
                }
                Manifest::Index(index) => index,
            };
            let desc = select_platform(index, platform, current.digest.as_str())?;
            let child_digest = descriptor_digest(desc, current.digest.as_str())?;
            check_size(
                "manifest",
                child_digest.as_str(),
                desc.size(),
                MAX_MANIFEST_SIZE,
            )?;
            let child_ref = Reference::parse(&format!("{}@{}", reference.name(), child_digest))
                .map_err(|e| RegistryError::Protocol {
                    url: endpoint.base.clone(),
                    message: e.to_string(),
                })?;
            let child = self
                .fetch_manifest_at(&endpoint, &child_ref, child_digest.as_str(), desc.size())
                .await?;
            if child.bytes.len() as u64 != desc.size() {
                return Err(crate::ImageError::SizeMismatch {
                    field: "manifests[].size".into(),
                    holder: current.digest.to_string(),
                    digest: child_digest.to_string(),
                    claimed: desc.size(),
                    actual: child.bytes.len() as u64,
                }
                .into());
            }
            children.push(child);
        }
        Err(RegistryError::Protocol {
            url: endpoint.base.clone(),
            message: format!("{} nests indexes too deeply", top.digest),
        })
    }

    /// The config of the image `reference` names, for `platform` (an
    /// index is resolved to that platform's manifest), without its layers
    /// and without touching a store: what a linter needs to know of a base
    /// image.
    ///
    /// # Errors
    /// As [`RegistryClient::fetch_manifest`], plus a config that does not
    /// match its digest or does not parse.
    pub async fn fetch_config(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<crate::ResolvedConfig> {
        let this = self.operation();
        this.within(
            &format!("fetching the config of {reference}"),
            this.fetch_config_within(reference, platform),
        )
        .await
    }

    async fn fetch_config_within(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<crate::ResolvedConfig> {
        let found = self.platform_manifest(reference, platform).await?;
        let endpoint = &found.endpoint;
        let digest = descriptor_digest(found.image.config(), found.digest.as_str())?;
        let bytes = self
            .blob_bytes(
                endpoint,
                reference.repository(),
                &digest,
                found.image.config().size(),
            )
            .await?;
        let config =
            crate::ImageConfig::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                url: endpoint.url(&format!("{}/blobs/{digest}", reference.repository())),
                message: format!("config {digest}: {e}"),
            })?;
        Ok(crate::ResolvedConfig {
            manifest: found.digest,
            config,
        })
    }
    /// The manifest `reference` names and the bytes of its config blob,
    /// verified: what an artifact such as an exported build cache is read
    /// from. An index is refused, unless it holds one image besides
    /// attestation manifests: then that image is read.
    ///
    /// # Errors
    /// As [`RegistryClient::fetch_manifest`], plus [`RegistryError::Protocol`]
    /// for an index, and a digest mismatch of the config.
    pub async fn fetch_artifact(
        &self,
        reference: &Reference,
    ) -> Result<(FetchedManifest, Vec<u8>)> {
        let this = self.operation();
        this.within(
            &format!("fetching {reference}"),
            this.fetch_artifact_within(reference),
        )
        .await
    }

    async fn fetch_artifact_within(
        &self,
        reference: &Reference,
    ) -> Result<(FetchedManifest, Vec<u8>)> {
        let (mut manifest, mut endpoint) = self.fetch_manifest_from(reference).await?;
        // An index of one image and its attestation manifests (buildx's
        // single-platform push with provenance) stands for that image.
        if let Manifest::Index(index) = &manifest.manifest {
            let images: Vec<_> = index
                .manifests()
                .iter()
                .filter(|d| !crate::image::is_attestation(d))
                .collect();
            if let [only] = images.as_slice() {
                let child = descriptor_digest(only, manifest.digest.as_str())?;
                if let Ok(by_digest) = Reference::parse(&format!("{}@{child}", reference.name())) {
                    (manifest, endpoint) = self.fetch_manifest_from(&by_digest).await?;
                }
            }
        }
        let Manifest::Image(image) = &manifest.manifest else {
            return Err(RegistryError::Protocol {
                url: endpoint.base.clone(),
                message: format!("{reference} is an index, not a single manifest"),
            });
        };
        let digest = descriptor_digest(image.config(), manifest.digest.as_str())?;
        let bytes = self
            .blob_bytes(
                &endpoint,
                reference.repository(),
                &digest,
                image.config().size(),
            )
            .await?;
        Ok((manifest, bytes))
    }

    /// Downloads one blob of `reference`'s repository into `store`
    /// (resumed after a dropped connection, verified before it becomes
    /// visible); nothing is fetched when the store has it.
    ///
    /// # Errors
    /// Transport, auth, digest or store errors.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        store: &LocalStore,
    ) -> Result<()> {
        if store.exists(digest) {
            return Ok(());
        }
        let this = self.operation();
        let endpoint = this.endpoint(reference.registry_host());
        let transfer = this.transfer(
            &endpoint,
            reference.repository(),
            store,
            Arc::new(super::NoProgress),
        );
        this.within(
            &format!("downloading {digest}"),
            transfer.fetch_blob(digest, size),
        )
        .await
        .map(|_| ())
    }

    /// A config blob's bytes (at most [`MAX_CONFIG_SIZE`], and `size` as
    /// its descriptor says), verified against its digest.
    async fn blob_bytes(
        &self,
        endpoint: &Endpoint,
        repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>> {
        check_size("config", digest.as_str(), size, MAX_CONFIG_SIZE)?;
        let request = Request::new(Method::GET, endpoint.url(&format!("{repo}/blobs/{digest}")));
        let response = self
            .send(endpoint, &pull_scope(repo), &request, true)
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(&request, response).await);
        }
        let bytes = self
            .bounded_body(
                endpoint,
                &request,
                response,
                "config",
                digest.as_str(),
                size,
            )
            .await?;
        if bytes.len() as u64 != size {
            return Err(crate::ImageError::SizeMismatch {
                field: "config.size".into(),
                holder: repo.to_string(),
                digest: digest.to_string(),
                claimed: size,
                actual: bytes.len() as u64,
            }
            .into());
        }
        let actual = Digest::sha256(&bytes);
        if digest.algorithm() == "sha256" && actual != *digest {
            return Err(RegistryError::DigestMismatch {
                registry: endpoint.host.clone(),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes.to_vec())
    }
}

impl Transfer {
    /// Downloads one blob into the store, resuming with `Range` after a
    /// dropped connection. Returns the bytes received.
    pub(crate) async fn fetch_blob(&self, digest: &Digest, size: u64) -> Result<u64> {
        let (client, endpoint, repo, store) = (
            &self.client,
            &self.endpoint,
            self.repo.as_str(),
            &self.store,
        );
        let observer = self.observer.as_ref();
        let url = endpoint.url(&format!("{repo}/blobs/{digest}"));
        let scopes = pull_scope(repo);
        let mut writer = store.writer()?;
        let mut received = 0u64;
        let budget = client.budget();
        let mut backoffs = 0u32;
        observer.blob_started(digest, size);
        'attempts: loop {
            let offset = writer.written();
            let mut request = Request::new(Method::GET, url.clone());
            if offset > 0 {
                request = request.header(RANGE, format!("bytes={offset}-"));
            }
            let mut response = client.send(endpoint, &scopes, &request, true).await?;
            match response.status() {
                StatusCode::PARTIAL_CONTENT if offset > 0 => {}
                s if s.is_success() => {
                    if offset > 0 {
                        // The server ignored the range: start over.
                        writer = store.writer()?;
                    }
                }
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::Status {
                        method: "GET".into(),
                        url,
                        status: 404,
                        detail: format!("blob {digest} is unknown to the registry"),
                        attempts: 1,
                    })
                }
                _ => return Err(client.status_error(&request, response).await),
            }
            let declared = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|d| d > size - writer.written()) {
                return Err(oversized(&url, digest, size));
            }
            loop {
                let next = client
                    .bounded(|| format!("downloading {digest}"), response.chunk())
                    .await?;
                match next {
                    Ok(Some(chunk)) => {
                        if writer.written() + chunk.len() as u64 > size {
                            return Err(oversized(&url, digest, size));
                        }
                        writer.write_all(&chunk).map_err(|e| {
                            RegistryError::Store(StoreError::Io {
                                action: "writing download",
                                path: digest.as_str().into(),
                                source: e,
                            })
                        })?;
                        received += chunk.len() as u64;
                        if !chunk.is_empty() {
                            // A resumed download moves on: the budget is
                            // for failures in a row, not for a blob's size.
                            budget.progress();
                        }
                        observer.blob_progress(digest, writer.written(), size);
                    }
                    Ok(None) => break 'attempts,
                    Err(source) => {
                        let wait = client.backoff(backoffs);
                        if budget.would_pass_deadline(wait) || !budget.take_retry() {
                            return Err(client.transport_error(
                                endpoint,
                                &request,
                                source,
                                budget.attempts(),
                            ));
                        }
                        client
                            .bounded(|| format!("downloading {digest}"), tokio::time::sleep(wait))
                            .await?;
                        backoffs += 1;
                        continue 'attempts;
                    }
                }
            }
        }
        match writer.commit(Some(digest), Some(size)) {
            Ok(_) => {}
            Err(StoreError::DigestMismatch { expected, actual }) => {
                return Err(RegistryError::DigestMismatch {
                    registry: endpoint.host.clone(),
                    expected,
                    actual,
                })
            }
            Err(StoreError::SizeMismatch { expected, actual, .. }) => {
                return Err(RegistryError::Protocol {
                    url,
                    message: format!("blob {digest} has {actual} bytes, its descriptor says {expected}; the download was discarded"),
                })
            }
            Err(e) => return Err(e.into()),
        }
        store.add_source(digest, &self.location())?;
        observer.blob_finished(digest, size, BlobOutcome::Fetched);
        Ok(received)
    }
}

/// The error for a blob body longer than its descriptor's size.
fn oversized(url: &str, digest: &Digest, size: u64) -> RegistryError {
    RegistryError::Protocol {
        url: url.to_string(),
        message: format!(
            "blob {digest} is larger than the {size} bytes its descriptor says; the download was discarded"
        ),
    }
}

impl RegistryClient {
    /// A response body of at most `limit` bytes: a larger `Content-Length`
    /// is refused before reading, and reading stops once the body passes
    /// `limit`.
    async fn bounded_body(
        &self,
        endpoint: &Endpoint,
        request: &Request,
        mut response: reqwest::Response,
        what: &'static str,
        name: &str,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(declared) = declared {
            check_size(what, name, declared, limit)?;
        }
        let mut body = Vec::new();
        loop {
            let next = self
                .bounded(|| format!("reading the {what} {name}"), response.chunk())
                .await?;
            match next {
                Ok(Some(chunk)) => {
                    check_size(what, name, (body.len() + chunk.len()) as u64, limit)?;
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(source) => {
                    let attempts = self.op.as_ref().map_or(1, |op| op.attempts());
                    return Err(self.transport_error(endpoint, request, source, attempts));
                }
            }
        }
    }
}
