//! End-to-end tests of the verification engine against a real in-process sigil registry on 127.0.0.1:
//! images are pushed over the distribution API, signed and attested with sigil-cosign using freshly
//! generated keys (and an rcgen CA for certificates) or with sigil-notary (rcgen root + code-signing
//! leaf; attestations as Notary-signed OCI referrers), and Kyverno policies given as YAML are run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Images of one review verified concurrently, as tasks (a gated registry proves it).
#[path = "engine/parallel.rs"]
mod parallel;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use sigil_client::{ClientOptions, PutCondition, RegistryClient};
use sigil_cosign::PrivateKey;
use sigil_engine::{
    CacheConfig, Engine, EngineConfig, LoadedPolicy, Review, ReviewRequest, RuleStatus,
    VERIFY_IMAGES_ANNOTATION,
};
use sigil_oci::{Digest, Reference, media_type};
use sigil_policy::matching::Operation;
use tempfile::TempDir;

// ---- harness -------------------------------------------------------------------------------------

struct Registry {
    addr: String,
    _dir: TempDir,
}

async fn start_registry(referrers_api: bool) -> Registry {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TempDir::new().unwrap();
    let storage = sigil_storage::fs::FsStorage::open(dir.path()).unwrap();
    let config = sigil_registry::RegistryConfig {
        referrers_api,
        ..sigil_registry::RegistryConfig::default()
    };
    let app = sigil_registry::router(Arc::new(storage), config, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let _ = sigil_registry::serve(listener, app, None, std::future::pending()).await;
    });
    Registry { addr, _dir: dir }
}

fn new_client() -> RegistryClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    RegistryClient::new(ClientOptions {
        load_auth_file: false,
        connect_timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    })
    .unwrap()
}

/// Pushes a small unique image as `repo:tag`; returns its digest.
async fn push_image(c: &RegistryClient, addr: &str, repo: &str, tag: &str, seed: &str) -> Digest {
    let r = Reference::parse(&format!("{addr}/{repo}:{tag}")).unwrap();
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#
    ));
    let layer = Bytes::from(format!("layer of {seed}").into_bytes());
    let mut descs = Vec::new();
    for b in [&config, &layer] {
        let d = Digest::sha256(b);
        c.push_blob(&r, &d, Some(b.len() as u64), b.clone().into())
            .await
            .unwrap();
        descs.push((d, b.len()));
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": descs[0].0.to_string(), "size": descs[0].1},
        "layers": [{"mediaType": media_type::OCI_LAYER_GZIP, "digest": descs[1].0.to_string(), "size": descs[1].1}],
    });
    let bytes = Bytes::from(serde_json::to_vec(&m).unwrap());
    c.put_manifest(
        &r,
        bytes.clone(),
        media_type::OCI_MANIFEST,
        PutCondition::None,
    )
    .await
    .unwrap()
    .digest
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

async fn sign(c: &RegistryClient, image: &str, key: &PrivateKey) {
    sigil_cosign::sign_image(c, &reference(image), key, &BTreeMap::new(), None)
        .await
        .unwrap();
}

fn pem(key: &PrivateKey) -> String {
    key.public_key().to_pem().unwrap()
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.trim_end()
        .lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A ClusterPolicy matching Pods with one verifyImages entry (given as YAML at column 0).
fn policy_yaml(name: &str, verify: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}  rules:\n  - name: check\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n{verify}\n",
        spec = indent_opt(spec_extra, 2),
        verify = indent(verify, 4)
    )
}

fn indent_opt(s: &str, n: usize) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        format!("{}\n", indent(s, n))
    }
}

/// A `keys` attestor entry (YAML list item at column 0) with tlog disabled.
fn key_entry(key: &PrivateKey) -> String {
    format!(
        "- keys:\n    publicKeys: |-\n{}\n    rekor:\n      ignoreTlog: true\n",
        indent(&pem(key), 6)
    )
}

fn load(yaml: &str) -> Vec<LoadedPolicy> {
    let set = sigil_policy::parse_policies(yaml).unwrap();
    set.policies
        .into_iter()
        .map(|p| LoadedPolicy::new(p, PathBuf::from("test.yaml"), yaml))
        .collect()
}

fn engine_with(client: RegistryClient, yaml: &str, cache: CacheConfig) -> Engine {
    let mut cfg = EngineConfig::new(client);
    cfg.cache = cache;
    Engine::new(cfg, load(yaml))
}

fn engine(yaml: &str) -> (Engine, RegistryClient) {
    let c = new_client();
    (engine_with(c.clone(), yaml, CacheConfig::default()), c)
}

fn pod(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": containers},
    })
}

fn request(resource: Value) -> ReviewRequest {
    ReviewRequest {
        resource,
        old_resource: None,
        namespace: "default".into(),
        operation: Operation::Create,
        timeout: None,
        dry_run: false,
    }
}

fn statuses(r: &Review) -> Vec<RuleStatus> {
    r.results
        .iter()
        .flat_map(|x| x.images.iter().map(|i| i.status))
        .collect()
}

fn first_message(r: &Review) -> String {
    r.results
        .iter()
        .flat_map(|x| x.images.iter())
        .map(|i| i.message.clone())
        .next()
        .unwrap_or_default()
}

/// A minimal RFC 6902 applier (add/replace) for checking patches.
fn apply_patch(doc: &Value, patch: &[Value]) -> Value {
    let mut doc = doc.clone();
    for op in patch {
        let kind = op["op"].as_str().unwrap();
        let path = op["path"].as_str().unwrap();
        let value = op["value"].clone();
        let tokens: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = tokens.split_last().unwrap();
        let mut cur = &mut doc;
        for t in parents {
            cur = match cur {
                Value::Object(m) => m.get_mut(t).expect("parent exists"),
                Value::Array(a) => &mut a[t.parse::<usize>().unwrap()],
                _ => panic!("bad path {path}"),
            };
        }
        match (kind, cur) {
            ("add", Value::Object(m)) => {
                m.insert(last.clone(), value);
            }
            ("replace", Value::Object(m)) => {
                assert!(m.contains_key(last), "replace of a missing member {path}");
                m.insert(last.clone(), value);
            }
            ("replace", Value::Array(a)) => a[last.parse::<usize>().unwrap()] = value,
            (k, _) => panic!("unsupported op {k} at {path}"),
        }
    }
    doc
}

// ---- keys ----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_pass_pins_digest_and_annotates_in_order() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "key-pass").await;
    let key = PrivateKey::generate_p256().unwrap();
    sign(&pusher, &format!("{a}/app:v1"), &key).await;
    let yaml = policy_yaml(
        "keyed",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
            indent(&key_entry(&key), 4)
        ),
        "",
    );
    let (eng, client) = engine(&yaml);
    let image = format!("{a}/app:v1");
    let resource = pod(&[&image, "docker.io/library/other:1"]);
    let before = client.request_count();
    let r = eng.mutate(&request(resource.clone())).await;
    let used = client.request_count() - before;
    assert!(!r.blocked, "{r:?}");
    assert_eq!(
        statuses(&r),
        vec![RuleStatus::Pass],
        "only the matching image is in results"
    );
    let img = &r.results[0].images[0];
    assert_eq!(img.digest.as_deref(), Some(digest.to_string().as_str()));
    assert!(
        img.trace
            .iter()
            .any(|t| t.path.contains("attestors[0].entries[0]"))
    );
    eprintln!("registry requests for one uncached key-signed image (tag): {used}");
    assert_eq!(used, 3, "HEAD tag + GET .sig manifest + GET payload blob");
    // Patch order: annotations map, annotation key, then the digest pin.
    assert_eq!(r.patch.len(), 3, "{:?}", r.patch);
    assert_eq!(
        r.patch[0],
        json!({"op":"add","path":"/metadata/annotations","value":{}})
    );
    assert_eq!(r.patch[1]["op"], "add");
    assert_eq!(
        r.patch[1]["path"],
        "/metadata/annotations/sigil.dev~1verify-images"
    );
    assert_eq!(r.patch[2]["op"], "replace");
    assert_eq!(r.patch[2]["path"], "/spec/containers/0/image");
    let patched = apply_patch(&resource, &r.patch);
    let pinned = format!("{image}@{digest}");
    assert_eq!(patched["spec"]["containers"][0]["image"], pinned.as_str());
    assert_eq!(
        patched["spec"]["containers"][1]["image"],
        "docker.io/library/other:1"
    );
    let ann: BTreeMap<String, String> = serde_json::from_str(
        patched["metadata"]["annotations"][VERIFY_IMAGES_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        ann,
        BTreeMap::from([(format!("{a}/app@{digest}"), "pass".to_owned())])
    );
    // The patched object passes the validating checks (digest present, annotation says pass).
    let v = eng.validate(&request(patched.clone())).await;
    assert!(!v.blocked, "{v:?}");
    assert_eq!(statuses(&v), vec![RuleStatus::Pass]);
    // The unpatched object fails both.
    let v = eng.validate(&request(resource.clone())).await;
    assert!(v.blocked);
    assert!(
        v.message
            .as_deref()
            .unwrap()
            .contains(&format!("missing digest for {image}"))
    );
    // A forged annotation on a tag image does not skip verification in mutate, and an existing
    // annotation is replaced.
    let mut forged = pod(&[&format!("{a}/app:unsigned")]);
    push_image(&pusher, a, "app", "unsigned", "unsigned").await;
    forged["metadata"]["annotations"] = json!({
        VERIFY_IMAGES_ANNOTATION: json!({format!("{a}/app:unsigned"): "pass"}).to_string()
    });
    let r = eng.mutate(&request(forged.clone())).await;
    assert!(r.blocked);
    assert_eq!(r.patch[0]["op"], "replace");
    let patched = apply_patch(&forged, &r.patch);
    assert!(
        patched["metadata"]["annotations"][VERIFY_IMAGES_ANNOTATION]
            .as_str()
            .unwrap()
            .contains("\"fail\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_unsigned_fail_with_reasons() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "signed", "wk-1").await;
    push_image(&pusher, a, "app", "unsigned", "wk-2").await;
    let signer = PrivateKey::generate_p256().unwrap();
    let other = PrivateKey::generate_p256().unwrap();
    sign(&pusher, &format!("{a}/app:signed"), &signer).await;
    let yaml = policy_yaml(
        "wrong-key",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
            indent(&key_entry(&other), 4)
        ),
        "",
    );
    let (eng, _) = engine(&yaml);
    let r = eng
        .mutate(&request(pod(&[&format!("{a}/app:signed")])))
        .await;
    assert!(r.blocked);
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
    let msg = r.message.clone().unwrap();
    assert!(msg.contains("policy wrong-key/rule check"), "{msg}");
    assert!(msg.contains(&format!("image {a}/app:signed")), "{msg}");
    assert!(
        msg.contains("signature does not verify with the given key"),
        "{msg}"
    );
    assert!(
        r.patch
            .iter()
            .all(|p| p["path"] != "/spec/containers/0/image"),
        "no pin on failure"
    );
    let r = eng
        .mutate(&request(pod(&[&format!("{a}/app:unsigned")])))
        .await;
    assert!(r.blocked);
    assert!(r.message.unwrap().contains("no signatures found"));
    // An image that does not exist: a failure naming it, never a pass.
    let r = eng
        .mutate(&request(pod(&[&format!("{a}/app:missing")])))
        .await;
    assert!(r.blocked);
    assert!(r.message.unwrap().contains("tag not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlog_is_required_unless_ignored() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "tlog").await;
    let key = PrivateKey::generate_p256().unwrap();
    sign(&pusher, &format!("{a}/app:v1"), &key).await;
    let yaml = policy_yaml(
        "tlog",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - keys:\n        publicKeys: |-\n{}",
            indent(&pem(&key), 10)
        ),
        "",
    );
    let (eng, _) = engine(&yaml);
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("rekor.ignoreTlog is false"),
        "{}",
        first_message(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_keys_with_count_and_nested_sets() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "multi").await;
    let k1 = PrivateKey::generate_p256().unwrap();
    let k2 = PrivateKey::generate_p256().unwrap();
    let k3 = PrivateKey::generate_p256().unwrap();
    sign(&pusher, &format!("{a}/app:v1"), &k1).await;
    sign(&pusher, &format!("{a}/app:v1"), &k2).await;
    let image = format!("{a}/app:v1");
    let run = |attestors: String| {
        let yaml = policy_yaml(
            "multi",
            &format!(
                "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n{attestors}"
            ),
            "",
        );
        let image = image.clone();
        async move {
            let (eng, _) = engine(&yaml);
            eng.mutate(&request(pod(&[&image]))).await
        }
    };
    // Two PEM keys in one publicKeys: split into two entries; count unset = all must verify.
    let both = format!(
        "  - entries:\n    - keys:\n        publicKeys: |-\n{}\n{}\n        rekor: {{ignoreTlog: true}}",
        indent(&pem(&k1), 10),
        indent(&pem(&k2), 10)
    );
    let r = run(both).await;
    assert!(!r.blocked, "{r:?}");
    let trace = &r.results[0].images[0].trace;
    assert!(
        trace.iter().any(|t| t.path.ends_with("entries[1]")),
        "{trace:?}"
    );
    // k1 + k3 with count unset (all): fails, naming k3's entry.
    let all_fail = format!(
        "  - entries:\n{}\n{}",
        indent(&key_entry(&k1), 4),
        indent(&key_entry(&k3), 4)
    );
    let r = run(all_fail.clone()).await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("1 of required 2"),
        "{}",
        first_message(&r)
    );
    // count: 1 with k3 first: at least one verifies.
    let one = format!(
        "  - count: 1\n    entries:\n{}\n{}",
        indent(&key_entry(&k3), 4),
        indent(&key_entry(&k1), 4)
    );
    let r = run(one).await;
    assert!(!r.blocked, "{r:?}");
    // count: 1 with only wrong keys.
    let none = format!(
        "  - count: 1\n    entries:\n{}\n{}",
        indent(&key_entry(&k3), 4),
        indent(&key_entry(&PrivateKey::generate_p256().unwrap()), 4)
    );
    assert!(run(none).await.blocked);
    // Nested: a set requiring k2 AND (k3 OR k1) passes; k2 AND (k3 only) fails.
    let nested = |inner: String| {
        format!(
            "  - entries:\n{}\n    - attestor:\n        count: 1\n        entries:\n{}",
            indent(&key_entry(&k2), 4),
            indent(&inner, 8)
        )
    };
    let r = run(nested(format!("{}\n{}", key_entry(&k3), key_entry(&k1)))).await;
    assert!(!r.blocked, "{r:?}");
    assert!(
        r.results[0].images[0]
            .trace
            .iter()
            .any(|t| t.path.contains(".attestor.entries[1]")),
        "{:?}",
        r.results[0].images[0].trace
    );
    let r = run(nested(key_entry(&k3))).await;
    assert!(r.blocked);
    // Two sets are AND-ed.
    let two_sets = format!(
        "  - entries:\n{}\n  - entries:\n{}",
        indent(&key_entry(&k1), 4),
        indent(&key_entry(&k3), 4)
    );
    assert!(run(two_sets).await.blocked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_key_sources_are_errors() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "unsupported").await;
    let yaml = policy_yaml(
        "kms",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - keys:\n        kms: awskms:///arn:aws:kms:us-east-1:123456789012:alias/cosign-key"
        ),
        "",
    );
    let (eng, _) = engine(&yaml);
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Error]);
    assert!(r.blocked, "failurePolicy defaults to Fail");
    assert!(
        first_message(&r).contains("keys.kms"),
        "{}",
        first_message(&r)
    );
    // sha1 is rejected when the policy is parsed, with Kyverno's message.
    let bad = policy_yaml(
        "sha1",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  attestors:\n  - entries:\n    - keys:\n        publicKeys: |-\n{}\n        signatureAlgorithm: sha1",
            indent(&pem(&PrivateKey::generate_p256().unwrap()), 10)
        ),
        "",
    );
    let e = sigil_policy::parse_policies(&bad).unwrap_err().to_string();
    assert!(
        e.contains("invalid signature algorithm provided sha1"),
        "{e}"
    );
}

// ---- certificates --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_pinned_and_chained() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "cert").await;
    let signer = PrivateKey::generate_p256().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_key = KeyPair::try_from(signer.to_pkcs8_der().unwrap().as_slice()).unwrap();
    let leaf = CertificateParams::new(vec!["signer@example.com".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    sigil_cosign::legacy::sign_image_with(
        &pusher,
        &reference(&format!("{a}/app:v1")),
        &signer,
        &BTreeMap::new(),
        None,
        Some((&leaf.pem(), Some(&ca.pem()))),
    )
    .await
    .unwrap();
    // Another CA, for the failing chain case.
    let other_ca_key = KeyPair::generate().unwrap();
    let mut other_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other_ca = other_params.self_signed(&other_ca_key).unwrap();
    let run = |certs: String| {
        let yaml = policy_yaml(
            "certs",
            &format!(
                "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - certificates:\n{}\n        rekor: {{ignoreTlog: true}}",
                indent(&certs, 8)
            ),
            "",
        );
        let image = format!("{a}/app:v1");
        async move {
            let (eng, _) = engine(&yaml);
            eng.mutate(&request(pod(&[&image]))).await
        }
    };
    let cert_field = |p: &str| format!("cert: |-\n{}", indent(p, 2));
    let chain_field = |p: &str| format!("certChain: |-\n{}", indent(p, 2));
    // Pinned leaf + its chain.
    let r = run(format!(
        "{}\n{}",
        cert_field(&leaf.pem()),
        chain_field(&ca.pem())
    ))
    .await;
    assert!(!r.blocked, "{r:?}");
    // Pinned leaf alone.
    let r = run(cert_field(&leaf.pem())).await;
    assert!(!r.blocked, "{r:?}");
    // Chain only: the layer's certificate must chain to it.
    let r = run(chain_field(&ca.pem())).await;
    assert!(!r.blocked, "{r:?}");
    // Wrong chain.
    let r = run(chain_field(&other_ca.pem())).await;
    assert!(r.blocked);
    // Another pinned certificate.
    let r = run(cert_field(&other_ca.pem())).await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("differs from the given certificate"),
        "{}",
        first_message(&r)
    );
}

// ---- bundles -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstore_bundles_with_keys() {
    for api in [true, false] {
        let reg = start_registry(api).await;
        let pusher = new_client();
        let a = &reg.addr;
        push_image(&pusher, a, "app", "v1", "bundle").await;
        push_image(&pusher, a, "app", "v2", "bundle-unsigned").await;
        let key = PrivateKey::generate_p256().unwrap();
        let referrers = sigil_artifacts::Referrers::new(pusher.clone());
        sigil_cosign::bundles::sign_image_bundle(
            &referrers,
            &reference(&format!("{a}/app:v1")),
            &key,
        )
        .await
        .unwrap();
        sigil_cosign::bundles::attest_image_bundle(
            &referrers,
            &reference(&format!("{a}/app:v1")),
            &key,
            "https://example.com/Build/v1",
            br#"{"builder":"ci","level":3}"#,
        )
        .await
        .unwrap();
        let yaml = policy_yaml(
            "bundles",
            &format!(
                "- type: SigstoreBundle\n  imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}\n  attestations:\n  - type: https://example.com/Build/v1\n    attestors:\n    - entries:\n{}\n    conditions:\n    - all:\n      - key: \"{{{{ level }}}}\"\n        operator: GreaterThanOrEquals\n        value: 3",
                indent(&key_entry(&key), 4),
                indent(&key_entry(&key), 6)
            ),
            "",
        );
        let (eng, _) = engine(&yaml);
        let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
        assert!(!r.blocked, "api={api}: {r:?}");
        let r = eng.mutate(&request(pod(&[&format!("{a}/app:v2")]))).await;
        assert!(r.blocked, "api={api}");
        assert!(
            first_message(&r).contains("no Sigstore bundles found"),
            "{}",
            first_message(&r)
        );
        // Wrong key.
        let other = PrivateKey::generate_p256().unwrap();
        let yaml = policy_yaml(
            "bundles-wrong",
            &format!(
                "- type: SigstoreBundle\n  imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
                indent(&key_entry(&other), 4)
            ),
            "",
        );
        let (eng, _) = engine(&yaml);
        let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
        assert!(r.blocked, "api={api}");
    }
}

// ---- attestations --------------------------------------------------------------------------------

const REVIEW_TYPE: &str = "https://example.com/CodeReview/v1";

fn review_predicate() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "repo": {"uri": "https://git.example.com/app", "branch": "main"},
        "reviewers": ["ana@example.com", "bob@example.com"],
        "approvals": 2,
        "maxAge": "36h",
        "memory": "512Mi",
        "score": 7.5,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_conditions_each_operator_family() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "attest").await;
    let key = PrivateKey::generate_p256().unwrap();
    sigil_cosign::attest_image(
        &pusher,
        &reference(&format!("{a}/app:v1")),
        &key,
        REVIEW_TYPE,
        &review_predicate(),
        None,
    )
    .await
    .unwrap();
    // An attestation of another type is ignored by type filtering.
    sigil_cosign::attest_image(
        &pusher,
        &reference(&format!("{a}/app:v1")),
        &key,
        "https://example.com/Other/v1",
        br#"{"repo":{"branch":"dev"}}"#,
        None,
    )
    .await
    .unwrap();
    let image = format!("{a}/app:v1");
    let run = |conditions: &str, extra: &str| {
        let yaml = policy_yaml(
            "attest",
            &format!(
                "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestations:\n  - type: {REVIEW_TYPE}\n    name: review\n    attestors:\n    - entries:\n{}\n    conditions:\n{}\n{extra}",
                indent(&key_entry(&key), 6),
                indent(conditions, 4)
            ),
            "",
        );
        let image = image.clone();
        async move {
            let (eng, _) = engine(&yaml);
            eng.mutate(&request(pod(&[&image]))).await
        }
    };
    let cond = |key: &str, op: &str, value: &str| {
        format!("- all:\n  - key: \"{key}\"\n    operator: {op}\n    value: {value}")
    };
    let cases: &[(&str, &str, &str, bool)] = &[
        ("{{ repo.branch }}", "Equals", "main", true),
        ("{{ repo.branch }}", "Equals", "dev", false),
        (
            "{{ repo.uri }}",
            "NotEquals",
            "https://evil.example.com",
            true,
        ),
        (
            "{{ repo.uri }}",
            "NotEquals",
            "https://git.example.com/app",
            false,
        ),
        ("{{ predicate.repo.branch }}", "Equals", "main", true),
        ("{{ type }}", "Equals", REVIEW_TYPE, true),
        (
            "{{ reviewers }}",
            "AnyIn",
            "[ana@example.com, zed@example.com]",
            true,
        ),
        ("{{ reviewers }}", "AnyIn", "[zed@example.com]", false),
        (
            "{{ reviewers }}",
            "AllIn",
            "[ana@example.com, bob@example.com, c@example.com]",
            true,
        ),
        ("{{ reviewers }}", "AllIn", "[ana@example.com]", false),
        ("{{ repo.branch }}", "In", "[main, release]", true),
        ("{{ repo.branch }}", "NotIn", "[main, release]", false),
        ("{{ reviewers }}", "AllNotIn", "[x@example.com]", true),
        (
            "{{ reviewers }}",
            "AnyNotIn",
            "[ana@example.com, bob@example.com]",
            false,
        ),
        ("{{ approvals }}", "GreaterThanOrEquals", "2", true),
        ("{{ approvals }}", "GreaterThan", "2", false),
        ("{{ score }}", "LessThan", "8", true),
        ("{{ score }}", "LessThanOrEquals", "7", false),
        ("{{ memory }}", "GreaterThan", "256Mi", true),
        ("{{ memory }}", "LessThan", "256Mi", false),
        ("{{ maxAge }}", "DurationGreaterThan", "24h", true),
        ("{{ maxAge }}", "DurationLessThanOrEquals", "1h", false),
    ];
    for (k, op, v, pass) in cases {
        let r = run(&cond(k, op, v), "").await;
        assert_eq!(!r.blocked, *pass, "{k} {op} {v}: {:?}", r.message);
        if !pass {
            assert!(
                first_message(&r).contains("conditions failed"),
                "{}",
                first_message(&r)
            );
        }
    }
    // any: one of several.
    let any = "- any:\n  - key: \"{{ repo.branch }}\"\n    operator: Equals\n    value: dev\n  - key: \"{{ approvals }}\"\n    operator: Equals\n    value: 2";
    assert!(!run(any, "").await.blocked);
    // A condition that cannot be evaluated (unknown function) fails closed.
    let r = run(&cond("{{ no_such_function(repo) }}", "Equals", "x"), "").await;
    assert!(r.blocked);
    // validate.deny over the named attestation.
    let deny = |value: &str| {
        format!(
            "  validate:\n    message: review must come from main\n    deny:\n      conditions:\n        any:\n        - key: \"{{{{ review.repo.branch }}}}\"\n          operator: NotEquals\n          value: {value}"
        )
    };
    let ok = cond("{{ approvals }}", "GreaterThan", "0");
    assert!(!run(&ok, &deny("main")).await.blocked);
    let r = run(&ok, &deny("release")).await;
    assert!(r.blocked);
    assert!(r.message.unwrap().contains("review must come from main"));
    // Wrong key for the attestation.
    let other = PrivateKey::generate_p256().unwrap();
    let yaml = policy_yaml(
        "attest-wrong",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestations:\n  - type: {REVIEW_TYPE}\n    attestors:\n    - entries:\n{}",
            indent(&key_entry(&other), 6)
        ),
        "",
    );
    let (eng, _) = engine(&yaml);
    assert!(eng.mutate(&request(pod(&[&image]))).await.blocked);
}

// ---- audit, validate -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_warns_enforce_blocks_and_validate_checks() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "audit").await;
    let key = PrivateKey::generate_p256().unwrap();
    let entry = |action: &str, extra: &str| {
        policy_yaml(
            "audit",
            &format!(
                "- imageReferences: [\"{a}/*\"]\n  failureAction: {action}\n{extra}  attestors:\n  - entries:\n{}",
                indent(&key_entry(&key), 4)
            ),
            "",
        )
    };
    let image = format!("{a}/app:v1");
    let (eng, _) = engine(&entry("Audit", ""));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(!r.blocked);
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
    assert!(!r.results[0].enforce);
    assert!(
        r.warnings.iter().any(|w| w.contains("no signatures found")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.patch
            .iter()
            .all(|p| p["op"] != "replace" || !p["path"].as_str().unwrap().starts_with("/spec"))
    );
    let (eng, _) = engine(&entry("Enforce", ""));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(r.blocked);
    assert!(r.results[0].enforce);
    // validate: verifyDigest off, required on.
    let (eng, _) = engine(&entry(
        "Enforce",
        "  mutateDigest: false\n  verifyDigest: false\n",
    ));
    let mut p = pod(&[&image]);
    let v = eng.validate(&request(p.clone())).await;
    assert!(v.blocked);
    assert!(
        v.message
            .unwrap()
            .contains(&format!("unverified image {image}"))
    );
    p["metadata"]["annotations"] =
        json!({VERIFY_IMAGES_ANNOTATION: json!({format!("{a}/app:v1"): "fail"}).to_string()});
    assert!(eng.validate(&request(p.clone())).await.blocked);
    p["metadata"]["annotations"] =
        json!({VERIFY_IMAGES_ANNOTATION: json!({format!("{a}/app:v1"): "pass"}).to_string()});
    assert!(!eng.validate(&request(p.clone())).await.blocked);
    // required off, verifyDigest on: only the digest matters.
    let (eng, _) = engine(&entry("Enforce", "  required: false\n"));
    let v = eng
        .validate(&request(pod(&[&format!("{image}@{digest}")])))
        .await;
    assert!(!v.blocked, "{v:?}");
    let v = eng.validate(&request(pod(&[&image]))).await;
    assert!(v.blocked);
    assert!(
        v.message
            .unwrap()
            .contains(&format!("missing digest for {image}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autogen_deployment_and_cronjob() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "autogen").await;
    let key = PrivateKey::generate_p256().unwrap();
    sign(&pusher, &format!("{a}/app:v1"), &key).await;
    let yaml = policy_yaml(
        "autogen",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
            indent(&key_entry(&key), 4)
        ),
        "",
    );
    let (eng, _) = engine(&yaml);
    let image = format!("{a}/app:v1");
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default", "annotations": {"x": "y"}},
        "spec": {"template": {"spec": {"initContainers": [{"name": "i", "image": image}], "containers": [{"name": "c", "image": image}]}}},
    });
    let r = eng.mutate(&request(deploy.clone())).await;
    assert!(!r.blocked, "{r:?}");
    assert_eq!(r.results[0].rule, "autogen-check");
    let patched = apply_patch(&deploy, &r.patch);
    let pinned = format!("{image}@{digest}");
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        pinned.as_str()
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["initContainers"][0]["image"],
        pinned.as_str()
    );
    assert_eq!(patched["metadata"]["annotations"]["x"], "y");
    let cron = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "c", "namespace": "default"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": format!("{a}/app:nope")}]}}}}},
    });
    push_image(&pusher, a, "app", "nope", "nope").await;
    let r = eng.mutate(&request(cron)).await;
    assert!(r.blocked);
    assert_eq!(r.results[0].rule, "autogen-cronjob-check");
}

// ---- deadline, registry errors -------------------------------------------------------------------

/// A TCP listener that accepts connections and never answers.
async fn hanging_registry() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_registry_hits_the_deadline_and_fails_closed() {
    let addr = hanging_registry().await;
    let key = PrivateKey::generate_p256().unwrap();
    let yaml = |fp: &str| {
        policy_yaml(
            "hang",
            &format!(
                "- imageReferences: [\"{addr}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
                indent(&key_entry(&key), 4)
            ),
            &format!("failurePolicy: {fp}"),
        )
    };
    let image = format!("{addr}/app:v1");
    let (eng, _) = engine(&yaml("Fail"));
    let mut req = request(pod(&[
        &image,
        &format!("{addr}/other@sha256:{}", "a".repeat(64)),
    ]));
    req.timeout = Some(Duration::from_millis(400));
    let started = std::time::Instant::now();
    let r = eng.mutate(&req).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(r.blocked, "{r:?}");
    assert_eq!(statuses(&r), vec![RuleStatus::Error, RuleStatus::Error]);
    assert!(r.message.unwrap().contains("deadline"));
    let (eng, _) = engine(&yaml("Ignore"));
    let r = eng.mutate(&req).await;
    assert!(!r.blocked);
    assert!(!r.warnings.is_empty());
    // RegistryFailure::Deny overrides failurePolicy Ignore for registry errors.
    let mut cfg = EngineConfig::new(new_client());
    cfg.registry_failure = sigil_engine::RegistryFailure::Deny;
    let eng = Engine::new(cfg, load(&yaml("Ignore")));
    assert!(eng.mutate(&req).await.blocked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registry_is_retried_then_errors() {
    // Nothing listens on this port: connection refused, retried with backoff, then an error.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let key = PrivateKey::generate_p256().unwrap();
    let yaml = policy_yaml(
        "refused",
        &format!(
            "- imageReferences: [\"127.0.0.1:{port}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
            indent(&key_entry(&key), 4)
        ),
        "",
    );
    let (eng, client) = engine(&yaml);
    let r = eng
        .mutate(&request(pod(&[&format!("127.0.0.1:{port}/app:v1")])))
        .await;
    assert!(r.blocked);
    assert_eq!(statuses(&r), vec![RuleStatus::Error]);
    assert!(
        client.request_count() >= 2,
        "retried: {}",
        client.request_count()
    );
    assert!(
        first_message(&r).contains("cannot resolve"),
        "{}",
        first_message(&r)
    );
}

// ---- cache ---------------------------------------------------------------------------------------

fn cache(ttl_ms: u64, failure_ms: u64, tag_ms: u64) -> CacheConfig {
    CacheConfig {
        enabled: true,
        max_entries: 100,
        ttl: Duration::from_millis(ttl_ms),
        failure_ttl: Duration::from_millis(failure_ms),
        tag_ttl: Duration::from_millis(tag_ms),
    }
}

struct Fixture {
    reg: Registry,
    pusher: RegistryClient,
    key: PrivateKey,
    yaml: String,
}

async fn cache_fixture() -> Fixture {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let key = PrivateKey::generate_p256().unwrap();
    let a = reg.addr.clone();
    push_image(&pusher, &a, "app", "v1", "cache-a").await;
    sign(&pusher, &format!("{a}/app:v1"), &key).await;
    let yaml = policy_yaml(
        "cached",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
            indent(&key_entry(&key), 4)
        ),
        "",
    );
    Fixture {
        reg,
        pusher,
        key,
        yaml,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hit_ttl_expiry_and_policy_change() {
    let f = cache_fixture().await;
    let a = &f.reg.addr;
    let client = new_client();
    let eng = engine_with(client.clone(), &f.yaml, cache(600, 100, 60_000));
    let req = request(pod(&[&format!("{a}/app:v1"), &format!("{a}/app:v1")]));
    let r = eng.mutate(&req).await;
    assert!(!r.blocked);
    let n = client.request_count();
    assert_eq!(n, 3, "two containers with one image: verified once");
    assert!(r.results[0].images.iter().all(|i| !i.cached));
    let r = eng.mutate(&req).await;
    assert!(!r.blocked);
    assert_eq!(client.request_count(), n, "cache hit: no registry request");
    assert!(r.results[0].images.iter().all(|i| i.cached));
    let s = eng.stats();
    assert_eq!((s.cache_hits, s.cache_misses), (1, 1), "{s:?}");
    assert_eq!(s.tag_cache_hits, 1);
    // TTL expiry.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = eng.mutate(&req).await;
    assert!(!r.results[0].images[0].cached);
    assert_eq!(
        client.request_count(),
        n + 2,
        "tag still cached: .sig manifest + payload"
    );
    // A policy edit changes the content hash: decisions are recomputed.
    let edited = f
        .yaml
        .replace("name: cached", "name: cached\n  labels: {edited: \"1\"}");
    assert_ne!(edited, f.yaml);
    eng.replace_policies(load(&edited));
    let r = eng.mutate(&req).await;
    assert!(!r.blocked);
    assert!(!r.results[0].images[0].cached, "policy change invalidates");
    // useCache: false bypasses the cache.
    let nocache = f.yaml.replace(
        "failureAction: Enforce",
        "failureAction: Enforce\n      useCache: false",
    );
    eng.replace_policies(load(&nocache));
    for _ in 0..2 {
        let r = eng.mutate(&req).await;
        assert!(!r.results[0].images[0].cached);
    }
    let _ = &f.key;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_cached_briefly_so_a_fix_is_picked_up() {
    let f = cache_fixture().await;
    let a = &f.reg.addr;
    push_image(&f.pusher, a, "app", "late", "late-signed").await;
    let client = new_client();
    let eng = engine_with(client.clone(), &f.yaml, cache(60_000, 300, 60_000));
    let req = request(pod(&[&format!("{a}/app:late")]));
    let r = eng.mutate(&req).await;
    assert!(r.blocked);
    let r = eng.mutate(&req).await;
    assert!(r.blocked);
    assert!(
        r.results[0].images[0].cached,
        "failure cached within failure_ttl"
    );
    sign(&f.pusher, &format!("{a}/app:late"), &f.key).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = eng.mutate(&req).await;
    assert!(
        !r.blocked,
        "fixed signature picked up after failure_ttl: {r:?}"
    );
    // The pass is kept (long TTL).
    assert!(eng.mutate(&req).await.results[0].images[0].cached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_tag_to_unsigned_digest_is_denied_despite_cached_pass() {
    let f = cache_fixture().await;
    let a = &f.reg.addr;
    let client = new_client();
    let eng = engine_with(client.clone(), &f.yaml, cache(3_600_000, 10_000, 300));
    let image = format!("{a}/app:v1");
    let req = request(pod(&[&image]));
    let r = eng.mutate(&req).await;
    assert!(!r.blocked);
    let digest_a = r.results[0].images[0].digest.clone().unwrap();
    // Move the tag to an unsigned image.
    let digest_b = push_image(&f.pusher, a, "app", "v1", "cache-b-unsigned").await;
    assert_ne!(digest_a, digest_b.to_string());
    // Within the tag TTL the old resolution is used and pinned: the admitted digest is the verified one.
    let r = eng.mutate(&req).await;
    if !r.blocked {
        let pin = r
            .patch
            .iter()
            .find(|p| p["path"] == "/spec/containers/0/image")
            .unwrap();
        assert_eq!(pin["value"], format!("{image}@{digest_a}").as_str());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = eng.mutate(&req).await;
    assert!(r.blocked, "moved tag must be verified again: {r:?}");
    assert_eq!(
        r.results[0].images[0].digest.as_deref(),
        Some(digest_b.to_string().as_str())
    );
    assert!(!r.results[0].images[0].cached);
    assert!(r.message.unwrap().contains(&digest_b.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_reviews_are_coalesced() {
    let f = cache_fixture().await;
    let a = &f.reg.addr;
    let req = request(pod(&[&format!("{a}/app:v1")]));
    let single = new_client();
    let eng = engine_with(single.clone(), &f.yaml, cache(60_000, 1_000, 60_000));
    assert!(!eng.mutate(&req).await.blocked);
    let one = single.request_count();
    let client = new_client();
    let eng = Arc::new(engine_with(
        client.clone(),
        &f.yaml,
        cache(60_000, 1_000, 60_000),
    ));
    let jobs: Vec<_> = (0..16)
        .map(|_| {
            let eng = eng.clone();
            let req = req.clone();
            tokio::spawn(async move { eng.mutate(&req).await })
        })
        .collect();
    for j in jobs {
        assert!(!j.await.unwrap().blocked);
    }
    assert_eq!(
        client.request_count(),
        one,
        "16 concurrent reviews cost one verification's requests"
    );
    let s = eng.stats();
    assert_eq!(s.cache_misses, 1, "{s:?}");
    assert_eq!(s.cache_hits, 15, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_cache_verifies_every_time() {
    let f = cache_fixture().await;
    let a = &f.reg.addr;
    let req = request(pod(&[&format!("{a}/app:v1")]));
    for cfg in [
        CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        },
        CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        },
    ] {
        let client = new_client();
        let eng = engine_with(client.clone(), &f.yaml, cfg);
        eng.mutate(&req).await;
        let n = client.request_count();
        let r = eng.mutate(&req).await;
        assert!(!r.blocked);
        assert!(!r.results[0].images[0].cached);
        assert_eq!(client.request_count(), 2 * n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_images_verified_in_parallel_and_update_short_circuit() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let key = PrivateKey::generate_p256().unwrap();
    let mut images = Vec::new();
    let mut digests = Vec::new();
    for i in 0..10 {
        let d = push_image(&pusher, a, &format!("app{i}"), "v1", &format!("par-{i}")).await;
        sign(&pusher, &format!("{a}/app{i}:v1"), &key).await;
        images.push(format!("{a}/app{i}:v1"));
        digests.push(d);
    }
    let yaml = policy_yaml(
        "par",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
            indent(&key_entry(&key), 4)
        ),
        "",
    );
    let (eng, client) = engine(&yaml);
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let r = eng.mutate(&request(pod(&refs))).await;
    assert!(!r.blocked, "{r:?}");
    assert_eq!(statuses(&r), vec![RuleStatus::Pass; 10]);
    assert_eq!(client.request_count(), 30);
    // UPDATE with unchanged digest-pinned image: no verification (no requests), tags verified again.
    let pinned = format!("{}@{}", images[0], digests[0]);
    let (eng, client) = engine(&yaml);
    let mut req = request(pod(&[&pinned]));
    req.operation = Operation::Update;
    req.old_resource = Some(pod(&[&pinned]));
    let r = eng.mutate(&req).await;
    assert!(!r.blocked);
    assert_eq!(client.request_count(), 0);
    req.old_resource = Some(pod(&[&images[0]]));
    let r = eng.mutate(&req).await;
    assert!(!r.blocked);
    assert_eq!(
        client.request_count(),
        2,
        "changed image: verified (.sig manifest + payload)"
    );
}

// ---- keyless and transparency-log checks (a private CA as Fulcio, a local Rekor key) --------------

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const IDENTITY: &str = "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main";

/// A Rekor key that signs SETs for hashedrekord entries.
struct Rekor {
    key: PrivateKey,
}

impl Rekor {
    fn pem(&self) -> String {
        pem(&self.key)
    }

    fn log_id(&self) -> String {
        let der = self.key.public_key().to_spki_der().unwrap();
        Digest::sha256(&der).encoded().to_owned()
    }

    /// The `dev.sigstore.cosign/bundle` annotation for a signature over `payload` by `signer_pem`
    /// (a certificate or public key PEM).
    fn bundle(&self, payload: &[u8], sig: &[u8], signer_pem: &str) -> String {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": Digest::sha256(payload).encoded()}},
                "signature": {"content": b64(sig), "publicKey": {"content": b64(signer_pem.as_bytes())}},
            },
        });
        let body = serde_json::to_vec(&body).unwrap();
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let canonical = format!(
            "{{\"body\":\"{}\",\"integratedTime\":{time},\"logID\":\"{}\",\"logIndex\":7}}",
            b64(&body),
            self.log_id()
        );
        let set = self.key.sign(canonical.as_bytes()).unwrap();
        json!({
            "SignedEntryTimestamp": b64(&set),
            "Payload": {"body": b64(&body), "integratedTime": time, "logIndex": 7, "logID": self.log_id()},
        })
        .to_string()
    }
}

/// Pushes a legacy `.sig` manifest with one signature layer (payload for `digest`, signed by `signer`)
/// and the given extra layer annotations.
async fn push_signature_layer(
    c: &RegistryClient,
    image: &Reference,
    digest: &Digest,
    signer: &PrivateKey,
    extra: impl FnOnce(&[u8], &[u8]) -> BTreeMap<String, String>,
) {
    use base64::Engine as _;
    let payload =
        sigil_cosign::payload::simple_signing(&image.repository_name(), digest, &BTreeMap::new());
    let sig = signer.sign(&payload).unwrap();
    let mut annotations = extra(&payload, &sig);
    annotations.insert(
        sigil_cosign::legacy::SIGNATURE_ANNOTATION.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(&sig),
    );
    let mut layer =
        sigil_oci::Descriptor::for_bytes(sigil_cosign::legacy::SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    layer.annotations = Some(annotations);
    let at = sigil_cosign::legacy::storage_ref(image, digest, "sig", None).unwrap();
    c.push_blob(
        &at,
        &layer.digest,
        Some(payload.len() as u64),
        payload.clone().into(),
    )
    .await
    .unwrap();
    let config = sigil_cosign::legacy::ggcr_config(std::slice::from_ref(&layer));
    let config_desc = sigil_oci::Descriptor::for_bytes(media_type::OCI_CONFIG, &config);
    c.push_blob(
        &at,
        &config_desc.digest,
        Some(config.len() as u64),
        config.clone().into(),
    )
    .await
    .unwrap();
    let m = sigil_oci::ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: config_desc,
        layers: vec![layer],
        subject: None,
        annotations: None,
    };
    c.put_manifest(
        &at,
        Bytes::from(m.to_bytes()),
        media_type::OCI_MANIFEST,
        PutCondition::None,
    )
    .await
    .unwrap();
}

struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    params: rcgen::CertificateParams,
}

fn new_ca() -> Ca {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key, params }
}

/// A Fulcio-like leaf for `signer`: URI SAN, code signing, OIDC issuer (v1 raw and v2 UTF8String) and
/// the GitHub repository extension.
fn fulcio_leaf(ca: &Ca, signer: &PrivateKey, identity: &str) -> rcgen::Certificate {
    use rcgen::{
        CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, Issuer, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::URI(identity.try_into().unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let utf8 = |s: &str| {
        let mut v = vec![0x0c, u8::try_from(s.len()).unwrap()];
        v.extend_from_slice(s.as_bytes());
        v
    };
    params.custom_extensions = vec![
        CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 1],
            ISSUER.as_bytes().to_vec(),
        ),
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, 8], utf8(ISSUER)),
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, 5], b"org/app".to_vec()),
    ];
    let leaf_key = KeyPair::try_from(signer.to_pkcs8_der().unwrap().as_slice()).unwrap();
    let issuer = Issuer::new(ca.params.clone(), &ca.key);
    params.signed_by(&leaf_key, &issuer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_identity_roots_extensions_and_rekor_keys() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "keyless").await;
    let image = reference(&format!("{a}/app:v1"));
    let ca = new_ca();
    let rekor = Rekor {
        key: PrivateKey::generate_p256().unwrap(),
    };
    let signer = PrivateKey::generate_p256().unwrap();
    let leaf = fulcio_leaf(&ca, &signer, IDENTITY);
    let leaf_pem = leaf.pem();
    let ca_pem = ca.cert.pem();
    push_signature_layer(&pusher, &image, &digest, &signer, |payload, sig| {
        BTreeMap::from([
            (
                sigil_cosign::legacy::CERTIFICATE_ANNOTATION.to_owned(),
                leaf_pem.clone(),
            ),
            (
                sigil_cosign::legacy::CHAIN_ANNOTATION.to_owned(),
                ca_pem.clone(),
            ),
            (
                sigil_cosign::legacy::BUNDLE_ANNOTATION.to_owned(),
                rekor.bundle(payload, sig, &leaf_pem),
            ),
        ])
    })
    .await;
    let keyless = |identity: &str, roots: &str, rekor_pem: &str| {
        policy_yaml(
            "keyless",
            &format!(
                "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - keyless:\n{}\n        roots: |-\n{}\n        rekor:\n          url: https://rekor.example.com\n          pubkey: |-\n{}\n        ctlog:\n          ignoreSCT: true",
                indent(identity, 8),
                indent(roots, 10),
                indent(rekor_pem, 12)
            ),
            "",
        )
    };
    let run = |yaml: String| {
        let img = format!("{a}/app:v1");
        async move {
            let (eng, _) = engine(&yaml);
            eng.mutate(&request(pod(&[&img]))).await
        }
    };
    let ok_identity = format!(
        "subject: https://github.com/org/app/.github/workflows/*\nissuer: {ISSUER}\nadditionalExtensions:\n  githubWorkflowRepository: org/app"
    );
    let r = run(keyless(&ok_identity, &ca_pem, &rekor.pem())).await;
    assert!(!r.blocked, "{r:?}");
    // Regular expressions.
    let re = "subjectRegExp: 'https://github\\.com/org/.+@refs/heads/main'\nissuerRegExp: 'https://token\\.actions\\..*'";
    let r = run(keyless(re, &ca_pem, &rekor.pem())).await;
    assert!(!r.blocked, "{r:?}");
    // Wrong subject, issuer, extension.
    for (identity, needle) in [
        (
            format!("subject: https://github.com/evil/*\nissuer: {ISSUER}"),
            "subject mismatch",
        ),
        (
            "subject: '*'\nissuer: https://accounts.example.com".to_owned(),
            "issuer mismatch",
        ),
        (
            format!(
                "issuer: {ISSUER}\nadditionalExtensions:\n  githubWorkflowRepository: evil/app"
            ),
            "githubWorkflowRepository",
        ),
    ] {
        let r = run(keyless(&identity, &ca_pem, &rekor.pem())).await;
        assert!(r.blocked, "{identity}");
        assert!(first_message(&r).contains(needle), "{}", first_message(&r));
    }
    // Another CA as roots; another Rekor key.
    let other = new_ca();
    assert!(
        run(keyless(&ok_identity, &other.cert.pem(), &rekor.pem()))
            .await
            .blocked
    );
    let other_rekor = pem(&PrivateKey::generate_p256().unwrap());
    let r = run(keyless(&ok_identity, &ca_pem, &other_rekor)).await;
    assert!(r.blocked);
    // The engine's trusted roots stand in for `roots` and `rekor.pubkey`.
    let root = sigil_sigstore::TrustedRoot {
        certificate_authorities: vec![sigil_sigstore::trust::CertificateAuthority {
            uri: "test-ca".into(),
            chain: vec![ca.cert.der().to_vec()],
            valid_for: Default::default(),
        }],
        tlogs: vec![sigil_sigstore::trust::TransparencyLog {
            base_url: "https://rekor.example.com".into(),
            key: sigil_sigstore::PublicKey::from_pem(&rekor.pem(), "rekor").unwrap(),
            key_der: rekor.key.public_key().to_spki_der().unwrap(),
            log_id: Digest::sha256(&rekor.key.public_key().to_spki_der().unwrap())
                .encoded()
                .as_bytes()
                .chunks(2)
                .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
                .collect(),
            valid_for: Default::default(),
        }],
        ..Default::default()
    };
    let yaml = policy_yaml(
        "keyless-root",
        &format!(
            "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - keyless:\n        subject: {IDENTITY}\n        issuer: {ISSUER}\n        rekor: {{url: https://rekor.example.com}}\n        ctlog: {{ignoreSCT: true}}"
        ),
        "",
    );
    let mut cfg = EngineConfig::new(new_client());
    cfg.trusted_roots = vec![root];
    let eng = Engine::new(cfg, load(&yaml));
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert!(!r.blocked, "{r:?}");
    // Without trusted roots the same policy cannot be evaluated: an error, blocking.
    let (eng, _) = engine(&yaml);
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert!(r.blocked);
    assert_eq!(statuses(&r), vec![RuleStatus::Error]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_with_rekor_bundle_passes_tlog_check() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "key-tlog").await;
    let image = reference(&format!("{a}/app:v1"));
    let rekor = Rekor {
        key: PrivateKey::generate_p256().unwrap(),
    };
    let signer = PrivateKey::generate_p256().unwrap();
    let signer_pem = pem(&signer);
    push_signature_layer(&pusher, &image, &digest, &signer, |payload, sig| {
        BTreeMap::from([(
            sigil_cosign::legacy::BUNDLE_ANNOTATION.to_owned(),
            rekor.bundle(payload, sig, &signer_pem),
        )])
    })
    .await;
    let yaml = |rekor_pem: &str| {
        policy_yaml(
            "key-tlog",
            &format!(
                "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - keys:\n        publicKeys: |-\n{}\n        rekor:\n          pubkey: |-\n{}",
                indent(&signer_pem, 10),
                indent(rekor_pem, 12)
            ),
            "",
        )
    };
    let (eng, _) = engine(&yaml(&rekor.pem()));
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert!(!r.blocked, "{r:?}");
    let (eng, _) = engine(&yaml(&pem(&PrivateKey::generate_p256().unwrap())));
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("Rekor bundle does not verify"),
        "{}",
        first_message(&r)
    );
}

// ---- OCI 1.1 cosign signatures -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosign_oci11_signature_referrers() {
    use base64::Engine as _;
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "oci11").await;
    let image = reference(&format!("{a}/app:v1"));
    let key = PrivateKey::generate_p256().unwrap();
    // A cosign signature stored as a referrer: artifactType cosign sig, subject = the image.
    let payload =
        sigil_cosign::payload::simple_signing(&image.repository_name(), &digest, &BTreeMap::new());
    let sig = key.sign(&payload).unwrap();
    let mut layer =
        sigil_oci::Descriptor::for_bytes(sigil_cosign::legacy::SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    layer.annotations = Some(BTreeMap::from([(
        sigil_cosign::legacy::SIGNATURE_ANNOTATION.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(&sig),
    )]));
    pusher
        .push_blob(
            &image,
            &layer.digest,
            Some(payload.len() as u64),
            payload.clone().into(),
        )
        .await
        .unwrap();
    pusher
        .push_blob(
            &image,
            &Digest::sha256(b"{}"),
            Some(2),
            b"{}".to_vec().into(),
        )
        .await
        .unwrap();
    let subject = pusher.head_manifest(&image).await.unwrap().unwrap();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": media_type::OCI_EMPTY, "digest": Digest::sha256(b"{}").to_string(), "size": 2},
        "layers": [serde_json::to_value(&layer).unwrap()],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
    });
    let bytes = Bytes::from(serde_json::to_vec(&m).unwrap());
    let at = image.with_digest(Digest::sha256(&bytes));
    pusher
        .put_manifest(&at, bytes, media_type::OCI_MANIFEST, PutCondition::None)
        .await
        .unwrap();
    let yaml = |oci11: bool| {
        policy_yaml(
            "oci11",
            &format!(
                "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  cosignOCI11: {oci11}\n  attestors:\n  - entries:\n{}",
                indent(&key_entry(&key), 4)
            ),
            "",
        )
    };
    let (eng, _) = engine(&yaml(false));
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("no signatures found"),
        "{}",
        first_message(&r)
    );
    let (eng, _) = engine(&yaml(true));
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert!(!r.blocked, "{r:?}");
}

// ---- retries -------------------------------------------------------------------------------------

/// A registry that answers 503 to the first `failures` requests, then serves `app:v1` (manifest only;
/// no signatures) — or 429 forever when `failures` is `u32::MAX`.
async fn flaky_registry(failures: u32) -> (String, Arc<std::sync::atomic::AtomicU32>) {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicU32, Ordering};
    let seen = Arc::new(AtomicU32::new(0));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": Digest::sha256(b"{}").to_string(), "size": 2},
        "layers": [],
    }))
    .unwrap();
    let digest = Digest::sha256(&manifest).to_string();
    let counter = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let counter = counter.clone();
        let manifest = manifest.clone();
        let digest = digest.clone();
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if failures == u32::MAX {
                return (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
            }
            if n < failures {
                return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
            }
            if req.uri().path() == "/v2/app/manifests/v1" {
                return (
                    StatusCode::OK,
                    [
                        (header::CONTENT_TYPE, media_type::OCI_MANIFEST.to_owned()),
                        (
                            header::HeaderName::from_static("docker-content-digest"),
                            digest,
                        ),
                    ],
                    manifest,
                )
                    .into_response();
            }
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_5xx_and_429_are_retried_with_backoff() {
    use std::sync::atomic::Ordering;
    let key = PrivateKey::generate_p256().unwrap();
    let yaml = |addr: &str| {
        policy_yaml(
            "flaky",
            &format!(
                "- imageReferences: [\"{addr}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
                indent(&key_entry(&key), 4)
            ),
            "",
        )
    };
    // Two 503s, then answers: the review gets past them to the real verdict (no signatures).
    let (addr, seen) = flaky_registry(2).await;
    let (eng, _) = engine(&yaml(&addr));
    let r = eng
        .mutate(&request(pod(&[&format!("{addr}/app:v1")])))
        .await;
    assert_eq!(statuses(&r), vec![RuleStatus::Fail], "{r:?}");
    assert!(
        first_message(&r).contains("no signatures found"),
        "{}",
        first_message(&r)
    );
    assert!(
        seen.load(Ordering::SeqCst) >= 4,
        "{}",
        seen.load(Ordering::SeqCst)
    );
    // 429 forever: retried (4 attempts by default), then an uncached registry error.
    let (addr, seen) = flaky_registry(u32::MAX).await;
    let (eng, _) = engine(&yaml(&addr));
    let r = eng
        .mutate(&request(pod(&[&format!("{addr}/app:v1")])))
        .await;
    assert_eq!(statuses(&r), vec![RuleStatus::Error]);
    assert!(r.blocked);
    assert_eq!(seen.load(Ordering::SeqCst), 4);
    assert!(first_message(&r).contains("429"), "{}", first_message(&r));
    // RegistryFailure::Allow admits registry failures, with a warning.
    let mut cfg = EngineConfig::new(new_client());
    cfg.registry_failure = sigil_engine::RegistryFailure::Allow;
    let eng = Engine::new(cfg, load(&yaml(&addr)));
    let r = eng
        .mutate(&request(pod(&[&format!("{addr}/app:v1")])))
        .await;
    assert!(!r.blocked);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("registry failure admitted"))
    );
}

// ---- measurements (not a timed test: `cargo test --release -p sigil-engine -- --ignored --nocapture`)

// ---- scoping, preconditions, bad input -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_policies_preconditions_and_bad_images() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "scoping").await;
    let key = PrivateKey::generate_p256().unwrap();
    let verify = format!(
        "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
        indent(&key_entry(&key), 4)
    );
    // A namespaced Policy applies to its own namespace only.
    let yaml = policy_yaml("ns", &verify, "")
        .replace("kind: ClusterPolicy", "kind: Policy")
        .replace("  name: ns\n", "  name: ns\n  namespace: team-a\n");
    let (eng, _) = engine(&yaml);
    let image = format!("{a}/app:v1");
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(r.results.is_empty() && !r.blocked, "{r:?}");
    let mut req = request(pod(&[&image]));
    req.namespace = "team-a".into();
    let r = eng.mutate(&req).await;
    assert!(r.blocked);
    assert_eq!(r.results[0].policy, "team-a/ns");
    // Preconditions: false → skip; true → verified (and failing here: unsigned).
    let with_pre = |value: &str| {
        policy_yaml("pre", &verify, "").replace(
            "    verifyImages:",
            &format!(
                "    preconditions:\n      all:\n      - key: \"{{{{ request.object.metadata.labels.verify || 'no' }}}}\"\n        operator: Equals\n        value: {value}\n    verifyImages:"
            ),
        )
    };
    let (eng, _) = engine(&with_pre("yes"));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(!r.blocked);
    assert_eq!(r.results[0].status, RuleStatus::Skip);
    assert!(r.results[0].message.contains("preconditions"));
    let (eng, _) = engine(&with_pre("no"));
    assert!(eng.mutate(&request(pod(&[&image]))).await.blocked);
    // Images that do not parse are errors (blocking under failurePolicy Fail), never skipped.
    let (eng, _) = engine(&policy_yaml(
        "bad",
        &verify.replace(&format!("{a}/*"), "*"),
        "",
    ));
    for bad in ["not a reference", "UPPER/Case:tag", "x@sha256:zz"] {
        let r = eng.mutate(&request(pod(&[bad]))).await;
        assert!(r.blocked, "{bad}: {r:?}");
        assert_eq!(statuses(&r), vec![RuleStatus::Error], "{bad}");
    }
    // DELETE is not reviewed.
    let mut del = request(pod(&[&image]));
    del.operation = Operation::Delete;
    let r = eng.mutate(&del).await;
    assert!(r.results.is_empty() && !r.blocked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_private_ca_without_tlog() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "private-ca").await;
    let image = reference(&format!("{a}/app:v1"));
    let ca = new_ca();
    let signer = PrivateKey::generate_p256().unwrap();
    let leaf_pem = fulcio_leaf(&ca, &signer, IDENTITY).pem();
    push_signature_layer(&pusher, &image, &digest, &signer, |_, _| {
        BTreeMap::from([(
            sigil_cosign::legacy::CERTIFICATE_ANNOTATION.to_owned(),
            leaf_pem.clone(),
        )])
    })
    .await;
    let yaml = |roots: &str, subject: &str, ignore_sct: bool| {
        policy_yaml(
            "private-ca",
            &format!(
                "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - keyless:\n        subject: \"{subject}\"\n        issuer: {ISSUER}\n        roots: |-\n{}\n        rekor: {{ignoreTlog: true}}\n        ctlog: {{ignoreSCT: {ignore_sct}}}",
                indent(roots, 10)
            ),
            "",
        )
    };
    let img = format!("{a}/app:v1");
    let ca_pem = ca.cert.pem();
    let (eng, _) = engine(&yaml(&ca_pem, "https://github.com/org/*", true));
    let r = eng.mutate(&request(pod(&[&img]))).await;
    assert!(!r.blocked, "{r:?}");
    let (eng, _) = engine(&yaml(&ca_pem, "https://github.com/evil/*", true));
    assert!(eng.mutate(&request(pod(&[&img]))).await.blocked);
    let (eng, _) = engine(&yaml(
        &new_ca().cert.pem(),
        "https://github.com/org/*",
        true,
    ));
    assert!(eng.mutate(&request(pod(&[&img]))).await.blocked);
    // Without the tlog, the SCT cannot be checked: an error unless ignoreSCT.
    let (eng, _) = engine(&yaml(&ca_pem, "https://github.com/org/*", false));
    let r = eng.mutate(&request(pod(&[&img]))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Error]);
    assert!(r.blocked);
    // With the tlog required (the default), a layer without a Rekor bundle fails.
    let strict = yaml(&ca_pem, "https://github.com/org/*", true).replace(
        "rekor: {ignoreTlog: true}",
        "rekor: {url: https://rekor.example.com}",
    );
    let (eng, _) = engine(&strict);
    let r = eng.mutate(&request(pod(&[&img]))).await;
    assert!(r.blocked);
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_fields_are_errors_not_ignored() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "fields").await;
    let key = PrivateKey::generate_p256().unwrap();
    sign(&pusher, &format!("{a}/app:v1"), &key).await;
    let base = format!(
        "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
        indent(&key_entry(&key), 4)
    );
    let (eng, _) = engine(&policy_yaml("plain", &base, ""));
    assert!(
        !eng.mutate(&request(pod(&[&format!("{a}/app:v1")])))
            .await
            .blocked
    );
    for (variant, needle) in [
        (
            base.replace(
                "  failureAction: Enforce\n",
                "  failureAction: Enforce\n  imageRegistryCredentials:\n    secrets: [regcred]\n",
            ),
            "imageRegistryCredentials.secrets",
        ),
        (
            base.replace(
                "          ignoreTlog: true",
                "          ignoreTlog: true\n        ctlog:\n          tsaCertChain: x",
            ),
            "tsaCertChain",
        ),
    ] {
        let (eng, _) = engine(&policy_yaml("unsupported", &variant, ""));
        let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
        assert_eq!(statuses(&r), vec![RuleStatus::Error], "{variant}");
        assert!(r.blocked);
        assert!(first_message(&r).contains(needle), "{}", first_message(&r));
    }
}

// ---- Notary --------------------------------------------------------------------------------------

/// A Notary signer: a self-signed root and a code-signing leaf (digitalSignature, codeSigning EKU,
/// as notation requires).
struct NotaryPki {
    root_pem: String,
    leaf_pem: String,
    key: sigil_notary::crypto::PrivateKey,
    chain: Vec<sigil_notary::x509::Cert>,
}

fn notary_pki(cn: &str) -> NotaryPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let named = |cn: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationName, "Sigil Test");
        p.distinguished_name.push(DnType::StateOrProvinceName, "WA");
        p.distinguished_name.push(DnType::CountryName, "US");
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let mut rp = named(&format!("{cn} Root"));
    rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    rp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root = rp.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(rp, &root_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut lp = named(cn);
    lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let leaf = lp.signed_by(&leaf_key, &issuer).unwrap();
    let chain =
        sigil_notary::x509::Cert::parse_many(format!("{}{}", leaf.pem(), root.pem()).as_bytes())
            .unwrap();
    NotaryPki {
        root_pem: root.pem(),
        leaf_pem: leaf.pem(),
        key: sigil_notary::crypto::PrivateKey::from_pem(&leaf_key.serialize_pem()).unwrap(),
        chain,
    }
}

/// Signs `image` with sigil-notary (JWS, or COSE) and pushes the signature as a referrer.
async fn notary_sign(c: &RegistryClient, image: &str, pki: &NotaryPki, cose: bool) -> Digest {
    use sigil_notary::envelope::EnvelopeFormat;
    let opts = sigil_notary::SignOptions {
        format: if cose {
            EnvelopeFormat::Cose
        } else {
            EnvelopeFormat::Jws
        },
        expiry_seconds: None,
        timestamp: None,
        annotations: BTreeMap::new(),
        legacy_manifest: false,
        signing_agent: "sigil-engine-tests".into(),
    };
    let referrers = sigil_artifacts::Referrers::new(c.clone());
    sigil_notary::sign_image(&referrers, &reference(image), &pki.key, &pki.chain, &opts)
        .await
        .unwrap()
        .signature
}

/// Pushes an OCI 1.1 referrer of `repo@subject` with `artifact_type` and one JSON layer.
async fn push_referrer(
    c: &RegistryClient,
    addr: &str,
    repo: &str,
    subject: &Digest,
    artifact_type: &str,
    layer: &[u8],
) -> Digest {
    let at = reference(&format!("{addr}/{repo}@{subject}"));
    let subject_desc = c.head_manifest(&at).await.unwrap().unwrap();
    let empty = Bytes::from_static(b"{}");
    let layer = Bytes::copy_from_slice(layer);
    for b in [&empty, &layer] {
        c.push_blob(
            &at,
            &Digest::sha256(b),
            Some(b.len() as u64),
            b.clone().into(),
        )
        .await
        .unwrap();
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": media_type::OCI_EMPTY, "digest": Digest::sha256(&empty).to_string(), "size": 2},
        "layers": [{"mediaType": "application/json", "digest": Digest::sha256(&layer).to_string(), "size": layer.len()}],
        "subject": {"mediaType": subject_desc.media_type, "digest": subject.to_string(), "size": subject_desc.size},
    });
    let bytes = Bytes::from(serde_json::to_vec(&m).unwrap());
    let d = Digest::sha256(&bytes);
    c.put_manifest(
        &reference(&format!("{addr}/{repo}@{d}")),
        bytes,
        media_type::OCI_MANIFEST,
        PutCondition::None,
    )
    .await
    .unwrap();
    d
}

/// A `certificates` entry (list item at column 0) with `field` (`cert` or `certChain`) = `pem`.
fn notary_entry(field: &str, pem: &str) -> String {
    format!("- certificates:\n    {field}: |-\n{}", indent(pem, 6))
}

/// An attestor set (list item at column 0) of `entries`.
fn notary_set(count: Option<usize>, entries: &[String]) -> String {
    let head = match count {
        Some(n) => format!("- count: {n}\n  entries:"),
        None => "- entries:".to_owned(),
    };
    let body: Vec<String> = entries.iter().map(|e| indent(e, 2)).collect();
    format!("{head}\n{}", body.join("\n"))
}

/// A nested attestor entry (list item at column 0) holding one set.
fn notary_nested(count: Option<usize>, entries: &[String]) -> String {
    let set = notary_set(count, entries);
    let set = set.strip_prefix("- ").unwrap();
    format!("- attestor:\n{}", indent(&format!("  {set}"), 2))
}

/// A ClusterPolicy with one `type: Notary` entry for `{addr}/*`: `sets` are the `attestors` (column
/// 0), `extra` more fields of the entry (column 2, e.g. attestations).
fn notary_policy(addr: &str, sets: &[String], extra: &str, spec_extra: &str) -> String {
    let mut v =
        format!("- type: Notary\n  imageReferences: [\"{addr}/*\"]\n  failureAction: Enforce\n");
    if !sets.is_empty() {
        v.push_str("  attestors:\n");
        for s in sets {
            v.push_str(&indent(s, 2));
            v.push('\n');
        }
    }
    v.push_str(extra);
    policy_yaml("notary", &v, spec_extra)
}

fn trace_of(r: &Review) -> Vec<(String, RuleStatus, String)> {
    r.results
        .iter()
        .flat_map(|x| x.images.iter())
        .flat_map(|i| i.trace.iter())
        .map(|t| (t.path.clone(), t.status, t.detail.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_signatures_admit_trusted_certificate_and_deny_others() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "notary-app").await;
    let cose_digest = push_image(&pusher, a, "cose", "v1", "notary-cose").await;
    push_image(&pusher, a, "other", "v1", "notary-other").await;
    push_image(&pusher, a, "unsigned", "v1", "notary-unsigned").await;
    let trusted = notary_pki("trusted signer");
    let untrusted = notary_pki("untrusted signer");
    notary_sign(&pusher, &format!("{a}/app:v1"), &trusted, false).await;
    notary_sign(&pusher, &format!("{a}/cose:v1"), &trusted, true).await;
    notary_sign(&pusher, &format!("{a}/other:v1"), &untrusted, false).await;

    let trusted_root = notary_entry("cert", &trusted.root_pem);
    let untrusted_root = notary_entry("cert", &untrusted.root_pem);
    let yaml = notary_policy(
        a,
        &[notary_set(None, std::slice::from_ref(&trusted_root))],
        "",
        "",
    );
    let (eng, client) = engine(&yaml);
    let image = format!("{a}/app:v1");
    let cose_image = format!("{a}/cose:v1");
    let resource = pod(&[&image, &cose_image]);
    let before = client.request_count();
    let r = eng.mutate(&request(resource.clone())).await;
    let used = client.request_count() - before;
    assert!(!r.blocked, "{r:?}");
    assert_eq!(statuses(&r), vec![RuleStatus::Pass, RuleStatus::Pass]);
    let img = &r.results[0].images[0];
    assert_eq!(img.digest.as_deref(), Some(digest.to_string().as_str()));
    assert!(
        img.trace
            .iter()
            .any(|t| t.path.ends_with("attestors[0].entries[0]")
                && t.status == RuleStatus::Pass
                && t.detail.contains("Notary signature")
                && t.detail.contains("trusted signer")
                && t.detail.contains(&digest.to_string())),
        "{:?}",
        img.trace
    );
    eprintln!("registry requests for two uncached Notary-signed images (tags): {used}");
    assert!(used <= 10, "{used} requests for two images");
    // mutateDigest and the annotation, as for Cosign.
    let patched = apply_patch(&resource, &r.patch);
    assert_eq!(
        patched["spec"]["containers"][0]["image"],
        format!("{image}@{digest}").as_str()
    );
    assert_eq!(
        patched["spec"]["containers"][1]["image"],
        format!("{cose_image}@{cose_digest}").as_str()
    );
    let ann: BTreeMap<String, String> = serde_json::from_str(
        patched["metadata"]["annotations"][VERIFY_IMAGES_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        ann,
        BTreeMap::from([
            (format!("{a}/app@{digest}"), "pass".to_owned()),
            (format!("{a}/cose@{cose_digest}"), "pass".to_owned()),
        ])
    );
    let v = eng.validate(&request(patched)).await;
    assert!(!v.blocked, "{v:?}");
    // The decision is cached by digest: no registry request the second time.
    let before = client.request_count();
    let r = eng.mutate(&request(resource.clone())).await;
    assert!(!r.blocked);
    assert!(r.results[0].images.iter().all(|i| i.cached), "{r:?}");
    assert_eq!(client.request_count() - before, 0);

    // Signed with another certificate: denied, naming the failed check.
    let r = eng.mutate(&request(pod(&[&format!("{a}/other:v1")]))).await;
    assert!(r.blocked);
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
    let m = r.message.clone().unwrap();
    assert!(m.contains("authenticity"), "{m}");
    assert!(
        r.patch
            .iter()
            .all(|p| p["path"] != "/spec/containers/0/image")
    );
    // Unsigned: denied.
    let r = eng
        .mutate(&request(pod(&[&format!("{a}/unsigned:v1")])))
        .await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("no Notary signature found"),
        "{}",
        first_message(&r)
    );

    // The leaf certificate as the only trust anchor (certChain) admits too.
    let run = |sets: Vec<String>, image: String| {
        let yaml = notary_policy(a, &sets, "", "");
        async move {
            let (eng, _) = engine(&yaml);
            eng.mutate(&request(pod(&[&image]))).await
        }
    };
    let r = run(
        vec![notary_set(
            None,
            &[notary_entry("certChain", &trusted.leaf_pem)],
        )],
        image.clone(),
    )
    .await;
    assert!(!r.blocked, "{r:?}");

    // count: 1 of [untrusted, trusted] passes; the trace shows both.
    let r = run(
        vec![notary_set(
            Some(1),
            &[untrusted_root.clone(), trusted_root.clone()],
        )],
        image.clone(),
    )
    .await;
    assert!(!r.blocked, "{r:?}");
    let t = trace_of(&r);
    assert!(
        t.iter()
            .any(|(p, s, _)| p.ends_with("entries[0]") && *s == RuleStatus::Fail),
        "{t:?}"
    );
    assert!(
        t.iter()
            .any(|(p, s, _)| p.ends_with("entries[1]") && *s == RuleStatus::Pass),
        "{t:?}"
    );
    // count: 1 of [trusted, untrusted] stops after the first: the second is never verified (one
    // verification's requests only, as with a single entry).
    let requests_for = |sets: Vec<String>| {
        let yaml = notary_policy(a, &sets, "", "");
        let image = image.clone();
        async move {
            let (eng, c) = engine(&yaml);
            let r = eng.mutate(&request(pod(&[&image]))).await;
            (r, c.request_count())
        }
    };
    let (_, single) =
        requests_for(vec![notary_set(None, std::slice::from_ref(&trusted_root))]).await;
    let (r, n) = requests_for(vec![notary_set(
        Some(1),
        &[trusted_root.clone(), untrusted_root.clone()],
    )])
    .await;
    assert!(!r.blocked, "{r:?}");
    assert_eq!(n, single, "the second entry must not be verified");
    let (r2, both) = requests_for(vec![notary_set(
        Some(1),
        &[untrusted_root.clone(), trusted_root.clone()],
    )])
    .await;
    assert!(!r2.blocked, "{r2:?}");
    assert!(both > single, "{both} vs {single}");
    // Two verifyImages entries with the same attestor share one verification per review.
    let entry = format!(
        "- type: Notary\n  imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n{}",
        indent(&notary_set(None, std::slice::from_ref(&trusted_root)), 2)
    );
    let yaml = policy_yaml("twice", &format!("{entry}\n{entry}"), "");
    let (eng, c) = engine(&yaml);
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(!r.blocked, "{r:?}");
    assert_eq!(r.results[0].images.len(), 2);
    assert_eq!(c.request_count(), single, "memoised within the review");
    assert!(
        !trace_of(&r)
            .iter()
            .any(|(p, _, _)| p.ends_with("entries[1]")),
        "{:?}",
        trace_of(&r)
    );
    // No count: every entry must verify.
    let r = run(
        vec![notary_set(
            None,
            &[trusted_root.clone(), untrusted_root.clone()],
        )],
        image.clone(),
    )
    .await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("1 of required 2"),
        "{}",
        first_message(&r)
    );
    // A nested set counts as one entry.
    let r = run(
        vec![notary_set(
            None,
            &[notary_nested(
                Some(1),
                &[untrusted_root.clone(), trusted_root.clone()],
            )],
        )],
        image.clone(),
    )
    .await;
    assert!(!r.blocked, "{r:?}");
    assert!(
        trace_of(&r).iter().any(
            |(p, s, _)| p.ends_with("entries[0].attestor.entries[1]") && *s == RuleStatus::Pass
        ),
        "{:?}",
        trace_of(&r)
    );
    // Two sets are AND-ed.
    let r = run(
        vec![
            notary_set(None, std::slice::from_ref(&trusted_root)),
            notary_set(None, std::slice::from_ref(&untrusted_root)),
        ],
        image.clone(),
    )
    .await;
    assert!(r.blocked);
    // Attestor annotations must be in the signed target's annotations (none were signed).
    let with_annotations = format!("{trusted_root}\n  annotations:\n    team: payments");
    let r = run(vec![notary_set(None, &[with_annotations])], image.clone()).await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("annotation mismatch"),
        "{}",
        first_message(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_signatures_on_a_registry_without_referrers_api() {
    let reg = start_registry(false).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "notary-fallback").await;
    let trusted = notary_pki("fallback signer");
    let other = notary_pki("other signer");
    notary_sign(&pusher, &format!("{a}/app:v1"), &trusted, false).await;
    let image = format!("{a}/app:v1");
    for (pki, pass) in [(&trusted, true), (&other, false)] {
        let yaml = notary_policy(
            a,
            &[notary_set(None, &[notary_entry("cert", &pki.root_pem)])],
            "",
            "",
        );
        let (eng, _) = engine(&yaml);
        let r = eng.mutate(&request(pod(&[&image]))).await;
        assert_eq!(r.blocked, !pass, "{r:?}");
        if pass {
            let img = &r.results[0].images[0];
            assert_eq!(img.digest.as_deref(), Some(digest.to_string().as_str()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_attestations_with_conditions_and_validate() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let digest = push_image(&pusher, a, "app", "v1", "notary-att").await;
    let attester = notary_pki("attester");
    let other = notary_pki("someone else");
    notary_sign(&pusher, &format!("{a}/app:v1"), &attester, false).await;
    let sbom = push_referrer(
        &pusher,
        a,
        "app",
        &digest,
        "application/vnd.example.sbom",
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"name":"busybox"}]}"#,
    )
    .await;
    notary_sign(&pusher, &format!("{a}/app@{sbom}"), &attester, true).await;
    // An attestation nobody signed.
    push_referrer(
        &pusher,
        a,
        "app",
        &digest,
        "application/vnd.example.scan",
        br#"{"critical":0}"#,
    )
    .await;
    let image = format!("{a}/app:v1");
    let entry = |pki: &NotaryPki| notary_set(None, &[notary_entry("cert", &pki.root_pem)]);
    let attestation = |ty: &str, attestors: Option<String>, conditions: &str| {
        let mut s = format!("- type: {ty}\n  name: att\n");
        if let Some(at) = attestors {
            s.push_str(&format!("  attestors:\n{}\n", indent(&at, 2)));
        }
        if !conditions.is_empty() {
            s.push_str(&format!("  conditions:\n{}\n", indent(conditions, 2)));
        }
        format!("  attestations:\n{}\n", indent(&s, 2))
    };
    let sbom_ok = "- all:\n  - key: \"{{ bomFormat }}\"\n    operator: Equals\n    value: CycloneDX\n  - key: \"{{ components[0].name }}\"\n    operator: Equals\n    value: busybox\n  - key: \"{{ predicate.specVersion }}\"\n    operator: Equals\n    value: \"1.5\"";
    let sbom_bad = "- all:\n  - key: \"{{ bomFormat }}\"\n    operator: Equals\n    value: SPDX";
    let run = |sets: Vec<String>, extra: String, spec: &str| {
        let yaml = notary_policy(a, &sets, &extra, spec);
        let image = image.clone();
        async move {
            let (eng, _) = engine(&yaml);
            eng.mutate(&request(pod(&[&image]))).await
        }
    };
    // Signature and a signed attestation passing its conditions.
    let r = run(
        vec![entry(&attester)],
        attestation(
            "application/vnd.example.sbom",
            Some(entry(&attester)),
            sbom_ok,
        ),
        "",
    )
    .await;
    assert!(!r.blocked, "{r:?}");
    assert!(
        trace_of(&r).iter().any(
            |(p, s, d)| p.contains("attestations[0].attestors[0].entries[0]")
                && *s == RuleStatus::Pass
                && d.contains("passed the conditions")
                && d.contains("verified by its Notary signature")
        ),
        "{:?}",
        trace_of(&r)
    );
    // Conditions failing.
    let r = run(
        vec![],
        attestation(
            "application/vnd.example.sbom",
            Some(entry(&attester)),
            sbom_bad,
        ),
        "",
    )
    .await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("failed the conditions"),
        "{}",
        first_message(&r)
    );
    // The attestation's signature does not verify with another certificate.
    let r = run(
        vec![],
        attestation("application/vnd.example.sbom", Some(entry(&other)), sbom_ok),
        "",
    )
    .await;
    assert!(r.blocked);
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
    // An unsigned attestation fails with a certificate attestor ...
    let scan_ok = "- all:\n  - key: \"{{ critical }}\"\n    operator: Equals\n    value: 0";
    let r = run(
        vec![],
        attestation(
            "application/vnd.example.scan",
            Some(entry(&attester)),
            scan_ok,
        ),
        "",
    )
    .await;
    assert!(r.blocked, "{r:?}");
    // ... and, as Kyverno, passes without attestors (signature check skipped, said in the trace).
    let r = run(
        vec![],
        attestation("application/vnd.example.scan", None, scan_ok),
        "",
    )
    .await;
    assert!(!r.blocked, "{r:?}");
    assert!(
        trace_of(&r)
            .iter()
            .any(|(_, _, d)| d.contains("signatures NOT checked")),
        "{:?}",
        trace_of(&r)
    );
    // An explicit but empty certificates entry is an error, not Kyverno's "skip the check".
    let r = run(
        vec![],
        attestation(
            "application/vnd.example.scan",
            Some(notary_set(None, &[notary_entry("cert", "")])),
            scan_ok,
        ),
        "",
    )
    .await;
    assert!(r.blocked, "{r:?}");
    assert_eq!(statuses(&r), vec![RuleStatus::Error]);
    assert!(
        first_message(&r).contains("cert and certChain are both empty"),
        "{}",
        first_message(&r)
    );
    // No referrer of the type.
    let r = run(
        vec![],
        attestation("application/vnd.example.none", Some(entry(&attester)), ""),
        "",
    )
    .await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("no referrer of type application/vnd.example.none"),
        "{}",
        first_message(&r)
    );
    // validate.deny sees the predicate under the attestation's name.
    let validate = |op: &str| {
        format!(
            "  validate:\n    message: sbom must be CycloneDX\n    deny:\n      conditions:\n        any:\n        - key: \"{{{{ att.bomFormat }}}}\"\n          operator: {op}\n          value: CycloneDX\n"
        )
    };
    let with_att = attestation(
        "application/vnd.example.sbom",
        Some(entry(&attester)),
        sbom_ok,
    );
    let r = run(vec![], format!("{with_att}{}", validate("NotEquals")), "").await;
    assert!(!r.blocked, "{r:?}");
    let r = run(vec![], format!("{with_att}{}", validate("Equals")), "").await;
    assert!(r.blocked);
    assert!(
        first_message(&r).contains("sbom must be CycloneDX"),
        "{}",
        first_message(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_wrong_attestor_kinds_and_bad_certificates_are_errors() {
    let a = "127.0.0.1:5999";
    let key_pem = pem(&PrivateKey::generate_p256().unwrap());
    let keys = format!("- keys:\n    publicKeys: |-\n{}", indent(&key_pem, 6));
    let keyless = "- keyless:\n    subject: me@example.com\n    issuer: https://issuer.example\n    rekor:\n      url: https://rekor.example".to_owned();
    let pki = notary_pki("kinds");
    let repo_entry = format!(
        "{}\n  repository: {a}/signatures",
        notary_entry("cert", &pki.root_pem)
    );
    for (entry, path, message) in [
        (
            &keys,
            "verifyImages[0].attestors[0].entries[0].keys",
            "Keys field is not allowed for type notary",
        ),
        (
            &keyless,
            "verifyImages[0].attestors[0].entries[0].keyless",
            "Keyless field is not allowed for type notary",
        ),
        (
            &repo_entry,
            "verifyImages[0].attestors[0].entries[0].repository",
            "repository is not supported for type notary",
        ),
    ] {
        let yaml = notary_policy(a, &[notary_set(None, std::slice::from_ref(entry))], "", "");
        let e = sigil_policy::parse_policies(&yaml).unwrap_err().to_string();
        assert!(e.contains(path) && e.contains(message), "{e}");
    }
    // In attestations too, and nested.
    let att = format!(
        "  attestations:\n  - type: application/vnd.example.sbom\n    attestors:\n{}\n",
        indent(
            &notary_set(None, &[notary_nested(None, std::slice::from_ref(&keys))]),
            4
        )
    );
    let e = sigil_policy::parse_policies(&notary_policy(a, &[], &att, ""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("attestations[0].attestors[0].entries[0].attestor.entries[0].keys")
            && e.contains("Keys field is not allowed"),
        "{e}"
    );
    // The verifyImages-level repository.
    let e = sigil_policy::parse_policies(&notary_policy(
        a,
        &[notary_set(None, &[notary_entry("cert", &pki.root_pem)])],
        &format!("  repository: {a}/signatures\n"),
        "",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("verifyImages[0].repository") && e.contains("not supported"),
        "{e}"
    );

    // A certificate that does not parse: a rule error (never a pass); failurePolicy decides.
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "notary-bad-cert").await;
    notary_sign(&pusher, &format!("{a}/app:v1"), &pki, false).await;
    let bad = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    let image = format!("{a}/app:v1");
    // ctlog.tsaCertChain is the `tsa` trust store: it must hold a self-signed root (the leaf is
    // not); with one, signatures must carry a timestamp verifying against it (notation's rule), so
    // this untimestamped signature fails.
    let with_tsa = |tsa: &str| {
        format!(
            "{}\n    ctlog:\n      tsaCertChain: |-\n{}",
            notary_entry("cert", &pki.root_pem),
            indent(tsa, 8)
        )
    };
    let tsa_run = |tsa: String| {
        let yaml = notary_policy(a, &[notary_set(None, &[with_tsa(&tsa)])], "", "");
        let image = image.clone();
        async move {
            let (eng, _) = engine(&yaml);
            eng.mutate(&request(pod(&[&image]))).await
        }
    };
    let r = tsa_run(pki.leaf_pem.clone()).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Error], "{r:?}");
    assert!(
        first_message(&r).contains("tsaCertChain"),
        "{}",
        first_message(&r)
    );
    let r = tsa_run(notary_pki("tsa").root_pem).await;
    assert!(r.blocked, "{r:?}");
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
    assert!(
        first_message(&r).contains("no timestamp countersignature"),
        "{}",
        first_message(&r)
    );
    for (cert, needle) in [
        (bad, "attestor `cert`"),
        (
            // Substituted like Kyverno's rule body: an unknown variable fails closed.
            "{{ keys.data.certificate }}",
            "variable `{{ keys.data.certificate }}` not resolved",
        ),
    ] {
        for fp in ["Fail", "Ignore"] {
            let yaml = notary_policy(
                a,
                &[notary_set(None, &[notary_entry("cert", cert)])],
                "",
                &format!("failurePolicy: {fp}"),
            );
            let (eng, _) = engine(&yaml);
            let r = eng.mutate(&request(pod(&[&image]))).await;
            assert_eq!(statuses(&r), vec![RuleStatus::Error], "{r:?}");
            assert!(first_message(&r).contains(needle), "{}", first_message(&r));
            assert_eq!(r.blocked, fp == "Fail");
            if fp == "Ignore" {
                assert!(r.warnings.iter().any(|w| w.contains(needle)), "{r:?}");
            }
            assert!(
                !r.patch
                    .iter()
                    .any(|p| p["path"] == "/spec/containers/0/image"),
                "no digest pin for an error"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_unreachable_registry_is_an_error_not_a_pass() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let a = format!("127.0.0.1:{port}");
    let pki = notary_pki("unreachable");
    let yaml = notary_policy(
        &a,
        &[notary_set(None, &[notary_entry("cert", &pki.root_pem)])],
        "",
        "",
    );
    let (eng, client) = engine(&yaml);
    // Digest-pinned: no tag resolution, the Notary check itself meets the refused connection.
    let image = format!("{a}/app@sha256:{}", "ab".repeat(32));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(r.blocked, "{r:?}");
    assert_eq!(statuses(&r), vec![RuleStatus::Error]);
    assert!(
        client.request_count() >= 2,
        "retried: {}",
        client.request_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_signature_moved_to_another_image_is_rejected() {
    use sigil_notary::oci::{ANNOTATION_THUMBPRINT, ARTIFACT_TYPE_SIGNATURE, build_envelope};
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    let signed = push_image(&pusher, a, "app", "v1", "notary-moved-signed").await;
    let victim = push_image(&pusher, a, "app", "v2", "notary-moved-victim").await;
    let trusted = notary_pki("mover");
    // A genuine envelope over v1, attached as a referrer of v2.
    let signed_desc = pusher
        .head_manifest(&reference(&format!("{a}/app@{signed}")))
        .await
        .unwrap()
        .unwrap();
    let victim_desc = pusher
        .head_manifest(&reference(&format!("{a}/app@{victim}")))
        .await
        .unwrap()
        .unwrap();
    let opts = sigil_notary::SignOptions {
        format: sigil_notary::envelope::EnvelopeFormat::Jws,
        expiry_seconds: None,
        timestamp: None,
        annotations: BTreeMap::new(),
        legacy_manifest: false,
        signing_agent: "sigil-engine-tests".into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let env = build_envelope(
        &signed_desc,
        &trusted.key,
        &trusted.chain,
        &opts,
        i64::try_from(now).unwrap(),
    )
    .await
    .unwrap();
    let at = reference(&format!("{a}/app@{victim}"));
    let env = Bytes::from(env);
    let empty = Bytes::from_static(b"{}");
    for b in [&env, &empty] {
        pusher
            .push_blob(
                &at,
                &Digest::sha256(b),
                Some(b.len() as u64),
                b.clone().into(),
            )
            .await
            .unwrap();
    }
    let thumbprints: Vec<String> = trusted
        .chain
        .iter()
        .map(sigil_notary::x509::Cert::sha256_hex)
        .collect();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE_SIGNATURE,
        "config": {"mediaType": media_type::OCI_EMPTY, "digest": Digest::sha256(&empty).to_string(), "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": Digest::sha256(&env).to_string(), "size": env.len()}],
        "subject": {"mediaType": victim_desc.media_type, "digest": victim.to_string(), "size": victim_desc.size},
        "annotations": {ANNOTATION_THUMBPRINT: serde_json::to_string(&thumbprints).unwrap()},
    });
    let bytes = Bytes::from(serde_json::to_vec(&m).unwrap());
    let sig = Digest::sha256(&bytes);
    pusher
        .put_manifest(
            &reference(&format!("{a}/app@{sig}")),
            bytes,
            media_type::OCI_MANIFEST,
            PutCondition::None,
        )
        .await
        .unwrap();
    let yaml = notary_policy(
        a,
        &[notary_set(None, &[notary_entry("cert", &trusted.root_pem)])],
        "",
        "",
    );
    let (eng, _) = engine(&yaml);
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v2")]))).await;
    assert!(r.blocked, "{r:?}");
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
    assert!(
        r.patch
            .iter()
            .all(|p| p["path"] != "/spec/containers/0/image"),
        "never pinned"
    );
    assert!(
        first_message(&r).contains("content descriptor mismatch"),
        "{}",
        first_message(&r)
    );
    // The same envelope is accepted where it belongs.
    notary_sign(&pusher, &format!("{a}/app:v1"), &trusted, false).await;
    let r = eng.mutate(&request(pod(&[&format!("{a}/app:v1")]))).await;
    assert!(!r.blocked, "{r:?}");
}

// ---- rule context, failure-action overrides, applyRules ------------------------------------------

/// A ClusterPolicy (column-0 YAML) with `spec_extra` and one rule given as YAML below `rules:`.
fn rules_policy(name: &str, spec_extra: &str, rules: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}  rules:\n{rules}\n",
        spec = indent_opt(spec_extra, 2),
        rules = indent(rules, 2)
    )
}

/// A Pod rule named `name` with `context` (YAML list at column 0, may be empty) and a verifyImages
/// entry (YAML list item at column 0).
fn context_rule(name: &str, context: &str, extra: &str, verify: &str) -> String {
    let context = if context.trim().is_empty() {
        String::new()
    } else {
        format!("  context:\n{}\n", indent(context, 2))
    };
    format!(
        "- name: {name}\n  match:\n    any:\n    - resources:\n        kinds: [Pod]\n{context}{extra}  verifyImages:\n{}",
        indent(verify, 2)
    )
}

fn labelled(mut p: Value, team: &str) -> Value {
    p["metadata"]["labels"] = json!({ "team": team });
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_variables_choose_the_key_and_fail_closed() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "ctx-var").await;
    let key_a = PrivateKey::generate_p256().unwrap();
    let key_b = PrivateKey::generate_p256().unwrap();
    let image = format!("{a}/app:v1");
    sign(&pusher, &image, &key_b).await;
    // `team` from the request (default `a`); `pubkey` picks the team's key from a map value.
    let context = format!(
        "- name: team\n  variable:\n    jmesPath: request.object.metadata.labels.team\n    default: a\n- name: pubkey\n  variable:\n    jmesPath: '\"{{{{ team }}}}\"'\n    value:\n      a: |-\n{}\n      b: |-\n{}",
        indent(&pem(&key_a), 8),
        indent(&pem(&key_b), 8)
    );
    let verify = format!(
        "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - keys:\n        publicKeys: \"{{{{ pubkey }}}}\"\n        rekor:\n          ignoreTlog: true"
    );
    let yaml = rules_policy("ctx", "", &context_rule("check", &context, "", &verify));
    let (eng, _) = engine(&yaml);
    // Team b: key b signed the image.
    let r = eng.mutate(&request(labelled(pod(&[&image]), "b"))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Pass], "{r:?}");
    assert!(!r.blocked);
    // No label: the default team `a`, whose key did not sign; the cached pass of team b must not
    // leak into this decision (the substituted entry is part of the cache key).
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Fail], "{r:?}");
    assert!(r.blocked);
    // And team b again: still a pass (from the cache now).
    let r = eng.mutate(&request(labelled(pod(&[&image]), "b"))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Pass], "{r:?}");
    assert!(r.results[0].images[0].cached);

    // An unknown team yields null from the map: the variable evaluates to nothing → error, blocked.
    let r = eng.mutate(&request(labelled(pod(&[&image]), "zzz"))).await;
    assert!(r.blocked, "{r:?}");
    assert_eq!(r.results[0].status, RuleStatus::Error, "{r:?}");
    assert!(
        r.results[0].message.contains("spec.rules[0].context[1]"),
        "{}",
        r.results[0].message
    );

    // A variable that does not exist in the attestor: error naming the variable, never a pass.
    let bad = format!(
        "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n    - keys:\n        publicKeys: \"{{{{ nokey }}}}\""
    );
    let (eng, _) = engine(&rules_policy(
        "ctx",
        "",
        &context_rule("check", "- name: x\n  variable:\n    value: 1", "", &bad),
    ));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Error], "{r:?}");
    assert!(r.blocked);
    assert!(first_message(&r).contains("nokey"), "{}", first_message(&r));

    // A context source that needs the API server: an error naming its path.
    let (eng, _) = engine(&rules_policy(
        "ctx",
        "",
        &context_rule(
            "check",
            "- name: cm\n  configMap:\n    name: keys\n    namespace: default",
            "",
            &verify,
        ),
    ));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(r.blocked);
    assert_eq!(r.results[0].status, RuleStatus::Error);
    assert!(
        r.results[0]
            .message
            .contains("spec.rules[0].context[0].configMap"),
        "{}",
        r.results[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_image_registry_feeds_preconditions_and_deny() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "good", "v1", "fine").await;
    push_image(&pusher, a, "bad", "v1", "bad").await;
    let key = PrivateKey::generate_p256().unwrap();
    for r in ["good", "bad"] {
        sign(&pusher, &format!("{a}/{r}:v1"), &key).await;
    }
    let context = "- name: img\n  imageRegistry:\n    reference: \"{{ request.object.spec.containers[0].image }}\"\n- name: seed\n  variable:\n    jmesPath: img.configData.seed";
    let pre = "  preconditions:\n    all:\n    - key: \"{{ img.configData.os }}\"\n      operator: Equals\n      value: linux\n";
    let verify = format!(
        "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}\n  validate:\n    message: bad seed\n    deny:\n      conditions:\n        all:\n        - key: \"{{{{ seed }}}}\"\n          operator: Equals\n          value: bad",
        indent(&key_entry(&key), 4)
    );
    let yaml = rules_policy("ctx-img", "", &context_rule("check", context, pre, &verify));
    let (eng, client) = engine(&yaml);
    let before = client.request_count();
    let r = eng.mutate(&request(pod(&[&format!("{a}/good:v1")]))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Pass], "{r:?}");
    // The context fetch (manifest + config) is counted with the verification's requests.
    let used = client.request_count() - before;
    assert!(used >= 2 + 3, "only {used} registry requests");
    let r = eng.mutate(&request(pod(&[&format!("{a}/bad:v1")]))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Fail], "{r:?}");
    assert!(
        first_message(&r).contains("bad seed"),
        "{}",
        first_message(&r)
    );
    assert!(r.blocked);

    // A precondition on the image data that is not met: the rule is skipped.
    let pre_windows = pre.replace("linux", "windows");
    let (eng, _) = engine(&rules_policy(
        "ctx-img",
        "",
        &context_rule("check", context, &pre_windows, &verify),
    ));
    let r = eng.mutate(&request(pod(&[&format!("{a}/bad:v1")]))).await;
    assert!(!r.blocked, "{r:?}");
    assert_eq!(r.results[0].status, RuleStatus::Skip, "{r:?}");

    // An image that does not exist: the context entry fails, the rule errors, blocked.
    let r = eng
        .mutate(&request(pod(&[&format!("{a}/missing:v1")])))
        .await;
    assert!(r.blocked, "{r:?}");
    assert_eq!(r.results[0].status, RuleStatus::Error);
    assert!(
        r.results[0]
            .message
            .contains("spec.rules[0].context[0].imageRegistry"),
        "{}",
        r.results[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_action_overrides_by_namespace() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "overrides").await;
    let key = PrivateKey::generate_p256().unwrap();
    let verify = format!(
        "- imageReferences: [\"{a}/*\"]\n  mutateDigest: false\n  attestors:\n  - entries:\n{}",
        indent(&key_entry(&key), 4)
    );
    let spec = "validationFailureAction: Audit\nvalidationFailureActionOverrides:\n- action: Enforce\n  namespaces: [\"prod-*\"]";
    let yaml = rules_policy("ovr", spec, &context_rule("check", "", "", &verify));
    let (eng, _) = engine(&yaml);
    let image = format!("{a}/app:v1");
    let mut req = request(pod(&[&image]));
    req.namespace = "prod-eu".into();
    let r = eng.mutate(&req).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
    assert!(r.blocked, "Enforce in prod-*: {r:?}");
    assert!(r.results[0].enforce);
    req.namespace = "dev".into();
    let r = eng.mutate(&req).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Fail]);
    assert!(!r.blocked, "Audit elsewhere: {r:?}");
    assert!(r.warnings.iter().any(|w| w.starts_with("audit:")), "{r:?}");
    // An entry's own failureAction wins over the overrides.
    let own = verify.replace(
        "  mutateDigest: false\n",
        "  mutateDigest: false\n  failureAction: Audit\n",
    );
    let (eng, _) = engine(&rules_policy(
        "ovr",
        spec,
        &context_rule("check", "", "", &own),
    ));
    req.namespace = "prod-eu".into();
    assert!(!eng.mutate(&req).await.blocked);
    // The namespaceSelector form needs the cluster: refused when the policy is parsed.
    let sel = "validationFailureActionOverrides:\n- action: Enforce\n  namespaceSelector:\n    matchLabels:\n      env: prod";
    let e = sigil_policy::parse_policies(&rules_policy(
        "ovr",
        sel,
        &context_rule("check", "", "", &verify),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("validationFailureActionOverrides[0].namespaceSelector"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_rules_one_stops_after_the_first_rule_that_applies() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "team/app", "v1", "one").await;
    let good = PrivateKey::generate_p256().unwrap();
    let other = PrivateKey::generate_p256().unwrap();
    let image = format!("{a}/team/app:v1");
    sign(&pusher, &image, &good).await;
    let rule = |name: &str, refs: &str, key: &PrivateKey| {
        context_rule(
            name,
            "",
            "",
            &format!(
                "- imageReferences: [\"{refs}\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
                indent(&key_entry(key), 4)
            ),
        )
    };
    let rules = format!(
        "{}\n{}\n{}",
        rule("elsewhere", "example.invalid/*", &other),
        rule("team", &format!("{a}/team/*"), &good),
        rule("all", &format!("{a}/*"), &other)
    );
    // All: the third rule (wrong key) blocks.
    let (eng, _) = engine(&rules_policy("apply", "applyRules: All", &rules));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(r.blocked, "{r:?}");
    assert_eq!(r.results.len(), 3);
    // One: the first rule matches no image (skip, not applied), the second passes and stops.
    let (eng, _) = engine(&rules_policy("apply", "applyRules: One", &rules));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(!r.blocked, "{r:?}");
    let names: Vec<&str> = r.results.iter().map(|x| x.rule.as_str()).collect();
    assert_eq!(names, vec!["elsewhere", "team"]);
    assert_eq!(r.results[1].status, RuleStatus::Pass);
    // A failing first applied rule also stops the policy (its failure is the result).
    let rules_fail_first = format!(
        "{}\n{}",
        rule("all", &format!("{a}/*"), &other),
        rule("team", &format!("{a}/team/*"), &good)
    );
    let (eng, _) = engine(&rules_policy("apply", "applyRules: One", &rules_fail_first));
    let r = eng.mutate(&request(pod(&[&image]))).await;
    assert!(r.blocked);
    assert_eq!(r.results.len(), 1, "{r:?}");
    assert_eq!(r.results[0].status, RuleStatus::Fail);
    let e = sigil_policy::parse_policies(&rules_policy("apply", "applyRules: Some", &rules))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.applyRules"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_rules_one_does_not_run_later_rules() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "team/app", "v1", "one-team").await;
    push_image(&pusher, a, "other/app", "v1", "one-other").await;
    let good = PrivateKey::generate_p256().unwrap();
    let other = PrivateKey::generate_p256().unwrap();
    let team = format!("{a}/team/app:v1");
    let rest = format!("{a}/other/app:v1");
    sign(&pusher, &team, &good).await;
    sign(&pusher, &rest, &other).await;
    let rule = |name: &str, refs: &str, key: &PrivateKey, context: &str| {
        context_rule(
            name,
            context,
            "",
            &format!(
                "- imageReferences: [\"{refs}\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
                indent(&key_entry(key), 4)
            ),
        )
    };
    let team_rule = rule("team", &format!("{a}/team/*"), &good, "");
    // The later rule loads an imageRegistry context entry and verifies both images.
    let rest_context = format!("- name: img\n  imageRegistry:\n    reference: \"{rest}\"");
    let rest_rule = rule("rest", &format!("{a}/*"), &other, &rest_context);
    let both = format!("{team_rule}\n{rest_rule}");
    let pod2 = pod(&[&team, &rest]);
    let count = |yaml: String| {
        let pod2 = pod2.clone();
        async move {
            let (eng, client) = engine(&yaml);
            let before = client.request_count();
            let r = eng.mutate(&request(pod2)).await;
            (r, client.request_count() - before)
        }
    };
    // Baseline: the first rule alone.
    let (r, alone) = count(rules_policy("apply", "applyRules: All", &team_rule)).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Pass], "{r:?}");
    assert!(alone > 0);
    // One: the first rule passes, so the second is neither loaded nor verified: not one registry
    // request more than the first rule alone.
    let (r, one) = count(rules_policy("apply", "applyRules: One", &both)).await;
    assert!(!r.blocked, "{r:?}");
    let names: Vec<&str> = r.results.iter().map(|x| x.rule.as_str()).collect();
    assert_eq!(names, vec!["team"], "{r:?}");
    assert_eq!(one, alone, "applyRules: One made requests for a later rule");
    // All: both rules run (the second fails on the team image, signed by another key).
    let (r, all) = count(rules_policy("apply", "applyRules: All", &both)).await;
    assert_eq!(r.results.len(), 2, "{r:?}");
    assert!(r.blocked, "{r:?}");
    eprintln!("registry requests: first rule alone {alone}, applyRules One {one}, All {all}");
    assert!(
        all > alone + 2,
        "All: {all} requests, first rule alone: {alone}"
    );
    // One, first rule not applying (its precondition is not met): the second rule runs, in a
    // later step, with its context and both images.
    let skipped = context_rule(
        "team",
        "",
        "  preconditions:\n    all:\n    - key: \"{{ request.object.metadata.name }}\"\n      operator: Equals\n      value: other\n",
        &format!(
            "- imageReferences: [\"{a}/team/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}",
            indent(&key_entry(&good), 4)
        ),
    );
    let (r, _) = count(rules_policy(
        "apply",
        "applyRules: One",
        &format!("{skipped}\n{rest_rule}"),
    ))
    .await;
    let got: Vec<(&str, RuleStatus)> = r
        .results
        .iter()
        .map(|x| (x.rule.as_str(), x.status))
        .collect();
    assert_eq!(
        got,
        vec![("team", RuleStatus::Skip), ("rest", RuleStatus::Fail)],
        "{r:?}"
    );
    assert_eq!(r.results[1].images.len(), 2, "{r:?}");
    // One, first rule failing after verification (its image does not exist): a fail applies,
    // so the policy stops there.
    let missing = rule("team", &format!("{a}/team/*"), &good, "");
    let pod_missing = pod(&[&format!("{a}/team/missing:v1"), &rest]);
    let (eng, _) = engine(&rules_policy(
        "apply",
        "applyRules: One",
        &format!("{missing}\n{rest_rule}"),
    ));
    let r = eng.mutate(&request(pod_missing)).await;
    let got: Vec<(&str, RuleStatus)> = r
        .results
        .iter()
        .map(|x| (x.rule.as_str(), x.status))
        .collect();
    assert_eq!(got, vec![("team", RuleStatus::Fail)], "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_variable_in_context_preconditions_and_deny() {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let a = &reg.addr;
    push_image(&pusher, a, "app", "v1", "images-var").await;
    push_image(&pusher, a, "app", "v2", "images-var").await;
    let key = PrivateKey::generate_p256().unwrap();
    for t in ["v1", "v2"] {
        sign(&pusher, &format!("{a}/app:{t}"), &key).await;
    }
    // A context entry and a precondition read `images`; `validate.deny` reads it at verify time.
    let context = "- name: reg\n  variable:\n    jmesPath: images.containers.web.registry";
    let pre = format!(
        "  preconditions:\n    all:\n    - key: \"{{{{ reg }}}}\"\n      operator: Equals\n      value: \"{a}\"\n    - key: \"{{{{ images.containers.web.name }}}}\"\n      operator: Equals\n      value: app\n"
    );
    let verify = format!(
        "- imageReferences: [\"{a}/*\"]\n  failureAction: Enforce\n  attestors:\n  - entries:\n{}\n  validate:\n    message: \"tag {{{{ images.containers.web.tag }}}} is retired\"\n    deny:\n      conditions:\n        all:\n        - key: \"{{{{ images.containers.web.tag }}}}\"\n          operator: Equals\n          value: v2",
        indent(&key_entry(&key), 4)
    );
    let yaml = rules_policy("images", "", &context_rule("check", context, &pre, &verify));
    let (eng, _) = engine(&yaml);
    let web = |image: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"containers": [{"name": "web", "image": image}]}})
    };
    let r = eng.mutate(&request(web(&format!("{a}/app:v1")))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Pass], "{r:?}");
    assert!(!r.blocked);
    // Same digest, other tag: the deny condition on `images` matches (no cached pass leaks).
    let r = eng.mutate(&request(web(&format!("{a}/app:v2")))).await;
    assert_eq!(statuses(&r), vec![RuleStatus::Fail], "{r:?}");
    assert!(
        first_message(&r).contains("retired"),
        "{}",
        first_message(&r)
    );
    assert!(r.blocked);
    // An image of another registry: the precondition on `images` is not met.
    let r = eng.mutate(&request(web("ghcr.io/org/app:v1"))).await;
    assert_eq!(r.results[0].status, RuleStatus::Skip, "{r:?}");
    assert!(!r.blocked);
    // A container named otherwise: `images.containers.web` does not exist, the context entry
    // fails, the rule errors and the request is blocked (never a pass).
    let mut other = web(&format!("{a}/app:v1"));
    other["spec"]["containers"][0]["name"] = json!("api");
    let r = eng.mutate(&request(other)).await;
    assert!(r.blocked, "{r:?}");
    assert_eq!(r.results[0].status, RuleStatus::Error, "{r:?}");
    assert!(
        r.results[0].message.contains("context[0]"),
        "{}",
        r.results[0].message
    );
    // An unnamed container: the `images` variable cannot be built; the error says why.
    let mut unnamed = web(&format!("{a}/app:v1"));
    unnamed["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let r = eng.mutate(&request(unnamed)).await;
    assert!(r.blocked, "{r:?}");
    assert!(
        r.results[0]
            .message
            .contains("the `images` variable is undefined"),
        "{}",
        r.results[0].message
    );
}
