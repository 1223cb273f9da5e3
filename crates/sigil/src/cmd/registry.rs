//! `sigil registry serve|gc`: run the embedded registry, collect garbage in its data directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sigil_registry::{Htpasswd, RegistryConfig};
use sigil_storage::fs::FsStorage;
use sigil_storage::gc::{GcOptions, collect_garbage};

use crate::cli::{GcArgs, OrphanReferrers, ServeArgs};

/// The default data directory: `$SIGIL_HOME/registry`, else `$XDG_DATA_HOME/sigil/registry`, else
/// `~/.local/share/sigil/registry`.
pub fn default_root() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("SIGIL_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home).join("registry"));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("sigil/registry"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("cannot find a data directory: set --root, SIGIL_HOME, XDG_DATA_HOME or HOME")?;
    Ok(PathBuf::from(home).join(".local/share/sigil/registry"))
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let root = match a.root {
        Some(r) => r,
        None => default_root()?,
    };
    let storage = FsStorage::open(&root)
        .with_context(|| format!("cannot open the registry data directory {}", root.display()))?;
    let auth = match &a.htpasswd {
        Some(p) => Some(Htpasswd::load(p)?),
        None => None,
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(sigil_registry::tls_config(c, k)?),
        _ => None,
    };
    let config = RegistryConfig {
        referrers_api: !a.no_referrers_api,
        max_manifest_bytes: a.max_manifest_bytes,
        referrers_page_size: a.referrers_page_size,
        realm: a.realm.clone(),
    };
    let app = sigil_registry::router(Arc::new(storage), config, auth);
    let listener = tokio::net::TcpListener::bind(a.addr)
        .await
        .with_context(|| format!("cannot listen on {}", a.addr))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        root = %root.display(),
        tls = a.tls_cert.is_some(),
        auth = a.htpasswd.is_some(),
        referrers_api = !a.no_referrers_api,
        "sigil registry listening"
    );
    let scheme = if a.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!(
        "sigil registry serving {scheme}://{local} (data: {})",
        root.display()
    );
    sigil_registry::serve(listener, app, tls, super::shutdown_signal()).await?;
    tracing::info!("sigil registry stopped");
    Ok(ExitCode::SUCCESS)
}

pub async fn gc(a: GcArgs) -> anyhow::Result<ExitCode> {
    let root = match a.root {
        Some(r) => r,
        None => default_root()?,
    };
    if !root.exists() {
        anyhow::bail!("registry data directory {} does not exist", root.display());
    }
    let storage = FsStorage::open(&root)
        .with_context(|| format!("cannot open the registry data directory {}", root.display()))?;
    let opts = GcOptions {
        dry_run: a.dry_run,
        delete_orphan_referrers: a.orphan_referrers == OrphanReferrers::Delete,
        grace_secs: a.grace_secs,
    };
    let report = collect_garbage(&storage, &opts).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}
