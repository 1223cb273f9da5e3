//! Notary signature envelopes: JWS (`application/jose+json`, flattened JSON serialization) and
//! COSE_Sign1 (`application/cose`, tag 18) — parsing with errors that name the field, the integrity
//! check (signature with the leaf key, critical headers, content type, signing scheme and times,
//! notation's certificate-chain rules, algorithm derived from the leaf key), and signing.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coset::iana::EnumI64 as _;
use coset::{TaggedCborSerializable as _, cbor::Value};
use serde_json::{Map, Value as Json};

use crate::crypto::{PrivateKey, SignatureAlgorithm};
use crate::error::NotaryError;
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::x509::{Cert, validate_code_signing_chain};

/// Media type of JWS envelopes.
pub const MEDIA_TYPE_JWS: &str = "application/jose+json";
/// Media type of COSE envelopes.
pub const MEDIA_TYPE_COSE: &str = "application/cose";
/// The payload content type.
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";

const H_SCHEME: &str = "io.cncf.notary.signingScheme";
const H_SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const H_AUTHENTIC_TIME: &str = "io.cncf.notary.authenticSigningTime";
const H_EXPIRY: &str = "io.cncf.notary.expiry";
const H_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
const H_PLUGIN_MIN: &str = "io.cncf.notary.verificationPluginMinVersion";
const H_TIMESTAMP: &str = "io.cncf.notary.timestampSignature";
const H_AGENT: &str = "io.cncf.notary.signingAgent";
const COSE_X5CHAIN: i64 = 33;

/// Envelope format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeFormat {
    /// JWS JSON.
    Jws,
    /// COSE_Sign1.
    Cose,
}

impl EnvelopeFormat {
    /// The layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Jws => MEDIA_TYPE_JWS,
            Self::Cose => MEDIA_TYPE_COSE,
        }
    }

    /// From a layer media type.
    pub fn from_media_type(mt: &str) -> Option<Self> {
        match mt {
            MEDIA_TYPE_JWS => Some(Self::Jws),
            MEDIA_TYPE_COSE => Some(Self::Cose),
            _ => None,
        }
    }
}

/// Signing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SigningScheme {
    /// `notary.x509`: chain to a `ca` store, optional RFC 3161 timestamp.
    #[serde(rename = "notary.x509")]
    X509,
    /// `notary.x509.signingAuthority`: chain to a `signingAuthority` store, authentic signing time.
    #[serde(rename = "notary.x509.signingAuthority")]
    SigningAuthority,
}

impl SigningScheme {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X509 => "notary.x509",
            Self::SigningAuthority => "notary.x509.signingAuthority",
        }
    }
}

/// The target descriptor a payload names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetArtifact {
    /// Media type of the signed manifest.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Digest of the signed manifest.
    pub digest: String,
    /// Size of the signed manifest.
    pub size: u64,
    /// User metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Parses the payload JSON (`{"targetArtifact": {...}}`).
pub fn parse_payload(bytes: &[u8]) -> Result<TargetArtifact, NotaryError> {
    let v: Json = serde_json::from_slice(bytes)
        .map_err(|e| NotaryError::Envelope(format!("payload is not JSON: {e}")))?;
    let t = v
        .get("targetArtifact")
        .ok_or_else(|| NotaryError::Envelope("payload has no `targetArtifact`".into()))?;
    serde_json::from_value(t.clone())
        .map_err(|e| NotaryError::Envelope(format!("payload `targetArtifact`: {e}")))
}

/// A parsed envelope (not yet verified).
#[derive(Debug, Clone)]
pub struct Envelope {
    /// JWS or COSE.
    pub format: EnvelopeFormat,
    /// The signature algorithm named in the protected header.
    pub algorithm: SignatureAlgorithm,
    /// The payload content type (`cty` / COSE label 3).
    pub content_type: String,
    /// The signing scheme.
    pub signing_scheme: SigningScheme,
    /// `io.cncf.notary.signingTime` (Unix seconds).
    pub signing_time: Option<i64>,
    /// `io.cncf.notary.authenticSigningTime` (Unix seconds).
    pub authentic_signing_time: Option<i64>,
    /// `io.cncf.notary.expiry` (Unix seconds).
    pub expiry: Option<i64>,
    /// `io.cncf.notary.verificationPlugin`.
    pub verification_plugin: Option<String>,
    /// Critical header names that are not Notary-defined.
    pub unknown_critical: Vec<String>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The primitive signature bytes (timestamp imprint input).
    pub signature: Vec<u8>,
    /// The certificate chain, leaf first.
    pub chain: Vec<Cert>,
    /// The RFC 3161 timestamp token (CMS ContentInfo), if any.
    pub timestamp: Option<Vec<u8>>,
    /// The signing agent.
    pub signing_agent: Option<String>,
    signing_input: Vec<u8>,
}

fn env_err(m: impl Into<String>) -> NotaryError {
    NotaryError::Envelope(m.into())
}

impl Envelope {
    /// Parses an envelope of the given layer media type.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Self, NotaryError> {
        match EnvelopeFormat::from_media_type(media_type) {
            Some(EnvelopeFormat::Jws) => parse_jws(bytes),
            Some(EnvelopeFormat::Cose) => parse_cose(bytes),
            None => Err(env_err(format!(
                "unsupported envelope media type {media_type:?} (expected {MEDIA_TYPE_JWS} or {MEDIA_TYPE_COSE})"
            ))),
        }
    }

    /// The integrity check: content type, critical headers, times, chain rules, algorithm derived
    /// from the leaf key, and the signature itself. Returns the signed target descriptor.
    pub fn verify_integrity(&self) -> Result<TargetArtifact, NotaryError> {
        if self.content_type != PAYLOAD_CONTENT_TYPE {
            return Err(env_err(format!(
                "payload content type (`cty`) is {:?}, expected {PAYLOAD_CONTENT_TYPE:?}",
                self.content_type
            )));
        }
        if let Some(name) = self.unknown_critical.first() {
            return Err(env_err(format!(
                "unknown critical header {name:?} (listed in `crit`, not understood)"
            )));
        }
        if self.payload.is_empty() {
            return Err(env_err("payload is empty"));
        }
        if self.signature.is_empty() {
            return Err(env_err("signature is empty"));
        }
        let t = match self.signing_scheme {
            SigningScheme::X509 => self.signing_time,
            SigningScheme::SigningAuthority => self.authentic_signing_time,
        };
        if let (Some(exp), Some(t)) = (self.expiry, t)
            && exp <= t
        {
            return Err(env_err(format!(
                "`{H_EXPIRY}` is not after the signing time"
            )));
        }
        validate_code_signing_chain(&self.chain, None)?;
        let leaf = &self.chain[0];
        let key = leaf.public_key()?;
        let derived = key.notary_algorithm()?;
        if derived != self.algorithm {
            return Err(env_err(format!(
                "signature algorithm {} does not match the signing certificate's key ({}, which requires {})",
                self.algorithm.jws_name(),
                key.describe(),
                derived.jws_name()
            )));
        }
        if !key.verify_envelope(self.algorithm, &self.signing_input, &self.signature) {
            return Err(env_err(
                "signature does not verify with the signing certificate's key",
            ));
        }
        parse_payload(&self.payload)
    }
}

fn scheme(v: &str) -> Result<SigningScheme, NotaryError> {
    match v {
        "notary.x509" => Ok(SigningScheme::X509),
        "notary.x509.signingAuthority" => Ok(SigningScheme::SigningAuthority),
        other => Err(env_err(format!(
            "`{H_SCHEME}` has unsupported value {other:?}"
        ))),
    }
}

/// Checks the scheme-specific time headers and `crit` rules shared by both formats.
fn check_common(
    crit: &[String],
    present: &dyn Fn(&str) -> bool,
    scheme: SigningScheme,
    signing_time: Option<i64>,
    authentic: Option<i64>,
    expiry: Option<i64>,
) -> Result<Vec<String>, NotaryError> {
    if crit.is_empty() {
        return Err(env_err("`crit` is missing or empty"));
    }
    if !crit.iter().any(|c| c == H_SCHEME) {
        return Err(env_err(format!("`crit` must list {H_SCHEME:?}")));
    }
    for c in crit {
        if !present(c) {
            return Err(env_err(format!(
                "`crit` lists {c:?}, which is not in the protected header"
            )));
        }
    }
    if expiry.is_some() && !crit.iter().any(|c| c == H_EXPIRY) {
        return Err(env_err(format!("`{H_EXPIRY}` must be listed in `crit`")));
    }
    match scheme {
        SigningScheme::X509 => {
            if signing_time.is_none() {
                return Err(env_err(format!(
                    "`{H_SIGNING_TIME}` is required for notary.x509"
                )));
            }
            if authentic.is_some() {
                return Err(env_err(format!(
                    "`{H_AUTHENTIC_TIME}` is not allowed for notary.x509"
                )));
            }
        }
        SigningScheme::SigningAuthority => {
            if authentic.is_none() {
                return Err(env_err(format!(
                    "`{H_AUTHENTIC_TIME}` is required for notary.x509.signingAuthority"
                )));
            }
            if !crit.iter().any(|c| c == H_AUTHENTIC_TIME) {
                return Err(env_err(format!(
                    "`{H_AUTHENTIC_TIME}` must be listed in `crit`"
                )));
            }
            if signing_time.is_some() {
                return Err(env_err(format!(
                    "`{H_SIGNING_TIME}` is not allowed for notary.x509.signingAuthority"
                )));
            }
        }
    }
    let known = [
        H_SCHEME,
        H_SIGNING_TIME,
        H_AUTHENTIC_TIME,
        H_EXPIRY,
        H_PLUGIN,
        H_PLUGIN_MIN,
    ];
    Ok(crit
        .iter()
        .filter(|c| !known.contains(&c.as_str()))
        .cloned()
        .collect())
}

fn parse_chain(ders: Vec<Vec<u8>>, field: &str) -> Result<Vec<Cert>, NotaryError> {
    if ders.is_empty() {
        return Err(env_err(format!(
            "{field}: certificate chain is not present"
        )));
    }
    ders.iter()
        .enumerate()
        .map(|(i, d)| Cert::from_der(d).map_err(|e| env_err(format!("{field}[{i}]: {e}"))))
        .collect()
}

fn b64url(field: &str, s: &str) -> Result<Vec<u8>, NotaryError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| env_err(format!("JWS `{field}`: invalid unpadded base64url: {e}")))
}

fn json_time(h: &Map<String, Json>, key: &str) -> Result<Option<i64>, NotaryError> {
    match h.get(key) {
        None => Ok(None),
        Some(Json::String(s)) => parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| env_err(format!("`{key}` is not an RFC 3339 time: {s:?}"))),
        Some(_) => Err(env_err(format!("`{key}` must be a string"))),
    }
}

/// Case-insensitive lookup (Go's JSON decoding matches keys that way).
fn get_ci<'a>(m: &'a Map<String, Json>, key: &str) -> Option<&'a Json> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn parse_jws(bytes: &[u8]) -> Result<Envelope, NotaryError> {
    let top: Map<String, Json> = serde_json::from_slice(bytes)
        .map_err(|e| env_err(format!("JWS is not a JSON object: {e}")))?;
    let field = |k: &str| -> Result<&str, NotaryError> {
        get_ci(&top, k)
            .and_then(Json::as_str)
            .ok_or_else(|| env_err(format!("JWS `{k}` is missing or not a string")))
    };
    let protected_b64 = field("protected")?;
    let payload_b64 = field("payload")?;
    let signature = b64url("signature", field("signature")?)?;
    let payload = b64url("payload", payload_b64)?;
    let protected_raw = b64url("protected", protected_b64)?;
    let h: Map<String, Json> = serde_json::from_slice(&protected_raw)
        .map_err(|e| env_err(format!("JWS `protected` is not a JSON object: {e}")))?;
    let alg_name = h
        .get("alg")
        .and_then(Json::as_str)
        .ok_or_else(|| env_err("JWS protected header `alg` is missing"))?;
    let algorithm = SignatureAlgorithm::from_jws(alg_name).ok_or_else(|| {
        env_err(format!(
            "JWS `alg` {alg_name:?} is not supported (PS256/384/512, ES256/384/512)"
        ))
    })?;
    let content_type = h
        .get("cty")
        .and_then(Json::as_str)
        .ok_or_else(|| env_err("JWS protected header `cty` is missing"))?
        .to_owned();
    let crit: Vec<String> = match h.get("crit") {
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| env_err("JWS `crit` entries must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(env_err("JWS `crit` must be an array")),
        None => Vec::new(),
    };
    for c in &crit {
        if matches!(
            c.as_str(),
            "alg"
                | "cty"
                | "crit"
                | "typ"
                | "kid"
                | "x5c"
                | "jku"
                | "jwk"
                | "x5u"
                | "x5t"
                | "x5t#S256"
                | "b64"
        ) {
            return Err(env_err(format!(
                "JWS `crit` must not list the registered header {c:?}"
            )));
        }
    }
    let signing_scheme = scheme(
        h.get(H_SCHEME)
            .and_then(Json::as_str)
            .ok_or_else(|| env_err(format!("JWS protected header `{H_SCHEME}` is missing")))?,
    )?;
    let signing_time = json_time(&h, H_SIGNING_TIME)?;
    let authentic_signing_time = json_time(&h, H_AUTHENTIC_TIME)?;
    let expiry = json_time(&h, H_EXPIRY)?;
    let verification_plugin = h.get(H_PLUGIN).and_then(Json::as_str).map(str::to_owned);
    let unknown_critical = check_common(
        &crit,
        &|k| h.contains_key(k),
        signing_scheme,
        signing_time,
        authentic_signing_time,
        expiry,
    )?;
    let unprotected = match get_ci(&top, "header") {
        Some(Json::Object(m)) => m.clone(),
        Some(_) => return Err(env_err("JWS `header` must be an object")),
        None => {
            return Err(env_err(
                "JWS `header` (unprotected header with `x5c`) is missing",
            ));
        }
    };
    let x5c = match get_ci(&unprotected, "x5c") {
        Some(Json::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let s = v
                    .as_str()
                    .ok_or_else(|| env_err(format!("JWS `x5c[{i}]` is not a string")))?;
                STANDARD
                    .decode(s)
                    .map_err(|e| env_err(format!("JWS `x5c[{i}]`: invalid base64: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(env_err("JWS `x5c` must be an array")),
        None => Vec::new(),
    };
    let chain = parse_chain(x5c, "JWS `x5c`")?;
    let timestamp = match get_ci(&unprotected, H_TIMESTAMP) {
        Some(Json::String(s)) => Some(
            STANDARD
                .decode(s)
                .map_err(|e| env_err(format!("JWS `{H_TIMESTAMP}`: invalid base64: {e}")))?,
        ),
        Some(_) => return Err(env_err(format!("JWS `{H_TIMESTAMP}` must be a string"))),
        None => None,
    };
    let signing_agent = get_ci(&unprotected, H_AGENT)
        .and_then(Json::as_str)
        .map(str::to_owned);
    let mut signing_input = protected_b64.as_bytes().to_vec();
    signing_input.push(b'.');
    signing_input.extend_from_slice(payload_b64.as_bytes());
    Ok(Envelope {
        format: EnvelopeFormat::Jws,
        algorithm,
        content_type,
        signing_scheme,
        signing_time,
        authentic_signing_time,
        expiry,
        verification_plugin,
        unknown_critical,
        payload,
        signature,
        chain,
        timestamp,
        signing_agent,
        signing_input,
    })
}

fn cose_text<'a>(rest: &'a [(coset::Label, Value)], key: &str) -> Option<&'a Value> {
    rest.iter()
        .find(|(l, _)| matches!(l, coset::Label::Text(t) if t == key))
        .map(|(_, v)| v)
}

fn cose_time(rest: &[(coset::Label, Value)], key: &str) -> Result<Option<i64>, NotaryError> {
    match cose_text(rest, key) {
        None => Ok(None),
        Some(Value::Tag(1, inner)) => match inner.as_ref() {
            Value::Integer(i) => i64::try_from(*i)
                .map(Some)
                .map_err(|_| env_err(format!("COSE `{key}` is out of range"))),
            Value::Float(f) if f.is_finite() => Ok(Some(*f as i64)),
            _ => Err(env_err(format!(
                "COSE `{key}` must be an epoch time number"
            ))),
        },
        Some(_) => Err(env_err(format!("COSE `{key}` must be a time (CBOR tag 1)"))),
    }
}

fn parse_cose(bytes: &[u8]) -> Result<Envelope, NotaryError> {
    let sign1 = coset::CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| env_err(format!("not a tagged COSE_Sign1 (CBOR tag 18): {e}")))?;
    let p = &sign1.protected.header;
    let alg_value = match &p.alg {
        Some(coset::RegisteredLabelWithPrivate::Assigned(a)) => a.to_i64(),
        Some(coset::RegisteredLabelWithPrivate::PrivateUse(i)) => *i,
        Some(coset::RegisteredLabelWithPrivate::Text(t)) => {
            return Err(env_err(format!(
                "COSE `alg` (label 1) {t:?} is not supported"
            )));
        }
        None => return Err(env_err("COSE protected header `alg` (label 1) is missing")),
    };
    let algorithm = SignatureAlgorithm::from_cose(alg_value)
        .ok_or_else(|| env_err(format!("COSE `alg` (label 1) {alg_value} is not supported")))?;
    let content_type = match &p.content_type {
        Some(coset::RegisteredLabel::Text(t)) => t.clone(),
        Some(coset::RegisteredLabel::Assigned(a)) => {
            return Err(env_err(format!(
                "COSE content type (label 3) is CoAP format {}, expected {PAYLOAD_CONTENT_TYPE:?}",
                a.to_i64()
            )));
        }
        None => {
            return Err(env_err(
                "COSE protected header content type (label 3) is missing",
            ));
        }
    };
    let crit = p
        .crit
        .iter()
        .map(|c| match c {
            coset::RegisteredLabelWithPrivate::Text(t) => Ok(t.clone()),
            coset::RegisteredLabelWithPrivate::Assigned(a) => Ok(a.to_i64().to_string()),
            coset::RegisteredLabelWithPrivate::PrivateUse(i) => Ok(i.to_string()),
        })
        .collect::<Result<Vec<String>, NotaryError>>()?;
    let signing_scheme = match cose_text(&p.rest, H_SCHEME) {
        Some(Value::Text(s)) => scheme(s)?,
        _ => {
            return Err(env_err(format!(
                "COSE protected header `{H_SCHEME}` is missing"
            )));
        }
    };
    let signing_time = cose_time(&p.rest, H_SIGNING_TIME)?;
    let authentic_signing_time = cose_time(&p.rest, H_AUTHENTIC_TIME)?;
    let expiry = cose_time(&p.rest, H_EXPIRY)?;
    let verification_plugin = match cose_text(&p.rest, H_PLUGIN) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let present = |k: &str| cose_text(&p.rest, k).is_some();
    let unknown_critical = check_common(
        &crit,
        &present,
        signing_scheme,
        signing_time,
        authentic_signing_time,
        expiry,
    )?;
    let u = &sign1.unprotected;
    let x5chain = u
        .rest
        .iter()
        .find(|(l, _)| *l == coset::Label::Int(COSE_X5CHAIN))
        .map(|(_, v)| v);
    let ders = match x5chain {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Bytes(b) => Ok(b.clone()),
                _ => Err(env_err(format!(
                    "COSE x5chain (label 33)[{i}] is not a byte string"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(env_err(
                "COSE x5chain (label 33) must be an array of certificates",
            ));
        }
        None => {
            return Err(env_err(
                "COSE unprotected header has no x5chain (label 33): certificate chain is not present",
            ));
        }
    };
    let chain = parse_chain(ders, "COSE x5chain (label 33)")?;
    let timestamp = match cose_text(&u.rest, H_TIMESTAMP) {
        Some(Value::Bytes(b)) => Some(b.clone()),
        Some(_) => {
            return Err(env_err(format!(
                "COSE `{H_TIMESTAMP}` must be a byte string"
            )));
        }
        None => None,
    };
    let signing_agent = match cose_text(&u.rest, H_AGENT) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let payload = sign1
        .payload
        .clone()
        .ok_or_else(|| env_err("COSE payload is detached (nil); notation requires it attached"))?;
    let signing_input = sign1.tbs_data(b"");
    Ok(Envelope {
        format: EnvelopeFormat::Cose,
        algorithm,
        content_type,
        signing_scheme,
        signing_time,
        authentic_signing_time,
        expiry,
        verification_plugin,
        unknown_critical,
        payload,
        signature: sign1.signature.clone(),
        chain,
        timestamp,
        signing_agent,
        signing_input,
    })
}

/// What to sign.
#[derive(Debug, Clone)]
pub struct SignRequest<'a> {
    /// The signed artifact's descriptor.
    pub target: TargetArtifact,
    /// Signing time (Unix seconds, truncated to seconds).
    pub signing_time: i64,
    /// Optional expiry (Unix seconds).
    pub expiry: Option<i64>,
    /// The signing key.
    pub key: &'a PrivateKey,
    /// Certificate chain, leaf first, ending in a self-signed root.
    pub chain: &'a [Cert],
    /// Signing agent string.
    pub signing_agent: String,
}

/// The JWS payload bytes notation writes (sorted keys).
fn payload_json(target: &TargetArtifact) -> Vec<u8> {
    let mut t = serde_json::json!({
        "digest": target.digest,
        "mediaType": target.media_type,
        "size": target.size,
    });
    if let (Some(a), Some(obj)) = (&target.annotations, t.as_object_mut()) {
        obj.insert("annotations".into(), serde_json::json!(a));
    }
    serde_json::to_vec(&serde_json::json!({ "targetArtifact": t })).unwrap_or_default()
}

fn check_sign_request(req: &SignRequest<'_>) -> Result<SignatureAlgorithm, NotaryError> {
    validate_code_signing_chain(req.chain, Some(req.signing_time))?;
    let leaf_key = req.chain[0].public_key()?;
    let alg = leaf_key.notary_algorithm()?;
    let key_alg = req.key.public_key().notary_algorithm()?;
    if key_alg != alg || !same_key(&leaf_key, &req.key.public_key()) {
        return Err(NotaryError::Sign(
            "the signing key does not match the leaf certificate's public key".into(),
        ));
    }
    if let Some(e) = req.expiry
        && e <= req.signing_time
    {
        return Err(NotaryError::Sign(
            "expiry must be after the signing time".into(),
        ));
    }
    Ok(alg)
}

fn same_key(a: &crate::crypto::PublicKey, b: &crate::crypto::PublicKey) -> bool {
    use crate::crypto::PublicKey as K;
    match (a, b) {
        (K::Rsa(x), K::Rsa(y)) => x == y,
        (K::P256(x), K::P256(y)) => x == y,
        (K::P384(x), K::P384(y)) => x == y,
        (K::P521(x), K::P521(y)) => x == y,
        _ => false,
    }
}

/// A signed envelope before a timestamp is attached.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Envelope format.
    pub format: EnvelopeFormat,
    /// The primitive signature (timestamp imprint input).
    pub signature: Vec<u8>,
    parts: SignedParts,
}

#[derive(Debug, Clone)]
enum SignedParts {
    Jws {
        protected: String,
        payload: String,
        header: Map<String, Json>,
    },
    Cose(Box<coset::CoseSign1>),
}

impl Signed {
    /// The hash to use for a timestamp request.
    pub fn finish(self, timestamp: Option<Vec<u8>>) -> Result<Vec<u8>, NotaryError> {
        match self.parts {
            SignedParts::Jws {
                protected,
                payload,
                mut header,
            } => {
                if let Some(t) = timestamp {
                    header.insert(H_TIMESTAMP.into(), Json::String(STANDARD.encode(t)));
                }
                let v = serde_json::json!({
                    "payload": payload,
                    "protected": protected,
                    "header": header,
                    "signature": URL_SAFE_NO_PAD.encode(&self.signature),
                });
                serde_json::to_vec(&v).map_err(|e| NotaryError::Sign(e.to_string()))
            }
            SignedParts::Cose(mut s) => {
                if let Some(t) = timestamp {
                    s.unprotected
                        .rest
                        .push((coset::Label::Text(H_TIMESTAMP.into()), Value::Bytes(t)));
                }
                s.to_tagged_vec()
                    .map_err(|e| NotaryError::Sign(format!("COSE encoding: {e}")))
            }
        }
    }
}

/// Signs `req` as a JWS or COSE envelope (the timestamp, if any, is added with [`Signed::finish`]).
pub fn sign(format: EnvelopeFormat, req: &SignRequest<'_>) -> Result<Signed, NotaryError> {
    let alg = check_sign_request(req)?;
    let mut crit = vec![H_SCHEME.to_owned()];
    if req.expiry.is_some() {
        crit.push(H_EXPIRY.to_owned());
    }
    match format {
        EnvelopeFormat::Jws => {
            let mut h = Map::new();
            h.insert("alg".into(), Json::String(alg.jws_name().into()));
            h.insert("crit".into(), serde_json::json!(crit));
            h.insert("cty".into(), Json::String(PAYLOAD_CONTENT_TYPE.into()));
            h.insert(
                H_SCHEME.into(),
                Json::String(SigningScheme::X509.as_str().into()),
            );
            h.insert(
                H_SIGNING_TIME.into(),
                Json::String(format_rfc3339(req.signing_time)),
            );
            if let Some(e) = req.expiry {
                h.insert(H_EXPIRY.into(), Json::String(format_rfc3339(e)));
            }
            let protected = URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&h).map_err(|e| NotaryError::Sign(e.to_string()))?);
            let payload = URL_SAFE_NO_PAD.encode(payload_json(&req.target));
            let signature = req
                .key
                .sign(alg, format!("{protected}.{payload}").as_bytes())?;
            let mut header = Map::new();
            header.insert(
                "x5c".into(),
                Json::Array(
                    req.chain
                        .iter()
                        .map(|c| Json::String(STANDARD.encode(&c.der)))
                        .collect(),
                ),
            );
            header.insert(H_AGENT.into(), Json::String(req.signing_agent.clone()));
            Ok(Signed {
                format,
                signature,
                parts: SignedParts::Jws {
                    protected,
                    payload,
                    header,
                },
            })
        }
        EnvelopeFormat::Cose => {
            let cose_alg = coset::iana::Algorithm::from_i64(alg.cose_value())
                .ok_or_else(|| NotaryError::Sign("COSE algorithm".into()))?;
            let mut b = coset::HeaderBuilder::new()
                .algorithm(cose_alg)
                .content_type(PAYLOAD_CONTENT_TYPE.into());
            for c in &crit {
                b = b.add_critical_label(coset::RegisteredLabelWithPrivate::Text(c.clone()));
            }
            b = b
                .text_value(
                    H_SCHEME.into(),
                    Value::Text(SigningScheme::X509.as_str().into()),
                )
                .text_value(
                    H_SIGNING_TIME.into(),
                    Value::Tag(1, Box::new(Value::Integer(req.signing_time.into()))),
                );
            if let Some(e) = req.expiry {
                b = b.text_value(
                    H_EXPIRY.into(),
                    Value::Tag(1, Box::new(Value::Integer(e.into()))),
                );
            }
            let unprotected = coset::HeaderBuilder::new()
                .value(
                    COSE_X5CHAIN,
                    Value::Array(
                        req.chain
                            .iter()
                            .map(|c| Value::Bytes(c.der.clone()))
                            .collect(),
                    ),
                )
                .text_value(H_AGENT.into(), Value::Text(req.signing_agent.clone()))
                .build();
            let payload = serde_json::to_vec(&serde_json::json!({"targetArtifact": req.target}))
                .map_err(|e| NotaryError::Sign(e.to_string()))?;
            let s = coset::CoseSign1Builder::new()
                .protected(b.build())
                .unprotected(unprotected)
                .payload(payload)
                .try_create_signature(b"", |tbs| req.key.sign(alg, tbs))?
                .build();
            // Re-parse so the protected bytes are exactly what was signed.
            let bytes = s
                .to_tagged_vec()
                .map_err(|e| NotaryError::Sign(format!("COSE encoding: {e}")))?;
            let s = coset::CoseSign1::from_tagged_slice(&bytes)
                .map_err(|e| NotaryError::Sign(format!("COSE encoding: {e}")))?;
            Ok(Signed {
                format,
                signature: s.signature.clone(),
                parts: SignedParts::Cose(Box::new(s)),
            })
        }
    }
}
