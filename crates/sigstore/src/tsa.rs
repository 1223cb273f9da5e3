//! RFC 3161 timestamp verification (hand-parsed CMS SignedData / TSTInfo): message imprint over the
//! signature bytes, signed attributes (contentType, messageDigest), the signer's signature with a trusted
//! TSA leaf, and the TSA chain at `genTime`.

use crate::VerifyFailure;
use crate::cert;
use crate::crypto::HashAlg;
use crate::der_util::{self, Tlv};
use crate::trust::CertificateAuthority;

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";

fn fail(m: &str) -> VerifyFailure {
    VerifyFailure::TimestampInvalid(m.to_string())
}

fn kids(t: Tlv<'_>) -> Result<Vec<Tlv<'_>>, VerifyFailure> {
    der_util::children(t.content).ok_or_else(|| fail("malformed DER"))
}

fn oid(t: Option<&Tlv<'_>>) -> Option<String> {
    t.filter(|t| t.tag == 0x06)
        .and_then(|t| der_util::oid_string(t.content))
}

fn alg_hash(t: Option<&Tlv<'_>>) -> Option<HashAlg> {
    let k = der_util::children(t?.content)?;
    HashAlg::from_hash_oid(&oid(k.first())?)
}

/// Verifies `resp` (DER TimeStampResp) over `signature`; returns genTime.
pub(crate) fn verify(
    resp: &[u8],
    signature: &[u8],
    tsas: &[CertificateAuthority],
) -> Result<i64, VerifyFailure> {
    let top = kids(der_util::single(resp).ok_or_else(|| fail("not DER"))?)?;
    let status = top
        .first()
        .map(|s| kids(*s))
        .transpose()?
        .unwrap_or_default();
    if !matches!(status.first().map(|s| s.content), Some([0] | [1])) {
        return Err(fail("status is not granted"));
    }
    let token = kids(*top.get(1).ok_or_else(|| fail("no token"))?)?;
    if oid(token.first()).as_deref() != Some(OID_SIGNED_DATA) {
        return Err(fail("token is not SignedData"));
    }
    let sd_wrap = token
        .get(1)
        .filter(|t| t.tag == 0xa0)
        .ok_or_else(|| fail("no SignedData content"))?;
    let sd = kids(der_util::single(sd_wrap.content).ok_or_else(|| fail("bad SignedData"))?)?;
    let encap = kids(*sd.get(2).ok_or_else(|| fail("no encapContentInfo"))?)?;
    if oid(encap.first()).as_deref() != Some(OID_TST_INFO) {
        return Err(fail("content is not TSTInfo"));
    }
    let e_wrap = encap
        .get(1)
        .filter(|t| t.tag == 0xa0)
        .ok_or_else(|| fail("no eContent"))?;
    let tst_der = der_util::single(e_wrap.content)
        .filter(|t| t.tag == 0x04)
        .ok_or_else(|| fail("bad eContent"))?
        .content;
    let tst = kids(der_util::single(tst_der).ok_or_else(|| fail("bad TSTInfo"))?)?;
    let imprint = kids(*tst.get(2).ok_or_else(|| fail("no messageImprint"))?)?;
    let ih = alg_hash(imprint.first()).ok_or_else(|| fail("unsupported imprint hash"))?;
    if imprint.get(1).map(|t| t.content) != Some(ih.digest(signature).as_slice()) {
        return Err(fail("messageImprint does not match the signature"));
    }
    let gen_time = tst
        .get(4)
        .filter(|t| t.tag == 0x18)
        .and_then(|t| sigil_oci::time::parse_generalized_time(t.content))
        .ok_or_else(|| fail("bad genTime"))?;
    let signer_infos = sd
        .last()
        .filter(|t| t.tag == 0x31)
        .ok_or_else(|| fail("no signerInfos"))?;
    let infos = kids(*signer_infos)?;
    let [si] = infos.as_slice() else {
        return Err(fail("expected one SignerInfo"));
    };
    let si = kids(*si)?;
    let dh = alg_hash(si.get(2)).ok_or_else(|| fail("unsupported digest algorithm"))?;
    let attrs = si
        .get(3)
        .filter(|t| t.tag == 0xa0)
        .ok_or_else(|| fail("no signed attributes"))?;
    let (mut ct_ok, mut md_ok) = (false, false);
    for a in der_util::children(attrs.content).ok_or_else(|| fail("bad attributes"))? {
        let a = kids(a)?;
        let vals = a.get(1).map(|v| kids(*v)).transpose()?.unwrap_or_default();
        match oid(a.first()).as_deref() {
            Some(OID_CONTENT_TYPE) => ct_ok = oid(vals.first()).as_deref() == Some(OID_TST_INFO),
            Some(OID_MESSAGE_DIGEST) => {
                md_ok = vals.first().map(|v| v.content) == Some(dh.digest(tst_der).as_slice())
            }
            _ => {}
        }
    }
    if !ct_ok || !md_ok {
        return Err(fail("signed attributes do not bind the TSTInfo"));
    }
    let signed = der_util::encode(0x31, attrs.content);
    let sig_alg = kids(*si.get(4).ok_or_else(|| fail("no signatureAlgorithm"))?)?;
    let sh = oid(sig_alg.first())
        .and_then(|o| HashAlg::from_sig_oid(&o))
        .unwrap_or(dh);
    let sig = si
        .get(5)
        .filter(|t| t.tag == 0x04)
        .ok_or_else(|| fail("no signature"))?
        .content;
    for ca in tsas.iter().filter(|c| c.valid_for.contains(gen_time)) {
        let Some((leaf_der, path)) = ca.chain.split_first() else {
            continue;
        };
        let Ok(leaf) = cert::parse(leaf_der) else {
            continue;
        };
        let Some(key) = cert::public_key(&leaf) else {
            continue;
        };
        if !key.verify(&signed, sig, sh) {
            continue;
        }
        if !cert::has_eku(&leaf, cert::OID_TIME_STAMPING) {
            return Err(fail("TSA certificate lacks the timeStamping EKU"));
        }
        if path.is_empty() {
            if !cert::valid_at(&leaf, gen_time) {
                return Err(fail("TSA certificate not valid at genTime"));
            }
        } else {
            cert::verify_path(leaf_der, &leaf, path, &[gen_time])
                .map_err(|e| fail(&format!("TSA chain: {e}")))?;
        }
        return Ok(gen_time);
    }
    Err(fail("no trusted timestamp authority signed this timestamp"))
}
