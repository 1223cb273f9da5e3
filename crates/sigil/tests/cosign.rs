//! `sigil generate-key-pair|sign|verify|attest|verify-attestation` end to end, against `sigil registry
//! serve` and docker-registry 2.8.2: round trip, wrong key, replayed signature, appending without
//! duplicates, required annotations, attestations with a type filter, request counts.

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
    assert!(requests(&v) <= 3, "verify took {} requests", requests(&v));
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
    // Keyless is not wired yet: a clear error.
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
    assert!(!k.status.success() && stderr(&k).contains("not supported yet"));

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
        assert!(requests(&o) <= 3, "{k}: {} requests", requests(&o));
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
