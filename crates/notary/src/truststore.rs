//! notation's trust store: `x509/{ca,signingAuthority,tsa}/<name>/<cert files>` under a directory,
//! with notation's rules (store names `[a-zA-Z0-9_.-]+`, no symlinks or subdirectories, no empty
//! stores, `ca`/`signingAuthority` certificates must be CAs or self-signed, `tsa` certificates must be
//! self-signed roots), or built in memory (the policy engine's synthetic stores).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::NotaryError;
use crate::x509::Cert;

/// Trust store type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum StoreType {
    /// `ca`: roots for `notary.x509` signatures.
    #[serde(rename = "ca")]
    Ca,
    /// `signingAuthority`: roots for `notary.x509.signingAuthority` signatures.
    #[serde(rename = "signingAuthority")]
    SigningAuthority,
    /// `tsa`: roots of timestamping authorities.
    #[serde(rename = "tsa")]
    Tsa,
}

impl StoreType {
    /// From its policy/directory name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ca" => Some(Self::Ca),
            "signingAuthority" => Some(Self::SigningAuthority),
            "tsa" => Some(Self::Tsa),
            _ => None,
        }
    }

    /// Its policy/directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ca => "ca",
            Self::SigningAuthority => "signingAuthority",
            Self::Tsa => "tsa",
        }
    }
}

/// Validates a named store's name.
pub fn check_store_name(n: &str) -> Result<(), String> {
    if n.is_empty()
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "store name {n:?} is invalid (allowed: letters, digits, _ . -)"
        ));
    }
    if n == "." || n == ".." {
        return Err(format!("store name {n:?} is invalid"));
    }
    Ok(())
}

/// A trust store: directory-backed, in memory, or both.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    dir: Option<PathBuf>,
    memory: BTreeMap<(StoreType, String), Vec<Cert>>,
}

fn serr(m: impl Into<String>) -> NotaryError {
    NotaryError::TrustStore(m.into())
}

impl TrustStore {
    /// A store reading `dir/x509/<type>/<name>/` on demand (the directory must exist).
    pub fn from_dir(dir: &Path) -> Result<Self, NotaryError> {
        if !dir.is_dir() {
            return Err(serr(format!("{}: not a directory", dir.display())));
        }
        Ok(Self {
            dir: Some(dir.to_path_buf()),
            memory: BTreeMap::new(),
        })
    }

    /// An empty in-memory store.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Adds certificates to the named in-memory store (validated as [`Self::certificates`] does).
    pub fn add(&mut self, ty: StoreType, name: &str, certs: Vec<Cert>) -> Result<(), NotaryError> {
        check_store_name(name).map_err(serr)?;
        for c in &certs {
            check_cert(ty, c, name)?;
        }
        self.memory
            .entry((ty, name.to_owned()))
            .or_default()
            .extend(certs);
        Ok(())
    }

    /// Adds trust anchors without the CA-or-self-signed rule (Kyverno's in-memory store: a leaf
    /// given as `cert` is pinned by byte equality).
    pub fn add_anchors(
        &mut self,
        ty: StoreType,
        name: &str,
        certs: Vec<Cert>,
    ) -> Result<(), NotaryError> {
        check_store_name(name).map_err(serr)?;
        self.memory
            .entry((ty, name.to_owned()))
            .or_default()
            .extend(certs);
        Ok(())
    }

    /// The certificates of store `ty:name`.
    pub fn certificates(&self, ty: StoreType, name: &str) -> Result<Vec<Cert>, NotaryError> {
        check_store_name(name).map_err(serr)?;
        if let Some(c) = self.memory.get(&(ty, name.to_owned())) {
            return Ok(c.clone());
        }
        let Some(dir) = &self.dir else {
            return Err(serr(format!("{}:{name}: no such trust store", ty.as_str())));
        };
        let store = dir.join("x509").join(ty.as_str()).join(name);
        let meta = std::fs::symlink_metadata(&store)
            .map_err(|e| serr(format!("{}:{name}: {}: {e}", ty.as_str(), store.display())))?;
        if meta.file_type().is_symlink() {
            return Err(serr(format!(
                "{}: trust store is a symlink (not allowed)",
                store.display()
            )));
        }
        if !meta.is_dir() {
            return Err(serr(format!("{}: not a directory", store.display())));
        }
        let mut entries: Vec<_> = std::fs::read_dir(&store)
            .map_err(|e| serr(format!("{}: {e}", store.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| serr(format!("{}: {e}", store.display())))?;
        entries.sort_by_key(|e| e.file_name());
        let mut out = Vec::new();
        for e in entries {
            let p = e.path();
            let ft = e
                .file_type()
                .map_err(|err| serr(format!("{}: {err}", p.display())))?;
            if ft.is_symlink() {
                return Err(serr(format!(
                    "{}: certificate file is a symlink (not allowed)",
                    p.display()
                )));
            }
            if ft.is_dir() {
                return Err(serr(format!(
                    "{}: subdirectories are not allowed in a trust store",
                    p.display()
                )));
            }
            let bytes = std::fs::read(&p).map_err(|err| serr(format!("{}: {err}", p.display())))?;
            let certs =
                Cert::parse_many(&bytes).map_err(|err| serr(format!("{}: {err}", p.display())))?;
            for c in &certs {
                check_cert(ty, c, &p.display().to_string())?;
            }
            out.extend(certs);
        }
        if out.is_empty() {
            return Err(serr(format!(
                "{}: trust store has no certificates",
                store.display()
            )));
        }
        Ok(out)
    }
}

fn check_cert(ty: StoreType, c: &Cert, where_: &str) -> Result<(), NotaryError> {
    match ty {
        StoreType::Tsa if !c.is_self_signed() => Err(serr(format!(
            "{where_}: {:?} is not a self-signed root (tsa stores hold root certificates)",
            c.subject()
        ))),
        StoreType::Ca | StoreType::SigningAuthority if !c.is_ca_or_self_signed() => {
            Err(serr(format!(
                "{where_}: {:?} is neither a CA nor self-signed",
                c.subject()
            )))
        }
        _ => Ok(()),
    }
}
