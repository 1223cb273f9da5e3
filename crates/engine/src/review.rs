//! The request and result types of a review, and policy loading.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use sigil_policy::CompiledPolicy;
use sigil_policy::matching::Operation;

use crate::error::EngineError;

/// The annotation recording per-image outcomes (`{"<image>":"pass|fail|skip"}`), as Kyverno's
/// `kyverno.io/verify-images`.
pub const VERIFY_IMAGES_ANNOTATION: &str = "sigil.dev/verify-images";

/// A compiled policy with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The policy.
    pub policy: CompiledPolicy,
    /// The file it was read from.
    pub source: PathBuf,
    /// SHA-256 (hex) over the policy's identity (kind, namespace, name) and the document it was read
    /// from: part of every cache key, so an edit invalidates the policy's cached decisions and two
    /// policies of one file never share them.
    pub content_hash: String,
}

impl LoadedPolicy {
    /// Wraps a compiled policy; `document` is the text hashed (with the policy's identity) into the
    /// cache key.
    pub fn new(policy: CompiledPolicy, source: PathBuf, document: &str) -> Self {
        let mut h = Sha256::new();
        for part in [
            format!("{:?}", policy.kind).as_str(),
            policy.namespace.as_deref().unwrap_or(""),
            policy.name.as_str(),
        ] {
            // Length-prefixed so the parts cannot run into each other.
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.update(document.as_bytes());
        Self {
            policy,
            source,
            content_hash: hex(&h.finalize()),
        }
    }
}

/// One resource to review.
#[derive(Debug, Clone)]
pub struct ReviewRequest {
    /// The object (`request.object`).
    pub resource: Value,
    /// The previous object for UPDATE (`request.oldObject`).
    pub old_resource: Option<Value>,
    /// Namespace of the request.
    pub namespace: String,
    /// Operation.
    pub operation: Operation,
    /// Time budget for the review; `None` uses the engine's default.
    pub timeout: Option<Duration>,
    /// Dry run (no side effects; decisions may still be cached).
    pub dry_run: bool,
}

/// Result of a rule (or of one image under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// Verified.
    Pass,
    /// Verification failed.
    Fail,
    /// Not applicable / skipped.
    Skip,
    /// Could not decide (registry unreachable, deadline, bad policy input).
    Error,
    /// Failed under `Audit`, for callers that report audit failures as warnings (Kyverno's
    /// `--audit-warn`). The engine itself reports audit failures as [`RuleStatus::Fail`] with
    /// [`RuleResult::enforce`] false.
    Warn,
}

/// One step of an image's trace: rule → attestor entry → check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// Where, e.g. `spec.rules[0].verifyImages[0].attestors[0].entries[1]`.
    pub path: String,
    /// Outcome.
    pub status: RuleStatus,
    /// The exact check that failed, or what verified.
    pub detail: String,
}

/// One image under one rule.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    /// The image string as written in the resource.
    pub image: String,
    /// JSON pointer of the image in the resource.
    pub pointer: String,
    /// The digest verified (resolved from the tag when the image has none).
    pub digest: Option<String>,
    /// Outcome.
    pub status: RuleStatus,
    /// Why (for fail/error/skip).
    pub message: String,
    /// Answered from the decision cache.
    pub cached: bool,
    /// Trace.
    pub trace: Vec<TraceStep>,
}

/// One rule of one policy applied to the resource.
#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    /// Policy name (`namespace/name` for a namespaced `Policy`).
    pub policy: String,
    /// Rule name (`autogen-<rule>` / `autogen-cronjob-<rule>` when applied to a controller).
    pub rule: String,
    /// Outcome (worst of its images).
    pub status: RuleStatus,
    /// Summary message.
    pub message: String,
    /// Whether a failure of this rule blocks (`Enforce`).
    pub enforce: bool,
    /// Per image.
    pub images: Vec<ImageResult>,
}

/// The outcome of a review.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Review {
    /// Per applicable rule.
    pub results: Vec<RuleResult>,
    /// Whether admission must be denied.
    pub blocked: bool,
    /// Deny message naming each failing image and reason.
    pub message: Option<String>,
    /// Warnings (audit failures, registry failures admitted by policy).
    pub warnings: Vec<String>,
    /// RFC 6902 JSON patch: the annotation first, then `image` digest pins.
    pub patch: Vec<Value>,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn policy_files(path: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let read = |source| EngineError::Read {
        path: path.to_owned(),
        source,
    };
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read)? {
        let p = entry.map_err(read)?.path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if p.is_file() && matches!(ext, "yaml" | "yml" | "json") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn load_policy_files(paths: &[PathBuf]) -> Result<Vec<LoadedPolicy>, EngineError> {
    let mut out: Vec<LoadedPolicy> = Vec::new();
    for path in paths {
        for file in policy_files(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| EngineError::Read {
                path: file.clone(),
                source,
            })?;
            let set =
                sigil_policy::parse_policies(&text).map_err(|source| EngineError::Policy {
                    path: file.clone(),
                    source,
                })?;
            for policy in set.policies {
                if let Some(first) = out.iter().find(|p| {
                    p.policy.kind == policy.kind
                        && p.policy.namespace == policy.namespace
                        && p.policy.name == policy.name
                }) {
                    return Err(EngineError::DuplicatePolicy {
                        name: policy.name.clone(),
                        first: first.source.clone(),
                        second: file,
                    });
                }
                // The hash covers the whole file: any edit invalidates that file's cached decisions.
                out.push(LoadedPolicy::new(policy, file.clone(), &text));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TWO_POLICIES: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: first}
spec:
  rules:
    - name: check
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - imageReferences: ["*"]
          attestors: [{entries: [{keys: {publicKeys: "{{ a }}"}}]}]
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: second}
spec:
  rules:
    - name: check
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - imageReferences: ["*"]
          attestors: [{entries: [{keys: {publicKeys: "{{ b }}"}}]}]
"#;

    #[test]
    fn policies_of_one_document_get_distinct_cache_hashes() {
        let set = sigil_policy::parse_policies(TWO_POLICIES).unwrap();
        let [a, b] = [0, 1]
            .map(|i| LoadedPolicy::new(set.policies[i].clone(), "p.yaml".into(), TWO_POLICIES));
        assert_ne!(a.content_hash, b.content_hash);
        let edited = TWO_POLICIES.replace("{{ a }}", "{{ c }}");
        let a2 = LoadedPolicy::new(set.policies[0].clone(), "p.yaml".into(), &edited);
        assert_ne!(
            a.content_hash, a2.content_hash,
            "an edit must change the hash"
        );
        let again = LoadedPolicy::new(set.policies[0].clone(), "p.yaml".into(), TWO_POLICIES);
        assert_eq!(a.content_hash, again.content_hash);
    }
}
