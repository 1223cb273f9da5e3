//! `sigil generate-key-pair|sign|attest|verify|verify-attestation`: cosign-compatible signing in the
//! legacy `.sig`/`.att` tag format or as Sigstore bundle referrers (`--bundle`, cosign v3), and
//! verification of both with a key, a pinned certificate (`--certificate [--certificate-chain]`) or a
//! keyless identity (`--certificate-identity[-regexp] --certificate-oidc-issuer[-regexp]
//! --trusted-root`). The work is in `sigil-cosign` and `sigil-sigstore`.
//!
//! Verification searches both the legacy tag and the image's bundle referrers; it succeeds when at
//! least one signature passes every check. `$COSIGN_REPOSITORY` / `--signature-repository` moves both
//! (signing writes there, verification reads there), as cosign v3 does. `-a k=v` is the payload's
//! `optional` section for legacy signatures and the statement subject's `annotations` for bundles.
//! `--certificate` without `--certificate-chain` but with `--trusted-root` must chain to one of the
//! root's Fulcio CAs (at its notBefore, as cosign); without a trusted root it is only pinned.
//!
//! `verify` prints the verified simple-signing payloads as a JSON array on stdout (as cosign does);
//! `verify-attestation` prints one JSON object per verified attestation (`payloadType`, `payload`,
//! `signatures`, plus the decoded `statement`). On failure they exit 1 with one line per rejected
//! signature on stderr. With `--stats`, `requests: N` goes to stderr.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use sigil_artifacts::Referrers;
use sigil_client::RegistryClient;
use sigil_cosign::bundles::{self, VerifiedBundle};
use sigil_cosign::legacy::CertificateTrust;
use sigil_cosign::{PrivateKey, PublicKey, SignatureFailure, Trust, VerifyError, keys};
use sigil_oci::Reference;
use sigil_sigstore::{Matcher, Policy, TrustedRoot};

use super::artifacts::registry_ref;
use super::inspect::client;
use crate::cli::{
    AttestArgs, GenerateKeyPairArgs, SignArgs, TrustOptions, VerifyArgs, VerifyAttestationArgs,
};

fn print_stats(stats: bool, client: &RegistryClient) {
    if stats {
        eprintln!("requests: {}", client.request_count());
    }
}

fn read_text(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn matcher(
    exact: &Option<String>,
    re: &Option<String>,
    what: &str,
) -> anyhow::Result<Option<Matcher>> {
    match (exact, re) {
        (Some(_), Some(_)) => bail!("give only one of --{what} and --{what}-regexp"),
        (Some(e), None) => Ok(Some(Matcher::Exact(e.clone()))),
        (None, Some(r)) => Ok(Some(
            Matcher::regex(r).map_err(|e| anyhow!("--{what}-regexp: {e}"))?,
        )),
        (None, None) => Ok(None),
    }
}

/// The trust anchors from the trust options: a key, a pinned certificate (with optional chain and
/// trusted root for the Rekor SET), or a keyless identity + issuer (which needs `--trusted-root`).
fn trust_from(t: &TrustOptions) -> anyhow::Result<Trust> {
    let subject = matcher(
        &t.certificate_identity,
        &t.certificate_identity_regexp,
        "certificate-identity",
    )?;
    let issuer = matcher(
        &t.certificate_oidc_issuer,
        &t.certificate_oidc_issuer_regexp,
        "certificate-oidc-issuer",
    )?;
    let identity = subject.is_some() || issuer.is_some();
    let root = t
        .trusted_root
        .as_ref()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            TrustedRoot::from_json(&bytes).map_err(|e| anyhow!("{}: {e}", p.display()))
        })
        .transpose()?;
    if t.certificate_chain.is_some() && t.certificate.is_none() {
        bail!("--certificate-chain needs --certificate");
    }
    if let Some(path) = &t.key {
        if identity || t.certificate.is_some() || t.trusted_root.is_some() {
            bail!("--key cannot be combined with certificate or keyless options");
        }
        return Ok(Trust::key(PublicKey::load(path)?));
    }
    if let Some(path) = &t.certificate {
        if identity {
            bail!("--certificate cannot be combined with --certificate-identity/-oidc-issuer");
        }
        let pem = read_text(path)?;
        let leaf = sigil_sigstore::crypto::pem_decode(&pem, "CERTIFICATE")
            .ok_or_else(|| anyhow!("{}: no PEM certificate", path.display()))?;
        if t.certificate_chain.is_none()
            && let Some(root) = &root
        {
            // cosign: without --certificate-chain, the certificate must chain to the trusted root's
            // Fulcio CAs, checked at its notBefore (Fulcio certificates are short-lived); SCT unless
            // --insecure-ignore-sct.
            let (not_before, _) = sigil_sigstore::legacy::certificate_validity(&leaf)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            sigil_sigstore::legacy::verify_certificate_with_root(
                &leaf,
                root,
                &[not_before],
                !t.insecure_ignore_sct,
            )
            .map_err(|e| {
                anyhow!(
                    "{}: not issued by a certificate authority of the trusted root: {e}",
                    path.display()
                )
            })?;
        }
        let chain = match &t.certificate_chain {
            Some(p) => {
                let c = sigil_sigstore::crypto::pem_decode_all(&read_text(p)?, "CERTIFICATE")
                    .unwrap_or_default();
                if c.is_empty() {
                    bail!("{}: no PEM certificate", p.display());
                }
                c
            }
            None => Vec::new(),
        };
        return Ok(Trust {
            keys: Vec::new(),
            certificate: Some(CertificateTrust {
                policy: Policy::Certificate(leaf),
                chain,
                root,
                require_sct: !t.insecure_ignore_sct,
            }),
        });
    }
    match (subject, issuer) {
        (Some(subject), Some(issuer)) => {
            let root = root.ok_or_else(|| {
                anyhow!("keyless verification needs --trusted-root trusted_root.json (offline)")
            })?;
            Ok(Trust {
                keys: Vec::new(),
                certificate: Some(CertificateTrust {
                    policy: Policy::Identity { subject, issuer },
                    chain: Vec::new(),
                    root: Some(root),
                    require_sct: !t.insecure_ignore_sct,
                }),
            })
        }
        (Some(_), None) => bail!("keyless verification needs --certificate-oidc-issuer[-regexp]"),
        (None, Some(_)) => bail!("keyless verification needs --certificate-identity[-regexp]"),
        (None, None) if t.trusted_root.is_some() => {
            bail!("--trusted-root needs --certificate or --certificate-identity/-oidc-issuer")
        }
        (None, None) => bail!("a public key is required: --key cosign.pub"),
    }
}

/// Merges the legacy result with the bundle results: `Ok` with what verified, or the failure with the
/// bundle failures appended.
fn merge<T>(
    legacy: Result<Vec<T>, VerifyError>,
    bundles: Result<(Vec<VerifiedBundle>, Vec<SignatureFailure>), sigil_cosign::CosignError>,
    kind: &'static str,
) -> Result<(Vec<T>, Vec<VerifiedBundle>), VerifyError> {
    let (ok_b, fail_b) = match bundles {
        Ok(b) => b,
        Err(e) => match legacy {
            // A registry error while listing referrers does not hide verified legacy signatures.
            Ok(v) if !v.is_empty() => {
                eprintln!("warning: bundle referrers not searched: {e}");
                return Ok((v, Vec::new()));
            }
            _ => return Err(e.into()),
        },
    };
    match legacy {
        Ok(v) => Ok((v, ok_b)),
        Err(_) if !ok_b.is_empty() => Ok((Vec::new(), ok_b)),
        Err(VerifyError::NoneValid { kind, mut failures }) => {
            failures.extend(fail_b);
            Err(VerifyError::NoneValid { kind, failures })
        }
        Err(VerifyError::NotFound { .. }) if !fail_b.is_empty() => Err(VerifyError::NoneValid {
            kind,
            failures: fail_b,
        }),
        Err(e) => Err(e),
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

/// `$COSIGN_REPOSITORY`, when set.
fn env_signature_repo() -> Option<String> {
    std::env::var("COSIGN_REPOSITORY").ok()
}

/// A leaf certificate (DER, when given) and its chain (DER, issuer first).
type CertificateFiles = (Option<Vec<u8>>, Vec<Vec<u8>>);

/// `--certificate` / `--certificate-chain` PEM files as DER (leaf, chain).
fn certificate_files(
    cert: Option<&std::path::Path>,
    chain: Option<&std::path::Path>,
) -> anyhow::Result<CertificateFiles> {
    let leaf = cert
        .map(|p| {
            sigil_sigstore::crypto::pem_decode(&read_text(p)?, "CERTIFICATE")
                .ok_or_else(|| anyhow!("{}: no PEM certificate", p.display()))
        })
        .transpose()?;
    let chain = match chain {
        Some(p) => {
            let c = sigil_sigstore::crypto::pem_decode_all(&read_text(p)?, "CERTIFICATE")
                .unwrap_or_default();
            if c.is_empty() {
                bail!("{}: no PEM certificate", p.display());
            }
            c
        }
        None => Vec::new(),
    };
    Ok((leaf, chain))
}

pub async fn sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    let image = registry_ref(&a.reference)?;
    let annotations = super::parse_annotations("-a", &a.annotations)?;
    let cert = a.certificate.as_deref().map(read_text).transpose()?;
    let chain = a.certificate_chain.as_deref().map(read_text).transpose()?;
    let key = PrivateKey::load(&a.key)?;
    let signature_repo = env_signature_repo();
    let client = client(&a.registry)?;
    if a.bundle {
        let (certificate, certificate_chain) =
            certificate_files(a.certificate.as_deref(), a.certificate_chain.as_deref())?;
        let opts = bundles::BundleSignOptions {
            annotations,
            certificate,
            certificate_chain,
            signature_repo: signature_repo.clone(),
        };
        let referrers = Referrers::new(client.clone());
        let r = bundles::sign_image_bundle_with(&referrers, &image, &key, &opts).await;
        print_stats(a.stats, &client);
        let (digest, referrer) = r?;
        eprintln!(
            "Signed {}@{digest} (bundle referrer{})",
            image.repository_name(),
            signature_repo
                .map(|r| format!(" in {r}"))
                .unwrap_or_default()
        );
        println!("{referrer}");
        return Ok(ExitCode::SUCCESS);
    }
    let r = sigil_cosign::legacy::sign_image_with(
        &client,
        &image,
        &key,
        &annotations,
        signature_repo.as_deref(),
        cert.as_deref().map(|c| (c, chain.as_deref())),
    )
    .await;
    print_stats(a.stats, &client);
    let (digest, sig) = r?;
    eprintln!("Signed {}@{digest}", image.repository_name());
    println!("{sig}");
    Ok(ExitCode::SUCCESS)
}

pub async fn attest(a: AttestArgs) -> anyhow::Result<ExitCode> {
    let image = registry_ref(&a.reference)?;
    let predicate =
        std::fs::read(&a.predicate).map_err(|e| anyhow!("{}: {e}", a.predicate.display()))?;
    let key = PrivateKey::load(&a.key)?;
    let client = client(&a.registry)?;
    if a.bundle {
        let referrers = Referrers::new(client.clone());
        let r = bundles::attest_image_bundle_in(
            &referrers,
            &image,
            &key,
            &a.predicate_type,
            &predicate,
            env_signature_repo().as_deref(),
        )
        .await;
        print_stats(a.stats, &client);
        let (digest, referrer) = r?;
        eprintln!(
            "Attested {}@{digest} (bundle referrer)",
            image.repository_name()
        );
        println!("{referrer}");
        return Ok(ExitCode::SUCCESS);
    }
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
    let annotations = super::parse_annotations("-a", &a.annotations)?;
    let client = client(&a.registry)?;
    let legacy = sigil_cosign::verify_image(
        &client,
        &image,
        &trust,
        &annotations,
        a.signature_repository.as_deref(),
    )
    .await;
    let referrers = Referrers::new(client.clone());
    // The image digest the -a annotations must be recorded for (resolved only when needed).
    let digest = match (&image.digest, annotations.is_empty()) {
        (_, true) => None,
        (Some(d), false) => Some(d.clone()),
        (None, false) => Some(sigil_cosign::legacy::resolve_digest(&client, &image).await?),
    };
    let found = bundles::verify_image_bundles_in(
        &referrers,
        &image,
        &trust,
        Some(bundles::SIGN_PREDICATE_TYPE),
        a.signature_repository.as_deref(),
    )
    .await
    .map(|(ok, mut failures)| {
        // cosign v3: -a k=v must be among the statement subject's annotations.
        if annotations.is_empty() {
            return (ok, failures);
        }
        let Some(d) = &digest else {
            // Unreachable (resolved above when -a is given); fail closed regardless.
            failures.extend(ok.iter().map(|_| {
                SignatureFailure::Payload("image digest unknown for the -a check".into())
            }));
            return (Vec::new(), failures);
        };
        let mut kept = Vec::new();
        for b in ok {
            match bundles::check_subject_annotations(&b.statement, d, &annotations) {
                Ok(()) => kept.push(b),
                Err(e) => failures.push(e),
            }
        }
        (kept, failures)
    });
    print_stats(a.stats, &client);
    match merge(legacy, found, "signatures") {
        Ok((sigs, bundles)) => {
            let mut out: Vec<_> = sigs.into_iter().map(|s| s.payload).collect();
            out.extend(bundles.into_iter().map(|b| b.statement));
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
    let legacy = sigil_cosign::verify_attestations(
        &client,
        &image,
        &trust,
        a.predicate_type.as_deref(),
        a.signature_repository.as_deref(),
    )
    .await;
    let wanted = a
        .predicate_type
        .as_deref()
        .map(sigil_cosign::payload::predicate_type_uri)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let referrers = Referrers::new(client.clone());
    let found = bundles::verify_image_bundles_in(
        &referrers,
        &image,
        &trust,
        wanted.as_deref(),
        a.signature_repository.as_deref(),
    )
    .await
    .map(|(ok, mut failures)| {
        // Without --type, image signature bundles are not attestations.
        let (keep, sigs): (Vec<_>, Vec<_>) = ok
            .into_iter()
            .partition(|b| wanted.is_some() || b.predicate_type != bundles::SIGN_PREDICATE_TYPE);
        failures.extend(sigs.into_iter().map(|b| SignatureFailure::PredicateType {
            wanted: "an attestation predicate".into(),
            found: b.predicate_type,
        }));
        (keep, failures)
    });
    print_stats(a.stats, &client);
    match merge(legacy, found, "attestations") {
        Ok((atts, bundles)) => {
            let envelopes = atts
                .into_iter()
                .map(|a| (a.envelope, a.statement))
                .chain(bundles.into_iter().map(|b| (b.envelope, b.statement)));
            let mut n = 0;
            for (envelope, statement) in envelopes {
                let mut v = serde_json::to_value(&envelope)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("statement".into(), statement);
                }
                println!("{}", serde_json::to_string(&v)?);
                n += 1;
            }
            eprintln!("Verified {n} attestation(s) for {image}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => report_failure(&image, e),
    }
}
