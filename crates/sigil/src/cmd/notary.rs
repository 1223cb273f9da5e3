//! `sigil notary sign|verify|inspect`: Notary Project-compatible signatures (notation's formats, trust
//! policy and trust store). The work is in `sigil-notary`.
//!
//! - `sign` resolves the image, builds a JWS or COSE envelope with the key and certificate chain
//!   (optionally an expiry and an RFC 3161 timestamp), and pushes it as a referrer (the
//!   `artifactType` form, or notation 1.x's form with `--legacy-manifest`); prints the signature
//!   manifest's digest.
//! - `verify` selects the trust policy statement by registry scope and verifies the image's
//!   signatures (at most 10, stopping at the first that verifies; revocation of the signing and TSA
//!   chains is checked against the certificates' OCSP responders and CRL distribution points
//!   unless the policy skips it); prints which signature verified (and warnings of checks set to
//!   "log") on stdout, one line per rejected signature on stderr, and exits 1 when none verified.
//! - `inspect` lists the signatures with their certificates, signing time, expiry and timestamp, as
//!   text or JSON (`-o json`).

use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use sigil_artifacts::Referrers;
use sigil_notary::crypto::PrivateKey;
use sigil_notary::envelope::EnvelopeFormat;
use sigil_notary::trustpolicy::{Level, TrustPolicyDocument};
use sigil_notary::truststore::TrustStore;
use sigil_notary::x509::Cert;
use sigil_notary::{SignOptions, time};

use super::artifacts::registry_ref;
use super::inspect::client;
use crate::cli::{
    NotaryEnvelope, NotaryInspectArgs, NotarySignArgs, NotaryVerifyArgs, PolicyOutput,
};

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| path.display().to_string())
}

/// `sigil notary sign`.
pub async fn sign(args: NotarySignArgs) -> anyhow::Result<ExitCode> {
    let image = registry_ref(&args.reference)?;
    let key_pem = String::from_utf8(read(&args.key)?)
        .map_err(|_| anyhow!("{}: not a PEM file", args.key.display()))?;
    let key =
        PrivateKey::from_pem(&key_pem).map_err(|e| anyhow!("--key {}: {e}", args.key.display()))?;
    let chain = Cert::parse_many(&read(&args.cert)?)
        .map_err(|e| anyhow!("--cert {}: {e}", args.cert.display()))?;
    let expiry_seconds =
        match &args.expiry {
            Some(s) => Some(time::parse_duration(s).ok_or_else(|| {
                anyhow!("--expiry {s:?}: expected a duration like 24h, 30d or 90m")
            })?),
            None => None,
        };
    let timestamp = match (&args.timestamp_url, &args.timestamp_root) {
        (Some(url), Some(root)) => {
            let certs = Cert::parse_many(&read(root)?)
                .map_err(|e| anyhow!("--timestamp-root {}: {e}", root.display()))?;
            let [root_cert] = certs.as_slice() else {
                bail!(
                    "--timestamp-root {}: expected exactly one root certificate",
                    root.display()
                );
            };
            Some((url.clone(), root_cert.clone()))
        }
        _ => None,
    };
    let annotations = super::parse_annotations("-a", &args.annotations)?;
    let opts = SignOptions {
        format: match args.envelope {
            NotaryEnvelope::Jws => EnvelopeFormat::Jws,
            NotaryEnvelope::Cose => EnvelopeFormat::Cose,
        },
        expiry_seconds,
        timestamp,
        annotations,
        legacy_manifest: args.legacy_manifest,
        signing_agent: format!("sigil/{}", env!("CARGO_PKG_VERSION")),
    };
    let referrers = Referrers::new(client(&args.registry)?);
    let report = sigil_notary::sign_image(&referrers, &image, &key, &chain, &opts)
        .await
        .map_err(|e| anyhow!("{image}: {e}"))?;
    println!(
        "Successfully signed {}@{}",
        image.repository_name(),
        report.target.digest
    );
    println!(
        "Pushed the signature to {}@{}",
        image.repository_name(),
        report.signature
    );
    Ok(ExitCode::SUCCESS)
}

/// `sigil notary verify`.
pub async fn verify(args: NotaryVerifyArgs) -> anyhow::Result<ExitCode> {
    let image = registry_ref(&args.reference)?;
    let policy = TrustPolicyDocument::from_json(&read(&args.trust_policy)?)
        .map_err(|e| anyhow!("{}: {e}", args.trust_policy.display()))?;
    let store = TrustStore::from_dir(&args.trust_store)?;
    let client = client(&args.registry)?;
    let referrers = Referrers::new(client.clone());
    let result = sigil_notary::verify_image(&referrers, &image, &policy, &store).await;
    if args.stats {
        eprintln!("requests: {}", client.request_count());
    }
    let v = result.map_err(|e| anyhow!("{image}: {e}"))?;
    if v.level == Level::Skip {
        println!(
            "Trust policy is configured to skip signature verification for {}",
            v.artifact
        );
        return Ok(ExitCode::SUCCESS);
    }
    for s in &v.signatures {
        if !s.passed() {
            eprintln!("signature {}: {}", s.digest, s.reason());
        }
    }
    if v.skipped_signatures > 0 {
        eprintln!(
            "{} more signature(s) not tried (at most {} are)",
            v.skipped_signatures,
            sigil_notary::oci::MAX_SIGNATURE_ATTEMPTS
        );
    }
    match v.verified() {
        Some(s) => {
            if let Ok(sv) = &s.verification {
                for w in sv.warnings() {
                    println!("Warning: {w}");
                }
                let signer = sv
                    .envelope
                    .as_ref()
                    .map(|e| {
                        format!(
                            ", {} signed by {:?}",
                            e.format.media_type(),
                            e.chain[0].subject()
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "Successfully verified signature for {} (signature {}{signer}; policy {:?}, level {})",
                    v.artifact,
                    s.digest,
                    v.policy,
                    v.level.as_str()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        None if v.signatures.is_empty() => {
            bail!("{}: no Notary signature found", v.artifact)
        }
        None => bail!(
            "signature verification failed for all the signatures associated with {}",
            v.artifact
        ),
    }
}

/// `sigil notary inspect`.
pub async fn inspect(args: NotaryInspectArgs) -> anyhow::Result<ExitCode> {
    let image = registry_ref(&args.reference)?;
    let referrers = Referrers::new(client(&args.registry)?);
    let (target, sigs) = sigil_notary::inspect_image(&referrers, &image)
        .await
        .map_err(|e| anyhow!("{image}: {e}"))?;
    let artifact = format!("{}@{}", image.repository_name(), target.digest);
    if args.output == PolicyOutput::Json {
        let v = serde_json::json!({
            "mediaType": target.media_type,
            "digest": target.digest.to_string(),
            "size": target.size,
            "reference": artifact,
            "signatures": sigs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{artifact}");
    if sigs.is_empty() {
        println!("└── no Notary signatures");
    }
    for s in &sigs {
        println!("└── {}", s.digest);
        let line = |k: &str, v: &str| println!("    {k}: {v}");
        if let Some(e) = &s.error {
            line("error", e);
            continue;
        }
        line("media type", &s.media_type);
        if let Some(f) = s.manifest_form {
            line("manifest form", &format!("{f:?}"));
        }
        line(
            "signature algorithm",
            s.signature_algorithm.as_deref().unwrap_or("-"),
        );
        line("signing scheme", s.signing_scheme.as_deref().unwrap_or("-"));
        line("signing time", s.signing_time.as_deref().unwrap_or("-"));
        line("expiry", s.expiry.as_deref().unwrap_or("none"));
        if let Some(a) = &s.signing_agent {
            line("signing agent", a);
        }
        if let Some(t) = &s.signed_artifact {
            line(
                "signed artifact",
                &format!("{} {} ({} bytes)", t.media_type, t.digest, t.size),
            );
        }
        match &s.timestamp {
            Some(t) => line("timestamp", &t.timestamp),
            None => line("timestamp", "none"),
        }
        println!("    certificates:");
        for c in &s.certificates {
            println!("      - subject: {}", c.subject);
            println!("        issuer: {}", c.issuer);
            println!("        SHA-256 fingerprint: {}", c.sha256);
            println!("        valid: {} .. {}", c.not_before, c.not_after);
        }
    }
    Ok(ExitCode::SUCCESS)
}
