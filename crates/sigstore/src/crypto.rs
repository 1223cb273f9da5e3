//! Public keys (ECDSA P-256/P-384, Ed25519) from SubjectPublicKeyInfo DER or PEM, and signature
//! verification over messages or prehashed digests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use spki::der::Decode as _;

use crate::SigstoreError;

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";

/// Hash algorithm used with an ECDSA signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Hashes `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// From a hash algorithm OID (dotted).
    pub(crate) fn from_hash_oid(oid: &str) -> Option<Self> {
        match oid {
            "2.16.840.1.101.3.4.2.1" => Some(HashAlg::Sha256),
            "2.16.840.1.101.3.4.2.2" => Some(HashAlg::Sha384),
            "2.16.840.1.101.3.4.2.3" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// From an ECDSA signature algorithm OID (dotted); `None` for Ed25519 (`1.3.101.112`) or unknown.
    pub(crate) fn from_sig_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.2.840.10045.4.3.2" => Some(HashAlg::Sha256),
            "1.2.840.10045.4.3.3" => Some(HashAlg::Sha384),
            "1.2.840.10045.4.3.4" => Some(HashAlg::Sha512),
            _ => None,
        }
    }
}

/// A verification key.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// ECDSA on NIST P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA on NIST P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Parses SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8], what: &'static str) -> Result<Self, SigstoreError> {
        let bad = || SigstoreError::PublicKey(what);
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| bad())?;
        let alg = spki.algorithm.oid.to_string();
        let key = spki.subject_public_key.as_bytes().ok_or_else(bad)?;
        match alg.as_str() {
            OID_EC => {
                let params = spki
                    .algorithm
                    .parameters
                    .ok_or_else(bad)?
                    .decode_as::<spki::ObjectIdentifier>()
                    .map_err(|_| bad())?
                    .to_string();
                match params.as_str() {
                    OID_P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                        .map(PublicKey::P256)
                        .map_err(|_| bad()),
                    OID_P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(key)
                        .map(PublicKey::P384)
                        .map_err(|_| bad()),
                    _ => Err(bad()),
                }
            }
            OID_ED25519 => {
                let arr: [u8; 32] = key.try_into().map_err(|_| bad())?;
                ed25519_dalek::VerifyingKey::from_bytes(&arr)
                    .map(PublicKey::Ed25519)
                    .map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }

    /// Parses a PEM `PUBLIC KEY`.
    pub fn from_pem(pem: &str, what: &'static str) -> Result<Self, SigstoreError> {
        let der = pem_decode(pem, "PUBLIC KEY").ok_or(SigstoreError::PublicKey(what))?;
        Self::from_spki_der(&der, what)
    }

    /// The default hash for ECDSA with this key (SHA-256 for P-256, SHA-384 for P-384).
    pub fn default_hash(&self) -> HashAlg {
        match self {
            PublicKey::P384(_) => HashAlg::Sha384,
            _ => HashAlg::Sha256,
        }
    }

    /// Verifies `sig` (ASN.1 DER for ECDSA, raw 64 bytes for Ed25519) over `msg`; ECDSA hashes `msg` with `hash`.
    pub fn verify(&self, msg: &[u8], sig: &[u8], hash: HashAlg) -> bool {
        match self {
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .map(|s| k.verify_strict(msg, &s).is_ok())
                .unwrap_or(false),
            _ => self.verify_prehash(&hash.digest(msg), sig),
        }
    }

    /// Verifies an ECDSA DER signature over a precomputed digest (false for Ed25519).
    pub fn verify_prehash(&self, digest: &[u8], sig: &[u8]) -> bool {
        use ecdsa::signature::hazmat::PrehashVerifier as _;
        match self {
            PublicKey::P256(k) => p256::ecdsa::DerSignature::try_from(sig)
                .ok()
                .and_then(|s| p256::ecdsa::Signature::try_from(s).ok())
                .is_some_and(|s| k.verify_prehash(digest, &s).is_ok()),
            PublicKey::P384(k) => p384::ecdsa::DerSignature::try_from(sig)
                .ok()
                .and_then(|s| p384::ecdsa::Signature::try_from(s).ok())
                .is_some_and(|s| k.verify_prehash(digest, &s).is_ok()),
            PublicKey::Ed25519(_) => false,
        }
    }
}

/// Decodes the first PEM block with `label`; `None` if absent or not base64.
pub fn pem_decode(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

/// All PEM blocks with `label`, in order.
pub fn pem_decode_all(pem: &str, label: &str) -> Option<Vec<Vec<u8>>> {
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(der) = pem_decode(rest, label) {
        out.push(der);
        let i = rest.find(&end)? + end.len();
        rest = &rest[i..];
    }
    Some(out)
}

/// PEM-encodes DER with `label` (64-column lines, trailing newline).
pub fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
