//! X.509 checks for Fulcio leaves and CA/TSA chains: signature chaining at a given time, key usage,
//! critical extensions, SAN identities, Fulcio issuer OIDs, and embedded SCTs (RFC 6962).

use der::{Decode as _, Encode as _};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;

use crate::VerifyFailure;
use crate::crypto::{HashAlg, PublicKey, RsaPadding};
use crate::der_util;
use crate::trust::TransparencyLog;

const OID_SAN: &str = "2.5.29.17";
const OID_KU: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";
const OID_BC: &str = "2.5.29.19";
/// Critical extensions we understand.
const KNOWN_CRITICAL: &[&str] = &[
    OID_SAN,
    OID_KU,
    OID_EKU,
    OID_BC,
    "2.5.29.30",
    "2.5.29.32",
    "2.5.29.36",
    "2.5.29.54",
];
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_SCT: &str = "1.3.6.1.4.1.11129.2.4.2";
const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
pub(crate) const OID_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";

/// Parses DER X.509.
pub(crate) fn parse(der: &[u8]) -> Result<Certificate, der::Error> {
    Certificate::from_der(der)
}

/// The raw TBSCertificate bytes of a DER certificate.
fn tbs_bytes(der: &[u8]) -> Option<&[u8]> {
    let outer = der_util::single(der)?;
    let (tbs, _) = der_util::split(outer.content)?;
    Some(tbs.whole)
}

/// The certificate's public key.
pub(crate) fn public_key(cert: &Certificate) -> Option<PublicKey> {
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()?;
    PublicKey::from_spki_der(&spki, "certificate").ok()
}

/// Whether `der` (child) is signed by `issuer`.
pub(crate) fn signed_by(der: &[u8], child: &Certificate, issuer: &Certificate) -> bool {
    if child.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let (Some(tbs), Some(key)) = (tbs_bytes(der), public_key(issuer)) else {
        return false;
    };
    let Some(sig) = child.signature().as_bytes() else {
        return false;
    };
    let alg = child.signature_algorithm();
    let oid = alg.oid.to_string();
    match (HashAlg::from_sig_oid(&oid), &key) {
        (Some(h), PublicKey::P256(_) | PublicKey::P384(_)) if oid.starts_with(OID_ECDSA_SIG) => {
            key.verify(tbs, sig, h)
        }
        (Some(h), PublicKey::Rsa(_)) if oid.starts_with(OID_PKCS1) => {
            key.verify_rsa_prehash(&h.digest(tbs), sig, RsaPadding::Pkcs1v15)
        }
        (None, PublicKey::Rsa(_)) if oid == OID_RSA_PSS => {
            let params = alg.parameters.as_ref().and_then(|p| p.to_der().ok());
            match params.as_deref().and_then(pss_hash) {
                Some(h) => key.verify_rsa_prehash(&h.digest(tbs), sig, RsaPadding::Pss),
                None => false,
            }
        }
        (None, PublicKey::Ed25519(_)) if oid == "1.3.101.112" => {
            key.verify(tbs, sig, HashAlg::Sha256)
        }
        _ => false,
    }
}

const OID_ECDSA_SIG: &str = "1.2.840.10045.4.3.";
const OID_PKCS1: &str = "1.2.840.113549.1.1.";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";

/// The hash of RSASSA-PSS-params (RFC 4055): `[0] hashAlgorithm` must be SHA-256/384/512 (the SHA-1
/// default is refused) and the MGF1 hash, when given, the same.
pub(crate) fn pss_hash(params_der: &[u8]) -> Option<HashAlg> {
    let seq = der_util::single(params_der).filter(|t| t.tag == 0x30)?;
    let fields = der_util::children(seq.content)?;
    let alg_hash = |t: &der_util::Tlv<'_>| -> Option<String> {
        let alg = der_util::single(t.content).filter(|a| a.tag == 0x30)?;
        let parts = der_util::children(alg.content)?;
        parts
            .first()
            .filter(|o| o.tag == 0x06)
            .and_then(|o| der_util::oid_string(o.content))
    };
    let hash = HashAlg::from_hash_oid(&alg_hash(fields.iter().find(|f| f.tag == 0xa0)?)?)?;
    if let Some(mgf) = fields.iter().find(|f| f.tag == 0xa1) {
        let alg = der_util::single(mgf.content).filter(|a| a.tag == 0x30)?;
        let parts = der_util::children(alg.content)?;
        let mgf_oid = parts
            .first()
            .and_then(|o| der_util::oid_string(o.content))?;
        let inner = parts.get(1).filter(|p| p.tag == 0x30)?;
        let inner_parts = der_util::children(inner.content)?;
        let mgf_hash = inner_parts
            .first()
            .and_then(|o| der_util::oid_string(o.content))?;
        if mgf_oid != OID_MGF1 || HashAlg::from_hash_oid(&mgf_hash) != Some(hash) {
            return None;
        }
    }
    Some(hash)
}

/// Validity window in Unix seconds.
pub(crate) fn validity(cert: &Certificate) -> (i64, i64) {
    let v = cert.tbs_certificate().validity();
    let secs = |t: &x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    (secs(&v.not_before), secs(&v.not_after))
}

/// Whether `t` lies in the certificate's validity.
pub(crate) fn valid_at(cert: &Certificate, t: i64) -> bool {
    let (nb, na) = validity(cert);
    nb <= t && t <= na
}

fn ext_value<'a>(cert: &'a Certificate, oid: &str) -> Option<&'a [u8]> {
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
        .map(|e| e.extn_value.as_bytes())
}

/// Rejects critical extensions outside [`KNOWN_CRITICAL`].
pub(crate) fn check_critical(cert: &Certificate) -> Result<(), VerifyFailure> {
    for e in cert
        .tbs_certificate()
        .extensions()
        .map(|e| e.as_slice())
        .unwrap_or_default()
    {
        let oid = e.extn_id.to_string();
        if e.critical && !KNOWN_CRITICAL.contains(&oid.as_str()) {
            return Err(VerifyFailure::UnknownCriticalExtension(oid));
        }
    }
    Ok(())
}

/// Whether the certificate may act as a CA (basicConstraints cA, when present; v1 roots have none).
pub(crate) fn is_ca(cert: &Certificate) -> bool {
    match ext_value(cert, OID_BC) {
        None => cert.tbs_certificate().extensions().is_none(),
        Some(v) => der_util::single(v)
            .and_then(|seq| der_util::children(seq.content))
            .and_then(|c| c.first().map(|b| b.tag == 0x01 && b.content == [0xff]))
            .unwrap_or(false),
    }
}

/// Whether the EKU extension lists `oid`.
pub(crate) fn has_eku(cert: &Certificate, oid: &str) -> bool {
    ext_value(cert, OID_EKU)
        .and_then(der_util::single)
        .and_then(|seq| der_util::children(seq.content))
        .is_some_and(|c| {
            c.iter()
                .any(|o| o.tag == 0x06 && der_util::oid_string(o.content).as_deref() == Some(oid))
        })
}

/// Leaf checks: codeSigning EKU, digitalSignature key usage.
pub(crate) fn check_leaf_usage(cert: &Certificate) -> Result<(), VerifyFailure> {
    if !has_eku(cert, OID_CODE_SIGNING) {
        return Err(VerifyFailure::KeyUsageInvalid(
            "missing codeSigning extended key usage",
        ));
    }
    let ds = ext_value(cert, OID_KU)
        .and_then(der_util::single)
        .filter(|b| b.tag == 0x03)
        .and_then(|b| b.content.get(1).map(|first| first & 0x80 != 0))
        .unwrap_or(false);
    if !ds {
        return Err(VerifyFailure::KeyUsageInvalid(
            "missing digitalSignature key usage",
        ));
    }
    Ok(())
}

/// SAN identities (email, URI, DNS, IP as text, OtherName UTF8String values).
pub(crate) fn san_identities(cert: &Certificate) -> Vec<String> {
    let Some(v) = ext_value(cert, OID_SAN) else {
        return Vec::new();
    };
    let Ok(names) = Vec::<GeneralName>::from_der(v) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::Rfc822Name(s)
            | GeneralName::DnsName(s)
            | GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
            GeneralName::OtherName(o) => {
                let inner = o.value.value();
                der::asn1::Utf8StringRef::from_der(inner)
                    .ok()
                    .map(|s| s.to_string())
            }
            GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
                4 => <[u8; 4]>::try_from(ip.as_bytes())
                    .ok()
                    .map(|a| std::net::Ipv4Addr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(ip.as_bytes())
                    .ok()
                    .map(|a| std::net::Ipv6Addr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The Fulcio OIDC issuer: OID .1.8 (DER UTF8String), else legacy .1.1 (raw bytes).
pub(crate) fn oidc_issuer(cert: &Certificate) -> Option<String> {
    if let Some(v) = ext_value(cert, OID_ISSUER_V2)
        && let Ok(s) = der::asn1::Utf8StringRef::from_der(v)
    {
        return Some(s.to_string());
    }
    ext_value(cert, OID_ISSUER_V1).and_then(|v| String::from_utf8(v.to_vec()).ok())
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x))
}

/// One parsed SCT (RFC 6962 §3.2).
struct Sct<'a> {
    log_id: &'a [u8],
    timestamp: u64,
    extensions: &'a [u8],
    hash_alg: u8,
    signature: &'a [u8],
}

fn parse_sct_list(v: &[u8]) -> Option<Vec<Sct<'_>>> {
    let os = der_util::single(v).filter(|t| t.tag == 0x04)?.content;
    let total = usize::try_from(be(os.get(..2)?)).ok()?;
    let mut list = os.get(2..)?;
    if list.len() != total {
        return None;
    }
    let mut out = Vec::new();
    while !list.is_empty() {
        let len = usize::try_from(be(list.get(..2)?)).ok()?;
        let sct = list.get(2..2 + len)?;
        list = &list[2 + len..];
        if *sct.first()? != 0 {
            continue; // unknown SCT version
        }
        let log_id = sct.get(1..33)?;
        let timestamp = be(sct.get(33..41)?);
        let elen = usize::try_from(be(sct.get(41..43)?)).ok()?;
        let extensions = sct.get(43..43 + elen)?;
        let rest = sct.get(43 + elen..)?;
        let hash_alg = *rest.first()?;
        let slen = usize::try_from(be(rest.get(2..4)?)).ok()?;
        let signature = rest.get(4..4 + slen)?;
        out.push(Sct {
            log_id,
            timestamp,
            extensions,
            hash_alg,
            signature,
        });
    }
    Some(out)
}

/// TBSCertificate DER with the SCT-list extension removed (the precertificate TBS).
fn precert_tbs(der: &[u8]) -> Option<Vec<u8>> {
    let tbs = der_util::single(tbs_bytes(der)?)?;
    let mut content = Vec::new();
    for field in der_util::children(tbs.content)? {
        if field.tag == 0xa3 {
            let exts = der_util::single(field.content)?;
            let mut kept = Vec::new();
            for ext in der_util::children(exts.content)? {
                let id = der_util::children(ext.content)?.first().copied()?;
                if der_util::oid_string(id.content).as_deref() != Some(OID_SCT) {
                    kept.extend_from_slice(ext.whole);
                }
            }
            content.extend(der_util::encode(0xa3, &der_util::encode(0x30, &kept)));
        } else {
            content.extend_from_slice(field.whole);
        }
    }
    Some(der_util::encode(0x30, &content))
}

/// Verifies that at least one embedded SCT verifies with a trusted CT log key.
pub(crate) fn verify_sct(
    leaf_der: &[u8],
    leaf: &Certificate,
    issuer: &Certificate,
    ctlogs: &[TransparencyLog],
) -> Result<(), VerifyFailure> {
    let fail = |m: &str| VerifyFailure::SctInvalid(m.to_string());
    let v = ext_value(leaf, OID_SCT).ok_or_else(|| fail("certificate has no embedded SCT"))?;
    let scts = parse_sct_list(v).ok_or_else(|| fail("malformed SCT list"))?;
    let tbs = precert_tbs(leaf_der).ok_or_else(|| fail("cannot rebuild precertificate TBS"))?;
    let issuer_spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| fail("issuer key"))?;
    let issuer_key_hash = Sha256::digest(&issuer_spki);
    let tbs_len = u32::try_from(tbs.len())
        .map_err(|_| fail("TBS too large"))?
        .to_be_bytes();
    for sct in scts {
        let Some(log) = ctlogs.iter().find(|l| l.log_id == sct.log_id) else {
            continue;
        };
        let secs = i64::try_from(sct.timestamp / 1000).unwrap_or(i64::MAX);
        if !log.valid_for.contains(secs) || sct.hash_alg != 4 {
            continue;
        }
        let mut msg = vec![0u8, 0u8];
        msg.extend_from_slice(&sct.timestamp.to_be_bytes());
        msg.extend_from_slice(&[0, 1]);
        msg.extend_from_slice(&issuer_key_hash);
        msg.extend_from_slice(&tbs_len[1..]);
        msg.extend_from_slice(&tbs);
        msg.extend_from_slice(
            &u16::try_from(sct.extensions.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        msg.extend_from_slice(sct.extensions);
        if log.key.verify(&msg, sct.signature, HashAlg::Sha256) {
            return Ok(());
        }
    }
    Err(fail("no SCT verifies with a trusted CT log key"))
}

/// Verifies `chain[0]` (the leaf, DER) up through `path` (issuer first, root last) at each time in `times`:
/// every signature, CA flag, and validity window. Returns the leaf's direct issuer.
pub(crate) fn verify_path(
    leaf_der: &[u8],
    leaf: &Certificate,
    path: &[Vec<u8>],
    times: &[i64],
) -> Result<Certificate, VerifyFailure> {
    let bad = |m: String| VerifyFailure::ChainInvalid(m);
    let certs = path
        .iter()
        .map(|d| parse(d).map(|c| (d.as_slice(), c)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("unparseable CA certificate".into()))?;
    let Some((_, first)) = certs.first() else {
        return Err(bad("empty CA chain".into()));
    };
    if !signed_by(leaf_der, leaf, first) {
        return Err(bad("leaf is not signed by the CA".into()));
    }
    for (i, (der, c)) in certs.iter().enumerate() {
        if !is_ca(c) {
            return Err(bad(format!("chain certificate {i} is not a CA")));
        }
        check_critical(c)?;
        let parent = certs.get(i + 1).map(|(_, p)| p).unwrap_or(c);
        if !signed_by(der, c, parent) {
            return Err(bad(format!(
                "chain certificate {i} is not signed by its issuer"
            )));
        }
    }
    for &t in times {
        for c in std::iter::once(leaf).chain(certs.iter().map(|(_, c)| c)) {
            if !valid_at(c, t) {
                return Err(VerifyFailure::CertificateExpiredAtSigningTime(t));
            }
        }
    }
    Ok(first.clone())
}
