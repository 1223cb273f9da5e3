//! `sigil copy SRC DST`: images and indexes between registries and OCI layouts (`oci:PATH[:TAG]`).
//!
//! Prints the digest of what was copied on stdout; a progress bar goes to stderr only when it is a
//! terminal (and not with `--no-progress`). With `--referrers` the image's referrers are copied too
//! (recursively, every platform; registry to registry), with `--digest-tags` also cosign-style
//! `sha256-<hex>.sig/.att/.sbom` tags; `--stats` prints `requests: N` on stderr.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sigil_artifacts::{CopyReferrersOptions, Referrers};
use sigil_client::{BlobOutcome, CopyEvent, CopyOptions, ImageRef};

use super::artifacts::explain;
use super::inspect::{client, describe, parse_image, parse_platform};
use crate::cli::CopyArgs;

pub async fn copy(a: CopyArgs) -> anyhow::Result<ExitCode> {
    let src = parse_image(&a.source)?;
    let dst = parse_image(&a.destination)?;
    let platform = parse_platform(a.platform.as_deref())?;
    if a.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    if a.digest_tags && !a.referrers {
        anyhow::bail!("--digest-tags needs --referrers");
    }
    if a.referrers
        && let (ImageRef::Layout(_), _) | (_, ImageRef::Layout(_)) = (&src, &dst)
    {
        anyhow::bail!(
            "--referrers copies between registries only (OCI layouts are not supported yet)"
        );
    }
    let client = client(&a.registry)?;
    let bar = (!a.no_progress && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let progress = bar.clone().map(|bar| {
        Arc::new(move |e: &CopyEvent| match e {
            CopyEvent::Planned { blobs, bytes, .. } => {
                bar.set_length(*bytes);
                bar.set_message(format!("{blobs} blobs"));
            }
            CopyEvent::BlobProgress { bytes, .. } => bar.inc(*bytes),
            CopyEvent::BlobDone { size, outcome, .. } => {
                if *outcome != BlobOutcome::Copied {
                    bar.inc(*size);
                }
            }
            CopyEvent::ManifestPushed { digest, .. } => {
                bar.set_message(format!("manifest {digest}"))
            }
        }) as sigil_client::ProgressFn
    });
    let opts = CopyOptions {
        platform,
        jobs: a.jobs,
        progress,
    };
    let what = format!("copy {src} to {dst}");
    let (result, extra) = if a.referrers {
        let svc = Referrers::new(client.clone());
        let ropts = CopyReferrersOptions {
            copy: opts,
            digest_tags: a.digest_tags,
        };
        match svc.copy_with_referrers(&src, &dst, &ropts).await {
            Ok(r) => {
                let extra = format!(
                    "copied {} referrer(s){}{}",
                    r.referrers.len(),
                    if a.digest_tags {
                        format!(", {} digest tag(s)", r.digest_tags.len())
                    } else {
                        String::new()
                    },
                    if r.fallback_indexes > 0 {
                        format!(", wrote {} fallback index(es)", r.fallback_indexes)
                    } else {
                        String::new()
                    }
                );
                (Ok(r.image), Some(extra))
            }
            Err(e) => (Err(explain(&what, e)), None),
        }
    } else {
        (
            client
                .copy(&src, &dst, &opts)
                .await
                .map_err(|e| describe(&what, e)),
            None,
        )
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if a.stats {
        eprintln!("requests: {}", client.request_count());
    }
    let report = result?;
    if let Some(extra) = extra {
        eprintln!("{extra}");
    }
    if bar.is_some() {
        eprintln!(
            "copied {} manifest(s), {} blob(s) ({} bytes); {} already present, {} mounted",
            report.manifests,
            report.blobs_copied,
            report.bytes_copied,
            report.blobs_skipped,
            report.blobs_mounted
        );
    }
    println!("{}", report.digest);
    Ok(ExitCode::SUCCESS)
}
