//! `sigil verify-blob|verify-blob-attestation`: offline Sigstore bundle verification.

use std::process::ExitCode;

use crate::cli::{VerifyBlobArgs, VerifyBlobAttestationArgs};

pub async fn verify_blob(_a: VerifyBlobArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn verify_blob_attestation(_a: VerifyBlobAttestationArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
