//! `x509_decode`: a PEM certificate or certificate request as the JSON object Kyverno returns.
//!
//! Kyverno parses the block with Go's `crypto/x509` (Go 1.23 in Kyverno 1.13), replaces the
//! public key by `{"N": "<decimal modulus>", "E": <exponent>}` (RSA only: other keys are the error
//! "certificate should use rsa algorithm"), encodes the Go struct with `encoding/json` and decodes
//! it again into a generic map. This module builds that map directly:
//!
//! - field names are the Go struct fields (`Raw`, `RawTBSCertificate`, `SerialNumber`, `Issuer`,
//!   `NotBefore`, `KeyUsage`, `Extensions`, `BasicConstraintsValid`, `DNSNames`, ...); byte
//!   slices are standard base64, empty slices and absent values are `null`, times are RFC 3339
//!   in UTC, object identifiers are arrays of integers (`Policies` holds dotted strings, as Go's
//!   `x509.OID` marshals as text), IP addresses are strings and URIs are Go `url.URL` objects;
//! - every number is a float, as after Kyverno's JSON round trip (a serial number beyond 2^53
//!   loses precision there as here);
//! - extensions are interpreted as Go's parser does (key usage bits, basic constraints with
//!   `MaxPathLen` -1 when absent, subject alternative names, name constraints, CRL distribution
//!   points, authority information access, certificate policies, extended key usage); critical
//!   extensions Go does not handle are listed in `UnhandledCriticalExtensions`;
//! - requests (`CERTIFICATE REQUEST`) have Go's `CertificateRequest` fields, with the extensions
//!   of an `extensionRequest` attribute and `Attributes` in Go's deprecated
//!   `AttributeTypeAndValueSET` shape.
//!
//! The DER structure is checked with the `x509-cert` crate; the raw fields are slices of the
//! input. Validations Go performs on name-constraint and URI host syntax are not repeated.

use base64::Engine as _;
use der::Decode as _;
use serde_json::{Map, Value, json};

/// Why a PEM block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// No PEM block in the input.
    #[error("failed to decode PEM block")]
    NoPem,
    /// A block that is neither a certificate nor a request.
    #[error("PEM block neither contains a CERTIFICATE or CERTIFICATE REQUEST")]
    WrongType,
    /// The key is not RSA (Kyverno supports RSA only).
    #[error("certificate should use rsa algorithm")]
    NotRsa,
    /// Malformed DER or an invalid field.
    #[error("x509: {0}")]
    Malformed(String),
}

fn bad(msg: impl Into<String>) -> X509Error {
    X509Error::Malformed(msg.into())
}

/// Decodes the first PEM block of `input` as Kyverno's `x509_decode` does.
pub fn decode(input: &str) -> Result<Value, X509Error> {
    let (label, der) = first_pem_block(input)?;
    match label.as_str() {
        "CERTIFICATE" => certificate(&der),
        "CERTIFICATE REQUEST" => request(&der),
        _ => Err(X509Error::WrongType),
    }
}

/// Go's `pem.Decode`: the first `-----BEGIN X-----` ... `-----END X-----` block.
fn first_pem_block(input: &str) -> Result<(String, Vec<u8>), X509Error> {
    let mut rest = input;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_and_end = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_and_end.find(&end_marker) else {
            rest = after;
            continue;
        };
        let body: String = body_and_end[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) {
            return Ok((label.to_owned(), der));
        }
        rest = after;
    }
    Err(X509Error::NoPem)
}

// ---- a minimal DER reader (single-byte tags, definite lengths) ----

#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    full: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const BOOLEAN: u8 = 0x01;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;

fn read_tlv<'a>(input: &mut &'a [u8]) -> Result<Tlv<'a>, X509Error> {
    let data = *input;
    let (&tag, rest) = data.split_first().ok_or_else(|| bad("truncated DER"))?;
    if tag & 0x1f == 0x1f {
        return Err(bad("high-tag-number DER tags are not supported"));
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(|| bad("truncated DER"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("invalid DER length"));
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(bad("truncated DER"));
    }
    let header = data.len() - rest.len();
    let tlv = Tlv {
        tag,
        content: &rest[..len],
        full: &data[..header + len],
    };
    *input = &rest[len..];
    Ok(tlv)
}

fn expect<'a>(input: &mut &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>, X509Error> {
    let t = read_tlv(input).map_err(|e| bad(format!("{what}: {e}")))?;
    if t.tag != tag {
        return Err(bad(format!(
            "{what}: expected tag {tag:#04x}, found {:#04x}",
            t.tag
        )));
    }
    Ok(t)
}

/// All elements of a constructed value.
fn elements(content: &[u8]) -> Result<Vec<Tlv<'_>>, X509Error> {
    let mut rest = content;
    let mut out = Vec::new();
    while !rest.is_empty() {
        out.push(read_tlv(&mut rest)?);
    }
    Ok(out)
}

fn oid_arcs(content: &[u8]) -> Result<Vec<u64>, X509Error> {
    let mut arcs = Vec::new();
    let mut v: u64 = 0;
    for (i, &b) in content.iter().enumerate() {
        v = v
            .checked_mul(128)
            .and_then(|x| x.checked_add(u64::from(b & 0x7f)))
            .ok_or_else(|| bad("object identifier arc too large"))?;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        } else if i + 1 == content.len() {
            return Err(bad("truncated object identifier"));
        }
    }
    if arcs.is_empty() {
        return Err(bad("empty object identifier"));
    }
    Ok(arcs)
}

fn oid_json(arcs: &[u64]) -> Value {
    Value::Array(arcs.iter().map(|a| num(*a as f64)).collect())
}

fn oid_string(arcs: &[u64]) -> String {
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn num(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn b64(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn list(items: Vec<Value>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items)
    }
}

fn strings(items: &[String]) -> Value {
    list(items.iter().cloned().map(Value::String).collect())
}

/// Big-endian unsigned magnitude → decimal string.
fn decimal(bytes: &[u8]) -> String {
    let mut limbs: Vec<u32> = Vec::new(); // little-endian base 10^9
    for &b in bytes {
        let mut carry = u64::from(b);
        for limb in &mut limbs {
            let v = u64::from(*limb) * 256 + carry;
            *limb = (v % 1_000_000_000) as u32;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    }
    match limbs.split_last() {
        None => "0".into(),
        Some((top, rest)) => {
            let mut s = top.to_string();
            for l in rest.iter().rev() {
                s.push_str(&format!("{l:09}"));
            }
            s
        }
    }
}

/// A DER INTEGER that must be non-negative, as (magnitude bytes).
fn unsigned_integer<'a>(content: &'a [u8], what: &str) -> Result<&'a [u8], X509Error> {
    match content.first() {
        None => Err(bad(format!("{what}: empty integer"))),
        Some(b) if b & 0x80 != 0 => Err(bad(format!("negative {what}"))),
        Some(_) => Ok(content),
    }
}

fn small_int(content: &[u8], what: &str) -> Result<i64, X509Error> {
    if content.is_empty() || content.len() > 8 {
        return Err(bad(format!("{what}: invalid integer")));
    }
    let mut v: i64 = if content[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in content {
        v = (v << 8) | i64::from(b);
    }
    Ok(v)
}

// ---- Go enumerations ----

const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const RSA_PSS: &[u64] = &[1, 2, 840, 113549, 1, 1, 10];

/// Go's `x509.SignatureAlgorithm` for an AlgorithmIdentifier (0 when unknown).
fn signature_algorithm(alg: &[u8]) -> Result<u8, X509Error> {
    let mut rest = alg;
    let oid = oid_arcs(expect(&mut rest, OID, "signature algorithm")?.content)?;
    let v = match oid.as_slice() {
        [1, 2, 840, 113549, 1, 1, 2] => 1,
        [1, 2, 840, 113549, 1, 1, 4] => 2,
        [1, 2, 840, 113549, 1, 1, 5] | [1, 3, 14, 3, 2, 29] => 3,
        [1, 2, 840, 113549, 1, 1, 11] => 4,
        [1, 2, 840, 113549, 1, 1, 12] => 5,
        [1, 2, 840, 113549, 1, 1, 13] => 6,
        [1, 2, 840, 10040, 4, 3] => 7,
        [2, 16, 840, 1, 101, 3, 4, 3, 2] => 8,
        [1, 2, 840, 10045, 4, 1] => 9,
        [1, 2, 840, 10045, 4, 3, 2] => 10,
        [1, 2, 840, 10045, 4, 3, 3] => 11,
        [1, 2, 840, 10045, 4, 3, 4] => 12,
        [1, 3, 101, 112] if rest.is_empty() => 16,
        o if o == RSA_PSS => pss_algorithm(rest),
        _ => 0,
    };
    Ok(v)
}

/// RSASSA-PSS: SHA256WithRSAPSS (13), SHA384 (14) or SHA512 (15) by the hash parameter.
fn pss_algorithm(params: &[u8]) -> u8 {
    let hash = (|| -> Option<Vec<u64>> {
        let mut p = params;
        let seq = read_tlv(&mut p).ok().filter(|t| t.tag == SEQUENCE)?;
        let mut inner = seq.content;
        let first = read_tlv(&mut inner).ok().filter(|t| t.tag == 0xa0)?;
        let mut h = first.content;
        let alg = read_tlv(&mut h).ok().filter(|t| t.tag == SEQUENCE)?;
        let mut a = alg.content;
        oid_arcs(read_tlv(&mut a).ok().filter(|t| t.tag == OID)?.content).ok()
    })();
    match hash.as_deref() {
        Some([2, 16, 840, 1, 101, 3, 4, 2, 1]) => 13,
        Some([2, 16, 840, 1, 101, 3, 4, 2, 2]) => 14,
        Some([2, 16, 840, 1, 101, 3, 4, 2, 3]) => 15,
        _ => 0,
    }
}

/// Go's `x509.PublicKeyAlgorithm`.
fn public_key_algorithm(oid: &[u64]) -> u8 {
    match oid {
        o if o == RSA_ENCRYPTION => 1,
        [1, 2, 840, 10040, 4, 1] => 2,
        [1, 2, 840, 10045, 2, 1] => 3,
        [1, 3, 101, 112] => 4,
        _ => 0,
    }
}

/// The SubjectPublicKeyInfo: (Go algorithm, `{"N", "E"}` for RSA).
fn public_key(spki: &[u8]) -> Result<(u8, Value), X509Error> {
    let mut rest = spki;
    let alg = expect(&mut rest, SEQUENCE, "public key algorithm")?;
    let mut a = alg.content;
    let oid = oid_arcs(expect(&mut a, OID, "public key algorithm")?.content)?;
    let algorithm = public_key_algorithm(&oid);
    if algorithm != 1 {
        return Err(X509Error::NotRsa);
    }
    let bits = expect(&mut rest, BIT_STRING, "public key")?;
    let key = bits
        .content
        .split_first()
        .filter(|(unused, _)| **unused == 0)
        .map(|(_, k)| k)
        .ok_or_else(|| bad("invalid public key bit string"))?;
    let mut k = key;
    let seq = expect(&mut k, SEQUENCE, "RSA public key")?;
    if !k.is_empty() {
        return Err(bad("trailing data after RSA public key"));
    }
    let mut p = seq.content;
    let n = expect(&mut p, INTEGER, "RSA modulus")?.content;
    let e = expect(&mut p, INTEGER, "RSA exponent")?.content;
    let e = small_int(e, "RSA exponent")?;
    let n_positive = n.first().is_some_and(|b| b & 0x80 == 0) && n.iter().any(|b| *b != 0);
    if !n_positive || e <= 0 {
        return Err(bad("public key contains zero or negative value"));
    }
    if e > i64::from(i32::MAX) {
        return Err(bad("public key contains large public exponent"));
    }
    Ok((algorithm, json!({"N": decimal(n), "E": num(e as f64)})))
}

// ---- names ----

/// Go's `parseASN1String`.
fn asn1_string(tag: u8, content: &[u8]) -> Result<String, X509Error> {
    let ascii = |ok: &dyn Fn(u8) -> bool, what: &str| {
        if content.iter().all(|b| ok(*b)) {
            Ok(content.iter().map(|b| char::from(*b)).collect())
        } else {
            Err(bad(format!("invalid {what}")))
        }
    };
    match tag {
        // T61String: Latin-1.
        0x14 => Ok(content.iter().map(|b| char::from(*b)).collect()),
        0x13 => ascii(
            &|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?*&".contains(&b),
            "PrintableString",
        ),
        0x0c => String::from_utf8(content.to_vec()).map_err(|_| bad("invalid UTF-8 string")),
        0x1e => {
            if !content.len().is_multiple_of(2) {
                return Err(bad("invalid BMPString"));
            }
            let units: Vec<u16> = content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| bad("invalid BMPString"))
        }
        0x16 => ascii(&|b| b.is_ascii(), "IA5String"),
        0x12 => ascii(&|b| b.is_ascii_digit() || b == b' ', "NumericString"),
        other => Err(bad(format!(
            "invalid RDNSequence: invalid attribute value: unsupported string type: {other}"
        ))),
    }
}

/// A `pkix.Name` from a DER Name (Go's `parseName` + `FillFromRDNSequence`).
fn name(der: &[u8]) -> Result<Value, X509Error> {
    let mut rest = der;
    let seq = expect(&mut rest, SEQUENCE, "name")?;
    let mut names = Vec::new();
    let mut lists: [(u64, &str, Vec<String>); 7] = [
        (6, "Country", Vec::new()),
        (10, "Organization", Vec::new()),
        (11, "OrganizationalUnit", Vec::new()),
        (7, "Locality", Vec::new()),
        (8, "Province", Vec::new()),
        (9, "StreetAddress", Vec::new()),
        (17, "PostalCode", Vec::new()),
    ];
    let (mut common_name, mut serial) = (String::new(), String::new());
    for rdn in elements(seq.content)? {
        if rdn.tag != SET {
            return Err(bad("invalid RDNSequence"));
        }
        for atv in elements(rdn.content)? {
            if atv.tag != SEQUENCE {
                return Err(bad("invalid RDNSequence: invalid attribute"));
            }
            let mut a = atv.content;
            let oid = oid_arcs(expect(&mut a, OID, "attribute type")?.content)?;
            let value = read_tlv(&mut a)?;
            let value = asn1_string(value.tag, value.content)?;
            names.push(json!({"Type": oid_json(&oid), "Value": value}));
            if let [2, 5, 4, t] = oid.as_slice() {
                match t {
                    3 => common_name = value,
                    5 => serial = value,
                    _ => {
                        if let Some(l) = lists.iter_mut().find(|l| l.0 == *t) {
                            l.2.push(value);
                        }
                    }
                }
            }
        }
    }
    let mut m = Map::new();
    for (_, field, values) in &lists {
        m.insert((*field).to_owned(), strings(values));
    }
    m.insert("SerialNumber".into(), Value::String(serial));
    m.insert("CommonName".into(), Value::String(common_name));
    m.insert("Names".into(), list(names));
    m.insert("ExtraNames".into(), Value::Null);
    Ok(Value::Object(m))
}

// ---- URLs (Go `net/url.Parse`, for URI names) ----

fn should_escape(c: u8, fragment: bool) -> bool {
    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
        return false;
    }
    if matches!(
        c,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@'
    ) {
        return !fragment && c == b'?';
    }
    !(fragment && matches!(c, b'!' | b'(' | b')' | b'*'))
}

fn escape(s: &str, fragment: bool) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if should_escape(b, fragment) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, X509Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("invalid URL escape in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("invalid UTF-8 in URL {s:?}")))
}

/// A Go `url.URL` as `encoding/json` writes it.
fn url_json(raw: &str) -> Result<Value, X509Error> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(bad(format!(
            "cannot parse URI {raw:?}: invalid control character in URL"
        )));
    }
    let (rest, frag) = match raw.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (raw, None),
    };
    let mut scheme = String::new();
    let mut rest = rest;
    if let Some(i) = rest.find(':') {
        let cand = &rest[..i];
        let valid = cand.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && cand
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if i == 0 {
            return Err(bad(format!(
                "cannot parse URI {raw:?}: missing protocol scheme"
            )));
        }
        if valid {
            scheme = cand.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    let (mut force_query, mut raw_query) = (false, String::new());
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        force_query = true;
        rest = &rest[..rest.len() - 1];
    } else if let Some((r, q)) = rest.split_once('?') {
        raw_query = q.to_owned();
        rest = r;
    }
    let (mut opaque, mut user, mut host, mut omit_host) =
        (String::new(), Value::Null, String::new(), false);
    let mut path_raw = "";
    if !rest.starts_with('/') && !scheme.is_empty() {
        opaque = rest.to_owned();
    } else {
        if !rest.starts_with('/')
            && let Some(colon) = rest.find(':')
            && rest.find('/').is_none_or(|s| colon < s)
        {
            return Err(bad(format!(
                "cannot parse URI {raw:?}: first path segment in URL cannot contain colon"
            )));
        }
        if rest.starts_with("//") && (!scheme.is_empty() || !rest.starts_with("///")) {
            let after = &rest[2..];
            let (authority, p) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            let h = match authority.rfind('@') {
                Some(i) => {
                    // Go's Userinfo has no exported fields: `{}`.
                    user = json!({});
                    &authority[i + 1..]
                }
                None => authority,
            };
            host = unescape(h)?;
            path_raw = p;
        } else {
            if !scheme.is_empty() && rest.starts_with('/') {
                omit_host = true;
            }
            path_raw = rest;
        }
    }
    let path = unescape(path_raw)?;
    let raw_path = if escape(&path, false) == path_raw {
        String::new()
    } else {
        path_raw.to_owned()
    };
    let (fragment, raw_fragment) = match frag {
        None => (String::new(), String::new()),
        Some(f) => {
            let decoded = unescape(f)?;
            let rf = if escape(&decoded, true) == f {
                String::new()
            } else {
                f.to_owned()
            };
            (decoded, rf)
        }
    };
    Ok(json!({
        "Scheme": scheme, "Opaque": opaque, "User": user, "Host": host, "Path": path,
        "RawPath": raw_path, "OmitHost": omit_host, "ForceQuery": force_query,
        "RawQuery": raw_query, "Fragment": fragment, "RawFragment": raw_fragment,
    }))
}

/// Go's `net.IP.String()` for 4- or 16-byte addresses.
fn ip_string(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            let v6 = std::net::Ipv6Addr::from(a);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            })
        }
        _ => None,
    }
}

// ---- extensions ----

#[derive(Default)]
struct Sans {
    dns: Vec<String>,
    email: Vec<String>,
    ip: Vec<Value>,
    uri: Vec<Value>,
}

fn ia5(content: &[u8], what: &str) -> Result<String, X509Error> {
    if content.is_ascii() {
        Ok(String::from_utf8_lossy(content).into_owned())
    } else {
        Err(bad(format!("SAN {what} is malformed")))
    }
}

/// Go's `parseSANExtension`.
fn sans(value: &[u8]) -> Result<Sans, X509Error> {
    let mut rest = value;
    let seq = expect(&mut rest, SEQUENCE, "subject alternative names")?;
    let mut out = Sans::default();
    for gn in elements(seq.content)? {
        match gn.tag {
            0x81 => out.email.push(ia5(gn.content, "rfc822Name")?),
            0x82 => out.dns.push(ia5(gn.content, "dNSName")?),
            0x86 => out
                .uri
                .push(url_json(&ia5(gn.content, "uniformResourceIdentifier")?)?),
            0x87 => out
                .ip
                .push(Value::String(ip_string(gn.content).ok_or_else(|| {
                    bad(format!(
                        "cannot parse IP address of length {}",
                        gn.content.len()
                    ))
                })?)),
            _ => {}
        }
    }
    Ok(out)
}

/// Go's `ExtKeyUsage` numbering.
fn ext_key_usage(oid: &[u64]) -> Option<u8> {
    Some(match oid {
        [2, 5, 29, 37, 0] => 0,
        [1, 3, 6, 1, 5, 5, 7, 3, n @ 1..=9] => match n {
            1 => 1,
            2 => 2,
            3 => 3,
            4 => 4,
            5 => 5,
            6 => 6,
            7 => 7,
            8 => 8,
            _ => 9,
        },
        [1, 3, 6, 1, 4, 1, 311, 10, 3, 3] => 10,
        [2, 16, 840, 1, 113730, 4, 1] => 11,
        [1, 3, 6, 1, 4, 1, 311, 2, 1, 22] => 12,
        [1, 3, 6, 1, 4, 1, 311, 61, 1, 1] => 13,
        _ => return None,
    })
}

fn uri_names(general_names: &[u8]) -> Result<Vec<String>, X509Error> {
    let mut out = Vec::new();
    for gn in elements(general_names)? {
        if gn.tag == 0x86 {
            out.push(ia5(gn.content, "uniformResourceIdentifier")?);
        }
    }
    Ok(out)
}

/// The certificate fields Go derives from its extensions.
struct ExtFields {
    key_usage: u32,
    bc_valid: bool,
    is_ca: bool,
    max_path_len: i64,
    sans: Sans,
    eku: Vec<Value>,
    unknown_eku: Vec<Value>,
    skid: Vec<u8>,
    akid: Vec<u8>,
    ocsp: Vec<String>,
    issuers: Vec<String>,
    crl: Vec<String>,
    policy_ids: Option<Vec<Value>>,
    policies: Option<Vec<Value>>,
    nc: Map<String, Value>,
    unhandled: Vec<Value>,
}

struct Ext<'a> {
    id: Vec<u64>,
    critical: bool,
    value: &'a [u8],
}

fn parse_extensions(content: &[u8]) -> Result<Vec<Ext<'_>>, X509Error> {
    let mut out = Vec::new();
    for e in elements(content)? {
        if e.tag != SEQUENCE {
            return Err(bad("invalid extension"));
        }
        let mut r = e.content;
        let id = oid_arcs(expect(&mut r, OID, "extension id")?.content)?;
        let mut t = read_tlv(&mut r)?;
        let mut critical = false;
        if t.tag == BOOLEAN {
            critical = t.content.first().is_some_and(|b| *b != 0);
            t = read_tlv(&mut r)?;
        }
        if t.tag != OCTET_STRING {
            return Err(bad("invalid extension value"));
        }
        out.push(Ext {
            id,
            critical,
            value: t.content,
        });
    }
    Ok(out)
}

fn name_constraints(value: &[u8], critical: bool) -> Result<(Map<String, Value>, bool), X509Error> {
    let mut rest = value;
    let seq = expect(&mut rest, SEQUENCE, "name constraints")?;
    let mut m = Map::new();
    let mut unhandled = false;
    let (mut permitted, mut excluded) = (None, None);
    for part in elements(seq.content)? {
        match part.tag {
            0xa0 => permitted = Some(part.content),
            0xa1 => excluded = Some(part.content),
            _ => return Err(bad("invalid NameConstraints extension")),
        }
    }
    if permitted.is_none_or(<[u8]>::is_empty) && excluded.is_none_or(<[u8]>::is_empty) {
        return Err(bad("empty name constraints extension"));
    }
    for (prefix, subtrees) in [("Permitted", permitted), ("Excluded", excluded)] {
        let (mut dns, mut ips, mut emails, mut uris) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for st in elements(subtrees.unwrap_or_default())? {
            if st.tag != SEQUENCE {
                return Err(bad("invalid NameConstraints extension"));
            }
            let mut r = st.content;
            let base = read_tlv(&mut r)?;
            match base.tag {
                0x82 => dns.push(ia5(base.content, "dNSName constraint")?),
                0x81 => emails.push(ia5(base.content, "rfc822Name constraint")?),
                0x86 => uris.push(ia5(base.content, "URI constraint")?),
                0x87 => {
                    let l = base.content.len();
                    if l != 8 && l != 32 {
                        return Err(bad(format!("IP constraint contained value of length {l}")));
                    }
                    let (ip, mask) = base.content.split_at(l / 2);
                    ips.push(json!({"IP": ip_string(ip), "Mask": b64(mask)}));
                }
                _ => unhandled = true,
            }
        }
        let excluded_names = prefix == "Excluded";
        m.insert(format!("{prefix}DNSDomains"), strings(&dns));
        m.insert(format!("{prefix}IPRanges"), list(ips));
        m.insert(format!("{prefix}EmailAddresses"), strings(&emails));
        m.insert(format!("{prefix}URIDomains"), strings(&uris));
        if !excluded_names {
            m.insert("PermittedDNSDomainsCritical".into(), Value::Bool(critical));
        }
    }
    Ok((m, unhandled))
}

fn extension_fields(exts: &[Ext<'_>]) -> Result<ExtFields, X509Error> {
    let mut f = ExtFields {
        key_usage: 0,
        bc_valid: false,
        is_ca: false,
        max_path_len: 0,
        sans: Sans::default(),
        eku: Vec::new(),
        unknown_eku: Vec::new(),
        skid: Vec::new(),
        akid: Vec::new(),
        ocsp: Vec::new(),
        issuers: Vec::new(),
        crl: Vec::new(),
        policy_ids: None,
        policies: None,
        nc: Map::new(),
        unhandled: Vec::new(),
    };
    for e in exts {
        let mut unhandled = false;
        let mut v = e.value;
        match e.id.as_slice() {
            [2, 5, 29, 15] => {
                let bits = expect(&mut v, BIT_STRING, "key usage")?;
                let data = bits.content.get(1..).unwrap_or_default();
                for i in 0..9usize {
                    if data.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0) {
                        f.key_usage |= 1 << i;
                    }
                }
            }
            [2, 5, 29, 19] => {
                let seq = expect(&mut v, SEQUENCE, "basic constraints")?;
                let mut r = seq.content;
                f.max_path_len = -1;
                while !r.is_empty() {
                    let t = read_tlv(&mut r)?;
                    match t.tag {
                        BOOLEAN => f.is_ca = t.content.first().is_some_and(|b| *b != 0),
                        INTEGER => f.max_path_len = small_int(t.content, "maxPathLen")?,
                        _ => return Err(bad("invalid basic constraints")),
                    }
                }
                f.bc_valid = true;
            }
            [2, 5, 29, 17] => {
                f.sans = sans(v)?;
                let s = &f.sans;
                unhandled =
                    s.dns.is_empty() && s.email.is_empty() && s.ip.is_empty() && s.uri.is_empty();
            }
            [2, 5, 29, 30] => {
                let (m, u) = name_constraints(v, e.critical)?;
                f.nc = m;
                unhandled = u;
            }
            [2, 5, 29, 31] => {
                let seq = expect(&mut v, SEQUENCE, "CRL distribution points")?;
                for dp in elements(seq.content)? {
                    for part in elements(dp.content)? {
                        if part.tag == 0xa0 {
                            for n in elements(part.content)? {
                                if n.tag == 0xa0 {
                                    f.crl.extend(uri_names(n.content)?);
                                }
                            }
                        }
                    }
                }
            }
            [2, 5, 29, 35] => {
                let seq = expect(&mut v, SEQUENCE, "authority key identifier")?;
                for part in elements(seq.content)? {
                    if part.tag == 0x80 {
                        f.akid = part.content.to_vec();
                    }
                }
            }
            [2, 5, 29, 37] => {
                let seq = expect(&mut v, SEQUENCE, "extended key usage")?;
                for o in elements(seq.content)? {
                    if o.tag != OID {
                        return Err(bad("invalid extended key usages"));
                    }
                    let arcs = oid_arcs(o.content)?;
                    match ext_key_usage(&arcs) {
                        Some(k) => f.eku.push(num(f64::from(k))),
                        None => f.unknown_eku.push(oid_json(&arcs)),
                    }
                }
            }
            [2, 5, 29, 14] => {
                f.skid = expect(&mut v, OCTET_STRING, "subject key identifier")?
                    .content
                    .to_vec();
            }
            [2, 5, 29, 32] => {
                let seq = expect(&mut v, SEQUENCE, "certificate policies")?;
                let (mut ids, mut pols) = (Vec::new(), Vec::new());
                for pi in elements(seq.content)? {
                    let mut r = pi.content;
                    let arcs = oid_arcs(expect(&mut r, OID, "policy identifier")?.content)?;
                    ids.push(oid_json(&arcs));
                    pols.push(Value::String(oid_string(&arcs)));
                }
                f.policy_ids = Some(ids);
                f.policies = Some(pols);
            }
            [2, 5, 29, _] => unhandled = true,
            [1, 3, 6, 1, 5, 5, 7, 1, 1] => {
                let seq = expect(&mut v, SEQUENCE, "authority information access")?;
                for ad in elements(seq.content)? {
                    let mut r = ad.content;
                    let method = oid_arcs(expect(&mut r, OID, "access method")?.content)?;
                    let loc = read_tlv(&mut r)?;
                    if loc.tag != 0x86 {
                        continue;
                    }
                    let uri = ia5(loc.content, "uniformResourceIdentifier")?;
                    match method.as_slice() {
                        [1, 3, 6, 1, 5, 5, 7, 48, 1] => f.ocsp.push(uri),
                        [1, 3, 6, 1, 5, 5, 7, 48, 2] => f.issuers.push(uri),
                        _ => {}
                    }
                }
            }
            _ => unhandled = true,
        }
        if e.critical && unhandled {
            f.unhandled.push(oid_json(&e.id));
        }
    }
    Ok(f)
}

fn extensions_json(exts: &[Ext<'_>]) -> Value {
    list(
        exts.iter()
            .map(|e| {
                json!({
                    "Id": oid_json(&e.id),
                    "Critical": e.critical,
                    "Value": b64(e.value),
                })
            })
            .collect(),
    )
}

fn time(t: &Tlv<'_>) -> Result<Value, X509Error> {
    let parsed = x509_cert::time::Time::from_der(t.full)
        .map_err(|e| bad(format!("malformed validity time: {e}")))?;
    let secs = parsed.to_unix_duration().as_secs();
    Ok(Value::String(crate::functions::format_rfc3339(
        i128::from(secs) * 1_000_000_000,
    )))
}

/// Go's `x509.ParseCertificate` + Kyverno's RSA public key replacement.
fn certificate(der: &[u8]) -> Result<Value, X509Error> {
    // Structure check (ASN.1 types, DER rules) by the x509-cert crate.
    x509_cert::Certificate::from_der(der)
        .map_err(|e| bad(format!("malformed certificate: {e}")))?;
    let mut input = der;
    let cert = expect(&mut input, SEQUENCE, "certificate")?;
    if !input.is_empty() {
        return Err(bad("trailing data"));
    }
    let mut c = cert.content;
    let tbs = expect(&mut c, SEQUENCE, "tbsCertificate")?;
    let sig_alg = expect(&mut c, SEQUENCE, "signature algorithm")?;
    let sig = expect(&mut c, BIT_STRING, "signature")?;
    let mut t = tbs.content;
    let mut first = read_tlv(&mut t)?;
    let mut version = 1;
    if first.tag == 0xa0 {
        let mut v = first.content;
        version = small_int(expect(&mut v, INTEGER, "version")?.content, "version")? + 1;
        first = read_tlv(&mut t)?;
    }
    if first.tag != INTEGER {
        return Err(bad("malformed serial number"));
    }
    let serial = decimal(unsigned_integer(first.content, "serial number")?);
    let _inner_sig_alg = expect(&mut t, SEQUENCE, "signature algorithm")?;
    let issuer = expect(&mut t, SEQUENCE, "issuer")?;
    let validity = expect(&mut t, SEQUENCE, "validity")?;
    let subject = expect(&mut t, SEQUENCE, "subject")?;
    let spki = expect(&mut t, SEQUENCE, "subject public key info")?;
    let mut exts = Vec::new();
    while !t.is_empty() {
        let x = read_tlv(&mut t)?;
        if x.tag == 0xa3 {
            let mut e = x.content;
            exts = parse_extensions(expect(&mut e, SEQUENCE, "extensions")?.content)?;
        }
    }
    let (pk_alg, pk) = public_key(spki.content)?;
    let mut vr = validity.content;
    let not_before = time(&read_tlv(&mut vr)?)?;
    let not_after = time(&read_tlv(&mut vr)?)?;
    let f = extension_fields(&exts)?;
    let serial_value = match serial.parse::<u64>() {
        Ok(s) => num(s as f64),
        Err(_) => serial.parse::<f64>().map_or(Value::Null, num),
    };
    let signature = sig.content.get(1..).unwrap_or_default();
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("Raw", b64(cert.full));
    put("RawTBSCertificate", b64(tbs.full));
    put("RawSubjectPublicKeyInfo", b64(spki.full));
    put("RawSubject", b64(subject.full));
    put("RawIssuer", b64(issuer.full));
    put("Signature", b64(signature));
    put(
        "SignatureAlgorithm",
        num(f64::from(signature_algorithm(sig_alg.content)?)),
    );
    put("PublicKeyAlgorithm", num(f64::from(pk_alg)));
    put("PublicKey", pk);
    put("Version", num(version as f64));
    put("SerialNumber", serial_value);
    put("Issuer", name(issuer.full)?);
    put("Subject", name(subject.full)?);
    put("NotBefore", not_before);
    put("NotAfter", not_after);
    put("KeyUsage", num(f64::from(f.key_usage)));
    put("Extensions", extensions_json(&exts));
    put("ExtraExtensions", Value::Null);
    put("UnhandledCriticalExtensions", list(f.unhandled));
    put("ExtKeyUsage", list(f.eku));
    put("UnknownExtKeyUsage", list(f.unknown_eku));
    put("BasicConstraintsValid", Value::Bool(f.bc_valid));
    put("IsCA", Value::Bool(f.is_ca));
    put("MaxPathLen", num(f.max_path_len as f64));
    put(
        "MaxPathLenZero",
        Value::Bool(f.bc_valid && f.max_path_len == 0),
    );
    put("SubjectKeyId", b64(&f.skid));
    put("AuthorityKeyId", b64(&f.akid));
    put("OCSPServer", strings(&f.ocsp));
    put("IssuingCertificateURL", strings(&f.issuers));
    put("DNSNames", strings(&f.sans.dns));
    put("EmailAddresses", strings(&f.sans.email));
    put("IPAddresses", list(f.sans.ip));
    put("URIs", list(f.sans.uri));
    put("PermittedDNSDomainsCritical", Value::Bool(false));
    for k in [
        "PermittedDNSDomains",
        "ExcludedDNSDomains",
        "PermittedIPRanges",
        "ExcludedIPRanges",
        "PermittedEmailAddresses",
        "ExcludedEmailAddresses",
        "PermittedURIDomains",
        "ExcludedURIDomains",
    ] {
        put(k, Value::Null);
    }
    for (k, v) in f.nc {
        put(&k, v);
    }
    put("CRLDistributionPoints", strings(&f.crl));
    put(
        "PolicyIdentifiers",
        f.policy_ids.map_or(Value::Null, Value::Array),
    );
    put("Policies", f.policies.map_or(Value::Null, Value::Array));
    Ok(Value::Object(m))
}

const EXTENSION_REQUEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 14];

/// Go's `encoding/asn1` decoding of one element into `any` (`nil` for other types).
fn asn1_any(t: &Tlv<'_>) -> Value {
    match t.tag {
        0x13 | 0x12 | 0x16 | 0x14 | 0x0c | 0x1e => {
            asn1_string(t.tag, t.content).map_or(Value::Null, Value::String)
        }
        INTEGER => small_int(t.content, "integer").map_or(Value::Null, |i| num(i as f64)),
        OID => oid_arcs(t.content).map_or(Value::Null, |a| oid_json(&a)),
        OCTET_STRING => b64(t.content),
        _ => Value::Null,
    }
}

/// Go's `parseRawAttributes`: attributes shaped as `AttributeTypeAndValueSET` (SET OF SEQUENCE
/// OF {type, value}); others (e.g. `challengePassword`) are left out.
fn csr_attributes(attrs: &[Tlv<'_>]) -> Value {
    let mut out = Vec::new();
    'attr: for a in attrs {
        let mut r = a.content;
        let Ok(oid) = expect(&mut r, OID, "attribute").and_then(|t| oid_arcs(t.content)) else {
            continue;
        };
        let Ok(set) = expect(&mut r, SET, "attribute values") else {
            continue;
        };
        let Ok(seqs) = elements(set.content) else {
            continue;
        };
        let mut values = Vec::new();
        for seq in seqs {
            if seq.tag != SEQUENCE {
                continue 'attr;
            }
            let Ok(items) = elements(seq.content) else {
                continue 'attr;
            };
            let mut group = Vec::new();
            for item in items {
                if item.tag != SEQUENCE {
                    continue 'attr;
                }
                let mut ir = item.content;
                let Ok(t) = expect(&mut ir, OID, "type").and_then(|t| oid_arcs(t.content)) else {
                    continue 'attr;
                };
                let Ok(v) = read_tlv(&mut ir) else {
                    continue 'attr;
                };
                group.push(json!({"Type": oid_json(&t), "Value": asn1_any(&v)}));
            }
            values.push(Value::Array(group));
        }
        out.push(json!({"Type": oid_json(&oid), "Value": list(values)}));
    }
    list(out)
}

/// Go's `x509.ParseCertificateRequest` + Kyverno's RSA public key replacement.
fn request(der: &[u8]) -> Result<Value, X509Error> {
    x509_cert::request::CertReq::from_der(der)
        .map_err(|e| bad(format!("malformed certificate request: {e}")))?;
    let mut input = der;
    let csr = expect(&mut input, SEQUENCE, "certificate request")?;
    if !input.is_empty() {
        return Err(bad("trailing data"));
    }
    let mut c = csr.content;
    let info = expect(&mut c, SEQUENCE, "certificationRequestInfo")?;
    let sig_alg = expect(&mut c, SEQUENCE, "signature algorithm")?;
    let sig = expect(&mut c, BIT_STRING, "signature")?;
    let mut i = info.content;
    let version = small_int(expect(&mut i, INTEGER, "version")?.content, "version")?;
    let subject = expect(&mut i, SEQUENCE, "subject")?;
    let spki = expect(&mut i, SEQUENCE, "subject public key info")?;
    let attrs = match read_tlv(&mut i) {
        Ok(t) if t.tag == 0xa0 => elements(t.content)?,
        _ => Vec::new(),
    };
    let (pk_alg, pk) = public_key(spki.content)?;
    let mut exts = Vec::new();
    for a in &attrs {
        let mut r = a.content;
        let oid = oid_arcs(expect(&mut r, OID, "attribute type")?.content)?;
        if oid != EXTENSION_REQUEST {
            continue;
        }
        let set = expect(&mut r, SET, "extensionRequest values")?;
        for v in elements(set.content)? {
            if v.tag != SEQUENCE {
                return Err(bad("invalid extensionRequest"));
            }
            exts.extend(parse_extensions(v.content)?);
        }
    }
    let mut s = Sans::default();
    for e in &exts {
        if e.id == [2, 5, 29, 17] {
            s = sans(e.value)?;
        }
    }
    let signature = sig.content.get(1..).unwrap_or_default();
    Ok(json!({
        "Raw": b64(csr.full),
        "RawTBSCertificateRequest": b64(info.full),
        "RawSubjectPublicKeyInfo": b64(spki.full),
        "RawSubject": b64(subject.full),
        "Version": num(version as f64),
        "Signature": b64(signature),
        "SignatureAlgorithm": num(f64::from(signature_algorithm(sig_alg.content)?)),
        "PublicKeyAlgorithm": num(f64::from(pk_alg)),
        "PublicKey": pk,
        "Subject": name(subject.full)?,
        "Attributes": csr_attributes(&attrs),
        "Extensions": extensions_json(&exts),
        "ExtraExtensions": Value::Null,
        "DNSNames": strings(&s.dns),
        "EmailAddresses": strings(&s.email),
        "IPAddresses": list(s.ip),
        "URIs": list(s.uri),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decimal_conversion() {
        assert_eq!(decimal(&[]), "0");
        assert_eq!(decimal(&[0]), "0");
        assert_eq!(decimal(&[1, 0]), "256");
        assert_eq!(decimal(&[0xff; 8]), u64::MAX.to_string());
        assert_eq!(
            decimal(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0]),
            "18446744073709551616"
        );
    }

    #[test]
    fn oids_and_ips() {
        assert_eq!(
            oid_arcs(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]).unwrap(),
            vec![1, 2, 840, 113549, 1, 1, 11]
        );
        assert_eq!(oid_arcs(&[0x55, 0x1d, 0x11]).unwrap(), vec![2, 5, 29, 17]);
        assert!(oid_arcs(&[0x86]).is_err());
        assert_eq!(ip_string(&[10, 0, 0, 1]).unwrap(), "10.0.0.1");
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(ip_string(&mapped).unwrap(), "1.2.3.4");
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[2] = 0x0d;
        v6[3] = 0xb8;
        v6[15] = 1;
        assert_eq!(ip_string(&v6).unwrap(), "2001:db8::1");
        assert!(ip_string(&[1, 2, 3]).is_none());
    }

    #[test]
    fn urls_as_go_writes_them() {
        let u = url_json("https://user@example.com:8443/a%2Fb/c?x=1#frag%21").unwrap();
        assert_eq!(u["Scheme"], "https");
        assert_eq!(u["User"], json!({}));
        assert_eq!(u["Host"], "example.com:8443");
        assert_eq!(u["Path"], "/a/b/c");
        assert_eq!(u["RawPath"], "/a%2Fb/c");
        assert_eq!(u["RawQuery"], "x=1");
        assert_eq!(u["Fragment"], "frag!");
        assert_eq!(u["RawFragment"], "frag%21");
        let u = url_json("spiffe://cluster.local/ns/default/sa/app").unwrap();
        assert_eq!(u["Host"], "cluster.local");
        assert_eq!(u["Path"], "/ns/default/sa/app");
        assert_eq!(u["RawPath"], "");
        assert_eq!(u["User"], Value::Null);
        let u = url_json("mailto:a@b.example").unwrap();
        assert_eq!(u["Opaque"], "a@b.example");
        let u = url_json("file:/etc/x").unwrap();
        assert_eq!(u["OmitHost"], true);
        assert_eq!(u["Path"], "/etc/x");
        let u = url_json("https://x/?").unwrap();
        assert_eq!(u["ForceQuery"], true);
        assert!(url_json(":x").is_err());
        assert!(url_json("https://x/%zz").is_err());
    }

    #[test]
    fn pem_blocks() {
        assert_eq!(first_pem_block("nothing"), Err(X509Error::NoPem));
        let (label, der) =
            first_pem_block("junk\n-----BEGIN FOO-----\nAAEC\n-----END FOO-----\n").unwrap();
        assert_eq!(label, "FOO");
        assert_eq!(der, vec![0, 1, 2]);
        assert_eq!(
            decode("-----BEGIN FOO-----\nAAEC\n-----END FOO-----"),
            Err(X509Error::WrongType)
        );
        assert!(matches!(
            decode("-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----"),
            Err(X509Error::Malformed(_))
        ));
    }
}
