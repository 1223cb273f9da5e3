//! Compiled attestor trees and the pure `count` evaluation over them.
//!
//! Semantics (Kyverno 1.13 `verifyAttestors` / `RequiredCount`): sets in a
//! list are AND-ed, evaluation stops at the first failing set; inside a set,
//! `count` unset (or 0) requires every entry, `count: N` at least N; entries
//! are tried in order and evaluation of a set stops as soon as enough entries
//! verified. A nested `attestor` set counts as one entry of its parent.

use std::collections::BTreeMap;

use regex::Regex;

/// A compiled attestor set.
#[derive(Debug, Clone)]
pub struct AttestorSet {
    /// The `count` as written (None or 0 = all).
    pub count: Option<usize>,
    /// Entries (PEM key lists already split into one entry per key).
    pub entries: Vec<Attestor>,
}

impl AttestorSet {
    /// Number of entries that must verify.
    pub fn required_count(&self) -> usize {
        match self.count {
            None | Some(0) => self.entries.len(),
            Some(n) => n,
        }
    }
}

/// One attestor entry.
#[derive(Debug, Clone)]
pub struct Attestor {
    /// What verifies this entry.
    pub kind: AttestorKind,
    /// Payload annotations that must be present.
    pub annotations: BTreeMap<String, String>,
    /// Alternate signature repository.
    pub repository: Option<String>,
    /// Signature digest algorithm (attestor-level, 1.13+).
    pub signature_algorithm: Option<String>,
}

/// The verification material of an entry.
#[derive(Debug, Clone)]
pub enum AttestorKind {
    /// Static key(s).
    Keys(KeyAttestor),
    /// Certificates.
    Certificates(CertificateAttestor),
    /// Keyless (Fulcio) identities.
    Keyless(KeylessAttestor),
    /// Nested set.
    Nested(AttestorSet),
    /// The empty entry Kyverno inserts when an attestation has no attestors
    /// (default roots, no identity constraint).
    Empty,
}

/// Where a public key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeySource {
    /// One PEM `PUBLIC KEY` block, with its DER bytes.
    Pem {
        /// PEM text of this single key.
        pem: String,
        /// Decoded DER (SubjectPublicKeyInfo).
        der: Vec<u8>,
    },
    /// A `{{ }}` variable, resolved at evaluation time.
    Variable(String),
    /// `k8s://<namespace>/<secret>` (data key `cosign.pub`).
    K8sSecret {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// Cosign KMS URI.
    Kms(String),
}

/// Rekor settings (defaults as Kyverno: public Rekor, tlog required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekorConfig {
    /// Rekor URL.
    pub url: String,
    /// Custom Rekor public key (PEM).
    pub pubkey: Option<String>,
    /// Skip tlog verification.
    pub ignore_tlog: bool,
}

impl Default for RekorConfig {
    fn default() -> Self {
        Self {
            url: "https://rekor.sigstore.dev".into(),
            pubkey: None,
            ignore_tlog: false,
        }
    }
}

/// CT log settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtlogConfig {
    /// Skip SCT verification.
    pub ignore_sct: bool,
    /// Custom CT log key (PEM).
    pub pubkey: Option<String>,
    /// TSA certificate chain (PEM).
    pub tsa_cert_chain: Option<String>,
}

/// `keys` attestor (one key per entry after splitting).
#[derive(Debug, Clone)]
pub struct KeyAttestor {
    /// The key.
    pub key: PublicKeySource,
    /// Digest algorithm (`keys.signatureAlgorithm`, default `sha256`).
    pub signature_algorithm: String,
    /// Rekor settings.
    pub rekor: RekorConfig,
    /// CT log settings.
    pub ctlog: CtlogConfig,
}

/// `certificates` attestor.
#[derive(Debug, Clone)]
pub struct CertificateAttestor {
    /// Certificate (PEM, base64 PEM or variable).
    pub cert: Option<String>,
    /// Chain (PEM).
    pub cert_chain: Option<String>,
    /// Rekor settings.
    pub rekor: RekorConfig,
    /// CT log settings.
    pub ctlog: CtlogConfig,
}

/// An identity matcher: wildcard (`subject`/`issuer`) or regex (`*RegExp`).
#[derive(Debug, Clone)]
pub enum IdentityMatcher {
    /// Kyverno wildcard.
    Wildcard(crate::wildcard::Wildcard),
    /// Go-compatible regular expression (unanchored, like Go's `MatchString`).
    Regex(Regex),
}

impl IdentityMatcher {
    /// Matches a value.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Self::Wildcard(w) => w.matches(s),
            Self::Regex(r) => r.is_match(s),
        }
    }
}

/// `keyless` attestor.
#[derive(Debug, Clone)]
pub struct KeylessAttestor {
    /// Issuer constraints (`issuer`, `issuerRegExp`; all given must match).
    pub issuer: Vec<IdentityMatcher>,
    /// Subject constraints (matched against any SAN).
    pub subject: Vec<IdentityMatcher>,
    /// Custom roots (PEM).
    pub roots: Option<String>,
    /// Required certificate extensions (canonical names or OIDs).
    pub additional_extensions: BTreeMap<String, String>,
    /// Rekor settings.
    pub rekor: RekorConfig,
    /// CT log settings.
    pub ctlog: CtlogConfig,
}

/// Outcome of verifying one leaf entry, supplied by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    /// Verified.
    Verified,
    /// Failed with a reason.
    Failed(String),
}

/// One step of the evaluation trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Path of the entry, e.g. `attestors[0].entries[2].attestor.entries[1]`.
    pub path: String,
    /// Outcome (for a nested set: whether its count was satisfied).
    pub outcome: EntryOutcome,
}

/// Result of evaluating a list of attestor sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestorEvaluation {
    /// Whether every set was satisfied.
    pub passed: bool,
    /// Evaluated entries, in order (entries after an early stop are absent).
    pub trace: Vec<TraceEntry>,
    /// Why evaluation failed, if it did.
    pub failure: Option<String>,
}

/// Evaluates `sets` (AND) with `verify` supplying the outcome of each leaf entry.
///
/// `base` prefixes trace paths (e.g. `attestors` or `attestations[0].attestors`).
pub fn evaluate_attestor_sets<F>(
    base: &str,
    sets: &[AttestorSet],
    mut verify: F,
) -> AttestorEvaluation
where
    F: FnMut(&str, &Attestor) -> EntryOutcome,
{
    let mut trace = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        let path = format!("{base}[{i}]");
        if let Err(reason) = evaluate_set(&path, set, &mut verify, &mut trace) {
            return AttestorEvaluation {
                passed: false,
                trace,
                failure: Some(reason),
            };
        }
    }
    AttestorEvaluation {
        passed: true,
        trace,
        failure: None,
    }
}

fn evaluate_set<F>(
    path: &str,
    set: &AttestorSet,
    verify: &mut F,
    trace: &mut Vec<TraceEntry>,
) -> Result<(), String>
where
    F: FnMut(&str, &Attestor) -> EntryOutcome,
{
    let required = set.required_count();
    let mut verified = 0usize;
    let mut errors = Vec::new();
    for (j, entry) in set.entries.iter().enumerate() {
        if verified >= required {
            break;
        }
        let entry_path = format!("{path}.entries[{j}]");
        let outcome = match &entry.kind {
            AttestorKind::Nested(nested) => {
                let nested_path = format!("{entry_path}.attestor");
                match evaluate_set(&nested_path, nested, verify, trace) {
                    Ok(()) => EntryOutcome::Verified,
                    Err(e) => EntryOutcome::Failed(e),
                }
            }
            _ => verify(&entry_path, entry),
        };
        if let EntryOutcome::Failed(reason) = &outcome {
            errors.push(format!("{entry_path}: {reason}"));
        } else {
            verified += 1;
        }
        trace.push(TraceEntry {
            path: entry_path,
            outcome,
        });
    }
    if verified >= required {
        Ok(())
    } else {
        Err(format!(
            "{path}: {verified} of required {required} attestors verified ({})",
            errors.join("; ")
        ))
    }
}
