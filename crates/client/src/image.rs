//! Uniform reads of images in registries and OCI layouts, and platform resolution through indexes.

use bytes::Bytes;
use sigil_oci::{Descriptor, Digest, ImageIndex, Manifest, OciError, Platform, Reference};

use crate::blobs::BlobStream;
use crate::client::RegistryClient;
use crate::error::ClientError;
use crate::image_ref::ImageRef;
use crate::layout::{OciLayout, REF_NAME};
use crate::manifests::FetchedManifest;

/// Largest config blob read into memory.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// How deep indexes may nest when resolving a platform or copying.
pub(crate) const MAX_DEPTH: usize = 8;

/// Picks the entry of an index for `platform` (exact match first, else the newest compatible variant,
/// via [`Platform::choose`]).
pub fn resolve_platform(
    index_bytes: &[u8],
    platform: &Platform,
) -> Result<Descriptor, ClientError> {
    let index: ImageIndex = serde_json::from_slice(index_bytes)
        .map_err(|e| OciError::InvalidManifest(format!("index: {e}")))?;
    match platform.choose(index.manifests.iter().map(|d| d.platform.as_ref())) {
        Some(i) => index
            .manifests
            .get(i)
            .cloned()
            .ok_or_else(|| ClientError::NoMatchingPlatform {
                wanted: platform.to_string(),
                available: Vec::new(),
            }),
        None => Err(ClientError::NoMatchingPlatform {
            wanted: platform.to_string(),
            available: index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect(),
        }),
    }
}

/// A place images are read from or written to.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    Registry {
        client: RegistryClient,
        repo: Reference,
    },
    Layout(OciLayout),
}

impl Store {
    /// Opens the store of `image`; a layout is created when `create` is set.
    pub async fn open(
        client: &RegistryClient,
        image: &ImageRef,
        create: bool,
    ) -> Result<Self, ClientError> {
        match image {
            ImageRef::Registry(r) => Ok(Self::Registry {
                client: client.clone(),
                repo: r.clone(),
            }),
            ImageRef::Layout(l) => {
                let layout = if create {
                    OciLayout::create(&l.path).await?
                } else {
                    OciLayout::open(&l.path)?
                };
                Ok(Self::Layout(layout.with_max_manifest_bytes(
                    client.options().max_manifest_bytes,
                )))
            }
        }
    }

    /// The manifest `image` names, and the tag (or layout ref name) it was found under.
    pub async fn top_manifest(
        &self,
        image: &ImageRef,
    ) -> Result<(FetchedManifest, Option<String>), ClientError> {
        match (self, image) {
            (Self::Registry { client, repo }, _) => {
                let m = client.get_manifest(repo).await?;
                Ok((m, repo.tag.clone()))
            }
            (Self::Layout(l), ImageRef::Layout(lr)) => {
                let desc = l.resolve(lr.reference.as_deref()).await?;
                let name = desc.annotation(REF_NAME).map(str::to_owned);
                let m = l
                    .read_manifest(&desc.digest, Some(&desc.media_type))
                    .await?;
                Ok((m, name))
            }
            (Self::Layout(l), ImageRef::Registry(_)) => {
                let m = l.get_manifest(None).await?;
                Ok((m, None))
            }
        }
    }

    /// A manifest by digest (an index child), verified.
    pub async fn manifest_by_descriptor(
        &self,
        desc: &Descriptor,
    ) -> Result<FetchedManifest, ClientError> {
        match self {
            Self::Registry { client, repo } => {
                let m = client
                    .get_manifest(&repo.with_digest(desc.digest.clone()))
                    .await?;
                Ok(m)
            }
            Self::Layout(l) => l.read_manifest(&desc.digest, Some(&desc.media_type)).await,
        }
    }

    /// A blob as a verifying stream.
    pub async fn blob(
        &self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobStream, ClientError> {
        match self {
            Self::Registry { client, repo } => client.get_blob(repo, digest, size).await,
            Self::Layout(l) => l.read_blob(digest, size).await,
        }
    }

    /// The blob's size if the store has it.
    pub async fn has_blob(&self, digest: &Digest) -> Result<Option<u64>, ClientError> {
        match self {
            Self::Registry { client, repo } => client.head_blob(repo, digest).await,
            Self::Layout(l) => l.has_blob(digest).await,
        }
    }

    /// Walks from `top` through indexes to the manifest for `platform` (`top` itself if it is not an
    /// index).
    pub async fn resolve_platform(
        &self,
        mut top: FetchedManifest,
        platform: &Platform,
    ) -> Result<FetchedManifest, ClientError> {
        for _ in 0..MAX_DEPTH {
            if !top.is_index() {
                return Ok(top);
            }
            let desc = resolve_platform(&top.bytes, platform)?;
            top = self.manifest_by_descriptor(&desc).await?;
        }
        Err(OciError::InvalidManifest("indexes nested too deeply".into()).into())
    }
}

impl RegistryClient {
    /// The manifest `image` names (registry or OCI layout), verified.
    pub async fn fetch_manifest(&self, image: &ImageRef) -> Result<FetchedManifest, ClientError> {
        let store = Store::open(self, image, false).await?;
        Ok(store.top_manifest(image).await?.0)
    }

    /// The manifest `image` names, resolved through indexes to `platform` when one is given.
    pub async fn fetch_manifest_for_platform(
        &self,
        image: &ImageRef,
        platform: Option<&Platform>,
    ) -> Result<FetchedManifest, ClientError> {
        let store = Store::open(self, image, false).await?;
        let top = store.top_manifest(image).await?.0;
        match platform {
            Some(p) => store.resolve_platform(top, p).await,
            None => Ok(top),
        }
    }

    /// The config blob of `image` (resolved to `platform` through an index), with its manifest. Fails
    /// for an index when no platform is given.
    pub async fn fetch_config(
        &self,
        image: &ImageRef,
        platform: Option<&Platform>,
    ) -> Result<(FetchedManifest, Bytes), ClientError> {
        let store = Store::open(self, image, false).await?;
        let top = store.top_manifest(image).await?.0;
        let m = match platform {
            Some(p) => store.resolve_platform(top, p).await?,
            None => top,
        };
        let config = match m.parse()? {
            Manifest::Image(im) => im.config,
            Manifest::Index(_) => {
                return Err(ClientError::InvalidInput(
                    "this is an index; choose a platform to get a config".into(),
                ));
            }
            Manifest::Opaque => {
                return Err(ClientError::InvalidInput(format!(
                    "a {} has no config",
                    m.media_type
                )));
            }
        };
        let bytes = store
            .blob(&config.digest, Some(config.size))
            .await?
            .collect_bytes(MAX_CONFIG_BYTES)
            .await?;
        Ok((m, bytes))
    }

    /// A blob of `image`'s repository or layout as a verifying stream.
    pub async fn fetch_blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobStream, ClientError> {
        Store::open(self, image, false)
            .await?
            .blob(digest, size)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resolves_platforms() {
        let d1 = Digest::sha256(b"1");
        let d2 = Digest::sha256(b"2");
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d2}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let p = |s: &str| Platform::parse(s).unwrap();
        assert_eq!(
            resolve_platform(idx.as_bytes(), &p("linux/amd64"))
                .unwrap()
                .digest,
            d1
        );
        assert_eq!(
            resolve_platform(idx.as_bytes(), &p("linux/aarch64"))
                .unwrap()
                .digest,
            d2
        );
        let e = resolve_platform(idx.as_bytes(), &p("linux/s390x")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no manifest for platform linux/s390x (available: linux/amd64, linux/arm64/v8)"
        );
        assert!(resolve_platform(b"{}", &p("linux/amd64")).is_err());
    }
}
