//! The policy engine's entry point: verify an image digest against an attestor (public keys plus required
//! annotations), reporting the verified signatures or a typed reason, and the registry requests made.

use std::collections::BTreeMap;

use sigil_client::RegistryClient;
use sigil_oci::Reference;

use crate::error::{CosignError, VerifyError};
use crate::keys::PublicKey;
use crate::legacy::{self, Trust, VerifiedSignature};

/// Who must have signed: any of `keys` (PEM `PUBLIC KEY` blocks), with these payload annotations.
#[derive(Debug, Clone, Default)]
pub struct Attestor {
    /// Public keys, PEM.
    pub keys_pem: Vec<String>,
    /// Required `optional` annotations in the signed payload.
    pub annotations: BTreeMap<String, String>,
}

/// What [`verify_for_policy`] found.
#[derive(Debug)]
pub struct PolicyOutcome {
    /// The verified signatures, or why none verified.
    pub result: Result<Vec<VerifiedSignature>, VerifyError>,
    /// Registry requests made for this verification.
    pub requests: u64,
}

/// Verifies the legacy signatures of `image` (which must carry a digest) against `attestor`.
pub async fn verify_for_policy(
    client: &RegistryClient,
    image: &Reference,
    attestor: &Attestor,
    signature_repo: Option<&str>,
) -> PolicyOutcome {
    let before = client.request_count();
    let result = async {
        if image.digest.is_none() {
            return Err(VerifyError::from(CosignError::Invalid(format!(
                "{image}: a digest reference is required"
            ))));
        }
        let keys = attestor
            .keys_pem
            .iter()
            .map(|p| PublicKey::from_pem(p))
            .collect::<Result<Vec<_>, _>>()?;
        legacy::verify_image(
            client,
            image,
            &Trust {
                keys,
                certificate: None,
            },
            &attestor.annotations,
            signature_repo,
        )
        .await
    }
    .await;
    PolicyOutcome {
        result,
        requests: client.request_count().saturating_sub(before),
    }
}
