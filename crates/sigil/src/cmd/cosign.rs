//! `sigil generate-key-pair|sign|attest|verify|verify-attestation`: cosign-compatible key-based signing
//! in the legacy `.sig`/`.att` tag format (the work is in `sigil-cosign`).
//!
//! `verify` prints the verified simple-signing payloads as a JSON array on stdout (as cosign does);
//! `verify-attestation` prints one JSON object per verified attestation (`payloadType`, `payload`,
//! `signatures`, plus the decoded `statement`). On failure they exit 1 with one line per rejected
//! signature on stderr. With `--stats`, `requests: N` goes to stderr.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use sigil_client::RegistryClient;
use sigil_cosign::{CosignError, PrivateKey, PublicKey, Trust, VerifyError, keys};
use sigil_oci::Reference;

use super::artifacts::registry_ref;
use super::inspect::client;
use crate::cli::{
    AttestArgs, GenerateKeyPairArgs, SignArgs, TrustOptions, VerifyArgs, VerifyAttestationArgs,
};

fn parse_annotations(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in list {
        let (k, v) = a
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| anyhow!("-a {a:?}: expected KEY=VALUE"))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn print_stats(stats: bool, client: &RegistryClient) {
    if stats {
        eprintln!("requests: {}", client.request_count());
    }
}

/// The trusted keys from the trust options; keyless/certificate options are not supported yet.
fn trust_from(t: &TrustOptions) -> anyhow::Result<Trust> {
    let keyless = t.certificate.is_some()
        || t.certificate_chain.is_some()
        || t.certificate_identity.is_some()
        || t.certificate_identity_regexp.is_some()
        || t.certificate_oidc_issuer.is_some()
        || t.certificate_oidc_issuer_regexp.is_some()
        || t.trusted_root.is_some();
    match &t.key {
        Some(_) if keyless => {
            bail!("--key cannot be combined with certificate or keyless options")
        }
        Some(path) => Ok(Trust::key(PublicKey::load(path)?)),
        None if keyless => Err(CosignError::Unsupported(
            "certificate/keyless verification of image signatures",
        )
        .into()),
        None => bail!("a public key is required: --key cosign.pub"),
    }
}

/// Prints one line per rejected signature and returns exit code 1; other errors propagate.
fn report_failure(image: &Reference, e: VerifyError) -> anyhow::Result<ExitCode> {
    match e {
        VerifyError::NoneValid { kind, failures } => {
            eprintln!("error: no valid {kind} for {image}");
            for (i, f) in failures.iter().enumerate() {
                eprintln!("{kind} #{}: {f}", i + 1);
            }
            Ok(ExitCode::from(1))
        }
        VerifyError::NotFound { .. } => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        VerifyError::Cosign(c) => Err(c.into()),
    }
}

pub async fn generate_key_pair(a: GenerateKeyPairArgs) -> anyhow::Result<ExitCode> {
    let password = keys::new_password()?;
    keys::generate_key_pair(&a.output_key_prefix, &password, a.force)?;
    eprintln!(
        "Private key written to {0}.key\nPublic key written to {0}.pub",
        a.output_key_prefix
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    if a.bundle {
        return Err(CosignError::Unsupported("sign --bundle (Sigstore bundle referrers)").into());
    }
    let image = registry_ref(&a.reference)?;
    let annotations = parse_annotations(&a.annotations)?;
    let key = PrivateKey::load(&a.key)?;
    let client = client(&a.registry)?;
    let signature_repo = std::env::var("COSIGN_REPOSITORY").ok();
    let r = sigil_cosign::sign_image(
        &client,
        &image,
        &key,
        &annotations,
        signature_repo.as_deref(),
    )
    .await;
    print_stats(a.stats, &client);
    let (digest, sig) = r?;
    eprintln!("Signed {}@{digest}", image.repository_name());
    println!("{sig}");
    Ok(ExitCode::SUCCESS)
}

pub async fn attest(a: AttestArgs) -> anyhow::Result<ExitCode> {
    if a.bundle {
        return Err(CosignError::Unsupported("attest --bundle (Sigstore bundle referrers)").into());
    }
    let image = registry_ref(&a.reference)?;
    let predicate =
        std::fs::read(&a.predicate).map_err(|e| anyhow!("{}: {e}", a.predicate.display()))?;
    let key = PrivateKey::load(&a.key)?;
    let client = client(&a.registry)?;
    let signature_repo = std::env::var("COSIGN_REPOSITORY").ok();
    let r = sigil_cosign::attest_image(
        &client,
        &image,
        &key,
        &a.predicate_type,
        &predicate,
        signature_repo.as_deref(),
    )
    .await;
    print_stats(a.stats, &client);
    let (digest, att) = r?;
    eprintln!("Attested {}@{digest}", image.repository_name());
    println!("{att}");
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let image = registry_ref(&a.reference)?;
    let trust = trust_from(&a.trust)?;
    let annotations = parse_annotations(&a.annotations)?;
    let client = client(&a.registry)?;
    let r = sigil_cosign::verify_image(
        &client,
        &image,
        &trust,
        &annotations,
        a.signature_repository.as_deref(),
    )
    .await;
    print_stats(a.stats, &client);
    match r {
        Ok(sigs) => {
            let out: Vec<_> = sigs.into_iter().map(|s| s.payload).collect();
            println!("{}", serde_json::to_string(&out)?);
            eprintln!("Verified {} signature(s) for {image}", out.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => report_failure(&image, e),
    }
}

pub async fn verify_attestation(a: VerifyAttestationArgs) -> anyhow::Result<ExitCode> {
    let image = registry_ref(&a.reference)?;
    let trust = trust_from(&a.trust)?;
    let client = client(&a.registry)?;
    let r = sigil_cosign::verify_attestations(
        &client,
        &image,
        &trust,
        a.predicate_type.as_deref(),
        a.signature_repository.as_deref(),
    )
    .await;
    print_stats(a.stats, &client);
    match r {
        Ok(atts) => {
            for att in &atts {
                let mut v = serde_json::to_value(&att.envelope)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("statement".into(), att.statement.clone());
                }
                println!("{}", serde_json::to_string(&v)?);
            }
            eprintln!("Verified {} attestation(s) for {image}", atts.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => report_failure(&image, e),
    }
}
