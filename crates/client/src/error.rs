//! The error type of the registry client.
//!
//! Registry answers that are not successes become [`ClientError::Registry`] (or one of the more specific
//! variants for 404, 401/403, 412 and a missing referrers API), carrying the status and the first
//! `{"errors":[{"code","message"}]}` entry of the body so callers can match on the distribution-spec error
//! code and users read one clear line.

use std::path::PathBuf;

use sigil_oci::OciError;
use thiserror::Error;

/// Everything that can go wrong talking to a registry or an OCI layout.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The registry answered with an error status (other than the cases below).
    #[error("registry {registry} answered {}", describe_status(*status, code, message))]
    Registry {
        /// Registry host (`127.0.0.1:5000`).
        registry: String,
        /// HTTP status.
        status: u16,
        /// Distribution-spec error code (`MANIFEST_UNKNOWN`), when the body had one.
        code: Option<String>,
        /// Error message from the body, or the body's first line, or the status reason.
        message: String,
    },
    /// The registry answered 404 (manifest, blob, repository or upload unknown).
    #[error("registry {registry} answered {}", describe_status(404, code, message))]
    NotFound {
        /// Registry host.
        registry: String,
        /// Distribution-spec error code, when the body had one.
        code: Option<String>,
        /// Error message.
        message: String,
    },
    /// The registry refused the credentials we have (or we have none): 401 after the auth dance, or 403.
    #[error("registry {registry} refused access ({}){}", describe_status(*status, code, message), hint(*status))]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// 401 or 403.
        status: u16,
        /// Distribution-spec error code, when the body had one.
        code: Option<String>,
        /// Error message.
        message: String,
    },
    /// A conditional manifest PUT (`If-Match` / `If-None-Match`) failed: 412.
    #[error("registry {registry}: precondition failed for {reference} (the manifest changed)")]
    PreconditionFailed {
        /// Registry host.
        registry: String,
        /// `repository:tag` or `repository@digest`.
        reference: String,
    },
    /// `GET /v2/<name>/referrers/<digest>` answered 404: the registry has no referrers API (use the
    /// tag-schema fallback).
    #[error("registry {registry} does not support the referrers API for {repository}")]
    ReferrersUnsupported {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Error code of the 404 body, if any (a JSON `NAME_UNKNOWN` may mean the repository is missing).
        code: Option<String>,
    },
    /// Content did not hash to the digest it was requested or announced with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (`blob ...`, `manifest ...`).
        what: String,
        /// The digest asked for or announced.
        expected: String,
        /// The digest computed over the bytes received.
        actual: String,
    },
    /// Content had another size than its descriptor says.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// Size from the descriptor.
        expected: u64,
        /// Bytes received (at least).
        actual: u64,
    },
    /// A response body exceeded the limit for its kind.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was read.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The registry's answer does not follow the protocol (missing header, bad JSON, ...).
    #[error("registry {registry}: {message}")]
    Protocol {
        /// Registry host.
        registry: String,
        /// What was wrong.
        message: String,
    },
    /// No manifest in an index matches the requested platform.
    #[error("no manifest for platform {wanted} (available: {})", if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    NoMatchingPlatform {
        /// The platform asked for.
        wanted: String,
        /// Platforms the index lists.
        available: Vec<String>,
    },
    /// An OCI image layout is malformed or lacks the requested image.
    #[error("OCI layout {}: {message}", path.display())]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The auth file (docker `config.json`) could not be read or parsed.
    #[error("auth file {}: {message}", path.display())]
    AuthFile {
        /// Path of the file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A docker credential helper failed, timed out or answered garbage.
    #[error(transparent)]
    CredentialHelper(#[from] crate::helper::HelperError),
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP request failed below the HTTP layer (connection refused, TLS, timeout).
    #[error("cannot reach registry {registry}: {}", reqwest_chain(source))]
    Transport {
        /// Registry host (or the token realm's host).
        registry: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// Invalid client configuration (bad CA file, user agent, ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// An argument was invalid (bad reference, bad URL, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// A digest, reference, platform or manifest was rejected by the OCI core.
    #[error(transparent)]
    Oci(#[from] OciError),
}

impl ClientError {
    /// The HTTP status, for errors that came from a registry answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Registry { status, .. } | Self::Unauthorized { status, .. } => Some(*status),
            Self::NotFound { .. } | Self::ReferrersUnsupported { .. } => Some(404),
            Self::PreconditionFailed { .. } => Some(412),
            _ => None,
        }
    }

    /// The distribution-spec error code (`MANIFEST_UNKNOWN`, ...), when the registry sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Registry { code, .. }
            | Self::NotFound { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::ReferrersUnsupported { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Whether this is a 404 from the registry (or a missing manifest/blob in an OCI layout).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::NotFound { .. } | Self::ReferrersUnsupported { .. }
        )
    }

    /// A short description without the registry name, for messages that already name the reference:
    /// `manifest unknown (404 MANIFEST_UNKNOWN)`. Other errors give their normal display.
    pub fn summary(&self) -> String {
        match self {
            Self::Registry {
                status,
                code,
                message,
                ..
            }
            | Self::Unauthorized {
                status,
                code,
                message,
                ..
            } => short(*status, code, message),
            Self::NotFound { code, message, .. } => short(404, code, message),
            other => other.to_string(),
        }
    }
}

fn short(status: u16, code: &Option<String>, message: &str) -> String {
    let msg = if message.is_empty() {
        reason(status)
    } else {
        message
    };
    match code {
        Some(c) => format!("{msg} ({status} {c})"),
        None => format!("{msg} ({status})"),
    }
}

fn describe_status(status: u16, code: &Option<String>, message: &str) -> String {
    let mut s = status.to_string();
    if let Some(c) = code {
        s.push(' ');
        s.push_str(c);
    }
    if !message.is_empty() {
        s.push_str(": ");
        s.push_str(message);
    } else if code.is_none() {
        s.push(' ');
        s.push_str(reason(status));
    }
    s
}

fn hint(status: u16) -> &'static str {
    if status == 401 {
        "; check the credentials in the auth file (--authfile, $REGISTRY_AUTH_FILE, ~/.docker/config.json) or its credential helper"
    } else {
        ""
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
}

/// reqwest's own display is terse ("error sending request for url (...)"); show the causes instead,
/// without hyper's generic wrappers.
fn reqwest_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let cs = c.to_string();
        if !cs.starts_with("client error (") && !parts.iter().any(|p| p.contains(&cs)) {
            parts.push(cs);
        }
        src = c.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        if e.is_timeout() {
            parts.insert(0, "timed out".into());
        }
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_display() {
        let e = ClientError::NotFound {
            registry: "127.0.0.1:5000".into(),
            code: Some("MANIFEST_UNKNOWN".into()),
            message: "manifest unknown".into(),
        };
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5000 answered 404 MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(e.summary(), "manifest unknown (404 MANIFEST_UNKNOWN)");
        assert!(e.is_not_found());
        let e = ClientError::Registry {
            registry: "r".into(),
            status: 500,
            code: None,
            message: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "registry r answered 500 Internal Server Error"
        );
        assert_eq!(e.summary(), "Internal Server Error (500)");
    }
}
