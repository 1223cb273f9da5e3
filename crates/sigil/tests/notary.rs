//! `sigil notary sign|verify|inspect` end to end: the notation e2e OCI layouts (made by the notation
//! CLI, legacy manifest form under the referrers tag schema) copied into sigil's registry and Debian's
//! docker-registry 2.8.2 give the outcomes notation's e2e suite states; signatures made by
//! `sigil notary sign` (JWS and COSE, both manifest forms, a 3-certificate chain) verify under strict,
//! fail after one changed byte, and match notation's structure field for field; an expired
//! certificate's signature timestamped by a local RFC 3161 TSA verifies under strict only when the
//! TSA root is in the `tsa` store; the policy-engine API admits the trusted signer and rejects another;
//! CRL revocation against a CRL server on 127.0.0.1 (good, revoked, CRL signed by another key,
//! expired, missing, responder down, `revocation: skip`) under strict and permissive, and of the TSA
//! chain (checked at signing, and under authenticTimestamp whatever `revocation` says); bad input
//! gives one clear error line.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SigningKey as _,
};
use serde_json::{Value, json};

use crate::util::*;

const TARGET: &str = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9";

fn vectors() -> PathBuf {
    repo_root().join("crates/notary/tests/data")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn requests(o: &Output) -> u64 {
    stderr(o)
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `requests:` line in {}", stderr(o)))
}

/// A trust store directory `x509/<type>/<name>/` holding the given PEM/DER files.
fn trust_store(dir: &Path, entries: &[(&str, &str, &[u8])]) -> PathBuf {
    let root = dir.join(format!("truststore-{}", fresh_seed()));
    for (i, (ty, name, bytes)) in entries.iter().enumerate() {
        let d = root.join("x509").join(ty).join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("cert{i}.pem")), bytes).unwrap();
    }
    root
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

fn verify(reference: &str, policy: &str, store: &Path) -> Output {
    sigil(&[
        "notary",
        "verify",
        reference,
        "--trust-policy",
        policy,
        "--trust-store",
        &store.display().to_string(),
        "--stats",
    ])
}

fn expect_verified(what: &str, o: &Output) {
    assert!(
        o.status.success() && stdout(o).contains("Successfully verified signature for"),
        "{what}: expected success\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

fn expect_rejected(what: &str, o: &Output, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what}: expected exit 1\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(
        stderr(o).contains(needle),
        "{what}: stderr lacks {needle:?}:\n{}",
        stderr(o)
    );
    assert!(!stdout(o).contains("Successfully verified"), "{what}");
}

/// Copies an e2e layout (the image `v1` and the referrers tag index) into `addr/repo`.
fn copy_layout(layout: &str, addr: &str, repo: &str) {
    let src = vectors().join("notation-e2e/oci_layout").join(layout);
    let tag = TARGET.replace(':', "-");
    for t in ["v1", tag.as_str()] {
        expect_success(
            &format!("copy {layout}:{t}"),
            &sigil(&[
                "copy",
                "--no-progress",
                &format!("oci:{}:{t}", src.display()),
                &format!("{addr}/{repo}:{t}"),
            ]),
        );
    }
}

fn e2e_scenario(addr: &str, api: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cert = |f: &str| std::fs::read(vectors().join("notation-e2e").join(f)).unwrap();
    let e2e = trust_store(d, &[("ca", "e2e", &cert("e2e.crt"))]);
    let new_e2e = trust_store(d, &[("ca", "e2e", &cert("new_e2e.crt"))]);
    let expired = trust_store(d, &[("ca", "e2e", &cert("expired_e2e.crt"))]);
    let pol = |f: &str| {
        vectors()
            .join("notation-e2e/trustpolicies")
            .join(f)
            .display()
            .to_string()
    };
    for l in [
        "e2e-valid-signature",
        "e2e-expired-signature",
        "e2e-invalid-signature",
        "e2e-with-expired-cert",
    ] {
        copy_layout(l, addr, &format!("notary/{l}"));
    }
    let r = |l: &str| format!("{addr}/notary/{l}@{TARGET}");

    let valid = r("e2e-valid-signature");
    let o = verify(&valid, &pol("trustpolicy.json"), &e2e);
    expect_verified("valid/strict", &o);
    assert!(
        stdout(&o)
            .contains("sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"),
        "{}",
        stdout(&o)
    );
    let n = requests(&o);
    if api {
        assert!(
            n <= 4,
            "verify of a digest reference made {n} requests (target <= 4)"
        );
    } else {
        assert!(n <= 5, "verify through the fallback tag made {n} requests");
    }
    expect_verified(
        "valid/identity",
        &verify(
            &valid,
            &pol("valid_trusted_identity_trustpolicy.json"),
            &e2e,
        ),
    );
    expect_rejected(
        "valid/wrong identity",
        &verify(
            &valid,
            &pol("invalid_trusted_identity_trustpolicy.json"),
            &e2e,
        ),
        "signing certificate from the digital signature does not match the X.509 trusted identities",
    );
    for p in ["trustpolicy.json", "permissive_trustpolicy.json"] {
        expect_rejected(
            "valid/new_e2e store",
            &verify(&valid, &pol(p), &new_e2e),
            "authenticity validation failed",
        );
    }

    let exp = r("e2e-expired-signature");
    expect_rejected(
        "expired/strict",
        &verify(&exp, &pol("trustpolicy.json"), &e2e),
        "expiry validation failed",
    );
    for p in ["permissive_trustpolicy.json", "audit_trustpolicy.json"] {
        let o = verify(&exp, &pol(p), &e2e);
        expect_verified(p, &o);
        assert!(
            stdout(&o).contains("digital signature has expired"),
            "{}",
            stdout(&o)
        );
    }

    let inv = r("e2e-invalid-signature");
    for p in [
        "trustpolicy.json",
        "permissive_trustpolicy.json",
        "audit_trustpolicy.json",
    ] {
        expect_rejected(
            p,
            &verify(&inv, &pol(p), &e2e),
            "integrity validation failed",
        );
    }
    let o = verify(&inv, &pol("skip_trustpolicy.json"), &e2e);
    assert!(
        o.status.success()
            && stdout(&o).contains("Trust policy is configured to skip signature verification"),
        "{}",
        stderr(&o)
    );

    let ec = r("e2e-with-expired-cert");
    expect_rejected(
        "expired cert/strict",
        &verify(&ec, &pol("trustpolicy.json"), &expired),
        "authenticTimestamp validation failed",
    );
    for p in ["permissive_trustpolicy.json", "audit_trustpolicy.json"] {
        let o = verify(&ec, &pol(p), &expired);
        expect_verified(p, &o);
        assert!(
            stdout(&o).contains("authenticTimestamp was set to \"log\"")
                && stdout(&o).contains("O=Internet Widgits Pty Ltd,ST=Some-State,C=AU")
                && stdout(&o).contains("Tue, 27 Jun 2023 06:10:00 +0000"),
            "{}",
            stdout(&o)
        );
    }

    // inspect: the legacy-form signature with its certificate, as text and JSON.
    let o = sigil(&["notary", "inspect", &valid, "-o", "json"]);
    let v: Value = serde_json::from_slice(&expect_success("inspect", &o)).unwrap();
    let s = &v["signatures"][0];
    assert_eq!(s["manifestForm"], "legacy");
    assert_eq!(s["mediaType"], "application/jose+json");
    assert_eq!(s["signatureAlgorithm"], "PS256");
    assert_eq!(s["signingTime"], "2023-06-27T05:30:33Z");
    assert_eq!(
        s["certificates"][0]["subject"],
        "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"
    );
    assert_eq!(
        s["certificates"][0]["sha256Fingerprint"],
        "e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9"
    );
    let o = sigil(&["notary", "inspect", &exp]);
    let text = stdout(&o);
    assert!(
        text.contains("expiry: ") && !text.contains("expiry: none"),
        "{text}"
    );
}

#[test]
fn e2e_layouts_on_sigil_registry() {
    let reg = SigilRegistry::start_default();
    e2e_scenario(&reg.addr(), true);
}

#[test]
fn e2e_layouts_on_docker_registry() {
    let Some(reg) = DockerRegistry::start(false) else {
        return;
    };
    e2e_scenario(&reg.addr(), false);
}

// ---- a PKI made in the test ----------------------------------------------------------------------------

struct Pki {
    root_pem: String,
    chain_pem: String,
    key_pem: String,
    chain_der: Vec<Vec<u8>>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Sigil Test");
    p.distinguished_name.push(DnType::StateOrProvinceName, "WA");
    p.distinguished_name.push(DnType::CountryName, "US");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// Root → intermediate → leaf (codeSigning); `leaf_not_after`: Unix seconds.
fn pki(cn: &str, alg: &'static rcgen::SignatureAlgorithm, leaf_not_after: Option<u64>) -> Pki {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let root_params = ca_params(&format!("{cn} Root"));
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, &root_key);
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let int_params = ca_params(&format!("{cn} Intermediate"));
    let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
    let int_issuer = Issuer::new(int_params, &int_key);
    let leaf_key = KeyPair::generate_for(alg).unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.distinguished_name.push(DnType::CommonName, cn);
    lp.distinguished_name
        .push(DnType::OrganizationName, "Sigil Test");
    lp.distinguished_name.push(DnType::LocalityName, "Seattle");
    lp.distinguished_name
        .push(DnType::StateOrProvinceName, "WA");
    lp.distinguished_name.push(DnType::CountryName, "US");
    lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    if let Some(t) = leaf_not_after {
        lp.not_before = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(t - 3600);
        lp.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(t);
    }
    let leaf = lp.signed_by(&leaf_key, &int_issuer).unwrap();
    Pki {
        root_pem: root.pem(),
        chain_pem: format!("{}{}{}", leaf.pem(), int.pem(), root.pem()),
        key_pem: leaf_key.serialize_pem(),
        chain_der: vec![leaf.der().to_vec(), int.der().to_vec(), root.der().to_vec()],
    }
}

fn strict_policy(dir: &Path, stores: &[&str], identity: &str) -> String {
    write(
        dir,
        &format!("policy-{}.json", fresh_seed()),
        &json_bytes(&json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "test", "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": stores, "trustedIdentities": [identity],
            }]
        })),
    )
}

fn sign(dir: &Path, pki: &Pki, reference: &str, extra: &[&str]) -> Output {
    let key = write(
        dir,
        &format!("key-{}.pem", fresh_seed()),
        pki.key_pem.as_bytes(),
    );
    let chain = write(
        dir,
        &format!("chain-{}.pem", fresh_seed()),
        pki.chain_pem.as_bytes(),
    );
    let mut args = vec!["notary", "sign", reference, "--key", &key, "--cert", &chain];
    args.extend_from_slice(extra);
    sigil(&args)
}

fn signature_digest(o: &Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("Pushed the signature to "))
        .and_then(|r| r.rsplit_once('@'))
        .map(|(_, d)| d.trim().to_owned())
        .unwrap_or_else(|| panic!("no signature digest in {}", stdout(o)))
}

async fn round_trip(addr: &str, http: &Http) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let img = push_small_image(http, "signed/app", "v1", fresh_seed()).await;
    let reference = format!("{addr}/signed/app@{}", img.digest());
    let p = pki("sigil signer", &rcgen::PKCS_ECDSA_P256_SHA256, None);
    let other = pki("someone else", &rcgen::PKCS_ECDSA_P384_SHA384, None);
    let store = trust_store(d, &[("ca", "test", p.root_pem.as_bytes())]);
    let wrong_store = trust_store(d, &[("ca", "test", other.root_pem.as_bytes())]);
    let any = strict_policy(d, &["ca:test"], "*");
    let ident = strict_policy(
        d,
        &["ca:test"],
        "x509.subject: CN=sigil signer,O=Sigil Test,ST=WA,C=US",
    );
    let wrong_ident = strict_policy(
        d,
        &["ca:test"],
        "x509.subject: CN=another,O=Sigil Test,ST=WA,C=US",
    );
    let thumbprints: Vec<String> = p.chain_der.iter().map(|c| sha256_hex(c)).collect();

    for (envelope, legacy) in [
        ("jws", true),
        ("cose", false),
        ("jws", false),
        ("cose", true),
    ] {
        let what = format!("{envelope} legacy={legacy}");
        let mut extra = vec![
            "--envelope",
            envelope,
            "--expiry",
            "1d",
            "-a",
            "org.example.note=hello",
        ];
        if legacy {
            extra.push("--legacy-manifest");
        }
        let o = sign(d, &p, &format!("{addr}/signed/app:v1"), &extra);
        expect_success(&what, &o);
        let sig = signature_digest(&o);

        // Structure: the manifest as notation writes it.
        let (st, _, body) = http.get_manifest("signed/app", &sig).await;
        assert!(st.is_success());
        let m: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        if legacy {
            assert!(m.get("artifactType").is_none(), "{what}");
            assert_eq!(
                m["config"]["mediaType"],
                "application/vnd.cncf.notary.signature"
            );
        } else {
            assert_eq!(m["artifactType"], "application/vnd.cncf.notary.signature");
            assert_eq!(
                m["config"]["mediaType"],
                "application/vnd.oci.empty.v1+json"
            );
        }
        assert_eq!(m["config"]["digest"], EMPTY_DIGEST);
        assert_eq!(m["config"]["size"], 2);
        assert_eq!(m["subject"]["digest"], img.digest());
        assert_eq!(
            m["subject"]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        let mt = if envelope == "jws" {
            "application/jose+json"
        } else {
            "application/cose"
        };
        assert_eq!(layers[0]["mediaType"], mt);
        let tp: Vec<String> = serde_json::from_str(
            m["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            tp, thumbprints,
            "{what}: thumbprints are the lowercase SHA-256 of each chain certificate"
        );
        let created = m["annotations"]["org.opencontainers.image.created"]
            .as_str()
            .unwrap();
        assert!(created.ends_with('Z') && created.len() == 20, "{created}");
        assert_eq!(m["annotations"]["org.example.note"], "hello");
        let (_, env) = http
            .get_blob("signed/app", layers[0]["digest"].as_str().unwrap())
            .await;
        check_envelope_structure(envelope, &env, &img, &p);

        let o = verify(&reference, &any, &store);
        expect_verified(&what, &o);
        expect_verified(&what, &verify(&reference, &ident, &store));
        expect_rejected(
            &what,
            &verify(&reference, &wrong_ident, &store),
            "authenticity validation failed",
        );
        expect_rejected(
            &what,
            &verify(&reference, &any, &wrong_store),
            "authenticity validation failed",
        );

        // One changed byte in the envelope (pushed as another signature manifest) fails integrity.
        let tampered_repo = format!("tampered/{envelope}{}", if legacy { "-legacy" } else { "" });
        img.push(http, &tampered_repo, "v1").await;
        let mut bad = env.clone();
        let sig_at = bad.len() - 20; // inside the signature (JWS and COSE both end with it)
        bad[sig_at] ^= 0x01;
        let layer = http.push_blob(&tampered_repo, &bad).await;
        http.push_blob(&tampered_repo, EMPTY_JSON).await;
        let mut m2 = m.clone();
        m2["layers"][0]["digest"] = json!(layer);
        let mbytes = json_bytes(&m2);
        http.push_manifest(
            &tampered_repo,
            &digest_of(&mbytes),
            "application/vnd.oci.image.manifest.v1+json",
            &mbytes,
        )
        .await;
        let tag = img.digest().replace(':', "-");
        let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest_of(&mbytes),
            "size": mbytes.len(), "artifactType": "application/vnd.cncf.notary.signature"}]});
        let ib = json_bytes(&idx);
        http.push_manifest(
            &tampered_repo,
            &tag,
            "application/vnd.oci.image.index.v1+json",
            &ib,
        )
        .await;
        expect_rejected(
            &what,
            &verify(
                &format!("{addr}/{tampered_repo}@{}", img.digest()),
                &any,
                &store,
            ),
            "integrity validation failed",
        );
    }

    // inspect lists the four signatures with their chains.
    let o = sigil(&["notary", "inspect", &reference, "-o", "json"]);
    let v: Value = serde_json::from_slice(&expect_success("inspect", &o)).unwrap();
    let sigs = v["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 4);
    for s in sigs {
        assert_eq!(s["certificates"].as_array().unwrap().len(), 3);
        assert_eq!(s["certificates"][0]["sha256Fingerprint"], thumbprints[0]);
        assert!(s["expiry"].is_string());
        assert_eq!(s["signedArtifact"]["digest"], img.digest());
    }
}

/// The envelope's headers, media types and chain as notation writes them.
fn check_envelope_structure(envelope: &str, env: &[u8], img: &Image, p: &Pki) {
    let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let b64 = base64::engine::general_purpose::STANDARD;
    if envelope == "jws" {
        let j: Value = serde_json::from_slice(env).unwrap();
        let mut keys: Vec<_> = j.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["header", "payload", "protected", "signature"]);
        let h: Value =
            serde_json::from_slice(&b64u.decode(j["protected"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(h["alg"], "ES256");
        assert_eq!(h["cty"], "application/vnd.cncf.notary.payload.v1+json");
        assert_eq!(
            h["crit"],
            json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"])
        );
        assert_eq!(h["io.cncf.notary.signingScheme"], "notary.x509");
        assert!(
            h["io.cncf.notary.signingTime"].is_string() && h["io.cncf.notary.expiry"].is_string()
        );
        let payload: Value =
            serde_json::from_slice(&b64u.decode(j["payload"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(payload["targetArtifact"]["digest"], img.digest());
        assert_eq!(
            payload["targetArtifact"]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let x5c: Vec<Vec<u8>> = j["header"]["x5c"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| b64.decode(c.as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(x5c, p.chain_der);
        assert!(
            j["header"]["io.cncf.notary.signingAgent"]
                .as_str()
                .unwrap()
                .starts_with("sigil/")
        );
        assert_eq!(
            b64u.decode(j["signature"].as_str().unwrap()).unwrap().len(),
            64,
            "raw r||s"
        );
    } else {
        // COSE_Sign1: tag 18, array of 4.
        assert_eq!(&env[..2], &[0xd2, 0x84]);
        let text = String::from_utf8_lossy(env);
        for needle in [
            "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme",
            "notary.x509",
            "io.cncf.notary.signingTime",
            "io.cncf.notary.expiry",
            "io.cncf.notary.signingAgent",
        ] {
            assert!(text.contains(needle), "COSE envelope lacks {needle}");
        }
        for c in &p.chain_der {
            assert!(
                env.windows(c.len()).any(|w| w == c.as_slice()),
                "x5chain certificate missing"
            );
        }
    }
}

#[tokio::test]
async fn sign_round_trip_on_sigil_registry() {
    let reg = SigilRegistry::start_default();
    round_trip(&reg.addr(), &reg.http()).await;
}

#[tokio::test]
async fn sign_round_trip_on_docker_registry() {
    let Some(reg) = DockerRegistry::start(false) else {
        return;
    };
    round_trip(&reg.addr(), &reg.http()).await;
}

// ---- a local RFC 3161 TSA --------------------------------------------------------------------------

fn tlv(tag: u8, c: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if c.len() < 0x80 {
        out.push(c.len() as u8);
    } else {
        let b = c.len().to_be_bytes();
        let skip = b.iter().take_while(|x| **x == 0).count();
        out.push(0x80 | (b.len() - skip) as u8);
        out.extend_from_slice(&b[skip..]);
    }
    out.extend_from_slice(c);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(s: &str) -> Vec<u8> {
    let n: Vec<u64> = s.split('.').map(|x| x.parse().unwrap()).collect();
    let mut out = vec![(n[0] * 40 + n[1]) as u8];
    for &v in &n[2..] {
        let mut stack = vec![(v & 0x7f) as u8];
        let mut v = v >> 7;
        while v > 0 {
            stack.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        stack.reverse();
        out.extend(stack);
    }
    tlv(0x06, &out)
}

/// `(tag, content, whole, rest)`.
fn read(b: &[u8]) -> (u8, &[u8], &[u8], &[u8]) {
    let (len, hdr) = if b[1] < 0x80 {
        (b[1] as usize, 2)
    } else {
        let n = (b[1] & 0x7f) as usize;
        (
            b[2..2 + n]
                .iter()
                .fold(0usize, |a, x| (a << 8) | *x as usize),
            2 + n,
        )
    };
    (b[0], &b[hdr..hdr + len], &b[..hdr + len], &b[hdr + len..])
}

struct Tsa {
    port: u16,
    root_pem: String,
    /// A CRL of the TSA root listing the given serials (the TSA certificate's serial is
    /// [`TSA_SERIAL`]).
    #[allow(clippy::type_complexity)]
    crl: Box<dyn Fn(&[u64]) -> Vec<u8>>,
}

const TSA_SERIAL: u64 = 0x5151;

/// A TSA answering DER TimeStampReq with tokens signed by a P-256 key whose certificate (EKU
/// timeStamping, critical) chains to its own root; `genTime` = now.
fn start_tsa() -> Tsa {
    start_tsa_with(None)
}

/// [`start_tsa`] whose TSA certificate names the CRL distribution point `cdp`.
fn start_tsa_with(cdp: Option<String>) -> Tsa {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = ca_params("Test TSA Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let issuer = Issuer::from_params(&root_params, &root_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.distinguished_name.push(DnType::CommonName, "Test TSA");
    lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    lp.serial_number = Some(rcgen::SerialNumber::from(TSA_SERIAL));
    if let Some(u) = cdp {
        lp.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![u] }];
    }
    let mut eku =
        CustomExtension::from_oid_content(&[2, 5, 29, 37], seq(&[&oid("1.3.6.1.5.5.7.3.8")]));
    eku.set_criticality(true);
    lp.custom_extensions = vec![eku];
    let leaf = lp.signed_by(&key, &issuer).unwrap();
    let leaf_der = leaf.der().to_vec();
    let root_der = root.der().to_vec();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut serial = 1u8;
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = c.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < p + 4 + len {
                        let n = c.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break Some(buf[p + 4..].to_vec());
                }
            };
            let Some(req) = body else { continue };
            serial += 1;
            // TimeStampReq { version, messageImprint, [reqPolicy], [nonce], [certReq] }
            let (_, content, _, _) = read(&req);
            let (_, _, _, rest) = read(content); // version
            let (_, _, imprint, mut rest) = read(rest);
            let mut nonce = None;
            while !rest.is_empty() {
                let (tag, _, whole, r) = read(rest);
                if tag == 0x02 {
                    nonce = Some(whole.to_vec());
                }
                rest = r;
            }
            let now = sigil_notary::time::format_rfc3339(sigil_notary::time::now());
            let gen_time: String = now
                .chars()
                .filter(|c| c.is_ascii_digit())
                .collect::<String>()
                + "Z";
            let mut tst_parts: Vec<Vec<u8>> = vec![
                tlv(0x02, &[1]),
                oid("1.2.3.4.1"),
                imprint.to_vec(),
                tlv(0x02, &[serial]),
                tlv(0x18, gen_time.as_bytes()),
                seq(&[&tlv(0x02, &[1])]),
            ];
            if let Some(n) = nonce {
                tst_parts.push(n);
            }
            let tst = tlv(0x30, &tst_parts.concat());
            let sha = |b: &[u8]| {
                use sha2::Digest as _;
                sha2::Sha256::digest(b).to_vec()
            };
            let attrs = [
                seq(&[
                    &oid("1.2.840.113549.1.9.3"),
                    &tlv(0x31, &oid("1.2.840.113549.1.9.16.1.4")),
                ]),
                seq(&[
                    &oid("1.2.840.113549.1.9.4"),
                    &tlv(0x31, &tlv(0x04, &sha(&tst))),
                ]),
                seq(&[
                    &oid("1.2.840.113549.1.9.16.2.47"),
                    &tlv(0x31, &seq(&[&seq(&[&seq(&[&tlv(0x04, &sha(&leaf_der))])])])),
                ]),
            ]
            .concat();
            let signature = key.sign(&tlv(0x31, &attrs)).unwrap();
            let sha256 = seq(&[&oid("2.16.840.1.101.3.4.2.1")]);
            let signer_info = seq(&[
                &tlv(0x02, &[1]),
                &seq(&[&seq(&[]), &tlv(0x02, &[1])]),
                &sha256,
                &tlv(0xa0, &attrs),
                &seq(&[&oid("1.2.840.10045.4.3.2")]),
                &tlv(0x04, &signature),
            ]);
            let signed_data = seq(&[
                &tlv(0x02, &[3]),
                &tlv(0x31, &sha256),
                &seq(&[
                    &oid("1.2.840.113549.1.9.16.1.4"),
                    &tlv(0xa0, &tlv(0x04, &tst)),
                ]),
                &tlv(0xa0, &[leaf_der.as_slice(), root_der.as_slice()].concat()),
                &tlv(0x31, &signer_info),
            ]);
            let token = seq(&[&oid("1.2.840.113549.1.7.2"), &tlv(0xa0, &signed_data)]);
            let resp = seq(&[&seq(&[&tlv(0x02, &[0])]), &token]);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                resp.len()
            );
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(&resp);
        }
    });
    let crl = move |revoked: &[u64]| {
        let t = sigil_notary::time::now();
        let at = |s: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(s as u64);
        rcgen::CertificateRevocationListParams {
            this_update: at(t - 60),
            next_update: at(t + 3600),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: at(t - 30),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&Issuer::from_params(&root_params, &root_key))
        .unwrap()
        .der()
        .to_vec()
    };
    Tsa {
        port,
        root_pem: root.pem(),
        crl: Box::new(crl),
    }
}

#[tokio::test]
async fn timestamped_expired_certificate() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let addr = reg.addr();
    let tsa = start_tsa();
    let other_tsa = start_tsa();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let img = push_small_image(&http, "ts/app", "v1", fresh_seed()).await;
    let reference = format!("{addr}/ts/app@{}", img.digest());
    let expires = sigil_notary::time::now() as u64 + 4;
    let p = pki("short lived", &rcgen::PKCS_ECDSA_P256_SHA256, Some(expires));
    let root = write(d, "tsa-root.pem", tsa.root_pem.as_bytes());
    let url = format!("http://127.0.0.1:{}/", tsa.port);
    let o = sign(
        d,
        &p,
        &format!("{addr}/ts/app:v1"),
        &["--timestamp-url", &url, "--timestamp-root", &root],
    );
    expect_success("sign with timestamp", &o);
    let o = sigil(&["notary", "inspect", &reference, "-o", "json"]);
    let v: Value = serde_json::from_slice(&expect_success("inspect", &o)).unwrap();
    assert!(
        v["signatures"][0]["timestamp"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // A TSA whose root is not the one given is refused at signing.
    let wrong_root = write(d, "other-root.pem", other_tsa.root_pem.as_bytes());
    let o = sign(
        d,
        &p,
        &format!("{addr}/ts/app:v1"),
        &["--timestamp-url", &url, "--timestamp-root", &wrong_root],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("timestamp"),
        "{}",
        stderr(&o)
    );

    let with_tsa = trust_store(
        d,
        &[
            ("ca", "test", p.root_pem.as_bytes()),
            ("tsa", "tsa", tsa.root_pem.as_bytes()),
        ],
    );
    let other = trust_store(
        d,
        &[
            ("ca", "test", p.root_pem.as_bytes()),
            ("tsa", "tsa", other_tsa.root_pem.as_bytes()),
        ],
    );
    let pol_tsa = strict_policy(d, &["ca:test", "tsa:tsa"], "*");
    let pol_no_tsa = strict_policy(d, &["ca:test"], "*");
    // While the certificate is valid, both pass.
    expect_verified("valid, tsa", &verify(&reference, &pol_tsa, &with_tsa));
    expect_verified("valid, no tsa", &verify(&reference, &pol_no_tsa, &with_tsa));
    while sigil_notary::time::now() as u64 <= expires + 1 {
        std::thread::sleep(Duration::from_millis(250));
    }
    // Expired: strict passes only through the timestamp from a trusted TSA root.
    expect_verified(
        "expired, trusted tsa",
        &verify(&reference, &pol_tsa, &with_tsa),
    );
    expect_rejected(
        "expired, no tsa store",
        &verify(&reference, &pol_no_tsa, &with_tsa),
        "authenticTimestamp validation failed",
    );
    expect_rejected(
        "expired, other tsa root",
        &verify(&reference, &pol_tsa, &other),
        "authenticTimestamp validation failed",
    );
}

// ---- the policy-engine API --------------------------------------------------------------------------

#[tokio::test]
async fn policy_api_admits_trusted_signer_only() {
    use sigil_notary::policy::{
        NotaryAttestor, NotaryPolicyError, verify_attestations_for_policy, verify_for_policy,
    };
    crypto_init();
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let addr = reg.addr();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let signed = push_small_image(&http, "k/signed", "v1", fresh_seed()).await;
    let other_img = push_small_image(&http, "k/other", "v1", fresh_seed()).await;
    let p = pki("kyverno signer", &rcgen::PKCS_ECDSA_P256_SHA256, None);
    let q = pki("untrusted signer", &rcgen::PKCS_ECDSA_P256_SHA256, None);
    expect_success("sign", &sign(d, &p, &format!("{addr}/k/signed:v1"), &[]));
    expect_success(
        "sign other",
        &sign(
            d,
            &q,
            &format!("{addr}/k/other:v1"),
            &["--envelope", "cose"],
        ),
    );
    let client = sigil_client::RegistryClient::new(sigil_client::ClientOptions::default()).unwrap();
    let attestor = NotaryAttestor {
        cert: Some(p.root_pem.clone()),
        ..Default::default()
    };
    let r = sigil_oci::Reference::parse(&format!("{addr}/k/signed@{}", signed.digest())).unwrap();
    let out = verify_for_policy(&client, &r, &attestor).await;
    let v = out.result.unwrap();
    assert_eq!(v.target.digest, signed.digest());
    assert!(out.requests <= 4, "{} requests", out.requests);
    // The leaf alone (certChain style) pins it too.
    let leaf_pem = sigil_sigstore::crypto::pem_encode(&p.chain_der[0], "CERTIFICATE");
    let by_leaf = NotaryAttestor {
        cert_chain: Some(leaf_pem),
        ..Default::default()
    };
    assert!(
        verify_for_policy(&client, &r, &by_leaf)
            .await
            .result
            .is_ok()
    );
    let r2 =
        sigil_oci::Reference::parse(&format!("{addr}/k/other@{}", other_img.digest())).unwrap();
    match verify_for_policy(&client, &r2, &attestor).await.result {
        Err(NotaryPolicyError::Rejected { reasons, .. }) => {
            assert!(reasons[0].contains("authenticity"), "{reasons:?}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(matches!(
        verify_for_policy(&client, &r, &NotaryAttestor::default())
            .await
            .result,
        Err(NotaryPolicyError::NoCertificates)
    ));

    // Attestations: a referrer of the image of type application/vnd.example.sbom, itself signed.
    let sbom = br#"{"bomFormat":"CycloneDX","components":[{"name":"busybox"}]}"#;
    let layer = http.push_blob("k/signed", sbom).await;
    http.push_blob("k/signed", EMPTY_JSON).await;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/json", "digest": layer, "size": sbom.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": signed.digest(), "size": signed.top.bytes.len()},
    });
    let mb = json_bytes(&manifest);
    let md = digest_of(&mb);
    http.push_manifest(
        "k/signed",
        &md,
        "application/vnd.oci.image.manifest.v1+json",
        &mb,
    )
    .await;
    let unsigned =
        verify_attestations_for_policy(&client, &r, "application/vnd.example.sbom", &attestor)
            .await;
    assert!(
        unsigned.result.is_err(),
        "an unsigned attestation must not pass"
    );
    expect_success(
        "sign attestation",
        &sign(d, &p, &format!("{addr}/k/signed@{md}"), &[]),
    );
    let att =
        verify_attestations_for_policy(&client, &r, "application/vnd.example.sbom", &attestor)
            .await
            .result
            .unwrap();
    assert_eq!(att.len(), 1);
    assert_eq!(
        att[0].document["predicate"]["components"][0]["name"],
        "busybox"
    );
    assert_eq!(att[0].document["type"], "application/vnd.example.sbom");
    let bad = NotaryAttestor {
        cert: Some(q.root_pem.clone()),
        ..Default::default()
    };
    assert!(
        verify_attestations_for_policy(&client, &r, "application/vnd.example.sbom", &bad)
            .await
            .result
            .is_err()
    );
}

// ---- bad input ---------------------------------------------------------------------------------------

#[test]
fn bad_input_gives_one_clear_error() {
    let reg = SigilRegistry::start_default();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = pki("signer", &rcgen::PKCS_ECDSA_P256_SHA256, None);
    let q = pki("other", &rcgen::PKCS_ECDSA_P256_SHA256, None);
    let store = trust_store(d, &[("ca", "test", p.root_pem.as_bytes())]);
    let reference = format!("{}/none/app@{TARGET}", reg.addr());
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"version": "1.0", "trustPolicies": [
            {"name": "a", "registryScopes": ["*"], "signatureVerification": {"level": "strict"}, "trustStores": ["ca:test"], "trustedIdentities": ["*"]},
            {"name": "a", "registryScopes": ["r.example/x"], "signatureVerification": {"level": "strict"}, "trustStores": ["ca:test"], "trustedIdentities": ["*"]}]}),
            "`name` \"a\" is used by more than one statement",
        ),
        (
            json!({"version": "1.0", "trustPolicies": [
            {"name": "a", "registryScopes": ["r.example/x:tag"], "signatureVerification": {"level": "strict"}, "trustStores": ["ca:test"], "trustedIdentities": ["*"]}]}),
            "`registryScopes`: \"r.example/x:tag\" is not a valid scope",
        ),
        (
            json!({"version": "1.0", "trustPolicies": [
            {"name": "a", "registryScopes": ["*"], "signatureVerification": {"level": "strict"}, "trustStores": ["tsa"], "trustedIdentities": ["*"]}]}),
            "missing the separator",
        ),
        (
            json!({"version": "1.0", "trustPolicies": [
            {"name": "a", "registryScopes": ["*"], "signatureVerification": {"level": "strict"}, "trustStores": ["ca:test"], "trustedIdentities": ["x509.subject: CN=x"]}]}),
            "must contain C, ST and O",
        ),
        (
            json!({"version": "1.0", "trustPolicies": [
            {"name": "a", "registryScopes": ["*"], "signatureVerification": {"level": "strict", "override": {"integrity": "log"}}, "trustStores": ["ca:test"], "trustedIdentities": ["*"]}]}),
            "integrity cannot be overridden",
        ),
    ];
    for (policy, needle) in cases {
        let path = write(d, &format!("p-{}.json", fresh_seed()), &json_bytes(&policy));
        let o = verify(&reference, &path, &store);
        assert_eq!(o.status.code(), Some(1), "{needle}");
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim().lines().count(),
            1,
            "one line: {}",
            stderr(&o)
        );
    }
    // A key that does not match the leaf certificate.
    let img_ref = format!("{}/none/app:v1", reg.addr());
    let key = write(d, "q.key", q.key_pem.as_bytes());
    let chain = write(d, "p.pem", p.chain_pem.as_bytes());
    let o = sigil(&["notary", "sign", &img_ref, "--key", &key, "--cert", &chain]);
    assert!(!o.status.success());
    // Chain out of order (root first).
    let reversed: String = {
        let c = &p.chain_der;
        [&c[2], &c[1], &c[0]]
            .iter()
            .map(|d| sigil_sigstore::crypto::pem_encode(d, "CERTIFICATE"))
            .collect()
    };
    let http = reg.http();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(push_small_image(&http, "none/app", "v1", fresh_seed()));
    let key = write(d, "p.key", p.key_pem.as_bytes());
    let rev = write(d, "rev.pem", reversed.as_bytes());
    let o = sigil(&["notary", "sign", &img_ref, "--key", &key, "--cert", &rev]);
    assert!(
        !o.status.success() && stderr(&o).contains("self-signed"),
        "{}",
        stderr(&o)
    );
    let o = sigil(&[
        "notary", "sign", &img_ref, "--key", &key, "--cert", &chain, "--expiry", "soon",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--expiry"),
        "{}",
        stderr(&o)
    );
    let o = sigil(&[
        "notary",
        "sign",
        &img_ref,
        "--key",
        &key,
        "--cert",
        &chain,
        "-a",
        "io.cncf.notary.x=1",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("reserved"),
        "{}",
        stderr(&o)
    );
}

/// A CRL server on 127.0.0.1 (std thread): GET `path` → the stored body or 404.
struct CrlServer {
    port: u16,
    files: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
}

impl CrlServer {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>> =
            Default::default();
        let f = files.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let path = text.split(' ').nth(1).unwrap_or("").to_owned();
                let body = f.lock().unwrap().get(&path).cloned();
                let _ = match body {
                    Some(b) => s
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                b.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|_| s.write_all(&b)),
                    None => s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            }
        });
        Self { port, files }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_owned(), body);
    }
}

/// Root → intermediate → leaf whose leaf names `leaf_cdp` and intermediate `int_cdp`; returns the
/// PKI and a CRL maker `(issuer: "int"|"root"|"other", revoked serials, nextUpdate offset)`.
#[allow(clippy::type_complexity)]
fn revocable_pki(
    leaf_cdp: &str,
    int_cdp: &str,
) -> (Pki, Box<dyn Fn(&str, &[u64], i64) -> Vec<u8>>) {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = ca_params("CRL Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut int_params = ca_params("CRL Intermediate");
    int_params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec![int_cdp.to_owned()],
    }];
    let int = int_params
        .signed_by(&int_key, &Issuer::from_params(&root_params, &root_key))
        .unwrap();
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.distinguished_name.push(DnType::CommonName, "CRL Leaf");
    lp.distinguished_name
        .push(DnType::OrganizationName, "Sigil Test");
    lp.distinguished_name
        .push(DnType::StateOrProvinceName, "WA");
    lp.distinguished_name.push(DnType::CountryName, "US");
    lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    lp.serial_number = Some(rcgen::SerialNumber::from(4242u64));
    lp.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec![leaf_cdp.to_owned()],
    }];
    let leaf = lp
        .signed_by(&leaf_key, &Issuer::from_params(&int_params, &int_key))
        .unwrap();
    let pki = Pki {
        root_pem: root.pem(),
        chain_pem: format!("{}{}{}", leaf.pem(), int.pem(), root.pem()),
        key_pem: leaf_key.serialize_pem(),
        chain_der: vec![leaf.der().to_vec(), int.der().to_vec(), root.der().to_vec()],
    };
    let other_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let make = move |who: &str, revoked: &[u64], next: i64| {
        let t = sigil_notary::time::now();
        let at = |s: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(s as u64);
        let p = rcgen::CertificateRevocationListParams {
            this_update: at(t - 7200),
            next_update: at(t + next),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: at(t - 60),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = match who {
            "int" => Issuer::from_params(&int_params, &int_key),
            "root" => Issuer::from_params(&root_params, &root_key),
            _ => Issuer::from_params(&int_params, &other_key),
        };
        p.signed_by(&issuer).unwrap().der().to_vec()
    };
    (pki, Box::new(make))
}

#[tokio::test]
async fn crl_revocation_through_notary_verify() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let addr = reg.addr();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let srv = CrlServer::start();
    let (p, crl) = revocable_pki(&srv.url("/int.crl"), &srv.url("/root.crl"));
    let img = push_small_image(&http, "crl/app", "v1", fresh_seed()).await;
    let reference = format!("{addr}/crl/app@{}", img.digest());
    expect_success("sign", &sign(d, &p, &reference, &[]));
    let store = trust_store(d, &[("ca", "crl", p.root_pem.as_bytes())]);
    let strict = strict_policy(d, &["ca:crl"], "*");
    let permissive = write(
        d,
        "permissive.json",
        &json_bytes(&json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "test", "registryScopes": ["*"],
                "signatureVerification": {"level": "permissive"},
                "trustStores": ["ca:crl"], "trustedIdentities": ["*"],
            }]
        })),
    );
    // Good CRLs (another serial listed) → strict passes.
    srv.put("/int.crl", crl("int", &[7], 3600));
    srv.put("/root.crl", crl("root", &[], 3600));
    expect_verified("good CRLs", &verify(&reference, &strict, &store));
    // The leaf revoked → rejected, naming the certificate and the reason.
    srv.put("/int.crl", crl("int", &[4242], 3600));
    let o = verify(&reference, &strict, &store);
    expect_rejected("revoked", &o, "revocation validation failed");
    assert!(
        stderr(&o).contains("\"CN=CRL Leaf,O=Sigil Test,ST=WA,C=US\" is revoked")
            && stderr(&o).contains("keyCompromise"),
        "{}",
        stderr(&o)
    );
    // A CRL signed by another key → unknown: strict fails, permissive passes with a warning.
    srv.put("/int.crl", crl("other", &[], 3600));
    let o = verify(&reference, &strict, &store);
    expect_rejected("foreign CRL", &o, "revocation status is unknown");
    assert!(stderr(&o).contains("not signed by CA"), "{}", stderr(&o));
    let o = verify(&reference, &permissive, &store);
    expect_verified("foreign CRL, permissive", &o);
    assert!(
        stdout(&o).contains("Warning: revocation was set to \"log\" and failed")
            && stdout(&o).contains("revocation status is unknown"),
        "{}",
        stdout(&o)
    );
    // An expired CRL → unknown.
    srv.put("/int.crl", crl("int", &[], -60));
    let o = verify(&reference, &strict, &store);
    expect_rejected("expired CRL", &o, "expired CRL");
    // The intermediate's CRL missing (404) → unknown.
    srv.put("/int.crl", crl("int", &[], 3600));
    srv.files.lock().unwrap().remove("/root.crl");
    let o = verify(&reference, &strict, &store);
    expect_rejected("missing root CRL", &o, "HTTP status 404");
    assert!(stderr(&o).contains("CRL Intermediate"), "{}", stderr(&o));

    // Responder down: a port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/x.crl", l.local_addr().unwrap().port())
    };
    let (q, _) = revocable_pki(&dead, &dead);
    let img2 = push_small_image(&http, "crl/down", "v1", fresh_seed()).await;
    let reference2 = format!("{addr}/crl/down@{}", img2.digest());
    expect_success("sign", &sign(d, &q, &reference2, &[]));
    let store2 = trust_store(d, &[("ca", "crl", q.root_pem.as_bytes())]);
    let o = verify(&reference2, &strict, &store2);
    expect_rejected("server down", &o, "failed to download CRL");
    assert!(
        stderr(&o).contains("revocation status is unknown"),
        "{}",
        stderr(&o)
    );
    let skip = write(
        d,
        "skip-revocation.json",
        &json_bytes(&json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "test", "registryScopes": ["*"],
                "signatureVerification": {"level": "strict", "override": {"revocation": "skip"}},
                "trustStores": ["ca:crl"], "trustedIdentities": ["*"],
            }]
        })),
    );
    expect_verified("revocation skipped", &verify(&reference2, &skip, &store2));
}

#[tokio::test]
async fn tsa_chain_revocation() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let addr = reg.addr();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let srv = CrlServer::start();
    let tsa = start_tsa_with(Some(srv.url("/tsa.crl")));
    let p = pki("tsa revocation", &rcgen::PKCS_ECDSA_P256_SHA256, None);
    let img = push_small_image(&http, "tsacrl/app", "v1", fresh_seed()).await;
    let reference = format!("{addr}/tsacrl/app@{}", img.digest());
    let root = write(d, "tsa-root.pem", tsa.root_pem.as_bytes());
    let url = format!("http://127.0.0.1:{}/", tsa.port);
    let ts_args = [
        "--timestamp-url",
        url.as_str(),
        "--timestamp-root",
        root.as_str(),
    ];
    // Signing checks the TSA chain: no CRL (404) → unknown → refused.
    let o = sign(d, &p, &reference, &ts_args);
    assert!(
        !o.status.success()
            && stderr(&o).contains("timestamping certificate")
            && stderr(&o).contains("revocation status is unknown"),
        "{}",
        stderr(&o)
    );
    srv.put("/tsa.crl", (tsa.crl)(&[]));
    expect_success(
        "sign with a good TSA CRL",
        &sign(d, &p, &reference, &ts_args),
    );
    let store = trust_store(
        d,
        &[
            ("ca", "test", p.root_pem.as_bytes()),
            ("tsa", "tsa", tsa.root_pem.as_bytes()),
        ],
    );
    let pol = strict_policy(d, &["ca:test", "tsa:tsa"], "*");
    expect_verified("TSA not revoked", &verify(&reference, &pol, &store));
    // The TSA certificate revoked → authenticTimestamp fails, even with `revocation: skip`.
    srv.put("/tsa.crl", (tsa.crl)(&[TSA_SERIAL]));
    let o = verify(&reference, &pol, &store);
    expect_rejected("TSA revoked", &o, "authenticTimestamp validation failed");
    assert!(
        stderr(&o).contains("timestamping certificate with subject \"CN=Test TSA\" is revoked"),
        "{}",
        stderr(&o)
    );
    let skip = write(
        d,
        "tsa-skip.json",
        &json_bytes(&json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "test", "registryScopes": ["*"],
                "signatureVerification": {"level": "strict", "override": {"revocation": "skip"}},
                "trustStores": ["ca:test", "tsa:tsa"], "trustedIdentities": ["*"],
            }]
        })),
    );
    expect_rejected(
        "TSA revoked, revocation skipped",
        &verify(&reference, &skip, &store),
        "is revoked",
    );
    // Without a tsa store the timestamp (and its chain) is not used: the valid signature passes.
    let no_tsa = strict_policy(d, &["ca:test"], "*");
    expect_verified("no tsa store", &verify(&reference, &no_tsa, &store));
}
