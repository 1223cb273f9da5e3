//! RSA in sigil-sigstore: certificate chains signed with PKCS#1 v1.5 (SHA-256/512) and RSA-PSS
//! (SHA-384), RSA leaf keys verifying PKCS#1 v1.5 and PSS message signatures, RSA keys in a trusted
//! root, an RFC 3161 timestamp from an RSA TSA (PSS-signed TSA certificate), key-size limits, and
//! tampering (see `tests/data/rsa/README.md` for how OpenSSL made the files).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use sha2::Digest as _;
use sigil_sigstore::crypto::{HashAlg, RsaPadding, pem_decode};
use sigil_sigstore::legacy::{
    RekorBundle, Signed, Signer, certificate_spki, verify_certificate,
    verify_certificate_with_root, verify_rekor_bundle, verify_rfc3161,
};
use sigil_sigstore::trust::parse_rfc3339;
use sigil_sigstore::{Matcher, Policy, PublicKey, SigstoreError, TrustedRoot, VerifyFailure};

const ROOT: &str = include_str!("data/rsa/root.pem");
const INTER: &str = include_str!("data/rsa/inter.pem");
const LEAF: &str = include_str!("data/rsa/leaf.pem");
const LEAF_KEY: &str = include_str!("data/rsa/leaf.key");
const SMALL: &str = include_str!("data/rsa/small.pub");
const MSG: &[u8] = include_bytes!("data/rsa/msg.txt");
const PSS_256: &[u8] = include_bytes!("data/rsa/msg.pss-sha256.sig");
const PSS_512_MAX: &[u8] = include_bytes!("data/rsa/msg.pss-sha512-maxsalt.sig");
const TSA_ROOT: &str = include_str!("data/rsa/tsa-root.pem");
const TSA: &str = include_str!("data/rsa/tsa.pem");
const TSA_RESP: &[u8] = include_bytes!("data/rsa/tsa-resp.tsr");
const TSA_SIGNED: &[u8] = include_bytes!("data/rsa/tsa-signed.bin");
const MOCK_ROOT: &[u8] = include_bytes!("data/mock-trusted_root.json");
const ID: &str = "rsa-signer@example.test";
const ISS: &str = "https://oidc.example.test";

fn der(pem: &str) -> Vec<u8> {
    pem_decode(pem, "CERTIFICATE").unwrap()
}

/// A time inside every certificate's validity.
fn t() -> i64 {
    parse_rfc3339("2027-01-01T00:00:00Z").unwrap()
}

/// Flips one bit `from_end` bytes before the end (inside the signature BIT STRING).
fn tamper(mut d: Vec<u8>, from_end: usize) -> Vec<u8> {
    let i = d.len() - from_end;
    d[i] ^= 0x01;
    d
}

fn leaf_key() -> PublicKey {
    PublicKey::from_spki_der(&certificate_spki(&der(LEAF)).unwrap(), "leaf").unwrap()
}

fn signer() -> rsa::PrivateKey {
    use rsa::pkcs8::DecodePrivateKey as _;
    rsa::PrivateKey::from_pkcs8_der(&pem_decode(LEAF_KEY, "PRIVATE KEY").unwrap()).unwrap()
}

/// A trusted root whose only Fulcio CA is the RSA intermediate + root, and whose Rekor and CT keys
/// are RSA keys.
fn rsa_trusted_root() -> TrustedRoot {
    let spki = STANDARD.encode(certificate_spki(&der(LEAF)).unwrap());
    let json = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": "http://127.0.0.1:1",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": spki, "keyDetails": "PKIX_RSA_PKCS1V15_2048_SHA256",
                          "validFor": {"start": "2026-01-01T00:00:00Z"}},
            "logId": {"keyId": STANDARD.encode(sha2::Sha256::digest(certificate_spki(&der(LEAF)).unwrap()))},
        }],
        "certificateAuthorities": [{
            "subject": {"organization": "sigil test", "commonName": "RSA-PSS intermediate"},
            "uri": "http://127.0.0.1:1",
            "certChain": {"certificates": [
                {"rawBytes": STANDARD.encode(der(INTER))},
                {"rawBytes": STANDARD.encode(der(ROOT))},
            ]},
            "validFor": {"start": "2026-01-01T00:00:00Z"},
        }],
        "ctlogs": [{
            "baseUrl": "http://127.0.0.1:1",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": spki, "keyDetails": "PKIX_RSA_PKCS1V15_2048_SHA256",
                          "validFor": {"start": "2026-01-01T00:00:00Z"}},
            "logId": {"keyId": STANDARD.encode([8u8; 32])},
        }],
        "timestampAuthorities": [],
    });
    TrustedRoot::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
}

#[test]
fn rsa_chain_pkcs1_and_pss_verifies() {
    let leaf = der(LEAF);
    let chain = vec![der(INTER), der(ROOT)];
    let s = verify_certificate(
        &leaf,
        &chain,
        &Policy::Certificate(leaf.clone()),
        None,
        &[t()],
        false,
    )
    .unwrap();
    assert_eq!(s.san, vec![ID.to_owned()]);
    assert_eq!(s.issuer.as_deref(), Some(ISS));
}

#[test]
fn rsa_chain_tampered_signatures_fail() {
    let leaf = der(LEAF);
    let pinned = Policy::Certificate(leaf.clone());
    // Intermediate's RSA-PSS signature (by the root) altered.
    let bad_inter = vec![tamper(der(INTER), 10), der(ROOT)];
    let e = verify_certificate(&leaf, &bad_inter, &pinned, None, &[t()], false).unwrap_err();
    assert!(matches!(e, VerifyFailure::ChainInvalid(_)), "{e}");
    // Leaf's PKCS#1 v1.5 SHA-512 signature (by the intermediate) altered.
    let bad_leaf = tamper(leaf.clone(), 10);
    let e = verify_certificate(
        &bad_leaf,
        &[der(INTER), der(ROOT)],
        &Policy::Certificate(bad_leaf.clone()),
        None,
        &[t()],
        false,
    )
    .unwrap_err();
    assert!(matches!(e, VerifyFailure::ChainInvalid(_)), "{e}");
    // The chain in the wrong order.
    let e = verify_certificate(
        &leaf,
        &[der(ROOT), der(INTER)],
        &pinned,
        None,
        &[t()],
        false,
    )
    .unwrap_err();
    assert!(matches!(e, VerifyFailure::ChainInvalid(_)), "{e}");
    // Before the leaf's notBefore.
    let early = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    assert!(
        verify_certificate(
            &leaf,
            &[der(INTER), der(ROOT)],
            &pinned,
            None,
            &[early],
            false
        )
        .is_err()
    );
}

#[test]
fn rsa_fulcio_ca_in_trusted_root() {
    let leaf = der(LEAF);
    let root = rsa_trusted_root();
    let id = Policy::Identity {
        subject: Matcher::Exact(ID.into()),
        issuer: Matcher::Exact(ISS.into()),
    };
    verify_certificate(&leaf, &[], &id, Some(&root), &[t()], false).unwrap();
    let s = verify_certificate_with_root(&leaf, &root, &[t()], false).unwrap();
    assert_eq!(s.san, vec![ID.to_owned()]);
    // The leaf has no SCT: requiring one fails.
    let e = verify_certificate_with_root(&leaf, &root, &[t()], true).unwrap_err();
    assert!(e.to_string().to_lowercase().contains("sct"), "{e}");
    // Another identity.
    let other = Policy::Identity {
        subject: Matcher::Exact("someone@example.test".into()),
        issuer: Matcher::Exact(ISS.into()),
    };
    let e = verify_certificate(&leaf, &[], &other, Some(&root), &[t()], false).unwrap_err();
    assert!(matches!(e, VerifyFailure::IdentityMismatch { .. }), "{e}");
    // A root whose Fulcio CA did not issue this certificate.
    let mock = TrustedRoot::from_json(MOCK_ROOT).unwrap();
    let e = verify_certificate_with_root(&leaf, &mock, &[t()], false).unwrap_err();
    assert!(matches!(e, VerifyFailure::ChainInvalid(_)), "{e}");
    // A tampered leaf does not chain.
    let bad = tamper(leaf, 10);
    assert!(verify_certificate_with_root(&bad, &root, &[t()], false).is_err());
    // RSA Rekor and CT keys were accepted by the trusted root parser.
    assert!(matches!(root.tlogs[0].key, PublicKey::Rsa(_)));
    assert!(matches!(root.ctlogs[0].key, PublicKey::Rsa(_)));
}

#[test]
fn rsa_pkcs1v15_message_signatures() {
    let key = leaf_key();
    assert!(matches!(key, PublicKey::Rsa(_)));
    let sk = signer();
    for (h, sig) in [
        (
            HashAlg::Sha256,
            rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(sk.clone())
                .sign(MSG)
                .to_bytes()
                .to_vec(),
        ),
        (
            HashAlg::Sha384,
            rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(sk.clone())
                .sign(MSG)
                .to_bytes()
                .to_vec(),
        ),
        (
            HashAlg::Sha512,
            rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(sk)
                .sign(MSG)
                .to_bytes()
                .to_vec(),
        ),
    ] {
        assert!(key.verify(MSG, &sig, h), "{h:?}");
        assert!(key.verify_prehash(&h.digest(MSG), &sig), "{h:?} prehash");
        assert!(key.verify_rsa_prehash(&h.digest(MSG), &sig, RsaPadding::Pkcs1v15));
        // Not a PSS signature.
        assert!(!key.verify_rsa_prehash(&h.digest(MSG), &sig, RsaPadding::Pss));
        // Another message, another hash, a flipped bit, a truncated signature.
        assert!(!key.verify(b"another message", &sig, h));
        let other = if h == HashAlg::Sha256 {
            HashAlg::Sha512
        } else {
            HashAlg::Sha256
        };
        assert!(!key.verify(MSG, &sig, other));
        assert!(!key.verify(MSG, &tamper(sig.clone(), 1), h));
        assert!(!key.verify(MSG, &sig[1..], h));
    }
}

#[test]
fn rsa_pss_message_signatures() {
    let key = leaf_key();
    assert!(key.verify(MSG, PSS_256, HashAlg::Sha256));
    assert!(key.verify_rsa_prehash(&HashAlg::Sha256.digest(MSG), PSS_256, RsaPadding::Pss));
    assert!(!key.verify_rsa_prehash(&HashAlg::Sha256.digest(MSG), PSS_256, RsaPadding::Pkcs1v15));
    // Maximum salt length is detected.
    assert!(key.verify(MSG, PSS_512_MAX, HashAlg::Sha512));
    assert!(!key.verify(MSG, PSS_512_MAX, HashAlg::Sha256));
    assert!(!key.verify(b"sigil RSA-PSS test message", PSS_256, HashAlg::Sha256));
    assert!(!key.verify(MSG, &tamper(PSS_256.to_vec(), 100), HashAlg::Sha256));
}

#[test]
fn rsa_key_sizes() {
    let e = PublicKey::from_pem(SMALL, "small.pub").unwrap_err();
    assert!(matches!(e, SigstoreError::RsaKeySize("small.pub")), "{e}");
    assert!(e.to_string().contains("2048"), "{e}");
    // The SPKI round-trips.
    let key = leaf_key();
    let spki = key.to_spki_der();
    assert_eq!(spki, certificate_spki(&der(LEAF)).unwrap());
    assert!(matches!(
        PublicKey::from_spki_der(&spki, "x").unwrap(),
        PublicKey::Rsa(_)
    ));
}

/// A trusted root with one timestamp authority whose chain is `chain` (PEM, leaf first).
fn tsa_root(chain: &[&str]) -> TrustedRoot {
    let certs: Vec<_> = chain
        .iter()
        .map(|p| serde_json::json!({"rawBytes": STANDARD.encode(der(p))}))
        .collect();
    let json = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [], "certificateAuthorities": [], "ctlogs": [],
        "timestampAuthorities": [{
            "subject": {"organization": "sigil test", "commonName": "RSA TSA"},
            "uri": "http://127.0.0.1:1",
            "certChain": {"certificates": certs},
            "validFor": {"start": "2026-01-01T00:00:00Z"},
        }],
    });
    TrustedRoot::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
}

#[test]
fn rsa_timestamp_authority() {
    let root = tsa_root(&[TSA, TSA_ROOT]);
    let t = verify_rfc3161(TSA_RESP, TSA_SIGNED, &root).unwrap();
    assert_eq!(t, parse_rfc3339("2026-11-25T07:51:03Z").unwrap());
    // Another signature: the message imprint differs.
    let e = verify_rfc3161(TSA_RESP, b"other signature bytes", &root).unwrap_err();
    assert!(e.to_string().contains("messageImprint"), "{e}");
    // The TSA's RSA signature (the last bytes of the response) altered.
    let mut bad = TSA_RESP.to_vec();
    let n = bad.len();
    bad[n - 5] ^= 0x01;
    assert!(verify_rfc3161(&bad, TSA_SIGNED, &root).is_err());
    // A chain whose root did not sign the TSA certificate (the Fulcio RSA root).
    let wrong = tsa_root(&[TSA, ROOT]);
    let e = verify_rfc3161(TSA_RESP, TSA_SIGNED, &wrong).unwrap_err();
    assert!(e.to_string().contains("TSA chain"), "{e}");
    // A TSA that did not sign it (the Fulcio RSA leaf has no timeStamping EKU and another key).
    assert!(verify_rfc3161(TSA_RESP, TSA_SIGNED, &tsa_root(&[LEAF, INTER, ROOT])).is_err());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A legacy cosign `.sig` signature by the RSA key, logged by a Rekor whose key is RSA too: the SET
/// (PKCS#1 v1.5 / SHA-256 over the canonical entry) verifies, and fails when tampered.
#[test]
fn rsa_rekor_set() {
    let key = leaf_key();
    let spki = key.to_spki_der();
    let sk = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(signer());
    let payload = br#"{"critical":{"type":"cosign container image signature"}}"#;
    let sig = sk.sign(payload).to_bytes().to_vec();
    let pem = sigil_sigstore::crypto::pem_encode(&spki, "PUBLIC KEY");
    let body = serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex(&sha2::Sha256::digest(payload))}},
            "signature": {"content": STANDARD.encode(&sig), "publicKey": {"content": STANDARD.encode(pem)}},
        },
    });
    let body_b64 = STANDARD.encode(serde_json::to_vec(&body).unwrap());
    let log_id = hex(&sha2::Sha256::digest(&spki));
    let integrated = parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
    let canonical = format!(
        r#"{{"body":"{body_b64}","integratedTime":{integrated},"logID":"{log_id}","logIndex":7}}"#
    );
    let set = sk.sign(canonical.as_bytes()).to_bytes().to_vec();
    let bundle_json = |set: &[u8]| {
        serde_json::to_vec(&serde_json::json!({
            "SignedEntryTimestamp": STANDARD.encode(set),
            "Payload": {"body": body_b64, "integratedTime": integrated, "logIndex": 7, "logID": log_id},
        }))
        .unwrap()
    };
    let root = rsa_trusted_root();
    let b = RekorBundle::from_json(&bundle_json(&set)).unwrap();
    let t =
        verify_rekor_bundle(&b, &sig, Signed::Payload(payload), Signer::Key(&key), &root).unwrap();
    assert_eq!(t, integrated);
    // A flipped SET bit.
    let mut bad = set;
    bad[17] ^= 0x01;
    let b2 = RekorBundle::from_json(&bundle_json(&bad)).unwrap();
    let e = verify_rekor_bundle(
        &b2,
        &sig,
        Signed::Payload(payload),
        Signer::Key(&key),
        &root,
    )
    .unwrap_err();
    assert!(matches!(e, VerifyFailure::SetInvalid(_)), "{e}");
    // Another payload: the body's hash no longer matches.
    assert!(
        verify_rekor_bundle(
            &b,
            &sig,
            Signed::Payload(b"other"),
            Signer::Key(&key),
            &root
        )
        .is_err()
    );
    // A root without this Rekor key.
    let mock = TrustedRoot::from_json(MOCK_ROOT).unwrap();
    assert!(
        verify_rekor_bundle(&b, &sig, Signed::Payload(payload), Signer::Key(&key), &mock).is_err()
    );
}

/// A bundle v0.3 message signature by the RSA leaf (OpenSSL, PKCS#1 v1.5) with the leaf as
/// `certificate` material verifies pinned and with the key; another artifact or key fails.
#[test]
fn rsa_message_signature_bundle() {
    use sigil_sigstore::{Artifact, Bundle, verify_bundle};
    let bundle = Bundle::from_json(include_bytes!("data/rsa/blob.bundle.json")).unwrap();
    let blob: &[u8] = include_bytes!("data/rsa/blob.txt");
    let none = TrustedRoot::default();
    let pinned = Policy::Certificate(der(LEAF));
    let v = verify_bundle(&bundle, Some(&Artifact::Bytes(blob)), &pinned, &none).unwrap();
    assert_eq!(v.certificate_summary.unwrap().san, vec![ID.to_owned()]);
    verify_bundle(
        &bundle,
        Some(&Artifact::Bytes(blob)),
        &Policy::PublicKey(leaf_key()),
        &none,
    )
    .unwrap();
    let e = verify_bundle(&bundle, Some(&Artifact::Bytes(b"other")), &pinned, &none).unwrap_err();
    assert!(matches!(e, VerifyFailure::ArtifactDigestMismatch(_)), "{e}");
    let other_key = PublicKey::from_spki_der(&certificate_spki(&der(INTER)).unwrap(), "x").unwrap();
    let e = verify_bundle(
        &bundle,
        Some(&Artifact::Bytes(blob)),
        &Policy::PublicKey(other_key),
        &none,
    )
    .unwrap_err();
    assert!(matches!(e, VerifyFailure::SignatureInvalid(_)), "{e}");
}
