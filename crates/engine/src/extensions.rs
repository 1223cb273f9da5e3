//! `keyless.additionalExtensions`: Fulcio certificate extensions that must have given values.
//!
//! Keys are Kyverno's names (`issuer`, `githubWorkflowTrigger`, `githubWorkflowSha`,
//! `githubWorkflowName`, `githubWorkflowRepository`, `githubWorkflowRef`: Fulcio OIDs
//! `1.3.6.1.4.1.57264.1.1`–`.6`, raw string values) or dotted OIDs. A value is read as a DER
//! `UTF8String` when it parses as one (Fulcio's v2 extensions), else as raw UTF-8 bytes.

use std::collections::BTreeMap;

use der::Decode as _;
use x509_cert::Certificate;

/// The OID of a Kyverno extension name (or the OID itself).
fn oid_of(name: &str) -> &str {
    match name {
        "issuer" => "1.3.6.1.4.1.57264.1.1",
        "githubWorkflowTrigger" => "1.3.6.1.4.1.57264.1.2",
        "githubWorkflowSha" => "1.3.6.1.4.1.57264.1.3",
        "githubWorkflowName" => "1.3.6.1.4.1.57264.1.4",
        "githubWorkflowRepository" => "1.3.6.1.4.1.57264.1.5",
        "githubWorkflowRef" => "1.3.6.1.4.1.57264.1.6",
        other => other,
    }
}

fn value_text(v: &[u8]) -> Option<String> {
    if let Ok(s) = der::asn1::Utf8StringRef::from_der(v) {
        return Some(s.to_string());
    }
    String::from_utf8(v.to_vec()).ok()
}

/// Checks that `leaf` (DER) carries every extension of `wanted` with the given value.
pub(crate) fn check(leaf: &[u8], wanted: &BTreeMap<String, String>) -> Result<(), String> {
    let cert = Certificate::from_der(leaf).map_err(|e| format!("certificate: {e}"))?;
    let exts: &[x509_cert::ext::Extension] = cert
        .tbs_certificate()
        .extensions()
        .map_or(&[], Vec::as_slice);
    for (name, value) in wanted {
        let oid = oid_of(name);
        let found = exts
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .and_then(|e| value_text(e.extn_value.as_bytes()));
        match found {
            Some(v) if &v == value => {}
            Some(v) => {
                return Err(format!(
                    "certificate extension {name} ({oid}) is {v:?}, expected {value:?}"
                ));
            }
            None => {
                return Err(format!(
                    "certificate has no extension {name} ({oid}) (expected {value:?})"
                ));
            }
        }
    }
    Ok(())
}
