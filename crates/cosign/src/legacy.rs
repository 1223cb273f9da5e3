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

/// The keys a signature must verify with (any one suffices).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Trusted public keys.
    pub keys: Vec<PublicKey>,
}

impl Trust {
    /// Trust in one key.
    pub fn key(k: PublicKey) -> Self {
        Self { keys: vec![k] }
    }

    fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        self.keys.iter().any(|k| k.verify(message, sig))
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
    let digest = resolve_digest(client, image).await?;
    let payload = payload::simple_signing(&image.repository_name(), &digest, annotations);
    let sig = signer.sign(&payload)?;
    let mut desc = Descriptor::for_bytes(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    desc.annotations = Some(BTreeMap::from([(
        SIGNATURE_ANNOTATION.to_owned(),
        B64.encode(sig),
    )]));
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
    let uri = payload::predicate_type_uri(predicate_type).map_err(CosignError::Invalid)?;
    let predicate: Value = if predicate_type == "custom" {
        serde_json::json!({
            "Data": String::from_utf8_lossy(predicate),
            "Timestamp": payload::now_rfc3339(),
        })
    } else {
        serde_json::from_slice(predicate)
            .map_err(|e| CosignError::Invalid(format!("predicate is not JSON: {e}")))?
    };
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
    if !trust.verifies(payload, &sig) {
        return Err(SignatureFailure::BadSignature);
    }
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
    if trust.keys.is_empty() {
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
    let verified = envelope.signatures.iter().any(|s| {
        B64.decode(s.sig.as_bytes())
            .is_ok_and(|sig| trust.verifies(&pae, &sig))
    });
    if !verified {
        return Err(SignatureFailure::BadSignature);
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
    if trust.keys.is_empty() {
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
