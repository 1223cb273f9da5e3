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
//! Deliberate choices: delta CRLs (a certificate or CRL naming a freshestCRL distribution point, or
//! a deltaCRLIndicator) are not supported and give "unknown"; a CRL or OCSP response whose
//! `thisUpdate` is more than [`CLOCK_SKEW`] in the future gives "unknown" (notation does not check
//! it); the CRL issuer name must equal the issuer certificate's subject; OCSP requests carry no
//! nonce (as notation) and use a SHA-256 CertID.
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
        if cert.has_freshest_crl() {
            return CertRevocation::unknown(
                m,
                "the certificate names a delta CRL (freshestCRL), which sigil does not support"
                    .into(),
            );
        }
        // Every distribution point is checked (partitioned CRLs); the first failure makes the
        // certificate unknown, a revocation on any of them makes it revoked.
        for url in urls {
            let bytes = match self.download(url).await {
                Ok(b) => b,
                Err(e) => {
                    return CertRevocation::unknown(
                        m,
                        format!("failed to download CRL from {url}: {e}"),
                    );
                }
            };
            let crl = match Crl::parse(&bytes) {
                Ok(c) => c,
                Err(e) => return CertRevocation::unknown(m, format!("CRL from {url}: {e}")),
            };
            if let Err(e) = crl.validate(&bytes, issuer, now) {
                return CertRevocation::unknown(
                    m,
                    format!("failed to validate CRL from {url}: {e}"),
                );
            }
            match crl.lookup(&cert.serial_bytes(), signing_time) {
                Err(e) => {
                    return CertRevocation::unknown(
                        m,
                        format!("failed to check revocation status from {url}: {e}"),
                    );
                }
                Ok(Some(why)) => {
                    return CertRevocation {
                        result: RevocationResult::Revoked,
                        method: m,
                        revoked: Some(format!("{why} (CRL {url})")),
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
    issuer: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
    /// `(oid, critical)` of the CRL extensions.
    extensions: Vec<(String, bool)>,
    entries: Vec<Entry>,
}

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

impl Crl {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        use der::{Decode as _, Encode as _};
        let list =
            x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(bytes)
                .map_err(|e| format!("not a DER X.509 CRL: {e}"))?;
        let tbs = &list.tbs_cert_list;
        let extensions = tbs
            .crl_extensions
            .as_ref()
            .map(|exts| {
                exts.iter()
                    .map(|e| (e.extn_id.to_string(), e.critical))
                    .collect()
            })
            .unwrap_or_default();
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

    fn validate(&self, der: &[u8], issuer: &Cert, now: i64) -> Result<(), String> {
        if self.issuer != issuer.subject_der() {
            return Err(format!(
                "the CRL issuer is not the certificate's issuer {:?}",
                issuer.subject()
            ));
        }
        if let Some(p) = issuer.crl_signer_problem() {
            return Err(p);
        }
        if !signed_by(der, issuer) {
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
                OID_IDP => {}
                OID_FRESHEST_CRL | OID_DELTA_CRL_INDICATOR => {
                    return Err("delta CRLs are not supported".into());
                }
                _ if *critical => {
                    return Err(format!("unsupported critical extension {oid} in the CRL"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `Some(description)` when `serial` is revoked (or on hold) at `signing_time`.
    fn lookup(&self, serial: &[u8], signing_time: Option<i64>) -> Result<Option<String>, String> {
        let mut latest_temp: Option<&Entry> = None;
        for e in self.entries.iter().filter(|e| e.serial == serial) {
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
                    if latest_temp.is_none_or(|l| l.revocation_time < e.revocation_time) {
                        latest_temp = Some(e);
                    }
                }
                r => {
                    return Ok(Some(format!(
                        "revoked on {} (reason {})",
                        format_rfc3339(e.revocation_time),
                        reason_name(r)
                    )));
                }
            }
        }
        Ok(latest_temp
            .filter(|e| e.reason == Some(REASON_CERTIFICATE_HOLD))
            .map(|e| {
                format!(
                    "on hold since {} (reason certificateHold)",
                    format_rfc3339(e.revocation_time)
                )
            }))
    }
}
