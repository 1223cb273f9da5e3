//! Crash safety: `kill -9` the registry while uploads and manifest pushes are in flight, restart it on
//! the same data directory, and check that everything acknowledged (201) is intact, nothing partial is
//! visible, every file in the blob store hashes to its name, and the server works normally.

use std::fs;
use std::path::Path;

use futures::SinkExt;
use reqwest::StatusCode;

use crate::util::*;

/// Chunked upload (POST, PATCHes of `chunk` bytes with Content-Range, PUT ?digest=). Errors instead of
/// panicking, because the server may die underneath.
async fn chunked_upload(http: &Http, repo: &str, data: &[u8], chunk: usize) -> Result<(), String> {
    let r = http
        .post(&format!("/v2/{repo}/blobs/uploads/"))
        .header("Content-Length", "0")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != StatusCode::ACCEPTED {
        return Err(format!("POST: {}", r.status()));
    }
    let mut loc = http.resolve(&header(&r, "location").ok_or("no Location")?);
    for (i, piece) in data.chunks(chunk).enumerate() {
        let start = i * chunk;
        let r = http
            .patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .header(
                "Content-Range",
                format!("{start}-{}", start + piece.len() - 1),
            )
            .body(piece.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != StatusCode::ACCEPTED {
            return Err(format!("PATCH: {}", r.status()));
        }
        loc = http.resolve(&header(&r, "location").ok_or("no Location")?);
    }
    let r = http
        .put(&with_query(&loc, &format!("digest={}", digest_of(data))))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != StatusCode::CREATED {
        return Err(format!("PUT: {}", r.status()));
    }
    Ok(())
}

/// Every regular file under `<root>/blobs` must sit at `blobs/<alg>/<2hex>/<hex>` and hash to `<hex>`.
/// Returns the number of blob files.
fn check_blob_store(root: &Path) -> usize {
    let blobs = root.join("blobs");
    assert!(
        blobs.is_dir(),
        "no blob store at {} (expected blobs/<alg>/<2hex>/<hex>); the data root holds: {:?}",
        blobs.display(),
        list_tree(root)
    );
    let mut n = 0;
    let mut stack = vec![blobs.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&blobs).unwrap();
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            assert!(
                parts.len() == 3 && parts[0] == "sha256",
                "unexpected file in the blob store: blobs/{}",
                rel.display()
            );
            let (prefix, hex) = (&parts[1], &parts[2]);
            assert!(
                hex.len() == 64 && hex.starts_with(prefix.as_str()) && prefix.len() == 2,
                "blob file not at blobs/sha256/<2hex>/<hex>: blobs/{}",
                rel.display()
            );
            let data = fs::read(&path).unwrap();
            assert_eq!(
                &sha256_hex(&data),
                hex,
                "blobs/{} does not hash to its name ({} bytes): partial or corrupt content is visible",
                rel.display(),
                data.len()
            );
            n += 1;
        }
    }
    n
}

fn list_tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(root).unwrap().display().to_string());
                if p.is_dir() && out.len() < 200 {
                    stack.push(p);
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_uploads_keeps_acknowledged_blobs_and_hides_partial_ones() {
    let mut reg = SigilRegistry::start_default();
    let http = reg.http();
    let mut rng = Rng::new(fresh_seed());
    let blobs: Vec<Vec<u8>> = (0..32)
        .map(|_| {
            let n = 256 * 1024 + rng.below(1792 * 1024) as usize;
            rng.bytes(n)
        })
        .collect();
    let digests: Vec<String> = blobs.iter().map(|b| digest_of(b)).collect();

    // 1. Acknowledged before the crash: 12 monolithic, 4 chunked, plus a tagged image.
    for b in &blobs[..12] {
        http.push_blob("crash/done", b).await;
    }
    for b in &blobs[12..16] {
        chunked_upload(&http, "crash/done", b, 128 * 1024)
            .await
            .unwrap();
    }
    let img = push_small_image(&http, "crash/done", "before", rng.next_u64()).await;

    // 2. Eight uploads stuck mid-PATCH: half sent with Content-Range, then a streamed PATCH that
    //    sends a quarter of the rest and stalls. None of them ever sends the closing PUT.
    let mut stalled_senders = Vec::new();
    let mut stalled_tasks = Vec::new();
    for b in &blobs[16..24] {
        let loc = http.start_upload("crash/stalled").await;
        let half = b.len() / 2;
        let r = http
            .patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("0-{}", half - 1))
            .body(b[..half].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let loc = http.resolve(&header(&r, "location").unwrap());
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        tx.send(Ok(b[half..half + (b.len() - half) / 4].to_vec()))
            .await
            .unwrap();
        let req = http
            .patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{half}-{}", b.len() - 1))
            .body(reqwest::Body::wrap_stream(rx));
        stalled_tasks.push(tokio::spawn(
            async move { req.send().await.map(|r| r.status()) },
        ));
        stalled_senders.push(tx);
    }

    // 3. Eight chunked uploads racing the kill; it happens once two of them were acknowledged.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut racing = Vec::new();
    for (i, b) in blobs[24..32].iter().enumerate() {
        let h = http.clone();
        let b = b.clone();
        let done = done_tx.clone();
        racing.push(tokio::spawn(async move {
            let res = chunked_upload(&h, "crash/racing", &b, 64 * 1024).await;
            if res.is_ok() {
                let _ = done.send(i);
            }
            res
        }));
    }
    drop(done_tx);
    let mut acked = 0;
    while acked < 2 {
        match done_rx.recv().await {
            Some(_) => acked += 1,
            None => break, // every racer finished (some failed): kill anyway
        }
    }
    reg.kill9();

    let mut racing_ok = Vec::new();
    for (i, t) in racing.into_iter().enumerate() {
        racing_ok.push((24 + i, t.await.unwrap().is_ok()));
    }
    eprintln!(
        "racing uploads acknowledged before the kill: {} of {}",
        racing_ok.iter().filter(|(_, ok)| *ok).count(),
        racing_ok.len()
    );
    assert!(
        racing_ok.iter().filter(|(_, ok)| *ok).count() >= 2,
        "expected at least two racing uploads acknowledged before the kill"
    );
    drop(stalled_senders);
    for t in stalled_tasks {
        let res = t.await.unwrap();
        assert!(
            !matches!(res, Ok(StatusCode::ACCEPTED)),
            "a PATCH whose body never finished was acknowledged"
        );
    }

    // 4. Restart on the same root.
    reg.restart();
    let http = reg.http();

    for i in 0..16 {
        let (st, body) = http.get_blob("crash/done", &digests[i]).await;
        assert_eq!(st, StatusCode::OK, "acknowledged blob {i} lost");
        assert!(body == blobs[i], "acknowledged blob {i} corrupted");
        let r = http
            .head(&format!("/v2/crash/done/blobs/{}", digests[i]))
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&r, "content-length").as_deref(),
            Some(blobs[i].len().to_string().as_str())
        );
    }
    img.assert_served(&http, "crash/done", "before").await;
    for (i, d) in digests.iter().enumerate().take(24).skip(16) {
        let (st, _) = http.get_blob("crash/stalled", d).await;
        assert_eq!(
            st,
            StatusCode::NOT_FOUND,
            "blob {i} is visible although its upload was never completed"
        );
    }
    for (i, ok) in &racing_ok {
        let (st, body) = http.get_blob("crash/racing", &digests[*i]).await;
        if *ok {
            assert_eq!(st, StatusCode::OK, "acknowledged racing blob {i} lost");
        } else {
            assert!(
                st == StatusCode::OK || st == StatusCode::NOT_FOUND,
                "racing blob {i}: {st}"
            );
        }
        if st == StatusCode::OK {
            assert!(body == blobs[*i], "racing blob {i} served with wrong bytes");
        }
    }

    let files = check_blob_store(reg.root());
    assert!(files >= 16, "only {files} files in the blob store");
    for d in &digests[..16] {
        let hex = d.trim_start_matches("sha256:");
        let p = reg.root().join("blobs/sha256").join(&hex[..2]).join(hex);
        assert!(p.is_file(), "{} missing", p.display());
    }

    // 5. Business as usual: re-upload a stalled blob, push a new image, list tags.
    http.push_blob("crash/stalled", &blobs[16]).await;
    let (st, body) = http.get_blob("crash/stalled", &digests[16]).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body == blobs[16]);
    let after = push_small_image(&http, "crash/done", "after", rng.next_u64()).await;
    after.assert_served(&http, "crash/done", "after").await;
    let r = http.get("/v2/crash/done/tags/list").send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], serde_json::json!(["after", "before"]));
    check_blob_store(reg.root());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_manifest_pushes_leaves_only_whole_manifests() {
    let mut reg = SigilRegistry::start_default();
    let http = reg.http();
    let seed = fresh_seed();
    // Shared blobs, then many distinct manifests (different annotations) racing the kill.
    let base = push_small_image(&http, "crash/m", "base", seed).await;
    let value: serde_json::Value = serde_json::from_slice(&base.top.bytes).unwrap();
    let docs: Vec<Doc> = (0..40)
        .map(|i| {
            let mut m = value.clone();
            m["annotations"] =
                serde_json::json!({"n": i.to_string(), "pad": "x".repeat(2000 * (i % 7))});
            Doc::new(MT_MANIFEST, json_bytes(&m))
        })
        .collect();

    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut tasks = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let h = http.clone();
        let d = d.clone();
        let done = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            // Each manifest under its own tag, and all of them fighting over one shared tag.
            let put = |tag: String| {
                h.put(&format!("/v2/crash/m/manifests/{tag}"))
                    .header("Content-Type", MT_MANIFEST)
                    .body(d.bytes.clone())
                    .send()
            };
            let ok = put(format!("t{i}"))
                .await
                .is_ok_and(|r| r.status() == StatusCode::CREATED);
            let _ = put("shared".to_string()).await;
            if ok {
                let _ = done.send(());
            }
            ok
        }));
    }
    drop(done_tx);
    let mut acked = 0;
    while acked < 5 {
        match done_rx.recv().await {
            Some(()) => acked += 1,
            None => break,
        }
    }
    reg.kill9();
    let mut ok = Vec::new();
    for t in tasks {
        ok.push(t.await.unwrap());
    }
    eprintln!(
        "manifest PUTs acknowledged before the kill: {} of {}",
        ok.iter().filter(|o| **o).count(),
        ok.len()
    );
    assert!(ok.iter().filter(|o| **o).count() >= 5);

    reg.restart();
    let http = reg.http();
    base.assert_served(&http, "crash/m", "base").await;
    for (i, d) in docs.iter().enumerate() {
        let (st, _, body) = http.get_manifest("crash/m", &format!("t{i}")).await;
        if ok[i] {
            assert_eq!(st, StatusCode::OK, "acknowledged tag t{i} lost");
        }
        if st == StatusCode::OK {
            assert!(body == d.bytes, "tag t{i} serves other bytes");
        } else {
            assert_eq!(st, StatusCode::NOT_FOUND, "tag t{i}: {st}");
        }
    }
    let (st, _, body) = http.get_manifest("crash/m", "shared").await;
    if st == StatusCode::OK {
        assert!(
            docs.iter().any(|d| d.bytes == body),
            "the shared tag serves a manifest nobody pushed"
        );
    }
    check_blob_store(reg.root());
    // Tags listed are exactly the tags that resolve.
    let r = http.get("/v2/crash/m/tags/list").send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    for t in v["tags"].as_array().unwrap() {
        let (st, _, _) = http.get_manifest("crash/m", t.as_str().unwrap()).await;
        assert_eq!(st, StatusCode::OK, "listed tag {t} does not resolve");
    }
}
