//! The policy engine's entry points, mapping Kyverno's `type: Notary` attestors as Kyverno does:
//! `cert` and `certChain` PEM become one in-memory `ca` trust store ("kyverno"), `tsaCertChain` the
//! `tsa` store (its self-signed roots; the `tsa:kyverno` store is used only when given); the synthetic
//! policy is strict with identity `*`, at most [`crate::oci::MAX_SIGNATURE_ATTEMPTS`] signatures. Results carry
//! the verified signature (with its signed target descriptor) or a typed reason, and the number of
//! registry requests made.
//!
//! [`verify_attestations_for_policy`] verifies Notary attestations: referrers of the image with a
//! given artifact type, each of which must itself carry a Notary signature verifying with the same
//! attestor; the single layer's JSON is returned for `conditions`.

use serde_json::Value;
use sigil_artifacts::Referrers;
use sigil_client::RegistryClient;
use sigil_oci::{Digest, Reference};

use crate::error::NotaryError;
use crate::oci::{ImageVerification, resolve, verify_with_statement};
use crate::time::now;
use crate::trustpolicy::TrustPolicyStatement;
use crate::truststore::{StoreType, TrustStore};
use crate::x509::Cert;

/// Most attestation referrers examined (as Kyverno).
pub const MAX_ATTESTATIONS: usize = 50;
/// Largest attestation layer read (as Kyverno).
pub const MAX_ATTESTATION_LAYER: u64 = 10 << 20;

/// A Kyverno `certificates` attestor for `type: Notary`.
#[derive(Debug, Clone, Default)]
pub struct NotaryAttestor {
    /// `cert`: PEM certificate(s).
    pub cert: Option<String>,
    /// `certChain`: PEM certificates.
    pub cert_chain: Option<String>,
    /// `tsaCertChain`: PEM certificates of the timestamping authority.
    pub tsa_cert_chain: Option<String>,
}

/// Why the policy check failed.
#[derive(Debug, thiserror::Error)]
pub enum NotaryPolicyError {
    /// Bad attestor, reference or registry failure.
    #[error(transparent)]
    Notary(#[from] NotaryError),
    /// The attestor has no certificates.
    #[error("the Notary attestor has neither `cert` nor `certChain`")]
    NoCertificates,
    /// No signature was found.
    #[error("no Notary signature found for {0}")]
    NoSignatures(String),
    /// Signatures were found but none verified.
    #[error("no Notary signature of {artifact} verified: {}", reasons.join("; "))]
    Rejected {
        /// The artifact.
        artifact: String,
        /// One reason per signature.
        reasons: Vec<String>,
    },
}

/// A verified image signature.
#[derive(Debug, Clone)]
pub struct VerifiedNotarySignature {
    /// The signed artifact's digest.
    pub digest: Digest,
    /// The signature manifest's digest.
    pub signature: Digest,
    /// The signed target descriptor from the payload.
    pub target: crate::envelope::TargetArtifact,
    /// The leaf certificate's subject.
    pub signer: String,
}

/// A verified attestation.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    /// The attestation manifest's digest.
    pub digest: Digest,
    /// Its artifact type.
    pub artifact_type: String,
    /// `{type, predicate, ...manifest fields}` as Kyverno exposes it to `conditions`.
    pub document: Value,
}

/// The result and the registry requests made.
#[derive(Debug)]
pub struct PolicyOutcome<T> {
    /// The result.
    pub result: Result<T, NotaryPolicyError>,
    /// Registry requests made.
    pub requests: u64,
}

fn pem_certs(p: &Option<String>, what: &str) -> Result<Vec<Cert>, NotaryError> {
    match p.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Vec::new()),
        Some(s) => Cert::parse_many(s.as_bytes())
            .map_err(|e| NotaryError::Invalid(format!("attestor `{what}`: {e}"))),
    }
}

/// The synthetic trust store and statement for an attestor.
pub fn attestor_trust(
    a: &NotaryAttestor,
) -> Result<(TrustStore, TrustPolicyStatement), NotaryPolicyError> {
    let mut ca = pem_certs(&a.cert, "cert")?;
    ca.extend(pem_certs(&a.cert_chain, "certChain")?);
    if ca.is_empty() {
        return Err(NotaryPolicyError::NoCertificates);
    }
    let mut store = TrustStore::in_memory();
    store.add_anchors(StoreType::Ca, "kyverno", ca)?;
    let mut stores = vec![(StoreType::Ca, "kyverno".to_owned())];
    let tsa: Vec<Cert> = pem_certs(&a.tsa_cert_chain, "tsaCertChain")?
        .into_iter()
        .filter(Cert::is_self_signed)
        .collect();
    if a.tsa_cert_chain
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
    {
        if tsa.is_empty() {
            return Err(NotaryError::Invalid(
                "attestor `tsaCertChain` has no self-signed root certificate".into(),
            )
            .into());
        }
        store.add(StoreType::Tsa, "kyverno", tsa)?;
        stores.push((StoreType::Tsa, "kyverno".to_owned()));
    }
    Ok((store, TrustPolicyStatement::strict_any("kyverno", stores)))
}

fn outcome(v: ImageVerification) -> Result<ImageVerification, NotaryPolicyError> {
    if v.verified().is_some() {
        return Ok(v);
    }
    if v.signatures.is_empty() {
        return Err(NotaryPolicyError::NoSignatures(v.artifact));
    }
    Err(NotaryPolicyError::Rejected {
        reasons: v
            .signatures
            .iter()
            .map(|s| format!("{}: {}", s.digest, s.reason()))
            .collect(),
        artifact: v.artifact,
    })
}

async fn verify_ref(
    referrers: &Referrers,
    image: &Reference,
    store: &TrustStore,
    stmt: &TrustPolicyStatement,
) -> Result<(Digest, ImageVerification), NotaryPolicyError> {
    let target = resolve(referrers, image).await?;
    let v = verify_with_statement(referrers, image, &target, stmt, store, now()).await?;
    Ok((target.digest, outcome(v)?))
}

fn verified_of(digest: Digest, v: &ImageVerification) -> Option<VerifiedNotarySignature> {
    let s = v.verified()?;
    let sv = s.verification.as_ref().ok()?;
    Some(VerifiedNotarySignature {
        digest,
        signature: s.digest.clone(),
        target: sv.target.clone()?,
        signer: sv
            .envelope
            .as_ref()
            .map(|e| e.chain[0].subject())
            .unwrap_or_default(),
    })
}

/// Verifies the Notary signatures of `image` (a digest reference) against `attestor`.
pub async fn verify_for_policy(
    client: &RegistryClient,
    image: &Reference,
    attestor: &NotaryAttestor,
) -> PolicyOutcome<VerifiedNotarySignature> {
    let before = client.request_count();
    let result = async {
        if image.digest.is_none() {
            return Err(
                NotaryError::Invalid(format!("{image}: a digest reference is required")).into(),
            );
        }
        let (store, stmt) = attestor_trust(attestor)?;
        let referrers = Referrers::new(client.clone());
        let (digest, v) = verify_ref(&referrers, image, &store, &stmt).await?;
        verified_of(digest, &v).ok_or_else(|| NotaryPolicyError::NoSignatures(image.to_string()))
    }
    .await;
    PolicyOutcome {
        result,
        requests: client.request_count().saturating_sub(before),
    }
}

/// Verifies the Notary attestations of `image` of `artifact_type`: each referrer of that type must
/// carry a Notary signature verifying with `attestor`; returns the verified ones (an error when none
/// verified). Without `cert`/`certChain` the signature check is skipped, as Kyverno does.
pub async fn verify_attestations_for_policy(
    client: &RegistryClient,
    image: &Reference,
    artifact_type: &str,
    attestor: &NotaryAttestor,
) -> PolicyOutcome<Vec<VerifiedAttestation>> {
    let before = client.request_count();
    let result = async {
        let digest = image.digest.clone().ok_or_else(|| {
            NotaryError::Invalid(format!("{image}: a digest reference is required"))
        })?;
        let check = match attestor_trust(attestor) {
            Ok(t) => Some(t),
            Err(NotaryPolicyError::NoCertificates) => None,
            Err(e) => return Err(e),
        };
        let referrers = Referrers::new(client.clone());
        let listed = referrers
            .list(image, &digest, &[artifact_type.to_owned()])
            .await
            .map_err(NotaryError::from)?;
        let mut ok = Vec::new();
        let mut reasons = Vec::new();
        for d in listed.iter().take(MAX_ATTESTATIONS) {
            let at = image.with_digest(d.digest.clone());
            if let Some((store, stmt)) = &check {
                match verify_ref(&referrers, &at, store, stmt).await {
                    Ok((vd, _)) if vd == d.digest => {}
                    Ok(_) => {
                        reasons.push(format!(
                            "{}: verified digest differs from the referrer",
                            d.digest
                        ));
                        continue;
                    }
                    Err(e) => {
                        reasons.push(format!("{}: {e}", d.digest));
                        continue;
                    }
                }
            }
            match attestation_document(&referrers, &at, artifact_type).await {
                Ok(doc) => ok.push(VerifiedAttestation {
                    digest: d.digest.clone(),
                    artifact_type: artifact_type.to_owned(),
                    document: doc,
                }),
                Err(e) => reasons.push(format!("{}: {e}", d.digest)),
            }
        }
        if ok.is_empty() {
            if reasons.is_empty() {
                return Err(NotaryPolicyError::NoSignatures(format!(
                    "{image} (no referrer of type {artifact_type})"
                )));
            }
            return Err(NotaryPolicyError::Rejected {
                artifact: format!("{image} ({artifact_type})"),
                reasons,
            });
        }
        Ok(ok)
    }
    .await;
    PolicyOutcome {
        result,
        requests: client.request_count().saturating_sub(before),
    }
}

async fn attestation_document(
    referrers: &Referrers,
    at: &Reference,
    artifact_type: &str,
) -> Result<Value, NotaryError> {
    let client = referrers.client();
    let m = client.get_manifest(at).await?;
    let mut v: Value = serde_json::from_slice(&m.bytes)
        .map_err(|e| NotaryError::Invalid(format!("attestation manifest is not JSON: {e}")))?;
    let layers = v
        .get("layers")
        .or_else(|| v.get("blobs"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let [layer] = layers.as_slice() else {
        return Err(NotaryError::Invalid(format!(
            "attestation manifest must have exactly one layer, found {}",
            layers.len()
        )));
    };
    let ld: sigil_oci::Descriptor = serde_json::from_value(layer.clone())
        .map_err(|e| NotaryError::Invalid(format!("attestation layer: {e}")))?;
    let b = client
        .get_blob_bytes(at, &ld.digest, MAX_ATTESTATION_LAYER)
        .await?;
    ld.digest.verify(&b).map_err(|_| {
        NotaryError::Invalid(format!("attestation layer does not match {}", ld.digest))
    })?;
    let predicate: Value = serde_json::from_slice(&b)
        .map_err(|e| NotaryError::Invalid(format!("attestation layer is not JSON: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), Value::String(artifact_type.to_owned()));
        o.insert("predicate".into(), predicate);
    }
    Ok(v)
}
