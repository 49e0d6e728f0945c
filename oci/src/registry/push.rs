//! Pushing: every blob first (skipped when the registry has it, mounted
//! from another repository of the same registry when kiln knows one that
//! has it, else uploaded in one PUT or in PATCH chunks), then child
//! manifests, then the tagged manifest, so a tag never points at content
//! the registry lacks.

use super::challenge::scope_for;
use super::client::{push_scope, Body, Endpoint, ReadProgress, RegistryClient, Request, Transfer};
use super::error::{RegistryError, Result};
use super::{BlobOutcome, TransferObserver};
use crate::image::{descriptor_digest, read_manifest, Manifest};
use crate::reference::Reference;
use crate::store::{BlobReader, LocalStore, StoreError};
use crate::Digest;
use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use std::sync::Arc;

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The digest the tag now points at.
    pub digest: Digest,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blobs the registry already had.
    pub existing: usize,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// A manifest to push, with what it needs.
struct ManifestPlan {
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
}

impl RegistryClient {
    /// Pushes the image or index stored under `digest` to `target`
    /// (`host/repo:tag`).
    ///
    /// # Errors
    /// A blob or child manifest missing from the store (named), transport,
    /// auth or registry errors. The tag is written only after everything
    /// it references was accepted.
    pub async fn push(
        &self,
        store: &LocalStore,
        digest: &Digest,
        target: &Reference,
        observer: Arc<dyn TransferObserver>,
    ) -> Result<PushReport> {
        let this = self.operation();
        this.within(
            &format!("pushing {target}"),
            this.push_within(store, digest, target, observer),
        )
        .await
    }

    async fn push_within(
        &self,
        store: &LocalStore,
        digest: &Digest,
        target: &Reference,
        observer: Arc<dyn TransferObserver>,
    ) -> Result<PushReport> {
        // Held so a concurrent `kiln prune` cannot delete what is being
        // pushed (a re-labelled manifest has no name of its own).
        let _lease = store.lease()?;
        let endpoint = self.endpoint(target.registry_host());
        let repo = target.repository().to_string();
        let (top, _) = read_manifest(store, digest)?;
        let mut manifests = Vec::new();
        let mut blobs: Vec<(Digest, u64)> = Vec::new();
        match &top {
            Manifest::Image(_) => collect(store, digest, &mut manifests, &mut blobs)?,
            Manifest::Index(index) => {
                for desc in index.manifests() {
                    let child = descriptor_digest(desc, digest.as_str())?;
                    if !store.exists(&child) {
                        let platform = desc
                            .platform()
                            .as_ref()
                            .map(|p| crate::Platform::from_oci(p).to_string())
                            .unwrap_or_else(|| "unknown platform".into());
                        return Err(StoreError::NotFound(child).into()).map_err(|e: RegistryError| {
                            RegistryError::Protocol {
                                url: target.to_string(),
                                message: format!("{e}: index {digest} lists a manifest for {platform} that was not pulled; push one platform's manifest instead"),
                            }
                        });
                    }
                    collect(store, &child, &mut manifests, &mut blobs)?;
                }
                let bytes = store.read(digest)?;
                manifests.push(ManifestPlan {
                    digest: digest.clone(),
                    media_type: top.media_type(),
                    bytes,
                });
            }
        }
        blobs.sort();
        blobs.dedup();

        let transfer = self.transfer(&endpoint, &repo, store, observer);
        let outcomes = transfer
            .for_each_blob(blobs, "upload", |t, blob, size| async move {
                let outcome = t.push_blob(&blob, size).await?;
                t.store.add_source(&blob, &t.location())?;
                t.observer.blob_finished(&blob, size, outcome);
                Ok((outcome, size))
            })
            .await?;
        let mut report = PushReport {
            digest: digest.clone(),
            uploaded: 0,
            mounted: 0,
            existing: 0,
            bytes: 0,
        };
        for (outcome, size) in outcomes {
            match outcome {
                BlobOutcome::Uploaded => {
                    report.uploaded += 1;
                    report.bytes += size;
                }
                BlobOutcome::Mounted => report.mounted += 1,
                _ => report.existing += 1,
            }
        }
        let tag = target.tag().unwrap_or("latest").to_string();
        let count = manifests.len();
        for (i, m) in manifests.iter().enumerate() {
            let last = i + 1 == count;
            let reference = if last && target.digest().is_none() {
                tag.clone()
            } else {
                m.digest.to_string()
            };
            self.put_manifest(&endpoint, &repo, &reference, m).await?;
        }
        Ok(report)
    }

    async fn put_manifest(
        &self,
        endpoint: &Endpoint,
        repo: &str,
        reference: &str,
        m: &ManifestPlan,
    ) -> Result<()> {
        let request = Request::new(
            Method::PUT,
            endpoint.url(&format!("{repo}/manifests/{reference}")),
        )
        .header(CONTENT_TYPE, m.media_type.clone())
        .body(Body::Bytes(Bytes::from(m.bytes.clone())));
        let response = self
            .send(endpoint, &push_scope(repo), &request, true)
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(&request, response).await);
        }
        if let Some(d) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != m.digest.as_str() {
                return Err(RegistryError::Protocol {
                    url: request.url,
                    message: format!(
                        "the registry stored the manifest as {d}, kiln sent {}",
                        m.digest
                    ),
                });
            }
        }
        Ok(())
    }

    /// The absolute upload URL from a response's `Location` header.
    fn upload_location(
        &self,
        endpoint: &Endpoint,
        request: &Request,
        response: &reqwest::Response,
    ) -> Result<String> {
        let value = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                url: request.url.clone(),
                message: "upload response has no Location header".into(),
            })?;
        let base = reqwest::Url::parse(&endpoint.base).map_err(|e| RegistryError::Protocol {
            url: endpoint.base.clone(),
            message: e.to_string(),
        })?;
        base.join(value)
            .map(|u| u.to_string())
            .map_err(|e| RegistryError::Protocol {
                url: request.url.clone(),
                message: format!("bad Location {value:?}: {e}"),
            })
    }
}

impl Transfer {
    /// Makes one blob present in `repo`, retrying the whole upload after
    /// transient failures (an upload session does not survive a registry
    /// restart). These retries draw on the same budget as the requests
    /// inside, so they never multiply.
    async fn push_blob(&self, digest: &Digest, size: u64) -> Result<BlobOutcome> {
        let client = &self.client;
        let budget = client.budget();
        let mut attempt = 0;
        loop {
            match self.push_blob_once(digest, size).await {
                Err(e) if is_transient(&e) => {
                    let wait = client.backoff(attempt);
                    if budget.would_pass_deadline(wait) || !budget.take_retry() {
                        return Err(e);
                    }
                    client
                        .bounded(|| format!("uploading {digest}"), tokio::time::sleep(wait))
                        .await?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn push_blob_once(&self, digest: &Digest, size: u64) -> Result<BlobOutcome> {
        let (client, endpoint, repo, store) = (
            &self.client,
            &self.endpoint,
            self.repo.as_str(),
            &self.store,
        );
        let observer = self.observer.as_ref();
        let scopes = push_scope(repo);
        let head = Request::new(
            Method::HEAD,
            endpoint.url(&format!("{repo}/blobs/{digest}")),
        );
        let response = client.send(endpoint, &scopes, &head, true).await?;
        if response.status().is_success() {
            return Ok(BlobOutcome::Exists);
        }
        // Cross-repository mount from a repository of this registry known
        // to hold the blob.
        let prefix = format!("{}/", endpoint.host);
        let mount_from = store
            .sources(digest)?
            .into_iter()
            .filter_map(|s| s.strip_prefix(&prefix).map(str::to_string))
            .find(|r| r != repo);
        let mut location = None;
        if let Some(from) = mount_from {
            let mut scopes = scopes.clone();
            scopes.push(scope_for(&from, &["pull"]));
            let request = Request::new(
                Method::POST,
                endpoint.url(&format!("{repo}/blobs/uploads/?mount={digest}&from={from}")),
            )
            .header(CONTENT_LENGTH, "0");
            let response = client.send(endpoint, &scopes, &request, false).await?;
            match response.status() {
                StatusCode::CREATED => return Ok(BlobOutcome::Mounted),
                StatusCode::ACCEPTED => {
                    location = Some(client.upload_location(endpoint, &request, &response)?)
                }
                _ => {}
            }
        }
        let mut location = match location {
            Some(l) => l,
            None => {
                let request = Request::new(
                    Method::POST,
                    endpoint.url(&format!("{repo}/blobs/uploads/")),
                )
                .header(CONTENT_LENGTH, "0");
                let response = client.send(endpoint, &scopes, &request, false).await?;
                if response.status() != StatusCode::ACCEPTED {
                    return Err(client.status_error(&request, response).await);
                }
                client.upload_location(endpoint, &request, &response)?
            }
        };
        observer.blob_started(digest, size);
        // Every chunk but the last goes up in a PATCH; the last one (the
        // whole blob when it fits in a chunk) rides on the closing PUT.
        let chunk = client.options().chunk_size.max(1) as u64;
        let path = store.blob_path(digest);
        // Progress within each request, as the file is read out to it.
        let range = |offset: u64, len: u64| {
            let (observer, digest) = (self.observer.clone(), digest.clone());
            let report = move |read: u64| observer.blob_progress(&digest, offset + read, size);
            Body::FileRange {
                path: path.clone(),
                offset,
                len,
                progress: Some(ReadProgress(Arc::new(report))),
            }
        };
        let mut offset = 0;
        while size - offset > chunk {
            let request = Request::new(Method::PATCH, location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, format!("{offset}-{}", offset + chunk - 1))
                .header(CONTENT_LENGTH, chunk.to_string())
                .body(range(offset, chunk));
            let response = client.send(endpoint, &scopes, &request, false).await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(client.status_error(&request, response).await);
            }
            location = client.upload_location(endpoint, &request, &response)?;
            offset += chunk;
            observer.blob_progress(digest, offset, size);
        }
        let mut url = reqwest::Url::parse(&location).map_err(|e| RegistryError::Protocol {
            url: location.clone(),
            message: format!("bad upload location: {e}"),
        })?;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let rest = size - offset;
        let mut request = Request::new(Method::PUT, url.to_string())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, rest.to_string());
        if rest > 0 {
            if offset > 0 {
                request = request.header(CONTENT_RANGE, format!("{offset}-{}", size - 1));
            }
            request = request.body(range(offset, rest));
        }
        let response = client.send(endpoint, &scopes, &request, false).await?;
        if response.status() != StatusCode::CREATED {
            return Err(client.status_error(&request, response).await);
        }
        observer.blob_progress(digest, size, size);
        Ok(BlobOutcome::Uploaded)
    }
}

/// Adds a manifest's config and layers, then the manifest itself.
fn collect(
    store: &LocalStore,
    digest: &Digest,
    manifests: &mut Vec<ManifestPlan>,
    blobs: &mut Vec<(Digest, u64)>,
) -> Result<()> {
    let (manifest, _) = read_manifest(store, digest)?;
    for child in manifest.children() {
        let d = descriptor_digest(child, digest.as_str())?;
        if !store.exists(&d) {
            return Err(StoreError::NotFound(d).into());
        }
        blobs.push((d, child.size()));
    }
    manifests.push(ManifestPlan {
        digest: digest.clone(),
        media_type: manifest.media_type(),
        bytes: store.read(digest)?,
    });
    Ok(())
}

fn is_transient(e: &RegistryError) -> bool {
    match e {
        RegistryError::Http { .. } | RegistryError::Timeout { .. } => true,
        RegistryError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 404,
        _ => false,
    }
}
