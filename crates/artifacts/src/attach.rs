//! [`Referrers::attach`]: push an artifact manifest that refers to a subject.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use bytes::Bytes;
use serde::Serialize;
use sigil_client::{BlobBody, PutCondition, resolve_platform};
use sigil_oci::descriptor::EMPTY_JSON;
use sigil_oci::{Descriptor, Digest, ImageManifest, Platform, Reference, media_type};

use crate::error::ArtifactError;
use crate::referrers::{Mechanism, Referrers};
use crate::{ANNOTATION_CREATED, ANNOTATION_TITLE};

/// One file to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachFile {
    /// Where to read it.
    pub path: PathBuf,
    /// The layer media type.
    pub media_type: String,
}

impl AttachFile {
    /// Parses `PATH[:MEDIATYPE]` (default `application/octet-stream`). The media type is split off at
    /// the last `:` only when what follows looks like a media type (`type/subtype`).
    pub fn parse(s: &str) -> Result<Self, ArtifactError> {
        let (path, mt) = match s.rsplit_once(':') {
            Some((p, m)) if m.contains('/') && !m.contains(char::is_whitespace) => (p, m),
            _ => (s, "application/octet-stream"),
        };
        if path.is_empty() {
            return Err(ArtifactError::InvalidInput(format!(
                "invalid file argument {s:?} (use PATH[:MEDIATYPE])"
            )));
        }
        Ok(Self {
            path: PathBuf::from(path),
            media_type: mt.to_owned(),
        })
    }
}

/// What to attach.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// `artifactType` of the manifest.
    pub artifact_type: String,
    /// The files, one layer each.
    pub files: Vec<AttachFile>,
    /// Manifest annotations (`org.opencontainers.image.created` is added unless present).
    pub annotations: BTreeMap<String, String>,
    /// Attach to this platform's manifest of an index subject.
    pub platform: Option<Platform>,
}

/// The result of an attach.
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    /// The referrer's digest.
    pub digest: Digest,
    /// `registry/repository@digest` of the referrer.
    pub reference: String,
    /// The referrer's descriptor as listed by the referrers API / fallback index.
    pub descriptor: Descriptor,
    /// The subject it refers to.
    pub subject: Descriptor,
    /// How the registry learns about the referrer.
    pub mechanism: Mechanism,
}

/// Reads a file completely, with the path in the error.
async fn read_file(path: &std::path::Path) -> Result<Bytes, ArtifactError> {
    tokio::fs::read(path)
        .await
        .map(Bytes::from)
        .map_err(|e| ArtifactError::io(path, e))
}

/// The descriptor a referrers listing carries for a manifest: artifactType (else config media type)
/// and all annotations.
pub(crate) fn referrer_descriptor(m: &ImageManifest, bytes: &[u8]) -> Descriptor {
    let mut d = Descriptor::for_bytes(media_type::OCI_MANIFEST, bytes);
    d.artifact_type = Some(
        m.artifact_type
            .clone()
            .unwrap_or_else(|| m.config.media_type.clone()),
    );
    d.annotations = m.annotations.clone();
    d
}

impl Referrers {
    /// Resolves the subject of an attach: must exist. A digest reference costs one HEAD, a tag one
    /// HEAD; with a platform, one GET of the index.
    pub(crate) async fn resolve_subject(
        &self,
        subject: &Reference,
        platform: Option<&Platform>,
    ) -> Result<Descriptor, ArtifactError> {
        let not_found = || ArtifactError::NotFound {
            reference: subject.to_string(),
        };
        if let Some(p) = platform {
            let m = match self.client().get_manifest(subject).await {
                Ok(m) => m,
                Err(e) if e.is_not_found() => return Err(not_found()),
                Err(e) => return Err(e.into()),
            };
            if !m.is_index() {
                return Err(ArtifactError::Unusable {
                    reference: subject.to_string(),
                    message: format!("--platform needs an index, this is a {}", m.media_type),
                });
            }
            let child = resolve_platform(&m.bytes, p)?;
            return Ok(bare(&child));
        }
        match self.client().head_manifest(subject).await? {
            Some(d) => Ok(bare(&d)),
            None => Err(not_found()),
        }
    }

    /// Attaches files to `subject` as an OCI 1.1 artifact: checks the subject exists and every file
    /// is readable before pushing anything, pushes missing blobs (HEAD, then POST+PUT), PUTs the
    /// manifest by digest, and maintains the fallback index when the registry does not answer
    /// `OCI-Subject`.
    pub async fn attach(
        &self,
        subject: &Reference,
        opts: &AttachOptions,
    ) -> Result<AttachReport, ArtifactError> {
        if opts.artifact_type.trim().is_empty() {
            return Err(ArtifactError::InvalidInput(
                "the artifact type must not be empty".into(),
            ));
        }
        // Files first: nothing is pushed when one cannot be read.
        let mut layers = Vec::new();
        let mut blobs: Vec<(Digest, Bytes)> =
            vec![(Digest::sha256(EMPTY_JSON), Bytes::from_static(EMPTY_JSON))];
        let mut titles = HashSet::new();
        for f in &opts.files {
            let title = f
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    ArtifactError::InvalidInput(format!(
                        "{}: not a file name usable as a title",
                        f.path.display()
                    ))
                })?
                .to_owned();
            if !titles.insert(title.clone()) {
                return Err(ArtifactError::InvalidInput(format!(
                    "two files are named {title:?}; titles must be unique"
                )));
            }
            let bytes = read_file(&f.path).await?;
            let mut d = Descriptor::for_bytes(&f.media_type, &bytes);
            d.annotations = Some(BTreeMap::from([(ANNOTATION_TITLE.to_owned(), title)]));
            if !blobs.iter().any(|(dg, _)| dg == &d.digest) {
                blobs.push((d.digest.clone(), bytes));
            }
            layers.push(d);
        }
        let subject_desc = self
            .resolve_subject(subject, opts.platform.as_ref())
            .await?;
        let mut annotations = opts.annotations.clone();
        annotations
            .entry(ANNOTATION_CREATED.to_owned())
            .or_insert_with(crate::now_rfc3339);
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            artifact_type: Some(opts.artifact_type.clone()),
            config: Descriptor::empty(),
            layers,
            subject: Some(subject_desc.clone()),
            annotations: Some(annotations),
        };
        let bytes = manifest.to_bytes();
        let descriptor = referrer_descriptor(&manifest, &bytes);
        let repo = subject.with_digest(descriptor.digest.clone());

        let client = self.client();
        futures::future::try_join_all(blobs.into_iter().map(|(digest, data)| {
            let repo = &repo;
            async move {
                let size = data.len() as u64;
                client
                    .push_blob(repo, &digest, Some(size), BlobBody::bytes(data))
                    .await
            }
        }))
        .await?;
        let resp = client
            .put_manifest(
                &repo,
                Bytes::from(bytes),
                media_type::OCI_MANIFEST,
                PutCondition::None,
            )
            .await?;
        let subject_str = subject_desc.digest.to_string();
        let mechanism = if resp.oci_subject.as_deref().map(str::trim) == Some(subject_str.as_str())
        {
            self.set_mechanism(subject, Mechanism::Api);
            Mechanism::Api
        } else {
            if let Err(e) = self
                .add_to_fallback_index(
                    subject,
                    &subject_desc.digest,
                    std::slice::from_ref(&descriptor),
                )
                .await
            {
                // Leave nothing behind that no listing would find.
                if let Err(d) = client.delete_manifest(&repo).await {
                    tracing::warn!(digest = %descriptor.digest, error = %d, "could not remove the pushed referrer");
                }
                return Err(e);
            }
            Mechanism::Fallback
        };
        Ok(AttachReport {
            digest: descriptor.digest.clone(),
            reference: format!("{}@{}", subject.repository_name(), descriptor.digest),
            descriptor,
            subject: subject_desc,
            mechanism,
        })
    }
}

/// A descriptor with only media type, digest and size (as a `subject`).
fn bare(d: &Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        urls: None,
        annotations: None,
        data: None,
        artifact_type: None,
        platform: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_file_arguments() {
        let f = AttachFile::parse("sbom.json:application/spdx+json").unwrap();
        assert_eq!(f.path, PathBuf::from("sbom.json"));
        assert_eq!(f.media_type, "application/spdx+json");
        let f = AttachFile::parse("dir/readme.md").unwrap();
        assert_eq!(f.media_type, "application/octet-stream");
        let f = AttachFile::parse("C:notatype").unwrap();
        assert_eq!(f.path, PathBuf::from("C:notatype"));
        assert!(AttachFile::parse("").is_err());
        assert!(AttachFile::parse(":text/plain").is_err());
    }

    #[test]
    fn referrer_descriptor_copies_type_and_annotations() {
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::for_bytes("application/x-config", b"{}"),
            layers: vec![],
            subject: None,
            annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
        };
        let bytes = m.to_bytes();
        let d = referrer_descriptor(&m, &bytes);
        assert_eq!(d.artifact_type.as_deref(), Some("application/x-config"));
        assert_eq!(d.annotation("a"), Some("b"));
        assert_eq!(d.size, bytes.len() as u64);
    }
}
