//! Verification of one `verifyImages` entry for one image digest: signature attestor sets, attestations
//! with their conditions, then `validate.deny` — producing one [`Decision`].
//!
//! Registry material is fetched first (once per review, see [`crate::fetch`]); the attestor trees are
//! then evaluated with [`sigil_policy::evaluate_attestor_sets`] (count semantics, nested sets) by pure
//! checks of the fetched layers against each entry's trust:
//! - `keys`: a PEM public key (other key sources are errors naming the source); `signatureAlgorithm`
//!   must be sha256; unless `rekor.ignoreTlog`, the layer's Rekor SET bundle must verify against
//!   `rekor.pubkey` or the engine's trusted roots;
//! - `certificates`: the signing certificate is pinned to `cert` (else taken from the layer) and must
//!   chain to `certChain`;
//! - `keyless`: Fulcio chain, Rekor SET and SCT against `roots` (else the engine's trusted roots, with
//!   `rekor.pubkey`/`ctlog.pubkey` overriding the log keys), then `subject`/`issuer` (wildcard or
//!   regexp: any SAN must match) and `additionalExtensions`.
//!
//! Every payload must name the verified digest (checked by sigil-cosign). Conditions that fail to
//! evaluate fail the entry: an error is never a pass. `type: Notary` entries go to [`crate::notary`],
//! which shares [`conclude`] (`validate.deny`) with this path.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use sigil_cosign::legacy::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CertificateTrust, PREDICATE_TYPE_ANNOTATION,
    SIGNATURE_ANNOTATION, Trust, check_attestation_layer, check_signature_layer,
};
use sigil_cosign::{PublicKey, SignatureFailure};
use sigil_oci::{Digest, Reference};
use sigil_policy::EntryOutcome;
use sigil_policy::attestor::{
    Attestor, AttestorKind, AttestorSet, CertificateAttestor, IdentityMatcher, KeyAttestor,
    KeylessAttestor, PublicKeySource, RekorConfig,
};
use sigil_policy::conditions::evaluate_all;
use sigil_policy::model::{Attestation, VerificationType};
use sigil_policy::{VerifyImage, evaluate_attestor_sets};
use sigil_sigstore::trust::{CertificateAuthority, TransparencyLog, Validity};
use sigil_sigstore::{Matcher, Policy, TrustedRoot};

use crate::cache::{Decision, ErrorKind};
use crate::fetch::{Candidate, FetchError, Fetcher, Material};
use crate::review::{RuleStatus, TraceStep};

/// What the engine trusts for keyless verification when an attestor gives no `roots`.
pub(crate) struct VerifyEnv<'a> {
    pub fetcher: &'a Fetcher,
    pub trusted_roots: &'a [TrustedRoot],
    /// The rule's `context` entries (an object), merged under the data of attestation conditions
    /// and `validate.deny` (the attestation's own fields win).
    pub context: Option<&'a Value>,
}

/// Why an entry did not verify.
#[derive(Debug, Clone)]
enum EntryError {
    /// The signatures do not satisfy the entry.
    Fail(String),
    /// The entry cannot be evaluated (unsupported source, bad trust material).
    Error(String),
}

fn fail(s: impl Into<String>) -> EntryError {
    EntryError::Fail(s.into())
}

fn unsupported(s: impl Into<String>) -> EntryError {
    EntryError::Error(s.into())
}

/// Where material for an entry comes from: the entry's `repository`, else the verifyImages one.
fn repo_of<'a>(entry: &'a Attestor, vi: &'a VerifyImage) -> Option<&'a str> {
    entry.repository.as_deref().or(vi.repository.as_deref())
}

/// Every leaf entry of the sets (nested sets flattened).
fn leaves<'a>(sets: &'a [AttestorSet], out: &mut Vec<&'a Attestor>) {
    for s in sets {
        for e in &s.entries {
            match &e.kind {
                AttestorKind::Nested(n) => leaves(std::slice::from_ref(n), out),
                _ => out.push(e),
            }
        }
    }
}

/// Fetched material per signature repository (`None` = the image's own repository).
type ByRepo = HashMap<Option<String>, std::sync::Arc<Material>>;

/// Fetches what `sets` need. `kind`: "sig" or "att".
async fn prefetch(
    env: &VerifyEnv<'_>,
    vi: &VerifyImage,
    sets: &[AttestorSet],
    image: &Reference,
    digest: &Digest,
    kind: &str,
) -> Result<ByRepo, FetchError> {
    let mut entries = Vec::new();
    leaves(sets, &mut entries);
    let mut out = ByRepo::new();
    for e in entries {
        let repo = repo_of(e, vi).map(str::to_owned);
        if out.contains_key(&repo) {
            continue;
        }
        let material = match vi.type_ {
            VerificationType::SigstoreBundle => {
                if repo.is_some() {
                    return Err(FetchError::Other(
                        "`repository` is not supported with type SigstoreBundle (bundles are \
                         referrers in the image's repository)"
                            .into(),
                    ));
                }
                env.fetcher.bundles(image, digest).await?
            }
            _ => {
                let legacy = env
                    .fetcher
                    .legacy(image, digest, kind, repo.as_deref())
                    .await?;
                if vi.cosign_oci11 && kind == "sig" && repo.is_none() {
                    let oci = env.fetcher.cosign_referrers(image, digest).await?;
                    let mut m = (*oci).clone();
                    m.candidates.extend(legacy.candidates.iter().cloned());
                    m.looked_at.extend(legacy.looked_at.iter().cloned());
                    std::sync::Arc::new(m)
                } else {
                    legacy
                }
            }
        };
        out.insert(repo, material);
    }
    Ok(out)
}

pub(crate) fn fetch_error(e: FetchError, trace: Vec<TraceStep>) -> Decision {
    match e {
        FetchError::Registry(m) => Decision::error(ErrorKind::Registry, m, trace),
        FetchError::Other(m) => Decision::error(ErrorKind::Other, m, trace),
    }
}

/// Verifies `vi` for `image@digest`.
pub(crate) async fn verify_image(
    env: &VerifyEnv<'_>,
    vi: &VerifyImage,
    image: &Reference,
    digest: &Digest,
) -> Decision {
    if vi.type_ == VerificationType::Notary {
        return crate::notary::verify_image(env, vi, image, digest).await;
    }
    let mut trace = Vec::new();
    let mut notes = Vec::new();
    if !vi.attestors.is_empty() {
        let material = match prefetch(env, vi, &vi.attestors, image, digest, "sig").await {
            Ok(m) => m,
            Err(e) => return fetch_error(e, trace),
        };
        let errors = RefCell::new(Vec::new());
        let base = format!("{}.attestors", vi.path);
        let eval = evaluate_attestor_sets(&base, &vi.attestors, |path, entry| {
            let m = material
                .get(&repo_of(entry, vi).map(str::to_owned))
                .cloned()
                .unwrap_or_default();
            match check_signature_entry(env, vi, entry, &m, digest) {
                Ok(detail) => {
                    trace.push(step(path, RuleStatus::Pass, detail));
                    EntryOutcome::Verified
                }
                Err(e) => outcome_of(e, path, &errors, &mut trace),
            }
        });
        if !eval.passed {
            return finish_failed(eval.failure, errors.into_inner(), trace, "signature");
        }
        notes.push("signatures verified".to_owned());
    }
    let mut named: Map<String, Value> = Map::new();
    for (i, att) in vi.attestations.iter().enumerate() {
        let material = match prefetch(env, vi, &att.attestors, image, digest, "att").await {
            Ok(m) => m,
            Err(e) => return fetch_error(e, trace),
        };
        let errors = RefCell::new(Vec::new());
        let first_predicate: RefCell<Option<Value>> = RefCell::new(None);
        let base = format!("{}.attestations[{i}].attestors", vi.path);
        let eval = evaluate_attestor_sets(&base, &att.attestors, |path, entry| {
            let m = material
                .get(&repo_of(entry, vi).map(str::to_owned))
                .cloned()
                .unwrap_or_default();
            match check_attestation_entry(env, vi, att, entry, &m, digest) {
                Ok((detail, predicate)) => {
                    trace.push(step(path, RuleStatus::Pass, detail));
                    first_predicate.borrow_mut().get_or_insert(predicate);
                    EntryOutcome::Verified
                }
                Err(e) => outcome_of(e, path, &errors, &mut trace),
            }
        });
        if !eval.passed {
            return finish_failed(
                eval.failure,
                errors.into_inner(),
                trace,
                &format!("attestation {:?}", att.type_),
            );
        }
        if let (Some(name), Some(p)) = (&att.name, first_predicate.into_inner()) {
            named.insert(name.clone(), p);
        }
        notes.push(format!("attestation {} verified", att.type_));
    }
    conclude(vi, named, env.context, notes, trace)
}

/// The last step shared by every verification type: `validate.deny` over the named attestations'
/// predicates, then the pass decision.
pub(crate) fn conclude(
    vi: &VerifyImage,
    named: Map<String, Value>,
    context: Option<&Value>,
    mut notes: Vec<String>,
    mut trace: Vec<TraceStep>,
) -> Decision {
    if let Some(deny) = &vi.validate_deny {
        let path = format!("{}.validate.deny", vi.path);
        let mut data = Value::Object(named);
        if let Some(c) = context {
            sigil_policy::context::merge_context(&mut data, c);
        }
        match deny.evaluate(&data) {
            Ok(o) if o.passed => {
                let msg = match &vi.validate_message {
                    Some(m) => format!("{m} ({})", o.failures_or_default()),
                    None => format!("validate.deny matched ({})", o.failures_or_default()),
                };
                trace.push(step(&path, RuleStatus::Fail, msg.clone()));
                return Decision::fail(msg, trace);
            }
            Ok(_) => trace.push(step(&path, RuleStatus::Pass, "deny conditions not met")),
            Err(e) => {
                let msg = format!("validate.deny could not be evaluated: {e}");
                trace.push(step(&path, RuleStatus::Fail, msg.clone()));
                return Decision::fail(msg, trace);
            }
        }
    }
    if notes.is_empty() {
        notes.push("nothing to verify".into());
    }
    Decision::pass(notes.join("; "), trace)
}

trait FailuresText {
    fn failures_or_default(&self) -> String;
}

impl FailuresText for sigil_policy::conditions::ConditionsOutcome {
    fn failures_or_default(&self) -> String {
        // For deny, "passed" means the deny conditions held; list what held is not tracked, so
        // describe the outcome generically.
        if self.failures.is_empty() {
            "deny conditions hold".into()
        } else {
            self.failures.join("; ")
        }
    }
}

pub(crate) fn step(path: &str, status: RuleStatus, detail: impl Into<String>) -> TraceStep {
    TraceStep {
        path: path.to_owned(),
        status,
        detail: detail.into(),
    }
}

fn outcome_of(
    e: EntryError,
    path: &str,
    errors: &RefCell<Vec<String>>,
    trace: &mut Vec<TraceStep>,
) -> EntryOutcome {
    match e {
        EntryError::Fail(m) => {
            trace.push(step(path, RuleStatus::Fail, m.clone()));
            EntryOutcome::Failed(m)
        }
        EntryError::Error(m) => {
            errors.borrow_mut().push(format!("{path}: {m}"));
            trace.push(step(path, RuleStatus::Error, m.clone()));
            EntryOutcome::Failed(m)
        }
    }
}

pub(crate) fn finish_failed(
    failure: Option<String>,
    errors: Vec<String>,
    trace: Vec<TraceStep>,
    what: &str,
) -> Decision {
    if !errors.is_empty() {
        return Decision::error(
            ErrorKind::Other,
            format!(
                "{what} verification could not be carried out: {}",
                errors.join("; ")
            ),
            trace,
        );
    }
    Decision::fail(
        format!(
            "{what} verification failed: {}",
            failure.unwrap_or_else(|| "attestors not satisfied".into())
        ),
        trace,
    )
}

// ---------------------------------------------------------------------------------------------
// Trust per entry

/// The trust one entry gives, plus checks sigil-cosign does not do by itself.
struct EntryTrust {
    trust: Trust,
    /// For keys with tlog required: the key (sigstore form) and roots holding Rekor keys.
    key_tlog: Option<(sigil_sigstore::PublicKey, Vec<TrustedRoot>)>,
    /// For keyless: identity constraints checked on the leaf certificate.
    identity: Option<Identity>,
    /// Human description for traces.
    describe: String,
}

struct Identity {
    subject: Vec<IdentityMatcher>,
    issuer: Vec<IdentityMatcher>,
    extensions: BTreeMap<String, String>,
}

fn any_matcher() -> Result<Matcher, EntryError> {
    Matcher::regex(".*").map_err(|e| unsupported(e.to_string()))
}

fn log_from_pem(pem: &str, what: &'static str, url: &str) -> Result<TransparencyLog, EntryError> {
    let key = sigil_sigstore::PublicKey::from_pem(pem, what)
        .map_err(|e| unsupported(format!("{what}: {e}")))?;
    let der = sigil_sigstore::crypto::pem_decode(pem, "PUBLIC KEY")
        .ok_or_else(|| unsupported(format!("{what}: not a PEM PUBLIC KEY")))?;
    Ok(TransparencyLog {
        base_url: url.to_owned(),
        key,
        log_id: Sha256::digest(&der).to_vec(),
        key_der: der,
        valid_for: Validity::default(),
    })
}

/// Roots for tlog/keyless checks: the engine's roots (or one empty root) with overrides.
fn roots_with(
    env: &VerifyEnv<'_>,
    base: Option<TrustedRoot>,
    rekor: &RekorConfig,
    ctlog_pubkey: Option<&str>,
) -> Result<Vec<TrustedRoot>, EntryError> {
    let mut roots: Vec<TrustedRoot> = match base {
        Some(r) => {
            // Custom Fulcio roots: log keys still come from the engine's roots unless overridden.
            let mut r = r;
            if let Some(first) = env.trusted_roots.first() {
                r.tlogs.clone_from(&first.tlogs);
                r.ctlogs.clone_from(&first.ctlogs);
                r.timestamp_authorities
                    .clone_from(&first.timestamp_authorities);
            }
            vec![r]
        }
        None => env.trusted_roots.to_vec(),
    };
    if roots.is_empty() {
        roots.push(TrustedRoot::default());
    }
    if let Some(pem) = &rekor.pubkey {
        let log = log_from_pem(pem, "rekor.pubkey", &rekor.url)?;
        for r in &mut roots {
            r.tlogs = vec![log.clone()];
        }
    }
    if let Some(pem) = ctlog_pubkey {
        let log = log_from_pem(pem, "ctlog.pubkey", "")?;
        for r in &mut roots {
            r.ctlogs = vec![log.clone()];
        }
    }
    Ok(roots)
}

fn pem_or_base64_certs(text: &str, what: &str) -> Result<Vec<Vec<u8>>, EntryError> {
    let decoded;
    let pem = if text.contains("-----BEGIN") {
        text
    } else {
        let raw = B64
            .decode(text.split_whitespace().collect::<String>().as_bytes())
            .map_err(|_| unsupported(format!("{what}: neither PEM nor base64 of a PEM")))?;
        decoded = String::from_utf8(raw)
            .map_err(|_| unsupported(format!("{what}: base64 does not hold a PEM")))?;
        &decoded
    };
    match sigil_sigstore::crypto::pem_decode_all(pem, "CERTIFICATE") {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(unsupported(format!("{what}: no PEM certificate found"))),
    }
}

pub(crate) fn has_variable(s: &str) -> bool {
    s.contains("{{")
}

/// The certificate-based trusts for an entry (one per root to try).
fn entry_trusts(env: &VerifyEnv<'_>, entry: &Attestor) -> Result<Vec<EntryTrust>, EntryError> {
    if let Some(alg) = &entry.signature_algorithm
        && alg != "sha256"
    {
        return Err(fail(format!(
            "invalid signature algorithm provided {alg} (sigil verifies sha256 signatures)"
        )));
    }
    let tsa = match &entry.kind {
        AttestorKind::Keys(k) => k.ctlog.tsa_cert_chain.is_some(),
        AttestorKind::Certificates(c) => c.ctlog.tsa_cert_chain.is_some(),
        AttestorKind::Keyless(k) => k.ctlog.tsa_cert_chain.is_some(),
        _ => false,
    };
    if tsa {
        return Err(unsupported(
            "ctlog.tsaCertChain is not supported yet (give timestamp authorities in the trusted root)",
        ));
    }
    match &entry.kind {
        AttestorKind::Keys(k) => key_trust(env, k).map(|t| vec![t]),
        AttestorKind::Certificates(c) => certificate_trust(env, c),
        AttestorKind::Keyless(k) => keyless_trust(env, k, entry),
        AttestorKind::Empty => keyless_trust(
            env,
            &KeylessAttestor {
                issuer: Vec::new(),
                subject: Vec::new(),
                roots: None,
                additional_extensions: BTreeMap::new(),
                rekor: RekorConfig::default(),
                ctlog: sigil_policy::attestor::CtlogConfig {
                    ignore_sct: true,
                    ..Default::default()
                },
            },
            entry,
        ),
        AttestorKind::Nested(_) => Err(unsupported("nested set evaluated as an entry")),
    }
}

fn key_trust(env: &VerifyEnv<'_>, k: &KeyAttestor) -> Result<EntryTrust, EntryError> {
    if k.signature_algorithm != "sha256" {
        return Err(fail(format!(
            "invalid signature algorithm provided {} (sigil verifies sha256 signatures)",
            k.signature_algorithm
        )));
    }
    let (pem, der) = match &k.key {
        PublicKeySource::Pem { pem, der } => (pem, der),
        PublicKeySource::Variable(v) => {
            return Err(unsupported(format!(
                "keys.publicKeys still holds a variable ({v}) after substitution"
            )));
        }
        PublicKeySource::K8sSecret { namespace, name } => {
            return Err(unsupported(format!(
                "keys from the Kubernetes Secret {namespace}/{name} are not supported: give \
                 keys.publicKeys as PEM"
            )));
        }
        PublicKeySource::Kms(uri) => {
            return Err(unsupported(format!(
                "keys.kms ({uri}) is not supported: give keys.publicKeys as PEM"
            )));
        }
    };
    let key = PublicKey::from_spki_der(der).map_err(|e| unsupported(format!("keys: {e}")))?;
    let key_tlog = if k.rekor.ignore_tlog {
        None
    } else {
        let sk = sigil_sigstore::PublicKey::from_pem(pem, "keys.publicKeys")
            .map_err(|e| unsupported(format!("keys: {e}")))?;
        Some((sk, roots_with(env, None, &k.rekor, None)?))
    };
    Ok(EntryTrust {
        trust: Trust::key(key),
        key_tlog,
        identity: None,
        describe: format!(
            "key sha256:{}",
            &crate::review::hex(&Sha256::digest(der))[..16]
        ),
    })
}

fn certificate_trust(
    env: &VerifyEnv<'_>,
    c: &CertificateAttestor,
) -> Result<Vec<EntryTrust>, EntryError> {
    for (field, v) in [("cert", &c.cert), ("certChain", &c.cert_chain)] {
        if v.as_deref().is_some_and(has_variable) {
            return Err(unsupported(format!(
                "certificates.{field} from a variable is not supported: give the PEM"
            )));
        }
    }
    let leaf = c
        .cert
        .as_deref()
        .map(|t| pem_or_base64_certs(t, "certificates.cert"))
        .transpose()?
        .and_then(|v| v.into_iter().next());
    let mut chain = c
        .cert_chain
        .as_deref()
        .map(|t| pem_or_base64_certs(t, "certificates.certChain"))
        .transpose()?
        .unwrap_or_default();
    if let (Some(l), Some(first)) = (&leaf, chain.first())
        && l == first
    {
        chain.remove(0);
    }
    let roots = if c.rekor.ignore_tlog {
        vec![None]
    } else {
        roots_with(env, None, &c.rekor, c.ctlog.pubkey.as_deref())?
            .into_iter()
            .map(Some)
            .collect()
    };
    Ok(roots
        .into_iter()
        .map(|root| EntryTrust {
            trust: Trust {
                keys: Vec::new(),
                certificate: Some(CertificateTrust {
                    // Without `cert` the layer's certificate is pinned per layer (see check_layer).
                    policy: Policy::Certificate(leaf.clone().unwrap_or_default()),
                    chain: chain.clone(),
                    root,
                    require_sct: false,
                }),
            },
            key_tlog: None,
            identity: None,
            describe: "certificate".into(),
        })
        .collect())
}

fn keyless_trust(
    env: &VerifyEnv<'_>,
    k: &KeylessAttestor,
    entry: &Attestor,
) -> Result<Vec<EntryTrust>, EntryError> {
    let base = match &k.roots {
        Some(pem) => {
            let certs = pem_or_base64_certs(pem, "keyless.roots")?;
            Some(TrustedRoot {
                certificate_authorities: vec![CertificateAuthority {
                    uri: "keyless.roots".into(),
                    chain: certs,
                    valid_for: Validity::default(),
                }],
                ..TrustedRoot::default()
            })
        }
        None => None,
    };
    if base.is_none() && env.trusted_roots.is_empty() {
        return Err(unsupported(
            "keyless verification needs trusted roots: give keyless.roots or configure a \
             trusted_root.json",
        ));
    }
    let identity = || Identity {
        subject: k.subject.clone(),
        issuer: k.issuer.clone(),
        extensions: k.additional_extensions.clone(),
    };
    if k.rekor.ignore_tlog {
        // No transparency log: the signing certificate must chain to the roots and be valid now
        // (private-CA "keyless"); an SCT cannot be checked on this path.
        if !k.ctlog.ignore_sct {
            return Err(unsupported(
                "rekor.ignoreTlog needs ctlog.ignoreSCT: true (without the transparency log the                  certificate's SCT is not checked)",
            ));
        }
        let chains: Vec<Vec<Vec<u8>>> = match &base {
            Some(r) => r
                .certificate_authorities
                .iter()
                .map(|ca| ca.chain.clone())
                .collect(),
            None => env
                .trusted_roots
                .iter()
                .flat_map(|r| r.certificate_authorities.iter().map(|ca| ca.chain.clone()))
                .collect(),
        };
        return Ok(chains
            .into_iter()
            .map(|chain| EntryTrust {
                trust: Trust {
                    keys: Vec::new(),
                    certificate: Some(CertificateTrust {
                        // Pinned per layer to the layer's own certificate (see `pin_leaf`).
                        policy: Policy::Certificate(Vec::new()),
                        chain,
                        root: None,
                        require_sct: false,
                    }),
                },
                key_tlog: None,
                identity: Some(identity()),
                describe: "keyless identity (no tlog: certificate valid now)".into(),
            })
            .collect());
    }
    let roots = roots_with(env, base, &k.rekor, k.ctlog.pubkey.as_deref())?;
    let _ = entry;
    roots
        .into_iter()
        .map(|root| {
            Ok(EntryTrust {
                trust: Trust {
                    keys: Vec::new(),
                    certificate: Some(CertificateTrust {
                        policy: Policy::Identity {
                            subject: any_matcher()?,
                            issuer: any_matcher()?,
                        },
                        chain: Vec::new(),
                        root: Some(root),
                        require_sct: !k.ctlog.ignore_sct,
                    }),
                },
                key_tlog: None,
                identity: Some(identity()),
                describe: "keyless identity".into(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Per-layer checks

/// Checks identity constraints on a leaf certificate.
fn check_identity(leaf: &[u8], id: &Identity) -> Result<(), String> {
    let summary = sigil_sigstore::legacy::verify_certificate(
        leaf,
        &[],
        &Policy::Certificate(leaf.to_vec()),
        None,
        &[],
        false,
    )
    .map_err(|e| format!("certificate: {e}"))?;
    for m in &id.subject {
        if !summary.san.iter().any(|s| m.matches(s)) {
            return Err(format!(
                "subject mismatch: expected {}, received {}",
                describe_matcher(m),
                summary.san.join(", ")
            ));
        }
    }
    let issuer = summary.issuer.unwrap_or_default();
    for m in &id.issuer {
        if !m.matches(&issuer) {
            return Err(format!(
                "issuer mismatch: expected {}, received {issuer}",
                describe_matcher(m)
            ));
        }
    }
    if !id.extensions.is_empty() {
        crate::extensions::check(leaf, &id.extensions)?;
    }
    Ok(())
}

fn describe_matcher(m: &IdentityMatcher) -> String {
    match m {
        IdentityMatcher::Wildcard(w) => w.as_str().to_owned(),
        IdentityMatcher::Regex(r) => format!("/{}/", r.as_str()),
    }
}

/// The leaf certificate of a legacy layer (annotation), if any.
fn layer_leaf(c: &Candidate) -> Option<Vec<u8>> {
    c.layer
        .annotation(CERTIFICATE_ANNOTATION)
        .filter(|s| !s.is_empty())
        .and_then(|pem| sigil_sigstore::crypto::pem_decode(pem, "CERTIFICATE"))
}

/// Trust for one layer: see [`pin_leaf`].
fn layer_trust(t: &EntryTrust, c: &Candidate) -> Result<Trust, SignatureFailure> {
    pin_leaf(&t.trust, layer_leaf(c), CERTIFICATE_ANNOTATION)
}

/// A certificate trust without a pinned certificate (`certificates` with only `certChain`, keyless
/// without tlog) pins the signature's own certificate `leaf`, which must then chain to the trusted
/// chain.
fn pin_leaf(trust: &Trust, leaf: Option<Vec<u8>>, source: &str) -> Result<Trust, SignatureFailure> {
    let mut trust = trust.clone();
    if let Some(ct) = &mut trust.certificate
        && let Policy::Certificate(pinned) = &mut ct.policy
        && pinned.is_empty()
    {
        if ct.chain.is_empty() {
            return Err(SignatureFailure::Certificate(
                "no certificate and no chain to verify against".into(),
            ));
        }
        *pinned = leaf.ok_or_else(|| {
            SignatureFailure::Certificate(format!("the signature has no certificate ({source})"))
        })?;
    }
    Ok(trust)
}

/// Tlog check for key attestors: the layer's Rekor SET bundle must verify with a trusted Rekor key.
fn check_key_tlog(
    t: &EntryTrust,
    c: &Candidate,
    signed: sigil_sigstore::legacy::Signed<'_>,
    sig: &[u8],
) -> Result<(), String> {
    let Some((key, roots)) = &t.key_tlog else {
        return Ok(());
    };
    let Some(b) = c.layer.annotation(BUNDLE_ANNOTATION) else {
        return Err(format!(
            "transparency log verification is required (rekor.ignoreTlog is false) but the \
             signature has no {BUNDLE_ANNOTATION} annotation"
        ));
    };
    let bundle = sigil_sigstore::legacy::RekorBundle::from_json(b.as_bytes())
        .map_err(|e| format!("Rekor bundle: {e}"))?;
    let mut last = String::from("no Rekor key configured");
    for root in roots {
        if root.tlogs.is_empty() {
            continue;
        }
        match sigil_sigstore::legacy::verify_rekor_bundle(
            &bundle,
            sig,
            signed,
            sigil_sigstore::legacy::Signer::Key(key),
            root,
        ) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("Rekor bundle does not verify: {last}"))
}

fn check_signature_entry(
    env: &VerifyEnv<'_>,
    vi: &VerifyImage,
    entry: &Attestor,
    material: &Material,
    digest: &Digest,
) -> Result<String, EntryError> {
    let trusts = entry_trusts(env, entry)?;
    if vi.type_ == VerificationType::SigstoreBundle {
        return check_bundles(entry, &trusts, material, digest, None).map(|(d, _)| d);
    }
    if material.candidates.is_empty() {
        return Err(fail(format!(
            "no signatures found ({})",
            material.looked_at.join(", ")
        )));
    }
    let mut failures = Vec::new();
    for c in &material.candidates {
        let payload = match &c.payload {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("layer {}: {e}", c.layer.digest));
                continue;
            }
        };
        let mut layer_fail = String::new();
        for t in &trusts {
            let r = layer_trust(t, c)
                .and_then(|trust| {
                    check_signature_layer(&c.layer, payload, digest, &trust, &entry.annotations)
                })
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    let sig = c
                        .layer
                        .annotation(SIGNATURE_ANNOTATION)
                        .and_then(|s| B64.decode(s.as_bytes()).ok())
                        .unwrap_or_default();
                    check_key_tlog(t, c, sigil_sigstore::legacy::Signed::Payload(payload), &sig)
                })
                .and_then(|()| match (&t.identity, layer_leaf(c)) {
                    (Some(id), Some(leaf)) => check_identity(&leaf, id),
                    (Some(_), None) => Err("signature has no certificate".into()),
                    (None, _) => Ok(()),
                });
            match r {
                Ok(()) => {
                    return Ok(format!(
                        "signature {} in {} verified with {} for {digest}",
                        c.layer.digest, c.location, t.describe
                    ));
                }
                Err(e) => layer_fail = e,
            }
        }
        failures.push(format!("layer {}: {layer_fail}", c.layer.digest));
    }
    Err(fail(format!(
        "no signature verified: {}",
        failures.join("; ")
    )))
}

/// Verifies bundle candidates; returns a description and the verified statements.
fn check_bundles(
    entry: &Attestor,
    trusts: &[EntryTrust],
    material: &Material,
    digest: &Digest,
    wanted: Option<&str>,
) -> Result<(String, Vec<Value>), EntryError> {
    if material.candidates.is_empty() {
        return Err(fail(format!(
            "no Sigstore bundles found ({})",
            material.looked_at.join(", ")
        )));
    }
    if !entry.annotations.is_empty() {
        return Err(unsupported(
            "annotations are not supported with type SigstoreBundle (bundles carry no \
             simple-signing annotations)",
        ));
    }
    let mut failures = Vec::new();
    let mut statements = Vec::new();
    let mut described = None;
    for c in &material.candidates {
        let json = match &c.payload {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: {e}", c.location));
                continue;
            }
        };
        let mut last = String::new();
        for t in trusts {
            let r = match &t.key_tlog {
                // Keys with tlog required: the bundle must carry a tlog entry verified against the
                // Rekor keys.
                Some((key, roots)) => bundle_with_tlog(json, digest, key, roots, wanted),
                None => {
                    let leaf = sigil_sigstore::Bundle::from_json(json)
                        .ok()
                        .and_then(|b| b.material.leaf().map(<[u8]>::to_vec));
                    pin_leaf(&t.trust, leaf, "bundle verification material")
                        .and_then(|trust| {
                            sigil_cosign::bundles::check_bundle(json, digest, &trust, wanted)
                        })
                        .map(|(_, st, _, _)| st)
                        .map_err(|e| e.to_string())
                }
            }
            .and_then(|st| match &t.identity {
                None => Ok(st),
                Some(id) => {
                    let b = sigil_sigstore::Bundle::from_json(json).map_err(|e| e.to_string())?;
                    let leaf = b
                        .material
                        .leaf()
                        .ok_or_else(|| "bundle has no certificate".to_owned())?;
                    check_identity(leaf, id).map(|()| st)
                }
            });
            match r {
                Ok(st) => {
                    described.get_or_insert_with(|| {
                        format!(
                            "bundle in {} verified with {} for {digest}",
                            c.location, t.describe
                        )
                    });
                    statements.push(st);
                    last.clear();
                    break;
                }
                Err(e) => last = e,
            }
        }
        if !last.is_empty() {
            failures.push(format!("{}: {last}", c.location));
        }
    }
    match described {
        Some(d) => Ok((d, statements)),
        None => Err(fail(format!("no bundle verified: {}", failures.join("; ")))),
    }
}

fn bundle_with_tlog(
    json: &[u8],
    digest: &Digest,
    key: &sigil_sigstore::PublicKey,
    roots: &[TrustedRoot],
    wanted: Option<&str>,
) -> Result<Value, String> {
    let bundle = sigil_sigstore::Bundle::from_json(json).map_err(|e| e.to_string())?;
    if bundle.tlog_entries.is_empty() {
        return Err(
            "transparency log verification is required (rekor.ignoreTlog is false) but the bundle \
             has no tlog entry"
                .into(),
        );
    }
    let raw = digest_bytes(digest)?;
    let mut last = "no Rekor key configured".to_owned();
    for root in roots.iter().filter(|r| !r.tlogs.is_empty()) {
        match sigil_sigstore::verify_bundle(
            &bundle,
            Some(&sigil_sigstore::Artifact::Sha256(raw)),
            &Policy::PublicKey(key.clone()),
            root,
        ) {
            Ok(v) => {
                let (_, body) = v
                    .payload
                    .ok_or_else(|| "bundle is not a DSSE envelope".to_owned())?;
                let st: Value =
                    serde_json::from_slice(&body).map_err(|e| format!("statement: {e}"))?;
                let found = st
                    .get("predicateType")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some(w) = wanted
                    && w != found
                {
                    return Err(format!("predicate type {found:?} does not match {w:?}"));
                }
                return Ok(st);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

fn digest_bytes(digest: &Digest) -> Result<[u8; 32], String> {
    let hex = digest.encoded();
    let mut raw = [0u8; 32];
    if digest.algorithm().as_str() != "sha256" || hex.len() != 64 {
        return Err("only sha256 digests are supported".into());
    }
    for (i, b) in raw.iter_mut().enumerate() {
        *b = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| "bad digest".to_owned())?;
    }
    Ok(raw)
}

/// Verified statements of `att.type_` for one entry, then the attestation's conditions on each.
/// Returns a description and the first statement's predicate (for `validate.deny`).
fn check_attestation_entry(
    env: &VerifyEnv<'_>,
    vi: &VerifyImage,
    att: &Attestation,
    entry: &Attestor,
    material: &Material,
    digest: &Digest,
) -> Result<(String, Value), EntryError> {
    let trusts = entry_trusts(env, entry)?;
    let wanted = sigil_sigstore::predicate_type_uri(&att.type_).to_owned();
    let (described, statements) = if vi.type_ == VerificationType::SigstoreBundle {
        check_bundles(entry, &trusts, material, digest, Some(&wanted))?
    } else {
        if !entry.annotations.is_empty() {
            return Err(unsupported(
                "annotations are not supported on attestation attestors (DSSE attestations carry \
                 no simple-signing annotations)",
            ));
        }
        legacy_attestations(&trusts, material, digest, &wanted)?
    };
    let mut first = None;
    for st in &statements {
        let mut data = statement_data(st);
        if let Some(c) = env.context {
            sigil_policy::context::merge_context(&mut data, c);
        }
        match evaluate_all(&att.conditions, &data) {
            Ok(o) if o.passed => {}
            Ok(o) => {
                return Err(fail(format!(
                    "attestation {wanted} conditions failed: {}",
                    o.failures.join("; ")
                )));
            }
            Err(e) => {
                return Err(fail(format!(
                    "attestation {wanted} conditions could not be evaluated: {e}"
                )));
            }
        }
        first.get_or_insert_with(|| data.get("predicate").cloned().unwrap_or(Value::Null));
    }
    let n = statements.len();
    Ok((
        format!("{described}; {n} statement(s) of type {wanted} passed the conditions"),
        first.unwrap_or(Value::Null),
    ))
}

fn legacy_attestations(
    trusts: &[EntryTrust],
    material: &Material,
    digest: &Digest,
    wanted: &str,
) -> Result<(String, Vec<Value>), EntryError> {
    let mut failures = Vec::new();
    let mut statements = Vec::new();
    let mut described = None;
    let mut of_type = 0usize;
    for c in &material.candidates {
        if let Some(a) = c.layer.annotation(PREDICATE_TYPE_ANNOTATION)
            && a != wanted
        {
            continue;
        }
        of_type += 1;
        let blob = match &c.payload {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("layer {}: {e}", c.layer.digest));
                continue;
            }
        };
        let mut last = String::new();
        for t in trusts {
            let r = layer_trust(t, c)
                .and_then(|trust| {
                    check_attestation_layer(&c.layer, blob, digest, &trust, Some(wanted))
                })
                .map_err(|e| e.to_string())
                .and_then(|a| {
                    if t.key_tlog.is_some() {
                        let body = a.envelope.payload_bytes()?;
                        let sig = a
                            .envelope
                            .signatures
                            .first()
                            .and_then(|s| B64.decode(s.sig.as_bytes()).ok())
                            .unwrap_or_default();
                        check_key_tlog(
                            t,
                            c,
                            sigil_sigstore::legacy::Signed::Dsse(&body, &a.envelope.payload_type),
                            &sig,
                        )?;
                    }
                    Ok(a)
                })
                .and_then(|a| match (&t.identity, layer_leaf(c)) {
                    (Some(id), Some(leaf)) => check_identity(&leaf, id).map(|()| a),
                    (Some(_), None) => Err("attestation has no certificate".into()),
                    (None, _) => Ok(a),
                });
            match r {
                Ok(a) => {
                    described.get_or_insert_with(|| {
                        format!(
                            "attestation {} in {} verified with {} for {digest}",
                            c.layer.digest, c.location, t.describe
                        )
                    });
                    statements.push(a.statement);
                    last.clear();
                    break;
                }
                Err(e) => last = e,
            }
        }
        if !last.is_empty() {
            failures.push(format!("layer {}: {last}", c.layer.digest));
        }
    }
    match described {
        Some(d) => Ok((d, statements)),
        None if of_type == 0 => Err(fail(format!(
            "no attestations of type {wanted} found ({})",
            material.looked_at.join(", ")
        ))),
        None => Err(fail(format!(
            "no attestation of type {wanted} verified: {}",
            failures.join("; ")
        ))),
    }
}

/// The data conditions see, laid out as Kyverno does: the predicate's fields at the top level, plus
/// `predicate`, `type`/`predicateType` (the predicate type), `subject` and `_type` of the statement.
/// For cosign's custom predicate, `predicate.Data` is parsed as JSON when it is JSON.
pub(crate) fn statement_data(statement: &Value) -> Value {
    let pt = statement
        .get("predicateType")
        .cloned()
        .unwrap_or(Value::Null);
    let mut predicate = statement.get("predicate").cloned().unwrap_or(Value::Null);
    if pt.as_str() == Some("https://cosign.sigstore.dev/attestation/v1")
        && let Some(Value::String(s)) = predicate.get("Data")
        && let Ok(parsed) = serde_json::from_str::<Value>(s)
        && let Some(obj) = predicate.as_object_mut()
    {
        obj.insert("Data".into(), parsed);
    }
    let mut m = Map::new();
    for k in ["_type", "subject"] {
        if let Some(v) = statement.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    m.insert("predicateType".into(), pt.clone());
    m.insert("type".into(), pt);
    m.insert("predicate".into(), predicate.clone());
    if let Value::Object(p) = predicate {
        for (k, v) in p {
            m.insert(k, v);
        }
    }
    Value::Object(m)
}
