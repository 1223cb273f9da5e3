//! The filesystem backend: [`FsStorage`].
//!
//! # Layout
//!
//! ```text
//! <root>/
//!   blobs/<alg>/<first 2 chars of hex>/<hex>      global content-addressed blobs (manifests too)
//!   repos/<repo path>/
//!     _layers/<alg>/<hex>                           empty file: blob linked into the repository
//!     _manifests/<alg>/<hex>                        JSON {mediaType, size, subject?}: manifest link
//!     _tags/<tag>                                   the digest string the tag points at
//!     _referrers/<subject alg>/<subject hex>/<alg>-<hex>
//!                                                   the referrer's Descriptor JSON
//!   uploads/<id>/{info,data}                        upload sessions: info = JSON {repo}, data = bytes
//!   tmp/                                            temporary files (same filesystem as everything else)
//! ```
//!
//! Repository path components always start with `[a-z0-9]`, so they never collide with the `_`
//! directories of a parent repository (`a/_tags` vs repository `a/b`). Names are re-validated here
//! (no `..`, no empty components, no component starting with `_` or `.`) before any path is built;
//! tags are validated with [`sigil_oci::name::is_valid_tag`] and upload ids must be 32 lowercase hex
//! characters, so no caller-supplied string can reach outside the root.
//!
//! # Atomicity and durability
//!
//! Every file with content is written to `tmp/`, `sync_all`ed, renamed into place and its parent
//! directory fsynced, so a crash (even `kill -9` or power loss) never exposes a partial blob, manifest
//! link, referrer entry or tag. Empty link files are created in place (an empty file cannot be torn)
//! and their directory fsynced. Newly created directories are fsynced into their parents. An upload
//! session is assembled in `tmp/` and renamed into `uploads/` as a whole; committing fsyncs its data
//! file and renames it into `blobs/` (or, when the blob already exists, just drops it: deduplication).
//! Two concurrent commits of the same content are safe: both renames install identical bytes.
//! Leftover temporary files older than an hour are removed by [`FsStorage::open`].
//!
//! # Concurrency
//!
//! - Upload sessions are serialised by a per-session async mutex; appends and commits run in tasks
//!   that own the lock, so a dropped request future cannot leave a half-applied append behind that a
//!   later request would race with. Each session keeps an incremental sha256 state, updated while the
//!   data is written, so committing does not re-read the data (sha512 commits, and sessions reloaded
//!   after a restart, rehash the file).
//! - Tag updates are compare-and-set under a per-(repository, tag) lock held only across the check and
//!   the rename, so conditional manifest PUTs never lose writes within one process.
//! - Reads take no global lock. Manifest links are cached in memory (keyed by repository and digest);
//!   a cache hit still checks that the link file exists, so deletions by another process are seen.
//!
//! Blob reads return [`crate::ByteRange`]s exactly: a range must satisfy `start <= end < size`, else
//! the read fails with [`StorageError::RangeNotSatisfiable`]; callers clamp an open-ended or overlong
//! HTTP range to `size - 1` first.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sigil_oci::{Algorithm, Descriptor, Digest, Digester};
use tokio::io::AsyncReadExt;
use tokio::sync::OwnedMutexGuard;

use crate::{
    BlobReader, ByteRange, ByteStream, NewManifest, Result, Storage, StorageError, StoredManifest,
    TagCondition, UploadStatus,
};

/// Buffer size of streamed blob reads.
const READ_CHUNK: usize = 256 * 1024;
/// Blobs (or ranges) up to this size are read in one go and returned as a single chunk.
const SMALL_READ: u64 = 256 * 1024;
/// Upload data is written in batches of at least this many bytes (one blocking write per batch).
const WRITE_BATCH: usize = 512 * 1024;
/// Buffer size when rehashing upload data from disk.
const HASH_CHUNK: usize = 1024 * 1024;
/// The manifest-link cache is cleared when it reaches this many entries.
const LINK_CACHE_MAX: usize = 65_536;
/// Temporary files older than this are removed at open.
const TMP_MAX_AGE: Duration = Duration::from_secs(3600);

/// Filesystem-backed [`Storage`]. Cheap to clone (all clones share state).
#[derive(Clone)]
pub struct FsStorage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FsStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsStorage")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

struct Inner {
    root: PathBuf,
    blobs: PathBuf,
    repos: PathBuf,
    uploads: PathBuf,
    tmp: PathBuf,
    /// Upload sessions touched by this process, by id.
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Locks serialising compare-and-set tag updates, by (repository, tag).
    tag_locks: Mutex<TagLocks>,
    /// Parsed manifest links, by `"<repo>@<digest>"`.
    links: RwLock<HashMap<String, Arc<ManifestLink>>>,
}

/// Tag locks by (repository, tag).
type TagLocks = HashMap<(String, String), Arc<Mutex<()>>>;

struct Session {
    repo: String,
    state: Arc<tokio::sync::Mutex<SessionState>>,
}

struct SessionState {
    /// Bytes received so far (authoritative; the data file is truncated to it if longer).
    size: u64,
    /// sha256 of the bytes received, when they were all seen by this process.
    hasher: Option<Digester>,
    /// The session was committed or cancelled.
    gone: bool,
}

/// Contents of `_manifests/<alg>/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestLink {
    media_type: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Digest>,
}

/// Contents of `uploads/<id>/info`.
#[derive(Debug, Serialize, Deserialize)]
struct UploadInfo {
    repo: String,
}

impl FsStorage {
    /// Opens (creating if missing) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        let inner = Inner {
            blobs: root.join("blobs"),
            repos: root.join("repos"),
            uploads: root.join("uploads"),
            tmp: root.join("tmp"),
            root,
            sessions: Mutex::new(HashMap::new()),
            tag_locks: Mutex::new(HashMap::new()),
            links: RwLock::new(HashMap::new()),
        };
        for dir in [&inner.blobs, &inner.repos, &inner.uploads, &inner.tmp] {
            inner.ensure_dir(dir)?;
        }
        inner.clean_tmp();
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Runs blocking filesystem work on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(join_error)?
    }

    /// The in-memory handle of an upload session, loading it from disk if this process has not seen
    /// it (for example after a restart).
    async fn session(&self, repo: &str, id: &str) -> Result<Arc<Session>> {
        check_repo(repo)?;
        if !valid_upload_id(id) {
            return Err(StorageError::UploadUnknown);
        }
        let cached = lock(&self.inner.sessions).get(id).cloned();
        let session = match cached {
            Some(s) => s,
            None => {
                let id_owned = id.to_owned();
                let (info, size) = self.run(move |i| i.load_upload(&id_owned)).await?;
                let loaded = Arc::new(Session {
                    repo: info.repo,
                    state: Arc::new(tokio::sync::Mutex::new(SessionState {
                        size,
                        hasher: None,
                        gone: false,
                    })),
                });
                Arc::clone(
                    lock(&self.inner.sessions)
                        .entry(id.to_owned())
                        .or_insert(loaded),
                )
            }
        };
        if session.repo == repo {
            Ok(session)
        } else {
            Err(StorageError::UploadUnknown)
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> StorageError {
    StorageError::Io(io::Error::other(format!("storage task failed: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid_input(msg: String) -> StorageError {
    StorageError::Io(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

/// Defensive re-validation of a repository name before it becomes a path.
fn check_repo(repo: &str) -> Result<()> {
    let components_ok = repo.split('/').all(|c| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && !c.starts_with('_')
            && !c.starts_with('.')
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    });
    if components_ok && sigil_oci::name::validate_repository(repo).is_ok() {
        Ok(())
    } else {
        Err(invalid_input(format!("invalid repository name {repo:?}")))
    }
}

fn check_tag(tag: &str) -> Result<()> {
    if sigil_oci::name::is_valid_tag(tag) {
        Ok(())
    } else {
        Err(invalid_input(format!("invalid tag {tag:?}")))
    }
}

fn valid_upload_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(sigil_oci::digest::hex(&buf))
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{}: {what}", path.display()))
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Sets a file's mtime to now (resets GC grace periods).
fn touch(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

/// Names and file types of the entries of `dir`; empty if it does not exist.
fn read_dir_entries(dir: &Path) -> io::Result<Vec<(String, fs::FileType)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        out.push((name, entry.file_type()?));
    }
    Ok(out)
}

/// Digests stored as `<dir>/<alg>/<hex>` files.
fn list_digest_files(dir: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    for (alg, ty) in read_dir_entries(dir)? {
        if !ty.is_dir() {
            continue;
        }
        for (enc, ty) in read_dir_entries(&dir.join(&alg))? {
            if ty.is_file()
                && let Ok(d) = Digest::parse(&format!("{alg}:{enc}"))
            {
                out.push(d);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `<dir>/<alg>/` holds at least one file.
fn has_digest_files(dir: &Path) -> io::Result<bool> {
    for (alg, ty) in read_dir_entries(dir)? {
        if ty.is_dir() && !read_dir_entries(&dir.join(alg))?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn age_secs(modified: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(modified)
        .map_or(0, |d| d.as_secs())
}

fn read_tag_file(path: &Path) -> Result<Option<Digest>> {
    match fs::read_to_string(path) {
        Ok(s) => Digest::parse(s.trim())
            .map(Some)
            .map_err(|e| corrupt(path, e)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn condition_holds(cond: &TagCondition, current: Option<&Digest>) -> bool {
    match cond {
        TagCondition::Any => true,
        TagCondition::Absent => current.is_none(),
        TagCondition::Exists => current.is_some(),
        TagCondition::CurrentIs(list) => current.is_some_and(|c| list.contains(c)),
        TagCondition::CurrentIsNot(list) => current.is_none_or(|c| !list.contains(c)),
    }
}

/// Hashes a reader from its current position to the end.
fn hash_reader(r: &mut impl Read, algorithm: &Algorithm) -> Result<Digest> {
    let mut d = Digester::new(algorithm)
        .map_err(|_| StorageError::UnsupportedDigest(algorithm.to_string()))?;
    let mut buf = vec![0u8; HASH_CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        d.update(&buf[..n]);
    }
    Ok(d.finish())
}

impl Inner {
    // ---- paths ----

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let enc = d.encoded();
        let prefix = enc.get(..2).unwrap_or(enc);
        self.blobs
            .join(d.algorithm().as_str())
            .join(prefix)
            .join(enc)
    }

    fn repo_dir(&self, repo: &str) -> Result<PathBuf> {
        check_repo(repo)?;
        Ok(self.repos.join(repo))
    }

    fn layer_link(rdir: &Path, d: &Digest) -> PathBuf {
        rdir.join("_layers")
            .join(d.algorithm().as_str())
            .join(d.encoded())
    }

    fn manifest_link(rdir: &Path, d: &Digest) -> PathBuf {
        rdir.join("_manifests")
            .join(d.algorithm().as_str())
            .join(d.encoded())
    }

    fn referrer_dir(rdir: &Path, subject: &Digest) -> PathBuf {
        rdir.join("_referrers")
            .join(subject.algorithm().as_str())
            .join(subject.encoded())
    }

    fn referrer_entry(rdir: &Path, subject: &Digest, referrer: &Digest) -> PathBuf {
        Self::referrer_dir(rdir, subject).join(format!(
            "{}-{}",
            referrer.algorithm(),
            referrer.encoded()
        ))
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.uploads.join(id)
    }

    // ---- primitives ----

    /// Creates `dir` and any missing ancestors, fsyncing each new directory into its parent.
    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut cur = dir;
        loop {
            match fs::metadata(cur) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => {
                    return Err(io::Error::other(format!(
                        "{} is not a directory",
                        cur.display()
                    )));
                }
                Err(e) if is_not_found(&e) => {
                    missing.push(cur);
                    match cur.parent() {
                        Some(p) => cur = p,
                        None => break,
                    }
                }
                Err(e) => return Err(e),
            }
        }
        for d in missing.iter().rev() {
            match fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            if let Some(p) = d.parent() {
                sync_dir(p)?;
            }
        }
        Ok(())
    }

    fn tmp_path(&self) -> io::Result<PathBuf> {
        Ok(self.tmp.join(format!("{}.tmp", random_hex(16)?)))
    }

    /// Writes `data` to a new, fsynced temporary file and returns its path.
    fn prepare_tmp(&self, data: &[u8]) -> io::Result<PathBuf> {
        let tmp = self.tmp_path()?;
        let res = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        })();
        match res {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Atomically replaces `path` with `data` (temp file, fsync, rename, fsync directory).
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let parent = path
            .parent()
            .ok_or_else(|| io::Error::other("path without parent"))?;
        self.ensure_dir(parent)?;
        let tmp = self.prepare_tmp(data)?;
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(parent)
    }

    /// Writes `data` atomically unless `path` already holds exactly `data`.
    fn write_atomic_if_changed(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        match fs::read(path) {
            Ok(existing) if existing == data => Ok(()),
            _ => self.write_atomic(path, data),
        }
    }

    /// Creates an empty marker file (durably) if it does not exist.
    fn create_empty(&self, path: &Path) -> io::Result<()> {
        if fs::symlink_metadata(path).is_ok() {
            return Ok(());
        }
        let parent = path
            .parent()
            .ok_or_else(|| io::Error::other("path without parent"))?;
        self.ensure_dir(parent)?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        sync_dir(parent)
    }

    /// Removes temporary files left behind by crashed writers (older than an hour, so a second
    /// process sharing the root is not disturbed).
    fn clean_tmp(&self) {
        let Ok(entries) = read_dir_entries(&self.tmp) else {
            return;
        };
        for (name, ty) in entries {
            let path = self.tmp.join(&name);
            let old = fs::symlink_metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| age_secs(t) >= TMP_MAX_AGE.as_secs());
            if !old {
                continue;
            }
            let res = if ty.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = res {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove stale temporary file");
            }
        }
    }

    fn with_tag_lock<T>(&self, repo: &str, tag: &str, f: impl FnOnce() -> T) -> T {
        let key = (repo.to_owned(), tag.to_owned());
        let tag_lock = Arc::clone(lock(&self.tag_locks).entry(key.clone()).or_default());
        let out = {
            let _guard = lock(&tag_lock);
            f()
        };
        let mut map = lock(&self.tag_locks);
        // Only the map and this thread hold it: nobody waits, so the entry can go.
        if Arc::strong_count(&tag_lock) == 2 {
            map.remove(&key);
        }
        out
    }

    // ---- link cache ----

    fn cache_key(repo: &str, d: &Digest) -> String {
        format!("{repo}@{d}")
    }

    fn cache_get(&self, key: &str) -> Option<Arc<ManifestLink>> {
        self.links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn cache_put(&self, key: String, link: Arc<ManifestLink>) {
        let mut map = self.links.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= LINK_CACHE_MAX {
            map.clear();
        }
        map.insert(key, link);
    }

    fn cache_remove(&self, key: &str) {
        self.links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    // ---- blobs ----

    fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn blob_link(&self, repo: &str, d: &Digest) -> Result<()> {
        let rdir = self.repo_dir(repo)?;
        match touch(&self.blob_path(d)) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Err(StorageError::NotFound),
            Err(e) => return Err(e.into()),
        }
        self.create_empty(&Self::layer_link(&rdir, d))?;
        Ok(())
    }

    // ---- uploads ----

    fn upload_start(&self, repo: &str) -> Result<String> {
        check_repo(repo)?;
        let id = random_hex(16)?;
        let staging = self.tmp.join(format!("upload-{id}"));
        fs::create_dir(&staging)?;
        let res = (|| -> Result<()> {
            let info = serde_json::to_vec(&UploadInfo {
                repo: repo.to_owned(),
            })
            .map_err(io::Error::other)?;
            let mut f = File::create_new(staging.join("info"))?;
            f.write_all(&info)?;
            f.sync_all()?;
            File::create_new(staging.join("data"))?;
            sync_dir(&staging)?;
            fs::rename(&staging, self.upload_dir(&id))?;
            sync_dir(&self.uploads)?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ok(id)
    }

    fn load_upload(&self, id: &str) -> Result<(UploadInfo, u64)> {
        let dir = self.upload_dir(id);
        let info = match fs::read(dir.join("info")) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Err(StorageError::UploadUnknown),
            Err(e) => return Err(e.into()),
        };
        let info: UploadInfo =
            serde_json::from_slice(&info).map_err(|e| corrupt(&dir.join("info"), e))?;
        let size = match fs::metadata(dir.join("data")) {
            Ok(m) => m.len(),
            Err(e) if is_not_found(&e) => return Err(StorageError::UploadUnknown),
            Err(e) => return Err(e.into()),
        };
        Ok((info, size))
    }

    /// Removes a session from disk and memory.
    fn end_session(&self, id: &str, state: &mut SessionState) {
        let dir = self.upload_dir(id);
        if let Err(e) = fs::remove_dir_all(&dir)
            && !is_not_found(&e)
        {
            tracing::warn!(path = %dir.display(), error = %e, "cannot remove upload directory");
        }
        state.gone = true;
        lock(&self.sessions).remove(id);
    }

    fn upload_commit(
        &self,
        mut guard: OwnedMutexGuard<SessionState>,
        repo: &str,
        id: &str,
        digest: &Digest,
    ) -> Result<u64> {
        if guard.gone {
            return Err(StorageError::UploadUnknown);
        }
        let rdir = self.repo_dir(repo)?;
        let data = self.upload_dir(id).join("data");
        let mut f = match OpenOptions::new().read(true).write(true).open(&data) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Err(StorageError::UploadUnknown),
            Err(e) => return Err(e.into()),
        };
        let size = guard.size;
        if f.metadata()?.len() != size {
            f.set_len(size)?;
        }
        let actual = match (&guard.hasher, digest.algorithm()) {
            (Some(h @ Digester::Sha256(_)), Algorithm::Sha256) => h.clone().finish(),
            (_, alg) => {
                f.seek(SeekFrom::Start(0))?;
                hash_reader(&mut f, alg)?
            }
        };
        if &actual != digest {
            drop(f);
            self.end_session(id, &mut guard);
            return Err(StorageError::DigestMismatch {
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        f.sync_all()?;
        drop(f);

        let blob = self.blob_path(digest);
        let parent = blob
            .parent()
            .ok_or_else(|| io::Error::other("blob path without parent"))?;
        self.ensure_dir(parent)?;
        match touch(&blob) {
            // Already stored: deduplicated, the upload data is simply dropped below.
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {
                fs::rename(&data, &blob)?;
                sync_dir(parent)?;
                // The data file's mtime is that of the last append; restart the GC grace period.
                touch(&blob)?;
            }
            Err(e) => return Err(e.into()),
        }
        self.create_empty(&Self::layer_link(&rdir, digest))?;
        self.end_session(id, &mut guard);
        Ok(size)
    }

    fn upload_list(&self) -> Result<Vec<(String, String, u64)>> {
        let mut out = Vec::new();
        for (id, ty) in read_dir_entries(&self.uploads)? {
            if !ty.is_dir() || !valid_upload_id(&id) {
                continue;
            }
            let dir = self.upload_dir(&id);
            let info: UploadInfo = match fs::read(dir.join("info")) {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(upload = %id, error = %e, "unreadable upload info");
                        continue;
                    }
                },
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let modified = fs::metadata(dir.join("data"))
                .or_else(|_| fs::metadata(dir.join("info")))
                .and_then(|m| m.modified());
            let age = modified.map_or(0, age_secs);
            out.push((info.repo, id, age));
        }
        out.sort();
        Ok(out)
    }

    // ---- manifests ----

    fn read_link(path: &Path) -> Result<Option<ManifestLink>> {
        match fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| corrupt(path, e)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn manifest_put(
        &self,
        repo: &str,
        m: &NewManifest,
        tag: Option<(&str, &TagCondition)>,
    ) -> Result<()> {
        let rdir = self.repo_dir(repo)?;
        if let Some((t, _)) = tag {
            check_tag(t)?;
        }
        // The bytes, as a global blob.
        let blob = self.blob_path(&m.digest);
        match touch(&blob) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => self.write_atomic(&blob, &m.bytes)?,
            Err(e) => return Err(e.into()),
        }
        // The manifest link.
        let link = ManifestLink {
            media_type: m.media_type.clone(),
            size: m.bytes.len() as u64,
            subject: m.referrer.as_ref().map(|(s, _)| s.clone()),
        };
        let link_json = serde_json::to_vec(&link).map_err(io::Error::other)?;
        let link_path = Self::manifest_link(&rdir, &m.digest);
        self.write_atomic_if_changed(&link_path, &link_json)?;
        self.cache_put(Self::cache_key(repo, &m.digest), Arc::new(link));
        // The referrer entry.
        if let Some((subject, desc)) = &m.referrer {
            let json = serde_json::to_vec(desc).map_err(io::Error::other)?;
            self.write_atomic_if_changed(&Self::referrer_entry(&rdir, subject, &m.digest), &json)?;
        }
        // The tag.
        if let Some((t, cond)) = tag {
            self.tag_set(repo, &rdir, t, cond, &m.digest, &link_path, &link_json)?;
        }
        Ok(())
    }

    /// Compare-and-set of a tag. The new value is written and fsynced to a temporary file before the
    /// lock is taken, so the lock covers only the check and the rename.
    #[allow(clippy::too_many_arguments)]
    fn tag_set(
        &self,
        repo: &str,
        rdir: &Path,
        tag: &str,
        cond: &TagCondition,
        digest: &Digest,
        link_path: &Path,
        link_json: &[u8],
    ) -> Result<()> {
        let tags_dir = rdir.join("_tags");
        let path = tags_dir.join(tag);
        let value = digest.to_string();
        self.ensure_dir(&tags_dir)?;
        let unchanged = read_tag_file(&path)?.as_ref() == Some(digest);
        let tmp = if unchanged {
            None
        } else {
            Some(self.prepare_tmp(value.as_bytes())?)
        };
        let outcome = self.with_tag_lock(repo, tag, || -> Result<bool> {
            let current = read_tag_file(&path)?;
            if !condition_holds(cond, current.as_ref()) {
                return Err(StorageError::PreconditionFailed {
                    current: current.map(|d| d.to_string()),
                });
            }
            // A concurrent manifest_delete may have removed the link since it was written.
            if fs::symlink_metadata(link_path).is_err() {
                self.write_atomic(link_path, link_json)?;
            }
            if current.as_ref() == Some(digest) {
                return Ok(false);
            }
            match &tmp {
                Some(t) => fs::rename(t, &path)?,
                None => self.write_atomic(&path, value.as_bytes())?,
            }
            Ok(true)
        });
        match outcome {
            Ok(true) => {
                sync_dir(&tags_dir)?;
                Ok(())
            }
            other => {
                if let Some(t) = &tmp {
                    let _ = fs::remove_file(t);
                }
                other.map(|_| ())
            }
        }
    }

    fn manifest_get(&self, repo: &str, digest: &Digest) -> Result<Option<StoredManifest>> {
        let rdir = self.repo_dir(repo)?;
        let link_path = Self::manifest_link(&rdir, digest);
        let key = Self::cache_key(repo, digest);
        let link = match self.cache_get(&key) {
            Some(link) => {
                if let Err(e) = fs::symlink_metadata(&link_path) {
                    if is_not_found(&e) {
                        self.cache_remove(&key);
                        return Ok(None);
                    }
                    return Err(e.into());
                }
                link
            }
            None => match Self::read_link(&link_path)? {
                Some(l) => {
                    let l = Arc::new(l);
                    self.cache_put(key, Arc::clone(&l));
                    l
                }
                None => return Ok(None),
            },
        };
        let bytes = match fs::read(self.blob_path(digest)) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => {
                tracing::warn!(%repo, %digest, "manifest link without blob");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Some(StoredManifest {
            digest: digest.clone(),
            media_type: link.media_type.clone(),
            bytes: Bytes::from(bytes),
        }))
    }

    fn manifest_delete(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let rdir = self.repo_dir(repo)?;
        let link_path = Self::manifest_link(&rdir, digest);
        let link = match Self::read_link(&link_path) {
            Ok(Some(l)) => Some(l),
            Ok(None) => return Ok(false),
            // Unreadable link: remove it anyway (no referrer entry can be located from it).
            Err(StorageError::Corrupt(_)) => None,
            Err(e) => return Err(e),
        };
        match fs::remove_file(&link_path) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.cache_remove(&Self::cache_key(repo, digest));
        if let Some(subject) = link.and_then(|l| l.subject) {
            let entry = Self::referrer_entry(&rdir, &subject, digest);
            if let Err(e) = fs::remove_file(&entry)
                && !is_not_found(&e)
            {
                return Err(e.into());
            }
        }
        let tags_dir = rdir.join("_tags");
        for (tag, ty) in read_dir_entries(&tags_dir)? {
            if !ty.is_file() || !sigil_oci::name::is_valid_tag(&tag) {
                continue;
            }
            let path = tags_dir.join(&tag);
            self.with_tag_lock(repo, &tag, || -> Result<()> {
                if read_tag_file(&path).ok().flatten().as_ref() == Some(digest) {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            })?;
        }
        if let Some(parent) = link_path.parent() {
            sync_dir(parent)?;
        }
        Ok(true)
    }

    // ---- tags, repositories, referrers ----

    fn tag_delete(&self, repo: &str, tag: &str) -> Result<bool> {
        let rdir = self.repo_dir(repo)?;
        if !sigil_oci::name::is_valid_tag(tag) {
            return Ok(false);
        }
        let tags_dir = rdir.join("_tags");
        let path = tags_dir.join(tag);
        let removed = self.with_tag_lock(repo, tag, || match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        })?;
        if removed {
            sync_dir(&tags_dir)?;
        }
        Ok(removed)
    }

    fn tag_list(&self, repo: &str) -> Result<Vec<String>> {
        let rdir = self.repo_dir(repo)?;
        let mut tags: Vec<String> = read_dir_entries(&rdir.join("_tags"))?
            .into_iter()
            .filter(|(name, ty)| ty.is_file() && sigil_oci::name::is_valid_tag(name))
            .map(|(name, _)| name)
            .collect();
        tags.sort();
        Ok(tags)
    }

    fn repositories(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.repos.clone(), String::new())];
        while let Some((dir, name)) = stack.pop() {
            for (child, ty) in read_dir_entries(&dir)? {
                if !ty.is_dir() || child.starts_with('_') || child.starts_with('.') {
                    continue;
                }
                let path = dir.join(&child);
                let full = if name.is_empty() {
                    child
                } else {
                    format!("{name}/{child}")
                };
                if ["_manifests", "_layers", "_tags"]
                    .iter()
                    .any(|d| path.join(d).is_dir())
                {
                    out.push(full.clone());
                }
                stack.push((path, full));
            }
        }
        out.sort();
        Ok(out)
    }

    fn repository_exists(&self, repo: &str) -> Result<bool> {
        let rdir = self.repo_dir(repo)?;
        if has_digest_files(&rdir.join("_manifests"))?
            || has_digest_files(&rdir.join("_layers"))?
            || !read_dir_entries(&rdir.join("_tags"))?.is_empty()
        {
            return Ok(true);
        }
        Ok(self.upload_list()?.iter().any(|(r, _, _)| r == repo))
    }

    fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Descriptor>> {
        let rdir = self.repo_dir(repo)?;
        let dir = Self::referrer_dir(&rdir, subject);
        let mut out = Vec::new();
        for (name, ty) in read_dir_entries(&dir)? {
            if !ty.is_file() {
                continue;
            }
            let path = dir.join(&name);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let desc: Descriptor = match serde_json::from_slice(&bytes) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable referrer entry");
                    continue;
                }
            };
            if fs::symlink_metadata(Self::manifest_link(&rdir, &desc.digest)).is_ok() {
                out.push(desc);
            }
        }
        out.sort_by_cached_key(|d| d.digest.to_string());
        Ok(out)
    }
}

/// The upload data writer: idle (owning the file and hash state) or busy writing a batch on the
/// blocking pool.
enum Writer {
    Idle(Box<(File, Option<Digester>)>),
    Busy(tokio::task::JoinHandle<io::Result<(File, Option<Digester>)>>),
}

impl Writer {
    async fn idle(self) -> io::Result<(File, Option<Digester>)> {
        match self {
            Self::Idle(idle) => Ok(*idle),
            Self::Busy(j) => j.await.map_err(io::Error::other)?,
        }
    }
}

fn write_batch(
    mut file: File,
    mut hasher: Option<Digester>,
    chunks: Vec<Bytes>,
) -> io::Result<(File, Option<Digester>)> {
    for c in &chunks {
        file.write_all(c)?;
        if let Some(h) = hasher.as_mut() {
            h.update(c);
        }
    }
    Ok((file, hasher))
}

async fn truncate_upload(path: PathBuf, size: u64) {
    let res = tokio::task::spawn_blocking(move || {
        OpenOptions::new().write(true).open(&path)?.set_len(size)
    })
    .await;
    if !matches!(res, Ok(Ok(()))) {
        tracing::warn!("cannot truncate upload after a failed append");
    }
}

/// The body of `upload_append`, run as its own task owning the session lock. Data is written in
/// batches on the blocking pool while the next batch is read from the body.
async fn append_task(
    inner: Arc<Inner>,
    id: String,
    mut state: OwnedMutexGuard<SessionState>,
    start: Option<u64>,
    mut body: ByteStream,
) -> Result<u64> {
    if state.gone {
        return Err(StorageError::UploadUnknown);
    }
    let prev = state.size;
    if let Some(s) = start
        && s != prev
    {
        return Err(StorageError::RangeNotSatisfiable { size: prev });
    }
    let path = inner.upload_dir(&id).join("data");
    let open_path = path.clone();
    let file = tokio::task::spawn_blocking(move || -> Result<File> {
        let mut f = match OpenOptions::new().write(true).open(&open_path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Err(StorageError::UploadUnknown),
            Err(e) => return Err(e.into()),
        };
        if f.metadata()?.len() != prev {
            f.set_len(prev)?;
        }
        f.seek(SeekFrom::Start(prev))?;
        Ok(f)
    })
    .await
    .map_err(join_error)??;

    let mut writer = Writer::Idle(Box::new((file, state.hasher.clone())));
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    let mut size = prev;
    let mut body_err = None;
    loop {
        let done = match body.next().await {
            Some(Ok(chunk)) => {
                if !chunk.is_empty() {
                    batch_len += chunk.len();
                    batch.push(chunk);
                }
                false
            }
            Some(Err(e)) => {
                body_err = Some(e);
                true
            }
            None => true,
        };
        if body_err.is_none() && !batch.is_empty() && (done || batch_len >= WRITE_BATCH) {
            let (file, hasher) = match writer.idle().await {
                Ok(x) => x,
                Err(e) => {
                    truncate_upload(path, prev).await;
                    return Err(e.into());
                }
            };
            let chunks = std::mem::take(&mut batch);
            size += batch_len as u64;
            batch_len = 0;
            writer = Writer::Busy(tokio::task::spawn_blocking(move || {
                write_batch(file, hasher, chunks)
            }));
        }
        if done {
            break;
        }
    }
    let written = writer.idle().await;
    match (body_err, written) {
        (None, Ok((_file, hasher))) => {
            state.size = size;
            state.hasher = hasher;
            Ok(size)
        }
        (Some(e), _) => {
            truncate_upload(path, prev).await;
            Err(StorageError::Body(e))
        }
        (None, Err(e)) => {
            truncate_upload(path, prev).await;
            Err(e.into())
        }
    }
}

/// What a blocking blob open produced.
enum Opened {
    Whole(Bytes),
    Stream(File, u64),
}

fn file_stream(file: File, len: u64) -> ByteStream {
    let reader = tokio::fs::File::from_std(file).take(len);
    Box::pin(futures::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        match reader.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(reader))),
            Err(e) => Some((Err(e), None)),
        }
    }))
}

#[async_trait]
impl Storage for FsStorage {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let d = digest.clone();
        self.run(move |i| i.blob_size(&d)).await
    }

    async fn blob_read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        let path = self.inner.blob_path(digest);
        let (size, opened) = self
            .run(move |_| {
                let mut f = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if is_not_found(&e) => return Err(StorageError::NotFound),
                    Err(e) => return Err(e.into()),
                };
                let size = f.metadata()?.len();
                let (start, len) = match range {
                    None => (0, size),
                    Some(r) if r.start <= r.end && r.end < size => (r.start, r.end - r.start + 1),
                    Some(_) => return Err(StorageError::RangeNotSatisfiable { size }),
                };
                if start > 0 {
                    f.seek(SeekFrom::Start(start))?;
                }
                if len <= SMALL_READ {
                    let mut buf = Vec::with_capacity(len as usize);
                    (&mut f).take(len).read_to_end(&mut buf)?;
                    if buf.len() as u64 != len {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "blob shorter than its size",
                        )
                        .into());
                    }
                    Ok((size, Opened::Whole(Bytes::from(buf))))
                } else {
                    Ok((size, Opened::Stream(f, len)))
                }
            })
            .await?;
        let body: ByteStream = match opened {
            Opened::Whole(b) if b.is_empty() => Box::pin(futures::stream::empty()),
            Opened::Whole(b) => Box::pin(futures::stream::once(async move { Ok(b) })),
            Opened::Stream(f, len) => file_stream(f, len),
        };
        Ok(BlobReader { size, body })
    }

    async fn blob_list(&self) -> Result<Vec<Digest>> {
        self.run(|i| {
            let mut out = Vec::new();
            for (alg, ty) in read_dir_entries(&i.blobs)? {
                if !ty.is_dir() {
                    continue;
                }
                let alg_dir = i.blobs.join(&alg);
                for (prefix, ty) in read_dir_entries(&alg_dir)? {
                    if !ty.is_dir() {
                        continue;
                    }
                    for (enc, ty) in read_dir_entries(&alg_dir.join(&prefix))? {
                        if ty.is_file()
                            && let Ok(d) = Digest::parse(&format!("{alg}:{enc}"))
                        {
                            out.push(d);
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn blob_remove(&self, digest: &Digest) -> Result<bool> {
        let path = self.inner.blob_path(digest);
        self.run(move |_| match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn blob_age_secs(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.inner.blob_path(digest);
        self.run(move |_| match fs::metadata(&path) {
            Ok(m) => Ok(Some(age_secs(m.modified()?))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn blob_link(&self, repo: &str, digest: &Digest) -> Result<()> {
        let (repo, d) = (repo.to_owned(), digest.clone());
        self.run(move |i| i.blob_link(&repo, &d)).await
    }

    async fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let rdir = self.inner.repo_dir(repo)?;
        let d = digest.clone();
        self.run(move |i| {
            Ok(fs::symlink_metadata(Inner::layer_link(&rdir, &d)).is_ok()
                && fs::metadata(i.blob_path(&d)).is_ok())
        })
        .await
    }

    async fn blob_unlink(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let path = Inner::layer_link(&self.inner.repo_dir(repo)?, digest);
        self.run(move |_| match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn blob_links(&self, repo: &str) -> Result<Vec<Digest>> {
        let dir = self.inner.repo_dir(repo)?.join("_layers");
        self.run(move |_| Ok(list_digest_files(&dir)?)).await
    }

    async fn upload_start(&self, repo: &str) -> Result<String> {
        let repo_owned = repo.to_owned();
        let id = self.run(move |i| i.upload_start(&repo_owned)).await?;
        let session = Arc::new(Session {
            repo: repo.to_owned(),
            state: Arc::new(tokio::sync::Mutex::new(SessionState {
                size: 0,
                hasher: Digester::new(&Algorithm::Sha256).ok(),
                gone: false,
            })),
        });
        lock(&self.inner.sessions).insert(id.clone(), session);
        Ok(id)
    }

    async fn upload_status(&self, repo: &str, id: &str) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        let state = session.state.lock().await;
        if state.gone {
            return Err(StorageError::UploadUnknown);
        }
        Ok(UploadStatus { size: state.size })
    }

    async fn upload_append(
        &self,
        repo: &str,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let session = self.session(repo, id).await?;
        let guard = Arc::clone(&session.state).lock_owned().await;
        let task = append_task(Arc::clone(&self.inner), id.to_owned(), guard, start, body);
        // A task of its own: if this future is dropped, the append still finishes (or rolls back)
        // before the session lock is released.
        tokio::spawn(task).await.map_err(join_error)?
    }

    async fn upload_commit(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64> {
        if !digest.is_computable() {
            return Err(StorageError::UnsupportedDigest(
                digest.algorithm().to_string(),
            ));
        }
        let session = self.session(repo, id).await?;
        let guard = Arc::clone(&session.state).lock_owned().await;
        let (repo, id, d) = (repo.to_owned(), id.to_owned(), digest.clone());
        self.run(move |i| i.upload_commit(guard, &repo, &id, &d))
            .await
    }

    async fn upload_cancel(&self, repo: &str, id: &str) -> Result<()> {
        let session = self.session(repo, id).await?;
        let mut guard = Arc::clone(&session.state).lock_owned().await;
        if guard.gone {
            return Err(StorageError::UploadUnknown);
        }
        let id = id.to_owned();
        self.run(move |i| {
            i.end_session(&id, &mut guard);
            Ok(())
        })
        .await
    }

    async fn upload_list(&self) -> Result<Vec<(String, String, u64)>> {
        self.run(Inner::upload_list).await
    }

    async fn manifest_put(
        &self,
        repo: &str,
        manifest: NewManifest,
        tag: Option<(&str, TagCondition)>,
    ) -> Result<()> {
        check_repo(repo)?;
        if !manifest.digest.is_computable() {
            return Err(StorageError::UnsupportedDigest(
                manifest.digest.algorithm().to_string(),
            ));
        }
        if let Err(sigil_oci::OciError::DigestMismatch { expected, actual }) =
            manifest.digest.verify(&manifest.bytes)
        {
            return Err(StorageError::DigestMismatch { expected, actual });
        }
        let repo = repo.to_owned();
        let tag = tag.map(|(t, c)| (t.to_owned(), c));
        self.run(move |i| {
            i.manifest_put(&repo, &manifest, tag.as_ref().map(|(t, c)| (t.as_str(), c)))
        })
        .await
    }

    async fn manifest_get(&self, repo: &str, digest: &Digest) -> Result<Option<StoredManifest>> {
        let (repo, d) = (repo.to_owned(), digest.clone());
        self.run(move |i| i.manifest_get(&repo, &d)).await
    }

    async fn manifest_delete(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let (repo, d) = (repo.to_owned(), digest.clone());
        self.run(move |i| i.manifest_delete(&repo, &d)).await
    }

    async fn manifest_list(&self, repo: &str) -> Result<Vec<Digest>> {
        let dir = self.inner.repo_dir(repo)?.join("_manifests");
        self.run(move |_| Ok(list_digest_files(&dir)?)).await
    }

    async fn tag_get(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        let rdir = self.inner.repo_dir(repo)?;
        if !sigil_oci::name::is_valid_tag(tag) {
            return Ok(None);
        }
        let path = rdir.join("_tags").join(tag);
        self.run(move |_| read_tag_file(&path)).await
    }

    async fn tag_delete(&self, repo: &str, tag: &str) -> Result<bool> {
        let (repo, tag) = (repo.to_owned(), tag.to_owned());
        self.run(move |i| i.tag_delete(&repo, &tag)).await
    }

    async fn tag_list(&self, repo: &str) -> Result<Vec<String>> {
        let repo = repo.to_owned();
        self.run(move |i| i.tag_list(&repo)).await
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        self.run(Inner::repositories).await
    }

    async fn repository_exists(&self, repo: &str) -> Result<bool> {
        let repo = repo.to_owned();
        self.run(move |i| i.repository_exists(&repo)).await
    }

    async fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Descriptor>> {
        let (repo, s) = (repo.to_owned(), subject.clone());
        self.run(move |i| i.referrers(&repo, &s)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn body(chunks: Vec<Vec<u8>>) -> ByteStream {
        Box::pin(futures::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from(c))),
        ))
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
            .collect()
    }

    async fn put_blob(s: &FsStorage, repo: &str, bytes: &[u8]) -> Digest {
        let id = s.upload_start(repo).await.unwrap();
        let chunks = bytes.chunks(100_000).map(<[u8]>::to_vec).collect();
        s.upload_append(repo, &id, Some(0), body(chunks))
            .await
            .unwrap();
        let d = Digest::sha256(bytes);
        assert_eq!(
            s.upload_commit(repo, &id, &d).await.unwrap(),
            bytes.len() as u64
        );
        d
    }

    async fn read_all(r: BlobReader) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = r.body;
        while let Some(c) = body.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    async fn read(s: &FsStorage, d: &Digest, range: Option<(u64, u64)>) -> Result<Vec<u8>> {
        let r = s
            .blob_read(d, range.map(|(start, end)| ByteRange { start, end }))
            .await?;
        Ok(read_all(r).await)
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path());
                }
            }
        }
        out
    }

    fn manifest(json: &str) -> NewManifest {
        NewManifest {
            digest: Digest::sha256(json.as_bytes()),
            media_type: sigil_oci::media_type::OCI_MANIFEST.to_owned(),
            bytes: Bytes::from(json.to_owned()),
            referrer: None,
        }
    }

    fn referrer_of(subject: &Digest, n: u32) -> NewManifest {
        let json = format!(
            r#"{{"schemaVersion":2,"artifactType":"application/x-sig","n":{n},"subject":{{"mediaType":"x","digest":"{subject}","size":1}}}}"#
        );
        let mut m = manifest(&json);
        let mut desc = Descriptor::for_bytes(&m.media_type, json.as_bytes());
        desc.artifact_type = Some("application/x-sig".to_owned());
        m.referrer = Some((subject.clone(), desc));
        m
    }

    #[tokio::test]
    async fn upload_commit_read_back_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        for len in [0usize, 10, 300_000, 1_500_000] {
            let bytes = data(len, 7);
            let d = put_blob(&s, "lib/app", &bytes).await;
            assert_eq!(s.blob_size(&d).await.unwrap(), Some(len as u64));
            assert_eq!(read(&s, &d, None).await.unwrap(), bytes);
            assert!(s.blob_linked("lib/app", &d).await.unwrap());
            assert!(!s.blob_linked("other", &d).await.unwrap());
            if len == 0 {
                assert!(matches!(
                    read(&s, &d, Some((0, 0))).await,
                    Err(StorageError::RangeNotSatisfiable { size: 0 })
                ));
                continue;
            }
            let n = len as u64;
            assert_eq!(read(&s, &d, Some((0, 0))).await.unwrap(), &bytes[..1]);
            assert_eq!(read(&s, &d, Some((3, n - 1))).await.unwrap(), &bytes[3..]);
            let mid = n / 2;
            assert_eq!(
                read(&s, &d, Some((mid, n - 2))).await.unwrap(),
                &bytes[mid as usize..len - 1]
            );
            let r = s.blob_read(&d, Some(ByteRange { start: 1, end: 1 })).await;
            assert_eq!(r.unwrap().size, n, "size is the full blob size");
            for (a, b) in [(n, n), (0, n), (5, 4), (n + 10, n + 20)] {
                assert!(
                    matches!(
                        read(&s, &d, Some((a, b))).await,
                        Err(StorageError::RangeNotSatisfiable { size }) if size == n
                    ),
                    "range {a}-{b} of {n}"
                );
            }
        }
        let missing = Digest::sha256(b"missing");
        assert!(matches!(
            read(&s, &missing, None).await,
            Err(StorageError::NotFound)
        ));
        assert_eq!(s.blob_size(&missing).await.unwrap(), None);
        // Committed uploads leave nothing behind.
        assert!(s.upload_list().await.unwrap().is_empty());
        assert!(files_under(&dir.path().join("tmp")).is_empty());
        assert!(files_under(&dir.path().join("uploads")).is_empty());
    }

    #[tokio::test]
    async fn chunked_append_rejects_wrong_offset_and_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let id = s.upload_start("r").await.unwrap();
        assert_eq!(s.upload_status("r", &id).await.unwrap().size, 0);
        assert_eq!(
            s.upload_append("r", &id, Some(0), body(vec![b"abc".to_vec()]))
                .await
                .unwrap(),
            3
        );
        for wrong in [0, 2, 4, 100] {
            let e = s
                .upload_append("r", &id, Some(wrong), body(vec![b"XXXX".to_vec()]))
                .await;
            assert!(
                matches!(e, Err(StorageError::RangeNotSatisfiable { size: 3 })),
                "{e:?}"
            );
        }
        assert_eq!(s.upload_status("r", &id).await.unwrap().size, 3);
        // Without a start offset the chunk is appended.
        assert_eq!(
            s.upload_append("r", &id, None, body(vec![b"de".to_vec(), b"f".to_vec()]))
                .await
                .unwrap(),
            6
        );
        let d = Digest::sha256(b"abcdef");
        assert_eq!(s.upload_commit("r", &id, &d).await.unwrap(), 6);
        assert_eq!(read(&s, &d, None).await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn body_error_truncates_and_restores_hash_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let id = s.upload_start("r").await.unwrap();
        s.upload_append("r", &id, Some(0), body(vec![b"hello ".to_vec()]))
            .await
            .unwrap();
        let failing: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from(vec![b'x'; 700_000])),
            Ok(Bytes::from_static(b"partial")),
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
        ]));
        let e = s.upload_append("r", &id, Some(6), failing).await;
        assert!(matches!(e, Err(StorageError::Body(_))), "{e:?}");
        assert_eq!(s.upload_status("r", &id).await.unwrap().size, 6);
        let on_disk = dir.path().join("uploads").join(&id).join("data");
        assert_eq!(fs::read(&on_disk).unwrap(), b"hello ");
        s.upload_append("r", &id, Some(6), body(vec![b"world".to_vec()]))
            .await
            .unwrap();
        // The in-memory sha256 must not include the rolled-back bytes.
        let d = Digest::sha256(b"hello world");
        assert_eq!(s.upload_commit("r", &id, &d).await.unwrap(), 11);
        assert_eq!(read(&s, &d, None).await.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn digest_mismatch_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let id = s.upload_start("r").await.unwrap();
        s.upload_append("r", &id, None, body(vec![b"content".to_vec()]))
            .await
            .unwrap();
        let claimed = Digest::sha256(b"something else");
        let e = s.upload_commit("r", &id, &claimed).await;
        match e {
            Err(StorageError::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, claimed.to_string());
                assert_eq!(actual, Digest::sha256(b"content").to_string());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.blob_size(&claimed).await.unwrap(), None);
        assert_eq!(
            s.blob_size(&Digest::sha256(b"content")).await.unwrap(),
            None
        );
        assert!(files_under(&dir.path().join("blobs")).is_empty());
        assert!(files_under(&dir.path().join("uploads")).is_empty());
        assert!(s.blob_links("r").await.unwrap().is_empty());
        assert!(matches!(
            s.upload_status("r", &id).await,
            Err(StorageError::UploadUnknown)
        ));
    }

    #[tokio::test]
    async fn sha512_and_unsupported_digests() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let bytes = data(200_000, 3);
        let id = s.upload_start("r").await.unwrap();
        s.upload_append("r", &id, None, body(vec![bytes.clone()]))
            .await
            .unwrap();
        let bad = Digest::parse("blake3:abcdef").unwrap();
        assert!(matches!(
            s.upload_commit("r", &id, &bad).await,
            Err(StorageError::UnsupportedDigest(a)) if a == "blake3"
        ));
        // The session survives an unsupported algorithm.
        let d = Digest::compute(&Algorithm::Sha512, &bytes).unwrap();
        assert_eq!(s.upload_commit("r", &id, &d).await.unwrap(), 200_000);
        assert_eq!(read(&s, &d, None).await.unwrap(), bytes);
        assert_eq!(s.blob_list().await.unwrap(), vec![d.clone()]);
        assert_eq!(s.blob_links("r").await.unwrap(), vec![d]);
    }

    #[tokio::test]
    async fn uploads_resume_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let s = FsStorage::open(dir.path()).unwrap();
            let id = s.upload_start("r").await.unwrap();
            s.upload_append("r", &id, None, body(vec![b"first ".to_vec()]))
                .await
                .unwrap();
            id
        };
        let s = FsStorage::open(dir.path()).unwrap();
        assert_eq!(s.upload_status("r", &id).await.unwrap().size, 6);
        assert!(matches!(
            s.upload_status("other", &id).await,
            Err(StorageError::UploadUnknown)
        ));
        s.upload_append("r", &id, Some(6), body(vec![b"second".to_vec()]))
            .await
            .unwrap();
        let wrong = Digest::sha256(b"first");
        assert!(matches!(
            s.upload_commit("r", &id, &wrong).await,
            Err(StorageError::DigestMismatch { .. })
        ));
        // Mismatch removed the session; start again and commit properly after another restart.
        let id = s.upload_start("r").await.unwrap();
        s.upload_append("r", &id, None, body(vec![b"first ".to_vec()]))
            .await
            .unwrap();
        drop(s);
        let s = FsStorage::open(dir.path()).unwrap();
        s.upload_append("r", &id, Some(6), body(vec![b"second".to_vec()]))
            .await
            .unwrap();
        let d = Digest::sha256(b"first second");
        assert_eq!(s.upload_commit("r", &id, &d).await.unwrap(), 12);
        assert_eq!(read(&s, &d, None).await.unwrap(), b"first second");
    }

    #[tokio::test]
    async fn blobs_are_deduplicated_across_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let bytes = data(50_000, 1);
        let d1 = put_blob(&s, "a", &bytes).await;
        let d2 = put_blob(&s, "b/c", &bytes).await;
        assert_eq!(d1, d2);
        assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
        assert_eq!(s.blob_list().await.unwrap(), vec![d1.clone()]);
        assert_eq!(s.blob_links("a").await.unwrap(), vec![d1.clone()]);
        assert_eq!(s.blob_links("b/c").await.unwrap(), vec![d1.clone()]);
        // Mount into a third repository; unlink from one leaves the others.
        s.blob_link("d", &d1).await.unwrap();
        assert!(s.blob_linked("d", &d1).await.unwrap());
        assert!(s.blob_unlink("a", &d1).await.unwrap());
        assert!(!s.blob_unlink("a", &d1).await.unwrap());
        assert!(!s.blob_linked("a", &d1).await.unwrap());
        assert!(s.blob_linked("b/c", &d1).await.unwrap());
        assert!(matches!(
            s.blob_link("d", &Digest::sha256(b"nope")).await,
            Err(StorageError::NotFound)
        ));
        // Removing the global blob makes links dangle: no longer "linked".
        assert!(s.blob_remove(&d1).await.unwrap());
        assert!(!s.blob_remove(&d1).await.unwrap());
        assert!(!s.blob_linked("b/c", &d1).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_uploads_of_the_same_blob() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let bytes = Arc::new(data(2_000_000, 9));
        let d = Digest::sha256(&bytes);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (s, bytes, d) = (s.clone(), Arc::clone(&bytes), d.clone());
            tasks.push(tokio::spawn(async move {
                let repo = format!("repo{}", i % 3);
                let id = s.upload_start(&repo).await.unwrap();
                let mut offset = 0u64;
                for chunk in bytes.chunks(300_000) {
                    offset = s
                        .upload_append(&repo, &id, Some(offset), body(vec![chunk.to_vec()]))
                        .await
                        .unwrap();
                }
                s.upload_commit(&repo, &id, &d).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 2_000_000);
        }
        assert_eq!(read(&s, &d, None).await.unwrap(), *bytes);
        assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
        assert!(files_under(&dir.path().join("uploads")).is_empty());
        assert!(files_under(&dir.path().join("tmp")).is_empty());
        for r in ["repo0", "repo1", "repo2"] {
            assert!(s.blob_linked(r, &d).await.unwrap());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_to_one_session_do_not_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let id = s.upload_start("r").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..10u8 {
            let (s, id) = (s.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                // Each body is many small chunks of one byte value.
                let chunks = (0..50).map(|_| vec![b'a' + i; 1000]).collect();
                s.upload_append("r", &id, None, body(chunks)).await.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let on_disk = fs::read(dir.path().join("uploads").join(&id).join("data")).unwrap();
        assert_eq!(on_disk.len(), 500_000);
        for block in on_disk.chunks(50_000) {
            assert!(block.iter().all(|b| *b == block[0]), "interleaved append");
        }
        let d = Digest::sha256(&on_disk);
        assert_eq!(s.upload_commit("r", &id, &d).await.unwrap(), 500_000);
    }

    #[tokio::test]
    async fn upload_list_and_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let a = s.upload_start("x/a").await.unwrap();
        let b = s.upload_start("y").await.unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let list = s.upload_list().await.unwrap();
        let mut got: Vec<(String, String)> = list
            .iter()
            .map(|(r, i, _)| (r.clone(), i.clone()))
            .collect();
        got.sort();
        let mut want = vec![("x/a".to_owned(), a.clone()), ("y".to_owned(), b.clone())];
        want.sort();
        assert_eq!(got, want);
        assert!(list.iter().all(|(_, _, age)| *age < 60));
        assert!(matches!(
            s.upload_cancel("y", &a).await,
            Err(StorageError::UploadUnknown)
        ));
        s.upload_cancel("x/a", &a).await.unwrap();
        assert!(matches!(
            s.upload_cancel("x/a", &a).await,
            Err(StorageError::UploadUnknown)
        ));
        assert!(matches!(
            s.upload_append("x/a", &a, None, body(vec![b"z".to_vec()]))
                .await,
            Err(StorageError::UploadUnknown)
        ));
        let list = s.upload_list().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].1, b);
    }

    #[tokio::test]
    async fn manifest_put_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let img = manifest(r#"{"schemaVersion":2,"config":{}}"#);
        s.manifest_put("r", img.clone(), Some(("v1", TagCondition::Any)))
            .await
            .unwrap();
        s.manifest_put("r", img.clone(), Some(("v2", TagCondition::Any)))
            .await
            .unwrap();
        let other = manifest(r#"{"schemaVersion":2,"other":true}"#);
        s.manifest_put("r", other.clone(), Some(("keep", TagCondition::Any)))
            .await
            .unwrap();
        let sig = referrer_of(&img.digest, 1);
        s.manifest_put("r", sig.clone(), None).await.unwrap();

        let got = s.manifest_get("r", &img.digest).await.unwrap().unwrap();
        assert_eq!(got.bytes, img.bytes);
        assert_eq!(got.media_type, img.media_type);
        assert_eq!(got.digest, img.digest);
        assert!(
            s.manifest_get("other", &img.digest)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            s.tag_get("r", "v1").await.unwrap(),
            Some(img.digest.clone())
        );
        assert_eq!(s.tag_list("r").await.unwrap(), ["keep", "v1", "v2"]);
        let mut all = vec![img.digest.clone(), other.digest.clone(), sig.digest.clone()];
        all.sort();
        assert_eq!(s.manifest_list("r").await.unwrap(), all);
        assert_eq!(s.referrers("r", &img.digest).await.unwrap().len(), 1);
        assert_eq!(s.referrers("r", &sig.digest).await.unwrap().len(), 0);

        // Deleting the referrer removes its entry.
        assert!(s.manifest_delete("r", &sig.digest).await.unwrap());
        assert!(s.referrers("r", &img.digest).await.unwrap().is_empty());
        let entries = files_under(&dir.path().join("repos/r/_referrers"));
        assert!(entries.is_empty(), "{entries:?}");

        // Deleting the image removes every tag pointing at it, only those.
        assert!(s.manifest_delete("r", &img.digest).await.unwrap());
        assert!(!s.manifest_delete("r", &img.digest).await.unwrap());
        assert!(s.manifest_get("r", &img.digest).await.unwrap().is_none());
        assert_eq!(s.tag_get("r", "v1").await.unwrap(), None);
        assert_eq!(s.tag_get("r", "v2").await.unwrap(), None);
        assert_eq!(s.tag_list("r").await.unwrap(), ["keep"]);
        assert_eq!(
            s.manifest_list("r").await.unwrap(),
            vec![other.digest.clone()]
        );
        // The bytes stay in the global store until GC.
        assert!(s.blob_size(&img.digest).await.unwrap().is_some());
        // Re-pushing restores it.
        s.manifest_put("r", img.clone(), None).await.unwrap();
        assert!(s.manifest_get("r", &img.digest).await.unwrap().is_some());

        // tag_delete.
        assert!(s.tag_delete("r", "keep").await.unwrap());
        assert!(!s.tag_delete("r", "keep").await.unwrap());
        assert!(s.tag_list("r").await.unwrap().is_empty());
        assert!(s.manifest_get("r", &other.digest).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn manifest_put_rejects_wrong_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let mut m = manifest("{}");
        m.digest = Digest::sha256(b"[]");
        assert!(matches!(
            s.manifest_put("r", m.clone(), None).await,
            Err(StorageError::DigestMismatch { .. })
        ));
        assert!(s.manifest_get("r", &m.digest).await.unwrap().is_none());
        assert!(files_under(&dir.path().join("blobs")).is_empty());
    }

    #[tokio::test]
    async fn manifest_get_sees_external_deletion_despite_cache() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let m = manifest(r#"{"a":1}"#);
        s.manifest_put("r", m.clone(), None).await.unwrap();
        assert!(s.manifest_get("r", &m.digest).await.unwrap().is_some());
        // Another process (a second FsStorage on the same root) deletes it.
        let other = FsStorage::open(dir.path()).unwrap();
        assert!(other.manifest_delete("r", &m.digest).await.unwrap());
        assert!(s.manifest_get("r", &m.digest).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn referrers_are_sorted_and_skip_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        // The subject need not exist.
        let subject = Digest::sha256(b"subject");
        let refs: Vec<NewManifest> = (0..5).map(|n| referrer_of(&subject, n)).collect();
        for r in &refs {
            s.manifest_put("r", r.clone(), None).await.unwrap();
        }
        // Another repository's referrers are separate.
        s.manifest_put("q", referrer_of(&subject, 99), None)
            .await
            .unwrap();
        let got = s.referrers("r", &subject).await.unwrap();
        let mut want: Vec<Descriptor> =
            refs.iter().map(|r| r.referrer.clone().unwrap().1).collect();
        want.sort_by_key(|d| d.digest.to_string());
        assert_eq!(got, want);
        assert_eq!(got[0].artifact_type.as_deref(), Some("application/x-sig"));
        // A referrer whose link disappeared (say a crash between removals) is skipped.
        let gone = &want[2].digest;
        fs::remove_file(Inner::manifest_link(&dir.path().join("repos/r"), gone)).unwrap();
        let got = s.referrers("r", &subject).await.unwrap();
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|d| &d.digest != gone));
        assert!(
            s.referrers("r", &Digest::sha256(b"none"))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn tag_conditions() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let m1 = manifest(r#"{"v":1}"#);
        let m2 = manifest(r#"{"v":2}"#);
        let m3 = manifest(r#"{"v":3}"#);
        let (d1, d2, d3) = (m1.digest.clone(), m2.digest.clone(), m3.digest.clone());
        let failed = |r: Result<()>, want: Option<&Digest>| match r {
            Err(StorageError::PreconditionFailed { current }) => {
                assert_eq!(current, want.map(ToString::to_string));
            }
            other => panic!("expected PreconditionFailed, got {other:?}"),
        };

        failed(
            s.manifest_put("r", m1.clone(), Some(("t", TagCondition::Exists)))
                .await,
            None,
        );
        failed(
            s.manifest_put(
                "r",
                m1.clone(),
                Some(("t", TagCondition::CurrentIs(vec![d1.clone()]))),
            )
            .await,
            None,
        );
        // The manifest is stored even though the tag update failed.
        assert!(s.manifest_get("r", &d1).await.unwrap().is_some());
        assert_eq!(s.tag_get("r", "t").await.unwrap(), None);

        s.manifest_put("r", m1.clone(), Some(("t", TagCondition::Absent)))
            .await
            .unwrap();
        assert_eq!(s.tag_get("r", "t").await.unwrap(), Some(d1.clone()));
        // Absent fails even when the tag already points at the same manifest.
        failed(
            s.manifest_put("r", m1.clone(), Some(("t", TagCondition::Absent)))
                .await,
            Some(&d1),
        );
        failed(
            s.manifest_put("r", m2.clone(), Some(("t", TagCondition::Absent)))
                .await,
            Some(&d1),
        );
        failed(
            s.manifest_put(
                "r",
                m2.clone(),
                Some(("t", TagCondition::CurrentIs(vec![d2.clone(), d3.clone()]))),
            )
            .await,
            Some(&d1),
        );
        assert_eq!(s.tag_get("r", "t").await.unwrap(), Some(d1.clone()));
        s.manifest_put(
            "r",
            m2.clone(),
            Some(("t", TagCondition::CurrentIs(vec![d3.clone(), d1.clone()]))),
        )
        .await
        .unwrap();
        assert_eq!(s.tag_get("r", "t").await.unwrap(), Some(d2.clone()));
        failed(
            s.manifest_put(
                "r",
                m3.clone(),
                Some(("t", TagCondition::CurrentIsNot(vec![d2.clone()]))),
            )
            .await,
            Some(&d2),
        );
        s.manifest_put(
            "r",
            m3.clone(),
            Some(("t", TagCondition::CurrentIsNot(vec![d1.clone()]))),
        )
        .await
        .unwrap();
        assert_eq!(s.tag_get("r", "t").await.unwrap(), Some(d3.clone()));
        s.manifest_put("r", m1.clone(), Some(("t", TagCondition::Exists)))
            .await
            .unwrap();
        assert_eq!(s.tag_get("r", "t").await.unwrap(), Some(d1.clone()));
        // CurrentIsNot holds for an absent tag.
        s.manifest_put(
            "r",
            m2.clone(),
            Some(("u", TagCondition::CurrentIsNot(vec![d2.clone()]))),
        )
        .await
        .unwrap();
        assert_eq!(s.tag_get("r", "u").await.unwrap(), Some(d2));
        // No temporary files left behind by failed conditions.
        assert!(files_under(&dir.path().join("tmp")).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_compare_and_set_loses_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..20u32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut retries = 0u32;
                loop {
                    let current = s.tag_get("r", "list").await.unwrap();
                    let mut items: Vec<u32> = match &current {
                        Some(d) => {
                            let m = s.manifest_get("r", d).await.unwrap().unwrap();
                            serde_json::from_slice(&m.bytes).unwrap()
                        }
                        None => Vec::new(),
                    };
                    items.push(i);
                    let json = serde_json::to_string(&items).unwrap();
                    let cond = match current {
                        Some(d) => TagCondition::CurrentIs(vec![d]),
                        None => TagCondition::Absent,
                    };
                    match s
                        .manifest_put("r", manifest(&json), Some(("list", cond)))
                        .await
                    {
                        Ok(()) => return retries,
                        Err(StorageError::PreconditionFailed { .. }) => retries += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
        let mut total_retries = 0;
        for t in tasks {
            total_retries += t.await.unwrap();
        }
        let d = s.tag_get("r", "list").await.unwrap().unwrap();
        let m = s.manifest_get("r", &d).await.unwrap().unwrap();
        let mut items: Vec<u32> = serde_json::from_slice(&m.bytes).unwrap();
        items.sort_unstable();
        assert_eq!(
            items,
            (0..20).collect::<Vec<_>>(),
            "retries: {total_retries}"
        );
    }

    #[tokio::test]
    async fn path_traversal_is_rejected() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        let s = FsStorage::open(&root).unwrap();
        let m = manifest("{}");
        for bad in [
            "",
            "..",
            "../x",
            "a/../b",
            "a/..",
            "/abs",
            "a//b",
            "a/",
            "_x",
            "a/_manifests",
            "a/_tags",
            ".hidden",
            "a/.b",
            "A",
            "a\\b",
            "a\0b",
        ] {
            assert!(s.upload_start(bad).await.is_err(), "{bad:?}");
            assert!(s.blob_links(bad).await.is_err(), "{bad:?}");
            assert!(s.tag_list(bad).await.is_err(), "{bad:?}");
            assert!(
                s.manifest_put(bad, m.clone(), None).await.is_err(),
                "{bad:?}"
            );
            assert!(s.manifest_get(bad, &m.digest).await.is_err(), "{bad:?}");
            assert!(s.repository_exists(bad).await.is_err(), "{bad:?}");
        }
        for bad_tag in ["../x", "a/b", ".x", "-x", "", "x y"] {
            assert!(
                s.manifest_put("r", m.clone(), Some((bad_tag, TagCondition::Any)))
                    .await
                    .is_err(),
                "{bad_tag:?}"
            );
            assert_eq!(s.tag_get("r", bad_tag).await.unwrap(), None);
            assert!(!s.tag_delete("r", bad_tag).await.unwrap());
        }
        for bad_id in ["../../tmp", "", "ABCDEF0123456789ABCDEF0123456789", "0123"] {
            assert!(matches!(
                s.upload_status("r", bad_id).await,
                Err(StorageError::UploadUnknown)
            ));
            assert!(matches!(
                s.upload_append("r", bad_id, None, body(vec![b"x".to_vec()]))
                    .await,
                Err(StorageError::UploadUnknown)
            ));
        }
        // Nothing was created next to the root.
        let siblings: Vec<_> = fs::read_dir(outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(siblings, vec![std::ffi::OsString::from("root")]);
        assert!(s.tag_list("r").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn repositories_listing() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        assert!(s.repositories().await.unwrap().is_empty());
        put_blob(&s, "a", b"1").await;
        s.manifest_put("a/b", manifest(r#"{"x":1}"#), None)
            .await
            .unwrap();
        s.manifest_put(
            "c/d/e",
            manifest(r#"{"x":2}"#),
            Some(("t", TagCondition::Any)),
        )
        .await
        .unwrap();
        s.upload_start("only/upload").await.unwrap();
        assert_eq!(s.repositories().await.unwrap(), ["a", "a/b", "c/d/e"]);
        for (repo, exists) in [
            ("a", true),
            ("a/b", true),
            ("c/d/e", true),
            ("c/d", false),
            ("c", false),
            ("zzz", false),
            ("only/upload", true),
            ("only", false),
        ] {
            assert_eq!(s.repository_exists(repo).await.unwrap(), exists, "{repo}");
        }
    }

    #[tokio::test]
    async fn stale_temporary_files_are_cleaned_at_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(FsStorage::open(dir.path()).unwrap());
        let tmp = dir.path().join("tmp");
        let old = tmp.join("old.tmp");
        let fresh = tmp.join("fresh.tmp");
        fs::write(&old, b"partial").unwrap();
        fs::write(&fresh, b"in use").unwrap();
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        drop(FsStorage::open(dir.path()).unwrap());
        assert!(!old.exists());
        assert!(fresh.exists());
    }

    #[tokio::test]
    async fn linking_and_recommitting_refresh_blob_age() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let d = put_blob(&s, "a", b"aging").await;
        let path = s.inner.blob_path(&d);
        let age_back = || {
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(7200))
                .unwrap();
        };
        age_back();
        assert!(s.blob_age_secs(&d).await.unwrap().unwrap() >= 7199);
        s.blob_link("b", &d).await.unwrap();
        assert!(s.blob_age_secs(&d).await.unwrap().unwrap() < 60);
        age_back();
        put_blob(&s, "c", b"aging").await;
        assert!(s.blob_age_secs(&d).await.unwrap().unwrap() < 60);
        assert_eq!(s.blob_age_secs(&Digest::sha256(b"x")).await.unwrap(), None);
    }
}
