//! Manifest operations: GET/HEAD/PUT/DELETE `/v2/<name>/manifests/<reference>`.
//!
//! Manifests are handled as the bytes the registry sent; the digest is computed over exactly those bytes
//! and checked against the requested digest and `Docker-Content-Digest`.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use sigil_oci::{Descriptor, Digest, Manifest, Reference, media_type};

use crate::auth::Scope;
use crate::client::{RegistryClient, Req, ReqBody, header_str, read_limited};
use crate::error::ClientError;

/// A manifest as fetched: raw bytes, effective media type, digest over the bytes, `ETag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The manifest exactly as served.
    pub bytes: Bytes,
    /// Its media type (`Content-Type`, else the body's `mediaType`).
    pub media_type: String,
    /// Its digest (verified).
    pub digest: Digest,
    /// The `ETag` response header, for conditional PUTs.
    pub etag: Option<String>,
}

impl FetchedManifest {
    /// A descriptor for this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            urls: None,
            annotations: None,
            data: None,
            artifact_type: None,
            platform: None,
        }
    }

    /// Whether this is an index (OCI index or Docker manifest list).
    pub fn is_index(&self) -> bool {
        media_type::is_index(&self.media_type)
    }

    /// Parses the manifest.
    pub fn parse(&self) -> Result<Manifest, ClientError> {
        Ok(Manifest::parse(&self.bytes, Some(&self.media_type))?.0)
    }
}

/// Precondition for a manifest PUT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PutCondition {
    /// Unconditional.
    #[default]
    None,
    /// `If-Match: <etag>`: only replace the version we read.
    IfMatch(String),
    /// `If-None-Match: <etag>` (usually `*`: only create).
    IfNoneMatch(String),
}

/// What the registry answered to a manifest PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutManifestResponse {
    /// Digest of the pushed bytes.
    pub digest: Digest,
    /// `OCI-Subject` header: set by registries with the referrers API when the manifest has a subject.
    pub oci_subject: Option<String>,
    /// HTTP status (201).
    pub status: u16,
    /// `Location` header, if any.
    pub location: Option<String>,
}

/// Works out the media type of manifest bytes from `Content-Type` and the body.
pub fn effective_media_type(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<String, ClientError> {
    let ct = content_type
        .map(media_type::essence)
        .filter(|s| !s.is_empty());
    let body_type = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        });
    match (ct, body_type) {
        (Some(h), Some(b)) if media_type::MANIFEST_TYPES.contains(&h) && h != b => {
            Err(ClientError::Oci(sigil_oci::OciError::InvalidManifest(
                format!("mediaType {b:?} does not match Content-Type {h:?}"),
            )))
        }
        (Some(h), _) if media_type::MANIFEST_TYPES.contains(&h) => Ok(h.to_owned()),
        (_, Some(b)) => Ok(b),
        (h, None) => match Manifest::parse(bytes, None) {
            Ok((_, t)) => Ok(t),
            Err(e) => match h {
                Some(h) => Ok(h.to_owned()),
                None => Err(e.into()),
            },
        },
    }
}

/// Checks that `bytes` hash to `expected` (a digest sigil can compute).
pub(crate) fn verify_digest(
    what: &str,
    expected: &Digest,
    bytes: &[u8],
) -> Result<(), ClientError> {
    let actual = Digest::compute(expected.algorithm(), bytes)?;
    if &actual == expected {
        Ok(())
    } else {
        Err(ClientError::DigestMismatch {
            what: what.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

fn manifest_path(r: &Reference, reference: &str) -> String {
    format!("/v2/{}/manifests/{reference}", r.repository)
}

impl RegistryClient {
    /// GET a manifest (by the reference's digest, else tag, else `latest`) with the full `Accept` list.
    /// The body is verified against the requested digest and against `Docker-Content-Digest`.
    pub async fn get_manifest(&self, r: &Reference) -> Result<FetchedManifest, ClientError> {
        self.get_manifest_accept(r, &media_type::accept_header())
            .await
    }

    /// GET a manifest with a custom `Accept` header (e.g. only the OCI index type).
    pub async fn get_manifest_accept(
        &self,
        r: &Reference,
        accept: &str,
    ) -> Result<FetchedManifest, ClientError> {
        let reference = r.reference();
        let req = Req::new(
            Method::GET,
            manifest_path(r, &reference),
            vec![Scope::pull(&r.repository)],
        )
        .header(ACCEPT, accept);
        let resp = self.send(&r.registry, req).await?;
        let resp = self.check(&r.registry, resp).await?;
        let content_type = header_str(&resp, "content-type").map(str::to_owned);
        let header_digest = header_str(&resp, "docker-content-digest").map(str::to_owned);
        let etag = header_str(&resp, "etag").map(str::to_owned);
        let limit = self.inner.opts.max_manifest_bytes;
        let bytes = read_limited(resp, limit, &format!("manifest {r}"), &r.registry).await?;
        let what = format!("manifest {r}");
        let digest = if let Some(d) = &r.digest {
            verify_digest(&what, d, &bytes)?;
            d.clone()
        } else {
            Digest::sha256(&bytes)
        };
        if let Some(h) = header_digest
            .as_deref()
            .and_then(|h| Digest::parse(h.trim()).ok())
            && h.is_computable()
        {
            if h.algorithm() == digest.algorithm() {
                if h != digest {
                    return Err(ClientError::DigestMismatch {
                        what: format!("{what} (Docker-Content-Digest)"),
                        expected: h.to_string(),
                        actual: digest.to_string(),
                    });
                }
            } else {
                verify_digest(&format!("{what} (Docker-Content-Digest)"), &h, &bytes)?;
            }
        }
        let media_type = effective_media_type(&bytes, content_type.as_deref())?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
            etag,
        })
    }

    /// HEAD a manifest: `None` if it does not exist. When the registry omits `Docker-Content-Digest`
    /// (and the reference is a tag) or `Content-Length`, falls back to a GET.
    pub async fn head_manifest(&self, r: &Reference) -> Result<Option<Descriptor>, ClientError> {
        let reference = r.reference();
        let req = Req::new(
            Method::HEAD,
            manifest_path(r, &reference),
            vec![Scope::pull(&r.repository)],
        )
        .header(ACCEPT, &media_type::accept_header());
        let resp = self.send(&r.registry, req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self.check(&r.registry, resp).await?;
        let digest = header_str(&resp, "docker-content-digest")
            .and_then(|h| Digest::parse(h.trim()).ok())
            .or_else(|| r.digest.clone());
        let size = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let ct = header_str(&resp, "content-type")
            .map(media_type::essence)
            .filter(|t| media_type::MANIFEST_TYPES.contains(t))
            .map(str::to_owned);
        match (digest, size, ct) {
            (Some(digest), Some(size), Some(media_type)) if size > 0 => Ok(Some(Descriptor {
                media_type,
                digest,
                size,
                urls: None,
                annotations: None,
                data: None,
                artifact_type: None,
                platform: None,
            })),
            _ => match self.get_manifest(r).await {
                Ok(m) => Ok(Some(m.descriptor())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// PUT a manifest under the reference's tag or digest. `Content-Type` is `media_type`. A 412 becomes
    /// [`ClientError::PreconditionFailed`].
    pub async fn put_manifest(
        &self,
        r: &Reference,
        bytes: Bytes,
        media_type: &str,
        condition: PutCondition,
    ) -> Result<PutManifestResponse, ClientError> {
        let reference = r.reference();
        let digest = match &r.digest {
            Some(d) => {
                verify_digest(&format!("manifest for {r}"), d, &bytes)?;
                d.clone()
            }
            None => Digest::sha256(&bytes),
        };
        let mut req = Req::new(
            Method::PUT,
            manifest_path(r, &reference),
            vec![Scope::push(&r.repository)],
        )
        .header(CONTENT_TYPE, media_type)
        .body(ReqBody::Bytes(bytes));
        req = match &condition {
            PutCondition::None => req,
            PutCondition::IfMatch(e) => req.header(IF_MATCH, e),
            PutCondition::IfNoneMatch(e) => req.header(IF_NONE_MATCH, e),
        };
        let resp = self.send(&r.registry, req).await?;
        if resp.status() == StatusCode::PRECONDITION_FAILED {
            return Err(ClientError::PreconditionFailed {
                registry: r.registry.clone(),
                reference: format!(
                    "{}{}{reference}",
                    r.repository,
                    if r.digest.is_some() { "@" } else { ":" }
                ),
            });
        }
        let resp = self.check(&r.registry, resp).await?;
        if let Some(h) =
            header_str(&resp, "docker-content-digest").and_then(|h| Digest::parse(h.trim()).ok())
            && h.algorithm() == digest.algorithm()
            && h != digest
        {
            return Err(ClientError::DigestMismatch {
                what: format!("pushed manifest {r} (Docker-Content-Digest)"),
                expected: digest.to_string(),
                actual: h.to_string(),
            });
        }
        Ok(PutManifestResponse {
            digest,
            oci_subject: header_str(&resp, "oci-subject").map(str::to_owned),
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }

    /// DELETE a manifest (by digest; registries may also accept a tag, which then untags).
    pub async fn delete_manifest(&self, r: &Reference) -> Result<(), ClientError> {
        let req = Req::new(
            Method::DELETE,
            manifest_path(r, &r.reference()),
            vec![Scope::delete(&r.repository)],
        );
        let resp = self.send(&r.registry, req).await?;
        self.check(&r.registry, resp).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn media_type_from_header_and_body() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert_eq!(
            effective_media_type(
                idx,
                Some("application/vnd.oci.image.index.v1+json; charset=x")
            )
            .unwrap(),
            media_type::OCI_INDEX
        );
        assert_eq!(
            effective_media_type(idx, Some("application/json")).unwrap(),
            media_type::OCI_INDEX
        );
        assert_eq!(
            effective_media_type(idx, None).unwrap(),
            media_type::OCI_INDEX
        );
        assert!(effective_media_type(idx, Some(media_type::OCI_MANIFEST)).is_err());
        let bare = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            effective_media_type(bare, Some(media_type::DOCKER_MANIFEST_LIST)).unwrap(),
            media_type::DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            effective_media_type(bare, None).unwrap(),
            media_type::OCI_INDEX
        );
        assert_eq!(
            effective_media_type(b"xx", Some("text/plain")).unwrap(),
            "text/plain"
        );
        assert!(effective_media_type(b"xx", None).is_err());
    }
}
