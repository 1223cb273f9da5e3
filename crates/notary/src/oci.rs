//! Notary signatures in OCI registries: finding them as referrers of the image (artifact type
//! `application/vnd.cncf.notary.signature`; the current `artifactType` form, notation 1.x's legacy
//! config-mediaType form, and the old OCI artifact manifest; through the referrers API or the
//! `sha256-<hex>` fallback tag), verifying an image against a trust policy (at most
//! [`MAX_SIGNATURE_ATTEMPTS`] signatures, stopping at the first that verifies), inspecting them, and
//! signing: envelope + optional RFC 3161 timestamp, pushed as a referrer (fallback index maintained
//! when the registry has no referrers API).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use sigil_artifacts::{Mechanism, Referrers};
use sigil_client::{BlobBody, PutCondition};
use sigil_oci::{Descriptor, Digest, ImageManifest, Reference, media_type as mt};

use crate::crypto::PrivateKey;
use crate::envelope::{self, Envelope, EnvelopeFormat, SignRequest, TargetArtifact};
use crate::error::NotaryError;
use crate::revocation::{RevocationChecker, RevocationOptions};
use crate::time::{format_rfc3339, now};
use crate::trustpolicy::{Level, TrustPolicyDocument, TrustPolicyStatement};
use crate::truststore::TrustStore;
use crate::verifier::{
    ExpectedTarget, SignatureVerification, VerifyContext, verify_signature_with,
};
use crate::x509::Cert;

/// Artifact type of Notary signatures (and the legacy config media type).
pub const ARTIFACT_TYPE_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// The thumbprint annotation.
pub const ANNOTATION_THUMBPRINT: &str = "io.cncf.notary.x509chain.thumbprint#S256";
/// Signatures tried per verification (as notation's library default for Kyverno).
pub const MAX_SIGNATURE_ATTEMPTS: usize = 10;
/// Largest signature manifest read.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest envelope read.
pub const MAX_ENVELOPE: u64 = 32 << 20;

/// Which manifest shape a signature uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ManifestForm {
    /// Image manifest with `artifactType` and the empty config.
    ArtifactType,
    /// Image manifest with config media type `application/vnd.cncf.notary.signature` (notation 1.x).
    Legacy,
    /// `application/vnd.oci.artifact.manifest.v1+json` (image-spec 1.1 release candidates).
    ArtifactManifest,
}

/// A signature manifest read from the registry.
#[derive(Debug, Clone)]
pub struct FetchedSignature {
    /// The signature manifest's digest.
    pub digest: Digest,
    /// Its form.
    pub form: ManifestForm,
    /// The envelope layer's media type.
    pub envelope_media_type: String,
    /// The envelope bytes (empty when the media type is not an envelope type; not downloaded).
    pub envelope: Bytes,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Resolves `image` to its manifest descriptor (one HEAD).
pub async fn resolve(referrers: &Referrers, image: &Reference) -> Result<Descriptor, NotaryError> {
    let head = referrers
        .client()
        .head_manifest(image)
        .await?
        .ok_or_else(|| NotaryError::Invalid(format!("{image}: manifest not found")))?;
    if let Some(d) = &image.digest
        && *d != head.digest
    {
        return Err(NotaryError::Invalid(format!(
            "{image}: the registry answered digest {} for it",
            head.digest
        )));
    }
    Ok(head)
}

/// The Notary signature descriptors referring to `subject` in `image`'s repository.
pub async fn list_signatures(
    referrers: &Referrers,
    image: &Reference,
    subject: &Digest,
) -> Result<Vec<Descriptor>, NotaryError> {
    Ok(referrers
        .list(image, subject, &[ARTIFACT_TYPE_SIGNATURE.to_owned()])
        .await?)
}

/// Reads one signature manifest and its envelope; errors are reasons for skipping it.
pub async fn fetch_signature(
    referrers: &Referrers,
    image: &Reference,
    subject: &Digest,
    desc: &Descriptor,
) -> Result<FetchedSignature, String> {
    let client = referrers.client();
    let at = image.with_digest(desc.digest.clone());
    if desc.size > MAX_MANIFEST {
        return Err(format!(
            "signature manifest is larger than {MAX_MANIFEST} bytes"
        ));
    }
    let m = client.get_manifest(&at).await.map_err(|e| e.summary())?;
    let v: Value = serde_json::from_slice(&m.bytes)
        .map_err(|e| format!("signature manifest is not JSON: {e}"))?;
    let media_type = v
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(m.media_type.as_str())
        .to_owned();
    let artifact_type = v.get("artifactType").and_then(Value::as_str);
    let config_type = v.pointer("/config/mediaType").and_then(Value::as_str);
    let (form, layers) = match (media_type.as_str(), artifact_type, config_type) {
        (mt::OCI_MANIFEST, Some(ARTIFACT_TYPE_SIGNATURE), Some(mt::OCI_EMPTY)) => {
            (ManifestForm::ArtifactType, v.get("layers"))
        }
        (mt::OCI_MANIFEST, Some(ARTIFACT_TYPE_SIGNATURE), Some(other)) => {
            return Err(format!(
                "signature manifest has config media type {other:?}, expected {}",
                mt::OCI_EMPTY
            ));
        }
        (mt::OCI_MANIFEST, None, Some(ARTIFACT_TYPE_SIGNATURE)) => {
            (ManifestForm::Legacy, v.get("layers"))
        }
        (mt::OCI_ARTIFACT_MANIFEST, Some(ARTIFACT_TYPE_SIGNATURE), _) => {
            (ManifestForm::ArtifactManifest, v.get("blobs"))
        }
        _ => return Err("not a Notary signature manifest".into()),
    };
    let subj = v.pointer("/subject/digest").and_then(Value::as_str);
    if subj != Some(subject.to_string().as_str()) {
        return Err(format!(
            "signature manifest subject {subj:?} is not the artifact {subject}"
        ));
    }
    let layers: Vec<Descriptor> = layers
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format!("signature manifest layers: {e}"))?
        .unwrap_or_default();
    let [layer] = layers.as_slice() else {
        return Err(format!(
            "signature manifest must have exactly one layer, found {}",
            layers.len()
        ));
    };
    let annotations: BTreeMap<String, String> = v
        .get("annotations")
        .cloned()
        .and_then(|a| serde_json::from_value(a).ok())
        .unwrap_or_default();
    let envelope = if EnvelopeFormat::from_media_type(&layer.media_type).is_some() {
        if layer.size > MAX_ENVELOPE {
            return Err(format!(
                "signature envelope is larger than {MAX_ENVELOPE} bytes"
            ));
        }
        let b = client
            .get_blob_bytes(&at, &layer.digest, MAX_ENVELOPE)
            .await
            .map_err(|e| e.summary())?;
        layer.digest.verify(&b).map_err(|_| {
            format!(
                "signature envelope does not match its digest {}",
                layer.digest
            )
        })?;
        b
    } else {
        Bytes::new()
    };
    Ok(FetchedSignature {
        digest: desc.digest.clone(),
        form,
        envelope_media_type: layer.media_type.clone(),
        envelope,
        annotations,
    })
}

/// The outcome for one signature of an image.
#[derive(Debug, Clone)]
pub struct SignatureResult {
    /// The signature manifest's digest.
    pub digest: Digest,
    /// The manifest form, when it was read.
    pub form: Option<ManifestForm>,
    /// The verification, or why the signature could not be read.
    pub verification: Result<SignatureVerification, String>,
}

impl SignatureResult {
    /// Whether this signature verified.
    pub fn passed(&self) -> bool {
        self.verification
            .as_ref()
            .is_ok_and(SignatureVerification::passed)
    }

    /// Why it failed.
    pub fn reason(&self) -> String {
        match &self.verification {
            Ok(v) => v.reason(),
            Err(e) => e.clone(),
        }
    }
}

/// The outcome of verifying an image.
#[derive(Debug, Clone)]
pub struct ImageVerification {
    /// `registry/repository@digest`.
    pub artifact: String,
    /// The artifact's descriptor.
    pub target: ExpectedTarget,
    /// The applied statement's name.
    pub policy: String,
    /// The level.
    pub level: Level,
    /// One result per signature tried, in order.
    pub signatures: Vec<SignatureResult>,
    /// Signatures found beyond [`MAX_SIGNATURE_ATTEMPTS`] (not tried).
    pub skipped_signatures: usize,
}

impl ImageVerification {
    /// The signature that verified.
    pub fn verified(&self) -> Option<&SignatureResult> {
        self.signatures.iter().find(|s| s.passed())
    }

    /// Whether the image passes (a verified signature, or a `skip` policy).
    pub fn passed(&self) -> bool {
        self.level == Level::Skip || self.verified().is_some()
    }
}

/// Verifies `image` against a policy statement and trust store; stops at the first verified signature.
/// Revocation responders are contacted with the default settings (one cache for this call).
pub async fn verify_with_statement(
    referrers: &Referrers,
    image: &Reference,
    target: &Descriptor,
    statement: &TrustPolicyStatement,
    store: &TrustStore,
    at: i64,
) -> Result<ImageVerification, NotaryError> {
    let checker = RevocationChecker::new(RevocationOptions::default())?;
    verify_with_statement_using(referrers, image, target, statement, store, at, &checker).await
}

/// [`verify_with_statement`] with a caller-provided revocation checker.
pub async fn verify_with_statement_using(
    referrers: &Referrers,
    image: &Reference,
    target: &Descriptor,
    statement: &TrustPolicyStatement,
    store: &TrustStore,
    at: i64,
    checker: &RevocationChecker,
) -> Result<ImageVerification, NotaryError> {
    let artifact = format!("{}@{}", image.repository_name(), target.digest);
    let expected = ExpectedTarget {
        media_type: target.media_type.clone(),
        digest: target.digest.to_string(),
        size: target.size,
    };
    let mut out = ImageVerification {
        artifact,
        target: expected.clone(),
        policy: statement.name.clone(),
        level: statement.level,
        signatures: Vec::new(),
        skipped_signatures: 0,
    };
    if statement.level == Level::Skip {
        return Ok(out);
    }
    let descs = list_signatures(referrers, image, &target.digest).await?;
    out.skipped_signatures = descs.len().saturating_sub(MAX_SIGNATURE_ATTEMPTS);
    let ctx = VerifyContext {
        policy: statement,
        store,
        now: at,
    };
    for d in descs.iter().take(MAX_SIGNATURE_ATTEMPTS) {
        let r = match fetch_signature(referrers, image, &target.digest, d).await {
            Err(e) => SignatureResult {
                digest: d.digest.clone(),
                form: None,
                verification: Err(e),
            },
            Ok(f) => SignatureResult {
                digest: d.digest.clone(),
                form: Some(f.form),
                verification: Ok(verify_signature_with(
                    &f.envelope_media_type,
                    &f.envelope,
                    Some(&expected),
                    &ctx,
                    checker,
                )
                .await),
            },
        };
        let ok = r.passed();
        out.signatures.push(r);
        if ok {
            break;
        }
    }
    Ok(out)
}

/// `notary verify`: resolves `image`, selects the trust policy statement by registry scope, and
/// verifies its signatures.
pub async fn verify_image(
    referrers: &Referrers,
    image: &Reference,
    policy: &TrustPolicyDocument,
    store: &TrustStore,
) -> Result<ImageVerification, NotaryError> {
    let checker = RevocationChecker::new(RevocationOptions::default())?;
    verify_image_using(referrers, image, policy, store, &checker).await
}

/// [`verify_image`] with a caller-provided revocation checker.
pub async fn verify_image_using(
    referrers: &Referrers,
    image: &Reference,
    policy: &TrustPolicyDocument,
    store: &TrustStore,
    checker: &RevocationChecker,
) -> Result<ImageVerification, NotaryError> {
    let target = resolve(referrers, image).await?;
    let artifact = format!("{}@{}", image.repository_name(), target.digest);
    let statement = policy.statement_for(&artifact)?;
    verify_with_statement_using(referrers, image, &target, statement, store, now(), checker).await
}

/// A certificate as `inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateInfo {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Lowercase SHA-256 of the DER.
    #[serde(rename = "sha256Fingerprint")]
    pub sha256: String,
    /// notBefore (RFC 3339).
    #[serde(rename = "notBefore")]
    pub not_before: String,
    /// notAfter (RFC 3339).
    #[serde(rename = "notAfter")]
    pub not_after: String,
}

impl From<&Cert> for CertificateInfo {
    fn from(c: &Cert) -> Self {
        let (nb, na) = c.validity();
        Self {
            subject: c.subject(),
            issuer: c.issuer(),
            sha256: c.sha256_hex(),
            not_before: format_rfc3339(nb),
            not_after: format_rfc3339(na),
        }
    }
}

/// A signature as `inspect` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectedSignature {
    /// Signature manifest digest.
    pub digest: String,
    /// Manifest form.
    pub manifest_form: Option<ManifestForm>,
    /// Envelope media type.
    pub media_type: String,
    /// Signature algorithm.
    pub signature_algorithm: Option<String>,
    /// Signing scheme.
    pub signing_scheme: Option<String>,
    /// Signing time (or authentic signing time), RFC 3339.
    pub signing_time: Option<String>,
    /// Expiry, RFC 3339.
    pub expiry: Option<String>,
    /// Signing agent.
    pub signing_agent: Option<String>,
    /// The signed artifact.
    pub signed_artifact: Option<TargetArtifact>,
    /// The chain, leaf first.
    pub certificates: Vec<CertificateInfo>,
    /// The timestamp's genTime, RFC 3339, and its TSA chain.
    pub timestamp: Option<TimestampSummary>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Why the signature could not be read or parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A timestamp as `inspect` shows it (not verified).
#[derive(Debug, Clone, Serialize)]
pub struct TimestampSummary {
    /// genTime.
    pub timestamp: String,
    /// Certificates carried by the token.
    pub certificates: Vec<CertificateInfo>,
}

/// `notary inspect`: every Notary signature of `image`, parsed but not verified.
pub async fn inspect_image(
    referrers: &Referrers,
    image: &Reference,
) -> Result<(Descriptor, Vec<InspectedSignature>), NotaryError> {
    let target = resolve(referrers, image).await?;
    let mut out = Vec::new();
    for d in list_signatures(referrers, image, &target.digest).await? {
        let mut s = InspectedSignature {
            digest: d.digest.to_string(),
            manifest_form: None,
            media_type: String::new(),
            signature_algorithm: None,
            signing_scheme: None,
            signing_time: None,
            expiry: None,
            signing_agent: None,
            signed_artifact: None,
            certificates: Vec::new(),
            timestamp: None,
            annotations: d.annotations.clone().unwrap_or_default(),
            error: None,
        };
        match fetch_signature(referrers, image, &target.digest, &d).await {
            Err(e) => s.error = Some(e),
            Ok(f) => {
                s.manifest_form = Some(f.form);
                s.media_type = f.envelope_media_type.clone();
                s.annotations = f.annotations.clone();
                match Envelope::parse(&f.envelope_media_type, &f.envelope) {
                    Err(e) => s.error = Some(e.to_string()),
                    Ok(env) => {
                        s.signature_algorithm = Some(env.algorithm.jws_name().into());
                        s.signing_scheme = Some(env.signing_scheme.as_str().into());
                        s.signing_time = env
                            .signing_time
                            .or(env.authentic_signing_time)
                            .map(format_rfc3339);
                        s.expiry = env.expiry.map(format_rfc3339);
                        s.signing_agent = env.signing_agent.clone();
                        s.signed_artifact = envelope::parse_payload(&env.payload).ok();
                        s.certificates = env.chain.iter().map(CertificateInfo::from).collect();
                        s.timestamp = env.timestamp.as_ref().map(|t| {
                            match crate::timestamp::parse_token(t) {
                                Ok(i) => TimestampSummary {
                                    timestamp: format_rfc3339(i.gen_time),
                                    certificates: i
                                        .certificates
                                        .iter()
                                        .map(CertificateInfo::from)
                                        .collect(),
                                },
                                Err(e) => TimestampSummary {
                                    timestamp: format!("invalid: {e}"),
                                    certificates: Vec::new(),
                                },
                            }
                        });
                    }
                }
            }
        }
        out.push(s);
    }
    Ok((target, out))
}

/// Signing options.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Envelope format.
    pub format: EnvelopeFormat,
    /// Expiry after the signing time, in seconds.
    pub expiry_seconds: Option<i64>,
    /// RFC 3161 TSA URL and the root its chain must end in.
    pub timestamp: Option<(String, Cert)>,
    /// Extra manifest annotations (not under `io.cncf.notary`).
    pub annotations: BTreeMap<String, String>,
    /// Write notation 1.x's legacy manifest form.
    pub legacy_manifest: bool,
    /// Signing agent string.
    pub signing_agent: String,
}

/// What signing produced.
#[derive(Debug, Clone)]
pub struct SignReport {
    /// The signed manifest's descriptor.
    pub target: Descriptor,
    /// The signature manifest's digest.
    pub signature: Digest,
    /// The signature manifest bytes.
    pub manifest: Vec<u8>,
    /// The envelope bytes.
    pub envelope: Vec<u8>,
    /// How the referrer was recorded.
    pub mechanism: Mechanism,
}

/// Builds the envelope for `target` (signing time = now) and, when asked, timestamps it.
pub async fn build_envelope(
    target: &Descriptor,
    key: &PrivateKey,
    chain: &[Cert],
    opts: &SignOptions,
    signing_time: i64,
) -> Result<Vec<u8>, NotaryError> {
    let req = SignRequest {
        target: TargetArtifact {
            media_type: target.media_type.clone(),
            digest: target.digest.to_string(),
            size: target.size,
            annotations: None,
        },
        signing_time,
        expiry: opts.expiry_seconds.map(|e| signing_time + e),
        key,
        chain,
        signing_agent: opts.signing_agent.clone(),
    };
    let signed = envelope::sign(opts.format, &req)?;
    let token = match &opts.timestamp {
        Some((url, root)) => Some(
            crate::timestamp::fetch(
                url,
                &signed.signature,
                key.public_key().notary_algorithm()?.hash(),
                root,
            )
            .await?,
        ),
        None => None,
    };
    signed.finish(token)
}

/// Signs `image` (a tag is resolved to its digest) and pushes the signature as a referrer.
pub async fn sign_image(
    referrers: &Referrers,
    image: &Reference,
    key: &PrivateKey,
    chain: &[Cert],
    opts: &SignOptions,
) -> Result<SignReport, NotaryError> {
    for k in opts.annotations.keys() {
        if k.starts_with("io.cncf.notary") {
            return Err(NotaryError::Invalid(format!(
                "annotation {k:?}: the io.cncf.notary prefix is reserved"
            )));
        }
    }
    let client = referrers.client();
    let target = resolve(referrers, image).await?;
    let signing_time = now();
    let env = build_envelope(&target, key, chain, opts, signing_time).await?;
    let layer = Descriptor::for_bytes(opts.format.media_type(), &env);
    let thumbprints: Vec<String> = chain.iter().map(Cert::sha256_hex).collect();
    let mut annotations = opts.annotations.clone();
    annotations.insert(
        ANNOTATION_THUMBPRINT.to_owned(),
        serde_json::to_string(&thumbprints).unwrap_or_default(),
    );
    annotations.insert(
        sigil_artifacts::ANNOTATION_CREATED.to_owned(),
        format_rfc3339(signing_time),
    );
    let (artifact_type, config) = if opts.legacy_manifest {
        (None, Descriptor::for_bytes(ARTIFACT_TYPE_SIGNATURE, b"{}"))
    } else {
        (
            Some(ARTIFACT_TYPE_SIGNATURE.to_owned()),
            Descriptor::for_bytes(mt::OCI_EMPTY, b"{}"),
        )
    };
    let subject = Descriptor {
        media_type: target.media_type.clone(),
        digest: target.digest.clone(),
        size: target.size,
        urls: None,
        annotations: None,
        data: None,
        artifact_type: None,
        platform: None,
    };
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.to_owned()),
        artifact_type,
        config: config.clone(),
        layers: vec![layer.clone()],
        subject: Some(subject),
        annotations: Some(annotations.clone()),
    };
    let bytes = manifest.to_bytes();
    let mut desc = Descriptor::for_bytes(mt::OCI_MANIFEST, &bytes);
    desc.artifact_type = Some(ARTIFACT_TYPE_SIGNATURE.to_owned());
    desc.annotations = Some(annotations);
    let at = image.with_digest(desc.digest.clone());
    client
        .push_blob(
            &at,
            &layer.digest,
            Some(env.len() as u64),
            BlobBody::bytes(env.clone()),
        )
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
            Bytes::from(bytes.clone()),
            mt::OCI_MANIFEST,
            PutCondition::None,
        )
        .await?;
    let mechanism =
        if resp.oci_subject.as_deref().map(str::trim) == Some(target.digest.to_string().as_str()) {
            referrers.set_mechanism(image, Mechanism::Api);
            Mechanism::Api
        } else {
            referrers
                .add_to_fallback_index(image, &target.digest, std::slice::from_ref(&desc))
                .await?;
            Mechanism::Fallback
        };
    Ok(SignReport {
        target,
        signature: desc.digest,
        manifest: bytes,
        envelope: env,
        mechanism,
    })
}
