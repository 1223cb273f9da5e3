//! `sigil generate-key-pair|sign|verify|attest|verify-attestation` end to end, against `sigil registry
//! serve` and docker-registry 2.8.2: round trip, wrong key, replayed signature, appending without
//! duplicates, required annotations, attestations with a type filter, request counts; Sigstore bundle
//! referrers (`sign --bundle`/`attest --bundle`, cosign v3 storage) and `--certificate [--certificate-chain]`
//! verification of legacy signatures made with a certificate's key.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::util::*;

const PASSWORD: &str = "correct horse";

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = sigil_command(args);
    cmd.current_dir(dir).env("COSIGN_PASSWORD", PASSWORD);
    run_command(cmd)
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

fn expect_failure(what: &str, o: &Output, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what} should fail:\n{}",
        stderr(o)
    );
    assert!(
        stderr(o).contains(needle),
        "{what}: stderr lacks {needle:?}:\n{}",
        stderr(o)
    );
}

async fn sig_layers(http: &Http, repo: &str, digest: &str, suffix: &str) -> Vec<Value> {
    let tag = format!("sha256-{}.{suffix}", digest.trim_start_matches("sha256:"));
    let (st, _, body) = http.get_manifest(repo, &tag).await;
    assert!(st.is_success(), "{tag}: {st}");
    let m: Value = serde_json::from_slice(&body).unwrap();
    m["layers"].as_array().unwrap().clone()
}

async fn scenario(addr: &str, http: &Http) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    expect_success("generate-key-pair", &run(d, &["generate-key-pair"]));
    // Refuses to overwrite.
    let again = run(d, &["generate-key-pair"]);
    assert!(!again.status.success() && stderr(&again).contains("--force"));
    expect_success(
        "generate-key-pair other",
        &run(d, &["generate-key-pair", "--output-key-prefix", "other"]),
    );

    let img = push_small_image(http, "demo/app", "v1", 11).await;
    let other_img = push_small_image(http, "demo/app", "v2", 12).await;
    let tagged = format!("{addr}/demo/app:v1");
    let by_digest = format!("{addr}/demo/app@{}", img.digest());

    // Sign (tag resolved to digest), twice: the second is a no-op.
    let s1 = expect_success(
        "sign",
        &run(
            d,
            &["sign", "--key", "cosign.key", "-a", "env=prod", &tagged],
        ),
    );
    let s2 = expect_success(
        "sign again",
        &run(
            d,
            &["sign", "--key", "cosign.key", "-a", "env=prod", &tagged],
        ),
    );
    assert_eq!(s1, s2, "re-signing must not change the .sig manifest");
    assert_eq!(
        sig_layers(http, "demo/app", img.digest(), "sig")
            .await
            .len(),
        1
    );

    // Verify by digest: success, cosign-like JSON, few requests.
    let v = run(d, &["verify", "--key", "cosign.pub", "--stats", &by_digest]);
    let out = expect_success("verify", &v);
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 1);
    assert_eq!(
        arr[0]["critical"]["image"]["docker-manifest-digest"],
        img.digest()
    );
    assert_eq!(
        arr[0]["critical"]["type"],
        "cosign container image signature"
    );
    assert_eq!(
        arr[0]["critical"]["identity"]["docker-reference"],
        format!("{addr}/demo/app")
    );
    assert_eq!(arr[0]["optional"]["env"], "prod");
    // .sig manifest + payload, plus the bundle referrers (API, or 404 + fallback tag).
    assert!(requests(&v) <= 4, "verify took {} requests", requests(&v));
    // By tag, with the required annotation.
    expect_success(
        "verify tag -a",
        &run(
            d,
            &["verify", "--key", "cosign.pub", "-a", "env=prod", &tagged],
        ),
    );
    expect_failure(
        "verify -a env=dev",
        &run(
            d,
            &["verify", "--key", "cosign.pub", "-a", "env=dev", &by_digest],
        ),
        "annotation env=dev",
    );
    // Wrong key.
    expect_failure(
        "verify wrong key",
        &run(d, &["verify", "--key", "other.pub", &by_digest]),
        "does not verify",
    );
    // Unsigned image.
    expect_failure(
        "verify unsigned",
        &run(
            d,
            &[
                "verify",
                "--key",
                "cosign.pub",
                &format!("{addr}/demo/app:v2"),
            ],
        ),
        "no signatures found",
    );
    // Keyless needs a trusted root (offline): a clear error.
    let k = run(
        d,
        &[
            "verify",
            "--certificate-identity",
            "x",
            "--certificate-oidc-issuer",
            "y",
            &by_digest,
        ],
    );
    assert!(!k.status.success() && stderr(&k).contains("--trusted-root"));

    // Replay: copy image 1's .sig manifest to image 2's .sig tag.
    let tag1 = format!("sha256-{}.sig", img.digest().trim_start_matches("sha256:"));
    let tag2 = format!(
        "sha256-{}.sig",
        other_img.digest().trim_start_matches("sha256:")
    );
    let (_, ct, body) = http.get_manifest("demo/app", &tag1).await;
    http.push_manifest("demo/app", &tag2, &media_type_of(&ct), &body)
        .await;
    expect_failure(
        "verify replayed",
        &run(
            d,
            &[
                "verify",
                "--key",
                "cosign.pub",
                &format!("{addr}/demo/app:v2"),
            ],
        ),
        "replayed",
    );

    // A second signer appends a layer; both keys verify.
    expect_success(
        "sign other",
        &run(d, &["sign", "--key", "other.key", &by_digest]),
    );
    assert_eq!(
        sig_layers(http, "demo/app", img.digest(), "sig")
            .await
            .len(),
        2
    );
    for k in ["cosign.pub", "other.pub"] {
        let o = run(d, &["verify", "--key", k, "--stats", &by_digest]);
        expect_success(k, &o);
        assert!(requests(&o) <= 5, "{k}: {} requests", requests(&o));
    }

    // Signature repository.
    expect_success("sign --sig repo", &{
        let mut c = sigil_command(&["sign", "--key", "cosign.key", &by_digest]);
        c.current_dir(d)
            .env("COSIGN_PASSWORD", PASSWORD)
            .env("COSIGN_REPOSITORY", format!("{addr}/sigs"));
        run_command(c)
    });
    assert_eq!(sig_layers(http, "sigs", img.digest(), "sig").await.len(), 1);
    expect_success(
        "verify --signature-repository",
        &run(
            d,
            &[
                "verify",
                "--key",
                "cosign.pub",
                "--signature-repository",
                &format!("{addr}/sigs"),
                &by_digest,
            ],
        ),
    );

    // Attestations.
    std::fs::write(d.join("prov.json"), br#"{"builder":{"id":"test"}}"#).unwrap();
    expect_success(
        "attest",
        &run(
            d,
            &[
                "attest",
                "--key",
                "cosign.key",
                "--predicate",
                "prov.json",
                "--type",
                "slsaprovenance1",
                &tagged,
            ],
        ),
    );
    std::fs::write(d.join("note.txt"), b"hello").unwrap();
    expect_success(
        "attest custom",
        &run(
            d,
            &[
                "attest",
                "--key",
                "cosign.key",
                "--predicate",
                "note.txt",
                &by_digest,
            ],
        ),
    );
    assert_eq!(
        sig_layers(http, "demo/app", img.digest(), "att")
            .await
            .len(),
        2
    );
    let va = run(
        d,
        &[
            "verify-attestation",
            "--key",
            "cosign.pub",
            "--type",
            "slsaprovenance1",
            "--stats",
            &by_digest,
        ],
    );
    let out = String::from_utf8(expect_success("verify-attestation", &va)).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["statement"]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(lines[0]["statement"]["predicate"]["builder"]["id"], "test");
    assert_eq!(
        lines[0]["statement"]["subject"][0]["digest"]["sha256"],
        img.digest().trim_start_matches("sha256:")
    );
    let all = run(
        d,
        &["verify-attestation", "--key", "cosign.pub", &by_digest],
    );
    assert_eq!(
        String::from_utf8(expect_success("all", &all))
            .unwrap()
            .lines()
            .count(),
        2
    );
    expect_failure(
        "verify-attestation --type spdx",
        &run(
            d,
            &[
                "verify-attestation",
                "--key",
                "cosign.pub",
                "--type",
                "spdx",
                &by_digest,
            ],
        ),
        "predicate type",
    );
    expect_failure(
        "verify-attestation wrong key",
        &run(d, &["verify-attestation", "--key", "other.pub", &by_digest]),
        "does not verify",
    );
}

#[tokio::test]
async fn sign_verify_attest_sigil_registry() {
    let reg = SigilRegistry::start_default();
    scenario(&reg.addr(), &reg.http()).await;
}

#[tokio::test]
async fn sign_verify_attest_docker_registry() {
    let Some(reg) = DockerRegistry::start(false) else {
        return;
    };
    scenario(&reg.addr(), &reg.http()).await;
}

#[test]
fn no_password_without_terminal_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = sigil_command(&["generate-key-pair"]);
    cmd.current_dir(dir.path())
        .env_remove("COSIGN_PASSWORD")
        .stdin(std::process::Stdio::null());
    let o = run_command(cmd);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("COSIGN_PASSWORD"), "{}", stderr(&o));
    assert!(!dir.path().join("cosign.key").exists());
}

async fn bundle_scenario(addr: &str, http: &Http) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    expect_success("generate-key-pair", &run(d, &["generate-key-pair"]));
    expect_success(
        "generate-key-pair other",
        &run(d, &["generate-key-pair", "--output-key-prefix", "other"]),
    );
    let img = push_small_image(http, "demo/bundled", "v1", 21).await;
    let tagged = format!("{addr}/demo/bundled:v1");
    let by_digest = format!("{addr}/demo/bundled@{}", img.digest());

    // sign --bundle: a referrer manifest as cosign v3 writes it.
    let s = expect_success(
        "sign --bundle",
        &run(d, &["sign", "--bundle", "--key", "cosign.key", &tagged]),
    );
    let referrer = String::from_utf8(s).unwrap().trim().to_owned();
    let (st, _, body) = http.get_manifest("demo/bundled", &referrer).await;
    assert!(st.is_success(), "{referrer}: {st}");
    let m: Value = serde_json::from_slice(&body).unwrap();
    let bt = "application/vnd.dev.sigstore.bundle.v0.3+json";
    assert_eq!(m["artifactType"], bt);
    assert_eq!(m["config"]["artifactType"], bt);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(m["layers"][0]["mediaType"], bt);
    assert_eq!(m["subject"]["digest"], img.digest());
    assert_eq!(
        m["annotations"]["dev.sigstore.bundle.content"],
        "dsse-envelope"
    );
    assert_eq!(
        m["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let (st, blob) = http.get_blob("demo/bundled", layer).await;
    assert!(st.is_success());
    let b: Value = serde_json::from_slice(&blob).unwrap();
    assert_eq!(b["mediaType"], bt);
    assert!(b["verificationMaterial"]["publicKey"]["hint"].is_string());
    assert_eq!(
        b["verificationMaterial"]["tlogEntries"],
        serde_json::json!([])
    );

    // verify --key finds the bundle (no legacy .sig exists).
    let v = run(d, &["verify", "--key", "cosign.pub", "--stats", &by_digest]);
    let out = expect_success("verify bundle", &v);
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 1);
    assert_eq!(
        arr[0]["predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
    assert_eq!(
        arr[0]["subject"][0]["digest"]["sha256"],
        img.digest().trim_start_matches("sha256:")
    );
    eprintln!("verify (bundle) requests: {}", requests(&v));
    assert!(requests(&v) <= 7, "verify took {} requests", requests(&v));
    expect_failure(
        "verify bundle wrong key",
        &run(d, &["verify", "--key", "other.pub", &by_digest]),
        "signature invalid",
    );

    // attest --bundle, then verify-attestation (with and without --type); sign bundles are not attestations.
    std::fs::write(d.join("prov.json"), br#"{"builder":{"id":"bundled"}}"#).unwrap();
    expect_success(
        "attest --bundle",
        &run(
            d,
            &[
                "attest",
                "--bundle",
                "--key",
                "cosign.key",
                "--predicate",
                "prov.json",
                "--type",
                "slsaprovenance1",
                &by_digest,
            ],
        ),
    );
    for args in [vec!["--type", "slsaprovenance1"], vec![]] {
        let mut a = vec!["verify-attestation", "--key", "cosign.pub"];
        a.extend(args.iter().copied());
        a.push(&by_digest);
        let out =
            String::from_utf8(expect_success("verify-attestation bundle", &run(d, &a))).unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}");
        assert_eq!(
            lines[0]["statement"]["predicate"]["builder"]["id"],
            "bundled"
        );
    }
    expect_failure(
        "verify-attestation bundle --type spdx",
        &run(
            d,
            &[
                "verify-attestation",
                "--key",
                "cosign.pub",
                "--type",
                "spdx",
                &by_digest,
            ],
        ),
        "predicate type",
    );
    // verify still sees exactly the one signature bundle.
    let out = expect_success(
        "verify after attest",
        &run(d, &["verify", "--key", "cosign.pub", &by_digest]),
    );
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 1);

    // A legacy signature as well: both are reported.
    expect_success(
        "sign legacy",
        &run(d, &["sign", "--key", "cosign.key", &by_digest]),
    );
    let out = expect_success(
        "verify both",
        &run(d, &["verify", "--key", "cosign.pub", &by_digest]),
    );
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 2);
}

/// A CA (self-signed, or signed by `issuer`) and its key.
fn ca(
    cn: &str,
    issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = match issuer {
        Some(i) => p.signed_by(&key, i).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    (cert, rcgen::Issuer::new(p, key))
}

/// An ECDSA P-256 code-signing leaf issued by `issuer`: (certificate PEM, PKCS#8 key PEM).
fn leaf(issuer: &rcgen::Issuer<'_, rcgen::KeyPair>, email: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "signer");
    p.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn certificate_scenario(addr: &str, http: &Http) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (root, root_issuer) = ca("sigil test root", None);
    let (inter, inter_issuer) = ca("sigil test intermediate", Some(&root_issuer));
    let (leaf_pem, leaf_key) = leaf(&inter_issuer, "signer@example.test");
    let (other_pem, _) = leaf(&inter_issuer, "other@example.test");
    let w = |n: &str, c: &str| std::fs::write(d.join(n), c).unwrap();
    w("leaf.pem", &leaf_pem);
    w("leaf.key", &leaf_key);
    w("other.pem", &other_pem);
    w("chain.pem", &format!("{}{}", inter.pem(), root.pem()));
    w("wrong-order.pem", &format!("{}{}", root.pem(), inter.pem()));
    w("root-only.pem", &root.pem());

    let img = push_small_image(http, "demo/certified", "v1", 31).await;
    let by_digest = format!("{addr}/demo/certified@{}", img.digest());
    // The certificate must belong to the key.
    expect_success("generate-key-pair", &run(d, &["generate-key-pair"]));
    let o = run(
        d,
        &[
            "sign",
            "--key",
            "cosign.key",
            "--certificate",
            "leaf.pem",
            &by_digest,
        ],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("not the signing key"),
        "{}",
        stderr(&o)
    );

    expect_success(
        "sign --certificate",
        &run(
            d,
            &[
                "sign",
                "--key",
                "leaf.key",
                "--certificate",
                "leaf.pem",
                "--certificate-chain",
                "chain.pem",
                &by_digest,
            ],
        ),
    );
    let layers = sig_layers(http, "demo/certified", img.digest(), "sig").await;
    assert_eq!(
        layers[0]["annotations"]["dev.sigstore.cosign/certificate"],
        leaf_pem.as_str()
    );
    assert!(layers[0]["annotations"]["dev.sigstore.cosign/chain"].is_string());

    for extra in [vec![], vec!["--certificate-chain", "chain.pem"]] {
        let mut a = vec!["verify", "--certificate", "leaf.pem"];
        a.extend(extra.iter().copied());
        a.push(&by_digest);
        let out = expect_success("verify --certificate", &run(d, &a));
        let arr: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            arr[0]["critical"]["image"]["docker-manifest-digest"],
            img.digest()
        );
    }
    expect_failure(
        "verify --certificate other",
        &run(d, &["verify", "--certificate", "other.pem", &by_digest]),
        "differs from the given certificate",
    );
    expect_failure(
        "verify chain in wrong order",
        &run(
            d,
            &[
                "verify",
                "--certificate",
                "leaf.pem",
                "--certificate-chain",
                "wrong-order.pem",
                &by_digest,
            ],
        ),
        "chain order",
    );
    expect_failure(
        "verify chain missing the intermediate",
        &run(
            d,
            &[
                "verify",
                "--certificate",
                "leaf.pem",
                "--certificate-chain",
                "root-only.pem",
                &by_digest,
            ],
        ),
        "chain order",
    );
    // Option misuse is a clear error.
    let o = run(
        d,
        &["verify", "--certificate-chain", "chain.pem", &by_digest],
    );
    assert!(!o.status.success() && stderr(&o).contains("--certificate"));
}

#[tokio::test]
async fn bundles_and_certificates_sigil_registry() {
    let reg = SigilRegistry::start_default();
    bundle_scenario(&reg.addr(), &reg.http()).await;
    certificate_scenario(&reg.addr(), &reg.http()).await;
}

#[tokio::test]
async fn bundles_and_certificates_docker_registry() {
    let Some(reg) = DockerRegistry::start(false) else {
        return;
    };
    bundle_scenario(&reg.addr(), &reg.http()).await;
    certificate_scenario(&reg.addr(), &reg.http()).await;
}

fn vector(dir: &str, name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir)
        .join("tests/data")
        .join(name)
}

fn vector_text(dir: &str, name: &str) -> String {
    std::fs::read_to_string(vector(dir, name)).unwrap()
}

/// Keyless verification of the published vectors stored in a registry: the 2021 kubewarden legacy `.sig`
/// (certificate + Rekor SET annotations) and the cosign v3 kubewarden-controller bundle as a referrer.
/// The images themselves are absent: verification by digest needs only the signatures.
#[tokio::test]
async fn keyless_vectors_sigil_registry() {
    let reg = SigilRegistry::start_default();
    let (addr, http) = (reg.addr(), reg.http());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = vector("cosign", "trusted_root.prod.json")
        .display()
        .to_string();

    // Legacy .sig layer.
    let repo = "kubewarden/disallow-service-nodeport";
    let digest = "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e";
    let payload = vector_text("cosign", "kubewarden-legacy.payload.json");
    let pd = http.push_blob(repo, payload.as_bytes()).await;
    let cd = http.push_blob(repo, b"{}").await;
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": 2},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": pd,
            "size": payload.len(),
            "annotations": {
                "dev.cosignproject.cosign/signature": vector_text("cosign", "kubewarden-legacy.sig.b64").trim(),
                "dev.sigstore.cosign/certificate": vector_text("cosign", "kubewarden-legacy-leaf.pem"),
                "dev.sigstore.cosign/bundle": vector_text("cosign", "kubewarden-legacy.rekor-bundle.json"),
            },
        }],
    });
    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    http.push_manifest(
        repo,
        &tag,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&m).unwrap(),
    )
    .await;
    let image = format!("{addr}/{repo}@{digest}");
    let legacy = |id: &str, extra: &[&str]| {
        let mut a = vec![
            "verify",
            "--certificate-identity",
            id,
            "--certificate-oidc-issuer-regexp",
            ".*",
            "--trusted-root",
            &root,
        ];
        a.extend_from_slice(extra);
        a.push(&image);
        run(d, &a)
    };
    let out = expect_success(
        "keyless legacy",
        &legacy("flavio@castelli.me", &["--insecure-ignore-sct"]),
    );
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        arr[0]["critical"]["image"]["docker-manifest-digest"],
        digest
    );
    expect_failure(
        "keyless legacy, SCT required",
        &legacy("flavio@castelli.me", &[]),
        "SCT",
    );
    expect_failure(
        "keyless legacy, other identity",
        &legacy("someone@example.test", &["--insecure-ignore-sct"]),
        "identity mismatch",
    );

    // Bundle referrer (cosign v3).
    let repo = "kubewarden/kubewarden-controller";
    let digest = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
    let bundle = vector_text("sigstore", "kubewarden-controller.bundle_v03.json");
    let bd = http.push_blob(repo, bundle.as_bytes()).await;
    let cd = http.push_blob(repo, b"{}").await;
    let bt = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": bt,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "artifactType": bt, "digest": cd, "size": 2},
        "layers": [{"mediaType": bt, "digest": bd, "size": bundle.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": 1000},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"},
    });
    let body = serde_json::to_vec(&m).unwrap();
    http.push_manifest(
        repo,
        &digest_of(&body),
        "application/vnd.oci.image.manifest.v1+json",
        &body,
    )
    .await;
    let image = format!("{addr}/{repo}@{digest}");
    let kw = |tag: &str| {
        let id = format!(
            "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/{tag}"
        );
        run(
            d,
            &[
                "verify",
                "--certificate-identity",
                &id,
                "--certificate-oidc-issuer",
                "https://token.actions.githubusercontent.com",
                "--trusted-root",
                &root,
                "--stats",
                &image,
            ],
        )
    };
    let v = kw("v1.34.0");
    let out = expect_success("keyless bundle", &v);
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        arr[0]["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    eprintln!("keyless bundle verify requests: {}", requests(&v));
    expect_failure(
        "keyless bundle, other identity",
        &kw("v1.33.0"),
        "identity mismatch",
    );
}
