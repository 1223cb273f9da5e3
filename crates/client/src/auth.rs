//! Registry authentication: docker `config.json` credentials, `WWW-Authenticate` challenges, token scopes.
//!
//! Credentials come from a docker-style auth file (`auths` → `auth` = base64 `user:pass`, or
//! `username`/`password`, or an OAuth2 `identitytoken`), keyed by `host`, `https://host` or
//! `https://host/v1/`. The file is looked up as the explicit option, else `$REGISTRY_AUTH_FILE`, else
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; a missing file means anonymous access.
//!
//! Credential helpers are resolved as docker does: `credHelpers[registry]`, else `credsStore`, else the
//! `auths` entry. [`AuthStore::helper_for`] names the helper; running it is the job of
//! [`crate::helper`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::ClientError;

/// A user name and password (or token used as a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password or personal access token.
    pub password: String,
}

impl Credential {
    /// A credential from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The value of an `Authorization: Basic ...` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a registry's credentials are: a user name and password (Basic, or exchanged for a Bearer
/// token with a GET), or an OAuth2 identity (refresh) token exchanged with a POST.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryCredential {
    /// User name and password.
    Basic(Credential),
    /// An identity token (`identitytoken` in the auth file, or a helper answering user `<token>`).
    IdentityToken(String),
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic(c) => f.debug_tuple("Basic").field(c).finish(),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Credentials per registry, as read from an auth file, with the credential helpers it configures.
#[derive(Debug, Clone, Default)]
pub struct AuthStore {
    creds: HashMap<String, Credential>,
    identity_tokens: HashMap<String, String>,
    cred_helpers: HashMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl AuthStore {
    /// An empty store (anonymous access everywhere).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The auth file to use: `explicit`, else `$REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`,
    /// else `~/.docker/config.json`. `None` when no candidate can be named (no home directory).
    pub fn default_path(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_owned());
        }
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(p) = env("REGISTRY_AUTH_FILE") {
            return Some(PathBuf::from(p));
        }
        if let Some(d) = env("DOCKER_CONFIG") {
            return Some(PathBuf::from(d).join("config.json"));
        }
        env("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// Loads the auth file at `path`; a missing file gives an empty store.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes).map_err(|message| ClientError::AuthFile {
                path: path.to_owned(),
                message,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::empty()),
            Err(e) => Err(ClientError::AuthFile {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    /// Parses the JSON of a docker `config.json` / containers `auth.json`.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
        if !value.is_object() {
            return Err("not a JSON object".into());
        }
        let file: ConfigFile =
            serde_json::from_value(value).map_err(|e| format!("invalid auth file: {e}"))?;
        let mut creds = HashMap::new();
        let mut identity_tokens = HashMap::new();
        for (key, entry) in file.auths {
            if let Some(t) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
                identity_tokens.insert(normalize_registry_key(&key), t.to_owned());
            }
            let cred = if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| format!("auths[{key:?}].auth is not valid base64"))?;
                let raw = String::from_utf8(raw)
                    .map_err(|_| format!("auths[{key:?}].auth is not UTF-8"))?;
                let (u, p) = raw
                    .split_once(':')
                    .ok_or_else(|| format!("auths[{key:?}].auth is not user:password"))?;
                Credential::new(u, p)
            } else if let (Some(u), Some(p)) = (entry.username, entry.password) {
                Credential::new(u, p)
            } else {
                // identitytoken-only or empty entries (credential helpers) are skipped.
                continue;
            };
            creds.insert(normalize_registry_key(&key), cred);
        }
        let mut cred_helpers = HashMap::new();
        for (key, helper) in file.cred_helpers {
            if helper.is_empty() {
                continue;
            }
            check_helper_name(&helper).map_err(|e| format!("credHelpers[{key:?}]: {e}"))?;
            cred_helpers.insert(normalize_registry_key(&key), helper);
        }
        let creds_store = match file.creds_store {
            Some(h) if !h.is_empty() => {
                check_helper_name(&h).map_err(|e| format!("credsStore: {e}"))?;
                Some(h)
            }
            _ => None,
        };
        Ok(Self {
            creds,
            identity_tokens,
            cred_helpers,
            creds_store,
        })
    }

    /// The credential helper (the `<name>` of `docker-credential-<name>`) that holds `registry`'s
    /// credentials: `credHelpers[registry]`, else `credsStore`. As in docker, a helper replaces the
    /// `auths` entry for that registry.
    pub fn helper_for(&self, registry: &str) -> Option<&str> {
        self.cred_helpers
            .get(&normalize_registry_key(registry))
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }

    /// The credential stored in the file itself for `registry`: the identity token if the entry has
    /// one (docker prefers it), else user name and password. Helpers are not consulted.
    pub fn file_credential(&self, registry: &str) -> Option<RegistryCredential> {
        let key = normalize_registry_key(registry);
        if let Some(t) = self.identity_tokens.get(&key) {
            return Some(RegistryCredential::IdentityToken(t.clone()));
        }
        self.creds.get(&key).cloned().map(RegistryCredential::Basic)
    }

    /// Adds or replaces the credential for `registry`.
    pub fn insert(&mut self, registry: &str, cred: Credential) {
        self.creds.insert(normalize_registry_key(registry), cred);
    }

    /// The credential for `registry` (`host[:port]`), if any.
    pub fn get(&self, registry: &str) -> Option<&Credential> {
        self.creds.get(&normalize_registry_key(registry))
    }

    /// Whether the store holds no credential and names no helper.
    pub fn is_empty(&self) -> bool {
        self.creds.is_empty()
            && self.identity_tokens.is_empty()
            && self.cred_helpers.is_empty()
            && self.creds_store.is_none()
    }
}

/// A helper name becomes part of a program name looked up on `PATH`: no path separators, no spaces.
fn check_helper_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(format!("invalid credential helper name {name:?}"));
    }
    Ok(())
}

/// The server URL docker passes to a credential helper for `registry`: the host name, except for
/// Docker Hub, which is `https://index.docker.io/v1/`.
pub fn helper_server_url(registry: &str) -> String {
    let key = normalize_registry_key(registry);
    if key == "docker.io" {
        "https://index.docker.io/v1/".to_owned()
    } else {
        key
    }
}

/// Normalises an `auths` key or registry name: drops the scheme and any path, lower-cases, and maps
/// Docker Hub's aliases to `docker.io`.
pub fn normalize_registry_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or("").to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter, if any.
        service: Option<String>,
        /// `scope` parameter, if any (may hold several space-separated scopes).
        scope: Option<String>,
        /// `error` parameter (`invalid_token`, `insufficient_scope`), if any.
        error: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value. Returns the first Bearer challenge if several schemes are
/// offered, else Basic; `None` for unknown schemes or a Bearer challenge without realm.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let mut basic = false;
    let mut bearer = None;
    for (scheme, params) in split_challenges(value) {
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => basic = true,
            "bearer" if bearer.is_none() => {
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                if let Some(realm) = get("realm").filter(|r| !r.is_empty()) {
                    bearer = Some(Challenge::Bearer {
                        realm,
                        service: get("service"),
                        scope: get("scope"),
                        error: get("error"),
                    });
                }
            }
            _ => {}
        }
    }
    bearer.or(if basic { Some(Challenge::Basic) } else { None })
}

/// Splits a header into (scheme, params) pairs; handles quoted strings with commas and escapes.
fn split_challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
            *i += 1;
        }
    };
    while i < chars.len() {
        skip_ws(&mut i);
        // token
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ',' && chars[i] != '=' {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        if token.is_empty() {
            i += 1;
            continue;
        }
        // Is it a parameter (token '=' value) of the current challenge or a new scheme?
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if j < chars.len() && chars[j] == '=' && !out.is_empty() {
            i = j + 1;
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            let mut val = String::new();
            if i < chars.len() && chars[i] == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    val.push(chars[i]);
                    i += 1;
                }
                i += 1; // closing quote
            } else {
                while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                    val.push(chars[i]);
                    i += 1;
                }
            }
            if let Some(last) = out.last_mut() {
                last.1.push((token, val));
            }
        } else {
            out.push((token, Vec::new()));
        }
    }
    out
}

/// A token scope `repository:<name>:<actions>` (or any other resource type).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// Resource type (`repository`, `registry`).
    pub resource_type: String,
    /// Resource name (the repository).
    pub name: String,
    /// Actions (`pull`, `push`, `delete`, `*`).
    pub actions: BTreeSet<String>,
}

impl Scope {
    /// `repository:<repo>:pull`.
    pub fn pull(repo: &str) -> Self {
        Self::repository(repo, &["pull"])
    }

    /// `repository:<repo>:pull,push`.
    pub fn push(repo: &str) -> Self {
        Self::repository(repo, &["pull", "push"])
    }

    /// `repository:<repo>:delete` (with pull and push, which token servers grant as allowed).
    pub fn delete(repo: &str) -> Self {
        Self::repository(repo, &["pull", "push", "delete"])
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Self {
        Self {
            resource_type: "registry".into(),
            name: "catalog".into(),
            actions: BTreeSet::from(["*".to_owned()]),
        }
    }

    /// `repository:<repo>:<actions>`.
    pub fn repository(repo: &str, actions: &[&str]) -> Self {
        Self {
            resource_type: "repository".into(),
            name: repo.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Parses `type:name:actions` (the name may contain `:` only for non-repository types, as in
    /// `repository:host:5000/x:pull` it would not be valid anyway).
    pub fn parse(s: &str) -> Option<Self> {
        let (rest, actions) = s.rsplit_once(':')?;
        let (resource_type, name) = rest.split_once(':')?;
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Whether a token for `self` also grants `other`.
    pub fn covers(&self, other: &Self) -> bool {
        self.resource_type == other.resource_type
            && self.name == other.name
            && (self.actions.contains("*") || other.actions.is_subset(&self.actions))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(String::as_str).collect();
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            actions.join(",")
        )
    }
}

/// The JSON answer of a token endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// A new refresh token from the OAuth2 flow (replaces the identity token for later requests).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    /// The token (`token`, else `access_token`).
    pub fn into_token(self) -> Option<(String, Option<u64>)> {
        let t = self
            .token
            .filter(|t| !t.is_empty())
            .or_else(|| self.access_token.filter(|t| !t.is_empty()))?;
        Some((t, self.expires_in))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
                error: None,
            }
        );
        // Commas inside quotes, odd spacing, error param, unquoted values.
        let c = parse_challenge(
            r#"bearer  realm = "http://127.0.0.1:1/t" , scope="repository:a:pull,push repository:b:pull", error=insufficient_scope"#,
        )
        .unwrap();
        let Challenge::Bearer {
            realm,
            scope,
            error,
            service,
        } = c
        else {
            panic!("not bearer")
        };
        assert_eq!(realm, "http://127.0.0.1:1/t");
        assert_eq!(
            scope.as_deref(),
            Some("repository:a:pull,push repository:b:pull")
        );
        assert_eq!(error.as_deref(), Some("insufficient_scope"));
        assert_eq!(service, None);
    }

    #[test]
    fn parses_basic_and_multiple_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="sigil-oracles""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Basic"), Some(Challenge::Basic));
        let c = parse_challenge(r#"Basic realm="x", Bearer realm="https://t/token",service="s""#);
        assert!(matches!(c, Some(Challenge::Bearer { .. })));
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer service="s""#), None);
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn parses_docker_config() {
        let json = br#"{
          "auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
            "127.0.0.1:5002": {"username": "oracle", "password": "oracle-pass"},
            "https://ghcr.io": {"auth": "Z2g6dG9rZW4="},
            "quay.io": {"identitytoken": "xyz"},
            "helper.example": {}
          },
          "credsStore": "desktop"
        }"#;
        let s = AuthStore::parse(json).unwrap();
        let hub = s.get("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pa:ss")
        );
        assert_eq!(s.get("registry-1.docker.io"), Some(hub));
        assert_eq!(s.get("127.0.0.1:5002").unwrap().password, "oracle-pass");
        assert_eq!(s.get("GHCR.io").unwrap().username, "gh");
        assert!(s.get("quay.io").is_none());
        assert!(s.get("helper.example").is_none());
        assert!(s.get("127.0.0.1:5001").is_none());
        assert!(!format!("{hub:?}").contains("pa:ss"));
        assert_eq!(hub.basic_header(), "Basic dXNlcjpwYTpzcw==");
    }

    #[test]
    fn rejects_bad_config_and_tolerates_missing_file() {
        assert!(AuthStore::parse(b"{").is_err());
        assert!(AuthStore::parse(br#"{"auths":{"x":{"auth":"!!"}}}"#).is_err());
        assert!(AuthStore::parse(br#"{"auths":{"x":{"auth":"bm9jb2xvbg=="}}}"#).is_err());
        assert!(AuthStore::parse(b"{}").unwrap().is_empty());
        let dir = tempfile::tempdir().unwrap();
        assert!(
            AuthStore::load(&dir.path().join("nope.json"))
                .unwrap()
                .is_empty()
        );
        let p = dir.path().join("bad.json");
        std::fs::write(&p, "[1]").unwrap();
        let e = AuthStore::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
    }

    #[test]
    fn credential_helpers_follow_docker_precedence() {
        let json = br#"{
          "auths": {
            "ghcr.io": {"auth": "Z2g6dG9rZW4="},
            "quay.io": {"identitytoken": "rt"},
            "https://index.docker.io/v1/": {}
          },
          "credsStore": "desktop",
          "credHelpers": {
            "123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login",
            "https://index.docker.io/v1/": "hub",
            "gcr.io": ""
          }
        }"#;
        let s = AuthStore::parse(json).unwrap();
        assert_eq!(
            s.helper_for("123.dkr.ecr.us-east-1.amazonaws.com"),
            Some("ecr-login")
        );
        assert_eq!(s.helper_for("docker.io"), Some("hub"));
        // credsStore covers every other registry, even those with an auths entry (as docker).
        assert_eq!(s.helper_for("ghcr.io"), Some("desktop"));
        assert_eq!(s.helper_for("gcr.io"), Some("desktop"));
        assert_eq!(
            s.file_credential("quay.io"),
            Some(RegistryCredential::IdentityToken("rt".into()))
        );
        assert_eq!(
            format!("{:?}", s.file_credential("quay.io").unwrap()),
            "IdentityToken(<redacted>)"
        );
        let s = AuthStore::parse(br#"{"credHelpers":{"a.example":"pass"}}"#).unwrap();
        assert_eq!(s.helper_for("A.example"), Some("pass"));
        assert_eq!(s.helper_for("b.example"), None);
        assert!(!s.is_empty());
        for bad in [
            r#"{"credsStore":"../evil"}"#,
            r#"{"credHelpers":{"x":"a b"}}"#,
            r#"{"credsStore":42}"#,
        ] {
            assert!(AuthStore::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            helper_server_url("docker.io"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(helper_server_url("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn scopes() {
        let pp = Scope::push("demo/app");
        assert_eq!(pp.to_string(), "repository:demo/app:pull,push");
        assert!(pp.covers(&Scope::pull("demo/app")));
        assert!(!Scope::pull("demo/app").covers(&pp));
        assert!(!pp.covers(&Scope::pull("demo/other")));
        let s = Scope::parse("repository:a/b:pull,push").unwrap();
        assert_eq!(s, pp_with("a/b"));
        assert!(Scope::parse("nope").is_none());
        assert!(
            Scope::parse("registry:catalog:*")
                .unwrap()
                .covers(&Scope::catalog())
        );
        fn pp_with(r: &str) -> Scope {
            Scope::push(r)
        }
    }
}
