//! RFC 3161 timestamps as the Notary Project uses them: requests over the primitive signature bytes
//! (`certReq = true`, random nonce), fetching a token from a TSA over HTTP, and verification of a
//! TimeStampToken (CMS SignedData, BER accepted) against the `tsa` trust store: TSTInfo version and
//! message imprint, accuracy, the signing-certificate-v2 attribute naming the signer, the signed
//! attributes (contentType, messageDigest), the signer's signature, a chain built from the token's
//! certificates to a trusted root at `genTime`, notation's timestamping-chain rules; revocation of the TSA
//! chain either offline ([`verify_token`]: certificates naming OCSP/CRL responders fail) or by the
//! caller ([`verify_token_chain`], which the verifier combines with [`crate::revocation`]).

use crate::crypto::Hash;
use crate::der::{self as tlv, Tlv};
use crate::error::NotaryError;
use crate::revocation::{RevocationChecker, RevocationOptions, final_result};
use crate::time::now;
use crate::x509::{Cert, validate_timestamping_chain};

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
const OID_SIGNING_CERT_V2: &str = "1.2.840.113549.1.9.16.2.47";
const OID_BASELINE_POLICY: &str = "0.4.0.2023.1.1";

/// A verified timestamp.
#[derive(Debug, Clone)]
pub struct VerifiedTimestamp {
    /// `genTime` (Unix seconds).
    pub gen_time: i64,
    /// Accuracy in seconds (rounded up).
    pub accuracy: i64,
    /// The TSA chain, signer first, trusted root last.
    pub chain: Vec<Cert>,
}

/// A parsed, not yet verified timestamp token.
#[derive(Debug, Clone)]
pub struct TimestampInfo {
    /// `genTime` (Unix seconds).
    pub gen_time: i64,
    /// Accuracy in seconds (rounded up).
    pub accuracy: i64,
    /// The TSA policy OID.
    pub policy: String,
    /// Certificates carried in the token.
    pub certificates: Vec<Cert>,
}

fn fail(m: impl Into<String>) -> NotaryError {
    NotaryError::Timestamp(m.into())
}

fn kids(t: Tlv<'_>) -> Result<Vec<Tlv<'_>>, NotaryError> {
    tlv::children(t.content).ok_or_else(|| fail("malformed DER"))
}

fn alg_hash(t: Option<&Tlv<'_>>) -> Option<Hash> {
    let k = tlv::children(t?.content)?;
    Hash::from_oid(&tlv::oid_of(k.first())?)
}

fn int_value(t: &Tlv<'_>) -> i64 {
    t.content.iter().fold(0i64, |a, b| {
        a.saturating_mul(256).saturating_add(i64::from(*b))
    })
}

struct Parsed {
    tst_der: Vec<u8>,
    signed_data: Vec<u8>,
}

fn parse_outer(token: &[u8]) -> Result<Parsed, NotaryError> {
    let der = tlv::ber_to_der(token).ok_or_else(|| fail("timestamp token is not valid BER/DER"))?;
    let top = kids(tlv::single(&der).ok_or_else(|| fail("timestamp token is not DER"))?)?;
    if tlv::oid_of(top.first()).as_deref() != Some(OID_SIGNED_DATA) {
        return Err(fail("timestamp token is not a CMS SignedData"));
    }
    let sd_wrap = top
        .get(1)
        .filter(|t| t.tag == 0xa0)
        .ok_or_else(|| fail("timestamp token has no SignedData content"))?;
    let sd = tlv::single(sd_wrap.content).ok_or_else(|| fail("bad SignedData"))?;
    let parts = kids(sd)?;
    let encap = kids(
        *parts
            .get(2)
            .ok_or_else(|| fail("SignedData has no encapContentInfo"))?,
    )?;
    if tlv::oid_of(encap.first()).as_deref() != Some(OID_TST_INFO) {
        return Err(fail("eContentType is not id-ct-TSTInfo"));
    }
    let e_wrap = encap
        .get(1)
        .filter(|t| t.tag == 0xa0)
        .ok_or_else(|| fail("no eContent"))?;
    let tst = tlv::single(e_wrap.content)
        .filter(|t| t.tag == 0x04)
        .ok_or_else(|| fail("eContent is not an OCTET STRING"))?;
    Ok(Parsed {
        tst_der: tst.content.to_vec(),
        signed_data: sd.whole.to_vec(),
    })
}

/// Parses a token without verifying it (for `inspect`).
pub fn parse_token(token: &[u8]) -> Result<TimestampInfo, NotaryError> {
    let p = parse_outer(token)?;
    let (info, _, _) = parse_tst(&p.tst_der)?;
    let sd = tlv::single(&p.signed_data).ok_or_else(|| fail("bad SignedData"))?;
    let certificates = token_certs(&kids(sd)?)?;
    Ok(TimestampInfo {
        certificates,
        ..info
    })
}

/// `(info, imprint hash, imprint)`.
fn parse_tst(tst_der: &[u8]) -> Result<(TimestampInfo, Hash, Vec<u8>), NotaryError> {
    let tst = kids(tlv::single(tst_der).ok_or_else(|| fail("bad TSTInfo"))?)?;
    if tst.first().map(int_value) != Some(1) {
        return Err(fail("TSTInfo version must be 1"));
    }
    let policy = tlv::oid_of(tst.get(1)).ok_or_else(|| fail("TSTInfo has no policy"))?;
    let imprint = kids(
        *tst.get(2)
            .ok_or_else(|| fail("TSTInfo has no messageImprint"))?,
    )?;
    let ih = alg_hash(imprint.first())
        .ok_or_else(|| fail("messageImprint hash algorithm is not SHA-256/384/512"))?;
    let hashed = imprint
        .get(1)
        .filter(|t| t.tag == 0x04)
        .ok_or_else(|| fail("messageImprint has no hashedMessage"))?
        .content
        .to_vec();
    let gen_time = tst
        .get(4)
        .filter(|t| t.tag == 0x18)
        .and_then(|t| sigil_oci::time::parse_generalized_time(t.content))
        .ok_or_else(|| fail("TSTInfo genTime is missing or malformed"))?;
    let mut accuracy_ms = 0i64;
    if let Some(acc) = tst.get(5).filter(|t| t.tag == 0x30) {
        for a in kids(*acc)? {
            match a.tag {
                0x02 => accuracy_ms += int_value(&a) * 1000,
                0x80 => accuracy_ms += int_value(&a),
                0x81 => accuracy_ms += i64::from(int_value(&a) > 0),
                _ => {}
            }
        }
    }
    if accuracy_ms == 0 && policy == OID_BASELINE_POLICY {
        accuracy_ms = 1000;
    }
    Ok((
        TimestampInfo {
            gen_time,
            accuracy: (accuracy_ms + 999) / 1000,
            policy,
            certificates: Vec::new(),
        },
        ih,
        hashed,
    ))
}

fn token_certs(sd: &[Tlv<'_>]) -> Result<Vec<Cert>, NotaryError> {
    let Some(c) = sd.iter().find(|t| t.tag == 0xa0) else {
        return Ok(Vec::new());
    };
    kids(*c)?
        .iter()
        .filter(|t| t.tag == 0x30)
        .map(|t| Cert::from_der(t.whole))
        .collect()
}

/// Verifies `token` over `signature` (the primitive signature bytes) against the `tsa` roots,
/// with revocation checked offline: a TSA chain certificate naming OCSP/CRL responders fails as
/// "revocation status is unknown". [`verify_token_chain`] leaves revocation to the caller.
pub fn verify_token(
    token: &[u8],
    signature: &[u8],
    roots: &[Cert],
) -> Result<VerifiedTimestamp, NotaryError> {
    let ts = verify_token_chain(token, signature, roots)?;
    let chain = &ts.chain;
    if let Some(c) = chain[..chain.len().saturating_sub(1)]
        .iter()
        .find(|c| c.has_revocation_info())
    {
        return Err(fail(format!(
            "timestamping certificate {:?} revocation status is unknown: it names OCSP/CRL responders and revocation is checked offline",
            c.subject()
        )));
    }
    Ok(ts)
}

/// Verifies `token` over `signature` against the `tsa` roots (messageImprint, signed attributes,
/// signer signature, chain to a root and the timestamping-chain rules) without revocation: the
/// returned chain's revocation must be checked by the caller (see [`crate::revocation`]).
pub fn verify_token_chain(
    token: &[u8],
    signature: &[u8],
    roots: &[Cert],
) -> Result<VerifiedTimestamp, NotaryError> {
    let p = parse_outer(token)?;
    let (info, ih, hashed) = parse_tst(&p.tst_der)?;
    if ih.digest(signature) != hashed {
        return Err(fail("messageImprint does not match the signature"));
    }
    let sd = kids(tlv::single(&p.signed_data).ok_or_else(|| fail("bad SignedData"))?)?;
    let certs = token_certs(&sd)?;
    let infos = kids(
        *sd.last()
            .filter(|t| t.tag == 0x31)
            .ok_or_else(|| fail("no signerInfos"))?,
    )?;
    let [si] = infos.as_slice() else {
        return Err(fail("expected exactly one SignerInfo"));
    };
    let si = kids(*si)?;
    let dh = alg_hash(si.get(2))
        .ok_or_else(|| fail("SignerInfo digest algorithm is not SHA-256/384/512"))?;
    let attrs = si
        .get(3)
        .filter(|t| t.tag == 0xa0)
        .ok_or_else(|| fail("SignerInfo has no signed attributes"))?;
    let (mut ct_ok, mut md_ok) = (false, false);
    let mut cert_ids: Option<Vec<(Hash, Vec<u8>)>> = None;
    let mut signing_time = None;
    for a in tlv::children(attrs.content).ok_or_else(|| fail("bad signed attributes"))? {
        let a = kids(a)?;
        let vals = a.get(1).map(|v| kids(*v)).transpose()?.unwrap_or_default();
        match tlv::oid_of(a.first()).as_deref() {
            Some(OID_CONTENT_TYPE) => {
                ct_ok = tlv::oid_of(vals.first()).as_deref() == Some(OID_TST_INFO)
            }
            Some(OID_MESSAGE_DIGEST) => {
                md_ok = vals.first().map(|v| v.content) == Some(dh.digest(&p.tst_der).as_slice())
            }
            Some(OID_SIGNING_TIME) => {
                signing_time = vals.first().and_then(|v| match v.tag {
                    0x18 => sigil_oci::time::parse_generalized_time(v.content),
                    0x17 => {
                        let s = std::str::from_utf8(v.content).ok()?;
                        let yy: i64 = s.get(0..2)?.parse().ok()?;
                        let century = if yy >= 50 { "19" } else { "20" };
                        sigil_oci::time::parse_generalized_time(format!("{century}{s}").as_bytes())
                    }
                    _ => None,
                })
            }
            Some(OID_SIGNING_CERT_V2) => {
                let mut ids = Vec::new();
                if let Some(v) = vals.first() {
                    let outer = kids(*v)?;
                    if let Some(list) = outer.first() {
                        for id in kids(*list)? {
                            let parts = kids(id)?;
                            let (h, hash_tlv) = match parts.first() {
                                Some(t) if t.tag == 0x30 => (
                                    alg_hash(Some(t)).ok_or_else(|| {
                                        fail("ESSCertIDv2 hash algorithm unsupported")
                                    })?,
                                    parts.get(1),
                                ),
                                other => (Hash::Sha256, other),
                            };
                            let hv = hash_tlv
                                .filter(|t| t.tag == 0x04)
                                .ok_or_else(|| fail("ESSCertIDv2 has no certHash"))?;
                            ids.push((h, hv.content.to_vec()));
                        }
                    }
                }
                cert_ids = Some(ids);
            }
            _ => {}
        }
    }
    if !ct_ok {
        return Err(fail("signed attribute contentType is not id-ct-TSTInfo"));
    }
    if !md_ok {
        return Err(fail(
            "signed attribute messageDigest does not match the TSTInfo",
        ));
    }
    let ids = cert_ids.ok_or_else(|| fail("signed attributes lack signing-certificate-v2"))?;
    let (want_hash, want) = ids
        .first()
        .ok_or_else(|| fail("signing-certificate-v2 names no certificate"))?;
    let signer = certs
        .iter()
        .find(|c| want_hash.digest(&c.der) == *want)
        .ok_or_else(|| {
            fail("the certificate named by signing-certificate-v2 is not in the token")
        })?;
    let sig_alg = kids(
        *si.get(4)
            .ok_or_else(|| fail("SignerInfo has no signatureAlgorithm"))?,
    )?;
    let sig_oid = tlv::oid_of(sig_alg.first()).ok_or_else(|| fail("bad signatureAlgorithm"))?;
    let sig = si
        .get(5)
        .filter(|t| t.tag == 0x04)
        .ok_or_else(|| fail("SignerInfo has no signature"))?
        .content;
    let signed = tlv::encode(0x31, attrs.content);
    if !signer
        .public_key()?
        .verify_pkix(&sig_oid, Some(dh), &signed, sig)
    {
        return Err(fail(
            "the timestamp signature does not verify with the TSA certificate",
        ));
    }
    // Chain: signer → token intermediates → a trusted root.
    let mut chain = vec![signer.clone()];
    loop {
        if chain.len() > 10 {
            return Err(fail("TSA certificate chain is too long"));
        }
        let cur = chain.last().cloned().ok_or_else(|| fail("empty chain"))?;
        if roots.iter().any(|r| r.der == cur.der) {
            break;
        }
        if let Some(r) = roots.iter().find(|r| cur.issued_by(r)) {
            chain.push(r.clone());
            break;
        }
        match certs
            .iter()
            .find(|c| c.der != cur.der && cur.issued_by(c) && !chain.contains(c))
        {
            Some(c) => chain.push(c.clone()),
            None => {
                return Err(fail(format!(
                    "the TSA certificate {:?} does not chain to a certificate in the tsa trust store",
                    signer.subject()
                )));
            }
        }
    }
    validate_timestamping_chain(&chain, Some(info.gen_time))
        .map_err(|e| fail(format!("TSA chain: {e}")))?;
    if let Some(st) = signing_time
        && !chain.iter().all(|c| c.valid_at(st))
    {
        return Err(fail(
            "the CMS signingTime is outside the TSA certificate validity",
        ));
    }
    Ok(VerifiedTimestamp {
        gen_time: info.gen_time,
        accuracy: info.accuracy,
        chain,
    })
}

/// A DER TimeStampReq over `hash(signature)` with a random nonce and `certReq = true`.
pub fn request(signature: &[u8], hash: Hash) -> Vec<u8> {
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    nonce[0] &= 0x7f;
    let alg = tlv::seq(&[&tlv::oid(hash.oid()), &[0x05, 0x00]]);
    let imprint = tlv::seq(&[&alg, &tlv::encode(0x04, &hash.digest(signature))]);
    tlv::seq(&[
        &tlv::uint(&[1]),
        &imprint,
        &tlv::uint(&nonce),
        &[0x01, 0x01, 0xff],
    ])
}

/// Extracts the TimeStampToken from a DER TimeStampResp (status granted or grantedWithMods).
pub fn token_from_response(resp: &[u8]) -> Result<Vec<u8>, NotaryError> {
    let der = tlv::ber_to_der(resp).ok_or_else(|| fail("TSA response is not valid BER/DER"))?;
    let top = kids(tlv::single(&der).ok_or_else(|| fail("TSA response is not DER"))?)?;
    let status = top
        .first()
        .map(|s| kids(*s))
        .transpose()?
        .unwrap_or_default();
    let code = status.first().map(int_value);
    if !matches!(code, Some(0 | 1)) {
        return Err(fail(format!("TSA refused the request (status {code:?})")));
    }
    Ok(top
        .get(1)
        .ok_or_else(|| fail("TSA response has no timeStampToken"))?
        .whole
        .to_vec())
}

/// Requests a timestamp for `signature` from `url` and verifies it against `root`, including the
/// revocation of the TSA chain (OCSP/CRLs over HTTP: revoked or unknown fails); returns the token.
pub async fn fetch(
    url: &str,
    signature: &[u8],
    hash: Hash,
    root: &Cert,
) -> Result<Vec<u8>, NotaryError> {
    let body = request(signature, hash);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let resp = client
        .post(url)
        .header("Content-Type", "application/timestamp-query")
        .body(body)
        .send()
        .await
        .map_err(|e| fail(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(fail(format!("{url}: HTTP {}", resp.status())));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| fail(format!("{url}: {e}")))?;
    let token = token_from_response(&bytes)?;
    let ts = verify_token_chain(&token, signature, std::slice::from_ref(root))?;
    // As notation does when signing: the TSA chain must not be revoked or of unknown status.
    let checker = RevocationChecker::new(RevocationOptions::default())?;
    let results = checker.check_chain(&ts.chain, None, now()).await;
    final_result(&ts.chain, &results, "timestamping certificate").map_err(|(_, m)| fail(m))?;
    Ok(token)
}
