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
    let dv = |url: Value| -> Value {
        serde_json::json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": "dv"}, "spec": {"source": {"registry": {"url": url}}}})
    };
    // Kyverno's trim_prefix(@, 'docker://') turns the URL into the image; the pointer still
    // refers to the untransformed value.
    let imgs = rule
        .extract_images(&dv(Value::from("docker://ghcr.io/x:1")))
        .unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0].image, "ghcr.io/x:1");
    assert_eq!(imgs[0].pointer, "/spec/source/registry/url");
    assert_eq!(imgs[0].source.as_deref(), Some("docker://ghcr.io/x:1"));
    assert_eq!(imgs[0].container_kind, ContainerKind::Custom);
    // A value without the prefix is kept as is.
    let imgs = rule
        .extract_images(&dv(Value::from("ghcr.io/y@sha256:00")))
        .unwrap();
    assert_eq!(imgs[0].image, "ghcr.io/y@sha256:00");
    // Missing, blank or non-string values are no image (as in Kyverno).
    for v in [Value::Null, Value::from("  "), Value::from(5)] {
        assert!(
            rule.extract_images(&dv(v.clone())).unwrap().is_empty(),
            "{v}"
        );
    }
    let no_source: Value = serde_json::json!({"kind": "DataVolume", "spec": {}});
    assert!(rule.extract_images(&no_source).unwrap().is_empty());
    // A non-object where the path needs one is an error naming the rule and extractor.
    let bad: Value = serde_json::json!({"kind": "DataVolume", "spec": {"source": "x"}});
    let e = rule.extract_images(&bad).unwrap_err().to_string();
    assert!(
        e.contains("spec.rules[0].imageExtractors.DataVolume[0]") && e.contains("/spec/source"),
        "{e}"
    );
    // Pods still use built-in extractors.
    let pods = set.policies[0].rules[0]
        .extract_images(&resource("pod.yaml"))
        .unwrap();
    assert_eq!(pods.len(), 4);
    assert!(pods.iter().all(|i| i.source.is_none()));
}

fn extractor_policy(extractors: &str, mutate: &str) -> String {
    format!(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: p}}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {{any: [{{resources: {{kinds: [Task]}}}}]}}
    imageExtractors:
      Task:
{extractors}
    verifyImages:
    - imageReferences: ["*"]
{mutate}
      attestors: [{{entries: [{{keys: {{publicKeys: "k8s://ns/key"}}}}]}}]
"#
    )
}

#[test]
fn custom_extractor_jmespath_results() {
    let rule = |ex: &str| {
        let p = parse_policies(&extractor_policy(ex, "      mutateDigest: false")).unwrap();
        p.policies[0].rules[0].clone()
    };
    let task: Value = serde_json::json!({"kind": "Task", "spec": {"steps": [
        {"name": "a", "ref": "oci://reg.example/a:1"},
        {"name": "b", "ref": "oci://reg.example/b:2"},
        {"name": "a", "ref": "oci://reg.example/a:3"},
        {"name": "c"}
    ]}});
    // `*` over an array, a `value` field, a function chain and a key: images with the same key
    // are one image (the last wins, as in Kyverno's map).
    let r = rule(
        "      - {path: /spec/steps/*, value: ref, key: name, jmesPath: \"to_upper(trim_prefix(@, 'oci://'))\"}",
    );
    let imgs = r.extract_images(&task).unwrap();
    let got: Vec<(&str, &str, Option<&str>)> = imgs
        .iter()
        .map(|i| (i.image.as_str(), i.pointer.as_str(), i.name.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("REG.EXAMPLE/A:3", "/spec/steps/2/ref", Some("a")),
            ("REG.EXAMPLE/B:2", "/spec/steps/1/ref", Some("b")),
        ]
    );
    // A result that is not a string is an error naming the expression and the value.
    let r = rule("      - {path: /spec/steps/*/ref, jmesPath: 'length(@)'}");
    let e = r.extract_images(&task).unwrap_err().to_string();
    assert!(
        e.contains("length(@)")
            && e.contains("must produce a string")
            && e.contains("/spec/steps/0/ref"),
        "{e}"
    );
    let r = rule("      - {path: /spec/steps/*/ref, jmesPath: \"split(@, '/')\"}");
    assert!(r.extract_images(&task).is_err());
    // A function error at evaluation is an error too (never a skipped image).
    let r = rule("      - {path: /spec/steps/*/ref, jmesPath: \"regex_replace_all('(', @, 'x')\"}");
    let e = r.extract_images(&task).unwrap_err().to_string();
    assert!(e.contains("regex"), "{e}");
    // A key field that is not a string is an error.
    let r = rule("      - {path: /spec/steps/*, value: ref, key: missing}");
    assert!(
        r.extract_images(&task)
            .unwrap_err()
            .to_string()
            .contains("`missing`")
    );
    // `*` over a scalar is an error.
    let scalar: Value = serde_json::json!({"kind": "Task", "spec": {"steps": "x"}});
    let r = rule("      - {path: /spec/steps/*/ref}");
    assert!(
        r.extract_images(&scalar)
            .unwrap_err()
            .to_string()
            .contains("`*`")
    );
    // Without jmesPath the value is the image and there is no source.
    let imgs = r.extract_images(&task).unwrap();
    assert_eq!(imgs.len(), 3);
    assert_eq!(imgs[0].image, "oci://reg.example/a:1");
    assert!(imgs[0].source.is_none());
    // As in Kyverno, segments other than `*` select object fields: an index is an error.
    let r = rule("      - {path: /spec/steps/0/ref}");
    let e = r.extract_images(&task).unwrap_err().to_string();
    assert!(
        e.contains("/spec/steps: expected an object, found an array"),
        "{e}"
    );
    // Two extractors for the kind: the images of both.
    let two: Value = serde_json::json!({"kind": "Task", "spec": {
        "main": {"ref": "oci://reg.example/a:1"}, "sidecar": {"ref": "oci://reg.example/b:2"}}});
    let r = rule(
        "      - {path: /spec/main/ref, jmesPath: \"trim_prefix(@, 'oci://')\"}\n      - {path: /spec/sidecar/ref, jmesPath: \"trim_prefix(@, 'oci://')\"}",
    );
    let imgs: Vec<String> = r
        .extract_images(&two)
        .unwrap()
        .into_iter()
        .map(|i| i.image)
        .collect();
    assert_eq!(imgs, ["reg.example/a:1", "reg.example/b:2"]);
}

#[test]
fn custom_extractor_jmespath_is_checked_at_compile_time() {
    let err = |ex: &str, mutate: &str| {
        parse_policies(&extractor_policy(ex, mutate))
            .unwrap_err()
            .to_string()
    };
    let e = err(
        "      - {path: /spec/ref, jmesPath: 'trim_prefix(@, '}",
        "      mutateDigest: false",
    );
    assert!(
        e.contains("spec.rules[0].imageExtractors.Task[0].jmesPath")
            && e.contains("invalid JMESPath"),
        "{e}"
    );
    let e = err(
        "      - {path: /spec/ref, jmesPath: 'no_such_fn(@)'}",
        "      mutateDigest: false",
    );
    assert!(
        e.contains("imageExtractors.Task[0].jmesPath")
            && e.contains("unknown function `no_such_fn`"),
        "{e}"
    );
    // Nested unknown functions are found too.
    let e = err(
        "      - {path: /spec/ref, jmesPath: 'to_upper(nope(@))'}",
        "      mutateDigest: false",
    );
    assert!(e.contains("unknown function `nope`"), "{e}");
    // As Kyverno: no digest mutation in a rule with a jmesPath extractor — explicitly or by the
    // Enforce default.
    for mutate in ["      mutateDigest: true", ""] {
        let e = err(
            "      - {path: /spec/ref, jmesPath: \"trim_prefix(@, 'x')\"}",
            mutate,
        );
        assert!(
            e.contains("spec.rules[0].verifyImages[0].mutateDigest")
                && e.contains("jmespath may not be used in an image extractor")
                && e.contains("imageExtractors.Task[0].jmesPath"),
            "{e}"
        );
    }
    // Without jmesPath, digest mutation is fine.
    assert!(parse_policies(&extractor_policy("      - {path: /spec/ref}", "")).is_ok());
    // A path naming no field.
    let e = err("      - {path: /}", "      mutateDigest: false");
    assert!(e.contains("imageExtractors.Task[0].path"), "{e}");
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
