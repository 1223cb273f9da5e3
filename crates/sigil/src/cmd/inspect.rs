//! `sigil manifest|config|blob|digest|tags`: read-only inspection, in the style of crane.

use std::process::ExitCode;

use crate::cli::{BlobArgs, InspectArgs, TagsArgs};

pub async fn manifest(_a: InspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn config(_a: InspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn blob(_a: BlobArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn digest(_a: InspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn tags(_a: TagsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
