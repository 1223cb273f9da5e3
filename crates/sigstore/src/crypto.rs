//! Public keys (ECDSA P-256/P-384, Ed25519, RSA 2048–4096 bits) from SubjectPublicKeyInfo DER or PEM,
//! and signature verification over messages or prehashed digests.
//!
//! RSA signatures are PKCS#1 v1.5 or RSA-PSS (salt length detected, MGF1 with the message hash), as
//! Sigstore uses them: cosign RSA keys sign PKCS#1 v1.5 / SHA-256, Fulcio/TSA/CT certificates name
//! their scheme in the signature algorithm ([`RsaPadding`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use spki::der::Decode as _;

use crate::SigstoreError;

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// Smallest RSA modulus accepted (bits).
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted (bits).
pub const RSA_MAX_BITS: usize = 4096;

/// RSA signature padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaPadding {
    /// RSASSA-PKCS1-v1_5.
    Pkcs1v15,
    /// RSASSA-PSS (MGF1 with the same hash, salt length detected).
    Pss,
}

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

    /// From an ECDSA or RSA PKCS#1 v1.5 signature algorithm OID (dotted); `None` for Ed25519
    /// (`1.3.101.112`), RSA-PSS (hash in the parameters) or unknown.
    pub(crate) fn from_sig_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Some(HashAlg::Sha256),
            "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Some(HashAlg::Sha384),
            "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// The hash a digest of this length was made with.
    fn from_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(HashAlg::Sha256),
            48 => Some(HashAlg::Sha384),
            64 => Some(HashAlg::Sha512),
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
    /// RSA, 2048–4096 bits (PKCS#1 v1.5 or PSS signatures).
    Rsa(Box<rsa::PublicKey>),
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
            OID_RSA => Self::rsa_from_spki_der(der).ok_or(SigstoreError::RsaKeySize(what)),
            _ => Err(bad()),
        }
    }

    /// An RSA SPKI with a modulus of [`RSA_MIN_BITS`]..=[`RSA_MAX_BITS`] bits.
    fn rsa_from_spki_der(der: &[u8]) -> Option<Self> {
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::traits::PublicKeyParts as _;
        let k = rsa::PublicKey::from_public_key_der(der).ok()?;
        let bits = k.size() * 8;
        (RSA_MIN_BITS..=RSA_MAX_BITS)
            .contains(&bits)
            .then(|| PublicKey::Rsa(Box::new(k)))
    }

    /// SubjectPublicKeyInfo DER of this key.
    pub fn to_spki_der(&self) -> Vec<u8> {
        use spki::EncodePublicKey as _;
        let der = match self {
            PublicKey::P256(k) => k.to_public_key_der().ok(),
            PublicKey::P384(k) => k.to_public_key_der().ok(),
            PublicKey::Rsa(k) => rsa::pkcs8::EncodePublicKey::to_public_key_der(k.as_ref()).ok(),
            PublicKey::Ed25519(k) => {
                let mut d = vec![
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ];
                d.extend_from_slice(k.as_bytes());
                return d;
            }
        };
        der.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// Parses a PEM `PUBLIC KEY`.
    pub fn from_pem(pem: &str, what: &'static str) -> Result<Self, SigstoreError> {
        let der = pem_decode(pem, "PUBLIC KEY").ok_or(SigstoreError::PublicKey(what))?;
        Self::from_spki_der(&der, what)
    }

    /// The default hash for signatures with this key (SHA-384 for P-384, else SHA-256).
    pub fn default_hash(&self) -> HashAlg {
        match self {
            PublicKey::P384(_) => HashAlg::Sha384,
            _ => HashAlg::Sha256,
        }
    }

    /// Verifies `sig` (ASN.1 DER for ECDSA, raw 64 bytes for Ed25519, the modulus-sized integer for RSA)
    /// over `msg`; ECDSA and RSA hash `msg` with `hash`. RSA accepts PKCS#1 v1.5 or PSS.
    pub fn verify(&self, msg: &[u8], sig: &[u8], hash: HashAlg) -> bool {
        match self {
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .map(|s| k.verify_strict(msg, &s).is_ok())
                .unwrap_or(false),
            _ => self.verify_prehash(&hash.digest(msg), sig),
        }
    }

    /// Verifies an ECDSA DER or RSA (PKCS#1 v1.5 or PSS) signature over a precomputed digest (false
    /// for Ed25519). The RSA hash is inferred from the digest length (SHA-256/384/512).
    pub fn verify_prehash(&self, digest: &[u8], sig: &[u8]) -> bool {
        if let PublicKey::Rsa(_) = self {
            return self.verify_rsa_prehash(digest, sig, RsaPadding::Pkcs1v15)
                || self.verify_rsa_prehash(digest, sig, RsaPadding::Pss);
        }
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
            PublicKey::Ed25519(_) | PublicKey::Rsa(_) => false,
        }
    }

    /// Verifies an RSA signature with exactly `padding` over a SHA-256/384/512 digest (false for other
    /// keys, other digest lengths, or a signature that is not modulus-sized).
    pub fn verify_rsa_prehash(&self, digest: &[u8], sig: &[u8], padding: RsaPadding) -> bool {
        let (PublicKey::Rsa(k), Some(h)) = (self, HashAlg::from_len(digest.len())) else {
            return false;
        };
        use rsa::traits::PublicKeyParts as _;
        if sig.len() != k.size() {
            return false;
        }
        let r = match (padding, h) {
            (RsaPadding::Pkcs1v15, HashAlg::Sha256) => {
                k.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), digest, sig)
            }
            (RsaPadding::Pkcs1v15, HashAlg::Sha384) => {
                k.verify(rsa::Pkcs1v15Sign::new::<Sha384>(), digest, sig)
            }
            (RsaPadding::Pkcs1v15, HashAlg::Sha512) => {
                k.verify(rsa::Pkcs1v15Sign::new::<Sha512>(), digest, sig)
            }
            (RsaPadding::Pss, HashAlg::Sha256) => k.verify(pss_auto::<Sha256>(), digest, sig),
            (RsaPadding::Pss, HashAlg::Sha384) => k.verify(pss_auto::<Sha384>(), digest, sig),
            (RsaPadding::Pss, HashAlg::Sha512) => k.verify(pss_auto::<Sha512>(), digest, sig),
        };
        r.is_ok()
    }
}

/// PSS verification with the salt length detected from the encoded message (Go's
/// `PSSSaltLengthAuto`, which Sigstore's Go verifiers use).
fn pss_auto<D: sha2::Digest>() -> rsa::Pss<D> {
    let mut p = rsa::Pss::<D>::new();
    p.salt_len = None;
    p
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
