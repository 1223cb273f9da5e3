//! Interoperability with third-party tools:
//! - skopeo 1.9.3 (Debian) copies images and indexes into and out of `sigil registry serve` and inspects them;
//! - oras-py 0.2.43 (scripts/oracles/oras-push.py) pushes referrers into sigil and pulls them back;
//! - Debian's docker-registry 2.8.2 is the source and target of `sigil copy` and of the inspection commands.
//!
//! Each test skips when its tool is missing, unless `SIGIL_REQUIRE_ORACLES=1` (then it fails).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::*;

// ---- skopeo ----------------------------------------------------------------------------------------------

fn have_skopeo() -> bool {
    which("skopeo").is_some()
        || skip::<()>("skopeo is not installed (scripts/install-test-deps.sh)").is_some()
}

/// Whether skopeo's blob-info cache can be hidden with a private mount namespace (root with unshare).
fn can_unshare() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        root && which("unshare").is_some()
            && Command::new("unshare")
                .args(["--mount", "--propagation", "private", "true"])
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// Runs `skopeo --insecure-policy ARGS` with an empty, private blob-info cache, so no earlier run turns
/// uploads into mounts or skips. As root the cache directory is bind-mounted over inside a private
/// mount namespace; otherwise XDG_DATA_HOME points to a temporary directory.
fn skopeo(args: &[&str]) -> Output {
    let cache = tempfile::Builder::new()
        .prefix("skopeo-cache-")
        .tempdir()
        .unwrap();
    let mut cmd = if can_unshare() {
        fs::create_dir_all("/var/lib/containers/cache").unwrap();
        let mut c = Command::new("unshare");
        c.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /var/lib/containers/cache && exec skopeo --insecure-policy \"$@\"",
        ])
        .arg(cache.path());
        c
    } else {
        let mut c = Command::new("skopeo");
        c.arg("--insecure-policy");
        c
    };
    cmd.args(args)
        .env("XDG_DATA_HOME", cache.path())
        .env("REGISTRY_AUTH_FILE", cache.path().join("auth.json"));
    let out = run_command(cmd);
    drop(cache);
    out
}

fn skopeo_ok(args: &[&str]) -> Vec<u8> {
    let out = skopeo(args);
    expect_success(&format!("skopeo {}", args.join(" ")), &out)
}

/// Asserts the OCI layout at `dir` holds `img` under `tag`, every document and blob byte for byte.
fn assert_layout_holds(dir: &Path, tag: &str, img: &Image) {
    let layout = Layout::new(dir);
    let desc = layout.descriptor(tag);
    assert_eq!(desc["digest"], img.digest(), "layout {tag} digest");
    assert_eq!(desc["mediaType"], img.top.media_type.as_str());
    for doc in img.docs() {
        assert!(
            layout.blob(&doc.digest) == doc.bytes,
            "manifest {} differs in the layout",
            doc.digest
        );
    }
    for (d, data) in &img.blobs {
        assert!(layout.blob(d) == *data, "blob {d} differs in the layout");
    }
}

async fn skopeo_round_trip(img: Image, all: bool) {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let dst = work.path().join("dst");
    img.write_layout(&src, "v1");

    let remote = format!("docker://{}/skopeo/img:v1", reg.addr());
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    if all {
        args.push("--all");
    }
    let src_ref = format!("oci:{}:v1", src.display());
    args.extend([src_ref.as_str(), remote.as_str()]);
    skopeo_ok(&args);
    img.assert_served(&http, "skopeo/img", "v1").await;

    let mut args = vec!["copy", "--src-tls-verify=false"];
    if all {
        args.push("--all");
    }
    let dst_ref = format!("oci:{}:v1", dst.display());
    args.extend([remote.as_str(), dst_ref.as_str()]);
    skopeo_ok(&args);
    assert_layout_holds(&dst, "v1", &img);
}

#[tokio::test]
async fn skopeo_copies_image_into_sigil_and_back() {
    if !have_skopeo() {
        return;
    }
    let img = ImageSpec::new(fresh_seed()).layers(3, 64 * 1024).build();
    skopeo_round_trip(img, false).await;
}

#[tokio::test]
async fn skopeo_copies_index_with_all() {
    if !have_skopeo() {
        return;
    }
    let img = ImageSpec::new(fresh_seed())
        .layers(2, 32 * 1024)
        .platforms(&["linux/amd64", "linux/arm64/v8"])
        .build();
    assert_eq!(img.top.media_type, MT_INDEX);
    skopeo_round_trip(img, true).await;
}

#[tokio::test]
async fn skopeo_inspects_lists_tags_and_deletes() {
    if !have_skopeo() {
        return;
    }
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let img = ImageSpec::new(fresh_seed()).layers(2, 2048).build();
    img.push(&http, "inspect/app", "v1").await;
    http.push_manifest("inspect/app", "v2", MT_MANIFEST, &img.top.bytes)
        .await;
    let remote = format!("docker://{}/inspect/app:v1", reg.addr());

    let out = skopeo_ok(&["inspect", "--tls-verify=false", &remote]);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["Digest"], img.digest(), "{v}");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Architecture"], "amd64");
    let m: Value = serde_json::from_slice(&img.top.bytes).unwrap();
    let layers: Vec<Value> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(v["Layers"], json!(layers));

    let raw = skopeo_ok(&["inspect", "--tls-verify=false", "--raw", &remote]);
    assert_eq!(
        raw, img.top.bytes,
        "inspect --raw differs from what was pushed"
    );
    let cfg = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        "--raw",
        &remote,
    ]);
    assert_eq!(cfg, img.config(), "inspect --config --raw");

    let tags = skopeo_ok(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/inspect/app", reg.addr()),
    ]);
    let v: Value = serde_json::from_slice(&tags).unwrap();
    assert_eq!(v["Tags"], json!(["v1", "v2"]), "{v}");

    skopeo_ok(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{}/inspect/app@{}", reg.addr(), img.digest()),
    ]);
    for reference in [img.digest(), "v1", "v2"] {
        let (st, _, _) = http.get_manifest("inspect/app", reference).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{reference} after skopeo delete");
    }
}

// ---- oras-py ---------------------------------------------------------------------------------------------

fn oras_python() -> Option<PathBuf> {
    let py = oracles_home().join("venv/bin/python");
    if py.is_file() {
        Some(py)
    } else {
        skip(&format!(
            "no oras-py venv at {} (scripts/install-test-deps.sh)",
            py.display()
        ))
    }
}

fn oras(py: &Path, cwd: &Path, args: &[&str]) -> Value {
    let script = repo_root().join("scripts/oracles/oras-push.py");
    let mut cmd = Command::new(py);
    cmd.arg(&script)
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env("SIGIL_ORACLES_HOME", oracles_home());
    let out = run_command(cmd);
    let stdout = expect_success(&format!("oras-push.py {}", args.join(" ")), &out);
    serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "oras-push.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&stdout)
        )
    })
}

#[tokio::test]
async fn oras_py_pushes_referrers_into_sigil() {
    let Some(py) = oras_python() else {
        return;
    };
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let subject = push_small_image(&http, "oras/app", "v1", fresh_seed()).await;
    let work = tempfile::tempdir().unwrap();
    let sbom = Rng::new(fresh_seed()).bytes(3000);
    fs::write(work.path().join("sbom.json"), &sbom).unwrap();
    let subject_ref = format!("{}/oras/app@{}", reg.addr(), subject.digest());

    let pushed = oras(
        &py,
        work.path(),
        &[
            "push",
            "--artifact-type",
            "application/spdx+json",
            "-a",
            "org.example.kind=sbom",
            &subject_ref,
            "sbom.json:application/spdx+json",
        ],
    );
    let digest = pushed["digest"].as_str().unwrap().to_string();
    assert_eq!(
        pushed["ociSubject"],
        subject.digest(),
        "the PUT oras-py made was not answered with OCI-Subject: {pushed}"
    );
    assert_eq!(pushed["dockerContentDigest"], digest.as_str());

    let mut second = oras(
        &py,
        work.path(),
        &[
            "push",
            "--config-type",
            "application/vnd.test.config.v1+json",
            &format!("{}/oras/app:v1", reg.addr()),
            "sbom.json",
        ],
    );
    let digest2 = second["digest"].take().as_str().unwrap().to_string();

    let r = http
        .get(&format!("/v2/oras/app/referrers/{}", subject.digest()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let idx: Value = r.json().await.unwrap();
    let list = idx["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{idx}");
    let find = |d: &str| list.iter().find(|m| m["digest"] == d).cloned().unwrap();
    let e = find(&digest);
    assert_eq!(e["artifactType"], "application/spdx+json");
    assert_eq!(e["annotations"], json!({"org.example.kind": "sbom"}));
    assert_eq!(e["size"], pushed["size"]);
    assert_eq!(
        find(&digest2)["artifactType"],
        "application/vnd.test.config.v1+json"
    );

    // The stored bytes hash to the digest oras-py computed; re-putting them gets OCI-Subject again.
    let (st, ct, body) = http.get_manifest("oras/app", &digest).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(digest_of(&body), digest);
    let r = http
        .put_manifest("oras/app", &digest, &media_type_of(&ct), &body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "oci-subject").as_deref(), Some(subject.digest()));

    // oras-py reads the artifact back byte for byte.
    let out = work.path().join("pulled");
    let pulled = oras(
        &py,
        work.path(),
        &[
            "pull",
            "--out",
            out.to_str().unwrap(),
            &format!("{}/oras/app@{digest}", reg.addr()),
        ],
    );
    assert_eq!(pulled["digest"], digest.as_str());
    assert!(
        fs::read(out.join("sbom.json")).unwrap() == sbom,
        "pulled file differs"
    );
}

// ---- sigil's client against Debian's docker-registry ----------------------------------------------------

async fn copy_via_sigil(img: Image) {
    let Some(docker) = DockerRegistry::start(false) else {
        return;
    };
    let reg = SigilRegistry::start_default();
    let dh = docker.http();
    let sh = reg.http();
    img.push(&dh, "src/img", "v1").await;

    let from = format!("{}/src/img:v1", docker.addr());
    let mid = format!("{}/dst/img:v1", reg.addr());
    let back = format!("{}/back/img:v1", docker.addr());
    expect_success(
        "sigil copy docker-registry -> sigil",
        &sigil(&["copy", "--no-progress", &from, &mid]),
    );
    img.assert_served(&sh, "dst/img", "v1").await;
    expect_success(
        "sigil copy sigil -> docker-registry",
        &sigil(&["copy", "--no-progress", &mid, &back]),
    );
    img.assert_served(&dh, "back/img", "v1").await;

    let out = expect_success("sigil digest", &sigil(&["digest", &mid]));
    assert_eq!(String::from_utf8_lossy(&out).trim(), img.digest());
}

#[tokio::test]
async fn sigil_copy_image_via_docker_registry() {
    copy_via_sigil(ImageSpec::new(fresh_seed()).layers(3, 50_000).build()).await;
}

#[tokio::test]
async fn sigil_copy_index_via_docker_registry() {
    copy_via_sigil(
        ImageSpec::new(fresh_seed())
            .layers(2, 20_000)
            .platforms(&["linux/amd64", "linux/arm64/v8", "linux/arm/v7"])
            .build(),
    )
    .await;
}

#[tokio::test]
async fn sigil_copy_single_platform_out_of_an_index() {
    let Some(docker) = DockerRegistry::start(false) else {
        return;
    };
    let img = ImageSpec::new(fresh_seed())
        .layers(1, 10_000)
        .platforms(&["linux/amd64", "linux/arm64/v8"])
        .build();
    img.push(&docker.http(), "multi/img", "v1").await;
    let reg = SigilRegistry::start_default();
    let dst = format!("{}/single/img:arm64", reg.addr());
    expect_success(
        "sigil copy --platform",
        &sigil(&[
            "copy",
            "--no-progress",
            "--platform",
            "linux/arm64",
            &format!("{}/multi/img:v1", docker.addr()),
            &dst,
        ]),
    );
    let child = img
        .children
        .iter()
        .find(|c| c.platform.as_deref() == Some("linux/arm64/v8"))
        .unwrap();
    let (st, _, body) = reg.http().get_manifest("single/img", "arm64").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        body, child.bytes,
        "--platform must copy the child manifest unchanged"
    );
}

#[tokio::test]
async fn sigil_copy_oci_layout_round_trip() {
    let reg = SigilRegistry::start_default();
    let img = ImageSpec::new(fresh_seed())
        .layers(2, 30_000)
        .platforms(&["linux/amd64", "linux/arm64/v8"])
        .build();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let dst = work.path().join("dst");
    img.write_layout(&src, "v1");
    let remote = format!("{}/layout/img:v1", reg.addr());
    expect_success(
        "sigil copy oci: -> registry",
        &sigil(&[
            "copy",
            "--no-progress",
            &format!("oci:{}:v1", src.display()),
            &remote,
        ]),
    );
    img.assert_served(&reg.http(), "layout/img", "v1").await;
    expect_success(
        "sigil copy registry -> oci:",
        &sigil(&[
            "copy",
            "--no-progress",
            &remote,
            &format!("oci:{}:v1", dst.display()),
        ]),
    );
    assert_layout_holds(&dst, "v1", &img);
    // When skopeo is there, it must read sigil's layout too.
    if which("skopeo").is_some() {
        let raw = skopeo_ok(&["inspect", "--raw", &format!("oci:{}:v1", dst.display())]);
        assert_eq!(raw, img.top.bytes);
    }
}

#[tokio::test]
async fn sigil_inspection_commands_against_docker_registry() {
    let Some(docker) = DockerRegistry::start(false) else {
        return;
    };
    let img = ImageSpec::new(fresh_seed())
        .layers(2, 5000)
        .platforms(&["linux/amd64", "linux/arm64/v8"])
        .build();
    let dh = docker.http();
    img.push(&dh, "insp/app", "v1").await;
    dh.push_manifest("insp/app", "v2", &img.top.media_type, &img.top.bytes)
        .await;
    let r = format!("{}/insp/app:v1", docker.addr());

    let out = expect_success("sigil manifest", &sigil(&["manifest", &r]));
    assert_eq!(
        out, img.top.bytes,
        "sigil manifest must print the stored bytes"
    );
    let out = expect_success("sigil digest", &sigil(&["digest", &r]));
    assert_eq!(String::from_utf8_lossy(&out).trim(), img.digest());

    let arm = img
        .children
        .iter()
        .find(|c| c.platform.as_deref() == Some("linux/arm64/v8"))
        .unwrap();
    let out = expect_success(
        "sigil manifest --platform",
        &sigil(&["manifest", "--platform", "linux/arm64", &r]),
    );
    assert_eq!(out, arm.bytes);
    let m: Value = serde_json::from_slice(&arm.bytes).unwrap();
    let cfg_digest = m["config"]["digest"].as_str().unwrap();
    let out = expect_success(
        "sigil config --platform",
        &sigil(&["config", "--platform", "linux/arm64/v8", &r]),
    );
    assert_eq!(out, img.blobs[cfg_digest], "sigil config");
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let out = expect_success(
        "sigil blob",
        &sigil(&["blob", &format!("{}/insp/app@{layer}", docker.addr())]),
    );
    assert!(out == img.blobs[layer], "sigil blob bytes differ");

    let out = expect_success(
        "sigil tags",
        &sigil(&["tags", &format!("{}/insp/app", docker.addr())]),
    );
    let text = String::from_utf8_lossy(&out);
    let listed: Vec<&str> = text.split_whitespace().collect();
    assert!(
        listed.contains(&"v1") && listed.contains(&"v2")
            || text.contains("\"v1\"") && text.contains("\"v2\""),
        "sigil tags output: {text}"
    );
}

#[tokio::test]
async fn sigil_client_uses_authfile_credentials() {
    use base64::Engine as _;
    let Some(docker) = DockerRegistry::start(true) else {
        return;
    };
    let img = ImageSpec::new(fresh_seed()).layers(1, 1000).build();
    img.push(&docker.http(), "auth/img", "v1").await;
    let r = format!("{}/auth/img:v1", docker.addr());

    let out = sigil(&["digest", &r]);
    assert!(
        !out.status.success(),
        "sigil digest worked without credentials"
    );

    let (user, pass) = docker.credentials.clone().unwrap();
    let work = tempfile::tempdir().unwrap();
    let authfile = work.path().join("config.json");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    fs::write(
        &authfile,
        json!({"auths": {docker.addr(): {"auth": token}}}).to_string(),
    )
    .unwrap();
    let out = sigil(&["digest", "--authfile", authfile.to_str().unwrap(), &r]);
    let stdout = expect_success("sigil digest --authfile", &out);
    assert_eq!(String::from_utf8_lossy(&stdout).trim(), img.digest());
}
