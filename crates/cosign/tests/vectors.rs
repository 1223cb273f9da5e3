//! Vector tests: cosign/sigstore-rs encrypted keys, the keyed simple-signing signature, tampering, key
//! round trips, DSSE attestation checks. Data files are copies of `shared/vectors/cosign/`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sigil_cosign::keys::{self, PrivateKey, PublicKey};
use sigil_cosign::legacy::{self, Trust};
use sigil_cosign::{CosignError, SignatureFailure, payload};
use sigil_oci::{Descriptor, Digest};
use zeroize::Zeroizing;

fn data(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap()
}

fn pw(p: &str) -> impl FnOnce() -> Result<Zeroizing<Vec<u8>>, CosignError> + '_ {
    move || Ok(Zeroizing::new(p.as_bytes().to_vec()))
}

const KEYS: &[(&str, &str, &str)] = &[
    ("pemsigstorekey.pem", "hello", "pemsigstorekey.derived.pub"),
    ("pemcosignkey.pem", "hello", "pemcosignkey.derived.pub"),
    (
        "ecdsa_encrypted_private.key",
        "123",
        "ecdsa_encrypted_private.derived.pub",
    ),
    (
        "ed25519_encrypted_private.key",
        "123",
        "ed25519_encrypted_private.derived.pub",
    ),
    (
        "rsa_encrypted_private.key",
        "123",
        "rsa_encrypted_private.derived.pub",
    ),
    (
        "cosign_generated_encrypted_empty_private.key",
        "",
        "cosign_generated_encrypted_empty_private.derived.pub",
    ),
];

#[test]
fn vector_keys_decrypt_and_match_public_keys() {
    for (key, password, public) in KEYS {
        let k =
            PrivateKey::from_pem(&data(key), pw(password)).unwrap_or_else(|e| panic!("{key}: {e}"));
        let expected = PublicKey::from_pem(&data(public)).unwrap();
        assert_eq!(k.public_key(), expected, "{key}");
        assert_eq!(
            k.public_key().to_spki_der().unwrap(),
            expected.to_spki_der().unwrap()
        );
        // Signs and verifies with its own public key.
        let sig = k.sign(b"hello").unwrap();
        assert!(expected.verify(b"hello", &sig), "{key}");
        assert!(!expected.verify(b"hellO", &sig), "{key}");
    }
}

#[test]
fn wrong_password_is_a_clear_error() {
    for (key, _, _) in KEYS {
        let e = PrivateKey::from_pem(&data(key), pw("wrong")).unwrap_err();
        assert!(matches!(e, CosignError::WrongPassword), "{key}: {e}");
    }
}

#[test]
fn sec1_plaintext_in_encrypted_key_is_rejected() {
    let e = PrivateKey::from_pem(&data("pemcosigneckey.pem"), pw("hello")).unwrap_err();
    assert!(e.to_string().contains("SEC1"), "{e}");
}

#[test]
fn malformed_pem_is_rejected() {
    let text = data("pemsigstorekey.pem");
    // Truncated: no END line.
    let cut = &text[..text.len() / 2];
    let e = PrivateKey::from_pem(cut, pw("hello")).unwrap_err();
    assert!(matches!(e, CosignError::Pem(_)), "{e}");
    // Wrong kind.
    let e = PrivateKey::from_pem(&data("cosign-test.pub"), pw("")).unwrap_err();
    assert!(matches!(e, CosignError::PemLabel { .. }), "{e}");
    let e = PublicKey::from_pem(&text).unwrap_err();
    assert!(matches!(e, CosignError::PemLabel { .. }), "{e}");
    // Non-canonical base64 (trailing bits set before the padding).
    let bad = "-----BEGIN PUBLIC KEY-----\nQR==\n-----END PUBLIC KEY-----\n";
    assert!(matches!(
        PublicKey::from_pem(bad).unwrap_err(),
        CosignError::Pem(_)
    ));
    // Corrupt body: valid base64 but not the JSON envelope.
    let corrupt = keys::encode_pem(keys::SIGSTORE_KEY_LABEL, b"{not json");
    let e = PrivateKey::from_pem(&corrupt, pw("")).unwrap_err();
    assert!(matches!(e, CosignError::EncryptedKey(_)), "{e}");
    // Garbage.
    assert!(PrivateKey::from_pem("hello", pw("")).is_err());
}

#[test]
fn our_key_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("cosign");
    let prefix = prefix.to_str().unwrap();
    let public = keys::generate_key_pair(prefix, b"s3cret", false).unwrap();
    let key_text = std::fs::read_to_string(format!("{prefix}.key")).unwrap();
    assert!(key_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    let json = keys::parse_pem(&key_text).unwrap().der;
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["kdf"]["params"]["N"], 65536);
    assert_eq!(
        B64.decode(v["kdf"]["salt"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        B64.decode(v["cipher"]["nonce"].as_str().unwrap())
            .unwrap()
            .len(),
        24
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(format!("{prefix}.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let k = PrivateKey::from_pem(&key_text, pw("s3cret")).unwrap();
    assert_eq!(k.public_key(), public);
    let pub_text = std::fs::read_to_string(format!("{prefix}.pub")).unwrap();
    assert_eq!(PublicKey::from_pem(&pub_text).unwrap(), public);
    assert!(matches!(
        PrivateKey::from_pem(&key_text, pw("nope")).unwrap_err(),
        CosignError::WrongPassword
    ));
    // No overwrite without force; force overwrites.
    let e = keys::generate_key_pair(prefix, b"x", false).unwrap_err();
    assert!(matches!(e, CosignError::Exists(_)), "{e}");
    let p2 = keys::generate_key_pair(prefix, b"x", true).unwrap();
    assert_ne!(p2, public);
}

fn vector_layer() -> (Descriptor, Vec<u8>) {
    let payload = data("keyed-simplesigning.payload.json").into_bytes();
    let mut d = Descriptor::for_bytes(legacy::SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    d.annotations = Some(BTreeMap::from([(
        legacy::SIGNATURE_ANNOTATION.to_owned(),
        data("keyed-simplesigning.sig.b64").trim().to_owned(),
    )]));
    (d, payload)
}

const VECTOR_DIGEST: &str =
    "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";

#[test]
fn keyed_simplesigning_vector_verifies() {
    let (layer, payload) = vector_layer();
    assert_eq!(payload.len(), 248);
    let trust = Trust::key(PublicKey::from_pem(&data("keyed-simplesigning.pub")).unwrap());
    let digest = Digest::parse(VECTOR_DIGEST).unwrap();
    let v =
        legacy::check_signature_layer(&layer, &payload, &digest, &trust, &BTreeMap::new()).unwrap();
    assert_eq!(
        v["critical"]["identity"]["docker-reference"],
        "registry-testing.svc.lan/busybox"
    );
    // The vector manifest's layer is the one we build.
    let m: sigil_oci::ImageManifest =
        serde_json::from_str(&data("keyed-simplesigning.sig-manifest.json")).unwrap();
    assert_eq!(m.layers[0], layer);
    // Our config for that layer is byte-identical to the vector.
    assert_eq!(
        legacy::ggcr_config(&m.layers),
        data("keyed-simplesigning.sig-config.json")
            .trim_end()
            .as_bytes()
    );
    // Our payload serialisation matches the vector byte for byte.
    assert_eq!(
        payload::simple_signing(
            "registry-testing.svc.lan/busybox",
            &digest,
            &BTreeMap::new()
        ),
        payload
    );
}

#[test]
fn keyed_simplesigning_tampering_fails() {
    let (layer, payload) = vector_layer();
    let trust = Trust::key(PublicKey::from_pem(&data("keyed-simplesigning.pub")).unwrap());
    let digest = Digest::parse(VECTOR_DIGEST).unwrap();
    let none = BTreeMap::new();
    // Every single-byte change of the payload.
    for i in 0..payload.len() {
        let mut p = payload.clone();
        p[i] ^= 0x01;
        assert_eq!(
            legacy::check_signature_layer(&layer, &p, &digest, &trust, &none).unwrap_err(),
            SignatureFailure::BadSignature,
            "byte {i}"
        );
    }
    // A changed signature.
    let sig = B64
        .decode(data("keyed-simplesigning.sig.b64").trim())
        .unwrap();
    for i in [0, 5, 10, sig.len() - 1] {
        let mut s = sig.clone();
        s[i] ^= 0x01;
        let mut l = layer.clone();
        l.annotations = Some(BTreeMap::from([(
            legacy::SIGNATURE_ANNOTATION.to_owned(),
            B64.encode(&s),
        )]));
        assert!(legacy::check_signature_layer(&l, &payload, &digest, &trust, &none).is_err());
    }
    // Another image digest: replay.
    let other = Digest::sha256(b"other");
    assert!(matches!(
        legacy::check_signature_layer(&layer, &payload, &other, &trust, &none).unwrap_err(),
        SignatureFailure::DigestMismatch { .. }
    ));
    // Other keys.
    for k in [
        "cosign-test.pub",
        "pemsigstorekey.derived.pub",
        "rsa_encrypted_private.derived.pub",
    ] {
        let t = Trust::key(PublicKey::from_pem(&data(k)).unwrap());
        assert_eq!(
            legacy::check_signature_layer(&layer, &payload, &digest, &t, &none).unwrap_err(),
            SignatureFailure::BadSignature,
            "{k}"
        );
    }
    // Required annotation absent.
    let req = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    assert!(matches!(
        legacy::check_signature_layer(&layer, &payload, &digest, &trust, &req).unwrap_err(),
        SignatureFailure::Annotation { .. }
    ));
}

#[test]
fn payload_with_annotations_and_capitalised_digest_key() {
    let d = Digest::sha256(b"x");
    let a = BTreeMap::from([
        ("b".to_owned(), "2".to_owned()),
        ("a".to_owned(), "1".to_owned()),
    ]);
    let p = payload::simple_signing("r.example/x", &d, &a);
    let s = String::from_utf8(p.clone()).unwrap();
    assert!(
        s.ends_with(r#""type":"cosign container image signature"},"optional":{"a":"1","b":"2"}}"#)
    );
    let c = payload::parse_simple_signing(&p).unwrap();
    assert_eq!(c.optional, a);
    let cap = s.replace("docker-manifest-digest", "Docker-manifest-digest");
    assert_eq!(
        payload::parse_simple_signing(cap.as_bytes())
            .unwrap()
            .digest,
        d.to_string()
    );
}

#[test]
fn dsse_attestation_layer_checks() {
    assert_eq!(payload::pae("t", b"ab"), b"DSSEv1 1 t 2 ab");
    let key = PrivateKey::from_pem(&data("pemsigstorekey.pem"), pw("hello")).unwrap();
    let trust = Trust::key(key.public_key());
    let digest = Digest::sha256(b"image");
    let uri = payload::predicate_type_uri("slsaprovenance1").unwrap();
    let st = payload::statement("r/x", &digest, &uri, serde_json::json!({"a": 1}));
    let sig = key
        .sign(&payload::pae(payload::INTOTO_PAYLOAD_TYPE, &st))
        .unwrap();
    let env = serde_json::json!({
        "payloadType": payload::INTOTO_PAYLOAD_TYPE,
        "payload": B64.encode(&st),
        "signatures": [{"keyid": "", "sig": B64.encode(&sig)}],
    });
    let blob = serde_json::to_vec(&env).unwrap();
    let layer = Descriptor::for_bytes(legacy::DSSE_MEDIA_TYPE, &blob);
    let a = legacy::check_attestation_layer(&layer, &blob, &digest, &trust, Some(&uri)).unwrap();
    assert_eq!(a.predicate_type, "https://slsa.dev/provenance/v1");
    assert!(matches!(
        legacy::check_attestation_layer(
            &layer,
            &blob,
            &digest,
            &trust,
            Some("https://spdx.dev/Document")
        )
        .unwrap_err(),
        SignatureFailure::PredicateType { .. }
    ));
    assert!(matches!(
        legacy::check_attestation_layer(&layer, &blob, &Digest::sha256(b"o"), &trust, None)
            .unwrap_err(),
        SignatureFailure::DigestMismatch { .. }
    ));
    let other = Trust::key(PublicKey::from_pem(&data("cosign-test.pub")).unwrap());
    assert_eq!(
        legacy::check_attestation_layer(&layer, &blob, &digest, &other, None).unwrap_err(),
        SignatureFailure::BadSignature
    );
    // Tampered statement.
    let mut env2 = env;
    env2["payload"] = B64
        .encode(
            st.iter()
                .map(|b| if *b == b'1' { b'2' } else { *b })
                .collect::<Vec<_>>(),
        )
        .into();
    let blob2 = serde_json::to_vec(&env2).unwrap();
    assert_eq!(
        legacy::check_attestation_layer(&layer, &blob2, &digest, &trust, None).unwrap_err(),
        SignatureFailure::BadSignature
    );
}

#[test]
fn predicate_short_names() {
    assert_eq!(
        payload::predicate_type_uri("custom").unwrap(),
        "https://cosign.sigstore.dev/attestation/v1"
    );
    assert_eq!(
        payload::predicate_type_uri("spdxjson").unwrap(),
        "https://spdx.dev/Document"
    );
    assert!(payload::predicate_type_uri("bogus").is_err());
    assert!(payload::now_rfc3339().ends_with('Z'));
}

// Legacy keyless signature (2021 Fulcio leaf, `rekord` Rekor SET bundle) against the production root.

const KW_DIGEST: &str = "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e";

fn kw_layer(sig: &str, cert_pem: &str, bundle: &str) -> Descriptor {
    let payload = data("kubewarden-legacy.payload.json");
    let mut d = Descriptor::for_bytes(legacy::SIMPLE_SIGNING_MEDIA_TYPE, payload.as_bytes());
    d.annotations = Some(BTreeMap::from([
        (legacy::SIGNATURE_ANNOTATION.to_owned(), sig.to_owned()),
        (
            legacy::CERTIFICATE_ANNOTATION.to_owned(),
            cert_pem.to_owned(),
        ),
        (legacy::BUNDLE_ANNOTATION.to_owned(), bundle.to_owned()),
    ]));
    d
}

fn kw_trust(subject: &str, issuer_re: &str, require_sct: bool) -> Trust {
    Trust {
        keys: vec![],
        certificate: Some(legacy::CertificateTrust {
            policy: sigil_sigstore::Policy::Identity {
                subject: sigil_sigstore::Matcher::Exact(subject.into()),
                issuer: sigil_sigstore::Matcher::regex(issuer_re).unwrap(),
            },
            chain: vec![],
            root: Some(
                sigil_sigstore::TrustedRoot::from_json(data("trusted_root.prod.json").as_bytes())
                    .unwrap(),
            ),
            require_sct,
        }),
    }
}

fn kw_check(layer: &Descriptor, payload: &[u8], trust: &Trust) -> Result<(), SignatureFailure> {
    let digest = Digest::parse(KW_DIGEST).unwrap();
    legacy::check_signature_layer(layer, payload, &digest, trust, &BTreeMap::new()).map(|_| ())
}

#[test]
fn kubewarden_legacy_keyless_verifies_and_tampering_fails() {
    let payload = data("kubewarden-legacy.payload.json").into_bytes();
    let sig = data("kubewarden-legacy.sig.b64").trim().to_owned();
    let cert = data("kubewarden-legacy-leaf.pem");
    let bundle = data("kubewarden-legacy.rekor-bundle.json");
    let layer = kw_layer(&sig, &cert, &bundle);
    // The 2021 leaf has no issuer extension: only an issuer matcher accepting "" passes (as cosign).
    let trust = kw_trust("flavio@castelli.me", ".*", false);
    kw_check(&layer, &payload, &trust).unwrap();
    let re = kw_trust("flavio@castelli.me", "^$", false);
    kw_check(&layer, &payload, &re).unwrap();

    // No SCT in a 2021 certificate: an SCT-enforcing verifier fails.
    assert!(matches!(
        kw_check(
            &layer,
            &payload,
            &kw_trust("flavio@castelli.me", ".*", true)
        ),
        Err(SignatureFailure::Sigstore(
            sigil_sigstore::VerifyFailure::SctInvalid(_)
        ))
    ));
    // Another identity / issuer.
    assert!(matches!(
        kw_check(
            &layer,
            &payload,
            &kw_trust("someone@else.example", ".*", false)
        ),
        Err(SignatureFailure::Sigstore(
            sigil_sigstore::VerifyFailure::IdentityMismatch { .. }
        ))
    ));
    assert!(matches!(
        kw_check(
            &layer,
            &payload,
            &kw_trust("flavio@castelli.me", "^https://accounts.google.com$", false)
        ),
        Err(SignatureFailure::Sigstore(
            sigil_sigstore::VerifyFailure::IssuerMismatch { .. }
        ))
    ));
    // Another image digest.
    let other = Digest::sha256(b"other");
    assert!(matches!(
        legacy::check_signature_layer(&layer, &payload, &other, &trust, &BTreeMap::new()),
        Err(SignatureFailure::DigestMismatch { .. })
    ));
    // Every changed byte of the payload.
    for i in 0..payload.len() {
        let mut p = payload.clone();
        p[i] ^= 0x01;
        assert!(kw_check(&layer, &p, &trust).is_err(), "payload byte {i}");
    }
    // Every changed byte of the signature.
    let raw_sig = B64.decode(&sig).unwrap();
    for i in 0..raw_sig.len() {
        let mut s = raw_sig.clone();
        s[i] ^= 0x01;
        let l = kw_layer(&B64.encode(&s), &cert, &bundle);
        assert!(
            kw_check(&l, &payload, &trust).is_err(),
            "signature byte {i}"
        );
    }
    // Changed bytes of the certificate (DER, re-encoded as PEM).
    let der = keys::parse_pem(&cert).unwrap().der;
    for i in (0..der.len()).step_by(3) {
        let mut d = der.clone();
        d[i] ^= 0x01;
        let l = kw_layer(&sig, &keys::encode_pem("CERTIFICATE", &d), &bundle);
        assert!(
            kw_check(&l, &payload, &trust).is_err(),
            "certificate byte {i}"
        );
    }
    // Changed bytes of the SET, and of the signed body / time / index.
    let b: serde_json::Value = serde_json::from_str(&bundle).unwrap();
    let set = B64
        .decode(b["SignedEntryTimestamp"].as_str().unwrap())
        .unwrap();
    for i in 0..set.len() {
        let mut s = set.clone();
        s[i] ^= 0x01;
        let mut nb = b.clone();
        nb["SignedEntryTimestamp"] = B64.encode(&s).into();
        let l = kw_layer(&sig, &cert, &nb.to_string());
        assert!(kw_check(&l, &payload, &trust).is_err(), "SET byte {i}");
    }
    for (k, v) in [
        ("integratedTime", serde_json::json!(1634714718)),
        ("logIndex", serde_json::json!(783608)),
    ] {
        let mut nb = b.clone();
        nb["Payload"][k] = v;
        let l = kw_layer(&sig, &cert, &nb.to_string());
        assert!(matches!(
            kw_check(&l, &payload, &trust),
            Err(SignatureFailure::Sigstore(
                sigil_sigstore::VerifyFailure::SetInvalid(_)
            ))
        ));
    }
    // Without the Rekor bundle, keyless verification has no trusted time.
    let mut l = layer.clone();
    l.annotations
        .as_mut()
        .unwrap()
        .remove(legacy::BUNDLE_ANNOTATION);
    assert!(matches!(
        kw_check(&l, &payload, &trust),
        Err(SignatureFailure::Certificate(_))
    ));

    // Pinned certificate: the SET time makes the expired leaf acceptable; without a root it is checked now.
    let mut pinned = trust;
    pinned.certificate.as_mut().unwrap().policy = sigil_sigstore::Policy::Certificate(der);
    kw_check(&layer, &payload, &pinned).unwrap();
    pinned.certificate.as_mut().unwrap().root = None;
    assert!(matches!(
        kw_check(&layer, &payload, &pinned),
        Err(SignatureFailure::Sigstore(
            sigil_sigstore::VerifyFailure::CertificateExpiredAtSigningTime(_)
        ))
    ));
}

#[test]
fn keyed_bundle_round_trip_and_failures() {
    use sigil_cosign::bundles;
    let key = PrivateKey::generate_p256().unwrap();
    let digest = Digest::sha256(b"image manifest");
    let json = bundles::keyed_bundle(&key, &bundles::sign_statement(&digest)).unwrap();
    let trust = Trust::key(key.public_key());
    let (_, st, pt, time) =
        bundles::check_bundle(&json, &digest, &trust, Some(bundles::SIGN_PREDICATE_TYPE)).unwrap();
    assert_eq!(pt, bundles::SIGN_PREDICATE_TYPE);
    assert_eq!(st["subject"][0]["digest"]["sha256"], digest.encoded());
    assert_eq!(time, None, "no tlog: no trusted time");
    // Another image, another key, another predicate type.
    assert!(bundles::check_bundle(&json, &Digest::sha256(b"x"), &trust, None).is_err());
    let other = Trust::key(PrivateKey::generate_p256().unwrap().public_key());
    assert!(bundles::check_bundle(&json, &digest, &other, None).is_err());
    assert!(matches!(
        bundles::check_bundle(
            &json,
            &digest,
            &trust,
            Some("https://slsa.dev/provenance/v1")
        ),
        Err(SignatureFailure::PredicateType { .. })
    ));
    // A changed statement byte.
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let p = B64
        .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let mut p2 = p;
    let last = p2.len() - 2;
    p2[last] ^= 0x01;
    v["dsseEnvelope"]["payload"] = B64.encode(&p2).into();
    let tampered = serde_json::to_vec(&v).unwrap();
    assert!(bundles::check_bundle(&tampered, &digest, &trust, None).is_err());
    // A keyless policy does not accept a key-only bundle.
    let keyless = kw_trust("flavio@castelli.me", ".*", false);
    assert!(matches!(
        bundles::check_bundle(&json, &digest, &keyless, None),
        Err(SignatureFailure::Sigstore(
            sigil_sigstore::VerifyFailure::MissingMaterial(_)
        ))
    ));
}
