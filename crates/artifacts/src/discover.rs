//! [`Referrers::discover`]: the referrers tree of an image, and its tree/table renderings.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::Serialize;
use sigil_client::ClientError;
use sigil_oci::{Descriptor, Digest, Manifest, Platform, Reference};

use crate::error::ArtifactError;
use crate::referrers::Referrers;

/// Deepest referrers-of-referrers chain followed without an explicit `--depth`.
const MAX_DEPTH: usize = 64;

/// What to discover.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Only referrers of these artifact types (all when empty); applies at every level.
    pub artifact_types: Vec<String>,
    /// Levels of referrers to follow (1 = direct referrers only); `None` = unlimited.
    pub depth: Option<usize>,
    /// Also look up cosign-style digest tags (`sha256-<hex>.sig/.att/.sbom`).
    pub digest_tags: bool,
    /// For an index subject: only this platform's child.
    pub platform: Option<Platform>,
}

/// A referrer and its own referrers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferrerNode {
    /// The referrer's descriptor, as listed.
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// Its referrers.
    pub referrers: Vec<ReferrerNode>,
}

/// A cosign-style digest tag and what it points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestTag {
    /// The tag (`sha256-<hex>.sig`).
    pub tag: String,
    /// What it points to.
    #[serde(flatten)]
    pub descriptor: Descriptor,
}

/// A subject (the image asked for, or a platform child of an index) with its referrers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectNode {
    /// `registry/repository@digest`.
    pub reference: String,
    /// Media type, when known (a digest reference is not fetched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The digest.
    pub digest: Digest,
    /// Size, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The platform of an index child.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Referrers, recursively.
    pub referrers: Vec<ReferrerNode>,
    /// For an index: its children with their referrers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<SubjectNode>,
    /// Cosign-style digest tags of this subject (with `digest_tags`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digest_tags: Vec<DigestTag>,
}

impl SubjectNode {
    /// Every referrer in the tree (depth-first), with its depth (1 = direct) and subject digest.
    pub fn flatten(&self) -> Vec<(usize, &Digest, &ReferrerNode)> {
        fn walk<'a>(
            out: &mut Vec<(usize, &'a Digest, &'a ReferrerNode)>,
            depth: usize,
            subject: &'a Digest,
            nodes: &'a [ReferrerNode],
        ) {
            for n in nodes {
                out.push((depth, subject, n));
                walk(out, depth + 1, &n.descriptor.digest, &n.referrers);
            }
        }
        let mut out = Vec::new();
        walk(&mut out, 1, &self.digest, &self.referrers);
        for c in &self.manifests {
            out.extend(c.flatten());
        }
        out
    }
}

impl Referrers {
    /// The referrers tree of `image`. The subject is fetched first (one GET, by tag or digest): that
    /// proves it exists and tells whether it is an index, whose per-platform children are then searched
    /// too. `--platform` keeps only the chosen child.
    pub async fn discover(
        &self,
        image: &Reference,
        opts: &DiscoverOptions,
    ) -> Result<SubjectNode, ArtifactError> {
        let (digest, media_type, size, children) = {
            {
                let m = match self.client().get_manifest(image).await {
                    Ok(m) => m,
                    Err(e) if e.is_not_found() => {
                        return Err(ArtifactError::NotFound {
                            reference: image.to_string(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut children = match m.parse()? {
                    Manifest::Index(i) => i.manifests,
                    _ => Vec::new(),
                };
                if let Some(p) = &opts.platform {
                    if !m.is_index() {
                        return Err(ArtifactError::Unusable {
                            reference: image.to_string(),
                            message: format!(
                                "--platform needs an index, this is a {}",
                                m.media_type
                            ),
                        });
                    }
                    let chosen = sigil_client::resolve_platform(&m.bytes, p)?;
                    children.retain(|c| c.digest == chosen.digest);
                }
                (
                    m.digest.clone(),
                    Some(m.media_type.clone()),
                    Some(m.bytes.len() as u64),
                    children,
                )
            }
        };
        let mut root = self
            .subject_node(image, digest, media_type, size, None, opts)
            .await?;
        for c in children {
            let node = self
                .subject_node(
                    image,
                    c.digest.clone(),
                    Some(c.media_type.clone()),
                    Some(c.size),
                    c.platform.clone(),
                    opts,
                )
                .await?;
            root.manifests.push(node);
        }
        Ok(root)
    }

    async fn subject_node(
        &self,
        repo: &Reference,
        digest: Digest,
        media_type: Option<String>,
        size: Option<u64>,
        platform: Option<Platform>,
        opts: &DiscoverOptions,
    ) -> Result<SubjectNode, ArtifactError> {
        let depth = opts.depth.unwrap_or(MAX_DEPTH).min(MAX_DEPTH);
        let mut path = HashSet::from([digest.clone()]);
        let referrers = self
            .referrer_tree(repo, &digest, depth, &opts.artifact_types, &mut path)
            .await?;
        let digest_tags = if opts.digest_tags {
            self.digest_tags_of(repo, &digest).await?
        } else {
            Vec::new()
        };
        Ok(SubjectNode {
            reference: format!("{}@{digest}", repo.repository_name()),
            media_type,
            digest,
            size,
            platform,
            referrers,
            manifests: Vec::new(),
            digest_tags,
        })
    }

    /// Referrers of `subject` down to `depth` levels. `path` guards against cycles a registry could
    /// fabricate.
    fn referrer_tree<'a>(
        &'a self,
        repo: &'a Reference,
        subject: &'a Digest,
        depth: usize,
        types: &'a [String],
        path: &'a mut HashSet<Digest>,
    ) -> futures::future::BoxFuture<'a, Result<Vec<ReferrerNode>, ArtifactError>> {
        Box::pin(async move {
            if depth == 0 {
                return Ok(Vec::new());
            }
            let descs = self.list(repo, subject, types).await?;
            let mut out = Vec::with_capacity(descs.len());
            for d in descs {
                if !path.insert(d.digest.clone()) {
                    return Err(ArtifactError::InvalidReferrers {
                        repository: repo.repository_name(),
                        subject: subject.to_string(),
                        message: format!("{} refers to itself through its referrers", d.digest),
                    });
                }
                let referrers = self
                    .referrer_tree(repo, &d.digest, depth - 1, types, path)
                    .await?;
                path.remove(&d.digest);
                out.push(ReferrerNode {
                    descriptor: d,
                    referrers,
                });
            }
            Ok(out)
        })
    }

    /// Cosign-style digest tags of `subject` (`<alg>-<hex>.sig|.att|.sbom`), resolved with a HEAD each.
    pub(crate) async fn digest_tags_of(
        &self,
        repo: &Reference,
        subject: &Digest,
    ) -> Result<Vec<DigestTag>, ArtifactError> {
        let tags = self.tags(repo).await?;
        let mut out = Vec::new();
        for t in crate::copy::matching_digest_tags(&tags, subject) {
            match self.client().head_manifest(&repo.with_tag(t)).await {
                Ok(Some(d)) => out.push(DigestTag {
                    tag: t.to_owned(),
                    descriptor: d,
                }),
                Ok(None) => {}
                Err(ClientError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}

/// One line of a rendered tree and what hangs below it.
struct Line {
    label: String,
    children: Vec<Line>,
}

/// Referrers grouped by artifact type (in order of first appearance), as `oras discover -o tree`.
fn referrer_lines(nodes: &[ReferrerNode]) -> Vec<Line> {
    let mut groups: Vec<Line> = Vec::new();
    for n in nodes {
        let at = n
            .descriptor
            .artifact_type
            .clone()
            .unwrap_or_else(|| n.descriptor.media_type.clone());
        let line = Line {
            label: n.descriptor.digest.to_string(),
            children: referrer_lines(&n.referrers),
        };
        match groups.iter_mut().find(|g| g.label == at) {
            Some(g) => g.children.push(line),
            None => groups.push(Line {
                label: at,
                children: vec![line],
            }),
        }
    }
    groups
}

fn subject_lines(s: &SubjectNode) -> Vec<Line> {
    let mut lines = referrer_lines(&s.referrers);
    for t in &s.digest_tags {
        lines.push(Line {
            label: format!("[tag] {}", t.tag),
            children: vec![Line {
                label: t.descriptor.digest.to_string(),
                children: Vec::new(),
            }],
        });
    }
    for c in &s.manifests {
        let label = match &c.platform {
            Some(p) => format!("[{p}] {}", c.digest),
            None => format!("[manifest] {}", c.digest),
        };
        lines.push(Line {
            label,
            children: subject_lines(c),
        });
    }
    lines
}

fn draw(out: &mut String, lines: &[Line], prefix: &str) {
    for (i, l) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let _ = writeln!(
            out,
            "{prefix}{}{}",
            if last { "└── " } else { "├── " },
            l.label
        );
        let child_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
        draw(out, &l.children, &child_prefix);
    }
}

/// Renders like `oras discover -o tree`: the root `registry/repo@digest`, then per artifact type a
/// line with the type and below it the referrers' digests (each with its own referrers). Index
/// children appear as `[os/arch] sha256:...` lines, digest tags as `[tag] sha256-<hex>.sig`.
pub fn render_tree(root: &SubjectNode) -> String {
    let mut out = format!("{}\n", root.reference);
    draw(&mut out, &subject_lines(root), "");
    out
}

/// One referrer per line: depth (1 = direct), digest, artifact type, subject digest; columns
/// separated by two spaces and aligned. Empty when there are no referrers.
pub fn render_table(root: &SubjectNode) -> String {
    let rows: Vec<[String; 4]> = root
        .flatten()
        .into_iter()
        .map(|(depth, subject, n)| {
            [
                depth.to_string(),
                n.descriptor.digest.to_string(),
                n.descriptor
                    .artifact_type
                    .clone()
                    .unwrap_or_else(|| "-".into()),
                subject.to_string(),
            ]
        })
        .collect();
    let mut widths = [0usize; 4];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn referrer(n: &[u8], at: &str, referrers: Vec<ReferrerNode>) -> ReferrerNode {
        let mut d = Descriptor::for_bytes(sigil_oci::media_type::OCI_MANIFEST, n);
        d.artifact_type = Some(at.into());
        ReferrerNode {
            descriptor: d,
            referrers,
        }
    }

    fn sample() -> SubjectNode {
        let sig = referrer(b"sig", "application/vnd.example.sig", vec![]);
        let sbom = referrer(b"sbom", "application/spdx+json", vec![sig.clone()]);
        let sbom2 = referrer(b"sbom2", "application/spdx+json", vec![]);
        let d = Digest::sha256(b"root");
        SubjectNode {
            reference: format!("127.0.0.1:5000/demo@{d}"),
            media_type: None,
            digest: d,
            size: None,
            platform: None,
            referrers: vec![sbom, sbom2, sig],
            manifests: vec![],
            digest_tags: vec![],
        }
    }

    #[test]
    fn tree_groups_by_artifact_type() {
        let root = sample();
        let s = |b: &[u8]| Digest::sha256(b).to_string();
        let expected = [
            root.reference.clone(),
            "├── application/spdx+json".to_owned(),
            format!("│   ├── {}", s(b"sbom")),
            "│   │   └── application/vnd.example.sig".to_owned(),
            format!("│   │       └── {}", s(b"sig")),
            format!("│   └── {}", s(b"sbom2")),
            "└── application/vnd.example.sig".to_owned(),
            format!("    └── {}", s(b"sig")),
        ]
        .join("\n")
            + "\n";
        assert_eq!(render_tree(&root), expected);
    }

    #[test]
    fn tree_shows_platform_children_and_digest_tags() {
        let mut root = sample();
        root.referrers.clear();
        let child_digest = Digest::sha256(b"amd64");
        root.manifests.push(SubjectNode {
            reference: String::new(),
            media_type: None,
            digest: child_digest.clone(),
            size: None,
            platform: Some(Platform::parse("linux/amd64").unwrap()),
            referrers: vec![referrer(b"x", "application/x", vec![])],
            manifests: vec![],
            digest_tags: vec![],
        });
        root.digest_tags.push(DigestTag {
            tag: format!("{}.sig", root.digest.fallback_tag()),
            descriptor: Descriptor::for_bytes(sigil_oci::media_type::OCI_MANIFEST, b"cosign"),
        });
        let out = render_tree(&root);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{out}");
        assert!(lines[1].starts_with("├── [tag] sha256-"), "{out}");
        assert_eq!(lines[3], format!("└── [linux/amd64] {child_digest}"));
        assert_eq!(lines[4], "    └── application/x");
        assert!(lines[5].starts_with("        └── sha256:"), "{out}");
    }

    #[test]
    fn table_and_json() {
        let root = sample();
        let t = render_table(&root);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("1  sha256:"));
        assert!(lines[1].starts_with("2  sha256:"));
        assert!(lines[1].contains("application/vnd.example.sig"));
        assert!(lines[1].ends_with(&Digest::sha256(b"sbom").to_string()));
        assert_eq!(
            render_table(&SubjectNode {
                referrers: vec![],
                ..root.clone()
            }),
            ""
        );
        let v = serde_json::to_value(&root).unwrap();
        assert_eq!(v["digest"], root.digest.to_string());
        assert_eq!(v["referrers"][0]["artifactType"], "application/spdx+json");
        assert_eq!(
            v["referrers"][0]["referrers"][0]["artifactType"],
            "application/vnd.example.sig"
        );
        assert!(v.get("manifests").is_none());
        assert!(v.get("mediaType").is_none());
    }
}
