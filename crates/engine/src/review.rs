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
    /// SHA-256 (hex) of the policy document as read: part of every cache key.
    pub content_hash: String,
}

impl LoadedPolicy {
    /// Wraps a compiled policy; `document` is the text hashed into the cache key.
    pub fn new(policy: CompiledPolicy, source: PathBuf, document: &str) -> Self {
        Self {
            policy,
            source,
            content_hash: hex(&Sha256::digest(document.as_bytes())),
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
    /// Failed under `Audit` (reported, not blocking).
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

impl Review {
    pub(crate) fn not_implemented(what: &str) -> Self {
        Self {
            blocked: true,
            message: Some(format!("image verification engine: {what} not implemented")),
            ..Self::default()
        }
    }
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
