//! Vector tests: each bundle verifies with the identity/issuer/root its README names, and fails when a
//! byte of the artifact, signature, certificate, SET or proof changes, or another identity/issuer/root is used.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::*;

const KW: &[u8] = include_bytes!("../tests/data/kubewarden-controller.bundle_v03.json");
const KW_ID: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const GH: &str = "https://token.actions.githubusercontent.com";
const KW_DIGEST: &str = "c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const PROD: &[u8] = include_bytes!("../tests/data/trusted_root.prod.json");
const PROD_PY: &[u8] = include_bytes!("../tests/data/trusted_root.prod.sigstore-python.json");
const MOCK_ROOT: &[u8] = include_bytes!("../tests/data/mock-trusted_root.json");
const MSG: &[u8] = include_bytes!("../tests/data/mock-messagesig-hashedrekord.sigstore.json");
const MSG_ART: &[u8] = include_bytes!("../tests/data/mock-payload.json");
const DSSE: &[u8] = include_bytes!("../tests/data/mock-dsse-slsa.sigstore.json");
const DSSE_ART: &[u8] = include_bytes!("../tests/data/mock-artifact.bin");

fn id(s: &str, i: &str) -> Policy {
    Policy::Identity {
        subject: Matcher::Exact(s.into()),
        issuer: Matcher::Exact(i.into()),
    }
}

fn mock_id() -> Policy {
    id("signer@example.test", "https://oidc.example.test")
}

fn kw_digest() -> Artifact<'static> {
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&KW_DIGEST[2 * i..2 * i + 2], 16).unwrap();
    }
    Artifact::Sha256(d)
}

fn run(
    bundle: &[u8],
    art: Option<&Artifact<'_>>,
    p: &Policy,
    root: &[u8],
) -> Result<Verified, VerifyFailure> {
    verify_bundle(
        &Bundle::from_json(bundle).unwrap(),
        art,
        p,
        &TrustedRoot::from_json(root).unwrap(),
    )
}

/// Rewrites the bundle JSON: flips one bit in the base64 field at `pointer` (decoded byte `at`, from the end if negative).
fn flip(bundle: &[u8], pointer: &str, at: isize) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bundle).unwrap();
    let f = v.pointer_mut(pointer).unwrap();
    let mut raw = STANDARD.decode(f.as_str().unwrap()).unwrap();
    let i = if at < 0 {
        raw.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    raw[i] ^= 0x01;
    *f = Value::String(STANDARD.encode(raw));
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn kubewarden_verifies_with_prod_root() {
    let v = run(KW, Some(&kw_digest()), &id(KW_ID, GH), PROD).unwrap();
    assert_eq!(v.signing_time, Some(1_775_719_409));
    let s = v.certificate_summary.unwrap();
    assert_eq!(s.san, vec![KW_ID.to_string()]);
    assert_eq!(s.issuer.as_deref(), Some(GH));
    assert_eq!(v.payload.unwrap().0, "application/vnd.in-toto+json");
    // Without an artifact, too; and with a regexp identity.
    let re = Policy::Identity {
        subject: Matcher::regex("^https://github.com/kubewarden/").unwrap(),
        issuer: Matcher::regex("githubusercontent").unwrap(),
    };
    run(KW, None, &re, PROD).unwrap();
}

#[test]
fn kubewarden_verifies_with_tsa_root() {
    // The sigstore-python root has the TSA: the RFC 3161 timestamp must verify too.
    let v = run(KW, Some(&kw_digest()), &id(KW_ID, GH), PROD_PY).unwrap();
    assert!(v.signing_time.is_some());
}

#[test]
fn kubewarden_failures() {
    let p = id(KW_ID, GH);
    let a = kw_digest();
    let other = id(&KW_ID.replace("v1.34.0", "v1.33.0"), GH);
    assert!(matches!(
        run(KW, Some(&a), &other, PROD),
        Err(VerifyFailure::IdentityMismatch { .. })
    ));
    assert!(matches!(
        run(
            KW,
            Some(&a),
            &id(KW_ID, "https://accounts.google.com"),
            PROD
        ),
        Err(VerifyFailure::IssuerMismatch { .. })
    ));
    assert!(matches!(
        run(KW, Some(&Artifact::Sha256([0; 32])), &p, PROD),
        Err(VerifyFailure::ArtifactDigestMismatch(_))
    ));
    let vm = "/verificationMaterial/tlogEntries/0";
    assert!(matches!(
        run(&flip(KW, "/dsseEnvelope/payload", 10), Some(&a), &p, PROD),
        Err(VerifyFailure::SignatureInvalid(_))
    ));
    assert!(matches!(
        run(
            &flip(KW, "/dsseEnvelope/signatures/0/sig", -3),
            Some(&a),
            &p,
            PROD
        ),
        Err(VerifyFailure::SignatureInvalid(_))
    ));
    assert!(matches!(
        run(
            &flip(
                KW,
                &format!("{vm}/inclusionPromise/signedEntryTimestamp"),
                -3
            ),
            Some(&a),
            &p,
            PROD
        ),
        Err(VerifyFailure::SetInvalid(_))
    ));
    assert!(matches!(
        run(
            &flip(KW, &format!("{vm}/inclusionProof/hashes/3"), 0),
            Some(&a),
            &p,
            PROD
        ),
        Err(VerifyFailure::InclusionProofInvalid(_))
    ));
    assert!(matches!(
        run(
            &flip(KW, &format!("{vm}/inclusionProof/rootHash"), 0),
            Some(&a),
            &p,
            PROD
        ),
        Err(VerifyFailure::InclusionProofInvalid(_))
    ));
    // A changed certificate byte (inside the signature) breaks the PAE check or the chain.
    assert!(
        run(
            &flip(KW, "/verificationMaterial/certificate/rawBytes", -5),
            Some(&a),
            &p,
            PROD
        )
        .is_err()
    );
    // Root without the Fulcio CA.
    let mut root: Value = serde_json::from_slice(PROD).unwrap();
    root["certificateAuthorities"] = Value::Array(vec![]);
    assert!(matches!(
        run(KW, Some(&a), &p, &serde_json::to_vec(&root).unwrap()),
        Err(VerifyFailure::ChainInvalid(_))
    ));
    // Root without CT logs.
    let mut root: Value = serde_json::from_slice(PROD).unwrap();
    root["ctlogs"] = Value::Array(vec![]);
    assert!(matches!(
        run(KW, Some(&a), &p, &serde_json::to_vec(&root).unwrap()),
        Err(VerifyFailure::SctInvalid(_))
    ));
    // Against the mock root.
    assert!(run(KW, Some(&a), &p, MOCK_ROOT).is_err());
}

#[test]
fn checkpoint_tamper() {
    let mut v: Value = serde_json::from_slice(KW).unwrap();
    let cp = v
        .pointer_mut("/verificationMaterial/tlogEntries/0/inclusionProof/checkpoint/envelope")
        .unwrap();
    *cp = Value::String(cp.as_str().unwrap().replacen(
        "rekor.sigstore.dev - ",
        "rekor.sigstore.dev -  ",
        1,
    ));
    let b = serde_json::to_vec(&v).unwrap();
    assert!(matches!(
        run(&b, Some(&kw_digest()), &id(KW_ID, GH), PROD),
        Err(VerifyFailure::CheckpointInvalid(_))
    ));
}

#[test]
fn mock_message_signature() {
    let v = run(MSG, Some(&Artifact::Bytes(MSG_ART)), &mock_id(), MOCK_ROOT).unwrap();
    assert!(v.payload.is_none());
    let mut bad = MSG_ART.to_vec();
    bad[3] ^= 1;
    assert!(matches!(
        run(MSG, Some(&Artifact::Bytes(&bad)), &mock_id(), MOCK_ROOT),
        Err(VerifyFailure::ArtifactDigestMismatch(_))
    ));
    assert!(matches!(
        run(
            MSG,
            Some(&Artifact::Bytes(MSG_ART)),
            &id("other@example.test", "https://oidc.example.test"),
            MOCK_ROOT
        ),
        Err(VerifyFailure::IdentityMismatch { .. })
    ));
    assert!(matches!(
        run(
            MSG,
            Some(&Artifact::Bytes(MSG_ART)),
            &id("signer@example.test", "https://other.example.test"),
            MOCK_ROOT
        ),
        Err(VerifyFailure::IssuerMismatch { .. })
    ));
    assert!(matches!(
        run(
            &flip(MSG, "/messageSignature/signature", -3),
            Some(&Artifact::Bytes(MSG_ART)),
            &mock_id(),
            MOCK_ROOT
        ),
        Err(VerifyFailure::SignatureInvalid(_))
    ));
    assert!(run(MSG, Some(&Artifact::Bytes(MSG_ART)), &mock_id(), PROD).is_err());
    assert!(matches!(
        run(
            &flip(
                MSG,
                "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp",
                -3
            ),
            Some(&Artifact::Bytes(MSG_ART)),
            &mock_id(),
            MOCK_ROOT
        ),
        Err(VerifyFailure::TimestampInvalid(_))
    ));
    // A changed tlog body byte breaks body consistency or (if the JSON still matches) the SET.
    let r = run(
        &flip(
            MSG,
            "/verificationMaterial/tlogEntries/0/canonicalizedBody",
            40,
        ),
        Some(&Artifact::Bytes(MSG_ART)),
        &mock_id(),
        MOCK_ROOT,
    );
    assert!(
        matches!(
            r,
            Err(VerifyFailure::BodyMismatch(_) | VerifyFailure::SetInvalid(_))
        ),
        "{r:?}"
    );
}

#[test]
fn mock_dsse() {
    let v = run(
        DSSE,
        Some(&Artifact::Bytes(DSSE_ART)),
        &mock_id(),
        MOCK_ROOT,
    )
    .unwrap();
    let (pt, payload) = v.payload.unwrap();
    assert_eq!(pt, "application/vnd.in-toto+json");
    let st: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["predicateType"], predicate_type_uri("slsaprovenance1"));
    assert!(matches!(
        run(
            DSSE,
            Some(&Artifact::Bytes(b"artifact-bytez")),
            &mock_id(),
            MOCK_ROOT
        ),
        Err(VerifyFailure::ArtifactDigestMismatch(_))
    ));
    let mut root: Value = serde_json::from_slice(MOCK_ROOT).unwrap();
    root["certificateAuthorities"] = Value::Array(vec![]);
    assert!(matches!(
        run(
            DSSE,
            Some(&Artifact::Bytes(DSSE_ART)),
            &mock_id(),
            &serde_json::to_vec(&root).unwrap()
        ),
        Err(VerifyFailure::ChainInvalid(_))
    ));
}

#[test]
fn pae_format() {
    assert_eq!(verify::pae("t", b"ab"), b"DSSEv1 1 t 2 ab".to_vec());
}
