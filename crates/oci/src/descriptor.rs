//! Content descriptors and the empty descriptor of image-spec v1.1.1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::media_type;
use crate::platform::Platform;

/// A content descriptor (`application/vnd.oci.descriptor.v1+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Alternate download locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Embedded content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Artifact type of the referenced manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Platform of the referenced manifest (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor for `data` with `media_type` (sha256).
    pub fn for_bytes(media_type: &str, data: &[u8]) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: Digest::sha256(data),
            size: data.len() as u64,
            urls: None,
            annotations: None,
            data: None,
            artifact_type: None,
            platform: None,
        }
    }

    /// The empty descriptor: `{}` with `application/vnd.oci.empty.v1+json`, data inlined.
    pub fn empty() -> Self {
        let mut d = Self::for_bytes(media_type::OCI_EMPTY, EMPTY_JSON);
        d.data = Some("e30=".to_owned());
        d
    }

    /// An annotation value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// The bytes of the empty JSON blob.
pub const EMPTY_JSON: &[u8] = b"{}";
