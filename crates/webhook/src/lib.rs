//! Kubernetes admission webhook (AdmissionReview v1 over HTTPS) running the image-verification engine.
//!
//! [`Webhook`] holds an [`Engine`] and the webhook's state; [`Webhook::router`] serves
//!
//! - `POST /mutate`: verification ([`Engine::mutate`]); admitted reviews carry the engine's JSON patch
//!   (`patchType: JSONPatch`: the `sigil.dev/verify-images` annotation, digest pins);
//! - `POST /validate`: the `verifyDigest` / `required` checks ([`Engine::validate`]);
//! - `GET /healthz` (live), `GET /readyz` (policies loaded; shows the last reload error), `GET
//!   /metrics` (Prometheus text, see [`metrics`]).
//!
//! Every review runs under a deadline inside the API server's webhook timeout: the configured budget
//! (or the `?timeout=` the API server appends, if smaller) minus a margin. A review that does not
//! finish in time is decided by [`RegistryFailure`]: deny, allow with a warning, or as the policies'
//! `failurePolicy` says (deny when any says `Fail`). Bodies that are not an `AdmissionReview` get HTTP
//! 400 with the reason, never an allow. DELETE, subresources (except `ephemeralcontainers`, whose
//! object is the Pod with its new containers) and kinds no rule can match are admitted at once.
//!
//! [`Webhook::spawn_reloader`] polls the policy files every second and swaps in the new policies; a
//! reload that fails keeps the old ones and is reported on `/readyz` and `/metrics`. [`serve`] runs the
//! router over TLS (rustls, ring) until a shutdown future completes, picking up a rotated serving
//! certificate ([`tls::CertReloader`]). [`tls`] also makes the self-signed serving certificate of
//! `sigil serve`.

pub mod admission;
pub mod metrics;
pub mod reload;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use serde_json::{Value, json};
use sigil_engine::{Engine, EngineConfig, EngineError, Review, ReviewRequest, RuleStatus};
use sigil_policy::matching::Operation;
use tokio::net::TcpListener;

pub use admission::{AdmissionRequest, AdmissionResponse, BadReview};
pub use metrics::{Metrics, ReviewPath, ReviewResult};
pub use sigil_engine::RegistryFailure;

use crate::metrics::PolicyGauges;
use crate::reload::KindFilter;

/// Errors starting or running the webhook.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The policies could not be loaded at start.
    #[error("loading policies: {0}")]
    Policies(#[from] EngineError),
    /// The TLS configuration was refused, or serving failed.
    #[error(transparent)]
    Server(#[from] sigil_registry::ServerError),
    /// The serving certificate could not be loaded or made.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Policy files or directories.
    pub policy_paths: Vec<PathBuf>,
    /// Longest a review may take: the webhook configuration's `timeoutSeconds`.
    pub review_timeout: Duration,
    /// Kept free before the timeout for the response to reach the API server.
    pub deadline_margin: Duration,
    /// Largest accepted request body.
    pub max_request_bytes: usize,
    /// How often policy files are checked for changes.
    pub reload_interval: Duration,
}

impl WebhookConfig {
    /// Defaults: 10 s timeout, 1 s margin, 8 MiB bodies, reload check every second.
    pub fn new(policy_paths: Vec<PathBuf>) -> Self {
        Self {
            policy_paths,
            review_timeout: Duration::from_secs(10),
            deadline_margin: Duration::from_secs(1),
            max_request_bytes: 8 * 1024 * 1024,
            reload_interval: Duration::from_secs(1),
        }
    }

    /// The time a review may use: `min(review_timeout, api_server_timeout)` minus the margin (half
    /// of it when the margin would take more than half).
    pub fn budget(&self, api_server_timeout: Option<Duration>) -> Duration {
        let t = match api_server_timeout {
            Some(q) if !q.is_zero() => q.min(self.review_timeout),
            _ => self.review_timeout,
        };
        if t > self.deadline_margin * 2 {
            t - self.deadline_margin
        } else {
            t / 2
        }
    }
}

#[derive(Debug, Default)]
struct PolicyState {
    count: usize,
    kinds: KindFilter,
    fail_closed: bool,
    fingerprint: [u8; 32],
    last_error: Option<String>,
    last_success_unix: u64,
    reloads: u64,
}

/// The webhook: engine, settings, counters, policy state.
pub struct Webhook {
    engine: Engine,
    config: WebhookConfig,
    metrics: Metrics,
    state: RwLock<PolicyState>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Webhook {
    /// Loads the policies (an error here is fatal: nothing is served with policies that do not
    /// parse) and builds the engine.
    pub fn new(engine: EngineConfig, config: WebhookConfig) -> Result<Arc<Self>, WebhookError> {
        let fingerprint = reload::fingerprint(&config.policy_paths);
        let policies = sigil_engine::load_policy_files(&config.policy_paths)?;
        let state = PolicyState {
            count: policies.len(),
            kinds: KindFilter::new(&policies),
            fail_closed: reload::any_fail_closed(&policies),
            fingerprint,
            last_error: None,
            last_success_unix: unix_now(),
            reloads: 0,
        };
        let webhook = Self {
            engine: Engine::new(engine, policies),
            config,
            metrics: Metrics::default(),
            state: RwLock::new(state),
        };
        webhook.metrics.reload(true);
        Ok(Arc::new(webhook))
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Policies in force.
    pub fn policy_count(&self) -> usize {
        self.read_state(|s| s.count)
    }

    /// The error of the last reload attempt, if it failed.
    pub fn last_reload_error(&self) -> Option<String> {
        self.read_state(|s| s.last_error.clone())
    }

    fn read_state<T>(&self, f: impl FnOnce(&PolicyState) -> T) -> T {
        match self.state.read() {
            Ok(s) => f(&s),
            Err(p) => f(&p.into_inner()),
        }
    }

    fn write_state(&self, f: impl FnOnce(&mut PolicyState)) {
        match self.state.write() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Reloads the policies if their files changed since the last attempt. Returns `Some(Ok(n))`
    /// after a successful reload of `n` policies, `Some(Err(message))` after a failed one (the old
    /// policies stay), `None` when nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<usize, String>> {
        let fp = reload::fingerprint(&self.config.policy_paths);
        if self.read_state(|s| s.fingerprint == fp) {
            return None;
        }
        let result = sigil_engine::load_policy_files(&self.config.policy_paths);
        match result {
            Ok(policies) => {
                let n = policies.len();
                let kinds = KindFilter::new(&policies);
                let fail_closed = reload::any_fail_closed(&policies);
                self.engine.replace_policies(policies);
                self.write_state(|s| {
                    s.count = n;
                    s.kinds = kinds;
                    s.fail_closed = fail_closed;
                    s.fingerprint = fp;
                    s.last_error = None;
                    s.last_success_unix = unix_now();
                    s.reloads += 1;
                });
                self.metrics.reload(true);
                tracing::info!(policies = n, "policies reloaded");
                Some(Ok(n))
            }
            Err(e) => {
                let msg = e.to_string();
                self.write_state(|s| {
                    s.fingerprint = fp;
                    s.last_error = Some(msg.clone());
                });
                self.metrics.reload(false);
                tracing::warn!(error = %msg, "policy reload failed; the previous policies stay in force");
                Some(Err(msg))
            }
        }
    }

    /// Polls the policy files every [`WebhookConfig::reload_interval`] and reloads on change. Abort
    /// the returned task to stop.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let w = Arc::clone(&this);
                // File reads and policy compilation are blocking work.
                let _ = tokio::task::spawn_blocking(move || w.reload_if_changed()).await;
            }
        })
    }

    /// The HTTP routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/mutate", post(mutate))
            .route("/validate", post(validate))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(Arc::clone(self))
    }

    /// Why a request is admitted without a review, if it is.
    fn skip_reason(&self, r: &AdmissionRequest) -> Option<String> {
        match r.operation {
            Operation::Delete => return Some("DELETE is not reviewed".into()),
            Operation::Connect => return Some("CONNECT is not reviewed".into()),
            Operation::Create | Operation::Update => {}
        }
        if !r.sub_resource.is_empty() && r.sub_resource != "ephemeralcontainers" {
            return Some(format!("subresource `{}` is not reviewed", r.sub_resource));
        }
        let k = &r.kind;
        if !self.read_state(|s| s.kinds.may_match(&k.group, &k.version, &k.kind)) {
            return Some(format!("no policy matches kind {}", k.kind));
        }
        None
    }

    /// Reviews one parsed request on `path` within `budget`.
    pub async fn review(
        self: &Arc<Self>,
        path: ReviewPath,
        req: AdmissionRequest,
        budget: Duration,
    ) -> (AdmissionResponse, ReviewResult) {
        if let Some(why) = self.skip_reason(&req) {
            tracing::debug!(uid = %req.uid, "{why}");
            return (
                AdmissionResponse::allow(&req.uid, Vec::new()),
                ReviewResult::Skipped,
            );
        }
        let namespace = if req.namespace.is_empty() {
            req.object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        } else {
            req.namespace
        };
        let uid = req.uid;
        let request = Arc::new(ReviewRequest {
            resource: req.object,
            old_resource: req.old_object,
            namespace,
            operation: req.operation,
            timeout: Some(budget),
            dry_run: req.dry_run,
        });
        // The engine gets `budget`; this outer limit (inside the margin) catches an engine that
        // overruns it.
        let hard = budget + self.config.deadline_margin / 2;
        match tokio::time::timeout(hard, self.run_engine(path, Arc::clone(&request))).await {
            Ok(Some(review)) => self.respond(path, &uid, review),
            Ok(None) => {
                // The review task panicked: never an allow.
                self.metrics.decision(RuleStatus::Error);
                (
                    AdmissionResponse::deny(
                        &uid,
                        "internal error while verifying images (see the webhook log)".into(),
                        Vec::new(),
                    ),
                    ReviewResult::Denied,
                )
            }
            Err(_) => self.deadline_response(&uid, &request.resource, hard),
        }
    }

    /// Runs the engine in its own task, so a panic inside it becomes a deny (`None`) rather than a
    /// dropped connection.
    async fn run_engine(
        self: &Arc<Self>,
        path: ReviewPath,
        request: Arc<ReviewRequest>,
    ) -> Option<Review> {
        /// Aborts the review task when the caller gives up on it (deadline).
        struct AbortOnDrop(tokio::task::AbortHandle);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            match path {
                ReviewPath::Mutate => this.engine.mutate(&request).await,
                ReviewPath::Validate => this.engine.validate(&request).await,
            }
        });
        let _guard = AbortOnDrop(task.abort_handle());
        task.await.ok()
    }

    fn respond(
        &self,
        path: ReviewPath,
        uid: &str,
        review: Review,
    ) -> (AdmissionResponse, ReviewResult) {
        for rule in &review.results {
            if rule.images.is_empty() {
                self.metrics.decision(rule.status);
            }
            for image in &rule.images {
                self.metrics.decision(image.status);
            }
        }
        if review.blocked {
            let message = review
                .message
                .clone()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| deny_message(&review));
            return (
                AdmissionResponse::deny(uid, message, review.warnings),
                ReviewResult::Denied,
            );
        }
        let mut resp = AdmissionResponse::allow(uid, review.warnings);
        if path == ReviewPath::Mutate {
            resp = resp.with_patch(&review.patch);
        }
        (resp, ReviewResult::Allowed)
    }

    fn deadline_response(
        &self,
        uid: &str,
        resource: &Value,
        after: Duration,
    ) -> (AdmissionResponse, ReviewResult) {
        self.metrics.deadline_exceeded();
        self.metrics.decision(RuleStatus::Error);
        let images: Vec<String> = sigil_policy::image::extract_images(resource)
            .map(|v| v.into_iter().map(|i| i.image).collect())
            .unwrap_or_default();
        let what = if images.is_empty() {
            "image verification".to_owned()
        } else {
            format!("image verification of {}", images.join(", "))
        };
        let msg = format!(
            "{what} did not finish within the {:.1}s deadline (registry unreachable or too slow)",
            after.as_secs_f64()
        );
        let deny = match self.engine.config().registry_failure {
            RegistryFailure::Deny => true,
            RegistryFailure::Allow => false,
            RegistryFailure::PolicyDecides => self.read_state(|s| s.fail_closed),
        };
        tracing::warn!(uid = %uid, deny, "{msg}");
        if deny {
            (
                AdmissionResponse::deny(uid, msg, Vec::new()),
                ReviewResult::Denied,
            )
        } else {
            (
                AdmissionResponse::allow(uid, vec![format!("{msg}; admitted")]),
                ReviewResult::Allowed,
            )
        }
    }
}

/// A deny message from the results when the engine gave none: each failing image and why.
fn deny_message(review: &Review) -> String {
    let mut parts = Vec::new();
    for rule in &review.results {
        if !matches!(rule.status, RuleStatus::Fail | RuleStatus::Error) {
            continue;
        }
        let failing: Vec<String> = rule
            .images
            .iter()
            .filter(|i| matches!(i.status, RuleStatus::Fail | RuleStatus::Error))
            .map(|i| format!("{}: {}", i.image, i.message))
            .collect();
        if failing.is_empty() {
            parts.push(format!("{}/{}: {}", rule.policy, rule.rule, rule.message));
        } else {
            parts.push(format!(
                "{}/{}: {}",
                rule.policy,
                rule.rule,
                failing.join("; ")
            ));
        }
    }
    if parts.is_empty() {
        "image verification failed".to_owned()
    } else {
        parts.join("\n")
    }
}

/// Parses a Go duration as the API server writes it in `?timeout=` (`10s`, `1m30s`, `500ms`); negative
/// durations are refused.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    sigil_policy::conditions::parse_duration(s)
        .filter(|secs| *secs >= 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
}

fn query_timeout(query: Option<&str>) -> Option<Duration> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("timeout="))
        .and_then(parse_go_duration)
}

async fn mutate(State(w): State<Arc<Webhook>>, RawQuery(q): RawQuery, body: Body) -> Response {
    handle(&w, ReviewPath::Mutate, q.as_deref(), body).await
}

async fn validate(State(w): State<Arc<Webhook>>, RawQuery(q): RawQuery, body: Body) -> Response {
    handle(&w, ReviewPath::Validate, q.as_deref(), body).await
}

async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, BadReview> {
    use axum::body::HttpBody as _;
    if body.size_hint().lower() > limit as u64 {
        return Err(BadReview::TooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return BadReview::TooLarge(limit);
            }
            source = s.source();
        }
        BadReview::Body(e.to_string())
    })
}

async fn handle(w: &Arc<Webhook>, path: ReviewPath, query: Option<&str>, body: Body) -> Response {
    let start = Instant::now();
    let parsed = match read_body(body, w.config.max_request_bytes).await {
        Ok(bytes) => admission::parse_review(&bytes),
        Err(e) => Err(e),
    };
    let req = match parsed {
        Ok(r) => r,
        Err(e) => {
            w.metrics
                .review(path, ReviewResult::BadRequest, start.elapsed());
            tracing::debug!(path = path.as_str(), error = %e, "bad AdmissionReview");
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{e}\n"),
            )
                .into_response();
        }
    };
    let budget = w.config.budget(query_timeout(query));
    let (resp, result) = w.review(path, req, budget).await;
    w.metrics.review(path, result, start.elapsed());
    let body = serde_json::to_vec(&resp.into_review()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(w): State<Arc<Webhook>>) -> Response {
    let (count, error, reloads) = w.read_state(|s| (s.count, s.last_error.clone(), s.reloads));
    let mut v = json!({
        "ready": true,
        "policies": count,
        "reloads": reloads,
        "lastReloadError": error,
    });
    if count == 0 {
        v["note"] = json!("no policies loaded: every request is admitted");
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&v).unwrap_or_default(),
    )
        .into_response()
}

async fn metrics_text(State(w): State<Arc<Webhook>>) -> Response {
    let gauges = w.read_state(|s| PolicyGauges {
        policies: s.count,
        reload_failing: s.last_error.is_some(),
        last_success_unix: s.last_success_unix,
    });
    let text = w.metrics.render(w.engine.stats(), &gauges);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Serves the webhook's router on `listener` over TLS with `cert` (reloaded when its files change)
/// until `shutdown` completes (open requests finish first). Policies are reloaded meanwhile.
pub async fn serve(
    webhook: &Arc<Webhook>,
    listener: TcpListener,
    cert: &Arc<tls::CertReloader>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    let tls = cert
        .server_config()
        .map_err(sigil_registry::ServerError::from)?;
    let reloader = webhook.spawn_reloader();
    let cert_watch = cert.spawn_watch(webhook.config.reload_interval);
    let result = sigil_registry::serve(listener, webhook.router(), Some(tls), shutdown).await;
    reloader.abort();
    cert_watch.abort();
    Ok(result?)
}

/// Loads the serving certificate chain and key (PEM); see [`tls::CertReloader`].
pub fn load_cert(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<tls::CertReloader>, WebhookError> {
    Ok(tls::CertReloader::load(cert, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("3x"), None);
        assert_eq!(parse_go_duration("-5s"), None);
        assert_eq!(
            query_timeout(Some("a=b&timeout=7s")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(query_timeout(None), None);
    }

    #[test]
    fn budget_leaves_a_margin() {
        let c = WebhookConfig::new(Vec::new());
        assert_eq!(c.budget(None), Duration::from_secs(9));
        assert_eq!(
            c.budget(Some(Duration::from_secs(5))),
            Duration::from_secs(4)
        );
        assert_eq!(
            c.budget(Some(Duration::from_secs(30))),
            Duration::from_secs(9)
        );
        assert_eq!(
            c.budget(Some(Duration::from_millis(1500))),
            Duration::from_millis(750)
        );
    }
}
