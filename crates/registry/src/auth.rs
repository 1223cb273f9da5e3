//! Optional HTTP basic authentication against an htpasswd file (bcrypt entries, as `htpasswd -B`).
//!
//! bcrypt is deliberately slow, so successful checks are remembered (keyed by a SHA-256 of the
//! `Authorization` header, never the password itself) for the life of the process.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::RwLock;

use base64::Engine;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why an htpasswd file could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HtpasswdError {
    /// The file could not be read.
    #[error("cannot read htpasswd file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not `user:hash`, or the hash is not bcrypt.
    #[error("htpasswd line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
}

/// Users and bcrypt hashes from an htpasswd file.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: RwLock<HashSet<[u8; 32]>>,
}

/// At most this many verified headers are remembered.
const VERIFIED_MAX: usize = 10_000;

impl Htpasswd {
    /// Loads a file.
    pub fn load(path: &Path) -> Result<Self, HtpasswdError> {
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses htpasswd text.
    pub fn parse(text: &str) -> Result<Self, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or(HtpasswdError::Line {
                line: i + 1,
                why: "expected user:hash",
            })?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(HtpasswdError::Line {
                    line: i + 1,
                    why: "only bcrypt hashes are supported (create them with htpasswd -B)",
                });
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Self {
            users,
            verified: RwLock::default(),
        })
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        if self.verified.read().is_ok_and(|s| s.contains(&key)) {
            return true;
        }
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok && let Ok(mut s) = self.verified.write() {
            if s.len() >= VERIFIED_MAX {
                s.clear();
            }
            s.insert(key);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn verifies_bcrypt_entries() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let h = Htpasswd::parse(&format!("# users\nalice:{hash}\n")).unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(h.check(Some(&header("alice", "s3cret"))));
        assert!(h.check(Some(&header("alice", "s3cret")))); // cached path
        assert!(!h.check(Some(&header("alice", "wrong"))));
        assert!(!h.check(Some(&header("bob", "s3cret"))));
        assert!(!h.check(Some("Basic !!!")));
        assert!(!h.check(Some("Bearer x")));
        assert!(!h.check(None));
    }

    #[test]
    fn rejects_non_bcrypt_files() {
        assert!(Htpasswd::parse("alice:$apr1$abc$def").is_err());
        assert!(Htpasswd::parse("no-colon").is_err());
    }
}
