//! Registry API errors: distribution-spec error codes, their HTTP statuses and the JSON error body.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use sigil_storage::StorageError;

/// An error code of distribution-spec v1.1.1 (plus the few extra ones sigil uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// code-1
    BlobUnknown,
    /// code-2
    BlobUploadInvalid,
    /// code-3
    BlobUploadUnknown,
    /// code-4
    DigestInvalid,
    /// code-5
    ManifestBlobUnknown,
    /// code-6
    ManifestInvalid,
    /// code-7
    ManifestUnknown,
    /// code-8
    NameInvalid,
    /// code-9
    NameUnknown,
    /// code-10
    SizeInvalid,
    /// code-11
    Unauthorized,
    /// code-12
    Denied,
    /// code-13
    Unsupported,
    /// code-14
    TooManyRequests,
    /// Legacy `TAG_INVALID` (optional in the spec).
    TagInvalid,
    /// A conditional request's precondition did not hold (412).
    PreconditionFailed,
    /// Requested range not satisfiable (416).
    RangeInvalid,
    /// A server-side failure (500).
    Internal,
}

impl ErrorCode {
    /// The wire identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::TagInvalid => "TAG_INVALID",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::RangeInvalid => "BLOB_UPLOAD_INVALID",
            Self::Internal => "UNKNOWN",
        }
    }

    /// The HTTP status that goes with the code by default.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BlobUnknown
            | Self::BlobUploadUnknown
            | Self::ManifestUnknown
            | Self::NameUnknown => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Denied => StatusCode::FORBIDDEN,
            Self::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Error code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Optional detail.
    pub detail: Option<serde_json::Value>,
    /// Extra response headers.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the code's default status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Overrides the status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a detail value.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// Maps a storage failure in a context where `NotFound` means `not_found`.
    pub fn storage(e: StorageError, not_found: ErrorCode) -> Self {
        match e {
            StorageError::NotFound => Self::new(not_found, "not found"),
            StorageError::UploadUnknown => {
                Self::new(ErrorCode::BlobUploadUnknown, "upload unknown")
            }
            StorageError::RangeNotSatisfiable { size } => {
                let range = if size == 0 {
                    "0-0".to_owned()
                } else {
                    format!("0-{}", size - 1)
                };
                Self::new(
                    ErrorCode::RangeInvalid,
                    format!("range not satisfiable; have {size} bytes"),
                )
                .with_header(header::RANGE, &range)
                .with_header(header::CONTENT_RANGE, &format!("bytes */{size}"))
            }
            StorageError::DigestMismatch { expected, actual } => Self::new(
                ErrorCode::DigestInvalid,
                format!("content digest {actual} does not match {expected}"),
            ),
            StorageError::UnsupportedDigest(a) => Self::new(
                ErrorCode::DigestInvalid,
                format!("unsupported digest algorithm {a}"),
            ),
            StorageError::PreconditionFailed { current } => Self::new(
                ErrorCode::PreconditionFailed,
                match current {
                    Some(d) => format!("precondition failed: tag points to {d}"),
                    None => "precondition failed: tag does not exist".to_owned(),
                },
            ),
            StorageError::Body(e) => Self::new(
                ErrorCode::BlobUploadInvalid,
                format!("request body failed: {e}"),
            ),
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::new(ErrorCode::Internal, "internal storage error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(d) = self.detail {
            err["detail"] = d;
        }
        let body = serde_json::json!({ "errors": [err] }).to_string();
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
