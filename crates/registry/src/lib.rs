//! sigil's embedded OCI registry: distribution-spec v1.1.1 including the referrers API.
//!
//! [`router`] builds the axum application over any [`sigil_storage::Storage`]; [`serve`] runs it on a
//! listener with optional TLS (rustls on ring) and graceful shutdown. Manifests are stored and served
//! byte for byte; digests are computed over the bytes as received.

pub mod api;
pub mod auth;
pub mod error;
pub mod route;
pub mod server;

use std::sync::Arc;

pub use auth::{Htpasswd, HtpasswdError};
pub use server::{ServerError, serve, tls_config};

/// Behaviour switches of the registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Serve `GET /v2/<name>/referrers/<digest>` and answer `OCI-Subject` on subject PUTs.
    pub referrers_api: bool,
    /// Largest manifest accepted (413 beyond).
    pub max_manifest_bytes: usize,
    /// Most descriptors per referrers page before `Link` pagination.
    pub referrers_page_size: usize,
    /// Realm announced in `WWW-Authenticate` when auth is on.
    pub realm: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            referrers_api: true,
            max_manifest_bytes: 4 * 1024 * 1024,
            referrers_page_size: 1000,
            realm: "sigil".to_owned(),
        }
    }
}

/// The registry's HTTP application.
pub fn router(
    storage: Arc<dyn sigil_storage::Storage>,
    config: RegistryConfig,
    auth: Option<Htpasswd>,
) -> axum::Router {
    let state = Arc::new(api::Registry::new(storage, config, auth));
    axum::Router::new().fallback(api::handle).with_state(state)
}
