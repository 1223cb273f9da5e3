//! Kyverno rule `context` entries: compiled from the policy, evaluated (I/O-free parts) in order
//! into the JSON context (which also holds `request` and Kyverno's `images` variable, see
//! [`crate::CompiledRule::images_variable`]) that preconditions, the `verifyImages` body, attestation conditions and
//! `validate.deny` read their `{{ }}` variables from.
//!
//! - `variable` (`value`, `jmesPath`, `default`) is evaluated here, offline, as Kyverno's variable
//!   loader does: `value`, `jmesPath` and `default` are variable-substituted first; with `value`, the
//!   `jmesPath` applies to it, else the `jmesPath` queries the whole context; the `default` is used
//!   when the query fails or yields nothing; a result of `null` is an error.
//! - `imageRegistry` (`reference`, `jmesPath`) needs the registry: the caller fetches the image
//!   (see [`ImageData`]) after [`ContextEntry::image_registry_request`] substituted the reference.
//! - `configMap`, `apiCall` and `globalReference` need a Kubernetes API server, which sigil's offline
//!   CLI and webhook do not use: they compile to [`ContextSource::NeedsCluster`] and are reported as
//!   errors naming their path when the rule is evaluated (never ignored).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::conditions::{eval_jmespath, substitute, substitute_strict};
use crate::error::{EvalError, PolicyError};

/// Context entry names Kyverno reserves for its own variables.
const RESERVED: &[&str] = &[
    "images",
    "request",
    "serviceAccountName",
    "serviceAccountNamespace",
    "element",
    "elementIndex",
];

/// Where a context entry's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextSource {
    /// `variable`: a literal (with variables) and/or a JMESPath query, with a default.
    Variable {
        /// `value` (any JSON; `{{ }}` variables are substituted).
        value: Option<Value>,
        /// `jmesPath` applied to `value`, or to the whole context without `value`.
        jmes_path: Option<String>,
        /// `default` when the query fails or yields nothing.
        default: Option<Value>,
    },
    /// `imageRegistry`: the image's data from its registry.
    ImageRegistry {
        /// `reference` (variables substituted; must yield a string).
        reference: String,
        /// `jmesPath` applied to the image data document.
        jmes_path: Option<String>,
        /// `imageRegistryCredentials` was given (not supported: sigil's own credentials apply).
        credentials: bool,
    },
    /// `configMap`, `apiCall` or `globalReference`: needs the cluster's API server.
    NeedsCluster {
        /// Which field (`configMap`, `apiCall`, `globalReference`).
        field: &'static str,
    },
}

/// A compiled rule `context` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextEntry {
    /// `name`: the top-level context key the value is stored under.
    pub name: String,
    /// Path of the entry (`spec.rules[i].context[j]`).
    pub path: String,
    /// Its source.
    pub source: ContextSource,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    variable: Option<RawVariable>,
    #[serde(default)]
    image_registry: Option<RawImageRegistry>,
    #[serde(default)]
    config_map: Option<Value>,
    #[serde(default)]
    api_call: Option<Value>,
    #[serde(default)]
    global_reference: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVariable {
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    jmes_path: Option<String>,
    #[serde(default)]
    default: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawImageRegistry {
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    jmes_path: Option<String>,
    #[serde(default)]
    image_registry_credentials: Option<Value>,
}

/// Compiles a rule's `context` list (`path` is `spec.rules[i].context`).
pub(crate) fn compile_context(raw: &[Value], path: &str) -> Result<Vec<ContextEntry>, PolicyError> {
    raw.iter()
        .enumerate()
        .map(|(j, v)| compile_entry(v, &format!("{path}[{j}]")))
        .collect()
}

fn compile_entry(v: &Value, path: &str) -> Result<ContextEntry, PolicyError> {
    let raw: RawEntry = crate::from_value_at(v, path)?;
    let name = raw
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| PolicyError::invalid(format!("{path}.name"), "a name is required"))?;
    if let Some(r) = RESERVED
        .iter()
        .find(|r| name == **r || name.starts_with(&format!("{r}.")))
    {
        return Err(PolicyError::invalid(
            format!("{path}.name"),
            format!("entry name {name} is invalid as it conflicts with a pre-defined variable {r}"),
        ));
    }
    let set = [
        raw.variable.is_some(),
        raw.image_registry.is_some(),
        raw.config_map.is_some(),
        raw.api_call.is_some(),
        raw.global_reference.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(PolicyError::invalid(
            path,
            "exactly one of variable, imageRegistry, configMap, apiCall or globalReference is \
             required",
        ));
    }
    let check_jmes = |j: &Option<String>, p: String| -> Result<Option<String>, PolicyError> {
        match j.as_deref().filter(|j| !j.is_empty()) {
            None => Ok(None),
            Some(j) => {
                // A path with variables is checked once they are substituted.
                if !j.contains("{{") {
                    crate::functions::compile_checked(j).map_err(|e| {
                        PolicyError::invalid(p, format!("invalid JMESPath `{j}`: {e}"))
                    })?;
                }
                Ok(Some(j.to_owned()))
            }
        }
    };
    let source = if let Some(var) = raw.variable {
        let jmes_path = check_jmes(&var.jmes_path, format!("{path}.variable.jmesPath"))?;
        if var.value.is_none() && jmes_path.is_none() {
            return Err(PolicyError::invalid(
                format!("{path}.variable"),
                "a variable must define a value or a jmesPath expression",
            ));
        }
        if var.default.is_some() && jmes_path.is_none() {
            return Err(PolicyError::invalid(
                format!("{path}.variable.default"),
                "a variable with a default value must define a jmesPath expression",
            ));
        }
        ContextSource::Variable {
            value: var.value,
            jmes_path,
            default: var.default,
        }
    } else if let Some(reg) = raw.image_registry {
        let reference = reg.reference.filter(|r| !r.is_empty()).ok_or_else(|| {
            PolicyError::invalid(
                format!("{path}.imageRegistry.reference"),
                "an image reference is required",
            )
        })?;
        ContextSource::ImageRegistry {
            reference,
            jmes_path: check_jmes(&reg.jmes_path, format!("{path}.imageRegistry.jmesPath"))?,
            credentials: reg.image_registry_credentials.is_some(),
        }
    } else if raw.config_map.is_some() {
        ContextSource::NeedsCluster { field: "configMap" }
    } else if raw.api_call.is_some() {
        ContextSource::NeedsCluster { field: "apiCall" }
    } else {
        ContextSource::NeedsCluster {
            field: "globalReference",
        }
    };
    Ok(ContextEntry {
        name,
        path: path.to_owned(),
        source,
    })
}

/// What to fetch for an `imageRegistry` entry: the substituted reference and JMESPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRegistryRequest {
    /// The image reference (variables substituted).
    pub reference: String,
    /// The JMESPath applied to the image data (variables substituted).
    pub jmes_path: Option<String>,
}

/// An image's data as Kyverno's `imageRegistry` context entry presents it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageData {
    /// The reference as given.
    pub image: String,
    /// `<registry>/<repository>@<digest>` of the resolved manifest.
    pub resolved_image: String,
    /// Registry host.
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// Tag, or digest when the reference has one.
    pub identifier: String,
    /// The index, when the reference names one (else `null`).
    pub manifest_list: Option<Value>,
    /// The image manifest (the platform's, for an index).
    pub manifest: Value,
    /// The image config blob.
    pub config_data: Value,
}

impl ImageData {
    /// The JSON document Kyverno stores (`image`, `resolvedImage`, `registry`, `repository`,
    /// `identifier`, `manifestList`, `manifest`, `configData`).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("image".into(), Value::String(self.image.clone()));
        m.insert(
            "resolvedImage".into(),
            Value::String(self.resolved_image.clone()),
        );
        m.insert("registry".into(), Value::String(self.registry.clone()));
        m.insert("repository".into(), Value::String(self.repository.clone()));
        m.insert("identifier".into(), Value::String(self.identifier.clone()));
        m.insert(
            "manifestList".into(),
            self.manifest_list.clone().unwrap_or(Value::Null),
        );
        m.insert("manifest".into(), self.manifest.clone());
        m.insert("configData".into(), self.config_data.clone());
        Value::Object(m)
    }
}

impl ContextEntry {
    fn error(&self, message: impl Into<String>) -> EvalError {
        EvalError::Context {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Evaluates a `variable` entry against the context built so far (Kyverno's variable loader).
    /// Other sources are an error (the caller handles `imageRegistry`; the others need a cluster).
    pub fn eval_variable(&self, data: &Value) -> Result<Value, EvalError> {
        let ContextSource::Variable {
            value,
            jmes_path,
            default,
        } = &self.source
        else {
            return Err(self.error("not a variable entry"));
        };
        let path = match jmes_path {
            Some(j) => Some(self.substituted_string(j, data, "jmesPath")?),
            None => None,
        };
        let default = match default {
            Some(d) => Some(
                substitute_strict(d, data)
                    .map_err(|e| self.error(format!("variable.default: {e}")))?,
            ),
            None => None,
        };
        let mut output = default.clone();
        match (value, &path) {
            (Some(v), path) => {
                let v = substitute_strict(v, data)
                    .map_err(|e| self.error(format!("variable.value: {e}")))?;
                match path {
                    None => output = Some(v),
                    Some(p) => match eval_jmespath(p, &v) {
                        Ok(r) if !r.is_null() => output = Some(r),
                        Ok(_) => {}
                        Err(e) if default.is_none() => {
                            return Err(self.error(format!(
                                "failed to apply jmespath {p} to the variable value: {e}"
                            )));
                        }
                        Err(_) => {}
                    },
                }
            }
            (None, Some(p)) => match eval_jmespath(p, data) {
                Ok(r) if !r.is_null() => output = Some(r),
                Ok(_) => {}
                Err(e) if default.is_none() => {
                    return Err(self.error(format!("failed to apply jmespath {p}: {e}")));
                }
                Err(_) => {}
            },
            (None, None) => {}
        }
        match output {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(self.error(format!(
                "variable {} evaluated to null (no value, and no default)",
                self.name
            ))),
        }
    }

    /// For an `imageRegistry` entry: the reference and JMESPath with variables substituted. Other
    /// sources, and `imageRegistryCredentials`, are errors.
    pub fn image_registry_request(&self, data: &Value) -> Result<ImageRegistryRequest, EvalError> {
        let ContextSource::ImageRegistry {
            reference,
            jmes_path,
            credentials,
        } = &self.source
        else {
            return Err(self.error("not an imageRegistry entry"));
        };
        if *credentials {
            return Err(EvalError::Context {
                path: format!("{}.imageRegistry.imageRegistryCredentials", self.path),
                message: "not supported: give sigil the registry credentials (auth file)".into(),
            });
        }
        let reference = self.substituted_string(reference, data, "imageRegistry.reference")?;
        if reference.is_empty() {
            return Err(self.error("imageRegistry.reference is empty after substitution"));
        }
        let jmes_path = match jmes_path {
            Some(j) => Some(self.substituted_string(j, data, "imageRegistry.jmesPath")?),
            None => None,
        };
        Ok(ImageRegistryRequest {
            reference,
            jmes_path,
        })
    }

    /// Applies an `imageRegistry` entry's (substituted) JMESPath to the fetched image data.
    pub fn finish_image_registry(
        &self,
        request: &ImageRegistryRequest,
        image: &ImageData,
    ) -> Result<Value, EvalError> {
        let doc = image.to_value();
        match &request.jmes_path {
            None => Ok(doc),
            Some(p) => eval_jmespath(p, &doc)
                .map_err(|e| self.error(format!("imageRegistry.jmesPath: {e}"))),
        }
    }

    /// The error for a source that needs the cluster's API server.
    pub fn needs_cluster_error(&self) -> Option<EvalError> {
        match &self.source {
            ContextSource::NeedsCluster { field } => Some(EvalError::Context {
                path: format!("{}.{field}", self.path),
                message: "not supported: this context source needs the Kubernetes API server, \
                          which sigil does not use (use a variable or imageRegistry entry)"
                    .into(),
            }),
            _ => None,
        }
    }

    fn substituted_string(&self, s: &str, data: &Value, field: &str) -> Result<String, EvalError> {
        match substitute_strict(&Value::String(s.to_owned()), data)
            .map_err(|e| self.error(format!("{field}: {e}")))?
        {
            Value::String(s) => Ok(s),
            other => Err(self.error(format!(
                "{field} must be a string after substitution, got {other}"
            ))),
        }
    }
}

/// Stores `value` under the top-level key `name` of the context `data` (an object), replacing an
/// earlier entry of that name (Kyverno's `ReplaceContextEntry`: the name is one key, not a path).
pub fn set_entry(data: &mut Value, name: &str, value: Value) {
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(m) = data {
        m.insert(name.to_owned(), value);
    }
}

/// Merges the context entries of `context` (an object) into `data` (an object) without replacing
/// keys `data` already has (its own values, such as an attestation statement, win).
pub fn merge_context(data: &mut Value, context: &Value) {
    if let (Value::Object(d), Value::Object(c)) = (data, context) {
        for (k, v) in c {
            d.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Substitutes variables in a string value non-strictly (used for messages).
pub fn substitute_message(message: &str, data: &Value) -> String {
    match substitute(&Value::String(message.to_owned()), data) {
        Ok(Value::String(s)) => s,
        _ => message.to_owned(),
    }
}
