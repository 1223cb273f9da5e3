//! `--suite notary`: Notary signature verification (sigil-notary).
//!
//! 1. **Offline**: verifications/s of one envelope through the whole verification workflow (parse,
//!    signature, notation's chain rules, authenticity against an in-memory `ca` store, expiry,
//!    validity, target descriptor) under a strict policy, for JWS and COSE envelopes with a
//!    3-certificate chain (root → intermediate → leaf), ES256 and PS256 leaves (`data/notary/`, a
//!    benchmark-only PKI).
//! 2. **Registry** (sigil's registry): an image is pushed and signed (`sign_image`, JWS, 3-certificate
//!    chain); then `verify_image` of the digest reference is repeated, each with a fresh `Referrers`
//!    (nothing learnt carried over): verifications/s and registry requests per verification (target
//!    <= 4: HEAD of the image, referrers list, signature manifest, envelope blob).
//!
//! Every verification's result is checked (a failure is an error, never a number). Output: a table
//! and a `BENCH_JSON_NOTARY {...}` line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use reqwest::Url;
use serde_json::json;
use sigil_artifacts::Referrers;
use sigil_client::{BlobBody, ClientOptions, PutCondition, RegistryClient};
use sigil_notary::crypto::PrivateKey;
use sigil_notary::envelope::{self, EnvelopeFormat, SignRequest, TargetArtifact};
use sigil_notary::trustpolicy::{TrustPolicyDocument, TrustPolicyStatement};
use sigil_notary::truststore::{StoreType, TrustStore};
use sigil_notary::verifier::{ExpectedTarget, VerifyContext, verify_signature};
use sigil_notary::x509::Cert;
use sigil_oci::{Descriptor, ImageManifest, Reference, media_type as mt};

use crate::verify::VerifySettings;

const ROOT: &str = include_str!("../data/notary/root.pem");
const CHAIN_EC: &str = include_str!("../data/notary/chain-ec.pem");
const KEY_EC: &str = include_str!("../data/notary/leaf-ec.key");
const CHAIN_RSA: &str = include_str!("../data/notary/chain-rsa.pem");
const KEY_RSA: &str = include_str!("../data/notary/leaf-rsa.key");

/// Runs `f` for the warm-up, then counts completions in the measured window.
fn rate(s: &VerifySettings, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    while start.elapsed() < s.warmup {
        f()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < s.duration {
        f()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn store() -> Result<TrustStore> {
    let mut st = TrustStore::in_memory();
    st.add(StoreType::Ca, "bench", Cert::parse_many(ROOT.as_bytes())?)?;
    Ok(st)
}

fn statement() -> TrustPolicyStatement {
    TrustPolicyStatement::strict_any("bench", vec![(StoreType::Ca, "bench".into())])
}

/// Runs the suite against sigil's registry at `sigil`; returns whether every phase succeeded.
pub async fn run(s: &VerifySettings, sigil: &Url, seed: u64) -> Result<bool> {
    ensure!(!s.duration.is_zero(), "--verify-duration must be > 0");
    let st = store()?;
    let stmt = statement();
    let target = TargetArtifact {
        media_type: mt::OCI_MANIFEST.into(),
        digest: format!("sha256:{}", "5e".repeat(32)),
        size: 1234,
        annotations: None,
    };
    let expected = ExpectedTarget {
        media_type: target.media_type.clone(),
        digest: target.digest.clone(),
        size: target.size,
    };
    let mut rows = Vec::new();
    for (label, chain_pem, key_pem) in [("ES256", CHAIN_EC, KEY_EC), ("PS256", CHAIN_RSA, KEY_RSA)]
    {
        let chain = Cert::parse_many(chain_pem.as_bytes())?;
        ensure!(
            chain.len() == 3,
            "the benchmark chain must have 3 certificates"
        );
        let key = PrivateKey::from_pem(key_pem)?;
        for format in [EnvelopeFormat::Jws, EnvelopeFormat::Cose] {
            let req = SignRequest {
                target: target.clone(),
                signing_time: sigil_notary::time::now(),
                expiry: None,
                key: &key,
                chain: &chain,
                signing_agent: "sigil-bench".into(),
            };
            let env = envelope::sign(format, &req)?.finish(None)?;
            let ctx = VerifyContext {
                policy: &stmt,
                store: &st,
                now: sigil_notary::time::now(),
            };
            let r = rate(s, || {
                let v = verify_signature(format.media_type(), &env, Some(&expected), &ctx);
                if !v.passed() {
                    bail!("verification failed: {}", v.reason());
                }
                Ok(())
            })?;
            let name = format!(
                "{}_{label}_3cert",
                if format == EnvelopeFormat::Jws {
                    "jws"
                } else {
                    "cose"
                }
            );
            eprintln!("notary {name}: {r:.0} verif/s");
            rows.push((name, r, "verif/s"));
        }
    }

    // Registry phase.
    let host = sigil.host_str().context("--sigil has no host")?;
    let port = sigil
        .port_or_known_default()
        .context("--sigil has no port")?;
    let client = RegistryClient::new(ClientOptions {
        insecure: sigil.scheme() == "http",
        ..ClientOptions::default()
    })?;
    let image = Reference::parse(&format!("{host}:{port}/bench/notary-{seed:x}:v1"))?;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = format!("notary bench layer {seed}").into_bytes();
    let cd = Descriptor::for_bytes(mt::OCI_CONFIG, &config);
    let ld = Descriptor::for_bytes(mt::OCI_LAYER_TAR, &layer);
    client
        .push_blob(
            &image,
            &cd.digest,
            Some(config.len() as u64),
            BlobBody::bytes(config),
        )
        .await?;
    client
        .push_blob(
            &image,
            &ld.digest,
            Some(layer.len() as u64),
            BlobBody::bytes(layer),
        )
        .await?;
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: cd,
        layers: vec![ld],
        subject: None,
        annotations: None,
    };
    let mb = m.to_bytes();
    let digest = client
        .put_manifest(
            &image,
            Bytes::from(mb),
            mt::OCI_MANIFEST,
            PutCondition::None,
        )
        .await?
        .digest;
    let chain = Cert::parse_many(CHAIN_EC.as_bytes())?;
    let key = PrivateKey::from_pem(KEY_EC)?;
    let opts = sigil_notary::SignOptions {
        format: EnvelopeFormat::Jws,
        expiry_seconds: None,
        timestamp: None,
        annotations: Default::default(),
        legacy_manifest: false,
        signing_agent: "sigil-bench".into(),
    };
    sigil_notary::sign_image(&Referrers::new(client.clone()), &image, &key, &chain, &opts).await?;
    let policy = TrustPolicyDocument::from_json(
        br#"{"version":"1.0","trustPolicies":[{"name":"bench","registryScopes":["*"],
        "signatureVerification":{"level":"strict"},"trustStores":["ca:bench"],"trustedIdentities":["*"]}]}"#,
    )?;
    let by_digest = image.with_digest(digest);
    let once = || async {
        let before = client.request_count();
        let v =
            sigil_notary::verify_image(&Referrers::new(client.clone()), &by_digest, &policy, &st)
                .await?;
        ensure!(v.passed(), "registry verification failed");
        Ok::<u64, anyhow::Error>(client.request_count() - before)
    };
    let requests = once().await?;
    let start = Instant::now();
    while start.elapsed() < s.warmup {
        once().await?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < s.duration.max(Duration::from_millis(500)) {
        let r = once().await?;
        ensure!(
            r == requests,
            "request count changed between verifications ({requests} then {r})"
        );
        n += 1;
    }
    let reg_rate = n as f64 / start.elapsed().as_secs_f64();
    eprintln!("notary registry verify: {reg_rate:.0} verif/s, {requests} requests each");
    rows.push(("registry_verify_digest_ref".into(), reg_rate, "verif/s"));
    rows.push((
        "registry_requests_per_verification".into(),
        requests as f64,
        "requests",
    ));

    println!("{:<40} {:>12}  unit", "notary metric", "value");
    for (name, v, unit) in &rows {
        println!("{name:<40} {v:>12.1}  {unit}");
    }
    let pass = requests <= 4;
    println!(
        "registry requests per verification: {requests} (target <= 4): {}",
        if pass { "PASS" } else { "FAIL" }
    );
    let line = json!({
        "suite": "notary",
        "results": rows.iter().map(|(n, v, u)| json!({"metric": n, "value": v, "unit": u})).collect::<Vec<_>>(),
        "requests_per_verification": requests,
        "requests_target": 4,
        "cpus": std::thread::available_parallelism().map_or(1, usize::from),
    });
    println!("BENCH_JSON_NOTARY {line}");
    Ok(true)
}
