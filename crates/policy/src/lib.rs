//! Kyverno-compatible image-verification policies (`verifyImages`), I/O-free.
//!
//! - [`parse_policies`] parses a multi-document YAML stream of `kyverno.io/v1`
//!   (and `v2beta1`) `ClusterPolicy`/`Policy` objects into [`CompiledPolicy`]
//!   values; unknown or unsupported fields are errors naming their path.
//! - [`image`] normalises image references and extracts images from Pods and
//!   pod controllers; [`matching`] evaluates `match`/`exclude` and autogen.
//! - [`attestor::evaluate_attestor_sets`] applies `count` semantics over
//!   caller-supplied per-entry outcomes; [`conditions`] evaluates Kyverno
//!   conditions with `{{ }}` JMESPath variables, with Kyverno's function pack
//!   ([`functions`], including `random` and `x509_decode`).
//! - Rule `context` entries ([`context`]): `variable` entries evaluate offline, `imageRegistry`
//!   entries with data the caller fetches; the `verifyImages` body is recompiled after variable
//!   substitution ([`CompiledRule::substituted_verify_image`]); `spec.applyRules` and
//!   `spec.validationFailureActionOverrides` (namespaces form) are part of [`CompiledPolicy`].
//! - Kyverno's `images` variable (`images.containers.<name>.registry` ...) is built by
//!   [`CompiledRule::images_variable`] (built-in or custom extractors).
//! - Custom `imageExtractors` (with `jmesPath` transforms) run through
//!   [`CompiledRule::extract_images`]; deprecated `verifyImages` fields (`key`,
//!   `issuer`, `subject`, `roots`, `annotations`) are converted to an attestor
//!   set as Kyverno's `Convert` does.

pub mod attestor;
pub mod conditions;
pub mod context;
pub mod error;
pub mod functions;
pub mod image;
pub mod matching;
pub mod model;
pub mod raw;
mod regen;
pub mod wildcard;
mod x509;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use attestor::{AttestorEvaluation, EntryOutcome, evaluate_attestor_sets};
pub use error::{EvalError, PolicyError};
pub use model::{CompiledPolicy, CompiledRule, ImageMatch, VerifyImage};

/// Parsed YAML stream: compiled policies plus the documents that are not Kyverno policies.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// Compiled policies in stream order.
    pub policies: Vec<CompiledPolicy>,
    /// `(document index, apiVersion, kind)` of skipped non-Kyverno documents.
    pub skipped: Vec<(usize, String, String)>,
}

/// Parses and compiles every Kyverno policy in a multi-document YAML stream.
///
/// Documents whose `apiVersion` is not in the `kyverno.io` group (e.g. a
/// Namespace or ConfigMap next to the policy) are skipped and listed in
/// [`PolicySet::skipped`]; empty documents are ignored.
pub fn parse_policies(yaml: &str) -> Result<PolicySet, PolicyError> {
    let mut set = PolicySet {
        policies: Vec::new(),
        skipped: Vec::new(),
    };
    for (document, de) in yaml_serde::Deserializer::from_str(yaml).enumerate() {
        let value =
            <Value as serde::Deserialize>::deserialize(de).map_err(|e| PolicyError::Yaml {
                document,
                message: e.to_string(),
            })?;
        if value.is_null() {
            continue;
        }
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match api_version.as_str() {
            "kyverno.io/v1" | "kyverno.io/v2beta1" => {}
            v if v.starts_with("kyverno.io/") => {
                return Err(PolicyError::Schema {
                    document,
                    path: "apiVersion".into(),
                    message: format!("unsupported apiVersion `{v}`"),
                });
            }
            _ => {
                set.skipped.push((document, api_version, kind));
                continue;
            }
        }
        let with_doc = |e: PolicyError| match e {
            PolicyError::Invalid { path, message } | PolicyError::Schema { path, message, .. } => {
                PolicyError::Schema {
                    document,
                    path,
                    message,
                }
            }
            other => other,
        };
        let raw: raw::RawPolicy = from_value_at(&value, "").map_err(with_doc)?;
        set.policies
            .push(model::compile_policy(&raw, &value).map_err(with_doc)?);
    }
    Ok(set)
}

/// Deserialises `value` into `T`, reporting errors with their full path (prefixed by `prefix`).
pub(crate) fn from_value_at<T: DeserializeOwned>(
    value: &Value,
    prefix: &str,
) -> Result<T, PolicyError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix.is_empty(), inner.as_str()) {
            (true, p) => p.to_owned(),
            (false, ".") => prefix.to_owned(),
            (false, p) if p.starts_with('[') => format!("{prefix}{p}"),
            (false, p) => format!("{prefix}.{p}"),
        };
        PolicyError::Invalid {
            path,
            message: e.inner().to_string(),
        }
    })
}
