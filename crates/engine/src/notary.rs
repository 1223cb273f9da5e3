//! `type: Notary` `verifyImages` entries, mapped as Kyverno does (`pkg/notary`), through
//! [`sigil_notary::policy`]:
//!
//! - **signatures**: every `certificates` entry becomes a [`NotaryAttestor`] (`cert` + `certChain` are
//!   the `ca` trust anchors; strict level, any identity) and is verified with
//!   [`verify_for_policy`] against the image **digest**; the signed target descriptor must name that
//!   digest. Count semantics and nested sets are [`sigil_policy::evaluate_attestor_sets`]'s, as for
//!   Cosign. An entry's `annotations` must all be present in the signed target's annotations (notation
//!   `--user-metadata`; Kyverno ignores them, sigil does not silently drop a constraint).
//! - **attestations**: `attestations[].type` is the referrer `artifactType`; every referrer of that
//!   type is verified by its own Notary signature with the entry ([`verify_attestations_for_policy`];
//!   the empty entry Kyverno inserts when `attestors` is omitted skips that signature check, as
//!   Kyverno does, and the trace says so; a written `certificates` entry whose `cert` and
//!   `certChain` are empty is an error, not a skip). The single layer's JSON is
//!   the predicate: `conditions` see its fields at the top level plus `predicate` and `type` (=
//!   `predicateType`, the artifact type); every verified attestation must pass. The first predicate
//!   is what `validate.deny` sees under the attestation's `name`.
//! - `ctlog.tsaCertChain` on a Notary entry is the `tsa` trust store, as Kyverno's
//!   ImageValidatingPolicy `tsaCerts` (Kyverno's ClusterPolicy path ignores it): signatures must then
//!   carry an RFC 3161 timestamp verifying against it (notation's rule when a `tsa` store is
//!   configured), which also lets a signature outlive its certificate. `rekor`, `ctlog.ignoreSCT`/`pubkey` and `signatureAlgorithm` do not apply to Notary
//!   and are ignored, as Kyverno does; `keys`, `keyless` and `repository` are rejected when the policy
//!   is compiled; a `{{ }}` variable in a certificate is an error.
//!
//! Entries are evaluated lazily in dependency order: a pass of the count evaluation assumes unknown
//! entries verify, the entries it needed are verified concurrently, and the evaluation is repeated
//! until every entry it looks at is known — so no more entries are verified than Kyverno's in-order
//! evaluation would (except other sets after a failing one), and independent entries run in parallel.
//! Each check is memoised for the review (same attestor, same digest: one verification) and retried
//! on registry 429/5xx/connection errors within the review deadline; an unreachable registry is an
//! error, never a pass.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use sigil_artifacts::ArtifactError;
use sigil_client::retry::{is_retryable, retry_when};
use sigil_notary::NotaryError;
use sigil_notary::policy::{
    NotaryAttestor, NotaryPolicyError, VerifiedAttestation, VerifiedNotarySignature,
    verify_attestations_for_policy, verify_for_policy,
};
use sigil_oci::{Digest, Reference};
use sigil_policy::attestor::{Attestor, AttestorKind, AttestorSet, CertificateAttestor};
use sigil_policy::conditions::evaluate_all;
use sigil_policy::model::Attestation;
use sigil_policy::{AttestorEvaluation, EntryOutcome, VerifyImage, evaluate_attestor_sets};

use crate::cache::{Decision, ErrorKind};
use crate::review::{RuleStatus, TraceStep};
use crate::verify::{VerifyEnv, conclude, finish_failed, has_variable, step};

/// What a memoised Notary check verified.
#[derive(Debug, Clone)]
pub(crate) enum Verified {
    /// An image signature.
    Signature(Box<VerifiedNotarySignature>),
    /// The attestations of one artifact type.
    Attestations(Arc<Vec<VerifiedAttestation>>),
}

/// Why an entry did not verify.
#[derive(Debug, Clone)]
pub(crate) enum Problem {
    /// The signatures or attestations do not satisfy the entry.
    Fail(String),
    /// The entry cannot be evaluated (bad trust material, unusable registry answer).
    Error(String),
    /// The registry could not be reached (after retries, within the deadline).
    Registry(String),
}

impl Problem {
    fn message(&self) -> &str {
        match self {
            Self::Fail(m) | Self::Error(m) | Self::Registry(m) => m,
        }
    }
}

/// The outcome of one Notary check, shared through the review's memo.
pub(crate) type Checked = Result<Verified, Problem>;

/// A verified entry: a description and, for attestations, the first predicate.
type EntryPass = (String, Option<Value>);

/// What a Notary library error means for the decision.
fn problem(e: &NotaryPolicyError) -> Problem {
    let text = e.to_string();
    match e {
        NotaryPolicyError::NoSignatures(_) | NotaryPolicyError::Rejected { .. } => {
            Problem::Fail(text)
        }
        NotaryPolicyError::NoCertificates => Problem::Error(text),
        NotaryPolicyError::Notary(n) => match n {
            NotaryError::Client(c) | NotaryError::Artifacts(ArtifactError::Client(c))
                if is_retryable(c) =>
            {
                Problem::Registry(text)
            }
            NotaryError::Client(c) if c.is_not_found() => {
                Problem::Fail(format!("manifest unknown: {text}"))
            }
            _ => Problem::Error(text),
        },
    }
}

fn transient(e: &NotaryPolicyError) -> bool {
    matches!(problem(e), Problem::Registry(_))
}

/// PEM text of a certificate field (PEM, or base64 of a PEM as the Cosign path accepts).
fn pem_text(text: &str, what: &str) -> Result<String, Problem> {
    if has_variable(text) {
        return Err(Problem::Error(format!(
            "{what} from a variable is not supported: give the PEM"
        )));
    }
    if text.contains("-----BEGIN") {
        return Ok(text.to_owned());
    }
    B64.decode(text.split_whitespace().collect::<String>().as_bytes())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .filter(|s| s.contains("-----BEGIN"))
        .ok_or_else(|| Problem::Error(format!("{what}: neither PEM nor base64 of a PEM")))
}

/// The Notary attestor an entry stands for.
fn attestor_of(entry: &Attestor) -> Result<NotaryAttestor, Problem> {
    match &entry.kind {
        AttestorKind::Certificates(c) => certificates(c),
        // Kyverno's `{}` entry for attestations without attestors: no signature check.
        AttestorKind::Empty => Ok(NotaryAttestor::default()),
        AttestorKind::Keys(_) => Err(Problem::Error(
            "Keys field is not allowed for type notary".into(),
        )),
        AttestorKind::Keyless(_) => Err(Problem::Error(
            "Keyless field is not allowed for type notary".into(),
        )),
        AttestorKind::Nested(_) => Err(Problem::Error(
            "internal: nested set evaluated as an entry".into(),
        )),
    }
}

fn certificates(c: &CertificateAttestor) -> Result<NotaryAttestor, Problem> {
    let field = |v: &Option<String>, what: &str| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| pem_text(s, what))
            .transpose()
    };
    let a = NotaryAttestor {
        cert: field(&c.cert, "certificates.cert")?,
        cert_chain: field(&c.cert_chain, "certificates.certChain")?,
        tsa_cert_chain: field(&c.ctlog.tsa_cert_chain, "certificates.ctlog.tsaCertChain")?,
    };
    // Kyverno skips the attestation signature check when both are empty; an explicit but empty
    // `certificates` entry is a mistake here, not a request to skip verification.
    if a.cert.is_none() && a.cert_chain.is_none() {
        return Err(Problem::Error(
            "certificates: cert and certChain are both empty".into(),
        ));
    }
    Ok(a)
}

/// Memo key of a check: what is asked, of which digest, with which trust material.
fn memo_key(what: &str, image: &Reference, digest: &Digest, a: &NotaryAttestor) -> String {
    let mut h = Sha256::new();
    for part in [&a.cert, &a.cert_chain, &a.tsa_cert_chain] {
        h.update(part.as_deref().unwrap_or("").as_bytes());
        h.update([0u8]);
    }
    format!(
        "notary {what} {}@{digest} {}",
        image.repository_name(),
        crate::review::hex(&h.finalize())
    )
}

/// Runs `op` (retried on transient registry errors within the deadline) once per review and key.
async fn memoised<F, Fut>(env: &VerifyEnv<'_>, key: String, op: F) -> Checked
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Verified, NotaryPolicyError>>,
{
    let f = env.fetcher;
    f.notary_slot(key)
        .get_or_init(|| async {
            retry_when(f.retry_policy(), Some(f.deadline()), transient, &op)
                .await
                .map_err(|e| problem(&e))
        })
        .await
        .clone()
}

/// One signature entry: a Notary signature of `image` (a digest reference) verifies with it.
async fn signature_entry(
    env: &VerifyEnv<'_>,
    entry: &Attestor,
    image: &Reference,
    digest: &Digest,
) -> Result<EntryPass, Problem> {
    let attestor = attestor_of(entry)?;
    let client = env.fetcher.client();
    let key = memo_key("signature", image, digest, &attestor);
    let checked = memoised(env, key, || async {
        verify_for_policy(client, image, &attestor)
            .await
            .result
            .map(|v| Verified::Signature(Box::new(v)))
    })
    .await?;
    let Verified::Signature(v) = checked else {
        return Err(Problem::Error(
            "internal: memoised check of another kind".into(),
        ));
    };
    // The signed target descriptor names the digest the policy decides about.
    if v.target.digest != digest.to_string() || v.digest != *digest {
        return Err(Problem::Fail(format!(
            "Notary signature {} signs {}, not the verified image digest {digest}",
            v.signature, v.target.digest
        )));
    }
    for (k, want) in &entry.annotations {
        let got = v.target.annotations.as_ref().and_then(|a| a.get(k));
        if got != Some(want) {
            return Err(Problem::Fail(format!(
                "annotation mismatch: signed target annotation {k:?} is {}, the attestor requires \
                 {want:?}",
                got.map_or_else(|| "absent".to_owned(), |g| format!("{g:?}"))
            )));
        }
    }
    let signer = if v.signer.is_empty() {
        String::new()
    } else {
        format!(" (signed by {})", v.signer)
    };
    Ok((
        format!(
            "Notary signature {}{signer} verified for {digest}",
            v.signature
        ),
        None,
    ))
}

/// The data `conditions` see for one Notary attestation: the predicate's fields at the top level,
/// plus `predicate` and `type`/`predicateType` (the referrer's artifact type).
fn condition_data(a: &VerifiedAttestation) -> Value {
    let predicate = a.document.get("predicate").cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("type".into(), Value::String(a.artifact_type.clone()));
    m.insert(
        "predicateType".into(),
        Value::String(a.artifact_type.clone()),
    );
    m.insert("predicate".into(), predicate.clone());
    if let Value::Object(p) = predicate {
        for (k, v) in p {
            m.insert(k, v);
        }
    }
    Value::Object(m)
}

/// One attestation entry: the referrers of `att.type_`, verified with the entry, pass the
/// conditions.
async fn attestation_entry(
    env: &VerifyEnv<'_>,
    att: &Attestation,
    entry: &Attestor,
    image: &Reference,
    digest: &Digest,
) -> Result<EntryPass, Problem> {
    if !entry.annotations.is_empty() {
        return Err(Problem::Error(
            "annotations are not supported on Notary attestation attestors (the attestation's \
             own signature target is not exposed)"
                .into(),
        ));
    }
    let attestor = attestor_of(entry)?;
    let checked_signatures = attestor.cert.is_some() || attestor.cert_chain.is_some();
    let client = env.fetcher.client();
    let key = memo_key(
        &format!("attestations {:?}", att.type_),
        image,
        digest,
        &attestor,
    );
    let checked = memoised(env, key, || async {
        verify_attestations_for_policy(client, image, &att.type_, &attestor)
            .await
            .result
            .map(|v| Verified::Attestations(Arc::new(v)))
    })
    .await?;
    let Verified::Attestations(list) = checked else {
        return Err(Problem::Error(
            "internal: memoised check of another kind".into(),
        ));
    };
    let mut first = None;
    for a in list.iter() {
        let mut data = condition_data(a);
        if let Some(c) = env.context {
            sigil_policy::context::merge_context(&mut data, c);
        }
        match evaluate_all(&att.conditions, &data) {
            Ok(o) if o.passed => {}
            Ok(o) => {
                return Err(Problem::Fail(format!(
                    "Notary attestation {} of type {} failed the conditions: {}",
                    a.digest,
                    att.type_,
                    o.failures.join("; ")
                )));
            }
            Err(e) => {
                return Err(Problem::Fail(format!(
                    "Notary attestation {} of type {}: conditions could not be evaluated: {e}",
                    a.digest, att.type_
                )));
            }
        }
        first.get_or_insert_with(|| data.get("predicate").cloned().unwrap_or(Value::Null));
    }
    let how = if checked_signatures {
        "each verified by its Notary signature"
    } else {
        "signatures NOT checked: the attestor gives no certificates (as Kyverno)"
    };
    Ok((
        format!(
            "{} Notary attestation(s) of type {} ({how}) passed the conditions",
            list.len(),
            att.type_
        ),
        first,
    ))
}

/// The evaluation of one list of attestor sets with its per-entry results.
struct Evaluated {
    eval: AttestorEvaluation,
    results: HashMap<String, Result<EntryPass, Problem>>,
}

/// Evaluates `sets` with `run` verifying leaf entries (see the module docs for the order).
/// `Err`: the registry could not be reached.
async fn evaluate<F, Fut>(base: &str, sets: &[AttestorSet], run: F) -> Result<Evaluated, String>
where
    F: Fn(Attestor) -> Fut,
    Fut: Future<Output = Result<EntryPass, Problem>>,
{
    let mut results: HashMap<String, Result<EntryPass, Problem>> = HashMap::new();
    loop {
        let mut wanted: Vec<(String, Attestor)> = Vec::new();
        let eval = evaluate_attestor_sets(base, sets, |path, entry| match results.get(path) {
            Some(Ok(_)) => EntryOutcome::Verified,
            Some(Err(p)) => EntryOutcome::Failed(p.message().to_owned()),
            None => {
                // Assume it verifies: what it would take to satisfy the sets is fetched at once.
                wanted.push((path.to_owned(), entry.clone()));
                EntryOutcome::Verified
            }
        });
        if wanted.is_empty() {
            return Ok(Evaluated { eval, results });
        }
        let (paths, entries): (Vec<String>, Vec<Attestor>) = wanted.into_iter().unzip();
        let outcomes = futures::future::join_all(entries.into_iter().map(&run)).await;
        for (path, outcome) in paths.into_iter().zip(outcomes) {
            if let Err(Problem::Registry(m)) = &outcome {
                return Err(format!("{path}: {m}"));
            }
            results.insert(path, outcome);
        }
    }
}

/// Trace steps (evaluation order) and evaluation errors of an evaluated list of sets.
fn trace_of(e: &Evaluated, trace: &mut Vec<TraceStep>) -> Vec<String> {
    let mut errors = Vec::new();
    for t in &e.eval.trace {
        match e.results.get(&t.path) {
            Some(Ok((detail, _))) => trace.push(step(&t.path, RuleStatus::Pass, detail.clone())),
            Some(Err(Problem::Error(m))) => {
                errors.push(format!("{}: {m}", t.path));
                trace.push(step(&t.path, RuleStatus::Error, m.clone()));
            }
            Some(Err(p)) => trace.push(step(&t.path, RuleStatus::Fail, p.message())),
            // A nested set: its entries carry the detail.
            None => {}
        }
    }
    errors
}

/// Verifies a `type: Notary` entry `vi` for `image@digest` (`image` is the digest reference).
pub(crate) async fn verify_image(
    env: &VerifyEnv<'_>,
    vi: &VerifyImage,
    image: &Reference,
    digest: &Digest,
) -> Decision {
    let mut trace = Vec::new();
    let mut notes = Vec::new();
    if !vi.attestors.is_empty() {
        let base = format!("{}.attestors", vi.path);
        let evaluated = match evaluate(&base, &vi.attestors, |entry| async move {
            signature_entry(env, &entry, image, digest).await
        })
        .await
        {
            Ok(e) => e,
            Err(m) => return Decision::error(ErrorKind::Registry, m, trace),
        };
        let errors = trace_of(&evaluated, &mut trace);
        if !evaluated.eval.passed {
            return finish_failed(evaluated.eval.failure, errors, trace, "Notary signature");
        }
        notes.push("Notary signatures verified".to_owned());
    }
    let mut named: Map<String, Value> = Map::new();
    for (i, att) in vi.attestations.iter().enumerate() {
        let base = format!("{}.attestations[{i}].attestors", vi.path);
        let evaluated = match evaluate(&base, &att.attestors, |entry| async move {
            attestation_entry(env, att, &entry, image, digest).await
        })
        .await
        {
            Ok(e) => e,
            Err(m) => return Decision::error(ErrorKind::Registry, m, trace),
        };
        let errors = trace_of(&evaluated, &mut trace);
        if !evaluated.eval.passed {
            return finish_failed(
                evaluated.eval.failure,
                errors,
                trace,
                &format!("Notary attestation {:?}", att.type_),
            );
        }
        // The first predicate in evaluation order feeds `validate.deny`.
        let first =
            evaluated
                .eval
                .trace
                .iter()
                .find_map(|t| match evaluated.results.get(&t.path) {
                    Some(Ok((_, Some(p)))) => Some(p.clone()),
                    _ => None,
                });
        if let (Some(name), Some(p)) = (&att.name, first) {
            named.insert(name.clone(), p);
        }
        notes.push(format!("Notary attestation {} verified", att.type_));
    }
    conclude(vi, named, env.context, notes, trace)
}
