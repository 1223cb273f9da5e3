//! `sigil attach | discover | pull | delete | copy --referrers`: OCI 1.1 artifacts and referrers, end to end.
//!
//! Most scenarios run against three backends (one test each, see [`on_backends!`]):
//! - `sigil_api`: `sigil registry serve` with the referrers API (attach gets `OCI-Subject`, no fallback tag);
//! - `sigil_no_api`: `sigil registry serve --no-referrers-api` (tag-schema fallback, conditional PUTs with ETag);
//! - `docker_registry`: Debian's docker-registry 2.8.2 (tag-schema fallback, no conditional requests; skipped
//!   when not installed unless `SIGIL_REQUIRE_ORACLES=1`).
//!
//! What is checked comes from the artifacts issue: the exact shape of the referrer manifest (subject,
//! artifactType, empty config, one titled layer per file, `org.opencontainers.image.created`), the fallback
//! index `sha256-<hex>` on registries without the API, recursive discovery through referrers and index
//! children (tree and JSON), pull by title, copy with referrers and digest tags, delete with referrers, the
//! request counts printed by `--stats`, interoperability with oras-py, concurrent attaches, and bad input.
//!
//! The JSON and tree outputs of `discover` are checked structurally (which digest sits below which), not
//! byte for byte: JSON nesting through arrays of objects carrying `digest`, tree nesting by indentation.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::*;

const AT_SIG: &str = "application/vnd.example.signature.v1+json";
const AT_SBOM: &str = "application/spdx+json";
const AT_SBOM_SIG: &str = "application/vnd.example.sbom-signature.v1+json";
const TITLE: &str = "org.opencontainers.image.title";
const CREATED: &str = "org.opencontainers.image.created";
const OCTET: &str = "application/octet-stream";

// ---- backends --------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    SigilApi,
    SigilNoApi,
    Docker,
}

enum Server {
    Sigil(SigilRegistry),
    Docker(DockerRegistry),
}

/// One registry under test.
struct Backend {
    kind: Kind,
    server: Server,
}

impl Backend {
    /// `None` when docker-registry is missing (and oracles are not required).
    fn start(kind: Kind) -> Option<Self> {
        let server = match kind {
            Kind::SigilApi => Server::Sigil(SigilRegistry::start_default()),
            Kind::SigilNoApi => Server::Sigil(SigilRegistry::start(ServeOpts {
                no_referrers_api: true,
                ..ServeOpts::default()
            })),
            Kind::Docker => Server::Docker(DockerRegistry::start(false)?),
        };
        Some(Backend { kind, server })
    }

    fn addr(&self) -> String {
        match &self.server {
            Server::Sigil(s) => s.addr(),
            Server::Docker(d) => d.addr(),
        }
    }

    fn http(&self) -> Http {
        match &self.server {
            Server::Sigil(s) => s.http(),
            Server::Docker(d) => d.http(),
        }
    }

    fn has_api(&self) -> bool {
        self.kind == Kind::SigilApi
    }

    /// `ADDR/REPO:TAG`
    fn tag(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.addr())
    }

    /// `ADDR/REPO@DIGEST`
    fn at(&self, repo: &str, digest: &str) -> String {
        format!("{}/{repo}@{digest}", self.addr())
    }
}

/// Runs the scenario `async fn $name(b: Backend)` once per backend, as tests `$name::sigil_api`,
/// `$name::sigil_no_api` and `$name::docker_registry`.
macro_rules! on_backends {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sigil_api() {
                super::$name(Backend::start(Kind::SigilApi).unwrap()).await;
            }

            #[tokio::test]
            async fn sigil_no_api() {
                super::$name(Backend::start(Kind::SigilNoApi).unwrap()).await;
            }

            #[tokio::test]
            async fn docker_registry() {
                if let Some(b) = Backend::start(Kind::Docker) {
                    super::$name(b).await;
                }
            }
        }
    };
}

// ---- running sigil ---------------------------------------------------------------------------------------

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `sigil ARGS` in `cwd`, asserts success, returns stdout.
fn sigil_ok(cwd: &Path, args: &[&str]) -> String {
    let out = sigil_in(cwd, args);
    text(&expect_success(&format!("sigil {}", args.join(" ")), &out))
}

/// Asserts `sigil ARGS` failed with a readable report: non-zero exit, nothing on stdout, exactly one
/// non-empty line on stderr, no panic. Returns stderr.
fn expect_clean_failure(what: &str, out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{what} succeeded but must fail:\nstdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what} panicked:\n{stderr}"
    );
    assert!(
        text(&out.stdout).trim().is_empty(),
        "{what} failed but printed on stdout: {}",
        text(&out.stdout)
    );
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert!(
        lines.len() == 1 && !lines[0].trim().is_empty(),
        "{what}: expected one readable stderr line, got {}:\n{stderr}",
        lines.len()
    );
    assert!(
        !stderr.contains("not implemented"),
        "{what}: failed only because the command is a stub: {stderr}"
    );
    stderr
}

/// Checks `sha256:<64 lowercase hex>`.
fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// `sigil attach REF --artifact-type AT [extra...] FILES...` in `cwd`; asserts it printed exactly one line,
/// the referrer's digest, and returns it.
fn attach_ok(cwd: &Path, reference: &str, at: &str, extra: &[&str], files: &[&str]) -> String {
    let mut args = vec!["attach", reference, "--artifact-type", at];
    args.extend_from_slice(extra);
    args.extend_from_slice(files);
    let stdout = sigil_ok(cwd, &args);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.len() == 1 && is_digest(lines[0]),
        "sigil attach must print exactly one line `sha256:<hex>`, printed {stdout:?}"
    );
    lines[0].to_string()
}

/// The `requests: N` line `--stats` prints on stderr.
fn requests_stat(out: &Output) -> u64 {
    let stderr = text(&out.stderr);
    let found: Vec<u64> = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("requests: "))
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad --stats line in {stderr:?}"))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "--stats must print one `requests: N` line on stderr, got:\n{stderr}"
    );
    found[0]
}

/// Writes `(name, bytes)` files into `dir`.
fn write_files(dir: &Path, files: &[(&str, &[u8])]) {
    for (name, data) in files {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(p, data).unwrap();
    }
}

fn random(seed: u64, n: usize) -> Vec<u8> {
    Rng::new(seed).bytes(n)
}

// ---- reading registries ----------------------------------------------------------------------------------

fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// GET a manifest by reference; asserts 200 and returns (bytes, parsed JSON, content type).
async fn manifest(http: &Http, repo: &str, reference: &str) -> (Vec<u8>, Value, String) {
    let (st, ct, body) = http.get_manifest(repo, reference).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "GET manifest {repo}:{reference}: {}",
        text(&body)
    );
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("manifest {repo}:{reference} is not JSON ({e})"));
    (body, v, media_type_of(&ct))
}

async fn manifest_status(http: &Http, repo: &str, reference: &str) -> StatusCode {
    http.get_manifest(repo, reference).await.0
}

async fn blob_status(http: &Http, repo: &str, digest: &str) -> StatusCode {
    Http::send(http.head(&format!("/v2/{repo}/blobs/{digest}")))
        .await
        .status()
}

/// The repository's tags, sorted (empty when the repository is unknown).
async fn tags(http: &Http, repo: &str) -> Vec<String> {
    let r = Http::send(http.get(&format!("/v2/{repo}/tags/list?n=1000"))).await;
    if r.status() == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(r.status(), StatusCode::OK, "tags/list {repo}");
    let v: Value = r.json().await.unwrap();
    let mut t: Vec<String> = v["tags"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// `/v2/_catalog`, sorted.
async fn catalog(http: &Http) -> Vec<String> {
    let r = Http::send(http.get("/v2/_catalog?n=1000")).await;
    assert_eq!(r.status(), StatusCode::OK, "catalog");
    let v: Value = r.json().await.unwrap();
    let mut c: Vec<String> = v["repositories"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    c.sort();
    c
}

/// Every page of `GET /v2/<repo>/referrers/<digest>` (asserting 200 and the index media type).
async fn api_referrers(http: &Http, repo: &str, digest: &str) -> Vec<Value> {
    let mut url = format!("/v2/{repo}/referrers/{digest}");
    let mut all = Vec::new();
    for _ in 0..100 {
        let r = Http::send(http.get(&url)).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {url}");
        let next = next_link(&r);
        let v: Value = r.json().await.unwrap();
        all.extend(v["manifests"].as_array().unwrap().iter().cloned());
        match next {
            Some(n) => url = n,
            None => return all,
        }
    }
    panic!("more than 100 referrers pages for {digest}")
}

/// The fallback index `sha256-<hex>` of `digest`, checked to be a proper OCI image index; `None` when the
/// tag does not exist.
async fn fallback_index(http: &Http, repo: &str, digest: &str) -> Option<Value> {
    let tag = fallback_tag(digest);
    let (st, ct, body) = http.get_manifest(repo, &tag).await;
    if st == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(st, StatusCode::OK, "GET {repo}:{tag}: {}", text(&body));
    assert_eq!(media_type_of(&ct), MT_INDEX, "{repo}:{tag} Content-Type");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["schemaVersion"], 2, "fallback index {tag}: {v}");
    assert_eq!(v["mediaType"], MT_INDEX, "fallback index {tag}: {v}");
    assert!(
        v.get("subject").is_none(),
        "a fallback index has no subject: {v}"
    );
    assert!(v["manifests"].is_array(), "fallback index {tag}: {v}");
    Some(v)
}

/// Referrers of `digest` as the backend lists them: the API on `sigil_api`, the fallback index elsewhere.
async fn listed_referrers(b: &Backend, repo: &str, digest: &str) -> Vec<Value> {
    let http = b.http();
    if b.has_api() {
        api_referrers(&http, repo, digest).await
    } else {
        fallback_index(&http, repo, digest)
            .await
            .map(|v| v["manifests"].as_array().unwrap().clone())
            .unwrap_or_default()
    }
}

/// The descriptor a referrers listing must hold for manifest `digest` (mediaType, digest, size,
/// artifactType, every annotation).
async fn expected_descriptor(http: &Http, repo: &str, digest: &str) -> Value {
    let (bytes, m, ct) = manifest(http, repo, digest).await;
    let mut d = json!({"mediaType": ct, "digest": digest, "size": bytes.len()});
    let at = match m.get("artifactType") {
        Some(t) => t.clone(),
        None => m["config"]["mediaType"].clone(),
    };
    d["artifactType"] = at;
    if let Some(a) = m.get("annotations") {
        d["annotations"] = a.clone();
    }
    d
}

/// Asserts the backend lists exactly `expected` (no duplicates) as referrers of `subject`, each with the
/// descriptor fields the spec requires.
async fn assert_listed(b: &Backend, repo: &str, subject: &str, expected: &[&str]) {
    let http = b.http();
    let list = listed_referrers(b, repo, subject).await;
    let mut got: Vec<String> = list
        .iter()
        .map(|d| d["digest"].as_str().unwrap_or("").to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    let how = if b.has_api() {
        "referrers API"
    } else {
        "fallback index"
    };
    assert_eq!(
        got,
        want,
        "{how} of {subject} in {repo} ({:?}): {}",
        b.kind,
        json!(list)
    );
    for d in &list {
        let want = expected_descriptor(&http, repo, d["digest"].as_str().unwrap()).await;
        for k in ["mediaType", "digest", "size", "artifactType", "annotations"] {
            assert_eq!(
                d.get(k),
                want.get(k),
                "{how} of {subject}: descriptor field {k} ({:?})\nlisted: {d}\nmanifest: {want}",
                b.kind
            );
        }
    }
}

// ---- checking referrer manifests -------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 `date-time` (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) into Unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > mdays[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *c == b'+' { o } else { -o }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[test]
fn rfc3339_parser_self_check() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2024-02-29T12:30:15.123+02:00"),
        Some(1_709_202_615)
    );
    for bad in [
        "2024-02-30T00:00:00Z",
        "2024-01-01 00:00:00",
        "2024-01-01T00:00:00",
        "2024-1-01T00:00:00Z",
        "1717171717",
        "2024-01-01T00:00:00+0200",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One attached file as it must appear in the referrer manifest.
struct Attached<'a> {
    title: &'a str,
    data: &'a [u8],
    media_type: &'a str,
}

/// Fetches the referrer `digest` raw and checks it field by field: an OCI image manifest with `subject` =
/// `subject`'s descriptor, `artifactType`, the empty config, one layer per file (title, media type,
/// digest, size, content), the given annotations plus an RFC 3339 `created` close to now.
async fn check_referrer_manifest(
    http: &Http,
    repo: &str,
    digest: &str,
    subject: &Doc,
    artifact_type: &str,
    files: &[Attached<'_>],
    annotations: &[(&str, &str)],
) -> Value {
    let (bytes, m, ct) = manifest(http, repo, digest).await;
    assert_eq!(digest_of(&bytes), digest, "stored bytes vs printed digest");
    assert_eq!(ct, MT_MANIFEST, "Content-Type of the referrer");
    let keys: BTreeSet<&str> = m.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let allowed: BTreeSet<&str> = [
        "schemaVersion",
        "mediaType",
        "artifactType",
        "config",
        "layers",
        "subject",
        "annotations",
    ]
    .into();
    assert!(keys.is_subset(&allowed), "unexpected manifest fields: {m}");
    assert_eq!(m["schemaVersion"], 2, "{m}");
    assert_eq!(m["mediaType"], MT_MANIFEST, "{m}");
    assert_eq!(m["artifactType"], artifact_type, "{m}");
    // subject: the descriptor of what was attached to
    assert_eq!(m["subject"]["digest"], subject.digest.as_str(), "{m}");
    assert_eq!(
        m["subject"]["mediaType"],
        subject.media_type.as_str(),
        "{m}"
    );
    assert_eq!(m["subject"]["size"], subject.bytes.len(), "{m}");
    // config: the empty descriptor, and the `{}` blob is there
    let cfg = &m["config"];
    assert_eq!(cfg["mediaType"], MT_EMPTY, "config: {m}");
    assert_eq!(cfg["digest"], EMPTY_DIGEST, "config: {m}");
    assert_eq!(cfg["size"], 2, "config: {m}");
    if let Some(data) = cfg.get("data") {
        assert_eq!(data, "e30=", "config data must be base64 of {{}}: {m}");
    }
    let (st, body) = http.get_blob(repo, EMPTY_DIGEST).await;
    assert_eq!(st, StatusCode::OK, "the empty config blob was not pushed");
    assert_eq!(body, EMPTY_JSON);
    // layers: one per file, in order
    let layers = m["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), files.len(), "one layer per file: {m}");
    for (l, f) in layers.iter().zip(files) {
        assert_eq!(l["annotations"][TITLE], f.title, "layer title: {l}");
        assert_eq!(l["mediaType"], f.media_type, "layer media type: {l}");
        assert_eq!(l["digest"], digest_of(f.data), "layer digest: {l}");
        assert_eq!(l["size"], f.data.len(), "layer size: {l}");
        let (st, body) = http.get_blob(repo, &digest_of(f.data)).await;
        assert_eq!(st, StatusCode::OK, "layer blob {} missing", f.title);
        assert!(body == f.data, "layer blob {} differs", f.title);
    }
    // annotations: the given ones, plus created
    let ann = m["annotations"].as_object().expect("manifest annotations");
    for (k, v) in annotations {
        assert_eq!(ann.get(*k), Some(&json!(v)), "annotation {k}: {m}");
    }
    let created = ann
        .get(CREATED)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no {CREATED} annotation: {m}"));
    let t = parse_rfc3339(created)
        .unwrap_or_else(|| panic!("{CREATED} {created:?} is not an RFC 3339 date-time"));
    assert!(
        (t - now_unix()).abs() < 3600,
        "{CREATED} {created} is not the time of the attach"
    );
    let extra: Vec<&String> = ann
        .keys()
        .filter(|k| *k != CREATED && !annotations.iter().any(|(a, _)| a == k))
        .collect();
    assert!(extra.is_empty(), "unexpected annotations {extra:?}: {m}");
    m
}

// ---- discover output -------------------------------------------------------------------------------------

/// A node of `discover -o json`: an object with a `digest`, with the digests of the nodes it is nested in.
#[derive(Debug)]
struct JsonNode {
    digest: String,
    ancestors: Vec<String>,
    value: Value,
}

/// Every object carrying a `digest` reachable through arrays and nested objects (not through `subject`,
/// `config`, `layers`, `annotations`, `platform`, which describe a node rather than nest under it).
fn json_nodes(v: &Value) -> Vec<JsonNode> {
    fn walk(v: &Value, anc: &[String], out: &mut Vec<JsonNode>) {
        match v {
            Value::Object(m) => {
                let mut inner = anc.to_vec();
                if let Some(d) = m.get("digest").and_then(|d| d.as_str()) {
                    out.push(JsonNode {
                        digest: d.to_string(),
                        ancestors: anc.to_vec(),
                        value: v.clone(),
                    });
                    inner.push(d.to_string());
                }
                for (k, x) in m {
                    if matches!(
                        k.as_str(),
                        "subject" | "config" | "layers" | "annotations" | "platform"
                    ) {
                        continue;
                    }
                    if x.is_array() || x.is_object() {
                        walk(x, &inner, out);
                    }
                }
            }
            Value::Array(a) => {
                for x in a {
                    walk(x, anc, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &[], &mut out);
    out
}

/// `sigil discover ... -o json` parsed.
struct Discovered {
    raw: String,
    nodes: Vec<JsonNode>,
}

impl Discovered {
    fn parse(raw: String) -> Self {
        let v: Value = serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("discover -o json printed no JSON ({e}):\n{raw}"));
        Discovered {
            nodes: json_nodes(&v),
            raw,
        }
    }

    fn find(&self, digest: &str) -> Vec<&JsonNode> {
        self.nodes.iter().filter(|n| n.digest == digest).collect()
    }

    /// Asserts `digest` is listed exactly once, with artifact type `at`; returns its node.
    fn one(&self, digest: &str, at: &str) -> &JsonNode {
        let found = self.find(digest);
        assert_eq!(
            found.len(),
            1,
            "discover JSON must list {digest} once:\n{}",
            self.raw
        );
        assert_eq!(
            found[0].value["artifactType"], at,
            "artifactType of {digest} in discover JSON:\n{}",
            self.raw
        );
        found[0]
    }

    fn absent(&self, digest: &str) {
        assert!(
            self.find(digest).is_empty(),
            "discover JSON must not list {digest}:\n{}",
            self.raw
        );
    }

    /// Whether `child` is shown below `parent` (nested in it, or naming it as its subject).
    fn is_under(&self, child: &str, parent: &str) -> bool {
        self.find(child).iter().any(|n| {
            n.ancestors.iter().any(|a| a == parent)
                || n.value["subject"]["digest"] == parent
                || n.value["subject"] == parent
        })
    }

    fn assert_under(&self, child: &str, parent: &str) {
        assert!(
            self.is_under(child, parent),
            "discover JSON must show {child} below {parent}:\n{}",
            self.raw
        );
    }

    /// Digests listed that are not in `known`.
    fn unknown(&self, known: &[&str]) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| !known.contains(&n.digest.as_str()))
            .map(|n| n.digest.clone())
            .collect()
    }
}

/// Indentation depth of a tree line: characters before the first one that is not tree drawing or space.
fn tree_indent(line: &str) -> usize {
    line.chars()
        .take_while(|c| {
            matches!(
                c,
                ' ' | '│' | '├' | '└' | '─' | '|' | '`' | '+' | '-' | '\t'
            )
        })
        .count()
}

/// Asserts `tree` (as `discover -o tree` prints it) shows `child` exactly once, somewhere below `parent`.
fn assert_tree_under(tree: &str, child: &str, parent: &str) {
    let lines: Vec<&str> = tree.lines().collect();
    let c: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(child))
        .collect();
    assert_eq!(c.len(), 1, "tree must show {child} once:\n{tree}");
    let c = c[0];
    let ci = tree_indent(lines[c]);
    // Walk up: the nearest line above with a smaller indentation is the parent, and so on to the root.
    let mut i = c;
    let mut level = ci;
    while i > 0 {
        i -= 1;
        let li = tree_indent(lines[i]);
        if li < level {
            if lines[i].contains(parent) {
                return;
            }
            level = li;
        }
    }
    panic!("tree must show {child} below {parent}:\n{tree}");
}

// ---- fixtures --------------------------------------------------------------------------------------------

/// A two-platform index (linux/amd64, linux/arm64) pushed as `repo:v1`.
async fn push_index(http: &Http, repo: &str) -> Image {
    let img = ImageSpec::new(fresh_seed())
        .layers(1, 700)
        .platforms(&["linux/amd64", "linux/arm64"])
        .build();
    img.push(http, repo, "v1").await;
    img
}

fn child<'a>(img: &'a Image, platform: &str) -> &'a Doc {
    img.children
        .iter()
        .find(|c| c.platform.as_deref() == Some(platform))
        .unwrap()
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sigil-artifacts-")
        .tempdir()
        .unwrap()
}

// ---- 1. attach: the manifest and where it is listed -------------------------------------------------------

async fn attach_manifest(b: Backend) {
    let http = b.http();
    let repo = "art/app";
    let subject = push_small_image(&http, repo, "v1", fresh_seed()).await;
    let work = tmp();
    let sbom = random(fresh_seed(), 3000);
    let notes = random(fresh_seed() ^ 1, 100);
    write_files(work.path(), &[("sbom.json", &sbom), ("notes.txt", &notes)]);

    // By tag, two files (one with a media type), two annotations (a value may contain '=').
    let d1 = attach_ok(
        work.path(),
        &b.tag(repo, "v1"),
        AT_SBOM,
        &[
            "--annotation",
            "org.example.kind=sbom",
            "-a",
            "org.example.q=a=b",
        ],
        &["sbom.json:application/spdx+json", "notes.txt"],
    );
    check_referrer_manifest(
        &http,
        repo,
        &d1,
        &subject.top,
        AT_SBOM,
        &[
            Attached {
                title: "sbom.json",
                data: &sbom,
                media_type: "application/spdx+json",
            },
            Attached {
                title: "notes.txt",
                data: &notes,
                media_type: OCTET,
            },
        ],
        &[("org.example.kind", "sbom"), ("org.example.q", "a=b")],
    )
    .await;
    assert_listed(&b, repo, subject.digest(), &[&d1]).await;

    let ftag = fallback_tag(subject.digest());
    if b.has_api() {
        // The PUT was answered with OCI-Subject: no fallback tag.
        assert_eq!(
            tags(&http, repo).await,
            ["v1"],
            "fallback tag written although the API is there"
        );
    } else {
        assert_eq!(tags(&http, repo).await, [ftag.clone(), "v1".to_string()]);
        let idx = fallback_index(&http, repo, subject.digest()).await.unwrap();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 1, "{idx}");
    }

    // By digest, a second referrer: the fallback index gets a second entry, the first one kept intact.
    let sig = random(fresh_seed() ^ 2, 64);
    write_files(work.path(), &[("sig.bin", &sig)]);
    let d2 = attach_ok(
        work.path(),
        &b.at(repo, subject.digest()),
        AT_SIG,
        &[],
        &["sig.bin"],
    );
    assert_ne!(d1, d2);
    check_referrer_manifest(
        &http,
        repo,
        &d2,
        &subject.top,
        AT_SIG,
        &[Attached {
            title: "sig.bin",
            data: &sig,
            media_type: OCTET,
        }],
        &[],
    )
    .await;
    assert_listed(&b, repo, subject.digest(), &[&d1, &d2]).await;
    if !b.has_api() {
        let idx = fallback_index(&http, repo, subject.digest()).await.unwrap();
        let list = idx["manifests"].as_array().unwrap();
        assert_eq!(
            list[0]["digest"],
            d1.as_str(),
            "the new entry is appended: {idx}"
        );
    }
    // The subject itself is untouched.
    let (bytes, _, _) = manifest(&http, repo, "v1").await;
    assert_eq!(bytes, subject.top.bytes);
}
on_backends!(attach_manifest);

// ---- 2. discover: recursion, index children, tree and JSON -------------------------------------------------

async fn discover(b: Backend) {
    let http = b.http();
    let repo = "disc/app";
    let img = push_index(&http, repo).await;
    let arm = child(&img, "linux/arm64").clone();
    let amd = child(&img, "linux/amd64").clone();
    let work = tmp();
    let w = work.path();
    write_files(
        w,
        &[
            ("sig.bin", &random(fresh_seed(), 80)),
            ("sbom.json", &random(fresh_seed() ^ 3, 900)),
            ("sbom.sig", &random(fresh_seed() ^ 4, 81)),
            ("arm.json", &random(fresh_seed() ^ 5, 300)),
        ],
    );
    let v1 = b.tag(repo, "v1");
    let r_sig = attach_ok(w, &v1, AT_SIG, &[], &["sig.bin"]);
    let r_sbom = attach_ok(w, &v1, AT_SBOM, &[], &["sbom.json"]);
    let r_sbom_sig = attach_ok(w, &b.at(repo, &r_sbom), AT_SBOM_SIG, &[], &["sbom.sig"]);
    let r_arm = attach_ok(
        w,
        &v1,
        AT_SBOM,
        &["--platform", "linux/arm64"],
        &["arm.json"],
    );

    // --platform: the subject is the arm64 child manifest, not the index.
    let (_, m, _) = manifest(&http, repo, &r_arm).await;
    assert_eq!(
        m["subject"]["digest"],
        arm.digest.as_str(),
        "--platform subject: {m}"
    );
    assert_eq!(m["subject"]["mediaType"], MT_MANIFEST);
    assert_eq!(m["subject"]["size"], arm.bytes.len());
    let (_, m, _) = manifest(&http, repo, &r_sbom_sig).await;
    assert_eq!(m["subject"]["digest"], r_sbom.as_str());

    // Where each one is listed.
    assert_listed(&b, repo, img.digest(), &[&r_sig, &r_sbom]).await;
    assert_listed(&b, repo, &arm.digest, &[&r_arm]).await;
    assert_listed(&b, repo, &amd.digest, &[]).await;
    assert_listed(&b, repo, &r_sbom, &[&r_sbom_sig]).await;

    // JSON
    let known = [
        img.digest(),
        arm.digest.as_str(),
        amd.digest.as_str(),
        r_sig.as_str(),
        r_sbom.as_str(),
        r_sbom_sig.as_str(),
        r_arm.as_str(),
    ];
    let js = Discovered::parse(sigil_ok(w, &["discover", "-o", "json", &v1]));
    js.one(&r_sig, AT_SIG);
    js.one(&r_sbom, AT_SBOM);
    js.one(&r_sbom_sig, AT_SBOM_SIG);
    js.one(&r_arm, AT_SBOM);
    js.assert_under(&r_sbom_sig, &r_sbom);
    js.assert_under(&r_arm, &arm.digest);
    assert!(
        !js.is_under(&r_arm, &amd.digest) && !js.is_under(&r_arm, &r_sig),
        "r_arm must sit under the arm64 child only:\n{}",
        js.raw
    );
    assert!(!js.is_under(&r_sig, &r_sbom) && !js.is_under(&r_sbom, &r_sig));
    assert_eq!(
        js.unknown(&known),
        Vec::<String>::new(),
        "unknown digests:\n{}",
        js.raw
    );

    // Tree
    let tree = sigil_ok(w, &["discover", &v1]);
    let tree2 = sigil_ok(w, &["discover", "-o", "tree", &v1]);
    assert_eq!(tree, tree2, "tree is the default output");
    let first = tree.lines().next().unwrap_or("");
    assert!(
        first.contains(img.digest()) || first.contains(&v1),
        "the tree's first line names the subject:\n{tree}"
    );
    for r in [&r_sig, &r_sbom, &r_sbom_sig, &r_arm] {
        assert_tree_under(&tree, r, first.trim());
    }
    assert_tree_under(&tree, &r_sbom_sig, &r_sbom);
    assert_tree_under(&tree, &r_arm, &arm.digest);
    // Like `oras discover -o tree`: referrers hang below a line naming their artifact type; a platform
    // child is shown with its platform.
    assert_tree_under(&tree, &r_sig, AT_SIG);
    assert_tree_under(&tree, &r_sbom, AT_SBOM);
    assert_tree_under(&tree, &r_sbom_sig, AT_SBOM_SIG);
    assert_tree_under(&tree, &r_arm, "linux/arm64");
    for at in [AT_SIG, AT_SBOM, AT_SBOM_SIG] {
        assert!(
            tree.contains(at),
            "tree must name the artifact type {at}:\n{tree}"
        );
    }

    // Table: one referrer per line (its first digest; the subject may follow).
    let table = sigil_ok(w, &["discover", "-o", "table", &v1]);
    for r in [&r_sig, &r_sbom, &r_sbom_sig, &r_arm] {
        assert_eq!(
            table
                .lines()
                .filter(
                    |l| l.split_whitespace().find(|t| t.starts_with("sha256:")) == Some(r.as_str())
                )
                .count(),
            1,
            "table lists {r} once:\n{table}"
        );
    }

    // --artifact-type filters.
    let js = Discovered::parse(sigil_ok(
        w,
        &["discover", "-o", "json", "--artifact-type", AT_SBOM, &v1],
    ));
    js.one(&r_sbom, AT_SBOM);
    js.one(&r_arm, AT_SBOM);
    js.absent(&r_sig);
    let js = Discovered::parse(sigil_ok(
        w,
        &[
            "discover",
            "-o",
            "json",
            "--artifact-type",
            AT_SIG,
            "--artifact-type",
            AT_SBOM,
            &v1,
        ],
    ));
    js.one(&r_sig, AT_SIG);
    js.one(&r_sbom, AT_SBOM);

    // --depth 1: no referrers of referrers.
    let js = Discovered::parse(sigil_ok(
        w,
        &["discover", "-o", "json", "--depth", "1", &v1],
    ));
    js.one(&r_sig, AT_SIG);
    js.one(&r_sbom, AT_SBOM);
    js.absent(&r_sbom_sig);

    // A platform child by digest: only its referrer.
    let js = Discovered::parse(sigil_ok(
        w,
        &["discover", "-o", "json", &b.at(repo, &arm.digest)],
    ));
    js.one(&r_arm, AT_SBOM);
    for r in [&r_sig, &r_sbom, &r_sbom_sig] {
        js.absent(r);
    }
    // --platform keeps only that child of the index (sigil shows the index's own referrers too; `oras
    // discover --platform` would start at the child instead: not pinned here).
    let js = Discovered::parse(sigil_ok(
        w,
        &["discover", "-o", "json", "--platform", "linux/arm64", &v1],
    ));
    js.one(&r_arm, AT_SBOM);
    js.assert_under(&r_arm, &arm.digest);
    js.absent(&amd.digest);

    // The index by digest: its children are subjects too (the issue: discover lists referrers "through
    // index children"), whatever the reference form.
    let by_digest = b.at(repo, img.digest());
    let js = Discovered::parse(sigil_ok(w, &["discover", "-o", "json", &by_digest]));
    js.one(&r_sig, AT_SIG);
    js.one(&r_sbom_sig, AT_SBOM_SIG);
    let found = js.find(&r_arm);
    assert!(
        found.len() == 1 && js.is_under(&r_arm, &arm.digest),
        "discover {by_digest} (an index by digest) must show {r_arm} below the arm64 child {}:\n{}",
        arm.digest,
        js.raw
    );
    let tree = sigil_ok(w, &["discover", &by_digest]);
    assert_tree_under(&tree, &r_arm, &arm.digest);
}
on_backends!(discover);

// ---- 3. pull ---------------------------------------------------------------------------------------------

async fn pull(b: Backend) {
    let http = b.http();
    let repo = "pull/app";
    let subject = push_small_image(&http, repo, "v1", fresh_seed()).await;
    let work = tmp();
    let w = work.path();
    let a = random(fresh_seed(), 5000);
    let big = random(fresh_seed() ^ 7, 300_000);
    write_files(w, &[("a.txt", &a), ("big.bin", &big)]);
    let d = attach_ok(
        w,
        &b.tag(repo, "v1"),
        AT_SBOM,
        &[],
        &["a.txt:text/plain", "big.bin"],
    );

    let out = w.join("out/nested");
    let out_s = out.to_str().unwrap();
    sigil_ok(w, &["pull", &b.at(repo, &d), "-o", out_s]);
    assert!(fs::read(out.join("a.txt")).unwrap() == a, "a.txt differs");
    assert!(
        fs::read(out.join("big.bin")).unwrap() == big,
        "big.bin differs"
    );
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.txt", "big.bin"], "pull wrote other files");
    let _ = subject;
}
on_backends!(pull);

// ---- 4. copy --referrers ---------------------------------------------------------------------------------

/// The source of the copy scenarios: an index with referrers on the index, on both children, a referrer of
/// a referrer, and cosign-style digest tags for the index (`.sig`) and the arm64 child (`.att`).
struct CopySource {
    img: Image,
    r_sig: String,
    r_sbom: String,
    r_sbom_sig: String,
    r_arm: String,
    r_amd: String,
    sig_tag: String,
    att_tag: String,
    sig_digest: String,
    att_digest: String,
    _work: tempfile::TempDir,
}

impl CopySource {
    fn arm(&self) -> &Doc {
        child(&self.img, "linux/arm64")
    }
    fn amd(&self) -> &Doc {
        child(&self.img, "linux/amd64")
    }
    fn referrers(&self) -> [&str; 5] {
        [
            &self.r_sig,
            &self.r_sbom,
            &self.r_sbom_sig,
            &self.r_arm,
            &self.r_amd,
        ]
    }
}

async fn copy_source(src: &Backend, repo: &str) -> CopySource {
    let http = src.http();
    let img = push_index(&http, repo).await;
    let work = tmp();
    let w = work.path();
    write_files(
        w,
        &[
            ("sig.bin", &random(fresh_seed(), 60)),
            ("sbom.json", &random(fresh_seed() ^ 11, 2000)),
            ("sbom.sig", &random(fresh_seed() ^ 12, 61)),
            ("arm.json", &random(fresh_seed() ^ 13, 400)),
            ("amd.json", &random(fresh_seed() ^ 14, 401)),
        ],
    );
    let v1 = src.tag(repo, "v1");
    let r_sig = attach_ok(w, &v1, AT_SIG, &["-a", "org.example.k=v"], &["sig.bin"]);
    let r_sbom = attach_ok(w, &v1, AT_SBOM, &[], &["sbom.json"]);
    let r_sbom_sig = attach_ok(w, &src.at(repo, &r_sbom), AT_SBOM_SIG, &[], &["sbom.sig"]);
    let r_arm = attach_ok(
        w,
        &v1,
        AT_SBOM,
        &["--platform", "linux/arm64"],
        &["arm.json"],
    );
    let r_amd = attach_ok(
        w,
        &v1,
        AT_SBOM,
        &["--platform", "linux/amd64"],
        &["amd.json"],
    );
    let arm = child(&img, "linux/arm64").digest.clone();
    let sig_tag = format!("{}.sig", fallback_tag(img.digest()));
    let att_tag = format!("{}.att", fallback_tag(&arm));
    let sig_digest = push_small_image(&http, repo, &sig_tag, fresh_seed())
        .await
        .digest()
        .to_string();
    let att_digest = push_small_image(&http, repo, &att_tag, fresh_seed() ^ 99)
        .await
        .digest()
        .to_string();
    CopySource {
        img,
        r_sig,
        r_sbom,
        r_sbom_sig,
        r_arm,
        r_amd,
        sig_tag,
        att_tag,
        sig_digest,
        att_digest,
        _work: work,
    }
}

/// Asserts `dst` holds the index of `s`, every referrer byte for byte with its blobs, lists them where
/// they belong, and has exactly the expected tags.
async fn assert_copied(
    src: &Backend,
    s: &CopySource,
    src_repo: &str,
    dst: &Backend,
    repo: &str,
    digest_tags: bool,
    extra_on_index: &[&str],
) {
    let sh = src.http();
    let dh = dst.http();
    s.img.assert_served(&dh, repo, "v1").await;
    for r in s.referrers() {
        let (sb, m, _) = manifest(&sh, src_repo, r).await;
        let (db, _, ct) = manifest(&dh, repo, r).await;
        assert!(sb == db, "referrer {r} differs after copy");
        assert_eq!(ct, MT_MANIFEST);
        for l in m["layers"].as_array().unwrap().iter().chain([&m["config"]]) {
            let d = l["digest"].as_str().unwrap();
            let (st, body) = dh.get_blob(repo, d).await;
            assert_eq!(st, StatusCode::OK, "blob {d} of referrer {r} not copied");
            assert_eq!(sh.get_blob(src_repo, d).await.1, body);
        }
    }
    let mut on_index = vec![s.r_sig.as_str(), s.r_sbom.as_str()];
    on_index.extend_from_slice(extra_on_index);
    assert_listed(dst, repo, s.img.digest(), &on_index).await;
    assert_listed(dst, repo, &s.arm().digest, &[&s.r_arm]).await;
    assert_listed(dst, repo, &s.amd().digest, &[&s.r_amd]).await;
    assert_listed(dst, repo, &s.r_sbom, &[&s.r_sbom_sig]).await;
    assert_listed(dst, repo, &s.r_sig, &[]).await;

    let mut want = vec!["v1".to_string()];
    if !dst.has_api() {
        for d in [s.img.digest(), &s.arm().digest, &s.amd().digest, &s.r_sbom] {
            want.push(fallback_tag(d));
        }
    }
    if digest_tags {
        want.push(s.sig_tag.clone());
        want.push(s.att_tag.clone());
        assert_eq!(
            digest_of(&manifest(&dh, repo, &s.sig_tag).await.0),
            s.sig_digest,
            "{} copied with other content",
            s.sig_tag
        );
        assert_eq!(
            digest_of(&manifest(&dh, repo, &s.att_tag).await.0),
            s.att_digest
        );
    }
    want.sort();
    assert_eq!(
        tags(&dh, repo).await,
        want,
        "tags after copy --referrers ({:?})",
        dst.kind
    );
}

async fn copy_referrers(dst: Backend) {
    let src = Backend::start(Kind::SigilApi).unwrap();
    let s = copy_source(&src, "src/app").await;
    let w = s._work.path().to_path_buf();
    let from = src.tag("src/app", "v1");
    let to = dst.tag("dst/app", "v1");

    // The image alone first, and a referrer that exists only on the target: copy --referrers must merge
    // into the target's fallback index, not replace it.
    sigil_ok(&w, &["copy", "--no-progress", &from, &to]);
    write_files(&w, &[("local.txt", &random(fresh_seed() ^ 77, 42))]);
    let r_local = attach_ok(&w, &to, AT_SIG, &[], &["local.txt"]);

    let out = sigil_ok(&w, &["copy", "--no-progress", "--referrers", &from, &to]);
    assert_eq!(out.trim(), s.img.digest(), "copy prints the digest");
    assert_copied(&src, &s, "src/app", &dst, "dst/app", false, &[&r_local]).await;

    // Again, with digest tags: adds the cosign tags, changes nothing else (no duplicate index entries).
    sigil_ok(
        &w,
        &[
            "copy",
            "--no-progress",
            "--referrers",
            "--digest-tags",
            &from,
            &to,
        ],
    );
    assert_copied(&src, &s, "src/app", &dst, "dst/app", true, &[&r_local]).await;

    // sigil discovers the copy like the original.
    let js = Discovered::parse(sigil_ok(&w, &["discover", "-o", "json", &to]));
    for (r, at) in [
        (&s.r_sig, AT_SIG),
        (&s.r_sbom, AT_SBOM),
        (&s.r_sbom_sig, AT_SBOM_SIG),
        (&s.r_arm, AT_SBOM),
        (&s.r_amd, AT_SBOM),
        (&r_local, AT_SIG),
    ] {
        js.one(r, at);
    }
    js.assert_under(&s.r_sbom_sig, &s.r_sbom);
    js.assert_under(&s.r_arm, &s.arm().digest);
    js.assert_under(&s.r_amd, &s.amd().digest);
}
on_backends!(copy_referrers);

/// The source keeps its referrers in fallback indexes (no API); the target has the API. Also: `discover
/// --digest-tags` shows the cosign tags, and a plain copy does not take referrers along.
#[tokio::test]
async fn copy_referrers_from_fallback_source_to_api_target() {
    let src = Backend::start(Kind::SigilNoApi).unwrap();
    let dst = Backend::start(Kind::SigilApi).unwrap();
    let s = copy_source(&src, "src/app").await;
    let w = s._work.path().to_path_buf();
    let from = src.tag("src/app", "v1");

    let plain = sigil_ok(&w, &["discover", "-o", "json", &from]);
    assert!(
        !plain.contains(&s.sig_tag) && !plain.contains(&s.sig_digest),
        "digest tags shown without --digest-tags:\n{plain}"
    );
    let with = sigil_ok(&w, &["discover", "-o", "json", "--digest-tags", &from]);
    for (t, d) in [(&s.sig_tag, &s.sig_digest), (&s.att_tag, &s.att_digest)] {
        assert!(
            with.contains(t.as_str()) || with.contains(d.as_str()),
            "discover --digest-tags must show {t}:\n{with}"
        );
    }
    let tree = sigil_ok(&w, &["discover", "--digest-tags", &from]);
    assert!(
        tree.contains(&s.sig_tag) || tree.contains(&s.sig_digest),
        "{tree}"
    );

    // Without --referrers, only the image.
    sigil_ok(
        &w,
        &["copy", "--no-progress", &from, &dst.tag("plain/app", "v1")],
    );
    s.img.assert_served(&dst.http(), "plain/app", "v1").await;
    assert_listed(&dst, "plain/app", s.img.digest(), &[]).await;
    assert_eq!(
        manifest_status(&dst.http(), "plain/app", &s.r_sig).await,
        StatusCode::NOT_FOUND
    );

    sigil_ok(
        &w,
        &[
            "copy",
            "--no-progress",
            "--referrers",
            "--digest-tags",
            &from,
            &dst.tag("dst/app", "v1"),
        ],
    );
    assert_copied(&src, &s, "src/app", &dst, "dst/app", true, &[]).await;
}

// ---- 5. delete -------------------------------------------------------------------------------------------

async fn delete(b: Backend) {
    let http = b.http();
    let repo = "del/app";
    let s = push_small_image(&http, repo, "v1", fresh_seed()).await;
    let s2 = push_small_image(&http, repo, "other", fresh_seed() ^ 5).await;
    let work = tmp();
    let w = work.path();
    write_files(
        w,
        &[
            ("1", &random(fresh_seed(), 10)),
            ("2", &random(fresh_seed() ^ 1, 11)),
            ("3", &random(fresh_seed() ^ 2, 12)),
            ("4", &random(fresh_seed() ^ 3, 13)),
        ],
    );
    let r1 = attach_ok(w, &b.tag(repo, "v1"), AT_SIG, &[], &["1"]);
    let r2 = attach_ok(w, &b.tag(repo, "v1"), AT_SBOM, &[], &["2"]);
    let r3 = attach_ok(w, &b.at(repo, &r2), AT_SBOM_SIG, &[], &["3"]);
    let r4 = attach_ok(w, &b.tag(repo, "other"), AT_SIG, &[], &["4"]);
    assert_listed(&b, repo, s.digest(), &[&r1, &r2]).await;

    // A referrer alone: gone, and no longer listed for its subject.
    sigil_ok(w, &["delete", &b.at(repo, &r1)]);
    assert_eq!(
        manifest_status(&http, repo, &r1).await,
        StatusCode::NOT_FOUND,
        "r1 after delete"
    );
    assert_listed(&b, repo, s.digest(), &[&r2]).await;
    assert_listed(&b, repo, &r2, &[&r3]).await;
    assert_eq!(
        manifest_status(&http, repo, s.digest()).await,
        StatusCode::OK
    );

    // The subject by tag, with everything referring to it (recursively).
    sigil_ok(w, &["delete", "--referrers", &b.tag(repo, "v1")]);
    for (what, d) in [
        ("subject", s.digest()),
        ("r2", r2.as_str()),
        ("r3 (referrer of r2)", r3.as_str()),
    ] {
        assert_eq!(
            manifest_status(&http, repo, d).await,
            StatusCode::NOT_FOUND,
            "{what} after delete --referrers"
        );
    }
    assert_eq!(
        manifest_status(&http, repo, "v1").await,
        StatusCode::NOT_FOUND,
        "tag v1"
    );
    // Fallback indexes of deleted subjects: gone or empty.
    for d in [s.digest(), r2.as_str()] {
        if let Some(idx) = fallback_index(&http, repo, d).await {
            assert_eq!(
                idx["manifests"],
                json!([]),
                "stale fallback index of deleted {d}: {idx}"
            );
        }
    }
    if b.has_api() {
        assert_listed(&b, repo, s.digest(), &[]).await;
    }
    // The rest is untouched.
    let (bytes, _, _) = manifest(&http, repo, "other").await;
    assert_eq!(bytes, s2.top.bytes);
    assert_eq!(manifest_status(&http, repo, &r4).await, StatusCode::OK);
    assert_listed(&b, repo, s2.digest(), &[&r4]).await;
    let mut want = vec!["other".to_string()];
    if !b.has_api() {
        want.push(fallback_tag(s2.digest()));
    }
    want.sort();
    let mut got = tags(&http, repo).await;
    // An emptied (rather than deleted) fallback index of the deleted subject may remain as a tag.
    got.retain(|t| t != &fallback_tag(s.digest()) && t != &fallback_tag(&r2));
    assert_eq!(got, want, "tags after delete --referrers");

    // Deleting what does not exist fails cleanly.
    let out = sigil_in(w, &["delete", &b.at(repo, &r1)]);
    expect_clean_failure("sigil delete of a deleted manifest", &out);

    // A referrer of a platform child of an index: the child's listing is updated, the index's untouched.
    let img = push_index(&http, "del/multi").await;
    let arm = child(&img, "linux/arm64").digest.clone();
    let r5 = attach_ok(
        w,
        &b.tag("del/multi", "v1"),
        AT_SBOM,
        &["--platform", "linux/arm64"],
        &["1"],
    );
    let r6 = attach_ok(
        w,
        &b.tag("del/multi", "v1"),
        AT_SBOM,
        &["--platform", "linux/arm64"],
        &["2"],
    );
    let r7 = attach_ok(w, &b.tag("del/multi", "v1"), AT_SIG, &[], &["3"]);
    sigil_ok(w, &["delete", &b.at("del/multi", &r5)]);
    assert_listed(&b, "del/multi", &arm, &[&r6]).await;
    assert_listed(&b, "del/multi", img.digest(), &[&r7]).await;
    sigil_ok(w, &["delete", "--referrers", &b.at("del/multi", &r6)]);
    assert_listed(&b, "del/multi", &arm, &[]).await;
    if let Some(idx) = fallback_index(&http, "del/multi", &arm).await {
        assert_eq!(idx["manifests"], json!([]), "{idx}");
    }
    img.assert_served(&http, "del/multi", "v1").await;
}
on_backends!(delete);

/// A title in a subdirectory (as `oras push dir/file` writes it) stays inside the output directory, so
/// it is not an escape: pull writes DIR/docs/readme.md.
#[tokio::test]
async fn pull_writes_nested_titles_inside_the_output_dir() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let data = random(fresh_seed(), 321);
    let d = http.push_blob("nested/art", &data).await;
    http.push_blob("nested/art", EMPTY_JSON).await;
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": AT_SBOM,
        "config": {"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": OCTET, "digest": d, "size": data.len(),
                    "annotations": {TITLE: "docs/readme.md"}}],
    });
    let md = http
        .push_manifest("nested/art", "v1", MT_MANIFEST, &json_bytes(&m))
        .await;
    let work = tmp();
    let w = work.path();
    sigil_ok(
        w,
        &[
            "pull",
            &format!("{}/nested/art@{md}", reg.addr()),
            "-o",
            "out",
        ],
    );
    assert!(fs::read(w.join("out/docs/readme.md")).unwrap() == data);
}

/// Runs `sigil ARGS`, killing it after `secs` seconds; `None` when it had to be killed.
fn sigil_with_deadline(cwd: &Path, args: &[&str], secs: u64) -> Option<Output> {
    let mut cmd = sigil_command(args);
    cmd.current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Fallback indexes are written by any client: one that lists the subject as a referrer of its own
/// referrer (a cycle no real manifest can form) must not send discover or delete --referrers into an
/// endless loop. Either a result or one readable error line is fine.
#[tokio::test]
async fn fabricated_cycle_in_fallback_indexes_terminates() {
    let b = Backend::start(Kind::SigilNoApi).unwrap();
    let http = b.http();
    let repo = "cycle/app";
    let subject = push_small_image(&http, repo, "v1", fresh_seed()).await;
    let work = tmp();
    let w = work.path();
    write_files(w, &[("f", &random(fresh_seed(), 20))]);
    let r = attach_ok(w, &b.tag(repo, "v1"), AT_SIG, &[], &["f"]);
    // sha256-<r> lists the subject as if it referred to r.
    let mut back = subject.top.descriptor();
    back["artifactType"] = json!(MT_CONFIG);
    let idx = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [back]});
    http.push_manifest(repo, &fallback_tag(&r), MT_INDEX, &json_bytes(&idx))
        .await;
    for args in [
        vec!["discover", "-o", "json"],
        vec!["discover"],
        vec!["delete", "--referrers"],
    ] {
        let mut a = args.clone();
        let target = b.tag(repo, "v1");
        a.push(&target);
        let out = sigil_with_deadline(w, &a, 30)
            .unwrap_or_else(|| panic!("sigil {} loops on a fabricated cycle", a.join(" ")));
        let stderr = text(&out.stderr);
        assert!(
            !stderr.contains("panicked"),
            "sigil {}: {stderr}",
            a.join(" ")
        );
        if !out.status.success() {
            expect_clean_failure(&format!("sigil {}", a.join(" ")), &out);
        }
    }
}

// ---- 6. --stats ------------------------------------------------------------------------------------------

/// Pushes `n` referrers of `subject` straight over HTTP (artifacts with the empty layer).
async fn push_referrers(http: &Http, repo: &str, subject: &Doc, n: usize) -> Vec<String> {
    http.push_blob(repo, EMPTY_JSON).await;
    let mut out = Vec::new();
    for i in 0..n {
        let v = i.to_string();
        let doc = Artifact::new(AT_SIG, subject)
            .annotate("org.example.i", &v)
            .to_doc();
        out.push(
            http.push_manifest(repo, &doc.digest, MT_MANIFEST, &doc.bytes)
                .await,
        );
    }
    out
}

/// discover on a digest reference, registry with the API, no referrers of referrers: one GET of the
/// subject (it proves the subject exists and tells whether it is an index whose platform children must
/// be searched too), one request per page of the subject's referrers, plus one referrers request per
/// referrer found (the recursion).
#[tokio::test]
async fn stats_discover_is_one_request_per_page_plus_one_per_referrer() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let subject = push_small_image(&http, "stats/app", "v1", fresh_seed()).await;
    let rs = push_referrers(&http, "stats/app", &subject.top, 3).await;
    let r = format!("{}/stats/app@{}", reg.addr(), subject.digest());
    let out = sigil(&["discover", "--stats", "-o", "json", &r]);
    let js = Discovered::parse(text(&expect_success("sigil discover --stats", &out)));
    for d in &rs {
        js.one(d, AT_SIG);
    }
    let pages = 1;
    assert_eq!(
        requests_stat(&out),
        1 + pages + rs.len() as u64,
        "discover {r}: requests = subject GET (1) + pages (1) + referrers found (3)\nstderr: {}",
        text(&out.stderr)
    );

    // No referrers at all: the subject GET and one referrers request.
    let lonely = push_small_image(&http, "stats/app", "v2", fresh_seed() ^ 1).await;
    let out = sigil(&[
        "discover",
        "--stats",
        "-o",
        "json",
        &format!("{}/stats/app@{}", reg.addr(), lonely.digest()),
    ]);
    expect_success("sigil discover --stats (no referrers)", &out);
    assert_eq!(
        requests_stat(&out),
        2,
        "discover without referrers: {}",
        text(&out.stderr)
    );
}

/// Pagination: `--referrers-page-size 2` and 5 referrers; discover lists all 5 with the subject GET, 3
/// pages and 5 recursion requests.
#[tokio::test]
async fn discover_follows_referrers_pagination() {
    let reg = SigilRegistry::start(ServeOpts {
        referrers_page_size: Some(2),
        ..ServeOpts::default()
    });
    let http = reg.http();
    let subject = push_small_image(&http, "page/app", "v1", fresh_seed()).await;
    let rs = push_referrers(&http, "page/app", &subject.top, 5).await;
    let first = Http::send(http.get(&format!("/v2/page/app/referrers/{}", subject.digest()))).await;
    assert!(
        next_link(&first).is_some(),
        "the registry does not paginate: the test proves nothing"
    );
    let r = format!("{}/page/app@{}", reg.addr(), subject.digest());
    let out = sigil(&["discover", "--stats", "-o", "json", &r]);
    let js = Discovered::parse(text(&expect_success("sigil discover", &out)));
    for d in &rs {
        js.one(d, AT_SIG);
    }
    assert_eq!(js.unknown(&[subject.digest()]).len(), 5, "{}", js.raw);
    assert_eq!(
        requests_stat(&out),
        1 + 3 + 5,
        "5 referrers at 2 per page: subject GET + 3 pages + 5 recursion requests\nstderr: {}",
        text(&out.stderr)
    );
    let tree = sigil_ok(Path::new("/"), &["discover", &r]);
    for d in &rs {
        assert_tree_under(&tree, d, subject.digest());
    }
}

/// attach with the API: each missing blob costs HEAD + POST + PUT, each present one a HEAD, then one
/// manifest PUT, plus at most one HEAD to resolve the subject.
#[tokio::test]
async fn stats_attach_counts_blob_and_manifest_requests() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let subject = push_small_image(&http, "stats/att", "v1", fresh_seed()).await;
    let work = tmp();
    let w = work.path();
    write_files(
        w,
        &[
            ("a", &random(fresh_seed(), 100)),
            ("b", &random(fresh_seed() ^ 1, 200)),
        ],
    );
    let check = |out: &Output, blobs_missing: u64, blobs_present: u64, what: &str| {
        expect_success(what, out);
        let n = requests_stat(out);
        let base = blobs_missing * 3 + blobs_present + 1;
        assert!(
            n == base || n == base + 1,
            "{what}: {blobs_missing} missing blobs x (HEAD+POST+PUT) + {blobs_present} present x HEAD + 1 manifest PUT \
             (+ at most 1 HEAD for the subject) = {base} or {}, got {n}\nstderr: {}",
            base + 1,
            text(&out.stderr)
        );
        n
    };
    // New: the empty config and both files are missing.
    let v1 = format!("{}/stats/att:v1", reg.addr());
    let out = sigil_in(
        w,
        &[
            "attach",
            "--stats",
            "--artifact-type",
            AT_SBOM,
            &v1,
            "a",
            "b",
        ],
    );
    let n1 = check(&out, 3, 0, "first attach (by tag)");
    // Same files again: every blob is there.
    let out = sigil_in(
        w,
        &[
            "attach",
            "--stats",
            "--artifact-type",
            AT_SIG,
            &v1,
            "a",
            "b",
        ],
    );
    let n2 = check(&out, 0, 3, "second attach (by tag)");
    // By digest.
    let at = format!("{}/stats/att@{}", reg.addr(), subject.digest());
    let out = sigil_in(
        w,
        &[
            "attach",
            "--stats",
            "--artifact-type",
            AT_SIG,
            "-a",
            "x=y",
            &at,
            "a",
        ],
    );
    let n3 = check(&out, 0, 2, "third attach (by digest)");
    eprintln!("attach requests: {n1}, {n2}, {n3}");
    assert_eq!(
        api_referrers(&http, "stats/att", subject.digest())
            .await
            .len(),
        3
    );
}

// ---- oras-py interoperability ----------------------------------------------------------------------------

fn oras_python() -> Option<PathBuf> {
    let py = oracles_home().join("venv/bin/python");
    if py.is_file() {
        Some(py)
    } else {
        skip(&format!(
            "no oras-py venv at {} (scripts/install-test-deps.sh)",
            py.display()
        ))
    }
}

fn oras(py: &Path, cwd: &Path, args: &[&str]) -> Value {
    let mut cmd = Command::new(py);
    cmd.arg(repo_root().join("scripts/oracles/oras-push.py"))
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env("SIGIL_ORACLES_HOME", oracles_home());
    let out = run_command(cmd);
    let stdout = expect_success(&format!("oras-push.py {}", args.join(" ")), &out);
    serde_json::from_slice(&stdout).unwrap()
}

/// Referrers pushed by oras-py (artifactType with the empty config; a config media type without
/// artifactType) are discovered by sigil, also as subjects of a sigil attach.
#[tokio::test]
async fn oras_py_referrers_are_discovered_by_sigil() {
    let Some(py) = oras_python() else {
        return;
    };
    let reg = Backend::start(Kind::SigilApi).unwrap();
    let http = reg.http();
    let subject = push_small_image(&http, "oras/app", "v1", fresh_seed()).await;
    let work = tmp();
    let w = work.path();
    write_files(
        w,
        &[
            ("sbom.json", &random(fresh_seed(), 700)),
            ("sig.bin", &random(fresh_seed() ^ 1, 70)),
        ],
    );
    let subj = reg.at("oras/app", subject.digest());
    let p1 = oras(
        &py,
        w,
        &[
            "push",
            "--artifact-type",
            AT_SBOM,
            &subj,
            "sbom.json:application/spdx+json",
        ],
    );
    let d1 = p1["digest"].as_str().unwrap().to_string();
    let cfg_type = "application/vnd.example.config.v1+json";
    let p2 = oras(
        &py,
        w,
        &["push", "--config-type", cfg_type, &subj, "sig.bin"],
    );
    let d2 = p2["digest"].as_str().unwrap().to_string();
    let d3 = attach_ok(w, &reg.at("oras/app", &d1), AT_SBOM_SIG, &[], &["sig.bin"]);

    let js = Discovered::parse(sigil_ok(
        w,
        &["discover", "-o", "json", &reg.tag("oras/app", "v1")],
    ));
    js.one(&d1, AT_SBOM);
    js.one(&d2, cfg_type);
    js.one(&d3, AT_SBOM_SIG);
    js.assert_under(&d3, &d1);
    let tree = sigil_ok(w, &["discover", &subj]);
    assert_tree_under(&tree, &d3, &d1);
    assert!(tree.contains(cfg_type), "{tree}");

    // sigil pull reads oras-py's artifact by its title.
    let out = w.join("pulled");
    sigil_ok(
        w,
        &[
            "pull",
            &reg.at("oras/app", &d1),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(fs::read(out.join("sbom.json")).unwrap() == fs::read(w.join("sbom.json")).unwrap());
}

/// Artifacts attached by sigil are read back by oras-py byte for byte, names and media types included.
async fn oras_py_reads_sigil_artifacts(b: Backend) {
    let Some(py) = oras_python() else {
        return;
    };
    let http = b.http();
    let subject = push_small_image(&http, "orasread/app", "v1", fresh_seed()).await;
    let work = tmp();
    let w = work.path();
    let sbom = random(fresh_seed(), 40_000);
    let sig = random(fresh_seed() ^ 1, 33);
    write_files(w, &[("sbom.json", &sbom), ("sig.bin", &sig)]);
    let d = attach_ok(
        w,
        &b.tag("orasread/app", "v1"),
        AT_SBOM,
        &[],
        &["sbom.json:application/spdx+json", "sig.bin"],
    );
    let out = w.join("oras-out");
    let pulled = oras(
        &py,
        w,
        &[
            "pull",
            "--out",
            out.to_str().unwrap(),
            &b.at("orasread/app", &d),
        ],
    );
    assert_eq!(pulled["digest"], d.as_str());
    assert_eq!(pulled["manifest"]["subject"]["digest"], subject.digest());
    assert_eq!(pulled["manifest"]["artifactType"], AT_SBOM);
    let files = pulled["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{pulled}");
    assert!(
        fs::read(out.join("sbom.json")).unwrap() == sbom,
        "oras-py read other sbom.json bytes"
    );
    assert!(
        fs::read(out.join("sig.bin")).unwrap() == sig,
        "oras-py read other sig.bin bytes"
    );
    assert_eq!(files[0]["mediaType"], "application/spdx+json");
    assert_eq!(files[1]["mediaType"], OCTET);
}
on_backends!(oras_py_reads_sigil_artifacts);

// ---- concurrent attaches (fallback index under contention) -------------------------------------------------

const WRITERS: usize = 20;

/// Starts `WRITERS` `sigil attach` processes at once against one subject; returns each one's output.
fn attach_concurrently(w: &Path, subject_ref: &str) -> Vec<Output> {
    for i in 0..WRITERS {
        write_files(
            w,
            &[(
                &format!("f{i}"),
                &random(fresh_seed() ^ (i as u64 * 7919), 50 + i),
            )],
        );
    }
    let barrier = std::sync::Barrier::new(WRITERS);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..WRITERS)
            .map(|i| {
                let barrier = &barrier;
                sc.spawn(move || {
                    let name = format!("f{i}");
                    let ann = format!("org.example.writer={i}");
                    let mut cmd = sigil_command(&[
                        "attach",
                        "--artifact-type",
                        AT_SIG,
                        "-a",
                        &ann,
                        subject_ref,
                        &name,
                    ]);
                    cmd.current_dir(w);
                    barrier.wait();
                    run_command(cmd)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `--no-referrers-api` on sigil's registry: the fallback index is updated with If-Match and retried on
/// 412, so all 20 concurrent attaches succeed and all 20 are in the index, once each.
#[tokio::test]
async fn concurrent_attach_fallback_index_sigil_no_api() {
    let b = Backend::start(Kind::SigilNoApi).unwrap();
    let http = b.http();
    let subject = push_small_image(&http, "race/app", "v1", fresh_seed()).await;
    let work = tmp();
    let outs = attach_concurrently(work.path(), &b.tag("race/app", "v1"));
    let mut digests = Vec::new();
    for (i, o) in outs.iter().enumerate() {
        let stdout = text(&expect_success(&format!("concurrent attach #{i}"), o));
        assert!(is_digest(stdout.trim()), "attach #{i} printed {stdout:?}");
        digests.push(stdout.trim().to_string());
    }
    let distinct: BTreeSet<&String> = digests.iter().collect();
    assert_eq!(distinct.len(), WRITERS);
    let refs: Vec<&str> = digests.iter().map(|s| s.as_str()).collect();
    assert_listed(&b, "race/app", subject.digest(), &refs).await;
    let js = Discovered::parse(sigil_ok(
        work.path(),
        &["discover", "-o", "json", &b.tag("race/app", "v1")],
    ));
    for d in &refs {
        js.one(d, AT_SIG);
    }
}

/// The same against docker-registry 2.8.2, which has no conditional PUT. sigil re-reads and re-merges the
/// index, which narrows but cannot close the window between its GET and PUT: a concurrent writer may still
/// overwrite an entry after it was written (a lost update), and no client-side check can prevent that.
/// What sigil does guarantee, and what is asserted:
/// - every attach either succeeds, printing its digest, or fails with a readable error;
/// - the referrer manifest of every successful attach exists, with the subject;
/// - the fallback index stays a valid OCI index, lists no digest twice, and lists only real referrers of
///   the subject with correct descriptors (no corruption, no foreign entries), and at least one entry;
/// - `sigil discover` shows exactly what the index lists.
///
/// How many entries were lost is printed, not asserted.
#[tokio::test]
async fn concurrent_attach_fallback_index_docker_registry() {
    let Some(b) = Backend::start(Kind::Docker) else {
        return;
    };
    let http = b.http();
    let subject = push_small_image(&http, "race/app", "v1", fresh_seed()).await;
    let work = tmp();
    let outs = attach_concurrently(work.path(), &b.tag("race/app", "v1"));
    let mut ok = Vec::new();
    let mut failed = 0;
    for (i, o) in outs.iter().enumerate() {
        if o.status.success() {
            let stdout = text(&o.stdout);
            assert!(is_digest(stdout.trim()), "attach #{i} printed {stdout:?}");
            ok.push(stdout.trim().to_string());
        } else {
            failed += 1;
            let stderr = text(&o.stderr);
            assert!(
                !stderr.trim().is_empty() && !stderr.contains("panicked"),
                "attach #{i}: {stderr}"
            );
        }
    }
    for d in &ok {
        let (_, m, _) = manifest(&http, "race/app", d).await;
        assert_eq!(m["subject"]["digest"], subject.digest());
    }
    let idx = fallback_index(&http, "race/app", subject.digest())
        .await
        .expect("no fallback index after 20 attaches");
    let listed: Vec<String> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(!listed.is_empty(), "{idx}");
    let refs: Vec<&str> = listed.iter().map(|s| s.as_str()).collect();
    assert_listed(&b, "race/app", subject.digest(), &refs).await; // no duplicates, exact descriptors
    for d in &listed {
        let (_, m, _) = manifest(&http, "race/app", d).await;
        assert_eq!(
            m["subject"]["digest"],
            subject.digest(),
            "foreign entry {d}"
        );
    }
    let js = Discovered::parse(sigil_ok(
        work.path(),
        &["discover", "-o", "json", &b.tag("race/app", "v1")],
    ));
    for d in &refs {
        js.one(d, AT_SIG);
    }
    assert_eq!(
        js.unknown(&[subject.digest()]).len(),
        listed.len(),
        "{}",
        js.raw
    );
    let lost = ok.iter().filter(|d| !listed.contains(d)).count();
    eprintln!(
        "docker-registry 2.8.2, {WRITERS} concurrent attaches: {} succeeded, {failed} failed, {} listed, {lost} lost updates",
        ok.len(),
        listed.len()
    );
}

// ---- bad input -------------------------------------------------------------------------------------------

/// A subject that does not exist: non-zero exit, one readable stderr line, nothing pushed (no blob, no
/// repository, no tag, no referrer). Then a valid attach works (the failures were not a stub's).
async fn attach_missing_subject(b: Backend) {
    let http = b.http();
    let subject = push_small_image(&http, "bad/app", "v1", fresh_seed()).await;
    let work = tmp();
    let w = work.path();
    let data = random(fresh_seed(), 321);
    write_files(w, &[("f.txt", &data)]);
    let fd = digest_of(&data);
    let nowhere = digest_of(&random(fresh_seed() ^ 9, 10));
    let before = catalog(&http).await;
    for r in [
        b.tag("bad/app", "nope"),
        b.at("bad/app", &nowhere),
        b.at("bad/new", &nowhere),
    ] {
        let out = sigil_in(w, &["attach", "--artifact-type", AT_SIG, &r, "f.txt"]);
        expect_clean_failure(&format!("sigil attach {r} (no such subject)"), &out);
    }
    assert_eq!(catalog(&http).await, before, "a repository appeared");
    assert_eq!(tags(&http, "bad/app").await, ["v1"]);
    assert_eq!(
        blob_status(&http, "bad/app", &fd).await,
        StatusCode::NOT_FOUND,
        "file blob pushed"
    );
    assert_eq!(
        blob_status(&http, "bad/app", EMPTY_DIGEST).await,
        StatusCode::NOT_FOUND,
        "config blob pushed"
    );
    assert_listed(&b, "bad/app", &nowhere, &[]).await;
    assert_listed(&b, "bad/app", subject.digest(), &[]).await;

    // discover and pull of a missing tag fail the same way.
    let nope = b.tag("bad/app", "nope");
    expect_clean_failure(
        "sigil discover of a missing tag",
        &sigil_in(w, &["discover", &nope]),
    );
    expect_clean_failure(
        "sigil pull of a missing tag",
        &sigil_in(w, &["pull", &nope, "-o", "out"]),
    );
    assert!(!w.join("out").join("f.txt").exists());

    let d = attach_ok(w, &b.tag("bad/app", "v1"), AT_SIG, &[], &["f.txt"]);
    assert_listed(&b, "bad/app", subject.digest(), &[&d]).await;
}
on_backends!(attach_missing_subject);

/// A file that cannot be read (missing, a directory): nothing is pushed, not even the readable files.
async fn attach_unreadable_file(b: Backend) {
    let http = b.http();
    let subject = push_small_image(&http, "bad/app", "v1", fresh_seed()).await;
    let work = tmp();
    let w = work.path();
    let good = random(fresh_seed(), 777);
    write_files(w, &[("good.txt", &good)]);
    fs::create_dir(w.join("adir")).unwrap();
    for bad in ["missing.txt", "adir"] {
        let out = sigil_in(
            w,
            &[
                "attach",
                "--artifact-type",
                AT_SIG,
                &b.tag("bad/app", "v1"),
                "good.txt",
                bad,
            ],
        );
        let err = expect_clean_failure(&format!("sigil attach good.txt {bad}"), &out);
        assert!(err.contains(bad), "the error must name {bad}: {err}");
    }
    assert_eq!(
        blob_status(&http, "bad/app", &digest_of(&good)).await,
        StatusCode::NOT_FOUND,
        "good.txt pushed"
    );
    assert_eq!(tags(&http, "bad/app").await, ["v1"]);
    assert_listed(&b, "bad/app", subject.digest(), &[]).await;
    let d = attach_ok(w, &b.tag("bad/app", "v1"), AT_SIG, &[], &["good.txt"]);
    assert_listed(&b, "bad/app", subject.digest(), &[&d]).await;
}
on_backends!(attach_unreadable_file);

/// The fallback tag holds an image manifest, not an index: sigil leaves it alone and reports it (the
/// attach fails, naming the tag); attaching to another subject still works.
async fn fallback_tag_not_an_index(b: Backend) {
    let http = b.http();
    let repo = "bad/app";
    let subject = push_small_image(&http, repo, "v1", fresh_seed()).await;
    let ftag = fallback_tag(subject.digest());
    let squatter = push_small_image(&http, repo, &ftag, fresh_seed() ^ 3).await;
    let work = tmp();
    let w = work.path();
    write_files(w, &[("f", &random(fresh_seed(), 50))]);
    let out = sigil_in(
        w,
        &["attach", "--artifact-type", AT_SIG, &b.tag(repo, "v1"), "f"],
    );
    let err = expect_clean_failure("sigil attach with a non-index fallback tag", &out);
    assert!(
        err.contains(&ftag) || err.contains("index"),
        "the error must name the fallback tag: {err}"
    );
    let (bytes, _, ct) = manifest(&http, repo, &ftag).await;
    assert!(
        bytes == squatter.top.bytes && ct == MT_MANIFEST,
        "the fallback tag was overwritten"
    );

    // discover does not crash on it either.
    let out = sigil_in(w, &["discover", "-o", "json", &b.tag(repo, "v1")]);
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );

    let other = push_small_image(&http, repo, "v2", fresh_seed() ^ 4).await;
    let d = attach_ok(w, &b.tag(repo, "v2"), AT_SIG, &[], &["f"]);
    assert_listed(&b, repo, other.digest(), &[&d]).await;
}

#[tokio::test]
async fn fallback_tag_not_an_index_sigil_no_api() {
    fallback_tag_not_an_index(Backend::start(Kind::SigilNoApi).unwrap()).await;
}

#[tokio::test]
async fn fallback_tag_not_an_index_docker_registry() {
    if let Some(b) = Backend::start(Kind::Docker) {
        fallback_tag_not_an_index(b).await;
    }
}

/// Titles that would escape the output directory are refused and nothing is written outside it; an
/// ordinary title works (control).
#[tokio::test]
async fn pull_refuses_titles_escaping_the_output_dir() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let repo = "evil/app";
    let subject = push_small_image(&http, repo, "v1", fresh_seed()).await;
    let work = tmp();
    let w = work.path();
    let base = w.join("base");
    fs::create_dir_all(&base).unwrap();
    let abs_target = w.join("abs-escape.txt");
    let payload = random(fresh_seed(), 99);
    let pd = http.push_blob(repo, &payload).await;
    http.push_blob(repo, EMPTY_JSON).await;
    let artifact = |title: &str| {
        let m = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "artifactType": AT_SIG,
            "config": {"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
            "layers": [{"mediaType": OCTET, "digest": pd, "size": payload.len(),
                        "annotations": {TITLE: title}}],
            "subject": subject.top.descriptor(),
        });
        Doc::new(MT_MANIFEST, json_bytes(&m))
    };

    // Control: a plain title.
    let ok = artifact("fine.txt");
    http.push_manifest(repo, &ok.digest, MT_MANIFEST, &ok.bytes)
        .await;
    let out_dir = base.join("out");
    sigil_ok(
        w,
        &[
            "pull",
            &format!("{}/{repo}@{}", reg.addr(), ok.digest),
            "-o",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(fs::read(out_dir.join("fine.txt")).unwrap() == payload);

    let abs = abs_target.to_str().unwrap().to_string();
    for title in [
        "../escape.txt",
        "sub/../../escape2.txt",
        "..",
        abs.as_str(),
        "../base/../escape3.txt",
    ] {
        let doc = artifact(title);
        http.push_manifest(repo, &doc.digest, MT_MANIFEST, &doc.bytes)
            .await;
        let dir = base.join("o2");
        let out = sigil_in(
            w,
            &[
                "pull",
                &format!("{}/{repo}@{}", reg.addr(), doc.digest),
                "-o",
                dir.to_str().unwrap(),
            ],
        );
        expect_clean_failure(&format!("sigil pull of title {title:?}"), &out);
        let mut outside: Vec<String> = fs::read_dir(w)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        outside.sort();
        assert_eq!(
            outside,
            ["base"],
            "title {title:?}: something was written outside -o"
        );
        let mut in_base: Vec<String> = fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "o2")
            .collect();
        in_base.sort();
        assert_eq!(
            in_base,
            ["out"],
            "title {title:?}: something was written next to -o"
        );
        assert!(!abs_target.exists());
    }
}

/// pull of a missing artifact fails cleanly; pull of an artifact by tag (pushed like `oras push` does,
/// without subject) writes its file into a relative output directory.
#[tokio::test]
async fn pull_by_tag_and_bad_reference() {
    let reg = SigilRegistry::start_default();
    let http = reg.http();
    let work = tmp();
    let w = work.path();
    let out = sigil_in(
        w,
        &[
            "pull",
            &format!("{}/none/app@{}", reg.addr(), digest_of(b"x")),
            "-o",
            "o",
        ],
    );
    expect_clean_failure("sigil pull of a missing artifact", &out);
    assert!(!w.join("o").join("x").exists());

    // An artifact pushed under a tag (as `oras push` does).
    let data = random(fresh_seed(), 1234);
    let d = http.push_blob("tagged/art", &data).await;
    http.push_blob("tagged/art", EMPTY_JSON).await;
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": AT_SBOM,
        "config": {"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": OCTET, "digest": d, "size": data.len(), "annotations": {TITLE: "data.bin"}}],
    });
    http.push_manifest("tagged/art", "v1", MT_MANIFEST, &json_bytes(&m))
        .await;
    sigil_ok(
        w,
        &["pull", &format!("{}/tagged/art:v1", reg.addr()), "-o", "o"],
    );
    assert!(fs::read(w.join("o/data.bin")).unwrap() == data);
}
