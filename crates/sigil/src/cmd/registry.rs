//! `sigil registry serve|gc`.

use std::process::ExitCode;

use crate::cli::{GcArgs, ServeArgs};

pub async fn serve(_a: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn gc(_a: GcArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
