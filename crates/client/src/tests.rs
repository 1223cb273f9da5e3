//! End-to-end tests of the client against an in-process mock registry (axum) with Basic or Bearer
//! auth, `Link` pagination and a token endpoint, pinning request counts.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sigil_oci::{Digest, Reference, media_type};

use crate::auth::Credential;
use crate::{
    ClientError, ClientOptions, CopyOptions, ImageRef, OciLayout, PutCondition, RegistryClient,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Basic,
    Bearer,
}

struct Mock {
    auth: Auth,
    addr: String,
    blobs: HashMap<String, Bytes>,
    manifests: HashMap<(String, String), (Bytes, String)>,
    uploads: HashMap<String, String>,
    tags_per_page: usize,
    corrupt_blobs: bool,
    log: Vec<String>,
    next_id: u64,
    partial: HashMap<String, Vec<u8>>,
    patches: usize,
    /// Whether `POST /token` implements the OAuth2 refresh-token grant (else 404).
    oauth: bool,
    /// Refresh tokens received by `POST /token`, in order.
    refresh_tokens: Vec<String>,
}

type Shared = Arc<Mutex<Mock>>;

const USER: &str = "u";
const PASS: &str = "p";

fn err(status: StatusCode, code: &str, msg: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        format!(r#"{{"errors":[{{"code":"{code}","message":"{msg}"}}]}}"#),
    )
        .into_response()
}

async fn handle(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut m = st.lock().unwrap();
    let path = uri.path().to_owned();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    m.log.push(format!("{method} {path}"));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let basic = Credential::new(USER, PASS).basic_header();
    if path == "/token" && method == Method::POST {
        if !m.oauth {
            return StatusCode::NOT_FOUND.into_response();
        }
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let rt = form.get("refresh_token").cloned().unwrap_or_default();
        m.refresh_tokens.push(rt.clone());
        if form.get("grant_type").map(String::as_str) != Some("refresh_token")
            || form.get("service").map(String::as_str) != Some("mock")
            || !form.contains_key("client_id")
            || !(rt == "rt-1" || rt == "rt-2")
        {
            return err(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "bad refresh token",
            );
        }
        let scope = form.get("scope").cloned().unwrap_or_default();
        return (
            [("content-type", "application/json")],
            format!(
                r#"{{"access_token":"tok|user|{scope}","refresh_token":"rt-2","expires_in":300}}"#
            ),
        )
            .into_response();
    }
    if path == "/token" {
        let identity = Credential::new("<token>", "rt-1").basic_header();
        if !auth.is_empty() && auth != basic && auth != identity {
            return err(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials");
        }
        let scope = query.get("scope").cloned().unwrap_or_default();
        let who = if auth.is_empty() { "anon" } else { "user" };
        return (
            [("content-type", "application/json")],
            format!(r#"{{"access_token":"tok|{who}|{scope}","expires_in":300}}"#),
        )
            .into_response();
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let pushing = matches!(
        method,
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    match m.auth {
        Auth::None => {}
        Auth::Basic => {
            if auth != basic {
                return (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", r#"Basic realm="mock""#)],
                    "",
                )
                    .into_response();
            }
        }
        Auth::Bearer => {
            let ok = auth.strip_prefix("Bearer tok|").is_some_and(|t| {
                let (who, scope) = t.split_once('|').unwrap_or(("", ""));
                // Anonymous tokens only pull; pushes need the user and a push scope.
                !pushing || (who == "user" && scope.contains("push"))
            });
            if !ok {
                let repo = rest
                    .split("/blobs/")
                    .next()
                    .unwrap_or("")
                    .split("/manifests/")
                    .next()
                    .unwrap_or("");
                let action = if pushing { "pull,push" } else { "pull" };
                let ch = format!(
                    r#"Bearer realm="http://{}/token",service="mock",scope="repository:{repo}:{action}""#,
                    m.addr
                );
                return (StatusCode::UNAUTHORIZED, [("www-authenticate", ch)], "").into_response();
            }
        }
    }
    if let Some((repo, reference)) = rest.split_once("/manifests/") {
        let key = (repo.to_owned(), reference.to_owned());
        return match method {
            Method::GET | Method::HEAD => match m.manifests.get(&key) {
                Some((b, ct)) => {
                    let d = Digest::sha256(b).to_string();
                    let body = if method == Method::HEAD {
                        Bytes::new()
                    } else {
                        b.clone()
                    };
                    let mut r = (
                        [
                            ("content-type", ct.clone()),
                            ("docker-content-digest", d.clone()),
                            ("etag", format!("\"{d}\"")),
                        ],
                        body,
                    )
                        .into_response();
                    if method == Method::HEAD {
                        r.headers_mut().insert("content-length", b.len().into());
                    }
                    r
                }
                None => err(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                ),
            },
            Method::PUT => {
                if let Some(im) = headers.get("if-match").and_then(|v| v.to_str().ok()) {
                    let cur = m
                        .manifests
                        .get(&key)
                        .map(|(b, _)| format!("\"{}\"", Digest::sha256(b)));
                    if cur.as_deref() != Some(im) {
                        return StatusCode::PRECONDITION_FAILED.into_response();
                    }
                }
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let d = Digest::sha256(&body);
                m.manifests.insert(key, (body.clone(), ct.clone()));
                m.manifests
                    .insert((repo.to_owned(), d.to_string()), (body, ct));
                (
                    StatusCode::CREATED,
                    [("docker-content-digest", d.to_string())],
                )
                    .into_response()
            }
            _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        };
    }
    if let Some((repo, tail)) = rest.split_once("/blobs/uploads/") {
        if method == Method::POST {
            if let (Some(d), Some(_from)) = (query.get("mount"), query.get("from"))
                && m.blobs.contains_key(d)
            {
                return StatusCode::CREATED.into_response();
            }
            m.next_id += 1;
            let id = format!("u{}", m.next_id);
            m.uploads.insert(id.clone(), repo.to_owned());
            // Relative Location with its own query, as distribution does.
            let loc = format!("/v2/{repo}/blobs/uploads/{id}?_state=abc");
            return (StatusCode::ACCEPTED, [("location", loc)]).into_response();
        }
        if method == Method::PATCH {
            let Some(repo_of) = m.uploads.get(tail).cloned() else {
                return err(
                    StatusCode::NOT_FOUND,
                    "BLOB_UPLOAD_UNKNOWN",
                    "upload unknown",
                );
            };
            let have = m.partial.entry(tail.to_owned()).or_default();
            let want = format!("{}-{}", have.len(), have.len() + body.len() - 1);
            if headers.get("content-range").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
                return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            }
            have.extend_from_slice(&body);
            let end = have.len() - 1;
            m.patches += 1;
            let loc = format!("/v2/{repo_of}/blobs/uploads/{tail}?_state=abc");
            return (
                StatusCode::ACCEPTED,
                [("location", loc), ("range", format!("0-{end}"))],
            )
                .into_response();
        }
        if method == Method::PUT {
            let mut body = body;
            if let Some(p) = m.partial.remove(tail) {
                let mut all = p;
                all.extend_from_slice(&body);
                body = Bytes::from(all);
            }
            if m.uploads.remove(tail).is_none()
                || query.get("_state").map(String::as_str) != Some("abc")
            {
                return err(
                    StatusCode::NOT_FOUND,
                    "BLOB_UPLOAD_UNKNOWN",
                    "upload unknown",
                );
            }
            let Some(d) = query.get("digest") else {
                return err(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "no digest");
            };
            if Digest::sha256(&body).to_string() != *d {
                return err(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "digest mismatch");
            }
            m.blobs.insert(d.clone(), body);
            return StatusCode::CREATED.into_response();
        }
    }
    if let Some((_repo, d)) = rest.split_once("/blobs/") {
        return match m.blobs.get(d) {
            Some(b) => {
                let mut b = b.clone();
                if m.corrupt_blobs {
                    let mut v = b.to_vec();
                    v[0] ^= 1;
                    b = Bytes::from(v);
                }
                let len = b.len();
                let mut r = if method == Method::HEAD {
                    Bytes::new()
                } else {
                    b
                }
                .into_response();
                r.headers_mut().insert("content-length", len.into());
                r
            }
            None => err(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown"),
        };
    }
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        let mut tags: Vec<String> = m
            .manifests
            .keys()
            .filter(|(r, t)| r == repo && !t.contains(':'))
            .map(|(_, t)| t.clone())
            .collect();
        tags.sort();
        // Inclusive `last` like distribution 2.8, to exercise de-duplication.
        let start = query
            .get("last")
            .and_then(|l| tags.iter().position(|t| t == l))
            .unwrap_or(0);
        let n = m.tags_per_page;
        let page: Vec<String> = tags.iter().skip(start).take(n).cloned().collect();
        let mut r = (
            [("content-type", "application/json")],
            serde_json::json!({"name": repo, "tags": page}).to_string(),
        )
            .into_response();
        if start + n < tags.len()
            && let Some(last) = page.last()
        {
            r.headers_mut().insert(
                "link",
                format!("</v2/{repo}/tags/list?n={n}&last={last}>; rel=\"next\"")
                    .parse()
                    .unwrap(),
            );
        }
        return r;
    }
    if rest.contains("/referrers/") {
        return (StatusCode::NOT_FOUND, "404 page not found").into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

async fn start(auth: Auth) -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let st = Arc::new(Mutex::new(Mock {
        auth,
        addr: addr.clone(),
        blobs: HashMap::new(),
        manifests: HashMap::new(),
        uploads: HashMap::new(),
        tags_per_page: 2,
        corrupt_blobs: false,
        log: Vec::new(),
        next_id: 0,
        partial: HashMap::new(),
        patches: 0,
        oauth: true,
        refresh_tokens: Vec::new(),
    }));
    let app = axum::Router::new().fallback(handle).with_state(st.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, st)
}

fn client(addr: &str, creds: bool) -> RegistryClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    RegistryClient::new(ClientOptions {
        load_auth_file: false,
        credentials: if creds {
            vec![(addr.to_owned(), Credential::new(USER, PASS))]
        } else {
            Vec::new()
        },
        ..ClientOptions::default()
    })
    .unwrap()
}

/// Pushes a 2-layer image; returns (manifest bytes, digest).
async fn push_image(c: &RegistryClient, repo: &Reference, seed: u8) -> (Bytes, Digest) {
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#
    ));
    let l1 = Bytes::from(vec![seed; 3000]);
    let l2 = Bytes::from(vec![seed.wrapping_add(1); 5000]);
    let mut descs = Vec::new();
    for b in [&config, &l1, &l2] {
        let d = Digest::sha256(b);
        c.push_blob(repo, &d, Some(b.len() as u64), b.clone().into())
            .await
            .unwrap();
        descs.push((d, b.len()));
    }
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}},{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        descs[0].0,
        descs[0].1,
        media_type::OCI_LAYER_GZIP,
        descs[1].0,
        descs[1].1,
        media_type::OCI_LAYER_GZIP,
        descs[2].0,
        descs[2].1
    );
    let bytes = Bytes::from(m);
    let r = c
        .put_manifest(
            repo,
            bytes.clone(),
            media_type::OCI_MANIFEST,
            PutCondition::None,
        )
        .await
        .unwrap();
    (bytes, r.digest)
}

#[tokio::test]
async fn bearer_flow_caches_tokens_and_counts_requests() {
    let (addr, st) = start(Auth::Bearer).await;
    let c = client(&addr, true);
    let repo = Reference::parse(&format!("{addr}/demo/app:v1")).unwrap();
    // Not found: 401, token, retry.
    let e = c.get_manifest(&repo).await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e}");
    assert_eq!(e.summary(), "manifest unknown (404 MANIFEST_UNKNOWN)");
    assert_eq!(c.request_count(), 3);
    // Cached pull token: one request.
    assert!(c.head_manifest(&repo).await.unwrap().is_none());
    assert_eq!(c.request_count(), 4);
    let before = c.request_count();
    let (bytes, digest) = push_image(&c, &repo, 7).await;
    // blob 1: HEAD (cached pull token, 404), token (push scope, fetched before the POST since the
    // registry is known to want Bearer), POST, PUT = 4; blobs 2, 3: HEAD, POST, PUT; manifest PUT = 1.
    assert_eq!(
        c.request_count() - before,
        4 + 3 + 3 + 1,
        "{:#?}",
        st.lock().unwrap().log
    );
    let got = c.get_manifest(&repo).await.unwrap();
    assert_eq!(got.bytes, bytes);
    assert_eq!(got.digest, digest);
    assert_eq!(got.media_type, media_type::OCI_MANIFEST);
    assert_eq!(got.etag.as_deref(), Some(format!("\"{digest}\"").as_str()));
    let head = c.head_manifest(&repo).await.unwrap().unwrap();
    assert_eq!(
        (head.digest, head.size),
        (digest.clone(), bytes.len() as u64)
    );
    // Conditional PUT with a stale ETag: 412.
    let e = c
        .put_manifest(
            &repo,
            bytes.clone(),
            media_type::OCI_MANIFEST,
            PutCondition::IfMatch("\"nope\"".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::PreconditionFailed { .. }), "{e}");
    c.put_manifest(
        &repo,
        bytes,
        media_type::OCI_MANIFEST,
        PutCondition::IfMatch(format!("\"{digest}\"")),
    )
    .await
    .unwrap();
    // Referrers: distribution-style text 404.
    let e = c.get_referrers(&repo, &digest, None).await.unwrap_err();
    assert!(
        matches!(e, ClientError::ReferrersUnsupported { code: None, .. }),
        "{e}"
    );
    let log = st.lock().unwrap().log.clone();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("GET /token")).count(),
        2,
        "{log:#?}"
    );
}

#[tokio::test]
async fn bearer_without_credentials_cannot_push() {
    let (addr, _st) = start(Auth::Bearer).await;
    let c = client(&addr, false);
    let repo = Reference::parse(&format!("{addr}/demo/app:v1")).unwrap();
    let d = Digest::sha256(b"x");
    let e = c
        .push_blob(&repo, &d, Some(1), Bytes::from_static(b"x").into())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Unauthorized { status: 401, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn basic_flow_sends_credentials_preemptively() {
    let (addr, _st) = start(Auth::Basic).await;
    let repo = Reference::parse(&format!("{addr}/demo/app:v1")).unwrap();
    let anon = client(&addr, false);
    let e = anon.get_manifest(&repo).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert_eq!(anon.request_count(), 1);
    let c = client(&addr, true);
    assert!(c.head_manifest(&repo).await.unwrap().is_none());
    assert_eq!(c.request_count(), 2);
    assert!(c.head_manifest(&repo).await.unwrap().is_none());
    assert_eq!(c.request_count(), 3);
}

#[tokio::test]
async fn tags_follow_links_and_dedupe() {
    let (addr, _st) = start(Auth::None).await;
    let c = client(&addr, false);
    let repo = Reference::parse(&format!("{addr}/demo/app")).unwrap();
    let (bytes, _) = push_image(&c, &repo.with_tag("a"), 1).await;
    for t in ["b", "c", "d", "e"] {
        c.put_manifest(
            &repo.with_tag(t),
            bytes.clone(),
            media_type::OCI_MANIFEST,
            PutCondition::None,
        )
        .await
        .unwrap();
    }
    let before = c.request_count();
    let tags = c.list_tags(&repo, Some(2)).await.unwrap();
    assert_eq!(tags, ["a", "b", "c", "d", "e"]);
    // Pages: [a,b] [b,c] [c,d] [d,e] (inclusive last).
    assert_eq!(c.request_count() - before, 4);
}

#[tokio::test]
async fn copy_registry_layout_registry_is_byte_exact() {
    let (addr, st) = start(Auth::None).await;
    let c = client(&addr, false);
    let src = Reference::parse(&format!("{addr}/demo/app:v1")).unwrap();
    let (bytes, digest) = push_image(&c, &src, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let lay = ImageRef::parse(&format!("oci:{}", dir.path().join("lay").display())).unwrap();
    let events = Arc::new(Mutex::new(0u64));
    let ev = events.clone();
    let opts = CopyOptions {
        progress: Some(Arc::new(move |e| {
            if let crate::CopyEvent::BlobProgress { bytes, .. } = e {
                *ev.lock().unwrap() += bytes;
            }
        })),
        ..CopyOptions::default()
    };
    let r = c
        .copy(&ImageRef::Registry(src.clone()), &lay, &opts)
        .await
        .unwrap();
    assert_eq!(r.digest, digest);
    assert_eq!(r.tag.as_deref(), Some("v1"));
    assert_eq!((r.blobs_copied, r.blobs_skipped, r.manifests), (3, 0, 1));
    assert_eq!(*events.lock().unwrap(), r.bytes_copied);
    let l = OciLayout::open(dir.path().join("lay")).unwrap();
    assert_eq!(l.get_manifest(Some("v1")).await.unwrap().bytes, bytes);

    // Layout -> another repository, then again (all skipped), then a cross-repo copy (mounted).
    let dst = ImageRef::parse(&format!("{addr}/other/app")).unwrap();
    let r = c.copy(&lay, &dst, &CopyOptions::default()).await.unwrap();
    assert_eq!(
        (r.digest.clone(), r.tag.as_deref()),
        (digest.clone(), Some("v1"))
    );
    let before = c.request_count();
    let r = c.copy(&lay, &dst, &CopyOptions::default()).await.unwrap();
    assert_eq!(r.blobs_skipped, 3);
    assert_eq!(c.request_count() - before, 3 + 1);
    let third = ImageRef::parse(&format!("{addr}/third/app:x")).unwrap();
    let before = c.request_count();
    let r = c
        .copy(&ImageRef::Registry(src), &third, &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(r.blobs_mounted, 3);
    assert_eq!(c.request_count() - before, 1 + 3 + 1);
    let got = c
        .get_manifest(&Reference::parse(&format!("{addr}/third/app:x")).unwrap())
        .await
        .unwrap();
    assert_eq!(got.bytes, bytes);

    // A registry serving corrupted blobs is caught while streaming.
    st.lock().unwrap().corrupt_blobs = true;
    let dir2 = tempfile::tempdir().unwrap();
    let lay2 = ImageRef::parse(&format!("oci:{}", dir2.path().display())).unwrap();
    let e = c
        .copy(&third, &lay2, &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::DigestMismatch { .. }), "{e}");
    // A corrupted layout blob is caught while streaming to the registry, and reported as such.
    let lay_dir = dir.path().join("lay");
    let layer = Digest::sha256(&vec![4u8; 5000]);
    std::fs::write(
        lay_dir.join("blobs/sha256").join(layer.encoded()),
        vec![5u8; 5000],
    )
    .unwrap();
    let fresh = ImageRef::parse(&format!("{addr}/fresh/app:x")).unwrap();
    st.lock().unwrap().blobs.clear();
    st.lock().unwrap().corrupt_blobs = false;
    let e = c
        .copy(&lay, &fresh, &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::DigestMismatch { .. }), "{e}");
    assert!(!st.lock().unwrap().blobs.contains_key(&layer.to_string()));
}

#[tokio::test]
async fn chunked_push() {
    let (addr, st) = start(Auth::Bearer).await;
    let c = client(&addr, true);
    let repo = Reference::parse(&format!("{addr}/demo/chunked")).unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256(&data);
    let parts: Vec<Result<Bytes, ClientError>> = data
        .chunks(777)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    c.push_blob_chunked(&repo, &digest, futures::stream::iter(parts), 4096)
        .await
        .unwrap();
    assert_eq!(st.lock().unwrap().patches, 3);
    let back = c.get_blob_bytes(&repo, &digest, 1 << 20).await.unwrap();
    assert_eq!(&back[..], &data[..]);
    assert_eq!(c.head_blob(&repo, &digest).await.unwrap(), Some(10_000));
}

/// Against a real registry when `SIGIL_TEST_REGISTRY=host:port` is set (e.g. Debian's docker-registry from
/// `shared/oracles/registry-up.sh`); skipped otherwise.
#[tokio::test]
async fn real_registry_when_configured() {
    let Ok(addr) = std::env::var("SIGIL_TEST_REGISTRY") else {
        return;
    };
    let c = client(&addr, false);
    let repo = Reference::parse(&format!("{addr}/sigil-client-test/app:v1")).unwrap();
    let (bytes, digest) = push_image(&c, &repo, 99).await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let d = Digest::sha256(&data);
    let parts: Vec<Result<Bytes, ClientError>> = data
        .chunks(10_000)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    c.push_blob_chunked(&repo, &d, futures::stream::iter(parts), 32_768)
        .await
        .unwrap();
    assert_eq!(c.head_blob(&repo, &d).await.unwrap(), Some(100_000));
    let other = Reference::parse(&format!("{addr}/sigil-client-test/other")).unwrap();
    assert!(
        c.mount_blob(&other, &repo.repository, &d)
            .await
            .unwrap()
            .is_mounted()
    );
    let got = c.get_manifest(&repo).await.unwrap();
    assert_eq!((got.bytes, got.digest.clone()), (bytes, digest.clone()));
    assert!(
        c.list_tags(&repo, Some(1))
            .await
            .unwrap()
            .contains(&"v1".to_owned())
    );
    assert!(
        c.catalog(&addr, Some(1))
            .await
            .unwrap()
            .contains(&repo.repository)
    );
    let e = c.get_referrers(&repo, &digest, None).await.unwrap_err();
    assert!(matches!(e, ClientError::ReferrersUnsupported { .. }), "{e}");
    c.delete_manifest(&repo.with_digest(digest.clone()))
        .await
        .unwrap();
    assert!(c.head_manifest(&repo).await.unwrap().is_none());
    c.delete_blob(&other, &d).await.unwrap();
    let e = c.get_manifest(&repo).await.unwrap_err();
    assert_eq!(e.summary(), "manifest unknown (404 MANIFEST_UNKNOWN)");
}

/// A client that reads `config` as its auth file.
fn client_with_config(dir: &tempfile::TempDir, config: &str) -> RegistryClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config).unwrap();
    RegistryClient::new(ClientOptions {
        auth_file: Some(path),
        ..ClientOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn identity_token_uses_oauth2_refresh_post_and_rotates() {
    let (addr, st) = start(Auth::Bearer).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client_with_config(
        &dir,
        &format!(r#"{{"auths":{{"{addr}":{{"identitytoken":"rt-1"}}}}}}"#),
    );
    assert!(c.has_credentials(&addr));
    // Pushing needs a "user" token with push scope: only the refresh-token POST can give one.
    push_image(
        &c,
        &Reference::parse(&format!("{addr}/oauth/one:1")).unwrap(),
        1,
    )
    .await;
    push_image(
        &c,
        &Reference::parse(&format!("{addr}/oauth/two:1")).unwrap(),
        2,
    )
    .await;
    let m = st.lock().unwrap();
    assert!(m.log.iter().any(|l| l == "POST /token"), "{:?}", m.log);
    assert!(!m.log.iter().any(|l| l == "GET /token"), "{:?}", m.log);
    // The first exchange uses the identity token, later ones the rotated refresh token.
    assert_eq!(m.refresh_tokens.first().map(String::as_str), Some("rt-1"));
    assert!(m.refresh_tokens.len() >= 2, "{:?}", m.refresh_tokens);
    assert!(
        m.refresh_tokens[1..].iter().all(|t| t == "rt-2"),
        "{:?}",
        m.refresh_tokens
    );
}

#[tokio::test]
async fn identity_token_falls_back_to_get_when_post_is_404() {
    let (addr, st) = start(Auth::Bearer).await;
    st.lock().unwrap().oauth = false;
    let dir = tempfile::tempdir().unwrap();
    let c = client_with_config(
        &dir,
        &format!(r#"{{"auths":{{"{addr}":{{"identitytoken":"rt-1"}}}}}}"#),
    );
    push_image(
        &c,
        &Reference::parse(&format!("{addr}/oauth/get:1")).unwrap(),
        3,
    )
    .await;
    let m = st.lock().unwrap();
    let post = m.log.iter().position(|l| l == "POST /token").unwrap();
    let get = m.log.iter().position(|l| l == "GET /token").unwrap();
    assert!(post < get, "{:?}", m.log);
}

#[tokio::test]
async fn rejected_refresh_token_fails_without_get_fallback() {
    let (addr, st) = start(Auth::Bearer).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client_with_config(
        &dir,
        &format!(r#"{{"auths":{{"{addr}":{{"identitytoken":"revoked"}}}}}}"#),
    );
    let r = Reference::parse(&format!("{addr}/oauth/bad:1")).unwrap();
    let e = c.get_manifest(&r).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("bad refresh token"), "{e}");
    assert!(!st.lock().unwrap().log.iter().any(|l| l == "GET /token"));
}

#[tokio::test]
async fn explicit_credentials_win_over_credential_helpers() {
    // The auth file names a helper that does not exist: it must not even be run, since explicit
    // credentials take precedence over everything.
    let (addr, _st) = start(Auth::Basic).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"credsStore":"sigil-absent-helper"}"#).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = RegistryClient::new(ClientOptions {
        auth_file: Some(path.clone()),
        credentials: vec![(addr.clone(), Credential::new(USER, PASS))],
        ..ClientOptions::default()
    })
    .unwrap();
    push_image(
        &c,
        &Reference::parse(&format!("{addr}/explicit/app:1")).unwrap(),
        4,
    )
    .await;
    // Without them the helper runs, and its absence is a clear error naming it (cached for clones).
    let c = RegistryClient::new(ClientOptions {
        auth_file: Some(path),
        ..ClientOptions::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{addr}/explicit/app:1")).unwrap();
    let e = c.get_manifest(&r).await.unwrap_err().to_string();
    assert!(e.contains("docker-credential-sigil-absent-helper"), "{e}");
    let e2 = c.clone().get_manifest(&r).await.unwrap_err().to_string();
    assert_eq!(e, e2);
}
