//! `sigil webhook serve`: the Kubernetes admission webhook ([`sigil_webhook`]) over HTTPS with the
//! given serving certificate (reloaded when the files change, e.g. a rotated Secret), and the engine
//! settings shared with `sigil serve`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use sigil_engine::{CacheConfig, EngineConfig, RegistryFailure};
use sigil_sigstore::TrustedRoot;
use sigil_webhook::{Webhook, WebhookConfig};

use super::inspect::client;
use crate::cli::{EngineOptions, RegistryFailureArg, WebhookOptions, WebhookServeArgs};

/// The engine settings of the webhook: registry client, trusted roots, decision cache, deadline,
/// registry failure handling.
pub(crate) fn engine_config(e: &EngineOptions, w: &WebhookOptions) -> anyhow::Result<EngineConfig> {
    if e.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    let mut c = EngineConfig::new(client(&e.registry)?);
    for path in &e.trusted_roots {
        let bytes = std::fs::read(path).map_err(|err| anyhow!("{}: {err}", path.display()))?;
        let root = TrustedRoot::from_json(&bytes)
            .map_err(|err| anyhow!("{}: not a usable trusted root: {err}", path.display()))?;
        c.trusted_roots.push(root);
    }
    c.default_timeout = Duration::from_secs(e.timeout);
    c.cache = CacheConfig {
        enabled: w.cache_size > 0,
        max_entries: w.cache_size,
        ttl: Duration::from_secs(w.cache_ttl),
        failure_ttl: Duration::from_secs(w.cache_failure_ttl),
        tag_ttl: Duration::from_secs(w.tag_ttl),
    };
    c.registry_failure = match w.registry_failure {
        RegistryFailureArg::Policy => RegistryFailure::PolicyDecides,
        RegistryFailureArg::Deny => RegistryFailure::Deny,
        RegistryFailureArg::Allow => RegistryFailure::Allow,
    };
    Ok(c)
}

/// Builds the webhook (loads the policies; an error names the file and field).
pub(crate) fn build(
    policies: Vec<PathBuf>,
    w: &WebhookOptions,
    e: &EngineOptions,
) -> anyhow::Result<Arc<Webhook>> {
    for p in &policies {
        if !p.exists() {
            bail!("--policies {}: no such file or directory", p.display());
        }
    }
    let mut config = WebhookConfig::new(policies);
    config.review_timeout = Duration::from_secs(e.timeout);
    config.deadline_margin = Duration::from_millis(w.deadline_margin_ms);
    if config.deadline_margin >= config.review_timeout {
        bail!(
            "--deadline-margin-ms {} must be less than --timeout {} s",
            w.deadline_margin_ms,
            e.timeout
        );
    }
    if w.max_request_bytes == 0 {
        bail!("--max-request-bytes must be > 0");
    }
    config.max_request_bytes = w.max_request_bytes;
    // Display only: the engine's errors already carry their causes in their message.
    Webhook::new(engine_config(e, w)?, config).map_err(|err| anyhow!("{err}"))
}

/// A one-line description of the policies in force.
pub(crate) fn describe_policies(webhook: &Webhook) -> String {
    let paths: Vec<String> = webhook
        .config()
        .policy_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    match webhook.policy_count() {
        0 => format!(
            "no policies in {} yet: every request is admitted until one is added (reloaded every second)",
            paths.join(", ")
        ),
        n => format!(
            "{n} polic{} from {} (reloaded when the files change)",
            if n == 1 { "y" } else { "ies" },
            paths.join(", ")
        ),
    }
}

/// `sigil webhook serve`.
pub async fn serve(a: WebhookServeArgs) -> anyhow::Result<ExitCode> {
    let cert = sigil_webhook::load_cert(&a.tls_cert, &a.tls_key).map_err(|err| anyhow!("{err}"))?;
    let webhook = build(a.policies.clone(), &a.webhook, &a.engine)?;
    let listener = tokio::net::TcpListener::bind(a.addr)
        .await
        .with_context(|| format!("cannot listen on {}", a.addr))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, policies = webhook.policy_count(), "sigil webhook listening");
    eprintln!(
        "sigil webhook serving https://{local}/mutate and https://{local}/validate; {}",
        describe_policies(&webhook)
    );
    sigil_webhook::serve(&webhook, listener, &cert, super::shutdown_signal()).await?;
    tracing::info!("sigil webhook stopped");
    Ok(ExitCode::SUCCESS)
}
