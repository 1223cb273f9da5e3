//! The tag-schema fallback: pure merge logic plus the conditional read-modify-write loop.
//!
//! The fallback tag `<alg>-<hex>` ([`Digest::fallback_tag`]) holds an OCI image index listing the
//! subject's referrers. Updating it is a GET-modify-PUT on a shared mutable tag, so every update is
//! conditional (`If-Match: <ETag>`, or `If-None-Match: *` when creating) and retried on 412 after a
//! random backoff. A registry that ignores the conditions cannot be told apart from one that honours
//! them before it answers 412 once (docker-registry 2.8.2 sends an `ETag` and ignores `If-Match`), so
//! until a registry has proven it honours them, every write is followed by a re-read after a short random
//! delay, and whatever a concurrent writer dropped is merged back in.

use std::time::Duration;

use bytes::Bytes;
use sigil_client::{ClientError, FetchedManifest, PutCondition};
use sigil_oci::{Descriptor, Digest, ImageIndex, Manifest, Reference, media_type};

use crate::error::ArtifactError;
use crate::referrers::Referrers;

/// Attempts at a fallback update before giving up.
const MAX_ATTEMPTS: usize = 60;

/// Adds `descs` to `idx` (skipping digests already listed). Returns whether anything changed.
pub fn merge_add(idx: &mut ImageIndex, descs: &[Descriptor]) -> bool {
    let mut changed = false;
    for d in descs {
        if !idx.manifests.iter().any(|m| m.digest == d.digest) {
            idx.manifests.push(d.clone());
            changed = true;
        }
    }
    changed
}

/// Removes every entry whose digest is in `digests`. Returns whether anything changed.
pub fn merge_remove(idx: &mut ImageIndex, digests: &[Digest]) -> bool {
    let before = idx.manifests.len();
    idx.manifests.retain(|m| !digests.contains(&m.digest));
    idx.manifests.len() != before
}

/// The fallback index as read: the manifest (for its digest and `ETag`) and the parsed index.
pub(crate) struct FallbackIndex {
    pub manifest: FetchedManifest,
    pub index: ImageIndex,
}

/// A small random number in `lo..=hi` (no RNG crate needed: std's randomly keyed hasher).
pub(crate) fn jitter(lo: u64, hi: u64) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    lo + h.finish() % (hi.saturating_sub(lo) + 1)
}

async fn backoff(attempt: usize) {
    let cap = 20 + 15 * (attempt.min(10) as u64);
    tokio::time::sleep(Duration::from_millis(jitter(5, cap))).await;
}

impl Referrers {
    /// Reads the fallback index of `subject` in `repo`: `None` if the tag does not exist; an error if
    /// it holds something other than an OCI image index.
    pub(crate) async fn read_fallback(
        &self,
        repo: &Reference,
        subject: &Digest,
    ) -> Result<Option<FallbackIndex>, ArtifactError> {
        let tag = subject.fallback_tag();
        let r = repo.with_tag(&tag);
        // A registry that writes tag links non-atomically (docker-registry 2.8.2) answers 500 to a
        // read racing a concurrent write: retry those a few times.
        let mut attempt = 0;
        let m = loop {
            match self.client().get_manifest(&r).await {
                Ok(m) => break m,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) if e.status().is_some_and(|s| s >= 500) && attempt < 5 => {
                    tracing::debug!(%tag, error = %e, "transient error reading the fallback tag");
                    attempt += 1;
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let not_index = |media_type: String| ArtifactError::FallbackNotIndex {
            repository: repo.repository_name(),
            tag: tag.clone(),
            media_type,
        };
        if m.media_type != media_type::OCI_INDEX {
            return Err(not_index(m.media_type));
        }
        let index = match Manifest::parse(&m.bytes, Some(&m.media_type)) {
            Ok((Manifest::Index(i), _)) => i,
            Ok(_) => return Err(not_index(m.media_type.clone())),
            Err(e) => {
                return Err(ArtifactError::FallbackInvalid {
                    repository: repo.repository_name(),
                    tag,
                    message: e.to_string(),
                });
            }
        };
        Ok(Some(FallbackIndex { manifest: m, index }))
    }

    /// Adds `descs` (referrers of `subject`) to the fallback index of `subject` in `repo`, creating it
    /// if needed. Conditional, retried on 412, verified on registries not known to honour conditions.
    /// A fallback tag that holds something other than an OCI index is left alone
    /// ([`ArtifactError::FallbackNotIndex`]).
    pub async fn add_to_fallback_index(
        &self,
        repo: &Reference,
        subject: &Digest,
        descs: &[Descriptor],
    ) -> Result<(), ArtifactError> {
        if descs.is_empty() {
            return Ok(());
        }
        let tag = subject.fallback_tag();
        let lock = self.tag_lock(repo, &tag);
        let _guard = lock.lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            let current = self.read_fallback(repo, subject).await?;
            let (mut index, condition) = match current {
                None => (ImageIndex::empty(), PutCondition::IfNoneMatch("*".into())),
                Some(f) => {
                    let cond = f
                        .manifest
                        .etag
                        .clone()
                        .map_or(PutCondition::None, PutCondition::IfMatch);
                    (f.index, cond)
                }
            };
            if index.subject.is_some() {
                return Err(ArtifactError::FallbackInvalid {
                    repository: repo.repository_name(),
                    tag,
                    message: "the index has a subject itself".into(),
                });
            }
            if !merge_add(&mut index, descs) {
                return Ok(());
            }
            match self.put_index(repo, &tag, &index, condition).await {
                Ok(()) => {
                    if self.is_conditional(&repo.registry) {
                        return Ok(());
                    }
                    // Re-read after a moment: a writer that ignored our update may have dropped it.
                    tokio::time::sleep(Duration::from_millis(jitter(20, 80))).await;
                }
                Err(ClientError::PreconditionFailed { .. }) => {
                    self.mark_conditional(&repo.registry);
                    tracing::debug!(%tag, attempt, "fallback index changed concurrently; retrying");
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ArtifactError::FallbackContention {
            repository: repo.repository_name(),
            tag,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Removes `digests` from the fallback index of `subject` in `repo`. When the index becomes empty
    /// the index manifest is deleted by digest, which removes the tag (also on registries that cannot
    /// delete tags). A missing tag is fine.
    pub async fn remove_from_fallback_index(
        &self,
        repo: &Reference,
        subject: &Digest,
        digests: &[Digest],
    ) -> Result<(), ArtifactError> {
        if digests.is_empty() {
            return Ok(());
        }
        let tag = subject.fallback_tag();
        let lock = self.tag_lock(repo, &tag);
        let _guard = lock.lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            let Some(f) = self.read_fallback(repo, subject).await? else {
                return Ok(());
            };
            let mut index = f.index;
            if !merge_remove(&mut index, digests) {
                return Ok(());
            }
            let result = if index.manifests.is_empty() {
                self.client()
                    .delete_manifest(&repo.with_digest(f.manifest.digest.clone()))
                    .await
                    .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })
            } else {
                let cond = f
                    .manifest
                    .etag
                    .clone()
                    .map_or(PutCondition::None, PutCondition::IfMatch);
                self.put_index(repo, &tag, &index, cond).await
            };
            match result {
                Ok(()) => {
                    if self.is_conditional(&repo.registry) {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(jitter(20, 80))).await;
                }
                Err(ClientError::PreconditionFailed { .. }) => {
                    self.mark_conditional(&repo.registry);
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ArtifactError::FallbackContention {
            repository: repo.repository_name(),
            tag,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Deletes the fallback tag of `subject` (by deleting its index manifest by digest). Missing: fine.
    pub(crate) async fn delete_fallback_index(
        &self,
        repo: &Reference,
        index_digest: &Digest,
    ) -> Result<(), ArtifactError> {
        match self
            .client()
            .delete_manifest(&repo.with_digest(index_digest.clone()))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_index(
        &self,
        repo: &Reference,
        tag: &str,
        index: &ImageIndex,
        condition: PutCondition,
    ) -> Result<(), ClientError> {
        self.client()
            .put_manifest(
                &repo.with_tag(tag),
                Bytes::from(index.to_bytes()),
                media_type::OCI_INDEX,
                condition,
            )
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn desc(n: u8) -> Descriptor {
        let mut d = Descriptor::for_bytes(media_type::OCI_MANIFEST, &[n]);
        d.artifact_type = Some(format!("application/x-{n}"));
        d
    }

    #[test]
    fn add_is_idempotent_and_keeps_order() {
        let mut idx = ImageIndex::empty();
        assert!(merge_add(&mut idx, &[desc(1), desc(2)]));
        assert!(!merge_add(&mut idx, &[desc(2), desc(1)]));
        assert!(merge_add(&mut idx, &[desc(3), desc(1)]));
        let got: Vec<_> = idx.manifests.iter().map(|d| d.digest.clone()).collect();
        assert_eq!(got, vec![desc(1).digest, desc(2).digest, desc(3).digest]);
        // The serialised index is an OCI index with the entries (and nothing else).
        let v: serde_json::Value = serde_json::from_slice(&idx.to_bytes()).unwrap();
        assert_eq!(v["mediaType"], media_type::OCI_INDEX);
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["manifests"][2]["artifactType"], "application/x-3");
        assert!(v.get("subject").is_none());
    }

    #[test]
    fn remove_only_named_digests() {
        let mut idx = ImageIndex::empty();
        merge_add(&mut idx, &[desc(1), desc(2), desc(3)]);
        assert!(!merge_remove(&mut idx, &[desc(9).digest]));
        assert!(merge_remove(&mut idx, &[desc(2).digest, desc(9).digest]));
        assert_eq!(idx.manifests.len(), 2);
        assert!(merge_remove(&mut idx, &[desc(1).digest, desc(3).digest]));
        assert!(idx.manifests.is_empty());
    }

    #[test]
    fn lost_update_is_re_merged() {
        // Writer A's entry was dropped by writer B (who read before A wrote): A's re-merge restores it
        // without losing B's.
        let mut after_b = ImageIndex::empty();
        merge_add(&mut after_b, &[desc(2)]);
        assert!(merge_add(&mut after_b, &[desc(1)]));
        assert_eq!(after_b.manifests.len(), 2);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let j = jitter(5, 9);
            assert!((5..=9).contains(&j));
        }
        assert_eq!(jitter(3, 3), 3);
    }
}
