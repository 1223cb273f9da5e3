//! Raw serde model of `kyverno.io/v1` (and `v2beta1`) `ClusterPolicy`/`Policy`.
//!
//! Every struct denies unknown fields so that unsupported fields are reported
//! with their path instead of being silently ignored. Fields that only exist
//! in Kyverno's schema but that sigil does not implement are still declared
//! here (so the error can say "not supported" rather than "unknown") and are
//! rejected during compilation.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Top-level policy document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPolicy {
    /// `kyverno.io/v1` or `kyverno.io/v2beta1`.
    pub api_version: String,
    /// `ClusterPolicy` or `Policy`.
    pub kind: String,
    /// Object metadata.
    pub metadata: RawMetadata,
    /// Policy spec.
    pub spec: RawSpec,
    /// Status (ignored; present in exported objects).
    #[serde(default)]
    pub status: Option<Value>,
}

/// Object metadata (only the parts the engine uses are typed; the rest is accepted).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawMetadata {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace (for `Policy`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSpec {
    /// Rules.
    pub rules: Vec<RawRule>,
    /// Deprecated spec-level failure action.
    #[serde(default)]
    pub validation_failure_action: Option<String>,
    /// Not supported.
    #[serde(default)]
    pub validation_failure_action_overrides: Option<Value>,
    /// Background scanning.
    #[serde(default)]
    pub background: Option<bool>,
    /// Admission processing.
    #[serde(default)]
    pub admission: Option<bool>,
    /// Deprecated webhook failure policy.
    #[serde(default)]
    pub failure_policy: Option<String>,
    /// Deprecated webhook timeout.
    #[serde(default)]
    pub webhook_timeout_seconds: Option<i64>,
    /// Webhook configuration.
    #[serde(default)]
    pub webhook_configuration: Option<RawWebhookConfiguration>,
    /// Accepted, no effect for verifyImages.
    #[serde(default)]
    pub schema_validation: Option<bool>,
    /// Accepted, no effect for verifyImages.
    #[serde(default)]
    pub use_server_side_apply: Option<bool>,
    /// Not supported.
    #[serde(default)]
    pub apply_rules: Option<String>,
    /// Not supported.
    #[serde(default)]
    pub mutate_existing_on_policy_update: Option<bool>,
    /// Not supported.
    #[serde(default)]
    pub generate_existing: Option<bool>,
    /// Not supported.
    #[serde(default)]
    pub generate_existing_on_policy_update: Option<bool>,
    /// Emit warnings (accepted).
    #[serde(default)]
    pub emit_warning: Option<bool>,
}

/// `spec.webhookConfiguration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWebhookConfiguration {
    /// `Fail` or `Ignore`.
    #[serde(default)]
    pub failure_policy: Option<String>,
    /// Timeout in seconds.
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    /// Not supported.
    #[serde(default)]
    pub match_conditions: Option<Value>,
}

/// `spec.rules[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRule {
    /// Rule name.
    pub name: String,
    /// Match block.
    #[serde(rename = "match")]
    pub match_: RawMatch,
    /// Exclude block.
    #[serde(default)]
    pub exclude: Option<RawMatch>,
    /// Context entries (kept raw; resolved by the wiring layer).
    #[serde(default)]
    pub context: Vec<Value>,
    /// Preconditions (`{any, all}` or a legacy list).
    #[serde(default)]
    pub preconditions: Option<Value>,
    /// Custom image extractors, by kind.
    #[serde(default)]
    pub image_extractors: BTreeMap<String, Vec<RawImageExtractor>>,
    /// Image verification entries.
    #[serde(default)]
    pub verify_images: Vec<RawVerifyImage>,
    /// Accepted; has no effect on admission evaluation.
    #[serde(default)]
    pub skip_background_requests: Option<bool>,
    /// Not supported (sigil only implements verifyImages rules).
    #[serde(default)]
    pub validate: Option<Value>,
    /// Not supported.
    #[serde(default)]
    pub mutate: Option<Value>,
    /// Not supported.
    #[serde(default)]
    pub generate: Option<Value>,
    /// Not supported.
    #[serde(default)]
    pub cel_preconditions: Option<Value>,
}

/// `imageExtractors.<Kind>[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawImageExtractor {
    /// JSON-pointer-like path, `*` iterates arrays/maps.
    pub path: String,
    /// Field holding the image (default `image`; only with `*` paths in Kyverno).
    #[serde(default)]
    pub value: Option<String>,
    /// Field holding the name.
    #[serde(default)]
    pub name: Option<String>,
    /// Key field for maps.
    #[serde(default)]
    pub key: Option<String>,
    /// JMESPath applied to the extracted value.
    #[serde(default)]
    pub jmes_path: Option<String>,
}

/// `match` / `exclude`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMatch {
    /// Any of these filters.
    #[serde(default)]
    pub any: Vec<RawResourceFilter>,
    /// All of these filters.
    #[serde(default)]
    pub all: Vec<RawResourceFilter>,
    /// Legacy single resource description.
    #[serde(default)]
    pub resources: Option<RawResourceDescription>,
    /// Not supported.
    #[serde(default)]
    pub subjects: Option<Value>,
    /// Not supported.
    #[serde(default)]
    pub roles: Option<Value>,
    /// Not supported.
    #[serde(default)]
    pub cluster_roles: Option<Value>,
}

/// One element of `match.any` / `match.all`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResourceFilter {
    /// Resource description.
    #[serde(default)]
    pub resources: Option<RawResourceDescription>,
    /// Not supported.
    #[serde(default)]
    pub subjects: Option<Value>,
    /// Not supported.
    #[serde(default)]
    pub roles: Option<Value>,
    /// Not supported.
    #[serde(default)]
    pub cluster_roles: Option<Value>,
}

/// `resources` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResourceDescription {
    /// Kinds (`Kind`, `Version/Kind`, `Group/Version/Kind`, optional `/subresource`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Deprecated single name.
    #[serde(default)]
    pub name: Option<String>,
    /// Names (wildcards).
    #[serde(default)]
    pub names: Vec<String>,
    /// Namespaces (wildcards).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Annotations (wildcards on keys and values).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Label selector.
    #[serde(default)]
    pub selector: Option<RawLabelSelector>,
    /// Not supported (needs namespace labels).
    #[serde(default)]
    pub namespace_selector: Option<Value>,
    /// Admission operations.
    #[serde(default)]
    pub operations: Vec<String>,
}

/// Kubernetes label selector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLabelSelector {
    /// Exact (wildcard) label matches.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<RawLabelSelectorRequirement>,
}

/// `matchExpressions[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// Values.
    #[serde(default)]
    pub values: Vec<String>,
}

/// `verifyImages[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVerifyImage {
    /// `Cosign`, `SigstoreBundle`, `Notary`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Deprecated single image pattern.
    #[serde(default)]
    pub image: Option<String>,
    /// Image patterns.
    #[serde(default)]
    pub image_references: Vec<String>,
    /// Image patterns to skip.
    #[serde(default)]
    pub skip_image_references: Vec<String>,
    /// Deprecated.
    #[serde(default)]
    pub key: Option<String>,
    /// Deprecated.
    #[serde(default)]
    pub roots: Option<String>,
    /// Deprecated.
    #[serde(default)]
    pub subject: Option<String>,
    /// Deprecated.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Deprecated.
    #[serde(default)]
    pub additional_extensions: Option<Value>,
    /// Deprecated.
    #[serde(default)]
    pub annotations: Option<Value>,
    /// Attestor sets.
    #[serde(default)]
    pub attestors: Vec<RawAttestorSet>,
    /// Attestations.
    #[serde(default)]
    pub attestations: Vec<RawAttestation>,
    /// Alternate signature repository.
    #[serde(default)]
    pub repository: Option<String>,
    /// OCI 1.1 referrers for cosign.
    #[serde(default, rename = "cosignOCI11")]
    pub cosign_oci11: Option<bool>,
    /// Pin image digests.
    #[serde(default)]
    pub mutate_digest: Option<bool>,
    /// Require digests.
    #[serde(default)]
    pub verify_digest: Option<bool>,
    /// Require verification annotation.
    #[serde(default)]
    pub required: Option<bool>,
    /// Use the verification cache.
    #[serde(default)]
    pub use_cache: Option<bool>,
    /// `Audit` / `Enforce`.
    #[serde(default)]
    pub failure_action: Option<String>,
    /// Cross-attestation checks.
    #[serde(default)]
    pub validate: Option<RawImageValidate>,
    /// Registry credentials.
    #[serde(default)]
    pub image_registry_credentials: Option<RawRegistryCredentials>,
}

/// `imageRegistryCredentials`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRegistryCredentials {
    /// Allow plain HTTP.
    #[serde(default)]
    pub allow_insecure_registry: Option<bool>,
    /// Credential providers.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Secret names.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// `verifyImages[].validate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawImageValidate {
    /// Message on failure.
    #[serde(default)]
    pub message: Option<String>,
    /// Deny block.
    #[serde(default)]
    pub deny: Option<RawDeny>,
}

/// `deny`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDeny {
    /// `{any, all}` or a legacy list.
    #[serde(default)]
    pub conditions: Option<Value>,
}

/// `attestors[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAttestorSet {
    /// Required count (unset or 0 = all).
    #[serde(default)]
    pub count: Option<i64>,
    /// Entries.
    #[serde(default)]
    pub entries: Vec<RawAttestor>,
}

/// `entries[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAttestor {
    /// Public keys.
    #[serde(default)]
    pub keys: Option<RawKeys>,
    /// Certificates.
    #[serde(default)]
    pub certificates: Option<RawCertificates>,
    /// Keyless.
    #[serde(default)]
    pub keyless: Option<RawKeyless>,
    /// Nested attestor set.
    #[serde(default)]
    pub attestor: Option<Box<RawAttestorSet>>,
    /// Required payload annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Alternate signature repository.
    #[serde(default)]
    pub repository: Option<String>,
    /// Signature digest algorithm.
    #[serde(default)]
    pub signature_algorithm: Option<String>,
}

/// `keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKeys {
    /// PEM keys, a variable, or `k8s://ns/name`.
    #[serde(default)]
    pub public_keys: Option<String>,
    /// Deprecated signature algorithm.
    #[serde(default)]
    pub signature_algorithm: Option<String>,
    /// KMS URI.
    #[serde(default)]
    pub kms: Option<String>,
    /// Secret reference.
    #[serde(default)]
    pub secret: Option<RawSecretRef>,
    /// Rekor options.
    #[serde(default)]
    pub rekor: Option<RawRekor>,
    /// CT log options.
    #[serde(default)]
    pub ctlog: Option<RawCtlog>,
}

/// `secret`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSecretRef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// `certificates`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCertificates {
    /// Certificate (PEM, base64 PEM or variable).
    #[serde(default)]
    pub cert: Option<String>,
    /// Chain (PEM).
    #[serde(default)]
    pub cert_chain: Option<String>,
    /// Rekor options.
    #[serde(default)]
    pub rekor: Option<RawRekor>,
    /// CT log options.
    #[serde(default)]
    pub ctlog: Option<RawCtlog>,
}

/// `keyless`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKeyless {
    /// Rekor options.
    #[serde(default)]
    pub rekor: Option<RawRekor>,
    /// CT log options.
    #[serde(default)]
    pub ctlog: Option<RawCtlog>,
    /// Issuer (wildcard).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Issuer regex.
    #[serde(default, rename = "issuerRegExp")]
    pub issuer_regexp: Option<String>,
    /// Subject (wildcard).
    #[serde(default)]
    pub subject: Option<String>,
    /// Subject regex.
    #[serde(default, rename = "subjectRegExp")]
    pub subject_regexp: Option<String>,
    /// Root certificates (PEM).
    #[serde(default)]
    pub roots: Option<String>,
    /// Certificate extensions.
    #[serde(default)]
    pub additional_extensions: BTreeMap<String, String>,
}

/// `rekor`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRekor {
    /// URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Rekor public key (PEM).
    #[serde(default)]
    pub pubkey: Option<String>,
    /// Skip tlog verification.
    #[serde(default)]
    pub ignore_tlog: Option<bool>,
}

/// `ctlog`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCtlog {
    /// Skip SCT verification.
    #[serde(default, rename = "ignoreSCT")]
    pub ignore_sct: Option<bool>,
    /// CT log public key (PEM).
    #[serde(default)]
    pub pubkey: Option<String>,
    /// TSA certificate chain (PEM).
    #[serde(default)]
    pub tsa_cert_chain: Option<String>,
}

/// `attestations[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAttestation {
    /// Variable name for `validate.deny`.
    #[serde(default)]
    pub name: Option<String>,
    /// Statement/referrer type.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Deprecated spelling of `type`.
    #[serde(default)]
    pub predicate_type: Option<String>,
    /// Attestor sets.
    #[serde(default)]
    pub attestors: Vec<RawAttestorSet>,
    /// Conditions (list of `{any, all}`).
    #[serde(default)]
    pub conditions: Vec<Value>,
}

/// A single condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCondition {
    /// Key (usually a `{{ }}` variable).
    #[serde(default)]
    pub key: Value,
    /// Operator.
    pub operator: String,
    /// Value.
    #[serde(default)]
    pub value: Value,
    /// Message on failure.
    #[serde(default)]
    pub message: Option<String>,
}

/// `{any, all}` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAnyAll {
    /// Any of these.
    #[serde(default)]
    pub any: Vec<RawCondition>,
    /// All of these.
    #[serde(default)]
    pub all: Vec<RawCondition>,
}
