//! Cosign-compatible signing and verification for sigil.
//!
//! - [`keys`]: cosign key files (scrypt + secretbox encrypted PKCS#8, plain PEM keys, SPKI public keys);
//! - [`payload`]: the simple-signing payload, in-toto statements and DSSE envelopes;
//! - [`legacy`]: `.sig` signatures and `.att` attestations stored under `sha256-<hex>.{sig,att}` tags;
//! - [`bundles`]: Sigstore bundles v0.3 stored as OCI 1.1 referrers (cosign v3): keyed offline signing
//!   (`publicKey` hint, no tlog entries) and verification of every bundle referrer;
//! - [`policy`]: one call for the policy engine (verified signatures or a typed reason, plus the number
//!   of registry requests).

pub mod bundles;
pub mod error;
pub mod keys;

pub use error::{CosignError, SignatureFailure, VerifyError};
pub use keys::{PrivateKey, PublicKey};
pub mod legacy;
pub mod payload;
pub mod policy;

pub use legacy::{
    Trust, VerifiedAttestation, VerifiedSignature, attest_image, sign_image, verify_attestations,
    verify_image,
};
pub use policy::{Attestor, PolicyOutcome, verify_for_policy};
