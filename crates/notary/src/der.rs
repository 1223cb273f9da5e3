//! DER helpers for the places where exact encodings matter (TBS bytes for certificate signatures, CMS
//! signed attributes, RFC 3161 requests and tokens): the TLV reader of `sigil_sigstore::der_util`, plus
//! the encoders and the BER → DER conversion only Notary needs.

pub(crate) use sigil_sigstore::der_util::{Tlv, children, encode, single, split};

/// Encodes a SEQUENCE of already-encoded parts.
pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
    encode(0x30, &parts.concat())
}

/// Encodes a dotted OID.
pub(crate) fn oid(dotted: &str) -> Vec<u8> {
    match der::asn1::ObjectIdentifier::new(dotted) {
        Ok(o) => encode(0x06, o.as_bytes()),
        Err(_) => encode(0x06, &[]),
    }
}

/// Dotted form of an OID TLV.
pub(crate) fn oid_of(t: Option<&Tlv<'_>>) -> Option<String> {
    let t = t.filter(|t| t.tag == 0x06)?;
    der::asn1::ObjectIdentifier::from_bytes(t.content)
        .ok()
        .map(|o| o.to_string())
}

/// Encodes a non-negative INTEGER from big-endian bytes.
pub(crate) fn uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let skip = bytes
            .iter()
            .take_while(|b| **b == 0)
            .count()
            .min(bytes.len().saturating_sub(1));
        &bytes[skip..]
    };
    let mut v = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(trimmed);
    if v.is_empty() {
        v.push(0);
    }
    encode(0x02, &v)
}

/// Converts BER (indefinite lengths, constructed strings left as they are) into definite-length
/// encoding, recursively for constructed values. Returns `None` on malformed input.
pub(crate) fn ber_to_der(input: &[u8]) -> Option<Vec<u8>> {
    let (out, rest) = ber_one(input, 0)?;
    rest.is_empty().then_some(out)
}

fn ber_one(input: &[u8], depth: usize) -> Option<(Vec<u8>, &[u8])> {
    if depth > 64 {
        return None;
    }
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *input.get(1)?;
    let constructed = tag & 0x20 != 0;
    if first == 0x80 {
        // Indefinite length: children until end-of-contents.
        if !constructed {
            return None;
        }
        let mut rest = &input[2..];
        let mut content = Vec::new();
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                rest = &rest[2..];
                break;
            }
            let (c, r) = ber_one(rest, depth + 1)?;
            content.extend(c);
            rest = r;
        }
        return Some((encode(tag, &content), rest));
    }
    let (t, rest) = split(input)?;
    if constructed {
        let mut content = Vec::new();
        let mut inner = t.content;
        while !inner.is_empty() {
            let (c, r) = ber_one(inner, depth + 1)?;
            content.extend(c);
            inner = r;
        }
        Some((encode(tag, &content), rest))
    } else {
        Some((t.whole.to_vec(), rest))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lengths_and_ber() {
        let content = vec![7u8; 300];
        let enc = encode(0x30, &content);
        assert_eq!(single(&enc).unwrap().content.len(), 300);
        assert!(split(&[0x30, 0x05, 1]).is_none());
        // SEQUENCE (indefinite) { INTEGER 5 } EOC
        let ber = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
        assert_eq!(
            ber_to_der(&ber).unwrap(),
            vec![0x30, 0x03, 0x02, 0x01, 0x05]
        );
        assert_eq!(uint(&[0, 0, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(
            oid_of(single(&oid("1.2.840.113549.1.7.2")).as_ref()).unwrap(),
            "1.2.840.113549.1.7.2"
        );
    }
}
