//! `sigil webhook serve` and `sigil serve` end to end over HTTPS on 127.0.0.1: AdmissionReview bodies
//! (tests/data/webhook/, in the shape the API server sends) for a Pod, a Deployment and a CronJob whose
//! images were pushed to `sigil registry serve` and signed with `sigil sign --key` here. Checks
//! admission, denial messages naming the image, the JSON patch applied with the `json-patch` crate
//! (digest pins, the `sigil.dev/verify-images` annotation), Audit warnings, `/validate`
//! (`verifyDigest` / `required`), HTTP 400 for bodies that are not AdmissionReviews, the skips, health,
//! readiness and metrics, policy reload on file change (and a failed reload keeping the old policies),
//! a hanging registry denied within the deadline, `sigil serve` with its generated certificate, the
//! attestor kinds through the webhook (keys with `count`, nested sets, certificates with a chain,
//! keyless `SigstoreBundle` signed by sigstore-python against @sigstore/mock, `type: Notary` signed by
//! `sigil notary sign`), and a rotated serving certificate picked up without a restart.
//! `deploy/` manifests are parsed and checked against the binary's flags and the policy loader.

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::*;

const PASSWORD: &str = "webhook test";

fn data(name: &str) -> String {
    let p = repo_root()
        .join("crates/sigil/tests/data/webhook")
        .join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An AdmissionReview fixture with `IMAGE` replaced.
fn review_body(fixture: &str, image: &str) -> Value {
    serde_json::from_str(&data(fixture).replace("IMAGE", image)).unwrap()
}

/// A Pod review with several containers.
fn pod_with_images(images: &[&str]) -> Value {
    let mut v = review_body("pod-create.json", "placeholder");
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
        .collect();
    v["request"]["object"]["spec"]["containers"] = json!(containers);
    v
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = sigil_command(args);
    cmd.current_dir(dir).env("COSIGN_PASSWORD", PASSWORD);
    run_command(cmd)
}

/// A key pair `<prefix>.key`/`<prefix>.pub` in `dir`; returns the public key PEM.
fn key_pair(dir: &Path, prefix: &str) -> String {
    expect_success(
        "generate-key-pair",
        &run_in(dir, &["generate-key-pair", "--output-key-prefix", prefix]),
    );
    fs::read_to_string(dir.join(format!("{prefix}.pub"))).unwrap()
}

fn sign(dir: &Path, key: &str, image: &str) {
    expect_success(
        &format!("sign {image}"),
        &run_in(dir, &["sign", "--key", key, image]),
    );
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.trim()
        .lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A ClusterPolicy verifying images under `pattern` with `key_pem`.
fn key_policy(name: &str, pattern: &str, key_pem: &str, action: &str) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  webhookTimeoutSeconds: 10
  rules:
    - name: check-signature
      match:
        any:
          - resources:
              kinds:
                - Pod
      verifyImages:
        - imageReferences:
            - "{pattern}"
          failureAction: {action}
          mutateDigest: {mutate}
          verifyDigest: true
          required: true
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}
                    rekor:
                      ignoreTlog: true
                    ctlog:
                      ignoreSCT: true
"#,
        key = indent(key_pem, 22),
        // Kyverno: mutateDigest must be false with Audit.
        mutate = action == "Enforce",
    )
}

// ---- the webhook process ---------------------------------------------------------------------------

struct Webhook {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    client: reqwest::Client,
}

impl Webhook {
    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("webhook.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    async fn post_raw(&self, path: &str, body: Vec<u8>) -> (StatusCode, String) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log()));
        let st = r.status();
        (st, r.text().await.unwrap())
    }

    /// Posts a review; asserts HTTP 200 and the echoed uid; returns `response`.
    async fn review(&self, path: &str, body: &Value) -> Value {
        let (st, text) = self.post_raw(path, json_bytes(body)).await;
        assert_eq!(st, StatusCode::OK, "{path}: {text}\n{}", self.log());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(
            v["response"]["uid"], body["request"]["uid"],
            "uid not echoed"
        );
        v["response"].clone()
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let st = r.status();
        (st, r.text().await.unwrap())
    }

    async fn metric(&self, line_prefix: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(line_prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn https_client(ca_pem: &[u8]) -> reqwest::Client {
    crypto_init();
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Waits until `GET /healthz` answers 200 while `child` lives; panics with the log otherwise.
async fn wait_healthy(client: &reqwest::Client, url: &str, child: &mut Child, log: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            let text = fs::read_to_string(log).unwrap_or_default();
            if text.contains("in use") {
                return false;
            }
            panic!("server exited ({st}):\n{text}");
        }
        if let Ok(r) = client.get(url).send().await
            && r.status() == StatusCode::OK
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no answer on {url} within 20 s:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// `sigil webhook serve --policies DIR ...extra` with a fresh self-signed certificate.
async fn start_webhook(policies: &Path, extra: &[&str]) -> Webhook {
    let dir = tempfile::Builder::new()
        .prefix("sigil-webhook-")
        .tempdir()
        .unwrap();
    let tls = TlsFiles::self_signed();
    fs::write(dir.path().join("cert.pem"), &tls.cert_pem).unwrap();
    fs::write(dir.path().join("key.pem"), &tls.key_pem).unwrap();
    let client = https_client(tls.cert_pem.as_bytes());
    let log = dir.path().join("webhook.log");
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = sigil_command(&["webhook", "serve", "--policies"]);
        cmd.arg(policies)
            .arg("--tls-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.path().join("key.pem"))
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env_remove("SIGIL_WEBHOOK_ADDR");
        let logf = fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        let mut child = cmd.spawn().unwrap();
        let url = format!("https://127.0.0.1:{port}/healthz");
        if wait_healthy(&client, &url, &mut child, &log).await {
            return Webhook {
                child: Some(child),
                dir,
                port,
                client,
            };
        }
    }
    panic!("no free port for the webhook");
}

// ---- checks ----------------------------------------------------------------------------------------

fn decode_patch(resp: &Value) -> Value {
    assert_eq!(resp["patchType"], "JSONPatch", "no JSONPatch in {resp}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(resp["patch"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Applies the response's patch to the request's object with the `json-patch` crate.
fn patched(body: &Value, resp: &Value) -> Value {
    let ops: json_patch::Patch = serde_json::from_value(decode_patch(resp)).unwrap();
    let mut obj = body["request"]["object"].clone();
    json_patch::patch(&mut obj, &ops).unwrap_or_else(|e| panic!("patch does not apply: {e}"));
    obj
}

fn annotation(obj: &Value) -> Value {
    let text = obj["metadata"]["annotations"]["sigil.dev/verify-images"]
        .as_str()
        .unwrap_or_else(|| panic!("no sigil.dev/verify-images annotation in {obj}"));
    serde_json::from_str(text).unwrap()
}

fn assert_allowed(resp: &Value, what: &str) {
    assert_eq!(resp["allowed"], true, "{what} should be admitted: {resp}");
    assert!(resp.get("status").is_none(), "{what}: {resp}");
}

fn deny_message(resp: &Value, what: &str) -> String {
    assert_eq!(resp["allowed"], false, "{what} should be denied: {resp}");
    assert_eq!(resp["status"]["code"], 403, "{what}: {resp}");
    assert!(
        resp.get("patch").is_none(),
        "a denied review carries no patch"
    );
    resp["status"]["message"].as_str().unwrap().to_owned()
}

fn warnings(resp: &Value) -> Vec<String> {
    resp["warnings"]
        .as_array()
        .map(|a| a.iter().map(|w| w.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Polls `f` until it returns true (10 s).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not within 10 s");
}

struct Signed {
    reg: SigilRegistry,
    keys: tempfile::TempDir,
    good_pub: String,
    other_pub: String,
    /// `127.0.0.1:PORT/demo/app:v1`, signed with the good key.
    signed: String,
    signed_digest: String,
    /// `127.0.0.1:PORT/demo/app:v2`, not signed.
    unsigned: String,
}

async fn signed_fixture() -> Signed {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let keys = tempfile::tempdir().unwrap();
    let good_pub = key_pair(keys.path(), "good");
    let other_pub = key_pair(keys.path(), "other");
    let img = push_small_image(&http, "demo/app", "v1", 701).await;
    push_small_image(&http, "demo/app", "v2", 702).await;
    let signed = format!("{}/demo/app:v1", reg.addr());
    sign(keys.path(), "good.key", &signed);
    Signed {
        unsigned: format!("{}/demo/app:v2", reg.addr()),
        signed,
        signed_digest: img.digest().to_owned(),
        reg,
        keys,
        good_pub,
        other_pub,
    }
}

// ---- tests -----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_admits_signed_denies_unsigned_and_patches() {
    let f = signed_fixture().await;
    let policies = tempfile::tempdir().unwrap();
    let pattern = format!("{}/*", f.reg.addr());
    let policy_file = policies.path().join("verify.yaml");
    fs::write(
        &policy_file,
        key_policy("verify-demo", &pattern, &f.good_pub, "Enforce"),
    )
    .unwrap();
    let w = start_webhook(policies.path(), &["--max-request-bytes", "200000"]).await;
    let pinned = format!("{}@{}", f.signed, f.signed_digest);

    // Health, readiness, metrics before any review.
    assert_eq!(w.get("/healthz").await.0, StatusCode::OK);
    let (st, ready) = w.get("/readyz").await;
    assert_eq!(st, StatusCode::OK);
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["policies"], 1);
    assert!(ready["lastReloadError"].is_null());
    let allowed_before = w
        .metric("sigil_webhook_reviews_total{path=\"mutate\",result=\"allowed\"} ")
        .await;
    assert_eq!(allowed_before, 0.0);

    // Pod, Deployment, CronJob with the signed image: admitted, pinned, annotated.
    for (fixture, pointer) in [
        ("pod-create.json", "/spec/containers/0/image"),
        (
            "deployment-create.json",
            "/spec/template/spec/containers/0/image",
        ),
        (
            "cronjob-create.json",
            "/spec/jobTemplate/spec/template/spec/containers/0/image",
        ),
    ] {
        let body = review_body(fixture, &f.signed);
        let resp = w.review("/mutate", &body).await;
        assert_allowed(&resp, fixture);
        let obj = patched(&body, &resp);
        assert_eq!(
            obj.pointer(pointer).unwrap(),
            &json!(pinned),
            "{fixture}: image not pinned to name:tag@digest"
        );
        let ann = annotation(&obj);
        let entries = ann.as_object().unwrap();
        assert_eq!(entries.len(), 1, "{fixture}: {ann}");
        let (key, outcome) = entries.iter().next().unwrap();
        assert!(key.contains(&f.signed_digest), "{fixture}: {key}");
        assert_eq!(outcome, "pass", "{fixture}: {ann}");
        // Everything else is unchanged: undo the two edits and compare.
        let mut back = obj.clone();
        *back.pointer_mut(pointer).unwrap() = json!(f.signed);
        let anns = back["metadata"]["annotations"].as_object_mut().unwrap();
        anns.remove("sigil.dev/verify-images");
        if anns.is_empty() {
            back["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
        }
        assert_eq!(
            back, body["request"]["object"],
            "{fixture}: unexpected edits"
        );

        // The validate path accepts what the mutate path produced.
        let mut validated = body.clone();
        validated["request"]["object"] = obj;
        let v = w.review("/validate", &validated).await;
        assert_allowed(&v, &format!("{fixture} /validate"));
        assert!(v.get("patch").is_none(), "/validate never patches");
    }

    // Unsigned: denied, the message names the image.
    let resp = w
        .review("/mutate", &review_body("pod-create.json", &f.unsigned))
        .await;
    let msg = deny_message(&resp, "unsigned pod");
    assert!(msg.contains(&f.unsigned), "message lacks the image: {msg}");
    // Two containers, one unsigned: denied naming the unsigned one only.
    let resp = w
        .review("/mutate", &pod_with_images(&[&f.signed, &f.unsigned]))
        .await;
    let msg = deny_message(&resp, "mixed pod");
    assert!(msg.contains(&f.unsigned), "{msg}");

    // /validate: a tag-only image without the annotation fails verifyDigest/required.
    let resp = w
        .review("/validate", &review_body("pod-create.json", &f.signed))
        .await;
    let msg = deny_message(&resp, "validate without digest");
    assert!(msg.contains(&f.signed), "{msg}");
    // The annotation alone is never trusted by /mutate: an unsigned image claiming `pass`.
    let mut forged = review_body("pod-create.json", &f.unsigned);
    forged["request"]["object"]["metadata"]["annotations"] =
        json!({"sigil.dev/verify-images": format!("{{\"{}\":\"pass\"}}", f.unsigned)});
    let resp = w.review("/mutate", &forged).await;
    deny_message(&resp, "forged annotation");

    // Skips: DELETE, a kind no policy matches, a subresource.
    let t = Instant::now();
    let resp = w
        .review("/mutate", &review_body("pod-delete.json", &f.unsigned))
        .await;
    assert_allowed(&resp, "DELETE");
    let resp = w
        .review(
            "/mutate",
            &review_body("configmap-create.json", &f.unsigned),
        )
        .await;
    assert_allowed(&resp, "ConfigMap");
    assert!(resp.get("patch").is_none());
    let mut status = review_body("pod-create.json", &f.unsigned);
    status["request"]["subResource"] = json!("status");
    assert_allowed(&w.review("/mutate", &status).await, "pods/status");
    assert!(t.elapsed() < Duration::from_secs(2), "skips must be quick");
    // ...but pods/ephemeralcontainers is reviewed (kubectl debug images are verified).
    let mut eph = review_body("pod-create.json", &f.unsigned);
    eph["request"]["subResource"] = json!("ephemeralcontainers");
    deny_message(&w.review("/mutate", &eph).await, "ephemeralcontainers");

    // Bad bodies: HTTP 400 with the reason, never an allow.
    let uid_less = {
        let mut b = review_body("pod-create.json", &f.signed);
        b["request"].as_object_mut().unwrap().remove("uid");
        json_bytes(&b)
    };
    let object_less = {
        let mut b = review_body("pod-create.json", &f.signed);
        b["request"].as_object_mut().unwrap().remove("object");
        json_bytes(&b)
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not json",
            b"{not json".to_vec(),
            "not a valid AdmissionReview",
        ),
        ("empty", Vec::new(), "not a valid AdmissionReview"),
        (
            "no request",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "missing `request`",
        ),
        ("no uid", uid_less, "missing `request.uid`"),
        ("no object", object_less, "missing `request.object`"),
        (
            "v1beta1",
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#
                .to_vec(),
            "unsupported apiVersion",
        ),
        ("too large", vec![b' '; 300_000], "larger than 200000 bytes"),
    ];
    for (what, body, want) in &cases {
        for path in ["/mutate", "/validate"] {
            let (st, text) = w.post_raw(path, body.clone()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{what} {path}: {text}");
            assert!(
                text.contains(want),
                "{what} {path}: {text:?} lacks {want:?}"
            );
        }
    }
    assert!(w.child.is_some(), "still running");

    // Metrics moved.
    let m = |s: &str| format!("sigil_webhook_reviews_total{{path=\"{s}\"");
    assert!(
        w.metric(&format!("{},result=\"allowed\"}} ", m("mutate")))
            .await
            >= 3.0
    );
    assert!(
        w.metric(&format!("{},result=\"denied\"}} ", m("mutate")))
            .await
            >= 4.0
    );
    assert!(
        w.metric(&format!("{},result=\"skipped\"}} ", m("mutate")))
            .await
            >= 3.0
    );
    assert_eq!(
        w.metric(&format!("{},result=\"bad_request\"}} ", m("validate")))
            .await,
        cases.len() as f64
    );
    assert!(
        w.metric("sigil_webhook_review_duration_seconds_count{path=\"mutate\"} ")
            .await
            >= 9.0
    );
    assert!(
        w.metric("sigil_webhook_decisions_total{status=\"pass\"} ")
            .await
            >= 3.0
    );
    assert!(
        w.metric("sigil_webhook_decisions_total{status=\"fail\"} ")
            .await
            >= 2.0
    );
    assert!(w.metric("sigil_engine_registry_requests_total ").await >= 3.0);
    let hits = w.metric("sigil_engine_cache_hits_total ").await;
    let resp = w
        .review("/mutate", &review_body("pod-create.json", &f.signed))
        .await;
    assert_allowed(&resp, "cached");
    assert!(
        w.metric("sigil_engine_cache_hits_total ").await > hits,
        "a repeated review is answered from the cache"
    );

    // Reload: the same policy with another key denies the signed image.
    let reloads = w
        .metric("sigil_webhook_policy_reloads_total{result=\"success\"} ")
        .await;
    fs::write(
        &policy_file,
        key_policy("verify-demo", &pattern, &f.other_pub, "Enforce"),
    )
    .unwrap();
    let (wr, fr) = (&w, &f);
    eventually("the edited policy is used", || async move {
        let r = wr
            .review("/mutate", &review_body("pod-create.json", &fr.signed))
            .await;
        r["allowed"] == false
    })
    .await;
    let resp = w
        .review("/mutate", &review_body("pod-create.json", &f.signed))
        .await;
    let msg = deny_message(&resp, "wrong key");
    assert!(msg.contains(&f.signed), "{msg}");
    assert!(
        w.metric("sigil_webhook_policy_reloads_total{result=\"success\"} ")
            .await
            > reloads
    );

    // Audit: admitted, with a warning naming the image.
    fs::write(
        &policy_file,
        key_policy("verify-demo", &pattern, &f.other_pub, "Audit"),
    )
    .unwrap();
    eventually("the Audit policy is used", || async move {
        let r = wr
            .review("/mutate", &review_body("pod-create.json", &fr.signed))
            .await;
        r["allowed"] == true
    })
    .await;
    let resp = w
        .review("/mutate", &review_body("pod-create.json", &f.unsigned))
        .await;
    assert_allowed(&resp, "audit");
    let ws = warnings(&resp);
    assert!(
        ws.iter().any(|w| w.contains(&f.unsigned)),
        "no warning naming the image: {ws:?}"
    );

    // A broken edit: reported, and the Audit policy stays in force.
    fs::write(
        &policy_file,
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nspec: [",
    )
    .unwrap();
    eventually("the reload error is reported", || async move {
        let (_, r) = wr.get("/readyz").await;
        let r: Value = serde_json::from_str(&r).unwrap();
        r["lastReloadError"]
            .as_str()
            .is_some_and(|e| e.contains("verify.yaml"))
    })
    .await;
    assert_eq!(w.metric("sigil_webhook_policy_reload_failing ").await, 1.0);
    let resp = w
        .review("/mutate", &review_body("pod-create.json", &f.unsigned))
        .await;
    assert_allowed(&resp, "old policy after a failed reload");
    assert!(!warnings(&resp).is_empty());
    drop(f.keys);

    // SIGTERM: a clean exit.
    let mut w = w;
    let mut child = w.child.take().unwrap();
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        w.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_denies_within_the_deadline_when_the_registry_hangs() {
    // A "registry" that accepts connections and never answers.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_addr = hang.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hang.incoming().flatten() {
            held.push(s);
            if held.len() > 64 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(120));
    });
    let keys = tempfile::tempdir().unwrap();
    let pub_pem = key_pair(keys.path(), "k");
    let policies = tempfile::tempdir().unwrap();
    fs::write(
        policies.path().join("p.yaml"),
        key_policy("hang", &format!("{hang_addr}/*"), &pub_pem, "Enforce"),
    )
    .unwrap();
    let image = format!("{hang_addr}/demo/app:v1");
    let body = review_body("pod-create.json", &image);

    // failurePolicy Fail (the default): denied, within the 3 s webhook timeout.
    let w = start_webhook(
        policies.path(),
        &["--timeout", "3", "--deadline-margin-ms", "1000"],
    )
    .await;
    let t = Instant::now();
    let resp = w.review("/mutate", &body).await;
    let took = t.elapsed();
    let msg = deny_message(&resp, "hanging registry");
    assert!(msg.contains(&image), "{msg}");
    assert!(
        took < Duration::from_secs(3),
        "answered after {took:?}, beyond the 3 s webhook timeout"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "answered too early: {took:?}"
    );
    // The API server's own ?timeout= is honoured when smaller.
    let t = Instant::now();
    let (st, text) = w.post_raw("/mutate?timeout=1s", json_bytes(&body)).await;
    assert_eq!(st, StatusCode::OK);
    let v: Value = serde_json::from_str(&text).unwrap();
    deny_message(&v["response"], "hanging registry, ?timeout=1s");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(w);

    // --registry-failure allow: admitted, with a warning.
    let w = start_webhook(
        policies.path(),
        &["--timeout", "2", "--registry-failure", "allow"],
    )
    .await;
    let resp = w.review("/mutate", &body).await;
    assert_allowed(&resp, "registry-failure allow");
    assert!(!warnings(&resp).is_empty(), "{resp}");
}

/// Output of a running `sigil serve`, read by a thread.
struct Serve {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_serve(home: &Path) -> (Serve, u16, u16) {
    let (rp, wp) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    cmd.args(["serve", "--home"])
        .arg(home)
        .arg("--registry-addr")
        .arg(format!("127.0.0.1:{rp}"))
        .arg("--webhook-addr")
        .arg(format!("127.0.0.1:{wp}"))
        .env_remove("SIGIL_HOME")
        .env_remove("SIGIL_REGISTRY_ADDR")
        .env_remove("SIGIL_WEBHOOK_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for mut stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    (Serve { child, out }, rp, wp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigil_serve_runs_registry_and_webhook_with_a_generated_certificate() {
    let home = tempfile::tempdir().unwrap();
    let (mut serve, rp, wp) = start_serve(home.path());
    // Wait for the caBundle line.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ca_bundle = loop {
        let text = serve.out.lock().unwrap().clone();
        if let Some(b) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("caBundle:"))
        {
            break b.trim().to_owned();
        }
        if let Some(st) = serve.child.try_wait().unwrap() {
            panic!("sigil serve exited ({st}):\n{text}");
        }
        assert!(Instant::now() < deadline, "no caBundle printed:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = serve.out.lock().unwrap().clone();
    assert!(text.contains(&format!("http://127.0.0.1:{rp}")), "{text}");
    assert!(
        text.contains(&format!("https://127.0.0.1:{wp}/mutate")),
        "{text}"
    );
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(&ca_bundle)
        .unwrap();
    assert!(String::from_utf8_lossy(&ca_pem).contains("BEGIN CERTIFICATE"));
    assert!(home.path().join("policies").is_dir());
    assert!(home.path().join("tls/tls.crt").is_file());
    assert_eq!(
        fs::read(home.path().join("tls/ca.crt")).unwrap(),
        ca_pem,
        "caBundle is the CA on disk"
    );
    // The caBundle is all a client needs to trust the webhook.
    let client = https_client(&ca_pem);
    let base = format!("https://127.0.0.1:{wp}");
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == StatusCode::OK
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        healthy,
        "webhook not healthy:\n{}",
        serve.out.lock().unwrap()
    );
    let ready: Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["policies"], 0);
    assert!(ready["note"].as_str().unwrap().contains("admitted"));

    // The registry answers, and a new user's flow works: push, sign, see a decision.
    let http = Http::new(&format!("http://127.0.0.1:{rp}"));
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = http.get("/v2/").send().await
            && r.status() == StatusCode::OK
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "registry not answering:\n{}", serve.out.lock().unwrap());
    let img = push_small_image(&http, "team/api", "1.0", 801).await;
    push_small_image(&http, "team/api", "2.0", 802).await;
    let keys = tempfile::tempdir().unwrap();
    let pub_pem = key_pair(keys.path(), "cosign");
    let signed = format!("127.0.0.1:{rp}/team/api:1.0");
    let unsigned = format!("127.0.0.1:{rp}/team/api:2.0");
    sign(keys.path(), "cosign.key", &signed);

    let post = |body: Value| {
        let client = client.clone();
        let url = format!("{base}/mutate");
        async move {
            let v: Value = client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["response"].clone()
        }
    };
    // No policy yet: admitted as is.
    let resp = post(review_body("pod-create.json", &unsigned)).await;
    assert_allowed(&resp, "no policies");
    // A policy dropped into <home>/policies is picked up.
    fs::write(
        home.path().join("policies/verify.yaml"),
        key_policy(
            "team-api",
            &format!("127.0.0.1:{rp}/team/*"),
            &pub_pem,
            "Enforce",
        ),
    )
    .unwrap();
    eventually("the new policy is used", || {
        let unsigned = unsigned.clone();
        async move { post(review_body("pod-create.json", &unsigned)).await["allowed"] == false }
    })
    .await;
    let body = review_body("pod-create.json", &signed);
    let resp = post(body.clone()).await;
    assert_allowed(&resp, "signed, via sigil serve");
    let obj = patched(&body, &resp);
    assert_eq!(
        obj["spec"]["containers"][0]["image"],
        format!("{signed}@{}", img.digest())
    );
    let msg = deny_message(
        &post(review_body("pod-create.json", &unsigned)).await,
        "unsigned",
    );
    assert!(msg.contains(&unsigned), "{msg}");

    // A restart keeps the certificate (same caBundle).
    drop(serve);
    let (serve2, _, _) = start_serve(home.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = serve2.out.lock().unwrap().clone();
        if let Some(b) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("caBundle:"))
        {
            assert_eq!(b.trim(), ca_bundle, "the caBundle changed across restarts");
            break;
        }
        assert!(Instant::now() < deadline, "no caBundle printed:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- deploy/ ---------------------------------------------------------------------------------------

fn deploy_docs() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("deploy");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        for de in yaml_serde::Deserializer::from_str(&text) {
            let v = <Value as serde::Deserialize>::deserialize(de)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if !v.is_null() {
                out.push((f.clone(), v));
            }
        }
    }
    out
}

#[test]
fn deploy_manifests_are_consistent() {
    let docs = deploy_docs();
    let find = |kind: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|(_, v)| v["kind"] == kind)
            .map(|(_, v)| v)
            .collect()
    };
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "Kustomization",
    ] {
        assert_eq!(find(kind).len(), 1, "deploy/ needs exactly one {kind}");
    }
    let ns = find("Namespace")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    for (f, v) in &docs {
        let namespaced = !matches!(
            v["kind"].as_str().unwrap(),
            "Namespace"
                | "MutatingWebhookConfiguration"
                | "ValidatingWebhookConfiguration"
                | "Kustomization"
        );
        if namespaced {
            assert_eq!(v["metadata"]["namespace"], json!(ns), "{}", f.display());
        }
    }
    // kustomization lists every manifest file.
    let kust = find("Kustomization")[0];
    let listed: Vec<&str> = kust["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for (f, v) in &docs {
        if v["kind"] != "Kustomization" {
            let name = f.file_name().unwrap().to_str().unwrap();
            assert!(listed.contains(&name), "kustomization.yaml misses {name}");
        }
    }

    // Service → Deployment pods and port.
    let dep = find("Deployment")[0];
    let svc = find("Service")[0];
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    for (k, val) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[k], val,
            "Service selector {k} does not select the pods"
        );
    }
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    let container = &dep["spec"]["template"]["spec"]["containers"][0];
    let port_name = svc["spec"]["ports"][0]["targetPort"].as_str().unwrap();
    assert!(
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port_name),
        "targetPort {port_name} is not a container port"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS");

    // Container args: `webhook serve` with flags the binary knows; mounts exist.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], &["webhook", "serve"]);
    let help = String::from_utf8(expect_success(
        "webhook serve --help",
        &sigil(&["webhook", "serve", "--help"]),
    ))
    .unwrap();
    let arg = |flag: &str| -> String {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{flag}=")))
            .unwrap_or_else(|| panic!("no {flag}= in {args:?}"))
            .to_owned()
    };
    for a in &args[2..] {
        let flag = a.split('=').next().unwrap();
        assert!(help.contains(flag), "`sigil webhook serve` has no {flag}");
    }
    let mounts = container["volumeMounts"].as_array().unwrap();
    let volumes = dep["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    for path in [arg("--policies"), arg("--tls-cert"), arg("--tls-key")] {
        let m = mounts
            .iter()
            .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{path} is not under a volume mount"));
        assert!(volumes.iter().any(|v| v["name"] == m["name"]));
    }
    let cm = find("ConfigMap")[0];
    let policies_volume = volumes.iter().find(|v| v["configMap"].is_object()).unwrap();
    assert_eq!(policies_volume["configMap"]["name"], cm["metadata"]["name"]);

    // The webhooks call the Service, speak v1, have no side effects, and time out as --timeout says.
    let timeout: i64 = arg("--timeout").parse().unwrap();
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let cfg = find(kind)[0];
        let hooks = cfg["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 1);
        let h = &hooks[0];
        assert_eq!(h["admissionReviewVersions"], json!(["v1"]), "{kind}");
        assert_eq!(h["sideEffects"], "None", "{kind}");
        assert_eq!(h["timeoutSeconds"], json!(timeout), "{kind}");
        assert!(matches!(
            h["failurePolicy"].as_str(),
            Some("Fail" | "Ignore")
        ));
        let s = &h["clientConfig"]["service"];
        assert_eq!(s["name"], svc["metadata"]["name"]);
        assert_eq!(s["namespace"], json!(ns));
        assert_eq!(s["port"], svc["spec"]["ports"][0]["port"]);
        let want = if kind.starts_with("Mutating") {
            "/mutate"
        } else {
            "/validate"
        };
        assert_eq!(s["path"], want);
        let resources: Vec<&str> = h["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["resources"].as_array().unwrap())
            .map(|r| r.as_str().unwrap())
            .collect();
        for r in [
            "pods",
            "pods/ephemeralcontainers",
            "deployments",
            "cronjobs",
            "jobs",
        ] {
            assert!(resources.contains(&r), "{kind} misses {r}");
        }
    }

    // The ConfigMap's policies load.
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in cm["data"].as_object().unwrap() {
        fs::write(dir.path().join(name), text.as_str().unwrap()).unwrap();
    }
    let loaded = sigil_engine::load_policy_files(&[dir.path().to_owned()])
        .unwrap_or_else(|e| panic!("deploy/policies-configmap.yaml: {e}"));
    assert!(!loaded.is_empty());

    // Dockerfile: multi-stage, builds the sigil binary, small non-root runtime image.
    let dockerfile = fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    assert_eq!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2
    );
    assert!(dockerfile.contains("cargo build --release --locked -p sigil"));
    assert!(dockerfile.contains("distroless/static"));
    assert!(dockerfile.contains("USER 65532"));
    assert!(repo_root().join(".dockerignore").is_file());
}

// ---- attestor kinds through the webhook --------------------------------------------------------------

/// A key attestor entry (sigil signs without a transparency log).
fn key_entry(pem: &str) -> Value {
    json!({"keys": {"publicKeys": pem, "rekor": {"ignoreTlog": true}, "ctlog": {"ignoreSCT": true}}})
}

fn json_policy(name: &str, pattern: &str, attestors: Value) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"rules": [{
            "name": "verify",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "verifyImages": [{
                "imageReferences": [pattern],
                "failureAction": "Enforce",
                "mutateDigest": true,
                "attestors": attestors,
            }],
        }]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_counts_nested_sets_and_certificates() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let addr = reg.addr();
    let keys = tempfile::tempdir().unwrap();
    let d = keys.path();
    let (ka, kb, kc) = (key_pair(d, "a"), key_pair(d, "b"), key_pair(d, "c"));
    // multi/app:ab signed by a and b; :a by a; :bc by b and c.
    for (tag, seed, signers) in [
        ("ab", 901, &["a", "b"][..]),
        ("a", 902, &["a"][..]),
        ("bc", 903, &["b", "c"][..]),
    ] {
        push_small_image(&http, "multi/app", tag, seed).await;
        for s in signers {
            sign(d, &format!("{s}.key"), &format!("{addr}/multi/app:{tag}"));
        }
    }
    // certs/app:signed signed with a certificate's key (leaf + intermediate + root).
    let (root, root_issuer) = ca("webhook test root", None);
    let (inter, inter_issuer) = ca("webhook test intermediate", Some(&root_issuer));
    let (leaf_pem, leaf_key) = leaf(&inter_issuer, "signer@example.test");
    let chain = format!("{}{}", inter.pem(), root.pem());
    fs::write(d.join("leaf.pem"), &leaf_pem).unwrap();
    fs::write(d.join("leaf.key"), leaf_key).unwrap();
    fs::write(d.join("chain.pem"), &chain).unwrap();
    let cert_img = push_small_image(&http, "certs/app", "signed", 904).await;
    push_small_image(&http, "certs/app", "unsigned", 905).await;
    let cert_signed = format!("{addr}/certs/app:signed");
    expect_success(
        "sign --certificate",
        &run_in(
            d,
            &[
                "sign",
                "--key",
                "leaf.key",
                "--certificate",
                "leaf.pem",
                "--certificate-chain",
                "chain.pem",
                &cert_signed,
            ],
        ),
    );

    let multi = format!("{addr}/multi/*");
    let docs = [
        // Two of three keys.
        json_policy(
            "count-two",
            &multi,
            json!([{"count": 2, "entries": [key_entry(&ka), key_entry(&kb), key_entry(&kc)]}]),
        ),
        // a, and (b or c).
        json_policy(
            "nested",
            &multi,
            json!([{"entries": [
                key_entry(&ka),
                {"attestor": {"count": 1, "entries": [key_entry(&kb), key_entry(&kc)]}},
            ]}]),
        ),
        json_policy(
            "cert",
            &format!("{addr}/certs/*"),
            json!([{"entries": [{"certificates": {
                "cert": leaf_pem,
                "certChain": chain,
                "rekor": {"ignoreTlog": true},
                "ctlog": {"ignoreSCT": true},
            }}]}]),
        ),
    ];
    let policies = tempfile::tempdir().unwrap();
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_json::to_string_pretty(d).unwrap())
        .collect();
    fs::write(policies.path().join("kinds.yaml"), text.join("\n---\n")).unwrap();
    let w = start_webhook(policies.path(), &[]).await;

    // Passes: Pod, Deployment and CronJob bodies.
    for (fixture, image) in [
        ("pod-create.json", format!("{addr}/multi/app:ab")),
        ("deployment-create.json", format!("{addr}/multi/app:ab")),
        ("cronjob-create.json", cert_signed.clone()),
        ("deployment-create.json", cert_signed.clone()),
    ] {
        let body = review_body(fixture, &image);
        let resp = w.review("/mutate", &body).await;
        assert_allowed(&resp, &format!("{fixture} {image}"));
        let obj = patched(&body, &resp);
        let ann = annotation(&obj);
        assert!(
            ann.as_object().unwrap().values().all(|v| v == "pass"),
            "{fixture} {image}: {ann}"
        );
    }
    let body = review_body("pod-create.json", &cert_signed);
    let obj = patched(&body, &w.review("/mutate", &body).await);
    assert_eq!(
        obj["spec"]["containers"][0]["image"],
        format!("{cert_signed}@{}", cert_img.digest())
    );

    // Failures name the image and the failing policy (only that one).
    let msg = deny_message(
        &w.review(
            "/mutate",
            &review_body("pod-create.json", &format!("{addr}/multi/app:a")),
        )
        .await,
        "only key a",
    );
    assert!(msg.contains("multi/app:a"), "{msg}");
    assert!(msg.contains("count-two") && msg.contains("nested"), "{msg}");
    let msg = deny_message(
        &w.review(
            "/mutate",
            &review_body("cronjob-create.json", &format!("{addr}/multi/app:bc")),
        )
        .await,
        "keys b and c",
    );
    assert!(msg.contains("multi/app:bc"), "{msg}");
    assert!(
        msg.contains("nested") && !msg.contains("count-two"),
        "{msg}"
    );
    let unsigned = format!("{addr}/certs/app:unsigned");
    let msg = deny_message(
        &w.review("/mutate", &review_body("deployment-create.json", &unsigned))
            .await,
        "certificate, unsigned",
    );
    assert!(msg.contains(&unsigned) && msg.contains("cert"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_picks_up_a_rotated_serving_certificate() {
    let policies = tempfile::tempdir().unwrap();
    let w = start_webhook(policies.path(), &[]).await;
    let old_pem = fs::read(w.dir.path().join("cert.pem")).unwrap();
    let healthz = w.url("/healthz");
    let works = |ca: Vec<u8>| {
        let url = healthz.clone();
        async move {
            https_client(&ca)
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        }
    };
    assert!(works(old_pem.clone()).await);
    // Rotate: key first, then the certificate (as a Secret update may land).
    let new = TlsFiles::self_signed();
    fs::write(w.dir.path().join("key.pem"), &new.key_pem).unwrap();
    fs::write(w.dir.path().join("cert.pem"), &new.cert_pem).unwrap();
    let new_pem = new.cert_pem.as_bytes().to_vec();
    eventually("the new certificate is served", || works(new_pem.clone())).await;
    assert!(
        !works(old_pem).await,
        "new connections must not see the old certificate"
    );
    // A broken rotation keeps the current certificate.
    fs::write(w.dir.path().join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(works(new_pem).await, "{}", w.log());
    assert!(
        w.log().contains("serving certificate reload failed"),
        "{}",
        w.log()
    );
}

#[test]
fn webhook_serve_refuses_bad_policies_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls = TlsFiles::self_signed();
    fs::write(d.join("cert.pem"), &tls.cert_pem).unwrap();
    fs::write(d.join("key.pem"), &tls.key_pem).unwrap();
    fs::create_dir_all(d.join("policies")).unwrap();
    fs::write(
        d.join("policies/bad.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nspec: [\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut cmd = sigil_command(&["webhook", "serve", "--addr", "127.0.0.1:0"]);
        cmd.args(args).current_dir(d);
        run_command(cmd)
    };
    for (args, needles) in [
        (
            &[
                "--policies",
                "policies",
                "--tls-cert",
                "cert.pem",
                "--tls-key",
                "key.pem",
            ][..],
            &["bad.yaml", "malformed YAML"][..],
        ),
        (
            &[
                "--policies",
                "nowhere",
                "--tls-cert",
                "cert.pem",
                "--tls-key",
                "key.pem",
            ][..],
            &["nowhere", "no such file"][..],
        ),
        (
            &[
                "--policies",
                "policies",
                "--tls-cert",
                "missing.pem",
                "--tls-key",
                "key.pem",
            ][..],
            &["missing.pem"][..],
        ),
        (
            // The key of another certificate.
            &[
                "--policies",
                "policies",
                "--tls-cert",
                "cert.pem",
                "--tls-key",
                "other.pem",
            ][..],
            &["other.pem", "does not belong"][..],
        ),
    ] {
        if args.contains(&"other.pem") {
            fs::write(d.join("other.pem"), TlsFiles::self_signed().key_pem).unwrap();
        }
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
        }
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

/// A CA-signed code-signing leaf for `sigil notary sign`: (leaf key PEM, chain PEM leaf first).
fn notary_signer(
    cn: &str,
    root: &rcgen::Certificate,
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "sigil tests");
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    let leaf = p.signed_by(&key, issuer).unwrap();
    (key.serialize_pem(), format!("{}{}", leaf.pem(), root.pem()))
}

/// Keyless (`SigstoreBundle`: a cosign v3 statement signed by sigstore-python against @sigstore/mock,
/// attached as a referrer, verified with `--trusted-root`) and Notary (`sigil notary sign`, a
/// `certificates` attestor holding the root) policies through the webhook: signed images are admitted
/// and pinned to their digest; unsigned images, another identity and another CA's signature are denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_keyless_and_notary_attestors() {
    const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    const IDENTITY: &str =
        "https://ci.example.test/team/app/.github/workflows/release.yml@refs/heads/main";
    const ISSUER: &str = "https://issuer.example.test";
    let Some(py) = oracle_python("sigstore.sign") else {
        return;
    };
    let Some(mock) = SigstoreMock::start() else {
        return;
    };
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let addr = reg.addr();
    let work = tempfile::tempdir().unwrap();
    let d = work.path();

    // Keyless: cosign v3's image signature statement, in a bundle referrer.
    let keyless_img = push_small_image(&http, "keyless/app", "signed", 961).await;
    push_small_image(&http, "keyless/app", "unsigned", 962).await;
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("{addr}/keyless/app"),
                     "digest": {"sha256": keyless_img.digest().trim_start_matches("sha256:")}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    });
    fs::write(d.join("statement.json"), statement.to_string()).unwrap();
    mock.sign(
        &py,
        IDENTITY,
        ISSUER,
        true,
        &d.join("statement.json"),
        &d.join("bundle.json"),
    );
    let keyless_signed = format!("{addr}/keyless/app:signed");
    expect_success(
        "attach the bundle",
        &run_in(
            d,
            &[
                "attach",
                "--artifact-type",
                BUNDLE,
                &keyless_signed,
                &format!("bundle.json:{BUNDLE}"),
            ],
        ),
    );

    // Notary: signed by a leaf of the trusted root, and by a leaf of another root.
    let (root, root_issuer) = ca("notary trusted root", None);
    let (other_root, other_issuer) = ca("notary other root", None);
    let notary_img = push_small_image(&http, "notary/app", "signed", 963).await;
    push_small_image(&http, "notary/app", "other", 964).await;
    push_small_image(&http, "notary/app", "unsigned", 965).await;
    for (tag, cn, root, issuer) in [
        ("signed", "trusted signer", &root, &root_issuer),
        ("other", "other signer", &other_root, &other_issuer),
    ] {
        let (key, chain) = notary_signer(cn, root, issuer);
        fs::write(d.join(format!("{tag}.key")), key).unwrap();
        fs::write(d.join(format!("{tag}.chain.pem")), chain).unwrap();
        let key_file = format!("{tag}.key");
        let chain_file = format!("{tag}.chain.pem");
        expect_success(
            "notary sign",
            &run_in(
                d,
                &[
                    "notary",
                    "sign",
                    &format!("{addr}/notary/app:{tag}"),
                    "--key",
                    &key_file,
                    "--cert",
                    &chain_file,
                ],
            ),
        );
    }

    let mut keyless = json_policy(
        "keyless",
        &format!("{addr}/keyless/*"),
        json!([{"entries": [{"keyless": {
            "subject": IDENTITY,
            "issuer": ISSUER,
            "rekor": {"url": mock.url},
        }}]}]),
    );
    keyless["spec"]["rules"][0]["verifyImages"][0]["type"] = json!("SigstoreBundle");
    let mut notary = json_policy(
        "notary",
        &format!("{addr}/notary/*"),
        json!([{"entries": [{"certificates": {"cert": root.pem()}}]}]),
    );
    notary["spec"]["rules"][0]["verifyImages"][0]["type"] = json!("Notary");
    let policies = tempfile::tempdir().unwrap();
    let text: Vec<String> = [keyless, notary]
        .iter()
        .map(|d| serde_json::to_string_pretty(d).unwrap())
        .collect();
    fs::write(policies.path().join("kinds.yaml"), text.join("\n---\n")).unwrap();
    let root_file = mock.trusted_root.display().to_string();
    let w = start_webhook(policies.path(), &["--trusted-root", &root_file]).await;

    for (fixture, image, digest) in [
        (
            "pod-create.json",
            keyless_signed.clone(),
            keyless_img.digest(),
        ),
        (
            "deployment-create.json",
            format!("{addr}/notary/app:signed"),
            notary_img.digest(),
        ),
        (
            "cronjob-create.json",
            format!("{addr}/notary/app:signed"),
            notary_img.digest(),
        ),
    ] {
        let body = review_body(fixture, &image);
        let resp = w.review("/mutate", &body).await;
        assert_allowed(&resp, &format!("{fixture} {image}"));
        let obj = patched(&body, &resp);
        let ann = annotation(&obj);
        assert_eq!(
            ann,
            json!({format!("{}@{digest}", image.rsplit_once(':').unwrap().0): "pass"}),
            "{fixture} {image}"
        );
        let text = obj.to_string();
        assert!(
            text.contains(&format!("{image}@{digest}")),
            "{fixture}: not pinned: {text}"
        );
    }
    for (image, why) in [
        (format!("{addr}/keyless/app:unsigned"), "keyless, unsigned"),
        (format!("{addr}/notary/app:other"), "notary, another CA"),
        (format!("{addr}/notary/app:unsigned"), "notary, unsigned"),
    ] {
        let msg = deny_message(
            &w.review("/mutate", &review_body("pod-create.json", &image))
                .await,
            why,
        );
        assert!(msg.contains(&image), "{why}: {msg}");
    }
    drop(w);

    // The same keyless policy asking for another identity denies the signed image.
    let mut wrong = json_policy(
        "keyless-other",
        &format!("{addr}/keyless/*"),
        json!([{"entries": [{"keyless": {
            "subject": "https://ci.example.test/someone-else",
            "issuer": ISSUER,
            "rekor": {"url": mock.url},
        }}]}]),
    );
    wrong["spec"]["rules"][0]["verifyImages"][0]["type"] = json!("SigstoreBundle");
    let policies = tempfile::tempdir().unwrap();
    fs::write(
        policies.path().join("p.yaml"),
        serde_json::to_string_pretty(&wrong).unwrap(),
    )
    .unwrap();
    let w = start_webhook(policies.path(), &["--trusted-root", &root_file]).await;
    let msg = deny_message(
        &w.review("/mutate", &review_body("pod-create.json", &keyless_signed))
            .await,
        "keyless, other identity",
    );
    assert!(msg.contains(&keyless_signed), "{msg}");
}
