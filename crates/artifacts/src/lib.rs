//! OCI 1.1 artifacts and referrers on any registry.
//!
//! This crate builds on [`sigil_client::RegistryClient`] and implements the artifact workflows of
//! distribution-spec v1.1.1 and image-spec v1.1.1 so that they work both on registries with the
//! referrers API and on registries without it (the *tag-schema fallback*, `<alg>-<hex>` tags holding an
//! OCI image index of the referrers):
//!
//! - [`Referrers`]: the service everything hangs off. It lists referrers
//!   ([`Referrers::list`]) through the referrers API or the fallback tag, remembering per registry and
//!   repository which of the two works so a run never probes twice, filters client-side when the
//!   registry did not apply the `artifactType` filter, and follows `Link` pagination (a loop is an
//!   error).
//! - [`Referrers::attach`]: pushes an image manifest with `subject`, `artifactType`, the empty config
//!   and one titled layer per file; when the registry does not answer `OCI-Subject`, maintains the
//!   fallback index.
//! - [`Referrers::add_to_fallback_index`] / [`Referrers::remove_from_fallback_index`]: conditional
//!   read-modify-write of the fallback index (`If-Match` with the `ETag`, `If-None-Match: *` when
//!   creating), retried on 412. Registries that ignore conditional requests (docker-registry 2.8.2 sends
//!   an `ETag` but ignores `If-Match`) are handled by re-reading after a short random delay and
//!   re-merging whatever was lost; once a registry answered 412, it is trusted and the re-read skipped.
//! - [`Referrers::discover`]: the referrers tree of an image (referrers of referrers, and per-platform
//!   children of an index with their referrers, optionally cosign-style digest tags), serialisable to
//!   JSON and printable as a tree ([`render_tree`]) or table ([`render_table`]).
//! - [`Referrers::pull`]: writes an artifact's files by their titles, refusing titles that could escape
//!   the directory, atomically (temporary file + rename) and verified.
//! - [`Referrers::delete`]: deletes a manifest, optionally with everything that refers to it (children
//!   first), keeping fallback indexes correct.
//! - [`Referrers::copy_with_referrers`]: copies an image with its referrers, recursively, recreating
//!   fallback indexes on targets without the referrers API, optionally with cosign digest tags.
//!
//! Limitation: referrers are copied between registries only; OCI layouts as sources or targets of
//! [`Referrers::copy_with_referrers`] are refused with [`ArtifactError::Unsupported`].

mod attach;
mod copy;
mod delete;
mod discover;
mod error;
mod fallback;
mod pull;
mod referrers;
mod time;

pub use attach::{AttachFile, AttachOptions, AttachReport};
pub use copy::{CopyReferrersOptions, CopyReferrersReport};
pub use delete::DeleteReport;
pub use discover::{
    DigestTag, DiscoverOptions, ReferrerNode, SubjectNode, render_table, render_tree,
};
pub use error::ArtifactError;
pub use fallback::{merge_add, merge_remove};
pub use pull::{PulledFile, check_title};
pub use referrers::{Mechanism, Referrers};
pub use time::{format_rfc3339, now_rfc3339};

/// The `org.opencontainers.image.title` annotation (file name of a layer).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The `org.opencontainers.image.created` annotation (RFC 3339).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Suffixes of cosign-style digest tags (`sha256-<hex>.sig`, ...).
pub const DIGEST_TAG_SUFFIXES: &[&str] = &["sig", "att", "sbom"];
