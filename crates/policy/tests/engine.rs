#![allow(clippy::unwrap_used)]
//! Extraction, match/exclude, autogen and image-reference matching tests.

use serde_json::Value;
use sigil_policy::image::{ContainerKind, ImageInfo, extract_images};
use sigil_policy::matching::Operation;
use sigil_policy::{CompiledPolicy, ImageMatch, parse_policies};

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn resource(name: &str) -> Value {
    yaml_serde::from_str(&data(name)).unwrap()
}

#[test]
fn extracts_pod_images_in_kyverno_order() {
    let imgs = extract_images(&resource("pod.yaml")).unwrap();
    let got: Vec<(&str, &str)> = imgs
        .iter()
        .map(|i| (i.pointer.as_str(), i.image.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/spec/initContainers/0/image", "busybox:1.36"),
            (
                "/spec/containers/0/image",
                "ghcr.io/kyverno/test-verify-image:signed"
            ),
            ("/spec/containers/1/image", "nginx"),
            (
                "/spec/ephemeralContainers/0/image",
                "ghcr.io/kyverno/test-verify-image@sha256:b31bfb4d0213f254d361e0079deaaebefa4f82ba7aa76ef82e90b4935ad5b105"
            ),
        ]
    );
    assert_eq!(imgs[0].container_kind, ContainerKind::InitContainers);
    assert_eq!(imgs[1].name.as_deref(), Some("app"));
}

#[test]
fn extracts_controller_images() {
    let d = extract_images(&resource("deployment.yaml")).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].pointer, "/spec/template/spec/containers/0/image");
    assert_eq!(
        d[0].image,
        "ghcr.io/kyverno/test-verify-image-rollback:signed-1"
    );
    let c = extract_images(&resource("cronjob.yaml")).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].pointer,
        "/spec/jobTemplate/spec/template/spec/containers/0/image"
    );
    assert_eq!(c[0].image, "registry.example.com:5000/team/report:v2");
    let cm: Value =
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    assert!(extract_images(&cm).unwrap().is_empty());
    let bad: Value = serde_json::json!({"kind": "Pod", "spec": {"containers": [{"image": 5}]}});
    assert!(extract_images(&bad).is_err());
}

#[test]
fn custom_image_extractor() {
    let set = parse_policies(&data("cli-verify-signature.yaml")).unwrap();
    let rule = &set.policies[1].rules[0];
    let dv: Value = serde_json::json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": "dv"}, "spec": {"source": {"registry": {"url": "docker://ghcr.io/x:1"}}}});
    // The extractor uses a Kyverno custom JMESPath function: an error, never a silent pass.
    assert!(rule.extract_images(&dv).is_err());
    // Pods still use built-in extractors.
    assert_eq!(
        set.policies[0].rules[0]
            .extract_images(&resource("pod.yaml"))
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn image_normalisation() {
    let n = |s: &str| ImageInfo::parse(s).unwrap().kyverno_string();
    assert_eq!(n("nginx"), "docker.io/nginx:latest");
    assert_eq!(n("library/nginx:1.25"), "docker.io/library/nginx:1.25");
    assert_eq!(n("localhost/app"), "localhost/app:latest");
    assert_eq!(
        n("registry.example.com:5000/team/report:v2"),
        "registry.example.com:5000/team/report:v2"
    );
    assert_eq!(n("ghcr.io/a/b:v1@sha256:abc"), "ghcr.io/a/b@sha256:abc");
    assert!(ImageInfo::parse("").is_err());
    assert!(ImageInfo::parse("a b").is_err());
}

fn one(yaml: &str) -> CompiledPolicy {
    parse_policies(yaml).unwrap().policies.remove(0)
}

#[test]
fn image_references_and_skip() {
    let p = one(&data("chainsaw-skip-image-reference.yaml"));
    let vi = &p.rules[0].verify_images[0];
    assert_eq!(
        vi.match_image("ghcr.io/kyverno/kyverno:latest").unwrap(),
        ImageMatch::Skip
    );
    assert_eq!(
        vi.match_image("ghcr.io/other/app:1").unwrap(),
        ImageMatch::Verify
    );
    assert_eq!(vi.match_image("nginx").unwrap(), ImageMatch::NoMatch);

    let p = one(&data("chainsaw-keyed-basic.yaml"));
    let vi = &p.rules[0].verify_images[0];
    assert_eq!(
        vi.match_image("ghcr.io/kyverno/test-verify-image:signed")
            .unwrap(),
        ImageMatch::Verify
    );
    // Digest-pinned references are matched in Kyverno's digest form (tag dropped).
    assert_eq!(
        vi.match_image("ghcr.io/kyverno/test-verify-image:signed@sha256:b31b")
            .unwrap(),
        ImageMatch::NoMatch
    );
    // `docker.io` normalisation: a pattern must name the registry.
    let p = one(&policy("[\"docker.io/library/*\"]", "kinds: [Pod]", ""));
    let vi = &p.rules[0].verify_images[0];
    assert_eq!(vi.match_image("library/nginx").unwrap(), ImageMatch::Verify);
    assert_eq!(vi.match_image("nginx").unwrap(), ImageMatch::NoMatch);
}

fn policy(refs: &str, resources: &str, extra: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
{extra}spec:
  rules:
  - name: r
    match:
      any:
      - resources:
          {resources}
    verifyImages:
    - imageReferences: {refs}
      failureAction: Enforce
      attestors:
      - entries:
        - keyless: {{subject: a, rekor: {{url: https://rekor.sigstore.dev}}}}
"
    )
}

fn applies(p: &CompiledPolicy, r: &Value, ns: &str, op: Operation) -> bool {
    p.rules[0].applies_to(p, r, ns, op)
}

#[test]
fn match_kinds_namespaces_names_operations() {
    let pod = resource("pod.yaml");
    let p = one(&policy(
        "[\"*\"]",
        "kinds: [Pod]\n          namespaces: [\"pr*\"]\n          operations: [CREATE]",
        "",
    ));
    assert!(applies(&p, &pod, "prod", Operation::Create));
    assert!(!applies(&p, &pod, "dev", Operation::Create));
    assert!(!applies(&p, &pod, "prod", Operation::Update));

    let p = one(&policy(
        "[\"*\"]",
        "kinds: [v1/Pod]\n          names: [\"we?\"]",
        "",
    ));
    assert!(applies(&p, &pod, "prod", Operation::Create));
    let p = one(&policy("[\"*\"]", "kinds: [\"apps/v1/Deployment\"]", ""));
    assert!(applies(
        &p,
        &resource("deployment.yaml"),
        "verify-images",
        Operation::Create
    ));
    assert!(!applies(&p, &pod, "prod", Operation::Create));
    let p = one(&policy("[\"*\"]", "kinds: [\"batch/*/CronJob\"]", ""));
    assert!(applies(
        &p,
        &resource("cronjob.yaml"),
        "batch",
        Operation::Create
    ));
    let p = one(&policy("[\"*\"]", "kinds: [\"Pod/status\"]", ""));
    assert!(
        !applies(&p, &pod, "prod", Operation::Create),
        "subresource selector does not match the main resource"
    );
}

#[test]
fn match_selectors() {
    let pod = resource("pod.yaml");
    let p = one(&policy(
        "[\"*\"]",
        "kinds: [Pod]\n          selector: {matchLabels: {app: \"w*\"}}",
        "",
    ));
    assert!(applies(&p, &pod, "prod", Operation::Create));
    let sel = |expr: &str| {
        one(&policy(
            "[\"*\"]",
            &format!("kinds: [Pod]\n          selector: {{matchExpressions: [{expr}]}}"),
            "",
        ))
    };
    assert!(applies(
        &sel("{key: tier, operator: In, values: [frontend, backend]}"),
        &pod,
        "p",
        Operation::Create
    ));
    assert!(!applies(
        &sel("{key: tier, operator: NotIn, values: [frontend]}"),
        &pod,
        "p",
        Operation::Create
    ));
    assert!(applies(
        &sel("{key: app, operator: Exists}"),
        &pod,
        "p",
        Operation::Create
    ));
    assert!(!applies(
        &sel("{key: app, operator: DoesNotExist}"),
        &pod,
        "p",
        Operation::Create
    ));
    assert!(applies(
        &sel("{key: other, operator: NotIn, values: [x]}"),
        &pod,
        "p",
        Operation::Create
    ));
}

#[test]
fn match_all_and_exclude() {
    let pod = resource("pod.yaml");
    let yaml = policy("[\"*\"]", "kinds: [Pod]", "").replace(
        "    verifyImages:",
        "    exclude:\n      any:\n      - resources:\n          namespaces: [kube-system, \"prod\"]\n    verifyImages:",
    );
    let p = one(&yaml);
    assert!(!applies(&p, &pod, "prod", Operation::Create));
    assert!(applies(&p, &pod, "dev", Operation::Create));

    let yaml = policy("[\"*\"]", "kinds: [Pod]", "").replace(
        "    match:\n      any:",
        "    match:\n      all:\n      - resources: {kinds: [Pod], namespaces: [dev]}\n      - resources: {kinds: [Pod], operations: [UPDATE]}\n      any:",
    );
    let p = one(&yaml);
    assert!(applies(&p, &pod, "dev", Operation::Update));
    assert!(!applies(&p, &pod, "dev", Operation::Create));
    assert!(!applies(&p, &pod, "prod", Operation::Update));

    let yaml = policy("[\"*\"]", "kinds: [Pod]", "").replace(
        "    verifyImages:",
        "    exclude:\n      all:\n      - resources: {namespaces: [prod]}\n      - resources: {operations: [DELETE]}\n    verifyImages:",
    );
    let p = one(&yaml);
    assert!(
        applies(&p, &pod, "prod", Operation::Create),
        "exclude.all needs every filter"
    );
    assert!(!applies(&p, &pod, "prod", Operation::Delete));
}

#[test]
fn autogen_controllers() {
    let deploy = resource("deployment.yaml");
    let cron = resource("cronjob.yaml");
    let p = one(&policy("[\"*\"]", "kinds: [Pod]", ""));
    assert!(applies(&p, &deploy, "verify-images", Operation::Create));
    assert!(applies(&p, &cron, "batch", Operation::Create));

    let none = "  annotations:\n    pod-policies.kyverno.io/autogen-controllers: none\n";
    let p = one(&policy("[\"*\"]", "kinds: [Pod]", none));
    assert!(!applies(&p, &deploy, "verify-images", Operation::Create));
    assert!(applies(
        &p,
        &resource("pod.yaml"),
        "prod",
        Operation::Create
    ));

    let only =
        "  annotations:\n    pod-policies.kyverno.io/autogen-controllers: Deployment,StatefulSet\n";
    let p = one(&policy("[\"*\"]", "kinds: [Pod]", only));
    assert!(applies(&p, &deploy, "verify-images", Operation::Create));
    assert!(!applies(&p, &cron, "batch", Operation::Create));

    // Autogen keeps namespace constraints.
    let p = one(&policy(
        "[\"*\"]",
        "kinds: [Pod]\n          namespaces: [prod]",
        "",
    ));
    assert!(!applies(&p, &deploy, "verify-images", Operation::Create));
    assert!(applies(&p, &deploy, "prod", Operation::Create));

    // No autogen when the rule uses a selector or names.
    let p = one(&policy(
        "[\"*\"]",
        "kinds: [Pod]\n          selector: {matchLabels: {app: nginx}}",
        "",
    ));
    assert!(!p.rules[0].autogen_eligible);
    assert!(!applies(&p, &deploy, "verify-images", Operation::Create));
}
