//! Typed errors: [`SigstoreError`] for malformed input (bundles, trusted roots, keys) and
//! [`VerifyFailure`] naming the exact verification check that failed.

use thiserror::Error;

/// A bundle, trusted root, key or certificate could not be parsed.
#[derive(Debug, Error)]
pub enum SigstoreError {
    /// The document is not valid JSON or does not have the expected shape.
    #[error("invalid {what} JSON: {msg}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The parser's message.
        msg: String,
    },
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is not valid standard base64.
    #[error("field `{0}` is not valid base64")]
    Base64(&'static str),
    /// A field is not a valid integer.
    #[error("field `{0}` is not a valid integer")]
    Integer(&'static str),
    /// A timestamp is not valid RFC 3339.
    #[error("invalid RFC 3339 time {0:?}")]
    Time(String),
    /// The bundle media type is not a known Sigstore bundle version.
    #[error("unsupported bundle media type {0:?}")]
    MediaType(String),
    /// A certificate does not parse as DER X.509.
    #[error("invalid certificate in {0}")]
    Certificate(&'static str),
    /// A public key does not parse or uses an unsupported algorithm.
    #[error("invalid or unsupported public key in {0}")]
    PublicKey(&'static str),
    /// An RSA public key is malformed or its modulus is outside 2048–4096 bits.
    #[error("invalid RSA public key in {0} (modulus must be 2048 to 4096 bits)")]
    RsaKeySize(&'static str),
    /// The bundle content is inconsistent (e.g. both or neither of messageSignature/dsseEnvelope).
    #[error("invalid bundle content: {0}")]
    Content(&'static str),
}

/// Which verification check failed. Verification fails closed: any error is one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyFailure {
    /// The bundle lacks material the policy needs (e.g. a certificate for keyless verification).
    #[error("bundle is missing {0}")]
    MissingMaterial(&'static str),
    /// No trusted time (verified SET or RFC 3161 timestamp) could be established.
    #[error("no verified timestamp (Rekor SET or RFC 3161) establishes the signing time")]
    NoTrustedTime,
    /// The leaf certificate does not chain to a trusted Fulcio CA valid at the signing time.
    #[error("certificate chain invalid: {0}")]
    ChainInvalid(String),
    /// A certificate was not valid at the verified signing time.
    #[error("certificate expired or not yet valid at signing time {0}")]
    CertificateExpiredAtSigningTime(i64),
    /// A certificate carries a critical extension the verifier does not understand.
    #[error("unknown critical extension {0}")]
    UnknownCriticalExtension(String),
    /// The leaf lacks the codeSigning EKU or the digitalSignature key usage.
    #[error("leaf certificate usage invalid: {0}")]
    KeyUsageInvalid(&'static str),
    /// No SAN matches the expected identity.
    #[error("identity mismatch: expected {expected}, found {found:?}")]
    IdentityMismatch {
        /// The expected identity (exact or regexp).
        expected: String,
        /// The identities in the certificate.
        found: Vec<String>,
    },
    /// The OIDC issuer does not match.
    #[error("issuer mismatch: expected {expected}, found {found:?}")]
    IssuerMismatch {
        /// The expected issuer.
        expected: String,
        /// The issuer in the certificate, if any.
        found: Option<String>,
    },
    /// The embedded SCT is missing or does not verify against a trusted CT log.
    #[error("SCT invalid: {0}")]
    SctInvalid(String),
    /// The Rekor signed entry timestamp does not verify.
    #[error("Rekor SET invalid: {0}")]
    SetInvalid(String),
    /// The Merkle inclusion proof does not reproduce the root hash.
    #[error("inclusion proof invalid: {0}")]
    InclusionProofInvalid(String),
    /// The checkpoint (signed note) is malformed, mismatched or badly signed.
    #[error("checkpoint invalid: {0}")]
    CheckpointInvalid(String),
    /// The tlog entry body does not match the bundle's signature, key or digest.
    #[error("transparency log body inconsistent: {0}")]
    BodyMismatch(String),
    /// An RFC 3161 timestamp does not verify.
    #[error("RFC 3161 timestamp invalid: {0}")]
    TimestampInvalid(String),
    /// The signature over the artifact / DSSE PAE does not verify.
    #[error("signature invalid: {0}")]
    SignatureInvalid(String),
    /// The artifact's digest does not match the signed digest / statement subject.
    #[error("artifact digest mismatch: {0}")]
    ArtifactDigestMismatch(String),
    /// The DSSE payload is not what the policy accepts (payload type, predicate type, statement shape).
    #[error("payload invalid: {0}")]
    PayloadInvalid(String),
    /// The policy itself is unusable (bad regexp, bad key).
    #[error("invalid policy: {0}")]
    PolicyInvalid(String),
}
