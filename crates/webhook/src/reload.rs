//! Policy files on disk: a fingerprint of their contents (polled every second to notice edits,
//! including Kubernetes ConfigMap updates, which swap a symlink), and the quick "does any policy
//! look at this kind?" filter rebuilt with every load.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use sigil_engine::LoadedPolicy;
use sigil_policy::image::TEMPLATE_CONTROLLERS;
use sigil_policy::matching::KindSelector;
use sigil_policy::model::FailurePolicy;

/// SHA-256 over the policy files `paths` name (directories: their `*.yaml`/`*.yml`/`*.json` files,
/// as the engine reads them), with names; unreadable entries contribute their error, so a change in
/// readability is a change too.
pub fn fingerprint(paths: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for path in paths {
        h.update(path.as_os_str().as_encoded_bytes());
        h.update([0]);
        if path.is_dir() {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_policy_file(p))
                    .collect(),
                Err(e) => {
                    h.update(format!("dir error {e}").as_bytes());
                    Vec::new()
                }
            };
            files.sort();
            for f in files {
                hash_file(&mut h, &f);
            }
        } else {
            hash_file(&mut h, path);
        }
    }
    h.finalize().into()
}

fn is_policy_file(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    p.is_file() && matches!(ext, "yaml" | "yml" | "json")
}

fn hash_file(h: &mut Sha256, f: &Path) {
    h.update(f.as_os_str().as_encoded_bytes());
    match std::fs::read(f) {
        Ok(b) => {
            h.update((b.len() as u64).to_le_bytes());
            h.update(&b);
        }
        Err(e) => h.update(format!("read error {e}").as_bytes()),
    }
}

/// The kinds some `verifyImages` rule may apply to (a superset: `match` filters' kinds, and the
/// controllers autogen adds). A request whose kind is outside it is admitted without a review.
#[derive(Debug, Clone, Default)]
pub struct KindFilter {
    any: bool,
    kinds: Vec<KindSelector>,
}

impl KindFilter {
    /// From the loaded policies.
    pub fn new(policies: &[LoadedPolicy]) -> Self {
        let mut f = Self::default();
        for p in policies {
            for rule in &p.policy.rules {
                if rule.verify_images.is_empty() {
                    continue;
                }
                let filters = rule.match_block.any.iter().chain(&rule.match_block.all);
                for d in filters {
                    if d.kinds.is_empty() {
                        f.any = true;
                    }
                    f.kinds.extend(d.kinds.iter().cloned());
                }
                if rule.autogen_eligible {
                    for k in TEMPLATE_CONTROLLERS.iter().copied().chain(["CronJob"]) {
                        if p.policy.autogen.covers(k) {
                            f.kinds.push(KindSelector::parse(k));
                        }
                    }
                }
            }
        }
        f
    }

    /// Whether a resource of this group/version/kind may be matched by some rule.
    pub fn may_match(&self, group: &str, version: &str, kind: &str) -> bool {
        self.any || self.kinds.iter().any(|k| k.matches(group, version, kind))
    }
}

/// Whether some policy says `failurePolicy: Fail` (Kyverno's default): then a review that could not
/// finish denies.
pub fn any_fail_closed(policies: &[LoadedPolicy]) -> bool {
    policies
        .iter()
        .any(|p| p.policy.failure_policy == FailurePolicy::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check
spec:
  rules:
    - name: r
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["*"]
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
                      -----BEGIN PUBLIC KEY-----
                      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM
                      5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==
                      -----END PUBLIC KEY-----
"#;

    fn load(dir: &Path) -> Vec<LoadedPolicy> {
        sigil_engine::load_policy_files(&[dir.to_owned()]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn fingerprint_follows_contents() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let paths = vec![dir.path().to_owned()];
        let empty = fingerprint(&paths);
        std::fs::write(dir.path().join("p.yaml"), POLICY).unwrap_or_else(|e| panic!("{e}"));
        let one = fingerprint(&paths);
        assert_ne!(empty, one);
        assert_eq!(one, fingerprint(&paths));
        // Other files do not count.
        std::fs::write(dir.path().join("README"), "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one, fingerprint(&paths));
        std::fs::write(dir.path().join("p.yaml"), POLICY.replace("check", "check2"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(one, fingerprint(&paths));
    }

    #[test]
    fn kind_filter_covers_pods_and_autogen_controllers() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("p.yaml"), POLICY).unwrap_or_else(|e| panic!("{e}"));
        let policies = load(dir.path());
        let f = KindFilter::new(&policies);
        assert!(f.may_match("", "v1", "Pod"));
        assert!(f.may_match("apps", "v1", "Deployment"));
        assert!(f.may_match("batch", "v1", "CronJob"));
        assert!(!f.may_match("", "v1", "ConfigMap"));
        assert!(any_fail_closed(&policies));
        assert!(!KindFilter::new(&[]).may_match("", "v1", "Pod"));
    }
}
