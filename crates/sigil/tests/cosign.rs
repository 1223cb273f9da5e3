//! `sigil generate-key-pair|sign|verify|attest|verify-attestation` end to end, against `sigil registry
//! serve` and docker-registry 2.8.2: round trip, wrong key, replayed signature, appending without
//! duplicates, required annotations, attestations with a type filter, request counts; Sigstore bundle
//! referrers (`sign --bundle`/`attest --bundle`, cosign v3 storage) and `--certificate [--certificate-chain]`
//! verification of legacy signatures made with a certificate's key; cosign gaps: RSA key bundles and
//! RSA certificate chains, `-a` in bundles, `sign --bundle --certificate`, `--certificate` checked
//! against a trusted root's Fulcio CAs, and bundles in a signature repository (`COSIGN_REPOSITORY`).

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

/// Runs sigil in `dir` with `COSIGN_PASSWORD=password` and extra environment variables.
fn run_env(dir: &Path, password: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = sigil_command(args);
    cmd.current_dir(dir).env("COSIGN_PASSWORD", password);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(cmd)
}

/// The bundle JSON of a bundle referrer.
async fn referrer_bundle(http: &Http, repo: &str, referrer: &str) -> (Value, Value) {
    let (st, _, body) = http.get_manifest(repo, referrer).await;
    assert!(st.is_success(), "{repo}@{referrer}: {st}");
    let m: Value = serde_json::from_slice(&body).unwrap();
    let (st, blob) = http
        .get_blob(repo, m["layers"][0]["digest"].as_str().unwrap())
        .await;
    assert!(st.is_success());
    (m, serde_json::from_slice(&blob).unwrap())
}

/// Pushes `bundle` as a bundle referrer (a copy of the manifest `template` as cosign writes it, with
/// its subject) to `repo`; returns its descriptor for a fallback tag index.
async fn push_referrer(http: &Http, repo: &str, template: &Value, bundle: &Value) -> Value {
    let bytes = serde_json::to_vec(bundle).unwrap();
    let bd = http.push_blob(repo, &bytes).await;
    http.push_blob(repo, b"{}").await;
    let mut m = template.clone();
    m["layers"][0]["digest"] = Value::String(bd);
    m["layers"][0]["size"] = Value::from(bytes.len());
    let body = serde_json::to_vec(&m).unwrap();
    let digest = http
        .push_manifest(
            repo,
            &digest_of(&body),
            "application/vnd.oci.image.manifest.v1+json",
            &body,
        )
        .await;
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": body.len(),
        "artifactType": m["artifactType"],
    })
}

/// Writes the referrers fallback tag index `sha256-<hex>` of `subject` (registries without the
/// referrers API, e.g. docker-registry 2.8).
async fn push_fallback_index(http: &Http, repo: &str, subject: &str, manifests: Vec<Value>) {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    http.push_manifest(
        repo,
        &subject.replace(':', "-"),
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).unwrap(),
    )
    .await;
}

/// The RSA test PKI of sigil-sigstore (`crates/sigstore/tests/data/rsa`): root (PKCS#1 v1.5), RSA-PSS
/// intermediate, RSA-2048 leaf with its key.
fn rsa_file(name: &str) -> String {
    vector("sigstore", &format!("rsa/{name}"))
        .display()
        .to_string()
}

/// A trusted_root.json whose Fulcio CA is the RSA test intermediate + root.
fn rsa_trusted_root() -> Value {
    use base64::Engine as _;
    let b64 = |n: &str| {
        let pem = std::fs::read_to_string(rsa_file(n)).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.encode(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
        )
    };
    serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [],
        "certificateAuthorities": [{
            "subject": {"organization": "sigil test", "commonName": "RSA-PSS intermediate"},
            "uri": "http://127.0.0.1:1",
            "certChain": {"certificates": [{"rawBytes": b64("inter.pem")}, {"rawBytes": b64("root.pem")}]},
            "validFor": {"start": "2026-01-01T00:00:00Z"},
        }],
        "ctlogs": [],
        "timestampAuthorities": [],
    })
}

/// Cosign gaps: RSA key bundles (cosign's encrypted RSA key vector) and tampering; `-a` annotations in
/// bundles (statement subject annotations, `verify -a`); `sign --bundle --certificate
/// [--certificate-chain]` with an RSA certificate chain (PKCS#1 v1.5 + PSS), verified pinned, with the
/// chain, and against a trusted root's Fulcio CAs (`--certificate` + `--trusted-root`, no chain);
/// bundles in a signature repository (`COSIGN_REPOSITORY` / `--signature-repository`).
async fn cosign_gaps_scenario(addr: &str, http: &Http) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    expect_success("generate-key-pair", &run(d, &["generate-key-pair"]));
    let rsa_key = vector("cosign", "rsa_encrypted_private.key")
        .display()
        .to_string();
    let rsa_pub = vector("cosign", "rsa_encrypted_private.derived.pub")
        .display()
        .to_string();
    let bt = "application/vnd.dev.sigstore.bundle.v0.3+json";

    // 1. RSA key bundle: cosign's encrypted RSA key (password 123) signs, its public key verifies.
    let img = push_small_image(http, "gaps/rsa", "v1", 41).await;
    let by_digest = format!("{addr}/gaps/rsa@{}", img.digest());
    let s = expect_success(
        "sign --bundle rsa",
        &run_env(
            d,
            "123",
            &[],
            &["sign", "--bundle", "--key", &rsa_key, &by_digest],
        ),
    );
    let referrer = String::from_utf8(s).unwrap().trim().to_owned();
    let (template, bundle) = referrer_bundle(http, "gaps/rsa", &referrer).await;
    assert_eq!(bundle["mediaType"], bt);
    assert!(bundle["verificationMaterial"]["publicKey"]["hint"].is_string());
    let out = expect_success(
        "verify rsa bundle",
        &run(d, &["verify", "--key", &rsa_pub, &by_digest]),
    );
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 1);
    assert_eq!(
        arr[0]["subject"][0]["digest"]["sha256"],
        img.digest().trim_start_matches("sha256:")
    );
    expect_failure(
        "verify rsa bundle with another key",
        &run(d, &["verify", "--key", "cosign.pub", &by_digest]),
        "signature invalid",
    );
    // The same bundle with its DSSE signature altered, as the only referrer of another image.
    let img2 = push_small_image(http, "gaps/rsa", "v2", 42).await;
    let by_digest2 = format!("{addr}/gaps/rsa@{}", img2.digest());
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        // A statement about img2 under the original signature.
        let mut forged = bundle.clone();
        let stmt = b64
            .decode(forged["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let stmt = String::from_utf8(stmt).unwrap().replace(
            img.digest().trim_start_matches("sha256:"),
            img2.digest().trim_start_matches("sha256:"),
        );
        forged["dsseEnvelope"]["payload"] = Value::String(b64.encode(stmt));
        let mut t = template.clone();
        t["subject"]["digest"] = Value::String(img2.digest().to_owned());
        let first = push_referrer(http, "gaps/rsa", &t, &forged).await;
        // A flipped signature bit.
        let mut sig = b64
            .decode(
                bundle["dsseEnvelope"]["signatures"][0]["sig"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        sig[100] ^= 1;
        let mut flipped = forged.clone();
        flipped["dsseEnvelope"]["signatures"][0]["sig"] = Value::String(b64.encode(&sig));
        let second = push_referrer(http, "gaps/rsa", &t, &flipped).await;
        push_fallback_index(http, "gaps/rsa", img2.digest(), vec![first, second]).await;
    }
    let o = run(d, &["verify", "--key", &rsa_pub, &by_digest2]);
    expect_failure("verify tampered rsa bundles", &o, "signature invalid");
    assert!(
        stderr(&o).contains("signatures #2"),
        "both tampered bundles are reported:\n{}",
        stderr(&o)
    );

    // 2. -a annotations in bundles: recorded as the statement subject's annotations.
    let img = push_small_image(http, "gaps/annotated", "v1", 43).await;
    let tagged = format!("{addr}/gaps/annotated:v1");
    let by_digest = format!("{addr}/gaps/annotated@{}", img.digest());
    let s = expect_success(
        "sign --bundle -a",
        &run(
            d,
            &[
                "sign",
                "--bundle",
                "--key",
                "cosign.key",
                "-a",
                "env=prod",
                "-a",
                "team=sec",
                &tagged,
            ],
        ),
    );
    let referrer = String::from_utf8(s).unwrap().trim().to_owned();
    let (_, bundle) = referrer_bundle(http, "gaps/annotated", &referrer).await;
    let statement: Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        statement["subject"][0]["annotations"],
        serde_json::json!({"env": "prod", "team": "sec"})
    );
    assert_eq!(statement["predicate"], serde_json::json!({}));
    for (what, target, args) in [
        ("verify -a (digest)", &by_digest, vec!["-a", "env=prod"]),
        (
            "verify -a -a (tag)",
            &tagged,
            vec!["-a", "env=prod", "-a", "team=sec"],
        ),
        ("verify without -a", &by_digest, vec![]),
    ] {
        let mut a = vec!["verify", "--key", "cosign.pub"];
        a.extend(args);
        a.push(target);
        let out = expect_success(what, &run(d, &a));
        let arr: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(arr[0]["subject"][0]["annotations"]["env"], "prod", "{what}");
    }
    expect_failure(
        "verify -a wrong value",
        &run(
            d,
            &["verify", "--key", "cosign.pub", "-a", "env=dev", &by_digest],
        ),
        "env",
    );
    expect_failure(
        "verify -a missing key",
        &run(
            d,
            &[
                "verify",
                "--key",
                "cosign.pub",
                "-a",
                "owner=me",
                &by_digest,
            ],
        ),
        "owner",
    );

    // 3. sign --bundle --certificate with the RSA chain: the bundle carries the certificate.
    let img = push_small_image(http, "gaps/certified", "v1", 44).await;
    let by_digest = format!("{addr}/gaps/certified@{}", img.digest());
    let (leaf_pem, leaf_key) = (rsa_file("leaf.pem"), rsa_file("leaf.key"));
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(rsa_file("inter.pem")).unwrap(),
        std::fs::read_to_string(rsa_file("root.pem")).unwrap()
    );
    std::fs::write(d.join("chain.pem"), chain).unwrap();
    std::fs::write(
        d.join("wrong-chain.pem"),
        std::fs::read_to_string(rsa_file("root.pem")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.join("rsa-root.json"),
        serde_json::to_vec(&rsa_trusted_root()).unwrap(),
    )
    .unwrap();
    let mock_root = vector("sigstore", "mock-trusted_root.json")
        .display()
        .to_string();
    let o = run(
        d,
        &[
            "sign",
            "--bundle",
            "--key",
            "cosign.key",
            "--certificate",
            &leaf_pem,
            &by_digest,
        ],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("not the signing key"),
        "{}",
        stderr(&o)
    );
    let o = run(
        d,
        &[
            "sign",
            "--bundle",
            "--key",
            &leaf_key,
            "--certificate",
            &leaf_pem,
            "--certificate-chain",
            "wrong-chain.pem",
            &by_digest,
        ],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("--certificate-chain"),
        "{}",
        stderr(&o)
    );
    let s = expect_success(
        "sign --bundle --certificate",
        &run(
            d,
            &[
                "sign",
                "--bundle",
                "--key",
                &leaf_key,
                "--certificate",
                &leaf_pem,
                "--certificate-chain",
                "chain.pem",
                &by_digest,
            ],
        ),
    );
    let referrer = String::from_utf8(s).unwrap().trim().to_owned();
    let (_, bundle) = referrer_bundle(http, "gaps/certified", &referrer).await;
    let leaf_b64: String = std::fs::read_to_string(&leaf_pem)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(
        bundle["verificationMaterial"]["certificate"]["rawBytes"],
        leaf_b64.as_str()
    );
    assert!(bundle["verificationMaterial"].get("publicKey").is_none());
    let verify_cert = |extra: &[&str]| {
        let mut a = vec!["verify", "--certificate", leaf_pem.as_str()];
        a.extend_from_slice(extra);
        a.push(&by_digest);
        run(d, &a)
    };
    // Pinned, with the chain, and (4.) against the trusted root's Fulcio CA without a chain.
    for extra in [
        vec![],
        vec!["--certificate-chain", "chain.pem"],
        vec!["--trusted-root", "rsa-root.json", "--insecure-ignore-sct"],
    ] {
        let out = expect_success(
            &format!("verify --certificate {extra:?}"),
            &verify_cert(&extra),
        );
        let arr: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(arr.as_array().unwrap().len(), 1, "{extra:?}");
    }
    let o = verify_cert(&["--trusted-root", &mock_root, "--insecure-ignore-sct"]);
    assert!(
        !o.status.success() && stderr(&o).contains("not issued by a certificate authority"),
        "{}",
        stderr(&o)
    );
    let o = verify_cert(&["--trusted-root", "rsa-root.json"]);
    assert!(
        !o.status.success() && stderr(&o).contains("SCT"),
        "the certificate has no SCT: {}",
        stderr(&o)
    );
    expect_failure(
        "verify certificate bundle, chain in the wrong order",
        &verify_cert(&["--certificate-chain", "wrong-chain.pem"]),
        "chain",
    );
    // The key of the certificate verifies the bundle too.
    expect_success(
        "verify certificate bundle --key",
        &run(d, &["verify", "--key", &rsa_file("leaf.pub"), &by_digest]),
    );
    // A legacy .sig made with the RSA certificate: --certificate + --trusted-root checks it the same way.
    let img = push_small_image(http, "gaps/certified", "v2", 46).await;
    let by_digest = format!("{addr}/gaps/certified@{}", img.digest());
    expect_success(
        "sign --certificate (legacy, RSA)",
        &run(
            d,
            &[
                "sign",
                "--key",
                &leaf_key,
                "--certificate",
                &leaf_pem,
                &by_digest,
            ],
        ),
    );
    let out = expect_success(
        "verify legacy --certificate --trusted-root",
        &run(
            d,
            &[
                "verify",
                "--certificate",
                &leaf_pem,
                "--trusted-root",
                "rsa-root.json",
                "--insecure-ignore-sct",
                &by_digest,
            ],
        ),
    );
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        arr[0]["critical"]["image"]["docker-manifest-digest"],
        img.digest()
    );
    let o = run(
        d,
        &[
            "verify",
            "--certificate",
            &leaf_pem,
            "--trusted-root",
            &mock_root,
            "--insecure-ignore-sct",
            &by_digest,
        ],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("not issued by a certificate authority"),
        "{}",
        stderr(&o)
    );

    // 5. Signature repository: the referrer goes to COSIGN_REPOSITORY and is found only there.
    let img = push_small_image(http, "gaps/app", "v1", 45).await;
    let by_digest = format!("{addr}/gaps/app@{}", img.digest());
    let sig_repo = format!("{addr}/gaps/signatures");
    let s = expect_success(
        "sign --bundle COSIGN_REPOSITORY",
        &run_env(
            d,
            PASSWORD,
            &[("COSIGN_REPOSITORY", &sig_repo)],
            &["sign", "--bundle", "--key", "cosign.key", &by_digest],
        ),
    );
    let referrer = String::from_utf8(s).unwrap().trim().to_owned();
    let (m, _) = referrer_bundle(http, "gaps/signatures", &referrer).await;
    assert_eq!(m["subject"]["digest"], img.digest());
    let (st, _, _) = http.get_manifest("gaps/app", &referrer).await;
    assert_eq!(
        st.as_u16(),
        404,
        "the referrer must not be in the image repository"
    );
    expect_failure(
        "verify without the signature repository",
        &run(d, &["verify", "--key", "cosign.pub", &by_digest]),
        "no ",
    );
    let out = expect_success(
        "verify --signature-repository",
        &run(
            d,
            &[
                "verify",
                "--key",
                "cosign.pub",
                "--signature-repository",
                &sig_repo,
                &by_digest,
            ],
        ),
    );
    let arr: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 1);
    expect_success(
        "verify COSIGN_REPOSITORY",
        &run_env(
            d,
            PASSWORD,
            &[("COSIGN_REPOSITORY", &sig_repo)],
            &["verify", "--key", "cosign.pub", &by_digest],
        ),
    );
    expect_failure(
        "verify signature repository, wrong key",
        &run(
            d,
            &[
                "verify",
                "--key",
                &rsa_pub,
                "--signature-repository",
                &sig_repo,
                &by_digest,
            ],
        ),
        "signature invalid",
    );
    // Attestation bundles follow COSIGN_REPOSITORY too.
    std::fs::write(d.join("prov.json"), br#"{"builder":{"id":"gaps"}}"#).unwrap();
    expect_success(
        "attest --bundle COSIGN_REPOSITORY",
        &run_env(
            d,
            PASSWORD,
            &[("COSIGN_REPOSITORY", &sig_repo)],
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
    let out = expect_success(
        "verify-attestation --signature-repository",
        &run(
            d,
            &[
                "verify-attestation",
                "--key",
                "cosign.pub",
                "--type",
                "slsaprovenance1",
                "--signature-repository",
                &sig_repo,
                &by_digest,
            ],
        ),
    );
    let line: Value =
        serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["statement"]["predicate"]["builder"]["id"], "gaps");
}

#[tokio::test]
async fn cosign_gaps_sigil_registry() {
    let reg = SigilRegistry::start_default();
    cosign_gaps_scenario(&reg.addr(), &reg.http()).await;
}

#[tokio::test]
async fn cosign_gaps_docker_registry() {
    let Some(reg) = DockerRegistry::start(false) else {
        return;
    };
    cosign_gaps_scenario(&reg.addr(), &reg.http()).await;
}
