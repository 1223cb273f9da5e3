//! Sigstore bundle JSON (`sigstore_bundle.proto`, media types v0.1–v0.3; proto3 JSON: int64 as strings,
//! bytes as standard base64).

use serde::Deserialize;
use serde_json::Value;

use crate::SigstoreError;
use crate::trust::{RawBytes, b64};

/// Key material carried by the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerificationMaterial {
    /// v0.3 `certificate`: the leaf (DER).
    Certificate(Vec<u8>),
    /// v0.1/v0.2 `x509CertificateChain`: leaf first (DER).
    Chain(Vec<Vec<u8>>),
    /// `publicKey.hint` (keyed signing; the key comes from the policy).
    PublicKey {
        /// The hint string.
        hint: String,
    },
}

impl VerificationMaterial {
    /// The leaf certificate, if any.
    pub fn leaf(&self) -> Option<&[u8]> {
        match self {
            VerificationMaterial::Certificate(c) => Some(c),
            VerificationMaterial::Chain(c) => c.first().map(Vec::as_slice),
            VerificationMaterial::PublicKey { .. } => None,
        }
    }
}

/// RFC 6962 inclusion proof with its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the entry in the (shard) tree.
    pub log_index: u64,
    /// Root hash.
    pub root_hash: Vec<u8>,
    /// Tree size.
    pub tree_size: u64,
    /// Audit path.
    pub hashes: Vec<Vec<u8>>,
    /// Signed note text (`checkpoint.envelope`).
    pub checkpoint: Option<String>,
}

/// One Rekor entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    /// Global log index (used in the SET).
    pub log_index: i64,
    /// `logId.keyId`.
    pub log_id: Vec<u8>,
    /// `kindVersion.kind`.
    pub kind: String,
    /// `kindVersion.version`.
    pub version: String,
    /// `integratedTime` (0 when absent, e.g. Rekor v2).
    pub integrated_time: i64,
    /// `inclusionPromise.signedEntryTimestamp`.
    pub signed_entry_timestamp: Option<Vec<u8>>,
    /// `inclusionProof`.
    pub inclusion_proof: Option<InclusionProof>,
    /// Decoded `canonicalizedBody`.
    pub canonicalized_body: Vec<u8>,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsseEnvelope {
    /// Decoded payload.
    pub payload: Vec<u8>,
    /// `payloadType`.
    pub payload_type: String,
    /// Signatures (decoded `sig`, `keyid`).
    pub signatures: Vec<(Vec<u8>, Option<String>)>,
}

/// What was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A signature over the artifact bytes, with the artifact's digest.
    MessageSignature {
        /// `messageDigest` (algorithm name, digest), if present.
        digest: Option<(String, Vec<u8>)>,
        /// The signature.
        signature: Vec<u8>,
    },
    /// A DSSE envelope.
    Dsse(DsseEnvelope),
}

/// A parsed Sigstore bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The media type.
    pub media_type: String,
    /// Minor version (1, 2 or 3).
    pub minor_version: u8,
    /// Certificate / chain / key hint.
    pub material: VerificationMaterial,
    /// Rekor entries.
    pub tlog_entries: Vec<TlogEntry>,
    /// RFC 3161 `TimeStampResp` DER blobs.
    pub rfc3161_timestamps: Vec<Vec<u8>>,
    /// The signed content.
    pub content: Content,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Int {
    S(String),
    N(i64),
}

fn int(v: &Option<Int>, field: &'static str) -> Result<i64, SigstoreError> {
    match v {
        None => Ok(0),
        Some(Int::N(n)) => Ok(*n),
        Some(Int::S(s)) => s.parse().map_err(|_| SigstoreError::Integer(field)),
    }
}

fn uint(v: &Option<Int>, field: &'static str) -> Result<u64, SigstoreError> {
    u64::try_from(int(v, field)?).map_err(|_| SigstoreError::Integer(field))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: Option<String>,
    verification_material: Option<RawMaterial>,
    message_signature: Option<RawMessageSignature>,
    dsse_envelope: Option<RawDsse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    certificate: Option<RawBytes>,
    x509_certificate_chain: Option<RawChain>,
    public_key: Option<RawHint>,
    #[serde(default)]
    tlog_entries: Vec<RawEntry>,
    timestamp_verification_data: Option<RawTsData>,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
struct RawHint {
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTsData {
    #[serde(default)]
    rfc3161_timestamps: Vec<RawTs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTs {
    signed_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    log_index: Option<Int>,
    log_id: Option<RawKeyId>,
    kind_version: Option<RawKindVersion>,
    integrated_time: Option<Int>,
    inclusion_promise: Option<RawPromise>,
    inclusion_proof: Option<RawProof>,
    canonicalized_body: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKeyId {
    key_id: Option<String>,
}

#[derive(Deserialize)]
struct RawKindVersion {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    signed_entry_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    log_index: Option<Int>,
    root_hash: Option<String>,
    tree_size: Option<Int>,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<RawCheckpoint>,
}

#[derive(Deserialize)]
struct RawCheckpoint {
    envelope: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    message_digest: Option<RawDigest>,
    signature: Option<String>,
}

#[derive(Deserialize)]
struct RawDigest {
    #[serde(default)]
    algorithm: String,
    digest: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDsse {
    payload: Option<String>,
    payload_type: Option<String>,
    #[serde(default)]
    signatures: Vec<RawDsseSig>,
}

#[derive(Deserialize)]
struct RawDsseSig {
    sig: Option<String>,
    keyid: Option<String>,
}

fn minor_version(mt: &str) -> Option<u8> {
    match mt {
        "application/vnd.dev.sigstore.bundle+json;version=0.1" => Some(1),
        "application/vnd.dev.sigstore.bundle+json;version=0.2" => Some(2),
        "application/vnd.dev.sigstore.bundle+json;version=0.3"
        | "application/vnd.dev.sigstore.bundle.v0.3+json" => Some(3),
        _ => None,
    }
}

fn entry(raw: RawEntry) -> Result<TlogEntry, SigstoreError> {
    let kv = raw
        .kind_version
        .ok_or(SigstoreError::MissingField("kindVersion"))?;
    let proof = raw
        .inclusion_proof
        .map(|p| -> Result<InclusionProof, SigstoreError> {
            Ok(InclusionProof {
                log_index: uint(&p.log_index, "inclusionProof.logIndex")?,
                root_hash: b64(
                    p.root_hash
                        .as_deref()
                        .ok_or(SigstoreError::MissingField("inclusionProof.rootHash"))?,
                    "inclusionProof.rootHash",
                )?,
                tree_size: uint(&p.tree_size, "inclusionProof.treeSize")?,
                hashes: p
                    .hashes
                    .iter()
                    .map(|h| b64(h, "inclusionProof.hashes"))
                    .collect::<Result<_, _>>()?,
                checkpoint: p.checkpoint.and_then(|c| c.envelope),
            })
        })
        .transpose()?;
    Ok(TlogEntry {
        log_index: int(&raw.log_index, "logIndex")?,
        log_id: b64(
            raw.log_id
                .and_then(|l| l.key_id)
                .as_deref()
                .ok_or(SigstoreError::MissingField("logId.keyId"))?,
            "logId.keyId",
        )?,
        kind: kv.kind,
        version: kv.version,
        integrated_time: int(&raw.integrated_time, "integratedTime")?,
        signed_entry_timestamp: raw
            .inclusion_promise
            .and_then(|p| p.signed_entry_timestamp)
            .map(|s| b64(&s, "inclusionPromise.signedEntryTimestamp"))
            .transpose()?,
        inclusion_proof: proof,
        canonicalized_body: b64(
            raw.canonicalized_body
                .as_deref()
                .ok_or(SigstoreError::MissingField("canonicalizedBody"))?,
            "canonicalizedBody",
        )?,
    })
}

impl Bundle {
    /// Parses a bundle (v0.1–v0.3 JSON).
    pub fn from_json(json: &[u8]) -> Result<Self, SigstoreError> {
        let jerr = |e: serde_json::Error| SigstoreError::Json {
            what: "bundle",
            msg: e.to_string(),
        };
        let v: Value = serde_json::from_slice(json).map_err(jerr)?;
        let raw: RawBundle = serde_json::from_value(v).map_err(jerr)?;
        let media_type = raw
            .media_type
            .ok_or(SigstoreError::MissingField("mediaType"))?;
        let minor_version = minor_version(&media_type)
            .ok_or_else(|| SigstoreError::MediaType(media_type.clone()))?;
        let vm = raw
            .verification_material
            .ok_or(SigstoreError::MissingField("verificationMaterial"))?;
        let material = match (vm.certificate, vm.x509_certificate_chain, vm.public_key) {
            (Some(c), None, None) => VerificationMaterial::Certificate(b64(
                c.raw_bytes
                    .as_deref()
                    .ok_or(SigstoreError::MissingField("certificate.rawBytes"))?,
                "certificate.rawBytes",
            )?),
            (None, Some(ch), None) => {
                let certs = ch
                    .certificates
                    .iter()
                    .map(|c| {
                        b64(
                            c.raw_bytes
                                .as_deref()
                                .ok_or(SigstoreError::MissingField("certificates.rawBytes"))?,
                            "certificates.rawBytes",
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if certs.is_empty() {
                    return Err(SigstoreError::MissingField(
                        "x509CertificateChain.certificates",
                    ));
                }
                VerificationMaterial::Chain(certs)
            }
            (None, None, Some(h)) => VerificationMaterial::PublicKey { hint: h.hint },
            (None, None, None) => {
                return Err(SigstoreError::MissingField(
                    "verificationMaterial.certificate",
                ));
            }
            _ => {
                return Err(SigstoreError::Content(
                    "more than one kind of verification material",
                ));
            }
        };
        if let Some(leaf) = material.leaf() {
            crate::cert::parse(leaf)
                .map_err(|_| SigstoreError::Certificate("verificationMaterial"))?;
        }
        let tlog_entries = vm
            .tlog_entries
            .into_iter()
            .map(entry)
            .collect::<Result<_, _>>()?;
        let rfc3161_timestamps = vm
            .timestamp_verification_data
            .map(|t| t.rfc3161_timestamps)
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                b64(
                    t.signed_timestamp
                        .as_deref()
                        .ok_or(SigstoreError::MissingField("signedTimestamp"))?,
                    "signedTimestamp",
                )
            })
            .collect::<Result<_, _>>()?;
        let content = match (raw.message_signature, raw.dsse_envelope) {
            (Some(m), None) => Content::MessageSignature {
                digest: m
                    .message_digest
                    .map(|d| -> Result<_, SigstoreError> {
                        Ok((
                            d.algorithm,
                            b64(
                                d.digest
                                    .as_deref()
                                    .ok_or(SigstoreError::MissingField("messageDigest.digest"))?,
                                "messageDigest.digest",
                            )?,
                        ))
                    })
                    .transpose()?,
                signature: b64(
                    m.signature
                        .as_deref()
                        .ok_or(SigstoreError::MissingField("messageSignature.signature"))?,
                    "messageSignature.signature",
                )?,
            },
            (None, Some(d)) => Content::Dsse(DsseEnvelope {
                payload: b64(
                    d.payload
                        .as_deref()
                        .ok_or(SigstoreError::MissingField("dsseEnvelope.payload"))?,
                    "dsseEnvelope.payload",
                )?,
                payload_type: d
                    .payload_type
                    .ok_or(SigstoreError::MissingField("dsseEnvelope.payloadType"))?,
                signatures: d
                    .signatures
                    .into_iter()
                    .map(|s| {
                        Ok((
                            b64(
                                s.sig
                                    .as_deref()
                                    .ok_or(SigstoreError::MissingField("signatures.sig"))?,
                                "signatures.sig",
                            )?,
                            s.keyid,
                        ))
                    })
                    .collect::<Result<_, SigstoreError>>()?,
            }),
            (None, None) => {
                return Err(SigstoreError::Content(
                    "neither messageSignature nor dsseEnvelope",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(SigstoreError::Content(
                    "both messageSignature and dsseEnvelope",
                ));
            }
        };
        Ok(Bundle {
            media_type,
            minor_version,
            material,
            tlog_entries,
            rfc3161_timestamps,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_vectors() {
        let b = Bundle::from_json(include_bytes!(
            "../tests/data/kubewarden-controller.bundle_v03.json"
        ))
        .unwrap();
        assert_eq!(b.minor_version, 3);
        assert_eq!(b.tlog_entries[0].log_index, 1_261_105_807);
        assert_eq!(
            b.tlog_entries[0]
                .inclusion_proof
                .as_ref()
                .unwrap()
                .log_index,
            1_139_201_545
        );
        assert_eq!(b.rfc3161_timestamps.len(), 1);
        assert!(matches!(b.content, Content::Dsse(_)));
        let m = Bundle::from_json(include_bytes!(
            "../tests/data/mock-messagesig-hashedrekord.sigstore.json"
        ))
        .unwrap();
        assert!(matches!(
            m.content,
            Content::MessageSignature {
                digest: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            Bundle::from_json(b"[1"),
            Err(SigstoreError::Json { .. })
        ));
        assert!(matches!(
            Bundle::from_json(b"{}"),
            Err(SigstoreError::MissingField("mediaType"))
        ));
        assert!(matches!(
            Bundle::from_json(br#"{"mediaType":"application/x"}"#),
            Err(SigstoreError::MediaType(_))
        ));
        let good = std::str::from_utf8(include_bytes!(
            "../tests/data/mock-messagesig-hashedrekord.sigstore.json"
        ))
        .unwrap();
        let bad = good.replacen("\"logIndex\":\"7175081\"", "\"logIndex\":\"x\"", 1);
        assert!(matches!(
            Bundle::from_json(bad.as_bytes()),
            Err(SigstoreError::Integer("logIndex"))
        ));
        let bad = good.replacen("\"rawBytes\":\"", "\"rawBytes\":\"%", 1);
        assert!(matches!(
            Bundle::from_json(bad.as_bytes()),
            Err(SigstoreError::Base64(_))
        ));
        let bad = good.replacen("\"rawBytes\":\"", "\"rawBytes\":\"AAAA", 1);
        assert!(matches!(
            Bundle::from_json(bad.as_bytes()),
            Err(SigstoreError::Certificate(_))
        ));
    }
}
