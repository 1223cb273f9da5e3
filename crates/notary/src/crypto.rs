//! Keys and signature algorithms of the Notary Project: RSA-PSS (PS256/384/512 for RSA 2048/3072/4096)
//! and ECDSA (ES256/384/512 for P-256/384/521), derived from the leaf key; plus the certificate and
//! CMS signature algorithms (PKCS#1 v1.5, PSS, ECDSA with SHA-2) needed to check chains and timestamps.

use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use spki::DecodePublicKey as _;

use crate::error::NotaryError;

/// A SHA-2 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    /// Hashes `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// From a hash algorithm OID.
    pub fn from_oid(oid: &str) -> Option<Self> {
        match oid {
            "2.16.840.1.101.3.4.2.1" => Some(Hash::Sha256),
            "2.16.840.1.101.3.4.2.2" => Some(Hash::Sha384),
            "2.16.840.1.101.3.4.2.3" => Some(Hash::Sha512),
            _ => None,
        }
    }

    /// The hash algorithm OID.
    pub fn oid(self) -> &'static str {
        match self {
            Hash::Sha256 => "2.16.840.1.101.3.4.2.1",
            Hash::Sha384 => "2.16.840.1.101.3.4.2.2",
            Hash::Sha512 => "2.16.840.1.101.3.4.2.3",
        }
    }
}

/// A Notary signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PSS with SHA-256 (RSA 2048).
    Ps256,
    /// RSASSA-PSS with SHA-384 (RSA 3072).
    Ps384,
    /// RSASSA-PSS with SHA-512 (RSA 4096).
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
}

impl SignatureAlgorithm {
    /// The JWS `alg` name.
    pub fn jws_name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    /// From a JWS `alg` name.
    pub fn from_jws(name: &str) -> Option<Self> {
        Some(match name {
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "ES512" => Self::Es512,
            _ => return None,
        })
    }

    /// The COSE algorithm value.
    pub fn cose_value(self) -> i64 {
        match self {
            Self::Ps256 => -37,
            Self::Ps384 => -38,
            Self::Ps512 => -39,
            Self::Es256 => -7,
            Self::Es384 => -35,
            Self::Es512 => -36,
        }
    }

    /// From a COSE algorithm value.
    pub fn from_cose(v: i64) -> Option<Self> {
        Some(match v {
            -37 => Self::Ps256,
            -38 => Self::Ps384,
            -39 => Self::Ps512,
            -7 => Self::Es256,
            -35 => Self::Es384,
            -36 => Self::Es512,
            _ => return None,
        })
    }

    /// The hash the algorithm uses (also the timestamp imprint hash).
    pub fn hash(self) -> Hash {
        match self {
            Self::Ps256 | Self::Es256 => Hash::Sha256,
            Self::Ps384 | Self::Es384 => Hash::Sha384,
            Self::Ps512 | Self::Es512 => Hash::Sha512,
        }
    }
}

/// A public key of a supported type.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// RSA.
    Rsa(Box<rsa::PublicKey>),
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// ECDSA P-521.
    P521(p521::ecdsa::VerifyingKey),
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_EC: &str = "1.2.840.10045.2.1";

impl PublicKey {
    /// Parses a SubjectPublicKeyInfo (RSA, or EC on P-256/384/521).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, NotaryError> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| NotaryError::Key(format!("SubjectPublicKeyInfo: {e}")))?;
        let alg = info.algorithm.oid.to_string();
        let bits = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| NotaryError::Key("public key bit string is not octet aligned".into()))?;
        match alg.as_str() {
            OID_RSA => rsa::PublicKey::from_public_key_der(der)
                .map(|k| PublicKey::Rsa(Box::new(k)))
                .map_err(|e| NotaryError::Key(format!("RSA public key: {e}"))),
            OID_EC => {
                let curve = info
                    .algorithm
                    .parameters
                    .and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok())
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                let bad = |e: signature::Error| NotaryError::Key(format!("EC public key: {e}"));
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P256)
                        .map_err(bad),
                    "1.3.132.0.34" => p384::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P384)
                        .map_err(bad),
                    "1.3.132.0.35" => p521::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P521)
                        .map_err(bad),
                    other => Err(NotaryError::Key(format!(
                        "unsupported EC curve {other:?} (P-256, P-384 and P-521 are supported)"
                    ))),
                }
            }
            other => Err(NotaryError::Key(format!(
                "unsupported public key algorithm {other} (RSA and ECDSA are supported)"
            ))),
        }
    }

    /// A description like `RSA-2048` or `EC P-256`.
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa(k) => format!("RSA-{}", k.size() * 8),
            PublicKey::P256(_) => "EC P-256".into(),
            PublicKey::P384(_) => "EC P-384".into(),
            PublicKey::P521(_) => "EC P-521".into(),
        }
    }

    /// The Notary algorithm for this key: RSA 2048/3072/4096 → PS256/384/512, P-256/384/521 →
    /// ES256/384/512; other sizes are refused as notation does.
    pub fn notary_algorithm(&self) -> Result<SignatureAlgorithm, NotaryError> {
        match self {
            PublicKey::Rsa(k) => match k.size() * 8 {
                2048 => Ok(SignatureAlgorithm::Ps256),
                3072 => Ok(SignatureAlgorithm::Ps384),
                4096 => Ok(SignatureAlgorithm::Ps512),
                n => Err(NotaryError::Key(format!(
                    "RSA key size {n} bits is not supported (2048, 3072 or 4096)"
                ))),
            },
            PublicKey::P256(_) => Ok(SignatureAlgorithm::Es256),
            PublicKey::P384(_) => Ok(SignatureAlgorithm::Es384),
            PublicKey::P521(_) => Ok(SignatureAlgorithm::Es512),
        }
    }

    /// Verifies an envelope signature: RSASSA-PSS (salt length detected) or raw `r‖s` ECDSA.
    pub fn verify_envelope(&self, alg: SignatureAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
        let digest = alg.hash().digest(msg);
        match (self, alg) {
            (PublicKey::Rsa(k), SignatureAlgorithm::Ps256) => pss::<Sha256>(k, &digest, sig),
            (PublicKey::Rsa(k), SignatureAlgorithm::Ps384) => pss::<Sha384>(k, &digest, sig),
            (PublicKey::Rsa(k), SignatureAlgorithm::Ps512) => pss::<Sha512>(k, &digest, sig),
            (PublicKey::P256(k), SignatureAlgorithm::Es256) => {
                p256::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok())
            }
            (PublicKey::P384(k), SignatureAlgorithm::Es384) => {
                p384::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok())
            }
            (PublicKey::P521(k), SignatureAlgorithm::Es512) => {
                p521::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok())
            }
            _ => false,
        }
    }

    /// Verifies an X.509/CMS signature. `sig_alg` is the signature AlgorithmIdentifier OID;
    /// `digest_hash` the CMS digest algorithm (used with plain `rsaEncryption`).
    pub fn verify_pkix(
        &self,
        sig_alg: &str,
        digest_hash: Option<Hash>,
        msg: &[u8],
        sig: &[u8],
    ) -> bool {
        let hash = match sig_alg {
            "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => Some(Hash::Sha256),
            "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Some(Hash::Sha384),
            "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Some(Hash::Sha512),
            OID_RSA | OID_RSA_PSS => digest_hash,
            _ => None,
        };
        let Some(hash) = hash else {
            return false;
        };
        let digest = hash.digest(msg);
        match self {
            PublicKey::Rsa(k) if sig_alg == OID_RSA_PSS => {
                // Parameters name the hash; try the three SHA-2 hashes with salt detection.
                [Hash::Sha256, Hash::Sha384, Hash::Sha512].iter().any(|h| {
                    let d = h.digest(msg);
                    match h {
                        Hash::Sha256 => pss::<Sha256>(k, &d, sig),
                        Hash::Sha384 => pss::<Sha384>(k, &d, sig),
                        Hash::Sha512 => pss::<Sha512>(k, &d, sig),
                    }
                })
            }
            PublicKey::Rsa(k) => {
                let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig) else {
                    return false;
                };
                match hash {
                    Hash::Sha256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new((**k).clone())
                        .verify_prehash(&digest, &s)
                        .is_ok(),
                    Hash::Sha384 => rsa::pkcs1v15::VerifyingKey::<Sha384>::new((**k).clone())
                        .verify_prehash(&digest, &s)
                        .is_ok(),
                    Hash::Sha512 => rsa::pkcs1v15::VerifyingKey::<Sha512>::new((**k).clone())
                        .verify_prehash(&digest, &s)
                        .is_ok(),
                }
            }
            PublicKey::P256(k) => p256::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            PublicKey::P384(k) => p384::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            PublicKey::P521(k) => p521::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
        }
    }
}

fn pss<D>(k: &rsa::PublicKey, digest: &[u8], sig: &[u8]) -> bool
where
    D: sha2::Digest + sha2::digest::FixedOutputReset,
{
    let Ok(s) = rsa::pss::Signature::try_from(sig) else {
        return false;
    };
    rsa::pss::VerifyingKey::<D>::new_with_auto_salt_len(k.clone())
        .verify_prehash(digest, &s)
        .is_ok()
}

/// A signing key.
#[derive(Clone)]
pub enum PrivateKey {
    /// RSA (signs RSASSA-PSS, salt length = hash length).
    Rsa(Box<rsa::PrivateKey>),
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::SigningKey),
    /// ECDSA P-521.
    P521(p521::ecdsa::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.public_key().describe())
    }
}

impl PrivateKey {
    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#1
    /// (`RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, NotaryError> {
        use pkcs8::DecodePrivateKey as _;
        let (label, doc) = der::SecretDocument::from_pem(pem)
            .map_err(|e| NotaryError::Key(format!("not a PEM private key: {e}")))?;
        let der = doc.as_bytes();
        match label {
            "PRIVATE KEY" => {
                if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
                    return Ok(PrivateKey::P256(k));
                }
                if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_der(der) {
                    return Ok(PrivateKey::P384(k));
                }
                if let Ok(k) = p521::ecdsa::SigningKey::from_pkcs8_der(der) {
                    return Ok(PrivateKey::P521(k));
                }
                rsa::PrivateKey::from_pkcs8_der(der)
                    .map(|k| PrivateKey::Rsa(Box::new(k)))
                    .map_err(|e| NotaryError::Key(format!("unsupported PKCS#8 key: {e}")))
            }
            "EC PRIVATE KEY" => {
                if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
                    return Ok(PrivateKey::P256(k.into()));
                }
                if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
                    return Ok(PrivateKey::P384(k.into()));
                }
                p521::SecretKey::from_sec1_der(der)
                    .map(|k| PrivateKey::P521(k.into()))
                    .map_err(|e| NotaryError::Key(format!("unsupported EC key: {e}")))
            }
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey as _;
                rsa::PrivateKey::from_pkcs1_der(der)
                    .map(|k| PrivateKey::Rsa(Box::new(k)))
                    .map_err(|e| NotaryError::Key(format!("RSA key: {e}")))
            }
            other => Err(NotaryError::Key(format!(
                "unsupported PEM block {other:?} (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
            ))),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(Box::new(k.to_public_key())),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::P521(k) => PublicKey::P521(*k.verifying_key()),
        }
    }

    /// Signs `msg` with `alg` (which must fit the key): PSS with salt = hash length, or raw `r‖s`.
    pub fn sign(&self, alg: SignatureAlgorithm, msg: &[u8]) -> Result<Vec<u8>, NotaryError> {
        let want = self.public_key().notary_algorithm()?;
        if want != alg {
            return Err(NotaryError::Key(format!(
                "algorithm {} does not match the key ({})",
                alg.jws_name(),
                want.jws_name()
            )));
        }
        let digest = alg.hash().digest(msg);
        let err = |e: signature::Error| NotaryError::Sign(e.to_string());
        Ok(match self {
            PrivateKey::Rsa(k) => {
                let k = (**k).clone();
                let s: rsa::pss::Signature = match alg {
                    SignatureAlgorithm::Ps256 => {
                        rsa::pss::SigningKey::<Sha256>::new(k).sign_prehash(&digest)
                    }
                    SignatureAlgorithm::Ps384 => {
                        rsa::pss::SigningKey::<Sha384>::new(k).sign_prehash(&digest)
                    }
                    _ => rsa::pss::SigningKey::<Sha512>::new(k).sign_prehash(&digest),
                }
                .map_err(err)?;
                Box::<[u8]>::from(s).to_vec()
            }
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(&digest).map_err(err)?;
                s.to_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(&digest).map_err(err)?;
                s.to_bytes().to_vec()
            }
            PrivateKey::P521(k) => {
                let s: p521::ecdsa::Signature = k.sign_prehash(&digest).map_err(err)?;
                s.to_bytes().to_vec()
            }
        })
    }
}
