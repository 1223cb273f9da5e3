//! Conformance of `sigil registry serve` with distribution-spec v1.1.1 (endpoints end-1 … end-13, the
//! referrers API, error codes) plus sigil's extras (conditional manifest PUTs, htpasswd auth, TLS,
//! manifest size limit). Written from the spec text; every test runs its own server.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::*;

fn server() -> (SigilRegistry, Http) {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    (reg, http)
}

fn random(seed: u64, n: usize) -> Vec<u8> {
    Rng::new(seed).bytes(n)
}

async fn json_body(r: reqwest::Response) -> Value {
    let url = r.url().to_string();
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text}"))
}

// ---- end-1 -----------------------------------------------------------------------------------------------

#[tokio::test]
async fn base_endpoint_answers_200_with_api_version() {
    let (_reg, http) = server();
    let r = http.get("/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
}

// ---- blob uploads (end-4a/4b, end-5, end-6, end-13) ------------------------------------------------------

#[tokio::test]
async fn blob_monolithic_post_then_put() {
    let (_reg, http) = server();
    let data = random(1, 10_000);
    let digest = digest_of(&data);
    let loc1 = http.start_upload("mono/app").await;
    let loc2 = http.start_upload("mono/app").await;
    assert_ne!(loc1, loc2, "two upload sessions share a Location");

    let r = http
        .put(&with_query(&loc1, &format!("digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let blob_loc = header(&r, "location").expect("201 without Location");
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );

    // The Location of a completed upload is a pullable URL.
    let r = http.get(&blob_loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "GET {blob_loc}");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    let r = http
        .get(&format!("/v2/mono/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "content-length").as_deref(),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    let r = http
        .head(&format!("/v2/mono/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "content-length").as_deref(),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    assert!(r.bytes().await.unwrap().is_empty(), "HEAD with a body");
}

#[tokio::test]
async fn blob_single_post_with_digest() {
    let (_reg, http) = server();
    let data = random(2, 3000);
    let digest = digest_of(&data);
    let r = http
        .post(&format!("/v2/single/blobs/uploads/?digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let loc = header(&r, "location").expect("POST ?digest= without Location");
    match r.status() {
        StatusCode::CREATED => {}
        StatusCode::ACCEPTED => {
            // Single-POST unsupported: the spec says continue with PUT on the session.
            let r = http
                .put(&with_query(
                    &http.resolve(&loc),
                    &format!("digest={digest}"),
                ))
                .header("Content-Type", "application/octet-stream")
                .body(data.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        s => panic!("POST ?digest= answered {s}"),
    }
    let (st, body) = http.get_blob("single", &digest).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, data);
}

/// Chunk size honouring `OCI-Chunk-Min-Length` when the registry announces one.
fn chunk_size(r: &reqwest::Response, want: usize) -> usize {
    header(r, "oci-chunk-min-length")
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(want, |m| m.max(want))
}

#[tokio::test]
async fn blob_chunked_upload_with_content_range() {
    let (_reg, http) = server();
    let r = http
        .post("/v2/chunked/blobs/uploads/")
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let c = chunk_size(&r, 1000);
    let mut loc = http.resolve(&header(&r, "location").expect("no Location"));
    let data = random(3, 2 * c + 500);
    let digest = digest_of(&data);

    for i in 0..2 {
        let (s, e) = (i * c, (i + 1) * c - 1);
        let r = http
            .patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{s}-{e}"))
            .body(data[s..=e].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "PATCH chunk {i}");
        assert_eq!(
            header(&r, "range").as_deref(),
            Some(format!("0-{e}").as_str()),
            "Range after chunk {i}"
        );
        loc = http.resolve(&header(&r, "location").expect("PATCH 202 without Location"));

        let st = http.get(&loc).send().await.unwrap();
        assert_eq!(st.status(), StatusCode::NO_CONTENT, "upload status");
        assert_eq!(
            header(&st, "range").as_deref(),
            Some(format!("0-{e}").as_str())
        );
        assert!(
            header(&st, "location").is_some(),
            "204 status without Location"
        );
    }
    // The final chunk travels in the closing PUT.
    let (s, e) = (2 * c, data.len() - 1);
    let r = http
        .put(&with_query(&loc, &format!("digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("{s}-{e}"))
        .body(data[s..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(header(&r, "location").is_some());
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    let (st, body) = http.get_blob("chunked", &digest).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body == data, "chunked blob differs");
}

#[tokio::test]
async fn blob_out_of_order_chunk_is_416() {
    let (_reg, http) = server();
    let r = http
        .post("/v2/ooo/blobs/uploads/")
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let c = chunk_size(&r, 1000);
    let mut loc = http.resolve(&header(&r, "location").unwrap());
    let data = random(4, 3 * c);
    let digest = digest_of(&data);

    let patch = |loc: String, s: usize, e: usize, body: Vec<u8>| {
        http.patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{s}-{e}"))
            .body(body)
            .send()
    };
    let r = patch(loc.clone(), 0, c - 1, data[..c].to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    loc = http.resolve(&header(&r, "location").unwrap());

    // A gap: starts at 2c while c bytes were received.
    let r = patch(loc.clone(), 2 * c, 3 * c - 1, data[2 * c..].to_vec())
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::RANGE_NOT_SATISFIABLE,
        "chunk after a gap"
    );
    // The first chunk again (overlap).
    let r = patch(loc.clone(), 0, c - 1, vec![0xAA; c]).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::RANGE_NOT_SATISFIABLE,
        "repeated chunk"
    );

    let st = http.get(&loc).send().await.unwrap();
    assert_eq!(st.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&st, "range").as_deref(),
        Some(format!("0-{}", c - 1).as_str()),
        "rejected chunks changed the upload"
    );

    let r = patch(loc.clone(), c, 3 * c - 1, data[c..].to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    loc = http.resolve(&header(&r, "location").unwrap());
    let r = http
        .put(&with_query(&loc, &format!("digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (st, body) = http.get_blob("ooo", &digest).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body == data, "blob holds bytes of a rejected chunk");
}

#[tokio::test]
async fn blob_streamed_patch_without_content_range() {
    let (_reg, http) = server();
    let data = random(5, 200_000);
    let digest = digest_of(&data);
    let loc = http.start_upload("streamed").await;
    // Chunked transfer encoding, no Content-Length and no Content-Range (as skopeo does).
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(30_000).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(pieces));
    let r = http
        .patch(&loc)
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        header(&r, "range").as_deref(),
        Some(format!("0-{}", data.len() - 1).as_str())
    );
    let loc = http.resolve(&header(&r, "location").unwrap());
    let r = http
        .put(&with_query(&loc, &format!("digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (st, body) = http.get_blob("streamed", &digest).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body == data);
}

#[tokio::test]
async fn blob_upload_unknown_session_is_404() {
    let (_reg, http) = server();
    http.push_blob("uploads/a", b"something").await;
    let bogus = "/v2/uploads/a/blobs/uploads/0f1e2d3c-no-such-session";
    let r = http.get(bogus).send().await.unwrap();
    expect_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = http
        .patch(bogus)
        .header("Content-Type", "application/octet-stream")
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = http
        .put(&format!("{bogus}?digest={}", digest_of(b"abc")))
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;

    // A session belongs to its repository.
    let loc = http.start_upload("uploads/a").await;
    let other = loc.replacen("/v2/uploads/a/", "/v2/uploads/b/", 1);
    assert_ne!(loc, other, "unexpected Location shape: {loc}");
    let r = http.get(&other).send().await.unwrap();
    expect_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

// ---- blob reads (end-2) ----------------------------------------------------------------------------------

#[tokio::test]
async fn blob_range_request_is_206() {
    let (_reg, http) = server();
    let data = random(6, 1000);
    let digest = http.push_blob("ranges", &data).await;
    let path = format!("/v2/ranges/blobs/{digest}");
    for (range, s, e) in [
        ("bytes=0-9", 0, 9),
        ("bytes=500-999", 500, 999),
        ("bytes=990-", 990, 999),
    ] {
        let r = http.get(&path).header("Range", range).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            header(&r, "content-range").as_deref(),
            Some(format!("bytes {s}-{e}/1000").as_str()),
            "{range}"
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[s..=e], "{range}");
    }
}

#[tokio::test]
async fn blob_invalid_range_is_416_and_connection_survives() {
    let (reg, http) = server();
    let data = random(7, 1000);
    let digest = http.push_blob("ranges", &data).await;
    let path = format!("/v2/ranges/blobs/{digest}");
    for range in ["bytes=500-0", "bytes=5000-10000"] {
        let r = http.get(&path).header("Range", range).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_alive(&http, range).await;
    }
    // On one kept-alive connection: the 416 is a complete response and the connection stays usable.
    let mut conn = RawConn::connect(reg.port());
    for range in ["bytes=500-0", "bytes=5000-10000"] {
        let resp = conn.request(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nRange: {range}\r\n\r\n",
                reg.addr()
            )
            .as_bytes(),
        );
        assert_eq!(
            raw_status(&resp),
            416,
            "{range} over a raw connection: {resp:?}"
        );
        let resp =
            conn.request(format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", reg.addr()).as_bytes());
        assert_eq!(
            raw_status(&resp),
            200,
            "request after the {range} 416 on the same connection: {resp:?}"
        );
    }
    let (st, body) = http.get_blob("ranges", &digest).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, data);
}

#[tokio::test]
async fn blob_digest_mismatch_is_rejected_and_not_stored() {
    let (_reg, http) = server();
    let data = random(8, 5000);
    let claimed = digest_of(&random(9, 5000));
    let loc = http.start_upload("mismatch").await;
    let r = http
        .put(&with_query(&loc, &format!("digest={claimed}")))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "DIGEST_INVALID").await;
    for d in [claimed.as_str(), digest_of(&data).as_str()] {
        let r = http
            .get(&format!("/v2/mismatch/blobs/{d}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "BLOB_UNKNOWN").await;
    }
    assert_alive(&http, "digest mismatch").await;
}

const BAD_DIGESTS: &[&str] = &[
    "sha256:xyz",
    "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "sha256:gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg",
    "SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "sha256:",
    ":aaaa",
];

#[tokio::test]
async fn bad_digest_strings_are_400_never_500() {
    let (_reg, http) = server();
    http.push_blob("baddig", b"x").await;
    for bad in BAD_DIGESTS {
        let enc = bad.replace(':', "%3A");
        // Completing an upload with a malformed digest.
        let loc = http.start_upload("baddig").await;
        let r = http
            .put(&with_query(&loc, &format!("digest={enc}")))
            .body(b"abc".to_vec())
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "DIGEST_INVALID").await;

        // Reading or deleting a blob by a malformed digest: 400 DIGEST_INVALID (404 tolerated on reads).
        for method in ["GET", "DELETE"] {
            let r = http
                .req(method.parse().unwrap(), &format!("/v2/baddig/blobs/{bad}"))
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                400 => {
                    expect_error(r, 400, "DIGEST_INVALID").await;
                }
                404 => {}
                s => panic!("{method} blob {bad}: {s}"),
            }
        }
        let r = http
            .head(&format!("/v2/baddig/blobs/{bad}"))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 404),
            "HEAD blob {bad}: {}",
            r.status()
        );

        // A manifest PUT by a malformed digest reference.
        let r = http
            .put_manifest("baddig", bad, MT_MANIFEST, br#"{"schemaVersion":2}"#)
            .await;
        expect_error(r, 400, "DIGEST_INVALID").await;
        let r = http
            .get(&format!("/v2/baddig/manifests/{bad}"))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 404),
            "GET manifest {bad}: {}",
            r.status()
        );

        // Single POST and mount with a malformed digest never create a blob.
        let r = http
            .post(&format!("/v2/baddig/blobs/uploads/?digest={enc}"))
            .body(b"abc".to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 202),
            "POST ?digest={bad}: {}",
            r.status()
        );
        let r = http
            .post(&format!(
                "/v2/baddig/blobs/uploads/?mount={enc}&from=baddig"
            ))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 202),
            "POST ?mount={bad}: {}",
            r.status()
        );
    }
    assert_alive(&http, "bad digests").await;
}

// ---- cross-repository mount (end-11) ---------------------------------------------------------------------

#[tokio::test]
async fn cross_repo_mount() {
    let (_reg, http) = server();
    let data = random(10, 4096);
    let digest = http.push_blob("mount/src", &data).await;
    let r = http
        .post(&format!(
            "/v2/mount/dst/blobs/uploads/?mount={digest}&from=mount/src"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "mount of a present blob");
    assert!(
        header(&r, "location").is_some(),
        "mount 201 without Location"
    );
    let (st, body) = http.get_blob("mount/dst", &digest).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, data);

    // Unknown blob: 202 and an upload session the client can finish.
    let other = random(11, 100);
    let od = digest_of(&other);
    let r = http
        .post(&format!(
            "/v2/mount/dst/blobs/uploads/?mount={od}&from=mount/src"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "mount of an unknown blob");
    let loc = http.resolve(&header(&r, "location").expect("202 without Location"));
    let r = http
        .put(&with_query(&loc, &format!("digest={od}")))
        .header("Content-Type", "application/octet-stream")
        .body(other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (st, body) = http.get_blob("mount/dst", &od).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, other);
}

// ---- manifests (end-3, end-7) ----------------------------------------------------------------------------

#[tokio::test]
async fn manifest_put_by_tag_and_digest_is_stored_byte_for_byte() {
    let (_reg, http) = server();
    let img = ImageSpec::new(12).layers(2, 1000).build();
    for data in img.blobs.values() {
        http.push_blob("man/app", data).await;
    }
    // Pretty-printed with a trailing newline: the registry must not re-serialise.
    let value: Value = serde_json::from_slice(&img.top.bytes).unwrap();
    let mut bytes = serde_json::to_vec_pretty(&value).unwrap();
    bytes.extend_from_slice(b"\n");
    let digest = digest_of(&bytes);

    let r = http
        .put_manifest("man/app", "v1", MT_MANIFEST, &bytes)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(header(&r, "location").is_some(), "201 without Location");
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );

    for reference in ["v1", digest.as_str()] {
        let r = http
            .get(&format!("/v2/man/app/manifests/{reference}"))
            .header("Accept", ACCEPT_ALL)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {reference}");
        assert_eq!(
            media_type_of(&header(&r, "content-type").unwrap_or_default()),
            MT_MANIFEST
        );
        assert_eq!(
            header(&r, "docker-content-digest").as_deref(),
            Some(digest.as_str())
        );
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            &bytes[..],
            "GET {reference}"
        );

        let r = http
            .head(&format!("/v2/man/app/manifests/{reference}"))
            .header("Accept", ACCEPT_ALL)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "HEAD {reference}");
        assert_eq!(
            header(&r, "content-length").as_deref(),
            Some(bytes.len().to_string().as_str())
        );
        assert_eq!(
            header(&r, "docker-content-digest").as_deref(),
            Some(digest.as_str())
        );
    }

    // By digest (compact bytes of the same manifest: a different digest).
    let d2 = &img.top.digest;
    let r = http
        .put_manifest("man/app", d2, MT_MANIFEST, &img.top.bytes)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "docker-content-digest").as_deref(),
        Some(d2.as_str())
    );
    let (st, _, body) = http.get_manifest("man/app", d2).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, img.top.bytes);

    // A digest reference that does not match the body is refused and stores nothing.
    let wrong = digest_of(b"not these bytes");
    let r = http
        .put_manifest("man/app", &wrong, MT_MANIFEST, &img.top.bytes)
        .await;
    expect_error_any(r, 400, &["DIGEST_INVALID", "MANIFEST_INVALID"]).await;
    let (st, _, _) = http.get_manifest("man/app", &wrong).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Moving the tag.
    http.push_manifest("man/app", "v1", MT_MANIFEST, &img.top.bytes)
        .await;
    let (_, _, body) = http.get_manifest("man/app", "v1").await;
    assert_eq!(body, img.top.bytes, "tag not moved");
}

#[tokio::test]
async fn manifest_docker_schema2_types_round_trip() {
    let (_reg, http) = server();
    let single = ImageSpec::new(13).docker().build();
    single.push(&http, "docker/single", "v1").await;
    single.assert_served(&http, "docker/single", "v1").await;
    let list = ImageSpec::new(14)
        .docker()
        .platforms(&["linux/amd64", "linux/arm64/v8"])
        .build();
    assert_eq!(list.top.media_type, MT_DOCKER_LIST);
    list.push(&http, "docker/list", "v1").await;
    list.assert_served(&http, "docker/list", "v1").await;
    // OCI index too.
    let idx = ImageSpec::new(15)
        .platforms(&["linux/amd64", "linux/arm/v7"])
        .build();
    idx.push(&http, "oci/index", "v1").await;
    idx.assert_served(&http, "oci/index", "v1").await;
}

#[tokio::test]
async fn manifest_naming_missing_blobs_is_rejected() {
    let (_reg, http) = server();
    let img = ImageSpec::new(16).layers(1, 100).build();
    let m: Value = serde_json::from_slice(&img.top.bytes).unwrap();
    let config = m["config"]["digest"].as_str().unwrap().to_string();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();

    http.push_blob("missing/a", &img.blobs[&config]).await;
    let r = http
        .put_manifest("missing/a", "v1", MT_MANIFEST, &img.top.bytes)
        .await;
    expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;

    http.push_blob("missing/b", &img.blobs[&layer]).await;
    let r = http
        .put_manifest("missing/b", "v1", MT_MANIFEST, &img.top.bytes)
        .await;
    expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;

    for repo in ["missing/a", "missing/b"] {
        let (st, _, _) = http.get_manifest(repo, "v1").await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{repo}:v1 stored anyway");
    }
}

#[tokio::test]
async fn manifest_with_missing_subject_is_accepted() {
    let (_reg, http) = server();
    http.push_blob("subj", EMPTY_JSON).await;
    let ghost = Doc::new(MT_MANIFEST, b"{\"never\":\"pushed\"}".to_vec());
    let art = Artifact::new("application/vnd.test.sig", &ghost).to_doc();
    let r = http
        .put_manifest("subj", &art.digest, MT_MANIFEST, &art.bytes)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "oci-subject").as_deref(),
        Some(ghost.digest.as_str())
    );
}

#[tokio::test]
async fn manifest_invalid_is_400_manifest_invalid() {
    let (_reg, http) = server();
    let img = push_small_image(&http, "invalid", "base", 17).await;
    let m: Value = serde_json::from_slice(&img.top.bytes).unwrap();
    let mut as_index = m.clone();
    as_index["mediaType"] = json!(MT_INDEX);
    let mut bad_version = m.clone();
    bad_version["schemaVersion"] = json!(3);
    let mut no_config = m.clone();
    no_config.as_object_mut().unwrap().remove("config");
    let index =
        json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [img.top.descriptor()]});
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated JSON",
            b"{\"schemaVersion\": 2, \"config\": ".to_vec(),
            MT_MANIFEST,
        ),
        ("not JSON", b"hello".to_vec(), MT_MANIFEST),
        ("JSON array", b"[]".to_vec(), MT_MANIFEST),
        (
            "mediaType index, Content-Type manifest",
            json_bytes(&as_index),
            MT_MANIFEST,
        ),
        (
            "index body, Content-Type manifest",
            json_bytes(&index),
            MT_MANIFEST,
        ),
        (
            "manifest body, Content-Type index",
            img.top.bytes.clone(),
            MT_INDEX,
        ),
        ("schemaVersion 3", json_bytes(&bad_version), MT_MANIFEST),
        ("no config", json_bytes(&no_config), MT_MANIFEST),
    ];
    for (i, (what, body, ct)) in cases.into_iter().enumerate() {
        let tag = format!("bad{i}");
        let r = http.put_manifest("invalid", &tag, ct, &body).await;
        let st = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {text}");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{what}: error body is not JSON: {text}"));
        assert!(
            v["errors"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["code"] == "MANIFEST_INVALID")),
            "{what}: want MANIFEST_INVALID, got {text}"
        );
        let (st, _, _) = http.get_manifest("invalid", &tag).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{what}: stored anyway");
        assert_alive(&http, what).await;
    }
}

/// A valid manifest (blobs pushed) padded with an annotation to exactly `size` bytes.
async fn padded_manifest(http: &Http, repo: &str, size: usize) -> Vec<u8> {
    http.push_blob(repo, EMPTY_JSON).await;
    let mk = |pad: usize| {
        json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "artifactType": "application/vnd.test.padding",
            "config": {"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
            "layers": [{"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2}],
            "annotations": {"org.example.pad": "p".repeat(pad)},
        }))
    };
    let base = mk(0).len();
    let body = mk(size - base);
    assert_eq!(body.len(), size);
    body
}

#[tokio::test]
async fn manifest_size_limit_default_4mib() {
    let (_reg, http) = server();
    let limit = 4 * 1024 * 1024;
    let ok = padded_manifest(&http, "big", limit - 1024).await;
    let d = http.push_manifest("big", "fits", MT_MANIFEST, &ok).await;
    let (st, _, body) = http.get_manifest("big", &d).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body == ok, "large manifest not stored byte for byte");

    let too_big = padded_manifest(&http, "big", limit + 1024).await;
    let sent = http
        .put("/v2/big/manifests/toolarge")
        .header("Content-Type", MT_MANIFEST)
        .body(too_big)
        .send()
        .await;
    let r = sent.unwrap_or_else(|e| {
        panic!(
            "no 413 for a manifest over 4 MiB: the connection failed instead ({e:?}); a server that \
             answers early must still read (drain) the request body, or the client sees a reset"
        )
    });
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The next request on the same client (pooled connection) must work too.
    let follow = http
        .get("/v2/big/manifests/toolarge")
        .header("Accept", ACCEPT_ALL)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the request after the 413 failed ({e:?}): the server left the connection broken; it \
                 must drain the oversized body or answer with `Connection: close`"
            )
        });
    assert_eq!(follow.status(), StatusCode::NOT_FOUND);
    assert_alive(&http, "413").await;
}

#[tokio::test]
async fn manifest_size_limit_flag() {
    let reg = SigilRegistry::start(ServeOpts {
        max_manifest_bytes: Some(2048),
        ..Default::default()
    });
    let http = reg.http();
    let ok = padded_manifest(&http, "small", 2048).await;
    http.push_manifest("small", "fits", MT_MANIFEST, &ok).await;
    let too_big = padded_manifest(&http, "small", 2049).await;
    let r = http
        .put_manifest("small", "toolarge", MT_MANIFEST, &too_big)
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_alive(&http, "413").await;
}

// ---- repository names -------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_repository_names_are_400_name_invalid() {
    let (reg, http) = server();
    http.push_blob("valid/name", EMPTY_JSON).await;
    let manifest = Artifact {
        artifact_type: Some("application/vnd.test"),
        config_type: None,
        subject: None,
        annotations: vec![],
        layer: None,
    }
    .to_doc();
    for name in [
        "UPPER",
        "Foo/bar",
        "foo!bar",
        "foo-",
        "-foo",
        "foo.",
        "a..b",
        "foo__-bar",
        "foo/_bar",
        "foo%20bar",
    ] {
        let r = http
            .get(&format!("/v2/{name}/tags/list"))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "NAME_INVALID").await;
        let r = http
            .post(&format!("/v2/{name}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "NAME_INVALID").await;
        let r = http
            .put_manifest(name, "latest", MT_MANIFEST, &manifest.bytes)
            .await;
        expect_error(r, 400, "NAME_INVALID").await;
    }

    // `..` segments, sent raw because HTTP clients normalise them away.
    let escape = format!("sigil-escape-{}", fresh_seed());
    let body = String::from_utf8(manifest.bytes.clone()).unwrap();
    let host = reg.addr();
    let requests = [
        format!(
            "GET /v2/foo/../bar/tags/list HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "POST /v2/../../{escape}/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "PUT /v2/../../{escape}/manifests/latest HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MT_MANIFEST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        format!(
            "PUT /v2/valid/../../../{escape}/manifests/latest HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MT_MANIFEST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    ];
    for req in &requests {
        let resp = raw_http(reg.port(), req.as_bytes());
        let line = req.lines().next().unwrap();
        assert_eq!(raw_status(&resp), 400, "{line}: {resp}");
        assert!(
            raw_body(&resp).contains("NAME_INVALID"),
            "{line}: no NAME_INVALID in {resp}"
        );
    }
    // Percent-encoded dots must not escape either.
    let resp = raw_http(
        reg.port(),
        format!(
            "POST /v2/%2e%2e/%2e%2e/{escape}/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(
        matches!(raw_status(&resp), 400 | 404),
        "percent-encoded ..: {resp}"
    );
    let mut dir = reg.root().to_path_buf();
    for _ in 0..4 {
        assert!(
            !dir.join(&escape).exists(),
            "a request escaped the data root: {} exists",
            dir.join(&escape).display()
        );
        if !dir.pop() {
            break;
        }
    }
    assert_alive(&http, "invalid names").await;
}

// ---- tags and catalog (end-8a/8b) ------------------------------------------------------------------------

/// Follows `Link` rel="next" from `first`, returning every page's JSON (at most 20 pages).
async fn follow_pages(http: &Http, first: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(url) = next {
        assert!(pages.len() < 20, "pagination does not end");
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {url}");
        next = next_link(&r);
        pages.push(json_body(r).await);
    }
    pages
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn tags_list_sorted_paginated_and_last_exclusive() {
    let (_reg, http) = server();
    let img = push_small_image(&http, "tags/app", "v2", 18).await;
    for t in ["beta", "v10", "alpha", "latest", "v1"] {
        http.push_manifest("tags/app", t, MT_MANIFEST, &img.top.bytes)
            .await;
    }
    let all = ["alpha", "beta", "latest", "v1", "v10", "v2"];

    let r = http.get("/v2/tags/app/tags/list").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_body(r).await;
    assert_eq!(v["name"], "tags/app");
    assert_eq!(strings(&v["tags"]), all);

    let pages = follow_pages(&http, "/v2/tags/app/tags/list?n=2").await;
    let mut seen = Vec::new();
    for p in &pages {
        let t = strings(&p["tags"]);
        assert!(t.len() <= 2, "page larger than n=2: {p}");
        seen.extend(t);
    }
    assert_eq!(seen, all, "pages: {pages:?}");
    assert!(pages.len() >= 3);

    let r = http.get("/v2/tags/app/tags/list?n=0").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "link").is_none(), "n=0 with a Link header");
    let v = json_body(r).await;
    assert_eq!(v["tags"], json!([]), "n=0 must give an empty list");

    let r = http
        .get("/v2/tags/app/tags/list?last=beta")
        .send()
        .await
        .unwrap();
    assert_eq!(
        strings(&json_body(r).await["tags"]),
        ["latest", "v1", "v10", "v2"]
    );
    let r = http
        .get("/v2/tags/app/tags/list?n=2&last=beta")
        .send()
        .await
        .unwrap();
    assert_eq!(strings(&json_body(r).await["tags"]), ["latest", "v1"]);
    let r = http
        .get("/v2/tags/app/tags/list?last=v2")
        .send()
        .await
        .unwrap();
    let v = json_body(r).await;
    assert!(
        v["tags"].as_array().is_none_or(|a| a.is_empty()),
        "tags after the last one: {v}"
    );

    let r = http
        .get("/v2/tags/nosuchrepo/tags/list")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn catalog_lists_repositories_with_pagination() {
    let (_reg, http) = server();
    for (i, repo) in ["cat/c", "cat/a", "cat/b/x"].iter().enumerate() {
        push_small_image(&http, repo, "v1", 100 + i as u64).await;
    }
    let r = http.get("/v2/_catalog").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let repos = strings(&json_body(r).await["repositories"]);
    assert_eq!(repos, ["cat/a", "cat/b/x", "cat/c"]);

    let pages = follow_pages(&http, "/v2/_catalog?n=1").await;
    let mut seen = Vec::new();
    for p in &pages {
        let r = strings(&p["repositories"]);
        assert!(r.len() <= 1, "page larger than n=1: {p}");
        seen.extend(r);
    }
    assert_eq!(seen, repos);

    let r = http.get("/v2/_catalog?last=cat/a").send().await.unwrap();
    assert_eq!(
        strings(&json_body(r).await["repositories"]),
        ["cat/b/x", "cat/c"]
    );
}

// ---- deletes (end-9, end-10) -----------------------------------------------------------------------------

#[tokio::test]
async fn delete_manifest_by_digest() {
    let (_reg, http) = server();
    let img = push_small_image(&http, "del/m", "v1", 19).await;
    http.push_manifest("del/m", "v2", MT_MANIFEST, &img.top.bytes)
        .await;
    let d = img.digest();
    let r = http
        .delete(&format!("/v2/del/m/manifests/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for reference in [d, "v1", "v2"] {
        let r = http
            .get(&format!("/v2/del/m/manifests/{reference}"))
            .header("Accept", ACCEPT_ALL)
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "MANIFEST_UNKNOWN").await;
        let r = http
            .head(&format!("/v2/del/m/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "HEAD {reference}");
    }
    let r = http
        .delete(&format!("/v2/del/m/manifests/{d}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn delete_tag_keeps_the_manifest() {
    let (_reg, http) = server();
    let img = push_small_image(&http, "del/t", "v1", 20).await;
    http.push_manifest("del/t", "v2", MT_MANIFEST, &img.top.bytes)
        .await;
    let r = http.delete("/v2/del/t/manifests/v1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http.get("/v2/del/t/manifests/v1").send().await.unwrap();
    expect_error(r, 404, "MANIFEST_UNKNOWN").await;
    let (st, _, body) = http.get_manifest("del/t", img.digest()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, img.top.bytes);
    let (st, _, _) = http.get_manifest("del/t", "v2").await;
    assert_eq!(st, StatusCode::OK);
    let r = http.get("/v2/del/t/tags/list").send().await.unwrap();
    assert_eq!(strings(&json_body(r).await["tags"]), ["v2"]);
    let r = http.delete("/v2/del/t/manifests/v1").send().await.unwrap();
    expect_error(r, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn delete_blob() {
    let (_reg, http) = server();
    let data = random(21, 777);
    let d = http.push_blob("del/b", &data).await;
    let r = http
        .delete(&format!("/v2/del/b/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http
        .get(&format!("/v2/del/b/blobs/{d}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "BLOB_UNKNOWN").await;
    let r = http
        .head(&format!("/v2/del/b/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http
        .delete(&format!("/v2/del/b/blobs/{d}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn unknown_content_is_404_with_spec_codes() {
    let (_reg, http) = server();
    push_small_image(&http, "known", "v1", 22).await;
    let nothing = digest_of(b"nothing here");
    let r = http.get("/v2/known/manifests/nope").send().await.unwrap();
    expect_error(r, 404, "MANIFEST_UNKNOWN").await;
    let r = http
        .get(&format!("/v2/known/manifests/{nothing}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "MANIFEST_UNKNOWN").await;
    let r = http
        .get("/v2/unknown/repo/manifests/v1")
        .send()
        .await
        .unwrap();
    expect_error_any(r, 404, &["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]).await;
    let r = http
        .get(&format!("/v2/known/blobs/{nothing}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "BLOB_UNKNOWN").await;
    let r = http
        .head(&format!("/v2/known/blobs/{nothing}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http.head("/v2/known/manifests/nope").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http
        .delete(&format!("/v2/known/manifests/{nothing}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "MANIFEST_UNKNOWN").await;
}

// ---- referrers (end-12a/12b, OCI-Subject) ----------------------------------------------------------------

async fn referrers(
    http: &Http,
    repo: &str,
    subject: &str,
    query: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let r = http
        .get(&format!("/v2/{repo}/referrers/{subject}{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "referrers of {subject}{query}");
    assert_eq!(
        media_type_of(&header(&r, "content-type").unwrap_or_default()),
        MT_INDEX,
        "referrers Content-Type"
    );
    let headers = r.headers().clone();
    let v = json_body(r).await;
    assert_eq!(v["schemaVersion"], 2, "{v}");
    assert_eq!(v["mediaType"], MT_INDEX, "{v}");
    assert!(v["manifests"].is_array(), "manifests not an array: {v}");
    (headers, v)
}

fn hdr(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn digests(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn referrers_oci_subject_header_on_put() {
    let (_reg, http) = server();
    let img = push_small_image(&http, "ref/hdr", "v1", 23).await;
    http.push_blob("ref/hdr", EMPTY_JSON).await;
    let art = Artifact::new("application/vnd.test.sig", &img.top).to_doc();
    let r = http
        .put_manifest("ref/hdr", &art.digest, MT_MANIFEST, &art.bytes)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "oci-subject").as_deref(), Some(img.digest()));

    let index = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "artifactType": "application/vnd.test.bundle",
        "manifests": [art.descriptor()],
        "subject": img.top.descriptor(),
    }));
    let r = http
        .put_manifest("ref/hdr", &digest_of(&index), MT_INDEX, &index)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "oci-subject").as_deref(), Some(img.digest()));

    let r = http
        .put_manifest("ref/hdr", "plain", MT_MANIFEST, &img.top.bytes)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(
        header(&r, "oci-subject").is_none(),
        "OCI-Subject without a subject"
    );
}

#[tokio::test]
async fn referrers_list_descriptors_with_artifact_type_and_annotations() {
    let (_reg, http) = server();
    let repo = "ref/list";
    let subject = push_small_image(&http, repo, "v1", 24).await;
    let other = push_small_image(&http, repo, "v2", 25).await;
    http.push_blob(repo, EMPTY_JSON).await;

    let r1 = Artifact::new("application/vnd.test.sig", &subject.top)
        .annotate("org.example.a", "1")
        .annotate("org.opencontainers.image.created", "2026-01-01T00:00:00Z")
        .to_doc();
    let mut r2a = Artifact::new("ignored", &subject.top).annotate("org.example.b", "2");
    r2a.config_type = Some("application/vnd.test.config.v1+json");
    let r2 = r2a.to_doc();
    let r3 = Doc::new(
        MT_INDEX,
        json_bytes(&json!({
            "schemaVersion": 2, "mediaType": MT_INDEX, "artifactType": "application/vnd.test.idx",
            "manifests": [], "subject": subject.top.descriptor(),
            "annotations": {"org.example.c": "3"},
        })),
    );
    let r4 = Doc::new(
        MT_INDEX,
        json_bytes(&json!({
            "schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [],
            "subject": subject.top.descriptor(),
        })),
    );
    let unrelated = Artifact::new("application/vnd.test.sig", &other.top).to_doc();
    for d in [&r1, &r2, &r3, &r4, &unrelated] {
        http.push_manifest(repo, &d.digest, &d.media_type, &d.bytes)
            .await;
    }
    // The same subject in another repository: its referrers are not listed here.
    subject.push(&http, "ref/elsewhere", "v1").await;
    http.push_blob("ref/elsewhere", EMPTY_JSON).await;
    let foreign = Artifact::new("application/vnd.test.foreign", &subject.top).to_doc();
    http.push_manifest(
        "ref/elsewhere",
        &foreign.digest,
        MT_MANIFEST,
        &foreign.bytes,
    )
    .await;

    let (_, idx) = referrers(&http, repo, subject.digest(), "").await;
    let want = sorted(vec![
        r1.digest.clone(),
        r2.digest.clone(),
        r3.digest.clone(),
        r4.digest.clone(),
    ]);
    assert_eq!(sorted(digests(&idx)), want, "{idx}");
    let by_digest = |d: &str| -> Value {
        idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == d)
            .cloned()
            .unwrap()
    };
    let check = |doc: &Doc, artifact_type: Option<&str>, annotations: Value| {
        let e = by_digest(&doc.digest);
        assert_eq!(e["mediaType"], doc.media_type.as_str(), "{e}");
        assert_eq!(e["size"], doc.bytes.len(), "{e}");
        match artifact_type {
            Some(t) => assert_eq!(e["artifactType"], t, "{e}"),
            None => assert!(e.get("artifactType").is_none_or(Value::is_null), "{e}"),
        }
        let got = e.get("annotations").cloned().unwrap_or_else(|| json!({}));
        assert_eq!(got, annotations, "annotations of {}", doc.digest);
    };
    check(
        &r1,
        Some("application/vnd.test.sig"),
        json!({"org.example.a": "1", "org.opencontainers.image.created": "2026-01-01T00:00:00Z"}),
    );
    check(
        &r2,
        Some("application/vnd.test.config.v1+json"),
        json!({"org.example.b": "2"}),
    );
    check(
        &r3,
        Some("application/vnd.test.idx"),
        json!({"org.example.c": "3"}),
    );
    check(&r4, None, json!({}));

    let (_, idx) = referrers(&http, "ref/elsewhere", subject.digest(), "").await;
    assert_eq!(digests(&idx), vec![foreign.digest.as_str()]);
}

#[tokio::test]
async fn referrer_pushed_before_its_subject() {
    let (_reg, http) = server();
    let repo = "ref/early";
    let subject = ImageSpec::new(26).layers(1, 64).build();
    http.push_blob(repo, EMPTY_JSON).await;
    let art = Artifact::new("application/vnd.test.early", &subject.top).to_doc();
    let r = http
        .put_manifest(repo, &art.digest, MT_MANIFEST, &art.bytes)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (_, idx) = referrers(&http, repo, subject.digest(), "").await;
    assert_eq!(digests(&idx), vec![art.digest.as_str()]);
    subject.push(&http, repo, "v1").await;
    let (_, idx) = referrers(&http, repo, subject.digest(), "").await;
    assert_eq!(digests(&idx), vec![art.digest.as_str()]);
}

#[tokio::test]
async fn referrers_filter_by_artifact_type() {
    let (_reg, http) = server();
    let repo = "ref/filter";
    let subject = push_small_image(&http, repo, "v1", 27).await;
    http.push_blob(repo, EMPTY_JSON).await;
    let mut a = Vec::new();
    for (i, t) in [
        "application/vnd.test.a",
        "application/vnd.test.b",
        "application/vnd.test.a",
    ]
    .iter()
    .enumerate()
    {
        let n = i.to_string();
        let d = Artifact::new(t, &subject.top).annotate("n", &n).to_doc();
        http.push_manifest(repo, &d.digest, MT_MANIFEST, &d.bytes)
            .await;
        if *t == "application/vnd.test.a" {
            a.push(d.digest.clone());
        }
    }
    let (_, all) = referrers(&http, repo, subject.digest(), "").await;
    assert_eq!(digests(&all).len(), 3);

    let (r, idx) = referrers(
        &http,
        repo,
        subject.digest(),
        "?artifactType=application/vnd.test.a",
    )
    .await;
    assert_eq!(sorted(digests(&idx)), sorted(a));
    for m in idx["manifests"].as_array().unwrap() {
        assert_eq!(m["artifactType"], "application/vnd.test.a");
    }
    let applied = hdr(&r, "oci-filters-applied").unwrap_or_default();
    assert!(
        applied.split(',').any(|f| f.trim() == "artifactType"),
        "OCI-Filters-Applied: {applied:?}"
    );

    let (r, idx) = referrers(
        &http,
        repo,
        subject.digest(),
        "?artifactType=application/vnd.test.none",
    )
    .await;
    assert_eq!(digests(&idx).len(), 0);
    assert!(hdr(&r, "oci-filters-applied").is_some());
}

#[tokio::test]
async fn referrers_of_unknown_digest_is_empty_index() {
    let (_reg, http) = server();
    push_small_image(&http, "ref/empty", "v1", 28).await;
    let zeros = format!("sha256:{}", "0".repeat(64));
    for d in [digest_of(b"no such subject"), zeros] {
        let (_, idx) = referrers(&http, "ref/empty", &d, "").await;
        assert_eq!(idx["manifests"], json!([]), "{idx}");
    }
}

#[tokio::test]
async fn referrers_bad_digest_is_400() {
    let (_reg, http) = server();
    push_small_image(&http, "ref/bad", "v1", 29).await;
    for bad in BAD_DIGESTS.iter().filter(|d| !d.ends_with(':')) {
        let r = http
            .get(&format!("/v2/ref/bad/referrers/{bad}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn referrers_exactly_five_with_annotations() {
    let (_reg, http) = server();
    let repo = "ref/five";
    let subject = push_small_image(&http, repo, "v1", 30).await;
    http.push_blob(repo, EMPTY_JSON).await;
    let mut want = Vec::new();
    for i in 0..5 {
        let v = format!("value-{i}");
        let d = Artifact::new("application/vnd.test.five", &subject.top)
            .annotate("org.example.index", &v)
            .to_doc();
        http.push_manifest(repo, &d.digest, MT_MANIFEST, &d.bytes)
            .await;
        want.push((d.digest.clone(), v));
    }
    let (_, idx) = referrers(&http, repo, subject.digest(), "").await;
    let list = idx["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 5, "{idx}");
    for (d, v) in &want {
        let e = list
            .iter()
            .find(|m| m["digest"] == d.as_str())
            .unwrap_or_else(|| panic!("{d} missing"));
        assert_eq!(e["annotations"], json!({"org.example.index": v}));
        assert_eq!(e["artifactType"], "application/vnd.test.five");
    }
}

#[tokio::test]
async fn referrers_paginated_with_link() {
    let reg = SigilRegistry::start(ServeOpts {
        referrers_page_size: Some(2),
        ..Default::default()
    });
    let http = reg.http();
    let repo = "ref/pages";
    let subject = push_small_image(&http, repo, "v1", 31).await;
    http.push_blob(repo, EMPTY_JSON).await;
    let mut want = Vec::new();
    for i in 0..5 {
        let n = i.to_string();
        let d = Artifact::new("application/vnd.test.page", &subject.top)
            .annotate("n", &n)
            .to_doc();
        http.push_manifest(repo, &d.digest, MT_MANIFEST, &d.bytes)
            .await;
        want.push(d.digest.clone());
    }
    let first = format!("/v2/{repo}/referrers/{}", subject.digest());
    let r = http.get(&first).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        next_link(&r).is_some(),
        "5 referrers, page size 2, but no Link"
    );
    let pages = follow_pages(&http, &first).await;
    assert!(pages.len() >= 3, "{pages:?}");
    let mut seen = Vec::new();
    for p in &pages {
        let d = digests(p);
        assert!(d.len() <= 2, "page larger than 2: {p}");
        seen.extend(d);
    }
    assert_eq!(sorted(seen), sorted(want), "each referrer exactly once");
}

#[tokio::test]
async fn referrers_deleted_referrer_disappears() {
    let (_reg, http) = server();
    let repo = "ref/del";
    let subject = push_small_image(&http, repo, "v1", 32).await;
    http.push_blob(repo, EMPTY_JSON).await;
    let a = Artifact::new("application/vnd.test.x", &subject.top)
        .annotate("k", "a")
        .to_doc();
    let b = Artifact::new("application/vnd.test.x", &subject.top)
        .annotate("k", "b")
        .to_doc();
    for d in [&a, &b] {
        http.push_manifest(repo, &d.digest, MT_MANIFEST, &d.bytes)
            .await;
    }
    let r = http
        .delete(&format!("/v2/{repo}/manifests/{}", a.digest))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let (_, idx) = referrers(&http, repo, subject.digest(), "").await;
    assert_eq!(digests(&idx), vec![b.digest.as_str()]);
}

#[tokio::test]
async fn no_referrers_api_flag() {
    let reg = SigilRegistry::start(ServeOpts {
        no_referrers_api: true,
        ..Default::default()
    });
    let http = reg.http();
    let subject = push_small_image(&http, "noref", "v1", 33).await;
    http.push_blob("noref", EMPTY_JSON).await;
    let art = Artifact::new("application/vnd.test.sig", &subject.top).to_doc();
    let r = http
        .put_manifest("noref", &art.digest, MT_MANIFEST, &art.bytes)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(
        header(&r, "oci-subject").is_none(),
        "OCI-Subject sent with --no-referrers-api"
    );
    let r = http
        .get(&format!("/v2/noref/referrers/{}", subject.digest()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The artifact itself is stored.
    let (st, _, body) = http.get_manifest("noref", &art.digest).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, art.bytes);
}

// ---- conditional manifest PUT (ETag, If-Match, If-None-Match) --------------------------------------------

#[tokio::test]
async fn etag_and_conditional_manifest_put() {
    let (_reg, http) = server();
    let repo = "cond";
    let m1 = push_small_image(&http, repo, "t", 34).await;
    let m2 = push_small_image(&http, repo, "scratch2", 35).await;
    let m3 = push_small_image(&http, repo, "scratch3", 36).await;

    let r = http
        .get(&format!("/v2/{repo}/manifests/t"))
        .header("Accept", ACCEPT_ALL)
        .send()
        .await
        .unwrap();
    let e1 = header(&r, "etag").expect("manifest GET without ETag");
    let r = http
        .head(&format!("/v2/{repo}/manifests/t"))
        .header("Accept", ACCEPT_ALL)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "etag").as_deref(),
        Some(e1.as_str()),
        "HEAD ETag"
    );

    let put = |tag: &'static str, doc: &Doc, h: (&'static str, String)| {
        http.put(&format!("/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", MT_MANIFEST)
            .header(h.0, h.1)
            .body(doc.bytes.clone())
            .send()
    };
    let r = put("t", &m2.top, ("If-Match", e1.clone())).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "If-Match with the current ETag"
    );
    let r = http
        .get(&format!("/v2/{repo}/manifests/t"))
        .header("Accept", ACCEPT_ALL)
        .send()
        .await
        .unwrap();
    let e2 = header(&r, "etag").unwrap();
    assert_ne!(e1, e2, "ETag unchanged after the tag moved");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &m2.top.bytes[..]);

    let r = put("t", &m3.top, ("If-Match", e1.clone())).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PRECONDITION_FAILED,
        "stale If-Match"
    );
    let r = put("t", &m3.top, ("If-None-Match", "*".into()))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PRECONDITION_FAILED,
        "If-None-Match: * on an existing tag"
    );
    let (_, _, body) = http.get_manifest(repo, "t").await;
    assert_eq!(body, m2.top.bytes, "a failed conditional PUT moved the tag");

    let r = put("fresh", &m3.top, ("If-None-Match", "*".into()))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "If-None-Match: * on a new tag"
    );
    let r = put("absent", &m3.top, ("If-Match", e2.clone()))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PRECONDITION_FAILED,
        "If-Match on a tag that does not exist"
    );
    let (st, _, _) = http.get_manifest(repo, "absent").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let _ = m1;
}

// ---- auth and TLS ----------------------------------------------------------------------------------------

#[tokio::test]
async fn htpasswd_basic_auth() {
    let Some(line) = htpasswd_line("alice", "wonder-land") else {
        return;
    };
    let reg = SigilRegistry::start(ServeOpts {
        htpasswd: Some((line, "sigil-test-realm".into())),
        ..Default::default()
    });
    let anon = reg.http();
    let r = anon.get("/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&r, "www-authenticate").expect("401 without WWW-Authenticate");
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic ")
            && challenge.contains("realm=\"sigil-test-realm\""),
        "challenge: {challenge}"
    );
    let wrong = reg.http().with_basic_auth("alice", "wrong");
    assert_eq!(
        wrong.get("/v2/").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let nobody = reg.http().with_basic_auth("bob", "wonder-land");
    assert_eq!(
        nobody.get("/v2/").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    let user = reg.http().with_basic_auth("alice", "wonder-land");
    assert_eq!(
        user.get("/v2/").send().await.unwrap().status(),
        StatusCode::OK
    );
    let img = push_small_image(&user, "auth/app", "v1", 37).await;
    img.assert_served(&user, "auth/app", "v1").await;

    for path in [
        "/v2/auth/app/manifests/v1".to_string(),
        format!("/v2/auth/app/blobs/{}", img.blobs.keys().next().unwrap()),
        "/v2/auth/app/tags/list".to_string(),
    ] {
        let r = anon.get(&path).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{path} without credentials"
        );
    }
    let r = anon
        .post("/v2/auth/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "upload without credentials"
    );
}

#[tokio::test]
async fn tls_with_self_signed_certificate() {
    let tls = TlsFiles::self_signed();
    let reg = SigilRegistry::start(ServeOpts {
        tls: Some(tls),
        ..Default::default()
    });
    assert!(reg.base_url().starts_with("https://"));
    let http = reg.http();
    let r = http.get("/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let img = push_small_image(&http, "tls/app", "v1", 38).await;
    img.assert_served(&http, "tls/app", "v1").await;

    // A client trusting a different certificate must refuse the connection.
    let other = TlsFiles::self_signed();
    let stranger = Http::with_ca(&reg.base_url(), other.cert_pem.as_bytes());
    assert!(
        stranger.get("/v2/").send().await.is_err(),
        "TLS accepted with an untrusted certificate"
    );
    // Plain HTTP on the TLS port gets no 200.
    let resp = raw_http(
        reg.port(),
        format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            reg.addr()
        )
        .as_bytes(),
    );
    assert_ne!(raw_status(&resp), 200, "plain HTTP served on the TLS port");
    assert_alive(&http, "plain HTTP on the TLS port").await;
}

// ---- robustness -------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_requests_do_not_break_the_server() {
    let (reg, http) = server();
    let host = reg.addr();
    let img = push_small_image(&http, "robust", "v1", 39).await;

    let raw_cases = [
        "GARBAGE\r\n\r\n".to_string(),
        format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: abc\r\n\r\n"),
        format!(
            "GET /v2/ HTTP/1.1\r\nHost: {host}\r\nX-Long: {}\r\n\r\n",
            "a".repeat(1_000_000)
        ),
        format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ];
    for (i, req) in raw_cases.iter().enumerate() {
        let resp = raw_http(reg.port(), req.as_bytes());
        let st = raw_status(&resp);
        assert!(!(500..600).contains(&st), "raw case {i}: {resp:.300}");
        assert_alive(&http, &format!("raw case {i}")).await;
    }
    // A manifest body cut short by a client that goes away.
    {
        use std::io::Write as _;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", reg.port())).unwrap();
        s.write_all(
            format!("PUT /v2/robust/manifests/v9 HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MT_MANIFEST}\r\nContent-Length: 100\r\n\r\n{{\"schema")
                .as_bytes(),
        )
        .unwrap();
    }
    assert_alive(&http, "truncated manifest body").await;
    let (st, _, _) = http.get_manifest("robust", "v9").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "truncated manifest stored");

    let loc = http.start_upload("robust").await;
    for cr in ["abc", "5-2", "-1-3", "0-x"] {
        let r = http
            .patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", cr)
            .body(vec![1u8; 10])
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 416),
            "Content-Range {cr:?}: {}",
            r.status()
        );
        assert_alive(&http, cr).await;
    }
    // Closing an upload without ?digest=.
    let r = http.put(&loc).body(vec![1u8; 3]).send().await.unwrap();
    expect_error_any(r, 400, &["DIGEST_INVALID", "BLOB_UPLOAD_INVALID"]).await;

    for q in ["n=abc", "n=-1", "n=99999999999999999999", "last=%ff%fe"] {
        let r = http
            .get(&format!("/v2/robust/tags/list?{q}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "tags/list?{q}: {}", r.status());
    }
    for tag in ["-bad", ".bad", &"t".repeat(129), "bad!tag"] {
        let r = http
            .put_manifest("robust", tag, MT_MANIFEST, &img.top.bytes)
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "tag {tag:?}");
        assert_alive(&http, tag).await;
    }
    let r = http
        .put("/v2/robust/manifests/noctype")
        .body(img.top.bytes.clone())
        .send()
        .await
        .unwrap();
    assert!(
        matches!(r.status().as_u16(), 201 | 400 | 415),
        "manifest PUT without Content-Type: {}",
        r.status()
    );
    // Bodies that end early.
    let half: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(vec![0u8; 1000]),
        Err(std::io::Error::other("client gave up")),
    ];
    let loc = http.start_upload("robust").await;
    let res = http
        .patch(&loc)
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(half)))
        .send()
        .await;
    assert!(res.is_err() || res.unwrap().status().as_u16() < 500);
    assert_alive(&http, "aborted body").await;

    // Many requests at once.
    let futs = (0..64).map(|_| {
        let h = http.clone();
        async move {
            h.get("/v2/robust/manifests/v1")
                .send()
                .await
                .map(|r| r.status())
        }
    });
    let results = futures::stream::iter(futs)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    for r in results {
        assert_eq!(r.unwrap(), StatusCode::OK);
    }
    img.assert_served(&http, "robust", "v1").await;
}
