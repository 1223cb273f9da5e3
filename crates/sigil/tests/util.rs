//! Test harness shared by the integration tests: servers (`sigil registry serve`, Debian's
//! `docker-registry`), a runner for the `sigil` binary and other tools, a small HTTP helper on reqwest,
//! and a deterministic OCI image fixture builder (OCI layout and/or pushed over the distribution API).
//!
//! Oracle tools (docker-registry, skopeo, htpasswd, the oras-py venv) are optional locally: a test that
//! needs a missing one prints `skipping: ...` and returns, unless `SIGIL_REQUIRE_ORACLES=1` (set by
//! `scripts/test.sh`), in which case it panics.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

// ---- media types and constants ---------------------------------------------------------------------------

pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// `Accept` value listing every manifest type we push.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";
/// The empty JSON blob `{}` and its digest.
pub const EMPTY_JSON: &[u8] = b"{}";
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// How long a server may take to answer `GET /v2/` after it was spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for one run of an external command (sigil client, skopeo, python).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

pub fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of `data`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// Whether missing oracle tools must fail the test (`SIGIL_REQUIRE_ORACLES=1`).
pub fn require_oracles() -> bool {
    std::env::var("SIGIL_REQUIRE_ORACLES").is_ok_and(|v| v == "1")
}

/// Skips (prints `skipping: ...`, returns `None`) or, with `SIGIL_REQUIRE_ORACLES=1`, panics.
pub fn skip<T>(why: &str) -> Option<T> {
    if require_oracles() {
        panic!("oracle unavailable and SIGIL_REQUIRE_ORACLES=1: {why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// Full path of an executable on `PATH`.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where `scripts/install-test-deps.sh` puts the oracle venv.
pub fn oracles_home() -> PathBuf {
    match std::env::var_os("SIGIL_ORACLES_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/sigil/oracles"),
    }
}

/// A scratch directory that outlives single tests (under cargo's target tmp dir).
fn shared_scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Installs the ring crypto provider once (reqwest is built with `rustls-no-provider`).
pub fn crypto_init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// ---- running commands ------------------------------------------------------------------------------------

/// Runs a command to completion with a time limit, capturing stdout and stderr. Panics on timeout.
pub fn run_command(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let e = t_err.join().unwrap_or_default();
            panic!(
                "{shown} did not finish within {COMMAND_TIMEOUT:?}; stderr:\n{}",
                String::from_utf8_lossy(&e)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// Runs the `sigil` binary under test with `args` (no ambient registry credentials).
pub fn sigil(args: &[&str]) -> Output {
    run_command(sigil_command(args))
}

/// The `sigil` command [`sigil`] runs, not started (for a working directory or concurrent runs).
pub fn sigil_command(args: &[&str]) -> Command {
    let home = shared_scratch("sigil-test-home");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    cmd.args(args)
        .env("HOME", &home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("SIGIL_REGISTRY_ROOT")
        .env_remove("SIGIL_REGISTRY_ADDR");
    cmd
}

/// Runs `sigil ARGS` in the working directory `cwd` (relative file arguments resolve there).
pub fn sigil_in(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = sigil_command(args);
    cmd.current_dir(cwd);
    run_command(cmd)
}

/// Asserts a command succeeded, showing its output otherwise; returns stdout.
pub fn expect_success(what: &str, out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

// ---- servers ---------------------------------------------------------------------------------------------

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// Sends `GET /v2/` over plain TCP or TLS; true once anything that looks like an HTTP response arrives.
fn probe(port: u16, tls_der: Option<&[u8]>) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(sock) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(3)));
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 8];
    let ok = match tls_der {
        None => {
            let mut s = sock;
            s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok()
        }
        Some(der) => {
            crypto_init();
            let mut roots = rustls::RootCertStore::empty();
            if roots
                .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
                .is_err()
            {
                return false;
            }
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let Ok(conn) = rustls::ClientConnection::new(Arc::new(config), name) else {
                return false;
            };
            let mut s = rustls::StreamOwned::new(conn, sock);
            s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok()
        }
    };
    ok && head.starts_with(b"HTTP/1.")
}

/// Spawns a server on a free port and waits until `GET /v2/` answers; retries with another port when
/// the server could not bind. `build(port)` makes the command. Panics with the server's log on failure.
fn spawn_server(
    what: &str,
    log: &Path,
    first_port: Option<u16>,
    tls_der: Option<&[u8]>,
    build: &dyn Fn(u16) -> Command,
) -> (Child, u16) {
    let mut port = first_port.unwrap_or_else(free_port);
    for attempt in 1..=6 {
        let mut cmd = build(port);
        let logf = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let text = fs::read_to_string(log).unwrap_or_default();
                let lower = text.to_lowercase();
                if attempt < 6 && (lower.contains("in use") || lower.contains("addrinuse")) {
                    // Another process took the port between our probe and the server's bind.
                    port = free_port();
                    break;
                }
                panic!("{what} exited at start ({status}); its output:\n{text}");
            }
            if probe(port, tls_der) {
                // The answer may come from a stranger that grabbed the port: make sure ours lives.
                std::thread::sleep(Duration::from_millis(20));
                if child.try_wait().unwrap().is_none() {
                    return (child, port);
                }
                continue;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} did not answer GET /v2/ on 127.0.0.1:{port} within {STARTUP_TIMEOUT:?}; its output:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    panic!("{what}: no free port after 6 attempts")
}

/// TLS material for `sigil registry serve --tls-cert/--tls-key`.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl TlsFiles {
    /// A self-signed certificate for 127.0.0.1 and localhost.
    pub fn self_signed() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .unwrap();
        TlsFiles {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
            cert_der: ck.cert.der().to_vec(),
        }
    }
}

/// Options for `sigil registry serve`.
#[derive(Clone, Default)]
pub struct ServeOpts {
    pub no_referrers_api: bool,
    /// (htpasswd file contents, realm)
    pub htpasswd: Option<(String, String)>,
    pub tls: Option<TlsFiles>,
    pub max_manifest_bytes: Option<usize>,
    pub referrers_page_size: Option<usize>,
}

/// A running `sigil registry serve` on 127.0.0.1 with its own data directory; killed on drop.
pub struct SigilRegistry {
    child: Option<Child>,
    dir: TempDir,
    root: PathBuf,
    port: u16,
    opts: ServeOpts,
    starts: usize,
}

impl SigilRegistry {
    pub fn start(opts: ServeOpts) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sigil-reg-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(&root).unwrap();
        let mut reg = SigilRegistry {
            child: None,
            dir,
            root,
            port: 0,
            opts,
            starts: 0,
        };
        reg.spawn(None);
        reg
    }

    /// Default options.
    pub fn start_default() -> Self {
        Self::start(ServeOpts::default())
    }

    fn spawn(&mut self, port: Option<u16>) {
        self.starts += 1;
        let root = self.root().to_path_buf();
        let work = self.dir.path().to_path_buf();
        let opts = self.opts.clone();
        if let Some((contents, _)) = &opts.htpasswd {
            fs::write(work.join("htpasswd"), contents).unwrap();
        }
        if let Some(tls) = &opts.tls {
            fs::write(work.join("cert.pem"), &tls.cert_pem).unwrap();
            fs::write(work.join("key.pem"), &tls.key_pem).unwrap();
        }
        let build = move |port: u16| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
            cmd.args(["registry", "serve", "--addr"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("--root")
                .arg(&root)
                .env_remove("SIGIL_REGISTRY_ADDR")
                .env_remove("SIGIL_REGISTRY_ROOT");
            if opts.no_referrers_api {
                cmd.arg("--no-referrers-api");
            }
            if let Some((_, realm)) = &opts.htpasswd {
                cmd.arg("--htpasswd")
                    .arg(work.join("htpasswd"))
                    .arg("--realm")
                    .arg(realm);
            }
            if opts.tls.is_some() {
                cmd.arg("--tls-cert")
                    .arg(work.join("cert.pem"))
                    .arg("--tls-key")
                    .arg(work.join("key.pem"));
            }
            if let Some(n) = opts.max_manifest_bytes {
                cmd.arg("--max-manifest-bytes").arg(n.to_string());
            }
            if let Some(n) = opts.referrers_page_size {
                cmd.arg("--referrers-page-size").arg(n.to_string());
            }
            cmd
        };
        let log = self.log_path();
        let der = self.opts.tls.as_ref().map(|t| t.cert_der.clone());
        let (child, port) =
            spawn_server("sigil registry serve", &log, port, der.as_deref(), &build);
        self.child = Some(child);
        self.port = port;
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The data directory (`--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http(s)://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        let scheme = if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// An HTTP client for this server (trusting its certificate when TLS is on; no credentials).
    pub fn http(&self) -> Http {
        match &self.opts.tls {
            Some(t) => Http::with_ca(&self.base_url(), t.cert_pem.as_bytes()),
            None => Http::new(&self.base_url()),
        }
    }

    /// Everything the server wrote to stdout/stderr so far (all starts).
    pub fn output(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILLs the server and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server (SIGKILL) and starts it again on the same data directory, on the same port
    /// when it is still free.
    pub fn restart(&mut self) {
        self.kill9();
        let port = self.port;
        let free = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        self.spawn(free.then_some(port));
    }

    /// Whether the server process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for SigilRegistry {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Debian's `docker-registry` (distribution 2.8.2) on a free port, filesystem storage in a temp dir,
/// deletes enabled, optional htpasswd auth. Killed on drop.
pub struct DockerRegistry {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    /// (user, password) when started with auth.
    pub credentials: Option<(String, String)>,
}

impl DockerRegistry {
    /// `None` (test skipped) when docker-registry (or, with `auth`, htpasswd) is not installed, unless
    /// `SIGIL_REQUIRE_ORACLES=1`.
    pub fn start(auth: bool) -> Option<Self> {
        let Some(bin) = which("docker-registry") else {
            return skip("docker-registry is not installed (scripts/install-test-deps.sh)");
        };
        let dir = tempfile::Builder::new()
            .prefix("docker-reg-")
            .tempdir()
            .unwrap();
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).unwrap();
        let mut credentials = None;
        let mut auth_yml = String::new();
        if auth {
            let (user, pass) = ("tester".to_string(), "s3cret-pass".to_string());
            let line = htpasswd_line(&user, &pass)?;
            let htp = dir.path().join("htpasswd");
            fs::write(&htp, line).unwrap();
            auth_yml = format!(
                "auth:\n  htpasswd:\n    realm: sigil-test\n    path: {}\n",
                htp.display()
            );
            credentials = Some((user, pass));
        }
        let cfg_path = dir.path().join("config.yml");
        let storage_s = storage.display().to_string();
        let build = move |port: u16| {
            let cfg = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage_s}\n  delete:\n    enabled: true\n  \
                 cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: sigil-test-{port}\n\
                 {auth_yml}"
            );
            fs::write(&cfg_path, cfg).unwrap();
            let mut cmd = Command::new(&bin);
            cmd.arg("serve").arg(&cfg_path);
            cmd
        };
        let log = dir.path().join("registry.log");
        let (child, port) = spawn_server("docker-registry", &log, None, None, &build);
        Some(DockerRegistry {
            child: Some(child),
            dir,
            port,
            credentials,
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client for this registry (with its credentials when it has auth).
    pub fn http(&self) -> Http {
        let h = Http::new(&self.base_url());
        match &self.credentials {
            Some((u, p)) => h.with_basic_auth(u, p),
            None => h,
        }
    }

    pub fn output(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One bcrypt htpasswd line made by `htpasswd -Bbn` (None = skipped when htpasswd is missing).
pub fn htpasswd_line(user: &str, pass: &str) -> Option<String> {
    let Some(bin) = which("htpasswd") else {
        return skip("htpasswd (apache2-utils) is not installed (scripts/install-test-deps.sh)");
    };
    let mut cmd = Command::new(bin);
    cmd.args(["-Bbn", user, pass]);
    let out = run_command(cmd);
    let text = String::from_utf8(expect_success("htpasswd -Bbn", &out)).unwrap();
    Some(text.trim().to_string() + "\n")
}

// ---- HTTP helper -----------------------------------------------------------------------------------------

/// A reqwest client bound to a base URL, optionally with basic-auth credentials. No proxies, no
/// redirects followed, a generous per-request timeout so a hung server fails the test instead of hanging.
#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
    pub auth: Option<(String, String)>,
}

impl Http {
    fn builder() -> reqwest::ClientBuilder {
        crypto_init();
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
    }

    pub fn new(base: &str) -> Self {
        Http {
            client: Self::builder().build().unwrap(),
            base: base.trim_end_matches('/').to_string(),
            auth: None,
        }
    }

    /// Trusts only `ca_pem`.
    pub fn with_ca(base: &str, ca_pem: &[u8]) -> Self {
        let cert = reqwest::Certificate::from_pem(ca_pem).unwrap();
        Http {
            client: Self::builder().tls_certs_only([cert]).build().unwrap(),
            base: base.trim_end_matches('/').to_string(),
            auth: None,
        }
    }

    pub fn with_basic_auth(mut self, user: &str, pass: &str) -> Self {
        self.auth = Some((user.to_string(), pass.to_string()));
        self
    }

    /// `path` relative to the base (`/v2/...`) or an absolute URL; a `Location` value works as is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/{path}", self.base)
        }
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.client.request(method, self.url(path));
        match &self.auth {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }
    pub fn head(&self, path: &str) -> RequestBuilder {
        self.req(Method::HEAD, path)
    }
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.req(Method::PUT, path)
    }
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }
    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.req(Method::PATCH, path)
    }
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.req(Method::DELETE, path)
    }

    /// Sends and panics on transport errors (a dropped connection fails the test here).
    pub async fn send(rb: RequestBuilder) -> Response {
        let (client, req) = rb.build_split();
        let req = req.unwrap();
        let what = format!("{} {}", req.method(), req.url());
        match client.execute(req).await {
            Ok(r) => r,
            Err(e) => panic!("{what}: transport error: {e:?}"),
        }
    }

    /// Starts an upload session (`POST /v2/<repo>/blobs/uploads/`), asserts 202 + Location; returns
    /// the absolute session URL.
    pub async fn start_upload(&self, repo: &str) -> String {
        let r = Http::send(
            self.post(&format!("/v2/{repo}/blobs/uploads/"))
                .header("Content-Length", "0"),
        )
        .await;
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "POST upload in {repo}: {}",
            r.text().await.unwrap_or_default()
        );
        let loc = header(&r, "location").expect("202 upload response without Location");
        self.resolve(&loc)
    }

    /// Makes a (possibly relative) `Location` absolute.
    pub fn resolve(&self, loc: &str) -> String {
        self.url(loc)
    }

    /// Monolithic upload (POST, then PUT `?digest=`), asserting 201; returns the digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = digest_of(data);
        let loc = self.start_upload(repo).await;
        let r = Http::send(
            self.put(&with_query(&loc, &format!("digest={digest}")))
                .header("Content-Type", "application/octet-stream")
                .body(data.to_vec()),
        )
        .await;
        let st = r.status();
        assert_eq!(
            st,
            StatusCode::CREATED,
            "PUT blob {digest} in {repo}: {}",
            r.text().await.unwrap_or_default()
        );
        digest
    }

    /// PUT a manifest; returns the response (not asserted).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        Http::send(
            self.put(&format!("/v2/{repo}/manifests/{reference}"))
                .header("Content-Type", media_type)
                .body(body.to_vec()),
        )
        .await
    }

    /// PUT a manifest and assert 201 with a `Docker-Content-Digest` equal to the bytes' digest; returns
    /// the digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let digest = digest_of(body);
        let r = self.put_manifest(repo, reference, media_type, body).await;
        let st = r.status();
        let dcd = header(&r, "docker-content-digest");
        assert_eq!(
            st,
            StatusCode::CREATED,
            "PUT manifest {repo}:{reference}: {}",
            r.text().await.unwrap_or_default()
        );
        if let Some(d) = dcd {
            assert_eq!(d, digest, "Docker-Content-Digest of manifest PUT");
        }
        digest
    }

    /// GET a manifest with an Accept header listing every type; returns (status, content type, body).
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> (StatusCode, String, Vec<u8>) {
        let r = Http::send(
            self.get(&format!("/v2/{repo}/manifests/{reference}"))
                .header("Accept", ACCEPT_ALL),
        )
        .await;
        let st = r.status();
        let ct = header(&r, "content-type").unwrap_or_default();
        (st, ct, r.bytes().await.unwrap().to_vec())
    }

    /// GET a blob; returns (status, body).
    pub async fn get_blob(&self, repo: &str, digest: &str) -> (StatusCode, Vec<u8>) {
        let r = Http::send(self.get(&format!("/v2/{repo}/blobs/{digest}"))).await;
        let st = r.status();
        (st, r.bytes().await.unwrap().to_vec())
    }
}

/// A response header as a string.
pub fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Appends a query parameter to a URL that may already have a query.
pub fn with_query(url: &str, kv: &str) -> String {
    if url.contains('?') {
        format!("{url}&{kv}")
    } else {
        format!("{url}?{kv}")
    }
}

/// Asserts `r` has status `status` and a spec error body (`{"errors":[{"code":...}]}`) containing
/// `code`; returns the body.
pub async fn expect_error(r: Response, status: u16, code: &str) -> Value {
    let st = r.status().as_u16();
    let url = r.url().to_string();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(st, status, "{url}: expected {status} {code}, body: {text}");
    check_error_body(&text, &[code], &url)
}

/// Like [`expect_error`] but any of `codes` is acceptable.
pub async fn expect_error_any(r: Response, status: u16, codes: &[&str]) -> Value {
    let st = r.status().as_u16();
    let url = r.url().to_string();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(
        st, status,
        "{url}: expected {status} {codes:?}, body: {text}"
    );
    check_error_body(&text, codes, &url)
}

fn check_error_body(text: &str, codes: &[&str], url: &str) -> Value {
    let v: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{url}: error body is not JSON ({e}): {text:?}"));
    let errors = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{url}: error body has no \"errors\" array: {text}"));
    assert!(!errors.is_empty(), "{url}: empty errors array: {text}");
    for e in errors {
        let c = e["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{url}: error without string \"code\": {text}"));
        assert!(
            c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
            "{url}: error code {c:?} is not UPPER_CASE"
        );
        if let Some(m) = e.get("message") {
            assert!(m.is_string(), "{url}: \"message\" is not a string: {text}");
        }
    }
    assert!(
        errors
            .iter()
            .any(|e| codes.contains(&e["code"].as_str().unwrap_or(""))),
        "{url}: expected error code {codes:?}, got {text}"
    );
    v
}

/// Sends raw bytes over a fresh TCP connection and returns the raw response (read until close or
/// `timeout`). Used where an HTTP client would normalise the request (`..` segments, bad syntax).
pub fn raw_http(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if response_complete(&buf) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// True once `buf` holds a full response head and a Content-Length body.
fn response_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..end].to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match len {
        Some(n) => buf.len() >= end + 4 + n,
        None => false,
    }
}

/// The status code of a raw HTTP response (0 if none).
pub fn raw_status(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The body of a raw HTTP response.
pub fn raw_body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

// ---- deterministic data and image fixtures ---------------------------------------------------------------

/// splitmix64: small, deterministic pseudo-random bytes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A seed that differs per test run, so repeated runs do not find old content in tool caches.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)
}

/// A ustar archive holding one regular file `name` with `data`.
pub fn tar_one_file(name: &str, data: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100);
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{:0w$o}\0", v, w = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = !0u32;
    for &b in data {
        c = t[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// A valid gzip stream of `data` using stored (uncompressed) deflate blocks: deterministic, needs no
/// compression library, and random data would not compress anyway.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Compact JSON bytes (serde_json's map keeps keys sorted, so output is deterministic).
pub fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A manifest or index with its exact bytes.
#[derive(Clone, Debug)]
pub struct Doc {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// `os/arch[/variant]` for platform manifests of an index.
    pub platform: Option<String>,
}

impl Doc {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Doc {
            digest: digest_of(&bytes),
            media_type: media_type.to_string(),
            bytes,
            platform: None,
        }
    }
    /// Its descriptor (mediaType, digest, size).
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub seed: u64,
    pub layers: usize,
    pub layer_size: usize,
    /// One entry: an image manifest; several: an index over one manifest each.
    pub platforms: Vec<String>,
    /// gzip layers (`tar+gzip`) rather than plain tar.
    pub gzip: bool,
    /// Docker schema2 media types instead of OCI ones.
    pub docker: bool,
}

impl ImageSpec {
    pub fn new(seed: u64) -> Self {
        ImageSpec {
            seed,
            layers: 2,
            layer_size: 4096,
            platforms: vec!["linux/amd64".into()],
            gzip: true,
            docker: false,
        }
    }
    pub fn layers(mut self, n: usize, size: usize) -> Self {
        self.layers = n;
        self.layer_size = size;
        self
    }
    pub fn platforms(mut self, p: &[&str]) -> Self {
        self.platforms = p.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn docker(mut self) -> Self {
        self.docker = true;
        self
    }
    pub fn build(&self) -> Image {
        Image::build(self)
    }
}

/// A built image: blobs (configs and layers), platform manifests, and the top manifest or index.
#[derive(Clone, Debug)]
pub struct Image {
    /// digest -> bytes, configs and layers of every platform.
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Platform manifests (for an index); empty for a single image.
    pub children: Vec<Doc>,
    /// The image manifest or the index.
    pub top: Doc,
}

impl Image {
    pub fn build(spec: &ImageSpec) -> Image {
        let (mt_manifest, mt_index, mt_config, mt_layer) = if spec.docker {
            (
                MT_DOCKER_MANIFEST,
                MT_DOCKER_LIST,
                MT_DOCKER_CONFIG,
                MT_DOCKER_LAYER,
            )
        } else if spec.gzip {
            (MT_MANIFEST, MT_INDEX, MT_CONFIG, MT_LAYER_GZIP)
        } else {
            (MT_MANIFEST, MT_INDEX, MT_CONFIG, MT_LAYER_TAR)
        };
        let gzip = spec.gzip || spec.docker;
        let mut blobs = BTreeMap::new();
        let mut children = Vec::new();
        for (pi, platform) in spec.platforms.iter().enumerate() {
            let parts: Vec<&str> = platform.split('/').collect();
            assert!(parts.len() == 2 || parts.len() == 3, "platform {platform}");
            let mut rng = Rng::new(spec.seed.wrapping_mul(1_000_003).wrapping_add(pi as u64));
            let mut layers = Vec::new();
            let mut diff_ids = Vec::new();
            for li in 0..spec.layers {
                let data = rng.bytes(spec.layer_size);
                let tar = tar_one_file(&format!("data/p{pi}-l{li}.bin"), &data);
                diff_ids.push(digest_of(&tar));
                let blob = if gzip { gzip_stored(&tar) } else { tar };
                let d = digest_of(&blob);
                layers.push(json!({"mediaType": mt_layer, "digest": d, "size": blob.len()}));
                blobs.insert(d, blob);
            }
            let mut cfg = json!({
                "architecture": parts[1],
                "os": parts[0],
                "created": "1970-01-01T00:00:00Z",
                "config": {"Labels": {"seed": spec.seed.to_string()}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            if let Some(v) = parts.get(2) {
                cfg["variant"] = json!(v);
            }
            let cfg_bytes = json_bytes(&cfg);
            let cfg_digest = digest_of(&cfg_bytes);
            blobs.insert(cfg_digest.clone(), cfg_bytes.clone());
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": mt_manifest,
                "config": {"mediaType": mt_config, "digest": cfg_digest, "size": cfg_bytes.len()},
                "layers": layers,
            });
            let mut doc = Doc::new(mt_manifest, json_bytes(&manifest));
            doc.platform = Some(platform.clone());
            children.push(doc);
        }
        if children.len() == 1 {
            let mut top = children.pop().unwrap();
            top.platform = None;
            return Image {
                blobs,
                children,
                top,
            };
        }
        let manifests: Vec<Value> = children
            .iter()
            .map(|c| {
                let p = c.platform.as_deref().unwrap();
                let parts: Vec<&str> = p.split('/').collect();
                let mut plat = json!({"os": parts[0], "architecture": parts[1]});
                if let Some(v) = parts.get(2) {
                    plat["variant"] = json!(v);
                }
                let mut d = c.descriptor();
                d["platform"] = plat;
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": mt_index, "manifests": manifests});
        let top = Doc::new(mt_index, json_bytes(&index));
        Image {
            blobs,
            children,
            top,
        }
    }

    pub fn digest(&self) -> &str {
        &self.top.digest
    }

    /// The config blob of a single-platform image.
    pub fn config(&self) -> Vec<u8> {
        let m: Value = serde_json::from_slice(&self.top.bytes).unwrap();
        let d = m["config"]["digest"]
            .as_str()
            .expect("not an image manifest");
        self.blobs[d].clone()
    }

    /// Every manifest document (children first, then the top).
    pub fn docs(&self) -> Vec<&Doc> {
        self.children.iter().chain(Some(&self.top)).collect()
    }

    /// Writes (or adds to) an OCI image layout at `dir`, naming the top manifest `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        let bdir = dir.join("blobs/sha256");
        fs::create_dir_all(&bdir).unwrap();
        for (d, data) in &self.blobs {
            fs::write(bdir.join(d.trim_start_matches("sha256:")), data).unwrap();
        }
        for doc in self.docs() {
            fs::write(
                bdir.join(doc.digest.trim_start_matches("sha256:")),
                &doc.bytes,
            )
            .unwrap();
        }
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let ipath = dir.join("index.json");
        let mut index: Value = fs::read(&ipath)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}));
        let list = index["manifests"].as_array_mut().unwrap();
        list.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != json!(tag));
        let mut desc = self.top.descriptor();
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        list.push(desc);
        fs::write(ipath, json_bytes(&index)).unwrap();
    }

    /// Pushes every blob (monolithic uploads), the platform manifests by digest, and the top manifest
    /// under `reference` (a tag, or its digest).
    pub async fn push(&self, http: &Http, repo: &str, reference: &str) {
        for data in self.blobs.values() {
            http.push_blob(repo, data).await;
        }
        for c in &self.children {
            http.push_manifest(repo, &c.digest, &c.media_type, &c.bytes)
                .await;
        }
        http.push_manifest(repo, reference, &self.top.media_type, &self.top.bytes)
            .await;
    }

    /// Asserts `http` serves this image under `repo`: the top manifest under `reference` and every
    /// child and blob by digest, byte for byte.
    pub async fn assert_served(&self, http: &Http, repo: &str, reference: &str) {
        let (st, ct, body) = http.get_manifest(repo, reference).await;
        assert_eq!(st, StatusCode::OK, "GET manifest {repo}:{reference}");
        assert_eq!(
            digest_of(&body),
            self.top.digest,
            "{repo}:{reference} digest"
        );
        assert_eq!(body, self.top.bytes, "{repo}:{reference} bytes");
        assert_eq!(media_type_of(&ct), self.top.media_type, "Content-Type");
        for c in &self.children {
            let (st, _, body) = http.get_manifest(repo, &c.digest).await;
            assert_eq!(st, StatusCode::OK, "GET child manifest {}", c.digest);
            assert_eq!(body, c.bytes, "child manifest {} bytes", c.digest);
        }
        for (d, data) in &self.blobs {
            let (st, body) = http.get_blob(repo, d).await;
            assert_eq!(st, StatusCode::OK, "GET blob {d}");
            assert!(body == *data, "blob {d} differs");
        }
    }
}

/// The media type part of a Content-Type value (parameters dropped).
pub fn media_type_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Reads an OCI layout: the top descriptor named `tag` and a reader for blobs.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    pub fn index(&self) -> Value {
        serde_json::from_slice(&fs::read(self.dir.join("index.json")).unwrap()).unwrap()
    }
    /// The descriptor of `tag` in index.json.
    pub fn descriptor(&self, tag: &str) -> Value {
        let idx = self.index();
        idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == json!(tag))
            .cloned()
            .unwrap_or_else(|| panic!("no {tag} in {}/index.json: {idx}", self.dir.display()))
    }
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let (alg, hex) = digest.split_once(':').unwrap();
        let p = self.dir.join("blobs").join(alg).join(hex);
        fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
}

// ---- manifests used as test data ------------------------------------------------------------------------

/// Pushes a small single-layer OCI image (fresh random bytes from `seed`) under `reference`; returns it.
pub async fn push_small_image(http: &Http, repo: &str, reference: &str, seed: u64) -> Image {
    let img = ImageSpec::new(seed).layers(1, 512).build();
    img.push(http, repo, reference).await;
    img
}

/// An OCI 1.1 artifact manifest: empty config (unless `config_type` is given: then a `{}` config of
/// that type and no artifactType), one layer `layer_digest`/`layer_size`, optional subject.
pub struct Artifact<'a> {
    pub artifact_type: Option<&'a str>,
    pub config_type: Option<&'a str>,
    pub subject: Option<&'a Doc>,
    pub annotations: Vec<(&'a str, &'a str)>,
    pub layer: Option<(&'a str, usize)>,
}

impl<'a> Artifact<'a> {
    pub fn new(artifact_type: &'a str, subject: &'a Doc) -> Self {
        Artifact {
            artifact_type: Some(artifact_type),
            config_type: None,
            subject: Some(subject),
            annotations: Vec::new(),
            layer: None,
        }
    }
    pub fn annotate(mut self, k: &'a str, v: &'a str) -> Self {
        self.annotations.push((k, v));
        self
    }
    /// The manifest bytes. Uses the empty blob as layer when none is given (push it first with
    /// `http.push_blob(repo, EMPTY_JSON)`).
    pub fn to_doc(&self) -> Doc {
        let config = json!({
            "mediaType": self.config_type.unwrap_or(MT_EMPTY),
            "digest": EMPTY_DIGEST,
            "size": 2,
        });
        let layer = match self.layer {
            Some((d, n)) => {
                json!({"mediaType": "application/octet-stream", "digest": d, "size": n})
            }
            None => json!({"mediaType": MT_EMPTY, "digest": EMPTY_DIGEST, "size": 2}),
        };
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config,
            "layers": [layer],
        });
        if self.config_type.is_none()
            && let Some(t) = self.artifact_type
        {
            m["artifactType"] = json!(t);
        }
        if let Some(s) = self.subject {
            m["subject"] = s.descriptor();
        }
        if !self.annotations.is_empty() {
            let map: serde_json::Map<String, Value> = self
                .annotations
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            m["annotations"] = Value::Object(map);
        }
        Doc::new(MT_MANIFEST, json_bytes(&m))
    }
}

/// A raw HTTP/1.1 connection kept open across requests (to see whether the server keeps it usable).
pub struct RawConn {
    stream: TcpStream,
}

impl RawConn {
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        RawConn { stream }
    }

    /// Writes `request` and reads one response (head plus a Content-Length body). Returns "" when the
    /// server closed the connection instead of answering.
    pub fn request(&mut self, request: &[u8]) -> String {
        if self.stream.write_all(request).is_err() {
            return String::new();
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if response_complete(&buf) {
                        break;
                    }
                }
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Asserts the server still answers `GET /v2/` with 200.
pub async fn assert_alive(http: &Http, after: &str) {
    let r = http.get("/v2/").send().await;
    match r {
        Ok(r) => assert_eq!(
            r.status(),
            StatusCode::OK,
            "GET /v2/ after {after}: unexpected status"
        ),
        Err(e) => panic!("GET /v2/ after {after}: server unreachable: {e:?}"),
    }
}

/// The target of a `Link: <url>; rel="next"` header, if any.
pub fn next_link(r: &Response) -> Option<String> {
    let v = header(r, "link")?;
    v.split(',').find_map(|part| {
        let part = part.trim();
        if !part.contains("rel=\"next\"") && !part.contains("rel=next") {
            return None;
        }
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        Some(part[start..end].to_string())
    })
}

// ---- Sigstore oracles: sigstore-python and scripts/oracles/sigstore-mock.js -----------------------------

/// The oracle venv's python, when it can import `modules` (e.g. `sigstore.sign`, `nacl, cryptography`).
pub fn oracle_python(modules: &str) -> Option<PathBuf> {
    let py = oracles_home().join("venv/bin/python");
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else {
        skip(&format!(
            "no venv with {modules} at {} (scripts/install-test-deps.sh)",
            py.display()
        ))
    }
}

/// `scripts/oracles/sigstore-mock.js` on a free loopback port, with its trust files in a temp dir. Killed
/// on drop.
pub struct SigstoreMock {
    child: Child,
    _dir: TempDir,
    /// The mock's base URL (Fulcio, Rekor, TSA).
    pub url: String,
    /// The trusted root it wrote.
    pub trusted_root: PathBuf,
    /// sigstore-python's client trust config (root + signing config).
    pub trust_config: PathBuf,
}

impl SigstoreMock {
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Starts the mock with extra options (`--tsa`, `--tlog-skew SECONDS`).
    pub fn start_with(options: &[&str]) -> Option<Self> {
        let Some(node) = which("node") else {
            return skip("node is not installed (scripts/install-test-deps.sh)");
        };
        let npm = oracles_home().join("npm/node_modules/@sigstore/mock");
        if !npm.is_dir() {
            return skip(&format!(
                "@sigstore/mock is not installed at {} (scripts/install-test-deps.sh)",
                npm.display()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("sigstore-mock-")
            .tempdir()
            .unwrap();
        let mut child = Command::new(node)
            .arg(repo_root().join("scripts/oracles/sigstore-mock.js"))
            .arg(dir.path().join("trust"))
            .arg("0")
            .args(options)
            .env("SIGIL_ORACLES_HOME", oracles_home())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(dir.path().join("mock.log")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Ok(info) = serde_json::from_str::<Value>(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sigstore-mock.js did not start ({line:?}): {}",
                fs::read_to_string(dir.path().join("mock.log")).unwrap_or_default()
            );
        };
        Some(SigstoreMock {
            child,
            url: info["url"].as_str().unwrap_or_default().to_owned(),
            trusted_root: PathBuf::from(info["trustedRoot"].as_str().unwrap()),
            trust_config: PathBuf::from(info["trustConfig"].as_str().unwrap()),
            _dir: dir,
        })
    }

    /// Signs `input` with sigstore-python (`--dsse` for an in-toto statement) into the bundle `output`.
    pub fn sign(
        &self,
        py: &Path,
        identity: &str,
        issuer: &str,
        dsse: bool,
        input: &Path,
        output: &Path,
    ) {
        let mut cmd = Command::new(py);
        cmd.arg(repo_root().join("scripts/oracles/sigstore-sign.py"))
            .arg("--trust-config")
            .arg(&self.trust_config)
            .args(["--identity", identity, "--issuer", issuer])
            .env("SIGIL_ORACLES_HOME", oracles_home());
        if dsse {
            cmd.arg("--dsse");
        }
        cmd.arg(input).arg(output);
        let out = run_command(cmd);
        let stdout = expect_success("sigstore-sign.py", &out);
        let v: Value = serde_json::from_slice(&stdout).unwrap();
        assert_eq!(
            v["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json",
            "{v}"
        );
        assert_eq!(
            v["content"],
            if dsse {
                "dsseEnvelope"
            } else {
                "messageSignature"
            },
            "{v}"
        );
        assert_eq!(v["tlogEntries"], 1, "{v}");
    }
}

impl Drop for SigstoreMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- test PKI (rcgen) -------------------------------------------------------------------------------

/// A CA (self-signed, or signed by `issuer`) and its key.
pub fn ca(
    cn: &str,
    issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = match issuer {
        Some(i) => p.signed_by(&key, i).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    (cert, rcgen::Issuer::new(p, key))
}

/// An ECDSA P-256 code-signing leaf issued by `issuer`: (certificate PEM, PKCS#8 key PEM).
pub fn leaf(issuer: &rcgen::Issuer<'_, rcgen::KeyPair>, email: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "signer");
    p.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}
