//! `sigil verify-blob|verify-blob-attestation`: offline Sigstore bundle verification (crate
//! `sigil-sigstore`). A given `--certificate` is checked against `--certificate-chain`, or else the
//! trusted root's Fulcio CAs when `--trusted-root` is given, as cosign does. Success prints `Verified OK` on stderr (as cosign) and, for attestations, the statement
//! JSON on stdout; failure prints one line naming the failed check and exits 1.

use std::process::ExitCode;

use anyhow::Context as _;
use sigil_sigstore::crypto::{PublicKey, pem_decode};
use sigil_sigstore::{
    Artifact, Bundle, Matcher, Policy, TrustedRoot, VerifyFailure, predicate_type_uri,
    verify_bundle,
};

use crate::cli::{TrustOptions, VerifyBlobArgs, VerifyBlobAttestationArgs};

/// Reads `FILE` or parses `sha256:<hex>`.
fn artifact_source(s: &str) -> anyhow::Result<Result<Vec<u8>, [u8; 32]>> {
    if let Some(hex) = s.strip_prefix("sha256:") {
        anyhow::ensure!(hex.len() == 64, "sha256 digest must be 64 hex digits");
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
                .context("invalid sha256 hex digest")?;
        }
        return Ok(Err(d));
    }
    Ok(Ok(std::fs::read(s).with_context(|| format!("reading {s}"))?))
}

fn policy(t: &TrustOptions) -> anyhow::Result<(Policy, TrustedRoot)> {
    let root = match &t.trusted_root {
        Some(p) => TrustedRoot::from_json(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing trusted root {}", p.display()))?,
        None => TrustedRoot::default(),
    };
    if let Some(k) = &t.key {
        let pem = std::fs::read_to_string(k).with_context(|| format!("reading {}", k.display()))?;
        return Ok((Policy::PublicKey(PublicKey::from_pem(&pem, "--key")?), root));
    }
    if let Some(c) = &t.certificate {
        let raw = std::fs::read(c).with_context(|| format!("reading {}", c.display()))?;
        let der = match std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| pem_decode(s, "CERTIFICATE"))
        {
            Some(d) => d,
            None => raw,
        };
        check_given_certificate(&der, t, &root)
            .with_context(|| format!("--certificate {}", c.display()))?;
        return Ok((Policy::Certificate(der), root));
    }
    let subject = match (&t.certificate_identity, &t.certificate_identity_regexp) {
        (Some(s), _) => Matcher::Exact(s.clone()),
        (None, Some(r)) => Matcher::regex(r)?,
        (None, None) => anyhow::bail!(
            "one of --key, --certificate or --certificate-identity[-regexp] is required"
        ),
    };
    let issuer = match (
        &t.certificate_oidc_issuer,
        &t.certificate_oidc_issuer_regexp,
    ) {
        (Some(s), _) => Matcher::Exact(s.clone()),
        (None, Some(r)) => Matcher::regex(r)?,
        (None, None) => {
            anyhow::bail!("--certificate-oidc-issuer[-regexp] is required for keyless verification")
        }
    };
    anyhow::ensure!(
        t.trusted_root.is_some(),
        "--trusted-root is required for keyless verification (offline)"
    );
    Ok((Policy::Identity { subject, issuer }, root))
}

/// The checks cosign makes on a given `--certificate` (at its notBefore, as Fulcio certificates are
/// short-lived): against `--certificate-chain` (issuer first) when given; else, with `--trusted-root`,
/// against the root's Fulcio CAs (SCT unless `--insecure-ignore-sct`); else none (pinned only).
fn check_given_certificate(der: &[u8], t: &TrustOptions, root: &TrustedRoot) -> anyhow::Result<()> {
    let (not_before, _) = sigil_sigstore::legacy::certificate_validity(der)?;
    if let Some(p) = &t.certificate_chain {
        let pem = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let chain = sigil_sigstore::crypto::pem_decode_all(&pem, "CERTIFICATE").unwrap_or_default();
        anyhow::ensure!(!chain.is_empty(), "{}: no PEM certificate", p.display());
        sigil_sigstore::legacy::verify_certificate(
            der,
            &chain,
            &Policy::Certificate(der.to_vec()),
            None,
            &[not_before],
            false,
        )
        .map_err(|e| anyhow::anyhow!("does not chain to --certificate-chain: {e}"))?;
    } else if t.trusted_root.is_some() {
        sigil_sigstore::legacy::verify_certificate_with_root(
            der,
            root,
            &[not_before],
            !t.insecure_ignore_sct,
        )
        .map_err(|e| {
            anyhow::anyhow!("not issued by a certificate authority of the trusted root: {e}")
        })?;
    }
    Ok(())
}

fn load_bundle(p: &std::path::Path) -> anyhow::Result<Bundle> {
    let raw = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Bundle::from_json(&raw).with_context(|| format!("parsing bundle {}", p.display()))
}

fn failed(e: &VerifyFailure) -> ExitCode {
    eprintln!("Error: verification failed: {e}");
    ExitCode::from(1)
}

/// `sigil verify-blob`.
pub async fn verify_blob(a: VerifyBlobArgs) -> anyhow::Result<ExitCode> {
    let bundle = load_bundle(&a.bundle)?;
    let (policy, root) = policy(&a.trust)?;
    let src = artifact_source(&a.blob)?;
    let artifact = match &src {
        Ok(b) => Artifact::Bytes(b),
        Err(d) => Artifact::Sha256(*d),
    };
    match verify_bundle(&bundle, Some(&artifact), &policy, &root) {
        Ok(_) => {
            eprintln!("Verified OK");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&e)),
    }
}

/// `sigil verify-blob-attestation`.
pub async fn verify_blob_attestation(a: VerifyBlobAttestationArgs) -> anyhow::Result<ExitCode> {
    let bundle = load_bundle(&a.bundle)?;
    let (policy, root) = policy(&a.trust)?;
    let src = a.blob.as_deref().map(artifact_source).transpose()?;
    let artifact = src.as_ref().map(|s| match s {
        Ok(b) => Artifact::Bytes(b),
        Err(d) => Artifact::Sha256(*d),
    });
    let v = match verify_bundle(&bundle, artifact.as_ref(), &policy, &root) {
        Ok(v) => v,
        Err(e) => return Ok(failed(&e)),
    };
    let Some((ptype, payload)) = v.payload else {
        return Ok(failed(&VerifyFailure::PayloadInvalid(
            "bundle holds no DSSE envelope".into(),
        )));
    };
    if ptype != "application/vnd.in-toto+json" {
        return Ok(failed(&VerifyFailure::PayloadInvalid(format!(
            "payloadType {ptype} is not in-toto"
        ))));
    }
    if let Some(t) = &a.predicate_type {
        let want = predicate_type_uri(t);
        let st: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        let got = st
            .get("predicateType")
            .and_then(|p| p.as_str())
            .unwrap_or_default();
        if got != want {
            return Ok(failed(&VerifyFailure::PayloadInvalid(format!(
                "predicateType {got} is not {want}"
            ))));
        }
    }
    println!("{}", String::from_utf8_lossy(&payload));
    eprintln!("Verified OK");
    Ok(ExitCode::SUCCESS)
}
