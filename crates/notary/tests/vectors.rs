//! Every envelope and OCI layout in the notation vectors gives the outcome notation's tests state
//! (valid, expired, signing-authority scheme, timestamped, wrong trust store, wrong identity,
//! tampered byte), through the library: trust policies and trust store directories as notation reads
//! them, `verify_signature` with the expected target.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sigil_notary::Check;
use sigil_notary::envelope::{MEDIA_TYPE_COSE, MEDIA_TYPE_JWS};
use sigil_notary::timestamp::verify_token;
use sigil_notary::trustpolicy::{Action, TrustPolicyDocument};
use sigil_notary::truststore::TrustStore;
use sigil_notary::verifier::{
    ExpectedTarget, SignatureVerification, VerifyContext, verify_signature,
};
use sigil_notary::x509::Cert;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn data(p: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(p)).unwrap()
}

/// A trust store directory with `x509/<type>/<name>/<file>` for each entry.
fn store(entries: &[(&str, &str, &str)]) -> (tempfile::TempDir, TrustStore) {
    let dir = tempfile::tempdir().unwrap();
    for (ty, name, file) in entries {
        let d = dir.path().join("x509").join(ty).join(name);
        std::fs::create_dir_all(&d).unwrap();
        let f = Path::new(file).file_name().unwrap();
        std::fs::write(d.join(f), data(file)).unwrap();
    }
    let s = TrustStore::from_dir(dir.path()).unwrap();
    (dir, s)
}

fn policy(json: &str) -> TrustPolicyDocument {
    TrustPolicyDocument::from_json(json.as_bytes()).unwrap()
}

fn simple_policy(
    level: &str,
    stores: &[&str],
    identities: &[&str],
    extra: &str,
) -> TrustPolicyDocument {
    policy(&format!(
        r#"{{"version":"1.0","trustPolicies":[{{"name":"p","registryScopes":["*"],
        "signatureVerification":{{"level":"{level}"{extra}}},
        "trustStores":{},"trustedIdentities":{}}}]}}"#,
        serde_json::to_string(stores).unwrap(),
        serde_json::to_string(identities).unwrap()
    ))
}

fn run(
    mt: &str,
    env: &[u8],
    exp: &ExpectedTarget,
    doc: &TrustPolicyDocument,
    st: &TrustStore,
    now: i64,
) -> SignatureVerification {
    let stmt = doc
        .statement_for(&format!("registry.example/repo@{}", exp.digest))
        .unwrap();
    verify_signature(
        mt,
        env,
        Some(exp),
        &VerifyContext {
            policy: stmt,
            store: st,
            now,
        },
    )
}

fn now() -> i64 {
    sigil_notary::time::now()
}

fn failed(v: &SignatureVerification) -> (Check, String) {
    let f = v
        .failure()
        .unwrap_or_else(|| panic!("expected a failure, got {:?}", v.checks));
    (f.check, f.error.clone().unwrap())
}

fn testdata_target() -> ExpectedTarget {
    ExpectedTarget {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0".into(),
        size: 481,
    }
}

#[test]
fn notation_go_testdata_jws_and_cose() {
    let (_d, st) = store(&[("ca", "test", "notation-go-testdata/leaf.der")]);
    let (_d2, wrong) = store(&[("ca", "test", "notation-e2e/e2e.crt")]);
    let doc = simple_policy("strict", &["ca:test"], &["*"], "");
    for (mt, file) in [
        (MEDIA_TYPE_JWS, "notation-go-testdata/jws_signature.sig"),
        (MEDIA_TYPE_COSE, "notation-go-testdata/cose_signature.sig"),
    ] {
        let env = data(file);
        let v = run(mt, &env, &testdata_target(), &doc, &st, now());
        assert!(v.passed(), "{file}: {:?}", v.checks);
        // Wrong trust store: authenticity.
        let v = run(mt, &env, &testdata_target(), &doc, &wrong, now());
        let (c, e) = failed(&v);
        assert_eq!(c, Check::Authenticity, "{file}");
        assert!(
            e.contains("does not contain any trusted certificate"),
            "{e}"
        );
        // Another artifact: content descriptor mismatch.
        let mut other = testdata_target();
        other.size = 482;
        let (c, e) = failed(&run(mt, &env, &other, &doc, &st, now()));
        assert_eq!(c, Check::Integrity);
        assert!(e.contains("content descriptor mismatch"), "{e}");
        // A changed byte in the protected header, the payload or the signature fails.
        let parsed = sigil_notary::envelope::Envelope::parse(mt, &env).unwrap();
        let needles: Vec<Vec<u8>> = if mt == MEDIA_TYPE_JWS {
            let j: serde_json::Value = serde_json::from_slice(&env).unwrap();
            ["protected", "payload", "signature"]
                .iter()
                .map(|k| j[k].as_str().unwrap().as_bytes().to_vec())
                .collect()
        } else {
            vec![
                parsed.payload.clone(),
                parsed.signature.clone(),
                b"io.cncf.notary.signingTime".to_vec(),
            ]
        };
        for n in &needles {
            let at = env
                .windows(n.len())
                .position(|w| w == n.as_slice())
                .unwrap();
            for off in [0, n.len() / 3, n.len() / 2, n.len() - 2] {
                let mut t = env.clone();
                t[at + off] ^= 0x01;
                let v = run(mt, &t, &testdata_target(), &doc, &st, now());
                assert!(
                    !v.passed(),
                    "{file}: flipping byte {} still verified",
                    at + off
                );
                assert_eq!(failed(&v).0, Check::Integrity);
            }
        }
    }
}

fn mock_target() -> ExpectedTarget {
    ExpectedTarget {
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
        digest: "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e".into(),
        size: 528,
    }
}

fn mock_policy(level: &str) -> TrustPolicyDocument {
    policy(&format!(
        r#"{{"version":"1.0","trustPolicies":[{{"name":"test-statement-name",
        "registryScopes":["registry.acme-rockets.io/software/net-monitor"],
        "signatureVerification":{{"level":"{level}"}},
        "trustStores":["ca:valid-trust-store","signingAuthority:valid-trust-store"],
        "trustedIdentities":["x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"]}}]}}"#
    ))
}

fn run_mock(file: &str, doc: &TrustPolicyDocument, st: &TrustStore) -> SignatureVerification {
    let stmt = doc
        .statement_for(&format!(
            "registry.acme-rockets.io/software/net-monitor@{}",
            mock_target().digest
        ))
        .unwrap();
    verify_signature(
        MEDIA_TYPE_JWS,
        &data(file),
        Some(&mock_target()),
        &VerifyContext {
            policy: stmt,
            store: st,
            now: now(),
        },
    )
}

#[test]
fn notation_go_mock_levels() {
    let (_d, st) = store(&[
        (
            "ca",
            "valid-trust-store",
            "notation-go-mock/NotationTestRoot.pem",
        ),
        (
            "signingAuthority",
            "valid-trust-store",
            "notation-go-mock/NotationTestRoot.pem",
        ),
    ]);
    for level in ["strict", "permissive", "audit"] {
        let doc = mock_policy(level);
        assert!(
            run_mock("notation-go-mock/ca_valid_sig_env.json", &doc, &st).passed(),
            "{level}"
        );
        assert!(
            run_mock("notation-go-mock/sa_valid_sig_env.json", &doc, &st).passed(),
            "{level}"
        );
        let v = run_mock("notation-go-mock/ca_expired_sig_env.json", &doc, &st);
        if level == "strict" {
            let (c, e) = failed(&v);
            assert_eq!(c, Check::Expiry);
            assert!(
                e.contains("digital signature has expired on \"Fri, 29 Jul 2022 23:59:00 +0000\""),
                "{e}"
            );
        } else {
            assert!(v.passed(), "{level}: {:?}", v.checks);
            assert!(
                v.warnings()
                    .iter()
                    .any(|w| w.contains("expiry") && w.contains("expired"))
            );
        }
    }
    // The signing-authority scheme needs a signingAuthority store; a ca store is not enough.
    let (_d2, ca_only) = store(&[(
        "ca",
        "valid-trust-store",
        "notation-go-mock/NotationTestRoot.pem",
    )]);
    let doc = policy(
        r#"{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],
        "signatureVerification":{"level":"strict"},"trustStores":["ca:valid-trust-store"],"trustedIdentities":["*"]}]}"#,
    );
    let stmt = doc.statement_for("r.example/x@sha256:aa").unwrap();
    let ctx = VerifyContext {
        policy: stmt,
        store: &ca_only,
        now: now(),
    };
    let v = verify_signature(
        MEDIA_TYPE_JWS,
        &data("notation-go-mock/sa_valid_sig_env.json"),
        Some(&mock_target()),
        &ctx,
    );
    assert_eq!(failed(&v).0, Check::Authenticity);
    assert!(
        verify_signature(
            MEDIA_TYPE_JWS,
            &data("notation-go-mock/ca_valid_sig_env.json"),
            Some(&mock_target()),
            &ctx
        )
        .passed()
    );
    // A trusted identity that does not match the leaf.
    let doc = policy(
        r#"{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],
        "signatureVerification":{"level":"strict"},"trustStores":["ca:valid-trust-store"],
        "trustedIdentities":["x509.subject:CN=Someone Else,O=Notary,ST=WA,C=US"]}]}"#,
    );
    let stmt = doc.statement_for("r.example/x@sha256:aa").unwrap();
    let v = verify_signature(
        MEDIA_TYPE_JWS,
        &data("notation-go-mock/ca_valid_sig_env.json"),
        Some(&mock_target()),
        &VerifyContext {
            policy: stmt,
            store: &ca_only,
            now: now(),
        },
    );
    let (c, e) = failed(&v);
    assert_eq!(c, Check::Authenticity);
    assert!(
        e.contains("does not match the X.509 trusted identities"),
        "{e}"
    );
}

/// The envelope blob of an e2e layout (the signature manifest's single layer).
fn layout_envelope(layout: &str) -> (String, Vec<u8>) {
    let dir = data_dir().join("notation-e2e/oci_layout").join(layout);
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    for m in idx["manifests"].as_array().unwrap() {
        let d = m["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let b: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(d)).unwrap())
                .unwrap();
        if b.get("subject").is_some() {
            let l = &b["layers"][0];
            let ld = l["digest"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap();
            return (
                l["mediaType"].as_str().unwrap().to_owned(),
                std::fs::read(dir.join("blobs/sha256").join(ld)).unwrap(),
            );
        }
    }
    panic!("{layout}: no signature manifest");
}

fn e2e_target() -> ExpectedTarget {
    ExpectedTarget {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9".into(),
        size: 517,
    }
}

fn e2e_policy(file: &str) -> TrustPolicyDocument {
    TrustPolicyDocument::from_json(&data(&format!("notation-e2e/trustpolicies/{file}"))).unwrap()
}

#[test]
fn notation_e2e_layouts() {
    let (_a, e2e) = store(&[("ca", "e2e", "notation-e2e/e2e.crt")]);
    let (_b, new_e2e) = store(&[("ca", "e2e", "notation-e2e/new_e2e.crt")]);
    let (_c, expired) = store(&[("ca", "e2e", "notation-e2e/expired_e2e.crt")]);
    let t = e2e_target();
    let (mt, valid) = layout_envelope("e2e-valid-signature");
    assert!(
        run(
            &mt,
            &valid,
            &t,
            &e2e_policy("trustpolicy.json"),
            &e2e,
            now()
        )
        .passed()
    );
    assert!(
        run(
            &mt,
            &valid,
            &t,
            &e2e_policy("valid_trusted_identity_trustpolicy.json"),
            &e2e,
            now()
        )
        .passed()
    );
    let (c, e) = failed(&run(
        &mt,
        &valid,
        &t,
        &e2e_policy("invalid_trusted_identity_trustpolicy.json"),
        &e2e,
        now(),
    ));
    assert_eq!(c, Check::Authenticity);
    assert!(e.contains("signing certificate from the digital signature does not match the X.509 trusted identities"), "{e}");
    for p in ["trustpolicy.json", "permissive_trustpolicy.json"] {
        assert_eq!(
            failed(&run(&mt, &valid, &t, &e2e_policy(p), &new_e2e, now())).0,
            Check::Authenticity,
            "{p}"
        );
    }

    let (mt, exp) = layout_envelope("e2e-expired-signature");
    assert_eq!(
        failed(&run(
            &mt,
            &exp,
            &t,
            &e2e_policy("trustpolicy.json"),
            &e2e,
            now()
        ))
        .0,
        Check::Expiry
    );
    for p in ["permissive_trustpolicy.json", "audit_trustpolicy.json"] {
        let v = run(&mt, &exp, &t, &e2e_policy(p), &e2e, now());
        assert!(v.passed(), "{p}: {:?}", v.checks);
        assert!(
            v.warnings()
                .iter()
                .any(|w| w.contains("digital signature has expired")),
            "{:?}",
            v.warnings()
        );
    }

    let (mt, inv) = layout_envelope("e2e-invalid-signature");
    assert_eq!(mt, "application/vnd.oci.image.layer.v1.tar");
    for p in [
        "trustpolicy.json",
        "permissive_trustpolicy.json",
        "audit_trustpolicy.json",
    ] {
        assert_eq!(
            failed(&run(&mt, &inv, &t, &e2e_policy(p), &e2e, now())).0,
            Check::Integrity,
            "{p}"
        );
    }
    let skip = e2e_policy("skip_trustpolicy.json");
    let v = run(&mt, &inv, &t, &skip, &e2e, now());
    assert!(v.checks.iter().all(|c| c.action == Action::Skip));

    let (mt, ec) = layout_envelope("e2e-with-expired-cert");
    let (c, e) = failed(&run(
        &mt,
        &ec,
        &t,
        &e2e_policy("trustpolicy.json"),
        &expired,
        now(),
    ));
    assert_eq!(c, Check::AuthenticTimestamp);
    assert!(
        e.contains("O=Internet Widgits Pty Ltd,ST=Some-State,C=AU")
            && e.contains("Tue, 27 Jun 2023 06:10:00 +0000"),
        "{e}"
    );
    for p in ["permissive_trustpolicy.json", "audit_trustpolicy.json"] {
        let v = run(&mt, &ec, &t, &e2e_policy(p), &expired, now());
        assert!(v.passed(), "{p}: {:?}", v.checks);
        assert!(
            v.warnings()
                .iter()
                .any(|w| w.starts_with("authenticTimestamp")),
            "{:?}",
            v.warnings()
        );
    }
}

fn ts_target() -> ExpectedTarget {
    ExpectedTarget {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda".into(),
        size: 0,
    }
}

#[test]
fn globalsign_timestamp_tokens() {
    let root = Cert::parse_many(&data("notation-go-timestamp/tsa_root.cer")).unwrap();
    let wrong_root = Cert::parse_many(&data("notation-e2e/e2e.crt")).unwrap();
    for file in ["jwsWithTimestamp.sig", "jwsExpiredWithTimestamp.sig"] {
        let env = sigil_notary::envelope::Envelope::parse(
            MEDIA_TYPE_JWS,
            &data(&format!("notation-go-timestamp/{file}")),
        )
        .unwrap();
        let token = env.timestamp.clone().unwrap();
        assert_eq!(
            token,
            data(&format!("notation-go-timestamp/{file}.tst.der"))
        );
        // Everything in the token verifies; only the GlobalSign chain's revocation cannot be checked
        // offline (its certificates name OCSP/CRL responders), which notation also reports.
        let e = verify_token(&token, &env.signature, &root)
            .unwrap_err()
            .to_string();
        assert!(e.contains("revocation status is unknown"), "{file}: {e}");
        let e = verify_token(&token, &env.signature, &wrong_root)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not chain to a certificate in the tsa trust store"),
            "{e}"
        );
        let mut other = env.signature.clone();
        other[0] ^= 1;
        let e = verify_token(&token, &other, &root).unwrap_err().to_string();
        assert!(e.contains("messageImprint does not match"), "{e}");
        let mut bad = token.clone();
        let n = bad.len();
        bad[n - 10] ^= 0x40; // inside the signer's signature
        assert!(verify_token(&bad, &env.signature, &root).is_err());
    }
    // Strict with the tsa store: the timestamp is verified, and its unknown revocation fails the
    // authenticTimestamp check; with authenticTimestamp set to "log" the valid signature passes.
    let (_d, st) = store(&[
        (
            "ca",
            "valid-trust-store",
            "notation-go-timestamp/jwsWithTimestamp.sig.cert0.der",
        ),
        (
            "tsa",
            "test-timestamp",
            "notation-go-timestamp/tsa_root.cer",
        ),
    ]);
    let mut t = ts_target();
    let env = data("notation-go-timestamp/jwsWithTimestamp.sig");
    let parsed = sigil_notary::envelope::Envelope::parse(MEDIA_TYPE_JWS, &env).unwrap();
    let payload = sigil_notary::envelope::parse_payload(&parsed.payload).unwrap();
    t.size = payload.size;
    t.media_type = payload.media_type;
    let strict = simple_policy(
        "strict",
        &["ca:valid-trust-store", "tsa:test-timestamp"],
        &["*"],
        r#","verifyTimestamp":"always""#,
    );
    let (c, e) = failed(&run(MEDIA_TYPE_JWS, &env, &t, &strict, &st, now()));
    assert_eq!(c, Check::AuthenticTimestamp);
    assert!(e.contains("revocation status is unknown"), "{e}");
    let logged = simple_policy(
        "strict",
        &["ca:valid-trust-store", "tsa:test-timestamp"],
        &["*"],
        r#","override":{"authenticTimestamp":"log"}"#,
    );
    assert!(run(MEDIA_TYPE_JWS, &env, &t, &logged, &st, now()).passed());
    // Without a tsa store the timestamp is ignored: the signing certificate is valid until 2033.
    let no_tsa = simple_policy("strict", &["ca:valid-trust-store"], &["*"], "");
    assert!(run(MEDIA_TYPE_JWS, &env, &t, &no_tsa, &st, now()).passed());
    // The expired-certificate envelope fails without a timestamp check.
    let (_d2, st2) = store(&[(
        "ca",
        "valid-trust-store",
        "notation-go-timestamp/jwsExpiredWithTimestamp.sig.cert0.der",
    )]);
    let env2 = data("notation-go-timestamp/jwsExpiredWithTimestamp.sig");
    let (c, e) = failed(&run(MEDIA_TYPE_JWS, &env2, &t, &no_tsa, &st2, now()));
    assert_eq!(c, Check::AuthenticTimestamp);
    assert!(e.contains("validity period"), "{e}");
}
