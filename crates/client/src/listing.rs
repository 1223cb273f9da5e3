//! Listings with `Link: <url>; rel="next"` pagination: tags, the catalog, referrers.
//!
//! Pagination follows the registry's `Link` headers (relative or absolute) and stops on a repeated URL,
//! so a registry that loops cannot keep the client busy forever.

use std::collections::HashSet;

use reqwest::{Method, Response};
use serde::Deserialize;
use sigil_oci::{Digest, ImageIndex, Reference};
use url::Url;

use crate::auth::Scope;
use crate::client::{RegistryClient, Req, read_limited};
use crate::error::ClientError;

/// Most pages followed by the listing helpers.
const MAX_PAGES: usize = 10_000;
/// Largest listing page read.
const PAGE_LIMIT: u64 = 16 * 1024 * 1024;

/// One page of a tag list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPage {
    /// Tags on this page.
    pub tags: Vec<String>,
    /// The next page (`Link rel="next"`), if any.
    pub next: Option<Url>,
}

/// One page of a referrers listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrersPage {
    /// The referrers index as served.
    pub index: ImageIndex,
    /// Whether the registry applied the `artifactType` filter (`OCI-Filters-Applied`).
    pub filters_applied: bool,
    /// The next page, if any.
    pub next: Option<Url>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

/// Extracts the `rel="next"` target from `Link` header values (RFC 8288), resolved against `base`.
pub fn parse_next_link<'a>(values: impl IntoIterator<Item = &'a str>, base: &Url) -> Option<Url> {
    for value in values {
        let mut rest = value;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>')?;
            let target = &after[..close];
            let params_end = after[close + 1..]
                .find('<')
                .map_or(after.len(), |i| close + 1 + i);
            let params = &after[close + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            if is_next {
                return base.join(target.trim()).ok();
            }
            rest = &after[params_end.min(after.len())..];
        }
    }
    None
}

fn next_link(resp: &Response) -> Option<Url> {
    parse_next_link(
        resp.headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        resp.url(),
    )
}

impl RegistryClient {
    /// One page of `GET /v2/<name>/tags/list?n=&last=`, or the page at `page` (a `next` URL).
    pub async fn list_tags_page(
        &self,
        repo: &Reference,
        n: Option<usize>,
        last: Option<&str>,
        page: Option<&Url>,
    ) -> Result<TagPage, ClientError> {
        let scopes = vec![Scope::pull(&repo.repository)];
        let req = match page {
            Some(u) => Req::url(Method::GET, u.clone(), scopes),
            None => {
                let mut r = Req::new(
                    Method::GET,
                    format!("/v2/{}/tags/list", repo.repository),
                    scopes,
                );
                if let Some(n) = n {
                    r = r.query("n", n.to_string());
                }
                if let Some(l) = last {
                    r = r.query("last", l);
                }
                r
            }
        };
        let resp = self.send(&repo.registry, req).await?;
        let resp = self.check(&repo.registry, resp).await?;
        let next = next_link(&resp);
        let body = read_limited(resp, PAGE_LIMIT, "tag list", &repo.registry).await?;
        let list: TagList = serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            registry: repo.registry.clone(),
            message: format!("invalid tag list: {e}"),
        })?;
        Ok(TagPage {
            tags: list.tags.unwrap_or_default(),
            next,
        })
    }

    /// Every tag of a repository, following `Link` pagination (`n` is the page size asked for). Tags
    /// repeated across pages (registries that treat `last` inclusively) are reported once.
    pub async fn list_tags(
        &self,
        repo: &Reference,
        n: Option<usize>,
    ) -> Result<Vec<String>, ClientError> {
        let mut out = Vec::new();
        let mut seen_tags = HashSet::new();
        let mut seen_urls = HashSet::new();
        let mut page = self.list_tags_page(repo, n, None, None).await?;
        for _ in 0..MAX_PAGES {
            for t in page.tags {
                if seen_tags.insert(t.clone()) {
                    out.push(t);
                }
            }
            let Some(next) = page.next else { break };
            if !seen_urls.insert(next.to_string()) {
                tracing::warn!(%next, "tag list pagination repeats itself; stopping");
                break;
            }
            page = self.list_tags_page(repo, None, None, Some(&next)).await?;
        }
        Ok(out)
    }

    /// Every repository in the registry (`GET /v2/_catalog`), following `Link` pagination.
    pub async fn catalog(
        &self,
        registry: &str,
        n: Option<usize>,
    ) -> Result<Vec<String>, ClientError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut seen_urls = HashSet::new();
        let mut req = Req::new(Method::GET, "/v2/_catalog", vec![Scope::catalog()]);
        if let Some(n) = n {
            req = req.query("n", n.to_string());
        }
        for _ in 0..MAX_PAGES {
            let resp = self.send(registry, req).await?;
            let resp = self.check(registry, resp).await?;
            let next = next_link(&resp);
            let body = read_limited(resp, PAGE_LIMIT, "catalog", registry).await?;
            let c: Catalog = serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
                registry: registry.to_owned(),
                message: format!("invalid catalog: {e}"),
            })?;
            for r in c.repositories.unwrap_or_default() {
                if seen.insert(r.clone()) {
                    out.push(r);
                }
            }
            let Some(next) = next else { break };
            if !seen_urls.insert(next.to_string()) {
                break;
            }
            req = Req::url(Method::GET, next, vec![Scope::catalog()]);
        }
        Ok(out)
    }

    /// One page of `GET /v2/<name>/referrers/<digest>[?artifactType=]` (or the page at `page`). A 404
    /// becomes [`ClientError::ReferrersUnsupported`]: use the tag-schema fallback.
    pub async fn get_referrers_page(
        &self,
        repo: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
        page: Option<&Url>,
    ) -> Result<ReferrersPage, ClientError> {
        let scopes = vec![Scope::pull(&repo.repository)];
        let req = match page {
            Some(u) => Req::url(Method::GET, u.clone(), scopes),
            None => {
                let mut r = Req::new(
                    Method::GET,
                    format!("/v2/{}/referrers/{subject}", repo.repository),
                    scopes,
                )
                .header(http::header::ACCEPT, sigil_oci::media_type::OCI_INDEX);
                if let Some(t) = artifact_type {
                    r = r.query("artifactType", t);
                }
                r
            }
        };
        let resp = self.send(&repo.registry, req).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            let err = self.error_from(&repo.registry, resp).await;
            return Err(ClientError::ReferrersUnsupported {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                code: err.code().map(str::to_owned),
            });
        }
        let resp = self.check(&repo.registry, resp).await?;
        let filters_applied = resp
            .headers()
            .get_all("oci-filters-applied")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|f| f.trim() == "artifactType");
        let next = next_link(&resp);
        let body = read_limited(resp, PAGE_LIMIT, "referrers response", &repo.registry).await?;
        let index: ImageIndex =
            serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
                registry: repo.registry.clone(),
                message: format!("invalid referrers response: {e}"),
            })?;
        Ok(ReferrersPage {
            index,
            filters_applied,
            next,
        })
    }

    /// All referrers of `subject`, following `Link` pagination (with a guard against repeated URLs).
    /// The returned page's `index.manifests` holds every page's descriptors; `filters_applied` is true
    /// only if every page applied the filter; `next` is `None`. The registry's filter is not re-applied
    /// here: callers filter client-side when `filters_applied` is false.
    pub async fn get_referrers(
        &self,
        repo: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ReferrersPage, ClientError> {
        let mut first = self
            .get_referrers_page(repo, subject, artifact_type, None)
            .await?;
        let mut seen = HashSet::new();
        let mut next = first.next.take();
        for _ in 0..MAX_PAGES {
            let Some(url) = next else { break };
            if !seen.insert(url.to_string()) {
                tracing::warn!(%url, "referrers pagination repeats itself; stopping");
                break;
            }
            let page = self
                .get_referrers_page(repo, subject, artifact_type, Some(&url))
                .await?;
            first.index.manifests.extend(page.index.manifests);
            first.filters_applied &= page.filters_applied;
            next = page.next;
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_link_headers() {
        let base = Url::parse("http://127.0.0.1:5000/v2/demo/tags/list?n=2").unwrap();
        let next =
            parse_next_link(["</v2/demo/tags/list?last=b&n=2>; rel=\"next\""], &base).unwrap();
        assert_eq!(
            next.as_str(),
            "http://127.0.0.1:5000/v2/demo/tags/list?last=b&n=2"
        );
        let next = parse_next_link(
            [r#"<https://other.example/p1>; rel="prev", <https://other.example/p3>; rel="next""#],
            &base,
        )
        .unwrap();
        assert_eq!(next.as_str(), "https://other.example/p3");
        let next = parse_next_link(["<x?page=2>;rel=next"], &base).unwrap();
        assert_eq!(next.as_str(), "http://127.0.0.1:5000/v2/demo/tags/x?page=2");
        let next = parse_next_link(
            [
                r#"<a>; title="a, b"; rel="prev""#,
                r#"<c>; rel="first next""#,
            ],
            &base,
        )
        .unwrap();
        assert!(next.as_str().ends_with("/tags/c"));
        assert!(parse_next_link([r#"<a>; rel="prev""#], &base).is_none());
        assert!(parse_next_link(["garbage"], &base).is_none());
        assert!(parse_next_link(Vec::<&str>::new(), &base).is_none());
    }
}
