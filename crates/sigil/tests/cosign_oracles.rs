//! Cosign interoperability with independent implementations:
//! - `scripts/oracles/cosign-legacy.py` (Python `cryptography` + PyNaCl, written from the formats): legacy
//!   `.sig` signatures and encrypted key files in both directions, against `sigil registry serve` and
//!   docker-registry 2.8.2;
//! - sigstore-python 4.5.1 signing keylessly against `scripts/oracles/sigstore-mock.js`
//!   (@sigstore/mock's fake Fulcio/Rekor/TSA on 127.0.0.1): its bundles must pass `sigil verify-blob` and
//!   `verify-blob-attestation` with the mock's trusted root, and fail with a wrong identity, issuer or root;
//!   its RFC 3161 timestamps verify against the root's TSA only; a certificate expired when the entry was
//!   logged fails.
//!
//! Each test skips when its tool is missing, unless `SIGIL_REQUIRE_ORACLES=1` (then it fails).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use serde_json::Value;

use crate::util::*;

const PASSWORD: &str = "oracle pass phrase";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

// ---- legacy .sig signatures and key files ----------------------------------------------------------------

/// Runs `cosign-legacy.py ARGS` in `dir` with `password` as `$COSIGN_PASSWORD`.
fn py_legacy(py: &Path, dir: &Path, password: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(py);
    cmd.arg(repo_root().join("scripts/oracles/cosign-legacy.py"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", password)
        .env("SIGIL_ORACLES_HOME", oracles_home());
    run_command(cmd)
}

fn py_ok(py: &Path, dir: &Path, args: &[&str]) -> Value {
    let out = py_legacy(py, dir, PASSWORD, args);
    let stdout = expect_success(&format!("cosign-legacy.py {}", args.join(" ")), &out);
    serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "cosign-legacy.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&stdout)
        )
    })
}

/// `cosign-legacy.py verify`: (exit code, JSON report).
fn py_verify(py: &Path, dir: &Path, key: &str, image: &str) -> (i32, Value) {
    let out = py_legacy(py, dir, PASSWORD, &["verify", "--key", key, image]);
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cosign-legacy.py verify printed no JSON ({e}); exit {code}; stderr: {}",
            stderr(&out)
        )
    });
    (code, v)
}

/// Asserts the Python verifier accepts `image` with `key`; returns how many layers passed and failed.
fn py_verifies(py: &Path, dir: &Path, key: &str, image: &str, digest: &str) -> (usize, usize) {
    let (code, v) = py_verify(py, dir, key, image);
    assert_eq!(code, 0, "python verify --key {key} {image}: {v}");
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["digest"], digest, "{v}");
    let sigs = v["signatures"].as_array().unwrap();
    let ok = sigs.iter().filter(|s| s["ok"] == true).count();
    (ok, sigs.len() - ok)
}

fn py_rejects(py: &Path, dir: &Path, key: &str, image: &str, why: &str) {
    let (code, v) = py_verify(py, dir, key, image);
    assert_eq!(
        code, 1,
        "python verify --key {key} {image} should fail: {v}"
    );
    assert_eq!(v["verified"], false, "{v}");
    let errors: Vec<&str> = v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["error"].as_str())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains(why)),
        "python verify --key {key} {image}: no error mentions {why:?}: {v}"
    );
}

fn sigil_run(dir: &Path, password: &str, args: &[&str]) -> Output {
    let mut cmd = sigil_command(args);
    cmd.current_dir(dir).env("COSIGN_PASSWORD", password);
    run_command(cmd)
}

/// `sigil verify --key KEY IMAGE` succeeds; returns the verified payloads.
fn sigil_verifies(dir: &Path, key: &str, image: &str, digest: &str) -> Vec<Value> {
    let out = sigil_run(dir, PASSWORD, &["verify", "--key", key, image]);
    let stdout = expect_success(&format!("sigil verify --key {key} {image}"), &out);
    let v: Value = serde_json::from_slice(&stdout).unwrap();
    let arr = v.as_array().unwrap().clone();
    assert!(!arr.is_empty(), "sigil verify printed no payload: {v}");
    for p in &arr {
        assert_eq!(p["critical"]["image"]["docker-manifest-digest"], digest);
        assert_eq!(p["critical"]["type"], "cosign container image signature");
    }
    arr
}

fn sigil_rejects(dir: &Path, key: &str, image: &str) {
    let out = sigil_run(dir, PASSWORD, &["verify", "--key", key, image]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "sigil verify --key {key} {image} should fail:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

async fn legacy_interop(py: &Path, addr: &str, http: &Http) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seed = fresh_seed();
    let a = push_small_image(http, "interop/app", "a", seed).await;
    let b = push_small_image(http, "interop/app", "b", seed + 1).await;
    let c = push_small_image(http, "interop/app", "c", seed + 2).await;
    let e = push_small_image(http, "interop/app", "e", seed + 3).await;
    let at = |img: &Image| format!("{addr}/interop/app@{}", img.digest());
    let (ra, rb, rc, re) = (at(&a), at(&b), at(&c), at(&e));

    // Key files: a Python-written encrypted key, a plain PKCS#8 PEM key, a sigil-written encrypted key.
    py_ok(py, d, &["keygen", "--output-key-prefix", "py"]);
    let py_key = std::fs::read_to_string(d.join("py.key")).unwrap();
    assert!(py_key.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    py_ok(
        py,
        d,
        &["keygen", "--plain", "--output-key-prefix", "plain"],
    );
    expect_success(
        "sigil generate-key-pair",
        &sigil_run(
            d,
            PASSWORD,
            &["generate-key-pair", "--output-key-prefix", "sg"],
        ),
    );

    // 1. Python signs A with its encrypted key (by tag): sigil verifies, with the annotation.
    let signed = py_ok(
        py,
        d,
        &[
            "sign",
            "--key",
            "py.key",
            "-a",
            "signer=python",
            &format!("{addr}/interop/app:a"),
        ],
    );
    assert_eq!(signed["digest"], a.digest(), "{signed}");
    assert_eq!(signed["signatures"], 1, "{signed}");
    let got = sigil_verifies(d, "py.pub", &ra, a.digest());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["optional"]["signer"], "python");
    assert_eq!(
        got[0]["critical"]["identity"]["docker-reference"],
        format!("{addr}/interop/app")
    );
    expect_success(
        "sigil verify -a",
        &sigil_run(
            d,
            PASSWORD,
            &["verify", "--key", "py.pub", "-a", "signer=python", &ra],
        ),
    );
    assert_eq!(py_verifies(py, d, "py.pub", &ra, a.digest()), (1, 0));

    // 2. A plain PEM key appends a second signature: sigil verifies with either key.
    let signed = py_ok(py, d, &["sign", "--key", "plain.key", &ra]);
    assert_eq!(signed["signatures"], 2, "{signed}");
    sigil_verifies(d, "plain.pub", &ra, a.digest());
    sigil_verifies(d, "py.pub", &ra, a.digest());
    assert_eq!(py_verifies(py, d, "plain.pub", &ra, a.digest()), (1, 1));

    // 3. sigil signs B; the Python verifier accepts every layer.
    expect_success(
        "sigil sign B",
        &sigil_run(d, PASSWORD, &["sign", "--key", "sg.key", &rb]),
    );
    assert_eq!(py_verifies(py, d, "sg.pub", &rb, b.digest()), (1, 0));
    // sigil appends to the .sig manifest Python wrote, keeping Python's layers intact.
    expect_success(
        "sigil sign A",
        &sigil_run(d, PASSWORD, &["sign", "--key", "sg.key", &ra]),
    );
    assert_eq!(py_verifies(py, d, "sg.pub", &ra, a.digest()), (1, 2));
    assert_eq!(py_verifies(py, d, "py.pub", &ra, a.digest()), (1, 2));
    sigil_verifies(d, "py.pub", &ra, a.digest());
    // ... and Python appends to sigil's.
    let signed = py_ok(py, d, &["sign", "--key", "py.key", &rb]);
    assert_eq!(signed["signatures"], 2, "{signed}");
    sigil_verifies(d, "sg.pub", &rb, b.digest());
    sigil_verifies(d, "py.pub", &rb, b.digest());

    // 4. sigil's key file decrypts in Python and signs C; both verifiers accept it.
    let signed = py_ok(py, d, &["sign", "--key", "sg.key", &rc]);
    assert_eq!(signed["alreadySigned"], false, "{signed}");
    sigil_verifies(d, "sg.pub", &rc, c.digest());
    assert_eq!(py_verifies(py, d, "sg.pub", &rc, c.digest()), (1, 0));
    // Python's key file signs with sigil.
    expect_success(
        "sigil sign with a python key",
        &sigil_run(d, PASSWORD, &["sign", "--key", "py.key", &rc]),
    );
    assert_eq!(py_verifies(py, d, "py.pub", &rc, c.digest()), (1, 1));

    // 5. Negative controls.
    // Wrong key, both directions: C is signed by sg and py only, E by Python's plain key only.
    py_ok(py, d, &["sign", "--key", "plain.key", &re]);
    sigil_rejects(d, "sg.pub", &re);
    sigil_rejects(d, "py.pub", &re);
    sigil_rejects(d, "plain.pub", &rc);
    py_rejects(py, d, "plain.pub", &rc, "does not verify");
    py_rejects(py, d, "sg.pub", &re, "does not verify");
    // Wrong password on each other's key files.
    let o = py_legacy(py, d, "wrong", &["sign", "--key", "sg.key", &re]);
    assert_eq!(o.status.code(), Some(2), "python with a wrong password");
    assert!(stderr(&o).contains("decrypt"), "{}", stderr(&o));
    let o = sigil_run(d, "wrong", &["sign", "--key", "py.key", &re]);
    assert!(
        !o.status.success(),
        "sigil sign with a wrong password succeeded"
    );
    // An unsigned image fails both.
    let unsigned = push_small_image(http, "interop/app", "u", seed + 4).await;
    sigil_rejects(d, "py.pub", &at(&unsigned));
    let (code, v) = py_verify(py, d, "py.pub", &at(&unsigned));
    assert_eq!((code, &v["found"]), (1, &Value::Bool(false)), "{v}");
    // A replayed signature: E's .sig manifest (valid plain-key signature over E) stored as the .sig of the
    // unsigned image. The signature still verifies but names another digest; both verifiers refuse it.
    let e_tag = format!("sha256-{}.sig", e.digest().trim_start_matches("sha256:"));
    let u_tag = format!(
        "sha256-{}.sig",
        unsigned.digest().trim_start_matches("sha256:")
    );
    let (st, ct, body) = http.get_manifest("interop/app", &e_tag).await;
    assert!(st.is_success(), "{e_tag}: {st}");
    http.push_manifest("interop/app", &u_tag, &media_type_of(&ct), &body)
        .await;
    sigil_rejects(d, "plain.pub", &at(&unsigned));
    py_rejects(py, d, "plain.pub", &at(&unsigned), "docker-manifest-digest");
}

#[tokio::test]
async fn cosign_legacy_python_interop_sigil_registry() {
    let Some(py) = oracle_python("cryptography, nacl.secret") else {
        return;
    };
    let reg = SigilRegistry::start_default();
    legacy_interop(&py, &reg.addr(), &reg.http()).await;
}

#[tokio::test]
async fn cosign_legacy_python_interop_docker_registry() {
    let Some(py) = oracle_python("cryptography, nacl.secret") else {
        return;
    };
    let Some(reg) = DockerRegistry::start(false) else {
        return;
    };
    legacy_interop(&py, &reg.addr(), &reg.http()).await;
}

// ---- keyless bundles: sigstore-python against @sigstore/mock ---------------------------------------------

const IDENTITY: &str = "https://ci.example.test/sigil/workflows/release@refs/heads/main";
const ISSUER: &str = "https://issuer.example.test";

/// `sigil verify-blob` / `verify-blob-attestation` (chosen by `cmd`) with the keyless options.
fn sigil_keyless(
    cmd: &str,
    artifact: Option<&str>,
    bundle: &Path,
    identity: &str,
    issuer: &str,
    root: &Path,
    extra: &[&str],
) -> Output {
    let (bundle, root) = (bundle.display().to_string(), root.display().to_string());
    let mut args = vec![cmd];
    args.extend(artifact);
    args.extend([
        "--bundle",
        &bundle,
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        issuer,
        "--trusted-root",
        &root,
    ]);
    args.extend(extra);
    sigil(&args)
}

fn expect_rejected(what: &str, out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should fail:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    assert!(
        stderr(out).contains(needle),
        "{what}: stderr lacks {needle:?}:\n{}",
        stderr(out)
    );
}

/// RFC 3161 timestamps from the mock's TSA (requested by sigstore-python itself) are verified against the
/// trusted root's timestamp authorities; a changed timestamp byte fails; a certificate that had expired
/// when Rekor logged the signature (the mock's Rekor clock is an hour ahead) fails.
#[test]
fn sigstore_python_timestamps_and_expired_certificates() {
    let Some(py) = oracle_python("sigstore.sign") else {
        return;
    };
    let Some(tsa) = SigstoreMock::start_with(&["--tsa"]) else {
        return;
    };
    let Some(late) = SigstoreMock::start_with(&["--tlog-skew", "3600"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let blob = d.join("artifact.bin");
    std::fs::write(&blob, Rng::new(fresh_seed()).bytes(2048)).unwrap();
    let blob_s = blob.display().to_string();

    // Timestamped bundle: verifies, and the timestamp is really there and really checked.
    let stamped = d.join("stamped.sigstore.json");
    tsa.sign(&py, IDENTITY, ISSUER, false, &blob, &stamped);
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(&stamped).unwrap()).unwrap();
    let stamps =
        &mut bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"];
    assert_eq!(stamps.as_array().map(Vec::len), Some(1), "{bundle}");
    expect_success(
        "verify-blob with an RFC 3161 timestamp",
        &sigil_keyless(
            "verify-blob",
            Some(&blob_s),
            &stamped,
            IDENTITY,
            ISSUER,
            &tsa.trusted_root,
            &[],
        ),
    );
    // One flipped bit near the end of the token (inside the TSA's signature).
    let token = stamps[0]["signedTimestamp"].as_str().unwrap().to_owned();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(&token)
        .unwrap();
    let at = raw.len() - 5;
    raw[at] ^= 1;
    stamps[0]["signedTimestamp"] =
        Value::String(base64::engine::general_purpose::STANDARD.encode(&raw));
    let tampered = d.join("tampered.sigstore.json");
    std::fs::write(&tampered, serde_json::to_vec(&bundle).unwrap()).unwrap();
    expect_rejected(
        "verify-blob with a tampered timestamp",
        &sigil_keyless(
            "verify-blob",
            Some(&blob_s),
            &tampered,
            IDENTITY,
            ISSUER,
            &tsa.trusted_root,
            &[],
        ),
        "timestamp",
    );
    // A trusted root whose TSA is someone else's: the timestamp cannot be verified, so it fails.
    let mut other_tsa: Value =
        serde_json::from_slice(&std::fs::read(&tsa.trusted_root).unwrap()).unwrap();
    let late_root: Value =
        serde_json::from_slice(&std::fs::read(&late.trusted_root).unwrap()).unwrap();
    let foreign = late_root["certificateAuthorities"][0]["certChain"].clone();
    other_tsa["timestampAuthorities"][0]["certChain"] = foreign;
    let other_tsa_root = d.join("other_tsa_root.json");
    std::fs::write(&other_tsa_root, serde_json::to_vec(&other_tsa).unwrap()).unwrap();
    expect_rejected(
        "verify-blob against another TSA",
        &sigil_keyless(
            "verify-blob",
            Some(&blob_s),
            &stamped,
            IDENTITY,
            ISSUER,
            &other_tsa_root,
            &[],
        ),
        "timestamp",
    );

    // Logged an hour after signing: the 10-minute certificate had expired at the only trusted time.
    let expired = d.join("expired.sigstore.json");
    late.sign(&py, IDENTITY, ISSUER, false, &blob, &expired);
    expect_rejected(
        "verify-blob with a certificate expired at signing time",
        &sigil_keyless(
            "verify-blob",
            Some(&blob_s),
            &expired,
            IDENTITY,
            ISSUER,
            &late.trusted_root,
            &[],
        ),
        "expired",
    );
}

#[test]
fn sigstore_python_keyless_bundles_verify_with_sigil() {
    let Some(py) = oracle_python("sigstore.sign") else {
        return;
    };
    let Some(mock) = SigstoreMock::start() else {
        return;
    };
    let Some(other) = SigstoreMock::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = &mock.trusted_root;

    // A message signature over a file.
    let blob = d.join("release.tar");
    std::fs::write(&blob, Rng::new(fresh_seed()).bytes(4096)).unwrap();
    let blob_bundle = d.join("release.tar.sigstore.json");
    mock.sign(&py, IDENTITY, ISSUER, false, &blob, &blob_bundle);
    let blob_s = blob.display().to_string();
    let blob_digest = digest_of(&std::fs::read(&blob).unwrap());
    for artifact in [blob_s.as_str(), blob_digest.as_str()] {
        let out = sigil_keyless(
            "verify-blob",
            Some(artifact),
            &blob_bundle,
            IDENTITY,
            ISSUER,
            root,
            &[],
        );
        expect_success(&format!("sigil verify-blob {artifact}"), &out);
    }

    // A DSSE in-toto statement whose subject is an image digest.
    let img = ImageSpec::new(fresh_seed()).layers(1, 512).build();
    let hex = img.digest().trim_start_matches("sha256:").to_string();
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "127.0.0.1:5000/demo/app", "digest": {"sha256": hex}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://sigil.test/build/v1"}},
    });
    let stmt = d.join("statement.json");
    std::fs::write(&stmt, serde_json::to_vec(&statement).unwrap()).unwrap();
    let stmt_bundle = d.join("statement.sigstore.json");
    mock.sign(&py, IDENTITY, ISSUER, true, &stmt, &stmt_bundle);
    for (artifact, extra) in [
        (None, &[][..]),
        (Some(img.digest()), &[][..]),
        (Some(img.digest()), &["--type", "slsaprovenance1"][..]),
        (
            Some(img.digest()),
            &["--type", "https://slsa.dev/provenance/v1"][..],
        ),
    ] {
        let out = sigil_keyless(
            "verify-blob-attestation",
            artifact,
            &stmt_bundle,
            IDENTITY,
            ISSUER,
            root,
            extra,
        );
        let stdout = expect_success(
            &format!("sigil verify-blob-attestation {artifact:?} {extra:?}"),
            &out,
        );
        let printed: Value = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
            panic!(
                "verify-blob-attestation printed no statement ({e}): {}",
                String::from_utf8_lossy(&stdout)
            )
        });
        assert_eq!(printed, statement);
    }

    // Negative controls, for both bundles.
    let wrong_root = &other.trusted_root;
    // A trusted root whose CA is another mock's (logs unchanged): the certificate chain cannot be built.
    let mut swapped: Value =
        serde_json::from_slice(&std::fs::read(&mock.trusted_root).unwrap()).unwrap();
    let other_root: Value =
        serde_json::from_slice(&std::fs::read(&other.trusted_root).unwrap()).unwrap();
    swapped["certificateAuthorities"] = other_root["certificateAuthorities"].clone();
    let swapped_root = d.join("swapped_root.json");
    std::fs::write(&swapped_root, serde_json::to_vec(&swapped).unwrap()).unwrap();
    for (cmd, artifact, bundle) in [
        ("verify-blob", Some(blob_s.as_str()), &blob_bundle),
        ("verify-blob-attestation", Some(img.digest()), &stmt_bundle),
    ] {
        let run = |identity: &str, issuer: &str, root: &Path| {
            sigil_keyless(cmd, artifact, bundle, identity, issuer, root, &[])
        };
        expect_rejected(
            &format!("{cmd}: wrong identity"),
            &run("https://ci.example.test/other", ISSUER, root),
            "identity",
        );
        expect_rejected(
            &format!("{cmd}: wrong issuer"),
            &run(IDENTITY, "https://other-issuer.example.test", root),
            "issuer",
        );
        for r in [wrong_root, &swapped_root] {
            let out = run(IDENTITY, ISSUER, r);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{cmd} with a root lacking the CA ({}) should fail: {}",
                r.display(),
                stderr(&out)
            );
        }
    }
    // A tampered file, and a digest no subject names.
    let tampered = d.join("tampered.tar");
    std::fs::write(&tampered, b"not the signed bytes").unwrap();
    expect_rejected(
        "verify-blob tampered",
        &sigil_keyless(
            "verify-blob",
            Some(&tampered.display().to_string()),
            &blob_bundle,
            IDENTITY,
            ISSUER,
            root,
            &[],
        ),
        "digest",
    );
    expect_rejected(
        "verify-blob-attestation other digest",
        &sigil_keyless(
            "verify-blob-attestation",
            Some(&blob_digest),
            &stmt_bundle,
            IDENTITY,
            ISSUER,
            root,
            &[],
        ),
        "subject",
    );
    expect_rejected(
        "verify-blob-attestation wrong --type",
        &sigil_keyless(
            "verify-blob-attestation",
            Some(img.digest()),
            &stmt_bundle,
            IDENTITY,
            ISSUER,
            root,
            &["--type", "spdxjson"],
        ),
        "predicateType",
    );
}

/// The `sigstore` CLI of sigstore-js (`@sigstore/cli`), installed by scripts/install-test-deps.sh.
fn sigstore_js_cli() -> Option<(PathBuf, PathBuf)> {
    let node =
        which("node").or_else(|| skip("node is not installed (scripts/install-test-deps.sh)"))?;
    let cli = oracles_home().join("npm/node_modules/@sigstore/cli/bin/run");
    if !cli.is_file() {
        return skip(&format!(
            "@sigstore/cli is not installed at {} (scripts/install-test-deps.sh)",
            cli.display()
        ));
    }
    Some((node, cli))
}

/// A DSSE statement about an image in sigil's registry, signed keylessly by sigstore-python and attached
/// to the image by `@sigstore/cli attach` (an independent OCI 1.1 writer: referrers API, or the tag schema
/// when the registry has none), is found and verified by `sigil verify-attestation`; another identity and
/// another image fail.
#[tokio::test]
async fn sigstore_js_attach_keyless_attestation_verifies() {
    use base64::engine::general_purpose::STANDARD;
    let Some(py) = oracle_python("sigstore.sign") else {
        return;
    };
    let Some((node, cli)) = sigstore_js_cli() else {
        return;
    };
    let Some(line) = htpasswd_line("alice", "attach-pass") else {
        return;
    };
    let Some(mock) = SigstoreMock::start() else {
        return;
    };
    for no_referrers_api in [false, true] {
        // @sigstore/oci signs in by probing an upload and needs an auth challenge: serve with htpasswd.
        let reg = SigilRegistry::start(ServeOpts {
            no_referrers_api,
            htpasswd: Some((line.clone(), "sigil".into())),
            ..ServeOpts::default()
        });
        let http = reg.http().with_basic_auth("alice", "attach-pass");
        let img = push_small_image(&http, "demo/attached", "v1", fresh_seed()).await;
        let other = push_small_image(&http, "demo/attached", "v2", fresh_seed()).await;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let authfile = d.join("auth.json");
        let token = STANDARD.encode("alice:attach-pass");
        std::fs::write(
            &authfile,
            serde_json::json!({"auths": {reg.addr(): {"auth": token}}}).to_string(),
        )
        .unwrap();
        let hex = img.digest().trim_start_matches("sha256:").to_string();
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": format!("{}/demo/attached", reg.addr()), "digest": {"sha256": hex}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"buildType": "https://sigil.test/attach/v1"}},
        });
        let stmt = d.join("statement.json");
        std::fs::write(&stmt, serde_json::to_vec(&statement).unwrap()).unwrap();
        let bundle = d.join("statement.sigstore.json");
        mock.sign(&py, IDENTITY, ISSUER, true, &stmt, &bundle);

        let mut attach = Command::new(&node);
        attach
            .arg(&cli)
            .args(["attach", "--attestation"])
            .arg(&bundle)
            .args(["-u", "alice", "-p", "attach-pass"])
            .arg(format!("{}/demo/attached@{}", reg.addr(), img.digest()));
        expect_success("sigstore attach", &run_command(attach));

        let root = mock.trusted_root.display().to_string();
        let auth = authfile.display().to_string();
        let verify = |image: &str, identity: &str| {
            sigil(&[
                "verify-attestation",
                image,
                "--type",
                "slsaprovenance1",
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                ISSUER,
                "--trusted-root",
                &root,
                "--authfile",
                &auth,
            ])
        };
        let tagged = format!("{}/demo/attached:v1", reg.addr());
        let out = verify(&tagged, IDENTITY);
        let stdout = expect_success(
            &format!("verify-attestation (referrers API: {})", !no_referrers_api),
            &out,
        );
        assert!(
            String::from_utf8_lossy(&stdout).contains("payload"),
            "no envelope printed: {}",
            String::from_utf8_lossy(&stdout)
        );
        expect_rejected(
            "verify-attestation, other identity",
            &verify(&tagged, "https://ci.example.test/someone-else"),
            "identity",
        );
        let out = verify(
            &format!("{}/demo/attached@{}", reg.addr(), other.digest()),
            IDENTITY,
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "another image verified: {}",
            stderr(&out)
        );
    }
}
