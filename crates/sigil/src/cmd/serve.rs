//! `sigil serve`: the embedded registry (the `sigil registry serve` code path) and the admission
//! webhook in one process, with everything defaulted under one home directory:
//!
//! - `<home>/registry`: registry data;
//! - `<home>/policies`: Kyverno policy files (created empty: then every request is admitted, with a
//!   note; files added later are picked up within a second);
//! - `<home>/tls/`: a local CA and a serving certificate for the webhook, generated once (see
//!   [`sigil_webhook::tls`]).
//!
//! On start it prints the registry address, the webhook URLs and the base64 `caBundle` to put into a
//! `MutatingWebhookConfiguration` / `ValidatingWebhookConfiguration`. Ctrl-c or SIGTERM stops both.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::shutdown_signal;
use super::webhook::{build, describe_policies};
use crate::cli::{ServeAllArgs, ServeArgs};

/// `--home`, else `$SIGIL_HOME` (via clap), else `$XDG_DATA_HOME/sigil`, else `~/.local/share/sigil`.
fn home_dir(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(h) = arg.filter(|h| !h.as_os_str().is_empty()) {
        return Ok(h);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("sigil"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("cannot find a home directory: set --home, SIGIL_HOME, XDG_DATA_HOME or HOME")?;
    Ok(PathBuf::from(home).join(".local/share/sigil"))
}

/// Names of the generated serving certificate: loopback names, the webhook's address when it is a
/// specific one, and `--tls-san`.
fn certificate_names(a: &ServeAllArgs) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let ip = a.webhook_addr.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    for n in &a.tls_sans {
        let n = n.trim().to_owned();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// `sigil serve`.
pub async fn serve(a: ServeAllArgs) -> anyhow::Result<ExitCode> {
    let home = home_dir(a.home.clone())?;
    let registry_root = home.join("registry");
    let policies = if a.policies.is_empty() {
        let dir = home.join("policies");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the policies directory {}", dir.display()))?;
        vec![dir]
    } else {
        a.policies.clone()
    };
    let cert = sigil_webhook::tls::ensure_serving_cert(&home.join("tls"), &certificate_names(&a))
        .context("preparing the webhook serving certificate")?;
    let serving = sigil_webhook::load_cert(&cert.cert_path, &cert.key_path)
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let webhook = build(policies, &a.webhook, &a.engine)?;
    let listener = tokio::net::TcpListener::bind(a.webhook_addr)
        .await
        .with_context(|| format!("cannot listen on {} (webhook)", a.webhook_addr))?;
    let local = listener.local_addr()?;
    let base = format!("https://{}:{}", url_host(local.ip()), local.port());

    let registry = ServeArgs {
        addr: a.registry_addr,
        root: Some(registry_root.clone()),
        no_referrers_api: false,
        htpasswd: None,
        realm: "sigil".into(),
        tls_cert: None,
        tls_key: None,
        max_manifest_bytes: 4 * 1024 * 1024,
        referrers_page_size: 1000,
    };
    println!("sigil serve (home {})", home.display());
    println!(
        "  registry:  http://{}  (data: {})",
        a.registry_addr,
        registry_root.display()
    );
    println!("  webhook:   {base}/mutate  {base}/validate");
    println!("  policies:  {}", describe_policies(&webhook));
    println!(
        "  TLS:       {} (CA {}{})",
        cert.cert_path.display(),
        cert.ca_path.display(),
        if cert.issued { ", newly issued" } else { "" }
    );
    println!("  caBundle:  {}", cert.ca_bundle());
    println!(
        "  try:       curl --cacert {} -H 'Content-Type: application/json' --data @review.json {base}/mutate",
        cert.ca_path.display()
    );

    let webhook_run = async {
        sigil_webhook::serve(&webhook, listener, &serving, shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    };
    let registry_run = async {
        super::registry::serve(registry)
            .await
            .context("registry")
            .map(|_| ())
    };
    tokio::try_join!(registry_run, webhook_run)?;
    Ok(ExitCode::SUCCESS)
}
