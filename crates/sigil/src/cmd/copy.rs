//! `sigil copy SRC DST`.

use std::process::ExitCode;

use crate::cli::CopyArgs;

pub async fn copy(_a: CopyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
