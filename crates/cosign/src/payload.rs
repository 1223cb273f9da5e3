//! Signed payload formats: the simple-signing payload of `.sig` layers (serialised exactly as Go's
//! `encoding/json` writes it), in-toto statements, and DSSE envelopes with their PAE.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sigil_oci::Digest;

/// `critical.type` of a simple-signing payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// DSSE payload type of in-toto statements.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1 `_type`.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

#[derive(Serialize)]
struct Identity<'a> {
    #[serde(rename = "docker-reference")]
    docker_reference: &'a str,
}

#[derive(Serialize)]
struct Image<'a> {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: &'a str,
}

#[derive(Serialize)]
struct Critical<'a> {
    identity: Identity<'a>,
    image: Image<'a>,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
struct SimpleSigning<'a> {
    critical: Critical<'a>,
    optional: Option<&'a BTreeMap<String, String>>,
}

/// The simple-signing payload cosign signs: `docker_reference` is `registry/repository` (no tag);
/// `optional` is `null` without annotations.
pub fn simple_signing(
    docker_reference: &str,
    digest: &Digest,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let d = digest.to_string();
    let p = SimpleSigning {
        critical: Critical {
            identity: Identity { docker_reference },
            image: Image {
                docker_manifest_digest: &d,
            },
            kind: SIMPLE_SIGNING_TYPE,
        },
        optional: (!annotations.is_empty()).then_some(annotations),
    };
    serde_json::to_vec(&p).unwrap_or_default()
}

/// The claims of a parsed simple-signing payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSigningClaims {
    /// `critical.image.docker-manifest-digest`.
    pub digest: String,
    /// `critical.identity.docker-reference`.
    pub docker_reference: Option<String>,
    /// `optional` (string values; other values are kept as their JSON text).
    pub optional: BTreeMap<String, String>,
    /// The whole payload.
    pub json: Value,
}

fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let m = obj.as_object()?;
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Parses a simple-signing payload (keys matched case-insensitively, as Go's decoder does).
pub fn parse_simple_signing(bytes: &[u8]) -> Result<SimpleSigningClaims, String> {
    let json: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let critical = get_ci(&json, "critical").ok_or("no `critical` section")?;
    let kind = get_ci(critical, "type").and_then(Value::as_str);
    if kind != Some(SIMPLE_SIGNING_TYPE) {
        return Err(format!(
            "critical.type is {kind:?}, not {SIMPLE_SIGNING_TYPE:?}"
        ));
    }
    let digest = get_ci(critical, "image")
        .and_then(|i| get_ci(i, "docker-manifest-digest"))
        .and_then(Value::as_str)
        .ok_or("no critical.image.docker-manifest-digest")?
        .to_owned();
    let docker_reference = get_ci(critical, "identity")
        .and_then(|i| get_ci(i, "docker-reference"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut optional = BTreeMap::new();
    match get_ci(&json, "optional") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                optional.insert(k.clone(), v);
            }
        }
        Some(_) => return Err("`optional` is not an object".into()),
    }
    Ok(SimpleSigningClaims {
        digest,
        docker_reference,
        optional,
        json,
    })
}

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsseSignature {
    /// Key id (cosign writes `""`).
    #[serde(default)]
    pub keyid: String,
    /// Base64 signature.
    pub sig: String,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Payload type.
    pub payload_type: String,
    /// Base64 payload.
    pub payload: String,
    /// Signatures.
    pub signatures: Vec<DsseSignature>,
}

impl Envelope {
    /// The decoded payload.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, String> {
        B64.decode(self.payload.as_bytes())
            .map_err(|e| format!("payload is not base64: {e}"))
    }
}

/// Maps a cosign `--type` short name to its predicate type URI (URIs are returned as given).
pub fn predicate_type_uri(t: &str) -> Result<String, String> {
    match sigil_sigstore::known_predicate_type(t) {
        Some(uri) => Ok(uri.to_owned()),
        None if t.contains("://") => Ok(t.to_owned()),
        None => Err(format!(
            "unknown predicate type {t:?} (use a short name or a URI)"
        )),
    }
}

/// An in-toto Statement v1 about `repo@digest`.
pub fn statement(repo: &str, digest: &Digest, predicate_type: &str, predicate: Value) -> Vec<u8> {
    let v = serde_json::json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": repo, "digest": {digest.algorithm().as_str(): digest.encoded()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// RFC 3339 UTC time of now (seconds precision; `$SOURCE_DATE_EPOCH` when set).
pub use sigil_artifacts::now_rfc3339;

/// The predicate type URI and predicate JSON for `attest`: `predicate_type` is a short name or URI; for
/// `custom` the predicate text is wrapped as `{"Data": <text>, "Timestamp": <now>}`, otherwise it must be
/// JSON.
pub fn predicate_for(
    predicate_type: &str,
    predicate: &[u8],
) -> Result<(String, Value), crate::CosignError> {
    let uri = predicate_type_uri(predicate_type).map_err(crate::CosignError::Invalid)?;
    let predicate: Value = if predicate_type == "custom" {
        serde_json::json!({
            "Data": String::from_utf8_lossy(predicate),
            "Timestamp": now_rfc3339(),
        })
    } else {
        serde_json::from_slice(predicate)
            .map_err(|e| crate::CosignError::Invalid(format!("predicate is not JSON: {e}")))?
    };
    Ok((uri, predicate))
}
