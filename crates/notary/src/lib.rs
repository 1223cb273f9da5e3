//! `sigil-notary`: Notary Project-compatible signing and verification (what notation 1.x writes and
//! reads), in pure Rust.
//!
//! - [`envelope`]: JWS (`application/jose+json`) and COSE_Sign1 (`application/cose`) envelopes —
//!   parsing, the integrity check, signing. [`crypto`]: PS256/384/512 and ES256/384/512, derived from
//!   the leaf key. [`x509`]: certificates and notation's chain rules.
//! - [`trustpolicy`] and [`truststore`]: notation's `trustpolicy.json` (version 1.0) and trust store
//!   directory (`x509/{ca,signingAuthority,tsa}/<name>/`).
//! - [`timestamp`]: RFC 3161 tokens (request, fetch, verification against the `tsa` store).
//! - [`verifier`]: one envelope through notation's verification order and levels.
//! - [`revocation`]: OCSP and CRL revocation checking of the signing and TSA chains, notation's
//!   rules and result combination (revoked or unknown fail under `strict`).
//! - [`oci`]: signatures as OCI referrers (both manifest forms, referrers API or fallback tag):
//!   verify, inspect, sign and push.
//! - [`policy`]: the entry points for the Kyverno policy engine (`type: Notary` attestors and
//!   attestations).
//!
//! Deliberate choices: unknown critical headers fail integrity (the specification's rule; notation
//! accepts them without a plugin); signatures needing a verification plugin fail; revocation is
//! checked over HTTP (OCSP, then CRLs with their delta CRLs), and an unreachable responder or an
//! invalid, expired or unsupported answer gives "unknown", which fails under `strict` unless the
//! policy overrides `revocation`.

pub mod crypto;
mod der;
pub mod envelope;
pub mod error;
pub mod oci;
mod ocsp;
pub mod policy;
pub mod revocation;
pub mod time;
pub mod timestamp;
pub mod trustpolicy;
pub mod truststore;
pub mod verifier;
pub mod x509;

pub use error::{Check, NotaryError};
pub use oci::{ImageVerification, SignOptions, inspect_image, sign_image, verify_image};
pub use policy::{NotaryAttestor, verify_attestations_for_policy, verify_for_policy};
