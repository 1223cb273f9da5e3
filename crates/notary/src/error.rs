//! Error types: [`NotaryError`] for everything that stops an operation, and [`Check`] names the
//! verification step a signature failed.

use std::fmt;

/// What went wrong; every message names the field or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    /// A malformed or unacceptable signature envelope (JWS or COSE).
    #[error("envelope: {0}")]
    Envelope(String),
    /// A certificate chain that breaks notation's rules.
    #[error("certificate chain: {0}")]
    Chain(String),
    /// An unusable key or an unsupported key type/size.
    #[error("key: {0}")]
    Key(String),
    /// An invalid trust policy document.
    #[error("trust policy: {0}")]
    TrustPolicy(String),
    /// An invalid trust store.
    #[error("trust store: {0}")]
    TrustStore(String),
    /// An RFC 3161 timestamp problem (request, response or token).
    #[error("timestamp: {0}")]
    Timestamp(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
    /// Invalid caller input (reference, annotation, duration...).
    #[error("{0}")]
    Invalid(String),
    /// Registry access failed.
    #[error(transparent)]
    Client(#[from] sigil_client::ClientError),
    /// Referrers listing or pushing failed.
    #[error(transparent)]
    Artifacts(#[from] sigil_artifacts::ArtifactError),
}

/// The verification steps of the Notary Project verification workflow, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    /// The envelope parses, its signature verifies with the leaf key and the chain is well formed.
    Integrity,
    /// The chain contains a trust-store certificate and the leaf matches the trusted identities.
    Authenticity,
    /// The signing time is authentic (timestamp, or certificates valid now).
    AuthenticTimestamp,
    /// The signature has not expired.
    Expiry,
    /// No certificate in the chain is revoked.
    Revocation,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Integrity => "integrity",
            Check::Authenticity => "authenticity",
            Check::AuthenticTimestamp => "authenticTimestamp",
            Check::Expiry => "expiry",
            Check::Revocation => "revocation",
        })
    }
}
