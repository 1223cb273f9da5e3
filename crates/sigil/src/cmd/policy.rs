//! `sigil policy` (being written).

use std::process::ExitCode;

/// `sigil policy apply`.
pub async fn apply(_args: crate::cli::PolicyApplyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}

/// `sigil policy test`.
pub async fn test(_args: crate::cli::PolicyTestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
