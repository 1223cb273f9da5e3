//! Image manifests and indexes: OCI image-spec v1.1.1 and Docker schema2.
//!
//! [`Manifest::parse`] validates a manifest exactly as received; callers keep the raw bytes and never
//! re-serialise a parsed manifest to compute its digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::OciError;
use crate::media_type as mt;

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config descriptor.
    pub config: Descriptor,
    /// Layer descriptors.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Child manifests.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageIndex {
    /// An empty OCI index (the body of a referrers response with no matches).
    pub fn empty() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(mt::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: None,
        }
    }

    /// Serialises to JSON bytes (for indexes sigil creates itself).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| unreachable!("index serialisation cannot fail"))
    }
}

impl ImageManifest {
    /// Serialises to JSON bytes (for manifests sigil creates itself).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|_| unreachable!("manifest serialisation cannot fail"))
    }
}

/// A parsed manifest of any supported kind.
// Parsed once per request and matched immediately; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An image manifest (OCI or Docker schema2).
    Image(ImageManifest),
    /// An index or manifest list.
    Index(ImageIndex),
    /// A manifest type sigil stores opaquely (the removed OCI artifact manifest).
    Opaque,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<serde_json::Value>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses and validates manifest bytes. `content_type` is the `Content-Type` it arrived with, if any.
    /// Returns the manifest and its effective media type.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<(Self, String), OciError> {
        let invalid = |m: String| OciError::InvalidManifest(m);
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        let body_type = match &probe.media_type {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(invalid("mediaType must be a string".into())),
        };
        let header_type = content_type.map(mt::essence).filter(|s| !s.is_empty());
        let media_type = match (&body_type, header_type) {
            (Some(b), Some(h)) if b != h && is_manifest_type(h) => {
                return Err(invalid(format!(
                    "mediaType {b:?} does not match Content-Type {h:?}"
                )));
            }
            (Some(b), _) => b.clone(),
            (None, Some(h)) if is_manifest_type(h) => h.to_owned(),
            (None, _) => {
                if probe.manifests.is_some() {
                    mt::OCI_INDEX.to_owned()
                } else if probe.config.is_some() {
                    mt::OCI_MANIFEST.to_owned()
                } else {
                    return Err(invalid(
                        "cannot tell the manifest type: no mediaType".into(),
                    ));
                }
            }
        };
        if media_type == mt::DOCKER_SCHEMA1 || media_type == mt::DOCKER_SCHEMA1_SIGNED {
            return Err(invalid("Docker schema1 manifests are not supported".into()));
        }
        if media_type == mt::OCI_ARTIFACT_MANIFEST {
            return Ok((Self::Opaque, media_type));
        }
        match probe.schema_version {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(2) => {}
            _ => return Err(invalid("schemaVersion must be 2".into())),
        }
        if mt::is_index(&media_type) {
            let idx: ImageIndex =
                serde_json::from_slice(bytes).map_err(|e| invalid(format!("index: {e}")))?;
            Ok((Self::Index(idx), media_type))
        } else if mt::is_image_manifest(&media_type) {
            let m: ImageManifest = serde_json::from_slice(bytes)
                .map_err(|e| invalid(format!("image manifest: {e}")))?;
            Ok((Self::Image(m), media_type))
        } else {
            Err(invalid(format!(
                "unsupported manifest media type {media_type:?}"
            )))
        }
    }

    /// The `subject` descriptor, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Self::Image(m) => m.subject.as_ref(),
            Self::Index(i) => i.subject.as_ref(),
            Self::Opaque => None,
        }
    }

    /// Annotations of the manifest.
    pub fn annotations(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Self::Image(m) => m.annotations.as_ref(),
            Self::Index(i) => i.annotations.as_ref(),
            Self::Opaque => None,
        }
    }

    /// The artifact type a referrers response reports: `artifactType`, else `config.mediaType` for an
    /// image manifest, else none (indexes).
    pub fn referrer_artifact_type(&self) -> Option<String> {
        match self {
            Self::Image(m) => Some(
                m.artifact_type
                    .clone()
                    .unwrap_or_else(|| m.config.media_type.clone()),
            ),
            Self::Index(i) => i.artifact_type.clone(),
            Self::Opaque => None,
        }
    }

    /// Blobs this manifest needs present in the repository: config and distributable layers.
    pub fn blob_references(&self) -> Vec<&Descriptor> {
        match self {
            Self::Image(m) => std::iter::once(&m.config)
                .chain(
                    m.layers
                        .iter()
                        .filter(|l| !mt::is_non_distributable(&l.media_type)),
                )
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Child manifests of an index.
    pub fn child_manifests(&self) -> &[Descriptor] {
        match self {
            Self::Index(i) => &i.manifests,
            _ => &[],
        }
    }

    /// Every digest this manifest points to, including the subject.
    pub fn all_digests(&self) -> Vec<&Digest> {
        let mut v: Vec<&Digest> = match self {
            Self::Image(m) => std::iter::once(&m.config)
                .chain(&m.layers)
                .map(|d| &d.digest)
                .collect(),
            Self::Index(i) => i.manifests.iter().map(|d| &d.digest).collect(),
            Self::Opaque => Vec::new(),
        };
        if let Some(s) = self.subject() {
            v.push(&s.digest);
        }
        v
    }
}

fn is_manifest_type(t: &str) -> bool {
    mt::MANIFEST_TYPES.contains(&t) || t == mt::DOCKER_SCHEMA1 || t == mt::DOCKER_SCHEMA1_SIGNED
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ARTIFACT: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "artifactType":"application/spdx+json",
      "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},
      "layers":[{"mediaType":"application/spdx+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}],
      "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:7eac54530000000000000000000000000000000000000000000000000003799a","size":721},
      "annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}"#;

    #[test]
    fn parses_artifact_with_subject() {
        let (m, t) = Manifest::parse(ARTIFACT.as_bytes(), None).unwrap();
        assert_eq!(t, mt::OCI_MANIFEST);
        assert_eq!(
            m.referrer_artifact_type().as_deref(),
            Some("application/spdx+json")
        );
        assert!(m.subject().is_some());
        assert_eq!(m.blob_references().len(), 2);
        assert_eq!(m.all_digests().len(), 3);
    }

    #[test]
    fn content_type_must_agree_with_media_type() {
        let e = Manifest::parse(ARTIFACT.as_bytes(), Some(mt::OCI_INDEX)).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn infers_type_without_media_type() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        let (m, t) = Manifest::parse(idx, None).unwrap();
        assert_eq!(t, mt::OCI_INDEX);
        assert!(matches!(m, Manifest::Index(_)));
        let (_, t) = Manifest::parse(idx, Some(mt::DOCKER_MANIFEST_LIST)).unwrap();
        assert_eq!(t, mt::DOCKER_MANIFEST_LIST);
    }

    #[test]
    fn rejects_bad_manifests() {
        for (bad, why) in [
            (&b"not json"[..], "JSON"),
            (b"[]", "JSON"),
            (br#"{"schemaVersion":1,"manifests":[]}"#, "schemaVersion"),
            (br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#, "config"),
            (br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:1","size":1}]}"#, "digest"),
            (br#"{"schemaVersion":2,"mediaType":"text/plain","manifests":[]}"#, "unsupported"),
            (br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}"#, "schema1"),
            (br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}]}"#, "index"),
        ] {
            let e = Manifest::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains(why), "{e} lacks {why}");
        }
    }

    #[test]
    fn non_distributable_layers_are_not_required() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},
          "layers":[{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"sha256:54136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}"#;
        let (m, _) = Manifest::parse(m, None).unwrap();
        assert_eq!(m.blob_references().len(), 1);
        assert_eq!(m.referrer_artifact_type().as_deref(), Some(mt::OCI_CONFIG));
    }
}
