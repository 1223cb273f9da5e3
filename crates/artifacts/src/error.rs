//! [`ArtifactError`]: everything that can go wrong in an artifact workflow.

use std::path::PathBuf;

use sigil_client::ClientError;
use sigil_oci::OciError;
use thiserror::Error;

/// Errors of the artifact workflows.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// A registry or transport error.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A digest, reference or manifest was rejected by the OCI core.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The subject to attach to (or to delete, list) does not exist.
    #[error("{reference}: manifest not found")]
    NotFound {
        /// The reference as given.
        reference: String,
    },
    /// The fallback tag holds something other than an OCI image index; it is left alone.
    #[error(
        "fallback tag {repository}:{tag} holds {media_type}, not an OCI image index (left unchanged)"
    )]
    FallbackNotIndex {
        /// `registry/repository`.
        repository: String,
        /// The fallback tag.
        tag: String,
        /// What it holds.
        media_type: String,
    },
    /// The fallback index is an index but not a usable one (e.g. it has a `subject` itself).
    #[error("fallback tag {repository}:{tag}: {message} (left unchanged)")]
    FallbackInvalid {
        /// `registry/repository`.
        repository: String,
        /// The fallback tag.
        tag: String,
        /// What is wrong.
        message: String,
    },
    /// The fallback index kept changing under us.
    #[error(
        "could not update fallback tag {repository}:{tag} after {attempts} attempts (too many concurrent writers)"
    )]
    FallbackContention {
        /// `registry/repository`.
        repository: String,
        /// The fallback tag.
        tag: String,
        /// Attempts made.
        attempts: usize,
    },
    /// The referrers response cannot be used (not an index, pagination loop, ...).
    #[error("referrers of {subject} in {repository}: {message}")]
    InvalidReferrers {
        /// `registry/repository`.
        repository: String,
        /// The subject digest.
        subject: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A layer title that would escape the output directory (or is otherwise unusable as a file name).
    #[error("refusing layer title {title:?}: {reason}")]
    UnsafeTitle {
        /// The title annotation.
        title: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The manifest is not something this operation can use.
    #[error("{reference}: {message}")]
    Unusable {
        /// The reference.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// Invalid arguments.
    #[error("{0}")]
    InvalidInput(String),
    /// An operation sigil does not support (yet).
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl ArtifactError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
