//! `sigil-sigstore`: offline Sigstore verification in pure Rust (RustCrypto).
//!
//! - [`TrustedRoot::from_json`] parses `trusted_root.json`; [`Bundle::from_json`] parses bundles v0.1–v0.3.
//! - [`verify_bundle`] runs keyless (Fulcio identity), public-key or pinned-certificate verification of a
//!   bundle against an [`Artifact`]: trusted time from the Rekor SET and/or RFC 3161 timestamps, certificate
//!   path at that time, SCT, identity/issuer, tlog body consistency, inclusion proof + checkpoint, and the
//!   signature itself (message signature or DSSE). Failures name the check ([`VerifyFailure`]).
//! - [`legacy`] exposes the same checks for cosign's legacy `.sig`/`.att` layer annotations (Rekor SET
//!   bundle, RFC 3161 timestamp, certificate identity / pinned certificate and chain, a pinned
//!   certificate against the trusted root's Fulcio CAs).
//! - Keys and signatures ([`crypto`]): ECDSA P-256/P-384, Ed25519 and RSA 2048–4096 bits (PKCS#1 v1.5
//!   and RSA-PSS with SHA-256/384/512) — for signing keys, Fulcio/TSA certificate chains, pinned
//!   certificates, and Rekor/CT log keys.

pub mod bundle;
mod cert;
pub mod crypto;
pub mod der_util;
mod error;
pub mod legacy;
#[cfg(test)]
mod tests;
mod tlog;
pub mod trust;
mod tsa;
mod verify;

pub use bundle::{Bundle, Content, DsseEnvelope, TlogEntry, VerificationMaterial};
pub use crypto::PublicKey;
pub use error::{SigstoreError, VerifyFailure};
pub use trust::TrustedRoot;
pub use verify::{
    Artifact, CertificateSummary, Matcher, Policy, Verified, known_predicate_type,
    predicate_type_uri, verify_bundle,
};
