#![allow(clippy::unwrap_used)]
//! Rule `context` entries (compile errors, offline `variable` evaluation in order), substitution of
//! the `verifyImages` body, `validationFailureActionOverrides` and `applyRules`.

use serde_json::{Value, json};
use sigil_policy::attestor::{AttestorKind, PublicKeySource};
use sigil_policy::context::{ContextSource, ImageData, set_entry};
use sigil_policy::model::{ApplyRules, CompiledPolicy, FailureAction};
use sigil_policy::{EvalError, parse_policies};

const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n-----END PUBLIC KEY-----";

fn policy(spec_extra: &str, context: &str, verify_extra: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n{spec_extra}  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n{context}    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n{verify_extra}"
    )
}

fn one(yaml: &str) -> CompiledPolicy {
    parse_policies(yaml).unwrap().policies.remove(0)
}

fn err(yaml: &str) -> String {
    parse_policies(yaml).unwrap_err().to_string()
}

fn request_data(labels: Value) -> Value {
    json!({"request": {"object": {"metadata": {"labels": labels}}, "namespace": "default"}})
}

/// Evaluates every `variable` entry of rule 0 in order, as the engine does.
fn eval_all(p: &CompiledPolicy, mut data: Value) -> Result<Value, EvalError> {
    for e in &p.rules[0].context {
        let v = e.eval_variable(&data)?;
        set_entry(&mut data, &e.name, v);
    }
    Ok(data)
}

#[test]
fn variables_evaluate_in_order_with_jmespath_and_default() {
    let ctx = "    context:\n    - name: team\n      variable:\n        jmesPath: request.object.metadata.labels.team\n        default: platform\n    - name: greeting\n      variable:\n        value: \"hello {{ team }}\"\n    - name: sizes\n      variable:\n        value: [3, 1, 2]\n        jmesPath: max(@)\n    - name: picked\n      variable:\n        value: {platform: one, apps: two}\n        jmesPath: '\"{{ team }}\"'\n";
    let p = one(&policy(
        "",
        ctx,
        "      attestors:\n      - entries:\n        - keys:\n            publicKeys: \"{{ picked }}\"\n",
    ));
    assert_eq!(p.rules[0].context.len(), 4);
    assert!(matches!(
        p.rules[0].context[0].source,
        ContextSource::Variable { .. }
    ));
    let d = eval_all(&p, request_data(json!({}))).unwrap();
    assert_eq!(d["team"], "platform");
    assert_eq!(d["greeting"], "hello platform");
    assert_eq!(d["sizes"], 3.0);
    assert_eq!(d["picked"], "one");
    let d = eval_all(&p, request_data(json!({"team": "apps"}))).unwrap();
    assert_eq!(d["team"], "apps");
    assert_eq!(d["greeting"], "hello apps");
    assert_eq!(d["picked"], "two");
}

#[test]
fn variable_errors_name_the_entry() {
    // No default and the query yields nothing: an error, not null.
    let ctx = "    context:\n    - name: team\n      variable:\n        jmesPath: request.object.metadata.labels.team\n";
    let p = one(&policy("", ctx, ""));
    let e = eval_all(&p, request_data(json!({})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.rules[0].context[0]"), "{e}");
    assert!(e.contains("evaluated to null"), "{e}");
    // A value referring to an unknown variable.
    let ctx = "    context:\n    - name: v\n      variable:\n        value: \"{{ nope }}\"\n";
    let e = eval_all(&one(&policy("", ctx, "")), request_data(json!({})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not resolved") && e.contains("nope"), "{e}");
}

#[test]
fn context_compile_errors() {
    let cases = [
        (
            "    context:\n    - variable:\n        value: 1\n",
            "context[0].name",
        ),
        (
            "    context:\n    - name: request\n      variable:\n        value: 1\n",
            "conflicts with a pre-defined variable",
        ),
        (
            "    context:\n    - name: images.x\n      variable:\n        value: 1\n",
            "pre-defined variable images",
        ),
        ("    context:\n    - name: x\n", "exactly one of variable"),
        (
            "    context:\n    - name: x\n      variable:\n        value: 1\n      imageRegistry:\n        reference: a\n",
            "exactly one of variable",
        ),
        (
            "    context:\n    - name: x\n      variable: {}\n",
            "a value or a jmesPath",
        ),
        (
            "    context:\n    - name: x\n      variable:\n        value: 1\n        default: 2\n",
            "context[0].variable.default",
        ),
        (
            "    context:\n    - name: x\n      variable:\n        jmesPath: 'a[?'\n",
            "context[0].variable.jmesPath",
        ),
        (
            "    context:\n    - name: x\n      variable:\n        value: 1\n        bogus: 2\n",
            "bogus",
        ),
        (
            "    context:\n    - name: x\n      imageRegistry:\n        jmesPath: manifest\n",
            "imageRegistry.reference",
        ),
    ];
    for (ctx, needle) in cases {
        let e = err(&policy("", ctx, ""));
        assert!(e.contains(needle), "{ctx}: {e}");
    }
    // Sources that need the API server compile, and report their path when evaluated.
    for (field, body) in [
        ("configMap", "        name: c\n        namespace: d\n"),
        ("apiCall", "        urlPath: /api/v1/namespaces\n"),
        ("globalReference", "        name: g\n"),
    ] {
        let ctx = format!("    context:\n    - name: x\n      {field}:\n{body}");
        let p = one(&policy("", &ctx, ""));
        let e = p.rules[0].context[0]
            .needs_cluster_error()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("spec.rules[0].context[0].{field}")),
            "{e}"
        );
        assert!(p.rules[0].context[0].eval_variable(&json!({})).is_err());
    }
}

#[test]
fn image_registry_request_and_document() {
    let ctx = "    context:\n    - name: img\n      imageRegistry:\n        reference: \"{{ request.object.image }}\"\n        jmesPath: \"{{ field }}\"\n";
    let p = one(&policy("", ctx, ""));
    let entry = &p.rules[0].context[0];
    let data = json!({"request": {"object": {"image": "ghcr.io/a/b:v1"}}, "field": "configData.config.User"});
    let req = entry.image_registry_request(&data).unwrap();
    assert_eq!(req.reference, "ghcr.io/a/b:v1");
    assert_eq!(req.jmes_path.as_deref(), Some("configData.config.User"));
    let image = ImageData {
        image: "ghcr.io/a/b:v1".into(),
        resolved_image: "ghcr.io/a/b@sha256:00".into(),
        registry: "ghcr.io".into(),
        repository: "a/b".into(),
        identifier: "v1".into(),
        manifest_list: None,
        manifest: json!({"schemaVersion": 2}),
        config_data: json!({"config": {"User": "nobody"}}),
    };
    assert_eq!(entry.finish_image_registry(&req, &image).unwrap(), "nobody");
    let doc = image.to_value();
    for k in [
        "image",
        "resolvedImage",
        "registry",
        "repository",
        "identifier",
        "manifestList",
        "manifest",
        "configData",
    ] {
        assert!(doc.get(k).is_some(), "{k}");
    }
    assert!(doc["manifestList"].is_null());
    // A reference that does not resolve is an error.
    let e = entry
        .image_registry_request(&json!({"request": {}}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec.rules[0].context[0]"), "{e}");
    // Credentials are sigil's, not the policy's: an error naming the field.
    let ctx = "    context:\n    - name: img\n      imageRegistry:\n        reference: ghcr.io/a/b\n        imageRegistryCredentials:\n          secrets: [s]\n";
    let p = one(&policy("", ctx, ""));
    let e = p.rules[0].context[0]
        .image_registry_request(&json!({}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("imageRegistryCredentials"), "{e}");
}

#[test]
fn verify_images_body_is_substituted_but_not_conditions() {
    let verify = "      attestors:\n      - entries:\n        - keys:\n            publicKeys: \"{{ key }}\"\n            rekor:\n              ignoreTlog: true\n      attestations:\n      - type: https://example.com/p\n        conditions:\n        - all:\n          - key: \"{{ predicate.x }}\"\n            operator: Equals\n            value: \"{{ want }}\"\n      validate:\n        deny:\n          conditions:\n            all:\n            - key: \"{{ other }}\"\n              operator: Equals\n              value: 1\n";
    let p = one(&policy("", "", verify));
    let rule = &p.rules[0];
    assert!(rule.needs_substitution(0));
    // The compiled entry keeps a variable source until substituted.
    let AttestorKind::Keys(k) = &rule.verify_images[0].attestors[0].entries[0].kind else {
        panic!("keys");
    };
    assert!(matches!(k.key, PublicKeySource::Variable(_)));
    let (vi, source) = rule
        .substituted_verify_image(0, &json!({ "key": PEM }))
        .unwrap();
    let AttestorKind::Keys(k) = &vi.attestors[0].entries[0].kind else {
        panic!("keys");
    };
    assert!(matches!(k.key, PublicKeySource::Pem { .. }), "{:?}", k.key);
    // Attestation conditions and validate keep their variables for later evaluation.
    assert_eq!(
        source["attestations"][0]["conditions"][0]["all"][0]["value"],
        "{{ want }}"
    );
    assert_eq!(vi.attestations[0].conditions.len(), 1);
    assert!(vi.validate_deny.is_some());
    // Unknown variable: error naming it; a substituted value that is not a key: error with path.
    let e = rule
        .substituted_verify_image(0, &json!({}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not resolved") && e.contains("key"), "{e}");
    let e = rule
        .substituted_verify_image(0, &json!({"key": "not a pem"}))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys"),
        "{e}"
    );
    // Entries without variables are not substituted.
    let plain = one(&policy(
        "",
        "",
        &format!(
            "      attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n{}\n",
            PEM.lines()
                .map(|l| format!("              {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    ));
    assert!(!plain.rules[0].needs_substitution(0));
}

#[test]
fn failure_action_overrides_and_apply_rules() {
    let spec = "  validationFailureAction: Audit\n  applyRules: One\n  validationFailureActionOverrides:\n  - action: Enforce\n    namespaces: [\"prod-*\", kube-system]\n  - action: Audit\n    namespaces: [\"*\"]\n";
    let p = one(&policy(spec, "", ""));
    assert_eq!(p.apply_rules, ApplyRules::One);
    assert_eq!(p.failure_action_for("prod-eu"), FailureAction::Enforce);
    assert_eq!(p.failure_action_for("kube-system"), FailureAction::Enforce);
    assert_eq!(p.failure_action_for("dev"), FailureAction::Audit);
    let vi = &p.rules[0].verify_images[0];
    assert_eq!(p.effective_action(vi, "prod-eu"), FailureAction::Enforce);
    // An entry's own failureAction wins.
    let q = one(&policy(
        spec,
        "",
        "      failureAction: Audit\n      mutateDigest: false\n",
    ));
    assert_eq!(
        q.effective_action(&q.rules[0].verify_images[0], "prod-eu"),
        FailureAction::Audit
    );
    assert_eq!(one(&policy("", "", "")).apply_rules, ApplyRules::All);
    for (spec, needle) in [
        ("  applyRules: Any\n", "spec.applyRules"),
        (
            "  validationFailureActionOverrides:\n  - action: Block\n    namespaces: [a]\n",
            "validationFailureActionOverrides[0].action",
        ),
        (
            "  validationFailureActionOverrides:\n  - action: Enforce\n",
            "validationFailureActionOverrides[0].namespaces",
        ),
        (
            "  validationFailureActionOverrides:\n  - action: Enforce\n    namespaces: [a]\n    namespaceSelector:\n      matchLabels: {a: b}\n",
            "validationFailureActionOverrides[0].namespaceSelector",
        ),
    ] {
        let e = err(&policy(spec, "", ""));
        assert!(e.contains(needle), "{spec}: {e}");
    }
}
