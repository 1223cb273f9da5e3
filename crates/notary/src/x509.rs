//! X.509 certificates as notation treats them: parsing (PEM or DER), Go-style subject strings and
//! attribute maps for trusted-identity matching, SHA-256 thumbprints, and the chain rules of the Notary
//! Project signature specification for code-signing and timestamping chains (ordered leaf → root,
//! each certificate issued by the next, ending in a self-signed root; leaf key usage and EKU rules; CA
//! basic constraints, path length and keyCertSign).

use der::Encode as _;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use crate::crypto::PublicKey;
use crate::der as tlv;
use crate::error::NotaryError;

const OID_KU: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";
const OID_BC: &str = "2.5.29.19";
/// id-kp-codeSigning.
pub const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
/// id-kp-timeStamping.
pub const OID_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
/// EKUs a Notary signing leaf must not carry (serverAuth, clientAuth, emailProtection,
/// timeStamping, OCSPSigning).
const FORBIDDEN_LEAF_EKU: &[(&str, &str)] = &[
    ("1.3.6.1.5.5.7.3.1", "serverAuth"),
    ("1.3.6.1.5.5.7.3.2", "clientAuth"),
    ("1.3.6.1.5.5.7.3.4", "emailProtection"),
    ("1.3.6.1.5.5.7.3.8", "timeStamping"),
    ("1.3.6.1.5.5.7.3.9", "OCSPSigning"),
];

/// A parsed certificate with its DER encoding.
#[derive(Debug, Clone)]
pub struct Cert {
    /// DER encoding.
    pub der: Vec<u8>,
    parsed: Certificate,
}

impl PartialEq for Cert {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

/// Key usage bits (RFC 5280 order).
#[derive(Debug, Clone, Copy, Default)]
struct KeyUsage {
    bits: u16,
    critical: bool,
}

const KU_DIGITAL_SIGNATURE: u16 = 1 << 0;
const KU_KEY_ENCIPHERMENT: u16 = 1 << 2;
const KU_DATA_ENCIPHERMENT: u16 = 1 << 3;
const KU_KEY_AGREEMENT: u16 = 1 << 4;
const KU_KEY_CERT_SIGN: u16 = 1 << 5;
const KU_CRL_SIGN: u16 = 1 << 6;
const KU_ENCIPHER_ONLY: u16 = 1 << 7;
const KU_DECIPHER_ONLY: u16 = 1 << 8;

fn attr_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.17" => "POSTALCODE",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// Attributes of a DER Name, in RDN order (outermost first).
fn name_attrs(der: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(seq) = tlv::single(der) else {
        return out;
    };
    for rdn in tlv::children(seq.content).unwrap_or_default() {
        for atv in tlv::children(rdn.content).unwrap_or_default() {
            let parts = tlv::children(atv.content).unwrap_or_default();
            let (Some(oid), Some(val)) = (tlv::oid_of(parts.first()), parts.get(1)) else {
                continue;
            };
            let value = if val.tag == 0x1e {
                // BMPString (UTF-16BE)
                let units: Vec<u16> = val
                    .content
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                    .collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(val.content).into_owned()
            };
            out.push((attr_name(&oid), value));
        }
    }
    out
}

fn escape_dn(v: &str) -> String {
    let mut s = String::new();
    for (i, c) in v.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i + 1 == v.chars().count() && c == ' ')
        {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// Go's `pkix.Name.String()` order: unknown attribute types first, then SERIALNUMBER, CN, OU, O,
/// POSTALCODE, STREET, L, ST, C.
fn format_dn(attrs: &[(String, String)]) -> String {
    const ORDER: [&str; 9] = [
        "SERIALNUMBER",
        "CN",
        "OU",
        "O",
        "POSTALCODE",
        "STREET",
        "L",
        "ST",
        "C",
    ];
    let rank = |k: &str| ORDER.iter().position(|o| *o == k).map_or(0, |p| p + 1);
    let mut sorted: Vec<&(String, String)> = attrs.iter().collect();
    sorted.sort_by_key(|(k, _)| rank(k));
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={}", escape_dn(v)))
        .collect::<Vec<_>>()
        .join(",")
}

impl Cert {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, NotaryError> {
        use der::Decode as _;
        let parsed = Certificate::from_der(der)
            .map_err(|e| NotaryError::Chain(format!("not an X.509 certificate: {e}")))?;
        Ok(Self {
            der: der.to_vec(),
            parsed,
        })
    }

    /// Parses PEM `CERTIFICATE` blocks, or one DER certificate.
    pub fn parse_many(bytes: &[u8]) -> Result<Vec<Self>, NotaryError> {
        let text = std::str::from_utf8(bytes).ok();
        if let Some(t) = text.filter(|t| t.contains("-----BEGIN")) {
            let ders = sigil_sigstore::crypto::pem_decode_all(t, "CERTIFICATE").unwrap_or_default();
            if ders.is_empty() {
                return Err(NotaryError::Chain("no PEM CERTIFICATE block".into()));
            }
            return ders.iter().map(|d| Self::from_der(d)).collect();
        }
        Ok(vec![Self::from_der(bytes)?])
    }

    /// PEM encoding.
    pub fn to_pem(&self) -> String {
        sigil_sigstore::crypto::pem_encode(&self.der, "CERTIFICATE")
    }

    /// Subject attributes in RDN order (outermost first), Go short names (`CN`, `O`, `ST`...).
    pub fn subject_attrs(&self) -> Vec<(String, String)> {
        name_attrs(
            &self
                .parsed
                .tbs_certificate()
                .subject()
                .to_der()
                .unwrap_or_default(),
        )
    }

    /// Subject as Go prints it (`CN=e2e,O=Notary,L=Seattle,ST=WA,C=US`), in Go's canonical order.
    pub fn subject(&self) -> String {
        format_dn(&self.subject_attrs())
    }

    /// Issuer as Go prints it.
    pub fn issuer(&self) -> String {
        format_dn(&name_attrs(
            &self
                .parsed
                .tbs_certificate()
                .issuer()
                .to_der()
                .unwrap_or_default(),
        ))
    }

    /// Serial number, lowercase hex.
    pub fn serial_hex(&self) -> String {
        hex(self.parsed.tbs_certificate().serial_number().as_bytes())
    }

    /// Lowercase hex SHA-256 of the DER encoding.
    pub fn sha256_hex(&self) -> String {
        hex(&Sha256::digest(&self.der))
    }

    /// Validity `(notBefore, notAfter)` in Unix seconds.
    pub fn validity(&self) -> (i64, i64) {
        let v = self.parsed.tbs_certificate().validity();
        let secs = |t: &x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        (secs(&v.not_before), secs(&v.not_after))
    }

    /// Whether `t` is within the validity period.
    pub fn valid_at(&self, t: i64) -> bool {
        let (nb, na) = self.validity();
        nb <= t && t <= na
    }

    /// The subject public key.
    pub fn public_key(&self) -> Result<PublicKey, NotaryError> {
        let spki = self
            .parsed
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| NotaryError::Chain(format!("public key: {e}")))?;
        PublicKey::from_spki_der(&spki)
    }

    fn raw_subject(&self) -> Vec<u8> {
        self.parsed
            .tbs_certificate()
            .subject()
            .to_der()
            .unwrap_or_default()
    }

    fn raw_issuer(&self) -> Vec<u8> {
        self.parsed
            .tbs_certificate()
            .issuer()
            .to_der()
            .unwrap_or_default()
    }

    /// Whether the certificate's signature verifies with `issuer`'s key.
    fn signature_from(&self, issuer: &Cert) -> bool {
        signed_by(&self.der, issuer)
    }

    /// DER of the subject Name.
    pub(crate) fn subject_der(&self) -> Vec<u8> {
        self.raw_subject()
    }

    /// Serial number as big-endian bytes without leading zero bytes.
    pub(crate) fn serial_bytes(&self) -> Vec<u8> {
        trim_serial(self.parsed.tbs_certificate().serial_number().as_bytes())
    }

    /// The `http`/other URIs of the CRL distribution points' `fullName`s (what Go exposes as
    /// `CRLDistributionPoints`).
    pub fn crl_distribution_points(&self) -> Vec<String> {
        let Some((_, v)) = self.ext("2.5.29.31") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let dps = tlv::single(v)
            .and_then(|s| tlv::children(s.content))
            .unwrap_or_default();
        for dp in dps {
            let parts = tlv::children(dp.content).unwrap_or_default();
            // distributionPoint [0] { fullName [0] GeneralNames }
            let Some(dpn) = parts.iter().find(|t| t.tag == 0xa0) else {
                continue;
            };
            for name in tlv::children(dpn.content).unwrap_or_default() {
                if name.tag != 0xa0 {
                    continue;
                }
                for gn in tlv::children(name.content).unwrap_or_default() {
                    if gn.tag == 0x86 {
                        out.push(String::from_utf8_lossy(gn.content).into_owned());
                    }
                }
            }
        }
        out
    }

    /// Whether the certificate has an AIA OCSP responder.
    pub fn has_ocsp(&self) -> bool {
        self.ext("1.3.6.1.5.5.7.1.1")
            .and_then(|(_, v)| tlv::single(v))
            .and_then(|seq| tlv::children(seq.content))
            .is_some_and(|ads| {
                ads.iter().any(|ad| {
                    tlv::children(ad.content)
                        .and_then(|p| tlv::oid_of(p.first()))
                        .as_deref()
                        == Some("1.3.6.1.5.5.7.48.1")
                })
            })
    }

    /// The URIs of the AIA OCSP access descriptions (Go's `OCSPServer`).
    pub fn ocsp_urls(&self) -> Vec<String> {
        let ads = self
            .ext("1.3.6.1.5.5.7.1.1")
            .and_then(|(_, v)| tlv::single(v))
            .and_then(|seq| tlv::children(seq.content))
            .unwrap_or_default();
        ads.iter()
            .filter_map(|ad| {
                let parts = tlv::children(ad.content)?;
                if tlv::oid_of(parts.first()).as_deref() != Some("1.3.6.1.5.5.7.48.1") {
                    return None;
                }
                let loc = parts.get(1).filter(|t| t.tag == 0x86)?;
                Some(String::from_utf8_lossy(loc.content).into_owned())
            })
            .collect()
    }

    /// The subjectPublicKey BIT STRING bytes (what an OCSP CertID's issuerKeyHash hashes).
    pub(crate) fn public_key_bits(&self) -> Vec<u8> {
        self.parsed
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes()
            .to_vec()
    }

    /// Whether the certificate carries the id-kp-OCSPSigning extended key usage.
    pub(crate) fn has_ocsp_signing(&self) -> bool {
        self.extended_key_usage()
            .is_some_and(|(_, ekus)| ekus.iter().any(|e| e == "1.3.6.1.5.5.7.3.9"))
    }

    /// Whether the certificate names a delta CRL (the freshestCRL extension).
    pub fn has_freshest_crl(&self) -> bool {
        self.ext("2.5.29.46").is_some()
    }

    /// Why this certificate may not sign CRLs, as Go's `RevocationList.CheckSignatureFrom` checks
    /// the issuer: it must be a CA, and a present keyUsage must contain cRLSign.
    pub(crate) fn crl_signer_problem(&self) -> Option<String> {
        if !matches!(self.basic_constraints(), Some((true, _))) {
            return Some(format!(
                "the CRL issuer {:?} is not a CA certificate",
                self.subject()
            ));
        }
        match self.key_usage() {
            Some(ku) if ku.bits != 0 && ku.bits & KU_CRL_SIGN == 0 => Some(format!(
                "the CRL issuer {:?} keyUsage lacks cRLSign",
                self.subject()
            )),
            _ => None,
        }
    }
}

/// Strips leading zero bytes of a DER INTEGER's content (keeps one byte).
pub(crate) fn trim_serial(b: &[u8]) -> Vec<u8> {
    let skip = b
        .iter()
        .take_while(|x| **x == 0)
        .count()
        .min(b.len().saturating_sub(1));
    b[skip..].to_vec()
}

/// Whether a signed X.509 structure (`SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }`:
/// certificate or CRL) verifies with `issuer`'s key.
pub(crate) fn signed_by(der: &[u8], issuer: &Cert) -> bool {
    {
        let Some(outer) = tlv::single(der) else {
            return false;
        };
        let parts = tlv::children(outer.content).unwrap_or_default();
        let (Some(tbs), Some(alg), Some(sig)) = (parts.first(), parts.get(1), parts.get(2)) else {
            return false;
        };
        let alg_parts = tlv::children(alg.content).unwrap_or_default();
        let Some(oid) = tlv::oid_of(alg_parts.first()) else {
            return false;
        };
        if sig.tag != 0x03 || sig.content.first() != Some(&0) {
            return false;
        }
        let Ok(key) = issuer.public_key() else {
            return false;
        };
        key.verify_pkix(&oid, None, tbs.whole, &sig.content[1..])
    }
}

impl Cert {
    /// Whether `issuer` issued this certificate (name chaining and signature).
    pub fn issued_by(&self, issuer: &Cert) -> bool {
        self.raw_issuer() == issuer.raw_subject() && self.signature_from(issuer)
    }

    /// Self-signed: subject equals issuer and the signature verifies with its own key.
    pub fn is_self_signed(&self) -> bool {
        self.issued_by(self)
    }

    fn ext(&self, oid: &str) -> Option<(bool, &[u8])> {
        self.parsed
            .tbs_certificate()
            .extensions()?
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| (e.critical, e.extn_value.as_bytes()))
    }

    fn key_usage(&self) -> Option<KeyUsage> {
        let (critical, v) = self.ext(OID_KU)?;
        let bits = tlv::single(v).filter(|t| t.tag == 0x03)?;
        let b1 = u16::from(*bits.content.get(1).unwrap_or(&0));
        let b2 = u16::from(*bits.content.get(2).unwrap_or(&0));
        let mut out = 0u16;
        for i in 0..8 {
            if b1 & (0x80 >> i) != 0 {
                out |= 1 << i;
            }
        }
        if b2 & 0x80 != 0 {
            out |= KU_DECIPHER_ONLY;
        }
        Some(KeyUsage {
            bits: out,
            critical,
        })
    }

    /// Extended key usages `(critical, OIDs)`, when the extension is present.
    pub fn extended_key_usage(&self) -> Option<(bool, Vec<String>)> {
        let (critical, v) = self.ext(OID_EKU)?;
        let seq = tlv::single(v)?;
        let oids = tlv::children(seq.content)?
            .iter()
            .filter_map(|t| tlv::oid_of(Some(t)))
            .collect();
        Some((critical, oids))
    }

    /// basicConstraints `(cA, pathLenConstraint)`, when present.
    fn basic_constraints(&self) -> Option<(bool, Option<u64>)> {
        let (_, v) = self.ext(OID_BC)?;
        let seq = tlv::single(v)?;
        let mut ca = false;
        let mut path = None;
        for t in tlv::children(seq.content)? {
            match t.tag {
                0x01 => ca = t.content.first().is_some_and(|b| *b != 0),
                0x02 => path = Some(t.content.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))),
                _ => {}
            }
        }
        Some((ca, path))
    }

    /// Whether the certificate names revocation responders: an AIA OCSP URL or CRL distribution
    /// points (without them notation treats it as non-revokable).
    pub fn has_revocation_info(&self) -> bool {
        if self.ext("2.5.29.31").is_some() {
            return true;
        }
        self.ext("1.3.6.1.5.5.7.1.1")
            .and_then(|(_, v)| tlv::single(v))
            .and_then(|seq| tlv::children(seq.content))
            .is_some_and(|ads| {
                ads.iter().any(|ad| {
                    tlv::children(ad.content)
                        .and_then(|p| tlv::oid_of(p.first()))
                        .as_deref()
                        == Some("1.3.6.1.5.5.7.48.1")
                })
            })
    }

    /// Whether this certificate may serve as a CA (basicConstraints cA) or is self-signed — what
    /// notation requires of `ca`/`signingAuthority` trust-store certificates.
    pub fn is_ca_or_self_signed(&self) -> bool {
        self.basic_constraints().is_some_and(|(ca, _)| ca) || self.is_self_signed()
    }
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn who(i: usize, c: &Cert) -> String {
    format!("certificate {i} ({:?})", c.subject())
}

/// Chain structure shared by code-signing and timestamping chains; `at`: check validity then.
fn validate_structure(chain: &[Cert], at: Option<i64>) -> Result<(), NotaryError> {
    let bad = NotaryError::Chain;
    if chain.is_empty() {
        return Err(bad("certificate chain is empty".into()));
    }
    if chain.len() == 1 {
        let c = &chain[0];
        if !c.is_self_signed() {
            return Err(bad(format!(
                "{}: a chain of one certificate must be self-signed (the chain must end in a root)",
                who(0, c)
            )));
        }
    } else {
        for (i, c) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            if last {
                if !c.is_self_signed() {
                    return Err(bad(format!(
                        "{}: the chain does not end in a self-signed root certificate",
                        who(i, c)
                    )));
                }
            } else {
                if c.is_self_signed() {
                    return Err(bad(format!(
                        "{}: a self-signed certificate may only be the last of the chain",
                        who(i, c)
                    )));
                }
                if !c.issued_by(&chain[i + 1]) {
                    return Err(bad(format!(
                        "{} is not issued by {}: the chain must be ordered leaf first, root last",
                        who(i, c),
                        who(i + 1, &chain[i + 1])
                    )));
                }
            }
        }
    }
    if let Some(t) = at {
        for (i, c) in chain.iter().enumerate() {
            if !c.valid_at(t) {
                return Err(bad(format!(
                    "{} is not valid at the signing time",
                    who(i, c)
                )));
            }
        }
    }
    Ok(())
}

fn validate_ca(i: usize, c: &Cert, expected_path_len: u64) -> Result<(), NotaryError> {
    let bad = NotaryError::Chain;
    match c.basic_constraints() {
        Some((true, path)) => {
            if let Some(p) = path
                && p < expected_path_len
            {
                return Err(bad(format!(
                    "{}: pathLenConstraint {p} is smaller than the {expected_path_len} CA certificates below it",
                    who(i, c)
                )));
            }
        }
        _ => {
            return Err(bad(format!(
                "{}: basicConstraints cA is not true for a CA certificate",
                who(i, c)
            )));
        }
    }
    let ku = c.key_usage().ok_or_else(|| {
        bad(format!(
            "{}: CA certificate has no keyUsage extension",
            who(i, c)
        ))
    })?;
    if !ku.critical {
        return Err(bad(format!(
            "{}: keyUsage extension must be critical",
            who(i, c)
        )));
    }
    if ku.bits & KU_KEY_CERT_SIGN == 0 {
        return Err(bad(format!(
            "{}: CA certificate keyUsage lacks keyCertSign",
            who(i, c)
        )));
    }
    Ok(())
}

fn validate_leaf_ku_bc(c: &Cert, ku_must_be_critical: bool) -> Result<(), NotaryError> {
    let bad = NotaryError::Chain;
    let ku = c.key_usage().ok_or_else(|| {
        bad(format!(
            "{}: leaf certificate has no keyUsage extension (digitalSignature is required)",
            who(0, c)
        ))
    })?;
    if ku_must_be_critical && !ku.critical {
        return Err(bad(format!(
            "{}: keyUsage extension must be critical",
            who(0, c)
        )));
    }
    if ku.bits & KU_DIGITAL_SIGNATURE == 0 {
        return Err(bad(format!(
            "{}: keyUsage lacks digitalSignature",
            who(0, c)
        )));
    }
    for (bit, name) in [
        (KU_KEY_ENCIPHERMENT, "keyEncipherment"),
        (KU_DATA_ENCIPHERMENT, "dataEncipherment"),
        (KU_KEY_AGREEMENT, "keyAgreement"),
        (KU_KEY_CERT_SIGN, "keyCertSign"),
        (KU_CRL_SIGN, "cRLSign"),
        (KU_ENCIPHER_ONLY, "encipherOnly"),
        (KU_DECIPHER_ONLY, "decipherOnly"),
    ] {
        if ku.bits & bit != 0 {
            return Err(bad(format!(
                "{}: keyUsage must not contain {name} for a signing certificate",
                who(0, c)
            )));
        }
    }
    if let Some((true, _)) = c.basic_constraints() {
        return Err(bad(format!(
            "{}: leaf certificate basicConstraints cA must be false",
            who(0, c)
        )));
    }
    Ok(())
}

/// notation's code-signing chain rules (`ValidateCodeSigningCertChain`): structure, CA rules, leaf
/// key usage (critical, digitalSignature, no encipherment/cert-signing bits), leaf EKU without
/// serverAuth/clientAuth/emailProtection/timeStamping/OCSPSigning, and a supported leaf key.
pub fn validate_code_signing_chain(chain: &[Cert], at: Option<i64>) -> Result<(), NotaryError> {
    validate_structure(chain, at)?;
    let n = chain.len();
    for (i, c) in chain.iter().enumerate().skip(1) {
        validate_ca(i, c, (i - 1) as u64)?;
    }
    let leaf = &chain[0];
    validate_leaf_ku_bc(leaf, true)?;
    if let Some((_, ekus)) = leaf.extended_key_usage() {
        for e in &ekus {
            if let Some((_, name)) = FORBIDDEN_LEAF_EKU.iter().find(|(o, _)| o == e) {
                return Err(NotaryError::Chain(format!(
                    "{}: extendedKeyUsage {name} is not allowed for a signing certificate",
                    who(0, leaf)
                )));
            }
        }
    }
    leaf.public_key()?.notary_algorithm()?;
    let _ = n;
    Ok(())
}

/// notation's timestamping chain rules: structure, CA rules, leaf digitalSignature and an EKU that is
/// critical and exactly timeStamping.
pub fn validate_timestamping_chain(chain: &[Cert], at: Option<i64>) -> Result<(), NotaryError> {
    validate_structure(chain, at)?;
    for (i, c) in chain.iter().enumerate().skip(1) {
        validate_ca(i, c, (i - 1) as u64)?;
    }
    let leaf = &chain[0];
    validate_leaf_ku_bc(leaf, false)?;
    match leaf.extended_key_usage() {
        Some((true, ekus)) if ekus == [OID_TIME_STAMPING] => Ok(()),
        Some((false, _)) => Err(NotaryError::Chain(format!(
            "{}: timestamping certificate extendedKeyUsage must be critical",
            who(0, leaf)
        ))),
        _ => Err(NotaryError::Chain(format!(
            "{}: timestamping certificate extendedKeyUsage must be exactly timeStamping",
            who(0, leaf)
        ))),
    }
}
