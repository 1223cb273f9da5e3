//! `sigil registry gc`: removes untagged manifests and unreferenced blobs, keeps what is tagged, what an
//! index or a live subject references, and everything younger than the grace period; `--dry-run`
//! removes nothing; orphan referrers are kept unless `--orphan-referrers delete`.

use std::fs;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

use crate::util::*;

fn blob_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("blobs")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn has_blob_file(root: &Path, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    root.join("blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .is_file()
}

/// Runs `sigil registry gc --root ROOT ARGS`; asserts success and a JSON report; returns its text.
fn gc(root: &Path, args: &[&str]) -> String {
    let mut all = vec!["registry", "gc", "--root", root.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = sigil(&all);
    let stdout = expect_success(&format!("sigil {}", all.join(" ")), &out);
    let text = String::from_utf8(stdout).unwrap();
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("gc report is not JSON ({e}): {text}"));
    assert!(v.is_object(), "gc report is not a JSON object: {text}");
    text
}

#[tokio::test]
async fn gc_keeps_live_content_and_removes_garbage() {
    let mut reg = SigilRegistry::start_default();
    let http = reg.http();
    let repo = "gc/app";
    let seed = fresh_seed();

    let keep = ImageSpec::new(seed).layers(2, 3000).build();
    keep.push(&http, repo, "keep").await;
    let index = ImageSpec::new(seed ^ 1)
        .layers(1, 2000)
        .platforms(&["linux/amd64", "linux/arm64/v8"])
        .build();
    index.push(&http, repo, "idx").await;
    let gone = ImageSpec::new(seed ^ 2).layers(2, 2500).build();
    gone.push(&http, repo, "gone").await;
    let r = http
        .delete(&format!("/v2/{repo}/manifests/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loose = Rng::new(seed ^ 3).bytes(4000);
    let loose_digest = http.push_blob(repo, &loose).await;

    http.push_blob(repo, EMPTY_JSON).await;
    let live_ref = Artifact::new("application/vnd.test.sig", &keep.top).to_doc();
    http.push_manifest(repo, &live_ref.digest, MT_MANIFEST, &live_ref.bytes)
        .await;
    let ghost = Doc::new(MT_MANIFEST, b"{\"ghost\":true}".to_vec());
    let orphan_ref = Artifact::new("application/vnd.test.sig", &ghost)
        .annotate("orphan", "yes")
        .to_doc();
    http.push_manifest(repo, &orphan_ref.digest, MT_MANIFEST, &orphan_ref.bytes)
        .await;

    reg.kill9();
    let root = reg.root().to_path_buf();
    let before = blob_files(&root);
    let gone_blobs: Vec<&String> = gone
        .blobs
        .keys()
        .filter(|d| !keep.blobs.contains_key(*d) && !index.blobs.contains_key(*d))
        .collect();
    for d in gone_blobs
        .iter()
        .map(|d| d.as_str())
        .chain([gone.digest(), &loose_digest])
    {
        assert!(
            has_blob_file(&root, d),
            "{d} not in the blob store before gc"
        );
    }

    // Everything is younger than the default grace period (1 h): nothing goes.
    gc(&root, &[]);
    assert_eq!(
        blob_files(&root),
        before,
        "gc removed content inside the grace period"
    );
    // A dry run names the garbage but removes nothing.
    let report = gc(&root, &["--grace-secs", "0", "--dry-run"]);
    assert_eq!(blob_files(&root), before, "--dry-run removed files");
    assert!(
        report.contains(gone.digest()),
        "dry run does not mention the untagged manifest: {report}"
    );
    assert!(
        report.contains(&loose_digest),
        "dry run does not mention the loose blob: {report}"
    );

    let report = gc(&root, &["--grace-secs", "0"]);
    assert!(report.contains(gone.digest()), "report: {report}");
    assert!(report.contains(&loose_digest), "report: {report}");
    for d in gone_blobs
        .iter()
        .map(|d| d.as_str())
        .chain([&loose_digest[..]])
    {
        assert!(!has_blob_file(&root, d), "{d} survived gc");
    }

    reg.restart();
    let http = reg.http();
    keep.assert_served(&http, repo, "keep").await;
    index.assert_served(&http, repo, "idx").await;
    for d in [&live_ref, &orphan_ref] {
        let (st, _, body) = http.get_manifest(repo, &d.digest).await;
        assert_eq!(st, StatusCode::OK, "referrer {} removed", d.digest);
        assert_eq!(body, d.bytes);
    }
    let r = http
        .get(&format!("/v2/{repo}/referrers/{}", keep.digest()))
        .send()
        .await
        .unwrap();
    let idx: Value = r.json().await.unwrap();
    assert_eq!(
        idx["manifests"][0]["digest"],
        live_ref.digest.as_str(),
        "{idx}"
    );
    let (st, _, _) = http.get_manifest(repo, gone.digest()).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "untagged manifest survived gc");
    for d in gone_blobs
        .iter()
        .map(|d| d.as_str())
        .chain([&loose_digest[..]])
    {
        let (st, _) = http.get_blob(repo, d).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "garbage blob {d} still served");
    }

    // Orphan referrers go only when asked.
    reg.kill9();
    gc(
        &root,
        &["--grace-secs", "0", "--orphan-referrers", "delete"],
    );
    reg.restart();
    let http = reg.http();
    let (st, _, _) = http.get_manifest(repo, &orphan_ref.digest).await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "orphan referrer kept with --orphan-referrers delete"
    );
    let (st, _, _) = http.get_manifest(repo, &live_ref.digest).await;
    assert_eq!(st, StatusCode::OK, "referrer of a live subject removed");
    keep.assert_served(&http, repo, "keep").await;
    index.assert_served(&http, repo, "idx").await;
}
