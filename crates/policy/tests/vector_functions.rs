#![allow(clippy::unwrap_used)]
//! The vector policies that call Kyverno JMESPath functions now evaluate.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sigil_policy::conditions::{AnyAllConditions, eval_jmespath, evaluate_all};
use sigil_policy::functions::format_rfc3339;
use sigil_policy::parse_policies;

fn all_conditions(file: &str) -> Vec<Vec<AnyAllConditions>> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(&path).unwrap();
    let set = parse_policies(&yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = Vec::new();
    for p in set.policies {
        for r in p.rules {
            for v in r.verify_images {
                for a in v.attestations {
                    if !a.conditions.is_empty() {
                        out.push(a.conditions);
                    }
                }
            }
        }
    }
    assert!(!out.is_empty(), "{file}: no attestation conditions");
    out
}

fn check(file: &str, predicate: &Value) -> bool {
    let mut passed = true;
    for c in all_conditions(file) {
        let r = evaluate_all(&c, predicate).unwrap_or_else(|e| panic!("{file}: {e}"));
        passed &= r.passed;
    }
    passed
}

#[test]
fn slsa_regex_match_conditions_evaluate() {
    let tag = json!({"builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.4.0"}});
    let main = json!({"builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/heads/main"}});
    let other = json!({"builder": {"id": "https://github.com/evil/generator.yml@refs/heads/main"}});
    assert!(check("verify-image-slsa.yaml", &tag));
    assert!(!check("verify-image-slsa.yaml", &main));
    assert!(!check("verify-image-slsa.yaml", &other));
    let f = "chainsaw-keyless-attestations-multiple-subjects-counts-1.yaml";
    assert!(check(f, &main));
    assert!(!check(f, &other));
}

#[test]
fn vulnerability_scan_time_since_condition_evaluates() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let recent = format_rfc3339(now - 3_600 * 1_000_000_000);
    let fresh = json!({"metadata": {"scanFinishedOn": recent}});
    let stale = json!({"metadata": {"scanFinishedOn": "2020-01-01T00:00:00Z"}});
    assert!(check("require-vulnerability-scan.yaml", &fresh));
    assert!(!check("require-vulnerability-scan.yaml", &stale));
    // A missing timestamp is an evaluation error, never a pass.
    for c in all_conditions("require-vulnerability-scan.yaml") {
        assert!(evaluate_all(&c, &json!({"metadata": {}})).is_err());
    }
}

#[test]
fn image_extractor_trim_prefix_evaluates() {
    let path = format!(
        "{}/tests/data/cli-verify-signature.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let yaml = std::fs::read_to_string(path).unwrap();
    let set = parse_policies(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = 0;
    for p in set.policies {
        for r in p.rules {
            for e in r.image_extractors.values().flatten() {
                if let Some(j) = &e.jmes_path {
                    let v = eval_jmespath(j, &json!("docker://ghcr.io/org/img:v1")).unwrap();
                    assert_eq!(v, json!("ghcr.io/org/img:v1"));
                    seen += 1;
                }
            }
        }
    }
    assert_eq!(seen, 1);
}
