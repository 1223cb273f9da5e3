//! Storage for sigil's embedded registry.
//!
//! [`Storage`] is the interface the registry server uses; [`fs::FsStorage`] is the default filesystem
//! backend. The trait is shaped so that an object-store backend can implement it honestly: blobs are
//! global and content-addressed (deduplicated across repositories) and linked into repositories;
//! uploads are append-only sessions committed by digest; tags are updated with compare-and-set so
//! conditional manifest PUTs (`If-Match` / `If-None-Match`) cannot lose writes; referrers are indexed
//! by subject digest when a manifest is stored.
//!
//! Every write is atomic: content is written to a temporary object, flushed, then made visible in one
//! step (rename on a filesystem), so a crash never exposes a partial blob, manifest or tag.

pub mod error;
pub mod fs;
pub mod gc;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use sigil_oci::{Descriptor, Digest};

pub use error::StorageError;

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A stream of body bytes (request bodies in, blob contents out).
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + 'static>>;

/// An inclusive byte range `start..=end` within a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

/// Blob contents being read.
pub struct BlobReader {
    /// Total size of the blob.
    pub size: u64,
    /// The requested bytes.
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A manifest as stored: its exact bytes and the media type it was pushed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Digest of `bytes`.
    pub digest: Digest,
    /// The `Content-Type` / `mediaType` it was pushed with.
    pub media_type: String,
    /// The bytes exactly as received.
    pub bytes: Bytes,
}

/// A manifest to store, already validated by the caller.
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// Digest of `bytes` (computed over the bytes as received).
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Bytes,
    /// When the manifest has a `subject`: the subject digest and the descriptor a referrers response
    /// lists for this manifest (media type, digest, size, artifactType, annotations).
    pub referrer: Option<(Digest, Descriptor)>,
}

/// Condition for a compare-and-set tag update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    /// Unconditional.
    Any,
    /// The tag must not exist (`If-None-Match: *`).
    Absent,
    /// The tag must exist (`If-Match: *`).
    Exists,
    /// The tag must currently point to one of these digests (`If-Match: "<etag>"`).
    CurrentIs(Vec<Digest>),
    /// The tag must not currently point to any of these digests (`If-None-Match: "<etag>"`).
    CurrentIsNot(Vec<Digest>),
}

/// State of an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// Bytes received so far.
    pub size: u64,
}

/// The storage interface of the registry server.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    // ---- blobs (global, content-addressed) ----

    /// Size of a blob, if present in the global store.
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Reads a blob, optionally a byte range of it. `NotFound` if absent; `RangeNotSatisfiable` if the
    /// range lies outside the blob.
    async fn blob_read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader>;
    /// Every blob digest in the global store (for garbage collection).
    async fn blob_list(&self) -> Result<Vec<Digest>>;
    /// Removes a blob from the global store. Returns whether it existed.
    async fn blob_remove(&self, digest: &Digest) -> Result<bool>;
    /// Seconds since the blob was last written (for GC grace periods).
    async fn blob_age_secs(&self, digest: &Digest) -> Result<Option<u64>>;

    // ---- repository blob links ----

    /// Makes a blob that exists globally visible in `repo` (push or cross-repository mount).
    async fn blob_link(&self, repo: &str, digest: &Digest) -> Result<()>;
    /// Whether `repo` links the blob (and the blob exists).
    async fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool>;
    /// Removes a blob from `repo`. Returns whether it was linked.
    async fn blob_unlink(&self, repo: &str, digest: &Digest) -> Result<bool>;
    /// Blobs linked in `repo`.
    async fn blob_links(&self, repo: &str) -> Result<Vec<Digest>>;

    // ---- uploads ----

    /// Starts an upload session in `repo`; returns its id.
    async fn upload_start(&self, repo: &str) -> Result<String>;
    /// Status of an upload session. `UploadUnknown` if there is none.
    async fn upload_status(&self, repo: &str, id: &str) -> Result<UploadStatus>;
    /// Appends `body` to the session. When `start` is given it must equal the bytes received so far,
    /// else `RangeNotSatisfiable` (out-of-order chunk) and nothing is written. Returns the new size.
    /// On a body error the session is truncated back to its previous size.
    async fn upload_append(
        &self,
        repo: &str,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64>;
    /// Completes the session: the data must hash to `digest` (else `DigestMismatch`, and the session is
    /// removed). The blob becomes visible atomically and is linked into `repo`. Returns its size.
    async fn upload_commit(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64>;
    /// Abandons a session.
    async fn upload_cancel(&self, repo: &str, id: &str) -> Result<()>;
    /// Ids and ages (seconds) of all sessions, for cleanup.
    async fn upload_list(&self) -> Result<Vec<(String, String, u64)>>;

    // ---- manifests ----

    /// Stores a manifest in `repo` (bytes stored as a blob, linked as a manifest, and indexed as a
    /// referrer of its subject), then, if `tag` is given, points the tag at it subject to `condition`
    /// (`PreconditionFailed` if the condition does not hold; the manifest itself stays stored).
    async fn manifest_put(
        &self,
        repo: &str,
        manifest: NewManifest,
        tag: Option<(&str, TagCondition)>,
    ) -> Result<()>;
    /// A manifest of `repo` by digest.
    async fn manifest_get(&self, repo: &str, digest: &Digest) -> Result<Option<StoredManifest>>;
    /// Removes a manifest from `repo`: its link, its referrer entry and every tag pointing at it.
    /// Returns whether it existed.
    async fn manifest_delete(&self, repo: &str, digest: &Digest) -> Result<bool>;
    /// Digests of every manifest in `repo`.
    async fn manifest_list(&self, repo: &str) -> Result<Vec<Digest>>;

    // ---- tags ----

    /// The digest a tag points to.
    async fn tag_get(&self, repo: &str, tag: &str) -> Result<Option<Digest>>;
    /// Removes a tag. Returns whether it existed.
    async fn tag_delete(&self, repo: &str, tag: &str) -> Result<bool>;
    /// Every tag of `repo`, sorted.
    async fn tag_list(&self, repo: &str) -> Result<Vec<String>>;

    // ---- repositories and referrers ----

    /// Every repository, sorted.
    async fn repositories(&self) -> Result<Vec<String>>;
    /// Whether `repo` has any content (manifests, blobs or uploads).
    async fn repository_exists(&self, repo: &str) -> Result<bool>;
    /// Descriptors of every manifest in `repo` whose subject is `subject`, ordered by digest.
    async fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Descriptor>>;
}
