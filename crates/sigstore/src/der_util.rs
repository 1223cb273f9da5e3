//! Minimal DER TLV walking on raw bytes, used where exact encoded slices are needed (TBS bytes for
//! signature checks, precertificate TBS reconstruction, CMS signed attributes). Public so the Notary
//! crate builds its CMS and RFC 3161 handling on the same reader.

/// One DER TLV: tag byte, content slice and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The tag byte.
    pub tag: u8,
    /// The content octets.
    pub content: &'a [u8],
    /// The whole encoding (tag, length, content).
    pub whole: &'a [u8],
}

/// Splits the first TLV off `input`; `None` on malformed input (multi-byte tags unsupported).
pub fn split(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *input.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2usize)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*input.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some((
        Tlv {
            tag,
            content: &input[hdr..end],
            whole: &input[..end],
        },
        &input[end..],
    ))
}

/// All TLVs in `input` (which must be exactly a concatenation of TLVs).
pub fn children(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (t, rest) = split(input)?;
        out.push(t);
        input = rest;
    }
    Some(out)
}

/// Parses a single TLV that must span all of `input`.
pub fn single(input: &[u8]) -> Option<Tlv<'_>> {
    let (t, rest) = split(input)?;
    rest.is_empty().then_some(t)
}

/// Encodes a TLV with the given tag and content.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Decodes a DER OBJECT IDENTIFIER content into dotted form.
pub fn oid_string(content: &[u8]) -> Option<String> {
    let oid = der::asn1::ObjectIdentifier::from_bytes(content).ok()?;
    Some(oid.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roundtrip_long_lengths() {
        let content = vec![7u8; 300];
        let enc = encode(0x30, &content);
        let t = single(&enc).unwrap();
        assert_eq!(t.tag, 0x30);
        assert_eq!(t.content.len(), 300);
        assert!(split(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(split(&[0x30, 0x05, 1]).is_none());
    }
}
