//! The verification entry point [`verify_bundle`] (sigstore-cosign notes §4) and its policy types.

use regex::Regex;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::bundle::{Bundle, Content};
use crate::crypto::PublicKey;
use crate::trust::TrustedRoot;
use crate::{VerifyFailure, cert, tlog, tsa};

/// What was signed.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact bytes.
    Bytes(&'a [u8]),
    /// Only the artifact's SHA-256.
    Sha256([u8; 32]),
}

impl Artifact<'_> {
    fn sha256(&self) -> [u8; 32] {
        match self {
            Artifact::Bytes(b) => Sha256::digest(b).into(),
            Artifact::Sha256(d) => *d,
        }
    }
}

/// Matches a string exactly or by an (unanchored, as cosign) regular expression.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Exact match.
    Exact(String),
    /// Regular expression.
    Regex(Regex),
}

impl Matcher {
    /// Builds a regexp matcher.
    pub fn regex(re: &str) -> Result<Self, VerifyFailure> {
        Regex::new(re)
            .map(Matcher::Regex)
            .map_err(|e| VerifyFailure::PolicyInvalid(e.to_string()))
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(e) => e == s,
            Matcher::Regex(r) => r.is_match(s),
        }
    }

    fn describe(&self) -> String {
        match self {
            Matcher::Exact(e) => e.clone(),
            Matcher::Regex(r) => format!("/{}/", r.as_str()),
        }
    }
}

/// What the signature must be verified against.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Keyless: Fulcio certificate with this SAN identity and OIDC issuer.
    Identity {
        /// SAN identity.
        subject: Matcher,
        /// OIDC issuer.
        issuer: Matcher,
    },
    /// A public key (the bundle carries a key hint).
    PublicKey(PublicKey),
    /// A pinned certificate (DER); the bundle's certificate, if any, must equal it.
    Certificate(Vec<u8>),
}

/// Summary of the signing certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateSummary {
    /// SAN identities.
    pub san: Vec<String>,
    /// OIDC issuer (OID .1.8 or .1.1).
    pub issuer: Option<String>,
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The earliest verified signing time (Unix seconds), if any was established.
    pub signing_time: Option<i64>,
    /// The signing certificate, for certificate-based policies.
    pub certificate_summary: Option<CertificateSummary>,
    /// For DSSE: (payloadType, payload).
    pub payload: Option<(String, Vec<u8>)>,
}

/// The predicate type URI of a cosign `--type` short name (`slsaprovenance1`, `spdxjson`, ...), if `t`
/// is one.
pub fn known_predicate_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "link" => "https://in-toto.io/Link/v1",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        _ => return None,
    })
}

/// Maps cosign's `--type` short names to predicate type URIs (anything else is returned verbatim).
pub fn predicate_type_uri(t: &str) -> &str {
    known_predicate_type(t).unwrap_or(t)
}

/// DSSE pre-authentication encoding.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Verifies `bundle` for `artifact` under `policy` with `root`. Fails closed, naming the failed check.
///
/// Trusted times come from Rekor SETs (Rekor key by `logId`, `validFor` at `integratedTime`) and, when the
/// root has timestamp authorities, from RFC 3161 timestamps (every timestamp must then verify; with no TSAs in
/// the root, timestamps are ignored as cosign does without `--use-signed-timestamps`). Every tlog entry must
/// pass its SET (if present), body consistency, and inclusion proof + checkpoint (required for bundles ≥ v0.2).
///
/// With [`Policy::PublicKey`] a bundle without tlog entries or timestamps is accepted (cosign's
/// `--tlog-upload=false` key bundles): the explicitly given key is the trust anchor, so no trusted time is
/// needed. Keyless ([`Policy::Identity`]) bundles always need a tlog entry and a trusted time.
pub fn verify_bundle(
    bundle: &Bundle,
    artifact: Option<&Artifact<'_>>,
    policy: &Policy,
    root: &TrustedRoot,
) -> Result<Verified, VerifyFailure> {
    // 1. The signature and what it covers.
    let (signature, dsse) = match &bundle.content {
        Content::MessageSignature { signature, .. } => (signature.as_slice(), None),
        Content::Dsse(env) => {
            let [(sig, _)] = env.signatures.as_slice() else {
                return Err(VerifyFailure::PayloadInvalid(
                    "DSSE envelope must have exactly one signature".into(),
                ));
            };
            (sig.as_slice(), Some(env))
        }
    };
    let artifact_digest = artifact.map(Artifact::sha256);

    // 2. The verification key and (for certificate policies) the leaf.
    let leaf_der: Option<Vec<u8>> = match policy {
        Policy::Identity { .. } => Some(
            bundle
                .material
                .leaf()
                .ok_or(VerifyFailure::MissingMaterial("a signing certificate"))?
                .to_vec(),
        ),
        Policy::Certificate(pinned) => {
            if let Some(l) = bundle.material.leaf()
                && l != pinned.as_slice()
            {
                return Err(VerifyFailure::ChainInvalid(
                    "bundle certificate differs from the given certificate".into(),
                ));
            }
            Some(pinned.clone())
        }
        Policy::PublicKey(_) => None,
    };
    let leaf = leaf_der
        .as_deref()
        .map(cert::parse)
        .transpose()
        .map_err(|_| VerifyFailure::ChainInvalid("unparseable leaf certificate".into()))?;
    let (key, key_der, is_cert) = match (policy, &leaf, &leaf_der) {
        (Policy::PublicKey(k), _, _) => (k.clone(), Vec::new(), false),
        (_, Some(c), Some(d)) => (
            cert::public_key(c)
                .ok_or_else(|| VerifyFailure::ChainInvalid("unsupported leaf key".into()))?,
            d.clone(),
            true,
        ),
        _ => return Err(VerifyFailure::MissingMaterial("a verification key")),
    };
    // 3. Signature over the artifact / PAE, and artifact binding.
    let mut payload = None;
    match &bundle.content {
        Content::MessageSignature { digest, .. } => {
            let want = artifact_digest.ok_or(VerifyFailure::MissingMaterial(
                "the artifact for a message signature",
            ))?;
            if let Some((alg, d)) = digest {
                if alg != "SHA2_256" {
                    return Err(VerifyFailure::ArtifactDigestMismatch(format!(
                        "unsupported digest algorithm {alg}"
                    )));
                }
                if d.as_slice() != want {
                    return Err(VerifyFailure::ArtifactDigestMismatch(
                        "bundle messageDigest differs from the artifact".into(),
                    ));
                }
            }
            let ok = match (&key, artifact) {
                (PublicKey::Ed25519(_), Some(Artifact::Bytes(b))) => {
                    key.verify(b, signature, crate::crypto::HashAlg::Sha256)
                }
                (PublicKey::Ed25519(_), _) => false,
                (PublicKey::P256(_), _) => key.verify_prehash(&want, signature),
                (PublicKey::P384(_), Some(Artifact::Bytes(b))) => {
                    key.verify(b, signature, crate::crypto::HashAlg::Sha384)
                }
                (PublicKey::P384(_), _) => key.verify_prehash(&want, signature),
                // cosign signs blobs with RSA keys as PKCS#1 v1.5 (or PSS) over the SHA-256 digest.
                (PublicKey::Rsa(_), _) => key.verify_prehash(&want, signature),
            };
            if !ok {
                return Err(VerifyFailure::SignatureInvalid(
                    "message signature does not verify over the artifact".into(),
                ));
            }
        }
        Content::Dsse(env) => {
            if !key.verify(
                &pae(&env.payload_type, &env.payload),
                signature,
                key.default_hash(),
            ) {
                return Err(VerifyFailure::SignatureInvalid(
                    "DSSE signature does not verify over the PAE".into(),
                ));
            }
            if let Some(d) = artifact_digest {
                check_subject(&env.payload_type, &env.payload, &d)?;
            }
            payload = Some((env.payload_type.clone(), env.payload.clone()));
        }
    }

    // 4. Transparency log entries and timestamps → trusted times.
    let mut times = Vec::new();
    let expect = tlog::Expect {
        signature,
        key_der: if is_cert { &key_der } else { &[] },
        is_cert,
        artifact_sha256: match &bundle.content {
            Content::MessageSignature { .. } => artifact_digest.as_ref().map(|d| d.as_slice()),
            Content::Dsse(_) => None,
        },
        dsse: dsse.map(|e| (e.payload.as_slice(), e.payload_type.as_str())),
    };
    let spki_der;
    let expect = if is_cert {
        expect
    } else {
        spki_der = spki_of(&key);
        tlog::Expect {
            key_der: &spki_der,
            ..expect
        }
    };
    for e in &bundle.tlog_entries {
        tlog::verify_body(e, &expect)?;
        let log = if e.signed_entry_timestamp.is_some() {
            let (t, log) = tlog::verify_set(e, &root.tlogs)?;
            times.push(t);
            log
        } else {
            tlog::find_log(e, &root.tlogs).map_err(|_| {
                VerifyFailure::InclusionProofInvalid("no trusted Rekor key for this logId".into())
            })?
        };
        match &e.inclusion_proof {
            Some(p) => {
                tlog::verify_inclusion(p, &e.canonicalized_body)?;
                tlog::verify_checkpoint(p, log)?;
            }
            None if bundle.minor_version >= 2 => {
                return Err(VerifyFailure::InclusionProofInvalid(
                    "bundle v0.2+ entry has no inclusion proof".into(),
                ));
            }
            None => {}
        }
    }
    if !root.timestamp_authorities.is_empty() {
        for ts in &bundle.rfc3161_timestamps {
            times.push(tsa::verify(ts, signature, &root.timestamp_authorities)?);
        }
    }

    // 5. Certificate checks.
    let summary = match (&leaf, &leaf_der) {
        (Some(leaf), Some(leaf_der)) => {
            cert::check_critical(leaf)?;
            let summary = CertificateSummary {
                san: cert::san_identities(leaf),
                issuer: cert::oidc_issuer(leaf),
            };
            if let Policy::Identity { subject, issuer } = policy {
                if bundle.tlog_entries.is_empty() {
                    return Err(VerifyFailure::SetInvalid(
                        "keyless bundle has no transparency log entry".into(),
                    ));
                }
                if times.is_empty() {
                    return Err(VerifyFailure::NoTrustedTime);
                }
                check_keyless(
                    leaf_der, leaf, &summary, root, &times, subject, issuer, true,
                )?;
            } else {
                for t in &times {
                    if !cert::valid_at(leaf, *t) {
                        return Err(VerifyFailure::CertificateExpiredAtSigningTime(*t));
                    }
                }
            }
            Some(summary)
        }
        _ => None,
    };
    Ok(Verified {
        signing_time: times.iter().min().copied(),
        certificate_summary: summary,
        payload,
    })
}

/// Keyless checks of a leaf at the trusted `times`: leaf usage, path to a trusted Fulcio CA valid at every
/// time, SCT (when `require_sct`), SAN identity and OIDC issuer. A certificate without an issuer extension
/// (2021 Fulcio) is matched as the empty string, as cosign does, so only an issuer matcher accepting `""`
/// (e.g. the regexp `.*`) accepts it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_keyless(
    leaf_der: &[u8],
    leaf: &x509_cert::Certificate,
    summary: &CertificateSummary,
    root: &TrustedRoot,
    times: &[i64],
    subject: &Matcher,
    issuer: &Matcher,
    require_sct: bool,
) -> Result<(), VerifyFailure> {
    chain_to_fulcio(leaf_der, leaf, root, times, require_sct)?;
    if !summary.san.iter().any(|s| subject.matches(s)) {
        return Err(VerifyFailure::IdentityMismatch {
            expected: subject.describe(),
            found: summary.san.clone(),
        });
    }
    if !issuer.matches(summary.issuer.as_deref().unwrap_or("")) {
        return Err(VerifyFailure::IssuerMismatch {
            expected: issuer.describe(),
            found: summary.issuer.clone(),
        });
    }
    Ok(())
}

/// The certificate part of keyless verification without the identity: code-signing usage, a path to
/// a Fulcio CA of `root` valid at every time in `times`, and (when `require_sct`) an embedded SCT from
/// one of the root's CT logs.
pub(crate) fn chain_to_fulcio(
    leaf_der: &[u8],
    leaf: &x509_cert::Certificate,
    root: &TrustedRoot,
    times: &[i64],
    require_sct: bool,
) -> Result<(), VerifyFailure> {
    if times.is_empty() {
        return Err(VerifyFailure::NoTrustedTime);
    }
    cert::check_leaf_usage(leaf)?;
    let mut last = None;
    let mut issuer_cert = None;
    for ca in &root.certificate_authorities {
        if !times.iter().all(|t| ca.valid_for.contains(*t)) {
            continue;
        }
        match cert::verify_path(leaf_der, leaf, &ca.chain, times) {
            Ok(i) => {
                issuer_cert = Some(i);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let issuer_cert = issuer_cert.ok_or_else(|| {
        last.unwrap_or_else(|| {
            VerifyFailure::ChainInvalid("no trusted CA valid at the signing time".into())
        })
    })?;
    if require_sct {
        cert::verify_sct(leaf_der, leaf, &issuer_cert, &root.ctlogs)?;
    }
    Ok(())
}

pub(crate) fn spki_of(key: &PublicKey) -> Vec<u8> {
    key.to_spki_der()
}

/// The in-toto statement must name `digest` (sha256) among its subjects.
fn check_subject(
    payload_type: &str,
    payload: &[u8],
    digest: &[u8; 32],
) -> Result<(), VerifyFailure> {
    if payload_type != "application/vnd.in-toto+json" {
        return Err(VerifyFailure::PayloadInvalid(format!(
            "payloadType {payload_type} is not in-toto"
        )));
    }
    let st: Value = serde_json::from_slice(payload)
        .map_err(|_| VerifyFailure::PayloadInvalid("statement is not JSON".into()))?;
    let want = hex(digest);
    let found = st
        .get("subject")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .any(|x| x.pointer("/digest/sha256").and_then(Value::as_str) == Some(want.as_str()))
        });
    if !found {
        return Err(VerifyFailure::ArtifactDigestMismatch(format!(
            "in-toto statement has no subject with sha256 {want}"
        )));
    }
    Ok(())
}
