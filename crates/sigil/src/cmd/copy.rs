//! `sigil copy SRC DST`: images and indexes between registries and OCI layouts (`oci:PATH[:TAG]`).
//!
//! Prints the digest of what was copied on stdout; a progress bar goes to stderr only when it is a
//! terminal (and not with `--no-progress`).

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sigil_client::{BlobOutcome, CopyEvent, CopyOptions};

use super::inspect::{client, describe, parse_image, parse_platform};
use crate::cli::CopyArgs;

pub async fn copy(a: CopyArgs) -> anyhow::Result<ExitCode> {
    let src = parse_image(&a.source)?;
    let dst = parse_image(&a.destination)?;
    let platform = parse_platform(a.platform.as_deref())?;
    if a.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
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
    let result = client.copy(&src, &dst, &opts).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result.map_err(|e| describe(&format!("copy {src} to {dst}"), e))?;
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
