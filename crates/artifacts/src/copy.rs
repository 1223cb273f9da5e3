//! [`Referrers::copy_with_referrers`]: copy an image with its referrers (recursively, every platform)
//! and, optionally, its cosign-style digest tags.

use std::collections::{HashSet, VecDeque};

use serde::Serialize;
use sigil_client::{CopyOptions, CopyReport, ImageRef};
use sigil_oci::{Digest, Manifest, Reference};

use crate::DIGEST_TAG_SUFFIXES;
use crate::error::ArtifactError;
use crate::referrers::{Mechanism, Referrers};

/// Options of [`Referrers::copy_with_referrers`].
#[derive(Debug, Clone, Default)]
pub struct CopyReferrersOptions {
    /// Options of the image copy (platform, jobs, progress). Referrers are copied whole.
    pub copy: CopyOptions,
    /// Also copy `sha256-<hex>.sig/.att/.sbom` tags of every copied subject.
    pub digest_tags: bool,
}

/// What [`Referrers::copy_with_referrers`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReferrersReport {
    /// The image copy.
    #[serde(skip)]
    pub image: CopyReport,
    /// Digest of the copied image.
    pub digest: Digest,
    /// Referrers copied (recursively).
    pub referrers: Vec<Digest>,
    /// Digest tags copied.
    pub digest_tags: Vec<String>,
    /// Fallback indexes written on the target.
    pub fallback_indexes: usize,
}

fn registry_ref<'a>(r: &'a ImageRef, what: &str) -> Result<&'a Reference, ArtifactError> {
    match r {
        ImageRef::Registry(r) => Ok(r),
        ImageRef::Layout(_) => Err(ArtifactError::Unsupported(format!(
            "copying referrers from or to an OCI layout ({what} {r})"
        ))),
    }
}

impl Referrers {
    /// Copies `src` to `dst` with [`sigil_client::RegistryClient::copy`], then every referrer of the
    /// image (and of each of its children for an index; of the chosen platform's manifest with a
    /// platform filter), recursively, each by digest. When the target repository has no referrers API
    /// the referrers are added to its fallback indexes (one conditional update per subject). With
    /// `digest_tags`, cosign-style tags of every copied manifest are copied too (the source's tags
    /// are listed once). Referrers already on the target are not copied again. Registry to registry
    /// only.
    pub async fn copy_with_referrers(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        opts: &CopyReferrersOptions,
    ) -> Result<CopyReferrersReport, ArtifactError> {
        let src_repo = registry_ref(src, "source")?;
        let dst_repo = registry_ref(dst, "destination")?;
        let client = self.client();
        let image = client.copy(src, dst, &opts.copy).await?;
        let mut report = CopyReferrersReport {
            digest: image.digest.clone(),
            image,
            referrers: Vec::new(),
            digest_tags: Vec::new(),
            fallback_indexes: 0,
        };
        // Subjects: the copied manifest and, for an index, its children.
        let mut queue: VecDeque<Digest> = VecDeque::from([report.digest.clone()]);
        if sigil_oci::media_type::is_index(&report.image.media_type) {
            let m = client
                .get_manifest(&dst_repo.with_digest(report.digest.clone()))
                .await?;
            if let Manifest::Index(i) = m.parse()? {
                queue.extend(i.manifests.into_iter().map(|d| d.digest));
            }
        }
        let mut seen: HashSet<Digest> = queue.iter().cloned().collect();
        let child_opts = CopyOptions {
            platform: None,
            jobs: opts.copy.jobs,
            progress: None,
        };
        while let Some(subject) = queue.pop_front() {
            let refs = self.list(src_repo, &subject, &[]).await?;
            let mut copied = Vec::new();
            for r in refs {
                let from = ImageRef::Registry(src_repo.with_digest(r.digest.clone()));
                let target = dst_repo.with_digest(r.digest.clone());
                // Manifests are immutable by digest: one already on the target (with everything it
                // needs, which the registry checked when it was pushed) costs one HEAD, not a copy.
                if client.head_manifest(&target).await?.is_none() {
                    client
                        .copy(&from, &ImageRef::Registry(target), &child_opts)
                        .await?;
                }
                if seen.insert(r.digest.clone()) {
                    report.referrers.push(r.digest.clone());
                    queue.push_back(r.digest.clone());
                }
                copied.push(r);
            }
            if !copied.is_empty() && self.probe(dst_repo, &subject).await? == Mechanism::Fallback {
                self.add_to_fallback_index(dst_repo, &subject, &copied)
                    .await?;
                report.fallback_indexes += 1;
            }
            if opts.digest_tags {
                for t in self.digest_tags_of(src_repo, &subject).await? {
                    let from = ImageRef::Registry(src_repo.with_tag(&t.tag));
                    let to = ImageRef::Registry(dst_repo.with_tag(&t.tag));
                    client.copy(&from, &to, &child_opts).await?;
                    report.digest_tags.push(t.tag);
                }
            }
        }
        Ok(report)
    }
}

/// Cosign-style digest tags of `subject` among `tags`.
pub(crate) fn matching_digest_tags<'a>(tags: &'a [String], subject: &Digest) -> Vec<&'a str> {
    let prefix = subject.fallback_tag();
    tags.iter()
        .filter(|t| {
            t.strip_prefix(&prefix)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|s| DIGEST_TAG_SUFFIXES.contains(&s))
        })
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_tag_matching() {
        let d = Digest::sha256(b"x");
        let p = d.fallback_tag();
        let tags = vec![
            format!("{p}.sig"),
            format!("{p}.att"),
            format!("{p}.sbom"),
            format!("{p}.other"),
            p.clone(),
            format!("{p}sig"),
            "latest".to_owned(),
        ];
        assert_eq!(
            matching_digest_tags(&tags, &d),
            vec![
                format!("{p}.sig").as_str(),
                format!("{p}.att").as_str(),
                format!("{p}.sbom").as_str()
            ]
        );
    }
}
