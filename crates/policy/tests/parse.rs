#![allow(clippy::unwrap_used)]
//! Parsing and compilation tests over the Kyverno vectors and malformed inputs.

use sigil_policy::attestor::{AttestorKind, PublicKeySource};
use sigil_policy::model::{FailureAction, VerificationType};
use sigil_policy::{PolicyError, parse_policies};

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

const VECTORS: &[&str] = &[
    "chainsaw-keyed-basic.yaml",
    "chainsaw-keyed-oci11.yaml",
    "chainsaw-keyed-secret.yaml",
    "chainsaw-keyed-tsa.yaml",
    "chainsaw-keyless-attestations-multiple-subjects-counts-1.yaml",
    "chainsaw-keyless-image-invalid-attestor.yaml",
    "chainsaw-keyless-mutatedigest-verifydigest-required.yaml",
    "chainsaw-keyless-nomutatedigest-noverifydigest-required.yaml",
    "chainsaw-multiple-attestors.yaml",
    "chainsaw-multiple-image-verification-attestations-fail.yaml",
    "chainsaw-multiple-image-verification-attestations-pass.yaml",
    "chainsaw-notary-image-verification.yaml",
    "chainsaw-rollback-image-verification.yaml",
    "chainsaw-sigstore-image-verification-test.yaml",
    "chainsaw-skip-image-reference.yaml",
    "cli-verify-signature.yaml",
    "require-vulnerability-scan.yaml",
    "verify-image-slsa.yaml",
    "verify-sbom-cyclonedx.yaml",
];

#[test]
fn every_vector_policy_parses() {
    for v in VECTORS {
        let set = parse_policies(&data(v)).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert!(!set.policies.is_empty(), "{v}: no policies");
        for p in &set.policies {
            assert!(!p.rules.is_empty());
            for r in &p.rules {
                assert!(!r.verify_images.is_empty());
            }
        }
    }
}

#[test]
fn vector_details() {
    let set = parse_policies(&data("chainsaw-notary-image-verification.yaml")).unwrap();
    assert_eq!(set.skipped.len(), 2, "Namespace and ConfigMap are skipped");
    let vi = &set.policies[0].rules[0].verify_images[0];
    assert_eq!(vi.type_, VerificationType::Notary);
    assert!(
        vi.ensure_supported().is_ok(),
        "Notary is implemented (by sigil-engine through sigil-notary)"
    );
    assert!(matches!(
        vi.attestors[0].entries[0].kind,
        AttestorKind::Certificates(_)
    ));

    let set = parse_policies(&data("chainsaw-keyed-basic.yaml")).unwrap();
    let vi = &set.policies[0].rules[0].verify_images[0];
    assert_eq!(vi.effective_failure_action, FailureAction::Enforce);
    assert!(vi.mutate_digest && vi.verify_digest && vi.required && vi.use_cache);
    let AttestorKind::Keys(k) = &vi.attestors[0].entries[0].kind else {
        panic!()
    };
    assert!(k.rekor.ignore_tlog);
    assert!(matches!(k.key, PublicKeySource::Pem { ref der, .. } if der.len() == 91));

    let set = parse_policies(&data("chainsaw-keyed-secret.yaml")).unwrap();
    let AttestorKind::Keys(k) =
        &set.policies[0].rules[0].verify_images[0].attestors[0].entries[0].kind
    else {
        panic!()
    };
    assert_eq!(
        k.key,
        PublicKeySource::K8sSecret {
            namespace: "test-verify-images".into(),
            name: "testsecret".into()
        }
    );

    let set = parse_policies(&data("require-vulnerability-scan.yaml")).unwrap();
    let vi = &set.policies[0].rules[0].verify_images[0];
    assert_eq!(vi.effective_failure_action, FailureAction::Audit);
    assert!(
        !vi.mutate_digest,
        "unset mutateDigest resolves to false under Audit"
    );
    assert_eq!(
        vi.attestations[0].type_,
        "cosign.sigstore.dev/attestation/vuln/v1"
    );

    let set = parse_policies(&data(
        "chainsaw-multiple-image-verification-attestations-pass.yaml",
    ))
    .unwrap();
    let vi = &set.policies[0].rules[0].verify_images[0];
    assert_eq!(vi.attestations.len(), 2);
    assert_eq!(vi.attestations[0].name.as_deref(), Some("sbom"));
    assert_eq!(vi.validate_deny.as_ref().unwrap().any.len(), 2);

    let set = parse_policies(&data("cli-verify-signature.yaml")).unwrap();
    assert_eq!(set.policies.len(), 2);
    assert!(
        set.policies[1].rules[0]
            .image_extractors
            .contains_key("DataVolume")
    );
}

fn k1() -> String {
    data("chainsaw-keyed-basic.yaml")
        .lines()
        .skip_while(|l| !l.contains("BEGIN PUBLIC KEY"))
        .take(4)
        .map(|l| format!("              {}\n", l.trim()))
        .collect()
}

fn policy_with_entry(entry: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
spec:
  rules:
  - name: r
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: [\"ghcr.io/*\"]
      failureAction: Enforce
      attestors:
      - {entry}
"
    )
}

#[test]
fn multi_key_public_keys_are_split() {
    let key = k1();
    let entry = format!(
        "count: 1\n        entries:\n        - keys:\n            publicKeys: |\n{key}{key}"
    );
    let set = parse_policies(&policy_with_entry(&entry)).unwrap();
    let vi = &set.policies[0].rules[0].verify_images[0];
    assert_eq!(vi.attestors[0].entries.len(), 2);
    assert_eq!(vi.attestors[0].required_count(), 1);
}

fn err_of(yaml: &str) -> PolicyError {
    parse_policies(yaml).unwrap_err()
}

#[test]
fn unknown_field_reports_path() {
    let e = err_of(&data("malformed-unknown-field.yaml"));
    assert_eq!(
        e.path(),
        Some("spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.foo"),
        "{e}"
    );
    assert!(e.to_string().contains("unknown field"), "{e}");
}

#[test]
fn malformed_inputs() {
    let cases: &[(&str, &str)] = &[
        (
            "entries:\n        - keyless:\n            subjectRegExp: '(unclosed'\n            rekor: {url: https://rekor.sigstore.dev}",
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.subjectRegExp",
        ),
        (
            "count: 3\n        entries:\n        - keyless: {subject: a, rekor: {url: https://r}}",
            "spec.rules[0].verifyImages[0].attestors[0].count",
        ),
        (
            "entries:\n        - keyless: {subject: a}",
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless",
        ),
        (
            "entries:\n        - keyless: {subject: a, rekor: {url: https://r}, additionalExtensions: {bogus: x}}",
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.additionalExtensions.bogus",
        ),
        (
            "entries:\n        - keys: {publicKeys: 'not a pem'}",
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys",
        ),
        (
            "entries:\n        - keys: {publicKeys: x, signatureAlgorithm: sha1}",
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys",
        ),
        (
            "entries: []",
            "spec.rules[0].verifyImages[0].attestors[0].entries",
        ),
        (
            "entries:\n        - {}",
            "spec.rules[0].verifyImages[0].attestors[0].entries[0]",
        ),
        (
            "entries:\n        - keyless: {subject: a, rekor: {url: https://r}}\n          certificates: {cert: x}",
            "spec.rules[0].verifyImages[0].attestors[0].entries[0]",
        ),
    ];
    for (entry, path) in cases {
        let e = err_of(&policy_with_entry(entry));
        assert_eq!(e.path(), Some(*path), "{entry}: {e}");
    }
}

#[test]
fn malformed_yaml_and_unsupported_fields() {
    assert!(matches!(
        err_of("apiVersion: kyverno.io/v1\nkind: [unclosed"),
        PolicyError::Yaml { .. }
    ));

    let base =
        policy_with_entry("entries:\n        - keyless: {subject: a, rekor: {url: https://r}}");
    let e = err_of(&base.replace("failureAction: Enforce", "failureAction: Block"));
    assert_eq!(
        e.path(),
        Some("spec.rules[0].verifyImages[0].failureAction")
    );
    let e = err_of(&base.replace(
        "failureAction: Enforce",
        "failureAction: Audit\n      mutateDigest: true",
    ));
    assert_eq!(e.path(), Some("spec.rules[0].verifyImages[0].mutateDigest"));
    let e = err_of(&base.replace("failureAction: Enforce", "type: Foo"));
    assert_eq!(e.path(), Some("spec.rules[0].verifyImages[0].type"));
    let e = err_of(&base.replace(
        "    verifyImages:",
        "    validate: {message: x}\n    verifyImages:",
    ));
    assert_eq!(e.path(), Some("spec.rules[0].validate"));
    let e = err_of(&base.replace(
        "          kinds: [Pod]",
        "          kinds: [Pod]\n        subjects: [{kind: User, name: x}]",
    ));
    assert_eq!(e.path(), Some("spec.rules[0].match.any[0].subjects"));
    let e = err_of(&base.replace(
        "          kinds: [Pod]",
        "          kinds: [Pod]\n          operations: [PATCH]",
    ));
    assert_eq!(
        e.path(),
        Some("spec.rules[0].match.any[0].resources.operations[0]")
    );
    let e = err_of(&base.replace("spec:\n", "spec:\n  bogus: 1\n"));
    assert_eq!(e.path(), Some("spec.bogus"), "{e}");
    let e = err_of(&base.replace(
        "imageReferences: [\"ghcr.io/*\"]",
        "imageReferences: [\"{{ x }}\"]",
    ));
    assert_eq!(
        e.path(),
        Some("spec.rules[0].verifyImages[0].imageReferences[0]")
    );
    let e = err_of(&base.replace("kyverno.io/v1", "kyverno.io/v9"));
    assert_eq!(e.path(), Some("apiVersion"));
}

#[test]
fn attestation_condition_errors() {
    let att = |cond: &str| {
        format!(
            "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
spec:
  rules:
  - name: r
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: [\"*\"]
      failureAction: Enforce
      attestations:
      - type: https://slsa.dev/provenance/v0.2
        conditions:
        - all:
          - {cond}
"
        )
    };
    let ok = parse_policies(&att(
        "{key: '{{ builder.id }}', operator: Equals, value: x}",
    ))
    .unwrap();
    let a = &ok.policies[0].rules[0].verify_images[0].attestations[0];
    assert_eq!(a.attestors.len(), 1, "empty attestors get one empty entry");
    assert!(matches!(
        a.attestors[0].entries[0].kind,
        AttestorKind::Empty
    ));

    let e = err_of(&att("{key: a, operator: Matches, value: x}"));
    assert_eq!(
        e.path(),
        Some("spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0].operator")
    );
    let e = err_of(&att("{key: '{{ a[ }}', operator: Equals, value: x}"));
    assert_eq!(
        e.path(),
        Some("spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0].key")
    );
    let e = err_of(&att("{key: a, operator: Equals, value: x, extra: 1}"));
    assert_eq!(
        e.path(),
        Some("spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0].extra"),
        "{e}"
    );
}

fn deprecated_policy(fields: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
spec:
  rules:
  - name: r
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
{fields}"
    )
}

#[test]
fn deprecated_fields_become_an_attestor_set() {
    // `image` + `key` (Kyverno's Convert): one set with one keys entry.
    let key = k1().replace("              ", "        ");
    let yaml = deprecated_policy(&format!(
        "    - image: \"ghcr.io/kyverno/*\"\n      mutateDigest: false\n      annotations:\n        env: prod\n      key: |\n{key}"
    ));
    let set = parse_policies(&yaml).unwrap();
    let vi = &set.policies[0].rules[0].verify_images[0];
    assert_eq!(
        vi.match_image("ghcr.io/kyverno/x:1").unwrap(),
        sigil_policy::ImageMatch::Verify
    );
    assert_eq!(vi.attestors.len(), 1);
    let entry = &vi.attestors[0].entries[0];
    assert!(matches!(
        &entry.kind,
        AttestorKind::Keys(k) if matches!(k.key, PublicKeySource::Pem { .. })
    ));
    assert_eq!(
        entry.annotations.get("env").map(String::as_str),
        Some("prod")
    );

    // `issuer` + `subject` + `roots`-less keyless needs a Rekor URL, as Kyverno validates the
    // converted attestor.
    let yaml = deprecated_policy(
        "    - imageReferences: [\"*\"]\n      mutateDigest: false\n      issuer: https://token.actions.githubusercontent.com\n      subject: https://github.com/org/*\n",
    );
    let e = parse_policies(&yaml).unwrap_err().to_string();
    assert!(
        e.contains("verifyImages[0].issuer")
            && e.contains("Either Rekor URL or roots are required"),
        "{e}"
    );
    let yaml = deprecated_policy(
        "    - imageReferences: [\"*\"]\n      mutateDigest: false\n      issuer: https://token.actions.githubusercontent.com\n      subject: https://github.com/org/*\n      roots: |\n        -----BEGIN CERTIFICATE-----\n        MIIB\n        -----END CERTIFICATE-----\n      additionalExtensions:\n        githubWorkflowRepository: org/app\n",
    );
    let set = parse_policies(&yaml).unwrap();
    let vi = &set.policies[0].rules[0].verify_images[0];
    let AttestorKind::Keyless(k) = &vi.attestors[0].entries[0].kind else {
        panic!("{:?}", vi.attestors)
    };
    assert_eq!(k.issuer.len(), 1);
    assert_eq!(k.subject.len(), 1);
    assert!(k.roots.as_deref().unwrap().contains("BEGIN CERTIFICATE"));
    // Kyverno drops deprecated additionalExtensions; sigil keeps the constraint.
    assert_eq!(
        k.additional_extensions
            .get("githubWorkflowRepository")
            .map(String::as_str),
        Some("org/app")
    );

    // With attestations, the set goes to every attestation (replacing "no attestor").
    let yaml = deprecated_policy(&format!(
        "    - imageReferences: [\"*\"]\n      mutateDigest: false\n      attestations:\n      - type: https://slsa.dev/provenance/v0.2\n      - type: https://cyclonedx.org/bom\n      key: |\n{key}"
    ));
    let set = parse_policies(&yaml).unwrap();
    let vi = &set.policies[0].rules[0].verify_images[0];
    assert!(vi.attestors.is_empty());
    for a in &vi.attestations {
        assert_eq!(a.attestors.len(), 1, "{a:?}");
        assert!(matches!(
            a.attestors[0].entries[0].kind,
            AttestorKind::Keys(_)
        ));
    }
}

#[test]
fn deprecated_fields_never_drop_a_constraint() {
    let key = k1().replace("              ", "        ");
    for (fields, needle) in [
        (
            "      subject: https://github.com/org/*\n".to_owned(),
            "verifyImages[0].subject",
        ),
        (
            "      annotations: {env: prod}\n".to_owned(),
            "verifyImages[0].annotations",
        ),
        ("      roots: x\n".to_owned(), "verifyImages[0].roots"),
        (
            format!("      issuer: https://x\n      key: |\n{key}"),
            "verifyImages[0].issuer",
        ),
        (
            format!("      subject: a\n      key: |\n{key}"),
            "verifyImages[0].subject",
        ),
        (
            "      annotations: [1]\n      key: x\n".to_owned(),
            "verifyImages[0].annotations",
        ),
        (
            "      key: not-a-pem\n".to_owned(),
            "verifyImages[0].key.entries[0].keys.publicKeys",
        ),
    ] {
        let yaml = deprecated_policy(&format!(
            "    - imageReferences: [\"*\"]\n      mutateDigest: false\n{fields}"
        ));
        let e = parse_policies(&yaml).unwrap_err();
        assert!(e.to_string().contains(needle), "{fields}: {e}");
    }
    // Notary takes neither.
    let yaml = deprecated_policy(&format!(
        "    - imageReferences: [\"*\"]\n      type: Notary\n      mutateDigest: false\n      key: |\n{key}"
    ));
    let e = parse_policies(&yaml).unwrap_err().to_string();
    assert!(
        e.contains("Keys field is not allowed for type notary"),
        "{e}"
    );
}
