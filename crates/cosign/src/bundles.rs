//! Sigstore bundles stored as OCI 1.1 referrers of the image (cosign v3, sigstore-cosign notes §3.2).
//!
//! Writing ([`sign_image_bundle`], [`sign_image_bundle_with`], [`attest_image_bundle`]): a DSSE envelope
//! over an in-toto statement whose subject is the image digest (predicate type
//! `https://sigstore.dev/cosign/sign/v1` for `sign`, with `-a` annotations as the subject's
//! `annotations` and an empty predicate, as cosign v3 writes it), signed with a key, wrapped in a
//! bundle v0.3 with `publicKey` hint material — or the given signing certificate as `certificate`
//! material — and **no** tlog entries (offline, as cosign `--tlog-upload=false`). It is pushed as the
//! single layer of a manifest with `artifactType` `application/vnd.dev.sigstore.bundle.v0.3+json`
//! (also on the empty config), a `subject`, and cosign's annotations; the fallback tag index is
//! maintained when the registry has no referrers API.
//!
//! Signature repository (`COSIGN_REPOSITORY`, `--signature-repository`): as cosign v3's
//! `WriteReferrer`/`GetBundles` do, the bundle blobs and referrer manifest are written to that
//! repository (the `subject` still names the image's digest, which may not exist there), and the
//! referrers of the image digest are listed and fetched from it.
//!
//! Reading ([`verify_image_bundles`], [`verify_image_bundles_in`]): lists the image's referrers (API or
//! fallback tag), fetches every manifest whose layer is a Sigstore bundle, and verifies each with
//! [`sigil_sigstore::verify_bundle`]: the statement subject must be the image digest and the predicate
//! type the wanted one. Keyless bundles need a trusted root; key bundles without a tlog are accepted
//! only for an explicitly given key. [`check_subject_annotations`] is cosign's `-a` check for bundles.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use sigil_artifacts::{Mechanism, Referrers};
use sigil_client::{BlobBody, PutCondition};
use sigil_oci::{Descriptor, Digest, ImageManifest, Manifest, Reference, media_type as mt};
use sigil_sigstore::{Artifact, Bundle, Policy};

use crate::error::{CosignError, SignatureFailure};
use crate::keys::PrivateKey;
use crate::legacy::{MAX_PAYLOAD, Trust, resolve_digest};
use crate::payload::{self, Envelope};

/// Artifact type (and layer media type) of bundle v0.3 referrers.
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Predicate type of cosign v3 image signatures.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Manifest annotation: what the bundle holds.
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// Manifest annotation: the statement's predicate type.
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// Most bundle referrers examined per image.
pub const MAX_BUNDLES: usize = 100;

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// The referrer manifest's digest.
    pub referrer: Digest,
    /// The DSSE envelope.
    pub envelope: Envelope,
    /// The decoded in-toto statement.
    pub statement: Value,
    /// Its predicate type.
    pub predicate_type: String,
    /// The verified signing time, when a tlog entry or timestamp established one.
    pub signing_time: Option<i64>,
}

/// Builds a keyed bundle v0.3 (DSSE over `statement`, `publicKey` hint, no tlog entries).
pub fn keyed_bundle(signer: &PrivateKey, statement: &[u8]) -> Result<Vec<u8>, CosignError> {
    keyed_bundle_with(signer, statement, None)
}

/// Builds a bundle v0.3 signed with `signer` (DSSE over `statement`, no tlog entries). The
/// verification material is `certificate` (DER; its public key must be the signer's) when given,
/// else a `publicKey` hint.
pub fn keyed_bundle_with(
    signer: &PrivateKey,
    statement: &[u8],
    certificate: Option<&[u8]>,
) -> Result<Vec<u8>, CosignError> {
    let spki = signer.public_key().to_spki_der()?;
    let material = match certificate {
        Some(leaf) => {
            check_certificate_key(leaf, &spki)?;
            serde_json::json!({"certificate": {"rawBytes": B64.encode(leaf)}, "tlogEntries": []})
        }
        None => serde_json::json!({
            "publicKey": {"hint": B64.encode(Sha256::digest(&spki))},
            "tlogEntries": [],
        }),
    };
    let sig = signer.sign(&payload::pae(payload::INTOTO_PAYLOAD_TYPE, statement))?;
    let bundle = serde_json::json!({
        "mediaType": BUNDLE_ARTIFACT_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": B64.encode(statement),
            "payloadType": payload::INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": B64.encode(sig)}],
        },
    });
    serde_json::to_vec(&bundle).map_err(|e| CosignError::Sign(e.to_string()))
}

/// The statement cosign v3 signs for `sign`: subject = the image digest, no name, no predicate.
pub fn sign_statement(digest: &Digest) -> Vec<u8> {
    let v = serde_json::json!({
        "_type": payload::STATEMENT_V1,
        "subject": [{"digest": {digest.algorithm().as_str(): digest.encoded()}}],
        "predicateType": SIGN_PREDICATE_TYPE,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The statement cosign v3 (≥ 3.0.5) signs for `sign -a k=v`: subject = the image digest with the
/// annotations as the subject's `annotations` (string values), and an empty predicate.
pub fn sign_statement_with(digest: &Digest, annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let v = serde_json::json!({
        "_type": payload::STATEMENT_V1,
        "subject": [{
            "digest": {digest.algorithm().as_str(): digest.encoded()},
            "annotations": annotations,
        }],
        "predicateType": SIGN_PREDICATE_TYPE,
        "predicate": {},
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Fails unless `leaf` (DER certificate) carries the public key `spki` (DER).
fn check_certificate_key(leaf: &[u8], spki: &[u8]) -> Result<(), CosignError> {
    let cert_spki = sigil_sigstore::legacy::certificate_spki(leaf)
        .map_err(|e| CosignError::Invalid(format!("--certificate: {e}")))?;
    if cert_spki != spki {
        return Err(CosignError::Invalid(
            "the certificate's public key is not the signing key's".into(),
        ));
    }
    Ok(())
}

/// cosign's `-a k=v` check for bundles (`IntotoSubjectClaimVerifier`): every required annotation
/// must be among the `annotations` of a statement subject naming `digest`. Returns the first missing
/// `(key, value)`.
pub fn check_subject_annotations(
    statement: &Value,
    digest: &Digest,
    required: &BTreeMap<String, String>,
) -> Result<(), SignatureFailure> {
    let subjects: Vec<&Value> = statement
        .get("subject")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|s| {
                    s.pointer(&format!("/digest/{}", digest.algorithm().as_str()))
                        .and_then(Value::as_str)
                        == Some(digest.encoded())
                })
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in required {
        let found = subjects.iter().any(|s| {
            s.get("annotations")
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                == Some(v.as_str())
        });
        if !found {
            return Err(SignatureFailure::Annotation {
                key: k.clone(),
                value: v.clone(),
            });
        }
    }
    Ok(())
}

/// Where bundle referrers of `image` live: the repository `signature_repo` (`registry/repo`, as
/// `COSIGN_REPOSITORY`) or the image's own.
pub fn bundle_repository(
    image: &Reference,
    signature_repo: Option<&str>,
) -> Result<Reference, CosignError> {
    match signature_repo.map(str::trim) {
        None => Ok(image.clone()),
        Some("") => Err(CosignError::Invalid(
            "signature repository is empty (unset COSIGN_REPOSITORY or give registry/repo)".into(),
        )),
        Some(r) => {
            let parsed = Reference::parse(r)
                .map_err(|e| CosignError::Invalid(format!("signature repository {r:?}: {e}")))?;
            if parsed.digest.is_some() {
                return Err(CosignError::Invalid(format!(
                    "signature repository {r:?}: give a repository, not a digest reference"
                )));
            }
            Ok(parsed)
        }
    }
}

/// Pushes `bundle` as a referrer of `image@digest`; returns the referrer's digest.
pub async fn push_bundle(
    referrers: &Referrers,
    image: &Reference,
    digest: &Digest,
    bundle: Vec<u8>,
    predicate_type: &str,
) -> Result<Digest, CosignError> {
    push_bundle_to(referrers, image, image, digest, bundle, predicate_type).await
}

/// Pushes `bundle` as a referrer of `image@digest` into the repository of `target` (the image's own,
/// or a signature repository); returns the referrer's digest. The subject descriptor is read from
/// `image`.
pub async fn push_bundle_to(
    referrers: &Referrers,
    image: &Reference,
    target: &Reference,
    digest: &Digest,
    bundle: Vec<u8>,
    predicate_type: &str,
) -> Result<Digest, CosignError> {
    let client = referrers.client();
    let subject_ref = image.with_digest(digest.clone());
    let subject = client
        .head_manifest(&subject_ref)
        .await?
        .ok_or_else(|| CosignError::Invalid(format!("{subject_ref}: manifest not found")))?;
    let subject = Descriptor {
        media_type: subject.media_type,
        digest: subject.digest,
        size: subject.size,
        urls: None,
        annotations: None,
        data: None,
        artifact_type: None,
        platform: None,
    };
    let layer = Descriptor::for_bytes(BUNDLE_ARTIFACT_TYPE, &bundle);
    let mut config = Descriptor::for_bytes(mt::OCI_EMPTY, b"{}");
    config.artifact_type = Some(BUNDLE_ARTIFACT_TYPE.to_owned());
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.to_owned()),
        artifact_type: Some(BUNDLE_ARTIFACT_TYPE.to_owned()),
        config: config.clone(),
        layers: vec![layer.clone()],
        subject: Some(subject),
        annotations: Some(BTreeMap::from([
            (CONTENT_ANNOTATION.to_owned(), "dsse-envelope".to_owned()),
            (PREDICATE_ANNOTATION.to_owned(), predicate_type.to_owned()),
            (
                "org.opencontainers.image.created".to_owned(),
                payload::now_rfc3339(),
            ),
        ])),
    };
    let bytes = manifest.to_bytes();
    let mut desc = Descriptor::for_bytes(mt::OCI_MANIFEST, &bytes);
    desc.artifact_type = Some(BUNDLE_ARTIFACT_TYPE.to_owned());
    desc.annotations = manifest.annotations.clone();
    let at = target.with_digest(desc.digest.clone());
    let size = bundle.len() as u64;
    client
        .push_blob(&at, &layer.digest, Some(size), BlobBody::bytes(bundle))
        .await?;
    client
        .push_blob(
            &at,
            &config.digest,
            Some(2),
            BlobBody::bytes(b"{}".to_vec()),
        )
        .await?;
    let resp = client
        .put_manifest(
            &at,
            Bytes::from(bytes),
            mt::OCI_MANIFEST,
            PutCondition::None,
        )
        .await?;
    if resp.oci_subject.as_deref().map(str::trim) == Some(digest.to_string().as_str()) {
        referrers.set_mechanism(target, Mechanism::Api);
    } else {
        referrers
            .add_to_fallback_index(target, digest, std::slice::from_ref(&desc))
            .await?;
    }
    Ok(desc.digest)
}

/// `sign --bundle`: signs `image` (a tag is resolved first) with a keyed bundle referrer; returns
/// `(image digest, referrer digest)`.
pub async fn sign_image_bundle(
    referrers: &Referrers,
    image: &Reference,
    signer: &PrivateKey,
) -> Result<(Digest, Digest), CosignError> {
    let digest = resolve_digest(referrers.client(), image).await?;
    let bundle = keyed_bundle(signer, &sign_statement(&digest))?;
    let r = push_bundle(referrers, image, &digest, bundle, SIGN_PREDICATE_TYPE).await?;
    Ok((digest, r))
}

/// What `sign --bundle` adds to a plain keyed bundle.
#[derive(Debug, Clone, Default)]
pub struct BundleSignOptions {
    /// `-a k=v`: recorded as the statement subject's `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `--certificate` (DER): carried as the bundle's `certificate` verification material; its key
    /// must be the signing key.
    pub certificate: Option<Vec<u8>>,
    /// `--certificate-chain` (DER, issuer first): checked at signing time (the leaf must be signed by
    /// the first certificate, each by the next, all valid now); a v0.3 bundle carries only the leaf.
    pub certificate_chain: Vec<Vec<u8>>,
    /// `COSIGN_REPOSITORY` (`registry/repo`): where the referrer is written.
    pub signature_repo: Option<String>,
}

/// `sign --bundle` with annotations, a signing certificate and/or a signature repository; returns
/// `(image digest, referrer digest)`.
pub async fn sign_image_bundle_with(
    referrers: &Referrers,
    image: &Reference,
    signer: &PrivateKey,
    opts: &BundleSignOptions,
) -> Result<(Digest, Digest), CosignError> {
    let target = bundle_repository(image, opts.signature_repo.as_deref())?;
    if let Some(leaf) = &opts.certificate {
        check_certificate_key(leaf, &signer.public_key().to_spki_der()?)?;
        if !opts.certificate_chain.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            sigil_sigstore::legacy::verify_certificate(
                leaf,
                &opts.certificate_chain,
                &Policy::Certificate(leaf.clone()),
                None,
                &[now],
                false,
            )
            .map_err(|e| CosignError::Invalid(format!("--certificate-chain: {e}")))?;
        }
    } else if !opts.certificate_chain.is_empty() {
        return Err(CosignError::Invalid(
            "--certificate-chain needs --certificate".into(),
        ));
    }
    let digest = resolve_digest(referrers.client(), image).await?;
    let statement = if opts.annotations.is_empty() {
        sign_statement(&digest)
    } else {
        sign_statement_with(&digest, &opts.annotations)
    };
    let bundle = keyed_bundle_with(signer, &statement, opts.certificate.as_deref())?;
    let r = push_bundle_to(
        referrers,
        image,
        &target,
        &digest,
        bundle,
        SIGN_PREDICATE_TYPE,
    )
    .await?;
    Ok((digest, r))
}

/// `attest --bundle`: an attestation (as [`crate::attest_image`] builds it) stored as a keyed bundle
/// referrer; returns `(image digest, referrer digest)`.
pub async fn attest_image_bundle(
    referrers: &Referrers,
    image: &Reference,
    signer: &PrivateKey,
    predicate_type: &str,
    predicate: &[u8],
) -> Result<(Digest, Digest), CosignError> {
    let (uri, predicate) = payload::predicate_for(predicate_type, predicate)?;
    let digest = resolve_digest(referrers.client(), image).await?;
    let statement = payload::statement(&image.repository_name(), &digest, &uri, predicate);
    let bundle = keyed_bundle(signer, &statement)?;
    let r = push_bundle(referrers, image, &digest, bundle, &uri).await?;
    Ok((digest, r))
}

/// [`attest_image_bundle`] writing the referrer into `signature_repo` (`registry/repo`) when given.
pub async fn attest_image_bundle_in(
    referrers: &Referrers,
    image: &Reference,
    signer: &PrivateKey,
    predicate_type: &str,
    predicate: &[u8],
    signature_repo: Option<&str>,
) -> Result<(Digest, Digest), CosignError> {
    let target = bundle_repository(image, signature_repo)?;
    let (uri, predicate) = payload::predicate_for(predicate_type, predicate)?;
    let digest = resolve_digest(referrers.client(), image).await?;
    let statement = payload::statement(&image.repository_name(), &digest, &uri, predicate);
    let bundle = keyed_bundle(signer, &statement)?;
    let r = push_bundle_to(referrers, image, &target, &digest, bundle, &uri).await?;
    Ok((digest, r))
}

/// The Sigstore policy/root pairs the trust allows (one per key, or the certificate trust).
fn policies(trust: &Trust) -> Result<Vec<(Policy, sigil_sigstore::TrustedRoot)>, CosignError> {
    let mut out = Vec::new();
    for k in &trust.keys {
        let der = k.to_spki_der()?;
        let key = sigil_sigstore::PublicKey::from_spki_der(&der, "--key").map_err(|e| {
            CosignError::Key(format!("key not usable for bundle verification: {e}"))
        })?;
        out.push((
            Policy::PublicKey(key),
            sigil_sigstore::TrustedRoot::default(),
        ));
    }
    if trust.keys.is_empty()
        && let Some(ct) = &trust.certificate
    {
        out.push((ct.policy.clone(), ct.root.clone().unwrap_or_default()));
    }
    Ok(out)
}

/// Verifies one bundle (JSON) for `digest`; `wanted` is the required predicate type URI.
pub fn check_bundle(
    json: &[u8],
    digest: &Digest,
    trust: &Trust,
    wanted: Option<&str>,
) -> Result<(Envelope, Value, String, Option<i64>), SignatureFailure> {
    let bundle = Bundle::from_json(json)
        .map_err(|e| SignatureFailure::Payload(format!("not a Sigstore bundle: {e}")))?;
    let hex = digest.encoded();
    let mut raw = [0u8; 32];
    if digest.algorithm().as_str() != "sha256" || hex.len() != 64 {
        return Err(SignatureFailure::Payload(
            "only sha256 image digests are supported for bundles".into(),
        ));
    }
    for (i, b) in raw.iter_mut().enumerate() {
        *b = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| SignatureFailure::Payload("bad digest".into()))?;
    }
    let pols = policies(trust).map_err(|e| SignatureFailure::Certificate(e.to_string()))?;
    let mut last = SignatureFailure::BadSignature;
    for (policy, root) in &pols {
        match sigil_sigstore::verify_bundle(&bundle, Some(&Artifact::Sha256(raw)), policy, root) {
            Ok(v) => {
                // A pinned certificate's chain (when given) and validity at the signing time — or
                // now, without a transparency-log time — are checked here (verify_bundle checks the
                // certificate only against the pin).
                if let (Some(ct), Some(leaf)) = (&trust.certificate, bundle.material.leaf())
                    && trust.keys.is_empty()
                    && matches!(ct.policy, Policy::Certificate(_))
                {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                        .unwrap_or(0);
                    let t = v.signing_time.unwrap_or(now);
                    sigil_sigstore::legacy::verify_certificate(
                        leaf,
                        &ct.chain,
                        policy,
                        ct.root.as_ref(),
                        &[t],
                        ct.require_sct,
                    )?;
                }
                let (payload_type, body) = v.payload.clone().ok_or_else(|| {
                    SignatureFailure::Payload("bundle is not a DSSE envelope".into())
                })?;
                let statement: Value = serde_json::from_slice(&body).map_err(|e| {
                    SignatureFailure::Payload(format!("statement is not JSON: {e}"))
                })?;
                let found = statement
                    .get("predicateType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if let Some(w) = wanted
                    && w != found
                {
                    return Err(SignatureFailure::PredicateType {
                        wanted: w.to_owned(),
                        found,
                    });
                }
                let sigs = match &bundle.content {
                    sigil_sigstore::Content::Dsse(env) => env
                        .signatures
                        .iter()
                        .map(|(s, k)| payload::DsseSignature {
                            keyid: k.clone().unwrap_or_default(),
                            sig: B64.encode(s),
                        })
                        .collect(),
                    sigil_sigstore::Content::MessageSignature { .. } => Vec::new(),
                };
                let envelope = Envelope {
                    payload_type,
                    payload: B64.encode(&body),
                    signatures: sigs,
                };
                return Ok((envelope, statement, found, v.signing_time));
            }
            Err(e) => last = SignatureFailure::Sigstore(e),
        }
    }
    Err(last)
}

/// The bundles referring to `image@digest`: `(referrer digest, bundle JSON or why it was unusable)`.
/// Referrers whose layer is not a Sigstore bundle are skipped.
pub async fn fetch_bundles(
    referrers: &Referrers,
    image: &Reference,
    digest: &Digest,
) -> Result<Vec<(Digest, Result<Bytes, SignatureFailure>)>, CosignError> {
    let client = referrers.client();
    let listed = referrers.list(image, digest, &[]).await?;
    let mut out = Vec::new();
    for d in listed {
        // ghcr.io and cosign's fallback index may report the empty config type: check the layer.
        let maybe = match d.artifact_type.as_deref() {
            None | Some(mt::OCI_EMPTY) => true,
            Some(t) => t.starts_with("application/vnd.dev.sigstore.bundle"),
        };
        if !maybe || out.len() >= MAX_BUNDLES {
            continue;
        }
        let at = image.with_digest(d.digest.clone());
        let fetch = |why: String| SignatureFailure::Fetch {
            digest: d.digest.clone(),
            why,
        };
        let m = match client.get_manifest(&at).await {
            Ok(m) => m,
            Err(e) => {
                out.push((d.digest.clone(), Err(fetch(e.summary()))));
                continue;
            }
        };
        let layer = match Manifest::parse(&m.bytes, Some(&m.media_type)) {
            Ok((Manifest::Image(im), _)) => im.layers.into_iter().find(|l| {
                l.media_type
                    .starts_with("application/vnd.dev.sigstore.bundle")
            }),
            _ => None,
        };
        let Some(layer) = layer else {
            continue;
        };
        let r = match client.get_blob_bytes(&at, &layer.digest, MAX_PAYLOAD).await {
            Ok(b) if layer.digest.verify(&b).is_ok() => Ok(b),
            Ok(_) => Err(SignatureFailure::PayloadDigest(layer.digest.clone())),
            Err(e) => Err(fetch(e.summary())),
        };
        out.push((d.digest.clone(), r));
    }
    Ok(out)
}

/// Verifies every bundle referrer of `image`; returns the verified ones and one failure per rejected
/// bundle. `wanted`: predicate type URI the statement must have.
pub async fn verify_image_bundles(
    referrers: &Referrers,
    image: &Reference,
    trust: &Trust,
    wanted: Option<&str>,
) -> Result<(Vec<VerifiedBundle>, Vec<SignatureFailure>), CosignError> {
    verify_image_bundles_in(referrers, image, trust, wanted, None).await
}

/// [`verify_image_bundles`] with the referrers listed and fetched from `signature_repo`
/// (`registry/repo`, as `COSIGN_REPOSITORY`) instead of the image's repository; the image digest is
/// still resolved in the image's repository.
pub async fn verify_image_bundles_in(
    referrers: &Referrers,
    image: &Reference,
    trust: &Trust,
    wanted: Option<&str>,
    signature_repo: Option<&str>,
) -> Result<(Vec<VerifiedBundle>, Vec<SignatureFailure>), CosignError> {
    let repo = bundle_repository(image, signature_repo)?;
    let digest = resolve_digest(referrers.client(), image).await?;
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for (referrer, blob) in fetch_bundles(referrers, &repo, &digest).await? {
        match blob.and_then(|b| check_bundle(&b, &digest, trust, wanted)) {
            Ok((envelope, statement, predicate_type, signing_time)) => ok.push(VerifiedBundle {
                referrer,
                envelope,
                statement,
                predicate_type,
                signing_time,
            }),
            Err(e) => failures.push(e),
        }
    }
    Ok((ok, failures))
}
