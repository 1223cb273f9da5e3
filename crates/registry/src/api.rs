//! The distribution-spec v1.1.1 HTTP API: request dispatch and one handler per endpoint.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use sigil_oci::{Descriptor, Digest, ImageIndex, Manifest, media_type, name};
use sigil_storage::{ByteRange, ByteStream, NewManifest, Storage, StorageError, TagCondition};

use crate::RegistryConfig;
use crate::auth::Htpasswd;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::route::{self, Route};

/// Shared state of the API handlers.
pub struct Registry {
    storage: Arc<dyn Storage>,
    config: RegistryConfig,
    auth: Option<Htpasswd>,
}

const OCI_SUBJECT: &str = "oci-subject";
const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
const DOCKER_UPLOAD_UUID: &str = "docker-upload-uuid";
const API_VERSION: &str = "docker-distribution-api-version";

impl Registry {
    /// New API state.
    pub fn new(storage: Arc<dyn Storage>, config: RegistryConfig, auth: Option<Htpasswd>) -> Self {
        Self {
            storage,
            config,
            auth,
        }
    }
}

/// The axum fallback handler: every request comes through here.
pub async fn handle(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = reg
        .dispatch(req)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    let status = resp.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(%method, %path, status, micros, "request failed");
    } else {
        tracing::debug!(%method, %path, status, micros, "request");
    }
    resp
}

type Query<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn query_get<'q>(q: &'q Query<'_>, key: &str) -> Option<&'q str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
}

fn parse_digest(s: &str) -> ApiResult<Digest> {
    Digest::parse(s).map_err(|e| ApiError::new(ErrorCode::DigestInvalid, e.to_string()))
}

fn check_name(name: &str) -> ApiResult<()> {
    name::validate_repository(name)
        .map_err(|e| ApiError::new(ErrorCode::NameInvalid, e.to_string()))
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn etag(d: &Digest) -> String {
    format!("\"{d}\"")
}

fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

fn not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::Unsupported,
        "method not allowed on this endpoint",
    )
}

impl Registry {
    async fn dispatch(&self, req: Request) -> ApiResult<Response> {
        let (parts, body) = req.into_parts();
        if let Some(auth) = &self.auth
            && !auth.check(header_str(&parts.headers, header::AUTHORIZATION))
        {
            return Err(
                ApiError::new(ErrorCode::Unauthorized, "authentication required").with_header(
                    header::WWW_AUTHENTICATE,
                    &format!("Basic realm=\"{}\"", self.config.realm),
                ),
            );
        }
        let Some(route) = route::parse(parts.uri.path()) else {
            return Err(ApiError::new(ErrorCode::Unsupported, "unknown endpoint")
                .with_status(StatusCode::NOT_FOUND));
        };
        let query: Query<'_> = parts
            .uri
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).collect())
            .unwrap_or_default();
        let m = &parts.method;
        let h = &parts.headers;
        match route {
            Route::Base => match *m {
                Method::GET | Method::HEAD => Ok((
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    "{}",
                )
                    .into_response()),
                _ => Err(not_allowed()),
            },
            Route::Catalog => match *m {
                Method::GET => self.catalog(&query).await,
                _ => Err(not_allowed()),
            },
            Route::Manifest { name, reference } => {
                check_name(name)?;
                match *m {
                    Method::GET => self.get_manifest(name, reference, h, true).await,
                    Method::HEAD => self.get_manifest(name, reference, h, false).await,
                    Method::PUT => self.put_manifest(name, reference, h, body).await,
                    Method::DELETE => self.delete_manifest(name, reference).await,
                    _ => Err(not_allowed()),
                }
            }
            Route::Blob { name, digest } => {
                check_name(name)?;
                let digest = parse_digest(digest)?;
                match *m {
                    Method::GET => self.get_blob(name, &digest, h, true).await,
                    Method::HEAD => self.get_blob(name, &digest, h, false).await,
                    Method::DELETE => self.delete_blob(name, &digest).await,
                    _ => Err(not_allowed()),
                }
            }
            Route::UploadStart { name } => {
                check_name(name)?;
                match *m {
                    Method::POST => self.start_upload(name, &query, h, body).await,
                    _ => Err(not_allowed()),
                }
            }
            Route::Upload { name, id } => {
                check_name(name)?;
                match *m {
                    Method::GET => self.upload_status(name, id).await,
                    Method::PATCH => self.patch_upload(name, id, h, body).await,
                    Method::PUT => self.finish_upload(name, id, &query, h, body).await,
                    Method::DELETE => {
                        self.storage
                            .upload_cancel(name, id)
                            .await
                            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUploadUnknown))?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    _ => Err(not_allowed()),
                }
            }
            Route::Tags { name } => {
                check_name(name)?;
                match *m {
                    Method::GET => self.tags(name, &query).await,
                    _ => Err(not_allowed()),
                }
            }
            Route::Referrers { name, digest } => {
                check_name(name)?;
                match *m {
                    Method::GET => self.referrers(name, digest, &query).await,
                    _ => Err(not_allowed()),
                }
            }
        }
    }

    // ---- manifests ----

    async fn resolve(&self, name: &str, reference: &str) -> ApiResult<Option<Digest>> {
        if reference.contains(':') {
            return Ok(Some(parse_digest(reference)?));
        }
        if !name::is_valid_tag(reference) {
            return Err(ApiError::new(
                ErrorCode::TagInvalid,
                format!("invalid tag {reference:?}"),
            ));
        }
        self.storage
            .tag_get(name, reference)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::ManifestUnknown))
    }

    async fn manifest_unknown(&self, name: &str, reference: &str) -> ApiError {
        if matches!(self.storage.repository_exists(name).await, Ok(false)) {
            ApiError::new(
                ErrorCode::NameUnknown,
                format!("repository {name} not known"),
            )
        } else {
            ApiError::new(
                ErrorCode::ManifestUnknown,
                format!("manifest {reference} not known"),
            )
        }
    }

    async fn get_manifest(
        &self,
        name: &str,
        reference: &str,
        h: &HeaderMap,
        with_body: bool,
    ) -> ApiResult<Response> {
        let Some(digest) = self.resolve(name, reference).await? else {
            return Err(self.manifest_unknown(name, reference).await);
        };
        let stored = self
            .storage
            .manifest_get(name, &digest)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::ManifestUnknown))?;
        let Some(stored) = stored else {
            return Err(self.manifest_unknown(name, reference).await);
        };
        let tag = etag(&stored.digest);
        let not_modified = header_str(h, header::IF_NONE_MATCH)
            .is_some_and(|v| etag_list_matches(v, &stored.digest));
        let mut b = Response::builder()
            .header(header::CONTENT_TYPE, stored.media_type.as_str())
            .header(header::CONTENT_LENGTH, stored.bytes.len())
            .header(DOCKER_CONTENT_DIGEST, stored.digest.to_string())
            .header(header::ETAG, tag);
        if not_modified {
            b = b.status(StatusCode::NOT_MODIFIED);
            return b.body(Body::empty()).map_err(internal);
        }
        b = b.status(StatusCode::OK);
        let body = if with_body {
            Body::from(stored.bytes)
        } else {
            Body::empty()
        };
        b.body(body).map_err(internal)
    }

    async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        h: &HeaderMap,
        body: Body,
    ) -> ApiResult<Response> {
        let (tag, by_digest) = if reference.contains(':') {
            (None, Some(parse_digest(reference)?))
        } else if name::is_valid_tag(reference) {
            (Some(reference), None)
        } else {
            return Err(ApiError::new(
                ErrorCode::TagInvalid,
                format!("invalid tag {reference:?}"),
            ));
        };
        let max = self.config.max_manifest_bytes;
        let bytes = read_limited(body, max).await?;
        let content_type = header_str(h, header::CONTENT_TYPE);
        let (manifest, mtype) = Manifest::parse(&bytes, content_type)
            .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
        let digest = match by_digest {
            Some(d) => {
                let computed = Digest::compute(d.algorithm(), &bytes)
                    .map_err(|e| ApiError::new(ErrorCode::DigestInvalid, e.to_string()))?;
                if computed != d {
                    return Err(ApiError::new(
                        ErrorCode::DigestInvalid,
                        format!("manifest digest {computed} does not match {d}"),
                    ));
                }
                d
            }
            None => Digest::sha256(&bytes),
        };
        for desc in manifest.blob_references() {
            let linked = self
                .storage
                .blob_linked(name, &desc.digest)
                .await
                .map_err(|e| ApiError::storage(e, ErrorCode::ManifestBlobUnknown))?;
            if !linked {
                return Err(ApiError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!("blob {} not in repository", desc.digest),
                )
                .with_detail(serde_json::json!({ "digest": desc.digest.to_string() })));
            }
        }
        for child in manifest.child_manifests() {
            let present = self
                .storage
                .manifest_get(name, &child.digest)
                .await
                .map_err(|e| ApiError::storage(e, ErrorCode::ManifestBlobUnknown))?
                .is_some();
            if !present {
                return Err(ApiError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!("manifest {} not in repository", child.digest),
                )
                .with_detail(serde_json::json!({ "digest": child.digest.to_string() })));
            }
        }
        let referrer = manifest.subject().map(|s| {
            (
                s.digest.clone(),
                Descriptor {
                    media_type: mtype.clone(),
                    digest: digest.clone(),
                    size: bytes.len() as u64,
                    urls: None,
                    annotations: manifest.annotations().cloned().filter(|a| !a.is_empty()),
                    data: None,
                    artifact_type: manifest.referrer_artifact_type(),
                    platform: None,
                },
            )
        });
        let subject = referrer.as_ref().map(|(s, _)| s.to_string());
        let condition = tag_condition(h);
        if tag.is_none() && condition != TagCondition::Any {
            let exists = self
                .storage
                .manifest_get(name, &digest)
                .await
                .map_err(|e| ApiError::storage(e, ErrorCode::ManifestUnknown))?
                .is_some();
            let current = if exists { vec![digest.clone()] } else { vec![] };
            if !condition_holds(&condition, &current) {
                return Err(ApiError::storage(
                    StorageError::PreconditionFailed {
                        current: exists.then(|| digest.to_string()),
                    },
                    ErrorCode::ManifestUnknown,
                ));
            }
        }
        let new = NewManifest {
            digest: digest.clone(),
            media_type: mtype,
            bytes,
            referrer,
        };
        self.storage
            .manifest_put(name, new, tag.map(|t| (t, condition)))
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::ManifestUnknown))?;
        let mut b = Response::builder()
            .status(StatusCode::CREATED)
            .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
            .header(DOCKER_CONTENT_DIGEST, digest.to_string())
            .header(header::ETAG, etag(&digest))
            .header(header::CONTENT_LENGTH, 0);
        if self.config.referrers_api
            && let Some(s) = subject
        {
            b = b.header(OCI_SUBJECT, s);
        }
        b.body(Body::empty()).map_err(internal)
    }

    async fn delete_manifest(&self, name: &str, reference: &str) -> ApiResult<Response> {
        let removed = if reference.contains(':') {
            let d = parse_digest(reference)?;
            self.storage.manifest_delete(name, &d).await
        } else if name::is_valid_tag(reference) {
            self.storage.tag_delete(name, reference).await
        } else {
            return Err(ApiError::new(
                ErrorCode::TagInvalid,
                format!("invalid tag {reference:?}"),
            ));
        }
        .map_err(|e| ApiError::storage(e, ErrorCode::ManifestUnknown))?;
        if removed {
            Ok(StatusCode::ACCEPTED.into_response())
        } else {
            Err(self.manifest_unknown(name, reference).await)
        }
    }

    // ---- blobs ----

    async fn get_blob(
        &self,
        name: &str,
        digest: &Digest,
        h: &HeaderMap,
        with_body: bool,
    ) -> ApiResult<Response> {
        let linked = self
            .storage
            .blob_linked(name, digest)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUnknown))?;
        if !linked {
            return Err(ApiError::new(
                ErrorCode::BlobUnknown,
                format!("blob {digest} not known"),
            ));
        }
        let size = self
            .storage
            .blob_size(digest)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUnknown))?
            .ok_or_else(|| {
                ApiError::new(ErrorCode::BlobUnknown, format!("blob {digest} not known"))
            })?;
        let range = match header_str(h, header::RANGE) {
            Some(v) => parse_range(v, size)?,
            None => None,
        };
        let mut b = Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(DOCKER_CONTENT_DIGEST, digest.to_string())
            .header(header::ETAG, etag(digest))
            .header(header::ACCEPT_RANGES, "bytes");
        let len = match range {
            Some(r) => {
                b = b.status(StatusCode::PARTIAL_CONTENT).header(
                    header::CONTENT_RANGE,
                    format!("bytes {}-{}/{size}", r.start, r.end),
                );
                r.end - r.start + 1
            }
            None => {
                b = b.status(StatusCode::OK);
                size
            }
        };
        b = b.header(header::CONTENT_LENGTH, len);
        if !with_body {
            return b.body(Body::empty()).map_err(internal);
        }
        let reader = self
            .storage
            .blob_read(digest, range)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUnknown))?;
        b.body(Body::from_stream(reader.body)).map_err(internal)
    }

    async fn delete_blob(&self, name: &str, digest: &Digest) -> ApiResult<Response> {
        let removed = self
            .storage
            .blob_unlink(name, digest)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUnknown))?;
        if removed {
            Ok(StatusCode::ACCEPTED.into_response())
        } else {
            Err(ApiError::new(
                ErrorCode::BlobUnknown,
                format!("blob {digest} not known"),
            ))
        }
    }

    // ---- uploads ----

    fn upload_response(
        &self,
        status: StatusCode,
        name: &str,
        id: &str,
        size: u64,
    ) -> ApiResult<Response> {
        Response::builder()
            .status(status)
            .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
            .header(header::RANGE, range_header(size))
            .header(DOCKER_UPLOAD_UUID, id)
            .header(header::CONTENT_LENGTH, 0)
            .body(Body::empty())
            .map_err(internal)
    }

    fn blob_created(&self, name: &str, digest: &Digest) -> ApiResult<Response> {
        Response::builder()
            .status(StatusCode::CREATED)
            .header(header::LOCATION, format!("/v2/{name}/blobs/{digest}"))
            .header(DOCKER_CONTENT_DIGEST, digest.to_string())
            .header(header::CONTENT_LENGTH, 0)
            .body(Body::empty())
            .map_err(internal)
    }

    async fn start_upload(
        &self,
        name: &str,
        q: &Query<'_>,
        h: &HeaderMap,
        body: Body,
    ) -> ApiResult<Response> {
        if let Some(mount) = query_get(q, "mount") {
            let digest = parse_digest(mount)?;
            if let Some(from) = query_get(q, "from")
                && name::validate_repository(from).is_ok()
                && self
                    .storage
                    .blob_linked(from, &digest)
                    .await
                    .map_err(|e| ApiError::storage(e, ErrorCode::BlobUnknown))?
            {
                self.storage
                    .blob_link(name, &digest)
                    .await
                    .map_err(|e| ApiError::storage(e, ErrorCode::BlobUnknown))?;
                return self.blob_created(name, &digest);
            }
        }
        let monolithic = match query_get(q, "digest") {
            Some(d) => Some(parse_digest(d)?),
            None => None,
        };
        let id = self
            .storage
            .upload_start(name)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUploadUnknown))?;
        let Some(digest) = monolithic else {
            return self.upload_response(StatusCode::ACCEPTED, name, &id, 0);
        };
        if let Err(e) = self.append(name, &id, None, h, body).await {
            let _ = self.storage.upload_cancel(name, &id).await;
            return Err(e);
        }
        self.storage
            .upload_commit(name, &id, &digest)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUploadUnknown))?;
        self.blob_created(name, &digest)
    }

    async fn append(
        &self,
        name: &str,
        id: &str,
        start: Option<u64>,
        h: &HeaderMap,
        body: Body,
    ) -> ApiResult<u64> {
        if header_str(h, header::CONTENT_LENGTH) == Some("0") {
            let status = self
                .storage
                .upload_status(name, id)
                .await
                .map_err(|e| ApiError::storage(e, ErrorCode::BlobUploadUnknown))?;
            if let Some(s) = start
                && s != status.size
            {
                return Err(ApiError::storage(
                    StorageError::RangeNotSatisfiable { size: status.size },
                    ErrorCode::BlobUploadUnknown,
                ));
            }
            return Ok(status.size);
        }
        self.storage
            .upload_append(name, id, start, body_stream(body))
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUploadUnknown))
    }

    async fn upload_status(&self, name: &str, id: &str) -> ApiResult<Response> {
        let st = self
            .storage
            .upload_status(name, id)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUploadUnknown))?;
        self.upload_response(StatusCode::NO_CONTENT, name, id, st.size)
    }

    async fn patch_upload(
        &self,
        name: &str,
        id: &str,
        h: &HeaderMap,
        body: Body,
    ) -> ApiResult<Response> {
        let start = content_range_start(h)?;
        let size = self.append(name, id, start, h, body).await?;
        self.upload_response(StatusCode::ACCEPTED, name, id, size)
    }

    async fn finish_upload(
        &self,
        name: &str,
        id: &str,
        q: &Query<'_>,
        h: &HeaderMap,
        body: Body,
    ) -> ApiResult<Response> {
        let Some(d) = query_get(q, "digest") else {
            return Err(ApiError::new(
                ErrorCode::DigestInvalid,
                "the digest query parameter is required",
            ));
        };
        let digest = parse_digest(d)?;
        let start = content_range_start(h)?;
        self.append(name, id, start, h, body).await?;
        self.storage
            .upload_commit(name, id, &digest)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::BlobUploadUnknown))?;
        self.blob_created(name, &digest)
    }

    // ---- listings ----

    async fn tags(&self, name: &str, q: &Query<'_>) -> ApiResult<Response> {
        let tags = self
            .storage
            .tag_list(name)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::NameUnknown))?;
        if tags.is_empty()
            && !self
                .storage
                .repository_exists(name)
                .await
                .map_err(|e| ApiError::storage(e, ErrorCode::NameUnknown))?
        {
            return Err(ApiError::new(
                ErrorCode::NameUnknown,
                format!("repository {name} not known"),
            ));
        }
        let (page, next) = paginate(tags, q)?;
        let body = serde_json::json!({ "name": name, "tags": page });
        list_response(
            body,
            next.map(|(n, last)| format!("/v2/{name}/tags/list?n={n}&last={last}")),
        )
    }

    async fn catalog(&self, q: &Query<'_>) -> ApiResult<Response> {
        let repos = self
            .storage
            .repositories()
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::NameUnknown))?;
        let (page, next) = paginate(repos, q)?;
        let body = serde_json::json!({ "repositories": page });
        list_response(
            body,
            next.map(|(n, last)| format!("/v2/_catalog?n={n}&last={last}")),
        )
    }

    async fn referrers(&self, name: &str, digest: &str, q: &Query<'_>) -> ApiResult<Response> {
        if !self.config.referrers_api {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                "the referrers API is disabled on this registry",
            )
            .with_status(StatusCode::NOT_FOUND));
        }
        let subject = parse_digest(digest)?;
        let mut list = self
            .storage
            .referrers(name, &subject)
            .await
            .map_err(|e| ApiError::storage(e, ErrorCode::NameUnknown))?;
        let filters: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k == "artifactType")
            .map(|(_, v)| v.as_ref())
            .collect();
        if !filters.is_empty() {
            list.retain(|d| {
                d.artifact_type
                    .as_deref()
                    .is_some_and(|t| filters.contains(&t))
            });
        }
        if let Some(last) = query_get(q, "last") {
            let last = parse_digest(last)?;
            list.retain(|d| d.digest > last);
        }
        let page_size = self.config.referrers_page_size.max(1);
        let next = (list.len() > page_size).then(|| list[page_size - 1].digest.clone());
        list.truncate(page_size);
        let mut index = ImageIndex::empty();
        index.manifests = list;
        let mut b = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, media_type::OCI_INDEX);
        if !filters.is_empty() {
            b = b.header(OCI_FILTERS_APPLIED, "artifactType");
        }
        if let Some(last) = next {
            let mut link = url::form_urlencoded::Serializer::new(String::new());
            for f in &filters {
                link.append_pair("artifactType", f);
            }
            link.append_pair("last", &last.to_string());
            b = b.header(
                header::LINK,
                format!(
                    "</v2/{name}/referrers/{subject}?{}>; rel=\"next\"",
                    link.finish()
                ),
            );
        }
        b.body(Body::from(index.to_bytes())).map_err(internal)
    }
}

fn internal(e: http::Error) -> ApiError {
    tracing::error!(error = %e, "cannot build response");
    ApiError::new(ErrorCode::Internal, "internal error")
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::SizeInvalid,
        format!("manifest larger than {max} bytes"),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// Reads a manifest body of at most `max` bytes. A larger body is drained (up to a bound, so the
/// client sees the 413 instead of a reset connection) and answered with 413 and `Connection: close`.
async fn read_limited(body: Body, max: usize) -> ApiResult<Bytes> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::ManifestInvalid,
                format!("request body failed: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > max {
            let mut drained = (buf.len() + chunk.len()) as u64;
            let bound = (max as u64).saturating_mul(16).max(64 * 1024 * 1024);
            let drain = async {
                while let Some(Ok(c)) = stream.next().await {
                    drained += c.len() as u64;
                    if drained > bound {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
            return Err(too_large(max).with_header(header::CONNECTION, "close"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Parses `Content-Range: <start>-<end>` (also tolerating a `bytes ` / `bytes=` prefix and `/size`).
fn content_range_start(h: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(v) = header_str(h, header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!("invalid Content-Range {v:?}"),
        )
    };
    let s = v
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(ApiError::new(
            ErrorCode::RangeInvalid,
            format!("invalid Content-Range {v:?}"),
        ));
    }
    if let Some(len) = header_str(h, header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok())
        && len != end - start + 1
    {
        return Err(ApiError::new(
            ErrorCode::RangeInvalid,
            format!("Content-Range {v:?} does not match Content-Length {len}"),
        ));
    }
    Ok(Some(start))
}

/// Parses a blob GET `Range` header (RFC 9110, a single range). Unparsable headers are ignored (full
/// content); ranges outside the blob are answered with 416.
fn parse_range(v: &str, size: u64) -> ApiResult<Option<ByteRange>> {
    let unsatisfiable = || {
        ApiError::new(
            ErrorCode::RangeInvalid,
            format!("range {v:?} not satisfiable for {size} bytes"),
        )
        .with_header(header::CONTENT_RANGE, &format!("bytes */{size}"))
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: serve the whole blob
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        ByteRange {
            start: size.saturating_sub(n),
            end: size - 1,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return Ok(None);
        };
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            let Ok(e) = b.parse::<u64>() else {
                return Ok(None);
            };
            if e < start {
                return Err(unsatisfiable());
            }
            e.min(size.saturating_sub(1))
        };
        if start >= size {
            return Err(unsatisfiable());
        }
        ByteRange { start, end }
    };
    Ok(Some(range))
}

/// Entity tags in an `If-Match` / `If-None-Match` list, as digests (unparsable ones dropped).
fn etag_digests(v: &str) -> Vec<Digest> {
    v.split(',')
        .filter_map(|t| {
            let t = t.trim().trim_start_matches("W/").trim_matches('"');
            Digest::parse(t).ok()
        })
        .collect()
}

fn etag_list_matches(v: &str, d: &Digest) -> bool {
    v.trim() == "*" || etag_digests(v).contains(d)
}

fn tag_condition(h: &HeaderMap) -> TagCondition {
    if let Some(v) = header_str(h, header::IF_MATCH) {
        if v.trim() == "*" {
            return TagCondition::Exists;
        }
        return TagCondition::CurrentIs(etag_digests(v));
    }
    if let Some(v) = header_str(h, header::IF_NONE_MATCH) {
        if v.trim() == "*" {
            return TagCondition::Absent;
        }
        return TagCondition::CurrentIsNot(etag_digests(v));
    }
    TagCondition::Any
}

fn condition_holds(c: &TagCondition, current: &[Digest]) -> bool {
    match c {
        TagCondition::Any => true,
        TagCondition::Absent => current.is_empty(),
        TagCondition::Exists => !current.is_empty(),
        TagCondition::CurrentIs(list) => current.iter().any(|d| list.contains(d)),
        TagCondition::CurrentIsNot(list) => !current.iter().any(|d| list.contains(d)),
    }
}

/// Where the next page of a listing starts: (n, last).
type NextPage = (usize, String);

/// Applies `n` / `last` to a sorted list. Returns the page and, when more remain, (n, last) for `Link`.
fn paginate(items: Vec<String>, q: &Query<'_>) -> ApiResult<(Vec<String>, Option<NextPage>)> {
    let n = match query_get(q, "n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(ErrorCode::Unsupported, format!("invalid n {v:?}"))
                .with_status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    let mut items: Vec<String> = match query_get(q, "last") {
        Some(last) => items.into_iter().filter(|t| t.as_str() > last).collect(),
        None => items,
    };
    match n {
        Some(0) => Ok((Vec::new(), None)),
        Some(n) if items.len() > n => {
            items.truncate(n);
            let last = items.last().cloned().unwrap_or_default();
            Ok((items, Some((n, last))))
        }
        _ => Ok((items, None)),
    }
}

fn list_response(body: serde_json::Value, next: Option<String>) -> ApiResult<Response> {
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(link) = next {
        b = b.header(header::LINK, format!("<{link}>; rel=\"next\""));
    }
    b.body(Body::from(body.to_string())).map_err(internal)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn blob_ranges() {
        assert_eq!(
            parse_range("bytes=0-9", 100).unwrap(),
            Some(ByteRange { start: 0, end: 9 })
        );
        assert_eq!(
            parse_range("bytes=90-", 100).unwrap(),
            Some(ByteRange { start: 90, end: 99 })
        );
        assert_eq!(
            parse_range("bytes=-10", 100).unwrap(),
            Some(ByteRange { start: 90, end: 99 })
        );
        assert_eq!(
            parse_range("bytes=50-1000", 100).unwrap(),
            Some(ByteRange { start: 50, end: 99 })
        );
        assert!(parse_range("bytes=500-0", 100).is_err());
        assert!(parse_range("bytes=5000-10000", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=x-y", 100).unwrap(), None);
    }

    #[test]
    fn conditions_from_headers() {
        let d = Digest::sha256(b"x");
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_str(&etag(&d)).unwrap());
        assert_eq!(tag_condition(&h), TagCondition::CurrentIs(vec![d.clone()]));
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(tag_condition(&h), TagCondition::Absent);
        assert!(condition_holds(&TagCondition::Absent, &[]));
        assert!(!condition_holds(
            &TagCondition::CurrentIs(vec![]),
            std::slice::from_ref(&d)
        ));
        assert!(etag_list_matches(&format!("W/{}, \"junk\"", etag(&d)), &d));
    }

    #[test]
    fn pagination() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let q: Query<'_> = vec![("n".into(), "2".into())];
        let (p, next) = paginate(items.clone(), &q).unwrap();
        assert_eq!(p, ["a", "b"]);
        assert_eq!(next, Some((2, "b".to_owned())));
        let q: Query<'_> = vec![("n".into(), "2".into()), ("last".into(), "b".into())];
        let (p, next) = paginate(items.clone(), &q).unwrap();
        assert_eq!(p, ["c", "d"]);
        assert_eq!(next, None);
        let q: Query<'_> = vec![("n".into(), "0".into())];
        assert_eq!(paginate(items, &q).unwrap(), (vec![], None));
    }
}
