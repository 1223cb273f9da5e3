//! `sigil serve` (being written).

use std::process::ExitCode;

/// `sigil serve serve`.
pub async fn serve(_args: crate::cli::ServeAllArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
