#![allow(clippy::unwrap_used)]
//! Attestor `count` semantics and condition operators.

use serde_json::{Value, json};
use sigil_policy::attestor::{Attestor, AttestorKind};
use sigil_policy::conditions::{
    Operator, apply_operator, evaluate_all, parse_duration, substitute,
};
use sigil_policy::{EntryOutcome, EvalError, evaluate_attestor_sets, parse_policies};

fn sets(attestors: &str) -> Vec<sigil_policy::attestor::AttestorSet> {
    let yaml = format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: p}}
spec:
  rules:
  - name: r
    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
    verifyImages:
    - imageReferences: [\"*\"]
      failureAction: Enforce
      attestors: {attestors}
"
    );
    let mut set = parse_policies(&yaml).unwrap_or_else(|e| panic!("{e}"));
    set.policies
        .remove(0)
        .rules
        .remove(0)
        .verify_images
        .remove(0)
        .attestors
}

fn subject(a: &Attestor) -> String {
    match &a.kind {
        AttestorKind::Keyless(k) => {
            for cand in ["good", "good2", "bad", "bad2", "t"] {
                if k.subject.iter().any(|m| m.matches(cand)) {
                    return cand.to_owned();
                }
            }
            String::new()
        }
        _ => String::new(),
    }
}

fn entry(s: &str) -> String {
    format!("{{keyless: {{subject: {s}, rekor: {{url: https://rekor.sigstore.dev}}}}}}")
}

/// Leaf entries whose subject starts with `good` verify.
fn run(attestors: &str) -> sigil_policy::AttestorEvaluation {
    evaluate_attestor_sets("attestors", &sets(attestors), |_, a| {
        if subject(a).starts_with("good") {
            EntryOutcome::Verified
        } else {
            EntryOutcome::Failed("signature mismatch".into())
        }
    })
}

#[test]
fn count_unset_requires_all() {
    let r = run(&format!(
        "[{{entries: [{}, {}]}}]",
        entry("good"),
        entry("good2")
    ));
    assert!(r.passed);
    assert_eq!(r.trace.len(), 2);
    let r = run(&format!(
        "[{{entries: [{}, {}]}}]",
        entry("good"),
        entry("bad")
    ));
    assert!(!r.passed);
    assert_eq!(r.trace[1].path, "attestors[0].entries[1]");
    assert_eq!(
        r.trace[1].outcome,
        EntryOutcome::Failed("signature mismatch".into())
    );
    assert!(r.failure.unwrap().contains("1 of required 2"));
}

#[test]
fn count_n_requires_at_least_n_and_stops_early() {
    let r = run(&format!(
        "[{{count: 1, entries: [{}, {}]}}]",
        entry("bad"),
        entry("good")
    ));
    assert!(r.passed);
    assert_eq!(r.trace.len(), 2);
    let r = run(&format!(
        "[{{count: 1, entries: [{}, {}]}}]",
        entry("good"),
        entry("bad")
    ));
    assert!(r.passed);
    assert_eq!(
        r.trace.len(),
        1,
        "evaluation stops once the count is reached"
    );
    let r = run(&format!(
        "[{{count: 2, entries: [{}, {}, {}]}}]",
        entry("good"),
        entry("bad"),
        entry("bad2")
    ));
    assert!(!r.passed);
    assert_eq!(r.trace.len(), 3);
}

#[test]
fn nested_sets_count_as_one_entry() {
    let nested_ok = format!(
        "{{attestor: {{count: 1, entries: [{}, {}]}}}}",
        entry("bad"),
        entry("good")
    );
    let nested_bad = format!(
        "{{attestor: {{entries: [{}, {}]}}}}",
        entry("good"),
        entry("bad")
    );
    let r = run(&format!(
        "[{{count: 2, entries: [{}, {nested_ok}, {}]}}]",
        entry("good"),
        entry("bad")
    ));
    assert!(r.passed);
    let paths: Vec<&str> = r.trace.iter().map(|t| t.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "attestors[0].entries[0]",
            "attestors[0].entries[1].attestor.entries[0]",
            "attestors[0].entries[1].attestor.entries[1]",
            "attestors[0].entries[1]",
        ]
    );
    let r = run(&format!(
        "[{{count: 2, entries: [{}, {nested_bad}, {}]}}]",
        entry("good"),
        entry("bad")
    ));
    assert!(!r.passed);
}

#[test]
fn sets_are_anded() {
    let r = run(&format!(
        "[{{entries: [{}]}}, {{entries: [{}]}}]",
        entry("good"),
        entry("bad")
    ));
    assert!(!r.passed);
    assert!(r.failure.unwrap().starts_with("attestors[1]"));
    let r = run(&format!(
        "[{{entries: [{}]}}, {{count: 1, entries: [{}, {}]}}]",
        entry("good"),
        entry("bad"),
        entry("good2")
    ));
    assert!(r.passed);
}

fn op(o: &str, k: Value, v: Value) -> bool {
    apply_operator(Operator::parse(o).unwrap(), &k, &v).unwrap()
}

#[test]
fn equality_operators() {
    assert!(op("Equals", json!("main"), json!("main")));
    assert!(op("Equal", json!("refs/tags/v1.2"), json!("refs/tags/v*")));
    assert!(op("Equals", json!(5), json!("5")));
    assert!(op("Equals", json!(true), json!(true)));
    assert!(op("Equals", json!({"a": [1]}), json!({"a": [1]})));
    assert!(!op("Equals", json!("main"), json!("dev")));
    assert!(op("NotEquals", json!("a"), json!("b")));
    assert!(op("NotEqual", json!(1), json!(2)));
    assert!(!op("NotEquals", json!("abc"), json!("a*")));
}

#[test]
fn set_operators() {
    let allowed = json!(["ana@example.com", "bob@example.com"]);
    assert!(op(
        "AnyIn",
        json!(["ana@example.com", "eve@example.com"]),
        allowed.clone()
    ));
    assert!(!op(
        "AllIn",
        json!(["ana@example.com", "eve@example.com"]),
        allowed.clone()
    ));
    assert!(op("AllIn", json!(["ana@example.com"]), allowed.clone()));
    assert!(op("In", json!("bob@example.com"), allowed.clone()));
    assert!(op("NotIn", json!("eve@example.com"), allowed.clone()));
    assert!(op(
        "AnyNotIn",
        json!(["ana@example.com", "eve@example.com"]),
        allowed.clone()
    ));
    assert!(!op(
        "AllNotIn",
        json!(["ana@example.com", "eve@example.com"]),
        allowed.clone()
    ));
    assert!(op("AllNotIn", json!(["eve@example.com"]), allowed));
    assert!(
        op("AnyIn", json!("x.example.com"), json!(["*.example.com"])),
        "wildcards in the value set"
    );
    assert!(
        op("AnyIn", json!("a"), json!("[\"a\",\"b\"]")),
        "JSON-array string values"
    );
}

#[test]
fn numeric_and_duration_operators() {
    assert!(op("GreaterThan", json!(5), json!(3)));
    assert!(op("GreaterThanOrEquals", json!("3"), json!(3)));
    assert!(op("LessThan", json!("1Gi"), json!("2Gi")));
    assert!(op("LessThan", json!("500m"), json!(1)));
    assert!(op("LessThanOrEquals", json!("1h"), json!("60m")));
    assert!(op("GreaterThan", json!("v1.10.0"), json!("v1.9.3")));
    assert!(op("DurationGreaterThan", json!("2h"), json!("90m")));
    assert!(op("DurationGreaterThanOrEquals", json!("1h"), json!(3600)));
    assert!(op("DurationLessThan", json!("1m30s"), json!("2m")));
    assert!(op("DurationLessThanOrEquals", json!("168h"), json!("168h")));
    assert!(apply_operator(Operator::DurationLessThan, &json!("soon"), &json!("1h")).is_err());
    assert!(apply_operator(Operator::GreaterThan, &json!({}), &json!(1)).is_err());
    assert_eq!(parse_duration("1h2m3.5s"), Some(3723.5));
    assert_eq!(parse_duration("-300ms"), Some(-0.3));
    assert_eq!(parse_duration("5"), None);
    assert!(Operator::parse("Matches").is_none());
}

fn conditions(yaml_conditions: &str) -> Vec<sigil_policy::conditions::AnyAllConditions> {
    let yaml = format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: p}}
spec:
  rules:
  - name: r
    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
    verifyImages:
    - imageReferences: [\"*\"]
      failureAction: Enforce
      attestations:
      - type: https://example.com/CodeReview/v1
        conditions: {yaml_conditions}
"
    );
    let mut set = parse_policies(&yaml).unwrap_or_else(|e| panic!("{e}"));
    set.policies
        .remove(0)
        .rules
        .remove(0)
        .verify_images
        .remove(0)
        .attestations
        .remove(0)
        .conditions
}

#[test]
fn conditions_with_variables() {
    let predicate = json!({
        "repo": {"uri": "https://git-repo.com/org/app", "branch": "main"},
        "reviewers": ["ana@example.com", "eve@example.com"],
        "builder": {"id": "https://github.com/x"},
        "count": 3
    });
    let c = conditions(
        "[{all: [{key: '{{ repo.uri }}', operator: Equals, value: 'https://git-repo.com/org/app'},
                 {key: '{{ repo.branch }}', operator: Equals, value: main},
                 {key: '{{ reviewers }}', operator: AnyIn, value: [ana@example.com, bob@example.com]}]}]",
    );
    let r = evaluate_all(&c, &predicate).unwrap();
    assert!(r.passed, "{:?}", r.failures);

    let c = conditions(
        "[{any: [{key: '{{ repo.branch }}', operator: Equals, value: dev, message: not dev},
                 {key: '{{ count }}', operator: GreaterThan, value: 5, message: too few}]}]",
    );
    let r = evaluate_all(&c, &predicate).unwrap();
    assert!(!r.passed);
    assert_eq!(r.failures, vec!["not dev".to_owned(), "too few".to_owned()]);

    let c = conditions(
        "[{all: [{key: 'branch-{{ repo.branch }}', operator: Equals, value: branch-main}]}, {any: []}]",
    );
    assert!(evaluate_all(&c, &predicate).unwrap().passed);

    // Kyverno custom functions are registered.
    let c = conditions(
        "[{all: [{key: \"{{ regex_match('^https://github.com/.*$','{{ builder.id}}') }}\", operator: Equals, value: true}]}]",
    );
    assert!(evaluate_all(&c, &predicate).unwrap().passed);

    // Unknown functions are an error, never a silent pass.
    let c = conditions(
        "[{all: [{key: \"{{ no_such_function('[0-9a-z]{5}') }}\", operator: Equals, value: abcde}]}]",
    );
    let e = evaluate_all(&c, &predicate).unwrap_err();
    assert!(matches!(e, EvalError::JmesPath { .. }), "{e}");
    // `random` generates a string matching its pattern.
    let c = conditions(
        "[{all: [{key: \"{{ regex_match('^[0-9a-z]{5}$', random('[0-9a-z]{5}')) }}\", operator: Equals, value: true}]}]",
    );
    assert!(evaluate_all(&c, &predicate).unwrap().passed);

    // Standard JMESPath functions work, nested variables resolve innermost-first.
    assert_eq!(
        substitute(&json!("{{ length(reviewers) }}"), &predicate).unwrap(),
        json!(2)
    );
    assert_eq!(
        substitute(
            &json!("{{ starts_with('{{ repo.uri }}', 'https://') }}"),
            &predicate
        )
        .unwrap(),
        json!(true)
    );
    assert_eq!(
        substitute(&json!("{{ missing }}"), &predicate).unwrap(),
        Value::Null
    );
    assert!(substitute(&json!("{{ repo.uri "), &predicate).is_err());
}
