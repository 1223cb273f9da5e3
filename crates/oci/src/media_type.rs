//! Media types of the OCI image-spec and of Docker's schema2 formats.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The empty JSON blob `{}`.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI layout header (`oci-layout`).
pub const OCI_LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";
/// Removed pre-1.1 artifact manifest; stored opaquely, never indexed as a referrer.
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) layer.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema1 (deprecated, refused on push).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema1 signed (deprecated, refused on push).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest media type sigil accepts and serves, in `Accept` header order.
pub const MANIFEST_TYPES: &[&str] = &[
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
    OCI_ARTIFACT_MANIFEST,
];

/// The `Accept` header value listing every supported manifest type.
pub fn accept_header() -> String {
    MANIFEST_TYPES.join(", ")
}

/// Whether `mt` is an index type (OCI index or Docker manifest list).
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

/// Whether `mt` is an image manifest type (OCI or Docker schema2).
pub fn is_image_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

/// Whether a layer of this type is non-distributable (its blob need not be pushed).
pub fn is_non_distributable(mt: &str) -> bool {
    mt.contains(".nondistributable.") || mt == DOCKER_FOREIGN_LAYER
}

/// The media type without parameters (`; charset=...`), trimmed.
pub fn essence(mt: &str) -> &str {
    mt.split(';').next().unwrap_or("").trim()
}
