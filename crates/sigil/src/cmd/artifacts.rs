//! `sigil attach|discover|pull|delete`: OCI 1.1 artifacts and referrers (the work is in
//! `sigil-artifacts`; this module parses arguments and prints).
//!
//! Output: `attach` prints the referrer's digest (or with `-o json` an object with `digest`,
//! `reference`, `descriptor`, `subject`, `mechanism`); `discover` prints an `oras discover`-style tree,
//! a JSON tree or a table; `pull` prints the paths written; `delete` prints the digests deleted. With
//! `--stats`, `requests: N` goes to stderr (also when the command fails).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use sigil_artifacts::{
    ArtifactError, AttachFile, AttachOptions, DiscoverOptions, Referrers, render_table, render_tree,
};
use sigil_client::{ClientError, RegistryClient};
use sigil_oci::Reference;

use super::inspect::{client, describe, parse_platform};
use crate::cli::{AttachArgs, DeleteArgs, DiscoverArgs, DiscoverOutput, PullArgs, SimpleOutput};

/// Parses a registry reference (OCI layouts are not supported by the artifact commands).
pub(crate) fn registry_ref(s: &str) -> anyhow::Result<Reference> {
    if s.starts_with("oci:") {
        bail!("{s}: OCI layouts are not supported here; use a registry reference");
    }
    Reference::parse(s).map_err(anyhow::Error::new)
}

/// An artifact error as one line, naming `subject` for registry answers.
pub(crate) fn explain(subject: &impl std::fmt::Display, e: ArtifactError) -> anyhow::Error {
    match e {
        ArtifactError::Client(
            c @ (ClientError::Registry { .. }
            | ClientError::NotFound { .. }
            | ClientError::Unauthorized { .. }),
        ) => describe(subject, c),
        // One line: the error's display already names the cause.
        other => anyhow!("{other}"),
    }
}

/// Runs `f`, then prints `requests: N` on stderr when asked (also after a failure).
async fn with_stats<F, T>(stats: bool, client: &RegistryClient, f: F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let r = f.await;
    if stats {
        eprintln!("requests: {}", client.request_count());
    }
    r
}

pub async fn attach(a: AttachArgs) -> anyhow::Result<ExitCode> {
    let subject = registry_ref(&a.reference)?;
    let files = a
        .files
        .iter()
        .map(|f| AttachFile::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = AttachOptions {
        artifact_type: a.artifact_type.clone(),
        files,
        annotations: super::parse_annotations("--annotation", &a.annotations)?,
        platform: parse_platform(a.platform.as_deref())?,
    };
    let client = client(&a.registry)?;
    let svc = Referrers::new(client.clone());
    let report = with_stats(a.stats, &client, async {
        svc.attach(&subject, &opts)
            .await
            .map_err(|e| explain(&format!("attach to {subject}"), e))
    })
    .await?;
    match a.output {
        SimpleOutput::Text => println!("{}", report.digest),
        SimpleOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn discover(a: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let image = registry_ref(&a.reference)?;
    let opts = DiscoverOptions {
        artifact_types: a.artifact_type.clone(),
        depth: a.depth,
        digest_tags: a.digest_tags,
        platform: parse_platform(a.platform.as_deref())?,
    };
    let client = client(&a.registry)?;
    let svc = Referrers::new(client.clone());
    let tree = with_stats(a.stats, &client, async {
        svc.discover(&image, &opts)
            .await
            .map_err(|e| explain(&image, e))
    })
    .await?;
    let out = match a.output {
        DiscoverOutput::Tree => render_tree(&tree),
        DiscoverOutput::Table => render_table(&tree),
        DiscoverOutput::Json => format!("{}\n", serde_json::to_string_pretty(&tree)?),
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

pub async fn pull(a: PullArgs) -> anyhow::Result<ExitCode> {
    let artifact = registry_ref(&a.reference)?;
    let client = client(&a.registry)?;
    let svc = Referrers::new(client.clone());
    let files = with_stats(a.stats, &client, async {
        svc.pull(&artifact, &a.output)
            .await
            .map_err(|e| explain(&artifact, e))
    })
    .await?;
    if files.is_empty() {
        eprintln!("{artifact}: no titled layers; nothing written");
    }
    let mut out = std::io::stdout().lock();
    for f in files {
        writeln!(out, "{}", f.path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(a: DeleteArgs) -> anyhow::Result<ExitCode> {
    let target = registry_ref(&a.reference)?;
    let client = client(&a.registry)?;
    let svc = Referrers::new(client.clone());
    let report = with_stats(a.stats, &client, async {
        svc.delete(&target, a.referrers)
            .await
            .map_err(|e| explain(&format!("delete {target}"), e))
    })
    .await?;
    if report.remaining_referrers > 0 {
        eprintln!(
            "warning: {} referrer(s) of {target} were left in place (use --referrers to delete them)",
            report.remaining_referrers
        );
    }
    let mut out = std::io::stdout().lock();
    for d in &report.deleted {
        writeln!(out, "{d}")?;
    }
    Ok(ExitCode::SUCCESS)
}
