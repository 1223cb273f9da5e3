//! `admission.k8s.io/v1` `AdmissionReview` wire types: parsing a request body (with errors that say
//! exactly what is wrong, answered as HTTP 400) and building the response.
//!
//! Our own serde types rather than `k8s-openapi`: the webhook needs a dozen fields, and unknown fields
//! (`userInfo`, `options`, ...) are ignored as the API server's own decoders do.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sigil_policy::matching::Operation;

/// The only `apiVersion` accepted (the webhook configurations list `admissionReviewVersions: ["v1"]`).
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The `kind` of requests and responses.
pub const KIND: &str = "AdmissionReview";

/// Why a request body is not a usable `AdmissionReview` (answered with HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    /// The body is not JSON, or a field has the wrong type.
    #[error("body is not a valid AdmissionReview JSON document: {0}")]
    Json(#[from] serde_json::Error),
    /// `apiVersion` is present but not `admission.k8s.io/v1`.
    #[error("unsupported apiVersion `{0}` (only admission.k8s.io/v1 is served)")]
    ApiVersion(String),
    /// `kind` is present but not `AdmissionReview`.
    #[error("unsupported kind `{0}` (expected AdmissionReview)")]
    Kind(String),
    /// No `request`.
    #[error("missing `request`")]
    MissingRequest,
    /// No (or an empty) `request.uid`.
    #[error("missing `request.uid`")]
    MissingUid,
    /// No `request.operation`, or an unknown one.
    #[error("missing or unknown `request.operation` {0:?}")]
    Operation(Option<String>),
    /// No `request.object` on an operation that needs one.
    #[error("missing `request.object` (required for {0})")]
    MissingObject(&'static str),
    /// `request.object` is not a JSON object.
    #[error("`request.object` is not a JSON object")]
    ObjectNotAnObject,
    /// The body is larger than the configured limit.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// The body could not be read.
    #[error("cannot read the request body: {0}")]
    Body(String),
}

/// Group/version/kind as in `request.kind`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReview {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<RawRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    uid: Option<String>,
    kind: Option<GroupVersionKind>,
    sub_resource: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    operation: Option<String>,
    object: Option<Value>,
    old_object: Option<Value>,
    dry_run: Option<bool>,
}

/// A validated admission request.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// `request.kind` (falls back to the object's `apiVersion`/`kind`).
    pub kind: GroupVersionKind,
    /// `request.subResource` (empty for the main resource).
    pub sub_resource: String,
    /// `request.name`.
    pub name: String,
    /// `request.namespace` (empty for cluster-scoped resources).
    pub namespace: String,
    /// The operation.
    pub operation: Operation,
    /// `request.object` (`Null` for DELETE).
    pub object: Value,
    /// `request.oldObject` (UPDATE, DELETE).
    pub old_object: Option<Value>,
    /// `request.dryRun`.
    pub dry_run: bool,
}

/// Parses and validates a request body.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest, BadReview> {
    let raw: RawReview = serde_json::from_slice(body)?;
    if let Some(v) = raw.api_version.filter(|v| v != API_VERSION) {
        return Err(BadReview::ApiVersion(v));
    }
    if let Some(k) = raw.kind.filter(|k| k != KIND) {
        return Err(BadReview::Kind(k));
    }
    let r = raw.request.ok_or(BadReview::MissingRequest)?;
    let uid = r
        .uid
        .filter(|u| !u.trim().is_empty())
        .ok_or(BadReview::MissingUid)?;
    let operation = r
        .operation
        .as_deref()
        .and_then(Operation::parse)
        .ok_or_else(|| BadReview::Operation(r.operation.clone()))?;
    let object = match (r.object, operation) {
        (Some(Value::Null) | None, Operation::Delete) => Value::Null,
        (Some(Value::Null) | None, Operation::Create) => {
            return Err(BadReview::MissingObject("CREATE"));
        }
        (Some(Value::Null) | None, Operation::Update) => {
            return Err(BadReview::MissingObject("UPDATE"));
        }
        (Some(Value::Null) | None, Operation::Connect) => {
            return Err(BadReview::MissingObject("CONNECT"));
        }
        (Some(o @ Value::Object(_)), _) => o,
        (Some(_), _) => return Err(BadReview::ObjectNotAnObject),
    };
    let kind = match r.kind {
        Some(k) if !k.kind.is_empty() => k,
        _ => kind_of(&object),
    };
    Ok(AdmissionRequest {
        uid,
        kind,
        sub_resource: r.sub_resource.unwrap_or_default(),
        name: r.name.unwrap_or_default(),
        namespace: r.namespace.unwrap_or_default(),
        operation,
        object,
        old_object: r.old_object.filter(|o| !o.is_null()),
        dry_run: r.dry_run.unwrap_or(false),
    })
}

/// Group/version/kind from an object's `apiVersion` and `kind`.
fn kind_of(object: &Value) -> GroupVersionKind {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    GroupVersionKind {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

/// `metav1.Status` of a denied request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// Always `Failure`.
    pub status: &'static str,
    /// HTTP-style code (403).
    pub code: u16,
    /// Machine-readable reason (`Forbidden`).
    pub reason: &'static str,
    /// The deny message naming each failing image and why.
    pub message: String,
}

/// `response` of an `AdmissionReview`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Admitted or not.
    pub allowed: bool,
    /// Why not (denied only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of the RFC 6902 patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when there is a patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Warnings shown to the client (kubectl prints them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// Admit, optionally with warnings.
    pub fn allow(uid: &str, warnings: Vec<String>) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings,
        }
    }

    /// Deny with a message.
    pub fn deny(uid: &str, message: String, warnings: Vec<String>) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: false,
            status: Some(Status {
                status: "Failure",
                code: 403,
                reason: "Forbidden",
                message,
            }),
            patch: None,
            patch_type: None,
            warnings,
        }
    }

    /// Attaches a JSON patch (ignored when `ops` is empty).
    pub fn with_patch(mut self, ops: &[Value]) -> Self {
        use base64::Engine as _;
        if ops.is_empty() {
            return self;
        }
        let bytes = serde_json::to_vec(ops).unwrap_or_default();
        self.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        self.patch_type = Some("JSONPatch");
        self
    }

    /// The full `AdmissionReview` response document.
    pub fn into_review(self) -> Value {
        serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "response": self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap_or_default()
    }

    #[test]
    fn parses_a_pod_create() {
        let r = parse_review(&body(serde_json::json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "request": {
                "uid": "u1", "operation": "CREATE", "namespace": "ns",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "object": {"apiVersion": "v1", "kind": "Pod"},
                "userInfo": {"username": "x"}
            }
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.uid, "u1");
        assert_eq!(r.kind.kind, "Pod");
        assert_eq!(r.namespace, "ns");
        assert_eq!(r.operation, Operation::Create);
        assert!(r.old_object.is_none());
    }

    #[test]
    fn kind_falls_back_to_the_object() {
        let r = parse_review(&body(serde_json::json!({
            "request": {"uid": "u", "operation": "UPDATE",
                        "object": {"apiVersion": "apps/v1", "kind": "Deployment"},
                        "oldObject": {"apiVersion": "apps/v1", "kind": "Deployment"}}
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.kind,
            GroupVersionKind {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into()
            }
        );
        assert!(r.old_object.is_some());
    }

    #[test]
    fn rejects_bad_bodies_with_the_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a valid AdmissionReview"),
            (b"[1,2]".to_vec(), "not a valid AdmissionReview"),
            (body(serde_json::json!({})), "missing `request`"),
            (
                body(serde_json::json!({"apiVersion": "admission.k8s.io/v1beta1", "request": {}})),
                "unsupported apiVersion",
            ),
            (
                body(serde_json::json!({"kind": "Pod", "request": {}})),
                "unsupported kind",
            ),
            (
                body(serde_json::json!({"request": {"operation": "CREATE", "object": {}}})),
                "missing `request.uid`",
            ),
            (
                body(serde_json::json!({"request": {"uid": "", "operation": "CREATE"}})),
                "missing `request.uid`",
            ),
            (
                body(serde_json::json!({"request": {"uid": "u", "object": {}}})),
                "request.operation",
            ),
            (
                body(
                    serde_json::json!({"request": {"uid": "u", "operation": "PATCH", "object": {}}}),
                ),
                "request.operation",
            ),
            (
                body(serde_json::json!({"request": {"uid": "u", "operation": "CREATE"}})),
                "missing `request.object`",
            ),
            (
                body(
                    serde_json::json!({"request": {"uid": "u", "operation": "CREATE", "object": "x"}}),
                ),
                "not a JSON object",
            ),
            (
                body(
                    serde_json::json!({"request": {"uid": 5, "operation": "CREATE", "object": {}}}),
                ),
                "invalid type",
            ),
        ];
        for (b, want) in cases {
            let e = match parse_review(&b) {
                Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(&b)),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains(want),
                "{:?}: {e} lacks {want}",
                String::from_utf8_lossy(&b)
            );
        }
        // DELETE needs no object.
        let r = parse_review(&body(serde_json::json!({
            "request": {"uid": "u", "operation": "DELETE", "oldObject": {"kind": "Pod"}}
        })));
        assert!(r.is_ok());
    }

    #[test]
    fn responses_have_the_wire_shape() {
        let allow = AdmissionResponse::allow("u", vec![]).with_patch(&[serde_json::json!(
            {"op": "add", "path": "/x", "value": 1}
        )]);
        let v = allow.into_review();
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["response"]["uid"], "u");
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        assert!(v["response"].get("status").is_none());
        assert!(v["response"].get("warnings").is_none());
        let deny = AdmissionResponse::deny("u", "bad image".into(), vec!["w".into()]).into_review();
        assert_eq!(deny["response"]["allowed"], false);
        assert_eq!(deny["response"]["status"]["code"], 403);
        assert_eq!(deny["response"]["status"]["message"], "bad image");
        assert_eq!(deny["response"]["warnings"][0], "w");
        assert!(deny["response"].get("patch").is_none());
    }
}
