//! Content digests (`sha256:<hex>`, `sha512:<hex>`) as defined by image-spec `descriptor.md`.
//!
//! A digest is always computed over bytes exactly as they were received or stored; nothing in sigil
//! re-serialises content before hashing it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use crate::error::OciError;

/// A digest algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, encoded as 64 lowercase hex characters.
    Sha256,
    /// SHA-512, encoded as 128 lowercase hex characters.
    Sha512,
    /// A well-formed algorithm sigil cannot compute (kept so it can be reported or passed through).
    Other(String),
}

impl Algorithm {
    /// The algorithm's name as written in digests.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
            Self::Other(s) => s,
        }
    }

    fn hex_len(&self) -> Option<usize> {
        match self {
            Self::Sha256 => Some(64),
            Self::Sha512 => Some(128),
            Self::Other(_) => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    encoded: String,
}

impl Digest {
    /// Parses and validates a digest string.
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let bad = |why| OciError::InvalidDigest(s.to_owned(), why);
        let (alg, enc) = s.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        if alg.is_empty() || enc.is_empty() {
            return Err(bad("empty algorithm or encoded part"));
        }
        // algorithm ::= [a-z0-9]+ ([+._-] [a-z0-9]+)*
        let mut prev_sep = true;
        for c in alg.chars() {
            let is_comp = c.is_ascii_lowercase() || c.is_ascii_digit();
            let is_sep = matches!(c, '+' | '.' | '_' | '-');
            if is_comp {
                prev_sep = false;
            } else if is_sep && !prev_sep {
                prev_sep = true;
            } else {
                return Err(bad("invalid algorithm"));
            }
        }
        if prev_sep {
            return Err(bad("invalid algorithm"));
        }
        // encoded ::= [a-zA-Z0-9=_-]+
        if !enc
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'))
        {
            return Err(bad("invalid encoded part"));
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => Algorithm::Other(other.to_owned()),
        };
        if let Some(n) = algorithm.hex_len() {
            if enc.len() != n {
                return Err(bad("wrong length for algorithm"));
            }
            if !enc
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            {
                return Err(bad("encoded part must be lowercase hex"));
            }
        }
        Ok(Self {
            algorithm,
            encoded: enc.to_owned(),
        })
    }

    /// The sha256 digest of `data`.
    pub fn sha256(data: &[u8]) -> Self {
        Self::compute(&Algorithm::Sha256, data)
            .unwrap_or_else(|_| unreachable!("sha256 is computable"))
    }

    /// The digest of `data` with `algorithm`.
    pub fn compute(algorithm: &Algorithm, data: &[u8]) -> Result<Self, OciError> {
        let mut d = Digester::new(algorithm)?;
        d.update(data);
        Ok(d.finish())
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// The encoded (hex) part.
    pub fn encoded(&self) -> &str {
        &self.encoded
    }

    /// Whether sigil can compute this digest's algorithm.
    pub fn is_computable(&self) -> bool {
        self.algorithm.hex_len().is_some()
    }

    /// Checks that `data` hashes to this digest.
    pub fn verify(&self, data: &[u8]) -> Result<(), OciError> {
        let actual = Self::compute(&self.algorithm, data)?;
        if &actual == self {
            Ok(())
        } else {
            Err(OciError::DigestMismatch {
                expected: self.to_string(),
                actual: actual.to_string(),
            })
        }
    }

    /// The referrers tag-schema fallback tag for this digest (`<alg>-<encoded>`): the algorithm truncated
    /// to 32 characters, the encoded part to 64, and every character outside `[a-zA-Z0-9._-]` replaced by
    /// `-` (distribution-spec "Referrers Tag Schema").
    pub fn fallback_tag(&self) -> String {
        fn clean(s: &str, max: usize) -> String {
            s.chars()
                .take(max)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '-'
                    }
                })
                .collect()
        }
        format!(
            "{}-{}",
            clean(self.algorithm.as_str(), 32),
            clean(&self.encoded, 64)
        )
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.encoded)
    }
}

impl FromStr for Digest {
    type Err = OciError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher producing a [`Digest`].
#[derive(Clone)]
pub enum Digester {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha256(_) => f.write_str("Digester(sha256)"),
            Self::Sha512(_) => f.write_str("Digester(sha512)"),
        }
    }
}

impl Digester {
    /// A new hasher for `algorithm`.
    pub fn new(algorithm: &Algorithm) -> Result<Self, OciError> {
        match algorithm {
            Algorithm::Sha256 => Ok(Self::Sha256(sha2::Sha256::new())),
            Algorithm::Sha512 => Ok(Self::Sha512(sha2::Sha512::new())),
            Algorithm::Other(a) => Err(OciError::UnsupportedAlgorithm(a.clone())),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    /// Finishes and returns the digest.
    pub fn finish(self) -> Digest {
        match self {
            Self::Sha256(h) => Digest {
                algorithm: Algorithm::Sha256,
                encoded: hex(&h.finalize()),
            },
            Self::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                encoded: hex(&h.finalize()),
            },
        }
    }
}

/// Lowercase hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const EMPTY_JSON: &str =
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn computes_sha256_of_empty_json() {
        assert_eq!(Digest::sha256(b"{}").to_string(), EMPTY_JSON);
    }

    #[test]
    fn computes_and_verifies_sha512() {
        let d = Digest::compute(&Algorithm::Sha512, b"abc").unwrap();
        assert!(d.encoded().starts_with("ddaf35a193617aba"));
        assert_eq!(d.encoded().len(), 128);
        d.verify(b"abc").unwrap();
        assert!(matches!(
            d.verify(b"abd"),
            Err(OciError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "SHA256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:44136FA355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8",
            "sha256:../../../etc/passwd",
            "sha512:abcd",
            "sha-:abc",
            "a..b:abc",
            "sha256:zz136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn accepts_unknown_wellformed_algorithms() {
        let d = Digest::parse("blake3+x.y:AbC=_-").unwrap();
        assert!(!d.is_computable());
        assert!(matches!(
            d.verify(b""),
            Err(OciError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn fallback_tag_truncates_and_sanitises() {
        let d = Digest::parse(EMPTY_JSON).unwrap();
        assert_eq!(d.fallback_tag(), format!("sha256-{}", d.encoded()));
        let d512 = Digest::compute(&Algorithm::Sha512, b"x").unwrap();
        let t = d512.fallback_tag();
        assert_eq!(t.len(), 7 + 64);
        assert_eq!(&t[7..], &d512.encoded()[..64]);
        let odd = Digest::parse("a+b:Zz=").unwrap();
        assert_eq!(odd.fallback_tag(), "a-b-Zz-");
    }
}
