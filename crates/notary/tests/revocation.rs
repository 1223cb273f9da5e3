//! OCSP and CRL revocation checking against a real HTTP server on 127.0.0.1: a root → intermediate
//! → leaf chain whose certificates name CRL distribution points (or an OCSP responder) on that
//! server, CRLs signed with rcgen and OCSP responses built here, and each outcome notation defines
//! (good, revoked, on hold, released from hold, CRL signed by another key, expired, missing,
//! oversized, server down, invalidityDate against the signing time; OCSP good, revoked
//! and unknown with the CRL fallback, delegated responders, expired and foreign-signed responses)
//! through `verify_signature_with` under each verification level. Delta CRLs (rcgen CRLs re-signed
//! with freshestCRL / deltaCRLIndicator added): a delta revoking, a delta removeFromCRL releasing a
//! base hold, a delta for another base number, not a delta, expired, signed by another key, or
//! unreachable, and the certificate's own freshestCRL.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use serde_json::json;
use sigil_notary::crypto::PrivateKey;
use sigil_notary::envelope::{self, EnvelopeFormat, MEDIA_TYPE_JWS, SignRequest, TargetArtifact};
use sigil_notary::revocation::{
    RevocationChecker, RevocationMethod, RevocationOptions, RevocationResult,
};
use sigil_notary::trustpolicy::{Action, TrustPolicyDocument};
use sigil_notary::truststore::{StoreType, TrustStore};
use sigil_notary::verifier::{
    SignatureVerification, VerifyContext, verify_signature, verify_signature_with,
};
use sigil_notary::x509::Cert;
use sigil_notary::{Check, time::now};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A tiny HTTP/1.1 server: GET `path` → the stored body (200) or 404; counts requests.
struct CrlServer {
    addr: std::net::SocketAddr,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<AtomicUsize>,
    /// The body of the last request that had one (an OCSP request).
    last_body: Arc<Mutex<Vec<u8>>>,
}

impl CrlServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let last_body: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (f, h, lb) = (files.clone(), hits.clone(), last_body.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (f, h, lb) = (f.clone(), h.clone(), lb.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if len > 0 {
                        *lb.lock().unwrap() = buf[end..].to_vec();
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let line = String::from_utf8_lossy(&buf)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                    let body = f.lock().unwrap().get(&path).cloned();
                    let head = match &body {
                        Some(b) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
                    };
                    let _ = sock.write_all(head.as_bytes()).await;
                    if let Some(b) = body {
                        let _ = sock.write_all(&b).await;
                    }
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self {
            addr,
            files,
            hits,
            last_body,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_owned(), body);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn dn(p: &mut CertificateParams, cn: &str) {
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Sigil Test");
    p.distinguished_name.push(DnType::StateOrProvinceName, "WA");
    p.distinguished_name.push(DnType::CountryName, "US");
}

fn ca_params(cn: &str, cdp: Option<String>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut p, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    if let Some(u) = cdp {
        p.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![u] }];
    }
    p
}

/// Unix seconds as rcgen's date type (which rcgen does not re-export by name).
macro_rules! at {
    ($t:expr) => {
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(($t) as u64)
    };
}

const LEAF_SERIAL: u64 = 0x1a2b3c;
const INT_SERIAL: u64 = 0x77;

struct Pki {
    key: PrivateKey,
    chain: Vec<Cert>,
    root_key: KeyPair,
    root_params: CertificateParams,
    int_key: KeyPair,
    int_params: CertificateParams,
}

/// Root → intermediate (CDP `int_cdp`) → leaf (CDP `leaf_cdp`).
fn pki(leaf_cdp: Option<String>, int_cdp: Option<String>) -> Pki {
    pki_with(leaf_cdp, int_cdp, None, None)
}

/// One DER TLV.
fn der(tag: u8, c: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    if c.len() < 0x80 {
        v.push(c.len() as u8);
    } else {
        let b = c.len().to_be_bytes();
        let skip = b.iter().take_while(|x| **x == 0).count();
        v.push(0x80 | (b.len() - skip) as u8);
        v.extend_from_slice(&b[skip..]);
    }
    v.extend_from_slice(c);
    v
}

/// DER of a CRLDistributionPoints-syntax value with one URI (also the freshestCRL syntax).
fn dist_points(uri: &str) -> Vec<u8> {
    let tlv = |tag: u8, c: &[u8]| {
        assert!(c.len() < 128);
        let mut v = vec![tag, c.len() as u8];
        v.extend_from_slice(c);
        v
    };
    tlv(
        0x30,
        &tlv(0x30, &tlv(0xa0, &tlv(0xa0, &tlv(0x86, uri.as_bytes())))),
    )
}

/// [`pki`], the leaf optionally naming a delta CRL (freshestCRL).
fn pki_with(
    leaf_cdp: Option<String>,
    int_cdp: Option<String>,
    delta: Option<&str>,
    ocsp: Option<&str>,
) -> Pki {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = ca_params("Revocation Root", None);
    let root = root_params.self_signed(&root_key).unwrap();
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut int_params = ca_params("Revocation Intermediate", int_cdp);
    int_params.serial_number = Some(SerialNumber::from(INT_SERIAL));
    let int = int_params
        .signed_by(&int_key, &Issuer::from_params(&root_params, &root_key))
        .unwrap();
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut lp, "Revocation Leaf");
    lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    lp.serial_number = Some(SerialNumber::from(LEAF_SERIAL));
    if let Some(u) = leaf_cdp {
        lp.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![u] }];
    }
    if let Some(d) = delta {
        lp.custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[2, 5, 29, 46],
                dist_points(d),
            ));
    }
    if let Some(u) = ocsp {
        // authorityInfoAccess { id-ad-ocsp, uniformResourceIdentifier }
        let ad = der(
            0x30,
            &[
                der(0x06, &[0x2b, 6, 1, 5, 5, 7, 48, 1]),
                der(0x86, u.as_bytes()),
            ]
            .concat(),
        );
        lp.custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                der(0x30, &ad),
            ));
    }
    let leaf = lp
        .signed_by(&leaf_key, &Issuer::from_params(&int_params, &int_key))
        .unwrap();
    Pki {
        key: PrivateKey::from_pem(&leaf_key.serialize_pem()).unwrap(),
        chain: [leaf.der(), int.der(), root.der()]
            .iter()
            .map(|d| Cert::from_der(d).unwrap())
            .collect(),
        root_key,
        root_params,
        int_key,
        int_params,
    }
}

struct CrlSpec {
    revoked: Vec<(u64, Option<RevocationReason>, i64)>,
    this_update: i64,
    next_update: i64,
    /// invalidityDate of every entry.
    invalidity: Option<i64>,
}

impl CrlSpec {
    fn fresh(revoked: Vec<(u64, Option<RevocationReason>, i64)>) -> Self {
        let t = now();
        Self {
            revoked,
            this_update: t - 60,
            next_update: t + 3600,
            invalidity: None,
        }
    }
}

fn crl(spec: &CrlSpec, params: &CertificateParams, key: &KeyPair) -> Vec<u8> {
    crl_numbered(spec, 1, params, key)
}

fn crl_numbered(spec: &CrlSpec, number: u64, params: &CertificateParams, key: &KeyPair) -> Vec<u8> {
    let p = CertificateRevocationListParams {
        this_update: at!(spec.this_update),
        next_update: at!(spec.next_update),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: spec
            .revoked
            .iter()
            .map(|(serial, reason, when)| RevokedCertParams {
                serial_number: SerialNumber::from(*serial),
                revocation_time: at!(*when),
                reason_code: *reason,
                invalidity_date: spec.invalidity.map(|t| at!(t)),
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    p.signed_by(&Issuer::from_params(params, key))
        .unwrap()
        .der()
        .to_vec()
}

impl Pki {
    /// A CRL of the intermediate (covers the leaf).
    fn int_crl(&self, spec: &CrlSpec) -> Vec<u8> {
        crl(spec, &self.int_params, &self.int_key)
    }
    /// A CRL of the root (covers the intermediate).
    fn root_crl(&self, spec: &CrlSpec) -> Vec<u8> {
        crl(spec, &self.root_params, &self.root_key)
    }

    fn envelope(&self) -> Vec<u8> {
        let req = SignRequest {
            target: TargetArtifact {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: format!("sha256:{}", "cd".repeat(32)),
                size: 99,
                annotations: None,
            },
            signing_time: now(),
            expiry: None,
            key: &self.key,
            chain: &self.chain,
            signing_agent: "test".into(),
        };
        envelope::sign(EnvelopeFormat::Jws, &req)
            .unwrap()
            .finish(None)
            .unwrap()
    }

    fn store(&self) -> TrustStore {
        let mut s = TrustStore::in_memory();
        s.add_anchors(StoreType::Ca, "rev", vec![self.chain[2].clone()])
            .unwrap();
        s
    }
}

fn policy(level: &str, overrides: serde_json::Value) -> TrustPolicyDocument {
    TrustPolicyDocument::from_json(
        json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "rev",
                "registryScopes": ["*"],
                "signatureVerification": {"level": level, "override": overrides},
                "trustStores": ["ca:rev"],
                "trustedIdentities": ["*"]
            }]
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

async fn run(
    p: &Pki,
    level: &str,
    overrides: serde_json::Value,
    checker: &RevocationChecker,
) -> SignatureVerification {
    let doc = policy(level, overrides);
    let store = p.store();
    let ctx = VerifyContext {
        policy: &doc.statements[0],
        store: &store,
        now: now(),
    };
    verify_signature_with(MEDIA_TYPE_JWS, &p.envelope(), None, &ctx, checker).await
}

fn online() -> RevocationChecker {
    RevocationChecker::new(RevocationOptions {
        crl_timeout: Duration::from_secs(3),
        ..RevocationOptions::default()
    })
    .unwrap()
}

fn revocation_error(v: &SignatureVerification) -> Option<String> {
    v.checks
        .iter()
        .find(|c| c.check == Check::Revocation)
        .and_then(|c| c.error.clone())
}

/// Serves `int` at /int.crl and `root` at /root.crl and returns a PKI pointing at them.
async fn setup() -> (CrlServer, Pki) {
    let srv = CrlServer::start().await;
    let p = pki(Some(srv.url("/int.crl")), Some(srv.url("/root.crl")));
    (srv, p)
}

#[tokio::test]
async fn good_crls_pass_strict_and_are_cached_per_run() {
    let (srv, p) = setup().await;
    srv.put(
        "/int.crl",
        p.int_crl(&CrlSpec::fresh(vec![(999, None, now() - 10)])),
    );
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    let checker = online();
    let v = run(&p, "strict", json!({}), &checker).await;
    assert!(v.passed(), "{}", v.reason());
    let rc = v
        .checks
        .iter()
        .find(|c| c.check == Check::Revocation)
        .unwrap();
    assert_eq!((rc.action, rc.error.as_deref()), (Action::Enforce, None));
    assert_eq!(srv.hits(), 2, "one download per distribution point");
    // Per-certificate results: leaf and intermediate OK by CRL, the root non-revokable.
    let results = checker.check_chain(&p.chain, None, now()).await;
    let kinds: Vec<_> = results.iter().map(|r| (r.result, r.method)).collect();
    assert_eq!(
        kinds,
        [
            (RevocationResult::Ok, RevocationMethod::Crl),
            (RevocationResult::Ok, RevocationMethod::Crl),
            (RevocationResult::NonRevokable, RevocationMethod::None)
        ]
    );
    // A second verification with the same checker is served from the cache.
    assert!(run(&p, "strict", json!({}), &checker).await.passed());
    assert_eq!(srv.hits(), 2);
    // A new checker (a new run) downloads again.
    assert!(run(&p, "strict", json!({}), &online()).await.passed());
    assert_eq!(srv.hits(), 4);
}

#[tokio::test]
async fn revoked_leaf_fails_strict_and_permissive_logs_it() {
    let (srv, p) = setup().await;
    srv.put(
        "/int.crl",
        p.int_crl(&CrlSpec::fresh(vec![(
            LEAF_SERIAL,
            Some(RevocationReason::KeyCompromise),
            now() - 100,
        )])),
    );
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(!v.passed());
    let e = v.reason();
    assert!(e.starts_with("revocation validation failed"), "{e}");
    assert!(
        e.contains("\"CN=Revocation Leaf,O=Sigil Test,ST=WA,C=US\" is revoked"),
        "{e}"
    );
    assert!(e.contains("keyCompromise"), "{e}");
    // notation's permissive level logs revocation failures (the specification: "only logs
    // failures of revocation check and does not enforce it").
    let v = run(&p, "permissive", json!({}), &online()).await;
    assert!(v.passed(), "{}", v.reason());
    let w = v.warnings().join("\n");
    assert!(
        w.contains("revocation was set to \"log\"") && w.contains("is revoked"),
        "{w}"
    );
    // Strict with `revocation: enforce` on audit still fails.
    let v = run(&p, "audit", json!({"revocation": "enforce"}), &online()).await;
    assert!(
        !v.passed() && v.reason().contains("is revoked"),
        "{}",
        v.reason()
    );
    // `revocation: skip` contacts nothing.
    let before = srv.hits();
    let v = run(&p, "strict", json!({"revocation": "skip"}), &online()).await;
    assert!(v.passed(), "{}", v.reason());
    assert_eq!(srv.hits(), before);
}

#[tokio::test]
async fn revoked_intermediate_is_named() {
    let (srv, p) = setup().await;
    srv.put("/int.crl", p.int_crl(&CrlSpec::fresh(vec![])));
    srv.put(
        "/root.crl",
        p.root_crl(&CrlSpec::fresh(vec![(INT_SERIAL, None, now() - 5)])),
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    let e = revocation_error(&v).unwrap();
    assert!(!v.passed());
    assert!(
        e.contains("Revocation Intermediate") && e.contains("is revoked"),
        "{e}"
    );
    assert!(e.contains("reason unspecified"), "{e}");
}

#[tokio::test]
async fn certificate_hold_and_release() {
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    let t = now();
    srv.put(
        "/int.crl",
        p.int_crl(&CrlSpec::fresh(vec![(
            LEAF_SERIAL,
            Some(RevocationReason::CertificateHold),
            t - 100,
        )])),
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    let e = revocation_error(&v).unwrap();
    assert!(
        e.contains("is revoked") && e.contains("certificateHold"),
        "{e}"
    );
    // The most recent temporary entry decides: removed from the CRL after the hold → good.
    srv.put(
        "/int.crl",
        p.int_crl(&CrlSpec::fresh(vec![
            (
                LEAF_SERIAL,
                Some(RevocationReason::CertificateHold),
                t - 100,
            ),
            (LEAF_SERIAL, Some(RevocationReason::RemoveFromCrl), t - 50),
        ])),
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(v.passed(), "{}", v.reason());
    // Held again after the release → revoked.
    srv.put(
        "/int.crl",
        p.int_crl(&CrlSpec::fresh(vec![
            (LEAF_SERIAL, Some(RevocationReason::CertificateHold), t - 10),
            (LEAF_SERIAL, Some(RevocationReason::RemoveFromCrl), t - 50),
        ])),
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(!v.passed());
}

#[tokio::test]
async fn crl_signed_by_another_key_is_unknown() {
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    // Same issuer name, another key.
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    srv.put(
        "/int.crl",
        crl(&CrlSpec::fresh(vec![]), &p.int_params, &other),
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(!v.passed());
    let e = v.reason();
    assert!(e.contains("revocation status is unknown"), "{e}");
    assert!(e.contains("not signed by CA"), "{e}");
    let v = run(&p, "permissive", json!({}), &online()).await;
    assert!(v.passed(), "{}", v.reason());
    let w = v.warnings().join("\n");
    assert!(w.contains("revocation status is unknown"), "{w}");
    // The intermediate's own CRL (root's key) is fine: only the leaf is unknown.
    let results = online().check_chain(&p.chain, None, now()).await;
    assert_eq!(results[0].result, RevocationResult::Unknown);
    assert_eq!(results[1].result, RevocationResult::Ok);
}

#[tokio::test]
async fn expired_or_future_crl_is_unknown() {
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    let t = now();
    srv.put(
        "/int.crl",
        p.int_crl(&CrlSpec {
            revoked: vec![],
            this_update: t - 7200,
            next_update: t - 3600,
            invalidity: None,
        }),
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    let e = v.reason();
    assert!(!v.passed());
    assert!(
        e.contains("revocation status is unknown") && e.contains("expired CRL"),
        "{e}"
    );
    srv.put(
        "/int.crl",
        p.int_crl(&CrlSpec {
            revoked: vec![],
            this_update: t + 7200,
            next_update: t + 9000,
            invalidity: None,
        }),
    );
    let e = run(&p, "strict", json!({}), &online()).await.reason();
    assert!(
        e.contains("thisUpdate") && e.contains("in the future"),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_missing_or_oversized_crl_is_unknown() {
    // Server down: a port that was bound and released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = pki(Some(format!("http://127.0.0.1:{port}/int.crl")), None);
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(!v.passed());
    let e = v.reason();
    assert!(
        e.contains("revocation status is unknown") && e.contains("failed to download CRL"),
        "{e}"
    );
    let v = run(&p, "audit", json!({}), &online()).await;
    assert!(v.passed(), "{}", v.reason());
    assert_eq!(v.warnings().len(), 1, "{:?}", v.warnings());

    // 404.
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    let e = run(&p, "strict", json!({}), &online()).await.reason();
    assert!(e.contains("HTTP status 404"), "{e}");

    // Larger than the size cap.
    srv.put("/int.crl", p.int_crl(&CrlSpec::fresh(vec![])));
    let small = RevocationChecker::new(RevocationOptions {
        crl_timeout: Duration::from_secs(3),
        max_crl_size: 64,
        ..RevocationOptions::default()
    })
    .unwrap();
    let e = run(&p, "strict", json!({}), &small).await.reason();
    assert!(e.contains("larger than the 64-byte limit"), "{e}");

    // Not a CRL.
    srv.put("/int.crl", b"hello".to_vec());
    let e = run(&p, "strict", json!({}), &online()).await.reason();
    assert!(e.contains("not a DER X.509 CRL"), "{e}");

    // Only http URLs.
    let p = pki(Some("https://127.0.0.1:1/int.crl".into()), None);
    let e = run(&p, "strict", json!({}), &online()).await.reason();
    assert!(e.contains("only http URLs are supported"), "{e}");
}

#[tokio::test]
async fn offline_checking_is_unknown_and_non_revokable_certificates_pass() {
    let (srv, p) = setup().await;
    srv.put("/int.crl", p.int_crl(&CrlSpec::fresh(vec![])));
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    // The synchronous verifier checks offline: responders named → unknown, nothing contacted.
    let doc = policy("strict", json!({}));
    let store = p.store();
    let ctx = VerifyContext {
        policy: &doc.statements[0],
        store: &store,
        now: now(),
    };
    let v = verify_signature(MEDIA_TYPE_JWS, &p.envelope(), None, &ctx);
    assert!(!v.passed());
    assert!(
        v.reason().contains("revocation status is unknown") && v.reason().contains("offline"),
        "{}",
        v.reason()
    );
    assert_eq!(srv.hits(), 0);
    // Without distribution points the chain is non-revokable: passes without any network.
    let plain = pki(None, None);
    let v = run(&plain, "strict", json!({}), &online()).await;
    assert!(v.passed(), "{}", v.reason());
}

/// An intermediate CRL numbered `number` with extra CRL extensions `(oid, critical, value)` added
/// after rcgen's (rcgen cannot write freshestCRL or deltaCRLIndicator), re-signed with `key`.
fn crl_ext(
    spec: &CrlSpec,
    number: u64,
    exts: &[(&str, bool, Vec<u8>)],
    params: &CertificateParams,
    key: &KeyPair,
) -> Vec<u8> {
    use der::{Decode as _, Encode as _};
    use rcgen::SigningKey as _;
    let plain = crl_numbered(spec, number, params, key);
    let mut list =
        x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&plain)
            .unwrap();
    let list_exts = list
        .tbs_cert_list
        .crl_extensions
        .get_or_insert_with(Vec::new);
    for (oid, critical, value) in exts {
        list_exts.push(x509_cert::ext::Extension {
            extn_id: der::asn1::ObjectIdentifier::new(oid).unwrap(),
            critical: *critical,
            extn_value: der::asn1::OctetString::new(value.clone()).unwrap(),
        });
    }
    let tbs = list.tbs_cert_list.to_der().unwrap();
    list.signature = der::asn1::BitString::from_bytes(&key.sign(&tbs).unwrap()).unwrap();
    list.to_der().unwrap()
}

const FRESHEST_CRL: &str = "2.5.29.46";
const DELTA_CRL_INDICATOR: &str = "2.5.29.27";

/// A base CRL of the intermediate, number `number`, naming `delta_url` in its freshestCRL.
fn base_crl(p: &Pki, spec: &CrlSpec, number: u64, delta_url: &str) -> Vec<u8> {
    crl_ext(
        spec,
        number,
        &[(FRESHEST_CRL, false, dist_points(delta_url))],
        &p.int_params,
        &p.int_key,
    )
}

/// A delta CRL of the intermediate, number `number`, completing base CRL number `base` (critical
/// deltaCRLIndicator), signed with `key`.
fn delta_crl(p: &Pki, spec: &CrlSpec, number: u64, base: u64, key: &KeyPair) -> Vec<u8> {
    crl_ext(
        spec,
        number,
        &[(DELTA_CRL_INDICATOR, true, uint(base))],
        &p.int_params,
        key,
    )
}

/// The leaf's result from a fresh checker (a new run, no cache).
async fn leaf_status(p: &Pki) -> sigil_notary::revocation::CertRevocation {
    let mut r = online().check_chain(&p.chain, None, now()).await;
    assert_eq!(r.len(), 3);
    r.remove(0)
}

#[tokio::test]
async fn delta_crl_revoking_a_certificate_the_base_crl_does_not() {
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    let t = now();
    srv.put(
        "/int.crl",
        base_crl(
            &p,
            &CrlSpec::fresh(vec![(999, None, t - 500)]),
            10,
            &srv.url("/delta.crl"),
        ),
    );
    // An empty delta: the base and the delta are both consulted and the leaf is good.
    srv.put(
        "/delta.crl",
        delta_crl(&p, &CrlSpec::fresh(vec![]), 11, 10, &p.int_key),
    );
    let before = srv.hits();
    let r = leaf_status(&p).await;
    assert_eq!(
        (r.result, r.method),
        (RevocationResult::Ok, RevocationMethod::Crl),
        "{:?}",
        r.errors
    );
    assert_eq!(srv.hits() - before, 3, "base, delta and the root's CRL");
    assert!(run(&p, "strict", json!({}), &online()).await.passed());
    // The delta revokes the leaf (keyCompromise) after the base was issued.
    srv.put(
        "/delta.crl",
        delta_crl(
            &p,
            &CrlSpec::fresh(vec![(
                LEAF_SERIAL,
                Some(RevocationReason::KeyCompromise),
                t - 30,
            )]),
            11,
            10,
            &p.int_key,
        ),
    );
    let r = leaf_status(&p).await;
    assert_eq!(r.result, RevocationResult::Revoked);
    let why = r.revoked.unwrap();
    assert!(
        why.contains("keyCompromise") && why.contains("delta CRL") && why.contains("/delta.crl"),
        "{why}"
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(!v.passed());
    let e = revocation_error(&v).unwrap();
    assert!(
        e.contains("is revoked") && e.contains("keyCompromise"),
        "{e}"
    );
    // A delta built on an older base (indicator 7 ≤ 10) still applies.
    srv.put(
        "/delta.crl",
        delta_crl(
            &p,
            &CrlSpec::fresh(vec![(LEAF_SERIAL, None, t - 30)]),
            12,
            7,
            &p.int_key,
        ),
    );
    assert_eq!(leaf_status(&p).await.result, RevocationResult::Revoked);
}

#[tokio::test]
async fn delta_remove_from_crl_releases_a_base_hold() {
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    let t = now();
    let hold = vec![(
        LEAF_SERIAL,
        Some(RevocationReason::CertificateHold),
        t - 100,
    )];
    srv.put(
        "/int.crl",
        base_crl(&p, &CrlSpec::fresh(hold), 20, &srv.url("/delta.crl")),
    );
    // An empty delta leaves the hold in force.
    srv.put(
        "/delta.crl",
        delta_crl(&p, &CrlSpec::fresh(vec![]), 21, 20, &p.int_key),
    );
    let r = leaf_status(&p).await;
    assert_eq!(r.result, RevocationResult::Revoked);
    assert!(r.revoked.unwrap().contains("certificateHold"));
    // removeFromCRL in the delta releases it, whether dated after the hold or (as CAs often
    // write it) with the hold's own date.
    for when in [t - 50, t - 100] {
        srv.put(
            "/delta.crl",
            delta_crl(
                &p,
                &CrlSpec::fresh(vec![(
                    LEAF_SERIAL,
                    Some(RevocationReason::RemoveFromCrl),
                    when,
                )]),
                21,
                20,
                &p.int_key,
            ),
        );
        let r = leaf_status(&p).await;
        assert_eq!(r.result, RevocationResult::Ok, "{when}: {:?}", r.errors);
        assert!(run(&p, "strict", json!({}), &online()).await.passed());
    }
    // A removeFromCRL older than the hold does not release it.
    srv.put(
        "/delta.crl",
        delta_crl(
            &p,
            &CrlSpec::fresh(vec![(
                LEAF_SERIAL,
                Some(RevocationReason::RemoveFromCrl),
                t - 200,
            )]),
            21,
            20,
            &p.int_key,
        ),
    );
    assert_eq!(leaf_status(&p).await.result, RevocationResult::Revoked);
    // A permanent revocation in the base is not undone by a delta removeFromCRL.
    srv.put(
        "/int.crl",
        base_crl(
            &p,
            &CrlSpec::fresh(vec![(LEAF_SERIAL, None, t - 100)]),
            20,
            &srv.url("/delta.crl"),
        ),
    );
    srv.put(
        "/delta.crl",
        delta_crl(
            &p,
            &CrlSpec::fresh(vec![(
                LEAF_SERIAL,
                Some(RevocationReason::RemoveFromCrl),
                t - 10,
            )]),
            21,
            20,
            &p.int_key,
        ),
    );
    assert_eq!(leaf_status(&p).await.result, RevocationResult::Revoked);
}

#[tokio::test]
async fn delta_crl_for_another_base_or_not_a_delta_is_unknown() {
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    srv.put(
        "/int.crl",
        base_crl(&p, &CrlSpec::fresh(vec![]), 10, &srv.url("/delta.crl")),
    );
    let unknown = |r: &sigil_notary::revocation::CertRevocation, needle: &str| {
        assert_eq!(r.result, RevocationResult::Unknown, "{:?}", r.errors);
        let e = r.errors.join("; ");
        assert!(e.contains(needle), "{e}");
    };
    // deltaCRLIndicator 11 > base CRL number 10: built on a newer base than the one served.
    srv.put(
        "/delta.crl",
        delta_crl(&p, &CrlSpec::fresh(vec![]), 12, 11, &p.int_key),
    );
    unknown(&leaf_status(&p).await, "deltaCRLIndicator");
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(!v.passed());
    assert!(
        v.reason().contains("revocation status is unknown"),
        "{}",
        v.reason()
    );
    // Delta number not greater than the base's.
    srv.put(
        "/delta.crl",
        delta_crl(&p, &CrlSpec::fresh(vec![]), 10, 9, &p.int_key),
    );
    unknown(
        &leaf_status(&p).await,
        "not greater than the base CRL number",
    );
    // A complete CRL (no deltaCRLIndicator) at the freshestCRL location.
    srv.put("/delta.crl", p.int_crl(&CrlSpec::fresh(vec![])));
    unknown(&leaf_status(&p).await, "no deltaCRLIndicator");
    // An expired delta CRL.
    let t = now();
    srv.put(
        "/delta.crl",
        delta_crl(
            &p,
            &CrlSpec {
                revoked: vec![],
                this_update: t - 7200,
                next_update: t - 60,
                invalidity: None,
            },
            11,
            10,
            &p.int_key,
        ),
    );
    unknown(&leaf_status(&p).await, "expired CRL");
    // A delta CRL served where a complete CRL is expected.
    srv.put(
        "/int.crl",
        delta_crl(&p, &CrlSpec::fresh(vec![]), 11, 10, &p.int_key),
    );
    unknown(&leaf_status(&p).await, "a complete CRL is expected");
}

#[tokio::test]
async fn delta_crl_signed_by_another_key_is_unknown() {
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    srv.put(
        "/int.crl",
        base_crl(&p, &CrlSpec::fresh(vec![]), 10, &srv.url("/delta.crl")),
    );
    // Same issuer name and numbers, another key; it would even say the leaf is good.
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    srv.put(
        "/delta.crl",
        delta_crl(&p, &CrlSpec::fresh(vec![]), 11, 10, &other),
    );
    let r = leaf_status(&p).await;
    assert_eq!(r.result, RevocationResult::Unknown);
    let e = r.errors.join("; ");
    assert!(
        e.contains("delta CRL") && e.contains("not signed by CA"),
        "{e}"
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(!v.passed());
    // Under permissive the unknown status is logged, not enforced.
    let v = run(&p, "permissive", json!({}), &online()).await;
    assert!(v.passed(), "{}", v.reason());
    assert!(
        v.warnings()
            .join("\n")
            .contains("revocation status is unknown")
    );
}

#[tokio::test]
async fn delta_crl_url_down_is_unknown() {
    // Base CRL naming a delta location on a port that was bound and released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (srv, p) = setup().await;
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    srv.put(
        "/int.crl",
        base_crl(
            &p,
            &CrlSpec::fresh(vec![]),
            10,
            &format!("http://127.0.0.1:{port}/delta.crl"),
        ),
    );
    let r = leaf_status(&p).await;
    assert_eq!(r.result, RevocationResult::Unknown);
    let e = r.errors.join("; ");
    assert!(e.contains("failed to download delta CRL"), "{e}");
    let v = run(&p, "strict", json!({}), &online()).await;
    assert!(!v.passed());
    assert!(
        v.reason().contains("revocation status is unknown"),
        "{}",
        v.reason()
    );
    // Missing (404) on a live server: unknown as well.
    srv.put(
        "/int.crl",
        base_crl(
            &p,
            &CrlSpec::fresh(vec![]),
            10,
            &srv.url("/missing-delta.crl"),
        ),
    );
    let r = leaf_status(&p).await;
    assert_eq!(r.result, RevocationResult::Unknown);
    assert!(r.errors.join("; ").contains("404"), "{:?}", r.errors);
}

#[tokio::test]
async fn certificate_freshest_crl_is_used_when_the_base_names_none() {
    let srv = CrlServer::start().await;
    let p = pki_with(
        Some(srv.url("/int.crl")),
        None,
        Some(&srv.url("/delta.crl")),
        None,
    );
    // The freshestCRL URI is not taken for a (complete) distribution point.
    assert_eq!(p.chain[0].crl_distribution_points(), [srv.url("/int.crl")]);
    assert!(p.chain[0].has_freshest_crl() && !p.chain[1].has_freshest_crl());
    // A plain base CRL (number 1, no freshestCRL) and no delta published yet: unknown.
    srv.put("/int.crl", p.int_crl(&CrlSpec::fresh(vec![])));
    let r = leaf_status(&p).await;
    assert_eq!(r.result, RevocationResult::Unknown);
    assert!(r.errors.join("; ").contains("delta CRL"), "{:?}", r.errors);
    // The certificate's delta CRL is published and revokes the leaf.
    srv.put(
        "/delta.crl",
        delta_crl(
            &p,
            &CrlSpec::fresh(vec![(LEAF_SERIAL, None, now() - 20)]),
            2,
            1,
            &p.int_key,
        ),
    );
    assert_eq!(leaf_status(&p).await.result, RevocationResult::Revoked);
    // An empty one: good.
    srv.put(
        "/delta.crl",
        delta_crl(&p, &CrlSpec::fresh(vec![]), 2, 1, &p.int_key),
    );
    let r = leaf_status(&p).await;
    assert_eq!(r.result, RevocationResult::Ok, "{:?}", r.errors);
}

#[tokio::test]
async fn invalidity_date_against_the_signing_time() {
    let (srv, p) = setup().await;
    let t = now();
    srv.put("/root.crl", p.root_crl(&CrlSpec::fresh(vec![])));
    let mut spec = CrlSpec::fresh(vec![(
        LEAF_SERIAL,
        Some(RevocationReason::KeyCompromise),
        t - 10,
    )]);
    spec.invalidity = Some(t - 100);
    srv.put("/int.crl", p.int_crl(&spec));
    let checker = online();
    // Signed (signing-authority time) before the key became invalid: not revoked then.
    let before = checker.check_chain(&p.chain, Some(t - 200), t).await;
    assert_eq!(before[0].result, RevocationResult::Ok);
    // Signed after it: revoked; without a signing time: revoked.
    let after = checker.check_chain(&p.chain, Some(t - 50), t).await;
    assert_eq!(after[0].result, RevocationResult::Revoked);
    let none = checker.check_chain(&p.chain, None, t).await;
    assert_eq!(none[0].result, RevocationResult::Revoked);
    assert!(
        none[0]
            .revoked
            .as_deref()
            .unwrap()
            .contains("keyCompromise")
    );
    assert_eq!(
        srv.hits(),
        2,
        "the CRLs were downloaded once for the three checks"
    );
}

// ---- OCSP ---------------------------------------------------------------------------------------

enum OcspAnswer {
    Good,
    Revoked(i64),
    Unknown,
}

fn gtime(t: i64) -> Vec<u8> {
    let s: String = sigil_oci::time::format_rfc3339(t)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'Z')
        .collect();
    der(0x18, s.as_bytes())
}

fn uint(v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count().min(7);
    let mut c = b[skip..].to_vec();
    if c[0] & 0x80 != 0 {
        c.insert(0, 0);
    }
    der(0x02, &c)
}

/// A DER OCSPResponse about the leaf (serial `serial`) signed by `signer`, carrying `certs`.
fn ocsp_response(
    p: &Pki,
    answer: OcspAnswer,
    next_update: Option<i64>,
    signer: &KeyPair,
    certs: &[Vec<u8>],
) -> Vec<u8> {
    use der::{Decode as _, Encode as _};
    use rcgen::SigningKey as _;
    use sha2::Digest as _;
    let t = now();
    let issuer = x509_cert::Certificate::from_der(&p.chain[1].der).unwrap();
    let tbs = issuer.tbs_certificate();
    let name_hash = sha2::Sha256::digest(tbs.subject().to_der().unwrap()).to_vec();
    let key_hash =
        sha2::Sha256::digest(tbs.subject_public_key_info().subject_public_key.raw_bytes()).to_vec();
    let sha256 = der(
        0x06,
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
    );
    let cert_id = der(
        0x30,
        &[
            der(0x30, &[sha256, der(0x05, &[])].concat()),
            der(0x04, &name_hash),
            der(0x04, &key_hash),
            uint(LEAF_SERIAL),
        ]
        .concat(),
    );
    let status = match answer {
        OcspAnswer::Good => vec![0x80, 0x00],
        OcspAnswer::Unknown => vec![0x82, 0x00],
        OcspAnswer::Revoked(at) => der(0xa1, &[gtime(at), der(0xa0, &der(0x0a, &[1]))].concat()),
    };
    let mut single = [cert_id, status, gtime(t - 60)].concat();
    if let Some(n) = next_update {
        single.extend(der(0xa0, &gtime(n)));
    }
    let data = der(
        0x30,
        &[
            der(0xa2, &der(0x04, &key_hash)),
            gtime(t),
            der(0x30, &der(0x30, &single)),
        ]
        .concat(),
    );
    let sig = signer.sign(&data).unwrap();
    let ecdsa_sha256 = der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
    let mut basic = [
        data,
        der(0x30, &ecdsa_sha256),
        der(0x03, &[&[0u8][..], &sig].concat()),
    ]
    .concat();
    if !certs.is_empty() {
        basic.extend(der(0xa0, &der(0x30, &certs.concat())));
    }
    let basic_oid = der(0x06, &[0x2b, 6, 1, 5, 5, 7, 48, 1, 1]);
    der(
        0x30,
        &[
            der(0x0a, &[0]),
            der(
                0xa0,
                &der(0x30, &[basic_oid, der(0x04, &der(0x30, &basic))].concat()),
            ),
        ]
        .concat(),
    )
}

/// A delegated OCSP responder certificate issued by the intermediate (with or without the
/// id-kp-OCSPSigning EKU).
fn responder(p: &Pki, ocsp_signing: bool) -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
    dn(&mut rp, "OCSP Responder");
    rp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    rp.extended_key_usages = if ocsp_signing {
        vec![ExtendedKeyUsagePurpose::OcspSigning]
    } else {
        vec![ExtendedKeyUsagePurpose::CodeSigning]
    };
    let c = rp
        .signed_by(&key, &Issuer::from_params(&p.int_params, &p.int_key))
        .unwrap();
    (key, c.der().to_vec())
}

#[tokio::test]
async fn ocsp_good_revoked_and_delegated_responders() {
    let srv = CrlServer::start().await;
    let p = pki_with(None, None, None, Some(&srv.url("/ocsp")));
    assert_eq!(p.chain[0].ocsp_urls(), [srv.url("/ocsp")]);
    let t = now();
    srv.put(
        "/ocsp",
        ocsp_response(&p, OcspAnswer::Good, Some(t + 3600), &p.int_key, &[]),
    );
    let checker = online();
    let v = run(&p, "strict", json!({}), &checker).await;
    assert!(v.passed(), "{}", v.reason());
    let r = checker.check_chain(&p.chain, None, t).await;
    assert_eq!(
        (r[0].result, r[0].method),
        (RevocationResult::Ok, RevocationMethod::Ocsp)
    );
    // The request was a DER OCSPRequest naming the leaf's serial.
    let body = srv.last_body.lock().unwrap().clone();
    assert_eq!(body[0], 0x30);
    assert!(
        body.windows(4).any(|w| w == [0x02, 0x03, 0x1a, 0x2b]),
        "{body:02x?}"
    );

    srv.put(
        "/ocsp",
        ocsp_response(
            &p,
            OcspAnswer::Revoked(t - 30),
            Some(t + 3600),
            &p.int_key,
            &[],
        ),
    );
    let v = run(&p, "strict", json!({}), &online()).await;
    let e = v.reason();
    assert!(
        !v.passed() && e.contains("is revoked") && e.contains("reason keyCompromise) (OCSP"),
        "{e}"
    );

    // A delegated responder with id-kp-OCSPSigning, issued by the issuer, may sign.
    let (rk, rc) = responder(&p, true);
    srv.put(
        "/ocsp",
        ocsp_response(&p, OcspAnswer::Good, Some(t + 3600), &rk, &[rc]),
    );
    assert!(run(&p, "strict", json!({}), &online()).await.passed());
    // Without that EKU it may not: unknown.
    let (rk, rc) = responder(&p, false);
    srv.put(
        "/ocsp",
        ocsp_response(&p, OcspAnswer::Good, Some(t + 3600), &rk, &[rc]),
    );
    let e = run(&p, "strict", json!({}), &online()).await.reason();
    assert!(
        e.contains("revocation status is unknown") && e.contains("id-kp-OCSPSigning"),
        "{e}"
    );
    // Another key altogether: unknown.
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    srv.put(
        "/ocsp",
        ocsp_response(&p, OcspAnswer::Good, Some(t + 3600), &other, &[]),
    );
    assert!(!run(&p, "strict", json!({}), &online()).await.passed());
    // An expired response: unknown, logged under permissive.
    srv.put(
        "/ocsp",
        ocsp_response(&p, OcspAnswer::Good, Some(t - 10), &p.int_key, &[]),
    );
    let v = run(&p, "permissive", json!({}), &online()).await;
    assert!(v.passed());
    assert!(
        v.warnings().join("").contains("expired OCSP response"),
        "{:?}",
        v.warnings()
    );
    // Garbage: unknown.
    srv.put("/ocsp", b"not ocsp".to_vec());
    let e = run(&p, "strict", json!({}), &online()).await.reason();
    assert!(e.contains("not a DER OCSPResponse"), "{e}");
}

#[tokio::test]
async fn ocsp_unknown_falls_back_to_crl() {
    let srv = CrlServer::start().await;
    let p = pki_with(
        Some(srv.url("/int.crl")),
        None,
        None,
        Some(&srv.url("/ocsp")),
    );
    let t = now();
    srv.put(
        "/ocsp",
        ocsp_response(&p, OcspAnswer::Unknown, Some(t + 3600), &p.int_key, &[]),
    );
    srv.put("/int.crl", p.int_crl(&CrlSpec::fresh(vec![])));
    let checker = online();
    let v = run(&p, "strict", json!({}), &checker).await;
    assert!(v.passed(), "{}", v.reason());
    let r = checker.check_chain(&p.chain, None, t).await;
    assert_eq!(
        (r[0].result, r[0].method),
        (RevocationResult::Ok, RevocationMethod::OcspFallbackCrl)
    );
    // OCSP unreachable (404) and the CRL revokes: revoked.
    srv.files.lock().unwrap().remove("/ocsp");
    srv.put(
        "/int.crl",
        p.int_crl(&CrlSpec::fresh(vec![(LEAF_SERIAL, None, t - 5)])),
    );
    let e = run(&p, "strict", json!({}), &online()).await.reason();
    assert!(e.contains("is revoked") && e.contains("(CRL "), "{e}");
    // Both failing: unknown with both reasons.
    srv.files.lock().unwrap().remove("/int.crl");
    let e = run(&p, "strict", json!({}), &online()).await.reason();
    assert!(
        e.contains("revocation status is unknown")
            && e.contains("OCSP ")
            && e.contains("failed to download CRL"),
        "{e}"
    );
    // OCSP "unknown" and no CRL distribution point: unknown.
    let q = pki_with(None, None, None, Some(&srv.url("/ocsp-q")));
    srv.put(
        "/ocsp-q",
        ocsp_response(&q, OcspAnswer::Unknown, Some(t + 3600), &q.int_key, &[]),
    );
    let e = run(&q, "strict", json!({}), &online()).await.reason();
    assert!(e.contains("does not know the certificate"), "{e}");
}
