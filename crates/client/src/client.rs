//! The HTTP core of [`RegistryClient`]: scheme selection, the auth dance, request counting, error bodies.
//!
//! Every request goes through [`RegistryClient::send`]. It builds the URL (plain HTTP for loopback
//! registries, HTTPS otherwise, with a one-time fallback to the other scheme where allowed), adds the
//! credentials the registry is known to want (Basic, or a cached Bearer token covering the request's
//! scopes), and on a 401 learns the registry's challenge, fetches a token if needed and retries once.
//! What was learnt is cached per registry, so later requests carry credentials pre-emptively and cost one
//! round trip.
//!
//! Credentials for a registry are resolved lazily, on its first 401: [`ClientOptions::credentials`],
//! else the credential helper the auth file names (`credHelpers`, then `credsStore`, run once per registry
//! per client and cached), else the auth file's `auths` entry. An identity token is exchanged for a Bearer
//! token with the OAuth2 refresh-token POST (falling back to a GET only when the realm answers 404/405). Every HTTP request, token requests included, increments [`RegistryClient::request_count`].

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::auth::{
    AuthStore, Challenge, Credential, RegistryCredential, Scope, TokenResponse, helper_server_url,
    normalize_registry_key, parse_challenge,
};
use crate::error::ClientError;
use crate::helper::{HelperError, TOKEN_USERNAME};

/// Default user agent.
pub const USER_AGENT: &str = concat!("sigil/", env!("CARGO_PKG_VERSION"));

/// How a [`RegistryClient`] is set up.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Allow plain HTTP (as a fallback) and unverified TLS for registries other than loopback ones.
    pub insecure: bool,
    /// The docker-style auth file; `None` looks at `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`,
    /// `~/.docker/config.json` (unless `load_auth_file` is false).
    pub auth_file: Option<PathBuf>,
    /// Whether to read an auth file at all (false: only `credentials`).
    pub load_auth_file: bool,
    /// Credentials per registry that take precedence over the auth file.
    pub credentials: Vec<(String, Credential)>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Extra PEM CA certificates to trust (added to the system roots).
    pub ca_certs: Vec<PathBuf>,
    /// Largest manifest accepted from a registry or layout.
    pub max_manifest_bytes: u64,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How long a docker credential helper may take to answer (default 30 s, or
    /// `$SIGIL_CREDENTIAL_HELPER_TIMEOUT` seconds).
    pub credential_helper_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            insecure: false,
            auth_file: None,
            load_auth_file: true,
            credentials: Vec::new(),
            user_agent: USER_AGENT.to_owned(),
            ca_certs: Vec::new(),
            max_manifest_bytes: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(30),
            credential_helper_timeout: std::env::var("SIGIL_CREDENTIAL_HELPER_TIMEOUT")
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
                .map_or(Duration::from_secs(30), Duration::from_secs_f64),
        }
    }
}

/// The cached outcome of resolving one registry's credentials (helper answers included).
type Resolved = Arc<tokio::sync::OnceCell<Result<Option<RegistryCredential>, HelperError>>>;

/// What the client learnt about a registry.
#[derive(Debug, Clone, Default)]
struct HostState {
    /// The scheme that answered (`http`/`https`); `None` until a response arrived.
    scheme: Option<&'static str>,
    auth: AuthMode,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum AuthMode {
    /// No 401 seen yet: send requests anonymously.
    #[default]
    Unknown,
    /// The registry asked for Basic credentials.
    Basic,
    /// The registry asked for a Bearer token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct CachedToken {
    registry: String,
    scopes: Vec<Scope>,
    token: String,
    expires: Instant,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    pub(crate) opts: ClientOptions,
    /// The auth file's contents.
    creds: AuthStore,
    /// `ClientOptions::credentials`, by normalised registry key.
    explicit: HashMap<String, Credential>,
    /// Resolved credentials per registry (a helper runs once per registry).
    resolved: Mutex<HashMap<String, Resolved>>,
    /// Refresh tokens handed out by OAuth2 token endpoints, replacing the identity token.
    refresh_tokens: Mutex<HashMap<String, String>>,
    requests: AtomicU64,
    hosts: Mutex<HashMap<String, HostState>>,
    tokens: Mutex<Vec<CachedToken>>,
    warnings: Mutex<HashSet<String>>,
}

/// An OCI distribution-spec client. Cheap to clone: clones share connections, learnt auth, tokens and
/// the request counter.
#[derive(Clone)]
pub struct RegistryClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("insecure", &self.inner.opts.insecure)
            .field("requests", &self.request_count())
            .finish_non_exhaustive()
    }
}

/// The body of a request: repeatable (empty, bytes) or a one-shot stream.
pub(crate) enum ReqBody {
    Empty,
    Bytes(Bytes),
    Stream(Option<reqwest::Body>),
}

impl ReqBody {
    fn repeatable(&self) -> bool {
        !matches!(self, Self::Stream(_))
    }

    fn take(&mut self) -> Result<Option<reqwest::Body>, ()> {
        match self {
            Self::Empty => Ok(None),
            Self::Bytes(b) => Ok(Some(reqwest::Body::from(b.clone()))),
            Self::Stream(s) => s.take().map(Some).ok_or(()),
        }
    }
}

/// Where a request goes: a path on the registry's API host, or an absolute URL the registry gave us.
pub(crate) enum Target {
    Path(String),
    Url(Url),
}

/// One registry request, re-creatable for the auth retry unless its body is a stream.
pub(crate) struct Req {
    pub method: Method,
    pub target: Target,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub scopes: Vec<Scope>,
    pub body: ReqBody,
}

impl Req {
    pub fn new(method: Method, path: impl Into<String>, scopes: Vec<Scope>) -> Self {
        Self {
            method,
            target: Target::Path(path.into()),
            query: Vec::new(),
            headers: HeaderMap::new(),
            scopes,
            body: ReqBody::Empty,
        }
    }

    pub fn url(method: Method, url: Url, scopes: Vec<Scope>) -> Self {
        Self {
            target: Target::Url(url),
            ..Self::new(method, String::new(), scopes)
        }
    }

    pub fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_owned(), v.into()));
        self
    }

    pub fn header(mut self, name: http::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn body(mut self, body: ReqBody) -> Self {
        self.body = body;
        self
    }
}

/// The spec's error body.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Whether `registry` (`host[:port]`) is a loopback host that gets plain HTTP by default.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host part of `host[:port]` / `[v6]:port`, without brackets.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// The host that serves the API for `registry`: `docker.io` is served by `registry-1.docker.io`.
pub fn api_host(registry: &str) -> &str {
    if registry == sigil_oci::reference::DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

impl RegistryClient {
    /// Builds a client: loads the auth file and sets up TLS. A missing auth file means anonymous access;
    /// a malformed one is an error.
    pub fn new(opts: ClientOptions) -> Result<Self, ClientError> {
        let creds = if opts.load_auth_file {
            match AuthStore::default_path(opts.auth_file.as_deref()) {
                Some(p) => AuthStore::load(&p)?,
                None => AuthStore::empty(),
            }
        } else {
            AuthStore::empty()
        };
        let explicit = opts
            .credentials
            .iter()
            .map(|(reg, c)| (normalize_registry_key(reg), c.clone()))
            .collect();
        let mut builder = reqwest::Client::builder()
            .user_agent(opts.user_agent.clone())
            .connect_timeout(opts.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30));
        if opts.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let mut certs = Vec::new();
        for p in &opts.ca_certs {
            let pem = std::fs::read(p).map_err(|source| ClientError::Io {
                path: p.clone(),
                source,
            })?;
            let mut c = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?;
            certs.append(&mut c);
        }
        if !certs.is_empty() {
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                opts,
                creds,
                explicit,
                resolved: Mutex::new(HashMap::new()),
                refresh_tokens: Mutex::new(HashMap::new()),
                requests: AtomicU64::new(0),
                hosts: Mutex::new(HashMap::new()),
                tokens: Mutex::new(Vec::new()),
                warnings: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// How many HTTP requests this client (and its clones) made so far, token requests included.
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// Whether credentials for `registry` are configured (explicitly, in the auth file, or through a
    /// credential helper, which is not run here).
    pub fn has_credentials(&self, registry: &str) -> bool {
        self.inner
            .explicit
            .contains_key(&normalize_registry_key(registry))
            || self.inner.creds.helper_for(registry).is_some()
            || self.inner.creds.file_credential(registry).is_some()
    }

    /// The credentials to use for `registry`: [`ClientOptions::credentials`], else the credential helper
    /// (`credHelpers[registry]`, else `credsStore`), else the auth file's `auths` entry. A helper runs
    /// at most once per registry for this client and its clones; its answer (or failure) is cached.
    pub async fn credential(
        &self,
        registry: &str,
    ) -> Result<Option<RegistryCredential>, ClientError> {
        let key = normalize_registry_key(registry);
        if let Some(c) = self.inner.explicit.get(&key) {
            return Ok(Some(RegistryCredential::Basic(c.clone())));
        }
        let Some(helper) = self.inner.creds.helper_for(registry).map(str::to_owned) else {
            return Ok(self.inner.creds.file_credential(registry));
        };
        let cell = self
            .inner
            .resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        let timeout = self.inner.opts.credential_helper_timeout;
        let outcome = cell
            .get_or_init(|| async move {
                let url = helper_server_url(registry);
                tracing::debug!(helper, server_url = url, "running credential helper");
                crate::helper::get_credentials(&helper, &url, timeout).await
            })
            .await;
        outcome.clone().map_err(ClientError::from)
    }

    fn hosts(&self) -> MutexGuard<'_, HashMap<String, HostState>> {
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn host_state(&self, registry: &str) -> HostState {
        self.hosts().get(registry).cloned().unwrap_or_default()
    }

    /// The base URL (`scheme://host`) used for `registry` right now.
    pub fn base_url(&self, registry: &str) -> Result<Url, ClientError> {
        let scheme = self
            .host_state(registry)
            .scheme
            .unwrap_or_else(|| default_scheme(registry));
        parse_url(registry, &format!("{scheme}://{}/", api_host(registry)))
    }

    fn build_url(&self, registry: &str, req: &Req, scheme: &str) -> Result<Url, ClientError> {
        let mut url = match &req.target {
            Target::Url(u) => u.clone(),
            Target::Path(p) => {
                parse_url(registry, &format!("{scheme}://{}{p}", api_host(registry)))?
            }
        };
        if !req.query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &req.query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends a request with the auth dance; returns whatever status the registry answered, except that
    /// a final 401 becomes [`ClientError::Unauthorized`].
    pub(crate) async fn send(&self, registry: &str, mut req: Req) -> Result<Response, ClientError> {
        let mut refresh = false;
        for attempt in 0..2 {
            let auth = self.auth_header(registry, &req.scopes, refresh).await?;
            let resp = self.dispatch(registry, &mut req, auth.as_deref()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(parse_challenge);
            let learnt = match &challenge {
                Some(Challenge::Basic) => AuthMode::Basic,
                Some(Challenge::Bearer { realm, service, .. }) => AuthMode::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
                None => AuthMode::Unknown,
            };
            let retry_possible = attempt == 0
                && req.body.repeatable()
                && match &learnt {
                    AuthMode::Unknown => false,
                    AuthMode::Basic => {
                        auth.is_none()
                            && matches!(
                                self.credential(registry).await?,
                                Some(RegistryCredential::Basic(_))
                            )
                    }
                    AuthMode::Bearer { .. } => true,
                };
            if let Some(Challenge::Bearer { scope: Some(s), .. }) = &challenge {
                for extra in s.split_whitespace().filter_map(Scope::parse) {
                    if !req.scopes.iter().any(|have| have.covers(&extra)) {
                        req.scopes.push(extra);
                    }
                }
            }
            if learnt != AuthMode::Unknown {
                let mut hosts = self.hosts();
                let st = hosts.entry(registry.to_owned()).or_default();
                if st.auth != learnt {
                    tracing::debug!(registry, auth = ?learnt, "registry wants authentication");
                    st.auth = learnt;
                }
            }
            if !retry_possible {
                return Err(self.unauthorized(registry, resp).await);
            }
            refresh = auth.is_some();
        }
        Err(ClientError::Protocol {
            registry: registry.to_owned(),
            message: "authentication loop".into(),
        })
    }

    async fn unauthorized(&self, registry: &str, resp: Response) -> ClientError {
        let status = resp.status().as_u16();
        let (code, message) = read_error_body(resp).await;
        ClientError::Unauthorized {
            registry: registry.to_owned(),
            status,
            code,
            message,
        }
    }

    /// One HTTP exchange (plus a scheme fallback on a transport error before the registry's scheme is
    /// known). Counts every request.
    async fn dispatch(
        &self,
        registry: &str,
        req: &mut Req,
        auth: Option<&str>,
    ) -> Result<Response, ClientError> {
        let known = self.host_state(registry).scheme;
        let first = known.unwrap_or_else(|| default_scheme(registry));
        let fallback = match (&req.target, known) {
            (Target::Path(_), None) if req.body.repeatable() => {
                if first == "http" {
                    Some("https")
                } else if self.inner.opts.insecure {
                    Some("http")
                } else {
                    None
                }
            }
            _ => None,
        };
        let mut scheme = first;
        let mut tried_other = false;
        loop {
            let url = self.build_url(registry, req, scheme)?;
            let body = req.body.take().map_err(|()| ClientError::Protocol {
                registry: registry.to_owned(),
                message: "a streamed request body cannot be sent twice".into(),
            })?;
            let mut rb = self
                .inner
                .http
                .request(req.method.clone(), url.clone())
                .headers(req.headers.clone());
            // Credentials only go to the registry's own origin (an upload Location or Link may point
            // elsewhere).
            let same_origin = match &req.target {
                Target::Path(_) => true,
                Target::Url(u) => {
                    let origin = self.base_url(registry)?;
                    u.host_str() == origin.host_str()
                        && u.port_or_known_default() == origin.port_or_known_default()
                }
            };
            if let Some(a) = auth.filter(|_| same_origin) {
                rb = rb.header(AUTHORIZATION, a);
            }
            if let Some(b) = body {
                rb = rb.body(b);
            } else if matches!(req.method, Method::POST | Method::PUT | Method::PATCH) {
                rb = rb.header(CONTENT_LENGTH, "0");
            }
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(method = %req.method, %url, "request");
            match rb.send().await {
                Ok(resp) => {
                    tracing::debug!(status = resp.status().as_u16(), %url, "response");
                    if matches!(req.target, Target::Path(_)) && known != Some(scheme) {
                        let sch = if scheme == "http" { "http" } else { "https" };
                        self.hosts().entry(registry.to_owned()).or_default().scheme = Some(sch);
                    }
                    self.log_warnings(resp.headers());
                    return Ok(resp);
                }
                Err(e) => match fallback {
                    // A refused or timed-out connection fails for the other scheme too.
                    Some(alt) if scheme != alt && !e.is_timeout() && !is_refused(&e) => {
                        tracing::debug!(registry, error = %e, "retrying with {alt}");
                        tried_other = true;
                        scheme = alt;
                    }
                    _ => {
                        // After a fallback, the second error is the telling one (e.g. a TLS
                        // certificate problem rather than "invalid HTTP version").
                        if tried_other {
                            tracing::debug!(registry, "both http and https failed");
                        }
                        return Err(ClientError::Transport {
                            registry: registry.to_owned(),
                            source: e,
                        });
                    }
                },
            }
        }
    }

    fn log_warnings(&self, headers: &HeaderMap) {
        for v in headers.get_all("warning") {
            let Ok(s) = v.to_str() else { continue };
            // `299 - "text"`
            let text = s
                .split_once('"')
                .map(|(_, rest)| rest.trim_end().trim_end_matches('"'))
                .unwrap_or(s);
            let mut seen = self
                .inner
                .warnings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.insert(text.to_owned()) {
                tracing::warn!("registry warning: {text}");
            }
        }
    }

    /// The `Authorization` value to send, if the registry is known to want one.
    async fn auth_header(
        &self,
        registry: &str,
        scopes: &[Scope],
        refresh: bool,
    ) -> Result<Option<String>, ClientError> {
        match self.host_state(registry).auth {
            AuthMode::Unknown => Ok(None),
            AuthMode::Basic => match self.credential(registry).await? {
                Some(RegistryCredential::Basic(c)) => Ok(Some(c.basic_header())),
                Some(RegistryCredential::IdentityToken(_)) => Err(ClientError::Config(format!(
                    "registry {registry} asks for Basic authentication but the configured \
                         credential is an identity token (usable with Bearer token servers only)"
                ))),
                None => Ok(None),
            },
            AuthMode::Bearer { realm, service } => {
                if !refresh && let Some(t) = self.cached_token(registry, scopes) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let t = self
                    .fetch_token(registry, &realm, service.as_deref(), scopes)
                    .await?;
                Ok(Some(format!("Bearer {t}")))
            }
        }
    }

    fn cached_token(&self, registry: &str, scopes: &[Scope]) -> Option<String> {
        let now = Instant::now();
        let mut tokens = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.retain(|t| t.expires > now);
        tokens
            .iter()
            .rev()
            .find(|t| {
                t.registry == registry
                    && scopes
                        .iter()
                        .all(|want| t.scopes.iter().any(|have| have.covers(want)))
            })
            .map(|t| t.token.clone())
    }

    /// Gets a Bearer token from `realm`. With an identity token (auth file `identitytoken`, or a
    /// helper's `<token>` user) this is the OAuth2 refresh-token POST (`grant_type=refresh_token`), with
    /// a fallback to the GET below only when the realm answers 404 or 405 (it does not implement
    /// OAuth2). Otherwise: GET `realm?service=..&scope=..`, with Basic credentials when we have some.
    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<String, ClientError> {
        let realm_url = Url::parse(realm).map_err(|e| ClientError::Protocol {
            registry: registry.to_owned(),
            message: format!("invalid token realm {realm:?}: {e}"),
        })?;
        let mut url = realm_url.clone();
        if service.is_some() || !scopes.is_empty() {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", &s.to_string());
            }
        }
        // Never send a secret in clear text to another host.
        let same_host = url
            .host_str()
            .is_some_and(|h| h == host_of(api_host(registry)));
        let may_send_secret = url.scheme() == "https" || same_host || self.inner.opts.insecure;
        let cred = match self.credential(registry).await? {
            Some(_) if !may_send_secret => {
                tracing::warn!(%url, "not sending credentials to a plain-HTTP token realm on another host");
                None
            }
            other => other,
        };
        let realm_host = url.host_str().unwrap_or(registry).to_owned();
        let basic = match &cred {
            Some(RegistryCredential::IdentityToken(identity)) => {
                let refresh = self
                    .inner
                    .refresh_tokens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&normalize_registry_key(registry))
                    .cloned()
                    .unwrap_or_else(|| identity.clone());
                let form = {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    form.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", &refresh)
                        .append_pair("client_id", "sigil");
                    if let Some(s) = service {
                        form.append_pair("service", s);
                    }
                    if !scopes.is_empty() {
                        let joined: Vec<String> = scopes.iter().map(Scope::to_string).collect();
                        form.append_pair("scope", &joined.join(" "));
                    }
                    form.finish()
                };
                let rb = self
                    .inner
                    .http
                    .post(realm_url.clone())
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form);
                self.inner.requests.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(url = %realm_url, "OAuth2 refresh-token request");
                let resp = rb.send().await.map_err(|source| ClientError::Transport {
                    registry: realm_host.clone(),
                    source,
                })?;
                if !matches!(
                    resp.status(),
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ) {
                    return self.token_from(registry, &realm_host, scopes, resp).await;
                }
                tracing::debug!(
                    status = resp.status().as_u16(),
                    "token realm does not implement OAuth2; using GET"
                );
                Some(Credential::new(TOKEN_USERNAME, refresh))
            }
            Some(RegistryCredential::Basic(c)) => Some(c.clone()),
            None => None,
        };
        let mut rb = self.inner.http.get(url.clone());
        if let Some(c) = basic {
            rb = rb.header(AUTHORIZATION, c.basic_header());
        }
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%url, "token request");
        let resp = rb.send().await.map_err(|source| ClientError::Transport {
            registry: realm_host.clone(),
            source,
        })?;
        self.token_from(registry, &realm_host, scopes, resp).await
    }

    /// Reads a token endpoint's answer: caches the token for `scopes` and keeps a rotated refresh token.
    async fn token_from(
        &self,
        registry: &str,
        realm_host: &str,
        scopes: &[Scope],
        resp: Response,
    ) -> Result<String, ClientError> {
        let status = resp.status();
        if !status.is_success() {
            let (code, message) = read_error_body(resp).await;
            return Err(
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    ClientError::Unauthorized {
                        registry: registry.to_owned(),
                        status: status.as_u16(),
                        code,
                        message: format!("token request to {realm_host} failed: {message}"),
                    }
                } else {
                    ClientError::Registry {
                        registry: registry.to_owned(),
                        status: status.as_u16(),
                        code,
                        message: format!("token request to {realm_host} failed: {message}"),
                    }
                },
            );
        }
        let body = read_limited(resp, 1 << 20, "token response", registry).await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
                registry: registry.to_owned(),
                message: format!("invalid token response: {e}"),
            })?;
        if let Some(rt) = parsed.refresh_token.as_deref().filter(|t| !t.is_empty()) {
            self.inner
                .refresh_tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(normalize_registry_key(registry), rt.to_owned());
        }
        let (token, expires_in) = parsed.into_token().ok_or_else(|| ClientError::Protocol {
            registry: registry.to_owned(),
            message: "token response has neither token nor access_token".into(),
        })?;
        // Tokens live at least 60 s (docker token spec); keep a safety margin.
        let life = expires_in.unwrap_or(60).max(60).saturating_sub(10);
        let mut tokens = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.push(CachedToken {
            registry: registry.to_owned(),
            scopes: scopes.to_vec(),
            token: token.clone(),
            expires: Instant::now() + Duration::from_secs(life),
        });
        Ok(token)
    }

    /// Turns a non-success response into the matching error.
    pub(crate) async fn error_from(&self, registry: &str, resp: Response) -> ClientError {
        let status = resp.status().as_u16();
        let (code, message) = read_error_body(resp).await;
        let registry = registry.to_owned();
        match status {
            404 => ClientError::NotFound {
                registry,
                code,
                message,
            },
            401 | 403 => ClientError::Unauthorized {
                registry,
                status,
                code,
                message,
            },
            _ => ClientError::Registry {
                registry,
                status,
                code,
                message,
            },
        }
    }

    /// `Ok(resp)` for a 2xx answer, else the matching error.
    pub(crate) async fn check(
        &self,
        registry: &str,
        resp: Response,
    ) -> Result<Response, ClientError> {
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.error_from(registry, resp).await)
        }
    }
}

/// Whether the connection was refused (nothing listens), as opposed to a protocol mismatch.
fn is_refused(e: &reqwest::Error) -> bool {
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
            )
        {
            return true;
        }
        src = c.source();
    }
    false
}

fn default_scheme(registry: &str) -> &'static str {
    if is_loopback(registry) {
        "http"
    } else {
        "https"
    }
}

fn parse_url(registry: &str, s: &str) -> Result<Url, ClientError> {
    Url::parse(s)
        .map_err(|e| ClientError::InvalidInput(format!("invalid registry {registry:?}: {e}")))
}

/// Reads an error body (at most 64 KiB): the first spec error's code and message, else the first line
/// of the text.
async fn read_error_body(resp: Response) -> (Option<String>, String) {
    let reason = resp.status().canonical_reason().unwrap_or("").to_owned();
    let mut buf = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        buf.extend_from_slice(&chunk);
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    parse_error_body(&buf, &reason)
}

/// Parses `{"errors":[{"code","message"}]}`; falls back to the body's first line or `reason`.
pub(crate) fn parse_error_body(body: &[u8], reason: &str) -> (Option<String>, String) {
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(body)
        && let Some(first) = b.errors.into_iter().next()
    {
        let code = first.code.filter(|c| !c.is_empty());
        let message = first
            .message
            .filter(|m| !m.is_empty())
            .or_else(|| {
                code.as_ref()
                    .map(|c| c.to_ascii_lowercase().replace('_', " "))
            })
            .unwrap_or_else(|| reason.to_owned());
        return (code, message);
    }
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line: String = line.chars().take(200).collect();
    if line.is_empty() || line.starts_with('<') {
        (None, reason.to_owned())
    } else {
        (None, line)
    }
}

/// Reads a whole response body, failing once it exceeds `limit` bytes.
pub(crate) async fn read_limited(
    resp: Response,
    limit: u64,
    what: &str,
    registry: &str,
) -> Result<Bytes, ClientError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(ClientError::TooLarge {
            what: what.to_owned(),
            limit,
        });
    }
    let mut buf = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| ClientError::Transport {
            registry: registry.to_owned(),
            source,
        })?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(ClientError::TooLarge {
                what: what.to_owned(),
                limit,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A response header as a string.
pub(crate) fn header_str<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_detection() {
        for l in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5001",
            "[::1]:5000",
            "127.1.2.3:80",
        ] {
            assert!(is_loopback(l), "{l}");
        }
        for n in [
            "ghcr.io",
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(n), "{n}");
        }
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn error_bodies() {
        let (c, m) = parse_error_body(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
            "Not Found",
        );
        assert_eq!(
            (c.as_deref(), m.as_str()),
            (Some("MANIFEST_UNKNOWN"), "manifest unknown")
        );
        let (c, m) = parse_error_body(br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#, "Not Found");
        assert_eq!(
            (c.as_deref(), m.as_str()),
            (Some("NAME_UNKNOWN"), "name unknown")
        );
        let (c, m) = parse_error_body(b"404 page not found\n", "Not Found");
        assert_eq!((c, m.as_str()), (None, "404 page not found"));
        let (c, m) = parse_error_body(b"<html><body>x</body></html>", "Bad Gateway");
        assert_eq!((c, m.as_str()), (None, "Bad Gateway"));
        let (_, m) = parse_error_body(b"", "Not Found");
        assert_eq!(m, "Not Found");
    }

    #[test]
    fn base_urls() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let c = RegistryClient::new(ClientOptions {
            load_auth_file: false,
            ..ClientOptions::default()
        })
        .unwrap();
        assert_eq!(
            c.base_url("127.0.0.1:5000").unwrap().as_str(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(
            c.base_url("[::1]:5000").unwrap().as_str(),
            "http://[::1]:5000/"
        );
        assert_eq!(
            c.base_url("docker.io").unwrap().as_str(),
            "https://registry-1.docker.io/"
        );
        assert_eq!(c.request_count(), 0);
    }
}
