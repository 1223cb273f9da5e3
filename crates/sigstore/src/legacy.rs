//! Building blocks for cosign's legacy `.sig`/`.att` layers (sigstore-cosign notes §1.5, §1.6, §4): the
//! Rekor SET bundle of the `dev.sigstore.cosign/bundle` annotation, the RFC 3161 timestamp of
//! `dev.sigstore.cosign/rfc3161timestamp`, and certificate checks (keyless identity against a trusted root,
//! or a pinned certificate with an optional explicit chain). The same code as [`crate::verify_bundle`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use der::Encode as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::bundle::TlogEntry;
use crate::trust::TrustedRoot;
use crate::verify::{CertificateSummary, Policy, check_keyless, spki_of};
use crate::{PublicKey, SigstoreError, VerifyFailure, cert, tlog, tsa};

/// The `dev.sigstore.cosign/bundle` annotation:
/// `{"SignedEntryTimestamp": b64, "Payload": {"body": b64, "integratedTime", "logIndex", "logID": hex}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekorBundle {
    /// The signed entry timestamp (DER ECDSA signature).
    pub signed_entry_timestamp: Vec<u8>,
    /// The canonicalized Rekor entry (decoded `body`).
    pub body: Vec<u8>,
    /// Integration time (Unix seconds).
    pub integrated_time: i64,
    /// Log index.
    pub log_index: i64,
    /// Log ID (SHA-256 of the Rekor key's SPKI).
    pub log_id: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRekorBundle {
    signed_entry_timestamp: String,
    payload: RawRekorPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

impl RekorBundle {
    /// Parses the annotation value.
    pub fn from_json(json: &[u8]) -> Result<Self, SigstoreError> {
        let raw: RawRekorBundle =
            serde_json::from_slice(json).map_err(|e| SigstoreError::Json {
                what: "Rekor bundle",
                msg: e.to_string(),
            })?;
        Ok(Self {
            signed_entry_timestamp: STANDARD
                .decode(raw.signed_entry_timestamp.as_bytes())
                .map_err(|_| SigstoreError::Base64("SignedEntryTimestamp"))?,
            body: STANDARD
                .decode(raw.payload.body.as_bytes())
                .map_err(|_| SigstoreError::Base64("Payload.body"))?,
            integrated_time: raw.payload.integrated_time,
            log_index: raw.payload.log_index,
            log_id: unhex(&raw.payload.log_id)
                .ok_or(SigstoreError::MissingField("Payload.logID"))?,
        })
    }
}

/// What a legacy layer signed.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// `.sig`: the raw payload bytes (the tlog body holds their SHA-256).
    Payload(&'a [u8]),
    /// `.att`: a DSSE envelope's (payload, payloadType) (the tlog body is a `dsse` entry).
    Dsse(&'a [u8], &'a str),
}

/// The key the signature was verified with, as it must appear in the tlog body.
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    /// A certificate (DER).
    Certificate(&'a [u8]),
    /// A public key.
    Key(&'a PublicKey),
}

/// Verifies a Rekor SET bundle for `signature` over `signed` by `signer`: the SET with the trusted Rekor key
/// selected by `logID` (valid at `integratedTime`), and the body (kind `hashedrekord`/`rekord`/`dsse`
/// 0.0.1): digest, signature and key/certificate must be ours. Returns the verified integrated time.
pub fn verify_rekor_bundle(
    bundle: &RekorBundle,
    signature: &[u8],
    signed: Signed<'_>,
    signer: Signer<'_>,
    root: &TrustedRoot,
) -> Result<i64, VerifyFailure> {
    let body: serde_json::Value = serde_json::from_slice(&bundle.body)
        .map_err(|_| VerifyFailure::BodyMismatch("body is not JSON".into()))?;
    let field = |k: &str| {
        body.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let entry = TlogEntry {
        log_index: bundle.log_index,
        log_id: bundle.log_id.clone(),
        kind: field("kind"),
        version: field("apiVersion"),
        integrated_time: bundle.integrated_time,
        signed_entry_timestamp: Some(bundle.signed_entry_timestamp.clone()),
        inclusion_proof: None,
        canonicalized_body: bundle.body.clone(),
    };
    let digest: Option<[u8; 32]> = match signed {
        Signed::Payload(p) => Some(Sha256::digest(p).into()),
        Signed::Dsse(..) => None,
    };
    let spki;
    let (key_der, is_cert) = match signer {
        Signer::Certificate(c) => (c, true),
        Signer::Key(k) => {
            spki = spki_of(k);
            (spki.as_slice(), false)
        }
    };
    let expect = tlog::Expect {
        signature,
        key_der,
        is_cert,
        artifact_sha256: digest.as_ref().map(|d| d.as_slice()),
        dsse: match signed {
            Signed::Dsse(p, t) => Some((p, t)),
            Signed::Payload(_) => None,
        },
    };
    tlog::verify_body(&entry, &expect)?;
    let (t, _) = tlog::verify_set(&entry, &root.tlogs)?;
    Ok(t)
}

/// Verifies a DER `TimeStampResp` whose message imprint is the hash of `signed_bytes` (the raw signature,
/// or for attestations the envelope) against the root's timestamp authorities; returns genTime.
pub fn verify_rfc3161(
    response: &[u8],
    signed_bytes: &[u8],
    root: &TrustedRoot,
) -> Result<i64, VerifyFailure> {
    if root.timestamp_authorities.is_empty() {
        return Err(VerifyFailure::TimestampInvalid(
            "the trusted root has no timestamp authorities".into(),
        ));
    }
    tsa::verify(response, signed_bytes, &root.timestamp_authorities)
}

/// The SubjectPublicKeyInfo (DER) of a DER certificate.
pub fn certificate_spki(der: &[u8]) -> Result<Vec<u8>, SigstoreError> {
    cert::parse(der)
        .ok()
        .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
        .ok_or(SigstoreError::Certificate("signing certificate"))
}

/// Checks a signing certificate (`leaf`, DER) at the trusted `times`.
///
/// - [`Policy::Identity`]: keyless — `root` is required; the path must lead to a trusted Fulcio CA valid at
///   every time (the `chain` from the layer is ignored: only the root's CA material is trusted), plus
///   leaf usage, SCT (when `require_sct`), SAN identity and OIDC issuer. At least one time is required.
/// - [`Policy::Certificate`]: the leaf must equal the pinned certificate; when `chain` is non-empty
///   (leaf's issuer first, root last) every link must verify and the last certificate be self-signed, all
///   valid at every time; with an empty chain only the leaf's validity is checked.
/// - [`Policy::PublicKey`] is rejected (not a certificate policy).
pub fn verify_certificate(
    leaf: &[u8],
    chain: &[Vec<u8>],
    policy: &Policy,
    root: Option<&TrustedRoot>,
    times: &[i64],
    require_sct: bool,
) -> Result<CertificateSummary, VerifyFailure> {
    let parsed = cert::parse(leaf)
        .map_err(|_| VerifyFailure::ChainInvalid("unparseable leaf certificate".into()))?;
    cert::check_critical(&parsed)?;
    let summary = CertificateSummary {
        san: cert::san_identities(&parsed),
        issuer: cert::oidc_issuer(&parsed),
    };
    match policy {
        Policy::Identity { subject, issuer } => {
            let root = root.ok_or_else(|| {
                VerifyFailure::PolicyInvalid("keyless verification needs a trusted root".into())
            })?;
            check_keyless(
                leaf,
                &parsed,
                &summary,
                root,
                times,
                subject,
                issuer,
                require_sct,
            )?;
        }
        Policy::Certificate(pinned) => {
            if pinned.as_slice() != leaf {
                return Err(VerifyFailure::ChainInvalid(
                    "signing certificate differs from the given certificate".into(),
                ));
            }
            if let Some(first_der) = chain.first() {
                let first = cert::parse(first_der).map_err(|_| {
                    VerifyFailure::ChainInvalid("unparseable chain certificate".into())
                })?;
                if !cert::signed_by(leaf, &parsed, &first) {
                    return Err(VerifyFailure::ChainInvalid(
                        "chain order: the first certificate of the chain must be the leaf's issuer \
                         (order: issuer first, root last)"
                            .into(),
                    ));
                }
                cert::verify_path(leaf, &parsed, chain, times)?;
            } else {
                for &t in times {
                    if !cert::valid_at(&parsed, t) {
                        return Err(VerifyFailure::CertificateExpiredAtSigningTime(t));
                    }
                }
            }
        }
        Policy::PublicKey(_) => {
            return Err(VerifyFailure::PolicyInvalid(
                "a public-key policy has no certificate to check".into(),
            ));
        }
    }
    Ok(summary)
}

/// A DER certificate's validity window `(notBefore, notAfter)` in Unix seconds.
pub fn certificate_validity(der: &[u8]) -> Result<(i64, i64), SigstoreError> {
    let parsed = cert::parse(der).map_err(|_| SigstoreError::Certificate("certificate"))?;
    Ok(cert::validity(&parsed))
}

/// Checks a given (pinned) signing certificate against the Fulcio CAs of `root`, as cosign does for
/// `verify --certificate C --trusted-root R` without `--certificate-chain`: code-signing usage, a
/// path to one of the root's certificate authorities valid at every time in `times`, and an embedded
/// SCT from one of its CT logs when `require_sct`. No identity is required; the caller has already
/// matched the certificate against the pinned one.
pub fn verify_certificate_with_root(
    leaf: &[u8],
    root: &TrustedRoot,
    times: &[i64],
    require_sct: bool,
) -> Result<CertificateSummary, VerifyFailure> {
    let parsed = cert::parse(leaf)
        .map_err(|_| VerifyFailure::ChainInvalid("unparseable leaf certificate".into()))?;
    cert::check_critical(&parsed)?;
    crate::verify::chain_to_fulcio(leaf, &parsed, root, times, require_sct)?;
    Ok(CertificateSummary {
        san: cert::san_identities(&parsed),
        issuer: cert::oidc_issuer(&parsed),
    })
}
