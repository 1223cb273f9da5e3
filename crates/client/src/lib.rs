//! sigil's OCI registry client.
//!
//! [`RegistryClient`] speaks the OCI distribution-spec v1.1.1 (pull, push, mount, delete, tag and
//! referrers listings with `Link` pagination) with docker-style credentials (auth file, `credHelpers` /
//! `credsStore` credential helpers, OAuth2 identity tokens) and the Basic/Bearer auth dance, counting
//! every HTTP request it makes ([`RegistryClient::request_count`]). [`OciLayout`] reads and writes OCI
//! image layouts, and [`RegistryClient::copy`] copies images and indexes between
//! registries and layouts ([`ImageRef`]: `registry/repo:tag` or `oci:PATH[:TAG]`).
//!
//! Content is always handled as the bytes received: manifest digests are computed over the raw bytes and
//! never over a re-serialisation, and blobs are verified while they stream ([`BlobStream`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sigil_client::ClientError> {
//! use sigil_client::{ClientOptions, CopyOptions, ImageRef, RegistryClient};
//! let client = RegistryClient::new(ClientOptions::default())?;
//! let src = ImageRef::parse("127.0.0.1:5000/demo/app:1")?;
//! let dst = ImageRef::parse("oci:/tmp/app:1")?;
//! let report = client.copy(&src, &dst, &CopyOptions::default()).await?;
//! println!("{} ({} requests)", report.digest, client.request_count());
//! # Ok(()) }
//! ```

pub mod auth;
pub mod blobs;
pub mod client;
pub mod copy;
pub mod error;
pub mod helper;
pub mod image;
pub mod image_ref;
pub mod layout;
pub mod listing;
pub mod manifests;
pub mod retry;

pub use auth::{AuthStore, Credential, RegistryCredential, Scope};
pub use blobs::{BlobBody, BlobStream, ByteStream, MountOutcome, PushOutcome, UploadSession};
pub use client::{ClientOptions, RegistryClient};
pub use copy::{BlobOutcome, CopyEvent, CopyOptions, CopyReport, ProgressFn};
pub use error::ClientError;
pub use image::resolve_platform;
pub use image_ref::{ImageRef, LayoutRef};
pub use layout::OciLayout;
pub use listing::{ReferrersPage, TagPage};
pub use manifests::{FetchedManifest, PutCondition, PutManifestResponse};
pub use retry::RetryPolicy;

#[cfg(test)]
mod tests;
