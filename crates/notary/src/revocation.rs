//! Certificate revocation checking (OCSP and CRL) as notation does it (notation-core-go `revocation`): per
//! certificate of a chain (leaf and intermediates; the root is never revokable), OCSP first when the
//! certificate names an OCSP responder, with a fallback to its CRL distribution points when OCSP gives
//! "unknown", CRL alone when it names only distribution points, and "non-revokable" (which counts as
//! good) when it names neither. Results are combined as notation-go's `revocationFinalResult` does:
//! any revoked certificate → revoked, else any unknown → unknown, else OK.
//!
//! CRL rules (notation-core-go 1.2+ `internal/crl`): every distribution point URI must be `http`, is
//! fetched with a timeout and a size cap, and must hold a DER CRL signed by the certificate's issuer
//! (which must be a CA with cRLSign when it has a keyUsage), with a `nextUpdate` that has not passed
//! and no unsupported critical extension (issuingDistributionPoint is tolerated). The certificate's
//! serial is then looked up: an entry whose invalidityDate is after the (signing-authority) signing
//! time does not count; `certificateHold` and `removeFromCRL` entries are temporary and the most recent
//! decides (hold → revoked, removed → good); any other reason is a permanent revocation. Any
//! download or validation failure makes the certificate "unknown" — never good.
//!
//! OCSP (notation-core-go `ocsp`, here in the private `ocsp` module): each AIA OCSP URI (`http`
//! only) gets a POST with a timeout until one responder answers definitively; a response signed by
//! the issuer or a delegated id-kp-OCSPSigning responder it issued, naming this certificate, with
//! `nextUpdate` not passed. `good` → OK, `revoked` → revoked (unless revoked after the
//! signing-authority signing time), the responder's `unknown` or any failure → unknown, which falls
//! back to the CRLs when the certificate has distribution points.
//!
//! Delta CRLs (notation-core-go 1.3 `revocation/crl`, RFC 5280 §5.2.4/§5.2.6): the delta CRL's URLs
//! come from the base CRL's freshestCRL extension — or, when the base CRL names none, from the
//! certificate's — and are alternatives tried in order until one downloads. The delta CRL must pass
//! the same issuer, signature and freshness checks as the base CRL, carry a deltaCRLIndicator whose
//! base CRL number is not greater than the base CRL's cRLNumber, have a cRLNumber greater than the
//! base's, and cover the same scope (the same issuingDistributionPoint). Its entries are merged with
//! the base CRL's: a permanent revocation in either revokes; of the temporary entries the most
//! recent decides, the delta's winning a tie, so a delta `removeFromCRL` releases a base hold. A
//! delta CRL that cannot be downloaded or fails any check makes the certificate "unknown"; a
//! complete CRL expected at a distribution point that turns out to be a delta CRL is "unknown" too.
//!
//! Deliberate choices: a CRL or OCSP response whose `thisUpdate` is more than [`CLOCK_SKEW`] in the
//! future gives "unknown" (notation does not check it); the CRL issuer name must equal the issuer
//! certificate's subject; OCSP requests carry no nonce (as notation) and use a SHA-256 CertID.
//!
//! [`RevocationChecker::offline`] contacts nothing: certificates naming responders are "unknown",
//! certificates without are "non-revokable". Downloads and per-certificate results are cached for the
//! lifetime of one checker (one verification run).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::der as tlv;
use crate::error::NotaryError;
use crate::ocsp::{self, OcspStatus};
use crate::time::format_rfc3339;
use crate::x509::{Cert, signed_by, trim_serial};

/// CRL download timeout of the notation CLI.
pub const DEFAULT_CRL_TIMEOUT: Duration = Duration::from_secs(5);
/// OCSP request timeout of notation.
pub const DEFAULT_OCSP_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest OCSP response read.
pub const MAX_OCSP_RESPONSE_SIZE: usize = 1 << 20;
/// Largest CRL read (notation-core-go's 32 MiB).
pub const DEFAULT_MAX_CRL_SIZE: usize = 32 << 20;
/// How far in the future a CRL's `thisUpdate` may be.
pub const CLOCK_SKEW: i64 = 300;

const OID_IDP: &str = "2.5.29.28";
const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_FRESHEST_CRL: &str = "2.5.29.46";
const OID_DELTA_CRL_INDICATOR: &str = "2.5.29.27";
const OID_REASON_CODE: &str = "2.5.29.21";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";
const REASON_CERTIFICATE_HOLD: u8 = 6;
const REASON_REMOVE_FROM_CRL: u8 = 8;

/// The revocation status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationResult {
    /// A responder said the certificate is good.
    Ok,
    /// The certificate names no responder (or is the root): nothing to check, counts as good.
    NonRevokable,
    /// The certificate is revoked (or on hold).
    Revoked,
    /// The status could not be established (network, invalid or expired CRL, unsupported feature).
    Unknown,
}

/// Which method produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RevocationMethod {
    /// None was needed (non-revokable).
    None,
    /// OCSP.
    Ocsp,
    /// CRL.
    Crl,
    /// OCSP gave "unknown", then CRL.
    OcspFallbackCrl,
}

/// The outcome for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRevocation {
    /// The status.
    pub result: RevocationResult,
    /// The method used.
    pub method: RevocationMethod,
    /// For a revoked certificate: the CRL reason name and revocation time.
    pub revoked: Option<String>,
    /// What went wrong per responder (`url: problem`).
    pub errors: Vec<String>,
}

impl CertRevocation {
    fn non_revokable() -> Self {
        Self {
            result: RevocationResult::NonRevokable,
            method: RevocationMethod::None,
            revoked: None,
            errors: Vec::new(),
        }
    }

    fn unknown(method: RevocationMethod, error: String) -> Self {
        Self {
            result: RevocationResult::Unknown,
            method,
            revoked: None,
            errors: vec![error],
        }
    }

    fn is_good(&self) -> bool {
        matches!(
            self.result,
            RevocationResult::Ok | RevocationResult::NonRevokable
        )
    }
}

/// Network settings of a [`RevocationChecker`].
#[derive(Debug, Clone)]
pub struct RevocationOptions {
    /// Timeout of one CRL download.
    pub crl_timeout: Duration,
    /// Timeout of one OCSP request.
    pub ocsp_timeout: Duration,
    /// Largest CRL accepted, in bytes.
    pub max_crl_size: usize,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        Self {
            crl_timeout: DEFAULT_CRL_TIMEOUT,
            ocsp_timeout: DEFAULT_OCSP_TIMEOUT,
            max_crl_size: DEFAULT_MAX_CRL_SIZE,
        }
    }
}

type CacheKey = (Vec<u8>, Vec<u8>, Option<i64>);
/// A download: the body, or why it failed (failures are cached too, for one run).
type Download = Result<Arc<Vec<u8>>, String>;

/// Checks certificates' revocation status; holds the HTTP client and the per-run caches.
#[derive(Debug)]
pub struct RevocationChecker {
    http: Option<reqwest::Client>,
    opts: RevocationOptions,
    crls: Mutex<HashMap<String, Download>>,
    results: Mutex<HashMap<CacheKey, CertRevocation>>,
}

impl RevocationChecker {
    /// A checker that downloads CRLs over HTTP with `opts`.
    pub fn new(opts: RevocationOptions) -> Result<Self, NotaryError> {
        // CRLs are fetched over plain HTTP; the TLS configuration (ring, no roots) only keeps the
        // client independent of a process-wide rustls provider.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| NotaryError::Invalid(format!("revocation HTTP client: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(opts.crl_timeout.max(opts.ocsp_timeout))
            .build()
            .map_err(|e| NotaryError::Invalid(format!("revocation HTTP client: {e}")))?;
        Ok(Self {
            http: Some(http),
            opts,
            crls: Mutex::new(HashMap::new()),
            results: Mutex::new(HashMap::new()),
        })
    }

    /// A checker that contacts nothing: certificates naming responders are "unknown".
    pub fn offline() -> Self {
        Self {
            http: None,
            opts: RevocationOptions::default(),
            crls: Mutex::new(HashMap::new()),
            results: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this checker contacts responders.
    pub fn is_online(&self) -> bool {
        self.http.is_some()
    }

    /// Checks every certificate of `chain` (leaf first, root last; each issued by the next).
    /// `signing_time`: the authentic signing time (signing-authority scheme), compared with CRL
    /// invalidity dates; `now`: the verification time (Unix seconds).
    pub async fn check_chain(
        &self,
        chain: &[Cert],
        signing_time: Option<i64>,
        now: i64,
    ) -> Vec<CertRevocation> {
        let mut out = Vec::with_capacity(chain.len());
        for (i, cert) in chain.iter().enumerate() {
            match chain.get(i + 1) {
                None => out.push(CertRevocation::non_revokable()),
                Some(issuer) => out.push(self.check_cert(cert, issuer, signing_time, now).await),
            }
        }
        out
    }

    /// Checks one certificate issued by `issuer`.
    pub async fn check_cert(
        &self,
        cert: &Cert,
        issuer: &Cert,
        signing_time: Option<i64>,
        now: i64,
    ) -> CertRevocation {
        let key = (cert.der.clone(), issuer.der.clone(), signing_time);
        if let Some(hit) = self.results.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return hit;
        }
        let r = self.check_uncached(cert, issuer, signing_time, now).await;
        if let Ok(mut m) = self.results.lock() {
            m.insert(key, r.clone());
        }
        r
    }

    async fn check_uncached(
        &self,
        cert: &Cert,
        issuer: &Cert,
        signing_time: Option<i64>,
        now: i64,
    ) -> CertRevocation {
        let ocsp_urls = cert.ocsp_urls();
        let cdps = cert.crl_distribution_points();
        if ocsp_urls.is_empty() && cdps.is_empty() {
            return CertRevocation::non_revokable();
        }
        if self.http.is_none() {
            return CertRevocation::unknown(
                RevocationMethod::None,
                "the certificate names OCSP/CRL responders and revocation is checked offline"
                    .into(),
            );
        }
        if ocsp_urls.is_empty() {
            return self.check_crl(cert, issuer, &cdps, signing_time, now).await;
        }
        let o = self
            .check_ocsp(cert, issuer, &ocsp_urls, signing_time, now)
            .await;
        if o.result != RevocationResult::Unknown || cdps.is_empty() {
            return o;
        }
        // OCSP could not tell: fall back to the CRLs.
        let mut r = self.check_crl(cert, issuer, &cdps, signing_time, now).await;
        r.method = RevocationMethod::OcspFallbackCrl;
        if r.result == RevocationResult::Unknown {
            let mut errors = o.errors;
            errors.append(&mut r.errors);
            r.errors = errors;
        }
        r
    }

    /// OCSP over each responder until one gives a definitive answer (good, revoked, or its own
    /// "unknown"); failures of every responder leave the status unknown.
    async fn check_ocsp(
        &self,
        cert: &Cert,
        issuer: &Cert,
        urls: &[String],
        signing_time: Option<i64>,
        now: i64,
    ) -> CertRevocation {
        let m = RevocationMethod::Ocsp;
        let mut errors = Vec::new();
        for url in urls {
            match self.ocsp_one(url, cert, issuer, signing_time, now).await {
                Ok(OcspStatus::Good) => {
                    return CertRevocation {
                        result: RevocationResult::Ok,
                        method: m,
                        revoked: None,
                        errors: Vec::new(),
                    };
                }
                Ok(OcspStatus::Revoked(why)) => {
                    return CertRevocation {
                        result: RevocationResult::Revoked,
                        method: m,
                        revoked: Some(format!("{why} (OCSP {url})")),
                        errors: Vec::new(),
                    };
                }
                Ok(OcspStatus::Unknown) => {
                    return CertRevocation::unknown(
                        m,
                        format!("OCSP {url}: the responder does not know the certificate"),
                    );
                }
                Err(e) => errors.push(format!("OCSP {url}: {e}")),
            }
        }
        CertRevocation {
            result: RevocationResult::Unknown,
            method: m,
            revoked: None,
            errors,
        }
    }

    async fn ocsp_one(
        &self,
        url: &str,
        cert: &Cert,
        issuer: &Cert,
        signing_time: Option<i64>,
        now: i64,
    ) -> Result<OcspStatus, String> {
        let Some(http) = &self.http else {
            return Err("revocation is checked offline".into());
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid OCSP URL: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!(
                "unsupported OCSP endpoint {url:?}: only http URLs are supported"
            ));
        }
        let resp = http
            .post(parsed)
            .timeout(self.opts.ocsp_timeout)
            .header("Content-Type", "application/ocsp-request")
            .header("Accept", "application/ocsp-response")
            .body(ocsp::request(cert, issuer))
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let body = read_capped(resp, MAX_OCSP_RESPONSE_SIZE, "OCSP response").await?;
        ocsp::evaluate(&body, cert, issuer, signing_time, now)
    }

    async fn check_crl(
        &self,
        cert: &Cert,
        issuer: &Cert,
        urls: &[String],
        signing_time: Option<i64>,
        now: i64,
    ) -> CertRevocation {
        let m = RevocationMethod::Crl;
        // Every distribution point is checked (partitioned CRLs); the first failure makes the
        // certificate unknown, a revocation on any of them makes it revoked.
        for url in urls {
            let base = match self.fetch_crl(url).await {
                Ok(c) => c,
                Err(e) => {
                    return CertRevocation::unknown(
                        m,
                        format!("failed to download CRL from {url}: {e}"),
                    );
                }
            };
            if let Err(e) = base.validate_base(issuer, now) {
                return CertRevocation::unknown(
                    m,
                    format!("failed to validate CRL from {url}: {e}"),
                );
            }
            let delta = match self.delta_for(cert, &base, issuer, now).await {
                Ok(d) => d,
                Err(e) => {
                    return CertRevocation::unknown(
                        m,
                        format!("failed to validate CRL from {url}: {e}"),
                    );
                }
            };
            match lookup(&base, delta.as_ref(), &cert.serial_bytes(), signing_time) {
                Err(e) => {
                    return CertRevocation::unknown(
                        m,
                        format!("failed to check revocation status from {url}: {e}"),
                    );
                }
                Ok(Some(why)) => {
                    let from = match &delta {
                        Some(d) => format!("CRL {url} with delta CRL {}", d.url),
                        None => format!("CRL {url}"),
                    };
                    return CertRevocation {
                        result: RevocationResult::Revoked,
                        method: m,
                        revoked: Some(format!("{why} ({from})")),
                        errors: Vec::new(),
                    };
                }
                Ok(None) => {}
            }
        }
        CertRevocation {
            result: RevocationResult::Ok,
            method: m,
            revoked: None,
            errors: Vec::new(),
        }
    }

    /// Downloads and parses the CRL at `url`.
    async fn fetch_crl(&self, url: &str) -> Result<Crl, String> {
        let bytes = self.download(url).await?;
        Crl::parse(&bytes, url)
    }

    /// The validated delta CRL that completes `base`, if one is published: its URLs come from the
    /// base CRL's freshestCRL extension, or — when the base CRL names none — from the
    /// certificate's. The URLs are alternatives of the same scope and are tried in order until one
    /// downloads and parses (notation-core-go's rule); the delta CRL found must then pass every
    /// check, or the whole distribution point is unknown.
    async fn delta_for(
        &self,
        cert: &Cert,
        base: &Crl,
        issuer: &Cert,
        now: i64,
    ) -> Result<Option<Crl>, String> {
        let urls = match &base.freshest {
            Some(urls) if !urls.is_empty() => urls.clone(),
            _ => cert_freshest_crl(cert)?,
        };
        if urls.is_empty() {
            return Ok(None);
        }
        let mut errors = Vec::new();
        let mut found = None;
        for u in &urls {
            match self.fetch_crl(u).await {
                Ok(c) => {
                    found = Some(c);
                    break;
                }
                Err(e) => errors.push(format!("{u}: {e}")),
            }
        }
        let Some(delta) = found else {
            return Err(format!(
                "failed to download delta CRL: {}",
                errors.join("; ")
            ));
        };
        delta
            .validate_delta(base, issuer, now)
            .map_err(|e| format!("invalid delta CRL from {}: {e}", delta.url))?;
        Ok(Some(delta))
    }

    async fn download(&self, url: &str) -> Download {
        if let Some(hit) = self.crls.lock().ok().and_then(|m| m.get(url).cloned()) {
            return hit;
        }
        let r = self.download_uncached(url).await;
        if let Ok(mut m) = self.crls.lock() {
            m.insert(url.to_owned(), r.clone());
        }
        r
    }

    async fn download_uncached(&self, url: &str) -> Download {
        let Some(http) = &self.http else {
            return Err("revocation is checked offline".into());
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid CRL URL: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!(
                "unsupported CRL endpoint {url:?}: only http URLs are supported"
            ));
        }
        let resp = http
            .get(parsed)
            .timeout(self.opts.crl_timeout)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        Ok(Arc::new(
            read_capped(resp, self.opts.max_crl_size, "CRL").await?,
        ))
    }
}

/// Reads a successful response's body, refusing more than `max` bytes.
async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, String> {
    if !resp.status().is_success() {
        return Err(format!("HTTP status {}", resp.status()));
    }
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(format!("the {what} is larger than the {max}-byte limit"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > max {
            return Err(format!("the {what} is larger than the {max}-byte limit"));
        }
    }
    Ok(body)
}

/// The combined verdict over a chain, as notation-go's `revocationFinalResult`: `Ok(())` when every
/// certificate is good, else the result (revoked wins over unknown) and an explanation naming the
/// certificate (`what`: "signing certificate" or "timestamping certificate").
pub fn final_result(
    chain: &[Cert],
    results: &[CertRevocation],
    what: &str,
) -> Result<(), (RevocationResult, String)> {
    let bad = |r: RevocationResult| chain.iter().zip(results).rev().find(|(_, c)| c.result == r);
    if let Some((cert, c)) = bad(RevocationResult::Revoked) {
        return Err((
            RevocationResult::Revoked,
            format!(
                "{what} with subject {:?} is revoked: {}",
                cert.subject(),
                c.revoked.as_deref().unwrap_or("revoked")
            ),
        ));
    }
    if results.len() != chain.len() {
        return Err((
            RevocationResult::Unknown,
            format!("{what} revocation status is unknown: not every certificate was checked"),
        ));
    }
    if let Some((cert, c)) = chain.iter().zip(results).find(|(_, c)| !c.is_good()) {
        return Err((
            RevocationResult::Unknown,
            format!(
                "{what} with subject {:?} revocation status is unknown: {}",
                cert.subject(),
                c.errors.join("; ")
            ),
        ));
    }
    Ok(())
}

/// A parsed CRL (just what the checks need).
struct Crl {
    /// Where it was downloaded from (for messages).
    url: String,
    /// The whole DER (for the signature check).
    der: Arc<Vec<u8>>,
    issuer: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
    /// `(oid, critical)` of the CRL extensions.
    extensions: Vec<(String, bool)>,
    /// The cRLNumber (big-endian, no leading zeros).
    number: Option<Vec<u8>>,
    /// The deltaCRLIndicator's base CRL number: present on delta CRLs only.
    delta_base: Option<Vec<u8>>,
    /// The freshestCRL extension's URIs (where the delta CRL of this base CRL is published).
    freshest: Option<Vec<String>>,
    /// The DER value of the issuingDistributionPoint extension.
    idp: Option<Vec<u8>>,
    entries: Vec<Entry>,
}

/// One revokedCertificates entry.
struct Entry {
    serial: Vec<u8>,
    revocation_time: i64,
    reason: Option<u8>,
    invalidity: Option<i64>,
    /// A critical entry extension other than invalidityDate.
    unsupported_critical: Option<String>,
}

/// The RFC 5280 name of a CRL/OCSP reason code.
pub(crate) fn reason_name(r: Option<u8>) -> &'static str {
    match r {
        None | Some(0) => "unspecified",
        Some(1) => "keyCompromise",
        Some(2) => "cACompromise",
        Some(3) => "affiliationChanged",
        Some(4) => "superseded",
        Some(5) => "cessationOfOperation",
        Some(6) => "certificateHold",
        Some(8) => "removeFromCRL",
        Some(9) => "privilegeWithdrawn",
        Some(10) => "aACompromise",
        Some(_) => "unknown reason",
    }
}

fn unix(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// A non-negative DER INTEGER (an extension's value) as big-endian bytes without leading zeros.
fn parse_crl_number(v: &[u8], what: &str) -> Result<Vec<u8>, String> {
    let t = tlv::single(v)
        .filter(|t| t.tag == 0x02 && !t.content.is_empty())
        .ok_or_else(|| format!("the CRL has a malformed {what} extension"))?;
    if t.content[0] & 0x80 != 0 {
        return Err(format!("the CRL's {what} is negative"));
    }
    Ok(trim_serial(t.content))
}

/// Compares two non-negative big-endian integers without leading zeros.
fn cmp_number(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Decimal-free display of a CRL number (hex, as `openssl crl -text` prints large ones).
fn show_number(n: &[u8]) -> String {
    if n.is_empty() {
        return "0".into();
    }
    if n.len() <= 8 {
        let mut v = 0u64;
        for b in n {
            v = (v << 8) | u64::from(*b);
        }
        return v.to_string();
    }
    format!("0x{}", crate::x509::hex(n))
}

/// The URIs of a CRLDistributionPoints-syntax value (also the freshestCRL syntax): the `fullName`
/// uniformResourceIdentifiers of each distribution point. Malformed DER is an error.
fn dist_point_uris(v: &[u8]) -> Result<Vec<String>, String> {
    let bad = || "malformed distribution points (freshestCRL)".to_string();
    let outer = tlv::single(v).filter(|t| t.tag == 0x30).ok_or_else(bad)?;
    let mut out = Vec::new();
    for dp in tlv::children(outer.content).ok_or_else(bad)? {
        if dp.tag != 0x30 {
            return Err(bad());
        }
        let parts = tlv::children(dp.content).ok_or_else(bad)?;
        // distributionPoint [0] { fullName [0] GeneralNames | nameRelativeToCRLIssuer [1] }
        let Some(dpn) = parts.iter().find(|t| t.tag == 0xa0) else {
            continue;
        };
        for name in tlv::children(dpn.content).ok_or_else(bad)? {
            if name.tag != 0xa0 {
                continue;
            }
            for gn in tlv::children(name.content).ok_or_else(bad)? {
                if gn.tag == 0x86 {
                    let uri = std::str::from_utf8(gn.content).map_err(|_| bad())?;
                    out.push(uri.to_owned());
                }
            }
        }
    }
    Ok(out)
}

/// The freshestCRL URIs of a certificate (empty when it has none).
fn cert_freshest_crl(cert: &Cert) -> Result<Vec<String>, String> {
    use der::Decode as _;
    if !cert.has_freshest_crl() {
        return Ok(Vec::new());
    }
    let parsed = x509_cert::Certificate::from_der(&cert.der)
        .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    let ext = parsed
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_FRESHEST_CRL)
        .ok_or("the certificate's freshestCRL extension cannot be read")?;
    dist_point_uris(ext.extn_value.as_bytes())
        .map_err(|e| format!("the certificate's freshestCRL: {e}"))
}

/// `Some(description)` when `serial` is revoked (or on hold) at `signing_time` according to
/// `base` merged with its validated `delta`. Any permanent revocation in either list revokes; of
/// the temporary entries (certificateHold, removeFromCRL) the most recent decides, and on equal
/// revocation times the delta CRL's entry wins over the base CRL's (it is the newer statement).
fn lookup(
    base: &Crl,
    delta: Option<&Crl>,
    serial: &[u8],
    signing_time: Option<i64>,
) -> Result<Option<String>, String> {
    let all = base.entries.iter().map(|e| (e, false)).chain(
        delta
            .into_iter()
            .flat_map(|d| d.entries.iter().map(|e| (e, true))),
    );
    let mut latest_temp: Option<(&Entry, bool)> = None;
    for (e, from_delta) in all.filter(|(e, _)| e.serial == serial) {
        if let Some(oid) = &e.unsupported_critical {
            return Err(format!(
                "unsupported critical extension {oid} in the CRL entry"
            ));
        }
        if let (Some(st), Some(inv)) = (signing_time, e.invalidity)
            && st < inv
        {
            // Signed before the key became invalid: not revoked at signing time.
            continue;
        }
        match e.reason {
            Some(REASON_CERTIFICATE_HOLD) | Some(REASON_REMOVE_FROM_CRL) => {
                if latest_temp.is_none_or(|(l, l_delta)| {
                    (l.revocation_time, l_delta) < (e.revocation_time, from_delta)
                }) {
                    latest_temp = Some((e, from_delta));
                }
            }
            r => {
                return Ok(Some(format!(
                    "revoked on {} (reason {}{})",
                    format_rfc3339(e.revocation_time),
                    reason_name(r),
                    if from_delta { ", delta CRL" } else { "" }
                )));
            }
        }
    }
    Ok(latest_temp
        .filter(|(e, _)| e.reason == Some(REASON_CERTIFICATE_HOLD))
        .map(|(e, _)| {
            format!(
                "on hold since {} (reason certificateHold)",
                format_rfc3339(e.revocation_time)
            )
        }))
}

impl Crl {
    fn parse(bytes: &Arc<Vec<u8>>, url: &str) -> Result<Self, String> {
        use der::{Decode as _, Encode as _};
        let list =
            x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(bytes)
                .map_err(|e| format!("not a DER X.509 CRL: {e}"))?;
        let tbs = &list.tbs_cert_list;
        let mut extensions = Vec::new();
        let (mut number, mut delta_base, mut freshest, mut idp) = (None, None, None, None);
        for e in tbs.crl_extensions.iter().flatten() {
            let oid = e.extn_id.to_string();
            let v = e.extn_value.as_bytes();
            match oid.as_str() {
                OID_CRL_NUMBER => number = Some(parse_crl_number(v, "cRLNumber")?),
                OID_DELTA_CRL_INDICATOR => {
                    delta_base = Some(parse_crl_number(v, "deltaCRLIndicator")?);
                }
                OID_FRESHEST_CRL => {
                    freshest = Some(dist_point_uris(v).map_err(|e| format!("the CRL's {e}"))?);
                }
                OID_IDP => idp = Some(v.to_vec()),
                _ => {}
            }
            extensions.push((oid, e.critical));
        }
        let mut entries = Vec::new();
        for rc in tbs.revoked_certificates.iter().flatten() {
            let mut entry = Entry {
                serial: trim_serial(rc.serial_number.as_bytes()),
                revocation_time: unix(&rc.revocation_date),
                reason: None,
                invalidity: None,
                unsupported_critical: None,
            };
            for ext in rc.crl_entry_extensions.iter().flatten() {
                let oid = ext.extn_id.to_string();
                let v = ext.extn_value.as_bytes();
                match oid.as_str() {
                    OID_REASON_CODE => {
                        let t = tlv::single(v)
                            .filter(|t| t.tag == 0x0a && t.content.len() == 1)
                            .ok_or("a CRL entry has a malformed reasonCode")?;
                        entry.reason = Some(t.content[0]);
                    }
                    OID_INVALIDITY_DATE => {
                        let t = tlv::single(v)
                            .filter(|t| t.tag == 0x18)
                            .and_then(|t| sigil_oci::time::parse_generalized_time(t.content))
                            .ok_or("a CRL entry has a malformed invalidityDate")?;
                        entry.invalidity = Some(t);
                    }
                    _ if ext.critical => entry.unsupported_critical = Some(oid),
                    _ => {}
                }
            }
            entries.push(entry);
        }
        Ok(Self {
            url: url.to_owned(),
            der: bytes.clone(),
            number,
            delta_base,
            freshest,
            idp,
            issuer: tbs
                .issuer
                .to_der()
                .map_err(|e| format!("CRL issuer: {e}"))?,
            this_update: unix(&tbs.this_update),
            next_update: tbs.next_update.as_ref().map(unix),
            extensions,
            entries,
        })
    }

    /// The checks every CRL (complete or delta) must pass: issued and signed by `issuer`, fresh
    /// (`nextUpdate` present and not passed, `thisUpdate` not in the future) and no unsupported
    /// critical extension.
    fn validate_common(&self, issuer: &Cert, now: i64) -> Result<(), String> {
        if self.issuer != issuer.subject_der() {
            return Err(format!(
                "the CRL issuer is not the certificate's issuer {:?}",
                issuer.subject()
            ));
        }
        if let Some(p) = issuer.crl_signer_problem() {
            return Err(p);
        }
        if !signed_by(&self.der, issuer) {
            return Err(format!(
                "the CRL is not signed by CA {:?} (signature verification failed)",
                issuer.subject()
            ));
        }
        let next = self.next_update.ok_or("the CRL has no nextUpdate")?;
        if now > next {
            return Err(format!(
                "expired CRL: the verification time {} is after its nextUpdate {}",
                format_rfc3339(now),
                format_rfc3339(next)
            ));
        }
        if self.this_update > now.saturating_add(CLOCK_SKEW) {
            return Err(format!(
                "the CRL's thisUpdate {} is in the future",
                format_rfc3339(self.this_update)
            ));
        }
        for (oid, critical) in &self.extensions {
            match oid.as_str() {
                OID_IDP | OID_FRESHEST_CRL | OID_DELTA_CRL_INDICATOR => {}
                _ if *critical => {
                    return Err(format!("unsupported critical extension {oid} in the CRL"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A CRL named by a distribution point must be complete: a delta CRL there is refused.
    fn validate_base(&self, issuer: &Cert, now: i64) -> Result<(), String> {
        self.validate_common(issuer, now)?;
        if self.delta_base.is_some() {
            return Err(
                "the CRL is a delta CRL (deltaCRLIndicator) where a complete CRL is expected"
                    .into(),
            );
        }
        Ok(())
    }

    /// RFC 5280 §5.2.4 / notation-core-go: the delta CRL passes the common checks against the same
    /// issuer, carries a deltaCRLIndicator whose base CRL number is not greater than the base
    /// CRL's cRLNumber, has a cRLNumber greater than the base CRL's, and covers the same scope
    /// (the same issuingDistributionPoint, or none on both).
    fn validate_delta(&self, base: &Crl, issuer: &Cert, now: i64) -> Result<(), String> {
        self.validate_common(issuer, now)?;
        let min_base = self
            .delta_base
            .as_ref()
            .ok_or("the CRL has no deltaCRLIndicator extension: it is not a delta CRL")?;
        let base_number = base
            .number
            .as_ref()
            .ok_or("the base CRL has no cRLNumber to match the delta CRL against")?;
        let number = self
            .number
            .as_ref()
            .ok_or("the delta CRL has no cRLNumber")?;
        if cmp_number(number, base_number).is_le() {
            return Err(format!(
                "the delta CRL number {} is not greater than the base CRL number {}",
                show_number(number),
                show_number(base_number)
            ));
        }
        if cmp_number(min_base, base_number).is_gt() {
            return Err(format!(
                "the delta CRL's base CRL number (deltaCRLIndicator) {} is greater than the base \
                 CRL number {}: the delta does not apply to this base CRL",
                show_number(min_base),
                show_number(base_number)
            ));
        }
        if self.idp != base.idp {
            return Err(
                "the delta CRL's issuingDistributionPoint differs from the base CRL's (another scope)"
                    .into(),
            );
        }
        Ok(())
    }
}
