//! Blob operations: HEAD/GET/DELETE `/v2/<name>/blobs/<digest>`, monolithic uploads (POST then PUT
//! `?digest=`), cross-repository mounts.
//!
//! Downloads are [`BlobStream`]s that hash while streaming and end with an error instead of `None` when
//! the content does not match its digest or size, so nothing unverified is ever reported as complete.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use sigil_oci::{Digest, Digester, Reference};
use url::Url;

use crate::auth::Scope;
use crate::client::{RegistryClient, Req, ReqBody, header_str};
use crate::error::ClientError;

/// A boxed stream of byte chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>;

/// A blob download that verifies size and digest while streaming. The final item is an error if the
/// content does not match.
pub struct BlobStream {
    inner: ByteStream,
    digester: Option<Digester>,
    expected: Digest,
    expected_size: Option<u64>,
    length: Option<u64>,
    received: u64,
    what: String,
    done: bool,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("expected", &self.expected)
            .field("expected_size", &self.expected_size)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    /// Wraps `inner`, checking it against `expected` (and `expected_size` if known). `length` is the
    /// announced length (`Content-Length`, file size), used for progress only. `what` names the content
    /// in errors.
    pub fn new(
        inner: ByteStream,
        expected: Digest,
        expected_size: Option<u64>,
        length: Option<u64>,
        what: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let digester = Digester::new(expected.algorithm())?;
        Ok(Self {
            inner,
            digester: Some(digester),
            expected,
            expected_size,
            length,
            received: 0,
            what: what.into(),
            done: false,
        })
    }

    /// The digest the content is checked against.
    pub fn digest(&self) -> &Digest {
        &self.expected
    }

    /// The expected size, else the announced length.
    pub fn size_hint_bytes(&self) -> Option<u64> {
        self.expected_size.or(self.length)
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next chunk (`None` at the verified end); a convenience over [`Stream`] for callers without
    /// `futures`.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, ClientError>> {
        self.next().await
    }

    /// Reads the whole (verified) blob into memory, failing beyond `limit` bytes.
    pub async fn collect_bytes(mut self, limit: u64) -> Result<Bytes, ClientError> {
        if self.size_hint_bytes().is_some_and(|n| n > limit) {
            return Err(ClientError::TooLarge {
                what: self.what.clone(),
                limit,
            });
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(ClientError::TooLarge {
                    what: self.what.clone(),
                    limit,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    fn finish(&mut self) -> Option<ClientError> {
        if let Some(size) = self.expected_size
            && size != self.received
        {
            return Some(ClientError::SizeMismatch {
                what: self.what.clone(),
                expected: size,
                actual: self.received,
            });
        }
        let actual = self.digester.take()?.finish();
        if actual != self.expected {
            return Some(ClientError::DigestMismatch {
                what: self.what.clone(),
                expected: self.expected.to_string(),
                actual: actual.to_string(),
            });
        }
        None
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                if let Some(size) = this.expected_size
                    && this.received > size
                {
                    this.done = true;
                    return Poll::Ready(Some(Err(ClientError::SizeMismatch {
                        what: this.what.clone(),
                        expected: size,
                        actual: this.received,
                    })));
                }
                if let Some(d) = this.digester.as_mut() {
                    d.update(&chunk);
                }
                // With a known size, verify as soon as the last byte arrives and withhold the last
                // chunk on a mismatch: an HTTP body with a Content-Length is not polled past its end,
                // so this is the only way to keep bad content from completing an upload.
                if this.expected_size == Some(this.received)
                    && let Some(e) = this.finish()
                {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(this.finish().map(Err))
            }
        }
    }
}

/// The content of a blob upload: bytes in memory, or a stream (sent once, never buffered).
pub struct BlobBody(BodyKind);

enum BodyKind {
    Bytes(Bytes),
    Stream(ByteStream),
}

impl std::fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            BodyKind::Bytes(b) => write!(f, "BlobBody::Bytes({} bytes)", b.len()),
            BodyKind::Stream(_) => f.write_str("BlobBody::Stream"),
        }
    }
}

impl BlobBody {
    /// A body from a stream of chunks.
    pub fn stream(s: impl Stream<Item = Result<Bytes, ClientError>> + Send + 'static) -> Self {
        Self(BodyKind::Stream(Box::pin(s)))
    }

    /// A body from bytes.
    pub fn bytes(b: impl Into<Bytes>) -> Self {
        Self(BodyKind::Bytes(b.into()))
    }

    /// The request body, plus a slot that receives the stream's own error (a digest mismatch of the
    /// source, say) so it can be reported instead of the resulting transport error.
    fn into_req_body(self) -> (ReqBody, StreamErrorSlot) {
        let slot = StreamErrorSlot::default();
        let body = match self.0 {
            BodyKind::Bytes(b) => ReqBody::Bytes(b),
            BodyKind::Stream(s) => {
                let keep = slot.clone();
                let s = s.map(move |r| {
                    r.map_err(|e| {
                        let msg = e.to_string();
                        keep.put(e);
                        std::io::Error::other(msg)
                    })
                });
                ReqBody::Stream(Some(reqwest::Body::wrap_stream(s)))
            }
        };
        (body, slot)
    }
}

#[derive(Clone, Default)]
struct StreamErrorSlot(Arc<Mutex<Option<ClientError>>>);

impl StreamErrorSlot {
    fn put(&self, e: ClientError) {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.get_or_insert(e);
    }

    fn take(&self) -> Option<ClientError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl From<Bytes> for BlobBody {
    fn from(b: Bytes) -> Self {
        Self::bytes(b)
    }
}

impl From<Vec<u8>> for BlobBody {
    fn from(b: Vec<u8>) -> Self {
        Self::bytes(b)
    }
}

impl From<BlobStream> for BlobBody {
    fn from(s: BlobStream) -> Self {
        Self::stream(s)
    }
}

/// An open upload session (the `Location` of a POST to `/blobs/uploads/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// Registry host.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Absolute upload URL.
    pub url: Url,
    /// `OCI-Chunk-Min-Length` announced by the registry, if any.
    pub min_chunk_size: Option<u64>,
}

/// Result of [`RegistryClient::push_blob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository already had the blob (HEAD 200); nothing was sent.
    Existed,
    /// The blob was uploaded.
    Uploaded,
}

/// Result of [`RegistryClient::mount_blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// 201: the blob is now in the repository.
    Mounted,
    /// 202: not mounted; the registry opened an upload session instead (use it or cancel it).
    NotMounted(Option<UploadSession>),
}

impl MountOutcome {
    /// Whether the blob was mounted.
    pub fn is_mounted(&self) -> bool {
        matches!(self, Self::Mounted)
    }
}

/// Resolves a `Location` header against the URL of the request that returned it.
pub fn resolve_location(base: &Url, location: &str) -> Result<Url, url::ParseError> {
    base.join(location.trim())
}

/// The upload URL with `digest=<digest>` appended (`?` or `&` as needed; other parameters kept).
pub fn with_digest_param(url: &Url, digest: &Digest) -> Url {
    let mut u = url.clone();
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    u
}

fn blob_path(repo: &Reference, digest: &Digest) -> String {
    format!("/v2/{}/blobs/{digest}", repo.repository)
}

impl RegistryClient {
    /// HEAD a blob: its size, or `None` if the repository does not have it.
    pub async fn head_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> Result<Option<u64>, ClientError> {
        let req = Req::new(
            Method::HEAD,
            blob_path(repo, digest),
            vec![Scope::pull(&repo.repository)],
        );
        let resp = self.send(&repo.registry, req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self.check(&repo.registry, resp).await?;
        Ok(Some(
            header_str(&resp, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ))
    }

    /// GET a blob as a verifying stream. `expected_size` (from the descriptor) is enforced if given.
    pub async fn get_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobStream, ClientError> {
        // Refuse algorithms we cannot verify before sending anything.
        Digester::new(digest.algorithm())?;
        let req = Req::new(
            Method::GET,
            blob_path(repo, digest),
            vec![Scope::pull(&repo.repository)],
        );
        let resp = self.send(&repo.registry, req).await?;
        let resp = self.check(&repo.registry, resp).await?;
        let what = format!("blob {}/{}@{digest}", repo.registry, repo.repository);
        if let Some(h) =
            header_str(&resp, "docker-content-digest").and_then(|h| Digest::parse(h.trim()).ok())
            && h.algorithm() == digest.algorithm()
            && &h != digest
        {
            return Err(ClientError::DigestMismatch {
                what: format!("{what} (Docker-Content-Digest)"),
                expected: digest.to_string(),
                actual: h.to_string(),
            });
        }
        let length = resp.content_length();
        if let (Some(want), Some(got)) = (expected_size, length)
            && want != got
        {
            return Err(ClientError::SizeMismatch {
                what,
                expected: want,
                actual: got,
            });
        }
        let registry = repo.registry.clone();
        let inner = resp.bytes_stream().map(move |r| {
            r.map_err(|source| ClientError::Transport {
                registry: registry.clone(),
                source,
            })
        });
        BlobStream::new(Box::pin(inner), digest.clone(), expected_size, length, what)
    }

    /// GET a small blob into memory (verified), failing beyond `limit` bytes.
    pub async fn get_blob_bytes(
        &self,
        repo: &Reference,
        digest: &Digest,
        limit: u64,
    ) -> Result<Bytes, ClientError> {
        self.get_blob(repo, digest, None)
            .await?
            .collect_bytes(limit)
            .await
    }

    /// DELETE a blob.
    pub async fn delete_blob(&self, repo: &Reference, digest: &Digest) -> Result<(), ClientError> {
        let req = Req::new(
            Method::DELETE,
            blob_path(repo, digest),
            vec![Scope::delete(&repo.repository)],
        );
        let resp = self.send(&repo.registry, req).await?;
        self.check(&repo.registry, resp).await?;
        Ok(())
    }

    /// POST `/v2/<name>/blobs/uploads/`: opens an upload session. This also performs the auth dance, so
    /// the following PUT (which may stream and cannot be retried) carries credentials.
    pub async fn start_upload(&self, repo: &Reference) -> Result<UploadSession, ClientError> {
        let req = Req::new(
            Method::POST,
            format!("/v2/{}/blobs/uploads/", repo.repository),
            vec![Scope::push(&repo.repository)],
        );
        let resp = self.send(&repo.registry, req).await?;
        let resp = self.check(&repo.registry, resp).await?;
        self.session_from(repo, &resp)
    }

    fn session_from(
        &self,
        repo: &Reference,
        resp: &reqwest::Response,
    ) -> Result<UploadSession, ClientError> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol {
                registry: repo.registry.clone(),
                message: format!("upload answer {} without Location", resp.status().as_u16()),
            })?;
        let url = resolve_location(resp.url(), loc).map_err(|e| ClientError::Protocol {
            registry: repo.registry.clone(),
            message: format!("invalid upload Location {loc:?}: {e}"),
        })?;
        Ok(UploadSession {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            url,
            min_chunk_size: header_str(resp, "oci-chunk-min-length").and_then(|v| v.parse().ok()),
        })
    }

    /// Completes a session with one PUT `?digest=` carrying the whole blob. `size` sets
    /// `Content-Length` for streamed bodies.
    pub async fn finish_upload(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: Option<u64>,
        body: BlobBody,
    ) -> Result<(), ClientError> {
        let url = with_digest_param(&session.url, digest);
        let streamed = matches!(body.0, BodyKind::Stream(_));
        let (req_body, slot) = body.into_req_body();
        let mut req = Req::url(Method::PUT, url, vec![Scope::push(&session.repository)])
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(req_body);
        if streamed && let Some(n) = size {
            req = req.header(CONTENT_LENGTH, &n.to_string());
        }
        let sent = match self.send(&session.registry, req).await {
            Ok(resp) => self.check(&session.registry, resp).await,
            Err(e) => Err(e),
        };
        // A failing source explains a failed upload better than what the registry made of it.
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(slot.take().unwrap_or(e)),
        };
        if let Some(h) =
            header_str(&resp, "docker-content-digest").and_then(|h| Digest::parse(h.trim()).ok())
            && h.algorithm() == digest.algorithm()
            && &h != digest
        {
            return Err(ClientError::DigestMismatch {
                what: format!(
                    "uploaded blob in {}/{}",
                    session.registry, session.repository
                ),
                expected: digest.to_string(),
                actual: h.to_string(),
            });
        }
        Ok(())
    }

    /// Uploads a blob in chunks: POST, one PATCH per `chunk_size` bytes (`Content-Range`, following
    /// each answer's `Location`), then PUT `?digest=`. Each chunk is buffered in memory; the registry's
    /// `OCI-Chunk-Min-Length` raises `chunk_size` if needed.
    pub async fn push_blob_chunked<S>(
        &self,
        repo: &Reference,
        digest: &Digest,
        mut data: S,
        chunk_size: usize,
    ) -> Result<(), ClientError>
    where
        S: Stream<Item = Result<Bytes, ClientError>> + Unpin,
    {
        let mut session = self.start_upload(repo).await?;
        let min = session
            .min_chunk_size
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(1);
        let chunk_size = chunk_size.max(min).max(1);
        let mut buf = BytesMut::new();
        let mut offset: u64 = 0;
        let mut ended = false;
        while !ended {
            match data.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => ended = true,
            }
            while buf.len() >= chunk_size || (ended && !buf.is_empty()) {
                let chunk = buf.split_to(chunk_size.min(buf.len())).freeze();
                let len = chunk.len() as u64;
                let req = Req::url(
                    Method::PATCH,
                    session.url.clone(),
                    vec![Scope::push(&session.repository)],
                )
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(
                    http::header::CONTENT_RANGE,
                    &format!("{offset}-{}", offset + len - 1),
                )
                .body(ReqBody::Bytes(chunk));
                let resp = self.send(&session.registry, req).await?;
                let resp = self.check(&session.registry, resp).await?;
                if resp.headers().contains_key(LOCATION) {
                    let next = self.session_from(repo, &resp)?;
                    session.url = next.url;
                }
                offset += len;
            }
        }
        self.finish_upload(session, digest, Some(0), BlobBody::bytes(Bytes::new()))
            .await
    }

    /// Cancels an upload session (DELETE; errors are ignored, registries purge stale sessions).
    pub async fn cancel_upload(&self, session: UploadSession) {
        let req = Req::url(
            Method::DELETE,
            session.url,
            vec![Scope::push(&session.repository)],
        );
        if let Err(e) = self.send(&session.registry, req).await {
            tracing::debug!(error = %e, "cancelling upload failed");
        }
    }

    /// Uploads a blob (POST then PUT) without checking whether the repository has it.
    pub async fn upload_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: Option<u64>,
        body: BlobBody,
    ) -> Result<(), ClientError> {
        let session = self.start_upload(repo).await?;
        self.finish_upload(session, digest, size, body).await
    }

    /// Pushes a blob unless the repository already has it (HEAD first).
    pub async fn push_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: Option<u64>,
        body: BlobBody,
    ) -> Result<PushOutcome, ClientError> {
        if self.head_blob(repo, digest).await?.is_some() {
            return Ok(PushOutcome::Existed);
        }
        self.upload_blob(repo, digest, size, body).await?;
        Ok(PushOutcome::Uploaded)
    }

    /// Tries a cross-repository mount of `digest` from `from_repository` (same registry) into `repo`.
    pub async fn mount_blob(
        &self,
        repo: &Reference,
        from_repository: &str,
        digest: &Digest,
    ) -> Result<MountOutcome, ClientError> {
        let req = Req::new(
            Method::POST,
            format!("/v2/{}/blobs/uploads/", repo.repository),
            vec![Scope::push(&repo.repository), Scope::pull(from_repository)],
        )
        .query("mount", digest.to_string())
        .query("from", from_repository);
        let resp = self.send(&repo.registry, req).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => Ok(MountOutcome::NotMounted(
                self.session_from(repo, &resp).ok(),
            )),
            _ => Err(self.error_from(&repo.registry, resp).await),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(data: &[u8]) -> Digest {
        Digest::sha256(data)
    }

    #[test]
    fn joins_locations() {
        let base = Url::parse("http://127.0.0.1:5000/v2/demo/app/blobs/uploads/").unwrap();
        let rel = resolve_location(&base, "/v2/demo/app/blobs/uploads/abc?_state=xyz").unwrap();
        assert_eq!(
            rel.as_str(),
            "http://127.0.0.1:5000/v2/demo/app/blobs/uploads/abc?_state=xyz"
        );
        let abs = resolve_location(&base, "https://storage.example/upload/1").unwrap();
        assert_eq!(abs.as_str(), "https://storage.example/upload/1");
        let dg = d(b"x");
        let u = with_digest_param(&rel, &dg);
        assert_eq!(
            u.as_str(),
            format!(
                "http://127.0.0.1:5000/v2/demo/app/blobs/uploads/abc?_state=xyz&digest=sha256%3A{}",
                dg.encoded()
            )
        );
        let u = with_digest_param(&abs, &dg);
        assert!(
            u.as_str()
                .ends_with(&format!("/upload/1?digest=sha256%3A{}", dg.encoded()))
        );
    }

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        let v: Vec<Result<Bytes, ClientError>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures::stream::iter(v))
    }

    #[tokio::test]
    async fn blob_stream_verifies() {
        let s = BlobStream::new(chunks(&[b"hel", b"lo"]), d(b"hello"), Some(5), None, "t").unwrap();
        assert_eq!(
            s.collect_bytes(100).await.unwrap(),
            Bytes::from_static(b"hello")
        );
        let s = BlobStream::new(chunks(&[b"hel", b"lO"]), d(b"hello"), None, None, "t").unwrap();
        assert!(matches!(
            s.collect_bytes(100).await,
            Err(ClientError::DigestMismatch { .. })
        ));
        let s =
            BlobStream::new(chunks(&[b"hel", b"lo!"]), d(b"hello"), Some(5), None, "t").unwrap();
        assert!(matches!(
            s.collect_bytes(100).await,
            Err(ClientError::SizeMismatch { .. })
        ));
        let s = BlobStream::new(chunks(&[b"hel"]), d(b"hello"), Some(5), None, "t").unwrap();
        assert!(matches!(
            s.collect_bytes(100).await,
            Err(ClientError::SizeMismatch { .. })
        ));
        let s = BlobStream::new(chunks(&[b"hel", b"lo"]), d(b"hello"), None, None, "t").unwrap();
        assert!(matches!(
            s.collect_bytes(4).await,
            Err(ClientError::TooLarge { .. })
        ));
        let odd = Digest::parse("blake3:abc").unwrap();
        assert!(BlobStream::new(chunks(&[]), odd, None, None, "t").is_err());
    }
}
