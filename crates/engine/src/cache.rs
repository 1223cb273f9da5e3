//! The decision cache and the tag → digest cache.
//!
//! Decisions are keyed by (policy content hash, rule name, `verifyImages` index, image **digest**
//! reference) — never by a tag, so a moved tag always leads to a fresh verification of the new digest.
//! A cached decision is the whole outcome of that rule entry for that digest: signatures, attestation
//! conditions and `validate.deny` (a hit never skips a check the decision did not cover). Passes live for
//! [`CacheConfig::ttl`], failures only for [`CacheConfig::failure_ttl`]; registry and deadline errors are
//! never cached. Concurrent identical verifications are coalesced: moka's `try_get_with` runs one
//! computation and hands its result to every waiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use sigil_oci::Digest;

use crate::CacheConfig;
use crate::review::{RuleStatus, TraceStep};

/// What a decision is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DecisionKey {
    /// SHA-256 of the policy document.
    pub policy_hash: String,
    /// Rule name (as reported: autogen names included).
    pub rule: String,
    /// Index of the `verifyImages` entry.
    pub verify_index: usize,
    /// `registry/repository@digest`.
    pub image: String,
}

/// Why an outcome could not be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Registry unreachable, 429/5xx after retries, or the deadline passed.
    Registry,
    /// Anything else (unsupported feature, invalid input): the policy's failurePolicy decides.
    Other,
}

/// The outcome of one `verifyImages` entry for one image digest.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    /// Pass, Fail or Error.
    pub status: RuleStatus,
    /// Why (the exact check that failed), or what verified.
    pub message: String,
    /// Per attestor entry.
    pub trace: Vec<TraceStep>,
    /// For errors: what kind.
    pub error: Option<ErrorKind>,
}

impl Decision {
    pub(crate) fn pass(message: impl Into<String>, trace: Vec<TraceStep>) -> Self {
        Self {
            status: RuleStatus::Pass,
            message: message.into(),
            trace,
            error: None,
        }
    }

    pub(crate) fn fail(message: impl Into<String>, trace: Vec<TraceStep>) -> Self {
        Self {
            status: RuleStatus::Fail,
            message: message.into(),
            trace,
            error: None,
        }
    }

    pub(crate) fn error(
        kind: ErrorKind,
        message: impl Into<String>,
        trace: Vec<TraceStep>,
    ) -> Self {
        Self {
            status: RuleStatus::Error,
            message: message.into(),
            trace,
            error: Some(kind),
        }
    }

    /// Errors are never cached; passes and failures are.
    fn cacheable(&self) -> bool {
        matches!(self.status, RuleStatus::Pass | RuleStatus::Fail)
    }
}

struct DecisionExpiry {
    ttl: Duration,
    failure_ttl: Duration,
}

impl Expiry<DecisionKey, Arc<Decision>> for DecisionExpiry {
    fn expire_after_create(
        &self,
        _key: &DecisionKey,
        value: &Arc<Decision>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.status == RuleStatus::Pass {
            self.ttl
        } else {
            self.failure_ttl
        })
    }
}

/// Decision and tag caches with hit/miss counters.
pub(crate) struct Caches {
    decisions: Option<Cache<DecisionKey, Arc<Decision>>>,
    tags: Option<Cache<String, Digest>>,
    hits: AtomicU64,
    misses: AtomicU64,
    tag_hits: AtomicU64,
    tag_misses: AtomicU64,
}

/// Whether a decision came from the cache.
pub(crate) struct Lookup {
    pub decision: Arc<Decision>,
    pub cached: bool,
}

impl Caches {
    pub(crate) fn new(cfg: &CacheConfig) -> Self {
        let enabled = cfg.enabled && cfg.max_entries > 0;
        let decisions = enabled.then(|| {
            Cache::builder()
                .max_capacity(cfg.max_entries)
                .expire_after(DecisionExpiry {
                    ttl: cfg.ttl,
                    failure_ttl: cfg.failure_ttl,
                })
                .build()
        });
        let tags = (enabled && !cfg.tag_ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(cfg.max_entries.max(1))
                .time_to_live(cfg.tag_ttl)
                .build()
        });
        Self {
            decisions,
            tags,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            tag_hits: AtomicU64::new(0),
            tag_misses: AtomicU64::new(0),
        }
    }

    /// The decision for `key`: cached, or computed by `compute` (coalesced with identical concurrent
    /// computations). `use_cache: false` bypasses the cache.
    pub(crate) async fn decide<F>(&self, key: DecisionKey, use_cache: bool, compute: F) -> Lookup
    where
        F: Future<Output = Decision>,
    {
        let Some(cache) = self.decisions.as_ref().filter(|_| use_cache) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup {
                decision: Arc::new(compute.await),
                cached: false,
            };
        };
        let ran = AtomicBool::new(false);
        let init = async {
            ran.store(true, Ordering::Relaxed);
            let d = Arc::new(compute.await);
            if d.cacheable() { Ok(d) } else { Err(d) }
        };
        let (decision, computed) = match cache.try_get_with(key, init).await {
            Ok(d) => (d, ran.load(Ordering::Relaxed)),
            // A coalesced waiter receives the error of the computation it waited for.
            Err(e) => ((*e).clone(), ran.load(Ordering::Relaxed)),
        };
        if computed {
            self.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        Lookup {
            decision,
            cached: !computed,
        }
    }

    /// The digest of a tag reference (`registry/repo:tag`): cached for the tag TTL, else resolved by
    /// `resolve` (coalesced). Errors are not cached.
    pub(crate) async fn tag<F, E>(&self, key: String, resolve: F) -> Result<Digest, Arc<E>>
    where
        F: Future<Output = Result<Digest, E>>,
        E: Send + Sync + 'static,
    {
        let Some(cache) = &self.tags else {
            self.tag_misses.fetch_add(1, Ordering::Relaxed);
            return resolve.await.map_err(Arc::new);
        };
        let ran = AtomicBool::new(false);
        let init = async {
            ran.store(true, Ordering::Relaxed);
            resolve.await
        };
        let r = cache.try_get_with(key, init).await;
        if ran.load(Ordering::Relaxed) {
            self.tag_misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.tag_hits.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// (decision hits, decision misses, tag hits, tag misses).
    pub(crate) fn counters(&self) -> (u64, u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.tag_hits.load(Ordering::Relaxed),
            self.tag_misses.load(Ordering::Relaxed),
        )
    }

    /// Cached decisions right now (approximate, as moka counts).
    pub(crate) fn entries(&self) -> u64 {
        self.decisions.as_ref().map_or(0, Cache::entry_count)
    }

    /// Drops every cached decision and tag resolution.
    pub(crate) fn clear(&self) {
        if let Some(c) = &self.decisions {
            c.invalidate_all();
        }
        if let Some(c) = &self.tags {
            c.invalidate_all();
        }
    }
}
