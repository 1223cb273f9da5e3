//! `--suite verify`: signature verifications per second and registry requests per verification (the
//! Cosign issue's benchmark).
//!
//! 1. **Keyless bundle, offline**: the kubewarden-controller bundle v0.3 (Fulcio chain + SCT + Rekor SET +
//!    inclusion proof) against the production trusted root, both from `crates/sigstore/tests/data`
//!    (compiled in). `sigil_sigstore::verify_bundle` in a loop with everything parsed once, then with the
//!    bundle parsed per iteration, then with the bundle and the trusted root parsed per iteration.
//! 2. **Legacy key signature** on sigil's registry: a small image is pushed, signed with a fresh in-memory
//!    P-256 key (`sigil_cosign::legacy::sign_image`, `sha256-<hex>.sig`), and its digest reference is
//!    verified with `sigil_cosign::policy::verify_for_policy` by one client, then by N concurrent
//!    verifiers (one client each). Requests per verification come from the client's request counter and
//!    must be the same integer for every measured iteration (target <= 3).
//! 3. **Key-signed bundle referrer** on sigil's registry: the same for `sigil_cosign::bundles`
//!    (`sign_image_bundle`, then `verify_image_bundles` with the key; a fresh `Referrers` per
//!    verification, so no learnt referrers mechanism is carried over; target <= 4).
//!
//! Every phase: warm-up, then a fixed measured window; the rate counts the verifications that completed
//! inside the window. Each verification's result is checked (a failure is an error, never a number).
//! Output: a table (metric | value | p50/p99 | target | result) and a `BENCH_JSON_VERIFY {...}` line.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reqwest::Url;
use serde_json::{Value, json};
use sigil_artifacts::Referrers;
use sigil_client::{ClientOptions, RegistryClient};
use sigil_cosign::policy::{Attestor, verify_for_policy};
use sigil_cosign::{PrivateKey, bundles, legacy};
use sigil_oci::{Digest, Reference};
use sigil_sigstore::{Artifact, Bundle, Matcher, Policy, TrustedRoot, verify_bundle};

use crate::image::Image;
use crate::push_image;
use crate::registry::{Registry, http_client};

/// The keyless bundle (Sigstore bundle v0.3, DSSE, with chain + SCT + SET + inclusion proof).
const KW_BUNDLE: &[u8] =
    include_bytes!("../../sigstore/tests/data/kubewarden-controller.bundle_v03.json");
/// The public-good production trusted root it verifies against.
const PROD_ROOT: &[u8] = include_bytes!("../../sigstore/tests/data/trusted_root.prod.json");
/// The certificate identity and issuer of [`KW_BUNDLE`] (as in sigil-sigstore's tests).
const KW_IDENTITY: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const KW_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The subject digest of [`KW_BUNDLE`]'s statement.
const KW_DIGEST: &str = "c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";

/// Target: registry requests per legacy verification of a digest reference.
pub const LEGACY_REQUEST_TARGET: u64 = 3;
/// Target: registry requests per bundle-referrer verification of a digest reference.
pub const BUNDLE_REQUEST_TARGET: u64 = 4;

/// Settings of the verify suite.
#[derive(Clone, Debug)]
pub struct VerifySettings {
    /// Warm-up before each measured window.
    pub warmup: Duration,
    /// Measured window per phase.
    pub duration: Duration,
    /// Concurrent verifiers of the concurrent registry phases.
    pub concurrency: usize,
    /// Whether this is a `--quick` smoke run.
    pub quick: bool,
}

/// What one timed loop measured.
#[derive(Clone, Debug, Default)]
struct LoopStats {
    /// Verifications completed inside the measured window (all verifiers).
    iterations: u64,
    /// The measured window, seconds.
    seconds: f64,
    /// Verifications per second.
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Registry requests per measured verification: (min, max); `None` offline.
    requests: Option<(u64, u64)>,
    errors: u64,
    first_error: Option<String>,
}

impl LoopStats {
    fn from_parts(
        latencies: &mut [f64],
        requests: &[u64],
        errors: u64,
        first_error: Option<String>,
        window: Duration,
    ) -> Self {
        latencies.sort_by(f64::total_cmp);
        let seconds = window.as_secs_f64();
        Self {
            iterations: latencies.len() as u64,
            seconds,
            rate: latencies.len() as f64 / seconds,
            p50_ms: percentile(latencies, 0.50),
            p99_ms: percentile(latencies, 0.99),
            requests: requests
                .iter()
                .min()
                .zip(requests.iter().max())
                .map(|(a, b)| (*a, *b)),
            errors,
            first_error,
        }
    }
}

/// Nearest-rank percentile of sorted milliseconds (0 when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `f` (one verification) in a loop on this thread: `warmup`, then `duration` measured.
fn time_sync(warmup: Duration, duration: Duration, mut f: impl FnMut() -> Result<()>) -> LoopStats {
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + duration);
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0u64, None);
    loop {
        let t0 = Instant::now();
        let r = f();
        let t1 = Instant::now();
        if t1 > end {
            break;
        }
        match r {
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Ok(()) if t0 >= measure_from => latencies.push((t1 - t0).as_secs_f64() * 1e3),
            Ok(()) => {}
        }
    }
    LoopStats::from_parts(&mut latencies, &[], errors, first_error, duration)
}

/// Runs `concurrency` verifiers as tasks; verifier `i` calls `f(i)` (one verification, returning the
/// registry requests it made) in a loop: `warmup`, then `duration` measured.
async fn time_async<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    f: F,
) -> Result<LoopStats>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64>> + Send + 'static,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + duration);
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut requests = Vec::new();
                let (mut errors, mut first_error) = (0u64, None::<String>);
                loop {
                    let t0 = Instant::now();
                    let r = f(i).await;
                    let t1 = Instant::now();
                    if t1 > end {
                        break;
                    }
                    match r {
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                        Ok(n) if t0 >= measure_from => {
                            latencies.push((t1 - t0).as_secs_f64() * 1e3);
                            requests.push(n);
                        }
                        Ok(_) => {}
                    }
                }
                (latencies, requests, errors, first_error)
            })
        })
        .collect();
    let (mut latencies, mut requests, mut errors, mut first_error) =
        (Vec::new(), Vec::new(), 0, None);
    for t in tasks {
        let (l, r, e, fe) = t.await.context("a verifier task panicked")?;
        latencies.extend(l);
        requests.extend(r);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    Ok(LoopStats::from_parts(
        &mut latencies,
        &requests,
        errors,
        first_error,
        duration,
    ))
}

/// One line of the report.
struct Row {
    key: String,
    label: String,
    stats: LoopStats,
    /// Requests-per-verification target, for the request rows.
    request_target: Option<u64>,
}

impl Row {
    fn rate(key: &str, label: String, stats: LoopStats) -> Self {
        Self {
            key: key.to_owned(),
            label,
            stats,
            request_target: None,
        }
    }

    fn verdict(&self) -> &'static str {
        if self.stats.errors > 0 || self.stats.iterations == 0 {
            return "ERROR";
        }
        match (self.request_target, self.stats.requests) {
            (Some(t), Some((lo, hi))) if lo == hi && hi <= t => "PASS",
            (Some(_), _) => "FAIL",
            (None, _) => "-",
        }
    }

    fn requests_cell(&self) -> String {
        match self.stats.requests {
            Some((lo, hi)) if lo == hi => lo.to_string(),
            Some((lo, hi)) => format!("{lo}..{hi} (not constant)"),
            None => "-".to_owned(),
        }
    }

    fn json(&self) -> Value {
        let (lo, hi) = self.stats.requests.unzip();
        json!({
            "label": self.label,
            "verifications_per_s": self.stats.rate,
            "iterations": self.stats.iterations,
            "seconds": self.stats.seconds,
            "p50_ms": self.stats.p50_ms,
            "p99_ms": self.stats.p99_ms,
            "requests_per_verification": (lo == hi).then_some(lo).flatten(),
            "requests_min": lo,
            "requests_max": hi,
            "requests_target": self.request_target,
            "errors": self.stats.errors,
            "first_error": self.stats.first_error,
            "result": self.verdict(),
        })
    }
}

/// The table: one rate row per phase, plus a requests row for the single-client registry phases.
fn table(rows: &[Row], notes: &[String]) -> String {
    let mut lines: Vec<[String; 5]> = vec![[
        "metric".into(),
        "value".into(),
        "p50 / p99 ms".into(),
        "target".into(),
        "result".into(),
    ]];
    for r in rows {
        let value = if r.stats.errors > 0 {
            format!(
                "{} errors: {}",
                r.stats.errors,
                r.stats.first_error.as_deref().unwrap_or("")
            )
        } else {
            format!("{:.0} verif/s", r.stats.rate)
        };
        let (target, result) = match r.request_target {
            Some(_) => (
                "-".to_owned(),
                if r.stats.errors > 0 { "ERROR" } else { "-" },
            ),
            None => ("-".to_owned(), r.verdict()),
        };
        lines.push([
            r.label.clone(),
            value,
            format!("{:.3} / {:.3}", r.stats.p50_ms, r.stats.p99_ms),
            target,
            result.to_owned(),
        ]);
        if let Some(t) = r.request_target {
            lines.push([
                "  registry requests / verification".into(),
                r.requests_cell(),
                String::new(),
                format!("<= {t}"),
                r.verdict().to_owned(),
            ]);
        }
    }
    let mut widths = [0usize; 5];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("-|-"));
            out.push('\n');
        }
    }
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

fn kw_digest() -> Result<[u8; 32]> {
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&KW_DIGEST[2 * i..2 * i + 2], 16)?;
    }
    Ok(d)
}

/// Phase 1: the keyless bundle, offline.
fn offline_phases(s: &VerifySettings, rows: &mut Vec<Row>) -> Result<()> {
    let policy = Policy::Identity {
        subject: Matcher::Exact(KW_IDENTITY.into()),
        issuer: Matcher::Exact(KW_ISSUER.into()),
    };
    let artifact = Artifact::Sha256(kw_digest()?);
    let root = TrustedRoot::from_json(PROD_ROOT).context("parsing trusted_root.prod.json")?;
    let bundle = Bundle::from_json(KW_BUNDLE).context("parsing the kubewarden bundle")?;
    let check = |b: &Bundle, r: &TrustedRoot| -> Result<()> {
        let v = verify_bundle(b, Some(&artifact), &policy, r)
            .map_err(|e| anyhow::anyhow!("verify_bundle: {e}"))?;
        ensure!(v.signing_time.is_some(), "no verified signing time");
        Ok(())
    };
    check(&bundle, &root).context("the keyless bundle does not verify")?;
    let (w, d) = (s.warmup, s.duration);
    let st = time_sync(w, d, || check(&bundle, &root));
    eprintln!("keyless bundle, parsed once: {:.0} verif/s", st.rate);
    rows.push(Row::rate(
        "keyless_bundle_offline",
        "keyless bundle offline (parsed once)".into(),
        st,
    ));
    let st = time_sync(w, d, || check(&Bundle::from_json(KW_BUNDLE)?, &root));
    eprintln!("keyless bundle, bundle parsed: {:.0} verif/s", st.rate);
    rows.push(Row::rate(
        "keyless_bundle_offline_parse_bundle",
        "keyless bundle offline + bundle parse".into(),
        st,
    ));
    let st = time_sync(w, d, || {
        check(
            &Bundle::from_json(KW_BUNDLE)?,
            &TrustedRoot::from_json(PROD_ROOT)?,
        )
    });
    eprintln!(
        "keyless bundle, bundle + root parsed: {:.0} verif/s",
        st.rate
    );
    rows.push(Row::rate(
        "keyless_bundle_offline_parse_all",
        "keyless bundle offline + bundle & root parse".into(),
        st,
    ));
    Ok(())
}

/// A client with its own connections and request counter (no auth file).
fn sigil_client() -> Result<RegistryClient> {
    Ok(RegistryClient::new(ClientOptions {
        load_auth_file: false,
        ..ClientOptions::default()
    })?)
}

/// `host:port` of a registry URL.
fn registry_host(url: &Url) -> Result<String> {
    let host = url.host_str().context("registry URL without a host")?;
    Ok(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// Pushes a small image to `repo` as `latest`; returns its digest reference.
async fn push_fixture(reg: &Registry, host: &str, repo: &str, seed: u64) -> Result<Reference> {
    let img = Image::generate(seed, 1, 4096)?;
    push_image(reg, repo, "latest", &img, 2)
        .await
        .with_context(|| format!("pushing {repo}:latest"))?;
    let digest = Digest::parse(&img.manifest_digest)?;
    Ok(Reference::parse(&format!("{host}/{repo}"))?.with_digest(digest))
}

/// Phase 2: legacy key signature.
async fn legacy_phases(
    s: &VerifySettings,
    reg: &Registry,
    host: &str,
    seed: u64,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let image = push_fixture(reg, host, "bench/verify-legacy", seed).await?;
    let key = PrivateKey::generate_p256()?;
    let signer = sigil_client()?;
    let tagged = image.with_tag("latest");
    let (digest, _) = legacy::sign_image(&signer, &tagged, &key, &BTreeMap::new(), None)
        .await
        .context("sign_image")?;
    ensure!(
        Some(&digest) == image.digest.as_ref(),
        "signed digest {digest} is not the pushed one"
    );
    let attestor = Arc::new(Attestor {
        keys_pem: vec![key.public_key().to_pem()?],
        annotations: BTreeMap::new(),
    });
    let image = Arc::new(image);
    for conc in [1, s.concurrency] {
        let clients = Arc::new(
            (0..conc)
                .map(|_| sigil_client())
                .collect::<Result<Vec<_>>>()?,
        );
        let (attestor, image) = (attestor.clone(), image.clone());
        let st = time_async(conc, s.warmup, s.duration, move |i| {
            let (clients, attestor, image) = (clients.clone(), attestor.clone(), image.clone());
            async move {
                let out = verify_for_policy(&clients[i], &image, &attestor, None).await;
                let sigs = out.result.map_err(|e| anyhow::anyhow!("{e}"))?;
                ensure!(
                    sigs.len() == 1,
                    "{} verified signatures, wanted 1",
                    sigs.len()
                );
                Ok(out.requests)
            }
        })
        .await?;
        eprintln!(
            "legacy key signature, {conc} verifier(s): {:.0} verif/s, requests {:?}",
            st.rate, st.requests
        );
        let mut row = Row::rate(
            &format!("legacy_key_c{conc}"),
            format!("legacy key signature, {conc} verifier(s)"),
            st,
        );
        row.request_target = Some(LEGACY_REQUEST_TARGET);
        rows.push(row);
    }
    Ok(())
}

/// Phase 3: key-signed bundle referrer.
async fn bundle_phases(
    s: &VerifySettings,
    reg: &Registry,
    host: &str,
    seed: u64,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let image = push_fixture(reg, host, "bench/verify-bundle", seed).await?;
    let key = PrivateKey::generate_p256()?;
    let signer = Referrers::new(sigil_client()?);
    let (digest, _) = bundles::sign_image_bundle(&signer, &image.with_tag("latest"), &key)
        .await
        .context("sign_image_bundle")?;
    ensure!(
        Some(&digest) == image.digest.as_ref(),
        "signed digest {digest} is not the pushed one"
    );
    let trust = Arc::new(legacy::Trust::key(key.public_key()));
    let image = Arc::new(image);
    for conc in [1, s.concurrency] {
        let clients = Arc::new(
            (0..conc)
                .map(|_| sigil_client())
                .collect::<Result<Vec<_>>>()?,
        );
        let (trust, image) = (trust.clone(), image.clone());
        let st = time_async(conc, s.warmup, s.duration, move |i| {
            let (clients, trust, image) = (clients.clone(), trust.clone(), image.clone());
            async move {
                let client = &clients[i];
                let before = client.request_count();
                // A fresh referrers service: nothing learnt about the repository is carried over.
                let referrers = Referrers::new(client.clone());
                let (ok, failures) = bundles::verify_image_bundles(
                    &referrers,
                    &image,
                    &trust,
                    Some(bundles::SIGN_PREDICATE_TYPE),
                )
                .await?;
                if ok.len() != 1 || !failures.is_empty() {
                    bail!(
                        "{} verified bundles, {} failures ({:?})",
                        ok.len(),
                        failures.len(),
                        failures.first()
                    );
                }
                Ok(client.request_count() - before)
            }
        })
        .await?;
        eprintln!(
            "key bundle referrer, {conc} verifier(s): {:.0} verif/s, requests {:?}",
            st.rate, st.requests
        );
        let mut row = Row::rate(
            &format!("bundle_key_c{conc}"),
            format!("key bundle referrer, {conc} verifier(s)"),
            st,
        );
        row.request_target = Some(BUNDLE_REQUEST_TARGET);
        rows.push(row);
    }
    Ok(())
}

/// Runs the verify suite; `sigil`: the registry for phases 2 and 3 (skipped without one). Prints the
/// table and the `BENCH_JSON_VERIFY` line; returns whether every phase ran without errors.
pub async fn run(s: &VerifySettings, sigil: Option<&Url>, seed: u64) -> Result<bool> {
    ensure!(!s.duration.is_zero(), "--verify-duration must be > 0");
    ensure!(s.concurrency > 0, "--verify-concurrency must be > 0");
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut ok = true;
    offline_phases(s, &mut rows)?;
    match sigil {
        None => notes.push("no --sigil registry: the registry phases were skipped".into()),
        Some(url) => {
            let reg = Registry::new(http_client(4)?, url);
            reg.ping()
                .await
                .with_context(|| format!("sigil at {url} is not answering /v2/"))?;
            let host = registry_host(url)?;
            if let Err(e) = legacy_phases(s, &reg, &host, seed, &mut rows).await {
                eprintln!("legacy phase failed: {e:#}");
                notes.push(format!("legacy phase failed: {e:#}"));
                ok = false;
            }
            if let Err(e) = bundle_phases(s, &reg, &host, seed ^ 1, &mut rows).await {
                eprintln!("bundle phase failed: {e:#}");
                notes.push(format!("bundle phase failed: {e:#}"));
                ok = false;
            }
            notes.push(format!(
                "registry phases: {} on loopback, digest references, one client (own connections and \
                 request counter) per verifier; bundle phases use a fresh Referrers per verification",
                url
            ));
        }
    }
    notes.push(format!(
        "{:.1} s warm-up + {:.1} s measured per phase; {} CPUs",
        s.warmup.as_secs_f64(),
        s.duration.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, usize::from)
    ));
    ok &= rows
        .iter()
        .all(|r| r.stats.errors == 0 && r.stats.iterations > 0);
    println!();
    print!("{}", table(&rows, &notes));
    let results: serde_json::Map<String, Value> =
        rows.iter().map(|r| (r.key.clone(), r.json())).collect();
    let line = json!({
        "suite": "verify",
        "quick": s.quick,
        "sigil": sigil.map(Url::as_str),
        "settings": {
            "warmup_s": s.warmup.as_secs_f64(),
            "duration_s": s.duration.as_secs_f64(),
            "concurrency": s.concurrency,
        },
        "cpus": std::thread::available_parallelism().map_or(1, usize::from),
        "results": results,
        "notes": notes,
    });
    println!("BENCH_JSON_VERIFY {line}");
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert_eq!(percentile(&v, 0.99), 4.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn request_verdicts() {
        let mut r = Row::rate(
            "x",
            "x".into(),
            LoopStats {
                iterations: 3,
                requests: Some((2, 2)),
                ..LoopStats::default()
            },
        );
        r.request_target = Some(3);
        assert_eq!(r.verdict(), "PASS");
        r.stats.requests = Some((2, 3));
        assert_eq!(r.verdict(), "FAIL");
        r.stats.requests = Some((4, 4));
        assert_eq!(r.verdict(), "FAIL");
        r.stats.errors = 1;
        assert_eq!(r.verdict(), "ERROR");
    }

    #[test]
    fn keyless_bundle_parses() {
        // Parsing only (no timing): the compiled-in data is what the benchmark expects.
        assert!(TrustedRoot::from_json(PROD_ROOT).is_ok());
        assert!(Bundle::from_json(KW_BUNDLE).is_ok());
        assert!(kw_digest().is_ok());
    }
}
