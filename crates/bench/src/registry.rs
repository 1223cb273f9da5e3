//! A deliberately small distribution-spec client: just the requests the benchmark times.
//!
//! Blob pushes are monolithic (`POST /v2/<name>/blobs/uploads/` then `PUT <location>?digest=`), blob
//! pulls stream the body through SHA-256 and check it against the requested digest, and manifests are
//! pushed by tag. Every unexpected status is an error carrying the start of the response body, so a
//! misbehaving registry shows up in the report instead of as a silently fast number.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, StatusCode, Url};
use sha2::{Digest as _, Sha256};

/// Media type of the OCI image manifests the benchmark pushes.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `Accept` header sent on manifest GETs: the OCI and Docker schema2 types (distribution 2.8 only serves
/// an OCI manifest by tag when the OCI type is acceptable).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Builds an HTTP/1.1 keep-alive client for loopback benchmarking (no proxy, `TCP_NODELAY`).
pub fn http_client(max_idle: usize) -> Result<Client> {
    Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_idle)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")
}

/// One registry endpoint, e.g. `http://127.0.0.1:5000`.
#[derive(Clone, Debug)]
pub struct Registry {
    http: Client,
    base: Url,
}

impl Registry {
    /// A client for the registry at `base` (scheme, host and port; any path is ignored).
    pub fn new(http: Client, base: &Url) -> Self {
        Self {
            http,
            base: base.clone(),
        }
    }

    /// Absolute URL of `path` (which starts with `/v2/`).
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("joining {path} to {}", self.base))
    }

    /// `GET /v2/` must answer 200 (no auth in the benchmark).
    pub async fn ping(&self) -> Result<()> {
        let url = self.url("/v2/")?;
        let resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        expect_status(resp, StatusCode::OK, "GET /v2/").await?;
        Ok(())
    }

    /// Monolithic upload: `POST /v2/<repo>/blobs/uploads/` (202 + `Location`), then
    /// `PUT <location>?digest=<digest>` with the whole body (201).
    pub async fn push_blob(&self, repo: &str, digest: &str, data: Bytes) -> Result<()> {
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let resp = self
            .http
            .post(start.clone())
            .body(Bytes::new())
            .send()
            .await
            .with_context(|| format!("POST {start}"))?;
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().map(str::to_owned));
        expect_status(resp, StatusCode::ACCEPTED, "POST blob upload").await?;
        let location = match location {
            Some(Ok(l)) => l,
            Some(Err(_)) => bail!("POST {start}: Location header is not ASCII"),
            None => bail!("POST {start}: 202 without a Location header"),
        };
        let mut put = self
            .base
            .join(&location)
            .with_context(|| format!("POST {start}: bad Location {location:?}"))?;
        put.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .http
            .put(put)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(data)
            .send()
            .await
            .with_context(|| format!("PUT blob {digest}"))?;
        expect_status(resp, StatusCode::CREATED, "PUT blob upload").await?;
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>` (201).
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .http
            .put(url.clone())
            .header(CONTENT_TYPE, media_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        expect_status(resp, StatusCode::CREATED, "PUT manifest").await?;
        Ok(())
    }

    /// `GET /v2/<repo>/manifests/<reference>`, checking status 200 and the body against `expected`.
    pub async fn get_manifest_exact(
        &self,
        repo: &str,
        reference: &str,
        expected: &[u8],
    ) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .http
            .get(url.clone())
            .header(ACCEPT, MANIFEST_ACCEPT)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let body = expect_status(resp, StatusCode::OK, "GET manifest").await?;
        ensure!(
            body == expected,
            "GET {url}: body differs from the pushed manifest ({} bytes, pushed {})",
            body.len(),
            expected.len()
        );
        Ok(())
    }

    /// `GET /v2/<repo>/blobs/<digest>`, streaming the body through SHA-256; fails unless the body has
    /// `size` bytes and hashes to `digest` (`sha256:<hex>`). Returns the byte count.
    pub async fn pull_blob_verified(&self, repo: &str, digest: &str, size: u64) -> Result<u64> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let mut resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if resp.status() != StatusCode::OK {
            expect_status(resp, StatusCode::OK, "GET blob").await?;
            bail!("GET {url}: unexpected status");
        }
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .with_context(|| format!("reading GET {url}"))?
        {
            n += chunk.len() as u64;
            hasher.update(&chunk);
        }
        ensure!(n == size, "GET {url}: {n} bytes, expected {size}");
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        ensure!(got == digest, "GET {url}: body hashes to {got}");
        Ok(n)
    }
}

/// Reads the whole body; fails with the method, status and the start of the body unless the status is
/// `want`. Reading the body also returns the connection to the keep-alive pool.
async fn expect_status(resp: Response, want: StatusCode, what: &str) -> Result<Bytes> {
    let status = resp.status();
    let url = resp.url().clone();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("{what} {url}: reading the body"))?;
    if status != want {
        let text = String::from_utf8_lossy(&body[..body.len().min(600)]);
        let mut text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some((cut, _)) = text.char_indices().nth(200) {
            text.truncate(cut);
            text.push_str("...");
        }
        bail!("{what} {url}: status {status}, expected {want}: {text}");
    }
    Ok(body)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}
