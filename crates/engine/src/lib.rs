//! The image-verification engine: runs compiled Kyverno `verifyImages` policies ([`sigil_policy`])
//! against Kubernetes resources, doing the registry I/O and cryptographic verification through
//! [`sigil_cosign`] / [`sigil_sigstore`], with a decision cache bound to image **digests**.
//!
//! Callers (the `policy apply` CLI and the admission webhook) build one [`Engine`], give it policies
//! ([`Engine::replace_policies`] also serves reloads), and call [`Engine::mutate`] (verification and
//! patches: the mutating webhook and `policy apply`) or [`Engine::validate`] (`verifyDigest` /
//! `required` checks of the validating webhook).
//!
//! How a review runs (Kyverno 1.13 semantics, without its known problems):
//! - every `ClusterPolicy` (and `Policy` of the request's namespace) rule that applies (match/exclude,
//!   autogen `autogen-<rule>` / `autogen-cronjob-<rule>`, preconditions) contributes its images
//!   matched by `imageReferences` (`skipImageReferences` → `skip`); unsupported key sources are
//!   **errors**, never passes;
//! - rule `context` entries are evaluated in order before preconditions: `variable` offline,
//!   `imageRegistry` through the engine's client (counted in [`EngineStats::registry_requests`],
//!   inside the deadline); `configMap`/`apiCall`/`globalReference` are rule errors naming their path.
//!   `verifyImages` entries with `{{ }}` variables are substituted and compiled again per request
//!   (attestation conditions and `validate.deny` see the context entries); an unresolved variable is
//!   an error, and decisions of substituted entries are cached under a fingerprint of the context;
//! - the failure action of an entry is its own `failureAction`, else the first
//!   `validationFailureActionOverrides` entry naming the request's namespace, else
//!   `validationFailureAction`; with `applyRules: One` a policy's rules after the first one that
//!   applied (a pass or a fail) are dropped from the review (they are verified, not reported);
//! - `type: Cosign` and `SigstoreBundle` verify through [`sigil_cosign`]; `type: Notary` through
//!   [`sigil_notary`] (Kyverno's mapping: `certificates` entries as `ca` trust anchors; attestations
//!   are Notary-signed referrers whose layer JSON `conditions` evaluate);
//! - each distinct image is resolved tag → digest **once** (cached for [`CacheConfig::tag_ttl`]) and
//!   verified **by digest**; all images run in parallel, each in its own tokio task (at most
//!   [`EngineConfig::max_parallel_images`] at once, spread over the runtime's worker threads) under
//!   one deadline; an unfinished image is an error (its task is aborted);
//! - registry 429/5xx/connection errors are retried with backoff ([`EngineConfig::retry`]) within the
//!   deadline; what a registry failure means is [`RegistryFailure`];
//! - decisions (signatures, attestation conditions and `validate.deny` together) are cached per
//!   (policy content hash, rule, `verifyImages` index, digest); concurrent identical ones coalesce;
//! - the patch pins `image` to `<image as written>@<verified digest>` (`mutateDigest`) after the
//!   [`VERIFY_IMAGES_ANNOTATION`] ops; the annotation of an incoming object is replaced, never trusted.
//!
//! Failures under `Audit` are reported as [`RuleStatus::Fail`] with [`RuleResult::enforce`] false and
//! listed in [`Review::warnings`]; they never block. Registry requests per uncached key-signed image:
//! 3 for a tag (HEAD, `.sig` manifest, payload blob), 2 for a digest reference; per uncached
//! Notary-signed image: 5 for a tag (HEAD, sigil-notary's own HEAD of the digest, referrers list,
//! signature manifest, envelope blob).

mod cache;
pub mod error;
mod extensions;
mod fetch;
mod notary;
pub mod review;
mod run;
mod verify;

pub use error::EngineError;
pub use review::{
    ImageResult, LoadedPolicy, Review, ReviewRequest, RuleResult, RuleStatus, TraceStep,
    VERIFY_IMAGES_ANNOTATION,
};

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sigil_artifacts::Referrers;
use sigil_client::{RegistryClient, RetryPolicy};
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
    /// Retries of registry 429/5xx/connection errors (exponential backoff, within the deadline).
    pub retry: RetryPolicy,
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
            retry: RetryPolicy::default(),
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
    /// Tag → digest resolutions answered from the tag cache.
    pub tag_cache_hits: u64,
    /// Tag → digest resolutions made against the registry.
    pub tag_cache_misses: u64,
    /// Decisions currently cached (approximate).
    pub cache_entries: u64,
    /// `mutate` reviews run.
    pub reviews: u64,
    /// Sum of `mutate` review durations, in microseconds.
    pub review_micros: u64,
}

/// The engine. Cheap to share behind an `Arc`; all methods take `&self`.
///
/// The state lives in an [`Arc`]'d inner value so that the per-image verification jobs of a review
/// run as separate tokio tasks (spread over the runtime's worker threads) that own what they use.
pub struct Engine {
    inner: Arc<EngineInner>,
}

/// What [`Engine`] shares with the tasks of its reviews.
pub(crate) struct EngineInner {
    pub(crate) config: EngineConfig,
    policies: RwLock<Arc<Vec<LoadedPolicy>>>,
    pub(crate) caches: cache::Caches,
    pub(crate) referrers: Arc<Referrers>,
    reviews: AtomicU64,
    review_micros: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl EngineInner {
    /// The current policy snapshot.
    pub(crate) fn policies(&self) -> Arc<Vec<LoadedPolicy>> {
        match self.policies.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn record_review(&self, took: Duration) {
        self.reviews.fetch_add(1, Ordering::Relaxed);
        self.review_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl Engine {
    /// Builds an engine with these policies.
    pub fn new(config: EngineConfig, policies: Vec<LoadedPolicy>) -> Self {
        Self {
            inner: Arc::new(EngineInner {
                caches: cache::Caches::new(&config.cache),
                referrers: Arc::new(Referrers::new(config.client.clone())),
                config,
                policies: RwLock::new(Arc::new(policies)),
                reviews: AtomicU64::new(0),
                review_micros: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The current policies.
    pub fn policies(&self) -> Arc<Vec<LoadedPolicy>> {
        self.inner.policies()
    }

    /// Replaces the policies (reload). Cached decisions of changed policies stop matching because
    /// cache keys include each policy's content hash. Reviews already running keep the snapshot they
    /// started with.
    pub fn replace_policies(&self, policies: Vec<LoadedPolicy>) {
        let new = Arc::new(policies);
        match self.inner.policies.write() {
            Ok(mut p) => *p = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Drops every cached decision and tag resolution.
    pub fn clear_cache(&self) {
        self.inner.caches.clear();
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        let inner = &self.inner;
        let (hits, misses, tag_hits, tag_misses) = inner.caches.counters();
        EngineStats {
            cache_hits: hits,
            cache_misses: misses,
            registry_requests: inner.config.client.request_count(),
            tag_cache_hits: tag_hits,
            tag_cache_misses: tag_misses,
            cache_entries: inner.caches.entries(),
            reviews: inner.reviews.load(Ordering::Relaxed),
            review_micros: inner.review_micros.load(Ordering::Relaxed),
        }
    }

    /// The mutating path: verifies every image matched by a `verifyImages` rule (all images of the
    /// resource in parallel, by digest, under the request deadline) and returns the per-rule results,
    /// whether the request is blocked, and the JSON patch (annotation first, then digest pins).
    ///
    /// Each image is verified in its own tokio task, so the CPU work of the images (JSON, base64,
    /// signature and certificate checks) spreads over the runtime's worker threads; this must be
    /// called inside a tokio runtime. Dropping the returned future aborts those tasks.
    pub async fn mutate(&self, request: &ReviewRequest) -> Review {
        run::run_mutate(&self.inner, request).await
    }

    /// The validating path: `verifyDigest` (image must carry a digest) and `required` (the sigil
    /// annotation must record `pass`/`skip` for the image). The annotation never lets an image skip
    /// verification in [`Engine::mutate`].
    pub async fn validate(&self, request: &ReviewRequest) -> Review {
        self.inner.run_validate(request).await
    }
}

/// Reads and compiles every policy in `paths` (files, or directories of `*.yaml`/`*.yml`/`*.json`,
/// not recursive, sorted by name). Errors name the file and the field path.
pub fn load_policy_files(paths: &[PathBuf]) -> Result<Vec<LoadedPolicy>, EngineError> {
    review::load_policy_files(paths)
}
