//! Cosign key files: the scrypt + NaCl-secretbox encrypted private key (`ENCRYPTED SIGSTORE PRIVATE KEY`,
//! legacy `ENCRYPTED COSIGN PRIVATE KEY`), plain PEM private keys (PKCS#8, SEC1, PKCS#1), and SPKI public
//! keys, for ECDSA P-256/P-384, RSA 2048–4096 bits (PKCS#1 v1.5, SHA-256) and Ed25519.
//!
//! Signatures follow cosign: ECDSA is ASN.1/DER over SHA-256 of the message (for every curve, as
//! cosign's `LoadSignerVerifier(key, SHA256)`), RSA is PKCS#1 v1.5 with SHA-256 (PSS is also accepted on
//! verification; RSA verification is sigil-sigstore's, shared with bundles and certificates), Ed25519
//! is pure Ed25519.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use signature::Signer as _;
use signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use spki::{DecodePublicKey as _, EncodePublicKey as _};
use zeroize::Zeroizing;

use crate::error::CosignError;

/// PEM label of keys written by current cosign (and by sigil).
pub const SIGSTORE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of keys written by older cosign.
pub const COSIGN_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// scrypt log2(N) written by [`encrypt_private_key`] (N = 65536, cosign's default).
pub const WRITE_LOG_N: u8 = 16;

/// A parsed PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    /// The label (`PUBLIC KEY`, ...).
    pub label: String,
    /// The decoded body.
    pub der: Vec<u8>,
}

/// Parses the first PEM block of `text` (strict base64: canonical padding, no stray characters).
pub fn parse_pem(text: &str) -> Result<Pem, CosignError> {
    let mut lines = text.lines().map(str::trim_end);
    let label = loop {
        match lines.next() {
            Some(l) => {
                if let Some(rest) = l.strip_prefix("-----BEGIN ") {
                    break rest
                        .strip_suffix("-----")
                        .ok_or_else(|| CosignError::Pem("malformed BEGIN line".into()))?
                        .to_owned();
                }
                if !l.trim().is_empty() {
                    return Err(CosignError::Pem("text before the BEGIN line".into()));
                }
            }
            None => return Err(CosignError::Pem("no PEM block found".into())),
        }
    };
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for l in lines.by_ref() {
        if l == end {
            ended = true;
            break;
        }
        if l.contains(':') {
            return Err(CosignError::Pem("PEM headers are not supported".into()));
        }
        body.push_str(l.trim());
    }
    if !ended {
        return Err(CosignError::Pem(format!("missing {end:?} (truncated?)")));
    }
    let der = B64
        .decode(body.as_bytes())
        .map_err(|e| CosignError::Pem(format!("invalid base64 body: {e}")))?;
    if der.is_empty() {
        return Err(CosignError::Pem("empty PEM body".into()));
    }
    Ok(Pem { label, der })
}

/// Encodes a PEM block (64-column base64).
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[derive(Debug, Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

fn b64_field(what: &str, s: &str) -> Result<Vec<u8>, CosignError> {
    B64.decode(s.as_bytes())
        .map_err(|e| CosignError::EncryptedKey(format!("{what}: invalid base64: {e}")))
}

fn derive_key(password: &[u8], salt: &[u8], log_n: u8) -> Result<Zeroizing<[u8; 32]>, CosignError> {
    let params = scrypt::Params::new(log_n, 8, 1)
        .map_err(|e| CosignError::EncryptedKey(format!("scrypt parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, key.as_mut())
        .map_err(|e| CosignError::EncryptedKey(format!("scrypt: {e}")))?;
    Ok(key)
}

/// Decrypts the JSON body of an encrypted cosign key to its PKCS#8 DER plaintext.
pub fn decrypt_private_key(
    json: &[u8],
    password: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CosignError> {
    let env: EncryptedKey = serde_json::from_slice(json)
        .map_err(|e| CosignError::EncryptedKey(format!("not the expected JSON: {e}")))?;
    if env.kdf.name != "scrypt" {
        return Err(CosignError::EncryptedKey(format!(
            "unsupported kdf {:?}",
            env.kdf.name
        )));
    }
    if env.cipher.name != "nacl/secretbox" {
        return Err(CosignError::EncryptedKey(format!(
            "unsupported cipher {:?}",
            env.cipher.name
        )));
    }
    let log_n = match (env.kdf.params.n, env.kdf.params.r, env.kdf.params.p) {
        (32768, 8, 1) => 15,
        (65536, 8, 1) => 16,
        (131072, 8, 1) => 17,
        (n, r, p) => {
            return Err(CosignError::EncryptedKey(format!(
                "unsupported scrypt parameters N={n} r={r} p={p} (accepted: N=32768/65536/131072, r=8, p=1)"
            )));
        }
    };
    let salt = b64_field("salt", &env.kdf.salt)?;
    let nonce = b64_field("nonce", &env.cipher.nonce)?;
    let ciphertext = b64_field("ciphertext", &env.ciphertext)?;
    let nonce: [u8; 24] = nonce.as_slice().try_into().map_err(|_| {
        CosignError::EncryptedKey(format!("nonce is {} bytes, not 24", nonce.len()))
    })?;
    if ciphertext.len() < 16 {
        return Err(CosignError::EncryptedKey("ciphertext too short".into()));
    }
    let key = derive_key(password, &salt, log_n)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let plain = cipher
        .decrypt((&nonce).into(), ciphertext.as_slice())
        .map_err(|_| CosignError::WrongPassword)?;
    Ok(Zeroizing::new(plain))
}

/// Encrypts a PKCS#8 DER private key as cosign does (scrypt N=65536 r=8 p=1, 32-byte salt, secretbox
/// with a random 24-byte nonce); returns the PEM text (`ENCRYPTED SIGSTORE PRIVATE KEY`).
pub fn encrypt_private_key(pkcs8_der: &[u8], password: &[u8]) -> Result<String, CosignError> {
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut salt).map_err(|e| CosignError::Key(format!("random: {e}")))?;
    getrandom::fill(&mut nonce).map_err(|e| CosignError::Key(format!("random: {e}")))?;
    let key = derive_key(password, &salt, WRITE_LOG_N)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let ciphertext = cipher
        .encrypt((&nonce).into(), pkcs8_der)
        .map_err(|_| CosignError::Key("encryption failed".into()))?;
    let env = EncryptedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1 << WRITE_LOG_N,
                r: 8,
                p: 1,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(ciphertext),
    };
    let json = serde_json::to_vec(&env).map_err(|e| CosignError::Key(e.to_string()))?;
    Ok(encode_pem(SIGSTORE_KEY_LABEL, &json))
}

/// A private key able to sign like cosign.
#[derive(Clone)]
pub enum PrivateKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::SigningKey),
    /// RSA (PKCS#1 v1.5, SHA-256).
    Rsa(Box<rsa::PrivateKey>),
    /// Ed25519.
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.algorithm())
    }
}

impl PrivateKey {
    /// A fresh ECDSA P-256 key.
    pub fn generate_p256() -> Result<Self, CosignError> {
        for _ in 0..16 {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut())
                .map_err(|e| CosignError::Key(format!("random: {e}")))?;
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(bytes.as_ref()) {
                return Ok(Self::P256(k));
            }
        }
        Err(CosignError::Key("could not generate a key".into()))
    }

    /// Parses a PKCS#8 DER private key (v1 or v2).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CosignError> {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::P256(k));
        }
        if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::P384(k));
        }
        if let Ok(k) = rsa::PrivateKey::from_pkcs8_der(der) {
            return Ok(Self::Rsa(Box::new(k)));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::Ed25519(Box::new(k)));
        }
        if der.starts_with(&[0x30])
            && der.get(2..5) == Some(&[0x02, 0x01, 0x01][..])
            && der.get(5) == Some(&0x04)
        {
            return Err(CosignError::Key(
                "the plaintext is a SEC1 EC private key, not PKCS#8 (cosign rejects this format)"
                    .into(),
            ));
        }
        Err(CosignError::Key(
            "not a PKCS#8 ECDSA P-256/P-384, RSA or Ed25519 private key".into(),
        ))
    }

    /// Parses a key file: encrypted cosign/sigstore key (password from `password`) or a plain PEM private
    /// key (`PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`).
    pub fn from_pem(
        text: &str,
        password: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, CosignError>,
    ) -> Result<Self, CosignError> {
        let pem = parse_pem(text)?;
        match pem.label.as_str() {
            SIGSTORE_KEY_LABEL | COSIGN_KEY_LABEL => {
                let pw = password()?;
                let plain = decrypt_private_key(&pem.der, &pw)?;
                Self::from_pkcs8_der(&plain)
            }
            "PRIVATE KEY" => Self::from_pkcs8_der(&pem.der),
            "EC PRIVATE KEY" => {
                if let Ok(k) = p256::SecretKey::from_sec1_der(&pem.der) {
                    return Ok(Self::P256(k.into()));
                }
                if let Ok(k) = p384::SecretKey::from_sec1_der(&pem.der) {
                    return Ok(Self::P384(k.into()));
                }
                Err(CosignError::Key(
                    "not a P-256/P-384 SEC1 EC private key".into(),
                ))
            }
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey as _;
                rsa::PrivateKey::from_pkcs1_der(&pem.der)
                    .map(|k| Self::Rsa(Box::new(k)))
                    .map_err(|e| CosignError::Key(format!("PKCS#1 RSA private key: {e}")))
            }
            other => Err(CosignError::PemLabel {
                found: other.to_owned(),
                expected: "an (encrypted) private key",
            }),
        }
    }

    /// Reads a key file, taking the password from `$COSIGN_PASSWORD` or a terminal prompt.
    pub fn load(path: &Path) -> Result<Self, CosignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CosignError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&text, || {
            password_from_env_or_prompt("Enter password for private key: ")
        })
    }

    /// The algorithm, for messages.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::P256(_) => "ECDSA P-256",
            Self::P384(_) => "ECDSA P-384",
            Self::Rsa(_) => "RSA",
            Self::Ed25519(_) => "Ed25519",
        }
    }

    /// PKCS#8 DER of the key.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CosignError> {
        let doc = match self {
            Self::P256(k) => k.to_pkcs8_der(),
            Self::P384(k) => k.to_pkcs8_der(),
            Self::Rsa(k) => k.to_pkcs8_der(),
            Self::Ed25519(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| CosignError::Key(format!("PKCS#8 encoding: {e}")))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::P256(k) => PublicKey::P256(*k.verifying_key()),
            Self::P384(k) => PublicKey::P384(*k.verifying_key()),
            Self::Rsa(k) => PublicKey::Rsa(Box::new(k.to_public_key())),
            Self::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs `message` as cosign does (see the module docs).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CosignError> {
        let digest = Sha256::digest(message);
        let err = |e: signature::Error| CosignError::Sign(e.to_string());
        Ok(match self {
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(&digest).map_err(err)?;
                s.to_der().as_bytes().to_vec()
            }
            Self::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(&digest).map_err(err)?;
                s.to_der().as_bytes().to_vec()
            }
            Self::Rsa(k) => {
                let sk = rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone());
                let s: rsa::pkcs1v15::Signature = sk.try_sign(message).map_err(err)?;
                Box::<[u8]>::from(s).to_vec()
            }
            Self::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
        })
    }
}

/// A public key that verifies cosign signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// RSA.
    Rsa(Box<rsa::PublicKey>),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Parses SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CosignError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::P384(k));
        }
        if let Ok(k) = rsa::PublicKey::from_public_key_der(der) {
            use rsa::traits::PublicKeyParts as _;
            let bits = k.size() * 8;
            let (min, max) = (
                sigil_sigstore::crypto::RSA_MIN_BITS,
                sigil_sigstore::crypto::RSA_MAX_BITS,
            );
            if !(min..=max).contains(&bits) {
                return Err(CosignError::Key(format!(
                    "RSA key of {bits} bits: only {min} to {max} bits are supported"
                )));
            }
            return Ok(Self::Rsa(Box::new(k)));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::Ed25519(k));
        }
        Err(CosignError::Key(
            "not an ECDSA P-256/P-384, RSA or Ed25519 SubjectPublicKeyInfo".into(),
        ))
    }

    /// Parses a `PUBLIC KEY` PEM block.
    pub fn from_pem(text: &str) -> Result<Self, CosignError> {
        let pem = parse_pem(text)?;
        if pem.label != "PUBLIC KEY" {
            return Err(CosignError::PemLabel {
                found: pem.label,
                expected: "PUBLIC KEY",
            });
        }
        Self::from_spki_der(&pem.der)
    }

    /// Reads a `PUBLIC KEY` PEM file.
    pub fn load(path: &Path) -> Result<Self, CosignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CosignError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&text).map_err(|e| match e {
            CosignError::Io { .. } => e,
            other => CosignError::Key(format!("{}: {other}", path.display())),
        })
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, CosignError> {
        let doc = match self {
            Self::P256(k) => k.to_public_key_der(),
            Self::P384(k) => k.to_public_key_der(),
            Self::Rsa(k) => k.to_public_key_der(),
            Self::Ed25519(k) => k.to_public_key_der(),
        }
        .map_err(|e| CosignError::Key(format!("SPKI encoding: {e}")))?;
        Ok(doc.as_bytes().to_vec())
    }

    /// `PUBLIC KEY` PEM text.
    pub fn to_pem(&self) -> Result<String, CosignError> {
        Ok(encode_pem("PUBLIC KEY", &self.to_spki_der()?))
    }

    /// Whether `signature` is a valid cosign signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let digest = Sha256::digest(message);
        match self {
            Self::P256(k) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            Self::P384(k) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            // One RSA verifier for keys, bundles and certificates: sigil-sigstore's (PKCS#1 v1.5,
            // then PSS, over SHA-256; 2048–4096-bit moduli).
            Self::Rsa(k) => sigil_sigstore::PublicKey::Rsa(k.clone()).verify(
                message,
                signature,
                sigil_sigstore::crypto::HashAlg::Sha256,
            ),
            Self::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(message, &s).is_ok()),
        }
    }
}

/// The password for an encrypted key: `$COSIGN_PASSWORD` when set (may be empty), else a prompt on the
/// terminal (echo off); [`CosignError::NoPassword`] when stdin is not a terminal.
pub fn password_from_env_or_prompt(prompt: &str) -> Result<Zeroizing<Vec<u8>>, CosignError> {
    if let Some(p) = std::env::var_os("COSIGN_PASSWORD") {
        return Ok(Zeroizing::new(p.into_encoded_bytes()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CosignError::NoPassword);
    }
    read_password(prompt)
}

fn read_password(prompt: &str) -> Result<Zeroizing<Vec<u8>>, CosignError> {
    let io = |source| CosignError::Io {
        path: "terminal".into(),
        source,
    };
    eprint!("{prompt}");
    std::io::stderr().flush().map_err(io)?;
    let echo_off = std::process::Command::new("stty")
        .arg("-echo")
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success());
    let mut line = Zeroizing::new(String::new());
    let r = std::io::stdin().read_line(&mut line);
    if echo_off {
        let _ = std::process::Command::new("stty")
            .arg("echo")
            .stdin(std::process::Stdio::inherit())
            .status();
        eprintln!();
    }
    r.map_err(io)?;
    let pw = line.trim_end_matches(['\n', '\r']);
    Ok(Zeroizing::new(pw.as_bytes().to_vec()))
}

/// Like [`password_from_env_or_prompt`], but asks twice when prompting (for new keys).
pub fn new_password() -> Result<Zeroizing<Vec<u8>>, CosignError> {
    if let Some(p) = std::env::var_os("COSIGN_PASSWORD") {
        return Ok(Zeroizing::new(p.into_encoded_bytes()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CosignError::NoPassword);
    }
    let a = read_password("Enter password for private key: ")?;
    let b = read_password("Enter password for private key again: ")?;
    if a != b {
        return Err(CosignError::Invalid("passwords do not match".into()));
    }
    Ok(a)
}

/// Writes `prefix.key` (encrypted, mode 0600) and `prefix.pub` atomically; refuses to overwrite unless
/// `force`. Returns the public key.
pub fn generate_key_pair(
    prefix: &str,
    password: &[u8],
    force: bool,
) -> Result<PublicKey, CosignError> {
    let key_path = format!("{prefix}.key");
    let pub_path = format!("{prefix}.pub");
    if !force {
        for p in [&key_path, &pub_path] {
            if Path::new(p).exists() {
                return Err(CosignError::Exists(p.clone()));
            }
        }
    }
    let key = PrivateKey::generate_p256()?;
    let pem = encrypt_private_key(&key.to_pkcs8_der()?, password)?;
    let public = key.public_key();
    write_atomic(Path::new(&key_path), pem.as_bytes(), 0o600)?;
    write_atomic(Path::new(&pub_path), public.to_pem()?.as_bytes(), 0o644)?;
    Ok(public)
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CosignError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| CosignError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| CosignError::Key(format!("random: {e}")))?;
    let tmp = dir.join(format!(
        ".{name}.tmp-{}",
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
