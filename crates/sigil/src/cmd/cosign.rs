//! `sigil generate-key-pair|sign|attest|verify|verify-attestation`: cosign-compatible signing.

use std::process::ExitCode;

use crate::cli::{AttestArgs, GenerateKeyPairArgs, SignArgs, VerifyArgs, VerifyAttestationArgs};

pub async fn generate_key_pair(_a: GenerateKeyPairArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn sign(_a: SignArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn attest(_a: AttestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn verify(_a: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
pub async fn verify_attestation(_a: VerifyAttestationArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
