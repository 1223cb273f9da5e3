//! [`Referrers::pull`]: write an artifact's files into a directory by their titles.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sigil_oci::{Digest, Manifest, Reference, media_type};
use tokio::io::AsyncWriteExt as _;

use crate::ANNOTATION_TITLE;
use crate::error::ArtifactError;
use crate::referrers::Referrers;

/// A file written by [`Referrers::pull`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulledFile {
    /// The layer title (file name).
    pub title: String,
    /// Where it was written.
    pub path: PathBuf,
    /// The layer digest (verified).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// Checks that a layer title is a relative path that stays inside the output directory: not empty, not
/// absolute, `/`-separated components that are neither empty nor `.`/`..`, no backslashes, no NUL or
/// other control characters. Nested titles (`docs/readme.md`, as `oras push dir/file` writes) are
/// allowed and create subdirectories.
pub fn check_title(title: &str) -> Result<(), ArtifactError> {
    let bad = |reason| {
        Err(ArtifactError::UnsafeTitle {
            title: title.to_owned(),
            reason,
        })
    };
    if title.is_empty() {
        return bad("empty");
    }
    if title.contains('\\') {
        return bad("it contains a backslash");
    }
    if title.starts_with('/') {
        return bad("it is an absolute path");
    }
    if title
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("it has an empty, `.` or `..` path component");
    }
    if title.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    if Path::new(title).is_absolute() || (cfg!(windows) && title.contains(':')) {
        return bad("it is an absolute path");
    }
    Ok(())
}

impl Referrers {
    /// Writes the layers of the image manifest `artifact` into `dir` (created if missing) under their
    /// `org.opencontainers.image.title`. Every title is checked before anything is written; each file
    /// is streamed into a temporary file in `dir`, verified against its digest and size, then renamed
    /// into place. Layers without a title are skipped.
    pub async fn pull(
        &self,
        artifact: &Reference,
        dir: &Path,
    ) -> Result<Vec<PulledFile>, ArtifactError> {
        let m = match self.client().get_manifest(artifact).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => {
                return Err(ArtifactError::NotFound {
                    reference: artifact.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let Manifest::Image(im) = m.parse()? else {
            return Err(ArtifactError::Unusable {
                reference: artifact.to_string(),
                message: format!("a {} has no files to pull", m.media_type),
            });
        };
        let mut plan = Vec::new();
        let mut titles = HashSet::new();
        for l in &im.layers {
            let Some(title) = l.annotation(ANNOTATION_TITLE) else {
                tracing::warn!(digest = %l.digest, "layer without a title; skipped");
                continue;
            };
            check_title(title)?;
            if !titles.insert(title.to_owned()) {
                return Err(ArtifactError::UnsafeTitle {
                    title: title.to_owned(),
                    reason: "two layers have this title",
                });
            }
            if media_type::is_non_distributable(&l.media_type) {
                tracing::warn!(%title, "non-distributable layer; skipped");
                continue;
            }
            plan.push((title.to_owned(), l.clone()));
        }
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ArtifactError::io(dir, e))?;
        let repo = artifact.with_digest(m.digest.clone());
        let mut out = Vec::new();
        for (title, layer) in plan {
            let dest = dir.join(&title);
            let parent = dest.parent().unwrap_or(dir).to_path_buf();
            tokio::fs::create_dir_all(&parent)
                .await
                .map_err(|e| ArtifactError::io(&parent, e))?;
            // An existing symlink inside `dir` must not carry a nested title outside it.
            let (real_dir, real_parent) = (
                tokio::fs::canonicalize(dir)
                    .await
                    .map_err(|e| ArtifactError::io(dir, e))?,
                tokio::fs::canonicalize(&parent)
                    .await
                    .map_err(|e| ArtifactError::io(&parent, e))?,
            );
            if !real_parent.starts_with(&real_dir) {
                return Err(ArtifactError::UnsafeTitle {
                    title: title.clone(),
                    reason: "it leads outside the output directory through a symlink",
                });
            }
            let file_name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = parent.join(format!(
                ".{file_name}.sigil-{:x}.tmp",
                crate::fallback::jitter(0, u64::MAX - 1)
            ));
            let result = self.download(&repo, &layer.digest, layer.size, &tmp).await;
            if let Err(e) = result {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
            if let Err(e) = tokio::fs::rename(&tmp, &dest).await {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(ArtifactError::io(&dest, e));
            }
            out.push(PulledFile {
                title,
                path: dest,
                digest: layer.digest.clone(),
                size: layer.size,
            });
        }
        Ok(out)
    }

    async fn download(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        tmp: &Path,
    ) -> Result<(), ArtifactError> {
        let mut stream = self.client().get_blob(repo, digest, Some(size)).await?;
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .await
            .map_err(|e| ArtifactError::io(tmp, e))?;
        while let Some(chunk) = stream.next_chunk().await {
            let chunk = chunk?;
            f.write_all(&chunk)
                .await
                .map_err(|e| ArtifactError::io(tmp, e))?;
        }
        f.sync_all().await.map_err(|e| ArtifactError::io(tmp, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_that_escape_are_refused() {
        for ok in ["sbom.json", "a b.txt", ".hidden", "..dots", "x..y"] {
            assert!(check_title(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "/etc/passwd",
            "../x",
            "a//b",
            "a/./b",
            "a/../../b",
            "a/",
            "a\\b",
            "..\\x",
            "x\0y",
            "line\nbreak",
        ] {
            assert!(check_title(bad).is_err(), "{bad:?}");
        }
        for good in ["sbom.json", "docs/readme.md", "a/b/c.txt", ".hidden"] {
            assert!(check_title(good).is_ok(), "{good:?}");
        }
    }
}
