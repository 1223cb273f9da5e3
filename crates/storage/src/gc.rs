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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use sigil_oci::Descriptor;
    use sigil_oci::media_type as mt;

    use super::*;
    use crate::fs::FsStorage;
    use crate::{ByteStream, NewManifest, TagCondition};

    const REPO: &str = "app";

    async fn blob(s: &FsStorage, repo: &str, bytes: &[u8]) -> Descriptor {
        let id = s.upload_start(repo).await.unwrap();
        let body: ByteStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::copy_from_slice(
            bytes,
        ))]));
        s.upload_append(repo, &id, None, body).await.unwrap();
        let d = Digest::sha256(bytes);
        s.upload_commit(repo, &id, &d).await.unwrap();
        Descriptor::for_bytes(mt::OCI_LAYER_GZIP, bytes)
    }

    fn json_desc(d: &Descriptor) -> String {
        serde_json::to_string(d).unwrap()
    }

    /// Pushes an image manifest (config + layers, optional subject); returns its descriptor.
    async fn image(
        s: &FsStorage,
        repo: &str,
        name: &str,
        subject: Option<&Descriptor>,
        tag: Option<&str>,
    ) -> (Descriptor, Vec<Descriptor>) {
        let config = blob(s, repo, format!("config of {name}").as_bytes()).await;
        let layer = blob(s, repo, format!("layer of {name}").as_bytes()).await;
        let subject_json = subject
            .map(|d| format!(r#","subject":{}"#, json_desc(d)))
            .unwrap_or_default();
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]{subject_json}}}"#,
            mt::OCI_MANIFEST,
            json_desc(&config),
            json_desc(&layer)
        );
        let desc = Descriptor::for_bytes(mt::OCI_MANIFEST, json.as_bytes());
        let m = NewManifest {
            digest: desc.digest.clone(),
            media_type: mt::OCI_MANIFEST.to_owned(),
            bytes: Bytes::from(json),
            referrer: subject.map(|sub| (sub.digest.clone(), desc.clone())),
        };
        s.manifest_put(repo, m, tag.map(|t| (t, TagCondition::Any)))
            .await
            .unwrap();
        (desc, vec![config, layer])
    }

    async fn index(s: &FsStorage, repo: &str, children: &[&Descriptor], tag: &str) -> Descriptor {
        let list: Vec<String> = children.iter().map(|d| json_desc(d)).collect();
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            mt::OCI_INDEX,
            list.join(",")
        );
        let desc = Descriptor::for_bytes(mt::OCI_INDEX, json.as_bytes());
        let m = NewManifest {
            digest: desc.digest.clone(),
            media_type: mt::OCI_INDEX.to_owned(),
            bytes: Bytes::from(json),
            referrer: None,
        };
        s.manifest_put(repo, m, Some((tag, TagCondition::Any)))
            .await
            .unwrap();
        desc
    }

    fn now() -> GcOptions {
        GcOptions::default()
    }

    async fn present(s: &FsStorage, repo: &str, d: &Descriptor) -> bool {
        s.blob_size(&d.digest).await.unwrap().is_some()
            && (s.manifest_get(repo, &d.digest).await.unwrap().is_some()
                || s.blob_linked(repo, &d.digest).await.unwrap())
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        s: FsStorage,
        tagged: (Descriptor, Vec<Descriptor>),
        sig: (Descriptor, Vec<Descriptor>),
        sig_of_sig: (Descriptor, Vec<Descriptor>),
        untagged: (Descriptor, Vec<Descriptor>),
        stray: Descriptor,
        orphan: (Descriptor, Vec<Descriptor>),
        orphan_sig: (Descriptor, Vec<Descriptor>),
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let tagged = image(&s, REPO, "tagged", None, Some("latest")).await;
        let sig = image(&s, REPO, "sig", Some(&tagged.0), None).await;
        let sig_of_sig = image(&s, REPO, "sig2", Some(&sig.0), None).await;
        let untagged = image(&s, REPO, "untagged", None, None).await;
        let stray = blob(&s, REPO, b"stray blob").await;
        let missing = Descriptor::for_bytes(mt::OCI_MANIFEST, b"never pushed");
        let orphan = image(&s, REPO, "orphan", Some(&missing), None).await;
        let orphan_sig = image(&s, REPO, "orphan-sig", Some(&orphan.0), None).await;
        // A stale upload.
        s.upload_start(REPO).await.unwrap();
        Fixture {
            _dir: dir,
            s,
            tagged,
            sig,
            sig_of_sig,
            untagged,
            stray,
            orphan,
            orphan_sig,
        }
    }

    fn all_of(x: &(Descriptor, Vec<Descriptor>)) -> Vec<&Descriptor> {
        std::iter::once(&x.0).chain(&x.1).collect()
    }

    #[tokio::test]
    async fn keeps_tagged_images_and_referrer_chains_and_removes_garbage() {
        let f = fixture().await;
        let s = &f.s;
        let report = collect_garbage(s, &now()).await.unwrap();

        for kept in [&f.tagged, &f.sig, &f.sig_of_sig, &f.orphan, &f.orphan_sig] {
            for d in all_of(kept) {
                assert!(present(s, REPO, d).await, "{} was removed", d.digest);
            }
        }
        assert_eq!(
            s.tag_get(REPO, "latest").await.unwrap(),
            Some(f.tagged.0.digest.clone())
        );
        assert_eq!(
            s.referrers(REPO, &f.tagged.0.digest).await.unwrap(),
            vec![f.sig.0.clone()]
        );
        assert_eq!(
            s.referrers(REPO, &f.sig.0.digest).await.unwrap(),
            vec![f.sig_of_sig.0.clone()]
        );

        assert_eq!(
            report.manifests_removed,
            vec![(REPO.to_owned(), f.untagged.0.digest.clone())]
        );
        let mut gone: Vec<Digest> = all_of(&f.untagged)
            .into_iter()
            .chain([&f.stray])
            .map(|d| d.digest.clone())
            .collect();
        gone.sort();
        assert_eq!(report.blobs_removed, gone);
        let freed: u64 = all_of(&f.untagged).iter().map(|d| d.size).sum::<u64>() + f.stray.size;
        assert_eq!(report.bytes_freed, freed);
        assert_eq!(report.uploads_removed, 1);
        for d in &gone {
            assert_eq!(s.blob_size(d).await.unwrap(), None);
            assert!(!s.blob_linked(REPO, d).await.unwrap());
        }
        assert!(
            s.manifest_get(REPO, &f.untagged.0.digest)
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.upload_list().await.unwrap().is_empty());

        // A second run finds nothing more.
        let again = collect_garbage(s, &now()).await.unwrap();
        assert_eq!(again, GcReport::default());
    }

    #[tokio::test]
    async fn deletes_orphan_referrers_when_asked() {
        let f = fixture().await;
        let s = &f.s;
        let opts = GcOptions {
            delete_orphan_referrers: true,
            ..now()
        };
        let report = collect_garbage(s, &opts).await.unwrap();
        let mut removed: Vec<Digest> = report
            .manifests_removed
            .iter()
            .map(|(r, d)| {
                assert_eq!(r, REPO);
                d.clone()
            })
            .collect();
        removed.sort();
        let mut want = vec![
            f.untagged.0.digest.clone(),
            f.orphan.0.digest.clone(),
            f.orphan_sig.0.digest.clone(),
        ];
        want.sort();
        assert_eq!(removed, want);
        for d in all_of(&f.orphan).into_iter().chain(all_of(&f.orphan_sig)) {
            assert_eq!(s.blob_size(&d.digest).await.unwrap(), None, "{}", d.digest);
        }
        // Referrers whose subject exists survive.
        for d in all_of(&f.sig).into_iter().chain(all_of(&f.sig_of_sig)) {
            assert!(present(s, REPO, d).await);
        }
    }

    #[tokio::test]
    async fn dry_run_changes_nothing_and_predicts_the_real_run() {
        let f = fixture().await;
        let s = &f.s;
        let snapshot = |s: &FsStorage| {
            let s = s.clone();
            async move {
                (
                    s.manifest_list(REPO).await.unwrap(),
                    s.blob_list().await.unwrap(),
                    s.blob_links(REPO).await.unwrap(),
                    s.tag_list(REPO).await.unwrap(),
                    s.upload_list().await.unwrap().len(),
                )
            }
        };
        let before = snapshot(s).await;
        let dry = collect_garbage(
            s,
            &GcOptions {
                dry_run: true,
                ..now()
            },
        )
        .await
        .unwrap();
        assert_eq!(snapshot(s).await, before);
        assert!(!dry.blobs_removed.is_empty());
        assert_eq!(dry.manifests_removed.len(), 1);
        let real = collect_garbage(s, &now()).await.unwrap();
        assert_eq!(real, dry);
        assert_ne!(snapshot(s).await, before);
    }

    #[tokio::test]
    async fn grace_period_protects_recent_content() {
        let f = fixture().await;
        let s = &f.s;
        let report = collect_garbage(
            s,
            &GcOptions {
                grace_secs: 3600,
                ..now()
            },
        )
        .await
        .unwrap();
        assert_eq!(report, GcReport::default());
        assert!(present(s, REPO, &f.untagged.0).await);
        assert!(present(s, REPO, &f.stray).await);
        assert_eq!(s.upload_list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn index_children_and_shared_blobs_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let amd = image(&s, REPO, "amd64", None, None).await;
        let arm = image(&s, REPO, "arm64", None, None).await;
        index(&s, REPO, &[&amd.0, &arm.0], "multi").await;
        // The same content in another repository, untagged there: removed there, kept globally.
        let other = image(&s, "other", "amd64", None, None).await;
        assert_eq!(other.0.digest, amd.0.digest);

        let report = collect_garbage(&s, &now()).await.unwrap();
        assert_eq!(
            report.manifests_removed,
            vec![("other".to_owned(), amd.0.digest.clone())]
        );
        assert!(report.blobs_removed.is_empty(), "{report:?}");
        for d in all_of(&amd).into_iter().chain(all_of(&arm)) {
            assert!(present(&s, REPO, d).await, "{}", d.digest);
        }
        assert!(s.blob_links("other").await.unwrap().is_empty());
        assert!(s.manifest_list("other").await.unwrap().is_empty());

        // Untag the index: everything goes.
        s.tag_delete(REPO, "multi").await.unwrap();
        let report = collect_garbage(&s, &now()).await.unwrap();
        assert_eq!(report.manifests_removed.len(), 3);
        assert_eq!(report.blobs_removed.len(), 7, "{report:?}");
        assert!(s.blob_list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unparseable_manifest_keeps_repository_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let layer = blob(&s, REPO, b"mystery layer").await;
        let bytes = Bytes::from_static(b"not json at all");
        let m = NewManifest {
            digest: Digest::sha256(&bytes),
            media_type: "application/x-custom".to_owned(),
            bytes,
            referrer: None,
        };
        s.manifest_put(REPO, m.clone(), Some(("t", TagCondition::Any)))
            .await
            .unwrap();
        let report = collect_garbage(&s, &now()).await.unwrap();
        assert_eq!(report, GcReport::default());
        assert!(s.blob_linked(REPO, &layer.digest).await.unwrap());
        assert!(s.manifest_get(REPO, &m.digest).await.unwrap().is_some());
    }

    #[test]
    fn report_serialises_to_json() {
        let r = GcReport {
            manifests_removed: vec![("a".to_owned(), Digest::sha256(b"x"))],
            blobs_removed: vec![Digest::sha256(b"y")],
            bytes_freed: 5,
            uploads_removed: 2,
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["manifests_removed"][0][0], "a");
        assert_eq!(
            v["manifests_removed"][0][1],
            Digest::sha256(b"x").to_string()
        );
        assert_eq!(v["bytes_freed"], 5);
        assert_eq!(v["uploads_removed"], 2);
    }

    #[test]
    fn parses_references_of_all_manifest_kinds() {
        let d = Digest::sha256(b"x");
        let desc = format!(r#"{{"mediaType":"m","digest":"{d}","size":1}}"#);
        let artifact = format!(r#"{{"blobs":[{desc}],"subject":{desc}}}"#);
        let r = parse_refs(artifact.as_bytes()).unwrap();
        assert_eq!(r.blobs, vec![d.clone()]);
        assert_eq!(r.subject, Some(d));
        let idx = format!(r#"{{"manifests":[{desc},{desc}]}}"#);
        assert_eq!(parse_refs(idx.as_bytes()).unwrap().children.len(), 2);
        assert!(parse_refs(br#"{"layers":[{"digest":"bogus"}]}"#).is_none());
        assert!(parse_refs(b"[]").is_none());
    }
}
