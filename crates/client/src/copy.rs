//! The copy engine: images and whole indexes between registries and OCI layouts.
//!
//! A copy walks the source manifest (an index's children recursively, or only the child for the
//! requested platform), transfers the blobs the target lacks with bounded concurrency, then pushes the
//! manifests children-first, byte for byte, so every digest is unchanged. Blobs stream from source to
//! target and are verified on the way; on the same registry a cross-repository mount is tried first.
//! The top manifest is pushed under the destination tag (or the source tag when the destination names
//! none), which also makes it addressable by digest; children are pushed by digest.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use sigil_oci::{Descriptor, Digest, Manifest, Platform};

use crate::blobs::{BlobBody, MountOutcome};
use crate::client::RegistryClient;
use crate::error::ClientError;
use crate::image::{MAX_DEPTH, Store};
use crate::image_ref::ImageRef;
use crate::manifests::{FetchedManifest, PutCondition};

/// Progress callback.
pub type ProgressFn = Arc<dyn Fn(&CopyEvent) + Send + Sync>;

/// Options of [`RegistryClient::copy`].
#[derive(Clone)]
pub struct CopyOptions {
    /// Copy only this platform's manifest out of an index (default: everything).
    pub platform: Option<Platform>,
    /// Blobs transferred at once (at least 1).
    pub jobs: usize,
    /// Called for every [`CopyEvent`].
    pub progress: Option<ProgressFn>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            platform: None,
            jobs: 4,
            progress: None,
        }
    }
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("platform", &self.platform)
            .field("jobs", &self.jobs)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Transferred.
    Copied,
    /// The target had it already.
    Skipped,
    /// Mounted from the source repository (same registry).
    Mounted,
}

/// Progress of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEvent {
    /// The source was walked: this many manifests and blobs, blobs totalling `bytes`.
    Planned {
        /// Manifests to push.
        manifests: usize,
        /// Distinct blobs.
        blobs: usize,
        /// Sum of the blob sizes.
        bytes: u64,
    },
    /// `bytes` more bytes of a blob were transferred.
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// Bytes since the last event.
        bytes: u64,
    },
    /// A blob is done.
    BlobDone {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// What happened.
        outcome: BlobOutcome,
    },
    /// A manifest was written to the target.
    ManifestPushed {
        /// Its digest.
        digest: Digest,
        /// The tag it was pushed under, if any.
        tag: Option<String>,
    },
}

/// The result of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Digest of the top manifest copied (the index, or the platform's manifest).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// The tag (or layout ref name) it was written under, if any.
    pub tag: Option<String>,
    /// Manifests written (index and children).
    pub manifests: usize,
    /// Blobs transferred.
    pub blobs_copied: usize,
    /// Blobs the target already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from the source repository.
    pub blobs_mounted: usize,
    /// Bytes of blobs transferred.
    pub bytes_copied: u64,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn walk<'a>(
    source: &'a Store,
    m: FetchedManifest,
    depth: usize,
    manifests: &'a mut Vec<FetchedManifest>,
    blobs: &'a mut Vec<Descriptor>,
    seen: &'a mut HashSet<Digest>,
) -> BoxFut<'a, Result<(), ClientError>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(
                sigil_oci::OciError::InvalidManifest("indexes nested too deeply".into()).into(),
            );
        }
        if !seen.insert(m.digest.clone()) {
            return Ok(());
        }
        match m.parse()? {
            Manifest::Index(idx) => {
                for child in &idx.manifests {
                    if seen.contains(&child.digest) {
                        continue;
                    }
                    let cm = source.manifest_by_descriptor(child).await?;
                    walk(source, cm, depth + 1, manifests, blobs, seen).await?;
                }
            }
            parsed @ Manifest::Image(_) => {
                for b in parsed.blob_references() {
                    if seen.insert(b.digest.clone()) {
                        blobs.push(b.clone());
                    }
                }
            }
            Manifest::Opaque => {}
        }
        manifests.push(m);
        Ok(())
    })
}

impl RegistryClient {
    /// Copies the image or index `src` names to `dst`. See the module docs.
    pub async fn copy(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        opts: &CopyOptions,
    ) -> Result<CopyReport, ClientError> {
        let emit = |e: CopyEvent| {
            if let Some(p) = &opts.progress {
                p(&e);
            }
        };
        let source = Store::open(self, src, false).await?;
        let (mut top, src_tag) = source.top_manifest(src).await?;
        if let Some(p) = &opts.platform {
            top = source.resolve_platform(top, p).await?;
        }
        if let Some(want) = dst.digest()
            && want != top.digest
        {
            return Err(ClientError::InvalidInput(format!(
                "destination names digest {want} but the source is {}",
                top.digest
            )));
        }
        // The destination tag, else the source's (a layout ref name that is no valid tag is dropped
        // for registries).
        let tag = if dst.digest().is_some() {
            None
        } else {
            dst.tag()
                .map(str::to_owned)
                .or(src_tag)
                .filter(|t| matches!(dst, ImageRef::Layout(_)) || sigil_oci::name::is_valid_tag(t))
        };
        let mut manifests = Vec::new();
        let mut blobs = Vec::new();
        let mut seen = HashSet::new();
        walk(
            &source,
            top.clone(),
            0,
            &mut manifests,
            &mut blobs,
            &mut seen,
        )
        .await?;
        emit(CopyEvent::Planned {
            manifests: manifests.len(),
            blobs: blobs.len(),
            bytes: blobs.iter().map(|b| b.size).sum(),
        });
        let target = Store::open(self, dst, true).await?;

        let mut report = CopyReport {
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
            size: top.bytes.len() as u64,
            tag: tag.clone(),
            manifests: 0,
            blobs_copied: 0,
            blobs_skipped: 0,
            blobs_mounted: 0,
            bytes_copied: 0,
        };
        let jobs = opts.jobs.max(1);
        let mut transfers = futures::stream::iter(blobs.iter().map(|b| {
            let (source, target, progress) = (&source, &target, opts.progress.clone());
            async move {
                let outcome = transfer_blob(source, target, b, progress).await?;
                Ok::<_, ClientError>((b, outcome))
            }
        }))
        .buffer_unordered(jobs);
        while let Some((b, outcome)) = transfers.try_next().await? {
            match outcome {
                BlobOutcome::Copied => {
                    report.blobs_copied += 1;
                    report.bytes_copied += b.size;
                }
                BlobOutcome::Skipped => report.blobs_skipped += 1,
                BlobOutcome::Mounted => report.blobs_mounted += 1,
            }
            emit(CopyEvent::BlobDone {
                digest: b.digest.clone(),
                size: b.size,
                outcome,
            });
        }
        drop(transfers);

        for m in &manifests {
            let is_top = m.digest == top.digest;
            let this_tag = if is_top { tag.clone() } else { None };
            match &target {
                Store::Registry { client, repo } => {
                    let r = match &this_tag {
                        Some(t) => repo.with_tag(t),
                        None => repo.with_digest(m.digest.clone()),
                    };
                    let resp = client
                        .put_manifest(&r, m.bytes.clone(), &m.media_type, PutCondition::None)
                        .await?;
                    if resp.digest != m.digest {
                        return Err(ClientError::DigestMismatch {
                            what: format!("manifest pushed to {r}"),
                            expected: m.digest.to_string(),
                            actual: resp.digest.to_string(),
                        });
                    }
                }
                Store::Layout(l) => {
                    if is_top {
                        l.put_manifest(m.bytes.clone(), &m.media_type, this_tag.as_deref())
                            .await?;
                    } else {
                        l.write_blob(
                            &m.digest,
                            Some(m.bytes.len() as u64),
                            futures::stream::iter([Ok(m.bytes.clone())]),
                        )
                        .await?;
                    }
                }
            }
            report.manifests += 1;
            emit(CopyEvent::ManifestPushed {
                digest: m.digest.clone(),
                tag: this_tag,
            });
        }
        Ok(report)
    }
}

async fn transfer_blob(
    source: &Store,
    target: &Store,
    desc: &Descriptor,
    progress: Option<ProgressFn>,
) -> Result<BlobOutcome, ClientError> {
    let mut session = None;
    match (source, target) {
        (Store::Registry { repo: s, .. }, Store::Registry { client, repo: t })
            if s.registry == t.registry && s.repository != t.repository =>
        {
            // A mount answers 201 for blobs the target already has too, so it replaces the HEAD.
            match client.mount_blob(t, &s.repository, &desc.digest).await {
                Ok(MountOutcome::Mounted) => return Ok(BlobOutcome::Mounted),
                Ok(MountOutcome::NotMounted(sess)) => session = sess,
                Err(e) => {
                    tracing::debug!(digest = %desc.digest, error = %e, "mount failed; uploading");
                    if target.has_blob(&desc.digest).await?.is_some() {
                        return Ok(BlobOutcome::Skipped);
                    }
                }
            }
        }
        _ => {
            if target.has_blob(&desc.digest).await?.is_some() {
                return Ok(BlobOutcome::Skipped);
            }
        }
    }
    let stream = source.blob(&desc.digest, Some(desc.size)).await?;
    let digest = desc.digest.clone();
    let counted = stream.inspect_ok(move |chunk| {
        if let Some(p) = &progress {
            p(&CopyEvent::BlobProgress {
                digest: digest.clone(),
                bytes: chunk.len() as u64,
            });
        }
    });
    match target {
        Store::Registry { client, repo } => {
            let session = match session {
                Some(s) => s,
                None => client.start_upload(repo).await?,
            };
            client
                .finish_upload(
                    session,
                    &desc.digest,
                    Some(desc.size),
                    BlobBody::stream(counted),
                )
                .await?;
        }
        Store::Layout(l) => {
            l.write_blob(&desc.digest, Some(desc.size), counted).await?;
        }
    }
    Ok(BlobOutcome::Copied)
}
