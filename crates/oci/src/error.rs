//! The error type of the OCI core.

use thiserror::Error;

/// Why a digest, name, reference, platform or manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OciError {
    /// A digest string does not follow the grammar `algorithm ":" encoded`.
    #[error("invalid digest {0:?}: {1}")]
    InvalidDigest(String, &'static str),
    /// A digest uses an algorithm sigil cannot compute.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        /// The digest the content was announced with.
        expected: String,
        /// The digest computed over the bytes received.
        actual: String,
    },
    /// A repository name does not match the distribution-spec grammar.
    #[error("invalid repository name {0:?}: {1}")]
    InvalidName(String, &'static str),
    /// A tag does not match `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    /// An image reference could not be parsed.
    #[error("invalid image reference {0:?}: {1}")]
    InvalidReference(String, String),
    /// A platform string could not be parsed.
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    InvalidPlatform(String),
    /// A manifest is malformed or inconsistent.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
}
