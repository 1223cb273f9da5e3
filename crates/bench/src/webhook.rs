//! `--suite webhook`: AdmissionReviews per second against `sigil webhook serve` over HTTPS (the
//! image-verification issue's benchmark).
//!
//! Set-up (before any clock starts): a fresh P-256 key; a ClusterPolicy verifying
//! `<registry>/bench/webhook/*` with that key (Enforce, `mutateDigest`, tlog/SCT ignored: the
//! signatures are key-only) is written into the webhook's policies directory, and the benchmark waits
//! until `/readyz` shows it loaded (the webhook reloads within a second). Small distinct images are
//! pushed to sigil's registry and signed (`sigil_cosign::legacy::sign_image`, `sha256-<hex>.sig`).
//!
//! Phases, each review checked (`"allowed":true` in a 200 response; anything else is an error):
//!
//! 1. **cached**: the same 1-container Pod (tag reference, so a tag-cache hit and a decision-cache hit)
//!    posted by N keep-alive clients, for each N of `--webhook-concurrency` (default 2, 4, 16): warm-up,
//!    then a measured window. Target ≥ 10,000 reviews/s with p99 < 2 ms.
//! 2. **uncached, 1 image, 1 client**: every review names an image never seen before (distinct digest),
//!    one at a time. Target p99 < 25 ms. Registry requests per image come from the webhook's
//!    `sigil_engine_registry_requests_total` before and after.
//! 3. **uncached, 10 images, 1 client**: Pods of 10 never-seen images. Target: p50 < 2 × phase 2's p50
//!    (the images are verified in parallel).
//! 4. **uncached, 1 image, max(N) clients**: throughput and p99 of distinct images.
//!
//! 5. **registry at a distance**: phases 2 and 3 again (fewer reviews), with the registry reached
//!    through an in-process TCP proxy that delays every chunk by half of `--webhook-remote-rtt-ms`
//!    (default 4 ms) in each direction, as a registry across a network would be. On loopback the
//!    10-image Pod is bounded by the two shared CPUs (registry and webhook on the same cores), not by
//!    waiting; at a distance the waiting dominates and the parallel verification shows.
//!
//! The webhook's RSS (`VmRSS` of `/proc/<pid>/status`) is read idle (after the policy load, before
//! phase 1) and sampled every 50 ms during phase 1 (peak reported). Output: a table and a
//! `BENCH_JSON_WEBHOOK {...}` line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};
use sigil_client::{ClientOptions, RegistryClient};
use sigil_cosign::{PrivateKey, legacy};
use sigil_oci::Reference;

use crate::image::Image;
use crate::push_image;
use crate::registry::{Registry, http_client};

/// Target: cached reviews per second.
pub const CACHED_RATE_TARGET: f64 = 10_000.0;
/// Target: cached p99 (ms).
pub const CACHED_P99_TARGET_MS: f64 = 2.0;
/// Target: uncached p99 (ms).
pub const UNCACHED_P99_TARGET_MS: f64 = 25.0;
/// Target: 10-image Pod p50 / 1-image Pod p50.
pub const TEN_IMAGE_RATIO_TARGET: f64 = 2.0;
/// Target: idle RSS (MiB).
pub const IDLE_RSS_TARGET_MIB: f64 = 40.0;

/// Settings of the webhook suite.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// The webhook's base URL (`https://127.0.0.1:PORT`).
    pub url: Url,
    /// PEM CA certificate that signed the webhook's serving certificate.
    pub ca: PathBuf,
    /// The webhook's policies directory (the policy is written there).
    pub policies: PathBuf,
    /// The webhook's process id, for RSS (none: RSS not reported).
    pub pid: Option<u32>,
    /// Warm-up of the cached phase.
    pub warmup: Duration,
    /// Measured window of the cached phase.
    pub duration: Duration,
    /// Client counts of the cached phase (one measurement each); the largest also drives phase 4.
    pub concurrency: Vec<usize>,
    /// Reviews in the uncached 1-image phases (each a new image).
    pub uncached: usize,
    /// Reviews in the 10-image phase.
    pub ten_image: usize,
    /// Round-trip time added by the delay proxy of phase 5.
    pub remote_rtt: Duration,
    /// Reviews of each kind (1-image, 10-image Pods) in phase 5.
    pub remote: usize,
    /// Smoke run.
    pub quick: bool,
}

/// Figures of one phase.
#[derive(Clone, Debug, Default)]
struct Phase {
    requests: u64,
    seconds: f64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    first_error: Option<String>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How a phase picks its bodies.
enum Bodies {
    /// The same body, for `warmup` + `duration`.
    Repeat {
        body: Bytes,
        warmup: Duration,
        duration: Duration,
    },
    /// Each body once.
    Once(Vec<Bytes>),
}

/// Posts reviews with `concurrency` clients sharing one keep-alive pool.
async fn load(client: &Client, url: &Url, bodies: Bodies, concurrency: usize) -> Result<Phase> {
    let (bodies, repeat, warmup, duration) = match bodies {
        Bodies::Repeat {
            body,
            warmup,
            duration,
        } => (vec![body], true, warmup, duration),
        Bodies::Once(v) => (v, false, Duration::ZERO, Duration::ZERO),
    };
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut first_error) = (0u64, None::<String>);
            loop {
                let body = if repeat {
                    if Instant::now() >= end {
                        break;
                    }
                    bodies[0].clone()
                } else {
                    match bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                        Some(b) => b.clone(),
                        None => break,
                    }
                };
                let t0 = Instant::now();
                let outcome = match client
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(resp) => {
                        let st = resp.status();
                        match resp.bytes().await {
                            Ok(b) if st == StatusCode::OK && contains(&b, b"\"allowed\":true") => {
                                Ok(())
                            }
                            Ok(b) => Err(format!(
                                "status {st}: {}",
                                String::from_utf8_lossy(&b[..b.len().min(300)])
                            )),
                            Err(e) => Err(format!("reading the response: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request: {e}")),
                };
                let t1 = Instant::now();
                match outcome {
                    Ok(()) if !repeat || t0 >= measure_from => {
                        if !repeat || t1 <= end {
                            lat.push((t1 - t0).as_secs_f64() * 1e3);
                        }
                    }
                    Ok(()) => {}
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error)
        });
    }
    let mut lat = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    while let Some(r) = tasks.join_next().await {
        let (l, e, fe) = r.context("a load task panicked")?;
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    let seconds = if repeat {
        duration.as_secs_f64()
    } else {
        start.elapsed().as_secs_f64()
    };
    lat.sort_by(f64::total_cmp);
    Ok(Phase {
        requests: lat.len() as u64,
        seconds,
        rate: lat.len() as f64 / seconds.max(1e-9),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        errors,
        first_error,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `VmRSS` of a process, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// An AdmissionReview of a Pod with these images.
fn pod_review(uid: &str, images: &[String]) -> Bytes {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image, "imagePullPolicy": "IfNotPresent"}))
        .collect();
    let v = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "bench",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "bench", "namespace": "default", "labels": {"app": "bench"}},
                "spec": {"containers": containers, "restartPolicy": "Always"}
            },
            "oldObject": null,
            "dryRun": false
        }
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn policy_yaml(patterns: &[String], key_pem: &str) -> String {
    let key: Vec<String> = key_pem
        .trim()
        .lines()
        .map(|l| format!("                      {l}"))
        .collect();
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: bench-webhook
spec:
  rules:
    - name: signed
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: [{patterns}]
          failureAction: Enforce
          mutateDigest: true
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}
                    rekor:
                      ignoreTlog: true
                    ctlog:
                      ignoreSCT: true
"#,
        key = key.join("\n"),
        patterns = patterns
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A TCP proxy to `upstream` that delivers every chunk `one_way` after it was read, in both
/// directions: a registry `2 × one_way` of round-trip time away, as a remote one would be (the
/// benchmark's registry is on loopback, where parallel verification cannot show).
async fn delay_proxy(
    upstream: std::net::SocketAddr,
    one_way: Duration,
) -> Result<std::net::SocketAddr> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    async fn pump<R, W>(mut r: R, mut w: W, one_way: Duration)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send((Instant::now() + one_way, buf[..n].to_vec()))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        while let Some((due, chunk)) = rx.recv().await {
            // tokio's timer has a 1 ms tick and rounds up (a 2 ms sleep takes ~3 ms): sleep to just
            // before the due time, then yield until it has passed.
            let early = due.checked_sub(Duration::from_millis(1)).unwrap_or(due);
            if early > Instant::now() {
                tokio::time::sleep_until(early.into()).await;
            }
            while Instant::now() < due {
                tokio::task::yield_now().await;
            }
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    }
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, one_way));
                tokio::spawn(pump(ro, wi, one_way));
            });
        }
    });
    Ok(addr)
}

async fn metric(client: &Client, base: &Url, name: &str) -> Result<f64> {
    let url = base.join("/metrics")?;
    let text = client.get(url).send().await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {name} on /metrics"))
}

/// Pushes `n` distinct images `bench/webhook:<prefix><i>` and signs them; returns tag references.
async fn signed_images(
    reg: &Registry,
    signer: &RegistryClient,
    host: &str,
    key: &PrivateKey,
    prefix: &str,
    n: usize,
    seed: u64,
) -> Result<Vec<String>> {
    stream::iter(0..n)
        .map(|i| async move {
            let img = Image::generate(seed.wrapping_add(i as u64 * 7919), 1, 512)?;
            let tag = format!("{prefix}{i}");
            push_image(reg, "bench/webhook", &tag, &img, 2).await?;
            let r = format!("{host}/bench/webhook:{tag}");
            let reference = Reference::parse(&r)?;
            legacy::sign_image(signer, &reference, key, &BTreeMap::new(), None)
                .await
                .with_context(|| format!("signing {r}"))?;
            Ok::<_, anyhow::Error>(r)
        })
        .buffered(8)
        .try_collect()
        .await
}

struct Row {
    key: String,
    label: String,
    value: String,
    target: String,
    result: &'static str,
    json: Value,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn phase_row(key: &str, label: String, p: &Phase, target: String, ok: Option<bool>) -> Row {
    let result = if p.errors > 0 || p.requests == 0 {
        "ERROR"
    } else {
        ok.map_or("-", verdict)
    };
    let value = if p.errors > 0 {
        format!(
            "{} errors: {}",
            p.errors,
            p.first_error.as_deref().unwrap_or("")
        )
    } else {
        format!(
            "{:.0} reviews/s, p50 {:.3} ms, p99 {:.3} ms ({} reviews)",
            p.rate, p.p50_ms, p.p99_ms, p.requests
        )
    };
    Row {
        key: key.to_owned(),
        label,
        value,
        target,
        result,
        json: json!({
            "reviews_per_s": p.rate, "p50_ms": p.p50_ms, "p99_ms": p.p99_ms,
            "reviews": p.requests, "seconds": p.seconds, "errors": p.errors,
            "first_error": p.first_error, "result": result,
        }),
    }
}

/// Runs the webhook suite against the registry `sigil` and the webhook in `s`.
pub async fn run(s: &WebhookSettings, sigil: &Url, seed: u64) -> Result<bool> {
    ensure!(
        !s.concurrency.is_empty() && s.concurrency.iter().all(|&c| c > 0),
        "--webhook-concurrency values must be > 0"
    );
    let max_conc = s.concurrency.iter().copied().max().unwrap_or(1);
    let ca = std::fs::read(&s.ca).with_context(|| format!("reading {}", s.ca.display()))?;
    let client = Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_conc.max(8))
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .timeout(Duration::from_secs(60))
        .build()?;
    let health = s.url.join("/healthz")?;
    client
        .get(health.clone())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("the webhook at {health} is not answering"))?;
    let reg = Registry::new(http_client(16)?, sigil);
    reg.ping()
        .await
        .with_context(|| format!("sigil at {sigil}"))?;
    let host = match sigil.port() {
        Some(p) => format!("{}:{p}", sigil.host_str().context("no host")?),
        None => sigil.host_str().context("no host")?.to_owned(),
    };

    // The same registry behind a delay proxy (a remote registry's round-trip time).
    let upstream = tokio::net::lookup_host(&host)
        .await?
        .next()
        .with_context(|| format!("cannot resolve {host}"))?;
    let remote = format!("{}", delay_proxy(upstream, s.remote_rtt / 2).await?);

    // Key, policy, reload.
    let key = PrivateKey::generate_p256()?;
    let policy = policy_yaml(
        &[
            format!("{host}/bench/webhook*"),
            format!("{remote}/bench/webhook*"),
        ],
        &key.public_key().to_pem()?,
    );
    let policy_path = s.policies.join("bench-webhook.yaml");
    std::fs::write(&policy_path, policy)
        .with_context(|| format!("writing {}", policy_path.display()))?;
    let ready = s.url.join("/readyz")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r: Value = client.get(ready.clone()).send().await?.json().await?;
        if r["policies"].as_u64().unwrap_or(0) >= 1 && r["lastReloadError"].is_null() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the webhook did not load {} within 15 s: {r}",
                policy_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Images (before any clock).
    let signer = RegistryClient::new(ClientOptions {
        load_auth_file: false,
        ..ClientOptions::default()
    })?;
    eprintln!(
        "webhook suite: pushing and signing {} images...",
        1 + 2 * s.uncached + 10 * s.ten_image + 11 * s.remote
    );
    let t = Instant::now();
    let cached = signed_images(&reg, &signer, &host, &key, "cached", 1, seed).await?;
    let single = signed_images(&reg, &signer, &host, &key, "one", s.uncached, seed ^ 0x11).await?;
    let multi = signed_images(&reg, &signer, &host, &key, "multi", s.uncached, seed ^ 0x22).await?;
    let ten = signed_images(
        &reg,
        &signer,
        &host,
        &key,
        "ten",
        10 * s.ten_image,
        seed ^ 0x33,
    )
    .await?;
    // Signed through the proxy address: their references name the "remote" registry.
    let remote_one =
        signed_images(&reg, &signer, &remote, &key, "r-one", s.remote, seed ^ 0x44).await?;
    let remote_ten = signed_images(
        &reg,
        &signer,
        &remote,
        &key,
        "r-ten",
        10 * s.remote,
        seed ^ 0x55,
    )
    .await?;
    eprintln!(
        "webhook suite: images ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mutate = s.url.join("/mutate")?;
    let rss_idle = s.pid.and_then(rss_mib);

    // 1. Cached.
    let body = pod_review("cached", &cached);
    let warm = load(&client, &mutate, Bodies::Once(vec![body.clone()]), 1).await?;
    ensure!(
        warm.errors == 0,
        "the first review of the cached image failed: {:?}",
        warm.first_error
    );
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = s.pid.map(|pid| {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0f64;
            while sampling.load(Ordering::Relaxed) {
                if let Some(r) = rss_mib(pid) {
                    peak = peak.max(r);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    });
    let mut cached_phases = Vec::new();
    for &conc in &s.concurrency {
        let p = load(
            &client,
            &mutate,
            Bodies::Repeat {
                body: body.clone(),
                warmup: s.warmup,
                duration: s.duration,
            },
            conc,
        )
        .await?;
        eprintln!(
            "cached, {conc} clients: {:.0} reviews/s p50 {:.3} p99 {:.3} ms",
            p.rate, p.p50_ms, p.p99_ms
        );
        cached_phases.push((conc, p));
    }
    sampling.store(false, Ordering::Relaxed);
    let rss_load = match sampler {
        Some(h) => Some(h.await.unwrap_or(0.0)),
        None => None,
    };

    // 2. Uncached, one client.
    let req0 = metric(&client, &s.url, "sigil_engine_registry_requests_total").await?;
    let bodies: Vec<Bytes> = single
        .iter()
        .enumerate()
        .map(|(i, img)| pod_review(&format!("one-{i}"), std::slice::from_ref(img)))
        .collect();
    let p_one = load(&client, &mutate, Bodies::Once(bodies), 1).await?;
    let req1 = metric(&client, &s.url, "sigil_engine_registry_requests_total").await?;
    let per_image = (req1 - req0) / s.uncached.max(1) as f64;
    eprintln!(
        "uncached 1 image: p50 {:.3} p99 {:.3} ms, {per_image:.2} registry requests/image",
        p_one.p50_ms, p_one.p99_ms
    );

    // 3. Uncached, 10 images per Pod, one client.
    let bodies: Vec<Bytes> = ten
        .chunks(10)
        .enumerate()
        .map(|(i, imgs)| pod_review(&format!("ten-{i}"), imgs))
        .collect();
    let req2 = metric(&client, &s.url, "sigil_engine_registry_requests_total").await?;
    let p_ten = load(&client, &mutate, Bodies::Once(bodies), 1).await?;
    let req3 = metric(&client, &s.url, "sigil_engine_registry_requests_total").await?;
    let ten_ratio = if p_one.p50_ms > 0.0 {
        p_ten.p50_ms / p_one.p50_ms
    } else {
        0.0
    };
    eprintln!(
        "uncached 10 images: p50 {:.3} p99 {:.3} ms ({ten_ratio:.2}x one image)",
        p_ten.p50_ms, p_ten.p99_ms
    );

    // 4. Uncached, concurrent.
    let bodies: Vec<Bytes> = multi
        .iter()
        .enumerate()
        .map(|(i, img)| pod_review(&format!("multi-{i}"), std::slice::from_ref(img)))
        .collect();
    let p_multi = load(&client, &mutate, Bodies::Once(bodies), max_conc).await?;
    eprintln!(
        "uncached, {max_conc} clients: {:.0} reviews/s p99 {:.3} ms",
        p_multi.rate, p_multi.p99_ms
    );

    // 5. The same through the delay proxy: 1-image vs 10-image Pods, one client.
    let bodies: Vec<Bytes> = remote_one
        .iter()
        .enumerate()
        .map(|(i, img)| pod_review(&format!("r-one-{i}"), std::slice::from_ref(img)))
        .collect();
    let p_r_one = load(&client, &mutate, Bodies::Once(bodies), 1).await?;
    let bodies: Vec<Bytes> = remote_ten
        .chunks(10)
        .enumerate()
        .map(|(i, imgs)| pod_review(&format!("r-ten-{i}"), imgs))
        .collect();
    let p_r_ten = load(&client, &mutate, Bodies::Once(bodies), 1).await?;
    let r_ratio = if p_r_one.p50_ms > 0.0 {
        p_r_ten.p50_ms / p_r_one.p50_ms
    } else {
        0.0
    };
    let rtt_ms = s.remote_rtt.as_secs_f64() * 1e3;
    eprintln!(
        "registry at {rtt_ms:.0} ms RTT: 1 image p50 {:.3} ms, 10 images p50 {:.3} ms ({r_ratio:.2}x)",
        p_r_one.p50_ms, p_r_ten.p50_ms
    );

    let mut rows: Vec<Row> = cached_phases
        .iter()
        .map(|(conc, p)| {
            phase_row(
                &format!("cached_c{conc}"),
                format!("cached decision, {conc} clients"),
                p,
                format!(">= {CACHED_RATE_TARGET:.0}/s, p99 < {CACHED_P99_TARGET_MS} ms"),
                Some(p.rate >= CACHED_RATE_TARGET && p.p99_ms < CACHED_P99_TARGET_MS),
            )
        })
        .collect();
    rows.extend([
        phase_row(
            "uncached_c1",
            "uncached, 1 image, 1 client".into(),
            &p_one,
            format!("p99 < {UNCACHED_P99_TARGET_MS} ms"),
            Some(p_one.p99_ms < UNCACHED_P99_TARGET_MS),
        ),
        phase_row(
            "uncached_ten_c1",
            "uncached, 10-image Pod, 1 client".into(),
            &p_ten,
            format!("p50 < {TEN_IMAGE_RATIO_TARGET}x 1 image ({ten_ratio:.2}x)"),
            Some(ten_ratio > 0.0 && ten_ratio < TEN_IMAGE_RATIO_TARGET),
        ),
        phase_row(
            "uncached_cn",
            format!("uncached, 1 image, {max_conc} clients"),
            &p_multi,
            format!("p99 < {UNCACHED_P99_TARGET_MS} ms"),
            Some(p_multi.p99_ms < UNCACHED_P99_TARGET_MS),
        ),
    ]);
    rows.push(phase_row(
        "remote_one_c1",
        format!("registry at {rtt_ms:.0} ms RTT: 1 image, 1 client"),
        &p_r_one,
        "- (the p99 target is for the local registry)".into(),
        None,
    ));
    rows.push(phase_row(
        "remote_ten_c1",
        format!("registry at {rtt_ms:.0} ms RTT: 10-image Pod, 1 client"),
        &p_r_ten,
        format!("p50 < {TEN_IMAGE_RATIO_TARGET}x 1 image ({r_ratio:.2}x)"),
        Some(r_ratio > 0.0 && r_ratio < TEN_IMAGE_RATIO_TARGET),
    ));
    let ten_per_image = (req3 - req2) / (10 * s.ten_image).max(1) as f64;
    rows.push(Row {
        key: "registry_requests_per_image".into(),
        label: "registry requests per uncached image".into(),
        value: format!("{per_image:.2} (10-image Pods: {ten_per_image:.2})"),
        target: "-".into(),
        result: "-",
        json: json!({"one_image": per_image, "ten_image_pods": ten_per_image}),
    });
    match rss_idle {
        Some(r) => rows.push(Row {
            key: "rss_idle".into(),
            label: "webhook RSS, idle".into(),
            value: format!("{r:.1} MiB"),
            target: format!("< {IDLE_RSS_TARGET_MIB} MiB"),
            result: verdict(r < IDLE_RSS_TARGET_MIB),
            json: json!({"mib": r}),
        }),
        None => rows.push(Row {
            key: "rss_idle".into(),
            label: "webhook RSS, idle".into(),
            value: "not measured (no --webhook-pid)".into(),
            target: format!("< {IDLE_RSS_TARGET_MIB} MiB"),
            result: "-",
            json: Value::Null,
        }),
    }
    if let Some(r) = rss_load {
        rows.push(Row {
            key: "rss_load".into(),
            label: "webhook RSS, peak under cached load".into(),
            value: format!("{r:.1} MiB"),
            target: "-".into(),
            result: "-",
            json: json!({"mib": r}),
        });
    }
    let ok = rows.iter().all(|r| r.result != "ERROR");
    print_table(&rows, s);
    let results: serde_json::Map<String, Value> = rows
        .iter()
        .map(|r| (r.key.clone(), r.json.clone()))
        .collect();
    let line = json!({
        "suite": "webhook",
        "quick": s.quick,
        "webhook": s.url.as_str(),
        "sigil": sigil.as_str(),
        "settings": {
            "warmup_s": s.warmup.as_secs_f64(),
            "duration_s": s.duration.as_secs_f64(),
            "concurrency": s.concurrency,
            "uncached": s.uncached,
            "ten_image": s.ten_image,
            "remote_rtt_ms": s.remote_rtt.as_secs_f64() * 1e3,
            "remote": s.remote,
        },
        "cpus": std::thread::available_parallelism().map_or(1, usize::from),
        "results": results,
    });
    println!("BENCH_JSON_WEBHOOK {line}");
    Ok(ok)
}

fn print_table(rows: &[Row], s: &WebhookSettings) {
    let mut lines: Vec<[String; 4]> = vec![[
        "metric".into(),
        "value".into(),
        "target".into(),
        "result".into(),
    ]];
    for r in rows {
        lines.push([
            r.label.clone(),
            r.value.clone(),
            r.target.clone(),
            r.result.to_owned(),
        ]);
    }
    let mut widths = [0usize; 4];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    println!();
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join(" | ").trim_end());
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("{}", rule.join("-|-"));
        }
    }
    println!(
        "note: HTTPS (rustls) on loopback, HTTP/1.1 keep-alive, load generator on the same {} CPUs; \
         cached phase {:.1} s warm-up + {:.1} s measured; every response checked for \"allowed\":true",
        std::thread::available_parallelism().map_or(1, usize::from),
        s.warmup.as_secs_f64(),
        s.duration.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_bodies_and_policy_are_well_formed() {
        let b = pod_review("u", &["r/a:1".to_owned(), "r/b:2".to_owned()]);
        let v: Value = serde_json::from_slice(&b).unwrap_or_default();
        assert_eq!(v["request"]["uid"], "u");
        assert_eq!(
            v["request"]["object"]["spec"]["containers"][1]["image"],
            "r/b:2"
        );
        let p = policy_yaml(
            &["h/x*".to_owned(), "r/y*".to_owned()],
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        );
        assert!(p.contains("                      AAAA\n"));
        assert!(contains(b"{\"allowed\":true}", b"\"allowed\":true"));
        assert!(!contains(b"{\"allowed\":false}", b"\"allowed\":true"));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
