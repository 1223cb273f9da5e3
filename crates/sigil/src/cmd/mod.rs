//! Subcommand implementations.

mod artifacts;
mod bundle;
mod copy;
mod cosign;
mod inspect;
mod notary;
mod policy;
mod registry;
mod serve;
mod webhook;

use std::process::ExitCode;

use crate::cli::{Cli, Command, NotaryCommand, PolicyCommand, RegistryCommand, WebhookCommand};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Registry(RegistryCommand::Serve(a)) => registry::serve(a).await,
        Command::Registry(RegistryCommand::Gc(a)) => registry::gc(a).await,
        Command::Manifest(a) => inspect::manifest(a).await,
        Command::Config(a) => inspect::config(a).await,
        Command::Blob(a) => inspect::blob(a).await,
        Command::Digest(a) => inspect::digest(a).await,
        Command::Tags(a) => inspect::tags(a).await,
        Command::Copy(a) => copy::copy(a).await,
        Command::Attach(a) => artifacts::attach(a).await,
        Command::Discover(a) => artifacts::discover(a).await,
        Command::Pull(a) => artifacts::pull(a).await,
        Command::Delete(a) => artifacts::delete(a).await,
        Command::GenerateKeyPair(a) => cosign::generate_key_pair(a).await,
        Command::Sign(a) => cosign::sign(a).await,
        Command::Attest(a) => cosign::attest(a).await,
        Command::Verify(a) => cosign::verify(a).await,
        Command::VerifyAttestation(a) => cosign::verify_attestation(a).await,
        Command::VerifyBlob(a) => bundle::verify_blob(a).await,
        Command::VerifyBlobAttestation(a) => bundle::verify_blob_attestation(a).await,
        Command::Policy(PolicyCommand::Apply(a)) => policy::apply(a).await,
        Command::Policy(PolicyCommand::Test(a)) => policy::test(a).await,
        Command::Webhook(WebhookCommand::Serve(a)) => webhook::serve(a).await,
        Command::Serve(a) => serve::serve(a).await,
        Command::Notary(NotaryCommand::Sign(a)) => notary::sign(a).await,
        Command::Notary(NotaryCommand::Verify(a)) => notary::verify(a).await,
        Command::Notary(NotaryCommand::Inspect(a)) => notary::inspect(a).await,
    }
}

/// Completes on ctrl-c or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing open requests");
}

/// Parses repeated `KEY=VALUE` arguments of option `flag` (later keys win).
pub(crate) fn parse_annotations(
    flag: &str,
    list: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for a in list {
        let (k, v) = a
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{flag} {a:?}: expected KEY=VALUE"))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}
