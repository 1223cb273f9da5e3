//! `sigil webhook` (being written).

use std::process::ExitCode;

/// `sigil webhook serve`.
pub async fn serve(_args: crate::cli::WebhookServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
