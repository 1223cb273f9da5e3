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
