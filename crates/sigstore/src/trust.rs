//! `trusted_root.json` (`sigstore_trustroot.proto` TrustedRoot, media types v0.1/v0.2): Fulcio CAs, Rekor
//! (tlog) and CT log keys, timestamp authorities, each with a `validFor` window. A client trust config
//! (`clienttrustconfig.v0.1`) is accepted too; its `trustedRoot` is used.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use crate::SigstoreError;
use crate::crypto::PublicKey;

/// A `validFor` window in Unix seconds (inclusive; open ends are `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    /// Start (inclusive).
    pub start: Option<i64>,
    /// End (inclusive).
    pub end: Option<i64>,
}

impl Validity {
    /// Whether `t` lies in the window.
    pub fn contains(&self, t: i64) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }
}

/// A transparency log (Rekor or CT).
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    /// `baseUrl`.
    pub base_url: String,
    /// The log's key.
    pub key: PublicKey,
    /// The key's SPKI DER.
    pub key_der: Vec<u8>,
    /// `logId.keyId` (SHA-256 of the SPKI for Rekor v1 and CT).
    pub log_id: Vec<u8>,
    /// When the key is trusted.
    pub valid_for: Validity,
}

/// A certificate authority (Fulcio) or timestamp authority.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// `uri`.
    pub uri: String,
    /// `certChain.certificates` as DER, leaf/intermediate first, root last.
    pub chain: Vec<Vec<u8>>,
    /// When the authority is trusted.
    pub valid_for: Validity,
}

/// A parsed trusted root.
#[derive(Debug, Clone, Default)]
pub struct TrustedRoot {
    /// Rekor logs.
    pub tlogs: Vec<TransparencyLog>,
    /// Certificate Transparency logs.
    pub ctlogs: Vec<TransparencyLog>,
    /// Fulcio CAs.
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// RFC 3161 timestamp authorities.
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    timestamp_authorities: Vec<RawCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: Option<RawKey>,
    log_id: Option<RawKeyId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    raw_bytes: Option<String>,
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKeyId {
    key_id: Option<String>,
}

#[derive(Deserialize)]
struct RawValidity {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    uri: String,
    cert_chain: Option<RawChain>,
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawBytes {
    pub(crate) raw_bytes: Option<String>,
}

pub(crate) fn b64(s: &str, field: &'static str) -> Result<Vec<u8>, SigstoreError> {
    STANDARD
        .decode(s.trim())
        .map_err(|_| SigstoreError::Base64(field))
}

/// Parses an RFC 3339 time (`2021-01-12T11:53:27Z`, optional fraction, `Z` or `±hh:mm`) to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, SigstoreError> {
    sigil_oci::time::parse_rfc3339(s).ok_or_else(|| SigstoreError::Time(s.to_string()))
}

fn validity(v: Option<RawValidity>) -> Result<Validity, SigstoreError> {
    let Some(v) = v else {
        return Ok(Validity::default());
    };
    Ok(Validity {
        start: v.start.as_deref().map(parse_rfc3339).transpose()?,
        end: v.end.as_deref().map(parse_rfc3339).transpose()?,
    })
}

fn log(raw: RawLog, what: &'static str) -> Result<TransparencyLog, SigstoreError> {
    let key = raw
        .public_key
        .ok_or(SigstoreError::MissingField("publicKey"))?;
    let key_der = b64(
        key.raw_bytes
            .as_deref()
            .ok_or(SigstoreError::MissingField("publicKey.rawBytes"))?,
        "publicKey.rawBytes",
    )?;
    let log_id = b64(
        raw.log_id
            .and_then(|l| l.key_id)
            .as_deref()
            .ok_or(SigstoreError::MissingField("logId.keyId"))?,
        "logId.keyId",
    )?;
    Ok(TransparencyLog {
        base_url: raw.base_url,
        key: PublicKey::from_spki_der(&key_der, what)?,
        key_der,
        log_id,
        valid_for: validity(key.valid_for)?,
    })
}

fn ca(raw: RawCa, what: &'static str) -> Result<CertificateAuthority, SigstoreError> {
    let chain = raw
        .cert_chain
        .ok_or(SigstoreError::MissingField("certChain"))?
        .certificates
        .into_iter()
        .map(|c| {
            let der = b64(
                c.raw_bytes
                    .as_deref()
                    .ok_or(SigstoreError::MissingField("rawBytes"))?,
                "rawBytes",
            )?;
            crate::cert::parse(&der).map_err(|_| SigstoreError::Certificate(what))?;
            Ok(der)
        })
        .collect::<Result<Vec<_>, SigstoreError>>()?;
    if chain.is_empty() {
        return Err(SigstoreError::MissingField("certChain.certificates"));
    }
    Ok(CertificateAuthority {
        uri: raw.uri,
        chain,
        valid_for: validity(raw.valid_for)?,
    })
}

impl TrustedRoot {
    /// Parses `trusted_root.json` (or a client trust config wrapping one).
    pub fn from_json(json: &[u8]) -> Result<Self, SigstoreError> {
        let jerr = |e: serde_json::Error| SigstoreError::Json {
            what: "trusted root",
            msg: e.to_string(),
        };
        let mut v: Value = serde_json::from_slice(json).map_err(jerr)?;
        if let Some(inner) = v.get_mut("trustedRoot") {
            v = inner.take();
        }
        let raw: RawRoot = serde_json::from_value(v).map_err(jerr)?;
        if let Some(mt) = &raw.media_type
            && !mt.starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(SigstoreError::MediaType(mt.clone()));
        }
        Ok(TrustedRoot {
            tlogs: raw
                .tlogs
                .into_iter()
                .map(|l| log(l, "tlogs"))
                .collect::<Result<_, _>>()?,
            ctlogs: raw
                .ctlogs
                .into_iter()
                .map(|l| log(l, "ctlogs"))
                .collect::<Result<_, _>>()?,
            certificate_authorities: raw
                .certificate_authorities
                .into_iter()
                .map(|c| ca(c, "certificateAuthorities"))
                .collect::<Result<_, _>>()?,
            timestamp_authorities: raw
                .timestamp_authorities
                .into_iter()
                .map(|c| ca(c, "timestampAuthorities"))
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2021-01-12T11:53:27Z").unwrap(),
            1_610_452_407
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T03:09:36.216Z").unwrap(),
            1_795_576_176
        );
        assert_eq!(
            parse_rfc3339("2021-01-12T12:53:27+01:00").unwrap(),
            1_610_452_407
        );
        assert!(parse_rfc3339("2021-01-12 11:53:27Z").is_err());
        assert!(parse_rfc3339("2021-13-12T11:53:27Z").is_err());
        assert!(parse_rfc3339("").is_err());
    }

    #[test]
    fn parse_roots() {
        let prod =
            TrustedRoot::from_json(include_bytes!("../tests/data/trusted_root.prod.json")).unwrap();
        assert_eq!(prod.certificate_authorities.len(), 2);
        assert!(prod.timestamp_authorities.is_empty());
        assert_eq!(prod.ctlogs.len(), 2);
        let py = TrustedRoot::from_json(include_bytes!(
            "../tests/data/trusted_root.prod.sigstore-python.json"
        ))
        .unwrap();
        assert_eq!(py.timestamp_authorities.len(), 1);
        assert!(
            py.tlogs
                .iter()
                .any(|t| matches!(t.key, PublicKey::Ed25519(_)))
        );
        let mock =
            TrustedRoot::from_json(include_bytes!("../tests/data/mock-trusted_root.json")).unwrap();
        assert_eq!(mock.timestamp_authorities[0].chain.len(), 2);
        assert!(matches!(
            TrustedRoot::from_json(b"{"),
            Err(SigstoreError::Json { .. })
        ));
        assert!(matches!(
            TrustedRoot::from_json(
                br#"{"tlogs":[{"publicKey":{"rawBytes":"!!"},"logId":{"keyId":"AA=="}}]}"#
            ),
            Err(SigstoreError::Base64(_))
        ));
    }
}
