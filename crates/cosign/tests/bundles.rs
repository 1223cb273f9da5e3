//! Bundle helpers without a registry: cosign v3's `sign -a` statement, the `-a` check on statement
//! subjects, certificate material in keyed bundles, and signature-repository parsing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use base64::Engine as _;
use sigil_cosign::PrivateKey;
use sigil_cosign::bundles::{
    bundle_repository, check_subject_annotations, keyed_bundle_with, sign_statement_with,
};
use sigil_oci::{Digest, Reference};

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn ann(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn sign_statement_records_annotations_on_the_subject() {
    let d = Digest::parse(A).unwrap();
    let s: serde_json::Value =
        serde_json::from_slice(&sign_statement_with(&d, &ann(&[("env", "prod")]))).unwrap();
    assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(s["predicateType"], "https://sigstore.dev/cosign/sign/v1");
    assert_eq!(s["subject"][0]["digest"]["sha256"], &A[7..]);
    assert_eq!(s["subject"][0]["annotations"]["env"], "prod");
    assert_eq!(s["predicate"], serde_json::json!({}));
    check_subject_annotations(&s, &d, &ann(&[("env", "prod")])).unwrap();
    check_subject_annotations(&s, &d, &BTreeMap::new()).unwrap();
    assert!(check_subject_annotations(&s, &d, &ann(&[("env", "dev")])).is_err());
    assert!(check_subject_annotations(&s, &d, &ann(&[("team", "x")])).is_err());
    // Annotations of another subject do not count.
    assert!(
        check_subject_annotations(&s, &Digest::parse(B).unwrap(), &ann(&[("env", "prod")]))
            .is_err()
    );
    // Non-string values do not match their text.
    let n =
        serde_json::json!({"subject": [{"digest": {"sha256": &A[7..]}, "annotations": {"n": 1}}]});
    assert!(check_subject_annotations(&n, &d, &ann(&[("n", "1")])).is_err());
}

#[test]
fn signature_repository_parsing() {
    let img = Reference::parse("127.0.0.1:5000/app/web:v1").unwrap();
    assert_eq!(
        bundle_repository(&img, None).unwrap().repository_name(),
        "127.0.0.1:5000/app/web"
    );
    assert_eq!(
        bundle_repository(&img, Some("127.0.0.1:5001/sigs"))
            .unwrap()
            .repository_name(),
        "127.0.0.1:5001/sigs"
    );
    let e = bundle_repository(&img, Some(" ")).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = bundle_repository(&img, Some(&format!("127.0.0.1:5001/sigs@{A}"))).unwrap_err();
    assert!(e.to_string().contains("not a digest"), "{e}");
}

#[test]
fn keyed_bundle_with_certificate_material() {
    let pem = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sigstore/tests/data/rsa/leaf.pem"),
    )
    .unwrap();
    let leaf = sigil_sigstore::crypto::pem_decode(&pem, "CERTIFICATE").unwrap();
    let key = PrivateKey::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sigstore/tests/data/rsa/leaf.key"),
    )
    .unwrap();
    let b: serde_json::Value =
        serde_json::from_slice(&keyed_bundle_with(&key, b"{}", Some(&leaf)).unwrap()).unwrap();
    assert_eq!(
        b["verificationMaterial"]["certificate"]["rawBytes"],
        base64::engine::general_purpose::STANDARD.encode(&leaf)
    );
    assert!(b["verificationMaterial"].get("publicKey").is_none());
    // The certificate must carry the signing key.
    let other = PrivateKey::generate_p256().unwrap();
    let e = keyed_bundle_with(&other, b"{}", Some(&leaf)).unwrap_err();
    assert!(e.to_string().contains("not the signing key"), "{e}");
    // Not a certificate.
    assert!(keyed_bundle_with(&key, b"{}", Some(b"not DER")).is_err());
}
