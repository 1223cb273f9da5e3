//! Legacy cosign storage: signatures as layers of the manifest tagged `sha256-<hex>.sig`, attestations
//! (DSSE envelopes) as layers of `sha256-<hex>.att`, in the image's repository or a signature repository.
//!
//! Writing fetches the existing manifest and appends a layer (a layer with the same digest, media type and
//! annotations is not added twice). Verification tries every layer and succeeds when at least one passes
//! every check; for a digest reference it costs one manifest GET plus one blob GET per layer.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::Value;
use sigil_client::{BlobBody, PutCondition, RegistryClient};
use sigil_oci::{Descriptor, Digest, ImageManifest, Manifest, Reference, media_type as mt};

use crate::error::{CosignError, SignatureFailure, VerifyError};
use crate::keys::{PrivateKey, PublicKey};
use crate::payload::{self, Envelope};

/// Media type of simple-signing layers.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of DSSE layers.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation holding an attestation's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// Largest payload blob fetched.
pub const MAX_PAYLOAD: u64 = 4 * 1024 * 1024;
/// Most layers in a signature manifest (as cosign).
pub const MAX_LAYERS: usize = 1000;

/// Layer annotation holding the PEM signing certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation holding the PEM chain (issuer first).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Layer annotation holding the Rekor SET bundle.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Layer annotation holding the RFC 3161 timestamp (`{"SignedRFC3161Timestamp": b64}`).
pub const RFC3161_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// Certificate-based trust for legacy layers (keyless identity or a pinned certificate).
#[derive(Debug, Clone)]
pub struct CertificateTrust {
    /// [`Policy::Identity`](sigil_sigstore::Policy::Identity) (keyless; needs `root`) or
    /// [`Policy::Certificate`](sigil_sigstore::Policy::Certificate) (pinned DER certificate).
    pub policy: sigil_sigstore::Policy,
    /// For a pinned certificate: its chain (DER, issuer first, root last); may be empty.
    pub chain: Vec<Vec<u8>>,
    /// Trusted root: Fulcio CAs, Rekor keys (SET of the bundle annotation), TSAs, CT logs.
    pub root: Option<sigil_sigstore::TrustedRoot>,
    /// Require an embedded SCT for keyless certificates (cosign's default; `--insecure-ignore-sct`).
    pub require_sct: bool,
}

/// What a signature must verify with: any one of `keys`, or else the `certificate` trust.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Trusted public keys.
    pub keys: Vec<PublicKey>,
    /// Certificate-based trust (used when `keys` is empty).
    pub certificate: Option<CertificateTrust>,
}

impl Trust {
    /// Trust in one key.
    pub fn key(k: PublicKey) -> Self {
        Self {
            keys: vec![k],
            certificate: None,
        }
    }

    /// Whether any trust anchor is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.certificate.is_none()
    }

    /// Checks `sig` over `message` for a layer: with keys, any key must verify; with certificate trust,
    /// the layer's certificate key must verify, its Rekor SET bundle (and RFC 3161 timestamp) must verify
    /// against the trusted root, and the certificate must pass the policy at the trusted time.
    /// `signed` is what the tlog body records; `tsa_bytes` what a timestamp's imprint covers.
    fn check(
        &self,
        layer: &Descriptor,
        message: &[u8],
        sig: &[u8],
        signed: sigil_sigstore::legacy::Signed<'_>,
        tsa_bytes: &[u8],
    ) -> Result<(), SignatureFailure> {
        use sigil_sigstore::legacy as sl;
        if !self.keys.is_empty() {
            return if self.keys.iter().any(|k| k.verify(message, sig)) {
                Ok(())
            } else {
                Err(SignatureFailure::BadSignature)
            };
        }
        let Some(ct) = &self.certificate else {
            return Err(SignatureFailure::BadSignature);
        };
        let annotated = layer
            .annotation(CERTIFICATE_ANNOTATION)
            .filter(|s| !s.is_empty())
            .map(|pem| {
                sigil_sigstore::crypto::pem_decode(pem, "CERTIFICATE").ok_or_else(|| {
                    SignatureFailure::Certificate(
                        "certificate annotation is not a PEM certificate".into(),
                    )
                })
            })
            .transpose()?;
        let leaf = match (&ct.policy, annotated) {
            (_, Some(l)) => l,
            (sigil_sigstore::Policy::Certificate(pinned), None) => pinned.clone(),
            _ => {
                return Err(SignatureFailure::Certificate(format!(
                    "layer has no {CERTIFICATE_ANNOTATION} annotation"
                )));
            }
        };
        let spki = sl::certificate_spki(&leaf)
            .map_err(|e| SignatureFailure::Certificate(e.to_string()))?;
        let key = PublicKey::from_spki_der(&spki)
            .map_err(|e| SignatureFailure::Certificate(format!("certificate key: {e}")))?;
        if !key.verify(message, sig) {
            return Err(SignatureFailure::BadSignature);
        }
        let mut times = Vec::new();
        if let Some(root) = &ct.root {
            if let Some(b) = layer.annotation(BUNDLE_ANNOTATION) {
                let bundle = sl::RekorBundle::from_json(b.as_bytes())
                    .map_err(|e| SignatureFailure::Certificate(e.to_string()))?;
                times.push(sl::verify_rekor_bundle(
                    &bundle,
                    sig,
                    signed,
                    sl::Signer::Certificate(&leaf),
                    root,
                )?);
            }
            if let Some(ts) = layer.annotation(RFC3161_ANNOTATION)
                && !root.timestamp_authorities.is_empty()
            {
                let resp = serde_json::from_str::<Value>(ts)
                    .ok()
                    .and_then(|v| {
                        v.get("SignedRFC3161Timestamp")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .and_then(|b| B64.decode(b.as_bytes()).ok())
                    .ok_or_else(|| {
                        SignatureFailure::Certificate(
                            "malformed RFC 3161 timestamp annotation".into(),
                        )
                    })?;
                times.push(sl::verify_rfc3161(&resp, tsa_bytes, root)?);
            }
        }
        match &ct.policy {
            sigil_sigstore::Policy::Identity { .. } if times.is_empty() => {
                return Err(SignatureFailure::Certificate(format!(
                    "keyless signature has no verifiable {BUNDLE_ANNOTATION} (Rekor SET) or timestamp"
                )));
            }
            sigil_sigstore::Policy::Certificate(_) if times.is_empty() => {
                // No transparency-log time: the certificate must be valid now.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .unwrap_or(0);
                times.push(now);
            }
            _ => {}
        }
        sl::verify_certificate(
            &leaf,
            &ct.chain,
            &ct.policy,
            ct.root.as_ref(),
            &times,
            ct.require_sct,
        )?;
        Ok(())
    }
}

/// A signature that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    /// The simple-signing payload as JSON.
    pub payload: Value,
    /// Its exact bytes.
    pub payload_bytes: Bytes,
    /// The payload's layer digest.
    pub layer_digest: Digest,
    /// The base64 signature.
    pub signature: String,
}

/// An attestation that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    /// The DSSE envelope.
    pub envelope: Envelope,
    /// The decoded in-toto statement.
    pub statement: Value,
    /// Its predicate type.
    pub predicate_type: String,
}

/// `sha256-<hex>.<suffix>`.
pub fn tag_for(digest: &Digest, suffix: &str) -> String {
    format!(
        "{}-{}.{suffix}",
        digest.algorithm().as_str(),
        digest.encoded()
    )
}

/// The image's digest: the reference's digest if it has one (no request), else a HEAD of the tag.
pub async fn resolve_digest(
    client: &RegistryClient,
    image: &Reference,
) -> Result<Digest, CosignError> {
    if let Some(d) = &image.digest {
        return Ok(d.clone());
    }
    match client.head_manifest(image).await? {
        Some(desc) => Ok(desc.digest),
        None => Err(CosignError::Invalid(format!("{image}: manifest not found"))),
    }
}

/// Where the `.sig`/`.att` tag of `digest` lives: `signature_repo` (`registry/repo`) or the image's repo.
pub fn storage_ref(
    image: &Reference,
    digest: &Digest,
    suffix: &str,
    signature_repo: Option<&str>,
) -> Result<Reference, CosignError> {
    let base = match signature_repo {
        Some(r) => Reference::parse(r)
            .map_err(|e| CosignError::Invalid(format!("signature repository {r:?}: {e}")))?,
        None => image.clone(),
    };
    Ok(base.with_tag(&tag_for(digest, suffix)))
}

async fn get_existing(
    client: &RegistryClient,
    at: &Reference,
) -> Result<Option<ImageManifest>, CosignError> {
    match client.get_manifest(at).await {
        Ok(m) => match Manifest::parse(&m.bytes, Some(&m.media_type)) {
            Ok((Manifest::Image(im), _)) => Ok(Some(im)),
            Ok(_) => Err(CosignError::Malformed {
                what: format!("{at}"),
                why: "not an image manifest".into(),
            }),
            Err(e) => Err(CosignError::Malformed {
                what: format!("{at}"),
                why: e.to_string(),
            }),
        },
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The config go-containerregistry writes for an empty image with these (uncompressed) layers.
pub fn ggcr_config(layers: &[Descriptor]) -> Vec<u8> {
    let history = vec![r#"{"created":"0001-01-01T00:00:00Z"}"#; layers.len()].join(",");
    let diff_ids = layers
        .iter()
        .map(|l| format!("\"{}\"", l.digest))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{history}],"os":"","rootfs":{{"type":"layers","diff_ids":[{diff_ids}]}},"config":{{}}}}"#
    )
    .into_bytes()
}

/// Appends `layer` (content `blob`) to the manifest at `at`, unless an equal layer is there already.
/// Returns the manifest digest.
async fn append_layer(
    client: &RegistryClient,
    at: &Reference,
    layer: Descriptor,
    blob: Vec<u8>,
) -> Result<Digest, CosignError> {
    let existing = get_existing(client, at).await?;
    let mut layers = existing.map(|m| m.layers).unwrap_or_default();
    let dup = layers.iter().any(|l| {
        l.digest == layer.digest
            && l.media_type == layer.media_type
            && l.annotations == layer.annotations
    });
    if !dup {
        if layers.len() >= MAX_LAYERS {
            return Err(CosignError::Invalid(format!(
                "{at} already holds {MAX_LAYERS} signatures"
            )));
        }
        let size = blob.len() as u64;
        client
            .push_blob(at, &layer.digest, Some(size), BlobBody::bytes(blob))
            .await?;
        layers.push(layer);
    }
    let config = ggcr_config(&layers);
    let config_desc = Descriptor::for_bytes(mt::OCI_CONFIG, &config);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: config_desc.clone(),
        layers,
        subject: None,
        annotations: None,
    };
    let bytes = manifest.to_bytes();
    let digest = Digest::sha256(&bytes);
    if dup {
        return Ok(digest);
    }
    let size = config.len() as u64;
    client
        .push_blob(at, &config_desc.digest, Some(size), BlobBody::bytes(config))
        .await?;
    client
        .put_manifest(at, Bytes::from(bytes), mt::OCI_MANIFEST, PutCondition::None)
        .await?;
    Ok(digest)
}

/// Signs `image` (a tag is resolved to its digest) in the legacy format and stores the signature under
/// `sha256-<hex>.sig`; returns `(image digest, signature manifest digest)`.
pub async fn sign_image(
    client: &RegistryClient,
    image: &Reference,
    signer: &PrivateKey,
    annotations: &BTreeMap<String, String>,
    signature_repo: Option<&str>,
) -> Result<(Digest, Digest), CosignError> {
    sign_image_with(client, image, signer, annotations, signature_repo, None).await
}

/// Like [`sign_image`], embedding a signing certificate for the key (`(leaf PEM, chain PEM)`, as cosign
/// `--certificate`/`--certificate-chain`) in the layer annotations. The certificate's key must be the
/// signer's public key.
pub async fn sign_image_with(
    client: &RegistryClient,
    image: &Reference,
    signer: &PrivateKey,
    annotations: &BTreeMap<String, String>,
    signature_repo: Option<&str>,
    certificate: Option<(&str, Option<&str>)>,
) -> Result<(Digest, Digest), CosignError> {
    let mut layer_annotations = BTreeMap::new();
    if let Some((leaf_pem, chain_pem)) = certificate {
        let leaf = sigil_sigstore::crypto::pem_decode(leaf_pem, "CERTIFICATE")
            .ok_or_else(|| CosignError::Invalid("--certificate is not a PEM certificate".into()))?;
        let spki = sigil_sigstore::legacy::certificate_spki(&leaf)
            .map_err(|e| CosignError::Invalid(e.to_string()))?;
        if spki != signer.public_key().to_spki_der()? {
            return Err(CosignError::Invalid(
                "the certificate's public key is not the signing key's".into(),
            ));
        }
        layer_annotations.insert(CERTIFICATE_ANNOTATION.to_owned(), leaf_pem.to_owned());
        if let Some(c) = chain_pem {
            if sigil_sigstore::crypto::pem_decode_all(c, "CERTIFICATE").is_none_or(|v| v.is_empty())
            {
                return Err(CosignError::Invalid(
                    "--certificate-chain holds no PEM certificate".into(),
                ));
            }
            layer_annotations.insert(CHAIN_ANNOTATION.to_owned(), c.to_owned());
        }
    }
    let digest = resolve_digest(client, image).await?;
    let payload = payload::simple_signing(&image.repository_name(), &digest, annotations);
    let sig = signer.sign(&payload)?;
    let mut desc = Descriptor::for_bytes(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    layer_annotations.insert(SIGNATURE_ANNOTATION.to_owned(), B64.encode(sig));
    desc.annotations = Some(layer_annotations);
    let at = storage_ref(image, &digest, "sig", signature_repo)?;
    let m = append_layer(client, &at, desc, payload).await?;
    Ok((digest, m))
}

/// Builds, signs and stores an in-toto attestation about `image` under `sha256-<hex>.att`; returns
/// `(image digest, attestation manifest digest)`. `predicate_type` is a short name or URI; for `custom`
/// the predicate is wrapped as `{"Data": <text>, "Timestamp": <now>}`.
pub async fn attest_image(
    client: &RegistryClient,
    image: &Reference,
    signer: &PrivateKey,
    predicate_type: &str,
    predicate: &[u8],
    signature_repo: Option<&str>,
) -> Result<(Digest, Digest), CosignError> {
    let (uri, predicate) = payload::predicate_for(predicate_type, predicate)?;
    let digest = resolve_digest(client, image).await?;
    let statement = payload::statement(&image.repository_name(), &digest, &uri, predicate);
    let sig = signer.sign(&payload::pae(payload::INTOTO_PAYLOAD_TYPE, &statement))?;
    let envelope = Envelope {
        payload_type: payload::INTOTO_PAYLOAD_TYPE.to_owned(),
        payload: B64.encode(&statement),
        signatures: vec![payload::DsseSignature {
            keyid: String::new(),
            sig: B64.encode(sig),
        }],
    };
    let blob = serde_json::to_vec(&envelope).map_err(|e| CosignError::Sign(e.to_string()))?;
    let mut desc = Descriptor::for_bytes(DSSE_MEDIA_TYPE, &blob);
    desc.annotations = Some(BTreeMap::from([
        (PREDICATE_TYPE_ANNOTATION.to_owned(), uri),
        (SIGNATURE_ANNOTATION.to_owned(), String::new()),
    ]));
    let at = storage_ref(image, &digest, "att", signature_repo)?;
    let m = append_layer(client, &at, desc, blob).await?;
    Ok((digest, m))
}

async fn fetch_layers(
    client: &RegistryClient,
    image: &Reference,
    digest: &Digest,
    suffix: &str,
    kind: &'static str,
    signature_repo: Option<&str>,
) -> Result<(Reference, Vec<Descriptor>), VerifyError> {
    let at = storage_ref(image, digest, suffix, signature_repo)?;
    match get_existing(client, &at).await? {
        Some(m) if !m.layers.is_empty() => Ok((at, m.layers)),
        _ => Err(VerifyError::NotFound {
            kind,
            image: image.repository_name(),
            tag: tag_for(digest, suffix),
        }),
    }
}

async fn fetch_payload(
    client: &RegistryClient,
    at: &Reference,
    layer: &Descriptor,
) -> Result<Bytes, SignatureFailure> {
    let bytes = client
        .get_blob_bytes(at, &layer.digest, MAX_PAYLOAD)
        .await
        .map_err(|e| SignatureFailure::Fetch {
            digest: layer.digest.clone(),
            why: e.summary(),
        })?;
    if layer.digest.verify(&bytes).is_err() || bytes.len() as u64 != layer.size {
        return Err(SignatureFailure::PayloadDigest(layer.digest.clone()));
    }
    Ok(bytes)
}

/// Checks one `.sig` layer whose payload is `payload` (already digest-verified).
pub fn check_signature_layer(
    layer: &Descriptor,
    payload: &[u8],
    digest: &Digest,
    trust: &Trust,
    annotations: &BTreeMap<String, String>,
) -> Result<Value, SignatureFailure> {
    if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(SignatureFailure::MediaType(layer.media_type.clone()));
    }
    let sig = layer
        .annotation(SIGNATURE_ANNOTATION)
        .and_then(|s| B64.decode(s.as_bytes()).ok())
        .filter(|s| !s.is_empty())
        .ok_or(SignatureFailure::SignatureEncoding)?;
    trust.check(
        layer,
        payload,
        &sig,
        sigil_sigstore::legacy::Signed::Payload(payload),
        &sig,
    )?;
    let claims = payload::parse_simple_signing(payload).map_err(SignatureFailure::Payload)?;
    if claims.digest != digest.to_string() {
        return Err(SignatureFailure::DigestMismatch {
            expected: digest.clone(),
            found: claims.digest,
        });
    }
    for (k, v) in annotations {
        if claims.optional.get(k) != Some(v) {
            return Err(SignatureFailure::Annotation {
                key: k.clone(),
                value: v.clone(),
            });
        }
    }
    Ok(claims.json)
}

/// Verifies `image`'s legacy signatures: at least one layer of `sha256-<hex>.sig` must verify with a
/// trusted key, name the image's digest, and carry `annotations`. Returns every verified signature, or
/// one failure reason per layer.
pub async fn verify_image(
    client: &RegistryClient,
    image: &Reference,
    trust: &Trust,
    annotations: &BTreeMap<String, String>,
    signature_repo: Option<&str>,
) -> Result<Vec<VerifiedSignature>, VerifyError> {
    if trust.is_empty() {
        return Err(CosignError::Invalid("no trusted key given".into()).into());
    }
    let digest = resolve_digest(client, image).await?;
    let (at, layers) =
        fetch_layers(client, image, &digest, "sig", "signatures", signature_repo).await?;
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for layer in &layers {
        if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
            failures.push(SignatureFailure::MediaType(layer.media_type.clone()));
            continue;
        }
        let result = match fetch_payload(client, &at, layer).await {
            Ok(p) => check_signature_layer(layer, &p, &digest, trust, annotations).map(|v| (v, p)),
            Err(e) => Err(e),
        };
        match result {
            Ok((payload, payload_bytes)) => ok.push(VerifiedSignature {
                payload,
                payload_bytes,
                layer_digest: layer.digest.clone(),
                signature: layer
                    .annotation(SIGNATURE_ANNOTATION)
                    .unwrap_or_default()
                    .to_owned(),
            }),
            Err(e) => failures.push(e),
        }
    }
    if ok.is_empty() {
        return Err(VerifyError::NoneValid {
            kind: "signatures",
            failures,
        });
    }
    Ok(ok)
}

/// Checks one `.att` layer (the DSSE envelope `blob`, already digest-verified).
pub fn check_attestation_layer(
    layer: &Descriptor,
    blob: &[u8],
    digest: &Digest,
    trust: &Trust,
    predicate_type: Option<&str>,
) -> Result<VerifiedAttestation, SignatureFailure> {
    if layer.media_type != DSSE_MEDIA_TYPE {
        return Err(SignatureFailure::MediaType(layer.media_type.clone()));
    }
    let envelope: Envelope = serde_json::from_slice(blob)
        .map_err(|e| SignatureFailure::Payload(format!("not a DSSE envelope: {e}")))?;
    if envelope.payload_type != payload::INTOTO_PAYLOAD_TYPE {
        return Err(SignatureFailure::Payload(format!(
            "payloadType {:?} is not {:?}",
            envelope.payload_type,
            payload::INTOTO_PAYLOAD_TYPE
        )));
    }
    let body = envelope
        .payload_bytes()
        .map_err(SignatureFailure::Payload)?;
    let pae = payload::pae(&envelope.payload_type, &body);
    let mut last = SignatureFailure::BadSignature;
    let mut verified = false;
    for s in &envelope.signatures {
        let Ok(sig) = B64.decode(s.sig.as_bytes()) else {
            continue;
        };
        let signed = sigil_sigstore::legacy::Signed::Dsse(&body, &envelope.payload_type);
        match trust.check(layer, &pae, &sig, signed, blob) {
            Ok(()) => {
                verified = true;
                break;
            }
            Err(e) => last = e,
        }
    }
    if !verified {
        return Err(last);
    }
    let statement: Value = serde_json::from_slice(&body)
        .map_err(|e| SignatureFailure::Payload(format!("statement is not JSON: {e}")))?;
    let alg = digest.algorithm().as_str();
    let subject_ok = statement
        .get("subject")
        .and_then(Value::as_array)
        .is_some_and(|subs| {
            subs.iter().any(|s| {
                s.get("digest")
                    .and_then(|d| d.get(alg))
                    .and_then(Value::as_str)
                    == Some(digest.encoded())
            })
        });
    if !subject_ok {
        return Err(SignatureFailure::DigestMismatch {
            expected: digest.clone(),
            found: "a statement whose subjects name other digests".into(),
        });
    }
    let found = statement
        .get("predicateType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(wanted) = predicate_type
        && wanted != found
    {
        return Err(SignatureFailure::PredicateType {
            wanted: wanted.to_owned(),
            found,
        });
    }
    Ok(VerifiedAttestation {
        envelope,
        statement,
        predicate_type: found,
    })
}

/// Verifies `image`'s legacy attestations (`sha256-<hex>.att`), optionally only those of
/// `predicate_type` (short name or URI).
pub async fn verify_attestations(
    client: &RegistryClient,
    image: &Reference,
    trust: &Trust,
    predicate_type: Option<&str>,
    signature_repo: Option<&str>,
) -> Result<Vec<VerifiedAttestation>, VerifyError> {
    if trust.is_empty() {
        return Err(CosignError::Invalid("no trusted key given".into()).into());
    }
    let wanted = predicate_type
        .map(payload::predicate_type_uri)
        .transpose()
        .map_err(CosignError::Invalid)?;
    let digest = resolve_digest(client, image).await?;
    let (at, layers) = fetch_layers(
        client,
        image,
        &digest,
        "att",
        "attestations",
        signature_repo,
    )
    .await?;
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for layer in &layers {
        // Skip fetching layers whose annotation already says they are of another type.
        if let (Some(w), Some(a)) = (&wanted, layer.annotation(PREDICATE_TYPE_ANNOTATION))
            && w != a
        {
            failures.push(SignatureFailure::PredicateType {
                wanted: w.clone(),
                found: a.to_owned(),
            });
            continue;
        }
        let r = match fetch_payload(client, &at, layer).await {
            Ok(b) => check_attestation_layer(layer, &b, &digest, trust, wanted.as_deref()),
            Err(e) => Err(e),
        };
        match r {
            Ok(a) => ok.push(a),
            Err(e) => failures.push(e),
        }
    }
    if ok.is_empty() {
        return Err(VerifyError::NoneValid {
            kind: "attestations",
            failures,
        });
    }
    Ok(ok)
}
