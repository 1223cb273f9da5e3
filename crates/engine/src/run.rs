//! The review algorithm behind [`crate::Engine::mutate`] and [`crate::Engine::validate`].
//!
//! Mutate: collect every (policy, rule, `verifyImages` entry, image) that applies; group them by image
//! string so each image is resolved (tag → digest, cached for the tag TTL) once per review; verify all
//! images in parallel under one deadline, each (rule entry, digest) through the decision cache; then
//! build results, the blocking decision, the deny message, warnings and the JSON patch (annotation
//! ops first, then digest pins).
//!
//! Rule data: `request` and Kyverno's `images` variable (the rule's image extractors, see
//! `CompiledRule::images_variable`) are defined before the rule's `context` entries, so context
//! entries, preconditions and the substituted `verifyImages` body can read them; `images` is also
//! passed on to attestation conditions and `validate.deny` when the rule's entries mention it.
//!
//! `applyRules: One`: a policy's rules are planned and verified one after another, in waves (see
//! [`run_mutate`]): a rule after one that applied (a pass or a fail) is not planned at all (no
//! context fetch, no image verification). `All` policies are planned and verified at once.
//!
//! Parallelism: every image job is its own tokio task (a [`JoinSet`], at most
//! [`crate::EngineConfig::max_parallel_images`] running), and the distinct decisions of one image
//! (other rules, entries, policies) are tasks of their own, so the CPU work of a review (JSON,
//! base64, signature and certificate checks) spreads over the runtime's worker threads instead of
//! running on the caller's. The tasks own what they use: the policy snapshot (`Arc<Vec<LoadedPolicy>>`,
//! addressed by index), the engine (`Arc<EngineInner>`) and the review's [`Fetcher`] (its memo of
//! fetched material is shared by all tasks of the review). At the deadline the unfinished tasks are
//! aborted and their units reported as errors, never as passes; dropping the review aborts them too.
//! A review of a single image runs it inline (no task to spawn).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use serde_json::{Value, json};
use sigil_oci::{Digest, Reference};
use sigil_policy::context::{ContextSource, set_entry};
use sigil_policy::image::ImageInfo;
use sigil_policy::matching::Operation;
use sigil_policy::model::ApplyRules;
use sigil_policy::model::{FailureAction, FailurePolicy, PolicyKind};
use sigil_policy::{CompiledRule, ImageMatch, VerifyImage};

use crate::cache::{Decision, DecisionKey, ErrorKind};
use crate::fetch::{FetchError, Fetcher};
use crate::review::{
    ImageResult, LoadedPolicy, Review, ReviewRequest, RuleResult, RuleStatus, TraceStep,
    VERIFY_IMAGES_ANNOTATION,
};
use crate::verify::{VerifyEnv, verify_image};
use crate::{EngineInner, RegistryFailure};

/// One rule of one policy that applies to the resource.
struct RulePlan<'a> {
    policy: &'a LoadedPolicy,
    rule: &'a CompiledRule,
    /// Index of `policy` in the snapshot.
    policy_index: usize,
    /// Index of `rule` in the policy.
    rule_index: usize,
    name: String,
    /// Per image slot: (verifyImages index, extracted image, pending outcome).
    slots: Vec<Slot>,
    /// A rule-level outcome (error, skip) replacing per-image results.
    rule_outcome: Option<(RuleStatus, String, Option<ErrorKind>)>,
    /// The rule's `context` entries (an object), when it has any.
    context: Option<Arc<Value>>,
    /// Per `verifyImages` entry: the entry with its variables substituted, when it has any.
    substituted: Vec<Option<Arc<VerifyImage>>>,
    /// Fingerprint of the context entries and substituted entries (part of decision cache keys).
    variant: Option<String>,
}

impl RulePlan<'_> {
    /// The `verifyImages` entry `j` as evaluated for this request (substituted when it has
    /// variables).
    fn vi(&self, j: usize) -> &VerifyImage {
        match self.substituted.get(j) {
            Some(Some(v)) => v,
            _ => &self.rule.verify_images[j],
        }
    }

    /// Whether the rule "applied" in Kyverno's sense (`applyRules: One`): a result that is a pass
    /// or a fail.
    fn applied(status: RuleStatus) -> bool {
        matches!(status, RuleStatus::Pass | RuleStatus::Fail)
    }
}

/// Evaluates a rule's `context` entries in order into `data` (which holds `request`); returns the
/// entries alone (an object). Errors name the entry; registry failures are [`ErrorKind::Registry`].
async fn load_context(
    rule: &CompiledRule,
    data: &mut Value,
    fetcher: &Fetcher,
) -> Result<Value, (String, ErrorKind)> {
    let mut entries = Value::Object(serde_json::Map::new());
    for entry in &rule.context {
        if let Some(e) = entry.needs_cluster_error() {
            return Err((e.to_string(), ErrorKind::Other));
        }
        let value = match &entry.source {
            ContextSource::Variable { .. } => entry
                .eval_variable(data)
                .map_err(|e| (e.to_string(), ErrorKind::Other))?,
            ContextSource::ImageRegistry { .. } => {
                let req = entry
                    .image_registry_request(data)
                    .map_err(|e| (e.to_string(), ErrorKind::Other))?;
                let fetched = tokio::time::timeout_at(
                    fetcher.deadline().into(),
                    fetcher.image_data(&req.reference),
                )
                .await
                .map_err(|_| {
                    (
                        format!(
                            "{}.imageRegistry: {}: the review deadline passed",
                            entry.path, req.reference
                        ),
                        ErrorKind::Registry,
                    )
                })?
                .map_err(|e| match e {
                    FetchError::Registry(m) => (
                        format!("{}.imageRegistry: {m}", entry.path),
                        ErrorKind::Registry,
                    ),
                    FetchError::Other(m) => (
                        format!("{}.imageRegistry: {m}", entry.path),
                        ErrorKind::Other,
                    ),
                })?;
                entry
                    .finish_image_registry(&req, &fetched)
                    .map_err(|e| (e.to_string(), ErrorKind::Other))?
            }
            ContextSource::NeedsCluster { .. } => {
                return Err((
                    format!("{}: needs the Kubernetes API server", entry.path),
                    ErrorKind::Other,
                ));
            }
        };
        set_entry(data, &entry.name, value.clone());
        set_entry(&mut entries, &entry.name, value);
    }
    Ok(entries)
}

/// Hex SHA-256 of some text (cache key fingerprints).
fn fingerprint(parts: &[&Value]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.to_string().as_bytes());
        h.update(b"\n");
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

struct Slot {
    vi: usize,
    image: String,
    pointer: String,
    outcome: SlotOutcome,
}

enum SlotOutcome {
    /// Decided without verification.
    Done {
        status: RuleStatus,
        message: String,
        digest: Option<String>,
        error: Option<ErrorKind>,
    },
    /// Waiting for the verification job of `image`.
    Pending,
}

/// The outcome of one slot after verification.
#[derive(Clone)]
struct Verified {
    status: RuleStatus,
    message: String,
    digest: Option<Digest>,
    cached: bool,
    trace: Vec<TraceStep>,
    error: Option<ErrorKind>,
}

/// Autogen rule name as Kyverno computes it (truncated to 63 characters).
fn rule_name(rule: &CompiledRule, policy: &LoadedPolicy, kind: &str) -> String {
    let autogen = rule.autogen_eligible && kind != "Pod" && policy.policy.autogen.covers(kind);
    let name = match (autogen, kind) {
        (false, _) => return rule.name.clone(),
        (true, "CronJob") => format!("autogen-cronjob-{}", rule.name),
        (true, _) => format!("autogen-{}", rule.name),
    };
    name.chars().take(63).collect()
}

fn policy_display(p: &LoadedPolicy) -> String {
    match (&p.policy.kind, &p.policy.namespace) {
        (PolicyKind::Policy, Some(ns)) => format!("{ns}/{}", p.policy.name),
        _ => p.policy.name.clone(),
    }
}

fn has_verification(vi: &VerifyImage) -> bool {
    !vi.attestors.is_empty() || !vi.attestations.is_empty()
}

/// Whether a policy takes part in this review at all (admission on; a namespaced `Policy` only
/// for requests in its namespace).
fn policy_considered(policy: &LoadedPolicy, request: &ReviewRequest) -> bool {
    let p = &policy.policy;
    p.admission
        && (p.kind != PolicyKind::Policy
            || p.namespace.as_deref().unwrap_or("default") == request.namespace)
}

/// Plans one rule of a policy, or `None` when the rule does not apply to the resource: its images
/// matched to `verifyImages` entries. The rule's `context` entries are evaluated here (in order,
/// before preconditions; `imageRegistry` entries fetch through `fetcher`), with Kyverno's `images`
/// variable (the rule's image extractors) and `request` defined; `verifyImages` entries with
/// variables are substituted and compiled again.
async fn plan_rule<'a>(
    policy: &'a LoadedPolicy,
    policy_index: usize,
    rule_index: usize,
    request: &ReviewRequest,
    fetcher: &Fetcher,
) -> Option<RulePlan<'a>> {
    let kind = request
        .resource
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let p = &policy.policy;
    let rule = p.rules.get(rule_index)?;
    if !rule.applies_to(p, &request.resource, &request.namespace, request.operation) {
        return None;
    }
    let mut plan = RulePlan {
        policy,
        rule,
        policy_index,
        rule_index,
        name: rule_name(rule, policy, kind),
        slots: Vec::new(),
        rule_outcome: None,
        context: None,
        substituted: vec![None; rule.verify_images.len()],
        variant: None,
    };
    let mut data = json!({"request": {
        "object": request.resource,
        "oldObject": request.old_resource,
        "namespace": request.namespace,
        "operation": operation_name(request.operation),
    }});
    // Kyverno's `images` variable (this rule's extractors). When it cannot be built, it stays
    // undefined (references fail as unresolved) and errors say why.
    let mut images_var = None;
    let mut images_error = None;
    match rule.images_variable(&request.resource) {
        Ok(Some(v)) => {
            set_entry(&mut data, "images", v.clone());
            images_var = Some(v);
        }
        Ok(None) => {}
        Err(e) => images_error = Some(e.to_string()),
    }
    let explain = |message: String| match &images_error {
        Some(why) => format!("{message} (the `images` variable is undefined: {why})"),
        None => message,
    };
    if !rule.context.is_empty() {
        match load_context(rule, &mut data, fetcher).await {
            Ok(entries) => plan.context = Some(Arc::new(entries)),
            Err((message, kind)) => {
                plan.rule_outcome = Some((
                    RuleStatus::Error,
                    explain(format!("context: {message}")),
                    Some(kind),
                ));
                return Some(plan);
            }
        }
    }
    // Attestation conditions and `validate.deny` are evaluated later, against the context
    // entries: `images` joins them when the rule's entries refer to it (only then, as the
    // context is part of the decision cache key).
    if let Some(v) = images_var
        && rule
            .verify_images_source
            .iter()
            .any(|src| src.to_string().contains("images"))
    {
        let mut c = plan
            .context
            .as_deref()
            .cloned()
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        set_entry(&mut c, "images", v);
        plan.context = Some(Arc::new(c));
    }
    if let Some(pre) = &rule.preconditions {
        match pre.evaluate(&data) {
            Ok(o) if o.passed => {}
            Ok(o) => {
                plan.rule_outcome = Some((
                    RuleStatus::Skip,
                    format!("preconditions not met: {}", o.failures.join("; ")),
                    None,
                ));
                return Some(plan);
            }
            Err(e) => {
                plan.rule_outcome = Some((
                    RuleStatus::Error,
                    explain(format!("preconditions could not be evaluated: {e}")),
                    Some(ErrorKind::Other),
                ));
                return Some(plan);
            }
        }
    }
    let images = match rule.extract_images(&request.resource) {
        Ok(i) => i,
        Err(e) => {
            plan.rule_outcome = Some((
                RuleStatus::Error,
                format!("cannot extract images: {e}"),
                Some(ErrorKind::Other),
            ));
            return Some(plan);
        }
    };
    // Kyverno substitutes the rule body (but attestation conditions and `validate`) once
    // the context is loaded: entries with variables are compiled again per request.
    let mut substitution_errors: Vec<Option<String>> = vec![None; rule.verify_images.len()];
    let mut fingerprint_parts: Vec<Value> = Vec::new();
    if let Some(c) = &plan.context {
        fingerprint_parts.push((**c).clone());
    }
    for (j, (slot, error)) in plan
        .substituted
        .iter_mut()
        .zip(substitution_errors.iter_mut())
        .enumerate()
    {
        if !rule.needs_substitution(j) {
            continue;
        }
        match rule.substituted_verify_image(j, &data) {
            Ok((vi, source)) => {
                *slot = Some(Arc::new(vi));
                fingerprint_parts.push(json!({ "verifyImages": j, "entry": source }));
            }
            Err(e) => *error = Some(explain(e.to_string())),
        }
    }
    if !fingerprint_parts.is_empty() {
        let refs: Vec<&Value> = fingerprint_parts.iter().collect();
        plan.variant = Some(fingerprint(&refs));
    }
    for (vi_index, compiled_vi) in rule.verify_images.iter().enumerate() {
        let sub = plan.substituted[vi_index].clone();
        let vi: &VerifyImage = sub.as_deref().unwrap_or(compiled_vi);
        for img in &images {
            let matched = match vi.match_image(&img.image) {
                Ok(m) => m,
                Err(e) => {
                    // An image that does not parse is an error, never a silent skip.
                    plan.slots.push(Slot {
                        vi: vi_index,
                        image: img.image.clone(),
                        pointer: img.pointer.clone(),
                        outcome: SlotOutcome::Done {
                            status: RuleStatus::Error,
                            message: e.to_string(),
                            digest: None,
                            error: Some(ErrorKind::Other),
                        },
                    });
                    continue;
                }
            };
            let outcome = match matched {
                ImageMatch::NoMatch => continue,
                ImageMatch::Skip => SlotOutcome::Done {
                    status: RuleStatus::Skip,
                    message: "image matched skipImageReferences".into(),
                    digest: None,
                    error: None,
                },
                ImageMatch::Verify if substitution_errors[vi_index].is_some() => {
                    SlotOutcome::Done {
                        status: RuleStatus::Error,
                        message: substitution_errors[vi_index].clone().unwrap_or_default(),
                        digest: None,
                        error: Some(ErrorKind::Other),
                    }
                }
                ImageMatch::Verify => match unsupported(vi) {
                    Some(message) => SlotOutcome::Done {
                        status: RuleStatus::Error,
                        message,
                        digest: None,
                        error: Some(ErrorKind::Other),
                    },
                    None => SlotOutcome::Pending,
                },
            };
            plan.slots.push(Slot {
                vi: vi_index,
                image: img.image.clone(),
                pointer: img.pointer.clone(),
                outcome,
            });
        }
    }
    Some(plan)
}

/// Why a `verifyImages` entry cannot be evaluated by sigil (never a silent pass or ignore).
fn unsupported(vi: &VerifyImage) -> Option<String> {
    if let Err(e) = vi.ensure_supported() {
        return Some(e.to_string());
    }
    let c = vi.registry_credentials.as_ref()?;
    let path = format!("{}.imageRegistryCredentials", vi.path);
    if !c.secrets.is_empty() {
        return Some(format!(
            "{path}.secrets is not supported: give sigil the registry credentials (auth file)"
        ));
    }
    if c.providers.iter().any(|p| p != "default") {
        return Some(format!(
            "{path}.providers other than `default` are not supported: give sigil the registry \
             credentials (auth file)"
        ));
    }
    if c.allow_insecure_registry {
        return Some(format!(
            "{path}.allowInsecureRegistry is not supported: allow insecure registries in sigil's \
             registry options"
        ));
    }
    None
}

fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Where a unit's `verifyImages` entry lives in the review's policy snapshot, owned so that the
/// image's task can look it up without borrowing from the review.
#[derive(Clone)]
struct UnitSpec {
    /// (policy index, rule index, slot index) of the unit in the review.
    at: (usize, usize, usize),
    /// Index of the policy in the snapshot.
    policy: usize,
    /// Index of the rule in the policy.
    rule: usize,
    /// Index of the `verifyImages` entry in the rule.
    vi: usize,
    /// The rule name as reported (autogen names included).
    rule_name: String,
    /// The entry with its variables substituted (replaces the snapshot's entry).
    vi_override: Option<Arc<VerifyImage>>,
    /// The rule's `context` entries, for attestation conditions and `validate.deny`.
    context: Option<Arc<Value>>,
    /// Fingerprint of the context and substitutions (part of the decision cache key).
    variant: Option<String>,
}

/// Work for one unique image string.
struct ImageJob {
    image: String,
    /// Unchanged digest-pinned image on UPDATE: no verification.
    unchanged: bool,
    /// The units waiting for this image.
    units: Vec<UnitSpec>,
}

/// What every task of one review shares (owned, so the tasks are `'static`).
struct ReviewCtx {
    engine: Arc<EngineInner>,
    /// The policy snapshot the review started with.
    policies: Arc<Vec<LoadedPolicy>>,
    /// The review's memo of fetched material.
    fetcher: Fetcher,
    deadline: Instant,
}

impl ReviewCtx {
    /// The `verifyImages` entry of a unit.
    fn verify_image<'s>(&'s self, u: &'s UnitSpec) -> Option<&'s VerifyImage> {
        if let Some(v) = &u.vi_override {
            return Some(v);
        }
        self.policies
            .get(u.policy)?
            .policy
            .rules
            .get(u.rule)?
            .verify_images
            .get(u.vi)
    }

    /// The content hash of a unit's policy.
    fn policy_hash(&self, u: &UnitSpec) -> String {
        let hash = self
            .policies
            .get(u.policy)
            .map(|p| p.content_hash.clone())
            .unwrap_or_default();
        match &u.variant {
            Some(v) => format!("{hash}+{v}"),
            None => hash,
        }
    }
}

fn deadline_error(timeout: Duration) -> Verified {
    Verified {
        status: RuleStatus::Error,
        message: format!(
            "verification did not finish within the review deadline of {:.1}s (registry slow or \
             unreachable)",
            timeout.as_secs_f64()
        ),
        digest: None,
        cached: false,
        trace: Vec::new(),
        error: Some(ErrorKind::Registry),
    }
}

fn internal_error(why: &str) -> Verified {
    Verified {
        status: RuleStatus::Error,
        message: format!("internal: {why}"),
        digest: None,
        cached: false,
        trace: Vec::new(),
        error: Some(ErrorKind::Other),
    }
}

/// Results of verified slots, by (policy index, rule index, slot index).
type VerifiedMap = HashMap<(usize, usize, usize), Verified>;

/// Whether a planned rule "applied" (`applyRules: One`) given the verified slots: as in
/// [`EngineInner::assemble`], a rule-level outcome never applies; otherwise any image result that
/// is a pass or a fail does (a pending slot without a result counts as an error).
fn plan_applied(plan: &RulePlan<'_>, verified: &VerifiedMap) -> bool {
    if plan.rule_outcome.is_some() {
        return false;
    }
    plan.slots.iter().enumerate().any(|(si, s)| {
        let status = match &s.outcome {
            SlotOutcome::Done { status, .. } => *status,
            SlotOutcome::Pending => verified
                .get(&(plan.policy_index, plan.rule_index, si))
                .map_or(RuleStatus::Error, |v| v.status),
        };
        RulePlan::applied(status)
    })
}

/// Whether a planned rule waits for image verification.
fn plan_pending(plan: &RulePlan<'_>) -> bool {
    plan.rule_outcome.is_none()
        && plan
            .slots
            .iter()
            .any(|s| matches!(s.outcome, SlotOutcome::Pending))
}

/// A policy with `applyRules: One`, planned one rule at a time.
struct OneCursor {
    /// Index of the policy in the snapshot.
    policy: usize,
    /// The next rule to plan; `None` once a rule applied or every rule was planned.
    next: Option<usize>,
    /// Index in the review's plans of the rule waiting for verification.
    waiting: Option<usize>,
}

/// The mutating review (see [`crate::Engine::mutate`]): plans on the caller's task, verifies each
/// image in its own task (bounded by `max_parallel_images`), assembles on the caller's task.
///
/// Verification runs in waves: the first wave holds every rule of `applyRules: All` policies and
/// the first rule of each `applyRules: One` policy that needs verification (rules before it that
/// were decided without verification are planned on the way). A `One` policy's next rule is
/// planned, in a later wave, only when the rule before it did not apply (Kyverno stops at the
/// first rule that passed or failed): its context is not loaded and its images are not verified.
/// Within a wave, all images of all its rules are verified in parallel.
pub(crate) async fn run_mutate(engine: &Arc<EngineInner>, request: &ReviewRequest) -> Review {
    if matches!(request.operation, Operation::Delete | Operation::Connect) {
        return Review::default();
    }
    let policies = engine.policies();
    let timeout = request.timeout.unwrap_or(engine.config.default_timeout);
    let started = Instant::now();
    let deadline = started + timeout;
    let fetcher = Fetcher::new(
        engine.config.client.clone(),
        engine.referrers.clone(),
        engine.config.retry,
        deadline,
    );
    let ctx = Arc::new(ReviewCtx {
        engine: Arc::clone(engine),
        policies: Arc::clone(&policies),
        fetcher,
        deadline,
    });
    let mut plans: Vec<RulePlan<'_>> = Vec::new();
    let mut cursors: Vec<OneCursor> = Vec::new();
    for (pi, policy) in policies.iter().enumerate() {
        if !policy_considered(policy, request) {
            continue;
        }
        if policy.policy.apply_rules == ApplyRules::One {
            cursors.push(OneCursor {
                policy: pi,
                next: Some(0),
                waiting: None,
            });
            continue;
        }
        for ri in 0..policy.policy.rules.len() {
            if let Some(p) = Box::pin(plan_rule(policy, pi, ri, request, &ctx.fetcher)).await {
                plans.push(p);
            }
        }
    }
    let mut verified: VerifiedMap = HashMap::new();
    let mut run_from = 0;
    loop {
        // Advance each `One` policy to its next rule that waits for verification.
        for cursor in &mut cursors {
            if let Some(w) = cursor.waiting.take()
                && plans.get(w).is_some_and(|p| plan_applied(p, &verified))
            {
                cursor.next = None;
            }
            let Some(policy) = policies.get(cursor.policy) else {
                cursor.next = None;
                continue;
            };
            while let Some(ri) = cursor.next {
                if ri >= policy.policy.rules.len() {
                    cursor.next = None;
                    break;
                }
                cursor.next = Some(ri + 1);
                let Some(p) =
                    Box::pin(plan_rule(policy, cursor.policy, ri, request, &ctx.fetcher)).await
                else {
                    continue;
                };
                let pending = plan_pending(&p);
                let applied = !pending && plan_applied(&p, &verified);
                plans.push(p);
                if pending {
                    cursor.waiting = Some(plans.len() - 1);
                    break;
                }
                if applied {
                    cursor.next = None;
                }
            }
        }
        let jobs = image_jobs(&plans[run_from..], request);
        run_from = plans.len();
        if jobs.is_empty() {
            break;
        }
        Box::pin(run_wave(&ctx, jobs, timeout, &mut verified)).await;
    }
    plans.sort_by_key(|p| (p.policy_index, p.rule_index));
    let review = engine.assemble(&plans, &verified, request);
    engine.record_review(started.elapsed());
    review
}

/// Groups the pending slots of `plans` by image string (one job per image).
fn image_jobs(plans: &[RulePlan<'_>], request: &ReviewRequest) -> Vec<ImageJob> {
    let mut jobs: Vec<ImageJob> = Vec::new();
    let mut by_image: HashMap<String, usize> = HashMap::new();
    for p in plans {
        if p.rule_outcome.is_some() {
            continue;
        }
        for (si, s) in p.slots.iter().enumerate() {
            if !matches!(s.outcome, SlotOutcome::Pending) {
                continue;
            }
            let j = *by_image.entry(s.image.clone()).or_insert_with(|| {
                let unchanged = request.operation == Operation::Update
                    && s.image.contains('@')
                    && request
                        .old_resource
                        .as_ref()
                        .and_then(|o| o.pointer(&s.pointer))
                        .and_then(Value::as_str)
                        == Some(s.image.as_str());
                jobs.push(ImageJob {
                    image: s.image.clone(),
                    unchanged,
                    units: Vec::new(),
                });
                jobs.len() - 1
            });
            if let Some(job) = jobs.get_mut(j) {
                job.units.push(UnitSpec {
                    at: (p.policy_index, p.rule_index, si),
                    policy: p.policy_index,
                    rule: p.rule_index,
                    vi: s.vi,
                    rule_name: p.name.clone(),
                    vi_override: p.substituted.get(s.vi).cloned().flatten(),
                    context: p.context.clone(),
                    variant: p.variant.clone(),
                });
            }
        }
    }
    jobs
}

/// Verifies one wave of image jobs in parallel and records each unit's result.
async fn run_wave(
    ctx: &Arc<ReviewCtx>,
    jobs: Vec<ImageJob>,
    timeout: Duration,
    verified: &mut VerifiedMap,
) {
    let units: Vec<Vec<(usize, usize, usize)>> = jobs
        .iter()
        .map(|j| j.units.iter().map(|u| u.at).collect())
        .collect();
    let limit = ctx.engine.config.max_parallel_images.max(1);
    let outcomes = run_jobs(ctx, jobs, limit).await;
    for (ji, out) in outcomes.into_iter().enumerate() {
        let Some(units) = units.get(ji) else {
            continue;
        };
        let n = units.len();
        let outs = match out {
            JobOutcome::Done(v) => v,
            JobOutcome::Deadline => vec![deadline_error(timeout); n],
            JobOutcome::Lost(why) => vec![internal_error(&why); n],
        };
        for (unit, v) in units.iter().zip(outs) {
            verified.insert(*unit, v);
        }
    }
}

/// How an image job ended.
enum JobOutcome {
    /// One result per unit.
    Done(Vec<Verified>),
    /// Not finished at the deadline (aborted, or never started).
    Deadline,
    /// The task panicked or was cancelled.
    Lost(String),
}

/// Runs every job as its own task, at most `limit` at once; a job unfinished at the deadline is
/// aborted and reported as [`JobOutcome::Deadline`]. Outcomes are in job order.
async fn run_jobs(ctx: &Arc<ReviewCtx>, mut jobs: Vec<ImageJob>, limit: usize) -> Vec<JobOutcome> {
    if jobs.len() == 1
        && let Some(job) = jobs.pop()
    {
        // One image: nothing to spread, so no task (the cached path stays as cheap as it was).
        let out =
            tokio::time::timeout_at(ctx.deadline.into(), run_image_job(Arc::clone(ctx), job)).await;
        return vec![out.map_or(JobOutcome::Deadline, JobOutcome::Done)];
    }
    let mut outcomes: Vec<Option<JobOutcome>> = jobs.iter().map(|_| None).collect();
    let mut queue = jobs.into_iter().enumerate();
    // Dropped (aborting every task) when the review future is dropped.
    let mut set: JoinSet<(usize, Vec<Verified>)> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, usize> = HashMap::new();
    let spawn = |set: &mut JoinSet<_>, running: &mut HashMap<_, _>, ji: usize, job: ImageJob| {
        let ctx = Arc::clone(ctx);
        let handle = set.spawn(async move { (ji, run_image_job(ctx, job).await) });
        running.insert(handle.id(), ji);
    };
    for (ji, job) in queue.by_ref().take(limit) {
        spawn(&mut set, &mut running, ji, job);
    }
    loop {
        match tokio::time::timeout_at(ctx.deadline.into(), set.join_next_with_id()).await {
            Ok(Some(Ok((id, (ji, out))))) => {
                running.remove(&id);
                if let Some(slot) = outcomes.get_mut(ji) {
                    *slot = Some(JobOutcome::Done(out));
                }
            }
            Ok(Some(Err(e))) => {
                if let Some(ji) = running.remove(&e.id())
                    && let Some(slot) = outcomes.get_mut(ji)
                {
                    tracing::error!(error = %e, "image verification task failed");
                    *slot = Some(JobOutcome::Lost(format!(
                        "image verification task failed: {e}"
                    )));
                }
            }
            Ok(None) => break,
            Err(_) => {
                // Deadline: abandon what runs; unfinished and unstarted jobs are errors.
                set.abort_all();
                break;
            }
        }
        if let Some((ji, job)) = queue.next() {
            spawn(&mut set, &mut running, ji, job);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(JobOutcome::Deadline))
        .collect()
}

/// Resolves the image once, then decides every unit of it (distinct decisions in their own tasks;
/// identical keys coalesce).
async fn run_image_job(ctx: Arc<ReviewCtx>, job: ImageJob) -> Vec<Verified> {
    let n = job.units.len();
    let reference = match Reference::parse(&job.image) {
        Ok(r) => r,
        Err(e) => {
            return vec![
                Verified {
                    status: RuleStatus::Error,
                    message: format!("invalid image reference {:?}: {e}", job.image),
                    digest: None,
                    cached: false,
                    trace: Vec::new(),
                    error: Some(ErrorKind::Other),
                };
                n
            ];
        }
    };
    if job.unchanged {
        return vec![
            Verified {
                status: RuleStatus::Pass,
                message: "digest-pinned image unchanged on UPDATE: not verified again".into(),
                digest: reference.digest.clone(),
                cached: false,
                trace: Vec::new(),
                error: None,
            };
            n
        ];
    }
    let digest = match ctx.engine.resolve(&reference, &ctx.fetcher).await {
        Ok(d) => d,
        Err((status, message, error)) => {
            return vec![
                Verified {
                    status,
                    message,
                    digest: None,
                    cached: false,
                    trace: Vec::new(),
                    error,
                };
                n
            ];
        }
    };
    let pinned = Arc::new(reference.with_digest(digest.clone()));
    let resolved_step = TraceStep {
        path: "image".into(),
        status: RuleStatus::Pass,
        detail: match &reference.digest {
            Some(_) => format!("{} is digest-pinned", job.image),
            None => format!("{} resolved to {digest}", job.image),
        },
    };
    // Identical (policy, rule, entry) units of this image (e.g. two containers) are decided once.
    let mut keys: Vec<(DecisionKey, UnitSpec)> = Vec::new();
    let mut unit_key: Vec<usize> = Vec::with_capacity(n);
    for unit in &job.units {
        let key = DecisionKey {
            policy_hash: ctx.policy_hash(unit),
            rule: unit.rule_name.clone(),
            verify_index: unit.vi,
            image: format!("{}@{digest}", pinned.repository_name()),
        };
        match keys.iter().position(|(k, _)| k == &key) {
            Some(i) => unit_key.push(i),
            None => {
                unit_key.push(keys.len());
                keys.push((key, unit.clone()));
            }
        }
    }
    let decided: Vec<Verified> = if keys.len() == 1 {
        let mut decided = Vec::with_capacity(1);
        for (key, unit) in keys {
            decided.push(
                decide_unit(
                    Arc::clone(&ctx),
                    key,
                    unit,
                    Arc::clone(&pinned),
                    resolved_step.clone(),
                )
                .await,
            );
        }
        decided
    } else {
        // Independent decisions of one image (other rules, entries or policies) in their own
        // tasks; they share the review's memo of fetched material. Dropping the set (the image
        // task was aborted) aborts them.
        let mut set = JoinSet::new();
        let count = keys.len();
        for (i, (key, unit)) in keys.into_iter().enumerate() {
            let fut = decide_unit(
                Arc::clone(&ctx),
                key,
                unit,
                Arc::clone(&pinned),
                resolved_step.clone(),
            );
            set.spawn(async move { (i, fut.await) });
        }
        let mut decided: Vec<Option<Verified>> = vec![None; count];
        while let Some(r) = set.join_next().await {
            match r {
                Ok((i, v)) => {
                    if let Some(slot) = decided.get_mut(i) {
                        *slot = Some(v);
                    }
                }
                Err(e) => tracing::error!(error = %e, "decision task failed"),
            }
        }
        decided
            .into_iter()
            .map(|d| d.unwrap_or_else(|| internal_error("decision task failed")))
            .collect()
    };
    unit_key
        .into_iter()
        .map(|i| {
            decided
                .get(i)
                .cloned()
                .unwrap_or_else(|| internal_error("decision missing"))
        })
        .collect()
}

/// One decision (through the decision cache) for one unit of an image, with its trace.
async fn decide_unit(
    ctx: Arc<ReviewCtx>,
    key: DecisionKey,
    unit: UnitSpec,
    pinned: Arc<Reference>,
    resolved_step: TraceStep,
) -> Verified {
    let Some(vi) = ctx.verify_image(&unit) else {
        return internal_error("verifyImages entry not found in the policy snapshot");
    };
    let Some(digest) = pinned.digest.clone() else {
        return internal_error("image not pinned to a digest");
    };
    let env = VerifyEnv {
        fetcher: &ctx.fetcher,
        trusted_roots: &ctx.engine.config.trusted_roots,
        context: unit.context.as_deref(),
    };
    let deadline = ctx.deadline;
    let lookup = ctx
        .engine
        .caches
        .decide(key, vi.use_cache, async {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Decision::error(
                    ErrorKind::Registry,
                    "review deadline passed before verification",
                    Vec::new(),
                );
            }
            verify_image(&env, vi, &pinned, &digest).await
        })
        .await;
    let d = &lookup.decision;
    let mut trace = vec![resolved_step];
    trace.push(TraceStep {
        path: format!("{} ({})", vi.path, unit.rule_name),
        status: d.status,
        detail: if lookup.cached {
            format!("from the decision cache: {}", d.message)
        } else {
            d.message.clone()
        },
    });
    trace.extend(d.trace.iter().cloned());
    Verified {
        status: d.status,
        message: d.message.clone(),
        digest: Some(digest),
        cached: lookup.cached,
        trace,
        error: d.error,
    }
}

impl EngineInner {
    /// Tag → digest (cached for the tag TTL; a digest reference needs no request).
    async fn resolve(
        &self,
        reference: &Reference,
        fetcher: &Fetcher,
    ) -> Result<Digest, (RuleStatus, String, Option<ErrorKind>)> {
        if let Some(d) = &reference.digest {
            return Ok(d.clone());
        }
        let key = reference.to_string();
        let r = self
            .caches
            .tag(key, async {
                match fetcher.resolve(reference).await {
                    Ok(Some(d)) => Ok(d),
                    Ok(None) => Err(FetchError::Other(format!(
                        "{reference}: manifest unknown (tag not found)"
                    ))),
                    Err(e) => Err(e),
                }
            })
            .await;
        r.map_err(|e| match &*e {
            FetchError::Registry(m) => (
                RuleStatus::Error,
                format!("cannot resolve {reference}: {m}"),
                Some(ErrorKind::Registry),
            ),
            FetchError::Other(m) => (RuleStatus::Fail, m.clone(), None),
        })
    }

    /// Results, blocking, messages, warnings and the patch.
    fn assemble(
        &self,
        plans: &[RulePlan<'_>],
        verified: &VerifiedMap,
        request: &ReviewRequest,
    ) -> Review {
        let mut review = Review::default();
        let mut deny_lines = Vec::new();
        // Annotation: image key → worst status; digest pins: pointer → value.
        let mut annotation: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut pins: Vec<(String, String)> = Vec::new();
        let mut pin_blocked: Vec<String> = Vec::new();
        // Policies with `applyRules: One` whose first applying rule was seen.
        let mut applied_one: Vec<usize> = Vec::new();
        for plan in plans {
            let policy = &plan.policy.policy;
            let pname = policy_display(plan.policy);
            let one = policy.apply_rules == ApplyRules::One;
            if one && applied_one.contains(&plan.policy_index) {
                // `applyRules: One`: an earlier rule of this policy applied.
                continue;
            }
            let enforce_rule = !plan.rule.verify_images.is_empty()
                && policy.effective_action(plan.vi(0), &request.namespace)
                    == FailureAction::Enforce;
            if let Some((status, message, error)) = &plan.rule_outcome {
                let rr = RuleResult {
                    policy: pname.clone(),
                    rule: plan.name.clone(),
                    status: *status,
                    message: message.clone(),
                    enforce: enforce_rule,
                    images: Vec::new(),
                };
                if *status == RuleStatus::Error {
                    self.judge_error(
                        policy.failure_policy,
                        error.unwrap_or(ErrorKind::Other),
                        format!("policy {pname}/rule {}: {message}", plan.name),
                        &mut review,
                        &mut deny_lines,
                    );
                }
                review.results.push(rr);
                continue;
            }
            let mut images = Vec::new();
            for (si, slot) in plan.slots.iter().enumerate() {
                let vi = plan.vi(slot.vi);
                let v = match &slot.outcome {
                    SlotOutcome::Done {
                        status,
                        message,
                        digest,
                        error,
                    } => Verified {
                        status: *status,
                        message: message.clone(),
                        digest: digest.as_deref().and_then(|d| Digest::parse(d).ok()),
                        cached: false,
                        trace: Vec::new(),
                        error: *error,
                    },
                    SlotOutcome::Pending => {
                        match verified.get(&(plan.policy_index, plan.rule_index, si)) {
                            Some(v) => v.clone(),
                            None => Verified {
                                status: RuleStatus::Error,
                                message: "internal: image was not verified".into(),
                                digest: None,
                                cached: false,
                                trace: Vec::new(),
                                error: Some(ErrorKind::Other),
                            },
                        }
                    }
                };
                let line = format!(
                    "policy {pname}/rule {}: image {}{}: {}",
                    plan.name,
                    slot.image,
                    v.digest
                        .as_ref()
                        .filter(|_| !slot.image.contains('@'))
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default(),
                    v.message
                );
                let enforce =
                    policy.effective_action(vi, &request.namespace) == FailureAction::Enforce;
                match v.status {
                    RuleStatus::Fail if enforce => {
                        review.blocked = true;
                        deny_lines.push(line);
                    }
                    RuleStatus::Fail => review.warnings.push(format!("audit: {line}")),
                    RuleStatus::Error => self.judge_error(
                        policy.failure_policy,
                        v.error.unwrap_or(ErrorKind::Other),
                        line,
                        &mut review,
                        &mut deny_lines,
                    ),
                    _ => {}
                }
                // Digest pin and annotation.
                let info = ImageInfo::parse(&slot.image).ok();
                let has_digest = info.as_ref().is_some_and(|i| i.digest.is_some());
                let wants_pin = vi.mutate_digest
                    && !has_digest
                    && v.status == RuleStatus::Pass
                    && v.digest.is_some();
                // A pin replaces the value at the pointer: never when that value is not the image
                // (an extractor jmesPath transformed it; policies cannot combine the two).
                let pointer_holds_image = request
                    .resource
                    .pointer(&slot.pointer)
                    .and_then(Value::as_str)
                    == Some(slot.image.as_str());
                let mutated = wants_pin && pointer_holds_image;
                if wants_pin && !pointer_holds_image {
                    review.warnings.push(format!(
                        "policy {pname}/rule {}: image {} not pinned to its digest: {} does not \
                         hold the image string",
                        plan.name, slot.image, slot.pointer
                    ));
                }
                if v.status != RuleStatus::Pass && v.status != RuleStatus::Skip {
                    pin_blocked.push(slot.pointer.clone());
                }
                if mutated && let Some(d) = &v.digest {
                    let value = format!("{}@{d}", slot.image);
                    if !pins.iter().any(|(p, _)| p == &slot.pointer) {
                        pins.push((slot.pointer.clone(), value));
                    }
                }
                if has_verification(vi)
                    && let Some(mut info) = info
                {
                    if mutated && let Some(d) = &v.digest {
                        info.digest = Some(d.to_string());
                    }
                    let key = info.kyverno_string();
                    let s = match v.status {
                        RuleStatus::Pass => "pass",
                        RuleStatus::Skip => "skip",
                        _ => "fail",
                    };
                    let e = annotation.entry(key).or_insert(s);
                    if rank(s) > rank(e) {
                        *e = s;
                    }
                }
                images.push(ImageResult {
                    image: slot.image.clone(),
                    pointer: slot.pointer.clone(),
                    digest: v.digest.as_ref().map(ToString::to_string),
                    status: v.status,
                    message: v.message.clone(),
                    cached: v.cached,
                    trace: v.trace.clone(),
                });
            }
            if one && images.iter().any(|i| RulePlan::applied(i.status)) {
                applied_one.push(plan.policy_index);
            }
            let status = images
                .iter()
                .map(|i| i.status)
                .max_by_key(|s| status_rank(*s))
                .unwrap_or(RuleStatus::Skip);
            let message = match status {
                RuleStatus::Pass => format!("{} image(s) verified", images.len()),
                RuleStatus::Skip if images.is_empty() => "no image matched imageReferences".into(),
                RuleStatus::Skip => "images skipped".into(),
                _ => images
                    .iter()
                    .filter(|i| i.status == status)
                    .map(|i| format!("{}: {}", i.image, i.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            review.results.push(RuleResult {
                policy: pname,
                rule: plan.name.clone(),
                status,
                message,
                enforce: enforce_rule,
                images,
            });
        }
        if !deny_lines.is_empty() {
            review.message = Some(deny_lines.join("\n"));
        }
        // Patch: annotation first, then digest pins (never for an image that failed elsewhere).
        if !annotation.is_empty() {
            let value = serde_json::to_string(&annotation).unwrap_or_default();
            let meta = request.resource.get("metadata");
            if meta.is_none() {
                review
                    .patch
                    .push(json!({"op": "add", "path": "/metadata", "value": {}}));
            }
            let annotations = meta.and_then(|m| m.get("annotations"));
            if !annotations.is_some_and(Value::is_object) {
                review
                    .patch
                    .push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
            }
            let present = annotations
                .and_then(|a| a.get(VERIFY_IMAGES_ANNOTATION))
                .is_some();
            review.patch.push(json!({
                "op": if present { "replace" } else { "add" },
                "path": format!("/metadata/annotations/{}", escape_pointer(VERIFY_IMAGES_ANNOTATION)),
                "value": value,
            }));
        }
        for (pointer, value) in pins {
            if pin_blocked.contains(&pointer) {
                continue;
            }
            review
                .patch
                .push(json!({"op": "replace", "path": pointer, "value": value}));
        }
        review
    }

    fn judge_error(
        &self,
        failure_policy: FailurePolicy,
        kind: ErrorKind,
        line: String,
        review: &mut Review,
        deny_lines: &mut Vec<String>,
    ) {
        let (block, why) = match (kind, self.config.registry_failure) {
            (ErrorKind::Registry, RegistryFailure::Deny) => (true, ""),
            (ErrorKind::Registry, RegistryFailure::Allow) => {
                (false, "registry failure admitted by configuration")
            }
            _ => (
                failure_policy == FailurePolicy::Fail,
                "error ignored (failurePolicy Ignore)",
            ),
        };
        if block {
            review.blocked = true;
            deny_lines.push(line);
        } else {
            review.warnings.push(format!("{why}: {line}"));
        }
    }
}

fn rank(s: &str) -> u8 {
    match s {
        "skip" => 0,
        "pass" => 1,
        _ => 2,
    }
}

fn status_rank(s: RuleStatus) -> u8 {
    match s {
        RuleStatus::Skip => 0,
        RuleStatus::Pass => 1,
        RuleStatus::Warn => 2,
        RuleStatus::Fail => 3,
        RuleStatus::Error => 4,
    }
}

/// RFC 6901 escaping of one reference token.
pub(crate) fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

// ---------------------------------------------------------------------------------------------
// validate

impl EngineInner {
    pub(crate) async fn run_validate(&self, request: &ReviewRequest) -> Review {
        let mut review = Review::default();
        if matches!(request.operation, Operation::Delete | Operation::Connect) {
            return review;
        }
        let policies = self.policies();
        let annotation: Option<Result<BTreeMap<String, String>, String>> = request
            .resource
            .pointer(&format!(
                "/metadata/annotations/{}",
                escape_pointer(VERIFY_IMAGES_ANNOTATION)
            ))
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| "annotation is not a string".to_owned())
                    .and_then(|s| {
                        serde_json::from_str::<BTreeMap<String, String>>(s)
                            .map_err(|e| format!("annotation is not a JSON map of strings: {e}"))
                    })
            });
        let mut deny_lines = Vec::new();
        let timeout = request.timeout.unwrap_or(self.config.default_timeout);
        let fetcher = Fetcher::new(
            self.config.client.clone(),
            self.referrers.clone(),
            self.config.retry,
            Instant::now() + timeout,
        );
        let mut applied_one: Vec<usize> = Vec::new();
        let rules: Vec<(usize, usize)> = policies
            .iter()
            .enumerate()
            .filter(|(_, p)| policy_considered(p, request))
            .flat_map(|(pi, p)| (0..p.policy.rules.len()).map(move |ri| (pi, ri)))
            .collect();
        for (pi, ri) in rules {
            let Some(loaded) = policies.get(pi) else {
                continue;
            };
            if loaded.policy.apply_rules == ApplyRules::One && applied_one.contains(&pi) {
                // `applyRules: One`: an earlier rule of this policy applied; this one is not
                // planned (no context loaded).
                continue;
            }
            let Some(plan) = Box::pin(plan_rule(loaded, pi, ri, request, &fetcher)).await else {
                continue;
            };
            let policy = &plan.policy.policy;
            let pname = policy_display(plan.policy);
            let one = policy.apply_rules == ApplyRules::One;
            if one && applied_one.contains(&plan.policy_index) {
                // `applyRules: One`: an earlier rule of this policy applied.
                continue;
            }
            let enforce_rule = !plan.rule.verify_images.is_empty()
                && policy.effective_action(plan.vi(0), &request.namespace)
                    == FailureAction::Enforce;
            if let Some((status, message, error)) = &plan.rule_outcome {
                if *status == RuleStatus::Error {
                    self.judge_error(
                        policy.failure_policy,
                        error.unwrap_or(ErrorKind::Other),
                        format!("policy {pname}/rule {}: {message}", plan.name),
                        &mut review,
                        &mut deny_lines,
                    );
                }
                review.results.push(RuleResult {
                    policy: pname,
                    rule: plan.name.clone(),
                    status: *status,
                    message: message.clone(),
                    enforce: enforce_rule,
                    images: Vec::new(),
                });
                continue;
            }
            let mut images = Vec::new();
            for slot in &plan.slots {
                let vi = plan.vi(slot.vi);
                if !vi.verify_digest && !vi.required {
                    continue;
                }
                let (status, message) = match &slot.outcome {
                    SlotOutcome::Done {
                        status: RuleStatus::Skip,
                        message,
                        ..
                    } => (RuleStatus::Skip, message.clone()),
                    // Errors from matching (unparseable image) stay errors; unsupported entries
                    // were reported by mutate: here only the digest/annotation checks run.
                    SlotOutcome::Done {
                        status: RuleStatus::Error,
                        message,
                        ..
                    } if ImageInfo::parse(&slot.image).is_err() => {
                        (RuleStatus::Error, message.clone())
                    }
                    _ => check_image(vi, &slot.image, annotation.as_ref()),
                };
                let line = format!("policy {pname}/rule {}: {message}", plan.name);
                match status {
                    RuleStatus::Fail
                        if policy.effective_action(vi, &request.namespace)
                            == FailureAction::Enforce =>
                    {
                        review.blocked = true;
                        deny_lines.push(line);
                    }
                    RuleStatus::Fail => review.warnings.push(format!("audit: {line}")),
                    RuleStatus::Error => self.judge_error(
                        policy.failure_policy,
                        ErrorKind::Other,
                        line,
                        &mut review,
                        &mut deny_lines,
                    ),
                    _ => {}
                }
                images.push(ImageResult {
                    image: slot.image.clone(),
                    pointer: slot.pointer.clone(),
                    digest: ImageInfo::parse(&slot.image).ok().and_then(|i| i.digest),
                    status,
                    message,
                    cached: false,
                    trace: Vec::new(),
                });
            }
            if images.is_empty() {
                continue;
            }
            if one && images.iter().any(|i| RulePlan::applied(i.status)) {
                applied_one.push(plan.policy_index);
            }
            let status = images
                .iter()
                .map(|i| i.status)
                .max_by_key(|s| status_rank(*s))
                .unwrap_or(RuleStatus::Skip);
            let message = images
                .iter()
                .filter(|i| i.status == status)
                .map(|i| i.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            review.results.push(RuleResult {
                policy: pname,
                rule: plan.name.clone(),
                status,
                message,
                enforce: enforce_rule,
                images,
            });
        }
        if !deny_lines.is_empty() {
            review.message = Some(deny_lines.join("\n"));
        }
        review
    }
}

/// `verifyDigest` and `required` for one image.
fn check_image(
    vi: &VerifyImage,
    image: &str,
    annotation: Option<&Result<BTreeMap<String, String>, String>>,
) -> (RuleStatus, String) {
    let info = match ImageInfo::parse(image) {
        Ok(i) => i,
        Err(e) => return (RuleStatus::Error, e.to_string()),
    };
    if vi.verify_digest && info.digest.is_none() {
        return (RuleStatus::Fail, format!("missing digest for {image}"));
    }
    if vi.required && has_verification(vi) {
        let key = info.kyverno_string();
        let verdict = match annotation {
            None => Err(format!(
                "unverified image {image} (no {VERIFY_IMAGES_ANNOTATION} annotation)"
            )),
            Some(Err(e)) => Err(format!("unverified image {image} ({e})")),
            Some(Ok(map)) => match map.get(&key).map(String::as_str) {
                Some("pass" | "skip") => Ok(()),
                Some(other) => Err(format!(
                    "unverified image {image} (annotation records {other:?})"
                )),
                None => Err(format!(
                    "unverified image {image} (not recorded in {VERIFY_IMAGES_ANNOTATION})"
                )),
            },
        };
        if let Err(m) = verdict {
            return (RuleStatus::Fail, m);
        }
    }
    (
        RuleStatus::Pass,
        format!("{image}: digest and verification recorded"),
    )
}
