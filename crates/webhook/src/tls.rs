//! Serving certificates: [`CertReloader`] serves a PEM certificate chain and key and picks up new
//! files (cert-manager or a Secret update rotating them) without a restart; [`ensure_serving_cert`]
//! makes the certificate `sigil serve` uses: a local CA (the `caBundle` of the webhook configurations)
//! and a leaf certificate for the webhook's host names, persisted under a directory (`<home>/tls/`) so
//! the `caBundle` stays the same across restarts.
//!
//! Files: `ca.crt`, `ca.key`, `tls.crt` (leaf, then CA), `tls.key`, and `tls.json` (the leaf's names
//! and expiry). The leaf is issued again when the requested names change or it expires within 30
//! days; the CA is kept as long as its files exist. Keys are P-256 (ring) and written with mode 0600.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration as StdDuration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Why the serving certificate could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Key or certificate generation, or parsing a stored key, failed.
    #[error("{what}: {source}")]
    Cert {
        /// What was being done.
        what: String,
        /// Why.
        source: rcgen::Error,
    },
    /// No host name or address was given for the leaf.
    #[error("the serving certificate needs at least one host name or IP address")]
    NoNames,
    /// A serving certificate or key file is unusable.
    #[error("TLS {what} {}: {why}", path.display())]
    Load {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Loads a certificate chain and its key into a rustls `CertifiedKey` (ring), checking that the key
/// belongs to the first certificate.
fn load_certified_key(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what, path: &Path, why: String| TlsError::Load {
        what,
        path: path.to_owned(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("certificate", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(
            "certificate",
            cert,
            "no CERTIFICATE block found".into(),
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| bad("key", key, e.to_string()))?;
    let ck = rustls::sign::CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        bad(
            "key",
            key,
            format!(
                "does not belong to the certificate in {}: {e}",
                cert.display()
            ),
        )
    })?;
    Ok(ck)
}

fn file_pair_fingerprint(cert: &Path, key: &Path) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for p in [cert, key] {
        match std::fs::read(p) {
            Ok(b) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(&b);
            }
            Err(e) => h.update(e.to_string().as_bytes()),
        }
    }
    h.finalize().into()
}

/// A serving certificate that is reloaded when its files change. New TLS connections get the
/// current certificate; a reload that fails (unreadable, mismatched key) keeps the previous one.
#[derive(Debug)]
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<rustls::sign::CertifiedKey>>,
    fingerprint: Mutex<[u8; 32]>,
}

impl CertReloader {
    /// Loads the certificate chain and key (an error here is fatal).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let fingerprint = file_pair_fingerprint(cert, key);
        let ck = load_certified_key(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(ck)),
            fingerprint: Mutex::new(fingerprint),
        }))
    }

    /// A rustls server config (ring; HTTP/2 and HTTP/1.1 via ALPN) serving the current certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn rustls::server::ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads if the files changed since the last attempt: `Some(Ok(()))` after a reload,
    /// `Some(Err(why))` after a failed one, `None` when nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let fp = file_pair_fingerprint(&self.cert, &self.key);
        {
            let mut last = match self.fingerprint.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if *last == fp {
                return None;
            }
            *last = fp;
        }
        match load_certified_key(&self.cert, &self.key) {
            Ok(ck) => {
                match self.current.write() {
                    Ok(mut c) => *c = Arc::new(ck),
                    Err(p) => *p.into_inner() = Arc::new(ck),
                }
                tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                Some(Ok(()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "serving certificate reload failed; keeping the previous one");
                Some(Err(e.to_string()))
            }
        }
    }

    /// Checks the files every `interval` (on the blocking pool) until the task is aborted.
    pub fn spawn_watch(self: &Arc<Self>, interval: StdDuration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let w = Arc::clone(&this);
                let _ = tokio::task::spawn_blocking(move || w.reload_if_changed()).await;
            }
        })
    }
}

impl rustls::server::ResolvesServerCert for CertReloader {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        })
    }
}

/// A serving certificate on disk.
#[derive(Debug, Clone)]
pub struct ServingCert {
    /// The leaf certificate chain (PEM).
    pub cert_path: PathBuf,
    /// The leaf private key (PEM, PKCS#8).
    pub key_path: PathBuf,
    /// The CA certificate (PEM): the `caBundle`.
    pub ca_path: PathBuf,
    /// The CA certificate, PEM text.
    pub ca_pem: String,
    /// Whether the leaf was issued by this call (false: reused from disk).
    pub issued: bool,
}

impl ServingCert {
    /// The `caBundle` value of a webhook configuration: base64 of the CA's PEM.
    pub fn ca_bundle(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes())
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct LeafInfo {
    names: Vec<String>,
    not_after_unix: i64,
}

const CA_CN: &str = "sigil webhook local CA";

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_CN);
    dn.push(DnType::OrganizationName, "sigil");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |source| TlsError::Cert {
        what: what.to_owned(),
        source,
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

fn write_public(path: &Path, text: &str) -> Result<(), TlsError> {
    std::fs::write(path, text).map_err(io(path))
}

/// Loads or creates the CA and the leaf for `names` (DNS names or IP addresses) under `dir`.
pub fn ensure_serving_cert(dir: &Path, names: &[String]) -> Result<ServingCert, TlsError> {
    if names.is_empty() {
        return Err(TlsError::NoNames);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    let info_path = dir.join("tls.json");

    let now = OffsetDateTime::now_utc();
    let (ca_key, ca_pem, ca_new) = if ca_path.is_file() && ca_key_path.is_file() {
        let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(cert_err("reading ca.key"))?;
        let pem = std::fs::read_to_string(&ca_path).map_err(io(&ca_path))?;
        (key, pem, false)
    } else {
        let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
        let mut p = ca_params();
        p.not_before = now - Duration::hours(1);
        p.not_after = now + Duration::days(3650);
        let cert = p
            .self_signed(&key)
            .map_err(cert_err("self-signing the CA"))?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        write_public(&ca_path, &cert.pem())?;
        (key, cert.pem(), true)
    };

    let wanted: Vec<String> = names.to_vec();
    let current: Option<LeafInfo> = std::fs::read(&info_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let reuse = !ca_new
        && cert_path.is_file()
        && key_path.is_file()
        && current.as_ref().is_some_and(|c| {
            c.names == wanted && c.not_after_unix > (now + Duration::days(30)).unix_timestamp()
        });
    if !reuse {
        let key = KeyPair::generate().map_err(cert_err("generating the serving key"))?;
        let mut p = CertificateParams::new(wanted.clone())
            .map_err(cert_err("the serving certificate's names"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, wanted[0].clone());
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        p.not_before = now - Duration::hours(1);
        let not_after = now + Duration::days(365);
        p.not_after = not_after;
        let issuer = Issuer::new(ca_params(), &ca_key);
        let cert = p
            .signed_by(&key, &issuer)
            .map_err(cert_err("issuing the serving certificate"))?;
        write_private(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &format!("{}{}", cert.pem(), ca_pem))?;
        let info = LeafInfo {
            names: wanted,
            not_after_unix: not_after.unix_timestamp(),
        };
        let text = serde_json::to_string_pretty(&info).unwrap_or_default();
        write_public(&info_path, &text)?;
    }
    Ok(ServingCert {
        cert_path,
        key_path,
        ca_path,
        ca_pem,
        issued: !reuse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_once_and_reissues_for_new_names() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let a = ensure_serving_cert(dir.path(), &names).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.issued);
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let leaf = std::fs::read_to_string(&a.cert_path).unwrap_or_default();
        assert_eq!(leaf.matches("BEGIN CERTIFICATE").count(), 2);
        // Second call: same files.
        let b = ensure_serving_cert(dir.path(), &names).unwrap_or_else(|e| panic!("{e}"));
        assert!(!b.issued);
        assert_eq!(
            std::fs::read_to_string(&b.cert_path).unwrap_or_default(),
            leaf
        );
        // New names: new leaf, same CA (the caBundle does not change).
        let more = vec!["sigil.example".to_owned()];
        let c = ensure_serving_cert(dir.path(), &more).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.issued);
        assert_eq!(c.ca_pem, a.ca_pem);
        assert_ne!(
            std::fs::read_to_string(&c.cert_path).unwrap_or_default(),
            leaf
        );
        // The result is usable by rustls.
        sigil_registry::tls_config(&c.cert_path, &c.key_path).unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&c.key_path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        assert!(ensure_serving_cert(dir.path(), &[]).is_err());
    }

    #[test]
    fn cert_reloader_follows_the_files_and_keeps_the_old_on_errors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = ensure_serving_cert(&dir.path().join("a"), &["localhost".to_owned()])
            .unwrap_or_else(|e| panic!("{e}"));
        let b = ensure_serving_cert(&dir.path().join("b"), &["localhost".to_owned()])
            .unwrap_or_else(|e| panic!("{e}"));
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let copy = |from: &ServingCert| {
            std::fs::copy(&from.cert_path, &cert).unwrap_or_else(|e| panic!("{e}"));
            std::fs::copy(&from.key_path, &key).unwrap_or_else(|e| panic!("{e}"));
        };
        copy(&a);
        let r = CertReloader::load(&cert, &key).unwrap_or_else(|e| panic!("{e}"));
        let leaf = |r: &CertReloader| match r.current.read() {
            Ok(c) => c.cert[0].to_vec(),
            Err(_) => Vec::new(),
        };
        let first = leaf(&r);
        assert!(r.reload_if_changed().is_none());
        copy(&b);
        assert!(matches!(r.reload_if_changed(), Some(Ok(()))));
        let second = leaf(&r);
        assert_ne!(first, second);
        // A key that does not match: refused, the previous certificate stays.
        std::fs::copy(&a.key_path, &key).unwrap_or_else(|e| panic!("{e}"));
        let err = r.reload_if_changed();
        assert!(
            matches!(&err, Some(Err(e)) if e.contains("does not belong")),
            "{err:?}"
        );
        assert_eq!(leaf(&r), second);
        assert!(r.server_config().is_ok());
        // Bad files at start are an error naming the file.
        std::fs::write(&cert, "nothing").unwrap_or_else(|e| panic!("{e}"));
        let e = CertReloader::load(&cert, &key).map(|_| ()).err();
        assert!(
            e.is_some_and(|e| e.to_string().contains("tls.crt")),
            "bad certificate accepted"
        );
    }
}
