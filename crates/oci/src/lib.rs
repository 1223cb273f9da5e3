//! I/O-free OCI core for sigil.
//!
//! Everything here is pure data handling: digests computed over bytes exactly as received, descriptors,
//! OCI image manifests and indexes (image-spec v1.1.1, with `artifactType`, `subject` and the empty
//! descriptor), Docker schema2 manifests and manifest lists, media types, platform matching, image
//! references and repository-name rules. No module touches the network or the filesystem, so every
//! other sigil crate can build on it.

pub mod descriptor;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod platform;
pub mod reference;
pub mod time;

pub use descriptor::Descriptor;
pub use digest::{Algorithm, Digest, Digester};
pub use error::OciError;
pub use manifest::{ImageIndex, ImageManifest, Manifest};
pub use platform::Platform;
pub use reference::Reference;
