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

/// The base64 DER body of a PEM file.
fn pem_body(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// An RSA bundle (PKCS#1 v1.5 message signature by an RSA-2048 leaf whose chain mixes PKCS#1 v1.5 and
/// RSA-PSS): pinned certificate, leaf key, `--certificate-chain`, and `--certificate` against the
/// trusted root's Fulcio CAs (no chain); wrong chain, wrong root, missing SCT and another blob fail.
#[test]
fn verify_blob_rsa_certificate_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();
    let (blob, bundle) = (data("rsa/blob.txt"), data("rsa/blob.bundle.json"));
    let (leaf, inter, root) = (
        data("rsa/leaf.pem"),
        data("rsa/inter.pem"),
        data("rsa/root.pem"),
    );
    std::fs::write(
        d("chain.pem"),
        format!(
            "{}{}",
            std::fs::read_to_string(&inter).unwrap(),
            std::fs::read_to_string(&root).unwrap()
        ),
    )
    .unwrap();
    let trusted = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [], "ctlogs": [], "timestampAuthorities": [],
        "certificateAuthorities": [{
            "subject": {"organization": "sigil test"},
            "uri": "http://127.0.0.1:1",
            "certChain": {"certificates": [{"rawBytes": pem_body(&inter)}, {"rawBytes": pem_body(&root)}]},
            "validFor": {"start": "2026-01-01T00:00:00Z"},
        }],
    });
    std::fs::write(d("rsa-root.json"), serde_json::to_vec(&trusted).unwrap()).unwrap();
    std::fs::write(d("other.txt"), b"another blob\n").unwrap();
    let run = |artifact: &str, extra: &[&str]| {
        let mut a = vec!["verify-blob", artifact, "--bundle", bundle.as_str()];
        a.extend_from_slice(extra);
        sigil(&a)
    };
    let leaf_pub = data("rsa/leaf.pub");
    let (chain, rsa_root) = (d("chain.pem"), d("rsa-root.json"));
    for extra in [
        vec!["--certificate", leaf.as_str()],
        vec!["--key", leaf_pub.as_str()],
        vec![
            "--certificate",
            leaf.as_str(),
            "--certificate-chain",
            &chain,
        ],
        vec![
            "--certificate",
            leaf.as_str(),
            "--trusted-root",
            &rsa_root,
            "--insecure-ignore-sct",
        ],
    ] {
        let o = run(&blob, &extra);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("Verified OK"), "{extra:?}");
    }
    let mock = data("mock-trusted_root.json");
    for (extra, needle) in [
        (
            vec!["--certificate", leaf.as_str(), "--certificate-chain", &root],
            "--certificate-chain",
        ),
        (
            vec![
                "--certificate",
                leaf.as_str(),
                "--trusted-root",
                &mock,
                "--insecure-ignore-sct",
            ],
            "not issued by a certificate authority",
        ),
        (
            vec!["--certificate", leaf.as_str(), "--trusted-root", &rsa_root],
            "SCT",
        ),
        (vec!["--certificate", root.as_str()], "differs"),
    ] {
        let o = run(&blob, &extra);
        assert!(!o.status.success(), "{extra:?} should fail");
        assert!(stderr(&o).contains(needle), "{extra:?}: {}", stderr(&o));
    }
    let o = run(&d("other.txt"), &["--certificate", leaf.as_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = run(&d("other.txt"), &["--key", leaf_pub.as_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
