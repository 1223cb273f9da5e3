//! notation's OCI trust policy (`trustpolicy.json`, version 1.0): parsing with notation's validation
//! rules (unique names, registry scopes, levels and overrides, trust store references, trusted
//! identities as RFC 4514 `x509.subject` DNs), selection of the statement for an artifact reference,
//! and the action each verification check gets.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::error::{Check, NotaryError};
use crate::truststore::StoreType;

/// Verification level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Every check enforced.
    Strict,
    /// Integrity and authenticity enforced, the rest logged.
    Permissive,
    /// Integrity enforced, the rest logged.
    Audit,
    /// No verification.
    Skip,
}

impl Level {
    /// The policy name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Strict => "strict",
            Level::Permissive => "permissive",
            Level::Audit => "audit",
            Level::Skip => "skip",
        }
    }
}

/// What a failed check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Fail the signature.
    Enforce,
    /// Warn and continue.
    Log,
    /// Do not run the check.
    Skip,
}

/// When timestamps are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyTimestamp {
    /// Always (the default).
    Always,
    /// Only when a certificate of the signing chain has expired.
    AfterCertExpiry,
}

/// A trusted identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedIdentity {
    /// `*`: any identity.
    Any,
    /// `x509.subject: <DN>`: attributes the leaf's subject must contain.
    X509Subject(Vec<(String, String)>),
    /// Another prefix (tolerated, ignored by the native check).
    Other(String),
}

/// One trust policy statement.
#[derive(Debug, Clone)]
pub struct TrustPolicyStatement {
    /// Statement name.
    pub name: String,
    /// Registry scopes (`registry/repository`, or `*`).
    pub registry_scopes: Vec<String>,
    /// The level.
    pub level: Level,
    /// Action per check (level defaults plus overrides).
    pub actions: [(Check, Action); 5],
    /// When to verify timestamps.
    pub verify_timestamp: VerifyTimestamp,
    /// Trust stores `(type, name)`.
    pub trust_stores: Vec<(StoreType, String)>,
    /// Trusted identities.
    pub trusted_identities: Vec<TrustedIdentity>,
}

impl TrustPolicyStatement {
    /// The action for `check`.
    pub fn action(&self, check: Check) -> Action {
        self.actions
            .iter()
            .find(|(c, _)| *c == check)
            .map(|(_, a)| *a)
            .unwrap_or(Action::Enforce)
    }

    /// A strict, wildcard-identity statement over in-memory stores (what Kyverno synthesises).
    pub fn strict_any(name: &str, trust_stores: Vec<(StoreType, String)>) -> Self {
        Self {
            name: name.to_owned(),
            registry_scopes: vec!["*".into()],
            level: Level::Strict,
            actions: level_actions(Level::Strict),
            verify_timestamp: VerifyTimestamp::Always,
            trust_stores,
            trusted_identities: vec![TrustedIdentity::Any],
        }
    }
}

/// A validated trust policy document.
#[derive(Debug, Clone)]
pub struct TrustPolicyDocument {
    /// The statements.
    pub statements: Vec<TrustPolicyStatement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    version: Option<String>,
    #[serde(rename = "trustPolicies")]
    trust_policies: Option<Vec<RawStatement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    name: Option<String>,
    #[serde(rename = "registryScopes", default)]
    registry_scopes: Vec<String>,
    #[serde(rename = "signatureVerification")]
    signature_verification: Option<RawVerification>,
    #[serde(rename = "trustStores", default)]
    trust_stores: Vec<String>,
    #[serde(rename = "trustedIdentities", default)]
    trusted_identities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerification {
    level: Option<String>,
    #[serde(rename = "override", default)]
    overrides: std::collections::BTreeMap<String, String>,
    #[serde(rename = "verifyTimestamp", default)]
    verify_timestamp: Option<String>,
}

fn level_actions(level: Level) -> [(Check, Action); 5] {
    use Action::*;
    let [a, b, c, d, e] = match level {
        Level::Strict => [Enforce, Enforce, Enforce, Enforce, Enforce],
        Level::Permissive => [Enforce, Enforce, Log, Log, Log],
        Level::Audit => [Enforce, Log, Log, Log, Log],
        Level::Skip => [Skip, Skip, Skip, Skip, Skip],
    };
    [
        (Check::Integrity, a),
        (Check::Authenticity, b),
        (Check::AuthenticTimestamp, c),
        (Check::Expiry, d),
        (Check::Revocation, e),
    ]
}

fn perr(m: impl Into<String>) -> NotaryError {
    NotaryError::TrustPolicy(m.into())
}

/// Parses an RFC 4514 DN into `(type, value)` pairs, as notation requires of `x509.subject`
/// identities (no multi-valued RDNs, no `#` hex values, no duplicate types; `S` means `ST`).
pub fn parse_dn(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let n = chars.next().ok_or("trailing backslash")?;
                cur.push('\\');
                cur.push(n);
            }
            ',' | ';' => parts.push(std::mem::take(&mut cur)),
            '+' => return Err("multi-valued RDNs are not supported".into()),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let mut out: Vec<(String, String)> = Vec::new();
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("{:?} is not TYPE=value", p.trim()))?;
        let mut k = k.trim().to_ascii_uppercase();
        if k == "S" {
            k = "ST".into();
        }
        if k.is_empty() {
            return Err("empty attribute type".into());
        }
        let v = v.trim_start();
        if v.starts_with('#') {
            return Err(format!("{k}: hex-encoded (#) values are not supported"));
        }
        let mut val = String::new();
        let mut it = v.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                if let Some(n) = it.next() {
                    val.push(n);
                }
            } else {
                val.push(c);
            }
        }
        let val = if v.ends_with("\\ ") {
            val
        } else {
            val.trim_end().to_owned()
        };
        if out.iter().any(|(ok, _)| *ok == k) {
            return Err(format!("duplicate attribute type {k}"));
        }
        out.push((k, val));
    }
    Ok(out)
}

fn is_subset(a: &[(String, String)], b: &[(String, String)]) -> bool {
    a.iter().all(|x| b.contains(x))
}

/// Whether the leaf subject attributes contain every attribute of `dn`.
pub fn subject_matches(dn: &[(String, String)], leaf: &[(String, String)]) -> bool {
    dn.iter()
        .all(|(k, v)| leaf.iter().any(|(lk, lv)| lk == k && lv == v))
}

fn valid_repo_path(p: &str) -> bool {
    !p.is_empty()
        && p.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && c.bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        })
}

fn valid_scope(s: &str) -> bool {
    let Some((domain, repo)) = s.split_once('/') else {
        return false;
    };
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    domain_ok && valid_repo_path(repo)
}

impl TrustPolicyDocument {
    /// Parses and validates a trust policy JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, NotaryError> {
        let raw: RawDoc = serde_json::from_slice(bytes)
            .map_err(|e| perr(format!("not a valid trust policy document: {e}")))?;
        match raw.version.as_deref() {
            Some("1.0") => {}
            Some(v) => {
                return Err(perr(format!(
                    "`version` {v:?} is not supported (expected \"1.0\")"
                )));
            }
            None => return Err(perr("`version` is missing")),
        }
        let list = raw
            .trust_policies
            .filter(|l| !l.is_empty())
            .ok_or_else(|| perr("`trustPolicies` is missing or empty"))?;
        let mut names = BTreeSet::new();
        let mut scopes_seen = BTreeSet::new();
        let mut global = 0;
        let mut statements = Vec::new();
        for (i, s) in list.into_iter().enumerate() {
            let name = s
                .name
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| perr(format!("trustPolicies[{i}].name is missing or empty")))?;
            if !names.insert(name.clone()) {
                return Err(perr(format!(
                    "`name` {name:?} is used by more than one statement (names must be unique)"
                )));
            }
            let ctx = |m: String| perr(format!("statement {name:?}: {m}"));
            if s.registry_scopes.is_empty() {
                return Err(ctx("`registryScopes` is empty".into()));
            }
            for sc in &s.registry_scopes {
                if sc == "*" {
                    if s.registry_scopes.len() != 1 {
                        return Err(ctx(
                            "`registryScopes`: the wildcard \"*\" must be the only scope".into(),
                        ));
                    }
                    global += 1;
                    if global > 1 {
                        return Err(ctx(
                            "`registryScopes`: only one statement may use the wildcard \"*\""
                                .into(),
                        ));
                    }
                } else {
                    if !valid_scope(sc) {
                        return Err(ctx(format!(
                            "`registryScopes`: {sc:?} is not a valid scope (registry/repository, without tag, digest or wildcard)"
                        )));
                    }
                    if !scopes_seen.insert(sc.clone()) {
                        return Err(ctx(format!(
                            "`registryScopes`: {sc:?} appears in more than one statement"
                        )));
                    }
                }
            }
            let sv = s
                .signature_verification
                .ok_or_else(|| ctx("`signatureVerification` is missing".into()))?;
            let level = match sv.level.as_deref() {
                Some("strict") => Level::Strict,
                Some("permissive") => Level::Permissive,
                Some("audit") => Level::Audit,
                Some("skip") => Level::Skip,
                Some(l) => {
                    return Err(ctx(format!(
                        "`signatureVerification.level` {l:?} is invalid (strict, permissive, audit or skip)"
                    )));
                }
                None => return Err(ctx("`signatureVerification.level` is missing".into())),
            };
            let mut actions = level_actions(level);
            if level == Level::Skip && !sv.overrides.is_empty() {
                return Err(ctx("a \"skip\" level cannot have `override`".into()));
            }
            for (k, v) in &sv.overrides {
                let check = match k.as_str() {
                    "integrity" => {
                        return Err(ctx("`override`: integrity cannot be overridden".into()));
                    }
                    "authenticity" => Check::Authenticity,
                    "authenticTimestamp" => Check::AuthenticTimestamp,
                    "expiry" => Check::Expiry,
                    "revocation" => Check::Revocation,
                    other => return Err(ctx(format!("`override`: unknown check {other:?}"))),
                };
                let action = match v.as_str() {
                    "enforce" => Action::Enforce,
                    "log" => Action::Log,
                    "skip" if check == Check::Revocation => Action::Skip,
                    "skip" => {
                        return Err(ctx(format!(
                            "`override`: {k} cannot be skipped (only revocation can)"
                        )));
                    }
                    other => {
                        return Err(ctx(format!(
                            "`override.{k}`: invalid action {other:?} (enforce, log or skip)"
                        )));
                    }
                };
                for a in actions.iter_mut().filter(|(c, _)| *c == check) {
                    a.1 = action;
                }
            }
            let verify_timestamp = match sv.verify_timestamp.as_deref() {
                None | Some("") | Some("always") => VerifyTimestamp::Always,
                Some("afterCertExpiry") => VerifyTimestamp::AfterCertExpiry,
                Some(v) => {
                    return Err(ctx(format!(
                        "`verifyTimestamp` {v:?} is invalid (always or afterCertExpiry)"
                    )));
                }
            };
            if level == Level::Skip {
                if !s.trust_stores.is_empty() || !s.trusted_identities.is_empty() {
                    return Err(ctx(
                        "a \"skip\" statement must not have `trustStores` or `trustedIdentities`"
                            .into(),
                    ));
                }
            } else {
                if s.trust_stores.is_empty() {
                    return Err(ctx("`trustStores` is missing or empty".into()));
                }
                if s.trusted_identities.is_empty() {
                    return Err(ctx("`trustedIdentities` is missing or empty".into()));
                }
            }
            let mut trust_stores = Vec::new();
            for ts in &s.trust_stores {
                let (t, n) = ts.split_once(':').ok_or_else(|| {
                    ctx(format!(
                        "`trustStores`: {ts:?} is missing the separator (type:name)"
                    ))
                })?;
                let ty = StoreType::parse(t).ok_or_else(|| {
                    ctx(format!("`trustStores`: {ts:?} has an unknown type {t:?} (ca, signingAuthority or tsa)"))
                })?;
                crate::truststore::check_store_name(n)
                    .map_err(|e| ctx(format!("`trustStores`: {e}")))?;
                trust_stores.push((ty, n.to_owned()));
            }
            let mut trusted_identities = Vec::new();
            let has_star = s.trusted_identities.iter().any(|t| t.trim() == "*");
            if has_star && s.trusted_identities.len() > 1 {
                return Err(ctx(
                    "`trustedIdentities`: \"*\" must be the only identity".into()
                ));
            }
            for ti in &s.trusted_identities {
                let ti_t = ti.trim();
                if ti_t == "*" {
                    trusted_identities.push(TrustedIdentity::Any);
                    continue;
                }
                if ti_t.is_empty() {
                    return Err(ctx("`trustedIdentities`: empty identity".into()));
                }
                let Some((prefix, value)) = ti_t.split_once(':') else {
                    return Err(ctx(format!(
                        "`trustedIdentities`: {ti:?} has no prefix (x509.subject:)"
                    )));
                };
                if prefix == "x509.subject" {
                    let dn = parse_dn(value.trim_start())
                        .map_err(|e| ctx(format!("`trustedIdentities`: {ti:?}: {e}")))?;
                    for need in ["C", "ST", "O"] {
                        if !dn.iter().any(|(k, _)| k == need) {
                            return Err(ctx(format!(
                                "`trustedIdentities`: {ti:?} must contain C, ST and O (missing {need})"
                            )));
                        }
                    }
                    trusted_identities.push(TrustedIdentity::X509Subject(dn));
                } else {
                    trusted_identities.push(TrustedIdentity::Other(ti_t.to_owned()));
                }
            }
            let dns: Vec<_> = trusted_identities
                .iter()
                .filter_map(|t| match t {
                    TrustedIdentity::X509Subject(d) => Some(d),
                    _ => None,
                })
                .collect();
            for (a, x) in dns.iter().enumerate() {
                for (b, y) in dns.iter().enumerate() {
                    if a != b && is_subset(x, y) {
                        return Err(ctx(
                            "`trustedIdentities`: identities overlap (one is a subset of another)"
                                .into(),
                        ));
                    }
                }
            }
            statements.push(TrustPolicyStatement {
                name,
                registry_scopes: s.registry_scopes,
                level,
                actions,
                verify_timestamp,
                trust_stores,
                trusted_identities,
            });
        }
        Ok(Self { statements })
    }

    /// The statement for `artifact` (`registry/repo@sha256:...`): an exact scope match, else `*`.
    pub fn statement_for(&self, artifact: &str) -> Result<&TrustPolicyStatement, NotaryError> {
        let (repo, digest) = artifact.rsplit_once('@').ok_or_else(|| {
            perr(format!(
                "artifact reference {artifact:?} must contain a digest (@sha256:...)"
            ))
        })?;
        if digest.is_empty() {
            return Err(perr(format!(
                "artifact reference {artifact:?} has an empty digest"
            )));
        }
        self.statements
            .iter()
            .find(|s| s.registry_scopes.iter().any(|sc| sc == repo))
            .or_else(|| {
                self.statements
                    .iter()
                    .find(|s| s.registry_scopes.iter().any(|sc| sc == "*"))
            })
            .ok_or_else(|| perr(format!("no trust policy statement applies to {repo:?}")))
    }
}
