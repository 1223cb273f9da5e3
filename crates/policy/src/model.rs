//! The validated, compiled policy model and the raw → compiled step.

use std::collections::BTreeMap;

use base64::Engine as _;
use regex::Regex;
use serde_json::Value;

use crate::attestor::{
    Attestor, AttestorKind, AttestorSet, CertificateAttestor, CtlogConfig, IdentityMatcher,
    KeyAttestor, KeylessAttestor, PublicKeySource, RekorConfig,
};
use crate::conditions::{AnyAllConditions, compile_conditions_value, substitute_strict};
use crate::context::{ContextEntry, compile_context};
use crate::error::{EvalError, PolicyError};
use crate::image::{CustomExtractor, ExtractedImage, ImageInfo, extract_custom, extract_images};
use crate::matching::{AutogenControllers, MatchBlock, Operation, ResourceFacts};
use crate::raw::{
    RawAttestation, RawAttestor, RawAttestorSet, RawCtlog, RawKeyless, RawKeys, RawPolicy,
    RawRekor, RawRule, RawVerifyImage,
};
use crate::wildcard::Wildcard;

/// `ClusterPolicy` or `Policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Cluster-scoped.
    ClusterPolicy,
    /// Namespaced.
    Policy,
}

/// `Audit` or `Enforce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Report only.
    Audit,
    /// Block.
    Enforce,
}

impl FailureAction {
    fn parse(s: &str, path: &str) -> Result<Self, PolicyError> {
        // Kyverno accepts the legacy lower-case spellings too.
        match s {
            "Audit" | "audit" => Ok(Self::Audit),
            "Enforce" | "enforce" => Ok(Self::Enforce),
            other => Err(PolicyError::invalid(
                path,
                format!("invalid failure action `{other}` (Audit or Enforce)"),
            )),
        }
    }
}

/// `spec.applyRules`: whether every matching rule applies, or only the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApplyRules {
    /// Every rule (default).
    #[default]
    All,
    /// Stop after the first rule that applies (its result is a pass or a fail).
    One,
}

/// One `spec.validationFailureActionOverrides` entry (namespaces form).
#[derive(Debug, Clone)]
pub struct FailureActionOverride {
    /// The action for resources in these namespaces.
    pub action: FailureAction,
    /// Namespace patterns (wildcards).
    pub namespaces: Vec<Wildcard>,
}

/// Webhook failure policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Reject on error.
    Fail,
    /// Admit on error.
    Ignore,
}

/// Verification type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationType {
    /// Cosign signatures/attestations (default).
    Cosign,
    /// Sigstore bundles via OCI referrers.
    SigstoreBundle,
    /// Notary v2.
    Notary,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// Kind.
    pub kind: PolicyKind,
    /// Name.
    pub name: String,
    /// Namespace (for `Policy`).
    pub namespace: Option<String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Autogen controllers.
    pub autogen: AutogenControllers,
    /// Spec-level failure action (default Audit).
    pub validation_failure_action: FailureAction,
    /// `spec.validationFailureActionOverrides` (namespaces form), in order.
    pub failure_action_overrides: Vec<FailureActionOverride>,
    /// `spec.applyRules` (default `All`).
    pub apply_rules: ApplyRules,
    /// Webhook failure policy (default Fail).
    pub failure_policy: FailurePolicy,
    /// Webhook timeout (seconds), if set.
    pub webhook_timeout_seconds: Option<i64>,
    /// Background scanning (default true).
    pub background: bool,
    /// Admission processing (default true).
    pub admission: bool,
    /// Rules.
    pub rules: Vec<CompiledRule>,
}

/// A custom image extractor.
#[derive(Debug, Clone)]
pub struct ImageExtractor {
    /// Path with `*` segments.
    pub path: String,
    /// Image field below the path.
    pub value: Option<String>,
    /// Group name (`images.<name>` in Kyverno's context, default `custom`); no effect on
    /// verification.
    pub name: Option<String>,
    /// Field identifying an image (default: its JSON pointer).
    pub key: Option<String>,
    /// JMESPath transform of the extracted string (checked when the policy is compiled; with
    /// it, no `verifyImages` entry of the rule may mutate digests, as in Kyverno).
    pub jmes_path: Option<String>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Name.
    pub name: String,
    /// Path of the rule (`spec.rules[i]`).
    pub path: String,
    /// Match block.
    pub match_block: MatchBlock,
    /// Exclude block.
    pub exclude: Option<MatchBlock>,
    /// Compiled `context` entries, in evaluation order.
    pub context: Vec<ContextEntry>,
    /// Preconditions.
    pub preconditions: Option<AnyAllConditions>,
    /// Custom image extractors by kind.
    pub image_extractors: BTreeMap<String, Vec<ImageExtractor>>,
    /// verifyImages entries.
    pub verify_images: Vec<VerifyImage>,
    /// The `verifyImages` entries as written (JSON), recompiled after variable substitution by
    /// [`CompiledRule::substituted_verify_image`].
    pub verify_images_source: Vec<Value>,
    /// The spec-level failure action the entries were compiled with.
    pub spec_failure_action: FailureAction,
    /// Whether Kyverno autogen applies to this rule (matches only Pods, no names/selectors).
    pub autogen_eligible: bool,
}

/// One attestation to fetch and check.
#[derive(Debug, Clone)]
pub struct Attestation {
    /// Name for `validate.deny`.
    pub name: Option<String>,
    /// Statement predicate type / referrer artifact type.
    pub type_: String,
    /// Attestor sets (an empty list becomes one set with one `Empty` entry).
    pub attestors: Vec<AttestorSet>,
    /// Conditions, AND-ed.
    pub conditions: Vec<AnyAllConditions>,
}

/// Registry credentials settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryCredentials {
    /// Allow insecure registries.
    pub allow_insecure_registry: bool,
    /// Credential providers.
    pub providers: Vec<String>,
    /// Secret names.
    pub secrets: Vec<String>,
}

/// A compiled `verifyImages` entry.
#[derive(Debug, Clone)]
pub struct VerifyImage {
    /// Path (`spec.rules[i].verifyImages[j]`).
    pub path: String,
    /// Type.
    pub type_: VerificationType,
    /// Image patterns.
    pub image_references: Vec<Wildcard>,
    /// Skip patterns.
    pub skip_image_references: Vec<Wildcard>,
    /// Signature attestor sets.
    pub attestors: Vec<AttestorSet>,
    /// Attestations.
    pub attestations: Vec<Attestation>,
    /// Alternate repository.
    pub repository: Option<String>,
    /// OCI 1.1 cosign signatures.
    pub cosign_oci11: bool,
    /// Pin digests.
    pub mutate_digest: bool,
    /// Require digests.
    pub verify_digest: bool,
    /// Require the verification annotation.
    pub required: bool,
    /// Use the cache.
    pub use_cache: bool,
    /// Explicit per-entry failure action.
    pub failure_action: Option<FailureAction>,
    /// Effective failure action (entry, else spec-level).
    pub effective_failure_action: FailureAction,
    /// `validate.message`.
    pub validate_message: Option<String>,
    /// `validate.deny.conditions`.
    pub validate_deny: Option<AnyAllConditions>,
    /// Registry credentials.
    pub registry_credentials: Option<RegistryCredentials>,
}

/// How an image relates to a `verifyImages` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMatch {
    /// Matched by `imageReferences` and must be verified.
    Verify,
    /// Matched but listed in `skipImageReferences`.
    Skip,
    /// Not matched.
    NoMatch,
}

impl VerifyImage {
    /// Matches an image string (normalised as Kyverno does) against the patterns.
    pub fn match_image(&self, image: &str) -> Result<ImageMatch, EvalError> {
        let s = ImageInfo::parse(image)?.kyverno_string();
        if !self.image_references.iter().any(|p| p.matches(&s)) {
            return Ok(ImageMatch::NoMatch);
        }
        if self.skip_image_references.iter().any(|p| p.matches(&s)) {
            return Ok(ImageMatch::Skip);
        }
        Ok(ImageMatch::Verify)
    }

    /// Errors for verification types sigil does not implement (never a silent pass). Every type
    /// Kyverno 1.13 defines (`Cosign`, `SigstoreBundle`, `Notary`) is implemented, so this passes;
    /// the Notary-specific restrictions are checked when the policy is compiled.
    pub fn ensure_supported(&self) -> Result<(), EvalError> {
        match self.type_ {
            VerificationType::Cosign
            | VerificationType::SigstoreBundle
            | VerificationType::Notary => Ok(()),
        }
    }
}

impl CompiledRule {
    /// Does the rule apply to this resource? Applies match/exclude and autogen.
    pub fn applies_to(
        &self,
        policy: &CompiledPolicy,
        resource: &Value,
        namespace: &str,
        operation: Operation,
    ) -> bool {
        let facts = ResourceFacts::from_resource(resource, namespace, operation);
        let direct = self.match_block.matches(&facts, false)
            && !self
                .exclude
                .as_ref()
                .is_some_and(|e| e.excludes(&facts, false));
        if direct {
            return true;
        }
        let as_pod =
            self.autogen_eligible && facts.kind != "Pod" && policy.autogen.covers(&facts.kind);
        as_pod
            && self.match_block.matches(&facts, true)
            && !self
                .exclude
                .as_ref()
                .is_some_and(|e| e.excludes(&facts, true))
    }

    /// Extracts images: custom `imageExtractors` for the kind if present (see
    /// [`crate::image::extract_custom`]; a `jmesPath` transforms each value), else the built-in
    /// ones. Images of all extractors of the kind are returned (Kyverno keeps one group per
    /// extractor `name`, so two extractors sharing a name would hide each other's images there:
    /// sigil verifies them all).
    pub fn extract_images(&self, resource: &Value) -> Result<Vec<ExtractedImage>, EvalError> {
        let kind = resource.get("kind").and_then(Value::as_str).unwrap_or("");
        match self.image_extractors.get(kind) {
            Some(extractors) => {
                let mut out = Vec::new();
                for (i, e) in extractors.iter().enumerate() {
                    let found = extract_custom(
                        resource,
                        &CustomExtractor {
                            path: &e.path,
                            value: e.value.as_deref(),
                            key: e.key.as_deref(),
                            jmes_path: e.jmes_path.as_deref(),
                        },
                    )
                    .map_err(|err| {
                        let msg = match err {
                            EvalError::Resource(m) => m,
                            other => other.to_string(),
                        };
                        EvalError::Resource(format!(
                            "{}.imageExtractors.{kind}[{i}]: {msg}",
                            self.path
                        ))
                    })?;
                    out.extend(found);
                }
                Ok(out)
            }
            None => extract_images(resource),
        }
    }

    /// Kyverno's `images` context variable for this rule and resource: with custom
    /// `imageExtractors` for the resource's kind, one group per extractor `name` (default
    /// `custom`; a later extractor of the same name replaces the group) keyed by the `key`
    /// field's value, else by the image's JSON pointer; otherwise the built-in groups
    /// (`containers`, `initContainers`, `ephemeralContainers`, keyed by container name; see
    /// [`crate::image::images_variable`]). `None` when no image was found (no `images`
    /// variable: references to it fail as unresolved). Errors name the offending image.
    pub fn images_variable(&self, resource: &Value) -> Result<Option<Value>, EvalError> {
        let kind = resource.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(extractors) = self.image_extractors.get(kind) else {
            return crate::image::images_variable(&extract_images(resource)?);
        };
        let mut groups = serde_json::Map::new();
        for (i, e) in extractors.iter().enumerate() {
            let found = extract_custom(
                resource,
                &CustomExtractor {
                    path: &e.path,
                    value: e.value.as_deref(),
                    key: e.key.as_deref(),
                    jmes_path: e.jmes_path.as_deref(),
                },
            )
            .map_err(|err| {
                EvalError::Resource(format!("{}.imageExtractors.{kind}[{i}]: {err}", self.path))
            })?;
            if found.is_empty() {
                continue;
            }
            let name = e
                .name
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or("custom");
            let mut group = serde_json::Map::new();
            for img in &found {
                let key = img.name.clone().unwrap_or_else(|| img.pointer.clone());
                crate::image::insert_entry(&mut group, name, key, img)?;
            }
            if let Some(v) = group.remove(name) {
                groups.insert(name.to_owned(), v);
            }
        }
        Ok((!groups.is_empty()).then_some(Value::Object(groups)))
    }
}

impl CompiledPolicy {
    /// The spec-level failure action for a resource in `namespace`: the first
    /// `validationFailureActionOverrides` entry whose namespaces match, else
    /// `validationFailureAction`.
    pub fn failure_action_for(&self, namespace: &str) -> FailureAction {
        self.failure_action_overrides
            .iter()
            .find(|o| o.namespaces.iter().any(|n| n.matches(namespace)))
            .map_or(self.validation_failure_action, |o| o.action)
    }

    /// The failure action of a `verifyImages` entry for a resource in `namespace`: the entry's own
    /// `failureAction` when set (Kyverno 1.13 gives it precedence), else
    /// [`CompiledPolicy::failure_action_for`].
    pub fn effective_action(&self, vi: &VerifyImage, namespace: &str) -> FailureAction {
        vi.failure_action
            .unwrap_or_else(|| self.failure_action_for(namespace))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOverride {
    action: String,
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    namespace_selector: Option<Value>,
}

/// `spec.validationFailureActionOverrides`: the namespaces form; a `namespaceSelector` needs the
/// cluster's namespace labels, so it is an error.
fn compile_overrides(v: &Value) -> Result<Vec<FailureActionOverride>, PolicyError> {
    let base = "spec.validationFailureActionOverrides";
    let list: Vec<RawOverride> = crate::from_value_at(v, base)?;
    list.iter()
        .enumerate()
        .map(|(i, o)| {
            let p = format!("{base}[{i}]");
            if o.namespace_selector.is_some() {
                return Err(PolicyError::invalid(
                    format!("{p}.namespaceSelector"),
                    "not supported: matching namespace labels needs the Kubernetes API server \
                     (list the namespaces instead)",
                ));
            }
            let action = FailureAction::parse(&o.action, &format!("{p}.action"))?;
            let namespaces = o
                .namespaces
                .as_ref()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| PolicyError::invalid(format!("{p}.namespaces"), "required"))?;
            Ok(FailureActionOverride {
                action,
                namespaces: namespaces.iter().map(|n| Wildcard::new(n)).collect(),
            })
        })
        .collect()
}

/// Removes what is not substituted with the rule body (`attestations[*].conditions` and
/// `validate`, evaluated later with the attestation data) from a `verifyImages` entry.
fn take_late_fields(v: &mut Value) -> (Option<Value>, Vec<Option<Value>>) {
    let Some(obj) = v.as_object_mut() else {
        return (None, Vec::new());
    };
    let validate = obj.remove("validate");
    let mut conditions = Vec::new();
    if let Some(Value::Array(atts)) = obj.get_mut("attestations") {
        for a in atts {
            conditions.push(a.as_object_mut().and_then(|o| o.remove("conditions")));
        }
    }
    (validate, conditions)
}

fn restore_late_fields(v: &mut Value, late: (Option<Value>, Vec<Option<Value>>)) {
    let (validate, conditions) = late;
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    if let Some(val) = validate {
        obj.insert("validate".into(), val);
    }
    if let Some(Value::Array(atts)) = obj.get_mut("attestations") {
        for (a, c) in atts.iter_mut().zip(conditions) {
            if let (Some(o), Some(c)) = (a.as_object_mut(), c) {
                o.insert("conditions".into(), c);
            }
        }
    }
}

impl CompiledRule {
    /// Whether `verifyImages[index]` has `{{ }}` variables in the fields substituted with the rule
    /// body (everything but `attestations[*].conditions` and `validate`).
    pub fn needs_substitution(&self, index: usize) -> bool {
        self.verify_images_source.get(index).is_some_and(|src| {
            let mut v = src.clone();
            take_late_fields(&mut v);
            v.to_string().contains("{{")
        })
    }

    /// `verifyImages[index]` with its variables substituted against `data` (the rule context) and
    /// compiled again, as Kyverno substitutes the rule before verifying: every field but
    /// `attestations[*].conditions` and `validate` (evaluated later, with the attestation data). A
    /// variable that does not resolve, or a substituted value that is invalid, is an error.
    ///
    /// Returns the compiled entry and its substituted JSON (for cache keys).
    pub fn substituted_verify_image(
        &self,
        index: usize,
        data: &Value,
    ) -> Result<(VerifyImage, Value), EvalError> {
        let path = format!("{}.verifyImages[{index}]", self.path);
        let source =
            self.verify_images_source
                .get(index)
                .ok_or_else(|| EvalError::Substituted {
                    path: path.clone(),
                    message: "no such verifyImages entry".into(),
                })?;
        let mut stripped = source.clone();
        let late = take_late_fields(&mut stripped);
        let mut out = substitute_strict(&stripped, data).map_err(|e| EvalError::Substituted {
            path: path.clone(),
            message: e.to_string(),
        })?;
        restore_late_fields(&mut out, late);
        let to_eval = |e: PolicyError| EvalError::Substituted {
            path: e.path().unwrap_or(&path).to_owned(),
            message: match e {
                PolicyError::Invalid { message, .. } | PolicyError::Schema { message, .. } => {
                    message
                }
                PolicyError::Yaml { message, .. } => message,
            },
        };
        let raw: RawVerifyImage = crate::from_value_at(&out, &path).map_err(to_eval)?;
        let vi = compile_verify_image(&raw, &path, self.spec_failure_action).map_err(to_eval)?;
        Ok((vi, out))
    }
}

/// Deserialises and compiles one policy document.
pub(crate) fn compile_policy(raw: &RawPolicy, doc: &Value) -> Result<CompiledPolicy, PolicyError> {
    let kind = match raw.kind.as_str() {
        "ClusterPolicy" => PolicyKind::ClusterPolicy,
        "Policy" => PolicyKind::Policy,
        other => {
            return Err(PolicyError::invalid(
                "kind",
                format!("unsupported kind `{other}`"),
            ));
        }
    };
    let name = raw
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| PolicyError::invalid("metadata.name", "required"))?;
    let spec = &raw.spec;
    for (field, set) in [
        (
            "mutateExistingOnPolicyUpdate",
            spec.mutate_existing_on_policy_update.is_some(),
        ),
        ("generateExisting", spec.generate_existing.is_some()),
        (
            "generateExistingOnPolicyUpdate",
            spec.generate_existing_on_policy_update.is_some(),
        ),
    ] {
        if set {
            return Err(PolicyError::invalid(
                format!("spec.{field}"),
                "not supported",
            ));
        }
    }
    let validation_failure_action = spec
        .validation_failure_action
        .as_deref()
        .map(|s| FailureAction::parse(s, "spec.validationFailureAction"))
        .transpose()?
        .unwrap_or(FailureAction::Audit);
    let mut failure_policy = None;
    let mut timeout = spec.webhook_timeout_seconds;
    if let Some(wc) = &spec.webhook_configuration {
        if wc.match_conditions.is_some() {
            return Err(PolicyError::invalid(
                "spec.webhookConfiguration.matchConditions",
                "not supported",
            ));
        }
        failure_policy = wc
            .failure_policy
            .as_deref()
            .map(|s| (s, "spec.webhookConfiguration.failurePolicy"));
        timeout = wc.timeout_seconds.or(timeout);
    }
    let failure_policy = match failure_policy.or_else(|| {
        spec.failure_policy
            .as_deref()
            .map(|s| (s, "spec.failurePolicy"))
    }) {
        None | Some(("Fail", _)) => FailurePolicy::Fail,
        Some(("Ignore", _)) => FailurePolicy::Ignore,
        Some((other, path)) => {
            return Err(PolicyError::invalid(
                path,
                format!("invalid failure policy `{other}`"),
            ));
        }
    };
    if spec.rules.is_empty() {
        return Err(PolicyError::invalid(
            "spec.rules",
            "at least one rule is required",
        ));
    }
    let rules = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let source = doc
                .pointer(&format!("/spec/rules/{i}/verifyImages"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            compile_rule(
                r,
                &format!("spec.rules[{i}]"),
                validation_failure_action,
                source,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let apply_rules = match spec.apply_rules.as_deref() {
        None | Some("All") => ApplyRules::All,
        Some("One") => ApplyRules::One,
        Some(other) => {
            return Err(PolicyError::invalid(
                "spec.applyRules",
                format!("invalid value `{other}` (One or All)"),
            ));
        }
    };
    let failure_action_overrides = match &spec.validation_failure_action_overrides {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => compile_overrides(v)?,
    };
    Ok(CompiledPolicy {
        kind,
        name,
        namespace: raw.metadata.namespace.clone(),
        autogen: AutogenControllers::from_annotations(&raw.metadata.annotations),
        annotations: raw.metadata.annotations.clone(),
        validation_failure_action,
        failure_action_overrides,
        apply_rules,
        failure_policy,
        webhook_timeout_seconds: timeout,
        background: spec.background.unwrap_or(true),
        admission: spec.admission.unwrap_or(true),
        rules,
    })
}

fn compile_rule(
    raw: &RawRule,
    path: &str,
    spec_action: FailureAction,
    verify_images_source: Vec<Value>,
) -> Result<CompiledRule, PolicyError> {
    for (field, set) in [
        ("validate", raw.validate.is_some()),
        ("mutate", raw.mutate.is_some()),
        ("generate", raw.generate.is_some()),
        ("celPreconditions", raw.cel_preconditions.is_some()),
    ] {
        if set {
            return Err(PolicyError::invalid(
                format!("{path}.{field}"),
                "not supported (sigil implements verifyImages rules only)",
            ));
        }
    }
    if raw.verify_images.is_empty() {
        return Err(PolicyError::invalid(
            format!("{path}.verifyImages"),
            "required (sigil implements verifyImages rules only)",
        ));
    }
    let match_block = MatchBlock::compile(&raw.match_, &format!("{path}.match"), true)?;
    let exclude = raw
        .exclude
        .as_ref()
        .map(|e| MatchBlock::compile(e, &format!("{path}.exclude"), false))
        .transpose()?;
    let preconditions = raw
        .preconditions
        .as_ref()
        .map(|p| compile_conditions_value(p, &format!("{path}.preconditions")))
        .transpose()?;
    let mut image_extractors = BTreeMap::new();
    // The first extractor with a jmesPath (it excludes digest mutation in this rule).
    let mut jmes_extractor: Option<String> = None;
    for (kind, list) in &raw.image_extractors {
        let mut v = Vec::new();
        for (i, e) in list.iter().enumerate() {
            let p = format!("{path}.imageExtractors.{kind}[{i}]");
            if !e.path.starts_with('/') {
                return Err(PolicyError::invalid(
                    format!("{p}.path"),
                    "must start with `/`",
                ));
            }
            if let Some(j) = e.jmes_path.as_deref().filter(|j| !j.is_empty()) {
                crate::functions::compile_checked(j).map_err(|err| {
                    PolicyError::invalid(
                        format!("{p}.jmesPath"),
                        format!("invalid JMESPath `{j}`: {err}"),
                    )
                })?;
                jmes_extractor.get_or_insert_with(|| format!("{p}.jmesPath"));
            }
            if e.value.as_deref().is_none_or(str::is_empty)
                && e.path.split('/').all(|s| s.trim_matches(' ').is_empty())
            {
                return Err(PolicyError::invalid(
                    format!("{p}.path"),
                    "names no field (give the path of the image field, or `value`)",
                ));
            }
            v.push(ImageExtractor {
                path: e.path.clone(),
                value: e.value.clone(),
                name: e.name.clone(),
                key: e.key.clone(),
                jmes_path: e.jmes_path.clone(),
            });
        }
        image_extractors.insert(kind.clone(), v);
    }
    let verify_images = raw
        .verify_images
        .iter()
        .enumerate()
        .map(|(j, v)| compile_verify_image(v, &format!("{path}.verifyImages[{j}]"), spec_action))
        .collect::<Result<Vec<_>, _>>()?;
    // Kyverno's validateRuleImageExtractorsJMESPath: the pointer of a transformed image holds the
    // untransformed value, so a digest pin cannot be written there.
    if let Some(jp) = &jmes_extractor
        && let Some(vi) = verify_images.iter().find(|v| v.mutate_digest)
    {
        return Err(PolicyError::invalid(
            format!("{}.mutateDigest", vi.path),
            format!(
                "jmespath may not be used in an image extractor when mutating digests with verify \
                 images ({jp} is set): set mutateDigest: false"
            ),
        ));
    }
    let autogen_eligible =
        match_block.pod_only() && exclude.as_ref().is_none_or(MatchBlock::autogen_compatible);
    Ok(CompiledRule {
        name: raw.name.clone(),
        path: path.to_owned(),
        match_block,
        exclude,
        context: compile_context(&raw.context, &format!("{path}.context"))?,
        preconditions,
        image_extractors,
        verify_images,
        verify_images_source,
        spec_failure_action: spec_action,
        autogen_eligible,
    })
}

fn has_variable(s: &str) -> bool {
    s.contains("{{")
}

fn compile_verify_image(
    raw: &RawVerifyImage,
    path: &str,
    spec_action: FailureAction,
) -> Result<VerifyImage, PolicyError> {
    // Kyverno's `ImageVerification.Convert`: the deprecated key/issuer fields become one more
    // attestor set (for the attestations when there are any, else for the signatures).
    let deprecated = convert_deprecated(raw, path)?;
    let type_ = match raw.type_.as_deref() {
        None | Some("Cosign") => VerificationType::Cosign,
        Some("SigstoreBundle") => VerificationType::SigstoreBundle,
        Some("Notary") => VerificationType::Notary,
        Some(other) => {
            return Err(PolicyError::invalid(
                format!("{path}.type"),
                format!("unknown type `{other}`"),
            ));
        }
    };
    let mut refs: Vec<&String> = raw.image_references.iter().collect();
    if let Some(i) = &raw.image {
        refs.push(i);
    }
    if refs.is_empty() {
        return Err(PolicyError::invalid(
            format!("{path}.imageReferences"),
            "an image reference is required",
        ));
    }
    for (i, r) in raw.image_references.iter().enumerate() {
        if has_variable(r) || r.is_empty() {
            return Err(PolicyError::invalid(
                format!("{path}.imageReferences[{i}]"),
                "variables and empty patterns are not allowed",
            ));
        }
    }
    for (i, r) in raw.skip_image_references.iter().enumerate() {
        if has_variable(r) || r.is_empty() {
            return Err(PolicyError::invalid(
                format!("{path}.skipImageReferences[{i}]"),
                "variables and empty patterns are not allowed",
            ));
        }
    }
    if type_ == VerificationType::Notary {
        if raw.repository.is_some() {
            return Err(PolicyError::invalid(
                format!("{path}.repository"),
                NOTARY_REPOSITORY,
            ));
        }
        if let Some((_, field)) = &deprecated {
            let message = match *field {
                "key" => "Keys field is not allowed for type notary",
                _ => "Keyless field is not allowed for type notary",
            };
            return Err(PolicyError::invalid(format!("{path}.{field}"), message));
        }
        check_notary_attestors(&raw.attestors, &format!("{path}.attestors"))?;
        for (i, a) in raw.attestations.iter().enumerate() {
            check_notary_attestors(&a.attestors, &format!("{path}.attestations[{i}].attestors"))?;
        }
    }
    let mut attestors = raw
        .attestors
        .iter()
        .enumerate()
        .map(|(i, s)| compile_set(s, &format!("{path}.attestors[{i}]"), true))
        .collect::<Result<Vec<_>, _>>()?;
    let mut attestations = raw
        .attestations
        .iter()
        .enumerate()
        .map(|(i, a)| compile_attestation(a, &format!("{path}.attestations[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((set, field)) = &deprecated {
        let p = format!("{path}.{field}");
        if attestations.is_empty() {
            attestors.push(compile_set(set, &p, true)?);
        } else {
            // Kyverno's Convert appends the set to each attestation's attestors and then
            // restores the original attestations, dropping it; sigil keeps it (stricter).
            let compiled = compile_set(set, &p, false)?;
            for (a, raw_a) in attestations.iter_mut().zip(&raw.attestations) {
                if raw_a.attestors.is_empty() {
                    // Replace the implicit "no attestor" set.
                    a.attestors.clear();
                }
                a.attestors.push(compiled.clone());
            }
        }
    }
    let failure_action = raw
        .failure_action
        .as_deref()
        .map(|s| FailureAction::parse(s, &format!("{path}.failureAction")))
        .transpose()?;
    let effective = failure_action.unwrap_or(spec_action);
    // CRD default is true; Kyverno rejects `mutateDigest: true` with Audit. An explicit `true`
    // is an error; an unset value resolves to `false` under Audit (a report-only policy must not mutate).
    let mutate_digest = match (raw.mutate_digest, effective) {
        (Some(true), FailureAction::Audit) => {
            return Err(PolicyError::invalid(
                format!("{path}.mutateDigest"),
                "mutateDigest must be set to false for 'Audit' failure action",
            ));
        }
        (Some(v), _) => v,
        (None, FailureAction::Audit) => false,
        (None, FailureAction::Enforce) => true,
    };
    let (validate_message, validate_deny) = match &raw.validate {
        None => (None, None),
        Some(v) => {
            let deny = v
                .deny
                .as_ref()
                .and_then(|d| d.conditions.as_ref())
                .map(|c| compile_conditions_value(c, &format!("{path}.validate.deny.conditions")))
                .transpose()?;
            (v.message.clone(), deny)
        }
    };
    let registry_credentials =
        raw.image_registry_credentials
            .as_ref()
            .map(|c| RegistryCredentials {
                allow_insecure_registry: c.allow_insecure_registry.unwrap_or(false),
                providers: c.providers.clone(),
                secrets: c.secrets.clone(),
            });
    if let Some(c) = &registry_credentials {
        for (i, p) in c.providers.iter().enumerate() {
            if !matches!(
                p.as_str(),
                "default" | "amazon" | "azure" | "google" | "github"
            ) {
                return Err(PolicyError::invalid(
                    format!("{path}.imageRegistryCredentials.providers[{i}]"),
                    format!("unknown provider `{p}`"),
                ));
            }
        }
    }
    Ok(VerifyImage {
        path: path.to_owned(),
        type_,
        image_references: refs.iter().map(|r| Wildcard::new(r)).collect(),
        skip_image_references: raw
            .skip_image_references
            .iter()
            .map(|r| Wildcard::new(r))
            .collect(),
        attestors,
        attestations,
        repository: raw.repository.clone(),
        cosign_oci11: raw.cosign_oci11.unwrap_or(false),
        mutate_digest,
        verify_digest: raw.verify_digest.unwrap_or(true),
        required: raw.required.unwrap_or(true),
        use_cache: raw.use_cache.unwrap_or(true),
        failure_action,
        effective_failure_action: effective,
        validate_message,
        validate_deny,
        registry_credentials,
    })
}

/// Kyverno's `ImageVerification.Convert` for the deprecated `key`, `issuer`, `subject`, `roots`,
/// `additionalExtensions` and `annotations` fields: one attestor set with one entry (`keys` from
/// `key`, else `keyless` from `issuer`/`subject`/`roots`), and the name of the field it came from.
///
/// Where Kyverno silently drops a deprecated constraint (`subject`, `roots`, `annotations` without
/// `key` or `issuer`; `issuer` next to `key`; `additionalExtensions` always), sigil keeps it
/// (`additionalExtensions` goes to the keyless entry) or refuses the policy.
fn convert_deprecated(
    raw: &RawVerifyImage,
    path: &str,
) -> Result<Option<(RawAttestorSet, &'static str)>, PolicyError> {
    let key = raw.key.as_deref().filter(|k| !k.is_empty());
    let issuer = raw.issuer.as_deref().filter(|i| !i.is_empty());
    let annotations: BTreeMap<String, String> = match &raw.annotations {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => crate::from_value_at(v, &format!("{path}.annotations"))?,
    };
    let extensions: BTreeMap<String, String> = match &raw.additional_extensions {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => crate::from_value_at(v, &format!("{path}.additionalExtensions"))?,
    };
    let keyless_only = [
        (
            "subject",
            raw.subject.as_deref().is_some_and(|s| !s.is_empty()),
        ),
        ("roots", raw.roots.as_deref().is_some_and(|s| !s.is_empty())),
        ("additionalExtensions", !extensions.is_empty()),
    ];
    let (entry, field) = match (key, issuer) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::invalid(
                format!("{path}.issuer"),
                "the deprecated key and issuer fields are exclusive (use attestors)",
            ));
        }
        (Some(k), None) => {
            if let Some((f, _)) = keyless_only.iter().find(|(_, set)| *set) {
                return Err(PolicyError::invalid(
                    format!("{path}.{f}"),
                    "the deprecated keyless fields need issuer, not key (use attestors)",
                ));
            }
            let entry = RawAttestor {
                keys: Some(RawKeys {
                    public_keys: Some(k.to_owned()),
                    signature_algorithm: None,
                    kms: None,
                    secret: None,
                    rekor: None,
                    ctlog: None,
                }),
                annotations,
                ..RawAttestor::default()
            };
            (entry, "key")
        }
        (None, Some(i)) => {
            let entry = RawAttestor {
                keyless: Some(RawKeyless {
                    rekor: None,
                    ctlog: None,
                    issuer: Some(i.to_owned()),
                    issuer_regexp: None,
                    subject: raw.subject.clone().filter(|s| !s.is_empty()),
                    subject_regexp: None,
                    roots: raw.roots.clone().filter(|s| !s.is_empty()),
                    additional_extensions: extensions,
                }),
                annotations,
                ..RawAttestor::default()
            };
            (entry, "issuer")
        }
        (None, None) => {
            let stray = keyless_only
                .iter()
                .map(|(f, set)| (*f, *set))
                .chain([("annotations", !annotations.is_empty())])
                .find(|(_, set)| *set);
            return match stray {
                // Kyverno ignores these without key or issuer; sigil does not drop a constraint.
                Some((f, _)) => Err(PolicyError::invalid(
                    format!("{path}.{f}"),
                    "this deprecated field needs the deprecated key or issuer (use attestors)",
                )),
                None => Ok(None),
            };
        }
    };
    Ok(Some((
        RawAttestorSet {
            count: None,
            entries: vec![entry],
        },
        field,
    )))
}

const NOTARY_REPOSITORY: &str = "repository is not supported for type notary (Notary signatures \
                                 are referrers of the image in its own repository)";

/// `type: Notary` takes only `certificates` entries (`cert`/`certChain`, optionally
/// `ctlog.tsaCertChain`) and nested sets of them, as Kyverno: `keys` and `keyless` are errors with
/// Kyverno's messages. An alternate `repository` is an error too (Kyverno ignores it; sigil refuses
/// rather than verify somewhere else than the policy says).
fn check_notary_attestors(sets: &[RawAttestorSet], path: &str) -> Result<(), PolicyError> {
    for (i, s) in sets.iter().enumerate() {
        check_notary_set(s, &format!("{path}[{i}]"))?;
    }
    Ok(())
}

fn check_notary_set(set: &RawAttestorSet, path: &str) -> Result<(), PolicyError> {
    for (j, e) in set.entries.iter().enumerate() {
        let p = format!("{path}.entries[{j}]");
        if e.repository.is_some() {
            return Err(PolicyError::invalid(
                format!("{p}.repository"),
                NOTARY_REPOSITORY,
            ));
        }
        if e.keyless.is_some() {
            return Err(PolicyError::invalid(
                format!("{p}.keyless"),
                "Keyless field is not allowed for type notary",
            ));
        }
        if e.keys.is_some() {
            return Err(PolicyError::invalid(
                format!("{p}.keys"),
                "Keys field is not allowed for type notary",
            ));
        }
        if let Some(n) = &e.attestor {
            check_notary_set(n, &format!("{p}.attestor"))?;
        }
    }
    Ok(())
}

fn compile_attestation(raw: &RawAttestation, path: &str) -> Result<Attestation, PolicyError> {
    let type_ = match (&raw.type_, &raw.predicate_type) {
        (Some(t), None) | (None, Some(t)) if !t.is_empty() => t.clone(),
        (Some(_), Some(_)) => {
            return Err(PolicyError::invalid(
                path,
                "only one of type and predicateType may be set",
            ));
        }
        _ => return Err(PolicyError::invalid(format!("{path}.type"), "missing type")),
    };
    let mut attestors = raw
        .attestors
        .iter()
        .enumerate()
        .map(|(i, s)| compile_set(s, &format!("{path}.attestors[{i}]"), false))
        .collect::<Result<Vec<_>, _>>()?;
    if attestors.is_empty() {
        attestors.push(AttestorSet {
            count: None,
            entries: vec![Attestor {
                kind: AttestorKind::Empty,
                annotations: BTreeMap::new(),
                repository: None,
                signature_algorithm: None,
            }],
        });
    }
    let conditions = raw
        .conditions
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = format!("{path}.conditions[{i}]");
            if c.is_array() {
                return Err(PolicyError::invalid(p, "expected an object with any/all"));
            }
            compile_conditions_value(c, &p)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Attestation {
        name: raw.name.clone(),
        type_,
        attestors,
        conditions,
    })
}

fn compile_set(
    raw: &RawAttestorSet,
    path: &str,
    expand_keys: bool,
) -> Result<AttestorSet, PolicyError> {
    if raw.entries.is_empty() {
        return Err(PolicyError::invalid(
            format!("{path}.entries"),
            "at least one entry is required",
        ));
    }
    let count = match raw.count {
        None => None,
        Some(n) if n < 1 => {
            return Err(PolicyError::invalid(
                format!("{path}.count"),
                "must be at least 1",
            ));
        }
        Some(n) => {
            let n = usize::try_from(n)
                .map_err(|_| PolicyError::invalid(format!("{path}.count"), "out of range"))?;
            if n > raw.entries.len() {
                return Err(PolicyError::invalid(
                    format!("{path}.count"),
                    "Count cannot exceed length of entries",
                ));
            }
            Some(n)
        }
    };
    let mut entries = Vec::new();
    for (j, e) in raw.entries.iter().enumerate() {
        entries.extend(compile_attestor(
            e,
            &format!("{path}.entries[{j}]"),
            expand_keys,
        )?);
    }
    Ok(AttestorSet { count, entries })
}

fn compile_attestor(
    raw: &RawAttestor,
    path: &str,
    expand_keys: bool,
) -> Result<Vec<Attestor>, PolicyError> {
    let set_count = [
        raw.keys.is_some(),
        raw.certificates.is_some(),
        raw.keyless.is_some(),
        raw.attestor.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set_count != 1 {
        return Err(PolicyError::invalid(
            path,
            "exactly one of keys, certificates, keyless, or a nested attestor is required",
        ));
    }
    if let Some(a) = &raw.signature_algorithm {
        check_sig_alg(a, &format!("{path}.signatureAlgorithm"))?;
    }
    let make = |kind: AttestorKind| Attestor {
        kind,
        annotations: raw.annotations.clone(),
        repository: raw.repository.clone(),
        signature_algorithm: raw.signature_algorithm.clone(),
    };
    if let Some(k) = &raw.keys {
        let p = format!("{path}.keys");
        let sources = compile_key_sources(k, &p)?;
        if !expand_keys && sources.len() > 1 {
            return Err(PolicyError::invalid(
                format!("{p}.publicKeys"),
                "multiple keys in one entry are only supported for image signatures",
            ));
        }
        let alg = k
            .signature_algorithm
            .clone()
            .unwrap_or_else(|| "sha256".into());
        check_sig_alg(&alg, &format!("{p}.signatureAlgorithm"))?;
        let rekor = compile_rekor(k.rekor.as_ref());
        let ctlog = compile_ctlog(k.ctlog.as_ref());
        // Kyverno's ExpandStaticKeys splits a multi-key entry into one entry per key; unlike
        // Kyverno, sigil keeps the entry's rekor/ctlog/annotations on every split entry.
        return Ok(sources
            .into_iter()
            .map(|key| {
                make(AttestorKind::Keys(KeyAttestor {
                    key,
                    signature_algorithm: alg.clone(),
                    rekor: rekor.clone(),
                    ctlog: ctlog.clone(),
                }))
            })
            .collect());
    }
    if let Some(c) = &raw.certificates {
        if c.cert.is_none() && c.cert_chain.is_none() {
            return Err(PolicyError::invalid(
                format!("{path}.certificates"),
                "cert or certChain is required",
            ));
        }
        return Ok(vec![make(AttestorKind::Certificates(
            CertificateAttestor {
                cert: c.cert.clone(),
                cert_chain: c.cert_chain.clone(),
                rekor: compile_rekor(c.rekor.as_ref()),
                ctlog: compile_ctlog(c.ctlog.as_ref()),
            },
        ))]);
    }
    if let Some(k) = &raw.keyless {
        return Ok(vec![make(AttestorKind::Keyless(compile_keyless(
            k,
            &format!("{path}.keyless"),
        )?))]);
    }
    match &raw.attestor {
        Some(nested) => Ok(vec![make(AttestorKind::Nested(compile_set(
            nested,
            &format!("{path}.attestor"),
            expand_keys,
        )?))]),
        None => Err(PolicyError::invalid(path, "empty attestor")),
    }
}

fn check_sig_alg(a: &str, path: &str) -> Result<(), PolicyError> {
    if matches!(a, "sha224" | "sha256" | "sha384" | "sha512") {
        Ok(())
    } else {
        Err(PolicyError::invalid(
            path,
            format!("invalid signature algorithm provided {a}"),
        ))
    }
}

const PEM_END: &str = "-----END PUBLIC KEY-----";
const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";

/// Splits `publicKeys` as Kyverno's `splitPEM` (after each `END PUBLIC KEY`) and decodes each block.
fn compile_key_sources(k: &RawKeys, path: &str) -> Result<Vec<PublicKeySource>, PolicyError> {
    let mut out = Vec::new();
    if let Some(pk) = &k.public_keys {
        let p = format!("{path}.publicKeys");
        let trimmed = pk.trim();
        if has_variable(trimmed) {
            out.push(PublicKeySource::Variable(trimmed.to_owned()));
        } else if let Some(rest) = trimmed.strip_prefix("k8s://") {
            let (namespace, name) = rest
                .split_once('/')
                .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('/'))
                .ok_or_else(|| PolicyError::invalid(&p, "expected k8s://<namespace>/<secret>"))?;
            out.push(PublicKeySource::K8sSecret {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        } else {
            for (i, block) in trimmed.split_inclusive(PEM_END).enumerate() {
                let block = block.trim();
                if block.is_empty() {
                    continue;
                }
                let der = decode_pem_public_key(block)
                    .map_err(|m| PolicyError::invalid(&p, format!("key {i}: {m}")))?;
                out.push(PublicKeySource::Pem {
                    pem: format!("{block}\n"),
                    der,
                });
            }
            if out.is_empty() {
                return Err(PolicyError::invalid(&p, "no public key found"));
            }
        }
    }
    if let Some(kms) = &k.kms {
        out.push(PublicKeySource::Kms(kms.clone()));
    }
    if let Some(s) = &k.secret {
        out.push(PublicKeySource::K8sSecret {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
        });
    }
    match out.len() {
        0 => Err(PolicyError::invalid(
            path,
            "one of publicKeys, kms or secret is required",
        )),
        1 => Ok(out),
        _ if k.kms.is_some() || k.secret.is_some() => Err(PolicyError::invalid(
            path,
            "only one of publicKeys, kms or secret may be set",
        )),
        _ => Ok(out),
    }
}

fn decode_pem_public_key(block: &str) -> Result<Vec<u8>, String> {
    let body = block
        .strip_prefix(PEM_BEGIN)
        .and_then(|b| b.strip_suffix(PEM_END))
        .ok_or_else(|| "not a PEM PUBLIC KEY block".to_owned())?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("invalid base64: {e}"))?;
    // Minimal DER sanity: a SubjectPublicKeyInfo is a SEQUENCE.
    if der.first() != Some(&0x30) {
        return Err("not a DER SubjectPublicKeyInfo".into());
    }
    Ok(der)
}

fn compile_rekor(r: Option<&RawRekor>) -> RekorConfig {
    let mut cfg = RekorConfig::default();
    if let Some(r) = r {
        if let Some(u) = r.url.as_ref().filter(|u| !u.is_empty()) {
            cfg.url = u.clone();
        }
        cfg.pubkey = r.pubkey.clone();
        cfg.ignore_tlog = r.ignore_tlog.unwrap_or(false);
    }
    cfg
}

fn compile_ctlog(c: Option<&RawCtlog>) -> CtlogConfig {
    c.map(|c| CtlogConfig {
        ignore_sct: c.ignore_sct.unwrap_or(false),
        pubkey: c.pubkey.clone(),
        tsa_cert_chain: c.tsa_cert_chain.clone(),
    })
    .unwrap_or_default()
}

const EXTENSION_NAMES: &[&str] = &[
    "issuer",
    "githubWorkflowTrigger",
    "githubWorkflowSha",
    "githubWorkflowName",
    "githubWorkflowRepository",
    "githubWorkflowRef",
];

fn compile_keyless(k: &RawKeyless, path: &str) -> Result<KeylessAttestor, PolicyError> {
    let has_rekor_url = k
        .rekor
        .as_ref()
        .and_then(|r| r.url.as_ref())
        .is_some_and(|u| !u.is_empty());
    if !has_rekor_url && k.roots.is_none() {
        return Err(PolicyError::invalid(
            path,
            "Either Rekor URL or roots are required",
        ));
    }
    let regex = |s: &str, p: String| {
        Regex::new(s)
            .map(IdentityMatcher::Regex)
            .map_err(|e| PolicyError::invalid(p, format!("invalid regular expression: {e}")))
    };
    let mut issuer = Vec::new();
    if let Some(i) = &k.issuer {
        issuer.push(IdentityMatcher::Wildcard(Wildcard::new(i)));
    }
    if let Some(i) = &k.issuer_regexp {
        issuer.push(regex(i, format!("{path}.issuerRegExp"))?);
    }
    let mut subject = Vec::new();
    if let Some(s) = &k.subject {
        subject.push(IdentityMatcher::Wildcard(Wildcard::new(s)));
    }
    if let Some(s) = &k.subject_regexp {
        subject.push(regex(s, format!("{path}.subjectRegExp"))?);
    }
    for key in k.additional_extensions.keys() {
        let is_oid = !key.is_empty()
            && key
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !is_oid && !EXTENSION_NAMES.contains(&key.as_str()) {
            return Err(PolicyError::invalid(
                format!("{path}.additionalExtensions.{key}"),
                "invalid certificate extension",
            ));
        }
    }
    Ok(KeylessAttestor {
        issuer,
        subject,
        roots: k.roots.clone(),
        additional_extensions: k.additional_extensions.clone(),
        rekor: compile_rekor(k.rekor.as_ref()),
        ctlog: compile_ctlog(k.ctlog.as_ref()),
    })
}
