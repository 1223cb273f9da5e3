//! Image reference normalisation (Kyverno `GetImageInfo`) and image extraction
//! from Pods and pod controllers (Kyverno's built-in extractors / autogen).

use serde_json::Value;

use crate::error::EvalError;

/// The default registry prepended to short names (`nginx` → `docker.io/nginx:latest`).
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// An image reference split as Kyverno does (no `library/` insertion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Registry host.
    pub registry: String,
    /// Repository path.
    pub path: String,
    /// Tag (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Digest.
    pub digest: Option<String>,
}

impl ImageInfo {
    /// Parses an image string.
    pub fn parse(image: &str) -> Result<Self, EvalError> {
        let bad = || EvalError::Resource(format!("invalid image reference `{image}`"));
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) if d.contains(':') && !r.is_empty() => (r, Some(d.to_owned())),
            Some(_) => return Err(bad()),
            None => (image, None),
        };
        let (first, remainder) = match rest.split_once('/') {
            Some((f, r)) if f.contains('.') || f.contains(':') || f == "localhost" => {
                (f.to_owned(), r.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), rest.to_owned()),
        };
        let last_slash = remainder.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match remainder[last_slash..].rfind(':') {
            Some(i) => {
                let split = last_slash + i;
                (
                    remainder[..split].to_owned(),
                    Some(remainder[split + 1..].to_owned()),
                )
            }
            None => (remainder.clone(), None),
        };
        if path.is_empty() || tag.as_deref() == Some("") {
            return Err(bad());
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_owned())
        } else {
            tag
        };
        Ok(Self {
            registry: first,
            path,
            tag,
            digest,
        })
    }

    /// Kyverno's `ImageInfo.String()`: `registry/path@digest` if a digest is set, else `registry/path:tag`.
    pub fn kyverno_string(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}/{}@{}", self.registry, self.path, d),
            (None, Some(t)) => format!("{}/{}:{}", self.registry, self.path, t),
            (None, None) => format!("{}/{}", self.registry, self.path),
        }
    }
}

/// Which container list an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// `initContainers`.
    InitContainers,
    /// `containers`.
    Containers,
    /// `ephemeralContainers`.
    EphemeralContainers,
    /// A custom `imageExtractors` entry.
    Custom,
}

/// An image found in a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedImage {
    /// JSON pointer of the image string, e.g. `/spec/containers/0/image`.
    pub pointer: String,
    /// Image string as written in the resource.
    pub image: String,
    /// Container name, if any.
    pub name: Option<String>,
    /// Source list.
    pub container_kind: ContainerKind,
}

/// Pod controllers whose pod template Kyverno autogen covers (`spec.template.spec`).
pub const TEMPLATE_CONTROLLERS: &[&str] = &[
    "DaemonSet",
    "Deployment",
    "Job",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
];

/// The pod spec pointer prefix for a kind, or `None` when the kind has no built-in extractor.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        k if TEMPLATE_CONTROLLERS.contains(&k) => Some("/spec/template/spec"),
        _ => None,
    }
}

/// Extracts images from a Pod or pod controller using Kyverno's built-in extractors
/// (order: `initContainers`, `containers`, `ephemeralContainers`).
///
/// Returns an empty list for kinds without a built-in extractor.
pub fn extract_images(resource: &Value) -> Result<Vec<ExtractedImage>, EvalError> {
    let kind = resource
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| EvalError::Resource("missing `kind`".into()))?;
    let Some(prefix) = pod_spec_pointer(kind) else {
        return Ok(Vec::new());
    };
    let Some(spec) = resource.pointer(prefix) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (field, ck) in [
        ("initContainers", ContainerKind::InitContainers),
        ("containers", ContainerKind::Containers),
        ("ephemeralContainers", ContainerKind::EphemeralContainers),
    ] {
        let Some(list) = spec.get(field) else {
            continue;
        };
        let list = list
            .as_array()
            .ok_or_else(|| EvalError::Resource(format!("{prefix}/{field} is not an array")))?;
        for (i, c) in list.iter().enumerate() {
            let Some(image) = c.get("image") else {
                continue;
            };
            let image = image.as_str().ok_or_else(|| {
                EvalError::Resource(format!("{prefix}/{field}/{i}/image is not a string"))
            })?;
            out.push(ExtractedImage {
                pointer: format!("{prefix}/{field}/{i}/image"),
                image: image.to_owned(),
                name: c.get("name").and_then(Value::as_str).map(str::to_owned),
                container_kind: ck,
            });
        }
    }
    Ok(out)
}

/// Escapes a JSON pointer token.
fn escape_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

/// Runs a custom `imageExtractors` entry: `path` segments separated by `/`, `*`
/// iterating arrays (and maps), `value` naming the image field below `*` matches.
pub(crate) fn extract_custom(
    resource: &Value,
    path: &str,
    value_field: Option<&str>,
    name_field: Option<&str>,
) -> Vec<ExtractedImage> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut out = Vec::new();
    walk(
        resource,
        &segments,
        String::new(),
        value_field,
        name_field,
        &mut out,
    );
    out
}

fn walk(
    node: &Value,
    segments: &[&str],
    pointer: String,
    value_field: Option<&str>,
    name_field: Option<&str>,
    out: &mut Vec<ExtractedImage>,
) {
    match segments.split_first() {
        None => {
            let (target, ptr) = match value_field {
                Some(f) => (node.get(f), format!("{pointer}/{}", escape_token(f))),
                None => (Some(node), pointer),
            };
            if let Some(Value::String(s)) = target {
                out.push(ExtractedImage {
                    pointer: ptr,
                    image: s.clone(),
                    name: name_field
                        .and_then(|n| node.get(n))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    container_kind: ContainerKind::Custom,
                });
            }
        }
        Some((&"*", rest)) => match node {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(
                        item,
                        rest,
                        format!("{pointer}/{i}"),
                        value_field,
                        name_field,
                        out,
                    );
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let p = format!("{pointer}/{}", escape_token(k));
                    walk(item, rest, p, value_field, name_field, out);
                }
            }
            _ => {}
        },
        Some((seg, rest)) => {
            let child = match node {
                Value::Object(map) => map.get(*seg),
                Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            if let Some(child) = child {
                let p = format!("{pointer}/{}", escape_token(seg));
                walk(child, rest, p, value_field, name_field, out);
            }
        }
    }
}
