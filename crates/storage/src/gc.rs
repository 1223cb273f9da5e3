//! Garbage collection over any [`Storage`].
//!
//! [`collect_garbage`] runs in two phases.
//!
//! **Per repository** (mark and sweep):
//! - *Roots* are every tagged manifest, every manifest younger than the grace period (it may be
//!   part of a push in progress), and — unless [`GcOptions::delete_orphan_referrers`] is set — every
//!   manifest that has a `subject`.
//! - *Marking* a manifest marks the digests it references: an index marks its child manifests (which
//!   are marked in turn when they are manifests of the same repository); an image manifest marks its
//!   config and layers (artifact manifests: their `blobs`). Every manifest whose `subject` is a
//!   marked manifest is itself marked, transitively, so referrers of referrers are kept too.
//!   A referrer does not keep its subject alive.
//! - *Orphan referrers* — manifests whose subject is not a marked manifest of the repository
//!   (missing, or itself being removed) — are therefore kept by default (registries must accept a
//!   referrer before its subject) and removed only with `delete_orphan_referrers`, which cascades to
//!   referrers of referrers.
//! - Every manifest left unmarked is removed with [`Storage::manifest_delete`] (its link, referrer
//!   entry and tags). Such a manifest is untagged and older than the grace period (its age is that of
//!   its blob).
//! - Every blob linked into the repository that no kept manifest references and that is older than
//!   the grace period is unlinked. If a kept manifest cannot be parsed, its references are unknown
//!   and no blob of the repository is unlinked.
//!
//! **Globally**: every blob of [`Storage::blob_list`] that no repository still links or uses as a
//! kept manifest (or references from a kept manifest), and that is older than the grace period, is
//! removed; then every upload session idle for at least the grace period is cancelled.
//!
//! With [`GcOptions::dry_run`] the same decisions are computed and reported (the global phase
//! assumes the repository phase happened) but nothing is changed.
//!
//! Ages are blob modification times: the filesystem backend refreshes them whenever a blob is
//! uploaded again, linked (mount) or re-pushed as a manifest, so content a client is pushing right
//! now stays safe as long as the grace period is longer than a push.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sigil_oci::Digest;

use crate::{Result, Storage, StorageError};

/// What [`collect_garbage`] may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcOptions {
    /// Compute and report, change nothing.
    pub dry_run: bool,
    /// Remove referrers whose subject no longer exists (default: keep them).
    pub delete_orphan_referrers: bool,
    /// Content (blobs, manifests, upload sessions) younger than this many seconds is never removed.
    pub grace_secs: u64,
}

/// What [`collect_garbage`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Manifests removed, as (repository, digest).
    pub manifests_removed: Vec<(String, Digest)>,
    /// Blobs removed from the global store.
    pub blobs_removed: Vec<Digest>,
    /// Total size of `blobs_removed`.
    pub bytes_freed: u64,
    /// Upload sessions cancelled.
    pub uploads_removed: usize,
}

/// The digests a manifest refers to.
#[derive(Debug, Default)]
struct Refs {
    /// Child manifests (index `manifests`).
    children: Vec<Digest>,
    /// Blobs (`config`, `layers`, `blobs`).
    blobs: Vec<Digest>,
    /// `subject`.
    subject: Option<Digest>,
}

/// Extracts references from a manifest's JSON: any of `config`, `layers`, `blobs`, `manifests` and
/// `subject`, so OCI and Docker images and indexes and OCI artifact manifests are all covered.
/// `None` when the bytes are not a JSON object or a descriptor is malformed.
fn parse_refs(bytes: &[u8]) -> Option<Refs> {
    fn digest_of(v: &serde_json::Value) -> Option<Digest> {
        Digest::parse(v.get("digest")?.as_str()?).ok()
    }
    fn list(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<Vec<Digest>> {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) => Some(Vec::new()),
            Some(v) => v.as_array()?.iter().map(digest_of).collect(),
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let obj = value.as_object()?;
    let mut refs = Refs::default();
    if let Some(c) = obj.get("config") {
        refs.blobs.push(digest_of(c)?);
    }
    refs.blobs.extend(list(obj, "layers")?);
    refs.blobs.extend(list(obj, "blobs")?);
    refs.children = list(obj, "manifests")?;
    if let Some(s) = obj.get("subject").filter(|s| !s.is_null()) {
        refs.subject = Some(digest_of(s)?);
    }
    Some(refs)
}

fn old_enough(age: Option<u64>, grace: u64) -> bool {
    age.is_some_and(|a| a >= grace)
}

/// Collects garbage; see the module documentation for the exact semantics.
pub async fn collect_garbage(storage: &dyn Storage, opts: &GcOptions) -> Result<GcReport> {
    let mut report = GcReport::default();
    // Digests that must survive the global phase.
    let mut referenced: HashSet<Digest> = HashSet::new();
    for repo in storage.repositories().await? {
        collect_repository(storage, opts, &repo, &mut report, &mut referenced).await?;
    }

    for digest in storage.blob_list().await? {
        if referenced.contains(&digest)
            || !old_enough(storage.blob_age_secs(&digest).await?, opts.grace_secs)
        {
            continue;
        }
        let Some(size) = storage.blob_size(&digest).await? else {
            continue;
        };
        if !opts.dry_run && !storage.blob_remove(&digest).await? {
            continue;
        }
        tracing::debug!(%digest, size, dry_run = opts.dry_run, "gc: blob removed");
        report.bytes_freed += size;
        report.blobs_removed.push(digest);
    }

    for (repo, id, age) in storage.upload_list().await? {
        if age < opts.grace_secs {
            continue;
        }
        if !opts.dry_run {
            match storage.upload_cancel(&repo, &id).await {
                Ok(()) => {}
                Err(StorageError::UploadUnknown) => continue,
                Err(e) => return Err(e),
            }
        }
        report.uploads_removed += 1;
    }
    Ok(report)
}

async fn collect_repository(
    storage: &dyn Storage,
    opts: &GcOptions,
    repo: &str,
    report: &mut GcReport,
    referenced: &mut HashSet<Digest>,
) -> Result<()> {
    // Every manifest of the repository with its references (None: unparseable).
    let mut manifests: HashMap<Digest, Option<Refs>> = HashMap::new();
    for digest in storage.manifest_list(repo).await? {
        if let Some(m) = storage.manifest_get(repo, &digest).await? {
            let refs = parse_refs(&m.bytes);
            if refs.is_none() {
                tracing::warn!(%repo, %digest, "gc: cannot parse manifest");
            }
            manifests.insert(digest, refs);
        }
    }
    let mut by_subject: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
    for (digest, refs) in &manifests {
        if let Some(subject) = refs.as_ref().and_then(|r| r.subject.as_ref()) {
            by_subject.entry(subject).or_default().push(digest);
        }
    }

    // Roots.
    let mut work: Vec<Digest> = Vec::new();
    for tag in storage.tag_list(repo).await? {
        if let Some(d) = storage.tag_get(repo, &tag).await?
            && manifests.contains_key(&d)
        {
            work.push(d);
        }
    }
    for (digest, refs) in &manifests {
        let young = !old_enough(storage.blob_age_secs(digest).await?, opts.grace_secs);
        let referrer = refs.as_ref().is_some_and(|r| r.subject.is_some());
        if young || (referrer && !opts.delete_orphan_referrers) {
            work.push(digest.clone());
        }
    }

    // Mark.
    let mut kept: HashSet<Digest> = HashSet::new();
    let mut reachable: HashSet<Digest> = HashSet::new();
    let mut unknown_refs = false;
    while let Some(digest) = work.pop() {
        if !kept.insert(digest.clone()) {
            continue;
        }
        match manifests.get(&digest) {
            Some(Some(refs)) => {
                for d in refs.children.iter().chain(&refs.blobs) {
                    reachable.insert(d.clone());
                    if manifests.contains_key(d) && !kept.contains(d) {
                        work.push(d.clone());
                    }
                }
            }
            Some(None) => unknown_refs = true,
            None => {}
        }
        if let Some(referrers) = by_subject.get(&digest) {
            work.extend(
                referrers
                    .iter()
                    .filter(|r| !kept.contains(**r))
                    .map(|r| (*r).clone()),
            );
        }
    }

    // Sweep manifests.
    let doomed: BTreeSet<&Digest> = manifests.keys().filter(|d| !kept.contains(*d)).collect();
    for digest in doomed {
        if !opts.dry_run && !storage.manifest_delete(repo, digest).await? {
            continue;
        }
        tracing::debug!(%repo, %digest, dry_run = opts.dry_run, "gc: manifest removed");
        report
            .manifests_removed
            .push((repo.to_owned(), digest.clone()));
    }

    // Sweep blob links.
    for digest in storage.blob_links(repo).await? {
        let keep = unknown_refs
            || reachable.contains(&digest)
            || !old_enough(storage.blob_age_secs(&digest).await?, opts.grace_secs);
        if keep {
            referenced.insert(digest);
        } else if !opts.dry_run {
            storage.blob_unlink(repo, &digest).await?;
        }
    }
    referenced.extend(kept);
    referenced.extend(reachable);
    Ok(())
}
