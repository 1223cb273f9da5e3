#![allow(clippy::unwrap_used)]
//! Kyverno's `images` context variable: its shape for Pods and pod controllers (built-in
//! extractors), for custom `imageExtractors` (group `name`, `key`), and errors for images it
//! cannot describe.

use serde_json::{Value, json};
use sigil_policy::conditions::substitute_strict;
use sigil_policy::image::ImageInfo;
use sigil_policy::{CompiledPolicy, EvalError, parse_policies};

fn one(yaml: &str) -> CompiledPolicy {
    parse_policies(yaml).unwrap().policies.remove(0)
}

/// A policy with one Pod rule and `extra` (YAML at the rule's indentation, may be empty).
fn policy(extra: &str) -> CompiledPolicy {
    one(&format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod, Deployment, Task]\n{extra}    verifyImages:\n    - imageReferences: [\"*\"]\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: \"{{{{ key }}}}\"\n"
    ))
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "init", "image": "ghcr.io/org/tools/init:1.0"}],
            "containers": [
                {"name": "web", "image": "nginx"},
                {"name": "side", "image": "localhost:5000/team/side@sha256:0000000000000000000000000000000000000000000000000000000000000001"},
            ],
        }
    })
}

#[test]
fn entry_fields_follow_kyverno_image_info() {
    assert_eq!(
        ImageInfo::variable_entry("nginx", "/spec/containers/0/image").unwrap(),
        json!({
            "registry": "docker.io", "name": "nginx", "path": "library/nginx", "tag": "latest",
            "reference": "docker.io/library/nginx:latest",
            "referenceWithTag": "docker.io/nginx:latest",
            "jsonPointer": "/spec/containers/0/image",
        })
    );
    let d = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let e = ImageInfo::variable_entry(&format!("ghcr.io/org/app:v2@{d}"), "/x").unwrap();
    assert_eq!(e["registry"], "ghcr.io");
    assert_eq!(e["name"], "app");
    assert_eq!(e["path"], "org/app");
    assert_eq!(e["tag"], "v2");
    assert_eq!(e["digest"], d);
    assert_eq!(e["reference"], format!("ghcr.io/org/app@{d}"));
    assert_eq!(e["referenceWithTag"], "ghcr.io/org/app:v2");
    // A digest alone: no tag field (Kyverno's omitempty).
    let e = ImageInfo::variable_entry(&format!("ghcr.io/org/app@{d}"), "/x").unwrap();
    assert!(e.get("tag").is_none(), "{e}");
    assert!(ImageInfo::variable_entry("bad image", "/x").is_err());
}

#[test]
fn pod_images_by_container_list_and_name() {
    let p = policy("");
    let images = p.rules[0].images_variable(&pod()).unwrap().unwrap();
    assert_eq!(
        images["containers"]["web"]["reference"],
        "docker.io/library/nginx:latest"
    );
    assert_eq!(images["containers"]["side"]["registry"], "localhost:5000");
    assert_eq!(
        images["containers"]["side"]["jsonPointer"],
        "/spec/containers/1/image"
    );
    assert_eq!(images["initContainers"]["init"]["path"], "org/tools/init");
    assert_eq!(images["initContainers"]["init"]["tag"], "1.0");
    // No ephemeral containers: no group (a reference to it does not resolve).
    assert!(images.get("ephemeralContainers").is_none());
    let data = json!({ "images": images });
    assert_eq!(
        substitute_strict(
            &json!("{{ images.containers.web.name }}:{{ images.initContainers.init.registry }}"),
            &data
        )
        .unwrap(),
        json!("nginx:ghcr.io")
    );
    let e = substitute_strict(&json!("{{ images.ephemeralContainers.debug.name }}"), &data)
        .unwrap_err();
    assert!(matches!(e, EvalError::UnresolvedVariable(_)), "{e:?}");

    // A pod controller: the template's containers.
    let deploy = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "ghcr.io/org/app:1"}]}}}});
    let images = p.rules[0].images_variable(&deploy).unwrap().unwrap();
    assert_eq!(
        images["containers"]["app"]["jsonPointer"],
        "/spec/template/spec/containers/0/image"
    );
    // No images at all: no variable.
    let empty = json!({"kind": "Pod", "spec": {"containers": []}});
    assert_eq!(p.rules[0].images_variable(&empty).unwrap(), None);
}

#[test]
fn unnamed_containers_and_bad_images_are_errors() {
    let p = policy("");
    let unnamed = json!({"kind": "Pod", "spec": {"containers": [{"image": "nginx"}]}});
    let e = p.rules[0]
        .images_variable(&unnamed)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/spec/containers/0") && e.contains("name"),
        "{e}"
    );
    let bad =
        json!({"kind": "Pod", "spec": {"containers": [{"name": "x", "image": "Not An Image"}]}});
    let e = p.rules[0].images_variable(&bad).unwrap_err().to_string();
    assert!(e.contains("Not An Image"), "{e}");
}

#[test]
fn custom_extractors_name_groups_and_keys() {
    let p = policy(
        "    imageExtractors:\n      Task:\n      - path: /spec/steps/*/image\n        name: steps\n        key: name\n      - path: /spec/sidecar/ref\n",
    );
    let task = json!({"kind": "Task", "spec": {
        "steps": [{"name": "build", "image": "ghcr.io/org/builder:2"}, {"name": "test", "image": "alpine:3"}],
        "sidecar": {"ref": "quay.io/x/y:z"},
    }});
    let images = p.rules[0].images_variable(&task).unwrap().unwrap();
    assert_eq!(
        images["steps"]["build"]["reference"],
        "ghcr.io/org/builder:2"
    );
    assert_eq!(images["steps"]["test"]["path"], "library/alpine");
    assert_eq!(
        images["steps"]["test"]["jsonPointer"],
        "/spec/steps/1/image"
    );
    // Without `name` the group is `custom`; without `key` the image's pointer is its key.
    assert_eq!(images["custom"]["/spec/sidecar/ref"]["registry"], "quay.io");
    assert!(images.get("containers").is_none());
    // Pods keep the built-in extractors.
    let images = p.rules[0].images_variable(&pod()).unwrap().unwrap();
    assert!(images["containers"]["web"].is_object());
}
