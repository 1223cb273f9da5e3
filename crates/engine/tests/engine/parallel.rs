//! The images of one review are verified as separate tokio tasks, concurrently: a TCP gate in front
//! of a real in-process sigil registry (127.0.0.1) holds every connection's first request until one
//! connection per image has sent its request, so a review passes only when all its images are in
//! flight at once. The review future is polled once and then left alone while the gate fills: the
//! image jobs must make progress on their own (as spawned tasks on the runtime's worker threads),
//! not only when the caller polls the review.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use super::*;

/// A TCP gate to `upstream`: each connection's first request is held until `n` connections have
/// sent one (or 20 s passed), then everything is forwarded unchanged.
struct Gate {
    addr: SocketAddr,
    /// Connections whose first request arrived.
    arrived: Arc<AtomicUsize>,
    /// Connections the client closed while their first request was held.
    closed: Arc<AtomicUsize>,
    /// Notified when `n` first requests are held at once.
    full: Arc<Notify>,
}

async fn gate(upstream: SocketAddr, n: usize) -> Gate {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let arrived = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let full = Arc::new(Notify::new());
    let open = Arc::new(Notify::new());
    let (a, c, f) = (arrived.clone(), closed.clone(), full.clone());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (arrived, closed, full, open) = (a.clone(), c.clone(), f.clone(), open.clone());
            tokio::spawn(async move {
                let mut first = vec![0u8; 64 * 1024];
                let Ok(k) = inbound.read(&mut first).await else {
                    return;
                };
                if k == 0 {
                    return;
                }
                // Register interest before counting, so the last arrival's notify_waiters is seen.
                let opened = open.notified();
                if arrived.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                    full.notify_waiters();
                    open.notify_waiters();
                } else {
                    let mut probe = [0u8; 1];
                    tokio::select! {
                        _ = tokio::time::timeout(Duration::from_secs(20), opened) => {}
                        // The client gave up on the request (HTTP/1.1 sends nothing more before
                        // the response, so a read here only ends with EOF or an error).
                        _ = inbound.read(&mut probe) => {
                            closed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if outbound.write_all(&first[..k]).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    Gate {
        addr,
        arrived,
        closed,
        full,
    }
}

fn policy(patterns: &str, keys: &[&PrivateKey]) -> Vec<LoadedPolicy> {
    // One verifyImages entry per key: with two keys every image has two independent decisions.
    let entries: Vec<String> = keys
        .iter()
        .map(|k| {
            let pem = k.public_key().to_pem().unwrap();
            let pem: Vec<String> = pem
                .trim()
                .lines()
                .map(|l| format!("                    {l}"))
                .collect();
            format!(
                "      - imageReferences: [\"{patterns}\"]\n        failureAction: Enforce\n        attestors:\n          - entries:\n              - keys:\n                  publicKeys: |-\n{}\n                  rekor:\n                    ignoreTlog: true\n",
                pem.join("\n")
            )
        })
        .collect();
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: par\nspec:\n  rules:\n  - name: check\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n{}",
        entries.concat()
    );
    let set = sigil_policy::parse_policies(&yaml).unwrap();
    set.policies
        .into_iter()
        .map(|p| LoadedPolicy::new(p, PathBuf::from("par.yaml"), &yaml))
        .collect()
}

fn pod_request(images: &[String]) -> ReviewRequest {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
        .collect();
    ReviewRequest {
        resource: json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": containers},
        }),
        old_resource: None,
        namespace: "default".into(),
        operation: Operation::Create,
        timeout: Some(Duration::from_secs(30)),
        dry_run: false,
    }
}

/// Pushes and signs `n` images behind a gate of `gate_size`; returns the gate and the images (via
/// the gate).
async fn fixture(
    n: usize,
    gate_size: usize,
    keys: &[&PrivateKey],
) -> (Registry, Gate, Vec<String>) {
    let reg = start_registry(true).await;
    let pusher = new_client();
    let mut images = Vec::new();
    for i in 0..n {
        let direct = format!("{}/app{i}:v1", reg.addr);
        push_image(
            &pusher,
            &reg.addr,
            &format!("app{i}"),
            "v1",
            &format!("par-{i}"),
        )
        .await;
        for k in keys {
            sigil_cosign::sign_image(
                &pusher,
                &Reference::parse(&direct).unwrap(),
                k,
                &BTreeMap::new(),
                None,
            )
            .await
            .unwrap();
        }
    }
    let g = gate(reg.addr.parse().unwrap(), gate_size).await;
    for i in 0..n {
        images.push(format!("{}/app{i}:v1", g.addr));
    }
    (reg, g, images)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_of_one_review_run_as_concurrent_tasks() {
    const N: usize = 6;
    let key = PrivateKey::generate_p256().unwrap();
    let (_reg, g, images) = fixture(N, N, &[&key]).await;
    let client = new_client();
    let eng = Engine::new(
        EngineConfig::new(client.clone()),
        policy(&format!("{}/*", g.addr), &[&key]),
    );
    let request = pod_request(&images);
    let full = g.full.notified();
    let mut review = std::pin::pin!(eng.mutate(&request));
    // One poll starts the review; from then on it is not polled until the gate is full.
    assert!(futures::poll!(review.as_mut()).is_pending());
    let filled = tokio::time::timeout(Duration::from_secs(20), full).await;
    assert!(
        filled.is_ok(),
        "only {} of {N} images reached the registry while the review future was not polled",
        g.arrived.load(Ordering::SeqCst)
    );
    let r = review.await;
    assert!(!r.blocked, "{r:?}");
    let got: Vec<(&str, RuleStatus)> = r.results[0]
        .images
        .iter()
        .map(|i| (i.image.as_str(), i.status))
        .collect();
    let want: Vec<(&str, RuleStatus)> = images
        .iter()
        .map(|i| (i.as_str(), RuleStatus::Pass))
        .collect();
    assert_eq!(got, want, "results in container order, all verified");
    assert_eq!(client.request_count(), 3 * N as u64);
    // Pinned to the verified digests: one patch op per image after the annotation ops.
    let pins = r
        .patch
        .iter()
        .filter(|p| p["path"].as_str().is_some_and(|s| s.ends_with("/image")))
        .count();
    assert_eq!(pins, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_decisions_of_each_image_share_fetched_material() {
    // Two verifyImages entries (two keys) per image: two decisions per image, run as their own
    // tasks, sharing the review's memo of fetched material: 4 requests per image (HEAD, `.sig`
    // manifest, the two signature payloads), not 7.
    const N: usize = 4;
    let k1 = PrivateKey::generate_p256().unwrap();
    let k2 = PrivateKey::generate_p256().unwrap();
    let (_reg, g, images) = fixture(N, N, &[&k1, &k2]).await;
    let client = new_client();
    let eng = Engine::new(
        EngineConfig::new(client.clone()),
        policy(&format!("{}/*", g.addr), &[&k1, &k2]),
    );
    let r = eng.mutate(&pod_request(&images)).await;
    assert!(!r.blocked, "{r:?}");
    let statuses: Vec<RuleStatus> = r.results[0].images.iter().map(|i| i.status).collect();
    assert_eq!(statuses, vec![RuleStatus::Pass; 2 * N]);
    assert_eq!(client.request_count(), 4 * N as u64);
    // A third key nobody signed with: its entry fails for every image, the others still pass.
    let k3 = PrivateKey::generate_p256().unwrap();
    let eng = Engine::new(
        EngineConfig::new(new_client()),
        policy(&format!("{}/*", g.addr), &[&k1, &k3]),
    );
    let r = eng.mutate(&pod_request(&images)).await;
    assert!(r.blocked);
    let statuses: Vec<RuleStatus> = r.results[0].images.iter().map(|i| i.status).collect();
    let mut want = vec![RuleStatus::Pass; N];
    want.extend(vec![RuleStatus::Fail; N]);
    assert_eq!(statuses, want, "entry order kept: {r:?}");
}

/// Polls `f` every 10 ms until it holds (at most 10 s).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_review_aborts_its_image_tasks() {
    // The gate never opens (it waits for one more image than the Pod has): the image tasks stay
    // blocked on their first request until the review is dropped, which must abort them (the
    // client closes the connections) instead of leaving them running in the background.
    const N: usize = 3;
    let key = PrivateKey::generate_p256().unwrap();
    let (_reg, g, images) = fixture(N, N + 1, &[&key]).await;
    let eng = Engine::new(
        EngineConfig::new(new_client()),
        policy(&format!("{}/*", g.addr), &[&key]),
    );
    let request = pod_request(&images);
    {
        let mut review = std::pin::pin!(eng.mutate(&request));
        assert!(futures::poll!(review.as_mut()).is_pending());
        eventually("every image task sent its first request", || {
            g.arrived.load(Ordering::SeqCst) == N
        })
        .await;
        assert_eq!(g.closed.load(Ordering::SeqCst), 0);
    }
    eventually("the dropped review's connections are closed", || {
        g.closed.load(Ordering::SeqCst) == N
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_rules_one_keeps_the_images_of_a_rule_in_parallel() {
    // `applyRules: One` with two rules: the first rule's images are verified concurrently (the
    // gate opens only once all of them are in flight while the review is not polled), and as it
    // passes, the second rule (another key, every image) sends no request at all.
    const N: usize = 4;
    let k1 = PrivateKey::generate_p256().unwrap();
    let k2 = PrivateKey::generate_p256().unwrap();
    let (_reg, g, images) = fixture(N, N, &[&k1]).await;
    let rule = |name: &str, key: &PrivateKey| {
        let pem: Vec<String> = key
            .public_key()
            .to_pem()
            .unwrap()
            .trim()
            .lines()
            .map(|l| format!("                    {l}"))
            .collect();
        format!(
            "  - name: {name}\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n      - imageReferences: [\"{}/*\"]\n        failureAction: Enforce\n        attestors:\n          - entries:\n              - keys:\n                  publicKeys: |-\n{}\n                  rekor:\n                    ignoreTlog: true\n",
            g.addr,
            pem.join("\n")
        )
    };
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: one\nspec:\n  applyRules: One\n  rules:\n{}{}",
        rule("first", &k1),
        rule("second", &k2)
    );
    let policies: Vec<LoadedPolicy> = sigil_policy::parse_policies(&yaml)
        .unwrap()
        .policies
        .into_iter()
        .map(|p| LoadedPolicy::new(p, PathBuf::from("one.yaml"), &yaml))
        .collect();
    let client = new_client();
    let eng = Engine::new(EngineConfig::new(client.clone()), policies);
    let request = pod_request(&images);
    let full = g.full.notified();
    let mut review = std::pin::pin!(eng.mutate(&request));
    assert!(futures::poll!(review.as_mut()).is_pending());
    let filled = tokio::time::timeout(Duration::from_secs(20), full).await;
    assert!(
        filled.is_ok(),
        "only {} of {N} images of the first rule were in flight at once",
        g.arrived.load(Ordering::SeqCst)
    );
    let r = review.await;
    assert!(!r.blocked, "{r:?}");
    let rules: Vec<(&str, usize)> = r
        .results
        .iter()
        .map(|x| (x.rule.as_str(), x.images.len()))
        .collect();
    assert_eq!(rules, vec![("first", N)], "{r:?}");
    // HEAD, `.sig` manifest and signature payload per image, for the first rule only.
    assert_eq!(client.request_count(), 3 * N as u64);
}
