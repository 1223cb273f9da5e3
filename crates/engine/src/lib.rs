//! The image-verification engine: runs compiled Kyverno `verifyImages` policies ([`sigil_policy`])
//! against Kubernetes resources, doing the registry I/O and cryptographic verification through
//! [`sigil_cosign`] / [`sigil_sigstore`], with a decision cache bound to image **digests**.
//!
//! Callers (the `policy apply` CLI and the admission webhook) build one [`Engine`], give it policies
//! ([`Engine::replace_policies`] also serves reloads), and call [`Engine::mutate`] (verification and
//! patches: the mutating webhook and `policy apply`) or [`Engine::validate`] (`verifyDigest` /
//! `required` checks of the validating webhook).

pub mod error;
pub mod review;

pub use error::EngineError;
pub use review::{
    ImageResult, LoadedPolicy, Review, ReviewRequest, RuleResult, RuleStatus, TraceStep,
    VERIFY_IMAGES_ANNOTATION,
};

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sigil_client::RegistryClient;
use sigil_sigstore::TrustedRoot;

/// Decision cache settings (defaults as Kyverno: 60 min, 1000 entries).
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Whether decisions are cached at all (rules also need `useCache: true`, the default).
    pub enabled: bool,
    /// Most cached decisions.
    pub max_entries: u64,
    /// How long a pass is kept.
    pub ttl: Duration,
    /// How long a failure is kept (short, so a fixed signature is picked up quickly).
    pub failure_ttl: Duration,
    /// How long a tag → digest resolution is kept.
    pub tag_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 1000,
            ttl: Duration::from_secs(60 * 60),
            failure_ttl: Duration::from_secs(10),
            tag_ttl: Duration::from_secs(30),
        }
    }
}

/// What an unreachable registry (network error, 5xx or 429 after retries, deadline) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistryFailure {
    /// As the policy's `failurePolicy` says (Kyverno: a rule *error*, blocking when `Fail`).
    #[default]
    PolicyDecides,
    /// Always deny.
    Deny,
    /// Always admit (with a warning).
    Allow,
}

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Registry client (credentials, CA certificates, insecure registries).
    pub client: RegistryClient,
    /// Trusted roots for keyless attestors that give no `roots` of their own (offline; no TUF).
    pub trusted_roots: Vec<TrustedRoot>,
    /// Decision cache.
    pub cache: CacheConfig,
    /// Deadline for one review when the caller gives none.
    pub default_timeout: Duration,
    /// Most image verifications running at once per review.
    pub max_parallel_images: usize,
    /// Registry failures.
    pub registry_failure: RegistryFailure,
}

impl EngineConfig {
    /// Defaults around a client: 10 s deadline, 16 images in parallel, Kyverno's cache defaults.
    pub fn new(client: RegistryClient) -> Self {
        Self {
            client,
            trusted_roots: Vec::new(),
            cache: CacheConfig::default(),
            default_timeout: Duration::from_secs(10),
            max_parallel_images: 16,
            registry_failure: RegistryFailure::default(),
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Decisions answered from the cache.
    pub cache_hits: u64,
    /// Decisions computed.
    pub cache_misses: u64,
    /// Registry requests made.
    pub registry_requests: u64,
}

/// The engine. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Engine {
    config: EngineConfig,
    policies: RwLock<Arc<Vec<LoadedPolicy>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds an engine with these policies.
    pub fn new(config: EngineConfig, policies: Vec<LoadedPolicy>) -> Self {
        Self {
            config,
            policies: RwLock::new(Arc::new(policies)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The current policies.
    pub fn policies(&self) -> Arc<Vec<LoadedPolicy>> {
        match self.policies.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the policies (reload). Cached decisions of changed policies stop matching because
    /// cache keys include each policy's content hash.
    pub fn replace_policies(&self, policies: Vec<LoadedPolicy>) {
        let new = Arc::new(policies);
        match self.policies.write() {
            Ok(mut p) => *p = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            registry_requests: self.config.client.request_count(),
            ..EngineStats::default()
        }
    }

    /// The mutating path: verifies every image matched by a `verifyImages` rule (all images of the
    /// resource in parallel, by digest, under the request deadline) and returns the per-rule results,
    /// whether the request is blocked, and the JSON patch (annotation first, then digest pins).
    pub async fn mutate(&self, request: &ReviewRequest) -> Review {
        let _ = request;
        Review::not_implemented("mutate")
    }

    /// The validating path: `verifyDigest` (image must carry a digest) and `required` (the sigil
    /// annotation must record `pass`/`skip` for the image). The annotation never lets an image skip
    /// verification in [`Engine::mutate`].
    pub async fn validate(&self, request: &ReviewRequest) -> Review {
        let _ = request;
        Review::not_implemented("validate")
    }
}

/// Reads and compiles every policy in `paths` (files, or directories of `*.yaml`/`*.yml`/`*.json`,
/// not recursive, sorted by name). Errors name the file and the field path.
pub fn load_policy_files(paths: &[PathBuf]) -> Result<Vec<LoadedPolicy>, EngineError> {
    review::load_policy_files(paths)
}
