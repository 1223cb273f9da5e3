//! Synthetic images: incompressible pseudo-random layers, an OCI config and an OCI image manifest.
//!
//! Every image is generated from its own seed, so each registry and each round gets fresh bytes: no
//! registry can answer a push from a dedup hit or a pull from a cache filled by the other side.
//! Generation and hashing happen before the clock starts.

use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::json;

use crate::registry::{OCI_MANIFEST, sha256_digest};

/// Media type of the config blob.
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the layers (uncompressed tar: the digest is also the diff ID).
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// A blob with its precomputed digest.
#[derive(Clone, Debug)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The content.
    pub data: Bytes,
}

impl Blob {
    fn new(data: Bytes) -> Self {
        Self {
            digest: sha256_digest(&data),
            data,
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

/// A complete single-platform image.
#[derive(Clone, Debug)]
pub struct Image {
    /// The config blob.
    pub config: Blob,
    /// The layer blobs.
    pub layers: Vec<Blob>,
    /// The manifest bytes, exactly as pushed.
    pub manifest: Bytes,
    /// `sha256:<hex>` of `manifest`.
    pub manifest_digest: String,
}

impl Image {
    /// `layer_count` layers of `layer_size` random bytes each, all derived from `seed`.
    pub fn generate(seed: u64, layer_count: usize, layer_size: usize) -> Result<Self> {
        let total = layer_count
            .checked_mul(layer_size)
            .context("image size overflows")?;
        let all = Bytes::from(random_bytes(seed, total));
        let layers: Vec<Blob> = (0..layer_count)
            .map(|i| Blob::new(all.slice(i * layer_size..(i + 1) * layer_size)))
            .collect();
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": { "dev.sigil.bench.seed": seed.to_string() } },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let config = Blob::new(Bytes::from(
            serde_json::to_vec(&config).context("serialising the config")?,
        ));
        let descriptors: Vec<_> = layers
            .iter()
            .map(|l| json!({ "mediaType": LAYER_TYPE, "digest": l.digest, "size": l.size() }))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": CONFIG_TYPE, "digest": config.digest, "size": config.size() },
            "layers": descriptors,
        });
        let manifest =
            Bytes::from(serde_json::to_vec(&manifest).context("serialising the manifest")?);
        Ok(Self {
            manifest_digest: sha256_digest(&manifest),
            config,
            layers,
            manifest,
        })
    }

    /// The config and the layers, config first.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// Total bytes of all blobs (config and layers; the manifest is not counted).
    pub fn blob_bytes(&self) -> u64 {
        self.blobs().map(Blob::size).sum()
    }
}

/// `len` bytes from xoshiro256++ seeded through splitmix64: fast (several GB/s) and incompressible.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut sm = seed;
    let mut splitmix = || {
        sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = sm;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut s = [splitmix(), splitmix(), splitmix(), splitmix()];
    let mut next = move || {
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    };
    let mut buf = vec![0u8; len];
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&next().to_le_bytes());
    }
    let rest = chunks.into_remainder();
    let tail = next().to_le_bytes();
    rest.copy_from_slice(&tail[..rest.len()]);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_give_distinct_deterministic_data() {
        assert_eq!(random_bytes(1, 1000), random_bytes(1, 1000));
        assert_ne!(random_bytes(1, 1000), random_bytes(2, 1000));
        assert_eq!(random_bytes(3, 13).len(), 13);
    }

    #[test]
    fn image_is_consistent() -> Result<()> {
        let img = Image::generate(7, 3, 1000)?;
        assert_eq!(img.layers.len(), 3);
        assert_eq!(img.blob_bytes(), 3000 + img.config.size());
        assert_eq!(img.manifest_digest, sha256_digest(&img.manifest));
        let m: serde_json::Value = serde_json::from_slice(&img.manifest)?;
        assert_eq!(m["layers"][2]["digest"], img.layers[2].digest.as_str());
        assert_ne!(img.layers[0].digest, img.layers[1].digest);
        Ok(())
    }
}
