//! Typed errors: [`CosignError`] for keys, signing and registry work; [`VerifyError`] for the reason a
//! signature or attestation was rejected.

use sigil_client::ClientError;
use sigil_oci::Digest;

/// An error reading keys, signing, or talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    /// The file is not PEM, or its base64 body is invalid.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// The PEM block has a label this operation does not accept.
    #[error("unexpected PEM block {found:?} (expected {expected})")]
    PemLabel {
        /// The label found.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The encrypted key's JSON envelope is malformed or uses unsupported parameters.
    #[error("invalid encrypted key: {0}")]
    EncryptedKey(String),
    /// Decryption failed: wrong password or corrupted key.
    #[error("decryption failed: wrong password or corrupted key")]
    WrongPassword,
    /// No password available (no $COSIGN_PASSWORD and no terminal to prompt on).
    #[error("a password is needed: set COSIGN_PASSWORD (stdin is not a terminal, cannot prompt)")]
    NoPassword,
    /// The key material could not be parsed or is of an unsupported kind.
    #[error("invalid key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file exists and `force` was not given.
    #[error("{0} already exists (use --force to overwrite)")]
    Exists(String),
    /// Invalid input (reference, annotation, predicate).
    #[error("{0}")]
    Invalid(String),
    /// The registry failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Referrers listing or the fallback index failed.
    #[error(transparent)]
    Artifacts(#[from] sigil_artifacts::ArtifactError),
    /// Something the registry returned is malformed.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was malformed.
        what: String,
        /// Why.
        why: String,
    },
    /// The feature is not available in this build.
    #[error("{0} is not supported yet in this build")]
    Unsupported(&'static str),
}

/// Why one signature (a layer of the `.sig`/`.att` manifest) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFailure {
    /// The layer has an unexpected media type.
    #[error("layer media type {0:?} is not a cosign signature")]
    MediaType(String),
    /// The signature annotation is missing or not valid base64.
    #[error("signature annotation missing or not base64")]
    SignatureEncoding,
    /// The payload blob could not be fetched.
    #[error("payload blob {digest} could not be fetched: {why}")]
    Fetch {
        /// The blob.
        digest: Digest,
        /// Why.
        why: String,
    },
    /// The payload does not match its descriptor.
    #[error("payload digest mismatch (expected {0})")]
    PayloadDigest(Digest),
    /// A certificate-based check (SET, timestamp, chain, identity, issuer) failed.
    #[error("{0}")]
    Sigstore(#[from] sigil_sigstore::VerifyFailure),
    /// A Sigstore bundle could not be parsed.
    #[error("bundle {digest}: {why}")]
    Bundle {
        /// The referrer manifest holding it.
        digest: Digest,
        /// Why.
        why: String,
    },
    /// The layer lacks certificate material the trust options need.
    #[error("{0}")]
    Certificate(String),
    /// The cryptographic signature does not verify with any trusted key.
    #[error("signature does not verify with the given key")]
    BadSignature,
    /// The payload is not a valid simple-signing payload / DSSE envelope / in-toto statement.
    #[error("payload is malformed: {0}")]
    Payload(String),
    /// The payload names another image (replayed signature).
    #[error("payload is for {found}, not {expected} (replayed signature?)")]
    DigestMismatch {
        /// The image digest being verified.
        expected: Digest,
        /// The digest the payload names.
        found: String,
    },
    /// A required annotation is missing or has another value.
    #[error("annotation {key}={value} not found in the signed payload")]
    Annotation {
        /// The key.
        key: String,
        /// The required value.
        value: String,
    },
    /// Attestation predicate type does not match the filter.
    #[error("predicate type {found:?} does not match {wanted:?}")]
    PredicateType {
        /// Wanted URI.
        wanted: String,
        /// Found URI.
        found: String,
    },
}

/// Why verification of an image failed (fail closed: any error is a failure).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No `.sig`/`.att` manifest exists for the image.
    #[error("no {kind} found for {image} (tag {tag})")]
    NotFound {
        /// "signatures" or "attestations".
        kind: &'static str,
        /// The image.
        image: String,
        /// The tag looked up.
        tag: String,
    },
    /// Every signature was rejected; one reason per layer, in order.
    #[error("no valid {kind}: {}", summarize(.failures))]
    NoneValid {
        /// "signatures" or "attestations".
        kind: &'static str,
        /// One failure per layer.
        failures: Vec<SignatureFailure>,
    },
    /// The verification could not be carried out (registry or input error).
    #[error(transparent)]
    Cosign(#[from] CosignError),
}

impl From<ClientError> for VerifyError {
    fn from(e: ClientError) -> Self {
        Self::Cosign(CosignError::Client(e))
    }
}

fn summarize(f: &[SignatureFailure]) -> String {
    f.iter()
        .enumerate()
        .map(|(i, e)| format!("#{}: {e}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}
