//! Rekor checks: signed entry timestamp (SET), RFC 6962/9162 Merkle inclusion proof, checkpoint (C2SP
//! signed note) signature, and consistency of the canonicalized entry body with the bundle.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::VerifyFailure;
use crate::bundle::{InclusionProof, TlogEntry};
use crate::crypto::{HashAlg, PublicKey, pem_decode};
use crate::trust::TransparencyLog;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Verifies the SET with the log selected by `logId`; returns the verified integrated time.
pub(crate) fn verify_set<'a>(
    e: &TlogEntry,
    logs: &'a [TransparencyLog],
) -> Result<(i64, &'a TransparencyLog), VerifyFailure> {
    let fail = |m: &str| VerifyFailure::SetInvalid(m.to_string());
    let set = e
        .signed_entry_timestamp
        .as_ref()
        .ok_or_else(|| fail("no inclusion promise"))?;
    let log = find_log(e, logs)
        .map_err(|_| fail("no trusted Rekor key for this logId at integratedTime"))?;
    let canonical = format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
        json_str(&STANDARD.encode(&e.canonicalized_body)),
        e.integrated_time,
        json_str(&hex(&e.log_id)),
        e.log_index
    );
    if !log.key.verify(canonical.as_bytes(), set, HashAlg::Sha256) {
        return Err(fail("signature does not verify with the Rekor key"));
    }
    Ok((e.integrated_time, log))
}

/// The trusted Rekor log for an entry (by `logId`, key valid at `integratedTime` when present).
pub(crate) fn find_log<'a>(
    e: &TlogEntry,
    logs: &'a [TransparencyLog],
) -> Result<&'a TransparencyLog, ()> {
    logs.iter()
        .find(|l| {
            l.log_id == e.log_id
                && (e.integrated_time == 0 || l.valid_for.contains(e.integrated_time))
        })
        .ok_or(())
}

fn node(l: &[u8], r: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().to_vec()
}

/// RFC 9162 §2.1.3.2 inclusion verification.
pub(crate) fn verify_inclusion(p: &InclusionProof, body: &[u8]) -> Result<(), VerifyFailure> {
    let fail = |m: &str| VerifyFailure::InclusionProofInvalid(m.to_string());
    if p.log_index >= p.tree_size {
        return Err(fail("index beyond tree size"));
    }
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(body);
    let mut r = h.finalize().to_vec();
    let (mut f, mut s) = (p.log_index, p.tree_size - 1);
    for x in &p.hashes {
        if x.len() != 32 {
            return Err(fail("hash of wrong length"));
        }
        if s == 0 {
            return Err(fail("proof too long"));
        }
        if f & 1 == 1 || f == s {
            r = node(x, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node(&r, x);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(fail("proof too short"));
    }
    if r != p.root_hash {
        return Err(fail("computed root does not match rootHash"));
    }
    Ok(())
}

/// Verifies the checkpoint: size/root match the proof, and a signature line verifies with the log key.
pub(crate) fn verify_checkpoint(
    p: &InclusionProof,
    log: &TransparencyLog,
) -> Result<(), VerifyFailure> {
    let fail = |m: &str| VerifyFailure::CheckpointInvalid(m.to_string());
    let env = p
        .checkpoint
        .as_deref()
        .ok_or_else(|| fail("missing checkpoint"))?;
    let split = env
        .find("\n\n")
        .ok_or_else(|| fail("no blank line in signed note"))?;
    let text = &env[..split + 1];
    let mut lines = text.lines();
    let origin = lines.next().ok_or_else(|| fail("no origin"))?;
    let size: u64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| fail("bad tree size"))?;
    let root = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .ok_or_else(|| fail("bad root hash"))?;
    if size != p.tree_size || root != p.root_hash {
        return Err(fail(
            "tree size or root hash differ from the inclusion proof",
        ));
    }
    let hint: Vec<u8> = match &log.key {
        PublicKey::Ed25519(k) => {
            let name = origin.to_string();
            let mut h = Sha256::new();
            h.update(name.as_bytes());
            h.update([0x0a, 0x01]);
            h.update(k.as_bytes());
            h.finalize()[..4].to_vec()
        }
        _ => Sha256::digest(&log.key_der)[..4].to_vec(),
    };
    for line in env[split + 2..].lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((_, sig_b64)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(raw) = STANDARD.decode(sig_b64) else {
            continue;
        };
        if raw.len() < 5 || raw[..4] != hint[..] {
            continue;
        }
        if log.key.verify(text.as_bytes(), &raw[4..], HashAlg::Sha256) {
            return Ok(());
        }
        return Err(fail("signature does not verify with the log key"));
    }
    Err(fail("no signature from the log key"))
}

/// What the bundle claims, to compare with the tlog body.
pub(crate) struct Expect<'a> {
    /// The signature bytes.
    pub signature: &'a [u8],
    /// DER of the leaf certificate, or SPKI DER of the key.
    pub key_der: &'a [u8],
    /// Whether `key_der` is a certificate (else SPKI).
    pub is_cert: bool,
    /// hashedrekord: sha256 of the artifact.
    pub artifact_sha256: Option<&'a [u8]>,
    /// dsse: (payload, payloadType).
    pub dsse: Option<(&'a [u8], &'a str)>,
}

fn pem_matches(b64pem: Option<&str>, e: &Expect<'_>) -> bool {
    let Some(pem) = b64pem
        .and_then(|s| STANDARD.decode(s).ok())
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return false;
    };
    let label = if e.is_cert {
        "CERTIFICATE"
    } else {
        "PUBLIC KEY"
    };
    pem_decode(&pem, label).is_some_and(|d| d == e.key_der)
}

/// Checks the canonicalized body against the bundle (hashedrekord 0.0.1, rekord 0.0.1, dsse 0.0.1).
pub(crate) fn verify_body(entry: &TlogEntry, e: &Expect<'_>) -> Result<(), VerifyFailure> {
    let fail = |m: &str| VerifyFailure::BodyMismatch(m.to_string());
    let body: Value =
        serde_json::from_slice(&entry.canonicalized_body).map_err(|_| fail("body is not JSON"))?;
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    let ver = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != entry.kind || ver != entry.version {
        return Err(fail("kind/version differ from kindVersion"));
    }
    let spec = body.get("spec").ok_or_else(|| fail("no spec"))?;
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    match (kind, ver) {
        // `rekord` 0.0.1 (older cosign legacy signatures) has the same hash/signature/publicKey layout.
        ("hashedrekord", "0.0.1") | ("rekord", "0.0.1") => {
            let want = e
                .artifact_sha256
                .ok_or_else(|| fail("hashedrekord entry for a DSSE bundle"))?;
            if s(spec, "/data/hash/algorithm").as_deref() != Some("sha256")
                || s(spec, "/data/hash/value") != Some(hex(want))
            {
                return Err(fail("hash differs from the artifact digest"));
            }
            if s(spec, "/signature/content")
                .and_then(|c| STANDARD.decode(c).ok())
                .as_deref()
                != Some(e.signature)
            {
                return Err(fail("signature differs"));
            }
            if !pem_matches(s(spec, "/signature/publicKey/content").as_deref(), e) {
                return Err(fail("public key / certificate differs"));
            }
        }
        ("dsse", "0.0.1") => {
            let (payload, ptype) = e
                .dsse
                .ok_or_else(|| fail("dsse entry for a message signature"))?;
            if s(spec, "/payloadHash/algorithm").as_deref() != Some("sha256")
                || s(spec, "/payloadHash/value") != Some(hex(&Sha256::digest(payload)))
            {
                return Err(fail("payloadHash differs"));
            }
            let env = format!(
                "{{\"payload\":{},\"payloadType\":{},\"signatures\":[{{\"sig\":{}}}]}}",
                json_str(&STANDARD.encode(payload)),
                json_str(ptype),
                json_str(&STANDARD.encode(e.signature))
            );
            if s(spec, "/envelopeHash/algorithm").as_deref() != Some("sha256")
                || s(spec, "/envelopeHash/value") != Some(hex(&Sha256::digest(env.as_bytes())))
            {
                return Err(fail("envelopeHash differs"));
            }
            let sigs = spec
                .get("signatures")
                .and_then(Value::as_array)
                .ok_or_else(|| fail("no signatures"))?;
            let [one] = sigs.as_slice() else {
                return Err(fail("expected exactly one signature"));
            };
            if s(one, "/signature")
                .and_then(|c| STANDARD.decode(c).ok())
                .as_deref()
                != Some(e.signature)
            {
                return Err(fail("signature differs"));
            }
            if !pem_matches(s(one, "/verifier").as_deref(), e) {
                return Err(fail("verifier differs"));
            }
        }
        _ => return Err(fail("unsupported entry kind/version")),
    }
    Ok(())
}
