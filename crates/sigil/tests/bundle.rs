//! `sigil verify-blob` / `verify-blob-attestation` over the Sigstore bundle vectors copied into
//! `crates/sigstore/tests/data/` (offline; no oracle tools needed).
//!
//! Still to do (later step): live round trips with sigstore-python against a mock Fulcio/Rekor/TSA stack
//! (needs the mock services started by `.ci/run` and sigstore-python in the oracle venv).

use std::path::PathBuf;

use crate::util::sigil;

fn data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sigstore/tests/data")
        .join(name)
        .display()
        .to_string()
}

const KW_ID: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const GH: &str = "https://token.actions.githubusercontent.com";
const KW_DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn verify_blob_message_signature() {
    let (b, a, r) = (
        data("mock-messagesig-hashedrekord.sigstore.json"),
        data("mock-payload.json"),
        data("mock-trusted_root.json"),
    );
    let ok = sigil(&[
        "verify-blob",
        &a,
        "--bundle",
        &b,
        "--certificate-identity",
        "signer@example.test",
        "--certificate-oidc-issuer",
        "https://oidc.example.test",
        "--trusted-root",
        &r,
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stderr(&ok).contains("Verified OK"));
    let bad = sigil(&[
        "verify-blob",
        &a,
        "--bundle",
        &b,
        "--certificate-identity",
        "other@example.test",
        "--certificate-oidc-issuer",
        "https://oidc.example.test",
        "--trusted-root",
        &r,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("identity mismatch"),
        "{}",
        stderr(&bad)
    );
    let wrong = sigil(&[
        "verify-blob",
        &data("mock-artifact.bin"),
        "--bundle",
        &b,
        "--certificate-identity-regexp",
        "^signer@",
        "--certificate-oidc-issuer",
        "https://oidc.example.test",
        "--trusted-root",
        &r,
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("artifact digest mismatch"),
        "{}",
        stderr(&wrong)
    );
    let prod = sigil(&[
        "verify-blob",
        &a,
        "--bundle",
        &b,
        "--certificate-identity",
        "signer@example.test",
        "--certificate-oidc-issuer",
        "https://oidc.example.test",
        "--trusted-root",
        &data("trusted_root.prod.json"),
    ]);
    assert_eq!(prod.status.code(), Some(1));
}

#[test]
fn verify_blob_attestation_dsse() {
    let (b, r) = (
        data("mock-dsse-slsa.sigstore.json"),
        data("mock-trusted_root.json"),
    );
    let common = [
        "--certificate-identity",
        "signer@example.test",
        "--certificate-oidc-issuer",
        "https://oidc.example.test",
    ];
    let a = data("mock-artifact.bin");
    let mut args = vec![
        "verify-blob-attestation",
        "--bundle",
        &b,
        "--trusted-root",
        &r,
        "--type",
        "slsaprovenance1",
        &a,
    ];
    args.extend(common);
    let ok = sigil(&args);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let st: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    let mut args = vec![
        "verify-blob-attestation",
        "--bundle",
        &b,
        "--trusted-root",
        &r,
        "--type",
        "slsaprovenance",
    ];
    args.extend(common);
    let wrong_type = sigil(&args);
    assert_eq!(wrong_type.status.code(), Some(1));
    assert!(
        stderr(&wrong_type).contains("predicateType"),
        "{}",
        stderr(&wrong_type)
    );
}

#[test]
fn verify_blob_attestation_kubewarden_prod() {
    let (b, r) = (
        data("kubewarden-controller.bundle_v03.json"),
        data("trusted_root.prod.json"),
    );
    let ok = sigil(&[
        "verify-blob-attestation",
        "--bundle",
        &b,
        KW_DIGEST,
        "--certificate-identity",
        KW_ID,
        "--certificate-oidc-issuer",
        GH,
        "--trusted-root",
        &r,
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stderr(&ok).contains("Verified OK"));
    let other = KW_ID.replace("v1.34.0", "v1.33.0");
    let bad = sigil(&[
        "verify-blob-attestation",
        "--bundle",
        &b,
        KW_DIGEST,
        "--certificate-identity",
        &other,
        "--certificate-oidc-issuer",
        GH,
        "--trusted-root",
        &r,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr(&bad).lines().count(), 1, "{}", stderr(&bad));
}
