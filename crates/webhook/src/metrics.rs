//! Prometheus counters of the webhook, rendered in the text exposition format (version 0.0.4) on
//! `/metrics`: reviews by path and result, a review latency histogram, per-image decisions by status,
//! policy reloads, and the engine's cache and registry counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sigil_engine::{EngineStats, RuleStatus};

/// Which endpoint a review came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewPath {
    /// `/mutate`.
    Mutate,
    /// `/validate`.
    Validate,
}

impl ReviewPath {
    const ALL: [Self; 2] = [Self::Mutate, Self::Validate];

    /// The label value (`mutate` / `validate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mutate => "mutate",
            Self::Validate => "validate",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a review ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewResult {
    /// Verified and admitted (possibly with warnings).
    Allowed,
    /// Denied.
    Denied,
    /// Admitted without verification: DELETE, a subresource, a kind no policy matches.
    Skipped,
    /// Not a usable AdmissionReview (HTTP 400).
    BadRequest,
}

impl ReviewResult {
    const ALL: [Self; 4] = [Self::Allowed, Self::Denied, Self::Skipped, Self::BadRequest];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Skipped => "skipped",
            Self::BadRequest => "bad_request",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const STATUSES: [RuleStatus; 5] = [
    RuleStatus::Pass,
    RuleStatus::Fail,
    RuleStatus::Skip,
    RuleStatus::Error,
    RuleStatus::Warn,
];

fn status_str(s: RuleStatus) -> &'static str {
    match s {
        RuleStatus::Pass => "pass",
        RuleStatus::Fail => "fail",
        RuleStatus::Skip => "skip",
        RuleStatus::Error => "error",
        RuleStatus::Warn => "warn",
    }
}

fn status_index(s: RuleStatus) -> usize {
    STATUSES.iter().position(|x| *x == s).unwrap_or(0)
}

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, le) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The webhook's counters (all lock-free).
#[derive(Debug, Default)]
pub struct Metrics {
    reviews: [[AtomicU64; 4]; 2],
    latency: [Histogram; 2],
    decisions: [AtomicU64; 5],
    deadline_exceeded: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

/// Policy state shown next to the counters.
#[derive(Debug, Clone, Default)]
pub struct PolicyGauges {
    /// Policies loaded now.
    pub policies: usize,
    /// Whether the last reload attempt failed (the previous policies stay in force).
    pub reload_failing: bool,
    /// Unix time of the last successful load.
    pub last_success_unix: u64,
}

impl Metrics {
    /// Counts one finished review and its latency (bad requests are counted, not timed).
    pub fn review(&self, path: ReviewPath, result: ReviewResult, elapsed: Duration) {
        self.reviews[path.index()][result.index()].fetch_add(1, Ordering::Relaxed);
        if result != ReviewResult::BadRequest {
            self.latency[path.index()].observe(elapsed);
        }
    }

    /// Counts one per-image (or per-rule) decision.
    pub fn decision(&self, status: RuleStatus) {
        self.decisions[status_index(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a review that did not finish within its deadline.
    pub fn deadline_exceeded(&self) {
        self.deadline_exceeded.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a policy (re)load.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reviews counted so far for a path and result.
    pub fn reviews(&self, path: ReviewPath, result: ReviewResult) -> u64 {
        self.reviews[path.index()][result.index()].load(Ordering::Relaxed)
    }

    /// The text exposition.
    pub fn render(&self, engine: EngineStats, policies: &PolicyGauges) -> String {
        let mut o = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        o.push_str(
            "# HELP sigil_webhook_reviews_total AdmissionReviews answered, by path and result.\n",
        );
        o.push_str("# TYPE sigil_webhook_reviews_total counter\n");
        for p in ReviewPath::ALL {
            for r in ReviewResult::ALL {
                let _ = writeln!(
                    o,
                    "sigil_webhook_reviews_total{{path=\"{}\",result=\"{}\"}} {}",
                    p.as_str(),
                    r.as_str(),
                    load(&self.reviews[p.index()][r.index()])
                );
            }
        }
        o.push_str("# HELP sigil_webhook_review_duration_seconds Time from request to response.\n");
        o.push_str("# TYPE sigil_webhook_review_duration_seconds histogram\n");
        for p in ReviewPath::ALL {
            let h = &self.latency[p.index()];
            for (b, le) in h.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(
                    o,
                    "sigil_webhook_review_duration_seconds_bucket{{path=\"{}\",le=\"{le}\"}} {}",
                    p.as_str(),
                    load(b)
                );
            }
            let count = load(&h.count);
            let _ = writeln!(
                o,
                "sigil_webhook_review_duration_seconds_bucket{{path=\"{}\",le=\"+Inf\"}} {count}",
                p.as_str()
            );
            let _ = writeln!(
                o,
                "sigil_webhook_review_duration_seconds_sum{{path=\"{}\"}} {}",
                p.as_str(),
                load(&h.sum_micros) as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "sigil_webhook_review_duration_seconds_count{{path=\"{}\"}} {count}",
                p.as_str()
            );
        }
        o.push_str("# HELP sigil_webhook_decisions_total Per-image rule decisions, by status.\n");
        o.push_str("# TYPE sigil_webhook_decisions_total counter\n");
        for s in STATUSES {
            let _ = writeln!(
                o,
                "sigil_webhook_decisions_total{{status=\"{}\"}} {}",
                status_str(s),
                load(&self.decisions[status_index(s)])
            );
        }
        let simple: [(&str, &str, &str, u64); 10] = [
            (
                "sigil_webhook_deadline_exceeded_total",
                "counter",
                "Reviews that did not finish within their deadline.",
                load(&self.deadline_exceeded),
            ),
            (
                "sigil_engine_cache_hits_total",
                "counter",
                "Image decisions answered from the decision cache.",
                engine.cache_hits,
            ),
            (
                "sigil_engine_cache_misses_total",
                "counter",
                "Image decisions computed (cache misses).",
                engine.cache_misses,
            ),
            (
                "sigil_engine_tag_cache_hits_total",
                "counter",
                "Tag to digest resolutions answered from the tag cache.",
                engine.tag_cache_hits,
            ),
            (
                "sigil_engine_tag_cache_misses_total",
                "counter",
                "Tag to digest resolutions made against a registry.",
                engine.tag_cache_misses,
            ),
            (
                "sigil_engine_cache_entries",
                "gauge",
                "Decisions currently cached (approximate).",
                engine.cache_entries,
            ),
            (
                "sigil_engine_registry_requests_total",
                "counter",
                "HTTP requests made to registries.",
                engine.registry_requests,
            ),
            (
                "sigil_webhook_policies",
                "gauge",
                "Policies in force.",
                policies.policies as u64,
            ),
            (
                "sigil_webhook_policy_reload_failing",
                "gauge",
                "1 when the last policy reload failed (the previous policies stay in force).",
                u64::from(policies.reload_failing),
            ),
            (
                "sigil_webhook_policy_last_load_timestamp_seconds",
                "gauge",
                "Unix time of the last successful policy load.",
                policies.last_success_unix,
            ),
        ];
        for (name, kind, help, v) in simple {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        o.push_str("# HELP sigil_webhook_policy_reloads_total Policy loads, by result.\n");
        o.push_str("# TYPE sigil_webhook_policy_reloads_total counter\n");
        let _ = writeln!(
            o,
            "sigil_webhook_policy_reloads_total{{result=\"success\"}} {}",
            load(&self.reloads_ok)
        );
        let _ = writeln!(
            o,
            "sigil_webhook_policy_reloads_total{{result=\"failure\"}} {}",
            load(&self.reloads_failed)
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.review(
            ReviewPath::Mutate,
            ReviewResult::Allowed,
            Duration::from_micros(700),
        );
        m.review(
            ReviewPath::Mutate,
            ReviewResult::Denied,
            Duration::from_millis(30),
        );
        m.review(
            ReviewPath::Validate,
            ReviewResult::BadRequest,
            Duration::ZERO,
        );
        m.decision(RuleStatus::Pass);
        m.decision(RuleStatus::Fail);
        m.decision(RuleStatus::Fail);
        m.reload(true);
        let text = m.render(
            EngineStats {
                cache_hits: 3,
                cache_misses: 4,
                registry_requests: 5,
                tag_cache_hits: 6,
                ..EngineStats::default()
            },
            &PolicyGauges {
                policies: 2,
                reload_failing: true,
                last_success_unix: 9,
            },
        );
        for line in [
            "sigil_webhook_reviews_total{path=\"mutate\",result=\"allowed\"} 1",
            "sigil_webhook_reviews_total{path=\"mutate\",result=\"denied\"} 1",
            "sigil_webhook_reviews_total{path=\"validate\",result=\"bad_request\"} 1",
            "sigil_webhook_review_duration_seconds_bucket{path=\"mutate\",le=\"0.0005\"} 0",
            "sigil_webhook_review_duration_seconds_bucket{path=\"mutate\",le=\"0.001\"} 1",
            "sigil_webhook_review_duration_seconds_bucket{path=\"mutate\",le=\"0.05\"} 2",
            "sigil_webhook_review_duration_seconds_bucket{path=\"mutate\",le=\"+Inf\"} 2",
            "sigil_webhook_review_duration_seconds_count{path=\"validate\"} 0",
            "sigil_webhook_decisions_total{status=\"fail\"} 2",
            "sigil_engine_cache_hits_total 3",
            "sigil_engine_registry_requests_total 5",
            "sigil_engine_tag_cache_hits_total 6",
            "sigil_webhook_policies 2",
            "sigil_webhook_policy_reload_failing 1",
            "sigil_webhook_policy_reloads_total{result=\"success\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert_eq!(m.reviews(ReviewPath::Mutate, ReviewResult::Denied), 1);
    }
}
