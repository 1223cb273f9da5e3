//! `sigil-bench`: compares sigil's embedded OCI registry with a peer registry (Debian's docker-registry
//! 2.8.2 when run through `scripts/bench.sh`) on the same machine, in the same run.
//!
//! Measurements, each on both registries, alternating which one goes first from phase to phase:
//!
//! 1. **manifest GET/s**: a small image (config + 1 layer + manifest) is pushed, then `GET
//!    /v2/<repo>/manifests/<digest>` and `.../manifests/<tag>` are hammered by 16 and 64 keep-alive
//!    clients (1 s warm-up, then 5 s measured). Each response must be 200 with the exact manifest
//!    length. Reports requests/s and p50/p99 latency.
//! 2. **blob push**: a 1 × 50 MiB and a 50 × 1 MiB image (layers 4 in flight, then config and
//!    manifest), monolithic POST + `PUT ?digest=`, fresh random bytes for every registry and round.
//! 3. **blob pull**: GET of every blob of the image just pushed (5 times over, to get a measurable
//!    interval), each body checked against its SHA-256.
//!
//! The blob phases run 5 rounds and report the median. Output: a table (`sigil / peer` ratios,
//! targets manifest GET/s >= 3x and blob throughput >= 1x marked PASS/FAIL) and a final
//! `BENCH_JSON {...}` line. The exit status is 0 whether or not targets are met; it is 1 when a
//! request failed or a registry could not be benchmarked.
//!
//! `--suite verify` runs the signature-verification benchmark instead (verifications/s and registry
//! requests per verification; only `--sigil` is needed, see `verify.rs`), `--suite all` runs the
//! registry suite, then the verify suite. The default `--suite registry` is the comparison above.
//! `--suite notary` benchmarks Notary signature verification (see `notary.rs`; needs `--sigil`).
//! `--suite webhook` benchmarks `sigil webhook serve` (AdmissionReviews/s, cached and uncached, RSS;
//! see `webhook.rs`; needs `--sigil` and the `--webhook*` options).

mod image;
mod load;
mod notary;
mod registry;
mod report;
mod verify;
mod webhook;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use clap::{Parser, ValueEnum};
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use reqwest::Url;
use serde_json::json;

use crate::image::Image;
use crate::load::LoadSpec;
use crate::registry::{OCI_MANIFEST, Registry, http_client};
use crate::report::{Metric, RunInfo, Sample, Side};

const MIB: usize = 1024 * 1024;

/// Which benchmark(s) to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// sigil's registry against the peer registry (needs --sigil and --peer).
    Registry,
    /// Signature verifications/s and registry requests per verification (needs --sigil only).
    Verify,
    /// The registry suite, then the verify suite.
    All,
    /// AdmissionReviews/s of `sigil webhook serve` (needs --sigil and --webhook*).
    Webhook,
    /// Notary signature verifications/s (JWS, COSE) and registry requests per verification (needs --sigil).
    Notary,
}

/// Benchmark sigil's registry against a peer registry (both must already be serving).
#[derive(Debug, Parser)]
#[command(name = "sigil-bench", version, about)]
struct Args {
    /// Base URL of sigil's registry, e.g. http://127.0.0.1:5000.
    #[arg(long)]
    sigil: Url,
    /// Base URL of the peer registry (docker-registry), e.g. http://127.0.0.1:5001 (registry suite).
    #[arg(long)]
    peer: Option<Url>,
    /// Which benchmark to run.
    #[arg(long, value_enum, default_value_t = Suite::Registry)]
    suite: Suite,
    /// Smoke run: 1 s per load phase, 1 × 8 MiB and 8 × 1 MiB images, one round.
    #[arg(long)]
    quick: bool,
    /// Name of the first registry in the report.
    #[arg(long, default_value = "sigil")]
    sigil_label: String,
    /// Name of the peer registry in the report.
    #[arg(long, default_value = "docker-registry")]
    peer_label: String,
    /// Measured seconds per manifest-GET phase [default: 5, quick: 1].
    #[arg(long)]
    duration: Option<f64>,
    /// Warm-up seconds before each manifest-GET phase [default: 1, quick: 0.3].
    #[arg(long)]
    warmup: Option<f64>,
    /// Concurrent keep-alive clients for manifest GETs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    concurrency: Vec<usize>,
    /// Rounds of the blob push/pull phases (median reported) [default: 5, quick: 1].
    #[arg(long)]
    rounds: Option<usize>,
    /// How often each pushed image is pulled in one timed pull measurement (a single pull of a
    /// page-cache-hot 50 MiB image takes only ~40 ms, too short to time reliably) [default: 5, quick: 1].
    #[arg(long)]
    pull_reps: Option<usize>,
    /// Blobs in flight when pushing or pulling an image.
    #[arg(long, default_value_t = 4)]
    blob_concurrency: usize,
    /// Size of the single-layer image in MiB [default: 50, quick: 8].
    #[arg(long)]
    big_mib: Option<usize>,
    /// Number of 1 MiB layers of the many-layer image [default: 50, quick: 8].
    #[arg(long)]
    small_layers: Option<usize>,
    /// Verify suite: measured seconds per phase [default: 3, quick: 1].
    #[arg(long)]
    verify_duration: Option<f64>,
    /// Verify suite: warm-up seconds per phase [default: 1, quick: 0.3].
    #[arg(long)]
    verify_warmup: Option<f64>,
    /// Verify suite: concurrent verifiers of the concurrent registry phases.
    #[arg(long, default_value_t = 8)]
    verify_concurrency: usize,
    /// Webhook suite: the webhook's base URL, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    webhook: Option<Url>,
    /// Webhook suite: PEM CA of the webhook's serving certificate.
    #[arg(long)]
    webhook_ca: Option<std::path::PathBuf>,
    /// Webhook suite: the webhook's policies directory (the benchmark's policy is written there).
    #[arg(long)]
    webhook_policies: Option<std::path::PathBuf>,
    /// Webhook suite: the webhook's pid (for RSS).
    #[arg(long)]
    webhook_pid: Option<u32>,
    /// Webhook suite: measured seconds of the cached phase [default: 5, quick: 1].
    #[arg(long)]
    webhook_duration: Option<f64>,
    /// Webhook suite: client counts of the cached phase, comma-separated (the largest also drives
    /// the concurrent uncached phase).
    #[arg(long, value_delimiter = ',', default_value = "2,4,16")]
    webhook_concurrency: Vec<usize>,
    /// Webhook suite: reviews (new images) per uncached 1-image phase [default: 300, quick: 30].
    #[arg(long)]
    webhook_uncached: Option<usize>,
    /// Webhook suite: 10-image Pods reviewed [default: 60, quick: 10].
    #[arg(long)]
    webhook_ten: Option<usize>,
    /// Webhook suite: round-trip time of the simulated remote registry, in ms.
    #[arg(long, default_value_t = 4.0)]
    webhook_remote_rtt_ms: f64,
    /// Webhook suite: reviews of each kind against the simulated remote registry [default: 40,
    /// quick: 10].
    #[arg(long)]
    webhook_remote: Option<usize>,
}

impl Args {
    fn verify_settings(&self) -> Result<verify::VerifySettings> {
        let secs = |v: Option<f64>, full: f64, quick: f64, what: &str| -> Result<Duration> {
            let s = v.unwrap_or(if self.quick { quick } else { full });
            Duration::try_from_secs_f64(s).with_context(|| format!("bad --{what} {s}"))
        };
        Ok(verify::VerifySettings {
            warmup: secs(self.verify_warmup, 1.0, 0.3, "verify-warmup")?,
            duration: secs(self.verify_duration, 3.0, 1.0, "verify-duration")?,
            concurrency: self.verify_concurrency,
            quick: self.quick,
        })
    }
}

impl Args {
    fn webhook_settings(&self) -> Result<webhook::WebhookSettings> {
        let duration = self
            .webhook_duration
            .unwrap_or(if self.quick { 1.0 } else { 5.0 });
        Ok(webhook::WebhookSettings {
            url: self.webhook.clone().context("--webhook is required")?,
            ca: self
                .webhook_ca
                .clone()
                .context("--webhook-ca is required")?,
            policies: self
                .webhook_policies
                .clone()
                .context("--webhook-policies is required")?,
            pid: self.webhook_pid,
            warmup: Duration::from_secs_f64(if self.quick { 0.3 } else { 1.0 }),
            duration: Duration::try_from_secs_f64(duration)
                .with_context(|| format!("bad --webhook-duration {duration}"))?,
            concurrency: self.webhook_concurrency.clone(),
            uncached: self
                .webhook_uncached
                .unwrap_or(if self.quick { 30 } else { 300 }),
            ten_image: self.webhook_ten.unwrap_or(if self.quick { 10 } else { 60 }),
            remote_rtt: Duration::try_from_secs_f64(self.webhook_remote_rtt_ms / 1e3)
                .with_context(|| {
                    format!("bad --webhook-remote-rtt-ms {}", self.webhook_remote_rtt_ms)
                })?,
            remote: self
                .webhook_remote
                .unwrap_or(if self.quick { 10 } else { 40 }),
            quick: self.quick,
        })
    }
}

/// Effective settings after applying `--quick` and overrides.
#[derive(Clone, Debug)]
struct Settings {
    duration: Duration,
    warmup: Duration,
    concurrency: Vec<usize>,
    rounds: usize,
    pull_reps: usize,
    blob_concurrency: usize,
    big_mib: usize,
    small_layers: usize,
}

impl Settings {
    fn from_args(a: &Args) -> Result<Self> {
        let secs = |v: Option<f64>, full: f64, quick: f64, what: &str| -> Result<Duration> {
            let s = v.unwrap_or(if a.quick { quick } else { full });
            Duration::try_from_secs_f64(s).with_context(|| format!("bad --{what} {s}"))
        };
        let s = Self {
            duration: secs(a.duration, 5.0, 1.0, "duration")?,
            warmup: secs(a.warmup, 1.0, 0.3, "warmup")?,
            concurrency: a.concurrency.clone(),
            rounds: a.rounds.unwrap_or(if a.quick { 1 } else { 5 }),
            pull_reps: a.pull_reps.unwrap_or(if a.quick { 1 } else { 5 }),
            blob_concurrency: a.blob_concurrency,
            big_mib: a.big_mib.unwrap_or(if a.quick { 8 } else { 50 }),
            small_layers: a.small_layers.unwrap_or(if a.quick { 8 } else { 50 }),
        };
        ensure!(!s.duration.is_zero(), "--duration must be > 0");
        ensure!(
            !s.concurrency.is_empty() && s.concurrency.iter().all(|&c| c > 0),
            "--concurrency values must be > 0"
        );
        ensure!(s.rounds > 0, "--rounds must be > 0");
        ensure!(s.pull_reps > 0, "--pull-reps must be > 0");
        ensure!(s.blob_concurrency > 0, "--blob-concurrency must be > 0");
        ensure!(
            s.big_mib > 0 && s.small_layers > 0,
            "image sizes must be > 0"
        );
        Ok(s)
    }
}

/// One registry under measurement.
struct Target {
    side: Side,
    label: String,
    url: Url,
    registry: Registry,
}

/// Both registries, in the order used for phase number `phase` (alternating).
fn order(targets: &[Target; 2], phase: usize) -> [&Target; 2] {
    if phase.is_multiple_of(2) {
        [&targets[0], &targets[1]]
    } else {
        [&targets[1], &targets[0]]
    }
}

/// A seed that differs per process run, registry, round and image (splitmix64 of the inputs).
fn seed(base: u64, side: Side, round: usize, kind: u64) -> u64 {
    let mut z = base
        ^ (side.index() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (round as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)
        ^ kind.wrapping_mul(0x94d0_49bb_1331_11eb);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed that differs per process run (time and pid).
fn time_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
}

/// `(busy, total)` jiffies of all CPUs from `/proc/stat` (Linux only).
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Percentage of CPU time used by other processes during a one-second sample before the run.
async fn cpu_busy_percent() -> Option<f64> {
    let (b0, t0) = cpu_jiffies()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (b1, t1) = cpu_jiffies()?;
    (t1 > t0).then(|| 100.0 * (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64)
}

fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Pushes all blobs (`conc` in flight), then the manifest by `tag`.
async fn push_image(reg: &Registry, repo: &str, tag: &str, img: &Image, conc: usize) -> Result<()> {
    stream::iter(img.blobs().map(Ok))
        .try_for_each_concurrent(conc, |b| reg.push_blob(repo, &b.digest, b.data.clone()))
        .await?;
    reg.push_manifest(repo, tag, OCI_MANIFEST, img.manifest.clone())
        .await
}

/// GETs every blob (`conc` in flight), verifying each; returns the bytes read.
async fn pull_image(reg: &Registry, repo: &str, img: &Image, conc: usize) -> Result<u64> {
    stream::iter(img.blobs())
        .map(|b| reg.pull_blob_verified(repo, &b.digest, b.size()))
        .buffer_unordered(conc)
        .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
        .await
}

/// [`pull_image`] `reps` times in a row; returns the total bytes read.
async fn pull_image_reps(
    reg: &Registry,
    repo: &str,
    img: &Image,
    conc: usize,
    reps: usize,
) -> Result<u64> {
    let mut total = 0;
    for _ in 0..reps {
        total += pull_image(reg, repo, img, conc).await?;
    }
    Ok(total)
}

/// The manifest image pushed to each registry before the GET phases.
struct ManifestFixture {
    repo: &'static str,
    tag: &'static str,
    image: Image,
}

/// Pushes the small image and checks it reads back by digest and by tag.
async fn manifest_fixture(t: &Target, seed: u64, conc: usize) -> Result<ManifestFixture> {
    let f = ManifestFixture {
        repo: "bench/manifest",
        tag: "latest",
        image: Image::generate(seed, 1, 4096)?,
    };
    push_image(&t.registry, f.repo, f.tag, &f.image, conc).await?;
    let m = &f.image.manifest;
    t.registry
        .get_manifest_exact(f.repo, &f.image.manifest_digest, m)
        .await?;
    t.registry.get_manifest_exact(f.repo, f.tag, m).await?;
    Ok(f)
}

async fn run(args: &Args) -> Result<bool> {
    let settings = Settings::from_args(args)?;
    let peer = args
        .peer
        .clone()
        .context("--peer is required for the registry suite")?;
    let http = http_client(4 * settings.blob_concurrency)?;
    let targets = [
        Target {
            side: Side::Sigil,
            label: args.sigil_label.clone(),
            registry: Registry::new(http.clone(), &args.sigil),
            url: args.sigil.clone(),
        },
        Target {
            side: Side::Peer,
            label: args.peer_label.clone(),
            registry: Registry::new(http, &peer),
            url: peer.clone(),
        },
    ];
    for t in &targets {
        t.registry
            .ping()
            .await
            .with_context(|| format!("{} at {} is not answering /v2/", t.label, t.url))?;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let loadavg_start = loadavg();
    let busy_before = cpu_busy_percent().await;
    if let Some(busy) = busy_before
        && busy > 20.0
    {
        eprintln!(
            "warning: other processes used {busy:.0}% of the CPUs just before the run: figures will be noisy"
        );
    }
    let base_seed = time_seed();

    let mut metrics: Vec<Metric> = Vec::new();
    let mut phase = 0usize;

    // 1. Manifest GETs.
    let mut fixtures: [Option<ManifestFixture>; 2] = [None, None];
    let mut fixture_errors: [Option<String>; 2] = [None, None];
    for t in order(&targets, phase) {
        match manifest_fixture(t, seed(base_seed, t.side, 0, 0), settings.blob_concurrency).await {
            Ok(f) => fixtures[t.side.index()] = Some(f),
            Err(e) => {
                eprintln!("{}: pushing the manifest fixture failed: {e:#}", t.label);
                fixture_errors[t.side.index()] = Some(format!("fixture push: {e:#}"));
            }
        }
    }
    phase += 1;
    for by_tag in [false, true] {
        for &conc in &settings.concurrency {
            let by = if by_tag { "tag" } else { "digest" };
            let mut m = Metric::new(
                format!("manifest_get_{by}_c{conc}"),
                format!("manifest GET by {by}, {conc} conns"),
                "req/s",
                Some(3.0),
            );
            for t in order(&targets, phase) {
                let i = t.side.index();
                let Some(f) = &fixtures[i] else {
                    let msg = fixture_errors[i].clone().unwrap_or_default();
                    m.side(t.side).error(1, msg);
                    continue;
                };
                let reference = if by_tag {
                    f.tag
                } else {
                    f.image.manifest_digest.as_str()
                };
                let spec = LoadSpec {
                    url: t
                        .registry
                        .url(&format!("/v2/{}/manifests/{reference}", f.repo))?,
                    expected_len: f.image.manifest.len(),
                    concurrency: conc,
                    warmup: settings.warmup,
                    duration: settings.duration,
                };
                let r = load::run(&spec).await?;
                eprintln!(
                    "{:<40} {:>16}: {:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
                    m.label, t.label, r.rate, r.p50_ms, r.p99_ms, r.requests, r.errors
                );
                let side = m.side(t.side);
                if r.errors > 0 {
                    side.error(r.errors, r.first_error.unwrap_or_default());
                }
                side.samples.push(Sample {
                    value: r.rate,
                    seconds: r.seconds,
                    p50_ms: Some(r.p50_ms),
                    p99_ms: Some(r.p99_ms),
                    requests: Some(r.requests),
                });
            }
            metrics.push(m);
            phase += 1;
        }
    }

    // 2 + 3. Blob push and pull.
    let kinds = [
        (
            1usize,
            settings.big_mib * MIB,
            format!("1x{}MiB", settings.big_mib),
        ),
        (
            settings.small_layers,
            MIB,
            format!("{}x1MiB", settings.small_layers),
        ),
    ];
    let mut push_metrics: Vec<Metric> = kinds
        .iter()
        .map(|(_, _, name)| {
            Metric::new(
                format!("blob_push_{name}"),
                format!("blob push {name} (POST+PUT)"),
                "MB/s",
                Some(1.0),
            )
        })
        .collect();
    let mut pull_metrics: Vec<Metric> = kinds
        .iter()
        .map(|(_, _, name)| {
            Metric::new(
                format!("blob_pull_{name}"),
                format!("blob pull {name} (sha256-verified)"),
                "MB/s",
                Some(1.0),
            )
        })
        .collect();
    for round in 0..settings.rounds {
        for (k, (count, size, name)) in kinds.iter().enumerate() {
            for t in order(&targets, phase) {
                let img = Image::generate(
                    seed(base_seed, t.side, round + 1, k as u64 + 1),
                    *count,
                    *size,
                )?;
                let repo = format!("bench/blobs-{name}-r{round}").to_lowercase();
                let bytes = img.blob_bytes() as f64;
                let started = Instant::now();
                let pushed = push_image(
                    &t.registry,
                    &repo,
                    "latest",
                    &img,
                    settings.blob_concurrency,
                )
                .await;
                let secs = started.elapsed().as_secs_f64();
                if let Err(e) = pushed {
                    eprintln!("{}: push {name} round {round} failed: {e:#}", t.label);
                    push_metrics[k].side(t.side).error(1, format!("{e:#}"));
                    pull_metrics[k]
                        .side(t.side)
                        .error(1, "not pulled: the push failed".into());
                    continue;
                }
                push_metrics[k].side(t.side).samples.push(Sample {
                    value: bytes / secs / 1e6,
                    seconds: secs,
                    ..Sample::default()
                });
                let checked = t
                    .registry
                    .get_manifest_exact(&repo, "latest", &img.manifest)
                    .await;
                let started = Instant::now();
                let pulled = match checked {
                    Ok(()) => {
                        let (conc, reps) = (settings.blob_concurrency, settings.pull_reps);
                        pull_image_reps(&t.registry, &repo, &img, conc, reps).await
                    }
                    Err(e) => Err(e),
                };
                let psecs = started.elapsed().as_secs_f64();
                match pulled {
                    Ok(n) => {
                        pull_metrics[k].side(t.side).samples.push(Sample {
                            value: n as f64 / psecs / 1e6,
                            seconds: psecs,
                            ..Sample::default()
                        });
                        eprintln!(
                            "blob {name:<10} round {round} {:>16}: push {:>7.1} MB/s ({secs:.3} s)  pull {:>7.1} MB/s ({psecs:.3} s)",
                            t.label,
                            bytes / secs / 1e6,
                            n as f64 / psecs / 1e6
                        );
                    }
                    Err(e) => {
                        eprintln!("{}: pull {name} round {round} failed: {e:#}", t.label);
                        pull_metrics[k].side(t.side).error(1, format!("{e:#}"));
                    }
                }
            }
            phase += 1;
        }
    }
    metrics.extend(push_metrics);
    metrics.extend(pull_metrics);

    let info = RunInfo {
        sigil: (targets[0].label.clone(), targets[0].url.to_string()),
        peer: (targets[1].label.clone(), targets[1].url.to_string()),
        quick: args.quick,
        settings: json!({
            "duration_s": settings.duration.as_secs_f64(),
            "warmup_s": settings.warmup.as_secs_f64(),
            "concurrency": settings.concurrency,
            "rounds": settings.rounds,
            "pull_reps": settings.pull_reps,
            "blob_concurrency": settings.blob_concurrency,
            "big_mib": settings.big_mib,
            "small_layers": settings.small_layers,
        }),
        cpus,
        cpu_busy_before: busy_before,
        loadavg_start,
        loadavg_end: loadavg(),
    };
    println!();
    print!("{}", report::table(&info, &metrics));
    println!("BENCH_JSON {}", report::json_line(&info, &metrics));
    Ok(metrics
        .iter()
        .all(|m| m.sides.iter().all(|s| s.errors == 0)))
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let result = match args.suite {
        Suite::Registry => run(&args).await,
        Suite::Verify => match args.verify_settings() {
            Ok(s) => verify::run(&s, Some(&args.sigil), time_seed()).await,
            Err(e) => Err(e),
        },
        Suite::Notary => match args.verify_settings() {
            Ok(s) => notary::run(&s, &args.sigil, time_seed()).await,
            Err(e) => Err(e),
        },
        Suite::Webhook => match args.webhook_settings() {
            Ok(s) => webhook::run(&s, &args.sigil, time_seed()).await,
            Err(e) => Err(e),
        },
        Suite::All => match (args.verify_settings(), run(&args).await) {
            (Ok(s), Ok(registry_ok)) => verify::run(&s, Some(&args.sigil), time_seed())
                .await
                .map(|ok| ok && registry_ok),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("sigil-bench: some requests failed; see the errors above");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sigil-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
