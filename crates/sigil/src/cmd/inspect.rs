//! `sigil manifest|config|blob|digest|tags`: read-only inspection, in the style of crane.
//!
//! Output is raw: `manifest` and `config` print the bytes exactly as stored (no added newline), `blob`
//! streams the verified blob, `digest` prints one digest, `tags` one tag per line. REF may be an image
//! reference or `oci:PATH[:TAG]`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use sigil_client::{ClientError, ClientOptions, ImageRef, OciLayout, RegistryClient};
use sigil_oci::{Platform, Reference};
use tokio::io::AsyncWriteExt as _;

use crate::cli::{BlobArgs, InspectArgs, RegistryOptions, TagsArgs};

/// Builds a registry client from the shared command-line options.
pub(crate) fn client(opts: &RegistryOptions) -> anyhow::Result<RegistryClient> {
    let client = RegistryClient::new(ClientOptions {
        insecure: opts.insecure,
        auth_file: opts.authfile.clone(),
        ca_certs: opts.ca_certs.clone(),
        ..ClientOptions::default()
    })?;
    Ok(client)
}

/// Turns a client error about `subject` into one crisp line: `REF: manifest unknown (404
/// MANIFEST_UNKNOWN)`.
pub(crate) fn describe(subject: &impl std::fmt::Display, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Registry { .. } | ClientError::NotFound { .. } => {
            anyhow!("{subject}: {}", e.summary())
        }
        ClientError::Unauthorized {
            ref registry,
            status,
            ..
        } => {
            let hint = if status == 401 {
                " (log in, or check the auth file and its credential helpers: --authfile, $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json)"
            } else {
                ""
            };
            anyhow!(
                "{subject}: access denied by {registry}: {}{hint}",
                e.summary()
            )
        }
        // The error's display already carries its causes; one line, no repeated chain.
        other => anyhow!("{subject}: {other}"),
    }
}

pub(crate) fn parse_image(s: &str) -> anyhow::Result<ImageRef> {
    ImageRef::parse(s).map_err(anyhow::Error::new)
}

pub(crate) fn parse_platform(s: Option<&str>) -> anyhow::Result<Option<Platform>> {
    s.map(|p| Platform::parse(p).with_context(|| format!("--platform {p:?}")))
        .transpose()
}

/// `linux/<host architecture>` in GOARCH spelling.
pub(crate) fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        a => a,
    };
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        ..Platform::default()
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

pub async fn manifest(a: InspectArgs) -> anyhow::Result<ExitCode> {
    let image = parse_image(&a.reference)?;
    let platform = parse_platform(a.platform.as_deref())?;
    let client = client(&a.registry)?;
    let m = client
        .fetch_manifest_for_platform(&image, platform.as_ref())
        .await
        .map_err(|e| describe(&image, e))?;
    write_stdout(&m.bytes)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn config(a: InspectArgs) -> anyhow::Result<ExitCode> {
    let image = parse_image(&a.reference)?;
    let client = client(&a.registry)?;
    // Through an index, the host's platform unless --platform (as crane); a single image manifest is
    // used as it is.
    let platform = parse_platform(a.platform.as_deref())?.unwrap_or_else(host_platform);
    let (_, bytes) = client
        .fetch_config(&image, Some(&platform))
        .await
        .map_err(|e| describe(&image, e))?;
    write_stdout(&bytes)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn blob(a: BlobArgs) -> anyhow::Result<ExitCode> {
    let image = parse_image(&a.reference)?;
    let Some(digest) = image.digest() else {
        bail!(
            "{}: name the blob by digest (REPO@sha256:... or oci:PATH@sha256:...)",
            a.reference
        );
    };
    let client = client(&a.registry)?;
    let mut stream = client
        .fetch_blob(&image, &digest, None)
        .await
        .map_err(|e| describe(&image, e))?;
    let mut out = tokio::io::stdout();
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk.map_err(|e| describe(&image, e))?;
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn digest(a: InspectArgs) -> anyhow::Result<ExitCode> {
    let image = parse_image(&a.reference)?;
    let platform = parse_platform(a.platform.as_deref())?;
    let client = client(&a.registry)?;
    let digest = match (&image, &platform) {
        (_, Some(p)) => {
            client
                .fetch_manifest_for_platform(&image, Some(p))
                .await
                .map_err(|e| describe(&image, e))?
                .digest
        }
        (ImageRef::Registry(r), None) => match client.head_manifest(r).await {
            Ok(Some(d)) => d.digest,
            Ok(None) => {
                return Err(describe(
                    &image,
                    ClientError::NotFound {
                        registry: r.registry.clone(),
                        code: Some("MANIFEST_UNKNOWN".into()),
                        message: "manifest unknown".into(),
                    },
                ));
            }
            Err(e) => return Err(describe(&image, e)),
        },
        (ImageRef::Layout(l), None) => {
            let layout = OciLayout::open(&l.path).map_err(|e| describe(&image, e))?;
            layout
                .resolve(l.reference.as_deref())
                .await
                .map_err(|e| describe(&image, e))?
                .digest
        }
    };
    write_stdout(format!("{digest}\n").as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

pub async fn tags(a: TagsArgs) -> anyhow::Result<ExitCode> {
    let repo = Reference::parse(&a.repository)?;
    let client = client(&a.registry)?;
    let name = repo.repository_name();
    let tags = client
        .list_tags(&repo, None)
        .await
        .map_err(|e| describe(&name, e))?;
    let mut s = String::new();
    for t in tags {
        s.push_str(&t);
        s.push('\n');
    }
    write_stdout(s.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
