//! `match` / `exclude` evaluation and Kyverno autogen for pod controllers.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::PolicyError;
use crate::raw::{RawLabelSelector, RawMatch, RawResourceDescription};
use crate::wildcard::Wildcard;

/// Admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

impl Operation {
    /// Parses `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATE" => Self::Create,
            "UPDATE" => Self::Update,
            "DELETE" => Self::Delete,
            "CONNECT" => Self::Connect,
            _ => return None,
        })
    }
}

/// A compiled kind selector (`Kind`, `Version/Kind`, `Group/Version/Kind`, optional `/subresource`).
#[derive(Debug, Clone)]
pub struct KindSelector {
    /// Group pattern (`*` when unspecified).
    pub group: Wildcard,
    /// Version pattern.
    pub version: Wildcard,
    /// Kind pattern.
    pub kind: Wildcard,
    /// Subresource (empty = main resource).
    pub subresource: String,
}

impl KindSelector {
    /// Parses as Kyverno's `ParseKindSelector`.
    pub fn parse(s: &str) -> Self {
        // Kyverno splits on `/`, then splits the last part on `.` (`Pod.status` = `Pod/status`).
        let mut parts: Vec<&str> = s.split('/').collect();
        if let Some(last) = parts.pop() {
            parts.extend(last.split('.'));
        }
        let (g, v, k, sub) = match parts.as_slice() {
            [k] => ("*", "*", *k, ""),
            ["*", "*"] => ("*", "*", "*", "*"),
            ["*", b] if b.to_lowercase() == *b => ("*", "*", "*", *b),
            [a, b] if is_version(a) => ("*", *a, *b, ""),
            [a, b] => ("*", "*", *a, *b),
            [a, b, c] if is_version(a) => ("*", *a, *b, *c),
            [g, v, k] => (*g, *v, *k, ""),
            [g, v, k, sub] => (*g, *v, *k, *sub),
            // Kyverno returns empty strings here, which match nothing.
            _ => ("", "", "", "-"),
        };
        Self {
            group: Wildcard::new(g),
            version: Wildcard::new(v),
            kind: Wildcard::new(k),
            subresource: sub.to_owned(),
        }
    }

    /// Matches group/version/kind of a main resource.
    pub fn matches(&self, group: &str, version: &str, kind: &str) -> bool {
        (self.subresource.is_empty() || self.subresource == "*")
            && self.group.matches(group)
            && self.version.matches(version)
            && self.kind.matches(kind)
    }

    /// True when this selector can only denote the core `Pod` kind.
    fn is_pod(&self) -> bool {
        self.kind.as_str() == "Pod"
            && self.subresource.is_empty()
            && matches!(self.group.as_str(), "*" | "")
            && matches!(self.version.as_str(), "*" | "v1")
    }
}

/// Kyverno's `versionRegex`: `^(v\d+((alpha|beta)\d+)?|\*)$`.
fn is_version(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 {
        return false;
    }
    let rest = &rest[digits..];
    if rest.is_empty() {
        return true;
    }
    let tail = rest
        .strip_prefix("alpha")
        .or_else(|| rest.strip_prefix("beta"));
    tail.is_some_and(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()))
}

/// Label selector requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOp {
    /// In.
    In,
    /// NotIn.
    NotIn,
    /// Exists.
    Exists,
    /// DoesNotExist.
    DoesNotExist,
}

/// A compiled label selector.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector {
    /// Key → value pattern.
    pub match_labels: Vec<(String, Wildcard)>,
    /// Requirements.
    pub match_expressions: Vec<(String, SelectorOp, Vec<String>)>,
}

impl LabelSelector {
    fn compile(raw: &RawLabelSelector, path: &str) -> Result<Self, PolicyError> {
        let mut match_expressions = Vec::new();
        for (i, r) in raw.match_expressions.iter().enumerate() {
            let p = format!("{path}.matchExpressions[{i}]");
            let op = match r.operator.as_str() {
                "In" => SelectorOp::In,
                "NotIn" => SelectorOp::NotIn,
                "Exists" => SelectorOp::Exists,
                "DoesNotExist" => SelectorOp::DoesNotExist,
                other => {
                    return Err(PolicyError::invalid(
                        format!("{p}.operator"),
                        format!("unknown selector operator `{other}`"),
                    ));
                }
            };
            let needs_values = matches!(op, SelectorOp::In | SelectorOp::NotIn);
            if needs_values == r.values.is_empty() {
                return Err(PolicyError::invalid(
                    format!("{p}.values"),
                    if needs_values {
                        "values required for In/NotIn"
                    } else {
                        "values must be empty for Exists/DoesNotExist"
                    },
                ));
            }
            match_expressions.push((r.key.clone(), op, r.values.clone()));
        }
        Ok(Self {
            match_labels: raw
                .match_labels
                .iter()
                .map(|(k, v)| (k.clone(), Wildcard::new(v)))
                .collect(),
            match_expressions,
        })
    }

    /// Matches a label map.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, p)| labels.get(k).is_some_and(|v| p.matches(v)))
            && self
                .match_expressions
                .iter()
                .all(|(k, op, values)| match op {
                    SelectorOp::In => labels.get(k).is_some_and(|v| values.contains(v)),
                    SelectorOp::NotIn => labels.get(k).is_none_or(|v| !values.contains(v)),
                    SelectorOp::Exists => labels.contains_key(k),
                    SelectorOp::DoesNotExist => !labels.contains_key(k),
                })
    }
}

/// A compiled `resources` description.
#[derive(Debug, Clone, Default)]
pub struct ResourceDescription {
    /// Kinds (empty = any kind).
    pub kinds: Vec<KindSelector>,
    /// Names (empty = any).
    pub names: Vec<Wildcard>,
    /// Namespaces (empty = any).
    pub namespaces: Vec<Wildcard>,
    /// Annotation patterns.
    pub annotations: Vec<(Wildcard, Wildcard)>,
    /// Label selector.
    pub selector: Option<LabelSelector>,
    /// Operations (empty = any).
    pub operations: Vec<Operation>,
}

/// The resource facts match/exclude are evaluated against.
#[derive(Debug, Clone)]
pub struct ResourceFacts {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace of the request.
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Operation.
    pub operation: Operation,
}

impl ResourceFacts {
    /// Collects facts from a resource object.
    pub fn from_resource(resource: &Value, namespace: &str, operation: Operation) -> Self {
        let api_version = resource
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), api_version.to_owned()),
        };
        let str_map = |ptr: &str| -> BTreeMap<String, String> {
            resource
                .pointer(ptr)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            group,
            version,
            kind: resource
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            name: resource
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            namespace: namespace.to_owned(),
            labels: str_map("/metadata/labels"),
            annotations: str_map("/metadata/annotations"),
            operation,
        }
    }
}

impl ResourceDescription {
    fn compile(
        raw: &RawResourceDescription,
        path: &str,
        require_kinds: bool,
    ) -> Result<Self, PolicyError> {
        if raw.namespace_selector.is_some() {
            return Err(PolicyError::invalid(
                format!("{path}.namespaceSelector"),
                "not supported",
            ));
        }
        if require_kinds && raw.kinds.is_empty() {
            return Err(PolicyError::invalid(
                format!("{path}.kinds"),
                "at least one kind is required",
            ));
        }
        let mut operations = Vec::new();
        for (i, o) in raw.operations.iter().enumerate() {
            operations.push(Operation::parse(o).ok_or_else(|| {
                PolicyError::invalid(
                    format!("{path}.operations[{i}]"),
                    format!("unknown operation `{o}`"),
                )
            })?);
        }
        let mut names: Vec<Wildcard> = raw.names.iter().map(|n| Wildcard::new(n)).collect();
        if let Some(n) = &raw.name {
            names.push(Wildcard::new(n));
        }
        Ok(Self {
            kinds: raw.kinds.iter().map(|k| KindSelector::parse(k)).collect(),
            names,
            namespaces: raw.namespaces.iter().map(|n| Wildcard::new(n)).collect(),
            annotations: raw
                .annotations
                .iter()
                .map(|(k, v)| (Wildcard::new(k), Wildcard::new(v)))
                .collect(),
            selector: raw
                .selector
                .as_ref()
                .map(|s| LabelSelector::compile(s, &format!("{path}.selector")))
                .transpose()?,
            operations,
        })
    }

    /// Evaluates against facts. With `as_pod`, a controller is matched through its pod template (autogen).
    pub fn matches(&self, facts: &ResourceFacts, as_pod: bool) -> bool {
        let kind_ok = self.kinds.is_empty()
            || self.kinds.iter().any(|k| {
                if as_pod {
                    k.is_pod()
                } else {
                    k.matches(&facts.group, &facts.version, &facts.kind)
                }
            });
        let ns_ok = self.namespaces.is_empty() || {
            // For Namespace objects Kyverno matches `namespaces` against the object name.
            let ns = if facts.kind == "Namespace" {
                &facts.name
            } else {
                &facts.namespace
            };
            self.namespaces.iter().any(|p| p.matches(ns))
        };
        kind_ok
            && ns_ok
            && (self.names.is_empty() || self.names.iter().any(|p| p.matches(&facts.name)))
            && self.annotations.iter().all(|(kp, vp)| {
                facts
                    .annotations
                    .iter()
                    .any(|(k, v)| kp.matches(k) && vp.matches(v))
            })
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&facts.labels))
            && (self.operations.is_empty() || self.operations.contains(&facts.operation))
    }

    /// True if the description has no name/selector/annotation constraints (autogen precondition).
    fn autogen_compatible(&self) -> bool {
        self.names.is_empty() && self.selector.is_none() && self.annotations.is_empty()
    }
}

/// A compiled `match` or `exclude` block.
#[derive(Debug, Clone, Default)]
pub struct MatchBlock {
    /// Any of these.
    pub any: Vec<ResourceDescription>,
    /// All of these.
    pub all: Vec<ResourceDescription>,
}

impl MatchBlock {
    pub(crate) fn compile(raw: &RawMatch, path: &str, is_match: bool) -> Result<Self, PolicyError> {
        for (field, v) in [
            ("subjects", &raw.subjects),
            ("roles", &raw.roles),
            ("clusterRoles", &raw.cluster_roles),
        ] {
            if v.is_some() {
                return Err(PolicyError::invalid(
                    format!("{path}.{field}"),
                    "not supported",
                ));
            }
        }
        let filters = |list: &[crate::raw::RawResourceFilter],
                       which: &str|
         -> Result<Vec<ResourceDescription>, PolicyError> {
            list.iter()
                .enumerate()
                .map(|(i, f)| {
                    let p = format!("{path}.{which}[{i}]");
                    for (field, v) in [
                        ("subjects", &f.subjects),
                        ("roles", &f.roles),
                        ("clusterRoles", &f.cluster_roles),
                    ] {
                        if v.is_some() {
                            return Err(PolicyError::invalid(
                                format!("{p}.{field}"),
                                "not supported",
                            ));
                        }
                    }
                    let r = f.resources.as_ref().ok_or_else(|| {
                        PolicyError::invalid(format!("{p}.resources"), "required")
                    })?;
                    ResourceDescription::compile(r, &format!("{p}.resources"), is_match)
                })
                .collect()
        };
        let mut any = filters(&raw.any, "any")?;
        let all = filters(&raw.all, "all")?;
        if let Some(r) = &raw.resources {
            if !raw.any.is_empty() || !raw.all.is_empty() {
                return Err(PolicyError::invalid(
                    format!("{path}.resources"),
                    "cannot be combined with any/all",
                ));
            }
            any.push(ResourceDescription::compile(
                r,
                &format!("{path}.resources"),
                is_match,
            )?);
        }
        if is_match && any.is_empty() && all.is_empty() {
            return Err(PolicyError::invalid(
                path,
                "match requires any, all or resources",
            ));
        }
        Ok(Self { any, all })
    }

    /// Match semantics: some `any` filter matches (if present) and every `all` filter matches.
    pub fn matches(&self, facts: &ResourceFacts, as_pod: bool) -> bool {
        (self.any.is_empty() || self.any.iter().any(|d| d.matches(facts, as_pod)))
            && self.all.iter().all(|d| d.matches(facts, as_pod))
    }

    /// Exclude semantics: excluded when a non-empty block matches.
    pub fn excludes(&self, facts: &ResourceFacts, as_pod: bool) -> bool {
        !(self.any.is_empty() && self.all.is_empty()) && self.matches(facts, as_pod)
    }

    fn all_filters(&self) -> impl Iterator<Item = &ResourceDescription> {
        self.any.iter().chain(self.all.iter())
    }

    /// True if every filter selects only `Pod` and has no name/selector/annotations.
    pub(crate) fn pod_only(&self) -> bool {
        self.all_filters().all(|d| {
            d.autogen_compatible()
                && !d.kinds.is_empty()
                && d.kinds.iter().all(KindSelector::is_pod)
        })
    }

    pub(crate) fn autogen_compatible(&self) -> bool {
        self.all_filters().all(|d| d.autogen_compatible())
    }
}

/// Which controllers autogen covers for a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutogenControllers {
    /// Default set: DaemonSet, Deployment, Job, StatefulSet, ReplicaSet, ReplicationController, CronJob.
    Default,
    /// Disabled (`none`).
    None,
    /// Explicit list from the annotation.
    List(Vec<String>),
}

/// Annotation that restricts autogen.
pub const AUTOGEN_ANNOTATION: &str = "pod-policies.kyverno.io/autogen-controllers";

impl AutogenControllers {
    /// From the policy annotations.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Self {
        match annotations.get(AUTOGEN_ANNOTATION).map(|s| s.trim()) {
            None | Some("") => Self::Default,
            Some("none") => Self::None,
            Some(list) => Self::List(
                list.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }

    /// Does autogen cover this controller kind?
    pub fn covers(&self, kind: &str) -> bool {
        match self {
            Self::None => false,
            Self::Default => {
                crate::image::TEMPLATE_CONTROLLERS.contains(&kind) || kind == "CronJob"
            }
            Self::List(l) => l.iter().any(|k| k == kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, String, String) {
        let k = KindSelector::parse(s);
        (
            k.group.as_str().to_owned(),
            k.version.as_str().to_owned(),
            k.kind.as_str().to_owned(),
            k.subresource,
        )
    }

    #[test]
    fn kind_selectors_parse_as_kyverno() {
        let t = |g: &str, v: &str, k: &str, s: &str| {
            (g.to_owned(), v.to_owned(), k.to_owned(), s.to_owned())
        };
        assert_eq!(parts("Pod"), t("*", "*", "Pod", ""));
        assert_eq!(parts("v1/Pod"), t("*", "v1", "Pod", ""));
        assert_eq!(
            parts("v2beta1/HorizontalPodAutoscaler"),
            t("*", "v2beta1", "HorizontalPodAutoscaler", "")
        );
        assert_eq!(parts("Pod/status"), t("*", "*", "Pod", "status"));
        assert_eq!(parts("Pod.status"), t("*", "*", "Pod", "status"));
        assert_eq!(
            parts("apps/v1/Deployment"),
            t("apps", "v1", "Deployment", "")
        );
        assert_eq!(parts("v1/Pod/exec"), t("*", "v1", "Pod", "exec"));
        assert_eq!(
            parts("apps/v1/Deployment/scale"),
            t("apps", "v1", "Deployment", "scale")
        );
        assert_eq!(parts("*/*"), t("*", "*", "*", "*"));
        assert!(KindSelector::parse("Pod").is_pod());
        assert!(KindSelector::parse("v1/Pod").is_pod());
        assert!(!KindSelector::parse("apps/v1/Pod").is_pod());
    }
}
