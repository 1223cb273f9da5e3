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

impl ImageInfo {
    /// One entry of Kyverno's `images` context variable for `image` found at `pointer`
    /// (Kyverno's `GetImageInfo` with default-registry mutation on, plus `jsonPointer`):
    /// `registry`, `name` (last path segment), `path` (`library/` prefixed for a one-segment
    /// Docker-style path), `tag` (`latest` when neither tag nor digest is given; absent with a
    /// digest alone), `digest` (when given), `reference` (`registry/path:tag` or
    /// `registry/path@digest`), `referenceWithTag` (`registry/<path as written>:<tag>`) and
    /// `jsonPointer`.
    pub fn variable_entry(image: &str, pointer: &str) -> Result<Value, EvalError> {
        let info = Self::parse(image)?;
        let name = info
            .path
            .rsplit('/')
            .next()
            .unwrap_or(info.path.as_str())
            .to_owned();
        let tag = info.tag.clone().unwrap_or_default();
        let reference_with_tag = format!("{}/{}:{tag}", info.registry, info.path);
        let path = if info.path.contains('/') {
            info.path.clone()
        } else {
            format!("library/{}", info.path)
        };
        let reference = match &info.digest {
            Some(d) => format!("{}/{path}@{d}", info.registry),
            None => format!("{}/{path}:{tag}", info.registry),
        };
        let mut m = serde_json::Map::new();
        m.insert("registry".into(), Value::String(info.registry.clone()));
        m.insert("name".into(), Value::String(name));
        m.insert("path".into(), Value::String(path));
        if !tag.is_empty() {
            m.insert("tag".into(), Value::String(tag));
        }
        if let Some(d) = info.digest {
            m.insert("digest".into(), Value::String(d));
        }
        m.insert("reference".into(), Value::String(reference));
        m.insert("referenceWithTag".into(), Value::String(reference_with_tag));
        m.insert("jsonPointer".into(), Value::String(pointer.to_owned()));
        Ok(Value::Object(m))
    }
}

/// Kyverno's `images` context variable from the images of the built-in extractors (see
/// [`extract_images`]): `{"initContainers"|"containers"|"ephemeralContainers": {<container
/// name>: <entry>}}` (entries as [`ImageInfo::variable_entry`]; empty lists are left out).
/// Returns `None` when no image was found (Kyverno then defines no `images` variable). A
/// container without a name, or an image that does not parse, is an error (Kyverno rejects the
/// request).
pub fn images_variable(images: &[ExtractedImage]) -> Result<Option<Value>, EvalError> {
    let mut groups = serde_json::Map::new();
    for img in images {
        let group = match img.container_kind {
            ContainerKind::InitContainers => "initContainers",
            ContainerKind::Containers => "containers",
            ContainerKind::EphemeralContainers => "ephemeralContainers",
            ContainerKind::Custom => "custom",
        };
        let key = img.name.clone().ok_or_else(|| {
            EvalError::Resource(format!(
                "{}: the container has no `name` (the `images` variable is keyed by it)",
                img.pointer.trim_end_matches("/image")
            ))
        })?;
        insert_entry(&mut groups, group, key, img)?;
    }
    Ok((!groups.is_empty()).then_some(Value::Object(groups)))
}

/// Adds `img` as `groups[group][key]` (a later image with the same key replaces the earlier one,
/// as in Kyverno's map).
pub(crate) fn insert_entry(
    groups: &mut serde_json::Map<String, Value>,
    group: &str,
    key: String,
    img: &ExtractedImage,
) -> Result<(), EvalError> {
    let entry = ImageInfo::variable_entry(&img.image, &img.pointer).map_err(|_| {
        EvalError::Resource(format!(
            "{}: invalid image `{}` (cannot build the `images` variable)",
            img.pointer, img.image
        ))
    })?;
    let slot = groups
        .entry(group.to_owned())
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Value::Object(m) = slot {
        m.insert(key, entry);
    }
    Ok(())
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
    /// Container name (built-in extractors) or the `key` field's value (custom extractors).
    pub name: Option<String>,
    /// Source list.
    pub container_kind: ContainerKind,
    /// The untransformed value at `pointer` when an extractor's `jmesPath` produced `image`
    /// (the pointer then does not hold `image`: a digest pin must not be written there).
    pub source: Option<String>,
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
                source: None,
            });
        }
    }
    Ok(out)
}

/// Escapes a JSON pointer token.
fn escape_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

/// A custom `imageExtractors` entry, ready to run (see [`extract_custom`]).
#[derive(Debug, Clone, Copy)]
pub struct CustomExtractor<'a> {
    /// The `path` of the entry (`/`-separated, `*` iterates arrays and maps).
    pub path: &'a str,
    /// The `value` field (default: the last `path` segment).
    pub value: Option<&'a str>,
    /// The `key` field that identifies an image (default: its JSON pointer).
    pub key: Option<&'a str>,
    /// The `jmesPath` transform applied to the extracted string.
    pub jmes_path: Option<&'a str>,
}

/// Runs a custom `imageExtractors` entry as Kyverno's `extract` does:
///
/// - `path` is split on `/` (empty segments dropped); without `value`, its last segment names
///   the image field and the rest is the path to the object holding it;
/// - `*` iterates an array or a map (a scalar there is an error); other segments select a map
///   field (a missing field means no image; a non-object where an object is needed is an error);
/// - an image field that is missing, not a string or blank means no image;
/// - with `key`, the key field must be a string (else an error) and images with the same key are
///   one image (the last wins), as in Kyverno's map; the key is reported as the image's `name`;
/// - with `jmesPath`, the expression (Kyverno's function pack) is applied to the string and
///   must produce a string (else an error); [`ExtractedImage::source`] then keeps the
///   untransformed value, since the pointer still refers to it.
pub fn extract_custom(
    resource: &Value,
    extractor: &CustomExtractor<'_>,
) -> Result<Vec<ExtractedImage>, EvalError> {
    let mut fields: Vec<&str> = extractor
        .path
        .split('/')
        .map(|s| s.trim_matches(' '))
        .filter(|s| !s.is_empty())
        .collect();
    let value_field = match extractor.value.filter(|v| !v.is_empty()) {
        Some(v) => v,
        None => fields.pop().ok_or_else(|| {
            EvalError::Resource(format!(
                "image extractor path `{}` names no field",
                extractor.path
            ))
        })?,
    };
    let compiled = extractor
        .jmes_path
        .filter(|j| !j.is_empty())
        .map(|j| {
            crate::functions::RUNTIME
                .compile(j)
                .map(|c| (j, c))
                .map_err(|e| EvalError::JmesPath {
                    expression: j.to_owned(),
                    message: e.to_string(),
                })
        })
        .transpose()?;
    let mut walker = Walker {
        value_field,
        key_field: extractor.key.filter(|k| !k.is_empty()),
        transform: compiled.as_ref(),
        out: Vec::new(),
        keys: Vec::new(),
    };
    walker.walk(resource, &fields, String::new())?;
    Ok(walker.out)
}

struct Walker<'a, 'e> {
    value_field: &'a str,
    key_field: Option<&'a str>,
    transform: Option<&'e (&'a str, jmespath::Expression<'static>)>,
    out: Vec<ExtractedImage>,
    /// The key of each entry of `out`.
    keys: Vec<String>,
}

impl Walker<'_, '_> {
    fn walk(&mut self, node: &Value, fields: &[&str], pointer: String) -> Result<(), EvalError> {
        if node.is_null() {
            return Ok(());
        }
        if let Some((&"*", rest)) = fields.split_first() {
            return match node {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item, rest, format!("{pointer}/{i}"))?;
                    }
                    Ok(())
                }
                Value::Object(map) => {
                    for (k, item) in map {
                        self.walk(item, rest, format!("{pointer}/{}", escape_token(k)))?;
                    }
                    Ok(())
                }
                _ => Err(EvalError::Resource(format!(
                    "{}: `*` needs an array or an object, found {}",
                    display_pointer(&pointer),
                    type_name(node)
                ))),
            };
        }
        let Value::Object(map) = node else {
            return Err(EvalError::Resource(format!(
                "{}: expected an object, found {}",
                display_pointer(&pointer),
                type_name(node)
            )));
        };
        let Some((field, rest)) = fields.split_first() else {
            return self.leaf(map, pointer);
        };
        match map.get(*field) {
            Some(child) => self.walk(child, rest, format!("{pointer}/{}", escape_token(field))),
            None => Ok(()),
        }
    }

    fn leaf(
        &mut self,
        map: &serde_json::Map<String, Value>,
        pointer: String,
    ) -> Result<(), EvalError> {
        let pointer = format!("{pointer}/{}", escape_token(self.value_field));
        let key = match self.key_field {
            None => pointer.clone(),
            Some(k) => match map.get(k) {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(EvalError::Resource(format!(
                        "{pointer}: the image key field `{k}` is missing or not a string"
                    )));
                }
            },
        };
        let Some(Value::String(raw)) = map.get(self.value_field) else {
            return Ok(());
        };
        if raw.trim().is_empty() {
            return Ok(());
        }
        let (image, source) = match self.transform {
            None => (raw.clone(), None),
            Some((expr, compiled)) => {
                let err = |message: String| EvalError::JmesPath {
                    expression: (*expr).to_owned(),
                    message,
                };
                let result = compiled
                    .search(Value::String(raw.clone()))
                    .map_err(|e| err(format!("applied to {pointer} ({raw:?}): {e}")))?;
                match &*result {
                    jmespath::Variable::String(s) => (s.clone(), Some(raw.clone())),
                    other => {
                        return Err(err(format!(
                            "applied to {pointer} ({raw:?}) must produce a string, produced {other}"
                        )));
                    }
                }
            }
        };
        let entry = ExtractedImage {
            pointer,
            image,
            name: self.key_field.map(|_| key.clone()),
            container_kind: ContainerKind::Custom,
            source,
        };
        match self.keys.iter().position(|k| *k == key) {
            Some(i) => self.out[i] = entry,
            None => {
                self.keys.push(key);
                self.out.push(entry);
            }
        }
        Ok(())
    }
}

fn display_pointer(p: &str) -> &str {
    if p.is_empty() { "/" } else { p }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
