//! The [`Referrers`] service: listing referrers through the API or the fallback tag, with a per
//! registry+repository memory of which one works.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use sigil_client::{ClientError, RegistryClient};
use sigil_oci::{Descriptor, Digest, Reference};

use crate::error::ArtifactError;

/// Most referrers pages followed.
const MAX_PAGES: usize = 10_000;

/// How referrers are found in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// `GET /v2/<name>/referrers/<digest>` (and `OCI-Subject` on push).
    Api,
    /// The `<alg>-<hex>` fallback tag.
    Fallback,
}

type RepoKey = (String, String);
/// Registry, repository, tag.
type TagKey = (String, String, String);
type TagLocks = HashMap<TagKey, Arc<tokio::sync::Mutex<()>>>;

/// Artifact and referrers operations over a [`RegistryClient`]. Remembers per registry and repository
/// whether the referrers API works, the tag lists it read (for digest tags), and which registries
/// honour conditional PUTs, so one run never probes or lists twice. Cheap to share by reference;
/// concurrent use is fine.
#[derive(Debug)]
pub struct Referrers {
    client: RegistryClient,
    modes: Mutex<HashMap<RepoKey, Mechanism>>,
    tags: Mutex<HashMap<RepoKey, Arc<Vec<String>>>>,
    conditional: Mutex<HashSet<String>>,
    locks: Mutex<TagLocks>,
}

fn key(repo: &Reference) -> RepoKey {
    (repo.registry.clone(), repo.repository.clone())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps descriptors whose `artifactType` is one of `types` (all when `types` is empty).
pub(crate) fn filter_types(descs: Vec<Descriptor>, types: &[String]) -> Vec<Descriptor> {
    if types.is_empty() {
        return descs;
    }
    descs
        .into_iter()
        .filter(|d| {
            d.artifact_type
                .as_ref()
                .is_some_and(|t| types.iter().any(|w| w == t))
        })
        .collect()
}

impl Referrers {
    /// A service over `client` (clones share the client's connections and request counter).
    pub fn new(client: RegistryClient) -> Self {
        Self {
            client,
            modes: Mutex::new(HashMap::new()),
            tags: Mutex::new(HashMap::new()),
            conditional: Mutex::new(HashSet::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// What is known about `repo`: `None` until a listing or push told.
    pub fn mechanism(&self, repo: &Reference) -> Option<Mechanism> {
        lock(&self.modes).get(&key(repo)).copied()
    }

    /// Records how referrers work in `repo`.
    pub fn set_mechanism(&self, repo: &Reference, m: Mechanism) {
        lock(&self.modes).insert(key(repo), m);
    }

    pub(crate) fn is_conditional(&self, registry: &str) -> bool {
        lock(&self.conditional).contains(registry)
    }

    pub(crate) fn mark_conditional(&self, registry: &str) {
        lock(&self.conditional).insert(registry.to_owned());
    }

    /// In-process lock per repository and fallback tag (writers in one process queue up instead of
    /// provoking 412s).
    pub(crate) fn tag_lock(&self, repo: &Reference, tag: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.locks)
            .entry((
                repo.registry.clone(),
                repo.repository.clone(),
                tag.to_owned(),
            ))
            .or_default()
            .clone()
    }

    /// The repository's tags, listed once per run.
    pub(crate) async fn tags(&self, repo: &Reference) -> Result<Arc<Vec<String>>, ArtifactError> {
        if let Some(t) = lock(&self.tags).get(&key(repo)) {
            return Ok(t.clone());
        }
        let tags = match self.client.list_tags(repo, None).await {
            Ok(t) => t,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let tags = Arc::new(tags);
        lock(&self.tags).insert(key(repo), tags.clone());
        Ok(tags)
    }

    /// Referrers of `subject` in `repo` (whose tag/digest is ignored), of the given artifact types (all
    /// when empty). Uses the referrers API, or the fallback tag when the API answers 404; the choice is
    /// remembered for the repository. Filters client-side when the registry did not.
    pub async fn list(
        &self,
        repo: &Reference,
        subject: &Digest,
        artifact_types: &[String],
    ) -> Result<Vec<Descriptor>, ArtifactError> {
        Ok(self.list_detailed(repo, subject, artifact_types).await?.0)
    }

    /// Like [`Self::list`], also returning the digest of the fallback index when one was read.
    pub(crate) async fn list_detailed(
        &self,
        repo: &Reference,
        subject: &Digest,
        artifact_types: &[String],
    ) -> Result<(Vec<Descriptor>, Option<Digest>), ArtifactError> {
        if self.mechanism(repo) != Some(Mechanism::Fallback) {
            match self.list_api(repo, subject, artifact_types).await {
                Ok(v) => {
                    self.set_mechanism(repo, Mechanism::Api);
                    return Ok((v, None));
                }
                Err(ArtifactError::Client(ClientError::ReferrersUnsupported { code, .. })) => {
                    // A NAME_UNKNOWN 404 may only mean that the repository does not exist (yet):
                    // do not remember that.
                    if code.as_deref() != Some("NAME_UNKNOWN") {
                        self.set_mechanism(repo, Mechanism::Fallback);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        match self.read_fallback(repo, subject).await? {
            None => Ok((Vec::new(), None)),
            Some(f) => Ok((
                filter_types(f.index.manifests, artifact_types),
                Some(f.manifest.digest),
            )),
        }
    }

    /// Whether `repo` has the referrers API: the remembered answer, else one probe.
    pub async fn probe(
        &self,
        repo: &Reference,
        subject: &Digest,
    ) -> Result<Mechanism, ArtifactError> {
        if let Some(m) = self.mechanism(repo) {
            return Ok(m);
        }
        match self
            .client
            .get_referrers_page(repo, subject, None, None)
            .await
        {
            Ok(_) => {
                self.set_mechanism(repo, Mechanism::Api);
                Ok(Mechanism::Api)
            }
            Err(ClientError::ReferrersUnsupported { .. }) => {
                self.set_mechanism(repo, Mechanism::Fallback);
                Ok(Mechanism::Fallback)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn list_api(
        &self,
        repo: &Reference,
        subject: &Digest,
        artifact_types: &[String],
    ) -> Result<Vec<Descriptor>, ArtifactError> {
        // One type can be filtered by the registry; several are filtered here from one listing.
        let server_filter = match artifact_types {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let invalid = |message: String| ArtifactError::InvalidReferrers {
            repository: repo.repository_name(),
            subject: subject.to_string(),
            message,
        };
        let mut page = self
            .client
            .get_referrers_page(repo, subject, server_filter, None)
            .await?;
        let mut all = Vec::new();
        let mut applied = true;
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            if let Some(mt) = &page.index.media_type
                && mt != sigil_oci::media_type::OCI_INDEX
            {
                return Err(invalid(format!(
                    "the response is a {mt}, not an OCI image index"
                )));
            }
            applied &= page.filters_applied;
            all.append(&mut page.index.manifests);
            let Some(next) = page.next.take() else {
                let all = if server_filter.is_some() && applied {
                    all
                } else {
                    filter_types(all, artifact_types)
                };
                return Ok(all);
            };
            if !seen.insert(next.to_string()) {
                return Err(invalid(format!(
                    "pagination loops (Link rel=\"next\" repeats {next})"
                )));
            }
            page = self
                .client
                .get_referrers_page(repo, subject, server_filter, Some(&next))
                .await?;
        }
        Err(invalid(format!("more than {MAX_PAGES} pages")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn client_side_filter() {
        let mut a = Descriptor::for_bytes(sigil_oci::media_type::OCI_MANIFEST, b"a");
        a.artifact_type = Some("application/a".into());
        let mut b = Descriptor::for_bytes(sigil_oci::media_type::OCI_MANIFEST, b"b");
        b.artifact_type = Some("application/b".into());
        let c = Descriptor::for_bytes(sigil_oci::media_type::OCI_INDEX, b"c");
        let all = vec![a.clone(), b.clone(), c];
        assert_eq!(filter_types(all.clone(), &[]).len(), 3);
        assert_eq!(
            filter_types(all.clone(), &["application/b".into()]),
            vec![b.clone()]
        );
        assert_eq!(
            filter_types(all, &["application/a".into(), "application/b".into()]),
            vec![a, b]
        );
    }
}
