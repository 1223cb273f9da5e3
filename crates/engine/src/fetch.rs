//! Registry I/O of one review: signature/attestation material of an image digest, fetched once per
//! review (every rule and attestor entry that needs it shares the result), with transient registry
//! errors (429, 5xx, connection errors) retried with exponential backoff inside the review deadline.
//!
//! What is fetched:
//! - legacy cosign `sha256-<hex>.sig` / `.att` manifests and their payload blobs (in the image's
//!   repository or an alternate signature repository);
//! - cosign OCI 1.1 signature referrers (`cosignOCI11: true`);
//! - Sigstore bundle referrers (`type: SigstoreBundle`);
//! - for `type: Notary`, the fetching is sigil-notary's: the fetcher only memoises each Notary check
//!   per review and lends its client, retry policy and deadline.
//!
//! A missing signature manifest is not an error (the material is empty); a registry that cannot be
//! reached is ([`FetchError::Registry`]), so the decision becomes an uncached error, never a pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use sigil_artifacts::{ArtifactError, Referrers};
use sigil_client::retry::{is_retryable, retry, retry_when};
use sigil_client::{ClientError, RegistryClient, RetryPolicy};
use sigil_cosign::SignatureFailure;
use sigil_cosign::legacy::{DSSE_MEDIA_TYPE, MAX_LAYERS, MAX_PAYLOAD, SIMPLE_SIGNING_MEDIA_TYPE};
use sigil_oci::{Descriptor, Digest, Manifest, Reference};
use tokio::sync::OnceCell;

/// Artifact type of cosign signatures stored as OCI 1.1 referrers.
pub(crate) const COSIGN_SIG_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Prefix of Sigstore bundle media types.
const BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// Most referrers examined per image (as Kyverno).
const MAX_REFERRERS: usize = 50;

/// Why material could not be fetched.
#[derive(Debug, Clone)]
pub(crate) enum FetchError {
    /// The registry could not be reached or kept failing (after retries).
    Registry(String),
    /// The registry answered something unusable.
    Other(String),
}

impl FetchError {
    fn from_client(e: &ClientError) -> Self {
        if is_retryable(e) {
            Self::Registry(e.to_string())
        } else {
            Self::Other(e.to_string())
        }
    }

    fn from_artifacts(e: &ArtifactError) -> Self {
        match e {
            ArtifactError::Client(c) => Self::from_client(c),
            other => Self::Other(other.to_string()),
        }
    }
}

/// One signature/attestation layer (or bundle) and its payload.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The layer descriptor (annotations carry signature, certificate, Rekor bundle).
    pub layer: Descriptor,
    /// Where it was found (for messages).
    pub location: String,
    /// The payload bytes, digest-verified, or why they could not be used.
    pub payload: Result<Bytes, SignatureFailure>,
}

/// Material of one kind for one digest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Material {
    /// Candidates in registry order.
    pub candidates: Vec<Candidate>,
    /// Where they were looked for (for "none found" messages).
    pub looked_at: Vec<String>,
}

type Slot = Arc<OnceCell<Result<Arc<Material>, FetchError>>>;

/// Per-review fetcher: memoises material by what was fetched.
pub(crate) struct Fetcher {
    client: RegistryClient,
    referrers: Arc<Referrers>,
    retry: RetryPolicy,
    deadline: Instant,
    memo: Mutex<HashMap<String, Slot>>,
    notary: Mutex<HashMap<String, NotarySlot>>,
}

/// A memoised Notary check (see [`crate::notary`]).
pub(crate) type NotarySlot = Arc<OnceCell<crate::notary::Checked>>;

impl Fetcher {
    pub(crate) fn new(
        client: RegistryClient,
        referrers: Arc<Referrers>,
        retry: RetryPolicy,
        deadline: Instant,
    ) -> Self {
        Self {
            client,
            referrers,
            retry,
            deadline,
            memo: Mutex::new(HashMap::new()),
            notary: Mutex::new(HashMap::new()),
        }
    }

    /// The registry client.
    pub(crate) fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// How transient registry failures are retried.
    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The review deadline.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The memo slot of one Notary check of this review (every rule and entry asking the same
    /// question of the same digest shares it).
    pub(crate) fn notary_slot(&self, key: String) -> NotarySlot {
        self.notary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone()
    }

    fn slot(&self, key: String) -> Slot {
        self.memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone()
    }

    /// Resolves a tag to a digest (HEAD, retried). `Ok(None)`: the tag does not exist.
    pub(crate) async fn resolve(&self, image: &Reference) -> Result<Option<Digest>, FetchError> {
        retry(&self.retry, Some(self.deadline), || {
            self.client.head_manifest(image)
        })
        .await
        .map(|d| d.map(|d| d.digest))
        .map_err(|e| FetchError::from_client(&e))
    }

    /// Legacy `.sig` (`suffix = "sig"`) or `.att` layers of `image@digest`, in `signature_repo` when
    /// given (`registry/repository`).
    pub(crate) async fn legacy(
        &self,
        image: &Reference,
        digest: &Digest,
        suffix: &str,
        signature_repo: Option<&str>,
    ) -> Result<Arc<Material>, FetchError> {
        let at = sigil_cosign::legacy::storage_ref(image, digest, suffix, signature_repo)
            .map_err(|e| FetchError::Other(e.to_string()))?;
        let key = format!("legacy {at}");
        let slot = self.slot(key);
        slot.get_or_init(|| async {
            let manifest = self.manifest(&at).await?;
            let mut m = Material {
                looked_at: vec![at.to_string()],
                ..Material::default()
            };
            if let Some(layers) = manifest {
                let wanted = if suffix == "sig" {
                    SIMPLE_SIGNING_MEDIA_TYPE
                } else {
                    DSSE_MEDIA_TYPE
                };
                m.candidates = self.payloads(&at, layers, Some(wanted)).await?;
            }
            Ok(Arc::new(m))
        })
        .await
        .clone()
    }

    /// Cosign signatures stored as OCI 1.1 referrers of `image@digest`.
    pub(crate) async fn cosign_referrers(
        &self,
        image: &Reference,
        digest: &Digest,
    ) -> Result<Arc<Material>, FetchError> {
        let key = format!("oci11 {}@{digest}", image.repository_name());
        self.slot(key)
            .get_or_init(|| async {
                let listed = self.list_referrers(image, digest).await?;
                let mut m = Material {
                    looked_at: vec![format!("referrers of {}@{digest}", image.repository_name())],
                    ..Material::default()
                };
                for d in listed
                    .iter()
                    .filter(|d| d.artifact_type.as_deref() == Some(COSIGN_SIG_ARTIFACT_TYPE))
                    .take(MAX_REFERRERS)
                {
                    let at = image.with_digest(d.digest.clone());
                    if let Some(layers) = self.manifest(&at).await? {
                        m.candidates.extend(
                            self.payloads(&at, layers, Some(SIMPLE_SIGNING_MEDIA_TYPE))
                                .await?,
                        );
                    }
                }
                Ok(Arc::new(m))
            })
            .await
            .clone()
    }

    /// Sigstore bundle referrers of `image@digest` (one candidate per bundle layer).
    pub(crate) async fn bundles(
        &self,
        image: &Reference,
        digest: &Digest,
    ) -> Result<Arc<Material>, FetchError> {
        let key = format!("bundles {}@{digest}", image.repository_name());
        self.slot(key)
            .get_or_init(|| async {
                let listed = self.list_referrers(image, digest).await?;
                let mut m = Material {
                    looked_at: vec![format!(
                        "bundle referrers of {}@{digest}",
                        image.repository_name()
                    )],
                    ..Material::default()
                };
                let maybe = listed.iter().filter(|d| match d.artifact_type.as_deref() {
                    // Some registries and cosign's fallback index report the empty config type.
                    None | Some(sigil_oci::media_type::OCI_EMPTY) => true,
                    Some(t) => t.starts_with(BUNDLE_PREFIX),
                });
                for d in maybe.take(MAX_REFERRERS) {
                    let at = image.with_digest(d.digest.clone());
                    if let Some(layers) = self.manifest(&at).await? {
                        let bundle_layers: Vec<Descriptor> = layers
                            .into_iter()
                            .filter(|l| l.media_type.starts_with(BUNDLE_PREFIX))
                            .take(1)
                            .collect();
                        m.candidates
                            .extend(self.payloads(&at, bundle_layers, None).await?);
                    }
                }
                Ok(Arc::new(m))
            })
            .await
            .clone()
    }

    async fn list_referrers(
        &self,
        image: &Reference,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, FetchError> {
        retry_when(
            &self.retry,
            Some(self.deadline),
            |e: &ArtifactError| matches!(e, ArtifactError::Client(c) if is_retryable(c)),
            || self.referrers.list(image, digest, &[]),
        )
        .await
        .map_err(|e| FetchError::from_artifacts(&e))
    }

    /// The data of an image for a rule's `imageRegistry` context entry (Kyverno's shape): its
    /// manifest (the `linux/amd64` one when `reference` names an index, which is then the
    /// `manifestList`) and config blob, each digest-verified.
    pub(crate) async fn image_data(
        &self,
        reference: &str,
    ) -> Result<sigil_policy::context::ImageData, FetchError> {
        let parsed = Reference::parse(reference).map_err(|e| {
            FetchError::Other(format!("invalid image reference {reference:?}: {e}"))
        })?;
        let get = |at: Reference| async move {
            retry(&self.retry, Some(self.deadline), || {
                self.client.get_manifest(&at)
            })
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    FetchError::Other(format!("{at}: manifest unknown"))
                } else {
                    FetchError::from_client(&e)
                }
            })
        };
        let top = get(parsed.clone()).await?;
        let parse_json = |bytes: &[u8], what: &str| {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .map_err(|e| FetchError::Other(format!("{reference}: {what} is not JSON: {e}")))
        };
        let (manifest_list, image_manifest) =
            match Manifest::parse(&top.bytes, Some(&top.media_type)) {
                Ok((Manifest::Image(_), _)) => (None, top.clone()),
                Ok((Manifest::Index(_), _)) => {
                    let platform = sigil_oci::Platform::parse("linux/amd64")
                        .map_err(|e| FetchError::Other(e.to_string()))?;
                    let chosen = sigil_client::resolve_platform(&top.bytes, &platform)
                        .map_err(|e| FetchError::Other(format!("{reference}: {e}")))?;
                    let child = get(parsed.with_digest(chosen.digest)).await?;
                    (Some(parse_json(&top.bytes, "the index")?), child)
                }
                Ok(_) => {
                    return Err(FetchError::Other(format!(
                        "{reference}: not an image or index ({})",
                        top.media_type
                    )));
                }
                Err(e) => return Err(FetchError::Other(format!("{reference}: {e}"))),
            };
        let config = match Manifest::parse(&image_manifest.bytes, Some(&image_manifest.media_type))
        {
            Ok((Manifest::Image(m), _)) => m.config,
            _ => {
                return Err(FetchError::Other(format!(
                    "{reference}: the platform manifest is not an image manifest"
                )));
            }
        };
        let at = parsed.with_digest(image_manifest.digest.clone());
        let blob = retry(&self.retry, Some(self.deadline), || {
            self.client
                .get_blob_bytes(&at, &config.digest, sigil_client::image::MAX_CONFIG_BYTES)
        })
        .await
        .map_err(|e| FetchError::from_client(&e))?;
        if config.digest.verify(&blob).is_err() {
            return Err(FetchError::Other(format!(
                "{reference}: config blob does not match its digest {}",
                config.digest
            )));
        }
        Ok(sigil_policy::context::ImageData {
            image: reference.to_owned(),
            resolved_image: format!("{}@{}", parsed.repository_name(), top.digest),
            registry: parsed.registry.clone(),
            repository: parsed.repository.clone(),
            identifier: match (&parsed.digest, &parsed.tag) {
                (Some(d), _) => d.to_string(),
                (None, Some(t)) => t.clone(),
                (None, None) => "latest".to_owned(),
            },
            manifest_list,
            manifest: parse_json(&image_manifest.bytes, "the manifest")?,
            config_data: parse_json(&blob, "the config")?,
        })
    }

    /// The layers of the image manifest at `at`; `None` when it does not exist.
    async fn manifest(&self, at: &Reference) -> Result<Option<Vec<Descriptor>>, FetchError> {
        let fetched = match retry(&self.retry, Some(self.deadline), || {
            self.client.get_manifest(at)
        })
        .await
        {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(FetchError::from_client(&e)),
        };
        match Manifest::parse(&fetched.bytes, Some(&fetched.media_type)) {
            Ok((Manifest::Image(im), _)) => Ok(Some(im.layers)),
            Ok(_) => Err(FetchError::Other(format!(
                "{at}: not an image manifest ({})",
                fetched.media_type
            ))),
            Err(e) => Err(FetchError::Other(format!("{at}: {e}"))),
        }
    }

    /// Fetches the payload of each layer (of media type `wanted` when given) concurrently.
    async fn payloads(
        &self,
        at: &Reference,
        layers: Vec<Descriptor>,
        wanted: Option<&str>,
    ) -> Result<Vec<Candidate>, FetchError> {
        let location = at.to_string();
        let jobs = layers.into_iter().take(MAX_LAYERS).map(|layer| {
            let location = location.clone();
            async move {
                if let Some(w) = wanted
                    && layer.media_type != w
                {
                    let mt = layer.media_type.clone();
                    return Ok(Candidate {
                        layer,
                        location,
                        payload: Err(SignatureFailure::MediaType(mt)),
                    });
                }
                if layer.size > MAX_PAYLOAD {
                    let d = layer.digest.clone();
                    return Ok(Candidate {
                        layer,
                        location,
                        payload: Err(SignatureFailure::Fetch {
                            digest: d,
                            why: format!("larger than {MAX_PAYLOAD} bytes"),
                        }),
                    });
                }
                let got = retry(&self.retry, Some(self.deadline), || {
                    self.client.get_blob_bytes(at, &layer.digest, MAX_PAYLOAD)
                })
                .await;
                let payload = match got {
                    Ok(b) if layer.digest.verify(&b).is_ok() && b.len() as u64 == layer.size => {
                        Ok(b)
                    }
                    Ok(_) => Err(SignatureFailure::PayloadDigest(layer.digest.clone())),
                    Err(e) if is_retryable(&e) => return Err(FetchError::Registry(e.to_string())),
                    Err(e) => Err(SignatureFailure::Fetch {
                        digest: layer.digest.clone(),
                        why: e.summary(),
                    }),
                };
                Ok(Candidate {
                    layer,
                    location,
                    payload,
                })
            }
        });
        futures::future::join_all(jobs).await.into_iter().collect()
    }
}
