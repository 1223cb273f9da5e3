//! [`Referrers::delete`]: delete a manifest, optionally with everything that refers to it.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sigil_oci::{Digest, Manifest, Reference};

use crate::error::ArtifactError;
use crate::referrers::{Mechanism, Referrers};

/// Deepest referrers chain followed when deleting recursively.
const MAX_DEPTH: usize = 64;

/// What [`Referrers::delete`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReport {
    /// Manifests deleted, in order (referrers before their subjects, the target last).
    pub deleted: Vec<Digest>,
    /// Fallback indexes updated (an entry removed).
    pub fallback_updated: usize,
    /// Fallback tags removed (their index manifests deleted).
    pub fallback_deleted: usize,
    /// Referrers left behind (without `recursive`).
    pub remaining_referrers: usize,
}

struct Item {
    digest: Digest,
    subject: Option<Digest>,
}

impl Referrers {
    /// Deletes the manifest `target` names (a tag is resolved to its digest; deleting by digest also
    /// removes its tags, which is the only way on registries that cannot delete tags). With
    /// `recursive`, every referrer (recursively) is deleted first, children before subjects. On
    /// repositories without the referrers API the fallback indexes are kept correct: a deleted
    /// referrer is removed from its surviving subject's index (conditional update), and the fallback
    /// tag of every deleted subject is removed.
    pub async fn delete(
        &self,
        target: &Reference,
        recursive: bool,
    ) -> Result<DeleteReport, ArtifactError> {
        let m = match self.client().get_manifest(target).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => {
                return Err(ArtifactError::NotFound {
                    reference: target.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let root_subject = Manifest::parse(&m.bytes, Some(&m.media_type))
            .ok()
            .and_then(|(p, _)| p.subject().map(|s| s.digest.clone()));
        let mut items = Vec::new();
        let mut fallback_indexes = HashMap::new();
        let mut report = DeleteReport::default();
        if recursive {
            let mut seen = HashSet::from([m.digest.clone()]);
            self.collect(
                target,
                &m.digest,
                0,
                &mut seen,
                &mut items,
                &mut fallback_indexes,
            )
            .await?;
        } else {
            let (refs, fidx) = self.list_detailed(target, &m.digest, &[]).await?;
            report.remaining_referrers = refs.len();
            if let Some(f) = fidx {
                fallback_indexes.insert(m.digest.clone(), f);
            }
        }
        items.push(Item {
            digest: m.digest.clone(),
            subject: root_subject,
        });
        let doomed: HashSet<Digest> = items.iter().map(|i| i.digest.clone()).collect();
        let fallback = self.mechanism(target) == Some(Mechanism::Fallback);
        for item in &items {
            match self
                .client()
                .delete_manifest(&target.with_digest(item.digest.clone()))
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {
                    tracing::debug!(digest = %item.digest, "already gone");
                }
                Err(e) => return Err(e.into()),
            }
            report.deleted.push(item.digest.clone());
            if !fallback {
                continue;
            }
            if let Some(idx) = fallback_indexes.get(&item.digest) {
                self.delete_fallback_index(target, idx).await?;
                report.fallback_deleted += 1;
            }
            if let Some(s) = &item.subject
                && !doomed.contains(s)
            {
                self.remove_from_fallback_index(target, s, std::slice::from_ref(&item.digest))
                    .await?;
                report.fallback_updated += 1;
            }
        }
        Ok(report)
    }

    /// Post-order list of the referrers of `subject` (recursively).
    fn collect<'a>(
        &'a self,
        repo: &'a Reference,
        subject: &'a Digest,
        depth: usize,
        seen: &'a mut HashSet<Digest>,
        items: &'a mut Vec<Item>,
        fallback_indexes: &'a mut HashMap<Digest, Digest>,
    ) -> futures::future::BoxFuture<'a, Result<(), ArtifactError>> {
        Box::pin(async move {
            if depth >= MAX_DEPTH {
                return Err(ArtifactError::InvalidReferrers {
                    repository: repo.repository_name(),
                    subject: subject.to_string(),
                    message: format!("referrers nested deeper than {MAX_DEPTH} levels"),
                });
            }
            let (refs, fidx) = self.list_detailed(repo, subject, &[]).await?;
            if let Some(f) = fidx {
                fallback_indexes.insert(subject.clone(), f);
            }
            for r in refs {
                if !seen.insert(r.digest.clone()) {
                    continue;
                }
                self.collect(repo, &r.digest, depth + 1, seen, items, fallback_indexes)
                    .await?;
                items.push(Item {
                    digest: r.digest,
                    subject: Some(subject.clone()),
                });
            }
            Ok(())
        })
    }
}
