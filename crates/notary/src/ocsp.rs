//! OCSP (RFC 6960) as notation-core-go's revocation package uses it: a request with one SHA-256
//! CertID and no nonce, and the evaluation of the response: `successful` status, a
//! BasicOCSPResponse signed either by the issuer itself or by a delegated responder certificate the
//! response carries (issued by the issuer, id-kp-OCSPSigning, valid now), a SingleResponse for
//! exactly this certificate (CertID hashes recomputed with the response's SHA-2 algorithm), and
//! `thisUpdate`/`nextUpdate` around the verification time. `good` and `revoked` are definitive;
//! the responder's `unknown` and every failure leave the status unknown.

use crate::crypto::Hash;
use crate::der::{self as tlv, Tlv, encode, oid, seq, uint};
use crate::revocation::{CLOCK_SKEW, reason_name};
use crate::time::format_rfc3339;
use crate::x509::{Cert, trim_serial};

/// id-pkix-ocsp-basic.
const OID_OCSP_BASIC: &str = "1.3.6.1.5.5.7.48.1.1";

/// A definitive answer from a responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OcspStatus {
    /// `good`.
    Good,
    /// `revoked`, with a description (time and reason).
    Revoked(String),
    /// The responder's `unknown`.
    Unknown,
}

fn cert_id(hash: Hash, cert: &Cert, issuer: &Cert) -> Vec<u8> {
    seq(&[
        &seq(&[&oid(hash.oid()), &encode(0x05, &[])]),
        &encode(0x04, &hash.digest(&issuer.subject_der())),
        &encode(0x04, &hash.digest(&issuer.public_key_bits())),
        &uint(&cert.serial_bytes()),
    ])
}

/// A DER OCSPRequest for `cert` (issued by `issuer`): one SHA-256 CertID, unsigned, no nonce.
pub(crate) fn request(cert: &Cert, issuer: &Cert) -> Vec<u8> {
    let req = seq(&[&cert_id(Hash::Sha256, cert, issuer)]);
    let tbs = seq(&[&seq(&[&req])]);
    seq(&[&tbs])
}

fn kids<'a>(t: &Tlv<'a>, what: &str) -> Result<Vec<Tlv<'a>>, String> {
    tlv::children(t.content).ok_or_else(|| format!("malformed OCSP {what}"))
}

fn gen_time(t: Option<&Tlv<'_>>, what: &str) -> Result<i64, String> {
    t.filter(|t| t.tag == 0x18)
        .and_then(|t| sigil_oci::time::parse_generalized_time(t.content))
        .ok_or_else(|| format!("OCSP {what} is not a GeneralizedTime"))
}

fn response_status_name(s: u8) -> &'static str {
    match s {
        1 => "malformedRequest",
        2 => "internalError",
        3 => "tryLater",
        5 => "sigRequired",
        6 => "unauthorized",
        _ => "unknown status",
    }
}

/// Evaluates a DER OCSPResponse for `cert`. `Err` = no usable answer (the status stays unknown).
pub(crate) fn evaluate(
    der: &[u8],
    cert: &Cert,
    issuer: &Cert,
    signing_time: Option<i64>,
    now: i64,
) -> Result<OcspStatus, String> {
    let top = tlv::single(der)
        .filter(|t| t.tag == 0x30)
        .ok_or("not a DER OCSPResponse")?;
    let parts = kids(&top, "response")?;
    let status = parts
        .first()
        .filter(|t| t.tag == 0x0a && t.content.len() == 1)
        .map(|t| t.content[0])
        .ok_or("malformed OCSP responseStatus")?;
    if status != 0 {
        return Err(format!(
            "the OCSP responder answered {} ({status})",
            response_status_name(status)
        ));
    }
    let rb = parts
        .get(1)
        .filter(|t| t.tag == 0xa0)
        .and_then(|t| tlv::single(t.content))
        .ok_or("the OCSP response has no responseBytes")?;
    let rb = kids(&rb, "responseBytes")?;
    if tlv::oid_of(rb.first()).as_deref() != Some(OID_OCSP_BASIC) {
        return Err("the OCSP response type is not id-pkix-ocsp-basic".into());
    }
    let basic = rb
        .get(1)
        .filter(|t| t.tag == 0x04)
        .and_then(|t| tlv::single(t.content))
        .ok_or("malformed OCSP responseBytes")?;
    let basic = kids(&basic, "BasicOCSPResponse")?;
    let (Some(tbs), Some(alg), Some(sig)) = (basic.first(), basic.get(1), basic.get(2)) else {
        return Err("malformed BasicOCSPResponse".into());
    };
    let alg_oid = tlv::oid_of(kids(alg, "signatureAlgorithm")?.first())
        .ok_or("malformed OCSP signatureAlgorithm")?;
    if sig.tag != 0x03 || sig.content.first() != Some(&0) {
        return Err("malformed OCSP signature".into());
    }
    let sig = &sig.content[1..];
    let verifies = |c: &Cert| {
        c.public_key()
            .is_ok_and(|k| k.verify_pkix(&alg_oid, None, tbs.whole, sig))
    };
    if !verifies(issuer) {
        let mut included = Vec::new();
        if let Some(certs) = basic.get(3).filter(|t| t.tag == 0xa0) {
            let list = tlv::single(certs.content).ok_or("malformed OCSP certs")?;
            for c in kids(&list, "certs")? {
                included.push(Cert::from_der(c.whole).map_err(|e| format!("OCSP certs: {e}"))?);
            }
        }
        let delegated = included
            .iter()
            .any(|c| c.issued_by(issuer) && c.has_ocsp_signing() && c.valid_at(now) && verifies(c));
        if !delegated {
            return Err(format!(
                "the OCSP response is not signed by the issuer {:?} or by a responder certificate it issued with id-kp-OCSPSigning",
                issuer.subject()
            ));
        }
    }
    let data = kids(tbs, "ResponseData")?;
    let mut i = usize::from(data.first().is_some_and(|t| t.tag == 0xa0));
    i += 2; // responderID, producedAt
    let responses = data
        .get(i)
        .filter(|t| t.tag == 0x30)
        .ok_or("the OCSP response has no responses")?;
    let serial = cert.serial_bytes();
    for single in kids(responses, "responses")? {
        let p = kids(&single, "SingleResponse")?;
        let Some(id) = p.first() else { continue };
        let id = kids(id, "CertID")?;
        let Some(hash) = id
            .first()
            .and_then(|a| tlv::children(a.content))
            .and_then(|a| tlv::oid_of(a.first()))
            .and_then(|o| Hash::from_oid(&o))
        else {
            continue;
        };
        let matches = id.get(1).map(|t| t.content)
            == Some(hash.digest(&issuer.subject_der()).as_slice())
            && id.get(2).map(|t| t.content)
                == Some(hash.digest(&issuer.public_key_bits()).as_slice())
            && id.get(3).map(|t| trim_serial(t.content)) == Some(serial.clone());
        if !matches {
            continue;
        }
        let this_update = gen_time(p.get(2), "thisUpdate")?;
        if this_update > now.saturating_add(CLOCK_SKEW) {
            return Err(format!(
                "the OCSP response's thisUpdate {} is in the future",
                format_rfc3339(this_update)
            ));
        }
        if let Some(n) = p.get(3).filter(|t| t.tag == 0xa0) {
            let next = gen_time(tlv::single(n.content).as_ref(), "nextUpdate")?;
            if now > next {
                return Err(format!(
                    "expired OCSP response: the verification time {} is after its nextUpdate {}",
                    format_rfc3339(now),
                    format_rfc3339(next)
                ));
            }
        }
        let status = p
            .get(1)
            .ok_or("the OCSP SingleResponse has no certStatus")?;
        return match status.tag {
            0x80 => Ok(OcspStatus::Good),
            0x82 => Ok(OcspStatus::Unknown),
            0xa1 => {
                let info = kids(status, "RevokedInfo")?;
                let when = gen_time(info.first(), "revocationTime")?;
                let reason = info
                    .get(1)
                    .filter(|t| t.tag == 0xa0)
                    .and_then(|t| tlv::single(t.content))
                    .filter(|t| t.tag == 0x0a && t.content.len() == 1)
                    .map(|t| t.content[0]);
                if signing_time.is_some_and(|st| st < when) {
                    // Signed before the revocation (signing-authority time).
                    return Ok(OcspStatus::Good);
                }
                Ok(OcspStatus::Revoked(format!(
                    "revoked on {} (reason {})",
                    format_rfc3339(when),
                    reason_name(reason)
                )))
            }
            t => Err(format!("unknown OCSP certStatus tag {t:#04x}")),
        };
    }
    Err("the OCSP response has no status for the certificate".into())
}
