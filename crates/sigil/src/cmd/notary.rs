//! `sigil notary` (being written).

use std::process::ExitCode;

/// `sigil notary sign`.
pub async fn sign(_args: crate::cli::NotarySignArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}

/// `sigil notary verify`.
pub async fn verify(_args: crate::cli::NotaryVerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}

/// `sigil notary inspect`.
pub async fn inspect(_args: crate::cli::NotaryInspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
