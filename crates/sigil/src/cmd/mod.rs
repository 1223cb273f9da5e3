//! Subcommand implementations.

mod artifacts;
mod bundle;
mod copy;
mod cosign;
mod inspect;
mod registry;

use std::process::ExitCode;

use crate::cli::{Cli, Command, RegistryCommand};

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
    }
}
