//! `sigil policy apply` and `sigil policy test` end to end: images pushed to `sigil registry serve`,
//! signed with `sigil sign` / `sigil attest` (keys, a certificate chain made with rcgen, `--bundle`
//! referrers) or keylessly by sigstore-python against @sigstore/mock (bundles attached with
//! `sigil attach`), and Kyverno `ClusterPolicy` documents referring to them.
//!
//! Covered: every attestor kind with a pass and a fail case (one key; several keys with `count` unset
//! = all, and `count: 1`; two PEM blocks in one `publicKeys`; nested attestor sets; two AND-ed sets;
//! `certificates` with `certChain`; `keyless` `SigstoreBundle` with `--trusted-root`, exact, wildcard
//! and regexp identities, wrong subject or issuer; `SigstoreBundle` with a key), Pods, Deployments
//! (`autogen-<rule>`) and CronJobs (`autogen-cronjob-<rule>`); Audit vs `--audit-warn`; attestation
//! conditions (one policy per operator family, pass and fail; a keyless SLSA provenance); two policies
//! of one file sharing a rule name; `mutateDigest` written by `--patched-resources`; resource
//! directories and `List`s; a rule `context` variable supplying the key (pass, fail, error); `type: Notary` with an unusable certificate as an error (never a pass); unreachable and hanging registries; the
//! Kyverno policies of `tests/data/policy/kyverno` (copied from upstream) through `policy apply`, and
//! the upstream `cli/verify-signature` test adapted to the local registry through `policy test`;
//! `policy test` mismatches and `patchedResources`; bad input (one clear line each).
//!
//! The keyless cases skip when node/@sigstore/mock or sigstore-python are missing, unless
//! `SIGIL_REQUIRE_ORACLES=1`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::util::*;

const PASSWORD: &str = "policy test password";
const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A registry, a scratch directory with keys, and helpers to sign and apply.
struct Env {
    reg: SigilRegistry,
    http: Http,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        crypto_init();
        let reg = SigilRegistry::start_default();
        let http = reg.http();
        Env {
            reg,
            http,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    fn addr(&self) -> String {
        self.reg.addr()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = sigil_command(args);
        cmd.current_dir(self.d()).env("COSIGN_PASSWORD", PASSWORD);
        run_command(cmd)
    }

    /// `generate-key-pair --output-key-prefix NAME`; returns the public key PEM.
    fn keypair(&self, name: &str) -> String {
        expect_success(
            "generate-key-pair",
            &self.run(&["generate-key-pair", "--output-key-prefix", name]),
        );
        std::fs::read_to_string(self.d().join(format!("{name}.pub"))).unwrap()
    }

    /// Pushes a small image; returns its digest.
    async fn image(&self, repo: &str, tag: &str, seed: u64) -> String {
        push_small_image(&self.http, repo, tag, seed)
            .await
            .digest()
            .to_owned()
    }

    /// `sigil sign --key NAME.key REF`.
    fn sign(&self, key: &str, reference: &str) {
        expect_success(
            &format!("sign {reference} with {key}"),
            &self.run(&["sign", "--key", &format!("{key}.key"), reference]),
        );
    }

    fn write(&self, name: &str, content: &str) -> String {
        let p = self.d().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }

    /// Writes documents as a multi-document YAML file.
    fn write_yaml(&self, name: &str, docs: &[Value]) -> String {
        let text = docs
            .iter()
            .map(|d| yaml_serde::to_string(d).unwrap())
            .collect::<Vec<_>>()
            .join("---\n");
        self.write(name, &text)
    }

    /// `policy apply -o json` with extra arguments.
    fn apply(&self, policies: &[&str], resources: &[&str], extra: &[&str]) -> Applied {
        let mut args = vec!["policy", "apply"];
        for p in policies {
            args.extend(["-p", p]);
        }
        for r in resources {
            args.extend(["-r", r]);
        }
        args.extend(["-o", "json"]);
        args.extend(extra);
        let out = self.run(&args);
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "policy apply printed no JSON ({e}):\nstdout: {}\nstderr: {}",
                stdout(&out),
                stderr(&out)
            )
        });
        Applied {
            code: out.status.code(),
            doc,
            stderr: stderr(&out),
        }
    }
}

/// The JSON result of `policy apply -o json`.
struct Applied {
    code: Option<i32>,
    doc: Value,
    stderr: String,
}

impl Applied {
    fn resource(&self, name: &str) -> &Value {
        self.doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no resource {name} in {:#}", self.doc))
    }

    /// The rule results of `policy` on resource `name`.
    fn rules(&self, name: &str, policy: &str) -> Vec<&Value> {
        self.resource(name)["review"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["policy"] == policy)
            .collect()
    }

    /// `(rule name, status)` of the single rule of `policy` applied to `name`.
    fn outcome(&self, name: &str, policy: &str) -> (String, String) {
        let rules = self.rules(name, policy);
        assert_eq!(
            rules.len(),
            1,
            "{name} / {policy}: want one rule result in {:#}",
            self.resource(name)
        );
        (
            rules[0]["rule"].as_str().unwrap().to_owned(),
            rules[0]["status"].as_str().unwrap().to_owned(),
        )
    }

    fn status(&self, name: &str, policy: &str) -> String {
        self.outcome(name, policy).1
    }

    fn summary(&self, field: &str) -> u64 {
        self.doc["summary"][field].as_u64().unwrap()
    }

    fn dump(&self) -> String {
        format!(
            "exit {:?}\n{:#}\nstderr: {}",
            self.code, self.doc, self.stderr
        )
    }
}

/// A key attestor entry (sigil signs offline: no tlog, as cosign `--tlog-upload=false`).
fn key_entry(pem: &str) -> Value {
    json!({"keys": {
        "publicKeys": pem,
        "rekor": {"url": "https://rekor.sigstore.dev", "ignoreTlog": true},
        "ctlog": {"ignoreSCT": true},
    }})
}

/// A ClusterPolicy with one Pod rule holding one `verifyImages` entry.
fn policy(name: &str, rule: &str, verify: Value) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "background": false,
            "rules": [{
                "name": rule,
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [verify],
            }],
        },
    })
}

fn verify_entry(pattern: &str, attestors: Value) -> Value {
    json!({
        "imageReferences": [pattern],
        "failureAction": "Enforce",
        "mutateDigest": false,
        "verifyDigest": false,
        "attestors": attestors,
    })
}

fn pod(name: &str, images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": containers},
    })
}

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    })
}

fn cronjob(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "job", "image": image}],
            }}}},
        },
    })
}

// ---- keys, counts, nested sets, autogen ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn keys_counts_nested_sets_and_autogen() {
    let env = Env::new();
    let addr = env.addr();
    let (ka, kb, kc) = (env.keypair("a"), env.keypair("b"), env.keypair("c"));
    let img = |tag: &str| format!("{addr}/keys/app:{tag}");
    env.image("keys/app", "a", 1).await;
    env.image("keys/app", "b", 2).await;
    env.image("keys/app", "ab", 3).await;
    env.image("keys/app", "none", 4).await;
    env.sign("a", &img("a"));
    env.sign("b", &img("b"));
    env.sign("a", &img("ab"));
    env.sign("b", &img("ab"));
    let pattern = format!("{addr}/keys/*");

    let policies = [
        policy(
            "single-key",
            "check-a",
            verify_entry(&pattern, json!([{"entries": [key_entry(&ka)]}])),
        ),
        policy(
            "all-keys",
            "check-ab",
            verify_entry(
                &pattern,
                json!([{"entries": [key_entry(&ka), key_entry(&kb)]}]),
            ),
        ),
        policy(
            "any-key",
            "check-a-or-b",
            verify_entry(
                &pattern,
                json!([{"count": 1, "entries": [key_entry(&ka), key_entry(&kb)]}]),
            ),
        ),
        // Two PEM blocks in one entry are split into two entries, `count` applying across them.
        policy(
            "two-pems-count-1",
            "check",
            verify_entry(
                &pattern,
                json!([{"count": 1, "entries": [key_entry(&format!("{ka}{kb}"))]}]),
            ),
        ),
        // Nested: C, or (A and B).
        policy(
            "nested",
            "check-nested",
            verify_entry(
                &pattern,
                json!([{"count": 1, "entries": [
                    key_entry(&kc),
                    {"attestor": {"entries": [key_entry(&ka), key_entry(&kb)]}},
                ]}]),
            ),
        ),
        // Two sets are AND-ed: A, and (B or C).
        policy(
            "two-sets",
            "check-sets",
            verify_entry(
                &pattern,
                json!([
                    {"entries": [key_entry(&ka)]},
                    {"count": 1, "entries": [key_entry(&kb), key_entry(&kc)]},
                ]),
            ),
        ),
    ];
    let p = env.write_yaml("keys-policies.yaml", &policies);
    let resources = env.write_yaml(
        "keys-resources.yaml",
        &[
            pod("pod-a", &[&img("a")]),
            pod("pod-b", &[&img("b")]),
            pod("pod-ab", &[&img("ab")]),
            pod("pod-none", &[&img("none")]),
        ],
    );
    let out = env.apply(&[&p], &[&resources], &[]);
    let expect = [
        ("pod-a", "single-key", "pass"),
        ("pod-b", "single-key", "fail"),
        ("pod-ab", "single-key", "pass"),
        ("pod-none", "single-key", "fail"),
        ("pod-a", "all-keys", "fail"),
        ("pod-b", "all-keys", "fail"),
        ("pod-ab", "all-keys", "pass"),
        ("pod-a", "any-key", "pass"),
        ("pod-b", "any-key", "pass"),
        ("pod-none", "any-key", "fail"),
        ("pod-b", "two-pems-count-1", "pass"),
        ("pod-none", "two-pems-count-1", "fail"),
        ("pod-ab", "nested", "pass"),
        ("pod-a", "nested", "fail"),
        ("pod-b", "nested", "fail"),
        ("pod-ab", "two-sets", "pass"),
        ("pod-a", "two-sets", "fail"),
        ("pod-b", "two-sets", "fail"),
    ];
    for (res, pol, want) in expect {
        assert_eq!(
            out.status(res, pol),
            want,
            "{res} under {pol}:\n{}",
            out.dump()
        );
    }
    // A failing image's trace names the attestor entry and the failed check.
    let failing = &out.rules("pod-none", "single-key")[0]["images"][0];
    assert_eq!(failing["status"], "fail", "{failing:#}");
    assert!(
        failing["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "the tag is resolved to a digest: {failing:#}"
    );
    let trace = failing["trace"].as_array().unwrap();
    assert!(
        trace
            .iter()
            .any(|s| s["path"].as_str().unwrap().contains("attestors[0]") && s["status"] == "fail"),
        "{failing:#}"
    );
    assert_eq!(out.code, Some(1), "failures exit 1:\n{}", out.dump());
    assert_eq!(out.summary("fail"), 13, "{}", out.dump());
    assert_eq!(out.summary("error"), 0, "{}", out.dump());
    assert_eq!(out.summary("pass"), 11, "{}", out.dump());

    // Only passing resources: exit 0; the text output has one line per rule and the summary.
    let good = env.write_yaml("good.yaml", &[pod("pod-ab", &[&img("ab")])]);
    let text = env.run(&["policy", "apply", &p, "-r", &good]);
    assert_eq!(
        text.status.code(),
        Some(0),
        "{}{}",
        stdout(&text),
        stderr(&text)
    );
    let s = stdout(&text);
    assert!(s.contains("Pod default/pod-ab"), "{s}");
    assert!(s.contains("pass   nested/check-nested"), "{s}");
    assert!(s.contains(&format!("{} @ sha256:", img("ab"))), "{s}");
    assert!(
        s.trim_end()
            .ends_with("pass: 6, fail: 0, warn: 0, error: 0, skip: 0"),
        "{s}"
    );

    // A key entry without `ignoreTlog`: Kyverno verifies the transparency log by default, and sigil's
    // offline signatures have none, so it must not pass.
    let strict = policy(
        "tlog-required",
        "check",
        verify_entry(
            &pattern,
            json!([{"entries": [{"keys": {"publicKeys": ka}}]}]),
        ),
    );
    let strict_p = env.write_yaml("tlog.yaml", &[strict]);
    let out = env.apply(&[&strict_p], &[&good], &[]);
    assert_ne!(
        out.status("pod-ab", "tlog-required"),
        "pass",
        "{}",
        out.dump()
    );
    assert_eq!(out.code, Some(1), "{}", out.dump());

    // Autogen: the Pod rule applies to a Deployment as `autogen-<rule>` and to a CronJob as
    // `autogen-cronjob-<rule>`.
    let controllers = env.write_yaml(
        "controllers.yaml",
        &[
            deployment("web", &img("a")),
            deployment("web-unsigned", &img("none")),
            cronjob("nightly", &img("a")),
            cronjob("nightly-unsigned", &img("b")),
        ],
    );
    let single = env.write_yaml("single.yaml", &[policies[0].clone()]);
    let out = env.apply(&[&single], &[&controllers], &[]);
    for (res, rule, want) in [
        ("web", "autogen-check-a", "pass"),
        ("web-unsigned", "autogen-check-a", "fail"),
        ("nightly", "autogen-cronjob-check-a", "pass"),
        ("nightly-unsigned", "autogen-cronjob-check-a", "fail"),
    ] {
        assert_eq!(
            out.outcome(res, "single-key"),
            (rule.to_owned(), want.to_owned()),
            "{res}:\n{}",
            out.dump()
        );
    }
    // The pointer of a controller's image is in its pod template.
    let images = &out.rules("web", "single-key")[0]["images"];
    assert_eq!(
        images[0]["pointer"], "/spec/template/spec/containers/0/image",
        "{images:#}"
    );

    // Audit: the failure is reported; with --audit-warn it is a warning and the exit status is 0.
    let mut audit = policies[0].clone();
    audit["spec"]["rules"][0]["verifyImages"][0]["failureAction"] = json!("Audit");
    audit["metadata"]["name"] = json!("audit-only");
    let audit_p = env.write_yaml("audit.yaml", &[audit]);
    let bad = env.write_yaml("bad.yaml", &[pod("pod-none", &[&img("none")])]);
    let out = env.apply(&[&audit_p], &[&bad], &[]);
    assert_eq!(
        out.code,
        Some(1),
        "Audit failures count as failures:\n{}",
        out.dump()
    );
    assert_eq!(out.summary("fail"), 1, "{}", out.dump());
    let out = env.apply(&[&audit_p], &[&bad], &["--audit-warn"]);
    assert_eq!(out.code, Some(0), "{}", out.dump());
    assert_eq!(
        (out.summary("fail"), out.summary("warn")),
        (0, 1),
        "{}",
        out.dump()
    );
}

/// Two policies in one file with the same rule name are different decisions: the verification of one
/// must never be reused for the other (a cache or coalescing key without the policy's identity would
/// let policy B pass on policy A's key).
#[tokio::test(flavor = "multi_thread")]
async fn policies_sharing_a_file_and_a_rule_name_are_decided_separately() {
    let env = Env::new();
    let addr = env.addr();
    let (ka, kb) = (env.keypair("a"), env.keypair("b"));
    env.image("shared/app", "v1", 5).await;
    let image = format!("{addr}/shared/app:v1");
    env.sign("a", &image);
    let pattern = format!("{addr}/shared/*");
    let p = env.write_yaml(
        "same-rule.yaml",
        &[
            policy(
                "trusts-a",
                "verify",
                verify_entry(&pattern, json!([{"entries": [key_entry(&ka)]}])),
            ),
            policy(
                "trusts-b",
                "verify",
                verify_entry(&pattern, json!([{"entries": [key_entry(&kb)]}])),
            ),
        ],
    );
    let r = env.write_yaml("same-rule-pod.yaml", &[pod("p", &[&image])]);
    let out = env.apply(&[&p], &[&r], &[]);
    assert_eq!(out.status("p", "trusts-a"), "pass", "{}", out.dump());
    assert_eq!(out.status("p", "trusts-b"), "fail", "{}", out.dump());
    assert_eq!(out.code, Some(1), "{}", out.dump());
}

/// A rule `context` variable supplies the key (`publicKeys: "{{ pubkey }}"`), chosen by a label of
/// the Pod: the signer's key passes, the other key fails (exit 1), an unknown team is an error.
#[tokio::test(flavor = "multi_thread")]
async fn context_variable_supplies_the_key() {
    let env = Env::new();
    let addr = env.addr();
    let (ka, kb) = (env.keypair("a"), env.keypair("b"));
    env.image("ctx/app", "v1", 41).await;
    let image = format!("{addr}/ctx/app:v1");
    env.sign("a", &image);
    let mut doc = policy(
        "ctx-key",
        "verify",
        verify_entry(
            &format!("{addr}/ctx/*"),
            json!([{"entries": [key_entry("{{ pubkey }}")]}]),
        ),
    );
    doc["spec"]["rules"][0]["context"] = json!([
        {"name": "team", "variable": {"jmesPath": "request.object.metadata.labels.team", "default": "alpha"}},
        {"name": "pubkey", "variable": {"value": {"alpha": ka, "beta": kb}, "jmesPath": "\"{{ team }}\""}},
    ]);
    let p = env.write_yaml("ctx-policy.yaml", &[doc]);
    let labelled = |name: &str, team: &str| {
        let mut p = pod(name, &[&image]);
        p["metadata"]["labels"] = json!({ "team": team });
        p
    };
    let pass = env.write_yaml("ctx-pass.yaml", &[pod("p-alpha", &[&image])]);
    let out = env.apply(&[&p], &[&pass], &[]);
    assert_eq!(out.status("p-alpha", "ctx-key"), "pass", "{}", out.dump());
    assert_eq!(out.code, Some(0), "{}", out.dump());
    let fail = env.write_yaml("ctx-fail.yaml", &[labelled("p-beta", "beta")]);
    let out = env.apply(&[&p], &[&fail], &[]);
    assert_eq!(out.status("p-beta", "ctx-key"), "fail", "{}", out.dump());
    assert_eq!(out.code, Some(1), "{}", out.dump());
    let unknown = env.write_yaml("ctx-unknown.yaml", &[labelled("p-gamma", "gamma")]);
    let out = env.apply(&[&p], &[&unknown], &[]);
    assert_eq!(out.status("p-gamma", "ctx-key"), "error", "{}", out.dump());
    assert_ne!(out.code, Some(0), "{}", out.dump());
    assert!(
        out.dump().contains("spec.rules[0].context[1]"),
        "{}",
        out.dump()
    );
}

/// Kyverno's `images` variable in a precondition and in `validate.deny`: the precondition skips
/// images whose name is not `app` (even an unsigned one that matches `imageReferences`), the deny
/// condition rejects a retired tag of a signed image.
#[tokio::test(flavor = "multi_thread")]
async fn images_variable_in_preconditions_and_deny() {
    let env = Env::new();
    let addr = env.addr();
    let pem = env.keypair("img");
    env.image("img/app", "v1", 43).await;
    env.image("img/app", "retired", 43).await;
    env.image("img/tool", "v1", 44).await;
    let (ok, retired) = (
        format!("{addr}/img/app:v1"),
        format!("{addr}/img/app:retired"),
    );
    env.sign("img", &ok);
    env.sign("img", &retired);
    let mut verify = verify_entry(
        &format!("{addr}/img/*"),
        json!([{"entries": [key_entry(&pem)]}]),
    );
    verify["validate"] = json!({
        "message": "retired tag",
        "deny": {"conditions": {"all": [
            {"key": "{{ images.containers.c0.tag }}", "operator": "Equals", "value": "retired"},
        ]}},
    });
    let mut doc = policy("images-var", "verify", verify);
    doc["spec"]["rules"][0]["preconditions"] = json!({"all": [
        {"key": "{{ images.containers.c0.name }}", "operator": "Equals", "value": "app"},
    ]});
    let p = env.write_yaml("images-policy.yaml", &[doc]);
    let tool = format!("{addr}/img/tool:v1");
    let r = env.write_yaml(
        "images-pods.yaml",
        &[
            pod("p-ok", &[&ok]),
            pod("p-retired", &[&retired]),
            pod("p-tool", &[&tool]),
        ],
    );
    let out = env.apply(&[&p], &[&r], &[]);
    assert_eq!(out.status("p-ok", "images-var"), "pass", "{}", out.dump());
    assert_eq!(
        out.status("p-retired", "images-var"),
        "fail",
        "{}",
        out.dump()
    );
    assert!(out.dump().contains("retired tag"), "{}", out.dump());
    // Unsigned, but its image name is `tool`: the precondition on `images` skips the rule.
    assert_eq!(out.status("p-tool", "images-var"), "skip", "{}", out.dump());
    assert_eq!(out.code, Some(1), "{}", out.dump());
    // A container list the Pod does not have: a context entry reading it fails, an error.
    let mut bad = pod("p-init", &[&ok]);
    bad["spec"]["containers"][0]["name"] = json!("other");
    let text = env.write_yaml("images-bad.yaml", &[bad]);
    let mut doc2 = policy(
        "images-init",
        "verify",
        verify_entry(
            &format!("{addr}/img/*"),
            json!([{"entries": [key_entry(&pem)]}]),
        ),
    );
    // (In a precondition an unresolved variable is null, as in Kyverno; a context entry is
    // strict.)
    doc2["spec"]["rules"][0]["context"] = json!([
        {"name": "setup", "variable": {"jmesPath": "images.initContainers.setup.name"}},
    ]);
    let p2 = env.write_yaml("images-policy2.yaml", &[doc2]);
    let out = env.apply(&[&p2], &[&text], &[]);
    assert_eq!(
        out.status("p-init", "images-init"),
        "error",
        "{}",
        out.dump()
    );
    assert_ne!(out.code, Some(0), "{}", out.dump());
}

/// Resources from a directory (recursively, with a `List`), and a `type: Notary` rule: a clear error
/// for the rule, never a pass.
#[tokio::test(flavor = "multi_thread")]
async fn resource_directories_lists_and_notary_rules() {
    let env = Env::new();
    let addr = env.addr();
    let key = env.keypair("d");
    env.image("dir/app", "v1", 6).await;
    let image = format!("{addr}/dir/app:v1");
    env.sign("d", &image);
    let pattern = format!("{addr}/dir/*");
    let p = env.write_yaml(
        "dir-policy.yaml",
        &[policy(
            "dir-key",
            "check",
            verify_entry(&pattern, json!([{"entries": [key_entry(&key)]}])),
        )],
    );
    env.write_yaml("manifests/a.yaml", &[pod("one", &[&image])]);
    env.write_yaml(
        "manifests/nested/list.yaml",
        &[json!({"apiVersion": "v1", "kind": "List", "items": [pod("two", &[&image]), deployment("three", &image)]})],
    );
    env.write("manifests/README.md", "not a manifest");
    let dir = env.d().join("manifests").display().to_string();
    let out = env.apply(&[&p], &[&dir], &[]);
    assert_eq!(out.code, Some(0), "{}", out.dump());
    assert_eq!(
        out.doc["resources"].as_array().unwrap().len(),
        3,
        "{}",
        out.dump()
    );
    for name in ["one", "two", "three"] {
        assert_eq!(
            out.status(name, "dir-key"),
            "pass",
            "{name}: {}",
            out.dump()
        );
    }

    let mut notary = verify_entry(
        &pattern,
        json!([{"entries": [{"certificates": {"cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}]}]),
    );
    notary["type"] = json!("Notary");
    let np = env.write_yaml("notary.yaml", &[policy("notary", "check-notary", notary)]);
    let out = env.apply(&[&np], &[&dir], &[]);
    assert_eq!(out.code, Some(1), "{}", out.dump());
    let rule = &out.rules("one", "notary")[0];
    assert_eq!(rule["status"], "error", "{rule:#}");
    let text = rule.to_string();
    assert!(
        text.contains("Notary") && text.contains("attestor `cert`"),
        "{rule:#}"
    );
}

/// `type: SigstoreBundle` with a key: only bundle referrers (`sign --bundle`, cosign v3) count; an
/// image signed only with a legacy `.sig` tag fails it.
#[tokio::test(flavor = "multi_thread")]
async fn sigstore_bundle_type_with_keys() {
    let env = Env::new();
    let addr = env.addr();
    let key = env.keypair("sb");
    env.image("bundles/app", "bundle", 7).await;
    env.image("bundles/app", "legacy", 8).await;
    let bundled = format!("{addr}/bundles/app:bundle");
    let legacy = format!("{addr}/bundles/app:legacy");
    expect_success(
        "sign --bundle",
        &env.run(&["sign", "--bundle", "--key", "sb.key", &bundled]),
    );
    env.sign("sb", &legacy);
    let mut v = verify_entry(
        &format!("{addr}/bundles/*"),
        json!([{"entries": [key_entry(&key)]}]),
    );
    v["type"] = json!("SigstoreBundle");
    let p = env.write_yaml(
        "bundle-key.yaml",
        &[policy("bundle-key", "check-bundle", v)],
    );
    let r = env.write_yaml(
        "bundle-pods.yaml",
        &[pod("bundled", &[&bundled]), pod("legacy", &[&legacy])],
    );
    let out = env.apply(&[&p], &[&r], &[]);
    assert_eq!(
        out.status("bundled", "bundle-key"),
        "pass",
        "{}",
        out.dump()
    );
    assert_eq!(out.status("legacy", "bundle-key"), "fail", "{}", out.dump());
}

/// A registry that refuses connections, and one that accepts them and never answers: each image is an
/// `error` (never a pass), the run exits 1, and the hanging one ends within the `--timeout` budget.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_hanging_registries_fail_closed() {
    let env = Env::new();
    let key = env.keypair("u");
    let closed = free_port();
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hanging.local_addr().unwrap().port();
    let policies: Vec<Value> = [("closed", closed), ("hanging", hang_port)]
        .iter()
        .map(|(name, port)| {
            policy(
                name,
                &format!("check-{name}"),
                verify_entry(
                    &format!("127.0.0.1:{port}/*"),
                    json!([{"entries": [key_entry(&key)]}]),
                ),
            )
        })
        .collect();
    let p = env.write_yaml("unreachable.yaml", &policies);
    let r = env.write_yaml(
        "unreachable-pods.yaml",
        &[
            pod("closed", &[&format!("127.0.0.1:{closed}/app:v1")]),
            pod("hanging", &[&format!("127.0.0.1:{hang_port}/app:v1")]),
        ],
    );
    let started = std::time::Instant::now();
    let out = env.apply(&[&p], &[&r], &["--timeout", "2"]);
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{}", out.dump());
    assert_eq!(out.status("closed", "closed"), "error", "{}", out.dump());
    assert_eq!(out.status("hanging", "hanging"), "error", "{}", out.dump());
    assert_eq!(out.summary("pass"), 0, "{}", out.dump());
    assert!(
        took < std::time::Duration::from_secs(8),
        "a hanging registry must not outlast the 2 s budget by much: {took:?}"
    );
    drop(hanging);
}

// ---- certificates -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn certificate_attestors() {
    let env = Env::new();
    let addr = env.addr();
    let (root, root_issuer) = ca("policy test root", None);
    let (inter, inter_issuer) = ca("policy test intermediate", Some(&root_issuer));
    let (leaf_pem, leaf_key) = leaf(&inter_issuer, "signer@example.test");
    let (other_root, other_root_issuer) = ca("another root", None);
    let (other_inter, other_inter_issuer) = ca("another intermediate", Some(&other_root_issuer));
    let (other_leaf, _) = leaf(&other_inter_issuer, "signer@example.test");
    env.write("leaf.pem", &leaf_pem);
    env.write("leaf.key", &leaf_key);
    let chain = format!("{}{}", inter.pem(), root.pem());
    env.write("chain.pem", &chain);

    env.image("certs/app", "signed", 21).await;
    env.image("certs/app", "unsigned", 22).await;
    let signed = format!("{addr}/certs/app:signed");
    expect_success(
        "sign --certificate",
        &env.run(&[
            "sign",
            "--key",
            "leaf.key",
            "--certificate",
            "leaf.pem",
            "--certificate-chain",
            "chain.pem",
            &signed,
        ]),
    );
    let pattern = format!("{addr}/certs/*");
    let cert_entry = |cert: &str, chain: &str| {
        json!({"certificates": {
            "cert": cert,
            "certChain": chain,
            "rekor": {"url": "https://rekor.sigstore.dev", "ignoreTlog": true},
            "ctlog": {"ignoreSCT": true},
        }})
    };
    let policies = [
        policy(
            "cert-good",
            "check-cert-good",
            verify_entry(
                &pattern,
                json!([{"entries": [cert_entry(&leaf_pem, &chain)]}]),
            ),
        ),
        policy(
            "cert-other",
            "check-cert-other",
            verify_entry(
                &pattern,
                json!([{"entries": [cert_entry(
                    &other_leaf,
                    &format!("{}{}", other_inter.pem(), other_root.pem()),
                )]}]),
            ),
        ),
        policy(
            "chain-only-other",
            "check-chain",
            verify_entry(
                &pattern,
                json!([{"entries": [{"certificates": {
                    "certChain": format!("{}{}", other_inter.pem(), other_root.pem()),
                    "rekor": {"url": "https://rekor.sigstore.dev", "ignoreTlog": true},
                    "ctlog": {"ignoreSCT": true},
                }}]}]),
            ),
        ),
    ];
    let p = env.write_yaml("cert-policies.yaml", &policies);
    let r = env.write_yaml(
        "cert-resources.yaml",
        &[
            pod("signed", &[&signed]),
            pod("unsigned", &[&format!("{addr}/certs/app:unsigned")]),
        ],
    );
    let out = env.apply(&[&p], &[&r], &[]);
    for (res, pol, want) in [
        ("signed", "cert-good", "pass"),
        ("unsigned", "cert-good", "fail"),
        ("signed", "cert-other", "fail"),
        ("signed", "chain-only-other", "fail"),
    ] {
        assert_eq!(out.status(res, pol), want, "{res} / {pol}:\n{}", out.dump());
    }
    assert_eq!(out.code, Some(1));
}

// ---- keyless (SigstoreBundle) against @sigstore/mock ---------------------------------------------------

const IDENTITY: &str =
    "https://ci.example.test/org/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER: &str = "https://issuer.example.test";

#[tokio::test(flavor = "multi_thread")]
async fn keyless_sigstore_bundle_attestors() {
    let Some(py) = oracle_python("sigstore.sign") else {
        return;
    };
    let Some(mock) = SigstoreMock::start() else {
        return;
    };
    let env = Env::new();
    let addr = env.addr();
    let digest = env.image("keyless/app", "signed", 41).await;
    env.image("keyless/app", "unsigned", 42).await;
    let signed = format!("{addr}/keyless/app:signed");
    // cosign v3's image signature: a DSSE statement about the digest, in a bundle referrer.
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("{addr}/keyless/app"),
                     "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    });
    let st = env.write("statement.json", &statement.to_string());
    let bundle = env.d().join("bundle.sigstore.json");
    mock.sign(&py, IDENTITY, ISSUER, true, Path::new(&st), &bundle);
    expect_success(
        "attach the bundle",
        &env.run(&[
            "attach",
            "--artifact-type",
            BUNDLE_TYPE,
            &signed,
            &format!("{}:{BUNDLE_TYPE}", bundle.display()),
        ]),
    );

    let pattern = format!("{addr}/keyless/*");
    let rekor = json!({"url": if mock.url.is_empty() { "https://rekor.sigstore.dev".to_owned() } else { mock.url.clone() }});
    let keyless = |subject: Value, issuer: Value| -> Value {
        let mut k = json!({"rekor": rekor.clone()});
        for (f, v) in [subject, issuer].into_iter().enumerate() {
            if let Value::Object(m) = v {
                for (key, val) in m {
                    k[key] = val;
                }
            } else {
                unreachable!("{f}");
            }
        }
        json!({"keyless": k})
    };
    let bundle_policy = |name: &str, entry: Value| {
        let mut v = verify_entry(&pattern, json!([{"entries": [entry]}]));
        v["type"] = json!("SigstoreBundle");
        policy(name, &format!("check-{name}"), v)
    };
    let policies = [
        bundle_policy(
            "keyless-exact",
            keyless(json!({"subject": IDENTITY}), json!({"issuer": ISSUER})),
        ),
        bundle_policy(
            "keyless-wildcard",
            keyless(
                json!({"subject": "https://ci.example.test/org/*"}),
                json!({"issuer": ISSUER}),
            ),
        ),
        bundle_policy(
            "keyless-regexp",
            keyless(
                json!({"subjectRegExp": r"^https://ci\.example\.test/org/.+@refs/heads/main$"}),
                json!({"issuerRegExp": r"^https://issuer\.example\.test$"}),
            ),
        ),
        bundle_policy(
            "keyless-wrong-subject",
            keyless(
                json!({"subject": "https://ci.example.test/someone-else/*"}),
                json!({"issuer": ISSUER}),
            ),
        ),
        bundle_policy(
            "keyless-wrong-issuer",
            keyless(
                json!({"subject": IDENTITY}),
                json!({"issuer": "https://accounts.example.test"}),
            ),
        ),
    ];
    let p = env.write_yaml("keyless-policies.yaml", &policies);
    let r = env.write_yaml(
        "keyless-resources.yaml",
        &[
            pod("signed", &[&signed]),
            pod("unsigned", &[&format!("{addr}/keyless/app:unsigned")]),
        ],
    );
    let root = mock.trusted_root.display().to_string();
    let out = env.apply(&[&p], &[&r], &["--trusted-root", &root]);
    for (res, pol, want) in [
        ("signed", "keyless-exact", "pass"),
        ("signed", "keyless-wildcard", "pass"),
        ("signed", "keyless-regexp", "pass"),
        ("signed", "keyless-wrong-subject", "fail"),
        ("signed", "keyless-wrong-issuer", "fail"),
        ("unsigned", "keyless-exact", "fail"),
    ] {
        assert_eq!(out.status(res, pol), want, "{res} / {pol}:\n{}", out.dump());
    }
    // Without a trusted root the keyless signature cannot be verified: never a pass.
    let out = env.apply(&[&p], &[&r], &[]);
    for pol in ["keyless-exact", "keyless-wildcard", "keyless-regexp"] {
        let s = out.status("signed", pol);
        assert!(
            s == "fail" || s == "error",
            "{pol} without a root: {s}\n{}",
            out.dump()
        );
    }
    assert_eq!(out.code, Some(1));

    // A keyless SLSA v1 provenance attestation in a bundle referrer, with conditions on the predicate
    // (as Kyverno's GitHub artifact-attestation example).
    let provenance = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("{addr}/keyless/app"),
                     "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"},
            "runDetails": {"builder": {"id": "https://ci.example.test/builder"}},
        },
    });
    let st = env.write("provenance.json", &provenance.to_string());
    let bundle = env.d().join("provenance.sigstore.json");
    mock.sign(&py, IDENTITY, ISSUER, true, Path::new(&st), &bundle);
    expect_success(
        "attach the provenance bundle",
        &env.run(&[
            "attach",
            "--artifact-type",
            BUNDLE_TYPE,
            &signed,
            &format!("{}:{BUNDLE_TYPE}", bundle.display()),
        ]),
    );
    let att_policy = |name: &str, build_type: &str| {
        let v = json!({
            "imageReferences": [pattern],
            "type": "SigstoreBundle",
            "failureAction": "Enforce",
            "mutateDigest": false,
            "verifyDigest": false,
            "attestations": [{
                "type": "https://slsa.dev/provenance/v1",
                "attestors": [{"entries": [keyless(json!({"subject": IDENTITY}), json!({"issuer": ISSUER}))]}],
                "conditions": [{"all": [{
                    "key": "{{ buildDefinition.buildType }}",
                    "operator": "Equals",
                    "value": build_type,
                }]}],
            }],
        });
        policy(name, &format!("check-{name}"), v)
    };
    let p = env.write_yaml(
        "keyless-attestations.yaml",
        &[
            att_policy(
                "provenance-ok",
                "https://actions.github.io/buildtypes/workflow/v1",
            ),
            att_policy("provenance-other", "https://example.test/other-build"),
        ],
    );
    let out = env.apply(&[&p], &[&r], &["--trusted-root", &root]);
    for (res, pol, want) in [
        ("signed", "provenance-ok", "pass"),
        ("signed", "provenance-other", "fail"),
        ("unsigned", "provenance-ok", "fail"),
    ] {
        assert_eq!(out.status(res, pol), want, "{res} / {pol}:\n{}", out.dump());
    }
}

// ---- attestations and conditions ---------------------------------------------------------------------

const REVIEW_TYPE: &str = "https://example.com/CodeReview/v1";

#[tokio::test(flavor = "multi_thread")]
async fn attestation_conditions_by_operator_family() {
    let env = Env::new();
    let addr = env.addr();
    let key = env.keypair("att");
    env.image("att/app", "v1", 51).await;
    env.image("att/app", "none", 52).await;
    let image = format!("{addr}/att/app:v1");
    let predicate = json!({
        "repo": {"uri": "https://git.example.test/org/app", "branch": "main"},
        "reviewers": ["ana@example.com", "bob@example.com"],
        "score": 7,
        "age": "90m",
        "version": "1.4.2",
    });
    env.write("predicate.json", &predicate.to_string());
    expect_success(
        "attest",
        &env.run(&[
            "attest",
            "--key",
            "att.key",
            "--predicate",
            "predicate.json",
            "--type",
            REVIEW_TYPE,
            &image,
        ]),
    );
    let pattern = format!("{addr}/att/*");
    let cond =
        |key: &str, op: &str, value: Value| json!({"key": key, "operator": op, "value": value});
    let att_policy = |name: &str, conditions: Value| {
        let v = json!({
            "imageReferences": [pattern],
            "failureAction": "Enforce",
            "mutateDigest": false,
            "verifyDigest": false,
            "attestations": [{
                "type": REVIEW_TYPE,
                "attestors": [{"entries": [key_entry(&key)]}],
                "conditions": [conditions],
            }],
        });
        policy(name, &format!("check-{name}"), v)
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "equals",
            json!({"all": [cond("{{ repo.branch }}", "Equals", json!("main"))]}),
            "pass",
        ),
        (
            "equals-no",
            json!({"all": [cond("{{ repo.branch }}", "Equals", json!("dev"))]}),
            "fail",
        ),
        (
            "notequals",
            json!({"all": [cond("{{ repo.branch }}", "NotEquals", json!("dev"))]}),
            "pass",
        ),
        (
            "notequals-no",
            json!({"all": [cond("{{ repo.branch }}", "NotEquals", json!("main"))]}),
            "fail",
        ),
        (
            "in",
            json!({"all": [cond("{{ repo.branch }}", "In", json!(["main", "release"]))]}),
            "pass",
        ),
        (
            "notin-no",
            json!({"all": [cond("{{ repo.branch }}", "NotIn", json!(["main"]))]}),
            "fail",
        ),
        (
            "anyin",
            json!({"all": [cond("{{ reviewers }}", "AnyIn", json!(["ana@example.com", "zed@example.com"]))]}),
            "pass",
        ),
        (
            "anyin-no",
            json!({"all": [cond("{{ reviewers }}", "AnyIn", json!(["zed@example.com"]))]}),
            "fail",
        ),
        (
            "allin",
            json!({"all": [cond("{{ reviewers }}", "AllIn", json!(["ana@example.com", "bob@example.com", "cy@example.com"]))]}),
            "pass",
        ),
        (
            "allin-no",
            json!({"all": [cond("{{ reviewers }}", "AllIn", json!(["ana@example.com"]))]}),
            "fail",
        ),
        (
            "anynotin",
            json!({"all": [cond("{{ reviewers }}", "AnyNotIn", json!(["ana@example.com"]))]}),
            "pass",
        ),
        (
            "anynotin-no",
            json!({"all": [cond("{{ reviewers }}", "AnyNotIn", json!(["ana@example.com", "bob@example.com"]))]}),
            "fail",
        ),
        (
            "allnotin",
            json!({"all": [cond("{{ reviewers }}", "AllNotIn", json!(["zed@example.com"]))]}),
            "pass",
        ),
        (
            "allnotin-no",
            json!({"all": [cond("{{ reviewers }}", "AllNotIn", json!(["bob@example.com", "zed@example.com"]))]}),
            "fail",
        ),
        (
            "numeric",
            json!({"all": [cond("{{ score }}", "GreaterThan", json!(5)), cond("{{ score }}", "LessThanOrEquals", json!(7))]}),
            "pass",
        ),
        (
            "numeric-no",
            json!({"all": [cond("{{ score }}", "GreaterThanOrEquals", json!(8))]}),
            "fail",
        ),
        (
            "duration",
            json!({"all": [cond("{{ age }}", "DurationGreaterThan", json!("1h"))]}),
            "pass",
        ),
        (
            "duration-no",
            json!({"all": [cond("{{ age }}", "DurationLessThan", json!("1h"))]}),
            "fail",
        ),
        (
            "any-of",
            json!({"any": [cond("{{ repo.branch }}", "Equals", json!("dev")), cond("{{ score }}", "Equals", json!(7))]}),
            "pass",
        ),
        (
            "any-of-no",
            json!({"any": [cond("{{ repo.branch }}", "Equals", json!("dev")), cond("{{ score }}", "Equals", json!(8))]}),
            "fail",
        ),
        (
            "function",
            json!({"all": [cond("{{ regex_match('^https://git\\.example\\.test/', repo.uri) }}", "Equals", json!(true))]}),
            "pass",
        ),
        (
            "function-no",
            json!({"all": [cond("{{ regex_match('^https://github\\.com/', repo.uri) }}", "Equals", json!(true))]}),
            "fail",
        ),
    ];
    let policies: Vec<Value> = cases
        .iter()
        .map(|(name, c, _)| att_policy(name, c.clone()))
        .collect();
    let p = env.write_yaml("att-policies.yaml", &policies);
    let r = env.write_yaml(
        "att-resources.yaml",
        &[
            pod("attested", &[&image]),
            pod("unattested", &[&format!("{addr}/att/app:none")]),
        ],
    );
    let out = env.apply(&[&p], &[&r], &[]);
    for (name, _, want) in &cases {
        assert_eq!(
            out.status("attested", name),
            *want,
            "condition case {name}:\n{}",
            out.dump()
        );
        // An image without the attestation never passes, whatever the condition.
        assert_eq!(
            out.status("unattested", name),
            "fail",
            "{name} on an unattested image:\n{}",
            out.dump()
        );
    }
    // Attested with another key: fails.
    let other = env.keypair("other");
    let mut wrong_key = att_policy("wrong-key", cases[0].1.clone());
    wrong_key["spec"]["rules"][0]["verifyImages"][0]["attestations"][0]["attestors"] =
        json!([{"entries": [key_entry(&other)]}]);
    let p = env.write_yaml("att-wrong-key.yaml", &[wrong_key]);
    let out = env.apply(&[&p], &[&r], &[]);
    assert_eq!(
        out.status("attested", "wrong-key"),
        "fail",
        "{}",
        out.dump()
    );
}

// ---- mutateDigest --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn mutate_digest_patched_resources() {
    let env = Env::new();
    let addr = env.addr();
    let key = env.keypair("m");
    let digest = env.image("mutate/app", "v1", 61).await;
    let other_digest = env.image("mutate/side", "v2", 62).await;
    let tagged = format!("{addr}/mutate/app:v1");
    let side = format!("{addr}/mutate/side:v2");
    env.sign("m", &tagged);
    env.sign("m", &side);
    let mut v = verify_entry(
        &format!("{addr}/mutate/*"),
        json!([{"entries": [key_entry(&key)]}]),
    );
    v["mutateDigest"] = json!(true);
    v["verifyDigest"] = json!(true);
    let p = env.write_yaml("mutate-policy.yaml", &[policy("pin", "pin-digest", v)]);
    let original = pod("pinned", &[&tagged, &side]);
    let r = env.write_yaml(
        "mutate-pod.yaml",
        &[original.clone(), deployment("web", &tagged)],
    );
    let outdir = env.d().join("patched");
    let out_s = outdir.display().to_string();
    let out = env.apply(&[&p], &[&r], &["--patched-resources", &out_s]);
    assert_eq!(out.code, Some(0), "{}", out.dump());
    assert!(
        out.stderr.contains("wrote 2 patched resource(s)"),
        "{}",
        out.stderr
    );

    // The expected object, built independently: images pinned to the verified digests, the
    // annotation recording a pass per image (keyed by the digest reference, as Kyverno does).
    let mut want = original;
    want["spec"]["containers"][0]["image"] = json!(format!("{tagged}@{digest}"));
    want["spec"]["containers"][1]["image"] = json!(format!("{side}@{other_digest}"));
    let text = std::fs::read_to_string(outdir.join("pod-default-pinned.yaml")).unwrap();
    let got: Value = yaml_serde::from_str(&text).unwrap();
    let annotations = got["metadata"]["annotations"]
        .as_object()
        .unwrap_or_else(|| panic!("no annotations in the patched Pod:\n{text}"));
    let recorded: Value =
        serde_json::from_str(annotations["sigil.dev/verify-images"].as_str().unwrap()).unwrap();
    assert_eq!(
        recorded,
        json!({
            format!("{addr}/mutate/app@{digest}"): "pass",
            format!("{addr}/mutate/side@{other_digest}"): "pass",
        }),
        "{text}"
    );
    want["metadata"]["annotations"] = Value::Object(annotations.clone());
    assert_eq!(got, want, "patched Pod:\n{text}");

    // The Deployment's template image is pinned too.
    let text = std::fs::read_to_string(outdir.join("deployment-default-web.yaml")).unwrap();
    let got: Value = yaml_serde::from_str(&text).unwrap();
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["image"],
        json!(format!("{tagged}@{digest}")),
        "{text}"
    );
    // The JSON output carries the patch itself.
    let patch = out.resource("pinned")["review"]["patch"]
        .as_array()
        .unwrap();
    assert!(
        patch
            .iter()
            .any(|op| op["path"] == "/spec/containers/0/image"
                && op["value"] == json!(format!("{tagged}@{digest}"))),
        "{patch:#?}"
    );

    // An image already pinned to a digest is verified as is and needs no patch.
    let by_digest = format!("{addr}/mutate/app@{digest}");
    let r2 = env.write_yaml("pinned-pod.yaml", &[pod("by-digest", &[&by_digest])]);
    let out = env.apply(&[&p], &[&r2], &[]);
    assert_eq!(out.status("by-digest", "pin"), "pass", "{}", out.dump());
    let patch = out.resource("by-digest")["review"]["patch"]
        .as_array()
        .unwrap();
    assert!(
        !patch
            .iter()
            .any(|op| op["path"] == "/spec/containers/0/image"),
        "{patch:#?}"
    );
}

// ---- Kyverno's own policies --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn upstream_kyverno_policies_parse_and_never_pass_unsigned_images() {
    let env = Env::new();
    let addr = env.addr();
    env.image("unrelated/app", "v1", 71).await;
    let image = format!("{addr}/unrelated/app:v1");
    let r = env.write_yaml(
        "resources.yaml",
        &[pod("plain", &[&image]), deployment("plain-deploy", &image)],
    );
    let mut files = Vec::new();
    for sub in ["chainsaw", "kyverno-policies", "cli/verify-signature"] {
        for e in std::fs::read_dir(data_dir().join("kyverno").join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() != "kyverno-test.yaml"
                && p.file_name().unwrap() != "resources.yaml"
            {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 19, "{files:?}");
    for f in &files {
        let fs = f.display().to_string();
        let out = env.run(&["policy", "apply", &fs, "-r", &r, "-o", "json"]);
        let err = stderr(&out);
        // The policy must load: a load error is printed as one `sigil: <file>: ...` line and no JSON.
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{fs} did not load ({e}): {err}"));
        for res in doc["resources"].as_array().unwrap() {
            for rule in res["review"]["results"].as_array().unwrap() {
                // The image is unsigned: whatever the policy, it must not pass.
                assert_ne!(rule["status"], "pass", "{fs}: {rule:#}");
            }
        }
        let failed =
            doc["summary"]["fail"].as_u64().unwrap() + doc["summary"]["error"].as_u64().unwrap();
        assert_eq!(
            out.status.code(),
            Some(if failed > 0 { 1 } else { 0 }),
            "{fs}: {doc:#}\n{err}"
        );
    }
}

/// Rewrites the upstream `cli/verify-signature` test for the local registry and a local key.
fn adapted_verify_signature(env: &Env, dest: &str, pub_pem: &str, pod_only: bool) -> PathBuf {
    let src = data_dir().join("kyverno/cli/verify-signature");
    let dir = env.d().join(dest);
    std::fs::create_dir_all(&dir).unwrap();
    let k1 = std::fs::read_to_string(src.join("policies.yaml")).unwrap();
    // The upstream key K1, indented as in the file; replaced by ours (same indentation).
    let upstream_key = "-----BEGIN PUBLIC KEY-----\n              MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n              5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n              -----END PUBLIC KEY-----";
    assert!(k1.contains(upstream_key), "the upstream file changed");
    let ours = pub_pem
        .trim_end()
        .lines()
        .collect::<Vec<_>>()
        .join("\n              ");
    let addr = env.addr();
    let host = |s: &str| s.replace("ghcr.io/kyverno/", &format!("{addr}/kyverno/"));
    std::fs::write(dir.join("policies.yaml"), k1.replace(upstream_key, &ours)).unwrap();
    let resources = std::fs::read_to_string(src.join("resources.yaml")).unwrap();
    std::fs::write(dir.join("resources.yaml"), host(&resources)).unwrap();
    let mut test = std::fs::read_to_string(src.join("kyverno-test.yaml")).unwrap();
    if pod_only {
        let v: Value = yaml_serde::from_str(&test).unwrap();
        let mut v = v;
        let kept: Vec<Value> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "Pod")
            .cloned()
            .collect();
        v["results"] = Value::Array(kept);
        test = yaml_serde::to_string(&v).unwrap();
    }
    std::fs::write(dir.join("kyverno-test.yaml"), test).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_test_runs_the_upstream_verify_signature_test() {
    let env = Env::new();
    let addr = env.addr();
    let key = env.keypair("k1");
    env.image("kyverno/test-verify-image", "signed", 81).await;
    env.image("kyverno/test-verify-image", "unsigned", 82).await;
    env.sign("k1", &format!("{addr}/kyverno/test-verify-image:signed"));

    // Pod expectations only: signed → pass, unsigned → fail, as upstream expects.
    let dir = adapted_verify_signature(&env, "pods", &key, true);
    let d = dir.display().to_string();
    let out = env.run(&["policy", "test", &d]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let s = stdout(&out);
    assert!(
        s.contains("Test Summary: 2 tests passed and 0 tests failed"),
        "{s}"
    );
    assert!(s.contains("check-image"), "{s}");

    // The full upstream test also has DataVolumes whose image is found by a custom imageExtractor
    // with a jmesPath (`trim_prefix(@, 'docker://')`): signed → pass, unsigned → fail, as upstream.
    let dir = adapted_verify_signature(&env, "full", &key, false);
    let d = dir.display().to_string();
    let out = env.run(&["policy", "test", &d, "-o", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    let rows = doc["tests"][0]["results"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{doc:#}");
    for row in rows {
        assert_eq!(row["passed"], true, "{row:#}");
    }
    let actual = |resource: &str| {
        rows.iter()
            .find(|r| r["resource"].as_str().unwrap().ends_with(resource))
            .unwrap_or_else(|| panic!("no row for {resource}: {doc:#}"))["actual"]
            .clone()
    };
    assert_eq!(
        actual("/signed-registry-image-datavolume"),
        "pass",
        "{doc:#}"
    );
    assert_eq!(
        actual("/unsigned-registry-image-datavolume"),
        "fail",
        "{doc:#}"
    );
    assert_eq!(out.status.code(), Some(0), "{doc:#}\n{}", stderr(&out));

    // `policy apply` on the same files: the DataVolume verdicts come from the transformed image
    // (the URL without `docker://`), and nothing is patched into the DataVolume.
    let out = env.run(&[
        "policy",
        "apply",
        &dir.join("policies.yaml").display().to_string(),
        "-r",
        &dir.join("resources.yaml").display().to_string(),
        "-o",
        "json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    let mut seen = 0;
    for res in doc["resources"].as_array().unwrap() {
        if res["kind"] != "DataVolume" {
            continue;
        }
        seen += 1;
        let name = res["name"].as_str().unwrap();
        let results = res["review"]["results"].as_array().unwrap();
        assert_eq!(results.len(), 1, "{res:#}");
        let images = results[0]["images"].as_array().unwrap();
        assert_eq!(images.len(), 1, "{res:#}");
        let want_tag = if name.starts_with("signed") {
            "signed"
        } else {
            "unsigned"
        };
        assert_eq!(
            images[0]["image"],
            format!("{addr}/kyverno/test-verify-image:{want_tag}"),
            "{res:#}"
        );
        assert_eq!(images[0]["pointer"], "/spec/source/registry/url", "{res:#}");
        let want = if want_tag == "signed" { "pass" } else { "fail" };
        assert_eq!(results[0]["status"], want, "{res:#}");
        let patch = res["review"]["patch"].to_string();
        assert!(!patch.contains("/spec/source/registry/url"), "{res:#}");
    }
    assert_eq!(seen, 2, "{doc:#}");
    assert_eq!(out.status.code(), Some(1), "{doc:#}");

    // Kyverno refuses a jmesPath extractor with digest mutation: a load error naming the field.
    let policies = std::fs::read_to_string(dir.join("policies.yaml")).unwrap();
    let (head, tail) = policies
        .split_once("name: check-data-volume-image")
        .unwrap();
    let bad = format!(
        "{head}name: check-data-volume-image{}",
        tail.replace("mutateDigest: false", "mutateDigest: true")
    );
    let bad = env.write("mutating-datavolume.yaml", &bad);
    let resources = dir.join("resources.yaml").display().to_string();
    expect_bad_input(
        &env,
        "jmesPath extractor with mutateDigest",
        &["policy", "apply", &bad, "-r", &resources],
        &[
            "mutating-datavolume.yaml",
            "verifyImages[0].mutateDigest",
            "jmespath may not be used in an image extractor",
            "imageExtractors.DataVolume[0].jmesPath",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_test_reports_mismatches_and_checks_patched_resources() {
    let env = Env::new();
    let addr = env.addr();
    let key = env.keypair("t");
    let digest = env.image("tests/app", "v1", 91).await;
    env.image("tests/app", "v2", 92).await;
    let signed = format!("{addr}/tests/app:v1");
    env.sign("t", &signed);
    let mut v = verify_entry(
        &format!("{addr}/tests/*"),
        json!([{"entries": [key_entry(&key)]}]),
    );
    v["mutateDigest"] = json!(true);
    env.write_yaml(
        "suite/policy.yaml",
        &[policy("verify-app", "verify-signature", v)],
    );
    env.write_yaml(
        "suite/resources.yaml",
        &[
            pod("good", &[&signed]),
            pod("bad", &[&format!("{addr}/tests/app:v2")]),
            deployment("web", &signed),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}}),
        ],
    );
    // The patched Pod as the test expects it (annotation read from a first run below).
    let test_file = |results: Value| {
        json!({
            "apiVersion": "cli.kyverno.io/v1alpha1",
            "kind": "Test",
            "metadata": {"name": "suite"},
            "policies": ["policy.yaml"],
            "resources": ["resources.yaml"],
            "results": results,
        })
    };
    let good_results = json!([
        {"policy": "verify-app", "rule": "verify-signature", "resources": ["good"], "kind": "Pod", "result": "pass"},
        {"policy": "verify-app", "rule": "verify-signature", "resources": ["bad"], "kind": "Pod", "result": "fail"},
        {"policy": "verify-app", "rule": "autogen-verify-signature", "resources": ["web"], "kind": "Deployment", "result": "pass"},
        {"policy": "verify-app", "rule": "verify-signature", "resource": "cm", "kind": "ConfigMap", "status": "skip"},
    ]);
    env.write_yaml("suite/kyverno-test.yaml", &[test_file(good_results)]);
    let suite = env.d().join("suite").display().to_string();
    let out = env.run(&["policy", "test", &suite]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Test Summary: 4 tests passed and 0 tests failed"),
        "{}",
        stdout(&out)
    );

    // patchedResources: the digest-pinned Pod.
    let applied = env.apply(
        &[&env.d().join("suite/policy.yaml").display().to_string()],
        &[&env.d().join("suite/resources.yaml").display().to_string()],
        &[
            "--patched-resources",
            &env.d().join("patched").display().to_string(),
        ],
    );
    assert_eq!(
        applied.status("good", "verify-app"),
        "pass",
        "{}",
        applied.dump()
    );
    let patched_text =
        std::fs::read_to_string(env.d().join("patched/pod-default-good.yaml")).unwrap();
    let patched: Value = yaml_serde::from_str(&patched_text).unwrap();
    assert_eq!(
        patched["spec"]["containers"][0]["image"],
        json!(format!("{signed}@{digest}"))
    );
    env.write("suite2/patched.yaml", &patched_text);
    let mut wrong = patched;
    wrong["spec"]["containers"][0]["image"] = json!(signed);
    env.write_yaml("suite2/wrong-patched.yaml", &[wrong]);
    for f in ["policy.yaml", "resources.yaml"] {
        std::fs::copy(
            env.d().join("suite").join(f),
            env.d().join("suite2").join(f),
        )
        .unwrap();
    }
    let results = json!([
        {"policy": "verify-app", "rule": "verify-signature", "resources": ["good"], "kind": "Pod", "result": "pass", "patchedResources": "patched.yaml"},
        {"policy": "verify-app", "rule": "verify-signature", "resources": ["good"], "kind": "Pod", "result": "pass", "patchedResources": "wrong-patched.yaml"},
        {"policy": "verify-app", "rule": "verify-signature", "resources": ["bad"], "kind": "Pod", "result": "pass"},
        {"policy": "verify-app", "rule": "verify-signature", "resources": ["missing"], "kind": "Pod", "result": "pass"},
        {"policy": "verify-app", "rule": "no-such-rule", "resources": ["good"], "kind": "Pod", "result": "pass"},
    ]);
    env.write_yaml("suite2/kyverno-test.yaml", &[test_file(results)]);
    let suite2 = env.d().join("suite2").display().to_string();
    let out = env.run(&["policy", "test", &suite2, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("4 tests failed"), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["tests"][0]["results"].as_array().unwrap();
    let reasons: Vec<(bool, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["passed"].as_bool().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons[0], (true, "Ok"), "{doc:#}");
    assert!(
        !reasons[1].0 && reasons[1].1.contains("patched resource differs"),
        "{doc:#}"
    );
    assert!(reasons[1].1.contains("/spec/containers/0/image"), "{doc:#}");
    assert!(
        !reasons[2].0 && reasons[2].1.starts_with("want pass, got fail"),
        "{doc:#}"
    );
    assert!(
        !reasons[3].0 && reasons[3].1.contains("not found"),
        "{doc:#}"
    );
    assert!(!reasons[4].0 && reasons[4].1.contains("no rule"), "{doc:#}");

    // --fail-only prints only the failing rows.
    let out = env.run(&["policy", "test", &suite2, "--fail-only"]);
    let s = stdout(&out);
    assert!(!s.contains(" Ok"), "{s}");
    assert!(s.contains("want pass, got fail"), "{s}");

    // No test files: exit 0.
    let empty = env.d().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = env.run(&["policy", "test", &empty.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

// ---- bad input ---------------------------------------------------------------------------------------

/// Asserts `sigil ARGS` failed with exit 1 and one stderr line containing every needle.
fn expect_bad_input(env: &Env, what: &str, args: &[&str], needles: &[&str]) {
    let out = env.run(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: {err}\n{}",
        stdout(&out)
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: one line:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "{what}: stderr lacks {n:?}:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_one_clear_line() {
    let env = Env::new();
    let addr = env.addr();
    let key = env.keypair("x");
    let good_policy = env.write_yaml(
        "good-policy.yaml",
        &[policy(
            "ok",
            "r",
            verify_entry(
                &format!("{addr}/bad/*"),
                json!([{"entries": [key_entry(&key)]}]),
            ),
        )],
    );
    let good_res = env.write_yaml(
        "good-res.yaml",
        &[pod("p", &[&format!("{addr}/bad/app:v1")])],
    );

    let malformed = env.write(
        "malformed.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n",
    );
    expect_bad_input(
        &env,
        "malformed resource YAML",
        &["policy", "apply", &good_policy, "-r", &malformed],
        &["malformed.yaml", "malformed YAML"],
    );
    let list = env.write("list.yaml", "- a\n- b\n");
    expect_bad_input(
        &env,
        "resource that is not an object",
        &["policy", "apply", &good_policy, "-r", &list],
        &["list.yaml", "document 0", "not a Kubernetes object"],
    );
    let nokind = env.write("nokind.yaml", "apiVersion: v1\nmetadata: {name: a}\n");
    expect_bad_input(
        &env,
        "resource without kind",
        &["policy", "apply", &good_policy, "-r", &nokind],
        &["nokind.yaml", "`kind` is missing"],
    );
    let bad_image = env.write_yaml(
        "bad-image.yaml",
        &[pod("p", &["127.0.0.1:5000/UPPER/app:v1"])],
    );
    expect_bad_input(
        &env,
        "image that does not parse",
        &["policy", "apply", &good_policy, "-r", &bad_image],
        &[
            "bad-image.yaml",
            "/spec/containers/0/image",
            "does not parse",
        ],
    );
    let missing = env.d().join("missing.yaml").display().to_string();
    expect_bad_input(
        &env,
        "missing resource file",
        &["policy", "apply", &good_policy, "-r", &missing],
        &["missing.yaml"],
    );
    expect_bad_input(
        &env,
        "missing policy file",
        &["policy", "apply", &missing, "-r", &good_res],
        &["missing.yaml", "no such file"],
    );
    let mut bad = policy(
        "unknown",
        "r",
        verify_entry(
            &format!("{addr}/bad/*"),
            json!([{"entries": [key_entry(&key)]}]),
        ),
    );
    bad["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keys"]["frobnicate"] =
        json!(true);
    let unknown = env.write_yaml("unknown-field.yaml", &[bad]);
    expect_bad_input(
        &env,
        "unknown policy field",
        &["policy", "apply", &unknown, "-r", &good_res],
        &["unknown-field.yaml", "frobnicate"],
    );
    let unknown_field = data_dir()
        .join("malformed-unknown-field.yaml")
        .display()
        .to_string();
    expect_bad_input(
        &env,
        "unknown keyless field",
        &["policy", "apply", &unknown_field, "-r", &good_res],
        &[
            "malformed-unknown-field.yaml",
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless",
            "foo",
        ],
    );
    let mut regex = policy(
        "bad-regex",
        "r",
        verify_entry(
            &format!("{addr}/bad/*"),
            json!([{"entries": [{"keyless": {
                "subjectRegExp": "([unclosed",
                "issuer": ISSUER,
                "rekor": {"url": "https://rekor.sigstore.dev"},
            }}]}]),
        ),
    );
    regex["spec"]["rules"][0]["verifyImages"][0]["type"] = json!("SigstoreBundle");
    let regex_p = env.write_yaml("bad-regex.yaml", &[regex]);
    expect_bad_input(
        &env,
        "invalid regular expression",
        &["policy", "apply", &regex_p, "-r", &good_res],
        &["bad-regex.yaml", "subjectRegExp"],
    );
    let mut op = policy(
        "bad-operator",
        "r",
        json!({
            "imageReferences": [format!("{addr}/bad/*")],
            "attestations": [{
                "type": REVIEW_TYPE,
                "attestors": [{"entries": [key_entry(&key)]}],
                "conditions": [{"all": [{"key": "{{ a }}", "operator": "Resembles", "value": 1}]}],
            }],
        }),
    );
    op["spec"]["rules"][0]["verifyImages"][0]["mutateDigest"] = json!(false);
    let op_p = env.write_yaml("bad-operator.yaml", &[op]);
    expect_bad_input(
        &env,
        "unknown operator",
        &["policy", "apply", &op_p, "-r", &good_res],
        &["bad-operator.yaml", "Resembles"],
    );
    let no_policies = env.write(
        "not-a-policy.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    expect_bad_input(
        &env,
        "no policies in the files",
        &["policy", "apply", &no_policies, "-r", &good_res],
        &["no Kyverno policies"],
    );
    let bad_root = env.write("root.json", "{\"not\": \"a root\"}");
    expect_bad_input(
        &env,
        "unusable trusted root",
        &[
            "policy",
            "apply",
            &good_policy,
            "-r",
            &good_res,
            "--trusted-root",
            &bad_root,
        ],
        &["root.json"],
    );

    // A test file with fields sigil cannot honour, or a typo, fails with the file and field named.
    for (name, body, needle) in [
        (
            "vars",
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata: {name: t}\npolicies: [p.yaml]\nresources: [r.yaml]\nvariables: values.yaml\nresults: []\n",
            "`variables` is not supported",
        ),
        (
            "typo",
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata: {name: t}\npolicies: [p.yaml]\nresources: [r.yaml]\nresults:\n- policy: p\n  rule: r\n  resources: [a]\n  reslt: pass\n",
            "reslt",
        ),
        (
            "badresult",
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata: {name: t}\npolicies: [p.yaml]\nresources: [r.yaml]\nresults:\n- policy: p\n  rule: r\n  resources: [a]\n  result: maybe\n",
            "not one of pass, fail, skip, warn, error",
        ),
    ] {
        let dir = env.d().join(format!("badtest-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kyverno-test.yaml"), body).unwrap();
        let out = env.run(&["policy", "test", &dir.display().to_string(), "-o", "json"]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let e = doc["tests"][0]["error"].as_str().unwrap_or_default();
        assert!(
            e.contains("kyverno-test.yaml") && e.contains(needle),
            "{name}: {doc:#}"
        );
    }
}
