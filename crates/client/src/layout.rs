//! OCI image layouts on disk (image-spec `image-layout.md`): `oci-layout`, `index.json`,
//! `blobs/<alg>/<encoded>`.
//!
//! Reading finds an image by its `org.opencontainers.image.ref.name` annotation (or takes the only one).
//! Writing creates the layout if needed, writes blobs atomically (temporary file, fsync, rename, after
//! verifying the digest) and replaces `index.json` atomically, replacing any entry with the same ref
//! name. Unknown fields of `index.json` are preserved.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use sigil_oci::{Descriptor, Digest, Digester, ImageIndex, media_type};
use tokio::io::AsyncWriteExt as _;

use crate::blobs::BlobStream;
use crate::error::ClientError;
use crate::manifests::{FetchedManifest, effective_media_type};

/// The annotation naming an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Contents of the `oci-layout` file.
pub const LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    max_manifest_bytes: u64,
    index_lock: Arc<tokio::sync::Mutex<()>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_owned(),
        source,
    }
}

impl OciLayout {
    /// Opens an existing layout (it must have `index.json`).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ClientError> {
        let root = root.into();
        let l = Self::at(root);
        if !l.root.join("index.json").is_file() {
            return Err(l.err("not an OCI image layout (no index.json)"));
        }
        Ok(l)
    }

    /// Opens a layout, creating the directory, `oci-layout` and an empty `index.json` as needed.
    pub async fn create(root: impl Into<PathBuf>) -> Result<Self, ClientError> {
        let l = Self::at(root.into());
        tokio::fs::create_dir_all(l.root.join("blobs"))
            .await
            .map_err(io_err(&l.root))?;
        let marker = l.root.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, LAYOUT_FILE).await?;
        }
        let index = l.root.join("index.json");
        if !index.exists() {
            write_atomic(&index, &ImageIndex::empty().to_bytes()).await?;
        }
        Ok(l)
    }

    fn at(root: PathBuf) -> Self {
        Self {
            root,
            max_manifest_bytes: 8 * 1024 * 1024,
            index_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Sets the largest manifest read (default 8 MiB).
    pub fn with_max_manifest_bytes(mut self, n: u64) -> Self {
        self.max_manifest_bytes = n;
        self
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn err(&self, message: impl Into<String>) -> ClientError {
        ClientError::Layout {
            path: self.root.clone(),
            message: message.into(),
        }
    }

    /// `blobs/<alg>/<encoded>` (digest grammar rules out path separators and `..`).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.encoded())
    }

    /// Reads and parses `index.json`.
    pub async fn read_index(&self) -> Result<ImageIndex, ClientError> {
        let p = self.root.join("index.json");
        let bytes = tokio::fs::read(&p).await.map_err(io_err(&p))?;
        serde_json::from_slice(&bytes).map_err(|e| self.err(format!("invalid index.json: {e}")))
    }

    /// The `index.json` entry for `reference`: the entry whose ref name is `reference`, else the entry
    /// or blob with that digest; with no reference, the only entry.
    pub async fn resolve(&self, reference: Option<&str>) -> Result<Descriptor, ClientError> {
        let index = self.read_index().await?;
        let names = || {
            let v: Vec<&str> = index
                .manifests
                .iter()
                .filter_map(|d| d.annotation(REF_NAME))
                .collect();
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        let Some(r) = reference else {
            return match index.manifests.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(self.err("holds no image")),
                many => Err(self.err(format!(
                    "holds {} images; name one with oci:PATH:NAME (names: {})",
                    many.len(),
                    names()
                ))),
            };
        };
        if let Some(d) = index
            .manifests
            .iter()
            .find(|d| d.annotation(REF_NAME) == Some(r))
        {
            return Ok(d.clone());
        }
        if let Ok(digest) = Digest::parse(r) {
            if let Some(d) = index.manifests.iter().find(|d| d.digest == digest) {
                return Ok(d.clone());
            }
            if let Some(size) = self.has_blob(&digest).await? {
                let m = self.read_manifest(&digest, None).await?;
                return Ok(Descriptor {
                    size,
                    ..m.descriptor()
                });
            }
        }
        Err(self.err(format!("no image named {r:?} (names: {})", names())))
    }

    /// The blob's size, or `None` if the layout lacks it.
    pub async fn has_blob(&self, digest: &Digest) -> Result<Option<u64>, ClientError> {
        let p = self.blob_path(digest);
        match tokio::fs::metadata(&p).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Opens a blob as a verifying stream.
    pub async fn read_blob(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobStream, ClientError> {
        Digester::new(digest.algorithm())?;
        let p = self.blob_path(digest);
        let file = match tokio::fs::File::open(&p).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(self.err(format!("blob {digest} is missing")));
            }
            Err(e) => return Err(io_err(&p)(e)),
        };
        let len = file.metadata().await.ok().map(|m| m.len());
        let path = p.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |r| {
            r.map_err(|source| ClientError::Io {
                path: path.clone(),
                source,
            })
        });
        BlobStream::new(
            Box::pin(stream),
            digest.clone(),
            expected_size,
            len,
            format!("blob {digest} in {}", self.root.display()),
        )
    }

    /// Reads a small blob (verified), failing beyond `limit` bytes.
    pub async fn read_blob_bytes(&self, digest: &Digest, limit: u64) -> Result<Bytes, ClientError> {
        self.read_blob(digest, None)
            .await?
            .collect_bytes(limit)
            .await
    }

    /// Reads a manifest blob; `media_type_hint` is the descriptor's media type, if known.
    pub async fn read_manifest(
        &self,
        digest: &Digest,
        media_type_hint: Option<&str>,
    ) -> Result<FetchedManifest, ClientError> {
        let bytes = self
            .read_blob_bytes(digest, self.max_manifest_bytes)
            .await?;
        let media_type = effective_media_type(&bytes, media_type_hint)?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: digest.clone(),
            etag: None,
        })
    }

    /// The manifest named by `reference` (see [`Self::resolve`]).
    pub async fn get_manifest(
        &self,
        reference: Option<&str>,
    ) -> Result<FetchedManifest, ClientError> {
        let desc = self.resolve(reference).await?;
        self.read_manifest(&desc.digest, Some(&desc.media_type))
            .await
    }

    /// Writes a blob from a stream: temporary file, digest and size check, fsync, rename. Returns the
    /// size. An existing blob is kept (the stream is not read).
    pub async fn write_blob<S>(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
        mut stream: S,
    ) -> Result<u64, ClientError>
    where
        S: Stream<Item = Result<Bytes, ClientError>> + Unpin,
    {
        if let Some(n) = self.has_blob(digest).await? {
            return Ok(n);
        }
        let dest = self.blob_path(digest);
        let dir = dest
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_err(&dir))?;
        let tmp = dir.join(format!(".tmp-{}-{}", digest.encoded(), random_suffix()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io_err(&tmp))?;
            let mut hasher = Digester::new(digest.algorithm())?;
            let mut n: u64 = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                if let Some(want) = expected_size
                    && n > want
                {
                    return Err(ClientError::SizeMismatch {
                        what: format!("blob {digest}"),
                        expected: want,
                        actual: n,
                    });
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io_err(&tmp))?;
            }
            if let Some(want) = expected_size
                && n != want
            {
                return Err(ClientError::SizeMismatch {
                    what: format!("blob {digest}"),
                    expected: want,
                    actual: n,
                });
            }
            let actual = hasher.finish();
            if &actual != digest {
                return Err(ClientError::DigestMismatch {
                    what: format!("blob written to {}", self.root.display()),
                    expected: digest.to_string(),
                    actual: actual.to_string(),
                });
            }
            file.flush().await.map_err(io_err(&tmp))?;
            file.sync_all().await.map_err(io_err(&tmp))?;
            drop(file);
            tokio::fs::rename(&tmp, &dest)
                .await
                .map_err(io_err(&dest))?;
            sync_dir(&dir).await;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Writes a blob held in memory; returns its sha256 digest.
    pub async fn write_blob_bytes(&self, bytes: Bytes) -> Result<Digest, ClientError> {
        let digest = Digest::sha256(&bytes);
        let len = bytes.len() as u64;
        self.write_blob(&digest, Some(len), futures::stream::iter([Ok(bytes)]))
            .await?;
        Ok(digest)
    }

    /// Writes a manifest blob (digest `digest`, verified) and, if `ref_name` is given or the manifest is
    /// a top-level image, records it in `index.json` (see [`Self::set_ref`]).
    pub async fn put_manifest(
        &self,
        bytes: Bytes,
        media_type: &str,
        ref_name: Option<&str>,
    ) -> Result<Descriptor, ClientError> {
        let len = bytes.len() as u64;
        let digest = Digest::sha256(&bytes);
        self.write_blob(&digest, Some(len), futures::stream::iter([Ok(bytes)]))
            .await?;
        let desc = Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size: len,
            urls: None,
            annotations: None,
            data: None,
            artifact_type: None,
            platform: None,
        };
        self.set_ref(&desc, ref_name).await?;
        Ok(desc)
    }

    /// Records `desc` in `index.json`: with `ref_name`, replaces every entry carrying that name; without,
    /// adds the descriptor unless an unnamed entry with the same digest exists. The file is replaced
    /// atomically; other entries and fields are kept.
    pub async fn set_ref(
        &self,
        desc: &Descriptor,
        ref_name: Option<&str>,
    ) -> Result<(), ClientError> {
        if let Some(n) = ref_name
            && n.is_empty()
        {
            return Err(self.err("empty image name"));
        }
        let _guard = self.index_lock.lock().await;
        let p = self.root.join("index.json");
        let raw = match tokio::fs::read(&p).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => ImageIndex::empty().to_bytes(),
            Err(e) => return Err(io_err(&p)(e)),
        };
        let mut doc: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| self.err(format!("invalid index.json: {e}")))?;
        let obj = doc
            .as_object_mut()
            .ok_or_else(|| self.err("index.json is not a JSON object"))?;
        obj.entry("schemaVersion").or_insert(serde_json::json!(2));
        obj.entry("mediaType")
            .or_insert(serde_json::json!(media_type::OCI_INDEX));
        let manifests = obj
            .entry("manifests")
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
            .ok_or_else(|| self.err("index.json manifests is not an array"))?;
        let mut entry = desc.clone();
        let digest_str = desc.digest.to_string();
        match ref_name {
            Some(name) => {
                manifests.retain(|m| {
                    m.pointer("/annotations")
                        .and_then(|a| a.get(REF_NAME))
                        .and_then(|v| v.as_str())
                        != Some(name)
                });
                entry
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(REF_NAME.to_owned(), name.to_owned());
            }
            None => {
                let exists = manifests.iter().any(|m| {
                    m.get("digest").and_then(|v| v.as_str()) == Some(digest_str.as_str())
                        && m.pointer("/annotations")
                            .and_then(|a| a.get(REF_NAME))
                            .is_none()
                });
                if exists {
                    return Ok(());
                }
            }
        }
        let value = serde_json::to_value(&entry).map_err(|e| self.err(e.to_string()))?;
        manifests.push(value);
        let bytes = serde_json::to_vec(&doc).map_err(|e| self.err(e.to_string()))?;
        write_atomic(&p, &bytes).await
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("{}-{nanos}", std::process::id());
    }
    sigil_oci::digest::hex(&b)
}

/// Writes `path` atomically: temporary sibling, fsync, rename, fsync of the directory.
pub(crate) async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".tmp-{name}-{}", random_suffix()));
    let res = async {
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io_err(&tmp))?;
        f.write_all(bytes).await.map_err(io_err(&tmp))?;
        f.sync_all().await.map_err(io_err(&tmp))?;
        drop(f);
        tokio::fs::rename(&tmp, path).await.map_err(io_err(path))?;
        sync_dir(&dir).await;
        Ok(())
    }
    .await;
    if res.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    res
}

async fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_owned()
    };
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(f) = std::fs::File::open(&dir) {
            let _ = f.sync_all();
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn manifest_bytes(config: &Digest, layer: &Digest) -> Bytes {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[{{"mediaType":"{}","digest":"{layer}","size":5}}]}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            media_type::OCI_LAYER_GZIP
        ))
    }

    #[tokio::test]
    async fn layout_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lay");
        assert!(OciLayout::open(&root).is_err());
        let l = OciLayout::create(&root).await.unwrap();
        assert_eq!(std::fs::read(root.join("oci-layout")).unwrap(), LAYOUT_FILE);
        assert!(
            l.resolve(None)
                .await
                .unwrap_err()
                .to_string()
                .contains("no image")
        );

        let config = l.write_blob_bytes(Bytes::from_static(b"{}")).await.unwrap();
        let layer = l
            .write_blob_bytes(Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(l.has_blob(&layer).await.unwrap(), Some(5));
        let mb = manifest_bytes(&config, &layer);
        let desc = l
            .put_manifest(mb.clone(), media_type::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        assert_eq!(desc.digest, Digest::sha256(&mb));
        // Same name again replaces; another name adds.
        l.put_manifest(mb.clone(), media_type::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        l.put_manifest(mb.clone(), media_type::OCI_MANIFEST, Some("v2"))
            .await
            .unwrap();
        let idx = l.read_index().await.unwrap();
        assert_eq!(idx.manifests.len(), 2);
        assert!(
            l.resolve(None)
                .await
                .unwrap_err()
                .to_string()
                .contains("v1, v2")
        );

        let reopened = OciLayout::open(&root).unwrap();
        let m = reopened.get_manifest(Some("v2")).await.unwrap();
        assert_eq!(m.bytes, mb);
        assert_eq!(m.media_type, media_type::OCI_MANIFEST);
        assert_eq!(m.digest, desc.digest);
        let by_digest = reopened
            .get_manifest(Some(&desc.digest.to_string()))
            .await
            .unwrap();
        assert_eq!(by_digest.bytes, mb);
        assert!(reopened.get_manifest(Some("nope")).await.is_err());
        let blob = reopened.read_blob_bytes(&layer, 100).await.unwrap();
        assert_eq!(&blob[..], b"hello");

        // A corrupted blob is detected on read.
        std::fs::write(reopened.blob_path(&layer), b"HELLO").unwrap();
        assert!(matches!(
            reopened.read_blob_bytes(&layer, 100).await,
            Err(ClientError::DigestMismatch { .. })
        ));
        // A wrong stream is refused on write and leaves no file behind.
        let want = Digest::sha256(b"abc");
        let r = l
            .write_blob(
                &want,
                Some(3),
                futures::stream::iter([Ok(Bytes::from_static(b"abd"))]),
            )
            .await;
        assert!(matches!(r, Err(ClientError::DigestMismatch { .. })));
        assert_eq!(l.has_blob(&want).await.unwrap(), None);
        let leftovers: Vec<_> = std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[tokio::test]
    async fn set_ref_keeps_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.json"),
            br#"{"schemaVersion":2,"annotations":{"x":"y"},"manifests":[]}"#,
        )
        .unwrap();
        let l = OciLayout::open(dir.path()).unwrap();
        let d = Descriptor::for_bytes(media_type::OCI_MANIFEST, b"{}");
        l.set_ref(&d, None).await.unwrap();
        l.set_ref(&d, None).await.unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(v["annotations"]["x"], "y");
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    }
}
