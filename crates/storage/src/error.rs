//! The error type of the storage layer.

use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The blob, manifest or tag does not exist.
    #[error("not found")]
    NotFound,
    /// No upload session with that id exists in that repository.
    #[error("upload session unknown")]
    UploadUnknown,
    /// A chunk did not start where the session ends, or a read range lies outside the blob.
    #[error("range not satisfiable (current size {size})")]
    RangeNotSatisfiable {
        /// Size of the session or blob.
        size: u64,
    },
    /// The uploaded content did not match the digest it was committed with.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the client announced.
        expected: String,
        /// The digest of the data received.
        actual: String,
    },
    /// The digest's algorithm cannot be computed.
    #[error("unsupported digest algorithm: {0}")]
    UnsupportedDigest(String),
    /// A compare-and-set tag update found the tag in another state.
    #[error("precondition failed: tag is at {current:?}")]
    PreconditionFailed {
        /// Where the tag points now.
        current: Option<String>,
    },
    /// The request body failed while being read.
    #[error("request body: {0}")]
    Body(std::io::Error),
    /// Stored data is corrupt (for example a link file that does not parse).
    #[error("corrupt storage: {0}")]
    Corrupt(String),
    /// An I/O error of the backend.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
}
